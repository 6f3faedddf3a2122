/*
 * lab_iommufd.c: the kernel lab's iommufd scenarios (boot "mock"), on the
 * selftest mock domain of CONFIG_IOMMUFD_TEST (shared docs/kernel-uapi.md
 * section 4): no IOMMU hardware needed, and dirty bits the test can set.
 */
#include <errno.h>
#include <fcntl.h>
#include <stdlib.h>
#include <string.h>

#include <vmig/linux-uapi.h>
#include "lab.h"
#include "lab_scenarios.h"

#define MIB (1ull << 20)
#define MOCK_IOVA VK_MOCK_APERTURE_START
#define MOCK_LEN MIB
/* The mock IOPTE: half a CPU page. */
#define MOCK_PG VK_MOCK_PAGE_SIZE
#define MOCK_BITS (MOCK_LEN / MOCK_PG)
#define TRACK_ON VK_IOMMU_HWPT_DIRTY_TRACKING_ENABLE

/*
 * The end of a scenario on iommufd fd (when open): the HWPT, the mock
 * device and the IOAS destroyed (those that exist), then fd closed.
 */
static void teardown(struct lab *lab, int fd, uint32_t hwpt_id,
		     uint32_t stdev_id, uint32_t ioas_id)
{
	if (fd < 0)
		return;
	if (hwpt_id)
		LAB_EXPECT_RET(lab, lab_iommufd_destroy(lab, fd, hwpt_id), 0,
			       "destroying the HWPT");
	if (stdev_id)
		LAB_EXPECT_RET(lab, lab_iommufd_destroy(lab, fd, stdev_id), 0,
			       "destroying the mock device");
	if (ioas_id)
		LAB_EXPECT_RET(lab, lab_iommufd_destroy(lab, fd, ioas_id), 0,
			       "destroying the IOAS");
	lab_close(lab, fd);
}

/*
 * The start of the mock scenarios: memlen bytes of memory (*mem), an
 * iommufd (*fd) with an IOAS (*ioas_id) and a mock device on it (*mock,
 * as IOMMU_TEST_OP_MOCK_DOMAIN returned it). 0, or -1 once the failure
 * is said; the caller ends what was made, as on any failure.
 */
static int mock_start(struct lab *lab, size_t memlen, uint8_t **mem,
		      int *fd, uint32_t *ioas_id,
		      struct vk_iommu_test_cmd *mock)
{
	struct vk_iommu_ioas_alloc ioas = { .size = sizeof(ioas) };
	int ret;

	*mem = lab_mem_alloc(memlen, 2 * MIB);
	LAB_REQUIRE(lab, *mem, "out of memory");
	*fd = lab_open(lab, "/dev/iommu", O_RDWR);
	LAB_REQUIRE(lab, *fd >= 0, "cannot open /dev/iommu: %d", *fd);
	ret = lab_ioctl(lab, *fd, VK_IOMMU_IOAS_ALLOC, &ioas);
	LAB_REQUIRE(lab, ret == 0, "IOAS_ALLOC: %d", ret);
	*ioas_id = ioas.out_ioas_id;
	memset(mock, 0, sizeof(*mock));
	mock->size = sizeof(*mock);
	mock->op = VK_IOMMU_TEST_OP_MOCK_DOMAIN;
	mock->id = *ioas_id;
	ret = lab_ioctl(lab, *fd, VK_IOMMU_TEST_CMD, mock);
	LAB_REQUIRE(lab, ret == 0, "TEST_CMD MOCK_DOMAIN: %d", ret);
	return 0;
out:
	return -1;
}

/*
 * The path kernel-uapi.md 4.5 describes, once: an IOAS with a mock
 * device, 1 MiB mapped at the aperture's start, a dirty-tracking HWPT
 * over it, every 4th 2 KiB slot marked dirty by the test op, then read:
 * exactly those 128 of 512 bits, and nothing on the next read (cleared).
 */
void lab_iommufd_mock_smoke(struct lab *lab)
{
	struct vk_iommu_test_cmd mock;
	struct vk_iommu_hwpt_alloc hwpt = {
		.size = sizeof(hwpt),
		.flags = VK_IOMMU_HWPT_ALLOC_DIRTY_TRACKING,
		.data_type = VK_IOMMU_HWPT_DATA_NONE,
	};
	uint64_t marks[MOCK_BITS / 64], bm[MOCK_BITS / 64];
	uint8_t *mem = NULL;
	uint32_t ioas_id = 0, hwpt_id = 0, stdev_id = 0;
	int fd = -1, ret;
	uint64_t i;

	if (mock_start(lab, MOCK_LEN, &mem, &fd, &ioas_id, &mock))
		goto out;
	stdev_id = mock.mock_domain.out_stdev_id;
	ret = lab_ioas_map(lab, fd, ioas_id, MOCK_IOVA, mem, MOCK_LEN);
	LAB_REQUIRE(lab, ret == 0, "IOAS_MAP: %d", ret);
	hwpt.dev_id = mock.mock_domain.out_idev_id;
	hwpt.pt_id = ioas_id;
	ret = lab_ioctl(lab, fd, VK_IOMMU_HWPT_ALLOC, &hwpt);
	LAB_REQUIRE(lab, ret == 0, "HWPT_ALLOC with DIRTY_TRACKING: %d", ret);
	hwpt_id = hwpt.out_hwpt_id;
	ret = lab_hwpt_set_tracking(lab, fd, hwpt_id, TRACK_ON);
	LAB_REQUIRE(lab, ret == 0, "SET_DIRTY_TRACKING: %d", ret);
	{
		struct vk_iommu_test_cmd dirty = {
			.size = sizeof(dirty),
			.op = VK_IOMMU_TEST_OP_DIRTY,
			.id = hwpt_id,
		};

		memset(marks, 0, sizeof(marks));
		for (i = 0; i < MOCK_BITS; i += 4)
			marks[i / 64] |= 1ull << (i % 64);
		dirty.dirty.iova = MOCK_IOVA;
		dirty.dirty.length = MOCK_LEN;
		dirty.dirty.page_size = MOCK_PG;
		dirty.dirty.uptr = (uintptr_t)marks;
		ret = lab_ioctl(lab, fd, VK_IOMMU_TEST_CMD, &dirty);
		LAB_REQUIRE(lab, ret == 0, "TEST_CMD DIRTY: %d", ret);
		LAB_EXPECT(lab, dirty.dirty.out_nr_dirty == MOCK_BITS / 4,
			   "TEST_CMD DIRTY marked %llu slots, not 128",
			   (unsigned long long)dirty.dirty.out_nr_dirty);
	}
	for (i = 0; i < 2; i++) {
		ret = lab_hwpt_get_dirty(lab, fd, hwpt_id, 0, MOCK_IOVA,
					 MOCK_LEN, MOCK_PG, bm, sizeof(bm));
		LAB_REQUIRE(lab, ret == 0, "GET_DIRTY_BITMAP: %d", ret);
		if (i == 0)
			LAB_EXPECT(lab, !memcmp(bm, marks, sizeof(bm)),
				   "the first read is not every 4th slot "
				   "(%llu bits set)",
				   (unsigned long long)lab_bits_count(
					   bm, 0, MOCK_BITS));
		else
			LAB_EXPECT(lab, lab_bits_count(bm, 0, MOCK_BITS) == 0,
				   "the second read is not clean (%llu bits)",
				   (unsigned long long)lab_bits_count(
					   bm, 0, MOCK_BITS));
	}
out:
	teardown(lab, fd, hwpt_id, stdev_id, ioas_id);
	lab_mem_free(mem, MOCK_LEN);
}

/* ------------------------------------------------------------------ */
/* iommufd-devices                                                     */

static int bind(struct lab *lab, int devfd, int iommufd, uint32_t *id)
{
	struct vk_vfio_device_bind_iommufd b = {
		.argsz = sizeof(b),
		.iommufd = iommufd,
	};
	int ret = lab_ioctl(lab, devfd, VK_VFIO_DEVICE_BIND_IOMMUFD, &b);

	*id = ret ? 0 : b.out_devid;
	return ret;
}

static int attach(struct lab *lab, int devfd, uint32_t pt_id)
{
	struct vk_vfio_device_attach_iommufd_pt a = {
		.argsz = sizeof(a),
		.pt_id = pt_id,
	};

	return lab_ioctl(lab, devfd, VK_VFIO_DEVICE_ATTACH_IOMMUFD_PT, &a);
}

static int hw_info(struct lab *lab, int fd, uint32_t dev_id,
		   uint64_t *caps)
{
	uint8_t data[64];
	struct vk_iommu_hw_info h = {
		.size = sizeof(h),
		.dev_id = dev_id,
		.data_len = sizeof(data),
		.data_uptr = (uintptr_t)data,
	};
	int ret = lab_ioctl(lab, fd, VK_IOMMU_GET_HW_INFO, &h);

	*caps = ret ? 0 : h.out_capabilities;
	return ret;
}

static int hwpt_alloc(struct lab *lab, int fd, uint32_t dev_id,
		      uint32_t pt_id, uint32_t flags, uint32_t *id)
{
	struct vk_iommu_hwpt_alloc h = {
		.size = sizeof(h),
		.flags = flags,
		.dev_id = dev_id,
		.pt_id = pt_id,
	};
	int ret = lab_ioctl(lab, fd, VK_IOMMU_HWPT_ALLOC, &h);

	*id = ret ? 0 : h.out_hwpt_id;
	return ret;
}

/* The IOAS's usable ranges and alignment, said in the transcript. */
static int iova_ranges(struct lab *lab, int fd, uint32_t ioas_id)
{
	struct vk_iommu_iova_range r[8];
	struct vk_iommu_ioas_iova_ranges q = {
		.size = sizeof(q),
		.ioas_id = ioas_id,
		.num_iovas = 8,
		.allowed_iovas = (uintptr_t)r,
	};
	char buf[256];
	size_t n = 0;
	uint32_t i;
	int ret = lab_ioctl(lab, fd, VK_IOMMU_IOAS_IOVA_RANGES, &q);

	if (ret)
		return ret;
	buf[0] = '\0';
	for (i = 0; i < q.num_iovas && i < 8 && n < sizeof(buf) - 48; i++)
		n += (size_t)snprintf(buf + n, sizeof(buf) - n,
				      " [0x%llx-0x%llx]",
				      (unsigned long long)r[i].start,
				      (unsigned long long)r[i].last);
	lab_say(lab, "  ranges:%s", buf);
	return 0;
}

/*
 * The guest's real devices on iommufd, raw: the edu device behind QEMU's
 * Intel vIOMMU binds as a device whose IOMMU has no dirty tracking
 * (kernel-uapi.md 2.7, shared/kernel/README.md): no DIRTY_TRACKING HWPT,
 * no tracking on a plain one. The mtty mdev binds as an access: no HW
 * info, no HWPT, attach to an IOAS only (2.12).
 */
void lab_iommufd_devices(struct lab *lab)
{
	const struct lab_facts *f = &lab->facts;
	struct vk_iommu_ioas_alloc ioas = { .size = sizeof(ioas) };
	uint32_t edu_id = 0, mdev_id = 0, hwpt_id = 0, ioas_id = 0, id;
	int fd = -1, edu = -1, mdev = -1, ret;
	uint8_t *mem = NULL;
	uint64_t caps, bm[4];

	LAB_REQUIRE(lab, f->pci.cdev, "this boot has no vfio-pci cdev");
	mem = lab_mem_alloc(MIB, 2 * MIB);
	LAB_REQUIRE(lab, mem, "out of memory");
	fd = lab_open(lab, "/dev/iommu", O_RDWR);
	LAB_REQUIRE(lab, fd >= 0, "cannot open /dev/iommu: %d", fd);
	edu = lab_open(lab, f->pci.cdev, O_RDWR);
	LAB_REQUIRE(lab, edu >= 0, "cannot open %s: %d", f->pci.cdev, edu);
	ret = bind(lab, edu, fd, &edu_id);
	LAB_REQUIRE(lab, ret == 0, "BIND_IOMMUFD of edu: %d", ret);
	ret = lab_ioctl(lab, fd, VK_IOMMU_IOAS_ALLOC, &ioas);
	LAB_REQUIRE(lab, ret == 0, "IOAS_ALLOC: %d", ret);
	ioas_id = ioas.out_ioas_id;

	ret = hw_info(lab, fd, edu_id, &caps);
	LAB_EXPECT(lab, ret == 0 && !(caps & VK_IOMMU_HW_CAP_DIRTY_TRACKING),
		   "GET_HW_INFO of edu: %d, capabilities 0x%llx", ret,
		   (unsigned long long)caps);
	ret = hwpt_alloc(lab, fd, edu_id, ioas_id,
			 VK_IOMMU_HWPT_ALLOC_DIRTY_TRACKING, &id);
	LAB_EXPECT_RET(lab, ret, -EOPNOTSUPP, "a DIRTY_TRACKING HWPT for edu");
	if (!ret)
		lab_iommufd_destroy(lab, fd, id);
	ret = hwpt_alloc(lab, fd, edu_id, ioas_id, 0, &hwpt_id);
	LAB_REQUIRE(lab, ret == 0, "a plain HWPT for edu: %d", ret);
	ret = attach(lab, edu, hwpt_id);
	LAB_REQUIRE(lab, ret == 0, "ATTACH of edu to its HWPT: %d", ret);
	ret = lab_hwpt_set_tracking(lab, fd, hwpt_id, TRACK_ON);
	LAB_EXPECT_RET(lab, ret, -EOPNOTSUPP,
		       "SET_DIRTY_TRACKING on a plain HWPT");
	ret = lab_ioas_map(lab, fd, ioas_id, 1ull << 30, mem, MIB);
	LAB_EXPECT_RET(lab, ret, 0, "IOAS_MAP of 1 MiB");
	LAB_EXPECT_RET(lab, iova_ranges(lab, fd, ioas_id), 0,
		       "IOVA_RANGES with edu attached");
	ret = lab_hwpt_get_dirty(lab, fd, hwpt_id, 0, 1ull << 30, MIB, 4096, bm,
				 sizeof(bm));
	LAB_EXPECT_RET(lab, ret, -EOPNOTSUPP,
		       "GET_DIRTY_BITMAP of a plain HWPT");

	/* An mtty mdev on the same iommufd: an access, not a device. */
	if (f->nr_mdevs >= 1 && f->mdevs[0].cdev) {
		mdev = lab_open(lab, f->mdevs[0].cdev, O_RDWR);
		LAB_REQUIRE(lab, mdev >= 0, "cannot open %s: %d",
			    f->mdevs[0].cdev, mdev);
		ret = bind(lab, mdev, fd, &mdev_id);
		LAB_REQUIRE(lab, ret == 0, "BIND_IOMMUFD of the mdev: %d", ret);
		ret = hw_info(lab, fd, mdev_id, &caps);
		LAB_EXPECT_RET(lab, ret, -ENOENT, "GET_HW_INFO of an access");
		ret = hwpt_alloc(lab, fd, mdev_id, ioas_id, 0, &id);
		LAB_EXPECT_RET(lab, ret, -ENOENT, "HWPT_ALLOC for an access");
		if (!ret)
			lab_iommufd_destroy(lab, fd, id);
		ret = attach(lab, mdev, hwpt_id);
		LAB_EXPECT_RET(lab, ret, -ENOENT,
			       "ATTACH of an mdev to a HWPT");
		ret = attach(lab, mdev, ioas_id);
		LAB_EXPECT_RET(lab, ret, 0, "ATTACH of an mdev to the IOAS");
		LAB_EXPECT_RET(lab, iova_ranges(lab, fd, ioas_id), 0,
			       "IOVA_RANGES with the mdev attached too");
	}
	{
		struct vk_iommu_ioas_unmap u = {
			.size = sizeof(u),
			.ioas_id = ioas_id,
			.iova = 1ull << 30,
			.length = MIB,
		};

		ret = lab_ioctl(lab, fd, VK_IOMMU_IOAS_UNMAP, &u);
		LAB_EXPECT(lab, ret == 0 && u.length == MIB,
			   "IOAS_UNMAP: %d, 0x%llx bytes", ret,
			   (unsigned long long)u.length);
	}
out:
	if (mdev >= 0)
		lab_close(lab, mdev);
	if (edu >= 0)
		lab_close(lab, edu);
	teardown(lab, fd, hwpt_id, 0, ioas_id);
	lab_mem_free(mem, MIB);
}

/* ------------------------------------------------------------------ */
/* iommufd-mock-rows                                                   */

/* Marks every slot of [iova, iova + length) dirty with the test op. */
static int mark_all(struct lab *lab, int fd, uint32_t hwpt_id, uint64_t iova,
		    uint64_t length, uint64_t *marks)
{
	struct vk_iommu_test_cmd t = {
		.size = sizeof(t),
		.op = VK_IOMMU_TEST_OP_DIRTY,
		.id = hwpt_id,
	};

	memset(marks, 0xff, length / MOCK_PG / 8);
	t.dirty.iova = iova;
	t.dirty.length = length;
	t.dirty.page_size = MOCK_PG;
	t.dirty.uptr = (uintptr_t)marks;
	return lab_ioctl(lab, fd, VK_IOMMU_TEST_CMD, &t);
}

/*
 * The rows of kernel-uapi.md 2.6, 2.8, 2.9 and 4.4 that the mock can
 * produce, and the pitfalls of 5: a read across a hole succeeds and stops
 * at the gap, a read while tracking is off succeeds with nothing,
 * NO_CLEAR leaves the bits, a coarser page_size ORs IOPTEs, and a device
 * without dirty tracking is refused by a dirty HWPT.
 */
void lab_iommufd_mock_rows(struct lab *lab)
{
	struct vk_iommu_test_cmd mock;
	/* Two 1 MiB mappings with a 1 MiB hole between them. */
	const uint64_t a = MOCK_IOVA, b = MOCK_IOVA + 2 * MOCK_LEN;
	uint64_t marks[3 * MOCK_BITS / 64], bm[3 * MOCK_BITS / 64 + 1];
	uint32_t ioas_id = 0, hwpt_id = 0, stdev_id = 0, auto_hwpt, idev, id;
	uint8_t *mem = NULL;
	uint64_t caps;
	int fd = -1, ret, i;

	if (mock_start(lab, 2 * MOCK_LEN, &mem, &fd, &ioas_id, &mock))
		goto out;
	stdev_id = mock.mock_domain.out_stdev_id;
	auto_hwpt = mock.mock_domain.out_hwpt_id;
	idev = mock.mock_domain.out_idev_id;
	for (i = 0; i < 2; i++) {
		ret = lab_ioas_map(lab, fd, ioas_id, i ? b : a,
				   mem + i * MOCK_LEN, MOCK_LEN);
		LAB_REQUIRE(lab, ret == 0, "IOAS_MAP %d: %d", i, ret);
	}
	LAB_EXPECT_RET(lab, iova_ranges(lab, fd, ioas_id), 0, "IOVA_RANGES");
	ret = hw_info(lab, fd, idev, &caps);
	LAB_EXPECT(lab, ret == 0 && (caps & VK_IOMMU_HW_CAP_DIRTY_TRACKING),
		   "GET_HW_INFO of the mock device: %d, 0x%llx", ret,
		   (unsigned long long)caps);

	/* HWPT_ALLOC's rows. */
	ret = hwpt_alloc(lab, fd, idev, 0x7fff0000, 0, &id);
	LAB_EXPECT_RET(lab, ret, -EINVAL, "HWPT_ALLOC on no such pt_id");
	ret = hwpt_alloc(lab, fd, ioas_id, ioas_id, 0, &id);
	LAB_EXPECT_RET(lab, ret, -ENOENT, "HWPT_ALLOC with an IOAS as dev_id");
	ret = hwpt_alloc(lab, fd, idev, ioas_id, 0x8, &id);
	LAB_EXPECT_RET(lab, ret, -EOPNOTSUPP, "HWPT_ALLOC with flag 0x8");
	ret = hwpt_alloc(lab, fd, idev, ioas_id,
			 VK_IOMMU_HWPT_ALLOC_DIRTY_TRACKING, &hwpt_id);
	LAB_REQUIRE(lab, ret == 0, "HWPT_ALLOC with DIRTY_TRACKING: %d", ret);

	/* A device without dirty tracking cannot join a dirty HWPT. */
	{
		struct vk_iommu_test_cmd nd = {
			.size = sizeof(nd),
			.op = VK_IOMMU_TEST_OP_MOCK_DOMAIN_FLAGS,
			.id = hwpt_id,
		};

		nd.mock_domain_flags.dev_flags = VK_MOCK_FLAGS_DEVICE_NO_DIRTY;
		ret = lab_ioctl(lab, fd, VK_IOMMU_TEST_CMD, &nd);
		LAB_EXPECT_RET(lab, ret, -EINVAL,
			       "a NO_DIRTY mock device on a dirty HWPT");
		if (!ret)
			lab_iommufd_destroy(lab, fd,
					    nd.mock_domain_flags.out_stdev_id);
	}

	/* SET_DIRTY_TRACKING's rows. */
	ret = lab_hwpt_set_tracking(lab, fd, hwpt_id, 0x2);
	LAB_EXPECT_RET(lab, ret, -EOPNOTSUPP, "SET_DIRTY_TRACKING flag 0x2");
	ret = lab_hwpt_set_tracking(lab, fd, ioas_id, TRACK_ON);
	LAB_EXPECT_RET(lab, ret, -ENOENT, "SET_DIRTY_TRACKING on an IOAS");
	ret = lab_hwpt_set_tracking(lab, fd, auto_hwpt,
				    VK_IOMMU_HWPT_DIRTY_TRACKING_ENABLE);
	LAB_EXPECT_RET(lab, ret, -EOPNOTSUPP,
		       "SET_DIRTY_TRACKING on the automatic HWPT");

	/* Off: the test op refuses, a read succeeds with nothing. */
	ret = mark_all(lab, fd, hwpt_id, a, MOCK_LEN, marks);
	LAB_EXPECT_RET(lab, ret, -EINVAL, "TEST_OP_DIRTY with tracking off");
	ret = lab_hwpt_get_dirty(lab, fd, hwpt_id, 0, a, MOCK_LEN, MOCK_PG, bm,
				 sizeof(bm));
	LAB_EXPECT(lab, ret == 0 && lab_bits_count(bm, 0, MOCK_BITS) == 0,
		   "a read with tracking off: %d", ret);
	ret = lab_hwpt_set_tracking(lab, fd, hwpt_id, TRACK_ON);
	LAB_REQUIRE(lab, ret == 0, "SET_DIRTY_TRACKING: %d", ret);
	ret = lab_hwpt_set_tracking(lab, fd, hwpt_id, TRACK_ON);
	LAB_EXPECT_RET(lab, ret, 0, "enabling twice");

	/* GET_DIRTY_BITMAP's rows, in the kernel's order. */
	ret = lab_hwpt_get_dirty(lab, fd, hwpt_id, 0x2, a, MOCK_LEN, MOCK_PG,
				 bm, sizeof(bm));
	LAB_EXPECT_RET(lab, ret, -EOPNOTSUPP, "GET_DIRTY_BITMAP flag 0x2");
	ret = lab_hwpt_get_dirty(lab, fd, ioas_id, 0, a, MOCK_LEN, MOCK_PG, bm,
				 sizeof(bm));
	LAB_EXPECT_RET(lab, ret, -ENOENT, "GET_DIRTY_BITMAP of an IOAS");
	ret = lab_hwpt_get_dirty(lab, fd, hwpt_id, 0, a, 0, MOCK_PG, bm,
				 sizeof(bm));
	LAB_EXPECT_RET(lab, ret, -EINVAL, "GET_DIRTY_BITMAP of length 0");
	ret = lab_hwpt_get_dirty(lab, fd, hwpt_id, 0, ~0ull - MOCK_PG + 1,
				 2 * MOCK_PG, MOCK_PG, bm, sizeof(bm));
	LAB_EXPECT_RET(lab, ret, -EOVERFLOW, "GET_DIRTY_BITMAP wrapping");
	ret = lab_hwpt_get_dirty(lab, fd, hwpt_id, 0, a + 1024, MOCK_LEN,
				 MOCK_PG, bm, sizeof(bm));
	LAB_EXPECT_RET(lab, ret, -EINVAL, "GET_DIRTY_BITMAP misaligned iova");
	ret = lab_hwpt_get_dirty(lab, fd, hwpt_id, 0, a, MOCK_LEN, 0, bm,
				 sizeof(bm));
	LAB_EXPECT_RET(lab, ret, -EINVAL, "GET_DIRTY_BITMAP of page_size 0");
	ret = lab_hwpt_get_dirty(lab, fd, hwpt_id, 0, a + MOCK_PG,
				 MOCK_LEN - MOCK_PG, 2 * MOCK_PG, bm,
				 sizeof(bm));
	LAB_EXPECT_RET(lab, ret, -EINVAL,
		       "GET_DIRTY_BITMAP not aligned to page_size");
	ret = lab_hwpt_get_dirty(lab, fd, auto_hwpt, 0, a, MOCK_LEN, MOCK_PG,
				 bm, sizeof(bm));
	LAB_EXPECT_RET(lab, ret, -EOPNOTSUPP,
		       "GET_DIRTY_BITMAP of the automatic HWPT");

	/* Across the hole: success, the walk stops at the gap. */
	ret = mark_all(lab, fd, hwpt_id, a, MOCK_LEN, marks);
	LAB_EXPECT_RET(lab, ret, 0, "TEST_OP_DIRTY of the first mapping");
	ret = mark_all(lab, fd, hwpt_id, b, MOCK_LEN, marks);
	LAB_EXPECT_RET(lab, ret, 0, "TEST_OP_DIRTY of the second mapping");
	ret = lab_hwpt_get_dirty(lab, fd, hwpt_id, 0, a, 3 * MOCK_LEN, MOCK_PG,
				 bm, sizeof(bm));
	LAB_EXPECT(lab, ret == 0 &&
			lab_bits_count(bm, 0, MOCK_BITS) == MOCK_BITS &&
			lab_bits_count(bm, MOCK_BITS, 2 * MOCK_BITS) == 0,
		   "a read across the hole: %d", ret);
	/* The second mapping was neither reported nor cleared. */
	ret = lab_hwpt_get_dirty(lab, fd, hwpt_id, 0, b, MOCK_LEN, MOCK_PG, bm,
				 sizeof(bm));
	LAB_EXPECT(lab, ret == 0 &&
			lab_bits_count(bm, 0, MOCK_BITS) == MOCK_BITS,
		   "the second mapping after the read across the hole: %d",
		   ret);

	/* NO_CLEAR twice, then a clearing read, then nothing. */
	ret = mark_all(lab, fd, hwpt_id, a, MOCK_LEN, marks);
	LAB_EXPECT_RET(lab, ret, 0, "TEST_OP_DIRTY");
	for (i = 0; i < 4; i++) {
		uint32_t fl = i < 2 ? VK_IOMMU_HWPT_GET_DIRTY_BITMAP_NO_CLEAR
				    : 0;
		uint64_t want = i < 3 ? MOCK_BITS : 0;

		ret = lab_hwpt_get_dirty(lab, fd, hwpt_id, fl, a, MOCK_LEN,
					 MOCK_PG, bm, sizeof(bm));
		LAB_EXPECT(lab, ret == 0 &&
				lab_bits_count(bm, 0, MOCK_BITS) == want,
			   "read %d (NO_CLEAR, NO_CLEAR, clear, clear): %d", i,
			   ret);
	}

	/* A page_size coarser than the IOPTE ORs them: slot 1 -> bit 0. */
	{
		struct vk_iommu_test_cmd t = {
			.size = sizeof(t),
			.op = VK_IOMMU_TEST_OP_DIRTY,
			.id = hwpt_id,
		};

		memset(marks, 0, sizeof(marks));
		marks[0] = 0x2;
		t.dirty.iova = a;
		t.dirty.length = MOCK_LEN;
		t.dirty.page_size = MOCK_PG;
		t.dirty.uptr = (uintptr_t)marks;
		ret = lab_ioctl(lab, fd, VK_IOMMU_TEST_CMD, &t);
		LAB_EXPECT_RET(lab, ret, 0, "TEST_OP_DIRTY of slot 1");
		ret = lab_hwpt_get_dirty(lab, fd, hwpt_id, 0, a, MOCK_LEN,
					 2 * MOCK_PG, bm, sizeof(bm));
		LAB_EXPECT(lab, ret == 0 && bm[0] == 1 &&
				lab_bits_count(bm, 0, MOCK_BITS / 2) == 1,
			   "a 4 KiB read of slot 1: %d", ret);
	}
	ret = lab_hwpt_set_tracking(lab, fd, hwpt_id, 0);
	LAB_EXPECT_RET(lab, ret, 0, "disabling");
out:
	teardown(lab, fd, hwpt_id, stdev_id, ioas_id);
	lab_mem_free(mem, 2 * MOCK_LEN);
}
