/*
 * sweep.c: vmig-failsweep, every kernel call of a migration fails once.
 *
 * One complete local migration over the simulator (chaos/rig.h) with a
 * device of every plugin kind: a vfio-pci function with VFIO migration
 * state in a type1 container (vfio-type1), an mdev that pins pages in
 * another container, a vfio-pci function behind an iommufd IOAS with
 * dirty bits (iommufd), one with a DMA log (device-dirty), and a device
 * hot-plugged from the migration's progress callback. A clean run counts
 * the kernel calls each side makes from the start of the migration; then
 * the migration runs again once per call, with that call (of the source's
 * kernel, then of the destination's) failing with EIO.
 *
 * Every outcome must be clean (rig_check): the migration completed with
 * equal memories and device states, or it failed with the guest resumed
 * on the source and a message; no page written was missed either way;
 * and a failure the destination did not cause names what failed. Every
 * wait of the rig is bounded, so a hang is a failure of the run, not of
 * the sweep. Under valgrind or the sanitizers it also shows leaks.
 *
 * usage: vmig-failsweep [--stride N] [--side src|dst]
 *   --stride N  sweep every Nth call only (1: all; CI under valgrind)
 *   VMIG_SWEEP_SHOW=1 in the environment prints each failed run's
 *   message (which call and device it names)
 * Prints the number of calls swept per side and exits non-zero when any
 * outcome was not clean.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "chaos/rig.h"

static const char config[] =
	"{ \"memory\": [ { \"gpa\": 0, \"size\": \"8M\" } ],\n"
	"  \"devices\": [\n"
	"    { \"name\": \"p0\", \"kind\": \"vfio-pci\", \"group\": 10,\n"
	"      \"container\": \"c\" },\n"
	"    { \"name\": \"m0\", \"kind\": \"mdev\", \"group\": 20,\n"
	"      \"container\": \"m\" },\n"
	"    { \"name\": \"i0\", \"kind\": \"vfio-pci\", \"iommu\": \"iommufd\",\n"
	"      \"cdev\": \"/dev/vfio/devices/vfio0\", \"ioas\": \"a\" },\n"
	"    { \"name\": \"l0\", \"kind\": \"vfio-pci\", \"group\": 30,\n"
	"      \"container\": \"l\" } ],\n"
	"  \"dma_mappings\": [\n"
	"    { \"space\": \"c\", \"iova\": 0, \"gpa\": 0, \"size\": \"4M\" },\n"
	"    { \"space\": \"m\", \"iova\": 0, \"gpa\": 0, \"size\": \"8M\" },\n"
	"    { \"space\": \"a\", \"iova\": 0, \"gpa\": \"4M\", \"size\": \"4M\" },\n"
	"    { \"space\": \"l\", \"iova\": 0, \"gpa\": 0, \"size\": \"2M\" } ],\n"
	"  \"kernel\": { \"type\": \"simulated\", \"devices\": [\n"
	"    { \"name\": \"p0\", \"migration\": { \"p2p\": true,\n"
	"        \"pre_copy\": true, \"state_size\": \"64K\" },\n"
	"      \"dma\": { \"pattern\": \"random\", \"writes_per_step\": 4,\n"
	"                \"seed\": 1 } },\n"
	"    { \"name\": \"m0\", \"pin\": { \"iova\": \"0x100000\", \"pages\": 8 } },\n"
	"    { \"name\": \"i0\", \"dma\": { \"pattern\": \"hotspot\",\n"
	"        \"writes_per_step\": 4, \"seed\": 2 } },\n"
	"    { \"name\": \"l0\", \"dma_logging\": \"mlx5\",\n"
	"      \"dma\": { \"pattern\": \"random\", \"writes_per_step\": 4,\n"
	"                \"seed\": 3 } } ] } }";

struct sweep_run {
	struct rig *r;
	bool plugged;
	int plug_ret;
};

/* Hot-plugs a device into the type1 container "c", once, mid-migration. */
static void on_progress(struct rig *r, const struct vmig_progress *p)
{
	struct sweep_run *run = r->opaque;
	struct rig_hotplug hp = {
		.name = "h0",
		.space = "c",
		.group = 40,
		.writes_per_step = 2,
		.write_size = 64,
		.seed = 9,
	};
	uint32_t id;
	bool kernel_failed = false;

	(void)p;
	if (run->plugged)
		return;
	run->plugged = true;
	run->plug_ret = rig_hotplug(r, &hp, &id, &kernel_failed);
}

/*
 * One migration; the failure (when nth) injected into the source's
 * kernel (dst false) or the destination's, counted from its start.
 * *calls gets each side's calls during the migration. Returns whether
 * the outcome was clean.
 */
static bool run_one(uint64_t nth, bool dst, uint64_t calls[2], int *ret)
{
	struct sweep_run run = { 0 };
	struct rig_result res;
	char err[512];
	uint64_t c0[2];
	bool ok;
	int rc;

	rc = rig_new(config, &run.r, err, sizeof(err));
	if (rc < 0) {
		fprintf(stderr, "vmig-failsweep: rig: %s\n", err);
		exit(2);
	}
	run.r->opaque = &run;
	run.r->progress = on_progress;
	c0[0] = ksim_calls(run.r->k);
	c0[1] = ksim_calls(run.r->dk);
	if (nth)
		ksim_fail_nth(dst ? run.r->dk : run.r->k, nth, EIO);
	*ret = rig_migrate(run.r);
	/* The clean run must have made the hot-plug it is meant to cover. */
	if (!nth && (!run.plugged || run.plug_ret)) {
		fprintf(stderr, "vmig-failsweep: the hot-plug %s (%d)\n",
			run.plugged ? "failed" : "did not happen",
			run.plug_ret);
		*ret = -EINVAL;
	}
	calls[0] = ksim_calls(run.r->k) - c0[0];
	calls[1] = ksim_calls(run.r->dk) - c0[1];
	memset(&res, 0, sizeof(res));
	res.ret = *ret; /* rig_check's input */
	ok = rig_check(run.r, &res);
	if (ok && res.ret < 0 && !vmig_errmsg(run.r->src)[0]) {
		snprintf(res.what, sizeof(res.what), "failed without a message");
		ok = false;
	}
	if (!ok)
		fprintf(stderr,
			"vmig-failsweep: %s call %llu: not clean: %s "
			"(ret %d: %s)\n%s\n",
			dst ? "destination" : "source",
			(unsigned long long)nth, res.what, res.ret,
			vmig_errmsg(run.r->src), run.r->log);
	if (getenv("VMIG_SWEEP_SHOW") && *ret)
		printf("  %s call %llu: %s\n", dst ? "destination" : "source",
		       (unsigned long long)nth, vmig_errmsg(run.r->src));
	rig_free(run.r);
	return ok;
}

int main(int argc, char **argv)
{
	uint64_t calls[2], n, done[2] = { 0, 0 }, completed = 0, failed = 0;
	unsigned int stride = 1;
	int side, first = 0, last = 1, ret, bad = 0, a;

	for (a = 1; a < argc; a++) {
		if (!strcmp(argv[a], "--stride") && a + 1 < argc)
			stride = (unsigned int)strtoul(argv[++a], NULL, 10);
		else if (!strcmp(argv[a], "--side") && a + 1 < argc)
			first = last = !strcmp(argv[++a], "dst");
		else {
			fprintf(stderr, "usage: %s [--stride N] "
					"[--side src|dst]\n", argv[0]);
			return 2;
		}
	}
	if (!stride)
		stride = 1;
	if (!run_one(0, false, calls, &ret) || ret) {
		fprintf(stderr, "vmig-failsweep: the clean run failed (%d)\n",
			ret);
		return 1;
	}
	printf("vmig-failsweep: a clean migration makes %llu kernel calls on "
	       "the source, %llu on the destination\n",
	       (unsigned long long)calls[0], (unsigned long long)calls[1]);
	for (side = first; side <= last; side++) {
		uint64_t total = calls[side];

		for (n = 1; n <= total; n += stride) {
			uint64_t c[2];

			if (!run_one(n, side, c, &ret))
				bad++;
			else if (ret)
				failed++;
			else
				completed++;
			done[side]++;
		}
	}
	printf("vmig-failsweep: %llu calls swept (%llu on the source, %llu on "
	       "the destination): %llu completed, %llu failed cleanly, %d "
	       "not clean\n",
	       (unsigned long long)(done[0] + done[1]),
	       (unsigned long long)done[0], (unsigned long long)done[1],
	       (unsigned long long)completed, (unsigned long long)failed,
	       bad);
	return bad ? 1 : 0;
}
