/*
 * precopy.c: the source of a migration, its phase machine.
 *
 * This file owns the source's phases and what moves it from one to the
 * next: connecting, HELLO and the wait for WELCOME, the pre-copy
 * iterations (sync, then a pass of the sections while the guest runs;
 * converge.c decides what follows), the switchover (the VMM's stop, the
 * sections' stop, the final sync, the last pass with DATA_CRC), the
 * digest comparison, COMMIT and the wait for STARTED, and the way back
 * on any failure before COMMIT is written: ERROR to the destination when
 * it can, the sections and the guest running again, tracking stopped,
 * and a message that says why. Once COMMIT is on the socket only
 * STARTED (committed) or an ERROR from the destination (it will never
 * start: resume) settles who runs the guest; anything else leaves it
 * unresolved, the guest paused for vmig_resolve(). Every wait while the
 * guest is stopped is bounded by switchover_timeout_ms; before, the
 * handshake by handshake_timeout_ms and the pre-copy's stream by
 * idle_timeout_ms (watch.c).
 *
 * What travels is the sections' (section_ram.c, section_devstate.c);
 * the writes are writer.c's (at most INFLIGHT_MAX bytes queued, refilled
 * on each completion), the pacing arithmetic pace.c's, the replies'
 * checks reply.c's, the frames proto.c's.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "converge.h"
#include "engine.h"
#include "pace.h"
#include "reply.h"
#include "section.h"
#include "watch.h"
#include "writer.h"

#define INFLIGHT_MAX (32ull << 20)
#define PROGRESS_US 100000u  /* progress callback while sending */
#define LINGER_MS 2000u      /* wait for an ERROR to go, at most */
/* The same after vmig_cancel: the caller wants its call back now. */
#define CANCEL_LINGER_MS 20u
#define BROKEN_MS 500u       /* after a write error, wait for the reason */

enum src_phase {
	SP_CONNECT, /* connecting */
	SP_HELLO,   /* HELLO sent, waiting for WELCOME */
	SP_PRECOPY, /* iterations while the guest runs */
	SP_FINAL,   /* guest stopped: the rest, with DATA_CRC */
	SP_ACK,     /* COMPLETE sent, waiting for ACK */
	SP_COMMIT,  /* COMMIT queued: waiting for STARTED */
	SP_DONE,    /* committed: the destination started the guest */
	SP_FAILED,
	SP_UNRESOLVED, /* COMMIT written, STARTED never came */
};

struct vmig_src {
	vmig_session *s;
	struct vmig_engine *e;
	uv_loop_t *loop;
	enum src_phase phase;
	char connect_err[512];
	/* Connecting, not connected yet: a failure abandons it. */
	struct vmig_conn *connecting;

	/* Sending. */
	struct vmig_writer w;
	bool scan_done;         /* the batched sections' pass is over */
	bool tail_queued;       /* FINAL: device state, ends, COMPLETE */
	uint64_t pages_total;   /* PAGES and ZERO pages queued */

	/* The iteration being sent: its record is s->stats.iters[it]. */
	uint32_t iteration;
	size_t it;
	uint64_t it_start_us;
	uint64_t it_bytes0;
	uint64_t last_sync_us;
	struct vmig_converge_rates rates; /* the throughput estimate */
	uint64_t dirty_rate;
	uint64_t expected_us;
	uint64_t mem_bytes;      /* all of guest memory */
	double digest_rate;      /* strict: what one core hashes, measured */
	bool want_switchover;    /* the timeout said force */
	uint64_t last_progress_us;

	/* Pacing under bandwidth_limit: a token bucket. */
	uv_timer_t pace;
	struct vmig_pace bucket;
	uv_timer_t timeout;
	uv_timer_t linger;       /* bounds a last wait before closing */
	bool linger_closed;
	uv_async_t cancel;
	int broken;              /* a write failed: the reason may follow */
	/* Bounds the time the guest stays stopped (switchover_timeout_ms). */
	uv_timer_t stopped;
	/* Bounds the handshake and an idle pre-copy stream. */
	struct vmig_watch watch;
	bool stop_called;        /* the VMM's stop ran: resume is owed */
	bool commit_written;     /* COMMIT's write completed */
	/*
	 * The destination cannot start the guest: COMMIT never left in
	 * full, or the destination said ERROR. Only then may a failure
	 * after COMMIT was queued resume the guest.
	 */
	bool no_start;
	bool peer_gone;          /* the destination closed the connection */
	int peer_gone_err;

	/* The source's digest, computed while the rest is sent. */
	uint64_t complete_us;    /* COMPLETE written */
	uint64_t digest_t0;
	uv_work_t work;
	bool work_started, work_done;
	bool work_stop;          /* the outcome is known: stop hashing */
	uint64_t digest;
	bool ack;
	uint64_t ack_digest, ack_pages;
	uint64_t ack_state;     /* the VMM state check the ACK carried */
	bool audited;            /* audit: the comparison is made */

	/* Replies: header, then an ERROR's message. */
	struct vmig_reply reply;
	bool welcomed;

	/* The outcome. */
	bool finished;
	int result;
	char errmsg[1024];
	uint64_t start_us, stop_us;

	/*
	 * What travels: guest RAM, then device state. The pass over the
	 * batched ones (RAM) paces the iteration; the others put their
	 * frames between its batches, and their rest after its last pass.
	 */
	struct vmig_sections set;

	/* vmig_migrate_local: the destination on the same loop. */
	struct vmig_dst *dst;
};

static void src_pump(struct vmig_src *src);
static int src_open_chans(struct vmig_src *src, const uint64_t token[2]);
static void src_switchover(struct vmig_src *src);
static int src_ctl(struct vmig_src *src, const uint8_t hdr[VMIG_FRAME_HDR],
		   void *payload, size_t len);
__attribute__((format(printf, 3, 4))) static void
src_fail(struct vmig_src *src, int err, const char *fmt, ...);
static void stopped_expired(uv_timer_t *t);

static struct vmig_iter_stats *cur_iter(struct vmig_src *src)
{
	return &src->s->stats.iters[src->it];
}

/* ------------------------------------------------------------------ */
/* Writes                                                              */

/* Writes b, and spends its bytes from the bandwidth limit's bucket. */
static int src_submit(struct vmig_src *src, struct vmig_batch *b)
{
	uint64_t bytes = b->bytes;
	int ret;

	ret = vmig_batch_submit(b);
	if (ret == 0) {
		src->bucket.rate = src->e->pol.bandwidth_limit;
		vmig_pace_spend(&src->bucket, bytes);
	}
	return ret;
}

/*
 * Queues one control frame, its header encoded, with an optional payload:
 * with own, it takes the payload (freed once written, or now on failure);
 * without, the payload must live until written.
 */
static int src_ctl_frame(struct vmig_src *src,
			 const uint8_t hdr[VMIG_FRAME_HDR], void *payload,
			 size_t len, bool own)
{
	uint32_t type = vmig_frame_type_of(hdr);
	struct vmig_batch *bt;
	int ret;

	if (src->finished) {
		if (own)
			free(payload);
		return -ECANCELED;
	}
	/* A COMMIT that fails here was never written. */
	bt = vmig_batch_ctl(&src->w);
	if (!bt) {
		if (own)
			free(payload);
		src->no_start = type == VMIG_FRAME_COMMIT;
		src_fail(src, -ENOMEM, "out of memory");
		return -ENOMEM;
	}
	if (payload && own)
		bt->heap[bt->nheap++] = payload;
	memcpy(vmig_batch_hdr(bt), hdr, VMIG_FRAME_HDR);
	vmig_batch_frame(bt, payload, len);
	bt->complete = type == VMIG_FRAME_COMPLETE;
	bt->commit = type == VMIG_FRAME_COMMIT;
	ret = src_submit(src, bt);
	if (ret < 0) {
		src->no_start = type == VMIG_FRAME_COMMIT;
		src_fail(src, ret, "writing %s to %s: %s",
			 vmig_frame_name(type), vmig_conn_peer(src->w.conn),
			 vmig_strerror(ret));
	}
	return ret;
}

/*
 * A pass begins (ITERATION, SWITCHOVER, already queued on the main
 * stream): each data connection carries the marker too, before the
 * pass's pages (channels.h says why).
 */
static int src_marker(struct vmig_src *src, const uint8_t hdr[VMIG_FRAME_HDR])
{
	int ret;

	if (!src->w.chans)
		return 0;
	ret = vmig_chans_marker(src->w.chans, hdr);
	if (ret < 0)
		src_fail(src, ret, "queueing %s on the data connections: %s",
			 vmig_frame_name(vmig_frame_type_of(hdr)),
			 vmig_strerror(ret));
	return ret;
}

/* Queues one control frame with a payload it takes (or none). */
static int src_ctl(struct vmig_src *src, const uint8_t hdr[VMIG_FRAME_HDR],
		   void *payload, size_t len)
{
	return src_ctl_frame(src, hdr, payload, len, true);
}

/* The public phase of a source phase (vmig_query, events). */
static uint32_t public_phase(enum src_phase phase)
{
	switch (phase) {
	case SP_CONNECT:
	case SP_HELLO:
		return VMIG_PHASE_SETUP;
	case SP_PRECOPY:
		return VMIG_PHASE_PRECOPY;
	case SP_FINAL:
	case SP_ACK:
		return VMIG_PHASE_SWITCHOVER;
	case SP_COMMIT:
		return VMIG_PHASE_COMMIT;
	case SP_DONE:
		return VMIG_PHASE_COMPLETED;
	case SP_FAILED:
		return VMIG_PHASE_FAILED;
	default:
		return VMIG_PHASE_UNRESOLVED;
	}
}

/* Moves to phase, and says so (vmig_query, the event callback). */
static void src_phase(struct vmig_src *src, enum src_phase phase)
{
	src->phase = phase;
	vmig_control_phase(src->e, public_phase(phase), src->result,
			   phase >= SP_FAILED ? src->errmsg : NULL);
}

static void src_progress(struct vmig_src *src, bool force)
{
	struct vmig_progress p = { .size = sizeof(p) };
	struct vmig_status st = { .size = sizeof(st) };
	uint64_t now = vmig_now_us();
	vmig_session *s = src->s;

	if (!force && now - src->last_progress_us < PROGRESS_US)
		return;
	src->last_progress_us = now;
	p.iteration = src->it < s->stats.nr_iters ? cur_iter(src)->iteration
						  : src->iteration;
	p.pages_dirty = src->it < s->stats.nr_iters ? cur_iter(src)->pages_dirty
						    : 0;
	p.bytes_left = vmig_section_ram_left(&src->set.sec[VMIG_SECTION_RAM]) *
		       VMIG_PAGE_SIZE;
	p.dirty_rate = src->dirty_rate;
	p.bandwidth = (uint64_t)src->rates.wire_rate;
	if (!p.bandwidth && now > src->it_start_us)
		p.bandwidth = (src->w.bytes_done - src->it_bytes0) * 1000000u /
			      (now - src->it_start_us + 1);
	p.expected_downtime_us = src->expected_us;
	p.phase = public_phase(src->phase);
	p.bytes_sent = src->w.bytes_done;
	p.elapsed_us = vmig_control_elapsed(src->e);
	st.iteration = p.iteration;
	st.pages_dirty = p.pages_dirty;
	st.bytes_left = p.bytes_left;
	st.dirty_rate = p.dirty_rate;
	st.bandwidth = p.bandwidth;
	st.expected_downtime_us = p.expected_downtime_us;
	st.bytes_sent = p.bytes_sent;
	vmig_control_publish(src->e, &st);
	if (s->progress)
		s->progress(s->progress_opaque, &p);
}

/* ------------------------------------------------------------------ */
/* Sections and their sinks                                            */

/* Control frames, one write each, while less than INFLIGHT_MAX waits. */
struct ctl_sink {
	struct vmig_src *src;
	uint8_t hdr[VMIG_FRAME_HDR];
};

static uint8_t *ctl_sink_next(void *opaque)
{
	struct ctl_sink *cs = opaque;

	return cs->src->w.inflight < INFLIGHT_MAX ? cs->hdr : NULL;
}

static int ctl_sink_add(void *opaque, const void *data, size_t len, bool own)
{
	struct ctl_sink *cs = opaque;

	return src_ctl_frame(cs->src, cs->hdr, (void *)data, len, own);
}

/* A section failed (err): the source fails with its message. */
static int src_section_failed(struct vmig_src *src, int err)
{
	src_fail(src, err, "%s", src->set.why);
	return err;
}

/*
 * Fills b from the batched sections, within budget bytes; scan_done once
 * every one of them ended its pass.
 */
static void src_fill(struct vmig_src *src, struct vmig_batch *b,
		     uint64_t budget)
{
	struct vmig_batch_sink_state bs;
	struct vmig_section_sink out = { .it = cur_iter(src) };

	vmig_batch_sink(b, budget, &out, &bs);
	src->scan_done = vmig_sections_fill(&src->set, &out,
					    src->phase == SP_FINAL);
	b->pages = out.pages;
	src->pages_total += out.pages;
}

/* While the guest runs: what the other sections have now. */
static int src_save_live(struct vmig_src *src)
{
	struct ctl_sink cs = { .src = src };
	struct vmig_section_sink out = {
		ctl_sink_next, ctl_sink_add, &cs, cur_iter(src), 0,
	};
	int ret;

	ret = vmig_sections_save_live(&src->set, &out);
	src->pages_total += out.pages;
	return ret < 0 ? src_section_failed(src, ret) : 0;
}

/*
 * FINAL, the batched sections' last pass queued: the others' rest, then
 * COMPLETE.
 */
static void queue_tail(struct vmig_src *src)
{
	struct ctl_sink cs = { .src = src };
	struct vmig_section_sink out = {
		ctl_sink_next, ctl_sink_add, &cs, cur_iter(src), 0,
	};
	uint8_t hdr[VMIG_FRAME_HDR];
	int ret;

	ret = vmig_sections_save_final(&src->set, &out);
	src->pages_total += out.pages;
	if (ret < 0)
		src_section_failed(src, ret);
	if (ret <= 0)
		return;
	src->tail_queued = true;
	if (src->w.chans && vmig_chans_complete(src->w.chans) < 0) {
		src_fail(src, -ENOMEM, "out of memory");
		return;
	}
	vmig_enc_complete(hdr, src->pages_total, src->w.frames);
	if (src_ctl(src, hdr, NULL, 0) < 0)
		return;
	src_phase(src, SP_ACK);
	vmig_logf(src->s, VMIG_LOG_INFO,
		  "source: all sent (%llu pages, %llu frames); waiting for the "
		  "destination's digest",
		  (unsigned long long)src->pages_total,
		  (unsigned long long)src->w.frames);
}

static void pace_expired(uv_timer_t *t)
{
	src_pump(t->data);
}

/*
 * The bytes the bandwidth limit allows now; 0 with the pace timer set
 * for when a page's worth will be there.
 */
static uint64_t pace_budget(struct vmig_src *src)
{
	uint64_t budget, wait_us;

	/* The limit may change while a migration runs (vmig_set_policies). */
	src->bucket.rate = src->e->pol.bandwidth_limit;
	if (!src->bucket.rate)
		return VMIG_BATCH_BYTES;
	budget = vmig_pace_budget(&src->bucket, vmig_now_us(), VMIG_BATCH_BYTES,
				  &wait_us);
	if (!budget)
		uv_timer_start(&src->pace, pace_expired,
			       vmig_clock_wait_ms(wait_us), 0);
	return budget;
}

static void iteration_end(struct vmig_src *src);

static void src_pump(struct vmig_src *src)
{
	if (src->phase != SP_PRECOPY && src->phase != SP_FINAL)
		return;
	/* Work of its own (a sync, a pace wait) is not the peer's idling. */
	vmig_watch_touch(&src->watch);
	if (src->broken)
		return;
	while (!src->scan_done && !src->want_switchover &&
	       src->w.inflight < INFLIGHT_MAX) {
		struct vmig_batch *b;
		uint64_t budget;
		int ret;

		/*
		 * vmig_cancel() from another thread: back to the loop, which
		 * runs the cancel at once, between two batches.
		 */
		if (__atomic_load_n(&src->e->cancel_requested,
				    __ATOMIC_ACQUIRE))
			break;
		budget = pace_budget(src);
		if (!budget)
			break;
		b = vmig_batch_get(&src->w);
		if (!b)
			break;
		src_fill(src, b, budget);
		ret = src_submit(src, b);
		if (ret < 0) {
			src_fail(src, ret, "writing to %s: %s",
				 vmig_conn_peer(src->w.conn),
				 vmig_strerror(ret));
			return;
		}
		/* Device state goes between page batches. */
		if (src->phase == SP_PRECOPY && src_save_live(src) < 0)
			return;
	}
	if (src->phase == SP_FINAL && src->scan_done && !src->tail_queued) {
		queue_tail(src);
		return;
	}
	if (src->phase == SP_PRECOPY && src->w.batches_out == 0 &&
	    (src->scan_done || src->want_switchover))
		iteration_end(src);
}

static void src_close_conn(struct vmig_src *src);
static void src_committed(struct vmig_src *src);
static void broken_expired(uv_timer_t *t);
__attribute__((format(printf, 2, 3))) static void
src_unresolved(struct vmig_src *src, const char *fmt, ...);
static void src_lost_after_commit(struct vmig_src *src, int err);
__attribute__((format(printf, 3, 4))) static void
src_fail_quiet(struct vmig_src *src, int err, const char *fmt, ...);

static void src_written(void *opaque, const struct vmig_written *wr,
			int status)
{
	struct vmig_src *src = opaque;
	bool complete = wr->complete, commit = wr->commit, last = wr->last;

	if (last) {
		src_close_conn(src);
		return;
	}
	if (src->finished)
		return;
	if (commit) {
		/*
		 * A COMMIT that failed to go out in full never reached the
		 * destination as a frame (it acts only on a whole header with
		 * its CRC): the guest is still the source's. One that went
		 * out may have arrived: only STARTED or the destination's
		 * ERROR can tell now.
		 */
		if (status < 0) {
			src->no_start = true;
			src_fail_quiet(src, status,
				       "writing COMMIT to %s: %s: the "
				       "destination did not receive it; the "
				       "guest resumes on the source",
				       vmig_conn_peer(src->w.conn),
				       vmig_strerror(status));
			return;
		}
		src->commit_written = true;
		if (src->peer_gone)
			src_lost_after_commit(src, src->peer_gone_err);
		return;
	}
	if (status == -ECANCELED)
		return;
	if (status == 0)
		vmig_watch_touch(&src->watch);
	if (status < 0) {
		/*
		 * The destination may have closed after saying why (ERROR):
		 * give its reply a moment to arrive before blaming the pipe.
		 */
		if (!src->broken) {
			src->broken = status;
			uv_timer_start(&src->linger, broken_expired, BROKEN_MS,
				       0);
		}
		return;
	}
	if (complete) {
		struct vmig_iter_stats *it = cur_iter(src);

		src->complete_us = vmig_now_us();
		it->duration_us = src->complete_us - src->it_start_us;
		it->bytes = src->w.bytes_total - src->it_bytes0;
		src->e->st.final_send_us = src->complete_us - src->stop_us;
	}
	src_progress(src, false);
	src_pump(src);
}

/* ------------------------------------------------------------------ */
/* Iterations and convergence                                          */

static void iteration_begin(struct vmig_src *src, uint64_t dirty)
{
	struct vmig_iter_stats *it = cur_iter(src);
	uint8_t hdr[VMIG_FRAME_HDR];

	it->iteration = src->iteration;
	it->pages_dirty = dirty;
	src->it_start_us = vmig_now_us();
	src->it_bytes0 = src->w.bytes_total;
	vmig_sections_pass(&src->set, dirty, false);
	src->scan_done = false;
	vmig_enc_iteration(hdr, src->iteration);
	if (src_ctl(src, hdr, NULL, 0) < 0 || src_marker(src, hdr) < 0)
		return;
	vmig_logf(src->s, VMIG_LOG_INFO,
		  "source: iteration %u: %llu dirty pages",
		  src->iteration, (unsigned long long)dirty);
	src_pump(src);
}

/* Syncs every source (the session's observer sees it). */
static int64_t src_sync(struct vmig_src *src, struct vmig_iter_stats *it)
{
	int64_t n = vmig_dirty_sync(src->s);

	if (n >= 0)
		vmig_sync_figures(src->s, it);
	return n;
}

/*
 * The source gives up: max_iterations passed over the limit. The message
 * says which part of the expected downtime is over the limit and by how
 * much, and names the devices that made the estimate unknowable.
 */
static void iteration_give_up(struct vmig_src *src, uint64_t n,
			      const struct vmig_converge_decision *d)
{
	struct vmig_engine *e = src->e;
	char unknown[sizeof(e->st.unknown_state) + 64] = "";
	char why[256];
	char *c;

	vmig_converge_describe(d, why, sizeof(why));
	if (e->st.unknown_state[0])
		snprintf(unknown, sizeof(unknown),
			 " (state size unknown, counted as 100 GiB: %s)",
			 e->st.unknown_state);
	for (c = unknown; *c; c++)
		if (*c == '\n')
			*c = ',';
	e->st.cancelled = true;
	src_fail(src, -ETIMEDOUT,
		 "did not converge in %u iteration(s) (max_iterations): %llu "
		 "pages dirty; %s; mostly %s%s; the guest stays on the source",
		 src->iteration + 1, (unsigned long long)n, why,
		 vmig_converge_part_name(d->main), unknown);
}

/* After a sync that found n dirty pages: the policy decides, we act. */
static void iteration_decide(struct vmig_src *src, uint64_t n)
{
	struct vmig_engine *e = src->e;
	struct vmig_converge_input in = {
		.page_rate = src->rates.page_rate,
		/*
		 * Only strict hashes with the guest stopped: the source (in
		 * parallel with the last pages), then the destination (after
		 * COMPLETE), each on every core.
		 */
		.verify_bytes = e->pol.verify == VMIG_VERIFY_STRICT
					? 2 * src->mem_bytes /
						  vmig_digest_threads(src->s)
					: 0,
		.verify_rate = src->digest_rate,
		.downtime_limit_us = e->pol.downtime_limit_ms * 1000u,
		.iterations = src->iteration + 1,
		.max_iterations = e->pol.max_iterations,
		.force = e->pol.timeout_strategy ==
			 VMIG_TIMEOUT_STRATEGY_FORCE,
	};
	struct vmig_converge_decision d;
	char why[256];

	/* What the next iteration (or the stop) has to move, and how long. */
	vmig_sections_pass(&src->set, n, false);
	src->scan_done = false;
	in.dirty_bytes = vmig_sections_dirty(&src->set);
	/* Read only with a rate: an unknown size is logged when it counts. */
	if (in.page_rate > 0)
		in.device_bytes = vmig_sections_pending(&src->set);
	vmig_converge_decide(&in, &d);
	src->expected_us = d.expected_us;
	src_progress(src, true);
	vmig_converge_describe(&d, why, sizeof(why));
	{
		struct vmig_event ev = { .type = VMIG_EVENT_ITERATION,
					 .iteration = src->iteration,
					 .pages_dirty = n, .message = why };

		vmig_control_event(e, &ev);
		if (d.reason == VMIG_CONVERGE_WITHIN_LIMIT ||
		    d.reason == VMIG_CONVERGE_FORCED) {
			ev.type = VMIG_EVENT_CONVERGED;
			vmig_control_event(e, &ev);
		}
	}
	vmig_logf(src->s, VMIG_LOG_DEBUG, "source: iteration %u: %s: %s",
		  src->iteration, vmig_converge_action_name(d.action), why);
	switch (d.reason) {
	case VMIG_CONVERGE_WITHIN_LIMIT:
		vmig_logf(src->s, VMIG_LOG_INFO,
			  "source: converged after %u iteration(s): %llu "
			  "dirty pages, expected downtime %llu ms (limit %llu "
			  "ms)",
			  src->iteration + 1, (unsigned long long)n,
			  (unsigned long long)src->expected_us / 1000,
			  (unsigned long long)e->pol.downtime_limit_ms);
		src_switchover(src);
		return;
	case VMIG_CONVERGE_FORCED:
		vmig_logf(src->s, VMIG_LOG_WARN,
			  "source: not converged after %u iteration(s) "
			  "(expected downtime %llu ms, limit %llu ms): "
			  "switching over anyway (strategy force)",
			  src->iteration + 1,
			  (unsigned long long)src->expected_us / 1000,
			  (unsigned long long)e->pol.downtime_limit_ms);
		src_switchover(src);
		return;
	case VMIG_CONVERGE_MAX_ITERATIONS:
		iteration_give_up(src, n, &d);
		return;
	case VMIG_CONVERGE_OVER_LIMIT:
		break;
	}
	src->iteration++;
	iteration_begin(src, n);
}

/* The figures of the iteration just sent, then what comes next. */
static void iteration_end(struct vmig_src *src)
{
	struct vmig_iter_stats *it = cur_iter(src);
	uint64_t now = vmig_now_us(), handled, n;
	int64_t ret;

	it->duration_us = now - src->it_start_us;
	it->bytes = src->w.bytes_total - src->it_bytes0;
	handled = (it->pages_sent + it->zero_pages) * VMIG_PAGE_SIZE +
		  it->device_bytes;
	vmig_converge_measure(&src->rates, handled, it->bytes,
			      it->duration_us);

	if (src->want_switchover) {
		src_switchover(src);
		return;
	}
	/* The next iteration's record: its sync decides. */
	if (!vmig_stats_iter_add(src->s)) {
		src_fail(src, -ENOMEM, "out of memory");
		return;
	}
	src->it = src->s->stats.nr_iters - 1;
	it = cur_iter(src);
	it->iteration = src->iteration + 1;
	ret = src_sync(src, it);
	if (ret < 0) {
		src_fail(src, (int)ret, "sync: %s", vmig_errmsg(src->s));
		return;
	}
	n = (uint64_t)ret;
	it->pages_dirty = n;
	now = vmig_now_us();
	src->dirty_rate = n * VMIG_PAGE_SIZE * 1000000u /
			  (now - src->last_sync_us + 1);
	it->dirty_rate = src->dirty_rate;
	src->last_sync_us = now;
	iteration_decide(src, n);
}

static void digest_work(uv_work_t *w)
{
	struct vmig_src *src = w->data;

	uint64_t t0 = vmig_now_us();

	src->digest = vmig_digest_memory_until(src->s, &src->work_stop);
	src->e->st.digest_us = vmig_now_us() - t0;
}

static void src_decide(struct vmig_src *src);
static void src_audit(struct vmig_src *src);

static void digest_done(uv_work_t *w, int status)
{
	struct vmig_src *src = w->data;

	(void)status;
	src->work_done = true;
	if (src->e->pol.verify == VMIG_VERIFY_AUDIT)
		src_audit(src);
	else if (!src->finished && src->ack)
		src_decide(src);
}

/* Hashes the stopped memory on the loop's thread pool. */
static int digest_start(struct vmig_src *src)
{
	int ret;

	src->work.data = src;
	ret = uv_queue_work(src->loop, &src->work, digest_work, digest_done);
	if (ret < 0)
		return ret;
	src->work_started = true;
	return 0;
}

/*
 * verify "audit": the guest runs on the destination (STARTED) and the
 * source's digest is known: compare, loudly. The guest stays where it
 * is whatever the outcome; a mismatch is the call's result.
 */
static void src_audit(struct vmig_src *src)
{
	struct vmig_engine *e = src->e;

	if (e->pol.verify != VMIG_VERIFY_AUDIT || src->audited ||
	    !src->work_done || !e->st.committed || src->result < 0)
		return;
	src->audited = true;
	e->st.digest = src->digest;
	e->st.digest_known = true;
	if (src->digest == src->ack_digest) {
		e->st.audit = 1;
		vmig_logf(src->s, VMIG_LOG_INFO,
			  "source: audit: digests match (0x%016llx)",
			  (unsigned long long)src->digest);
		return;
	}
	e->st.audit = -1;
	src->result = VMIG_EAUDIT;
	snprintf(src->errmsg, sizeof(src->errmsg),
		 "audit after COMMIT: the destination's memory digest "
		 "0x%016llx differs from the source's 0x%016llx; the guest "
		 "already runs on the destination, whose memory is suspect",
		 (unsigned long long)src->ack_digest,
		 (unsigned long long)src->digest);
	vmig_logf(src->s, VMIG_LOG_ERROR, "source: %s", src->errmsg);
}

/*
 * The record of the stop-copy phase (the decision made it, or not);
 * NULL when out of memory (failed).
 */
static struct vmig_iter_stats *switchover_record(struct vmig_src *src)
{
	struct vmig_iter_stats *it = cur_iter(src);

	if (it->iteration != src->iteration + 1 || it->final) {
		if (!vmig_stats_iter_add(src->s)) {
			src_fail(src, -ENOMEM, "out of memory");
			return NULL;
		}
		src->it = src->s->stats.nr_iters - 1;
		it = cur_iter(src);
	}
	src->iteration++;
	it->iteration = src->iteration;
	it->final = true;
	src->e->st.expected_downtime_us =
		src->expected_us == UINT64_MAX ? 0 : src->expected_us;
	return it;
}

/*
 * The VMM stops the guest, then the sections stop; from here every wait
 * is bounded. Returns 0, or an error (failed).
 */
static int switchover_stop(struct vmig_src *src)
{
	struct vmig_engine *e = src->e;
	int ret;

	src->stop_us = vmig_now_us();
	/*
	 * From here the guest is stopped: every wait is bounded, and any
	 * failure before COMMIT owes the VMM a resume (even when its stop
	 * failed half-way).
	 */
	src->stop_called = true;
	vmig_watch_disarm(&src->watch, VMIG_WAIT_IDLE);
	ret = e->vmm.stop(e->vmm_opaque);
	if (ret < 0) {
		src_fail(src, ret, "the VMM could not stop the guest: %s",
			 vmig_strerror(ret));
		return ret;
	}
	e->st.guest_stopped = true;
	/*
	 * Every wait from here on is bounded, counted from the stop's
	 * return (the loop's clock is cached: read it now).
	 */
	uv_update_time(src->loop);
	uv_timer_start(&src->stopped, stopped_expired,
		       e->pol.switchover_timeout_ms, 0);
	ret = vmig_sections_stop(&src->set);
	return ret < 0 ? src_section_failed(src, ret) : 0;
}

static void src_switchover(struct vmig_src *src)
{
	struct vmig_engine *e = src->e;
	vmig_session *s = src->s;
	struct vmig_iter_stats *it;
	uint8_t hdr[VMIG_FRAME_HDR];
	uint64_t t0;
	int64_t n;
	int ret;

	it = switchover_record(src);
	if (!it || switchover_stop(src) < 0)
		return;
	t0 = vmig_now_us();
	e->st.stop_us = t0 - src->stop_us;
	vmig_enc_switchover(hdr);
	if (src_ctl(src, hdr, NULL, 0) < 0 || src_marker(src, hdr) < 0)
		return;
	/* Nothing writes guest memory now: this sync is the last. */
	n = src_sync(src, it);
	e->st.final_sync_us = vmig_now_us() - t0;
	if (n < 0) {
		src_fail(src, (int)n, "final sync: %s", vmig_errmsg(s));
		return;
	}
	it->pages_dirty = (uint64_t)n;
	vmig_logf(s, VMIG_LOG_INFO,
		  "source: switchover: guest stopped, %lld pages to send",
		  (long long)n);
	/* strict: the source's digest, while the rest travels. */
	if (e->pol.verify == VMIG_VERIFY_STRICT) {
		ret = digest_start(src);
		if (ret < 0) {
			src_fail(src, ret, "digest: %s", vmig_strerror(ret));
			return;
		}
	}
	src_phase(src, SP_FINAL);
	src->want_switchover = false;
	src->it_start_us = vmig_now_us();
	src->it_bytes0 = src->w.bytes_total;
	vmig_sections_pass(&src->set, (uint64_t)n, true);
	src->scan_done = false;
	src_pump(src);
}

/* Both digests are known: commit, or not. */
static void src_decide(struct vmig_src *src)
{
	struct vmig_engine *e = src->e;
	uint8_t hdr[VMIG_FRAME_HDR];

	bool strict = e->pol.verify == VMIG_VERIFY_STRICT;
	uint64_t sent_state =
		vmig_section_state_check(&src->set.sec[VMIG_SECTION_STATE]);
	int ret;

	if (strict) {
		e->st.digest = src->digest;
		e->st.digest_known = true;
	}
	e->st.peer_digest = src->ack_digest;
	/* verify off: the destination was asked for none (NO_DIGEST). */
	e->st.peer_digest_known = e->pol.verify != VMIG_VERIFY_OFF;
	if (src->ack_pages != src->pages_total) {
		src_fail(src, VMIG_EPROTO,
			 "the destination acknowledged %llu pages, %llu were "
			 "sent%s",
			 (unsigned long long)src->ack_pages,
			 (unsigned long long)src->pages_total,
			 src->peer_gone ? " (then it closed the connection)"
					: "");
		return;
	}
	if (src->ack_state != sent_state) {
		/* The VMM's state is checked in every verify mode. */
		src_fail(src, VMIG_EMISMATCH,
			 "the destination loaded %u VMM state record(s) "
			 "(CRC32C 0x%08x), the source sent %u (CRC32C "
			 "0x%08x)%s",
			 (unsigned)(src->ack_state >> 32),
			 (unsigned)src->ack_state, (unsigned)(sent_state >> 32),
			 (unsigned)sent_state,
			 src->peer_gone ? " (then it closed the connection)"
					: "");
		return;
	}
	if (strict && src->ack_digest != src->digest) {
		src_fail(src, VMIG_EMISMATCH,
			 "the destination's memory digest 0x%016llx differs "
			 "from the source's 0x%016llx%s",
			 (unsigned long long)src->ack_digest,
			 (unsigned long long)src->digest,
			 src->peer_gone ? " (then it closed the connection)"
					: "");
		return;
	}
	if (src->peer_gone) {
		src_fail_quiet(src,
			       src->peer_gone_err ? src->peer_gone_err
						  : -ECONNRESET,
			       "the destination acknowledged%s and closed "
			       "the connection before COMMIT: COMMIT was not "
			       "sent; the guest resumes on the source",
			       strict ? " (the digests match)" : "");
		return;
	}
	if (strict)
		vmig_logf(src->s, VMIG_LOG_INFO,
			  "source: digests match (0x%016llx): commit",
			  (unsigned long long)src->digest);
	else if (e->pol.verify == VMIG_VERIFY_AUDIT)
		vmig_logf(src->s, VMIG_LOG_INFO,
			  "source: the destination acknowledged (digest "
			  "0x%016llx): commit (verify audit)",
			  (unsigned long long)src->ack_digest);
	else
		vmig_logf(src->s, VMIG_LOG_INFO,
			  "source: the destination acknowledged: commit "
			  "(verify off)");
	/*
	 * The phase changes before the write is queued: from the moment
	 * COMMIT may be on the socket, nothing may resume the guest blindly.
	 */
	src_phase(src, SP_COMMIT);
	vmig_enc_commit(hdr);
	if (src_ctl(src, hdr, NULL, 0) < 0 ||
	    e->pol.verify != VMIG_VERIFY_AUDIT)
		return;
	/* audit: hash the stopped memory while STARTED comes. */
	ret = digest_start(src);
	if (ret < 0)
		vmig_logf(src->s, VMIG_LOG_ERROR,
			  "source: audit: cannot hash the memory: %s",
			  vmig_strerror(ret));
}

/* ------------------------------------------------------------------ */
/* Ending                                                              */

/* Closes the connection and the linger timer, once. */
static void src_close_conn(struct vmig_src *src)
{
	/* Their pending writes end now, cancelled (src_written ignores). */
	if (src->w.chans) {
		struct vmig_chans *chans = src->w.chans;

		src->w.chans = NULL;
		vmig_chans_close(chans);
	}
	if (src->w.conn) {
		vmig_conn_close(src->w.conn);
		src->w.conn = NULL;
	}
	if (!src->linger_closed) {
		src->linger_closed = true;
		uv_close((uv_handle_t *)&src->linger, NULL);
	}
}

static void linger_expired(uv_timer_t *t)
{
	src_close_conn(t->data);
}

static void src_close_handles(struct vmig_src *src)
{
	vmig_engine_end(src->e);
	uv_timer_stop(&src->pace);
	uv_timer_stop(&src->timeout);
	uv_timer_stop(&src->stopped);
	uv_close((uv_handle_t *)&src->cancel, NULL);
	uv_close((uv_handle_t *)&src->pace, NULL);
	uv_close((uv_handle_t *)&src->timeout, NULL);
	uv_close((uv_handle_t *)&src->stopped, NULL);
	vmig_watch_close(&src->watch);
}

/*
 * What the source waits for now, for messages and the report: after the
 * stop, the thing whose absence keeps the guest stopped.
 */
static void src_awaited(const struct vmig_src *src, char *buf, size_t len)
{
	unsigned long long done = src->w.bytes_done, total = src->w.bytes_total;

	switch (src->phase) {
	case SP_CONNECT:
		snprintf(buf, len, "the connection to the destination");
		return;
	case SP_HELLO:
		snprintf(buf, len, "the destination's WELCOME");
		return;
	case SP_PRECOPY:
		snprintf(buf, len, "the destination to take iteration %u "
			 "(%llu of %llu bytes written)",
			 src->iteration, done, total);
		return;
	case SP_FINAL:
		snprintf(buf, len, "the destination to take the last pages "
			 "and device state (%llu of %llu bytes written)",
			 done, total);
		return;
	case SP_ACK:
		if (!src->complete_us)
			snprintf(buf, len, "the destination to take the last "
				 "frames up to COMPLETE (%llu of %llu bytes "
				 "written)", done, total);
		else if (!src->ack)
			snprintf(buf, len, "the destination's ACK");
		else
			snprintf(buf, len, "the source's own memory digest");
		return;
	case SP_COMMIT:
		snprintf(buf, len, src->commit_written
					   ? "the destination's STARTED after "
					     "COMMIT"
					   : "COMMIT to be written");
		return;
	default:
		snprintf(buf, len, "nothing");
		return;
	}
}

/* STARTED: the destination runs the guest; the migration succeeded. */
static void src_committed(struct vmig_src *src)
{
	struct vmig_engine *e = src->e;
	vmig_session *s = src->s;

	if (src->finished)
		return;
	src->finished = true;
	src->result = 0;
	src_phase(src, SP_DONE);
	src_close_handles(src);
	e->st.committed = true;
	e->migrated = true;
	e->st.downtime_us = vmig_now_us() - src->stop_us;
	e->st.committed_us = vmig_now_us() - src->start_us;
	vmig_logf(s, VMIG_LOG_INFO, "source: committed: the destination "
		  "started the guest; downtime %llu ms",
		  (unsigned long long)e->st.downtime_us / 1000);
	if (s->tracking)
		vmig_tracking_stop(s);
	src_close_conn(src);
	/* audit: compare now, or when the hashing ends (digest_done). */
	src_audit(src);
}

/*
 * COMMIT may have reached the destination, and it did not say that it
 * started: either side may own the guest. The source must neither
 * resume it (it may run there) nor drop it (it may not): it stays
 * paused, its devices stopped and kept, until vmig_resolve().
 */
static void src_unresolved(struct vmig_src *src, const char *fmt, ...)
{
	struct vmig_engine *e = src->e;
	vmig_session *s = src->s;
	va_list ap;

	if (src->finished)
		return;
	src->finished = true;
	src->result = VMIG_EUNRESOLVED;
	__atomic_store_n(&src->work_stop, true, __ATOMIC_RELEASE);
	va_start(ap, fmt);
	vsnprintf(src->errmsg, sizeof(src->errmsg), fmt, ap);
	va_end(ap);
	src_awaited(src, e->st.awaited, sizeof(e->st.awaited));
	src_close_handles(src);
	src_phase(src, SP_UNRESOLVED);
	e->st.unresolved = true;
	e->unresolved = true;
	e->st.downtime_us = vmig_now_us() - src->stop_us;
	e->held_stop_us = src->stop_us;
	vmig_logf(s, VMIG_LOG_ERROR, "source: unresolved: %s; ask the "
		  "destination whether it started the guest, then call "
		  "vmig_resolve()", src->errmsg);
	uv_timer_stop(&src->linger);
	src_close_conn(src);
	if (s->tracking)
		vmig_tracking_stop(s);
}

/* The connection broke (err, 0: closed) once COMMIT was written. */
static void src_lost_after_commit(struct vmig_src *src, int err)
{
	src_unresolved(src,
		       "connection lost after COMMIT was written, before the "
		       "destination's STARTED (%s): it may or may not run the "
		       "guest; the guest stays paused here",
		       err ? vmig_strerror(err) : "the destination closed it");
}

/* switchover_timeout_ms passed with the guest stopped. */
static void stopped_expired(uv_timer_t *t)
{
	struct vmig_src *src = t->data;
	unsigned long long ms = src->e->pol.switchover_timeout_ms;
	char what[160];

	src_awaited(src, what, sizeof(what));
	if (src->phase == SP_COMMIT) {
		src_unresolved(src,
			       "switchover timeout: the guest was stopped "
			       "%llu ms (switchover_timeout_ms) waiting for "
			       "%s: the destination may or may not run the "
			       "guest; the guest stays paused here",
			       ms, what);
		return;
	}
	src_fail(src, -ETIMEDOUT,
		 "switchover timeout: the guest was stopped %llu ms "
		 "(switchover_timeout_ms) waiting for %s; COMMIT was not "
		 "sent: the guest resumes on the source",
		 ms, what);
}

/* Queues ERROR (err, the message) as the connection's last frame. */
static bool src_send_error(struct vmig_src *src, int err)
{
	size_t len = strnlen(src->errmsg, VMIG_ERROR_MAX);
	struct vmig_batch *b = vmig_batch_ctl(&src->w);
	char *msg = malloc(len ? len : 1);

	if (!msg || !b) {
		free(msg);
		free(b);
		return false;
	}
	memcpy(msg, src->errmsg, len);
	b->heap[b->nheap++] = msg;
	b->last = true;
	vmig_enc_error(vmig_batch_hdr(b), err, msg, len);
	vmig_batch_frame(b, msg, len);
	return src_submit(src, b) == 0;
}

/*
 * Ends the source's part with a failure (err, and the message). Before
 * COMMIT nothing is lost: the destination is told (ERROR) unless it is
 * the one that ended it or the connection is gone, the devices and the
 * guest run again, tracking stops.
 */
__attribute__((format(printf, 4, 0)))
static void src_vfail(struct vmig_src *src, int err, bool tell_peer,
		      const char *fmt, va_list ap)
{
	struct vmig_engine *e = src->e;
	vmig_session *s = src->s;
	int ret;

	if (src->finished)
		return;
	if (src->phase == SP_COMMIT && !src->no_start) {
		char msg[768];

		/*
		 * A failure once COMMIT may have arrived (a malformed reply,
		 * say) does not tell whether the destination started: the
		 * guest must not be resumed blindly.
		 */
		vsnprintf(msg, sizeof(msg), fmt, ap);
		src_unresolved(src, "%s, after COMMIT was queued: the "
			       "destination may or may not run the guest; the "
			       "guest stays paused here", msg);
		return;
	}
	src->finished = true;
	src->result = err;
	__atomic_store_n(&src->work_stop, true, __ATOMIC_RELEASE);
	vsnprintf(src->errmsg, sizeof(src->errmsg), fmt, ap);
	if (src->stop_called)
		src_awaited(src, e->st.awaited, sizeof(e->st.awaited));
	src_close_handles(src);
	vmig_logf(s, VMIG_LOG_ERROR, "source: %s", src->errmsg);

	/* Say why, and let it go before closing (bounded). */
	uv_timer_stop(&src->linger);
	if (tell_peer && src->w.conn && !src->broken &&
	    src->phase != SP_CONNECT && src_send_error(src, err))
		uv_timer_start(&src->linger, linger_expired,
			       err == -ECANCELED ? CANCEL_LINGER_MS
						 : LINGER_MS,
			       0);
	else
		src_close_conn(src);
	/* A connect that never answers does not hold the call back. */
	if (src->connecting) {
		vmig_conn_close(src->connecting);
		src->connecting = NULL;
	}
	src_phase(src, SP_FAILED);

	/*
	 * The guest runs here again: COMMIT was never written (or never
	 * left in full), or the destination said it will not start. A
	 * guest that vmig never stopped runs already: no resume for it.
	 */
	vmig_sections_recover(&src->set);
	if (src->stop_called) {
		ret = e->vmm.resume(e->vmm_opaque);
		if (ret < 0)
			vmig_logf(s, VMIG_LOG_ERROR,
				  "source: the VMM could not resume the "
				  "guest: %s",
				  vmig_strerror(ret));
		else
			e->st.guest_resumed = true;
		e->st.downtime_us = vmig_now_us() - src->stop_us;
	}
	if (s->tracking)
		vmig_tracking_stop(s);
}

static void src_fail(struct vmig_src *src, int err, const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	src_vfail(src, err, true, fmt, ap);
	va_end(ap);
}

/* A failure the destination reported or caused: no ERROR back. */
__attribute__((format(printf, 3, 4))) static void
src_fail_quiet(struct vmig_src *src, int err, const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	src_vfail(src, err, false, fmt, ap);
	va_end(ap);
}

static void broken_expired(uv_timer_t *t)
{
	struct vmig_src *src = t->data;
	char chan[256];

	/* A data connection's own reason, when one failed. */
	if (vmig_chans_error(src->w.chans, chan, sizeof(chan))) {
		src_fail_quiet(src, src->broken, "%s", chan);
		return;
	}
	src_fail_quiet(src, src->broken, "writing to %s at frame %llu: %s",
		       src->w.conn ? vmig_conn_peer(src->w.conn) : "?",
		       (unsigned long long)src->w.frames,
		       vmig_strerror(src->broken));
}

static void cancel_fired(uv_async_t *a)
{
	struct vmig_src *src = a->data;

	/* The handle also brings calls from the VMM's thread. */
	if (!vmig_engine_wakeup(src->e) || src->finished)
		return;
	src->e->st.cancelled = true;
	if (src->phase == SP_COMMIT) {
		src_unresolved(src, "cancelled (vmig_cancel) after COMMIT was "
			       "queued, before the destination's STARTED: "
			       "it may or may not run the guest; the guest "
			       "stays paused here");
		return;
	}
	if (src->stop_called) {
		char what[160];

		src_awaited(src, what, sizeof(what));
		src_fail(src, -ECANCELED, "cancelled (vmig_cancel) after the "
			 "switchover, waiting for %s; the guest resumes on the "
			 "source", what);
		return;
	}
	src_fail(src, -ECANCELED, "cancelled (vmig_cancel) at iteration %u; "
		 "the guest stays on the source",
		 src->iteration);
}

static void timeout_fired(uv_timer_t *t);

/* From now, the milliseconds left of a wait of ms that began at t0_us. */
static uint64_t ms_left(uint64_t t0_us, uint64_t ms)
{
	uint64_t now = vmig_now_us(), end = t0_us + ms * 1000u;

	return end > now ? (end - now + 999) / 1000 : 0;
}

/*
 * vmig_set_policies changed the policies while this migration runs (on
 * its thread): the timers follow, counted from when their waits began.
 * The limits are read at the next decision anyway.
 */
static void src_policies_changed(void *opaque)
{
	struct vmig_src *src = opaque;
	struct vmig_engine *e = src->e;

	if (src->finished)
		return;
	uv_update_time(src->loop);
	if (e->pol.timeout_ms && src->phase <= SP_PRECOPY)
		uv_timer_start(&src->timeout, timeout_fired,
			       ms_left(src->start_us, e->pol.timeout_ms), 0);
	else if (!e->pol.timeout_ms)
		uv_timer_stop(&src->timeout);
	if (src->stop_called && uv_is_active((uv_handle_t *)&src->stopped))
		uv_timer_start(&src->stopped, stopped_expired,
			       ms_left(src->stop_us,
				       e->pol.switchover_timeout_ms),
			       0);
}

static void timeout_fired(uv_timer_t *t)
{
	struct vmig_src *src = t->data;
	struct vmig_engine *e = src->e;

	if (e->pol.timeout_strategy == VMIG_TIMEOUT_STRATEGY_FORCE &&
	    src->phase == SP_PRECOPY) {
		vmig_logf(src->s, VMIG_LOG_WARN,
			  "source: timeout after %llu ms at iteration %u: "
			  "switching over (strategy force)",
			  (unsigned long long)e->pol.timeout_ms,
			  src->iteration);
		src->want_switchover = true;
		src_pump(src);
		return;
	}
	if (e->pol.timeout_strategy == VMIG_TIMEOUT_STRATEGY_FORCE &&
	    src->phase > SP_PRECOPY)
		return; /* switching over: switchover_timeout_ms bounds it */
	e->st.cancelled = true;
	if (src->phase == SP_COMMIT) {
		src_unresolved(src, "timeout after %llu ms (timeout_ms) after "
			       "COMMIT was queued, before the destination's "
			       "STARTED: it may or may not run the guest; the "
			       "guest stays paused here",
			       (unsigned long long)e->pol.timeout_ms);
		return;
	}
	if (src->stop_called) {
		char what[160];

		src_awaited(src, what, sizeof(what));
		src_fail(src, -ETIMEDOUT,
			 "timeout after %llu ms (timeout_ms) after the "
			 "switchover, waiting for %s; the guest resumes on the "
			 "source",
			 (unsigned long long)e->pol.timeout_ms, what);
		return;
	}
	if (src->phase < SP_PRECOPY) {
		src_fail(src, -ETIMEDOUT,
			 "timeout after %llu ms (timeout_ms) before the "
			 "destination welcomed the layout; the guest stays on "
			 "the source",
			 (unsigned long long)e->pol.timeout_ms);
		return;
	}
	src_fail(src, -ETIMEDOUT,
		 "timeout after %llu ms (timeout_ms) at iteration %u, "
		 "expected downtime %llu ms (limit %llu ms); the guest stays "
		 "on the source",
		 (unsigned long long)e->pol.timeout_ms, src->iteration,
		 (unsigned long long)(src->expected_us == UINT64_MAX
					      ? 0
					      : src->expected_us / 1000),
		 (unsigned long long)e->pol.downtime_limit_ms);
}

/* handshake_timeout_ms or idle_timeout_ms passed: the guest never stopped. */
static void src_wait_expired(void *opaque, enum vmig_wait which)
{
	struct vmig_src *src = opaque;
	struct vmig_engine *e = src->e;
	char what[160];

	if (src->finished)
		return;
	src_awaited(src, what, sizeof(what));
	if (which == VMIG_WAIT_HANDSHAKE) {
		src_fail(src, -ETIMEDOUT,
			 "handshake timeout: no WELCOME from %s in %llu ms "
			 "(handshake_timeout_ms), waiting for %s; the guest "
			 "stays on the source",
			 src->w.conn ? vmig_conn_peer(src->w.conn)
				     : e->st.transport,
			 (unsigned long long)e->pol.handshake_timeout_ms,
			 what);
		return;
	}
	src_fail(src, -ETIMEDOUT,
		 "idle timeout: nothing moved for %llu ms (idle_timeout_ms) "
		 "waiting for %s; the guest stays on the source",
		 (unsigned long long)e->pol.idle_timeout_ms, what);
}

/* ------------------------------------------------------------------ */
/* Replies from the destination                                        */

static void src_read_buf(void *opaque, void **buf, size_t *len)
{
	struct vmig_src *src = opaque;

	vmig_reply_buf(&src->reply, buf, len);
}

static void src_reply(struct vmig_src *src)
{
	const struct vmig_msg *m = &src->reply.m;
	char msg[VMIG_ERROR_MAX + 1];
	int ret;

	vmig_reply_done(&src->reply);
	switch (m->type) {
	case VMIG_FRAME_WELCOME:
		src->welcomed = true;
		if (src_open_chans(src, m->channel.token) < 0)
			return;
		vmig_watch_disarm(&src->watch, VMIG_WAIT_HANDSHAKE);
		vmig_watch_arm(&src->watch, VMIG_WAIT_IDLE,
			       src->e->pol.idle_timeout_ms);
		ret = vmig_tracking_start(src->s);
		if (ret < 0) {
			src_fail(src, ret, "tracking: %s", vmig_errmsg(src->s));
			return;
		}
		ret = vmig_sections_live(&src->set);
		if (ret < 0) {
			src_section_failed(src, ret);
			return;
		}
		src->last_sync_us = vmig_now_us();
		vmig_pace_start(&src->bucket, src->e->pol.bandwidth_limit,
				src->last_sync_us);
		src_phase(src, SP_PRECOPY);
		vmig_logf(src->s, VMIG_LOG_INFO,
			  "source: %s welcomed the layout",
			  vmig_conn_peer(src->w.conn));
		if (!vmig_stats_iter_add(src->s)) {
			src_fail(src, -ENOMEM, "out of memory");
			return;
		}
		src->it = 0;
		iteration_begin(src, vmig_dirty_count(src->s));
		return;
	case VMIG_FRAME_ACK:
		if (src->complete_us)
			src->e->st.ack_us = vmig_now_us() - src->complete_us;
		src->ack = true;
		src->ack_digest = m->ack.digest;
		src->ack_pages = m->ack.pages;
		src->ack_state = m->ack.state_check;
		/* Only strict waits for its own digest. */
		if (src->work_done ||
		    src->e->pol.verify != VMIG_VERIFY_STRICT)
			src_decide(src);
		return;
	case VMIG_FRAME_STARTED:
		src_committed(src);
		return;
	case VMIG_FRAME_ERROR:
		vmig_proto_text(msg, sizeof(msg), src->reply.payload,
				src->reply.want);
		/*
		 * A destination that sends ERROR has not started the guest
		 * and never will in this migration, COMMIT or not: the
		 * source resumes.
		 */
		if (src->phase == SP_COMMIT) {
			src->no_start = true;
			src_fail_quiet(src, VMIG_EPROTO,
				       "the destination did not start the "
				       "guest after COMMIT: %s%s(%s); the "
				       "guest resumes on the source",
				       msg, msg[0] ? " " : "",
				       vmig_strerror(m->error.code));
			return;
		}
		src_fail_quiet(src, VMIG_EPROTO,
			       "the destination rejected the stream: %s%s(%s)",
			       msg, msg[0] ? " " : "",
			       vmig_strerror(m->error.code));
		return;
	}
}

/* The replies the source awaits where it is (ERROR is always). */
static bool src_expects(uint32_t type, void *opaque)
{
	const struct vmig_src *src = opaque;

	switch (type) {
	case VMIG_FRAME_WELCOME:
		return src->phase == SP_HELLO && !src->welcomed;
	case VMIG_FRAME_ACK:
		return src->phase == SP_ACK && !src->ack;
	case VMIG_FRAME_STARTED:
		return src->phase == SP_COMMIT;
	}
	return false;
}

static void src_read_done(void *opaque, size_t n)
{
	struct vmig_src *src = opaque;
	int ret;

	if (src->finished)
		return;
	vmig_watch_touch(&src->watch);
	ret = vmig_reply_feed(&src->reply, n, src_expects, src);
	if (ret < 0)
		src_fail(src, VMIG_EPROTO, "%s", src->reply.err);
	else if (ret > 0)
		src_reply(src);
}

static void src_read_end(void *opaque, int err)
{
	struct vmig_src *src = opaque;
	const char *last = vmig_frame_name(src->w.last_type);

	if (src->finished) {
		/* The destination closed after our ERROR: we may close. */
		src_close_conn(src);
		return;
	}
	if (src->phase == SP_COMMIT) {
		src->peer_gone = true;
		src->peer_gone_err = err;
		/* Before its write completed, that completion decides. */
		if (src->commit_written)
			src_lost_after_commit(src, err);
		return;
	}
	if (src->phase == SP_ACK && src->ack && !src->work_done) {
		/*
		 * The ACK came, then the close: the digests still say
		 * whether the memories differ, which is the message.
		 * COMMIT will not be written (src_decide).
		 */
		src->peer_gone = true;
		src->peer_gone_err = err;
		vmig_logf(src->s, VMIG_LOG_DEBUG,
			  "source: the destination closed after its ACK; "
			  "comparing the digests first");
		return;
	}
	src_fail_quiet(src, err ? err : -ECONNRESET,
		       "connection lost at frame %llu (%s): %s",
		       (unsigned long long)(src->w.frames ? src->w.frames - 1 : 0),
		       last ? last : "none",
		       err ? vmig_strerror(err)
			   : "the destination closed the connection");
}

static void src_connecting(void *opaque, struct vmig_conn *c);

static const struct vmig_conn_ops src_conn_ops = {
	.read_buf = src_read_buf,
	.read_done = src_read_done,
	.read_end = src_read_end,
	.connecting = src_connecting,
};

/* ------------------------------------------------------------------ */
/* Starting                                                            */

/* HELLO's data connections: 0 when the pages go on the main stream. */
static uint32_t src_data_conns(const struct vmig_src *src)
{
	return src->e->pol.connections > 1 ? src->e->pol.connections : 0;
}

static void src_hello(struct vmig_src *src)
{
	vmig_session *s = src->s;
	struct vmig_section *devs = &src->set.sec[VMIG_SECTION_DEVICES];
	struct vmig_section *state = &src->set.sec[VMIG_SECTION_STATE];
	struct vmig_hello_counts n = { .regions = (uint32_t)s->nr_regions };
	uint8_t hdr[VMIG_FRAME_HDR];
	size_t len;
	uint32_t i;
	uint8_t *p;
	int ret;

	ret = vmig_sections_setup(&src->set);
	if (ret < 0) {
		src_section_failed(src, ret);
		return;
	}
	n.devices = vmig_section_devstate_count(devs);
	n.sections = vmig_section_state_count(state);
	len = vmig_hello_len(&n);
	if (len > VMIG_HELLO_MAX) {
		src_fail(src, -E2BIG,
			 "the layout (%u region(s), %u device(s), %u VMM state "
			 "section(s)) takes %zu bytes, above HELLO's limit of "
			 "%u",
			 n.regions, n.devices, n.sections, len, VMIG_HELLO_MAX);
		return;
	}
	p = calloc(1, len ? len : 1);
	if (!p) {
		src_fail(src, -ENOMEM, "out of memory");
		return;
	}
	for (i = 0; i < n.regions; i++)
		vmig_hello_put_region(p, i, s->regions[i].gpa,
				      s->regions[i].length,
				      s->regions[i].name);
	for (i = 0; i < n.devices; i++)
		vmig_hello_put_device(p, n.regions, i,
				      vmig_section_devstate_name(devs, i));
	for (i = 0; i < n.sections; i++) {
		const struct vmig_state_reg *reg =
			vmig_section_state_reg(state, i);

		vmig_hello_put_section(p, &n, i, reg->name, reg->version);
	}
	vmig_enc_hello(hdr,
		       src->e->pol.verify == VMIG_VERIFY_STRICT
			       ? VMIG_HELLO_FULL_DIGEST
		       : src->e->pol.verify == VMIG_VERIFY_OFF
			       ? VMIG_HELLO_NO_DIGEST
			       : 0,
		       src_data_conns(src), &n, p, len);
	if (src_ctl(src, hdr, p, len) == 0)
		src_phase(src, SP_HELLO);
}

/*
 * A data connection failed (a connect, CHANNEL, a write): before COMMIT
 * the migration fails now (the destination is told on the main stream),
 * not when the next write on that connection would have said so, which
 * for a connection holding only markers is never.
 */
static void src_chans_failed(void *opaque, int err, const char *msg)
{
	src_fail(opaque, err, "%s", msg);
}

/*
 * WELCOME came with the token: the data connections open, to the main
 * stream's peer, or over socket pairs to the local destination.
 */
static int src_open_chans(struct vmig_src *src, const uint64_t token[2])
{
	uint32_t i, n = src_data_conns(src);
	int fds[VMIG_DATA_CONN_MAX], ret, fd;
	struct sockaddr_storage peer;
	socklen_t len = sizeof(peer);
	char err[256];

	if (!n)
		return 0;
	if (!src->dst) {
		fd = vmig_conn_fd(src->w.conn);
		if (fd < 0 || getpeername(fd, (struct sockaddr *)&peer, &len) < 0) {
			ret = fd < 0 ? fd : -errno;
			src_fail(src, ret, "data connections: the address of "
				 "%s: %s", vmig_conn_peer(src->w.conn),
				 vmig_strerror(ret));
			return ret;
		}
		ret = vmig_chans_open(&src->w.chans, src->loop, n,
				      (struct sockaddr *)&peer, len, NULL,
				      token, src_chans_failed, src, err,
				      sizeof(err));
	} else {
		for (i = 0; i < n; i++) {
			int sv[2];

			if (socketpair(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK |
						 SOCK_CLOEXEC,
				       0, sv) < 0) {
				ret = -errno;
				while (i--)
					close(fds[i]);
				src_fail(src, ret, "data connections: "
					 "socketpair: %s", vmig_strerror(ret));
				return ret;
			}
			fds[i] = sv[0];
			vmig_dst_add_channel(src->dst, sv[1]);
		}
		ret = vmig_chans_open(&src->w.chans, src->loop, n, NULL, 0,
				      fds, token, src_chans_failed, src, err,
				      sizeof(err));
	}
	if (ret < 0)
		src_fail(src, ret, "%s", err);
	else
		vmig_logf(src->s, VMIG_LOG_INFO,
			  "source: %u data connection(s) carry the pages", n);
	return ret;
}

static void src_connecting(void *opaque, struct vmig_conn *c)
{
	((struct vmig_src *)opaque)->connecting = c;
}

static void src_connected(void *opaque, struct vmig_conn *c, int err)
{
	struct vmig_src *src = opaque;
	int ret;

	src->connecting = NULL;

	if (err < 0) {
		src_fail(src, err, "%s", src->connect_err);
		return;
	}
	src->w.conn = c;
	if (src->finished) {
		/* Cancelled while connecting. */
		vmig_conn_close(c);
		src->w.conn = NULL;
		return;
	}
	snprintf(src->e->st.transport, sizeof(src->e->st.transport), "%s",
		 src->dst ? "socketpair" : vmig_conn_peer(c));
	vmig_logf(src->s, VMIG_LOG_INFO, "source: connected to %s",
		  vmig_conn_peer(c));
	if (src_data_conns(src) && !src->dst && vmig_conn_fd(c) < 0) {
		src_fail(src, -EINVAL,
			 "policies: connections %u: data connections open to "
			 "a tcp: or unix: address, and %s is not one; the "
			 "guest stays on the source",
			 src->e->pol.connections, vmig_conn_peer(c));
		return;
	}
	ret = vmig_conn_read_start(c);
	if (ret < 0) {
		src_fail(src, ret, "reading from %s: %s", vmig_conn_peer(c),
			 vmig_strerror(ret));
		return;
	}
	src_hello(src);
}

static int src_check(vmig_session *s, vmig_session *dst)
{
	struct vmig_engine *e = vmig_engine_get(s);

	if (!e)
		return -ENOMEM;
	if (s->role != VMIG_ROLE_SOURCE)
		return vmig_fail(s, -EINVAL, "migrate: not a source session");
	if (!s->nr_regions)
		return vmig_fail(s, -EINVAL, "migrate: the session has no "
				 "memory");
	if (!e->have_vmm || !e->vmm.stop || !e->vmm.resume)
		return vmig_fail(s, -EINVAL,
				 "migrate: no VMM callbacks to stop and resume "
				 "the guest (vmig_set_vmm_ops)");
	if (e->running)
		return vmig_fail(s, -EBUSY, "migrate: a migration runs");
	/*
	 * Refused before anything runs, so that no callback is called: a
	 * guest migrated away is not this session's to stop or resume.
	 */
	if (e->migrated)
		return vmig_fail(s, VMIG_EMIGRATED,
				 "migrate: the guest was migrated to %s and "
				 "committed already; this session no longer "
				 "owns it",
				 e->st.transport[0] ? e->st.transport
						    : "its destination");
	if (e->unresolved)
		return vmig_fail(s, -EBUSY,
				 "migrate: the last migration is unresolved "
				 "(the guest is paused): call vmig_resolve() "
				 "first");
	if (s->tracking)
		return vmig_fail(s, -EBUSY,
				 "migrate: tracking runs already (vmig_migrate "
				 "starts it)");
	if (dst) {
		struct vmig_engine *de = vmig_engine_get(dst);

		if (!de)
			return -ENOMEM;
		if (dst == s || dst->role != VMIG_ROLE_DESTINATION)
			return vmig_fail(s, -EINVAL,
					 "migrate: the local destination is "
					 "not a destination session");
		if (de->running)
			return vmig_fail(s, -EBUSY, "migrate: the destination "
					 "runs a migration");
	}
	return 0;
}

/* A source on loop, its handles initialised; NULL when out of memory. */
static struct vmig_src *src_new(vmig_session *s, uv_loop_t *loop)
{
	struct vmig_src *src = calloc(1, sizeof(*src));
	unsigned int i;

	if (!src || vmig_writer_init(&src->w, src_written, src) < 0) {
		free(src);
		return NULL;
	}
	src->s = s;
	src->e = s->engine;
	src->loop = loop;
	src->start_us = vmig_now_us();
	src->last_progress_us = src->start_us;
	src->expected_us = UINT64_MAX;
	vmig_sections_init(&src->set, s, src->e);
	for (i = 0; i < s->nr_regions; i++)
		src->mem_bytes += s->regions[i].length;
	/* strict hashes inside the downtime: at what rate, here. */
	if (src->e->pol.verify == VMIG_VERIFY_STRICT)
		src->digest_rate = vmig_digest_rate(s);
	uv_async_init(loop, &src->cancel, cancel_fired);
	src->cancel.data = src;
	uv_timer_init(loop, &src->pace);
	src->pace.data = src;
	uv_timer_init(loop, &src->timeout);
	src->timeout.data = src;
	uv_timer_init(loop, &src->linger);
	src->linger.data = src;
	uv_timer_init(loop, &src->stopped);
	src->stopped.data = src;
	vmig_watch_init(&src->watch, loop, src_wait_expired, src);
	return src;
}

/* A source that never ran: its handles closed, its memory freed. */
static void src_discard(struct vmig_src *src)
{
	src->finished = true;
	uv_close((uv_handle_t *)&src->cancel, NULL);
	uv_close((uv_handle_t *)&src->pace, NULL);
	uv_close((uv_handle_t *)&src->timeout, NULL);
	uv_close((uv_handle_t *)&src->stopped, NULL);
	uv_close((uv_handle_t *)&src->linger, NULL);
	vmig_watch_close(&src->watch);
	uv_run(src->loop, UV_RUN_DEFAULT);
	vmig_writer_fini(&src->w);
	free(src);
}

/* Connects: a socket pair to the local destination dsts, or address. */
static void src_start(struct vmig_src *src, const char *address,
		      vmig_session *dsts)
{
	struct vmig_conn *ca = NULL, *cb = NULL;
	char err[256];
	int ret;

	if (!dsts) {
		snprintf(src->e->st.transport, sizeof(src->e->st.transport),
			 "%s", address);
		ret = vmig_conn_connect(src->loop, address, &src_conn_ops, src,
					src_connected, src->connect_err,
					sizeof(src->connect_err));
		if (ret < 0) {
			/* The connection the hook named was discarded. */
			src->connecting = NULL;
			src_fail(src, ret, "%s", src->connect_err);
		}
		return;
	}
	ret = vmig_dst_start(dsts, src->loop, &src->dst);
	if (ret == 0)
		ret = vmig_conn_pair(src->loop, &src_conn_ops, src,
				     vmig_dst_conn_ops(), src->dst, &ca, &cb,
				     err, sizeof(err));
	else
		snprintf(err, sizeof(err), "%s", vmig_errmsg(dsts));
	if (ret < 0) {
		if (src->dst)
			vmig_dst_abort(src->dst, ret, err);
		src_fail(src, ret, "local destination: %s", err);
		return;
	}
	vmig_dst_attach(src->dst, cb);
	src_connected(src, ca, 0);
}

/* The loop ran dry: the figures of the migration, for the report. */
static void src_record(struct vmig_src *src)
{
	vmig_session *s = src->s;
	struct vmig_mig_stats *st = &src->e->st;
	size_t i;

	st->result = src->result;
	st->frames = src->w.frames;
	st->total_bytes = src->w.bytes_total;
	st->total_pages = src->pages_total;
	st->duration_us = vmig_now_us() - src->start_us;
	st->bandwidth = st->duration_us
				? src->w.bytes_done * 1000000u / st->duration_us
				: 0;
	for (i = 0; i < s->stats.nr_iters; i++) {
		const struct vmig_iter_stats *it = &s->stats.iters[i];

		st->zero_pages += it->zero_pages;
		st->device_bytes += it->device_bytes;
		s->stats.pages_written += it->pages_written;
		s->stats.pages_reported += it->pages_reported;
		s->stats.pages_missed += it->pages_missed;
	}
	s->stats.duration_us = st->duration_us;
	s->stats.valid = true;
	s->stats.migration = true;
	if (src->result < 0)
		snprintf(st->error, sizeof(st->error), "%s", src->errmsg);
}

/*
 * The sections' end: stopped devices stay the session's until
 * vmig_resolve() when unresolved. Without the ids no device could be told
 * held: none is kept then, and resolving cannot resume them (logged).
 */
static void src_sections_end(struct vmig_src *src)
{
	struct vmig_section *devs = &src->set.sec[VMIG_SECTION_DEVICES];

	src->e->st.nr_state_devices = vmig_section_devstate_count(devs);
	if (src->result == VMIG_EUNRESOLVED &&
	    !vmig_section_devstate_hold(devs, src->e))
		vmig_logf(src->s, VMIG_LOG_ERROR,
			  "source: unresolved: out of memory keeping the "
			  "stopped devices; they stay stopped");
	vmig_sections_cleanup(&src->set);
}

int vmig_src_run(vmig_session *s, const char *address, vmig_session *dsts)
{
	struct vmig_engine *e;
	struct vmig_sigpipe sp;
	struct vmig_src *src;
	uv_loop_t *loop;
	int ret;

	ret = src_check(s, dsts);
	if (ret < 0)
		return ret;
	e = s->engine;
	ret = vmig_engine_loop(e, &loop);
	if (ret < 0)
		return vmig_fail(s, ret, "migrate: %s", vmig_strerror(ret));
	src = src_new(s, loop);
	if (!src)
		return -ENOMEM;
	ret = vmig_engine_begin(e, &src->cancel, NULL, src);
	if (ret < 0) {
		src_discard(src);
		return vmig_fail(s, ret, "migrate: a migration runs");
	}
	vmig_engine_stats_reset(e);
	vmig_control_begin(e);
	e->policies_changed = src_policies_changed;
	e->policies_opaque = src;
	/* The timeouts count from here: connecting is part of them. */
	vmig_watch_arm(&src->watch, VMIG_WAIT_HANDSHAKE,
		       e->pol.handshake_timeout_ms);
	if (e->pol.timeout_ms)
		uv_timer_start(&src->timeout, timeout_fired, e->pol.timeout_ms,
			       0);
	e->st.valid = true;
	e->st.local = dsts != NULL;
	e->st.verify = e->pol.verify;
	free(s->stats.iters);
	memset(&s->stats, 0, sizeof(s->stats));
	s->stats.truth = vmig_observer_judges(s);

	src_phase(src, SP_CONNECT);
	src_start(src, address, dsts);
	vmig_sigpipe_block(&sp);
	uv_run(loop, UV_RUN_DEFAULT);
	vmig_sigpipe_restore(&sp);
	e->policies_changed = NULL;
	e->policies_opaque = NULL;

	if (src->dst)
		vmig_dst_finish(src->dst);
	src_sections_end(src);
	src_record(src);
	ret = src->result;
	if (ret < 0)
		vmig_fail(s, ret, "%s", src->errmsg);
	vmig_writer_fini(&src->w);
	free(src);
	/* Calls from other threads may touch the session again. */
	vmig_engine_idle(e);
	return ret;
}

/* ------------------------------------------------------------------ */
/* Public calls                                                        */

VMIG_API int vmig_migrate(vmig_session *s, const char *address)
{
	if (!s)
		return -EINVAL;
	if (!address || !*address)
		return vmig_fail(s, -EINVAL, "migrate: no address");
	return vmig_src_run(s, address, NULL);
}

VMIG_API int vmig_migrate_local(vmig_session *src, vmig_session *dst)
{
	if (!src)
		return -EINVAL;
	if (!dst)
		return vmig_fail(src, -EINVAL, "migrate: no destination");
	return vmig_src_run(src, NULL, dst);
}
