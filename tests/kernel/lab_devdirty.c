/*
 * lab_devdirty.c: the device-dirty plugin on an mtty mdev (boot
 * "viommu"), and VFIO_DEVICE_FEATURE_DMA_LOGGING_* raw beside it: mtty
 * has the DMA-logging ops, as stubs that accept every START and never
 * report (samples/vfio-mdev/mtty.c, mtty_log_*), so the vfio core's own
 * checks (vfio_ioctl_device_feature_logging_start()) are what shows.
 */
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include <linux/vfio.h>

#include <vmig/linux-uapi.h>
#include "lab.h"
#include "lab_scenarios.h"

#define MIB (1ull << 20)
#define PG 4096ull
#define IOVA (1ull << 30)
/* LOG_MAX_RANGES: a page of struct vfio_device_feature_dma_logging_range. */
#define CORE_MAX_RANGES (PG / 16)

/* DMA_LOGGING_START of n ranges; *page_size gets what came back. */
static int log_start(struct lab *lab, int devfd,
		     const struct vfio_device_feature_dma_logging_range *r,
		     uint32_t n, uint64_t *page_size)
{
	struct vfio_device_feature_dma_logging_control ctl = {
		.page_size = PG,
		.num_ranges = n,
		.ranges = (uintptr_t)r,
	};
	int ret;

	ret = lab_feature(lab, devfd,
			  VFIO_DEVICE_FEATURE_SET |
				  VFIO_DEVICE_FEATURE_DMA_LOGGING_START,
			  &ctl, sizeof(ctl), &ctl);
	*page_size = ret ? 0 : ctl.page_size;
	return ret;
}

static int log_stop(struct lab *lab, int devfd)
{
	return lab_feature(lab, devfd,
			   VFIO_DEVICE_FEATURE_SET |
				   VFIO_DEVICE_FEATURE_DMA_LOGGING_STOP,
			   NULL, 0, NULL);
}

/*
 * The raw rows, then the plugin: probe (offered), attach, start (one
 * START of the device's range), a read (one REPORT: nothing, ever: mtty's
 * stub), stop. What mtty wrote would be lost with this source alone.
 */
void lab_device_dirty_mtty(struct lab *lab)
{
	const struct lab_facts *f = &lab->facts;
	const struct vmig_range ranges[] = { { IOVA, MIB } };
	struct vfio_device_feature_dma_logging_range *r = NULL;
	struct vmig_iommu_desc io = {
		.size = sizeof(io),
		.id = 1,
		.kind = VMIG_IOMMU_TYPE1,
		.fd = -1,
	};
	struct vmig_device_desc d;
	struct lab_inst in = { 0 };
	struct vmig_probe pr;
	int container = -1, group = -1, dev = -1, ret;
	uint64_t bm[MIB / PG / 64], ps;
	uint32_t i, precision;
	bool mapped = false;
	uint8_t *mem = NULL;

	LAB_REQUIRE(lab, f->nr_mdevs >= 1, "this boot has no mdev");
	mem = lab_mem_alloc(MIB, 2 * MIB);
	r = calloc(CORE_MAX_RANGES + 1, sizeof(*r));
	LAB_REQUIRE(lab, mem && r, "out of memory");
	ret = lab_vfio_open(lab, &f->mdevs[0], &container, &group, &dev);
	LAB_REQUIRE(lab, ret == 0, "cannot open the mdev: %d", ret);
	io.fd = container;
	{
		struct vfio_iommu_type1_dma_map m = {
			.argsz = sizeof(m),
			.flags = VFIO_DMA_MAP_FLAG_READ |
				 VFIO_DMA_MAP_FLAG_WRITE,
			.vaddr = (uintptr_t)mem,
			.iova = IOVA,
			.size = MIB,
		};

		ret = lab_ioctl(lab, container, VFIO_IOMMU_MAP_DMA, &m);
		LAB_REQUIRE(lab, ret == 0, "MAP_DMA: %d", ret);
		mapped = true;
	}
	d = (struct vmig_device_desc){
		.size = sizeof(d),
		.id = 1,
		.name = "mtty",
		.address = f->mdevs[0].name,
		.kind = VMIG_DEVICE_MDEV,
		.device_fd = dev,
		.group_fd = group,
		.iommu = &io,
		.ranges = ranges,
		.nr_ranges = 1,
	};
	ret = lab_inst_create(lab, &in, "device-dirty");
	LAB_REQUIRE(lab, ret == 0, "the plugin cannot be created");
	ret = lab_inst_probe(lab, &in, &d, &pr);
	LAB_EXPECT(lab, ret == 0 && pr.precision == VMIG_PRECISION_EXACT,
		   "probe of mtty: %d, %s", ret, lab_precision(pr.precision));

	/* One range: accepted, the page size kept; STOP. */
	r[0].iova = IOVA;
	r[0].length = MIB;
	ret = log_start(lab, dev, r, 1, &ps);
	LAB_EXPECT(lab, ret == 0 && ps == PG, "START of 1 range: %d, %llu",
		   ret, (unsigned long long)ps);
	LAB_EXPECT_RET(lab, log_stop(lab, dev), 0, "STOP");
	/* 256 ranges, the core's most: accepted; 257: E2BIG. */
	for (i = 0; i <= CORE_MAX_RANGES; i++) {
		r[i].iova = IOVA + i * 2 * PG;
		r[i].length = PG;
	}
	ret = log_start(lab, dev, r, CORE_MAX_RANGES, &ps);
	LAB_EXPECT_RET(lab, ret, 0, "START of 256 ranges");
	LAB_EXPECT_RET(lab, log_stop(lab, dev), 0, "STOP");
	ret = log_start(lab, dev, r, CORE_MAX_RANGES + 1, &ps);
	LAB_EXPECT_RET(lab, ret, -E2BIG, "START of 257 ranges");
	/* Overlapping (the second starts inside the first): EINVAL. */
	r[0].iova = IOVA;
	r[0].length = 2 * PG;
	r[1].iova = IOVA + PG;
	r[1].length = 2 * PG;
	ret = log_start(lab, dev, r, 2, &ps);
	LAB_EXPECT_RET(lab, ret, -EINVAL, "START of overlapping ranges");
	/* Adjacent ones are fine. */
	r[1].iova = IOVA + 2 * PG;
	ret = log_start(lab, dev, r, 2, &ps);
	LAB_EXPECT_RET(lab, ret, 0, "START of adjacent ranges");
	{
		struct vfio_device_feature_dma_logging_report rep = {
			.iova = IOVA,
			.length = 4 * PG,
			.page_size = PG,
			.bitmap = (uintptr_t)bm,
		};

		const uint32_t report = VFIO_DEVICE_FEATURE_GET |
					VFIO_DEVICE_FEATURE_DMA_LOGGING_REPORT;

		memset(bm, 0, sizeof(bm));
		ret = lab_feature(lab, dev, report, &rep, sizeof(rep), NULL);
		LAB_EXPECT(lab, ret == 0 && lab_bits_count(bm, 0, 4) == 0,
			   "REPORT: %d, %llu pages", ret,
			   (unsigned long long)lab_bits_count(bm, 0, 4));
	}
	LAB_EXPECT_RET(lab, log_stop(lab, dev), 0, "STOP");

	/* The plugin: it logs the device's range, and reads nothing. */
	LAB_REQUIRE(lab, lab_inst_attach(lab, &in, &d) == 0, "attach failed");
	LAB_REQUIRE(lab, lab_inst_start(lab, &in, PG) == 0, "start failed");
	ret = lab_inst_status(lab, &in, 1, &precision);
	LAB_EXPECT(lab, ret == 0 && precision == VMIG_PRECISION_EXACT,
		   "status: %d, %s", ret, lab_precision(precision));
	ret = lab_inst_read(lab, &in, io.id, IOVA, MIB, PG, 0, bm);
	LAB_EXPECT(lab, ret == 0 && lab_bits_count(bm, 0, MIB / PG) == 0,
		   "read: %d, %llu pages", ret,
		   (unsigned long long)lab_bits_count(bm, 0, MIB / PG));
	lab_note(lab, "mtty's log_read_and_clear is a stub: whatever the "
		      "device wrote, no page is ever reported");
	LAB_EXPECT_RET(lab, lab_inst_stop(lab, &in), 0, "stop");
	LAB_EXPECT_RET(lab, lab_inst_detach(lab, &in, 1), 0, "detach");
out:
	lab_inst_destroy(lab, &in);
	if (mapped) {
		struct vfio_iommu_type1_dma_unmap u = {
			.argsz = sizeof(u),
			.iova = IOVA,
			.size = MIB,
		};

		ret = lab_ioctl(lab, container, VFIO_IOMMU_UNMAP_DMA, &u);
		LAB_EXPECT(lab, ret == 0 && u.size == MIB,
			   "UNMAP_DMA: %d, 0x%llx bytes", ret,
			   (unsigned long long)u.size);
	}
	lab_vfio_close(lab, &container, &group, &dev);
	free(r);
	lab_mem_free(mem, MIB);
}
