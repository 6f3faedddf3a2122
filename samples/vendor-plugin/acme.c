/*
 * acme.c: a vendor's dirty source, built outside vmig's tree from the
 * installed headers alone (docs/plugin-guide.md).
 *
 * It tracks the vfio-pci devices whose name starts with "acme" behind a
 * type1 container, as a vendor would whose device keeps its own dirty
 * log; this sample has no such device, so it reports every page of each
 * read dirty (all-mapped), which is always safe. What it shows: the
 * descriptor, the defaults vmig applies for the operations it leaves out,
 * the host table (logging through it), the bitmap helpers of
 * <vmig/bitmap.h>, and the one exported symbol.
 */
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include <vmig/bitmap.h>
#include <vmig/plugin.h>

struct acme {
	const struct vmig_host *host;
	unsigned int devices;
};

static int acme_create(const struct vmig_host *host, void **instance)
{
	struct acme *a = calloc(1, sizeof(*a));

	if (!a)
		return -ENOMEM;
	a->host = host;
	*instance = a;
	return 0;
}

static void acme_destroy(void *instance)
{
	free(instance);
}

static int acme_probe(void *instance, const struct vmig_device_desc *dev,
		      struct vmig_probe *out)
{
	(void)instance;
	if (!dev->name || strncmp(dev->name, "acme", 4)) {
		/* precision stays NONE: declined, with the reason. */
		strcpy(out->reason, "not an ACME device");
		return 0;
	}
	out->precision = VMIG_PRECISION_ALL_MAPPED;
	out->cost = 3;
	strcpy(out->reason, "ACME sample: every page of every read");
	return 0;
}

static int acme_attach(void *instance, const struct vmig_device_desc *dev)
{
	struct acme *a = instance;

	a->devices++;
	vmig_host_logf(a->host, VMIG_LOG_INFO, "tracking %s", dev->name);
	return 0;
}

static int acme_detach(void *instance, uint32_t device_id)
{
	struct acme *a = instance;

	(void)device_id;
	if (!a->devices)
		return -ENOENT;
	a->devices--;
	return 0;
}

static int acme_read(void *instance, const struct vmig_read *rq,
		     uint64_t *bitmap)
{
	(void)instance;
	if (!rq->page_size || rq->length % rq->page_size)
		return -EINVAL;
	vmig_bitmap_set(bitmap, 0, rq->length / rq->page_size);
	return 0;
}

static const struct vmig_source_ops acme_ops = {
	.size = sizeof(struct vmig_source_ops),
	.create = acme_create,
	.destroy = acme_destroy,
	.probe = acme_probe,
	.attach = acme_attach,
	.detach = acme_detach,
	.read = acme_read,
	/* start, stop, map, unmap_*, status: vmig's defaults. */
};

static const struct vmig_plugin acme_plugin = {
	.size = sizeof(struct vmig_plugin),
	.abi_major = VMIG_PLUGIN_ABI_MAJOR,
	.abi_minor = VMIG_PLUGIN_ABI_MINOR,
	.name = "acme",
	.version = "1.0",
	.description = "ACME sample source (all-mapped)",
	.device_kinds = VMIG_KIND_BIT(VMIG_DEVICE_VFIO_PCI),
	.iommu_kinds = VMIG_KIND_BIT(VMIG_IOMMU_TYPE1),
	.precision = VMIG_PRECISION_ALL_MAPPED,
	.page_sizes = 1u << 12,
	.ops = &acme_ops,
};

VMIG_PLUGIN_EXPORT const struct vmig_plugin *
VMIG_PLUGIN_ENTRY(const struct vmig_host *host, uint32_t abi_major)
{
	(void)host;
	return abi_major == VMIG_PLUGIN_ABI_MAJOR ? &acme_plugin : NULL;
}
