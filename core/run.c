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

#include "../tests/ksim/ksim.h"
#include "engine.h"

#define GUEST_STEP_US 250u /* the simulated guest's pace */
/*
 * The simulated guest's steps between two pre-copy syncs: exactly this
 * many, however fast or loaded the machine is, so that every iteration
 * sees writes and none sees more than this many steps' worth.
 */
#define GUEST_STEPS_PER_SYNC 8u

/* ------------------------------------------------------------------ */
/* Reports                                                             */

static int write_report(vmig_session *s, const char *path)
{
	char *tmp = NULL, *buf;
	int64_t len;
	int fd, ret = 0;

	len = vmig_report_json(s, NULL, 0);
	if (len < 0)
		return vmig_fail(s, (int)len, "report: %s",
				 vmig_strerror((int)len));
	buf = malloc((size_t)len + 1);
	if (!buf)
		return -ENOMEM;
	vmig_report_json(s, buf, (size_t)len + 1);
	buf[len] = '\n';
	/* Written aside and renamed: a reader never sees half a report. */
	if (asprintf(&tmp, "%s.tmp.%d", path, (int)getpid()) < 0) {
		free(buf);
		return -ENOMEM;
	}
	fd = open(tmp, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
	if (fd < 0) {
		ret = vmig_fail(s, -errno, "report %s: %s", path,
				vmig_strerror(-errno));
		goto out;
	}
	if (write(fd, buf, (size_t)len + 1) != len + 1) {
		ret = vmig_fail(s, -EIO, "report %s: short write", path);
		close(fd);
		unlink(tmp);
		goto out;
	}
	if (close(fd) < 0 || rename(tmp, path) < 0) {
		ret = vmig_fail(s, -errno, "report %s: %s", path,
				vmig_strerror(-errno));
		unlink(tmp);
	}
out:
	free(tmp);
	free(buf);
	return ret;
}

/* ------------------------------------------------------------------ */
/* A tracking run                                                      */

static int track_run(vmig_session *s)
{
	struct vmig_run_stats *st = &s->stats;
	struct vmig_truth *t = NULL;
	uint64_t start;
	uint32_t i;
	size_t r;
	int ret;

	if (s->role != VMIG_ROLE_SOURCE)
		return vmig_fail(s, -EINVAL,
				 "run: a tracking run needs a source session");
	free(st->iters);
	memset(st, 0, sizeof(*st));
	st->iters = calloc(s->run_iterations ? s->run_iterations : 1,
			   sizeof(*st->iters));
	if (!st->iters)
		return -ENOMEM;
	ret = vmig_truth_new(s, false, &t);
	if (ret < 0)
		return ret;
	st->truth = t != NULL;

	start = vmig_now_us();
	ret = vmig_tracking_start(s);
	if (ret < 0)
		goto out;
	/*
	 * Iteration 0 of a migration sends all of memory; here it is taken
	 * as sent, and what the devices wrote before is forgotten.
	 */
	for (r = 0; r < s->nr_regions; r++)
		vmig_dirty_clear(s, (uint32_t)r);
	vmig_truth_reset(t);

	for (i = 0; i < s->run_iterations; i++) {
		struct vmig_iter_stats *it = &st->iters[i];
		struct vmig_progress p = { .size = sizeof(p) };
		uint64_t t0 = vmig_now_us();
		int64_t n;

		it->iteration = i + 1;
		if (t) {
			ksim_step(s->ksim);
			vmig_truth_drain(t);
		}
		n = vmig_dirty_sync(s);
		if (n < 0) {
			ret = (int)n;
			break;
		}
		if (t)
			vmig_truth_compare(t, it);
		else
			it->pages_reported += vmig_dirty_account(s, NULL);
		it->duration_us = vmig_now_us() - t0;
		st->nr_iters++;
		st->pages_written += it->pages_written;
		st->pages_reported += it->pages_reported;
		st->pages_missed += it->pages_missed;
		for (r = 0; r < s->nr_regions; r++)
			vmig_dirty_clear(s, (uint32_t)r);
		if (s->progress) {
			p.iteration = it->iteration;
			p.pages_dirty = (uint64_t)n;
			p.bytes_left = (uint64_t)n * VMIG_PAGE_SIZE;
			p.dirty_rate = it->duration_us
					       ? (uint64_t)n *
							 VMIG_PAGE_SIZE *
							 1000000u /
							 it->duration_us
					       : 0;
			s->progress(s->progress_opaque, &p);
		}
	}
	vmig_tracking_stop(s);
	st->duration_us = vmig_now_us() - start;
	st->valid = true;
out:
	vmig_truth_free(t);
	return ret;
}

/* ------------------------------------------------------------------ */
/* The simulated guest                                                 */

/*
 * With the simulated kernel, the guest is this thread: while it "runs",
 * the simulated devices write guest memory every GUEST_STEP_US, in
 * GUEST_STEPS_PER_SYNC steps between two syncs of the migration (it
 * waits for the next sync when it has taken them; the sync waits until
 * it has). The VMM's stop returns only once no step is under way, so no
 * write follows it.
 */
struct sim_guest {
	struct ksim *k;
	pthread_t thread;
	pthread_mutex_t lock;
	pthread_cond_t cond;
	bool running;
	bool stepping;
	bool quit;
	bool lockstep; /* a migration's syncs pace the steps */
	bool granted;  /* a sync allowed steps already */
	uint64_t steps;
	uint64_t allowed; /* with lockstep: steps before the next sync */
};

/*
 * The engine's hook around each pre-copy sync (see struct sim_guest):
 * before it, waits until the guest took this interval's steps; after it
 * (the sync and its ground truth done), allows the next interval's, so
 * that no step of the next interval lands in this one.
 */
static void guest_sync(void *opaque, bool after)
{
	struct sim_guest *g = opaque;

	pthread_mutex_lock(&g->lock);
	/*
	 * The first interval's steps are allowed at its end: what the guest
	 * did before tracking started (its steps before the first sync) is
	 * not this interval's.
	 */
	if (after || !g->granted) {
		g->allowed = g->steps + GUEST_STEPS_PER_SYNC;
		g->granted = true;
		pthread_cond_broadcast(&g->cond);
	}
	if (!after)
		while (g->running && !g->quit && g->steps < g->allowed)
			pthread_cond_wait(&g->cond, &g->lock);
	pthread_mutex_unlock(&g->lock);
}

static void *guest_main(void *opaque)
{
	struct sim_guest *g = opaque;
	struct timespec ts = { 0, GUEST_STEP_US * 1000 };

	pthread_mutex_lock(&g->lock);
	while (!g->quit) {
		if (!g->running || (g->lockstep && g->steps >= g->allowed)) {
			pthread_cond_wait(&g->cond, &g->lock);
			continue;
		}
		g->stepping = true;
		pthread_mutex_unlock(&g->lock);
		ksim_step(g->k);
		pthread_mutex_lock(&g->lock);
		g->stepping = false;
		g->steps++;
		pthread_cond_broadcast(&g->cond);
		pthread_mutex_unlock(&g->lock);
		nanosleep(&ts, NULL);
		pthread_mutex_lock(&g->lock);
	}
	pthread_mutex_unlock(&g->lock);
	return NULL;
}

static int guest_stop(void *opaque)
{
	struct sim_guest *g = opaque;

	pthread_mutex_lock(&g->lock);
	g->running = false;
	while (g->stepping)
		pthread_cond_wait(&g->cond, &g->lock);
	pthread_mutex_unlock(&g->lock);
	return 0;
}

static int guest_resume(void *opaque)
{
	struct sim_guest *g = opaque;

	pthread_mutex_lock(&g->lock);
	g->running = true;
	/* The migration is over: no sync paces the guest any more. */
	g->lockstep = false;
	pthread_cond_broadcast(&g->cond);
	pthread_mutex_unlock(&g->lock);
	return 0;
}

static int guest_start(void *opaque)
{
	(void)opaque;
	return 0;
}

static int guest_init(struct sim_guest *g, struct ksim *k)
{
	memset(g, 0, sizeof(*g));
	g->k = k;
	g->running = true;
	g->lockstep = true;
	g->allowed = GUEST_STEPS_PER_SYNC;
	pthread_mutex_init(&g->lock, NULL);
	pthread_cond_init(&g->cond, NULL);
	if (pthread_create(&g->thread, NULL, guest_main, g)) {
		pthread_cond_destroy(&g->cond);
		pthread_mutex_destroy(&g->lock);
		return -EAGAIN;
	}
	return 0;
}

static void guest_fini(struct sim_guest *g)
{
	pthread_mutex_lock(&g->lock);
	g->quit = true;
	pthread_cond_broadcast(&g->cond);
	pthread_mutex_unlock(&g->lock);
	pthread_join(g->thread, NULL);
	pthread_cond_destroy(&g->cond);
	pthread_mutex_destroy(&g->lock);
}

/* ------------------------------------------------------------------ */
/* Migrations                                                          */

/* The local destination logs through the source's callback. */
static void dst_log(void *opaque, enum vmig_log_level level, const char *msg)
{
	vmig_session *s = opaque;

	if (!strncmp(msg, "destination: ", 13))
		vmig_logf(s, (int)level, "%s", msg);
	else
		vmig_logf(s, (int)level, "destination: %s", msg);
}

/* Builds the destination of a local run from the same document. */
static int local_destination(vmig_session *s, vmig_session **out)
{
	struct vmig_engine *e = s->engine;
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
	size_t i;
	int ret;

	*out = NULL;
	if (!e->config_text)
		return vmig_fail(s, -EINVAL,
				 "run: a local migration builds its destination "
				 "from the configuration "
				 "(vmig_session_configure)");
	ret = vmig_config_parse(e->config_text, e->config_len,
				e->config_base, &cfg, err, sizeof(err));
	if (ret < 0)
		return vmig_fail(s, ret, "run: local destination: %s", err);
	ret = vmig_session_new(&p, &d);
	if (ret < 0) {
		vmig_config_free(cfg);
		return vmig_fail(s, ret, "run: local destination: %s",
				 vmig_strerror(ret));
	}
	/* Wherever the source found its plugins, so does the mirror. */
	for (i = 0; i < vmig_pluginset_count(s->plugins); i++) {
		const char *path = vmig_pluginset_path(s->plugins, i);
		char *dir;

		if (!path || !(dir = strdup(path)))
			continue;
		vmig_plugin_add_path(d, dirname(dir));
		free(dir);
	}
	ret = vmig_session_configure(d, cfg);
	vmig_config_free(cfg);
	if (ret < 0) {
		ret = vmig_fail(s, ret, "run: local destination: %s",
				vmig_errmsg(d));
		vmig_session_free(d);
		return ret;
	}
	d->role = VMIG_ROLE_DESTINATION;
	/* Faults the document injects are meant for the source. */
	if (d->ksim)
		ksim_fail_clear(d->ksim);
	*out = d;
	return 0;
}

/* Local mode: destination pages that differ from the source's. */
static void compare_memories(vmig_session *s, vmig_session *d)
{
	struct vmig_mig_stats *st = &s->engine->st;
	size_t i, j;
	uint64_t pg;

	st->pages_differing = 0;
	for (i = 0; i < s->nr_regions; i++) {
		const struct vmig_region_rec *a = &s->regions[i];
		const struct vmig_region_rec *b = NULL;

		for (j = 0; j < d->nr_regions; j++) {
			if (d->regions[j].gpa == a->gpa &&
			    d->regions[j].length == a->length)
				b = &d->regions[j];
		}
		if (!b) {
			st->pages_differing += a->npages;
			continue;
		}
		for (pg = 0; pg < a->npages; pg++) {
			if (memcmp(a->hva + pg * VMIG_PAGE_SIZE,
				   b->hva + pg * VMIG_PAGE_SIZE,
				   VMIG_PAGE_SIZE))
				st->pages_differing++;
		}
	}
	st->differing_known = true;

	/*
	 * Simulated devices whose state travelled: the destination's must
	 * now be the source's (the source's is stopped, the destination's
	 * was restored from the stream and nothing stepped it since).
	 */
	st->devices_differing = 0;
	for (i = 0; s->ksim && d->ksim && i < s->nr_devices; i++) {
		const struct vmig_device_rec *dev = s->devices[i];
		struct ksim_device *ks, *kd;

		if (!dev->present || !dev->mig_state)
			continue;
		ks = ksim_device_find(s->ksim, dev->address);
		kd = ksim_device_find(d->ksim, dev->address);
		if (!ks || !kd || ksim_device_state_digest(ks) !=
					  ksim_device_state_digest(kd)) {
			vmig_logf(s, VMIG_LOG_ERROR,
				  "run: device %s: the destination's state "
				  "differs from the source's",
				  dev->name);
			st->devices_differing++;
		}
	}
}

/* A source run, local or to the configured transport. */
static int migrate_run(vmig_session *s, bool local)
{
	struct vmig_engine *e = s->engine;
	struct vmig_vmm_ops saved = e->vmm;
	void *saved_opaque = e->vmm_opaque;
	bool saved_have = e->have_vmm, simulated = false;
	struct sim_guest g;
	vmig_session *d = NULL;
	int ret;

	if (!local && !e->transport)
		return vmig_fail(s, -EINVAL, "run: no transport to migrate to");
	if (e->local_dst) {
		vmig_session_free(e->local_dst);
		e->local_dst = NULL;
	}
	if (local) {
		ret = local_destination(s, &d);
		if (ret < 0)
			return ret;
		e->local_dst = d;
	}
	if (!e->have_vmm) {
		if (!s->ksim)
			return vmig_fail(s, -EINVAL,
					 "run: no VMM callbacks (vmig_set_vmm_"
					 "ops) to stop and resume the guest");
		ret = guest_init(&g, s->ksim);
		if (ret < 0)
			return vmig_fail(s, ret, "run: cannot start the "
					 "simulated guest");
		simulated = true;
		e->vmm.size = sizeof(e->vmm);
		e->vmm.stop = guest_stop;
		e->vmm.resume = guest_resume;
		e->vmm.start = guest_start;
		e->vmm_opaque = &g;
		e->have_vmm = true;
		e->sync_hook = guest_sync;
		e->sync_opaque = &g;
	}
	ret = vmig_truth_new(s, true, &e->truth);
	if (ret == 0)
		ret = local ? vmig_migrate_local(s, d)
			    : vmig_migrate(s, e->transport);
	if (simulated) {
		/* Whatever happened, the guest thread ends here. */
		guest_stop(&g);
		guest_fini(&g);
		e->sync_hook = NULL;
		e->sync_opaque = NULL;
		e->vmm = saved;
		e->vmm_opaque = saved_opaque;
		e->have_vmm = saved_have;
		/*
		 * The simulated guest cannot ask its peer whether it
		 * started, so the outcome stays unresolved, as the report
		 * says. Its callbacks pointed at the guest just freed:
		 * none are left (the caller had none), and vmig_resolve()
		 * refuses to resume, saying why, rather than call them.
		 */
		if (e->unresolved)
			e->vmm_gone = true;
	}
	vmig_truth_free(e->truth);
	e->truth = NULL;
	if (local && ret == 0) {
		compare_memories(s, d);
		if (e->st.pages_differing)
			ret = vmig_fail(s, VMIG_EMISMATCH,
					"run: %llu page(s) of the destination "
					"differ from the source",
					(unsigned long long)
						e->st.pages_differing);
		else if (e->st.devices_differing)
			ret = vmig_fail(s, VMIG_EMISMATCH,
					"run: the state of %llu device(s) of "
					"the destination differs from the "
					"source",
					(unsigned long long)
						e->st.devices_differing);
	}
	return ret;
}

static int receive_run(vmig_session *s)
{
	struct vmig_engine *e = s->engine;
	int ret;

	if (!e->listener) {
		if (!e->transport)
			return vmig_fail(s, -EINVAL,
					 "run: no transport to listen on");
		ret = vmig_listen(s, e->transport, NULL, 0);
		if (ret < 0)
			return ret;
	}
	return vmig_receive(s);
}

VMIG_API int vmig_run(vmig_session *s, const char *report_path)
{
	struct vmig_engine *e;
	int ret, wret;

	if (!s)
		return -EINVAL;
	if (!report_path)
		report_path = s->report_path;
	if (s->run_track_only) {
		ret = track_run(s);
	} else {
		e = vmig_engine_get(s);
		if (!e)
			return -ENOMEM;
		if (s->role == VMIG_ROLE_DESTINATION)
			ret = receive_run(s);
		else
			ret = migrate_run(s, e->local || !e->transport);
	}
	if (report_path) {
		char msg[sizeof(s->errmsg)];

		/* The run's message survives a report written fine. */
		memcpy(msg, s->errmsg, sizeof(msg));
		wret = write_report(s, report_path);
		if (ret == 0)
			ret = wret;
		else
			memcpy(s->errmsg, msg, sizeof(msg));
	}
	if (ret == 0 && s->stats.truth && s->stats.pages_missed)
		ret = vmig_fail(s, VMIG_EMISSED,
				"run: %llu written page(s) were not reported",
				(unsigned long long)s->stats.pages_missed);
	return ret;
}
