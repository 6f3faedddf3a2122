/*
 * watch.h: the bounded waits of one side of a migration.
 *
 * watch.c owns the deadlines a side keeps while it waits for its peer:
 * the handshake (HELLO, WELCOME), an idle stream (nothing moved for too
 * long), the switchover (the guest stopped, or the destination between
 * SWITCHOVER and COMMIT) and the whole migration (timeout_ms). One libuv
 * timer serves them all: the idle bound slides with each touch, which
 * only records the loop's time (so the hot path costs nothing), and the
 * timer re-arms itself for what is left when it fires early. Which wait
 * means what, and what a side does when one passes, is the side's
 * (dest.c, precopy.c).
 */
#ifndef VMIG_CORE_WATCH_H
#define VMIG_CORE_WATCH_H

#include <stdbool.h>
#include <stdint.h>

#include <uv.h>

enum vmig_wait {
	VMIG_WAIT_HANDSHAKE,  /* handshake_timeout_ms */
	VMIG_WAIT_IDLE,       /* idle_timeout_ms, from the last touch */
	VMIG_WAIT_SWITCHOVER, /* switchover_timeout_ms */
	VMIG_WAIT_TOTAL,      /* timeout_ms */
	VMIG_WAIT_NR,
};

struct vmig_watch {
	uv_timer_t timer;
	bool armed[VMIG_WAIT_NR];
	uint64_t until[VMIG_WAIT_NR]; /* loop milliseconds (not IDLE) */
	uint64_t idle_ms;             /* IDLE: the bound after a touch */
	uint64_t last_ms;             /* IDLE: the last touch */
	bool closed;
	/* A wait passed: the watch is disarmed entirely before the call. */
	void (*expired)(void *opaque, enum vmig_wait which);
	void *opaque;
};

/* Initialises w on loop; expired(opaque, which) when a wait passes. */
void vmig_watch_init(struct vmig_watch *w, uv_loop_t *loop,
		     void (*expired)(void *opaque, enum vmig_wait which),
		     void *opaque);

/* Arms a wait of ms milliseconds from now (for IDLE: from each touch). */
void vmig_watch_arm(struct vmig_watch *w, enum vmig_wait which, uint64_t ms);

/* Disarms one wait (the others keep their deadlines). */
void vmig_watch_disarm(struct vmig_watch *w, enum vmig_wait which);

/* Something moved: the idle bound counts from now. */
static inline void vmig_watch_touch(struct vmig_watch *w)
{
	w->last_ms = uv_now(w->timer.loop);
}

/* Disarms every wait and closes the timer (once; from the loop). */
void vmig_watch_close(struct vmig_watch *w);

/* A wait's name in messages ("handshake_timeout_ms", ...). */
const char *vmig_wait_policy(enum vmig_wait which);

#endif /* VMIG_CORE_WATCH_H */
