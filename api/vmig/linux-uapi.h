/*
 * vmig/linux-uapi.h: the kernel interfaces vmig and its dirty sources use
 * that Debian 12's 6.1 UAPI headers lack, declared once, from the Linux
 * 6.12 UAPI. Installed, so that a plugin built outside the tree gets the
 * same declarations as the in-tree ones.
 *
 * Everything here is prefixed vk_/VK_ so that it never collides with a
 * newer <linux/vfio.h> or <linux/iommufd.h> that declares the same thing.
 * Type1 dirty tracking, VFIO_DEVICE_FEATURE, DMA logging and the migration
 * v2 basics are in the 6.1 <linux/vfio.h> and are used from there.
 *
 * Every size and key offset is checked with _Static_assert against the
 * values of the Linux 6.12 UAPI (x86-64, LP64).
 */
#ifndef VMIG_LINUX_UAPI_H
#define VMIG_LINUX_UAPI_H

#include <errno.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include <linux/vfio.h>

#include <vmig/plugin.h>

/* An 8-byte-aligned u64, as __aligned_u64 in the UAPI. */
typedef uint64_t vk_a64 __attribute__((aligned(8)));

/* Both VFIO and iommufd use plain _IO(';', nr): no size or direction. */
#define VK_IO(nr) (0x3b00u | (nr))

/* ------------------------------------------------------------------ */
/* iommufd (/dev/iommu)                                                */

#define VK_IOMMU_DESTROY VK_IO(0x80)
#define VK_IOMMU_IOAS_ALLOC VK_IO(0x81)
#define VK_IOMMU_IOAS_ALLOW_IOVAS VK_IO(0x82)
#define VK_IOMMU_IOAS_COPY VK_IO(0x83)
#define VK_IOMMU_IOAS_IOVA_RANGES VK_IO(0x84)
#define VK_IOMMU_IOAS_MAP VK_IO(0x85)
#define VK_IOMMU_IOAS_UNMAP VK_IO(0x86)
#define VK_IOMMU_OPTION VK_IO(0x87)
#define VK_IOMMU_VFIO_IOAS VK_IO(0x88)
#define VK_IOMMU_HWPT_ALLOC VK_IO(0x89)
#define VK_IOMMU_GET_HW_INFO VK_IO(0x8a)
#define VK_IOMMU_HWPT_SET_DIRTY_TRACKING VK_IO(0x8b)
#define VK_IOMMU_HWPT_GET_DIRTY_BITMAP VK_IO(0x8c)
#define VK_IOMMU_HWPT_INVALIDATE VK_IO(0x8d)
#define VK_IOMMU_FAULT_QUEUE_ALLOC VK_IO(0x8e)
#define VK_IOMMU_TEST_CMD VK_IO(0xa0)

struct vk_iommu_destroy {
	uint32_t size;
	uint32_t id;
};

struct vk_iommu_ioas_alloc {
	uint32_t size;
	uint32_t flags;
	uint32_t out_ioas_id;
};

#define VK_IOMMU_IOAS_MAP_FIXED_IOVA 1u
#define VK_IOMMU_IOAS_MAP_WRITEABLE 2u
#define VK_IOMMU_IOAS_MAP_READABLE 4u

struct vk_iommu_ioas_map {
	uint32_t size;
	uint32_t flags;
	uint32_t ioas_id;
	uint32_t __reserved;
	vk_a64 user_va;
	vk_a64 length;
	vk_a64 iova;
};

struct vk_iommu_ioas_unmap {
	uint32_t size;
	uint32_t ioas_id;
	vk_a64 iova;
	vk_a64 length;
};

struct vk_iommu_iova_range {
	vk_a64 start;
	vk_a64 last;
};

struct vk_iommu_ioas_iova_ranges {
	uint32_t size;
	uint32_t ioas_id;
	uint32_t num_iovas;
	uint32_t __reserved;
	vk_a64 allowed_iovas;
	vk_a64 out_iova_alignment;
};

#define VK_IOMMU_OPTION_RLIMIT_MODE 0u
#define VK_IOMMU_OPTION_HUGE_PAGES 1u
#define VK_IOMMU_OPTION_OP_SET 0u
#define VK_IOMMU_OPTION_OP_GET 1u

struct vk_iommu_option {
	uint32_t size;
	uint32_t option_id;
	uint16_t op;
	uint16_t __reserved;
	uint32_t object_id;
	vk_a64 val64;
};

#define VK_IOMMU_HWPT_ALLOC_NEST_PARENT 1u
#define VK_IOMMU_HWPT_ALLOC_DIRTY_TRACKING 2u
#define VK_IOMMU_HWPT_FAULT_ID_VALID 4u
#define VK_IOMMU_HWPT_DATA_NONE 0u
#define VK_IOMMU_HWPT_DATA_VTD_S1 1u
#define VK_IOMMU_HWPT_DATA_SELFTEST 0xdeadu

struct vk_iommu_hwpt_alloc {
	uint32_t size;
	uint32_t flags;
	uint32_t dev_id;
	uint32_t pt_id;
	uint32_t out_hwpt_id;
	uint32_t __reserved;
	uint32_t data_type;
	uint32_t data_len;
	vk_a64 data_uptr;
	uint32_t fault_id;
	uint32_t __reserved2;
};

#define VK_IOMMU_HW_INFO_TYPE_NONE 0u
#define VK_IOMMU_HW_INFO_TYPE_INTEL_VTD 1u
#define VK_IOMMU_HW_INFO_TYPE_SELFTEST 0xfeedbeefu
#define VK_IOMMU_HW_CAP_DIRTY_TRACKING 1ull
#define VK_IOMMU_HW_CAP_PCI_PASID_EXEC 2ull
#define VK_IOMMU_HW_CAP_PCI_PASID_PRIV 4ull

struct vk_iommu_hw_info {
	uint32_t size;
	uint32_t flags;
	uint32_t dev_id;
	uint32_t data_len;
	vk_a64 data_uptr;
	uint32_t out_data_type;
	uint8_t out_max_pasid_log2;
	uint8_t __reserved[3];
	vk_a64 out_capabilities;
};

#define VK_IOMMU_HWPT_DIRTY_TRACKING_ENABLE 1u

struct vk_iommu_hwpt_set_dirty_tracking {
	uint32_t size;
	uint32_t flags;
	uint32_t hwpt_id;
	uint32_t __reserved;
};

#define VK_IOMMU_HWPT_GET_DIRTY_BITMAP_NO_CLEAR 1u

struct vk_iommu_hwpt_get_dirty_bitmap {
	uint32_t size;
	uint32_t hwpt_id;
	uint32_t flags;
	uint32_t __reserved;
	vk_a64 iova;
	vk_a64 length;
	vk_a64 page_size;
	vk_a64 data;
};

/* Minimum sizes the kernel accepts (the field up to which it must read). */
#define VK_IOMMU_HWPT_ALLOC_MIN_SIZE 24u
#define VK_IOMMU_GET_HW_INFO_MIN_SIZE 32u

/* ------------------------------------------------------------------ */
/* iommufd selftest (CONFIG_IOMMUFD_TEST), drivers/iommu/iommufd/      */
/* iommufd_test.h, which is not an installed header on any kernel.     */

enum {
	VK_IOMMU_TEST_OP_ADD_RESERVED = 1,
	VK_IOMMU_TEST_OP_MOCK_DOMAIN = 2,
	VK_IOMMU_TEST_OP_MD_CHECK_MAP = 3,
	VK_IOMMU_TEST_OP_MD_CHECK_REFS = 4,
	VK_IOMMU_TEST_OP_CREATE_ACCESS = 5,
	VK_IOMMU_TEST_OP_DESTROY_ACCESS_PAGES = 6,
	VK_IOMMU_TEST_OP_ACCESS_PAGES = 7,
	VK_IOMMU_TEST_OP_ACCESS_RW = 8,
	VK_IOMMU_TEST_OP_SET_TEMP_MEMORY_LIMIT = 9,
	VK_IOMMU_TEST_OP_MOCK_DOMAIN_REPLACE = 10,
	VK_IOMMU_TEST_OP_ACCESS_REPLACE_IOAS = 11,
	VK_IOMMU_TEST_OP_MOCK_DOMAIN_FLAGS = 12,
	VK_IOMMU_TEST_OP_DIRTY = 13,
	VK_IOMMU_TEST_OP_MD_CHECK_IOTLB = 14,
	VK_IOMMU_TEST_OP_TRIGGER_IOPF = 15,
};

#define VK_MOCK_FLAGS_DEVICE_NO_DIRTY 1u
#define VK_MOCK_FLAGS_DEVICE_HUGE_IOVA 2u
#define VK_MOCK_APERTURE_START 0x1000000ull
#define VK_MOCK_APERTURE_LAST 0x7fffffffull
#define VK_MOCK_PAGE_SIZE 2048ull
#define VK_MOCK_HUGE_PAGE_SIZE (512ull * VK_MOCK_PAGE_SIZE)

struct vk_iommu_test_cmd {
	uint32_t size;
	uint32_t op;
	uint32_t id;
	uint32_t __reserved;
	union {
		struct {
			uint32_t out_stdev_id;
			uint32_t out_hwpt_id;
			uint32_t out_idev_id;
		} mock_domain;
		struct {
			uint32_t out_stdev_id;
			uint32_t out_hwpt_id;
			uint32_t out_idev_id;
			uint32_t dev_flags;
		} mock_domain_flags;
		struct {
			uint32_t pt_id; /* in: IOAS or HWPT; out: HWPT */
		} mock_domain_replace;
		struct {
			uint32_t flags;
			vk_a64 iova;
			vk_a64 length;
			vk_a64 page_size;
			vk_a64 uptr;
			vk_a64 out_nr_dirty;
		} dirty;
		uint8_t raw[48];
	};
	uint32_t last;
};

#define VK_IOMMU_TEST_CMD_MIN_SIZE 68u

/* ------------------------------------------------------------------ */
/* VFIO device cdev and iommufd binding                                */

#define VK_VFIO_DEVICE_BIND_IOMMUFD VK_IO(118)
#define VK_VFIO_DEVICE_ATTACH_IOMMUFD_PT VK_IO(119)
#define VK_VFIO_DEVICE_DETACH_IOMMUFD_PT VK_IO(120)

struct vk_vfio_device_bind_iommufd {
	uint32_t argsz;
	uint32_t flags;
	int32_t iommufd;
	uint32_t out_devid;
};

struct vk_vfio_device_attach_iommufd_pt {
	uint32_t argsz;
	uint32_t flags;
	uint32_t pt_id;
};

struct vk_vfio_device_detach_iommufd_pt {
	uint32_t argsz;
	uint32_t flags;
};

/*
 * Beyond the 6.12 reference: newer kernels attach a PASID of a device to a
 * page table with VFIO_DEVICE_ATTACH_IOMMUFD_PT, flag ATTACH_PASID and
 * the PASID after pt_id (argsz 16). 6.12 refuses any flag with EINVAL.
 */
#define VK_VFIO_DEVICE_ATTACH_PASID 1u

struct vk_vfio_device_attach_iommufd_pt_pasid {
	uint32_t argsz;
	uint32_t flags;
	uint32_t pt_id;
	uint32_t pasid;
};

/* ------------------------------------------------------------------ */
/* VFIO migration v2 additions after 6.1                               */

#define VK_VFIO_MIGRATION_STOP_COPY 1ull
#define VK_VFIO_MIGRATION_P2P 2ull
#define VK_VFIO_MIGRATION_PRE_COPY 4ull

enum vk_vfio_mig_state {
	VK_VFIO_STATE_ERROR = 0,
	VK_VFIO_STATE_STOP = 1,
	VK_VFIO_STATE_RUNNING = 2,
	VK_VFIO_STATE_STOP_COPY = 3,
	VK_VFIO_STATE_RESUMING = 4,
	VK_VFIO_STATE_RUNNING_P2P = 5,
	VK_VFIO_STATE_PRE_COPY = 6,
	VK_VFIO_STATE_PRE_COPY_P2P = 7,
	VK_VFIO_STATE_NR = 8,
};

/* Issued on the migration data fd, not the device fd. */
#define VK_VFIO_MIG_GET_PRECOPY_INFO VK_IO(121)

struct vk_vfio_precopy_info {
	uint32_t argsz;
	uint32_t flags;
	vk_a64 initial_bytes;
	vk_a64 dirty_bytes;
};

#define VK_VFIO_DEVICE_FEATURE_MIG_DATA_SIZE 9u

struct vk_vfio_device_feature_mig_data_size {
	vk_a64 stop_copy_length;
};

/* ------------------------------------------------------------------ */
/* Calls                                                               */

/* The largest VFIO_DEVICE_FEATURE payload vmig passes (a DMA-log report). */
#define VK_FEATURE_PAYLOAD_MAX 32u

/*
 * VFIO_DEVICE_FEATURE on a device fd through a host table, with a payload
 * of len bytes: the header and the payload contiguous, as the kernel
 * reads them; the payload is copied back on success. Returns what the
 * ioctl returns, or -EINVAL for a payload larger than any feature's.
 */
static inline int vk_device_feature(const struct vmig_host *h, int fd,
				    uint32_t flags, void *payload, size_t len)
{
	uint64_t raw[1 + VK_FEATURE_PAYLOAD_MAX / 8];
	struct vfio_device_feature *f = (struct vfio_device_feature *)raw;
	int ret;

	if (len > VK_FEATURE_PAYLOAD_MAX)
		return -EINVAL;
	memset(raw, 0, sizeof(raw));
	f->argsz = (uint32_t)(sizeof(*f) + len);
	f->flags = flags;
	if (len)
		memcpy(raw + 1, payload, len);
	ret = h->ioctl(h->kctx, fd, VFIO_DEVICE_FEATURE, raw);
	if (ret >= 0 && len)
		memcpy(payload, raw + 1, len);
	return ret;
}

/* ------------------------------------------------------------------ */
/* Layout checks                                                       */

#ifdef __cplusplus
#define VK_STATIC_ASSERT static_assert
#else
#define VK_STATIC_ASSERT _Static_assert
#endif
#define VK_CHECK_SIZE(type, n) \
	VK_STATIC_ASSERT(sizeof(type) == (n), #type " is " #n " bytes")
#define VK_CHECK_OFF(type, member, n)                     \
	VK_STATIC_ASSERT(offsetof(type, member) == (n), \
			 #type "." #member " is at " #n)

VK_CHECK_SIZE(struct vk_iommu_destroy, 8);
VK_CHECK_SIZE(struct vk_iommu_ioas_alloc, 12);
VK_CHECK_SIZE(struct vk_iommu_ioas_map, 40);
VK_CHECK_OFF(struct vk_iommu_ioas_map, user_va, 16);
VK_CHECK_OFF(struct vk_iommu_ioas_map, iova, 32);
VK_CHECK_SIZE(struct vk_iommu_ioas_unmap, 24);
VK_CHECK_OFF(struct vk_iommu_ioas_unmap, iova, 8);
VK_CHECK_SIZE(struct vk_iommu_iova_range, 16);
VK_CHECK_SIZE(struct vk_iommu_ioas_iova_ranges, 32);
VK_CHECK_OFF(struct vk_iommu_ioas_iova_ranges, out_iova_alignment, 24);
VK_CHECK_SIZE(struct vk_iommu_option, 24);
VK_CHECK_SIZE(struct vk_iommu_hwpt_alloc, 48);
VK_CHECK_OFF(struct vk_iommu_hwpt_alloc, out_hwpt_id, 16);
VK_CHECK_OFF(struct vk_iommu_hwpt_alloc, data_type, 24);
VK_CHECK_OFF(struct vk_iommu_hwpt_alloc, data_uptr, 32);
VK_CHECK_OFF(struct vk_iommu_hwpt_alloc, fault_id, 40);
VK_CHECK_SIZE(struct vk_iommu_hw_info, 40);
VK_CHECK_OFF(struct vk_iommu_hw_info, out_data_type, 24);
VK_CHECK_OFF(struct vk_iommu_hw_info, out_max_pasid_log2, 28);
VK_CHECK_OFF(struct vk_iommu_hw_info, out_capabilities, 32);
VK_CHECK_SIZE(struct vk_iommu_hwpt_set_dirty_tracking, 16);
VK_CHECK_OFF(struct vk_iommu_hwpt_set_dirty_tracking, hwpt_id, 8);
VK_CHECK_SIZE(struct vk_iommu_hwpt_get_dirty_bitmap, 48);
VK_CHECK_OFF(struct vk_iommu_hwpt_get_dirty_bitmap, flags, 8);
VK_CHECK_OFF(struct vk_iommu_hwpt_get_dirty_bitmap, page_size, 32);
VK_CHECK_OFF(struct vk_iommu_hwpt_get_dirty_bitmap, data, 40);
VK_CHECK_SIZE(struct vk_iommu_test_cmd, 72);
VK_CHECK_OFF(struct vk_iommu_test_cmd, mock_domain.out_stdev_id, 16);
VK_CHECK_OFF(struct vk_iommu_test_cmd, mock_domain_flags.dev_flags, 28);
VK_CHECK_OFF(struct vk_iommu_test_cmd, mock_domain_replace.pt_id, 16);
VK_CHECK_OFF(struct vk_iommu_test_cmd, dirty.iova, 24);
VK_CHECK_OFF(struct vk_iommu_test_cmd, dirty.uptr, 48);
VK_CHECK_OFF(struct vk_iommu_test_cmd, dirty.out_nr_dirty, 56);
VK_CHECK_OFF(struct vk_iommu_test_cmd, last, 64);
VK_CHECK_SIZE(struct vk_vfio_device_bind_iommufd, 16);
VK_CHECK_SIZE(struct vk_vfio_device_attach_iommufd_pt, 12);
VK_CHECK_SIZE(struct vk_vfio_device_detach_iommufd_pt, 8);
VK_CHECK_SIZE(struct vk_vfio_device_attach_iommufd_pt_pasid, 16);
VK_CHECK_SIZE(struct vk_vfio_precopy_info, 24);

/* The type1 structures of the 6.1 header, checked the same way. */
VK_CHECK_SIZE(struct vfio_iommu_type1_dirty_bitmap, 8);
VK_CHECK_SIZE(struct vfio_iommu_type1_dirty_bitmap_get, 40);
VK_CHECK_SIZE(struct vfio_bitmap, 24);
VK_CHECK_SIZE(struct vfio_iommu_type1_dma_unmap, 24);
VK_CHECK_SIZE(struct vfio_iommu_type1_dma_map, 32);
VK_CHECK_SIZE(struct vfio_iommu_type1_info, 24);
VK_CHECK_OFF(struct vfio_iommu_type1_info, cap_offset, 16);
VK_CHECK_SIZE(struct vfio_info_cap_header, 8);
VK_CHECK_SIZE(struct vfio_iommu_type1_info_cap_migration, 32);
VK_CHECK_OFF(struct vfio_iommu_type1_info_cap_migration, pgsize_bitmap, 16);
VK_CHECK_OFF(struct vfio_iommu_type1_info_cap_migration,
	     max_dirty_bitmap_size, 24);
VK_CHECK_SIZE(struct vfio_device_feature, 8);
VK_CHECK_SIZE(struct vfio_device_feature_dma_logging_control, 24);
VK_CHECK_SIZE(struct vfio_device_feature_dma_logging_range, 16);
VK_CHECK_SIZE(struct vfio_device_feature_dma_logging_report, 32);
VK_CHECK_SIZE(struct vfio_device_feature_mig_state, 8);
VK_CHECK_SIZE(struct vfio_device_feature_migration, 8);

#endif /* VMIG_LINUX_UAPI_H */
