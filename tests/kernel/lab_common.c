/*
 * lab_common.c: what the kernel lab's scenarios share beyond the
 * recorder: driving a plugin through its operations, each call and its
 * result said in the transcript, opening a VFIO device through its
 * group, and the iommufd objects (IOAS mappings, mock devices).
 */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <string.h>

#include <linux/vfio.h>

#include <vmig/linux-uapi.h>
#include "common/plugin_args.h"
#include "lab.h"

uint64_t lab_bitmap_bytes(uint64_t nbits)
{
	return (nbits + 63) / 64 * 8;
}

/* ------------------------------------------------------------------ */
/* A plugin, through its operations                                    */

int lab_inst_create(struct lab *lab, struct lab_inst *in, const char *name)
{
	char eb[32];
	int ret;

	in->inst = NULL;
	in->p = lab_plugin(lab, name);
	if (!in->p)
		return -ENOENT;
	ret = in->p->ops->create(&lab->host, &in->inst);
	lab_say(lab, "plugin %s create = %s", name,
		lab_err(ret, eb, sizeof(eb)));
	if (ret)
		in->inst = NULL;
	return ret;
}

void lab_inst_destroy(struct lab *lab, struct lab_inst *in)
{
	if (!in->inst)
		return;
	lab_say(lab, "plugin destroy");
	in->p->ops->destroy(in->inst);
	in->inst = NULL;
}

int lab_inst_probe(struct lab *lab, struct lab_inst *in,
		   const struct vmig_device_desc *d, struct vmig_probe *out)
{
	char eb[32];
	int ret;

	memset(out, 0, sizeof(*out));
	out->size = sizeof(*out);
	ret = in->p->ops->probe(in->inst, d, out);
	lab_say(lab, "plugin probe device %u = %s precision=%s", d->id,
		lab_err(ret, eb, sizeof(eb)), lab_precision(out->precision));
	lab_note(lab, "probe: %s", out->reason);
	return ret;
}

int lab_inst_status(struct lab *lab, struct lab_inst *in, uint32_t id,
		    uint32_t *precision)
{
	struct vmig_probe pr = { .size = sizeof(pr) };
	char eb[32];
	int ret = in->p->ops->status(in->inst, id, &pr);

	lab_say(lab, "plugin status device %u = %s precision=%s", id,
		lab_err(ret, eb, sizeof(eb)), lab_precision(pr.precision));
	*precision = pr.precision;
	return ret;
}

int lab_inst_attach(struct lab *lab, struct lab_inst *in,
		    const struct vmig_device_desc *d)
{
	char eb[32];
	int ret = in->p->ops->attach(in->inst, d);

	lab_say(lab, "plugin attach device %u = %s", d->id,
		lab_err(ret, eb, sizeof(eb)));
	return ret;
}

int lab_inst_detach(struct lab *lab, struct lab_inst *in, uint32_t id)
{
	char eb[32];
	int ret = in->p->ops->detach(in->inst, id);

	lab_say(lab, "plugin detach device %u = %s", id,
		lab_err(ret, eb, sizeof(eb)));
	return ret;
}

int lab_inst_start(struct lab *lab, struct lab_inst *in, uint64_t page_size)
{
	char eb[32];
	int ret = in->p->ops->start(in->inst, page_size);

	lab_say(lab, "plugin start page_size=%llu = %s",
		(unsigned long long)page_size, lab_err(ret, eb, sizeof(eb)));
	return ret;
}

int lab_inst_stop(struct lab *lab, struct lab_inst *in)
{
	char eb[32];
	int ret = in->p->ops->stop(in->inst);

	lab_say(lab, "plugin stop = %s", lab_err(ret, eb, sizeof(eb)));
	return ret;
}

int lab_inst_read(struct lab *lab, struct lab_inst *in, uint32_t iommu_id,
		  uint64_t iova, uint64_t len, uint64_t page_size,
		  uint32_t flags, uint64_t *bm)
{
	struct vmig_read rq =
		vmig_test_read_rq(iommu_id, iova, len, page_size, flags);
	char eb[32];
	int ret;

	memset(bm, 0, lab_bitmap_bytes(len / page_size));
	ret = in->p->ops->read(in->inst, &rq, bm);
	lab_say(lab, "plugin read 0x%llx+0x%llx at %llu%s = %s",
		(unsigned long long)iova, (unsigned long long)len,
		(unsigned long long)page_size,
		flags & VMIG_READ_NO_CLEAR ? " NO_CLEAR" : "",
		lab_err(ret, eb, sizeof(eb)));
	if (!ret)
		lab_say_bitmap(lab, "  read", bm, len / page_size);
	return ret;
}

int lab_inst_unmap_prepare(struct lab *lab, struct lab_inst *in,
			   uint32_t iommu_id, uint64_t iova, uint64_t len,
			   uint64_t page_size, uint64_t *bm, uint32_t *flags)
{
	struct vmig_read rq =
		vmig_test_read_rq(iommu_id, iova, len, page_size, 0);
	char eb[32];
	int ret;

	*flags = 0;
	memset(bm, 0, lab_bitmap_bytes(len / page_size));
	ret = in->p->ops->unmap_prepare(in->inst, &rq, bm, flags);
	lab_say(lab, "plugin unmap_prepare 0x%llx+0x%llx at %llu = %s "
		     "flags=0x%x",
		(unsigned long long)iova, (unsigned long long)len,
		(unsigned long long)page_size, lab_err(ret, eb, sizeof(eb)),
		*flags);
	if (!ret)
		lab_say_bitmap(lab, "  harvested", bm, len / page_size);
	return ret;
}

/* ------------------------------------------------------------------ */
/* VFIO devices                                                        */

int lab_vfio_open(struct lab *lab, const struct lab_dev *dev, int *container,
		  int *group, int *device)
{
	char path[64];
	int ret;

	*group = *device = -1;
	*container = lab_open(lab, "/dev/vfio/vfio", O_RDWR);
	if (*container < 0)
		return *container;
	snprintf(path, sizeof(path), "/dev/vfio/%d", dev->group);
	*group = lab_open(lab, path, O_RDWR);
	if (*group < 0)
		return *group;
	ret = lab_ioctl(lab, *group, VFIO_GROUP_SET_CONTAINER, container);
	if (!ret)
		ret = lab_ioctl(lab, *container, VFIO_SET_IOMMU,
				(void *)(uintptr_t)VFIO_TYPE1v2_IOMMU);
	if (ret)
		return ret;
	*device = lab_ioctl(lab, *group, VFIO_GROUP_GET_DEVICE_FD,
			    (void *)dev->name);
	return *device < 0 ? *device : 0;
}

void lab_vfio_close(struct lab *lab, int *container, int *group,
		    int *device)
{
	/* The device first: its group leaves the container with the group. */
	if (*device >= 0)
		lab_close(lab, *device);
	if (*group >= 0)
		lab_close(lab, *group);
	if (*container >= 0)
		lab_close(lab, *container);
	*container = *group = *device = -1;
}

int lab_feature(struct lab *lab, int devfd, uint32_t flags,
		const void *payload, size_t len, void *out)
{
	uint64_t raw[1 + 4] = { 0 };
	struct vfio_device_feature *f = (void *)raw;
	int ret;

	if (len > sizeof(raw) - sizeof(*f))
		return -EINVAL;
	f->argsz = (uint32_t)(sizeof(*f) + len);
	f->flags = flags;
	if (payload)
		memcpy(f->data, payload, len);
	ret = lab_ioctl(lab, devfd, VFIO_DEVICE_FEATURE, f);
	if (!ret && out)
		memcpy(out, f->data, len);
	return ret;
}

/* ------------------------------------------------------------------ */
/* iommufd objects                                                     */

int lab_iommufd_destroy(struct lab *lab, int fd, uint32_t id)
{
	struct vk_iommu_destroy d = { .size = sizeof(d), .id = id };

	return lab_ioctl(lab, fd, VK_IOMMU_DESTROY, &d);
}

int lab_ioas_map(struct lab *lab, int fd, uint32_t ioas_id, uint64_t iova,
		 void *mem, uint64_t len)
{
	struct vk_iommu_ioas_map m = {
		.size = sizeof(m),
		.flags = VK_IOMMU_IOAS_MAP_FIXED_IOVA |
			 VK_IOMMU_IOAS_MAP_READABLE |
			 VK_IOMMU_IOAS_MAP_WRITEABLE,
		.ioas_id = ioas_id,
		.user_va = (uintptr_t)mem,
		.length = len,
		.iova = iova,
	};

	return lab_ioctl(lab, fd, VK_IOMMU_IOAS_MAP, &m);
}

int lab_hwpt_set_tracking(struct lab *lab, int fd, uint32_t hwpt_id,
			  uint32_t flags)
{
	struct vk_iommu_hwpt_set_dirty_tracking st = {
		.size = sizeof(st),
		.flags = flags,
		.hwpt_id = hwpt_id,
	};

	return lab_ioctl(lab, fd, VK_IOMMU_HWPT_SET_DIRTY_TRACKING, &st);
}

int lab_hwpt_get_dirty(struct lab *lab, int fd, uint32_t hwpt_id,
		       uint32_t flags, uint64_t iova, uint64_t length,
		       uint64_t page_size, uint64_t *bm, size_t bytes)
{
	struct vk_iommu_hwpt_get_dirty_bitmap g = {
		.size = sizeof(g),
		.hwpt_id = hwpt_id,
		.flags = flags,
		.iova = iova,
		.length = length,
		.page_size = page_size,
		.data = (uintptr_t)bm,
	};

	memset(bm, 0, bytes);
	return lab_ioctl(lab, fd, VK_IOMMU_HWPT_GET_DIRTY_BITMAP, &g);
}

int lab_mock_new(struct lab *lab, int fd, uint32_t ioas_id, uint32_t dev_flags,
		 struct lab_mock *m)
{
	struct vk_iommu_test_cmd t = {
		.size = sizeof(t),
		.op = dev_flags ? VK_IOMMU_TEST_OP_MOCK_DOMAIN_FLAGS
				: VK_IOMMU_TEST_OP_MOCK_DOMAIN,
		.id = ioas_id,
	};
	int ret;

	m->stdev_id = m->idev_id = 0;
	m->fd = -1;
	t.mock_domain_flags.dev_flags = dev_flags;
	ret = lab_ioctl(lab, fd, VK_IOMMU_TEST_CMD, &t);
	if (ret)
		return ret;
	m->stdev_id = t.mock_domain.out_stdev_id;
	m->idev_id = t.mock_domain.out_idev_id;
	m->fd = lab_mock_device_open(lab, fd, m->stdev_id);
	return m->fd < 0 ? m->fd : 0;
}

void lab_mock_free(struct lab *lab, int fd, struct lab_mock *m)
{
	if (m->fd >= 0)
		lab_mock_device_close(lab, m->fd);
	if (m->stdev_id)
		LAB_EXPECT_RET(lab, lab_iommufd_destroy(lab, fd, m->stdev_id),
			       0, "destroying a mock device");
	m->fd = -1;
	m->stdev_id = 0;
}
