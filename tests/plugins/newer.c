/*
 * newer.c: "test-newer", a plugin built against a newer minor of the ABI.
 *
 * Its descriptor is longer than this vmig's struct vmig_plugin, with
 * fields appended that this vmig does not know, and abi_minor 99. A host
 * of the same major must load it and ignore the tail.
 */
#include <errno.h>
#include <stdint.h>
#include <stdlib.h>

#include <vmig/plugin.h>

/* The descriptor of a future minor: today's fields, then new ones. */
struct newer_plugin {
	struct vmig_plugin base;
	uint64_t future_limit;  /* Since: 1.99 */
	const char *future_tag; /* Since: 1.99 */
	uint32_t future_flags;  /* Since: 1.99 */
};

static int newer_create(const struct vmig_host *host, void **instance)
{
	(void)host;
	*instance = malloc(1);
	return *instance ? 0 : -ENOMEM;
}

static void newer_destroy(void *instance)
{
	free(instance);
}

static const struct vmig_source_ops newer_ops = {
	.size = sizeof(struct vmig_source_ops),
	.create = newer_create,
	.destroy = newer_destroy,
};

static const struct newer_plugin newer_plugin = {
	.base = {
		.size = sizeof(struct newer_plugin),
		.abi_major = VMIG_PLUGIN_ABI_MAJOR,
		.abi_minor = 99,
		.flags = VMIG_PLUGIN_READ_NO_CLEAR,
		.name = "test-newer",
		.version = "99.0",
		.description = "a descriptor from a newer ABI minor",
		.device_kinds = VMIG_KIND_BIT(VMIG_DEVICE_VFIO_PCI),
		.iommu_kinds = VMIG_KIND_BIT(VMIG_IOMMU_IOMMUFD),
		.precision = VMIG_PRECISION_SUPERSET,
		.page_sizes = VMIG_PAGE_SIZE | (1u << 21),
		.ops = &newer_ops,
	},
	.future_limit = UINT64_MAX,
	.future_tag = "from the future",
	.future_flags = 0xffffffffu,
};

VMIG_PLUGIN_EXPORT const struct vmig_plugin *
VMIG_PLUGIN_ENTRY(const struct vmig_host *host, uint32_t abi_major)
{
	(void)host;
	(void)abi_major;
	return &newer_plugin.base;
}
