/*
 * channels.h: the data connections of a migration ("connections": N).
 *
 * With N > 1 the pages travel over N connections of their own, beside the
 * main stream that keeps HELLO, the device and VMM state and the control
 * frames. Each data connection is one socket and one thread on each side:
 * the source's thread writes the page batches the loop hands it, the
 * destination's reads, checks and applies them into guest memory.
 *
 * No older copy of a page overwrites a newer one: every pass over memory
 * begins with a marker (ITERATION, or SWITCHOVER for the last) on every
 * data connection, and a destination thread that reads a marker waits
 * until every data connection has read it too. A page is sent at most once
 * in a pass, so two copies of a page on two connections are always in two
 * passes, and the older one is applied before the barrier that precedes
 * the newer (docs/protocol.md, "Data connections").
 */
#ifndef VMIG_CORE_CHANNELS_H
#define VMIG_CORE_CHANNELS_H

#include <stdbool.h>
#include <stdint.h>
#include <sys/socket.h>

#include "engine.h"
#include "proto.h"

/* ------------------------------------------------------------------ */
/* The source                                                          */

struct vmig_chans;

/*
 * Opens n data connections from loop's thread: to peer (the main
 * stream's peer address, peerlen bytes), or, with fds non-NULL, over the
 * n sockets given (taken, closed at the end). Each thread connects,
 * presents token in its CHANNEL frame, then writes what it is given.
 * failed(opaque, err, msg) runs on the loop, once, as soon as one fails
 * (a connect, a write). Returns 0 or an error with the reason in err.
 */
int vmig_chans_open(struct vmig_chans **out, uv_loop_t *loop, uint32_t n,
		    const struct sockaddr *peer, socklen_t peerlen,
		    const int *fds, const uint64_t token[2],
		    void (*failed)(void *opaque, int err, const char *msg),
		    void *opaque, char *err, size_t errlen);

/*
 * Queues a write of iov[0..niov) (frames frames, pages pages, bytes
 * bytes) on the data connection with the least queued: done(opaque,
 * status) runs on the loop once written (status 0) or failed. Returns 0
 * or an error (then done never runs).
 */
int vmig_chans_write(struct vmig_chans *c, const struct vmig_iov *iov,
		     unsigned int niov, uint64_t bytes, uint64_t frames,
		     uint64_t pages, vmig_write_fn done, void *opaque);

/* Queues the frame hdr (a marker: ITERATION, SWITCHOVER) on each one. */
int vmig_chans_marker(struct vmig_chans *c,
		      const uint8_t hdr[VMIG_FRAME_HDR]);

/* Queues on each one its COMPLETE: the pages and frames it carried. */
int vmig_chans_complete(struct vmig_chans *c);

/*
 * The first failure of a data connection: its error (0: none; c may be
 * NULL) and why in msg.
 */
int vmig_chans_error(struct vmig_chans *c, char *msg, size_t len);

/*
 * Stops every thread (at once: a write in progress is abandoned), then
 * ends every write still queued with -ECANCELED (done runs now) and
 * frees c once libuv is done with it. Idempotent on NULL.
 */
void vmig_chans_close(struct vmig_chans *c);

/* ------------------------------------------------------------------ */
/* The destination                                                     */

struct vmig_dchans;

/*
 * Expects n data connections for rx (its HELLO was accepted), presenting
 * token in their CHANNEL within handshake_ms of being accepted.
 * notify(opaque) runs on loop's thread when a connection moved, ended,
 * failed or was dropped. Returns 0 or -ENOMEM.
 */
int vmig_dchans_new(struct vmig_dchans **out, uv_loop_t *loop,
		    struct vmig_rx *rx, uint32_t n, const uint64_t token[2],
		    uint64_t handshake_ms, void (*notify)(void *opaque),
		    void *opaque);

/*
 * One more connection (fd, taken; peer names it in messages): its thread
 * reads its CHANNEL frame, then its stream. A connection that does not
 * present this migration's CHANNEL in time (a stranger's) is dropped, not
 * the migration. Returns 0 or an error (the fd is closed; -EBUSY: no slot
 * free).
 */
int vmig_dchans_add(struct vmig_dchans *d, int fd, const char *peer);

/*
 * Whether to accept another connection: some data connection has not
 * presented its CHANNEL yet, and a slot is free.
 */
bool vmig_dchans_want(struct vmig_dchans *d);

/* The data connections that presented their CHANNEL. */
uint32_t vmig_dchans_claimed(struct vmig_dchans *d);

/*
 * After notify: < 0 when a data connection failed (why in msg); 1 when
 * every one received its COMPLETE (the counts are then added into rx:
 * pages, bytes, the digest's terms), else 0. *dropped counts the
 * strangers' connections closed now (the last one's reason in msg).
 */
int vmig_dchans_poll(struct vmig_dchans *d, uint32_t *dropped, char *msg,
		     size_t msglen);

/* Stops and joins every thread, frees d once libuv is done with it. */
void vmig_dchans_close(struct vmig_dchans *d);

#endif /* VMIG_CORE_CHANNELS_H */
