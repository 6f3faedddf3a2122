/*
 * bench_bitmap.c: vmig-bench-bitmap, the throughput of
 * vmig_bitmap_merge_count against memcpy.
 *
 * A 1 TiB guest at 4 KiB pages has 2^28 pages: four such dirty bitmaps
 * (32 MiB each) are merged into one and counted, and the input rate is
 * compared with a memcpy of the same 128 MiB and with a plain OR loop that
 * does not count. The three are interleaved in every repetition, so that
 * noise from the rest of the machine hits them alike. Prints numbers; the
 * last line is the ratio against its goal.
 */
#include <errno.h>
#include <getopt.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "core/bitmap.h"

#define NSRC 4
#define GOAL 0.80

static uint64_t rng_state = 0x5eed5eed5eed5eedULL;

/* splitmix64: a fixed seed, the same bitmaps every run. */
static uint64_t rnd(void)
{
	uint64_t z = (rng_state += 0x9e3779b97f4a7c15ULL);

	z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ULL;
	z = (z ^ (z >> 27)) * 0x94d049bb133111ebULL;
	return z ^ (z >> 31);
}

/* Each bit set when a 16-bit random number falls below the threshold. */
static void fill(uint64_t *w, uint64_t nw, uint32_t thresh)
{
	uint64_t i, r = 0, v;
	unsigned int b;

	for (i = 0; i < nw; i++) {
		v = 0;
		for (b = 0; b < 64; b++) {
			if (!(b % 4))
				r = rnd();
			if ((r & 0xffff) < thresh)
				v |= 1ULL << b;
			r >>= 16;
		}
		w[i] = v;
	}
}

/* Independent of the library's variants: the classic SWAR count. */
static unsigned int popcount_swar(uint64_t x)
{
	x = x - ((x >> 1) & 0x5555555555555555ULL);
	x = (x & 0x3333333333333333ULL) + ((x >> 2) & 0x3333333333333333ULL);
	x = (x + (x >> 4)) & 0x0f0f0f0f0f0f0f0fULL;
	return (x * 0x0101010101010101ULL) >> 56;
}

/* The reference loop; noinline keeps it one plain loop, as written. */
__attribute__((noinline)) static void
or_loop(uint64_t *dst, const uint64_t *const *src, uint64_t nw)
{
	const uint64_t *a = src[0], *b = src[1], *c = src[2], *d = src[3];
	uint64_t i;

	for (i = 0; i < nw; i++)
		dst[i] = a[i] | b[i] | c[i] | d[i];
}

static double now(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return ts.tv_sec + ts.tv_nsec * 1e-9;
}

static int cmp_double(const void *a, const void *b)
{
	double x = *(const double *)a, y = *(const double *)b;

	return (x > y) - (x < y);
}

/* Best (shortest) and median of n times, as rates in GB/s. */
static void rates(double *t, unsigned int n, double bytes, double *best,
		  double *median)
{
	double mid;

	qsort(t, n, sizeof(*t), cmp_double);
	mid = n % 2 ? t[n / 2] : (t[n / 2 - 1] + t[n / 2]) / 2;
	*best = bytes / t[0] / 1e9;
	*median = bytes / mid / 1e9;
}

static void usage(FILE *f)
{
	fprintf(f,
		"usage: vmig-bench-bitmap [--density PERCENT] [--reps N]\n"
		"                         [--log2-bits N] [--impl NAME]\n"
		"  --density   share of bits set in each source (default 1)\n"
		"  --reps      repetitions of each measurement (default 10)\n"
		"  --log2-bits log2 of the bits per bitmap (default 28:\n"
		"              1 TiB at 4 KiB pages)\n"
		"  --impl      avx2, popcnt or generic (default: the best\n"
		"              this CPU has)\n");
}

int main(int argc, char **argv)
{
	static const struct option opts[] = {
		{ "density", required_argument, NULL, 'd' },
		{ "reps", required_argument, NULL, 'r' },
		{ "log2-bits", required_argument, NULL, 'b' },
		{ "impl", required_argument, NULL, 'i' },
		{ "help", no_argument, NULL, 'h' },
		{ NULL, 0, NULL, 0 },
	};
	const uint64_t *src[NSRC];
	uint64_t *in, *dst, *copy, nbits, nw, i, count, want = 0;
	double density = 1.0, *tm, *tc, *to, t0, bytes;
	double m_best, m_med, c_best, c_med, o_best, o_med;
	unsigned int reps = 10, lg = 28, r, j;
	const char *impl = NULL;
	char *end;
	int opt, err;

	while ((opt = getopt_long(argc, argv, "d:r:b:i:h", opts, NULL)) != -1) {
		switch (opt) {
		case 'd':
			density = strtod(optarg, &end);
			if (*end || density < 0 || density > 100) {
				fprintf(stderr, "bad density: %s\n", optarg);
				return 2;
			}
			break;
		case 'r':
			reps = strtoul(optarg, &end, 10);
			if (*end || !reps || reps > 10000) {
				fprintf(stderr, "bad reps: %s\n", optarg);
				return 2;
			}
			break;
		case 'b':
			lg = strtoul(optarg, &end, 10);
			if (*end || lg < 9 || lg > 34) {
				fprintf(stderr, "bad log2-bits: %s\n", optarg);
				return 2;
			}
			break;
		case 'i':
			impl = optarg;
			break;
		case 'h':
			usage(stdout);
			return 0;
		default:
			usage(stderr);
			return 2;
		}
	}
	if (optind != argc) {
		usage(stderr);
		return 2;
	}
	err = vmig_bitmap_select_impl(impl);
	if (err) {
		fprintf(stderr, "implementation %s: %s\n", impl,
			err == -ENOTSUP ? "not on this CPU" : "unknown");
		return 2;
	}

	nbits = 1ULL << lg;
	nw = vmig_bitmap_words(nbits);
	bytes = (double)NSRC * nw * 8;
	/* The sources are one block, so that memcpy copies the same bytes. */
	in = aligned_alloc(4096, NSRC * nw * 8);
	copy = aligned_alloc(4096, NSRC * nw * 8);
	dst = aligned_alloc(4096, nw * 8);
	tm = calloc(reps, sizeof(*tm));
	tc = calloc(reps, sizeof(*tc));
	to = calloc(reps, sizeof(*to));
	if (!in || !copy || !dst || !tm || !tc || !to) {
		fprintf(stderr, "out of memory\n");
		return 1;
	}
	/* Warm-up: every page of every buffer is touched before timing. */
	for (j = 0; j < NSRC; j++) {
		src[j] = in + j * nw;
		fill(in + j * nw, nw, (uint32_t)(density / 100 * 65536 + 0.5));
	}
	memset(copy, 0, NSRC * nw * 8);
	memset(dst, 0xff, nw * 8);

	/* Checked once against the sources, before any timing. */
	count = vmig_bitmap_merge_count(dst, src, NSRC, nbits);
	for (i = 0; i < nw; i++) {
		uint64_t v = src[0][i] | src[1][i] | src[2][i] | src[3][i];

		if (dst[i] != v) {
			printf("FAIL: merged word %" PRIu64 " is %#" PRIx64
			       ", not %#" PRIx64 "\n", i, dst[i], v);
			return 1;
		}
		want += popcount_swar(v);
	}
	if (count != want) {
		printf("FAIL: merge_count says %" PRIu64 " bits, there are %"
		       PRIu64 "\n", count, want);
		return 1;
	}

	for (r = 0; r < reps; r++) {
		t0 = now();
		count = vmig_bitmap_merge_count(dst, src, NSRC, nbits);
		tm[r] = now() - t0;
		if (count != want) {
			printf("FAIL: repetition %u counted %" PRIu64 "\n", r,
			       count);
			return 1;
		}
		t0 = now();
		memcpy(copy, in, NSRC * nw * 8);
		tc[r] = now() - t0;
		t0 = now();
		or_loop(dst, src, nw);
		to[r] = now() - t0;
	}
	if (memcmp(copy, in, NSRC * nw * 8)) {
		printf("FAIL: memcpy\n");
		return 1;
	}
	rates(tm, reps, bytes, &m_best, &m_med);
	rates(tc, reps, bytes, &c_best, &c_med);
	rates(to, reps, bytes, &o_best, &o_med);

	printf("vmig-bench-bitmap: %u x 2^%u bits (%u x %g MiB), density "
	       "%.2f%%, impl %s, %u reps\n", NSRC, lg, NSRC,
	       nw * 8 / 1048576.0, density, vmig_bitmap_impl_name(), reps);
	printf("merged bits set: %" PRIu64 " (%.3f%%), checked\n", want,
	       100.0 * want / nbits);
	printf("merge_count: best %6.2f GB/s, median %6.2f GB/s of input\n",
	       m_best, m_med);
	printf("memcpy:      best %6.2f GB/s, median %6.2f GB/s (%g MiB)\n",
	       c_best, c_med, bytes / 1048576);
	printf("or loop:     best %6.2f GB/s, median %6.2f GB/s of input, "
	       "no count\n", o_best, o_med);
	printf("ratio or-loop/memcpy: %.2f (medians %.2f)\n", o_best / c_best,
	       o_med / c_med);
	printf("ratio merge/memcpy, medians: %.2f\n", m_med / c_med);
	printf("ratio merge/memcpy: %.2f (goal >= %.2f)\n", m_best / c_best,
	       GOAL);
	free(in);
	free(copy);
	free(dst);
	free(tm);
	free(tc);
	free(to);
	return 0;
}
