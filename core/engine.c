/*
 * engine.c: what every migration of a session shares.
 *
 * This file owns the session's engine state: the libuv loop that
 * vmig_migrate(), vmig_receive() and vmig_migrate_local() run in the
 * caller's thread, the VMM's callbacks, the policies, cancellation from
 * any thread (a uv_async handle signalled under a lock, so that a cancel
 * never races the end of a migration), what a configuration says about
 * migrating, and the figures the report gives of the last migration.
 */
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "devstate.h"
#include "engine.h"

/* A test's clock, or NULL: read by every thread of a migration. */
static const struct vmig_test_clock *test_clock;

void vmig_test_clock_set(const struct vmig_test_clock *clock)
{
	__atomic_store_n(&test_clock, clock, __ATOMIC_RELEASE);
}

uint64_t vmig_now_us(void)
{
	const struct vmig_test_clock *c =
		__atomic_load_n(&test_clock, __ATOMIC_ACQUIRE);
	struct timespec ts;

	if (c)
		return c->now(c->opaque);
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000000u + (uint64_t)ts.tv_nsec / 1000u;
}

uint64_t vmig_clock_wait_ms(uint64_t us)
{
	const struct vmig_test_clock *c =
		__atomic_load_n(&test_clock, __ATOMIC_ACQUIRE);

	if (c) {
		c->advance(c->opaque, us);
		return 0;
	}
	return (us + 999) / 1000;
}

void vmig_sigpipe_block(struct vmig_sigpipe *sp)
{
	sigset_t set, pending;

	sigemptyset(&set);
	sigaddset(&set, SIGPIPE);
	sp->was_pending = sigpending(&pending) == 0 &&
			  sigismember(&pending, SIGPIPE) == 1;
	pthread_sigmask(SIG_BLOCK, &set, &sp->old);
}

void vmig_sigpipe_restore(struct vmig_sigpipe *sp)
{
	struct timespec zero = { 0, 0 };
	sigset_t set;

	sigemptyset(&set);
	sigaddset(&set, SIGPIPE);
	/* Ours, raised by the loop's writes: not the caller's business. */
	if (!sp->was_pending)
		while (sigtimedwait(&set, NULL, &zero) > 0)
			;
	pthread_sigmask(SIG_SETMASK, &sp->old, NULL);
}

static void policies_default(struct vmig_policies *p)
{
	memset(p, 0, sizeof(*p));
	p->size = sizeof(*p);
	p->downtime_limit_ms = VMIG_DEFAULT_DOWNTIME_MS;
	p->max_iterations = VMIG_DEFAULT_MAX_ITERATIONS;
	p->switchover_timeout_ms = VMIG_DEFAULT_SWITCHOVER_TIMEOUT_MS;
	p->handshake_timeout_ms = VMIG_DEFAULT_HANDSHAKE_TIMEOUT_MS;
	p->idle_timeout_ms = VMIG_DEFAULT_IDLE_TIMEOUT_MS;
	p->verify = VMIG_VERIFY_AUDIT;
}

struct vmig_engine *vmig_engine_get(vmig_session *s)
{
	struct vmig_engine *e = __atomic_load_n(&s->engine, __ATOMIC_ACQUIRE);

	if (e)
		return e;
	e = calloc(1, sizeof(*e));
	if (!e)
		return NULL;
	e->s = s;
	if (pthread_cond_init(&e->called, NULL)) {
		free(e);
		return NULL;
	}
	e->calls_tail = &e->calls;
	if (pthread_mutex_init(&e->lock, NULL)) {
		pthread_cond_destroy(&e->called);
		free(e);
		return NULL;
	}
	if (pthread_mutex_init(&e->status_lock, NULL)) {
		pthread_mutex_destroy(&e->lock);
		pthread_cond_destroy(&e->called);
		free(e);
		return NULL;
	}
	policies_default(&e->pol);
	/* vmig_cancel() reads the pointer from other threads. */
	__atomic_store_n(&s->engine, e, __ATOMIC_RELEASE);
	return e;
}

int vmig_engine_loop(struct vmig_engine *e, uv_loop_t **loop)
{
	int ret;

	if (!e->loop_ready) {
		ret = uv_loop_init(&e->loop);
		if (ret < 0)
			return ret;
		e->loop_ready = true;
	}
	*loop = &e->loop;
	return 0;
}

void vmig_engine_free(vmig_session *s)
{
	struct vmig_engine *e = s->engine;

	if (!e)
		return;
	if (e->local_dst)
		vmig_session_free(e->local_dst);
	if (e->listener)
		vmig_listener_close(e->listener);
	if (e->loop_ready) {
		/* Let the close callbacks of what is left run. */
		uv_run(&e->loop, UV_RUN_DEFAULT);
		uv_loop_close(&e->loop);
	}
	vmig_engine_release_devices(e, false);
	free(e->states);
	free(e->transport);
	pthread_mutex_destroy(&e->lock);
	pthread_mutex_destroy(&e->status_lock);
	pthread_cond_destroy(&e->called);
	free(e);
	s->engine = NULL;
}

int vmig_engine_begin(struct vmig_engine *e, uv_async_t *cancel,
		      void (*fn)(void *opaque), void *opaque)
{
	int ret = 0;

	pthread_mutex_lock(&e->lock);
	if (e->running) {
		ret = -EBUSY;
	} else {
		e->running = true;
		e->busy = true;
		e->loop_thread = pthread_self();
		__atomic_store_n(&e->cancel_requested, false,
				 __ATOMIC_RELEASE);
		e->cancel = cancel;
		e->cancel_cb = fn;
		e->cancel_opaque = opaque;
	}
	pthread_mutex_unlock(&e->lock);
	return ret;
}

struct vmig_call {
	int (*fn)(vmig_session *s, void *arg);
	vmig_session *s;
	void *arg;
	int ret;
	bool done;
	struct vmig_call *next;
};

/*
 * Runs a call of the VMM, then tells the observer: a ground truth settles
 * the writes the call covered by marking pages dirty, which the engine
 * may send before the next sync sees them.
 */
static int call_settled(vmig_session *s,
			int (*fn)(vmig_session *s, void *arg), void *arg)
{
	int ret = fn(s, arg);

	if (s->tracking)
		vmig_observe_vmm_call(s);
	return ret;
}

/* Runs the queued calls; called with e->lock held, returns with it. */
static void run_calls(struct vmig_engine *e)
{
	struct vmig_call *c;

	while ((c = e->calls) != NULL) {
		e->calls = c->next;
		if (!e->calls)
			e->calls_tail = &e->calls;
		pthread_mutex_unlock(&e->lock);
		c->ret = call_settled(c->s, c->fn, c->arg);
		pthread_mutex_lock(&e->lock);
		c->done = true;
		pthread_cond_broadcast(&e->called);
	}
}

bool vmig_engine_wakeup(struct vmig_engine *e)
{
	bool cancel;

	pthread_mutex_lock(&e->lock);
	run_calls(e);
	/* The source's pump reads it without the lock, between batches. */
	cancel = __atomic_exchange_n(&e->cancel_requested, false,
				     __ATOMIC_ACQ_REL);
	pthread_mutex_unlock(&e->lock);
	return cancel;
}

int vmig_engine_call(vmig_session *s, int (*fn)(vmig_session *s, void *arg),
		     void *arg)
{
	struct vmig_engine *e = __atomic_load_n(&s->engine, __ATOMIC_ACQUIRE);
	struct vmig_call c = { .fn = fn, .s = s, .arg = arg };

	if (!e)
		return fn(s, arg);
	pthread_mutex_lock(&e->lock);
	/*
	 * After vmig_engine_end the migrating thread still writes the
	 * session (tracking stops, the figures, the error) until its call
	 * returns: a call from another thread that comes then would run
	 * beside it, so it waits for vmig_engine_idle (found by the chaos
	 * test, whose second thread cannot know when a migration ends).
	 */
	while (e->busy && !e->running &&
	       !pthread_equal(e->loop_thread, pthread_self()))
		pthread_cond_wait(&e->called, &e->lock);
	if (!e->running || !e->cancel ||
	    pthread_equal(e->loop_thread, pthread_self())) {
		pthread_mutex_unlock(&e->lock);
		return call_settled(s, fn, arg);
	}
	*e->calls_tail = &c;
	e->calls_tail = &c.next;
	uv_async_send(e->cancel);
	while (!c.done)
		pthread_cond_wait(&e->called, &e->lock);
	pthread_mutex_unlock(&e->lock);
	return c.ret;
}

bool vmig_engine_running(vmig_session *s)
{
	struct vmig_engine *e = __atomic_load_n(&s->engine, __ATOMIC_ACQUIRE);
	bool running;

	if (!e)
		return false;
	pthread_mutex_lock(&e->lock);
	running = e->running;
	pthread_mutex_unlock(&e->lock);
	return running;
}

void vmig_engine_end(struct vmig_engine *e)
{
	pthread_mutex_lock(&e->lock);
	/* Calls that came after the loop's last wakeup run here, its thread. */
	run_calls(e);
	e->running = false;
	e->cancel = NULL;
	e->cancel_cb = NULL;
	e->cancel_opaque = NULL;
	pthread_mutex_unlock(&e->lock);
}

void vmig_engine_idle(struct vmig_engine *e)
{
	pthread_mutex_lock(&e->lock);
	e->busy = false;
	pthread_cond_broadcast(&e->called);
	pthread_mutex_unlock(&e->lock);
}

void vmig_engine_stats_reset(struct vmig_engine *e)
{
	memset(&e->st, 0, sizeof(e->st));
}

struct vmig_iter_stats *vmig_stats_iter_add(vmig_session *s)
{
	struct vmig_run_stats *st = &s->stats;
	struct vmig_iter_stats *arr;

	arr = realloc(st->iters, (st->nr_iters + 1) * sizeof(*arr));
	if (!arr)
		return NULL;
	st->iters = arr;
	memset(&arr[st->nr_iters], 0, sizeof(*arr));
	return &arr[st->nr_iters++];
}

/* ------------------------------------------------------------------ */
/* Public calls                                                        */

/* *out gets the engine of s: 0, -EINVAL without s, -ENOMEM. */
static int engine_of(vmig_session *s, struct vmig_engine **out)
{
	if (!s)
		return -EINVAL;
	*out = vmig_engine_get(s);
	return *out ? 0 : -ENOMEM;
}

int vmig_engine_idle_get(vmig_session *s, const char *what,
			 struct vmig_engine **out)
{
	int ret = engine_of(s, out);

	if (ret)
		return ret;
	if (vmig_engine_running(s))
		return vmig_fail(s, -EBUSY, "%s: a migration runs", what);
	return 0;
}

VMIG_API int vmig_set_vmm_ops(vmig_session *s, const struct vmig_vmm_ops *ops,
			      void *opaque)
{
	struct vmig_engine *e;
	int ret = vmig_engine_idle_get(s, "vmm ops", &e);

	if (ret)
		return ret;
	/*
	 * The stopped guest belongs to the callbacks that stopped it:
	 * vmig_resolve() must resume that one, not another VMM's.
	 */
	if (e->unresolved)
		return vmig_fail(s, -EBUSY, "vmm ops: the last migration is "
				 "unresolved (the guest is paused): call "
				 "vmig_resolve() first");
	if (!ops) {
		memset(&e->vmm, 0, sizeof(e->vmm));
		e->have_vmm = false;
		e->vmm_opaque = NULL;
		return 0;
	}
	if (!VMIG_HAS_FIELD(ops, struct vmig_vmm_ops, start))
		return vmig_fail(s, -EINVAL, "vmm ops: size field too small");
	memset(&e->vmm, 0, sizeof(e->vmm));
	memcpy(&e->vmm, ops,
	       ops->size < sizeof(e->vmm) ? ops->size : sizeof(e->vmm));
	e->vmm.size = sizeof(e->vmm);
	e->vmm_opaque = opaque;
	e->have_vmm = true;
	return 0;
}

VMIG_API int vmig_set_policies(vmig_session *s, const struct vmig_policies *p)
{
	struct vmig_policies n;
	struct vmig_engine *e;
	int ret = engine_of(s, &e);

	if (ret)
		return ret;
	if (!VMIG_HAS_FIELD(p, struct vmig_policies, timeout_ms))
		return vmig_fail(s, -EINVAL, "policies: size field too small");
	if (p->hotplug > VMIG_HOTPLUG_POLICY_REJECT)
		return vmig_fail(s, -EINVAL, "policies: unknown hotplug policy "
				 "%u", p->hotplug);
	if (p->timeout_strategy > VMIG_TIMEOUT_STRATEGY_FORCE)
		return vmig_fail(s, -EINVAL, "policies: unknown timeout "
				 "strategy %u", p->timeout_strategy);
	if (VMIG_HAS_FIELD(p, struct vmig_policies, tracking) &&
	    p->tracking > VMIG_TRACKING_POLICY_ALL_OR_NOTHING)
		return vmig_fail(s, -EINVAL, "policies: unknown tracking "
				 "policy %u", p->tracking);
	if (VMIG_HAS_FIELD(p, struct vmig_policies, verify) &&
	    p->verify > VMIG_VERIFY_OFF)
		return vmig_fail(s, -EINVAL, "policies: unknown verify "
				 "policy %u", p->verify);
	if (VMIG_HAS_FIELD(p, struct vmig_policies, connections) &&
	    p->connections > VMIG_CONNECTIONS_MAX)
		return vmig_fail(s, -EINVAL, "policies: connections %u, at "
				 "most %u", p->connections,
				 VMIG_CONNECTIONS_MAX);
	policies_default(&n);
	n.hotplug = p->hotplug;
	if (p->downtime_limit_ms)
		n.downtime_limit_ms = p->downtime_limit_ms;
	n.bandwidth_limit = p->bandwidth_limit;
	if (p->max_iterations)
		n.max_iterations = p->max_iterations;
	n.timeout_strategy = p->timeout_strategy;
	n.timeout_ms = p->timeout_ms;
	if (VMIG_HAS_FIELD(p, struct vmig_policies, tracking))
		n.tracking = p->tracking;
	if (VMIG_HAS_FIELD(p, struct vmig_policies, switchover_timeout_ms) &&
	    p->switchover_timeout_ms)
		n.switchover_timeout_ms = p->switchover_timeout_ms;
	if (VMIG_HAS_FIELD(p, struct vmig_policies, handshake_timeout_ms) &&
	    p->handshake_timeout_ms)
		n.handshake_timeout_ms = p->handshake_timeout_ms;
	if (VMIG_HAS_FIELD(p, struct vmig_policies, idle_timeout_ms) &&
	    p->idle_timeout_ms)
		n.idle_timeout_ms = p->idle_timeout_ms;
	if (VMIG_HAS_FIELD(p, struct vmig_policies, verify) && p->verify)
		n.verify = p->verify;
	else if (e->running)
		n.verify = e->pol.verify; /* 0 keeps the migration's */
	if (VMIG_HAS_FIELD(p, struct vmig_policies, connections))
		n.connections = p->connections;
	if (e->running)
		n.connections = e->pol.connections; /* fixed at the start */
	if (e->running)
		return vmig_control_policies_live(s, &n);
	e->pol = n;
	s->hotplug = p->hotplug;
	s->all_or_nothing =
		n.tracking == VMIG_TRACKING_POLICY_ALL_OR_NOTHING;
	return 0;
}

int vmig_engine_release_devices(struct vmig_engine *e, bool run)
{
	uint32_t i;
	int ret = 0;

	if (!e->held_dsv)
		return 0;
	/* Back to RUNNING, before the vCPUs run (vmig_resolve). */
	if (run && e->held_ndevs)
		ret = vmig_devstate_abort(e->held_dsv, e->held_ndevs);
	for (i = 0; i < e->held_ndevs; i++) {
		const char *err = vmig_devstate_error(e->held_dsv[i]);

		if (ret < 0 && err && *err)
			vmig_logf(e->s, VMIG_LOG_ERROR,
				  "source: resolve: device %s could not be "
				  "brought back to RUNNING: %s",
				  vmig_devstate_name(e->held_dsv[i]), err);
		vmig_devstate_close(e->held_dsv[i]);
	}
	free(e->held_dsv);
	free(e->held_ids);
	e->held_dsv = NULL;
	e->held_ids = NULL;
	e->held_ndevs = 0;
	return ret;
}

bool vmig_engine_holds_device(vmig_session *s, uint32_t id)
{
	struct vmig_engine *e = s->engine;
	uint32_t i;

	if (!e || !e->unresolved || !e->held_dsv || !e->held_ids)
		return false;
	for (i = 0; i < e->held_ndevs; i++)
		if (e->held_ids[i] == id)
			return true;
	return false;
}

/* Settles for the source: devices first, then the guest's vCPUs. */
static int resolve_resume(vmig_session *s, struct vmig_engine *e)
{
	static const char gone[] = "the guest was stopped by vmig_run's "
				   "simulated guest, which ended with the "
				   "run: nothing can resume it";
	int dret, ret;

	/*
	 * Refused before anything changes: the handles stay held and the
	 * session unresolved, so that the VMM can still settle it.
	 */
	if (!e->vmm.resume)
		return vmig_fail(s, -EINVAL,
				 "resolve: %s; the session stays unresolved "
				 "(VMIG_RESOLVE_DESTINATION, or freeing the "
				 "session, ends it)",
				 e->vmm_gone ? gone : "no resume callback "
						     "(vmig_set_vmm_ops) to "
						     "run the guest again");
	dret = vmig_engine_release_devices(e, true);
	if (dret < 0)
		e->held_err = dret;
	dret = e->held_err;
	/*
	 * A device that failed to come back does not keep the others, nor
	 * the vCPUs, stopped: they are resumed, and the error returned.
	 */
	ret = e->vmm.resume(e->vmm_opaque);
	if (ret < 0)
		return vmig_fail(s, ret, "resolve: the VMM could not resume "
				 "the guest: %s%s", vmig_strerror(ret),
				 dret < 0 ? " (and a device could not be "
					    "brought back to RUNNING)"
					  : "");
	e->unresolved = false;
	e->held_err = 0;
	e->st.unresolved = false;
	e->st.guest_resumed = true;
	/* The guest was stopped from the stop callback until now. */
	e->st.downtime_us = vmig_now_us() - e->held_stop_us;
	if (dret < 0)
		return vmig_fail(s, dret, "resolve: the guest runs on the "
				 "source again, but a device could not be "
				 "brought back to RUNNING (%s): see the log "
				 "for which", vmig_strerror(dret));
	vmig_logf(s, VMIG_LOG_INFO, "source: resolved: the guest runs on the "
		  "source again; downtime %llu ms",
		  (unsigned long long)e->st.downtime_us / 1000);
	return 0;
}

VMIG_API int vmig_resolve(vmig_session *s, uint32_t decision)
{
	struct vmig_engine *e;
	int ret = engine_of(s, &e);

	if (ret)
		return ret;
	if (!e->unresolved)
		return vmig_fail(s, -EINVAL, "resolve: no unresolved "
				 "migration");
	switch (decision) {
	case VMIG_RESOLVE_RESUME:
		return resolve_resume(s, e);
	case VMIG_RESOLVE_DESTINATION:
		vmig_engine_release_devices(e, false);
		e->unresolved = false;
		e->vmm_gone = false;
		e->held_err = 0;
		e->migrated = true;
		e->st.unresolved = false;
		e->st.committed = true;
		vmig_logf(s, VMIG_LOG_INFO, "source: resolved: the destination "
			  "runs the guest; it stays stopped here");
		return 0;
	}
	return vmig_fail(s, -EINVAL, "resolve: unknown decision %u", decision);
}

VMIG_API int vmig_cancel(vmig_session *s)
{
	struct vmig_engine *e;
	int ret = -EINVAL;

	if (!s)
		return -EINVAL;
	e = __atomic_load_n(&s->engine, __ATOMIC_ACQUIRE);
	if (!e)
		return -EINVAL;
	pthread_mutex_lock(&e->lock);
	if (e->running && e->cancel) {
		__atomic_store_n(&e->cancel_requested, true,
				 __ATOMIC_RELEASE);
		ret = uv_async_send(e->cancel);
	}
	pthread_mutex_unlock(&e->lock);
	return ret;
}
