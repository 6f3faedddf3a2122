/*
 * report.c: the session's JSON report.
 *
 * The report describes the last run (figures per iteration and in total,
 * with the simulated kernel's ground truth when there is one), every
 * device (which source tracks it, with what precision, and why every other
 * source was not chosen), every source and guest memory. Top-level names
 * are kept stable: later versions add keys, they never rename them.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cjson/cJSON.h>

#include "internal.h"

/* Adds a number; NULL (JSON null) when the figure is unknown. */
static bool add_u64(cJSON *o, const char *key, uint64_t v, bool known)
{
	cJSON *item = known ? cJSON_CreateNumber((double)v)
			    : cJSON_CreateNull();

	if (item && cJSON_AddItemToObject(o, key, item))
		return true;
	cJSON_Delete(item);
	return false;
}

static bool add_str(cJSON *o, const char *key, const char *v)
{
	return cJSON_AddStringToObject(o, key, v ? v : "") != NULL;
}

static const char *kernel_name(const vmig_session *s)
{
	if (s->ksim)
		return "simulated";
	if (s->kernel.ioctl == vmig_linux_host.ioctl)
		return "linux";
	return "embedder";
}

static cJSON *report_iterations(const vmig_session *s)
{
	const struct vmig_run_stats *st = &s->stats;
	cJSON *arr = cJSON_CreateArray();
	size_t i;

	if (!arr)
		return NULL;
	for (i = 0; i < st->nr_iters; i++) {
		const struct vmig_iter_stats *it = &st->iters[i];
		cJSON *o = cJSON_CreateObject();

		if (!o || !cJSON_AddItemToArray(arr, o) ||
		    !add_u64(o, "iteration", it->iteration, true) ||
		    !add_u64(o, "duration_us", it->duration_us, true) ||
		    !add_u64(o, "dma_writes", it->writes, st->truth) ||
		    !add_u64(o, "pages_written", it->pages_written,
			     st->truth) ||
		    !add_u64(o, "pages_reported", it->pages_reported, true) ||
		    !add_u64(o, "pages_missed", it->pages_missed, st->truth)) {
			cJSON_Delete(arr);
			return NULL;
		}
	}
	return arr;
}

static cJSON *report_device(vmig_session *s, struct vmig_device_rec *dev)
{
	struct vmig_device_status ds = { .size = sizeof(ds) };
	cJSON *o = cJSON_CreateObject(), *cands;
	size_t i;

	if (!o)
		return NULL;
	if (dev->present)
		vmig_device_status(s, dev->id, &ds);
	else
		snprintf(ds.source, sizeof(ds.source), "%s", "");
	if (!add_str(o, "name", dev->name) ||
	    !add_str(o, "kind",
		     dev->kind == VMIG_DEVICE_MDEV ? "mdev" : "vfio-pci") ||
	    !add_str(o, "address", dev->address) ||
	    !add_str(o, "space", s->iommus[dev->iommu]->name) ||
	    !add_str(o, "iommu",
		     s->iommus[dev->iommu]->desc.kind == VMIG_IOMMU_IOMMUFD
			     ? "iommufd"
			     : "type1") ||
	    !cJSON_AddBoolToObject(o, "present", dev->present) ||
	    !cJSON_AddBoolToObject(o, "hotplugged", dev->hotplugged) ||
	    !add_str(o, "source", dev->present ? ds.source : "") ||
	    !add_str(o, "precision",
		     vmig_precision_name(dev->present ? ds.precision
						      : VMIG_PRECISION_NONE)) ||
	    !add_str(o, "reason", dev->present ? ds.reason : "unplugged"))
		goto fail;
	cands = cJSON_AddArrayToObject(o, "candidates");
	if (!cands)
		goto fail;
	for (i = 0; i < dev->nr_candidates && i < s->nr_sources; i++) {
		const struct vmig_candidate *c = &dev->candidates[i];
		cJSON *co = cJSON_CreateObject();

		if (!co || !cJSON_AddItemToArray(cands, co) ||
		    !add_str(co, "source", s->sources[i].name) ||
		    !cJSON_AddBoolToObject(co, "chosen",
					   dev->source == (int)i) ||
		    !add_str(co, "precision",
			     vmig_precision_name(c->precision)) ||
		    !add_str(co, "reason", c->reason))
			goto fail;
	}
	return o;
fail:
	cJSON_Delete(o);
	return NULL;
}

static cJSON *report_sources(const vmig_session *s)
{
	cJSON *arr = cJSON_CreateArray();
	size_t i;

	if (!arr)
		return NULL;
	for (i = 0; i < s->nr_sources; i++) {
		const struct vmig_source_rec *src = &s->sources[i];
		const char *path = vmig_pluginset_path(s->plugins, src->index);
		cJSON *o = cJSON_CreateObject();

		if (!o || !cJSON_AddItemToArray(arr, o) ||
		    !add_str(o, "name", src->name) ||
		    !add_str(o, "plugin", path ? path : "(registered)") ||
		    !add_u64(o, "devices", src->nr_devices, true) ||
		    !add_u64(o, "reads", src->reads, true) ||
		    !add_u64(o, "read_errors", src->read_errors, true) ||
		    !cJSON_AddBoolToObject(o, "failed",
					   src->failed || src->create_failed) ||
		    !add_str(o, "error",
			     src->failed || src->create_failed
				     ? vmig_strerror(src->error)
				     : "")) {
			cJSON_Delete(arr);
			return NULL;
		}
	}
	return arr;
}

static cJSON *report_memory(const vmig_session *s)
{
	cJSON *arr = cJSON_CreateArray();
	size_t i;

	if (!arr)
		return NULL;
	for (i = 0; i < s->nr_regions; i++) {
		const struct vmig_region_rec *r = &s->regions[i];
		cJSON *o = cJSON_CreateObject();

		if (!o || !cJSON_AddItemToArray(arr, o) ||
		    !add_str(o, "name", r->name) ||
		    !add_u64(o, "gpa", r->gpa, true) ||
		    !add_u64(o, "size", r->length, true)) {
			cJSON_Delete(arr);
			return NULL;
		}
	}
	return arr;
}

static cJSON *report_build(vmig_session *s)
{
	const struct vmig_run_stats *st = &s->stats;
	cJSON *root = cJSON_CreateObject(), *item, *devs;
	size_t i;

	if (!root)
		return NULL;
	/* The three figures every report leads with. */
	if (!add_u64(root, "pages_written", st->pages_written,
		     st->valid && st->truth) ||
	    !add_u64(root, "pages_reported", st->pages_reported, st->valid) ||
	    !add_u64(root, "pages_missed", st->pages_missed,
		     st->valid && st->truth) ||
	    !add_str(root, "vmig_version", VMIG_VERSION_STRING) ||
	    !add_str(root, "mode", "tracking") ||
	    !add_str(root, "role",
		     s->role == VMIG_ROLE_DESTINATION ? "destination"
						      : "source") ||
	    !add_str(root, "kernel", kernel_name(s)) ||
	    !add_u64(root, "page_size", VMIG_PAGE_SIZE, true) ||
	    !add_u64(root, "duration_us", st->duration_us, st->valid))
		goto fail;
	item = report_iterations(s);
	if (!item || !cJSON_AddItemToObject(root, "iterations", item)) {
		cJSON_Delete(item);
		goto fail;
	}
	devs = cJSON_AddArrayToObject(root, "devices");
	if (!devs)
		goto fail;
	for (i = 0; i < s->nr_devices; i++) {
		item = report_device(s, s->devices[i]);
		if (!item || !cJSON_AddItemToArray(devs, item)) {
			cJSON_Delete(item);
			goto fail;
		}
	}
	item = report_sources(s);
	if (!item || !cJSON_AddItemToObject(root, "sources", item)) {
		cJSON_Delete(item);
		goto fail;
	}
	item = report_memory(s);
	if (!item || !cJSON_AddItemToObject(root, "memory", item)) {
		cJSON_Delete(item);
		goto fail;
	}
	return root;
fail:
	cJSON_Delete(root);
	return NULL;
}

VMIG_API int64_t vmig_report_json(vmig_session *s, char *buf, size_t len)
{
	cJSON *root;
	char *text;
	size_t n;

	if (!s || (len && !buf))
		return -EINVAL;
	root = report_build(s);
	if (!root)
		return -ENOMEM;
	text = cJSON_Print(root);
	cJSON_Delete(root);
	if (!text)
		return -ENOMEM;
	n = strlen(text);
	if (len) {
		size_t copy = n < len - 1 ? n : len - 1;

		memcpy(buf, text, copy);
		buf[copy] = '\0';
	}
	cJSON_free(text);
	return (int64_t)n;
}
