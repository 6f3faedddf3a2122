/*
 * iommufd.c: the iommufd dirty source, the IOMMU's own dirty bits in
 * dirty-tracking HWPTs (IOMMU_HWPT_ALLOC_DIRTY_TRACKING,
 * IOMMU_HWPT_SET_DIRTY_TRACKING, IOMMU_HWPT_GET_DIRTY_BITMAP).
 *
 * The automatic domains that iommufd gives a device attached to an IOAS
 * never track, so this source places its devices itself, the way the
 * kernel places them in automatic domains but with dirty tracking asked
 * for up front: a device joins the first HWPT this instance allocated on
 * its IOAS that takes it (EINVAL from the attach means incompatible: the
 * next one), else a new one. One read of a HWPT covers every device on
 * it. A HWPT allocated while tracking runs has tracking enabled before
 * the device is attached, so that no write falls in between.
 *
 * The kernel's pitfalls decide the rest (shared docs/kernel-uapi.md 2.9):
 * GET_DIRTY_BITMAP succeeds silently when tracking is off, when the range
 * starts in or crosses an unmapped hole, and when the bitmap cannot be
 * written. So a read is refused here while tracking is off, the caller
 * (vmig's core) asks for one run of touching mappings at a time (never
 * across a hole), and the kernel writes into a buffer of this instance,
 * zeroed before every call since the kernel only ever sets bits, which is
 * then ORed into the caller's. A run's start is also the start of a
 * kernel mapping, hence an IOPTE boundary, which matters: the drivers
 * walk from the request's start in IOPTE-sized steps, so a read starting
 * inside a huge IOPTE misses (and clears) writes in the next one. An
 * unmap reports its whole range (ifd_unmap_complete).
 * Enabling tracking clears the dirty bits, even when it is on already:
 * it is enabled once per HWPT and start. A mapping made while tracking
 * runs is tracked from its first write (no map operation is needed).
 *
 * Page sizes: the kernel reports any power-of-two page size whose
 * multiples the range is made of (it ORs IOPTEs into larger pages and
 * spreads a huge IOPTE over smaller ones), as long as the range is
 * aligned to the IOAS alignment, which every mapping is. So the caller's
 * page size is passed through, never converted here; a range the kernel
 * cannot read comes back as its EINVAL.
 *
 * PASIDs: a device may also write through further domains, one per PASID
 * attachment (vmig_device_desc's pasids, each an IOAS of the same
 * iommufd). Those writes never touch the device's own HWPT, so each PASID
 * is moved the same way to a dirty-tracking HWPT of its IOAS (the same
 * placement rule; VFIO_DEVICE_ATTACH_IOMMUFD_PT with the PASID flag
 * replaces its domain), and a read of that IOAS reads it. Linux 6.12 has
 * no userspace PASID attach (shared docs/kernel-uapi.md 2.11); newer
 * kernels have it, and the simulator models it. The probe asks the
 * kernel, without effect, whether it knows the PASID attach, and offers
 * VMIG_PROBE_PASIDS only then. When it does not, the device is tracked
 * all the same, its PASIDs are left where they are and vmig treats their
 * spaces as dirty on every sync; the attach that follows honours that
 * verdict. Any other attach moves every PASID or fails, undoing what it
 * did: a kernel may still refuse a dirty-tracking domain on a PASID
 * (6.12's Intel driver does, with EINVAL), and vmig then tries the
 * device's next source. So no PASID vmig believes tracked ever writes
 * through a domain that does not track.
 *
 * Precision: the drivers record whole IOPTEs, so a write in a 2 MiB IOPTE
 * reports 2 MiB (kernel-uapi.md 2.9). The IOPTE sizes are not in the UAPI,
 * but the IOMMU's are: an Intel unit's capability register (GET_HW_INFO,
 * struct iommu_hw_info_vtd) has the second-stage large page sizes (SLLPS,
 * bits 34 to 37: 2 MiB, 1 GiB), the page sizes of the dirty-tracking
 * domains, which are second-stage ones. Other IOMMUs are taken to use
 * 2 MiB pages (the selftest mock 1 MiB ones, with a flag userspace cannot
 * see). A device is "superset" when its IOMMU has a large page and one of
 * the writable ranges of its spaces holds an aligned block of it (the
 * kernel maps one there when the memory behind is aligned alike, which
 * userspace cannot see either), else "exact"; the map operation keeps
 * that up to date as ranges come.
 *
 * Every kernel call goes through the host table.
 */
#include <errno.h>
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>

#include <vmig/plugin.h>

#include <vmig/bitmap.h>
#include <vmig/linux-uapi.h>

#define NO_CLEAR VK_IOMMU_HWPT_GET_DIRTY_BITMAP_NO_CLEAR

/*
 * A probe's reason when a device's PASIDs are not covered: these words,
 * then why, in WHY_LEN bytes at most (the rest of the reason).
 */
#define PASIDS_DECLINED                                            \
	"dirty-tracking HWPT bits (huge IOPTE: whole superpage, a " \
	"superset); PASIDs not covered: "
#define WHY_LEN                                    \
	(sizeof(((struct vmig_probe *)0)->reason) + \
	 1 - sizeof(PASIDS_DECLINED))

/* A dirty-tracking HWPT this instance allocated. */
struct ifd_hwpt {
	uint32_t iommu_id; /* vmig's id of the IOAS */
	int fd;            /* the VMM's iommufd: never closed here */
	uint32_t ioas_id;
	uint32_t hwpt_id;
	uint32_t users;    /* devices and PASIDs of ours attached to it */
	bool tracking;
};

/* A mapped range that holds an aligned large page. */
struct ifd_huge {
	uint32_t iommu_id;
	uint64_t iova;
	uint64_t length;
};

/* A PASID of a device, moved to one of our HWPTs. */
struct ifd_pasid {
	uint32_t pasid;
	struct ifd_hwpt *hwpt; /* its IOAS is where it goes back to */
};

struct ifd_device {
	uint32_t id;
	int device_fd;     /* the VMM's cdev fd */
	uint32_t dev_id;   /* the bound device's iommufd id */
	struct ifd_hwpt *hwpt;
	uint64_t huge;     /* its IOMMU's smallest large page, 0: none */
	/*
	 * The mapped ranges of its spaces that hold an aligned large page
	 * (huge_note), trimmed as ranges are unmapped (huge_cut): while one
	 * is left, a write may report its whole IOPTE.
	 */
	struct ifd_huge *huge_ranges;
	uint32_t nr_huge;
	bool huge_range;   /* nr_huge != 0, or a list that could not shrink */
	/* Its PASIDs, all on our HWPTs; none when the probe declined them. */
	struct ifd_pasid *pasids;
	uint32_t nr_pasids;
	uint32_t left_pasids; /* PASIDs declined: left where they were */
	char why[WHY_LEN];    /* ... and why, for status */
};

/* A device whose PASIDs the last probe declined to cover, and why. */
struct ifd_verdict {
	uint32_t id;
	char why[WHY_LEN];
};

struct ifd {
	const struct vmig_host *host;
	struct ifd_hwpt **hwpts;
	size_t nr_hwpts;
	struct ifd_device *devs;
	size_t nr_devs;
	/*
	 * The devices whose PASIDs the last probe declined to cover (vmig
	 * then treats their spaces as dirty): their attach leaves the PASIDs
	 * alone. Any other attach covers every PASID or fails.
	 */
	struct ifd_verdict *declined;
	size_t nr_declined;
	bool started;
	uint64_t *buf; /* what the kernel writes into */
	uint64_t buf_words;
};

static int kio(struct ifd *t, int fd, unsigned long req, void *arg)
{
	return t->host->ioctl(t->host->kctx, fd, req, arg);
}

static struct ifd_device *dev_find(struct ifd *t, uint32_t id)
{
	size_t i;

	for (i = 0; i < t->nr_devs; i++)
		if (t->devs[i].id == id)
			return &t->devs[i];
	return NULL;
}

static bool space_known(const struct ifd *t, uint32_t iommu_id)
{
	size_t i;

	for (i = 0; i < t->nr_hwpts; i++)
		if (t->hwpts[i]->iommu_id == iommu_id)
			return true;
	return false;
}

static int set_tracking(struct ifd *t, struct ifd_hwpt *h, bool on)
{
	struct vk_iommu_hwpt_set_dirty_tracking s = {
		.size = sizeof(s),
		.flags = on ? VK_IOMMU_HWPT_DIRTY_TRACKING_ENABLE : 0,
		.hwpt_id = h->hwpt_id,
	};
	int ret = kio(t, h->fd, VK_IOMMU_HWPT_SET_DIRTY_TRACKING, &s);

	if (ret < 0) {
		vmig_host_logf(t->host, VMIG_LOG_ERROR,
			       "HWPT %u: cannot %s dirty tracking: %s",
			       h->hwpt_id, on ? "enable" : "disable",
			       strerror(-ret));
		return ret;
	}
	h->tracking = on;
	return 0;
}

/* VFIO_DEVICE_ATTACH_IOMMUFD_PT: attach, or replace when attached. */
static int attach_pt(struct ifd *t, int device_fd, uint32_t pt_id)
{
	struct vk_vfio_device_attach_iommufd_pt a = { .argsz = sizeof(a),
						      .pt_id = pt_id };

	return kio(t, device_fd, VK_VFIO_DEVICE_ATTACH_IOMMUFD_PT, &a);
}

/*
 * The same with VFIO_DEVICE_ATTACH_PASID (kernels newer than 6.12): one
 * PASID of the device, attached or its domain replaced. An IOAS as pt_id
 * puts the PASID on an automatic domain of that IOAS.
 */
static int attach_pasid(struct ifd *t, int device_fd, uint32_t pasid,
			uint32_t pt_id)
{
	struct vk_vfio_device_attach_iommufd_pt_pasid a = {
		.argsz = sizeof(a),
		.flags = VK_VFIO_DEVICE_ATTACH_PASID,
		.pt_id = pt_id,
		.pasid = pasid,
	};

	return kio(t, device_fd, VK_VFIO_DEVICE_ATTACH_IOMMUFD_PT, &a);
}

/* PASID 0 stands for the device itself (the kernel's IOMMU_NO_PASID). */
static int attach_any(struct ifd *t, int device_fd, uint32_t pasid,
		      uint32_t pt_id)
{
	return pasid ? attach_pasid(t, device_fd, pasid, pt_id)
		     : attach_pt(t, device_fd, pt_id);
}

/* Destroys a HWPT without users; keeps it when the kernel will not. */
static void hwpt_release(struct ifd *t, struct ifd_hwpt *h)
{
	struct vk_iommu_destroy d = { .size = sizeof(d), .id = h->hwpt_id };
	size_t i;
	int ret;

	ret = kio(t, h->fd, VK_IOMMU_DESTROY, &d);
	if (ret < 0) {
		vmig_host_logf(t->host, VMIG_LOG_WARN,
			       "HWPT %u: cannot destroy it: %s", h->hwpt_id,
			       strerror(-ret));
		return;
	}
	for (i = 0; i < t->nr_hwpts; i++) {
		if (t->hwpts[i] == h) {
			t->hwpts[i] = t->hwpts[--t->nr_hwpts];
			break;
		}
	}
	free(h);
}

/*
 * A new dirty-tracking HWPT on the IOAS io for dev (the device's own or
 * one of its PASIDs'), tracking already when the instance is, so that the
 * first write after the attach counts.
 */
static int hwpt_new(struct ifd *t, const struct vmig_device_desc *dev,
		    const struct vmig_iommu_desc *io, struct ifd_hwpt **out)
{
	struct vk_iommu_hwpt_alloc a = {
		.size = sizeof(a),
		.flags = VK_IOMMU_HWPT_ALLOC_DIRTY_TRACKING,
		.dev_id = dev->iommufd_id,
		.pt_id = io->ioas_id,
	};
	struct ifd_hwpt **hs, *h;
	int ret;

	hs = realloc(t->hwpts, (t->nr_hwpts + 1) * sizeof(*hs));
	if (!hs)
		return -ENOMEM;
	t->hwpts = hs;
	h = calloc(1, sizeof(*h));
	if (!h)
		return -ENOMEM;
	ret = kio(t, io->fd, VK_IOMMU_HWPT_ALLOC, &a);
	if (ret < 0) {
		vmig_host_logf(t->host, VMIG_LOG_ERROR,
			       "device %u: IOMMU_HWPT_ALLOC(DIRTY_TRACKING) on "
			       "IOAS %u: %s",
			       dev->id, io->ioas_id, strerror(-ret));
		free(h);
		return ret;
	}
	h->iommu_id = io->id;
	h->fd = io->fd;
	h->ioas_id = io->ioas_id;
	h->hwpt_id = a.out_hwpt_id;
	t->hwpts[t->nr_hwpts++] = h;
	if (t->started) {
		ret = set_tracking(t, h, true);
		if (ret < 0) {
			hwpt_release(t, h);
			return ret;
		}
	}
	*out = h;
	return 0;
}

/*
 * Puts the device (pasid 0) or one of its PASIDs on a dirty-tracking HWPT
 * of io: the first of ours on that IOAS that takes it (EINVAL from the
 * attach means incompatible: the next one), else a new one.
 */
static int place(struct ifd *t, const struct vmig_device_desc *dev,
		 const struct vmig_iommu_desc *io, uint32_t pasid,
		 struct ifd_hwpt **out)
{
	struct ifd_hwpt *h;
	size_t i;
	int ret;

	for (i = 0; i < t->nr_hwpts; i++) {
		h = t->hwpts[i];
		if (h->iommu_id != io->id)
			continue;
		ret = attach_any(t, dev->device_fd, pasid, h->hwpt_id);
		if (ret == -EINVAL)
			continue; /* incompatible: the next one */
		if (ret < 0)
			return ret;
		goto placed;
	}
	ret = hwpt_new(t, dev, io, &h);
	if (ret < 0)
		return ret;
	ret = attach_any(t, dev->device_fd, pasid, h->hwpt_id);
	if (ret < 0) {
		if (pasid)
			vmig_host_logf(t->host, VMIG_LOG_ERROR,
				       "device %u: cannot attach its PASID %u "
				       "to its new HWPT %u: %s",
				       dev->id, pasid, h->hwpt_id,
				       strerror(-ret));
		else
			vmig_host_logf(t->host, VMIG_LOG_ERROR,
				       "device %u: cannot attach it to its new "
				       "HWPT %u: %s",
				       dev->id, h->hwpt_id, strerror(-ret));
		hwpt_release(t, h);
		return ret;
	}
placed:
	h->users++;
	*out = h;
	return 0;
}

/* A PASID of a device goes back to an automatic domain of its IOAS. */
static void pasid_unplace(struct ifd *t, uint32_t id, int device_fd,
			  const struct ifd_pasid *p)
{
	struct ifd_hwpt *h = p->hwpt;
	int ret = attach_pasid(t, device_fd, p->pasid, h->ioas_id);

	/* Still on h then: h cannot be destroyed, and is kept. */
	if (ret < 0)
		vmig_host_logf(t->host, VMIG_LOG_WARN,
			       "device %u: cannot move PASID %u back to IOAS "
			       "%u: %s",
			       id, p->pasid, h->ioas_id, strerror(-ret));
	if (!--h->users)
		hwpt_release(t, h);
}

/*
 * The device goes back to an automatic domain of its IOAS. Devices of
 * one IOMMU group share one domain, so that move takes its group-mates
 * along: the others still on the HWPT are put back on it, which may keep
 * the released device there too (tracked, never lost). (PASID domains
 * are per device: the group's move leaves them where they are.)
 */
static void main_unplace(struct ifd *t, uint32_t id, int device_fd,
			 struct ifd_hwpt *h)
{
	size_t i;
	int ret;

	ret = attach_pt(t, device_fd, h->ioas_id);
	if (ret < 0)
		vmig_host_logf(t->host, VMIG_LOG_WARN,
			       "device %u: cannot move it back to IOAS %u: %s",
			       id, h->ioas_id, strerror(-ret));
	h->users--;
	for (i = 0; i < t->nr_devs; i++) {
		if (t->devs[i].hwpt != h || t->devs[i].id == id)
			continue;
		ret = attach_pt(t, t->devs[i].device_fd, h->hwpt_id);
		if (ret < 0)
			vmig_host_logf(t->host, VMIG_LOG_ERROR,
				       "device %u: cannot keep it on HWPT %u: "
				       "%s",
				       t->devs[i].id, h->hwpt_id,
				       strerror(-ret));
	}
	if (!h->users)
		hwpt_release(t, h);
}

/* ------------------------------------------------------------------ */
/* Which PASIDs are covered                                            */

static uint32_t nr_pasids(const struct vmig_device_desc *dev)
{
	if (!VMIG_HAS_FIELD(dev, struct vmig_device_desc, pasids) ||
	    !dev->pasids)
		return 0;
	return dev->nr_pasids;
}

/* Why the last probe declined id's PASIDs, or NULL when it did not. */
static const char *declined(const struct ifd *t, uint32_t id)
{
	size_t i;

	for (i = 0; i < t->nr_declined; i++)
		if (t->declined[i].id == id)
			return t->declined[i].why;
	return NULL;
}

/* Remembers what the probe told vmig of id's PASIDs: why NULL = covered. */
static int set_declined(struct ifd *t, uint32_t id, const char *why)
{
	struct ifd_verdict *v = NULL;
	size_t i;

	for (i = 0; i < t->nr_declined; i++) {
		if (t->declined[i].id == id) {
			v = &t->declined[i];
			break;
		}
	}
	if (!why) {
		if (v)
			*v = t->declined[--t->nr_declined];
		return 0;
	}
	if (!v) {
		v = realloc(t->declined,
			    (t->nr_declined + 1) * sizeof(*v));
		if (!v)
			return -ENOMEM;
		t->declined = v;
		v = &t->declined[t->nr_declined++];
		v->id = id;
	}
	snprintf(v->why, sizeof(v->why), "%s", why);
	return 0;
}

/*
 * What needs no kernel: each PASID a real one (0 is the device itself)
 * behind an IOAS of the iommufd the device is bound to, the only one
 * whose objects its PASIDs can attach to (the same fd: a HWPT allocated
 * on another iommufd would name another device by this device's id).
 */
static bool pasids_well_formed(const struct vmig_device_desc *dev,
			       char *why, size_t len)
{
	uint32_t i;

	if (dev->device_fd < 0) {
		snprintf(why, len, "no device fd to attach them with");
		return false;
	}
	for (i = 0; i < nr_pasids(dev); i++) {
		const struct vmig_pasid_desc *p = &dev->pasids[i];

		if (!VMIG_HAS_FIELD(p, struct vmig_pasid_desc, iommu) ||
		    !p->iommu || p->iommu->kind != VMIG_IOMMU_IOMMUFD ||
		    p->iommu->fd != dev->iommu->fd) {
			snprintf(why, len,
				 "PASID %u is not on an IOAS of the device's "
				 "iommufd",
				 VMIG_HAS_FIELD(p, struct vmig_pasid_desc,
						pasid) ? p->pasid : 0);
			return false;
		}
		if (!p->pasid) {
			snprintf(why, len, "PASID 0 is the device itself");
			return false;
		}
	}
	return true;
}

/*
 * Whether this kernel attaches PASIDs (newer than 6.12), asked without
 * effect: a PASID attach to object 0, which iommufd never allocates (its
 * IDs start at 1). 6.12 refuses the flag itself with EINVAL; a kernel
 * that knows it gets as far as looking the object up: ENOENT. Returns
 * what the kernel answered.
 */
static int kernel_attaches_pasids(struct ifd *t,
				  const struct vmig_device_desc *dev)
{
	return attach_pasid(t, dev->device_fd, dev->pasids[0].pasid, 0);
}

/*
 * Whether every PASID of dev can be moved to a dirty-tracking HWPT, and
 * why not in why. The device's IOMMU has dirty tracking already (info):
 * its PASIDs' domains are allocated for the same device. Anything but a
 * clear yes is a no: PASIDs declined cost bandwidth (their spaces are
 * dirty on every sync), PASIDs wrongly claimed would cost writes.
 */
static bool pasids_coverable(struct ifd *t, const struct vmig_device_desc *dev,
			     const struct vk_iommu_hw_info *info, char *why,
			     size_t len)
{
	unsigned int width = info->out_max_pasid_log2;
	uint32_t i;
	int ret;

	if (!pasids_well_formed(dev, why, len))
		return false;
	if (!width) {
		snprintf(why, len, "its IOMMU reports no PASID support");
		return false;
	}
	for (i = 0; i < nr_pasids(dev); i++) {
		if (width < 32 && dev->pasids[i].pasid >> width) {
			snprintf(why, len, "PASID %u is beyond its %u-bit "
				 "PASID width", dev->pasids[i].pasid, width);
			return false;
		}
	}
	ret = kernel_attaches_pasids(t, dev);
	if (ret == -ENOENT)
		return true;
	if (ret == -EINVAL)
		snprintf(why, len, "this kernel has no PASID attach (Linux "
			 "6.12 and older)");
	else
		snprintf(why, len, "a PASID attach to nothing answered %s",
			 ret ? strerror(-ret) : "success");
	return false;
}

#define VTD_SLLPS_SHIFT 34
#define VTD_SLLPS_2M 0x1ull
#define VTD_SLLPS_1G 0x2ull
#define MOCK_HUGE_PAGE (1ull << 20)

/*
 * The smallest large page the device's IOMMU may map its dirty-tracking
 * domains with (see the top), or 0 for none, from GET_HW_INFO's payload.
 */
static uint64_t iommu_huge(const struct vk_iommu_hw_info *info,
			   const uint64_t *data)
{
	uint64_t sllps;

	switch (info->out_data_type) {
	case VK_IOMMU_HW_INFO_TYPE_INTEL_VTD:
		/* struct iommu_hw_info_vtd: flags, __reserved, cap_reg. */
		if (info->data_len < 16)
			return 2ull << 20;
		sllps = (data[1] >> VTD_SLLPS_SHIFT) & 0xf;
		if (sllps & VTD_SLLPS_2M)
			return 2ull << 20;
		return sllps & VTD_SLLPS_1G ? 1ull << 30 : 0;
	case VK_IOMMU_HW_INFO_TYPE_SELFTEST:
		return MOCK_HUGE_PAGE;
	default:
		return 2ull << 20;
	}
}

/* Whether [iova, iova + length) holds an aligned block of size bytes. */
static bool holds_block(uint64_t iova, uint64_t length, uint64_t size)
{
	uint64_t b = (iova + size - 1) & ~(size - 1);

	return size && b >= iova && b - iova <= length &&
	       length - (b - iova) >= size;
}

/* Asks the IOMMU for its large pages; 0 on failure (logged). */
static uint64_t device_huge(struct ifd *t, int fd, uint32_t dev_id)
{
	uint64_t data[4] = { 0 };
	struct vk_iommu_hw_info info = {
		.size = sizeof(info),
		.dev_id = dev_id,
		.data_len = sizeof(data),
		.data_uptr = (uintptr_t)data,
	};
	int ret = kio(t, fd, VK_IOMMU_GET_HW_INFO, &info);

	if (ret < 0) {
		vmig_host_logf(t->host, VMIG_LOG_WARN,
			       "device id %u: IOMMU_GET_HW_INFO: %s: taken to "
			       "map 2 MiB pages", dev_id, strerror(-ret));
		return 2ull << 20;
	}
	return iommu_huge(&info, data);
}

/* Whether one of dev's writable ranges holds an aligned huge block. */
static bool ranges_huge(const struct vmig_device_desc *dev, uint64_t huge)
{
	uint32_t i;

	if (!huge || !VMIG_HAS_FIELD(dev, struct vmig_device_desc, ranges) ||
	    !dev->ranges)
		return false;
	for (i = 0; i < dev->nr_ranges; i++)
		if (holds_block(dev->ranges[i].iova, dev->ranges[i].length,
				huge))
			return true;
	return false;
}

/*
 * Remembers a range of iommu_id that d can write, if it holds an aligned
 * large page. On failure d stays a superset for good (huge_range set).
 */
static void huge_note(struct ifd_device *d, uint32_t iommu_id,
		      uint64_t iova, uint64_t length)
{
	struct ifd_huge *arr;

	if (!holds_block(iova, length, d->huge))
		return;
	d->huge_range = true;
	arr = realloc(d->huge_ranges, (d->nr_huge + 1) * sizeof(*arr));
	if (!arr)
		return;
	arr[d->nr_huge].iommu_id = iommu_id;
	arr[d->nr_huge].iova = iova;
	arr[d->nr_huge].length = length;
	d->huge_ranges = arr;
	d->nr_huge++;
}

/*
 * [iova, iova + length) of iommu_id is unmapped: what is left of each
 * remembered range (a piece before it, a piece after it) is kept while
 * it still holds a large page. When none is left, d is exact again.
 */
static void huge_cut(struct ifd_device *d, uint32_t iommu_id, uint64_t iova,
		     uint64_t length)
{
	struct ifd_huge *old = d->huge_ranges, *arr;
	uint64_t end = iova + length;
	uint32_t n = d->nr_huge, i, k = 0;

	if (!n)
		return;
	arr = calloc((size_t)n * 2, sizeof(*arr));
	if (!arr)
		return; /* kept as they were: a superset, never less */
	for (i = 0; i < n; i++) {
		const struct ifd_huge *r = &old[i];
		uint64_t r_end = r->iova + r->length;

		if (r->iommu_id != iommu_id || r_end <= iova ||
		    r->iova >= end) {
			arr[k++] = *r;
			continue;
		}
		if (r->iova < iova &&
		    holds_block(r->iova, iova - r->iova, d->huge))
			arr[k++] = (struct ifd_huge){ iommu_id, r->iova,
						      iova - r->iova };
		if (r_end > end && holds_block(end, r_end - end, d->huge))
			arr[k++] = (struct ifd_huge){ iommu_id, end,
						      r_end - end };
	}
	free(old);
	d->huge_ranges = arr;
	d->nr_huge = k;
	d->huge_range = k != 0;
}

/* Exact, or a superset where large IOPTEs may be (see the top). */
static void set_precision(struct vmig_probe *out, uint64_t huge,
			  bool huge_range)
{
	out->precision = huge && huge_range ? VMIG_PRECISION_SUPERSET
					    : VMIG_PRECISION_EXACT;
}

static void explain_exact(struct vmig_probe *out, uint64_t huge,
			  bool huge_range)
{
	set_precision(out, huge, huge_range);
	out->cost = 1;
	if (huge && huge_range)
		snprintf(out->reason, sizeof(out->reason),
			 "IOMMU dirty bits of a dirty-tracking HWPT; the IOMMU "
			 "maps %llu KiB IOPTEs where a range allows (one "
			 "does): a write reports its whole IOPTE",
			 (unsigned long long)(huge >> 10));
	else
		snprintf(out->reason, sizeof(out->reason),
			 "IOMMU dirty bits of a dirty-tracking HWPT; %s",
			 huge ? "no range holds an aligned large IOPTE"
			      : "the IOMMU has no large page");
}

/* A device with PASIDs: covered, or why not. */
static void explain_pasids(struct vmig_probe *out, const char *why,
			   uint64_t huge, bool huge_range)
{
	set_precision(out, huge, huge_range);
	out->cost = 1;
	if (!why) {
		out->flags |= VMIG_PROBE_PASIDS;
		snprintf(out->reason, sizeof(out->reason),
			 "IOMMU dirty bits of dirty-tracking HWPTs, its "
			 "PASIDs' too (an attach that cannot move them all "
			 "fails); huge IOPTE: whole superpage (superset)");
		return;
	}
	snprintf(out->reason, sizeof(out->reason), PASIDS_DECLINED "%s", why);
}

/* ------------------------------------------------------------------ */

static int ifd_create(const struct vmig_host *host, void **instance)
{
	struct ifd *t;

	if (!VMIG_HAS_FIELD(host, struct vmig_host, ioctl) || !host->ioctl)
		return -EINVAL;
	t = calloc(1, sizeof(*t));
	if (!t)
		return -ENOMEM;
	t->host = host;
	*instance = t;
	return 0;
}

static void ifd_destroy(void *instance)
{
	struct ifd *t = instance;
	size_t i;
	uint32_t j;

	for (i = 0; i < t->nr_hwpts; i++)
		if (t->hwpts[i]->tracking)
			set_tracking(t, t->hwpts[i], false);
	/* Back to automatic domains, as the VMM had them. */
	for (i = 0; i < t->nr_devs; i++) {
		struct ifd_device *d = &t->devs[i];
		int ret;

		for (j = 0; j < d->nr_pasids; j++) {
			const struct ifd_pasid *p = &d->pasids[j];

			ret = attach_pasid(t, d->device_fd, p->pasid,
					   p->hwpt->ioas_id);
			if (ret < 0)
				vmig_host_logf(t->host, VMIG_LOG_WARN,
					       "device %u: cannot move PASID "
					       "%u back to IOAS %u: %s",
					       d->id, p->pasid,
					       p->hwpt->ioas_id,
					       strerror(-ret));
		}
		free(d->pasids);
		free(d->huge_ranges);
		ret = attach_pt(t, d->device_fd, d->hwpt->ioas_id);
		if (ret < 0)
			vmig_host_logf(t->host, VMIG_LOG_WARN,
				       "device %u: cannot move it back to IOAS "
				       "%u: %s",
				       d->id, d->hwpt->ioas_id, strerror(-ret));
	}
	while (t->nr_hwpts) {
		struct ifd_hwpt *h = t->hwpts[t->nr_hwpts - 1];
		size_t n = t->nr_hwpts;

		hwpt_release(t, h);
		if (t->nr_hwpts == n) {
			/* The kernel kept it: forget it all the same. */
			free(h);
			t->nr_hwpts--;
		}
	}
	free(t->hwpts);
	free(t->devs);
	free(t->declined);
	free(t->buf);
	free(t);
}

static int ifd_probe(void *instance, const struct vmig_device_desc *dev,
		     struct vmig_probe *out)
{
	struct ifd *t = instance;
	struct vk_iommu_hw_info info = { .size = sizeof(info) };
	char why[WHY_LEN];
	bool huge_range;
	uint64_t huge;
	int ret;

	/* Each probe replaces the last one's verdict. */
	set_declined(t, dev->id, NULL);
	if (!VMIG_HAS_FIELD(dev, struct vmig_device_desc, iommu) ||
	    !dev->iommu || dev->iommu->kind != VMIG_IOMMU_IOMMUFD ||
	    dev->iommu->fd < 0) {
		snprintf(out->reason, sizeof(out->reason),
			 "not behind an iommufd IOAS");
		return 0;
	}
	if (dev->kind == VMIG_DEVICE_MDEV) {
		snprintf(out->reason, sizeof(out->reason),
			 "an mdev is an emulated access: no IOMMU page table "
			 "sees its writes");
		return 0;
	}
	info.dev_id = dev->iommufd_id;
	ret = kio(t, dev->iommu->fd, VK_IOMMU_GET_HW_INFO, &info);
	if (ret < 0) {
		snprintf(out->reason, sizeof(out->reason),
			 "IOMMU_GET_HW_INFO of device id %u failed: %s",
			 dev->iommufd_id, strerror(-ret));
		return 0;
	}
	if (!(info.out_capabilities & VK_IOMMU_HW_CAP_DIRTY_TRACKING)) {
		snprintf(out->reason, sizeof(out->reason),
			 "the IOMMU has no dirty tracking "
			 "(IOMMU_HW_CAP_DIRTY_TRACKING clear)");
		return 0;
	}
	huge = device_huge(t, dev->iommu->fd, dev->iommufd_id);
	huge_range = ranges_huge(dev, huge);
	if (!nr_pasids(dev)) {
		explain_exact(out, huge, huge_range);
		return 0;
	}
	if (pasids_coverable(t, dev, &info, why, sizeof(why))) {
		explain_pasids(out, NULL, huge, huge_range);
		return 0;
	}
	/* Tracked all the same: its PASIDs' spaces are dirty in vmig. */
	ret = set_declined(t, dev->id, why);
	if (ret < 0)
		return ret;
	explain_pasids(out, why, huge, huge_range);
	return 0;
}

/*
 * The device's own domain, then each PASID's, on dirty-tracking HWPTs.
 * A PASID that cannot be moved undoes the whole attach: vmig would
 * otherwise believe it tracked.
 */
static int ifd_attach(void *instance, const struct vmig_device_desc *dev)
{
	struct ifd *t = instance;
	struct ifd_pasid *pasids = NULL;
	struct ifd_device *devs, *d;
	struct ifd_hwpt *h;
	uint32_t n, cover;
	const char *left;
	char why[WHY_LEN];
	uint64_t huge;
	int ret;

	if (!VMIG_HAS_FIELD(dev, struct vmig_device_desc, iommu) ||
	    !dev->iommu || dev->iommu->kind != VMIG_IOMMU_IOMMUFD ||
	    dev->kind == VMIG_DEVICE_MDEV || dev->device_fd < 0)
		return -EINVAL;
	if (dev_find(t, dev->id))
		return -EEXIST;
	/* PASIDs the probe declined stay; any others are all moved. */
	left = declined(t, dev->id);
	cover = left ? 0 : nr_pasids(dev);
	if (cover) {
		if (!pasids_well_formed(dev, why, sizeof(why))) {
			vmig_host_logf(t->host, VMIG_LOG_ERROR,
				       "device %u: its PASIDs cannot be "
				       "covered: %s",
				       dev->id, why);
			return -EINVAL;
		}
		pasids = calloc(cover, sizeof(*pasids));
		if (!pasids)
			return -ENOMEM;
	}
	devs = realloc(t->devs, (t->nr_devs + 1) * sizeof(*devs));
	if (!devs) {
		free(pasids);
		return -ENOMEM;
	}
	t->devs = devs;
	/* Asked before the placement, whose attach is the last call. */
	huge = device_huge(t, dev->iommu->fd, dev->iommufd_id);
	ret = place(t, dev, dev->iommu, 0, &h);
	if (ret < 0) {
		free(pasids);
		return ret;
	}
	for (n = 0; n < cover; n++) {
		const struct vmig_pasid_desc *p = &dev->pasids[n];

		ret = place(t, dev, p->iommu, p->pasid, &pasids[n].hwpt);
		if (ret < 0) {
			vmig_host_logf(t->host, VMIG_LOG_ERROR,
				       "device %u: PASID %u cannot be moved "
				       "to a dirty-tracking HWPT of IOAS %u: "
				       "%s; attach undone",
				       dev->id, p->pasid, p->iommu->ioas_id,
				       strerror(-ret));
			goto undo;
		}
		pasids[n].pasid = p->pasid;
	}
	d = &t->devs[t->nr_devs++];
	d->id = dev->id;
	d->device_fd = dev->device_fd;
	d->dev_id = dev->iommufd_id;
	d->hwpt = h;
	d->huge = huge;
	d->huge_ranges = NULL;
	d->nr_huge = 0;
	d->huge_range = false;
	for (n = 0; VMIG_HAS_FIELD(dev, struct vmig_device_desc, ranges) &&
		    dev->ranges && n < dev->nr_ranges;
	     n++)
		huge_note(d, dev->iommu->id, dev->ranges[n].iova,
			  dev->ranges[n].length);
	d->pasids = pasids;
	d->nr_pasids = cover;
	d->left_pasids = left ? nr_pasids(dev) : 0;
	snprintf(d->why, sizeof(d->why), "%s", left ? left : "");
	return 0;
undo:
	while (n--)
		pasid_unplace(t, dev->id, dev->device_fd, &pasids[n]);
	main_unplace(t, dev->id, dev->device_fd, h);
	free(pasids);
	return ret;
}

/* The device's PASIDs go back first, then the device (main_unplace). */
static int ifd_detach(void *instance, uint32_t device_id)
{
	struct ifd *t = instance;
	struct ifd_device *d = dev_find(t, device_id);
	struct ifd_hwpt *h;
	int device_fd;
	uint32_t i;

	if (!d)
		return -ENOENT;
	for (i = 0; i < d->nr_pasids; i++)
		pasid_unplace(t, d->id, d->device_fd, &d->pasids[i]);
	free(d->pasids);
	free(d->huge_ranges);
	h = d->hwpt;
	device_fd = d->device_fd;
	*d = t->devs[--t->nr_devs];
	main_unplace(t, device_id, device_fd, h);
	return 0;
}

static int ifd_start(void *instance, uint64_t page_size)
{
	struct ifd *t = instance;
	size_t i;
	int ret;

	(void)page_size; /* any page size is read; see the top */
	for (i = 0; i < t->nr_hwpts; i++) {
		/* Enabling again would clear what was recorded. */
		if (t->hwpts[i]->tracking)
			continue;
		ret = set_tracking(t, t->hwpts[i], true);
		if (ret < 0) {
			while (i--)
				set_tracking(t, t->hwpts[i], false);
			return ret;
		}
	}
	t->started = true;
	return 0;
}

static int ifd_stop(void *instance)
{
	struct ifd *t = instance;
	size_t i;

	for (i = 0; i < t->nr_hwpts; i++)
		if (t->hwpts[i]->tracking)
			set_tracking(t, t->hwpts[i], false);
	t->started = false;
	return 0;
}

/*
 * Reads rq's range of every HWPT of the IOAS into the caller's bitmap,
 * with the kernel's NO_CLEAR when no_clear.
 */
static int read_space(struct ifd *t, const struct vmig_read *rq,
		      uint64_t *bitmap, bool no_clear)
{
	uint64_t nbits, words;
	size_t i;
	int ret;

	if (!VMIG_HAS_FIELD(rq, struct vmig_read, page_size) ||
	    (rq->flags & ~VMIG_READ_NO_CLEAR))
		return -EINVAL;
	if (!space_known(t, rq->iommu_id))
		return -ENOENT;
	if (!rq->length || !rq->page_size ||
	    (rq->page_size & (rq->page_size - 1)) ||
	    ((rq->iova | rq->length) & (rq->page_size - 1)) ||
	    rq->iova + rq->length - 1 < rq->iova)
		return -EINVAL;
	/* The kernel would answer 0 and no bits: refuse instead. */
	if (!t->started)
		return -EINVAL;
	nbits = rq->length / rq->page_size;
	words = vmig_bitmap_words(nbits);
	if (words > t->buf_words) {
		uint64_t *p = realloc(t->buf, words * sizeof(*p));

		if (!p)
			return -ENOMEM;
		t->buf = p;
		t->buf_words = words;
	}
	for (i = 0; i < t->nr_hwpts; i++) {
		struct ifd_hwpt *h = t->hwpts[i];
		struct vk_iommu_hwpt_get_dirty_bitmap g = {
			.size = sizeof(g),
			.hwpt_id = h->hwpt_id,
			.flags = no_clear ? NO_CLEAR : 0,
			.iova = rq->iova,
			.length = rq->length,
			.page_size = rq->page_size,
			.data = (uintptr_t)t->buf,
		};

		if (h->iommu_id != rq->iommu_id)
			continue;
		if (!h->tracking)
			return -EINVAL;
		memset(t->buf, 0, words * sizeof(*t->buf));
		ret = kio(t, h->fd, VK_IOMMU_HWPT_GET_DIRTY_BITMAP, &g);
		if (ret < 0) {
			vmig_host_logf(t->host, VMIG_LOG_ERROR,
				       "HWPT %u: GET_DIRTY_BITMAP of "
				       "0x%llx+0x%llx: %s",
				       h->hwpt_id,
				       (unsigned long long)rq->iova,
				       (unsigned long long)rq->length,
				       strerror(-ret));
			return ret;
		}
		vmig_bitmap_or(bitmap, t->buf, nbits);
	}
	return 0;
}

static int ifd_read(void *instance, const struct vmig_read *rq,
		    uint64_t *bitmap)
{
	return read_space(instance, rq, bitmap,
			  rq && VMIG_HAS_FIELD(rq, struct vmig_read, flags) &&
				  (rq->flags & VMIG_READ_NO_CLEAR));
}

/*
 * The last bits of a range about to go. They are read without clearing
 * (the kernel's intended use, and a second read still finds them should
 * the unmap not happen); vmig's core unmaps right after, and
 * ifd_unmap_complete covers what the device wrote in between.
 */
static int ifd_unmap_prepare(void *instance, const struct vmig_read *rq,
			     uint64_t *bitmap, uint32_t *flags)
{
	struct ifd *t = instance;

	(void)flags;
	if (!t->started)
		return 0; /* nothing recorded: nothing to harvest */
	return read_space(t, rq, bitmap, true);
}

/*
 * The range is unmapped. iommufd has no unmap that returns the dirty bits
 * (shared docs/kernel-uapi.md 2.5): the IOPTEs, and any dirty bit a write
 * set after the read above, went with IOAS_UNMAP. The device could write
 * until then, so every page of the range is reported, once.
 */
static int ifd_unmap_complete(void *instance, const struct vmig_read *rq,
			      uint64_t *bitmap)
{
	struct ifd *t = instance;
	size_t i;

	if (!VMIG_HAS_FIELD(rq, struct vmig_read, page_size) ||
	    !rq->page_size || (rq->page_size & (rq->page_size - 1)) ||
	    (rq->length & (rq->page_size - 1)))
		return -EINVAL;
	if (t->started)
		vmig_bitmap_set(bitmap, 0, rq->length / rq->page_size);
	/* Its large IOPTEs went with it: the devices may be exact again. */
	for (i = 0; i < t->nr_devs; i++)
		huge_cut(&t->devs[i], rq->iommu_id, rq->iova, rq->length);
	return 0;
}

static int ifd_status(void *instance, uint32_t device_id,
		      struct vmig_probe *out)
{
	struct ifd *t = instance;
	const struct ifd_device *d = dev_find(t, device_id);

	if (!d)
		return -ENOENT;
	/* Its PASIDs are covered exactly when they were moved at attach. */
	if (d->nr_pasids)
		explain_pasids(out, NULL, d->huge, d->huge_range);
	else if (d->left_pasids)
		explain_pasids(out, d->why, d->huge, d->huge_range);
	else
		explain_exact(out, d->huge, d->huge_range);
	return 0;
}

/*
 * A range mapped while tracking runs: tracked from its first write with
 * no help (the HWPT mirrors the IOAS), but it may hold a large IOPTE,
 * which makes the devices that write it a superset.
 */
static int ifd_map(void *instance, uint32_t iommu_id,
		   const struct vmig_range *range)
{
	struct ifd *t = instance;
	size_t i;
	uint32_t j;

	if (!range)
		return -EINVAL;
	for (i = 0; i < t->nr_devs; i++) {
		struct ifd_device *d = &t->devs[i];
		bool reaches = d->hwpt->iommu_id == iommu_id;

		for (j = 0; j < d->nr_pasids && !reaches; j++)
			reaches = d->pasids[j].hwpt->iommu_id == iommu_id;
		if (reaches)
			huge_note(d, iommu_id, range->iova, range->length);
	}
	return 0;
}

static const struct vmig_source_ops ifd_ops = {
	.size = sizeof(struct vmig_source_ops),
	.create = ifd_create,
	.destroy = ifd_destroy,
	.probe = ifd_probe,
	.attach = ifd_attach,
	.detach = ifd_detach,
	.start = ifd_start,
	.stop = ifd_stop,
	.read = ifd_read,
	.map = ifd_map,
	.unmap_prepare = ifd_unmap_prepare,
	.unmap_complete = ifd_unmap_complete,
	.status = ifd_status,
};

static const struct vmig_plugin ifd_plugin = {
	.size = sizeof(struct vmig_plugin),
	.abi_major = VMIG_PLUGIN_ABI_MAJOR,
	.abi_minor = VMIG_PLUGIN_ABI_MINOR,
	.flags = VMIG_PLUGIN_READ_NO_CLEAR,
	.name = "iommufd",
	.version = VMIG_VERSION_STRING,
	.description = "iommufd HWPT dirty bits (IOMMU_HWPT_GET_DIRTY_BITMAP)",
	.device_kinds = VMIG_KIND_BIT(VMIG_DEVICE_VFIO_PCI),
	.iommu_kinds = VMIG_KIND_BIT(VMIG_IOMMU_IOMMUFD),
	.precision = VMIG_PRECISION_EXACT,
	/* Every power of two: the kernel ORs or spreads IOPTE bits. */
	.page_sizes = ~0ull,
	/* The kernel maps the user bitmap in windows: no limit of its own. */
	.max_read_bytes = 0,
	.ops = &ifd_ops,
};

VMIG_PLUGIN_EXPORT const struct vmig_plugin *
VMIG_PLUGIN_ENTRY(const struct vmig_host *host, uint32_t abi_major)
{
	(void)host;
	if (abi_major != VMIG_PLUGIN_ABI_MAJOR)
		return NULL;
	return &ifd_plugin;
}
