/*
 * test_control.c: asking and changing a migration while it runs, from
 * another thread (vmig_query, vmig_set_policies), and its events.
 *
 * The migration (a local one over the simulator, chaos/rig.h) cannot
 * converge under its first policies: a device rewrites most of guest
 * memory between two syncs (the guest runs in lockstep with them), and
 * the bandwidth limit keeps any pass of that much longer than the 1 ms
 * downtime limit. A monitor thread waits until vmig_query says the third
 * pass runs, is refused a change of a policy that cannot change live
 * (the message names it), then raises the downtime limit: the next
 * decision switches over and the migration completes. Without the live
 * change it would end at max_iterations. The events must tell the phases
 * in order, each pass, the convergence and the outcome.
 */
#include <errno.h>
#include <pthread.h>
#include <stdio.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "chaos/rig.h"
#include "unit/testutil.h"

static const char config[] =
	"{ \"memory\": [ { \"gpa\": 0, \"size\": \"2M\" } ],\n"
	"  \"devices\": [ { \"name\": \"p0\", \"kind\": \"vfio-pci\",\n"
	"    \"group\": 10, \"container\": \"c\" } ],\n"
	"  \"dma_mappings\": [ { \"space\": \"c\", \"iova\": 0, \"gpa\": 0,\n"
	"    \"size\": \"2M\" } ],\n"
	"  \"kernel\": { \"type\": \"simulated\", \"devices\": [\n"
	"    { \"name\": \"p0\", \"dma\": { \"pattern\": \"sequential\",\n"
	"      \"writes_per_step\": 128, \"seed\": 5 } } ] } }";

#define MAX_EVENTS 256

struct watch {
	struct rig *r;
	pthread_mutex_t lock;
	struct vmig_event ev[MAX_EVENTS];
	unsigned int nr;
	/* What the monitor thread saw and did. */
	struct vmig_status seen;
	int fixed_ret, live_ret;
	char fixed_msg[512];
	bool waited;
};

static void on_event(void *opaque, const struct vmig_event *ev)
{
	struct watch *w = opaque;

	pthread_mutex_lock(&w->lock);
	if (w->nr < MAX_EVENTS) {
		w->ev[w->nr] = *ev;
		w->ev[w->nr].message = NULL; /* valid during the call only */
		w->nr++;
	}
	pthread_mutex_unlock(&w->lock);
}

static struct vmig_policies first_policies(void)
{
	struct vmig_policies p = {
		.size = sizeof(p),
		.downtime_limit_ms = 1,
		.bandwidth_limit = 32ull << 20,
		.max_iterations = 500,
		.timeout_strategy = VMIG_TIMEOUT_STRATEGY_CANCEL,
	};

	return p;
}

static void *monitor(void *opaque)
{
	struct watch *w = opaque;
	struct vmig_status st = { .size = sizeof(st) };
	struct vmig_policies p = first_policies();
	struct timespec ts = { 0, 2 * 1000 * 1000 };
	unsigned int i;

	/* A safety bound only: the rig's guest makes the passes. */
	for (i = 0; i < 30000; i++) {
		if (vmig_query(w->r->src, &st) == 0 &&
		    st.phase == VMIG_PHASE_PRECOPY && st.iteration >= 2)
			break;
		nanosleep(&ts, NULL);
	}
	w->seen = st;
	w->waited = st.phase == VMIG_PHASE_PRECOPY && st.iteration >= 2;
	p.max_iterations = 600;
	w->fixed_ret = vmig_set_policies(w->r->src, &p);
	snprintf(w->fixed_msg, sizeof(w->fixed_msg), "%s",
		 vmig_errmsg(w->r->src));
	p.max_iterations = 500;
	p.downtime_limit_ms = 60000;
	w->live_ret = vmig_set_policies(w->r->src, &p);
	return NULL;
}

static unsigned int count(struct watch *w, uint32_t type)
{
	unsigned int i, n = 0;

	for (i = 0; i < w->nr; i++)
		n += w->ev[i].type == type;
	return n;
}

static void test_live_query_and_policies(void)
{
	struct vmig_policies p = first_policies();
	struct vmig_status st = { .size = sizeof(st) };
	struct watch w = { .fixed_ret = 1, .live_ret = 1 };
	static const uint32_t phases[] = {
		VMIG_PHASE_SETUP, VMIG_PHASE_PRECOPY, VMIG_PHASE_SWITCHOVER,
		VMIG_PHASE_COMMIT, VMIG_PHASE_COMPLETED,
	};
	struct rig_result res = { 0 };
	unsigned int i, k = 0, passes;
	pthread_t th;
	char err[512];
	cJSON *rep;
	int ret;

	pthread_mutex_init(&w.lock, NULL);
	CU_ASSERT_FATAL(rig_new(config, &w.r, err, sizeof(err)) == 0);
	CU_ASSERT_FATAL(rig_policies(w.r, &p) == 0);
	CU_ASSERT_FATAL(vmig_set_event_callback(w.r->src, on_event, &w) == 0);
	/* Before any migration: nothing to say, and no error. */
	CU_ASSERT(vmig_query(w.r->src, &st) == 0);
	CU_ASSERT_EQUAL(st.phase, VMIG_PHASE_NONE);
	CU_ASSERT_FATAL(pthread_create(&th, NULL, monitor, &w) == 0);
	ret = rig_migrate(w.r);
	CU_ASSERT(pthread_join(th, NULL) == 0);
	res.ret = ret;

	/* The monitor saw the migration run, from its own thread. */
	CU_ASSERT(w.waited);
	CU_ASSERT(w.seen.bytes_sent > 0 && w.seen.elapsed_us > 0);
	CU_ASSERT_EQUAL(w.seen.stopped_us, 0);
	/* A policy that cannot change live is refused, by name. */
	CU_ASSERT_EQUAL(w.fixed_ret, -EBUSY);
	CU_ASSERT(strstr(w.fixed_msg, "max_iterations cannot change") !=
		  NULL);
	/* The downtime limit changed, and the next decision used it. */
	CU_ASSERT_EQUAL(w.live_ret, 0);
	CU_ASSERT_EQUAL(ret, 0);
	CU_ASSERT(rig_check(w.r, &res));
	rep = rig_report(w.r->src);
	passes = (unsigned int)cJSON_GetArraySize(
		cJSON_GetObjectItem(rep, "iterations"));
	/* Far fewer than max_iterations: the change ended it. */
	CU_ASSERT(passes >= 3 && passes < 500);
	cJSON_Delete(rep);

	/* After it: the outcome, how long the guest was stopped. */
	CU_ASSERT(vmig_query(w.r->src, &st) == 0);
	CU_ASSERT_EQUAL(st.phase, VMIG_PHASE_COMPLETED);
	CU_ASSERT(st.stopped_us > 0);
	/* Ended: the clocks stopped with it (a later query says the same). */
	{
		struct vmig_status later = { .size = sizeof(later) };
		struct timespec ts = { 0, 2 * 1000 * 1000 };

		nanosleep(&ts, NULL);
		CU_ASSERT(vmig_query(w.r->src, &later) == 0);
		CU_ASSERT(st.elapsed_us > 0);
		CU_ASSERT_EQUAL(later.elapsed_us, st.elapsed_us);
		CU_ASSERT_EQUAL(later.stopped_us, st.stopped_us);
	}

	/* The events: the phases in order, each pass, converged once. */
	for (i = 0; i < w.nr && k < sizeof(phases) / sizeof(phases[0]); i++)
		if (w.ev[i].type == VMIG_EVENT_PHASE &&
		    w.ev[i].phase == phases[k])
			k++;
	CU_ASSERT_EQUAL(k, sizeof(phases) / sizeof(phases[0]));
	CU_ASSERT(count(&w, VMIG_EVENT_ITERATION) >= 3);
	CU_ASSERT_EQUAL(count(&w, VMIG_EVENT_CONVERGED), 1);
	CU_ASSERT_EQUAL(count(&w, VMIG_EVENT_SWITCHOVER), 1);
	CU_ASSERT_EQUAL(count(&w, VMIG_EVENT_COMMIT), 1);
	CU_ASSERT_EQUAL(count(&w, VMIG_EVENT_COMPLETED), 1);
	CU_ASSERT_EQUAL(count(&w, VMIG_EVENT_FAILED), 0);
	/* Set while nothing runs: a fixed field may change again. */
	p.max_iterations = 600;
	CU_ASSERT(vmig_set_policies(w.r->src, &p) == 0);
	rig_free(w.r);
	pthread_mutex_destroy(&w.lock);
}

static void test_names(void)
{
	CU_ASSERT_STRING_EQUAL(vmig_phase_name(VMIG_PHASE_PRECOPY),
			       "pre-copy");
	CU_ASSERT_STRING_EQUAL(vmig_phase_name(VMIG_PHASE_UNRESOLVED),
			       "unresolved");
	CU_ASSERT_STRING_EQUAL(vmig_phase_name(99), "unknown");
}

static CU_TestInfo tests[] = {
	{ "query and policies from another thread, events",
	  test_live_query_and_policies },
	{ "phase names", test_names },
	CU_TEST_INFO_NULL,
};

VMIG_TEST_MAIN_SUITE(VMIG_SUITE("control", tests))
