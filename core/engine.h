/*
 * engine.h: the live migration engine, shared by its files.
 *
 * engine.c owns the per-session engine state (the libuv loop the session
 * runs, the VMM's callbacks, the policies, cancellation, the figures the
 * report gives); core/transport/ the transports behind one table
 * (addresses, listen, connect, socket pairs, reading into buffers its
 * owner chooses, writing arrays of buffers); precopy.c the source's
 * phase machine, with converge.c (the convergence policy), pace.c (the
 * bandwidth limit), writer.c (its writes) and reply.c (the checks of
 * the destination's replies); dest.c the destination and its
 * frame-checking state machine; section.h what travels (guest RAM,
 * device state); digest.c the memory digest. The wire format is
 * proto.h's.
 */
#ifndef VMIG_CORE_ENGINE_H
#define VMIG_CORE_ENGINE_H

#include <pthread.h>
#include <signal.h>
#include <stdbool.h>
#include <stdint.h>

#include <uv.h>

#include "internal.h"
#include "proto.h"

/* Defaults of struct vmig_policies. */
#define VMIG_DEFAULT_DOWNTIME_MS 300u
#define VMIG_DEFAULT_MAX_ITERATIONS 30u

struct vmig_conn;
struct vmig_listener;
struct vmig_src;
struct vmig_dst;
struct vmig_call;
struct vmig_section_loader;

/* What one migration did, for the report (both roles). */
struct vmig_mig_stats {
	bool valid;          /* a migration ran (or was tried) */
	bool local;          /* both ends in this process */
	int result;          /* 0, or the error the call returned */
	bool cancelled;      /* by vmig_cancel, or a policy (timeout) */
	char error[1024];    /* why, when it failed */
	char transport[160]; /* the address, or "socketpair" */
	bool guest_stopped;  /* source: the VMM's stop ran */
	bool guest_resumed;  /* source: the VMM's resume ran */
	bool guest_started;  /* destination: the VMM's start ran */
	/*
	 * Source: STARTED received, or resolved for the destination;
	 * destination: COMMIT received.
	 */
	bool committed;
	bool digest_known;
	uint64_t digest;     /* this side's memory digest */
	bool peer_digest_known;
	uint64_t peer_digest; /* source: the destination's, from ACK */
	uint32_t verify;     /* source: enum vmig_verify_policy used */
	/*
	 * Source, verify "audit": the comparison after COMMIT: 0 not made
	 * (not committed, or no audit), 1 the digests matched, -1 they
	 * differed (the call returned VMIG_EAUDIT).
	 */
	int audit;
	uint64_t total_bytes; /* bytes of the stream (sent or received) */
	uint64_t total_pages; /* PAGES and ZERO pages */
	uint64_t zero_pages;
	uint64_t device_bytes;
	uint64_t vmm_state_bytes; /* VMM state sections' records */
	uint32_t nr_vmm_states;   /* state sections that travelled */
	uint64_t frames;
	/*
	 * Source: how long the guest was stopped: from the stop callback
	 * to STARTED (committed), to the resume (failed, or resolved with
	 * VMIG_RESOLVE_RESUME), or to the end of the call (unresolved: it
	 * is still stopped).
	 */
	uint64_t downtime_us;
	bool unresolved;     /* source: COMMIT written, STARTED never came */
	/* Source, failed or unresolved after the stop: what vmig awaited. */
	char awaited[160];
	/*
	 * Source: devices whose state size could not be read at the last
	 * estimate, one name a line.
	 */
	char unknown_state[256];
	uint64_t bandwidth;   /* stream bytes per second, whole migration */
	uint64_t duration_us;
	/*
	 * Source: from the start to the destination's STARTED (the guest
	 * runs there); 0 when it never came. duration_us goes on to the
	 * end (with verify audit, the hashing after the commit).
	 */
	uint64_t committed_us;
	uint64_t expected_downtime_us; /* at the switchover decision */
	/* Where the downtime went (source). */
	uint64_t stop_us;       /* the VMM's stop and the devices' */
	uint64_t final_sync_us; /* the last sync */
	uint64_t final_send_us; /* switchover to COMPLETE written */
	uint64_t ack_us;        /* COMPLETE written to ACK received */
	uint64_t digest_us;     /* this side's digest (the source's runs in
				   parallel with the last pages) */
	uint64_t stream_us;     /* destination: first byte to last page */
	bool differing_known;
	uint64_t pages_differing; /* local: destination pages not the source's */
	uint64_t devices_differing; /* local, simulated: device states */
	uint32_t nr_state_devices; /* devices whose state travelled */
};

struct vmig_engine {
	vmig_session *s;
	uv_loop_t loop;
	bool loop_ready;

	struct vmig_vmm_ops vmm;
	void *vmm_opaque;
	bool have_vmm;
	/* The VMM's state sections (section_state.c), registration order. */
	struct vmig_state_reg *states;
	uint32_t nr_states;
	struct vmig_policies pol; /* defaults applied */

	/*
	 * vmig_cancel() may come from any thread: it signals `cancel` under
	 * the lock while a migration runs (cancel_cb then ends it).
	 */
	pthread_mutex_t lock;
	pthread_cond_t called;  /* a queued call is done */
	pthread_t loop_thread;  /* the thread running the migration */
	struct vmig_call *calls; /* calls waiting for the loop (FIFO) */
	struct vmig_call **calls_tail;
	bool cancel_requested;  /* vmig_cancel ran: the async means cancel */
	uv_async_t *cancel;
	void (*cancel_cb)(void *opaque);
	void *cancel_opaque;
	bool running;
	/* From vmig_engine_begin until the migrating call returns. */
	bool busy;

	/*
	 * What vmig_query() reads from any thread: published by the
	 * migration's thread (control.c) under status_lock.
	 */
	pthread_mutex_t status_lock;
	struct vmig_status status;
	uint64_t status_t0;      /* the migration's start (vmig_now_us) */
	uint64_t status_t1;      /* ... and its end, 0: still running */
	uint64_t status_stop_t0; /* the guest's stop, 0: not stopped */
	uint64_t status_stop_t1; /* ... and its end, 0: still stopped */
	vmig_event_fn event_fn;  /* vmig_set_event_callback */
	void *event_opaque;
	/*
	 * Set by a running source: vmig_set_policies changed a policy it
	 * must act on now (a timer to re-arm). On the migration's thread.
	 */
	void (*policies_changed)(void *opaque);
	void *policies_opaque;

	/* vmig_listen() binds, vmig_receive() accepts. */
	struct vmig_listener *listener;
	char bound[160];

	/*
	 * The address vmig_listen(s, NULL) binds: a configuration's
	 * transport (set by the layer that set the session up; freed here).
	 */
	char *transport;
	/*
	 * A local run's destination, kept for the report (whoever ran it
	 * sets it; freed with the engine).
	 */
	vmig_session *local_dst;

	struct vmig_mig_stats st;

	/*
	 * The source's ownership of its guest, across migrations: migrated
	 * (committed, or resolved for the destination) refuses any later
	 * migration; unresolved keeps the stopped devices until
	 * vmig_resolve().
	 */
	bool migrated;
	bool unresolved;
	struct vmig_devstate **held_dsv;
	uint32_t held_ndevs;
	/*
	 * The ids of the devices behind held_dsv: their fds are in use
	 * until vmig_resolve(), so vmig_device_remove() refuses them.
	 */
	uint32_t *held_ids;
	/* Unresolved: when the guest was stopped (the downtime's start). */
	uint64_t held_stop_us;
	/*
	 * Unresolved: the callbacks that stopped the guest are gone (the
	 * simulated guest of a tool run ended), so nothing can resume it.
	 */
	bool vmm_gone;
	/*
	 * A held device's failure to come back, kept until the resume
	 * callback succeeds: a retried vmig_resolve() still returns it.
	 */
	int held_err;
};

/* control.c: the status vmig_query() reads, events, live policies. */

/* A migration begins: its status is reset, its clock starts. */
void vmig_control_begin(struct vmig_engine *e);
/* Publishes st (phase, figures) as the migration's status. */
void vmig_control_publish(struct vmig_engine *e, const struct vmig_status *st);
/*
 * The phase changed: published, and told to the event callback (with
 * the events that go with it: SWITCHOVER, COMMIT, COMPLETED, FAILED).
 */
void vmig_control_phase(struct vmig_engine *e, uint32_t phase, int error,
			const char *message);
/* Sends one event (type, figures in ev) to the callback, if any. */
void vmig_control_event(struct vmig_engine *e, struct vmig_event *ev);
/* Microseconds since the migration began. */
uint64_t vmig_control_elapsed(const struct vmig_engine *e);
/*
 * vmig_set_policies while a migration runs: n (defaults applied) may
 * differ from the running policies in the live fields only.
 */
int vmig_control_policies_live(vmig_session *s,
			       const struct vmig_policies *n);

/* engine.c */

/*
 * The session's engine for a call that must not come while a migration
 * runs: 0, or -EINVAL (no session), -ENOMEM, -EBUSY ("what: a migration
 * runs").
 */
int vmig_engine_idle_get(vmig_session *s, const char *what,
			 struct vmig_engine **out);

/* The session's engine, created on first use; NULL when out of memory. */
struct vmig_engine *vmig_engine_get(vmig_session *s);

/* Frees the engine (vmig_session_free). */
void vmig_engine_free(vmig_session *s);

/* The session's loop, initialised on first use. Returns 0 or an error. */
int vmig_engine_loop(struct vmig_engine *e, uv_loop_t **loop);

/*
 * Marks a migration as running, with its cancel handle (initialised on
 * the loop by the caller) and what to call when it fires. Returns 0 or
 * -EBUSY (one runs already).
 */
int vmig_engine_begin(struct vmig_engine *e, uv_async_t *cancel,
		      void (*fn)(void *opaque), void *opaque);

/* Marks the migration as over; vmig_cancel() is refused from now on. */
void vmig_engine_end(struct vmig_engine *e);

/*
 * The migrating call (vmig_migrate, vmig_migrate_local, vmig_receive) no
 * longer touches the session: calls from other threads that came after
 * vmig_engine_end and wait (vmig_engine_call) may run now.
 */
void vmig_engine_idle(struct vmig_engine *e);

/*
 * Runs fn(s, arg) on the thread that runs the session's migration and
 * returns what it returns: directly when no migration runs or when
 * called from that thread (a progress callback), else queued to the
 * migration's loop (woken through its cancel handle) while the caller
 * waits; a call from another thread that comes once the loop is over but
 * before the migrating call returned waits for that return
 * (vmig_engine_idle). So a VMM may add and remove devices and mappings
 * from its own thread during a migration without the engine taking
 * locks.
 */
int vmig_engine_call(vmig_session *s, int (*fn)(vmig_session *s, void *arg),
		     void *arg);

/*
 * The loop's side, from the handle's callback: runs the queued calls,
 * then returns true when a cancel was requested (and clears the request).
 */
bool vmig_engine_wakeup(struct vmig_engine *e);

/* True while a migration of the session runs. */
bool vmig_engine_running(vmig_session *s);

/*
 * Releases the device-state handles an unresolved migration kept (run:
 * back to RUNNING first, for a guest that resumes here). Returns 0, or
 * the first device's error when run and a device could not be brought
 * back (each one is logged, and all handles are released anyway).
 */
int vmig_engine_release_devices(struct vmig_engine *e, bool run);

/*
 * True when device id's state handle is kept for an unresolved
 * migration: its fd is still used by vmig_resolve().
 */
bool vmig_engine_holds_device(vmig_session *s, uint32_t id);

/* Resets the figures of the last migration. */
void vmig_engine_stats_reset(struct vmig_engine *e);

/* Microseconds of CLOCK_MONOTONIC. */
uint64_t vmig_now_us(void);

/*
 * The clock the engine reads, for tests: now() replaces the monotonic
 * clock, and every wait the engine makes for time to pass (the bandwidth
 * limit's pacing) calls advance() with its length and does not sleep.
 * A test that advances its clock only there sees a migration whose
 * timing does not depend on how fast the machine is. NULL restores the
 * monotonic clock. Process-wide; set it while no migration runs.
 */
struct vmig_test_clock {
	uint64_t (*now)(void *opaque);
	void (*advance)(void *opaque, uint64_t us);
	void *opaque;
};
void vmig_test_clock_set(const struct vmig_test_clock *clock);

/*
 * A wait of us microseconds of the engine's clock, as the milliseconds to
 * give a libuv timer: rounded up on the monotonic clock; 0 with a test
 * clock, which has been advanced by us.
 */
uint64_t vmig_clock_wait_ms(uint64_t us);

/*
 * A write to a socket the peer closed raises SIGPIPE, whose default kills
 * the process: a library must not. While a migration's loop runs, the
 * calling thread blocks it (the write fails with EPIPE instead); after,
 * a SIGPIPE the loop raised is consumed and the mask restored.
 */
struct vmig_sigpipe {
	sigset_t old;
	bool was_pending;
};
void vmig_sigpipe_block(struct vmig_sigpipe *sp);
void vmig_sigpipe_restore(struct vmig_sigpipe *sp);

/* Adds one iteration's record to s->stats; NULL when out of memory. */
struct vmig_iter_stats *vmig_stats_iter_add(vmig_session *s);

/* digest.c */

/*
 * The digest of the session's regions (docs/protocol.md "Digest"): the
 * layout's seed plus each page's term, modulo 2^64. Large memories are
 * hashed on every core (vmig_digest_threads() threads).
 */
uint64_t vmig_digest_memory(const vmig_session *s);
/*
 * The same, given up (a meaningless result) soon after *stop becomes
 * true from another thread: a cancel does not wait for a whole memory.
 */
uint64_t vmig_digest_memory_until(const vmig_session *s, const bool *stop);
unsigned int vmig_digest_threads(const vmig_session *s);
/* What one core hashes here, measured on a sample (bytes per second). */
double vmig_digest_rate(const vmig_session *s);
/*
 * Tests: when above 0, the rate vmig_digest_rate() returns instead of
 * measuring one, so that whether a migration converges does not depend
 * on how fast this machine hashes.
 */
extern double vmig_digest_rate_fixed;
/* The layout's seed: the digest of memory without pages. */
uint64_t vmig_digest_layout(const vmig_session *s);
/* One page's term: its bytes, and the gpa of its first byte. */
uint64_t vmig_digest_page(uint64_t gpa, const void *page);
/* The term of a zero page at gpa, without reading one. */
uint64_t vmig_digest_zero_page(uint64_t gpa);
/*
 * The implementations of the page hash this build has, for tests and
 * benchmarks: implementation i's name, or NULL when there is no such
 * one or this processor cannot run it; a page's term by implementation
 * i (by the fastest when i has no name). vmig_digest_page() uses the
 * fastest.
 */
const char *vmig_digest_impl(unsigned int i);
uint64_t vmig_digest_page_impl(unsigned int i, uint64_t gpa,
			       const void *page);

/* True when the 4 KiB page at p is all zero (stops at the first word). */
bool vmig_page_is_zero(const void *p);

/*
 * Never-written memory, found without reading it. From page p of reg on,
 * at most max pages (max > 0) that are all holes (*hole true: they read
 * as zero and nothing ever wrote them, or what did was discarded) or all
 * possibly data (*hole false). Only the backing can say, and only where
 * the VMM said what it is: a region's fd (its memfd: lseek SEEK_DATA /
 * SEEK_HOLE, which counts a swapped-out page as data), or a region of
 * private anonymous memory of this process (VMIG_REGION_ANON_PRIVATE:
 * /proc/self/pagemap, a page neither present nor swapped). Anything else,
 * or a kernel that does not answer, is all data.
 */
uint64_t vmig_region_extent(const struct vmig_region_rec *reg, uint64_t p,
			    uint64_t max, bool *hole);
/* A /proc/self/pagemap entry names a hole: neither present nor swapped. */
bool vmig_pagemap_hole(uint64_t entry);
/*
 * How vmig_region_extent reads /proc/self/pagemap (pread): tests put in
 * entries the kernel gives only under memory pressure (a swapped page,
 * which mincore() does not call resident but is data).
 */
extern ssize_t (*vmig_pagemap_pread)(int fd, void *buf, size_t len,
				     off_t off);
/*
 * What vmig_region_add learns of a region's backing, from the kernel
 * (fstat, fstatfs, /proc/self/maps): whether its fd's holes may be
 * trusted (a tmpfs file, a memfd, that every mapping of hva..hva+len
 * maps shared at the offsets fd_offset on), and, for a region the VMM
 * flagged VMIG_REGION_ANON_PRIVATE, whether that is true (every mapping
 * private and anonymous: not hugetlb, not a file). Returns 0, or -EINVAL
 * with why in why (the flag is wrong).
 */
int vmig_region_backing(struct vmig_region_rec *reg, char *why,
			size_t whylen);

/* core/transport/: the connections a stream runs over */

/* One buffer of a write. */
struct vmig_iov {
	const void *base;
	size_t len;
};

/* A write is done: status 0, or a negative errno (-ECANCELED: closed). */
typedef void (*vmig_write_fn)(void *opaque, int status);

/* Callbacks of a connection. */
struct vmig_conn_ops {
	/* Where the next bytes received go, and at most how many. */
	void (*read_buf)(void *opaque, void **buf, size_t *len);
	/* n bytes (> 0) landed in the last buffer given. */
	void (*read_done)(void *opaque, size_t n);
	/* Reading ended: 0 the peer closed, or a negative errno. */
	void (*read_end)(void *opaque, int err);
	/* The connection is closed and freed. */
	void (*closed)(void *opaque);
	/*
	 * Optional: connecting has begun on c, which vmig_conn_close may
	 * abandon before connected() ran (connected() then runs with
	 * -ECANCELED). Stream connections (unix, tcp) and TLS say so.
	 */
	void (*connecting)(void *opaque, struct vmig_conn *c);
};

/*
 * Connects to address ("unix:/path", "tcp:host:port"; a host name is
 * looked up in a thread of its own, an address at once).
 * connected(opaque, conn, 0) runs from the loop once connected; on
 * failure (a lookup too) it runs with a negative errno and conn NULL, and
 * err holds the reason (it must live until then). Returns 0 or an error
 * (a bad address) with the reason in err.
 */
int vmig_conn_connect(uv_loop_t *loop, const char *address,
		      const struct vmig_conn_ops *ops, void *opaque,
		      void (*connected)(void *opaque, struct vmig_conn *c,
					int err),
		      char *err, size_t errlen);

/* Two connected ends on one loop (a socket pair). */
int vmig_conn_pair(uv_loop_t *loop, const struct vmig_conn_ops *ops_a,
		   void *opaque_a, const struct vmig_conn_ops *ops_b,
		   void *opaque_b, struct vmig_conn **a, struct vmig_conn **b,
		   char *err, size_t errlen);

/* Starts delivering received bytes to the owner's ops. */
int vmig_conn_read_start(struct vmig_conn *c);

/* Stops reading. */
void vmig_conn_read_stop(struct vmig_conn *c);

/*
 * Queues a write of iov[0..n) (the buffers must live until done runs;
 * the array need not): done(opaque, status) runs once it is written or
 * failed. Writes complete in order. Returns 0 or an error (then done
 * never runs).
 */
int vmig_conn_write(struct vmig_conn *c, const struct vmig_iov *iov,
		    unsigned int n, vmig_write_fn done, void *opaque);

/*
 * Closes the connection: pending writes complete with UV_ECANCELED, then
 * ops->closed runs and the connection is freed. Idempotent.
 */
void vmig_conn_close(struct vmig_conn *c);

/*
 * The connection's socket, for data connections to the same peer
 * (getpeername) or to be read by a thread of their own (dup'ed, then the
 * connection closed before it read anything); -ENOTSUP when its bytes
 * are not the stream's (TLS).
 */
int vmig_conn_fd(struct vmig_conn *c);

/*
 * The peer's address as text ("unix:/path", "tcp:1.2.3.4:5",
 * "socketpair").
 */
const char *vmig_conn_peer(const struct vmig_conn *c);

/*
 * Why the connection failed, in its transport's words (a refused TLS
 * handshake), or "" when an errno says it all.
 */
const char *vmig_conn_errmsg(const struct vmig_conn *c);

/*
 * Binds and listens on address; writes the bound address (the real port
 * for port 0) into bound. Returns 0, or an error with the reason in err.
 */
int vmig_listener_open(uv_loop_t *loop, const char *address,
		       struct vmig_listener **out, char *bound,
		       size_t boundlen, char *err, size_t errlen);

/*
 * Waits (on the loop) for one connection: accepted(opaque, conn, 0) with
 * the new connection using ops/conn_opaque, or (opaque, NULL, err). Only
 * that wait keeps the loop running: the listener stays open for the next
 * call, and a connection that comes meanwhile waits for it. accepted
 * NULL ends a wait without a connection.
 */
int vmig_listener_accept(struct vmig_listener *l,
			 const struct vmig_conn_ops *ops, void *conn_opaque,
			 void (*accepted)(void *opaque, struct vmig_conn *c,
					  int err),
			 void *opaque);

/*
 * Closes a listener (a unix socket's file is removed); the memory is
 * freed once libuv is done with it. Idempotent on NULL.
 */
void vmig_listener_close(struct vmig_listener *l);

/* dest.c: the destination's frame-checking state machine */

enum vmig_rx_state {
	VMIG_RX_START,     /* expecting HELLO */
	VMIG_RX_RECEIVING, /* pre-copy */
	VMIG_RX_FINAL,     /* after SWITCHOVER */
	VMIG_RX_ACKED,     /* after COMPLETE: only COMMIT */
	VMIG_RX_DONE,      /* COMMIT received */
	VMIG_RX_FAILED,    /* a check failed, or the source sent ERROR */
};

/* What vmig_rx_feed() found (>= 0), besides an error (< 0). */
enum vmig_rx_event {
	VMIG_RX_MORE = 0,     /* nothing to do yet */
	VMIG_RX_HELLO = 1,    /* layout accepted: answer WELCOME */
	VMIG_RX_COMPLETE = 2, /* all received: load devices, answer ACK */
	VMIG_RX_COMMIT = 3,   /* start the guest */
	VMIG_RX_PEER_ERROR = 4, /* the source sent ERROR (peer_code, _msg) */
};

struct vmig_rx_device {
	struct vmig_device_rec *dev;
	uint64_t offset; /* state bytes received */
	bool ended;
	void *ds;        /* device-state handle while resuming */
};

/*
 * The digest's terms a receiver of pages added: their sum and how many
 * pages got their first term (one per thread that applies pages).
 */
struct vmig_rx_terms {
	uint64_t sum;
	uint64_t pages;
};

/* A registered VMM state section (vmig_state_register). */
struct vmig_state_reg {
	char name[VMIG_STATE_NAME_MAX + 1];
	uint32_t version;     /* what save_final writes */
	uint32_t min_version; /* the oldest load takes */
	struct vmig_state_ops ops;
	void *opaque;
};

/* A state section HELLO named, on the destination. */
struct vmig_rx_vmmstate {
	const struct vmig_state_reg *reg;
	uint32_t version;  /* the source's */
	uint64_t offset;   /* bytes received */
	bool ended;
};

struct vmig_rx {
	vmig_session *s;
	enum vmig_rx_state state;
	uint64_t frame_no;      /* frames complete so far */
	/* The frame being received. */
	uint8_t hdr[VMIG_FRAME_HDR];
	size_t hdr_have;
	bool in_payload;
	struct vmig_frame f;
	struct vmig_msg m;      /* f, decoded once checked */
	uint8_t *dst;           /* where the payload goes */
	size_t want, have;
	bool to_scratch;
	uint8_t *scratch;       /* payloads that are not pages read straight */
	size_t scratch_len;
	/* The source's layout. */
	uint32_t nr_regions;
	uint32_t *region_map;   /* source region -> this session's region */
	uint32_t nr_devices;
	struct vmig_rx_device *devices;
	/* The VMM's state sections HELLO named (section_state.c). */
	uint32_t nr_states;
	struct vmig_rx_vmmstate *states;
	uint64_t state_check;   /* vmig_state_check of what was loaded */
	bool states_touched;    /* some record was loaded */
	uint64_t next_iteration;
	/* Figures. */
	uint64_t first_us;      /* when the first byte came */
	uint64_t last_page_us;  /* when the last page was applied */
	uint64_t bytes;
	uint64_t pages;         /* PAGES and ZERO pages received */
	uint64_t zero_pages;
	uint64_t device_bytes;
	/* Why it failed, or the source's ERROR. */
	char err[512];
	int peer_code;
	char peer_msg[VMIG_ERROR_MAX + 1];
	/*
	 * Where frames are applied (core/section.h): guest RAM's loader
	 * (vmig_rx_init sets it), and the devices' (NULL: no device can take
	 * state, and a HELLO naming one is refused).
	 */
	const struct vmig_section_loader *ram;
	const struct vmig_section_loader *devs;
	bool devs_touched;      /* some device left RUNNING */
	/*
	 * The memory digest, kept as pages arrive (docs/protocol.md
	 * "Digest"): per region of this session, each page's term and a
	 * bit saying it has one; their sum. A page received again replaces
	 * its term, so at COMPLETE the digest is known without a pass over
	 * memory (the pages the stream never named are hashed then).
	 */
	bool full_digest;       /* HELLO's FULL_DIGEST: no terms kept */
	bool no_digest;         /* HELLO's NO_DIGEST: nor any digest */
	uint64_t **term;        /* entries NULL with FULL_ or NO_DIGEST */
	uint64_t **termed;      /* also: the page was received */
	/*
	 * The page's term is a zero page's, computed, not kept in term:
	 * term is written only for pages that carried data.
	 */
	uint64_t **zeroed;
	struct vmig_rx_terms terms; /* the main stream's, and at COMPLETE all */
	/*
	 * HELLO's data connections: the pages travel there (channels.c),
	 * each applied by its own thread, never on this stream. Their
	 * pages' bits in termed and zeroed are set atomically.
	 */
	uint32_t nr_chans;
};

/*
 * For the data connections' threads (channels.c), once HELLO was
 * accepted. vmig_rx_span checks a PAGES or ZERO frame's region and range
 * against the layout: 0 with *span where its first page goes, or -EPROTO
 * with why in err. Once a PAGES frame's data is at its span,
 * vmig_rx_pages_applied records it; vmig_rx_zero_applied zeroes a ZERO
 * frame's pages and records them. The terms go to t, the thread's own.
 */
int vmig_rx_span(const struct vmig_rx *rx, const struct vmig_msg *m,
		 uint8_t **span, char *err, size_t errlen);
void vmig_rx_pages_applied(struct vmig_rx *rx, struct vmig_rx_terms *t,
			   const struct vmig_msg *m);
void vmig_rx_zero_applied(struct vmig_rx *rx, struct vmig_rx_terms *t,
			  const struct vmig_msg *m, uint8_t *span);

/* Prepares rx for a stream into s's regions. Returns 0 or -ENOMEM. */
int vmig_rx_init(struct vmig_rx *rx, vmig_session *s);

/* Releases what rx allocated. */
void vmig_rx_fini(struct vmig_rx *rx);

/*
 * The digest of this session's memory as received: the terms kept so
 * far, and the pages without one hashed now. Returns it, and sets
 * *hashed to the pages that had to be read.
 */
uint64_t vmig_rx_digest(struct vmig_rx *rx, uint64_t *hashed);

/*
 * Where the next bytes of the stream go, and at most how many: never past
 * the end of the current frame part, so a read cannot straddle frames.
 * Page payloads are spans of guest memory that the header was checked to
 * allow; everything else is a bounded scratch buffer.
 */
void vmig_rx_buf(struct vmig_rx *rx, void **buf, size_t *len);

/*
 * n bytes were placed where vmig_rx_buf() said. Returns an event, or
 * -EPROTO (rx->err says which check failed; state FAILED) or another
 * error.
 */
int vmig_rx_feed(struct vmig_rx *rx, size_t n);

/* The state's name as messages give it ("receiving"). */
const char *vmig_rx_state_name(enum vmig_rx_state st);

/* precopy.c, dest.c: one migration on a loop. */

/* Runs the source and the destination of vmig_migrate_local(). */
int vmig_src_run(vmig_session *s, const char *address, vmig_session *dst);

/* Runs a destination on its listener (vmig_receive). */
int vmig_dst_run(vmig_session *s);

/* dest.c, for vmig_migrate_local: a destination on a given connection. */
int vmig_dst_start(vmig_session *s, uv_loop_t *loop, struct vmig_dst **out);
const struct vmig_conn_ops *vmig_dst_conn_ops(void);
void vmig_dst_attach(struct vmig_dst *d, struct vmig_conn *c);
/* A data connection's socket (fd, taken), from the local source. */
void vmig_dst_add_channel(struct vmig_dst *d, int fd);
/* True once the destination is over. */
bool vmig_dst_finished(const struct vmig_dst *d);
/* Ends a destination that never got its connection. */
void vmig_dst_abort(struct vmig_dst *d, int err, const char *why);
/* After the loop ran dry: records the figures, frees d, returns its result. */
int vmig_dst_finish(struct vmig_dst *d);

#endif /* VMIG_CORE_ENGINE_H */
