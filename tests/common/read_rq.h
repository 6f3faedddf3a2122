/*
 * read_rq.h: the read request of the plugin ABI (struct vmig_read) that
 * the tests which drive a plugin directly hand to its read and
 * unmap_prepare operations: the unit tests and the kernel lab alike.
 */
#ifndef VMIG_TEST_READ_RQ_H
#define VMIG_TEST_READ_RQ_H

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

#endif /* VMIG_TEST_READ_RQ_H */
