/*
 * config.c: the JSON configuration of a migration (docs/config.md): the
 * document (role, transport, plugins, policies, run, memory, devices, DMA
 * mappings) parsed into struct vmig_config (config.h) and validated as
 * far as it can be without a kernel, reading it from a file, and freeing
 * it. The text is checked by the scanner (json.c) before cJSON parses
 * it; values are read by the getters of config_read.c, whose messages
 * name the JSON path of the offending value and what was expected; the
 * "kernel" object is config_sim.c's.
 */
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <limits.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cjson/cJSON.h>

#include "config.h"
#include "config_read.h"
#include "json.h"

/* A configuration is a few kilobytes; refuse to read a disk image. */
#define CONFIG_MAX_FILE (16u << 20)

/* ------------------------------------------------------------------ */
/* Device names and address-space labels                               */

/* Finds a device by name in the sorted index; SIZE_MAX if none. */
size_t cfg_device_find(const struct ctx *c, const char *name)
{
	size_t lo = 0, hi = c->nr_names, mid;
	int r;

	while (lo < hi) {
		mid = lo + (hi - lo) / 2;
		r = strcmp(c->names[mid].str, name);
		if (!r)
			return c->names[mid].idx;
		if (r < 0)
			lo = mid + 1;
		else
			hi = mid;
	}
	return SIZE_MAX;
}

#define LABEL_CONTAINER 1u
#define LABEL_IOAS 2u

/* Indexes the container and IOAS labels the devices use, once each. */
static int index_labels(struct ctx *c, const struct vmig_config *cfg)
{
	const struct vmig_cfg_device *d;
	size_t n = 0, i, j, k = 0;
	struct key_ent *l;

	for (i = 0; i < cfg->nr_devices; i++)
		n += 1 + cfg->devices[i].nr_pasids;
	if (!n)
		return 0;
	l = c->labels = cfg_zalloc(n, sizeof(*l));
	if (!l)
		return cfg_nomem(c);
	for (i = 0; i < cfg->nr_devices; i++) {
		d = &cfg->devices[i];
		if (d->iommu == VMIG_CFG_IOMMU_TYPE1) {
			l[k].str = d->container;
			l[k++].num = LABEL_CONTAINER;
			continue;
		}
		l[k].str = d->ioas;
		l[k++].num = LABEL_IOAS;
		for (j = 0; j < d->nr_pasids; j++) {
			l[k].str = d->pasids[j].ioas;
			l[k++].num = LABEL_IOAS;
		}
	}
	qsort(l, k, sizeof(*l), cfg_key_cmp);
	for (i = 0, n = k, k = 0; i < n; i++)
		if (!k || !cfg_same_key(&l[k - 1], &l[i]))
			l[k++] = l[i];
	c->nr_labels = k;
	return 0;
}

/* The LABEL_* kinds of the address spaces called label. */
static unsigned int label_kinds(const struct ctx *c, const char *label)
{
	size_t lo = 0, hi = c->nr_labels, mid;
	unsigned int kinds = 0;

	while (lo < hi) {
		mid = lo + (hi - lo) / 2;
		if (strcmp(c->labels[mid].str, label) < 0)
			lo = mid + 1;
		else
			hi = mid;
	}
	for (; lo < c->nr_labels && !strcmp(c->labels[lo].str, label); lo++)
		kinds |= (unsigned int)c->labels[lo].num;
	return kinds;
}


/* ------------------------------------------------------------------ */
/* Top-level scalars, plugins, preference, policies, run               */

static bool plugin_name_ok(const char *s)
{
	if (!*s)
		return false;
	for (; *s; s++)
		if (!((*s >= 'a' && *s <= 'z') ||
		      json_is_digit((unsigned char)*s) || *s == '.' ||
		      *s == '_' || *s == '-'))
			return false;
	return true;
}

static int parse_transport(struct ctx *c, const cJSON *root,
			   struct vmig_config *cfg)
{
	const cJSON *v = cfg_item(root, "transport");
	const char *t, *host, *colon, *port, *q;
	char hp[320];
	size_t hlen, skip = 4;
	long n = 0;

	if (!v)
		return 0;
	if (!cJSON_IsString(v))
		goto bad;
	t = v->valuestring;
	if (!strncmp(t, "unix:", 5) && t[5])
		goto ok;
	/*
	 * TLS: "tls:host:port?options", "tls-psk:host:port?options"; the
	 * options (files) are read when connecting or listening.
	 */
	if (!strncmp(t, "tls-psk:", 8))
		skip = 8;
	else if (strncmp(t, "tcp:", 4) && strncmp(t, "tls:", 4))
		goto bad;
	q = strchr(t + skip, '?');
	if (!strncmp(t, "tcp:", 4))
		q = NULL;
	hlen = q ? (size_t)(q - t - skip) : strlen(t + skip);
	if (hlen >= sizeof(hp))
		goto bad;
	memcpy(hp, t + skip, hlen);
	hp[hlen] = '\0';
	host = hp;
	colon = strrchr(host, ':');
	if (!colon || colon == host)
		goto bad;
	hlen = (size_t)(colon - host);
	if (host[0] == '[') {
		/* An IPv6 address: "tcp:[::1]:4444". */
		if (hlen < 3 || host[hlen - 1] != ']' ||
		    memchr(host + 1, '[', hlen - 1) ||
		    memchr(host + 1, ']', hlen - 2))
			goto bad;
	} else if (memchr(host, ':', hlen) || memchr(host, '[', hlen) ||
		   memchr(host, ']', hlen)) {
		goto bad;
	}
	port = colon + 1;
	if (!*port || strlen(port) > 5)
		goto bad_port;
	for (; *port; port++) {
		if (!json_is_digit((unsigned char)*port))
			goto bad_port;
		n = n * 10 + (*port - '0');
	}
	/* A destination may ask for any free port (0). */
	if (n < (cfg->role == VMIG_ROLE_DESTINATION ? 0 : 1) || n > 65535)
		goto bad_port;
ok:
	cfg->transport = cfg_sdup(t);
	return cfg->transport ? 0 : cfg_nomem(c);
bad_port:
	if (cfg->role == VMIG_ROLE_DESTINATION)
		return cfg_fail_key(c, "transport",
				    "expected a port from 0 (any "
				    "free port) to 65535 after the last ':'");
	return cfg_fail_key(c, "transport", "expected a port from 1 to 65535 "
			    "after the last ':'");
bad:
	return cfg_fail_key(c, "transport", "expected \"unix:<path>\", "
			    "\"tcp:<host>:<port>\", "
			    "\"tls:<host>:<port>?<options>\" or "
			    "\"tls-psk:<host>:<port>?<options>\"");
}

/*
 * Reads an array of strings into a vector. With names_only, each must be
 * a plugin name; otherwise a string with a '/' is a path, resolved.
 */
enum strv_kind { STRV_DIRS, STRV_PLUGINS, STRV_NAMES };

static int parse_strv(struct ctx *c, const cJSON *arr, enum strv_kind kind,
		      char ***out, size_t *nr)
{
	const cJSON *e;
	size_t i = 0, n;
	struct json_qstr q;
	int rc;

	if (!cJSON_IsArray(arr))
		return cfg_fail(c, "expected an array");
	n = cfg_count(arr);
	if (!n)
		return 0;
	*out = cfg_zalloc(n, sizeof(**out));
	if (!*out)
		return cfg_nomem(c);
	*nr = n;
	cJSON_ArrayForEach(e, arr) {
		size_t m = cfg_push_index(c, i);
		const char *s;

		if (!cJSON_IsString(e) || !e->valuestring[0])
			return cfg_fail(c, "expected a non-empty string");
		s = e->valuestring;
		if (kind == STRV_NAMES && !plugin_name_ok(s))
			return cfg_fail(
				c, "%s is not a plugin name ([a-z0-9._-]+)",
				json_quote(&q, s));
		if (kind == STRV_PLUGINS && !strchr(s, '/') &&
		    !plugin_name_ok(s))
			return cfg_fail(
				c,
				"%s is neither a plugin name "
				"([a-z0-9._-]+) nor a path (with a '/')",
				json_quote(&q, s));
		if (kind == STRV_DIRS || (kind == STRV_PLUGINS &&
					  strchr(s, '/'))) {
			rc = cfg_resolve(c, s, &(*out)[i]);
			if (rc)
				return rc;
		} else {
			(*out)[i] = cfg_sdup(s);
			if (!(*out)[i])
				return cfg_nomem(c);
		}
		cfg_pop(c, m);
		i++;
	}
	return 0;
}

static const char *const plugins_keys[] = { "paths", "load", NULL };

static int parse_plugins(struct ctx *c, const cJSON *root,
			 struct vmig_config *cfg)
{
	const cJSON *obj = cfg_item(root, "plugins"), *v;
	size_t m, m2;
	int rc;

	if (!obj)
		return 0;
	m = cfg_push_key(c, "plugins");
	rc = cfg_check_object(c, obj, plugins_keys);
	if (rc)
		return rc;
	v = cfg_item(obj, "paths");
	if (v) {
		m2 = cfg_push_key(c, "paths");
		rc = parse_strv(c, v, STRV_DIRS, &cfg->plugin_paths,
				&cfg->nr_plugin_paths);
		if (rc)
			return rc;
		cfg_pop(c, m2);
	}
	v = cfg_item(obj, "load");
	if (v) {
		m2 = cfg_push_key(c, "load");
		rc = parse_strv(c, v, STRV_PLUGINS, &cfg->plugins,
				&cfg->nr_plugins);
		if (rc)
			return rc;
		cfg->plugins_given = true;
		cfg_pop(c, m2);
	}
	cfg_pop(c, m);
	return 0;
}

static int parse_preference(struct ctx *c, const cJSON *root,
			    struct vmig_config *cfg)
{
	const cJSON *v = cfg_item(root, "preference");
	struct key_ent *keys;
	size_t m, i, first, dup;
	struct json_qstr q;
	int rc;

	if (!v)
		return 0;
	m = cfg_push_key(c, "preference");
	rc = parse_strv(c, v, STRV_NAMES, &cfg->preference,
			&cfg->nr_preference);
	if (rc || cfg->nr_preference < 2)
		return rc;
	keys = cfg_zalloc(cfg->nr_preference, sizeof(*keys));
	if (!keys)
		return cfg_nomem(c);
	for (i = 0; i < cfg->nr_preference; i++) {
		keys[i].str = cfg->preference[i];
		keys[i].idx = i;
	}
	if (cfg_find_dup(keys, cfg->nr_preference, &first, &dup)) {
		cfg_xfree(keys);
		cfg_push_index(c, dup);
		return cfg_fail(c, "%s is already listed at preference[%zu]",
				json_quote(&q, cfg->preference[dup]), first);
	}
	cfg_xfree(keys);
	cfg_pop(c, m);
	return 0;
}

static const char *const policies_keys[] = {
	"hotplug", "downtime_limit_ms", "bandwidth_limit", "max_iterations",
	"timeout_ms", "timeout_strategy", "tracking", "switchover_timeout_ms",
	"handshake_timeout_ms", "idle_timeout_ms", "verify", "connections",
	NULL,
};
static const char *const hotplug_names[] = {
	"track", "degrade", "reject", NULL,
};
static const char *const timeout_names[] = { "cancel", "force", NULL };
static const char *const tracking_names[] = {
	"mixed", "all-or-nothing", NULL,
};
/* In the order of enum vmig_verify_policy, from VMIG_VERIFY_AUDIT. */
static const char *const verify_names[] = {
	"audit", "strict", "off", NULL,
};

static int parse_policies(struct ctx *c, const cJSON *root,
			  struct vmig_config *cfg)
{
	struct vmig_cfg_policies *p = &cfg->policies;
	const cJSON *obj = cfg_item(root, "policies");
	int hotplug = VMIG_HOTPLUG_POLICY_TRACK,
	    strategy = VMIG_TIMEOUT_STRATEGY_CANCEL;
	int tracking = VMIG_TRACKING_POLICY_MIXED;
	int verify = 0; /* audit */
	int64_t downtime = 300, iters = 30, timeout = 0;
	int64_t switchover = VMIG_DEFAULT_SWITCHOVER_TIMEOUT_MS;
	int64_t handshake = VMIG_DEFAULT_HANDSHAKE_TIMEOUT_MS;
	int64_t idle = VMIG_DEFAULT_IDLE_TIMEOUT_MS;
	int64_t conns = 1;
	size_t m;
	int rc;

	p->bandwidth_limit = 0;
	if (obj) {
		m = cfg_push_key(c, "policies");
		rc = cfg_check_object(c, obj, policies_keys);
		rc = rc ? rc : cfg_get_enum(c, obj, "hotplug", hotplug_names,
					    &hotplug);
		rc = rc ? rc : cfg_get_int(c, obj, "downtime_limit_ms", 1,
					   EXACT_MAX, "a positive integer "
					   "(milliseconds, below 2^53)",
					   &downtime);
		rc = rc ? rc
			: cfg_get_u64(c, obj, "bandwidth_limit", U_BANDWIDTH,
				      &p->bandwidth_limit);
		rc = rc ? rc : cfg_get_int(c, obj, "max_iterations", 1, 100000,
					   NULL, &iters);
		rc = rc ? rc
			: cfg_get_int(c, obj, "timeout_ms", 0, EXACT_MAX,
				      "a non-negative integer (milliseconds, "
				      "below 2^53)",
				      &timeout);
		rc = rc ? rc : cfg_get_enum(c, obj, "timeout_strategy",
					    timeout_names, &strategy);
		rc = rc ? rc : cfg_get_enum(c, obj, "tracking", tracking_names,
					    &tracking);
		rc = rc ? rc : cfg_get_int(c, obj, "switchover_timeout_ms", 1,
					   EXACT_MAX, "a positive integer "
					   "(milliseconds, below 2^53)",
					   &switchover);
		rc = rc ? rc : cfg_get_int(c, obj, "handshake_timeout_ms", 1,
					   EXACT_MAX, "a positive integer "
					   "(milliseconds, below 2^53)",
					   &handshake);
		rc = rc ? rc : cfg_get_int(c, obj, "idle_timeout_ms", 1,
					   EXACT_MAX, "a positive integer "
					   "(milliseconds, below 2^53)",
					   &idle);
		rc = rc ? rc : cfg_get_enum(c, obj, "verify", verify_names,
					    &verify);
		rc = rc ? rc : cfg_get_int(c, obj, "connections", 1,
					   VMIG_CONNECTIONS_MAX,
					   NULL, &conns);
		if (rc)
			return rc;
		cfg_pop(c, m);
	}
	p->verify = (enum vmig_verify_policy)(VMIG_VERIFY_AUDIT + verify);
	p->hotplug = (enum vmig_hotplug_policy)hotplug;
	p->downtime_limit_ms = (uint64_t)downtime;
	p->max_iterations = (uint32_t)iters;
	p->timeout_ms = (uint64_t)timeout;
	p->switchover_timeout_ms = (uint64_t)switchover;
	p->handshake_timeout_ms = (uint64_t)handshake;
	p->idle_timeout_ms = (uint64_t)idle;
	p->connections = (uint32_t)conns;
	p->timeout_strategy = (enum vmig_timeout_strategy)strategy;
	p->tracking = (enum vmig_tracking_policy)tracking;
	return 0;
}

static const char *const run_keys[] = { "mode", "iterations", NULL };
static const char *const run_modes[] = { "migrate", "track", NULL };

static int parse_run(struct ctx *c, const cJSON *root,
		     struct vmig_config *cfg)
{
	const cJSON *obj = cfg_item(root, "run");
	int64_t iters = 5;
	int mode = 0;
	size_t m;
	int rc;

	if (obj) {
		m = cfg_push_key(c, "run");
		rc = cfg_check_object(c, obj, run_keys);
		rc = rc ? rc : cfg_get_enum(c, obj, "mode", run_modes, &mode);
		rc = rc ? rc
			: cfg_get_int(c, obj, "iterations", 1, 100000, NULL,
				      &iters);
		if (rc)
			return rc;
		cfg_pop(c, m);
	}
	cfg->run.track_only = mode == 1;
	cfg->run.iterations = (uint32_t)iters;
	return 0;
}

/* ------------------------------------------------------------------ */
/* Memory                                                              */

static const char *const region_keys[] = { "name", "gpa", "size", "fill",
					    "fill_size", "backing", NULL };
static const char *const fill_names[] = { "zero", "random", NULL };
/* In the order of enum vmig_cfg_backing. */
static const char *const backing_names[] = {
	"anonymous", "memfd", "hugetlbfs", NULL,
};

static int parse_region(struct ctx *c, const cJSON *obj, size_t idx,
			struct vmig_cfg_region *r)
{
	int fill = VMIG_CFG_FILL_ZERO, backing = VMIG_CFG_BACKING_ANONYMOUS;
	uint64_t last;
	char name[32];
	int rc;

	rc = cfg_check_object(c, obj, region_keys);
	if (rc)
		return rc;
	if (!cfg_item(obj, "gpa"))
		return cfg_missing(c, "gpa");
	if (!cfg_item(obj, "size"))
		return cfg_missing(c, "size");
	rc = cfg_get_string(c, obj, "name", &r->name);
	rc = rc ? rc : cfg_get_aligned(c, obj, "gpa", U_ADDRESS, &r->gpa);
	rc = rc ? rc : cfg_get_aligned(c, obj, "size", U_SIZE, &r->size);
	rc = rc ? rc : cfg_range_last(c, r->gpa, r->size, &last);
	rc = rc ? rc : cfg_get_enum(c, obj, "fill", fill_names, &fill);
	rc = rc ? rc : cfg_get_enum(c, obj, "backing", backing_names,
				    &backing);
	if (!rc && cfg_item(obj, "fill_size"))
		rc = cfg_get_aligned(c, obj, "fill_size", U_SIZE,
				     &r->fill_size);
	if (rc)
		return rc;
	if (r->fill_size > r->size)
		return cfg_fail_key(c, "fill_size", "0x%llx is more than the "
				    "region's size 0x%llx",
				    (unsigned long long)r->fill_size,
				    (unsigned long long)r->size);
	if (backing == VMIG_CFG_BACKING_HUGETLBFS && r->size % (2u << 20))
		return cfg_fail_key(c, "size", "0x%llx is not a multiple of "
				    "2 MiB, as \"backing\": \"hugetlbfs\" "
				    "needs",
				    (unsigned long long)r->size);
	r->fill = (enum vmig_cfg_fill)fill;
	r->backing = (enum vmig_cfg_backing)backing;
	if (!r->name) {
		snprintf(name, sizeof(name), "ram%zu", idx);
		r->name = cfg_sdup(name);
		if (!r->name)
			return cfg_nomem(c);
	}
	return 0;
}

static int check_regions(struct ctx *c, const struct vmig_config *cfg)
{
	size_t n = cfg->nr_regions, i, first, dup;
	struct span *spans, a, b;
	struct key_ent *keys;
	struct json_qstr q;
	bool found;

	keys = cfg_zalloc(n, sizeof(*keys));
	if (!keys)
		return cfg_nomem(c);
	for (i = 0; i < n; i++) {
		keys[i].str = cfg->regions[i].name;
		keys[i].idx = i;
	}
	found = cfg_find_dup(keys, n, &first, &dup);
	cfg_xfree(keys);
	if (found) {
		cfg_push_index(c, dup);
		return cfg_fail_key(
			c, "name", "%s is already used by memory[%zu]",
			json_quote(&q, cfg->regions[dup].name), first);
	}
	spans = c->regions = cfg_zalloc(n, sizeof(*spans));
	if (!spans)
		return cfg_nomem(c);
	c->nr_regions = n;
	for (i = 0; i < n; i++) {
		spans[i].first = cfg->regions[i].gpa;
		spans[i].last = cfg->regions[i].gpa + cfg->regions[i].size - 1;
		spans[i].idx = i;
	}
	if (cfg_find_overlap(spans, n, &a, &b)) {
		cfg_push_index(c, b.idx);
		return cfg_fail(c, "0x%" PRIx64 "-0x%" PRIx64 " overlaps "
				"memory[%zu] 0x%" PRIx64 "-0x%" PRIx64, b.first,
				b.last, a.idx, a.first, a.last);
	}
	return 0;
}

static int parse_memory(struct ctx *c, const cJSON *root,
			struct vmig_config *cfg)
{
	const cJSON *arr = cfg_item(root, "memory"), *e;
	size_t m, i = 0, n;
	int rc, bad = 0;

	if (!arr)
		return cfg_missing(c, "memory");
	m = cfg_push_key(c, "memory");
	if (!cJSON_IsArray(arr))
		return cfg_fail(c, "expected an array");
	n = cfg_count(arr);
	if (!n)
		return cfg_fail(c, "expected at least one region");
	cfg->regions = cfg_zalloc(n, sizeof(*cfg->regions));
	if (!cfg->regions)
		return cfg_nomem(c);
	cfg->nr_regions = n;
	cJSON_ArrayForEach(e, arr) {
		size_t mi = cfg_push_index(c, i);

		rc = parse_region(c, e, i, &cfg->regions[i]);
		cfg_pop(c, mi);
		if (rc == -ENOMEM)
			return rc;
		bad = bad ? bad : rc;
		i++;
	}
	if (bad)
		return bad;
	rc = check_regions(c, cfg);
	if (rc)
		return rc;
	cfg_pop(c, m);
	return 0;
}

/* ------------------------------------------------------------------ */
/* Devices                                                             */

static const char *const device_keys[] = {
	"name", "kind", "address", "iommu", "group", "container", "cdev",
	"ioas", "pasids", NULL,
};
static const char *const kind_names[] = { "vfio-pci", "mdev", NULL };
static const char *const iommu_names[] = { "type1", "iommufd", NULL };
static const char *const type1_only[] = { "group", "container", NULL };
static const char *const iommufd_only[] = { "cdev", "ioas", "pasids", NULL };
static const char *const pasid_keys[] = { "pasid", "ioas", NULL };

static int parse_pasids(struct ctx *c, const cJSON *arr,
			struct vmig_cfg_device *d)
{
	size_t i = 0, n, m, base, first, dup;
	struct key_ent *keys;
	const cJSON *e;
	int64_t pasid = 0;
	bool found;
	int rc;

	m = cfg_push_key(c, "pasids");
	base = c->plen;
	if (!cJSON_IsArray(arr))
		return cfg_fail(c, "expected an array");
	n = cfg_count(arr);
	if (!n) {
		cfg_pop(c, m);
		return 0;
	}
	d->pasids = cfg_zalloc(n, sizeof(*d->pasids));
	if (!d->pasids)
		return cfg_nomem(c);
	d->nr_pasids = n;
	cJSON_ArrayForEach(e, arr) {
		size_t mi = cfg_push_index(c, i);

		rc = cfg_check_object(c, e, pasid_keys);
		if (rc)
			return rc;
		if (!cfg_item(e, "pasid"))
			return cfg_missing(c, "pasid");
		if (!cfg_item(e, "ioas"))
			return cfg_missing(c, "ioas");
		rc = cfg_get_int(c, e, "pasid", 1, 0xfffff,
				 "an integer from 1 to 1048575 (0xfffff)",
				 &pasid);
		rc = rc ? rc : cfg_get_string(c, e, "ioas", &d->pasids[i].ioas);
		if (rc)
			return rc;
		d->pasids[i].pasid = (uint32_t)pasid;
		cfg_pop(c, mi);
		i++;
	}
	keys = cfg_zalloc(n, sizeof(*keys));
	if (!keys)
		return cfg_nomem(c);
	for (i = 0; i < n; i++) {
		keys[i].num = d->pasids[i].pasid;
		keys[i].idx = i;
	}
	found = cfg_find_dup(keys, n, &first, &dup);
	cfg_xfree(keys);
	if (found) {
		cfg_push_index(c, dup);
		return cfg_fail_key(
			c, "pasid", "%u is already used by %.*s[%zu]",
			d->pasids[dup].pasid, (int)base, c->path, first);
	}
	cfg_pop(c, m);
	return 0;
}

static int parse_device(struct ctx *c, const cJSON *obj,
			struct vmig_cfg_device *d)
{
	const char *const *foreign;
	int kind = 0, iommu = 0, rc;
	int64_t group = -1;
	const cJSON *v;

	rc = cfg_check_object(c, obj, device_keys);
	if (rc)
		return rc;
	if (!cfg_item(obj, "name"))
		return cfg_missing(c, "name");
	if (!cfg_item(obj, "kind"))
		return cfg_missing(c, "kind");
	rc = cfg_get_string(c, obj, "name", &d->name);
	rc = rc ? rc : cfg_get_enum(c, obj, "kind", kind_names, &kind);
	rc = rc ? rc : cfg_get_string(c, obj, "address", &d->address);
	rc = rc ? rc : cfg_get_enum(c, obj, "iommu", iommu_names, &iommu);
	if (rc)
		return rc;
	d->kind = kind ? VMIG_DEVICE_MDEV : VMIG_DEVICE_VFIO_PCI;
	d->iommu = iommu ? VMIG_CFG_IOMMU_IOMMUFD : VMIG_CFG_IOMMU_TYPE1;
	if (!d->address) {
		d->address = cfg_sdup(d->name);
		if (!d->address)
			return cfg_nomem(c);
	}
	foreign = iommu ? type1_only : iommufd_only;
	for (; *foreign; foreign++)
		if (cfg_item(obj, *foreign))
			return cfg_fail_key(c, *foreign, "only valid with "
					    "\"iommu\": \"%s\"",
					    iommu ? "type1" : "iommufd");
	if (!iommu) {
		if (!cfg_item(obj, "group"))
			return cfg_fail(c,
					"missing key \"group\" (required for a "
					"type1 device)");
		rc = cfg_get_int(c, obj, "group", 0, INT_MAX, NULL, &group);
		rc = rc ? rc
			: cfg_get_string(c, obj, "container", &d->container);
		if (rc)
			return rc;
		d->group = (int)group;
		d->container =
			d->container ? d->container : cfg_sdup("default");
		return d->container ? 0 : cfg_nomem(c);
	}
	d->group = -1;
	if (!cfg_item(obj, "cdev"))
		return cfg_fail(c,
				"missing key \"cdev\" (required for an iommufd "
				"device)");
	rc = cfg_get_string(c, obj, "cdev", &d->cdev);
	rc = rc ? rc : cfg_get_string(c, obj, "ioas", &d->ioas);
	if (rc)
		return rc;
	d->ioas = d->ioas ? d->ioas : cfg_sdup("default");
	if (!d->ioas)
		return cfg_nomem(c);
	v = cfg_item(obj, "pasids");
	return v ? parse_pasids(c, v, d) : 0;
}

/* Two devices of one VFIO group can only be in one container. */
static int check_groups(struct ctx *c, const struct vmig_config *cfg)
{
	size_t n = cfg->nr_devices, i, j, k = 0, bad = SIZE_MAX, other = 0;
	struct key_ent *keys;
	struct json_qstr q;

	keys = cfg_zalloc(n, sizeof(*keys));
	if (!keys)
		return cfg_nomem(c);
	for (i = 0; i < n; i++) {
		if (cfg->devices[i].iommu != VMIG_CFG_IOMMU_TYPE1)
			continue;
		keys[k].num = (uint64_t)cfg->devices[i].group;
		keys[k].idx = i;
		k++;
	}
	qsort(keys, k, sizeof(*keys), cfg_key_cmp);
	for (i = 0; i < k; i = j) {
		const char *head = cfg->devices[keys[i].idx].container;

		for (j = i + 1; j < k && keys[j].num == keys[i].num; j++) {
			size_t d = keys[j].idx;

			if (strcmp(cfg->devices[d].container, head) &&
			    d < bad) {
				bad = d;
				other = keys[i].idx;
			}
		}
	}
	cfg_xfree(keys);
	if (bad == SIZE_MAX)
		return 0;
	cfg_push_index(c, bad);
	return cfg_fail_key(c, "container",
			    "devices[%zu] is in the same group %d "
			    "but in container %s",
			    other, cfg->devices[bad].group,
			    json_quote(&q, cfg->devices[other].container));
}

static int parse_devices(struct ctx *c, const cJSON *root,
			 struct vmig_config *cfg)
{
	const cJSON *arr = cfg_item(root, "devices"), *e;
	size_t m, i = 0, n, first, dup;
	struct key_ent *keys;
	struct json_qstr q;
	int rc, bad = 0;

	if (!arr)
		return 0;
	m = cfg_push_key(c, "devices");
	if (!cJSON_IsArray(arr))
		return cfg_fail(c, "expected an array");
	n = cfg_count(arr);
	if (!n) {
		cfg_pop(c, m);
		return 0;
	}
	cfg->devices = cfg_zalloc(n, sizeof(*cfg->devices));
	if (!cfg->devices)
		return cfg_nomem(c);
	cfg->nr_devices = n;
	cJSON_ArrayForEach(e, arr) {
		size_t mi = cfg_push_index(c, i);

		rc = parse_device(c, e, &cfg->devices[i]);
		cfg_pop(c, mi);
		if (rc == -ENOMEM)
			return rc;
		bad = bad ? bad : rc;
		i++;
	}
	if (bad)
		return bad;
	keys = c->names = cfg_zalloc(n, sizeof(*keys));
	if (!keys)
		return cfg_nomem(c);
	c->nr_names = n;
	for (i = 0; i < n; i++) {
		keys[i].str = cfg->devices[i].name;
		keys[i].idx = i;
	}
	if (cfg_find_dup(keys, n, &first, &dup)) {
		cfg_push_index(c, dup);
		return cfg_fail_key(
			c, "name", "%s is already used by devices[%zu]",
			json_quote(&q, cfg->devices[dup].name), first);
	}
	rc = check_groups(c, cfg);
	if (rc)
		return rc;
	cfg_pop(c, m);
	return 0;
}

/* ------------------------------------------------------------------ */
/* DMA mappings                                                        */

static const char *const mapping_keys[] = {
	"space", "iova", "gpa", "size", "write", NULL,
};

static int parse_mapping(struct ctx *c, const cJSON *obj,
			 struct vmig_cfg_mapping *map)
{
	static const char *const required[] = { "space", "iova", "gpa",
						"size", NULL };
	const char *const *k;
	uint64_t iova_last, gpa_last = 0;
	unsigned int kinds;
	struct json_qstr q;
	size_t r;
	int rc;

	rc = cfg_check_object(c, obj, mapping_keys);
	if (rc)
		return rc;
	for (k = required; *k; k++)
		if (!cfg_item(obj, *k))
			return cfg_missing(c, *k);
	map->write = true;
	rc = cfg_get_string(c, obj, "space", &map->space);
	rc = rc ? rc : cfg_get_aligned(c, obj, "iova", U_ADDRESS, &map->iova);
	rc = rc ? rc : cfg_get_aligned(c, obj, "gpa", U_ADDRESS, &map->gpa);
	rc = rc ? rc : cfg_get_aligned(c, obj, "size", U_SIZE, &map->size);
	rc = rc ? rc : cfg_get_bool(c, obj, "write", &map->write);
	if (rc)
		return rc;
	kinds = label_kinds(c, map->space);
	if (!kinds)
		return cfg_fail_key(c, "space",
				    "no device uses a container or an "
				    "IOAS named %s",
				    json_quote(&q, map->space));
	if (kinds == (LABEL_CONTAINER | LABEL_IOAS))
		return cfg_fail_key(c, "space",
				    "%s names both a type1 container "
				    "and an iommufd IOAS",
				    json_quote(&q, map->space));
	rc = cfg_range_last(c, map->iova, map->size, &iova_last);
	rc = rc ? rc : cfg_range_last(c, map->gpa, map->size, &gpa_last);
	if (rc)
		return rc;
	/* Regions do not overlap: only the one holding gpa can hold all. */
	r = cfg_span_find(c->regions, c->nr_regions, NULL, map->gpa);
	if (r == SIZE_MAX || gpa_last > c->regions[r].last)
		return cfg_fail(c,
				"gpa 0x%" PRIx64 "-0x%" PRIx64 " is not inside "
				"one memory region",
				map->gpa, gpa_last);
	return 0;
}

static int parse_mappings(struct ctx *c, const cJSON *root,
			  struct vmig_config *cfg)
{
	const cJSON *v = cfg_item(root, "dma_mappings"), *e;
	size_t m, i = 0, n;
	struct span *spans, a, b;
	struct json_qstr q;
	int rc, bad = 0;

	if (!v)
		return 0;
	m = cfg_push_key(c, "dma_mappings");
	if (cJSON_IsString(v) && !strcmp(v->valuestring, "identity")) {
		cfg_pop(c, m);
		return 0;
	}
	if (!cJSON_IsArray(v))
		return cfg_fail(c, "expected \"identity\" or an array");
	cfg->mappings_given = true;
	n = cfg_count(v);
	if (!n) {
		cfg_pop(c, m);
		return 0;
	}
	cfg->mappings = cfg_zalloc(n, sizeof(*cfg->mappings));
	if (!cfg->mappings)
		return cfg_nomem(c);
	cfg->nr_mappings = n;
	rc = index_labels(c, cfg);
	if (rc)
		return rc;
	cJSON_ArrayForEach(e, v) {
		size_t mi = cfg_push_index(c, i);

		rc = parse_mapping(c, e, &cfg->mappings[i]);
		cfg_pop(c, mi);
		if (rc == -ENOMEM)
			return rc;
		bad = bad ? bad : rc;
		i++;
	}
	if (bad)
		return bad;
	spans = c->maps = cfg_zalloc(n, sizeof(*spans));
	if (!spans)
		return cfg_nomem(c);
	c->nr_maps = n;
	for (i = 0; i < n; i++) {
		spans[i].space = cfg->mappings[i].space;
		spans[i].first = cfg->mappings[i].iova;
		spans[i].last = cfg->mappings[i].iova +
				(cfg->mappings[i].size - 1);
		spans[i].idx = i;
	}
	if (cfg_find_overlap(spans, n, &a, &b)) {
		cfg_push_index(c, b.idx);
		return cfg_fail(c, "iova 0x%" PRIx64 "-0x%" PRIx64 " overlaps "
				"dma_mappings[%zu] 0x%" PRIx64 "-0x%" PRIx64
				" in space %s", b.first, b.last, a.idx, a.first,
				a.last, json_quote(&q, b.space));
	}
	cfg_pop(c, m);
	return 0;
}


/* ------------------------------------------------------------------ */
/* The document                                                        */

static const char *const root_keys[] = {
	"role", "transport", "plugins", "preference", "policies", "memory",
	"devices", "dma_mappings", "report", "run", "kernel", NULL,
};
static const char *const role_names[] = { "source", "destination", "local",
					   NULL };

/*
 * One section of the document: its error is kept and the parse goes on
 * with the next (out of memory stops it), so that one run names every
 * error it can find. Returns the section's result.
 */
static int section(struct ctx *c, int *rc, int r)
{
	cfg_pop(c, 0);
	if (r && (!*rc || r == -ENOMEM))
		*rc = r;
	return r;
}

static int parse_report(struct ctx *c, const cJSON *root,
			struct vmig_config *cfg)
{
	const cJSON *v = cfg_item(root, "report");

	if (!v)
		return 0;
	if (!cJSON_IsString(v) || !v->valuestring[0])
		return cfg_fail_key(c, "report", "expected a non-empty string");
	return cfg_resolve(c, v->valuestring, &cfg->report);
}

static int parse_root(struct ctx *c, const cJSON *root,
		      struct vmig_config *cfg)
{
	int role = -1, rc = 0, mem, dev, maps = -1;

	/*
	 * A key the schema does not know, or one given twice, may change
	 * what the rest means (a typo of "role"): nothing more is said.
	 */
	rc = cfg_check_object(c, root, root_keys);
	if (rc)
		return rc;
	if (section(c, &rc, cfg_get_enum(c, root, "role", role_names,
					 &role)) == -ENOMEM)
		return rc;
	/* Without a role: local without a transport, else a source. */
	if (role < 0)
		role = cfg_item(root, "transport") ? 0 : 2;
	cfg->role = role == 1 ? VMIG_ROLE_DESTINATION : VMIG_ROLE_SOURCE;
	cfg->local = role == 2;
	cfg->base_dir = cfg_sdup(c->base_dir && c->base_dir[0] ? c->base_dir
							   : ".");
	if (!cfg->base_dir)
		return cfg_nomem(c);
	if (!section(c, &rc, parse_transport(c, root, cfg))) {
		if (!cfg->local && !cfg->transport)
			section(c, &rc,
				cfg_fail_key(c, "transport",
					     "required for role \"%s\" "
					     "(\"unix:<path>\" or "
					     "\"tcp:<host>:<port>\")",
					     role_names[role]));
		else if (cfg->local && cfg->transport)
			section(c, &rc,
				cfg_fail_key(c, "transport",
					     "not used with role \"local\" "
					     "(both ends run in one process)"));
	}
	section(c, &rc, parse_plugins(c, root, cfg));
	section(c, &rc, parse_preference(c, root, cfg));
	section(c, &rc, parse_policies(c, root, cfg));
	mem = section(c, &rc, parse_memory(c, root, cfg));
	dev = section(c, &rc, parse_devices(c, root, cfg));
	/* The mappings refer to both, the kernel to the devices. */
	if (!mem && !dev)
		maps = section(c, &rc, parse_mappings(c, root, cfg));
	section(c, &rc, parse_report(c, root, cfg));
	section(c, &rc, parse_run(c, root, cfg));
	/* The simulated kernel's devices pin and write what is mapped. */
	if (!maps && rc != -ENOMEM)
		section(c, &rc, cfg_parse_kernel(c, root, cfg));
	return rc;
}

int vmig_config_parse(const char *json, size_t len, const char *base_dir,
		      vmig_config **out, char *err, size_t errlen)
{
	struct ctx c = { .err = err, .errlen = errlen, .base_dir = base_dir };
	const unsigned char *text = (const unsigned char *)json;
	struct vmig_config *cfg;
	cJSON *root;
	int rc;

	if (err && errlen)
		err[0] = '\0';
	if (!out)
		return -EINVAL;
	*out = NULL;
	if (!json)
		len = 0;
	/* A length that counts the terminating NUL (or a padded buffer) is
	 * forgiven; a NUL anywhere else is a syntax error. */
	while (len && text[len - 1] == '\0')
		len--;
	if (len >= 3 && !memcmp(text, "\xef\xbb\xbf", 3)) {
		text += 3;
		len -= 3;
	}
	rc = json_check(text, len, err, errlen);
	if (rc)
		return rc;
	root = cJSON_ParseWithLengthOpts((const char *)text, len, NULL, 0);
	if (!root)
		return cfg_nomem(&c);
	cfg = cfg_zalloc(1, sizeof(*cfg));
	if (!cfg) {
		cJSON_Delete(root);
		return cfg_nomem(&c);
	}
	rc = parse_root(&c, root, cfg);
	cJSON_Delete(root);
	/* Kept whole: a local run builds its destination from it. */
	if (!rc) {
		cfg->text = cfg_zalloc(len + 1, 1);
		if (cfg->text) {
			memcpy(cfg->text, text, len);
			cfg->text_len = len;
		} else {
			rc = cfg_nomem(&c);
		}
	}
	cfg_xfree(c.regions);
	cfg_xfree(c.maps);
	cfg_xfree(c.names);
	cfg_xfree(c.labels);
	if (rc) {
		vmig_config_free(cfg);
		return rc;
	}
	*out = cfg;
	return 0;
}

/* ------------------------------------------------------------------ */
/* Files                                                               */

static int file_error(const char *path, int e, char *err, size_t errlen)
{
	const char *desc = strerrordesc_np(e);

	if (err && errlen)
		snprintf(err, errlen, "%s: %s", path,
			 desc ? desc : "unknown error");
	return -e;
}

/* Each line of msg, "path: " in front, into err. */
static void prefix_lines(char *err, size_t errlen, const char *path,
			 const char *msg)
{
	size_t used = 0;

	err[0] = '\0';
	while (*msg && used + 1 < errlen) {
		size_t n = strcspn(msg, "\n");
		int w = snprintf(err + used, errlen - used, "%s%s: %.*s",
				 used ? "\n" : "", path, (int)n, msg);

		if (w < 0)
			break;
		used += (size_t)w;
		msg += n + (msg[n] == '\n');
	}
}

/* Reads a whole file into a buffer allocated with cJSON_malloc. */
static int read_file(int fd, char **buf, size_t *len)
{
	size_t cap = 4096, n = 0;
	struct stat st;
	char *b, *nb;
	ssize_t r;

	if (!fstat(fd, &st) && S_ISREG(st.st_mode) && st.st_size > 0 &&
	    (uint64_t)st.st_size < CONFIG_MAX_FILE)
		cap = (size_t)st.st_size + 1;
	b = cJSON_malloc(cap);
	if (!b)
		return -ENOMEM;
	for (;;) {
		if (n == cap) {
			if (cap >= CONFIG_MAX_FILE) {
				cJSON_free(b);
				return -EFBIG;
			}
			nb = cJSON_malloc(cap * 2);
			if (!nb) {
				cJSON_free(b);
				return -ENOMEM;
			}
			memcpy(nb, b, n);
			cJSON_free(b);
			b = nb;
			cap *= 2;
		}
		r = read(fd, b + n, cap - n);
		if (r < 0 && errno == EINTR)
			continue;
		if (r < 0) {
			r = -errno;
			cJSON_free(b);
			return (int)r;
		}
		if (r == 0)
			break;
		n += (size_t)r;
	}
	*buf = b;
	*len = n;
	return 0;
}

int vmig_config_load(const char *path, vmig_config **out, char *err,
		     size_t errlen)
{
	char msg[4096], *buf = NULL, *dir;
	const char *slash;
	size_t len = 0, dlen;
	int fd, rc;

	if (err && errlen)
		err[0] = '\0';
	if (out)
		*out = NULL;
	if (!path || !out)
		return -EINVAL;
	fd = open(path, O_RDONLY | O_CLOEXEC);
	if (fd < 0)
		return file_error(path, errno, err, errlen);
	rc = read_file(fd, &buf, &len);
	close(fd);
	if (rc == -ENOMEM) {
		if (err && errlen)
			snprintf(err, errlen, "%s: out of memory", path);
		return rc;
	}
	if (rc == -EFBIG) {
		if (err && errlen)
			snprintf(err, errlen, "%s: larger than %u MiB", path,
				 CONFIG_MAX_FILE >> 20);
		return rc;
	}
	if (rc)
		return file_error(path, -rc, err, errlen);
	/* Relative paths in the file are relative to the file itself. */
	slash = strrchr(path, '/');
	dlen = !slash ? 1 : slash == path ? 1 : (size_t)(slash - path);
	dir = cJSON_malloc(dlen + 1);
	if (!dir) {
		cJSON_free(buf);
		if (err && errlen)
			snprintf(err, errlen, "%s: out of memory", path);
		return -ENOMEM;
	}
	memcpy(dir, slash ? path : ".", dlen);
	dir[dlen] = '\0';
	rc = vmig_config_parse(buf, len, dir, out, msg, sizeof(msg));
	cJSON_free(dir);
	cJSON_free(buf);
	if (rc && err && errlen)
		prefix_lines(err, errlen, path, msg);
	return rc;
}

/* ------------------------------------------------------------------ */
/* Freeing                                                             */

static void free_strv(char **v, size_t n)
{
	size_t i;

	for (i = 0; v && i < n; i++)
		cfg_xfree(v[i]);
	cfg_xfree(v);
}

void vmig_config_free(vmig_config *cfg)
{
	size_t i, j;

	if (!cfg)
		return;
	cfg_xfree(cfg->text);
	cfg_xfree(cfg->transport);
	cfg_xfree(cfg->base_dir);
	free_strv(cfg->plugin_paths, cfg->nr_plugin_paths);
	free_strv(cfg->plugins, cfg->nr_plugins);
	free_strv(cfg->preference, cfg->nr_preference);
	for (i = 0; cfg->regions && i < cfg->nr_regions; i++)
		cfg_xfree(cfg->regions[i].name);
	cfg_xfree(cfg->regions);
	for (i = 0; cfg->devices && i < cfg->nr_devices; i++) {
		struct vmig_cfg_device *d = &cfg->devices[i];

		cfg_xfree(d->name);
		cfg_xfree(d->address);
		cfg_xfree(d->container);
		cfg_xfree(d->cdev);
		cfg_xfree(d->ioas);
		for (j = 0; d->pasids && j < d->nr_pasids; j++)
			cfg_xfree(d->pasids[j].ioas);
		cfg_xfree(d->pasids);
	}
	cfg_xfree(cfg->devices);
	for (i = 0; cfg->mappings && i < cfg->nr_mappings; i++)
		cfg_xfree(cfg->mappings[i].space);
	cfg_xfree(cfg->mappings);
	cfg_xfree(cfg->report);
	for (i = 0; cfg->kernel.devices && i < cfg->kernel.nr_devices; i++)
		cfg_xfree(cfg->kernel.devices[i].name);
	cfg_xfree(cfg->kernel.devices);
	for (i = 0; cfg->kernel.faults && i < cfg->kernel.nr_faults; i++)
		cfg_xfree(cfg->kernel.faults[i].request_name);
	cfg_xfree(cfg->kernel.faults);
	cfg_xfree(cfg);
}
