/*
 * lab_scenarios.h: the kernel lab's scenarios, one function each, listed
 * by boot in lab.c's table.
 */
#ifndef VMIG_LAB_SCENARIOS_H
#define VMIG_LAB_SCENARIOS_H

struct lab;

/* Boot "viommu" (lab_type1.c): the type1 container and its plugin. */
void lab_type1_info(struct lab *lab);
void lab_type1_pci_all_dirty(struct lab *lab);
void lab_type1_mdev_pinned(struct lab *lab);
void lab_type1_scope_change(struct lab *lab);
void lab_type1_pci_session(struct lab *lab);

/* Boot "viommu" (lab_iommufd.c): the guest's devices on iommufd. */
void lab_iommufd_devices(struct lab *lab);

/* Boot "viommu" (lab_feature.c): VFIO_DEVICE_FEATURE of its devices. */
void lab_vfio_device_features(struct lab *lab);

/* Boot "viommu" (lab_iommufd_plugin.c): the iommufd plugin on edu. */
void lab_iommufd_plugin_edu(struct lab *lab);

/* Boot "viommu" (lab_devdirty.c): the device-dirty plugin on mtty. */
void lab_device_dirty_mtty(struct lab *lab);

/* Boot "viommu" (lab_migration.c): VFIO migration v2 between mttys. */
void lab_migration_v2_mtty(struct lab *lab);

/* Boot "mock" (lab_iommufd.c): iommufd with the selftest mock domain. */
void lab_iommufd_mock_smoke(struct lab *lab);
void lab_iommufd_mock_rows(struct lab *lab);

/* Boot "mock" (lab_iommufd_plugin.c): the iommufd plugin on mock domains. */
void lab_iommufd_plugin_mock(struct lab *lab);
void lab_iommufd_plugin_huge(struct lab *lab);

/*
 * Boot "viommu" (lab_e2e.c): whole migrations through libvmig, with the
 * edu device writing by DMA during pre-copy.
 */
void lab_e2e_type1_edu(struct lab *lab);
/* Boot "mock" (lab_e2e.c): a migration tracked by the iommufd plugin. */
void lab_e2e_iommufd_mock(struct lab *lab);

#endif /* VMIG_LAB_SCENARIOS_H */
