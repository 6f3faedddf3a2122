/*
 * lab_iommufd_plugin.c: the iommufd plugin through its operations, as
 * vmig's core drives it: on the selftest mock domains of the "mock" boot
 * (a device with dirty tracking, one without, one with 1 MiB IOPTEs), and
 * on the edu device behind QEMU's Intel vIOMMU, which has none.
 *
 * A mock device has no VFIO cdev: the plugin is handed the lab's stand-in
 * (lab_mock_device_open), on which an attach is the selftest's
 * MOCK_DOMAIN_REPLACE of that device, so the plugin's placement runs
 * against the kernel's own checks. The HWPT the plugin allocates is found
 * from the recorder (lab->last_hwpt_id: the kernel chooses it, so it is
 * never said), to mark its slots with IOMMU_TEST_OP_DIRTY.
 */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <string.h>
#include <sys/mman.h>

#include <vmig/linux-uapi.h>
#include "common/plugin_args.h"
#include "lab.h"
#include "lab_scenarios.h"

#define MIB (1ull << 20)
#define PG 4096ull
/* The mock IOPTE (MOCK_IO_PAGE_SIZE): half a CPU page. */
#define SLOT VK_MOCK_PAGE_SIZE
#define SLOTS (MIB / SLOT)
/* Two 1 MiB mappings in the mock aperture with a 1 MiB hole between. */
#define MAP_A VK_MOCK_APERTURE_START
#define MAP_B (VK_MOCK_APERTURE_START + 2 * MIB)

static void ioas_unmap(struct lab *lab, int fd, uint32_t ioas_id,
		       uint64_t iova, uint64_t len)
{
	struct vk_iommu_ioas_unmap u = {
		.size = sizeof(u),
		.ioas_id = ioas_id,
		.iova = iova,
		.length = len,
	};
	int ret = lab_ioctl(lab, fd, VK_IOMMU_IOAS_UNMAP, &u);

	LAB_EXPECT(lab, ret == 0 && u.length == len,
		   "IOAS_UNMAP of 0x%llx: %d, 0x%llx bytes",
		   (unsigned long long)iova, ret,
		   (unsigned long long)u.length);
}

/* The 2 KiB slots of [iova, iova + MIB) whose index is listed. */
static void slots_set(uint64_t *bm, size_t bytes, const unsigned int *slots,
		      unsigned int n)
{
	unsigned int i;

	memset(bm, 0, bytes);
	for (i = 0; i < n; i++)
		bm[slots[i] / 64] |= 1ull << (slots[i] % 64);
}

/* The same slots, as bits of page_size pages (each ORs its slots). */
static void slots_as_pages(uint64_t *bm, size_t bytes,
			   const unsigned int *slots, unsigned int n,
			   uint64_t page_size)
{
	unsigned int i;

	memset(bm, 0, bytes);
	for (i = 0; i < n; i++) {
		uint64_t b = slots[i] * SLOT / page_size;

		bm[b / 64] |= 1ull << (b % 64);
	}
}

/*
 * IOMMU_TEST_OP_DIRTY: marks the listed 2 KiB slots of the 1 MiB at iova
 * dirty in the HWPT, as a device's write would; expects them all marked.
 */
static int mark(struct lab *lab, int fd, uint32_t hwpt_id, uint64_t iova,
		const unsigned int *slots, unsigned int n)
{
	uint64_t marks[SLOTS / 64];
	struct vk_iommu_test_cmd t = {
		.size = sizeof(t),
		.op = VK_IOMMU_TEST_OP_DIRTY,
		.id = hwpt_id,
	};
	int ret;

	slots_set(marks, sizeof(marks), slots, n);
	t.dirty.iova = iova;
	t.dirty.length = MIB;
	t.dirty.page_size = SLOT;
	t.dirty.uptr = (uintptr_t)marks;
	ret = lab_ioctl(lab, fd, VK_IOMMU_TEST_CMD, &t);
	LAB_EXPECT(lab, ret == 0 && t.dirty.out_nr_dirty == n,
		   "TEST_OP_DIRTY at 0x%llx: %d, %llu of %u slots marked",
		   (unsigned long long)iova, ret,
		   (unsigned long long)t.dirty.out_nr_dirty, n);
	return ret;
}

/* The first nbits of two bitmaps are the same. */
static bool bits_equal(const uint64_t *a, const uint64_t *b, uint64_t nbits)
{
	uint64_t i;

	for (i = 0; i < nbits; i++)
		if (((a[i / 64] ^ b[i / 64]) >> (i % 64)) & 1)
			return false;
	return true;
}

static struct vmig_device_desc mock_desc(uint32_t id, const char *name,
					 const struct lab_mock *m,
					 const struct vmig_iommu_desc *io,
					 const struct vmig_range *ranges,
					 uint32_t nr_ranges)
{
	struct vmig_device_desc d = vmig_test_device_desc(
		id, name, VMIG_DEVICE_VFIO_PCI, m->fd, -1, io);

	d.address = name;
	d.iommufd_id = m->idev_id;
	d.ranges = ranges;
	d.nr_ranges = nr_ranges;
	return d;
}

/* ------------------------------------------------------------------ */
/* iommufd-plugin-mock                                                 */

/* What a device wrote: slots of mapping A, and of mapping B. */
static const unsigned int slots_a[] = { 0, 1, 5, 100, 511 };
static const unsigned int slots_b[] = { 2, 3, 300 };
#define NA (sizeof(slots_a) / sizeof(slots_a[0]))
#define NB (sizeof(slots_b) / sizeof(slots_b[0]))

/*
 * Reads mapping A (or B) through the plugin at page_size and expects
 * exactly the slots of want (none when n is 0).
 */
static void expect_read(struct lab *lab, struct lab_inst *in,
			uint32_t iommu_id, uint64_t iova, uint64_t page_size,
			uint32_t flags, const unsigned int *want,
			unsigned int n, const char *what)
{
	uint64_t bm[SLOTS / 64], exp[SLOTS / 64];
	int ret;

	ret = lab_inst_read(lab, in, iommu_id, iova, MIB, page_size, flags,
			    bm);
	slots_as_pages(exp, sizeof(exp), want, n, page_size);
	LAB_EXPECT(lab, ret == 0 && bits_equal(bm, exp, MIB / page_size),
		   "%s: %d, %llu bits set, not the %u expected", what, ret,
		   (unsigned long long)lab_bits_count(bm, 0,
						      MIB / page_size),
		   n ? (unsigned int)lab_bits_count(exp, 0,
						    MIB / page_size) : 0);
}

/*
 * The plugin on mock domains: a device with dirty tracking and one
 * without (MOCK_FLAGS_DEVICE_NO_DIRTY) on one IOAS with two mappings and
 * a hole. The first is probed EXACT, placed on a dirty-tracking HWPT of
 * the plugin's own, and what IOMMU_TEST_OP_DIRTY marks there comes back
 * exactly, at 2 KiB and, ORed, at 4 KiB; a NO_CLEAR read and
 * unmap_prepare leave them for the next read. The second is declined
 * ("no dirty tracking"), and an attach of it anyway fails: the dirty HWPT
 * refuses it (EINVAL), a HWPT of its own cannot track (EOPNOTSUPP); the
 * first stays tracked. A read per mapping is exact where a raw read
 * across the hole reports the first mapping only; with tracking off a raw
 * read says 0 and nothing, and the plugin refuses to read.
 */
void lab_iommufd_plugin_mock(struct lab *lab)
{
	const struct vmig_range ranges[] = { { MAP_A, MIB }, { MAP_B, MIB } };
	struct vk_iommu_ioas_alloc ioas = { .size = sizeof(ioas) };
	struct vmig_iommu_desc io = {
		.size = sizeof(io),
		.id = 1,
		.kind = VMIG_IOMMU_IOMMUFD,
		.fd = -1,
	};
	struct lab_mock cap = { .fd = -1 }, nod = { .fd = -1 };
	struct vmig_device_desc d1, d2;
	struct lab_inst in = { 0 };
	struct vmig_probe pr;
	uint64_t bm[3 * SLOTS / 64], exp[3 * SLOTS / 64];
	uint32_t hwpt = 0, precision, flags;
	bool mapped = false;
	uint8_t *mem = NULL;
	int fd = -1, ret;

	mem = lab_mem_alloc(2 * MIB, 2 * MIB);
	LAB_REQUIRE(lab, mem, "out of memory");
	fd = lab_open(lab, "/dev/iommu", O_RDWR);
	LAB_REQUIRE(lab, fd >= 0, "cannot open /dev/iommu: %d", fd);
	ret = lab_ioctl(lab, fd, VK_IOMMU_IOAS_ALLOC, &ioas);
	LAB_REQUIRE(lab, ret == 0, "IOAS_ALLOC: %d", ret);
	io.fd = fd;
	io.ioas_id = ioas.out_ioas_id;
	ret = lab_mock_new(lab, fd, io.ioas_id, 0, &cap);
	LAB_REQUIRE(lab, ret == 0, "MOCK_DOMAIN: %d", ret);
	ret = lab_mock_new(lab, fd, io.ioas_id, VK_MOCK_FLAGS_DEVICE_NO_DIRTY,
			   &nod);
	LAB_REQUIRE(lab, ret == 0, "MOCK_DOMAIN_FLAGS(NO_DIRTY): %d", ret);
	ret = lab_ioas_map(lab, fd, io.ioas_id, MAP_A, mem, MIB);
	LAB_REQUIRE(lab, ret == 0, "IOAS_MAP of A: %d", ret);
	ret = lab_ioas_map(lab, fd, io.ioas_id, MAP_B, mem + MIB, MIB);
	LAB_REQUIRE(lab, ret == 0, "IOAS_MAP of B: %d", ret);
	mapped = true;
	d1 = mock_desc(1, "mock-dirty", &cap, &io, ranges, 2);
	d2 = mock_desc(2, "mock-no-dirty", &nod, &io, ranges, 2);

	ret = lab_inst_create(lab, &in, "iommufd");
	LAB_REQUIRE(lab, ret == 0, "the plugin cannot be created");
	/*
	 * A superset: the mock may map 1 MiB IOPTEs (HUGE_IOVA, a flag
	 * userspace cannot see), and the 1 MiB ranges hold one each.
	 */
	ret = lab_inst_probe(lab, &in, &d1, &pr);
	LAB_EXPECT(lab, ret == 0 && pr.precision == VMIG_PRECISION_SUPERSET,
		   "probe of the capable device: %d, %s", ret,
		   lab_precision(pr.precision));
	ret = lab_inst_probe(lab, &in, &d2, &pr);
	LAB_EXPECT(lab, ret == 0 && pr.precision == VMIG_PRECISION_NONE &&
			strstr(pr.reason, "no dirty tracking"),
		   "probe of the NO_DIRTY device: %d, %s (%s)", ret,
		   lab_precision(pr.precision), pr.reason);

	lab->last_hwpt_id = 0;
	ret = lab_inst_attach(lab, &in, &d1);
	LAB_REQUIRE(lab, ret == 0, "attach of the capable device: %d", ret);
	hwpt = lab->last_hwpt_id;
	LAB_REQUIRE(lab, hwpt, "the plugin allocated no HWPT");
	LAB_REQUIRE(lab, lab_inst_start(lab, &in, PG) == 0, "start failed");

	/* Placement: the dirty HWPT refuses the device, so does the driver. */
	{
		struct vk_vfio_device_attach_iommufd_pt a = {
			.argsz = sizeof(a),
			.pt_id = hwpt,
		};

		ret = lab_ioctl(lab, nod.fd, VK_VFIO_DEVICE_ATTACH_IOMMUFD_PT,
				&a);
		LAB_EXPECT_RET(lab, ret, -EINVAL,
			       "the NO_DIRTY device onto the dirty HWPT");
	}
	ret = lab_inst_attach(lab, &in, &d2);
	LAB_EXPECT_RET(lab, ret, -EOPNOTSUPP,
		       "the plugin's attach of the NO_DIRTY device");
	ret = lab_inst_status(lab, &in, 2, &precision);
	LAB_EXPECT_RET(lab, ret, -ENOENT, "status of the NO_DIRTY device");
	ret = lab_inst_status(lab, &in, 1, &precision);
	LAB_EXPECT(lab, ret == 0 && precision == VMIG_PRECISION_SUPERSET,
		   "status of the capable device: %d, %s", ret,
		   lab_precision(precision));

	/* At 2 KiB, the IOPTE: exactly the slots; the read cleared them. */
	mark(lab, fd, hwpt, MAP_A, slots_a, NA);
	expect_read(lab, &in, io.id, MAP_A, SLOT, 0, slots_a, NA,
		    "a read of A at 2 KiB");
	expect_read(lab, &in, io.id, MAP_A, SLOT, 0, NULL, 0,
		    "a second read of A at 2 KiB");
	/* At 4 KiB: slots 0 and 1 are page 0, and so on. */
	mark(lab, fd, hwpt, MAP_A, slots_a, NA);
	expect_read(lab, &in, io.id, MAP_A, PG, 0, slots_a, NA,
		    "a read of A at 4 KiB");
	expect_read(lab, &in, io.id, MAP_A, PG, 0, NULL, 0,
		    "a second read of A at 4 KiB");

	/*
	 * A read with VMIG_READ_NO_CLEAR, then unmap_prepare, harvest
	 * without clearing (and the plugin does not unmap).
	 */
	mark(lab, fd, hwpt, MAP_A, slots_a, NA);
	expect_read(lab, &in, io.id, MAP_A, PG, VMIG_READ_NO_CLEAR, slots_a,
		    NA, "a NO_CLEAR read of A");
	ret = lab_inst_unmap_prepare(lab, &in, io.id, MAP_A, MIB, PG, bm,
				     &flags);
	slots_as_pages(exp, sizeof(exp), slots_a, NA, PG);
	LAB_EXPECT(lab, ret == 0 && flags == 0 &&
			bits_equal(bm, exp, MIB / PG),
		   "unmap_prepare of A: %d, flags 0x%x, %llu bits", ret, flags,
		   (unsigned long long)lab_bits_count(bm, 0, MIB / PG));
	expect_read(lab, &in, io.id, MAP_A, PG, 0, slots_a, NA,
		    "a read of A after unmap_prepare");
	expect_read(lab, &in, io.id, MAP_A, PG, 0, NULL, 0,
		    "a read of A after that");

	/* One mapping at a time: each exact. */
	mark(lab, fd, hwpt, MAP_A, slots_a, NA);
	mark(lab, fd, hwpt, MAP_B, slots_b, NB);
	expect_read(lab, &in, io.id, MAP_A, PG, 0, slots_a, NA,
		    "a read of A alone");
	expect_read(lab, &in, io.id, MAP_B, PG, 0, slots_b, NB,
		    "a read of B alone");

	/*
	 * Raw, across the hole: success, A's pages only; B was neither
	 * reported nor cleared (its pages come back on the next read).
	 */
	mark(lab, fd, hwpt, MAP_A, slots_a, NA);
	mark(lab, fd, hwpt, MAP_B, slots_b, NB);
	ret = lab_hwpt_get_dirty(lab, fd, hwpt, 0, MAP_A, 3 * MIB, PG, bm,
				 sizeof(bm));
	slots_as_pages(exp, sizeof(exp), slots_a, NA, PG);
	LAB_EXPECT(lab, ret == 0 && bits_equal(bm, exp, MIB / PG) &&
			lab_bits_count(bm, MIB / PG, 2 * MIB / PG) == 0,
		   "a raw read across the hole: %d, %llu bits after A", ret,
		   (unsigned long long)lab_bits_count(bm, MIB / PG,
						      2 * MIB / PG));
	expect_read(lab, &in, io.id, MAP_B, PG, 0, slots_b, NB,
		    "a read of B after the raw read across the hole");
	expect_read(lab, &in, io.id, MAP_A, PG, 0, NULL, 0,
		    "a read of A after the raw read across the hole");

	/* Tracking off: the kernel answers 0 and nothing; the plugin, no. */
	mark(lab, fd, hwpt, MAP_A, slots_a, NA);
	LAB_EXPECT_RET(lab, lab_inst_stop(lab, &in), 0, "stop");
	ret = lab_hwpt_get_dirty(lab, fd, hwpt, 0, MAP_A, MIB, PG, bm,
				 sizeof(bm));
	LAB_EXPECT(lab, ret == 0 && lab_bits_count(bm, 0, MIB / PG) == 0,
		   "a raw read with tracking off: %d, %llu bits", ret,
		   (unsigned long long)lab_bits_count(bm, 0, MIB / PG));
	ret = lab_inst_read(lab, &in, io.id, MAP_A, MIB, PG, 0, bm);
	LAB_EXPECT_RET(lab, ret, -EINVAL, "a plugin read after stop");

	/* Back on the automatic domain; the plugin's HWPT goes. */
	LAB_EXPECT_RET(lab, lab_inst_detach(lab, &in, 1), 0, "detach");
out:
	lab_inst_destroy(lab, &in);
	if (fd >= 0) {
		if (mapped) {
			ioas_unmap(lab, fd, io.ioas_id, MAP_A, MIB);
			ioas_unmap(lab, fd, io.ioas_id, MAP_B, MIB);
		}
		lab_mock_free(lab, fd, &nod);
		lab_mock_free(lab, fd, &cap);
		if (io.ioas_id)
			LAB_EXPECT_RET(lab,
				       lab_iommufd_destroy(lab, fd, io.ioas_id),
				       0, "destroying the IOAS");
		lab_close(lab, fd);
	}
	lab_mem_free(mem, 2 * MIB);
}

/* ------------------------------------------------------------------ */
/* iommufd-plugin-huge                                                 */

#define HUGE_LEN (2 * MIB)

/*
 * 2 MiB of physically contiguous memory (a hugetlb page, which the mock
 * boot reserves), so that the mock maps 1 MiB IOPTEs: the IOMMU core
 * picks a page size from the alignment of the IOVA and of the physical
 * address. ksim decides from the user address; where no huge page is to
 * be had (the simulator's host), 2 MiB-aligned memory stands in.
 */
static void *huge_alloc(struct lab *lab, bool *hugetlb)
{
	void *p = mmap(NULL, HUGE_LEN, PROT_READ | PROT_WRITE,
		       MAP_PRIVATE | MAP_ANONYMOUS | MAP_HUGETLB |
			       MAP_POPULATE,
		       -1, 0);

	*hugetlb = p != MAP_FAILED;
	if (*hugetlb)
		return p;
	lab_note(lab, "no hugetlb page (%s): 2 MiB-aligned small pages, "
		      "physically scattered",
		 strerror(errno));
	return lab_mem_alloc(HUGE_LEN, HUGE_LEN);
}

/*
 * A device with MOCK_FLAGS_DEVICE_HUGE_IOVA and 2 MiB mapped 1 MiB
 * aligned: its domains map 1 MiB IOPTEs, and one dirty 2 KiB slot comes
 * back from the plugin's read as the whole 1 MiB it lies in, at 4 KiB and
 * at 2 KiB (the SUPERSET the plugin's probe mentions).
 */
void lab_iommufd_plugin_huge(struct lab *lab)
{
	const struct vmig_range ranges[] = { { MAP_A, HUGE_LEN } };
	const unsigned int second[] = { 700 - SLOTS }, first[] = { 3 };
	struct vk_iommu_ioas_alloc ioas = { .size = sizeof(ioas) };
	struct vmig_iommu_desc io = {
		.size = sizeof(io),
		.id = 1,
		.kind = VMIG_IOMMU_IOMMUFD,
		.fd = -1,
	};
	struct lab_mock dev = { .fd = -1 };
	struct vmig_device_desc d;
	struct lab_inst in = { 0 };
	struct vmig_probe pr;
	uint64_t bm[2 * SLOTS / 64];
	uint32_t hwpt = 0;
	bool mapped = false, hugetlb = false;
	uint8_t *mem = NULL;
	int fd = -1, ret;

	mem = huge_alloc(lab, &hugetlb);
	LAB_REQUIRE(lab, mem, "out of memory");
	fd = lab_open(lab, "/dev/iommu", O_RDWR);
	LAB_REQUIRE(lab, fd >= 0, "cannot open /dev/iommu: %d", fd);
	ret = lab_ioctl(lab, fd, VK_IOMMU_IOAS_ALLOC, &ioas);
	LAB_REQUIRE(lab, ret == 0, "IOAS_ALLOC: %d", ret);
	io.fd = fd;
	io.ioas_id = ioas.out_ioas_id;
	ret = lab_mock_new(lab, fd, io.ioas_id, VK_MOCK_FLAGS_DEVICE_HUGE_IOVA,
			   &dev);
	LAB_REQUIRE(lab, ret == 0, "MOCK_DOMAIN_FLAGS(HUGE_IOVA): %d", ret);
	ret = lab_ioas_map(lab, fd, io.ioas_id, MAP_A, mem, HUGE_LEN);
	LAB_REQUIRE(lab, ret == 0, "IOAS_MAP of 2 MiB: %d", ret);
	mapped = true;
	d = mock_desc(1, "mock-huge", &dev, &io, ranges, 1);

	ret = lab_inst_create(lab, &in, "iommufd");
	LAB_REQUIRE(lab, ret == 0, "the plugin cannot be created");
	/* 1 MiB IOPTEs: a write reports all of one. */
	ret = lab_inst_probe(lab, &in, &d, &pr);
	LAB_EXPECT(lab, ret == 0 && pr.precision == VMIG_PRECISION_SUPERSET,
		   "probe: %d, %s", ret, lab_precision(pr.precision));
	lab->last_hwpt_id = 0;
	ret = lab_inst_attach(lab, &in, &d);
	LAB_REQUIRE(lab, ret == 0, "attach: %d", ret);
	hwpt = lab->last_hwpt_id;
	LAB_REQUIRE(lab, hwpt, "the plugin allocated no HWPT");
	LAB_REQUIRE(lab, lab_inst_start(lab, &in, PG) == 0, "start failed");

	/* Slot 700: the second MiB, every page of it, at 4 KiB. */
	mark(lab, fd, hwpt, MAP_A + MIB, second, 1);
	ret = lab_inst_read(lab, &in, io.id, MAP_A, HUGE_LEN, PG, 0, bm);
	LAB_EXPECT(lab, ret == 0 && lab_bits_count(bm, 0, 256) == 0 &&
			lab_bits_count(bm, 256, 256) == 256,
		   "a read at 4 KiB after slot 700: %d, %llu + %llu pages%s",
		   ret, (unsigned long long)lab_bits_count(bm, 0, 256),
		   (unsigned long long)lab_bits_count(bm, 256, 256),
		   hugetlb ? "" : " (no hugetlb page)");
	/* Slot 3: the first MiB, every slot of it, at 2 KiB. */
	mark(lab, fd, hwpt, MAP_A, first, 1);
	ret = lab_inst_read(lab, &in, io.id, MAP_A, HUGE_LEN, SLOT, 0, bm);
	LAB_EXPECT(lab, ret == 0 && lab_bits_count(bm, 0, SLOTS) == SLOTS &&
			lab_bits_count(bm, SLOTS, SLOTS) == 0,
		   "a read at 2 KiB after slot 3: %d, %llu + %llu slots%s",
		   ret, (unsigned long long)lab_bits_count(bm, 0, SLOTS),
		   (unsigned long long)lab_bits_count(bm, SLOTS, SLOTS),
		   hugetlb ? "" : " (no hugetlb page)");
	ret = lab_inst_read(lab, &in, io.id, MAP_A, HUGE_LEN, PG, 0, bm);
	LAB_EXPECT(lab, ret == 0 && lab_bits_count(bm, 0, 512) == 0,
		   "the read after: %d, %llu pages", ret,
		   (unsigned long long)lab_bits_count(bm, 0, 512));

	LAB_EXPECT_RET(lab, lab_inst_stop(lab, &in), 0, "stop");
	LAB_EXPECT_RET(lab, lab_inst_detach(lab, &in, 1), 0, "detach");
out:
	lab_inst_destroy(lab, &in);
	if (fd >= 0) {
		if (mapped)
			ioas_unmap(lab, fd, io.ioas_id, MAP_A, HUGE_LEN);
		lab_mock_free(lab, fd, &dev);
		if (io.ioas_id)
			LAB_EXPECT_RET(lab,
				       lab_iommufd_destroy(lab, fd, io.ioas_id),
				       0, "destroying the IOAS");
		lab_close(lab, fd);
	}
	if (mem)
		munmap(mem, HUGE_LEN);
}

/* ------------------------------------------------------------------ */
/* iommufd-plugin-edu                                                  */

/*
 * The edu device through its cdev, bound and attached to an IOAS, as a
 * VMM has it: QEMU's Intel vIOMMU has no second-stage dirty bits, so the
 * plugin declines it ("no dirty tracking"), and an attach anyway fails
 * when the kernel refuses a dirty-tracking HWPT for it (EOPNOTSUPP); the
 * device stays where it was, and the plugin knows nothing to read.
 */
void lab_iommufd_plugin_edu(struct lab *lab)
{
	const struct lab_dev *dev = &lab->facts.pci;
	const uint64_t iova = 1ull << 30;
	const struct vmig_range ranges[] = { { iova, MIB } };
	struct vk_iommu_ioas_alloc ioas = { .size = sizeof(ioas) };
	struct vmig_iommu_desc io = {
		.size = sizeof(io),
		.id = 1,
		.kind = VMIG_IOMMU_IOMMUFD,
		.fd = -1,
	};
	struct vmig_device_desc d;
	struct lab_inst in = { 0 };
	struct vmig_probe pr;
	uint64_t bm[MIB / PG / 64];
	uint32_t dev_id = 0, precision;
	bool mapped = false;
	uint8_t *mem = NULL;
	int fd = -1, edu = -1, ret;

	LAB_REQUIRE(lab, dev->cdev, "this boot has no vfio-pci cdev");
	mem = lab_mem_alloc(MIB, 2 * MIB);
	LAB_REQUIRE(lab, mem, "out of memory");
	fd = lab_open(lab, "/dev/iommu", O_RDWR);
	LAB_REQUIRE(lab, fd >= 0, "cannot open /dev/iommu: %d", fd);
	edu = lab_open(lab, dev->cdev, O_RDWR);
	LAB_REQUIRE(lab, edu >= 0, "cannot open %s: %d", dev->cdev, edu);
	{
		struct vk_vfio_device_bind_iommufd b = {
			.argsz = sizeof(b),
			.iommufd = fd,
		};

		ret = lab_ioctl(lab, edu, VK_VFIO_DEVICE_BIND_IOMMUFD, &b);
		LAB_REQUIRE(lab, ret == 0, "BIND_IOMMUFD: %d", ret);
		dev_id = b.out_devid;
	}
	ret = lab_ioctl(lab, fd, VK_IOMMU_IOAS_ALLOC, &ioas);
	LAB_REQUIRE(lab, ret == 0, "IOAS_ALLOC: %d", ret);
	io.fd = fd;
	io.ioas_id = ioas.out_ioas_id;
	{
		struct vk_vfio_device_attach_iommufd_pt a = {
			.argsz = sizeof(a),
			.pt_id = io.ioas_id,
		};

		ret = lab_ioctl(lab, edu, VK_VFIO_DEVICE_ATTACH_IOMMUFD_PT,
				&a);
		LAB_REQUIRE(lab, ret == 0, "ATTACH to the IOAS: %d", ret);
	}
	ret = lab_ioas_map(lab, fd, io.ioas_id, iova, mem, MIB);
	LAB_REQUIRE(lab, ret == 0, "IOAS_MAP: %d", ret);
	mapped = true;
	d = (struct vmig_device_desc){
		.size = sizeof(d),
		.id = 1,
		.name = "edu",
		.address = dev->name,
		.kind = VMIG_DEVICE_VFIO_PCI,
		.device_fd = edu,
		.group_fd = -1,
		.iommufd_id = dev_id,
		.iommu = &io,
		.ranges = ranges,
		.nr_ranges = 1,
	};

	ret = lab_inst_create(lab, &in, "iommufd");
	LAB_REQUIRE(lab, ret == 0, "the plugin cannot be created");
	ret = lab_inst_probe(lab, &in, &d, &pr);
	LAB_EXPECT(lab, ret == 0 && pr.precision == VMIG_PRECISION_NONE &&
			strstr(pr.reason, "no dirty tracking"),
		   "probe of edu: %d, %s (%s)", ret,
		   lab_precision(pr.precision), pr.reason);
	ret = lab_inst_attach(lab, &in, &d);
	LAB_EXPECT_RET(lab, ret, -EOPNOTSUPP, "the plugin's attach of edu");
	ret = lab_inst_status(lab, &in, 1, &precision);
	LAB_EXPECT_RET(lab, ret, -ENOENT, "status of edu");
	LAB_EXPECT_RET(lab, lab_inst_start(lab, &in, PG), 0, "start");
	ret = lab_inst_read(lab, &in, io.id, iova, MIB, PG, 0, bm);
	LAB_EXPECT_RET(lab, ret, -ENOENT, "a read of a space it never had");
	LAB_EXPECT_RET(lab, lab_inst_stop(lab, &in), 0, "stop");
out:
	lab_inst_destroy(lab, &in);
	if (mapped)
		ioas_unmap(lab, fd, io.ioas_id, iova, MIB);
	/* Closing the device unbinds it, which lets the IOAS go. */
	if (edu >= 0)
		lab_close(lab, edu);
	if (fd >= 0) {
		if (io.ioas_id)
			LAB_EXPECT_RET(lab,
				       lab_iommufd_destroy(lab, fd, io.ioas_id),
				       0, "destroying the IOAS");
		lab_close(lab, fd);
	}
	lab_mem_free(mem, MIB);
}
