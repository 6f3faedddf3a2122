/*
 * digest.c: the memory digest, the zero-page test, and memory dumps.
 *
 * The digest is what the destination acknowledges the stream with and
 * what the source compares it with: a 64-bit hash of every region,
 * defined in docs/protocol.md "Digest" so that any peer can compute it.
 * It is the layout's seed plus, modulo 2^64, one hash per page that mixes
 * in the page's guest-physical address: a sum, so the destination keeps
 * it up to date as pages arrive (a page received again replaces its old
 * term) and never reads its memory again at the end, and the source can
 * split its pass over memory between threads. It is built for speed, not
 * for resisting an adversary.
 */
#include <endian.h>
#include <errno.h>
#include <fcntl.h>
#include <linux/magic.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <sys/statfs.h>
#include <sys/sysmacros.h>
#include <unistd.h>

#include "engine.h"

#define P1 0x9E3779B185EBCA87ull
#define P2 0xC2B2AE3D27D4EB4Full

/* Below this much memory a single thread hashes it all. */
#define DIGEST_THREAD_MIN (64ull << 20)
#define DIGEST_THREADS_MAX 16
/* The pages hashed between two looks at a request to stop (16 MiB). */
#define DIGEST_STEP 4096u
/* The pages vmig_digest_rate() hashes, and how many times. */
#define CALIBRATE_PAGES 1024u
#define CALIBRATE_ROUNDS 4u

/* The final avalanche (MurmurHash3's fmix64). */
static inline uint64_t avalanche(uint64_t h)
{
	h ^= h >> 33;
	h *= 0xFF51AFD7ED558CCDull;
	h ^= h >> 33;
	h *= 0xC4CEB9FE1A85EC53ull;
	h ^= h >> 33;
	return h;
}

static inline uint64_t load64(const uint8_t *p)
{
	uint64_t w;

	memcpy(&w, p, 8);
	return le64toh(w);
}

/*
 * A page's bytes are 64 stripes of 8 words; word i of stripe j goes to
 * accumulator i, mixed with its key, a constant of lane i plus j times P2
 * (docs/protocol.md "Digest"): one 32 x 32 -> 64-bit multiply per word,
 * the same in every lane, so a vector unit hashes several words at once.
 * The portable loop below defines the result; the x86-64 ones compute the
 * same with SSE2 (always there) or AVX2 (when the processor has it).
 */
#define LANES 8
#define STRIPES (VMIG_PAGE_SIZE / (8 * LANES))

static uint64_t lane_key[LANES];

static void lane_keys_init(void)
{
	unsigned int i;

	for (i = 0; i < LANES; i++)
		lane_key[i] = avalanche(P1 ^ (i + 1));
}

/* The content hash from the lanes' accumulators. */
static uint64_t lanes_fold(const uint64_t acc[LANES])
{
	uint64_t c = 0;
	unsigned int i;

	for (i = 0; i < LANES; i++)
		c += avalanche(acc[i] + (i + 1) * P2);
	return c;
}

static uint64_t content_portable(const uint8_t *p)
{
	uint64_t acc[LANES] = { 0 }, key[LANES];
	unsigned int i, j;

	memcpy(key, lane_key, sizeof(key));
	for (j = 0; j < STRIPES; j++, p += 8 * LANES) {
		for (i = 0; i < LANES; i++) {
			uint64_t w = load64(p + 8 * i), d = w ^ key[i];

			acc[i] += w + (d & 0xffffffffu) * (d >> 32);
			key[i] += P2;
		}
	}
	return lanes_fold(acc);
}

#if defined(__x86_64__)
#include <immintrin.h>

static uint64_t content_sse2(const uint8_t *p)
{
	const __m128i step = _mm_set1_epi64x((long long)P2);
	__m128i acc[LANES / 2], key[LANES / 2];
	uint64_t out[LANES];
	unsigned int i, j;

	for (i = 0; i < LANES / 2; i++) {
		acc[i] = _mm_setzero_si128();
		key[i] = _mm_loadu_si128(
			(const __m128i *)(const void *)&lane_key[2 * i]);
	}
	for (j = 0; j < STRIPES; j++, p += 8 * LANES) {
		for (i = 0; i < LANES / 2; i++) {
			__m128i w = _mm_loadu_si128(
				(const __m128i *)(const void *)(p + 16 * i));
			__m128i d = _mm_xor_si128(w, key[i]);
			__m128i m = _mm_mul_epu32(d, _mm_srli_epi64(d, 32));

			acc[i] = _mm_add_epi64(acc[i], _mm_add_epi64(w, m));
			key[i] = _mm_add_epi64(key[i], step);
		}
	}
	for (i = 0; i < LANES / 2; i++)
		_mm_storeu_si128((__m128i *)(void *)&out[2 * i], acc[i]);
	return lanes_fold(out);
}

__attribute__((target("avx2"))) static uint64_t
content_avx2(const uint8_t *p)
{
	const __m256i step = _mm256_set1_epi64x((long long)P2);
	__m256i acc[LANES / 4], key[LANES / 4];
	uint64_t out[LANES];
	unsigned int i, j;

	for (i = 0; i < LANES / 4; i++) {
		acc[i] = _mm256_setzero_si256();
		key[i] = _mm256_loadu_si256(
			(const __m256i *)(const void *)&lane_key[4 * i]);
	}
	for (j = 0; j < STRIPES; j++, p += 8 * LANES) {
		for (i = 0; i < LANES / 4; i++) {
			__m256i w = _mm256_loadu_si256(
				(const __m256i *)(const void *)(p + 32 * i));
			__m256i d = _mm256_xor_si256(w, key[i]);
			__m256i m = _mm256_mul_epu32(d,
						     _mm256_srli_epi64(d, 32));

			acc[i] = _mm256_add_epi64(acc[i],
						  _mm256_add_epi64(w, m));
			key[i] = _mm256_add_epi64(key[i], step);
		}
	}
	for (i = 0; i < LANES / 4; i++)
		_mm256_storeu_si256((__m256i *)(void *)&out[4 * i], acc[i]);
	return lanes_fold(out);
}
#endif

typedef uint64_t (*content_fn)(const uint8_t *p);

static const struct {
	const char *name;
	content_fn fn;
} content_impls[] = {
	{ "portable", content_portable },
#if defined(__x86_64__)
	{ "sse2", content_sse2 },
	{ "avx2", content_avx2 },
#endif
};

static bool content_impl_usable(unsigned int i)
{
#if defined(__x86_64__)
	if (content_impls[i].fn == content_avx2) {
		__builtin_cpu_init();
		return __builtin_cpu_supports("avx2");
	}
#else
	(void)i;
#endif
	return true;
}

static content_fn content_best;
static pthread_once_t content_once = PTHREAD_ONCE_INIT;

/* The keys, and the fastest implementation this processor runs. */
static void content_init(void)
{
	unsigned int i;

	lane_keys_init();
	for (i = 0; i < sizeof(content_impls) / sizeof(content_impls[0]); i++)
		if (content_impl_usable(i))
			content_best = content_impls[i].fn;
}

/* The hash of a page's bytes alone, before its address is mixed in. */
static uint64_t page_content(const uint8_t *p)
{
	pthread_once(&content_once, content_init);
	return content_best(p);
}

const char *vmig_digest_impl(unsigned int i)
{
	pthread_once(&content_once, content_init);
	if (i >= sizeof(content_impls) / sizeof(content_impls[0]) ||
	    !content_impl_usable(i))
		return NULL;
	return content_impls[i].name;
}

static inline uint64_t page_term(uint64_t gpa, uint64_t content)
{
	return avalanche(content ^ avalanche(gpa ^ P1));
}

uint64_t vmig_digest_page_impl(unsigned int i, uint64_t gpa,
			       const void *page)
{
	/* One this processor cannot run: the fastest that it can. */
	if (!vmig_digest_impl(i))
		return vmig_digest_page(gpa, page);
	return page_term(gpa, content_impls[i].fn(page));
}

uint64_t vmig_digest_page(uint64_t gpa, const void *page)
{
	return page_term(gpa, page_content(page));
}

uint64_t vmig_digest_zero_page(uint64_t gpa)
{
	/*
	 * Computed once; threads racing to compute it store the same
	 * value, so a relaxed atomic is enough.
	 */
	static uint64_t zero_content;
	static const uint8_t zero[VMIG_PAGE_SIZE];
	uint64_t c = __atomic_load_n(&zero_content, __ATOMIC_RELAXED);

	if (!c) {
		c = page_content(zero);
		__atomic_store_n(&zero_content, c, __ATOMIC_RELAXED);
	}
	return page_term(gpa, c);
}

/*
 * The region with the lowest gpa above the one at index prev (-1: the
 * lowest of all), or -1. Quadratic, without allocating: regions are few
 * and do not overlap.
 */
static int next_region(const vmig_session *s, int prev)
{
	int best = -1;
	size_t i;

	for (i = 0; i < s->nr_regions; i++) {
		uint64_t g = s->regions[i].gpa;

		if (prev >= 0 && g <= s->regions[prev].gpa)
			continue;
		if (best < 0 || g < s->regions[best].gpa)
			best = (int)i;
	}
	return best;
}

uint64_t vmig_digest_layout(const vmig_session *s)
{
	uint64_t seed;
	int r;

	/* The seed covers the layout: the same bytes elsewhere differ. */
	seed = avalanche((uint64_t)s->nr_regions ^ P1);
	for (r = next_region(s, -1); r >= 0; r = next_region(s, r)) {
		seed = avalanche(seed ^ s->regions[r].gpa);
		seed = avalanche(seed ^ s->regions[r].length);
	}
	return seed;
}

/* One thread's share: pages [first, end) counted over all regions. */
struct digest_part {
	const vmig_session *s;
	uint64_t first, end;
	uint64_t sum;
	const bool *stop; /* NULL, or set from elsewhere: give up */
	pthread_t thread;
	bool started;
};

static void *digest_part_run(void *opaque)
{
	struct digest_part *p = opaque;
	const vmig_session *s = p->s;
	uint64_t base = 0, sum = 0;
	size_t r;

	for (r = 0; r < s->nr_regions; r++) {
		const struct vmig_region_rec *reg = &s->regions[r];
		uint64_t lo = p->first > base ? p->first - base : 0;
		uint64_t hi = p->end - base < reg->npages ? p->end - base
							  : reg->npages;
		uint64_t i;

		if (p->end <= base)
			break;
		for (i = lo; i < hi;) {
			bool hole;
			uint64_t n = vmig_region_extent(
					 reg, i,
					 hi - i < DIGEST_STEP ? hi - i
							      : DIGEST_STEP,
					 &hole),
				 end = i + n;

			if (p->stop && __atomic_load_n(p->stop,
						       __ATOMIC_ACQUIRE)) {
				p->sum = 0;
				return NULL;
			}

			/* A hole is zero: its terms, without reading it. */
			for (; i < end; i++)
				sum += hole ? vmig_digest_zero_page(
						      reg->gpa +
						      i * VMIG_PAGE_SIZE)
					    : vmig_digest_page(
						      reg->gpa +
							      i * VMIG_PAGE_SIZE,
						      reg->hva +
							      i * VMIG_PAGE_SIZE);
		}
		base += reg->npages;
	}
	p->sum = sum;
	return NULL;
}

uint64_t vmig_digest_memory(const vmig_session *s)
{
	return vmig_digest_memory_until(s, NULL);
}

uint64_t vmig_digest_memory_until(const vmig_session *s, const bool *stop)
{
	struct digest_part parts[DIGEST_THREADS_MAX];
	uint64_t pages = 0, sum = 0, per;
	long cpus = sysconf(_SC_NPROCESSORS_ONLN);
	unsigned int n = 1, i;
	size_t r;

	for (r = 0; r < s->nr_regions; r++)
		pages += s->regions[r].npages;
	if (pages * VMIG_PAGE_SIZE >= DIGEST_THREAD_MIN && cpus > 1)
		n = cpus > DIGEST_THREADS_MAX ? DIGEST_THREADS_MAX
					      : (unsigned int)cpus;
	per = (pages + n - 1) / n;
	for (i = 0; i < n; i++) {
		parts[i] = (struct digest_part){
			.s = s,
			.stop = stop,
			.first = per * i < pages ? per * i : pages,
			.end = per * (i + 1) < pages ? per * (i + 1) : pages,
		};
		/* The caller's thread takes the first share itself. */
		if (i && !pthread_create(&parts[i].thread, NULL,
					 digest_part_run, &parts[i]))
			parts[i].started = true;
	}
	for (i = 0; i < n; i++) {
		if (!parts[i].started)
			digest_part_run(&parts[i]);
	}
	for (i = 0; i < n; i++) {
		if (parts[i].started)
			pthread_join(parts[i].thread, NULL);
		sum += parts[i].sum;
	}
	return vmig_digest_layout(s) + sum;
}

double vmig_digest_rate_fixed;

double vmig_digest_rate(const vmig_session *s)
{
	const struct vmig_region_rec *reg;
	uint64_t n, stride, i, sum = 0, t0, us, best = UINT64_MAX;
	unsigned int round;

	if (vmig_digest_rate_fixed > 0)
		return vmig_digest_rate_fixed;
	if (!s->nr_regions || !s->regions[0].npages)
		return 0;
	/*
	 * A few MiB of the first region, spread over it, timed a few times:
	 * the fastest round is the rate (a round the scheduler interrupted
	 * says nothing about hashing). Pages never touched cost a fault the
	 * first round only.
	 */
	reg = &s->regions[0];
	n = reg->npages < CALIBRATE_PAGES ? reg->npages : CALIBRATE_PAGES;
	stride = reg->npages / n;
	for (round = 0; round < CALIBRATE_ROUNDS; round++) {
		t0 = vmig_now_us();
		for (i = 0; i < n; i++)
			sum += vmig_digest_page(i * stride * VMIG_PAGE_SIZE,
						reg->hva +
							i * stride * VMIG_PAGE_SIZE);
		us = vmig_now_us() - t0;
		if (us < best)
			best = us;
	}
	/* The sum is not wanted, only its cost: keep it computed. */
	__asm__ volatile("" : : "r"(sum));
	return (double)(n * VMIG_PAGE_SIZE) * 1e6 / (double)(best + 1);
}

unsigned int vmig_digest_threads(const vmig_session *s)
{
	long cpus = sysconf(_SC_NPROCESSORS_ONLN);
	uint64_t bytes = 0;
	size_t r;

	for (r = 0; r < s->nr_regions; r++)
		bytes += s->regions[r].length;
	if (bytes < DIGEST_THREAD_MIN || cpus <= 1)
		return 1;
	return cpus > DIGEST_THREADS_MAX ? DIGEST_THREADS_MAX
					 : (unsigned int)cpus;
}

#define PAGEMAP_PRESENT (1ull << 63)
#define PAGEMAP_SWAPPED (1ull << 62)
#define PAGEMAP_CHUNK 512u /* entries read at once */

bool vmig_pagemap_hole(uint64_t entry)
{
	return !(entry & (PAGEMAP_PRESENT | PAGEMAP_SWAPPED));
}

/*
 * A memfd: the file's holes (a swapped page is data to SEEK_DATA). Each
 * look is bounded: SEEK_HOLE walks every page of the data it starts in
 * (a 64 GiB file written in 4 KiB pages: a second), so data is followed
 * with SEEK_DATA probes FD_PROBE pages apart, each answered at once, and
 * SEEK_HOLE only walks the FD_PROBE pages before the first probe that
 * lands in a hole. A hole shorter than FD_PROBE between two probes counts
 * as data: read, never skipped.
 */
#define FD_PROBE 512u

static off_t fd_off(const struct vmig_region_rec *reg, uint64_t p)
{
	return (off_t)(reg->fd_offset + p * VMIG_PAGE_SIZE);
}

static uint64_t fd_extent(const struct vmig_region_rec *reg, uint64_t p,
			  uint64_t max, bool *hole)
{
	off_t at = fd_off(reg, p), next;
	uint64_t n, q;

	*hole = false;
	next = lseek(reg->fd, at, SEEK_DATA);
	if (next < 0) {
		/* ENXIO: no data from here to the end of the file. */
		*hole = errno == ENXIO;
		return max;
	}
	/* Data may begin inside a page: that page is data. */
	n = (uint64_t)(next - at) / VMIG_PAGE_SIZE;
	if (n) {
		*hole = true;
		return n < max ? n : max;
	}
	for (q = FD_PROBE; q < max; q += FD_PROBE) {
		next = lseek(reg->fd, fd_off(reg, p + q), SEEK_DATA);
		if (next == fd_off(reg, p + q))
			continue;
		if (next < 0 && errno != ENXIO)
			return max;
		/* A hole at p + q: the data ends after p + q - FD_PROBE. */
		next = lseek(reg->fd, fd_off(reg, p + q - FD_PROBE), SEEK_HOLE);
		if (next <= fd_off(reg, p + q - FD_PROBE))
			return q;
		n = ((uint64_t)(next - at) + VMIG_PAGE_SIZE - 1) /
		    VMIG_PAGE_SIZE;
		return n < q ? n : q;
	}
	return max;
}

/*
 * Private anonymous memory. A page mincore() calls resident is mapped:
 * data (a page only ever read maps the zero page: data too, found zero
 * when read). One it does not may be a hole or swapped out, which only
 * /proc/self/pagemap tells apart. mincore() costs a byte per page, and
 * nothing per page of a transparent huge page, against a pagemap entry
 * built per page: a guest's memory, mostly resident, is looked at with
 * mincore(), and pagemap reads only the pages it does not call resident.
 */
#define MINCORE_CHUNK 4096u /* pages looked at at once */

/* The pages from p on (at most max) that mincore() calls resident. */
static uint64_t anon_resident(const struct vmig_region_rec *reg, uint64_t p,
			      uint64_t max)
{
	unsigned char vec[MINCORE_CHUNK];
	uint64_t n = 0;

	while (n < max) {
		uint64_t want = max - n < MINCORE_CHUNK ? max - n
							: MINCORE_CHUNK, i;

		if (mincore(reg->hva + (p + n) * VMIG_PAGE_SIZE,
			    want * VMIG_PAGE_SIZE, vec))
			break;
		for (i = 0; i < want && (vec[i] & 1); i++)
			;
		n += i;
		if (i < want)
			break;
	}
	return n;
}

ssize_t (*vmig_pagemap_pread)(int fd, void *buf, size_t len,
			      off_t off) = pread;

static uint64_t anon_extent(const struct vmig_region_rec *reg, uint64_t p,
			    uint64_t max, bool *hole)
{
	uint64_t buf[PAGEMAP_CHUNK], n = 0, off;
	int fd;

	*hole = false;
	if (sysconf(_SC_PAGESIZE) != VMIG_PAGE_SIZE)
		return max;
	n = anon_resident(reg, p, max);
	if (n)
		return n;
	fd = open("/proc/self/pagemap", O_RDONLY | O_CLOEXEC);
	if (fd < 0)
		return max;
	off = ((uintptr_t)reg->hva / VMIG_PAGE_SIZE + p) * sizeof(uint64_t);
	while (n < max) {
		uint64_t want = max - n < PAGEMAP_CHUNK ? max - n
							 : PAGEMAP_CHUNK;
		ssize_t got = vmig_pagemap_pread(
			fd, buf, want * sizeof(uint64_t),
			(off_t)(off + n * sizeof(uint64_t)));
		uint64_t i, k;

		if (got < (ssize_t)sizeof(uint64_t))
			break;
		k = (uint64_t)got / sizeof(uint64_t);
		if (!n)
			*hole = vmig_pagemap_hole(buf[0]);
		for (i = 0; i < k && vmig_pagemap_hole(buf[i]) == *hole; i++)
			;
		n += i;
		if (i < k)
			break;
	}
	close(fd);
	if (!n) {
		*hole = false;
		return max;
	}
	return n;
}

uint64_t vmig_region_extent(const struct vmig_region_rec *reg, uint64_t p,
			    uint64_t max, bool *hole)
{
	if (reg->fd_holes)
		return fd_extent(reg, p, max, hole);
	if (reg->anon_private)
		return anon_extent(reg, p, max, hole);
	*hole = false;
	return max;
}

/*
 * Whether every mapping of [hva, hva + len) in /proc/self/maps is shared
 * (want_shared) of the file dev:ino at the offsets off on, or private
 * and anonymous (inode 0); false when it cannot tell.
 */
static bool maps_cover(const uint8_t *hva, uint64_t len, bool want_shared,
		      unsigned long long dev_major, unsigned long long dev_minor,
		      unsigned long long ino, uint64_t off)
{
	uintptr_t cur = (uintptr_t)hva, end = (uintptr_t)hva + len;
	char line[4096], perms[8];
	FILE *f = fopen("/proc/self/maps", "re");

	if (!f)
		return false;
	while (cur < end && fgets(line, sizeof(line), f)) {
		unsigned long long start, stop, foff, ma, mi, in;

		if (sscanf(line, "%llx-%llx %7s %llx %llx:%llx %llu", &start,
			   &stop, perms, &foff, &ma, &mi, &in) != 7)
			break;
		if (stop <= cur)
			continue;
		if (start > cur || strlen(perms) < 4)
			break; /* a gap */
		if (want_shared ? perms[3] != 's' || in != ino ||
					  ma != dev_major || mi != dev_minor ||
					  foff + (cur - start) !=
						  off + (cur - (uintptr_t)hva)
				: perms[3] != 'p' || in != 0)
			break;
		cur = stop;
	}
	fclose(f);
	return cur >= end;
}

/*
 * Whether a mapping of [hva, hva + len) is registered with userfaultfd in
 * missing mode ("um" in its VmFlags in /proc/self/smaps): a page of it
 * not filled yet (a VM restored lazily from a snapshot) is a hole whose
 * contents are not zero. True as well when smaps cannot be read: a hole
 * is then not trusted.
 */
static bool uffd_missing(const uint8_t *hva, uint64_t len)
{
	uintptr_t lo = (uintptr_t)hva, hi = (uintptr_t)hva + len;
	bool in = false, found = false;
	char line[4096];
	FILE *f = fopen("/proc/self/smaps", "re");

	if (!f)
		return true;
	while (!found && fgets(line, sizeof(line), f)) {
		unsigned long long start, stop;
		char *tok, *save = NULL;

		if (strncmp(line, "VmFlags:", 8) != 0) {
			/* A mapping's first line: "start-end perms ...". */
			if (sscanf(line, "%llx-%llx ", &start, &stop) == 2 &&
			    strchr(line, '-') < strchr(line, ' '))
				in = start < hi && stop > lo;
			continue;
		}
		if (!in)
			continue;
		for (tok = strtok_r(line + 8, " \n", &save); tok;
		     tok = strtok_r(NULL, " \n", &save))
			if (!strcmp(tok, "um"))
				found = true;
	}
	fclose(f);
	return found;
}

int vmig_region_backing(struct vmig_region_rec *reg, char *why,
			size_t whylen)
{
	struct statfs sfs;
	struct stat st;

	reg->fd_holes = false;
	if (reg->fd >= 0 && !fstat(reg->fd, &st) && S_ISREG(st.st_mode) &&
	    !fstatfs(reg->fd, &sfs) && sfs.f_type == TMPFS_MAGIC)
		reg->fd_holes = maps_cover(reg->hva, reg->length, true,
					   major(st.st_dev), minor(st.st_dev),
					   (unsigned long long)st.st_ino,
					   reg->fd_offset);
	if (reg->anon_private &&
	    !maps_cover(reg->hva, reg->length, false, 0, 0, 0, 0)) {
		snprintf(why, whylen,
			 "VMIG_REGION_ANON_PRIVATE, but its memory is not "
			 "private anonymous memory of this process (a file, "
			 "shared or hugetlb memory, or not mapped)");
		return -EINVAL;
	}
	if ((reg->anon_private || reg->fd_holes) &&
	    uffd_missing(reg->hva, reg->length)) {
		if (reg->anon_private) {
			snprintf(why, whylen,
				 "VMIG_REGION_ANON_PRIVATE, but its memory is "
				 "registered with userfaultfd in missing mode "
				 "(a page not filled yet is a hole that is not "
				 "zero)");
			return -EINVAL;
		}
		/* Its fd's holes may be pages not filled yet: read all. */
		reg->fd_holes = false;
	}
	return 0;
}

bool vmig_page_is_zero(const void *p)
{
	const uint64_t *w = p;
	size_t i;

	/* Data pages usually differ in their first words: stop early. */
	if (w[0] | w[1] | w[2] | w[3])
		return false;
	for (i = 4; i < VMIG_PAGE_SIZE / 8; i += 4) {
		if (w[i] | w[i + 1] | w[i + 2] | w[i + 3])
			return false;
	}
	return true;
}

VMIG_API int vmig_memory_digest(vmig_session *s, uint64_t *digest)
{
	if (!s)
		return -EINVAL;
	if (!digest)
		return vmig_fail(s, -EINVAL, "digest: no output");
	if (!s->nr_regions)
		return vmig_fail(s, -EINVAL, "digest: the session has no "
				 "memory");
	*digest = vmig_digest_memory(s);
	return 0;
}

VMIG_API int vmig_memory_dump(vmig_session *s, const char *path)
{
	int fd, ret = 0, i;

	if (!s)
		return -EINVAL;
	if (!path || !*path)
		return vmig_fail(s, -EINVAL, "memory dump: no file");
	fd = open(path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
	if (fd < 0)
		return vmig_fail(s, -errno, "memory dump %s: %s", path,
				 vmig_strerror(-errno));
	for (i = next_region(s, -1); i >= 0 && !ret; i = next_region(s, i)) {
		const struct vmig_region_rec *r = &s->regions[i];
		uint64_t off = 0;

		while (off < r->length) {
			size_t chunk = r->length - off > (1u << 30)
					       ? 1u << 30
					       : (size_t)(r->length - off);
			ssize_t n = write(fd, r->hva + off, chunk);

			if (n < 0 && errno == EINTR)
				continue;
			if (n <= 0) {
				ret = vmig_fail(s, n < 0 ? -errno : -EIO,
						"memory dump %s: %s", path,
						n < 0 ? vmig_strerror(-errno)
						      : "short write");
				break;
			}
			off += (uint64_t)n;
		}
	}
	if (close(fd) < 0 && !ret)
		ret = vmig_fail(s, -errno, "memory dump %s: %s", path,
				vmig_strerror(-errno));
	return ret;
}
