/*
 * writer.c: the source's frame writer (see writer.h).
 *
 * This file owns the batches and their accounting: a write is an array
 * [header, pages, header, pages, ...] of up to VMIG_BATCH_FRAMES frames
 * whose headers live in the batch until its write completes; pooled
 * batches carry pages straight from guest memory, control frames get a
 * batch of their own, and payloads a batch took are freed once written.
 */
#include <errno.h>
#include <stdlib.h>

#include "writer.h"

#define NR_BATCHES 16

int vmig_writer_init(struct vmig_writer *w,
		     void (*written)(void *opaque,
				     const struct vmig_written *wr,
				     int status),
		     void *opaque)
{
	unsigned int i;

	w->pool = calloc(NR_BATCHES, sizeof(*w->pool));
	if (!w->pool)
		return -ENOMEM;
	w->written = written;
	w->opaque = opaque;
	for (i = 0; i < NR_BATCHES; i++) {
		w->pool[i].w = w;
		vmig_batch_put(&w->pool[i]);
	}
	return 0;
}

void vmig_writer_fini(struct vmig_writer *w)
{
	free(w->pool);
	w->pool = NULL;
	w->free_batches = NULL;
}

struct vmig_batch *vmig_batch_get(struct vmig_writer *w)
{
	struct vmig_batch *b = w->free_batches;

	if (!b)
		return NULL;
	w->free_batches = b->next;
	b->nframes = b->nbufs = b->nheap = 0;
	b->bytes = b->pages = 0;
	b->complete = b->commit = b->last = false;
	return b;
}

void vmig_batch_put(struct vmig_batch *b)
{
	struct vmig_writer *w = b->w;
	unsigned int i;

	for (i = 0; i < b->nheap; i++)
		free(b->heap[i]);
	b->nheap = 0;
	if (b->own) {
		free(b);
		return;
	}
	b->next = w->free_batches;
	w->free_batches = b;
}

struct vmig_batch *vmig_batch_ctl(struct vmig_writer *w)
{
	struct vmig_batch *b = calloc(1, sizeof(*b));

	if (b) {
		b->w = w;
		b->own = true;
	}
	return b;
}

uint8_t *vmig_batch_hdr(struct vmig_batch *b)
{
	return b->hdr[b->nframes];
}

void vmig_batch_frame(struct vmig_batch *b, const void *data,
		      uint64_t length)
{
	uint8_t *h = b->hdr[b->nframes++];

	b->bufs[b->nbufs++] = (struct vmig_iov){ h, VMIG_FRAME_HDR };
	if (length)
		b->bufs[b->nbufs++] = (struct vmig_iov){ data, length };
	b->bytes += VMIG_FRAME_HDR + length;
	/* A data connection counts its own (vmig_chans_complete). */
	if (b->own || !b->w->chans)
		b->w->frames++;
	b->w->last_type = vmig_frame_type_of(h);
}

static void batch_written(void *opaque, int status)
{
	struct vmig_batch *b = opaque;
	struct vmig_writer *w = b->w;
	struct vmig_written wr = {
		.complete = b->complete,
		.commit = b->commit,
		.last = b->last,
		.bytes = b->bytes,
	};

	w->batches_out--;
	w->inflight -= b->bytes;
	if (status == 0)
		w->bytes_done += b->bytes;
	vmig_batch_put(b);
	w->written(w->opaque, &wr, status);
}

int vmig_batch_submit(struct vmig_batch *b)
{
	struct vmig_writer *w = b->w;
	int ret;

	if (!b->nframes) {
		vmig_batch_put(b);
		return 0;
	}
	if (!w->conn) {
		/* Closed after a failure: nothing goes out any more. */
		vmig_batch_put(b);
		return -ENOTCONN;
	}
	if (!b->own && w->chans)
		ret = vmig_chans_write(w->chans, b->bufs, b->nbufs, b->bytes,
				       b->nframes, b->pages, batch_written, b);
	else
		ret = vmig_conn_write(w->conn, b->bufs, b->nbufs,
				      batch_written, b);
	if (ret < 0) {
		vmig_batch_put(b);
		return ret;
	}
	w->batches_out++;
	w->inflight += b->bytes;
	w->bytes_total += b->bytes;
	return 0;
}

static uint8_t *batch_sink_next(void *opaque)
{
	struct vmig_batch_sink_state *bs = opaque;
	struct vmig_batch *b = bs->b;

	if (b->nframes >= VMIG_BATCH_FRAMES || b->bytes >= bs->budget ||
	    b->nheap >= sizeof(b->heap) / sizeof(b->heap[0]))
		return NULL;
	return vmig_batch_hdr(b);
}

static int batch_sink_add(void *opaque, const void *data, size_t len,
			  bool own)
{
	struct vmig_batch_sink_state *bs = opaque;

	if (own)
		bs->b->heap[bs->b->nheap++] = (void *)data;
	vmig_batch_frame(bs->b, data, len);
	return 0;
}

void vmig_batch_sink(struct vmig_batch *b, uint64_t budget,
		     struct vmig_section_sink *out,
		     struct vmig_batch_sink_state *bs)
{
	bs->b = b;
	bs->budget = budget;
	out->next = batch_sink_next;
	out->add = batch_sink_add;
	out->opaque = bs;
	out->pages = 0;
}
