/*
 * section_ram.c: guest RAM as a migration section.
 *
 * This file owns the source's pass over guest memory: a cursor that
 * walks each region's dirty bitmap run by run, and the frames it makes
 * of them, straight from guest memory: runs of data pages as PAGES (at
 * most 256 a frame, with DATA_CRC once the guest is stopped), runs of
 * zero pages as ZERO. A page's bit is cleared as it is queued: a write
 * after the sync that found it is caught by the next sync.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "section.h"

#define PREFETCH_PAGES 8 /* zero checks look this far ahead */
/*
 * The pages one ZERO frame names at most, and one fill looks at: a fill
 * runs on the loop's thread, so it must end soon enough for a cancel or
 * a reply to be seen between two (tens of ms even where every page of a
 * huge zero run costs a fault).
 */
#define ZERO_RUN_MAX 32768u
#define FILL_PAGES_MAX 32768u
/* How far one look at the backing's holes goes (vmig_region_extent). */
#define EXTENT_MAX 32768u

struct ram {
	uint32_t region;        /* the cursor */
	uint64_t page;
	uint64_t run_start, run_end; /* the dirty run under the cursor */
	uint64_t left;          /* dirty pages not queued yet */
	bool final;             /* the guest is stopped: DATA_CRC */
	/*
	 * The backing's last answer: pages [ext_start, ext_end) of region
	 * ext_region are all holes (never written: sent as zero, unread)
	 * or all maybe data. Valid within one fill and one dirty run only
	 * (see ram_extent).
	 */
	uint32_t ext_region;
	uint64_t ext_start, ext_end;
	bool ext_hole;
};

static struct ram *ram_of(const struct vmig_section *sec)
{
	return sec->priv;
}

static int ram_setup(struct vmig_section *sec)
{
	sec->priv = calloc(1, sizeof(struct ram));
	if (!sec->priv) {
		snprintf(sec->err, sizeof(sec->err), "out of memory");
		return -ENOMEM;
	}
	return 0;
}

static void ram_cleanup(struct vmig_section *sec)
{
	free(sec->priv);
	sec->priv = NULL;
}

static void ram_pass_begin(struct vmig_section *sec, uint64_t dirty,
			   bool final)
{
	struct ram *r = ram_of(sec);

	r->region = 0;
	r->page = 0;
	r->run_start = r->run_end = 0;
	r->left = dirty;
	r->final = final;
	r->ext_end = 0;
}

static uint64_t ram_pending(struct vmig_section *sec)
{
	return ram_of(sec)->left * VMIG_PAGE_SIZE;
}

/*
 * Moves the cursor's run forward: the next run of dirty pages at or after
 * the cursor. False at the end of memory.
 */
static bool ram_next_run(struct vmig_section *sec)
{
	struct ram *r = ram_of(sec);
	vmig_session *s = sec->s;

	while (r->region < s->nr_regions) {
		struct vmig_region_rec *reg = &s->regions[r->region];
		uint64_t pos = r->page, start, len;

		if (r->page < r->run_end)
			return true;
		if (vmig_bitmap_next_run(reg->dirty, reg->npages, &pos, &start,
					 &len)) {
			r->run_start = start;
			r->run_end = start + len;
			r->page = start;
			return true;
		}
		r->region++;
		r->page = 0;
		r->run_start = r->run_end = 0;
	}
	return false;
}

/* Pages from p on (at most max) that are all zero or all not, as p is. */
static uint64_t ram_same_run(const uint8_t *p, uint64_t max, bool zero)
{
	uint64_t n = 1;

	while (n < max) {
		const uint8_t *pg = p + n * VMIG_PAGE_SIZE;

		/*
		 * Each page's first line is a miss the prefetcher cannot see
		 * coming (it stops at page boundaries): ask for a few pages
		 * ahead, so the misses overlap.
		 */
		if (n + PREFETCH_PAGES < max)
			__builtin_prefetch(pg + PREFETCH_PAGES * VMIG_PAGE_SIZE);
		if (vmig_page_is_zero(pg) != zero)
			break;
		n++;
	}
	return n;
}

/*
 * The pages from the cursor on (at most max) that the backing says are
 * all holes (*hole) or all maybe data. A page that is a hole now reads as
 * zero now: sending it as zero unread is what reading it would have done,
 * and a write after this look is tracked like one after a read, as long
 * as nothing can set a dirty bit of the bitmap being sent between the
 * look and the frame. The VMM's calls (an unmap's harvest, a hot-plug's
 * ranges) can, but only between two fills, and only in pages of another
 * run: so the answer is kept within the dirty run it was asked for and
 * forgotten at the start of each fill (ram_save).
 */
static uint64_t ram_extent(struct ram *r, const struct vmig_region_rec *reg,
			   uint64_t max, bool *hole)
{
	uint64_t p = r->page, n;

	if (r->ext_region != r->region || p < r->ext_start ||
	    p >= r->ext_end) {
		n = r->run_end - p < EXTENT_MAX ? r->run_end - p : EXTENT_MAX;
		r->ext_region = r->region;
		r->ext_start = p;
		r->ext_end = p + vmig_region_extent(reg, p, n, &r->ext_hole);
	}
	*hole = r->ext_hole;
	return r->ext_end - p < max ? r->ext_end - p : max;
}

/* One frame (PAGES or ZERO) from the cursor into hdr. */
static int ram_frame(struct vmig_section *sec, struct vmig_section_sink *out,
		     uint8_t *hdr)
{
	struct ram *r = ram_of(sec);
	struct vmig_region_rec *reg = &sec->s->regions[r->region];
	const uint8_t *data = reg->hva + r->page * VMIG_PAGE_SIZE;
	uint64_t p = r->page, n, max = r->run_end - p;
	bool zero;
	int ret;

	max = ram_extent(r, reg, max, &zero);
	if (zero) {
		n = max < ZERO_RUN_MAX ? max : ZERO_RUN_MAX;
		out->it->pages_unread += n;
	} else {
		zero = vmig_page_is_zero(data);
		if (!zero && max > VMIG_PAGES_MAX)
			max = VMIG_PAGES_MAX;
		if (zero && max > ZERO_RUN_MAX)
			max = ZERO_RUN_MAX;
		n = ram_same_run(data, max, zero);
	}
	vmig_bitmap_clear(reg->dirty, p, n);
	if (zero) {
		vmig_enc_zero(hdr, r->region, p, n);
		ret = out->add(out->opaque, NULL, 0, false);
		out->it->zero_pages += n;
	} else {
		vmig_enc_pages(hdr, r->region, p, n, data, r->final);
		ret = out->add(out->opaque, data, n * VMIG_PAGE_SIZE, false);
		out->it->pages_sent += n;
	}
	out->pages += n;
	r->page = p + n;
	r->left -= r->left >= n ? n : r->left;
	return ret;
}

/*
 * Fills the sink from the cursor: 1 at the end of memory, 0 when full or
 * after FILL_PAGES_MAX pages (the next fill goes on).
 */
static int ram_save(struct vmig_section *sec, struct vmig_section_sink *out)
{
	uint64_t pages0 = out->pages;
	uint8_t *hdr;
	int ret;

	/* The backing's answers of the last fill are stale (ram_extent). */
	ram_of(sec)->ext_end = 0;
	while ((hdr = out->next(out->opaque))) {
		if (!ram_next_run(sec))
			return 1;
		ret = ram_frame(sec, out, hdr);
		if (ret < 0)
			return ret;
		if (out->pages - pages0 >= FILL_PAGES_MAX)
			return 0;
	}
	return 0;
}

const struct vmig_section_ops vmig_section_ram = {
	.name = "guest RAM",
	.batched = true,
	.setup = ram_setup,
	.cleanup = ram_cleanup,
	.pass_begin = ram_pass_begin,
	.pending = ram_pending,
	.save_live = ram_save,
	.save_final = ram_save,
};

uint64_t vmig_section_ram_left(const struct vmig_section *sec)
{
	const struct ram *r = ram_of(sec);

	return r ? r->left : 0;
}

/* ------------------------------------------------------------------ */
/* The destination                                                     */

/* The receive machine checked the region index and the page range. */
static uint8_t *ram_span(struct vmig_rx *rx, uint64_t region, uint64_t first)
{
	const struct vmig_region_rec *r =
		&rx->s->regions[rx->region_map[region]];

	return r->hva + first * VMIG_PAGE_SIZE;
}

/*
 * Zeroes the pages of a ZERO frame, writing only those that are not. In
 * fresh memory (VMIG_REGION_FRESH) a page nothing arrived for yet is
 * zero and is not even read; one that received data before must be
 * cleared like any other.
 */
static void ram_zero(struct vmig_rx *rx, uint64_t region, uint64_t first,
		     uint8_t *p, uint64_t n)
{
	uint32_t r = rx->region_map[region];
	const struct vmig_region_rec *reg = &rx->s->regions[r];
	uint64_t *seen = rx->termed ? rx->termed[r] : NULL;
	uint64_t i, page = first;

	for (i = 0; i < n; i++, p += VMIG_PAGE_SIZE) {
		/* Other data connections set bits of the same words. */
		uint64_t w = reg->fresh && seen
				     ? __atomic_load_n(&seen[(page + i) / 64],
						       __ATOMIC_RELAXED)
				     : ~0ull;

		/* A whole word of pages nothing arrived for: all skipped. */
		if (!w && (page + i) % 64 == 0 && n - i >= 64) {
			i += 63;
			p += 63 * VMIG_PAGE_SIZE;
			continue;
		}
		if (!(w & (1ull << ((page + i) % 64))))
			continue;
		/* Reading a page never touched costs little; writing does. */
		if (!vmig_page_is_zero(p))
			memset(p, 0, VMIG_PAGE_SIZE);
	}
}

const struct vmig_section_loader vmig_section_ram_loader = {
	.name = "guest RAM",
	.span = ram_span,
	.zero = ram_zero,
};
