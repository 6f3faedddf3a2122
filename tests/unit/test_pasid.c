/*
 * test_pasid.c: a device's PASID domains, tracked end to end.
 *
 * A session configured from a document ("kernel": {"pasid_attach":
 * true}, a device with "pasids") over the simulated kernel, with the
 * plugins as they ship: the session attaches the PASIDs (as a kernel
 * newer than 6.12 allows), the iommufd plugin tracks the device and its
 * PASIDs' domains, and every sync reports exactly what the simulated
 * device wrote, through its own domain and through each PASID, checked
 * against the simulator's ground truth. Then the same with a kernel that
 * cannot move the PASIDs: the device is still tracked by iommufd and the
 * PASIDs' spaces are dirty on every sync, so no write is ever missed.
 *
 * The simulated devices' DMA engines write through the device's own
 * domain only (ksim_step): the writes through PASIDs are made here with
 * ksim_dma_write_pasid(), and the session's simulator is reached through
 * the library's internals (core/internal.h), as test_engine does.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cjson/cJSON.h>
#include <vmig/vmig.h>

#include "core/bitmap.h"
#include "core/internal.h"
#include "ksim/ksim.h"
#include "testutil.h"
#include "sessionutil.h"
#include "tool/vmig_tool.h"

#define PG 4096u
#define NPAGES 256u /* the guest: 1 MiB at GPA 0 */
#define SVA_IOVA 0x10000000ull /* PASID 1: IOAS "sva", guest pages 64.. */
#define DMA2_IOVA 0x20000000ull /* PASID 2: IOAS "dma2", pages 128.. */
#define SPACE_PAGES 64u /* each space maps 256 KiB */
#define ITERATIONS 4

/*
 * Each space maps its own quarter of the guest, so that a write is
 * placed by where it landed: main is pages 0 to 63, "sva" 64 to 127,
 * "dma2" 128 to 191; 192 to 255 are mapped nowhere.
 */
#define DOC_FMT                                                            \
	"{ \"memory\": [ { \"gpa\": 0, \"size\": \"1M\" } ],\n"             \
	"  \"devices\": [ { \"name\": \"acc\", \"kind\": \"vfio-pci\",\n"  \
	"    \"iommu\": \"iommufd\", \"cdev\": \"/dev/vfio/devices/vfio0\",\n" \
	"    \"ioas\": \"main\",\n"                                         \
	"    \"pasids\": [ { \"pasid\": 1, \"ioas\": \"sva\" },\n"           \
	"                { \"pasid\": 2, \"ioas\": \"dma2\" } ] } ],\n"      \
	"  \"dma_mappings\": [\n"                                           \
	"    { \"space\": \"main\", \"iova\": 0, \"gpa\": 0,\n"             \
	"      \"size\": \"256K\" },\n"                                     \
	"    { \"space\": \"sva\", \"iova\": \"0x10000000\",\n"             \
	"      \"gpa\": \"256K\", \"size\": \"256K\" },\n"                  \
	"    { \"space\": \"dma2\", \"iova\": \"0x20000000\",\n"            \
	"      \"gpa\": \"512K\", \"size\": \"256K\" } ],\n"                \
	"  \"run\": { \"mode\": \"track\", \"iterations\": 4 },\n"         \
	"  \"kernel\": { \"type\": \"simulated\", \"pasid_attach\": %s,\n"  \
	"    \"devices\": [ { \"name\": \"acc\",\n"                         \
	"      \"iommu\": { \"max_pasid_log2\": 8 },\n"                     \
	"      \"dma\": { \"pattern\": \"random\",\n"                       \
	"               \"writes_per_step\": 12 } } ] } }\n"

struct rig {
	vmig_session *s;
	struct ksim_device *kd;
	uint32_t dev_id;
	struct vmig_test_log log;
};

/* A session configured from the document; returns what configure did. */
static int rig_init(struct rig *r, bool pasid_attach)
{
	struct vmig_session_params p = { .size = sizeof(p),
					 .log = vmig_test_session_log,
					 .log_opaque = &r->log,
					 .log_level = VMIG_LOG_DEBUG };
	char text[2048], err[512];
	vmig_config *cfg;
	int ret;

	memset(r, 0, sizeof(*r));
	snprintf(text, sizeof(text), DOC_FMT, pasid_attach ? "true" : "false");
	CU_ASSERT_FATAL(vmig_config_parse(text, strlen(text), NULL, &cfg, err,
					  sizeof(err)) == 0);
	r->s = vmig_test_session_new(&p);
	ret = vmig_session_configure(r->s, cfg);
	vmig_config_free(cfg);
	if (ret < 0)
		return ret;
	CU_ASSERT_FATAL(vmig_tool_ksim(r->s) != NULL);
	CU_ASSERT_FATAL(r->s->nr_regions == 1 &&
			r->s->regions[0].npages == NPAGES);
	CU_ASSERT_FATAL(r->s->nr_devices == 1);
	r->kd = ksim_device_find(vmig_tool_ksim(r->s), "acc");
	CU_ASSERT_FATAL(r->kd != NULL);
	r->dev_id = r->s->devices[0]->id;
	return 0;
}

static void rig_fini(struct rig *r)
{
	vmig_session_free(r->s);
}

/* What the simulated device really wrote, page by page of the guest. */
struct truth {
	const struct vmig_region_rec *reg;
	uint64_t bm[NPAGES / 64];
};

static void truth_fn(void *opaque, const struct ksim_write *w)
{
	struct truth *t = opaque;
	uint64_t off = (uint64_t)((uint8_t *)w->hva - t->reg->hva);
	uint64_t first = off / PG, last = (off + w->len - 1) / PG;

	CU_ASSERT_FATAL((uint8_t *)w->hva >= t->reg->hva && w->len &&
			off + w->len <= t->reg->length);
	vmig_bitmap_set(t->bm, first, last - first + 1);
}

/*
 * One iteration: the device writes through its own domain (its DMA
 * engine) and through both PASIDs, pages that move with i; then a sync.
 * Returns what the simulator recorded in *t and leaves the sync in the
 * region's bitmap.
 */
static void iteration(struct rig *r, unsigned int i, struct truth *t)
{
	unsigned int j;

	vmig_dirty_clear(r->s, 0);
	memset(t, 0, sizeof(*t));
	t->reg = &r->s->regions[0];
	ksim_truth_drain(vmig_tool_ksim(r->s), NULL, NULL);
	CU_ASSERT(ksim_step(vmig_tool_ksim(r->s)) > 0);
	for (j = 0; j < 3; j++) {
		uint64_t p1 = (i * 11 + j * 17) % SPACE_PAGES;
		uint64_t p2 = (i * 5 + j * 23 + 1) % SPACE_PAGES;

		CU_ASSERT(ksim_dma_write_pasid(r->kd, 1,
					       SVA_IOVA + p1 * PG + j * 8,
					       NULL, 16) == 0);
		CU_ASSERT(ksim_dma_write_pasid(r->kd, 2, DMA2_IOVA + p2 * PG,
					       NULL, PG) == 0);
	}
	/* A write across two pages of a PASID space. */
	CU_ASSERT(ksim_dma_write_pasid(r->kd, 1,
				       SVA_IOVA + (i % 60) * PG + PG - 8,
				       NULL, 16) == 0);
	ksim_truth_drain(vmig_tool_ksim(r->s), truth_fn, t);
	CU_ASSERT(vmig_bitmap_count(t->bm, 64, 64) > 0);
	CU_ASSERT(vmig_bitmap_count(t->bm, 128, 64) > 0);
	CU_ASSERT(vmig_dirty_sync(r->s) >= 0);
}

static const uint64_t *synced(struct rig *r)
{
	const uint64_t *bm;
	uint64_t n;

	CU_ASSERT_FATAL(vmig_dirty_bitmap(r->s, 0, &bm, &n) == 0);
	CU_ASSERT_FATAL(n == NPAGES);
	return bm;
}

/* The report's entry for the device. */
static cJSON *report_device(struct rig *r, cJSON **root)
{
	*root = json_session_report(r->s);
	return json_device(*root, "acc");
}

/* The device is tracked by iommufd, exactly, for the reason given. */
static void expect_iommufd_exact(struct rig *r, const char *why)
{
	struct vmig_device_status ds = { .size = sizeof(ds) };

	CU_ASSERT(vmig_device_status(r->s, r->dev_id, &ds) == 0);
	CU_ASSERT_STRING_EQUAL(ds.source, "iommufd");
	CU_ASSERT_EQUAL(ds.precision, VMIG_PRECISION_EXACT);
	CU_ASSERT_PTR_NOT_NULL(strstr(ds.reason, why));
}

static bool where_tracking(struct rig *r, uint32_t pasid)
{
	struct ksim_iommufd_attachment a;

	CU_ASSERT(ksim_iommufd_attachment(r->kd, pasid, &a) == 0);
	return a.tracking;
}

/*
 * pasid_attach on: the PASIDs are covered by iommufd, and every sync is
 * exactly what was written, through every domain.
 */
static void test_pasids_tracked(void)
{
	struct ksim_iommufd_attachment a;
	struct truth t;
	cJSON *root, *dev;
	unsigned int i, pasid;
	struct rig r;

	CU_ASSERT_FATAL(rig_init(&r, true) == 0);
	/* The session attached each PASID to its IOAS: automatic domains. */
	for (pasid = 1; pasid <= 2; pasid++) {
		CU_ASSERT(ksim_iommufd_attachment(r.kd, pasid, &a) == 0);
		CU_ASSERT(a.attached && a.auto_domain && !a.dirty_capable);
	}
	CU_ASSERT_FATAL(vmig_tracking_start(r.s) == 0);
	for (pasid = 0; pasid <= 2; pasid++) {
		CU_ASSERT(ksim_iommufd_attachment(r.kd, pasid, &a) == 0);
		CU_ASSERT(a.attached && !a.auto_domain && a.dirty_capable &&
			  a.tracking);
	}
	expect_iommufd_exact(&r, "PASIDs' too");
	for (i = 0; i < ITERATIONS; i++) {
		iteration(&r, i, &t);
		CU_ASSERT(memcmp(synced(&r), t.bm, sizeof(t.bm)) == 0);
	}
	/* Nothing written: nothing reported, in any space. */
	vmig_dirty_clear(r.s, 0);
	CU_ASSERT(vmig_dirty_sync(r.s) == 0);
	CU_ASSERT(vmig_tracking_stop(r.s) == 0);
	CU_ASSERT(!where_tracking(&r, 1) && !where_tracking(&r, 2));
	/*
	 * The document's own tracking run (its DMA engine writes through the
	 * device's domain only): nothing missed, and the report.
	 */
	CU_ASSERT(vmig_run(r.s, NULL) == 0);
	dev = report_device(&r, &root);
	CU_ASSERT_EQUAL(json_num(root, "pages_missed"), 0);
	CU_ASSERT(json_num(root, "pages_written") > 0);
	CU_ASSERT_STRING_EQUAL(json_str(dev, "source"), "iommufd");
	CU_ASSERT_STRING_EQUAL(json_str(dev, "precision"), "exact");
	CU_ASSERT_PTR_NOT_NULL(strstr(json_str(dev, "reason"), "PASIDs' too"));
	cJSON_Delete(root);
	rig_fini(&r);
}

/*
 * pasid_attach off (6.12): a device with PASIDs cannot even be set up,
 * since the session cannot attach them. And when the kernel cannot move
 * PASIDs the VMM did attach (here: the simulator's PASID attach switched
 * off after the setup), the iommufd plugin declines them: the device is
 * tracked exactly in its own space and its PASIDs' spaces are dirty on
 * every sync, never a write missed.
 */
static void test_pasids_degraded(void)
{
	struct ksim_iommufd_attachment a;
	struct truth t;
	uint64_t want[NPAGES / 64];
	cJSON *root, *dev;
	unsigned int i;
	struct rig r;

	CU_ASSERT(rig_init(&r, false) == -EINVAL);
	CU_ASSERT_PTR_NOT_NULL(strstr(vmig_errmsg(r.s),
				      "this kernel has no PASID attach"));
	rig_fini(&r);

	CU_ASSERT_FATAL(rig_init(&r, true) == 0);
	ksim_iommufd_set_pasid_attach(vmig_tool_ksim(r.s), false);
	CU_ASSERT_FATAL(vmig_tracking_start(r.s) == 0);
	CU_ASSERT(ksim_iommufd_attachment(r.kd, 0, &a) == 0);
	CU_ASSERT(a.dirty_capable && a.tracking);
	CU_ASSERT(ksim_iommufd_attachment(r.kd, 1, &a) == 0);
	CU_ASSERT(a.attached && a.auto_domain && !a.tracking);
	expect_iommufd_exact(&r, "PASIDs not covered");
	for (i = 0; i < ITERATIONS; i++) {
		iteration(&r, i, &t);
		/* Exact in the main space, all of both PASID spaces. */
		memcpy(want, t.bm, sizeof(want));
		vmig_bitmap_set(want, 64, 2 * SPACE_PAGES);
		CU_ASSERT(memcmp(synced(&r), want, sizeof(want)) == 0);
	}
	vmig_dirty_clear(r.s, 0);
	CU_ASSERT(vmig_dirty_sync(r.s) == 2 * SPACE_PAGES);
	dev = report_device(&r, &root);
	CU_ASSERT_STRING_EQUAL(json_str(dev, "source"), "iommufd");
	CU_ASSERT_PTR_NOT_NULL(strstr(json_str(dev, "reason"),
				      "this kernel has no PASID attach"));
	cJSON_Delete(root);
	CU_ASSERT(vmig_tracking_stop(r.s) == 0);
	rig_fini(&r);
}

static CU_TestInfo tests[] = {
	{ "PASIDs tracked by iommufd", test_pasids_tracked },
	{ "PASIDs the kernel cannot move", test_pasids_degraded },
	CU_TEST_INFO_NULL,
};

VMIG_TEST_MAIN_SUITE(VMIG_SUITE("pasid", tests))
