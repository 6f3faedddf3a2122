/*
 * ksim_iommufd.h: what the iommufd part (ksim_iommufd.c) adds to the
 * simulator's interface: how a device looks from iommufd (the IOMMU
 * behind it and its VFIO device cdev), DMA through a PASID, and a look at
 * the simulated state for tests that must check where a device is
 * attached.
 */
#ifndef VMIG_KSIM_IOMMUFD_H
#define VMIG_KSIM_IOMMUFD_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

struct ksim;
struct ksim_device;

/* The IOMMU driver behind a device: it decides the domains' shape. */
enum ksim_iommu_model {
	/*
	 * Intel VT-d: domains with the page sizes of
	 * ksim_iommufd_device_params.pgsizes, a 48-bit aperture, the MSI
	 * window (0xfee00000..0xfeefffff) reserved in the IOAS while a
	 * device is attached, GET_HW_INFO type IOMMU_HW_INFO_TYPE_INTEL_VTD
	 * with a 24-byte payload.
	 */
	KSIM_IOMMU_INTEL = 0,
	/*
	 * The selftest mock IOMMU (CONFIG_IOMMUFD_TEST): 2 KiB IOPTEs
	 * (MOCK_IO_PAGE_SIZE), 1 MiB ones too with mock_huge_iova, the
	 * aperture 0x1000000..0x7fffffff, GET_HW_INFO type 0xfeedbeef with
	 * the 8-byte payload {flags, 0xdeadbeef}.
	 */
	KSIM_IOMMU_MOCK = 1,
};

/*
 * How a simulated device looks from iommufd. All zero: an Intel IOMMU
 * without dirty tracking, 4 KiB, 2 MiB and 1 GiB pages, no PASID, no cdev.
 */
struct ksim_iommufd_device_params {
	/* The device has a VFIO cdev, /dev/vfio/devices/vfio<cdev_index>. */
	bool cdev;
	uint32_t cdev_index;
	enum ksim_iommu_model model;
	/* Its IOMMU reports IOMMU_HW_CAP_DIRTY_TRACKING. */
	bool dirty_tracking;
	/*
	 * Intel: the page sizes of the domains allocated for it (bit n =
	 * 2^n bytes); 0 = 4 KiB | 2 MiB | 1 GiB. A mapping is mapped with the
	 * largest size to which both its IOVA and its user address are
	 * aligned. Ignored by the mock.
	 */
	uint64_t pgsizes;
	/* Mock: MOCK_FLAGS_DEVICE_HUGE_IOVA (1 MiB IOPTEs as well). */
	bool mock_huge_iova;
	/* GET_HW_INFO's out_max_pasid_log2: PASID width, 0 = no PASID. */
	uint8_t max_pasid_log2;
};

/*
 * Beyond Linux 6.12: makes the simulator behave as a newer kernel whose
 * VFIO_DEVICE_ATTACH_IOMMUFD_PT takes VFIO_DEVICE_ATTACH_PASID (flag 1,
 * u32 pasid at offset 12, argsz 16) and VFIO_DEVICE_DETACH_IOMMUFD_PT
 * VFIO_DEVICE_DETACH_PASID (flag 1, u32 pasid at offset 8, argsz 12).
 * Off (the default) is 6.12: any flag is EINVAL.
 */
void ksim_iommufd_set_pasid_attach(struct ksim *k, bool on);

/*
 * The device writes len bytes at iova through the domain attached to its
 * PASID (buf, or a pseudo-random pattern when buf is NULL), as
 * ksim_dma_write() does through its main attachment: the write lands in
 * real memory, is recorded as ground truth and sets dirty bits in that
 * domain if it tracks. The device's own DMA log (device-feature part) is
 * not told. Returns 0, -EFAULT (not mapped writable there), -ENODEV
 * (removed, or nothing attached to that PASID), -EINVAL (len 0).
 */
int ksim_dma_write_pasid(struct ksim_device *d, uint32_t pasid,
			 uint64_t iova, const void *buf, size_t len);

/* Where a device's DMA goes now, from iommufd's point of view. */
struct ksim_iommufd_attachment {
	bool bound;        /* bound to an iommufd through its cdev */
	uint32_t dev_id;   /* its device (or access, for an mdev) id */
	bool attached;
	/* PCI: the HWPT its DMA goes through; mdev: the IOAS it uses. */
	uint32_t pt_id;
	uint32_t ioas_id;  /* the IOAS behind it */
	bool auto_domain;  /* the HWPT was created by auto-attach */
	bool dirty_capable; /* the HWPT was allocated with DIRTY_TRACKING */
	bool tracking;     /* ... and dirty tracking is enabled on it */
};

/*
 * Fills *out for d (PASID 0: its main attachment; otherwise the domain
 * attached to that PASID). Returns 0 or -ENOENT (d unknown or removed).
 */
int ksim_iommufd_attachment(struct ksim_device *d, uint32_t pasid,
			    struct ksim_iommufd_attachment *out);

#endif /* VMIG_KSIM_IOMMUFD_H */
