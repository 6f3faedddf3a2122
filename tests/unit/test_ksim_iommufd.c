/*
 * test_ksim_iommufd.c: the kernel simulator's iommufd part behaves as
 * Linux 6.12 does (shared docs/kernel-uapi.md sections 2 and 4 and the
 * kernel sources they cite): /dev/iommu's dispatch and objects, every
 * errno of IOAS_MAP/UNMAP, HWPT_ALLOC, GET_HW_INFO, SET_DIRTY_TRACKING,
 * GET_DIRTY_BITMAP and the VFIO cdev ioctls in the kernel's order of
 * checks, IOVA ranges and alignment, automatic domains, IOPTE sizes,
 * the bitmap format, the silent-success pitfalls, the selftest mock and
 * its dirty sequence, mdev accesses, PASID modelling, hot-unplug, fds.
 */
#include <errno.h>
#include <fcntl.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <linux/vfio.h>

#include <vmig/linux-uapi.h>
#include "ksim/ksim.h"
#include "unit/testutil.h"
#include "unit/ksimglobal.h"
#include "unit/ksimutil.h"

#define PG 4096ull
#define K2 2048ull
#define MiB (1ull << 20)
#define RW (VK_IOMMU_IOAS_MAP_READABLE | VK_IOMMU_IOAS_MAP_WRITEABLE)
#define FIXED VK_IOMMU_IOAS_MAP_FIXED_IOVA
#define NO_CLEAR VK_IOMMU_HWPT_GET_DIRTY_BITMAP_NO_CLEAR
#define DIRTY VK_IOMMU_HWPT_ALLOC_DIRTY_TRACKING

/* ------------------------------------------------------------------ */
/* Helpers                                                             */

static void sim_new(void)
{
	CU_ASSERT_FATAL(ksim_new(NULL, &K) == 0);
	H = ksim_host(K);
}

/* A device; cdev < 0: none. */
static struct ksim_device *dev_add(const char *name,
				   enum ksim_device_kind kind, int group,
				   int cdev, bool dirty)
{
	struct ksim_device_params p = {
		.name = name, .kind = kind, .group = group,
		.iommufd = { .cdev = cdev >= 0,
			     .cdev_index = cdev >= 0 ? (uint32_t)cdev : 0,
			     .dirty_tracking = dirty },
	};
	struct ksim_device *d = NULL;

	CU_ASSERT_FATAL(ksim_device_add(K, &p, &d) == 0);
	return d;
}

static struct ksim_device *
dev_add_p(const char *name, int group,
	  const struct ksim_iommufd_device_params *ip)
{
	struct ksim_device_params p = { .name = name, .kind = KSIM_DEV_PCI,
					.group = group, .iommufd = *ip };
	struct ksim_device *d = NULL;

	CU_ASSERT_FATAL(ksim_device_add(K, &p, &d) == 0);
	return d;
}

static int iommufd(void)
{
	int fd = xopen("/dev/iommu");

	CU_ASSERT_FATAL(fd >= 0);
	return fd;
}

static uint32_t ioas_alloc(int fd)
{
	struct vk_iommu_ioas_alloc a = { .size = sizeof(a) };

	CU_ASSERT_FATAL(xioctl(fd, VK_IOMMU_IOAS_ALLOC, &a) == 0);
	return a.out_ioas_id;
}

static int map_ex(int fd, uint32_t ioas, uint64_t *iova, uint64_t len,
		  const void *uva, uint32_t flags)
{
	struct vk_iommu_ioas_map m = {
		.size = sizeof(m), .flags = flags, .ioas_id = ioas,
		.user_va = (uintptr_t)uva, .length = len, .iova = *iova,
	};
	int ret = xioctl(fd, VK_IOMMU_IOAS_MAP, &m);

	if (!ret)
		*iova = m.iova;
	return ret;
}

static int map(int fd, uint32_t ioas, uint64_t iova, uint64_t len,
	       const void *uva)
{
	return map_ex(fd, ioas, &iova, len, uva, FIXED | RW);
}

/* IOAS_MAP with every field given. */
static int map_raw(int fd, uint32_t flags, uint32_t rsv, uint32_t ioas,
		   uint64_t uva, uint64_t len, uint64_t iova)
{
	struct vk_iommu_ioas_map m = {
		.size = sizeof(m), .flags = flags, .ioas_id = ioas,
		.__reserved = rsv, .user_va = uva, .length = len, .iova = iova,
	};

	return xioctl(fd, VK_IOMMU_IOAS_MAP, &m);
}

static int unmap(int fd, uint32_t ioas, uint64_t iova, uint64_t len,
		 uint64_t *out)
{
	struct vk_iommu_ioas_unmap u = { .size = sizeof(u), .ioas_id = ioas,
					 .iova = iova, .length = len };
	int ret = xioctl(fd, VK_IOMMU_IOAS_UNMAP, &u);

	if (out)
		*out = u.length;
	return ret;
}

static int hwpt_alloc(int fd, uint32_t dev, uint32_t pt, uint32_t flags,
		      uint32_t *id)
{
	struct vk_iommu_hwpt_alloc a = { .size = sizeof(a), .flags = flags,
					 .dev_id = dev, .pt_id = pt };
	int ret = xioctl(fd, VK_IOMMU_HWPT_ALLOC, &a);

	if (id)
		*id = a.out_hwpt_id;
	return ret;
}

/* HWPT_ALLOC with every field given. */
static int alloc_raw(int fd, uint32_t size, uint32_t flags, uint32_t dev,
		     uint32_t pt, uint32_t rsv, uint32_t dtype, uint32_t dlen,
		     uint32_t *id)
{
	struct vk_iommu_hwpt_alloc a = {
		.size = size, .flags = flags, .dev_id = dev, .pt_id = pt,
		.__reserved = rsv, .data_type = dtype, .data_len = dlen,
	};
	int ret = xioctl(fd, VK_IOMMU_HWPT_ALLOC, &a);

	if (id)
		*id = a.out_hwpt_id;
	return ret;
}

static int set_dirty(int fd, uint32_t hwpt, bool on)
{
	struct vk_iommu_hwpt_set_dirty_tracking s = {
		.size = sizeof(s), .hwpt_id = hwpt,
		.flags = on ? VK_IOMMU_HWPT_DIRTY_TRACKING_ENABLE : 0,
	};

	return xioctl(fd, VK_IOMMU_HWPT_SET_DIRTY_TRACKING, &s);
}

static int get_dirty(int fd, uint32_t hwpt, uint64_t iova, uint64_t len,
		     uint64_t pgsz, uint32_t flags, void *data)
{
	struct vk_iommu_hwpt_get_dirty_bitmap g = {
		.size = sizeof(g), .hwpt_id = hwpt, .flags = flags,
		.iova = iova, .length = len, .page_size = pgsz,
		.data = (uintptr_t)data,
	};

	return xioctl(fd, VK_IOMMU_HWPT_GET_DIRTY_BITMAP, &g);
}

/* GET_DIRTY_BITMAP with every field given. */
static int get_raw(int fd, uint32_t size, uint32_t hwpt, uint32_t flags,
		   uint32_t rsv, uint64_t iova, uint64_t len, uint64_t pgsz,
		   void *data)
{
	struct vk_iommu_hwpt_get_dirty_bitmap g = {
		.size = size, .hwpt_id = hwpt, .flags = flags,
		.__reserved = rsv, .iova = iova, .length = len,
		.page_size = pgsz, .data = (uintptr_t)data,
	};

	return xioctl(fd, VK_IOMMU_HWPT_GET_DIRTY_BITMAP, &g);
}

static int destroy(int fd, uint32_t id)
{
	struct vk_iommu_destroy d = { .size = sizeof(d), .id = id };

	return xioctl(fd, VK_IOMMU_DESTROY, &d);
}

static int cdev_open(int n)
{
	char path[48];

	snprintf(path, sizeof(path), "/dev/vfio/devices/vfio%d", n);
	return xopen(path);
}

static int bind(int dfd, int fd, uint32_t *devid)
{
	struct vk_vfio_device_bind_iommufd b = { .argsz = sizeof(b),
						 .iommufd = fd };
	int ret = xioctl(dfd, VK_VFIO_DEVICE_BIND_IOMMUFD, &b);

	if (devid)
		*devid = b.out_devid;
	return ret;
}

static int attach(int dfd, uint32_t pt, uint32_t *out)
{
	struct vk_vfio_device_attach_iommufd_pt a = { .argsz = sizeof(a),
						      .pt_id = pt };
	int ret = xioctl(dfd, VK_VFIO_DEVICE_ATTACH_IOMMUFD_PT, &a);

	if (out)
		*out = a.pt_id;
	return ret;
}

static int detach(int dfd)
{
	struct vk_vfio_device_detach_iommufd_pt d = { .argsz = sizeof(d) };

	return xioctl(dfd, VK_VFIO_DEVICE_DETACH_IOMMUFD_PT, &d);
}

/* Opens a device's cdev and binds it; returns the fd. */
static int open_bound(int n, int fd, uint32_t *devid)
{
	int dfd = cdev_open(n);

	CU_ASSERT_FATAL(dfd >= 0);
	CU_ASSERT_FATAL(bind(dfd, fd, devid) == 0);
	return dfd;
}

static int mock_domain(int fd, uint32_t id, uint32_t op, uint32_t flags,
		       uint32_t *stdev, uint32_t *hwpt, uint32_t *idev)
{
	struct vk_iommu_test_cmd c = { .size = sizeof(c), .op = op, .id = id };
	int ret;

	c.mock_domain_flags.dev_flags = flags;
	ret = xioctl(fd, VK_IOMMU_TEST_CMD, &c);
	if (stdev)
		*stdev = c.mock_domain.out_stdev_id;
	if (hwpt)
		*hwpt = c.mock_domain.out_hwpt_id;
	if (idev)
		*idev = c.mock_domain.out_idev_id;
	return ret;
}

static int test_dirty(int fd, uint32_t hwpt, uint64_t iova, uint64_t len,
		      uint64_t pgsz, const void *bitmap, uint64_t *nr)
{
	struct vk_iommu_test_cmd c = {
		.size = sizeof(c), .op = VK_IOMMU_TEST_OP_DIRTY, .id = hwpt,
	};
	int ret;

	c.dirty.iova = iova;
	c.dirty.length = len;
	c.dirty.page_size = pgsz;
	c.dirty.uptr = (uintptr_t)bitmap;
	ret = xioctl(fd, VK_IOMMU_TEST_CMD, &c);
	if (nr)
		*nr = c.dirty.out_nr_dirty;
	return ret;
}

static struct vk_iommu_ioas_iova_ranges ranges_of(int fd, uint32_t ioas,
						  struct vk_iommu_iova_range *r,
						  uint32_t n, int *ret)
{
	struct vk_iommu_ioas_iova_ranges q = {
		.size = sizeof(q), .ioas_id = ioas, .num_iovas = n,
		.allowed_iovas = (uintptr_t)r,
	};

	*ret = xioctl(fd, VK_IOMMU_IOAS_IOVA_RANGES, &q);
	return q;
}

static uint64_t alignment_of(int fd, uint32_t ioas)
{
	struct vk_iommu_iova_range r[8];
	struct vk_iommu_ioas_iova_ranges q;
	int ret;

	q = ranges_of(fd, ioas, r, 8, &ret);
	CU_ASSERT(ret == 0);
	return q.out_iova_alignment;
}

/* Byte-wise bit access: the buffers here may be unaligned. */
static bool bit(const void *bm, uint64_t n)
{
	return (((const uint8_t *)bm)[n / 8] >> (n % 8)) & 1;
}

static uint64_t count_bits(const void *bm, uint64_t nbits)
{
	uint64_t n = 0, i;

	for (i = 0; i < nbits; i++)
		n += bit(bm, i);
	return n;
}

static struct ksim_iommufd_attachment where(struct ksim_device *d,
					    uint32_t pasid)
{
	struct ksim_iommufd_attachment a;

	CU_ASSERT(ksim_iommufd_attachment(d, pasid, &a) == 0);
	return a;
}

/*
 * A common rig: an Intel PCI device with dirty tracking in its own group
 * with cdev 0, bound to an iommufd, an IOAS with `len` bytes of memory
 * mapped at iova, a dirty-tracking HWPT the device is attached to, with
 * tracking on.
 */
struct rig {
	int fd;
	int dfd;
	uint32_t ioas;
	uint32_t devid;
	uint32_t hwpt;
	struct ksim_device *dev;
	uint8_t *mem;
	uint64_t iova;
	uint64_t len;
};

static void rig_up(struct rig *r, uint64_t iova, uint64_t len)
{
	memset(r, 0, sizeof(*r));
	r->dev = dev_add("0000:01:00.0", KSIM_DEV_PCI, -1, 0, true);
	r->fd = iommufd();
	r->ioas = ioas_alloc(r->fd);
	r->dfd = open_bound(0, r->fd, &r->devid);
	r->mem = vmig_test_guest_mem(len, 2 * MiB);
	r->iova = iova;
	r->len = len;
	CU_ASSERT_FATAL(map(r->fd, r->ioas, iova, len, r->mem) == 0);
	CU_ASSERT_FATAL(hwpt_alloc(r->fd, r->devid, r->ioas, DIRTY,
				   &r->hwpt) == 0);
	CU_ASSERT_FATAL(attach(r->dfd, r->hwpt, NULL) == 0);
	CU_ASSERT_FATAL(set_dirty(r->fd, r->hwpt, true) == 0);
}

static void rig_down(struct rig *r)
{
	sim_free();
	free(r->mem);
}

/* Reads the rig's whole mapping at 4 KiB into bm (zeroed first). */
static int rig_read(struct rig *r, uint32_t flags, uint64_t *bm)
{
	memset(bm, 0, (r->len / PG + 7) / 8);
	return get_dirty(r->fd, r->hwpt, r->iova, r->len, PG, flags, bm);
}

/* ------------------------------------------------------------------ */
/* The /dev/iommu fd                                                   */

static void test_paths_and_leaks(void)
{
	int before = vmig_test_count_fds(), fd, d0, d1, p[2];

	CU_ASSERT_FATAL(before > 0);
	sim_new();
	dev_add("0000:01:00.0", KSIM_DEV_PCI, -1, 0, true);
	dev_add("0000:02:00.0", KSIM_DEV_PCI, 4, 12, false);
	fd = iommufd();
	CU_ASSERT(fcntl(fd, F_GETFD) >= 0);
	CU_ASSERT(xopen("/dev/iommu") != fd);
	d0 = cdev_open(0);
	d1 = cdev_open(12);
	CU_ASSERT(d0 >= 0 && d1 >= 0 && d0 != d1);
	/* A cdev may be opened more than once; only one may bind. */
	CU_ASSERT(cdev_open(0) >= 0);
	CU_ASSERT(cdev_open(1) == -ENOENT);
	CU_ASSERT(xopen("/dev/vfio/devices/vfio012") == -ENOENT);
	CU_ASSERT(xopen("/dev/vfio/devices/vfio") == -ENOENT);
	CU_ASSERT(xopen("/dev/vfio/devices/vfio1x") == -ENOENT);
	CU_ASSERT(xopen("/dev/vfio/devices/vfio-1") == -ENOENT);
	/* A device without a VFIO group has no /dev/vfio/N... */
	CU_ASSERT(xopen("/dev/vfio/-1") == -ENOENT);
	CU_ASSERT(xopen("/dev/vfio/0") == -ENOENT);
	/* ... one with both opens either (the cdev is not bound). */
	CU_ASSERT(xopen("/dev/vfio/4") >= 0);
	/* A second device cannot take a taken cdev number. */
	{
		struct ksim_device_params dp = {
			.name = "dup", .kind = KSIM_DEV_PCI, .group = -1,
			.iommufd = { .cdev = true, .cdev_index = 12 },
		};

		CU_ASSERT(ksim_device_add(K, &dp, NULL) == -EEXIST);
	}
	/* read, write and mmap of /dev/iommu are not file operations. */
	CU_ASSERT(H->read(H->kctx, fd, p, 4) == -EINVAL);
	CU_ASSERT(vmig_test_count_fds() == before + 6);
	sim_free(); /* closes every fd */
	CU_ASSERT(vmig_test_count_fds() == before);
}

static void test_dispatch(void)
{
	struct {
		unsigned long req;
		uint32_t min;
	} cmds[] = {
		{ VK_IOMMU_DESTROY, 8 },
		{ VK_IOMMU_IOAS_ALLOC, 12 },
		{ VK_IOMMU_IOAS_IOVA_RANGES, 32 },
		{ VK_IOMMU_IOAS_MAP, 40 },
		{ VK_IOMMU_IOAS_UNMAP, 24 },
		{ VK_IOMMU_HWPT_ALLOC, 24 },
		{ VK_IOMMU_GET_HW_INFO, 32 },
		{ VK_IOMMU_HWPT_SET_DIRTY_TRACKING, 16 },
		{ VK_IOMMU_HWPT_GET_DIRTY_BITMAP, 48 },
		{ VK_IOMMU_TEST_CMD, 68 },
	};
	uint64_t raw[16];
	uint32_t *size = (uint32_t *)raw;
	struct vk_iommu_ioas_alloc *a = (void *)raw;
	size_t i;
	int fd;

	sim_new();
	fd = iommufd();
	for (i = 0; i < sizeof(cmds) / sizeof(cmds[0]); i++) {
		memset(raw, 0, sizeof(raw));
		*size = cmds[i].min - 1;
		CU_ASSERT(xioctl(fd, cmds[i].req, raw) == -EINVAL);
	}
	/* Outside the table, in its holes, or with size bits: ENOTTY. */
	memset(raw, 0, sizeof(raw));
	*size = 64;
	CU_ASSERT(xioctl(fd, VK_IO(0x8f), raw) == -ENOTTY);
	CU_ASSERT(xioctl(fd, VK_IO(0x9f), raw) == -ENOTTY);
	CU_ASSERT(xioctl(fd, VK_IO(0xa1), raw) == -ENOTTY);
	CU_ASSERT(xioctl(fd, VFIO_GET_API_VERSION, raw) == -ENOTTY);
	CU_ASSERT(xioctl(fd, 0xc0183b81ul, raw) == -ENOTTY);
	/* Commands ksim does not model answer as if absent. */
	CU_ASSERT(xioctl(fd, VK_IOMMU_IOAS_ALLOW_IOVAS, raw) == -ENOTTY);
	CU_ASSERT(xioctl(fd, VK_IOMMU_OPTION, raw) == -ENOTTY);
	/* The size word itself must be readable. */
	CU_ASSERT(xioctl(fd, VK_IOMMU_IOAS_ALLOC, NULL) == -EFAULT);
	/* Longer: zero tail accepted, non-zero tail E2BIG. */
	memset(raw, 0, sizeof(raw));
	a->size = 24;
	CU_ASSERT(xioctl(fd, VK_IOMMU_IOAS_ALLOC, raw) == 0);
	CU_ASSERT(a->out_ioas_id == 1);
	CU_ASSERT(raw[2] == 0); /* only the kernel's 12 bytes came back */
	raw[2] = 1;
	CU_ASSERT(xioctl(fd, VK_IOMMU_IOAS_ALLOC, raw) == -E2BIG);
	/* Shorter than the struct but not than the minimum: fine. */
	memset(raw, 0, sizeof(raw));
	*size = 24;
	CU_ASSERT(xioctl(fd, VK_IOMMU_HWPT_ALLOC, raw) == -ENOENT);
	sim_free();
}

static void test_destroy_and_ids(void)
{
	struct rig r;
	uint32_t a, b, c, auto_id;
	int dfd2;

	sim_new();
	rig_up(&r, 0x100000, 64 * PG);
	dev_add("0000:02:00.0", KSIM_DEV_PCI, -1, 1, false);
	CU_ASSERT(r.ioas == 1 && r.devid == 2 && r.hwpt == 3);
	CU_ASSERT(destroy(r.fd, 99) == -ENOENT);
	CU_ASSERT(destroy(r.fd, 0) == -ENOENT);
	/* Held: the IOAS by its HWPT, the HWPT by its device, the device. */
	CU_ASSERT(destroy(r.fd, r.ioas) == -EBUSY);
	CU_ASSERT(destroy(r.fd, r.hwpt) == -EBUSY);
	CU_ASSERT(destroy(r.fd, r.devid) == -EBUSY);
	/* IDs are the lowest free ones. */
	a = ioas_alloc(r.fd);
	b = ioas_alloc(r.fd);
	c = ioas_alloc(r.fd);
	CU_ASSERT(a == 4 && b == 5 && c == 6);
	CU_ASSERT(destroy(r.fd, b) == 0);
	CU_ASSERT(destroy(r.fd, b) == -ENOENT);
	CU_ASSERT(ioas_alloc(r.fd) == b);
	/* An IOAS with mappings but no users goes, mappings and all. */
	CU_ASSERT(map(r.fd, c, 0, PG, r.mem) == 0);
	CU_ASSERT(destroy(r.fd, c) == 0);
	/* An automatic HWPT is held by its device and dies with it. */
	dfd2 = open_bound(1, r.fd, NULL);
	CU_ASSERT(attach(dfd2, a, &auto_id) == 0);
	CU_ASSERT(destroy(r.fd, auto_id) == -EBUSY);
	CU_ASSERT(detach(dfd2) == 0);
	CU_ASSERT(destroy(r.fd, auto_id) == -ENOENT);
	/* A user HWPT outlives its devices until destroyed. */
	CU_ASSERT(detach(r.dfd) == 0);
	CU_ASSERT(destroy(r.fd, r.hwpt) == 0);
	CU_ASSERT(destroy(r.fd, r.ioas) == 0);
	rig_down(&r);
}

/* ------------------------------------------------------------------ */
/* IOAS (2.5)                                                          */

static void test_ioas_alloc(void)
{
	struct vk_iommu_ioas_alloc a = { .size = sizeof(a), .flags = 1 };
	int fd;

	sim_new();
	fd = iommufd();
	CU_ASSERT(xioctl(fd, VK_IOMMU_IOAS_ALLOC, &a) == -EOPNOTSUPP);
	a.flags = 0;
	CU_ASSERT(xioctl(fd, VK_IOMMU_IOAS_ALLOC, &a) == 0);
	CU_ASSERT(a.out_ioas_id == 1);
	/* Each open of /dev/iommu is its own ID space. */
	CU_ASSERT(ioas_alloc(iommufd()) == 1);
	sim_free();
}

static void test_map_errnos(void)
{
	uint32_t ioas, auto_id, devid;
	uint8_t *mem = vmig_test_guest_mem(64 * PG, PG);
	uint64_t iova;
	int fd, dfd, empty;

	sim_new();
	dev_add("0000:01:00.0", KSIM_DEV_PCI, -1, 0, false);
	fd = iommufd();
	ioas = ioas_alloc(fd);
	empty = ioas_alloc(fd);
	dfd = open_bound(0, fd, &devid);
	CU_ASSERT_FATAL(attach(dfd, ioas, &auto_id) == 0);
	CU_ASSERT(alignment_of(fd, ioas) == PG);

	/*
	 * In the kernel's order: each row also breaks a later rule, and the
	 * earlier one wins. U is the good user address, A the good IOVA.
	 */
#define U ((uintptr_t)mem)
#define A 0x100000ull
#define FR (FIXED | RW)
	CU_ASSERT(map_raw(fd, RW | 8, 0, 99, U, 0, A) == -EOPNOTSUPP);
	CU_ASSERT(map_raw(fd, FR, 1, ioas, U, PG, UINT64_MAX) == -EOPNOTSUPP);
	CU_ASSERT(map_raw(fd, FIXED, 0, 99, U, PG, UINT64_MAX) == -EOVERFLOW);
	CU_ASSERT(map_raw(fd, FIXED, 0, ioas, U, UINT64_MAX, A) ==
		  -EOVERFLOW);
	CU_ASSERT(map_raw(fd, FIXED, 0, 99, U, PG, A) == -EINVAL);
	CU_ASSERT(map_raw(fd, FR, 0, 99, U, 0, A) == -ENOENT);
	CU_ASSERT(map_raw(fd, FR, 0, auto_id, U, PG, A) == -ENOENT);
	CU_ASSERT(map_raw(fd, FR, 0, ioas, U, 0, 0x800) == -EINVAL);
	CU_ASSERT(map_raw(fd, FR, 0, ioas, UINT64_MAX - PG + 1, 2 * PG, A) ==
		  -EOVERFLOW);
	CU_ASSERT(map_raw(fd, FR, 0, ioas, U, K2, 0x800) == -EINVAL);
	CU_ASSERT(map_raw(fd, FR, 0, ioas, U, PG, A + 0x800) == -EINVAL);
	CU_ASSERT(map_raw(fd, FR, 0, ioas, U, 2 * PG, UINT64_MAX - PG + 1) ==
		  -EOVERFLOW);
	/* Reserved: the MSI window and past the 48-bit aperture. */
	CU_ASSERT(map_raw(fd, FR, 0, ioas, U, PG, 0xfee00000) == -EINVAL);
	CU_ASSERT(map_raw(fd, FR, 0, ioas, U, 2 * PG, 0xfedff000) == -EINVAL);
	CU_ASSERT(map_raw(fd, FR, 0, ioas, U, PG, 1ull << 48) == -EINVAL);
	CU_ASSERT(map_raw(fd, FR, 0, ioas, U, 16 * PG, A) == 0);
	CU_ASSERT(map_raw(fd, FR, 0, ioas, U + K2, PG, A + 0x8000) == -EEXIST);
	CU_ASSERT(map_raw(fd, FR, 0, ioas, U + K2, PG, 0x200000) == -EINVAL);
	/* With a domain the pages are pinned: nothing there, EFAULT. */
	CU_ASSERT(map_raw(fd, FR, 0, ioas, 0x1000, PG, 0x200000) == -EFAULT);
	/* Without one nothing is pinned yet. */
	CU_ASSERT(map_raw(fd, FR, 0, empty, 0x1000, PG, 0x200000) == 0);
	/* Read-only is a mapping too. */
	CU_ASSERT(map_raw(fd, FIXED | VK_IOMMU_IOAS_MAP_READABLE, 0, ioas, U,
			  PG, 0x300000) == 0);
#undef U
#undef A
#undef FR
	CU_ASSERT(map(fd, 99, 0, PG, mem) == -ENOENT);
	/* The kernel picks an iova outside what is mapped and reserved. */
	iova = 0;
	CU_ASSERT(map_ex(fd, ioas, &iova, 16 * PG, mem, RW) == 0);
	CU_ASSERT(iova != 0 && iova % PG == 0);
	CU_ASSERT(iova + 16 * PG <= 0x100000 || iova >= 0x110000);
	sim_free();
	free(mem);
}

/* The kernel-chosen IOVA keeps the buffer's alignment, up to 2 MiB. */
static void test_map_auto_iova(void)
{
	uint8_t *mem = vmig_test_guest_mem(8 * MiB, 2 * MiB);
	uint64_t a, b, c, d;
	uint32_t ioas, devid;
	int fd, dfd;

	sim_new();
	dev_add("0000:01:00.0", KSIM_DEV_PCI, -1, 0, false);
	fd = iommufd();
	ioas = ioas_alloc(fd);
	a = b = c = d = 0;
	CU_ASSERT(map_ex(fd, ioas, &a, 4 * MiB, mem, RW) == 0);
	CU_ASSERT(a == 2 * MiB); /* never 0; aligned as the buffer (2M) */
	CU_ASSERT(map_ex(fd, ioas, &b, 2 * PG, mem + PG, RW) == 0);
	CU_ASSERT(b == PG); /* the first fit: the hole below a */
	CU_ASSERT(map_ex(fd, ioas, &c, 8 * PG, mem + 4 * MiB, RW) == 0);
	CU_ASSERT(c == 8 * PG);
	CU_ASSERT(map_ex(fd, ioas, &d, PG, mem + 0x123, RW) == 0);
	CU_ASSERT(d % PG == 0x123); /* same offset in the page */
	/* With a 4 KiB domain, a buffer aligned below it cannot be placed. */
	dfd = open_bound(0, fd, &devid);
	CU_ASSERT(unmap(fd, ioas, d, PG, NULL) == 0);
	CU_ASSERT(attach(dfd, ioas, NULL) == 0);
	d = 0;
	CU_ASSERT(map_ex(fd, ioas, &d, PG, mem + K2, RW) == -EINVAL);
	sim_free();
	free(mem);
}

static void test_unmap(void)
{
	uint8_t *mem = vmig_test_guest_mem(64 * PG, PG);
	uint64_t out;
	uint32_t ioas;
	int fd;

	sim_new();
	fd = iommufd();
	ioas = ioas_alloc(fd);
	CU_ASSERT(unmap(fd, 99, 0, 0, NULL) == -ENOENT);
	CU_ASSERT(unmap(fd, ioas, UINT64_MAX, 1, NULL) == -EOVERFLOW);
	CU_ASSERT(unmap(fd, ioas, 1, UINT64_MAX, NULL) == -EOVERFLOW);
	CU_ASSERT(unmap(fd, ioas, 0x10000, 0, NULL) == -EINVAL);
	CU_ASSERT(unmap(fd, ioas, UINT64_MAX - 10, 100, NULL) == -EOVERFLOW);
	CU_ASSERT(unmap(fd, ioas, 0x10000, PG, NULL) == -ENOENT);
	/* Unmap-all of nothing is fine, and says 0 bytes. */
	out = 7;
	CU_ASSERT(unmap(fd, ioas, 0, UINT64_MAX, &out) == 0);
	CU_ASSERT(out == 0);
	CU_ASSERT(map(fd, ioas, 0x10000, 0x10000, mem) == 0);
	CU_ASSERT(map(fd, ioas, 0x30000, 0x10000, mem) == 0);
	CU_ASSERT(map(fd, ioas, 0x50000, 0x10000, mem) == 0);
	/* Cutting through B: A goes first, then ENOENT. */
	CU_ASSERT(unmap(fd, ioas, 0x10000, 0x28000, NULL) == -ENOENT);
	CU_ASSERT(map(fd, ioas, 0x10000, 0x10000, mem) == 0);
	CU_ASSERT(map(fd, ioas, 0x30000, PG, mem) == -EEXIST);
	CU_ASSERT(unmap(fd, ioas, 0x38000, 0x8000, NULL) == -ENOENT);
	/* Across a hole, whole mappings: the bytes unmapped. */
	CU_ASSERT(unmap(fd, ioas, 0x30000, 0x30000, &out) == 0);
	CU_ASSERT(out == 0x20000);
	CU_ASSERT(map(fd, ioas, 0x30000, 0x30000, mem) == 0);
	CU_ASSERT(unmap(fd, ioas, 0, UINT64_MAX, &out) == 0);
	CU_ASSERT(out == 0x40000);
	CU_ASSERT(unmap(fd, ioas, 0x30000, 0x30000, NULL) == -ENOENT);
	sim_free();
	free(mem);
}

static void test_iova_ranges(void)
{
	struct vk_iommu_iova_range r[4];
	struct vk_iommu_ioas_iova_ranges q;
	uint8_t *mem = vmig_test_guest_mem(4 * PG, PG);
	uint32_t ioas, ioas2, hwpt, idev, devid, accid;
	int fd, dfd, mfd, ret;

	sim_new();
	dev_add("0000:01:00.0", KSIM_DEV_PCI, -1, 0, false);
	dev_add("mdev-0", KSIM_DEV_MDEV, -1, 1, false);
	fd = iommufd();
	ioas = ioas_alloc(fd);
	ioas2 = ioas_alloc(fd);
	/* Empty: everything, no alignment. */
	memset(r, 0xff, sizeof(r));
	q = ranges_of(fd, ioas, r, 4, &ret);
	CU_ASSERT(ret == 0 && q.num_iovas == 1);
	CU_ASSERT(r[0].start == 0 && r[0].last == UINT64_MAX);
	CU_ASSERT(q.out_iova_alignment == 1);
	q = ranges_of(fd, 99, r, 4, &ret);
	CU_ASSERT(ret == -ENOENT);
	{
		struct vk_iommu_ioas_iova_ranges bad = {
			.size = sizeof(bad), .ioas_id = 99, .__reserved = 1,
		};

		CU_ASSERT(xioctl(fd, VK_IOMMU_IOAS_IOVA_RANGES, &bad) ==
			  -EOPNOTSUPP);
	}
	/* An Intel device attached: the MSI window and above 2^48 go. */
	dfd = open_bound(0, fd, &devid);
	CU_ASSERT_FATAL(attach(dfd, ioas, NULL) == 0);
	q = ranges_of(fd, ioas, r, 4, &ret);
	CU_ASSERT(ret == 0 && q.num_iovas == 2);
	CU_ASSERT(r[0].start == 0 && r[0].last == 0xfedfffff);
	CU_ASSERT(r[1].start == 0xfef00000 && r[1].last == (1ull << 48) - 1);
	CU_ASSERT(q.out_iova_alignment == PG);
	/* Too small an array: EMSGSIZE, the count and what fit. */
	memset(r, 0, sizeof(r));
	q = ranges_of(fd, ioas, r, 1, &ret);
	CU_ASSERT(ret == -EMSGSIZE && q.num_iovas == 2);
	CU_ASSERT(r[0].last == 0xfedfffff && r[1].start == 0);
	CU_ASSERT(q.out_iova_alignment == PG);
	q = ranges_of(fd, ioas, NULL, 0, &ret);
	CU_ASSERT(ret == -EMSGSIZE && q.num_iovas == 2);
	q = ranges_of(fd, ioas, (void *)8, 2, &ret);
	CU_ASSERT(ret == -EFAULT);
	/* Its automatic domain goes with it: back to empty. */
	CU_ASSERT(detach(dfd) == 0);
	q = ranges_of(fd, ioas, r, 4, &ret);
	CU_ASSERT(q.num_iovas == 1 && q.out_iova_alignment == 1);
	/* A mock domain: its aperture, 2 KiB. */
	CU_ASSERT(mock_domain(fd, ioas2, VK_IOMMU_TEST_OP_MOCK_DOMAIN, 0,
			      NULL, &hwpt, &idev) == 0);
	q = ranges_of(fd, ioas2, r, 4, &ret);
	CU_ASSERT(ret == 0 && q.num_iovas == 1);
	CU_ASSERT(r[0].start == 0x1000000 && r[0].last == 0x7fffffff);
	CU_ASSERT(q.out_iova_alignment == K2);
	/* A user HWPT counts without a device attached to it. */
	CU_ASSERT(hwpt_alloc(fd, idev, ioas, 0, &hwpt) == 0);
	CU_ASSERT(alignment_of(fd, ioas) == K2);
	CU_ASSERT(destroy(fd, hwpt) == 0);
	CU_ASSERT(alignment_of(fd, ioas) == 1);
	/* An access (mdev) pins: PAGE_SIZE. */
	mfd = open_bound(1, fd, &accid);
	CU_ASSERT(attach(mfd, ioas, NULL) == 0);
	CU_ASSERT(alignment_of(fd, ioas) == PG);
	CU_ASSERT(detach(mfd) == 0);
	CU_ASSERT(alignment_of(fd, ioas) == 1);
	/* Alignment can only grow if what is mapped conforms. */
	CU_ASSERT(map(fd, ioas, 0x1000800, K2, mem + K2) == 0);
	CU_ASSERT(attach(dfd, ioas, NULL) == -EADDRINUSE);
	CU_ASSERT(attach(mfd, ioas, NULL) == -EADDRINUSE);
	CU_ASSERT(alignment_of(fd, ioas) == 1);
	/* The mock's 2 KiB domain takes it. */
	CU_ASSERT(hwpt_alloc(fd, idev, ioas, 0, &hwpt) == 0);
	sim_free();
	free(mem);
}

/* ------------------------------------------------------------------ */
/* HWPTs (2.6 to 2.8, 2.10)                                            */

static void test_hw_info(void)
{
	struct ksim_iommufd_device_params ip = { .cdev = true,
						 .dirty_tracking = true,
						 .max_pasid_log2 = 5 };
	struct vk_iommu_hw_info h;
	uint8_t data[32];
	uint32_t devid, nd, idev, ioas, acc;
	uint64_t v[3];
	int fd;

	sim_new();
	dev_add_p("0000:01:00.0", -1, &ip);
	dev_add("0000:02:00.0", KSIM_DEV_PCI, -1, 1, false);
	dev_add("mdev-0", KSIM_DEV_MDEV, -1, 2, false);
	fd = iommufd();
	ioas = ioas_alloc(fd);
	open_bound(0, fd, &devid);
	open_bound(1, fd, &nd);
	open_bound(2, fd, &acc);

	memset(data, 0xff, sizeof(data));
	h = (struct vk_iommu_hw_info){ .size = sizeof(h), .dev_id = devid,
				       .data_len = 32,
				       .data_uptr = (uintptr_t)data };
	CU_ASSERT(xioctl(fd, VK_IOMMU_GET_HW_INFO, &h) == 0);
	CU_ASSERT(h.out_data_type == VK_IOMMU_HW_INFO_TYPE_INTEL_VTD);
	CU_ASSERT(h.data_len == 24);
	CU_ASSERT(h.out_capabilities == VK_IOMMU_HW_CAP_DIRTY_TRACKING);
	CU_ASSERT(h.out_max_pasid_log2 == 5);
	memcpy(v, data, sizeof(v));
	CU_ASSERT(v[0] == 0 && v[1] != 0);
	CU_ASSERT(data[24] == 0 && data[31] == 0); /* the rest zero-filled */
	/* A short buffer gets what fits, and the full length back. */
	memset(data, 0xff, sizeof(data));
	h.data_len = 8;
	CU_ASSERT(xioctl(fd, VK_IOMMU_GET_HW_INFO, &h) == 0);
	CU_ASSERT(h.data_len == 24 && data[0] == 0 && data[8] == 0xff);
	/* 32 bytes: the capabilities are not written. */
	h.size = 32;
	h.out_capabilities = 0xdead;
	CU_ASSERT(xioctl(fd, VK_IOMMU_GET_HW_INFO, &h) == 0);
	CU_ASSERT(h.out_capabilities == 0xdead);
	h.size = sizeof(h);
	/* A device without dirty tracking. */
	h.dev_id = nd;
	CU_ASSERT(xioctl(fd, VK_IOMMU_GET_HW_INFO, &h) == 0);
	CU_ASSERT(h.out_capabilities == 0 && h.out_max_pasid_log2 == 0);
	/* Errors in order. */
	h.flags = 1;
	h.dev_id = 99;
	CU_ASSERT(xioctl(fd, VK_IOMMU_GET_HW_INFO, &h) == -EOPNOTSUPP);
	h.flags = 0;
	h.__reserved[1] = 1;
	CU_ASSERT(xioctl(fd, VK_IOMMU_GET_HW_INFO, &h) == -EOPNOTSUPP);
	h.__reserved[1] = 0;
	CU_ASSERT(xioctl(fd, VK_IOMMU_GET_HW_INFO, &h) == -ENOENT);
	h.dev_id = ioas;
	CU_ASSERT(xioctl(fd, VK_IOMMU_GET_HW_INFO, &h) == -ENOENT);
	h.dev_id = acc; /* an mdev's access is no device */
	CU_ASSERT(xioctl(fd, VK_IOMMU_GET_HW_INFO, &h) == -ENOENT);
	h.dev_id = devid;
	h.data_uptr = 0;
	h.data_len = 8;
	CU_ASSERT(xioctl(fd, VK_IOMMU_GET_HW_INFO, &h) == -EFAULT);
	h.data_len = 0; /* nothing to copy: no buffer needed */
	CU_ASSERT(xioctl(fd, VK_IOMMU_GET_HW_INFO, &h) == 0);
	CU_ASSERT(h.data_len == 24);
	/* The mock: 0xfeedbeef, {0, 0xdeadbeef}. */
	CU_ASSERT(mock_domain(fd, ioas, VK_IOMMU_TEST_OP_MOCK_DOMAIN, 0, NULL,
			      NULL, &idev) == 0);
	memset(data, 0xff, sizeof(data));
	h = (struct vk_iommu_hw_info){ .size = sizeof(h), .dev_id = idev,
				       .data_len = 8,
				       .data_uptr = (uintptr_t)data };
	CU_ASSERT(xioctl(fd, VK_IOMMU_GET_HW_INFO, &h) == 0);
	CU_ASSERT(h.out_data_type == VK_IOMMU_HW_INFO_TYPE_SELFTEST);
	CU_ASSERT(h.data_len == 8);
	memcpy(v, data, 8);
	CU_ASSERT(v[0] == 0xdeadbeef00000000ull);
	CU_ASSERT(h.out_capabilities == VK_IOMMU_HW_CAP_DIRTY_TRACKING);
	sim_free();
}

static void test_hwpt_alloc_errnos(void)
{
	uint32_t ioas, devid, nd, acc, user, parent, id;
	int fd;

	sim_new();
	dev_add("0000:01:00.0", KSIM_DEV_PCI, -1, 0, true);
	dev_add("0000:02:00.0", KSIM_DEV_PCI, -1, 1, false);
	dev_add("mdev-0", KSIM_DEV_MDEV, -1, 2, false);
	fd = iommufd();
	ioas = ioas_alloc(fd);
	open_bound(0, fd, &devid);
	open_bound(1, fd, &nd);
	open_bound(2, fd, &acc);
	CU_ASSERT_FATAL(hwpt_alloc(fd, devid, ioas, 0, &user) == 0);
	CU_ASSERT_FATAL(hwpt_alloc(fd, devid, ioas,
				   VK_IOMMU_HWPT_ALLOC_NEST_PARENT | DIRTY,
				   &parent) == 0);

	/* Each row also breaks a later rule: the earlier one wins. */
#define S (uint32_t)sizeof(struct vk_iommu_hwpt_alloc)
#define VTD VK_IOMMU_HWPT_DATA_VTD_S1
	CU_ASSERT(alloc_raw(fd, S, 0, 99, ioas, 1, 0, 4, NULL) ==
		  -EOPNOTSUPP);
	CU_ASSERT(alloc_raw(fd, S, 0, 99, ioas, 0, 0, 4, NULL) == -EINVAL);
	CU_ASSERT(alloc_raw(fd, S, 0, 99, ioas, 0, VTD, 0, NULL) == -EINVAL);
	CU_ASSERT(alloc_raw(fd, S, 0, 99, 99, 0, 0, 0, NULL) == -ENOENT);
	CU_ASSERT(alloc_raw(fd, S, 0, acc, ioas, 0, 0, 0, NULL) == -ENOENT);
	CU_ASSERT(alloc_raw(fd, S, 0, ioas, ioas, 0, 0, 0, NULL) == -ENOENT);
	CU_ASSERT(alloc_raw(fd, S, 0x80, devid, 99, 0, 0, 0, NULL) ==
		  -EINVAL);
	CU_ASSERT(alloc_raw(fd, S, 0x80, devid, devid, 0, 0, 0, NULL) ==
		  -EINVAL);
	CU_ASSERT(alloc_raw(fd, S, 0x80, devid, ioas, 0, 0, 0, NULL) ==
		  -EOPNOTSUPP);
	CU_ASSERT(alloc_raw(fd, S, VK_IOMMU_HWPT_FAULT_ID_VALID, devid, ioas, 0,
			    0, 0, NULL) == -EOPNOTSUPP);
	CU_ASSERT(alloc_raw(fd, S, DIRTY, nd, ioas, 0, 0, 0, NULL) ==
		  -EOPNOTSUPP);
	CU_ASSERT(alloc_raw(fd, S, 0, devid, ioas, 0, VTD, 4, NULL) ==
		  -EOPNOTSUPP);
	/* pt_id a HWPT: a nested (stage-1) allocation. */
	CU_ASSERT(alloc_raw(fd, S, DIRTY, devid, user, 0, VTD, 4, NULL) ==
		  -EOPNOTSUPP);
	CU_ASSERT(alloc_raw(fd, S, 0, devid, parent, 0, 0, 0, NULL) ==
		  -EOPNOTSUPP);
	CU_ASSERT(alloc_raw(fd, S, 0, devid, user, 0, VTD, 4, NULL) ==
		  -EINVAL);
	CU_ASSERT(alloc_raw(fd, S, DIRTY, devid, ioas, 0, 0, 0, &id) == 0);
	CU_ASSERT(id == parent + 1);
	/* 24 bytes are enough: the rest reads as zero. */
	CU_ASSERT(alloc_raw(fd, 24, 0, devid, ioas, 0, 0, 0, &id) == 0);
	CU_ASSERT(id == parent + 2);
	/* A failed allocation leaves no object: the next ID is the next. */
	CU_ASSERT(ioas_alloc(fd) == id + 1);
#undef S
#undef VTD
	sim_free();
}

static void test_hwpt_alloc_domain_checks(void)
{
	struct ksim_iommufd_device_params big = {
		.cdev = true, .cdev_index = 1, .pgsizes = 16384 | (2 * MiB),
	};
	uint8_t *mem = vmig_test_guest_mem(4 * PG, PG);
	uint32_t ioas, ioas2, devid, bigid, idev, id;
	struct ksim_device *d;
	int fd, dfd;

	sim_new();
	d = dev_add("0000:01:00.0", KSIM_DEV_PCI, -1, 0, true);
	dev_add_p("0000:02:00.0", -1, &big);
	fd = iommufd();
	ioas = ioas_alloc(fd);
	ioas2 = ioas_alloc(fd);
	dfd = open_bound(0, fd, &devid);
	open_bound(1, fd, &bigid);
	CU_ASSERT(mock_domain(fd, ioas2, VK_IOMMU_TEST_OP_MOCK_DOMAIN, 0, NULL,
			      NULL, &idev) == 0);
	/* A smallest page above PAGE_SIZE: the IOAS cannot take it. */
	CU_ASSERT(hwpt_alloc(fd, bigid, ioas, 0, NULL) == -EINVAL);
	/* A mapping outside the mock's aperture. */
	CU_ASSERT(map(fd, ioas, 0x10000, PG, mem) == 0);
	CU_ASSERT(hwpt_alloc(fd, idev, ioas, 0, NULL) == -EADDRINUSE);
	CU_ASSERT(mock_domain(fd, ioas, VK_IOMMU_TEST_OP_MOCK_DOMAIN, 0, NULL,
			      NULL, NULL) == -EADDRINUSE);
	CU_ASSERT(unmap(fd, ioas, 0, UINT64_MAX, NULL) == 0);
	/* A mapping the new alignment would cut. */
	CU_ASSERT(map(fd, ioas, 0x1000800, K2, mem + K2) == 0);
	CU_ASSERT(hwpt_alloc(fd, devid, ioas, 0, NULL) == -EADDRINUSE);
	CU_ASSERT(unmap(fd, ioas, 0, UINT64_MAX, NULL) == 0);
	/* A mapping whose pages cannot be pinned into the domain. */
	CU_ASSERT(map(fd, ioas, 0x10000, PG, (void *)0x1000) == 0);
	CU_ASSERT(hwpt_alloc(fd, devid, ioas, DIRTY, NULL) == -EFAULT);
	CU_ASSERT(unmap(fd, ioas, 0, UINT64_MAX, NULL) == 0);
	/* HWPT_ALLOC does not attach: the device stays where it is. */
	CU_ASSERT(attach(dfd, ioas, NULL) == 0);
	CU_ASSERT(hwpt_alloc(fd, devid, ioas, DIRTY, &id) == 0);
	CU_ASSERT(where(d, 0).pt_id != id);
	CU_ASSERT(where(d, 0).auto_domain);
	sim_free();
	free(mem);
}

static void test_auto_vs_explicit(void)
{
	struct ksim_device *a, *b, *c;
	uint32_t ioas, ida, idb, idc, x, y, e, z;
	int fd, da, db, dc;

	sim_new();
	a = dev_add("0000:01:00.0", KSIM_DEV_PCI, -1, 0, true);
	b = dev_add("0000:02:00.0", KSIM_DEV_PCI, -1, 1, true);
	c = dev_add("0000:03:00.0", KSIM_DEV_PCI, -1, 2, false);
	fd = iommufd();
	ioas = ioas_alloc(fd);
	da = open_bound(0, fd, &ida);
	db = open_bound(1, fd, &idb);
	dc = open_bound(2, fd, &idc);
	CU_ASSERT(attach(da, ioas, &x) == 0);
	CU_ASSERT(x != ioas && where(a, 0).pt_id == x);
	CU_ASSERT(where(a, 0).auto_domain && !where(a, 0).dirty_capable);
	/* A compatible device shares the automatic domain. */
	CU_ASSERT(attach(db, ioas, &y) == 0);
	CU_ASSERT(y == x);
	/* A user-allocated HWPT is never picked by auto-attach. */
	CU_ASSERT(hwpt_alloc(fd, ida, ioas, DIRTY, &e) == 0);
	CU_ASSERT(attach(dc, ioas, &z) == 0);
	CU_ASSERT(z == x && where(c, 0).pt_id == x);
	CU_ASSERT(destroy(fd, x) == -EBUSY);
	CU_ASSERT(set_dirty(fd, x, true) == -EOPNOTSUPP);
	/* Attach again with a HWPT: a replace. */
	CU_ASSERT(attach(da, e, &z) == 0);
	CU_ASSERT(z == e && where(a, 0).pt_id == e);
	CU_ASSERT(where(a, 0).dirty_capable && !where(a, 0).auto_domain);
	CU_ASSERT(where(b, 0).pt_id == x);
	/* The automatic domain dies with its last device. */
	CU_ASSERT(detach(db) == 0 && detach(dc) == 0);
	CU_ASSERT(destroy(fd, x) == -ENOENT);
	CU_ASSERT(!where(b, 0).attached && where(b, 0).bound);
	CU_ASSERT(destroy(fd, e) == -EBUSY);
	/* Replacing back to the IOAS: a new automatic domain. */
	CU_ASSERT(attach(da, ioas, &z) == 0);
	CU_ASSERT(z == x && where(a, 0).auto_domain);
	CU_ASSERT(destroy(fd, e) == 0);
	sim_free();
}

static void test_attach_enforcement(void)
{
	struct ksim_iommufd_device_params mock = { .cdev = true,
						   .cdev_index = 2,
						   .model = KSIM_IOMMU_MOCK,
						   .dirty_tracking = true };
	struct ksim_device *nd, *m;
	uint32_t ioas, idd, idn, idm, dirty_hwpt, x, y;
	int fd, dd, dn, dm;

	sim_new();
	dev_add("0000:01:00.0", KSIM_DEV_PCI, -1, 0, true);
	nd = dev_add("0000:02:00.0", KSIM_DEV_PCI, -1, 1, false);
	m = dev_add_p("mock:0", -1, &mock);
	fd = iommufd();
	ioas = ioas_alloc(fd);
	dd = open_bound(0, fd, &idd);
	dn = open_bound(1, fd, &idn);
	dm = open_bound(2, fd, &idm);
	CU_ASSERT(hwpt_alloc(fd, idd, ioas, DIRTY, &dirty_hwpt) == 0);
	/* No dirty capability: a dirty-tracking HWPT refuses it. */
	CU_ASSERT(attach(dn, dirty_hwpt, NULL) == -EINVAL);
	CU_ASSERT(!where(nd, 0).attached);
	/* Another IOMMU driver's domain. */
	CU_ASSERT(attach(dm, dirty_hwpt, NULL) == -EINVAL);
	/* Auto-attach skips what is incompatible and makes another. */
	CU_ASSERT(attach(dd, ioas, &x) == 0);
	CU_ASSERT(x != dirty_hwpt);
	CU_ASSERT(attach(dm, ioas, &y) == 0);
	CU_ASSERT(y != x && y != dirty_hwpt);
	CU_ASSERT(where(m, 0).pt_id == y);
	CU_ASSERT(attach(dn, ioas, &y) == 0);
	CU_ASSERT(y == x);
	/* A refused replace leaves the device where it was. */
	CU_ASSERT(attach(dn, dirty_hwpt, NULL) == -EINVAL);
	CU_ASSERT(where(nd, 0).pt_id == x);
	sim_free();
}

/* Devices of one IOMMU group use one HWPT. */
static void test_group_one_hwpt(void)
{
	struct ksim_device *a, *b;
	uint32_t ioas, ida, idb, h1, h2, z;
	int fd, da, db;

	sim_new();
	a = dev_add("0000:01:00.0", KSIM_DEV_PCI, 5, 0, true);
	b = dev_add("0000:01:00.1", KSIM_DEV_PCI, 5, 1, true);
	fd = iommufd();
	ioas = ioas_alloc(fd);
	da = open_bound(0, fd, &ida);
	db = open_bound(1, fd, &idb);
	CU_ASSERT(hwpt_alloc(fd, ida, ioas, DIRTY, &h1) == 0);
	CU_ASSERT(hwpt_alloc(fd, ida, ioas, DIRTY, &h2) == 0);
	CU_ASSERT(attach(da, h1, NULL) == 0);
	CU_ASSERT(attach(db, h2, NULL) == -EINVAL);
	CU_ASSERT(attach(db, ioas, NULL) == -EINVAL);
	CU_ASSERT(attach(db, h1, NULL) == 0);
	/* Replacing one device's HWPT moves the whole group. */
	CU_ASSERT(attach(da, h2, NULL) == 0);
	CU_ASSERT(where(a, 0).pt_id == h2 && where(b, 0).pt_id == h2);
	CU_ASSERT(destroy(fd, h1) == 0);
	CU_ASSERT(attach(db, ioas, &z) == 0);
	CU_ASSERT(where(a, 0).pt_id == z && where(a, 0).auto_domain);
	/* Two iommufds cannot share a group. */
	{
		int fd2 = iommufd(), d2 = cdev_open(1);

		CU_ASSERT(xclose(db) == 0);
		CU_ASSERT(bind(d2, fd2, NULL) == -EBUSY);
		CU_ASSERT(bind(d2, fd, NULL) == 0);
	}
	sim_free();
}

static void test_set_dirty_tracking(void)
{
	struct vk_iommu_hwpt_set_dirty_tracking s;
	struct rig r;
	uint32_t x;
	int dfd2;

	sim_new();
	rig_up(&r, 0x100000, 16 * PG);
	dev_add("0000:02:00.0", KSIM_DEV_PCI, -1, 1, true);
	dfd2 = open_bound(1, r.fd, NULL);
	CU_ASSERT(attach(dfd2, r.ioas, &x) == 0);
	s = (struct vk_iommu_hwpt_set_dirty_tracking){
		.size = sizeof(s), .flags = 2, .hwpt_id = 99 };
	CU_ASSERT(xioctl(r.fd, VK_IOMMU_HWPT_SET_DIRTY_TRACKING, &s) ==
		  -EOPNOTSUPP);
	s.flags = 3;
	CU_ASSERT(xioctl(r.fd, VK_IOMMU_HWPT_SET_DIRTY_TRACKING, &s) ==
		  -EOPNOTSUPP);
	CU_ASSERT(set_dirty(r.fd, 99, true) == -ENOENT);
	CU_ASSERT(set_dirty(r.fd, r.ioas, true) == -ENOENT);
	CU_ASSERT(set_dirty(r.fd, r.devid, true) == -ENOENT);
	CU_ASSERT(set_dirty(r.fd, x, true) == -EOPNOTSUPP);
	CU_ASSERT(set_dirty(r.fd, x, false) == -EOPNOTSUPP);
	/* Idempotent both ways. */
	CU_ASSERT(set_dirty(r.fd, r.hwpt, true) == 0);
	CU_ASSERT(where(r.dev, 0).tracking);
	CU_ASSERT(set_dirty(r.fd, r.hwpt, false) == 0);
	CU_ASSERT(set_dirty(r.fd, r.hwpt, false) == 0);
	CU_ASSERT(!where(r.dev, 0).tracking);
	/* __reserved is not checked in 6.12. */
	s = (struct vk_iommu_hwpt_set_dirty_tracking){
		.size = sizeof(s), .flags = 1, .hwpt_id = r.hwpt,
		.__reserved = 7 };
	CU_ASSERT(xioctl(r.fd, VK_IOMMU_HWPT_SET_DIRTY_TRACKING, &s) == 0);
	CU_ASSERT(where(r.dev, 0).tracking);
	rig_down(&r);
}

/* ------------------------------------------------------------------ */
/* Dirty bitmaps (2.9)                                                 */

static void test_get_dirty_errnos(void)
{
	uint64_t bm[8];
	struct rig r;
	uint32_t x;
	int dfd2;

	sim_new();
	rig_up(&r, 0x100000, 256 * PG);
	dev_add("0000:02:00.0", KSIM_DEV_PCI, -1, 1, true);
	dfd2 = open_bound(1, r.fd, NULL);
	CU_ASSERT(attach(dfd2, r.ioas, &x) == 0);

	/* Each row also breaks a later rule: the earlier one wins. */
#define S (uint32_t)sizeof(struct vk_iommu_hwpt_get_dirty_bitmap)
#define A 0x100000ull
#define L (256 * PG)
	CU_ASSERT(get_raw(r.fd, S, 99, 2, 0, A, 0, PG, bm) == -EOPNOTSUPP);
	CU_ASSERT(get_raw(r.fd, S, 99, 0, 1, A, L, PG, bm) == -EOPNOTSUPP);
	CU_ASSERT(get_raw(r.fd, S, 99, 0, 0, A, 0, PG, bm) == -ENOENT);
	CU_ASSERT(get_raw(r.fd, S, r.ioas, 0, 0, A, L, PG, bm) == -ENOENT);
	CU_ASSERT(get_raw(r.fd, S, r.devid, 0, 0, A, L, PG, bm) == -ENOENT);
	CU_ASSERT(get_raw(r.fd, S, r.hwpt, 0, 0, UINT64_MAX, 0, PG, bm) ==
		  -EINVAL);
	CU_ASSERT(get_raw(r.fd, S, r.hwpt, 0, 0, UINT64_MAX - PG + 1, 2 * PG,
			  0, bm) == -EOVERFLOW);
	CU_ASSERT(get_raw(r.fd, S, r.hwpt, 0, 0, A + 0x800, L, 0, bm) ==
		  -EINVAL);
	CU_ASSERT(get_raw(r.fd, S, r.hwpt, 0, 0, A, 0x800, 0, bm) == -EINVAL);
	CU_ASSERT(get_raw(r.fd, S, r.hwpt, 0, 0, A, L, 0, bm) == -EINVAL);
	CU_ASSERT(get_raw(r.fd, S, r.hwpt, 0, 0, A + PG, L, 2 * PG, bm) ==
		  -EINVAL);
	CU_ASSERT(get_raw(r.fd, S, r.hwpt, 0, 0, A, 3 * PG, 2 * PG, bm) ==
		  -EINVAL);
	/* A HWPT without dirty ops, last: after the range checks. */
	CU_ASSERT(get_raw(r.fd, S, x, 0, 0, A, 0, PG, bm) == -EINVAL);
	CU_ASSERT(get_raw(r.fd, S, x, 0, 0, A, L, PG, bm) == -EOPNOTSUPP);
	CU_ASSERT(get_raw(r.fd, S, r.hwpt, 0, 0, A, L, PG, bm) == 0);
	CU_ASSERT(get_raw(r.fd, S - 1, r.hwpt, 0, 0, A, L, PG, bm) ==
		  -EINVAL);
	/* page_size is a mask test, not a power-of-two check. */
	CU_ASSERT(ksim_dma_write(r.dev, A + 5 * PG, "x", 1) == 0);
	memset(bm, 0, sizeof(bm));
	CU_ASSERT(get_raw(r.fd, S, r.hwpt, 0, 0, A, L, 3 * PG, bm) == 0);
	CU_ASSERT(bit(bm, 5) && count_bits(bm, 256) == 1);
#undef S
#undef A
#undef L
	rig_down(&r);
}

static void test_dirty_exact(void)
{
	uint64_t bm[4];
	struct rig r;

	sim_new();
	rig_up(&r, 0x100000, 256 * PG);
	/* Nothing written: nothing reported. */
	CU_ASSERT(rig_read(&r, 0, bm) == 0);
	CU_ASSERT(count_bits(bm, 256) == 0);
	CU_ASSERT(ksim_dma_write(r.dev, 0x100000 + 3 * PG + 100, "a", 1) == 0);
	CU_ASSERT(ksim_dma_write(r.dev, 0x100000 + 10 * PG, NULL, 2 * PG) == 0);
	CU_ASSERT(ksim_dma_write(r.dev, 0x100000 + 256 * PG - 1, "z", 1) == 0);
	CU_ASSERT(r.mem[3 * PG + 100] == 'a' && r.mem[256 * PG - 1] == 'z');
	CU_ASSERT(ksim_truth_drain(K, NULL, NULL) == 3);
	CU_ASSERT(rig_read(&r, 0, bm) == 0);
	CU_ASSERT(count_bits(bm, 256) == 4);
	CU_ASSERT(bit(bm, 3) && bit(bm, 10) && bit(bm, 11) && bit(bm, 255));
	/* Read and cleared. */
	CU_ASSERT(rig_read(&r, 0, bm) == 0);
	CU_ASSERT(count_bits(bm, 256) == 0);
	/* Coarser pages OR the IOPTEs they hold. */
	CU_ASSERT(ksim_dma_write(r.dev, 0x100000 + 3 * PG, "a", 1) == 0);
	CU_ASSERT(ksim_dma_write(r.dev, 0x100000 + 17 * PG, "a", 1) == 0);
	memset(bm, 0, sizeof(bm));
	CU_ASSERT(get_dirty(r.fd, r.hwpt, 0x100000, 256 * PG, 16 * PG, 0,
			    bm) == 0);
	CU_ASSERT(count_bits(bm, 16) == 2 && bit(bm, 0) && bit(bm, 1));
	rig_down(&r);
}

/* Bits are relative to the request; only in-range bytes are touched. */
static void test_dirty_bitmap_bytes(void)
{
	uint8_t buf[32];
	struct rig r;

	sim_new();
	rig_up(&r, 0x100000, 256 * PG);
	CU_ASSERT(ksim_dma_write(r.dev, 0x100000 + 3 * PG, "a", 1) == 0);
	CU_ASSERT(ksim_dma_write(r.dev, 0x100000 + 18 * PG, "a", 1) == 0);
	CU_ASSERT(ksim_dma_write(r.dev, 0x100000 + 19 * PG, "a", 1) == 0);
	/* 12 pages from page 8: 12 bits, 2 bytes; ORed, never cleared. */
	memset(buf, 0xa5, sizeof(buf));
	CU_ASSERT(get_dirty(r.fd, r.hwpt, 0x100000 + 8 * PG, 12 * PG, PG, 0,
			    buf + 1) == 0);
	CU_ASSERT(buf[0] == 0xa5);
	CU_ASSERT(buf[1] == 0xa5);                  /* bits 0..7 */
	CU_ASSERT(buf[2] == (0xa5 | 0x08 | 0x04));  /* bits 10, 11 */
	CU_ASSERT(buf[3] == 0xa5 && buf[31] == 0xa5);
	/* Page 3 lay outside: still dirty, not cleared. */
	memset(buf, 0, sizeof(buf));
	CU_ASSERT(get_dirty(r.fd, r.hwpt, 0x100000, 8 * PG, PG, 0,
			    buf + 0xf) == 0);
	CU_ASSERT(buf[0xf] == 0x08 && buf[0x10] == 0);
	rig_down(&r);
}

static void test_no_clear(void)
{
	uint64_t bm[4];
	struct rig r;
	int i;

	sim_new();
	rig_up(&r, 0x100000, 256 * PG);
	CU_ASSERT(ksim_dma_write(r.dev, 0x100000 + 7 * PG, "a", 1) == 0);
	for (i = 0; i < 2; i++) {
		CU_ASSERT(rig_read(&r, NO_CLEAR, bm) == 0);
		CU_ASSERT(count_bits(bm, 256) == 1 && bit(bm, 7));
	}
	CU_ASSERT(rig_read(&r, 0, bm) == 0);
	CU_ASSERT(count_bits(bm, 256) == 1 && bit(bm, 7));
	CU_ASSERT(rig_read(&r, 0, bm) == 0);
	CU_ASSERT(count_bits(bm, 256) == 0);
	rig_down(&r);
}

/* Enabling clears first, every time; nothing is recorded while off. */
static void test_enable_clears(void)
{
	uint64_t bm[4];
	struct rig r;

	sim_new();
	rig_up(&r, 0x100000, 256 * PG);
	CU_ASSERT(ksim_dma_write(r.dev, 0x100000 + PG, "a", 1) == 0);
	CU_ASSERT(set_dirty(r.fd, r.hwpt, true) == 0);
	CU_ASSERT(rig_read(&r, 0, bm) == 0);
	CU_ASSERT(count_bits(bm, 256) == 0);
	CU_ASSERT(set_dirty(r.fd, r.hwpt, false) == 0);
	CU_ASSERT(ksim_dma_write(r.dev, 0x100000 + 2 * PG, "b", 1) == 0);
	CU_ASSERT(r.mem[2 * PG] == 'b');
	CU_ASSERT(set_dirty(r.fd, r.hwpt, true) == 0);
	CU_ASSERT(rig_read(&r, 0, bm) == 0);
	CU_ASSERT(count_bits(bm, 256) == 0);
	rig_down(&r);
}

/* 2 MiB IOPTEs where IOVA and user address are both aligned. */
static void test_huge_iopte(void)
{
	struct ksim_iommufd_device_params small = { .cdev = true,
						    .cdev_index = 1,
						    .dirty_tracking = true,
						    .pgsizes = PG };
	uint64_t bm[1024 / 64 + 1], bm2[8];
	uint32_t ioas2, id2, h2;
	struct rig r;
	int d2;

	sim_new();
	rig_up(&r, 0x40000000, 8 * MiB);
	/* The second half again, 4 KiB off its alignment in user memory. */
	CU_ASSERT(map(r.fd, r.ioas, 0x80000000, 2 * MiB, r.mem + PG) == 0);
	CU_ASSERT(ksim_dma_write(r.dev, 0x40000000 + 2 * MiB + 5, "a", 1) ==
		  0);
	memset(bm, 0, sizeof(bm));
	CU_ASSERT(get_dirty(r.fd, r.hwpt, 0x40000000, 4 * MiB, PG, 0, bm) ==
		  0);
	CU_ASSERT(count_bits(bm, 1024) == 512);
	CU_ASSERT(!bit(bm, 511) && bit(bm, 512) && bit(bm, 1023));
	/* At 2 MiB per bit: one bit. */
	CU_ASSERT(ksim_dma_write(r.dev, 0x40000000 + 6 * MiB, "a", 1) == 0);
	memset(bm, 0, sizeof(bm));
	CU_ASSERT(get_dirty(r.fd, r.hwpt, 0x40000000, 8 * MiB, 2 * MiB, 0,
			    bm) == 0);
	CU_ASSERT(count_bits(bm, 4) == 1 && bit(bm, 3));
	/* Misaligned user memory: 4 KiB IOPTEs, an exact page. */
	CU_ASSERT(ksim_dma_write(r.dev, 0x80000000 + MiB, "b", 1) == 0);
	memset(bm, 0, sizeof(bm));
	CU_ASSERT(get_dirty(r.fd, r.hwpt, 0x80000000, 2 * MiB, PG, 0, bm) ==
		  0);
	CU_ASSERT(count_bits(bm, 512) == 1 && bit(bm, 256));
	/* An IOMMU without 2 MiB pages maps the same memory with 4 KiB. */
	dev_add_p("0000:02:00.0", -1, &small);
	ioas2 = ioas_alloc(r.fd);
	d2 = open_bound(1, r.fd, &id2);
	CU_ASSERT(map(r.fd, ioas2, 0x40000000, 2 * MiB, r.mem) == 0);
	CU_ASSERT(hwpt_alloc(r.fd, id2, ioas2, DIRTY, &h2) == 0);
	CU_ASSERT(attach(d2, h2, NULL) == 0);
	CU_ASSERT(set_dirty(r.fd, h2, true) == 0);
	CU_ASSERT(ksim_dma_write(ksim_device_find(K, "0000:02:00.0"),
				 0x40000000 + 5, "c", 1) == 0);
	memset(bm2, 0, sizeof(bm2));
	CU_ASSERT(get_dirty(r.fd, h2, 0x40000000, 2 * MiB, PG, 0, bm2) == 0);
	CU_ASSERT(count_bits(bm2, 512) == 1 && bit(bm2, 0));
	rig_down(&r);
}

/* The mock's 2 KiB IOPTEs, read at 2 KiB, 4 KiB and 1 KiB. */
static void test_mock_granule(void)
{
	struct ksim_iommufd_device_params mp = { .cdev = true,
						 .model = KSIM_IOMMU_MOCK,
						 .dirty_tracking = true };
	struct ksim_iommufd_device_params hp = mp;
	uint8_t *mem = vmig_test_guest_mem(4 * MiB, 2 * MiB);
	uint64_t bm[64];
	uint32_t ioas, devid, hwpt, hid, hh;
	struct ksim_device *d, *hd;
	int fd, dfd, hfd;

	sim_new();
	d = dev_add_p("mock:0", -1, &mp);
	hp.cdev_index = 1;
	hp.mock_huge_iova = true;
	hd = dev_add_p("mock:1", -1, &hp);
	fd = iommufd();
	ioas = ioas_alloc(fd);
	dfd = open_bound(0, fd, &devid);
	CU_ASSERT(hwpt_alloc(fd, devid, ioas, DIRTY, &hwpt) == 0);
	CU_ASSERT(attach(dfd, hwpt, NULL) == 0);
	CU_ASSERT(map(fd, ioas, 0x1000000, 64 * 1024, mem) == 0);
	CU_ASSERT(alignment_of(fd, ioas) == K2);
	CU_ASSERT(set_dirty(fd, hwpt, true) == 0);
	CU_ASSERT(ksim_dma_write(d, 0x1000000 + 0x2800, "a", 1) == 0);
	memset(bm, 0, sizeof(bm));
	CU_ASSERT(get_dirty(fd, hwpt, 0x1000000, 64 * 1024, K2, NO_CLEAR,
			    bm) == 0);
	CU_ASSERT(count_bits(bm, 32) == 1 && bit(bm, 5));
	memset(bm, 0, sizeof(bm));
	CU_ASSERT(get_dirty(fd, hwpt, 0x1000000, 64 * 1024, PG, NO_CLEAR,
			    bm) == 0);
	CU_ASSERT(count_bits(bm, 16) == 1 && bit(bm, 2));
	memset(bm, 0, sizeof(bm));
	CU_ASSERT(get_dirty(fd, hwpt, 0x1000000, 64 * 1024, 1024, 0, bm) ==
		  0);
	CU_ASSERT(count_bits(bm, 64) == 2 && bit(bm, 10) && bit(bm, 11));
	/* A 2 KiB range is readable: the IOAS alignment is 2 KiB. */
	CU_ASSERT(ksim_dma_write(d, 0x1000000 + 0x3800, "a", 2) == 0);
	memset(bm, 0, sizeof(bm));
	CU_ASSERT(get_dirty(fd, hwpt, 0x1000000 + 0x3800, K2, K2, 0, bm) ==
		  0);
	CU_ASSERT(bit(bm, 0));
	/* HUGE_IOVA: 1 MiB IOPTEs where 1 MiB aligned. */
	hfd = open_bound(1, fd, &hid);
	CU_ASSERT(unmap(fd, ioas, 0, UINT64_MAX, NULL) == 0);
	CU_ASSERT(map(fd, ioas, 0x1000000, 2 * MiB, mem) == 0);
	CU_ASSERT(hwpt_alloc(fd, hid, ioas, DIRTY, &hh) == 0);
	CU_ASSERT(attach(hfd, hh, NULL) == 0);
	CU_ASSERT(set_dirty(fd, hh, true) == 0);
	CU_ASSERT(ksim_dma_write(hd, 0x1000000 + MiB + 0x800, "h", 1) == 0);
	memset(bm, 0, sizeof(bm));
	CU_ASSERT(get_dirty(fd, hh, 0x1000000, 2 * MiB, K2, 0, bm) == 0);
	CU_ASSERT(count_bits(bm, 1024) == 512 && bit(bm, 512) &&
		  bit(bm, 1023));
	/* The non-huge device's HWPT saw nothing of it. */
	memset(bm, 0, sizeof(bm));
	CU_ASSERT(get_dirty(fd, hwpt, 0x1000000, 2 * MiB, K2, 0, bm) == 0);
	CU_ASSERT(count_bits(bm, 1024) == 0);
	sim_free();
	free(mem);
}

/*
 * A range that crosses a hole: the walk stops at the gap and the ioctl
 * still succeeds; later mappings are neither reported nor cleared. A
 * range that starts in a hole reports nothing at all.
 */
static void test_pitfall_hole(void)
{
	uint64_t bm[8];
	struct rig r;

	sim_new();
	rig_up(&r, 0x100000, 16 * PG);
	CU_ASSERT(map(r.fd, r.ioas, 0x200000, 16 * PG, r.mem) == 0);
	CU_ASSERT(ksim_dma_write(r.dev, 0x100000 + PG, "a", 1) == 0);
	CU_ASSERT(ksim_dma_write(r.dev, 0x200000 + 2 * PG, "b", 1) == 0);
	memset(bm, 0, sizeof(bm));
	CU_ASSERT(get_dirty(r.fd, r.hwpt, 0x100000, 0x110000, PG, 0, bm) ==
		  0);
	CU_ASSERT(count_bits(bm, 272) == 1 && bit(bm, 1));
	CU_ASSERT(!bit(bm, 258)); /* the write beyond the hole: lost here */
	memset(bm, 0, sizeof(bm));
	CU_ASSERT(get_dirty(r.fd, r.hwpt, 0x180000, 0x90000, PG, 0, bm) == 0);
	CU_ASSERT(count_bits(bm, 144) == 0);
	/* Still there for a read of its own mapping. */
	memset(bm, 0, sizeof(bm));
	CU_ASSERT(get_dirty(r.fd, r.hwpt, 0x200000, 16 * PG, PG, 0, bm) == 0);
	CU_ASSERT(count_bits(bm, 16) == 1 && bit(bm, 2));
	rig_down(&r);
}

/* Reading while tracking is off: success, nothing written. */
static void test_pitfall_tracking_off(void)
{
	uint8_t buf[32];
	struct rig r;

	sim_new();
	rig_up(&r, 0x100000, 256 * PG);
	CU_ASSERT(ksim_dma_write(r.dev, 0x100000 + PG, "a", 1) == 0);
	CU_ASSERT(set_dirty(r.fd, r.hwpt, false) == 0);
	memset(buf, 0x5a, sizeof(buf));
	CU_ASSERT(get_dirty(r.fd, r.hwpt, 0x100000, 256 * PG, PG, 0, buf) ==
		  0);
	CU_ASSERT(buf[0] == 0x5a && buf[31] == 0x5a);
	rig_down(&r);
}

/*
 * A bitmap that cannot be written: success, no bits, and the dirty bits
 * read are cleared all the same (lost) unless NO_CLEAR.
 */
static void test_pitfall_bad_bitmap(void)
{
	uint64_t bm[4];
	struct rig r;

	sim_new();
	rig_up(&r, 0x100000, 256 * PG);
	CU_ASSERT(ksim_dma_write(r.dev, 0x100000 + 4 * PG, "a", 1) == 0);
	CU_ASSERT(get_dirty(r.fd, r.hwpt, 0x100000, 256 * PG, PG, NO_CLEAR,
			    (void *)0x1000) == 0);
	CU_ASSERT(rig_read(&r, NO_CLEAR, bm) == 0);
	CU_ASSERT(bit(bm, 4));
	CU_ASSERT(get_dirty(r.fd, r.hwpt, 0x100000, 256 * PG, PG, 0,
			    (void *)0x1000) == 0);
	CU_ASSERT(rig_read(&r, 0, bm) == 0);
	CU_ASSERT(count_bits(bm, 256) == 0);
	rig_down(&r);
}

/*
 * The drivers walk from the request's start by the size of the IOPTE
 * found there: a read that starts inside a huge IOPTE reports the next
 * one shifted and misses (and clears) writes in its first part.
 */
static void test_pitfall_mid_iopte(void)
{
	uint64_t bm[1024 / 64];
	struct rig r;

	sim_new();
	rig_up(&r, 0x40000000, 4 * MiB);
	CU_ASSERT(ksim_dma_write(r.dev, 0x40000000 + 2 * MiB, "a", 1) == 0);
	memset(bm, 0, sizeof(bm));
	CU_ASSERT(get_dirty(r.fd, r.hwpt, 0x40000000 + MiB, 3 * MiB, PG, 0,
			    bm) == 0);
	CU_ASSERT(!bit(bm, 256)); /* where the write was */
	CU_ASSERT(count_bits(bm, 768) == 256 && bit(bm, 512) && bit(bm, 767));
	CU_ASSERT(rig_read(&r, 0, bm) == 0);
	CU_ASSERT(count_bits(bm, 1024) == 0);
	rig_down(&r);
}

/* ------------------------------------------------------------------ */
/* The selftest mock (4)                                               */

/* The check helper of 4.5 (_test_mock_dirty_bitmaps), bit by bit. */
static void mock_check(int fd, uint32_t hwpt, uint64_t len, uint64_t iova,
		       uint64_t pte_size, uint8_t *bitmap, uint64_t nbits,
		       uint32_t flags)
{
	uint64_t npte = pte_size / K2, pteset = 2 * npte;
	uint64_t nr = nbits / pteset ? nbits / pteset : 1, out = 0, i, j;
	size_t bytes = (nbits + 7) / 8;
	bool ok = true;

	memset(bitmap, 0, bytes);
	for (i = 0; i < nbits; i += pteset)
		bitmap[i / 8] |= (uint8_t)(1u << (i % 8));
	CU_ASSERT(test_dirty(fd, hwpt, iova, len, K2, bitmap, &out) == 0);
	CU_ASSERT(out == nr);
	memset(bitmap, 0, bytes);
	CU_ASSERT(get_dirty(fd, hwpt, iova, len, K2, flags, bitmap) == 0);
	for (i = 0; i < nbits; i += pteset)
		for (j = 0; j < pteset; j++)
			ok &= bit(bitmap, i + j) == (j < npte);
	CU_ASSERT(ok);
	memset(bitmap, 0, bytes);
	CU_ASSERT(get_dirty(fd, hwpt, iova, len, K2, flags, bitmap) == 0);
	ok = true;
	for (i = 0; i < nbits; i += pteset)
		for (j = 0; j < pteset; j++)
			ok &= bit(bitmap, i + j) ==
			      ((j < npte) && (flags & NO_CLEAR));
	CU_ASSERT(ok);
}

/* The fixture iommufd_dirty_tracking and get_dirty_bitmap(_no_clear). */
static void mock_variant(uint64_t buffer_size, bool huge, uint32_t flags)
{
	uint64_t nbits = buffer_size / K2;
	size_t bsize = (nbits + 7) / 8 + PG;
	uint32_t ioas, ioas2, stdev, hwpt, idev, h;
	uint8_t *buf = vmig_test_guest_mem(buffer_size, 2 * MiB);
	uint8_t *bitmap = vmig_test_guest_mem(bsize, PG);
	uint64_t offs[3] = { 0, K2, 0xff1 };
	int fd, i;

	sim_new();
	fd = iommufd();
	ioas = ioas_alloc(fd);
	CU_ASSERT_FATAL(mock_domain(fd, ioas,
				    VK_IOMMU_TEST_OP_MOCK_DOMAIN_FLAGS,
				    huge ? VK_MOCK_FLAGS_DEVICE_HUGE_IOVA : 0,
				    &stdev, &hwpt, &idev) == 0);
	ioas2 = ioas_alloc(fd);
	CU_ASSERT(map(fd, ioas2, VK_MOCK_APERTURE_START, buffer_size, buf) ==
		  0);
	CU_ASSERT_FATAL(hwpt_alloc(fd, idev, ioas2, DIRTY, &h) == 0);
	CU_ASSERT(set_dirty(fd, h, true) == 0);
	for (i = 0; i < 3; i++)
		mock_check(fd, h, buffer_size, VK_MOCK_APERTURE_START,
			   huge ? VK_MOCK_HUGE_PAGE_SIZE : K2,
			   bitmap + offs[i], nbits, flags);
	CU_ASSERT(destroy(fd, h) == 0);
	sim_free();
	free(buf);
	free(bitmap);
}

static void test_mock_selftest_sequence(void)
{
	static const uint64_t sizes[] = { 8 * 1024, 16 * 1024, 64 * 1024,
					  128 * 1024, 320 * 1024, 64 * MiB,
					  128 * MiB };
	size_t i;

	for (i = 0; i < sizeof(sizes) / sizeof(sizes[0]); i++) {
		mock_variant(sizes[i], false, 0);
		mock_variant(sizes[i], false, NO_CLEAR);
		if (sizes[i] >= 64 * MiB) {
			mock_variant(sizes[i], true, 0);
			mock_variant(sizes[i], true, NO_CLEAR);
		}
	}
}

static void test_mock_errnos(void)
{
	uint64_t raw[10];
	uint8_t bm[64] = { 1 };
	uint32_t ioas, ioas3, stdev, hwpt, idev, dh, ih, idd;
	uint8_t *mem = vmig_test_guest_mem(64 * 1024, PG);
	uint64_t nr;
	int fd;

	sim_new();
	dev_add("0000:01:00.0", KSIM_DEV_PCI, -1, 0, true);
	fd = iommufd();
	ioas = ioas_alloc(fd);
	/* IDs in the kernel's order: stdev, idev, then the auto HWPT. */
	CU_ASSERT(mock_domain(fd, ioas, VK_IOMMU_TEST_OP_MOCK_DOMAIN, 0,
			      &stdev, &hwpt, &idev) == 0);
	CU_ASSERT(stdev == 2 && idev == 3 && hwpt == 4);
	/* Size and op. */
	memset(raw, 0, sizeof(raw));
	*(uint32_t *)raw = 67;
	CU_ASSERT(xioctl(fd, VK_IOMMU_TEST_CMD, raw) == -EINVAL);
	*(uint32_t *)raw = 80;
	((uint32_t *)raw)[1] = 99;
	CU_ASSERT(xioctl(fd, VK_IOMMU_TEST_CMD, raw) == -EOPNOTSUPP);
	raw[9] = 1;
	CU_ASSERT(xioctl(fd, VK_IOMMU_TEST_CMD, raw) == -E2BIG);
	/* MOCK_DOMAIN's target; failures leave no IDs behind. */
	CU_ASSERT(mock_domain(fd, 99, VK_IOMMU_TEST_OP_MOCK_DOMAIN, 0, NULL,
			      NULL, NULL) == -ENOENT);
	CU_ASSERT(mock_domain(fd, idev, VK_IOMMU_TEST_OP_MOCK_DOMAIN, 0, NULL,
			      NULL, NULL) == -EINVAL);
	CU_ASSERT(mock_domain(fd, ioas, VK_IOMMU_TEST_OP_MOCK_DOMAIN_FLAGS, 4,
			      NULL, NULL, NULL) == -EINVAL);
	/* Plain MOCK_DOMAIN does not read dev_flags. */
	CU_ASSERT(mock_domain(fd, ioas, VK_IOMMU_TEST_OP_MOCK_DOMAIN, 4, NULL,
			      &ih, NULL) == 0);
	CU_ASSERT(ih == hwpt); /* the same automatic domain */
	ioas3 = ioas_alloc(fd);
	CU_ASSERT(ioas3 == 7);
	/* The mock aperture. */
	CU_ASSERT(map(fd, ioas, 0, PG, mem) == -EINVAL);
	CU_ASSERT(map(fd, ioas, 0x80000000, PG, mem) == -EINVAL);
	CU_ASSERT(map(fd, ioas, 0xfff000, 2 * PG, mem) == -EINVAL);
	CU_ASSERT(map(fd, ioas, 0x1000000, 64 * 1024, mem) == 0);
	/* IOMMU_TEST_OP_DIRTY: its checks in order. */
	CU_ASSERT(hwpt_alloc(fd, idev, ioas, DIRTY, &dh) == 0);
	CU_ASSERT(test_dirty(fd, 99, 0x1000000, 0, K2, bm, NULL) == -EINVAL);
	CU_ASSERT(test_dirty(fd, 99, 0x1000000, PG, 0, bm, NULL) == -EINVAL);
	CU_ASSERT(test_dirty(fd, 99, 0x1000800, PG, PG, bm, NULL) == -EINVAL);
	CU_ASSERT(test_dirty(fd, 99, 0x1000000, 3 * K2, PG, bm, NULL) ==
		  -EINVAL);
	CU_ASSERT(test_dirty(fd, 99, 0x1000000, PG, K2, NULL, NULL) ==
		  -EINVAL);
	CU_ASSERT(test_dirty(fd, 99, 0, ((1ull << 27) + 1) * K2, K2, bm,
			     NULL) == -EOVERFLOW);
	CU_ASSERT(test_dirty(fd, 99, 0x1000000, PG, K2, bm, NULL) == -ENOENT);
	CU_ASSERT(test_dirty(fd, ioas, 0x1000000, PG, K2, bm, NULL) ==
		  -ENOENT);
	open_bound(0, fd, &idd);
	CU_ASSERT(hwpt_alloc(fd, idd, ioas3, DIRTY, &ih) == 0);
	CU_ASSERT(set_dirty(fd, ih, true) == 0);
	CU_ASSERT(test_dirty(fd, ih, 0x1000000, PG, K2, bm, NULL) == -EINVAL);
	CU_ASSERT(test_dirty(fd, hwpt, 0x1000000, PG, K2, bm, NULL) ==
		  -EINVAL); /* the automatic domain cannot track */
	CU_ASSERT(test_dirty(fd, dh, 0x1000000, PG, K2, bm, NULL) == -EINVAL);
	CU_ASSERT(set_dirty(fd, dh, true) == 0);
	CU_ASSERT(test_dirty(fd, dh, 0x1000000, PG, K2, (void *)0x1000,
			     NULL) == -EFAULT);
	CU_ASSERT(test_dirty(fd, dh, 0x1000000, 4 * K2, K2, bm, &nr) == 0);
	CU_ASSERT(nr == 1);
	/* Slots outside a mapping are not marked. */
	CU_ASSERT(test_dirty(fd, dh, 0x1000000 + 64 * 1024 - K2, 2 * K2, K2,
			     (uint8_t[]){ 3 }, &nr) == 0);
	CU_ASSERT(nr == 1);
	/* The slot index is iova / page_size: wrong unless 2 KiB. */
	CU_ASSERT(test_dirty(fd, dh, 0x1000000, PG, PG, bm, &nr) == 0);
	CU_ASSERT(nr == 0);
	/* Destroying the stdev detaches, unbinds and removes the device. */
	CU_ASSERT(destroy(fd, idev) == -EBUSY);
	CU_ASSERT(destroy(fd, dh) == 0);
	CU_ASSERT(destroy(fd, stdev) == 0);
	CU_ASSERT(destroy(fd, stdev) == -ENOENT);
	CU_ASSERT(hwpt_alloc(fd, idev, ioas, 0, NULL) == -ENOENT);
	/* The other mock device still holds the automatic domain. */
	CU_ASSERT(destroy(fd, hwpt) == -EBUSY);
	sim_free();
	free(mem);
}

/* enforce_dirty, device_dirty_capability, set_dirty_tracking (4.5). */
static void test_mock_enforce(void)
{
	struct vk_iommu_hw_info h = { .size = sizeof(h) };
	uint32_t ioas, idev, nd_idev, dh, hwpt;
	int fd;

	sim_new();
	fd = iommufd();
	ioas = ioas_alloc(fd);
	CU_ASSERT(mock_domain(fd, ioas, VK_IOMMU_TEST_OP_MOCK_DOMAIN, 0, NULL,
			      NULL, &idev) == 0);
	CU_ASSERT(hwpt_alloc(fd, idev, ioas, DIRTY, &dh) == 0);
	CU_ASSERT(mock_domain(fd, dh, VK_IOMMU_TEST_OP_MOCK_DOMAIN_FLAGS,
			      VK_MOCK_FLAGS_DEVICE_NO_DIRTY, NULL, NULL,
			      NULL) == -EINVAL);
	CU_ASSERT(mock_domain(fd, ioas, VK_IOMMU_TEST_OP_MOCK_DOMAIN_FLAGS,
			      VK_MOCK_FLAGS_DEVICE_NO_DIRTY, NULL, NULL,
			      &nd_idev) == 0);
	CU_ASSERT(hwpt_alloc(fd, nd_idev, ioas, DIRTY, NULL) == -EOPNOTSUPP);
	h.dev_id = idev;
	CU_ASSERT(xioctl(fd, VK_IOMMU_GET_HW_INFO, &h) == 0);
	CU_ASSERT(h.out_capabilities & VK_IOMMU_HW_CAP_DIRTY_TRACKING);
	h.dev_id = nd_idev;
	CU_ASSERT(h.data_len == 8); /* in/out: the length came back */
	CU_ASSERT(xioctl(fd, VK_IOMMU_GET_HW_INFO, &h) == -EFAULT);
	h.data_len = 0;
	CU_ASSERT(xioctl(fd, VK_IOMMU_GET_HW_INFO, &h) == 0);
	CU_ASSERT(!(h.out_capabilities & VK_IOMMU_HW_CAP_DIRTY_TRACKING));
	/* A device attached to a dirty HWPT; tracking on and off. */
	CU_ASSERT(mock_domain(fd, dh, VK_IOMMU_TEST_OP_MOCK_DOMAIN, 0, NULL,
			      &hwpt, NULL) == 0);
	CU_ASSERT(hwpt == dh);
	CU_ASSERT(set_dirty(fd, dh, true) == 0);
	CU_ASSERT(set_dirty(fd, dh, false) == 0);
	/* Closing the fd with mock devices in it frees everything. */
	CU_ASSERT(xclose(fd) == 0);
	sim_free();
}

static int mock_replace(int fd, uint32_t stdev, uint32_t *pt_id)
{
	struct vk_iommu_test_cmd c = {
		.size = sizeof(c),
		.op = VK_IOMMU_TEST_OP_MOCK_DOMAIN_REPLACE,
		.id = stdev,
	};
	int ret;

	c.mock_domain_replace.pt_id = *pt_id;
	ret = xioctl(fd, VK_IOMMU_TEST_CMD, &c);
	*pt_id = c.mock_domain_replace.pt_id;
	return ret;
}

/*
 * MOCK_DOMAIN_REPLACE moves a mock device to a HWPT (or an IOAS's auto
 * domain) with replace semantics: the way to put a mock device on a
 * dirty-tracking HWPT, which the NO_DIRTY one may not join.
 */
static void test_mock_replace(void)
{
	uint32_t ioas, stdev, nd_stdev, idev, auto_hwpt, dh, pt;
	int fd;

	sim_new();
	fd = iommufd();
	ioas = ioas_alloc(fd);
	CU_ASSERT(mock_domain(fd, ioas, VK_IOMMU_TEST_OP_MOCK_DOMAIN, 0,
			      &stdev, &auto_hwpt, &idev) == 0);
	CU_ASSERT(mock_domain(fd, ioas, VK_IOMMU_TEST_OP_MOCK_DOMAIN_FLAGS,
			      VK_MOCK_FLAGS_DEVICE_NO_DIRTY, &nd_stdev, NULL,
			      NULL) == 0);
	CU_ASSERT(hwpt_alloc(fd, idev, ioas, DIRTY, &dh) == 0);
	pt = dh;
	CU_ASSERT(mock_replace(fd, stdev, &pt) == 0);
	CU_ASSERT_EQUAL(pt, dh);
	/* The NO_DIRTY device cannot join the dirty HWPT. */
	pt = dh;
	CU_ASSERT(mock_replace(fd, nd_stdev, &pt) == -EINVAL);
	/* Back to the IOAS: an auto domain again (reused, as the kernel). */
	pt = ioas;
	CU_ASSERT(mock_replace(fd, stdev, &pt) == 0);
	CU_ASSERT(pt != dh && pt != ioas);
	/* Not a selftest object: ENOENT. */
	pt = dh;
	CU_ASSERT(mock_replace(fd, ioas, &pt) == -ENOENT);
	pt = dh;
	CU_ASSERT(mock_replace(fd, 999, &pt) == -ENOENT);
	CU_ASSERT(xclose(fd) == 0);
	sim_free();
}

/* ------------------------------------------------------------------ */
/* VFIO device cdevs (2.10)                                            */

static void test_cdev_bind(void)
{
	struct vk_vfio_device_bind_iommufd b;
	struct vfio_device_info info = { .argsz = sizeof(info) };
	uint32_t id0, id1;
	int fd, d0, d0b, d2, gfd, cfd, p[2], spare;

	sim_new();
	dev_add("0000:01:00.0", KSIM_DEV_PCI, 3, 0, true);
	dev_add("0000:02:00.0", KSIM_DEV_PCI, -1, 1, true);
	dev_add("0000:03:00.0", KSIM_DEV_PCI, 4, 2, true);
	fd = iommufd();
	d0 = cdev_open(0);
	/* Nothing but BIND before binding. */
	CU_ASSERT(xioctl(d0, VFIO_DEVICE_GET_INFO, &info) == -EINVAL);
	CU_ASSERT(attach(d0, 1, NULL) == -EINVAL);
	CU_ASSERT(detach(d0) == -EINVAL);
	CU_ASSERT(xioctl(d0, VFIO_DEVICE_FEATURE, NULL) == -EINVAL);
	CU_ASSERT(xioctl(d0, VK_VFIO_DEVICE_BIND_IOMMUFD, NULL) == -EFAULT);
	b = (struct vk_vfio_device_bind_iommufd){ .argsz = 15, .iommufd = fd };
	CU_ASSERT(xioctl(d0, VK_VFIO_DEVICE_BIND_IOMMUFD, &b) == -EINVAL);
	b.argsz = 16;
	b.flags = 1;
	CU_ASSERT(xioctl(d0, VK_VFIO_DEVICE_BIND_IOMMUFD, &b) == -EINVAL);
	CU_ASSERT(bind(d0, -1, NULL) == -EINVAL);
	spare = dup(0);
	CU_ASSERT_FATAL(spare >= 0);
	close(spare);
	CU_ASSERT(bind(d0, spare, NULL) == -EBADF);
	cfd = xopen("/dev/vfio/vfio");
	CU_ASSERT(bind(d0, cfd, NULL) == -EBADFD);
	CU_ASSERT_FATAL(pipe(p) == 0);
	CU_ASSERT(bind(d0, p[0], NULL) == -EBADFD);
	close(p[0]);
	close(p[1]);
	CU_ASSERT(bind(d0, fd, &id0) == 0);
	CU_ASSERT(id0 == 1);
	/* Bound: the device's other ioctls answer. */
	CU_ASSERT(xioctl(d0, VFIO_DEVICE_GET_INFO, &info) == 0);
	CU_ASSERT(info.flags & VFIO_DEVICE_FLAGS_PCI);
	/* Once per fd, once per device. */
	CU_ASSERT(bind(d0, fd, NULL) == -EINVAL);
	d0b = cdev_open(0);
	CU_ASSERT(bind(d0b, fd, NULL) == -EINVAL);
	/* The bound cdev blocks its VFIO group. */
	CU_ASSERT(xopen("/dev/vfio/3") == -EBUSY);
	/* A device without a VFIO group. */
	open_bound(1, fd, &id1);
	CU_ASSERT(id1 == 2);
	/* An open group file blocks the cdev. */
	gfd = xopen("/dev/vfio/4");
	CU_ASSERT_FATAL(gfd >= 0);
	d2 = cdev_open(2);
	CU_ASSERT(bind(d2, fd, NULL) == -EBUSY);
	CU_ASSERT(xclose(gfd) == 0);
	CU_ASSERT(bind(d2, fd, NULL) == 0);
	/* Closing the bound fd unbinds: the group opens, the device binds. */
	CU_ASSERT(xclose(d0) == 0);
	gfd = xopen("/dev/vfio/3");
	CU_ASSERT(gfd >= 0);
	CU_ASSERT(xclose(gfd) == 0);
	CU_ASSERT(bind(d0b, fd, &id0) == 0);
	CU_ASSERT(id0 == 1); /* the lowest free ID again */
	sim_free();
}

/* BIND on a group's device fd; cdev ioctls there are not known. */
static void test_cdev_group_fd(void)
{
	int cfd, gfd, dfd, fd;

	sim_new();
	dev_add("0000:01:00.0", KSIM_DEV_PCI, 6, 0, true);
	fd = iommufd();
	cfd = xopen("/dev/vfio/vfio");
	gfd = xopen("/dev/vfio/6");
	CU_ASSERT_FATAL(xioctl(gfd, VFIO_GROUP_SET_CONTAINER, &cfd) == 0);
	CU_ASSERT_FATAL(xioctl(cfd, VFIO_SET_IOMMU,
			       (void *)(uintptr_t)VFIO_TYPE1v2_IOMMU) == 0);
	dfd = xioctl(gfd, VFIO_GROUP_GET_DEVICE_FD, "0000:01:00.0");
	CU_ASSERT_FATAL(dfd >= 0);
	CU_ASSERT(bind(dfd, fd, NULL) == -EINVAL);
	CU_ASSERT(attach(dfd, 1, NULL) == -ENOTTY);
	CU_ASSERT(detach(dfd) == -ENOTTY);
	/* Its cdev can be opened, but the open group blocks the bind. */
	CU_ASSERT(bind(cdev_open(0), fd, NULL) == -EBUSY);
	sim_free();
}

static void test_cdev_attach_detach(void)
{
	struct vk_vfio_device_attach_iommufd_pt a;
	struct vk_vfio_device_detach_iommufd_pt dt;
	struct ksim_device *d;
	uint8_t *mem = vmig_test_guest_mem(16 * PG, PG);
	uint32_t ioas, devid, x, e, out;
	int fd, dfd;

	sim_new();
	d = dev_add("0000:01:00.0", KSIM_DEV_PCI, -1, 0, true);
	fd = iommufd();
	ioas = ioas_alloc(fd);
	CU_ASSERT(map(fd, ioas, 0x100000, 16 * PG, mem) == 0);
	dfd = open_bound(0, fd, &devid);
	/* Not attached: no DMA. */
	CU_ASSERT(ksim_dma_write(d, 0x100000, "a", 1) == -ENODEV);
	a = (struct vk_vfio_device_attach_iommufd_pt){ .argsz = 11,
						       .pt_id = ioas };
	CU_ASSERT(xioctl(dfd, VK_VFIO_DEVICE_ATTACH_IOMMUFD_PT, &a) ==
		  -EINVAL);
	a.argsz = 12;
	a.flags = 1;
	CU_ASSERT(xioctl(dfd, VK_VFIO_DEVICE_ATTACH_IOMMUFD_PT, &a) ==
		  -EINVAL);
	CU_ASSERT(xioctl(dfd, VK_VFIO_DEVICE_ATTACH_IOMMUFD_PT, NULL) ==
		  -EFAULT);
	CU_ASSERT(attach(dfd, 99, NULL) == -ENOENT);
	CU_ASSERT(attach(dfd, devid, NULL) == -EINVAL);
	CU_ASSERT(attach(dfd, ioas, &x) == 0);
	CU_ASSERT(x != ioas);
	CU_ASSERT(ksim_dma_write(d, 0x100000 + 5, "a", 1) == 0);
	CU_ASSERT(mem[5] == 'a');
	CU_ASSERT(ksim_dma_write(d, 0x200000, "a", 1) == -EFAULT);
	CU_ASSERT(ksim_faults(K) == 1);
	/* Detach: argsz and flags, then done even when not attached. */
	dt = (struct vk_vfio_device_detach_iommufd_pt){ .argsz = 7 };
	CU_ASSERT(xioctl(dfd, VK_VFIO_DEVICE_DETACH_IOMMUFD_PT, &dt) ==
		  -EINVAL);
	dt.argsz = 8;
	dt.flags = 1;
	CU_ASSERT(xioctl(dfd, VK_VFIO_DEVICE_DETACH_IOMMUFD_PT, &dt) ==
		  -EINVAL);
	CU_ASSERT(detach(dfd) == 0);
	CU_ASSERT(ksim_dma_write(d, 0x100000, "a", 1) == -ENODEV);
	CU_ASSERT(detach(dfd) == 0);
	/* Attach to a HWPT, then replace with the IOAS. */
	CU_ASSERT(hwpt_alloc(fd, devid, ioas, DIRTY, &e) == 0);
	CU_ASSERT(attach(dfd, e, &out) == 0);
	CU_ASSERT(out == e && where(d, 0).pt_id == e);
	CU_ASSERT(attach(dfd, ioas, &out) == 0);
	CU_ASSERT(where(d, 0).auto_domain && where(d, 0).pt_id == out);
	CU_ASSERT(destroy(fd, e) == 0);
	sim_free();
	free(mem);
}

/* The iommufd lives on while a device is bound; closes release all. */
static void test_cdev_close_releases(void)
{
	int before = vmig_test_count_fds(), fd, dfd;
	uint8_t *mem = vmig_test_guest_mem(16 * PG, PG);
	struct ksim_device *d;
	uint32_t ioas, devid;

	CU_ASSERT_FATAL(before > 0);
	sim_new();
	d = dev_add("0000:01:00.0", KSIM_DEV_PCI, 2, 0, true);
	fd = iommufd();
	ioas = ioas_alloc(fd);
	CU_ASSERT(map(fd, ioas, 0x100000, 16 * PG, mem) == 0);
	dfd = open_bound(0, fd, &devid);
	CU_ASSERT(attach(dfd, ioas, NULL) == 0);
	CU_ASSERT(xclose(fd) == 0);
	/* The binding holds the context: the device keeps working. */
	CU_ASSERT(ksim_dma_write(d, 0x100000, "a", 1) == 0);
	CU_ASSERT(detach(dfd) == 0);
	CU_ASSERT(attach(dfd, ioas, NULL) == 0);
	CU_ASSERT(vmig_test_count_fds() == before + 1);
	CU_ASSERT(xclose(dfd) == 0);
	CU_ASSERT(!where(d, 0).bound);
	CU_ASSERT(ksim_dma_write(d, 0x100000, "a", 1) == -ENODEV);
	CU_ASSERT(vmig_test_count_fds() == before);
	/* ksim_free closes what is left open, in any state. */
	fd = iommufd();
	dfd = open_bound(0, fd, NULL);
	CU_ASSERT(attach(dfd, ioas_alloc(fd), NULL) == 0);
	sim_free();
	CU_ASSERT(vmig_test_count_fds() == before);
	free(mem);
}

static void test_hot_unplug_bound(void)
{
	struct vk_iommu_hw_info h = { .size = sizeof(h) };
	struct ksim_iommufd_attachment at;
	struct ksim_device *m, *a;
	uint32_t x, accid, adev;
	struct rig r;
	int mfd, afd;

	sim_new();
	rig_up(&r, 0x100000, 16 * PG);
	m = dev_add("mdev-0", KSIM_DEV_MDEV, -1, 1, false);
	a = dev_add("0000:02:00.0", KSIM_DEV_PCI, 9, 2, false);
	mfd = open_bound(1, r.fd, &accid);
	CU_ASSERT(attach(mfd, r.ioas, NULL) == 0);
	afd = open_bound(2, r.fd, &adev);
	CU_ASSERT(attach(afd, r.ioas, &x) == 0);
	CU_ASSERT(destroy(r.fd, r.hwpt) == -EBUSY);
	/* Unplugging the devices: their bindings go, their fds stay. */
	CU_ASSERT(ksim_device_remove(K, r.dev) == 0);
	CU_ASSERT(ksim_device_remove(K, a) == 0);
	CU_ASSERT(ksim_device_remove(K, m) == 0);
	CU_ASSERT(attach(r.dfd, r.ioas, NULL) == -ENODEV);
	CU_ASSERT(bind(r.dfd, r.fd, NULL) == -ENODEV);
	CU_ASSERT(ksim_dma_write(r.dev, 0x100000, "a", 1) == -ENODEV);
	CU_ASSERT(ksim_iommufd_attachment(r.dev, 0, &at) == -ENOENT);
	h.dev_id = r.devid;
	CU_ASSERT(xioctl(r.fd, VK_IOMMU_GET_HW_INFO, &h) == -ENOENT);
	CU_ASSERT(destroy(r.fd, accid) == -ENOENT);
	CU_ASSERT(destroy(r.fd, x) == -ENOENT);
	CU_ASSERT(destroy(r.fd, r.hwpt) == 0);
	CU_ASSERT(destroy(r.fd, r.ioas) == 0);
	CU_ASSERT(cdev_open(0) == -ENOENT);
	CU_ASSERT(xclose(r.dfd) == 0 && xclose(mfd) == 0 && xclose(afd) == 0);
	/* The group went away with its device. */
	CU_ASSERT(xopen("/dev/vfio/9") == -ENOENT);
	rig_down(&r);
}

/* An mdev binds as an access: IOAS only, invisible to every HWPT. */
static void test_mdev_access(void)
{
	struct vk_iommu_hw_info h = { .size = sizeof(h) };
	struct ksim_device *m;
	uint64_t bm[4];
	uint32_t accid, out, ioas2;
	struct rig r;
	int mfd;

	sim_new();
	rig_up(&r, 0x100000, 256 * PG);
	m = dev_add("mdev-0", KSIM_DEV_MDEV, -1, 5, false);
	mfd = open_bound(5, r.fd, &accid);
	h.dev_id = accid;
	CU_ASSERT(xioctl(r.fd, VK_IOMMU_GET_HW_INFO, &h) == -ENOENT);
	CU_ASSERT(hwpt_alloc(r.fd, accid, r.ioas, 0, NULL) == -ENOENT);
	CU_ASSERT(attach(mfd, r.hwpt, NULL) == -ENOENT);
	CU_ASSERT(ksim_dma_write(m, 0x100000, "m", 1) == -ENODEV);
	CU_ASSERT(attach(mfd, r.ioas, &out) == 0);
	CU_ASSERT(out == r.ioas);
	CU_ASSERT(where(m, 0).pt_id == r.ioas && where(m, 0).dev_id == accid);
	CU_ASSERT(destroy(r.fd, accid) == -EBUSY);
	/* Its writes land in memory and in the truth, not in the HWPT. */
	ksim_truth_drain(K, NULL, NULL);
	CU_ASSERT(ksim_dma_write(m, 0x100000 + 9 * PG + 1, "m", 1) == 0);
	CU_ASSERT(r.mem[9 * PG + 1] == 'm');
	CU_ASSERT(ksim_truth_drain(K, NULL, NULL) == 1);
	CU_ASSERT(rig_read(&r, 0, bm) == 0);
	CU_ASSERT(count_bits(bm, 256) == 0);
	CU_ASSERT(ksim_dma_write(r.dev, 0x100000 + 9 * PG, "p", 1) == 0);
	CU_ASSERT(rig_read(&r, 0, bm) == 0);
	CU_ASSERT(count_bits(bm, 256) == 1 && bit(bm, 9));
	/* Pins, and the unmap that drops them. */
	CU_ASSERT(ksim_pin(m, 0x100000 + 4 * PG, 2) == 0);
	CU_ASSERT(ksim_pin(m, 0x800000, 1) == -ENOENT);
	CU_ASSERT(map(r.fd, r.ioas, 0x900000, PG, r.mem) == 0);
	{
		uint64_t iova = 0xa00000;

		CU_ASSERT(map_ex(r.fd, r.ioas, &iova, PG, r.mem,
				 FIXED | VK_IOMMU_IOAS_MAP_READABLE) == 0);
		CU_ASSERT(ksim_pin(m, 0xa00000, 1) == -EPERM);
	}
	CU_ASSERT(ksim_pin(r.dev, 0x100000, 1) == -EINVAL);
	CU_ASSERT(unmap(r.fd, r.ioas, 0x100000, 256 * PG, NULL) == 0);
	CU_ASSERT(ksim_unpin(m, 0x100000 + 4 * PG, 2) == -EINVAL);
	CU_ASSERT(destroy(r.fd, r.ioas) == -EBUSY);
	/* Moving it to another IOAS. */
	ioas2 = ioas_alloc(r.fd);
	CU_ASSERT(map(r.fd, ioas2, 0x100000, 16 * PG, r.mem) == 0);
	CU_ASSERT(ksim_pin(m, 0x900000, 1) == 0);
	CU_ASSERT(attach(mfd, ioas2, &out) == 0);
	CU_ASSERT(out == ioas2 && alignment_of(r.fd, ioas2) == PG);
	CU_ASSERT(ksim_unpin(m, 0x900000, 1) == -EINVAL);
	CU_ASSERT(ksim_dma_write(m, 0x100000, "n", 1) == 0);
	CU_ASSERT(detach(mfd) == 0);
	CU_ASSERT(alignment_of(r.fd, ioas2) == 1);
	CU_ASSERT(ksim_dma_write(m, 0x100000, "n", 1) == -ENODEV);
	rig_down(&r);
}

/* ------------------------------------------------------------------ */
/* PASID (beyond 6.12)                                                 */

struct pasid_attach {
	uint32_t argsz;
	uint32_t flags;
	uint32_t pt_id;
	uint32_t pasid;
};

struct pasid_detach {
	uint32_t argsz;
	uint32_t flags;
	uint32_t pasid;
};

static int attach_pasid(int dfd, uint32_t pasid, uint32_t pt, uint32_t *out)
{
	struct pasid_attach a = { .argsz = sizeof(a), .flags = 1,
				  .pt_id = pt, .pasid = pasid };
	int ret = xioctl(dfd, VK_VFIO_DEVICE_ATTACH_IOMMUFD_PT, &a);

	if (out)
		*out = a.pt_id;
	return ret;
}

static int detach_pasid(int dfd, uint32_t pasid)
{
	struct pasid_detach d = { .argsz = sizeof(d), .flags = 1,
				  .pasid = pasid };

	return xioctl(dfd, VK_VFIO_DEVICE_DETACH_IOMMUFD_PT, &d);
}

static void test_pasid_off(void)
{
	struct ksim_iommufd_device_params ip = { .cdev = true,
						 .dirty_tracking = true,
						 .max_pasid_log2 = 8 };
	struct ksim_device *d;
	uint32_t ioas;
	int fd, dfd;

	sim_new();
	d = dev_add_p("0000:01:00.0", -1, &ip);
	fd = iommufd();
	ioas = ioas_alloc(fd);
	dfd = open_bound(0, fd, NULL);
	/* 6.12: no PASID attach; any flag is EINVAL. */
	CU_ASSERT(attach_pasid(dfd, 5, ioas, NULL) == -EINVAL);
	CU_ASSERT(detach_pasid(dfd, 5) == -EINVAL);
	CU_ASSERT(ksim_dma_write_pasid(d, 5, 0, "a", 1) == -ENODEV);
	sim_free();
}

/* Keeps a copy of the first write drained. */
static void drain_one(void *opaque, const struct ksim_write *w)
{
	struct ksim_write *out = opaque;

	if (!out->seq)
		*out = *w;
}

static void test_pasid_on(void)
{
	struct ksim_iommufd_device_params ip = { .cdev = true,
						 .dirty_tracking = true,
						 .max_pasid_log2 = 8 };
	struct ksim_iommufd_device_params np = { .cdev = true,
						 .cdev_index = 1,
						 .dirty_tracking = true };
	struct ksim_iommufd_attachment at;
	struct ksim_device *d;
	uint8_t *mem = vmig_test_guest_mem(16 * PG, PG),
		*mem2 = vmig_test_guest_mem(16 * PG, PG);
	struct ksim_write first = { 0 };
	uint64_t bm[4];
	uint32_t ioas, ioas2, devid, main_hwpt, d2, out, x;
	struct pasid_attach pa;
	int fd, dfd, ndfd, mfd;

	sim_new();
	ksim_iommufd_set_pasid_attach(K, true);
	d = dev_add_p("0000:01:00.0", -1, &ip);
	dev_add_p("0000:02:00.0", -1, &np);
	dev_add("mdev-0", KSIM_DEV_MDEV, -1, 2, false);
	fd = iommufd();
	ioas = ioas_alloc(fd);
	ioas2 = ioas_alloc(fd);
	CU_ASSERT(map(fd, ioas, 0x100000, 16 * PG, mem) == 0);
	CU_ASSERT(map(fd, ioas2, 0x100000, 16 * PG, mem2) == 0);
	dfd = open_bound(0, fd, &devid);
	/* Its own DMA through a tracking HWPT of ioas, PASID 5 to ioas2. */
	CU_ASSERT(hwpt_alloc(fd, devid, ioas, DIRTY, &main_hwpt) == 0);
	CU_ASSERT(attach(dfd, main_hwpt, NULL) == 0);
	CU_ASSERT(set_dirty(fd, main_hwpt, true) == 0);
	CU_ASSERT(hwpt_alloc(fd, devid, ioas2, DIRTY, &d2) == 0);
	CU_ASSERT(set_dirty(fd, d2, true) == 0);
	CU_ASSERT(attach_pasid(dfd, 5, d2, &out) == 0);
	CU_ASSERT(out == d2);
	at = where(d, 5);
	CU_ASSERT(at.attached && at.pt_id == d2 && at.ioas_id == ioas2 &&
		  at.tracking);
	CU_ASSERT(where(d, 0).pt_id == main_hwpt);
	/* DMA through the PASID: its memory, the truth, its HWPT only. */
	ksim_truth_drain(K, NULL, NULL);
	CU_ASSERT(ksim_dma_write_pasid(d, 5, 0x100000 + 3 * PG, "hi", 2) ==
		  0);
	CU_ASSERT(memcmp(mem2 + 3 * PG, "hi", 2) == 0);
	CU_ASSERT(mem[3 * PG] == 0);
	CU_ASSERT(ksim_truth_drain(K, drain_one, &first) == 1);
	CU_ASSERT(first.dev == d && first.len == 2 &&
		  first.hva == mem2 + 3 * PG);
	memset(bm, 0, sizeof(bm));
	CU_ASSERT(get_dirty(fd, d2, 0x100000, 16 * PG, PG, 0, bm) == 0);
	CU_ASSERT(count_bits(bm, 16) == 1 && bit(bm, 3));
	memset(bm, 0, sizeof(bm));
	CU_ASSERT(get_dirty(fd, main_hwpt, 0x100000, 16 * PG, PG, 0, bm) ==
		  0);
	CU_ASSERT(count_bits(bm, 16) == 0);
	/* And its own DMA does not reach D2. */
	CU_ASSERT(ksim_dma_write(d, 0x100000 + 3 * PG, "x", 1) == 0);
	CU_ASSERT(mem[3 * PG] == 'x');
	memset(bm, 0, sizeof(bm));
	CU_ASSERT(get_dirty(fd, d2, 0x100000, 16 * PG, PG, 0, bm) == 0);
	CU_ASSERT(count_bits(bm, 16) == 0);
	/* The checks. */
	CU_ASSERT(attach_pasid(dfd, 0, d2, NULL) == -EINVAL);
	CU_ASSERT(attach_pasid(dfd, 256, d2, NULL) == -EINVAL);
	CU_ASSERT(attach_pasid(dfd, 6, 99, NULL) == -ENOENT);
	CU_ASSERT(attach_pasid(dfd, 6, devid, NULL) == -EINVAL);
	pa = (struct pasid_attach){ .argsz = 12, .flags = 1, .pt_id = d2,
				    .pasid = 6 };
	CU_ASSERT(xioctl(dfd, VK_VFIO_DEVICE_ATTACH_IOMMUFD_PT, &pa) ==
		  -EINVAL);
	pa.argsz = 16;
	pa.flags = 3;
	CU_ASSERT(xioctl(dfd, VK_VFIO_DEVICE_ATTACH_IOMMUFD_PT, &pa) ==
		  -EINVAL);
	CU_ASSERT(ksim_dma_write_pasid(d, 6, 0x100000, "a", 1) == -ENODEV);
	/* An IOAS gives the PASID an automatic domain. */
	CU_ASSERT(attach_pasid(dfd, 6, ioas2, &x) == 0);
	CU_ASSERT(x != d2 && where(d, 6).auto_domain);
	CU_ASSERT(ksim_dma_write_pasid(d, 6, 0x100000, "a", 1) == 0);
	CU_ASSERT(mem2[0] == 'a');
	/* Replacing a PASID's domain; the automatic one goes. */
	CU_ASSERT(attach_pasid(dfd, 6, d2, NULL) == 0);
	CU_ASSERT(destroy(fd, x) == -ENOENT);
	CU_ASSERT(detach_pasid(dfd, 6) == 0);
	/* Held while attached; detached, it goes. */
	CU_ASSERT(destroy(fd, d2) == -EBUSY);
	CU_ASSERT(detach_pasid(dfd, 5) == 0);
	CU_ASSERT(detach_pasid(dfd, 5) == 0);
	CU_ASSERT(ksim_dma_write_pasid(d, 5, 0x100000, "a", 1) == -ENODEV);
	CU_ASSERT(!where(d, 5).attached);
	CU_ASSERT(destroy(fd, d2) == 0);
	/* A device without PASID, and an mdev. */
	ndfd = open_bound(1, fd, NULL);
	CU_ASSERT(attach_pasid(ndfd, 1, ioas, NULL) == -EINVAL);
	mfd = open_bound(2, fd, NULL);
	CU_ASSERT(attach_pasid(mfd, 1, ioas, NULL) == -EOPNOTSUPP);
	/* Closing with a PASID attached releases it. */
	CU_ASSERT(attach_pasid(dfd, 7, ioas, &x) == 0);
	CU_ASSERT(xclose(dfd) == 0);
	CU_ASSERT(destroy(fd, x) == -ENOENT);
	CU_ASSERT(destroy(fd, main_hwpt) == 0);
	/* Off again: 6.12. */
	ksim_iommufd_set_pasid_attach(K, false);
	CU_ASSERT(attach_pasid(ndfd, 1, ioas, NULL) == -EINVAL);
	sim_free();
	free(mem);
	free(mem2);
}

/* ------------------------------------------------------------------ */
/* The DMA engine and failure injection                                */

static void count_write(void *opaque, const struct ksim_write *w)
{
	uint64_t *bm = opaque, page = (w->iova - 0x100000) / PG;

	bm[page / 64] |= 1ull << (page % 64);
}

static void test_dma_step(void)
{
	struct ksim_device_params p = {
		.name = "stepper", .kind = KSIM_DEV_PCI, .group = -1,
		.dma = { .pattern = KSIM_DMA_RANDOM, .writes_per_step = 6,
			 .seed = 42 },
		.iommufd = { .cdev = true, .cdev_index = 4,
			     .dirty_tracking = true },
	};
	uint64_t truth[4] = { 0 }, bm[4];
	struct ksim_device *d;
	struct rig r;
	int dfd;

	sim_new();
	rig_up(&r, 0x100000, 256 * PG);
	CU_ASSERT_FATAL(ksim_device_add(K, &p, &d) == 0);
	dfd = open_bound(4, r.fd, NULL);
	CU_ASSERT(attach(dfd, r.hwpt, NULL) == 0);
	ksim_truth_drain(K, NULL, NULL);
	CU_ASSERT(ksim_step(K) == 6);
	CU_ASSERT(ksim_truth_drain(K, count_write, truth) == 6);
	CU_ASSERT(rig_read(&r, 0, bm) == 0);
	CU_ASSERT(memcmp(bm, truth, sizeof(bm)) == 0);
	CU_ASSERT(count_bits(bm, 256) >= 1);
	rig_down(&r);
}

static void test_failure_injection(void)
{
	uint32_t ioas, devid, id;
	uint64_t calls;
	int fd, dfd;

	sim_new();
	dev_add("0000:01:00.0", KSIM_DEV_PCI, -1, 0, true);
	fd = iommufd();
	ioas = ioas_alloc(fd);
	dfd = cdev_open(0);
	ksim_fail_request(K, VK_VFIO_DEVICE_BIND_IOMMUFD, EIO, 1);
	CU_ASSERT(bind(dfd, fd, &devid) == -EIO);
	CU_ASSERT(bind(dfd, fd, &devid) == 0);
	ksim_fail_request(K, VK_IOMMU_HWPT_ALLOC, ENOMEM, 1);
	CU_ASSERT(hwpt_alloc(fd, devid, ioas, DIRTY, &id) == -ENOMEM);
	CU_ASSERT(hwpt_alloc(fd, devid, ioas, DIRTY, &id) == 0);
	CU_ASSERT(id == devid + 1); /* nothing was created by the failure */
	calls = ksim_calls(K);
	ksim_fail_nth(K, 1, EIO);
	CU_ASSERT(set_dirty(fd, id, true) == -EIO);
	CU_ASSERT(ksim_calls(K) == calls + 1);
	CU_ASSERT(!where(ksim_device_find(K, "0000:01:00.0"), 0).tracking);
	CU_ASSERT(attach(dfd, id, NULL) == 0);
	CU_ASSERT(set_dirty(fd, id, true) == 0);
	CU_ASSERT(where(ksim_device_find(K, "0000:01:00.0"), 0).tracking);
	sim_free();
}

static CU_TestInfo fd_tests[] = {
	{ "paths and fd leaks", test_paths_and_leaks },
	{ "dispatch, sizes, E2BIG", test_dispatch },
	{ "destroy and IDs", test_destroy_and_ids },
	CU_TEST_INFO_NULL,
};

static CU_TestInfo ioas_tests[] = {
	{ "IOAS_ALLOC", test_ioas_alloc },
	{ "IOAS_MAP errnos in order", test_map_errnos },
	{ "IOAS_MAP kernel-chosen iova", test_map_auto_iova },
	{ "IOAS_UNMAP", test_unmap },
	{ "IOVA_RANGES and alignment", test_iova_ranges },
	CU_TEST_INFO_NULL,
};

static CU_TestInfo hwpt_tests[] = {
	{ "GET_HW_INFO", test_hw_info },
	{ "HWPT_ALLOC errnos in order", test_hwpt_alloc_errnos },
	{ "HWPT_ALLOC domain checks", test_hwpt_alloc_domain_checks },
	{ "auto domains vs explicit HWPTs", test_auto_vs_explicit },
	{ "attach enforcement", test_attach_enforcement },
	{ "one HWPT per IOMMU group", test_group_one_hwpt },
	{ "SET_DIRTY_TRACKING", test_set_dirty_tracking },
	CU_TEST_INFO_NULL,
};

static CU_TestInfo dirty_tests[] = {
	{ "GET_DIRTY_BITMAP errnos in order", test_get_dirty_errnos },
	{ "exact pages", test_dirty_exact },
	{ "bitmap bytes", test_dirty_bitmap_bytes },
	{ "NO_CLEAR", test_no_clear },
	{ "enable clears first", test_enable_clears },
	{ "2 MiB IOPTEs", test_huge_iopte },
	{ "mock 2 KiB and 1 MiB IOPTEs", test_mock_granule },
	{ "pitfall: holes", test_pitfall_hole },
	{ "pitfall: tracking off", test_pitfall_tracking_off },
	{ "pitfall: unwritable bitmap", test_pitfall_bad_bitmap },
	{ "pitfall: read from inside a huge IOPTE", test_pitfall_mid_iopte },
	CU_TEST_INFO_NULL,
};

static CU_TestInfo mock_tests[] = {
	{ "4.5 dirty sequence, every variant", test_mock_selftest_sequence },
	{ "4.2/4.4 errnos", test_mock_errnos },
	{ "enforce_dirty and capability", test_mock_enforce },
	{ "mock: domain replace", test_mock_replace },
	CU_TEST_INFO_NULL,
};

static CU_TestInfo cdev_tests[] = {
	{ "BIND_IOMMUFD", test_cdev_bind },
	{ "group device fd", test_cdev_group_fd },
	{ "ATTACH/DETACH_IOMMUFD_PT", test_cdev_attach_detach },
	{ "closing releases", test_cdev_close_releases },
	{ "hot-unplug of bound devices", test_hot_unplug_bound },
	{ "mdev access", test_mdev_access },
	CU_TEST_INFO_NULL,
};

static CU_TestInfo pasid_tests[] = {
	{ "6.12: no PASID attach", test_pasid_off },
	{ "newer kernel: PASID domains", test_pasid_on },
	CU_TEST_INFO_NULL,
};

static CU_TestInfo engine_tests[] = {
	{ "DMA steps through a HWPT", test_dma_step },
	{ "failure injection", test_failure_injection },
	CU_TEST_INFO_NULL,
};

static CU_SuiteInfo suites[] = {
	VMIG_SUITE("iommufd fd", fd_tests),
	VMIG_SUITE("IOAS", ioas_tests),
	VMIG_SUITE("HWPT", hwpt_tests),
	VMIG_SUITE("dirty bitmaps", dirty_tests),
	VMIG_SUITE("selftest mock", mock_tests),
	VMIG_SUITE("VFIO cdev", cdev_tests),
	VMIG_SUITE("PASID", pasid_tests),
	VMIG_SUITE("DMA and failures", engine_tests),
	CU_SUITE_INFO_NULL,
};

VMIG_TEST_MAIN(suites)
