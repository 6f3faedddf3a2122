/*
 * lab_feature.c: the kernel lab's VFIO device-feature scenarios (boot
 * "viommu"), raw: what the guest's devices offer through
 * VFIO_DEVICE_FEATURE (shared docs/kernel-uapi.md section 3). The mtty
 * sample has migration v2 and DMA-logging stubs; edu on vfio-pci has
 * neither.
 */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <string.h>

#include <linux/vfio.h>

#include <vmig/linux-uapi.h>
#include "lab.h"
#include "lab_scenarios.h"

/*
 * The features each device answers: mtty reports migration with
 * STOP_COPY, P2P and PRE_COPY, is RUNNING, and accepts DMA-logging
 * START/REPORT/STOP (stubs: nothing reported), with the core's argument
 * checks; edu on vfio-pci answers neither (ENOTTY).
 */
void lab_vfio_device_features(struct lab *lab)
{
	const struct lab_facts *f = &lab->facts;
	const uint32_t GET = VFIO_DEVICE_FEATURE_GET,
		       SET = VFIO_DEVICE_FEATURE_SET,
		       PROBE = VFIO_DEVICE_FEATURE_PROBE,
		       LOG_START = VFIO_DEVICE_FEATURE_DMA_LOGGING_START,
		       LOG_REPORT = VFIO_DEVICE_FEATURE_DMA_LOGGING_REPORT;
	int fds[3] = { -1, -1, -1 };
	uint64_t mig[4] = { 0 }, bm[4];
	int ret;

	LAB_REQUIRE(lab, f->nr_mdevs >= 1 && f->pci.name,
		    "this boot lacks an mdev or a vfio-pci device");
	ret = lab_vfio_open(lab, &f->mdevs[0], &fds[0], &fds[1], &fds[2]);
	LAB_REQUIRE(lab, ret == 0, "cannot open the mdev: %d", ret);

	ret = lab_feature(lab, fds[2],
			  PROBE | GET | VFIO_DEVICE_FEATURE_MIGRATION, NULL, 0,
			  NULL);
	LAB_EXPECT_RET(lab, ret, 0, "PROBE GET of MIGRATION");
	ret = lab_feature(lab, fds[2],
			  PROBE | SET | VFIO_DEVICE_FEATURE_MIGRATION, NULL, 0,
			  NULL);
	LAB_EXPECT_RET(lab, ret, -EINVAL, "PROBE SET of MIGRATION (GET only)");
	ret = lab_feature(lab, fds[2], GET | VFIO_DEVICE_FEATURE_MIGRATION,
			  NULL, 8, mig);
	lab_say(lab, "  migration flags=0x%llx", (unsigned long long)mig[0]);
	LAB_EXPECT(lab, ret == 0 && mig[0] == (VFIO_MIGRATION_STOP_COPY |
					       VFIO_MIGRATION_P2P |
					       VK_VFIO_MIGRATION_PRE_COPY),
		   "mtty's migration flags: %d, 0x%llx", ret,
		   (unsigned long long)mig[0]);
	memset(mig, 0, sizeof(mig));
	ret = lab_feature(lab, fds[2],
			  GET | VFIO_DEVICE_FEATURE_MIG_DEVICE_STATE, NULL, 8,
			  mig);
	{
		struct vfio_device_feature_mig_state st;

		memcpy(&st, mig, sizeof(st));
		lab_say(lab, "  state=%u data_fd=%s", st.device_state,
			st.data_fd < 0 ? "none" : "fd");
		LAB_EXPECT(lab, ret == 0 &&
				st.device_state == VFIO_DEVICE_STATE_RUNNING,
			   "mtty's state: %d, %u", ret, st.device_state);
	}

	/* DMA logging: the core's checks, then the stubs. */
	{
		struct vfio_device_feature_dma_logging_range r = {
			.iova = 1ull << 30,
			.length = 1ull << 20,
		};
		struct vfio_device_feature_dma_logging_control ctl = {
			.page_size = 4096,
			.num_ranges = 1,
			.ranges = (uintptr_t)&r,
		};
		struct vfio_device_feature_dma_logging_report rep = {
			.iova = 1ull << 30,
			.length = 1ull << 20,
			.page_size = 4096,
			.bitmap = (uintptr_t)bm,
		};

		ret = lab_feature(lab, fds[2], PROBE | SET | LOG_START, NULL, 0,
				  NULL);
		LAB_EXPECT_RET(lab, ret, 0, "PROBE of DMA_LOGGING_START");
		ctl.num_ranges = 0;
		ret = lab_feature(lab, fds[2], SET | LOG_START, &ctl,
				  sizeof(ctl), NULL);
		LAB_EXPECT_RET(lab, ret, -EINVAL, "START with no range");
		ctl.num_ranges = 1;
		r.length = 1000;
		ret = lab_feature(lab, fds[2], SET | LOG_START, &ctl,
				  sizeof(ctl), NULL);
		LAB_EXPECT_RET(lab, ret, -EINVAL,
			       "START of an unaligned range");
		r.length = 1ull << 20;
		ret = lab_feature(lab, fds[2], SET | LOG_START, &ctl,
				  sizeof(ctl), &ctl);
		LAB_EXPECT_RET(lab, ret, 0, "START");
		lab_say(lab, "  page_size=%llu",
			(unsigned long long)ctl.page_size);
		rep.page_size = 2048;
		ret = lab_feature(lab, fds[2], GET | LOG_REPORT, &rep,
				  sizeof(rep), NULL);
		LAB_EXPECT_RET(lab, ret, -EINVAL, "REPORT at 2 KiB");
		rep.page_size = 4096;
		memset(bm, 0, sizeof(bm));
		ret = lab_feature(lab, fds[2], GET | LOG_REPORT, &rep,
				  sizeof(rep), NULL);
		LAB_EXPECT_RET(lab, ret, 0, "REPORT");
		lab_say_bitmap(lab, "  report", bm, 256);
		LAB_EXPECT(lab, lab_bits_count(bm, 0, 256) == 0,
			   "mtty's stub reported pages");
		ret = lab_feature(lab, fds[2],
				  SET | VFIO_DEVICE_FEATURE_DMA_LOGGING_STOP,
				  NULL, 0, NULL);
		LAB_EXPECT_RET(lab, ret, 0, "STOP");
	}
	lab_vfio_close(lab, &fds[0], &fds[1], &fds[2]);
	fds[0] = fds[1] = fds[2] = -1;

	/* edu on vfio-pci: no migration, no DMA logging. */
	ret = lab_vfio_open(lab, &f->pci, &fds[0], &fds[1], &fds[2]);
	LAB_REQUIRE(lab, ret == 0, "cannot open edu: %d", ret);
	ret = lab_feature(lab, fds[2],
			  PROBE | GET | VFIO_DEVICE_FEATURE_MIGRATION, NULL, 0,
			  NULL);
	LAB_EXPECT_RET(lab, ret, -ENOTTY, "edu: PROBE of MIGRATION");
	ret = lab_feature(lab, fds[2], PROBE | SET | LOG_START, NULL, 0, NULL);
	LAB_EXPECT_RET(lab, ret, -ENOTTY, "edu: PROBE of DMA_LOGGING_START");
out:
	lab_vfio_close(lab, &fds[0], &fds[1], &fds[2]);
}
