/*
 * truth.h: the simulated kernel's ground truth, as a session observer.
 *
 * truth.c compares what a session's dirty sources reported with what the
 * simulated devices really wrote (ksim_truth_drain). It plugs into the
 * library through the observer (vmig_set_observer): reset when tracking
 * starts, drain before each sync, compare after it, settle after each
 * call of the VMM. A caller that composes it with other observers (a
 * simulated guest paced by the syncs) calls these functions from its own.
 */
#ifndef VMIG_SIM_TRUTH_H
#define VMIG_SIM_TRUTH_H

#include <stdbool.h>

#include <vmig/vmig.h>

struct ksim;
struct vmig_truth;

/*
 * The ground truth of session s, whose kernel is k. concurrent: the
 * devices write while a migration runs (a page written in an interval
 * must be in that sync's report or the one before), else strictly.
 * Returns 0 or -ENOMEM.
 */
int vmig_truth_new(vmig_session *s, struct ksim *k, bool concurrent,
		   struct vmig_truth **out);
void vmig_truth_free(struct vmig_truth *t);

/*
 * Forgets every write so far (what tracking's start covers): call right
 * after tracking starts. Every later write is checked, from the first
 * pass on.
 */
void vmig_truth_reset(struct vmig_truth *t);

/* Collects the writes made since the last call: call before a sync. */
void vmig_truth_drain(struct vmig_truth *t);

/*
 * After a sync: compares the writes collected with what this sync (and,
 * with concurrent writers, the sync before it) reported, into out's
 * writes, pages_written and pages_missed; out->written is what counts as
 * written when the sources' reports are judged, valid until the next
 * call on t.
 */
void vmig_truth_compare(struct vmig_truth *t, struct vmig_sync_truth *out);

/*
 * After a call of the VMM that may have marked pages dirty between two
 * syncs: what was written so far to pages dirty now counts as reported
 * (the engine sends them after this point).
 */
void vmig_truth_settle(struct vmig_truth *t);

/* The observer's callbacks, for a caller composing its own observer. */
void vmig_truth_on_sync(struct vmig_truth *t, bool after,
			struct vmig_sync_truth *out);

/*
 * Sets t as s's observer (VMIG_OBSERVER_TRUTH), or clears it (t NULL).
 * Returns vmig_set_observer's result.
 */
int vmig_truth_observe(vmig_session *s, struct vmig_truth *t);

#endif /* VMIG_SIM_TRUTH_H */
