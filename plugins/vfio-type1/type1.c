/*
 * type1.c: the vfio-type1 dirty source, VFIO_IOMMU_DIRTY_PAGES on a type1v2
 * container.
 *
 * Type1 tracking is software only: the kernel never reads IOMMU dirty bits.
 * While any group in the container is outside the pinned-page scope (a
 * plain vfio-pci device), every read reports every mapped page ("all
 * mapped"); when every group is in pinned scope (mdev), it reports the
 * pages the vendor drivers pinned plus those written through vfio_dma_rw
 * (exact). Bits are harvested before an unmap by unmapping with
 * VFIO_DMA_UNMAP_FLAG_GET_DIRTY_BITMAP, the only way type1 offers.
 *
 * A vfio-pci device's own DMA goes through the IOMMU and is never logged:
 * it is "seen" only because its group, outside pinned scope, makes the
 * kernel report everything. But a vfio-pci driver that calls
 * vfio_pin_pages() promotes its group into pinned scope (shared
 * docs/kernel-uapi.md 1.8), and once every group is there the bitmap holds
 * only the pinned pages: the device's other writes vanish. Userspace
 * cannot tell the group's scope. So with a vfio-pci device in a container
 * the plugin does not trust the kernel's bitmap and reports every page of
 * the range itself: the claim "all mapped" then holds whatever the scope.
 * It sets every page of the range it is asked for, holes included: vmig
 * reads one mapping at a time.
 * The kernel counts every group of the container, including those whose
 * devices another source tracks; so every vfio-pci device this instance
 * probed in a container counts (until it detaches one it tracked): an mdev
 * there is "all mapped" too, as the kernel reports it.
 *
 * Every kernel call goes through the host table.
 */
#include <errno.h>
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>

#include <vmig/plugin.h>

#include <vmig/bitmap.h>
#include <vmig/linux-uapi.h>

struct t1_container {
	uint32_t iommu_id;
	int fd;              /* the VMM's container fd: never closed here */
	uint64_t pgsize;     /* the smallest IOMMU page size (bit granule) */
	uint64_t max_bitmap; /* bytes one GET_BITMAP may return */
	uint32_t nr_devices;
	uint32_t nr_unpinned; /* attached groups outside pinned scope */
	bool started;
};

struct t1_device {
	uint32_t id;
	uint32_t kind;
	struct t1_container *c;
};

/* A vfio-pci device probed in a type1 container. */
struct t1_pci {
	uint32_t iommu_id;
	uint32_t id;
};

struct t1 {
	const struct vmig_host *host;
	struct t1_container **cs;
	size_t nr_cs;
	struct t1_device *devs;
	size_t nr_devs;
	/* vfio-pci devices probed, whoever tracks them: see the top. */
	struct t1_pci *pci;
	size_t nr_pci;
	bool started;
	uint64_t *buf; /* kernel-granule bitmap when it differs from ours */
	uint64_t buf_words;
};

static int t1_ioctl(struct t1 *t, int fd, unsigned long req, void *arg)
{
	return t->host->ioctl(t->host->kctx, fd, req, arg);
}

/*
 * Reads the container's migration capability: the dirty-tracking page
 * size and bitmap limit. Returns 0, -EOPNOTSUPP when the container has
 * none (iommufd's compatibility container), or the kernel's error.
 */
static int t1_query(struct t1 *t, int fd, uint64_t *pgsize,
		    uint64_t *max_bitmap)
{
	struct vfio_iommu_type1_info probe = { .argsz = sizeof(probe) };
	struct vfio_iommu_type1_info *info;
	uint32_t off, argsz;
	int ret, hops = 0;

	ret = t1_ioctl(t, fd, VFIO_IOMMU_GET_INFO, &probe);
	if (ret < 0)
		return ret;
	/* The kernel says how much room the capabilities need. */
	argsz = probe.argsz;
	if (!(probe.flags & VFIO_IOMMU_INFO_CAPS) || argsz <= sizeof(probe))
		return -EOPNOTSUPP;
	if (argsz > 65536)
		return -EOVERFLOW;
	info = calloc(1, argsz);
	if (!info)
		return -ENOMEM;
	info->argsz = argsz;
	ret = t1_ioctl(t, fd, VFIO_IOMMU_GET_INFO, info);
	if (ret < 0)
		goto out;
	ret = -EOPNOTSUPP;
	for (off = info->cap_offset; off; hops++) {
		const struct vfio_info_cap_header *hdr;

		if (hops > 64 || off < sizeof(*info) ||
		    off > argsz - sizeof(*hdr) || (off & 3)) {
			ret = -EPROTO;
			break;
		}
		hdr = (const void *)((const char *)info + off);
		if (hdr->id == VFIO_IOMMU_TYPE1_INFO_CAP_MIGRATION) {
			struct vfio_iommu_type1_info_cap_migration mig;

			if (off > argsz - sizeof(mig)) {
				ret = -EPROTO;
				break;
			}
			memcpy(&mig, hdr, sizeof(mig));
			if (!mig.pgsize_bitmap) {
				ret = -EPROTO;
				break;
			}
			/* The smallest page size is the bit granule. */
			*pgsize = mig.pgsize_bitmap & -mig.pgsize_bitmap;
			*max_bitmap = mig.max_dirty_bitmap_size;
			ret = 0;
			break;
		}
		if (hdr->next && hdr->next <= off) {
			ret = -EPROTO;
			break;
		}
		off = hdr->next;
	}
out:
	free(info);
	return ret;
}

static struct t1_container *t1_container_find(struct t1 *t, uint32_t id)
{
	size_t i;

	for (i = 0; i < t->nr_cs; i++) {
		if (t->cs[i]->iommu_id == id)
			return t->cs[i];
	}
	return NULL;
}

static struct t1_device *t1_device_find(struct t1 *t, uint32_t id)
{
	size_t i;

	for (i = 0; i < t->nr_devs; i++) {
		if (t->devs[i].id == id)
			return &t->devs[i];
	}
	return NULL;
}

static int t1_dirty_pages(struct t1 *t, struct t1_container *c,
			  uint32_t flag)
{
	struct vfio_iommu_type1_dirty_bitmap db = {
		.argsz = sizeof(db),
		.flags = flag,
	};

	return t1_ioctl(t, c->fd, VFIO_IOMMU_DIRTY_PAGES, &db);
}

static int t1_container_start(struct t1 *t, struct t1_container *c)
{
	int ret;

	if (c->started)
		return 0;
	ret = t1_dirty_pages(t, c, VFIO_IOMMU_DIRTY_PAGES_FLAG_START);
	if (ret < 0) {
		vmig_host_logf(t->host, VMIG_LOG_ERROR,
			       "container %u: cannot start dirty tracking: %s%s",
			       c->iommu_id, strerror(-ret),
			       ret == -EACCES ? " (not a type1v2 container)"
					      : "");
		return ret;
	}
	c->started = true;
	return 0;
}

static void t1_container_stop(struct t1 *t, struct t1_container *c)
{
	if (!c->started)
		return;
	t1_dirty_pages(t, c, VFIO_IOMMU_DIRTY_PAGES_FLAG_STOP);
	c->started = false;
}

/* Whether a vfio-pci device was probed in container iommu_id. */
static bool t1_has_pci(const struct t1 *t, uint32_t iommu_id)
{
	size_t i;

	for (i = 0; i < t->nr_pci; i++) {
		if (t->pci[i].iommu_id == iommu_id)
			return true;
	}
	return false;
}

/* Remembers (or, when forget, forgets) a vfio-pci device. */
static int t1_pci_note(struct t1 *t, uint32_t iommu_id, uint32_t id,
		       bool forget)
{
	struct t1_pci *p;
	size_t i;

	for (i = 0; i < t->nr_pci; i++) {
		if (t->pci[i].id != id)
			continue;
		if (forget)
			t->pci[i] = t->pci[--t->nr_pci];
		else
			t->pci[i].iommu_id = iommu_id;
		return 0;
	}
	if (forget)
		return 0;
	p = realloc(t->pci, (t->nr_pci + 1) * sizeof(*p));
	if (!p)
		return -ENOMEM;
	t->pci = p;
	t->pci[t->nr_pci].iommu_id = iommu_id;
	t->pci[t->nr_pci].id = id;
	t->nr_pci++;
	return 0;
}

static uint32_t t1_precision(const struct t1 *t, const struct t1_container *c)
{
	return c->nr_unpinned || t1_has_pci(t, c->iommu_id)
		       ? VMIG_PRECISION_ALL_MAPPED
		       : VMIG_PRECISION_EXACT;
}

static void t1_explain(uint32_t iommu_id, uint32_t kind, uint32_t precision,
		       struct vmig_probe *out)
{
	out->precision = precision;
	out->cost = 2;
	if (precision == VMIG_PRECISION_ALL_MAPPED && kind != VMIG_DEVICE_MDEV)
		snprintf(out->reason, sizeof(out->reason),
			 "every mapped page: type1 never logs a vfio-pci "
			 "device's DMA, and in pinned-page scope (a driver "
			 "that pins) the kernel reports only pins");
	else if (precision == VMIG_PRECISION_ALL_MAPPED)
		snprintf(out->reason, sizeof(out->reason),
			 "all mapped: a vfio-pci group is in container %u, and "
			 "the kernel reports every mapped page while one is "
			 "outside pinned-page scope",
			 iommu_id);
	else
		snprintf(out->reason, sizeof(out->reason),
			 "pinned-page scope: pages the vendor driver pinned "
			 "(reported on every read while pinned) and wrote");
}

/* ------------------------------------------------------------------ */

static int t1_create(const struct vmig_host *host, void **instance)
{
	struct t1 *t;

	if (!VMIG_HAS_FIELD(host, struct vmig_host, munmap) || !host->ioctl)
		return -EINVAL;
	t = calloc(1, sizeof(*t));
	if (!t)
		return -ENOMEM;
	t->host = host;
	*instance = t;
	return 0;
}

static void t1_destroy(void *instance)
{
	struct t1 *t = instance;
	size_t i;

	for (i = 0; i < t->nr_cs; i++) {
		t1_container_stop(t, t->cs[i]);
		free(t->cs[i]);
	}
	free(t->cs);
	free(t->devs);
	free(t->pci);
	free(t->buf);
	free(t);
}

static int t1_probe(void *instance, const struct vmig_device_desc *dev,
		    struct vmig_probe *out)
{
	struct t1 *t = instance;
	struct t1_container *c;
	uint64_t pgsize, max_bitmap;
	int ret;

	if (!dev->iommu || dev->iommu->kind != VMIG_IOMMU_TYPE1) {
		snprintf(out->reason, sizeof(out->reason),
			 "not in a VFIO type1 container");
		return 0;
	}
	ret = t1_query(t, dev->iommu->fd, &pgsize, &max_bitmap);
	if (ret == -EOPNOTSUPP) {
		snprintf(out->reason, sizeof(out->reason),
			 "the container offers no dirty-page tracking (no "
			 "migration capability: iommufd's compatibility "
			 "container?)");
		return 0;
	}
	if (ret < 0) {
		snprintf(out->reason, sizeof(out->reason),
			 "VFIO_IOMMU_GET_INFO failed: %s", strerror(-ret));
		return 0;
	}
	if (dev->kind != VMIG_DEVICE_MDEV) {
		ret = t1_pci_note(t, dev->iommu->id, dev->id, false);
		if (ret < 0)
			return ret;
	}
	c = t1_container_find(t, dev->iommu->id);
	if (dev->kind == VMIG_DEVICE_MDEV &&
	    !(c && c->nr_unpinned) && !t1_has_pci(t, dev->iommu->id))
		t1_explain(dev->iommu->id, dev->kind, VMIG_PRECISION_EXACT,
			   out);
	else
		t1_explain(dev->iommu->id, dev->kind,
			   VMIG_PRECISION_ALL_MAPPED, out);
	return 0;
}

static int t1_attach(void *instance, const struct vmig_device_desc *dev)
{
	struct t1 *t = instance;
	struct t1_container *c, **cs;
	struct t1_device *devs;
	int ret;

	if (!dev->iommu || dev->iommu->kind != VMIG_IOMMU_TYPE1)
		return -EINVAL;
	if (t1_device_find(t, dev->id))
		return -EEXIST;
	devs = realloc(t->devs, (t->nr_devs + 1) * sizeof(*devs));
	if (!devs)
		return -ENOMEM;
	t->devs = devs;

	c = t1_container_find(t, dev->iommu->id);
	if (!c) {
		cs = realloc(t->cs, (t->nr_cs + 1) * sizeof(*cs));
		if (!cs)
			return -ENOMEM;
		t->cs = cs;
		c = calloc(1, sizeof(*c));
		if (!c)
			return -ENOMEM;
		c->iommu_id = dev->iommu->id;
		c->fd = dev->iommu->fd;
		ret = t1_query(t, c->fd, &c->pgsize, &c->max_bitmap);
		if (ret < 0) {
			free(c);
			return ret;
		}
		t->cs[t->nr_cs++] = c;
	}
	if (t->started) {
		ret = t1_container_start(t, c);
		if (ret < 0)
			return ret;
	}
	devs[t->nr_devs].id = dev->id;
	devs[t->nr_devs].kind = dev->kind;
	devs[t->nr_devs].c = c;
	t->nr_devs++;
	c->nr_devices++;
	if (dev->kind != VMIG_DEVICE_MDEV)
		c->nr_unpinned++;
	return 0;
}

static int t1_detach(void *instance, uint32_t device_id)
{
	struct t1 *t = instance;
	struct t1_device *d = t1_device_find(t, device_id);
	struct t1_container *c;

	if (!d)
		return -ENOENT;
	c = d->c;
	c->nr_devices--;
	/*
	 * A vfio-pci device stays in the container (another source may
	 * take it): the kernel still reports every mapped page until it
	 * leaves the session (t1_device_gone).
	 */
	if (d->kind != VMIG_DEVICE_MDEV)
		c->nr_unpinned--;
	*d = t->devs[--t->nr_devs];
	/* Nobody here needs the container's log any more. */
	if (!c->nr_devices)
		t1_container_stop(t, c);
	return 0;
}

static int t1_start(void *instance, uint64_t page_size)
{
	struct t1 *t = instance;
	size_t i;
	int ret;

	(void)page_size; /* type1 logs at the IOMMU's smallest page */
	for (i = 0; i < t->nr_cs; i++) {
		if (!t->cs[i]->nr_devices)
			continue;
		ret = t1_container_start(t, t->cs[i]);
		if (ret < 0) {
			while (i--)
				t1_container_stop(t, t->cs[i]);
			return ret;
		}
	}
	t->started = true;
	return 0;
}

static int t1_stop(void *instance)
{
	struct t1 *t = instance;
	size_t i;

	for (i = 0; i < t->nr_cs; i++)
		t1_container_stop(t, t->cs[i]);
	t->started = false;
	return 0;
}

/*
 * Checks a request against a container and gives the buffer the kernel
 * should write: the caller's when the granules agree, else the
 * instance's, zeroed. *bits is the number of kernel granules.
 */
static int t1_prepare(struct t1 *t, const struct vmig_read *rq,
		      uint64_t *bitmap, struct t1_container **cp,
		      uint64_t **kbuf, uint64_t *bits)
{
	struct t1_container *c;
	uint64_t n;

	if (!VMIG_HAS_FIELD(rq, struct vmig_read, page_size))
		return -EINVAL;
	if (rq->flags & ~VMIG_READ_NO_CLEAR)
		return -EINVAL;
	if (rq->flags & VMIG_READ_NO_CLEAR)
		return -ENOTSUP; /* type1 always clears what it reports */
	c = t1_container_find(t, rq->iommu_id);
	if (!c)
		return -ENOENT;
	if (!rq->length || !rq->page_size ||
	    (rq->page_size & (rq->page_size - 1)) ||
	    ((rq->iova | rq->length) & (rq->page_size - 1)) ||
	    ((rq->iova | rq->length) & (c->pgsize - 1)) ||
	    rq->iova + rq->length < rq->iova)
		return -EINVAL;
	n = rq->length / c->pgsize;
	if (c->max_bitmap && vmig_bitmap_bytes(n) > c->max_bitmap)
		return -E2BIG;
	if (c->pgsize == rq->page_size) {
		*kbuf = bitmap;
	} else {
		if (vmig_bitmap_words(n) > t->buf_words) {
			uint64_t *p = realloc(t->buf, vmig_bitmap_bytes(n));

			if (!p)
				return -ENOMEM;
			t->buf = p;
			t->buf_words = vmig_bitmap_words(n);
		}
		memset(t->buf, 0, vmig_bitmap_bytes(n));
		*kbuf = t->buf;
	}
	*cp = c;
	*bits = n;
	return 0;
}

/*
 * The kernel's bits into the caller's bitmap; every page of the range
 * when the container has a vfio-pci device, whose writes the kernel's
 * bitmap may lack (see the top).
 */
static int t1_finish(struct t1 *t, struct t1_container *c,
		     const struct vmig_read *rq, uint64_t *bitmap,
		     const uint64_t *kbuf)
{
	int ret = 0;

	if (kbuf != bitmap)
		ret = vmig_bitmap_convert(bitmap, rq->page_size, kbuf,
					  c->pgsize, rq->length);
	if (ret == 0 && t1_precision(t, c) == VMIG_PRECISION_ALL_MAPPED)
		vmig_bitmap_set(bitmap, 0, rq->length / rq->page_size);
	return ret;
}

static int t1_read(void *instance, const struct vmig_read *rq,
		   uint64_t *bitmap)
{
	struct t1 *t = instance;
	struct t1_container *c;
	uint64_t *kbuf, bits;
	/* Header and the GET_BITMAP payload, contiguous, as the kernel wants. */
	uint64_t raw[(sizeof(struct vfio_iommu_type1_dirty_bitmap) +
		      sizeof(struct vfio_iommu_type1_dirty_bitmap_get)) / 8];
	struct vfio_iommu_type1_dirty_bitmap *db = (void *)raw;
	struct vfio_iommu_type1_dirty_bitmap_get *get = (void *)(raw + 1);
	int ret;

	ret = t1_prepare(t, rq, bitmap, &c, &kbuf, &bits);
	if (ret < 0)
		return ret;
	if (!c->started)
		return -EINVAL;
	memset(raw, 0, sizeof(raw));
	db->argsz = sizeof(raw);
	db->flags = VFIO_IOMMU_DIRTY_PAGES_FLAG_GET_BITMAP;
	get->iova = rq->iova;
	get->size = rq->length;
	get->bitmap.pgsize = c->pgsize;
	get->bitmap.size = vmig_bitmap_bytes(bits);
	get->bitmap.data = (__u64 *)kbuf;
	ret = t1_ioctl(t, c->fd, VFIO_IOMMU_DIRTY_PAGES, db);
	if (ret < 0)
		return ret;
	return t1_finish(t, c, rq, bitmap, kbuf);
}

static int t1_unmap_prepare(void *instance, const struct vmig_read *rq,
			    uint64_t *bitmap, uint32_t *flags)
{
	struct t1 *t = instance;
	struct t1_container *c;
	uint64_t *kbuf, bits;
	uint64_t raw[(sizeof(struct vfio_iommu_type1_dma_unmap) +
		      sizeof(struct vfio_bitmap)) / 8];
	struct vfio_iommu_type1_dma_unmap *unmap = (void *)raw;
	struct vfio_bitmap *vb = (void *)(raw + 3);
	int ret;

	ret = t1_prepare(t, rq, bitmap, &c, &kbuf, &bits);
	if (ret < 0)
		return ret;
	/* Not tracking: nothing to harvest; let the caller unmap. */
	if (!c->started)
		return 0;
	memset(raw, 0, sizeof(raw));
	unmap->argsz = sizeof(raw);
	unmap->flags = VFIO_DMA_UNMAP_FLAG_GET_DIRTY_BITMAP;
	unmap->iova = rq->iova;
	unmap->size = rq->length;
	vb->pgsize = c->pgsize;
	vb->size = vmig_bitmap_bytes(bits);
	vb->data = (__u64 *)kbuf;
	ret = t1_ioctl(t, c->fd, VFIO_IOMMU_UNMAP_DMA, unmap);
	if (ret < 0)
		return ret;
	*flags |= VMIG_UNMAP_DONE;
	if (unmap->size != rq->length)
		vmig_host_logf(t->host, VMIG_LOG_WARN,
			       "container %u: unmap of 0x%llx+0x%llx removed "
			       "0x%llx bytes",
			       c->iommu_id, (unsigned long long)rq->iova,
			       (unsigned long long)rq->length,
			       (unsigned long long)unmap->size);
	return t1_finish(t, c, rq, bitmap, kbuf);
}

static int t1_status(void *instance, uint32_t device_id,
		     struct vmig_probe *out)
{
	struct t1 *t = instance;
	struct t1_device *d = t1_device_find(t, device_id);

	if (!d)
		return -ENOENT;
	t1_explain(d->c->iommu_id, d->kind, t1_precision(t, d->c), out);
	return 0;
}

/* A device left the session: it no longer widens its container's bits. */
static void t1_device_gone(void *instance, uint32_t device_id)
{
	(void)t1_pci_note(instance, 0, device_id, true);
}

static const struct vmig_source_ops t1_ops = {
	.size = sizeof(struct vmig_source_ops),
	.create = t1_create,
	.destroy = t1_destroy,
	.probe = t1_probe,
	.attach = t1_attach,
	.detach = t1_detach,
	.start = t1_start,
	.stop = t1_stop,
	.read = t1_read,
	.unmap_prepare = t1_unmap_prepare,
	.status = t1_status,
	.device_gone = t1_device_gone,
};

static const struct vmig_plugin t1_plugin = {
	.size = sizeof(struct vmig_plugin),
	.abi_major = VMIG_PLUGIN_ABI_MAJOR,
	.abi_minor = VMIG_PLUGIN_ABI_MINOR,
	.name = "vfio-type1",
	.version = VMIG_VERSION_STRING,
	.description = "VFIO type1 container dirty bitmaps "
		       "(VFIO_IOMMU_DIRTY_PAGES)",
	.device_kinds = VMIG_KIND_BIT(VMIG_DEVICE_VFIO_PCI) |
			VMIG_KIND_BIT(VMIG_DEVICE_MDEV),
	.iommu_kinds = VMIG_KIND_BIT(VMIG_IOMMU_TYPE1),
	.precision = VMIG_PRECISION_EXACT,
	/* Any power of two from 4 KiB: bits are converted as needed. */
	.page_sizes = ~((1ull << 12) - 1),
	.max_read_bytes = 256ull << 20,
	.ops = &t1_ops,
};

VMIG_PLUGIN_EXPORT const struct vmig_plugin *
VMIG_PLUGIN_ENTRY(const struct vmig_host *host, uint32_t abi_major)
{
	(void)host;
	if (abi_major != VMIG_PLUGIN_ABI_MAJOR)
		return NULL;
	return &t1_plugin;
}
