/*
 * ksimutil.h: what the unit tests do the same way with the simulated
 * kernel. Include after testutil.h.
 */
#ifndef VMIG_KSIMUTIL_H
#define VMIG_KSIMUTIL_H

#include <dirent.h>
#include <fcntl.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <linux/vfio.h>

#include "common/vfio_args.h"
#include "ksim/ksim.h"

/*
 * A simulated kernel *k with default parameters, its host table *h, and
 * a VFIO container opened in it (*cfd) as a VMM opens one.
 */
static inline void vmig_test_type1_kernel(struct ksim **k,
					  const struct vmig_host **h, int *cfd)
{
	CU_ASSERT_FATAL(ksim_new(NULL, k) == 0);
	*h = ksim_host(*k);
	*cfd = (*h)->open((*h)->kctx, "/dev/vfio/vfio", O_RDWR);
	CU_ASSERT_FATAL(*cfd >= 0);
}

/*
 * Adds the device dp describes and opens it as a VMM would, through the
 * host table h: its group (/dev/vfio/<dp->group>) joins the type1
 * container cfd, which gets IOMMU type iommu_type when iommu_type is not
 * 0 (the container's first group), then the device's fd. Every step is
 * asserted. A device works (DMA, pins) while its fd is open, as in Linux.
 */
static inline void vmig_test_type1_device(struct ksim *k,
					  const struct vmig_host *h, int cfd,
					  const struct ksim_device_params *dp,
					  unsigned long iommu_type,
					  struct ksim_device **dev, int *gfd,
					  int *dfd)
{
	char path[32];

	CU_ASSERT_FATAL(ksim_device_add(k, dp, dev) == 0);
	snprintf(path, sizeof(path), "/dev/vfio/%d", dp->group);
	*gfd = h->open(h->kctx, path, O_RDWR);
	CU_ASSERT_FATAL(*gfd >= 0);
	CU_ASSERT_FATAL(h->ioctl(h->kctx, *gfd, VFIO_GROUP_SET_CONTAINER,
				 &cfd) == 0);
	if (iommu_type)
		CU_ASSERT_FATAL(h->ioctl(h->kctx, cfd, VFIO_SET_IOMMU,
					 (void *)(uintptr_t)iommu_type) == 0);
	*dfd = h->ioctl(h->kctx, *gfd, VFIO_GROUP_GET_DEVICE_FD,
			(void *)dp->name);
	CU_ASSERT_FATAL(*dfd >= 0);
}

/*
 * Adds PCI device name, with the VFIO device features fp (none when NULL),
 * to container cfd as vmig_test_type1_device does: the next of the *n
 * devices in dev, gfd and dfd, in group group_base + its index; the
 * first sets the container's IOMMU to TYPE1v2. Returns its index.
 */
static inline int vmig_test_type1_pci(struct ksim *k, const struct vmig_host *h,
				      int cfd, const char *name,
				      int group_base,
				      const struct ksim_feature_params *fp,
				      int *n, struct ksim_device **dev,
				      int *gfd, int *dfd)
{
	struct ksim_device_params dp = {
		.name = name,
		.kind = KSIM_DEV_PCI,
	};
	int i = (*n)++;

	dp.group = group_base + i;
	if (fp)
		dp.feature = *fp;
	vmig_test_type1_device(k, h, cfd, &dp, i == 0 ? VFIO_TYPE1v2_IOMMU : 0,
			       &dev[i], &gfd[i], &dfd[i]);
	return i;
}

/* Maps len bytes at vaddr, readable and writable, at iova in cfd. */
static inline void vmig_test_type1_map(const struct vmig_host *h, int cfd,
				       void *vaddr, uint64_t iova,
				       uint64_t len)
{
	struct vfio_iommu_type1_dma_map m =
		vmig_test_dma_map_rw(vaddr, iova, len);

	CU_ASSERT_FATAL(h->ioctl(h->kctx, cfd, VFIO_IOMMU_MAP_DMA, &m) == 0);
}

/* Guest memory for DMA: size bytes aligned to align, zeroed. */
static inline void *vmig_test_guest_mem(size_t size, size_t align)
{
	void *p = NULL;

	CU_ASSERT_FATAL(posix_memalign(&p, align, size) == 0);
	memset(p, 0, size);
	return p;
}

/* How many fds the process has open (/proc/self/fd), or -1. */
static inline int vmig_test_count_fds(void)
{
	DIR *dir = opendir("/proc/self/fd");
	struct dirent *e;
	int n = 0;

	if (!dir)
		return -1;
	while ((e = readdir(dir)))
		if (e->d_name[0] != '.')
			n++;
	closedir(dir);
	return n;
}

#endif /* VMIG_KSIMUTIL_H */
