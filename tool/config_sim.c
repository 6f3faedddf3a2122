/*
 * config_sim.c: the "kernel" object of a configuration: the real kernel,
 * or the simulated one with its devices (DMA engines, pins, VFIO device
 * features, IOMMUs) and the failures it injects (docs/config.md).
 */
#include <errno.h>
#include <inttypes.h>
#include <limits.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cjson/cJSON.h>

#include "config_read.h"
#include <vmig/linux-uapi.h>
#include "json.h"

/* ------------------------------------------------------------------ */
/* The simulated kernel                                                */

struct name_nr {
	const char *name;
	unsigned long nr;
};

#define NR(x) { #x, x }
#define VK(x) { #x, VK_##x }

/* Every ioctl vmig issues, by the name the kernel headers give it. */
static const struct name_nr requests[] = {
	NR(VFIO_GET_API_VERSION),
	NR(VFIO_CHECK_EXTENSION),
	NR(VFIO_SET_IOMMU),
	NR(VFIO_GROUP_GET_STATUS),
	NR(VFIO_GROUP_SET_CONTAINER),
	NR(VFIO_GROUP_UNSET_CONTAINER),
	NR(VFIO_GROUP_GET_DEVICE_FD),
	NR(VFIO_DEVICE_GET_INFO),
	NR(VFIO_DEVICE_RESET),
	NR(VFIO_DEVICE_FEATURE),
	NR(VFIO_IOMMU_GET_INFO),
	NR(VFIO_IOMMU_MAP_DMA),
	NR(VFIO_IOMMU_UNMAP_DMA),
	NR(VFIO_IOMMU_DIRTY_PAGES),
	VK(VFIO_DEVICE_BIND_IOMMUFD),
	VK(VFIO_DEVICE_ATTACH_IOMMUFD_PT),
	VK(VFIO_DEVICE_DETACH_IOMMUFD_PT),
	VK(VFIO_MIG_GET_PRECOPY_INFO),
	VK(IOMMU_DESTROY),
	VK(IOMMU_IOAS_ALLOC),
	VK(IOMMU_IOAS_ALLOW_IOVAS),
	VK(IOMMU_IOAS_COPY),
	VK(IOMMU_IOAS_IOVA_RANGES),
	VK(IOMMU_IOAS_MAP),
	VK(IOMMU_IOAS_UNMAP),
	VK(IOMMU_OPTION),
	VK(IOMMU_VFIO_IOAS),
	VK(IOMMU_HWPT_ALLOC),
	VK(IOMMU_GET_HW_INFO),
	VK(IOMMU_HWPT_SET_DIRTY_TRACKING),
	VK(IOMMU_HWPT_GET_DIRTY_BITMAP),
	VK(IOMMU_HWPT_INVALIDATE),
	VK(IOMMU_FAULT_QUEUE_ALLOC),
	VK(IOMMU_TEST_CMD),
};

static const struct name_nr errnos[] = {
	NR(EPERM), NR(ENOENT), NR(ESRCH), NR(EINTR), NR(EIO), NR(ENXIO),
	NR(E2BIG), NR(EBADF), NR(EAGAIN), NR(EWOULDBLOCK), NR(ENOMEM),
	NR(EACCES), NR(EFAULT), NR(EBUSY), NR(EEXIST), NR(ENODEV),
	NR(EINVAL), NR(ENFILE), NR(EMFILE), NR(ENOTTY), NR(EFBIG),
	NR(ENOSPC), NR(EPIPE), NR(ERANGE), NR(EDEADLK), NR(ENOSYS),
	NR(EOVERFLOW), NR(EOPNOTSUPP), NR(ENOTSUP), NR(ENOBUFS),
	NR(ENOTCONN), NR(ECONNRESET), NR(ETIMEDOUT), NR(EALREADY),
	NR(EINPROGRESS), NR(ECANCELED), NR(EMSGSIZE), NR(EHWPOISON),
};

#undef NR
#undef VK

static const struct name_nr *find_name(const struct name_nr *t, size_t n,
				       const char *name)
{
	size_t i;

	for (i = 0; i < n; i++)
		if (!strcmp(t[i].name, name))
			return &t[i];
	return NULL;
}

static const char *const fault_keys[] = {
	"request", "errno", "times", "nth", NULL,
};

static int parse_fault(struct ctx *c, const cJSON *obj,
		       struct vmig_cfg_fault *f)
{
	const struct name_nr *nn;
	const cJSON *req, *ev;
	int64_t times = 1, nth = 0, e;
	uint64_t nr = 0;
	char name[24];
	struct json_qstr q;
	int rc;

	rc = cfg_check_object(c, obj, fault_keys);
	if (rc)
		return rc;
	req = cfg_item(obj, "request");
	ev = cfg_item(obj, "errno");
	if (req && cfg_item(obj, "nth"))
		return cfg_fail(c, "give \"request\" or \"nth\", not both");
	if (!req && !cfg_item(obj, "nth"))
		return cfg_fail(c, "missing key \"request\" (or \"nth\")");
	if (!ev)
		return cfg_missing(c, "errno");
	if (!req && cfg_item(obj, "times"))
		return cfg_fail_key(c, "times", "only valid with \"request\"");
	if (req && cJSON_IsString(req) && !json_is_digit(*req->valuestring)) {
		nn = find_name(requests, sizeof(requests) / sizeof(*requests),
			       req->valuestring);
		if (!nn)
			return cfg_fail_key(c, "request", "unknown request %s",
					    json_quote(&q, req->valuestring));
		nr = nn->nr;
		f->request_name = cfg_sdup(nn->name);
		if (!f->request_name)
			return cfg_nomem(c);
	} else if (req) {
		if (cfg_u64_value(req, &nr) != U64_OK || !nr || nr > UINT32_MAX)
			return cfg_fail_key(c, "request",
					    "expected a request name "
					    "like \"VFIO_IOMMU_MAP_DMA\", or a "
					    "number from 1 to 0xffffffff");
		snprintf(name, sizeof(name), "0x%" PRIx64, nr);
		f->request_name = cfg_sdup(name);
		if (!f->request_name)
			return cfg_nomem(c);
	}
	rc = cfg_get_int(c, obj, "nth", 1, EXACT_MAX, "a positive integer",
			 &nth);
	rc = rc ? rc : cfg_get_int(c, obj, "times", -1, INT_MAX,
				   "-1 (always) or a positive integer", &times);
	if (rc)
		return rc;
	if (!times)
		return cfg_fail_key(c, "times", "expected -1 (always) or a "
				    "positive integer");
	if (cJSON_IsString(ev)) {
		nn = find_name(errnos, sizeof(errnos) / sizeof(*errnos),
			       ev->valuestring);
		if (!nn)
			return cfg_fail_key(c, "errno", "unknown errno name %s",
					    json_quote(&q, ev->valuestring));
		e = (int64_t)nn->nr;
	} else if (!cfg_json_int(ev, 1, 4095, &e)) {
		return cfg_fail_key(c, "errno", "expected an errno name like "
				    "\"EIO\", or a number from 1 to 4095");
	}
	f->request = (unsigned long)nr;
	f->err = (int)e;
	/* An nth fault fires once: "times" is for request faults only. */
	f->times = nth ? 0 : (int)times;
	f->nth = (uint64_t)nth;
	return 0;
}

static const char *const sim_device_keys[] = {
	"name", "pins_pages", "iommu_dirty_tracking", "pin", "dma",
	"migration", "dma_logging", "iommu", NULL,
};
static const char *const sim_iommu_keys[] = {
	"model", "page_sizes", "huge_iova", "max_pasid_log2", NULL,
};
/* In the order of enum ksim_iommu_model. */
static const char *const iommu_models[] = { "intel", "mock", NULL };
static const char *const migration_keys[] = {
	"p2p", "pre_copy", "state_size", "state_seed", NULL,
};
static const char *const logging_keys[] = {
	"model", "max_ranges", "min_page_size", "max_page_size", NULL,
};
/* In the order of enum ksim_log_model, from KSIM_LOG_MLX5. */
static const char *const log_models[] = { "mlx5", "pds", "stub", NULL };
static const char *const pin_keys[] = { "iova", "pages", NULL };
static const char *const dma_keys[] = {
	"pattern", "writes_per_step", "write_size", "seed", NULL,
};
static const char *const pattern_names[] = {
	"none", "random", "sequential", "hotspot", NULL,
};

/*
 * Tells whether [first, last] is mapped, without a hole, in the address
 * space of device di: by its space's explicit mappings, or by the regions
 * when every region is identity-mapped.
 */
static bool pin_mapped(const struct ctx *c, const struct vmig_config *cfg,
		       size_t di, uint64_t first, uint64_t last)
{
	const struct vmig_cfg_device *d = &cfg->devices[di];

	if (!cfg->mappings_given)
		return cfg_span_covers(c->regions, c->nr_regions, NULL, first,
				       last);
	return cfg_span_covers(c->maps, c->nr_maps,
			       d->iommu == VMIG_CFG_IOMMU_TYPE1 ? d->container
							    : d->ioas,
			       first, last);
}

static int parse_pin(struct ctx *c, const cJSON *obj,
		     const struct vmig_config *cfg, size_t di,
		     struct vmig_cfg_sim_device *sd)
{
	int64_t pages = 0;
	uint64_t last;
	int rc;

	rc = cfg_check_object(c, obj, pin_keys);
	if (rc)
		return rc;
	if (!cfg_item(obj, "iova"))
		return cfg_missing(c, "iova");
	if (!cfg_item(obj, "pages"))
		return cfg_missing(c, "pages");
	rc = cfg_get_aligned(c, obj, "iova", U_ADDRESS, &sd->pin_iova);
	rc = rc ? rc : cfg_get_int(c, obj, "pages", 1, EXACT_MAX,
				   "a positive integer", &pages);
	if (rc)
		return rc;
	if ((uint64_t)pages > ((UINT64_MAX - sd->pin_iova) >> 12) + 1)
		return cfg_fail_key(c, "pages",
				    "0x%" PRIx64 " + %" PRId64 " pages "
				    "goes past the end of the 64-bit space",
				    sd->pin_iova, pages);
	sd->pin_pages = (uint64_t)pages;
	last = sd->pin_iova + ((uint64_t)pages * PAGE_4K - 1);
	if (!pin_mapped(c, cfg, di, sd->pin_iova, last))
		return cfg_fail(c,
				"0x%" PRIx64 "-0x%" PRIx64 " is not all mapped "
				"in the device's address space",
				sd->pin_iova, last);
	return 0;
}

static int parse_dma(struct ctx *c, const cJSON *obj,
		     struct vmig_cfg_sim_device *sd)
{
	int pattern = KSIM_DMA_NONE;
	int64_t wps = sd->dma.writes_per_step, ws = sd->dma.write_size;
	int rc;

	rc = cfg_check_object(c, obj, dma_keys);
	if (rc)
		return rc;
	if (!cfg_item(obj, "pattern"))
		return cfg_missing(c, "pattern");
	rc = cfg_get_enum(c, obj, "pattern", pattern_names, &pattern);
	rc = rc ? rc : cfg_get_int(c, obj, "writes_per_step", 0, 1000000, NULL,
				   &wps);
	rc = rc ? rc : cfg_get_int(c, obj, "write_size", 1, 1048576, NULL, &ws);
	rc = rc ? rc : cfg_get_u64(c, obj, "seed", U_INTEGER, &sd->dma.seed);
	if (rc)
		return rc;
	/* The names are in the order of enum ksim_dma_pattern. */
	sd->dma.pattern = (enum ksim_dma_pattern)pattern;
	sd->dma.writes_per_step = (uint32_t)wps;
	sd->dma.write_size = (uint32_t)ws;
	return 0;
}

/* "migration": true, false, or an object of the VFIO migration flags. */
static int parse_migration(struct ctx *c, const cJSON *v,
			   struct ksim_feature_params *f)
{
	bool p2p = false, pre_copy = false;
	uint64_t size = 64 << 10, seed = 0;
	int rc;

	if (cJSON_IsBool(v)) {
		f->migration = cJSON_IsTrue(v);
		return 0;
	}
	if (!cJSON_IsObject(v))
		return cfg_fail(c, "expected true, false or an object");
	rc = cfg_check_object(c, v, migration_keys);
	rc = rc ? rc : cfg_get_bool(c, v, "p2p", &p2p);
	rc = rc ? rc : cfg_get_bool(c, v, "pre_copy", &pre_copy);
	rc = rc ? rc : cfg_get_u64(c, v, "state_size", U_SIZE, &size);
	rc = rc ? rc : cfg_get_u64(c, v, "state_seed", U_INTEGER, &seed);
	if (rc)
		return rc;
	if (size > (64u << 20))
		return cfg_fail_key(c, "state_size", "at most 64M");
	f->migration = true;
	f->mig_flags = (p2p ? VK_VFIO_MIGRATION_P2P : 0) |
		       (pre_copy ? VK_VFIO_MIGRATION_PRE_COPY : 0);
	f->state_size = (uint32_t)size;
	f->state_seed = seed;
	return 0;
}

/* "dma_logging": false, a driver model's name, or an object. */
static int parse_logging(struct ctx *c, const cJSON *v,
			 struct ksim_feature_params *f)
{
	uint64_t minp = 4096, maxp = 1ull << 30;
	int model = 0;
	int64_t ranges = 0;
	int rc;

	if (cJSON_IsFalse(v))
		return 0;
	if (cJSON_IsString(v)) {
		for (model = 0; log_models[model]; model++) {
			if (!strcmp(v->valuestring, log_models[model])) {
				f->log = (enum ksim_log_model)(model + 1);
				return 0;
			}
		}
	}
	if (!cJSON_IsObject(v))
		return cfg_fail(c, "expected false, one of \"mlx5\", \"pds\", "
				"\"stub\", or an object");
	rc = cfg_check_object(c, v, logging_keys);
	if (rc)
		return rc;
	if (!cfg_item(v, "model"))
		return cfg_missing(c, "model");
	rc = cfg_get_enum(c, v, "model", log_models, &model);
	rc = rc ? rc : cfg_get_int(c, v, "max_ranges", 1, 65535, NULL, &ranges);
	rc = rc ? rc : cfg_get_u64(c, v, "min_page_size", U_SIZE, &minp);
	rc = rc ? rc : cfg_get_u64(c, v, "max_page_size", U_SIZE, &maxp);
	if (rc)
		return rc;
	if (minp < 4096 || (minp & (minp - 1)))
		return cfg_fail_key(c, "min_page_size",
				    "expected a power of two of at least 4K");
	if (maxp < minp || (maxp & (maxp - 1)))
		return cfg_fail_key(c, "max_page_size",
				    "expected a power of two of at least "
				    "min_page_size");
	f->log = (enum ksim_log_model)(model + 1);
	f->log_max_ranges = (uint32_t)ranges;
	f->log_min_page_size = minp;
	f->log_max_page_size = maxp;
	return 0;
}

/* "iommu": how iommufd sees the device's IOMMU. */
static int parse_sim_iommu(struct ctx *c, const cJSON *v,
			   struct ksim_iommufd_device_params *p)
{
	const cJSON *e, *sizes;
	int model = 0;
	int64_t pasid = 0;
	size_t i = 0;
	int rc;

	rc = cfg_check_object(c, v, sim_iommu_keys);
	rc = rc ? rc : cfg_get_enum(c, v, "model", iommu_models, &model);
	rc = rc ? rc : cfg_get_bool(c, v, "huge_iova", &p->mock_huge_iova);
	rc = rc ? rc : cfg_get_int(c, v, "max_pasid_log2", 0, 20, NULL, &pasid);
	if (rc)
		return rc;
	p->model = (enum ksim_iommu_model)model;
	p->max_pasid_log2 = (uint8_t)pasid;
	sizes = cfg_item(v, "page_sizes");
	if (!sizes)
		return 0;
	if (!cJSON_IsArray(sizes) || !cJSON_GetArraySize(sizes))
		return cfg_fail_key(c, "page_sizes",
				    "expected a non-empty array of sizes");
	cJSON_ArrayForEach(e, sizes) {
		size_t m = cfg_push_key(c, "page_sizes");
		uint64_t sz = 0;

		cfg_push_index(c, i++);
		if (cfg_u64_value(e, &sz) != U64_OK || sz < 4096 ||
		    (sz & (sz - 1)))
			return cfg_fail(c,
					"expected a power of two of at least "
					"4K");
		p->pgsizes |= sz;
		cfg_pop(c, m);
	}
	if (!(p->pgsizes & 4096))
		return cfg_fail_key(c, "page_sizes", "must include 4K");
	return 0;
}

static int parse_sim_device(struct ctx *c, const cJSON *obj,
			    const struct vmig_config *cfg, size_t *owner,
			    size_t idx, struct vmig_cfg_sim_device *sd)
{
	const struct vmig_cfg_device *d;
	const cJSON *v;
	struct json_qstr q;
	size_t di;
	int rc;

	rc = cfg_check_object(c, obj, sim_device_keys);
	if (rc)
		return rc;
	if (!cfg_item(obj, "name"))
		return cfg_missing(c, "name");
	rc = cfg_get_string(c, obj, "name", &sd->name);
	if (rc)
		return rc;
	di = cfg_device_find(c, sd->name);
	if (di == SIZE_MAX)
		return cfg_fail_key(c, "name", "no device %s in devices",
				    json_quote(&q, sd->name));
	if (owner[di] != SIZE_MAX)
		return cfg_fail_key(c, "name",
				    "%s is already used by "
				    "kernel.devices[%zu]",
				    json_quote(&q, sd->name), owner[di]);
	owner[di] = idx;
	d = &cfg->devices[di];
	if (d->kind == VMIG_DEVICE_MDEV && cfg_item(obj, "pins_pages"))
		return cfg_fail_key(c, "pins_pages",
				    "only valid for a vfio-pci "
				    "device (an mdev always pins)");
	sd->iommu_dirty_tracking = true;
	sd->dma.pattern = KSIM_DMA_NONE;
	sd->dma.writes_per_step = 64;
	sd->dma.write_size = 4096;
	sd->dma.seed = di + 1;
	rc = cfg_get_bool(c, obj, "pins_pages", &sd->pins_pages);
	rc = rc ? rc : cfg_get_bool(c, obj, "iommu_dirty_tracking",
				    &sd->iommu_dirty_tracking);
	if (rc)
		return rc;
	v = cfg_item(obj, "pin");
	if (v) {
		size_t m = cfg_push_key(c, "pin");

		if (d->kind == VMIG_DEVICE_VFIO_PCI && !sd->pins_pages)
			return cfg_fail(
				c, "only an mdev, or a vfio-pci device "
				   "with \"pins_pages\": true, pins pages");
		rc = parse_pin(c, v, cfg, di, sd);
		if (rc)
			return rc;
		cfg_pop(c, m);
	}
	v = cfg_item(obj, "dma");
	if (v) {
		size_t m = cfg_push_key(c, "dma");

		rc = parse_dma(c, v, sd);
		if (rc)
			return rc;
		cfg_pop(c, m);
	}
	v = cfg_item(obj, "migration");
	if (v) {
		size_t m = cfg_push_key(c, "migration");

		rc = parse_migration(c, v, &sd->feature);
		if (rc)
			return rc;
		cfg_pop(c, m);
	}
	v = cfg_item(obj, "dma_logging");
	if (v) {
		size_t m = cfg_push_key(c, "dma_logging");

		rc = parse_logging(c, v, &sd->feature);
		if (rc)
			return rc;
		cfg_pop(c, m);
	}
	v = cfg_item(obj, "iommu");
	if (v) {
		size_t m = cfg_push_key(c, "iommu");

		if (!cJSON_IsObject(v))
			return cfg_fail(c, "expected an object");
		rc = parse_sim_iommu(c, v, &sd->iommufd);
		if (rc)
			return rc;
		cfg_pop(c, m);
	}
	return 0;
}

static int parse_sim_devices(struct ctx *c, const cJSON *arr,
			     struct vmig_config *cfg)
{
	struct vmig_cfg_kernel *k = &cfg->kernel;
	size_t *owner, i = 0, n, m;
	const cJSON *e;
	struct json_qstr q;
	int rc = 0;

	m = cfg_push_key(c, "devices");
	if (!cJSON_IsArray(arr))
		return cfg_fail(c, "expected an array");
	n = cfg_count(arr);
	if (n) {
		k->devices = cfg_zalloc(n, sizeof(*k->devices));
		if (!k->devices)
			return cfg_nomem(c);
		k->nr_devices = n;
	}
	owner = cfg_zalloc(cfg->nr_devices + 1, sizeof(*owner));
	if (!owner)
		return cfg_nomem(c);
	for (i = 0; i < cfg->nr_devices; i++)
		owner[i] = SIZE_MAX;
	i = 0;
	cJSON_ArrayForEach(e, arr) {
		size_t mi = cfg_push_index(c, i);

		rc = parse_sim_device(c, e, cfg, owner, i, &k->devices[i]);
		if (rc)
			break;
		cfg_pop(c, mi);
		i++;
	}
	for (i = 0; !rc && i < cfg->nr_devices; i++)
		if (owner[i] == SIZE_MAX)
			rc = cfg_fail(c,
				      "devices[%zu] (%s) has no simulated "
				      "device",
				      i, json_quote(&q, cfg->devices[i].name));
	cfg_xfree(owner);
	if (!rc)
		cfg_pop(c, m);
	return rc;
}

static int parse_faults(struct ctx *c, const cJSON *arr,
			struct vmig_cfg_kernel *k)
{
	const cJSON *e;
	size_t i = 0, n, m;
	int rc;

	m = cfg_push_key(c, "faults");
	if (!cJSON_IsArray(arr))
		return cfg_fail(c, "expected an array");
	n = cfg_count(arr);
	if (n) {
		k->faults = cfg_zalloc(n, sizeof(*k->faults));
		if (!k->faults)
			return cfg_nomem(c);
		k->nr_faults = n;
	}
	cJSON_ArrayForEach(e, arr) {
		size_t mi = cfg_push_index(c, i);

		rc = parse_fault(c, e, &k->faults[i]);
		if (rc)
			return rc;
		cfg_pop(c, mi);
		i++;
	}
	cfg_pop(c, m);
	return 0;
}

static const char *const kernel_keys[] = {
	"type", "type1_page_size", "iommufd_compat", "pasid_attach", "devices",
	"faults", NULL,
};

int cfg_parse_kernel(struct ctx *c, const cJSON *root,
		     struct vmig_config *cfg)
{
	struct vmig_cfg_kernel *k = &cfg->kernel;
	const cJSON *obj = cfg_item(root, "kernel"), *v;
	size_t m;
	int rc;

	k->type = VMIG_KERNEL_LINUX;
	if (!obj)
		return 0;
	m = cfg_push_key(c, "kernel");
	if (cJSON_IsString(obj) && !strcmp(obj->valuestring, "linux")) {
		cfg_pop(c, m);
		return 0;
	}
	if (!cJSON_IsObject(obj))
		return cfg_fail(c, "expected \"linux\" or an object");
	rc = cfg_check_object(c, obj, kernel_keys);
	if (rc)
		return rc;
	v = cfg_item(obj, "type");
	if (!v)
		return cfg_missing(c, "type");
	if (!cJSON_IsString(v) || strcmp(v->valuestring, "simulated"))
		return cfg_fail_key(c, "type", "expected \"simulated\"");
	if (!cfg_item(obj, "devices"))
		return cfg_missing(c, "devices");
	k->type = VMIG_KERNEL_SIMULATED;
	k->type1_pgsize = 4096;
	rc = cfg_get_u64(c, obj, "type1_page_size", U_SIZE, &k->type1_pgsize);
	if (rc)
		return rc;
	if (k->type1_pgsize & (k->type1_pgsize - 1))
		return cfg_fail_key(c, "type1_page_size",
				    "0x%" PRIx64 " is not a "
				    "power of two",
				    k->type1_pgsize);
	rc = cfg_get_bool(c, obj, "iommufd_compat", &k->iommufd_compat);
	rc = rc ? rc : cfg_get_bool(c, obj, "pasid_attach", &k->pasid_attach);
	rc = rc ? rc : parse_sim_devices(c, cfg_item(obj, "devices"), cfg);
	if (rc)
		return rc;
	v = cfg_item(obj, "faults");
	if (v) {
		rc = parse_faults(c, v, k);
		if (rc)
			return rc;
	}
	cfg_pop(c, m);
	return 0;
}
