/*
 * test_lost.c: the ways a write could be lost, or a report could lie, one
 * deterministic test each, over the simulated kernel.
 *
 * Each test configures a session from a small document (JSON with single
 * quotes, for readability), starts tracking, makes the simulated devices
 * write exactly where it wants (ksim_dma_write), calls into vmig and looks
 * at the regions' dirty bitmap right after: a page written and not dirty
 * there is a lost write. Nothing here depends on time: every write is
 * made by the test itself, between two calls it makes.
 *
 *  - iommufd: one unmap over two mappings with a hole between them;
 *  - a vCPU (GPA) source that fails and is restarted;
 *  - type1 with a vfio-pci device that pins pages (pinned-page scope);
 *  - the window between the last read and the unmap (iommufd);
 *  - a mapping registered with VMIG_DMA_EXISTING under DMA logging;
 *  - the top of the 64-bit IOVA space with a logging granule > 4 KiB;
 *  - one kernel mapping registered as several vmig mappings over huge
 *    IOPTEs;
 *  - honest reports: type1's precision in a mixed container, iommufd's
 *    with huge IOPTEs; the ground truth catching a miss in the first pass;
 *    the figures pages_written, pages_reported and sent-without-a-write.
 */
#include <errno.h>
#include <stdio.h>
#include <sys/mman.h>
#include <stdlib.h>
#include <string.h>

#include <cjson/cJSON.h>
#include <vmig/vmig.h>

#include "core/bitmap.h"
#include "core/engine.h"
#include "core/internal.h"
#include <vmig/linux-uapi.h>
#include "ksim/ksim.h"
#include "sim/truth.h"
#include "testutil.h"
#include "sessionutil.h"
#include "common/vcpu_plugin.h"
#include "tool/vmig_tool.h"

#define PG 4096ull
#define MiB (1ull << 20)

struct lost {
	vmig_session *s;
	struct vmig_test_log log;
};

/*
 * A session configured from doc (single quotes turned into double ones);
 * plug, when not NULL, is registered after it (as a VMM registers its
 * vCPU source).
 */
/* The vCPU source's dirty log (section 1.2): 1024 pages, the 4 MiB guest. */
static uint64_t vcpu_log[16];

static void lost_init(struct lost *l, const char *doc,
		      const struct vmig_plugin *plug)
{
	struct vmig_session_params p = { .size = sizeof(p),
					 .log = vmig_test_session_log,
					 .log_opaque = &l->log,
					 .log_level = VMIG_LOG_DEBUG };
	char *json = strdup(doc), *c, err[512];
	vmig_config *cfg;
	int ret;

	CU_ASSERT_FATAL(json != NULL);
	for (c = json; *c; c++)
		if (*c == '\'')
			*c = '"';
	memset(l, 0, sizeof(*l));
	ret = vmig_config_parse(json, strlen(json), NULL, &cfg, err,
				sizeof(err));
	if (ret < 0)
		fprintf(stderr, "\n  config: %s\n", err);
	free(json);
	CU_ASSERT_FATAL(ret == 0);
	l->s = vmig_test_session_new(&p);
	ret = vmig_session_configure(l->s, cfg);
	vmig_config_free(cfg);
	if (ret < 0)
		fprintf(stderr, "\n  configure: %s\n", vmig_errmsg(l->s));
	CU_ASSERT_FATAL(ret == 0);
	/* A vCPU source finds its log through its user pointer. */
	if (plug)
		CU_ASSERT_FATAL(vmig_plugin_register_user(l->s, plug,
							  vcpu_log) == 0);
	CU_ASSERT_FATAL(vmig_tool_ksim(l->s) != NULL);
}

static void lost_fini(struct lost *l)
{
	vmig_session_free(l->s);
}

static struct ksim_device *kdev(struct lost *l, const char *name)
{
	struct ksim_device *d = ksim_device_find(vmig_tool_ksim(l->s), name);

	CU_ASSERT_FATAL(d != NULL);
	return d;
}

static uint32_t space(struct lost *l, const char *name)
{
	size_t i;

	for (i = 0; i < l->s->nr_iommus; i++)
		if (!strcmp(l->s->iommus[i]->name, name))
			return l->s->iommus[i]->desc.id;
	CU_FAIL_FATAL("no such address space");
	return 0;
}

static uint32_t device(struct lost *l, const char *name)
{
	size_t i;

	for (i = 0; i < l->s->nr_devices; i++)
		if (!strcmp(l->s->devices[i]->name, name))
			return l->s->devices[i]->id;
	CU_FAIL_FATAL("no such device");
	return 0;
}

/* Whether the guest page at gpa is dirty in its region's bitmap. */
static bool dirty(struct lost *l, uint64_t gpa)
{
	int r = vmig_region_find(l->s, gpa, 1);
	const struct vmig_region_rec *reg;

	CU_ASSERT_FATAL(r >= 0);
	reg = &l->s->regions[r];
	return vmig_bitmap_test(reg->dirty, (gpa - reg->gpa) / PG);
}

static void clear_all(struct lost *l)
{
	size_t r;

	for (r = 0; r < l->s->nr_regions; r++)
		CU_ASSERT(vmig_dirty_clear(l->s, (uint32_t)r) == 0);
}

/* Tracking started, one sync, and the bitmaps clean. */
static void start_clean(struct lost *l)
{
	CU_ASSERT_FATAL(vmig_tracking_start(l->s) == 0);
	CU_ASSERT(vmig_dirty_sync(l->s) >= 0);
	clear_all(l);
}

static void status(struct lost *l, const char *dev,
		   struct vmig_device_status *ds)
{
	memset(ds, 0, sizeof(*ds));
	ds->size = sizeof(*ds);
	CU_ASSERT_FATAL(vmig_device_status(l->s, device(l, dev), ds) == 0);
}

static size_t source_index(struct lost *l, const char *name)
{
	size_t i;

	for (i = 0; i < l->s->nr_sources; i++)
		if (!strcmp(l->s->sources[i].name, name))
			return i;
	CU_FAIL_FATAL("no such source");
	return 0;
}

/* Device name writes len bytes at iova, as the guest's DMA would. */
static void dma_write(struct lost *l, const char *name, uint64_t iova,
		      size_t len)
{
	CU_ASSERT(ksim_dma_write(kdev(l, name), iova, NULL, len) == 0);
}

/*
 * The set-up of doc, tracking clean; device name writes len bytes at
 * iova and is unplugged: the write is dirty.
 */
static void unplug_after_write(struct lost *l, const char *doc,
			       const char *name, uint64_t iova, size_t len)
{
	lost_init(l, doc, NULL);
	start_clean(l);
	dma_write(l, name, iova, len);
	CU_ASSERT(vmig_device_remove(l->s, device(l, name)) == 0);
	CU_ASSERT(dirty(l, iova));
}

/* Tracking stops cleanly; then the set-up goes. */
static void stop_fini(struct lost *l)
{
	CU_ASSERT(vmig_tracking_stop(l->s) == 0);
	lost_fini(l);
}

/* ------------------------------------------------------------------ */
/* 1.1 iommufd: an unmap across a hole                                 */

/*
 * Two mappings of IOAS "a" with a hole between them, [0, 1M) and
 * [2M, 3M); the device writes into the second, then the VMM unmaps
 * [0, 3M) in one call. The kernel's GET_DIRTY_BITMAP stops at the hole
 * and still succeeds (kernel-uapi.md 2.9), so one read over the whole
 * range would never see the write.
 */
static const char hole_doc[] =
	"{ 'memory': [ { 'gpa': 0, 'size': '4M' } ],\n"
	"  'devices': [ { 'name': 'i0', 'kind': 'vfio-pci',\n"
	"    'iommu': 'iommufd', 'cdev': '/dev/vfio/devices/vfio0',\n"
	"    'ioas': 'a' } ],\n"
	"  'dma_mappings': [\n"
	"    { 'space': 'a', 'iova': 0, 'gpa': 0, 'size': '1M' },\n"
	"    { 'space': 'a', 'iova': '2M', 'gpa': '2M', 'size': '1M' } ],\n"
	"  'kernel': { 'type': 'simulated', 'devices': [\n"
	"    { 'name': 'i0', 'iommu': { 'page_sizes': ['4K'] } } ] } }";

static void test_unmap_across_hole(void)
{
	struct lost l;

	lost_init(&l, hole_doc, NULL);
	start_clean(&l);
	dma_write(&l, "i0", 2 * MiB + 5 * PG, 64);
	dma_write(&l, "i0", 3 * PG, 64);
	CU_ASSERT(vmig_dma_unmap(l.s, space(&l, "a"), 0, 3 * MiB) == 0);
	CU_ASSERT(dirty(&l, 3 * PG));
	CU_ASSERT(dirty(&l, 2 * MiB + 5 * PG));
	stop_fini(&l);
}

/*
 * The same hole for an unplug: the device's last read goes mapping by
 * mapping, so a write in the mapping after the hole is found too.
 */
static void test_unplug_across_hole(void)
{
	struct lost l;

	unplug_after_write(&l, hole_doc, "i0", 2 * MiB + 9 * PG, 64);
	stop_fini(&l);
}

/* ------------------------------------------------------------------ */
/* 1.2 a vCPU source that fails and is restarted                       */

/*
 * A vCPU dirty log as a VMM registers it: what the "vCPUs" wrote (the
 * test sets bits), read and cleared by each read; its start discards the
 * log, as the sample KVM source does. A read fails while fail_reads > 0.
 */
static int vcpu_fail_reads;
static int vcpu_starts;

static int vcpu_create(const struct vmig_host *h, void **inst)
{
	/* Its state comes with the registration (plugin ABI 1.1). */
	CU_ASSERT(VMIG_HAS_FIELD(h, struct vmig_host, user) &&
		  h->user == vcpu_log);
	if (!h->user)
		return -EINVAL;
	*inst = h->user;
	return 0;
}

static int vcpu_start(void *inst, uint64_t page_size)
{
	(void)inst;
	(void)page_size;
	vcpu_starts++;
	memset(vcpu_log, 0, sizeof(vcpu_log));
	return 0;
}

static int vcpu_read(void *inst, const struct vmig_read *rq, uint64_t *bm)
{
	uint64_t i, n = rq->length / PG;

	(void)inst;
	if (vcpu_fail_reads > 0) {
		vcpu_fail_reads--;
		return -EIO;
	}
	if (rq->iova != 0 || n > 64 * 16)
		return 0;
	for (i = 0; i < (n + 63) / 64; i++) {
		bm[i] |= vcpu_log[i];
		vcpu_log[i] = 0;
	}
	return 0;
}

static const struct vmig_source_ops vcpu_ops = {
	.size = sizeof(struct vmig_source_ops),
	.create = vcpu_create,
	.start = vcpu_start,
	.read = vcpu_read,
};

static const struct vmig_plugin vcpu_desc =
	VMIG_TEST_VCPU_PLUGIN("vcpu-test", PG, vcpu_ops);

static void test_gpa_source_restarted(void)
{
	struct lost l;

	memset(vcpu_log, 0, sizeof(vcpu_log));
	vcpu_fail_reads = 0;
	vcpu_starts = 0;
	lost_init(&l, hole_doc, &vcpu_desc);
	start_clean(&l);
	CU_ASSERT_EQUAL(vcpu_starts, 1);
	/* A vCPU wrote page 77; the read fails; the restart drops the log. */
	vmig_bitmap_set(vcpu_log, 77, 1);
	vcpu_fail_reads = 1;
	CU_ASSERT(vmig_dirty_sync(l.s) >= 0);
	CU_ASSERT_EQUAL(vcpu_starts, 2);
	CU_ASSERT(has(l.log.text, "vcpu-test: read failed"));
	/* Whatever it covered, all of guest memory, is dirty once. */
	CU_ASSERT(dirty(&l, 77 * PG));
	CU_ASSERT_EQUAL(vmig_dirty_count(l.s), 1024);
	/* Once: the restarted log is read exactly from then on. */
	clear_all(&l);
	vmig_bitmap_set(vcpu_log, 300, 1);
	CU_ASSERT_EQUAL(vmig_dirty_sync(l.s), 1);
	CU_ASSERT(dirty(&l, 300 * PG));
	/* A vCPU source covered guest memory at every sync. */
	CU_ASSERT(!l.s->vcpus_untracked);
	/*
	 * It fails again: no second restart, nothing reads the vCPUs' log,
	 * all of memory is dirty at every sync and the report says why.
	 */
	vcpu_fail_reads = 1;
	CU_ASSERT(vmig_dirty_sync(l.s) >= 0);
	clear_all(&l);
	CU_ASSERT_EQUAL(vmig_dirty_sync(l.s), 1024);
	CU_ASSERT(l.s->vcpus_untracked);
	stop_fini(&l);
}

/* ------------------------------------------------------------------ */
/* 1.3 type1 with a vfio-pci device that pins pages                    */

/*
 * p0 pins pages 0 to 3, which promotes its group into pinned-page scope
 * (kernel-uapi.md 1.8): with every group of the container in that scope,
 * GET_BITMAP has only the pinned pages, never what the device wrote
 * through the IOMMU.
 */
static const char pins_doc[] =
	"{ 'memory': [ { 'gpa': 0, 'size': '4M' } ],\n"
	"  'devices': [ { 'name': 'p0', 'kind': 'vfio-pci', 'group': 1,\n"
	"    'container': 'c' } ],\n"
	"  'dma_mappings': [\n"
	"    { 'space': 'c', 'iova': 0, 'gpa': 0, 'size': '2M' } ],\n"
	"  'kernel': { 'type': 'simulated', 'devices': [\n"
	"    { 'name': 'p0', 'pins_pages': true,\n"
	"      'pin': { 'iova': 0, 'pages': 4 } } ] } }";

static void test_type1_pinning_pci(void)
{
	struct vmig_device_status ds;
	struct lost l;

	lost_init(&l, pins_doc, NULL);
	start_clean(&l);
	dma_write(&l, "p0", 100 * PG, 64);
	CU_ASSERT(vmig_dirty_sync(l.s) >= 0);
	CU_ASSERT(dirty(&l, 100 * PG));
	/* The claim matches the bitmap: every mapped page, every sync. */
	status(&l, "p0", &ds);
	CU_ASSERT_STRING_EQUAL(ds.source, "vfio-type1");
	CU_ASSERT_EQUAL(ds.precision, VMIG_PRECISION_ALL_MAPPED);
	CU_ASSERT(has(ds.reason, "pinned-page scope"));
	clear_all(&l);
	CU_ASSERT_EQUAL(vmig_dirty_sync(l.s), 512);
	stop_fini(&l);
}

/* ------------------------------------------------------------------ */
/* 3.1 honest precision                                                */

/*
 * An mdev tracked by type1 in a container that also holds a vfio-pci
 * group, tracked by its DMA log: the kernel counts that group (outside
 * pinned-page scope) and reports every mapped page to whoever reads the
 * container (kernel-uapi.md 1.8). The mdev is not "exact" there.
 */
static const char mixed_doc[] =
	"{ 'memory': [ { 'gpa': 0, 'size': '4M' } ],\n"
	"  'devices': [\n"
	"    { 'name': 'm0', 'kind': 'mdev', 'group': 1, 'container': 'c' },\n"
	"    { 'name': 'l0', 'kind': 'vfio-pci', 'group': 2,\n"
	"      'container': 'c' } ],\n"
	"  'dma_mappings': [\n"
	"    { 'space': 'c', 'iova': 0, 'gpa': 0, 'size': '2M' } ],\n"
	"  'kernel': { 'type': 'simulated', 'devices': [\n"
	"    { 'name': 'm0', 'pin': { 'iova': 0, 'pages': 4 } },\n"
	"    { 'name': 'l0', 'dma_logging': 'mlx5' } ] } }";

static void test_type1_mixed_precision(void)
{
	struct vmig_device_status ds;
	struct lost l;
	int l0;

	lost_init(&l, mixed_doc, NULL);
	start_clean(&l);
	status(&l, "l0", &ds);
	CU_ASSERT_STRING_EQUAL(ds.source, "device-dirty");
	status(&l, "m0", &ds);
	CU_ASSERT_STRING_EQUAL(ds.source, "vfio-type1");
	CU_ASSERT_EQUAL(ds.precision, VMIG_PRECISION_ALL_MAPPED);
	CU_ASSERT(has(ds.reason, "a vfio-pci group is in container"));
	/* What the claim says is what the syncs give: every mapped page. */
	CU_ASSERT_EQUAL(vmig_dirty_sync(l.s), 512);
	/*
	 * The source fails once (as a failed read makes it): the restarted
	 * instance must know l0's group too, which it does not track.
	 */
	vmig_source_fail(l.s, &l.s->sources[source_index(&l, "vfio-type1")],
			 -EIO, "read");
	CU_ASSERT(has(l.log.text, "vfio-type1: read failed"));
	CU_ASSERT(has(l.log.text, "restarted"));
	status(&l, "m0", &ds);
	CU_ASSERT_STRING_EQUAL(ds.source, "vfio-type1");
	CU_ASSERT_EQUAL(ds.precision, VMIG_PRECISION_ALL_MAPPED);
	clear_all(&l);
	CU_ASSERT_EQUAL(vmig_dirty_sync(l.s), 512);
	/*
	 * l0 is unplugged: its group leaves the container, the kernel
	 * reports the pinned pages only, and the claim follows (type1 hears
	 * of it through device_gone, although it never tracked l0).
	 */
	l0 = l.s->devices[device(&l, "l0")]->group_fd;
	CU_ASSERT(vmig_device_remove(l.s, device(&l, "l0")) == 0);
	/* ... as the VMM's unplug takes the group out of the container. */
	CU_ASSERT(l.s->kernel.ioctl(l.s->kernel.kctx, l0,
				    VFIO_GROUP_UNSET_CONTAINER, NULL) == 0);
	status(&l, "m0", &ds);
	CU_ASSERT_STRING_EQUAL(ds.source, "vfio-type1");
	CU_ASSERT_EQUAL(ds.precision, VMIG_PRECISION_EXACT);
	CU_ASSERT(has(ds.reason, "pinned-page scope"));
	/*
	 * The kernel fills the bitmap once as the group leaves (it could
	 * have written until then: kernel-uapi.md 1.8), then reports pins.
	 */
	clear_all(&l);
	CU_ASSERT_EQUAL(vmig_dirty_sync(l.s), 512);
	clear_all(&l);
	CU_ASSERT_EQUAL(vmig_dirty_sync(l.s), 4);
	stop_fini(&l);
}

/* ------------------------------------------------------------------ */
/* 3.2 the ground truth catches a miss in every pass                   */

/*
 * The check of a migration (concurrent writers: a page written in pass i
 * must be in what sync i-1 or sync i reported) once started from an
 * all-ones "reported before" set, so a miss in the first pass passed.
 * Here a source "loses" a write (its sync's bits are cleared before the
 * comparison): the first pass must count it, and so must a later one.
 */
static void test_truth_first_pass(void)
{
	struct vmig_sync_truth it;
	struct vmig_truth *t;
	struct lost l;
	int pass;

	lost_init(&l, hole_doc, NULL);
	CU_ASSERT_FATAL(vmig_tracking_start(l.s) == 0);
	CU_ASSERT_FATAL(vmig_truth_new(l.s, vmig_tool_ksim(l.s), true, &t) ==
			0);
	CU_ASSERT_FATAL(t != NULL);
	vmig_truth_reset(t);
	for (pass = 0; pass < 3; pass++) {
		memset(&it, 0, sizeof(it));
		dma_write(&l, "i0", (7 + pass) * PG, 8);
		vmig_truth_drain(t);
		CU_ASSERT(vmig_dirty_sync(l.s) >= 0);
		/* Passes 0 and 2 lose what their sync found. */
		if (pass != 1)
			clear_all(&l);
		vmig_truth_compare(t, &it);
		CU_ASSERT_EQUAL(it.pages_written, 1);
		CU_ASSERT_EQUAL(it.pages_missed, pass == 1 ? 0 : 1);
		clear_all(&l);
	}
	vmig_truth_free(t);
	stop_fini(&l);
}

/* ------------------------------------------------------------------ */
/* 1.4 the windows                                                     */

/*
 * A device write made by the kernel double right before it runs one
 * kind of ioctl: the write lands in the window between vmig's last read
 * and the call that removes the range, while the device can still write.
 */
static int (*window_ioctl)(void *kctx, int fd, unsigned long req, void *arg);
static unsigned long window_req;
static struct ksim_device *window_dev;
static uint64_t window_iova;
static int window_writes;

static int window_wrap(void *kctx, int fd, unsigned long req, void *arg)
{
	if (req == window_req && window_dev) {
		if (ksim_dma_write(window_dev, window_iova, NULL, 8) == 0)
			window_writes++;
		window_dev = NULL;
	}
	return window_ioctl(kctx, fd, req, arg);
}

/* Wraps the session's kernel before tracking starts (sources copy it). */
static void window_arm(struct lost *l, unsigned long req,
		       struct ksim_device *d, uint64_t iova)
{
	window_ioctl = l->s->kernel.ioctl;
	l->s->kernel.ioctl = window_wrap;
	window_req = req;
	window_dev = d;
	window_iova = iova;
	window_writes = 0;
}

/*
 * iommufd has no unmap that returns the dirty bits (kernel-uapi.md 2.5):
 * the plugin reads them (NO_CLEAR), then vmig unmaps. A write between the
 * two sets a dirty bit that IOAS_UNMAP destroys with the IOPTE.
 */
static void test_window_unmap_iommufd(void)
{
	struct lost l;

	lost_init(&l, hole_doc, NULL);
	window_arm(&l, VK_IOMMU_IOAS_UNMAP, kdev(&l, "i0"),
		   2 * MiB + 11 * PG);
	start_clean(&l);
	CU_ASSERT(vmig_dma_unmap(l.s, space(&l, "a"), 2 * MiB, MiB) == 0);
	CU_ASSERT_EQUAL(window_writes, 1);
	CU_ASSERT(dirty(&l, 2 * MiB + 11 * PG));
	stop_fini(&l);
}

/*
 * DMA logging, type1: a device log, a last REPORT after the unmap; type1's
 * unmap returns the bits itself. Neither has a window: a write right
 * before the kernel's unmap is found (the device-dirty plugin reports
 * after the unmap, when the device cannot write the range any more).
 */
static const char log_doc[] =
	"{ 'memory': [ { 'gpa': 0, 'size': '4M' } ],\n"
	"  'devices': [\n"
	"    { 'name': 'l0', 'kind': 'vfio-pci', 'group': 1,\n"
	"      'container': 'c' } ],\n"
	"  'dma_mappings': [\n"
	"    { 'space': 'c', 'iova': 0, 'gpa': 0, 'size': '1M' },\n"
	"    { 'space': 'c', 'iova': '2M', 'gpa': '2M', 'size': '1M' } ],\n"
	"  'kernel': { 'type': 'simulated', 'devices': [\n"
	"    { 'name': 'l0', 'dma_logging': 'mlx5' } ] } }";

static void test_window_unmap_log(void)
{
	struct vmig_device_status ds;
	struct lost l;

	lost_init(&l, log_doc, NULL);
	window_arm(&l, VFIO_IOMMU_UNMAP_DMA, kdev(&l, "l0"),
		   2 * MiB + 13 * PG);
	start_clean(&l);
	status(&l, "l0", &ds);
	CU_ASSERT_STRING_EQUAL(ds.source, "device-dirty");
	CU_ASSERT(vmig_dma_unmap(l.s, space(&l, "c"), 2 * MiB, MiB) == 0);
	CU_ASSERT_EQUAL(window_writes, 1);
	CU_ASSERT(dirty(&l, 2 * MiB + 13 * PG));
	/* Exact all the same: nothing else of the range is dirty. */
	CU_ASSERT_EQUAL(vmig_dirty_count(l.s), 1);
	stop_fini(&l);
}

/*
 * An unplug: the device's last write, right before vmig_device_remove(),
 * is in the harvest; the call reads first, then the device leaves its
 * log. After the read nothing can be seen, which is safe because the
 * VMM calls it once the device has stopped writing (vmig.h), as every
 * unplug does: nothing writes in that window.
 */
static void test_window_unplug_log(void)
{
	struct lost l;

	unplug_after_write(&l, log_doc, "l0", 2 * MiB + 17 * PG, 8);
	CU_ASSERT_EQUAL(vmig_dirty_count(l.s), 1);
	stop_fini(&l);
}

/*
 * A mapping the VMM made itself while tracking runs, then registered with
 * VMIG_DMA_EXISTING: the device may write it in between, before its DMA
 * log (started with the ranges vmig knew) covers it.
 */
static void test_existing_under_logging(void)
{
	struct vfio_iommu_type1_dma_map m = {
		.argsz = sizeof(m),
		.flags = VFIO_DMA_MAP_FLAG_READ | VFIO_DMA_MAP_FLAG_WRITE,
		.iova = 3 * MiB,
		.size = MiB,
	};
	struct vmig_dma_map vm = {
		.size = sizeof(vm),
		.flags = VMIG_DMA_READ | VMIG_DMA_WRITE | VMIG_DMA_EXISTING,
		.iova = 3 * MiB,
		.length = MiB,
		.gpa = 3 * MiB,
	};
	struct lost l;
	uint32_t c;

	lost_init(&l, log_doc, NULL);
	c = space(&l, "c");
	start_clean(&l);
	m.vaddr = (uintptr_t)l.s->regions[0].hva + 3 * MiB;
	CU_ASSERT_FATAL(l.s->kernel.ioctl(l.s->kernel.kctx,
					  l.s->iommus[c]->desc.fd,
					  VFIO_IOMMU_MAP_DMA, &m) == 0);
	dma_write(&l, "l0", 3 * MiB + 7 * PG, 8);
	vm.iommu_id = c;
	CU_ASSERT(vmig_dma_map(l.s, &vm) == 0);
	CU_ASSERT(vmig_dirty_sync(l.s) >= 0);
	CU_ASSERT(dirty(&l, 3 * MiB + 7 * PG));
	/* From then on, the log covers it: exact again. */
	clear_all(&l);
	dma_write(&l, "l0", 3 * MiB + 9 * PG, 8);
	CU_ASSERT_EQUAL(vmig_dirty_sync(l.s), 1);
	CU_ASSERT(dirty(&l, 3 * MiB + 9 * PG));
	stop_fini(&l);
}

/*
 * The top of the 64-bit IOVA space, logged at 64 KiB granules: the last
 * mapping ends 4 KiB below 2^64, and rounding its end up to a granule
 * wraps to 0. (An mdev: a type1 container of mdevs has no aperture.)
 */
#define TOP_IOVA (0ull - 64 * 1024)
static const char top_doc[] =
	"{ 'memory': [ { 'gpa': 0, 'size': '4M' } ],\n"
	"  'devices': [\n"
	"    { 'name': 'm0', 'kind': 'mdev', 'group': 1,\n"
	"      'container': 'c' } ],\n"
	"  'dma_mappings': [\n"
	"    { 'space': 'c', 'iova': 0, 'gpa': 0, 'size': '1M' },\n"
	"    { 'space': 'c', 'iova': '0xffffffffffff0000', 'gpa': '2M',\n"
	"      'size': '60K' } ],\n"
	"  'kernel': { 'type': 'simulated', 'devices': [\n"
	"    { 'name': 'm0', 'dma_logging': { 'model': 'mlx5',\n"
	"      'min_page_size': '64K' } } ] } }";

static void test_top_of_iova_space(void)
{
	struct vmig_device_status ds;
	struct lost l;

	lost_init(&l, top_doc, NULL);
	start_clean(&l);
	status(&l, "m0", &ds);
	CU_ASSERT_STRING_EQUAL(ds.source, "device-dirty");
	dma_write(&l, "m0", TOP_IOVA + 5 * PG, 8);
	CU_ASSERT(vmig_dirty_sync(l.s) >= 0);
	CU_ASSERT(dirty(&l, 2 * MiB + 5 * PG));
	stop_fini(&l);
}

/*
 * One kernel mapping of 4 MiB, mapped with 2 MiB IOPTEs, registered as
 * two vmig mappings, [0, 1M) and [1M, 4M) of it. A write at 1.5 MiB dirties
 * the IOPTE [0, 2M): a read of the first vmig mapping reports it (cut to
 * its range) and clears it, and the read of the second then finds it
 * clean.
 */
static const char huge_doc[] =
	"{ 'memory': [ { 'gpa': 0, 'size': '4M' } ],\n"
	"  'devices': [ { 'name': 'i0', 'kind': 'vfio-pci',\n"
	"    'iommu': 'iommufd', 'cdev': '/dev/vfio/devices/vfio0',\n"
	"    'ioas': 'a' } ],\n"
	"  'dma_mappings': [\n"
	"    { 'space': 'a', 'iova': 0, 'gpa': 0, 'size': '1M' } ],\n"
	"  'kernel': { 'type': 'simulated', 'devices': [\n"
	"    { 'name': 'i0', 'iommu': { 'page_sizes': ['4K', '2M'] } } ] } }";

static const char huge_split_doc[] =
	"{ 'memory': [ { 'gpa': 0, 'size': '4M' } ],\n"
	"  'devices': [ { 'name': 'i0', 'kind': 'vfio-pci',\n"
	"    'iommu': 'iommufd', 'cdev': '/dev/vfio/devices/vfio0',\n"
	"    'ioas': 'a' } ],\n"
	"  'dma_mappings': [\n"
	"    { 'space': 'a', 'iova': '4M', 'gpa': 0, 'size': '1M' },\n"
	"    { 'space': 'a', 'iova': '5M', 'gpa': '1M', 'size': '3M' } ],\n"
	"  'kernel': { 'type': 'simulated', 'devices': [\n"
	"    { 'name': 'i0', 'iommu': { 'page_sizes': ['4K', '2M'] } } ] } }";

static void test_split_huge_mapping(void)
{
	const uint64_t base = 1ull << 30, len = 4 * MiB;
	struct vmig_region reg = { .size = sizeof(reg), .fd = -1,
				   .gpa = base, .length = len };
	struct vmig_dma_map vm = {
		.size = sizeof(vm),
		.flags = VMIG_DMA_READ | VMIG_DMA_WRITE | VMIG_DMA_EXISTING,
	};
	struct vmig_mapping_rec rec = {
		.iova = base, .length = len, .gpa = base,
		.flags = VMIG_DMA_READ | VMIG_DMA_WRITE,
	};
	uint8_t *raw, *mem;
	struct lost l;
	uint32_t a;

	/* 2 MiB-aligned memory: the IOMMU maps it with 2 MiB IOPTEs. */
	raw = mmap(NULL, len + 2 * MiB, PROT_READ | PROT_WRITE,
		   MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0);
	CU_ASSERT_FATAL(raw != MAP_FAILED);
	mem = (uint8_t *)(((uintptr_t)raw + 2 * MiB - 1) & ~(2 * MiB - 1));
	lost_init(&l, huge_doc, NULL);
	a = space(&l, "a");
	reg.hva = mem;
	CU_ASSERT_FATAL(vmig_region_add(l.s, &reg, &rec.region) == 0);
	CU_ASSERT_FATAL(vmig_kernel_map(l.s, l.s->iommus[a], &rec) == 0);
	vm.iommu_id = a;
	vm.iova = base;
	vm.length = MiB;
	vm.gpa = base;
	CU_ASSERT_FATAL(vmig_dma_map(l.s, &vm) == 0);
	vm.iova = base + MiB;
	vm.length = 3 * MiB;
	vm.gpa = base + MiB;
	CU_ASSERT_FATAL(vmig_dma_map(l.s, &vm) == 0);
	start_clean(&l);
	dma_write(&l, "i0", base + MiB + MiB / 2, 8);
	CU_ASSERT(vmig_dirty_sync(l.s) >= 0);
	CU_ASSERT(dirty(&l, base + MiB + MiB / 2));
	/*
	 * The kernel mapping goes whole, while tracking: one run of two vmig
	 * mappings, one kernel unmap (the kernel refuses half of one), and
	 * a write just before it is kept.
	 */
	CU_ASSERT(vmig_dirty_sync(l.s) >= 0);
	clear_all(&l);
	dma_write(&l, "i0", base + 3 * MiB, 8);
	CU_ASSERT(vmig_dma_unmap(l.s, a, base, len) == 0);
	CU_ASSERT(dirty(&l, base + 3 * MiB));
	for (size_t i = 0; i < l.s->iommus[a]->nr_maps; i++)
		CU_ASSERT(l.s->iommus[a]->maps[i].iova + l.s->iommus[a]->maps[i]
				  .length <= base ||
			  l.s->iommus[a]->maps[i].iova >= base + len);
	stop_fini(&l);
	munmap(raw, len + 2 * MiB);
}

/*
 * An iommufd device whose IOMMU maps 2 MiB pages (the VT-d capability's
 * SLLPS says so): exact while its ranges are too small for one, a
 * superset once a range that holds an aligned 2 MiB block is mapped; a
 * write there comes back as the whole IOPTE.
 */
static void test_iommufd_huge_precision(void)
{
	struct vmig_dma_map vm = {
		.size = sizeof(vm),
		.flags = VMIG_DMA_READ | VMIG_DMA_WRITE,
		.iova = 2 * MiB,
		.length = 2 * MiB,
		.gpa = 2 * MiB,
	};
	struct vmig_device_status ds;
	struct lost l;

	lost_init(&l, huge_doc, NULL);
	start_clean(&l);
	status(&l, "i0", &ds);
	CU_ASSERT_STRING_EQUAL(ds.source, "iommufd");
	CU_ASSERT_EQUAL(ds.precision, VMIG_PRECISION_EXACT);
	vm.iommu_id = space(&l, "a");
	CU_ASSERT(vmig_dma_map(l.s, &vm) == 0);
	status(&l, "i0", &ds);
	CU_ASSERT_EQUAL(ds.precision, VMIG_PRECISION_SUPERSET);
	CU_ASSERT(has(ds.reason, "2048 KiB IOPTEs"));
	/* The large range goes, and its IOPTEs with it: exact again. */
	CU_ASSERT(vmig_dma_unmap(l.s, vm.iommu_id, 2 * MiB, 2 * MiB) == 0);
	status(&l, "i0", &ds);
	CU_ASSERT_EQUAL(ds.precision, VMIG_PRECISION_EXACT);
	CU_ASSERT(has(ds.reason, "no range holds an aligned large IOPTE"));
	stop_fini(&l);

	/*
	 * Partial unmaps: two mappings that touch, [4M, 5M) and [5M, 8M),
	 * are one range [4M, 8M) to the device, with two aligned blocks.
	 * Without its first MiB, [6M, 8M) still holds one; without the
	 * rest, nothing does.
	 */
	lost_init(&l, huge_split_doc, NULL);
	start_clean(&l);
	status(&l, "i0", &ds);
	CU_ASSERT_EQUAL(ds.precision, VMIG_PRECISION_SUPERSET);
	CU_ASSERT(vmig_dma_unmap(l.s, space(&l, "a"), 4 * MiB, MiB) == 0);
	status(&l, "i0", &ds);
	CU_ASSERT_EQUAL(ds.precision, VMIG_PRECISION_SUPERSET);
	CU_ASSERT(vmig_dma_unmap(l.s, space(&l, "a"), 5 * MiB, 3 * MiB) ==
		  0);
	status(&l, "i0", &ds);
	CU_ASSERT_EQUAL(ds.precision, VMIG_PRECISION_EXACT);
	stop_fini(&l);
}

/* ------------------------------------------------------------------ */
/* 3.3 figures that compare                                            */

/*
 * A tracking run of three syncs: i0 (iommufd, 4 KiB IOPTEs: exact) writes
 * whole pages of [0, 1M); p0 (type1, a vfio-pci group: all mapped) writes
 * nothing in [2M, 3M). Each sync's report is judged against what was
 * written in its interval: iommufd sent nothing unwritten, type1 its
 * 256 pages every time; and the totals add up.
 */
static const char figures_doc[] =
	"{ 'memory': [ { 'gpa': 0, 'size': '4M' } ],\n"
	"  'devices': [\n"
	"    { 'name': 'i0', 'kind': 'vfio-pci', 'iommu': 'iommufd',\n"
	"      'cdev': '/dev/vfio/devices/vfio0', 'ioas': 'a' },\n"
	"    { 'name': 'p0', 'kind': 'vfio-pci', 'group': 1,\n"
	"      'container': 'c' } ],\n"
	"  'dma_mappings': [\n"
	"    { 'space': 'a', 'iova': 0, 'gpa': 0, 'size': '1M' },\n"
	"    { 'space': 'c', 'iova': '2M', 'gpa': '2M', 'size': '1M' } ],\n"
	"  'run': { 'mode': 'track', 'iterations': 3 },\n"
	"  'kernel': { 'type': 'simulated', 'devices': [\n"
	"    { 'name': 'i0', 'iommu': { 'page_sizes': ['4K'] },\n"
	"      'dma': { 'pattern': 'random', 'writes_per_step': 16 } },\n"
	"    { 'name': 'p0' } ] } }";

static void test_figures_compare(void)
{
	double written, reported, missed, sum = 0;
	cJSON *root, *it, *ifd, *t1, *fb;
	struct lost l;

	lost_init(&l, figures_doc, NULL);
	CU_ASSERT_FATAL(vmig_run(l.s, NULL) == 0);
	root = json_session_report(l.s);
	written = json_num(root, "pages_written");
	reported = json_num(root, "pages_reported");
	missed = json_num(root, "pages_missed");
	CU_ASSERT(written > 0);
	CU_ASSERT_EQUAL(missed, 0);
	ifd = json_entry(root, "sources", "iommufd");
	t1 = json_entry(root, "sources", "vfio-type1");
	fb = json_entry(root, "sources", "all-dirty");
	/* Exact: it reported what was written, and nothing else. */
	CU_ASSERT_EQUAL(json_num(ifd, "pages_reported"), written);
	CU_ASSERT_EQUAL(json_num(ifd, "pages_unwritten"), 0);
	/* All mapped: its 256 pages at each of the three syncs, unwritten. */
	CU_ASSERT_EQUAL(json_num(t1, "pages_reported"), 3 * 256);
	CU_ASSERT_EQUAL(json_num(t1, "pages_unwritten"), 3 * 256);
	CU_ASSERT_EQUAL(json_num(fb, "pages_reported"), 0);
	/* The spaces do not overlap: the totals are the sums. */
	CU_ASSERT_EQUAL(reported, written + 3 * 256);
	cJSON_ArrayForEach(it, cJSON_GetObjectItem(root, "iterations"))
		sum += json_num(it, "pages_reported");
	CU_ASSERT_EQUAL(sum, reported);
	cJSON_Delete(root);
	lost_fini(&l);
}

static const struct CU_TestInfo lost_tests[] = {
	{ "iommufd: unmap across a hole", test_unmap_across_hole },
	{ "iommufd: unplug, mappings with a hole", test_unplug_across_hole },
	{ "a vCPU source fails and is restarted", test_gpa_source_restarted },
	{ "type1: a vfio-pci device that pins pages",
	  test_type1_pinning_pci },
	{ "type1: an mdev beside a vfio-pci group is all-mapped",
	  test_type1_mixed_precision },
	{ "ground truth: a miss in the first pass", test_truth_first_pass },
	{ "window: iommufd, last read to unmap", test_window_unmap_iommufd },
	{ "window: DMA log, last read to unmap", test_window_unmap_log },
	{ "window: DMA log, unplug", test_window_unplug_log },
	{ "VMIG_DMA_EXISTING under DMA logging",
	  test_existing_under_logging },
	{ "top of the IOVA space, 64 KiB log granule",
	  test_top_of_iova_space },
	{ "one kernel mapping, two vmig ones, huge IOPTEs",
	  test_split_huge_mapping },
	{ "iommufd: superset once a range holds a 2 MiB IOPTE",
	  test_iommufd_huge_precision },
	{ "written, reported, unwritten per source", test_figures_compare },
	CU_TEST_INFO_NULL,
};

VMIG_TEST_MAIN_SUITE(VMIG_SUITE("lost writes", (CU_TestInfo *)lost_tests))
