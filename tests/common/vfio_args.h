/*
 * vfio_args.h: the VFIO type1 arguments that the tests hand to a kernel,
 * the simulated one (the unit tests) or Linux (the kernel lab) alike.
 */
#ifndef VMIG_TEST_VFIO_ARGS_H
#define VMIG_TEST_VFIO_ARGS_H

#include <stdint.h>

#include <linux/vfio.h>

/* VFIO_IOMMU_MAP_DMA of len bytes at vaddr to iova, readable, writable. */
static inline struct vfio_iommu_type1_dma_map
vmig_test_dma_map_rw(void *vaddr, uint64_t iova, uint64_t len)
{
	struct vfio_iommu_type1_dma_map m = {
		.argsz = sizeof(m),
		.flags = VFIO_DMA_MAP_FLAG_READ | VFIO_DMA_MAP_FLAG_WRITE,
		.vaddr = (uintptr_t)vaddr,
		.iova = iova,
		.size = len,
	};

	return m;
}

#endif /* VMIG_TEST_VFIO_ARGS_H */
