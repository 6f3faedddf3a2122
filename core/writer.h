/*
 * writer.h: the source's frame writer.
 *
 * writer.c owns the writes of the source's stream: frames gathered in
 * batches, each one write of [header, payload, header, payload, ...]
 * whose headers live in the batch until the write completes; a pool of
 * batches for the pages (filled from guest memory, nothing allocated
 * per page) and batches of their own for control frames; what is in
 * flight, queued and written; and a sink (section.h) that fills a pooled
 * batch. What to write, and when, is precopy.c's.
 */
#ifndef VMIG_CORE_WRITER_H
#define VMIG_CORE_WRITER_H

#include <stdbool.h>
#include <stdint.h>

#include "channels.h"
#include "engine.h"
#include "section.h"

#define VMIG_BATCH_FRAMES 64
#define VMIG_BATCH_BYTES (8u << 20)

struct vmig_writer;

struct vmig_batch {
	struct vmig_writer *w;
	struct vmig_batch *next;
	unsigned int nframes, nbufs, nheap;
	uint64_t bytes;
	uint64_t pages; /* PAGES and ZERO pages it names (data connections) */
	bool complete;  /* carries COMPLETE */
	bool commit;    /* carries COMMIT */
	bool last;      /* ERROR: close the connection after it */
	bool own;       /* allocated for a control frame, not pooled */
	void *heap[4];  /* payloads to free once written */
	uint8_t hdr[VMIG_BATCH_FRAMES][VMIG_FRAME_HDR];
	struct vmig_iov bufs[2 * VMIG_BATCH_FRAMES];
};

/* What a completed write carried, for the writer's owner. */
struct vmig_written {
	bool complete, commit, last;
	uint64_t bytes;
};

struct vmig_writer {
	struct vmig_conn *conn;   /* NULL: closed, nothing goes out */
	/*
	 * The data connections (channels.h), once open: the pooled batches
	 * (pages) go there, the control frames on conn.
	 */
	struct vmig_chans *chans;
	struct vmig_batch *pool;
	struct vmig_batch *free_batches;
	unsigned int batches_out;
	uint64_t inflight;        /* bytes queued, not yet written */
	uint64_t frames;          /* frames queued on conn */
	uint32_t last_type;       /* type of the last frame queued */
	uint64_t bytes_total;     /* bytes queued */
	uint64_t bytes_done;      /* bytes written */
	/* A write completed (status 0 or -errno); its batch is back. */
	void (*written)(void *opaque, const struct vmig_written *wr,
			int status);
	void *opaque;
};

/* Allocates the pool. Returns 0 or -ENOMEM. */
int vmig_writer_init(struct vmig_writer *w,
		     void (*written)(void *opaque,
				     const struct vmig_written *wr,
				     int status),
		     void *opaque);
/* Frees the pool (no write may be in flight). */
void vmig_writer_fini(struct vmig_writer *w);

/* A pooled batch for pages, or NULL while all are in flight. */
struct vmig_batch *vmig_batch_get(struct vmig_writer *w);
/* A batch of its own for a control frame; NULL when out of memory. */
struct vmig_batch *vmig_batch_ctl(struct vmig_writer *w);
/* Frees what the batch holds, and the batch back to its pool. */
void vmig_batch_put(struct vmig_batch *b);
/* Where the next frame's header is encoded (then vmig_batch_frame). */
uint8_t *vmig_batch_hdr(struct vmig_batch *b);
/*
 * Adds the frame encoded at vmig_batch_hdr(b); data (length bytes) is
 * referenced, not copied.
 */
void vmig_batch_frame(struct vmig_batch *b, const void *data,
		      uint64_t length);
/*
 * Writes the batch (an empty one goes back to the pool). Returns 0, or
 * an error (-ENOTCONN once closed) with the batch put back.
 */
int vmig_batch_submit(struct vmig_batch *b);

/* What a batch's sink keeps (its opaque). */
struct vmig_batch_sink_state {
	struct vmig_batch *b;
	uint64_t budget;
};

/* Makes out a sink (section.h) that fills b within budget bytes. */
void vmig_batch_sink(struct vmig_batch *b, uint64_t budget,
		     struct vmig_section_sink *out,
		     struct vmig_batch_sink_state *state);

#endif /* VMIG_CORE_WRITER_H */
