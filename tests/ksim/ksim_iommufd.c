/*
 * ksim_iommufd.c: the iommufd part of the kernel simulator: /dev/iommu
 * (drivers/iommu/iommufd: IOAS, HWPT, dirty tracking, the selftest mock of
 * CONFIG_IOMMUFD_TEST), the VFIO device cdevs /dev/vfio/devices/vfioN
 * (drivers/vfio/device_cdev.c, iommufd.c) and the address spaces that an
 * iommufd HWPT or IOAS gives the devices attached to it.
 *
 * It follows shared docs/kernel-uapi.md sections 2 and 4, and the Linux
 * 6.12 sources where that is silent, to the errno and in the kernel's
 * order of checks, pitfalls included: a dirty-bitmap read that starts in
 * or crosses a hole stops at the gap and still succeeds; a read while
 * tracking is off succeeds and writes nothing; a bitmap that cannot be
 * written is silently not written; huge IOPTEs are reported whole;
 * enabling tracking clears the dirty bits first (every time).
 *
 * The model. One context per open of /dev/iommu (struct iommufd_ctx) owns
 * the objects, which share one ID space, lowest free ID first, as the
 * kernel's xarray does. An IOAS holds areas (mappings of real user
 * memory). A paging HWPT is an IOMMU domain on one IOAS; its IOPTEs are
 * not stored but derived: an area is mapped with the largest page size of
 * the domain to which the IOVA and the user address are both aligned, as
 * iommu_map() does when the memory is physically contiguous (the user
 * address stands in for the physical one). Each domain keeps one dirty
 * bit per smallest-page slot of every area; a DMA write sets the slots it
 * touches in the domain that translated it while that domain tracks, and
 * a read reports (and clears) whole IOPTEs. Devices are bound through
 * their cdev (a physical device becomes a device object, an mdev an
 * access object) and attached per IOMMU group, as iommufd_group does.
 *
 * The simulated machine's Intel IOMMU has interrupt remapping and cache
 * coherency; nested HWPTs, fault queues, IOMMU_OPTION, ALLOW_IOVAS, COPY,
 * VFIO_IOAS, INVALIDATE and the type1 compatibility ioctls on /dev/iommu
 * are not modelled (ENOTTY), nor are the selftest ops other than
 * MOCK_DOMAIN, MOCK_DOMAIN_FLAGS and DIRTY (EOPNOTSUPP, as unknown ops).
 */
#include <errno.h>
#include <fcntl.h>
#include <stdlib.h>
#include <string.h>

#include <vmig/linux-uapi.h>
#include "ksim_internal.h"

/* The kernel's ULONG_MAX on x86-64. */
#define IFD_ULONG_MAX UINT64_MAX
#define IFD_SZ_2K 2048ull
#define IFD_SZ_4K 4096ull
#define IFD_SZ_1M (1ull << 20)
#define IFD_SZ_2M (1ull << 21)
#define IFD_SZ_1G (1ull << 30)
/* HPAGE_SIZE: the largest alignment iopt_alloc_iova() tries to keep. */
#define IFD_HPAGE_SIZE IFD_SZ_2M
/* The Intel domain's aperture and the MSI window it reserves. */
#define IFD_INTEL_APERTURE_LAST ((1ull << 48) - 1)
#define IFD_MSI_START 0xfee00000ull
#define IFD_MSI_LAST 0xfeefffffull
/* Object IDs are allocated below 2^31 (xa_limit_31b). */
#define IFD_ID_MAX 0x7fffffffu
/* IOMMU_TEST_OP_DIRTY refuses more bits than this (SZ_16M bytes). */
#define IFD_TEST_DIRTY_MAX_BITS ((1ull << 24) * 8)
#define IFD_SELFTEST_REGVAL 0xdeadbeefu

/* Newer kernels' PASID flags of the attach and detach ioctls. */
#define IFD_VFIO_DEVICE_ATTACH_PASID 1u
#define IFD_VFIO_DEVICE_DETACH_PASID 1u

/* ------------------------------------------------------------------ */
/* Types                                                               */

/* What the IOMMU behind a device is, resolved from its parameters. */
struct ifd_iommu {
	enum ksim_iommu_model model;
	uint64_t pgsizes; /* page sizes of the domains allocated for it */
	bool dirty;       /* IOMMU_CAP_DIRTY_TRACKING */
	uint8_t max_pasid_log2;
};

enum ifd_type {
	IFD_IOAS = 1,
	IFD_HWPT = 2,     /* IOMMUFD_OBJ_HWPT_PAGING */
	IFD_DEVICE = 3,   /* a bound physical device (iommufd_device) */
	IFD_ACCESS = 4,   /* a bound emulated device (iommufd_access) */
	IFD_SELFTEST = 5, /* a mock device made by IOMMU_TEST_OP_MOCK_DOMAIN */
};

struct ifd_ctx;

struct ifd_obj {
	enum ifd_type type;
	uint32_t id;
	struct ifd_ctx *ctx;
};

struct ifd_hwpt;

/* The dirty slots of one domain over one area. */
struct ifd_dirty {
	struct ifd_hwpt *hwpt;
	uint64_t *slots; /* one bit per smallest page of the domain */
};

/* A mapping (iopt_area). */
struct ifd_area {
	uint64_t iova;
	uint64_t length;
	uint64_t uva;
	int prot;
	struct ifd_dirty *dirty;
	size_t nr_dirty;
};

struct ifd_ioas {
	struct ifd_obj obj;
	struct ifd_area *areas; /* sorted by iova, disjoint */
	size_t nr_areas;
	size_t cap_areas;
	/* The paging HWPTs on it, oldest first (ioas->hwpt_list). */
	struct ifd_hwpt **hwpts;
	size_t nr_hwpts;
	unsigned int nr_accesses; /* attached emulated devices */
};

struct ifd_hwpt {
	struct ifd_obj obj;
	struct ifd_ioas *ioas;
	struct ifd_iommu iommu; /* the driver and page sizes of the domain */
	bool auto_domain;
	bool dirty_ops;   /* allocated with IOMMU_HWPT_ALLOC_DIRTY_TRACKING */
	bool nest_parent;
	bool tracking;
	unsigned int users; /* attached devices and PASIDs */
};

struct ifd_idev;

/* iommufd_group: one IOMMU group as one context sees it. */
struct ifd_igroup {
	const void *key;      /* the ksim group, or the mock device */
	struct ifd_hwpt *hwpt; /* NULL while no device is attached */
	struct ifd_idev **attached; /* device_list */
	size_t nr_attached;
	unsigned int refs;    /* bound devices */
	struct ifd_igroup *next;
};

/* A PASID attachment (beyond 6.12). */
struct ifd_pasid {
	uint32_t pasid;
	struct ifd_hwpt *hwpt;
};

struct ifd_idev {
	struct ifd_obj obj;
	struct ksim_device *dev; /* NULL for a selftest mock device */
	struct ifd_iommu iommu;
	struct ifd_igroup *igroup;
	bool attached;
	struct ifd_pasid *pasids;
	size_t nr_pasids;
};

struct ifd_access {
	struct ifd_obj obj;
	struct ksim_device *dev;
	struct ifd_ioas *ioas; /* NULL while detached */
};

struct ifd_selftest {
	struct ifd_obj obj;
	struct ifd_idev *idev;
};

/* struct iommufd_ctx: one open of /dev/iommu. */
struct ifd_ctx {
	struct ksim *k;
	/* The fd and each binding (iommufd_ctx_get): freed at zero. */
	unsigned int refs;
	struct ifd_obj **objs; /* by id; objs[0] is never used */
	uint32_t nr_objs;
	struct ifd_igroup *igroups;
	struct ifd_ctx *next;
};

/* Per-simulator state. */
struct ifd_state {
	bool pasid_attach; /* behave as a kernel newer than 6.12 */
	struct ifd_ctx *ctxs;
};

struct ifd_cdev;

/* Per-device state. */
struct ifd_dev {
	struct ksim_iommufd_device_params p;
	struct ifd_iommu iommu;
	struct ifd_cdev *bound; /* the cdev fd bound to an iommufd */
};

/* Per-fd state of a cdev fd (freed by ksim.c with free()). */
struct ifd_cdev {
	struct ksim_device *dev;
	bool bound;      /* df->access_granted */
	bool attached;   /* vdev->iommufd_attached */
	struct ifd_ctx *ctx;
	struct ifd_idev *idev;     /* a physical device's binding */
	struct ifd_access *access; /* an emulated device's binding */
};

static const struct ksim_as_ops hwpt_as_ops;
static const struct ksim_as_ops access_as_ops;

static struct ifd_state *ifd_state(struct ksim *k)
{
	return k->ext[KSIM_EXT_IOMMUFD];
}

static struct ifd_dev *ifd_dev(struct ksim_device *d)
{
	return d->ext[KSIM_EXT_IOMMUFD];
}

/* ------------------------------------------------------------------ */
/* Helpers                                                             */

/* roundup_pow_of_two() for 0 < v <= 2^63. */
static uint64_t roundup_pow2(uint64_t v)
{
	uint64_t r = 1;

	while (r < v)
		r <<= 1;
	return r;
}

static uint64_t min_u64(uint64_t a, uint64_t b)
{
	return a < b ? a : b;
}

/* clear_user(). */
static int clear_user(void *udst, uint64_t len)
{
	static const uint8_t zero[256];

	while (len) {
		size_t n = len < sizeof(zero) ? (size_t)len : sizeof(zero);

		if (ksim_copy_to_user(udst, zero, n))
			return -EFAULT;
		udst = (uint8_t *)udst + n;
		len -= n;
	}
	return 0;
}

/*
 * copy_struct_from_user(): a shorter struct is zero-extended, a longer
 * one is accepted when its extra bytes are zero (else E2BIG).
 */
static int copy_struct_from_user(void *dst, size_t ksize, const void *usrc,
				 size_t usize)
{
	size_t n = usize < ksize ? usize : ksize;

	memset(dst, 0, ksize);
	if (ksim_copy_from_user(dst, usrc, n))
		return -EFAULT;
	while (usize > ksize) {
		uint8_t buf[64];
		size_t m = usize - ksize < sizeof(buf) ? usize - ksize
						       : sizeof(buf);
		size_t i;

		if (ksim_copy_from_user(buf, (const uint8_t *)usrc + ksize, m))
			return -EFAULT;
		for (i = 0; i < m; i++)
			if (buf[i])
				return -E2BIG;
		ksize += m;
	}
	return 0;
}

/* Sets bit `bit` of the user's byte-addressed bitmap; faults are silent. */
static void user_bit_set(uint8_t *ubitmap, uint64_t bit)
{
	uint8_t *p = ubitmap + bit / 8;
	uint8_t b;

	if (ksim_copy_from_user(&b, p, 1))
		return;
	b |= (uint8_t)(1u << (bit % 8));
	ksim_copy_to_user(p, &b, 1);
}

/* The IOMMU a device's parameters describe. */
static void iommu_of(const struct ksim_iommufd_device_params *p,
		     struct ifd_iommu *out)
{
	out->model = p->model;
	out->dirty = p->dirty_tracking;
	out->max_pasid_log2 = p->max_pasid_log2;
	if (p->model == KSIM_IOMMU_MOCK)
		out->pgsizes = IFD_SZ_2K | (p->mock_huge_iova ? IFD_SZ_1M : 0);
	else
		out->pgsizes = p->pgsizes ? p->pgsizes
					  : IFD_SZ_4K | IFD_SZ_2M | IFD_SZ_1G;
}

static uint64_t iommu_min_page(const struct ifd_iommu *iommu)
{
	return 1ull << ksim_ffs64(iommu->pgsizes);
}

/* The domain geometry of each driver. */
static void iommu_aperture(const struct ifd_iommu *iommu, uint64_t *start,
			   uint64_t *last)
{
	if (iommu->model == KSIM_IOMMU_MOCK) {
		*start = VK_MOCK_APERTURE_START;
		*last = VK_MOCK_APERTURE_LAST;
	} else {
		*start = 0;
		*last = IFD_INTEL_APERTURE_LAST;
	}
}

/* ------------------------------------------------------------------ */
/* Contexts and objects                                                */

/* xa_alloc() with XA_FLAGS_ALLOC1: the lowest free ID from 1. */
static int obj_add(struct ifd_ctx *c, struct ifd_obj *o, enum ifd_type type)
{
	uint32_t id;

	for (id = 1; id < c->nr_objs; id++)
		if (!c->objs[id])
			break;
	if (id > IFD_ID_MAX)
		return -EBUSY; /* xa_alloc: the ID space is full */
	if (id >= c->nr_objs) {
		uint32_t n = c->nr_objs ? 2 * c->nr_objs : 16;
		struct ifd_obj **objs = realloc(c->objs, n * sizeof(*objs));

		if (!objs)
			return -ENOMEM;
		memset(objs + c->nr_objs, 0,
		       (n - c->nr_objs) * sizeof(*objs));
		c->objs = objs;
		c->nr_objs = n;
	}
	o->type = type;
	o->id = id;
	o->ctx = c;
	c->objs[id] = o;
	return 0;
}

static void obj_del(struct ifd_obj *o)
{
	o->ctx->objs[o->id] = NULL;
}

/* iommufd_get_object(): ENOENT for a missing ID or another type. */
static struct ifd_obj *obj_get(struct ifd_ctx *c, uint32_t id,
			       enum ifd_type type)
{
	struct ifd_obj *o = id < c->nr_objs ? c->objs[id] : NULL;

	if (!o || (type && o->type != type))
		return NULL;
	return o;
}

static struct ifd_ioas *ioas_get(struct ifd_ctx *c, uint32_t id)
{
	return (struct ifd_ioas *)obj_get(c, id, IFD_IOAS);
}

static struct ifd_hwpt *hwpt_get(struct ifd_ctx *c, uint32_t id)
{
	return (struct ifd_hwpt *)obj_get(c, id, IFD_HWPT);
}

static struct ifd_idev *idev_get(struct ifd_ctx *c, uint32_t id)
{
	return (struct ifd_idev *)obj_get(c, id, IFD_DEVICE);
}

/* ------------------------------------------------------------------ */
/* Intervals (reserved IOVA, holes)                                    */

struct ifd_range {
	uint64_t start;
	uint64_t last;
};

struct ifd_ranges {
	struct ifd_range *r;
	size_t nr;
	size_t cap;
	bool nomem;
};

static void ranges_add(struct ifd_ranges *rs, uint64_t start, uint64_t last)
{
	struct ifd_range *r;

	r = ksim_array_grow(rs->r, &rs->cap, rs->nr, sizeof(*r), 16);
	if (!r) {
		rs->nomem = true;
		return;
	}
	rs->r = r;
	rs->r[rs->nr].start = start;
	rs->r[rs->nr].last = last;
	rs->nr++;
}

static int range_cmp(const void *a, const void *b)
{
	const struct ifd_range *x = a, *y = b;

	if (x->start != y->start)
		return x->start < y->start ? -1 : 1;
	return 0;
}

/* Sorts and merges overlapping or adjacent ranges. */
static void ranges_merge(struct ifd_ranges *rs)
{
	size_t i, n = 0;

	if (!rs->nr)
		return;
	qsort(rs->r, rs->nr, sizeof(*rs->r), range_cmp);
	for (i = 1; i < rs->nr; i++) {
		struct ifd_range *cur = &rs->r[n];

		if (cur->last == UINT64_MAX ||
		    rs->r[i].start <= cur->last + 1) {
			if (rs->r[i].last > cur->last)
				cur->last = rs->r[i].last;
			continue;
		}
		rs->r[++n] = rs->r[i];
	}
	rs->nr = n + 1;
}

static bool ranges_hit(const struct ifd_ranges *rs, uint64_t start,
		       uint64_t last)
{
	size_t i;

	for (i = 0; i < rs->nr; i++)
		if (rs->r[i].start <= last && start <= rs->r[i].last)
			return true;
	return false;
}

/* ------------------------------------------------------------------ */
/* Areas                                                               */

static uint64_t area_last(const struct ifd_area *a)
{
	return a->iova + (a->length - 1);
}

/* The first area whose last byte is at or after iova. */
static uint64_t area_last_of(const void *a)
{
	return area_last(a);
}

static size_t area_lower_bound(const struct ifd_ioas *ioas, uint64_t iova)
{
	return ksim_lower_bound(ioas->areas, ioas->nr_areas,
				sizeof(*ioas->areas), iova, area_last_of);
}

/* The first area intersecting [start, last], or NULL. */
static struct ifd_area *area_find(struct ifd_ioas *ioas, uint64_t start,
				  uint64_t last)
{
	size_t i = area_lower_bound(ioas, start);

	if (i < ioas->nr_areas && ioas->areas[i].iova <= last)
		return &ioas->areas[i];
	return NULL;
}

static uint64_t slot_count(const struct ifd_area *a,
			   const struct ifd_hwpt *hwpt)
{
	return a->length / iommu_min_page(&hwpt->iommu);
}

static struct ifd_dirty *area_dirty(struct ifd_area *a,
				    const struct ifd_hwpt *hwpt)
{
	size_t i;

	for (i = 0; i < a->nr_dirty; i++)
		if (a->dirty[i].hwpt == hwpt)
			return &a->dirty[i];
	return NULL;
}

/* Gives the area a clean slot bitmap for a dirty-tracking domain. */
static int area_dirty_add(struct ifd_area *a, struct ifd_hwpt *hwpt)
{
	uint64_t words = (slot_count(a, hwpt) + 63) / 64;
	struct ifd_dirty *d;
	uint64_t *slots;

	slots = calloc(words ? words : 1, sizeof(*slots));
	if (!slots)
		return -ENOMEM;
	d = realloc(a->dirty, (a->nr_dirty + 1) * sizeof(*d));
	if (!d) {
		free(slots);
		return -ENOMEM;
	}
	a->dirty = d;
	d[a->nr_dirty].hwpt = hwpt;
	d[a->nr_dirty].slots = slots;
	a->nr_dirty++;
	return 0;
}

static void area_dirty_del(struct ifd_area *a, const struct ifd_hwpt *hwpt)
{
	size_t i;

	for (i = 0; i < a->nr_dirty; i++) {
		if (a->dirty[i].hwpt != hwpt)
			continue;
		free(a->dirty[i].slots);
		a->dirty[i] = a->dirty[--a->nr_dirty];
		return;
	}
}

static void area_free(struct ifd_area *a)
{
	size_t i;

	for (i = 0; i < a->nr_dirty; i++)
		free(a->dirty[i].slots);
	free(a->dirty);
	a->dirty = NULL;
	a->nr_dirty = 0;
}

/*
 * The accesses attached to ioas are told that [iova, iova + len) goes
 * (iommufd_access_notify_unmap): their drivers unpin what they pinned.
 */
static void ioas_notify_unmap(struct ifd_ioas *ioas, uint64_t iova,
			      uint64_t len)
{
	struct ifd_ctx *c = ioas->obj.ctx;
	uint32_t id;

	for (id = 1; id < c->nr_objs; id++) {
		struct ifd_access *acc = (struct ifd_access *)c->objs[id];

		if (acc && acc->obj.type == IFD_ACCESS && acc->ioas == ioas)
			ksim_pins_drop_range(c->k, acc, iova, len);
	}
}

static void area_remove(struct ifd_ioas *ioas, size_t i)
{
	struct ifd_area *a = &ioas->areas[i];

	ioas_notify_unmap(ioas, a->iova, a->length);
	area_free(a);
	memmove(ioas->areas + i, ioas->areas + i + 1,
		(ioas->nr_areas - i - 1) * sizeof(*ioas->areas));
	ioas->nr_areas--;
}

/* ------------------------------------------------------------------ */
/* IOAS geometry: alignment and reserved ranges                        */

/*
 * iopt_calculate_iova_alignment(): the largest smallest page of its
 * domains and PAGE_SIZE for each attached access (every vfio emulated
 * device pins: needs_pin_pages); 1 for an empty IOAS. extra_align is
 * what a domain or access about to join adds.
 */
static uint64_t ioas_alignment(const struct ifd_ioas *ioas,
			       uint64_t extra_align)
{
	uint64_t a = extra_align ? extra_align : 1;
	size_t i;

	for (i = 0; i < ioas->nr_hwpts; i++) {
		uint64_t m = iommu_min_page(&ioas->hwpts[i]->iommu);

		if (m > a)
			a = m;
	}
	if (ioas->nr_accesses && KSIM_PAGE_SIZE > a)
		a = KSIM_PAGE_SIZE;
	return a;
}

/* The reserved regions a device brings while attached. */
static void idev_resv(const struct ifd_idev *idev, struct ifd_ranges *rs)
{
	if (idev->iommu.model == KSIM_IOMMU_INTEL)
		ranges_add(rs, IFD_MSI_START, IFD_MSI_LAST);
}

/* The ranges a domain's aperture leaves out. */
static void aperture_resv(const struct ifd_iommu *iommu,
			  struct ifd_ranges *rs)
{
	uint64_t start, last;

	iommu_aperture(iommu, &start, &last);
	if (start)
		ranges_add(rs, 0, start - 1);
	if (last != IFD_ULONG_MAX)
		ranges_add(rs, last + 1, IFD_ULONG_MAX);
}

/*
 * The reserved tree of an IOAS: its domains' apertures and the reserved
 * regions of the devices attached to them, merged.
 */
static void ioas_reserved(struct ifd_ioas *ioas, struct ifd_ranges *rs)
{
	size_t i, j;

	for (i = 0; i < ioas->nr_hwpts; i++)
		aperture_resv(&ioas->hwpts[i]->iommu, rs);
	for (i = 0; i < ioas->nr_hwpts; i++) {
		struct ifd_ctx *c = ioas->obj.ctx;
		struct ifd_igroup *ig;

		for (ig = c->igroups; ig; ig = ig->next) {
			if (ig->hwpt != ioas->hwpts[i])
				continue;
			for (j = 0; j < ig->nr_attached; j++)
				idev_resv(ig->attached[j], rs);
		}
	}
	ranges_merge(rs);
}

/*
 * iopt_check_iova_alignment(): every area conforms to a larger
 * alignment (EADDRINUSE otherwise).
 */
static int ioas_check_alignment(const struct ifd_ioas *ioas, uint64_t align)
{
	size_t i;

	for (i = 0; i < ioas->nr_areas; i++) {
		const struct ifd_area *a = &ioas->areas[i];

		if ((a->iova | a->length | (a->uva % KSIM_PAGE_SIZE)) &
		    (align - 1))
			return -EADDRINUSE;
	}
	return 0;
}

/* ------------------------------------------------------------------ */
/* Domains                                                             */

/*
 * The IOPTE of hwpt holding iova in area a: the largest page size of the
 * domain whose aligned block around iova lies inside the area with the
 * user address aligned alike. This is what a greedy iommu_map() of the
 * area from its start gives.
 */
static void iopte_of(const struct ifd_hwpt *hwpt, const struct ifd_area *a,
		     uint64_t iova, uint64_t *start, uint64_t *size)
{
	uint64_t sizes = hwpt->iommu.pgsizes;
	uint64_t minpg = iommu_min_page(&hwpt->iommu);
	int bit;

	for (bit = 63; bit >= 0; bit--) {
		uint64_t s = 1ull << bit, b;

		if (!(sizes & s) || s <= minpg)
			continue;
		b = iova & ~(s - 1);
		if (((a->uva - a->iova) & (s - 1)) || b < a->iova ||
		    b + (s - 1) > area_last(a))
			continue;
		*start = b;
		*size = s;
		return;
	}
	*start = iova & ~(minpg - 1);
	*size = minpg;
}

/* Whether any slot of [start, start + size) is dirty; clears them. */
static bool slots_test_clear(struct ifd_dirty *d, const struct ifd_area *a,
			     uint64_t minpg, uint64_t start, uint64_t size,
			     bool clear)
{
	uint64_t first = (start - a->iova) / minpg, n = size / minpg, i;
	bool dirty = false;

	for (i = first; i < first + n; i++) {
		if (!ksim_bit_test(d->slots, i))
			continue;
		dirty = true;
		if (clear)
			ksim_bit_clear(d->slots, i);
	}
	return dirty;
}

/* Where a GET_DIRTY_BITMAP writes its bits. */
struct ifd_bitmap {
	uint64_t iova;
	uint64_t nbits;
	unsigned int pgshift;
	uint8_t *data;
};

/*
 * iommu_dirty_bitmap_record(): the bits of [iova, iova + len), each set in
 * its byte of the user's bitmap (a byte that cannot be written is
 * skipped, silently). Bits past the request's last one are dropped: the
 * kernel's iova_bitmap_set() would set them in the rest of the last user
 * page it pinned, which only a record running past the range does (a
 * range that ends inside a huge IOPTE); ksim keeps to the bytes that hold
 * the range's bits, as docs/kernel-uapi.md 2.9 states it.
 */
static void bitmap_record(struct ifd_bitmap *bm, uint64_t iova, uint64_t len)
{
	uint64_t first, last, b;

	if (!bm)
		return;
	first = (iova - bm->iova) >> bm->pgshift;
	last = (iova + len - 1 - bm->iova) >> bm->pgshift;
	if (last >= bm->nbits)
		last = bm->nbits - 1;
	for (b = first; b <= last && b < bm->nbits; b++)
		user_bit_set(bm->data, b);
}

/*
 * The driver's read_and_clear_dirty() over [iova, last] of one area: the
 * walk steps by the IOPTE found at each position (from wherever the
 * request started, aligned or not), tests and clears the whole IOPTE and
 * records IOPTE-sized from the position. A read (bm set) while the domain
 * does not track is refused; the clearing pass of an enable (bm NULL)
 * is not.
 */
static int domain_read_clear(struct ifd_hwpt *hwpt, struct ifd_area *a,
			     uint64_t iova, uint64_t last, bool clear,
			     struct ifd_bitmap *bm)
{
	struct ifd_dirty *d = area_dirty(a, hwpt);
	uint64_t minpg = iommu_min_page(&hwpt->iommu);
	uint64_t p = iova;

	if (!hwpt->tracking && bm)
		return -EINVAL;
	if (!d)
		return 0;
	do {
		uint64_t start, size;

		iopte_of(hwpt, a, p, &start, &size);
		if (slots_test_clear(d, a, minpg, start, size, clear))
			bitmap_record(bm, p, size);
		if (size > last - p)
			break;
		p += size;
	} while (p <= last);
	return 0;
}

/* The device wrote [iova, iova + len) of one area through hwpt. */
static void domain_mark(struct ifd_hwpt *hwpt, struct ifd_area *a,
			uint64_t iova, uint64_t len)
{
	struct ifd_dirty *d;
	uint64_t minpg, i;

	if (!hwpt->dirty_ops || !hwpt->tracking)
		return;
	d = area_dirty(a, hwpt);
	if (!d)
		return;
	minpg = iommu_min_page(&hwpt->iommu);
	for (i = (iova - a->iova) / minpg;
	     i <= (iova + len - 1 - a->iova) / minpg; i++)
		ksim_bit_set(d->slots, i);
}

/*
 * iopt_table_add_domain()'s checks for a new domain on ioas: the new
 * alignment (at most PAGE_SIZE: EINVAL) fits every area (EADDRINUSE), no
 * area lies outside the aperture (EADDRINUSE), and every area's pages can
 * be pinned into it (EFAULT).
 */
static int domain_check_add(struct ifd_ioas *ioas, const struct ifd_iommu *m)
{
	uint64_t cur = ioas_alignment(ioas, 0);
	uint64_t align = ioas_alignment(ioas, iommu_min_page(m));
	struct ifd_ranges rs = { 0 };
	size_t i;
	int ret = 0;

	if (align > KSIM_PAGE_SIZE)
		return -EINVAL;
	if (align != cur) {
		ret = ioas_check_alignment(ioas, align);
		if (ret)
			return ret;
	}
	aperture_resv(m, &rs);
	if (rs.nomem) {
		free(rs.r);
		return -ENOMEM;
	}
	for (i = 0; i < rs.nr && !ret; i++)
		if (area_find(ioas, rs.r[i].start, rs.r[i].last))
			ret = -EADDRINUSE;
	free(rs.r);
	for (i = 0; i < ioas->nr_areas && !ret; i++)
		if (ksim_uva_faults(ioas->areas[i].uva, ioas->areas[i].length))
			ret = -EFAULT;
	return ret;
}

/* Puts a checked domain on its IOAS. */
static int domain_add(struct ifd_hwpt *hwpt)
{
	struct ifd_ioas *ioas = hwpt->ioas;
	struct ifd_hwpt **h;
	size_t i;

	h = realloc(ioas->hwpts, (ioas->nr_hwpts + 1) * sizeof(*h));
	if (!h)
		return -ENOMEM;
	ioas->hwpts = h;
	for (i = 0; hwpt->dirty_ops && i < ioas->nr_areas; i++) {
		if (area_dirty_add(&ioas->areas[i], hwpt)) {
			while (i--)
				area_dirty_del(&ioas->areas[i], hwpt);
			return -ENOMEM;
		}
	}
	h[ioas->nr_hwpts++] = hwpt;
	return 0;
}

/* Destroys a HWPT that nothing uses any more. */
static void hwpt_destroy(struct ifd_hwpt *hwpt)
{
	struct ifd_ioas *ioas = hwpt->ioas;
	size_t i;

	for (i = 0; i < ioas->nr_areas; i++)
		area_dirty_del(&ioas->areas[i], hwpt);
	for (i = 0; i < ioas->nr_hwpts; i++) {
		if (ioas->hwpts[i] != hwpt)
			continue;
		memmove(ioas->hwpts + i, ioas->hwpts + i + 1,
			(ioas->nr_hwpts - i - 1) * sizeof(*ioas->hwpts));
		ioas->nr_hwpts--;
		break;
	}
	obj_del(&hwpt->obj);
	free(hwpt);
}

/* iommufd_hw_pagetable_put(): an unused auto domain goes at once. */
static void hwpt_put(struct ifd_hwpt *hwpt)
{
	hwpt->users--;
	if (hwpt->auto_domain && !hwpt->users)
		hwpt_destroy(hwpt);
}

/*
 * The driver's attach_dev(): a domain of another driver (the core's owner
 * check) or a dirty-tracking domain on a device whose IOMMU cannot track
 * (Intel, AMD and the mock check it) is refused with EINVAL.
 */
static int driver_attach_check(const struct ifd_hwpt *hwpt,
			       const struct ifd_idev *idev)
{
	if (hwpt->iommu.model != idev->iommu.model)
		return -EINVAL;
	if (hwpt->dirty_ops && !idev->iommu.dirty)
		return -EINVAL;
	return 0;
}

/* iopt_table_enforce_dev_resv_regions(): no area may sit there. */
static int resv_check(const struct ifd_idev *idev, struct ifd_ioas *ioas)
{
	struct ifd_ranges rs = { 0 };
	size_t i;
	int ret = 0;

	idev_resv(idev, &rs);
	if (rs.nomem)
		ret = -ENOMEM;
	for (i = 0; i < rs.nr && !ret; i++)
		if (area_find(ioas, rs.r[i].start, rs.r[i].last))
			ret = -EADDRINUSE;
	free(rs.r);
	return ret;
}

/* Points the DMA of the group's devices at hwpt. */
static void igroup_set_as(struct ifd_igroup *ig)
{
	size_t i;

	for (i = 0; i < ig->nr_attached; i++) {
		struct ifd_idev *idev = ig->attached[i];

		if (idev->dev)
			ksim_device_set_as(idev->dev,
					   ig->hwpt ? &hwpt_as_ops : NULL,
					   ig->hwpt);
	}
}

/* iommufd_hw_pagetable_attach()'s checks, in its order. */
static int attach_check(struct ifd_hwpt *hwpt, struct ifd_idev *idev)
{
	struct ifd_igroup *ig = idev->igroup;
	int ret;

	if (ig->hwpt && ig->hwpt != hwpt)
		return -EINVAL;
	ret = resv_check(idev, hwpt->ioas);
	if (ret)
		return ret;
	if (!ig->nr_attached)
		return driver_attach_check(hwpt, idev);
	return 0;
}

/* Joins a checked device to hwpt. */
static int attach_commit(struct ifd_hwpt *hwpt, struct ifd_idev *idev)
{
	struct ifd_igroup *ig = idev->igroup;
	struct ifd_idev **a;

	a = realloc(ig->attached, (ig->nr_attached + 1) * sizeof(*a));
	if (!a)
		return -ENOMEM;
	ig->attached = a;
	a[ig->nr_attached++] = idev;
	ig->hwpt = hwpt;
	hwpt->users++;
	idev->attached = true;
	igroup_set_as(ig);
	return 0;
}

static int do_attach(struct ifd_hwpt *hwpt, struct ifd_idev *idev)
{
	int ret = attach_check(hwpt, idev);

	return ret ? ret : attach_commit(hwpt, idev);
}

/* iommufd_device_detach(). */
static void do_detach(struct ifd_idev *idev)
{
	struct ifd_igroup *ig = idev->igroup;
	struct ifd_hwpt *hwpt = ig->hwpt;
	size_t i;

	if (!idev->attached)
		return;
	for (i = 0; i < ig->nr_attached; i++) {
		if (ig->attached[i] != idev)
			continue;
		memmove(ig->attached + i, ig->attached + i + 1,
			(ig->nr_attached - i - 1) * sizeof(*ig->attached));
		ig->nr_attached--;
		break;
	}
	idev->attached = false;
	if (idev->dev)
		ksim_device_set_as(idev->dev, NULL, NULL);
	if (!ig->nr_attached)
		ig->hwpt = NULL;
	hwpt_put(hwpt);
}

/*
 * iommufd_device_do_replace(): the whole group moves (every device of it
 * that is attached), after the new domain's checks for each of them.
 */
static int do_replace(struct ifd_hwpt *hwpt, struct ifd_idev *idev)
{
	struct ifd_igroup *ig = idev->igroup;
	struct ifd_hwpt *old = ig->hwpt;
	size_t i;
	int ret;

	if (!old || !idev->attached)
		return -EINVAL;
	if (hwpt == old)
		return 0;
	if (hwpt->ioas != old->ioas) {
		for (i = 0; i < ig->nr_attached; i++) {
			ret = resv_check(ig->attached[i], hwpt->ioas);
			if (ret)
				return ret;
		}
	}
	for (i = 0; i < ig->nr_attached; i++) {
		ret = driver_attach_check(hwpt, ig->attached[i]);
		if (ret)
			return ret;
	}
	ig->hwpt = hwpt;
	hwpt->users += ig->nr_attached;
	old->users -= ig->nr_attached - 1;
	igroup_set_as(ig);
	hwpt_put(old);
	return 0;
}

/*
 * iommufd_hwpt_paging_alloc(): a paging HWPT on ioas for idev's IOMMU.
 * With immediate_attach (auto domains of an attach) the device is
 * attached before the domain joins the IOAS, as the kernel does.
 */
static int hwpt_alloc(struct ifd_ctx *c, struct ifd_ioas *ioas,
		      struct ifd_idev *idev, uint32_t flags, bool user_data,
		      bool immediate_attach, struct ifd_hwpt **out)
{
	const uint32_t valid = VK_IOMMU_HWPT_ALLOC_NEST_PARENT |
			       VK_IOMMU_HWPT_ALLOC_DIRTY_TRACKING;
	struct ifd_hwpt *hwpt;
	int ret;

	if (flags & ~valid)
		return -EOPNOTSUPP;
	if ((flags & VK_IOMMU_HWPT_ALLOC_DIRTY_TRACKING) && !idev->iommu.dirty)
		return -EOPNOTSUPP;
	hwpt = calloc(1, sizeof(*hwpt));
	if (!hwpt)
		return -ENOMEM;
	ret = obj_add(c, &hwpt->obj, IFD_HWPT);
	if (ret) {
		free(hwpt);
		return ret;
	}
	hwpt->ioas = ioas;
	hwpt->iommu = idev->iommu;
	hwpt->nest_parent = flags & VK_IOMMU_HWPT_ALLOC_NEST_PARENT;
	hwpt->dirty_ops = flags & VK_IOMMU_HWPT_ALLOC_DIRTY_TRACKING;
	/* domain_alloc_user(): no driver takes data for a paging domain. */
	ret = user_data ? -EOPNOTSUPP : 0;
	if (!ret && immediate_attach)
		ret = attach_check(hwpt, idev);
	if (!ret)
		ret = domain_check_add(ioas, &hwpt->iommu);
	if (!ret)
		ret = domain_add(hwpt);
	if (!ret && immediate_attach) {
		ret = attach_commit(hwpt, idev);
		if (ret) {
			hwpt_destroy(hwpt);
			return ret;
		}
	}
	if (ret) {
		obj_del(&hwpt->obj);
		free(hwpt);
		return ret;
	}
	*out = hwpt;
	return 0;
}

typedef int (*ifd_attach_fn)(struct ifd_hwpt *hwpt, struct ifd_idev *idev);

/*
 * iommufd_device_auto_get_domain(): the first automatic domain of the
 * IOAS that takes the device (EINVAL means incompatible: the next one),
 * else a new automatic domain. A user-allocated HWPT is never picked.
 */
static int auto_get_domain(struct ifd_ctx *c, struct ifd_idev *idev,
			   struct ifd_ioas *ioas, uint32_t *pt_id,
			   ifd_attach_fn fn)
{
	struct ifd_hwpt *hwpt;
	size_t i;
	int ret;

	for (i = 0; i < ioas->nr_hwpts; i++) {
		hwpt = ioas->hwpts[i];
		if (!hwpt->auto_domain)
			continue;
		ret = fn(hwpt, idev);
		if (ret == -EINVAL)
			continue;
		if (ret)
			return ret;
		*pt_id = hwpt->obj.id;
		return 0;
	}
	ret = hwpt_alloc(c, ioas, idev, 0, false, fn == do_attach, &hwpt);
	if (ret)
		return ret;
	if (fn != do_attach) {
		ret = fn(hwpt, idev);
		if (ret) {
			hwpt_destroy(hwpt);
			return ret;
		}
	}
	hwpt->auto_domain = true;
	*pt_id = hwpt->obj.id;
	return 0;
}

/* iommufd_device_change_pt(). */
static int change_pt(struct ifd_ctx *c, struct ifd_idev *idev,
		     uint32_t *pt_id, ifd_attach_fn fn)
{
	struct ifd_obj *o = obj_get(c, *pt_id, 0);

	if (!o)
		return -ENOENT;
	switch (o->type) {
	case IFD_HWPT:
		return fn((struct ifd_hwpt *)o, idev);
	case IFD_IOAS:
		return auto_get_domain(c, idev, (struct ifd_ioas *)o, pt_id,
				       fn);
	default:
		return -EINVAL;
	}
}

/* ------------------------------------------------------------------ */
/* Binding devices                                                     */

static struct ifd_igroup *igroup_get(struct ifd_ctx *c, const void *key)
{
	struct ifd_igroup *ig;

	for (ig = c->igroups; ig; ig = ig->next) {
		if (ig->key == key) {
			ig->refs++;
			return ig;
		}
	}
	ig = calloc(1, sizeof(*ig));
	if (!ig)
		return NULL;
	ig->key = key;
	ig->refs = 1;
	ig->next = c->igroups;
	c->igroups = ig;
	return ig;
}

static void igroup_put(struct ifd_ctx *c, struct ifd_igroup *ig)
{
	struct ifd_igroup **pp;

	if (--ig->refs)
		return;
	for (pp = &c->igroups; *pp != ig; pp = &(*pp)->next)
		;
	*pp = ig->next;
	free(ig->attached);
	free(ig);
}

/*
 * The DMA owner of an IOMMU group (iommu_device_claim_dma_owner): a
 * group bound to one iommufd cannot be bound to another (EBUSY).
 */
static bool group_owned_elsewhere(struct ksim *k, const struct ifd_ctx *c,
				  const void *key)
{
	const struct ifd_ctx *o;

	for (o = ifd_state(k)->ctxs; o; o = o->next) {
		const struct ifd_igroup *ig;

		if (o == c)
			continue;
		for (ig = o->igroups; ig; ig = ig->next)
			if (ig->key == key)
				return true;
	}
	return false;
}

/* iommufd_device_bind(): a device object for a physical device. */
static int idev_bind(struct ifd_ctx *c, struct ksim_device *d,
		     const struct ifd_iommu *iommu, const void *group_key,
		     struct ifd_idev **out)
{
	struct ifd_idev *idev;
	int ret;

	if (d && group_owned_elsewhere(c->k, c, group_key))
		return -EBUSY;
	idev = calloc(1, sizeof(*idev));
	if (!idev)
		return -ENOMEM;
	idev->igroup = igroup_get(c, group_key);
	if (!idev->igroup) {
		free(idev);
		return -ENOMEM;
	}
	ret = obj_add(c, &idev->obj, IFD_DEVICE);
	if (ret) {
		igroup_put(c, idev->igroup);
		free(idev);
		return ret;
	}
	idev->dev = d;
	idev->iommu = *iommu;
	*out = idev;
	return 0;
}

static void pasid_detach_all(struct ifd_idev *idev);

/* iommufd_device_unbind() after the detach. */
static void idev_unbind(struct ifd_idev *idev)
{
	struct ifd_ctx *c = idev->obj.ctx;

	pasid_detach_all(idev);
	do_detach(idev);
	igroup_put(c, idev->igroup);
	obj_del(&idev->obj);
	free(idev->pasids);
	free(idev);
}

/* iommufd_access_change_ioas(): moves an access (NULL: detaches). */
static int access_change_ioas(struct ifd_access *acc, struct ifd_ioas *ioas)
{
	struct ifd_ioas *cur = acc->ioas;
	int ret;

	if (cur == ioas)
		return 0;
	if (ioas) {
		uint64_t align = ioas_alignment(ioas, KSIM_PAGE_SIZE);

		if (align > ioas_alignment(ioas, 0)) {
			ret = ioas_check_alignment(ioas, align);
			if (ret)
				return ret;
		}
		ioas->nr_accesses++;
	}
	if (cur) {
		/* The unmap callback: the driver unpins everything. */
		ksim_pins_clear(acc->dev);
		cur->nr_accesses--;
	}
	acc->ioas = ioas;
	ksim_device_set_as(acc->dev, ioas ? &access_as_ops : NULL,
			   ioas ? acc : NULL);
	return 0;
}

/* ------------------------------------------------------------------ */
/* Contexts                                                            */

static void ctx_free(struct ksim *k, struct ifd_ctx *c)
{
	struct ifd_state *st = ifd_state(k);
	struct ifd_ctx **pp;
	uint32_t id;

	/* Leaves first, as iommufd_fops_release() does. */
	for (id = 1; id < c->nr_objs; id++) {
		struct ifd_selftest *s = (struct ifd_selftest *)c->objs[id];

		if (s && s->obj.type == IFD_SELFTEST) {
			idev_unbind(s->idev);
			obj_del(&s->obj);
			free(s);
		}
	}
	for (id = 1; id < c->nr_objs; id++) {
		struct ifd_obj *o = c->objs[id];

		if (o && o->type == IFD_HWPT)
			hwpt_destroy((struct ifd_hwpt *)o);
	}
	for (id = 1; id < c->nr_objs; id++) {
		struct ifd_ioas *ioas = (struct ifd_ioas *)c->objs[id];
		size_t i;

		/* Bindings hold the context: only IOASes are left. */
		if (!ioas || ioas->obj.type != IFD_IOAS)
			continue;
		for (i = 0; i < ioas->nr_areas; i++)
			area_free(&ioas->areas[i]);
		free(ioas->areas);
		free(ioas->hwpts);
		free(ioas);
	}
	while (c->igroups) {
		struct ifd_igroup *ig = c->igroups;

		c->igroups = ig->next;
		free(ig->attached);
		free(ig);
	}
	for (pp = &st->ctxs; *pp && *pp != c; pp = &(*pp)->next)
		;
	if (*pp)
		*pp = c->next;
	free(c->objs);
	free(c);
}

/* iommufd_ctx_put(): the last reference frees everything in it. */
static void ctx_put(struct ksim *k, struct ifd_ctx *c)
{
	if (--c->refs == 0)
		ctx_free(k, c);
}

/* ------------------------------------------------------------------ */
/* iommufd ioctls                                                      */

/* A decoded command: its buffer and the size the caller gave. */
struct ifd_ucmd {
	struct ifd_ctx *c;
	void *uarg;
	uint32_t usize;
};

/* iommufd_ucmd_respond(): copies back what the caller has room for. */
static int respond(const struct ifd_ucmd *u, const void *cmd, size_t len)
{
	size_t n = u->usize < len ? u->usize : len;

	return ksim_copy_to_user(u->uarg, cmd, n);
}

static int ifd_destroy(struct ifd_ucmd *u, void *buf)
{
	struct vk_iommu_destroy *cmd = buf;
	struct ifd_obj *o = obj_get(u->c, cmd->id, 0);

	if (!o)
		return -ENOENT;
	switch (o->type) {
	case IFD_IOAS: {
		struct ifd_ioas *ioas = (struct ifd_ioas *)o;

		/* HWPTs and accesses hold a reference to it. */
		if (ioas->nr_hwpts || ioas->nr_accesses)
			return -EBUSY;
		while (ioas->nr_areas)
			area_remove(ioas, ioas->nr_areas - 1);
		free(ioas->areas);
		free(ioas->hwpts);
		obj_del(o);
		free(ioas);
		return 0;
	}
	case IFD_HWPT: {
		struct ifd_hwpt *hwpt = (struct ifd_hwpt *)o;

		if (hwpt->users)
			return -EBUSY;
		hwpt_destroy(hwpt);
		return 0;
	}
	case IFD_SELFTEST: {
		struct ifd_selftest *s = (struct ifd_selftest *)o;

		idev_unbind(s->idev);
		obj_del(o);
		free(s);
		return 0;
	}
	default:
		/* Devices and accesses are held by their drivers. */
		return -EBUSY;
	}
}

static int ifd_ioas_alloc(struct ifd_ucmd *u, void *buf)
{
	struct vk_iommu_ioas_alloc *cmd = buf;
	struct ifd_ioas *ioas;
	int ret;

	if (cmd->flags)
		return -EOPNOTSUPP;
	ioas = calloc(1, sizeof(*ioas));
	if (!ioas)
		return -ENOMEM;
	ret = obj_add(u->c, &ioas->obj, IFD_IOAS);
	if (ret) {
		free(ioas);
		return ret;
	}
	cmd->out_ioas_id = ioas->obj.id;
	ret = respond(u, cmd, sizeof(*cmd));
	if (ret) {
		obj_del(&ioas->obj);
		free(ioas);
	}
	return ret;
}

static int ifd_iova_ranges(struct ifd_ucmd *u, void *buf)
{
	struct vk_iommu_ioas_iova_ranges *cmd = buf;
	struct ifd_ranges rs = { 0 };
	struct ifd_ioas *ioas;
	uint32_t max, n = 0;
	uint64_t next = 0;
	bool done = false;
	size_t i;
	int ret = 0;

	if (cmd->__reserved)
		return -EOPNOTSUPP;
	ioas = ioas_get(u->c, cmd->ioas_id);
	if (!ioas)
		return -ENOENT;
	ioas_reserved(ioas, &rs);
	if (rs.nomem) {
		free(rs.r);
		return -ENOMEM;
	}
	max = cmd->num_iovas;
	cmd->out_iova_alignment = ioas_alignment(ioas, 0);
	/* The holes of the sorted, merged reserved tree in [0, ULONG_MAX]. */
	for (i = 0; i <= rs.nr && !done && !ret; i++) {
		struct vk_iommu_iova_range elm = { .start = next };
		bool hole;

		if (i < rs.nr) {
			hole = rs.r[i].start > next;
			elm.last = rs.r[i].start - 1;
		} else {
			hole = true;
			elm.last = IFD_ULONG_MAX;
		}
		if (hole && n < max)
			ret = ksim_copy_to_user(
				(uint8_t *)(uintptr_t)cmd->allowed_iovas +
					n * sizeof(elm),
				&elm, sizeof(elm));
		n += hole;
		if (i < rs.nr) {
			done = rs.r[i].last == IFD_ULONG_MAX;
			next = rs.r[i].last + 1;
		}
	}
	free(rs.r);
	if (ret)
		return ret;
	cmd->num_iovas = n;
	ret = respond(u, cmd, sizeof(*cmd));
	if (!ret && n > max)
		ret = -EMSGSIZE;
	return ret;
}

/*
 * iopt_alloc_iova(): the first hole of [PAGE_SIZE, ULONG_MAX - PAGE_SIZE]
 * outside the reserved ranges and the areas where the mapping fits,
 * aligned as the buffer is (up to HPAGE_SIZE) with the buffer's offset in
 * its page.
 */
static int alloc_iova(struct ifd_ioas *ioas, uint64_t uva, uint64_t length,
		      uint64_t *iova)
{
	const uint64_t hi = IFD_ULONG_MAX - KSIM_PAGE_SIZE;
	uint64_t page_offset = uva % KSIM_PAGE_SIZE, align;
	uint64_t next = KSIM_PAGE_SIZE;
	struct ifd_ranges rs = { 0 };
	size_t i;
	int ret = -ENOSPC;

	if (!length || length >= IFD_ULONG_MAX / 2)
		return -EOVERFLOW;
	align = roundup_pow2(length);
	if (uva && (1ull << ksim_ffs64(uva)) < align)
		align = 1ull << ksim_ffs64(uva);
	if (align >= IFD_HPAGE_SIZE)
		align = IFD_HPAGE_SIZE;
	if (align < ioas_alignment(ioas, 0))
		return -EINVAL;
	ioas_reserved(ioas, &rs);
	for (i = 0; i < ioas->nr_areas; i++)
		ranges_add(&rs, ioas->areas[i].iova,
			   area_last(&ioas->areas[i]));
	if (rs.nomem) {
		free(rs.r);
		return -ENOMEM;
	}
	ranges_merge(&rs);
	for (i = 0; i <= rs.nr && ret; i++) {
		uint64_t last = hi, start;

		if (i < rs.nr) {
			if (rs.r[i].last < next)
				continue;
			if (rs.r[i].start > hi)
				i = rs.nr; /* the last hole, up to hi */
			else
				last = rs.r[i].start - 1;
		}
		if (i == rs.nr || rs.r[i].start > next) {
			/* __alloc_iova_check_range() on [next, last] */
			if (next <= UINT64_MAX - (align - 1)) {
				start = ((next + align - 1) & ~(align - 1)) |
					page_offset;
				if (!(start >= last ||
				      last - start < length - 1)) {
					*iova = start;
					ret = 0;
				}
			}
		}
		if (i >= rs.nr || rs.r[i].last >= hi)
			break;
		next = rs.r[i].last + 1;
	}
	free(rs.r);
	return ret;
}

static int area_insert(struct ifd_ioas *ioas, const struct ifd_area *na)
{
	size_t i = area_lower_bound(ioas, na->iova), j;
	struct ifd_area *a;

	a = ksim_array_grow(ioas->areas, &ioas->cap_areas, ioas->nr_areas,
			    sizeof(*a), 16);
	if (!a)
		return -ENOMEM;
	ioas->areas = a;
	ksim_array_open(a, ioas->nr_areas, i, sizeof(*a));
	ioas->areas[i] = *na;
	ioas->nr_areas++;
	a = &ioas->areas[i];
	a->dirty = NULL;
	a->nr_dirty = 0;
	for (j = 0; j < ioas->nr_hwpts; j++) {
		if (!ioas->hwpts[j]->dirty_ops)
			continue;
		if (area_dirty_add(a, ioas->hwpts[j])) {
			area_free(a);
			memmove(ioas->areas + i, ioas->areas + i + 1,
				(ioas->nr_areas - i - 1) *
					sizeof(*ioas->areas));
			ioas->nr_areas--;
			return -ENOMEM;
		}
	}
	return 0;
}

/* iommufd_ioas_map() through iopt_map_user_pages(). */
static int ifd_ioas_map(struct ifd_ucmd *u, void *buf)
{
	const uint32_t mask = VK_IOMMU_IOAS_MAP_FIXED_IOVA |
			      VK_IOMMU_IOAS_MAP_WRITEABLE |
			      VK_IOMMU_IOAS_MAP_READABLE;
	struct vk_iommu_ioas_map *cmd = buf;
	struct ifd_area na = { 0 };
	struct ifd_ranges rs = { 0 };
	struct ifd_ioas *ioas;
	uint64_t align, iova = cmd->iova;
	int ret;

	if ((cmd->flags & ~mask) || cmd->__reserved)
		return -EOPNOTSUPP;
	if (cmd->iova >= IFD_ULONG_MAX || cmd->length >= IFD_ULONG_MAX)
		return -EOVERFLOW;
	if (!(cmd->flags & (VK_IOMMU_IOAS_MAP_WRITEABLE |
			    VK_IOMMU_IOAS_MAP_READABLE)))
		return -EINVAL;
	ioas = ioas_get(u->c, cmd->ioas_id);
	if (!ioas)
		return -ENOENT;
	/* iopt_alloc_pages() */
	if (cmd->length > UINT64_MAX - KSIM_PAGE_SIZE || !cmd->length)
		return -EINVAL;
	if (cmd->user_va + cmd->length < cmd->user_va)
		return -EOVERFLOW;
	/* iopt_alloc_area_pages() */
	align = ioas_alignment(ioas, 0);
	if (cmd->length & (align - 1))
		return -EINVAL;
	if (!(cmd->flags & VK_IOMMU_IOAS_MAP_FIXED_IOVA)) {
		ret = alloc_iova(ioas, cmd->user_va, cmd->length, &iova);
		if (ret)
			return ret;
	} else {
		/* iopt_check_iova() */
		if (iova & (align - 1))
			return -EINVAL;
		if (iova + (cmd->length - 1) < iova)
			return -EOVERFLOW;
		ioas_reserved(ioas, &rs);
		ret = rs.nomem ? -ENOMEM : 0;
		if (!ret && ranges_hit(&rs, iova, iova + (cmd->length - 1)))
			ret = -EINVAL;
		free(rs.r);
		if (ret)
			return ret;
		if (area_find(ioas, iova, iova + (cmd->length - 1)))
			return -EEXIST;
	}
	/* iopt_insert_area(): the offset in the first page must align. */
	if ((cmd->user_va % KSIM_PAGE_SIZE) & (align - 1))
		return -EINVAL;
	/* With a domain, the pages are pinned and mapped now. */
	if (ioas->nr_hwpts && ksim_uva_faults(cmd->user_va, cmd->length))
		return -EFAULT;
	na.iova = iova;
	na.length = cmd->length;
	na.uva = cmd->user_va;
	if (cmd->flags & VK_IOMMU_IOAS_MAP_WRITEABLE)
		na.prot |= KSIM_PROT_WRITE;
	if (cmd->flags & VK_IOMMU_IOAS_MAP_READABLE)
		na.prot |= KSIM_PROT_READ;
	ret = area_insert(ioas, &na);
	if (ret)
		return ret;
	cmd->iova = iova;
	/* A failed copy-out leaves the mapping in place, as the kernel. */
	return respond(u, cmd, sizeof(*cmd));
}

/*
 * iopt_unmap_iova_range(): every area intersecting [start, last] must
 * lie inside it (ENOENT otherwise, after the ones before it are gone).
 */
static int unmap_range(struct ifd_ioas *ioas, uint64_t start, uint64_t last,
		       uint64_t *unmapped)
{
	struct ifd_area *a;

	*unmapped = 0;
	while ((a = area_find(ioas, start, last))) {
		uint64_t alast = area_last(a);

		if (a->iova < start || alast > last)
			return -ENOENT;
		*unmapped += a->length;
		area_remove(ioas, (size_t)(a - ioas->areas));
		if (alast >= last)
			break;
		start = alast + 1;
	}
	return 0;
}

static int ifd_ioas_unmap(struct ifd_ucmd *u, void *buf)
{
	struct vk_iommu_ioas_unmap *cmd = buf;
	struct ifd_ioas *ioas = ioas_get(u->c, cmd->ioas_id);
	uint64_t unmapped = 0;
	int ret;

	if (!ioas)
		return -ENOENT;
	if (cmd->iova == 0 && cmd->length == UINT64_MAX) {
		ret = unmap_range(ioas, 0, IFD_ULONG_MAX, &unmapped);
		if (ret)
			return ret;
	} else {
		if (cmd->iova >= IFD_ULONG_MAX || cmd->length >= IFD_ULONG_MAX)
			return -EOVERFLOW;
		if (!cmd->length)
			return -EINVAL;
		if (cmd->iova + (cmd->length - 1) < cmd->iova)
			return -EOVERFLOW;
		ret = unmap_range(ioas, cmd->iova,
				  cmd->iova + (cmd->length - 1), &unmapped);
		if (ret)
			return ret;
		if (!unmapped)
			return -ENOENT;
	}
	cmd->length = unmapped;
	return respond(u, cmd, sizeof(*cmd));
}

static int ifd_hwpt_alloc(struct ifd_ucmd *u, void *buf)
{
	struct vk_iommu_hwpt_alloc *cmd = buf;
	struct ifd_hwpt *hwpt, *parent;
	struct ifd_idev *idev;
	struct ifd_obj *pt;
	int ret;

	if (cmd->__reserved)
		return -EOPNOTSUPP;
	if ((cmd->data_type == VK_IOMMU_HWPT_DATA_NONE && cmd->data_len) ||
	    (cmd->data_type != VK_IOMMU_HWPT_DATA_NONE && !cmd->data_len))
		return -EINVAL;
	idev = idev_get(u->c, cmd->dev_id);
	if (!idev)
		return -ENOENT;
	pt = obj_get(u->c, cmd->pt_id, 0);
	if (!pt)
		return -EINVAL; /* not ENOENT: the kernel's choice */
	if (pt->type == IFD_HWPT) {
		/* iommufd_hwpt_nested_alloc()'s checks; no nesting modelled. */
		parent = (struct ifd_hwpt *)pt;
		if ((cmd->flags & ~VK_IOMMU_HWPT_FAULT_ID_VALID) ||
		    !cmd->data_len)
			return -EOPNOTSUPP;
		if (parent->auto_domain || !parent->nest_parent ||
		    parent->iommu.model != idev->iommu.model)
			return -EINVAL;
		return -EOPNOTSUPP;
	}
	if (pt->type != IFD_IOAS)
		return -EINVAL;
	ret = hwpt_alloc(u->c, (struct ifd_ioas *)pt, idev, cmd->flags,
			 cmd->data_len != 0, false, &hwpt);
	if (ret)
		return ret;
	cmd->out_hwpt_id = hwpt->obj.id;
	ret = respond(u, cmd, sizeof(*cmd));
	if (ret)
		hwpt_destroy(hwpt);
	return ret;
}

/* The driver's hw_info(): type and payload. */
static void hw_info_data(const struct ifd_iommu *m, uint32_t *type,
			 uint8_t *data, uint32_t *len)
{
	if (m->model == KSIM_IOMMU_MOCK) {
		uint32_t info[2] = { 0, IFD_SELFTEST_REGVAL };

		*type = VK_IOMMU_HW_INFO_TYPE_SELFTEST;
		memcpy(data, info, sizeof(info));
		*len = sizeof(info);
	} else {
		/*
		 * struct iommu_hw_info_vtd: flags, reserved, cap_reg and
		 * ecap_reg of a made-up unit, except for the capability's
		 * SLLPS field (bits 34 to 37: 2 MiB, 1 GiB second-stage
		 * pages), which the Intel driver turns into its domains'
		 * page sizes: the device's here.
		 */
		uint64_t regs[3] = { 0, 0x00d2008c40660462ull,
				     0x0002f050da0ull };
		uint64_t sllps = (m->pgsizes & IFD_SZ_2M ? 1 : 0) |
				 (m->pgsizes & IFD_SZ_1G ? 2 : 0);

		regs[1] = (regs[1] & ~(0xfull << 34)) | sllps << 34;

		*type = VK_IOMMU_HW_INFO_TYPE_INTEL_VTD;
		memcpy(data, regs, sizeof(regs));
		*len = sizeof(regs);
	}
}

static int ifd_get_hw_info(struct ifd_ucmd *u, void *buf)
{
	struct vk_iommu_hw_info *cmd = buf;
	uint8_t data[32];
	uint32_t len, copy;
	struct ifd_idev *idev;
	void *uptr = (void *)(uintptr_t)cmd->data_uptr;

	if (cmd->flags || cmd->__reserved[0] || cmd->__reserved[1] ||
	    cmd->__reserved[2])
		return -EOPNOTSUPP;
	idev = idev_get(u->c, cmd->dev_id);
	if (!idev)
		return -ENOENT;
	hw_info_data(&idev->iommu, &cmd->out_data_type, data, &len);
	copy = cmd->data_len < len ? cmd->data_len : len;
	if (ksim_copy_to_user(uptr, data, copy))
		return -EFAULT;
	if (copy < cmd->data_len &&
	    clear_user((uint8_t *)uptr + copy, cmd->data_len - copy))
		return -EFAULT;
	cmd->data_len = len;
	cmd->out_capabilities = 0;
	if (idev->iommu.dirty)
		cmd->out_capabilities |= VK_IOMMU_HW_CAP_DIRTY_TRACKING;
	cmd->out_max_pasid_log2 = idev->iommu.max_pasid_log2;
	return respond(u, cmd, sizeof(*cmd));
}

/*
 * iopt_set_dirty_tracking(): an enable first clears the dirty bits of
 * every area (even when tracking is on already: bits are lost), then
 * turns tracking on; a disable keeps them.
 */
static int ifd_set_dirty_tracking(struct ifd_ucmd *u, void *buf)
{
	struct vk_iommu_hwpt_set_dirty_tracking *cmd = buf;
	struct ifd_hwpt *hwpt;
	bool enable = cmd->flags & VK_IOMMU_HWPT_DIRTY_TRACKING_ENABLE;
	size_t i;

	if (cmd->flags & ~VK_IOMMU_HWPT_DIRTY_TRACKING_ENABLE)
		return -EOPNOTSUPP;
	hwpt = hwpt_get(u->c, cmd->hwpt_id);
	if (!hwpt)
		return -ENOENT;
	if (!hwpt->dirty_ops)
		return -EOPNOTSUPP;
	if (enable)
		for (i = 0; i < hwpt->ioas->nr_areas; i++) {
			struct ifd_area *a = &hwpt->ioas->areas[i];

			domain_read_clear(hwpt, a, a->iova, area_last(a), true,
					  NULL);
		}
	hwpt->tracking = enable;
	return 0;
}

/*
 * iommufd_check_iova_range() then iommu_read_and_clear_dirty(): after the
 * checks, the walk over the contiguous areas from iova stops at the first
 * gap or refusal, and its error is dropped: the ioctl returns 0.
 */
static int ifd_get_dirty_bitmap(struct ifd_ucmd *u, void *buf)
{
	struct vk_iommu_hwpt_get_dirty_bitmap *cmd = buf;
	struct ifd_hwpt *hwpt;
	struct ifd_bitmap bm;
	struct ifd_area *a;
	uint64_t align, last, cur;
	bool clear;

	if ((cmd->flags & ~VK_IOMMU_HWPT_GET_DIRTY_BITMAP_NO_CLEAR) ||
	    cmd->__reserved)
		return -EOPNOTSUPP;
	hwpt = hwpt_get(u->c, cmd->hwpt_id);
	if (!hwpt)
		return -ENOENT;
	if (!cmd->length)
		return -EINVAL;
	if (cmd->iova + (cmd->length - 1) < cmd->iova)
		return -EOVERFLOW;
	last = cmd->iova + (cmd->length - 1);
	align = ioas_alignment(hwpt->ioas, 0);
	if ((cmd->iova & (align - 1)) || ((last + 1) & (align - 1)))
		return -EINVAL;
	if (!cmd->page_size)
		return -EINVAL;
	if ((cmd->iova & (cmd->page_size - 1)) ||
	    ((last + 1) & (cmd->page_size - 1)))
		return -EINVAL;
	if (!hwpt->dirty_ops)
		return -EOPNOTSUPP;
	bm.iova = cmd->iova;
	bm.pgshift = ksim_ffs64(cmd->page_size);
	bm.nbits = ((cmd->length - 1) >> bm.pgshift) + 1;
	bm.data = (uint8_t *)(uintptr_t)cmd->data;
	clear = !(cmd->flags & VK_IOMMU_HWPT_GET_DIRTY_BITMAP_NO_CLEAR);
	/* iopt_for_each_contig_area() from the area holding iova. */
	cur = cmd->iova;
	a = area_find(hwpt->ioas, cur, cur);
	while (a && a->iova <= cur) {
		uint64_t alast = area_last(a);

		if (domain_read_clear(hwpt, a, cur, min_u64(last, alast),
				      clear, &bm))
			break;
		if (alast >= last)
			break;
		cur = alast + 1;
		a = area_find(hwpt->ioas, cur, cur);
	}
	return 0;
}

/* ------------------------------------------------------------------ */
/* The selftest (CONFIG_IOMMUFD_TEST)                                  */

/* iommufd_test_mock_domain(): a mock device, bound and attached. */
static int test_mock_domain(struct ifd_ucmd *u, struct vk_iommu_test_cmd *cmd)
{
	struct ksim_iommufd_device_params p = { .model = KSIM_IOMMU_MOCK };
	struct ifd_selftest *s;
	struct ifd_iommu iommu;
	struct ifd_idev *idev;
	uint32_t pt_id = cmd->id, flags = 0;
	int ret;

	s = calloc(1, sizeof(*s));
	if (!s)
		return -ENOMEM;
	ret = obj_add(u->c, &s->obj, IFD_SELFTEST);
	if (ret) {
		free(s);
		return ret;
	}
	if (cmd->op == VK_IOMMU_TEST_OP_MOCK_DOMAIN_FLAGS)
		flags = cmd->mock_domain_flags.dev_flags;
	ret = -EINVAL;
	if (flags & ~(VK_MOCK_FLAGS_DEVICE_NO_DIRTY |
		      VK_MOCK_FLAGS_DEVICE_HUGE_IOVA))
		goto out_sobj;
	p.dirty_tracking = !(flags & VK_MOCK_FLAGS_DEVICE_NO_DIRTY);
	p.mock_huge_iova = flags & VK_MOCK_FLAGS_DEVICE_HUGE_IOVA;
	iommu_of(&p, &iommu);
	/* Each mock device is its own IOMMU group: the object is the key. */
	ret = idev_bind(u->c, NULL, &iommu, s, &idev);
	if (ret)
		goto out_sobj;
	s->idev = idev;
	ret = change_pt(u->c, idev, &pt_id, do_attach);
	if (ret)
		goto out_unbind;
	cmd->mock_domain.out_hwpt_id = pt_id;
	cmd->mock_domain.out_stdev_id = s->obj.id;
	cmd->mock_domain.out_idev_id = idev->obj.id;
	ret = respond(u, cmd, sizeof(*cmd));
	if (!ret)
		return 0;
out_unbind:
	idev_unbind(idev);
out_sobj:
	obj_del(&s->obj);
	free(s);
	return ret;
}

/*
 * iommufd_test_dirty(): sets the dirty flag of the mock slots whose bit
 * is set. The slot index is iova / page_size, right only for a
 * page_size of MOCK_IO_PAGE_SIZE, as in the kernel.
 */
static int test_dirty(struct ifd_ucmd *u, struct vk_iommu_test_cmd *cmd)
{
	uint64_t iova = cmd->dirty.iova, length = cmd->dirty.length;
	uint64_t page_size = cmd->dirty.page_size, max, i;
	const uint8_t *uptr = (const uint8_t *)(uintptr_t)cmd->dirty.uptr;
	struct ifd_hwpt *hwpt;
	uint8_t *tmp;
	uint64_t count = 0;
	int ret;

	if (!page_size || !length || iova % page_size ||
	    length % page_size || !uptr)
		return -EINVAL;
	max = length / page_size;
	if (max > IFD_TEST_DIRTY_MAX_BITS)
		return -EOVERFLOW;
	hwpt = hwpt_get(u->c, cmd->id);
	if (!hwpt)
		return -ENOENT;
	if (hwpt->iommu.model != KSIM_IOMMU_MOCK)
		return -EINVAL;
	if (!hwpt->tracking)
		return -EINVAL;
	tmp = malloc((max + 7) / 8);
	if (!tmp)
		return -ENOMEM;
	if (ksim_copy_from_user(tmp, uptr, (max + 7) / 8)) {
		free(tmp);
		return -EFAULT;
	}
	for (i = 0; i < max; i++) {
		uint64_t slot_iova, cur = iova + i * page_size;
		struct ifd_area *a;
		struct ifd_dirty *d;

		if (!((tmp[i / 8] >> (i % 8)) & 1))
			continue;
		slot_iova = (cur / page_size) * IFD_SZ_2K;
		a = area_find(hwpt->ioas, slot_iova, slot_iova);
		d = a ? area_dirty(a, hwpt) : NULL;
		if (!d)
			continue;
		ksim_bit_set(d->slots, (slot_iova - a->iova) / IFD_SZ_2K);
		count++;
	}
	free(tmp);
	cmd->dirty.out_nr_dirty = count;
	ret = respond(u, cmd, sizeof(*cmd));
	return ret;
}

/*
 * iommufd_test_mock_domain_replace(): moves a mock device (id = its
 * selftest object) to another IOAS or HWPT with replace semantics, and
 * returns the HWPT it is on now in pt_id. Another kind of object, or
 * none, is ENOENT (iommufd_get_object with IOMMUFD_OBJ_SELFTEST).
 */
static int test_mock_domain_replace(struct ifd_ucmd *u,
				    struct vk_iommu_test_cmd *cmd)
{
	struct ifd_selftest *s =
		(struct ifd_selftest *)obj_get(u->c, cmd->id, IFD_SELFTEST);
	uint32_t pt_id = cmd->mock_domain_replace.pt_id;
	int ret;

	if (!s)
		return -ENOENT;
	ret = change_pt(u->c, s->idev, &pt_id, do_replace);
	if (ret)
		return ret;
	cmd->mock_domain_replace.pt_id = pt_id;
	return respond(u, cmd, sizeof(*cmd));
}

static int ifd_test_cmd(struct ifd_ucmd *u, void *buf)
{
	struct vk_iommu_test_cmd *cmd = buf;

	switch (cmd->op) {
	case VK_IOMMU_TEST_OP_MOCK_DOMAIN:
	case VK_IOMMU_TEST_OP_MOCK_DOMAIN_FLAGS:
		return test_mock_domain(u, cmd);
	case VK_IOMMU_TEST_OP_MOCK_DOMAIN_REPLACE:
		return test_mock_domain_replace(u, cmd);
	case VK_IOMMU_TEST_OP_DIRTY:
		return test_dirty(u, cmd);
	default:
		/* Unknown, and the known ops ksim does not model. */
		return -EOPNOTSUPP;
	}
}

/* ------------------------------------------------------------------ */
/* The /dev/iommu fd                                                   */

struct ifd_op {
	unsigned int cmd;
	uint32_t min_size; /* offsetofend of the last field it must read */
	uint32_t size;     /* the kernel's struct */
	int (*fn)(struct ifd_ucmd *u, void *buf);
};

#define IFD_OP(nr, c, type, last, f)                                  \
	[(nr) - 0x80] = { c, offsetof(type, last) +                  \
				     sizeof(((type *)0)->last),      \
			  sizeof(type), f }

/* iommufd_ioctl_ops[], indexed by nr - IOMMUFD_CMD_BASE. */
static const struct ifd_op ifd_ops[] = {
	IFD_OP(0x80, VK_IOMMU_DESTROY, struct vk_iommu_destroy, id,
	       ifd_destroy),
	IFD_OP(0x81, VK_IOMMU_IOAS_ALLOC, struct vk_iommu_ioas_alloc,
	       out_ioas_id, ifd_ioas_alloc),
	IFD_OP(0x84, VK_IOMMU_IOAS_IOVA_RANGES,
	       struct vk_iommu_ioas_iova_ranges, out_iova_alignment,
	       ifd_iova_ranges),
	IFD_OP(0x85, VK_IOMMU_IOAS_MAP, struct vk_iommu_ioas_map, iova,
	       ifd_ioas_map),
	IFD_OP(0x86, VK_IOMMU_IOAS_UNMAP, struct vk_iommu_ioas_unmap, length,
	       ifd_ioas_unmap),
	IFD_OP(0x89, VK_IOMMU_HWPT_ALLOC, struct vk_iommu_hwpt_alloc,
	       __reserved, ifd_hwpt_alloc),
	IFD_OP(0x8a, VK_IOMMU_GET_HW_INFO, struct vk_iommu_hw_info, __reserved,
	       ifd_get_hw_info),
	IFD_OP(0x8b, VK_IOMMU_HWPT_SET_DIRTY_TRACKING,
	       struct vk_iommu_hwpt_set_dirty_tracking, __reserved,
	       ifd_set_dirty_tracking),
	IFD_OP(0x8c, VK_IOMMU_HWPT_GET_DIRTY_BITMAP,
	       struct vk_iommu_hwpt_get_dirty_bitmap, data,
	       ifd_get_dirty_bitmap),
	IFD_OP(0xa0, VK_IOMMU_TEST_CMD, struct vk_iommu_test_cmd, last,
	       ifd_test_cmd),
};

/*
 * iommufd_fops_ioctl(): the request's nr picks the entry; any other bits
 * of the request, or an entry the table lacks, is ENOTTY. A size below
 * the command's minimum is EINVAL, unknown trailing bytes E2BIG.
 * Requests below 0x80 or past the table go to the VFIO compatibility
 * handler, which ksim does not model (ENOTTY).
 */
static int iommufd_ioctl(struct ksim *k, struct ksim_obj *o, unsigned int cmd,
			 void *arg)
{
	struct ifd_ucmd u = { .c = o->priv, .uarg = arg };
	union {
		struct vk_iommu_test_cmd test;
		struct vk_iommu_hwpt_alloc hwpt;
		uint64_t align;
	} buf;
	unsigned int nr = cmd & 0xff;
	const struct ifd_op *op;
	int ret;

	(void)k;
	if (nr < 0x80 || nr - 0x80 >= sizeof(ifd_ops) / sizeof(ifd_ops[0]))
		return -ENOTTY;
	if (ksim_copy_from_user(&u.usize, arg, sizeof(u.usize)))
		return -EFAULT;
	op = &ifd_ops[nr - 0x80];
	if (!op->fn || op->cmd != cmd)
		return -ENOTTY;
	if (u.usize < op->min_size)
		return -EINVAL;
	ret = copy_struct_from_user(&buf, op->size, arg, u.usize);
	if (ret)
		return ret;
	return op->fn(&u, &buf);
}

static void iommufd_release(struct ksim *k, struct ksim_obj *o)
{
	ctx_put(k, o->priv);
}

static const struct ksim_obj_ops iommufd_ops = {
	.type = KSIM_OBJ_IOMMUFD,
	.ioctl = iommufd_ioctl,
	.release = iommufd_release,
};

static int iommufd_open(struct ksim *k)
{
	struct ifd_state *st = ifd_state(k);
	struct ifd_ctx *c = calloc(1, sizeof(*c));
	int fd;

	if (!c)
		return -ENOMEM;
	c->k = k;
	fd = ksim_obj_install(k, &iommufd_ops, c, -1, NULL);
	if (fd < 0) {
		free(c);
		return fd;
	}
	c->refs = 1;
	c->next = st->ctxs;
	st->ctxs = c;
	return fd;
}

/* ------------------------------------------------------------------ */
/* VFIO device cdevs                                                   */

/* The IOMMU group key of a device: its ksim group. */
static const void *group_key(struct ksim_device *d)
{
	return d->group;
}

/*
 * vfio_df_unbind_iommufd(): detach, unbind, drop the context, unblock the
 * group. Runs at close, or when the device is unplugged.
 */
static void cdev_unbind(struct ksim *k, struct ifd_cdev *cd)
{
	struct ksim_device *d = cd->dev;

	if (!cd->bound)
		return;
	if (cd->idev) {
		idev_unbind(cd->idev);
		cd->idev = NULL;
	} else if (cd->access) {
		access_change_ioas(cd->access, NULL);
		obj_del(&cd->access->obj);
		free(cd->access);
		cd->access = NULL;
	}
	cd->bound = false;
	cd->attached = false;
	ctx_put(k, cd->ctx);
	cd->ctx = NULL;
	ifd_dev(d)->bound = NULL;
	d->open_count--;
	if (d->group)
		d->group->cdev_open_count--;
}

static void cdev_release(struct ksim *k, struct ksim_devfile *df)
{
	struct ifd_cdev *cd = df->ext[KSIM_EXT_IOMMUFD];

	if (cd)
		cdev_unbind(k, cd);
}

/* vfio_df_ioctl_bind_iommufd(). */
static int cdev_bind(struct ksim *k, struct ifd_cdev *cd, void *arg)
{
	struct vk_vfio_device_bind_iommufd bind;
	struct ksim_device *d = cd->dev;
	struct ksim_group *g = d->group;
	struct ifd_ctx *c;
	struct ksim_obj *o;
	uint32_t devid;
	int ret;

	if (ksim_copy_from_user(&bind, arg, sizeof(bind)))
		return -EFAULT;
	if (bind.argsz < sizeof(bind) || bind.flags || bind.iommufd < 0)
		return -EINVAL;
	/* vfio_device_block_group(): an open group file blocks the cdev. */
	if (g->file_refs)
		return -EBUSY;
	if (cd->bound)
		return -EINVAL;
	/*
	 * iommufd_ctx_from_fd(): an fd that is not open is EBADF, an open
	 * file that is not an iommufd EBADFD (foreign fds told apart with
	 * F_GETFD, as the type1 part does).
	 */
	o = ksim_obj_get(k, bind.iommufd);
	if (!o && fcntl(bind.iommufd, F_GETFD) < 0)
		return -EBADF;
	if (!o || o->ops != &iommufd_ops)
		return -EBADFD;
	c = o->priv;
	/* vfio_df_open(): a cdev opens the device only once. */
	if (d->open_count)
		return -EINVAL;
	if (d->kind == KSIM_DEV_MDEV) {
		struct ifd_access *acc = calloc(1, sizeof(*acc));

		if (!acc)
			return -ENOMEM;
		ret = obj_add(c, &acc->obj, IFD_ACCESS);
		if (ret) {
			free(acc);
			return ret;
		}
		acc->dev = d;
		cd->access = acc;
		devid = acc->obj.id;
	} else {
		ret = idev_bind(c, d, &ifd_dev(d)->iommu, group_key(d),
				&cd->idev);
		if (ret)
			return ret;
		devid = cd->idev->obj.id;
	}
	c->refs++;
	cd->ctx = c;
	cd->bound = true;
	ifd_dev(d)->bound = cd;
	d->open_count++;
	g->cdev_open_count++;
	ret = ksim_copy_to_user(&((struct vk_vfio_device_bind_iommufd *)arg)
					 ->out_devid,
				&devid, sizeof(devid));
	if (ret)
		cdev_unbind(k, cd);
	return ret;
}

/* vfio_iommufd_emulated_attach_ioas(): an access takes an IOAS only. */
static int access_attach(struct ifd_cdev *cd, uint32_t pt_id)
{
	struct ifd_ioas *ioas = ioas_get(cd->ctx, pt_id);

	if (!ioas)
		return -ENOENT;
	return access_change_ioas(cd->access, ioas);
}

static int pasid_attach(struct ifd_cdev *cd, uint32_t pasid,
			uint32_t *pt_id);
static void pasid_detach(struct ifd_idev *idev, uint32_t pasid);

/* vfio_df_ioctl_attach_pt(). */
static int cdev_attach(struct ksim *k, struct ifd_cdev *cd, void *arg)
{
	struct vk_vfio_device_attach_iommufd_pt attach;
	uint32_t pt_id, pasid = 0;
	bool with_pasid = false;
	int ret;

	if (ksim_copy_from_user(&attach, arg, sizeof(attach)))
		return -EFAULT;
	if (attach.argsz < sizeof(attach))
		return -EINVAL;
	if (ifd_state(k)->pasid_attach) {
		/* Beyond 6.12: VFIO_DEVICE_ATTACH_PASID. */
		if (attach.flags & ~IFD_VFIO_DEVICE_ATTACH_PASID)
			return -EINVAL;
		with_pasid = attach.flags & IFD_VFIO_DEVICE_ATTACH_PASID;
		if (with_pasid && cd->access)
			return -EOPNOTSUPP; /* no pasid_attach_ioas */
		if (with_pasid && attach.argsz < sizeof(attach) + 4)
			return -EINVAL;
		if (with_pasid &&
		    ksim_copy_from_user(&pasid, (uint8_t *)arg + sizeof(attach),
					sizeof(pasid)))
			return -EFAULT;
	} else if (attach.flags) {
		return -EINVAL;
	}
	pt_id = attach.pt_id;
	if (with_pasid)
		ret = pasid_attach(cd, pasid, &pt_id);
	else if (cd->access)
		ret = access_attach(cd, pt_id);
	else
		ret = change_pt(cd->ctx, cd->idev, &pt_id,
				cd->attached ? do_replace : do_attach);
	if (ret)
		return ret;
	if (!with_pasid)
		cd->attached = true;
	if (ksim_copy_to_user((uint8_t *)arg +
				      offsetof(struct
					       vk_vfio_device_attach_iommufd_pt,
					       pt_id),
			      &pt_id, sizeof(pt_id))) {
		if (with_pasid) {
			pasid_detach(cd->idev, pasid);
		} else if (cd->access) {
			access_change_ioas(cd->access, NULL);
			cd->attached = false;
		} else {
			do_detach(cd->idev);
			cd->attached = false;
		}
		return -EFAULT;
	}
	return 0;
}

/* vfio_df_ioctl_detach_pt(): detaching what is not attached is fine. */
static int cdev_detach(struct ksim *k, struct ifd_cdev *cd, void *arg)
{
	struct vk_vfio_device_detach_iommufd_pt detach;
	uint32_t pasid;

	if (ksim_copy_from_user(&detach, arg, sizeof(detach)))
		return -EFAULT;
	if (detach.argsz < sizeof(detach))
		return -EINVAL;
	if (ifd_state(k)->pasid_attach &&
	    detach.flags == IFD_VFIO_DEVICE_DETACH_PASID) {
		/* Beyond 6.12: VFIO_DEVICE_DETACH_PASID, pasid at 8. */
		if (cd->access)
			return -EOPNOTSUPP;
		if (detach.argsz < sizeof(detach) + 4)
			return -EINVAL;
		if (ksim_copy_from_user(&pasid, (uint8_t *)arg + sizeof(detach),
					sizeof(pasid)))
			return -EFAULT;
		pasid_detach(cd->idev, pasid);
		return 0;
	}
	if (detach.flags)
		return -EINVAL;
	if (!cd->attached)
		return 0;
	if (cd->access)
		access_change_ioas(cd->access, NULL);
	else
		do_detach(cd->idev);
	cd->attached = false;
	return 0;
}

/*
 * vfio_device_fops_unl_ioctl() for the requests this part answers: BIND
 * on any device fd (a group's: EINVAL), everything but BIND on an unbound
 * cdev fd (EINVAL), and ATTACH/DETACH on a cdev fd. The rest passes on.
 */
static int ifd_device_ioctl(struct ksim *k, struct ksim_devfile *df,
			    unsigned int cmd, void *arg)
{
	struct ifd_cdev *cd = df->ext[KSIM_EXT_IOMMUFD];

	if (cmd == VK_VFIO_DEVICE_BIND_IOMMUFD) {
		struct vk_vfio_device_bind_iommufd bind;

		if (cd)
			return cdev_bind(k, cd, arg);
		/* BIND is for cdev fds only; the checks before come first. */
		if (ksim_copy_from_user(&bind, arg, sizeof(bind)))
			return -EFAULT;
		return -EINVAL;
	}
	if (!cd)
		return KSIM_PASS;
	if (!cd->bound)
		return -EINVAL;
	switch (cmd) {
	case VK_VFIO_DEVICE_ATTACH_IOMMUFD_PT:
		return cdev_attach(k, cd, arg);
	case VK_VFIO_DEVICE_DETACH_IOMMUFD_PT:
		return cdev_detach(k, cd, arg);
	default:
		return KSIM_PASS;
	}
}

/* /dev/vfio/devices/vfio<N>: N as the kernel names it. */
static int cdev_open(struct ksim *k, const char *num)
{
	struct ksim_devfile *df;
	struct ksim_device *d;
	struct ifd_cdev *cd;
	char *end;
	long n;
	int fd;

	if (!*num || (num[0] == '0' && num[1]) || *num < '0' || *num > '9')
		return -ENOENT;
	errno = 0;
	n = strtol(num, &end, 10);
	if (*end || errno || n > INT32_MAX)
		return -ENOENT;
	for (d = k->devices; d; d = d->next) {
		struct ifd_dev *id = ifd_dev(d);

		if (id && id->p.cdev && id->p.cdev_index == (uint32_t)n)
			break;
	}
	if (!d)
		return -ENOENT;
	cd = calloc(1, sizeof(*cd));
	if (!cd)
		return -ENOMEM;
	cd->dev = d;
	fd = ksim_devfile_open(k, d, NULL, cdev_release, &df);
	if (fd < 0) {
		free(cd);
		return fd;
	}
	df->ext[KSIM_EXT_IOMMUFD] = cd;
	return fd;
}

static int ifd_open(struct ksim *k, const char *path, int flags)
{
	static const char prefix[] = "/dev/vfio/devices/vfio";

	(void)flags;
	if (!strcmp(path, "/dev/iommu"))
		return iommufd_open(k);
	if (!strncmp(path, prefix, sizeof(prefix) - 1))
		return cdev_open(k, path + sizeof(prefix) - 1);
	return KSIM_PASS;
}

/* ------------------------------------------------------------------ */
/* Address spaces                                                      */

/* A physical device's DMA through its HWPT: the IOAS's areas. */
static int hwpt_translate(struct ksim *k, void *as, struct ksim_device *d,
			  uint64_t iova, uint64_t len, void **hva,
			  uint64_t *plen)
{
	struct ifd_hwpt *hwpt = as;
	struct ifd_area *a = area_find(hwpt->ioas, iova, iova);
	uint64_t off;

	(void)k;
	(void)d;
	if (!a || !(a->prot & KSIM_PROT_WRITE))
		return -EFAULT;
	off = iova - a->iova;
	*plen = min_u64(a->length - off, len);
	*hva = (void *)(uintptr_t)(a->uva + off);
	return 0;
}

/* The IOMMU sets the dirty bits of the IOPTEs written, while tracking. */
static void hwpt_written(struct ksim *k, void *as, struct ksim_device *d,
			 uint64_t iova, uint64_t len)
{
	struct ifd_hwpt *hwpt = as;
	struct ifd_area *a = area_find(hwpt->ioas, iova, iova);

	(void)k;
	(void)d;
	if (a)
		domain_mark(hwpt, a, iova, len);
}

/* vfio_pin_pages() of a physical device bound to iommufd: no access. */
static int hwpt_pin(struct ksim *k, void *as, struct ksim_device *d,
		    uint64_t iova, uint64_t npages)
{
	(void)k;
	(void)as;
	(void)d;
	(void)iova;
	(void)npages;
	return -EINVAL;
}

static void areas_writable(struct ifd_ioas *ioas,
			   void (*fn)(void *opaque, uint64_t iova,
				      uint64_t len),
			   void *opaque)
{
	size_t i;

	for (i = 0; i < ioas->nr_areas; i++)
		if (ioas->areas[i].prot & KSIM_PROT_WRITE)
			fn(opaque, ioas->areas[i].iova, ioas->areas[i].length);
}

static void hwpt_for_each_writable(struct ksim *k, void *as,
				   struct ksim_device *d,
				   void (*fn)(void *opaque, uint64_t iova,
					      uint64_t len),
				   void *opaque)
{
	struct ifd_hwpt *hwpt = as;

	(void)k;
	(void)d;
	areas_writable(hwpt->ioas, fn, opaque);
}

static const struct ksim_as_ops hwpt_as_ops = {
	.translate = hwpt_translate,
	.written = hwpt_written,
	.pin = hwpt_pin,
	.for_each_writable = hwpt_for_each_writable,
};

/*
 * An mdev writes with iommufd_access_rw(): the areas of its IOAS, with
 * write permission. No IOMMU page table sees it.
 */
static int access_translate(struct ksim *k, void *as, struct ksim_device *d,
			    uint64_t iova, uint64_t len, void **hva,
			    uint64_t *plen)
{
	struct ifd_access *acc = as;
	struct ifd_area *a = area_find(acc->ioas, iova, iova);
	uint64_t off;

	(void)k;
	if (!d->open_count)
		return -ENODEV;
	if (!a || !(a->prot & KSIM_PROT_WRITE))
		return -EFAULT;
	off = iova - a->iova;
	*plen = min_u64(a->length - off, len);
	*hva = (void *)(uintptr_t)(a->uva + off);
	return 0;
}

/*
 * iommufd_access_pin_pages(): every page mapped (ENOENT) and writable
 * (EPERM); vfio_pin_pages() asks for write access.
 */
static int access_pin(struct ksim *k, void *as, struct ksim_device *d,
		      uint64_t iova, uint64_t npages)
{
	struct ifd_access *acc = as;
	uint64_t i;

	(void)k;
	(void)d;
	for (i = 0; i < npages; i++) {
		uint64_t p = iova + i * KSIM_PAGE_SIZE;
		struct ifd_area *a = area_find(acc->ioas, p, p);

		if (!a || area_last(a) < p + KSIM_PAGE_SIZE - 1) {
			/* The next page must continue it without a gap. */
			struct ifd_area *b = a ? area_find(acc->ioas,
							   area_last(a) + 1,
							   area_last(a) + 1)
					       : NULL;

			if (!a || !b || b->iova != area_last(a) + 1)
				return -ENOENT;
			if (!(b->prot & KSIM_PROT_WRITE))
				return -EPERM;
		}
		if (!(a->prot & KSIM_PROT_WRITE))
			return -EPERM;
	}
	return 0;
}

static void access_for_each_writable(struct ksim *k, void *as,
				     struct ksim_device *d,
				     void (*fn)(void *opaque, uint64_t iova,
						uint64_t len),
				     void *opaque)
{
	struct ifd_access *acc = as;

	(void)k;
	(void)d;
	areas_writable(acc->ioas, fn, opaque);
}

static const struct ksim_as_ops access_as_ops = {
	.translate = access_translate,
	.pin = access_pin,
	.for_each_writable = access_for_each_writable,
};

/* ------------------------------------------------------------------ */
/* PASID attachments: beyond Linux 6.12                                */

/*
 * Everything in this section models kernels newer than 6.12, and runs
 * only after ksim_iommufd_set_pasid_attach(k, true): 6.12 has no
 * userspace PASID attach at all (VFIO_DEVICE_ATTACH_IOMMUFD_PT refuses
 * any flag with EINVAL). A PASID of a physical device is attached to a
 * paging HWPT of its own (an IOAS id picks or creates an automatic
 * domain, as for the device itself); DMA through that PASID goes through
 * that domain and sets its dirty bits if it tracks. PASID 0 and PASIDs
 * beyond the device's width are EINVAL, as is a device without PASID
 * support; the domain checks are those of a plain attach. Unlike Intel's
 * driver, which refuses dirty-tracking domains on a PASID, ksim accepts
 * them: vmig must be able to track such a domain where the hardware can.
 */

static struct ifd_pasid *pasid_find(struct ifd_idev *idev, uint32_t pasid)
{
	size_t i;

	for (i = 0; i < idev->nr_pasids; i++)
		if (idev->pasids[i].pasid == pasid)
			return &idev->pasids[i];
	return NULL;
}

/* Attaches (or replaces) the domain of one PASID of idev. */
static int pasid_do_attach(struct ifd_idev *idev, uint32_t pasid,
			   struct ifd_hwpt *hwpt)
{
	struct ifd_pasid *p = pasid_find(idev, pasid);
	int ret = driver_attach_check(hwpt, idev);

	if (ret)
		return ret;
	if (p) {
		if (p->hwpt == hwpt)
			return 0;
		hwpt->users++;
		hwpt_put(p->hwpt);
		p->hwpt = hwpt;
		return 0;
	}
	p = realloc(idev->pasids, (idev->nr_pasids + 1) * sizeof(*p));
	if (!p)
		return -ENOMEM;
	idev->pasids = p;
	p[idev->nr_pasids].pasid = pasid;
	p[idev->nr_pasids].hwpt = hwpt;
	idev->nr_pasids++;
	hwpt->users++;
	return 0;
}

static int pasid_attach(struct ifd_cdev *cd, uint32_t pasid, uint32_t *pt_id)
{
	struct ifd_idev *idev = cd->idev;
	struct ifd_ctx *c = cd->ctx;
	struct ifd_obj *o;
	struct ifd_hwpt *hwpt;
	size_t i;
	int ret;

	if (!idev->iommu.max_pasid_log2 || !pasid ||
	    (idev->iommu.max_pasid_log2 < 32 &&
	     pasid >= (1u << idev->iommu.max_pasid_log2)))
		return -EINVAL;
	o = obj_get(c, *pt_id, 0);
	if (!o)
		return -ENOENT;
	if (o->type == IFD_HWPT)
		return pasid_do_attach(idev, pasid, (struct ifd_hwpt *)o);
	if (o->type != IFD_IOAS)
		return -EINVAL;
	/* An IOAS: the first automatic domain that takes it, or a new one. */
	for (i = 0; i < ((struct ifd_ioas *)o)->nr_hwpts; i++) {
		hwpt = ((struct ifd_ioas *)o)->hwpts[i];
		if (!hwpt->auto_domain)
			continue;
		ret = pasid_do_attach(idev, pasid, hwpt);
		if (ret == -EINVAL)
			continue;
		if (!ret)
			*pt_id = hwpt->obj.id;
		return ret;
	}
	ret = hwpt_alloc(c, (struct ifd_ioas *)o, idev, 0, false, false,
			 &hwpt);
	if (ret)
		return ret;
	ret = pasid_do_attach(idev, pasid, hwpt);
	if (ret) {
		hwpt_destroy(hwpt);
		return ret;
	}
	hwpt->auto_domain = true;
	*pt_id = hwpt->obj.id;
	return 0;
}

static void pasid_detach(struct ifd_idev *idev, uint32_t pasid)
{
	struct ifd_pasid *p = pasid_find(idev, pasid);
	struct ifd_hwpt *hwpt;

	if (!p)
		return;
	hwpt = p->hwpt;
	*p = idev->pasids[--idev->nr_pasids];
	hwpt_put(hwpt);
}

static void pasid_detach_all(struct ifd_idev *idev)
{
	while (idev->nr_pasids)
		pasid_detach(idev, idev->pasids[0].pasid);
}

void ksim_iommufd_set_pasid_attach(struct ksim *k, bool on)
{
	pthread_mutex_lock(&k->lock);
	ifd_state(k)->pasid_attach = on;
	pthread_mutex_unlock(&k->lock);
}

int ksim_dma_write_pasid(struct ksim_device *d, uint32_t pasid,
			 uint64_t iova, const void *buf, size_t len)
{
	struct ksim *k = d->k;
	struct ifd_dev *id;
	struct ifd_pasid *p = NULL;
	int ret = -ENODEV;

	pthread_mutex_lock(&k->lock);
	id = ifd_dev(d);
	if (!d->removed && id && id->bound && id->bound->idev)
		p = pasid_find(id->bound->idev, pasid);
	if (p)
		ret = ksim_dma_write_as(k, d, &hwpt_as_ops, p->hwpt, iova, buf,
					len);
	pthread_mutex_unlock(&k->lock);
	return ret;
}

/* ------------------------------------------------------------------ */
/* Looking at the state                                                */

static void hwpt_describe(const struct ifd_hwpt *hwpt,
			  struct ksim_iommufd_attachment *out)
{
	out->attached = true;
	out->pt_id = hwpt->obj.id;
	out->ioas_id = hwpt->ioas->obj.id;
	out->auto_domain = hwpt->auto_domain;
	out->dirty_capable = hwpt->dirty_ops;
	out->tracking = hwpt->tracking;
}

int ksim_iommufd_attachment(struct ksim_device *d, uint32_t pasid,
			    struct ksim_iommufd_attachment *out)
{
	struct ksim *k = d->k;
	struct ifd_cdev *cd;
	int ret = -ENOENT;

	memset(out, 0, sizeof(*out));
	pthread_mutex_lock(&k->lock);
	if (d->removed || !ifd_dev(d))
		goto out;
	ret = 0;
	cd = ifd_dev(d)->bound;
	if (!cd)
		goto out;
	out->bound = true;
	if (cd->access) {
		out->dev_id = cd->access->obj.id;
		if (!pasid && cd->access->ioas) {
			out->attached = true;
			out->pt_id = cd->access->ioas->obj.id;
			out->ioas_id = out->pt_id;
		}
		goto out;
	}
	out->dev_id = cd->idev->obj.id;
	if (pasid) {
		struct ifd_pasid *p = pasid_find(cd->idev, pasid);

		if (p)
			hwpt_describe(p->hwpt, out);
	} else if (cd->idev->attached) {
		hwpt_describe(cd->idev->igroup->hwpt, out);
	}
out:
	pthread_mutex_unlock(&k->lock);
	return ret;
}

/* ------------------------------------------------------------------ */
/* The part                                                            */

static int ifd_init(struct ksim *k)
{
	k->ext[KSIM_EXT_IOMMUFD] = calloc(1, sizeof(struct ifd_state));
	return k->ext[KSIM_EXT_IOMMUFD] ? 0 : -ENOMEM;
}

/* Every fd is closed by now; contexts kept alive by nothing are gone. */
static void ifd_fini(struct ksim *k)
{
	struct ifd_state *st = ifd_state(k);

	while (st->ctxs)
		ctx_free(k, st->ctxs);
	free(st);
	k->ext[KSIM_EXT_IOMMUFD] = NULL;
}

/* A device's IOMMU as iommufd sees it; a cdev number names one device. */
static int ifd_device_added(struct ksim *k, struct ksim_device *d)
{
	const struct ksim_iommufd_device_params *p = &d->iommufd;
	struct ksim_device *o;
	struct ifd_dev *id;

	if (p->cdev) {
		for (o = k->devices; o; o = o->next) {
			const struct ifd_dev *oid = ifd_dev(o);

			if (oid && oid->p.cdev &&
			    oid->p.cdev_index == p->cdev_index)
				return -EEXIST;
		}
	}
	id = calloc(1, sizeof(*id));
	if (!id)
		return -ENOMEM;
	id->p = *p;
	iommu_of(p, &id->iommu);
	d->ext[KSIM_EXT_IOMMUFD] = id;
	return 0;
}

/*
 * Hot-unplug. Linux waits for the user to close the device before it
 * lets it go; ksim unplugs at once, so it does what that close would:
 * the binding goes (detached, unbound, the context released), DMA stops,
 * and the fd stays open with -ENODEV for everything.
 */
static void ifd_device_removed(struct ksim *k, struct ksim_device *d)
{
	struct ifd_dev *id = ifd_dev(d);

	if (id && id->bound)
		cdev_unbind(k, id->bound);
}

const struct ksim_ext ksim_ext_iommufd = {
	.name = "iommufd",
	.init = ifd_init,
	.fini = ifd_fini,
	.open = ifd_open,
	.device_ioctl = ifd_device_ioctl,
	.device_added = ifd_device_added,
	.device_removed = ifd_device_removed,
};
