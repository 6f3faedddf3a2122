/*
 * dest.c: the destination of a migration.
 *
 * This file owns the receiving state machine (struct vmig_rx), which
 * checks every frame before it touches anything, exactly as
 * docs/protocol.md lists the checks, and decides where each byte of the
 * stream may go: page payloads straight into the span of guest memory
 * that their checked header names, everything else into a bounded
 * scratch buffer. Nothing outside the session's regions is ever written.
 * What a checked frame carries is applied by its section's loader
 * (section.h: guest RAM, device state). The state machine knows no
 * sockets (test_proto feeds it from memory);
 * the rest of the file runs it on a connection: accept one source, answer
 * WELCOME, load the devices' state, acknowledge with the memory digest,
 * start the guest only once the source commits, and confirm that it
 * started (STARTED). A destination that received COMMIT owns the guest:
 * it runs it even when STARTED cannot reach the source (whose VMM then
 * resolves the outcome); one that did not never starts it; one that
 * cannot start it after COMMIT says so with ERROR, so that the source
 * resumes.
 * Every wait for the source is bounded (watch.c): the handshake, an idle
 * stream, SWITCHOVER to COMMIT and, when set, timeout_ms; a destination
 * that gives up keeps its listener for the next source.
 */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>
#include <unistd.h>

#include "channels.h"
#include "engine.h"
#include "section.h"
#include "watch.h"

/* ------------------------------------------------------------------ */
/* The receiving state machine                                         */

/*
 * The largest payload read aside: a device-state chunk, or a PAGES frame
 * with DATA_CRC (applied only once its CRC matches).
 */
#define SCRATCH_LEN                                        \
	(VMIG_DEVSTATE_MAX > VMIG_PAGES_MAX * 4096u ? VMIG_DEVSTATE_MAX \
						    : VMIG_PAGES_MAX * 4096u)
_Static_assert(SCRATCH_LEN >= VMIG_HELLO_MAX && SCRATCH_LEN >= VMIG_ERROR_MAX,
	       "HELLO and ERROR payloads fit the scratch");

static const char *const state_names[] = {
	[VMIG_RX_START] = "start",
	[VMIG_RX_RECEIVING] = "receiving",
	[VMIG_RX_FINAL] = "final",
	[VMIG_RX_ACKED] = "acked",
	[VMIG_RX_DONE] = "done",
	[VMIG_RX_FAILED] = "failed",
};

const char *vmig_rx_state_name(enum vmig_rx_state st)
{
	return st <= VMIG_RX_FAILED ? state_names[st] : "?";
}

/* Frames each state accepts (bit n: type n); ERROR in all but the end. */
#define BIT(t) (1u << (t))
static const uint32_t allowed[] = {
	[VMIG_RX_START] = BIT(VMIG_FRAME_HELLO) | BIT(VMIG_FRAME_ERROR),
	[VMIG_RX_RECEIVING] = BIT(VMIG_FRAME_ITERATION) |
			      BIT(VMIG_FRAME_PAGES) | BIT(VMIG_FRAME_ZERO) |
			      BIT(VMIG_FRAME_DEVICE_STATE) |
			      BIT(VMIG_FRAME_VMM_STATE) |
			      BIT(VMIG_FRAME_SWITCHOVER) |
			      BIT(VMIG_FRAME_ERROR),
	[VMIG_RX_FINAL] = BIT(VMIG_FRAME_PAGES) | BIT(VMIG_FRAME_ZERO) |
			  BIT(VMIG_FRAME_DEVICE_STATE) |
			  BIT(VMIG_FRAME_DEVICE_END) |
			  BIT(VMIG_FRAME_VMM_STATE) |
			  BIT(VMIG_FRAME_VMM_STATE_END) |
			  BIT(VMIG_FRAME_COMPLETE) | BIT(VMIG_FRAME_ERROR),
	[VMIG_RX_ACKED] = BIT(VMIG_FRAME_COMMIT) | BIT(VMIG_FRAME_ERROR),
	[VMIG_RX_DONE] = 0,
	[VMIG_RX_FAILED] = 0,
};

/* rx as vmig_rx_init leaves it, its scratch buffer the one given. */
static void rx_start(struct vmig_rx *rx, vmig_session *s, uint8_t *scratch)
{
	memset(rx, 0, sizeof(*rx));
	rx->s = s;
	rx->state = VMIG_RX_START;
	rx->scratch = scratch;
	rx->scratch_len = SCRATCH_LEN;
	rx->ram = &vmig_section_ram_loader;
}

int vmig_rx_init(struct vmig_rx *rx, vmig_session *s)
{
	uint8_t *scratch = malloc(SCRATCH_LEN);

	rx_start(rx, s, scratch);
	return scratch ? 0 : -ENOMEM;
}

/* Whether the digest is kept as pages arrive (not FULL_DIGEST, nor NO_). */
static bool rx_keeps_terms(const struct vmig_rx *rx)
{
	return !rx->full_digest && !rx->no_digest;
}

/*
 * The per-page terms of the digest for this session's regions (none with
 * FULL_DIGEST or NO_DIGEST), and the bitmaps of the pages received.
 */
static int rx_terms_alloc(struct vmig_rx *rx)
{
	vmig_session *s = rx->s;
	size_t i;

	rx->term = calloc(s->nr_regions ? s->nr_regions : 1,
			  sizeof(*rx->term));
	rx->termed = calloc(s->nr_regions ? s->nr_regions : 1,
			    sizeof(*rx->termed));
	rx->zeroed = calloc(s->nr_regions ? s->nr_regions : 1,
			    sizeof(*rx->zeroed));
	if (!rx->term || !rx->termed || !rx->zeroed)
		return -ENOMEM;
	for (i = 0; i < s->nr_regions; i++) {
		uint64_t n = s->regions[i].npages;

		/* Large and zero-filled: untouched until pages arrive. */
		if (rx_keeps_terms(rx)) {
			rx->term[i] = calloc(n, sizeof(uint64_t));
			if (!rx->term[i])
				return -ENOMEM;
		}
		rx->termed[i] = calloc((n + 63) / 64, sizeof(uint64_t));
		rx->zeroed[i] = calloc((n + 63) / 64, sizeof(uint64_t));
		if (!rx->termed[i] || !rx->zeroed[i])
			return -ENOMEM;
		/*
		 * Fresh memory is zero: each page's term is a zero page's
		 * until something arrives for it, in the sum from now on.
		 * A ZERO frame for such a page then costs a bit, not a hash,
		 * and the destination never lags behind a sparse guest's
		 * stream of ZERO frames.
		 */
		if (rx_keeps_terms(rx) && s->regions[i].fresh) {
			uint64_t p, gpa = s->regions[i].gpa;

			for (p = 0; p < n; p++)
				rx->terms.sum += vmig_digest_zero_page(
					gpa + p * VMIG_PAGE_SIZE);
		}
	}
	return 0;
}

static void rx_terms_free(struct vmig_rx *rx)
{
	size_t i;

	for (i = 0; rx->s && i < rx->s->nr_regions; i++) {
		if (rx->term)
			free(rx->term[i]);
		if (rx->termed)
			free(rx->termed[i]);
		if (rx->zeroed)
			free(rx->zeroed[i]);
	}
	free(rx->term);
	free(rx->termed);
	free(rx->zeroed);
	rx->term = NULL;
	rx->termed = NULL;
	rx->zeroed = NULL;
}

/*
 * Page p of session region r now holds page (NULL: it is zero); its term
 * replaces the one it had: term[r][p], a zero page's (a bit says so: a
 * huge guest's zero pages cost no terms), or, in fresh memory nothing
 * arrived for yet, a zero page's too (rx_terms_alloc). The page is this
 * thread's alone until the next pass; its bitmap words are not (data
 * connections apply neighbouring pages): they change atomically.
 */
static inline void rx_term_set(struct vmig_rx *rx, struct vmig_rx_terms *acc,
			       uint32_t r, uint64_t p, const uint8_t *page)
{
	const struct vmig_region_rec *reg = &rx->s->regions[r];
	uint64_t *w = &rx->termed[r][p / 64], *z = &rx->zeroed[r][p / 64],
		 bit = 1ull << (p % 64), gpa = reg->gpa + p * VMIG_PAGE_SIZE;
	bool old = __atomic_fetch_or(w, bit, __ATOMIC_RELAXED) & bit;
	bool was_zero = (page ? __atomic_fetch_and(z, ~bit, __ATOMIC_RELAXED)
			      : __atomic_fetch_or(z, bit, __ATOMIC_RELAXED)) &
			bit;
	bool had_zero_term = old ? was_zero : reg->fresh;
	uint64_t t;

	if (!old)
		acc->pages++;
	if (!page && had_zero_term)
		return; /* the same term */
	if (old || reg->fresh)
		acc->sum -= had_zero_term ? vmig_digest_zero_page(gpa)
					  : rx->term[r][p];
	if (page) {
		t = vmig_digest_page(gpa, page);
		rx->term[r][p] = t;
	} else {
		t = vmig_digest_zero_page(gpa);
	}
	acc->sum += t;
}

/*
 * The pages [p, end) that lie in p's bitmap word: their mask, and in *k
 * how many they are (the walk's step).
 */
static inline uint64_t rx_word(uint64_t p, uint64_t end, uint64_t *k)
{
	unsigned int lo = p % 64;

	*k = vmig_bm_min(end - p, 64 - lo);
	return vmig_bm_mask_range(lo, lo + (unsigned int)*k);
}

/* Pages [first, first + n) of session region r were received. */
static void rx_seen(struct vmig_rx *rx, uint32_t r, uint64_t first,
		    uint64_t n)
{
	uint64_t p, k, end = first + n;

	for (p = first; p < end; p += k)
		__atomic_fetch_or(&rx->termed[r][p / 64], rx_word(p, end, &k),
				  __ATOMIC_RELAXED);
}

/*
 * The pages of a ZERO frame in session region r, [first, first + n): a
 * word of them whose terms are all a zero page's already (received as
 * zero, or fresh and not received) changes two bits per page, at once.
 */
static void rx_terms_zero(struct vmig_rx *rx, struct vmig_rx_terms *acc,
			  uint32_t r, uint64_t first, uint64_t n)
{
	bool fresh = rx->s->regions[r].fresh;
	uint64_t p, k, end = first + n;

	for (p = first; p < end; p += k) {
		uint64_t mask = rx_word(p, end, &k);
		uint64_t *tw = &rx->termed[r][p / 64], *zw = &rx->zeroed[r][p / 64];
		uint64_t t = __atomic_load_n(tw, __ATOMIC_RELAXED),
			 z = __atomic_load_n(zw, __ATOMIC_RELAXED);
		uint64_t zero_term = (t & z) | (fresh ? ~t : 0), i;

		if (!(mask & ~zero_term)) {
			__atomic_fetch_or(tw, mask, __ATOMIC_RELAXED);
			__atomic_fetch_or(zw, mask, __ATOMIC_RELAXED);
			acc->pages += (uint64_t)__builtin_popcountll(mask & ~t);
		} else {
			for (i = p; i < p + k; i++)
				rx_term_set(rx, acc, r, i, NULL);
		}
	}
}

/*
 * The pages of a PAGES or ZERO frame (source region, first page, count)
 * were applied: their terms replace the old ones.
 */
static void rx_terms_update(struct vmig_rx *rx, struct vmig_rx_terms *acc,
			    uint64_t region, uint64_t first, uint64_t n,
			    bool zero)
{
	uint32_t r = rx->region_map[region];
	const struct vmig_region_rec *reg = &rx->s->regions[r];
	uint64_t i;

	if (!rx_keeps_terms(rx)) {
		/*
		 * One pass at the end instead, or no digest: only mark them
		 * received.
		 */
		rx_seen(rx, r, first, n);
		return;
	}
	if (zero) {
		rx_terms_zero(rx, acc, r, first, n);
		return;
	}
	for (i = first; i < first + n; i++)
		rx_term_set(rx, acc, r, i, reg->hva + i * VMIG_PAGE_SIZE);
}

void vmig_rx_pages_applied(struct vmig_rx *rx, struct vmig_rx_terms *t,
			   const struct vmig_msg *m)
{
	rx_terms_update(rx, t, m->pages.region, m->pages.first,
			m->pages.count, false);
}

void vmig_rx_zero_applied(struct vmig_rx *rx, struct vmig_rx_terms *t,
			  const struct vmig_msg *m, uint8_t *span)
{
	rx->ram->zero(rx, m->pages.region, m->pages.first, span,
		      m->pages.count);
	rx_terms_update(rx, t, m->pages.region, m->pages.first,
			m->pages.count, true);
}

uint64_t vmig_rx_digest(struct vmig_rx *rx, uint64_t *hashed)
{
	vmig_session *s = rx->s;
	uint64_t total = 0;
	size_t r;

	*hashed = 0;
	if (rx->no_digest)
		return 0;
	for (r = 0; r < s->nr_regions; r++)
		total += s->regions[r].npages;
	if (!rx->term || rx->full_digest) {
		/* FULL_DIGEST: all of memory, as it is now. */
		*hashed = total;
		return vmig_digest_memory_until(
			s, s->engine ? &s->engine->cancel_requested : NULL);
	}
	if (rx->terms.pages != total) {
		/*
		 * Some pages never came: read them (in fresh memory they are
		 * zero, and their terms in the sum already).
		 */
		for (r = 0; r < s->nr_regions; r++) {
			const struct vmig_region_rec *reg = &s->regions[r];
			uint64_t p;

			for (p = 0; !reg->fresh && p < reg->npages; p++) {
				if (rx->termed[r][p / 64] & (1ull << (p % 64)))
					continue;
				rx_term_set(rx, &rx->terms, (uint32_t)r, p,
					    reg->hva + p * VMIG_PAGE_SIZE);
				(*hashed)++;
			}
		}
	}
	return vmig_digest_layout(s) + rx->terms.sum;
}

void vmig_rx_fini(struct vmig_rx *rx)
{
	size_t i;

	if (rx->devs && rx->devices)
		rx->devs->close(rx);
	rx_terms_free(rx);
	/* Whatever arrived, the memory is no longer known to be zero. */
	for (i = 0; rx->s && i < rx->s->nr_regions; i++)
		rx->s->regions[i].fresh = false;
	free(rx->scratch);
	free(rx->region_map);
	free(rx->devices);
	free(rx->states);
	rx->states = NULL;
	rx->scratch = NULL;
	rx->region_map = NULL;
	rx->devices = NULL;
}

/*
 * A failure: the devices leave RESUMING (reset), the VMM drops the state
 * it loaded; the guest never runs.
 */
static void rx_devices_abort(struct vmig_rx *rx)
{
	if (rx->devs && rx->devices)
		rx->devs->abort(rx);
	vmig_state_rx_abort(rx);
}

/* Ends the stream with a message naming the frame and the check. */
__attribute__((format(printf, 2, 3))) static int rx_bad(struct vmig_rx *rx,
							 const char *fmt, ...)
{
	const char *name = vmig_frame_name(rx->f.type);
	char msg[384];
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(msg, sizeof(msg), fmt, ap);
	va_end(ap);
	snprintf(rx->err, sizeof(rx->err), "frame %llu (%s): %s",
		 (unsigned long long)rx->frame_no, name ? name : "?", msg);
	rx->state = VMIG_RX_FAILED;
	return -EPROTO;
}

void vmig_rx_buf(struct vmig_rx *rx, void **buf, size_t *len)
{
	if (rx->state == VMIG_RX_FAILED || rx->state == VMIG_RX_DONE) {
		/* Whatever still arrives is read aside and ignored. */
		*buf = rx->scratch;
		*len = rx->scratch_len;
	} else if (!rx->in_payload) {
		*buf = rx->hdr + rx->hdr_have;
		*len = VMIG_FRAME_HDR - rx->hdr_have;
	} else {
		*buf = rx->dst + rx->have;
		*len = rx->want - rx->have;
	}
}

int vmig_rx_span(const struct vmig_rx *rx, const struct vmig_msg *m,
		 uint8_t **span, char *err, size_t errlen)
{
	const struct vmig_region_rec *r;

	if (m->pages.region >= rx->nr_regions) {
		snprintf(err, errlen, "no region %llu (the layout has %u)",
			 (unsigned long long)m->pages.region, rx->nr_regions);
		return -EPROTO;
	}
	r = &rx->s->regions[rx->region_map[m->pages.region]];
	if (m->pages.first >= r->npages ||
	    m->pages.count > r->npages - m->pages.first) {
		snprintf(err, errlen,
			 "page range %llu+%llu outside region %llu (%llu "
			 "pages)",
			 (unsigned long long)m->pages.first,
			 (unsigned long long)m->pages.count,
			 (unsigned long long)m->pages.region,
			 (unsigned long long)r->npages);
		return -EPROTO;
	}
	*span = rx->ram->span((struct vmig_rx *)rx, m->pages.region,
			      m->pages.first);
	return 0;
}

/* The region and page range of a PAGES or ZERO frame, checked. */
static int rx_check_pages(struct vmig_rx *rx, uint8_t **span)
{
	char why[256];

	if (rx->nr_chans)
		return rx_bad(rx, "pages travel on the %u data connection(s) "
			      "HELLO named, not on the main stream",
			      rx->nr_chans);
	if (vmig_rx_span(rx, &rx->m, span, why, sizeof(why)) < 0)
		return rx_bad(rx, "%s", why);
	return 0;
}

static int rx_check_device(struct vmig_rx *rx, struct vmig_rx_device **out)
{
	const struct vmig_msg *m = &rx->m;
	uint64_t i = m->type == VMIG_FRAME_DEVICE_END ? m->end.device
						   : m->state.device;

	if (i >= rx->nr_devices)
		return rx_bad(rx, "no device %llu (the layout has %u)",
			      (unsigned long long)i, rx->nr_devices);
	*out = &rx->devices[i];
	if ((*out)->ended)
		return rx_bad(rx, "device %llu (%s) has already ended",
			      (unsigned long long)i, (*out)->dev->name);
	return 0;
}

/* The state section of a VMM_STATE or VMM_STATE_END frame, checked. */
static int rx_check_state(struct vmig_rx *rx, uint64_t i,
			  struct vmig_rx_vmmstate **out)
{
	if (i >= rx->nr_states)
		return rx_bad(rx, "no state section %llu (the layout has %u)",
			      (unsigned long long)i, rx->nr_states);
	*out = &rx->states[i];
	if ((*out)->ended)
		return rx_bad(rx, "state section %llu (%s) has already ended",
			      (unsigned long long)i, (*out)->reg->name);
	return 0;
}

static int rx_frame_done(struct vmig_rx *rx, int event)
{
	rx->frame_no++;
	return event;
}

/* A header arrived: check it and decide where its payload goes. */
static int rx_header(struct vmig_rx *rx)
{
	struct vmig_frame *f = &rx->f;
	struct vmig_msg *m = &rx->m;
	struct vmig_rx_device *d = NULL;
	struct vmig_rx_vmmstate *st = NULL;
	uint8_t *span = NULL;
	uint32_t i;
	int ret;

	ret = vmig_frame_check_head(rx->hdr, rx->frame_no, f, rx->err,
				    sizeof(rx->err));
	if (ret < 0) {
		rx->state = VMIG_RX_FAILED;
		return ret;
	}
	if (!(allowed[rx->state] & BIT(f->type)))
		return rx_bad(rx, "not allowed in state \"%s\"",
			      vmig_rx_state_name(rx->state));
	ret = vmig_frame_check_body(f, rx->frame_no, rx->err, sizeof(rx->err));
	if (ret < 0) {
		rx->state = VMIG_RX_FAILED;
		return ret;
	}
	vmig_frame_decode(f, m);

	switch (m->type) {
	case VMIG_FRAME_HELLO:
	case VMIG_FRAME_ERROR:
		break;
	case VMIG_FRAME_PAGES:
		ret = rx_check_pages(rx, &span);
		if (ret < 0)
			return ret;
		/*
		 * After SWITCHOVER memory is still and every page is proven:
		 * a page whose CRC fails must not be applied, so a checked
		 * page goes through the scratch buffer.
		 */
		if (rx->state == VMIG_RX_FINAL &&
		    !m->crc)
			return rx_bad(rx, "DATA_CRC missing after "
					  "SWITCHOVER");
		if (!m->crc) {
			rx->dst = span;
			rx->to_scratch = false;
			goto payload;
		}
		break;
	case VMIG_FRAME_ZERO:
		ret = rx_check_pages(rx, &span);
		if (ret < 0)
			return ret;
		vmig_rx_zero_applied(rx, &rx->terms, m, span);
		rx->pages += m->pages.count;
		rx->zero_pages += m->pages.count;
		rx->last_page_us = vmig_now_us();
		return rx_frame_done(rx, VMIG_RX_MORE);
	case VMIG_FRAME_DEVICE_STATE:
		ret = rx_check_device(rx, &d);
		if (ret < 0)
			return ret;
		if (rx->state == VMIG_RX_RECEIVING &&
		    m->state.phase != VMIG_DS_PRECOPY)
			return rx_bad(rx, "phase %llu before SWITCHOVER",
				      (unsigned long long)m->state.phase);
		if (rx->state == VMIG_RX_FINAL &&
		    m->state.phase != VMIG_DS_STOPCOPY)
			return rx_bad(rx, "phase %llu after SWITCHOVER",
				      (unsigned long long)m->state.phase);
		if (m->state.offset != d->offset)
			return rx_bad(rx, "offset %llu, expected %llu",
				      (unsigned long long)m->state.offset,
				      (unsigned long long)d->offset);
		break;
	case VMIG_FRAME_DEVICE_END:
		ret = rx_check_device(rx, &d);
		if (ret < 0)
			return ret;
		if (m->end.total != d->offset)
			return rx_bad(rx, "total %llu bytes, %llu received",
				      (unsigned long long)m->end.total,
				      (unsigned long long)d->offset);
		d->ended = true;
		return rx_frame_done(rx, VMIG_RX_MORE);
	case VMIG_FRAME_VMM_STATE:
		ret = rx_check_state(rx, m->vmm.section, &st);
		if (ret < 0)
			return ret;
		if (m->vmm.phase !=
		    (rx->state == VMIG_RX_RECEIVING ? VMIG_DS_PRECOPY
						    : VMIG_DS_STOPCOPY))
			return rx_bad(rx, "phase %llu %s SWITCHOVER",
				      (unsigned long long)m->vmm.phase,
				      rx->state == VMIG_RX_RECEIVING ? "before"
								     : "after");
		if (m->vmm.offset != st->offset)
			return rx_bad(rx, "offset %llu, expected %llu",
				      (unsigned long long)m->vmm.offset,
				      (unsigned long long)st->offset);
		break;
	case VMIG_FRAME_VMM_STATE_END:
		ret = rx_check_state(rx, m->vmm_end.section, &st);
		if (ret < 0)
			return ret;
		if (m->vmm_end.total != st->offset)
			return rx_bad(rx, "total %llu bytes, %llu received",
				      (unsigned long long)m->vmm_end.total,
				      (unsigned long long)st->offset);
		st->ended = true;
		return rx_frame_done(rx, VMIG_RX_MORE);
	case VMIG_FRAME_ITERATION:
		if (m->iteration.number != rx->next_iteration)
			return rx_bad(rx, "iteration %llu, expected %llu",
				      (unsigned long long)m->iteration.number,
				      (unsigned long long)rx->next_iteration);
		rx->next_iteration++;
		return rx_frame_done(rx, VMIG_RX_MORE);
	case VMIG_FRAME_SWITCHOVER:
		rx->state = VMIG_RX_FINAL;
		return rx_frame_done(rx, VMIG_RX_MORE);
	case VMIG_FRAME_COMPLETE:
		/* With data connections, checked once they all ended. */
		if (!rx->nr_chans && m->complete.pages != rx->pages)
			return rx_bad(rx, "the source sent %llu pages, %llu "
					  "arrived",
				      (unsigned long long)m->complete.pages,
				      (unsigned long long)rx->pages);
		if (m->complete.frames != rx->frame_no)
			return rx_bad(rx, "the source sent %llu frames before "
					  "it, %llu arrived",
				      (unsigned long long)m->complete.frames,
				      (unsigned long long)rx->frame_no);
		for (i = 0; i < rx->nr_devices; i++) {
			if (!rx->devices[i].ended)
				return rx_bad(rx, "device %u (%s) has not "
						  "ended",
					      i, rx->devices[i].dev->name);
		}
		for (i = 0; i < rx->nr_states; i++) {
			if (!rx->states[i].ended)
				return rx_bad(rx, "state section %u (%s) has "
						  "not ended",
					      i, rx->states[i].reg->name);
		}
		rx->state = VMIG_RX_ACKED;
		return rx_frame_done(rx, VMIG_RX_COMPLETE);
	case VMIG_FRAME_COMMIT:
		rx->state = VMIG_RX_DONE;
		return rx_frame_done(rx, VMIG_RX_COMMIT);
	}

	if (!m->length) {
		if (m->type == VMIG_FRAME_ERROR) {
			rx->peer_code = m->error.code;
			rx->peer_msg[0] = '\0';
			rx->state = VMIG_RX_FAILED;
			return rx_frame_done(rx, VMIG_RX_PEER_ERROR);
		}
		/* Every other type with a payload requires length > 0. */
		return rx_bad(rx, "empty payload");
	}
	/*
	 * The length checks bound every payload by its type's limit, and
	 * every limit fits the scratch; checked again here, because a
	 * limit raised one day must never turn into an overflow.
	 */
	if (m->length > rx->scratch_len)
		return rx_bad(rx, "payload larger than the receive buffer");
	rx->dst = rx->scratch;
	rx->to_scratch = true;
payload:
	rx->want = (size_t)rx->m.length;
	rx->have = 0;
	rx->in_payload = true;
	return VMIG_RX_MORE;
}


static int rx_hello(struct vmig_rx *rx)
{
	const struct vmig_msg *m = &rx->m;
	vmig_session *s = rx->s;
	const uint8_t *p = rx->scratch;
	struct vmig_hello_counts counts;
	char name[4 * VMIG_HELLO_DEVICE + 1], msg[256];
	uint32_t i, j;
	bool *used;
	int ret;

	if (m->hello.nr_regions != s->nr_regions)
		return rx_bad(rx, "the source has %llu region(s), this "
				  "destination %zu",
			      (unsigned long long)m->hello.nr_regions,
			      s->nr_regions);
	if (m->hello.nr_sections > VMIG_STATE_SECTIONS_MAX)
		return rx_bad(rx, "%llu state sections, at most %u",
			      (unsigned long long)m->hello.nr_sections,
			      VMIG_STATE_SECTIONS_MAX);
	rx->nr_regions = (uint32_t)m->hello.nr_regions;
	rx->nr_devices = (uint32_t)m->hello.nr_devices;
	counts.regions = rx->nr_regions;
	counts.devices = rx->nr_devices;
	counts.sections = (uint32_t)m->hello.nr_sections;
	rx->region_map = calloc(rx->nr_regions ? rx->nr_regions : 1,
				sizeof(*rx->region_map));
	rx->devices = calloc(rx->nr_devices ? rx->nr_devices : 1,
			     sizeof(*rx->devices));
	used = calloc(s->nr_regions + s->nr_devices + 1, sizeof(*used));
	if (!rx->region_map || !rx->devices || !used) {
		free(used);
		snprintf(rx->err, sizeof(rx->err), "out of memory");
		rx->state = VMIG_RX_FAILED;
		return -ENOMEM;
	}
	for (i = 0; i < rx->nr_regions; i++) {
		struct vmig_hello_region hr;
		uint64_t gpa, size;

		vmig_hello_get_region(p, i, &hr);
		gpa = hr.gpa;
		size = hr.size;
		vmig_proto_text(name, sizeof(name), hr.name, hr.name_len);
		if (!size || size % VMIG_PAGE_SIZE) {
			free(used);
			return rx_bad(rx, "region %u: size 0x%llx is not a "
					  "positive multiple of 4096",
				      i, (unsigned long long)size);
		}
		for (j = 0; j < s->nr_regions; j++) {
			if (s->regions[j].gpa == gpa &&
			    s->regions[j].length == size)
				break;
		}
		if (j == s->nr_regions) {
			free(used);
			return rx_bad(rx, "region %u (\"%s\", gpa 0x%llx, "
					  "size 0x%llx) has no match here",
				      i, name, (unsigned long long)gpa,
				      (unsigned long long)size);
		}
		if (used[j]) {
			free(used);
			return rx_bad(rx, "region %u (gpa 0x%llx) is named "
					  "twice",
				      i, (unsigned long long)gpa);
		}
		used[j] = true;
		rx->region_map[i] = j;
	}
	memset(used, 0, (s->nr_regions + s->nr_devices + 1) * sizeof(*used));
	for (i = 0; i < rx->nr_devices; i++) {
		const uint8_t *dn;
		size_t n;

		vmig_hello_get_device(p, rx->nr_regions, i, &dn, &n);
		vmig_proto_text(name, sizeof(name), dn, n);
		for (j = 0; j < s->nr_devices; j++) {
			const struct vmig_device_rec *dev = s->devices[j];

			if (dev->present && n && strlen(dev->name) == n &&
			    !memcmp(dev->name, dn, n))
				break;
		}
		if (j == s->nr_devices) {
			free(used);
			return rx_bad(rx, "device %u (\"%s\") is not here", i,
				      name);
		}
		if (used[j]) {
			free(used);
			return rx_bad(rx, "device %u (\"%s\") is named twice",
				      i, name);
		}
		used[j] = true;
		rx->devices[i].dev = s->devices[j];
		msg[0] = '\0';
		ret = rx->devs ? rx->devs->open(rx, &rx->devices[i], msg,
						sizeof(msg))
			       : -ENOTTY;
		if (ret < 0) {
			free(used);
			return rx_bad(rx, "device %u (\"%s\") cannot resume a "
					  "state here: %s",
				      i, name,
				      msg[0] ? msg : "no VFIO migration");
		}
	}
	free(used);
	msg[0] = '\0';
	ret = vmig_state_rx_hello(rx, p, &counts, msg, sizeof(msg));
	if (ret < 0) {
		if (ret == -EPROTO)
			return rx_bad(rx, "%s", msg);
		snprintf(rx->err, sizeof(rx->err), "%s", msg);
		rx->state = VMIG_RX_FAILED;
		return ret;
	}
	if (rx->nr_devices && rx->devs) {
		msg[0] = '\0';
		ret = rx->devs->start(rx, msg, sizeof(msg));
		if (ret < 0)
			return rx_bad(rx, "devices to RESUMING: %s", msg);
	}
	rx->full_digest = m->hello.flags & VMIG_HELLO_FULL_DIGEST;
	rx->no_digest = m->hello.flags & VMIG_HELLO_NO_DIGEST;
	rx->nr_chans = m->hello.connections;
	if (rx_terms_alloc(rx) < 0) {
		snprintf(rx->err, sizeof(rx->err), "out of memory");
		rx->state = VMIG_RX_FAILED;
		return -ENOMEM;
	}
	rx->state = VMIG_RX_RECEIVING;
	return VMIG_RX_HELLO;
}

/* A payload arrived in full: check its CRC, then apply it. */
static int rx_payload(struct vmig_rx *rx)
{
	const struct vmig_msg *m = &rx->m;
	struct vmig_rx_device *d = NULL;
	uint8_t *span;
	char msg[256];
	int ret;

	rx->in_payload = false;
	if (m->crc) {
		uint32_t crc = vmig_crc32c(0, rx->dst, rx->want);

		if (crc != m->data_crc)
			return rx_bad(rx, "data CRC 0x%08x, computed 0x%08x",
				      m->data_crc, crc);
	}
	switch (m->type) {
	case VMIG_FRAME_HELLO:
		ret = rx_hello(rx);
		if (ret < 0)
			return ret;
		return rx_frame_done(rx, ret);
	case VMIG_FRAME_PAGES:
		if (rx->to_scratch) {
			/* Checked before; the layout cannot have changed. */
			rx_check_pages(rx, &span);
			memcpy(span, rx->scratch, rx->want);
		}
		vmig_rx_pages_applied(rx, &rx->terms, m);
		rx->pages += m->pages.count;
		rx->last_page_us = vmig_now_us();
		return rx_frame_done(rx, VMIG_RX_MORE);
	case VMIG_FRAME_DEVICE_STATE:
		d = &rx->devices[m->state.device];
		if (!rx->devs)
			return rx_bad(rx, "device %llu (%s): no device can "
					  "take state here",
				      (unsigned long long)m->state.device,
				      d->dev->name);
		msg[0] = '\0';
		ret = rx->devs->write(rx, d, rx->scratch, rx->want, msg,
				      sizeof(msg));
		if (ret < 0) {
			rx_bad(rx, "device %llu (%s): %s",
			       (unsigned long long)m->state.device,
			       d->dev->name, msg);
			return ret;
		}
		d->offset += rx->want;
		rx->device_bytes += rx->want;
		return rx_frame_done(rx, VMIG_RX_MORE);
	case VMIG_FRAME_VMM_STATE:
		msg[0] = '\0';
		ret = vmig_state_rx_record(rx, (uint32_t)m->vmm.section,
					   rx->scratch, rx->want, msg,
					   sizeof(msg));
		if (ret < 0) {
			rx_bad(rx, "state section %llu (%s): %s",
			       (unsigned long long)m->vmm.section,
			       rx->states[m->vmm.section].reg->name, msg);
			return ret;
		}
		return rx_frame_done(rx, VMIG_RX_MORE);
	case VMIG_FRAME_ERROR:
		rx->peer_code = m->error.code;
		vmig_proto_text(rx->peer_msg, sizeof(rx->peer_msg), rx->scratch,
				rx->want);
		rx->state = VMIG_RX_FAILED;
		return rx_frame_done(rx, VMIG_RX_PEER_ERROR);
	}
	return rx_bad(rx, "unexpected payload");
}

int vmig_rx_feed(struct vmig_rx *rx, size_t n)
{
	if (rx->state == VMIG_RX_FAILED)
		return -EPROTO;
	if (rx->state == VMIG_RX_DONE) {
		snprintf(rx->err, sizeof(rx->err),
			 "frame %llu: data after COMMIT",
			 (unsigned long long)rx->frame_no);
		rx->state = VMIG_RX_FAILED;
		return -EPROTO;
	}
	if (!rx->bytes)
		rx->first_us = vmig_now_us();
	rx->bytes += n;
	if (!rx->in_payload) {
		rx->hdr_have += n;
		if (rx->hdr_have < VMIG_FRAME_HDR)
			return VMIG_RX_MORE;
		rx->hdr_have = 0;
		return rx_header(rx);
	}
	rx->have += n;
	if (rx->have < rx->want)
		return VMIG_RX_MORE;
	return rx_payload(rx);
}

/* ------------------------------------------------------------------ */
/* The destination on a connection                                     */

struct ctl_write {
	struct vmig_dst *d;
	bool last;    /* close the connection once written */
	uint8_t hdr[VMIG_FRAME_HDR];
	uint8_t payload[];
};

struct vmig_dst {
	vmig_session *s;
	struct vmig_engine *e;
	uv_loop_t *loop;
	struct vmig_conn *conn;
	struct vmig_rx rx;
	uv_async_t cancel;
	uv_timer_t linger; /* bounds the wait for a last frame to go */
	bool linger_closed;
	struct vmig_watch watch; /* the bounded waits for the source */
	bool cancelled;          /* by vmig_cancel: the listener goes too */
	bool switchover_armed;
	bool finished;
	bool listened;           /* vmig_receive: connections are accepted */
	int result;
	/* The data connections HELLO named (channels.c). */
	struct vmig_dchans *chans;
	bool chan_accepting;     /* waiting on the listener for one */
	bool complete_pending;   /* COMPLETE read: waiting for them to end */
	bool acked;              /* ACK was queued: COMMIT may come */
	uint64_t complete_pages; /* the pages COMPLETE says were sent */
	uint64_t start_us;
	char errmsg[1024];
};

static void dst_close_conn(struct vmig_dst *d)
{
	if (d->conn) {
		vmig_conn_close(d->conn);
		d->conn = NULL;
	}
	if (!d->linger_closed) {
		d->linger_closed = true;
		uv_close((uv_handle_t *)&d->linger, NULL);
	}
}

static void dst_ctl_written(void *opaque, int status)
{
	struct ctl_write *w = opaque;
	struct vmig_dst *d = w->d;

	(void)status;
	if (w->last)
		dst_close_conn(d);
	free(w);
}

/*
 * Sends a small frame whose header hdr was encoded over payload (len
 * bytes, copied); `last` closes the connection after it.
 */
static int dst_send(struct vmig_dst *d, const uint8_t hdr[VMIG_FRAME_HDR],
		    const void *payload, size_t len, bool last)
{
	struct ctl_write *w;
	struct vmig_iov bufs[2];
	int ret;

	if (!d->conn)
		return -ENOTCONN;
	w = malloc(sizeof(*w) + len);
	if (!w)
		return -ENOMEM;
	w->d = d;
	w->last = last;
	if (len)
		memcpy(w->payload, payload, len);
	memcpy(w->hdr, hdr, VMIG_FRAME_HDR);
	bufs[0] = (struct vmig_iov){ w->hdr, VMIG_FRAME_HDR };
	bufs[1] = (struct vmig_iov){ w->payload, len };
	ret = vmig_conn_write(d->conn, bufs, len ? 2 : 1, dst_ctl_written, w);
	if (ret < 0)
		free(w);
	return ret;
}

static void dst_linger_expired(uv_timer_t *t)
{
	dst_close_conn(t->data);
}

/*
 * Ends the destination's part with result err (0: the guest started).
 * With error_frame, the source is told why with an ERROR frame first: the
 * connection closes once it is written, or after two seconds at most.
 */
__attribute__((format(printf, 4, 5))) static void
dst_finish(struct vmig_dst *d, int err, bool error_frame, const char *fmt,
	   ...)
{
	uint8_t hdr[VMIG_FRAME_HDR];
	va_list ap;
	size_t len;

	if (d->finished)
		return;
	d->finished = true;
	d->result = err;
	if (fmt) {
		va_start(ap, fmt);
		vsnprintf(d->errmsg, sizeof(d->errmsg), fmt, ap);
		va_end(ap);
	}
	/* Their threads stop before anything they write to is released. */
	vmig_dchans_close(d->chans);
	d->chans = NULL;
	if (err)
		rx_devices_abort(&d->rx);
	vmig_engine_end(d->e);
	uv_close((uv_handle_t *)&d->cancel, NULL);
	vmig_watch_close(&d->watch);
	/*
	 * A destination that did not start the guest may take the next
	 * source (vmig_receive again): its listener stays. One that runs
	 * the guest is done, and so is one its VMM cancelled.
	 */
	if ((!err || d->cancelled) && d->e->listener) {
		vmig_listener_close(d->e->listener);
		d->e->listener = NULL;
	} else if (d->e->listener && (!d->conn || d->chan_accepting)) {
		vmig_listener_accept(d->e->listener, NULL, NULL, NULL, NULL);
	}
	d->chan_accepting = false;
	if (d->conn)
		vmig_conn_read_stop(d->conn);
	len = strnlen(d->errmsg, VMIG_ERROR_MAX);
	vmig_enc_error(hdr, err, len ? d->errmsg : NULL, len);
	if (error_frame && d->conn &&
	    dst_send(d, hdr, d->errmsg, len, true) == 0) {
		uv_timer_start(&d->linger, dst_linger_expired, 2000, 0);
		return;
	}
	/*
	 * The guest runs here: say so. Whether or not STARTED arrives,
	 * this side owns the guest (a source without it stays paused and
	 * its VMM resolves); so its failure is only logged.
	 */
	if (!err && d->e->st.guest_started) {
		int ret;

		vmig_enc_started(hdr);
		ret = d->conn ? dst_send(d, hdr, NULL, 0, true) : -ENOTCONN;

		if (ret == 0) {
			uv_timer_start(&d->linger, dst_linger_expired, 2000,
				       0);
			return;
		}
		vmig_logf(d->s, VMIG_LOG_WARN,
			  "destination: the guest runs, but STARTED could not "
			  "be sent (%s): the source's VMM must resolve",
			  vmig_strerror(ret));
	}
	dst_close_conn(d);
}

/*
 * Where the stream was when it broke, for messages: the main stream's
 * frame, and the data connections that never came.
 */
static void dst_position(const struct vmig_dst *d, char *buf, size_t len)
{
	const struct vmig_rx *rx = &d->rx;
	const char *name = vmig_frame_name(rx->f.type);
	uint32_t added = d->chans ? vmig_dchans_claimed(d->chans) : 0;
	int n;

	if (d->chans && added < rx->nr_chans) {
		n = snprintf(buf, len, "%u of %u data connection(s) opened, ",
			     added, rx->nr_chans);
		if (n < 0 || (size_t)n >= len)
			return;
		buf += n;
		len -= (size_t)n;
	}
	if (rx->in_payload)
		snprintf(buf, len, "frame %llu (%s, %zu of %zu payload bytes)",
			 (unsigned long long)rx->frame_no, name ? name : "?",
			 rx->have, rx->want);
	else if (rx->hdr_have)
		snprintf(buf, len, "frame %llu (%zu of %u header bytes)",
			 (unsigned long long)rx->frame_no, rx->hdr_have,
			 VMIG_FRAME_HDR);
	else
		snprintf(buf, len, "frame %llu (before its header)",
			 (unsigned long long)rx->frame_no);
}

/*
 * COMPLETE, and every data connection's: the devices and the VMM load
 * their state, then ACK with the digest.
 */
static void dst_complete(struct vmig_dst *d)
{
	vmig_session *s = d->s;
	struct vmig_engine *e = d->e;
	uint8_t hdr[VMIG_FRAME_HDR];
	char msg[512];
	uint64_t t0, hashed;
	int ret;

	vmig_watch_disarm(&d->watch, VMIG_WAIT_IDLE);
	if (d->rx.nr_chans && d->complete_pages != d->rx.pages) {
		dst_finish(d, VMIG_EPROTO, true,
			   "frame %llu (COMPLETE): the source sent %llu pages, "
			   "%llu arrived over its %u data connection(s)",
			   (unsigned long long)d->rx.frame_no - 1,
			   (unsigned long long)d->complete_pages,
			   (unsigned long long)d->rx.pages, d->rx.nr_chans);
		return;
	}
	msg[0] = '\0';
	ret = d->rx.devs->load(&d->rx, msg, sizeof(msg));
	if (ret < 0) {
		dst_finish(d, ret, true, "loading the device state: %s",
			   msg);
		return;
	}
	ret = vmig_state_rx_done(&d->rx, msg, sizeof(msg));
	if (ret < 0) {
		dst_finish(d, ret, true, "loading the VMM state: %s",
			   msg);
		return;
	}
	t0 = vmig_now_us();
	e->st.digest = vmig_rx_digest(&d->rx, &hashed);
	/* Cancelled while hashing: the cancel, not an ACK, is next. */
	if (__atomic_load_n(&e->cancel_requested, __ATOMIC_ACQUIRE))
		return;
	e->st.digest_us = vmig_now_us() - t0;
	e->st.digest_known = !d->rx.no_digest;
	if (d->rx.no_digest)
		vmig_logf(s, VMIG_LOG_INFO,
			  "destination: all received (%llu pages); no "
			  "digest (the source's verify is off)",
			  (unsigned long long)d->rx.pages);
	else
		vmig_logf(s, VMIG_LOG_INFO,
			  "destination: all received (%llu pages); digest "
			  "0x%016llx (kept as pages arrived; %llu page(s) "
			  "hashed now)",
			  (unsigned long long)d->rx.pages,
			  (unsigned long long)e->st.digest,
			  (unsigned long long)hashed);
	vmig_enc_ack(hdr, e->st.digest, d->rx.pages,
		     d->rx.state_check);
	d->acked = true;
	ret = dst_send(d, hdr, NULL, 0, false);
	if (ret < 0)
		dst_finish(d, ret, false, "cannot answer ACK: %s",
			   vmig_strerror(ret));
}

static const struct vmig_conn_ops dst_chan_conn_ops;

static void dst_chan_accept(struct vmig_dst *d);

/*
 * On the listener: waits for one more connection while a data connection
 * is missing and no connection already waits for a slot (channels.c);
 * ends the wait once all of them came (a source that connects then waits
 * for the next vmig_receive).
 */
static void dst_chan_accept_more(struct vmig_dst *d)
{
	bool want;

	if (!d->listened || !d->chans || d->finished)
		return;
	want = vmig_dchans_want(d->chans);
	if (want && !d->chan_accepting) {
		dst_chan_accept(d);
	} else if (!want && d->chan_accepting) {
		/* Until a slot frees for the one waiting, or for good. */
		d->chan_accepting = false;
		vmig_listener_accept(d->e->listener, NULL, NULL, NULL, NULL);
	}
}

/*
 * A data connection moved, ended or failed (channels.c, from its
 * thread): the source is not idle; a failure ends the migration; the
 * last one's COMPLETE lets the main stream's go on.
 */
static void dst_chans_event(void *opaque)
{
	struct vmig_dst *d = opaque;
	uint32_t dropped = 0;
	char msg[768];
	int ret;

	if (d->finished || !d->chans)
		return;
	vmig_watch_touch(&d->watch);
	ret = vmig_dchans_poll(d->chans, &dropped, msg, sizeof(msg));
	if (ret < 0) {
		dst_finish(d, ret, true, "%s", msg);
		return;
	}
	if (dropped)
		vmig_logf(d->s, VMIG_LOG_WARN,
			  "destination: %s; closed (not a data connection of "
			  "this migration)", msg);
	/* Slots freed, or all came: accept again, or no more. */
	dst_chan_accept_more(d);
	if (ret == 1 && d->complete_pending) {
		d->complete_pending = false;
		dst_complete(d);
	}
}

/* A data connection was accepted: its socket goes to a thread. */
static void dst_chan_accepted(void *opaque, struct vmig_conn *c, int err)
{
	struct vmig_dst *d = opaque;
	char peer[160];
	int fd;

	d->chan_accepting = false;
	if (d->finished) {
		if (c)
			vmig_conn_close(c);
		return;
	}
	if (err < 0) {
		dst_finish(d, err, true, "accepting a data connection: %s",
			   vmig_strerror(err));
		return;
	}
	snprintf(peer, sizeof(peer), "%s", vmig_conn_peer(c));
	fd = vmig_conn_fd(c);
	/* Nothing was read from it: the stream is the thread's, whole. */
	if (fd >= 0) {
		fd = fcntl(fd, F_DUPFD_CLOEXEC, 0);
		err = fd < 0 ? -errno : 0;
	} else {
		err = fd;
	}
	vmig_conn_close(c);
	if (err == 0)
		err = vmig_dchans_add(d->chans, fd, peer);
	if (err == -EBUSY) {
		vmig_logf(d->s, VMIG_LOG_WARN,
			  "destination: a connection from %s: no data "
			  "connection slot free; closed", peer);
		err = 0;
	}
	if (err < 0) {
		dst_finish(d, err, true, "data connection from %s: %s", peer,
			   vmig_strerror(err));
		return;
	}
	dst_chan_accept_more(d);
}

static void dst_chan_accept(struct vmig_dst *d)
{
	int ret;

	d->chan_accepting = true;
	ret = vmig_listener_accept(d->e->listener, &dst_chan_conn_ops, d,
				   dst_chan_accepted, d);
	if (ret < 0) {
		d->chan_accepting = false;
		dst_finish(d, ret, true, "accepting data connections: %s",
			   vmig_strerror(ret));
	}
}

/*
 * HELLO named data connections: their token, their threads' set, and
 * the wait for them on the listener (vmig_receive) or from the local
 * source (vmig_dst_add_channel). token is 0 without any.
 */
static int dst_chans_open(struct vmig_dst *d, uint64_t token[2])
{
	int ret;

	token[0] = token[1] = 0;
	if (!d->rx.nr_chans)
		return 0;
	if (vmig_conn_fd(d->conn) < 0) {
		dst_finish(d, VMIG_EPROTO, true,
			   "HELLO names %u data connection(s), and this "
			   "destination's transport (%s) carries one stream",
			   d->rx.nr_chans, vmig_conn_peer(d->conn));
		return -EPROTO;
	}
	if (getrandom(token, 2 * sizeof(token[0]), 0) !=
	    (ssize_t)(2 * sizeof(token[0]))) {
		ret = -errno;
		dst_finish(d, ret, true, "data connections: no random token: "
			   "%s", vmig_strerror(ret));
		return ret;
	}
	ret = vmig_dchans_new(&d->chans, d->loop, &d->rx, d->rx.nr_chans,
			      token, d->e->pol.handshake_timeout_ms,
			      dst_chans_event, d);
	if (ret < 0) {
		dst_finish(d, ret, true, "data connections: %s",
			   vmig_strerror(ret));
		return ret;
	}
	vmig_logf(d->s, VMIG_LOG_INFO,
		  "destination: the pages come over %u data connection(s)",
		  d->rx.nr_chans);
	dst_chan_accept_more(d);
	return d->finished ? -EPROTO : 0;
}

void vmig_dst_add_channel(struct vmig_dst *d, int fd)
{
	int ret;

	if (d->finished || !d->chans) {
		close(fd);
		return;
	}
	ret = vmig_dchans_add(d->chans, fd, "socketpair");
	if (ret < 0)
		dst_finish(d, ret, true, "data connection: %s",
			   vmig_strerror(ret));
}

static const struct vmig_conn_ops dst_conn_ops;
static void dst_accepted(void *opaque, struct vmig_conn *c, int err);

/*
 * vmig_receive, before HELLO: the connection is not a source's but a data
 * connection of an earlier migration that waited in the backlog (CHANNEL
 * first). It is closed and logged, and the wait goes on for a source, its
 * bounds from the next one's connection. False when that does not apply.
 */
static bool dst_not_a_source(struct vmig_dst *d, const char *why)
{
	struct vmig_rx *rx = &d->rx;
	const struct vmig_section_loader *devs = rx->devs;

	if (!d->listened || !d->conn || rx->frame_no > 0 || rx->nr_regions)
		return false;
	vmig_logf(d->s, VMIG_LOG_WARN,
		  "destination: %s %s; closed, waiting for a source",
		  vmig_conn_peer(d->conn), why);
	vmig_conn_close(d->conn);
	d->conn = NULL;
	/* Nothing was allocated or written before HELLO: start over. */
	rx_start(rx, d->s, rx->scratch);
	rx->devs = devs;
	vmig_watch_disarm(&d->watch, VMIG_WAIT_HANDSHAKE);
	vmig_watch_disarm(&d->watch, VMIG_WAIT_TOTAL);
	vmig_listener_accept(d->e->listener, &dst_conn_ops, d, dst_accepted,
			     d);
	return true;
}

static void dst_event(struct vmig_dst *d, int ev)
{
	vmig_session *s = d->s;
	struct vmig_engine *e = d->e;
	uint8_t hdr[VMIG_FRAME_HDR];
	uint64_t token[2];
	char msg[512];
	int ret;

	switch (ev) {
	case VMIG_RX_MORE:
		return;
	case VMIG_RX_HELLO:
		vmig_watch_disarm(&d->watch, VMIG_WAIT_HANDSHAKE);
		vmig_watch_arm(&d->watch, VMIG_WAIT_IDLE, e->pol.idle_timeout_ms);
		vmig_logf(s, VMIG_LOG_INFO,
			  "destination: %s: layout accepted (%u region(s), %u "
			  "device(s), %u VMM state section(s))",
			  vmig_conn_peer(d->conn), d->rx.nr_regions,
			  d->rx.nr_devices, d->rx.nr_states);
		if (dst_chans_open(d, token) < 0)
			return;
		vmig_enc_welcome(hdr, token);
		ret = dst_send(d, hdr, NULL, 0, false);
		if (ret < 0)
			dst_finish(d, ret, false, "cannot answer WELCOME: %s",
				   vmig_strerror(ret));
		return;
	case VMIG_RX_COMPLETE:
		d->complete_pages = d->rx.m.complete.pages;
		if (d->chans) {
			/* The data connections' own COMPLETE first. */
			d->complete_pending = true;
			dst_chans_event(d);
			return;
		}
		dst_complete(d);
		return;
	case VMIG_RX_COMMIT:
		/*
		 * Only an answer to this destination's ACK: with data
		 * connections, COMPLETE waits for theirs, and a COMMIT sent
		 * before the ACK would start a guest whose memory is not all
		 * here, nor checked.
		 */
		if (!d->acked) {
			dst_finish(d, VMIG_EPROTO, true,
				   "frame %llu (COMMIT): before this "
				   "destination's ACK (its data connections "
				   "had not all ended)",
				   (unsigned long long)d->rx.frame_no - 1);
			return;
		}
		e->st.committed = true;
		msg[0] = '\0';
		/*
		 * A start that fails is told to the source (ERROR): this side
		 * will not run the guest, so the source resumes it.
		 */
		ret = d->rx.devs->run(&d->rx, msg, sizeof(msg));
		if (ret < 0) {
			dst_finish(d, ret, true, "the source committed, but "
				   "the devices cannot run: %s", msg);
			return;
		}
		if (e->have_vmm && e->vmm.start) {
			ret = e->vmm.start(e->vmm_opaque);
			if (ret < 0) {
				dst_finish(d, ret, true, "the source "
					   "committed, but the VMM's start "
					   "failed: %s", vmig_strerror(ret));
				return;
			}
		}
		e->st.guest_started = true;
		vmig_logf(s, VMIG_LOG_INFO, "destination: the guest started; "
			  "confirming (STARTED)");
		dst_finish(d, 0, false, NULL);
		return;
	case VMIG_RX_PEER_ERROR:
		/* A source that gave up by choice (or policy) cancelled. */
		e->st.cancelled = d->rx.peer_code == -ECANCELED ||
				  d->rx.peer_code == -ETIMEDOUT;
		dst_finish(d, d->rx.peer_code, false,
			   "the source ended the migration: %s%s(%s)",
			   d->rx.peer_msg, d->rx.peer_msg[0] ? " " : "",
			   vmig_strerror(d->rx.peer_code));
		return;
	}
	/* A check failed: the source hears which. */
	if (ev == -EPROTO && d->rx.f.type == VMIG_FRAME_CHANNEL &&
	    dst_not_a_source(d, "sent CHANNEL first (a data connection of no "
			     "migration here)"))
		return;
	if (ev == -EPROTO)
		dst_finish(d, VMIG_EPROTO, true, "%s", d->rx.err);
	else
		dst_finish(d, ev, true, "%s", d->rx.err);
}

static void dst_read_buf(void *opaque, void **buf, size_t *len)
{
	struct vmig_dst *d = opaque;

	vmig_rx_buf(&d->rx, buf, len);
}

static void dst_read_done(void *opaque, size_t n)
{
	struct vmig_dst *d = opaque;
	int ev;

	if (d->finished)
		return;
	vmig_watch_touch(&d->watch);
	ev = vmig_rx_feed(&d->rx, n);
	/* From SWITCHOVER on, the source's guest is stopped: bounded. */
	if (d->rx.state == VMIG_RX_FINAL && !d->switchover_armed) {
		d->switchover_armed = true;
		vmig_watch_arm(&d->watch, VMIG_WAIT_SWITCHOVER,
			       d->e->pol.switchover_timeout_ms);
	}
	dst_event(d, ev);
}

static void dst_read_end(void *opaque, int err)
{
	struct vmig_dst *d = opaque;
	char where[160];

	if (d->finished)
		return;
	dst_position(d, where, sizeof(where));
	if (d->rx.state == VMIG_RX_ACKED) {
		dst_finish(d, err ? err : -ECONNRESET, false,
			   "connection lost at %s, after %s and before "
			   "COMMIT: %s; the guest was not started here and "
			   "will not be (the source resumes it, or, if it "
			   "wrote COMMIT, its VMM resolves)",
			   where, d->acked ? "ACK" : "COMPLETE",
			   err ? vmig_strerror(err) : "the source closed it");
		return;
	}
	/* A transport that refused the peer says why (TLS). */
	if (d->conn && vmig_conn_errmsg(d->conn)[0]) {
		dst_finish(d, err ? err : -ECONNRESET, false,
			   "%s; nothing was received, the guest was not "
			   "started here", vmig_conn_errmsg(d->conn));
		return;
	}
	dst_finish(d, err ? err : -ECONNRESET, false,
		   "connection lost at %s: %s", where,
		   err ? vmig_strerror(err) : "the source closed it");
}

/* A bounded wait for the source passed: this source is dropped. */
static void dst_wait_expired(void *opaque, enum vmig_wait which)
{
	struct vmig_dst *d = opaque;
	const struct vmig_policies *pol = &d->e->pol;
	const char *peer = d->conn ? vmig_conn_peer(d->conn) : "the source";
	const char *st = vmig_rx_state_name(d->rx.state);
	char where[160];

	dst_position(d, where, sizeof(where));
	switch (which) {
	case VMIG_WAIT_HANDSHAKE:
		dst_finish(d, -ETIMEDOUT, true,
			   "handshake timeout: %s sent no whole HELLO in %llu "
			   "ms (handshake_timeout_ms), at %s; the guest was "
			   "not started here",
			   peer, (unsigned long long)pol->handshake_timeout_ms,
			   where);
		return;
	case VMIG_WAIT_IDLE:
		dst_finish(d, -ETIMEDOUT, true,
			   "idle timeout: nothing came from %s for %llu ms "
			   "(idle_timeout_ms), at %s in state \"%s\"; the "
			   "guest was not started here",
			   peer, (unsigned long long)pol->idle_timeout_ms,
			   where, st);
		return;
	case VMIG_WAIT_SWITCHOVER:
		dst_finish(d, -ETIMEDOUT, true,
			   "switchover timeout: no COMMIT from %s %llu ms "
			   "(switchover_timeout_ms) after SWITCHOVER, at %s in "
			   "state \"%s\"; the guest was not started here and "
			   "will not be (the source resumes it, or, if it "
			   "wrote COMMIT, its VMM resolves)",
			   peer, (unsigned long long)pol->switchover_timeout_ms,
			   where, st);
		return;
	default:
		dst_finish(d, -ETIMEDOUT, true,
			   "timeout after %llu ms (timeout_ms) with %s, at %s "
			   "in state \"%s\"; the guest was not started here",
			   (unsigned long long)pol->timeout_ms, peer, where,
			   st);
		return;
	}
}

static const struct vmig_conn_ops dst_conn_ops = {
	.read_buf = dst_read_buf,
	.read_done = dst_read_done,
	.read_end = dst_read_end,
};

const struct vmig_conn_ops *vmig_dst_conn_ops(void)
{
	return &dst_conn_ops;
}

static void dst_cancelled(void *opaque)
{
	struct vmig_dst *d = opaque;

	d->cancelled = true;
	dst_finish(d, -ECANCELED, true, "the destination was cancelled");
}

static void dst_cancel_async(uv_async_t *a)
{
	struct vmig_dst *d = a->data;

	/* The handle also brings calls from the VMM's thread. */
	if (vmig_engine_wakeup(d->e))
		dst_cancelled(d);
}

int vmig_dst_start(vmig_session *s, uv_loop_t *loop, struct vmig_dst **out)
{
	struct vmig_engine *e = vmig_engine_get(s);
	struct vmig_dst *d;
	size_t i;
	int ret;

	if (!e)
		return -ENOMEM;
	d = calloc(1, sizeof(*d));
	if (!d)
		return -ENOMEM;
	d->s = s;
	d->e = e;
	d->loop = loop;
	d->start_us = vmig_now_us();
	ret = vmig_rx_init(&d->rx, s);
	if (ret < 0) {
		free(d);
		return ret;
	}
	ret = uv_async_init(loop, &d->cancel, dst_cancel_async);
	if (ret < 0) {
		vmig_rx_fini(&d->rx);
		free(d);
		return ret;
	}
	d->cancel.data = d;
	d->rx.devs = &vmig_section_devstate_loader;
	for (i = 0; i < s->nr_devices; i++) {
		s->devices[i]->mig_state = false;
		s->devices[i]->state_bytes = 0;
	}
	uv_timer_init(loop, &d->linger);
	d->linger.data = d;
	vmig_watch_init(&d->watch, loop, dst_wait_expired, d);
	ret = vmig_engine_begin(e, &d->cancel, dst_cancelled, d);
	if (ret < 0) {
		uv_close((uv_handle_t *)&d->cancel, NULL);
		uv_close((uv_handle_t *)&d->linger, NULL);
		vmig_watch_close(&d->watch);
		uv_run(loop, UV_RUN_NOWAIT);
		vmig_rx_fini(&d->rx);
		free(d);
		return vmig_fail(s, ret, "receive: a migration runs already");
	}
	vmig_engine_stats_reset(e);
	free(s->stats.iters);
	memset(&s->stats, 0, sizeof(s->stats));
	e->st.valid = true;
	*out = d;
	return 0;
}

void vmig_dst_attach(struct vmig_dst *d, struct vmig_conn *c)
{
	int ret;

	d->conn = c;
	snprintf(d->e->st.transport, sizeof(d->e->st.transport), "%s",
		 vmig_conn_peer(c));
	/* From the connection on, the source has bounded time to speak. */
	vmig_watch_arm(&d->watch, VMIG_WAIT_HANDSHAKE,
		       d->e->pol.handshake_timeout_ms);
	if (d->e->pol.timeout_ms)
		vmig_watch_arm(&d->watch, VMIG_WAIT_TOTAL, d->e->pol.timeout_ms);
	ret = vmig_conn_read_start(c);
	if (ret < 0)
		dst_finish(d, ret, false, "cannot read from %s: %s",
			   vmig_conn_peer(c), vmig_strerror(ret));
}

bool vmig_dst_finished(const struct vmig_dst *d)
{
	return d->finished;
}

void vmig_dst_abort(struct vmig_dst *d, int err, const char *why)
{
	dst_finish(d, err, false, "%s", why);
}

/* After the loop ran dry: the figures, then the result. */
int vmig_dst_finish(struct vmig_dst *d)
{
	vmig_session *s = d->s;
	struct vmig_engine *e = d->e;
	struct vmig_mig_stats *st = &e->st;
	int ret;

	if (!d->finished) {
		/* The loop stopped without an ending: nothing came. */
		vmig_dchans_close(d->chans);
		d->chans = NULL;
		vmig_watch_close(&d->watch);
		uv_run(d->loop, UV_RUN_NOWAIT);
		d->finished = true;
		d->result = -ECONNRESET;
		snprintf(d->errmsg, sizeof(d->errmsg),
			 "the stream ended before it began");
	}
	st->duration_us = vmig_now_us() - d->start_us;
	st->total_bytes = d->rx.bytes;
	st->total_pages = d->rx.pages;
	st->zero_pages = d->rx.zero_pages;
	st->device_bytes = d->rx.device_bytes;
	st->frames = d->rx.frame_no;
	if (d->rx.last_page_us > d->rx.first_us)
		st->stream_us = d->rx.last_page_us - d->rx.first_us;
	st->nr_state_devices = d->rx.nr_devices;
	st->bandwidth = st->duration_us
				? st->total_bytes * 1000000u / st->duration_us
				: 0;
	st->result = d->result;
	ret = d->result;
	if (ret < 0) {
		snprintf(st->error, sizeof(st->error), "%s", d->errmsg);
		vmig_fail(s, ret, "%s", d->errmsg);
	}
	vmig_rx_fini(&d->rx);
	free(d);
	/* Calls from other threads may touch the session again. */
	vmig_engine_idle(e);
	return ret;
}

static void dst_accepted(void *opaque, struct vmig_conn *c, int err)
{
	struct vmig_dst *d = opaque;

	/*
	 * One source per migration: the listener stays (unreferenced), and
	 * a source that connects meanwhile waits for the next
	 * vmig_receive().
	 */
	if (err < 0) {
		dst_finish(d, err, false, "accept: %s", vmig_strerror(err));
		return;
	}
	vmig_logf(d->s, VMIG_LOG_INFO, "destination: %s connected",
		  vmig_conn_peer(c));
	vmig_dst_attach(d, c);
}

int vmig_dst_run(vmig_session *s)
{
	struct vmig_engine *e = vmig_engine_get(s);
	struct vmig_sigpipe sp;
	struct vmig_dst *d;
	uv_loop_t *loop;
	int ret;

	if (!e)
		return -ENOMEM;
	if (!e->listener)
		return vmig_fail(s, -EINVAL, "receive: not listening (call "
				 "vmig_listen first)");
	ret = vmig_engine_loop(e, &loop);
	if (ret < 0)
		return vmig_fail(s, ret, "receive: %s", vmig_strerror(ret));
	ret = vmig_dst_start(s, loop, &d);
	if (ret < 0)
		return ret;
	d->listened = true;
	snprintf(e->st.transport, sizeof(e->st.transport), "%s", e->bound);
	vmig_listener_accept(e->listener, &dst_conn_ops, d, dst_accepted, d);
	vmig_sigpipe_block(&sp);
	uv_run(loop, UV_RUN_DEFAULT);
	vmig_sigpipe_restore(&sp);
	return vmig_dst_finish(d);
}

/* ------------------------------------------------------------------ */
/* Public calls                                                        */

VMIG_API int vmig_listen(vmig_session *s, const char *address, char *bound,
			 size_t len)
{
	struct vmig_engine *e;
	char err[512];
	uv_loop_t *loop;
	int ret;

	if (!s)
		return -EINVAL;
	e = vmig_engine_get(s);
	if (!e)
		return -ENOMEM;
	if (s->role != VMIG_ROLE_DESTINATION)
		return vmig_fail(s, -EINVAL, "listen: not a destination "
				 "session");
	if (e->running)
		return vmig_fail(s, -EBUSY, "listen: a migration runs");
	if (e->listener)
		return vmig_fail(s, -EALREADY, "listen: already listening on "
				 "%s", e->bound);
	if (!address)
		address = e->transport;
	if (!address)
		return vmig_fail(s, -EINVAL, "listen: no address, and no "
				 "transport in the configuration");
	ret = vmig_engine_loop(e, &loop);
	if (ret < 0)
		return vmig_fail(s, ret, "listen: %s", vmig_strerror(ret));
	err[0] = '\0';
	ret = vmig_listener_open(loop, address, &e->listener, e->bound,
				 sizeof(e->bound), err, sizeof(err));
	if (ret < 0) {
		/* Let a half-made listener finish closing. */
		uv_run(loop, UV_RUN_NOWAIT);
		return vmig_fail(s, ret, "%s", err);
	}
	vmig_logf(s, VMIG_LOG_INFO, "destination: listening on %s", e->bound);
	if (bound && len)
		snprintf(bound, len, "%s", e->bound);
	return 0;
}

VMIG_API int vmig_receive(vmig_session *s)
{
	if (!s)
		return -EINVAL;
	if (s->role != VMIG_ROLE_DESTINATION)
		return vmig_fail(s, -EINVAL, "receive: not a destination "
				 "session");
	return vmig_dst_run(s);
}
