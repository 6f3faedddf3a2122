/*
 * plugin_args.h: what the tests that drive a plugin directly (the unit
 * tests and the kernel lab alike) hand to its operations: the device
 * descriptor of probe and attach, and the read request (struct
 * vmig_read) of read and unmap_prepare.
 */
#ifndef VMIG_TEST_PLUGIN_ARGS_H
#define VMIG_TEST_PLUGIN_ARGS_H

#include <stdint.h>

#include <vmig/plugin.h>

/* A request for [iova, iova + len) of IOMMU iommu_id in pages of pgsize. */
static inline struct vmig_read vmig_test_read_rq(uint32_t iommu_id,
						 uint64_t iova, uint64_t len,
						 uint64_t pgsize,
						 uint32_t flags)
{
	struct vmig_read rq = { .size = sizeof(rq), .flags = flags,
				.iommu_id = iommu_id, .iova = iova,
				.length = len, .page_size = pgsize };

	return rq;
}

/*
 * A device descriptor: id, name, kind (enum vmig_device_kind), its device
 * and group fds and its IOMMU; no address, no ranges.
 */
static inline struct vmig_device_desc
vmig_test_device_desc(uint32_t id, const char *name, uint32_t kind,
		      int device_fd, int group_fd,
		      const struct vmig_iommu_desc *io)
{
	struct vmig_device_desc d = { .size = sizeof(d), .id = id,
				      .name = name, .kind = kind,
				      .device_fd = device_fd,
				      .group_fd = group_fd, .iommu = io };

	return d;
}

#endif /* VMIG_TEST_PLUGIN_ARGS_H */
