/*
 * run.c: running what a configuration says (vmig_run).
 *
 * With run.mode "track", a tracking run: start every dirty source, let the
 * simulated devices write, sync the configured number of times and
 * compare what was reported with what was written (truth.c), strictly:
 * nothing writes between a drain and its sync. Otherwise a live migration
 * as the role says: "local" builds a destination session from the same
 * document (its own memory and, with the simulated kernel, its own copy
 * of every device) and migrates into it over a socket pair; "source"
 * migrates to the configured transport; "destination" listens there and
 * receives. With the simulated kernel and no VMM callbacks of the
 * embedder, the source's guest is a workload thread that makes the
 * simulated devices write continuously while the guest "runs" (stopped by
 * the switchover, run again on failure), and the report gives the ground
 * truth of every sync and, in local mode, the page-by-page comparison of
 * both memories.
 */
#include <errno.h>
#include <fcntl.h>
#include <libgen.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "config.h"
#include "core/engine.h"
#include "core/internal.h"
#include "ksim/ksim.h"
#include "sim/guest.h"
#include "sim/truth.h"
#include "tool.h"

#define GUEST_STEP_US 250u /* the simulated guest's pace */
/*
 * The simulated guest's steps between two pre-copy syncs: exactly this
 * many, however fast or loaded the machine is, so that every iteration
 * sees writes and none sees more than this many steps' worth.
 */
#define GUEST_STEPS_PER_SYNC 8u

/* ------------------------------------------------------------------ */
/* The session's observer while it runs                                */

/*
 * The ground truth (when the kernel is simulated) around every sync,
 * composed with the simulated guest's pacing (when it drives the
 * migration): the guest takes its steps before the truth drains, and is
 * allowed the next ones once the truth has compared.
 */
struct run_observer {
	struct vmig_truth *truth; /* NULL: a real kernel */
	struct sim_guest *guest;  /* NULL: the embedder's VMM */
	uint64_t pages_missed;    /* by the truth, over the run's syncs */
};

static void observe_started(void *opaque)
{
	struct run_observer *o = opaque;

	if (o->truth)
		vmig_truth_reset(o->truth);
}

static void observe_sync(void *opaque, bool after,
			 struct vmig_sync_truth *truth)
{
	struct run_observer *o = opaque;

	if (!after && o->guest)
		sim_guest_sync(o->guest, false);
	if (o->truth)
		vmig_truth_on_sync(o->truth, after, truth);
	if (after && truth)
		o->pages_missed += truth->pages_missed;
	if (after && o->guest)
		sim_guest_sync(o->guest, true);
}

static void observe_call(void *opaque)
{
	struct run_observer *o = opaque;

	if (o->truth)
		vmig_truth_settle(o->truth);
}

/* Observes s with o for a run; the caller's observer comes back after. */
static int observe(vmig_session *s, struct run_observer *o)
{
	struct vmig_observer obs = {
		.size = sizeof(obs),
		.flags = o->truth ? VMIG_OBSERVER_TRUTH : 0,
		.tracking_started = observe_started,
		.sync = observe_sync,
		.vmm_call_done = observe_call,
	};

	return vmig_set_observer(s, &obs, o);
}

/* ------------------------------------------------------------------ */
/* A tracking run                                                      */

/* Clears every region's dirty bitmap: what was found counts as sent. */
static void clear_all(vmig_session *s)
{
	uint32_t r;

	for (r = 0; r < s->nr_regions; r++)
		vmig_dirty_clear(s, r);
}

/*
 * Steps the simulated devices, then syncs, the given number of times;
 * libvmig records each observed sync as an iteration of the run.
 */
static int track_iterations(vmig_session *s, struct ksim *k,
			    uint32_t iterations)
{
	uint32_t i;
	int64_t n;

	for (i = 0; i < iterations; i++) {
		if (k)
			ksim_step(k);
		n = vmig_dirty_sync(s);
		if (n < 0)
			return (int)n;
		clear_all(s);
	}
	return 0;
}

static int track_run(vmig_session *s, const struct vmig_tool_state *tst,
		     struct run_observer *o)
{
	uint32_t iterations = tst ? tst->run_iterations : 5;
	struct ksim *k = tst ? tst->ksim : NULL;
	int ret;

	if (s->role != VMIG_ROLE_SOURCE)
		return tool_fail(s, -EINVAL, "run: a tracking run needs "
				 "a source session");
	ret = vmig_truth_new(s, k, false, &o->truth);
	if (ret == 0)
		ret = observe(s, o);
	if (ret < 0)
		goto out;
	/*
	 * Iteration 0 of a migration sends all of memory; here it is taken
	 * as sent, and what the devices wrote before is forgotten (by the
	 * truth, when tracking starts).
	 */
	ret = vmig_tracking_start(s);
	if (ret < 0)
		goto out;
	clear_all(s);
	ret = track_iterations(s, k, iterations);
	vmig_tracking_stop(s);
out:
	vmig_set_observer(s, NULL, NULL);
	vmig_truth_free(o->truth);
	o->truth = NULL;
	return ret;
}

/* ------------------------------------------------------------------ */
/* Migrations                                                          */

/* The local destination logs through the source's callback. */
static void dst_log(void *opaque, enum vmig_log_level level, const char *msg)
{
	vmig_session *s = opaque;

	if (!strncmp(msg, "destination: ", 13))
		tool_logf(s, (int)level, "%s", msg);
	else
		tool_logf(s, (int)level, "destination: %s", msg);
}

/*
 * Wherever the source finds its plugins, so does the mirror: the
 * directories of every plugin the source's search finds, in its order.
 */
static void plugin_dir(void *opaque, const struct vmig_plugin_info *info)
{
	vmig_session *d = opaque;
	char *dir;

	if (!info->path || !(dir = strdup(info->path)))
		return;
	vmig_plugin_add_path(d, dirname(dir));
	free(dir);
}

/* Builds the destination of a local run from the same document. */
static int local_destination(vmig_session *s,
			     const struct vmig_tool_state *tst,
			     vmig_session **out)
{
	struct vmig_session_params p = {
		.size = sizeof(p),
		.role = VMIG_ROLE_DESTINATION,
		.log = dst_log,
		.log_opaque = s,
		.log_level = s->log_level,
	};
	vmig_config *cfg;
	vmig_session *d;
	char err[512];
	int ret;

	*out = NULL;
	if (!tst || !tst->config_text)
		return tool_fail(s, -EINVAL,
				 "run: a local migration builds its "
				 "destination from the configuration "
				 "(vmig_session_configure)");
	ret = vmig_config_parse(tst->config_text, tst->config_len,
				tst->config_base, &cfg, err, sizeof(err));
	if (ret < 0)
		return tool_fail(s, ret, "run: local destination: %s",
				 err);
	ret = vmig_session_new(&p, &d);
	if (ret < 0) {
		vmig_config_free(cfg);
		return tool_fail(s, ret, "run: local destination: %s",
				 vmig_strerror(ret));
	}
	vmig_plugins_scan(s, plugin_dir, d);
	ret = vmig_session_configure(d, cfg);
	vmig_config_free(cfg);
	if (ret < 0) {
		ret = tool_fail(s, ret, "run: local destination: %s",
				vmig_errmsg(d));
		vmig_session_free(d);
		return ret;
	}
	d->role = VMIG_ROLE_DESTINATION;
	/* Faults the document injects are meant for the source. */
	if (vmig_tool_ksim(d))
		ksim_fail_clear(vmig_tool_ksim(d));
	*out = d;
	return 0;
}

/* Local mode: destination pages that differ from the source's. */
static uint64_t pages_differing(vmig_session *s, vmig_session *d)
{
	uint64_t n = 0, pg;
	size_t i, j;

	for (i = 0; i < s->nr_regions; i++) {
		const struct vmig_region_rec *a = &s->regions[i];
		const struct vmig_region_rec *b = NULL;

		for (j = 0; j < d->nr_regions; j++) {
			if (d->regions[j].gpa == a->gpa &&
			    d->regions[j].length == a->length)
				b = &d->regions[j];
		}
		if (!b) {
			n += a->npages;
			continue;
		}
		for (pg = 0; pg < a->npages; pg++) {
			if (memcmp(a->hva + pg * VMIG_PAGE_SIZE,
				   b->hva + pg * VMIG_PAGE_SIZE,
				   VMIG_PAGE_SIZE))
				n++;
		}
	}
	return n;
}

/*
 * Simulated devices whose state travelled: the destination's must now be
 * the source's (the source's is stopped, the destination's was restored
 * from the stream and nothing stepped it since).
 */
static uint64_t devices_differing(vmig_session *s, vmig_session *d)
{
	struct ksim *sk = vmig_tool_ksim(s), *dk = vmig_tool_ksim(d);
	uint64_t n = 0;
	size_t i;

	for (i = 0; sk && dk && i < s->nr_devices; i++) {
		const struct vmig_device_rec *dev = s->devices[i];
		struct ksim_device *ks, *kd;

		if (!dev->present || !dev->mig_state)
			continue;
		ks = ksim_device_find(sk, dev->address);
		kd = ksim_device_find(dk, dev->address);
		if (!ks || !kd || ksim_device_state_digest(ks) !=
					  ksim_device_state_digest(kd)) {
			tool_logf(s, VMIG_LOG_ERROR,
				  "run: device %s: the destination's "
				  "state differs from the source's",
				  dev->name);
			n++;
		}
	}
	return n;
}

/* Local mode: compares both ends, for the report. */
static void compare_memories(vmig_session *s, vmig_session *d)
{
	struct vmig_mig_stats *st = &s->engine->st;

	st->pages_differing = pages_differing(s, d);
	st->differing_known = true;
	st->devices_differing = devices_differing(s, d);
}

/* The migration itself, under the run's observer. */
static int migrate_observed(vmig_session *s, const char *transport,
			    vmig_session *d, struct run_observer *o)
{
	int ret;

	ret = vmig_truth_new(s, vmig_tool_ksim(s), true, &o->truth);
	if (ret == 0 && (o->truth || o->guest))
		ret = observe(s, o);
	if (ret == 0)
		ret = d ? vmig_migrate_local(s, d) : vmig_migrate(s, transport);
	vmig_set_observer(s, NULL, NULL);
	vmig_truth_free(o->truth);
	o->truth = NULL;
	return ret;
}

/*
 * Migrates with the simulated guest as the VMM: it drives the simulated
 * kernel's devices while it runs, and ends with the call.
 */
static int migrate_simulated(vmig_session *s, const char *transport,
			     vmig_session *d, struct run_observer *o)
{
	struct vmig_engine *e = s->engine;
	struct sim_guest_params gp = {
		.k = vmig_tool_ksim(s),
		.step_us = GUEST_STEP_US,
		.steps_per_sync = GUEST_STEPS_PER_SYNC,
		.lockstep = true,
	};
	struct sim_guest g;
	int ret;

	if (!gp.k)
		return tool_fail(s, -EINVAL,
				 "run: no VMM callbacks (vmig_set_vmm_"
				 "ops) to stop and resume the guest");
	sim_guest_init(&g, &gp);
	ret = sim_guest_spawn(&g);
	if (ret < 0) {
		sim_guest_fini(&g);
		return tool_fail(s, ret, "run: cannot start the "
				 "simulated guest");
	}
	/* Set as the session's own (an unresolved session refuses others). */
	e->vmm = sim_guest_vmm_ops;
	e->vmm_opaque = &g;
	e->have_vmm = true;
	o->guest = &g;
	ret = migrate_observed(s, transport, d, o);
	o->guest = NULL;
	/* Whatever happened, the guest thread ends here. */
	sim_guest_stop(&g);
	sim_guest_fini(&g);
	/*
	 * The simulated guest cannot ask its peer whether it started, so
	 * the outcome stays unresolved, as the report says. Its callbacks
	 * pointed at the guest just freed: none are left (the caller had
	 * none), and vmig_resolve() refuses to resume, saying why, rather
	 * than call them.
	 */
	memset(&e->vmm, 0, sizeof(e->vmm));
	e->vmm_opaque = NULL;
	e->have_vmm = false;
	if (e->unresolved)
		e->vmm_gone = true;
	return ret;
}

/* A source run, local or to the configured transport. */
static int migrate_run(vmig_session *s, const struct vmig_tool_state *tst,
		       bool local, struct run_observer *o)
{
	struct vmig_engine *e = s->engine;
	const char *transport = tst ? tst->transport : NULL;
	vmig_session *d = NULL;
	int ret;

	if (!local && !transport)
		return tool_fail(s, -EINVAL,
				 "run: no transport to migrate to");
	if (e->local_dst) {
		vmig_session_free(e->local_dst);
		e->local_dst = NULL;
	}
	if (local) {
		ret = local_destination(s, tst, &d);
		if (ret < 0)
			return ret;
		e->local_dst = d;
	}
	if (e->have_vmm)
		ret = migrate_observed(s, transport, d, o);
	else
		ret = migrate_simulated(s, transport, d, o);
	if (!local || ret != 0)
		return ret;
	compare_memories(s, d);
	if (e->st.pages_differing)
		return tool_fail(s, VMIG_EMISMATCH,
				 "run: %llu page(s) of the destination "
				 "differ from the source",
				 (unsigned long long)e->st.pages_differing);
	if (e->st.devices_differing)
		return tool_fail(s, VMIG_EMISMATCH,
				 "run: the state of %llu device(s) of "
				 "the destination differs from the "
				 "source",
				 (unsigned long long)
					      e->st.devices_differing);
	return 0;
}

static int receive_run(vmig_session *s, const struct vmig_tool_state *tst)
{
	struct vmig_engine *e = s->engine;
	int ret;

	if (!e->listener) {
		if (!tst || !tst->transport)
			return tool_fail(s, -EINVAL,
					 "run: no transport to listen on");
		ret = vmig_listen(s, tst->transport, NULL, 0);
		if (ret < 0)
			return ret;
	}
	return vmig_receive(s);
}

/* A migration as the session's role says; s has an engine. */
static int migration_run(vmig_session *s, const struct vmig_tool_state *tst,
			 struct run_observer *o)
{
	if (s->role == VMIG_ROLE_DESTINATION)
		return receive_run(s, tst);
	return migrate_run(s, tst, (tst && tst->local) ||
				   !(tst && tst->transport), o);
}

int vmig_run(vmig_session *s, const char *report_path)
{
	struct run_observer o = { 0 };
	struct vmig_tool_state *tst;
	int ret, wret;

	if (!s)
		return -EINVAL;
	tst = vmig_tool_state(s, false);
	if (!report_path && tst)
		report_path = tst->report_path;
	if (!tst || tst->run_track_only)
		ret = track_run(s, tst, &o);
	else if (!s->engine)
		ret = -ENOMEM; /* configured sessions have one */
	else
		ret = migration_run(s, tst, &o);
	if (report_path) {
		char msg[sizeof(s->errmsg)];

		/* The run's message survives a report written fine. */
		memcpy(msg, s->errmsg, sizeof(msg));
		wret = vmig_report_write(s, report_path);
		if (ret == 0)
			ret = wret;
		else
			memcpy(s->errmsg, msg, sizeof(msg));
	}
	if (ret == 0 && o.pages_missed)
		ret = tool_fail(s, VMIG_EMISSED,
				"run: %llu written page(s) were not "
				"reported",
				(unsigned long long)o.pages_missed);
	return ret;
}
