/*
 * report.c: the session's JSON report.
 *
 * The report describes the last run (figures per iteration and in total,
 * with the simulated kernel's ground truth when there is one), every
 * device (which source tracks it, with what precision, and why every other
 * source was not chosen), every source and guest memory. After a
 * migration it also says how it ended and why, whether the memories
 * matched, what each iteration sent, the downtime and the throughput; a
 * local run nests the destination's own report. Top-level names are kept
 * stable: later versions add keys, they never rename them.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cjson/cJSON.h>

#include "engine.h"

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
	if (s->kernel_name)
		return s->kernel_name;
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
		    !add_u64(o, "pages_missed", it->pages_missed, st->truth))
			goto fail;
		if (!st->migration)
			continue;
		if (!add_str(o, "phase", it->final ? "stop-copy"
						   : "pre-copy") ||
		    !add_u64(o, "pages_dirty", it->pages_dirty, true) ||
		    !add_u64(o, "pages_sent", it->pages_sent, true) ||
		    !add_u64(o, "zero_pages", it->zero_pages, true) ||
		    !add_u64(o, "pages_unread", it->pages_unread, true) ||
		    !add_u64(o, "bytes", it->bytes, true) ||
		    !add_u64(o, "device_bytes", it->device_bytes, true) ||
		    !add_u64(o, "dirty_rate", it->dirty_rate, i > 0))
			goto fail;
	}
	return arr;
fail:
	cJSON_Delete(arr);
	return NULL;
}

static const char *result_name(const struct vmig_mig_stats *st)
{
	if (st->result == 0)
		return "completed";
	if (st->result == VMIG_EAUDIT)
		return "completed, audit failed"; /* the guest migrated */
	if (st->unresolved)
		return "unresolved";
	if (st->result == VMIG_EUNRESOLVED)
		return "resolved"; /* by vmig_resolve(): "guest" says how */
	if (st->cancelled || st->result == -ECANCELED)
		return "cancelled";
	return "failed";
}

static bool add_hex(cJSON *o, const char *key, uint64_t v, bool known)
{
	char buf[24];

	if (!known)
		return cJSON_AddNullToObject(o, key) != NULL;
	snprintf(buf, sizeof(buf), "0x%016llx", (unsigned long long)v);
	return add_str(o, key, buf);
}

static cJSON *report_build(vmig_session *s);

/* Microseconds, as milliseconds with their fraction. */
static bool add_ms(cJSON *o, const char *key, uint64_t us)
{
	return cJSON_AddNumberToObject(o, key, (double)us / 1000) != NULL;
}

/* What a migration adds to the report, at the top level. */
static bool report_migration(vmig_session *s, cJSON *root)
{
	const struct vmig_engine *e = s->engine;
	const struct vmig_mig_stats *st = &e->st;
	bool source = s->role != VMIG_ROLE_DESTINATION;
	/*
	 * The destination: its digest was compared before COMMIT (strict)
	 * or will be after (audit); with verify off none was kept.
	 */
	bool match = source ? st->peer_digest_known && st->digest_known &&
				      st->digest == st->peer_digest
			    : st->committed && st->digest_known;
	const char *guest;
	cJSON *pol, *dst;

	if (source)
		guest = st->committed ? "migrated"
			: st->unresolved ? "paused (unresolved)"
			: !st->guest_stopped || st->guest_resumed ? "running"
								  : "stopped";
	else
		guest = st->guest_started ? "started" : "not started";
	if (!add_str(root, "result", result_name(st)) ||
	    !add_str(root, "error", st->result ? st->error : "") ||
	    !add_str(root, "error_name",
		     st->result ? vmig_strerror(st->result) : "") ||
	    !cJSON_AddBoolToObject(root, "memory_match", match) ||
	    !add_hex(root, "digest", st->digest, st->digest_known) ||
	    !add_hex(root, "peer_digest", st->peer_digest,
		     st->peer_digest_known) ||
	    !add_str(root, "transport", st->transport) ||
	    !cJSON_AddBoolToObject(root, "local", st->local) ||
	    !add_str(root, "guest", guest) ||
	    !cJSON_AddBoolToObject(root, "guest_stopped", st->guest_stopped) ||
	    !cJSON_AddBoolToObject(root, "guest_resumed", st->guest_resumed) ||
	    !cJSON_AddBoolToObject(root, "guest_started", st->guest_started) ||
	    !add_u64(root, "total_bytes", st->total_bytes, true) ||
	    !add_u64(root, "total_pages", st->total_pages, true) ||
	    !add_u64(root, "zero_pages", st->zero_pages, true) ||
	    !add_u64(root, "device_bytes", st->device_bytes, true) ||
	    !add_u64(root, "state_devices", st->nr_state_devices, true) ||
	    !add_u64(root, "vmm_state_bytes", st->vmm_state_bytes, true) ||
	    !add_u64(root, "vmm_state_sections", st->nr_vmm_states, true) ||
	    !add_u64(root, "frames", st->frames, true) ||
	    !cJSON_AddNumberToObject(root, "downtime_ms",
				     (double)st->downtime_us / 1000) ||
	    !cJSON_AddNumberToObject(root, "expected_downtime_ms",
				     (double)st->expected_downtime_us / 1000) ||
	    !add_u64(root, "bandwidth", st->bandwidth, true) ||
	    !cJSON_AddNumberToObject(root, "digest_ms",
				     (double)st->digest_us / 1000) ||
	    (source && (st->committed_us
				? !cJSON_AddNumberToObject(
					  root, "committed_ms",
					  (double)st->committed_us / 1000)
				: !cJSON_AddNullToObject(root,
							 "committed_ms"))) ||
	    (!source && !cJSON_AddNumberToObject(root, "stream_ms",
						 (double)st->stream_us /
							 1000)) ||
	    !add_u64(root, "pages_differing", st->pages_differing,
		     st->differing_known) ||
	    !add_u64(root, "devices_differing", st->devices_differing,
		     st->differing_known))
		return false;
	if (source) {
		cJSON *dt, *unk;
		char names[sizeof(st->unknown_state)], *tok, *save = NULL;

		/*
		 * What kept the guest stopped when the migration did not
		 * commit, and the devices the estimate could not size.
		 */
		if (!add_str(root, "awaited", st->awaited) ||
		    (st->audit ? !add_str(root, "audit",
					   st->audit > 0 ? "match"
							 : "mismatch")
			       : !cJSON_AddNullToObject(root, "audit")))
			return false;
		unk = cJSON_AddArrayToObject(root, "state_size_unknown");
		if (!unk)
			return false;
		snprintf(names, sizeof(names), "%s", st->unknown_state);
		for (tok = strtok_r(names, "\n", &save); tok;
		     tok = strtok_r(NULL, "\n", &save)) {
			cJSON *n = cJSON_CreateString(tok);

			if (!n || !cJSON_AddItemToArray(unk, n)) {
				cJSON_Delete(n);
				return false;
			}
		}
		dt = cJSON_AddObjectToObject(root, "downtime_parts_ms");

		if (!dt || !add_ms(dt, "stop", st->stop_us) ||
		    !add_ms(dt, "final_sync", st->final_sync_us) ||
		    !add_ms(dt, "send", st->final_send_us) ||
		    !add_ms(dt, "ack", st->ack_us) ||
		    !add_ms(dt, "source_digest",
			    st->verify == VMIG_VERIFY_STRICT ? st->digest_us
							     : 0))
			return false;
	}
	pol = cJSON_AddObjectToObject(root, "policies");
	if (!pol ||
	    !add_u64(pol, "downtime_limit_ms", e->pol.downtime_limit_ms,
		     true) ||
	    !add_u64(pol, "bandwidth_limit", e->pol.bandwidth_limit, true) ||
	    !add_u64(pol, "max_iterations", e->pol.max_iterations, true) ||
	    !add_u64(pol, "timeout_ms", e->pol.timeout_ms, true) ||
	    !add_u64(pol, "switchover_timeout_ms",
		     e->pol.switchover_timeout_ms, true) ||
	    !add_u64(pol, "handshake_timeout_ms",
		     e->pol.handshake_timeout_ms, true) ||
	    !add_u64(pol, "idle_timeout_ms", e->pol.idle_timeout_ms, true) ||
	    !add_u64(pol, "connections",
		     e->pol.connections > 1 ? e->pol.connections : 1, true) ||
	    !add_str(pol, "verify",
		     e->pol.verify == VMIG_VERIFY_STRICT ? "strict"
		     : e->pol.verify == VMIG_VERIFY_OFF  ? "off"
							 : "audit") ||
	    !add_str(pol, "timeout_strategy",
		     e->pol.timeout_strategy == VMIG_TIMEOUT_STRATEGY_FORCE
			     ? "force"
			     : "cancel"))
		return false;
	if (e->local_dst && source) {
		dst = report_build(e->local_dst);
		if (!dst || !cJSON_AddItemToObject(root, "destination", dst)) {
			cJSON_Delete(dst);
			return false;
		}
	}
	return true;
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
	/* After a migration: whether its state travelled, and how much. */
	if (s->engine && s->engine->st.valid &&
	    (!cJSON_AddBoolToObject(o, "state_migrated", dev->mig_state) ||
	     !add_u64(o, "state_bytes", dev->state_bytes, dev->mig_state)))
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

/*
 * The built-in fallback, as a source: the devices on it, and what vmig
 * marked dirty itself (their spaces, and what a call or a failure made
 * dirty once).
 */
static bool report_fallback(const vmig_session *s, cJSON *arr)
{
	bool truth = s->stats.truth;
	cJSON *o = cJSON_CreateObject();
	uint64_t n = 0;
	size_t i;

	for (i = 0; i < s->nr_devices; i++)
		n += s->devices[i]->present &&
		     s->devices[i]->source == VMIG_SOURCE_FALLBACK;
	if (!o)
		return false;
	if (!cJSON_AddItemToArray(arr, o)) {
		cJSON_Delete(o);
		return false;
	}
	/* From here o belongs to arr, which the caller deletes on failure. */
	return add_str(o, "name", VMIG_FALLBACK_NAME) &&
	       add_str(o, "plugin", "(built-in)") &&
	       add_u64(o, "devices", n, true) &&
	       add_u64(o, "reads", 0, true) &&
	       add_u64(o, "read_errors", 0, true) &&
	       add_u64(o, "pages_reported", s->vmig_reported, true) &&
	       add_u64(o, "pages_unwritten", s->vmig_unwritten, truth) &&
	       cJSON_AddBoolToObject(o, "vcpu", false) &&
	       cJSON_AddBoolToObject(o, "failed", false) &&
	       add_str(o, "error", "");
}

static cJSON *report_sources(const vmig_session *s)
{
	cJSON *arr = cJSON_CreateArray();
	bool truth = s->stats.truth;
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
		    !add_u64(o, "pages_reported", src->pages_reported, true) ||
		    /* The ground truth has DMA writes only, not the vCPUs'. */
		    !add_u64(o, "pages_unwritten", src->pages_unwritten,
			     truth && !src->gpa) ||
		    !cJSON_AddBoolToObject(o, "vcpu", src->gpa) ||
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
	if (s->sources && !report_fallback(s, arr)) {
		cJSON_Delete(arr);
		return NULL;
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
	bool migration = s->engine && s->engine->st.valid &&
			 !(st->valid && !st->migration);
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
	    !add_str(root, "mode", migration ? "migration" : "tracking") ||
	    !add_str(root, "role",
		     s->role == VMIG_ROLE_DESTINATION ? "destination"
						      : "source") ||
	    !add_str(root, "kernel", kernel_name(s)) ||
	    !cJSON_AddBoolToObject(root, "vcpus_untracked",
				   s->vcpus_untracked) ||
	    !add_u64(root, "page_size", VMIG_PAGE_SIZE, true) ||
	    !add_u64(root, "duration_us",
		     migration ? s->engine->st.duration_us : st->duration_us,
		     migration || st->valid))
		goto fail;
	if (migration && !report_migration(s, root))
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
