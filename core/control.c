/*
 * control.c: what a VMM can ask and change while a migration runs.
 *
 * The migration's thread publishes where it stands (its phase and
 * figures) into the engine's status under status_lock; vmig_query()
 * copies it from any thread. The same thread tells the event callback
 * what happened (phase changes, passes, convergence, switchover, commit,
 * the outcome). vmig_set_policies() during a migration changes the live
 * policies on the migration's thread (vmig_engine_call), where the next
 * decision reads them.
 */
#include <errno.h>
#include <stddef.h>
#include <string.h>

#include "engine.h"
#include "internal.h"

VMIG_API const char *vmig_phase_name(uint32_t phase)
{
	static const char *const names[] = {
		[VMIG_PHASE_NONE] = "none",
		[VMIG_PHASE_SETUP] = "setup",
		[VMIG_PHASE_PRECOPY] = "pre-copy",
		[VMIG_PHASE_SWITCHOVER] = "switchover",
		[VMIG_PHASE_COMMIT] = "commit",
		[VMIG_PHASE_COMPLETED] = "completed",
		[VMIG_PHASE_FAILED] = "failed",
		[VMIG_PHASE_UNRESOLVED] = "unresolved",
	};

	return phase < sizeof(names) / sizeof(names[0]) ? names[phase]
							 : "unknown";
}

static bool phase_over(uint32_t phase)
{
	return phase >= VMIG_PHASE_COMPLETED;
}

void vmig_control_begin(struct vmig_engine *e)
{
	pthread_mutex_lock(&e->status_lock);
	memset(&e->status, 0, sizeof(e->status));
	e->status.size = sizeof(e->status);
	e->status.phase = VMIG_PHASE_NONE;
	e->status.expected_downtime_us = UINT64_MAX;
	e->status_t0 = vmig_now_us();
	e->status_t1 = 0;
	e->status_stop_t0 = e->status_stop_t1 = 0;
	pthread_mutex_unlock(&e->status_lock);
}

/* Microseconds from t0 to its end (t1), or to now while it runs. */
static uint64_t span_us(uint64_t t0, uint64_t t1, uint64_t now)
{
	uint64_t end = t1 ? t1 : now;

	return t0 && end > t0 ? end - t0 : 0;
}

uint64_t vmig_control_elapsed(const struct vmig_engine *e)
{
	return span_us(e->status_t0, e->status_t1, vmig_now_us());
}

void vmig_control_publish(struct vmig_engine *e, const struct vmig_status *st)
{
	uint32_t phase;

	/* The figures change; the phase only with vmig_control_phase. */
	pthread_mutex_lock(&e->status_lock);
	phase = e->status.phase;
	e->status = *st;
	e->status.size = sizeof(e->status);
	e->status.phase = phase;
	pthread_mutex_unlock(&e->status_lock);
}

void vmig_control_event(struct vmig_engine *e, struct vmig_event *ev)
{
	if (!e->event_fn)
		return;
	ev->size = sizeof(*ev);
	pthread_mutex_lock(&e->status_lock);
	ev->phase = e->status.phase;
	/* A pass's own events carry its number; the others the current. */
	if (ev->type != VMIG_EVENT_ITERATION &&
	    ev->type != VMIG_EVENT_CONVERGED)
		ev->iteration = e->status.iteration;
	if (!ev->bytes_sent)
		ev->bytes_sent = e->status.bytes_sent;
	ev->expected_downtime_us = e->status.expected_downtime_us;
	pthread_mutex_unlock(&e->status_lock);
	ev->elapsed_us = vmig_control_elapsed(e);
	if (!ev->message)
		ev->message = "";
	e->event_fn(e->event_opaque, ev);
}

void vmig_control_phase(struct vmig_engine *e, uint32_t phase, int error,
			const char *message)
{
	static const uint32_t follows[] = {
		[VMIG_PHASE_SWITCHOVER] = VMIG_EVENT_SWITCHOVER,
		[VMIG_PHASE_COMMIT] = VMIG_EVENT_COMMIT,
		[VMIG_PHASE_COMPLETED] = VMIG_EVENT_COMPLETED,
		[VMIG_PHASE_FAILED] = VMIG_EVENT_FAILED,
		[VMIG_PHASE_UNRESOLVED] = VMIG_EVENT_FAILED,
	};
	struct vmig_event ev = { .type = VMIG_EVENT_PHASE };
	uint64_t now = vmig_now_us();
	uint32_t old;

	pthread_mutex_lock(&e->status_lock);
	old = e->status.phase;
	e->status.phase = phase;
	if (phase == VMIG_PHASE_SWITCHOVER && !e->status_stop_t0)
		e->status_stop_t0 = now;
	if (phase_over(phase) && e->status_stop_t0 && !e->status_stop_t1)
		e->status_stop_t1 = now;
	/* Ended: elapsed_us stops with it. */
	if (phase_over(phase) && !e->status_t1)
		e->status_t1 = now;
	pthread_mutex_unlock(&e->status_lock);
	if (old == phase)
		return;
	ev.message = vmig_phase_name(phase);
	vmig_control_event(e, &ev);
	if (phase < sizeof(follows) / sizeof(follows[0]) && follows[phase]) {
		struct vmig_event f = { .type = follows[phase], .error = error,
					.message = message };

		vmig_control_event(e, &f);
	}
}

VMIG_API int vmig_query(vmig_session *s, struct vmig_status *out)
{
	struct vmig_engine *e;
	uint64_t now = vmig_now_us();
	uint32_t size;

	if (!s || !out || out->size < sizeof(*out))
		return -EINVAL;
	size = out->size;
	memset(out, 0, sizeof(*out));
	out->size = size;
	out->expected_downtime_us = UINT64_MAX;
	e = __atomic_load_n(&s->engine, __ATOMIC_ACQUIRE);
	if (!e)
		return 0;
	pthread_mutex_lock(&e->status_lock);
	*out = e->status;
	out->size = size;
	out->elapsed_us = span_us(e->status_t0, e->status_t1, now);
	out->stopped_us = span_us(e->status_stop_t0, e->status_stop_t1, now);
	pthread_mutex_unlock(&e->status_lock);
	return 0;
}

VMIG_API int vmig_set_event_callback(vmig_session *s, vmig_event_fn fn,
				     void *opaque)
{
	struct vmig_engine *e;
	int ret = vmig_engine_idle_get(s, "events", &e);

	if (ret)
		return ret;
	e->event_fn = fn;
	e->event_opaque = opaque;
	return 0;
}

/* ------------------------------------------------------------------ */
/* Policies while a migration runs                                     */

struct live {
	const struct vmig_policies *n;
};

#define FIXED(field)                                                \
	{ #field, offsetof(struct vmig_policies, field),            \
	  sizeof(((struct vmig_policies *)0)->field) }

/*
 * The policies a migration cannot change once it runs: the rest of the
 * protocol was chosen with them (verify: HELLO told the destination).
 */
static const struct {
	const char *name;
	size_t offset, size;
} fixed_fields[] = {
	FIXED(hotplug),
	FIXED(max_iterations),
	FIXED(timeout_strategy),
	FIXED(tracking),
	FIXED(handshake_timeout_ms),
	FIXED(idle_timeout_ms),
	FIXED(verify),
};

/* The first field that may not change while a migration runs, or NULL. */
static const char *fixed_field(const struct vmig_policies *a,
			       const struct vmig_policies *b)
{
	size_t i;

	for (i = 0; i < sizeof(fixed_fields) / sizeof(fixed_fields[0]); i++)
		if (memcmp((const char *)a + fixed_fields[i].offset,
			   (const char *)b + fixed_fields[i].offset,
			   fixed_fields[i].size))
			return fixed_fields[i].name;
	return NULL;
}

static int live_call(vmig_session *s, void *arg)
{
	const struct vmig_policies *n = ((struct live *)arg)->n;
	struct vmig_engine *e = s->engine;
	const char *field = fixed_field(&e->pol, n);

	if (field)
		return vmig_fail(s, -EBUSY,
				 "policies: %s cannot change while a migration "
				 "runs (the bandwidth and downtime limits and "
				 "the timeouts can)",
				 field);
	e->pol.downtime_limit_ms = n->downtime_limit_ms;
	e->pol.bandwidth_limit = n->bandwidth_limit;
	e->pol.timeout_ms = n->timeout_ms;
	e->pol.switchover_timeout_ms = n->switchover_timeout_ms;
	vmig_logf(s, VMIG_LOG_INFO,
		  "policies: now downtime limit %llu ms, bandwidth limit %llu "
		  "B/s, timeout %llu ms, switchover timeout %llu ms",
		  (unsigned long long)n->downtime_limit_ms,
		  (unsigned long long)n->bandwidth_limit,
		  (unsigned long long)n->timeout_ms,
		  (unsigned long long)n->switchover_timeout_ms);
	if (e->policies_changed)
		e->policies_changed(e->policies_opaque);
	return 0;
}

int vmig_control_policies_live(vmig_session *s, const struct vmig_policies *n)
{
	struct live l = { .n = n };

	return vmig_engine_call(s, live_call, &l);
}
