/*
 * test_plugin_devdirty.c: the device-dirty plugin against the simulated
 * kernel.
 *
 * The plugin is loaded as it ships (dlopen of vmig-device-dirty.so) and
 * its operations are driven directly, with ksim as the kernel behind a
 * host table that counts the plugin's DMA-logging calls: the probe, the
 * ranges it asks for (holes kept apart, merging), exact pages after DMA,
 * granule conversion, one REPORT per START range (pds), recovery from a
 * broken or vanished log through ranges_unknown, maps and unmaps while
 * tracking, and the errors it returns.
 */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <linux/vfio.h>

#include "core/bitmap.h"
#include <vmig/linux-uapi.h>
#include "ksim/ksim.h"
#include "unit/testutil.h"
#include "unit/plugutil.h"
#include "unit/ksimutil.h"

#define PG 4096ull
#define KiB 1024ull
#define GiB (1ull << 30)
#define MEM_PAGES 256u
#define F_LOG_START 6u
#define F_LOG_STOP 7u
#define F_LOG_REPORT 8u

VMIG_TEST_PLUGIN_SUITE("vmig-device-dirty.so")

struct unknown {
	uint32_t iommu_id;
	uint32_t n;
	struct vmig_range r[8];
};

/* A simulated host: one type1 container, devices each in a group. */
struct rig {
	struct ksim *k;
	const struct vmig_host *h;
	struct vmig_host host; /* the plugin's: counting, log, unknown */
	int cfd;
	int gfd[4];
	int dfd[4];
	struct ksim_device *dev[4];
	int ndev;
	uint8_t *mem;
	struct vmig_iommu_desc io;
	void *inst;
	/* What the plugin did. */
	int starts;
	int stops;
	int reports;
	int probes;
	struct unknown unknown[8];
	int nunknown;
	char log[4096];
};

static void rig_log(void *ctx, int level, const char *msg)
{
	struct rig *r = ctx;

	(void)level;
	vmig_test_log_append(r->log, sizeof(r->log), msg);
}

static void rig_unknown(void *ctx, uint32_t iommu_id,
			const struct vmig_range *ranges, uint32_t n)
{
	struct rig *r = ctx;
	struct unknown *u;
	uint32_t i;

	CU_ASSERT_FATAL(r->nunknown < 8);
	u = &r->unknown[r->nunknown++];
	u->iommu_id = iommu_id;
	u->n = n;
	for (i = 0; i < n && i < 8; i++)
		u->r[i] = ranges[i];
}

/* The kernel operations, forwarded to ksim; ioctls counted. */
static int w_open(void *kctx, const char *path, int flags)
{
	struct rig *r = kctx;

	return r->h->open(r->h->kctx, path, flags);
}

static int w_close(void *kctx, int fd)
{
	struct rig *r = kctx;

	return r->h->close(r->h->kctx, fd);
}

static int w_ioctl(void *kctx, int fd, unsigned long req, void *arg)
{
	struct rig *r = kctx;

	if (req == VFIO_DEVICE_FEATURE && arg) {
		const struct vfio_device_feature *f = arg;
		uint32_t idx = f->flags & VFIO_DEVICE_FEATURE_MASK;

		if (f->flags & VFIO_DEVICE_FEATURE_PROBE)
			r->probes++;
		else if (idx == F_LOG_START)
			r->starts++;
		else if (idx == F_LOG_STOP)
			r->stops++;
		else if (idx == F_LOG_REPORT)
			r->reports++;
	}
	return r->h->ioctl(r->h->kctx, fd, req, arg);
}

static int64_t w_read(void *kctx, int fd, void *buf, size_t len)
{
	struct rig *r = kctx;

	return r->h->read(r->h->kctx, fd, buf, len);
}

static int64_t w_write(void *kctx, int fd, const void *buf, size_t len)
{
	struct rig *r = kctx;

	return r->h->write(r->h->kctx, fd, buf, len);
}

static int w_poll(void *kctx, struct pollfd *fds, unsigned int n, int t)
{
	struct rig *r = kctx;

	return r->h->poll(r->h->kctx, fds, n, t);
}

static int w_mmap(void *kctx, void *addr, size_t len, int prot, int flags,
		  int fd, int64_t off, void **out)
{
	struct rig *r = kctx;

	return r->h->mmap(r->h->kctx, addr, len, prot, flags, fd, off, out);
}

static int w_munmap(void *kctx, void *addr, size_t len)
{
	struct rig *r = kctx;

	return r->h->munmap(r->h->kctx, addr, len);
}

static int kio(struct rig *r, int fd, unsigned long req, void *arg)
{
	return r->h->ioctl(r->h->kctx, fd, req, arg);
}

static void rig_new(struct rig *r)
{
	memset(r, 0, sizeof(*r));
	vmig_test_type1_kernel(&r->k, &r->h, &r->cfd);
	r->host = *r->h;
	r->host.kctx = r;
	r->host.ctx = r;
	r->host.open = w_open;
	r->host.close = w_close;
	r->host.ioctl = w_ioctl;
	r->host.read = w_read;
	r->host.write = w_write;
	r->host.poll = w_poll;
	r->host.mmap = w_mmap;
	r->host.munmap = w_munmap;
	r->host.log = rig_log;
	r->host.ranges_unknown = rig_unknown;
	r->mem = vmig_test_guest_mem(MEM_PAGES * PG, PG);
	r->io.size = sizeof(r->io);
	r->io.id = 3;
	r->io.kind = VMIG_IOMMU_TYPE1;
	r->io.fd = r->cfd;
	CU_ASSERT_FATAL(plug->ops->create(&r->host, &r->inst) == 0);
}

static void rig_free(struct rig *r)
{
	vmig_test_plugin_host_free(plug, r->inst, r->k, r->mem);
}

static int rig_dev(struct rig *r, const char *name,
		   const struct ksim_feature_params *fp)
{
	return vmig_test_type1_pci(r->k, r->h, r->cfd, name, 20, fp, &r->ndev,
				   r->dev, r->gfd, r->dfd);
}

/* Maps guest pages [first, first + n) writable at IOVA first * 4 KiB. */
static void rig_map(struct rig *r, uint64_t first, uint64_t n)
{
	vmig_test_type1_map(r->h, r->cfd, r->mem + first * PG, first * PG,
			    n * PG);
}

static void rig_unmap(struct rig *r, uint64_t first, uint64_t n)
{
	struct vfio_iommu_type1_dma_unmap u = {
		.argsz = sizeof(u),
		.iova = first * PG,
		.size = n * PG,
	};

	CU_ASSERT_FATAL(kio(r, r->cfd, VFIO_IOMMU_UNMAP_DMA, &u) == 0);
}

static struct vmig_device_desc desc_of(struct rig *r, int i, uint32_t id,
				       const struct vmig_range *ranges,
				       uint32_t n)
{
	struct vmig_device_desc d = vmig_test_device_desc(
		id, "dev", VMIG_DEVICE_VFIO_PCI, r->dfd[i], r->gfd[i], &r->io);

	d.ranges = ranges;
	d.nr_ranges = n;
	return d;
}

static int attach(struct rig *r, int i, uint32_t id,
		  const struct vmig_range *ranges, uint32_t n)
{
	struct vmig_device_desc d = desc_of(r, i, id, ranges, n);

	return plug->ops->attach(r->inst, &d);
}

static int do_read(struct rig *r, uint64_t iova, uint64_t len, uint64_t ps,
		   uint64_t *bm)
{
	return vmig_test_plugin_read(plug, r->inst, r->io.id, iova, len, ps, 0,
				     bm);
}

static uint64_t count(const uint64_t *bm, uint64_t nbits)
{
	return vmig_bitmap_count(bm, 0, nbits);
}

static const struct ksim_feature_params mlx5 = {
	.migration = true,
	.mig_flags = 2 | 4,
	.state_size = 8 * KiB,
	.log = KSIM_LOG_MLX5,
};

/* ------------------------------------------------------------------ */

static void test_descriptor(void)
{
	CU_ASSERT_STRING_EQUAL(plug->name, "device-dirty");
	CU_ASSERT_EQUAL(plug->abi_major, VMIG_PLUGIN_ABI_MAJOR);
	CU_ASSERT_EQUAL(plug->device_kinds,
			VMIG_KIND_BIT(VMIG_DEVICE_VFIO_PCI) |
				VMIG_KIND_BIT(VMIG_DEVICE_MDEV));
	CU_ASSERT_EQUAL(plug->iommu_kinds,
			VMIG_KIND_BIT(VMIG_IOMMU_TYPE1) |
				VMIG_KIND_BIT(VMIG_IOMMU_IOMMUFD));
	CU_ASSERT_EQUAL(plug->precision, VMIG_PRECISION_EXACT);
	CU_ASSERT_EQUAL(plug->max_ranges, 256);
	CU_ASSERT((plug->page_sizes & PG) != 0);
	CU_ASSERT((plug->page_sizes & (2ull << 20)) != 0);
	CU_ASSERT_FALSE(plug->page_sizes & 2048);
	CU_ASSERT_FALSE(plug->flags & VMIG_PLUGIN_READ_NO_CLEAR);
	vmig_test_plugin_refuses_next_major(dl);
}

static void test_probe(void)
{
	struct vmig_range rg = { 0, 16 * PG };
	struct vmig_range many[300];
	struct vmig_device_desc d;
	struct vmig_probe p;
	struct rig r;
	int i, plain;

	rig_new(&r);
	rig_dev(&r, "mlx5", &mlx5);
	plain = rig_dev(&r, "plain", NULL);

	memset(&p, 0, sizeof(p));
	p.size = sizeof(p);
	d = desc_of(&r, 0, 1, &rg, 1);
	CU_ASSERT(plug->ops->probe(r.inst, &d, &p) == 0);
	CU_ASSERT(p.precision == VMIG_PRECISION_EXACT);
	CU_ASSERT(strstr(p.reason, "unless the device merges") != NULL);
	CU_ASSERT(r.probes == 1);
	/* No lasting effect: nothing is logged. */
	CU_ASSERT(ksim_device_log_ranges(r.dev[0], NULL, 0, NULL) == 0);
	CU_ASSERT(r.starts == 0);

	/* Too many ranges for one START: merged, a superset. */
	for (i = 0; i < 300; i++) {
		many[i].iova = (uint64_t)i * 2 * PG;
		many[i].length = PG;
	}
	d = desc_of(&r, 0, 1, many, 300);
	CU_ASSERT(plug->ops->probe(r.inst, &d, &p) == 0);
	CU_ASSERT(p.precision == VMIG_PRECISION_SUPERSET);

	/* A device without DMA logging is declined. */
	memset(&p, 0, sizeof(p));
	p.size = sizeof(p);
	d = desc_of(&r, plain, 2, &rg, 1);
	CU_ASSERT(plug->ops->probe(r.inst, &d, &p) == 0);
	CU_ASSERT(p.precision == VMIG_PRECISION_NONE);
	CU_ASSERT(strstr(p.reason, "no DMA logging") != NULL);
	/* So is one without a device fd. */
	d.device_fd = -1;
	CU_ASSERT(plug->ops->probe(r.inst, &d, &p) == 0);
	CU_ASSERT(p.precision == VMIG_PRECISION_NONE);
	/* A probe the kernel fails is an error, not a decline. */
	d = desc_of(&r, 0, 1, &rg, 1);
	ksim_fail_request(r.k, VFIO_DEVICE_FEATURE, EIO, 1);
	CU_ASSERT(plug->ops->probe(r.inst, &d, &p) == -EIO);
	rig_free(&r);
}

/*
 * 300 ranges: 150 below 2 GiB, 150 above 4 GiB, small gaps: merged into
 * 256 without spanning the hole; a device that takes only 2 keeps the
 * hole apart too.
 */
static void test_ranges_hole(void)
{
	struct ksim_feature_params fp = mlx5;
	struct vmig_range want[300], got[300];
	struct vmig_probe p = { .size = sizeof(p) };
	uint32_t limits[] = { 0, 2 };
	size_t li;
	int i, n;

	for (i = 0; i < 150; i++) {
		want[i].iova = (uint64_t)i * 4 * PG;
		want[i].length = 2 * PG;
		want[150 + i].iova = 4 * GiB + (uint64_t)i * 3 * PG;
		want[150 + i].length = PG;
	}
	for (li = 0; li < 2; li++) {
		struct rig r;

		fp.log_max_ranges = limits[li];
		rig_new(&r);
		rig_dev(&r, "d", &fp);
		CU_ASSERT(attach(&r, 0, 1, want, 300) == 0);
		CU_ASSERT(plug->ops->start(r.inst, PG) == 0);
		CU_ASSERT(r.starts == 1);
		n = ksim_device_log_ranges(r.dev[0], got, 300, NULL);
		CU_ASSERT(n == (limits[li] ? 2 : 256));
		for (i = 0; i < n && i < 300; i++) {
			/* Nothing spans the hole [2 GiB, 4 GiB). */
			CU_ASSERT(got[i].iova + got[i].length <= 2 * GiB ||
				  got[i].iova >= 4 * GiB);
		}
		/* We merged: a superset, and status says so. */
		CU_ASSERT(plug->ops->status(r.inst, 1, &p) == 0);
		CU_ASSERT(p.precision == VMIG_PRECISION_SUPERSET);
		rig_free(&r);
	}
}

/* Six ranges at device limits 1, 2, 4, 256: the plugin asks for six. */
static void test_ranges_device_limits(void)
{
	static const struct vmig_range six[] = {
		{ 0 * PG, PG },   { 2 * PG, PG },   { 10 * PG, PG },
		{ 13 * PG, PG },  { 100 * PG, PG }, { 103 * PG, PG },
	};
	static const uint32_t limits[] = { 1, 2, 4, 256 };
	static const int tracked[] = { 1, 2, 4, 6 };
	struct ksim_feature_params fp = mlx5;
	struct vmig_probe p = { .size = sizeof(p) };
	uint64_t bm[2];
	size_t i;

	for (i = 0; i < 4; i++) {
		struct rig r;

		fp.log_max_ranges = limits[i];
		rig_new(&r);
		rig_dev(&r, "d", &fp);
		rig_map(&r, 0, 1);
		rig_map(&r, 2, 1);
		rig_map(&r, 10, 1);
		rig_map(&r, 13, 1);
		rig_map(&r, 100, 1);
		rig_map(&r, 103, 1);
		CU_ASSERT(attach(&r, 0, 1, six, 6) == 0);
		CU_ASSERT(plug->ops->start(r.inst, PG) == 0);
		CU_ASSERT(ksim_device_log_ranges(r.dev[0], NULL, 0, NULL) ==
			  tracked[i]);
		/* The plugin merged nothing: exact, whatever the device did. */
		CU_ASSERT(plug->ops->status(r.inst, 1, &p) == 0);
		CU_ASSERT(p.precision == VMIG_PRECISION_EXACT);
		/* Reads of each mapping stay exact. */
		CU_ASSERT(ksim_dma_write(r.dev[0], 13 * PG, NULL, 8) == 0);
		CU_ASSERT(do_read(&r, 10 * PG, PG, PG, bm) == 0);
		CU_ASSERT(bm[0] == 0);
		CU_ASSERT(do_read(&r, 13 * PG, PG, PG, bm) == 0);
		CU_ASSERT(bm[0] == 1);
		rig_free(&r);
	}
}

struct truth {
	uint64_t *bm;
};

static void truth_fn(void *opaque, const struct ksim_write *w)
{
	struct truth *t = opaque;
	uint64_t p;

	for (p = w->iova / PG; p <= (w->iova + w->len - 1) / PG; p++)
		t->bm[p / 64] |= 1ull << (p % 64);
}

static void test_exact_pages(void)
{
	static const struct vmig_range rg[] = { { 0, 64 * PG },
						{ 128 * PG, 64 * PG } };
	uint64_t want[4] = { 0 }, bm[4], got[4] = { 0 };
	struct truth t = { want };
	struct rig r;
	int step;

	rig_new(&r);
	rig_dev(&r, "d", &mlx5);
	rig_map(&r, 0, 64);
	rig_map(&r, 128, 64);
	CU_ASSERT(attach(&r, 0, 1, rg, 2) == 0);
	/* Writes before start are not the log's business. */
	CU_ASSERT(ksim_dma_write(r.dev[0], 3 * PG, NULL, 1) == 0);
	ksim_truth_drain(r.k, NULL, NULL);
	CU_ASSERT(plug->ops->start(r.inst, PG) == 0);
	for (step = 0; step < 40; step++) {
		uint64_t page = (uint64_t)(step * 37 % 63) +
				(step % 2 ? 128 : 0);

		CU_ASSERT(ksim_dma_write(r.dev[0], page * PG + 100, NULL,
					 (step % 3) ? 8 : PG) == 0);
	}
	ksim_truth_drain(r.k, truth_fn, &t);
	CU_ASSERT(do_read(&r, 0, 64 * PG, PG, bm) == 0);
	got[0] = bm[0];
	CU_ASSERT(do_read(&r, 128 * PG, 64 * PG, PG, bm) == 0);
	got[2] = bm[0];
	CU_ASSERT(memcmp(got, want, sizeof(got)) == 0);
	CU_ASSERT(r.reports == 2);
	/* Read and cleared. */
	CU_ASSERT(do_read(&r, 0, 64 * PG, PG, bm) == 0);
	CU_ASSERT(count(bm, 64) == 0);
	/* At a coarser caller page: ORed. */
	CU_ASSERT(ksim_dma_write(r.dev[0], 5 * PG, NULL, 1) == 0);
	CU_ASSERT(do_read(&r, 0, 64 * PG, 8 * PG, bm) == 0);
	CU_ASSERT(bm[0] == 1);
	rig_free(&r);
}

/* A device that logs 16 KiB granules: converted, nothing lost. */
static void test_granule_carry(void)
{
	struct ksim_feature_params fp = mlx5;
	static const struct vmig_range rg[] = { { 0, 16 * PG } };
	struct vmig_probe p = { .size = sizeof(p) };
	uint64_t bm[1];
	struct rig r;

	fp.log_min_page_size = 16 * KiB;
	rig_new(&r);
	rig_dev(&r, "d", &fp);
	/* Two mappings, adjacent: one range, read one mapping at a time. */
	rig_map(&r, 0, 6);
	rig_map(&r, 6, 10);
	CU_ASSERT(attach(&r, 0, 1, rg, 1) == 0);
	CU_ASSERT(plug->ops->start(r.inst, PG) == 0);
	CU_ASSERT(plug->ops->status(r.inst, 1, &p) == 0);
	CU_ASSERT(p.precision == VMIG_PRECISION_SUPERSET);
	CU_ASSERT(strstr(p.reason, "16384") != NULL);
	/* Page 7 lies in granule 1 (pages 4-7), which straddles the two. */
	CU_ASSERT(ksim_dma_write(r.dev[0], 7 * PG, NULL, 1) == 0);
	CU_ASSERT(do_read(&r, 0, 6 * PG, PG, bm) == 0);
	CU_ASSERT(bm[0] == 0x30u); /* pages 4, 5 */
	CU_ASSERT(do_read(&r, 6 * PG, 10 * PG, PG, bm) == 0);
	CU_ASSERT(bm[0] == 0x3u); /* pages 6, 7: carried */
	CU_ASSERT(do_read(&r, 6 * PG, 10 * PG, PG, bm) == 0);
	CU_ASSERT(bm[0] == 0);
	rig_free(&r);
}

/* pds wants each REPORT inside one region: one per START range. */
static void test_pds_per_range(void)
{
	struct ksim_feature_params fp = mlx5;
	static const struct vmig_range rg[] = { { 0, 16 * PG },
						{ 32 * PG, 16 * PG } };
	uint64_t bm[1];
	struct rig r;

	fp.log = KSIM_LOG_PDS;
	rig_new(&r);
	rig_dev(&r, "pds", &fp);
	rig_map(&r, 0, 16);
	rig_map(&r, 32, 16);
	CU_ASSERT(attach(&r, 0, 1, rg, 2) == 0);
	CU_ASSERT(plug->ops->start(r.inst, PG) == 0);
	CU_ASSERT(ksim_dma_write(r.dev[0], 3 * PG, NULL, 1) == 0);
	CU_ASSERT(ksim_dma_write(r.dev[0], 40 * PG, NULL, 1) == 0);
	/* One read across both ranges and the hole between them. */
	CU_ASSERT(do_read(&r, 0, 48 * PG, PG, bm) == 0);
	CU_ASSERT(r.reports == 2);
	CU_ASSERT(r.nunknown == 0);
	CU_ASSERT((bm[0] & (1ull << 3)) != 0);
	CU_ASSERT((bm[0] & (1ull << 40)) != 0);
	/* The hole is covered by no START range: unknown, so dirty. */
	CU_ASSERT(vmig_bitmap_count(bm, 16, 16) == 16);
	CU_ASSERT(count(bm, 48) == 2 + 16);
	rig_free(&r);
}

static void test_report_failure_restart(void)
{
	static const struct vmig_range rg[] = { { 0, 8 * PG },
						{ 16 * PG, 8 * PG } };
	uint64_t bm[1];
	struct rig r;

	rig_new(&r);
	rig_dev(&r, "d", &mlx5);
	rig_map(&r, 0, 8);
	rig_map(&r, 16, 8);
	CU_ASSERT(attach(&r, 0, 1, rg, 2) == 0);
	CU_ASSERT(plug->ops->start(r.inst, PG) == 0);
	ksim_device_log_break(r.dev[0], EIO);
	CU_ASSERT(do_read(&r, 0, 8 * PG, PG, bm) == 0);
	/* The device's ranges went as unknown, once, and it restarted. */
	CU_ASSERT(r.nunknown == 1);
	CU_ASSERT(r.unknown[0].iommu_id == r.io.id);
	CU_ASSERT(r.unknown[0].n == 2);
	CU_ASSERT(r.unknown[0].r[0].iova == 0 &&
		  r.unknown[0].r[0].length == 8 * PG);
	CU_ASSERT(r.unknown[0].r[1].iova == 16 * PG &&
		  r.unknown[0].r[1].length == 8 * PG);
	CU_ASSERT(count(bm, 8) == 8);
	CU_ASSERT(r.starts == 2 && r.stops == 1);
	CU_ASSERT(strstr(r.log, "restarts") != NULL);
	/* Logging works again, exactly. */
	CU_ASSERT(ksim_dma_write(r.dev[0], 17 * PG, NULL, 1) == 0);
	CU_ASSERT(do_read(&r, 16 * PG, 8 * PG, PG, bm) == 0);
	CU_ASSERT(bm[0] == 2);

	/* Detached: REPORT and the restart fail; the read fails. */
	ksim_device_log_break(r.dev[0], ENOTCONN);
	CU_ASSERT(do_read(&r, 0, 8 * PG, PG, bm) == -ENOTCONN);
	CU_ASSERT(r.nunknown == 2);
	CU_ASSERT(strstr(r.log, "cannot restart") != NULL);
	rig_free(&r);
}

/* A pds device drops its log on STOP_COPY -> STOP: the next read sees. */
static void test_pds_teardown(void)
{
	struct ksim_feature_params fp = mlx5;
	static const struct vmig_range rg[] = { { 0, 8 * PG } };
	struct {
		uint32_t argsz, flags;
		uint32_t state;
		int32_t fd;
	} ms = { 16, VFIO_DEVICE_FEATURE_SET | 2, 3, -1 };
	uint8_t buf[4096];
	uint64_t bm[1];
	struct rig r;
	int fd;

	fp.log = KSIM_LOG_PDS;
	rig_new(&r);
	rig_dev(&r, "pds", &fp);
	rig_map(&r, 0, 8);
	CU_ASSERT(attach(&r, 0, 1, rg, 1) == 0);
	CU_ASSERT(plug->ops->start(r.inst, PG) == 0);
	CU_ASSERT(ksim_dma_write(r.dev[0], 2 * PG, NULL, 1) == 0);
	/* STOP_COPY, its data read, then STOP. */
	CU_ASSERT(kio(&r, r.dfd[0], VFIO_DEVICE_FEATURE, &ms) == 0);
	fd = ms.fd;
	CU_ASSERT_FATAL(fd >= 0);
	while (r.h->read(r.h->kctx, fd, buf, sizeof(buf)) > 0)
		;
	ms.state = 1;
	CU_ASSERT(kio(&r, r.dfd[0], VFIO_DEVICE_FEATURE, &ms) == 0);
	CU_ASSERT(ksim_device_log_ranges(r.dev[0], NULL, 0, NULL) == 0);
	/* The write before it is not lost: all of the range is dirty. */
	CU_ASSERT(do_read(&r, 0, 8 * PG, PG, bm) == 0);
	CU_ASSERT(r.nunknown == 1);
	CU_ASSERT(bm[0] == 0xffu);
	CU_ASSERT(ksim_device_log_ranges(r.dev[0], NULL, 0, NULL) == 1);
	r.h->close(r.h->kctx, fd);
	rig_free(&r);
}

static void test_map_while_tracking(void)
{
	static const struct vmig_range rg[] = { { 0, 8 * PG } };
	struct vmig_range b = { 32 * PG, 8 * PG }, got[4];
	uint64_t bm[1];
	struct rig r;

	rig_new(&r);
	rig_dev(&r, "d", &mlx5);
	rig_map(&r, 0, 8);
	CU_ASSERT(attach(&r, 0, 1, rg, 1) == 0);
	CU_ASSERT(plug->ops->start(r.inst, PG) == 0);
	/* The source hears of the map before the kernel makes it. */
	CU_ASSERT(plug->ops->map(r.inst, r.io.id, &b) == 0);
	rig_map(&r, 32, 8);
	/* The old ranges went as unknown; the device logs both now. */
	CU_ASSERT(r.nunknown == 1);
	CU_ASSERT(r.unknown[0].n == 1 && r.unknown[0].r[0].iova == 0);
	CU_ASSERT(r.starts == 2 && r.stops == 1);
	CU_ASSERT(ksim_device_log_ranges(r.dev[0], got, 4, NULL) == 2);
	CU_ASSERT(got[1].iova == 32 * PG && got[1].length == 8 * PG);
	CU_ASSERT(ksim_dma_write(r.dev[0], 33 * PG, NULL, 1) == 0);
	CU_ASSERT(do_read(&r, 32 * PG, 8 * PG, PG, bm) == 0);
	CU_ASSERT(bm[0] == 2);
	/* A map inside what START covers needs no restart. */
	b.iova = 34 * PG;
	b.length = PG;
	CU_ASSERT(plug->ops->map(r.inst, r.io.id, &b) == 0);
	CU_ASSERT(r.starts == 2);
	/* Another space is none of this device's business. */
	b.iova = 64 * PG;
	CU_ASSERT(plug->ops->map(r.inst, r.io.id + 1, &b) == 0);
	CU_ASSERT(r.starts == 2);
	b.length = 0;
	CU_ASSERT(plug->ops->map(r.inst, r.io.id, &b) == -EINVAL);
	rig_free(&r);
}

static void test_unmap_complete(void)
{
	static const struct vmig_range rg[] = { { 0, 8 * PG },
						{ 8 * PG, 8 * PG } };
	struct vmig_read rq = vmig_test_read_rq(3, 8 * PG, 8 * PG, PG, 0);
	uint64_t bm[1] = { 0 };
	uint32_t flags = 0;
	struct vmig_range again = { 8 * PG, 8 * PG };
	struct rig r;

	rig_new(&r);
	rig_dev(&r, "d", &mlx5);
	rig_map(&r, 0, 8);
	rig_map(&r, 8, 8);
	CU_ASSERT(attach(&r, 0, 1, rg, 2) == 0);
	CU_ASSERT(plug->ops->start(r.inst, PG) == 0);
	CU_ASSERT(ksim_dma_write(r.dev[0], 12 * PG, NULL, 1) == 0);
	/* Before the unmap: nothing to do, the caller unmaps. */
	CU_ASSERT(plug->ops->unmap_prepare(r.inst, &rq, bm, &flags) == 0);
	CU_ASSERT(flags == 0 && bm[0] == 0);
	CU_ASSERT(r.reports == 0);
	rig_unmap(&r, 8, 8);
	/* After: the last REPORT holds the write. */
	CU_ASSERT(plug->ops->unmap_complete(r.inst, &rq, bm) == 0);
	CU_ASSERT(bm[0] == 1u << 4);
	CU_ASSERT(r.reports == 1);
	/* Mapped again: START still covers it, no restart. */
	CU_ASSERT(plug->ops->map(r.inst, r.io.id, &again) == 0);
	CU_ASSERT(r.starts == 1);
	rig_free(&r);
}

static void test_two_devices(void)
{
	static const struct vmig_range rg[] = { { 0, 16 * PG } };
	uint64_t bm[1];
	struct rig r;

	rig_new(&r);
	rig_dev(&r, "a", &mlx5);
	rig_dev(&r, "b", &mlx5);
	rig_map(&r, 0, 16);
	CU_ASSERT(attach(&r, 0, 1, rg, 1) == 0);
	CU_ASSERT(attach(&r, 1, 2, rg, 1) == 0);
	CU_ASSERT(plug->ops->start(r.inst, PG) == 0);
	CU_ASSERT(ksim_dma_write(r.dev[0], 1 * PG, NULL, 1) == 0);
	CU_ASSERT(ksim_dma_write(r.dev[1], 9 * PG, NULL, 1) == 0);
	CU_ASSERT(do_read(&r, 0, 16 * PG, PG, bm) == 0);
	CU_ASSERT(bm[0] == ((1u << 1) | (1u << 9)));
	CU_ASSERT(r.reports == 2);
	/* Detach stops that device's log only. */
	CU_ASSERT(plug->ops->detach(r.inst, 2) == 0);
	CU_ASSERT(ksim_device_log_ranges(r.dev[1], NULL, 0, NULL) == 0);
	CU_ASSERT(ksim_device_log_ranges(r.dev[0], NULL, 0, NULL) == 1);
	CU_ASSERT(plug->ops->detach(r.inst, 2) == -ENOENT);
	/* Stop stops the rest. */
	CU_ASSERT(plug->ops->stop(r.inst) == 0);
	CU_ASSERT(ksim_device_log_ranges(r.dev[0], NULL, 0, NULL) == 0);
	rig_free(&r);
}

/* Errors the plugin returns, its own and the kernel's. */
static void test_errors(void)
{
	static const struct vmig_range rg[] = { { 0, 16 * PG } };
	struct vmig_device_desc d;
	struct vmig_read rq = vmig_test_read_rq(3, 0, 16 * PG, PG, 0);
	uint64_t bm[1];
	struct rig r;
	int nolog;

	rig_new(&r);
	rig_dev(&r, "d", &mlx5);
	nolog = rig_dev(&r, "nolog", NULL);
	rig_map(&r, 0, 16);
	CU_ASSERT(attach(&r, 0, 1, rg, 1) == 0);
	CU_ASSERT(attach(&r, 0, 1, rg, 1) == -EEXIST);
	d = desc_of(&r, 0, 5, rg, 1);
	d.device_fd = -1;
	CU_ASSERT(plug->ops->attach(r.inst, &d) == -EINVAL);
	/* Not started yet. */
	CU_ASSERT(do_read(&r, 0, 16 * PG, PG, bm) == -EINVAL);
	/* The kernel refuses START: start fails and says why. */
	ksim_fail_request(r.k, VFIO_DEVICE_FEATURE, EIO, 1);
	CU_ASSERT(plug->ops->start(r.inst, PG) == -EIO);
	CU_ASSERT(strstr(r.log, "cannot start DMA logging") != NULL);
	CU_ASSERT(plug->ops->start(r.inst, PG) == 0);
	/* A device without logging attached after start: ENOTTY. */
	CU_ASSERT(attach(&r, nolog, 2, rg, 1) == -ENOTTY);
	rq.flags = VMIG_READ_NO_CLEAR;
	CU_ASSERT(plug->ops->read(r.inst, &rq, bm) == -ENOTSUP);
	rq.flags = 0x80;
	CU_ASSERT(plug->ops->read(r.inst, &rq, bm) == -EINVAL);
	rq.flags = 0;
	rq.length = 0;
	CU_ASSERT(plug->ops->read(r.inst, &rq, bm) == -EINVAL);
	rq.length = 16 * PG;
	rq.iova = 100;
	CU_ASSERT(plug->ops->read(r.inst, &rq, bm) == -EINVAL);
	rq.iova = 0;
	rq.page_size = 3 * PG;
	CU_ASSERT(plug->ops->read(r.inst, &rq, bm) == -EINVAL);
	rq.page_size = PG;
	rq.iommu_id = 9;
	CU_ASSERT(plug->ops->read(r.inst, &rq, bm) == -ENOENT);
	rq.size = 8;
	CU_ASSERT(plug->ops->read(r.inst, &rq, bm) == -EINVAL);
	CU_ASSERT(plug->ops->status(r.inst, 9, NULL) == -ENOENT);
	/* Destroy stops the log. */
	plug->ops->destroy(r.inst);
	r.inst = NULL;
	CU_ASSERT(ksim_device_log_ranges(r.dev[0], NULL, 0, NULL) == 0);
	rig_free(&r);
}

/* A device that tracked nothing until its first writable map. */
static void test_empty_then_map(void)
{
	struct vmig_range b = { 0, 4 * PG };
	uint64_t bm[1];
	struct rig r;

	rig_new(&r);
	rig_dev(&r, "d", &mlx5);
	CU_ASSERT(attach(&r, 0, 1, NULL, 0) == 0);
	CU_ASSERT(plug->ops->start(r.inst, PG) == 0);
	CU_ASSERT(r.starts == 0);
	CU_ASSERT(plug->ops->map(r.inst, r.io.id, &b) == 0);
	rig_map(&r, 0, 4);
	CU_ASSERT(r.starts == 1 && r.nunknown == 0);
	CU_ASSERT(ksim_dma_write(r.dev[0], 3 * PG, NULL, 1) == 0);
	CU_ASSERT(do_read(&r, 0, 4 * PG, PG, bm) == 0);
	CU_ASSERT(bm[0] == 8);
	rig_free(&r);
}

static CU_TestInfo tests[] = {
	{ "descriptor", test_descriptor },
	{ "probe", test_probe },
	{ "ranges keep the hole apart", test_ranges_hole },
	{ "ranges at device limits", test_ranges_device_limits },
	{ "exact pages", test_exact_pages },
	{ "granule and carry", test_granule_carry },
	{ "pds: one report per range", test_pds_per_range },
	{ "report failure and restart", test_report_failure_restart },
	{ "pds teardown detected", test_pds_teardown },
	{ "map while tracking", test_map_while_tracking },
	{ "unmap complete", test_unmap_complete },
	{ "two devices", test_two_devices },
	{ "errors", test_errors },
	{ "empty then map", test_empty_then_map },
	CU_TEST_INFO_NULL,
};

VMIG_TEST_MAIN_SUITE(VMIG_SUITE_INIT("device-dirty plugin", suite_init,
				     suite_fini, tests))
