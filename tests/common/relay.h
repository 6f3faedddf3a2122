/*
 * relay.h: a byte relay between a migration's source and destination, for
 * tests that cut or stall the connection at a chosen byte.
 *
 * The source connects to the relay's unix socket; the relay connects to
 * the destination's and forwards both directions, parsing the frame
 * headers (docs/protocol.md) as they pass. In one direction it forwards
 * at most `limit` bytes, counted from the start of the stream or, with
 * `after_type`, from the start of the first frame of that type in that
 * direction; when more would follow, it cuts both ends at once, or holds
 * everything (stall) until relay_stop(). It acts on bytes, never on time.
 */
#ifndef VMIG_TEST_RELAY_H
#define VMIG_TEST_RELAY_H

#include <pthread.h>
#include <stdbool.h>
#include <stdint.h>

enum { RELAY_S2D = 0, RELAY_D2S = 1 };

#define RELAY_MAX_FRAMES 4096

struct relay_frame {
	uint32_t type;
	uint64_t off; /* where its header starts in its direction */
};

struct relay {
	/* Set by relay_start. */
	int dir;             /* the direction limited */
	uint64_t limit;      /* bytes of dir forwarded at most */
	uint32_t after_type; /* 0: limit from the start; else from this frame */
	bool stall;          /* at the limit: hold, else cut */
	char src_addr[120];  /* "unix:..." to give vmig_migrate */
	char dst_path[108];  /* where the destination listens */

	/* What happened, under lock (moved is signalled on progress). */
	pthread_mutex_t lock;
	pthread_cond_t moved;
	uint64_t fwd[2];     /* bytes forwarded per direction */
	bool hit;            /* the limit was reached with more to come */
	bool armed;          /* after_type seen: the limit counts */
	struct relay_frame frames[2][RELAY_MAX_FRAMES];
	unsigned int nframes[2];

	/* Internal. */
	int lfd;
	int release[2];
	pthread_t thread;
	uint8_t hdr[2][64];
	unsigned int hdr_have[2];
	uint64_t payload_left[2];
};

/*
 * Starts a relay listening on src_path (removed first) toward a
 * destination listening on dst_path. Returns 0 or a negative errno.
 */
int relay_start(struct relay *r, const char *src_path, const char *dst_path,
		int dir, uint64_t limit, uint32_t after_type, bool stall);

/* Ends a stall (or an idle relay), waits for its thread, cleans up. */
void relay_stop(struct relay *r);

/* The offset of the first frame of type t in direction d, or -1. */
int64_t relay_frame_off(struct relay *r, int d, uint32_t t);

#endif /* VMIG_TEST_RELAY_H */
