/*
 * reply.h: the source's receive machine for the destination's replies.
 *
 * reply.c owns the checks of what comes back on the source's connection,
 * without sockets (the counterpart of dest.c's vmig_rx): each header as
 * the destination's are checked (proto.c), then whether its type is one
 * the source awaits now (the owner says which), then an ERROR's message
 * and its CRC. precopy.c acts on the replies it returns.
 */
#ifndef VMIG_CORE_REPLY_H
#define VMIG_CORE_REPLY_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "proto.h"

struct vmig_reply {
	uint8_t hdr[VMIG_FRAME_HDR];
	size_t have;
	bool in_payload;
	struct vmig_frame f;
	struct vmig_msg m;        /* the reply, decoded once checked */
	uint8_t payload[VMIG_ERROR_MAX];
	size_t want, got;
	uint64_t frames;          /* replies acted on so far */
	/* Why the stream failed: the whole message. */
	char err[512];
};

/* Where the next bytes go, and at most how many. */
void vmig_reply_buf(struct vmig_reply *r, void **buf, size_t *len);

/*
 * n bytes landed where vmig_reply_buf() said. expected(type, opaque)
 * tells whether a reply of that type is awaited now (ERROR always is).
 * Returns 1 when a reply is complete (r->m, an ERROR's message in
 * r->payload, r->want bytes; the owner calls vmig_reply_done() once it
 * acted on it), 0 for more, or -EPROTO with r->err.
 */
int vmig_reply_feed(struct vmig_reply *r, size_t n,
		    bool (*expected)(uint32_t type, void *opaque),
		    void *opaque);

/* The reply returned was acted on: it counts. */
void vmig_reply_done(struct vmig_reply *r);

#endif /* VMIG_CORE_REPLY_H */
