/*
 * test_converge.c: the source's convergence policy (core/converge.c),
 * without sockets, timers or a session: figures in, a decision out.
 *
 * The rates: what a long iteration measures, what a short one does not,
 * and the estimate of last resort. The decision: switch over within the
 * limit (the limit itself included), continue over it, at max_iterations
 * give up or force, an unknown rate never switching over, and which part
 * (memory still dirty, device state, verification) is blamed and by how
 * much the whole is over the limit.
 */
#include <stdint.h>
#include <string.h>

#include "core/converge.h"
#include "testutil.h"

#define MIB (1ull << 20)

/* ------------------------------------------------------------------ */
/* Rates                                                               */

static void test_measure_long(void)
{
	struct vmig_converge_rates r = { 0 };

	/* 100 MiB handled in 100 ms (+1 us): about 1 GiB/s. */
	vmig_converge_measure(&r, 100 * MIB, 50 * MIB, 100000);
	CU_ASSERT_DOUBLE_EQUAL(r.page_rate, 100.0 * MIB * 1e6 / 100001, 1);
	CU_ASSERT_DOUBLE_EQUAL(r.wire_rate, 50.0 * MIB * 1e6 / 100001, 1);
	/* A second long iteration at half the rate: the average of both. */
	vmig_converge_measure(&r, 50 * MIB, 50 * MIB, 100000);
	CU_ASSERT_DOUBLE_EQUAL(r.page_rate,
			       (100.0 + 50.0) / 2 * MIB * 1e6 / 100001, 1);
	CU_ASSERT_EQUAL(r.all_handled, 150 * MIB);
	CU_ASSERT_EQUAL(r.all_bytes, 100 * MIB);
	CU_ASSERT_EQUAL(r.all_us, 200000);
}

static void test_measure_short_ignored(void)
{
	struct vmig_converge_rates r = { 0 };

	vmig_converge_measure(&r, 100 * MIB, 100 * MIB, 100000);
	/* 1 MiB in 1 ms measures latency: the rate does not move. */
	vmig_converge_measure(&r, MIB, MIB, 1000);
	CU_ASSERT_DOUBLE_EQUAL(r.page_rate, 100.0 * MIB * 1e6 / 100001, 1);
	CU_ASSERT_EQUAL(r.all_handled, 101 * MIB);
	/* 4 MiB in 1 ms is long enough by its size. */
	vmig_converge_measure(&r, 4 * MIB, 4 * MIB, 1000);
	CU_ASSERT(r.page_rate > 100.0 * MIB * 1e6 / 100001 * 2);
}

static void test_measure_last_resort(void)
{
	struct vmig_converge_rates r = { 0 };

	/* Only short iterations: the rate over all of them. */
	vmig_converge_measure(&r, MIB, 2 * MIB, 999);
	CU_ASSERT_DOUBLE_EQUAL(r.page_rate, 1.0 * MIB * 1e6 / 1000, 1);
	CU_ASSERT_DOUBLE_EQUAL(r.wire_rate, 2.0 * MIB * 1e6 / 1000, 1);
	vmig_converge_measure(&r, MIB, MIB, 999);
	/* Set once: it stays until a long iteration replaces it. */
	CU_ASSERT_DOUBLE_EQUAL(r.page_rate, 1.0 * MIB * 1e6 / 1000, 1);
	/* Nothing handled at all: no rate. */
	memset(&r, 0, sizeof(r));
	vmig_converge_measure(&r, 0, 64, 10);
	CU_ASSERT_EQUAL(r.page_rate, 0);
}

/* ------------------------------------------------------------------ */
/* Decisions                                                           */

/* 1e9 bytes/s, a 300 ms limit, 30 iterations allowed, 10 done. */
static struct vmig_converge_input input(void)
{
	struct vmig_converge_input in = {
		.page_rate = 1e9,
		.downtime_limit_us = 300000,
		.iterations = 10,
		.max_iterations = 30,
	};

	return in;
}

/* The decision on in, in d, is to take action. */
static void decides(const struct vmig_converge_input *in,
		    struct vmig_converge_decision *d,
		    enum vmig_converge_action action)
{
	vmig_converge_decide(in, d);
	CU_ASSERT_EQUAL(d->action, action);
}

static void test_within_limit(void)
{
	struct vmig_converge_input in = input();
	struct vmig_converge_decision d;

	in.dirty_bytes = 100000000; /* 100 ms */
	in.device_bytes = 50000000; /* 50 ms */
	in.verify_bytes = 4000000000ull; /* 1 s at the digest's rate */
	vmig_converge_decide(&in, &d);
	/* 150 ms + 1000 ms is over 300 ms. */
	CU_ASSERT_EQUAL(d.action, VMIG_CONVERGE_CONTINUE);
	CU_ASSERT_EQUAL(d.reason, VMIG_CONVERGE_OVER_LIMIT);
	CU_ASSERT_EQUAL(d.main, VMIG_CONVERGE_VERIFY);
	CU_ASSERT_EQUAL(d.part_us[VMIG_CONVERGE_VERIFY], 1000000);
	CU_ASSERT_EQUAL(d.over_us, 1150000 - 300000);

	in.verify_bytes = 400000000; /* 100 ms */
	decides(&in, &d, VMIG_CONVERGE_SWITCHOVER);
	CU_ASSERT_EQUAL(d.reason, VMIG_CONVERGE_WITHIN_LIMIT);
	CU_ASSERT_EQUAL(d.expected_us, 250000);
	CU_ASSERT_EQUAL(d.part_us[VMIG_CONVERGE_MEMORY], 100000);
	CU_ASSERT_EQUAL(d.part_us[VMIG_CONVERGE_DEVICES], 50000);
	CU_ASSERT_EQUAL(d.part_us[VMIG_CONVERGE_VERIFY], 100000);
	CU_ASSERT_EQUAL(d.over_us, 0);
	CU_ASSERT_EQUAL(d.limit_us, 300000);

	/* A measured hashing rate replaces the default one. */
	in.verify_bytes = 4000000000ull;
	in.verify_rate = 16e9; /* 250 ms */
	vmig_converge_decide(&in, &d);
	CU_ASSERT_EQUAL(d.part_us[VMIG_CONVERGE_VERIFY], 250000);
	CU_ASSERT_EQUAL(d.expected_us, 400000);
	CU_ASSERT_EQUAL(d.action, VMIG_CONVERGE_CONTINUE);
	/* Nothing verified inside the downtime (audit, off): no part. */
	in.verify_bytes = 0;
	vmig_converge_decide(&in, &d);
	CU_ASSERT_EQUAL(d.part_us[VMIG_CONVERGE_VERIFY], 0);
	CU_ASSERT_EQUAL(d.expected_us, 150000);
	CU_ASSERT_EQUAL(d.action, VMIG_CONVERGE_SWITCHOVER);
}

static void test_limit_is_inclusive(void)
{
	struct vmig_converge_input in = input();
	struct vmig_converge_decision d;

	in.dirty_bytes = 300000000; /* exactly 300 ms */
	vmig_converge_decide(&in, &d);
	CU_ASSERT_EQUAL(d.expected_us, 300000);
	CU_ASSERT_EQUAL(d.action, VMIG_CONVERGE_SWITCHOVER);
	in.dirty_bytes += 1000; /* 1 us more */
	decides(&in, &d, VMIG_CONVERGE_CONTINUE);
	CU_ASSERT_EQUAL(d.over_us, 1);
	CU_ASSERT_EQUAL(d.main, VMIG_CONVERGE_MEMORY);
}

static void test_nothing_pending(void)
{
	struct vmig_converge_input in = input();
	struct vmig_converge_decision d;

	vmig_converge_decide(&in, &d);
	CU_ASSERT_EQUAL(d.expected_us, 0);
	CU_ASSERT_EQUAL(d.action, VMIG_CONVERGE_SWITCHOVER);
	/* A zero limit is met only by nothing at all. */
	in.downtime_limit_us = 0;
	decides(&in, &d, VMIG_CONVERGE_SWITCHOVER);
	in.dirty_bytes = 4096;
	decides(&in, &d, VMIG_CONVERGE_CONTINUE);
}

static void test_max_iterations(void)
{
	struct vmig_converge_input in = input();
	struct vmig_converge_decision d;

	in.dirty_bytes = 1000000000; /* 1 s */
	in.iterations = 29;
	decides(&in, &d, VMIG_CONVERGE_CONTINUE);
	in.iterations = 30;
	decides(&in, &d, VMIG_CONVERGE_GIVE_UP);
	CU_ASSERT_EQUAL(d.reason, VMIG_CONVERGE_MAX_ITERATIONS);
	CU_ASSERT_EQUAL(d.over_us, 700000);
	in.force = true;
	decides(&in, &d, VMIG_CONVERGE_SWITCHOVER);
	CU_ASSERT_EQUAL(d.reason, VMIG_CONVERGE_FORCED);
	/* Within the limit, the last iteration converges: no force. */
	in.dirty_bytes = 4096;
	vmig_converge_decide(&in, &d);
	CU_ASSERT_EQUAL(d.reason, VMIG_CONVERGE_WITHIN_LIMIT);
	/* max_iterations 1: the first sync decides. */
	in = input();
	in.dirty_bytes = 1000000000;
	in.iterations = 1;
	in.max_iterations = 1;
	decides(&in, &d, VMIG_CONVERGE_GIVE_UP);
}

static void test_unknown_rate(void)
{
	struct vmig_converge_input in = input();
	struct vmig_converge_decision d;

	in.page_rate = 0;
	in.dirty_bytes = 4096;
	in.verify_bytes = 4096;
	vmig_converge_decide(&in, &d);
	/* No rate: never within any limit, however little is dirty. */
	CU_ASSERT_EQUAL(d.expected_us, UINT64_MAX);
	CU_ASSERT_EQUAL(d.action, VMIG_CONVERGE_CONTINUE);
	CU_ASSERT_EQUAL(d.part_us[VMIG_CONVERGE_MEMORY], UINT64_MAX);
	CU_ASSERT_EQUAL(d.part_us[VMIG_CONVERGE_DEVICES], 0);
	CU_ASSERT_EQUAL(d.part_us[VMIG_CONVERGE_VERIFY], 1);
	CU_ASSERT_EQUAL(d.main, VMIG_CONVERGE_MEMORY);
	in.downtime_limit_us = UINT64_MAX - 1;
	decides(&in, &d, VMIG_CONVERGE_CONTINUE);
	in.iterations = in.max_iterations;
	decides(&in, &d, VMIG_CONVERGE_GIVE_UP);
}

static void test_device_blamed(void)
{
	struct vmig_converge_input in = input();
	struct vmig_converge_decision d;

	/* A device whose size is unknown counts as 100 GiB. */
	in.dirty_bytes = 1000000;
	in.device_bytes = VMIG_CONVERGE_UNKNOWN_STATE;
	decides(&in, &d, VMIG_CONVERGE_CONTINUE);
	CU_ASSERT_EQUAL(d.main, VMIG_CONVERGE_DEVICES);
	CU_ASSERT(d.part_us[VMIG_CONVERGE_DEVICES] >
		  100 * d.part_us[VMIG_CONVERGE_MEMORY]);
	CU_ASSERT_EQUAL(d.over_us, d.expected_us - 300000);
}

/* The decision on in, in d, is described as want. */
static void describes(const struct vmig_converge_input *in,
		      struct vmig_converge_decision *d, const char *want)
{
	char buf[256];

	vmig_converge_decide(in, d);
	vmig_converge_describe(d, buf, sizeof(buf));
	CU_ASSERT_STRING_EQUAL(buf, want);
}

static void test_describe(void)
{
	struct vmig_converge_input in = input();
	struct vmig_converge_decision d;

	in.dirty_bytes = 700000000;
	in.device_bytes = 100000000;
	in.verify_bytes = 48000000;
	describes(&in, &d,
		  "expected downtime 812 ms, over the 300 ms "
		  "limit by 512 ms: memory still dirty 700 ms, "
		  "device and VMM state 100 ms, verification 12 ms");
	in.dirty_bytes = 100000000;
	describes(&in, &d,
		  "expected downtime 212 ms, within the 300 ms "
		  "limit: memory still dirty 100 ms, device and "
		  "VMM state 100 ms, verification 12 ms");
	in.page_rate = 0;
	describes(&in, &d,
		  "expected downtime unknown, over the 300 ms "
		  "limit by unknown: memory still dirty "
		  "unknown, device and VMM state unknown, "
		  "verification "
		  "12 ms");
	CU_ASSERT_STRING_EQUAL(vmig_converge_action_name(d.action),
			       "continue");
}

static CU_TestInfo rate_tests[] = {
	{ "a long iteration measures", test_measure_long },
	{ "a short one does not", test_measure_short_ignored },
	{ "the rate of last resort", test_measure_last_resort },
	CU_TEST_INFO_NULL,
};

static CU_TestInfo decide_tests[] = {
	{ "within the limit: switch over", test_within_limit },
	{ "the limit itself is within", test_limit_is_inclusive },
	{ "nothing pending", test_nothing_pending },
	{ "max_iterations: give up or force", test_max_iterations },
	{ "no rate: never converged", test_unknown_rate },
	{ "device state blamed", test_device_blamed },
	{ "the decision in words", test_describe },
	CU_TEST_INFO_NULL,
};

static CU_SuiteInfo suites[] = {
	VMIG_SUITE("rates", rate_tests),
	VMIG_SUITE("decide", decide_tests),
	CU_SUITE_INFO_NULL,
};

VMIG_TEST_MAIN(suites)
