/*
 * pace.c: the bandwidth limit's token bucket (see pace.h).
 *
 * This file owns the pacing arithmetic only: no clock, no timer, so that
 * its behaviour is the same under a test clock and the monotonic one.
 */
#include "pace.h"
#include "proto.h"

#define PAGE 4096u

void vmig_pace_start(struct vmig_pace *p, uint64_t rate, uint64_t now_us)
{
	p->rate = rate;
	p->tokens = 0;
	p->at_us = now_us;
}

uint64_t vmig_pace_budget(struct vmig_pace *p, uint64_t now_us, uint64_t cap,
			  uint64_t *wait_us)
{
	double burst;

	*wait_us = 0;
	if (!p->rate)
		return cap;
	/* A burst of 50 ms, or one largest frame at the least. */
	burst = (double)p->rate / 20;
	if (burst < VMIG_PAGES_MAX * (double)PAGE + VMIG_FRAME_HDR)
		burst = VMIG_PAGES_MAX * (double)PAGE + VMIG_FRAME_HDR;
	p->tokens += (double)(now_us - p->at_us) * (double)p->rate / 1e6;
	p->at_us = now_us;
	if (p->tokens > burst)
		p->tokens = burst;
	/* Wait for a page's worth at least, not for a byte. */
	if (p->tokens < PAGE) {
		*wait_us = (uint64_t)((PAGE - p->tokens) * 1e6 /
				      (double)p->rate) + 1;
		return 0;
	}
	return p->tokens < (double)cap ? (uint64_t)p->tokens : cap;
}

void vmig_pace_spend(struct vmig_pace *p, uint64_t bytes)
{
	if (p->rate)
		p->tokens -= (double)bytes;
}
