/*
 * test_ending.c: who runs the guest when a migration ends, whatever way.
 *
 * A source and a destination session migrate a small guest through a
 * relay thread that the test controls byte by byte: it forwards each
 * direction and, at a chosen byte offset of one direction, either cuts
 * the connection (closes both sides) or stalls (stops forwarding, holding
 * both sockets open, until the test releases it). The VMM callbacks count
 * stops, resumes and starts, which say where the guest runs:
 *
 *  - the source runs it when vmig never stopped it, or resumed it;
 *  - the destination runs it when its start callback ran.
 *
 * The cut sweep tries every byte offset of both directions of a short
 * migration and checks the table of docs/protocol.md ("Endings"): never
 * both running; never neither unless the source reports the unresolved
 * state, which vmig_resolve() then settles with the destination's
 * answer; and the row each cut's offset falls in (see enum row): no
 * unresolved ending before COMMIT can have been written, a destination
 * that runs once COMMIT is whole, and each direction reaching both the
 * committed and the unresolved endings. The stall tests stop the peer
 * in each phase and check that the source's guest resumes (or stays
 * paused, unresolved, after COMMIT) and that the message names what was
 * awaited; a cancel while awaiting ACK reports how long the guest was
 * stopped and what was awaited; while unresolved, the VMM's callbacks
 * and the held device stay, the resolve reports a device that cannot
 * come back, and after vmig_run's simulated guest it refuses to resume.
 * Then: a migrated session refuses a second migration without a
 * callback; a destination that cannot start after COMMIT makes the
 * source resume; an ACK with a wrong digest followed by a close is
 * reported as a digest mismatch; garbage after COMMIT leaves the outcome
 * unresolved; a device whose state size cannot be read keeps the
 * migration from switching over, and is named.
 *
 * Nothing here sleeps to let things happen: the relay acts on bytes, the
 * digest gate on a log line, and timeouts decide only where the wait is
 * otherwise endless (a stalled peer). A watchdog aborts a test that would
 * wait forever (the source before bounded waits) instead of hanging.
 */
#include <errno.h>
#include <poll.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <time.h>
#include <unistd.h>

#include <cjson/cJSON.h>
#include <uv.h>
#include <vmig/vmig.h>

#include <vmig/linux-uapi.h>
#include "core/proto.h"
#include "common/relay.h"
#include "ksim/ksim.h"
#include "ksim/ksim_feature.h"
#include "testutil.h"
#include "common/frames.h"
#include "common/sendall.h"
#include "unit/sessionutil.h"
#include "tool/vmig_tool.h"

#define PG 4096u
#define TINY_PAGES 4u          /* the sweep's guest: all zero pages */
#define BIG_LEN (64u << 20)    /* more than the source keeps in flight */
#define HDR 64u

/* ------------------------------------------------------------------ */
/* Watchdog                                                            */

/*
 * A source that waits forever with its guest stopped is the bug some
 * tests look for: it must fail, not hang the suite. The watchdog bites
 * when one migration (each kicks it) takes this long, which none does
 * even under valgrind on a loaded machine.
 */
#define WATCHDOG_S 120

static pthread_mutex_t wd_lock = PTHREAD_MUTEX_INITIALIZER;
static pthread_cond_t wd_cond = PTHREAD_COND_INITIALIZER;
static bool wd_armed;
static uint64_t wd_kicks;
static const char *wd_what;
static pthread_t wd_thread;

static void *watchdog_main(void *opaque)
{
	uint64_t seen = 0;
	struct timespec ts;

	(void)opaque;
	clock_gettime(CLOCK_REALTIME, &ts);
	ts.tv_sec += WATCHDOG_S;
	pthread_mutex_lock(&wd_lock);
	while (wd_armed) {
		if (pthread_cond_timedwait(&wd_cond, &wd_lock, &ts) !=
			    ETIMEDOUT ||
		    !wd_armed)
			continue;
		if (wd_kicks != seen) {
			seen = wd_kicks;
			clock_gettime(CLOCK_REALTIME, &ts);
			ts.tv_sec += WATCHDOG_S;
			continue;
		}
		fprintf(stderr, "\nwatchdog: %s: one migration still "
			"waiting after %d s\n", wd_what, WATCHDOG_S);
		abort();
	}
	pthread_mutex_unlock(&wd_lock);
	return NULL;
}

/* One more migration began: the watchdog's clock starts again. */
static void watchdog_kick(void)
{
	pthread_mutex_lock(&wd_lock);
	wd_kicks++;
	pthread_mutex_unlock(&wd_lock);
}

static void watchdog_arm(const char *what)
{
	wd_armed = true;
	wd_what = what;
	CU_ASSERT_FATAL(pthread_create(&wd_thread, NULL, watchdog_main,
				       NULL) == 0);
}

static void watchdog_disarm(void)
{
	pthread_mutex_lock(&wd_lock);
	wd_armed = false;
	pthread_cond_broadcast(&wd_cond);
	pthread_mutex_unlock(&wd_lock);
	pthread_join(wd_thread, NULL);
}

/* ------------------------------------------------------------------ */
/* The relay                                                           */

#define S2D RELAY_S2D
#define D2S RELAY_D2S
static const char *const dir_name[] = { "source->destination",
					"destination->source" };

/*
 * A relay (tests/common/relay.h) between the source and the destination
 * listening at dst_path, limiting direction dir to limit bytes from the
 * start of the stream: a cut, or a stall until relay_stop().
 */
static void relay_begin(struct relay *r, int id, const char *dst_path,
			int dir, uint64_t limit, bool stall)
{
	char path[108];

	snprintf(path, sizeof(path), "/tmp/vmig-end-%d-%d-r", (int)getpid(),
		 id);
	CU_ASSERT_FATAL(relay_start(r, path, dst_path, dir, limit, 0, stall) ==
			0);
}

/* The offset of the first frame of type t in direction d, or -1. */
static int64_t frame_off(const struct relay *r, int d, uint32_t t)
{
	unsigned int i;

	for (i = 0; i < r->nframes[d]; i++)
		if (r->frames[d][i].type == t)
			return (int64_t)r->frames[d][i].off;
	return -1;
}

/* The offset of the frame after the first of type t in direction d. */
static int64_t frame_after(const struct relay *r, int d, uint32_t t)
{
	unsigned int i;

	for (i = 0; i + 1 < r->nframes[d]; i++)
		if (r->frames[d][i].type == t)
			return (int64_t)r->frames[d][i + 1].off;
	return -1;
}

/* The frame type a byte offset of direction d falls in (for messages). */
static uint32_t frame_at(const struct relay *r, int d, uint64_t off)
{
	uint32_t t = 0;
	unsigned int i;

	for (i = 0; i < r->nframes[d] && r->frames[d][i].off <= off; i++)
		t = r->frames[d][i].type;
	return t;
}

/* ------------------------------------------------------------------ */
/* The two sides                                                       */

struct vmm {
	atomic_uint stops, resumes, starts;
	atomic_uint resume_failures; /* the next resumes fail (-EAGAIN) */
	/*
	 * The stop waits until the relay forwarded this many bytes from
	 * the source: all it wrote before the stop (its writes are all
	 * done when it stops), so a stall at the switchover is in place
	 * before the bound starts counting.
	 */
	struct relay *gate_relay;
	uint64_t gate_bytes;
};

static int cb_stop(void *o)
{
	struct vmm *v = o;
	struct relay *r = v->gate_relay;

	if (r) {
		pthread_mutex_lock(&r->lock);
		while (r->fwd[S2D] < v->gate_bytes)
			pthread_cond_wait(&r->moved, &r->lock);
		pthread_mutex_unlock(&r->lock);
	}
	atomic_fetch_add(&v->stops, 1);
	return 0;
}

static int cb_resume(void *o)
{
	struct vmm *v = o;
	unsigned int n = atomic_load(&v->resume_failures);

	if (n) {
		atomic_store(&v->resume_failures, n - 1);
		return -EAGAIN;
	}
	atomic_fetch_add(&v->resumes, 1);
	return 0;
}

static int cb_start(void *o)
{
	atomic_fetch_add(&((struct vmm *)o)->starts, 1);
	return 0;
}

static const struct vmig_vmm_ops ops = {
	.size = sizeof(ops),
	.stop = cb_stop,
	.resume = cb_resume,
	.start = cb_start,
};

struct side {
	vmig_session *s;
	struct ksim *k;    /* its simulated kernel, when it has a device */
	struct vmm vmm;
	int ret;
	pthread_t thread;
	char log[8192];
	/* Gate: a log line containing one of these opens it (digest test). */
	const char *gate_on[2];
	void (*gate)(void);
};

static void side_log(void *opaque, enum vmig_log_level level,
		     const char *msg)
{
	struct side *sd = opaque;
	size_t n = strlen(sd->log);

	(void)level;
	if (n < sizeof(sd->log) - 1)
		snprintf(sd->log + n, sizeof(sd->log) - n, "%s\n", msg);
	if (sd->gate && ((sd->gate_on[0] && strstr(msg, sd->gate_on[0])) ||
			 (sd->gate_on[1] && strstr(msg, sd->gate_on[1])))) {
		sd->gate();
		sd->gate = NULL;
	}
}

static void side_new(struct side *sd, int role, uint8_t *mem, size_t len,
		     const struct vmig_host *kernel)
{
	struct vmig_session_params p = { .size = sizeof(p), .role = role,
					 .log = side_log, .log_opaque = sd,
					 .log_level = VMIG_LOG_DEBUG,
					 .kernel = kernel };
	struct vmig_region reg = { .size = sizeof(reg), .fd = -1,
				   .name = "ram", .length = len, .hva = mem };

	memset(sd, 0, sizeof(*sd));
	CU_ASSERT_FATAL(vmig_session_new(&p, &sd->s) == 0);
	CU_ASSERT_FATAL(vmig_region_add(sd->s, &reg, NULL) == 0);
	CU_ASSERT_FATAL(vmig_set_vmm_ops(sd->s, &ops, &sd->vmm) == 0);
}

static void policies(struct side *sd, uint64_t timeout_ms,
		     uint64_t switchover_ms, uint32_t max_iterations)
{
	struct vmig_policies p = {
		.size = sizeof(p),
		.downtime_limit_ms = 60000,
		.max_iterations = max_iterations,
		.timeout_ms = timeout_ms,
		.switchover_timeout_ms = switchover_ms,
		/* The endings of docs/protocol.md are strict's. */
		.verify = VMIG_VERIFY_STRICT,
	};

	CU_ASSERT_FATAL(vmig_set_policies(sd->s, &p) == 0);
}

/* The session, then the simulator it talks to. */
static void side_free(struct side *sd)
{
	vmig_session_free(sd->s);
	sd->s = NULL;
	if (sd->k)
		ksim_free(sd->k);
	sd->k = NULL;
}

static void add_mig_device(vmig_session *s, struct ksim *k,
			   const struct vmig_host *h, const char *name,
			   uint32_t state_size);

/* The VFIO migration state of a side's device "nic0". */
static int dev_state(struct side *sd)
{
	return ksim_device_mig_state(ksim_device_find(sd->k, "nic0"));
}

static void *receive_main(void *opaque)
{
	struct side *sd = opaque;

	sd->ret = vmig_receive(sd->s);
	return NULL;
}

static const char *str(cJSON *o, const char *key)
{
	const char *v = cJSON_GetStringValue(cJSON_GetObjectItem(o, key));

	return v ? v : "(none)";
}

/* One migration through a relay, and where the guest ended. */
struct outcome {
	int ret;            /* the source's vmig_migrate */
	int dret;           /* the destination's vmig_receive */
	unsigned int stops, resumes, starts;
	bool src_runs, dst_runs;
	char msg[1024];     /* the source's message */
	char dmsg[1024];    /* the destination's */
	cJSON *rep;         /* the source's report (caller frees) */
	struct relay relay;
};

struct guest {
	uint8_t *smem, *dmem;
	size_t len;
};

static void guest_map(struct guest *g, size_t len, bool data)
{
	size_t i;

	g->len = len;
	g->smem = mmap(NULL, len, PROT_READ | PROT_WRITE,
		       MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	g->dmem = mmap(NULL, len, PROT_READ | PROT_WRITE,
		       MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	CU_ASSERT_FATAL(g->smem != MAP_FAILED && g->dmem != MAP_FAILED);
	for (i = 0; data && i < len; i += 64)
		g->smem[i] = (uint8_t)(i / 64 + 1);
}

static void guest_unmap(struct guest *g)
{
	munmap(g->smem, g->len);
	munmap(g->dmem, g->len);
}

/*
 * Migrates g through a relay limiting direction dir to limit bytes
 * (cut, or stall). resolve: settle an unresolved outcome with the
 * destination's answer, as a VMM would after asking it.
 */
/* Set by a test: cb_stop's gate for the next run_one (0: none). */
static uint64_t stop_gate;
/*
 * Set by a test: both sides of the next run_one have a device with VFIO
 * migration (stop-copy, 4 KiB of state) on a simulated kernel.
 */
static bool with_device;
/* Set by a test: cancel the next run_one's source once all is sent. */
static bool cancel_gate;
static vmig_session *cancel_target;
static void cancel_now(void);

static void run_one(struct outcome *o, struct guest *g, int id, int dir,
		    uint64_t limit, bool stall, uint64_t timeout_ms,
		    uint64_t switchover_ms, struct side *keep_src,
		    struct side *keep_dst)
{
	static struct side own_src, own_dst;
	struct side *src = keep_src ? keep_src : &own_src;
	struct side *dst = keep_dst ? keep_dst : &own_dst;
	char dpath[108], daddr[120];

	memset(o, 0, sizeof(*o));
	watchdog_kick();
	if (with_device) {
		struct ksim *ks, *kd;

		CU_ASSERT_FATAL(ksim_new(NULL, &ks) == 0);
		CU_ASSERT_FATAL(ksim_new(NULL, &kd) == 0);
		side_new(src, VMIG_ROLE_SOURCE, g->smem, g->len,
			 ksim_host(ks));
		side_new(dst, VMIG_ROLE_DESTINATION, g->dmem, g->len,
			 ksim_host(kd));
		src->k = ks;
		dst->k = kd;
		/* The smallest state: every byte of it is a cut. */
		add_mig_device(src->s, ks, ksim_host(ks), "nic0", 4096);
		add_mig_device(dst->s, kd, ksim_host(kd), "nic0", 4096);
	} else {
		side_new(src, VMIG_ROLE_SOURCE, g->smem, g->len, NULL);
		side_new(dst, VMIG_ROLE_DESTINATION, g->dmem, g->len, NULL);
	}
	policies(src, timeout_ms, switchover_ms, 0);
	snprintf(dpath, sizeof(dpath), "/tmp/vmig-end-%d-%d-d", (int)getpid(),
		 id);
	snprintf(daddr, sizeof(daddr), "unix:%s", dpath);
	CU_ASSERT_FATAL(vmig_listen(dst->s, daddr, NULL, 0) == 0);
	CU_ASSERT_FATAL(pthread_create(&dst->thread, NULL, receive_main,
				       dst) == 0);
	relay_begin(&o->relay, id, dpath, dir, limit, stall);
	if (stop_gate) {
		src->vmm.gate_relay = &o->relay;
		src->vmm.gate_bytes = stop_gate;
	}
	if (cancel_gate) {
		cancel_target = src->s;
		src->gate_on[0] = "source: all sent";
		src->gate = cancel_now;
	}
	o->ret = vmig_migrate(src->s, o->relay.src_addr);
	snprintf(o->msg, sizeof(o->msg), "%s", vmig_errmsg(src->s));
	/* The source is done: a stalled relay lets go now. */
	relay_stop(&o->relay);
	pthread_join(dst->thread, NULL);
	o->dret = dst->ret;
	snprintf(o->dmsg, sizeof(o->dmsg), "%s", vmig_errmsg(dst->s));
	o->stops = atomic_load(&src->vmm.stops);
	o->resumes = atomic_load(&src->vmm.resumes);
	o->starts = atomic_load(&dst->vmm.starts);
	o->src_runs = o->stops == 0 || o->resumes == o->stops;
	o->dst_runs = o->starts == 1;
	o->rep = json_session_report(src->s);
	if (keep_src)
		return;
	side_free(src);
	side_free(dst);
}

/*
 * The table of docs/protocol.md, checked on one outcome: exactly one
 * side runs the guest, or the source is unresolved and its guest paused
 * (then the destination's own result says whether it runs, which is
 * what the VMM asks it before vmig_resolve). Returns false on a breach.
 */
static bool outcome_ok(const struct outcome *o)
{
	if (o->stops > 1 || o->resumes > o->stops || o->starts > 1)
		return false;
	if (o->src_runs && o->dst_runs)
		return false;
	if (o->ret == VMIG_EUNRESOLVED)
		return o->stops == 1 && o->resumes == 0;
	if (!o->src_runs && !o->dst_runs)
		return false;
	/* A committed source has a running destination, and only then. */
	if ((o->ret == 0) != o->dst_runs)
		return false;
	/* The destination's own word agrees with what it did. */
	return (o->dret == 0) == o->dst_runs;
}

/* ------------------------------------------------------------------ */
/* The cut sweep                                                       */

enum { OC_COMMITTED, OC_RESUMED, OC_NEVER_STOPPED, OC_UNRESOLVED_DST,
       OC_UNRESOLVED_SRC, OC_NR };
static const char *const oc_name[] = {
	"committed (destination runs)", "resumed on the source",
	"failed before the stop (source runs)",
	"unresolved, destination runs -> resolved for it",
	"unresolved, destination did not start -> resumed",
};

/*
 * With devices: the source's device runs exactly when its guest does
 * (after any resolution); the destination's runs when its guest does
 * (one that did not start was reset, which also leaves it RUNNING, so
 * only that way round says anything).
 */
static bool devices_ok(struct side *src, struct side *dst, bool src_runs,
		       bool dst_runs)
{
	if (!src->k)
		return true;
	return (dev_state(src) == VK_VFIO_STATE_RUNNING) == src_runs &&
	       (!dst_runs || dev_state(dst) == VK_VFIO_STATE_RUNNING);
}

/*
 * The rows of the table a cut falls in, from where it is (n bytes of
 * its direction get through, the next is cut). A receiver acts only on a
 * whole frame, and each side writes the frame that decides only after
 * the one it answers arrived whole, so the row follows from the offset
 * alone, whatever the threads do:
 * - before COMMIT (source->destination, n < COMMIT's offset: the
 *   COMPLETE before it is not whole, so no ACK and no COMMIT), or before
 *   the end of ACK (destination->source: the source never has the ACK,
 *   so it never writes COMMIT): the source resumes, or never stopped;
 *   never unresolved, and the destination never starts;
 * - COMMIT written, its frame not whole at the destination
 *   (source->destination, COMMIT's offset <= n < its end): the
 *   destination never starts; the source resumes (the write failed) or
 *   is unresolved ("COMMIT written, lost before the destination");
 * - COMMIT delivered (source->destination past its end, or
 *   destination->source past the end of ACK: then only STARTED, written
 *   after COMMIT arrived, can be cut): the destination runs the guest;
 *   the source is committed or unresolved ("STARTED lost").
 */
enum row { ROW_BEFORE_COMMIT, ROW_COMMIT_PARTIAL, ROW_COMMIT_DELIVERED,
	   ROW_NR };
static const char *const row_name[] = {
	"before COMMIT could be written: resumes, never unresolved",
	"COMMIT partly delivered: resumes or unresolved, never starts",
	"COMMIT delivered: the destination runs",
};

static bool row_ok(const struct outcome *o, enum row r)
{
	switch (r) {
	case ROW_BEFORE_COMMIT:
		return o->ret != VMIG_EUNRESOLVED && o->ret != 0 &&
		       o->src_runs && !o->dst_runs;
	case ROW_COMMIT_PARTIAL:
		return o->ret != 0 && !o->dst_runs && o->dret != 0 &&
		       (o->ret == VMIG_EUNRESOLVED || o->src_runs);
	case ROW_COMMIT_DELIVERED:
		return (o->ret == 0 || o->ret == VMIG_EUNRESOLVED) &&
		       o->dst_runs && o->dret == 0;
	default:
		return false;
	}
}

static void sweep(int dir)
{
	struct guest g;
	struct outcome o;
	unsigned int counts[OC_NR] = { 0 }, bad = 0;
	unsigned int rows[ROW_NR] = { 0 };
	uint64_t len, n, lo, hi;
	int64_t commit, commit_end, ack_end;

	guest_map(&g, TINY_PAGES * PG, false);
	/* The whole stream, uncut, gives its length and frames. */
	run_one(&o, &g, 0, dir, UINT64_MAX, false, 0, 60000, NULL, NULL);
	CU_ASSERT_EQUAL_FATAL(o.ret, 0);
	cJSON_Delete(o.rep);
	len = o.relay.fwd[dir];
	commit = frame_off(&o.relay, S2D, VMIG_FRAME_COMMIT + 0);
	CU_ASSERT_FATAL(commit > 0);
	/* COMMIT is the source's last frame; it has no payload. */
	commit_end = frame_after(&o.relay, S2D, VMIG_FRAME_COMMIT + 0);
	CU_ASSERT_FATAL(commit_end < 0);
	commit_end = (int64_t)o.relay.fwd[S2D];
	CU_ASSERT_FATAL(commit_end == commit + HDR);
	/* STARTED follows the ACK: the ACK ends where it begins. */
	CU_ASSERT_FATAL(frame_off(&o.relay, D2S, VMIG_FRAME_ACK + 0) > 0);
	ack_end = frame_after(&o.relay, D2S, VMIG_FRAME_ACK + 0);
	CU_ASSERT_FATAL(ack_end > 0);
	CU_ASSERT_FATAL(ack_end ==
			frame_off(&o.relay, D2S, VMIG_FRAME_STARTED + 0));
	lo = (uint64_t)(dir == S2D ? commit : ack_end);
	hi = (uint64_t)(dir == S2D ? commit_end : ack_end);

	for (n = 0; n <= len; n++) {
		static struct side src, dst;
		enum row r = n < lo	? ROW_BEFORE_COMMIT
			     : n < hi ? ROW_COMMIT_PARTIAL
				      : ROW_COMMIT_DELIVERED;
		int oc;

		rows[r]++;
		run_one(&o, &g, 1, dir, n, false, 0, 60000, &src, &dst);
		if (!outcome_ok(&o) || !row_ok(&o, r) ||
		    (o.ret != VMIG_EUNRESOLVED &&
		     !devices_ok(&src, &dst, o.src_runs, o.dst_runs))) {
			bad++;
			fprintf(stderr,
				"\n  cut %s at byte %llu of %llu (in frame "
				"%u; row \"%s\"): source %d (%s), %u "
				"stop(s) %u resume(s); destination %d (%s), "
				"%u start(s)\n",
				dir_name[dir], (unsigned long long)n,
				(unsigned long long)len,
				frame_at(&o.relay, dir, n), row_name[r],
				o.ret, o.msg, o.stops, o.resumes, o.dret,
				o.dmsg, o.starts);
		}
		if (o.ret == VMIG_EUNRESOLVED) {
			/* The report says so, and the guest is paused. */
			CU_ASSERT_STRING_EQUAL(str(o.rep, "result"),
					       "unresolved");
			CU_ASSERT_STRING_EQUAL(str(o.rep, "guest"),
					       "paused (unresolved)");
			/* The VMM asked the destination; it settles. */
			CU_ASSERT_EQUAL(vmig_resolve(src.s, o.dst_runs
					? VMIG_RESOLVE_DESTINATION
					: VMIG_RESOLVE_RESUME), 0);
			CU_ASSERT_EQUAL(atomic_load(&src.vmm.resumes),
					o.dst_runs ? 0u : 1u);
			CU_ASSERT(devices_ok(&src, &dst, !o.dst_runs,
					     o.dst_runs));
			oc = o.dst_runs ? OC_UNRESOLVED_DST : OC_UNRESOLVED_SRC;
		} else if (o.ret == 0) {
			oc = OC_COMMITTED;
		} else {
			oc = o.stops ? OC_RESUMED : OC_NEVER_STOPPED;
		}
		counts[oc]++;
		cJSON_Delete(o.rep);
		side_free(&src);
		side_free(&dst);
	}
	printf("\n  %s%s: %llu cuts tried (every byte offset 0..%llu of %llu "
	       "bytes; COMMIT at byte %lld of %s), %u breach(es) of the "
	       "table:",
	       dir_name[dir], with_device ? " (with device state)" : "",
	       (unsigned long long)len + 1,
	       (unsigned long long)len, (unsigned long long)len,
	       (long long)commit, dir_name[S2D], bad);
	for (n = 0; n < OC_NR; n++)
		printf("\n    %-50s %u", oc_name[n], counts[n]);
	if (lo < hi)
		printf("\n  cuts per row of the table (COMMIT partly "
		       "delivered: cuts at bytes %llu..%llu):",
		       (unsigned long long)lo, (unsigned long long)hi - 1);
	else
		printf("\n  cuts per row of the table (COMMIT delivered from "
		       "the end of ACK, byte %llu):", (unsigned long long)lo);
	for (n = 0; n < ROW_NR; n++)
		printf("\n    %-60s %u", row_name[n], rows[n]);
	printf("\n");
	CU_ASSERT_EQUAL(bad, 0);
	/* Every ending was reached: the sweep covers the whole table. */
	CU_ASSERT(counts[OC_COMMITTED] > 0);
	CU_ASSERT(counts[OC_RESUMED] > 0);
	CU_ASSERT(counts[OC_NEVER_STOPPED] > 0);
	CU_ASSERT(counts[OC_UNRESOLVED_DST] + counts[OC_UNRESOLVED_SRC] > 0);
	guest_unmap(&g);
}

static void test_cut_source_to_destination(void)
{
	watchdog_arm("cut sweep, source to destination");
	sweep(S2D);
	watchdog_disarm();
}

static void test_cut_destination_to_source(void)
{
	watchdog_arm("cut sweep, destination to source");
	sweep(D2S);
	watchdog_disarm();
}

/* The same with a device whose state travels (DEVICE_STATE, _END). */
static void test_cut_with_device(void)
{
	/*
	 * Five thousand migrations take minutes under valgrind; the
	 * sanitizer build runs them, valgrind the rest (tests/CMakeLists).
	 */
	if (getenv("VMIG_ENDING_QUICK")) {
		printf("\n  skipped (VMIG_ENDING_QUICK)\n");
		return;
	}
	watchdog_arm("cut sweep with a device");
	with_device = true;
	sweep(S2D);
	sweep(D2S);
	with_device = false;
	watchdog_disarm();
}

/* ------------------------------------------------------------------ */
/* Stalls                                                              */

/* The tiny guest's stream, uncut: where each frame begins. */
static void calibrate(struct guest *g, struct relay *out)
{
	struct outcome o;

	run_one(&o, g, 0, S2D, UINT64_MAX, false, 0, 60000, NULL, NULL);
	CU_ASSERT_EQUAL_FATAL(o.ret, 0);
	cJSON_Delete(o.rep);
	*out = o.relay;
}

#define SMALL_MS 200 /* decides only where the peer stalls for good */

/*
 * A peer that stops answering before the switchover: the guest was never
 * stopped and keeps running; the message says what was awaited.
 */
static void test_stall_handshake(void)
{
	struct guest g;
	struct outcome o;

	watchdog_arm("stall in the handshake");
	guest_map(&g, TINY_PAGES * PG, false);
	run_one(&o, &g, 2, S2D, 0, true, SMALL_MS, SMALL_MS, NULL, NULL);
	CU_ASSERT(o.relay.hit);
	CU_ASSERT_EQUAL(o.ret, -ETIMEDOUT);
	CU_ASSERT(has(o.msg, "before the destination welcomed the layout"));
	CU_ASSERT_EQUAL(o.stops, 0);
	CU_ASSERT_EQUAL(o.resumes, 0);
	CU_ASSERT_EQUAL(o.starts, 0);
	cJSON_Delete(o.rep);
	guest_unmap(&g);
	watchdog_disarm();
}

static void test_stall_precopy(void)
{
	struct guest tiny, g;
	struct relay cal;
	struct outcome o;
	int64_t first;

	watchdog_arm("stall in the pre-copy");
	guest_map(&tiny, TINY_PAGES * PG, false);
	calibrate(&tiny, &cal);
	/* The first page frame: the layout was welcomed, then silence. */
	first = frame_after(&cal, S2D, VMIG_FRAME_ITERATION + 0);
	CU_ASSERT_FATAL(first > 0);
	guest_map(&g, BIG_LEN, true);
	run_one(&o, &g, 3, S2D, (uint64_t)first, true, SMALL_MS, SMALL_MS,
		NULL, NULL);
	CU_ASSERT(o.relay.hit);
	CU_ASSERT_EQUAL(o.ret, -ETIMEDOUT);
	CU_ASSERT(has(o.msg, "timeout after 200 ms (timeout_ms) at "
			     "iteration 0"));
	CU_ASSERT_EQUAL(o.stops, 0);
	CU_ASSERT_EQUAL(o.resumes, 0);
	CU_ASSERT_EQUAL(o.starts, 0);
	cJSON_Delete(o.rep);
	guest_unmap(&tiny);
	guest_unmap(&g);
	watchdog_disarm();
}

/*
 * After the stop, with timeout_ms 0 (no overall timeout): only
 * switchover_timeout_ms bounds the wait. Before COMMIT, the guest
 * resumes on the source; the report says how long it was stopped and
 * what vmig waited for.
 */
static void check_stall_resumed(struct outcome *o, const char *awaited)
{
	char want[256];

	CU_ASSERT(o->relay.hit);
	CU_ASSERT_EQUAL(o->ret, -ETIMEDOUT);
	snprintf(want, sizeof(want), "switchover timeout: the guest was "
		 "stopped 200 ms (switchover_timeout_ms) waiting for %s",
		 awaited);
	CU_ASSERT(has(o->msg, want));
	CU_ASSERT(has(o->msg, "the guest resumes on the source"));
	CU_ASSERT_EQUAL(o->stops, 1);
	CU_ASSERT_EQUAL(o->resumes, 1);
	CU_ASSERT_EQUAL(o->starts, 0);
	CU_ASSERT_NOT_EQUAL(o->dret, 0);
	CU_ASSERT(has(str(o->rep, "awaited"), awaited));
	CU_ASSERT_STRING_EQUAL(str(o->rep, "guest"), "running");
	/*
	 * The report gives the time the guest was stopped, not 0: the
	 * bound, give or take the loop clock's millisecond.
	 */
	CU_ASSERT(cJSON_GetNumberValue(cJSON_GetObjectItem(o->rep,
							   "downtime_ms")) >=
		  SMALL_MS - 2);
}

static void test_stall_after_switchover(void)
{
	struct guest g;
	struct relay cal;
	struct outcome o;
	int64_t at;

	watchdog_arm("stall after SWITCHOVER");
	/* A guest larger than what the source keeps in flight. */
	guest_map(&g, BIG_LEN, true);
	run_one(&o, &g, 4, S2D, UINT64_MAX, false, 0, 60000, NULL, NULL);
	CU_ASSERT_EQUAL_FATAL(o.ret, 0);
	cal = o.relay;
	cJSON_Delete(o.rep);
	/*
	 * SWITCHOVER and what follows are held; the stop returns once the
	 * whole pre-copy went through, so the peer is stalled before the
	 * bound starts.
	 */
	at = frame_off(&cal, S2D, VMIG_FRAME_SWITCHOVER + 0);
	CU_ASSERT_FATAL(at > 0);
	stop_gate = (uint64_t)at;
	run_one(&o, &g, 4, S2D, (uint64_t)at, true, 0, SMALL_MS, NULL, NULL);
	stop_gate = 0;
	check_stall_resumed(&o, "the destination to take the last pages "
				"and device state");
	cJSON_Delete(o.rep);
	guest_unmap(&g);
	watchdog_disarm();
}

static void test_stall_after_complete(void)
{
	struct guest g;
	struct relay cal;
	struct outcome o;
	int64_t ack;

	watchdog_arm("stall after COMPLETE");
	guest_map(&g, TINY_PAGES * PG, false);
	calibrate(&g, &cal);
	/* The destination answers ACK; the relay holds it. */
	ack = frame_off(&cal, D2S, VMIG_FRAME_ACK + 0);
	CU_ASSERT_FATAL(ack > 0);
	run_one(&o, &g, 5, D2S, (uint64_t)ack, true, 0, SMALL_MS, NULL, NULL);
	check_stall_resumed(&o, "the destination's ACK");
	cJSON_Delete(o.rep);
	guest_unmap(&g);
	watchdog_disarm();
}

/*
 * COMMIT reached the destination, which started the guest; its STARTED
 * is held. The source cannot know: it stays paused, unresolved, and
 * the VMM, told by the destination that it runs the guest, resolves for
 * it. A later migration of that session is refused.
 */
static void test_stall_after_commit(void)
{
	struct guest g;
	struct relay cal;
	struct outcome o;
	static struct side src, dst;
	int64_t started;

	watchdog_arm("stall after COMMIT, STARTED held");
	guest_map(&g, TINY_PAGES * PG, false);
	calibrate(&g, &cal);
	started = frame_off(&cal, D2S, VMIG_FRAME_STARTED + 0);
	CU_ASSERT_FATAL(started > 0);
	run_one(&o, &g, 6, D2S, (uint64_t)started, true, 0, SMALL_MS, &src,
		&dst);
	CU_ASSERT(o.relay.hit);
	CU_ASSERT_EQUAL(o.ret, VMIG_EUNRESOLVED);
	CU_ASSERT(has(o.msg, "switchover timeout: the guest was stopped 200 "
			     "ms (switchover_timeout_ms) waiting for the "
			     "destination's STARTED after COMMIT"));
	CU_ASSERT_EQUAL(o.stops, 1);
	CU_ASSERT_EQUAL(o.resumes, 0);
	CU_ASSERT_EQUAL(o.starts, 1);
	CU_ASSERT_EQUAL(o.dret, 0);
	CU_ASSERT_STRING_EQUAL(str(o.rep, "result"), "unresolved");
	/* While unresolved, no migration, and no second resolve kind. */
	CU_ASSERT_EQUAL(vmig_migrate(src.s, "unix:/nonexistent"), -EBUSY);
	CU_ASSERT_EQUAL(vmig_resolve(src.s, 7), -EINVAL);
	CU_ASSERT_EQUAL(vmig_resolve(src.s, VMIG_RESOLVE_DESTINATION), 0);
	CU_ASSERT_EQUAL(vmig_resolve(src.s, VMIG_RESOLVE_RESUME), -EINVAL);
	CU_ASSERT_EQUAL(vmig_migrate(src.s, "unix:/nonexistent"),
			VMIG_EMIGRATED);
	CU_ASSERT_EQUAL(atomic_load(&src.vmm.stops), 1);
	CU_ASSERT_EQUAL(atomic_load(&src.vmm.resumes), 0);
	cJSON_Delete(o.rep);
	o.rep = json_session_report(src.s);
	CU_ASSERT_STRING_EQUAL(str(o.rep, "guest"), "migrated");
	cJSON_Delete(o.rep);
	vmig_session_free(src.s);
	vmig_session_free(dst.s);
	guest_unmap(&g);
	watchdog_disarm();
}

/*
 * COMMIT is written but held before the destination: it never starts
 * the guest. The source cannot know that either: unresolved; the VMM,
 * told that the destination did not start, resumes it on the source.
 */
static void test_stall_commit_held(void)
{
	struct guest g;
	struct relay cal;
	struct outcome o;
	static struct side src, dst;
	int64_t commit;

	watchdog_arm("stall with COMMIT held");
	guest_map(&g, TINY_PAGES * PG, false);
	calibrate(&g, &cal);
	commit = frame_off(&cal, S2D, VMIG_FRAME_COMMIT + 0);
	CU_ASSERT_FATAL(commit > 0);
	run_one(&o, &g, 7, S2D, (uint64_t)commit, true, 0, SMALL_MS, &src,
		&dst);
	CU_ASSERT(o.relay.hit);
	CU_ASSERT_EQUAL(o.ret, VMIG_EUNRESOLVED);
	CU_ASSERT(has(o.msg, "waiting for the destination's STARTED after "
			     "COMMIT"));
	CU_ASSERT_EQUAL(o.stops, 1);
	CU_ASSERT_EQUAL(o.resumes, 0);
	CU_ASSERT_EQUAL(o.starts, 0);
	CU_ASSERT_NOT_EQUAL(o.dret, 0);
	CU_ASSERT(has(o.dmsg, "after ACK and before COMMIT"));
	CU_ASSERT_EQUAL(vmig_resolve(src.s, VMIG_RESOLVE_RESUME), 0);
	CU_ASSERT_EQUAL(atomic_load(&src.vmm.resumes), 1);
	cJSON_Delete(o.rep);
	o.rep = json_session_report(src.s);
	CU_ASSERT_STRING_EQUAL(str(o.rep, "guest"), "running");
	CU_ASSERT_STRING_EQUAL(str(o.rep, "result"), "resolved");
	cJSON_Delete(o.rep);
	vmig_session_free(src.s);
	vmig_session_free(dst.s);
	guest_unmap(&g);
	watchdog_disarm();
}

static uint64_t mono_us(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000000u + (uint64_t)ts.tv_nsec / 1000u;
}

static double num(cJSON *o, const char *key)
{
	return cJSON_GetNumberValue(cJSON_GetObjectItem(o, key));
}

/*
 * While unresolved, the paused guest and its stopped device belong to
 * what stopped them: other VMM callbacks are refused, and so is the
 * device's unplug (its fd is what vmig_resolve() uses). The device then
 * fails to come back: the resolve says so, yet resumes the guest and
 * settles, and the downtime runs until that resume.
 */
static void test_unresolved_keeps_owners(void)
{
	struct guest g;
	struct relay cal;
	struct outcome o;
	static struct side src, dst;
	struct vmm other;
	struct vmig_device_status ds = { .size = sizeof(ds) };
	uint64_t t_end, t_resolve;
	double before_ms;
	int64_t commit;
	uint32_t id;

	watchdog_arm("unresolved: owners kept");
	guest_map(&g, TINY_PAGES * PG, false);
	/* The device's state moves COMMIT: calibrate with it. */
	with_device = true;
	calibrate(&g, &cal);
	commit = frame_off(&cal, S2D, VMIG_FRAME_COMMIT + 0);
	CU_ASSERT_FATAL(commit > 0);
	run_one(&o, &g, 8, S2D, (uint64_t)commit, true, 0, SMALL_MS, &src,
		&dst);
	with_device = false;
	t_end = mono_us();
	CU_ASSERT_EQUAL_FATAL(o.ret, VMIG_EUNRESOLVED);
	CU_ASSERT_EQUAL(o.starts, 0);
	CU_ASSERT_EQUAL(dev_state(&src), VK_VFIO_STATE_STOP);
	before_ms = num(o.rep, "downtime_ms");

	/* Neither none nor other callbacks while the guest is paused. */
	memset(&other, 0, sizeof(other));
	CU_ASSERT_EQUAL(vmig_set_vmm_ops(src.s, NULL, NULL), -EBUSY);
	CU_ASSERT(has(vmig_errmsg(src.s), "unresolved"));
	CU_ASSERT_EQUAL(vmig_set_vmm_ops(src.s, &ops, &other), -EBUSY);

	/* The device with the held state cannot leave. */
	for (id = 0; id < 4; id++)
		if (vmig_device_status(src.s, id, &ds) == 0)
			break;
	CU_ASSERT_FATAL(id < 4);
	CU_ASSERT_EQUAL(vmig_device_remove(src.s, id), -EBUSY);
	CU_ASSERT(has(vmig_errmsg(src.s), "device nic0: it stays stopped "
					  "for the unresolved migration"));

	/* Its way back to RUNNING fails; the guest resumes anyway. */
	ksim_device_fail_arc(ksim_device_find(src.k, "nic0"), KSIM_MIG_ANY,
			     VK_VFIO_STATE_RUNNING, EIO, false);
	/* Nor does the reset that vmig tries next bring it back. */
	ksim_fail_request(src.k, VFIO_DEVICE_RESET, EIO, -1);
	/*
	 * Only widens the gap that the downtime must now include; no
	 * outcome depends on it.
	 */
	usleep(20000);
	t_resolve = mono_us();
	/*
	 * The VMM fails the first resume: still unresolved, and the retry
	 * still reports the device, although it was released before.
	 */
	atomic_store(&src.vmm.resume_failures, 1);
	CU_ASSERT_EQUAL(vmig_resolve(src.s, VMIG_RESOLVE_RESUME), -EAGAIN);
	CU_ASSERT(has(vmig_errmsg(src.s), "(and a device could not be "
					  "brought back to RUNNING)"));
	CU_ASSERT_EQUAL(atomic_load(&src.vmm.resumes), 0);
	CU_ASSERT_EQUAL(vmig_set_vmm_ops(src.s, &ops, &other), -EBUSY);
	CU_ASSERT_EQUAL(vmig_resolve(src.s, VMIG_RESOLVE_RESUME), -EIO);
	CU_ASSERT(has(vmig_errmsg(src.s), "a device could not be brought "
					  "back to RUNNING"));
	CU_ASSERT(has(src.log, "resolve: device nic0 could not be brought "
			       "back to RUNNING"));
	CU_ASSERT_EQUAL(atomic_load(&src.vmm.resumes), 1);
	CU_ASSERT_EQUAL(atomic_load(&other.resumes), 0);
	/* Settled: no second resolve, and the device may go now. */
	CU_ASSERT_EQUAL(vmig_resolve(src.s, VMIG_RESOLVE_RESUME), -EINVAL);
	CU_ASSERT_EQUAL(vmig_device_remove(src.s, id), 0);
	CU_ASSERT_EQUAL(vmig_set_vmm_ops(src.s, &ops, &other), 0);
	cJSON_Delete(o.rep);
	o.rep = json_session_report(src.s);
	CU_ASSERT_STRING_EQUAL(str(o.rep, "guest"), "running");
	CU_ASSERT_STRING_EQUAL(str(o.rep, "result"), "resolved");
	/* From the stop until the resume, not until the ending. */
	CU_ASSERT(num(o.rep, "downtime_ms") + 0.002 >=
		  before_ms + (double)(t_resolve - t_end) / 1000);
	cJSON_Delete(o.rep);
	side_free(&src);
	side_free(&dst);
	guest_unmap(&g);
	watchdog_disarm();
}

/*
 * vmig_run with its simulated guest, STARTED held: the guest that the
 * run stopped ends with the run, and no callbacks are left. The session
 * stays unresolved and says so; resuming is refused with the reason
 * (not a call through a freed guest); the destination's answer settles.
 */
static void test_run_simulated_unresolved(void)
{
	static struct side dst, src;
	struct session_params_holder {
		struct vmig_session_params p;
	} h = { { .size = sizeof(h.p), .role = VMIG_ROLE_SOURCE,
		  .log = side_log, .log_opaque = &src,
		  .log_level = VMIG_LOG_DEBUG } };
	struct guest g;
	struct relay cal, relay;
	char dpath[108], daddr[120], text[1024], err[256];
	vmig_config *cfg;
	cJSON *rep;
	int64_t started;
	int ret;

	watchdog_arm("vmig_run, simulated guest, STARTED held");
	guest_map(&g, TINY_PAGES * PG, false);
	calibrate(&g, &cal);
	started = frame_off(&cal, D2S, VMIG_FRAME_STARTED + 0);
	CU_ASSERT_FATAL(started > 0);

	side_new(&dst, VMIG_ROLE_DESTINATION, g.dmem, g.len, NULL);
	snprintf(dpath, sizeof(dpath), "/tmp/vmig-end-%d-9-d", (int)getpid());
	snprintf(daddr, sizeof(daddr), "unix:%s", dpath);
	CU_ASSERT_FATAL(vmig_listen(dst.s, daddr, NULL, 0) == 0);
	CU_ASSERT_FATAL(pthread_create(&dst.thread, NULL, receive_main,
				       &dst) == 0);
	relay_begin(&relay, 9, dpath, D2S, (uint64_t)started, true);

	memset(&src, 0, sizeof(src));
	snprintf(text, sizeof(text),
		 "{ \"role\": \"source\", \"transport\": \"%s\",\n"
		 "  \"memory\": [ { \"name\": \"ram\", \"gpa\": 0,\n"
		 "                  \"size\": %u } ],\n"
		 "  \"policies\": { \"downtime_limit_ms\": 60000,\n"
		 "                  \"switchover_timeout_ms\": %u },\n"
		 "  \"kernel\": { \"type\": \"simulated\",\n"
		 "              \"devices\": [] } }\n",
		 relay.src_addr, TINY_PAGES * PG, SMALL_MS);
	ret = vmig_config_parse(text, strlen(text), NULL, &cfg, err,
				sizeof(err));
	if (ret < 0)
		fprintf(stderr, "\n  config: %s\n", err);
	CU_ASSERT_FATAL(ret == 0);
	CU_ASSERT_FATAL(vmig_session_new(&h.p, &src.s) == 0);
	CU_ASSERT_FATAL(vmig_session_configure(src.s, cfg) == 0);
	vmig_config_free(cfg);
	ret = vmig_run(src.s, NULL);
	relay_stop(&relay);
	pthread_join(dst.thread, NULL);
	CU_ASSERT_EQUAL(ret, VMIG_EUNRESOLVED);
	CU_ASSERT_EQUAL(dst.ret, 0);
	rep = json_session_report(src.s);
	CU_ASSERT_STRING_EQUAL(str(rep, "result"), "unresolved");
	cJSON_Delete(rep);

	/* Nothing is left to resume the guest: refused, still unresolved. */
	CU_ASSERT_EQUAL(vmig_resolve(src.s, VMIG_RESOLVE_RESUME), -EINVAL);
	CU_ASSERT(has(vmig_errmsg(src.s), "vmig_run's simulated guest, "
					  "which ended with the run"));
	CU_ASSERT_EQUAL(vmig_set_vmm_ops(src.s, &ops, &src.vmm), -EBUSY);
	rep = json_session_report(src.s);
	CU_ASSERT_STRING_EQUAL(str(rep, "result"), "unresolved");
	cJSON_Delete(rep);
	/* The destination runs it: that settles. */
	CU_ASSERT_EQUAL(vmig_resolve(src.s, VMIG_RESOLVE_DESTINATION), 0);
	CU_ASSERT_EQUAL(atomic_load(&src.vmm.resumes), 0);
	vmig_session_free(src.s);
	side_free(&dst);
	guest_unmap(&g);
	watchdog_disarm();
}

/*
 * Cancelled while the source waits for the ACK: the report says how
 * long the guest was stopped (not 0) and what vmig waited for, and the
 * message does not blame an iteration. The cancel comes from the log
 * line that says everything was sent, so it lands in that wait.
 */
static void cancel_now(void)
{
	CU_ASSERT_EQUAL(vmig_cancel(cancel_target), 0);
}

static void test_cancel_awaiting_ack(void)
{
	struct guest g;
	struct relay cal;
	struct outcome o;
	static struct side src, dst;
	int64_t ack;

	watchdog_arm("cancel while awaiting ACK");
	guest_map(&g, TINY_PAGES * PG, false);
	calibrate(&g, &cal);
	ack = frame_off(&cal, D2S, VMIG_FRAME_ACK + 0);
	CU_ASSERT_FATAL(ack > 0);
	/* The relay holds the ACK; the bound is far (60 s). */
	stop_gate = 0;
	cancel_gate = true;
	run_one(&o, &g, 8, D2S, (uint64_t)ack, true, 0, 60000, &src, &dst);
	cancel_gate = false;
	CU_ASSERT_EQUAL(o.ret, -ECANCELED);
	CU_ASSERT(has(o.msg, "cancelled (vmig_cancel) after the switchover, "
			     "waiting for the destination's ACK; the guest "
			     "resumes on the source"));
	CU_ASSERT_EQUAL(o.stops, 1);
	CU_ASSERT_EQUAL(o.resumes, 1);
	CU_ASSERT_EQUAL(o.starts, 0);
	CU_ASSERT_STRING_EQUAL(str(o.rep, "result"), "cancelled");
	CU_ASSERT_STRING_EQUAL(str(o.rep, "awaited"), "the destination's ACK");
	CU_ASSERT(cJSON_GetNumberValue(cJSON_GetObjectItem(o.rep,
							   "downtime_ms")) >
		  0);
	cJSON_Delete(o.rep);
	vmig_session_free(src.s);
	vmig_session_free(dst.s);
	guest_unmap(&g);
	watchdog_disarm();
}

/* ------------------------------------------------------------------ */
/* A migrated session                                                  */

/*
 * Once the guest was migrated and committed, the session no longer owns
 * it: a second vmig_migrate is refused with its own error, and neither
 * stop nor resume is called (a resume would run the guest on both
 * hosts).
 */
static void test_second_migrate_refused(void)
{
	struct guest g;
	static struct side src, dst;
	cJSON *rep;

	guest_map(&g, TINY_PAGES * PG, true);
	side_new(&src, VMIG_ROLE_SOURCE, g.smem, g.len, NULL);
	side_new(&dst, VMIG_ROLE_DESTINATION, g.dmem, g.len, NULL);
	policies(&src, 0, 0, 0);
	CU_ASSERT_EQUAL_FATAL(vmig_migrate_local(src.s, dst.s), 0);
	CU_ASSERT_EQUAL(atomic_load(&src.vmm.stops), 1);
	CU_ASSERT_EQUAL(atomic_load(&dst.vmm.starts), 1);
	CU_ASSERT_EQUAL(vmig_migrate(src.s, "unix:/nonexistent/vmig.sock"),
			VMIG_EMIGRATED);
	CU_ASSERT(has(vmig_errmsg(src.s), "migrate: the guest was migrated "
					  "to socketpair and committed "
					  "already"));
	CU_ASSERT_EQUAL(vmig_migrate_local(src.s, dst.s), VMIG_EMIGRATED);
	CU_ASSERT_EQUAL(atomic_load(&src.vmm.stops), 1);
	CU_ASSERT_EQUAL(atomic_load(&src.vmm.resumes), 0);
	/* The report still tells the migration that happened. */
	rep = json_session_report(src.s);
	CU_ASSERT_STRING_EQUAL(str(rep, "result"), "completed");
	CU_ASSERT_STRING_EQUAL(str(rep, "guest"), "migrated");
	/* A policy of 0 is the default bound, never "no bound". */
	CU_ASSERT_EQUAL(cJSON_GetNumberValue(cJSON_GetObjectItem(
				cJSON_GetObjectItem(rep, "policies"),
				"switchover_timeout_ms")),
			VMIG_DEFAULT_SWITCHOVER_TIMEOUT_MS);
	cJSON_Delete(rep);
	CU_ASSERT_STRING_EQUAL(vmig_strerror(VMIG_EMIGRATED),
			       "the guest was migrated away already");
	vmig_session_free(src.s);
	vmig_session_free(dst.s);
	guest_unmap(&g);
}

/*
 * COMMIT arrived, but the destination's VMM cannot start the guest: the
 * destination says so (ERROR) and never runs it, so the source, which
 * wrote COMMIT, may and does resume it.
 */
static int cb_start_fails(void *o)
{
	atomic_fetch_add(&((struct vmm *)o)->starts, 1);
	return -EIO;
}

static void test_destination_cannot_start(void)
{
	struct vmig_vmm_ops failing = ops;
	struct guest g;
	static struct side src, dst;
	cJSON *rep;

	failing.start = cb_start_fails;
	guest_map(&g, TINY_PAGES * PG, true);
	side_new(&src, VMIG_ROLE_SOURCE, g.smem, g.len, NULL);
	side_new(&dst, VMIG_ROLE_DESTINATION, g.dmem, g.len, NULL);
	CU_ASSERT_FATAL(vmig_set_vmm_ops(dst.s, &failing, &dst.vmm) == 0);
	policies(&src, 0, 0, 0);
	CU_ASSERT_EQUAL(vmig_migrate_local(src.s, dst.s), VMIG_EPROTO);
	CU_ASSERT(has(vmig_errmsg(src.s), "the destination did not start the "
					  "guest after COMMIT: the source "
					  "committed, but the VMM's start "
					  "failed"));
	CU_ASSERT(has(vmig_errmsg(src.s), "the guest resumes on the source"));
	CU_ASSERT_EQUAL(atomic_load(&src.vmm.stops), 1);
	CU_ASSERT_EQUAL(atomic_load(&src.vmm.resumes), 1);
	/* Its start was tried once, and failed: the guest runs nowhere else. */
	CU_ASSERT_EQUAL(atomic_load(&dst.vmm.starts), 1);
	rep = json_session_report(dst.s);
	CU_ASSERT_STRING_EQUAL(str(rep, "guest"), "not started");
	cJSON_Delete(rep);
	rep = json_session_report(src.s);
	CU_ASSERT_STRING_EQUAL(str(rep, "guest"), "running");
	cJSON_Delete(rep);
	vmig_session_free(src.s);
	vmig_session_free(dst.s);
	guest_unmap(&g);
}

/* ------------------------------------------------------------------ */
/* A wrong digest, then a close                                        */

/*
 * The source's digest runs on libuv's thread pool. The test fills the
 * pool with blockers, so the digest cannot finish before the source has
 * seen both the ACK and the close; the gate opens on the source's log
 * line for the close. A fake destination acknowledges with a wrong
 * digest and closes at once.
 */
#define POOL 2
static pthread_mutex_t pool_lock = PTHREAD_MUTEX_INITIALIZER;
static pthread_cond_t pool_cond = PTHREAD_COND_INITIALIZER;
static unsigned int pool_busy;
static bool pool_open;

static void blocker_work(uv_work_t *w)
{
	(void)w;
	pthread_mutex_lock(&pool_lock);
	pool_busy++;
	pthread_cond_broadcast(&pool_cond);
	while (!pool_open)
		pthread_cond_wait(&pool_cond, &pool_lock);
	pthread_mutex_unlock(&pool_lock);
}

static void blocker_done(uv_work_t *w, int status)
{
	(void)w;
	(void)status;
}

static void gate_open(void)
{
	pthread_mutex_lock(&pool_lock);
	pool_open = true;
	pthread_cond_broadcast(&pool_cond);
	pthread_mutex_unlock(&pool_lock);
}

struct blockers {
	uv_loop_t loop;
	uv_work_t w[POOL];
	pthread_t thread;
};

static void *blockers_main(void *opaque)
{
	struct blockers *b = opaque;

	uv_run(&b->loop, UV_RUN_DEFAULT);
	return NULL;
}

struct fake_dst {
	int lfd;
	uint64_t digest;   /* what it acknowledges with */
	bool after_commit; /* wait for COMMIT, then answer garbage */
	uint64_t pages;
	bool acked, committed;
};

static void *fake_dst_main(void *opaque)
{
	struct fake_dst *f = opaque;
	static uint8_t buf[1 << 20];
	uint8_t hdr[HDR], out[HDR];
	int fd = accept(f->lfd, NULL, NULL), t;

	if (fd < 0)
		return NULL;
	while ((t = read_frame(fd, hdr, buf, sizeof(buf))) > 0) {
		if (t == VMIG_FRAME_HELLO) {
			vmig_frame_pack(out, VMIG_FRAME_WELCOME, 0, 0, 0, 0,
					NULL);
			vmig_test_send_all(fd, out, HDR);
		} else if (t == VMIG_FRAME_PAGES || t == VMIG_FRAME_ZERO) {
			f->pages += get_le(hdr + 48, 8);
		} else if (t == VMIG_FRAME_COMPLETE) {
			vmig_frame_pack(out, VMIG_FRAME_ACK, 0, f->digest,
					f->pages, 0, NULL);
			vmig_test_send_all(fd, out, HDR);
			f->acked = true;
			/* A wrong digest, then goodbye. */
			if (!f->after_commit)
				break;
		} else if (t == VMIG_FRAME_COMMIT) {
			/* Not a frame: whether it started, nobody knows. */
			f->committed = true;
			memset(out, 0x5a, HDR);
			vmig_test_send_all(fd, out, HDR);
			break;
		}
	}
	close(fd);
	return NULL;
}

static void test_wrong_digest_then_close(void)
{
	struct sockaddr_un sa = { .sun_family = AF_UNIX };
	struct fake_dst f = { .digest = 0x0123456789abcdefull };
	struct blockers b;
	struct guest g;
	static struct side src;
	pthread_t th;
	char addr[120];
	unsigned int i;
	int ret;

	watchdog_arm("wrong digest, then a close");
	/* Every pool thread blocked, before the migration queues work. */
	CU_ASSERT_FATAL(uv_loop_init(&b.loop) == 0);
	for (i = 0; i < POOL; i++)
		CU_ASSERT_FATAL(uv_queue_work(&b.loop, &b.w[i], blocker_work,
					      blocker_done) == 0);
	CU_ASSERT_FATAL(pthread_create(&b.thread, NULL, blockers_main, &b) ==
			0);
	pthread_mutex_lock(&pool_lock);
	while (pool_busy < POOL)
		pthread_cond_wait(&pool_cond, &pool_lock);
	pthread_mutex_unlock(&pool_lock);

	guest_map(&g, TINY_PAGES * PG, true);
	side_new(&src, VMIG_ROLE_SOURCE, g.smem, g.len, NULL);
	policies(&src, 0, 0, 0);
	/*
	 * The digest may run once the source has seen the close (or has
	 * given up on it, as it did before it waited for the digest).
	 */
	src.gate_on[0] = "the destination closed after its ACK";
	src.gate_on[1] = "connection lost";
	src.gate = gate_open;
	snprintf(sa.sun_path, sizeof(sa.sun_path), "/tmp/vmig-end-%d-f",
		 (int)getpid());
	unlink(sa.sun_path);
	snprintf(addr, sizeof(addr), "unix:%s", sa.sun_path);
	f.lfd = socket(AF_UNIX, SOCK_STREAM, 0);
	CU_ASSERT_FATAL(f.lfd >= 0);
	CU_ASSERT_FATAL(bind(f.lfd, (struct sockaddr *)&sa, sizeof(sa)) == 0);
	CU_ASSERT_FATAL(listen(f.lfd, 1) == 0);
	CU_ASSERT_FATAL(pthread_create(&th, NULL, fake_dst_main, &f) == 0);
	ret = vmig_migrate(src.s, addr);
	/* Whatever happened, the pool must drain. */
	gate_open();
	pthread_join(th, NULL);
	pthread_join(b.thread, NULL);
	uv_loop_close(&b.loop);
	CU_ASSERT(f.acked);
	CU_ASSERT_EQUAL(ret, VMIG_EMISMATCH);
	CU_ASSERT(has(vmig_errmsg(src.s), "the destination's memory digest "
					  "0x0123456789abcdef differs from "
					  "the source's"));
	CU_ASSERT(has(vmig_errmsg(src.s), "(then it closed the connection)"));
	CU_ASSERT_EQUAL(atomic_load(&src.vmm.stops), 1);
	CU_ASSERT_EQUAL(atomic_load(&src.vmm.resumes), 1);
	vmig_session_free(src.s);
	close(f.lfd);
	unlink(sa.sun_path);
	guest_unmap(&g);
	watchdog_disarm();
}

/*
 * After COMMIT, the destination answers with bytes that are no frame:
 * the source cannot tell whether it started the guest, so it must not
 * resume it: the outcome is unresolved.
 */
static void test_garbage_after_commit(void)
{
	struct sockaddr_un sa = { .sun_family = AF_UNIX };
	struct fake_dst f = { .after_commit = true };
	static struct side src;
	struct guest g;
	pthread_t th;
	char addr[120];
	int ret;

	watchdog_arm("garbage after COMMIT");
	guest_map(&g, TINY_PAGES * PG, true);
	side_new(&src, VMIG_ROLE_SOURCE, g.smem, g.len, NULL);
	policies(&src, 0, 0, 0);
	/* The guest does not change: its digest is known in advance. */
	CU_ASSERT_FATAL(vmig_memory_digest(src.s, &f.digest) == 0);
	snprintf(sa.sun_path, sizeof(sa.sun_path), "/tmp/vmig-end-%d-g",
		 (int)getpid());
	unlink(sa.sun_path);
	snprintf(addr, sizeof(addr), "unix:%s", sa.sun_path);
	f.lfd = socket(AF_UNIX, SOCK_STREAM, 0);
	CU_ASSERT_FATAL(f.lfd >= 0);
	CU_ASSERT_FATAL(bind(f.lfd, (struct sockaddr *)&sa, sizeof(sa)) == 0);
	CU_ASSERT_FATAL(listen(f.lfd, 1) == 0);
	CU_ASSERT_FATAL(pthread_create(&th, NULL, fake_dst_main, &f) == 0);
	ret = vmig_migrate(src.s, addr);
	pthread_join(th, NULL);
	CU_ASSERT(f.committed);
	CU_ASSERT_EQUAL(ret, VMIG_EUNRESOLVED);
	CU_ASSERT(has(vmig_errmsg(src.s), "bad reply from the destination: "
					  "frame 2: bad magic"));
	CU_ASSERT(has(vmig_errmsg(src.s), "after COMMIT was queued: the "
					  "destination may or may not run "
					  "the guest"));
	CU_ASSERT_EQUAL(atomic_load(&src.vmm.stops), 1);
	CU_ASSERT_EQUAL(atomic_load(&src.vmm.resumes), 0);
	/* The fake never started it: the VMM resumes it here. */
	CU_ASSERT_EQUAL(vmig_resolve(src.s, VMIG_RESOLVE_RESUME), 0);
	CU_ASSERT_EQUAL(atomic_load(&src.vmm.resumes), 1);
	vmig_session_free(src.s);
	close(f.lfd);
	unlink(sa.sun_path);
	guest_unmap(&g);
	watchdog_disarm();
}

/* ------------------------------------------------------------------ */
/* A device whose state size is unknown                                */

/*
 * The kernel wrapper fails every MIG_DATA_SIZE query (a driver that
 * errs): everything else passes through to the simulator.
 */
static const struct vmig_host *real_host;

static int failing_ioctl(void *kctx, int fd, unsigned long request,
			 void *arg)
{
	if (request == VFIO_DEVICE_FEATURE) {
		uint32_t flags;

		memcpy(&flags, (uint8_t *)arg + 4, 4);
		if ((flags & 0xffffu) == VK_VFIO_DEVICE_FEATURE_MIG_DATA_SIZE)
			return -EIO;
	}
	return real_host->ioctl(kctx, fd, request, arg);
}

/* A device with VFIO migration (stop-copy) in its own container. */
static void add_mig_device(vmig_session *s, struct ksim *k,
			   const struct vmig_host *h, const char *name,
			   uint32_t state_size)
{
	struct ksim_device_params dp = {
		.name = name, .kind = KSIM_DEV_PCI, .group = 1,
		.feature = { .migration = true, .state_size = state_size },
	};
	struct vmig_iommu io = { .size = sizeof(io),
				 .kind = VMIG_IOMMU_TYPE1, .name = name };
	struct vmig_device d = { .size = sizeof(d),
				 .kind = VMIG_DEVICE_VFIO_PCI, .name = name };
	int cfd, gfd;

	CU_ASSERT_FATAL(ksim_device_add(k, &dp, NULL) == 0);
	cfd = h->open(h->kctx, "/dev/vfio/vfio", 2);
	gfd = h->open(h->kctx, "/dev/vfio/1", 2);
	CU_ASSERT_FATAL(cfd >= 0 && gfd >= 0);
	CU_ASSERT_FATAL(h->ioctl(h->kctx, gfd, VFIO_GROUP_SET_CONTAINER,
				 &cfd) == 0);
	CU_ASSERT_FATAL(h->ioctl(h->kctx, cfd, VFIO_SET_IOMMU,
				 (void *)(uintptr_t)VFIO_TYPE1v2_IOMMU) == 0);
	io.fd = cfd;
	CU_ASSERT_FATAL(vmig_iommu_add(s, &io, &d.iommu_id) == 0);
	d.group_fd = gfd;
	d.device_fd = h->ioctl(h->kctx, gfd, VFIO_GROUP_GET_DEVICE_FD,
			       (void *)name);
	CU_ASSERT_FATAL(d.device_fd >= 0);
	CU_ASSERT_FATAL(vmig_device_add(s, &d, NULL) == 0);
}

static void test_unknown_device_state_size(void)
{
	struct ksim *ks, *kd;
	struct vmig_host wrapped;
	struct guest g;
	static struct side src, dst;
	cJSON *rep, *unk;
	int ret;

	watchdog_arm("unknown device state size");
	guest_map(&g, TINY_PAGES * PG, true);
	CU_ASSERT_FATAL(ksim_new(NULL, &ks) == 0);
	CU_ASSERT_FATAL(ksim_new(NULL, &kd) == 0);
	real_host = ksim_host(ks);
	wrapped = *real_host;
	wrapped.ioctl = failing_ioctl;
	side_new(&src, VMIG_ROLE_SOURCE, g.smem, g.len, &wrapped);
	side_new(&dst, VMIG_ROLE_DESTINATION, g.dmem, g.len, ksim_host(kd));
	add_mig_device(src.s, ks, &wrapped, "nic0", 8192);
	add_mig_device(dst.s, kd, ksim_host(kd), "nic0", 8192);
	/*
	 * A limit a guest of four pages meets at once, and two
	 * iterations: only the device's unknown state can keep the
	 * migration from switching over.
	 */
	policies(&src, 0, 0, 2);
	ret = vmig_migrate_local(src.s, dst.s);
	CU_ASSERT_EQUAL(ret, -ETIMEDOUT);
	CU_ASSERT(has(vmig_errmsg(src.s), "did not converge in 2 "
					  "iteration(s)"));
	CU_ASSERT(has(vmig_errmsg(src.s), "state size unknown, counted as "
					  "100 GiB: nic0"));
	CU_ASSERT(has(src.log, "device nic0: its state size is unknown"));
	CU_ASSERT_EQUAL(atomic_load(&src.vmm.stops), 0);
	CU_ASSERT_EQUAL(atomic_load(&dst.vmm.starts), 0);
	rep = json_session_report(src.s);
	unk = cJSON_GetObjectItem(rep, "state_size_unknown");
	CU_ASSERT(cJSON_IsArray(unk) && cJSON_GetArraySize(unk) == 1);
	CU_ASSERT_STRING_EQUAL(cJSON_GetStringValue(cJSON_GetArrayItem(unk,
								       0)),
			       "nic0");
	cJSON_Delete(rep);
	vmig_session_free(src.s);
	vmig_session_free(dst.s);
	ksim_free(ks);
	ksim_free(kd);
	guest_unmap(&g);
	watchdog_disarm();
}

static CU_TestInfo cut_tests[] = {
	{ "every cut, source to destination",
	  test_cut_source_to_destination },
	{ "every cut, destination to source",
	  test_cut_destination_to_source },
	{ "every cut, both directions, with device state",
	  test_cut_with_device },
	CU_TEST_INFO_NULL,
};

static CU_TestInfo stall_tests[] = {
	{ "handshake", test_stall_handshake },
	{ "pre-copy", test_stall_precopy },
	{ "after SWITCHOVER", test_stall_after_switchover },
	{ "after COMPLETE (ACK held)", test_stall_after_complete },
	{ "after COMMIT (STARTED held)", test_stall_after_commit },
	{ "COMMIT held", test_stall_commit_held },
	{ "COMMIT held: callbacks, device and downtime kept",
	  test_unresolved_keeps_owners },
	{ "vmig_run's simulated guest, STARTED held",
	  test_run_simulated_unresolved },
	{ "cancelled while awaiting ACK", test_cancel_awaiting_ack },
	CU_TEST_INFO_NULL,
};

static CU_TestInfo other_tests[] = {
	{ "a migrated session refuses a second migration",
	  test_second_migrate_refused },
	{ "the destination cannot start after COMMIT",
	  test_destination_cannot_start },
	{ "a wrong digest, then a close", test_wrong_digest_then_close },
	{ "garbage after COMMIT", test_garbage_after_commit },
	{ "a device whose state size is unknown",
	  test_unknown_device_state_size },
	CU_TEST_INFO_NULL,
};

static CU_SuiteInfo suites[] = {
	VMIG_SUITE("cut", cut_tests),
	VMIG_SUITE("stall", stall_tests),
	VMIG_SUITE("other", other_tests),
	CU_SUITE_INFO_NULL,
};

int main(void)
{
	/*
	 * The digest test blocks every thread of libuv's pool: it must
	 * know their number, read once, at the pool's first use.
	 */
	setenv("UV_THREADPOOL_SIZE", "2", 1);
	return vmig_test_run(suites);
}
