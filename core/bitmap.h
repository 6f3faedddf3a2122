/*
 * bitmap.h: dirty bitmaps, word at a time.
 *
 * A bitmap is an array of uint64_t; bit n is bit n % 64 of word n / 64,
 * the layout every kernel dirty interface uses. Functions work on whole
 * words wherever the range allows and only mask the partial words at the
 * ends. Callers own the memory; nothing here allocates except
 * vmig_dbitmap_init.
 */
#ifndef VMIG_CORE_BITMAP_H
#define VMIG_CORE_BITMAP_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <vmig/bitmap.h>

/* Number of set bits in [start, start + n). */
uint64_t vmig_bitmap_count(const uint64_t *map, uint64_t start, uint64_t n);

/*
 * ORs n bits of src starting at bit src_start into dst starting at bit
 * dst_start. The two starts may differ in their offset within a word.
 */
void vmig_bitmap_or_at(uint64_t *dst, uint64_t dst_start,
		       const uint64_t *src, uint64_t src_start, uint64_t n);

/*
 * dst = src[0] | src[1] | ... | src[nsrc - 1] over nbits bits, in one
 * pass, and returns the number of bits set in dst. Bits of dst past
 * nbits within its last word are cleared. nsrc may be 0 (dst cleared).
 */
uint64_t vmig_bitmap_merge_count(uint64_t *dst, const uint64_t *const *src,
				 size_t nsrc, uint64_t nbits);

/*
 * Chooses the CPU-specific variant behind vmig_bitmap_merge_count and
 * vmig_bitmap_count, so that tests and benchmarks can reach each one:
 * "avx2", "popcnt" (x86 only), "generic", or NULL for the best the CPU
 * has (the default). Returns 0, -ENOENT (unknown name) or -ENOTSUP (the
 * CPU lacks it).
 */
int vmig_bitmap_select_impl(const char *name);

/* The name of the variant in use. */
const char *vmig_bitmap_impl_name(void);

/*
 * A bitmap indexed by address: bit n covers
 * [base + n * pgsize, base + (n + 1) * pgsize).
 */
struct vmig_dbitmap {
	uint64_t base;   /* address of bit 0, a multiple of pgsize */
	uint64_t pgsize; /* power of two */
	uint64_t nbits;
	uint64_t *words;
};

/*
 * Allocates a zeroed bitmap covering [base, base + length). base and
 * length must be multiples of pgsize, a power of two. Returns 0, -EINVAL
 * or -ENOMEM.
 */
int vmig_dbitmap_init(struct vmig_dbitmap *b, uint64_t base, uint64_t length,
		      uint64_t pgsize);

/* Frees the words; the struct may be initialised again. */
void vmig_dbitmap_fini(struct vmig_dbitmap *b);

/*
 * Marks every page touching [addr, addr + len) dirty (addresses need not
 * be aligned; the part outside the bitmap is ignored).
 */
void vmig_dbitmap_set_range(struct vmig_dbitmap *b, uint64_t addr,
			    uint64_t len);

/* Clears every page that lies wholly inside [addr, addr + len). */
void vmig_dbitmap_clear_range(struct vmig_dbitmap *b, uint64_t addr,
			      uint64_t len);

/* True if the page holding addr is dirty (false outside the bitmap). */
bool vmig_dbitmap_test_addr(const struct vmig_dbitmap *b, uint64_t addr);

/*
 * ORs a bitmap of src_pgsize granules that starts at address src_base and
 * covers src_len bytes into b, converting granularity as
 * vmig_bitmap_convert does, clipped to b's range. src_base and src_len are
 * multiples of src_pgsize. Returns 0 or -EINVAL (bad sizes), -ENOMEM.
 */
int vmig_dbitmap_or_bitmap(struct vmig_dbitmap *b, uint64_t src_base,
			   const uint64_t *src, uint64_t src_pgsize,
			   uint64_t src_len);

#endif /* VMIG_CORE_BITMAP_H */
