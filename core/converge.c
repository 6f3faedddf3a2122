/*
 * converge.c: the source's convergence policy (see converge.h).
 *
 * This file owns the throughput estimate and the decision after each
 * sync: continue, switch over or give up, with the figures that explain
 * it. It reads no clock, touches no socket and keeps no state but the
 * caller's struct vmig_converge_rates.
 */
#include <stdio.h>

#include "converge.h"

/* Below both, an iteration measures latency, not throughput. */
#define SHORT_US 5000u
#define SHORT_BYTES (4u << 20)

/* A running average of the long iterations, the first one taken whole. */
static double rate_mix(double old, double rate)
{
	return old ? (old + rate) / 2 : rate;
}

void vmig_converge_measure(struct vmig_converge_rates *r, uint64_t handled,
			   uint64_t bytes, uint64_t us)
{
	if (us >= SHORT_US || handled >= SHORT_BYTES) {
		r->page_rate = rate_mix(r->page_rate, (double)handled * 1e6 /
							      (double)(us + 1));
		r->wire_rate = rate_mix(r->wire_rate,
					(double)bytes * 1e6 / (double)(us + 1));
	}
	r->all_handled += handled;
	r->all_bytes += bytes;
	r->all_us += us;
	/*
	 * A guest so small that no iteration was long enough: the rate
	 * over all of them. Latency makes it an underestimate, which only
	 * makes the expected downtime longer: the safe side.
	 */
	if (!r->page_rate && r->all_handled) {
		r->page_rate = (double)r->all_handled * 1e6 /
			       (double)(r->all_us + 1);
		r->wire_rate = (double)r->all_bytes * 1e6 /
			       (double)(r->all_us + 1);
	}
}

/* How long moving bytes takes at rate (UINT64_MAX: no rate yet). */
static uint64_t part_time(uint64_t bytes, double rate)
{
	if (!bytes)
		return 0;
	if (rate <= 0)
		return UINT64_MAX;
	return (uint64_t)((double)bytes * 1e6 / rate);
}

static double verify_rate(const struct vmig_converge_input *in)
{
	return in->verify_rate > 0 ? in->verify_rate
				   : VMIG_CONVERGE_DIGEST_RATE;
}

static void decide_parts(const struct vmig_converge_input *in,
			 struct vmig_converge_decision *out)
{
	unsigned int i;

	out->part_us[VMIG_CONVERGE_MEMORY] =
		part_time(in->dirty_bytes, in->page_rate);
	out->part_us[VMIG_CONVERGE_DEVICES] =
		part_time(in->device_bytes, in->page_rate);
	out->part_us[VMIG_CONVERGE_VERIFY] =
		part_time(in->verify_bytes, verify_rate(in));
	out->main = VMIG_CONVERGE_MEMORY;
	for (i = 1; i < VMIG_CONVERGE_NR_PARTS; i++) {
		if (out->part_us[i] > out->part_us[out->main])
			out->main = (enum vmig_converge_part)i;
	}
}

void vmig_converge_decide(const struct vmig_converge_input *in,
			  struct vmig_converge_decision *out)
{
	/*
	 * The total is computed in one expression, not as the sum of the
	 * truncated parts: the parts explain it, they do not define it.
	 */
	out->expected_us =
		in->page_rate > 0
			? (uint64_t)((double)(in->dirty_bytes +
					      in->device_bytes) *
					     1e6 / in->page_rate +
				     (double)in->verify_bytes * 1e6 /
					     verify_rate(in))
			: UINT64_MAX;
	out->limit_us = in->downtime_limit_us;
	out->over_us = out->expected_us > out->limit_us
			       ? out->expected_us - out->limit_us
			       : 0;
	decide_parts(in, out);
	if (out->expected_us <= out->limit_us) {
		out->action = VMIG_CONVERGE_SWITCHOVER;
		out->reason = VMIG_CONVERGE_WITHIN_LIMIT;
	} else if (in->iterations >= in->max_iterations && in->force) {
		out->action = VMIG_CONVERGE_SWITCHOVER;
		out->reason = VMIG_CONVERGE_FORCED;
	} else if (in->iterations >= in->max_iterations) {
		out->action = VMIG_CONVERGE_GIVE_UP;
		out->reason = VMIG_CONVERGE_MAX_ITERATIONS;
	} else {
		out->action = VMIG_CONVERGE_CONTINUE;
		out->reason = VMIG_CONVERGE_OVER_LIMIT;
	}
}

const char *vmig_converge_part_name(enum vmig_converge_part part)
{
	static const char *const names[] = {
		[VMIG_CONVERGE_MEMORY] = "memory still dirty",
		[VMIG_CONVERGE_DEVICES] = "device and VMM state",
		[VMIG_CONVERGE_VERIFY] = "verification",
	};

	return (unsigned int)part < VMIG_CONVERGE_NR_PARTS ? names[part]
							   : "?";
}

const char *vmig_converge_action_name(enum vmig_converge_action action)
{
	switch (action) {
	case VMIG_CONVERGE_CONTINUE:
		return "continue";
	case VMIG_CONVERGE_SWITCHOVER:
		return "switch over";
	case VMIG_CONVERGE_GIVE_UP:
		return "give up";
	}
	return "?";
}

/* "12 ms", or "unknown". */
static void ms_text(char *buf, size_t len, uint64_t us)
{
	if (us == UINT64_MAX)
		snprintf(buf, len, "unknown");
	else
		snprintf(buf, len, "%llu ms", (unsigned long long)us / 1000);
}

int vmig_converge_describe(const struct vmig_converge_decision *d, char *buf,
			   size_t len)
{
	char total[32], limit[32], over[32];
	char part[VMIG_CONVERGE_NR_PARTS][32];
	unsigned int i;

	ms_text(total, sizeof(total), d->expected_us);
	ms_text(limit, sizeof(limit), d->limit_us);
	ms_text(over, sizeof(over),
		d->expected_us == UINT64_MAX ? UINT64_MAX : d->over_us);
	for (i = 0; i < VMIG_CONVERGE_NR_PARTS; i++)
		ms_text(part[i], sizeof(part[i]), d->part_us[i]);
	return snprintf(buf, len,
			"expected downtime %s, %s the %s limit%s%s: %s %s, "
			"%s %s, %s %s",
			total, d->over_us ? "over" : "within", limit,
			d->over_us ? " by " : "", d->over_us ? over : "",
			vmig_converge_part_name(VMIG_CONVERGE_MEMORY),
			part[VMIG_CONVERGE_MEMORY],
			vmig_converge_part_name(VMIG_CONVERGE_DEVICES),
			part[VMIG_CONVERGE_DEVICES],
			vmig_converge_part_name(VMIG_CONVERGE_VERIFY),
			part[VMIG_CONVERGE_VERIFY]);
}
