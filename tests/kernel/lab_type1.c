/*
 * lab_type1.c: the kernel lab's type1 scenarios (boot "viommu"): the
 * vfio-type1 plugin on the edu device behind vfio-pci and on mtty mdevs,
 * driven through its operations and through a vmig session, and the
 * container's discovery and error rows of shared docs/kernel-uapi.md 1.4
 * and 1.9, raw.
 */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <linux/vfio.h>

#include <vmig/linux-uapi.h>
#include "common/plugin_args.h"
#include "common/vfio_args.h"
#include "lab.h"
#include "lab_scenarios.h"

#define PG 4096ull
#define DP_START VFIO_IOMMU_DIRTY_PAGES_FLAG_START
#define DP_STOP VFIO_IOMMU_DIRTY_PAGES_FLAG_STOP
#define MIB (1ull << 20)
/* Two adjacent mappings, away from IOVA 0 and from the MSI window. */
#define IOVA_A (1ull << 30)
#define LEN_A (4 * MIB)
#define IOVA_B (IOVA_A + LEN_A)
#define LEN_B MIB
/* type1's largest GET_BITMAP buffer (DIRTY_BITMAP_SIZE_MAX). */
#define T1_BITMAP_MAX (1ull << 28)
/* A pointer access_ok() refuses (the kernel's half of the space). */
#define KERNEL_POINTER ((void *)0xffff888000000000ull)
/* A pointer access_ok() accepts but where nothing is mapped. */
#define UNMAPPED_POINTER ((void *)0x1000ull)

/* A container with a group (or two) in it and their devices open. */
struct rig {
	int container;
	int group[2];
	int device[2];
	struct vmig_iommu_desc io;
};

static void rig_init(struct rig *r)
{
	memset(r, 0, sizeof(*r));
	r->container = -1;
	r->group[0] = r->group[1] = -1;
	r->device[0] = r->device[1] = -1;
	r->io.size = sizeof(r->io);
	r->io.id = 1;
	r->io.kind = VMIG_IOMMU_TYPE1;
	r->io.fd = -1;
}

/*
 * Puts dev's group into the container (slot 0 or 1) and opens the device:
 * a device works (DMA, pins) while its fd is open. The first group sets the
 * IOMMU type.
 */
static int rig_add(struct lab *lab, struct rig *r, unsigned int slot,
		   const struct lab_dev *dev, unsigned long type)
{
	struct vfio_group_status st = { .argsz = sizeof(st) };
	char path[64];
	int ret;

	snprintf(path, sizeof(path), "/dev/vfio/%d", dev->group);
	r->group[slot] = lab_open(lab, path, O_RDWR);
	if (r->group[slot] < 0)
		return r->group[slot];
	ret = lab_ioctl(lab, r->group[slot], VFIO_GROUP_GET_STATUS, &st);
	if (ret < 0)
		return ret;
	LAB_EXPECT(lab, st.flags & VFIO_GROUP_FLAGS_VIABLE,
		   "group %d is not viable", dev->group);
	ret = lab_ioctl(lab, r->group[slot], VFIO_GROUP_SET_CONTAINER,
			&r->container);
	if (ret < 0)
		return ret;
	if (slot == 0) {
		ret = lab_ioctl(lab, r->container, VFIO_SET_IOMMU,
				(void *)(uintptr_t)type);
		if (ret < 0)
			return ret;
	}
	r->device[slot] = lab_ioctl(lab, r->group[slot],
				    VFIO_GROUP_GET_DEVICE_FD,
				    (void *)dev->name);
	return r->device[slot] < 0 ? r->device[slot] : 0;
}

/* Opens a container with dev's group in it, of the given IOMMU type. */
static int rig_open(struct lab *lab, struct rig *r, const struct lab_dev *dev,
		    unsigned long type)
{
	int ret;

	r->container = lab_open(lab, "/dev/vfio/vfio", O_RDWR);
	if (r->container < 0)
		return r->container;
	r->io.fd = r->container;
	ret = lab_ioctl(lab, r->container, VFIO_GET_API_VERSION, NULL);
	if (ret != VFIO_API_VERSION)
		return ret < 0 ? ret : -EPROTO;
	return rig_add(lab, r, 0, dev, type);
}

/* Closes a slot's device and group: the group leaves the container. */
static void rig_drop(struct lab *lab, struct rig *r, unsigned int slot)
{
	if (r->device[slot] >= 0)
		lab_close(lab, r->device[slot]);
	if (r->group[slot] >= 0)
		lab_close(lab, r->group[slot]);
	r->device[slot] = r->group[slot] = -1;
}

static void rig_close(struct lab *lab, struct rig *r)
{
	rig_drop(lab, r, 1);
	rig_drop(lab, r, 0);
	if (r->container >= 0)
		lab_close(lab, r->container);
	r->container = -1;
}

static int map_dma(struct lab *lab, int container, uint64_t iova, void *hva,
		   uint64_t len)
{
	struct vfio_iommu_type1_dma_map m =
		vmig_test_dma_map_rw(hva, iova, len);

	return lab_ioctl(lab, container, VFIO_IOMMU_MAP_DMA, &m);
}

/* A plain unmap; *unmapped gets the bytes the kernel says it removed. */
static int unmap_dma(struct lab *lab, int container, uint64_t iova,
		     uint64_t len, uint64_t *unmapped)
{
	struct vfio_iommu_type1_dma_unmap u = {
		.argsz = sizeof(u),
		.iova = iova,
		.size = len,
	};
	int ret = lab_ioctl(lab, container, VFIO_IOMMU_UNMAP_DMA, &u);

	if (unmapped)
		*unmapped = ret ? 0 : u.size;
	return ret;
}

/* An unmap with a dirty bitmap (header + struct vfio_bitmap). */
static int unmap_bitmap(struct lab *lab, int container, uint32_t flags,
			uint32_t argsz, uint64_t iova, uint64_t len,
			uint64_t pgsize, void *data, uint64_t bsize)
{
	uint64_t raw[6] = { 0 };
	struct vfio_iommu_type1_dma_unmap *u = (void *)raw;
	struct vfio_bitmap *b = (void *)(raw + 3);

	u->argsz = argsz;
	u->flags = flags;
	u->iova = iova;
	u->size = len;
	b->pgsize = pgsize;
	b->size = bsize;
	b->data = data;
	return lab_ioctl(lab, container, VFIO_IOMMU_UNMAP_DMA, u);
}

static int dirty_flags(struct lab *lab, int container, uint32_t argsz,
		       uint32_t flags)
{
	struct vfio_iommu_type1_dirty_bitmap db = {
		.argsz = argsz,
		.flags = flags,
	};

	return lab_ioctl(lab, container, VFIO_IOMMU_DIRTY_PAGES, &db);
}

static int dirty_get(struct lab *lab, int container, uint32_t argsz,
		     uint64_t iova, uint64_t size, uint64_t pgsize, void *data,
		     uint64_t bsize)
{
	uint64_t raw[6] = { 0 };
	struct vfio_iommu_type1_dirty_bitmap *db = (void *)raw;
	struct vfio_iommu_type1_dirty_bitmap_get *g = (void *)(raw + 1);

	db->argsz = argsz;
	db->flags = VFIO_IOMMU_DIRTY_PAGES_FLAG_GET_BITMAP;
	g->iova = iova;
	g->size = size;
	g->bitmap.pgsize = pgsize;
	g->bitmap.size = bsize;
	g->bitmap.data = data;
	return lab_ioctl(lab, container, VFIO_IOMMU_DIRTY_PAGES, db);
}

/* The GET_BITMAP argsz: the header and its payload, not the bitmap. */
#define GET_ARGSZ                                        \
	((uint32_t)(sizeof(struct vfio_iommu_type1_dirty_bitmap) + \
		    sizeof(struct vfio_iommu_type1_dirty_bitmap_get)))
#define UNMAP_BITMAP_ARGSZ                              \
	((uint32_t)(sizeof(struct vfio_iommu_type1_dma_unmap) + \
		    sizeof(struct vfio_bitmap)))

/* Bytes of a type1 bitmap for n pages: whole 64-bit words. */
static uint64_t bitmap_bytes(uint64_t npages)
{
	return (npages + 63) / 64 * 8;
}

/* ------------------------------------------------------------------ */
/* Driving the plugin                                                  */

static struct vmig_device_desc device_desc(const struct rig *r,
					   unsigned int slot, uint32_t id,
					   const struct lab_dev *dev,
					   uint32_t kind,
					   const struct vmig_range *ranges,
					   uint32_t nr_ranges)
{
	struct vmig_device_desc d = vmig_test_device_desc(
		id, dev->name, kind, r->device[slot], r->group[slot], &r->io);

	d.address = dev->name;
	d.ranges = ranges;
	d.nr_ranges = nr_ranges;
	return d;
}

/* A probe of which the precision matters here (the reason is shown). */
static int inst_probe(struct lab *lab, struct lab_inst *in,
		      const struct vmig_device_desc *d, uint32_t *precision)
{
	struct vmig_probe pr;
	int ret = lab_inst_probe(lab, in, d, &pr);

	*precision = pr.precision;
	return ret;
}

/* ------------------------------------------------------------------ */
/* type1-pci-all-dirty                                                 */

/*
 * The edu device on vfio-pci is an IOMMU-backed group outside pinned
 * scope: type1 reports every mapped page on every read, and the plugin
 * says so (ALL_MAPPED). Unmapping with a bitmap harvests the whole
 * mapping and removes it.
 */
void lab_type1_pci_all_dirty(struct lab *lab)
{
	const struct lab_dev *dev = &lab->facts.pci;
	const struct vmig_range ranges[] = { { IOVA_A, LEN_A + LEN_B } };
	const uint64_t npages = (LEN_A + LEN_B) / PG;
	struct vmig_device_desc d;
	struct lab_inst in = { 0 };
	struct rig r;
	uint64_t *bm = NULL, unmapped;
	uint8_t *mem = NULL;
	uint32_t precision, flags;
	int ret, round;

	rig_init(&r);
	LAB_REQUIRE(lab, dev->name, "this boot has no vfio-pci device");
	mem = lab_mem_alloc(LEN_A + LEN_B, 2 * MIB);
	bm = calloc(1, bitmap_bytes(npages));
	LAB_REQUIRE(lab, mem && bm, "out of memory");

	ret = rig_open(lab, &r, dev, VFIO_TYPE1v2_IOMMU);
	LAB_REQUIRE(lab, ret == 0, "cannot set up the container: %d", ret);
	ret = map_dma(lab, r.container, IOVA_A, mem, LEN_A);
	LAB_REQUIRE(lab, ret == 0, "MAP_DMA of 4 MiB failed: %d", ret);
	ret = map_dma(lab, r.container, IOVA_B, mem + LEN_A, LEN_B);
	LAB_REQUIRE(lab, ret == 0, "MAP_DMA of 1 MiB failed: %d", ret);

	ret = lab_inst_create(lab, &in, "vfio-type1");
	LAB_REQUIRE(lab, ret == 0, "the plugin cannot be created");
	d = device_desc(&r, 0, 1, dev, VMIG_DEVICE_VFIO_PCI, ranges, 1);
	ret = inst_probe(lab, &in, &d, &precision);
	LAB_EXPECT_RET(lab, ret, 0, "probe");
	LAB_EXPECT(lab, precision == VMIG_PRECISION_ALL_MAPPED,
		   "probe says %s, not ALL_MAPPED", lab_precision(precision));
	LAB_REQUIRE(lab, lab_inst_attach(lab, &in, &d) == 0, "attach failed");
	LAB_REQUIRE(lab, lab_inst_start(lab, &in, PG) == 0, "start failed");
	ret = lab_inst_status(lab, &in, 1, &precision);
	LAB_EXPECT(lab, ret == 0 && precision == VMIG_PRECISION_ALL_MAPPED,
		   "status says %s, not ALL_MAPPED", lab_precision(precision));

	/* Nothing wrote anything, yet every page is dirty, every time. */
	for (round = 0; round < 2; round++) {
		ret = lab_inst_read(lab, &in, r.io.id, IOVA_A, LEN_A, PG, 0,
				    bm);
		LAB_EXPECT_RET(lab, ret, 0, "read of the 4 MiB mapping");
		LAB_EXPECT(lab, !ret && lab_bits_count(bm, 0, LEN_A / PG) ==
						LEN_A / PG,
			   "read %d: %llu of 1024 pages dirty", round + 1,
			   (unsigned long long)lab_bits_count(bm, 0,
							      LEN_A / PG));
	}

	/* The 1 MiB mapping: harvested whole, and gone. */
	ret = lab_inst_unmap_prepare(lab, &in, r.io.id, IOVA_B, LEN_B, PG, bm,
				     &flags);
	LAB_EXPECT_RET(lab, ret, 0, "unmap_prepare of the 1 MiB mapping");
	LAB_EXPECT(lab, flags & VMIG_UNMAP_DONE,
		   "unmap_prepare did not unmap (flags 0x%x)", flags);
	LAB_EXPECT(lab, !ret && lab_bits_count(bm, 0, LEN_B / PG) ==
					LEN_B / PG,
		   "unmap harvested %llu of 256 pages",
		   (unsigned long long)lab_bits_count(bm, 0, LEN_B / PG));
	ret = unmap_dma(lab, r.container, IOVA_B, LEN_B, &unmapped);
	LAB_EXPECT(lab, ret == 0 && unmapped == 0,
		   "unmapping the range again: %d, 0x%llx bytes", ret,
		   (unsigned long long)unmapped);
	/*
	 * A read over both still succeeds (the kernel accepts a hole), and
	 * the plugin reports every page of it, the hole where the mapping
	 * was included: with a vfio-pci device it sets the bits itself,
	 * since a driver that pins pages would leave the kernel's bitmap
	 * with only the pins (vmig reads mapping by mapping).
	 */
	ret = lab_inst_read(lab, &in, r.io.id, IOVA_A, LEN_A + LEN_B, PG, 0,
			    bm);
	LAB_EXPECT(lab, ret == 0 &&
			lab_bits_count(bm, 0, (LEN_A + LEN_B) / PG) ==
				(LEN_A + LEN_B) / PG,
		   "read over the mapping and the hole: %d", ret);

	LAB_EXPECT_RET(lab, lab_inst_stop(lab, &in), 0, "stop");
	/* Stopped: type1 has no log left to read. */
	ret = lab_inst_read(lab, &in, r.io.id, IOVA_A, LEN_A, PG, 0, bm);
	LAB_EXPECT_RET(lab, ret, -EINVAL, "read after stop");
	LAB_EXPECT_RET(lab, lab_inst_detach(lab, &in, 1), 0, "detach");
	ret = unmap_dma(lab, r.container, IOVA_A, LEN_A, &unmapped);
	LAB_EXPECT(lab, ret == 0 && unmapped == LEN_A,
		   "unmapping the 4 MiB mapping: %d, 0x%llx bytes", ret,
		   (unsigned long long)unmapped);
out:
	lab_inst_destroy(lab, &in);
	rig_close(lab, &r);
	lab_mem_free(mem, LEN_A + LEN_B);
	free(bm);
}

/* ------------------------------------------------------------------ */
/* type1-mdev-pinned                                                   */

/*
 * A container holding only mtty mdevs: every group is in pinned scope
 * (emulated IOMMU), so type1 reports only pinned pages and vfio_dma_rw
 * writes; mtty does neither, so every read is clean, and the plugin says
 * EXACT. A second mdev joining keeps it so.
 */
void lab_type1_mdev_pinned(struct lab *lab)
{
	const struct lab_facts *f = &lab->facts;
	const struct vmig_range ranges[] = { { IOVA_A, MIB } };
	struct vmig_device_desc d;
	struct lab_inst in = { 0 };
	struct rig r;
	uint64_t bm[MIB / PG / 64];
	uint8_t *mem = NULL;
	uint32_t precision, flags;
	int ret, round;

	rig_init(&r);
	LAB_REQUIRE(lab, f->nr_mdevs >= 1, "this boot has no mdev");
	mem = lab_mem_alloc(MIB, 2 * MIB);
	LAB_REQUIRE(lab, mem, "out of memory");
	ret = rig_open(lab, &r, &f->mdevs[0], VFIO_TYPE1v2_IOMMU);
	LAB_REQUIRE(lab, ret == 0, "cannot set up the container: %d", ret);
	ret = map_dma(lab, r.container, IOVA_A, mem, MIB);
	LAB_REQUIRE(lab, ret == 0, "MAP_DMA failed: %d", ret);

	ret = lab_inst_create(lab, &in, "vfio-type1");
	LAB_REQUIRE(lab, ret == 0, "the plugin cannot be created");
	d = device_desc(&r, 0, 1, &f->mdevs[0], VMIG_DEVICE_MDEV, ranges, 1);
	ret = inst_probe(lab, &in, &d, &precision);
	LAB_EXPECT(lab, ret == 0 && precision == VMIG_PRECISION_EXACT,
		   "probe: %d, %s, not EXACT", ret, lab_precision(precision));
	LAB_REQUIRE(lab, lab_inst_attach(lab, &in, &d) == 0, "attach failed");
	LAB_REQUIRE(lab, lab_inst_start(lab, &in, PG) == 0, "start failed");
	ret = lab_inst_status(lab, &in, 1, &precision);
	LAB_EXPECT(lab, ret == 0 && precision == VMIG_PRECISION_EXACT,
		   "status: %d, %s, not EXACT", ret, lab_precision(precision));

	for (round = 0; round < 2; round++) {
		ret = lab_inst_read(lab, &in, r.io.id, IOVA_A, MIB, PG, 0, bm);
		LAB_EXPECT(lab,
			   ret == 0 && lab_bits_count(bm, 0, MIB / PG) == 0,
			   "read %d: %d, %llu pages dirty", round + 1, ret,
			   (unsigned long long)lab_bits_count(bm, 0,
							      MIB / PG));
	}

	/* A second mdev group joins the container: still pinned scope. */
	if (f->nr_mdevs >= 2) {
		ret = rig_add(lab, &r, 1, &f->mdevs[1], VFIO_TYPE1v2_IOMMU);
		LAB_REQUIRE(lab, ret == 0, "the second mdev cannot join: %d",
			    ret);
		d = device_desc(&r, 1, 2, &f->mdevs[1], VMIG_DEVICE_MDEV,
				ranges, 1);
		ret = inst_probe(lab, &in, &d, &precision);
		LAB_EXPECT(lab, ret == 0 && precision == VMIG_PRECISION_EXACT,
			   "probe of the second mdev: %d, %s", ret,
			   lab_precision(precision));
		LAB_REQUIRE(lab, lab_inst_attach(lab, &in, &d) == 0,
			    "attach of the second mdev failed");
		ret = lab_inst_status(lab, &in, 1, &precision);
		LAB_EXPECT(lab, ret == 0 && precision == VMIG_PRECISION_EXACT,
			   "status with two mdevs: %s",
			   lab_precision(precision));
		ret = lab_inst_read(lab, &in, r.io.id, IOVA_A, MIB, PG, 0, bm);
		LAB_EXPECT(lab,
			   ret == 0 && lab_bits_count(bm, 0, MIB / PG) == 0,
			   "read with two mdevs: %d", ret);
	}

	ret = lab_inst_unmap_prepare(lab, &in, r.io.id, IOVA_A, MIB, PG, bm,
				     &flags);
	LAB_EXPECT(lab, ret == 0 && (flags & VMIG_UNMAP_DONE) &&
			lab_bits_count(bm, 0, MIB / PG) == 0,
		   "unmap_prepare: %d, flags 0x%x, %llu pages", ret, flags,
		   (unsigned long long)lab_bits_count(bm, 0, MIB / PG));
	LAB_EXPECT_RET(lab, lab_inst_stop(lab, &in), 0, "stop");
	if (f->nr_mdevs >= 2)
		LAB_EXPECT_RET(lab, lab_inst_detach(lab, &in, 2), 0,
			       "detach 2");
	LAB_EXPECT_RET(lab, lab_inst_detach(lab, &in, 1), 0, "detach 1");
out:
	lab_inst_destroy(lab, &in);
	rig_close(lab, &r);
	lab_mem_free(mem, MIB);
}

/* ------------------------------------------------------------------ */
/* type1-scope-change                                                  */

/*
 * kernel-uapi.md 1.8 on the real kernel: an mdev container is in pinned
 * scope (clean reads); the edu group joining it puts every mapped page in
 * every report; when it leaves, every mapping is reported dirty once more
 * (vfio_iommu_type1_detach_group() fills the bitmaps), then reads are
 * clean again. The plugin's precision follows.
 */
void lab_type1_scope_change(struct lab *lab)
{
	const struct lab_facts *f = &lab->facts;
	const struct vmig_range ranges[] = { { IOVA_A, MIB } };
	struct vmig_device_desc d;
	struct lab_inst in = { 0 };
	struct rig r;
	uint64_t bm[MIB / PG / 64];
	uint8_t *mem = NULL;
	uint32_t precision, flags;
	const uint64_t n = MIB / PG;
	int ret;

	rig_init(&r);
	LAB_REQUIRE(lab, f->nr_mdevs >= 1 && f->pci.name,
		    "this boot lacks an mdev or a vfio-pci device");
	mem = lab_mem_alloc(MIB, 2 * MIB);
	LAB_REQUIRE(lab, mem, "out of memory");
	ret = rig_open(lab, &r, &f->mdevs[0], VFIO_TYPE1v2_IOMMU);
	LAB_REQUIRE(lab, ret == 0, "cannot set up the container: %d", ret);
	ret = map_dma(lab, r.container, IOVA_A, mem, MIB);
	LAB_REQUIRE(lab, ret == 0, "MAP_DMA failed: %d", ret);
	ret = lab_inst_create(lab, &in, "vfio-type1");
	LAB_REQUIRE(lab, ret == 0, "the plugin cannot be created");
	d = device_desc(&r, 0, 1, &f->mdevs[0], VMIG_DEVICE_MDEV, ranges, 1);
	LAB_REQUIRE(lab, lab_inst_attach(lab, &in, &d) == 0, "attach failed");
	LAB_REQUIRE(lab, lab_inst_start(lab, &in, PG) == 0, "start failed");
	ret = lab_inst_read(lab, &in, r.io.id, IOVA_A, MIB, PG, 0, bm);
	LAB_EXPECT(lab, ret == 0 && lab_bits_count(bm, 0, n) == 0,
		   "mdev only: %d, %llu pages dirty", ret,
		   (unsigned long long)lab_bits_count(bm, 0, n));

	/* The edu group joins while tracking runs. */
	ret = rig_add(lab, &r, 1, &f->pci, VFIO_TYPE1v2_IOMMU);
	LAB_REQUIRE(lab, ret == 0, "the edu group cannot join: %d", ret);
	d = device_desc(&r, 1, 2, &f->pci, VMIG_DEVICE_VFIO_PCI, ranges, 1);
	LAB_REQUIRE(lab, lab_inst_attach(lab, &in, &d) == 0, "attach of edu");
	ret = lab_inst_status(lab, &in, 1, &precision);
	LAB_EXPECT(lab, ret == 0 && precision == VMIG_PRECISION_ALL_MAPPED,
		   "the mdev with edu beside it: %s",
		   lab_precision(precision));
	for (int round = 0; round < 2; round++) {
		ret = lab_inst_read(lab, &in, r.io.id, IOVA_A, MIB, PG, 0, bm);
		LAB_EXPECT(lab, ret == 0 && lab_bits_count(bm, 0, n) == n,
			   "with edu, read %d: %d, %llu pages dirty",
			   round + 1, ret,
			   (unsigned long long)lab_bits_count(bm, 0, n));
	}

	/* It leaves: everything once more, then clean. */
	LAB_EXPECT_RET(lab, lab_inst_detach(lab, &in, 2), 0, "detach of edu");
	rig_drop(lab, &r, 1);
	ret = lab_inst_status(lab, &in, 1, &precision);
	LAB_EXPECT(lab, ret == 0 && precision == VMIG_PRECISION_EXACT,
		   "the mdev alone again: %s", lab_precision(precision));
	ret = lab_inst_read(lab, &in, r.io.id, IOVA_A, MIB, PG, 0, bm);
	LAB_EXPECT(lab, ret == 0 && lab_bits_count(bm, 0, n) == n,
		   "the read after edu left: %d, %llu pages dirty", ret,
		   (unsigned long long)lab_bits_count(bm, 0, n));
	ret = lab_inst_read(lab, &in, r.io.id, IOVA_A, MIB, PG, 0, bm);
	LAB_EXPECT(lab, ret == 0 && lab_bits_count(bm, 0, n) == 0,
		   "the second read after edu left: %d, %llu pages dirty",
		   ret, (unsigned long long)lab_bits_count(bm, 0, n));

	ret = lab_inst_unmap_prepare(lab, &in, r.io.id, IOVA_A, MIB, PG, bm,
				     &flags);
	LAB_EXPECT(lab, ret == 0 && (flags & VMIG_UNMAP_DONE),
		   "unmap_prepare: %d, flags 0x%x", ret, flags);
	LAB_EXPECT_RET(lab, lab_inst_stop(lab, &in), 0, "stop");
	LAB_EXPECT_RET(lab, lab_inst_detach(lab, &in, 1), 0, "detach");
out:
	lab_inst_destroy(lab, &in);
	rig_close(lab, &r);
	lab_mem_free(mem, MIB);
}

/* ------------------------------------------------------------------ */
/* type1-info                                                          */

/* Finds capability id in a GET_INFO answer; its offset, or 0. */
static uint32_t info_cap(const struct vfio_iommu_type1_info *info, uint16_t id,
			 unsigned int *position)
{
	const uint8_t *base = (const void *)info;
	uint32_t off = info->cap_offset;
	unsigned int n = 0;

	while (off && off + sizeof(struct vfio_info_cap_header) <=
			      info->argsz && n < 16) {
		struct vfio_info_cap_header h;

		memcpy(&h, base + off, sizeof(h));
		if (h.id == id) {
			if (position)
				*position = n;
			return off;
		}
		off = h.next;
		n++;
	}
	return 0;
}

/*
 * The two-call GET_INFO: the size the capabilities need, then all of it.
 * Returns the answer (free it), or NULL.
 */
static struct vfio_iommu_type1_info *get_info(struct lab *lab, int container)
{
	struct vfio_iommu_type1_info probe = { .argsz = sizeof(probe) };
	struct vfio_iommu_type1_info *info;
	int ret;

	ret = lab_ioctl(lab, container, VFIO_IOMMU_GET_INFO, &probe);
	LAB_EXPECT_RET(lab, ret, 0, "GET_INFO with argsz 24");
	if (ret)
		return NULL;
	LAB_EXPECT(lab, probe.flags & VFIO_IOMMU_INFO_CAPS,
		   "GET_INFO without CAPS: flags 0x%x", probe.flags);
	LAB_EXPECT(lab, probe.cap_offset == 0,
		   "a short GET_INFO gave cap_offset %u", probe.cap_offset);
	LAB_EXPECT(lab, probe.argsz > sizeof(probe),
		   "GET_INFO needs only %u bytes", probe.argsz);
	if (probe.argsz <= sizeof(probe) || probe.argsz > 65536)
		return NULL;
	info = calloc(1, probe.argsz);
	if (!info)
		return NULL;
	info->argsz = probe.argsz;
	ret = lab_ioctl(lab, container, VFIO_IOMMU_GET_INFO, info);
	LAB_EXPECT_RET(lab, ret, 0, "GET_INFO with the size it asked for");
	if (ret) {
		free(info);
		return NULL;
	}
	LAB_EXPECT(lab, info->cap_offset == sizeof(*info),
		   "cap_offset %u, not 24", info->cap_offset);
	return info;
}

/* The migration capability: what type1 dirty tracking offers. */
static void check_migration_cap(struct lab *lab,
				const struct vfio_iommu_type1_info *info)
{
	struct vfio_iommu_type1_info_cap_migration mig;
	unsigned int pos = 0;
	uint32_t off;

	off = info_cap(info, VFIO_IOMMU_TYPE1_INFO_CAP_MIGRATION, &pos);
	LAB_EXPECT(lab, off, "no migration capability");
	if (!off)
		return;
	LAB_EXPECT(lab, pos == 0, "the migration capability is not first");
	memcpy(&mig, (const uint8_t *)info + off, sizeof(mig));
	LAB_EXPECT(lab, mig.header.version == 1, "migration cap version %u",
		   mig.header.version);
	LAB_EXPECT(lab, mig.pgsize_bitmap == PG,
		   "migration pgsize_bitmap 0x%llx, not 4096",
		   (unsigned long long)mig.pgsize_bitmap);
	LAB_EXPECT(lab, mig.max_dirty_bitmap_size == T1_BITMAP_MAX,
		   "max_dirty_bitmap_size 0x%llx, not 256 MiB",
		   (unsigned long long)mig.max_dirty_bitmap_size);
}

/*
 * Discovery and the errno rows of kernel-uapi.md 1.9 that need no
 * special hardware, on the edu device's container; then the capability
 * chain of an mdev-only container, and a type1 (v1) container.
 */
void lab_type1_info(struct lab *lab)
{
	const struct lab_facts *f = &lab->facts;
	struct vfio_iommu_type1_info *info = NULL;
	struct vfio_iommu_type1_info shortinfo;
	struct rig r;
	uint64_t bm[8], unmapped;
	uint8_t *mem = NULL;
	const uint64_t X = IOVA_A, XN = MIB / PG;
	unsigned int pos;
	int ret;

	rig_init(&r);
	LAB_REQUIRE(lab, f->pci.name, "this boot has no vfio-pci device");
	mem = lab_mem_alloc(2 * MIB, 2 * MIB);
	LAB_REQUIRE(lab, mem, "out of memory");
	ret = rig_open(lab, &r, &f->pci, VFIO_TYPE1v2_IOMMU);
	LAB_REQUIRE(lab, ret == 0, "cannot set up the container: %d", ret);
	ret = map_dma(lab, r.container, X, mem, MIB);
	LAB_REQUIRE(lab, ret == 0, "MAP_DMA failed: %d", ret);

	/* GET_INFO: argsz below the fixed part; just the fixed part; all. */
	memset(&shortinfo, 0, sizeof(shortinfo));
	shortinfo.argsz = 12;
	ret = lab_ioctl(lab, r.container, VFIO_IOMMU_GET_INFO, &shortinfo);
	LAB_EXPECT_RET(lab, ret, -EINVAL, "GET_INFO with argsz 12");
	memset(&shortinfo, 0, sizeof(shortinfo));
	shortinfo.argsz = 16;
	ret = lab_ioctl(lab, r.container, VFIO_IOMMU_GET_INFO, &shortinfo);
	LAB_EXPECT_RET(lab, ret, 0, "GET_INFO with argsz 16");
	info = get_info(lab, r.container);
	LAB_REQUIRE(lab, info, "no GET_INFO answer");
	check_migration_cap(lab, info);
	LAB_EXPECT(lab, info_cap(info, VFIO_IOMMU_TYPE1_INFO_DMA_AVAIL, &pos) &&
			pos == 1,
		   "the dma_avail capability is not second");
	LAB_EXPECT(lab, info_cap(info, VFIO_IOMMU_TYPE1_INFO_CAP_IOVA_RANGE,
				 &pos) && pos == 2,
		   "the iova-range capability is not third (edu has an IOMMU)");
	free(info);
	info = NULL;

	/* VFIO_IOMMU_DIRTY_PAGES's own checks. */
	ret = dirty_get(lab, r.container, GET_ARGSZ, X, MIB, PG, bm,
			bitmap_bytes(XN));
	LAB_EXPECT_RET(lab, ret, -EINVAL, "GET_BITMAP before START");
	ret = dirty_flags(lab, r.container, 4, DP_START);
	LAB_EXPECT_RET(lab, ret, -EINVAL, "START with argsz 4");
	ret = dirty_flags(lab, r.container, 8, 0x8);
	LAB_EXPECT_RET(lab, ret, -EINVAL, "an unknown flag");
	ret = dirty_flags(lab, r.container, 8, 0);
	LAB_EXPECT_RET(lab, ret, -EINVAL, "no flag");
	ret = dirty_flags(lab, r.container, 8,
			  VFIO_IOMMU_DIRTY_PAGES_FLAG_START |
				  VFIO_IOMMU_DIRTY_PAGES_FLAG_STOP);
	LAB_EXPECT_RET(lab, ret, -EINVAL, "START|STOP");
	ret = unmap_bitmap(lab, r.container,
			   VFIO_DMA_UNMAP_FLAG_GET_DIRTY_BITMAP,
			   UNMAP_BITMAP_ARGSZ, X, MIB, PG, bm,
			   bitmap_bytes(XN));
	LAB_EXPECT_RET(lab, ret, -EINVAL, "unmap with bitmap before START");
	ret = dirty_flags(lab, r.container, 8, DP_START);
	LAB_REQUIRE(lab, ret == 0, "START failed: %d", ret);
	ret = dirty_flags(lab, r.container, 8, DP_START);
	LAB_EXPECT_RET(lab, ret, 0, "a second START");

	/* GET_BITMAP's arguments, one wrong thing at a time. */
	ret = dirty_get(lab, r.container, GET_ARGSZ - 1, X, MIB, PG, bm,
			bitmap_bytes(XN));
	LAB_EXPECT_RET(lab, ret, -EINVAL, "GET_BITMAP with argsz 47");
	ret = dirty_get(lab, r.container, GET_ARGSZ, X, MIB, 2 * PG, bm,
			bitmap_bytes(XN));
	LAB_EXPECT_RET(lab, ret, -EINVAL, "GET_BITMAP with pgsize 8192");
	ret = dirty_get(lab, r.container, GET_ARGSZ, X + 2048, MIB, PG, bm,
			bitmap_bytes(XN));
	LAB_EXPECT_RET(lab, ret, -EINVAL, "GET_BITMAP at an unaligned iova");
	ret = dirty_get(lab, r.container, GET_ARGSZ, X, MIB - 2048, PG, bm,
			bitmap_bytes(XN));
	LAB_EXPECT_RET(lab, ret, -EINVAL, "GET_BITMAP of an unaligned size");
	ret = dirty_get(lab, r.container, GET_ARGSZ, X, 0, PG, bm,
			bitmap_bytes(XN));
	LAB_EXPECT_RET(lab, ret, -EINVAL, "GET_BITMAP of size 0");
	ret = dirty_get(lab, r.container, GET_ARGSZ, ~0ull - PG + 1, 2 * PG, PG,
			bm, 8);
	LAB_EXPECT_RET(lab, ret, -EINVAL, "GET_BITMAP wrapping around");
	ret = dirty_get(lab, r.container, GET_ARGSZ, X + PG, MIB - PG, PG, bm,
			bitmap_bytes(XN));
	LAB_EXPECT_RET(lab, ret, -EINVAL, "GET_BITMAP starting in a mapping");
	ret = dirty_get(lab, r.container, GET_ARGSZ, X, MIB / 2, PG, bm,
			bitmap_bytes(XN));
	LAB_EXPECT_RET(lab, ret, -EINVAL, "GET_BITMAP ending in a mapping");
	ret = dirty_get(lab, r.container, GET_ARGSZ, X, MIB, PG, bm,
			bitmap_bytes(XN) - 8);
	LAB_EXPECT_RET(lab, ret, -EINVAL, "GET_BITMAP with a small bitmap");
	ret = dirty_get(lab, r.container, GET_ARGSZ, X, MIB, PG, bm, 0);
	LAB_EXPECT_RET(lab, ret, -EINVAL, "GET_BITMAP with bitmap.size 0");
	ret = dirty_get(lab, r.container, GET_ARGSZ, X, MIB, PG, mem,
			T1_BITMAP_MAX + 8);
	LAB_EXPECT_RET(lab, ret, -EINVAL, "GET_BITMAP with a 256 MiB+8 bitmap");
	ret = dirty_get(lab, r.container, GET_ARGSZ, X, MIB, PG,
			KERNEL_POINTER, bitmap_bytes(XN));
	LAB_EXPECT_RET(lab, ret, -EINVAL, "GET_BITMAP into kernel memory");
	ret = dirty_get(lab, r.container, GET_ARGSZ, X, MIB, PG,
			UNMAPPED_POINTER, bitmap_bytes(XN));
	LAB_EXPECT_RET(lab, ret, -EFAULT, "GET_BITMAP into unmapped memory");

	/* Right, over the mapping; over a hole; half hole, half mapping. */
	memset(bm, 0, sizeof(bm));
	ret = dirty_get(lab, r.container, GET_ARGSZ, X, MIB, PG, bm,
			bitmap_bytes(XN));
	LAB_EXPECT(lab, ret == 0 && lab_bits_count(bm, 0, XN) == XN,
		   "GET_BITMAP of the mapping: %d, %llu of 256 pages", ret,
		   (unsigned long long)lab_bits_count(bm, 0, XN));
	memset(bm, 0, sizeof(bm));
	ret = dirty_get(lab, r.container, GET_ARGSZ, X + MIB, MIB, PG, bm,
			bitmap_bytes(XN));
	LAB_EXPECT(lab, ret == 0 && lab_bits_count(bm, 0, XN) == 0,
		   "GET_BITMAP of a hole: %d", ret);
	/*
	 * A mapping that starts 4 pages into the request, with a buffer of
	 * ones: the kernel ORs the first word's 4 hole bits in from the
	 * buffer and writes whole words up to the mapping's end (bit 259,
	 * word 4), leaving the words after it as they were.
	 */
	memset(bm, 0xff, sizeof(bm));
	ret = dirty_get(lab, r.container, GET_ARGSZ, X - 4 * PG, MIB + 4 * PG,
			PG, bm, bitmap_bytes(XN + 4));
	LAB_EXPECT_RET(lab, ret, 0, "GET_BITMAP starting in a hole");
	lab_say_bitmap(lab, "whole buffer after it", bm, 512);
	LAB_EXPECT(lab, lab_bits_count(bm, 0, 260) == 260 &&
			lab_bits_count(bm, 260, 60) == 0 &&
			lab_bits_count(bm, 320, 192) == 192,
		   "the buffer of ones came back otherwise");

	/* Unmap with a bitmap: its own checks. */
	ret = unmap_bitmap(lab, r.container,
			   VFIO_DMA_UNMAP_FLAG_GET_DIRTY_BITMAP |
				   VFIO_DMA_UNMAP_FLAG_ALL,
			   UNMAP_BITMAP_ARGSZ, 0, 0, PG, bm, bitmap_bytes(XN));
	LAB_EXPECT_RET(lab, ret, -EINVAL, "unmap with bitmap and ALL");
	ret = unmap_bitmap(lab, r.container,
			   VFIO_DMA_UNMAP_FLAG_GET_DIRTY_BITMAP |
				   VFIO_DMA_UNMAP_FLAG_VADDR,
			   UNMAP_BITMAP_ARGSZ, X, MIB, PG, bm,
			   bitmap_bytes(XN));
	LAB_EXPECT_RET(lab, ret, -EINVAL, "unmap with bitmap and VADDR");
	ret = unmap_bitmap(lab, r.container,
			   VFIO_DMA_UNMAP_FLAG_GET_DIRTY_BITMAP,
			   UNMAP_BITMAP_ARGSZ - 1, X, MIB, PG, bm,
			   bitmap_bytes(XN));
	LAB_EXPECT_RET(lab, ret, -EINVAL, "unmap with bitmap, argsz 47");
	ret = unmap_bitmap(lab, r.container,
			   VFIO_DMA_UNMAP_FLAG_GET_DIRTY_BITMAP,
			   UNMAP_BITMAP_ARGSZ, X, MIB, 2 * PG, bm,
			   bitmap_bytes(XN));
	LAB_EXPECT_RET(lab, ret, -EINVAL, "unmap with bitmap, pgsize 8192");
	ret = unmap_bitmap(lab, r.container,
			   VFIO_DMA_UNMAP_FLAG_GET_DIRTY_BITMAP,
			   UNMAP_BITMAP_ARGSZ, X, MIB / 2, PG, bm,
			   bitmap_bytes(XN));
	LAB_EXPECT_RET(lab, ret, -EINVAL, "unmap with bitmap, bisecting");
	ret = unmap_bitmap(lab, r.container,
			   VFIO_DMA_UNMAP_FLAG_GET_DIRTY_BITMAP,
			   UNMAP_BITMAP_ARGSZ, X, MIB, PG, bm,
			   bitmap_bytes(XN) - 8);
	LAB_EXPECT_RET(lab, ret, -EINVAL, "unmap with a small bitmap");
	/* None of those unmapped anything: the mapping still reports. */
	memset(bm, 0, sizeof(bm));
	ret = dirty_get(lab, r.container, GET_ARGSZ, X, MIB, PG, bm,
			bitmap_bytes(XN));
	LAB_EXPECT(lab, ret == 0 && lab_bits_count(bm, 0, XN) == XN,
		   "the mapping after the failed unmaps: %d", ret);

	/* A mapping made while tracking: all dirty too (non-pinned group). */
	ret = map_dma(lab, r.container, X + MIB, mem + MIB, 64 * 1024);
	LAB_EXPECT_RET(lab, ret, 0, "MAP_DMA while tracking");
	memset(bm, 0, sizeof(bm));
	ret = dirty_get(lab, r.container, GET_ARGSZ, X + MIB, 64 * 1024, PG,
			bm, 8);
	LAB_EXPECT(lab, ret == 0 && lab_bits_count(bm, 0, 16) == 16,
		   "GET_BITMAP of a mapping made while tracking: %d", ret);

	ret = dirty_flags(lab, r.container, 8, DP_STOP);
	LAB_EXPECT_RET(lab, ret, 0, "STOP");
	ret = dirty_flags(lab, r.container, 8, DP_STOP);
	LAB_EXPECT_RET(lab, ret, 0, "a second STOP");
	ret = dirty_get(lab, r.container, GET_ARGSZ, X, MIB, PG, bm,
			bitmap_bytes(XN));
	LAB_EXPECT_RET(lab, ret, -EINVAL, "GET_BITMAP after STOP");
	ret = unmap_dma(lab, r.container, X, 2 * MIB, &unmapped);
	LAB_EXPECT(lab, ret == 0 && unmapped == MIB + 64 * 1024,
		   "unmapping both: %d, 0x%llx bytes", ret,
		   (unsigned long long)unmapped);
	rig_close(lab, &r);

	/* An mdev-only container: no IOMMU domain, no IOVA list. */
	if (f->nr_mdevs >= 1) {
		ret = rig_open(lab, &r, &f->mdevs[0], VFIO_TYPE1v2_IOMMU);
		LAB_REQUIRE(lab, ret == 0, "cannot set up the mdev container");
		info = get_info(lab, r.container);
		LAB_REQUIRE(lab, info, "no GET_INFO answer (mdev)");
		check_migration_cap(lab, info);
		LAB_EXPECT(lab, !info_cap(info,
					  VFIO_IOMMU_TYPE1_INFO_CAP_IOVA_RANGE,
					  NULL),
			   "an mdev-only container has an iova-range cap");
		free(info);
		info = NULL;
		rig_close(lab, &r);

		/* type1 (v1) has no dirty tracking: EACCES. */
		ret = rig_open(lab, &r, &f->mdevs[0], VFIO_TYPE1_IOMMU);
		LAB_REQUIRE(lab, ret == 0, "cannot set up a v1 container");
		ret = dirty_flags(lab, r.container, 8,
				  VFIO_IOMMU_DIRTY_PAGES_FLAG_START);
		LAB_EXPECT_RET(lab, ret, -EACCES, "START on a v1 container");
	}
out:
	free(info);
	rig_close(lab, &r);
	lab_mem_free(mem, 2 * MIB);
}

/* ------------------------------------------------------------------ */
/* type1-pci-session                                                   */

static void session_log(void *opaque, enum vmig_log_level level,
			const char *msg)
{
	lab_note(opaque, "session log %d: %s", (int)level, msg);
}

static int64_t sync_count(struct lab *lab, vmig_session *s)
{
	int64_t n = vmig_dirty_sync(s);

	lab_say(lab, "session dirty_sync = %lld", (long long)n);
	return n;
}

/*
 * The same device through a vmig session, as a VMM embeds it: the
 * session maps guest memory through the kernel, picks vfio-type1 for the
 * edu device (ALL_MAPPED), and its syncs report every mapped page; an
 * unmap while tracking harvests the range's last bits.
 */
void lab_type1_pci_session(struct lab *lab)
{
	const struct lab_dev *dev = &lab->facts.pci;
	const uint64_t len = LEN_A + LEN_B;
	struct vmig_session_params sp = {
		.size = sizeof(sp),
		.role = VMIG_ROLE_SOURCE,
		.log = session_log,
		.log_opaque = lab,
		.log_level = VMIG_LOG_INFO,
		.kernel = &lab->host,
	};
	struct vmig_device_status ds = { .size = sizeof(ds) };
	vmig_session *s = NULL;
	struct rig r;
	uint8_t *mem = NULL;
	const uint64_t *bm;
	uint64_t npages;
	uint32_t region = 0, io = 0, id = 0;
	int64_t n;
	char eb[32];
	int ret;

	rig_init(&r);
	LAB_REQUIRE(lab, dev->name, "this boot has no vfio-pci device");
	mem = lab_mem_alloc(len, 2 * MIB);
	LAB_REQUIRE(lab, mem, "out of memory");
	ret = rig_open(lab, &r, dev, VFIO_TYPE1v2_IOMMU);
	LAB_REQUIRE(lab, ret == 0, "cannot set up the container: %d", ret);

	ret = vmig_session_new(&sp, &s);
	LAB_REQUIRE(lab, ret == 0, "vmig_session_new: %d", ret);
	ret = vmig_plugin_add_path(s, lab->plugin_dir);
	LAB_REQUIRE(lab, ret == 0, "vmig_plugin_add_path: %d", ret);
	ret = vmig_plugin_load(s, "vfio-type1");
	lab_say(lab, "session plugin_load vfio-type1 = %s",
		lab_err(ret, eb, sizeof(eb)));
	LAB_REQUIRE(lab, ret == 0, "vmig_plugin_load: %s", vmig_errmsg(s));
	{
		struct vmig_region rg = {
			.size = sizeof(rg),
			.gpa = 0,
			.length = len,
			.hva = mem,
			.fd = -1,
		};
		struct vmig_iommu ic = {
			.size = sizeof(ic),
			.kind = VMIG_IOMMU_TYPE1,
			.fd = r.container,
		};

		ret = vmig_region_add(s, &rg, &region);
		LAB_REQUIRE(lab, ret == 0, "vmig_region_add: %s",
			    vmig_errmsg(s));
		ret = vmig_iommu_add(s, &ic, &io);
		LAB_REQUIRE(lab, ret == 0, "vmig_iommu_add: %s",
			    vmig_errmsg(s));
	}
	{
		/* IOVA is not GPA here, as with a vIOMMU in the guest. */
		struct vmig_dma_map m = {
			.size = sizeof(m),
			.flags = VMIG_DMA_READ | VMIG_DMA_WRITE,
			.iommu_id = io,
			.iova = IOVA_A,
			.length = LEN_A,
			.gpa = 0,
		};

		ret = vmig_dma_map(s, &m);
		lab_say(lab, "session dma_map 4 MiB = %s",
			lab_err(ret, eb, sizeof(eb)));
		LAB_REQUIRE(lab, ret == 0, "vmig_dma_map: %s", vmig_errmsg(s));
		m.iova = IOVA_B;
		m.length = LEN_B;
		m.gpa = LEN_A;
		ret = vmig_dma_map(s, &m);
		lab_say(lab, "session dma_map 1 MiB = %s",
			lab_err(ret, eb, sizeof(eb)));
		LAB_REQUIRE(lab, ret == 0, "vmig_dma_map: %s", vmig_errmsg(s));
	}
	{
		struct vmig_device vd = {
			.size = sizeof(vd),
			.kind = VMIG_DEVICE_VFIO_PCI,
			.name = "edu",
			.address = dev->name,
			.iommu_id = io,
			.device_fd = r.device[0],
			.group_fd = r.group[0],
		};

		ret = vmig_device_add(s, &vd, &id);
		LAB_REQUIRE(lab, ret == 0, "vmig_device_add: %s",
			    vmig_errmsg(s));
	}

	ret = vmig_tracking_start(s);
	lab_say(lab, "session tracking_start = %s",
		lab_err(ret, eb, sizeof(eb)));
	LAB_REQUIRE(lab, ret == 0, "vmig_tracking_start: %s", vmig_errmsg(s));
	ret = vmig_device_status(s, id, &ds);
	lab_say(lab, "session device_status = %s source=%s precision=%s",
		lab_err(ret, eb, sizeof(eb)), ds.source,
		lab_precision(ds.precision));
	LAB_EXPECT(lab, ret == 0 && !strcmp(ds.source, "vfio-type1") &&
			ds.precision == VMIG_PRECISION_ALL_MAPPED,
		   "the edu device is tracked by %s (%s)", ds.source,
		   lab_precision(ds.precision));

	/* Every mapped page of the region, on every sync. */
	for (int round = 0; round < 2; round++) {
		vmig_dirty_clear(s, region);
		n = sync_count(lab, s);
		LAB_EXPECT(lab, n == (int64_t)(len / PG),
			   "sync %d: %lld dirty pages, not %llu", round + 1,
			   (long long)n, (unsigned long long)(len / PG));
	}

	/* Unmapping the 1 MiB while tracking harvests its last bits. */
	vmig_dirty_clear(s, region);
	ret = vmig_dma_unmap(s, io, IOVA_B, LEN_B);
	lab_say(lab, "session dma_unmap 1 MiB = %s",
		lab_err(ret, eb, sizeof(eb)));
	LAB_EXPECT(lab, ret == 0, "vmig_dma_unmap: %s", vmig_errmsg(s));
	ret = vmig_dirty_bitmap(s, region, &bm, &npages);
	LAB_REQUIRE(lab, ret == 0, "vmig_dirty_bitmap: %d", ret);
	lab_say_bitmap(lab, "region after the unmap", bm, npages);
	LAB_EXPECT(lab, lab_bits_count(bm, LEN_A / PG, LEN_B / PG) ==
				LEN_B / PG,
		   "the unmapped range was not harvested");
	vmig_dirty_clear(s, region);
	n = sync_count(lab, s);
	LAB_EXPECT(lab, n == (int64_t)(LEN_A / PG),
		   "sync after the unmap: %lld dirty pages, not 1024",
		   (long long)n);

	ret = vmig_tracking_stop(s);
	lab_say(lab, "session tracking_stop = %s",
		lab_err(ret, eb, sizeof(eb)));
	LAB_EXPECT(lab, ret == 0, "vmig_tracking_stop: %d", ret);
out:
	if (s) {
		lab_say(lab, "session free");
		vmig_session_free(s);
	}
	rig_close(lab, &r);
	lab_mem_free(mem, len);
}
