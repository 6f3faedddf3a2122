/*
 * vmig/bitmap.h: dirty bitmaps, word at a time, for dirty sources and
 * for vmig itself. Header-only: a plugin built against the installed
 * headers gets the same code as vmig's core, without linking anything.
 *
 * A bitmap is an array of uint64_t; bit n is bit n % 64 of word n / 64,
 * the layout every kernel dirty interface uses (and struct vmig_read's).
 * Functions work on whole words wherever the range allows and only mask
 * the partial words at the ends; none reads or writes a word past
 * vmig_bitmap_words(start + n) of the range it was given. Callers own
 * the memory. Names starting with vmig_bm_ are internal helpers.
 */
#ifndef VMIG_BITMAP_H
#define VMIG_BITMAP_H

#include <errno.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

/* Words needed for nbits bits. */
static inline uint64_t vmig_bitmap_words(uint64_t nbits)
{
	return (nbits + 63) / 64;
}

/* Bytes needed for nbits bits, in whole words. */
static inline uint64_t vmig_bitmap_bytes(uint64_t nbits)
{
	return vmig_bitmap_words(nbits) * 8;
}

/* Tests one bit. */
static inline bool vmig_bitmap_test(const uint64_t *map, uint64_t bit)
{
	return (map[bit / 64] >> (bit % 64)) & 1;
}

static inline uint64_t vmig_bm_nwords(uint64_t nbits)
{
	return nbits / 64 + (nbits % 64 != 0);
}

static inline uint64_t vmig_bm_mask_low(unsigned int n)
{
	return n >= 64 ? ~0ULL : (1ULL << n) - 1;
}

static inline uint64_t vmig_bm_mask_range(unsigned int lo, unsigned int hi)
{
	return vmig_bm_mask_low(hi) & (~0ULL << lo);
}

static inline uint64_t vmig_bm_min(uint64_t a, uint64_t b)
{
	return a < b ? a : b;
}

static inline bool vmig_bm_is_pow2(uint64_t x)
{
	return x && !(x & (x - 1));
}

/*
 * Returns bits [pos, end) of src in the low end - pos bits, 0 < end - pos
 * <= 64. The second word is read only when the range reaches into it, so
 * that nothing past the range is touched.
 */
static inline uint64_t vmig_bm_read_bits(const uint64_t *src, uint64_t pos,
					 uint64_t end)
{
	uint64_t w = pos / 64;
	unsigned int off = pos % 64;
	unsigned int n = end - pos;
	uint64_t v = src[w] >> off;

	if (off + n > 64)
		v |= src[w + 1] << (64 - off);
	return v & vmig_bm_mask_low(n);
}

/*
 * ORs a stream of 64-bit chunks into a bitmap from any bit position. Each
 * chunk costs one read-modify-write of one word: the part that spills into
 * the next word is carried until the next chunk or the flush. Bits of the
 * stream past the range must be zero, so that the flush, which writes only
 * a non-zero carry, never touches a word past the range.
 */
struct vmig_bm_or_writer {
	uint64_t *dst;
	uint64_t w;
	unsigned int off;
	uint64_t carry;
};

static inline void vmig_bm_orw_init(struct vmig_bm_or_writer *ow, uint64_t *dst,
				    uint64_t pos)
{
	ow->dst = dst;
	ow->w = pos / 64;
	ow->off = pos % 64;
	ow->carry = 0;
}

static inline void vmig_bm_orw_put(struct vmig_bm_or_writer *ow, uint64_t v)
{
	uint64_t x;

	if (!ow->off) {
		x = v;
	} else {
		x = (v << ow->off) | ow->carry;
		ow->carry = v >> (64 - ow->off);
	}
	if (x)
		ow->dst[ow->w] |= x;
	ow->w++;
}

static inline void vmig_bm_orw_flush(struct vmig_bm_or_writer *ow)
{
	if (ow->carry)
		ow->dst[ow->w] |= ow->carry;
	ow->carry = 0;
}

/*
 * The words of bits [start, start + n), n > 0: the first and last word,
 * and the bits [lo, 64) of the first and [0, hi) of the last it covers.
 */
static inline void vmig_bm_span(uint64_t start, uint64_t n, uint64_t *w,
				uint64_t *last, unsigned int *lo,
				unsigned int *hi)
{
	*w = start / 64;
	*last = (start + n - 1) / 64;
	*lo = start % 64;
	*hi = (start + n - 1) % 64 + 1;
}

/* Sets (set) or clears the bits of mask in *word. */
static inline void vmig_bm_assign_word(uint64_t *word, uint64_t mask, bool set)
{
	if (set)
		*word |= mask;
	else
		*word &= ~mask;
}

/* Sets (set) or clears bits [start, start + n). */
static inline void vmig_bm_assign(uint64_t *map, uint64_t start, uint64_t n,
				  bool set)
{
	uint64_t w, last;
	unsigned int lo, hi;

	if (!n)
		return;
	vmig_bm_span(start, n, &w, &last, &lo, &hi);
	if (w == last) {
		vmig_bm_assign_word(&map[w], vmig_bm_mask_range(lo, hi), set);
		return;
	}
	vmig_bm_assign_word(&map[w++], ~0ULL << lo, set);
	if (last > w)
		memset(map + w, set ? 0xff : 0, (last - w) * sizeof(*map));
	vmig_bm_assign_word(&map[last], vmig_bm_mask_low(hi), set);
}

/* Sets bits [start, start + n). */
static inline void vmig_bitmap_set(uint64_t *map, uint64_t start, uint64_t n)
{
	vmig_bm_assign(map, start, n, true);
}

/* Clears bits [start, start + n). */
static inline void vmig_bitmap_clear(uint64_t *map, uint64_t start, uint64_t n)
{
	vmig_bm_assign(map, start, n, false);
}

/* True if any bit of [start, start + n) is set. */
static inline bool vmig_bitmap_any(const uint64_t *map, uint64_t start,
				   uint64_t n)
{
	uint64_t w, last;
	unsigned int lo, hi;

	if (!n)
		return false;
	vmig_bm_span(start, n, &w, &last, &lo, &hi);
	if (w == last)
		return map[w] & vmig_bm_mask_range(lo, hi);
	if (map[w] & (~0ULL << lo))
		return true;
	for (w++; w < last; w++)
		if (map[w])
			return true;
	return map[last] & vmig_bm_mask_low(hi);
}

/* dst |= src over the first nbits bits (bits past nbits are untouched). */
static inline void vmig_bitmap_or(uint64_t *dst, const uint64_t *src,
				  uint64_t nbits)
{
	uint64_t full = nbits / 64, i;

	for (i = 0; i < full; i++)
		dst[i] |= src[i];
	if (nbits % 64)
		dst[full] |= src[full] & vmig_bm_mask_low(nbits % 64);
}

/*
 * Finds the next run of set bits at or after *pos and below nbits. On
 * success stores the run in *start and *len, moves *pos past the run and
 * returns true; returns false when there is none.
 */
static inline bool vmig_bitmap_next_run(const uint64_t *map, uint64_t nbits,
					uint64_t *pos, uint64_t *start,
					uint64_t *len)
{
	uint64_t p = *pos, nw = vmig_bm_nwords(nbits), w, x, first, end;

	if (p >= nbits)
		return false;
	w = p / 64;
	x = map[w] & (~0ULL << (p % 64));
	while (!x) {
		if (++w >= nw)
			return false;
		x = map[w];
	}
	first = w * 64 + __builtin_ctzll(x);
	if (first >= nbits)
		return false;
	/* The run ends at the first clear bit after its start. */
	x = ~map[w] & (~0ULL << (first % 64));
	while (!x) {
		if (++w >= nw)
			break;
		x = ~map[w];
	}
	end = w < nw ? vmig_bm_min(w * 64 + __builtin_ctzll(x), nbits) : nbits;
	*start = first;
	*len = end - first;
	*pos = end;
	return true;
}

static inline uint64_t vmig_bm_block_mask(unsigned int gs, unsigned int ds)
{
	uint64_t every = ds >= 64 ? 1 : ~0ULL / vmig_bm_mask_low(ds);

	return every * vmig_bm_mask_low(gs);
}

/*
 * For a ratio r = 2^lg < 64: the masks that gather the bits r apart into
 * the low 64 / r bits (compress) and spread them back (expand), in the
 * log2(64 / r) steps of the classic bit-permutation network.
 */
struct vmig_bm_ratio_masks {
	unsigned int lg;
	unsigned int nsteps;
	uint64_t keep;     /* bits at multiples of r */
	uint64_t step[6];  /* after gathering step i: groups of 2^(i+1) */
};

static inline void vmig_bm_ratio_masks_init(struct vmig_bm_ratio_masks *m,
					    unsigned int lg)
{
	unsigned int r = 1U << lg, g = 1, d = r, i = 0;

	m->lg = lg;
	m->keep = vmig_bm_block_mask(1, r);
	while (d < 64) {
		m->step[i++] = vmig_bm_block_mask(2 * g, 2 * d);
		g *= 2;
		d *= 2;
	}
	m->nsteps = i;
}

static inline uint64_t vmig_bm_compress_any(const struct vmig_bm_ratio_masks *m,
					    uint64_t x)
{
	unsigned int r = 1U << m->lg, s, g = 1, d = r, i;

	for (s = 1; s < r; s <<= 1)
		x |= x >> s;
	x &= m->keep;
	for (i = 0; i < m->nsteps; i++) {
		x = (x | (x >> (d - g))) & m->step[i];
		g *= 2;
		d *= 2;
	}
	return x;
}

static inline uint64_t vmig_bm_expand_fill(const struct vmig_bm_ratio_masks *m,
					   uint64_t x)
{
	unsigned int r = 1U << m->lg, g = 64 >> m->lg, d = 64, i;

	for (i = m->nsteps; i-- > 0;) {
		/* Undo gathering step i: groups of g at d apart. */
		x = (x | (x << (d / 2 - g / 2)));
		x &= i ? m->step[i - 1] : m->keep;
		g /= 2;
		d /= 2;
	}
	/* Groups are disjoint, so the product has no carries. */
	return x * vmig_bm_mask_low(r);
}

/*
 * Finer to coarser: n destination bits from bit d, each the OR of 2^lg
 * source bits from bit s.
 */
static inline void vmig_bm_convert_finer(uint64_t *dst, uint64_t d,
					 const uint64_t *src, uint64_t s,
					 uint64_t n, unsigned int lg)
{
	struct vmig_bm_ratio_masks m;
	struct vmig_bm_or_writer ow;
	uint64_t s_end, k, j, v, x, pos, r, per, cnt;

	vmig_bm_orw_init(&ow, dst, d);
	if (lg >= 6) {
		/* Each destination bit covers whole words' worth of bits. */
		r = 1ULL << lg;
		for (k = 0; k < n; k += 64) {
			cnt = vmig_bm_min(64, n - k);
			v = 0;
			for (j = 0; j < cnt; j++)
				if (vmig_bitmap_any(src, s + ((k + j) << lg),
						    r))
					v |= 1ULL << j;
			vmig_bm_orw_put(&ow, v);
		}
		vmig_bm_orw_flush(&ow);
		return;
	}
	vmig_bm_ratio_masks_init(&m, lg);
	r = 1ULL << lg;
	per = 64 >> lg;
	s_end = s + (n << lg);
	/* Each destination word takes r source words' worth of bits. */
	for (k = 0; k < n; k += 64) {
		v = 0;
		for (j = 0; j < r; j++) {
			pos = s + (k << lg) + j * 64;
			if (pos >= s_end)
				break;
			x = vmig_bm_read_bits(src, pos, vmig_bm_min(pos + 64, s_end));
			if (x)
				v |= vmig_bm_compress_any(&m, x) << (j * per);
		}
		vmig_bm_orw_put(&ow, v);
	}
	vmig_bm_orw_flush(&ow);
}

/*
 * Coarser to finer: n source bits from bit s, each filling 2^lg
 * destination bits from bit d.
 */
static inline void vmig_bm_convert_coarser(uint64_t *dst, uint64_t d,
					   const uint64_t *src, uint64_t s,
					   uint64_t n, unsigned int lg)
{
	struct vmig_bm_ratio_masks m;
	struct vmig_bm_or_writer ow;
	uint64_t pos, start, len, k, sp, x, per, ndst;

	if (lg >= 6) {
		/* Every run fills whole words' worth of bits. */
		pos = s;
		while (vmig_bitmap_next_run(src, s + n, &pos, &start, &len))
			vmig_bitmap_set(dst, d + ((start - s) << lg),
					len << lg);
		return;
	}
	vmig_bm_ratio_masks_init(&m, lg);
	per = 64 >> lg;
	ndst = n << lg;
	vmig_bm_orw_init(&ow, dst, d);
	/* Each destination word takes 64 / r source bits. */
	for (k = 0; k < ndst; k += 64) {
		sp = s + (k >> lg);
		x = vmig_bm_read_bits(src, sp, vmig_bm_min(sp + per, s + n));
		vmig_bm_orw_put(&ow, x ? vmig_bm_expand_fill(&m, x) : 0);
	}
	vmig_bm_orw_flush(&ow);
}

/*
 * Converts a bitmap of src_pgsize granules into one of dst_pgsize pages
 * covering the same `length` bytes from the same base address; both page
 * sizes are powers of two and length is a multiple of both. ORs into dst
 * (callers zero it first for a plain conversion):
 *   finer source (src_pgsize < dst_pgsize): a page is dirty if any of its
 *     granules is;
 *   coarser source: every page of a dirty granule is dirty;
 *   equal: a plain OR.
 * Returns 0, or -EINVAL when a size is not a power of two or length is not
 * a multiple of both.
 */
static inline int vmig_bitmap_convert(uint64_t *dst, uint64_t dst_pgsize,
				      const uint64_t *src, uint64_t src_pgsize,
				      uint64_t length)
{
	unsigned int lgd, lgs;

	if (!vmig_bm_is_pow2(dst_pgsize) || !vmig_bm_is_pow2(src_pgsize) ||
	    length % dst_pgsize || length % src_pgsize)
		return -EINVAL;
	lgd = __builtin_ctzll(dst_pgsize);
	lgs = __builtin_ctzll(src_pgsize);
	if (lgs == lgd)
		vmig_bitmap_or(dst, src, length >> lgs);
	else if (lgs < lgd)
		vmig_bm_convert_finer(dst, 0, src, 0, length >> lgd, lgd - lgs);
	else
		vmig_bm_convert_coarser(dst, 0, src, 0, length >> lgs, lgs - lgd);
	return 0;
}

#endif /* VMIG_BITMAP_H */
