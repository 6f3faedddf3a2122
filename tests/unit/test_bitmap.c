/*
 * test_bitmap.c: every function of core/bitmap.h against a naive
 * bit-at-a-time reference written here, on thousands of random inputs
 * from fixed seeds, plus a few worked examples.
 *
 * Every buffer a function sees is sized to the bits it is given, and the
 * tests run twice: once with canary words after each buffer (a write past
 * the range that changes a word shows), once with each buffer ending at an
 * inaccessible page (any access past it, even a read or an OR of zero,
 * faults).
 */
#include <errno.h>
#include <inttypes.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

#include "core/bitmap.h"
#include "unit/testutil.h"

#ifdef __SANITIZE_ADDRESS__
/*
 * The -ENOMEM tests ask for more than exists: ASan must answer NULL. The
 * runtime finds this hook by its dynamic symbol, hence the visibility.
 */
const char *__asan_default_options(void)
	__attribute__((visibility("default")));
const char *__asan_default_options(void)
{
	return "allocator_may_return_null=1";
}
#endif

typedef unsigned __int128 u128;

#define NCASES 3000
#define TOP ((u128)1 << 64)

/* ------------------------------------------------------------------ */
/* Random numbers, reports                                            */

static uint64_t rng_state;

static void rng_seed(uint64_t seed)
{
	rng_state = seed;
}

/* splitmix64: fixed seeds make every failure reproducible. */
static uint64_t rnd(void)
{
	uint64_t z = (rng_state += 0x9e3779b97f4a7c15ULL);

	z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ULL;
	z = (z ^ (z >> 27)) * 0x94d049bb133111ebULL;
	return z ^ (z >> 31);
}

static uint64_t rnd_below(uint64_t n)
{
	return n ? rnd() % n : 0;
}

static uint64_t min_u64(uint64_t a, uint64_t b)
{
	return a < b ? a : b;
}

static uint64_t max_u64(uint64_t a, uint64_t b)
{
	return a > b ? a : b;
}

/* One line for each of the first failures; CUnit counts them all. */
static unsigned int nmsgs;

#define EXPECT(cond, ...)                                                 \
	do {                                                              \
		bool ok_ = (cond);                                        \
		CU_assertImplementation(ok_, __LINE__, #cond, __FILE__,   \
					"", CU_FALSE);                    \
		if (!ok_ && nmsgs++ < 20) {                               \
			printf("\n    %s:%d: %s: ", __func__, __LINE__,   \
			       #cond);                                    \
			printf(__VA_ARGS__);                              \
		}                                                         \
	} while (0)

/* ------------------------------------------------------------------ */
/* Buffers                                                            */

#define NCANARY 4

static const uint64_t canary[NCANARY] = {
	0, ~0ULL, 0x5a5a5a5a5a5a5a5aULL, 0xa5a5a5a5a5a5a5a5ULL,
};

static bool guard_mode;

struct tbuf {
	uint64_t *w;
	uint64_t nw;
	void *map;
	size_t maplen;
};

static uint64_t *tb_alloc(struct tbuf *b, uint64_t nw)
{
	size_t pg = (size_t)sysconf(_SC_PAGESIZE), bytes = nw * 8, span;

	b->nw = nw;
	b->map = NULL;
	if (guard_mode) {
		span = (bytes + pg - 1) / pg * pg;
		b->maplen = span + pg;
		b->map = mmap(NULL, b->maplen, PROT_READ | PROT_WRITE,
			      MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
		if (b->map == MAP_FAILED ||
		    mprotect((char *)b->map + span, pg, PROT_NONE)) {
			perror("guard page");
			abort();
		}
		b->w = (uint64_t *)((char *)b->map + span - bytes);
	} else {
		b->w = malloc((nw + NCANARY) * 8);
		if (!b->w)
			abort();
		memcpy(b->w + nw, canary, sizeof(canary));
	}
	return b->w;
}

static bool tb_intact(const struct tbuf *b)
{
	return guard_mode || !memcmp(b->w + b->nw, canary, sizeof(canary));
}

static void tb_free(struct tbuf *b)
{
	if (b->map)
		munmap(b->map, b->maplen);
	else
		free(b->w);
	b->w = NULL;
}

/* A plain copy for the reference; never NULL, even for no words. */
static uint64_t *copy_words(const uint64_t *w, uint64_t nw)
{
	uint64_t *c = malloc((nw + 1) * 8);

	if (!c)
		abort();
	memcpy(c, w, nw * 8);
	return c;
}

static uint64_t *zero_words(uint64_t nw)
{
	uint64_t *c = calloc(nw + 1, 8);

	if (!c)
		abort();
	return c;
}

/* ------------------------------------------------------------------ */
/* Inputs                                                             */

enum density {
	D_ZERO, D_VSPARSE, D_SPARSE, D_HALF, D_DENSE, D_FULL, D_RUNS,
	D_COUNT
};

static const char *const dname[D_COUNT] = {
	"zero", "very sparse", "sparse", "half", "dense", "full", "runs",
};

/* Fills whole words, so bits past any range hold garbage too. */
static void fill(uint64_t *w, uint64_t nw, int dens)
{
	uint64_t i, bit, run;
	bool on;

	for (i = 0; i < nw; i++) {
		switch (dens) {
		case D_ZERO:
			w[i] = 0;
			break;
		case D_VSPARSE: /* about one bit in 1024 */
			w[i] = rnd() & rnd() & rnd() & rnd() & rnd() &
			       rnd() & rnd() & rnd() & rnd() & rnd();
			break;
		case D_SPARSE: /* one in 32 */
			w[i] = rnd() & rnd() & rnd() & rnd() & rnd();
			break;
		case D_HALF:
			w[i] = rnd();
			break;
		case D_DENSE:
			w[i] = rnd() | rnd() | rnd() | rnd() | rnd();
			break;
		default:
			w[i] = ~0ULL;
			break;
		}
	}
	if (dens != D_RUNS)
		return;
	on = rnd() & 1;
	for (bit = 0; bit < nw * 64; on = !on) {
		run = 1 + rnd_below(rnd() & 1 ? 8 : 200);
		for (; run && bit < nw * 64; run--, bit++)
			if (!on)
				w[bit / 64] &= ~(1ULL << (bit % 64));
	}
}

static int rnd_density(void)
{
	return rnd_below(D_COUNT);
}

/* A bit position in [0, max], often at or next to a word boundary. */
static uint64_t pick_pos(uint64_t max)
{
	uint64_t p;

	switch (rnd_below(6)) {
	case 0:
		return 0;
	case 1:
		return max;
	case 2:
		p = rnd_below(max / 64 + 1) * 64;
		break;
	case 3:
		p = rnd_below(max / 64 + 1) * 64 + 63;
		break;
	case 4:
		p = rnd_below(max / 64 + 1) * 64 + 1;
		break;
	default:
		p = rnd_below(max + 1);
		break;
	}
	return min_u64(p, max);
}

/* A length in [0, max]: often empty, short, or a word multiple. */
static uint64_t pick_len(uint64_t max)
{
	uint64_t n;

	switch (rnd_below(7)) {
	case 0:
		return 0;
	case 1:
		n = 1 + rnd_below(3);
		break;
	case 2:
		n = 64 * (1 + rnd_below(4));
		break;
	case 3:
		n = 64 * rnd_below(4) + 63;
		break;
	case 4:
		return max;
	default:
		n = rnd_below(max + 1);
		break;
	}
	return min_u64(n, max);
}

/* The size of a case: mostly a few words, sometimes many. */
static uint64_t pick_total(void)
{
	if (rnd_below(16) == 0)
		return 64 * (100 + rnd_below(200)) + rnd_below(64);
	return 64 * rnd_below(8) + rnd_below(128);
}

/* ------------------------------------------------------------------ */
/* The reference: one bit at a time                                   */

static bool rget(const uint64_t *m, uint64_t i)
{
	return (m[i / 64] >> (i % 64)) & 1;
}

static void rput(uint64_t *m, uint64_t i, bool v)
{
	if (v)
		m[i / 64] |= 1ULL << (i % 64);
	else
		m[i / 64] &= ~(1ULL << (i % 64));
}

/* ------------------------------------------------------------------ */
/* Suites: the same tests with canaries and with guard pages           */

static int suite_canary(void)
{
	guard_mode = false;
	nmsgs = 0;
	return 0;
}

static int suite_guard(void)
{
	guard_mode = true;
	nmsgs = 0;
	return 0;
}

static const char *const impl_names[] = { "generic", "popcnt", "avx2" };

#define NIMPL (sizeof(impl_names) / sizeof(impl_names[0]))

/* Selects variant i; false if this CPU lacks it. */
static bool use_impl(size_t i)
{
	int r = vmig_bitmap_select_impl(impl_names[i]);

	if (r == -ENOTSUP)
		return false;
	EXPECT(r == 0, "select %s: %d\n", impl_names[i], r);
	EXPECT(!strcmp(vmig_bitmap_impl_name(), impl_names[i]),
	       "selected %s, in use %s\n", impl_names[i],
	       vmig_bitmap_impl_name());
	return r == 0;
}

/* ------------------------------------------------------------------ */
/* set, clear                                                         */

static void test_set_clear(void)
{
	struct tbuf b;
	uint64_t c, i, total, start, n, nw, *ref;
	int dens;
	bool set;

	rng_seed(1);
	for (c = 0; c < 2 * NCASES; c++) {
		total = pick_total();
		start = pick_pos(total);
		n = pick_len(total - start);
		nw = vmig_bitmap_words(start + n);
		set = c & 1;
		dens = rnd_density();
		fill(tb_alloc(&b, nw), nw, dens);
		ref = copy_words(b.w, nw);
		for (i = start; i < start + n; i++)
			rput(ref, i, set);
		if (set)
			vmig_bitmap_set(b.w, start, n);
		else
			vmig_bitmap_clear(b.w, start, n);
		EXPECT(!memcmp(b.w, ref, nw * 8),
		       "%s start %" PRIu64 " n %" PRIu64 " %s\n",
		       set ? "set" : "clear", start, n, dname[dens]);
		EXPECT(tb_intact(&b), "%s start %" PRIu64 " n %" PRIu64 "\n",
		       set ? "set" : "clear", start, n);
		free(ref);
		tb_free(&b);
	}
}

/* ------------------------------------------------------------------ */
/* test, any, count                                                   */

static void test_any_count(void)
{
	struct tbuf b;
	uint64_t c, i, total, start, n, nw, cnt, got;
	size_t k;
	int dens;

	for (k = 0; k < NIMPL; k++) {
		if (!use_impl(k))
			continue;
		rng_seed(2);
		for (c = 0; c < NCASES; c++) {
			total = pick_total();
			start = pick_pos(total);
			n = pick_len(total - start);
			nw = vmig_bitmap_words(start + n);
			dens = rnd_density();
			fill(tb_alloc(&b, nw), nw, dens);
			cnt = 0;
			for (i = start; i < start + n; i++) {
				cnt += rget(b.w, i);
				if (!(i % 7))
					EXPECT(vmig_bitmap_test(b.w, i) ==
					       rget(b.w, i),
					       "bit %" PRIu64 "\n", i);
			}
			got = vmig_bitmap_count(b.w, start, n);
			EXPECT(got == cnt,
			       "%s start %" PRIu64 " n %" PRIu64 " %s: %"
			       PRIu64 " != %" PRIu64 "\n", impl_names[k],
			       start, n, dname[dens], got, cnt);
			EXPECT(vmig_bitmap_any(b.w, start, n) == (cnt > 0),
			       "start %" PRIu64 " n %" PRIu64 " %s\n", start,
			       n, dname[dens]);
			tb_free(&b);
		}
	}
	vmig_bitmap_select_impl(NULL);
}

/* ------------------------------------------------------------------ */
/* or, or_at                                                          */

static void test_or(void)
{
	struct tbuf d, s;
	uint64_t c, i, nbits, nw, *ref;

	rng_seed(3);
	for (c = 0; c < NCASES; c++) {
		nbits = pick_len(pick_total());
		nw = vmig_bitmap_words(nbits);
		fill(tb_alloc(&d, nw), nw, rnd_density());
		fill(tb_alloc(&s, nw), nw, rnd_density());
		ref = copy_words(d.w, nw);
		for (i = 0; i < nbits; i++)
			if (rget(s.w, i))
				rput(ref, i, true);
		vmig_bitmap_or(d.w, s.w, nbits);
		EXPECT(!memcmp(d.w, ref, nw * 8), "nbits %" PRIu64 "\n",
		       nbits);
		EXPECT(tb_intact(&d) && tb_intact(&s), "nbits %" PRIu64 "\n",
		       nbits);
		free(ref);
		tb_free(&d);
		tb_free(&s);
	}
}

static void or_at_case(uint64_t ds, uint64_t ss, uint64_t n)
{
	struct tbuf d, s;
	uint64_t dnw = vmig_bitmap_words(ds + n);
	uint64_t snw = vmig_bitmap_words(ss + n);
	uint64_t i, *ref;

	fill(tb_alloc(&d, dnw), dnw, rnd_density());
	fill(tb_alloc(&s, snw), snw, rnd_density());
	ref = copy_words(d.w, dnw);
	for (i = 0; i < n; i++)
		if (rget(s.w, ss + i))
			rput(ref, ds + i, true);
	vmig_bitmap_or_at(d.w, ds, s.w, ss, n);
	EXPECT(!memcmp(d.w, ref, dnw * 8),
	       "dst %" PRIu64 " src %" PRIu64 " n %" PRIu64 "\n", ds, ss, n);
	EXPECT(tb_intact(&d) && tb_intact(&s),
	       "dst %" PRIu64 " src %" PRIu64 " n %" PRIu64 "\n", ds, ss, n);
	free(ref);
	tb_free(&d);
	tb_free(&s);
}

static void test_or_at(void)
{
	unsigned int doff, soff, k;

	rng_seed(4);
	/* Every pair of in-word offsets, with short, long and empty runs. */
	for (doff = 0; doff < 64; doff++)
		for (soff = 0; soff < 64; soff++)
			for (k = 0; k < 3; k++)
				or_at_case(doff + 64 * rnd_below(3),
					   soff + 64 * rnd_below(3),
					   pick_len(64 * 6));
	for (k = 0; k < NCASES; k++)
		or_at_case(pick_pos(64 * 4), pick_pos(64 * 4),
			   pick_len(pick_total()));
}

/* ------------------------------------------------------------------ */
/* merge_count                                                        */

#define MAXSRC 10

static void merge_case(size_t impl, uint64_t c)
{
	struct tbuf d, s[MAXSRC];
	const uint64_t *src[MAXSRC];
	uint64_t nbits, nw, i, cnt = 0, got, *ref;
	size_t nsrc, j;

	nsrc = c % 6;
	if (c % 13 == 0)
		nsrc = 6 + rnd_below(MAXSRC - 5); /* several passes a chunk */
	switch (rnd_below(32)) {
	case 0: /* many 4 KiB chunks, an odd tail */
		nbits = 64 * (1024 + rnd_below(700)) + rnd_below(64);
		break;
	case 1:
	case 2:
		nbits = 64 * rnd_below(40);
		break;
	default:
		nbits = pick_len(64 * 20);
		break;
	}
	nw = vmig_bitmap_words(nbits);
	for (j = 0; j < nsrc; j++) {
		fill(tb_alloc(&s[j], nw), nw, rnd_density());
		src[j] = s[j].w;
	}
	fill(tb_alloc(&d, nw), nw, D_HALF); /* garbage to overwrite */
	ref = zero_words(nw);
	for (i = 0; i < nbits; i++) {
		for (j = 0; j < nsrc; j++) {
			if (rget(src[j], i)) {
				rput(ref, i, true);
				cnt++;
				break;
			}
		}
	}
	got = vmig_bitmap_merge_count(d.w, src, nsrc, nbits);
	EXPECT(got == cnt, "%s nsrc %zu nbits %" PRIu64 ": %" PRIu64
	       " != %" PRIu64 "\n", impl_names[impl], nsrc, nbits, got, cnt);
	/* Whole words: bits past nbits must have been cleared. */
	EXPECT(!memcmp(d.w, ref, nw * 8), "%s nsrc %zu nbits %" PRIu64 "\n",
	       impl_names[impl], nsrc, nbits);
	EXPECT(tb_intact(&d), "nbits %" PRIu64 "\n", nbits);
	for (j = 0; j < nsrc; j++) {
		EXPECT(tb_intact(&s[j]), "nbits %" PRIu64 "\n", nbits);
		tb_free(&s[j]);
	}
	free(ref);
	tb_free(&d);
}

static void test_merge_count(void)
{
	size_t k, nimpl = 0;
	uint64_t c;

	for (k = 0; k < NIMPL; k++) {
		if (!use_impl(k)) {
			printf("(%s: not on this CPU) ", impl_names[k]);
			continue;
		}
		nimpl++;
		rng_seed(5);
		for (c = 0; c < NCASES; c++)
			merge_case(k, c);
	}
	CU_ASSERT(nimpl >= 1);
	vmig_bitmap_select_impl(NULL);
}

static void test_select_impl(void)
{
	bool x86 = false, best_avx2 = false, best_popcnt = false;

#if defined(__x86_64__) || defined(__i386__)
	x86 = true;
	__builtin_cpu_init();
	best_popcnt = __builtin_cpu_supports("popcnt");
	best_avx2 = best_popcnt && __builtin_cpu_supports("avx2");
#endif
	CU_ASSERT_EQUAL(vmig_bitmap_select_impl("sse9"), -ENOENT);
	CU_ASSERT_EQUAL(vmig_bitmap_select_impl("generic"), 0);
	CU_ASSERT_STRING_EQUAL(vmig_bitmap_impl_name(), "generic");
	CU_ASSERT_EQUAL(vmig_bitmap_select_impl("avx2"),
			best_avx2 ? 0 : x86 ? -ENOTSUP : -ENOENT);
	CU_ASSERT_EQUAL(vmig_bitmap_select_impl(NULL), 0);
	CU_ASSERT_STRING_EQUAL(vmig_bitmap_impl_name(),
			       best_avx2 ? "avx2" :
			       best_popcnt ? "popcnt" : "generic");
}

/* ------------------------------------------------------------------ */
/* next_run                                                           */

static void test_next_run(void)
{
	struct tbuf b;
	uint64_t c, i, nbits, nw, pos0, pos, st, len, prev_end, iter;
	uint64_t *recon;
	bool first, ok;
	int dens;

	rng_seed(6);
	for (c = 0; c < NCASES; c++) {
		nbits = pick_len(pick_total());
		nw = vmig_bitmap_words(nbits);
		dens = c % 3 ? D_RUNS : rnd_density();
		fill(tb_alloc(&b, nw), nw, dens);
		pos0 = pick_pos(nbits + 2);
		recon = zero_words(nw);
		pos = pos0;
		prev_end = 0;
		first = true;
		iter = 0;
		while (vmig_bitmap_next_run(b.w, nbits, &pos, &st, &len)) {
			/* Runs are maximal, in order, inside the range. */
			ok = len > 0 && st >= pos0 && st + len <= nbits &&
			     pos == st + len && (first || st > prev_end);
			EXPECT(ok, "nbits %" PRIu64 " pos0 %" PRIu64 " run %"
			       PRIu64 "+%" PRIu64 " pos %" PRIu64 "\n", nbits,
			       pos0, st, len, pos);
			if (!ok || ++iter > nbits)
				break;
			for (i = st; i < st + len; i++)
				rput(recon, i, true);
			prev_end = st + len;
			first = false;
		}
		ok = true;
		for (i = pos0; i < nbits; i++)
			ok = ok && rget(recon, i) == rget(b.w, i);
		EXPECT(ok, "nbits %" PRIu64 " pos0 %" PRIu64 " %s\n", nbits,
		       pos0, dname[dens]);
		free(recon);
		tb_free(&b);
	}
}

/* ------------------------------------------------------------------ */
/* convert                                                            */

/* The reference conversion: by address, whatever the ratio. */
static void ref_convert(uint64_t *dst, uint64_t dpg, const uint64_t *src,
			uint64_t spg, uint64_t nsrc)
{
	uint64_t j, p, p_last;

	for (j = 0; j < nsrc; j++) {
		if (!rget(src, j))
			continue;
		p_last = ((j + 1) * spg - 1) / dpg;
		for (p = j * spg / dpg; p <= p_last; p++)
			rput(dst, p, true);
	}
}

static void convert_case(uint64_t spg, uint64_t dpg)
{
	struct tbuf d, s;
	uint64_t big = max_u64(spg, dpg), per = big / min_u64(spg, dpg);
	uint64_t kmax = per >= 8192 ? 1 : 8192 / per, k, length, nsrc, ndst;
	uint64_t *ref;
	int r, dens;

	k = rnd_below(4) ? rnd_below(kmax + 1) : kmax;
	length = k * big;
	nsrc = length / spg;
	ndst = length / dpg;
	dens = rnd_density();
	fill(tb_alloc(&s, vmig_bitmap_words(nsrc)), vmig_bitmap_words(nsrc),
	     dens);
	fill(tb_alloc(&d, vmig_bitmap_words(ndst)), vmig_bitmap_words(ndst),
	     rnd_below(3) ? D_ZERO : rnd_density());
	ref = copy_words(d.w, d.nw);
	ref_convert(ref, dpg, s.w, spg, nsrc);
	r = vmig_bitmap_convert(d.w, dpg, s.w, spg, length);
	EXPECT(r == 0, "%d\n", r);
	EXPECT(!memcmp(d.w, ref, d.nw * 8),
	       "src %" PRIu64 " dst %" PRIu64 " length %" PRIu64 " %s\n",
	       spg, dpg, length, dname[dens]);
	EXPECT(tb_intact(&d) && tb_intact(&s),
	       "src %" PRIu64 " dst %" PRIu64 " length %" PRIu64 "\n", spg,
	       dpg, length);
	free(ref);
	tb_free(&d);
	tb_free(&s);
}

static void test_convert(void)
{
	static const uint64_t pairs[][2] = {
		{ 2048, 4096 }, { 1024, 4096 }, { 4096, 4096 },
		{ 2 << 20, 4096 }, { 65536, 4096 }, { 4096, 2 << 20 },
	};
	unsigned int i, c, lgs, lgd, lo, hi;

	rng_seed(7);
	for (i = 0; i < sizeof(pairs) / sizeof(pairs[0]); i++)
		for (c = 0; c < NCASES / 6; c++)
			convert_case(pairs[i][0], pairs[i][1]);
	/* Every ratio up to 2^13 either way, at assorted page sizes. */
	for (c = 0; c < NCASES; c++) {
		lgd = rnd_below(24);
		lo = lgd >= 13 ? lgd - 13 : 0;
		hi = lgd + 13;
		lgs = lo + rnd_below(hi - lo + 1);
		convert_case(1ULL << lgs, 1ULL << lgd);
	}
}

static void test_convert_einval(void)
{
	static const uint64_t bad[][3] = { /* src, dst, length */
		{ 0, 4096, 4096 }, { 4096, 0, 4096 }, { 3, 4096, 12288 },
		{ 4096, 6144, 12288 * 4 }, { 4097, 4096, 4096 * 4097 },
		{ 8192, 4096, 4096 }, { 4096, 8192, 4096 },
		{ 2048, 4096, 2048 }, { 4096, 4096, 100 },
	};
	uint64_t src[2] = { ~0ULL, ~0ULL }, dst[4] = { 1, 2, 3, 4 };
	unsigned int i;

	for (i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		CU_ASSERT_EQUAL(vmig_bitmap_convert(dst, bad[i][1], src,
						    bad[i][0], bad[i][2]),
				-EINVAL);
		CU_ASSERT(dst[0] == 1 && dst[1] == 2 && dst[2] == 3 &&
			  dst[3] == 4);
	}
	/* An empty length converts nothing, whatever the sizes. */
	CU_ASSERT_EQUAL(vmig_bitmap_convert(dst, 4096, src, 2 << 20, 0), 0);
	CU_ASSERT(dst[0] == 1 && dst[1] == 2 && dst[2] == 3 && dst[3] == 4);
}

/* The examples of the contract, spelled out. */
static void test_convert_examples(void)
{
	uint64_t src[8] = { 0 }, dst[16] = { 0 };
	unsigned int i;

	/* 2 KiB granules 1 and 2 lie in 4 KiB pages 0 and 1, 7 in page 3. */
	src[0] = 1 << 1 | 1 << 2 | 1 << 7;
	CU_ASSERT_EQUAL(vmig_bitmap_convert(dst, 4096, src, 2048, 8 * 2048),
			0);
	CU_ASSERT_EQUAL(dst[0], 0xb);
	/* A dirty 2 MiB granule dirties its 512 pages, no more. */
	memset(dst, 0, sizeof(dst));
	src[0] = 2;
	CU_ASSERT_EQUAL(vmig_bitmap_convert(dst, 4096, src, 2 << 20, 4 << 20),
			0);
	for (i = 0; i < 16; i++)
		CU_ASSERT_EQUAL(dst[i], i < 8 ? 0 : ~0ULL);
	/* 512 4 KiB granules into one 2 MiB page: the last one is enough. */
	memset(dst, 0, sizeof(dst));
	memset(src, 0, sizeof(src));
	src[7] = 1ULL << 63;
	CU_ASSERT_EQUAL(vmig_bitmap_convert(dst, 2 << 20, src, 4096, 2 << 20),
			0);
	CU_ASSERT_EQUAL(dst[0], 1);
}

/* ------------------------------------------------------------------ */
/* dbitmap                                                            */

/* The reference model: one byte a page, and 128-bit addresses. */
struct dref {
	uint64_t base, pgsize, nbits;
	unsigned char *bit;
};

static u128 page_lo(const struct dref *r, uint64_t p)
{
	return (u128)r->base + (u128)p * r->pgsize;
}

static u128 clip_end(uint64_t addr, uint64_t len)
{
	u128 end = (u128)addr + len;

	return end > TOP ? TOP : end;
}

static void dref_set(struct dref *r, uint64_t addr, uint64_t len)
{
	u128 end = clip_end(addr, len);
	uint64_t p;

	for (p = 0; len && p < r->nbits; p++)
		if (page_lo(r, p) < end && addr < page_lo(r, p) + r->pgsize)
			r->bit[p] = 1;
}

static void dref_clear(struct dref *r, uint64_t addr, uint64_t len)
{
	u128 end = clip_end(addr, len);
	uint64_t p;

	for (p = 0; p < r->nbits; p++)
		if (page_lo(r, p) >= addr && page_lo(r, p) + r->pgsize <= end)
			r->bit[p] = 0;
}

static bool dref_test(const struct dref *r, uint64_t addr)
{
	u128 a = addr;

	if (a < r->base || a >= page_lo(r, r->nbits))
		return false;
	return r->bit[(a - r->base) / r->pgsize];
}

static int dref_or(struct dref *r, uint64_t sbase, const uint64_t *src,
		   uint64_t spg, uint64_t slen)
{
	u128 b0 = r->base, bend = page_lo(r, r->nbits), glo, ghi, lo, hi, p;
	uint64_t j;

	if (!spg || (spg & (spg - 1)) || sbase % spg || slen % spg ||
	    (u128)sbase + slen > TOP)
		return -EINVAL;
	for (j = 0; j < slen / spg; j++) {
		if (!rget(src, j))
			continue;
		glo = (u128)sbase + (u128)j * spg;
		ghi = glo + spg;
		lo = glo > b0 ? glo : b0;
		hi = ghi < bend ? ghi : bend;
		if (lo >= hi)
			continue;
		for (p = (lo - b0) / r->pgsize; p <= (hi - 1 - b0) / r->pgsize;
		     p++)
			r->bit[p] = 1;
	}
	return 0;
}

/* The bitmap matches the model, and nothing past nbits is set. */
static bool dbm_matches(const struct vmig_dbitmap *b, const struct dref *r)
{
	uint64_t p, nw = vmig_bitmap_words(b->nbits);

	for (p = 0; p < b->nbits; p++)
		if (rget(b->words, p) != r->bit[p])
			return false;
	return !(b->nbits % 64) ||
	       !(b->words[nw - 1] >> (b->nbits % 64));
}

/* An address around the bitmap, aligned or not, possibly wrapped. */
static uint64_t pick_addr(const struct vmig_dbitmap *b)
{
	uint64_t span = b->nbits * b->pgsize, a;

	a = b->base + rnd_below(span + 6 * b->pgsize) - 3 * b->pgsize;
	switch (rnd_below(3)) {
	case 0:
		return a & ~(b->pgsize - 1);
	case 1:
		return (a & ~(b->pgsize - 1)) + b->pgsize / 2;
	default:
		return a;
	}
}

static uint64_t pick_bytes(const struct vmig_dbitmap *b)
{
	uint64_t span = b->nbits * b->pgsize;

	switch (rnd_below(7)) {
	case 0:
		return 0;
	case 1:
		return 1 + rnd_below(3);
	case 2:
		return b->pgsize * (1 + rnd_below(4));
	case 3:
		return UINT64_MAX - rnd_below(2 * b->pgsize);
	case 4:
		return rnd_below(4 * b->pgsize);
	default:
		return rnd_below(span + 4 * b->pgsize);
	}
}

static void dbm_or_case(struct vmig_dbitmap *b, struct dref *r)
{
	struct tbuf s;
	unsigned int lgd = __builtin_ctzll(b->pgsize), lgs;
	uint64_t spg, span, nsrc, k, sbase;
	int got, want, dens;

	/* From 9 steps finer (down to bytes) to 9 coarser. */
	lgs = lgd + rnd_below(19) - 9;
	spg = 1ULL << lgs;
	span = b->nbits * b->pgsize + 8 * max_u64(b->pgsize, spg);
	nsrc = rnd_below(min_u64(4096, span / spg + 2) + 1);
	k = b->nbits * b->pgsize / spg + 4;
	sbase = (b->base & ~(spg - 1)) + (rnd_below(2 * k + 1) - k) * spg;
	dens = rnd_density();
	fill(tb_alloc(&s, vmig_bitmap_words(nsrc)), vmig_bitmap_words(nsrc),
	     dens == D_HALF ? D_VSPARSE : dens);
	want = dref_or(r, sbase, s.w, spg, nsrc * spg);
	got = vmig_dbitmap_or_bitmap(b, sbase, s.w, spg, nsrc * spg);
	EXPECT(got == want && dbm_matches(b, r),
	       "base %#" PRIx64 " pg %" PRIu64 " nbits %" PRIu64
	       " src base %#" PRIx64 " pg %" PRIu64 " bits %" PRIu64
	       ": %d %d\n", b->base, b->pgsize, b->nbits, sbase, spg, nsrc,
	       got, want);
	EXPECT(tb_intact(&s), "src\n");
	tb_free(&s);
}

static void test_dbitmap_random(void)
{
	struct vmig_dbitmap b;
	struct dref r;
	struct tbuf w;
	uint64_t c, op, addr, len;
	unsigned int lgd;

	rng_seed(8);
	for (c = 0; c < NCASES / 2; c++) {
		lgd = 9 + rnd_below(8);
		b.pgsize = 1ULL << lgd;
		b.nbits = rnd_below(8) ? 1 + rnd_below(300) : rnd_below(3);
		switch (rnd_below(4)) {
		case 0: /* near 0: sources and ranges wrap below it */
			b.base = rnd_below(4) * b.pgsize;
			break;
		case 1: /* ending at 2^64 */
			b.base = 0 - (b.nbits << lgd);
			break;
		case 2: /* just below it */
			b.base = 0 - ((b.nbits + 1 + rnd_below(4)) << lgd);
			break;
		default:
			b.base = (rnd() >> 1) & ~(b.pgsize - 1);
			break;
		}
		/* Built by hand, so that the words get canaries or guards. */
		b.words = tb_alloc(&w, vmig_bitmap_words(b.nbits));
		memset(b.words, 0, w.nw * 8);
		r.base = b.base;
		r.pgsize = b.pgsize;
		r.nbits = b.nbits;
		r.bit = calloc(b.nbits + 1, 1);
		if (!r.bit)
			abort();
		for (op = 0; op < 24; op++) {
			addr = pick_addr(&b);
			len = pick_bytes(&b);
			switch (rnd_below(5)) {
			case 0:
			case 1:
				vmig_dbitmap_set_range(&b, addr, len);
				dref_set(&r, addr, len);
				break;
			case 2:
				vmig_dbitmap_clear_range(&b, addr, len);
				dref_clear(&r, addr, len);
				break;
			case 3:
				EXPECT(vmig_dbitmap_test_addr(&b, addr) ==
				       dref_test(&r, addr),
				       "addr %#" PRIx64 "\n", addr);
				break;
			default:
				dbm_or_case(&b, &r);
				break;
			}
			EXPECT(dbm_matches(&b, &r),
			       "base %#" PRIx64 " pg %" PRIu64 " nbits %"
			       PRIu64 " addr %#" PRIx64 " len %#" PRIx64 "\n",
			       b.base, b.pgsize, b.nbits, addr, len);
			EXPECT(tb_intact(&w), "words\n");
		}
		free(r.bit);
		tb_free(&w);
	}
}

static void test_dbitmap_init(void)
{
	struct vmig_dbitmap b;
	uint64_t i;

	CU_ASSERT_EQUAL(vmig_dbitmap_init(&b, 0x100000, 0x41000, 4096), 0);
	CU_ASSERT_EQUAL(b.base, 0x100000);
	CU_ASSERT_EQUAL(b.pgsize, 4096);
	CU_ASSERT_EQUAL(b.nbits, 0x41);
	CU_ASSERT_PTR_NOT_NULL_FATAL(b.words);
	for (i = 0; i < 2; i++)
		CU_ASSERT_EQUAL(b.words[i], 0);
	vmig_dbitmap_fini(&b);
	CU_ASSERT_PTR_NULL(b.words);
	vmig_dbitmap_fini(&b); /* twice is harmless */

	CU_ASSERT_EQUAL(vmig_dbitmap_init(&b, 0, 4096, 0), -EINVAL);
	CU_ASSERT_EQUAL(vmig_dbitmap_init(&b, 0, 3 * 6144, 6144), -EINVAL);
	CU_ASSERT_EQUAL(vmig_dbitmap_init(&b, 2048, 4096, 4096), -EINVAL);
	CU_ASSERT_EQUAL(vmig_dbitmap_init(&b, 0, 6144, 4096), -EINVAL);
	/* Past 2^64, and one page short of that. */
	CU_ASSERT_EQUAL(vmig_dbitmap_init(&b, 0 - 4096ULL, 8192, 4096),
			-EINVAL);
	CU_ASSERT_EQUAL(vmig_dbitmap_init(&b, 0 - 8192ULL, 8192, 4096), 0);
	CU_ASSERT_EQUAL(b.nbits, 2);
	vmig_dbitmap_fini(&b);
	/* Empty: valid, and every operation is a no-op. */
	CU_ASSERT_EQUAL(vmig_dbitmap_init(&b, 4096, 0, 4096), 0);
	CU_ASSERT_EQUAL(b.nbits, 0);
	vmig_dbitmap_set_range(&b, 0, UINT64_MAX);
	vmig_dbitmap_clear_range(&b, 0, UINT64_MAX);
	CU_ASSERT_FALSE(vmig_dbitmap_test_addr(&b, 4096));
	CU_ASSERT_EQUAL(vmig_dbitmap_or_bitmap(&b, 0, NULL, 4096, 0), 0);
	vmig_dbitmap_fini(&b);
	/* Too big to allocate; a bit count whose word count would wrap. */
	CU_ASSERT_EQUAL(vmig_dbitmap_init(&b, 0, 1ULL << 62, 1), -ENOMEM);
	CU_ASSERT_PTR_NULL(b.words);
	CU_ASSERT_EQUAL(vmig_dbitmap_init(&b, 0, UINT64_MAX, 1), -ENOMEM);
	vmig_dbitmap_fini(&b);
}

/* The worked examples: offsets, granularity, the top of the space. */
static void test_dbitmap_examples(void)
{
	struct vmig_dbitmap b;
	uint64_t src[2] = { 0 }, top = 0 - (64 * 4096ULL);

	/* A 2 KiB granule at a 2 KiB, not 4 KiB, aligned address. */
	CU_ASSERT_EQUAL_FATAL(vmig_dbitmap_init(&b, 0x100000, 16 * 4096,
						4096), 0);
	src[0] = 1 | 1 << 3; /* 0x100800..0x100fff, 0x102000..0x1027ff */
	CU_ASSERT_EQUAL(vmig_dbitmap_or_bitmap(&b, 0x100800, src, 2048,
					       4 * 2048), 0);
	CU_ASSERT_EQUAL(b.words[0], 1 | 1 << 2);
	CU_ASSERT(vmig_dbitmap_test_addr(&b, 0x100000));
	CU_ASSERT(vmig_dbitmap_test_addr(&b, 0x102fff));
	CU_ASSERT_FALSE(vmig_dbitmap_test_addr(&b, 0x101000));
	CU_ASSERT_FALSE(vmig_dbitmap_test_addr(&b, 0xfffff));
	/* Bad source sizes change nothing. */
	CU_ASSERT_EQUAL(vmig_dbitmap_or_bitmap(&b, 0x100800, src, 3, 6),
			-EINVAL);
	CU_ASSERT_EQUAL(vmig_dbitmap_or_bitmap(&b, 0x100400, src, 2048,
					       2048), -EINVAL);
	CU_ASSERT_EQUAL(vmig_dbitmap_or_bitmap(&b, 0x100800, src, 2048,
					       1024), -EINVAL);
	CU_ASSERT_EQUAL(vmig_dbitmap_or_bitmap(&b, 0 - 2048ULL, src, 2048,
					       4096), -EINVAL);
	CU_ASSERT_EQUAL(b.words[0], 1 | 1 << 2);
	/* Unaligned: every page touched is set, only whole ones cleared. */
	vmig_dbitmap_set_range(&b, 0x104fff, 2);
	CU_ASSERT_EQUAL(b.words[0], 1 | 1 << 2 | 1 << 4 | 1 << 5);
	vmig_dbitmap_clear_range(&b, 0x100001, 0x4fff);
	CU_ASSERT_EQUAL(b.words[0], 1 | 1 << 5);
	vmig_dbitmap_fini(&b);

	/* A 2 MiB granule that starts before the bitmap. */
	CU_ASSERT_EQUAL_FATAL(vmig_dbitmap_init(&b, 0x300000, 0x200000, 4096),
			      0);
	src[0] = 2; /* 0x200000..0x3fffff */
	CU_ASSERT_EQUAL(vmig_dbitmap_or_bitmap(&b, 0, src, 2 << 20, 4 << 20),
			0);
	CU_ASSERT_EQUAL(vmig_bitmap_count(b.words, 0, b.nbits), 256);
	CU_ASSERT(vmig_dbitmap_test_addr(&b, 0x3fffff));
	CU_ASSERT_FALSE(vmig_dbitmap_test_addr(&b, 0x400000));
	vmig_dbitmap_fini(&b);

	/* A bitmap that ends at 2^64. */
	CU_ASSERT_EQUAL_FATAL(vmig_dbitmap_init(&b, top, 64 * 4096, 4096), 0);
	vmig_dbitmap_set_range(&b, UINT64_MAX - 10, 1000); /* wraps */
	CU_ASSERT_EQUAL(b.words[0], 1ULL << 63);
	CU_ASSERT(vmig_dbitmap_test_addr(&b, UINT64_MAX));
	vmig_dbitmap_set_range(&b, top - 1, 2);
	CU_ASSERT_EQUAL(b.words[0], 1ULL << 63 | 1);
	vmig_dbitmap_clear_range(&b, 0 - 4096ULL, UINT64_MAX);
	CU_ASSERT_EQUAL(b.words[0], 1);
	src[0] = 1;
	CU_ASSERT_EQUAL(vmig_dbitmap_or_bitmap(&b, 0 - (2ULL << 20), src,
					       2 << 20, 2 << 20), 0);
	CU_ASSERT_EQUAL(b.words[0], ~0ULL);
	vmig_dbitmap_clear_range(&b, 0, UINT64_MAX); /* misses the last byte */
	CU_ASSERT_EQUAL(b.words[0], 1ULL << 63);
	vmig_dbitmap_fini(&b);
}

static CU_TestInfo tests[] = {
	{ "set and clear", test_set_clear },
	{ "test, any and count", test_any_count },
	{ "or", test_or },
	{ "or_at", test_or_at },
	{ "merge_count", test_merge_count },
	{ "select_impl", test_select_impl },
	{ "next_run", test_next_run },
	{ "convert", test_convert },
	{ "convert -EINVAL", test_convert_einval },
	{ "convert examples", test_convert_examples },
	{ "dbitmap init", test_dbitmap_init },
	{ "dbitmap random", test_dbitmap_random },
	{ "dbitmap examples", test_dbitmap_examples },
	CU_TEST_INFO_NULL,
};

static CU_SuiteInfo suites[] = {
	VMIG_SUITE_INIT("bitmap, canaries", suite_canary, NULL, tests),
	VMIG_SUITE_INIT("bitmap, guard pages", suite_guard, NULL, tests),
	CU_SUITE_INFO_NULL,
};

VMIG_TEST_MAIN(suites)
