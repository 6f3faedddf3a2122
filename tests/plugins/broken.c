/*
 * broken.c: the plugins that the loader must refuse, one fault each,
 * chosen by a BROKEN_* definition. Everything but the fault is valid, so
 * that each test sees exactly the error of its fault.
 *
 *   BROKEN_ABI2      built for plugin ABI major 2
 *   BROKEN_NOENTRY   forgot VMIG_PLUGIN_EXPORT: the entry point is hidden
 *   BROKEN_SHORT     descriptor size 8
 *   BROKEN_NONAME    name NULL
 *   BROKEN_BADNAME   name "Bad Name"
 *   BROKEN_NOOPS     ops NULL
 *   BROKEN_NOCREATE  ops without create
 *   BROKEN_REFUSE    the entry point returns NULL
 */
#include <errno.h>
#include <stdlib.h>

#include <vmig/plugin.h>

/* Some faults leave a piece of the plugin unreferenced. */
#define MAYBE_UNUSED __attribute__((unused))

static MAYBE_UNUSED int broken_create(const struct vmig_host *host,
				      void **instance)
{
	(void)host;
	*instance = malloc(1);
	return *instance ? 0 : -ENOMEM;
}

static void broken_destroy(void *instance)
{
	free(instance);
}

static MAYBE_UNUSED const struct vmig_source_ops broken_ops = {
	.size = sizeof(struct vmig_source_ops),
#ifndef BROKEN_NOCREATE
	.create = broken_create,
#endif
	.destroy = broken_destroy,
};

static MAYBE_UNUSED const struct vmig_plugin broken_plugin = {
#ifdef BROKEN_SHORT
	.size = 8,
#else
	.size = sizeof(struct vmig_plugin),
#endif
#ifdef BROKEN_ABI2
	.abi_major = 2,
#else
	.abi_major = VMIG_PLUGIN_ABI_MAJOR,
#endif
	.abi_minor = VMIG_PLUGIN_ABI_MINOR,
#if defined(BROKEN_NONAME)
	.name = NULL,
#elif defined(BROKEN_BADNAME)
	.name = "Bad Name",
#else
	.name = "test-broken",
#endif
	.version = "1.0.0",
	.description = "a loader test plugin with one fault",
	.device_kinds = VMIG_KIND_BIT(VMIG_DEVICE_VFIO_PCI),
	.iommu_kinds = VMIG_KIND_BIT(VMIG_IOMMU_TYPE1),
	.precision = VMIG_PRECISION_EXACT,
	.page_sizes = VMIG_PAGE_SIZE,
#ifndef BROKEN_NOOPS
	.ops = &broken_ops,
#endif
};

#ifdef BROKEN_NOENTRY
/* What a plugin gets when it forgets the export macro. */
#define ENTRY_VISIBILITY
#else
#define ENTRY_VISIBILITY VMIG_PLUGIN_EXPORT
#endif

ENTRY_VISIBILITY const struct vmig_plugin *
VMIG_PLUGIN_ENTRY(const struct vmig_host *host, uint32_t abi_major)
{
	(void)host;
	(void)abi_major;
#ifdef BROKEN_REFUSE
	return NULL;
#else
	return &broken_plugin;
#endif
}
