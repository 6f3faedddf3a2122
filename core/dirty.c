/*
 * dirty.c: moving dirty bits from the sources into guest memory's bitmaps.
 *
 * Sources report in I/O virtual addresses of an address space; migration
 * works in guest-physical 4 KiB pages. This file reads every source over
 * the writable mappings of the spaces its devices use, translates the bits
 * through the mappings into the regions' bitmaps, marks the ranges of
 * devices without a working source dirty, and harvests the last bits of a
 * range before it is unmapped or of a device before it goes.
 */
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "internal.h"
#include "ioas.h"
#include "source.h"

#define PAGE_SHIFT_4K 12

/* The accounting bitmap of region r for whoever marks now, or NULL. */
static uint64_t *acct_map(const vmig_session *s, uint32_t r)
{
	size_t k;

	if (!s->acct)
		return NULL;
	k = s->acct_who >= 0 && (size_t)s->acct_who < s->nr_acct - 1
		    ? (size_t)s->acct_who
		    : s->nr_acct - 1;
	return s->acct[k * s->nr_regions + r];
}

/* Sets n pages from page first of region r, as dirty and as counted. */
static void mark_pages(vmig_session *s, uint32_t r, uint64_t first,
		       uint64_t n)
{
	uint64_t *acct = acct_map(s, r);

	vmig_bitmap_set(s->regions[r].dirty, first, n);
	if (acct)
		vmig_bitmap_set(acct, first, n);
}

/* Calls fn for the part of each mapping of io inside [iova, iova + len). */
static void for_each_mapped(vmig_session *s, uint32_t io, uint64_t iova,
			    uint64_t length, const uint64_t *bitmap, bool set)
{
	const struct vmig_iommu_rec *rec = s->iommus[io];
	uint64_t end = iova + length;
	size_t i;

	if (end < iova)
		end = UINT64_MAX;
	for (i = vmig_mapping_lower(rec, iova); i < rec->nr_maps; i++) {
		const struct vmig_mapping_rec *m = &rec->maps[i];
		struct vmig_region_rec *r = &s->regions[m->region];
		uint64_t lo, hi, dst;

		if (m->iova >= end)
			break;
		lo = m->iova > iova ? m->iova : iova;
		hi = m->iova + m->length < end ? m->iova + m->length : end;
		if (lo >= hi)
			continue;
		dst = (m->gpa + (lo - m->iova) - r->gpa) >> PAGE_SHIFT_4K;
		if (set) {
			mark_pages(s, m->region, dst,
				   (hi - lo) >> PAGE_SHIFT_4K);
		} else {
			uint64_t *acct = acct_map(s, m->region);

			vmig_bitmap_or_at(r->dirty, dst, bitmap,
					  (lo - iova) >> PAGE_SHIFT_4K,
					  (hi - lo) >> PAGE_SHIFT_4K);
			if (acct)
				vmig_bitmap_or_at(acct, dst, bitmap,
						  (lo - iova) >> PAGE_SHIFT_4K,
						  (hi - lo) >> PAGE_SHIFT_4K);
		}
	}
}

void vmig_dirty_or_iova(vmig_session *s, uint32_t io, uint64_t iova,
			uint64_t length, const uint64_t *bitmap)
{
	for_each_mapped(s, io, iova, length, bitmap, false);
}

void vmig_dirty_mark_iova(vmig_session *s, uint32_t io, uint64_t iova,
			  uint64_t length)
{
	uint64_t lo = iova & ~((uint64_t)VMIG_PAGE_SIZE - 1);
	uint64_t hi = iova + length;

	/* Round outwards: a partial page written is a dirty page. */
	if (hi < iova || hi > UINT64_MAX - VMIG_PAGE_SIZE)
		hi = UINT64_MAX & ~((uint64_t)VMIG_PAGE_SIZE - 1);
	else
		hi = (hi + VMIG_PAGE_SIZE - 1) &
		     ~((uint64_t)VMIG_PAGE_SIZE - 1);
	if (hi > lo)
		for_each_mapped(s, io, lo, hi - lo, NULL, true);
}

void vmig_dirty_mark_space(vmig_session *s, uint32_t io)
{
	const struct vmig_iommu_rec *rec = s->iommus[io];
	size_t i;

	for (i = 0; i < rec->nr_maps; i++) {
		const struct vmig_mapping_rec *m = &rec->maps[i];
		struct vmig_region_rec *r = &s->regions[m->region];

		if (m->flags & VMIG_DMA_WRITE)
			mark_pages(s, m->region,
				   (m->gpa - r->gpa) >> PAGE_SHIFT_4K,
				   m->length >> PAGE_SHIFT_4K);
	}
}

uint64_t vmig_dirty_count(const vmig_session *s)
{
	uint64_t n = 0;
	size_t i;

	for (i = 0; i < s->nr_regions; i++)
		n += vmig_bitmap_count(s->regions[i].dirty, 0,
				       s->regions[i].npages);
	return n;
}

/* True if a present device writes into io through src (or PASIDs). */
/* True if dev writes io through one of its PASIDs. */
static bool pasid_reaches(const struct vmig_device_rec *d, uint32_t io)
{
	uint32_t j;

	for (j = 0; j < d->nr_pasids; j++) {
		if (d->pasids[j].iommu_id == io)
			return true;
	}
	return false;
}

static bool source_covers(const vmig_session *s, int src, uint32_t io)
{
	size_t i;

	for (i = 0; i < s->nr_devices; i++) {
		const struct vmig_device_rec *d = s->devices[i];

		if (!d->present || d->source != src)
			continue;
		if (d->iommu == io ||
		    (d->pasids_covered && pasid_reaches(d, io)))
			return true;
	}
	return false;
}

/*
 * True if some present device can write io without a source seeing it:
 * a device on the fallback, or one that reaches io through a PASID its
 * source does not track (a source that does says so at probe with
 * VMIG_PROBE_PASIDS).
 */
static bool space_needs_all(const vmig_session *s, uint32_t io)
{
	size_t i, j;

	for (i = 0; i < s->nr_devices; i++) {
		const struct vmig_device_rec *d = s->devices[i];

		if (!d->present)
			continue;
		if (d->iommu == io && d->source < 0)
			return true;
		for (j = 0; j < d->nr_pasids; j++) {
			if (d->pasids[j].iommu_id == io &&
			    (d->source < 0 || !d->pasids_covered))
				return true;
		}
	}
	return false;
}

/* The request for [iova, iova + length) of io, a bit a page. */
static struct vmig_read page_rq(uint32_t io, uint64_t iova, uint64_t length)
{
	struct vmig_read rq = { .size = sizeof(rq), .iommu_id = io,
				.iova = iova, .length = length,
				.page_size = VMIG_PAGE_SIZE };

	return rq;
}

/* Reads [iova, iova + length) of io from src into the regions' bitmaps. */
static int source_read(vmig_session *s, struct vmig_source_rec *src,
		       uint32_t io, uint64_t iova, uint64_t length)
{
	struct vmig_read rq = page_rq(io, iova, length);
	uint64_t npages = length / VMIG_PAGE_SIZE;
	int ret;

	if (!vmig_src_reads(src)) {
		/* A source that cannot read says nothing: all dirty. */
		vmig_dirty_mark_iova(s, io, iova, length);
		return 0;
	}
	ret = vmig_scratch_reserve(s, npages);
	if (ret < 0) {
		vmig_dirty_mark_iova(s, io, iova, length);
		return ret;
	}
	memset(s->scratch, 0, vmig_bitmap_bytes(npages));
	src->reads++;
	ret = vmig_src_read(src, &rq, s->scratch);
	if (ret < 0) {
		src->read_errors++;
		vmig_dirty_mark_iova(s, io, iova, length);
		return ret;
	}
	vmig_dirty_or_iova(s, io, iova, length, s->scratch);
	return 0;
}

/*
 * Reads src over every writable mapping of io. A request never spans an
 * unmapped hole, which iommufd would answer with silent success, having
 * read only up to the hole (shared docs/kernel-uapi.md 2.9).
 *
 * In a type1 container, one request per mapping at the mapping's own
 * IOVA: the type1 kernel reports stale bits for a mapping that starts
 * mid-word in a request (its bitmap shift leaves the last word unmasked).
 * In an iommufd IOAS, one request per run of writable mappings that touch:
 * vmig's mappings need not be the kernel's (VMIG_DMA_EXISTING registers
 * what the VMM mapped, possibly one kernel mapping as several), and the
 * drivers record and clear whole IOPTEs from the request's start in
 * IOPTE-sized steps. So a request ending inside a 2 MiB IOPTE would clear
 * it and keep only its own part, and the next mapping's request would
 * find it clean; a run starts where no mapping touches it, at the start
 * of a kernel mapping, which is an IOPTE boundary.
 */
static int source_read_space(vmig_session *s, struct vmig_source_rec *src,
			     uint32_t io)
{
	const struct vmig_iommu_rec *rec = s->iommus[io];
	bool runs = rec->be->read_runs;
	size_t i, j;
	int ret;

	for (i = 0; i < rec->nr_maps; i = j) {
		const struct vmig_mapping_rec *m = &rec->maps[i];
		uint64_t end = m->iova + m->length;

		j = i + 1;
		if (!(m->flags & VMIG_DMA_WRITE))
			continue;
		while (runs && j < rec->nr_maps && rec->maps[j].iova == end &&
		       (rec->maps[j].flags & VMIG_DMA_WRITE)) {
			end += rec->maps[j].length;
			j++;
		}
		ret = source_read(s, src, io, m->iova, end - m->iova);
		if (ret < 0)
			return ret;
	}
	return 0;
}

/*
 * True when the vCPUs may write guest memory unseen: no vCPU source runs,
 * and either one was registered and failed, or the kernel is the real
 * one (a simulated guest has no vCPUs: only its devices write).
 */
static bool vcpus_unseen(const vmig_session *s)
{
	bool registered = false;
	size_t i;

	for (i = 0; i < s->nr_sources; i++) {
		const struct vmig_source_rec *src = &s->sources[i];

		if (!src->gpa)
			continue;
		if (src->started && !src->failed)
			return false;
		registered = true;
	}
	return registered || s->kernel.ioctl == vmig_linux_host.ioctl;
}

void vmig_dirty_mark_all(vmig_session *s)
{
	size_t i;

	for (i = 0; i < s->nr_regions; i++)
		mark_pages(s, (uint32_t)i, 0, s->regions[i].npages);
}

void vmig_dirty_account_free(vmig_session *s)
{
	size_t i;

	for (i = 0; s->acct && i < s->nr_acct * s->nr_regions; i++)
		free(s->acct[i]);
	free(s->acct);
	s->acct = NULL;
	s->nr_acct = 0;
}

/*
 * (Re)allocates the accounting bitmaps and zeroes the figures, when
 * tracking starts. Without memory for them nothing is counted: the
 * figures are a report, not part of tracking.
 */
static void account_init(vmig_session *s)
{
	size_t i, n = (s->nr_sources + 1) * s->nr_regions;

	vmig_dirty_account_free(s);
	s->acct_who = VMIG_ACCT_VMIG;
	s->vmig_reported = 0;
	s->vmig_unwritten = 0;
	for (i = 0; i < s->nr_sources; i++) {
		s->sources[i].pages_reported = 0;
		s->sources[i].pages_unwritten = 0;
	}
	s->acct = calloc(n ? n : 1, sizeof(*s->acct));
	if (!s->acct)
		return;
	s->nr_acct = s->nr_sources + 1;
	for (i = 0; i < n; i++) {
		uint64_t np = s->regions[i % s->nr_regions].npages;

		s->acct[i] = calloc(vmig_bitmap_words(np), sizeof(uint64_t));
		if (!s->acct[i]) {
			vmig_dirty_account_free(s);
			return;
		}
	}
}

uint64_t vmig_dirty_account(vmig_session *s, uint64_t *const *written)
{
	uint64_t total = 0;
	size_t r, k, w;

	if (!s->acct)
		return 0;
	for (r = 0; r < s->nr_regions; r++) {
		uint64_t words = vmig_bitmap_words(s->regions[r].npages);

		for (w = 0; w < words; w++) {
			uint64_t any = 0;

			for (k = 0; k < s->nr_acct; k++) {
				uint64_t *a, rep, unw = 0;

				a = &s->acct[k * s->nr_regions + r][w];
				rep = (uint64_t)__builtin_popcountll(*a);
				if (written)
					unw = (uint64_t)__builtin_popcountll(
						*a & ~written[r][w]);

				if (k < s->nr_sources) {
					s->sources[k].pages_reported += rep;
					s->sources[k].pages_unwritten += unw;
				} else {
					s->vmig_reported += rep;
					s->vmig_unwritten += unw;
				}
				any |= *a;
				*a = 0;
			}
			total += (uint64_t)__builtin_popcountll(any);
		}
	}
	return total;
}

/* Reads the vCPU sources over every region (IOVA = GPA). */
static void sync_gpa(vmig_session *s)
{
	size_t i, r;
	int ret;

	for (i = 0; i < s->nr_sources; i++) {
		struct vmig_source_rec *src = &s->sources[i];

		if (!src->gpa || !src->started || src->failed)
			continue;
		for (r = 0; r < s->nr_regions; r++) {
			struct vmig_region_rec *reg = &s->regions[r];
			struct vmig_read rq = {
				.size = sizeof(rq),
				.iommu_id = VMIG_GPA_SPACE,
				.iova = reg->gpa,
				.length = reg->length,
				.page_size = VMIG_PAGE_SIZE,
			};

			ret = vmig_scratch_reserve(s, reg->npages);
			if (ret == 0) {
				memset(s->scratch, 0,
				       vmig_bitmap_bytes(reg->npages));
				src->reads++;
				ret = vmig_src_read(src, &rq, s->scratch);
			}
			if (ret < 0) {
				src->read_errors++;
				vmig_source_fail(s, src, ret, "read");
				break;
			}
			vmig_bitmap_or(reg->dirty, s->scratch, reg->npages);
			if (s->acct)
				vmig_bitmap_or(s->acct[i * s->nr_regions + r],
					       s->scratch, reg->npages);
		}
	}
	if (vcpus_unseen(s)) {
		s->vcpus_untracked = true;
		vmig_dirty_mark_all(s);
	}
}

VMIG_API int vmig_tracking_start(vmig_session *s)
{
	size_t i;
	int ret;

	if (!s)
		return -EINVAL;
	if (s->tracking)
		return vmig_fail(s, -EALREADY, "tracking: already started");
	if (s->role != VMIG_ROLE_SOURCE)
		return vmig_fail(s, -EINVAL,
				 "tracking: only a source session tracks");
	ret = vmig_arbiter_init(s);
	if (ret < 0)
		return ret;
	for (i = 0; i < s->nr_devices; i++) {
		struct vmig_device_rec *dev = s->devices[i];

		if (!dev->present || dev->source != VMIG_SOURCE_NONE)
			continue;
		ret = vmig_arbiter_assign(s, dev);
		if (ret < 0)
			return vmig_fail(s, ret, "tracking: device %s: %s",
					 dev->name, vmig_strerror(ret));
	}
	s->tracking = true;
	s->vcpus_untracked = false;
	vmig_arbiter_start(s);
	if (!vmig_arbiter_start_gpa(s) && vcpus_unseen(s))
		vmig_logf(s, VMIG_LOG_WARN,
			  "tracking: no vCPU dirty source runs: every page of "
			  "guest memory is treated as dirty at every sync (the "
			  "VMM should register its vCPU dirty log as a "
			  "VMIG_IOMMU_GPA source)");
	/* Nothing has been sent yet: all of guest memory is dirty. */
	vmig_dirty_mark_all(s);
	/* Counted from here: the start's marks are no source's report. */
	account_init(s);
	vmig_observe_tracking_started(s);
	return 0;
}

VMIG_API int vmig_tracking_stop(vmig_session *s)
{
	if (!s)
		return -EINVAL;
	if (!s->tracking)
		return vmig_fail(s, -EINVAL, "tracking: not started");
	vmig_arbiter_stop(s);
	s->tracking = false;
	return 0;
}

VMIG_API int64_t vmig_dirty_sync(vmig_session *s)
{
	uint32_t io;
	size_t i;
	int64_t n;

	if (!s)
		return -EINVAL;
	if (!s->tracking)
		return vmig_fail(s, -EINVAL, "sync: tracking not started");
	/* The observer (observer.c) sees every sync. */
	vmig_observe_sync_before(s);
	for (io = 0; io < s->nr_iommus; io++) {
		/*
		 * Sources may fail and hand devices over during the loop;
		 * each step looks at the current state.
		 */
		for (i = 0; i < s->nr_sources; i++) {
			struct vmig_source_rec *src = &s->sources[i];
			int ret;

			if (!src->started || src->failed ||
			    !source_covers(s, (int)i, io))
				continue;
			s->acct_who = (int)i;
			ret = source_read_space(s, src, io);
			s->acct_who = VMIG_ACCT_VMIG;
			if (ret < 0)
				vmig_source_fail(s, src, ret, "read");
		}
		if (space_needs_all(s, io))
			vmig_dirty_mark_space(s, io);
	}
	sync_gpa(s);
	n = (int64_t)vmig_dirty_count(s);
	vmig_observe_sync_after(s, n);
	return n;
}

/*
 * One step of an unmap's harvest from every source that covers io: before
 * the kernel unmap (after false) or after it. Returns whether a source
 * unmapped the range itself (VMIG_UNMAP_DONE).
 */
static bool harvest_step(vmig_session *s, const struct vmig_read *rq,
			 bool after)
{
	uint64_t npages = rq->length / VMIG_PAGE_SIZE;
	bool unmapped = false;
	size_t i;
	int ret;

	for (i = 0; i < s->nr_sources; i++) {
		struct vmig_source_rec *src = &s->sources[i];
		uint32_t flags = 0;

		if (!src->started || src->failed ||
		    !source_covers(s, (int)i, rq->iommu_id))
			continue;
		memset(s->scratch, 0, vmig_bitmap_bytes(npages));
		s->acct_who = (int)i;
		ret = after ? vmig_src_unmap_complete(src, rq, s->scratch)
			    : vmig_src_unmap_prepare(src, rq, s->scratch,
						     &flags);
		if (ret < 0) {
			/*
			 * The source saw nothing: marking the whole range is
			 * vmig's own caution, counted as vmig's.
			 */
			s->acct_who = VMIG_ACCT_VMIG;
			vmig_dirty_mark_iova(s, rq->iommu_id, rq->iova,
					     rq->length);
			vmig_source_fail(s, src, ret,
					 after ? "harvest after unmap"
					       : "harvest before unmap");
			continue;
		}
		vmig_dirty_or_iova(s, rq->iommu_id, rq->iova, rq->length,
				   s->scratch);
		s->acct_who = VMIG_ACCT_VMIG;
		if (flags & VMIG_UNMAP_DONE)
			unmapped = true;
	}
	return unmapped;
}

int vmig_dirty_harvest_unmap(vmig_session *s, uint32_t io, uint64_t iova,
			     uint64_t length)
{
	struct vmig_read rq = page_rq(io, iova, length);
	bool unmapped;
	int ret;

	ret = vmig_scratch_reserve(s, length / VMIG_PAGE_SIZE);
	if (ret < 0)
		return ret;
	unmapped = harvest_step(s, &rq, false);
	if (space_needs_all(s, io))
		vmig_dirty_mark_iova(s, io, iova, length);
	if (!unmapped) {
		ret = vmig_kernel_unmap(s, s->iommus[io], iova, length);
		if (ret < 0)
			return ret;
	}
	(void)harvest_step(s, &rq, true);
	return 0;
}

/*
 * The read comes before the device leaves its source, and nothing could
 * read after: a DMA log ends with its STOP, and a HWPT the device leaves
 * may be destroyed with its bits. Between the two, and after, the device
 * writes through a domain or a log nobody reads; that is safe because
 * vmig_device_remove() is called once the device has stopped writing
 * (vmig.h), so there is nothing in that window to see. An unmap is
 * different: the device stays and can write the range until the kernel
 * unmaps it, which each plugin's harvest covers (type1 unmaps and reads
 * in one call, a DMA log reports after the unmap, iommufd reports the
 * whole range).
 */
void vmig_dirty_harvest_device(vmig_session *s, struct vmig_device_rec *dev)
{
	uint32_t i;

	if (dev->source >= 0) {
		struct vmig_source_rec *src = &s->sources[dev->source];

		if (src->started && !src->failed) {
			int ret;

			s->acct_who = dev->source;
			ret = source_read_space(s, src, dev->iommu);
			for (i = 0; ret == 0 && dev->pasids_covered &&
				    i < dev->nr_pasids;
			     i++)
				ret = source_read_space(
					s, src, dev->pasids[i].iommu_id);
			s->acct_who = VMIG_ACCT_VMIG;
			if (ret < 0)
				vmig_source_fail(s, src, ret, "final read");
		}
		/* A failed source already marked what it covered. */
		if (dev->pasids_covered)
			return;
	} else {
		vmig_dirty_mark_space(s, dev->iommu);
	}
	for (i = 0; i < dev->nr_pasids; i++)
		vmig_dirty_mark_space(s, dev->pasids[i].iommu_id);
}

VMIG_API int vmig_dirty_bitmap(vmig_session *s, uint32_t region,
			       const uint64_t **bitmap, uint64_t *npages)
{
	if (!s)
		return -EINVAL;
	if (region >= s->nr_regions)
		return vmig_fail(s, -ENOENT, "dirty bitmap: no region %u",
				 region);
	if (bitmap)
		*bitmap = s->regions[region].dirty;
	if (npages)
		*npages = s->regions[region].npages;
	return 0;
}

VMIG_API int vmig_dirty_clear(vmig_session *s, uint32_t region)
{
	if (!s)
		return -EINVAL;
	if (region >= s->nr_regions)
		return vmig_fail(s, -ENOENT, "dirty clear: no region %u",
				 region);
	memset(s->regions[region].dirty, 0,
	       vmig_bitmap_bytes(s->regions[region].npages));
	return 0;
}
