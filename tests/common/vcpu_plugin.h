/*
 * vcpu_plugin.h: the descriptor of a vCPU dirty source that a test
 * registers on its session itself (vmig_plugin_register): a plugin of
 * the ABI the test is built with, over guest physical addresses, exact.
 */
#ifndef VMIG_TEST_VCPU_PLUGIN_H
#define VMIG_TEST_VCPU_PLUGIN_H

#include "common/test_plugin.h"

/* The plugin name_, of page sizes page_sizes_, whose operations are ops_. */
#define VMIG_TEST_VCPU_PLUGIN(name_, page_sizes_, ops_)                        \
	{                                                                      \
		VMIG_TEST_PLUGIN_ABI,                                          \
		.name = name_, .version = "1",                                 \
		.iommu_kinds = VMIG_KIND_BIT(VMIG_IOMMU_GPA),                  \
		.precision = VMIG_PRECISION_EXACT,                             \
		.page_sizes = page_sizes_, .ops = &ops_,                       \
	}

#endif /* VMIG_TEST_VCPU_PLUGIN_H */
