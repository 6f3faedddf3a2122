/*
 * devdirty.c: the device-dirty source, a VFIO device's own DMA log
 * (VFIO_DEVICE_FEATURE_DMA_LOGGING_START, _REPORT, _STOP), kept per device
 * and independent of the IOMMU behind it (type1 or iommufd alike).
 *
 * Each device logs the ranges it can write: its writable mappings, merged
 * by the plugin (smallest gaps first) down to the 256 the vfio core
 * accepts, so that the large holes of a guest's address space stay
 * outside what the device must track. The device may merge further
 * (vfio_combine_iova_ranges) and picks its own granule; the plugin asks
 * for one REPORT per (merged) START range a read touches, at the device's
 * granule and aligned to it, converts to the caller's page size and keeps
 * the part of a granule outside the caller's range for a later read.
 *
 * A log that broke or vanished (a failed REPORT: EIO, ENOTCONN, or EINVAL
 * after a pds device dropped it on STOP_COPY -> STOP or a close) is
 * declared unknown to vmig (its ranges go as dirty) and restarted. Every
 * kernel call goes through the host table.
 */
#include <errno.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <vmig/plugin.h>

#include <vmig/bitmap.h>
#include <vmig/linux-uapi.h>

/* What the vfio core accepts in one START (PAGE_SIZE / 16 at 4 KiB). */
#define DD_MAX_RANGES 256u
/* The most bits one REPORT returns: 8 MiB of bitmap. */
#define DD_MAX_REPORT_BITS (1ull << 26)

struct dd_dev {
	uint32_t id;
	uint32_t iommu_id;
	int fd; /* the VMM's device fd: never closed here */
	char name[64];
	/* The writable ranges the device can reach, sorted, coalesced. */
	struct vmig_range *want;
	uint32_t nr_want;
	uint32_t cap_want;
	/* What START asked the device to log (want, merged). */
	struct vmig_range *req;
	uint32_t nr_req;
	uint64_t granule; /* the page size the device chose */
	bool started;
	/* Dirty granule parts outside the read that reported them. */
	struct vmig_range *carry;
	size_t nr_carry;
	size_t cap_carry;
};

struct dd {
	const struct vmig_host *host;
	struct dd_dev **devs;
	size_t nr_devs;
	bool started;
	uint64_t page_size; /* asked of START */
	uint64_t *buf;      /* REPORT's bitmap */
	uint64_t buf_words;
};

static bool is_pow2(uint64_t v)
{
	return v && !(v & (v - 1));
}

static uint64_t range_end(const struct vmig_range *r)
{
	return r->iova + r->length;
}

/* ------------------------------------------------------------------ */
/* The kernel                                                          */

static int dd_feature(struct dd *t, int fd, uint32_t flags, void *payload,
		      size_t len)
{
	return vk_device_feature(t->host, fd, flags, payload, len);
}

static int dd_log_stop(struct dd *t, struct dd_dev *d)
{
	const uint32_t flags = VFIO_DEVICE_FEATURE_SET |
			       VFIO_DEVICE_FEATURE_DMA_LOGGING_STOP;

	return dd_feature(t, d->fd, flags, NULL, 0);
}

/* ------------------------------------------------------------------ */
/* Ranges                                                              */

static int range_push(struct vmig_range **arr, uint32_t *n, uint32_t *cap,
		      uint64_t iova, uint64_t length)
{
	if (*n == *cap) {
		uint32_t c = *cap ? 2 * *cap : 8;
		struct vmig_range *p = realloc(*arr, c * sizeof(*p));

		if (!p)
			return -ENOMEM;
		*arr = p;
		*cap = c;
	}
	(*arr)[*n].iova = iova;
	(*arr)[*n].length = length;
	(*n)++;
	return 0;
}

/*
 * Adds [iova, iova + length) to a sorted, coalesced list: it may overlap
 * or touch ranges already there (a mapping next to others).
 */
static int want_add(struct dd_dev *d, uint64_t iova, uint64_t length)
{
	uint64_t lo = iova, hi = iova + length;
	uint32_t i = 0, j;
	int ret;

	while (i < d->nr_want && range_end(&d->want[i]) < lo)
		i++;
	j = i;
	while (j < d->nr_want && d->want[j].iova <= hi) {
		if (d->want[j].iova < lo)
			lo = d->want[j].iova;
		if (range_end(&d->want[j]) > hi)
			hi = range_end(&d->want[j]);
		j++;
	}
	if (j == i) {
		ret = range_push(&d->want, &d->nr_want, &d->cap_want, 0, 0);
		if (ret < 0)
			return ret;
		memmove(d->want + i + 1, d->want + i,
			(d->nr_want - 1 - i) * sizeof(*d->want));
	} else {
		memmove(d->want + i + 1, d->want + j,
			(d->nr_want - j) * sizeof(*d->want));
		d->nr_want -= j - i - 1;
	}
	d->want[i].iova = lo;
	d->want[i].length = hi - lo;
	return 0;
}

/* Removes [iova, iova + length) from the list (an unmapped range). */
static int want_remove(struct dd_dev *d, uint64_t iova, uint64_t length)
{
	uint64_t lo = iova, hi = iova + length;
	uint32_t i;
	int ret;

	for (i = 0; i < d->nr_want; i++) {
		struct vmig_range *r = &d->want[i];
		uint64_t s = r->iova, e = range_end(r);

		if (e <= lo || s >= hi)
			continue;
		if (s < lo && e > hi) {
			/* Split: the tail goes after this range. */
			ret = range_push(&d->want, &d->nr_want, &d->cap_want,
					 0, 0);
			if (ret < 0)
				return ret;
			r = &d->want[i];
			memmove(d->want + i + 2, d->want + i + 1,
				(d->nr_want - 2 - i) * sizeof(*d->want));
			r->length = lo - s;
			d->want[i + 1].iova = hi;
			d->want[i + 1].length = e - hi;
			return 0;
		}
		if (s < lo) {
			r->length = lo - s;
		} else if (e > hi) {
			r->iova = hi;
			r->length = e - hi;
		} else {
			memmove(d->want + i, d->want + i + 1,
				(d->nr_want - i - 1) * sizeof(*d->want));
			d->nr_want--;
			i--;
		}
	}
	return 0;
}

/*
 * The ranges to START: the wanted ones, merged smallest gap first until
 * at most DD_MAX_RANGES remain, so that the biggest gaps (the holes below
 * and above 4 GiB) are the last to be spanned.
 */
static int req_build(struct dd_dev *d)
{
	struct vmig_range *r;
	uint32_t n = d->nr_want;

	r = malloc((n ? n : 1) * sizeof(*r));
	if (!r)
		return -ENOMEM;
	if (n)
		memcpy(r, d->want, n * sizeof(*r));
	while (n > DD_MAX_RANGES) {
		uint64_t best = UINT64_MAX;
		uint32_t i, at = 1;

		for (i = 1; i < n; i++) {
			uint64_t gap = r[i].iova - range_end(&r[i - 1]);

			if (gap < best) {
				best = gap;
				at = i;
			}
		}
		r[at - 1].length = range_end(&r[at]) - r[at - 1].iova;
		memmove(r + at, r + at + 1, (n - at - 1) * sizeof(*r));
		n--;
	}
	free(d->req);
	d->req = r;
	d->nr_req = n;
	return 0;
}

static bool req_covers(const struct dd_dev *d, uint64_t iova, uint64_t len)
{
	uint32_t i;

	for (i = 0; i < d->nr_req; i++) {
		if (d->req[i].iova <= iova &&
		    range_end(&d->req[i]) >= iova + len)
			return true;
	}
	return false;
}

/* ------------------------------------------------------------------ */
/* Starting and stopping a device's log                                */

static int dd_dev_start(struct dd *t, struct dd_dev *d)
{
	struct vfio_device_feature_dma_logging_control ctl;
	struct vfio_device_feature_dma_logging_range *rg;
	uint32_t i;
	int ret;

	ret = req_build(d);
	if (ret < 0)
		return ret;
	if (!d->nr_req) {
		/* Nothing it can write: nothing to log until a map. */
		d->granule = t->page_size;
		d->started = true;
		return 0;
	}
	rg = calloc(d->nr_req, sizeof(*rg));
	if (!rg)
		return -ENOMEM;
	for (i = 0; i < d->nr_req; i++) {
		rg[i].iova = d->req[i].iova;
		rg[i].length = d->req[i].length;
	}
	memset(&ctl, 0, sizeof(ctl));
	ctl.page_size = t->page_size;
	ctl.num_ranges = d->nr_req;
	ctl.ranges = (uintptr_t)rg;
	ret = dd_feature(t, d->fd,
			 VFIO_DEVICE_FEATURE_SET |
				 VFIO_DEVICE_FEATURE_DMA_LOGGING_START,
			 &ctl, sizeof(ctl));
	free(rg);
	if (ret < 0) {
		vmig_host_logf(t->host, VMIG_LOG_ERROR,
			       "%s: cannot start DMA logging of %u "
			       "range(s): %s",
			       d->name, d->nr_req, strerror(-ret));
		return ret;
	}
	/* The granule the device chose must be one bits can describe. */
	if (!is_pow2(ctl.page_size)) {
		vmig_host_logf(t->host, VMIG_LOG_ERROR,
			       "%s: the device logs at %llu bytes, not a "
			       "power of two",
			       d->name, (unsigned long long)ctl.page_size);
		dd_log_stop(t, d);
		return -EPROTO;
	}
	d->granule = ctl.page_size;
	d->started = true;
	if (d->granule != t->page_size)
		vmig_host_logf(t->host, VMIG_LOG_INFO,
			       "%s: the device logs at %llu-byte granules",
			       d->name, (unsigned long long)d->granule);
	return 0;
}

static void dd_dev_stop(struct dd *t, struct dd_dev *d)
{
	if (d->started && d->nr_req)
		dd_log_stop(t, d);
	d->started = false;
}

/* Tells vmig that writes to what the device logged may have been missed. */
static bool dd_declare_unknown(struct dd *t, struct dd_dev *d)
{
	if (!VMIG_HAS_FIELD(t->host, struct vmig_host, ranges_unknown) ||
	    !t->host->ranges_unknown)
		return false;
	if (d->nr_req)
		t->host->ranges_unknown(t->host->ctx, d->iommu_id, d->req,
					d->nr_req);
	return true;
}

/*
 * Logging broke (err): what it held is declared unknown, then it is
 * restarted. Returns 0 when logging runs again (the read succeeds: vmig
 * already marks the ranges), else the error.
 */
static int dd_recover(struct dd *t, struct dd_dev *d, int err)
{
	int ret;

	vmig_host_logf(t->host, VMIG_LOG_WARN,
		       "%s: DMA logging report failed (%s): its ranges are "
		       "sent as dirty and logging restarts",
		       d->name, strerror(-err));
	if (!dd_declare_unknown(t, d))
		return err;
	dd_dev_stop(t, d);
	ret = dd_dev_start(t, d);
	if (ret < 0) {
		vmig_host_logf(t->host, VMIG_LOG_ERROR,
			       "%s: cannot restart DMA logging: %s", d->name,
			       strerror(-ret));
		return ret;
	}
	return 0;
}

/* ------------------------------------------------------------------ */
/* Reading                                                             */

/* Sets the caller's pages of [s, e), a part of [lo, lo + n * ps). */
static void mark_pages(uint64_t *bitmap, uint64_t lo, uint64_t ps,
		       uint64_t s, uint64_t e)
{
	uint64_t first = (s - lo) / ps, last = (e - 1 - lo) / ps;

	vmig_bitmap_set(bitmap, first, last - first + 1);
}

/*
 * Carries [s, e). Overlapping or touching pieces coalesce, so a granule
 * that keeps getting dirty across a hole costs one entry, not one per
 * read.
 */
static int carry_add(struct dd_dev *d, uint64_t s, uint64_t e)
{
	size_t i;

	for (i = 0; i < d->nr_carry; i++) {
		struct vmig_range *c = &d->carry[i];

		if (!c->length || range_end(c) < s || c->iova > e)
			continue;
		if (s < c->iova) {
			c->length += c->iova - s;
			c->iova = s;
		}
		if (e > range_end(c))
			c->length = e - c->iova;
		return 0;
	}
	if (d->nr_carry == d->cap_carry) {
		size_t c = d->cap_carry ? 2 * d->cap_carry : 8;
		struct vmig_range *p = realloc(d->carry, c * sizeof(*p));

		if (!p)
			return -ENOMEM;
		d->carry = p;
		d->cap_carry = c;
	}
	d->carry[d->nr_carry].iova = s;
	d->carry[d->nr_carry].length = e - s;
	d->nr_carry++;
	return 0;
}

/*
 * Moves the carried dirt that falls in [lo, hi) into the caller's
 * bitmap; what lies outside stays carried.
 */
static int carry_take(struct dd_dev *d, uint64_t lo, uint64_t hi,
		      uint64_t ps, uint64_t *bitmap)
{
	size_t i, n = d->nr_carry;
	int ret;

	for (i = 0; i < n; i++) {
		uint64_t s = d->carry[i].iova, e = range_end(&d->carry[i]);

		if (e <= lo || s >= hi)
			continue;
		mark_pages(bitmap, lo, ps, s > lo ? s : lo, e < hi ? e : hi);
		/* Keep the outer parts; the range itself becomes empty. */
		d->carry[i].length = 0;
		if (s < lo && (ret = carry_add(d, s, lo)) < 0)
			return ret;
		if (e > hi && (ret = carry_add(d, hi, e)) < 0)
			return ret;
	}
	for (i = 0, n = 0; i < d->nr_carry; i++)
		if (d->carry[i].length)
			d->carry[n++] = d->carry[i];
	d->nr_carry = n;
	return 0;
}

static int buf_reserve(struct dd *t, uint64_t nbits)
{
	uint64_t words = vmig_bitmap_words(nbits);

	if (words > t->buf_words) {
		uint64_t *p = realloc(t->buf, words * 8);

		if (!p)
			return -ENOMEM;
		t->buf = p;
		t->buf_words = words;
	}
	memset(t->buf, 0, words * 8);
	return 0;
}

/*
 * One REPORT of [a, b) (inside one START range), at the device's granule
 * and aligned to it (a granule that starts before the request's iova is
 * lost by the kernel's iova_bitmap). Dirty granules set the caller's
 * pages of [lo, hi); what they cover outside it is carried.
 */
static int dd_report(struct dd *t, struct dd_dev *d, uint64_t a, uint64_t b,
		     uint64_t lo, uint64_t hi, uint64_t ps, uint64_t *bitmap)
{
	struct vfio_device_feature_dma_logging_report rep;
	uint64_t rp = d->granule < VMIG_PAGE_SIZE ? VMIG_PAGE_SIZE :
						    d->granule;
	uint64_t ra = a & ~(rp - 1), rb, pos, run, len;
	int ret;

	rb = b & ~(rp - 1);
	if (rb < b && rb + rp == 0) {
		/*
		 * The granule holding b ends at 2^64: a REPORT of it has
		 * iova + length past ULONG_MAX, which the kernel refuses
		 * (EOVERFLOW, shared docs/kernel-uapi.md 3.4), and rounding
		 * up wraps to 0, which would skip every REPORT silently. Its
		 * part of the request cannot be read: it is dirty.
		 */
		mark_pages(bitmap, lo, ps, rb > a ? rb : a, b);
	} else if (rb < b) {
		rb += rp;
	}
	while (ra < rb) {
		uint64_t nbits = (rb - ra) / rp;

		if (nbits > DD_MAX_REPORT_BITS)
			nbits = DD_MAX_REPORT_BITS;
		ret = buf_reserve(t, nbits);
		if (ret < 0)
			return ret;
		memset(&rep, 0, sizeof(rep));
		rep.iova = ra;
		rep.length = nbits * rp;
		rep.page_size = rp;
		rep.bitmap = (uintptr_t)t->buf;
		ret = dd_feature(t, d->fd,
				 VFIO_DEVICE_FEATURE_GET |
					 VFIO_DEVICE_FEATURE_DMA_LOGGING_REPORT,
				 &rep, sizeof(rep));
		if (ret < 0)
			return ret;
		pos = 0;
		while (vmig_bitmap_next_run(t->buf, nbits, &pos, &run, &len)) {
			uint64_t s = ra + run * rp, e = s + len * rp;

			if (s < lo && (ret = carry_add(d, s,
						       e < lo ? e : lo)) < 0)
				return ret;
			if (e > hi &&
			    (ret = carry_add(d, s > hi ? s : hi, e)) < 0)
				return ret;
			if (e > lo && s < hi)
				mark_pages(bitmap, lo, ps, s > lo ? s : lo,
					   e < hi ? e : hi);
		}
		ra += nbits * rp;
	}
	return 0;
}

/*
 * Reads one device's log over [lo, hi): carried dirt first, then one
 * REPORT per START range the request touches. Pages of the request no
 * START range covers are unknown, hence dirty.
 */
static int dd_dev_read(struct dd *t, struct dd_dev *d, uint64_t lo,
		       uint64_t hi, uint64_t ps, uint64_t *bitmap)
{
	uint64_t cur = lo;
	uint32_t i;
	int ret;

	if (!d->started)
		return -EINVAL;
	ret = carry_take(d, lo, hi, ps, bitmap);
	if (ret < 0)
		return ret;
	for (i = 0; i < d->nr_req; i++) {
		uint64_t s = d->req[i].iova, e = range_end(&d->req[i]);

		if (e <= lo || s >= hi)
			continue;
		if (s > cur)
			mark_pages(bitmap, lo, ps, cur, s);
		if (s < lo)
			s = lo;
		if (e > hi)
			e = hi;
		ret = dd_report(t, d, s, e, lo, hi, ps, bitmap);
		if (ret == -ENOMEM)
			return ret;
		if (ret < 0) {
			ret = dd_recover(t, d, ret);
			/* Restarted: all of this read is dirty. */
			if (!ret)
				mark_pages(bitmap, lo, ps, lo, hi);
			return ret;
		}
		cur = e;
	}
	if (cur < hi)
		mark_pages(bitmap, lo, ps, cur, hi);
	return 0;
}

static int dd_check_read(const struct vmig_read *rq)
{
	if (!VMIG_HAS_FIELD(rq, struct vmig_read, page_size))
		return -EINVAL;
	if (rq->flags & ~VMIG_READ_NO_CLEAR)
		return -EINVAL;
	if (rq->flags & VMIG_READ_NO_CLEAR)
		return -ENOTSUP; /* a REPORT always clears what it reports */
	if (!rq->length || !is_pow2(rq->page_size) ||
	    ((rq->iova | rq->length) & (rq->page_size - 1)) ||
	    rq->iova + rq->length < rq->iova)
		return -EINVAL;
	return 0;
}

static struct dd_dev *dd_find(struct dd *t, uint32_t id)
{
	size_t i;

	for (i = 0; i < t->nr_devs; i++) {
		if (t->devs[i]->id == id)
			return t->devs[i];
	}
	return NULL;
}

/* Reads every device of rq's address space; -ENOENT when it has none. */
static int dd_read_space(struct dd *t, const struct vmig_read *rq,
			 uint64_t *bitmap)
{
	bool any = false;
	size_t i;
	int ret;

	for (i = 0; i < t->nr_devs; i++) {
		struct dd_dev *d = t->devs[i];

		if (d->iommu_id != rq->iommu_id)
			continue;
		any = true;
		ret = dd_dev_read(t, d, rq->iova, rq->iova + rq->length,
				  rq->page_size, bitmap);
		if (ret < 0)
			return ret;
	}
	return any ? 0 : -ENOENT;
}

/* ------------------------------------------------------------------ */
/* Precision                                                           */

static void dd_explain(const struct dd_dev *d, uint32_t nr_want,
		       struct vmig_probe *out)
{
	out->cost = 2;
	if (nr_want > DD_MAX_RANGES) {
		out->precision = VMIG_PRECISION_SUPERSET;
		snprintf(out->reason, sizeof(out->reason),
			 "device DMA log: %u writable ranges merged into %u, "
			 "writes in the gaps are reported",
			 nr_want, DD_MAX_RANGES);
	} else if (d && d->started && d->granule > VMIG_PAGE_SIZE) {
		out->precision = VMIG_PRECISION_SUPERSET;
		snprintf(out->reason, sizeof(out->reason),
			 "device DMA log at %llu-byte granules: a write "
			 "dirties its whole granule",
			 (unsigned long long)d->granule);
	} else {
		out->precision = VMIG_PRECISION_EXACT;
		snprintf(out->reason, sizeof(out->reason),
			 "device DMA log: exact unless the device merges "
			 "ranges (then writes in the gaps are reported)");
	}
}

/* Writable ranges of a descriptor once adjacent ones are coalesced. */
static uint32_t desc_count(const struct vmig_device_desc *dev)
{
	uint32_t i, n = 0;

	for (i = 0; i < dev->nr_ranges; i++) {
		if (i && range_end(&dev->ranges[i - 1]) == dev->ranges[i].iova)
			continue;
		n++;
	}
	return n;
}

/* ------------------------------------------------------------------ */
/* Operations                                                          */

static int dd_create(const struct vmig_host *host, void **instance)
{
	struct dd *t;

	if (!VMIG_HAS_FIELD(host, struct vmig_host, munmap) || !host->ioctl)
		return -EINVAL;
	t = calloc(1, sizeof(*t));
	if (!t)
		return -ENOMEM;
	t->host = host;
	t->page_size = VMIG_PAGE_SIZE;
	*instance = t;
	return 0;
}

static void dd_dev_free(struct dd_dev *d)
{
	free(d->want);
	free(d->req);
	free(d->carry);
	free(d);
}

static void dd_destroy(void *instance)
{
	struct dd *t = instance;
	size_t i;

	for (i = 0; i < t->nr_devs; i++) {
		dd_dev_stop(t, t->devs[i]);
		dd_dev_free(t->devs[i]);
	}
	free(t->devs);
	free(t->buf);
	free(t);
}

/*
 * Asks the device whether it logs DMA: a PROBE of DMA_LOGGING_START has
 * no effect. Its limit on ranges shows only after START.
 */
static int dd_probe(void *instance, const struct vmig_device_desc *dev,
		    struct vmig_probe *out)
{
	struct dd *t = instance;
	int ret;

	if (dev->device_fd < 0) {
		snprintf(out->reason, sizeof(out->reason),
			 "no VFIO device fd to ask for DMA logging");
		return 0;
	}
	ret = dd_feature(t, dev->device_fd,
			 VFIO_DEVICE_FEATURE_PROBE | VFIO_DEVICE_FEATURE_SET |
				 VFIO_DEVICE_FEATURE_DMA_LOGGING_START,
			 NULL, 0);
	if (ret == -ENOTTY) {
		snprintf(out->reason, sizeof(out->reason),
			 "the device offers no DMA logging");
		return 0;
	}
	if (ret < 0)
		return ret;
	dd_explain(NULL, desc_count(dev), out);
	return 0;
}

static int dd_attach(void *instance, const struct vmig_device_desc *dev)
{
	struct dd *t = instance;
	struct dd_dev *d, **devs;
	uint32_t i;
	int ret;

	if (dev->device_fd < 0 || !dev->iommu || (dev->nr_ranges &&
						  !dev->ranges))
		return -EINVAL;
	if (dd_find(t, dev->id))
		return -EEXIST;
	d = calloc(1, sizeof(*d));
	if (!d)
		return -ENOMEM;
	d->id = dev->id;
	d->iommu_id = dev->iommu->id;
	d->fd = dev->device_fd;
	snprintf(d->name, sizeof(d->name), "%s",
		 dev->name ? dev->name : "device");
	for (i = 0; i < dev->nr_ranges; i++) {
		if (!dev->ranges[i].length)
			continue;
		ret = want_add(d, dev->ranges[i].iova, dev->ranges[i].length);
		if (ret < 0)
			goto err;
	}
	devs = realloc(t->devs, (t->nr_devs + 1) * sizeof(*devs));
	if (!devs) {
		ret = -ENOMEM;
		goto err;
	}
	t->devs = devs;
	if (t->started) {
		ret = dd_dev_start(t, d);
		if (ret < 0)
			goto err;
	}
	t->devs[t->nr_devs++] = d;
	return 0;
err:
	dd_dev_free(d);
	return ret;
}

static int dd_detach(void *instance, uint32_t device_id)
{
	struct dd *t = instance;
	size_t i;

	for (i = 0; i < t->nr_devs; i++) {
		if (t->devs[i]->id != device_id)
			continue;
		dd_dev_stop(t, t->devs[i]);
		dd_dev_free(t->devs[i]);
		t->devs[i] = t->devs[--t->nr_devs];
		return 0;
	}
	return -ENOENT;
}

static int dd_start(void *instance, uint64_t page_size)
{
	struct dd *t = instance;
	size_t i;
	int ret;

	t->page_size = is_pow2(page_size) && page_size >= VMIG_PAGE_SIZE ?
			       page_size :
			       VMIG_PAGE_SIZE;
	for (i = 0; i < t->nr_devs; i++) {
		ret = dd_dev_start(t, t->devs[i]);
		if (ret < 0) {
			while (i--)
				dd_dev_stop(t, t->devs[i]);
			return ret;
		}
	}
	t->started = true;
	return 0;
}

static int dd_stop(void *instance)
{
	struct dd *t = instance;
	size_t i;

	for (i = 0; i < t->nr_devs; i++) {
		dd_dev_stop(t, t->devs[i]);
		t->devs[i]->nr_carry = 0;
	}
	t->started = false;
	return 0;
}

static int dd_read(void *instance, const struct vmig_read *rq,
		   uint64_t *bitmap)
{
	struct dd *t = instance;
	int ret = dd_check_read(rq);

	if (ret < 0)
		return ret;
	if (!t->started)
		return -EINVAL;
	return dd_read_space(t, rq, bitmap);
}

/*
 * A new writable range while tracking runs. Where no START range covers
 * it, the device must log it too: a second START is refused until STOP,
 * and writes between the two are never seen, so what the device logged
 * is declared unknown first, then it restarts with the new set.
 */
static int dd_map(void *instance, uint32_t iommu_id,
		  const struct vmig_range *range)
{
	struct dd *t = instance;
	size_t i;
	int ret;

	if (!range || !range->length ||
	    range->iova + range->length < range->iova)
		return -EINVAL;
	for (i = 0; i < t->nr_devs; i++) {
		struct dd_dev *d = t->devs[i];

		if (d->iommu_id != iommu_id)
			continue;
		ret = want_add(d, range->iova, range->length);
		if (ret < 0)
			return ret;
		if (!t->started || req_covers(d, range->iova, range->length))
			continue;
		if (d->nr_req && !dd_declare_unknown(t, d))
			return -ENOTSUP;
		dd_dev_stop(t, d);
		ret = dd_dev_start(t, d);
		if (ret < 0)
			return ret;
	}
	return 0;
}

/* The device's log can only be harvested after the unmap: nothing yet. */
static int dd_unmap_prepare(void *instance, const struct vmig_read *rq,
			    uint64_t *bitmap, uint32_t *flags)
{
	(void)instance;
	(void)bitmap;
	(void)flags;
	return dd_check_read(rq);
}

/*
 * The range is unmapped: the device cannot write it any more, so one last
 * REPORT holds all it wrote there. Then the range is forgotten (the
 * device keeps logging it until the next restart, harmlessly).
 */
static int dd_unmap_complete(void *instance, const struct vmig_read *rq,
			     uint64_t *bitmap)
{
	struct dd *t = instance;
	size_t i;
	int ret = dd_check_read(rq);

	if (ret < 0)
		return ret;
	if (t->started) {
		ret = dd_read_space(t, rq, bitmap);
		if (ret < 0)
			return ret;
	}
	for (i = 0; i < t->nr_devs; i++) {
		if (t->devs[i]->iommu_id != rq->iommu_id)
			continue;
		ret = want_remove(t->devs[i], rq->iova, rq->length);
		if (ret < 0)
			return ret;
	}
	return 0;
}

static int dd_status(void *instance, uint32_t device_id,
		     struct vmig_probe *out)
{
	struct dd *t = instance;
	struct dd_dev *d = dd_find(t, device_id);

	if (!d)
		return -ENOENT;
	dd_explain(d, d->nr_want, out);
	return 0;
}

static const struct vmig_source_ops dd_ops = {
	.size = sizeof(struct vmig_source_ops),
	.create = dd_create,
	.destroy = dd_destroy,
	.probe = dd_probe,
	.attach = dd_attach,
	.detach = dd_detach,
	.start = dd_start,
	.stop = dd_stop,
	.read = dd_read,
	.map = dd_map,
	.unmap_prepare = dd_unmap_prepare,
	.unmap_complete = dd_unmap_complete,
	.status = dd_status,
};

static const struct vmig_plugin dd_plugin = {
	.size = sizeof(struct vmig_plugin),
	.abi_major = VMIG_PLUGIN_ABI_MAJOR,
	.abi_minor = VMIG_PLUGIN_ABI_MINOR,
	.name = "device-dirty",
	.version = VMIG_VERSION_STRING,
	.description = "VFIO device DMA logging "
		       "(VFIO_DEVICE_FEATURE_DMA_LOGGING_*)",
	.device_kinds = VMIG_KIND_BIT(VMIG_DEVICE_VFIO_PCI) |
			VMIG_KIND_BIT(VMIG_DEVICE_MDEV),
	/* The log is the device's own: any IOMMU in front of it. */
	.iommu_kinds = VMIG_KIND_BIT(VMIG_IOMMU_TYPE1) |
		       VMIG_KIND_BIT(VMIG_IOMMU_IOMMUFD),
	.precision = VMIG_PRECISION_EXACT,
	.max_ranges = DD_MAX_RANGES,
	/* Any power of two from 4 KiB: REPORT's rule, bits converted. */
	.page_sizes = ~((1ull << 12) - 1),
	.ops = &dd_ops,
};

VMIG_PLUGIN_EXPORT const struct vmig_plugin *
VMIG_PLUGIN_ENTRY(const struct vmig_host *host, uint32_t abi_major)
{
	(void)host;
	if (abi_major != VMIG_PLUGIN_ABI_MAJOR)
		return NULL;
	return &dd_plugin;
}
