/*
 * test_devstate.c: the VFIO migration v2 driver (core/devstate.c) against
 * the simulated kernel: the source flow with and without PRE_COPY, two
 * devices ordered through the P2P states on both sides (checked arc by
 * arc), the sizes that feed convergence, the destination restoring the
 * exact state, failure at every kernel call leading back to RUNNING (or a
 * reset), cancel, data fds always closed, and a device that cannot
 * migrate.
 */
#include <errno.h>
#include <fcntl.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <linux/vfio.h>

#include "core/devstate.h"
#include <vmig/linux-uapi.h>
#include "ksim/ksim.h"
#include "unit/testutil.h"
#include "unit/ksimutil.h"

#define KiB 1024ull
#define NDEV 4

enum {
	ST_ERROR = VK_VFIO_STATE_ERROR,
	ST_STOP = VK_VFIO_STATE_STOP,
	ST_RUNNING = VK_VFIO_STATE_RUNNING,
	ST_STOP_COPY = VK_VFIO_STATE_STOP_COPY,
	ST_RESUMING = VK_VFIO_STATE_RESUMING,
	ST_RUNNING_P2P = VK_VFIO_STATE_RUNNING_P2P,
	ST_PRE_COPY = VK_VFIO_STATE_PRE_COPY,
	ST_PRE_COPY_P2P = VK_VFIO_STATE_PRE_COPY_P2P,
};

/*
 * The arcs every device takes, checked as they happen against the P2P
 * rule: no device may stop (STOP, STOP_COPY, RESUMING) while another
 * still initiates P2P DMA (RUNNING, PRE_COPY), nor start initiating while
 * another is stopped.
 */
struct watch {
	const struct ksim_device *dev[NDEV];
	int state[NDEV];
	int grp[NDEV]; /* devices of one VM: the rule holds among them */
	int n;
	int violations;
	int arcs;
	int resets; /* jumps to RUNNING no arc makes: VFIO_DEVICE_RESET */
};

static bool stopped(int s)
{
	return s == ST_STOP || s == ST_STOP_COPY || s == ST_RESUMING;
}

static bool initiates(int s)
{
	return s == ST_RUNNING || s == ST_PRE_COPY;
}

static void watch_arc(void *opaque, const struct ksim_device *d, int from,
		      int to)
{
	struct watch *w = opaque;
	int i, me = -1;

	w->arcs++;
	for (i = 0; i < w->n; i++)
		if (w->dev[i] == d)
			me = i;
	if (me < 0)
		return;
	/*
	 * A reset goes straight to RUNNING whatever the peers do: the rule
	 * cannot hold for it (several devices RESUMING can only be reset).
	 */
	if (to == ST_RUNNING && (from == ST_STOP_COPY || from == ST_RESUMING ||
				 from == ST_ERROR)) {
		w->resets++;
		w->state[me] = to;
		return;
	}
	for (i = 0; i < w->n; i++) {
		if (i == me || w->grp[i] != w->grp[me])
			continue;
		if ((stopped(to) && initiates(w->state[i])) ||
		    (initiates(to) && stopped(w->state[i])))
			w->violations++;
	}
	w->state[me] = to;
}

/* Devices of one simulated host, each in a group, with its devstate. */
struct rig {
	struct ksim *k;
	const struct vmig_host *h;
	int cfd;
	int gfd[NDEV];
	int dfd[NDEV];
	struct ksim_device *dev[NDEV];
	struct vmig_devstate *ds[NDEV];
	int n;
	struct watch w;
};

static void rig_new(struct rig *r)
{
	memset(r, 0, sizeof(*r));
	vmig_test_type1_kernel(&r->k, &r->h, &r->cfd);
	ksim_feature_set_arc_hook(r->k, watch_arc, &r->w);
}

/* A device with these features; its devstate opened when it migrates. */
static int rig_dev(struct rig *r, const char *name,
		   const struct ksim_feature_params *fp)
{
	int i = vmig_test_type1_pci(r->k, r->h, r->cfd, name, 30, fp, &r->n,
				    r->dev, r->gfd, r->dfd);

	r->w.dev[i] = r->dev[i];
	r->w.state[i] = ST_RUNNING;
	r->w.n = r->n;
	if (fp->migration)
		CU_ASSERT_FATAL(vmig_devstate_open(r->h, r->dfd[i], name,
						   &r->ds[i]) == 0);
	return i;
}

static void rig_free(struct rig *r)
{
	int i;

	for (i = 0; i < r->n; i++)
		vmig_devstate_close(r->ds[i]);
	ksim_free(r->k);
}

/*
 * After a flow cut by a failure, ret its last result: aborted where the
 * call did not abort by itself (group calls do, reads do not), both
 * devices back to RUNNING.
 */
static void expect_rolled_back(struct rig *r, int ret)
{
	if (ret == 0 || ret == -EIO)
		vmig_devstate_abort(r->ds, 2);
	CU_ASSERT(ksim_device_mig_state(r->dev[0]) == ST_RUNNING);
	CU_ASSERT(ksim_device_mig_state(r->dev[1]) == ST_RUNNING);
}

/* A growing byte buffer: one device's stream. */
struct stream {
	uint8_t *p;
	size_t len;
	size_t cap;
};

static void stream_add(struct stream *s, const void *buf, size_t n)
{
	if (s->len + n > s->cap) {
		s->cap = 2 * (s->len + n);
		s->p = realloc(s->p, s->cap);
		CU_ASSERT_FATAL(s->p != NULL);
	}
	memcpy(s->p + s->len, buf, n);
	s->len += n;
}

/*
 * Reads a device until it says -EAGAIN (PRE_COPY) or 0 (STOP_COPY);
 * returns that, or the error.
 */
static int64_t drain(struct vmig_devstate *ds, struct stream *s)
{
	uint8_t buf[5000];
	int64_t n;

	while ((n = vmig_devstate_read(ds, buf, sizeof(buf))) > 0)
		stream_add(s, buf, (size_t)n);
	return n;
}

static const struct ksim_feature_params full = {
	.migration = true,
	.mig_flags = 2 | 4, /* P2P | PRE_COPY */
	.state_size = 96 * KiB,
};

/* ------------------------------------------------------------------ */

static void test_open(void)
{
	struct ksim_feature_params none = { .migration = false };
	struct ksim_feature_params basic = { .migration = true };
	struct vmig_devstate *ds = NULL;
	struct rig r;
	int i;

	rig_new(&r);
	i = rig_dev(&r, "full", &full);
	CU_ASSERT(vmig_devstate_flags(r.ds[i]) == 7);
	CU_ASSERT(vmig_devstate_state(r.ds[i]) == ST_RUNNING);
	CU_ASSERT(vmig_devstate_data_fd(r.ds[i]) == -1);
	CU_ASSERT_STRING_EQUAL(vmig_devstate_name(r.ds[i]), "full");
	i = rig_dev(&r, "basic", &basic);
	CU_ASSERT(vmig_devstate_flags(r.ds[i]) == 1);
	/* A device whose driver cannot migrate is reported as such. */
	i = rig_dev(&r, "plain", &none);
	CU_ASSERT(vmig_devstate_open(r.h, r.dfd[i], "plain", &ds) == -ENOTTY);
	CU_ASSERT_PTR_NULL(ds);
	CU_ASSERT(vmig_devstate_open(r.h, -1, "x", &ds) == -EINVAL);
	CU_ASSERT(vmig_devstate_open(NULL, r.dfd[0], "x", &ds) == -EINVAL);
	/* The kernel's errors come through. */
	ksim_fail_nth(r.k, 2, EIO);
	CU_ASSERT(vmig_devstate_open(r.h, r.dfd[0], "x", &ds) == -EIO);
	vmig_devstate_close(NULL);
	rig_free(&r);
}

/* Source without PRE_COPY, destination: the exact state moves. */
static void test_stop_copy_only(void)
{
	struct ksim_feature_params fp = { .migration = true,
					  .state_size = 100 * KiB,
					  .state_seed = 5 };
	struct ksim_feature_params fq = fp;
	struct stream s = { 0 };
	struct rig r;
	uint8_t c;
	int before = vmig_test_count_fds(), fds;

	fq.state_seed = 6;
	rig_new(&r);
	rig_dev(&r, "src", &fp);
	rig_dev(&r, "dst", &fq);
	fds = vmig_test_count_fds();
	CU_ASSERT(ksim_device_state_run(r.dev[0], 20) == 20);
	/* Nothing offers PRE_COPY: everything stays RUNNING. */
	CU_ASSERT(vmig_devstate_precopy_start(&r.ds[0], 1) == 0);
	CU_ASSERT(vmig_devstate_state(r.ds[0]) == ST_RUNNING);
	CU_ASSERT(vmig_devstate_read(r.ds[0], &c, 1) == -EINVAL);
	CU_ASSERT(vmig_devstate_stop_copy(&r.ds[0], 1) == 0);
	CU_ASSERT(ksim_device_mig_state(r.dev[0]) == ST_STOP_COPY);
	CU_ASSERT(vmig_devstate_data_fd(r.ds[0]) >= 0);
	/* Not read to the end yet: finish refuses, nothing changes. */
	CU_ASSERT(vmig_devstate_save_finish(&r.ds[0], 1) == -EINVAL);
	CU_ASSERT(ksim_device_mig_state(r.dev[0]) == ST_STOP_COPY);
	CU_ASSERT(drain(r.ds[0], &s) == 0);
	CU_ASSERT(vmig_devstate_read(r.ds[0], &c, 1) == 0);
	CU_ASSERT(vmig_devstate_save_finish(&r.ds[0], 1) == 0);
	CU_ASSERT(ksim_device_mig_state(r.dev[0]) == ST_STOP);
	CU_ASSERT(vmig_devstate_data_fd(r.ds[0]) == -1);
	CU_ASSERT(vmig_test_count_fds() == fds);

	CU_ASSERT(vmig_devstate_write(r.ds[1], s.p, s.len) == -EINVAL);
	CU_ASSERT(vmig_devstate_resume_start(&r.ds[1], 1) == 0);
	CU_ASSERT(ksim_device_mig_state(r.dev[1]) == ST_RESUMING);
	CU_ASSERT(vmig_devstate_write(r.ds[1], s.p, s.len / 2) == 0);
	CU_ASSERT(vmig_devstate_write(r.ds[1], s.p + s.len / 2,
				      s.len - s.len / 2) == 0);
	CU_ASSERT(vmig_devstate_resume_finish(&r.ds[1], 1) == 0);
	CU_ASSERT(ksim_device_mig_state(r.dev[1]) == ST_RUNNING);
	CU_ASSERT(ksim_device_state_digest(r.dev[1]) ==
		  ksim_device_state_digest(r.dev[0]));
	CU_ASSERT(vmig_test_count_fds() == fds);
	free(s.p);
	rig_free(&r);
	CU_ASSERT(vmig_test_count_fds() == before);
}

/* PRE_COPY while the device runs, sizes, then STOP_COPY: exact state. */
static void test_precopy_flow(void)
{
	struct ksim_feature_params fq = full;
	struct vmig_devstate_sizes sz, sum;
	struct stream s = { 0 };
	struct rig r;
	int fd, k, fds;
	uint64_t prev;

	fq.state_seed = 77;
	rig_new(&r);
	rig_dev(&r, "src", &full);
	rig_dev(&r, "dst", &fq);
	fds = vmig_test_count_fds();
	CU_ASSERT(vmig_devstate_sizes(r.ds[0], &sz) == 0);
	CU_ASSERT(sz.precopy_initial == 0 && sz.precopy_dirty == 0);
	/* Header 40 bytes, 24 chunk records of 4112, an end record of 32. */
	CU_ASSERT(sz.stop_copy == 40 + 24 * 4112 + 32);
	CU_ASSERT(vmig_devstate_precopy_start(&r.ds[0], 1) == 0);
	CU_ASSERT(ksim_device_mig_state(r.dev[0]) == ST_PRE_COPY);
	fd = vmig_devstate_data_fd(r.ds[0]);
	CU_ASSERT(fd >= 0);
	CU_ASSERT(vmig_devstate_sizes(r.ds[0], &sz) == 0);
	CU_ASSERT(sz.precopy_initial == 40 + 24 * 4112);
	CU_ASSERT(sz.precopy_dirty == 0);
	/* Reading moves initial_bytes down; nothing more: -EAGAIN. */
	prev = sz.precopy_initial;
	{
		uint8_t buf[10000];

		CU_ASSERT(vmig_devstate_read(r.ds[0], buf, sizeof(buf)) ==
			  10000);
		stream_add(&s, buf, 10000);
	}
	CU_ASSERT(vmig_devstate_sizes(r.ds[0], &sz) == 0);
	CU_ASSERT(sz.precopy_initial == prev - 10000);
	CU_ASSERT(drain(r.ds[0], &s) == -EAGAIN);
	CU_ASSERT(vmig_devstate_sizes(r.ds[0], &sz) == 0);
	CU_ASSERT(sz.precopy_initial == 0 && sz.precopy_dirty == 0);
	/* The device works: dirty state shows up, and is read. */
	for (k = 0; k < 5; k++) {
		CU_ASSERT(ksim_device_state_run(r.dev[0], 2) == 2);
		CU_ASSERT(vmig_devstate_sizes(r.ds[0], &sz) == 0);
		CU_ASSERT(sz.precopy_dirty > 0 &&
			  sz.precopy_dirty % 4112 == 0);
		CU_ASSERT(vmig_devstate_sizes_sum(&r.ds[0], 2, &sum) == 0);
		CU_ASSERT(sum.precopy_dirty == sz.precopy_dirty);
		CU_ASSERT(sum.stop_copy == sz.stop_copy +
						   40 + 24 * 4112 + 32);
		CU_ASSERT(drain(r.ds[0], &s) == -EAGAIN);
	}
	CU_ASSERT(ksim_device_state_run(r.dev[0], 3) == 3);
	/* STOP_COPY keeps the session's fd; the rest ends with 0. */
	CU_ASSERT(vmig_devstate_stop_copy(&r.ds[0], 1) == 0);
	CU_ASSERT(vmig_devstate_data_fd(r.ds[0]) == fd);
	CU_ASSERT(drain(r.ds[0], &s) == 0);
	CU_ASSERT(vmig_devstate_save_finish(&r.ds[0], 1) == 0);
	CU_ASSERT(vmig_test_count_fds() == fds);

	CU_ASSERT(vmig_devstate_resume_start(&r.ds[1], 1) == 0);
	CU_ASSERT(vmig_devstate_write(r.ds[1], s.p, s.len) == 0);
	CU_ASSERT(vmig_devstate_resume_finish(&r.ds[1], 1) == 0);
	CU_ASSERT(ksim_device_state_digest(r.dev[1]) ==
		  ksim_device_state_digest(r.dev[0]));
	CU_ASSERT(vmig_test_count_fds() == fds);
	free(s.p);
	rig_free(&r);
}

/*
 * Two devices with P2P, one with PRE_COPY and one without: every arc
 * obeys the P2P rule on both sides, and both states move.
 */
static void test_p2p_order(void)
{
	struct ksim_feature_params a = full, b = full, da = full, db = full;
	struct stream sa = { 0 }, sb = { 0 };
	struct vmig_devstate *src[2], *dst[2];
	struct rig r;

	b.mig_flags = 2; /* P2P only */
	da.state_seed = 11;
	db.state_seed = 12;
	db.mig_flags = 2;
	rig_new(&r);
	rig_dev(&r, "a", &a);
	rig_dev(&r, "b", &b);
	rig_dev(&r, "da", &da);
	rig_dev(&r, "db", &db);
	/* da and db belong to the destination VM. */
	r.w.grp[2] = r.w.grp[3] = 1;
	src[0] = r.ds[0];
	src[1] = r.ds[1];
	dst[0] = r.ds[2];
	dst[1] = r.ds[3];
	CU_ASSERT(vmig_devstate_precopy_start(src, 2) == 0);
	CU_ASSERT(ksim_device_mig_state(r.dev[0]) == ST_PRE_COPY);
	CU_ASSERT(ksim_device_mig_state(r.dev[1]) == ST_RUNNING);
	CU_ASSERT(drain(src[0], &sa) == -EAGAIN);
	ksim_device_state_run(r.dev[0], 4);
	ksim_device_state_run(r.dev[1], 4);
	r.w.arcs = 0;
	CU_ASSERT(vmig_devstate_stop_copy(src, 2) == 0);
	/* a: PRE_COPY_P2P, STOP_COPY; b: RUNNING_P2P, STOP, STOP_COPY. */
	CU_ASSERT(r.w.arcs == 5);
	CU_ASSERT(r.w.violations == 0);
	CU_ASSERT(drain(src[0], &sa) == 0);
	CU_ASSERT(drain(src[1], &sb) == 0);
	CU_ASSERT(vmig_devstate_save_finish(src, 2) == 0);

	CU_ASSERT(vmig_devstate_resume_start(dst, 2) == 0);
	CU_ASSERT(vmig_devstate_write(dst[0], sa.p, sa.len) == 0);
	CU_ASSERT(vmig_devstate_write(dst[1], sb.p, sb.len) == 0);
	r.w.arcs = 0;
	CU_ASSERT(vmig_devstate_resume_finish(dst, 2) == 0);
	/* Each: RESUMING -> STOP -> RUNNING_P2P -> RUNNING. */
	CU_ASSERT(r.w.arcs == 6);
	CU_ASSERT(r.w.violations == 0);
	CU_ASSERT(ksim_device_state_digest(r.dev[2]) ==
		  ksim_device_state_digest(r.dev[0]));
	CU_ASSERT(ksim_device_state_digest(r.dev[3]) ==
		  ksim_device_state_digest(r.dev[1]));
	/* Back to RUNNING on the source, in order too. */
	CU_ASSERT(vmig_devstate_abort(src, 2) == 0);
	CU_ASSERT(ksim_device_mig_state(r.dev[0]) == ST_RUNNING);
	CU_ASSERT(ksim_device_mig_state(r.dev[1]) == ST_RUNNING);
	CU_ASSERT(r.w.violations == 0);
	free(sa.p);
	free(sb.p);
	rig_free(&r);
}

/* Without P2P on one device nothing can be ordered: the watch sees it. */
static void test_no_p2p_unordered(void)
{
	struct ksim_feature_params a = full, b = { .migration = true };
	struct rig r;

	rig_new(&r);
	rig_dev(&r, "a", &a);
	rig_dev(&r, "b", &b);
	CU_ASSERT(vmig_devstate_stop_copy(r.ds, 2) == 0);
	CU_ASSERT(r.w.violations > 0);
	CU_ASSERT(vmig_devstate_abort(r.ds, 2) == 0);
	CU_ASSERT(ksim_device_mig_state(r.dev[0]) == ST_RUNNING);
	CU_ASSERT(ksim_device_mig_state(r.dev[1]) == ST_RUNNING);
	CU_ASSERT(vmig_devstate_data_fd(r.ds[0]) == -1);
	rig_free(&r);
}

/*
 * The whole source flow of two P2P devices with the nth kernel call
 * failing, for every n until the flow gets through: each failure ends
 * with both devices RUNNING, no data fd open, the P2P rule kept.
 */
static void test_source_fail_every_call(void)
{
	struct ksim_feature_params b = full;
	int nth, done = 0;

	b.mig_flags = 2;
	for (nth = 1; !done && nth < 400; nth++) {
		struct stream s = { 0 };
		struct rig r;
		uint64_t base;
		int ret, fds, i;

		rig_new(&r);
		rig_dev(&r, "a", &full);
		rig_dev(&r, "b", &b);
		fds = vmig_test_count_fds();
		base = ksim_calls(r.k);
		ksim_fail_nth(r.k, (uint64_t)nth, EIO);
		ret = vmig_devstate_precopy_start(r.ds, 2);
		for (i = 0; !ret && i < 2; i++) {
			int64_t n = drain(r.ds[i], &s);

			ret = n == -EAGAIN || n == -EINVAL ? 0 : (int)n;
		}
		if (!ret) {
			ksim_device_state_run(r.dev[0], 2);
			ret = vmig_devstate_stop_copy(r.ds, 2);
		}
		for (i = 0; !ret && i < 2; i++)
			ret = (int)drain(r.ds[i], &s);
		if (!ret)
			ret = vmig_devstate_save_finish(r.ds, 2);
		if (ret == 0 && ksim_calls(r.k) - base < (uint64_t)nth) {
			/* The failure never came: the flow is complete. */
			done = 1;
			CU_ASSERT(ksim_device_mig_state(r.dev[0]) == ST_STOP);
		} else {
			expect_rolled_back(&r, ret);
		}
		CU_ASSERT(vmig_devstate_data_fd(r.ds[0]) == -1);
		CU_ASSERT(vmig_devstate_data_fd(r.ds[1]) == -1);
		CU_ASSERT(vmig_test_count_fds() == fds);
		CU_ASSERT(r.w.violations == 0);
		free(s.p);
		rig_free(&r);
	}
	CU_ASSERT(done);
	CU_ASSERT(nth > 10);
}

/* The same on the destination: failures end RUNNING, state untouched. */
static void test_dest_fail_every_call(void)
{
	struct ksim_feature_params fp = full, fq = full;
	struct stream s = { 0 };
	struct rig r;
	int nth, done = 0;

	/* A valid image to restore. */
	fq.state_seed = 3;
	rig_new(&r);
	rig_dev(&r, "src", &fp);
	CU_ASSERT(vmig_devstate_stop_copy(r.ds, 1) == 0);
	CU_ASSERT(drain(r.ds[0], &s) == 0);
	rig_free(&r);

	for (nth = 1; !done && nth < 200; nth++) {
		struct rig d;
		uint64_t dig, base;
		int ret, fds;

		rig_new(&d);
		rig_dev(&d, "x", &fq);
		rig_dev(&d, "y", &fq);
		fds = vmig_test_count_fds();
		dig = ksim_device_state_digest(d.dev[0]);
		base = ksim_calls(d.k);
		ksim_fail_nth(d.k, (uint64_t)nth, EIO);
		ret = vmig_devstate_resume_start(d.ds, 2);
		if (!ret)
			ret = vmig_devstate_write(d.ds[0], s.p, s.len);
		if (!ret)
			ret = vmig_devstate_write(d.ds[1], s.p, s.len);
		if (!ret)
			ret = vmig_devstate_resume_finish(d.ds, 2);
		if (ret == 0 && ksim_calls(d.k) - base < (uint64_t)nth) {
			done = 1;
			CU_ASSERT(ksim_device_state_digest(d.dev[0]) !=
				  dig);
		} else {
			expect_rolled_back(&d, ret);
		}
		CU_ASSERT(ksim_device_mig_state(d.dev[0]) == ST_RUNNING);
		CU_ASSERT(vmig_test_count_fds() == fds);
		CU_ASSERT(d.w.violations == 0);
		rig_free(&d);
	}
	CU_ASSERT(done);
	free(s.p);
}

/* Back to RUNNING by a reset when the FSM cannot get there. */
static void test_abort_reset(void)
{
	struct rig r;

	rig_new(&r);
	rig_dev(&r, "a", &full);
	rig_dev(&r, "b", &full);
	CU_ASSERT(vmig_devstate_stop_copy(r.ds, 2) == 0);
	/* Every feature call fails: no SET, no GET; a reset works. */
	ksim_fail_request(r.k, VFIO_DEVICE_FEATURE, EIO, -1);
	r.w.arcs = 0;
	CU_ASSERT(vmig_devstate_abort(r.ds, 2) == 0);
	CU_ASSERT(ksim_device_mig_state(r.dev[0]) == ST_RUNNING);
	CU_ASSERT(ksim_device_mig_state(r.dev[1]) == ST_RUNNING);
	/* Reset arcs: straight from STOP_COPY to RUNNING. */
	CU_ASSERT(r.w.arcs == 2);
	CU_ASSERT(r.w.resets == 2);
	CU_ASSERT(vmig_devstate_data_fd(r.ds[0]) == -1);
	CU_ASSERT(strstr(vmig_devstate_error(r.ds[0]), "STOP_COPY") != NULL);
	ksim_fail_clear(r.k);

	/* A device in ERROR: only a reset helps. */
	ksim_device_fail_arc(r.dev[0], KSIM_MIG_ANY, KSIM_MIG_ANY, EIO, true);
	CU_ASSERT(vmig_devstate_stop_copy(r.ds, 2) == -EIO);
	CU_ASSERT(ksim_device_mig_state(r.dev[0]) == ST_RUNNING);
	CU_ASSERT(ksim_device_mig_state(r.dev[1]) == ST_RUNNING);
	CU_ASSERT(strstr(vmig_devstate_error(r.ds[0]), "ERROR") != NULL);

	/* When the reset fails too, abort says so. */
	CU_ASSERT(vmig_devstate_stop_copy(r.ds, 2) == 0);
	ksim_fail_request(r.k, VFIO_DEVICE_FEATURE, EIO, -1);
	ksim_fail_request(r.k, VFIO_DEVICE_RESET, ENODEV, -1);
	CU_ASSERT(vmig_devstate_abort(r.ds, 2) == -ENODEV);
	CU_ASSERT(ksim_device_mig_state(r.dev[0]) == ST_STOP_COPY);
	CU_ASSERT(vmig_devstate_data_fd(r.ds[0]) == -1);
	ksim_fail_clear(r.k);
	CU_ASSERT(vmig_devstate_abort(r.ds, 2) == 0);
	CU_ASSERT(ksim_device_mig_state(r.dev[0]) == ST_RUNNING);
	rig_free(&r);
}

/* Cancel during PRE_COPY; cancel of a destination half written. */
static void test_cancel(void)
{
	struct stream s = { 0 };
	struct rig r;
	uint64_t dig;
	int fds;

	rig_new(&r);
	rig_dev(&r, "a", &full);
	rig_dev(&r, "b", &full);
	fds = vmig_test_count_fds();
	CU_ASSERT(vmig_devstate_precopy_start(r.ds, 2) == 0);
	CU_ASSERT(drain(r.ds[0], &s) == -EAGAIN);
	CU_ASSERT(vmig_test_count_fds() == fds + 4);
	CU_ASSERT(vmig_devstate_abort(r.ds, 2) == 0);
	CU_ASSERT(ksim_device_mig_state(r.dev[0]) == ST_RUNNING);
	CU_ASSERT(ksim_device_mig_state(r.dev[1]) == ST_RUNNING);
	CU_ASSERT(vmig_test_count_fds() == fds);
	CU_ASSERT(r.w.violations == 0);

	/* A half-written RESUMING can only be reset. */
	dig = ksim_device_state_digest(r.dev[1]);
	CU_ASSERT(vmig_devstate_resume_start(&r.ds[1], 1) == 0);
	CU_ASSERT(vmig_devstate_write(r.ds[1], s.p, s.len / 2) == 0);
	CU_ASSERT(vmig_devstate_abort(&r.ds[1], 1) == 0);
	CU_ASSERT(ksim_device_mig_state(r.dev[1]) == ST_RUNNING);
	CU_ASSERT(ksim_device_state_digest(r.dev[1]) == dig);

	/* A whole but incomplete image: resume_finish fails, then RUNNING. */
	CU_ASSERT(vmig_devstate_resume_start(&r.ds[1], 1) == 0);
	CU_ASSERT(vmig_devstate_write(r.ds[1], s.p, s.len) == 0);
	CU_ASSERT(vmig_devstate_resume_finish(&r.ds[1], 1) == -EINVAL);
	CU_ASSERT(ksim_device_mig_state(r.dev[1]) == ST_RUNNING);
	CU_ASSERT(ksim_device_state_digest(r.dev[1]) == dig);
	CU_ASSERT(strstr(vmig_devstate_error(r.ds[1]), "RESUMING") != NULL);
	CU_ASSERT(vmig_test_count_fds() == fds);
	free(s.p);
	rig_free(&r);
}

/* A single step by hand, and what set says on refusal. */
static void test_set(void)
{
	struct ksim_feature_params basic = { .migration = true };
	struct rig r;

	rig_new(&r);
	rig_dev(&r, "a", &basic);
	CU_ASSERT(vmig_devstate_set(r.ds[0], ST_PRE_COPY) == -EINVAL);
	CU_ASSERT(vmig_devstate_state(r.ds[0]) == ST_RUNNING);
	CU_ASSERT(vmig_devstate_set(r.ds[0], ST_STOP) == 0);
	CU_ASSERT(vmig_devstate_set(r.ds[0], ST_RESUMING) == 0);
	CU_ASSERT(vmig_devstate_data_fd(r.ds[0]) >= 0);
	/* Nothing written: the image is refused, it stays RESUMING. */
	CU_ASSERT(vmig_devstate_set(r.ds[0], ST_STOP) == -EINVAL);
	CU_ASSERT(vmig_devstate_state(r.ds[0]) == ST_RESUMING);
	CU_ASSERT(vmig_devstate_data_fd(r.ds[0]) >= 0);
	CU_ASSERT(vmig_devstate_abort(r.ds, 1) == 0);
	CU_ASSERT(vmig_devstate_data_fd(r.ds[0]) == -1);
	rig_free(&r);
}

static CU_TestInfo tests[] = {
	{ "open", test_open },
	{ "stop-copy only", test_stop_copy_only },
	{ "precopy flow and sizes", test_precopy_flow },
	{ "p2p order", test_p2p_order },
	{ "no p2p: unordered", test_no_p2p_unordered },
	{ "source: failure at every call", test_source_fail_every_call },
	{ "destination: failure at every call", test_dest_fail_every_call },
	{ "abort by reset", test_abort_reset },
	{ "cancel", test_cancel },
	{ "single steps", test_set },
	CU_TEST_INFO_NULL,
};

VMIG_TEST_MAIN_SUITE(VMIG_SUITE("devstate", tests))
