/*
 * source.c: the calls into a dirty source's operations, with the ABI's
 * defaults for a missing slot applied here and nowhere else (source.h).
 */
#include <errno.h>
#include <stddef.h>
#include <stdio.h>
#include <string.h>

#include "internal.h"
#include "source.h"

/*
 * A source's operation, or NULL when the plugin lacks it (NULL in its
 * table, or a table from an older ABI minor that ends before it).
 */
#define SOURCE_OP(src, op)                                             \
	((src)->desc->ops->size >= offsetof(struct vmig_source_ops, op) + \
				   sizeof(void *)                        \
		 ? (src)->desc->ops->op                                  \
		 : NULL)

int vmig_src_create(struct vmig_source_rec *src)
{
	int ret;

	src->inst = NULL;
	ret = src->desc->ops->create(&src->host, &src->inst);
	if (ret < 0 || !src->inst) {
		src->inst = NULL;
		return ret < 0 ? ret : -EINVAL;
	}
	return 0;
}

void vmig_src_destroy(struct vmig_source_rec *src)
{
	void (*destroy)(void *) = SOURCE_OP(src, destroy);

	if (src->inst && destroy)
		destroy(src->inst);
	src->inst = NULL;
}

int vmig_src_probe(struct vmig_source_rec *src,
		   const struct vmig_device_desc *dev, struct vmig_probe *out)
{
	int (*probe)(void *, const struct vmig_device_desc *,
		     struct vmig_probe *) = SOURCE_OP(src, probe);
	int ret;

	memset(out, 0, sizeof(*out));
	out->size = sizeof(*out);
	if (!probe) {
		snprintf(out->reason, sizeof(out->reason),
			 "cannot probe devices");
		return 0;
	}
	ret = probe(src->inst, dev, out);
	out->reason[sizeof(out->reason) - 1] = '\0';
	if (ret < 0)
		return ret;
	if (out->precision > VMIG_PRECISION_ALL_MAPPED) {
		snprintf(out->reason, sizeof(out->reason),
			 "probe answered an unknown precision %u",
			 out->precision);
		out->precision = VMIG_PRECISION_NONE;
	}
	return 0;
}

int vmig_src_attach(struct vmig_source_rec *src,
		    const struct vmig_device_desc *dev)
{
	int (*attach)(void *, const struct vmig_device_desc *) =
		SOURCE_OP(src, attach);

	return attach ? attach(src->inst, dev) : 0;
}

int vmig_src_detach(struct vmig_source_rec *src, uint32_t device_id)
{
	int (*detach)(void *, uint32_t) = SOURCE_OP(src, detach);

	return detach && src->inst ? detach(src->inst, device_id) : 0;
}

int vmig_src_start(struct vmig_source_rec *src, uint64_t page_size)
{
	int (*start)(void *, uint64_t) = SOURCE_OP(src, start);

	return start ? start(src->inst, page_size) : 0;
}

int vmig_src_stop(struct vmig_source_rec *src)
{
	int (*stop)(void *) = SOURCE_OP(src, stop);

	return stop && src->inst ? stop(src->inst) : 0;
}

bool vmig_src_reads(const struct vmig_source_rec *src)
{
	return SOURCE_OP(src, read) != NULL;
}

/* Every page of rq, for a source that does not say which. */
static void all_dirty(const struct vmig_read *rq, uint64_t *bitmap)
{
	vmig_bitmap_set(bitmap, 0, rq->length / rq->page_size);
}

int vmig_src_read(struct vmig_source_rec *src, const struct vmig_read *rq,
		  uint64_t *bitmap)
{
	int (*read)(void *, const struct vmig_read *, uint64_t *) =
		SOURCE_OP(src, read);

	if (!read) {
		all_dirty(rq, bitmap);
		return 0;
	}
	return read(src->inst, rq, bitmap);
}

int vmig_src_map(struct vmig_source_rec *src, uint32_t iommu_id,
		 const struct vmig_range *range)
{
	int (*map)(void *, uint32_t, const struct vmig_range *) =
		SOURCE_OP(src, map);

	return map ? map(src->inst, iommu_id, range) : 0;
}

int vmig_src_unmap_prepare(struct vmig_source_rec *src,
			   const struct vmig_read *rq, uint64_t *bitmap,
			   uint32_t *flags)
{
	int (*prepare)(void *, const struct vmig_read *, uint64_t *,
		       uint32_t *) = SOURCE_OP(src, unmap_prepare);

	*flags = 0;
	if (!prepare)
		return vmig_src_read(src, rq, bitmap);
	return prepare(src->inst, rq, bitmap, flags);
}

int vmig_src_unmap_complete(struct vmig_source_rec *src,
			    const struct vmig_read *rq, uint64_t *bitmap)
{
	int (*complete)(void *, const struct vmig_read *, uint64_t *) =
		SOURCE_OP(src, unmap_complete);

	return complete ? complete(src->inst, rq, bitmap) : 0;
}

int vmig_src_status(struct vmig_source_rec *src, uint32_t device_id,
		    struct vmig_probe *out)
{
	int (*status)(void *, uint32_t, struct vmig_probe *) =
		SOURCE_OP(src, status);
	int ret;

	memset(out, 0, sizeof(*out));
	out->size = sizeof(*out);
	if (!status || !src->inst)
		return -ENOTSUP;
	ret = status(src->inst, device_id, out);
	out->reason[sizeof(out->reason) - 1] = '\0';
	if (ret == 0 && out->precision > VMIG_PRECISION_ALL_MAPPED)
		return -EINVAL;
	return ret;
}

void vmig_src_device_gone(struct vmig_source_rec *src, uint32_t device_id)
{
	void (*gone)(void *, uint32_t) = SOURCE_OP(src, device_gone);

	if (gone && src->inst)
		gone(src->inst, device_id);
}
