/*
 * bitmap.c: dirty bitmaps, word at a time.
 *
 * Owns the range operations, counts and shifted ORs on plain bitmaps, the
 * merge of several sources with its count (with CPU-specific variants
 * chosen at run time), the conversion between page sizes, and the bitmaps
 * indexed by address (struct vmig_dbitmap).
 *
 * No function reads or writes a word past vmig_bitmap_words(start + n) of
 * the range it was given: callers size their buffers to the bit, as the
 * kernel does.
 */
#include "core/bitmap.h"

#include <errno.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>

#if defined(__x86_64__) || defined(__i386__)
#include <immintrin.h>
#define VMIG_BITMAP_X86 1
#endif

/* ------------------------------------------------------------------ */
/* Word helpers                                                       */

/* Unlike vmig_bitmap_words, cannot wrap for nbits near 2^64. */
/* The low n bits, n in 0..64. */
/* Bits [lo, hi) of a word, 0 <= lo < hi <= 64. */
static inline uint64_t max_u64(uint64_t a, uint64_t b)
{
	return a > b ? a : b;
}

static inline void bit_set(uint64_t *map, uint64_t bit)
{
	map[bit / 64] |= 1ULL << (bit % 64);
}

/* ------------------------------------------------------------------ */
/* CPU-specific variants of the counting loops                        */

/*
 * A variant ORs 1 to 4 inputs into dst over nw words and returns the
 * number of bits set. Absent inputs repeat the first one, which costs a
 * load from L1 and keeps one loop for every count. dst may be one of the
 * inputs (the merge of more than four sources ORs into dst).
 */
struct bitmap_impl {
	const char *name;
	bool (*usable)(void);
	uint64_t (*or_count)(uint64_t *dst, const uint64_t *const *in,
			     unsigned int nin, uint64_t nw);
	uint64_t (*count)(const uint64_t *map, uint64_t nw);
};

static inline __attribute__((always_inline)) uint64_t
or_count_scalar(uint64_t *dst, const uint64_t *const *in, unsigned int nin,
		uint64_t nw)
{
	const uint64_t *a = in[0];
	const uint64_t *b = in[nin > 1 ? 1 : 0];
	const uint64_t *c = in[nin > 2 ? 2 : 0];
	const uint64_t *d = in[nin > 3 ? 3 : 0];
	uint64_t c0 = 0, c1 = 0, i = 0, v0, v1;

	/* Two counters, so that the popcounts do not form one chain. */
	for (; i + 2 <= nw; i += 2) {
		v0 = a[i] | b[i] | c[i] | d[i];
		v1 = a[i + 1] | b[i + 1] | c[i + 1] | d[i + 1];
		dst[i] = v0;
		dst[i + 1] = v1;
		c0 += __builtin_popcountll(v0);
		c1 += __builtin_popcountll(v1);
	}
	if (i < nw) {
		v0 = a[i] | b[i] | c[i] | d[i];
		dst[i] = v0;
		c0 += __builtin_popcountll(v0);
	}
	return c0 + c1;
}

static inline __attribute__((always_inline)) uint64_t
count_scalar(const uint64_t *map, uint64_t nw)
{
	uint64_t c0 = 0, c1 = 0, i = 0;

	for (; i + 2 <= nw; i += 2) {
		c0 += __builtin_popcountll(map[i]);
		c1 += __builtin_popcountll(map[i + 1]);
	}
	if (i < nw)
		c0 += __builtin_popcountll(map[i]);
	return c0 + c1;
}

static bool usable_always(void)
{
	return true;
}

static uint64_t or_count_generic(uint64_t *dst, const uint64_t *const *in,
				 unsigned int nin, uint64_t nw)
{
	return or_count_scalar(dst, in, nin, nw);
}

static uint64_t count_generic(const uint64_t *map, uint64_t nw)
{
	return count_scalar(map, nw);
}

#ifdef VMIG_BITMAP_X86
static bool usable_popcnt(void)
{
	__builtin_cpu_init();
	return __builtin_cpu_supports("popcnt");
}

static bool usable_avx2(void)
{
	__builtin_cpu_init();
	return __builtin_cpu_supports("popcnt") &&
	       __builtin_cpu_supports("avx2");
}

/* The same loops; the builtin becomes one popcnt instruction. */
__attribute__((target("popcnt"))) static uint64_t
or_count_popcnt(uint64_t *dst, const uint64_t *const *in, unsigned int nin,
		uint64_t nw)
{
	return or_count_scalar(dst, in, nin, nw);
}

__attribute__((target("popcnt"))) static uint64_t
count_popcnt(const uint64_t *map, uint64_t nw)
{
	return count_scalar(map, nw);
}

/*
 * Per-byte popcounts of a vector: a 16-entry table looked up with
 * vpshufb for each nibble (W. Mula's method), then summed per 64-bit lane
 * by vpsadbw.
 */
__attribute__((target("avx2"))) static inline __m256i
popcount_lanes_avx2(__m256i v)
{
	const __m256i lut = _mm256_setr_epi8(0, 1, 1, 2, 1, 2, 2, 3,
					     1, 2, 2, 3, 2, 3, 3, 4,
					     0, 1, 1, 2, 1, 2, 2, 3,
					     1, 2, 2, 3, 2, 3, 3, 4);
	const __m256i nib = _mm256_set1_epi8(0x0f);
	__m256i lo = _mm256_and_si256(v, nib);
	__m256i hi = _mm256_and_si256(_mm256_srli_epi16(v, 4), nib);
	__m256i cnt = _mm256_add_epi8(_mm256_shuffle_epi8(lut, lo),
				      _mm256_shuffle_epi8(lut, hi));

	return _mm256_sad_epu8(cnt, _mm256_setzero_si256());
}

__attribute__((target("avx2"))) static inline uint64_t
sum_lanes_avx2(__m256i acc)
{
	return (uint64_t)_mm256_extract_epi64(acc, 0) +
	       (uint64_t)_mm256_extract_epi64(acc, 1) +
	       (uint64_t)_mm256_extract_epi64(acc, 2) +
	       (uint64_t)_mm256_extract_epi64(acc, 3);
}

__attribute__((target("avx2"), always_inline)) static inline __m256i
load_avx2(const uint64_t *p)
{
	return _mm256_loadu_si256((const __m256i *)p);
}

__attribute__((target("avx2,popcnt"))) static uint64_t
or_count_avx2(uint64_t *dst, const uint64_t *const *in, unsigned int nin,
	      uint64_t nw)
{
	const uint64_t *a = in[0];
	const uint64_t *b = in[nin > 1 ? 1 : 0];
	const uint64_t *c = in[nin > 2 ? 2 : 0];
	const uint64_t *d = in[nin > 3 ? 3 : 0];
	__m256i acc0 = _mm256_setzero_si256(), acc1 = acc0, v0, v1;
	uint64_t i = 0, cnt, v;

	/* Eight words a turn, two accumulators to overlap the latencies. */
	for (; i + 8 <= nw; i += 8) {
		v0 = _mm256_or_si256(_mm256_or_si256(load_avx2(a + i),
						     load_avx2(b + i)),
				     _mm256_or_si256(load_avx2(c + i),
						     load_avx2(d + i)));
		v1 = _mm256_or_si256(_mm256_or_si256(load_avx2(a + i + 4),
						     load_avx2(b + i + 4)),
				     _mm256_or_si256(load_avx2(c + i + 4),
						     load_avx2(d + i + 4)));
		_mm256_storeu_si256((__m256i *)(dst + i), v0);
		_mm256_storeu_si256((__m256i *)(dst + i + 4), v1);
		acc0 = _mm256_add_epi64(acc0, popcount_lanes_avx2(v0));
		acc1 = _mm256_add_epi64(acc1, popcount_lanes_avx2(v1));
	}
	cnt = sum_lanes_avx2(_mm256_add_epi64(acc0, acc1));
	for (; i < nw; i++) {
		v = a[i] | b[i] | c[i] | d[i];
		dst[i] = v;
		cnt += __builtin_popcountll(v);
	}
	return cnt;
}

__attribute__((target("avx2,popcnt"))) static uint64_t
count_avx2(const uint64_t *map, uint64_t nw)
{
	__m256i acc = _mm256_setzero_si256();
	uint64_t i = 0, cnt;

	for (; i + 4 <= nw; i += 4)
		acc = _mm256_add_epi64(acc,
				       popcount_lanes_avx2(load_avx2(map + i)));
	cnt = sum_lanes_avx2(acc);
	for (; i < nw; i++)
		cnt += __builtin_popcountll(map[i]);
	return cnt;
}
#endif /* VMIG_BITMAP_X86 */

/* Best first: the default is the first usable one. */
static const struct bitmap_impl impls[] = {
#ifdef VMIG_BITMAP_X86
	{ "avx2", usable_avx2, or_count_avx2, count_avx2 },
	{ "popcnt", usable_popcnt, or_count_popcnt, count_popcnt },
#endif
	{ "generic", usable_always, or_count_generic, count_generic },
};

#define NIMPLS (sizeof(impls) / sizeof(impls[0]))

/*
 * Chosen on first use. Concurrent first uses choose the same one, so the
 * race is harmless; the atomic only keeps it defined.
 */
static const struct bitmap_impl *_Atomic impl_cur;

static const struct bitmap_impl *impl_best(void)
{
	size_t i;

	for (i = 0; i < NIMPLS - 1; i++)
		if (impls[i].usable())
			return &impls[i];
	return &impls[NIMPLS - 1];
}

static const struct bitmap_impl *impl_get(void)
{
	const struct bitmap_impl *im;

	im = atomic_load_explicit(&impl_cur, memory_order_relaxed);
	if (!im) {
		im = impl_best();
		atomic_store_explicit(&impl_cur, im, memory_order_relaxed);
	}
	return im;
}

int vmig_bitmap_select_impl(const char *name)
{
	size_t i;

	if (!name) {
		atomic_store_explicit(&impl_cur, impl_best(),
				      memory_order_relaxed);
		return 0;
	}
	for (i = 0; i < NIMPLS; i++) {
		if (strcmp(impls[i].name, name))
			continue;
		if (!impls[i].usable())
			return -ENOTSUP;
		atomic_store_explicit(&impl_cur, &impls[i],
				      memory_order_relaxed);
		return 0;
	}
	return -ENOENT;
}

const char *vmig_bitmap_impl_name(void)
{
	return impl_get()->name;
}

/* ------------------------------------------------------------------ */
/* Ranges                                                             */

uint64_t vmig_bitmap_count(const uint64_t *map, uint64_t start, uint64_t n)
{
	uint64_t w, last, cnt;
	unsigned int lo, hi;

	if (!n)
		return 0;
	vmig_bm_span(start, n, &w, &last, &lo, &hi);
	if (w == last)
		return __builtin_popcountll(map[w] & vmig_bm_mask_range(lo, hi));
	cnt = __builtin_popcountll(map[w] & (~0ULL << lo));
	cnt += __builtin_popcountll(map[last] & vmig_bm_mask_low(hi));
	if (last > w + 1)
		cnt += impl_get()->count(map + w + 1, last - w - 1);
	return cnt;
}

/* ------------------------------------------------------------------ */
/* ORs                                                                */

void vmig_bitmap_or_at(uint64_t *dst, uint64_t dst_start,
		       const uint64_t *src, uint64_t src_start, uint64_t n)
{
	uint64_t dw, dlast, s, s_end, sw;
	unsigned int lo, sh;

	if (!n)
		return;
	dw = dst_start / 64;
	dlast = (dst_start + n - 1) / 64;
	lo = dst_start % 64;
	s = src_start;
	s_end = src_start + n;
	if (dw == dlast) {
		dst[dw] |= vmig_bm_read_bits(src, s, s_end) << lo;
		return;
	}
	if (lo) {
		dst[dw++] |= vmig_bm_read_bits(src, s, s + 64 - lo) << lo;
		s += 64 - lo;
	}
	/*
	 * Whole destination words: each is one source word, or two funnel-
	 * shifted when the in-word offsets differ. Both source words hold
	 * bits of the range, so neither read is past it.
	 */
	sw = s / 64;
	sh = s % 64;
	if (!sh) {
		for (; dw < dlast; dw++, sw++)
			dst[dw] |= src[sw];
	} else {
		for (; dw < dlast; dw++, sw++)
			dst[dw] |= (src[sw] >> sh) | (src[sw + 1] << (64 - sh));
	}
	s = sw * 64 + sh;
	dst[dlast] |= vmig_bm_read_bits(src, s, s_end);
}

#define MERGE_CHUNK 512 /* words: 4 KiB of dst, revisited while in L1 */

uint64_t vmig_bitmap_merge_count(uint64_t *dst, const uint64_t *const *src,
				 size_t nsrc, uint64_t nbits)
{
	const struct bitmap_impl *im = impl_get();
	const uint64_t *in[4];
	uint64_t nw = vmig_bm_nwords(nbits), total = 0, i, c, cnt, extra;
	unsigned int tail = nbits % 64, k;
	size_t j;

	if (!nw)
		return 0;
	if (!nsrc) {
		memset(dst, 0, nw * sizeof(*dst));
		return 0;
	}
	if (nsrc <= 4) {
		total = im->or_count(dst, src, nsrc, nw);
	} else {
		/*
		 * Four sources a pass over a chunk small enough to stay in
		 * L1, then three more and the chunk itself: memory is still
		 * read once. Only the last pass's count is the chunk's.
		 */
		for (i = 0; i < nw; i += MERGE_CHUNK) {
			c = vmig_bm_min(MERGE_CHUNK, nw - i);
			for (k = 0; k < 4; k++)
				in[k] = src[k] + i;
			cnt = im->or_count(dst + i, in, 4, c);
			for (j = 4; j < nsrc; j += k) {
				k = vmig_bm_min(3, nsrc - j);
				in[0] = dst + i;
				in[1] = src[j] + i;
				in[2] = src[j + (k > 1)] + i;
				in[3] = src[j + (k > 2) * 2] + i;
				cnt = im->or_count(dst + i, in, k + 1, c);
			}
			total += cnt;
		}
	}
	if (tail) {
		extra = dst[nw - 1] & ~vmig_bm_mask_low(tail);
		total -= __builtin_popcountll(extra);
		dst[nw - 1] &= vmig_bm_mask_low(tail);
	}
	return total;
}

/* ------------------------------------------------------------------ */
/* Runs                                                               */

/* ------------------------------------------------------------------ */
/* Granularity conversion                                             */

/* The low gs bits of every ds-bit block of a word; ds is a power of two. */
/* The 64 / r bits that say "any of each r-bit group", packed low. */
/* The inverse: each of the low 64 / r bits fills an r-bit group. */
/* ------------------------------------------------------------------ */
/* Bitmaps indexed by address                                         */

int vmig_dbitmap_init(struct vmig_dbitmap *b, uint64_t base, uint64_t length,
		      uint64_t pgsize)
{
	uint64_t nbits, nw;
	uint64_t *words = NULL;

	memset(b, 0, sizeof(*b));
	if (!vmig_bm_is_pow2(pgsize) || base % pgsize || length % pgsize)
		return -EINVAL;
	/* The range may end at 2^64, not past it. */
	if (length && length - 1 > UINT64_MAX - base)
		return -EINVAL;
	nbits = length >> __builtin_ctzll(pgsize);
	nw = vmig_bm_nwords(nbits);
	if (nw > SIZE_MAX / sizeof(*words))
		return -ENOMEM;
	if (nw) {
		words = calloc(nw, sizeof(*words));
		if (!words)
			return -ENOMEM;
	}
	b->base = base;
	b->pgsize = pgsize;
	b->nbits = nbits;
	b->words = words;
	return 0;
}

void vmig_dbitmap_fini(struct vmig_dbitmap *b)
{
	free(b->words);
	b->words = NULL;
	b->nbits = 0;
}

/*
 * Clips [addr, addr + len) to the bitmap's range, as inclusive bounds so
 * that nothing wraps at 2^64. Returns false when nothing is left.
 */
static bool dbm_clip(const struct vmig_dbitmap *b, uint64_t addr,
		     uint64_t len, uint64_t *lo, uint64_t *hi)
{
	uint64_t last, blast;

	if (!len || !b->nbits)
		return false;
	last = len - 1 > UINT64_MAX - addr ? UINT64_MAX : addr + (len - 1);
	blast = b->base + ((b->nbits << __builtin_ctzll(b->pgsize)) - 1);
	*lo = max_u64(addr, b->base);
	*hi = vmig_bm_min(last, blast);
	return *lo <= *hi;
}

void vmig_dbitmap_set_range(struct vmig_dbitmap *b, uint64_t addr,
			    uint64_t len)
{
	unsigned int lg = __builtin_ctzll(b->pgsize);
	uint64_t lo, hi, first;

	if (!dbm_clip(b, addr, len, &lo, &hi))
		return;
	first = (lo - b->base) >> lg;
	vmig_bitmap_set(b->words, first, ((hi - b->base) >> lg) - first + 1);
}

void vmig_dbitmap_clear_range(struct vmig_dbitmap *b, uint64_t addr,
			      uint64_t len)
{
	unsigned int lg = __builtin_ctzll(b->pgsize);
	uint64_t lo, hi, first, end, pgmask = b->pgsize - 1;

	if (!dbm_clip(b, addr, len, &lo, &hi))
		return;
	/* A page counts only if both its first and its last byte are in. */
	first = ((lo - b->base) >> lg) + !!((lo - b->base) & pgmask);
	end = ((hi - b->base) >> lg) + (((hi - b->base) & pgmask) == pgmask);
	if (first < end)
		vmig_bitmap_clear(b->words, first, end - first);
}

bool vmig_dbitmap_test_addr(const struct vmig_dbitmap *b, uint64_t addr)
{
	uint64_t lo, hi;

	if (!dbm_clip(b, addr, 1, &lo, &hi))
		return false;
	return vmig_bitmap_test(b->words,
				(addr - b->base) >> __builtin_ctzll(b->pgsize));
}

/*
 * Source granules finer than the pages: granules never straddle pages
 * (both bases are multiples of the granule), but the first and the last
 * page of [lo, hi] may hold granules from outside the source or the
 * bitmap; those two are ORed on their own.
 */
static void dbm_or_finer(struct vmig_dbitmap *b, uint64_t lo, uint64_t hi,
			 uint64_t src_base, const uint64_t *src,
			 unsigned int lgs)
{
	unsigned int lgd = __builtin_ctzll(b->pgsize);
	uint64_t pgmask = b->pgsize - 1;
	uint64_t p0 = (lo - b->base) >> lgd;
	uint64_t p_end = ((hi - b->base) >> lgd) + 1;
	uint64_t s0 = (lo - src_base) >> lgs;
	uint64_t s_end = ((hi - src_base) >> lgs) + 1;
	uint64_t cnt;

	if (p_end - p0 == 1) {
		if (vmig_bitmap_any(src, s0, s_end - s0))
			bit_set(b->words, p0);
		return;
	}
	if ((lo - b->base) & pgmask) {
		/* Granules from lo to the end of page p0. */
		cnt = (b->pgsize - ((lo - b->base) & pgmask)) >> lgs;
		if (vmig_bitmap_any(src, s0, cnt))
			bit_set(b->words, p0);
		s0 += cnt;
		p0++;
	}
	if (((hi - b->base) & pgmask) != pgmask) {
		/* Granules from the start of the last page to hi. */
		cnt = (((hi - b->base) & pgmask) >> lgs) + 1;
		if (vmig_bitmap_any(src, s_end - cnt, cnt))
			bit_set(b->words, p_end - 1);
		s_end -= cnt;
		p_end--;
	}
	if (p0 < p_end)
		vmig_bm_convert_finer(b->words, p0, src, s0, p_end - p0, lgd - lgs);
}

/*
 * Source granules coarser than the pages: every page lies in one granule,
 * but b's base may cut a granule at either end of [lo, hi]; those two
 * fill their pages on their own.
 */
static void dbm_or_coarser(struct vmig_dbitmap *b, uint64_t lo, uint64_t hi,
			   uint64_t src_base, const uint64_t *src,
			   unsigned int lgs)
{
	unsigned int lgd = __builtin_ctzll(b->pgsize);
	uint64_t gmask = (1ULL << lgs) - 1;
	uint64_t p0 = (lo - b->base) >> lgd;
	uint64_t p_end = ((hi - b->base) >> lgd) + 1;
	uint64_t g0 = (lo - src_base) >> lgs;
	uint64_t g_end = ((hi - src_base) >> lgs) + 1;
	uint64_t cnt;

	if (g_end - g0 == 1) {
		if (vmig_bitmap_test(src, g0))
			vmig_bitmap_set(b->words, p0, p_end - p0);
		return;
	}
	if ((lo - src_base) & gmask) {
		/* Pages from lo to the end of granule g0. */
		cnt = ((gmask + 1) - ((lo - src_base) & gmask)) >> lgd;
		if (vmig_bitmap_test(src, g0))
			vmig_bitmap_set(b->words, p0, cnt);
		p0 += cnt;
		g0++;
	}
	if (((hi - src_base) & gmask) != gmask) {
		/* Pages from the start of the last granule to hi. */
		cnt = (((hi - src_base) & gmask) >> lgd) + 1;
		if (vmig_bitmap_test(src, g_end - 1))
			vmig_bitmap_set(b->words, p_end - cnt, cnt);
		p_end -= cnt;
		g_end--;
	}
	if (g0 < g_end)
		vmig_bm_convert_coarser(b->words, p0, src, g0, g_end - g0, lgs - lgd);
}

int vmig_dbitmap_or_bitmap(struct vmig_dbitmap *b, uint64_t src_base,
			   const uint64_t *src, uint64_t src_pgsize,
			   uint64_t src_len)
{
	unsigned int lgd, lgs;
	uint64_t lo, hi;

	if (!vmig_bm_is_pow2(src_pgsize) || src_base % src_pgsize ||
	    src_len % src_pgsize)
		return -EINVAL;
	if (src_len && src_len - 1 > UINT64_MAX - src_base)
		return -EINVAL;
	if (!dbm_clip(b, src_base, src_len, &lo, &hi))
		return 0;
	lgd = __builtin_ctzll(b->pgsize);
	lgs = __builtin_ctzll(src_pgsize);
	if (lgs == lgd)
		vmig_bitmap_or_at(b->words, (lo - b->base) >> lgd, src,
				  (lo - src_base) >> lgs,
				  ((hi - lo) >> lgd) + 1);
	else if (lgs < lgd)
		dbm_or_finer(b, lo, hi, src_base, src, lgs);
	else
		dbm_or_coarser(b, lo, hi, src_base, src, lgs);
	return 0;
}
