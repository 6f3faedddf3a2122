/*
 * arbiter.c: which dirty source tracks which device.
 *
 * Every loaded plugin gets one instance per session (created the first
 * time a device is arbitrated). Every instance probes every device; the
 * preference order picks the first that can track it and accepts it; a
 * device nothing can track goes to the built-in fallback, which treats
 * every range the device can write as dirty on every sync. A source that
 * fails hands its devices on, after their ranges are marked dirty, so the
 * invariant holds: every writable range is covered or dirty.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "internal.h"

static const char *const default_preference[] = {
	"iommufd",
	"device-dirty",
	"vfio-type1",
};

const char *vmig_precision_name(uint32_t precision)
{
	switch (precision) {
	case VMIG_PRECISION_EXACT:
		return "exact";
	case VMIG_PRECISION_SUPERSET:
		return "superset";
	case VMIG_PRECISION_ALL_MAPPED:
		return "all-mapped";
	default:
		return "none";
	}
}

static void source_log(void *ctx, int level, const char *msg)
{
	struct vmig_source_rec *src = ctx;

	vmig_logf(src->s, level, "%s: %s", src->name, msg);
}

static void source_ranges_unknown(void *ctx, uint32_t iommu_id,
				  const struct vmig_range *ranges, uint32_t n)
{
	struct vmig_source_rec *src = ctx;
	vmig_session *s = src->s;
	uint32_t i;

	if (iommu_id >= s->nr_iommus || (n && !ranges)) {
		vmig_logf(s, VMIG_LOG_ERROR,
			  "%s: unknown ranges of a bad address space %u: "
			  "treating the source as failed",
			  src->name, iommu_id);
		vmig_source_fail(s, src, -EINVAL, "ranges_unknown");
		return;
	}
	vmig_logf(s, VMIG_LOG_WARN,
		  "%s: %u range(s) of %s may have missed writes: sent as dirty",
		  src->name, n, s->iommus[iommu_id]->name);
	for (i = 0; i < n; i++)
		vmig_dirty_mark_iova(s, iommu_id, ranges[i].iova,
				     ranges[i].length);
}

int vmig_arbiter_init(vmig_session *s)
{
	size_t i, n = vmig_pluginset_count(s->plugins);

	if (s->sources)
		return 0;
	s->sources = calloc(n ? n : 1, sizeof(*s->sources));
	if (!s->sources)
		return -ENOMEM;
	s->nr_sources = n;
	for (i = 0; i < n; i++) {
		struct vmig_source_rec *src = &s->sources[i];

		src->s = s;
		src->index = i;
		src->desc = vmig_pluginset_get(s->plugins, i);
		src->name = src->desc->name;
		src->host = s->kernel;
		src->host.ctx = src;
		src->host.log = source_log;
		src->host.ranges_unknown = source_ranges_unknown;
	}
	return 0;
}

static int source_instance(vmig_session *s, struct vmig_source_rec *src)
{
	int ret;

	if (src->inst)
		return 0;
	if (src->create_failed)
		return src->error;
	ret = src->desc->ops->create(&src->host, &src->inst);
	if (ret < 0 || !src->inst) {
		src->create_failed = true;
		src->error = ret < 0 ? ret : -EINVAL;
		src->inst = NULL;
		vmig_logf(s, VMIG_LOG_WARN, "%s: cannot create an instance: %s",
			  src->name, vmig_strerror(src->error));
		return src->error;
	}
	return 0;
}

/* Position of a source in the preference order (lower is preferred). */
static size_t source_rank(const vmig_session *s,
			  const struct vmig_source_rec *src)
{
	const char *const *order = (const char *const *)s->preference;
	size_t n = s->nr_preference, i;

	if (!s->preference) {
		order = default_preference;
		n = sizeof(default_preference) / sizeof(default_preference[0]);
	}
	for (i = 0; i < n; i++) {
		if (!strcmp(order[i], src->name))
			return i;
	}
	return n + src->index;
}

static const char *kind_name(uint32_t kind)
{
	return kind == VMIG_DEVICE_MDEV ? "mdev" : "vfio-pci";
}

static const char *iommu_kind_name(uint32_t kind)
{
	return kind == VMIG_IOMMU_IOMMUFD ? "iommufd" : "type1";
}

/* Asks one source about dev; fills the candidate record. */
static void source_probe(vmig_session *s, struct vmig_source_rec *src,
			 struct vmig_device_rec *dev, struct vmig_candidate *c)
{
	const struct vmig_iommu_rec *io = s->iommus[dev->iommu];
	int (*probe)(void *, const struct vmig_device_desc *,
		     struct vmig_probe *);
	struct vmig_probe p;
	int ret;

	c->precision = VMIG_PRECISION_NONE;
	c->error = 0;
	c->reason[0] = '\0';
	if (src->failed) {
		snprintf(c->reason, sizeof(c->reason), "source failed: %s",
			 vmig_strerror(src->error));
		return;
	}
	if (!(src->desc->device_kinds & VMIG_KIND_BIT(dev->kind))) {
		snprintf(c->reason, sizeof(c->reason),
			 "does not track %s devices", kind_name(dev->kind));
		return;
	}
	if (!(src->desc->iommu_kinds & VMIG_KIND_BIT(io->desc.kind))) {
		snprintf(c->reason, sizeof(c->reason),
			 "does not track devices behind %s",
			 iommu_kind_name(io->desc.kind));
		return;
	}
	ret = source_instance(s, src);
	if (ret < 0) {
		c->error = ret;
		snprintf(c->reason, sizeof(c->reason),
			 "cannot create an instance: %s", vmig_strerror(ret));
		return;
	}
	probe = VMIG_SOURCE_OP(src, probe);
	if (!probe) {
		snprintf(c->reason, sizeof(c->reason), "cannot probe devices");
		return;
	}
	memset(&p, 0, sizeof(p));
	p.size = sizeof(p);
	ret = probe(src->inst, &dev->desc, &p);
	if (ret < 0) {
		c->error = ret;
		snprintf(c->reason, sizeof(c->reason), "probe failed: %s",
			 vmig_strerror(ret));
		return;
	}
	p.reason[sizeof(p.reason) - 1] = '\0';
	if (p.precision > VMIG_PRECISION_ALL_MAPPED) {
		snprintf(c->reason, sizeof(c->reason),
			 "probe answered an unknown precision %u",
			 p.precision);
		return;
	}
	c->precision = p.precision;
	snprintf(c->reason, sizeof(c->reason), "%s",
		 p.reason[0] ? p.reason
			     : (p.precision ? "can track it" : "declined"));
}

/* Starts a source; on failure it is marked failed and 0 is not returned. */
static int source_start(vmig_session *s, struct vmig_source_rec *src)
{
	int (*start)(void *, uint64_t) = VMIG_SOURCE_OP(src, start);
	int ret = 0;

	if (src->started)
		return 0;
	if (start)
		ret = start(src->inst, VMIG_PAGE_SIZE);
	if (ret < 0)
		return ret;
	src->started = true;
	vmig_logf(s, VMIG_LOG_INFO, "%s: tracking %u device(s)", src->name,
		  src->nr_devices);
	return 0;
}

static void fallback(vmig_session *s, struct vmig_device_rec *dev,
		     const char *why)
{
	dev->source = VMIG_SOURCE_FALLBACK;
	dev->precision = VMIG_PRECISION_ALL_MAPPED;
	snprintf(dev->reason, sizeof(dev->reason), "%s", why);
	vmig_logf(s, VMIG_LOG_INFO,
		  "device %s: no dirty source (%s): its ranges are sent as "
		  "dirty in every iteration",
		  dev->name, why);
}

int vmig_arbiter_assign(vmig_session *s, struct vmig_device_rec *dev)
{
	struct vmig_candidate *cands;
	size_t *order, i, j;
	int ret;

	ret = vmig_arbiter_init(s);
	if (ret < 0)
		return ret;
	ret = vmig_device_desc_fill(s, dev);
	if (ret < 0)
		return ret;
	cands = calloc(s->nr_sources ? s->nr_sources : 1, sizeof(*cands));
	order = calloc(s->nr_sources ? s->nr_sources : 1, sizeof(*order));
	if (!cands || !order) {
		free(cands);
		free(order);
		return -ENOMEM;
	}
	free(dev->candidates);
	dev->candidates = cands;
	dev->nr_candidates = s->nr_sources;
	for (i = 0; i < s->nr_sources; i++)
		source_probe(s, &s->sources[i], dev, &cands[i]);

	if (dev->hotplugged && s->hotplug == VMIG_HOTPLUG_DEGRADE) {
		free(order);
		fallback(s, dev, "hot-plugged during migration; policy "
				 "\"degrade\"");
		return 0;
	}

	/* Insertion sort by rank: there are only a handful of sources. */
	for (i = 0; i < s->nr_sources; i++) {
		size_t r = source_rank(s, &s->sources[i]);

		for (j = i; j > 0 &&
			    source_rank(s, &s->sources[order[j - 1]]) > r;
		     j--)
			order[j] = order[j - 1];
		order[j] = i;
	}

	for (i = 0; i < s->nr_sources; i++) {
		struct vmig_source_rec *src = &s->sources[order[i]];
		struct vmig_candidate *c = &cands[order[i]];
		int (*attach)(void *, const struct vmig_device_desc *) =
			VMIG_SOURCE_OP(src, attach);
		int (*detach)(void *, uint32_t) = VMIG_SOURCE_OP(src, detach);

		if (c->precision == VMIG_PRECISION_NONE || src->failed)
			continue;
		ret = attach ? attach(src->inst, &dev->desc) : 0;
		if (ret < 0) {
			c->error = ret;
			snprintf(c->reason, sizeof(c->reason),
				 "attach failed: %s", vmig_strerror(ret));
			continue;
		}
		src->nr_devices++;
		if (s->tracking) {
			ret = source_start(s, src);
			if (ret < 0) {
				src->nr_devices--;
				if (detach)
					detach(src->inst, dev->id);
				c->error = ret;
				snprintf(c->reason, sizeof(c->reason),
					 "start failed: %s",
					 vmig_strerror(ret));
				if (!src->nr_devices) {
					src->failed = true;
					src->error = ret;
				}
				continue;
			}
		}
		dev->source = (int)order[i];
		dev->precision = c->precision;
		snprintf(dev->reason, sizeof(dev->reason), "%s", c->reason);
		vmig_logf(s, VMIG_LOG_INFO, "device %s: tracked by %s (%s)",
			  dev->name, src->name,
			  vmig_precision_name(c->precision));
		free(order);
		return 0;
	}
	free(order);
	fallback(s, dev, s->nr_sources ? "no source can track it"
				       : "no dirty source is loaded");
	return 0;
}

void vmig_arbiter_release(vmig_session *s, struct vmig_device_rec *dev)
{
	if (dev->source >= 0) {
		struct vmig_source_rec *src = &s->sources[dev->source];
		int (*detach)(void *, uint32_t) = VMIG_SOURCE_OP(src, detach);

		if (detach && src->inst) {
			int ret = detach(src->inst, dev->id);

			if (ret < 0)
				vmig_logf(s, VMIG_LOG_WARN,
					  "%s: detach of %s: %s", src->name,
					  dev->name, vmig_strerror(ret));
		}
		src->nr_devices--;
	}
	dev->source = VMIG_SOURCE_NONE;
}

/* Hands the devices of a failed source to others, their ranges dirty. */
static void source_reassign(vmig_session *s, struct vmig_source_rec *src)
{
	size_t i;

	for (i = 0; i < s->nr_devices; i++) {
		struct vmig_device_rec *dev = s->devices[i];

		if (!dev->present || dev->source != (int)src->index)
			continue;
		vmig_arbiter_release(s, dev);
		if (s->tracking) {
			/* What it wrote since the last good read is unknown. */
			vmig_dirty_mark_space(s, dev->iommu);
		}
		if (vmig_arbiter_assign(s, dev) < 0)
			fallback(s, dev, "out of memory choosing a source");
	}
}

void vmig_source_fail(vmig_session *s, struct vmig_source_rec *src, int err,
		      const char *what)
{
	if (src->failed)
		return;
	src->failed = true;
	src->error = err;
	vmig_logf(s, VMIG_LOG_ERROR,
		  "%s: %s failed (%s): its devices' ranges are dirty and "
		  "they move to another source",
		  src->name, what, vmig_strerror(err));
	source_reassign(s, src);
}

int vmig_arbiter_start(vmig_session *s)
{
	size_t i;
	int ret;

	for (i = 0; i < s->nr_sources; i++) {
		struct vmig_source_rec *src = &s->sources[i];

		if (!src->nr_devices || src->started || src->failed)
			continue;
		ret = source_start(s, src);
		if (ret < 0)
			vmig_source_fail(s, src, ret, "start");
	}
	return 0;
}

int vmig_arbiter_start_gpa(vmig_session *s)
{
	size_t i;
	int n = 0, ret;

	for (i = 0; i < s->nr_sources; i++) {
		struct vmig_source_rec *src = &s->sources[i];

		if (!(src->desc->iommu_kinds & VMIG_KIND_BIT(VMIG_IOMMU_GPA)))
			continue;
		src->gpa = true;
		if (src->failed || source_instance(s, src) < 0)
			continue;
		ret = source_start(s, src);
		if (ret < 0) {
			vmig_source_fail(s, src, ret, "start");
			continue;
		}
		vmig_logf(s, VMIG_LOG_INFO,
			  "%s: tracking guest memory (vCPU writes)", src->name);
		n++;
	}
	return n;
}

void vmig_arbiter_stop(vmig_session *s)
{
	size_t i;

	for (i = 0; i < s->nr_sources; i++) {
		struct vmig_source_rec *src = &s->sources[i];
		int (*stop)(void *) = VMIG_SOURCE_OP(src, stop);

		if (!src->started)
			continue;
		if (stop) {
			int ret = stop(src->inst);

			if (ret < 0)
				vmig_logf(s, VMIG_LOG_WARN, "%s: stop: %s",
					  src->name, vmig_strerror(ret));
		}
		src->started = false;
	}
}

void vmig_arbiter_fini(vmig_session *s)
{
	size_t i;

	for (i = 0; i < s->nr_devices; i++) {
		if (s->devices[i]->present)
			vmig_arbiter_release(s, s->devices[i]);
	}
	for (i = 0; i < s->nr_sources; i++) {
		struct vmig_source_rec *src = &s->sources[i];
		void (*destroy)(void *) = VMIG_SOURCE_OP(src, destroy);

		if (src->inst && destroy)
			destroy(src->inst);
		src->inst = NULL;
	}
	free(s->sources);
	s->sources = NULL;
	s->nr_sources = 0;
}
