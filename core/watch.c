/*
 * watch.c: the bounded waits of one side of a migration (see watch.h).
 *
 * This file owns the arithmetic of the deadlines and their one timer:
 * the earliest armed deadline is what the timer waits for; when it fires
 * before an idle deadline that slid (a touch came since), it waits again
 * for what is left.
 */
#include <string.h>

#include "watch.h"

static const char *const policy_names[] = {
	[VMIG_WAIT_HANDSHAKE] = "handshake_timeout_ms",
	[VMIG_WAIT_IDLE] = "idle_timeout_ms",
	[VMIG_WAIT_SWITCHOVER] = "switchover_timeout_ms",
	[VMIG_WAIT_TOTAL] = "timeout_ms",
};

const char *vmig_wait_policy(enum vmig_wait which)
{
	return which < VMIG_WAIT_NR ? policy_names[which] : "?";
}

static uint64_t deadline(const struct vmig_watch *w, enum vmig_wait which)
{
	if (which == VMIG_WAIT_IDLE)
		return w->last_ms + w->idle_ms;
	return w->until[which];
}

static void watch_fired(uv_timer_t *t);

/* (Re)starts the timer for the earliest armed deadline, if any. */
static void watch_schedule(struct vmig_watch *w)
{
	uint64_t now = uv_now(w->timer.loop), first = UINT64_MAX, d;
	unsigned int i;

	if (w->closed)
		return;
	for (i = 0; i < VMIG_WAIT_NR; i++) {
		if (!w->armed[i])
			continue;
		d = deadline(w, i);
		if (d < first)
			first = d;
	}
	if (first == UINT64_MAX) {
		uv_timer_stop(&w->timer);
		return;
	}
	uv_timer_start(&w->timer, watch_fired, first > now ? first - now : 0,
		       0);
}

static void watch_fired(uv_timer_t *t)
{
	struct vmig_watch *w = t->data;
	uint64_t now = uv_now(t->loop);
	unsigned int i;

	for (i = 0; i < VMIG_WAIT_NR; i++) {
		if (!w->armed[i] || deadline(w, i) > now)
			continue;
		memset(w->armed, 0, sizeof(w->armed));
		uv_timer_stop(&w->timer);
		w->expired(w->opaque, i);
		return;
	}
	watch_schedule(w);
}

void vmig_watch_init(struct vmig_watch *w, uv_loop_t *loop,
		     void (*expired)(void *opaque, enum vmig_wait which),
		     void *opaque)
{
	memset(w, 0, sizeof(*w));
	uv_timer_init(loop, &w->timer);
	w->timer.data = w;
	w->expired = expired;
	w->opaque = opaque;
	w->last_ms = uv_now(loop);
}

void vmig_watch_arm(struct vmig_watch *w, enum vmig_wait which, uint64_t ms)
{
	uint64_t now;

	if (w->closed || which >= VMIG_WAIT_NR)
		return;
	/* The loop's clock is cached: a wait counts from the real now. */
	uv_update_time(w->timer.loop);
	now = uv_now(w->timer.loop);
	if (which == VMIG_WAIT_IDLE) {
		w->idle_ms = ms;
		w->last_ms = now;
	} else {
		w->until[which] = ms > UINT64_MAX - now ? UINT64_MAX
						       : now + ms;
	}
	w->armed[which] = true;
	watch_schedule(w);
}

void vmig_watch_disarm(struct vmig_watch *w, enum vmig_wait which)
{
	if (which >= VMIG_WAIT_NR || !w->armed[which])
		return;
	w->armed[which] = false;
	watch_schedule(w);
}

void vmig_watch_close(struct vmig_watch *w)
{
	if (w->closed)
		return;
	memset(w->armed, 0, sizeof(w->armed));
	w->closed = true;
	uv_timer_stop(&w->timer);
	uv_close((uv_handle_t *)&w->timer, NULL);
}
