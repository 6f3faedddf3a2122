/*
 * test_pace.c: the bandwidth limit's token bucket (core/pace.c), with
 * times given, not read: no limit, the wait for a page's worth, the
 * budget capped by the burst and by the caller, and spending below zero.
 */
#include <stdint.h>

#include "core/pace.h"
#include "testutil.h"

static void test_no_limit(void)
{
	struct vmig_pace p;
	uint64_t wait = 1;

	vmig_pace_start(&p, 0, 1000);
	CU_ASSERT_EQUAL(vmig_pace_budget(&p, 1000, 8 << 20, &wait), 8 << 20);
	CU_ASSERT_EQUAL(wait, 0);
	vmig_pace_spend(&p, 1 << 30);
	CU_ASSERT_EQUAL(vmig_pace_budget(&p, 1000, 123, &wait), 123);
}

static void test_wait_for_a_page(void)
{
	struct vmig_pace p;
	uint64_t wait;

	/* 1 MB/s: a page takes 4096 us; nothing is there at the start. */
	vmig_pace_start(&p, 1000000, 0);
	CU_ASSERT_EQUAL(vmig_pace_budget(&p, 0, 8 << 20, &wait), 0);
	CU_ASSERT_EQUAL(wait, 4097);
	/* 1 ms later: 1000 bytes, still less than a page. */
	CU_ASSERT_EQUAL(vmig_pace_budget(&p, 1000, 8 << 20, &wait), 0);
	CU_ASSERT_EQUAL(wait, 3097);
	CU_ASSERT_EQUAL(vmig_pace_budget(&p, 5000, 8 << 20, &wait), 5000);
	CU_ASSERT_EQUAL(wait, 0);
}

static void test_burst_and_cap(void)
{
	struct vmig_pace p;
	uint64_t wait, burst = 256 * 4096 + 64;

	/* 1 MB/s: 50 ms is 50 KB, less than one largest frame. */
	vmig_pace_start(&p, 1000000, 0);
	CU_ASSERT_EQUAL(vmig_pace_budget(&p, 60000000, 8 << 20, &wait),
			burst);
	/* 1 GB/s: 50 ms is 50 MB, capped by the caller. */
	vmig_pace_start(&p, 1000000000, 0);
	CU_ASSERT_EQUAL(vmig_pace_budget(&p, 1000000, 8 << 20, &wait),
			8 << 20);
	CU_ASSERT_EQUAL(vmig_pace_budget(&p, 1000000, 1 << 30, &wait),
			50000000);
}

static void test_spend(void)
{
	struct vmig_pace p;
	uint64_t wait;

	vmig_pace_start(&p, 1000000, 0);
	CU_ASSERT_EQUAL(vmig_pace_budget(&p, 10000, 8 << 20, &wait), 10000);
	/* A frame is not split: the bucket goes below zero. */
	vmig_pace_spend(&p, 30000);
	CU_ASSERT_EQUAL(vmig_pace_budget(&p, 10000, 8 << 20, &wait), 0);
	CU_ASSERT_EQUAL(wait, 24097);
	CU_ASSERT_EQUAL(vmig_pace_budget(&p, 34096, 8 << 20, &wait), 4096);
}

static CU_TestInfo tests[] = {
	{ "no limit", test_no_limit },
	{ "the wait for a page's worth", test_wait_for_a_page },
	{ "burst and cap", test_burst_and_cap },
	{ "spending below zero", test_spend },
	CU_TEST_INFO_NULL,
};

VMIG_TEST_MAIN_SUITE(VMIG_SUITE("pace", tests))
