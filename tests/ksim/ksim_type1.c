/*
 * ksim_type1.c: the VFIO container and group interfaces of the kernel
 * simulator: /dev/vfio/vfio as the type1 IOMMU driver
 * (drivers/vfio/container.c, vfio_iommu_type1.c) or, with
 * ksim_params.iommufd_compat, as iommufd's VFIO compatibility container
 * (drivers/iommu/iommufd/vfio_compat.c); /dev/vfio/N groups
 * (drivers/vfio/group.c); and the address space that a container gives
 * the devices attached to it.
 *
 * Where shared docs/kernel-uapi.md is silent, this follows the Linux 6.12
 * sources named above, and says so where it matters. The simulated
 * machine is an x86-64 host with an Intel IOMMU: 48-bit domains whose
 * page sizes are the smallest one (ksim_params.type1_pgsize) plus 2 MiB
 * and 1 GiB, with the MSI window as the only reserved region, interrupt
 * remapping, snoop control, and CAP_IPC_LOCK (no locked-memory limit).
 */
#include <errno.h>
#include <fcntl.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <linux/vfio.h>

#include "ksim_internal.h"

/* vfio_iommu_type1's dma_entry_limit module parameter (U16_MAX). */
#define T1_DMA_ENTRY_LIMIT 65535u
/* DIRTY_BITMAP_PAGES_MAX and DIRTY_BITMAP_SIZE_MAX. */
#define T1_DIRTY_PAGES_MAX 0x7fffffffull
#define T1_DIRTY_BITMAP_SIZE_MAX (1ull << 28)
/* The Intel domain: 48-bit aperture, the MSI window reserved. */
#define T1_APERTURE_END ((1ull << 48) - 1)
#define T1_MSI_START 0xfee00000ull
#define T1_MSI_END 0xfeefffffull
#define T1_PAGE_MASK (~(KSIM_PAGE_SIZE - 1))
#define T1_SZ_2M (1ull << 21)
#define T1_SZ_1G (1ull << 30)
/* A device name longer than this is refused (strndup_user, PAGE_SIZE). */
#define T1_NAME_MAX KSIM_PAGE_SIZE
/* iommufd's compatibility container reports this many DMA entries. */
#define COMPAT_DMA_AVAIL UINT32_MAX

/* A mapping: a vfio_dma of type1, an iopt_area of the compat IOAS. */
struct t1_dma {
	uint64_t iova;
	uint64_t size;
	uint64_t vaddr;
	int prot;
	bool iommu_mapped;  /* pinned and mapped in an IOMMU domain */
	bool vaddr_invalid; /* VFIO_DMA_UNMAP_FLAG_VADDR */
	uint64_t *bitmap;   /* while tracking: one bit per smallest page */
	size_t bitmap_words;
};

struct t1_range {
	uint64_t start;
	uint64_t last;
};

struct ksim_container {
	struct ksim *k;
	unsigned int refs; /* its fd, its groups, compat device bindings */
	bool fd_open;
	bool compat;       /* iommufd's compatibility container */

	/* type1: the IOMMU driver state, once VFIO_SET_IOMMU succeeded. */
	bool iommu_set;
	bool v2;
	bool nesting;
	bool tracking;     /* dirty_page_tracking */
	uint64_t pgsize_bitmap;
	uint32_t dma_avail;
	unsigned int vaddr_invalid_count;
	unsigned int nr_domain_groups;   /* IOMMU-backed (PCI) groups */
	unsigned int nr_emulated_groups; /* mdev groups */
	uint64_t num_non_pinned_groups;
	struct t1_range iova[3]; /* the valid IOVA ranges (iova_list) */
	unsigned int nr_iova;

	/* compat: the compat IOAS exists (a group was set to it). */
	bool compat_ioas;
	bool compat_no_large; /* SET_IOMMU(TYPE1): iopt_disable_large_pages */

	/* The mappings, sorted by iova, disjoint. */
	struct t1_dma *dmas;
	size_t nr_dmas;
	size_t cap_dmas;
};

/* Per-device state of this part. */
struct t1_dev {
	bool holds_group_file;       /* type1 first open took a file ref */
	struct ksim_container *compat; /* compat binding (holds a ref) */
};

static const struct ksim_as_ops t1_as_ops;
static const struct ksim_as_ops compat_as_ops;

static struct t1_dev *t1dev(struct ksim_device *d)
{
	return d->ext[KSIM_EXT_TYPE1];
}

/* DIRTY_BITMAP_BYTES(): whole 64-bit words, wrapping as the kernel's. */
static uint64_t dirty_bitmap_bytes(uint64_t npages)
{
	return ((npages + 63) & ~63ull) / 8;
}

static uint64_t min_pgsize(const struct ksim_container *c)
{
	return 1ull << ksim_ffs64(c->pgsize_bitmap);
}

/* The page sizes of the simulated IOMMU domain (vfio_update_pgsize_bitmap). */
static uint64_t domain_pgsizes(const struct ksim *k)
{
	uint64_t b = k->type1_pgsize;

	if (T1_SZ_2M > k->type1_pgsize)
		b |= T1_SZ_2M;
	if (T1_SZ_1G > k->type1_pgsize)
		b |= T1_SZ_1G;
	if (b & ~T1_PAGE_MASK)
		b = (b & T1_PAGE_MASK) | KSIM_PAGE_SIZE;
	return b;
}

/* ------------------------------------------------------------------ */
/* Containers and their mappings                                       */

static struct ksim_container *container_new(struct ksim *k, bool compat)
{
	struct ksim_container *c = calloc(1, sizeof(*c));

	if (!c)
		return NULL;
	c->k = k;
	c->compat = compat;
	c->pgsize_bitmap = T1_PAGE_MASK;
	return c;
}

static void dma_free_bitmap(struct t1_dma *dma)
{
	free(dma->bitmap);
	dma->bitmap = NULL;
	dma->bitmap_words = 0;
}

static void container_put(struct ksim_container *c)
{
	size_t i;

	if (--c->refs)
		return;
	for (i = 0; i < c->nr_dmas; i++)
		dma_free_bitmap(&c->dmas[i]);
	free(c->dmas);
	free(c);
}

/* The first mapping whose last byte is at or after iova, as an index. */
static uint64_t dma_last(const void *dma)
{
	const struct t1_dma *d = dma;

	return d->iova + (d->size - 1);
}

static size_t dma_lower_bound(const struct ksim_container *c, uint64_t iova)
{
	return ksim_lower_bound(c->dmas, c->nr_dmas, sizeof(*c->dmas), iova,
				dma_last);
}

/*
 * vfio_find_dma(): a mapping overlapping [start, start + size), or the
 * one holding start when size is 0; NULL when none.
 */
static struct t1_dma *dma_find(struct ksim_container *c, uint64_t start,
			       uint64_t size)
{
	uint64_t last = size ? start + (size - 1) : start;
	size_t i;

	if (last < start)
		last = UINT64_MAX;
	i = dma_lower_bound(c, start);
	if (i < c->nr_dmas && c->dmas[i].iova <= last)
		return &c->dmas[i];
	return NULL;
}

static int dma_insert(struct ksim_container *c, const struct t1_dma *dma)
{
	size_t i = dma_lower_bound(c, dma->iova);
	struct t1_dma *p;

	p = ksim_array_grow(c->dmas, &c->cap_dmas, c->nr_dmas, sizeof(*p), 16);
	if (!p)
		return -ENOMEM;
	c->dmas = p;
	ksim_array_open(p, c->nr_dmas, i, sizeof(*p));
	c->dmas[i] = *dma;
	c->nr_dmas++;
	return 0;
}

/*
 * vfio_remove_dma(): the drivers of pinning devices unpin what they had
 * pinned there (vfio_notify_dma_unmap) before it goes.
 */
static void dma_remove(struct ksim *k, struct ksim_container *c, size_t i)
{
	struct t1_dma *dma = &c->dmas[i];

	ksim_pins_drop_range(k, c, dma->iova, dma->size);
	if (dma->vaddr_invalid)
		c->vaddr_invalid_count--;
	dma_free_bitmap(dma);
	memmove(c->dmas + i, c->dmas + i + 1,
		(c->nr_dmas - i - 1) * sizeof(*c->dmas));
	c->nr_dmas--;
	if (!c->compat)
		c->dma_avail++;
}

static void dma_remove_all(struct ksim *k, struct ksim_container *c)
{
	while (c->nr_dmas)
		dma_remove(k, c, c->nr_dmas - 1);
}

/* The live and gone groups set to c, in one walk. */
static unsigned int container_nr_groups(struct ksim *k,
					const struct ksim_container *c)
{
	const struct ksim_group *g;
	unsigned int n = 0;

	for (g = k->groups; g; g = g->next)
		n += g->container == c;
	for (g = k->gone_groups; g; g = g->next)
		n += g->container == c;
	return n;
}

static void group_set_as(struct ksim *k, struct ksim_group *g,
			 const struct ksim_as_ops *ops, void *as)
{
	struct ksim_device *d;

	for (d = k->devices; d; d = d->next)
		if (d->group == g)
			ksim_device_set_as(d, ops, as);
}

/* ------------------------------------------------------------------ */
/* Dirty bitmaps (software only: type1 never reads IOMMU dirty bits)    */

/*
 * Makes room for the bits of dma at page size pgsize, plus a spare word
 * as vfio_dma_bitmap_alloc() allocates it.
 */
static int dma_bitmap_reserve(struct t1_dma *dma, uint64_t pgsize)
{
	uint64_t npages = dma->size >> ksim_ffs64(pgsize);
	size_t words = (size_t)(dirty_bitmap_bytes(npages) / 8 + 1);
	uint64_t *bm;

	if (dma->bitmap && dma->bitmap_words >= words)
		return 0;
	bm = realloc(dma->bitmap, words * sizeof(*bm));
	if (!bm)
		return -ENOMEM;
	memset(bm + dma->bitmap_words, 0,
	       (words - dma->bitmap_words) * sizeof(*bm));
	dma->bitmap = bm;
	dma->bitmap_words = words;
	return 0;
}

/* vfio_dma_bitmap_alloc(): refuses more than INT_MAX pages. */
static int dma_bitmap_alloc(struct t1_dma *dma, uint64_t pgsize)
{
	if (dma->size / pgsize > T1_DIRTY_PAGES_MAX)
		return -EINVAL;
	return dma_bitmap_reserve(dma, pgsize);
}

struct populate_ctx {
	struct t1_dma *dma;
	unsigned int pgshift;
};

static void populate_one(void *opaque, uint64_t iova)
{
	struct populate_ctx *p = opaque;

	ksim_bit_set(p->dma->bitmap, (iova - p->dma->iova) >> p->pgshift);
}

/* vfio_dma_populate_bitmap(): the pages pinned now are dirty. */
static void dma_populate_pinned(struct ksim *k, struct ksim_container *c,
				struct t1_dma *dma, uint64_t pgsize)
{
	struct populate_ctx p = { dma, ksim_ffs64(pgsize) };

	ksim_pins_for_each(k, c, dma->iova, dma->size, populate_one, &p);
}

static void dma_set_bits(struct t1_dma *dma, uint64_t first, uint64_t n)
{
	uint64_t i;

	for (i = 0; i < n; i++)
		ksim_bit_set(dma->bitmap, first + i);
}

/* vfio_iommu_populate_bitmap_full(): every page of every mapping. */
static void populate_full(struct ksim_container *c)
{
	uint64_t pgsize = min_pgsize(c);
	size_t i;

	for (i = 0; i < c->nr_dmas; i++) {
		struct t1_dma *dma = &c->dmas[i];

		if (dma_bitmap_reserve(dma, pgsize))
			continue; /* the kernel's bitmap exists already */
		dma_set_bits(dma, 0, dma->size >> ksim_ffs64(pgsize));
	}
}

static void bitmap_free_all(struct ksim_container *c)
{
	size_t i;

	for (i = 0; i < c->nr_dmas; i++)
		dma_free_bitmap(&c->dmas[i]);
}

/* vfio_dma_bitmap_alloc_all(): START seeds each bitmap with the pins. */
static int bitmap_alloc_all(struct ksim *k, struct ksim_container *c,
			    uint64_t pgsize)
{
	size_t i;
	int ret;

	for (i = 0; i < c->nr_dmas; i++) {
		ret = dma_bitmap_alloc(&c->dmas[i], pgsize);
		if (ret) {
			bitmap_free_all(c);
			return ret;
		}
		dma_populate_pinned(k, c, &c->dmas[i], pgsize);
	}
	return 0;
}

/*
 * update_user_bitmap(): writes the bits of one mapping into the user's
 * bitmap, relative to base. It mirrors the kernel's word operations bit
 * by bit, pitfalls included: the mapping's bits are shifted left in place
 * over whole words (bits shifted past the mapping's end stay in the spare
 * word and resurface in later reports), the first user word is ORed in
 * whole when the mapping starts mid-word, and whole words are written
 * back, so a non-zero buffer leaks into the result.
 */
static int update_user_bitmap(struct ksim_container *c, struct t1_dma *dma,
			      uint64_t *ubitmap, uint64_t base,
			      uint64_t pgsize)
{
	unsigned int pgshift = ksim_ffs64(pgsize);
	uint64_t nbits = dma->size >> pgshift;
	uint64_t bit_offset = (dma->iova - base) >> pgshift;
	uint64_t copy_offset = bit_offset / 64;
	uint64_t shift = bit_offset % 64;
	uint64_t words = (nbits + shift + 63) / 64;
	uint64_t i, leftover;
	int ret;

	ret = dma_bitmap_reserve(dma, pgsize);
	if (ret)
		return ret;
	if (c->num_non_pinned_groups && dma->iommu_mapped)
		dma_set_bits(dma, 0, nbits);
	if (shift) {
		for (i = words * 64; i-- > shift;) {
			if (ksim_bit_test(dma->bitmap, i - shift))
				ksim_bit_set(dma->bitmap, i);
			else
				ksim_bit_clear(dma->bitmap, i);
		}
		for (i = 0; i < shift; i++)
			ksim_bit_clear(dma->bitmap, i);
		ret = ksim_copy_from_user(&leftover, ubitmap + copy_offset,
					  sizeof(leftover));
		if (ret)
			return ret;
		dma->bitmap[0] |= leftover;
	}
	return ksim_copy_to_user(ubitmap + copy_offset, dma->bitmap,
				 words * sizeof(uint64_t));
}

/*
 * After a report the mapping's log restarts from the pages pinned now:
 * pinned pages are reported again on every query, vfio_dma_rw() writes
 * once.
 */
static void dma_log_reset(struct ksim *k, struct ksim_container *c,
			  struct t1_dma *dma, uint64_t pgsize)
{
	uint64_t i, nbits = dma->size >> ksim_ffs64(pgsize);

	for (i = 0; i < nbits; i++)
		ksim_bit_clear(dma->bitmap, i);
	dma_populate_pinned(k, c, dma, pgsize);
}

/* vfio_iova_dirty_bitmap(). */
static int iova_dirty_bitmap(struct ksim *k, struct ksim_container *c,
			     uint64_t *ubitmap, uint64_t iova, uint64_t size,
			     uint64_t pgsize)
{
	uint64_t last = iova + size - 1;
	struct t1_dma *dma;
	size_t i;
	int ret;

	/* The range may cover several mappings but cut through none. */
	dma = dma_find(c, iova, 1);
	if (dma && dma->iova != iova)
		return -EINVAL;
	dma = dma_find(c, last, 0);
	if (dma && dma->iova + (dma->size - 1) != last)
		return -EINVAL;
	for (i = dma_lower_bound(c, iova); i < c->nr_dmas; i++) {
		dma = &c->dmas[i];
		if (dma->iova < iova)
			continue;
		if (dma->iova > last)
			break;
		ret = update_user_bitmap(c, dma, ubitmap, iova, pgsize);
		if (ret)
			return ret;
		dma_log_reset(k, c, dma, pgsize);
	}
	return 0;
}

/* verify_bitmap_size(). */
static int verify_bitmap_size(uint64_t npages, uint64_t bitmap_size)
{
	if (!npages || !bitmap_size ||
	    bitmap_size > T1_DIRTY_BITMAP_SIZE_MAX ||
	    bitmap_size < dirty_bitmap_bytes(npages))
		return -EINVAL;
	return 0;
}

/* ------------------------------------------------------------------ */
/* The type1 IOMMU driver: attaching and detaching groups               */

static void set_iova_aperture(struct ksim_container *c)
{
	c->iova[0].start = 0;
	c->iova[0].last = T1_MSI_START - 1;
	c->iova[1].start = T1_MSI_END + 1;
	c->iova[1].last = T1_APERTURE_END;
	c->nr_iova = 2;
}

static bool iova_valid(const struct ksim_container *c, uint64_t start,
		       uint64_t last)
{
	unsigned int i;

	for (i = 0; i < c->nr_iova; i++)
		if (start >= c->iova[i].start && last <= c->iova[i].last)
			return true;
	/* A container holding only mdevs has an empty list: anything goes. */
	return !c->nr_iova;
}

/*
 * vfio_iommu_type1_attach_group() for an IOMMU-backed group: the checks
 * that can fail in the simulated machine, in the kernel's order. The
 * first such group creates the domain and replays every mapping into it.
 */
static int attach_pci_group(struct ksim *k, struct ksim_container *c)
{
	uint64_t pgsizes, minpg;
	size_t i;

	if (c->nesting)
		return -EINVAL; /* iommu_enable_nesting(): Intel has none */
	if (c->nr_iova) {
		/* vfio_iommu_aper_conflict(): aperture [0, 2^48). */
		if (c->iova[0].start > T1_APERTURE_END)
			return -EINVAL;
		if (c->iova[c->nr_iova - 1].last > T1_APERTURE_END &&
		    dma_find(c, T1_APERTURE_END + 1,
			     c->iova[c->nr_iova - 1].last - T1_APERTURE_END))
			return -EINVAL;
	}
	/* vfio_iommu_resv_conflict(): the MSI window. */
	if (dma_find(c, T1_MSI_START, T1_MSI_END - T1_MSI_START + 1))
		return -EINVAL;
	if (c->nr_domain_groups)
		return 0; /* joins the existing domain: nothing to replay */
	pgsizes = domain_pgsizes(k);
	minpg = 1ull << ksim_ffs64(pgsizes);
	for (i = 0; i < c->nr_dmas; i++) {
		const struct t1_dma *dma = &c->dmas[i];

		/* vfio_iommu_replay(): pin, then iommu_map(). */
		if (ksim_uva_faults(dma->vaddr, dma->size))
			return -EFAULT;
		if ((dma->iova | dma->size | dma->vaddr) & (minpg - 1))
			return -EINVAL;
		if (dma->iova + (dma->size - 1) > T1_APERTURE_END)
			return -EFAULT; /* intel_iommu_map(): beyond gaw */
	}
	for (i = 0; i < c->nr_dmas; i++)
		c->dmas[i].iommu_mapped = true;
	c->pgsize_bitmap = pgsizes;
	return 0;
}

static int t1_attach_group(struct ksim *k, struct ksim_container *c,
			   struct ksim_group *g)
{
	int ret;

	if (c->vaddr_invalid_count)
		return -EBUSY;
	if (g->kind == KSIM_DEV_MDEV) {
		/*
		 * An emulated group cannot dirty memory but through pinning
		 * and vfio_dma_rw(), which are tracked: pinned scope at once.
		 */
		c->nr_emulated_groups++;
		g->t1_pinned_scope = true;
	} else {
		ret = attach_pci_group(k, c);
		if (ret)
			return ret;
		set_iova_aperture(c);
		c->nr_domain_groups++;
		/* It can dirty memory directly until it pins a page. */
		c->num_non_pinned_groups++;
		g->t1_pinned_scope = false;
	}
	g->t1_attached = true;
	group_set_as(k, g, &t1_as_ops, c);
	return 0;
}

/* vfio_iommu_type1_detach_group(). */
static void t1_detach_group(struct ksim *k, struct ksim_container *c,
			    struct ksim_group *g)
{
	bool update_dirty_scope = !g->t1_pinned_scope;
	size_t i;

	if (!g->t1_attached)
		return;
	g->t1_attached = false;
	group_set_as(k, g, NULL, NULL);
	if (g->kind == KSIM_DEV_MDEV) {
		if (!--c->nr_emulated_groups && !c->nr_domain_groups)
			dma_remove_all(k, c);
	} else if (!--c->nr_domain_groups) {
		if (!c->nr_emulated_groups) {
			dma_remove_all(k, c);
		} else {
			/* vfio_iommu_unmap_unpin_reaccount() */
			for (i = 0; i < c->nr_dmas; i++)
				c->dmas[i].iommu_mapped = false;
		}
		c->pgsize_bitmap = T1_PAGE_MASK;
		/* Aperture expanded, no group left to reserve anything. */
		if (c->nr_iova) {
			c->iova[0].start = 0;
			c->iova[0].last = UINT64_MAX;
			c->nr_iova = 1;
		}
	}
	/* Removing a group that could dirty anything may promote scope. */
	if (update_dirty_scope) {
		c->num_non_pinned_groups--;
		if (c->tracking)
			populate_full(c);
	}
}

/* vfio_iommu_type1_release(): the container goes back to "no IOMMU". */
static void t1_release(struct ksim *k, struct ksim_container *c)
{
	dma_remove_all(k, c);
	c->iommu_set = false;
	c->v2 = false;
	c->nesting = false;
	c->tracking = false;
	c->pgsize_bitmap = T1_PAGE_MASK;
	c->vaddr_invalid_count = 0;
	c->nr_domain_groups = 0;
	c->nr_emulated_groups = 0;
	c->num_non_pinned_groups = 0;
	c->nr_iova = 0;
}

/* vfio_container_attach_group() and the iommufd path of SET_CONTAINER. */
static int container_attach_group(struct ksim *k, struct ksim_container *c,
				  struct ksim_group *g)
{
	int ret;

	if (c->compat) {
		/* iommufd_vfio_compat_ioas_create(): once. */
		c->compat_ioas = true;
	} else {
		/* iommu_group_claim_dma_owner(): cdev users own it. */
		if (g->cdev_open_count)
			return -EBUSY;
		if (c->iommu_set) {
			ret = t1_attach_group(k, c, g);
			if (ret)
				return ret;
		}
	}
	g->container = c;
	g->container_users = 1;
	c->refs++;
	return 0;
}

/* vfio_group_detach_container(), or dropping the group's iommufd. */
static void group_detach_container(struct ksim *k, struct ksim_group *g)
{
	struct ksim_container *c = g->container;

	g->container = NULL;
	g->container_users = 0;
	if (!c->compat && c->iommu_set) {
		t1_detach_group(k, c, g);
		/* The last group leaving deprivileges the container. */
		if (!container_nr_groups(k, c))
			t1_release(k, c);
	}
	container_put(c);
}

/* ------------------------------------------------------------------ */
/* type1 container ioctls                                              */

static int t1_check_extension(struct ksim_container *c, unsigned long arg)
{
	switch (arg) {
	case VFIO_TYPE1_IOMMU:
	case VFIO_TYPE1v2_IOMMU:
	case VFIO_TYPE1_NESTING_IOMMU:
	case VFIO_UNMAP_ALL:
		return 1;
	case VFIO_UPDATE_VADDR:
		/* Refused while mdevs are present: they pin and rw. */
		return c->iommu_set && !c->nr_emulated_groups;
	case VFIO_DMA_CC_IOMMU:
		/* Every domain enforces coherency (snoop control). */
		return c->iommu_set;
	default:
		return 0;
	}
}

/* vfio_ioctl_set_iommu(): type1 is the only IOMMU driver registered. */
static int t1_set_iommu(struct ksim *k, struct ksim_container *c,
			unsigned long arg)
{
	struct ksim_group *g;
	int ret = 0;

	if (!container_nr_groups(k, c) || c->iommu_set)
		return -EINVAL;
	switch (arg) {
	case VFIO_TYPE1_IOMMU:
		break;
	case VFIO_TYPE1_NESTING_IOMMU:
		c->nesting = true;
		c->v2 = true;
		break;
	case VFIO_TYPE1v2_IOMMU:
		c->v2 = true;
		break;
	case VFIO_UNMAP_ALL:
		return -EINVAL; /* claimed by type1, refused by its open() */
	default:
		return -ENODEV; /* no driver claims the extension */
	}
	c->dma_avail = T1_DMA_ENTRY_LIMIT;
	c->pgsize_bitmap = T1_PAGE_MASK;
	for (g = k->groups; g && !ret; g = g->next)
		if (g->container == c)
			ret = t1_attach_group(k, c, g);
	if (ret) {
		for (g = k->groups; g; g = g->next)
			if (g->container == c && g->t1_attached)
				t1_detach_group(k, c, g);
		t1_release(k, c);
		return ret;
	}
	c->iommu_set = true;
	return 0;
}

/* Builds one capability at off in buf; returns its size rounded to 8. */
static size_t cap_put(uint8_t *buf, size_t off, uint16_t id,
		      const void *body, size_t body_len)
{
	struct vfio_info_cap_header h = { .id = id, .version = 1, .next = 0 };
	size_t size = sizeof(h) + body_len;

	memcpy(buf + off, &h, sizeof(h));
	memcpy(buf + off + sizeof(h), body, body_len);
	size = (size + 7) & ~(size_t)7;
	memset(buf + off + sizeof(h) + body_len, 0,
	       size - sizeof(h) - body_len);
	return size;
}

static void cap_link(uint8_t *buf, size_t prev, uint32_t next)
{
	memcpy(buf + prev + offsetof(struct vfio_info_cap_header, next),
	       &next, sizeof(next));
}

/* The valid IOVA ranges as a cap body (nr_iovas, reserved, ranges). */
static size_t iova_cap_body(const struct t1_range *r, unsigned int n,
			    uint8_t *body)
{
	uint32_t nr = n, zero = 0;
	unsigned int i;

	memcpy(body, &nr, 4);
	memcpy(body + 4, &zero, 4);
	for (i = 0; i < n; i++) {
		struct vfio_iova_range v = { r[i].start, r[i].last };

		memcpy(body + 8 + i * sizeof(v), &v, sizeof(v));
	}
	return 8 + n * sizeof(struct vfio_iova_range);
}

/*
 * vfio_iommu_type1_get_info(): capabilities in the kernel's order
 * (migration, dma_avail, iova_range), each rounded up to 8. A short
 * argsz gets the size needed back and no capabilities.
 */
static int t1_get_info(struct ksim_container *c, void *arg)
{
	const size_t minsz = offsetof(struct vfio_iommu_type1_info,
				      cap_offset);
	struct vfio_iommu_type1_info info = { 0 };
	uint8_t caps[256], body[64];
	size_t size = 0, prev, copy;
	uint64_t pg = min_pgsize(c), max = T1_DIRTY_BITMAP_SIZE_MAX;
	uint32_t flags = 0, avail = c->dma_avail;
	int ret;

	ret = ksim_argsz_in(&info, arg, minsz);
	if (ret)
		return ret;
	copy = info.argsz < sizeof(info) ? info.argsz : sizeof(info);
	info.flags = VFIO_IOMMU_INFO_PGSIZES;
	info.iova_pgsizes = c->pgsize_bitmap;

	/* Migration: flags, pgsize_bitmap at 16, max size at 24. */
	memset(body, 0, sizeof(body));
	memcpy(body, &flags, 4);
	memcpy(body + 8, &pg, 8);
	memcpy(body + 16, &max, 8);
	prev = size;
	size += cap_put(caps, size, VFIO_IOMMU_TYPE1_INFO_CAP_MIGRATION,
			body, 24);
	cap_link(caps, prev, size);
	prev = size;
	size += cap_put(caps, size, VFIO_IOMMU_TYPE1_INFO_DMA_AVAIL, &avail,
			sizeof(avail));
	if (c->nr_iova) {
		cap_link(caps, prev, size);
		size += cap_put(caps, size,
				VFIO_IOMMU_TYPE1_INFO_CAP_IOVA_RANGE, body,
				iova_cap_body(c->iova, c->nr_iova, body));
	}
	info.flags |= VFIO_IOMMU_INFO_CAPS;
	if (info.argsz < sizeof(info) + size) {
		info.argsz = sizeof(info) + size;
	} else {
		/* vfio_info_cap_shift(): offsets from the info's start. */
		size_t off = 0;
		struct vfio_info_cap_header h;

		for (;;) {
			memcpy(&h, caps + off, sizeof(h));
			if (!h.next)
				break;
			cap_link(caps, off, h.next + sizeof(info));
			off = h.next;
		}
		ret = ksim_copy_to_user((uint8_t *)arg + sizeof(info), caps,
					size);
		if (ret)
			return ret;
		info.cap_offset = sizeof(info);
	}
	return ksim_copy_to_user(arg, &info, copy);
}

/* vfio_iommu_type1_map_dma() and vfio_dma_do_map(). */
static int t1_map_dma(struct ksim *k, struct ksim_container *c, void *arg)
{
	const uint32_t mask = VFIO_DMA_MAP_FLAG_READ |
			      VFIO_DMA_MAP_FLAG_WRITE | VFIO_DMA_MAP_FLAG_VADDR;
	struct vfio_iommu_type1_dma_map map;
	struct t1_dma new = { 0 }, *dma;
	bool set_vaddr;
	uint64_t pg;
	int prot = 0, ret;

	(void)k;
	ret = ksim_copy_from_user(&map, arg, sizeof(map));
	if (ret)
		return ret;
	if (map.argsz < sizeof(map) || map.flags & ~mask)
		return -EINVAL;
	set_vaddr = map.flags & VFIO_DMA_MAP_FLAG_VADDR;
	if (map.flags & VFIO_DMA_MAP_FLAG_WRITE)
		prot |= KSIM_PROT_WRITE;
	if (map.flags & VFIO_DMA_MAP_FLAG_READ)
		prot |= KSIM_PROT_READ;
	if ((prot && set_vaddr) || (!prot && !set_vaddr))
		return -EINVAL;
	pg = min_pgsize(c);
	if (!map.size || (map.size | map.iova | map.vaddr) & (pg - 1))
		return -EINVAL;
	if (map.iova + map.size - 1 < map.iova ||
	    map.vaddr + map.size - 1 < map.vaddr)
		return -EINVAL;
	dma = dma_find(c, map.iova, map.size);
	if (set_vaddr) {
		if (!dma)
			return -ENOENT;
		if (!dma->vaddr_invalid || dma->iova != map.iova ||
		    dma->size != map.size)
			return -EINVAL;
		dma->vaddr = map.vaddr;
		dma->vaddr_invalid = false;
		c->vaddr_invalid_count--;
		return 0;
	}
	if (dma)
		return -EEXIST;
	if (!c->dma_avail)
		return -ENOSPC;
	if (!iova_valid(c, map.iova, map.iova + map.size - 1))
		return -EINVAL;
	new.iova = map.iova;
	new.size = map.size;
	new.vaddr = map.vaddr;
	new.prot = prot;
	/* With a domain the pages are pinned and mapped now. */
	if (c->nr_domain_groups) {
		if (ksim_uva_faults(map.vaddr, map.size))
			return -EFAULT;
		new.iommu_mapped = true;
	}
	if (c->tracking) {
		/* A mapping made while tracking starts clean. */
		ret = dma_bitmap_alloc(&new, pg);
		if (ret)
			return ret;
	}
	ret = dma_insert(c, &new);
	if (ret) {
		dma_free_bitmap(&new);
		return ret;
	}
	c->dma_avail--;
	return 0;
}

/* vfio_dma_do_unmap(). */
static int t1_do_unmap(struct ksim *k, struct ksim_container *c,
		       struct vfio_iommu_type1_dma_unmap *unmap,
		       const struct vfio_bitmap *bitmap)
{
	bool unmap_all = unmap->flags & VFIO_DMA_UNMAP_FLAG_ALL;
	bool inval = unmap->flags & VFIO_DMA_UNMAP_FLAG_VADDR;
	bool get_dirty = unmap->flags & VFIO_DMA_UNMAP_FLAG_GET_DIRTY_BITMAP;
	uint64_t iova = unmap->iova, size = unmap->size, unmapped = 0, pg;
	size_t i, first;
	struct t1_dma *dma;
	int ret = -EINVAL;

	if (inval && c->nr_emulated_groups) {
		ret = -EBUSY; /* mdevs cannot cope with a missing vaddr */
		goto out;
	}
	pg = min_pgsize(c);
	if (iova & (pg - 1))
		goto out;
	if (unmap_all) {
		if (iova || size)
			goto out;
		size = UINT64_MAX;
	} else if (!size || size & (pg - 1) || iova + size - 1 < iova) {
		goto out;
	}
	if (get_dirty && (!c->tracking || bitmap->pgsize != pg))
		goto out;
	if (c->v2 && !unmap_all) {
		/* v2: the range must not bisect a mapping. */
		dma = dma_find(c, iova, 1);
		if (dma && dma->iova != iova)
			goto out;
		dma = dma_find(c, iova + size - 1, 0);
		if (dma && dma->iova + dma->size != iova + size)
			goto out;
	}
	ret = 0;
	/* vfio_find_dma_first_node() */
	first = i = dma_lower_bound(c, iova);
	while (i < c->nr_dmas) {
		dma = &c->dmas[i];
		if (dma->iova >= iova + size)
			break;
		/* v1: a request starting inside a mapping unmaps nothing. */
		if (!c->v2 && iova > dma->iova)
			break;
		if (inval) {
			if (dma->vaddr_invalid) {
				size_t j;

				for (j = first; j < i; j++) {
					c->dmas[j].vaddr_invalid = false;
					c->vaddr_invalid_count--;
				}
				ret = -EINVAL;
				unmapped = 0;
				break;
			}
			dma->vaddr_invalid = true;
			c->vaddr_invalid_count++;
			unmapped += dma->size;
			i++;
			continue;
		}
		/* The pinning drivers unpin first (vfio_notify_dma_unmap). */
		ksim_pins_drop_range(k, c, dma->iova, dma->size);
		if (get_dirty) {
			ret = update_user_bitmap(c, dma,
						 (uint64_t *)(uintptr_t)
							 bitmap->data,
						 iova, pg);
			if (ret)
				break;
		}
		unmapped += dma->size;
		dma_remove(k, c, i);
	}
out:
	unmap->size = unmapped;
	return ret;
}

static int t1_unmap_dma(struct ksim *k, struct ksim_container *c, void *arg)
{
	const uint32_t mask = VFIO_DMA_UNMAP_FLAG_GET_DIRTY_BITMAP |
			      VFIO_DMA_UNMAP_FLAG_VADDR |
			      VFIO_DMA_UNMAP_FLAG_ALL;
	struct vfio_iommu_type1_dma_unmap unmap;
	struct vfio_bitmap bitmap = { 0 };
	const size_t minsz = sizeof(unmap);
	int ret;

	ret = ksim_argsz_in(&unmap, arg, minsz);
	if (ret)
		return ret;
	if (unmap.flags & ~mask)
		return -EINVAL;
	if ((unmap.flags & VFIO_DMA_UNMAP_FLAG_GET_DIRTY_BITMAP) &&
	    (unmap.flags & (VFIO_DMA_UNMAP_FLAG_ALL |
			    VFIO_DMA_UNMAP_FLAG_VADDR)))
		return -EINVAL;
	if (unmap.flags & VFIO_DMA_UNMAP_FLAG_GET_DIRTY_BITMAP) {
		if (unmap.argsz < minsz + sizeof(bitmap))
			return -EINVAL;
		ret = ksim_copy_from_user(&bitmap, (uint8_t *)arg + minsz,
					  sizeof(bitmap));
		if (ret)
			return ret;
		if (!ksim_access_ok(bitmap.data, bitmap.size))
			return -EINVAL;
		ret = verify_bitmap_size(unmap.size >> ksim_ffs64(bitmap.pgsize),
					 bitmap.size);
		if (ret)
			return ret;
	}
	ret = t1_do_unmap(k, c, &unmap, &bitmap);
	if (ret)
		return ret;
	return ksim_copy_to_user(arg, &unmap, minsz);
}

/* vfio_iommu_type1_dirty_pages(). */
static int t1_dirty_pages(struct ksim *k, struct ksim_container *c, void *arg)
{
	const uint32_t mask = VFIO_IOMMU_DIRTY_PAGES_FLAG_START |
			      VFIO_IOMMU_DIRTY_PAGES_FLAG_STOP |
			      VFIO_IOMMU_DIRTY_PAGES_FLAG_GET_BITMAP;
	struct vfio_iommu_type1_dirty_bitmap dirty;
	struct vfio_iommu_type1_dirty_bitmap_get range;
	const size_t minsz = sizeof(dirty);
	uint64_t pg;
	int ret;

	if (!c->v2)
		return -EACCES;
	ret = ksim_argsz_in(&dirty, arg, minsz);
	if (ret)
		return ret;
	if (dirty.flags & ~mask)
		return -EINVAL;
	/* Exactly one of START, STOP, GET_BITMAP. */
	if (!dirty.flags || dirty.flags & (dirty.flags - 1))
		return -EINVAL;
	pg = min_pgsize(c);
	if (dirty.flags & VFIO_IOMMU_DIRTY_PAGES_FLAG_START) {
		if (c->tracking)
			return 0;
		ret = bitmap_alloc_all(k, c, pg);
		if (!ret)
			c->tracking = true;
		return ret;
	}
	if (dirty.flags & VFIO_IOMMU_DIRTY_PAGES_FLAG_STOP) {
		if (c->tracking) {
			c->tracking = false;
			bitmap_free_all(c);
		}
		return 0;
	}
	if (dirty.argsz - minsz < sizeof(range))
		return -EINVAL;
	ret = ksim_copy_from_user(&range, (uint8_t *)arg + minsz,
				  sizeof(range));
	if (ret)
		return ret;
	if (range.iova + range.size < range.iova)
		return -EINVAL;
	if (!ksim_access_ok(range.bitmap.data, range.bitmap.size))
		return -EINVAL;
	ret = verify_bitmap_size(range.size >> ksim_ffs64(range.bitmap.pgsize),
				 range.bitmap.size);
	if (ret)
		return ret;
	/* Only the smallest IOMMU page size, and aligned to it. */
	if (range.bitmap.pgsize != pg || range.iova & (pg - 1) ||
	    !range.size || range.size & (pg - 1))
		return -EINVAL;
	if (!c->tracking)
		return -EINVAL;
	return iova_dirty_bitmap(k, c,
				 (uint64_t *)(uintptr_t)range.bitmap.data,
				 range.iova, range.size, pg);
}

/* ------------------------------------------------------------------ */
/* iommufd's VFIO compatibility container (vfio_compat.c)               */

/* Whether an IOMMU-backed device is attached (a domain exists). */
static bool compat_has_domain(const struct ksim *k,
			      const struct ksim_container *c)
{
	const struct ksim_device *d;

	for (d = k->devices; d; d = d->next)
		if (d->as == c && d->kind == KSIM_DEV_PCI)
			return true;
	return false;
}

/*
 * The IOAS alignment: 1 for an IOAS nothing is attached to, PAGE_SIZE
 * without large pages (SET_IOMMU(TYPE1)) or with a pinning mdev, the
 * domain's smallest page size with a physical device.
 */
static uint64_t compat_alignment(const struct ksim *k,
				 const struct ksim_container *c,
				 const struct ksim_device *extra)
{
	const struct ksim_device *d = k->devices;
	uint64_t a = c->compat_no_large ? KSIM_PAGE_SIZE : 1;

	for (; d; d = d->next) {
		uint64_t need;

		if (d->as != c && d != extra)
			continue;
		need = d->kind == KSIM_DEV_PCI ?
			       1ull << ksim_ffs64(domain_pgsizes(k)) :
			       KSIM_PAGE_SIZE;
		if (need > a)
			a = need;
	}
	return a;
}

/* The IOAS's valid ranges: holes of its reserved tree. */
static unsigned int compat_ranges(const struct ksim *k,
				  const struct ksim_container *c,
				  struct t1_range *r)
{
	if (!compat_has_domain(k, c)) {
		r[0].start = 0;
		r[0].last = UINT64_MAX;
		return 1;
	}
	r[0].start = 0;
	r[0].last = T1_MSI_START - 1;
	r[1].start = T1_MSI_END + 1;
	r[1].last = T1_APERTURE_END;
	return 2;
}

static bool compat_reserved(const struct ksim *k,
			    const struct ksim_container *c, uint64_t start,
			    uint64_t last)
{
	struct t1_range r[3];
	unsigned int i, n = compat_ranges(k, c, r);

	for (i = 0; i < n; i++)
		if (start >= r[i].start && last <= r[i].last)
			return false;
	return true;
}

static int compat_check_extension(struct ksim *k, struct ksim_container *c,
				  unsigned long arg)
{
	(void)k;
	switch (arg) {
	case VFIO_TYPE1_IOMMU:
	case VFIO_TYPE1v2_IOMMU:
	case VFIO_UNMAP_ALL:
		return 1;
	case VFIO_DMA_CC_IOMMU:
		return c->compat_ioas ? 1 : -ENODEV;
	default:
		/* NESTING, UPDATE_VADDR, and NOIOMMU (VFIO_NOIOMMU=n). */
		return 0;
	}
}

static int compat_set_iommu(struct ksim *k, struct ksim_container *c,
			    unsigned long arg)
{
	uint64_t a;
	size_t i;

	if (arg != VFIO_TYPE1_IOMMU && arg != VFIO_TYPE1v2_IOMMU)
		return -EINVAL;
	if (!c->compat_ioas)
		return -ENODEV;
	if (arg == VFIO_TYPE1v2_IOMMU || c->compat_no_large)
		return 0;
	/* iopt_disable_large_pages(): TYPE1 may unmap inside mappings. */
	if (compat_has_domain(k, c) && c->nr_dmas)
		return -EINVAL;
	c->compat_no_large = true;
	a = compat_alignment(k, c, NULL);
	for (i = 0; i < c->nr_dmas; i++) {
		const struct t1_dma *dma = &c->dmas[i];

		if ((dma->iova | dma->size | dma->vaddr) & (a - 1)) {
			c->compat_no_large = false;
			return -EADDRINUSE;
		}
	}
	return 0;
}

/* Writes len bytes of a capability at off if they fit in argsz. */
static int compat_put(void *arg, uint32_t argsz, size_t off,
		      const void *src, size_t len)
{
	if (argsz <= off || argsz - off < len)
		return 0;
	return ksim_copy_to_user((uint8_t *)arg + off, src, len);
}

/*
 * iommufd_fill_cap_iova(): each range goes out if it fits, then the
 * 16-byte head if the whole capability fits. Returns its size.
 */
static int compat_fill_iova(const struct ksim *k,
			    const struct ksim_container *c, void *arg,
			    uint32_t argsz, size_t off, size_t *size)
{
	const size_t head = sizeof(struct vfio_iommu_type1_info_cap_iova_range);
	struct vfio_iommu_type1_info_cap_iova_range cap = {
		.header = { .id = VFIO_IOMMU_TYPE1_INFO_CAP_IOVA_RANGE,
			    .version = 1 },
	};
	struct t1_range r[3];
	unsigned int i, n = compat_ranges(k, c, r);
	int ret;

	for (i = 0; i < n; i++) {
		struct vfio_iova_range v = { r[i].start, r[i].last };

		if (argsz <= off || argsz - off < head + (i + 1) * sizeof(v))
			continue;
		ret = ksim_copy_to_user((uint8_t *)arg + off + head +
						i * sizeof(v),
					&v, sizeof(v));
		if (ret)
			return ret;
	}
	cap.nr_iovas = n;
	*size = head + n * sizeof(struct vfio_iova_range);
	if (argsz > off && argsz - off >= *size)
		return compat_put(arg, argsz, off, &cap, head);
	return 0;
}

/*
 * iommufd_vfio_iommu_get_info(): dma_avail then iova ranges, no migration
 * capability; argsz always comes back as the full size, and what fits of
 * the chain is written even when argsz is short.
 */
static int compat_get_info(struct ksim *k, struct ksim_container *c,
			   void *arg)
{
	const size_t minsz = offsetof(struct vfio_iommu_type1_info,
				      cap_offset);
	struct vfio_iommu_type1_info info = { 0 };
	size_t copy, total, last = 0, size;
	uint64_t pgsizes, a;
	unsigned int i;
	int ret;

	ret = ksim_argsz_in(&info, arg, minsz);
	if (ret)
		return ret;
	copy = info.argsz < sizeof(info) ? info.argsz : sizeof(info);
	if (!c->compat_ioas)
		return -ENODEV;
	pgsizes = compat_has_domain(k, c) ? domain_pgsizes(k) : T1_PAGE_MASK;
	a = compat_alignment(k, c, NULL);
	info.flags = VFIO_IOMMU_INFO_PGSIZES;
	info.iova_pgsizes = pgsizes > a ? pgsizes : a;
	info.cap_offset = 0;

	total = sizeof(info);
	for (i = 0; i < 2; i++) {
		if (i == 0) {
			struct vfio_iommu_type1_info_dma_avail cap = {
				.header.id = VFIO_IOMMU_TYPE1_INFO_DMA_AVAIL,
				.header.version = 1,
				.avail = COMPAT_DMA_AVAIL,
			};

			size = sizeof(cap);
			ret = compat_put(arg, info.argsz, total, &cap,
					 sizeof(cap));
		} else {
			ret = compat_fill_iova(k, c, arg, info.argsz, total,
					       &size);
		}
		if (ret)
			return ret;
		size = (size + 7) & ~(size_t)7;
		/* The previous capability points here if it went out. */
		if (i && info.argsz >= total) {
			uint32_t next = total;

			ret = ksim_copy_to_user(
				(uint8_t *)arg + last +
					offsetof(struct vfio_info_cap_header,
						 next),
				&next, sizeof(next));
			if (ret)
				return ret;
		}
		last = total;
		total += size;
	}
	if (info.argsz >= total)
		info.cap_offset = sizeof(info);
	info.argsz = total;
	info.flags |= VFIO_IOMMU_INFO_CAPS;
	return ksim_copy_to_user(arg, &info, copy);
}

/* iommufd_vfio_map_dma() through iopt_map_user_pages(). */
static int compat_map_dma(struct ksim *k, struct ksim_container *c, void *arg)
{
	const uint32_t mask = VFIO_DMA_MAP_FLAG_READ | VFIO_DMA_MAP_FLAG_WRITE;
	struct vfio_iommu_type1_dma_map map;
	struct t1_dma new = { 0 };
	uint64_t a;
	int ret;

	ret = ksim_copy_from_user(&map, arg, sizeof(map));
	if (ret)
		return ret;
	if (map.argsz < sizeof(map) || map.flags & ~mask)
		return -EINVAL;
	if (!c->compat_ioas)
		return -ENODEV;
	if (!map.size || map.size > UINT64_MAX - KSIM_PAGE_SIZE)
		return -EINVAL;
	if (map.vaddr + map.size < map.vaddr)
		return -EOVERFLOW;
	a = compat_alignment(k, c, NULL);
	if (map.size & (a - 1) || map.iova & (a - 1))
		return -EINVAL;
	if (map.iova + (map.size - 1) < map.iova)
		return -EOVERFLOW;
	if (compat_reserved(k, c, map.iova, map.iova + (map.size - 1)))
		return -EINVAL;
	if (dma_find(c, map.iova, map.size))
		return -EEXIST;
	if ((map.vaddr % KSIM_PAGE_SIZE) & (a - 1))
		return -EINVAL;
	if (compat_has_domain(k, c) && ksim_uva_faults(map.vaddr, map.size))
		return -EFAULT;
	new.iova = map.iova;
	new.size = map.size;
	new.vaddr = map.vaddr;
	if (map.flags & VFIO_DMA_MAP_FLAG_READ)
		new.prot |= KSIM_PROT_READ;
	if (map.flags & VFIO_DMA_MAP_FLAG_WRITE)
		new.prot |= KSIM_PROT_WRITE;
	new.iommu_mapped = compat_has_domain(k, c);
	return dma_insert(c, &new);
}

/* iopt_area_split() at iova: the byte iova ends the left part. */
static int compat_cut(struct ksim_container *c, uint64_t iova, uint64_t a)
{
	struct t1_dma *dma = dma_find(c, iova, 1);
	struct t1_dma rhs;
	uint64_t last, new_start = iova + 1;
	int ret;

	if (!dma)
		return 0;
	last = dma->iova + (dma->size - 1);
	if (iova == dma->iova || iova == last)
		return 0;
	if (new_start & (a - 1) ||
	    (dma->vaddr + (new_start - dma->iova)) & (a - 1))
		return -EINVAL;
	rhs = *dma;
	rhs.iova = new_start;
	rhs.size = last - iova;
	rhs.vaddr = dma->vaddr + (new_start - dma->iova);
	dma->size = new_start - dma->iova;
	ret = dma_insert(c, &rhs);
	if (ret)
		dma->size += rhs.size;
	return ret;
}

/*
 * iopt_unmap_iova_range(): mappings must lie wholly inside the range
 * (ENOENT otherwise, after the ones before it are gone); nothing inside is
 * not an error here.
 */
static int compat_unmap_range(struct ksim *k, struct ksim_container *c,
			      uint64_t start, uint64_t last,
			      uint64_t *unmapped)
{
	size_t i;

	*unmapped = 0;
	while ((i = dma_lower_bound(c, start)) < c->nr_dmas &&
	       c->dmas[i].iova <= last) {
		struct t1_dma *dma = &c->dmas[i];
		uint64_t dlast = dma->iova + (dma->size - 1);

		if (dma->iova < start || dlast > last)
			return -ENOENT;
		*unmapped += dma->size;
		dma_remove(k, c, i);
		if (dlast >= last)
			break;
		start = dlast + 1;
	}
	return 0;
}

/* iommufd_vfio_unmap_dma(): only FLAG_ALL; size written back always. */
static int compat_unmap_dma(struct ksim *k, struct ksim_container *c,
			    void *arg)
{
	struct vfio_iommu_type1_dma_unmap unmap;
	uint64_t unmapped = 0, a;
	int ret;

	ret = ksim_copy_from_user(&unmap, arg, sizeof(unmap));
	if (ret)
		return ret;
	if (unmap.argsz < sizeof(unmap) ||
	    unmap.flags & ~VFIO_DMA_UNMAP_FLAG_ALL)
		return -EINVAL;
	if (!c->compat_ioas)
		return -ENODEV;
	if (unmap.flags & VFIO_DMA_UNMAP_FLAG_ALL) {
		if (unmap.iova || unmap.size)
			return -EINVAL;
		ret = compat_unmap_range(k, c, 0, UINT64_MAX, &unmapped);
	} else {
		if (c->compat_no_large) {
			a = compat_alignment(k, c, NULL);
			ret = compat_cut(c, unmap.iova + unmap.size - 1, a);
			if (!ret && unmap.iova)
				ret = compat_cut(c, unmap.iova - 1, a);
			if (ret)
				return ret;
		}
		if (!unmap.size)
			ret = -EINVAL;
		else if (unmap.iova + (unmap.size - 1) < unmap.iova)
			ret = -EOVERFLOW;
		else
			ret = compat_unmap_range(k, c, unmap.iova,
						 unmap.iova + (unmap.size - 1),
						 &unmapped);
	}
	unmap.size = unmapped;
	if (ksim_copy_to_user(arg, &unmap, sizeof(unmap)))
		ret = -EFAULT;
	return ret;
}

/*
 * iommufd_vfio_ioctl(). Requests it does not know (VFIO_IOMMU_DIRTY_PAGES
 * among them) end as ENOTTY. The iommufd part will route iommufd's own
 * requests (0x3b80 and up) here to its handler.
 */
static int compat_ioctl(struct ksim *k, struct ksim_container *c,
			unsigned int cmd, void *arg)
{
	switch (cmd) {
	case VFIO_GET_API_VERSION:
		return VFIO_API_VERSION;
	case VFIO_SET_IOMMU:
		return compat_set_iommu(k, c, (unsigned long)(uintptr_t)arg);
	case VFIO_CHECK_EXTENSION:
		return compat_check_extension(k, c,
					      (unsigned long)(uintptr_t)arg);
	case VFIO_IOMMU_GET_INFO:
		return compat_get_info(k, c, arg);
	case VFIO_IOMMU_MAP_DMA:
		return compat_map_dma(k, c, arg);
	case VFIO_IOMMU_UNMAP_DMA:
		return compat_unmap_dma(k, c, arg);
	default:
		return -ENOTTY;
	}
}

/*
 * A device opened through a group set to the compat container binds to
 * its IOAS (vfio_iommufd_compat_attach_ioas): the alignment may grow and
 * a physical device brings its domain's reserved ranges; existing
 * mappings that conflict make the open fail.
 */
static int compat_attach_device(struct ksim *k, struct ksim_container *c,
				struct ksim_device *d)
{
	uint64_t a = compat_alignment(k, c, d);
	bool domain = d->kind == KSIM_DEV_PCI && !compat_has_domain(k, c);
	size_t i;

	if (d->kind == KSIM_DEV_PCI && d->group->cdev_open_count)
		return -EBUSY;
	for (i = 0; i < c->nr_dmas; i++) {
		const struct t1_dma *dma = &c->dmas[i];
		uint64_t last = dma->iova + (dma->size - 1);

		if ((dma->iova | dma->size | dma->vaddr) & (a - 1))
			return -EADDRINUSE;
		if (!domain)
			continue;
		if (last > T1_APERTURE_END ||
		    (dma->iova <= T1_MSI_END && last >= T1_MSI_START))
			return -EADDRINUSE;
		if (ksim_uva_faults(dma->vaddr, dma->size))
			return -EFAULT;
	}
	if (domain)
		for (i = 0; i < c->nr_dmas; i++)
			c->dmas[i].iommu_mapped = true;
	ksim_device_set_as(d, &compat_as_ops, c);
	return 0;
}

static void compat_detach_device(struct ksim *k, struct ksim_container *c,
				 struct ksim_device *d)
{
	size_t i;

	if (d->as == c)
		ksim_device_set_as(d, NULL, NULL);
	if (!compat_has_domain(k, c))
		for (i = 0; i < c->nr_dmas; i++)
			c->dmas[i].iommu_mapped = false;
}

/* ------------------------------------------------------------------ */
/* The container fd                                                    */

static int container_ioctl(struct ksim *k, struct ksim_obj *o,
			   unsigned int cmd, void *arg)
{
	struct ksim_container *c = o->priv;
	unsigned long val = (unsigned long)(uintptr_t)arg;

	if (c->compat)
		return compat_ioctl(k, c, cmd, arg);
	switch (cmd) {
	case VFIO_GET_API_VERSION:
		return VFIO_API_VERSION;
	case VFIO_CHECK_EXTENSION:
		return t1_check_extension(c, val);
	case VFIO_SET_IOMMU:
		return t1_set_iommu(k, c, val);
	}
	/* container.c passes the rest to the IOMMU driver, if there is one. */
	if (!c->iommu_set)
		return -EINVAL;
	switch (cmd) {
	case VFIO_IOMMU_GET_INFO:
		return t1_get_info(c, arg);
	case VFIO_IOMMU_MAP_DMA:
		return t1_map_dma(k, c, arg);
	case VFIO_IOMMU_UNMAP_DMA:
		return t1_unmap_dma(k, c, arg);
	case VFIO_IOMMU_DIRTY_PAGES:
		return t1_dirty_pages(k, c, arg);
	default:
		return -ENOTTY;
	}
}

static void container_release(struct ksim *k, struct ksim_obj *o)
{
	struct ksim_container *c = o->priv;

	(void)k;
	c->fd_open = false;
	container_put(c);
}

static const struct ksim_obj_ops container_ops = {
	.type = KSIM_OBJ_CONTAINER,
	.ioctl = container_ioctl,
	.release = container_release,
};

static int container_open(struct ksim *k)
{
	struct ksim_container *c = container_new(k, k->params.iommufd_compat);
	int fd;

	if (!c)
		return -ENOMEM;
	fd = ksim_obj_install(k, &container_ops, c, -1, NULL);
	if (fd < 0) {
		free(c);
		return fd;
	}
	c->fd_open = true;
	c->refs = 1;
	return fd;
}

/* ------------------------------------------------------------------ */
/* Groups                                                              */

/* The group's file is closed for good (vfio_group_fops_release). */
static void group_file_put(struct ksim *k, struct ksim_group *g)
{
	if (--g->file_refs)
		return;
	if (g->container)
		group_detach_container(k, g);
	ksim_group_try_free(k, g);
}

static int group_get_status(struct ksim_group *g, void *arg)
{
	struct vfio_group_status status;
	int ret;

	ret = ksim_copy_from_user(&status, arg, sizeof(status));
	if (ret)
		return ret;
	if (status.argsz < sizeof(status))
		return -EINVAL;
	if (g->gone)
		return -ENODEV;
	status.flags = 0;
	if (g->container)
		status.flags = VFIO_GROUP_FLAGS_CONTAINER_SET |
			       VFIO_GROUP_FLAGS_VIABLE;
	else if (!g->cdev_open_count)
		status.flags = VFIO_GROUP_FLAGS_VIABLE;
	return ksim_copy_to_user(arg, &status, sizeof(status));
}

/*
 * vfio_group_ioctl_set_container(). An fd that is not open at all is
 * EBADF (fdget); an open file that is neither a container nor an iommufd
 * is EBADFD, which ksim tells apart for foreign fds with F_GETFD.
 */
static int group_set_container(struct ksim *k, struct ksim_group *g,
			       void *arg)
{
	struct ksim_obj *o;
	int fd, ret;

	ret = ksim_copy_from_user(&fd, arg, sizeof(fd));
	if (ret)
		return ret;
	o = ksim_obj_get(k, fd);
	if (!o && fcntl(fd, F_GETFD) < 0)
		return -EBADF;
	if (g->container)
		return -EINVAL;
	if (g->gone)
		return -ENODEV;
	/* The iommufd part will accept KSIM_OBJ_IOMMUFD fds here. */
	if (!o || o->ops->type != KSIM_OBJ_CONTAINER)
		return -EBADFD;
	return container_attach_group(k, o->priv, g);
}

static int group_unset_container(struct ksim *k, struct ksim_group *g)
{
	if (!g->container)
		return -EINVAL;
	/* The iommufd path does not check for open devices; type1 does. */
	if (!g->container->compat && g->container_users != 1)
		return -EBUSY;
	group_detach_container(k, g);
	return 0;
}

/* Last close of a device opened through a group. */
static void t1_devfile_release(struct ksim *k, struct ksim_devfile *df)
{
	struct ksim_device *d = df->dev;
	struct ksim_group *g = df->group;
	struct t1_dev *td = t1dev(d);

	if (--d->open_count)
		return;
	/* The driver's close_device unpins what it pinned. */
	ksim_pins_clear(d);
	if (td->compat) {
		compat_detach_device(k, td->compat, d);
		container_put(td->compat);
		td->compat = NULL;
	}
	if (td->holds_group_file) {
		td->holds_group_file = false;
		if (g->container && !g->gone)
			g->container_users--;
		group_file_put(k, g);
	}
}

/*
 * vfio_group_ioctl_get_device_fd(): the name is matched among the group's
 * devices (ENODEV), then the group needs a container and, with type1, an
 * IOMMU (EINVAL). The first open of a device takes a container user and
 * a reference to the group's file.
 */
static int group_get_device_fd(struct ksim *k, struct ksim_group *g,
			       void *arg)
{
	struct ksim_container *c = g->container;
	struct ksim_device *d;
	struct t1_dev *td;
	size_t len;
	int fd, ret;

	if ((uintptr_t)arg < KSIM_USER_MIN)
		return -EFAULT;
	len = strnlen(arg, T1_NAME_MAX);
	if (len == T1_NAME_MAX)
		return -EINVAL;
	for (d = k->devices; d; d = d->next)
		if (d->group == g && !strcmp(d->name, arg))
			break;
	if (!d)
		return -ENODEV;
	if (!c)
		return -EINVAL;
	td = t1dev(d);
	if (!d->open_count) {
		if (c->compat) {
			ret = compat_attach_device(k, c, d);
			if (ret)
				return ret;
			td->compat = c;
			c->refs++;
		} else {
			if (!c->iommu_set)
				return -EINVAL;
			g->container_users++;
			g->file_refs++;
			td->holds_group_file = true;
		}
	}
	d->open_count++;
	fd = ksim_devfile_open(k, d, g, t1_devfile_release, NULL);
	if (fd < 0) {
		struct ksim_devfile df = { .dev = d, .group = g };

		t1_devfile_release(k, &df);
	}
	return fd;
}

static int group_ioctl(struct ksim *k, struct ksim_obj *o, unsigned int cmd,
		       void *arg)
{
	struct ksim_group *g = o->priv;

	switch (cmd) {
	case VFIO_GROUP_GET_DEVICE_FD:
		return group_get_device_fd(k, g, arg);
	case VFIO_GROUP_GET_STATUS:
		return group_get_status(g, arg);
	case VFIO_GROUP_SET_CONTAINER:
		return group_set_container(k, g, arg);
	case VFIO_GROUP_UNSET_CONTAINER:
		return group_unset_container(k, g);
	default:
		return -ENOTTY;
	}
}

static void group_release(struct ksim *k, struct ksim_obj *o)
{
	struct ksim_group *g = o->priv;

	g->fd_open = false;
	group_file_put(k, g);
}

static const struct ksim_obj_ops group_ops = {
	.type = KSIM_OBJ_GROUP,
	.ioctl = group_ioctl,
	.release = group_release,
};

/* /dev/vfio/<N>: N as the kernel names the node, decimal, no sign. */
static int group_open(struct ksim *k, const char *num)
{
	struct ksim_group *g;
	char *end;
	long id;
	int fd;

	if (!*num || (num[0] == '0' && num[1]) || *num < '0' || *num > '9')
		return -ENOENT;
	errno = 0;
	id = strtol(num, &end, 10);
	if (*end || errno || id > INT32_MAX)
		return -ENOENT;
	g = ksim_group_find(k, (int)id);
	if (!g)
		return -ENOENT;
	if (g->cdev_open_count || g->file_refs)
		return -EBUSY;
	fd = ksim_obj_install(k, &group_ops, g, -1, NULL);
	if (fd < 0)
		return fd;
	g->fd_open = true;
	g->file_refs = 1;
	return fd;
}

/* ------------------------------------------------------------------ */
/* Address spaces                                                      */

/*
 * A PCI device writes through the IOMMU: it needs write permission and
 * sees the pages pinned at map time, even while the vaddr is being
 * updated. An mdev writes with vfio_dma_rw(): the device must be open,
 * no vaddr may be invalid (EBUSY), and the mapping must be readable as
 * well as writable (vfio_iommu_type1_dma_rw_chunk checks both).
 */
static int t1_translate(struct ksim *k, void *as, struct ksim_device *d,
			uint64_t iova, uint64_t len, void **hva,
			uint64_t *plen)
{
	struct ksim_container *c = as;
	int need = KSIM_PROT_WRITE;
	struct t1_dma *dma;
	uint64_t off;

	(void)k;
	if (d->kind == KSIM_DEV_MDEV) {
		if (!d->open_count)
			return -ENODEV;
		if (c->vaddr_invalid_count)
			return -EBUSY;
		need |= KSIM_PROT_READ;
	}
	dma = dma_find(c, iova, 1);
	if (!dma || (dma->prot & need) != need)
		return -EFAULT;
	off = iova - dma->iova;
	*plen = dma->size - off < len ? dma->size - off : len;
	*hva = (void *)(uintptr_t)(dma->vaddr + off);
	return 0;
}

/* vfio_dma_rw() marks what it wrote; DMA through the IOMMU is unseen. */
static void t1_written(struct ksim *k, void *as, struct ksim_device *d,
		       uint64_t iova, uint64_t len)
{
	struct ksim_container *c = as;
	unsigned int pgshift = ksim_ffs64(min_pgsize(c));
	struct t1_dma *dma;
	uint64_t off, i;

	(void)k;
	if (d->kind != KSIM_DEV_MDEV || !c->tracking)
		return;
	dma = dma_find(c, iova, 1);
	if (!dma || dma_bitmap_reserve(dma, min_pgsize(c)))
		return;
	off = iova - dma->iova;
	for (i = off >> pgshift; i <= (off + len - 1) >> pgshift; i++)
		ksim_bit_set(dma->bitmap, i);
}

/*
 * vfio_iommu_type1_pin_pages(): v2 only (EACCES), not while a vaddr is
 * invalid (EBUSY), every page mapped (EINVAL) readable and writable
 * (EPERM). A pinned page is dirty while tracking, and the first pin
 * promotes the device's group into pinned scope.
 */
static int t1_pin(struct ksim *k, void *as, struct ksim_device *d,
		  uint64_t iova, uint64_t npages)
{
	const int prot = KSIM_PROT_READ | KSIM_PROT_WRITE;
	struct ksim_container *c = as;
	uint64_t pg = min_pgsize(c), i;
	struct ksim_group *g = d->group;

	(void)k;
	if (!c->v2)
		return -EACCES;
	if (c->vaddr_invalid_count)
		return -EBUSY;
	for (i = 0; i < npages; i++) {
		struct t1_dma *dma = dma_find(c, iova + i * KSIM_PAGE_SIZE,
					      KSIM_PAGE_SIZE);

		if (!dma)
			return -EINVAL;
		if ((dma->prot & prot) != prot)
			return -EPERM;
	}
	for (i = 0; c->tracking && i < npages; i++) {
		uint64_t p = iova + i * KSIM_PAGE_SIZE;
		struct t1_dma *dma = dma_find(c, p, KSIM_PAGE_SIZE);

		if (!dma_bitmap_reserve(dma, pg))
			ksim_bit_set(dma->bitmap, (p - dma->iova) >> ksim_ffs64(pg));
	}
	if (!g->t1_pinned_scope) {
		g->t1_pinned_scope = true;
		c->num_non_pinned_groups--;
	}
	return 0;
}

static void t1_for_each_writable(struct ksim *k, void *as,
				 struct ksim_device *d,
				 void (*fn)(void *opaque, uint64_t iova,
					    uint64_t len),
				 void *opaque)
{
	struct ksim_container *c = as;
	int need = KSIM_PROT_WRITE;
	size_t i;

	(void)k;
	if (d->kind == KSIM_DEV_MDEV) {
		if (!d->open_count || c->vaddr_invalid_count)
			return;
		need |= KSIM_PROT_READ;
	}
	for (i = 0; i < c->nr_dmas; i++)
		if ((c->dmas[i].prot & need) == need)
			fn(opaque, c->dmas[i].iova, c->dmas[i].size);
}

static const struct ksim_as_ops t1_as_ops = {
	.translate = t1_translate,
	.written = t1_written,
	.pin = t1_pin,
	.for_each_writable = t1_for_each_writable,
};

/* The compat IOAS: no dirty tracking at all, only translation. */
static int compat_translate(struct ksim *k, void *as, struct ksim_device *d,
			    uint64_t iova, uint64_t len, void **hva,
			    uint64_t *plen)
{
	struct ksim_container *c = as;
	struct t1_dma *dma = dma_find(c, iova, 1);
	uint64_t off;

	(void)k;
	(void)d;
	if (!dma || !(dma->prot & KSIM_PROT_WRITE))
		return -EFAULT;
	off = iova - dma->iova;
	*plen = dma->size - off < len ? dma->size - off : len;
	*hva = (void *)(uintptr_t)(dma->vaddr + off);
	return 0;
}

/*
 * vfio_pin_pages() in iommufd mode: a physical device has no access
 * object (EINVAL); an mdev's access pins (iommufd_access_pin_pages:
 * ENOENT where nothing is mapped, EPERM without write permission).
 */
static int compat_pin(struct ksim *k, void *as, struct ksim_device *d,
		      uint64_t iova, uint64_t npages)
{
	struct ksim_container *c = as;
	uint64_t i;

	(void)k;
	if (d->kind != KSIM_DEV_MDEV)
		return -EINVAL;
	for (i = 0; i < npages; i++) {
		struct t1_dma *dma = dma_find(c, iova + i * KSIM_PAGE_SIZE,
					      KSIM_PAGE_SIZE);

		if (!dma)
			return -ENOENT;
		if (!(dma->prot & KSIM_PROT_WRITE))
			return -EPERM;
	}
	return 0;
}

static void compat_for_each_writable(struct ksim *k, void *as,
				     struct ksim_device *d,
				     void (*fn)(void *opaque, uint64_t iova,
						uint64_t len),
				     void *opaque)
{
	struct ksim_container *c = as;
	size_t i;

	(void)k;
	(void)d;
	for (i = 0; i < c->nr_dmas; i++)
		if (c->dmas[i].prot & KSIM_PROT_WRITE)
			fn(opaque, c->dmas[i].iova, c->dmas[i].size);
}

static const struct ksim_as_ops compat_as_ops = {
	.translate = compat_translate,
	.pin = compat_pin,
	.for_each_writable = compat_for_each_writable,
};

/* ------------------------------------------------------------------ */
/* The part                                                            */

static int t1_open(struct ksim *k, const char *path, int flags)
{
	static const char prefix[] = "/dev/vfio/";

	(void)flags;
	if (!strcmp(path, "/dev/vfio/vfio"))
		return container_open(k);
	if (strncmp(path, prefix, sizeof(prefix) - 1))
		return KSIM_PASS;
	/* /dev/vfio/devices/ belongs to the cdev part. */
	if (!strncmp(path + sizeof(prefix) - 1, "devices/", 8))
		return KSIM_PASS;
	return group_open(k, path + sizeof(prefix) - 1);
}

static int t1_device_added(struct ksim *k, struct ksim_device *d)
{
	struct ksim_group *g = d->group;

	(void)k;
	d->ext[KSIM_EXT_TYPE1] = calloc(1, sizeof(struct t1_dev));
	if (!d->ext[KSIM_EXT_TYPE1])
		return -ENOMEM;
	/* A device hot-added to an attached group joins its domain. */
	if (g->t1_attached)
		ksim_device_set_as(d, &t1_as_ops, g->container);
	return 0;
}

/*
 * vfio_device_remove_group(): when the group's last device goes, the
 * group leaves its type1 container at once (open device fds or not). An
 * iommufd-compat group keeps its iommufd until its file is closed.
 */
static void t1_device_removed(struct ksim *k, struct ksim_device *d)
{
	struct ksim_group *g = d->group;
	struct t1_dev *td = t1dev(d);

	if (td && td->compat)
		compat_detach_device(k, td->compat, d);
	if (!g->nr_devices && g->container && !g->container->compat)
		group_detach_container(k, g);
}

const struct ksim_ext ksim_ext_type1 = {
	.name = "vfio-type1",
	.open = t1_open,
	.device_added = t1_device_added,
	.device_removed = t1_device_removed,
};
