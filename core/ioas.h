/*
 * ioas.h: the kinds of I/O address space a device's DMA goes through,
 * as a table of backends (VFIO type1 containers, iommufd IOASes).
 *
 * What differs between the kinds lives here and nowhere else: how a
 * range is mapped and unmapped in the kernel, how the space is named by
 * default, and how a source's reads of it are cut (kernel-uapi.md 1.5,
 * 2.9). A new kind is one backend in ioas.c.
 */
#ifndef VMIG_CORE_IOAS_H
#define VMIG_CORE_IOAS_H

#include <stdbool.h>
#include <stdint.h>

#include <vmig/vmig.h>

struct vmig_iommu_rec;
struct vmig_mapping_rec;

struct vmig_ioas_backend {
	uint32_t kind;       /* enum vmig_iommu_kind */
	const char *name;    /* "type1", "iommufd": in messages */
	const char *noun;    /* the default name's stem: "container" */
	/*
	 * Reads of the space go per run of touching mappings (true) or per
	 * mapping (false); dirty.c says why each kind wants its own.
	 */
	bool read_runs;
	/* Maps m (at hva) in the kernel; 0 or a negative errno. */
	int (*map)(vmig_session *s, const struct vmig_iommu_rec *io,
		   const struct vmig_mapping_rec *m, void *hva);
	/* Unmaps [iova, iova + length) in the kernel. */
	int (*unmap)(vmig_session *s, const struct vmig_iommu_rec *io,
		     uint64_t iova, uint64_t length);
};

/* The backend of an address-space kind, or NULL for an unknown kind. */
const struct vmig_ioas_backend *vmig_ioas_backend(uint32_t kind);

#endif /* VMIG_CORE_IOAS_H */
