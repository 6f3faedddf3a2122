/*
 * ioas.c: the address-space backends (ioas.h): VFIO type1 containers
 * (VFIO_IOMMU_MAP_DMA / UNMAP_DMA) and iommufd IOASes (IOMMU_IOAS_MAP /
 * UNMAP), reached through the session's kernel host table.
 */
#include <stddef.h>

#include "internal.h"
#include "ioas.h"
#include <vmig/linux-uapi.h>

static int type1_map(vmig_session *s, const struct vmig_iommu_rec *io,
		     const struct vmig_mapping_rec *m, void *hva)
{
	struct vfio_iommu_type1_dma_map map = {
		.argsz = sizeof(map),
		.vaddr = (uintptr_t)hva,
		.iova = m->iova,
		.size = m->length,
	};

	if (m->flags & VMIG_DMA_READ)
		map.flags |= VFIO_DMA_MAP_FLAG_READ;
	if (m->flags & VMIG_DMA_WRITE)
		map.flags |= VFIO_DMA_MAP_FLAG_WRITE;
	return s->kernel.ioctl(s->kernel.kctx, io->desc.fd, VFIO_IOMMU_MAP_DMA,
			       &map);
}

static int type1_unmap(vmig_session *s, const struct vmig_iommu_rec *io,
		       uint64_t iova, uint64_t length)
{
	struct vfio_iommu_type1_dma_unmap unmap = {
		.argsz = sizeof(unmap),
		.iova = iova,
		.size = length,
	};

	return s->kernel.ioctl(s->kernel.kctx, io->desc.fd,
			       VFIO_IOMMU_UNMAP_DMA, &unmap);
}

static int iommufd_map(vmig_session *s, const struct vmig_iommu_rec *io,
		       const struct vmig_mapping_rec *m, void *hva)
{
	struct vk_iommu_ioas_map map = {
		.size = sizeof(map),
		.flags = VK_IOMMU_IOAS_MAP_FIXED_IOVA,
		.ioas_id = io->desc.ioas_id,
		.user_va = (uintptr_t)hva,
		.length = m->length,
		.iova = m->iova,
	};

	if (m->flags & VMIG_DMA_READ)
		map.flags |= VK_IOMMU_IOAS_MAP_READABLE;
	if (m->flags & VMIG_DMA_WRITE)
		map.flags |= VK_IOMMU_IOAS_MAP_WRITEABLE;
	return s->kernel.ioctl(s->kernel.kctx, io->desc.fd, VK_IOMMU_IOAS_MAP,
			       &map);
}

static int iommufd_unmap(vmig_session *s, const struct vmig_iommu_rec *io,
			 uint64_t iova, uint64_t length)
{
	struct vk_iommu_ioas_unmap unmap = {
		.size = sizeof(unmap),
		.ioas_id = io->desc.ioas_id,
		.iova = iova,
		.length = length,
	};

	return s->kernel.ioctl(s->kernel.kctx, io->desc.fd,
			       VK_IOMMU_IOAS_UNMAP, &unmap);
}

static const struct vmig_ioas_backend backends[] = {
	{
		.kind = VMIG_IOMMU_TYPE1,
		.name = "type1",
		.noun = "container",
		.read_runs = false,
		.map = type1_map,
		.unmap = type1_unmap,
	},
	{
		.kind = VMIG_IOMMU_IOMMUFD,
		.name = "iommufd",
		.noun = "ioas",
		.read_runs = true,
		.map = iommufd_map,
		.unmap = iommufd_unmap,
	},
};

const struct vmig_ioas_backend *vmig_ioas_backend(uint32_t kind)
{
	size_t i;

	for (i = 0; i < sizeof(backends) / sizeof(backends[0]); i++) {
		if (backends[i].kind == kind)
			return &backends[i];
	}
	return NULL;
}
