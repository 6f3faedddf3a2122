/*
 * bench_precision.c: what mixed-mode arbitration saves against "one mode
 * per address space, all or nothing" (QEMU's way), measured.
 *
 * A fleet in one IOAS: two functions whose IOMMU has dirty tracking and
 * one whose IOMMU has none but whose driver logs its DMA (mlx5-like).
 * In mixed mode the first two are tracked by the IOAS's dirty HWPT and
 * the third by its own log, all exactly; with "all-or-nothing" no single
 * source takes all three, so the whole IOAS falls back to "every mapped
 * page is dirty at every sync". Each seed draws the guest's size and the
 * devices' DMA patterns and rates, fills most of guest memory with data
 * (a guest's memory is not zero), and migrates the same guest twice, once
 * per policy, with the same shape of migration: five pre-copy iterations
 * (the downtime limit cannot be met) and the stop-copy, over a socket
 * pair (chaos/rig.h: the simulated kernel, a guest thread making the
 * devices write all along, the ground truth).
 *
 * Printed per seed and in total: the pages the devices wrote (ground
 * truth, each run: the runs last differently long, the guest writes all
 * along), the pages (PAGES and ZERO) each policy sent, those of them
 * sent after the first pass over memory, the stream's bytes, and the
 * ratios. Both runs must end with no missed page and
 * equal memories, or the program says so and exits 1.
 *
 * Usage: vmig-bench-precision [--seeds N] [--first S]. The last line sums
 * up the totals.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "chaos/rig.h"

#include "core/internal.h"

#define MiB (1ull << 20)

static const char *const patterns[] = { "random", "hotspot", "sequential" };

/* The fleet's configuration for a seed. */
static void fleet(struct rig_buf *b, uint64_t seed, uint64_t *mem)
{
	uint64_t rng = seed * 0x9e3779b97f4a7c15ull + 17;
	uint64_t low = (8 + rig_below(&rng, 17)) * MiB;
	uint64_t high = (4 + rig_below(&rng, 9)) * MiB;
	int i;

	*mem = low + high;
	rig_buf_printf(b,
		       "{ \"memory\": [ { \"gpa\": 0, \"size\": %llu },\n"
		       "    { \"gpa\": \"4G\", \"size\": %llu } ],\n"
		       "  \"devices\": [\n",
		       (unsigned long long)low, (unsigned long long)high);
	for (i = 0; i < 3; i++)
		rig_buf_printf(b,
			       "    { \"name\": \"f%d\", "
			       "\"kind\": \"vfio-pci\", "
			       "\"iommu\": \"iommufd\", \"cdev\": "
			       "\"/dev/vfio/devices/vfio%d\", \"ioas\": "
			       "\"fleet\" }%s\n", i, i, i < 2 ? "," : "");
	rig_buf_printf(b, "  ],\n  \"kernel\": { \"type\": \"simulated\", "
		       "\"devices\": [\n");
	for (i = 0; i < 3; i++) {
		/* 4 KiB IOPTEs: the IOMMU's bits are exact too. */
		rig_buf_printf(b,
			       "    { \"name\": \"f%d\", \"iommu\": { "
			       "\"page_sizes\": [\"4K\"] }, "
			       "\"iommu_dirty_tracking\": %s, %s"
			       "\"dma\": { \"pattern\": \"%s\", "
			       "\"writes_per_step\": %llu, "
			       "\"seed\": \"0x%llx\" } }%s\n",
			       i, i < 2 ? "true" : "false",
			       i < 2 ? "" : "\"dma_logging\": \"mlx5\", ",
			       patterns[rig_below(&rng, 3)],
			       (unsigned long long)(1 + rig_below(&rng, 8)),
			       (unsigned long long)rig_rand(&rng),
			       i < 2 ? "," : "");
	}
	rig_buf_printf(b, "  ] } }\n");
}

/* Most of guest memory holds data, the rest is zero. */
static void fill(struct rig *r, uint64_t seed)
{
	uint64_t rng = seed ^ 0x2545f4914f6cdd1dull;
	size_t i;

	for (i = 0; i < r->src->nr_regions; i++) {
		struct vmig_region_rec *rg = &r->src->regions[i];
		uint64_t *p = (uint64_t *)rg->hva;
		uint64_t n = rg->length / 8 * 3 / 4, j;

		for (j = 0; j < n; j++)
			p[j] = rig_rand(&rng);
	}
}

struct outcome {
	uint64_t written, pages, bytes;
	uint64_t resent; /* pages sent after the first pass over memory */
	char sources[64];
};

/* One migration of the fleet; false (with why) when it went wrong. */
static bool migrate(const char *json, uint64_t seed, uint32_t tracking,
		    struct outcome *o)
{
	struct vmig_policies p = {
		.size = sizeof(p),
		.downtime_limit_ms = 1,
		.max_iterations = 5,
		.timeout_strategy = VMIG_TIMEOUT_STRATEGY_FORCE,
		.tracking = tracking,
	};
	struct rig_result res = { 0 };
	struct rig *r;
	char err[512];
	cJSON *rep;
	bool ok;
	int i;

	memset(o, 0, sizeof(*o));
	if (rig_new(json, &r, err, sizeof(err)) < 0) {
		printf("seed %llu: %s\n", (unsigned long long)seed, err);
		return false;
	}
	fill(r, seed);
	rig_policies(r, &p);
	res.ret = rig_migrate(r);
	ok = rig_check(r, &res) && res.completed && !res.pages_missed;
	if (!ok)
		printf("seed %llu (%s): %s%s%s\n", (unsigned long long)seed,
		       tracking ? "all-or-nothing" : "mixed",
		       res.ret ? vmig_errmsg(r->src) : "", res.ret ? "; " : "",
		       res.what);
	o->written = res.pages_written;
	o->pages = res.pages_sent;
	o->bytes = res.bytes_sent;
	/* Who tracked the fleet: f0 f1 f2. */
	rep = rig_report(r->src);
	for (i = 1; i < cJSON_GetArraySize(cJSON_GetObjectItem(rep,
							      "iterations"));
	     i++) {
		cJSON *it = cJSON_GetArrayItem(
			cJSON_GetObjectItem(rep, "iterations"), i);

		o->resent += (uint64_t)(rig_num(it, "pages_sent") +
					rig_num(it, "zero_pages"));
	}
	o->sources[0] = '\0';
	for (i = 0; i < 3; i++) {
		char name[8];
		const char *s;

		snprintf(name, sizeof(name), "f%d", i);
		s = rig_str(rig_report_device(rep, name), "source");
		s = !strcmp(s, "device-dirty") ? "log" :
		    !strcmp(s, "all-dirty")    ? "all" : "hwpt";
		snprintf(o->sources + strlen(o->sources),
			 sizeof(o->sources) - strlen(o->sources), "%s%s",
			 i ? "," : "", s);
	}
	cJSON_Delete(rep);
	rig_free(r);
	return ok;
}

int main(int argc, char **argv)
{
	uint64_t first = 1, n = 10, s;
	struct outcome tm = { 0 }, ta = { 0 };
	bool all_ok = true;
	int i;

	for (i = 1; i < argc; i++) {
		if (!rig_seed_arg(argc, argv, &i, &first, &n)) {
			fprintf(stderr, "usage: vmig-bench-precision "
				"[--seeds N] [--first S]\n");
			return 2;
		}
	}
	printf("one IOAS: f0, f1 with IOMMU dirty tracking, f2 without it but "
	       "with an mlx5 DMA log;\n5 pre-copy iterations and the "
	       "stop-copy per migration, both policies per seed\n\n");
	printf("pages: PAGES and ZERO pages sent, (those after the first pass "
	       "over memory); ratio: all-or-nothing / mixed\n\n");
	printf("%5s %4s | %-14s %7s %6s %7s %7s | %-14s %7s %6s %7s %7s | "
	       "%6s %6s %7s\n",
	       "seed", "MiB", "mixed", "written", "pages", "(after)", "MiB",
	       "all-or-nothing", "written", "pages", "(after)", "MiB",
	       "pages", "bytes", "(after)");
	for (s = first; s < first + n; s++) {
		struct rig_buf json = { 0 };
		struct outcome m, a;
		uint64_t mem;
		bool ok;

		fleet(&json, s, &mem);
		if (json.nomem) {
			rig_buf_free(&json);
			return 1;
		}
		ok = migrate(json.p, s, VMIG_TRACKING_POLICY_MIXED, &m);
		ok &= migrate(json.p, s, VMIG_TRACKING_POLICY_ALL_OR_NOTHING,
			      &a);
		rig_buf_free(&json);
		all_ok &= ok;
		printf("%5llu %4llu | %-14s %7llu %6llu %7llu %7.1f | %-14s "
		       "%7llu %6llu %7llu %7.1f | %5.1fx %5.1fx %6.1fx%s\n",
		       (unsigned long long)s,
		       (unsigned long long)(mem / MiB), m.sources,
		       (unsigned long long)m.written,
		       (unsigned long long)m.pages,
		       (unsigned long long)m.resent, (double)m.bytes / MiB,
		       a.sources, (unsigned long long)a.written,
		       (unsigned long long)a.pages,
		       (unsigned long long)a.resent, (double)a.bytes / MiB,
		       m.pages ? (double)a.pages / (double)m.pages : 0,
		       m.bytes ? (double)a.bytes / (double)m.bytes : 0,
		       m.resent ? (double)a.resent / (double)m.resent : 0,
		       ok ? "" : "  FAILED");
		tm.written += m.written;
		tm.pages += m.pages;
		tm.bytes += m.bytes;
		tm.resent += m.resent;
		ta.resent += a.resent;
		ta.written += a.written;
		ta.pages += a.pages;
		ta.bytes += a.bytes;
	}
	printf("\ntotal over %llu seed(s): mixed sent %llu pages (%llu after "
	       "the first pass, %.1f MiB) for %llu pages written; "
	       "all-or-nothing sent %llu pages (%llu after the first pass, "
	       "%.1f MiB) for %llu pages written: %.2fx the pages, %.2fx the "
	       "bytes, %.1fx after the first pass%s\n",
	       (unsigned long long)n, (unsigned long long)tm.pages,
	       (unsigned long long)tm.resent, (double)tm.bytes / MiB,
	       (unsigned long long)tm.written, (unsigned long long)ta.pages,
	       (unsigned long long)ta.resent, (double)ta.bytes / MiB,
	       (unsigned long long)ta.written,
	       tm.pages ? (double)ta.pages / (double)tm.pages : 0,
	       tm.bytes ? (double)ta.bytes / (double)tm.bytes : 0,
	       tm.resent ? (double)ta.resent / (double)tm.resent : 0,
	       all_ok ? "; no page missed, memories equal" : "; FAILED");
	return all_ok ? 0 : 1;
}
