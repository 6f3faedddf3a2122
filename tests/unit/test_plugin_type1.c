/*
 * test_plugin_type1.c: the vfio-type1 plugin against the simulated kernel.
 *
 * The plugin is loaded as it ships (dlopen of vmig-vfio-type1.so) and its
 * operations are driven directly, with ksim as the kernel: discovery of
 * the migration capability, precision per scope, start/read/stop, unmap
 * with bitmap, page-size conversion and the kernel's errors.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/bitmap.h"
#include <vmig/linux-uapi.h>
#include "ksim/ksim.h"
#include "unit/testutil.h"
#include "unit/plugutil.h"
#include "unit/ksimutil.h"

#define PG 4096u
#define MEM_PAGES 256u

VMIG_TEST_PLUGIN_SUITE("vmig-vfio-type1.so")

/* One simulated host: a container with groups, memory mapped into it. */
struct rig {
	struct ksim *k;
	const struct vmig_host *h;
	struct vmig_host host; /* what the plugin gets: kernel + log */
	uint8_t *mem;
	int container;
	int groups[4];
	int ngroups;
	struct vmig_iommu_desc io;
	void *inst;
	char log[4096];
};

static void rig_log(void *ctx, int level, const char *msg)
{
	struct rig *r = ctx;

	(void)level;
	vmig_test_log_append(r->log, sizeof(r->log), msg);
}

static int kio(struct rig *r, int fd, unsigned long req, void *arg)
{
	return r->h->ioctl(r->h->kctx, fd, req, arg);
}

static void rig_init(struct rig *r, uint64_t pgsize, bool compat)
{
	struct ksim_params kp = { .type1_pgsize = pgsize,
				  .iommufd_compat = compat };

	memset(r, 0, sizeof(*r));
	CU_ASSERT_FATAL(ksim_new(&kp, &r->k) == 0);
	r->h = ksim_host(r->k);
	r->host = *r->h;
	r->host.ctx = r;
	r->host.log = rig_log;
	r->mem = vmig_test_guest_mem(MEM_PAGES * PG, 1 << 20);
	r->container = r->h->open(r->h->kctx, "/dev/vfio/vfio", 2);
	CU_ASSERT_FATAL(r->container >= 0);
	r->io.size = sizeof(r->io);
	r->io.id = 7;
	r->io.kind = VMIG_IOMMU_TYPE1;
	r->io.fd = r->container;
}

/* Adds a device in its own group to the container. */
static struct ksim_device *rig_device(struct rig *r, const char *name,
				      enum ksim_device_kind kind, int group,
				      bool pins, uint32_t iommu_type)
{
	struct ksim_device_params dp = {
		.name = name,
		.kind = kind,
		.group = group,
		.pins_pages = pins,
	};
	struct ksim_device *d;
	int gfd, dfd;

	/* The device fd stays open: a device works only while it is. */
	vmig_test_type1_device(r->k, r->h, r->container, &dp,
			       r->ngroups == 0 ? iommu_type : 0, &d, &gfd,
			       &dfd);
	r->groups[r->ngroups++] = gfd;
	return d;
}

static void rig_map(struct rig *r, uint64_t iova, uint64_t page,
		    uint64_t npages)
{
	vmig_test_type1_map(r->h, r->container, r->mem + page * PG, iova,
			    npages * PG);
}

static void rig_fini(struct rig *r)
{
	vmig_test_plugin_host_free(plug, r->inst, r->k, r->mem);
}

static struct vmig_device_desc desc_of(struct rig *r, uint32_t id,
				       uint32_t kind)
{
	return vmig_test_device_desc(id, "dev", kind, -1, -1, &r->io);
}

static int do_read(struct rig *r, uint64_t iova, uint64_t len,
		   uint64_t pgsize, uint32_t flags, uint64_t *bm)
{
	return vmig_test_plugin_read(plug, r->inst, r->io.id, iova, len, pgsize,
				     flags, bm);
}

/* ------------------------------------------------------------------ */

static void test_descriptor(void)
{
	CU_ASSERT_STRING_EQUAL(plug->name, "vfio-type1");
	CU_ASSERT_EQUAL(plug->abi_major, VMIG_PLUGIN_ABI_MAJOR);
	CU_ASSERT(plug->device_kinds & VMIG_KIND_BIT(VMIG_DEVICE_VFIO_PCI));
	CU_ASSERT(plug->device_kinds & VMIG_KIND_BIT(VMIG_DEVICE_MDEV));
	CU_ASSERT_EQUAL(plug->iommu_kinds, VMIG_KIND_BIT(VMIG_IOMMU_TYPE1));
	CU_ASSERT(plug->page_sizes & PG);
	CU_ASSERT_FALSE(plug->flags & VMIG_PLUGIN_READ_NO_CLEAR);
	/* Another ABI major is refused by the plugin itself. */
	vmig_test_plugin_refuses_next_major(dl);
}

static void test_probe(void)
{
	struct rig r;
	struct vmig_device_desc d;
	struct vmig_probe p = { .size = sizeof(p) };
	struct vmig_iommu_desc other = { .size = sizeof(other), .id = 9,
					 .kind = VMIG_IOMMU_IOMMUFD, .fd = 3 };

	rig_init(&r, 0, false);
	rig_device(&r, "0000:01:00.0", KSIM_DEV_PCI, 1, false,
		   VFIO_TYPE1v2_IOMMU);
	CU_ASSERT_FATAL(plug->ops->create(&r.host, &r.inst) == 0);

	d = desc_of(&r, 1, VMIG_DEVICE_VFIO_PCI);
	CU_ASSERT_EQUAL(plug->ops->probe(r.inst, &d, &p), 0);
	CU_ASSERT_EQUAL(p.precision, VMIG_PRECISION_ALL_MAPPED);
	CU_ASSERT_PTR_NOT_NULL(strstr(p.reason, "every mapped page"));

	memset(&p, 0, sizeof(p));
	p.size = sizeof(p);
	d = desc_of(&r, 2, VMIG_DEVICE_MDEV);
	CU_ASSERT_EQUAL(plug->ops->probe(r.inst, &d, &p), 0);
	/*
	 * The vfio-pci device probed above shares the container: whoever
	 * tracks it, the kernel reports every mapped page there.
	 */
	CU_ASSERT_EQUAL(p.precision, VMIG_PRECISION_ALL_MAPPED);
	CU_ASSERT_PTR_NOT_NULL(strstr(p.reason, "a vfio-pci group is in"));

	memset(&p, 0, sizeof(p));
	p.size = sizeof(p);
	d.iommu = &other;
	CU_ASSERT_EQUAL(plug->ops->probe(r.inst, &d, &p), 0);
	CU_ASSERT_EQUAL(p.precision, VMIG_PRECISION_NONE);
	CU_ASSERT_PTR_NOT_NULL(strstr(p.reason, "type1"));
	rig_fini(&r);
}

/* iommufd's /dev/vfio/vfio has no migration capability: declined. */
static void test_probe_compat_container(void)
{
	struct rig r;
	struct vmig_device_desc d;
	struct vmig_probe p = { .size = sizeof(p) };

	rig_init(&r, 0, true);
	rig_device(&r, "0000:01:00.0", KSIM_DEV_PCI, 1, false,
		   VFIO_TYPE1v2_IOMMU);
	CU_ASSERT_FATAL(plug->ops->create(&r.host, &r.inst) == 0);
	d = desc_of(&r, 1, VMIG_DEVICE_VFIO_PCI);
	CU_ASSERT_EQUAL(plug->ops->probe(r.inst, &d, &p), 0);
	CU_ASSERT_EQUAL(p.precision, VMIG_PRECISION_NONE);
	CU_ASSERT_PTR_NOT_NULL(strstr(p.reason, "migration capability"));
	/* Attaching anyway fails: there is nothing to track with. */
	CU_ASSERT(plug->ops->attach(r.inst, &d) < 0);
	rig_fini(&r);
}

/*
 * A plain vfio-pci group: every page dirty on every read. The plugin sets
 * them itself (the kernel's bitmap lacks the device's writes once a
 * driver that pins pages moves the group into pinned scope), so a hole
 * in the range asked for reads dirty too: vmig reads mapping by mapping.
 */
static void test_pci_everything_mapped(void)
{
	struct rig r;
	struct vmig_device_desc d;
	struct ksim_device *dev;
	uint64_t bm[MEM_PAGES / 64];
	int round;

	rig_init(&r, 0, false);
	dev = rig_device(&r, "0000:01:00.0", KSIM_DEV_PCI, 1, false,
			 VFIO_TYPE1v2_IOMMU);
	rig_map(&r, 0, 0, 64);
	rig_map(&r, 128 * PG, 128, 64); /* a hole of 64 pages between */
	CU_ASSERT_FATAL(plug->ops->create(&r.host, &r.inst) == 0);
	d = desc_of(&r, 1, VMIG_DEVICE_VFIO_PCI);
	CU_ASSERT_FATAL(plug->ops->attach(r.inst, &d) == 0);
	/* Reading before start is refused. */
	CU_ASSERT_EQUAL(do_read(&r, 0, 64 * PG, PG, 0, bm), -EINVAL);
	CU_ASSERT_FATAL(plug->ops->start(r.inst, PG) == 0);

	for (round = 0; round < 3; round++) {
		if (round == 1)
			CU_ASSERT(ksim_dma_write(dev, 5 * PG, NULL, 100) == 0);
		CU_ASSERT_EQUAL(do_read(&r, 0, 192 * PG, PG, 0, bm), 0);
		CU_ASSERT_EQUAL(vmig_bitmap_count(bm, 0, 64), 64);
		CU_ASSERT_EQUAL(vmig_bitmap_count(bm, 64, 64), 64); /* hole */
		CU_ASSERT_EQUAL(vmig_bitmap_count(bm, 128, 64), 64);
	}
	CU_ASSERT_EQUAL(plug->ops->stop(r.inst), 0);
	CU_ASSERT_EQUAL(do_read(&r, 0, 64 * PG, PG, 0, bm), -EINVAL);
	rig_fini(&r);
}

/* An mdev-only container: exactly the pinned pages and the writes. */
static void test_mdev_pinned_scope(void)
{
	struct rig r;
	struct vmig_device_desc d;
	struct vmig_probe st = { .size = sizeof(st) };
	struct ksim_device *dev;
	uint64_t bm[MEM_PAGES / 64];

	rig_init(&r, 0, false);
	dev = rig_device(&r, "mdev-0", KSIM_DEV_MDEV, 2, false,
			 VFIO_TYPE1v2_IOMMU);
	rig_map(&r, 0, 0, 128);
	CU_ASSERT_FATAL(plug->ops->create(&r.host, &r.inst) == 0);
	d = desc_of(&r, 1, VMIG_DEVICE_MDEV);
	CU_ASSERT_FATAL(plug->ops->attach(r.inst, &d) == 0);
	CU_ASSERT_FATAL(plug->ops->start(r.inst, PG) == 0);
	CU_ASSERT_EQUAL(plug->ops->status(r.inst, 1, &st), 0);
	CU_ASSERT_EQUAL(st.precision, VMIG_PRECISION_EXACT);

	CU_ASSERT_FATAL(ksim_pin(dev, 10 * PG, 2) == 0);
	CU_ASSERT_FATAL(ksim_dma_write(dev, 40 * PG + 7, NULL, PG) == 0);
	CU_ASSERT_EQUAL(do_read(&r, 0, 128 * PG, PG, 0, bm), 0);
	CU_ASSERT_EQUAL(vmig_bitmap_count(bm, 0, 128), 4);
	CU_ASSERT(vmig_bitmap_test(bm, 10) && vmig_bitmap_test(bm, 11));
	CU_ASSERT(vmig_bitmap_test(bm, 40) && vmig_bitmap_test(bm, 41));
	/* Pinned pages come back on every read; the write does not. */
	CU_ASSERT_EQUAL(do_read(&r, 0, 128 * PG, PG, 0, bm), 0);
	CU_ASSERT_EQUAL(vmig_bitmap_count(bm, 0, 128), 2);
	CU_ASSERT(vmig_bitmap_test(bm, 10) && vmig_bitmap_test(bm, 11));
	/*
	 * Each read resets the log to the pages pinned then, so an unpinned
	 * page is reported once more (a superset, as the kernel does).
	 */
	CU_ASSERT_EQUAL(ksim_unpin(dev, 10 * PG, 2), 0);
	CU_ASSERT_EQUAL(do_read(&r, 0, 128 * PG, PG, 0, bm), 0);
	CU_ASSERT_EQUAL(vmig_bitmap_count(bm, 0, 128), 2);
	CU_ASSERT_EQUAL(do_read(&r, 0, 128 * PG, PG, 0, bm), 0);
	CU_ASSERT_EQUAL(vmig_bitmap_count(bm, 0, 128), 0);

	/* A vfio-pci group joining the container ends pinned scope. */
	rig_device(&r, "0000:02:00.0", KSIM_DEV_PCI, 3, false,
		   VFIO_TYPE1v2_IOMMU);
	d = desc_of(&r, 2, VMIG_DEVICE_VFIO_PCI);
	CU_ASSERT_FATAL(plug->ops->attach(r.inst, &d) == 0);
	CU_ASSERT_EQUAL(plug->ops->status(r.inst, 1, &st), 0);
	CU_ASSERT_EQUAL(st.precision, VMIG_PRECISION_ALL_MAPPED);
	CU_ASSERT_EQUAL(do_read(&r, 0, 128 * PG, PG, 0, bm), 0);
	CU_ASSERT_EQUAL(vmig_bitmap_count(bm, 0, 128), 128);
	CU_ASSERT_EQUAL(plug->ops->detach(r.inst, 2), 0);
	CU_ASSERT_EQUAL(plug->ops->status(r.inst, 1, &st), 0);
	CU_ASSERT_EQUAL(st.precision, VMIG_PRECISION_EXACT);
	CU_ASSERT_EQUAL(plug->ops->detach(r.inst, 2), -ENOENT);
	rig_fini(&r);
}

/* Unmap with bitmap: the bits come back and the range is gone. */
static void test_unmap_harvest(void)
{
	struct rig r;
	struct vmig_device_desc d;
	struct ksim_device *dev;
	uint64_t bm[MEM_PAGES / 64];
	uint32_t flags = 0;
	struct vmig_read rq = vmig_test_read_rq(7, 64 * PG, 64 * PG, PG, 0);

	rig_init(&r, 0, false);
	dev = rig_device(&r, "mdev-0", KSIM_DEV_MDEV, 2, false,
			 VFIO_TYPE1v2_IOMMU);
	rig_map(&r, 0, 0, 64);
	rig_map(&r, 64 * PG, 64, 64);
	CU_ASSERT_FATAL(plug->ops->create(&r.host, &r.inst) == 0);
	d = desc_of(&r, 1, VMIG_DEVICE_MDEV);
	CU_ASSERT_FATAL(plug->ops->attach(r.inst, &d) == 0);

	/* Not tracking: nothing harvested, nothing unmapped. */
	memset(bm, 0, sizeof(bm));
	CU_ASSERT_EQUAL(plug->ops->unmap_prepare(r.inst, &rq, bm, &flags), 0);
	CU_ASSERT_EQUAL(flags, 0);

	CU_ASSERT_FATAL(plug->ops->start(r.inst, PG) == 0);
	CU_ASSERT_FATAL(ksim_dma_write(dev, 70 * PG, NULL, 3 * PG) == 0);
	CU_ASSERT_FATAL(ksim_dma_write(dev, 3 * PG, NULL, 8) == 0);
	memset(bm, 0, sizeof(bm));
	CU_ASSERT_EQUAL(plug->ops->unmap_prepare(r.inst, &rq, bm, &flags), 0);
	CU_ASSERT(flags & VMIG_UNMAP_DONE);
	/* Bits relative to the unmapped range: pages 70..72 are 6..8. */
	CU_ASSERT_EQUAL(vmig_bitmap_count(bm, 0, 64), 3);
	CU_ASSERT(vmig_bitmap_test(bm, 6) && vmig_bitmap_test(bm, 8));
	/* The range is unmapped: the device faults there now. */
	CU_ASSERT_EQUAL(ksim_dma_write(dev, 70 * PG, NULL, 8), -EFAULT);
	/* The other mapping still has its own bit. */
	CU_ASSERT_EQUAL(do_read(&r, 0, 64 * PG, PG, 0, bm), 0);
	CU_ASSERT_EQUAL(vmig_bitmap_count(bm, 0, 64), 1);
	CU_ASSERT(vmig_bitmap_test(bm, 3));
	rig_fini(&r);
}

/*
 * A container whose smallest IOMMU page is 16 KiB, read at 4 KiB. An
 * mdev-only container has no IOMMU domain (4 KiB granule), so the device
 * is a vfio-pci one whose driver pins pages: pinned scope, 16 KiB. The
 * kernel's bitmap then has only the pinned granules, never the device's
 * own DMA, so the plugin reports every page (all mapped): the granule's
 * rules still hold for the request.
 */
static void test_coarse_granule(void)
{
	struct rig r;
	struct vmig_device_desc d;
	struct ksim_device *dev;
	uint64_t bm[MEM_PAGES / 64];

	rig_init(&r, 16384, false);
	dev = rig_device(&r, "0000:01:00.0", KSIM_DEV_PCI, 1, true,
			 VFIO_TYPE1v2_IOMMU);
	rig_map(&r, 0, 0, 128);
	CU_ASSERT_FATAL(plug->ops->create(&r.host, &r.inst) == 0);
	d = desc_of(&r, 1, VMIG_DEVICE_VFIO_PCI);
	CU_ASSERT_FATAL(plug->ops->attach(r.inst, &d) == 0);
	CU_ASSERT_FATAL(plug->ops->start(r.inst, PG) == 0);
	CU_ASSERT_FATAL(ksim_pin(dev, 9 * PG, 1) == 0);
	CU_ASSERT_EQUAL(do_read(&r, 0, 128 * PG, PG, 0, bm), 0);
	/* Page 9 is pinned; page 100 written by DMA, and still reported. */
	CU_ASSERT_FATAL(ksim_dma_write(dev, 100 * PG, NULL, 8) == 0);
	CU_ASSERT_EQUAL(vmig_bitmap_count(bm, 0, 128), 128);
	/* A range not aligned to the granule cannot be read. */
	CU_ASSERT_EQUAL(do_read(&r, 4 * PG, 8 * PG, PG, 0, bm), -EINVAL);

	/* Read at a coarser page size than the kernel's: ORed. */
	CU_ASSERT_FATAL(ksim_unpin(dev, 9 * PG, 1) == 0);
	CU_ASSERT_EQUAL(do_read(&r, 0, 128 * PG, PG, 0, bm), 0);
	CU_ASSERT_FATAL(ksim_pin(dev, 33 * PG, 1) == 0);
	CU_ASSERT_EQUAL(do_read(&r, 0, 128 * PG, 65536, 0, bm), 0);
	CU_ASSERT_EQUAL(vmig_bitmap_count(bm, 0, 8), 8);
	rig_fini(&r);
}

static void test_errors(void)
{
	struct rig r;
	struct vmig_device_desc d;
	uint64_t bm[MEM_PAGES / 64];
	struct vmig_read rq = { .size = sizeof(rq), .iommu_id = 99,
				.length = PG, .page_size = PG };

	rig_init(&r, 0, false);
	rig_device(&r, "0000:01:00.0", KSIM_DEV_PCI, 1, false,
		   VFIO_TYPE1v2_IOMMU);
	rig_map(&r, 0, 0, 64);
	CU_ASSERT_FATAL(plug->ops->create(&r.host, &r.inst) == 0);
	d = desc_of(&r, 1, VMIG_DEVICE_VFIO_PCI);
	CU_ASSERT_FATAL(plug->ops->attach(r.inst, &d) == 0);
	CU_ASSERT_EQUAL(plug->ops->attach(r.inst, &d), -EEXIST);
	CU_ASSERT_FATAL(plug->ops->start(r.inst, PG) == 0);

	CU_ASSERT_EQUAL(plug->ops->read(r.inst, &rq, bm), -ENOENT);
	CU_ASSERT_EQUAL(do_read(&r, 0, 64 * PG, PG, VMIG_READ_NO_CLEAR, bm),
			-ENOTSUP);
	CU_ASSERT_EQUAL(do_read(&r, 0, 64 * PG, PG, 0x80, bm), -EINVAL);
	CU_ASSERT_EQUAL(do_read(&r, 100, 64 * PG, PG, 0, bm), -EINVAL);
	CU_ASSERT_EQUAL(do_read(&r, 0, 64 * PG, 3000, 0, bm), -EINVAL);
	/* Bisecting a mapping: the kernel's EINVAL comes through. */
	CU_ASSERT_EQUAL(do_read(&r, 0, 32 * PG, PG, 0, bm), -EINVAL);
	/* A kernel failure on the read is returned as is. */
	ksim_fail_request(r.k, VFIO_IOMMU_DIRTY_PAGES, EIO, 1);
	CU_ASSERT_EQUAL(do_read(&r, 0, 64 * PG, PG, 0, bm), -EIO);
	CU_ASSERT_EQUAL(do_read(&r, 0, 64 * PG, PG, 0, bm), 0);
	CU_ASSERT_EQUAL(vmig_bitmap_count(bm, 0, 64), 64);
	rig_fini(&r);
}

/* A type1 (v1) container: the kernel refuses dirty tracking. */
static void test_type1_v1_refused(void)
{
	struct rig r;
	struct vmig_device_desc d;

	rig_init(&r, 0, false);
	rig_device(&r, "0000:01:00.0", KSIM_DEV_PCI, 1, false,
		   VFIO_TYPE1_IOMMU);
	CU_ASSERT_FATAL(plug->ops->create(&r.host, &r.inst) == 0);
	d = desc_of(&r, 1, VMIG_DEVICE_VFIO_PCI);
	CU_ASSERT_FATAL(plug->ops->attach(r.inst, &d) == 0);
	CU_ASSERT_EQUAL(plug->ops->start(r.inst, PG), -EACCES);
	CU_ASSERT_PTR_NOT_NULL(strstr(r.log, "type1v2"));
	rig_fini(&r);
}

/* Detaching the last device stops the container's tracking. */
static void test_detach_stops(void)
{
	struct rig r;
	struct vmig_device_desc d;
	uint64_t bmw[1] = { 0 };
	uint64_t raw[6];
	struct vfio_iommu_type1_dirty_bitmap *db = (void *)raw;
	struct vfio_iommu_type1_dirty_bitmap_get *get = (void *)(raw + 1);

	rig_init(&r, 0, false);
	rig_device(&r, "mdev-0", KSIM_DEV_MDEV, 2, false, VFIO_TYPE1v2_IOMMU);
	rig_map(&r, 0, 0, 64);
	CU_ASSERT_FATAL(plug->ops->create(&r.host, &r.inst) == 0);
	d = desc_of(&r, 1, VMIG_DEVICE_MDEV);
	CU_ASSERT_FATAL(plug->ops->attach(r.inst, &d) == 0);
	CU_ASSERT_FATAL(plug->ops->start(r.inst, PG) == 0);

	memset(raw, 0, sizeof(raw));
	db->argsz = sizeof(raw);
	db->flags = VFIO_IOMMU_DIRTY_PAGES_FLAG_GET_BITMAP;
	get->iova = 0;
	get->size = 64 * PG;
	get->bitmap.pgsize = PG;
	get->bitmap.size = 8;
	get->bitmap.data = (__u64 *)bmw;
	CU_ASSERT_EQUAL(kio(&r, r.container, VFIO_IOMMU_DIRTY_PAGES, db), 0);
	CU_ASSERT_EQUAL(plug->ops->detach(r.inst, 1), 0);
	/* The kernel is no longer tracking: GET_BITMAP is refused. */
	CU_ASSERT_EQUAL(kio(&r, r.container, VFIO_IOMMU_DIRTY_PAGES, db),
			-EINVAL);
	rig_fini(&r);
}

static CU_TestInfo tests[] = {
	{ "descriptor", test_descriptor },
	{ "probe", test_probe },
	{ "probe: iommufd compatibility container", test_probe_compat_container },
	{ "vfio-pci: every mapped page", test_pci_everything_mapped },
	{ "mdev: pinned scope", test_mdev_pinned_scope },
	{ "unmap with bitmap", test_unmap_harvest },
	{ "coarse IOMMU page", test_coarse_granule },
	{ "errors", test_errors },
	{ "type1 v1 refused", test_type1_v1_refused },
	{ "detach stops tracking", test_detach_stops },
	CU_TEST_INFO_NULL,
};

VMIG_TEST_MAIN_SUITE(VMIG_SUITE_INIT("vfio-type1", suite_init, suite_fini,
				     tests))
