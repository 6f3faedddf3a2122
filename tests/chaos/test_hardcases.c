/*
 * test_hardcases.c: the hard cases of arbitration, one by one, each in a
 * real migration (vmig_migrate_local over the simulator, chaos/rig.h).
 *
 * Every test ends with the same three checks: the migration completed
 * and the destination's memory equals the source's page by page (and the
 * migrated devices' states theirs), the simulator's ground truth says no
 * written page went unreported by the sync that should have reported it,
 * and the report says which source tracks each device, with what
 * precision, and why the others were not chosen. In between, each test
 * acts from the migration's progress callback, on its loop, where
 * nothing else touches the dirty bitmaps: right after the sync that ends
 * iteration 0 (and 1), so that what a call does to the bitmaps can be
 * seen before anything is sent.
 *
 *  - hot-plug with policy track (the new device's ranges sent as dirty
 *    once, then tracked by its best source: joining the dirty HWPT of
 *    its IOAS, or starting its DMA log), degrade (always dirty) and
 *    reject (EBUSY, with the reason);
 *  - unplug and unmap: a device's write just before either is found in
 *    the dirty bitmap right after the call, harvested by every kind of
 *    source (type1's unmap with bitmap, iommufd's NO_CLEAR read then
 *    unmap, which sends the whole range, the device's last REPORT), and
 *    arrives;
 *  - map: a write to a range just mapped is reported by the next sync;
 *  - mdev: tracked by its DMA log when it has one, else by type1 exactly
 *    in a container of pinned-scope groups only, else all-mapped, and on
 *    the fallback behind iommufd;
 *  - PASID: writes through a PASID arrive, the PASID's space covered by
 *    iommufd where it can attach PASIDs to its HWPTs, else degraded;
 *  - a failing source: restarted when the failure is transient, replaced
 *    (or the fallback) when it persists, the migration going on;
 *  - mixed mode: devices of one IOAS tracked by different sources, all
 *    exact (and a stub DMA log passed over for the IOMMU's bits); the
 *    same IOAS under all-or-nothing on the fallback.
 */
#include <errno.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "chaos/rig.h"
#include "unit/testutil.h"

#include "core/engine.h"
#include "core/internal.h"
#include <vmig/linux-uapi.h>

#define MiB (1ull << 20)
#define HIGH 0x100000000ull /* region 1: 4 GiB */

/* A test: its rig and what it does in the progress callback. */
struct hc {
	struct rig *r;
	void (*at1)(struct hc *h); /* right after the sync of iteration 0 */
	void (*at2)(struct hc *h); /* right after the sync of iteration 1 */
	bool did1, did2;
	/* What the callbacks found, checked afterwards. */
	int ret[8];
	bool flag[8];
	uint64_t page[8];
	uint32_t u[8];
	uint64_t bandwidth; /* the migration's limit, 0: none */
	bool no_wait; /* writes of its own: no waiting for the guest */
};

static void hc_progress(struct rig *r, const struct vmig_progress *p)
{
	struct hc *h = r->opaque;

	if (p->iteration == 1 && !h->did1) {
		h->did1 = true;
		/* The devices write during the migration, whatever the pace. */
		if (!h->no_wait)
			CU_ASSERT(rig_wait_steps(r, 4, 60000));
		if (h->at1)
			h->at1(h);
	} else if (p->iteration == 2 && !h->did2) {
		h->did2 = true;
		if (h->at2)
			h->at2(h);
	}
}

/*
 * The configurations below write JSON's double quotes as single ones, to
 * stay readable in C: none of their strings holds a quote.
 */
static void hc_init(struct hc *h, const char *doc)
{
	char err[512], *json = strdup(doc), *c;
	int ret;

	CU_ASSERT_FATAL(json != NULL);
	for (c = json; *c; c++)
		if (*c == '\'')
			*c = '"';
	memset(h, 0, sizeof(*h));
	ret = rig_new(json, &h->r, err, sizeof(err));
	free(json);
	if (ret < 0)
		fprintf(stderr, "\n  rig: %s (%s)\n", err, vmig_strerror(ret));
	CU_ASSERT_FATAL(ret == 0);
	h->r->opaque = h;
	h->r->progress = hc_progress;
	/* Some tens of ms: the guest writes during the migration. */
	h->bandwidth = 256 * MiB;
}

/*
 * Migrates: four iterations (the downtime limit cannot be met), then
 * the switchover, at the test's bandwidth. Checks the three things every
 * test checks; returns the source's report (cJSON_Delete it).
 */
static cJSON *hc_migrate_then(struct hc *h, uint32_t hotplug,
			       uint32_t tracking, void (*then)(void *),
			       void *opaque)
{
	struct vmig_policies p = {
		.size = sizeof(p),
		.hotplug = hotplug,
		.downtime_limit_ms = 1,
		.max_iterations = 4,
		.timeout_strategy = VMIG_TIMEOUT_STRATEGY_FORCE,
		.tracking = tracking,
		.bandwidth_limit = h->bandwidth,
	};
	struct rig_result res = { 0 };
	bool ok;
	cJSON *rep;

	CU_ASSERT_FATAL(rig_policies(h->r, &p) == 0);
	res.ret = rig_migrate(h->r);
	if (then)
		then(opaque);
	ok = rig_check(h->r, &res);
	if (!ok || res.ret)
		fprintf(stderr, "\n  migration: %s: %s\n  log:\n%s\n",
			vmig_strerror(res.ret), res.what, h->r->log);
	CU_ASSERT_EQUAL(res.ret, 0);
	CU_ASSERT(ok);
	CU_ASSERT(res.completed);
	CU_ASSERT_EQUAL(res.pages_differing, 0);
	CU_ASSERT_EQUAL(res.devices_differing, 0);
	CU_ASSERT_EQUAL(res.pages_missed, 0);
	CU_ASSERT(res.pages_written > 0);
	CU_ASSERT(h->did1);
	rep = rig_report(h->r->src);
	CU_ASSERT_FATAL(rep != NULL);
	CU_ASSERT_STRING_EQUAL(rig_str(rep, "result"), "completed");
	CU_ASSERT_EQUAL(rig_num(rep, "pages_missed"), 0);
	return rep;
}

static cJSON *hc_migrate(struct hc *h, uint32_t hotplug, uint32_t tracking)
{
	return hc_migrate_then(h, hotplug, tracking, NULL, NULL);
}

/* The device's entry in the report; fails the test when absent. */
static cJSON *dev(cJSON *rep, const char *name)
{
	cJSON *o = rig_report_device(rep, name);

	if (!o)
		fprintf(stderr, "\n  no device %s in the report\n", name);
	CU_ASSERT_FATAL(o != NULL);
	return o;
}

/* Checks a device's source and precision, and a word of its reason. */
static void tracked(cJSON *rep, const char *name, const char *source,
		    const char *precision, const char *why)
{
	cJSON *o = dev(rep, name);

	if (strcmp(rig_str(o, "source"), source) ||
	    strcmp(rig_str(o, "precision"), precision))
		fprintf(stderr, "\n  %s: %s (%s), wanted %s (%s): %s\n", name,
			rig_str(o, "source"), rig_str(o, "precision"), source,
			precision, rig_str(o, "reason"));
	CU_ASSERT_STRING_EQUAL(rig_str(o, "source"), source);
	CU_ASSERT_STRING_EQUAL(rig_str(o, "precision"), precision);
	if (why)
		CU_ASSERT(has(rig_str(o, "reason"), why));
}

/* Checks what a source said of a device, and whether it was chosen. */
static void candidate(cJSON *rep, const char *name, const char *source,
		      const char *precision, bool chosen, const char *why)
{
	cJSON *o = dev(rep, name), *c;

	cJSON_ArrayForEach(c, cJSON_GetObjectItem(o, "candidates")) {
		if (strcmp(rig_str(c, "source"), source))
			continue;
		if (precision)
			CU_ASSERT_STRING_EQUAL(rig_str(c, "precision"),
					       precision);
		CU_ASSERT_EQUAL(cJSON_IsTrue(cJSON_GetObjectItem(c, "chosen")),
				chosen);
		if (why)
			CU_ASSERT(has(rig_str(c, "reason"), why));
		return;
	}
	fprintf(stderr, "\n  %s: no candidate %s\n", name, source);
	CU_FAIL("candidate missing");
}

/* What iteration i sent (PAGES and ZERO pages). */
static double sent(cJSON *rep, int i)
{
	cJSON *it = cJSON_GetArrayItem(cJSON_GetObjectItem(rep, "iterations"),
				       i);

	CU_ASSERT_FATAL(it != NULL);
	return rig_num(it, "pages_sent") + rig_num(it, "zero_pages");
}

/* Whether the source's bitmap has the page at gpa dirty. */
static bool page_dirty(struct hc *h, uint64_t gpa)
{
	const uint64_t *bm;
	uint64_t np, pg;
	size_t i;

	for (i = 0; i < h->r->src->nr_regions; i++) {
		const struct vmig_region_rec *rg = &h->r->src->regions[i];

		if (gpa < rg->gpa || gpa >= rg->gpa + rg->length)
			continue;
		CU_ASSERT_FATAL(vmig_dirty_bitmap(h->r->src, (uint32_t)i, &bm,
						  &np) == 0);
		pg = (gpa - rg->gpa) / RIG_PAGE;
		return bm[pg / 64] & (1ull << (pg % 64));
	}
	CU_FAIL("no region there");
	return false;
}

/* A page of [lo, hi) whose bit is clear now (on the loop: stays so). */
static uint64_t clean_page(struct hc *h, uint64_t lo, uint64_t hi)
{
	uint64_t p;

	for (p = lo; p < hi; p += RIG_PAGE)
		if (!page_dirty(h, p))
			return p;
	CU_FAIL("no clean page");
	return lo;
}

static void hc_fini(struct hc *h)
{
	rig_free(h->r);
}

/* ------------------------------------------------------------------ */
/* Hot-plug                                                            */

/*
 * IOAS "a" (a device with IOMMU dirty tracking) and container "c" (a
 * device with pds DMA logging), each mapping all of memory: 12 MiB, 3072
 * pages. The devices write little, so a space marked dirty shows.
 */
static const char hotplug_doc[] =
	"{ 'memory': [ { 'gpa': 0, 'size': '8M' },\n"
	"              { 'gpa': '4G', 'size': '4M' } ],\n"
	"  'devices': [\n"
	"    { 'name': 'd0', 'kind': 'vfio-pci', 'iommu': 'iommufd',\n"
	"      'cdev': '/dev/vfio/devices/vfio0', 'ioas': 'a' },\n"
	"    { 'name': 't0', 'kind': 'vfio-pci', 'group': 1,\n"
	"      'container': 'c' } ],\n"
	"  'kernel': { 'type': 'simulated', 'devices': [\n"
	"    { 'name': 'd0', 'iommu': { 'page_sizes': ['4K'] },\n"
	"      'dma': { 'pattern': 'random', 'writes_per_step': 2 } },\n"
	"    { 'name': 't0', 'dma_logging': 'pds',\n"
	"      'dma': { 'pattern': 'random', 'writes_per_step': 2 } } ] } }";

#define ALL_PAGES 3072

static int plug(struct hc *h, const char *name, const char *space, bool log,
		unsigned int early)
{
	struct rig_hotplug hp = {
		.name = name,
		.space = space,
		.group = 20,
		.cdev_index = 10,
		.dirty_tracking = true,
		.iommu_pgsizes = RIG_PAGE, /* as d0's: it can join its HWPT */
		.early_writes = early,
		.writes_per_step = 2,
		.write_size = RIG_PAGE,
		.seed = 7,
	};
	uint32_t id;
	bool kfail;
	int ret;

	if (log)
		hp.feature.log = KSIM_LOG_MLX5;
	ret = rig_hotplug(h->r, &hp, &id, &kfail);
	CU_ASSERT_FALSE(kfail);
	return ret;
}

static void track_at1(struct hc *h)
{
	struct ksim_iommufd_attachment at0, at1;
	struct vmig_range rg[4];
	uint64_t ps = 0;

	h->ret[0] = plug(h, "hp0", "a", false, 3);
	h->ret[1] = plug(h, "hp1", "c", true, 3);
	/* It joined d0's dirty-tracking HWPT, which tracks. */
	CU_ASSERT(ksim_iommufd_attachment(ksim_device_find(h->r->k, "d0"), 0,
					  &at0) == 0);
	CU_ASSERT(ksim_iommufd_attachment(ksim_device_find(h->r->k, "hp0"),
					  0, &at1) == 0);
	h->flag[0] = at1.attached && at1.pt_id == at0.pt_id &&
		     at1.dirty_capable && at1.tracking && !at1.auto_domain;
	/* Its DMA log runs. */
	h->u[0] = (uint32_t)ksim_device_log_ranges(
		ksim_device_find(h->r->k, "hp1"), rg, 4, &ps);
}

static void test_hotplug_track(void)
{
	struct hc h;
	cJSON *rep;

	hc_init(&h, hotplug_doc);
	h.at1 = track_at1;
	rep = hc_migrate(&h, VMIG_HOTPLUG_POLICY_TRACK,
			 VMIG_TRACKING_POLICY_MIXED);
	CU_ASSERT_EQUAL(h.ret[0], 0);
	CU_ASSERT_EQUAL(h.ret[1], 0);
	CU_ASSERT(h.flag[0]);
	CU_ASSERT(h.u[0] > 0);
	/* Dirty once: all of memory in iteration 1, not in the later ones. */
	CU_ASSERT(sent(rep, 1) >= ALL_PAGES);
	CU_ASSERT(sent(rep, 2) < ALL_PAGES / 2);
	CU_ASSERT(sent(rep, 3) < ALL_PAGES / 2);
	CU_ASSERT(cJSON_IsTrue(cJSON_GetObjectItem(dev(rep, "hp0"),
						   "hotplugged")));
	tracked(rep, "hp0", "iommufd", "exact", "IOMMU dirty bits");
	candidate(rep, "hp0", "device-dirty", "none", false,
		  "offers no DMA logging");
	candidate(rep, "hp0", "vfio-type1", "none", false,
		  "does not track devices behind iommufd");
	tracked(rep, "hp1", "device-dirty", "exact", "device DMA log");
	candidate(rep, "hp1", "iommufd", "none", false,
		  "does not track devices behind type1");
	candidate(rep, "hp1", "vfio-type1", "all-mapped", false,
		  "every mapped page");
	cJSON_Delete(rep);
	hc_fini(&h);
}

static void degrade_at1(struct hc *h)
{
	h->ret[0] = plug(h, "hp0", "a", false, 2);
}

static void test_hotplug_degrade(void)
{
	struct hc h;
	cJSON *rep;

	hc_init(&h, hotplug_doc);
	h.at1 = degrade_at1;
	rep = hc_migrate(&h, VMIG_HOTPLUG_POLICY_DEGRADE,
			 VMIG_TRACKING_POLICY_MIXED);
	CU_ASSERT_EQUAL(h.ret[0], 0);
	/* Its space (all of memory) is dirty in every iteration after. */
	CU_ASSERT(sent(rep, 1) >= ALL_PAGES);
	CU_ASSERT(sent(rep, 2) >= ALL_PAGES);
	CU_ASSERT(sent(rep, 3) >= ALL_PAGES);
	tracked(rep, "hp0", "all-dirty", "all-mapped", "policy \"degrade\"");
	/* iommufd could have: the policy said no. */
	candidate(rep, "hp0", "iommufd", "exact", false, NULL);
	cJSON_Delete(rep);
	hc_fini(&h);
}

static void reject_at1(struct hc *h)
{
	h->ret[0] = plug(h, "hp0", "a", false, 0);
	h->flag[0] = has(vmig_errmsg(h->r->src),
			 "device hp0: hot-plug during migration is rejected "
			 "by policy");
}

static void test_hotplug_reject(void)
{
	struct hc h;
	cJSON *rep;

	hc_init(&h, hotplug_doc);
	h.at1 = reject_at1;
	rep = hc_migrate(&h, VMIG_HOTPLUG_POLICY_REJECT,
			 VMIG_TRACKING_POLICY_MIXED);
	CU_ASSERT_EQUAL(h.ret[0], -EBUSY);
	CU_ASSERT(h.flag[0]);
	CU_ASSERT_PTR_NULL(rig_report_device(rep, "hp0"));
	tracked(rep, "d0", "iommufd", "exact", NULL);
	cJSON_Delete(rep);
	hc_fini(&h);
}

/* ------------------------------------------------------------------ */
/* Unplug, unmap, map                                                  */

/*
 * Three address spaces, one per kind of source, two devices in each: the
 * first writes only when told (it is unplugged), the second writes all
 * along. Region 0 is mapped as [0, 4M) and [4M, 8M) (the second is
 * unmapped, or mapped later), region 1 whole.
 *  - container "c": two mdevs (pinned scope: type1, exact);
 *  - IOAS "a": two functions with IOMMU dirty tracking (iommufd);
 *  - container "l": two functions with DMA logging, mlx5 and pds
 *    (device-dirty).
 */
static const char harvest_doc[] =
	"{ 'memory': [ { 'gpa': 0, 'size': '8M' },\n"
	"              { 'gpa': '4G', 'size': '4M' } ],\n"
	"  'devices': [\n"
	"    { 'name': 'm0', 'kind': 'mdev', 'group': 1,\n"
	"      'container': 'c' },\n"
	"    { 'name': 'm1', 'kind': 'mdev', 'group': 2,\n"
	"      'container': 'c' },\n"
	"    { 'name': 'i0', 'kind': 'vfio-pci', 'iommu': 'iommufd',\n"
	"      'cdev': '/dev/vfio/devices/vfio0', 'ioas': 'a' },\n"
	"    { 'name': 'i1', 'kind': 'vfio-pci', 'iommu': 'iommufd',\n"
	"      'cdev': '/dev/vfio/devices/vfio1', 'ioas': 'a' },\n"
	"    { 'name': 'l0', 'kind': 'vfio-pci', 'group': 3,\n"
	"      'container': 'l' },\n"
	"    { 'name': 'l1', 'kind': 'vfio-pci', 'group': 4,\n"
	"      'container': 'l' } ],\n"
	"  'dma_mappings': [\n"
	"    { 'space': 'c', 'iova': 0, 'gpa': 0, 'size': '4M' },\n"
	"    { 'space': 'c', 'iova': '4G', 'gpa': '4G', 'size': '4M' },\n"
	"    { 'space': 'a', 'iova': 0, 'gpa': 0, 'size': '4M' },\n"
	"    { 'space': 'a', 'iova': '4G', 'gpa': '4G', 'size': '4M' },\n"
	"    { 'space': 'l', 'iova': 0, 'gpa': 0, 'size': '4M' },\n"
	"    { 'space': 'l', 'iova': '4G', 'gpa': '4G', 'size': '4M' }%s ],\n"
	"  'kernel': { 'type': 'simulated', 'devices': [\n"
	"    { 'name': 'm0', 'pin': { 'iova': 0, 'pages': 4 } },\n"
	"    { 'name': 'm1', 'pin': { 'iova': '0x10000', 'pages': 4 },\n"
	"      'dma': { 'pattern': 'random', 'writes_per_step': 2 } },\n"
	"    { 'name': 'i0', 'iommu': { 'page_sizes': ['4K'] } },\n"
	"    { 'name': 'i1', 'iommu': { 'page_sizes': ['4K'] },\n"
	"      'dma': { 'pattern': 'random', 'writes_per_step': 2 } },\n"
	"    { 'name': 'l0', 'dma_logging': 'mlx5' },\n"
	"    { 'name': 'l1', 'dma_logging': 'pds',\n"
	"      'dma': { 'pattern': 'random', 'writes_per_step': 2 } } ] } }";

static const char upper_maps[] =
	",\n    { 'space': 'c', 'iova': '4M', 'gpa': '4M', 'size': '4M' },\n"
	"    { 'space': 'a', 'iova': '4M', 'gpa': '4M', 'size': '4M' },\n"
	"    { 'space': 'l', 'iova': '4M', 'gpa': '4M', 'size': '4M' }";

static const char *const spaces3[] = { "c", "a", "l" };
static const char *const gone3[] = { "m0", "i0", "l0" };
static const char *const stay3[] = { "m1", "i1", "l1" };

static void harvest_doc_make(char *buf, size_t len, bool upper)
{
	snprintf(buf, len, harvest_doc, upper ? upper_maps : "");
}

/*
 * For each kind of source: a write by the device, then its unplug; a
 * write by the other device into [4M, 8M), then that range's unmap. Each
 * written page was clean in the bitmap before and must be dirty right
 * after the call: the harvest put it there (no sync ran in between).
 */
static void harvest_at1(struct hc *h)
{
	/*
	 * iommufd last: its unmap sends the whole range (a write between its
	 * last read and IOAS_UNMAP cannot be seen), which leaves no clean
	 * page of [4M, 8M) for the others.
	 */
	static const int order[] = { 0, 2, 1 };
	int k;

	for (k = 0; k < 3; k++) {
		int i = order[k];
		uint64_t p = clean_page(h, MiB, 2 * MiB), q;
		bool wrote;

		CU_ASSERT(rig_write(h->r, gone3[i], 0, spaces3[i], &p, RIG_PAGE,
				    (uint64_t)i) == 0);
		h->ret[i] = rig_unplug(h->r, gone3[i], false, &wrote, 1);
		h->flag[i] = page_dirty(h, p);
		if (!h->flag[i])
			fprintf(stderr,
				"\n  %s: 0x%llx not harvested at unplug\n",
				gone3[i], (unsigned long long)p);

		q = clean_page(h, 5 * MiB, 6 * MiB);
		h->page[i] = q;
		h->ret[3 + i] = rig_unmap(h->r, spaces3[i], 4 * MiB, 4 * MiB,
					  stay3[i], &q, 11);
		CU_ASSERT_EQUAL(q, h->page[i]); /* the last write happened */
		h->flag[3 + i] = page_dirty(h, h->page[i]);
		if (!h->flag[3 + i])
			fprintf(stderr,
				"\n  %s: 0x%llx not harvested at unmap\n",
				spaces3[i], (unsigned long long)h->page[i]);
	}
}

static void test_unplug_unmap_harvest(void)
{
	char doc[sizeof(harvest_doc) + sizeof(upper_maps)];
	struct hc h;
	cJSON *rep;
	int i;

	harvest_doc_make(doc, sizeof(doc), true);
	hc_init(&h, doc);
	h.at1 = harvest_at1;
	rep = hc_migrate(&h, VMIG_HOTPLUG_POLICY_TRACK,
			 VMIG_TRACKING_POLICY_MIXED);
	for (i = 0; i < 3; i++) {
		CU_ASSERT_EQUAL(h.ret[i], 0);     /* unplugged */
		CU_ASSERT(h.flag[i]);             /* its last write harvested */
		CU_ASSERT_EQUAL(h.ret[3 + i], 0); /* unmapped */
		CU_ASSERT(h.flag[3 + i]);         /* the range's last write */
		CU_ASSERT(cJSON_IsFalse(cJSON_GetObjectItem(dev(rep, gone3[i]),
							    "present")));
		CU_ASSERT_STRING_EQUAL(rig_str(dev(rep, gone3[i]), "reason"),
				       "unplugged");
	}
	tracked(rep, "m1", "vfio-type1", "exact", "pinned-page scope");
	tracked(rep, "i1", "iommufd", "exact", NULL);
	tracked(rep, "l1", "device-dirty", "exact", NULL);
	cJSON_Delete(rep);
	hc_fini(&h);
}

/* [4M, 8M) mapped in each space, and a write into it at once. */
static void map_at1(struct hc *h)
{
	int i;

	for (i = 0; i < 3; i++) {
		h->ret[i] = rig_map(h->r, spaces3[i], 4 * MiB, 4 * MiB,
				    4 * MiB, true);
		h->page[i] = 4 * MiB + (uint64_t)(1 + 3 * i) * 64 * RIG_PAGE;
		h->ret[3 + i] = rig_write(h->r, stay3[i], 0, spaces3[i],
					  &h->page[i], RIG_PAGE, 3);
	}
}

/* The sync that ended iteration 1 reported each of those writes. */
static void map_at2(struct hc *h)
{
	int i;

	for (i = 0; i < 3; i++)
		h->flag[i] = page_dirty(h, h->page[i]);
}

static void test_map(void)
{
	char doc[sizeof(harvest_doc) + sizeof(upper_maps)];
	struct hc h;
	cJSON *rep;
	int i;

	harvest_doc_make(doc, sizeof(doc), false);
	hc_init(&h, doc);
	h.at1 = map_at1;
	h.at2 = map_at2;
	rep = hc_migrate(&h, VMIG_HOTPLUG_POLICY_TRACK,
			 VMIG_TRACKING_POLICY_MIXED);
	CU_ASSERT(h.did2);
	for (i = 0; i < 3; i++) {
		CU_ASSERT_EQUAL(h.ret[i], 0);
		CU_ASSERT_EQUAL(h.ret[3 + i], 0);
		if (!h.flag[i])
			fprintf(stderr, "\n  %s: the write at 0x%llx into the "
				"new range was not reported\n", spaces3[i],
				(unsigned long long)h.page[i]);
		CU_ASSERT(h.flag[i]);
	}
	tracked(rep, "m1", "vfio-type1", "exact", NULL);
	tracked(rep, "i1", "iommufd", "exact", NULL);
	tracked(rep, "l1", "device-dirty", "exact", NULL);
	cJSON_Delete(rep);
	hc_fini(&h);
}

/* ------------------------------------------------------------------ */
/* mdev                                                                */

/*
 * Four setups, each in its own address space:
 *  - c1: an mdev with mlx5 DMA logging, beside a plain function;
 *  - c2: two mdevs without logging (every group in pinned scope);
 *  - c3: an mdev without logging beside a plain function (a group
 *    outside pinned scope);
 *  - a:  an mdev behind iommufd without logging.
 */
static const char mdev_doc[] =
	"{ 'memory': [ { 'gpa': 0, 'size': '8M' },\n"
	"              { 'gpa': '4G', 'size': '4M' } ],\n"
	"  'devices': [\n"
	"    { 'name': 'ma', 'kind': 'mdev', 'group': 1, 'container': 'c1' },\n"
	"    { 'name': 'pa', 'kind': 'vfio-pci', 'group': 2,\n"
	"      'container': 'c1' },\n"
	"    { 'name': 'mb', 'kind': 'mdev', 'group': 3, 'container': 'c2' },\n"
	"    { 'name': 'mb2', 'kind': 'mdev', 'group': 4,\n"
	"      'container': 'c2' },\n"
	"    { 'name': 'mc', 'kind': 'mdev', 'group': 5, 'container': 'c3' },\n"
	"    { 'name': 'pc', 'kind': 'vfio-pci', 'group': 6,\n"
	"      'container': 'c3' },\n"
	"    { 'name': 'md', 'kind': 'mdev', 'iommu': 'iommufd',\n"
	"      'cdev': '/dev/vfio/devices/vfio0', 'ioas': 'a' } ],\n"
	"  'kernel': { 'type': 'simulated', 'devices': [\n"
	"    { 'name': 'ma', 'dma_logging': 'mlx5',\n"
	"      'pin': { 'iova': 0, 'pages': 2 },\n"
	"      'dma': { 'pattern': 'random', 'writes_per_step': 2 } },\n"
	"    { 'name': 'pa' },\n"
	"    { 'name': 'mb', 'pin': { 'iova': '0x20000', 'pages': 3 },\n"
	"      'dma': { 'pattern': 'hotspot', 'writes_per_step': 2 } },\n"
	"    { 'name': 'mb2', 'dma': { 'pattern': 'sequential',\n"
	"        'writes_per_step': 1 } },\n"
	"    { 'name': 'mc', 'pin': { 'iova': '4G', 'pages': 1 },\n"
	"      'dma': { 'pattern': 'random', 'writes_per_step': 2 } },\n"
	"    { 'name': 'pc' },\n"
	"    { 'name': 'md', 'pin': { 'iova': '0x40000', 'pages': 2 },\n"
	"      'dma': { 'pattern': 'random', 'writes_per_step': 2 } } ] } }";

static void test_mdev(void)
{
	struct hc h;
	cJSON *rep;

	hc_init(&h, mdev_doc);
	rep = hc_migrate(&h, VMIG_HOTPLUG_POLICY_TRACK,
			 VMIG_TRACKING_POLICY_MIXED);
	/* Its vendor's DMA log first. */
	tracked(rep, "ma", "device-dirty", "exact", "device DMA log");
	/* (Whatever type1 offered when it probed: it was not chosen.) */
	candidate(rep, "ma", "vfio-type1", NULL, false, NULL);
	candidate(rep, "ma", "iommufd", "none", false,
		  "does not track mdev devices");
	/* Every group of its container in pinned scope: type1 is exact. */
	tracked(rep, "mb", "vfio-type1", "exact", "pinned-page scope");
	tracked(rep, "mb2", "vfio-type1", "exact", "pinned-page scope");
	candidate(rep, "mb", "device-dirty", "none", false,
		  "offers no DMA logging");
	/* A plain function in its container: type1 reports all mapped. */
	tracked(rep, "mc", "vfio-type1", "all-mapped", "every mapped page");
	/* Behind iommufd, nothing sees an mdev's writes: degraded. */
	tracked(rep, "md", "all-dirty", "all-mapped", "no source can track");
	candidate(rep, "md", "iommufd", "none", false, "mdev");
	candidate(rep, "md", "device-dirty", "none", false,
		  "offers no DMA logging");
	candidate(rep, "md", "vfio-type1", "none", false,
		  "does not track devices behind iommufd");
	cJSON_Delete(rep);
	hc_fini(&h);
}

/* ------------------------------------------------------------------ */
/* PASID                                                               */

/*
 * A function on IOAS "main" whose PASID 1 writes through IOAS "sva"
 * (which maps region 1 only: 1024 pages), and which writes through its
 * main attachment too. The VMM attached the PASID with the newer
 * kernel's PASID attach.
 */
static const char pasid_doc[] =
	"{ 'memory': [ { 'gpa': 0, 'size': '8M' },\n"
	"              { 'gpa': '4G', 'size': '4M' } ],\n"
	"  'devices': [\n"
	"    { 'name': 'p0', 'kind': 'vfio-pci', 'iommu': 'iommufd',\n"
	"      'cdev': '/dev/vfio/devices/vfio0', 'ioas': 'main',\n"
	"      'pasids': [ { 'pasid': 1, 'ioas': 'sva' } ] } ],\n"
	"  'dma_mappings': [\n"
	"    { 'space': 'main', 'iova': 0, 'gpa': 0, 'size': '8M' },\n"
	"    { 'space': 'main', 'iova': '4G', 'gpa': '4G', 'size': '4M' },\n"
	"    { 'space': 'sva', 'iova': '4G', 'gpa': '4G', 'size': '4M' } ],\n"
	"  'kernel': { 'type': 'simulated', 'pasid_attach': true,\n"
	"    'devices': [\n"
	"    { 'name': 'p0', 'iommu': { 'max_pasid_log2': 4,\n"
	"        'page_sizes': ['4K'] },\n"
	"      'dma': { 'pattern': 'random', 'writes_per_step': 2 } } ] } }";

#define SVA_PAGES 1024

static void pasid_at1(struct hc *h)
{
	struct ksim_iommufd_attachment at;
	int id = rig_device_id(h->r, "p0");

	/* Where its PASID writes now, and what vmig thinks of it. */
	CU_ASSERT(ksim_iommufd_attachment(ksim_device_find(h->r->k, "p0"), 1,
					  &at) == 0);
	h->flag[0] = at.attached && at.tracking;
	h->flag[1] = h->r->src->devices[id]->pasids_covered;
	/* A write through the PASID right now, besides its writer's. */
	h->page[0] = HIGH + 100 * RIG_PAGE;
	h->ret[0] = rig_write(h->r, "p0", 1, "sva", &h->page[0], RIG_PAGE, 5);
}

static void pasid_case(bool attach_on)
{
	struct hc h;
	cJSON *rep;
	int i;

	hc_init(&h, pasid_doc);
	if (!attach_on)
		/*
		 * 6.12: the VMM's PASID attach happened (a newer kernel at
		 * setup), but no source can move the PASID onto a HWPT of
		 * its own now.
		 */
		ksim_iommufd_set_pasid_attach(h.r->k, false);
	CU_ASSERT(rig_writer_add(h.r, "p0", 1, "sva", 2, RIG_PAGE, 9, true) >=
		  0);
	h.at1 = pasid_at1;
	rep = hc_migrate(&h, VMIG_HOTPLUG_POLICY_TRACK,
			 VMIG_TRACKING_POLICY_MIXED);
	CU_ASSERT_EQUAL(h.ret[0], 0);
	CU_ASSERT(h.r->writers[0].made > 0);
	tracked(rep, "p0", "iommufd", "exact", NULL);
	/*
	 * A kernel that can attach a PASID to another HWPT lets iommufd
	 * move it onto a tracking one: covered. Without, it cannot be
	 * covered: degraded.
	 */
	CU_ASSERT_EQUAL(h.flag[1], attach_on);
	if (h.flag[1]) {
		/* Covered: the PASID writes through a tracking HWPT. */
		CU_ASSERT(h.flag[0]);
		for (i = 2; i < 4; i++)
			CU_ASSERT(sent(rep, i) < SVA_PAGES);
	} else {
		/* Degraded: the PASID's space is dirty at every sync. */
		for (i = 1; i < 4; i++)
			CU_ASSERT(sent(rep, i) >= SVA_PAGES);
	}
	cJSON_Delete(rep);
	hc_fini(&h);
}

static void test_pasid_attach_on(void)
{
	pasid_case(true);
}

static void test_pasid_attach_off(void)
{
	pasid_case(false);
}

/* ------------------------------------------------------------------ */
/* A source that fails                                                 */

/*
 * IOAS "a": i0 (IOMMU dirty bits and an mlx5 DMA log), i1 (IOMMU dirty
 * bits only); container "c": l0 (mlx5 DMA log).
 */
static const char fail_doc[] =
	"{ 'memory': [ { 'gpa': 0, 'size': '8M' },\n"
	"              { 'gpa': '4G', 'size': '4M' } ],\n"
	"  'devices': [\n"
	"    { 'name': 'i0', 'kind': 'vfio-pci', 'iommu': 'iommufd',\n"
	"      'cdev': '/dev/vfio/devices/vfio0', 'ioas': 'a' },\n"
	"    { 'name': 'i1', 'kind': 'vfio-pci', 'iommu': 'iommufd',\n"
	"      'cdev': '/dev/vfio/devices/vfio1', 'ioas': 'a' },\n"
	"    { 'name': 'l0', 'kind': 'vfio-pci', 'group': 1,\n"
	"      'container': 'c' } ],\n"
	"  'kernel': { 'type': 'simulated', 'devices': [\n"
	"    { 'name': 'i0', 'dma_logging': 'mlx5',\n"
	"      'iommu': { 'page_sizes': ['4K'] },\n"
	"      'dma': { 'pattern': 'random', 'writes_per_step': 2 } },\n"
	"    { 'name': 'i1', 'iommu': { 'page_sizes': ['4K'] },\n"
	"      'dma': { 'pattern': 'hotspot', 'writes_per_step': 2 } },\n"
	"    { 'name': 'l0', 'dma_logging': 'mlx5',\n"
	"      'dma': { 'pattern': 'random', 'writes_per_step': 2 } } ] } }";

static const cJSON *source_rec(cJSON *rep, const char *name)
{
	cJSON *o;

	cJSON_ArrayForEach(o, cJSON_GetObjectItem(rep, "sources"))
		if (!strcmp(rig_str(o, "name"), name))
			return o;
	CU_FAIL("no such source");
	return NULL;
}

static bool source_failed(cJSON *rep, const char *name)
{
	return cJSON_IsTrue(cJSON_GetObjectItem(source_rec(rep, name),
						"failed"));
}

static void read_once_at1(struct hc *h)
{
	ksim_fail_request(h->r->k, VK_IOMMU_HWPT_GET_DIRTY_BITMAP, EIO, 1);
}

static void test_fail_transient(void)
{
	struct hc h;
	cJSON *rep;

	hc_init(&h, fail_doc);
	h.at1 = read_once_at1;
	rep = hc_migrate(&h, VMIG_HOTPLUG_POLICY_TRACK,
			 VMIG_TRACKING_POLICY_MIXED);
	CU_ASSERT(has(h.r->log, "iommufd: read failed (Input/output error): "
				"restarted"));
	CU_ASSERT_FALSE(source_failed(rep, "iommufd"));
	CU_ASSERT(rig_num(source_rec(rep, "iommufd"), "read_errors") >= 1);
	tracked(rep, "i0", "iommufd", "exact", NULL);
	tracked(rep, "i1", "iommufd", "exact", NULL);
	tracked(rep, "l0", "device-dirty", "exact", NULL);
	cJSON_Delete(rep);
	hc_fini(&h);
}

static void read_forever_at1(struct hc *h)
{
	ksim_fail_request(h->r->k, VK_IOMMU_HWPT_GET_DIRTY_BITMAP, EIO, -1);
}

static void test_fail_persistent(void)
{
	struct hc h;
	cJSON *rep;

	hc_init(&h, fail_doc);
	h.at1 = read_forever_at1;
	rep = hc_migrate(&h, VMIG_HOTPLUG_POLICY_TRACK,
			 VMIG_TRACKING_POLICY_MIXED);
	CU_ASSERT(has(h.r->log, "iommufd: read failed (Input/output error) "
				"again"));
	CU_ASSERT(source_failed(rep, "iommufd"));
	/* Replaced where a source can, the fallback where none can. */
	tracked(rep, "i0", "device-dirty", "exact", NULL);
	candidate(rep, "i0", "iommufd", "none", false, "source failed");
	tracked(rep, "i1", "all-dirty", "all-mapped", NULL);
	candidate(rep, "i1", "iommufd", "none", false, "source failed");
	tracked(rep, "l0", "device-dirty", "exact", NULL);
	cJSON_Delete(rep);
	hc_fini(&h);
}

static void tracker_eio_at1(struct hc *h)
{
	ksim_device_log_break(ksim_device_find(h->r->k, "l0"), EIO);
}

static void test_tracker_broken(void)
{
	struct hc h;
	cJSON *rep;

	hc_init(&h, fail_doc);
	h.at1 = tracker_eio_at1;
	rep = hc_migrate(&h, VMIG_HOTPLUG_POLICY_TRACK,
			 VMIG_TRACKING_POLICY_MIXED);
	/* The plugin restarts the log itself: the source keeps it. */
	CU_ASSERT(has(h.r->log, "l0: DMA logging report failed"));
	CU_ASSERT_FALSE(source_failed(rep, "device-dirty"));
	tracked(rep, "l0", "device-dirty", "exact", NULL);
	cJSON_Delete(rep);
	hc_fini(&h);
}

static void tracker_gone_at1(struct hc *h)
{
	ksim_device_log_break(ksim_device_find(h->r->k, "l0"), ENOTCONN);
}

static void test_tracker_gone(void)
{
	struct hc h;
	cJSON *rep;

	hc_init(&h, fail_doc);
	h.at1 = tracker_gone_at1;
	rep = hc_migrate(&h, VMIG_HOTPLUG_POLICY_TRACK,
			 VMIG_TRACKING_POLICY_MIXED);
	/* The VF lost its PF: no restart helps; type1 takes it. */
	CU_ASSERT(source_failed(rep, "device-dirty"));
	tracked(rep, "l0", "vfio-type1", "all-mapped", NULL);
	candidate(rep, "l0", "device-dirty", "none", false, "source failed");
	/* i0's log was never relied on: iommufd keeps it. */
	tracked(rep, "i0", "iommufd", "exact", NULL);
	cJSON_Delete(rep);
	ksim_device_log_break(ksim_device_find(h.r->k, "l0"), 0);
	hc_fini(&h);
}

/* ------------------------------------------------------------------ */
/* Mixed mode                                                          */

/*
 * One IOAS, three functions: i0 with IOMMU dirty bits, l0 without them
 * but with an mlx5 DMA log, s0 with IOMMU dirty bits and a stub DMA log
 * (the mtty model: it never reports). All write.
 */
static const char mixed_doc[] =
	"{ 'memory': [ { 'gpa': 0, 'size': '8M' },\n"
	"              { 'gpa': '4G', 'size': '4M' } ],\n"
	"  'devices': [\n"
	"    { 'name': 'i0', 'kind': 'vfio-pci', 'iommu': 'iommufd',\n"
	"      'cdev': '/dev/vfio/devices/vfio0', 'ioas': 'a' },\n"
	"    { 'name': 'l0', 'kind': 'vfio-pci', 'iommu': 'iommufd',\n"
	"      'cdev': '/dev/vfio/devices/vfio1', 'ioas': 'a' },\n"
	"    { 'name': 's0', 'kind': 'vfio-pci', 'iommu': 'iommufd',\n"
	"      'cdev': '/dev/vfio/devices/vfio2', 'ioas': 'a' } ],\n"
	"  'kernel': { 'type': 'simulated', 'devices': [\n"
	"    { 'name': 'i0', 'iommu': { 'page_sizes': ['4K'] },\n"
	"      'dma': { 'pattern': 'random', 'writes_per_step': 2 } },\n"
	"    { 'name': 'l0', 'iommu_dirty_tracking': false,\n"
	"      'dma_logging': 'mlx5',\n"
	"      'dma': { 'pattern': 'hotspot', 'writes_per_step': 2 } },\n"
	"    { 'name': 's0', 'dma_logging': 'stub',\n"
	"      'iommu': { 'page_sizes': ['4K'] },\n"
	"      'dma': { 'pattern': 'sequential', 'writes_per_step': 2 } }\n"
	"  ] } }";

/*
 * The report's totals are the sums of its iterations', the last one's
 * two syncs (its own and the final one) included.
 */
static void figures_add_up(cJSON *rep)
{
	double written = 0, reported = 0;
	cJSON *it;

	cJSON_ArrayForEach(it, cJSON_GetObjectItem(rep, "iterations")) {
		written += rig_num(it, "pages_written");
		reported += rig_num(it, "pages_reported");
	}
	CU_ASSERT_EQUAL(written, rig_num(rep, "pages_written"));
	CU_ASSERT_EQUAL(reported, rig_num(rep, "pages_reported"));
}

static void test_mixed(void)
{
	struct hc h;
	cJSON *rep;
	int i;

	hc_init(&h, mixed_doc);
	rep = hc_migrate(&h, VMIG_HOTPLUG_POLICY_TRACK,
			 VMIG_TRACKING_POLICY_MIXED);
	tracked(rep, "i0", "iommufd", "exact", NULL);
	tracked(rep, "l0", "device-dirty", "exact", NULL);
	candidate(rep, "l0", "iommufd", "none", false, "no dirty tracking");
	/* The stub's log says exact too: the IOMMU's bits come first. */
	tracked(rep, "s0", "iommufd", "exact", NULL);
	candidate(rep, "s0", "device-dirty", "exact", false, NULL);
	CU_ASSERT_EQUAL(rig_num(source_rec(rep, "iommufd"), "devices"), 2);
	CU_ASSERT_EQUAL(rig_num(source_rec(rep, "device-dirty"), "devices"),
			1);
	/* Exact: later iterations send what was written, not everything. */
	for (i = 1; i < 4; i++)
		CU_ASSERT(sent(rep, i) < ALL_PAGES / 2);
	/*
	 * Exact, judged sync by sync against what was written in each
	 * interval (docs/report.md): nothing reported that nothing wrote,
	 * whatever the pace of the writers.
	 */
	CU_ASSERT(rig_num(source_rec(rep, "iommufd"), "pages_reported") > 0);
	CU_ASSERT_EQUAL(rig_num(source_rec(rep, "iommufd"),
				"pages_unwritten"), 0);
	CU_ASSERT(rig_num(source_rec(rep, "device-dirty"), "pages_reported") >
		  0);
	CU_ASSERT_EQUAL(rig_num(source_rec(rep, "device-dirty"),
				"pages_unwritten"), 0);
	figures_add_up(rep);
	cJSON_Delete(rep);
	hc_fini(&h);
}

static void test_all_or_nothing(void)
{
	struct hc h;
	cJSON *rep;
	int i;

	hc_init(&h, mixed_doc);
	rep = hc_migrate(&h, VMIG_HOTPLUG_POLICY_TRACK,
			 VMIG_TRACKING_POLICY_ALL_OR_NOTHING);
	/* No one source takes all three (l0 has no IOMMU dirty bits, i0 no
	 * log): the whole IOAS goes to the fallback. */
	tracked(rep, "i0", "all-dirty", "all-mapped", "all-or-nothing");
	tracked(rep, "l0", "all-dirty", "all-mapped", "all-or-nothing");
	tracked(rep, "s0", "all-dirty", "all-mapped", "all-or-nothing");
	for (i = 1; i < 4; i++)
		CU_ASSERT(sent(rep, i) >= ALL_PAGES);
	cJSON_Delete(rep);
	hc_fini(&h);
}

/* ------------------------------------------------------------------ */
/* Calls from the VMM's own thread                                     */

struct hammer {
	struct hc *h;
	pthread_t thread;
	pthread_mutex_t lock;
	bool done;
	unsigned int maps, fails, during;
	int first_err;
};

/*
 * The VMM's thread maps and unmaps a spare range of each kind of space
 * in a loop, and plugs a device in and out, for as long as the migration
 * lasts and a little longer: the calls run on the migration's loop while
 * it runs, after it directly, and never beside the migrating thread
 * while that one finishes its work on the session.
 */
static void *hammer_main(void *opaque)
{
	struct hammer *hm = opaque;
	struct rig *r = hm->h->r;
	unsigned int after = 0, n = 0;
	bool started = false;
	int ret, i;

	for (;;) {
		bool done, wrote;

		/* During a migration, not before it began (vmig.h). */
		if (!started) {
			pthread_mutex_lock(&hm->lock);
			done = hm->done;
			pthread_mutex_unlock(&hm->lock);
			started = done || vmig_engine_running(r->src);
			if (!started)
				usleep(100);
			continue;
		}

		pthread_mutex_lock(&hm->lock);
		done = hm->done;
		pthread_mutex_unlock(&hm->lock);
		if (done && ++after > 3)
			break;
		for (i = 0; i < 3; i++) {
			uint64_t at = UINT64_MAX;

			/* (Made during the migration: run on its loop.) */
			if (vmig_engine_running(r->src))
				__atomic_add_fetch(&hm->during, 1,
						   __ATOMIC_RELAXED);
			ret = rig_map(r, spaces3[i], 4 * MiB, 4 * MiB, 4 * MiB,
				      true);
			if (ret == 0)
				ret = rig_unmap(r, spaces3[i], 4 * MiB,
						4 * MiB, stay3[i], &at, n);
			hm->maps++;
			if (ret < 0 && !hm->fails++)
				hm->first_err = ret;
		}
		if (n >= 3)
			continue;
		/* A device out, and another in. */
		ret = rig_unplug(r, gone3[n], true, &wrote, n);
		if (ret < 0 && !hm->fails++)
			hm->first_err = ret;
		n++;
		{
			char name[16];
			struct rig_hotplug hp = {
				.name = name,
				.space = spaces3[n % 3],
				.group = 40 + (int)n,
				.cdev_index = 40 + n,
				.dirty_tracking = true,
				.iommu_pgsizes = RIG_PAGE,
				.writes_per_step = 1,
				.write_size = RIG_PAGE,
				.seed = n,
			};
			uint32_t id;
			bool kfail;

			snprintf(name, sizeof(name), "back%u", n);
			ret = rig_hotplug(r, &hp, &id, &kfail);
			if (ret < 0 && !hm->fails++)
				hm->first_err = ret;
		}
	}
	return NULL;
}

/*
 * On the loop, after the first sync: waits (bounded) until the thread
 * has a call queued, so that some of its calls surely run on the loop
 * however the threads get scheduled.
 */
static void hammer_at1(struct hc *h)
{
	struct vmig_engine *e = h->r->src->engine;
	int i;

	for (i = 0; i < 60000; i++) {
		bool queued;

		pthread_mutex_lock(&e->lock);
		queued = e->calls != NULL;
		pthread_mutex_unlock(&e->lock);
		if (queued)
			break;
		usleep(1000);
	}
	CU_ASSERT(i < 60000);
	/* A write during the migration (the guest may be paused). */
	CU_ASSERT(rig_write(h->r, "m1", 0, "c", NULL, RIG_PAGE, 1) == 0);
}

/* Right after the migrating call: the thread ends (its last calls run
 * directly, the session being free), before anything is checked. */
static void hammer_stop(void *opaque)
{
	struct hammer *hm = opaque;

	pthread_mutex_lock(&hm->lock);
	hm->done = true;
	pthread_mutex_unlock(&hm->lock);
	pthread_join(hm->thread, NULL);
}

static void test_calls_across_the_end(void)
{
	char doc[sizeof(harvest_doc) + sizeof(upper_maps)];
	struct hammer hm = { 0 };
	struct hc h;
	cJSON *rep;

	harvest_doc_make(doc, sizeof(doc), false);
	hc_init(&h, doc);
	/* Long enough for many calls to run on the loop. */
	h.bandwidth = 64 * MiB;
	h.at1 = hammer_at1;
	h.no_wait = true;
	hm.h = &h;
	pthread_mutex_init(&hm.lock, NULL);
	CU_ASSERT_FATAL(pthread_create(&hm.thread, NULL, hammer_main, &hm) ==
			0);
	rep = hc_migrate_then(&h, VMIG_HOTPLUG_POLICY_TRACK,
			      VMIG_TRACKING_POLICY_MIXED, hammer_stop, &hm);
	pthread_mutex_destroy(&hm.lock);
	if (hm.fails)
		fprintf(stderr, "\n  %u call(s) failed, the first: %s\n",
			hm.fails, vmig_strerror(hm.first_err));
	CU_ASSERT_EQUAL(hm.fails, 0);
	CU_ASSERT(hm.maps > 0);
	CU_ASSERT(hm.during > 0);
	cJSON_Delete(rep);
	hc_fini(&h);
}

static CU_TestInfo hotplug_tests[] = {
	{ "calls from the VMM's thread, across the migration's end",
	  test_calls_across_the_end },
	{ "track: dirty once, then its best source", test_hotplug_track },
	{ "degrade: always dirty", test_hotplug_degrade },
	{ "reject: EBUSY", test_hotplug_reject },
	CU_TEST_INFO_NULL,
};

static CU_TestInfo mapping_tests[] = {
	{ "unplug and unmap harvest first (type1, iommufd, DMA log)",
	  test_unplug_unmap_harvest },
	{ "a write to a range just mapped", test_map },
	CU_TEST_INFO_NULL,
};

static CU_TestInfo device_tests[] = {
	{ "mdev: DMA log, pinned scope, all-mapped, fallback", test_mdev },
	{ "PASID, newer kernel's attach on", test_pasid_attach_on },
	{ "PASID, attach off", test_pasid_attach_off },
	CU_TEST_INFO_NULL,
};

static CU_TestInfo failure_tests[] = {
	{ "a read fails once: restarted", test_fail_transient },
	{ "reads fail for good: replaced, or the fallback",
	  test_fail_persistent },
	{ "a DMA log's tracker breaks: the plugin restarts it",
	  test_tracker_broken },
	{ "a DMA log is gone: type1 takes the device", test_tracker_gone },
	CU_TEST_INFO_NULL,
};

static CU_TestInfo mixed_tests[] = {
	{ "mixed: iommufd and device-dirty in one IOAS", test_mixed },
	{ "all-or-nothing: the fallback for all", test_all_or_nothing },
	CU_TEST_INFO_NULL,
};

static CU_SuiteInfo suites[] = {
	VMIG_SUITE("hot-plug", hotplug_tests),
	VMIG_SUITE("unplug, unmap, map", mapping_tests),
	VMIG_SUITE("mdev, PASID", device_tests),
	VMIG_SUITE("failing sources", failure_tests),
	VMIG_SUITE("mixed mode", mixed_tests),
	CU_SUITE_INFO_NULL,
};

VMIG_TEST_MAIN(suites)
