/*
 * test_samples.c: the sample configurations of each dirty source, run by
 * the `vmig` program on the simulated kernel, with their reports checked:
 * nothing missed, and each device tracked by the source the sample is
 * about, or declined by it with the reason.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "common/report.h"
#include "e2e/runner.h"
#include "unit/testutil.h"

#define VMIG VMIG_BINARY_DIR "/bin/vmig"
#define CONFIGS VMIG_SOURCE_DIR "/samples/configs/"

static char tmpdir[64];

static int suite_init(void)
{
	return vmig_tmpdir_make(tmpdir, sizeof(tmpdir), "vmig-samples");
}

static int suite_fini(void)
{
	return vmig_tmpdir_remove(tmpdir);
}

/*
 * Runs the sample configuration name with the program: it exits 0 and its
 * report, returned, has missed no page.
 */
static cJSON *run_sample(const char *name)
{
	char config[512], report[256];
	struct vmig_run_result r;
	cJSON *root;

	snprintf(config, sizeof(config), CONFIGS "%s", name);
	snprintf(report, sizeof(report), "%s/%s", tmpdir, name);
	CU_ASSERT_FATAL(vmig_run_prog(&r, tmpdir, VMIG, "run", config,
				      "--report", report, NULL) == 0);
	if (r.status)
		fprintf(stderr, "%s: %s", name, r.err);
	CU_ASSERT_EQUAL(r.status, 0);
	root = vmig_load_json(report);
	CU_ASSERT_FATAL(root != NULL);
	CU_ASSERT_EQUAL(json_num(root, "pages_missed"), 0);
	return root;
}

/* A string of the report's device dev. */
static const char *dev_str(cJSON *root, const char *dev, const char *key)
{
	return json_str(json_device(root, dev), key);
}

/* Why a source was not chosen for a device, from the report. */
static const char *declined(cJSON *dev, const char *source)
{
	cJSON *c;

	cJSON_ArrayForEach(c, cJSON_GetObjectItem(dev, "candidates")) {
		if (!strcmp(json_str(c, "source"), source)) {
			CU_ASSERT_FALSE(cJSON_IsTrue(
				cJSON_GetObjectItem(c, "chosen")));
			return json_str(c, "reason");
		}
	}
	CU_FAIL_FATAL("source missing from the candidates");
	return NULL;
}

/*
 * Two dirty-capable devices, each on an IOAS of its own, and one without
 * the capability on a third IOAS that maps only a 4 MiB window: iommufd
 * tracks the first two and declines the third, saying why. Outside that
 * window nothing but iommufd's own bits report the region "low" (nic0's
 * IOMMU maps it with 4 KiB IOPTEs only), so a bit the plugin loses there
 * is a page missed.
 */
static void test_iommufd(void)
{
	cJSON *root = run_sample("iommufd.json");
	cJSON *it;
	int n = 0;

	CU_ASSERT_STRING_EQUAL(dev_str(root, "nic0", "source"), "iommufd");
	/* Its IOMMU has 4 KiB pages only: each bit is one page. */
	CU_ASSERT_STRING_EQUAL(dev_str(root, "nic0", "precision"), "exact");
	/*
	 * nic1's IOMMU has 2 MiB pages and its range holds aligned ones: a
	 * write there may report a whole IOPTE.
	 */
	CU_ASSERT_STRING_EQUAL(dev_str(root, "nic1", "source"), "iommufd");
	CU_ASSERT_STRING_EQUAL(dev_str(root, "nic1", "precision"), "superset");
	CU_ASSERT_PTR_NOT_NULL(
		strstr(dev_str(root, "nic1", "reason"), "2048 KiB IOPTEs"));
	CU_ASSERT_STRING_EQUAL(dev_str(root, "legacy0", "source"), "all-dirty");
	CU_ASSERT_PTR_NOT_NULL(
		strstr(declined(json_device(root, "legacy0"), "iommufd"),
		       "no dirty tracking"));
	cJSON_ArrayForEach(it, cJSON_GetObjectItem(root, "iterations")) {
		/*
		 * Every sync saw writes, and reported far less than all of
		 * memory: the window (1024 pages), region "high" at most
		 * (16384: nic1's 2 MiB superpages) and what nic0 wrote.
		 */
		CU_ASSERT(json_num(it, "pages_written") > 0);
		CU_ASSERT(json_num(it, "pages_reported") <
			  1024 + 16384 + 2 * json_num(it, "pages_written"));
		n++;
	}
	CU_ASSERT_EQUAL(n, 6);
	cJSON_Delete(root);
}

/* Two DMA-logging devices, one limited to a single range. */
static void test_device_dirty(void)
{
	cJSON *root = run_sample("device-dirty.json");

	CU_ASSERT(json_num(root, "pages_written") > 0);
	CU_ASSERT_STRING_EQUAL(dev_str(root, "vf0", "source"), "device-dirty");
	CU_ASSERT_STRING_EQUAL(dev_str(root, "vf1", "source"), "device-dirty");
	/* Preferred over type1, which would report everything. */
	CU_ASSERT_PTR_NOT_NULL(
		strstr(declined(json_device(root, "vf1"), "vfio-type1"),
		       "every mapped page"));
	cJSON_Delete(root);
}

/* type1 with an mdev alone: pinned pages and writes only. */
static void test_type1_mdev(void)
{
	cJSON *root = run_sample("type1-mdev.json");

	cJSON *it;
	int n = 0;

	CU_ASSERT_STRING_EQUAL(dev_str(root, "vgpu0", "precision"), "exact");
	/*
	 * It wrote in every iteration, and nothing it wrote was missed
	 * (per iteration, reported need not reach written: a write made
	 * while a sync runs counts in the next interval, docs/report.md).
	 */
	CU_ASSERT(json_num(root, "pages_written") > 0);
	cJSON_ArrayForEach(it, cJSON_GetObjectItem(root, "iterations")) {
		CU_ASSERT(json_num(it, "pages_written") > 0);
		CU_ASSERT_EQUAL(json_num(it, "pages_missed"), 0);
		n++;
	}
	CU_ASSERT_EQUAL(n, 5);
	cJSON_Delete(root);
}

static CU_TestInfo tests[] = {
	{ "iommufd.json", test_iommufd },
	{ "device-dirty.json", test_device_dirty },
	{ "type1-mdev.json", test_type1_mdev },
	CU_TEST_INFO_NULL,
};

VMIG_TEST_MAIN_SUITE(VMIG_SUITE_INIT("samples", suite_init, suite_fini, tests))
