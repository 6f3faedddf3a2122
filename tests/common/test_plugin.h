/*
 * test_plugin.h: the descriptors of the plugins the tests build: of the
 * ABI they are built with (VMIG_TEST_PLUGIN_ABI), and the well-formed
 * loader test plugins that track nothing (tests/plugins: good.c,
 * interpose.c).
 */
#ifndef VMIG_TEST_PLUGIN_H
#define VMIG_TEST_PLUGIN_H

#include <vmig/plugin.h>

/* The first fields of a descriptor: the plugin ABI it is built with. */
#define VMIG_TEST_PLUGIN_ABI                                                   \
	.size = sizeof(struct vmig_plugin),                                    \
	.abi_major = VMIG_PLUGIN_ABI_MAJOR,                                    \
	.abi_minor = VMIG_PLUGIN_ABI_MINOR

/*
 * A loader test plugin name_, described as description_, whose
 * operations are ops_: version 1.0.0, for VFIO PCI devices under type1,
 * exact, over vmig's page size.
 */
#define VMIG_TEST_LOADER_PLUGIN(name_, description_, ops_)                     \
	{                                                                      \
		VMIG_TEST_PLUGIN_ABI,                                          \
		.name = name_,                                                 \
		.version = "1.0.0",                                            \
		.description = description_,                                   \
		.device_kinds = VMIG_KIND_BIT(VMIG_DEVICE_VFIO_PCI),           \
		.iommu_kinds = VMIG_KIND_BIT(VMIG_IOMMU_TYPE1),                \
		.precision = VMIG_PRECISION_EXACT,                             \
		.page_sizes = VMIG_PAGE_SIZE,                                  \
		.ops = &ops_,                                                  \
	}

#endif /* VMIG_TEST_PLUGIN_H */
