/*
 * reply.c: the source's receive machine for the destination's replies
 * (see reply.h).
 *
 * This file owns the order of the checks on a reply: the header's fixed
 * rules (proto.c), then whether the source awaits that type now, then
 * the rest of the header, then the payload's CRC. A reply is numbered by
 * the replies acted on before it.
 */
#include <errno.h>
#include <stdio.h>

#include "reply.h"

void vmig_reply_buf(struct vmig_reply *r, void **buf, size_t *len)
{
	if (!r->in_payload) {
		*buf = r->hdr + r->have;
		*len = VMIG_FRAME_HDR - r->have;
	} else {
		*buf = r->payload + r->got;
		*len = r->want - r->got;
	}
}

/* A whole payload: its CRC, when it has one. */
static int reply_payload(struct vmig_reply *r)
{
	r->in_payload = false;
	if (r->m.crc &&
	    vmig_crc32c(0, r->payload, r->want) != r->m.data_crc) {
		snprintf(r->err, sizeof(r->err),
			 "reply frame %llu (ERROR): data CRC mismatch",
			 (unsigned long long)r->frames);
		return -EPROTO;
	}
	return 1;
}

/* A whole header: checked, then awaited, then the rest of it. */
static int reply_header(struct vmig_reply *r,
			bool (*expected)(uint32_t type, void *opaque),
			void *opaque)
{
	char err[384];

	r->have = 0;
	if (vmig_frame_check_head(r->hdr, r->frames, &r->f, err,
				  sizeof(err)) < 0)
		goto bad;
	if (r->f.type != VMIG_FRAME_ERROR && !expected(r->f.type, opaque)) {
		snprintf(r->err, sizeof(r->err),
			 "bad reply from the destination: reply frame %llu "
			 "(%s) not expected now",
			 (unsigned long long)r->frames,
			 vmig_frame_name(r->f.type));
		return -EPROTO;
	}
	if (vmig_frame_check_body(&r->f, r->frames, err, sizeof(err)) < 0)
		goto bad;
	vmig_frame_decode(&r->f, &r->m);
	r->want = (size_t)r->f.length;
	if (r->want) {
		r->in_payload = true;
		r->got = 0;
		return 0;
	}
	return 1;
bad:
	snprintf(r->err, sizeof(r->err), "bad reply from the destination: %s",
		 err);
	return -EPROTO;
}

int vmig_reply_feed(struct vmig_reply *r, size_t n,
		    bool (*expected)(uint32_t type, void *opaque),
		    void *opaque)
{
	if (r->in_payload) {
		r->got += n;
		return r->got < r->want ? 0 : reply_payload(r);
	}
	r->have += n;
	if (r->have < VMIG_FRAME_HDR)
		return 0;
	return reply_header(r, expected, opaque);
}

void vmig_reply_done(struct vmig_reply *r)
{
	r->frames++;
}
