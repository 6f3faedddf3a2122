/*
 * test_plugin_iommufd.c: the iommufd plugin against the simulated kernel.
 *
 * The plugin is loaded as it ships (dlopen of vmig-iommufd.so) and its
 * operations are driven directly, with ksim as the kernel and the devices
 * set up as vmig's core does it (cdev, BIND, ATTACH to the IOAS): probe
 * and its decline reasons, HWPT placement checked against the simulator,
 * start/read/stop against the ground truth, holes, NO_CLEAR and the
 * unmap flow, huge and mock IOPTEs, hot-plug while tracking, IOMMU groups
 * and what the plugin returns for each kernel error it can meet. Then a
 * device's PASID domains, with the simulator's PASID attach of kernels
 * newer than 6.12 (ksim_iommufd_set_pasid_attach) and without it (6.12).
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

#define PG 4096ull
#define MiB (1ull << 20)
#define IO_ID 7u

VMIG_TEST_PLUGIN_SUITE("vmig-iommufd.so")

/* A simulated host: an iommufd, one IOAS, guest memory, devices. */
struct rig {
	struct ksim *k;
	const struct vmig_host *h;
	struct vmig_host host; /* what the plugin gets: kernel + log */
	int fd;
	uint32_t ioas;
	struct vmig_iommu_desc io;
	uint8_t *mem;
	uint64_t memsize;
	void *inst;
	char log[8192];
	/* The requests the plugin made, in order. */
	unsigned long reqs[256];
	unsigned int nr_reqs;
};

static struct rig *the_rig; /* for the recording ioctl */

static void rig_log(void *ctx, int level, const char *msg)
{
	struct rig *r = ctx;

	(void)level;
	vmig_test_log_append(r->log, sizeof(r->log), msg);
}

static int rec_ioctl(void *kctx, int fd, unsigned long req, void *arg)
{
	struct rig *r = the_rig;

	if (r->nr_reqs < sizeof(r->reqs) / sizeof(r->reqs[0]))
		r->reqs[r->nr_reqs++] = req;
	return r->h->ioctl(kctx, fd, req, arg);
}

static int kio(struct rig *r, int fd, unsigned long req, void *arg)
{
	return r->h->ioctl(r->h->kctx, fd, req, arg);
}

static void rig_init(struct rig *r, uint64_t memsize)
{
	struct vk_iommu_ioas_alloc a = { .size = sizeof(a) };

	memset(r, 0, sizeof(*r));
	the_rig = r;
	CU_ASSERT_FATAL(ksim_new(NULL, &r->k) == 0);
	r->h = ksim_host(r->k);
	r->host = *r->h;
	r->host.ctx = r;
	r->host.log = rig_log;
	r->host.ioctl = rec_ioctl;
	r->memsize = memsize;
	r->mem = vmig_test_guest_mem(memsize, 2 * MiB);
	r->fd = r->h->open(r->h->kctx, "/dev/iommu", 2);
	CU_ASSERT_FATAL(r->fd >= 0);
	CU_ASSERT_FATAL(kio(r, r->fd, VK_IOMMU_IOAS_ALLOC, &a) == 0);
	r->ioas = a.out_ioas_id;
	r->io.size = sizeof(r->io);
	r->io.id = IO_ID;
	r->io.kind = VMIG_IOMMU_IOMMUFD;
	r->io.fd = r->fd;
	r->io.ioas_id = r->ioas;
	CU_ASSERT_FATAL(plug->ops->create(&r->host, &r->inst) == 0);
}

static void rig_fini(struct rig *r)
{
	vmig_test_plugin_host_free(plug, r->inst, r->k, r->mem);
}

/* Maps len bytes of guest memory at offset off to iova (read/write). */
static int rig_map(struct rig *r, uint64_t iova, uint64_t off, uint64_t len)
{
	struct vk_iommu_ioas_map m = {
		.size = sizeof(m),
		.flags = VK_IOMMU_IOAS_MAP_FIXED_IOVA |
			 VK_IOMMU_IOAS_MAP_READABLE |
			 VK_IOMMU_IOAS_MAP_WRITEABLE,
		.ioas_id = r->ioas,
		.user_va = (uintptr_t)(r->mem + off),
		.length = len,
		.iova = iova,
	};

	return kio(r, r->fd, VK_IOMMU_IOAS_MAP, &m);
}

static int rig_unmap(struct rig *r, uint64_t iova, uint64_t len)
{
	struct vk_iommu_ioas_unmap u = { .size = sizeof(u),
					 .ioas_id = r->ioas, .iova = iova,
					 .length = len };

	return kio(r, r->fd, VK_IOMMU_IOAS_UNMAP, &u);
}

/* A simulated device with a cdev, reached as vmig's setup reaches it. */
struct dev {
	struct ksim_device *k;
	struct vmig_device_desc desc;
	int dfd;
};

static void dev_add(struct rig *r, struct dev *d, uint32_t id,
		    const char *name, enum ksim_device_kind kind, int group,
		    const struct ksim_iommufd_device_params *ip)
{
	struct ksim_device_params p = { .name = name, .kind = kind,
					.group = group, .iommufd = *ip };
	struct vk_vfio_device_bind_iommufd b = { .argsz = sizeof(b),
						 .iommufd = r->fd };
	struct vk_vfio_device_attach_iommufd_pt a = { .argsz = sizeof(a),
						      .pt_id = r->ioas };
	char path[48];

	memset(d, 0, sizeof(*d));
	CU_ASSERT_FATAL(ip->cdev);
	CU_ASSERT_FATAL(ksim_device_add(r->k, &p, &d->k) == 0);
	snprintf(path, sizeof(path), "/dev/vfio/devices/vfio%u",
		 ip->cdev_index);
	d->dfd = r->h->open(r->h->kctx, path, 2);
	CU_ASSERT_FATAL(d->dfd >= 0);
	CU_ASSERT_FATAL(kio(r, d->dfd, VK_VFIO_DEVICE_BIND_IOMMUFD, &b) == 0);
	CU_ASSERT_FATAL(kio(r, d->dfd, VK_VFIO_DEVICE_ATTACH_IOMMUFD_PT, &a) ==
			0);
	d->desc = vmig_test_device_desc(
		id, name,
		kind == KSIM_DEV_MDEV ? VMIG_DEVICE_MDEV : VMIG_DEVICE_VFIO_PCI,
		d->dfd, -1, &r->io);
	d->desc.address = name;
	d->desc.iommufd_id = b.out_devid;
}

static void dev_intel(struct rig *r, struct dev *d, uint32_t id, int cdev,
		      bool dirty)
{
	struct ksim_iommufd_device_params ip = {
		.cdev = true, .cdev_index = (uint32_t)cdev,
		.dirty_tracking = dirty,
	};
	char name[32];

	snprintf(name, sizeof(name), "0000:%02x:00.0", cdev + 1);
	dev_add(r, d, id, strdup(name), KSIM_DEV_PCI, -1, &ip);
}

static void dev_mock(struct rig *r, struct dev *d, uint32_t id, int cdev,
		     bool huge)
{
	struct ksim_iommufd_device_params ip = {
		.cdev = true, .cdev_index = (uint32_t)cdev,
		.model = KSIM_IOMMU_MOCK, .dirty_tracking = true,
		.mock_huge_iova = huge,
	};
	char name[32];

	snprintf(name, sizeof(name), "mock:%d", cdev);
	dev_add(r, d, id, strdup(name), KSIM_DEV_PCI, -1, &ip);
}

static void dev_free_name(struct dev *d)
{
	free((char *)d->desc.name);
}

static struct ksim_iommufd_attachment where(struct dev *d)
{
	struct ksim_iommufd_attachment a;

	CU_ASSERT(ksim_iommufd_attachment(d->k, 0, &a) == 0);
	return a;
}

static struct vmig_read rq_of(uint64_t iova, uint64_t len, uint64_t pgsize,
			      uint32_t flags)
{
	return vmig_test_read_rq(IO_ID, iova, len, pgsize, flags);
}

static int do_read(struct rig *r, uint64_t iova, uint64_t len,
		   uint64_t pgsize, uint32_t flags, uint64_t *bm)
{
	return vmig_test_plugin_read(plug, r->inst, r->io.id, iova, len, pgsize,
				     flags, bm);
}

static int destroy_id(struct rig *r, uint32_t id)
{
	struct vk_iommu_destroy d = { .size = sizeof(d), .id = id };

	return kio(r, r->fd, VK_IOMMU_DESTROY, &d);
}

/* The page bits of every write drained, relative to base. */
struct truth {
	uint64_t base;
	uint64_t *bm;
	uint64_t nbits;
};

static void truth_fn(void *opaque, const struct ksim_write *w)
{
	struct truth *t = opaque;
	uint64_t p;

	for (p = (w->iova - t->base) / PG;
	     p <= (w->iova + w->len - 1 - t->base) / PG && p < t->nbits; p++)
		t->bm[p / 64] |= 1ull << (p % 64);
}

/* ------------------------------------------------------------------ */

static void test_descriptor(void)
{
	CU_ASSERT_STRING_EQUAL(plug->name, "iommufd");
	CU_ASSERT_EQUAL(plug->abi_major, VMIG_PLUGIN_ABI_MAJOR);
	CU_ASSERT_EQUAL(plug->device_kinds,
			VMIG_KIND_BIT(VMIG_DEVICE_VFIO_PCI));
	CU_ASSERT_EQUAL(plug->iommu_kinds, VMIG_KIND_BIT(VMIG_IOMMU_IOMMUFD));
	CU_ASSERT_EQUAL(plug->precision, VMIG_PRECISION_EXACT);
	CU_ASSERT(plug->flags & VMIG_PLUGIN_READ_NO_CLEAR);
	/* Every power of two: 2 KiB (mock), 4 KiB, 2 MiB, 1 GiB... */
	CU_ASSERT(plug->page_sizes & 2048);
	CU_ASSERT(plug->page_sizes & PG);
	CU_ASSERT(plug->page_sizes & (1ull << 30));
	vmig_test_plugin_refuses_next_major(dl);
}

static void test_probe(void)
{
	struct vmig_iommu_desc t1 = { .size = sizeof(t1), .id = 3,
				      .kind = VMIG_IOMMU_TYPE1, .fd = 5 };
	struct ksim_iommufd_device_params mp = { .cdev = true,
						 .cdev_index = 2 };
	struct vmig_probe p;
	struct dev a, nd, m;
	unsigned int n;
	struct rig r;

	rig_init(&r, 64 * PG);
	dev_intel(&r, &a, 1, 0, true);
	dev_intel(&r, &nd, 2, 1, false);
	dev_add(&r, &m, 3, "mdev-0", KSIM_DEV_MDEV, -1, &mp);

	memset(&p, 0, sizeof(p));
	p.size = sizeof(p);
	CU_ASSERT(plug->ops->probe(r.inst, &a.desc, &p) == 0);
	/* No writable range holds a 2 MiB IOPTE: exact. */
	CU_ASSERT_EQUAL(p.precision, VMIG_PRECISION_EXACT);
	CU_ASSERT_PTR_NOT_NULL(strstr(p.reason, "no range holds"));
	/* A probe has no lasting effect. */
	CU_ASSERT(where(&a).auto_domain && !where(&a).dirty_capable);

	memset(&p, 0, sizeof(p));
	p.size = sizeof(p);
	CU_ASSERT(plug->ops->probe(r.inst, &nd.desc, &p) == 0);
	CU_ASSERT_EQUAL(p.precision, VMIG_PRECISION_NONE);
	CU_ASSERT_STRING_EQUAL(p.reason,
			       "the IOMMU has no dirty tracking "
			       "(IOMMU_HW_CAP_DIRTY_TRACKING clear)");

	/* The mdev is declined before any kernel call. */
	memset(&p, 0, sizeof(p));
	p.size = sizeof(p);
	n = r.nr_reqs;
	CU_ASSERT(plug->ops->probe(r.inst, &m.desc, &p) == 0);
	CU_ASSERT_EQUAL(p.precision, VMIG_PRECISION_NONE);
	CU_ASSERT_STRING_EQUAL(p.reason,
			       "an mdev is an emulated access: no IOMMU page "
			       "table sees its writes");
	CU_ASSERT_EQUAL(r.nr_reqs, n);

	memset(&p, 0, sizeof(p));
	p.size = sizeof(p);
	a.desc.iommu = &t1;
	CU_ASSERT(plug->ops->probe(r.inst, &a.desc, &p) == 0);
	CU_ASSERT_EQUAL(p.precision, VMIG_PRECISION_NONE);
	CU_ASSERT_PTR_NOT_NULL(strstr(p.reason, "iommufd"));
	a.desc.iommu = &r.io;
	CU_ASSERT(plug->ops->attach(r.inst, &m.desc) == -EINVAL);
	dev_free_name(&a);
	dev_free_name(&nd);
	rig_fini(&r);
}

/*
 * Placement: a compatible HWPT is reused, an incompatible one skipped,
 * a new one allocated; checked in the simulator.
 */
static void test_placement(void)
{
	struct dev a, b, c;
	uint32_t h1, h2;
	struct rig r;

	rig_init(&r, 64 * PG);
	CU_ASSERT(rig_map(&r, 0x1000000, 0, 64 * PG) == 0);
	dev_intel(&r, &a, 1, 0, true);
	dev_intel(&r, &b, 2, 1, true);
	dev_mock(&r, &c, 3, 2, false);
	CU_ASSERT(plug->ops->attach(r.inst, &a.desc) == 0);
	CU_ASSERT(plug->ops->attach(r.inst, &a.desc) == -EEXIST);
	h1 = where(&a).pt_id;
	CU_ASSERT(where(&a).dirty_capable && !where(&a).auto_domain);
	CU_ASSERT(where(&a).ioas_id == r.ioas);
	CU_ASSERT(plug->ops->attach(r.inst, &b.desc) == 0);
	CU_ASSERT_EQUAL(where(&b).pt_id, h1);
	/* The mock's IOMMU cannot take h1 (EINVAL): a HWPT of its own. */
	CU_ASSERT(plug->ops->attach(r.inst, &c.desc) == 0);
	h2 = where(&c).pt_id;
	CU_ASSERT(h2 != h1 && where(&c).dirty_capable);
	/* Detach: back to an automatic domain; empty HWPTs go. */
	CU_ASSERT(plug->ops->detach(r.inst, 2) == 0);
	CU_ASSERT(where(&b).auto_domain && where(&b).attached);
	CU_ASSERT_EQUAL(where(&a).pt_id, h1);
	CU_ASSERT(plug->ops->detach(r.inst, 1) == 0);
	CU_ASSERT(destroy_id(&r, h1) == -ENOENT);
	CU_ASSERT(plug->ops->detach(r.inst, 1) == -ENOENT);
	/* Destroying the instance puts the rest back too. */
	plug->ops->destroy(r.inst);
	r.inst = NULL;
	CU_ASSERT(where(&c).auto_domain);
	CU_ASSERT(destroy_id(&r, h2) == -ENOENT);
	dev_free_name(&a);
	dev_free_name(&b);
	dev_free_name(&c);
	rig_fini(&r);
}

static void test_start_read_stop(void)
{
	uint64_t bm[16], tb[4] = { 0 };
	struct truth t = { .base = 0x100000, .bm = tb, .nbits = 256 };
	struct vmig_probe st = { .size = sizeof(st) };
	struct dev a;
	struct rig r;

	rig_init(&r, 256 * PG);
	CU_ASSERT(rig_map(&r, 0x100000, 0, 256 * PG) == 0);
	dev_intel(&r, &a, 1, 0, true);
	CU_ASSERT(plug->ops->attach(r.inst, &a.desc) == 0);
	/* Before start: refused, not silently empty. */
	CU_ASSERT(do_read(&r, 0x100000, 256 * PG, PG, 0, bm) == -EINVAL);
	CU_ASSERT(plug->ops->start(r.inst, PG) == 0);
	CU_ASSERT(where(&a).tracking);
	CU_ASSERT(plug->ops->status(r.inst, 1, &st) == 0);
	CU_ASSERT_EQUAL(st.precision, VMIG_PRECISION_EXACT);
	CU_ASSERT(plug->ops->status(r.inst, 9, &st) == -ENOENT);
	/* Nothing written: nothing reported. */
	CU_ASSERT(do_read(&r, 0x100000, 256 * PG, PG, 0, bm) == 0);
	CU_ASSERT_EQUAL(vmig_bitmap_count(bm, 0, 256), 0);
	ksim_truth_drain(r.k, NULL, NULL);
	CU_ASSERT(ksim_dma_write(a.k, 0x100000 + 3 * PG + 9, "x", 1) == 0);
	CU_ASSERT(ksim_dma_write(a.k, 0x100000 + 40 * PG, NULL, 2 * PG) == 0);
	CU_ASSERT(ksim_dma_write(a.k, 0x100000 + 255 * PG, NULL, PG) == 0);
	CU_ASSERT(ksim_truth_drain(r.k, truth_fn, &t) == 3);
	CU_ASSERT(do_read(&r, 0x100000, 256 * PG, PG, 0, bm) == 0);
	CU_ASSERT(memcmp(bm, tb, sizeof(tb)) == 0);
	CU_ASSERT_EQUAL(vmig_bitmap_count(bm, 0, 256), 4);
	/* Read and cleared. */
	CU_ASSERT(do_read(&r, 0x100000, 256 * PG, PG, 0, bm) == 0);
	CU_ASSERT_EQUAL(vmig_bitmap_count(bm, 0, 256), 0);
	/* Any power-of-two page size, passed through. */
	CU_ASSERT(ksim_dma_write(a.k, 0x100000 + 17 * PG, "x", 1) == 0);
	CU_ASSERT(do_read(&r, 0x100000, 256 * PG, 16 * PG, VMIG_READ_NO_CLEAR,
			  bm) == 0);
	CU_ASSERT(vmig_bitmap_count(bm, 0, 16) == 1 && vmig_bitmap_test(bm, 1));
	CU_ASSERT(do_read(&r, 0x100000, 256 * PG, 1024, 0, bm) == 0);
	CU_ASSERT(vmig_bitmap_count(bm, 0, 1024) == 4);
	CU_ASSERT(vmig_bitmap_test(bm, 68) && vmig_bitmap_test(bm, 71));
	/* Starting twice does not re-enable (which would clear). */
	CU_ASSERT(ksim_dma_write(a.k, 0x100000 + 5 * PG, "x", 1) == 0);
	CU_ASSERT(plug->ops->start(r.inst, PG) == 0);
	CU_ASSERT(do_read(&r, 0x100000, 256 * PG, PG, 0, bm) == 0);
	CU_ASSERT(vmig_bitmap_count(bm, 0, 256) == 1 &&
		  vmig_bitmap_test(bm, 5));
	CU_ASSERT(plug->ops->stop(r.inst) == 0);
	CU_ASSERT(!where(&a).tracking);
	CU_ASSERT(do_read(&r, 0x100000, 256 * PG, PG, 0, bm) == -EINVAL);
	dev_free_name(&a);
	rig_fini(&r);
}

/*
 * Two mappings with a hole between: vmig's core reads one mapping at a
 * time, and each read finds its writes. (One read across the hole would
 * succeed with the second mapping's bits missing: the kernel's pitfall.)
 */
static void test_hole(void)
{
	uint64_t bm[4];
	struct dev a;
	struct rig r;

	rig_init(&r, 128 * PG);
	CU_ASSERT(rig_map(&r, 0x100000, 0, 64 * PG) == 0);
	CU_ASSERT(rig_map(&r, 0x200000, 64 * PG, 64 * PG) == 0);
	dev_intel(&r, &a, 1, 0, true);
	CU_ASSERT(plug->ops->attach(r.inst, &a.desc) == 0);
	CU_ASSERT(plug->ops->start(r.inst, PG) == 0);
	CU_ASSERT(ksim_dma_write(a.k, 0x100000 + 63 * PG, "a", 1) == 0);
	CU_ASSERT(ksim_dma_write(a.k, 0x200000 + 2 * PG, "b", 1) == 0);
	CU_ASSERT(do_read(&r, 0x100000, 64 * PG, PG, 0, bm) == 0);
	CU_ASSERT(vmig_bitmap_count(bm, 0, 64) == 1 &&
		  vmig_bitmap_test(bm, 63));
	CU_ASSERT(do_read(&r, 0x200000, 64 * PG, PG, 0, bm) == 0);
	CU_ASSERT(vmig_bitmap_count(bm, 0, 64) == 1 &&
		  vmig_bitmap_test(bm, 2));
	dev_free_name(&a);
	rig_fini(&r);
}

/*
 * NO_CLEAR keeps the bits for a second read; unmap_prepare reads without
 * clearing and leaves the unmap to the core, which loses nothing.
 */
static void test_no_clear_and_unmap(void)
{
	uint64_t bm[4], tb[4] = { 0 };
	struct truth t = { .base = 0x100000, .bm = tb, .nbits = 64 };
	struct vmig_read rq = rq_of(0x100000, 64 * PG, PG, 0);
	uint32_t flags = 0;
	struct dev a;
	struct rig r;

	rig_init(&r, 128 * PG);
	CU_ASSERT(rig_map(&r, 0x100000, 0, 64 * PG) == 0);
	CU_ASSERT(rig_map(&r, 0x200000, 64 * PG, 64 * PG) == 0);
	dev_intel(&r, &a, 1, 0, true);
	CU_ASSERT(plug->ops->attach(r.inst, &a.desc) == 0);
	/* Not tracking: nothing to harvest. */
	memset(bm, 0, sizeof(bm));
	CU_ASSERT(plug->ops->unmap_prepare(r.inst, &rq, bm, &flags) == 0);
	CU_ASSERT(flags == 0 && vmig_bitmap_count(bm, 0, 64) == 0);
	CU_ASSERT(plug->ops->start(r.inst, PG) == 0);
	CU_ASSERT(ksim_dma_write(a.k, 0x100000 + 5 * PG, "a", 1) == 0);
	CU_ASSERT(do_read(&r, 0x100000, 64 * PG, PG, VMIG_READ_NO_CLEAR, bm) ==
		  0);
	CU_ASSERT(vmig_bitmap_count(bm, 0, 64) == 1 &&
		  vmig_bitmap_test(bm, 5));
	CU_ASSERT(do_read(&r, 0x100000, 64 * PG, PG, VMIG_READ_NO_CLEAR, bm) ==
		  0);
	CU_ASSERT(vmig_bitmap_count(bm, 0, 64) == 1);
	/* The unmap flow: writes up to the last moment are harvested. */
	ksim_truth_drain(r.k, NULL, NULL);
	CU_ASSERT(ksim_dma_write(a.k, 0x100000 + 9 * PG, NULL, 3 * PG) == 0);
	CU_ASSERT(ksim_truth_drain(r.k, truth_fn, &t) == 1);
	tb[0] |= 1ull << 5;
	memset(bm, 0, sizeof(bm));
	CU_ASSERT(plug->ops->unmap_prepare(r.inst, &rq, bm, &flags) == 0);
	CU_ASSERT(flags == 0); /* the core unmaps */
	CU_ASSERT(memcmp(bm, tb, sizeof(bm)) == 0);
	/* Should the unmap not happen, the bits are still there. */
	memset(bm, 0, sizeof(bm));
	CU_ASSERT(plug->ops->unmap_prepare(r.inst, &rq, bm, &flags) == 0);
	CU_ASSERT(memcmp(bm, tb, sizeof(bm)) == 0);
	CU_ASSERT(rig_unmap(&r, 0x100000, 64 * PG) == 0);
	memset(bm, 0, sizeof(bm));
	CU_ASSERT(plug->ops->unmap_complete(r.inst, &rq, bm) == 0);
	/*
	 * Every page: a write after the read above set a dirty bit that the
	 * unmap destroyed (iommufd has no unmap that returns them).
	 */
	CU_ASSERT(vmig_bitmap_count(bm, 0, 64) == 64);
	CU_ASSERT(ksim_dma_write(a.k, 0x100000, "a", 1) == -EFAULT);
	/* Mapped again, it starts clean. */
	CU_ASSERT(rig_map(&r, 0x100000, 0, 64 * PG) == 0);
	CU_ASSERT(do_read(&r, 0x100000, 64 * PG, PG, 0, bm) == 0);
	CU_ASSERT(vmig_bitmap_count(bm, 0, 64) == 0);
	/* The other mapping was never touched by all this. */
	CU_ASSERT(ksim_dma_write(a.k, 0x200000, "a", 1) == 0);
	CU_ASSERT(do_read(&r, 0x200000, 64 * PG, PG, 0, bm) == 0);
	CU_ASSERT(vmig_bitmap_count(bm, 0, 64) == 1);
	dev_free_name(&a);
	rig_fini(&r);
}

/*
 * A 1-byte write in a 2 MiB IOPTE is the whole superpage, and the device
 * says so: its IOMMU has 2 MiB pages (the capability register's SLLPS)
 * and its range holds an aligned 2 MiB block. One of 4 KiB pages only is
 * exact over the same range; a range mapped later can make it a superset.
 */
static void test_huge_iopte(void)
{
	struct vmig_range big = { 0x40000000, 4 * MiB };
	struct vmig_range small = { 0x40000000, MiB };
	struct ksim_iommufd_device_params ip = {
		.cdev = true, .cdev_index = 1, .dirty_tracking = true,
		.pgsizes = PG,
	};
	uint64_t bm[1024 / 64];
	struct vmig_probe st = { .size = sizeof(st) };
	struct dev a, b;
	struct rig r;

	rig_init(&r, 8 * MiB);
	CU_ASSERT(rig_map(&r, 0x40000000, 0, 4 * MiB) == 0);
	dev_intel(&r, &a, 1, 0, true);
	a.desc.ranges = &big;
	a.desc.nr_ranges = 1;
	CU_ASSERT(plug->ops->attach(r.inst, &a.desc) == 0);
	CU_ASSERT(plug->ops->start(r.inst, PG) == 0);
	CU_ASSERT(ksim_dma_write(a.k, 0x40000000 + 3 * MiB + 17, "a", 1) == 0);
	CU_ASSERT(do_read(&r, 0x40000000, 4 * MiB, PG, 0, bm) == 0);
	CU_ASSERT_EQUAL(vmig_bitmap_count(bm, 0, 1024), 512);
	CU_ASSERT(vmig_bitmap_test(bm, 512) && vmig_bitmap_test(bm, 1023));
	CU_ASSERT(!vmig_bitmap_test(bm, 511));
	CU_ASSERT(plug->ops->status(r.inst, 1, &st) == 0);
	CU_ASSERT_EQUAL(st.precision, VMIG_PRECISION_SUPERSET);
	CU_ASSERT_PTR_NOT_NULL(strstr(st.reason, "2048 KiB IOPTEs"));
	/* 4 KiB pages only: exact, whatever the ranges. */
	dev_add(&r, &b, 2, strdup("0000:02:00.0"), KSIM_DEV_PCI, -1, &ip);
	b.desc.ranges = &big;
	b.desc.nr_ranges = 1;
	CU_ASSERT(plug->ops->attach(r.inst, &b.desc) == 0);
	CU_ASSERT(plug->ops->status(r.inst, 2, &st) == 0);
	CU_ASSERT_EQUAL(st.precision, VMIG_PRECISION_EXACT);
	CU_ASSERT_PTR_NOT_NULL(strstr(st.reason, "no large page"));
	/* 2 MiB pages, a range too small for one: exact until one comes. */
	CU_ASSERT(plug->ops->detach(r.inst, 1) == 0);
	a.desc.ranges = &small;
	CU_ASSERT(plug->ops->attach(r.inst, &a.desc) == 0);
	CU_ASSERT(plug->ops->status(r.inst, 1, &st) == 0);
	CU_ASSERT_EQUAL(st.precision, VMIG_PRECISION_EXACT);
	CU_ASSERT(plug->ops->map(r.inst, a.desc.iommu->id, &big) == 0);
	CU_ASSERT(plug->ops->status(r.inst, 1, &st) == 0);
	CU_ASSERT_EQUAL(st.precision, VMIG_PRECISION_SUPERSET);
	dev_free_name(&b);
	dev_free_name(&a);
	rig_fini(&r);
}

/* The mock's 2 KiB granule, read at 4 KiB and coarser. */
static void test_mock_granule(void)
{
	uint64_t bm[1];
	struct dev m;
	struct rig r;

	rig_init(&r, 64 * PG);
	CU_ASSERT(rig_map(&r, 0x1000000, 0, 16 * PG) == 0);
	dev_mock(&r, &m, 1, 0, false);
	CU_ASSERT(plug->ops->attach(r.inst, &m.desc) == 0);
	CU_ASSERT(plug->ops->start(r.inst, PG) == 0);
	CU_ASSERT(ksim_dma_write(m.k, 0x1000000 + 0x2800, "a", 1) == 0);
	CU_ASSERT(ksim_dma_write(m.k, 0x1000000 + 0x5000, "b", 1) == 0);
	CU_ASSERT(do_read(&r, 0x1000000, 16 * PG, PG, VMIG_READ_NO_CLEAR, bm) ==
		  0);
	CU_ASSERT(bm[0] == ((1ull << 2) | (1ull << 5)));
	CU_ASSERT(do_read(&r, 0x1000000, 16 * PG, 2 * PG, VMIG_READ_NO_CLEAR,
			  bm) == 0);
	CU_ASSERT(bm[0] == ((1ull << 1) | (1ull << 2)));
	CU_ASSERT(do_read(&r, 0x1000000, 16 * PG, 2048, 0, bm) == 0);
	CU_ASSERT(bm[0] == ((1ull << 5) | (1ull << 10)));
	dev_free_name(&m);
	rig_fini(&r);
}

static bool req_seen_after(const struct rig *r, unsigned int from,
			   unsigned long first, unsigned long then)
{
	unsigned int i, at = r->nr_reqs;

	for (i = from; i < r->nr_reqs; i++) {
		if (r->reqs[i] == first) {
			at = i;
			break;
		}
	}
	for (i = at + 1; i < r->nr_reqs; i++)
		if (r->reqs[i] == then)
			return true;
	return false;
}

/*
 * Hot-plug while tracking: a new HWPT gets tracking before the device is
 * attached to it; a device joining a tracking HWPT is tracked at once.
 */
static void test_hotplug_join(void)
{
	uint64_t bm[1];
	struct dev a, b, m;
	unsigned int from, i;
	struct rig r;

	rig_init(&r, 64 * PG);
	CU_ASSERT(rig_map(&r, 0x1000000, 0, 64 * PG) == 0);
	dev_intel(&r, &a, 1, 0, true);
	CU_ASSERT(plug->ops->attach(r.inst, &a.desc) == 0);
	CU_ASSERT(plug->ops->start(r.inst, PG) == 0);
	/* An incompatible device: a new HWPT, enabled, then attached. */
	dev_mock(&r, &m, 2, 1, false);
	from = r.nr_reqs;
	CU_ASSERT(plug->ops->attach(r.inst, &m.desc) == 0);
	CU_ASSERT(where(&m).tracking && where(&m).dirty_capable);
	CU_ASSERT(req_seen_after(&r, from, VK_IOMMU_HWPT_ALLOC,
				 VK_IOMMU_HWPT_SET_DIRTY_TRACKING));
	CU_ASSERT(req_seen_after(&r, from, VK_IOMMU_HWPT_SET_DIRTY_TRACKING,
				 VK_VFIO_DEVICE_ATTACH_IOMMUFD_PT));
	CU_ASSERT_EQUAL(r.reqs[r.nr_reqs - 1],
			VK_VFIO_DEVICE_ATTACH_IOMMUFD_PT);
	CU_ASSERT(ksim_dma_write(m.k, 0x1000000 + 3 * PG, "m", 1) == 0);
	CU_ASSERT(do_read(&r, 0x1000000, 64 * PG, PG, 0, bm) == 0);
	CU_ASSERT(bm[0] == 1ull << 3);
	/* A compatible one joins the tracking HWPT: no new enable. */
	dev_intel(&r, &b, 3, 2, true);
	from = r.nr_reqs;
	CU_ASSERT(plug->ops->attach(r.inst, &b.desc) == 0);
	CU_ASSERT_EQUAL(where(&b).pt_id, where(&a).pt_id);
	for (i = from; i < r.nr_reqs; i++)
		CU_ASSERT(r.reqs[i] != VK_IOMMU_HWPT_SET_DIRTY_TRACKING &&
			  r.reqs[i] != VK_IOMMU_HWPT_ALLOC);
	CU_ASSERT(ksim_dma_write(b.k, 0x1000000 + 7 * PG, "b", 1) == 0);
	CU_ASSERT(do_read(&r, 0x1000000, 64 * PG, PG, 0, bm) == 0);
	CU_ASSERT(bm[0] == 1ull << 7);
	dev_free_name(&a);
	dev_free_name(&b);
	dev_free_name(&m);
	rig_fini(&r);
}

/*
 * Devices of one IOMMU group share a domain: releasing one must not take
 * the other off the tracking HWPT.
 */
static void test_group_mates(void)
{
	struct ksim_iommufd_device_params p0 = { .cdev = true,
						 .dirty_tracking = true };
	struct ksim_iommufd_device_params p1 = p0;
	uint64_t bm[1];
	struct dev a, b;
	uint32_t h;
	struct rig r;

	rig_init(&r, 64 * PG);
	CU_ASSERT(rig_map(&r, 0x100000, 0, 64 * PG) == 0);
	p1.cdev_index = 1;
	dev_add(&r, &a, 1, "0000:05:00.0", KSIM_DEV_PCI, 5, &p0);
	dev_add(&r, &b, 2, "0000:05:00.1", KSIM_DEV_PCI, 5, &p1);
	CU_ASSERT(plug->ops->attach(r.inst, &a.desc) == 0);
	h = where(&a).pt_id;
	CU_ASSERT(where(&b).pt_id == h); /* the group moved together */
	CU_ASSERT(plug->ops->attach(r.inst, &b.desc) == 0);
	CU_ASSERT(plug->ops->start(r.inst, PG) == 0);
	CU_ASSERT(plug->ops->detach(r.inst, 1) == 0);
	CU_ASSERT_EQUAL(where(&b).pt_id, h);
	CU_ASSERT(ksim_dma_write(b.k, 0x100000 + 4 * PG, "b", 1) == 0);
	CU_ASSERT(do_read(&r, 0x100000, 64 * PG, PG, 0, bm) == 0);
	CU_ASSERT(bm[0] == 1ull << 4);
	CU_ASSERT(plug->ops->detach(r.inst, 2) == 0);
	CU_ASSERT(where(&a).auto_domain && where(&b).auto_domain);
	CU_ASSERT(destroy_id(&r, h) == -ENOENT);
	rig_fini(&r);
}

/* Each kernel error the plugin can meet, and what it returns for it. */
static void test_errors(void)
{
	static const int info_errs[] = { EOPNOTSUPP, ENOENT, EFAULT };
	static const int alloc_errs[] = { EOPNOTSUPP, EINVAL, ENOENT,
					  EADDRINUSE, EFAULT, ENOMEM };
	static const int get_errs[] = { EOPNOTSUPP, ENOENT, EINVAL, EOVERFLOW,
					ENOMEM };
	struct vmig_read rq = rq_of(0x1000000, 64 * PG, PG, 0);
	struct vmig_probe p;
	uint64_t bm[4];
	uint32_t flags = 0, h1;
	struct dev a, m, b;
	struct rig r;
	size_t i;

	rig_init(&r, 64 * PG);
	CU_ASSERT(rig_map(&r, 0x1000000, 0, 64 * PG) == 0);
	dev_intel(&r, &a, 1, 0, true);
	dev_mock(&r, &m, 2, 1, false);
	dev_intel(&r, &b, 3, 2, true);

	/* GET_HW_INFO (probe): declined, with the error named. */
	for (i = 0; i < sizeof(info_errs) / sizeof(info_errs[0]); i++) {
		ksim_fail_request(r.k, VK_IOMMU_GET_HW_INFO, info_errs[i], 1);
		memset(&p, 0, sizeof(p));
		p.size = sizeof(p);
		CU_ASSERT(plug->ops->probe(r.inst, &a.desc, &p) == 0);
		CU_ASSERT(p.precision == VMIG_PRECISION_NONE);
		CU_ASSERT_PTR_NOT_NULL(strstr(p.reason,
					      strerror(info_errs[i])));
	}
	/* HWPT_ALLOC: returned as is, nothing kept. */
	for (i = 0; i < sizeof(alloc_errs) / sizeof(alloc_errs[0]); i++) {
		ksim_fail_request(r.k, VK_IOMMU_HWPT_ALLOC, alloc_errs[i], 1);
		CU_ASSERT(plug->ops->attach(r.inst, &a.desc) ==
			  -alloc_errs[i]);
		CU_ASSERT(where(&a).auto_domain);
	}
	CU_ASSERT(plug->ops->status(r.inst, 1, &p) == -ENOENT);
	/* ATTACH to a new HWPT: returned, the HWPT destroyed again. */
	ksim_fail_request(r.k, VK_VFIO_DEVICE_ATTACH_IOMMUFD_PT, EINVAL, 1);
	CU_ASSERT(plug->ops->attach(r.inst, &a.desc) == -EINVAL);
	CU_ASSERT(where(&a).auto_domain);
	CU_ASSERT(plug->ops->attach(r.inst, &a.desc) == 0);
	h1 = where(&a).pt_id;
	/* ATTACH to an existing HWPT: EINVAL skips it, others return. */
	ksim_fail_request(r.k, VK_VFIO_DEVICE_ATTACH_IOMMUFD_PT, ENOENT, 1);
	CU_ASSERT(plug->ops->attach(r.inst, &b.desc) == -ENOENT);
	ksim_fail_request(r.k, VK_VFIO_DEVICE_ATTACH_IOMMUFD_PT, EINVAL, 1);
	CU_ASSERT(plug->ops->attach(r.inst, &b.desc) == 0);
	CU_ASSERT(where(&b).pt_id != h1 && where(&b).dirty_capable);
	CU_ASSERT(plug->ops->detach(r.inst, 3) == 0);
	/* SET_DIRTY_TRACKING in start: returned, earlier ones undone. */
	CU_ASSERT(plug->ops->attach(r.inst, &m.desc) == 0);
	ksim_fail_nth(r.k, 2, EOPNOTSUPP);
	CU_ASSERT(plug->ops->start(r.inst, PG) == -EOPNOTSUPP);
	CU_ASSERT(!where(&a).tracking && !where(&m).tracking);
	CU_ASSERT(do_read(&r, 0x1000000, 64 * PG, PG, 0, bm) == -EINVAL);
	CU_ASSERT(plug->ops->start(r.inst, PG) == 0);
	CU_ASSERT(where(&a).tracking && where(&m).tracking);
	/* SET_DIRTY_TRACKING for a hot-plugged device's new HWPT. */
	CU_ASSERT(plug->ops->detach(r.inst, 2) == 0);
	ksim_fail_request(r.k, VK_IOMMU_HWPT_SET_DIRTY_TRACKING, ENOENT, 1);
	CU_ASSERT(plug->ops->attach(r.inst, &m.desc) == -ENOENT);
	CU_ASSERT(where(&m).auto_domain);
	/* GET_DIRTY_BITMAP: each returned as is. */
	for (i = 0; i < sizeof(get_errs) / sizeof(get_errs[0]); i++) {
		ksim_fail_request(r.k, VK_IOMMU_HWPT_GET_DIRTY_BITMAP,
				  get_errs[i], 1);
		CU_ASSERT(do_read(&r, 0x1000000, 64 * PG, PG, 0, bm) ==
			  -get_errs[i]);
	}
	ksim_fail_request(r.k, VK_IOMMU_HWPT_GET_DIRTY_BITMAP, EIO, 1);
	memset(bm, 0, sizeof(bm));
	CU_ASSERT(plug->ops->unmap_prepare(r.inst, &rq, bm, &flags) == -EIO);
	/* The kernel's own EINVAL: a range off the IOAS alignment. */
	CU_ASSERT(do_read(&r, 0x1000400, 4 * 1024, 1024, 0, bm) == -EINVAL);
	/* Malformed requests never reach the kernel. */
	rq = rq_of(0x1000000, 64 * PG, PG, 0);
	rq.iommu_id = 99;
	CU_ASSERT(plug->ops->read(r.inst, &rq, bm) == -ENOENT);
	CU_ASSERT(do_read(&r, 0x1000000, 64 * PG, PG, 0x80, bm) == -EINVAL);
	CU_ASSERT(do_read(&r, 0x1000000, 64 * PG, 3000, 0, bm) == -EINVAL);
	CU_ASSERT(do_read(&r, 0x1000000, 0, PG, 0, bm) == -EINVAL);
	/* Detach: the HWPT cannot go (EBUSY): kept, logged, reused. */
	CU_ASSERT(plug->ops->attach(r.inst, &m.desc) == 0);
	ksim_fail_request(r.k, VK_IOMMU_DESTROY, EBUSY, 1);
	CU_ASSERT(plug->ops->detach(r.inst, 2) == 0);
	CU_ASSERT(where(&m).auto_domain);
	CU_ASSERT_PTR_NOT_NULL(strstr(r.log, "cannot destroy it"));
	CU_ASSERT(plug->ops->attach(r.inst, &m.desc) == 0);
	CU_ASSERT(where(&m).tracking);
	CU_ASSERT(plug->ops->detach(r.inst, 2) == 0);
	r.log[0] = '\0';
	/* Detach: the move back fails, the HWPT cannot go: kept, logged. */
	ksim_fail_request(r.k, VK_VFIO_DEVICE_ATTACH_IOMMUFD_PT, EIO, 1);
	CU_ASSERT(plug->ops->detach(r.inst, 1) == 0);
	CU_ASSERT_PTR_NOT_NULL(strstr(r.log, "cannot move it back"));
	CU_ASSERT_PTR_NOT_NULL(strstr(r.log, "cannot destroy it"));
	CU_ASSERT_EQUAL(where(&a).pt_id, h1);
	/* The instance's destroy cleans up what was left. */
	plug->ops->destroy(r.inst);
	r.inst = NULL;
	CU_ASSERT(destroy_id(&r, h1) == -EBUSY); /* a still sits there */
	dev_free_name(&a);
	dev_free_name(&b);
	dev_free_name(&m);
	rig_fini(&r);
}

/* A device unplugged while tracked: detach still cleans up. */
static void test_unplug(void)
{
	uint64_t bm[1];
	struct dev a, b;
	uint32_t h;
	struct rig r;

	rig_init(&r, 64 * PG);
	CU_ASSERT(rig_map(&r, 0x100000, 0, 64 * PG) == 0);
	dev_intel(&r, &a, 1, 0, true);
	dev_intel(&r, &b, 2, 1, true);
	CU_ASSERT(plug->ops->attach(r.inst, &a.desc) == 0);
	CU_ASSERT(plug->ops->attach(r.inst, &b.desc) == 0);
	CU_ASSERT(plug->ops->start(r.inst, PG) == 0);
	h = where(&a).pt_id;
	CU_ASSERT(ksim_dma_write(a.k, 0x100000 + PG, "a", 1) == 0);
	CU_ASSERT(ksim_device_remove(r.k, a.k) == 0);
	/* Its last writes are still in the HWPT for the final read. */
	CU_ASSERT(do_read(&r, 0x100000, 64 * PG, PG, 0, bm) == 0);
	CU_ASSERT(bm[0] == 1ull << 1);
	CU_ASSERT(plug->ops->detach(r.inst, 1) == 0);
	CU_ASSERT(plug->ops->detach(r.inst, 2) == 0);
	CU_ASSERT(destroy_id(&r, h) == -ENOENT);
	dev_free_name(&a);
	dev_free_name(&b);
	rig_fini(&r);
}

/* ------------------------------------------------------------------ */
/* PASIDs (kernels newer than 6.12, as the simulator models them)      */

#define IO_A 8u /* vmig's ids of two more IOASes, behind PASIDs */
#define IO_B 9u

/* Another IOAS of the rig's iommufd, described as vmig's core does. */
static void rig_ioas(struct rig *r, struct vmig_iommu_desc *io, uint32_t id)
{
	struct vk_iommu_ioas_alloc a = { .size = sizeof(a) };

	CU_ASSERT_FATAL(kio(r, r->fd, VK_IOMMU_IOAS_ALLOC, &a) == 0);
	memset(io, 0, sizeof(*io));
	io->size = sizeof(*io);
	io->id = id;
	io->kind = VMIG_IOMMU_IOMMUFD;
	io->fd = r->fd;
	io->ioas_id = a.out_ioas_id;
}

static int ioas_map(struct rig *r, const struct vmig_iommu_desc *io,
		    uint64_t iova, uint64_t off, uint64_t len)
{
	struct vk_iommu_ioas_map m = {
		.size = sizeof(m),
		.flags = VK_IOMMU_IOAS_MAP_FIXED_IOVA |
			 VK_IOMMU_IOAS_MAP_READABLE |
			 VK_IOMMU_IOAS_MAP_WRITEABLE,
		.ioas_id = io->ioas_id,
		.user_va = (uintptr_t)(r->mem + off),
		.length = len,
		.iova = iova,
	};

	return kio(r, r->fd, VK_IOMMU_IOAS_MAP, &m);
}

/* What the VMM does for a PASID: attach it to an IOAS (an auto domain). */
static int vmm_attach_pasid(struct rig *r, struct dev *d, uint32_t pasid,
			    uint32_t pt_id)
{
	struct vk_vfio_device_attach_iommufd_pt_pasid a = {
		.argsz = sizeof(a),
		.flags = VK_VFIO_DEVICE_ATTACH_PASID,
		.pt_id = pt_id,
		.pasid = pasid,
	};

	return kio(r, d->dfd, VK_VFIO_DEVICE_ATTACH_IOMMUFD_PT, &a);
}

/*
 * An Intel device with 20-bit PASIDs, PASID n + 1 translating through
 * ios[n], attached there by the VMM when the kernel can.
 */
static struct vmig_pasid_desc pasid_descs[4][2];

static void dev_pasids(struct rig *r, struct dev *d, uint32_t id, int cdev,
		       bool dirty, const struct vmig_iommu_desc *const *ios,
		       uint32_t n, bool vmm_attach)
{
	struct ksim_iommufd_device_params ip = {
		.cdev = true, .cdev_index = (uint32_t)cdev,
		.dirty_tracking = dirty, .max_pasid_log2 = 20,
	};
	struct vmig_pasid_desc *pd = pasid_descs[cdev];
	char name[32];
	uint32_t i;

	snprintf(name, sizeof(name), "0000:%02x:00.0", cdev + 1);
	dev_add(r, d, id, strdup(name), KSIM_DEV_PCI, -1, &ip);
	for (i = 0; i < n; i++) {
		pd[i].size = sizeof(pd[i]);
		pd[i].pasid = i + 1;
		pd[i].iommu = ios[i];
		if (vmm_attach)
			CU_ASSERT_FATAL(vmm_attach_pasid(r, d, i + 1,
							 ios[i]->ioas_id) == 0);
	}
	d->desc.nr_pasids = n;
	d->desc.pasids = pd;
}

static struct ksim_iommufd_attachment where_pasid(struct dev *d,
						  uint32_t pasid)
{
	struct ksim_iommufd_attachment a;

	CU_ASSERT(ksim_iommufd_attachment(d->k, pasid, &a) == 0);
	return a;
}

static int read_io(struct rig *r, uint32_t io, uint64_t iova, uint64_t len,
		   uint32_t flags, uint64_t *bm)
{
	struct vmig_read rq = rq_of(iova, len, PG, flags);

	rq.iommu_id = io;
	memset(bm, 0, vmig_bitmap_bytes(len / PG));
	return plug->ops->read(r->inst, &rq, bm);
}

/* The guest memory pages every drained write landed in. */
static void truth_mem(void *opaque, const struct ksim_write *w)
{
	struct rig *r = the_rig;
	uint64_t *bm = opaque, p;
	uint64_t off = (uint64_t)((uint8_t *)w->hva - r->mem);

	for (p = off / PG; p <= (off + w->len - 1) / PG; p++)
		bm[p / 64] |= 1ull << (p % 64);
}

static struct vmig_probe probe_of(struct rig *r, struct dev *d)
{
	struct vmig_probe p;

	memset(&p, 0, sizeof(p));
	p.size = sizeof(p);
	CU_ASSERT(plug->ops->probe(r->inst, &d->desc, &p) == 0);
	return p;
}

/*
 * A device with two PASIDs on two other IOASes. The three spaces map the
 * same IOVAs to different guest memory, so that a write through one
 * domain cannot be mistaken for one through another: main 0x100000 is
 * memory page 0, A's page 64, B's page 128.
 */
static void test_pasid_cover(void)
{
	struct vmig_iommu_desc a_io, b_io;
	const struct vmig_iommu_desc *ios[2] = { &a_io, &b_io };
	struct ksim_iommufd_attachment before, m, p1, p2;
	uint64_t bm[1], got[4] = { 0 }, truth[4] = { 0 };
	struct vmig_read rq = rq_of(0x100000, 64 * PG, PG, 0);
	struct vmig_probe p;
	uint32_t flags = 0;
	struct dev d;
	struct rig r;

	rig_init(&r, 256 * PG);
	ksim_iommufd_set_pasid_attach(r.k, true);
	rig_ioas(&r, &a_io, IO_A);
	rig_ioas(&r, &b_io, IO_B);
	CU_ASSERT(rig_map(&r, 0x100000, 0, 64 * PG) == 0);
	CU_ASSERT(ioas_map(&r, &a_io, 0x100000, 64 * PG, 64 * PG) == 0);
	CU_ASSERT(ioas_map(&r, &b_io, 0x100000, 128 * PG, 64 * PG) == 0);
	dev_pasids(&r, &d, 1, 0, true, ios, 2, true);
	before = where_pasid(&d, 1);
	CU_ASSERT(before.attached && before.auto_domain);
	CU_ASSERT_EQUAL(before.ioas_id, a_io.ioas_id);

	/* Probe: covered, said so, and nothing moved. */
	p = probe_of(&r, &d);
	CU_ASSERT_EQUAL(p.precision, VMIG_PRECISION_EXACT);
	CU_ASSERT(p.flags & VMIG_PROBE_PASIDS);
	CU_ASSERT_PTR_NOT_NULL(strstr(p.reason, "PASIDs' too"));
	CU_ASSERT_PTR_NOT_NULL(strstr(p.reason, "cannot move them all fails"));
	CU_ASSERT_EQUAL(where_pasid(&d, 1).pt_id, before.pt_id);
	CU_ASSERT(where(&d).auto_domain);

	/* Attach: the device and each PASID on a dirty HWPT of its IOAS. */
	CU_ASSERT(plug->ops->attach(r.inst, &d.desc) == 0);
	m = where(&d);
	p1 = where_pasid(&d, 1);
	p2 = where_pasid(&d, 2);
	CU_ASSERT(m.dirty_capable && !m.auto_domain && m.ioas_id == r.ioas);
	CU_ASSERT(p1.dirty_capable && !p1.auto_domain);
	CU_ASSERT_EQUAL(p1.ioas_id, a_io.ioas_id);
	CU_ASSERT(p2.dirty_capable && !p2.auto_domain);
	CU_ASSERT_EQUAL(p2.ioas_id, b_io.ioas_id);
	CU_ASSERT(m.pt_id != p1.pt_id && p1.pt_id != p2.pt_id);
	CU_ASSERT(plug->ops->status(r.inst, 1, &p) == 0);
	CU_ASSERT(p.flags & VMIG_PROBE_PASIDS);
	/* Read before start: refused for a PASID space too. */
	CU_ASSERT(read_io(&r, IO_A, 0x100000, 64 * PG, 0, bm) == -EINVAL);
	CU_ASSERT(plug->ops->start(r.inst, PG) == 0);
	CU_ASSERT(where_pasid(&d, 1).tracking && where_pasid(&d, 2).tracking);
	CU_ASSERT(where(&d).tracking);

	/* Each write comes back from its own space, exactly. */
	ksim_truth_drain(r.k, NULL, NULL);
	CU_ASSERT(ksim_dma_write_pasid(d.k, 1, 0x100000 + 3 * PG + 5, "a",
				       1) == 0);
	CU_ASSERT(ksim_dma_write_pasid(d.k, 2, 0x100000 + 10 * PG, NULL,
				       2 * PG) == 0);
	CU_ASSERT(ksim_dma_write(d.k, 0x100000 + 5 * PG, "m", 1) == 0);
	CU_ASSERT(ksim_dma_write_pasid(d.k, 2, 0x100000 + 63 * PG, "b", 1) ==
		  0);
	CU_ASSERT(ksim_truth_drain(r.k, truth_mem, truth) == 4);
	CU_ASSERT(read_io(&r, IO_ID, 0x100000, 64 * PG, 0, bm) == 0);
	CU_ASSERT_EQUAL(bm[0], 1ull << 5);
	got[0] |= bm[0];
	CU_ASSERT(read_io(&r, IO_A, 0x100000, 64 * PG, 0, bm) == 0);
	CU_ASSERT_EQUAL(bm[0], 1ull << 3);
	got[1] |= bm[0];
	CU_ASSERT(read_io(&r, IO_B, 0x100000, 64 * PG, 0, bm) == 0);
	CU_ASSERT_EQUAL(bm[0], (3ull << 10) | (1ull << 63));
	got[2] |= bm[0];
	CU_ASSERT(memcmp(got, truth, sizeof(got)) == 0);
	/* Read and cleared, in every space. */
	CU_ASSERT(read_io(&r, IO_A, 0x100000, 64 * PG, 0, bm) == 0);
	CU_ASSERT_EQUAL(bm[0], 0);
	CU_ASSERT(read_io(&r, IO_B, 0x100000, 64 * PG, 0, bm) == 0);
	CU_ASSERT_EQUAL(bm[0], 0);

	/* Harvest before unmapping a PASID space: NO_CLEAR, core unmaps. */
	CU_ASSERT(ksim_dma_write_pasid(d.k, 1, 0x100000 + 7 * PG, "c", 1) ==
		  0);
	rq.iommu_id = IO_A;
	bm[0] = 0;
	CU_ASSERT(plug->ops->unmap_prepare(r.inst, &rq, bm, &flags) == 0);
	CU_ASSERT(flags == 0 && bm[0] == 1ull << 7);
	bm[0] = 0;
	CU_ASSERT(plug->ops->unmap_prepare(r.inst, &rq, bm, &flags) == 0);
	CU_ASSERT_EQUAL(bm[0], 1ull << 7);
	CU_ASSERT(read_io(&r, IO_B, 0x100000, 64 * PG, 0, bm) == 0);
	CU_ASSERT_EQUAL(bm[0], 0);

	/* Detach: every domain back to an automatic one, HWPTs gone. */
	CU_ASSERT(plug->ops->detach(r.inst, 1) == 0);
	CU_ASSERT(where(&d).auto_domain && where(&d).ioas_id == r.ioas);
	CU_ASSERT(where_pasid(&d, 1).auto_domain);
	CU_ASSERT_EQUAL(where_pasid(&d, 1).ioas_id, a_io.ioas_id);
	CU_ASSERT(where_pasid(&d, 2).auto_domain);
	CU_ASSERT_EQUAL(where_pasid(&d, 2).ioas_id, b_io.ioas_id);
	/*
	 * Every HWPT destroyed: the instance keeps one the kernel would not
	 * destroy, and would know its space. (Their ids may name the new
	 * automatic domains by now: the kernel reuses free ids.)
	 */
	CU_ASSERT(read_io(&r, IO_ID, 0x100000, 64 * PG, 0, bm) == -ENOENT);
	CU_ASSERT(read_io(&r, IO_A, 0x100000, 64 * PG, 0, bm) == -ENOENT);
	CU_ASSERT(read_io(&r, IO_B, 0x100000, 64 * PG, 0, bm) == -ENOENT);
	CU_ASSERT_PTR_NULL(strstr(r.log, "cannot"));
	dev_free_name(&d);
	rig_fini(&r);
}

/*
 * Placement: a PASID on the device's own IOAS shares its HWPT; another
 * device's PASID joins a HWPT of ours on that IOAS; a PASID arriving
 * while tracking runs on an IOAS with no HWPT of ours gets a new one,
 * tracking before the PASID is moved. Destroying the instance puts
 * everything back.
 */
static void test_pasid_placement(void)
{
	struct vmig_iommu_desc a_io, b_io;
	const struct vmig_iommu_desc *ia[2] = { &a_io, NULL };
	const struct vmig_iommu_desc *ib[2] = { &a_io, &b_io };
	struct ksim_iommufd_attachment am, a1, b2;
	unsigned int from, i, allocs = 0;
	uint64_t bm[1];
	struct dev a, b;
	struct rig r;

	rig_init(&r, 256 * PG);
	ksim_iommufd_set_pasid_attach(r.k, true);
	rig_ioas(&r, &a_io, IO_A);
	rig_ioas(&r, &b_io, IO_B);
	ia[1] = &r.io;
	CU_ASSERT(rig_map(&r, 0x100000, 0, 64 * PG) == 0);
	CU_ASSERT(ioas_map(&r, &a_io, 0x100000, 64 * PG, 64 * PG) == 0);
	CU_ASSERT(ioas_map(&r, &b_io, 0x100000, 128 * PG, 64 * PG) == 0);
	dev_pasids(&r, &a, 1, 0, true, ia, 2, true);
	dev_pasids(&r, &b, 2, 1, true, ib, 2, true);

	CU_ASSERT(probe_of(&r, &a).flags & VMIG_PROBE_PASIDS);
	CU_ASSERT(plug->ops->attach(r.inst, &a.desc) == 0);
	am = where(&a);
	a1 = where_pasid(&a, 1);
	CU_ASSERT_EQUAL(where_pasid(&a, 2).pt_id, am.pt_id);
	CU_ASSERT(a1.dirty_capable && a1.ioas_id == a_io.ioas_id);
	CU_ASSERT(plug->ops->start(r.inst, PG) == 0);

	CU_ASSERT(probe_of(&r, &b).flags & VMIG_PROBE_PASIDS);
	from = r.nr_reqs;
	CU_ASSERT(plug->ops->attach(r.inst, &b.desc) == 0);
	CU_ASSERT_EQUAL(where(&b).pt_id, am.pt_id);
	CU_ASSERT_EQUAL(where_pasid(&b, 1).pt_id, a1.pt_id);
	b2 = where_pasid(&b, 2);
	CU_ASSERT(b2.dirty_capable && b2.tracking && !b2.auto_domain);
	CU_ASSERT_EQUAL(b2.ioas_id, b_io.ioas_id);
	for (i = from; i < r.nr_reqs; i++)
		allocs += r.reqs[i] == VK_IOMMU_HWPT_ALLOC;
	CU_ASSERT_EQUAL(allocs, 1);
	CU_ASSERT(req_seen_after(&r, from, VK_IOMMU_HWPT_ALLOC,
				 VK_IOMMU_HWPT_SET_DIRTY_TRACKING));
	CU_ASSERT(req_seen_after(&r, from, VK_IOMMU_HWPT_SET_DIRTY_TRACKING,
				 VK_VFIO_DEVICE_ATTACH_IOMMUFD_PT));
	CU_ASSERT_EQUAL(r.reqs[r.nr_reqs - 1],
			VK_VFIO_DEVICE_ATTACH_IOMMUFD_PT);

	/* At once tracked; a PASID on the main IOAS reads from it. */
	CU_ASSERT(ksim_dma_write_pasid(b.k, 2, 0x100000 + 2 * PG, "b", 1) ==
		  0);
	CU_ASSERT(ksim_dma_write_pasid(b.k, 1, 0x100000 + 4 * PG, "b", 1) ==
		  0);
	CU_ASSERT(ksim_dma_write_pasid(a.k, 2, 0x100000 + 9 * PG, "a", 1) ==
		  0);
	CU_ASSERT(read_io(&r, IO_B, 0x100000, 64 * PG, 0, bm) == 0);
	CU_ASSERT_EQUAL(bm[0], 1ull << 2);
	CU_ASSERT(read_io(&r, IO_A, 0x100000, 64 * PG, 0, bm) == 0);
	CU_ASSERT_EQUAL(bm[0], 1ull << 4);
	CU_ASSERT(read_io(&r, IO_ID, 0x100000, 64 * PG, 0, bm) == 0);
	CU_ASSERT_EQUAL(bm[0], 1ull << 9);

	/* a goes; b's PASID keeps the HWPT they shared. */
	CU_ASSERT(plug->ops->detach(r.inst, 1) == 0);
	CU_ASSERT(where_pasid(&a, 1).auto_domain);
	CU_ASSERT(where_pasid(&a, 2).auto_domain);
	CU_ASSERT_EQUAL(where_pasid(&a, 2).ioas_id, r.ioas);
	CU_ASSERT_EQUAL(where_pasid(&b, 1).pt_id, a1.pt_id);
	CU_ASSERT_EQUAL(where(&b).pt_id, am.pt_id);
	CU_ASSERT(ksim_dma_write_pasid(b.k, 1, 0x100000 + 6 * PG, "b", 1) ==
		  0);
	CU_ASSERT(read_io(&r, IO_A, 0x100000, 64 * PG, 0, bm) == 0);
	CU_ASSERT_EQUAL(bm[0], 1ull << 6);

	/* Destroying the instance puts the rest back. */
	plug->ops->destroy(r.inst);
	r.inst = NULL;
	CU_ASSERT(where(&b).auto_domain);
	CU_ASSERT(where_pasid(&b, 1).auto_domain);
	CU_ASSERT(where_pasid(&b, 2).auto_domain);
	CU_ASSERT(!where_pasid(&b, 2).tracking);
	CU_ASSERT(destroy_id(&r, am.pt_id) == -ENOENT);
	CU_ASSERT(destroy_id(&r, a1.pt_id) == -ENOENT);
	CU_ASSERT(destroy_id(&r, b2.pt_id) == -ENOENT);
	dev_free_name(&a);
	dev_free_name(&b);
	rig_fini(&r);
}

/*
 * Linux 6.12: no PASID attach. The plugin declines the PASIDs (flag
 * clear: vmig treats their spaces as dirty) and still tracks the device;
 * the attach that follows leaves them alone. Without that probe (a fresh
 * instance, as vmig makes when it restarts a source) the attach must
 * move them, cannot, and undoes itself.
 */
static void test_pasid_6_12(void)
{
	struct vmig_iommu_desc a_io, b_io;
	const struct vmig_iommu_desc *ios[2] = { &a_io, &b_io };
	struct ksim_iommufd_attachment p1;
	struct vmig_probe p;
	uint64_t bm[1];
	void *fresh;
	struct dev d, e;
	struct rig r;

	rig_init(&r, 256 * PG);
	rig_ioas(&r, &a_io, IO_A);
	rig_ioas(&r, &b_io, IO_B);
	CU_ASSERT(rig_map(&r, 0x100000, 0, 64 * PG) == 0);
	CU_ASSERT(ioas_map(&r, &a_io, 0x100000, 64 * PG, 64 * PG) == 0);
	dev_pasids(&r, &d, 1, 0, true, ios, 2, false);
	/* What the VMM meets on 6.12: the flag itself is refused. */
	CU_ASSERT(vmm_attach_pasid(&r, &d, 1, a_io.ioas_id) == -EINVAL);

	p = probe_of(&r, &d);
	CU_ASSERT_EQUAL(p.precision, VMIG_PRECISION_EXACT);
	CU_ASSERT(!(p.flags & VMIG_PROBE_PASIDS));
	CU_ASSERT_STRING_EQUAL(p.reason,
			       "dirty-tracking HWPT bits (huge IOPTE: whole "
			       "superpage, a superset); PASIDs not covered: "
			       "this kernel has no PASID attach (Linux 6.12 "
			       "and older)");
	CU_ASSERT(plug->ops->attach(r.inst, &d.desc) == 0);
	CU_ASSERT(where(&d).dirty_capable);
	CU_ASSERT(!where_pasid(&d, 1).attached);
	/* Status says the same, as long as the device stays. */
	memset(&p, 0, sizeof(p));
	CU_ASSERT(plug->ops->status(r.inst, 1, &p) == 0);
	CU_ASSERT(p.precision == VMIG_PRECISION_EXACT &&
		  !(p.flags & VMIG_PROBE_PASIDS));
	CU_ASSERT_PTR_NOT_NULL(strstr(p.reason, "PASIDs not covered: this "
					       "kernel has no PASID attach"));
	CU_ASSERT(plug->ops->start(r.inst, PG) == 0);
	CU_ASSERT(ksim_dma_write(d.k, 0x100000 + PG, "m", 1) == 0);
	CU_ASSERT(read_io(&r, IO_ID, 0x100000, 64 * PG, 0, bm) == 0);
	CU_ASSERT_EQUAL(bm[0], 1ull << 1);
	/* Nothing of ours behind the PASIDs: vmig never reads them here. */
	CU_ASSERT(read_io(&r, IO_A, 0x100000, 64 * PG, 0, bm) == -ENOENT);
	CU_ASSERT(plug->ops->detach(r.inst, 1) == 0);
	CU_ASSERT(where(&d).auto_domain);

	/* No probe before: every PASID is moved or the attach fails. */
	CU_ASSERT_FATAL(plug->ops->create(&r.host, &fresh) == 0);
	r.log[0] = '\0';
	CU_ASSERT(plug->ops->attach(fresh, &d.desc) == -EINVAL);
	CU_ASSERT(where(&d).auto_domain);
	CU_ASSERT_PTR_NOT_NULL(strstr(r.log, "attach undone"));
	plug->ops->destroy(fresh);

	/*
	 * PASIDs a newer kernel attached, and a kernel that now refuses the
	 * attach: declined, and left on the domains they had.
	 */
	ksim_iommufd_set_pasid_attach(r.k, true);
	dev_pasids(&r, &e, 2, 1, true, ios, 1, true);
	p1 = where_pasid(&e, 1);
	ksim_iommufd_set_pasid_attach(r.k, false);
	CU_ASSERT(!(probe_of(&r, &e).flags & VMIG_PROBE_PASIDS));
	CU_ASSERT(plug->ops->attach(r.inst, &e.desc) == 0);
	CU_ASSERT_EQUAL(where_pasid(&e, 1).pt_id, p1.pt_id);
	CU_ASSERT(where_pasid(&e, 1).auto_domain);
	CU_ASSERT(plug->ops->detach(r.inst, 2) == 0);
	CU_ASSERT_EQUAL(where_pasid(&e, 1).pt_id, p1.pt_id);
	/* The kernel can again: a new probe replaces the verdict. */
	ksim_iommufd_set_pasid_attach(r.k, true);
	CU_ASSERT(probe_of(&r, &e).flags & VMIG_PROBE_PASIDS);
	CU_ASSERT(plug->ops->attach(r.inst, &e.desc) == 0);
	CU_ASSERT(where_pasid(&e, 1).dirty_capable);
	CU_ASSERT(where_pasid(&e, 1).tracking);
	dev_free_name(&d);
	dev_free_name(&e);
	rig_fini(&r);
}

/*
 * A PASID whose domain cannot track: the device's IOMMU has no dirty
 * tracking (declined before anything moves), a dirty-tracking HWPT on
 * the PASID's IOAS refused (EOPNOTSUPP, as for an IOMMU without the
 * capability), a dirty-tracking domain refused on a PASID (EINVAL, as
 * 6.12's Intel driver does). Each attach undoes all it did.
 */
static void test_pasid_no_dirty(void)
{
	struct vmig_iommu_desc a_io, b_io;
	const struct vmig_iommu_desc *ios[2] = { &a_io, &b_io };
	struct ksim_iommufd_attachment m0, p10, p20;
	struct vmig_probe p;
	uint64_t bm[1];
	struct dev d, nd;
	struct rig r;

	rig_init(&r, 256 * PG);
	ksim_iommufd_set_pasid_attach(r.k, true);
	rig_ioas(&r, &a_io, IO_A);
	rig_ioas(&r, &b_io, IO_B);
	CU_ASSERT(rig_map(&r, 0x100000, 0, 64 * PG) == 0);
	CU_ASSERT(ioas_map(&r, &a_io, 0x100000, 64 * PG, 64 * PG) == 0);
	CU_ASSERT(ioas_map(&r, &b_io, 0x100000, 128 * PG, 64 * PG) == 0);

	dev_pasids(&r, &nd, 2, 1, false, ios, 2, true);
	p10 = where_pasid(&nd, 1);
	p = probe_of(&r, &nd);
	CU_ASSERT_EQUAL(p.precision, VMIG_PRECISION_NONE);
	CU_ASSERT(!(p.flags & VMIG_PROBE_PASIDS));
	CU_ASSERT_PTR_NOT_NULL(strstr(p.reason, "no dirty tracking"));
	CU_ASSERT(plug->ops->attach(r.inst, &nd.desc) == -EOPNOTSUPP);
	CU_ASSERT(where(&nd).auto_domain);
	CU_ASSERT_EQUAL(where_pasid(&nd, 1).pt_id, p10.pt_id);

	dev_pasids(&r, &d, 1, 0, true, ios, 2, true);
	m0 = where(&d);
	p10 = where_pasid(&d, 1);
	p20 = where_pasid(&d, 2);
	CU_ASSERT(probe_of(&r, &d).flags & VMIG_PROBE_PASIDS);
	/*
	 * The calls: GET_HW_INFO (its IOMMU's page sizes), HWPT_ALLOC,
	 * ATTACH (device), then each PASID's pair.
	 */
	ksim_fail_nth(r.k, 6, EOPNOTSUPP);
	r.log[0] = '\0';
	CU_ASSERT(plug->ops->attach(r.inst, &d.desc) == -EOPNOTSUPP);
	CU_ASSERT(where(&d).auto_domain && where(&d).pt_id == m0.pt_id);
	CU_ASSERT(where_pasid(&d, 1).auto_domain);
	CU_ASSERT_EQUAL(where_pasid(&d, 1).ioas_id, a_io.ioas_id);
	CU_ASSERT_EQUAL(where_pasid(&d, 2).pt_id, p20.pt_id);
	CU_ASSERT_PTR_NOT_NULL(strstr(r.log, "PASID 2 cannot be moved"));
	CU_ASSERT_PTR_NOT_NULL(strstr(r.log, "attach undone"));
	/* No HWPT of ours is left anywhere. */
	CU_ASSERT(plug->ops->start(r.inst, PG) == 0);
	CU_ASSERT(read_io(&r, IO_ID, 0x100000, 64 * PG, 0, bm) == -ENOENT);
	CU_ASSERT(read_io(&r, IO_A, 0x100000, 64 * PG, 0, bm) == -ENOENT);
	CU_ASSERT(plug->ops->status(r.inst, 1, &p) == -ENOENT);

	ksim_fail_nth(r.k, 6, EINVAL); /* + SET_DIRTY_TRACKING: tracking */
	CU_ASSERT(plug->ops->attach(r.inst, &d.desc) == -EINVAL);
	CU_ASSERT(where(&d).auto_domain);
	CU_ASSERT(where_pasid(&d, 1).auto_domain);
	CU_ASSERT_EQUAL(where_pasid(&d, 1).ioas_id, a_io.ioas_id);
	CU_ASSERT(where_pasid(&d, 2).auto_domain);
	CU_ASSERT(read_io(&r, IO_A, 0x100000, 64 * PG, 0, bm) == -ENOENT);

	/* And when nothing refuses, all of it is tracked. */
	CU_ASSERT(plug->ops->attach(r.inst, &d.desc) == 0);
	CU_ASSERT(where_pasid(&d, 1).tracking && where_pasid(&d, 2).tracking);
	CU_ASSERT(where(&d).tracking);
	dev_free_name(&d);
	dev_free_name(&nd);
	rig_fini(&r);
}

/* PASIDs described so that no kernel could cover them. */
static void test_pasid_bad_descs(void)
{
	struct vmig_iommu_desc t1 = { .size = sizeof(t1), .id = 3,
				      .kind = VMIG_IOMMU_TYPE1, .fd = 5 };
	struct vmig_iommu_desc a_io, other;
	const struct vmig_iommu_desc *ios[1] = { &a_io };
	struct vmig_pasid_desc *pd;
	unsigned int n;
	struct vmig_probe p;
	void *fresh;
	struct dev d;
	struct rig r;

	rig_init(&r, 64 * PG);
	ksim_iommufd_set_pasid_attach(r.k, true);
	rig_ioas(&r, &a_io, IO_A);
	dev_pasids(&r, &d, 1, 0, true, ios, 1, false);
	pd = pasid_descs[0];
	CU_ASSERT_FATAL(plug->ops->create(&r.host, &fresh) == 0);

	pd[0].iommu = &t1;
	p = probe_of(&r, &d);
	CU_ASSERT(p.precision == VMIG_PRECISION_EXACT &&
		  !(p.flags & VMIG_PROBE_PASIDS));
	CU_ASSERT_PTR_NOT_NULL(strstr(p.reason, "PASID 1 is not on an IOAS "
					       "of the device's iommufd"));
	n = r.nr_reqs;
	CU_ASSERT(plug->ops->attach(fresh, &d.desc) == -EINVAL);
	CU_ASSERT_EQUAL(r.nr_reqs, n); /* refused before any kernel call */
	/* Another iommufd: its ids name other objects. */
	other = a_io;
	other.fd = r.fd + 100;
	pd[0].iommu = &other;
	CU_ASSERT(!(probe_of(&r, &d).flags & VMIG_PROBE_PASIDS));
	CU_ASSERT(plug->ops->attach(fresh, &d.desc) == -EINVAL);
	pd[0].iommu = &a_io;
	pd[0].pasid = 1u << 20;
	p = probe_of(&r, &d);
	CU_ASSERT_PTR_NOT_NULL(strstr(p.reason, "PASID 1048576 is beyond its "
					       "20-bit PASID width"));
	pd[0].pasid = 0;
	p = probe_of(&r, &d);
	CU_ASSERT_PTR_NOT_NULL(strstr(p.reason, "PASID 0 is the device"));
	CU_ASSERT(plug->ops->attach(fresh, &d.desc) == -EINVAL);
	CU_ASSERT(where(&d).auto_domain);
	plug->ops->destroy(fresh);
	dev_free_name(&d);
	rig_fini(&r);
}

static CU_TestInfo tests[] = {
	{ "descriptor", test_descriptor },
	{ "probe and decline reasons", test_probe },
	{ "HWPT placement", test_placement },
	{ "start, read, stop", test_start_read_stop },
	{ "one read per mapping across a hole", test_hole },
	{ "NO_CLEAR and the unmap flow", test_no_clear_and_unmap },
	{ "huge IOPTE", test_huge_iopte },
	{ "mock 2 KiB granule", test_mock_granule },
	{ "hot-plug joins while tracking", test_hotplug_join },
	{ "IOMMU group mates", test_group_mates },
	{ "kernel errors", test_errors },
	{ "unplug while tracked", test_unplug },
	{ "PASIDs: covered, read per space", test_pasid_cover },
	{ "PASIDs: HWPT placement", test_pasid_placement },
	{ "PASIDs: 6.12 has no PASID attach", test_pasid_6_12 },
	{ "PASIDs: domains that cannot track", test_pasid_no_dirty },
	{ "PASIDs: descriptions never covered", test_pasid_bad_descs },
	CU_TEST_INFO_NULL,
};

VMIG_TEST_MAIN_SUITE(VMIG_SUITE_INIT("iommufd", suite_init, suite_fini, tests))
