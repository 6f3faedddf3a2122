/*
 * pace.h: the bandwidth limit's token bucket, without clocks or timers.
 *
 * pace.c owns the arithmetic of pacing: tokens accrue at the limit's rate
 * up to a burst (50 ms of it, one largest frame at the least), writes
 * spend them, and a budget is what may be written now, or how long to
 * wait for a page's worth. precopy.c reads the clock and runs the timer.
 */
#ifndef VMIG_CORE_PACE_H
#define VMIG_CORE_PACE_H

#include <stdint.h>

struct vmig_pace {
	uint64_t rate;     /* bytes per second, 0: no limit */
	double tokens;     /* bytes that may be written */
	uint64_t at_us;    /* when tokens were last counted */
};

/* Starts counting at now_us, with no tokens (rate 0: no limit). */
void vmig_pace_start(struct vmig_pace *p, uint64_t rate, uint64_t now_us);

/*
 * The bytes that may be written at now_us, at most cap; 0 when less than
 * a page's worth is there, with *wait_us how long until there is.
 */
uint64_t vmig_pace_budget(struct vmig_pace *p, uint64_t now_us, uint64_t cap,
			  uint64_t *wait_us);

/* bytes were queued (the count may go below 0: a frame is not split). */
void vmig_pace_spend(struct vmig_pace *p, uint64_t bytes);

#endif /* VMIG_CORE_PACE_H */
