/*
 * observer.c: the session's observer (vmig_set_observer).
 *
 * One set of callbacks at the points of dirty tracking where what the
 * guest wrote can be checked against what the sources reported: tracking
 * started, before and after each sync, after each call of the VMM that a
 * migration ran between two syncs. A simulated kernel's ground truth plugs
 * in here; vmig itself counts, after each observed sync, what every
 * source reported, judged by the written pages the observer gives, and
 * records observed tracking outside a migration (from its start, each
 * sync an iteration) as a tracking run, which the report describes.
 */
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "engine.h"
#include "internal.h"

VMIG_API int vmig_set_observer(vmig_session *s,
			       const struct vmig_observer *obs, void *opaque)
{
	if (!s)
		return -EINVAL;
	if (vmig_engine_running(s))
		return vmig_fail(s, -EBUSY, "observer: a migration runs");
	memset(&s->observer, 0, sizeof(s->observer));
	s->observer_opaque = NULL;
	if (!obs)
		return 0;
	if (!VMIG_HAS_FIELD(obs, struct vmig_observer, vmm_call_done))
		return vmig_fail(s, -EINVAL,
				 "observer: size field too small");
	if (obs->flags & ~VMIG_OBSERVER_TRUTH)
		return vmig_fail(s, -EINVAL, "observer: unknown flags 0x%x",
				 obs->flags & ~VMIG_OBSERVER_TRUTH);
	memcpy(&s->observer, obs,
	       obs->size < sizeof(s->observer) ? obs->size
					       : sizeof(s->observer));
	s->observer.size = sizeof(s->observer);
	s->observer_opaque = opaque;
	return 0;
}

static bool observed(const vmig_session *s)
{
	return s->observer.size != 0;
}

bool vmig_observer_judges(const vmig_session *s)
{
	return observed(s) && (s->observer.flags & VMIG_OBSERVER_TRUTH);
}

/*
 * Tracking started outside a migration (a migration keeps its own
 * figures): the observed syncs that follow are a tracking run's
 * iterations, in the report.
 */
static void track_begin(vmig_session *s)
{
	struct vmig_run_stats *st = &s->stats;

	free(st->iters);
	memset(st, 0, sizeof(*st));
	st->truth = vmig_observer_judges(s);
	st->valid = true;
	s->track_recording = true;
	s->track_start_us = vmig_now_us();
}

void vmig_observe_tracking_started(vmig_session *s)
{
	size_t i;

	if (!observed(s))
		return;
	if (vmig_observer_judges(s)) {
		/* Tracking's start marked everything: not a report to judge. */
		vmig_dirty_account(s, NULL);
		for (i = 0; i < s->nr_sources; i++) {
			s->sources[i].pages_reported = 0;
			s->sources[i].pages_unwritten = 0;
		}
		s->vmig_reported = 0;
		s->vmig_unwritten = 0;
	}
	s->track_recording = false;
	if (!vmig_engine_running(s))
		track_begin(s);
	if (s->observer.tracking_started)
		s->observer.tracking_started(s->observer_opaque);
}

void vmig_observe_sync_before(vmig_session *s)
{
	if (!observed(s))
		return;
	s->sync_start_us = vmig_now_us();
	if (s->observer.sync)
		s->observer.sync(s->observer_opaque, false, NULL);
}

/* The progress callback of a tracking run, after each sync. */
static void track_progress(vmig_session *s, const struct vmig_iter_stats *it,
			   uint64_t n)
{
	struct vmig_progress p = { .size = sizeof(p) };

	if (!s->progress)
		return;
	p.iteration = it->iteration;
	p.pages_dirty = n;
	p.bytes_left = n * VMIG_PAGE_SIZE;
	p.dirty_rate = it->duration_us ? n * VMIG_PAGE_SIZE * 1000000u /
						 it->duration_us
				       : 0;
	s->progress(s->progress_opaque, &p);
}

/* An observed sync of a tracking run, as its next iteration. */
static void track_record(vmig_session *s, uint64_t n)
{
	struct vmig_run_stats *st = &s->stats;
	struct vmig_iter_stats *it = vmig_stats_iter_add(s);
	uint64_t now = vmig_now_us();

	st->duration_us = now - s->track_start_us;
	if (!it)
		return;
	*it = s->synced;
	it->iteration = (uint32_t)st->nr_iters;
	it->duration_us = now - s->sync_start_us;
	st->pages_written += it->pages_written;
	st->pages_reported += it->pages_reported;
	st->pages_missed += it->pages_missed;
	track_progress(s, it, n);
}

void vmig_observe_sync_after(vmig_session *s, int64_t n)
{
	struct vmig_sync_truth t = { .size = sizeof(t) };

	if (!observed(s))
		return;
	if (s->observer.sync)
		s->observer.sync(s->observer_opaque, true, n >= 0 ? &t : NULL);
	if (n < 0)
		return;
	memset(&s->synced, 0, sizeof(s->synced));
	s->synced.writes = t.writes;
	s->synced.pages_written = t.pages_written;
	s->synced.pages_missed = t.pages_missed;
	s->synced.pages_reported = vmig_dirty_account(s, t.written);
	if (s->track_recording && !vmig_engine_running(s))
		track_record(s, (uint64_t)n);
}

void vmig_observe_vmm_call(vmig_session *s)
{
	if (observed(s) && s->observer.vmm_call_done)
		s->observer.vmm_call_done(s->observer_opaque);
}

void vmig_sync_figures(vmig_session *s, struct vmig_iter_stats *it)
{
	if (!observed(s)) {
		it->pages_reported += vmig_dirty_account(s, NULL);
		return;
	}
	it->writes += s->synced.writes;
	it->pages_written += s->synced.pages_written;
	it->pages_reported += s->synced.pages_reported;
	it->pages_missed += s->synced.pages_missed;
}
