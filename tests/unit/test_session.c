/*
 * test_session.c: the embedding API and the orchestrator.
 *
 * Sessions run against the simulated kernel, with the real vfio-type1
 * plugin (loaded with dlopen) and with "fake" sources registered
 * statically whose every answer the test controls: preference order,
 * the all-dirty fallback, a source failing mid-run, unknown ranges,
 * hot-plug and unplug, map and unmap during tracking, and configuration
 * runs end to end.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

#include <cjson/cJSON.h>
#include <vmig/vmig.h>

#include "core/bitmap.h"
#include <vmig/linux-uapi.h>
#include "ksim/ksim.h"
#include "testutil.h"
#include "sessionutil.h"
#include "tool/vmig_tool.h"

#define PG 4096u

/* ------------------------------------------------------------------ */
/* A fake dirty source the test steers                                 */

#define FAKE_BITS 4096 /* pages of IOVA space a fake can track */

struct fake_ctl {
	uint32_t precision;   /* what probe answers */
	int read_error;       /* read fails with this (0: works) */
	int attach_error;
	int prepare_error;    /* unmap_prepare fails with this (0: works) */
	uint64_t log[4][FAKE_BITS / 64]; /* per address space: written */
	unsigned reads, maps, attaches, detaches, starts;
	const struct vmig_host *host;
	struct vmig_range last_map;
};

static struct fake_ctl fake_a, fake_b;

static int fake_create(const struct vmig_host *host, void **inst,
		       struct fake_ctl *c)
{
	c->host = host;
	*inst = c;
	return 0;
}

static int fake_a_create(const struct vmig_host *h, void **i)
{
	return fake_create(h, i, &fake_a);
}

static int fake_b_create(const struct vmig_host *h, void **i)
{
	return fake_create(h, i, &fake_b);
}

static void fake_destroy(void *inst)
{
	(void)inst;
}

static int fake_probe(void *inst, const struct vmig_device_desc *dev,
		      struct vmig_probe *out)
{
	struct fake_ctl *c = inst;

	(void)dev;
	out->precision = c->precision;
	snprintf(out->reason, sizeof(out->reason), "fake says %u",
		 c->precision);
	return 0;
}

static int fake_attach(void *inst, const struct vmig_device_desc *dev)
{
	struct fake_ctl *c = inst;

	(void)dev;
	if (c->attach_error)
		return c->attach_error;
	c->attaches++;
	return 0;
}

static int fake_detach(void *inst, uint32_t id)
{
	(void)id;
	((struct fake_ctl *)inst)->detaches++;
	return 0;
}

static int fake_start(void *inst, uint64_t page_size)
{
	(void)page_size;
	((struct fake_ctl *)inst)->starts++;
	return 0;
}

static int fake_read(void *inst, const struct vmig_read *rq, uint64_t *bm)
{
	struct fake_ctl *c = inst;
	uint64_t first = rq->iova / PG, n = rq->length / PG, i;

	c->reads++;
	if (c->read_error)
		return c->read_error;
	for (i = 0; i < n && first + i < FAKE_BITS; i++) {
		if (vmig_bitmap_test(c->log[rq->iommu_id], first + i))
			vmig_bitmap_set(bm, i, 1);
	}
	vmig_bitmap_clear(c->log[rq->iommu_id], first,
			  first + n <= FAKE_BITS ? n : FAKE_BITS - first);
	return 0;
}

/* The harvest before an unmap: a read of the range, unless told to fail. */
static int fake_unmap_prepare(void *inst, const struct vmig_read *rq,
			      uint64_t *bm, uint32_t *flags)
{
	struct fake_ctl *c = inst;

	(void)flags;
	if (c->prepare_error)
		return c->prepare_error;
	return fake_read(inst, rq, bm);
}

static int fake_map(void *inst, uint32_t io, const struct vmig_range *r)
{
	struct fake_ctl *c = inst;

	(void)io;
	c->maps++;
	c->last_map = *r;
	return 0;
}

static const struct vmig_source_ops fake_a_ops = {
	.size = sizeof(struct vmig_source_ops),
	.create = fake_a_create, .destroy = fake_destroy,
	.probe = fake_probe, .attach = fake_attach, .detach = fake_detach,
	.start = fake_start, .read = fake_read, .map = fake_map,
	.unmap_prepare = fake_unmap_prepare,
};

static const struct vmig_source_ops fake_b_ops = {
	.size = sizeof(struct vmig_source_ops),
	.create = fake_b_create, .destroy = fake_destroy,
	.probe = fake_probe, .attach = fake_attach, .detach = fake_detach,
	.start = fake_start, .read = fake_read, .map = fake_map,
};

#define FAKE_DESC(nm, ops_)                                              \
	{                                                                \
		.size = sizeof(struct vmig_plugin),                      \
		.abi_major = VMIG_PLUGIN_ABI_MAJOR,                      \
		.abi_minor = VMIG_PLUGIN_ABI_MINOR,                      \
		.name = nm, .version = "1",                              \
		.device_kinds = VMIG_KIND_BIT(VMIG_DEVICE_VFIO_PCI) |    \
				VMIG_KIND_BIT(VMIG_DEVICE_MDEV),         \
		.iommu_kinds = VMIG_KIND_BIT(VMIG_IOMMU_TYPE1) |         \
			       VMIG_KIND_BIT(VMIG_IOMMU_IOMMUFD),        \
		.precision = VMIG_PRECISION_EXACT, .page_sizes = PG,     \
		.ops = &ops_,                                            \
	}

static const struct vmig_plugin fake_a_desc = FAKE_DESC("fake-a", fake_a_ops);
static const struct vmig_plugin fake_b_desc = FAKE_DESC("fake-b", fake_b_ops);

/* ------------------------------------------------------------------ */
/* A simulated host with one type1 container                           */

struct rig {
	struct ksim *k;
	vmig_session *s;
	uint8_t *mem;
	size_t mem_len;
	int container;
	uint32_t io;
	uint32_t region;
	struct vmig_test_log log;
};

static void rig_init(struct rig *r, size_t pages)
{
	struct vmig_session_params p = { .size = sizeof(p) };
	struct vmig_region reg = { .size = sizeof(reg), .fd = -1 };
	struct vmig_iommu io = { .size = sizeof(io), .kind = VMIG_IOMMU_TYPE1,
				 .name = "c0" };

	memset(r, 0, sizeof(*r));
	memset(&fake_a, 0, sizeof(fake_a));
	memset(&fake_b, 0, sizeof(fake_b));
	CU_ASSERT_FATAL(ksim_new(NULL, &r->k) == 0);
	p.kernel = ksim_host(r->k);
	p.log = vmig_test_session_log;
	p.log_opaque = &r->log;
	p.log_level = VMIG_LOG_DEBUG;
	CU_ASSERT_FATAL(vmig_session_new(&p, &r->s) == 0);
	r->mem_len = pages * PG;
	r->mem = mmap(NULL, r->mem_len, PROT_READ | PROT_WRITE,
		      MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	CU_ASSERT_FATAL(r->mem != MAP_FAILED);
	reg.gpa = 0x100000;
	reg.length = r->mem_len;
	reg.hva = r->mem;
	CU_ASSERT_FATAL(vmig_region_add(r->s, &reg, &r->region) == 0);
	r->container = p.kernel->open(p.kernel->kctx, "/dev/vfio/vfio", 2);
	CU_ASSERT_FATAL(r->container >= 0);
	io.fd = r->container;
	CU_ASSERT_FATAL(vmig_iommu_add(r->s, &io, &r->io) == 0);
}

/* A device in its own group, put into the container. */
static struct ksim_device *rig_device(struct rig *r, const char *name,
				      enum ksim_device_kind kind, int group,
				      uint32_t *id)
{
	const struct vmig_host *h = ksim_host(r->k);
	struct ksim_device_params dp = { .name = name, .kind = kind,
					 .group = group };
	struct vmig_device d = {
		.size = sizeof(d),
		.kind = kind == KSIM_DEV_MDEV ? VMIG_DEVICE_MDEV
					      : VMIG_DEVICE_VFIO_PCI,
		.name = name,
		.iommu_id = r->io,
		.device_fd = -1,
	};
	struct ksim_device *kd;
	char path[32];
	int gfd, first = 1, ret;

	CU_ASSERT_FATAL(ksim_device_add(r->k, &dp, &kd) == 0);
	snprintf(path, sizeof(path), "/dev/vfio/%d", group);
	gfd = h->open(h->kctx, path, 2);
	CU_ASSERT_FATAL(gfd >= 0);
	CU_ASSERT_FATAL(h->ioctl(h->kctx, gfd, VFIO_GROUP_SET_CONTAINER,
				 &r->container) == 0);
	ret = h->ioctl(h->kctx, r->container, VFIO_SET_IOMMU,
		       (void *)(uintptr_t)VFIO_TYPE1v2_IOMMU);
	first = ret == 0;
	(void)first;
	d.group_fd = gfd;
	/* A device works (DMA, pins) while its fd is open, as in Linux. */
	d.device_fd = h->ioctl(h->kctx, gfd, VFIO_GROUP_GET_DEVICE_FD,
			       (void *)name);
	CU_ASSERT_FATAL(d.device_fd >= 0);
	CU_ASSERT_FATAL(vmig_device_add(r->s, &d, id) == 0);
	return kd;
}

static void rig_map(struct rig *r, uint64_t iova, uint64_t gpa_off,
		    uint64_t len, uint32_t flags)
{
	struct vmig_dma_map m = {
		.size = sizeof(m),
		.flags = flags,
		.iommu_id = r->io,
		.iova = iova,
		.length = len,
		.gpa = 0x100000 + gpa_off,
	};

	CU_ASSERT_FATAL(vmig_dma_map(r->s, &m) == 0);
}

static void rig_fini(struct rig *r)
{
	vmig_session_free(r->s);
	ksim_free(r->k);
	munmap(r->mem, r->mem_len);
}

static uint64_t dirty_count(struct rig *r)
{
	const uint64_t *bm;
	uint64_t n;

	CU_ASSERT_FATAL(vmig_dirty_bitmap(r->s, r->region, &bm, &n) == 0);
	return vmig_bitmap_count(bm, 0, n);
}

static bool dirty_page(struct rig *r, uint64_t page)
{
	const uint64_t *bm;
	uint64_t n;

	CU_ASSERT_FATAL(vmig_dirty_bitmap(r->s, r->region, &bm, &n) == 0);
	return page < n && vmig_bitmap_test(bm, page);
}

static void status(struct rig *r, uint32_t id, struct vmig_device_status *ds)
{
	memset(ds, 0, sizeof(*ds));
	ds->size = sizeof(*ds);
	CU_ASSERT_FATAL(vmig_device_status(r->s, id, ds) == 0);
}

/* The device's status in *ds, with the source tracking it. */
static void source_is(struct rig *r, uint32_t id,
		      struct vmig_device_status *ds, const char *source)
{
	status(r, id, ds);
	CU_ASSERT_STRING_EQUAL(ds->source, source);
}

/* ------------------------------------------------------------------ */
/* API validation                                                      */

static void test_params(void)
{
	struct vmig_session_params p = { .size = 4 };
	struct vmig_host bad = { .size = sizeof(bad) };
	vmig_session *s = (void *)1;

	CU_ASSERT_EQUAL(vmig_session_new(&p, &s), -EINVAL);
	CU_ASSERT_PTR_NULL(s);
	p.size = sizeof(p);
	p.role = 7;
	CU_ASSERT_EQUAL(vmig_session_new(&p, &s), -EINVAL);
	p.role = 0;
	p.kernel = &bad; /* no operations */
	CU_ASSERT_EQUAL(vmig_session_new(&p, &s), -EINVAL);
	CU_ASSERT_EQUAL(vmig_session_new(NULL, NULL), -EINVAL);
	CU_ASSERT_EQUAL(vmig_session_new(NULL, &s), 0);
	CU_ASSERT_STRING_EQUAL(vmig_errmsg(s), "");
	/* A destination session does not track. */
	vmig_session_free(s);
	p.kernel = NULL;
	p.role = VMIG_ROLE_DESTINATION;
	CU_ASSERT_EQUAL(vmig_session_new(&p, &s), 0);
	CU_ASSERT_EQUAL(vmig_tracking_start(s), -EINVAL);
	CU_ASSERT_EQUAL(vmig_run(s, NULL), -EINVAL);
	vmig_session_free(s);
	vmig_session_free(NULL);
	CU_ASSERT_STRING_EQUAL(vmig_errmsg(NULL), "");
	CU_ASSERT_STRING_EQUAL(vmig_strerror(VMIG_EABI),
			       "plugin built for another ABI major");
	CU_ASSERT_STRING_EQUAL(vmig_strerror(-ENOENT),
			       "No such file or directory");
}

/* The real kernel's table: system calls, errors as negative errno. */
static void test_linux_kernel(void)
{
	const struct vmig_host *k = vmig_linux_kernel();
	char buf[4];
	int fd;

	CU_ASSERT_FATAL(k != NULL);
	CU_ASSERT_EQUAL(k->size, sizeof(struct vmig_host));
	CU_ASSERT_PTR_NULL(k->log);
	CU_ASSERT_EQUAL(k->open(k->kctx, "/nonexistent/vmig", 0), -ENOENT);
	fd = k->open(k->kctx, "/dev/zero", 0);
	CU_ASSERT_FATAL(fd >= 0);
	CU_ASSERT_EQUAL(k->read(k->kctx, fd, buf, sizeof(buf)), 4);
	CU_ASSERT_EQUAL(k->ioctl(k->kctx, fd, VFIO_IOMMU_GET_INFO, NULL),
			-ENOTTY);
	CU_ASSERT_EQUAL(k->close(k->kctx, fd), 0);
	CU_ASSERT_EQUAL(k->close(k->kctx, fd), -EBADF);
}

static void test_regions_and_maps(void)
{
	struct rig r;
	struct vmig_region reg = { .size = sizeof(reg), .fd = -1 };
	struct vmig_dma_map m = { .size = sizeof(m),
				  .flags = VMIG_DMA_READ | VMIG_DMA_WRITE };
	static uint8_t other[8 * 4096] __attribute__((aligned(4096)));

	rig_init(&r, 64);
	/* Overlapping guest range. */
	reg.gpa = 0x100000 + 63 * PG;
	reg.length = 2 * PG;
	reg.hva = other;
	CU_ASSERT_EQUAL(vmig_region_add(r.s, &reg, NULL), -EEXIST);
	CU_ASSERT_PTR_NOT_NULL(strstr(vmig_errmsg(r.s), "ram0"));
	/* Overlapping host range. */
	reg.gpa = 0x900000;
	reg.hva = r.mem + PG;
	CU_ASSERT_EQUAL(vmig_region_add(r.s, &reg, NULL), -EEXIST);
	/* Unaligned. */
	reg.hva = other;
	reg.gpa = 0x900100;
	CU_ASSERT_EQUAL(vmig_region_add(r.s, &reg, NULL), -EINVAL);
	reg.gpa = 0x900000;
	reg.length = 100;
	CU_ASSERT_EQUAL(vmig_region_add(r.s, &reg, NULL), -EINVAL);
	reg.length = PG;
	reg.hva = NULL;
	CU_ASSERT_EQUAL(vmig_region_add(r.s, &reg, NULL), -EINVAL);

	/* Mappings: outside every region, across two, unknown space. */
	m.iommu_id = r.io;
	m.iova = 0;
	m.length = PG;
	m.gpa = 0x800000;
	CU_ASSERT_EQUAL(vmig_dma_map(r.s, &m), -EINVAL);
	CU_ASSERT_PTR_NOT_NULL(strstr(vmig_errmsg(r.s), "one region"));
	m.gpa = 0x100000 + 63 * PG;
	m.length = 2 * PG;
	CU_ASSERT_EQUAL(vmig_dma_map(r.s, &m), -EINVAL);
	m.iommu_id = 42;
	CU_ASSERT_EQUAL(vmig_dma_map(r.s, &m), -ENOENT);
	m.iommu_id = r.io;
	m.flags = 0;
	m.length = PG;
	CU_ASSERT_EQUAL(vmig_dma_map(r.s, &m), -EINVAL);
	m.flags = VMIG_DMA_WRITE | 0x100;
	CU_ASSERT_EQUAL(vmig_dma_map(r.s, &m), -EINVAL);

	/* The kernel has no IOMMU set yet (no group): its error shows. */
	m.flags = VMIG_DMA_READ | VMIG_DMA_WRITE;
	m.gpa = 0x100000;
	CU_ASSERT(vmig_dma_map(r.s, &m) < 0);

	rig_device(&r, "0000:01:00.0", KSIM_DEV_PCI, 1, NULL);
	rig_map(&r, 0, 0, 16 * PG, VMIG_DMA_READ | VMIG_DMA_WRITE);
	rig_map(&r, 32 * PG, 32 * PG, 16 * PG, VMIG_DMA_READ | VMIG_DMA_WRITE);
	m.iova = 8 * PG;
	m.length = PG;
	m.gpa = 0x100000;
	CU_ASSERT_EQUAL(vmig_dma_map(r.s, &m), -EEXIST);
	/* Unmaps: cutting through, nothing there, then a whole one. */
	CU_ASSERT_EQUAL(vmig_dma_unmap(r.s, r.io, 0, 8 * PG), -EINVAL);
	CU_ASSERT_EQUAL(vmig_dma_unmap(r.s, r.io, 16 * PG, 16 * PG), -ENOENT);
	CU_ASSERT_EQUAL(vmig_dma_unmap(r.s, r.io, 0, 100), -EINVAL);
	CU_ASSERT_EQUAL(vmig_dma_unmap(r.s, 9, 0, PG), -ENOENT);
	CU_ASSERT_EQUAL(vmig_dma_unmap(r.s, r.io, 0, 48 * PG), 0);
	CU_ASSERT_EQUAL(vmig_dma_unmap(r.s, r.io, 0, 16 * PG), -ENOENT);
	rig_fini(&r);
}

static void test_devices_api(void)
{
	struct rig r;
	struct vmig_device d = { .size = sizeof(d), .kind = VMIG_DEVICE_MDEV,
				 .name = "x", .device_fd = -1,
				 .group_fd = -1 };
	struct vmig_device_status ds;
	struct vmig_pasid pasid = { .pasid = 1, .iommu_id = 77 };
	const char *pref[] = { "fake-b", "Not A Name" };
	uint32_t id;

	rig_init(&r, 16);
	d.iommu_id = r.io;
	CU_ASSERT_EQUAL(vmig_device_add(r.s, &d, &id), 0);
	CU_ASSERT_EQUAL(vmig_device_add(r.s, &d, NULL), -EEXIST);
	d.name = "";
	CU_ASSERT_EQUAL(vmig_device_add(r.s, &d, NULL), -EINVAL);
	d.name = "y";
	d.kind = 9;
	CU_ASSERT_EQUAL(vmig_device_add(r.s, &d, NULL), -EINVAL);
	d.kind = VMIG_DEVICE_VFIO_PCI;
	d.iommu_id = 5;
	CU_ASSERT_EQUAL(vmig_device_add(r.s, &d, NULL), -ENOENT);
	d.iommu_id = r.io;
	d.nr_pasids = 1;
	d.pasids = &pasid;
	CU_ASSERT_EQUAL(vmig_device_add(r.s, &d, NULL), -ENOENT);
	source_is(&r, id, &ds, "");
	CU_ASSERT_EQUAL(ds.precision, VMIG_PRECISION_NONE);
	ds.size = 8;
	CU_ASSERT_EQUAL(vmig_device_status(r.s, id, &ds), -EINVAL);
	CU_ASSERT_EQUAL(vmig_device_status(r.s, 99, &ds), -ENOENT);
	CU_ASSERT_EQUAL(vmig_set_preference(r.s, pref, 2), -EINVAL);
	CU_ASSERT_EQUAL(vmig_set_preference(r.s, pref, 1), 0);
	CU_ASSERT_EQUAL(vmig_device_remove(r.s, id), 0);
	CU_ASSERT_EQUAL(vmig_device_remove(r.s, id), -ENOENT);
	/* The name is free again. */
	d.name = "x";
	d.nr_pasids = 0;
	CU_ASSERT_EQUAL(vmig_device_add(r.s, &d, NULL), 0);
	rig_fini(&r);
}

static void test_plugins_api(void)
{
	struct rig r;
	struct vmig_plugin bad = fake_a_desc;

	rig_init(&r, 16);
	CU_ASSERT_EQUAL(vmig_plugin_load(r.s, "no-such-plugin"), -ENOENT);
	CU_ASSERT_PTR_NOT_NULL(strstr(vmig_errmsg(r.s), "no-such-plugin"));
	CU_ASSERT_EQUAL(vmig_plugin_load(r.s, ""), -EINVAL);
	CU_ASSERT_EQUAL(vmig_plugin_add_path(r.s, ""), -EINVAL);
	CU_ASSERT_EQUAL(vmig_plugin_register(r.s, &fake_a_desc), 0);
	/* The same descriptor again is a no-op; another of that name is not. */
	CU_ASSERT_EQUAL(vmig_plugin_register(r.s, &fake_a_desc), 0);
	bad.ops = &fake_b_ops;
	CU_ASSERT_EQUAL(vmig_plugin_register(r.s, &bad), VMIG_EDUPLICATE);
	bad.name = "fake-c";
	bad.abi_major = VMIG_PLUGIN_ABI_MAJOR + 1;
	CU_ASSERT_EQUAL(vmig_plugin_register(r.s, &bad), VMIG_EABI);
	bad.abi_major = VMIG_PLUGIN_ABI_MAJOR;
	bad.ops = NULL;
	CU_ASSERT_EQUAL(vmig_plugin_register(r.s, &bad), VMIG_EBADPLUGIN);
	CU_ASSERT_EQUAL(vmig_plugin_add_path(r.s, VMIG_BUILD_PLUGIN_DIR), 0);
	CU_ASSERT_EQUAL(vmig_plugin_load(r.s, "vfio-type1"), 0);
	/* The same file again is a no-op. */
	CU_ASSERT_EQUAL(vmig_plugin_load(r.s, "vfio-type1"), 0);
	CU_ASSERT_EQUAL(vmig_tracking_start(r.s), 0);
	CU_ASSERT_EQUAL(vmig_tracking_start(r.s), -EALREADY);
	CU_ASSERT_EQUAL(vmig_plugin_register(r.s, &fake_b_desc), -EBUSY);
	CU_ASSERT_EQUAL(vmig_set_preference(r.s, NULL, 0), -EBUSY);
	CU_ASSERT_EQUAL(vmig_tracking_stop(r.s), 0);
	CU_ASSERT_EQUAL(vmig_tracking_stop(r.s), -EINVAL);
	CU_ASSERT_EQUAL(vmig_dirty_sync(r.s), -EINVAL);
	rig_fini(&r);
}

/* ------------------------------------------------------------------ */
/* Tracking with the real type1 plugin                                 */

static void test_type1_pci(void)
{
	struct rig r;
	struct vmig_device_status ds;
	uint32_t id;

	rig_init(&r, 256);
	rig_device(&r, "0000:01:00.0", KSIM_DEV_PCI, 1, &id);
	rig_map(&r, 0, 0, 64 * PG, VMIG_DMA_READ | VMIG_DMA_WRITE);
	rig_map(&r, 1 << 20, 128 * PG, 32 * PG, VMIG_DMA_READ | VMIG_DMA_WRITE);
	rig_map(&r, 2 << 20, 200 * PG, 8 * PG, VMIG_DMA_READ);
	CU_ASSERT_EQUAL(vmig_plugin_add_path(r.s, VMIG_BUILD_PLUGIN_DIR), 0);
	CU_ASSERT_FATAL(vmig_plugin_load(r.s, "vfio-type1") == 0);
	CU_ASSERT_FATAL(vmig_tracking_start(r.s) == 0);
	/* Nothing sent yet: all of memory is dirty. */
	CU_ASSERT_EQUAL(dirty_count(&r), 256);
	source_is(&r, id, &ds, "vfio-type1");
	CU_ASSERT_EQUAL(ds.precision, VMIG_PRECISION_ALL_MAPPED);

	CU_ASSERT_EQUAL(vmig_dirty_clear(r.s, r.region), 0);
	/* Every writable mapped page; a device cannot write the rest. */
	CU_ASSERT_EQUAL(vmig_dirty_sync(r.s), 64 + 32);
	CU_ASSERT(dirty_page(&r, 0) && dirty_page(&r, 159));
	CU_ASSERT_FALSE(dirty_page(&r, 64) || dirty_page(&r, 160) ||
			dirty_page(&r, 200));
	CU_ASSERT_EQUAL(vmig_dirty_clear(r.s, r.region), 0);
	CU_ASSERT_EQUAL(vmig_dirty_sync(r.s), 64 + 32);
	CU_ASSERT_EQUAL(vmig_dirty_clear(r.s, 5), -ENOENT);
	rig_fini(&r);
}

static void test_type1_mdev_and_unmap(void)
{
	struct rig r;
	struct vmig_device_status ds;
	struct ksim_device *kd;
	uint32_t id;

	rig_init(&r, 256);
	kd = rig_device(&r, "mdev-1", KSIM_DEV_MDEV, 3, &id);
	rig_map(&r, 0, 0, 64 * PG, VMIG_DMA_READ | VMIG_DMA_WRITE);
	rig_map(&r, 64 * PG, 64 * PG, 64 * PG, VMIG_DMA_READ | VMIG_DMA_WRITE);
	CU_ASSERT_EQUAL(vmig_plugin_add_path(r.s, VMIG_BUILD_PLUGIN_DIR), 0);
	CU_ASSERT_FATAL(vmig_plugin_load(r.s, "vfio-type1") == 0);
	CU_ASSERT_FATAL(vmig_tracking_start(r.s) == 0);
	status(&r, id, &ds);
	CU_ASSERT_EQUAL(ds.precision, VMIG_PRECISION_EXACT);
	CU_ASSERT_EQUAL(vmig_dirty_clear(r.s, r.region), 0);

	CU_ASSERT_FATAL(ksim_dma_write(kd, 5 * PG, NULL, 10) == 0);
	CU_ASSERT_FATAL(ksim_dma_write(kd, 70 * PG, NULL, 10) == 0);
	CU_ASSERT_EQUAL(vmig_dirty_sync(r.s), 2);
	CU_ASSERT(dirty_page(&r, 5) && dirty_page(&r, 70));
	CU_ASSERT_EQUAL(vmig_dirty_clear(r.s, r.region), 0);

	/* Unmap while tracking: the last write is harvested, not lost. */
	CU_ASSERT_FATAL(ksim_dma_write(kd, 100 * PG, NULL, 10) == 0);
	CU_ASSERT_EQUAL(vmig_dma_unmap(r.s, r.io, 64 * PG, 64 * PG), 0);
	CU_ASSERT_EQUAL(dirty_count(&r), 1);
	CU_ASSERT(dirty_page(&r, 100));
	CU_ASSERT_EQUAL(ksim_dma_write(kd, 100 * PG, NULL, 10), -EFAULT);
	CU_ASSERT_EQUAL(vmig_dirty_sync(r.s), 1);

	/* Unplug: a last read harvests what it wrote. */
	CU_ASSERT_EQUAL(vmig_dirty_clear(r.s, r.region), 0);
	CU_ASSERT_FATAL(ksim_dma_write(kd, 9 * PG, NULL, 10) == 0);
	CU_ASSERT_EQUAL(vmig_device_remove(r.s, id), 0);
	CU_ASSERT(dirty_page(&r, 9));
	rig_fini(&r);
}

/* ------------------------------------------------------------------ */
/* Arbitration with fake sources                                       */

static void arb_rig(struct rig *r, uint32_t *id)
{
	rig_init(r, 128);
	rig_device(r, "0000:01:00.0", KSIM_DEV_PCI, 1, id);
	rig_map(r, 0, 0, 64 * PG, VMIG_DMA_READ | VMIG_DMA_WRITE);
	rig_map(r, 64 * PG, 64 * PG, 32 * PG, VMIG_DMA_READ);
	CU_ASSERT_FATAL(vmig_plugin_register(r->s, &fake_a_desc) == 0);
	CU_ASSERT_FATAL(vmig_plugin_register(r->s, &fake_b_desc) == 0);
}

/* arb_rig, the fakes answering these precisions, tracking started. */
static void arb_tracking(struct rig *r, uint32_t *id, uint32_t precision_a,
			 uint32_t precision_b)
{
	arb_rig(r, id);
	fake_a.precision = precision_a;
	fake_b.precision = precision_b;
	CU_ASSERT_FATAL(vmig_tracking_start(r->s) == 0);
}

static void test_preference(void)
{
	struct rig r;
	struct vmig_device_status ds;
	const char *pref[] = { "fake-b", "fake-a" };
	char buf[16384];
	uint32_t id;

	arb_rig(&r, &id);
	fake_a.precision = VMIG_PRECISION_EXACT;
	fake_b.precision = VMIG_PRECISION_SUPERSET;
	CU_ASSERT_EQUAL(vmig_set_preference(r.s, pref, 2), 0);
	CU_ASSERT_FATAL(vmig_tracking_start(r.s) == 0);
	source_is(&r, id, &ds, "fake-b");
	CU_ASSERT_EQUAL(ds.precision, VMIG_PRECISION_SUPERSET);
	CU_ASSERT_EQUAL(fake_b.attaches, 1);
	CU_ASSERT_EQUAL(fake_b.starts, 1);
	CU_ASSERT_EQUAL(fake_a.attaches, 0);
	CU_ASSERT_EQUAL(fake_a.starts, 0);

	/* Only what the source reports is dirty. */
	CU_ASSERT_EQUAL(vmig_dirty_clear(r.s, r.region), 0);
	vmig_bitmap_set(fake_b.log[r.io], 3, 2);
	CU_ASSERT_EQUAL(vmig_dirty_sync(r.s), 2);
	CU_ASSERT(dirty_page(&r, 3) && dirty_page(&r, 4));
	/* Read-only mappings are never read. */
	CU_ASSERT_EQUAL(fake_b.reads, 1);

	CU_ASSERT(vmig_report_json(r.s, buf, sizeof(buf)) > 0);
	CU_ASSERT_PTR_NOT_NULL(strstr(buf, "\"fake-a\""));
	CU_ASSERT_PTR_NOT_NULL(strstr(buf, "fake says 1"));
	rig_fini(&r);
}

static void test_fallback(void)
{
	struct rig r;
	struct vmig_device_status ds;
	uint32_t id;

	arb_rig(&r, &id);
	CU_ASSERT_FATAL(vmig_tracking_start(r.s) == 0);
	source_is(&r, id, &ds, "all-dirty");
	CU_ASSERT_EQUAL(ds.precision, VMIG_PRECISION_ALL_MAPPED);
	CU_ASSERT_EQUAL(vmig_dirty_clear(r.s, r.region), 0);
	/* Every writable mapped page, on every sync; not the read-only. */
	CU_ASSERT_EQUAL(vmig_dirty_sync(r.s), 64);
	CU_ASSERT_EQUAL(vmig_dirty_clear(r.s, r.region), 0);
	CU_ASSERT_EQUAL(vmig_dirty_sync(r.s), 64);
	CU_ASSERT_FALSE(dirty_page(&r, 64));
	rig_fini(&r);
}

/*
 * A sync whose source fails: all 64 pages dirty, the device's source then
 * source, and the log says logged.
 */
static void failed_sync(struct rig *r, uint32_t id,
			struct vmig_device_status *ds, const char *source,
			const char *logged)
{
	CU_ASSERT_EQUAL(vmig_dirty_sync(r->s), 64);
	source_is(r, id, ds, source);
	CU_ASSERT_PTR_NOT_NULL(strstr(r->log.text, logged));
}

/* A source failing mid-run: its ranges dirty, the next one takes over. */
static void test_source_failure(void)
{
	struct rig r;
	struct vmig_device_status ds;
	char buf[16384];
	cJSON *root, *src;
	int failed = 0;
	uint32_t id;

	arb_tracking(&r, &id, VMIG_PRECISION_EXACT, VMIG_PRECISION_EXACT);
	source_is(&r, id, &ds, "fake-a");
	CU_ASSERT_EQUAL(vmig_dirty_clear(r.s, r.region), 0);

	/* A first failure: its range is dirty, and it is restarted. */
	fake_a.read_error = -EIO;
	failed_sync(&r, id, &ds, "fake-a",
		    "fake-a: read failed (Input/output error): restarted");
	CU_ASSERT_EQUAL(fake_a.attaches, 2);
	CU_ASSERT_EQUAL(fake_a.starts, 2);
	/* It fails again: the next candidate takes the device over. */
	CU_ASSERT_EQUAL(vmig_dirty_clear(r.s, r.region), 0);
	failed_sync(&r, id, &ds, "fake-b",
		    "fake-a: read failed (Input/output error) again");
	CU_ASSERT_EQUAL(fake_a.detaches, 1);
	CU_ASSERT_EQUAL(fake_b.starts, 1);

	/* From now on fake-b alone says what is dirty. */
	CU_ASSERT_EQUAL(vmig_dirty_clear(r.s, r.region), 0);
	vmig_bitmap_set(fake_b.log[r.io], 7, 1);
	CU_ASSERT_EQUAL(vmig_dirty_sync(r.s), 1);

	/* When fake-b fails too (twice), only the fallback is left. */
	fake_b.read_error = -ENODEV;
	CU_ASSERT_EQUAL(vmig_dirty_clear(r.s, r.region), 0);
	CU_ASSERT_EQUAL(vmig_dirty_sync(r.s), 64);
	CU_ASSERT_EQUAL(vmig_dirty_sync(r.s), 64);
	source_is(&r, id, &ds, "all-dirty");
	CU_ASSERT_EQUAL(vmig_dirty_clear(r.s, r.region), 0);
	CU_ASSERT_EQUAL(vmig_dirty_sync(r.s), 64);
	CU_ASSERT(vmig_report_json(r.s, buf, sizeof(buf)) > 0);
	root = cJSON_Parse(buf);
	CU_ASSERT_FATAL(root != NULL);
	cJSON_ArrayForEach(src, cJSON_GetObjectItem(root, "sources"))
		failed += cJSON_IsTrue(cJSON_GetObjectItem(src, "failed"));
	CU_ASSERT_EQUAL(failed, 2);
	cJSON_Delete(root);
	rig_fini(&r);
}

/* Not exported: closes an accounting interval, as a migration does. */
uint64_t vmig_dirty_account(vmig_session *s, uint64_t *const *written);

/* A source's pages_reported in the report, by name. */
static double reported_by(vmig_session *s, const char *name)
{
	char buf[16384];
	cJSON *root, *src;
	double v = -1;

	CU_ASSERT_FATAL(vmig_report_json(s, buf, sizeof(buf)) > 0);
	root = cJSON_Parse(buf);
	CU_ASSERT_FATAL(root != NULL);
	cJSON_ArrayForEach(src, cJSON_GetObjectItem(root, "sources"))
		if (!strcmp(cJSON_GetStringValue(cJSON_GetObjectItem(src,
								      "name")),
			    name))
			v = json_num(src, "pages_reported");
	cJSON_Delete(root);
	return v;
}

/*
 * A harvest before an unmap that fails: vmig marks the whole range on
 * its own account (docs/report.md), not on the source's, which reported
 * nothing.
 */
static void test_unmap_harvest_failure_accounting(void)
{
	struct rig r;
	struct vmig_device_status ds;
	uint32_t id;

	arb_tracking(&r, &id, VMIG_PRECISION_EXACT, VMIG_PRECISION_EXACT);
	source_is(&r, id, &ds, "fake-a");
	CU_ASSERT_EQUAL(vmig_dirty_clear(r.s, r.region), 0);
	vmig_dirty_account(r.s, NULL);
	CU_ASSERT_EQUAL(reported_by(r.s, "fake-a"), 0);

	fake_a.prepare_error = -EIO;
	CU_ASSERT_EQUAL(vmig_dma_unmap(r.s, r.io, 0, 64 * PG), 0);
	CU_ASSERT_EQUAL(dirty_count(&r), 64);
	vmig_dirty_account(r.s, NULL);
	CU_ASSERT_EQUAL(reported_by(r.s, "fake-a"), 0);
	CU_ASSERT(reported_by(r.s, "all-dirty") >= 64);
	rig_fini(&r);
}

/* A transient failure: restarted, the source keeps its device. */
static void test_source_restart(void)
{
	struct rig r;
	struct vmig_device_status ds;
	uint32_t id;

	arb_tracking(&r, &id, VMIG_PRECISION_EXACT, VMIG_PRECISION_EXACT);
	CU_ASSERT_EQUAL(vmig_dirty_clear(r.s, r.region), 0);
	fake_a.read_error = -EIO;
	CU_ASSERT_EQUAL(vmig_dirty_sync(r.s), 64);
	fake_a.read_error = 0;
	CU_ASSERT_EQUAL(vmig_dirty_clear(r.s, r.region), 0);
	vmig_bitmap_set(fake_a.log[r.io], 9, 1);
	CU_ASSERT_EQUAL(vmig_dirty_sync(r.s), 1);
	CU_ASSERT(dirty_page(&r, 9));
	source_is(&r, id, &ds, "fake-a");
	CU_ASSERT_EQUAL(fake_b.attaches, 0);
	rig_fini(&r);
}

static void test_attach_failure_and_unknown_ranges(void)
{
	struct rig r;
	struct vmig_device_status ds;
	struct vmig_range rg = { 10 * PG + 5, 2 * PG };
	uint32_t id;

	arb_rig(&r, &id);
	fake_a.precision = VMIG_PRECISION_EXACT;
	fake_a.attach_error = -EOPNOTSUPP;
	fake_b.precision = VMIG_PRECISION_EXACT;
	CU_ASSERT_FATAL(vmig_tracking_start(r.s) == 0);
	source_is(&r, id, &ds, "fake-b");
	CU_ASSERT_EQUAL(vmig_dirty_clear(r.s, r.region), 0);
	/* The plugin says some writes may be lost: those pages go. */
	fake_b.host->ranges_unknown(fake_b.host->ctx, r.io, &rg, 1);
	CU_ASSERT_EQUAL(dirty_count(&r), 3);
	CU_ASSERT(dirty_page(&r, 10) && dirty_page(&r, 12));
	rig_fini(&r);
}

static void test_hotplug_and_map(void)
{
	struct rig r;
	struct vmig_device_status ds;
	uint32_t id, id2;

	arb_tracking(&r, &id, VMIG_PRECISION_EXACT, VMIG_PRECISION_NONE);
	CU_ASSERT_EQUAL(vmig_dirty_clear(r.s, r.region), 0);

	/* A device arriving mid-run: its space is dirty once. */
	rig_device(&r, "0000:02:00.0", KSIM_DEV_PCI, 2, &id2);
	CU_ASSERT_EQUAL(dirty_count(&r), 64);
	status(&r, id2, &ds);
	CU_ASSERT_STRING_EQUAL(ds.source, "fake-a");
	CU_ASSERT_EQUAL(fake_a.attaches, 2);
	CU_ASSERT_EQUAL(vmig_dirty_clear(r.s, r.region), 0);
	CU_ASSERT_EQUAL(vmig_dirty_sync(r.s), 0);

	/* A new mapping: the source hears of it before it exists. */
	rig_map(&r, 96 * PG, 96 * PG, 16 * PG, VMIG_DMA_READ | VMIG_DMA_WRITE);
	CU_ASSERT_EQUAL(fake_a.maps, 1);
	CU_ASSERT_EQUAL(fake_a.last_map.iova, 96 * PG);
	CU_ASSERT_EQUAL(fake_a.last_map.length, 16 * PG);
	vmig_bitmap_set(fake_a.log[r.io], 100, 1);
	CU_ASSERT_EQUAL(vmig_dirty_sync(r.s), 1);
	CU_ASSERT(dirty_page(&r, 100));

	/* Unplug harvests: a last read of its space. */
	vmig_bitmap_set(fake_a.log[r.io], 20, 1);
	CU_ASSERT_EQUAL(vmig_device_remove(r.s, id2), 0);
	CU_ASSERT(dirty_page(&r, 20));
	CU_ASSERT_EQUAL(fake_a.detaches, 1);
	rig_fini(&r);
}

/* ------------------------------------------------------------------ */
/* Configuration runs                                                  */

static const char *const sim_head =
	"{\n"
	"  \"memory\": [ { \"gpa\": 0, \"size\": \"4M\" },\n"
	"              { \"gpa\": \"0x100000000\", \"size\": \"2M\" } ],\n"
	"  \"devices\": [\n"
	"    { \"name\": \"nic\", \"kind\": \"vfio-pci\", \"group\": 4,\n"
	"      \"container\": \"pci\" },\n"
	"    { \"name\": \"vgpu\", \"kind\": \"mdev\", \"group\": 5,\n"
	"      \"address\": \"mdev-uuid\", \"container\": \"mdev\" }\n"
	"  ],\n"
	"  \"run\": { \"mode\": \"track\", \"iterations\": 4 },\n"
	"  \"kernel\": { \"type\": \"simulated\", \"devices\": [\n"
	"    { \"name\": \"nic\", \"dma\": { \"pattern\": \"random\",\n"
	"      \"writes_per_step\": 50 } },\n"
	"    { \"name\": \"vgpu\", \"pin\": { \"iova\": \"0x10000\", \"pages\": 4 },\n"
	"      \"dma\": { \"pattern\": \"sequential\", \"writes_per_step\": 20 } }\n"
	"  ]";
static const char *const sim_tail = " }\n}\n";

static cJSON *run_config(const char *faults, int *ret, struct rig *r)
{
	char text[4096], err[512], *buf;
	struct vmig_session_params p = { .size = sizeof(p),
					 .log = vmig_test_session_log,
					 .log_opaque = &r->log,
					 .log_level = VMIG_LOG_DEBUG };
	vmig_config *cfg;
	vmig_session *s;
	int64_t len;
	cJSON *root;

	snprintf(text, sizeof(text), "%s%s%s", sim_head, faults, sim_tail);
	CU_ASSERT_FATAL(vmig_config_parse(text, strlen(text), NULL, &cfg, err,
					  sizeof(err)) == 0);
	CU_ASSERT_FATAL(vmig_session_new(&p, &s) == 0);
	CU_ASSERT_EQUAL(vmig_plugin_add_path(s, VMIG_BUILD_PLUGIN_DIR), 0);
	/* Paths added before are fine; plugins or memory are not. */
	*ret = vmig_session_configure(s, cfg);
	CU_ASSERT_EQUAL_FATAL(*ret, 0);
	CU_ASSERT_EQUAL(vmig_session_configure(s, cfg), -EBUSY);
	vmig_config_free(cfg);
	*ret = vmig_run(s, NULL);
	len = vmig_report_json(s, NULL, 0);
	CU_ASSERT_FATAL(len > 0);
	buf = malloc((size_t)len + 1);
	CU_ASSERT_FATAL(buf != NULL);
	CU_ASSERT_EQUAL(vmig_report_json(s, buf, (size_t)len + 1), len);
	root = cJSON_Parse(buf);
	free(buf);
	vmig_session_free(s);
	CU_ASSERT_FATAL(root != NULL);
	return root;
}

static void test_config_run(void)
{
	struct rig r = { 0 };
	cJSON *root, *nic, *vgpu, *it;
	int ret;

	root = run_config("", &ret, &r);
	CU_ASSERT_EQUAL(ret, 0);
	CU_ASSERT_EQUAL(json_num(root, "pages_missed"), 0);
	CU_ASSERT(json_num(root, "pages_written") > 0);
	/* 6 MiB mapped in the pci container: every page, every time. */
	CU_ASSERT_EQUAL(json_num(root, "pages_reported"), 4 * 1536);
	CU_ASSERT_EQUAL(cJSON_GetArraySize(cJSON_GetObjectItem(root,
							       "iterations")),
			4);
	it = cJSON_GetArrayItem(cJSON_GetObjectItem(root, "iterations"), 0);
	CU_ASSERT_EQUAL(json_num(it, "pages_reported"), 1536);
	CU_ASSERT_EQUAL(json_num(it, "pages_missed"), 0);
	nic = json_device(root, "nic");
	vgpu = json_device(root, "vgpu");
	CU_ASSERT_STRING_EQUAL(json_str(nic, "source"), "vfio-type1");
	CU_ASSERT_STRING_EQUAL(json_str(nic, "precision"), "all-mapped");
	CU_ASSERT_STRING_EQUAL(json_str(vgpu, "precision"), "exact");
	CU_ASSERT_STRING_EQUAL(json_str(root, "kernel"), "simulated");
	cJSON_Delete(root);
}

/*
 * Every VFIO_IOMMU_DIRTY_PAGES call fails: type1 cannot even start, its
 * devices fall back to all-dirty, and nothing is missed.
 */
static void test_config_run_fault(void)
{
	struct rig r = { 0 };
	cJSON *root, *src, *nic;
	int ret, failed = 0;

	root = run_config(", \"faults\": [ { \"request\": "
			  "\"VFIO_IOMMU_DIRTY_PAGES\", \"errno\": \"EIO\", "
			  "\"times\": -1 } ]",
			  &ret, &r);
	CU_ASSERT_EQUAL(ret, 0);
	CU_ASSERT_EQUAL(json_num(root, "pages_missed"), 0);
	CU_ASSERT(json_num(root, "pages_written") > 0);
	cJSON_ArrayForEach(src, cJSON_GetObjectItem(root, "sources")) {
		if (cJSON_IsTrue(cJSON_GetObjectItem(src, "failed")))
			failed++;
	}
	CU_ASSERT_EQUAL(failed, 1);
	nic = json_device(root, "nic");
	CU_ASSERT_STRING_EQUAL(json_str(nic, "source"), "all-dirty");
	CU_ASSERT_PTR_NOT_NULL(strstr(r.log.text, "vfio-type1"));
	cJSON_Delete(root);
}

static CU_TestInfo api_tests[] = {
	{ "session parameters", test_params },
	{ "the real kernel's table", test_linux_kernel },
	{ "regions and mappings", test_regions_and_maps },
	{ "devices", test_devices_api },
	{ "plugins", test_plugins_api },
	CU_TEST_INFO_NULL,
};

static CU_TestInfo tracking_tests[] = {
	{ "type1: vfio-pci", test_type1_pci },
	{ "type1: mdev, unmap, unplug", test_type1_mdev_and_unmap },
	{ "preference order", test_preference },
	{ "fallback", test_fallback },
	{ "source failure", test_source_failure },
	{ "source restart", test_source_restart },
	{ "a failed unmap harvest is vmig's marking",
	  test_unmap_harvest_failure_accounting },
	{ "attach failure, unknown ranges", test_attach_failure_and_unknown_ranges },
	{ "hot-plug, map, unplug", test_hotplug_and_map },
	CU_TEST_INFO_NULL,
};

static CU_TestInfo config_tests[] = {
	{ "simulated run", test_config_run },
	{ "simulated run with a failing source", test_config_run_fault },
	CU_TEST_INFO_NULL,
};

static CU_SuiteInfo suites[] = {
	VMIG_SUITE("api", api_tests),
	VMIG_SUITE("tracking", tracking_tests),
	VMIG_SUITE("configuration", config_tests),
	CU_SUITE_INFO_NULL,
};

VMIG_TEST_MAIN(suites)
