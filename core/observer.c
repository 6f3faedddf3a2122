/*
 * observer.c: the session's observer (vmig_set_observer).
 *
 * One set of callbacks at the points of dirty tracking where what the
 * guest wrote can be checked against what the sources reported: tracking
 * started, before and after each sync, after each call of the VMM that a
 * migration ran between two syncs. A simulated kernel's ground truth plugs
 * in here; vmig itself only counts, after each observed sync, what every
 * source reported, judged by the written pages the observer gives.
 */
#include <errno.h>
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
	if (s->observer.tracking_started)
		s->observer.tracking_started(s->observer_opaque);
}

void vmig_observe_sync(vmig_session *s, bool after, bool ok)
{
	struct vmig_sync_truth t = { .size = sizeof(t) };

	if (!observed(s))
		return;
	if (!after) {
		if (s->observer.sync)
			s->observer.sync(s->observer_opaque, false, NULL);
		return;
	}
	if (s->observer.sync)
		s->observer.sync(s->observer_opaque, true, ok ? &t : NULL);
	if (!ok)
		return;
	memset(&s->synced, 0, sizeof(s->synced));
	s->synced.writes = t.writes;
	s->synced.pages_written = t.pages_written;
	s->synced.pages_missed = t.pages_missed;
	s->synced.pages_reported = vmig_dirty_account(s, t.written);
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
