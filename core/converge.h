/*
 * converge.h: the source's convergence policy, without sockets or clocks.
 *
 * converge.c owns two pure computations: the throughput estimate (each
 * iteration's work and duration in, the rates the estimate uses out) and
 * the decision after a sync (what is pending, the rate and the policies
 * in; continue, switch over or give up out, with the reason and the
 * figures: how long each part of the downtime would take, memory still
 * dirty, device state and verification, and by how much their sum is
 * over the downtime limit). precopy.c measures and acts; this file only
 * computes, so a test can drive it with any figures.
 */
#ifndef VMIG_CORE_CONVERGE_H
#define VMIG_CORE_CONVERGE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/*
 * With verify "strict" the digests are part of the downtime: their cost
 * enters the estimate at the rate the source measured, or without one at
 * this rate, what one core hashes, conservatively (bytes per second).
 */
#define VMIG_CONVERGE_DIGEST_RATE 4e9

/*
 * A device whose state size cannot be read counts as this much (QEMU's
 * VFIO_MIG_STOP_COPY_SIZE): too large to switch over, never zero.
 */
#define VMIG_CONVERGE_UNKNOWN_STATE (100ull << 30)

/* The estimate's running figures: zero them before the first iteration. */
struct vmig_converge_rates {
	double page_rate;      /* bytes handled per second (pages, state) */
	double wire_rate;      /* stream bytes per second */
	/* Every iteration's work and time: the estimate of last resort. */
	uint64_t all_handled;
	uint64_t all_bytes;
	uint64_t all_us;
};

/*
 * One iteration is over: it handled `handled` bytes (pages, zero pages
 * and device state) and wrote `bytes` to the stream in `us`. A short
 * iteration (under 5 ms and 4 MiB) measures latency, not throughput: it
 * only enters the totals, which give the rates while no iteration was
 * long enough.
 */
void vmig_converge_measure(struct vmig_converge_rates *r, uint64_t handled,
			   uint64_t bytes, uint64_t us);

/* What the decision after a sync weighs. */
struct vmig_converge_input {
	double page_rate;          /* vmig_converge_rates.page_rate, 0: none */
	uint64_t dirty_bytes;      /* guest memory dirty now */
	uint64_t device_bytes;     /* device state still to move */
	/*
	 * What the digests read inside the downtime, per core (strict: the
	 * source's pass and the destination's; 0 otherwise).
	 */
	uint64_t verify_bytes;
	double verify_rate;        /* bytes per second, 0: DIGEST_RATE */
	uint64_t downtime_limit_us;
	uint32_t iterations;       /* iterations done, this one included */
	uint32_t max_iterations;
	bool force;                /* switch over at max_iterations anyway */
};

enum vmig_converge_action {
	VMIG_CONVERGE_CONTINUE,    /* one more iteration */
	VMIG_CONVERGE_SWITCHOVER,  /* stop the guest, send the rest */
	VMIG_CONVERGE_GIVE_UP,     /* fail: the guest stays on the source */
};

enum vmig_converge_reason {
	VMIG_CONVERGE_WITHIN_LIMIT,  /* expected downtime <= the limit */
	VMIG_CONVERGE_OVER_LIMIT,    /* over it, iterations remain */
	VMIG_CONVERGE_FORCED,        /* over it, max_iterations, force */
	VMIG_CONVERGE_MAX_ITERATIONS, /* over it, max_iterations: give up */
};

/* The parts of the expected downtime. */
enum vmig_converge_part {
	VMIG_CONVERGE_MEMORY,      /* memory still dirty */
	VMIG_CONVERGE_DEVICES,     /* device state */
	VMIG_CONVERGE_VERIFY,      /* the digests */
	VMIG_CONVERGE_NR_PARTS,
};

struct vmig_converge_decision {
	enum vmig_converge_action action;
	enum vmig_converge_reason reason;
	/* The whole expected downtime; UINT64_MAX: unknown (no rate yet). */
	uint64_t expected_us;
	/* Each part alone (UINT64_MAX: unknown). */
	uint64_t part_us[VMIG_CONVERGE_NR_PARTS];
	uint64_t limit_us;
	/* expected_us - limit_us when over the limit, else 0. */
	uint64_t over_us;
	/* The largest part (the one to blame when over the limit). */
	enum vmig_converge_part main;
};

/* Decides what comes after a sync. */
void vmig_converge_decide(const struct vmig_converge_input *in,
			  struct vmig_converge_decision *out);

/* "memory still dirty", "device state", "verification". */
const char *vmig_converge_part_name(enum vmig_converge_part part);

/* "continue", "switch over", "give up". */
const char *vmig_converge_action_name(enum vmig_converge_action action);

/*
 * The decision in words, for a log: "expected downtime 812 ms, over the
 * 300 ms limit by 512 ms: memory still dirty 700 ms, device state 100 ms,
 * verification 12 ms". Returns what snprintf returns.
 */
int vmig_converge_describe(const struct vmig_converge_decision *d, char *buf,
			   size_t len);

#endif /* VMIG_CORE_CONVERGE_H */
