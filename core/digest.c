/*
 * digest.c: the memory digest, the zero-page test, and memory dumps.
 *
 * The digest is what the destination acknowledges the stream with and
 * what the source commits on: a 64-bit hash of every region, in ascending
 * guest-physical order, defined in docs/protocol.md "Digest" so that any
 * peer can compute it. It is built for speed (four independent lanes, one
 * pass over memory at memory bandwidth), not for resisting an adversary.
 */
#include <endian.h>
#include <errno.h>
#include <fcntl.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "engine.h"

#define P1 0x9E3779B185EBCA87ull
#define P2 0xC2B2AE3D27D4EB4Full

static inline uint64_t rotl64(uint64_t x, int r)
{
	return (x << r) | (x >> (64 - r));
}

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

static inline uint64_t lane(uint64_t h, uint64_t w)
{
	return rotl64(h ^ (w * P1), 31) * P2;
}

/* Consumes len bytes (a multiple of 32) into the four lanes. */
static void consume(uint64_t v[4], const uint8_t *p, uint64_t len)
{
	uint64_t a = v[0], b = v[1], c = v[2], d = v[3];
	const uint8_t *end = p + len;

	for (; p < end; p += 32) {
		a = lane(a, load64(p));
		b = lane(b, load64(p + 8));
		c = lane(c, load64(p + 16));
		d = lane(d, load64(p + 24));
	}
	v[0] = a;
	v[1] = b;
	v[2] = c;
	v[3] = d;
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

uint64_t vmig_digest_memory(const vmig_session *s)
{
	uint64_t seed, v[4], h, total = 0;
	int r;
	size_t i;

	/* The seed covers the layout: the same bytes elsewhere differ. */
	seed = avalanche((uint64_t)s->nr_regions ^ P1);
	for (r = next_region(s, -1); r >= 0; r = next_region(s, r)) {
		seed = avalanche(seed ^ s->regions[r].gpa);
		seed = avalanche(seed ^ s->regions[r].length);
	}
	for (i = 0; i < 4; i++)
		v[i] = avalanche(seed ^ (i + 1));
	for (r = next_region(s, -1); r >= 0; r = next_region(s, r)) {
		consume(v, s->regions[r].hva, s->regions[r].length);
		total += s->regions[r].length;
	}
	h = rotl64(v[0], 1) + rotl64(v[1], 7) + rotl64(v[2], 12) +
	    rotl64(v[3], 18);
	return avalanche(h ^ total);
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
