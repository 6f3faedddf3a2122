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
#include "ioas.h"
#include "source.h"

static const char *const default_preference[] = {
	"iommufd",
	"device-dirty",
	"vfio-type1",
};

VMIG_API const char *vmig_precision_name(uint32_t precision)
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
		src->host.user = vmig_pluginset_user(s->plugins, i);
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
	ret = vmig_src_create(src);
	if (ret < 0) {
		src->create_failed = true;
		src->error = ret;
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


/* Asks one source about dev; fills the candidate record. */
static void source_probe(vmig_session *s, struct vmig_source_rec *src,
			 struct vmig_device_rec *dev, struct vmig_candidate *c)
{
	const struct vmig_iommu_rec *io = s->iommus[dev->iommu];
	struct vmig_probe p;
	int ret;

	c->precision = VMIG_PRECISION_NONE;
	c->flags = 0;
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
			 "does not track devices behind %s", io->be->name);
		return;
	}
	ret = source_instance(s, src);
	if (ret < 0) {
		c->error = ret;
		snprintf(c->reason, sizeof(c->reason),
			 "cannot create an instance: %s", vmig_strerror(ret));
		return;
	}
	ret = vmig_src_probe(src, &dev->desc, &p);
	if (ret < 0) {
		c->error = ret;
		snprintf(c->reason, sizeof(c->reason), "probe failed: %s",
			 vmig_strerror(ret));
		return;
	}
	c->precision = p.precision;
	c->flags = p.flags;
	snprintf(c->reason, sizeof(c->reason), "%s",
		 p.reason[0] ? p.reason
			     : (p.precision ? "can track it" : "declined"));
}

/* Starts a source; on failure it is marked failed and 0 is not returned. */
static int source_start(vmig_session *s, struct vmig_source_rec *src)
{
	int ret;

	if (src->started)
		return 0;
	ret = vmig_src_start(src, VMIG_PAGE_SIZE);
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
	dev->pasids_covered = false;
	snprintf(dev->reason, sizeof(dev->reason), "%s", why);
	vmig_logf(s, VMIG_LOG_INFO,
		  "device %s: no dirty source (%s): its ranges are sent as "
		  "dirty in every iteration",
		  dev->name, why);
}

/* Every source probes dev: its candidate records, for choosing and report. */
static int probe_device(vmig_session *s, struct vmig_device_rec *dev)
{
	struct vmig_candidate *cands;
	size_t i;
	int ret;

	ret = vmig_device_desc_fill(s, dev);
	if (ret < 0)
		return ret;
	cands = calloc(s->nr_sources ? s->nr_sources : 1, sizeof(*cands));
	if (!cands)
		return -ENOMEM;
	free(dev->candidates);
	dev->candidates = cands;
	dev->nr_candidates = s->nr_sources;
	for (i = 0; i < s->nr_sources; i++)
		source_probe(s, &s->sources[i], dev, &cands[i]);
	return 0;
}

/* The sources' indexes in preference order (caller frees), or NULL. */
static size_t *preference_order(const vmig_session *s)
{
	size_t *order = calloc(s->nr_sources ? s->nr_sources : 1,
			       sizeof(*order));
	size_t i, j;

	if (!order)
		return NULL;
	/* Insertion sort by rank: there are only a handful of sources. */
	for (i = 0; i < s->nr_sources; i++) {
		size_t r = source_rank(s, &s->sources[i]);

		for (j = i; j > 0 &&
			    source_rank(s, &s->sources[order[j - 1]]) > r;
		     j--)
			order[j] = order[j - 1];
		order[j] = i;
	}
	return order;
}

/*
 * Hands dev to source si, which probed it positively: attach, and start
 * the source when tracking runs and it was idle. On failure the candidate
 * record says why and dev is untouched.
 */
static int take_device(vmig_session *s, size_t si,
		       struct vmig_device_rec *dev)
{
	struct vmig_source_rec *src = &s->sources[si];
	struct vmig_candidate *c = &dev->candidates[si];
	int ret;

	ret = vmig_src_attach(src, &dev->desc);
	if (ret < 0) {
		c->error = ret;
		snprintf(c->reason, sizeof(c->reason), "attach failed: %s",
			 vmig_strerror(ret));
		return ret;
	}
	src->nr_devices++;
	if (s->tracking) {
		ret = source_start(s, src);
		if (ret < 0) {
			src->nr_devices--;
			(void)vmig_src_detach(src, dev->id);
			c->error = ret;
			snprintf(c->reason, sizeof(c->reason),
				 "start failed: %s", vmig_strerror(ret));
			if (!src->nr_devices) {
				src->failed = true;
				src->error = ret;
			}
			return ret;
		}
	}
	dev->source = (int)si;
	dev->precision = c->precision;
	dev->pasids_covered = dev->nr_pasids && (c->flags & VMIG_PROBE_PASIDS);
	snprintf(dev->reason, sizeof(dev->reason), "%s", c->reason);
	vmig_logf(s, VMIG_LOG_INFO, "device %s: tracked by %s (%s)", dev->name,
		  src->name, vmig_precision_name(c->precision));
	return 0;
}

static bool can_take(const vmig_session *s, size_t si,
		     const struct vmig_device_rec *dev)
{
	return !s->sources[si].failed &&
	       dev->candidates[si].precision != VMIG_PRECISION_NONE;
}

/*
 * All or nothing: every device of the address space with one source, the
 * first in preference order that can take them all, or every one of them
 * on the fallback. A device arriving in a space already arbitrated joins
 * the space's source, or sends the whole space to the fallback.
 */
static int assign_space(vmig_session *s, struct vmig_device_rec *dev)
{
	struct vmig_device_rec **devs;
	size_t *order = NULL, n = 0, i, k, taken;
	int current = VMIG_SOURCE_NONE, ret = 0;

	devs = calloc(s->nr_devices ? s->nr_devices : 1, sizeof(*devs));
	if (!devs)
		return -ENOMEM;
	for (i = 0; i < s->nr_devices; i++) {
		struct vmig_device_rec *d = s->devices[i];

		if (!d->present || d->iommu != dev->iommu)
			continue;
		if (d != dev && d->source != VMIG_SOURCE_NONE)
			current = d->source;
		devs[n++] = d;
	}
	if (current != VMIG_SOURCE_NONE) {
		/* The space has its mode: the newcomer follows it. */
		if (current >= 0 && can_take(s, (size_t)current, dev) &&
		    take_device(s, (size_t)current, dev) == 0)
			goto out;
		for (i = 0; i < n; i++) {
			if (devs[i]->source == VMIG_SOURCE_NONE)
				continue;
			/* Its writes since the last read: dirty once. */
			if (s->tracking)
				vmig_dirty_mark_space(s, devs[i]->iommu);
			vmig_arbiter_release(s, devs[i]);
		}
		for (i = 0; i < n; i++)
			fallback(s, devs[i], "all-or-nothing: a device of its "
					     "address space cannot be tracked "
					     "by the space's source");
		goto out;
	}
	order = preference_order(s);
	if (!order) {
		ret = -ENOMEM;
		goto out;
	}
	for (k = 0; k < s->nr_sources; k++) {
		size_t si = order[k];

		for (i = 0; i < n && can_take(s, si, devs[i]); i++)
			;
		if (i < n)
			continue;
		for (taken = 0; taken < n; taken++) {
			if (take_device(s, si, devs[taken]) < 0)
				break;
		}
		if (taken == n)
			goto out;
		while (taken--)
			vmig_arbiter_release(s, devs[taken]);
	}
	for (i = 0; i < n; i++)
		fallback(s, devs[i], "all-or-nothing: no single source can "
				     "track every device of its address space");
out:
	free(order);
	free(devs);
	return ret;
}

int vmig_arbiter_assign(vmig_session *s, struct vmig_device_rec *dev)
{
	size_t *order, i;
	int ret;

	ret = vmig_arbiter_init(s);
	if (ret < 0)
		return ret;
	ret = probe_device(s, dev);
	if (ret < 0)
		return ret;
	if (dev->hotplugged && s->hotplug == VMIG_HOTPLUG_POLICY_DEGRADE) {
		fallback(s, dev, "hot-plugged during migration; policy "
				 "\"degrade\"");
		return 0;
	}
	if (s->all_or_nothing) {
		/* The space's other devices are probed as they come. */
		for (i = 0; i < s->nr_devices; i++) {
			struct vmig_device_rec *d = s->devices[i];

			if (d != dev && d->present && d->iommu == dev->iommu &&
			    d->source == VMIG_SOURCE_NONE) {
				ret = probe_device(s, d);
				if (ret < 0)
					return ret;
			}
		}
		return assign_space(s, dev);
	}
	order = preference_order(s);
	if (!order)
		return -ENOMEM;
	for (i = 0; i < s->nr_sources; i++) {
		if (can_take(s, order[i], dev) &&
		    take_device(s, order[i], dev) == 0) {
			free(order);
			return 0;
		}
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
		int ret = vmig_src_detach(src, dev->id);

		if (ret < 0)
			vmig_logf(s, VMIG_LOG_WARN, "%s: detach of %s: %s",
				  src->name, dev->name, vmig_strerror(ret));
		src->nr_devices--;
	}
	dev->source = VMIG_SOURCE_NONE;
	dev->pasids_covered = false;
}

void vmig_arbiter_device_gone(vmig_session *s,
			      const struct vmig_device_rec *dev)
{
	size_t i;

	for (i = 0; i < s->nr_sources; i++)
		vmig_src_device_gone(&s->sources[i], dev->id);
}

/* Marks every range dev can write dirty: its space and its PASIDs'. */
static void device_mark_dirty(vmig_session *s,
			      const struct vmig_device_rec *dev)
{
	uint32_t j;

	vmig_dirty_mark_space(s, dev->iommu);
	for (j = 0; j < dev->nr_pasids; j++)
		vmig_dirty_mark_space(s, dev->pasids[j].iommu_id);
}

/*
 * A failed source gets one fresh instance, attached to its devices and
 * started again: a transient failure (a tracker reset under it) should
 * not cost it its devices. What they wrote since the last good read is
 * unknown, so whatever the source covered is dirty once: its devices'
 * ranges, or all of guest memory for a vCPU source. Returns 0 when it
 * runs again.
 */
static int source_restart(vmig_session *s, struct vmig_source_rec *src)
{
	bool was_started = src->started;
	size_t i;
	int ret;

	if (src->restarted || !src->inst)
		return -EALREADY;
	src->restarted = true;
	vmig_src_destroy(src);
	src->started = false;
	ret = vmig_src_create(src);
	if (ret < 0)
		return ret;
	/*
	 * The devices others track are probed too, as at their arbitration:
	 * a source may base its precision on them (type1 counts every
	 * vfio-pci group of a container, whoever tracks it).
	 */
	for (i = 0; i < s->nr_devices; i++) {
		struct vmig_device_rec *dev = s->devices[i];
		struct vmig_probe p;

		if (!dev->present || dev->source == (int)src->index ||
		    !(src->desc->device_kinds & VMIG_KIND_BIT(dev->kind)) ||
		    !(src->desc->iommu_kinds &
		      VMIG_KIND_BIT(s->iommus[dev->iommu]->desc.kind)) ||
		    vmig_device_desc_fill(s, dev) < 0)
			continue;
		(void)vmig_src_probe(src, &dev->desc, &p);
	}
	for (i = 0; i < s->nr_devices; i++) {
		struct vmig_device_rec *dev = s->devices[i];

		if (!dev->present || dev->source != (int)src->index)
			continue;
		ret = vmig_device_desc_fill(s, dev);
		/*
		 * The new instance probes first, as any instance does: a
		 * source may base its attach on the verdict it gave (the
		 * PASIDs it covers), which can have changed.
		 */
		if (ret == 0) {
			struct vmig_probe p;

			ret = vmig_src_probe(src, &dev->desc, &p);
			if (ret == 0 && p.precision == VMIG_PRECISION_NONE)
				ret = -ENODEV;
			dev->pasids_covered = dev->nr_pasids &&
					      (p.flags & VMIG_PROBE_PASIDS);
		}
		if (ret == 0)
			ret = vmig_src_attach(src, &dev->desc);
		if (ret < 0)
			goto fail;
		device_mark_dirty(s, dev);
	}
	if (was_started || s->tracking) {
		ret = vmig_src_start(src, VMIG_PAGE_SIZE);
		if (ret < 0)
			goto fail;
		src->started = true;
	}
	/*
	 * A vCPU source has no devices, but covers all of guest memory:
	 * what the vCPUs wrote since its last good read is unknown (and a
	 * KVM dirty log's start discards what the old one held).
	 */
	if (src->gpa && s->tracking)
		vmig_dirty_mark_all(s);
	return 0;
fail:
	/* The devices are released by the caller, from a clean slate. */
	vmig_src_destroy(src);
	src->started = false;
	return ret;
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
		/* What it wrote since the last good read is unknown. */
		if (s->tracking)
			device_mark_dirty(s, dev);
		if (vmig_arbiter_assign(s, dev) < 0)
			fallback(s, dev, "out of memory choosing a source");
	}
}

void vmig_source_fail(vmig_session *s, struct vmig_source_rec *src, int err,
		      const char *what)
{
	int ret;

	if (src->failed)
		return;
	ret = source_restart(s, src);
	if (ret == 0) {
		vmig_logf(s, VMIG_LOG_WARN,
			  "%s: %s failed (%s): restarted; its devices' ranges "
			  "are dirty once",
			  src->name, what, vmig_strerror(err));
		return;
	}
	src->failed = true;
	src->error = err;
	vmig_logf(s, VMIG_LOG_ERROR,
		  "%s: %s failed (%s)%s: its devices' ranges are dirty and "
		  "they move to another source",
		  src->name, what, vmig_strerror(err),
		  ret == -EALREADY ? " again" : ", and so did a restart");
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
		int ret;

		if (!src->started)
			continue;
		ret = vmig_src_stop(src);
		if (ret < 0)
			vmig_logf(s, VMIG_LOG_WARN, "%s: stop: %s", src->name,
				  vmig_strerror(ret));
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
		vmig_src_destroy(&s->sources[i]);
	}
	free(s->sources);
	s->sources = NULL;
	s->nr_sources = 0;
}
