/*
 * session.c: sessions and the records a VMM registers in them.
 *
 * This file owns the public calls that create and destroy a session and
 * that add guest memory, address spaces, DMA mappings, devices and
 * plugins, with their validation. Choosing sources is arbiter.c's job,
 * moving dirty bits dirty.c's; this file calls them when a change happens
 * while tracking runs.
 */
#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>

#include "engine.h"
#include "internal.h"
#include "ioas.h"
#include "source.h"
#include <vmig/linux-uapi.h>

/* ------------------------------------------------------------------ */
/* Logging                                                             */

/* Logging from plugins' entry points, attributed to the session. */
static void session_host_log(void *ctx, int level, const char *msg)
{
	vmig_logf(ctx, level, "%s", msg);
}

/* The host table given to plugin entry points (and scans). */
static void session_host(vmig_session *s, struct vmig_host *h)
{
	*h = s->kernel;
	h->ctx = s;
	h->log = session_host_log;
	h->ranges_unknown = NULL;
}

/* ------------------------------------------------------------------ */
/* Sessions                                                            */

VMIG_API int vmig_session_new(const struct vmig_session_params *params,
			      vmig_session **out)
{
	const struct vmig_session_params *p = params;
	vmig_session *s;
	int ret;

	if (!out)
		return -EINVAL;
	*out = NULL;
	if (p && p->size < offsetof(struct vmig_session_params, role) +
				   sizeof(p->role))
		return -EINVAL;

	s = calloc(1, sizeof(*s));
	if (!s)
		return -ENOMEM;
	s->role = VMIG_ROLE_SOURCE;
	s->kernel = vmig_linux_host;
	s->hotplug = VMIG_HOTPLUG_POLICY_TRACK;

	if (p) {
		if (p->role == VMIG_ROLE_SOURCE ||
		    p->role == VMIG_ROLE_DESTINATION)
			s->role = p->role;
		else if (p->role != 0)
			goto einval;
		if (VMIG_HAS_FIELD(p, struct vmig_session_params, log_opaque)) {
			s->log = p->log;
			s->log_opaque = p->log_opaque;
		}
		if (VMIG_HAS_FIELD(p, struct vmig_session_params, log_level))
			s->log_level = p->log_level;
		if (VMIG_HAS_FIELD(p, struct vmig_session_params, kernel) &&
		    p->kernel) {
			const struct vmig_host *k = p->kernel;

			/* Every kernel operation of ABI 1.0 must be there. */
			if (!VMIG_HAS_FIELD(k, struct vmig_host, munmap) ||
			    !k->open || !k->close || !k->ioctl || !k->read ||
			    !k->write || !k->poll || !k->mmap || !k->munmap)
				goto einval;
			memcpy(&s->kernel, k,
			       offsetof(struct vmig_host, log));
			s->kernel.size = sizeof(struct vmig_host);
			s->kernel.abi_minor = VMIG_PLUGIN_ABI_MINOR;
			s->kernel.ctx = NULL;
		}
		if (VMIG_HAS_FIELD(p, struct vmig_session_params,
				   progress_opaque)) {
			s->progress = p->progress;
			s->progress_opaque = p->progress_opaque;
		}
	}

	ret = vmig_pluginset_new(&s->plugins);
	if (ret < 0) {
		free(s);
		return ret;
	}
	*out = s;
	return 0;

einval:
	free(s);
	return -EINVAL;
}

static void close_owned(vmig_session *s, int *fd)
{
	if (*fd >= 0)
		s->kernel.close(s->kernel.kctx, *fd);
	*fd = -1;
}

static void device_free(vmig_session *s, struct vmig_device_rec *dev)
{
	if (dev->owned_fd)
		close_owned(s, &dev->device_fd);
	free(dev->name);
	free(dev->address);
	free(dev->pasids);
	free(dev->candidates);
	free(dev->ranges);
	free(dev->pasid_descs);
	free(dev);
}

VMIG_API void vmig_session_free(vmig_session *s)
{
	size_t i;

	if (!s)
		return;
	vmig_engine_free(s);
	if (s->tracking)
		vmig_tracking_stop(s);
	vmig_dirty_account_free(s);
	vmig_arbiter_fini(s);

	/* Devices before the spaces they are in: the kernel wants it so. */
	for (i = 0; i < s->nr_devices; i++)
		device_free(s, s->devices[i]);
	free(s->devices);
	for (i = 0; i < s->nr_iommus; i++) {
		struct vmig_iommu_rec *io = s->iommus[i];
		size_t j;

		/* Groups leave a container before it is closed. */
		for (j = 0; j < io->nr_owned_fds; j++)
			close_owned(s, &io->owned_fds[j]);
		free(io->owned_fds);
		if (io->owned_fd)
			close_owned(s, &io->desc.fd);
		free(io->name);
		free(io->maps);
		free(io);
	}
	free(s->iommus);
	for (i = 0; i < s->nr_regions; i++) {
		struct vmig_region_rec *r = &s->regions[i];

		if (r->owned) {
			munmap(r->hva, r->length);
			if (r->fd >= 0)
				close(r->fd);
		}
		free(r->name);
		free(r->dirty);
	}
	free(s->regions);
	if (s->attached_free)
		s->attached_free(s->attached);
	vmig_pluginset_free(s->plugins);
	for (i = 0; i < s->nr_preference; i++)
		free(s->preference[i]);
	free(s->preference);
	free(s->scratch);
	free(s->stats.iters);
	free(s);
}

VMIG_API const char *vmig_errmsg(const vmig_session *s)
{
	return s ? s->errmsg : "";
}

int vmig_scratch_reserve(vmig_session *s, uint64_t nbits)
{
	uint64_t words = vmig_bitmap_words(nbits);
	uint64_t *p;

	if (words <= s->scratch_words)
		return 0;
	if (words > SIZE_MAX / sizeof(uint64_t))
		return -ENOMEM;
	p = realloc(s->scratch, words * sizeof(uint64_t));
	if (!p)
		return -ENOMEM;
	s->scratch = p;
	s->scratch_words = words;
	return 0;
}

/* ------------------------------------------------------------------ */
/* Plugins                                                             */

VMIG_API int vmig_plugin_add_path(vmig_session *s, const char *dir)
{
	int ret;

	if (!s)
		return -EINVAL;
	if (!dir || !*dir)
		return vmig_fail(s, -EINVAL, "plugin path: empty directory");
	ret = vmig_pluginset_add_path(s->plugins, dir);
	if (ret < 0)
		return vmig_fail(s, ret, "plugin path %s: %s", dir,
				 vmig_strerror(ret));
	return 0;
}

VMIG_API int vmig_plugin_load(vmig_session *s, const char *name_or_path)
{
	struct vmig_host host;
	char err[512];
	int ret;

	if (!s)
		return -EINVAL;
	if (!name_or_path || !*name_or_path)
		return vmig_fail(s, -EINVAL, "plugin: empty name");
	if (s->tracking)
		return vmig_fail(s, -EBUSY,
				 "plugin %s: tracking has started", name_or_path);
	session_host(s, &host);
	err[0] = '\0';
	ret = vmig_pluginset_load(s->plugins, name_or_path, &host, err,
				  sizeof(err));
	if (ret < 0)
		return vmig_fail(s, ret, "%s", err);
	vmig_logf(s, VMIG_LOG_DEBUG, "loaded plugin %s from %s",
		  vmig_pluginset_get(s->plugins, (size_t)ret)->name,
		  vmig_pluginset_path(s->plugins, (size_t)ret));
	return 0;
}

VMIG_API int vmig_plugin_register_user(vmig_session *s,
				       const struct vmig_plugin *desc,
				       void *user)
{
	char err[512];
	int ret;

	if (!s)
		return -EINVAL;
	if (s->tracking)
		return vmig_fail(s, -EBUSY,
				 "registered plugin: tracking has started");
	err[0] = '\0';
	ret = vmig_pluginset_register(s->plugins, desc, err, sizeof(err));
	if (ret < 0)
		return vmig_fail(s, ret, "%s", err);
	vmig_pluginset_set_user(s->plugins, (size_t)ret, user);
	return 0;
}

VMIG_API int vmig_plugin_register(vmig_session *s,
				  const struct vmig_plugin *desc)
{
	return vmig_plugin_register_user(s, desc, NULL);
}

struct scan_ctx {
	void (*fn)(void *opaque, const struct vmig_plugin_info *info);
	void *opaque;
};

static void scan_one(void *opaque, const struct vmig_scan_entry *e)
{
	struct scan_ctx *c = opaque;
	struct vmig_plugin_info info = {
		.size = sizeof(info),
		.error = e->error,
		.path = e->path,
		.errmsg = e->errmsg,
		.desc = e->desc,
	};

	c->fn(c->opaque, &info);
}

VMIG_API int vmig_plugins_scan(vmig_session *s,
			       void (*fn)(void *opaque,
					  const struct vmig_plugin_info *info),
			       void *opaque)
{
	struct scan_ctx c = { fn, opaque };
	struct vmig_host host;

	if (!s || !fn)
		return -EINVAL;
	session_host(s, &host);
	return vmig_pluginset_scan(s->plugins, &host, scan_one, &c);
}

static bool plugin_name_ok(const char *name)
{
	const char *p;

	if (!name || !*name || strlen(name) > 63)
		return false;
	for (p = name; *p; p++) {
		if (!((*p >= 'a' && *p <= 'z') || (*p >= '0' && *p <= '9') ||
		      *p == '.' || *p == '_' || *p == '-'))
			return false;
	}
	return true;
}

VMIG_API int vmig_set_preference(vmig_session *s, const char *const *names,
				 size_t n)
{
	char **copy;
	size_t i;

	if (!s)
		return -EINVAL;
	if (s->tracking)
		return vmig_fail(s, -EBUSY,
				 "preference: tracking has started");
	if (n && !names)
		return vmig_fail(s, -EINVAL, "preference: no names");
	for (i = 0; i < n; i++) {
		if (!plugin_name_ok(names[i]))
			return vmig_fail(s, -EINVAL,
					 "preference[%zu]: invalid plugin name",
					 i);
	}
	copy = calloc(n ? n : 1, sizeof(*copy));
	if (!copy)
		return -ENOMEM;
	for (i = 0; i < n; i++) {
		copy[i] = strdup(names[i]);
		if (!copy[i]) {
			while (i--)
				free(copy[i]);
			free(copy);
			return -ENOMEM;
		}
	}
	for (i = 0; i < s->nr_preference; i++)
		free(s->preference[i]);
	free(s->preference);
	s->preference = copy;
	s->nr_preference = n;
	return 0;
}

/* ------------------------------------------------------------------ */
/* Guest memory                                                        */

#define PAGE_MASK_4K ((uint64_t)VMIG_PAGE_SIZE - 1)

static bool range_overlaps(uint64_t a, uint64_t alen, uint64_t b,
			   uint64_t blen)
{
	return a < b + blen && b < a + alen;
}

int vmig_region_find(const vmig_session *s, uint64_t gpa, uint64_t len)
{
	size_t i;

	for (i = 0; i < s->nr_regions; i++) {
		const struct vmig_region_rec *r = &s->regions[i];

		if (gpa >= r->gpa && len <= r->length &&
		    gpa - r->gpa <= r->length - len)
			return (int)i;
	}
	return -1;
}

int vmig_region_find_hva(const vmig_session *s, const void *hva,
			 uint64_t len)
{
	uintptr_t a = (uintptr_t)hva;
	size_t i;

	for (i = 0; i < s->nr_regions; i++) {
		const struct vmig_region_rec *r = &s->regions[i];
		uintptr_t b = (uintptr_t)r->hva;

		if (a >= b && len <= r->length && a - b <= r->length - len)
			return (int)i;
	}
	return -1;
}

VMIG_API int vmig_region_add(vmig_session *s, const struct vmig_region *r,
			     uint32_t *out_index)
{
	struct vmig_region_rec *arr, *rec;
	char why[256];
	size_t i;
	int ret;

	if (!s)
		return -EINVAL;
	if (!r || r->size < offsetof(struct vmig_region, fd_offset) +
				    sizeof(r->fd_offset))
		return vmig_fail(s, -EINVAL, "region: size field too small");
	if (s->tracking)
		return vmig_fail(s, -EBUSY, "region: tracking has started");
	if (r->flags & ~(VMIG_REGION_FRESH | VMIG_REGION_ANON_PRIVATE))
		return vmig_fail(s, -EINVAL, "region: unknown flags 0x%x",
				 r->flags & ~(VMIG_REGION_FRESH |
					      VMIG_REGION_ANON_PRIVATE));
	if (!r->length || (r->gpa & PAGE_MASK_4K) ||
	    (r->length & PAGE_MASK_4K) || r->gpa + r->length < r->gpa)
		return vmig_fail(s, -EINVAL,
				 "region 0x%llx+0x%llx: not 4 KiB aligned, "
				 "empty or wrapping",
				 (unsigned long long)r->gpa,
				 (unsigned long long)r->length);
	if (!r->hva || ((uintptr_t)r->hva & PAGE_MASK_4K))
		return vmig_fail(s, -EINVAL,
				 "region 0x%llx: host address missing or not "
				 "4 KiB aligned",
				 (unsigned long long)r->gpa);
	for (i = 0; i < s->nr_regions; i++) {
		const struct vmig_region_rec *o = &s->regions[i];

		if (range_overlaps(r->gpa, r->length, o->gpa, o->length))
			return vmig_fail(s, -EEXIST,
					 "region 0x%llx+0x%llx overlaps region "
					 "%s in guest-physical space",
					 (unsigned long long)r->gpa,
					 (unsigned long long)r->length,
					 o->name);
		if (range_overlaps((uintptr_t)r->hva, r->length,
				   (uintptr_t)o->hva, o->length))
			return vmig_fail(s, -EEXIST,
					 "region 0x%llx+0x%llx overlaps region "
					 "%s in host memory",
					 (unsigned long long)r->gpa,
					 (unsigned long long)r->length,
					 o->name);
	}

	arr = realloc(s->regions, (s->nr_regions + 1) * sizeof(*arr));
	if (!arr)
		return -ENOMEM;
	s->regions = arr;
	rec = &arr[s->nr_regions];
	memset(rec, 0, sizeof(*rec));
	rec->gpa = r->gpa;
	rec->length = r->length;
	rec->hva = r->hva;
	rec->fd = r->fd;
	rec->fd_offset = r->fd_offset;
	rec->npages = r->length / VMIG_PAGE_SIZE;
	rec->fresh = r->flags & VMIG_REGION_FRESH;
	rec->anon_private = r->flags & VMIG_REGION_ANON_PRIVATE;
	if (r->name) {
		rec->name = strdup(r->name);
	} else if (asprintf(&rec->name, "ram%zu", s->nr_regions) < 0) {
		rec->name = NULL;
	}
	rec->dirty = calloc(vmig_bitmap_words(rec->npages), sizeof(uint64_t));
	if (!rec->name || !rec->dirty) {
		free(rec->name);
		free(rec->dirty);
		return -ENOMEM;
	}
	if (vmig_region_backing(rec, why, sizeof(why)) < 0) {
		ret = vmig_fail(s, -EINVAL, "region %s (0x%llx+0x%llx): %s",
				rec->name, (unsigned long long)r->gpa,
				(unsigned long long)r->length, why);
		free(rec->name);
		free(rec->dirty);
		return ret;
	}
	if (out_index)
		*out_index = (uint32_t)s->nr_regions;
	s->nr_regions++;
	return 0;
}

/* ------------------------------------------------------------------ */
/* Address spaces and DMA mappings                                     */

VMIG_API int vmig_iommu_add(vmig_session *s, const struct vmig_iommu *io,
			    uint32_t *out_id)
{
	const struct vmig_ioas_backend *be;
	struct vmig_iommu_rec **arr, *rec;

	if (!s)
		return -EINVAL;
	if (!io || io->size < offsetof(struct vmig_iommu, ioas_id) +
				      sizeof(io->ioas_id))
		return vmig_fail(s, -EINVAL, "iommu: size field too small");
	be = vmig_ioas_backend(io->kind);
	if (!be)
		return vmig_fail(s, -EINVAL, "iommu: unknown kind %u",
				 io->kind);
	if (io->fd < 0)
		return vmig_fail(s, -EINVAL, "iommu: negative fd");

	rec = calloc(1, sizeof(*rec));
	arr = realloc(s->iommus, (s->nr_iommus + 1) * sizeof(*arr));
	if (arr)
		s->iommus = arr;
	if (!rec || !arr) {
		free(rec);
		return -ENOMEM;
	}
	rec->be = be;
	rec->desc.size = sizeof(rec->desc);
	rec->desc.id = (uint32_t)s->nr_iommus;
	rec->desc.kind = io->kind;
	rec->desc.fd = io->fd;
	rec->desc.ioas_id = io->ioas_id;
	if (io->name)
		rec->name = strdup(io->name);
	else if (asprintf(&rec->name, "%s%zu",
			  be->noun, s->nr_iommus) < 0)
		rec->name = NULL;
	if (!rec->name) {
		free(rec);
		return -ENOMEM;
	}
	arr[s->nr_iommus] = rec;
	if (out_id)
		*out_id = rec->desc.id;
	s->nr_iommus++;
	return 0;
}

size_t vmig_mapping_lower(const struct vmig_iommu_rec *io, uint64_t iova)
{
	size_t lo = 0, hi = io->nr_maps;

	while (lo < hi) {
		size_t mid = lo + (hi - lo) / 2;
		const struct vmig_mapping_rec *m = &io->maps[mid];

		if (m->iova + m->length <= iova)
			lo = mid + 1;
		else
			hi = mid;
	}
	return lo;
}

int vmig_kernel_map(vmig_session *s, const struct vmig_iommu_rec *io,
		    const struct vmig_mapping_rec *m)
{
	void *hva = s->regions[m->region].hva + (m->gpa -
						 s->regions[m->region].gpa);

	return io->be->map(s, io, m, hva);
}

int vmig_kernel_unmap(vmig_session *s, const struct vmig_iommu_rec *io,
		      uint64_t iova, uint64_t length)
{
	return io->be->unmap(s, io, iova, length);
}

static struct vmig_iommu_rec *iommu_get(vmig_session *s, uint32_t id)
{
	return id < s->nr_iommus ? s->iommus[id] : NULL;
}

static int dma_map(vmig_session *s, const struct vmig_dma_map *map);

static int dma_map_call(vmig_session *s, void *arg)
{
	return dma_map(s, arg);
}

VMIG_API int vmig_dma_map(vmig_session *s, const struct vmig_dma_map *map)
{
	if (!s)
		return -EINVAL;
	return vmig_engine_call(s, dma_map_call, (void *)map);
}

static int dma_map(vmig_session *s, const struct vmig_dma_map *map)
{
	struct vmig_mapping_rec m, *arr;
	struct vmig_iommu_rec *io;
	size_t pos, i;
	int region, ret;

	if (!s)
		return -EINVAL;
	if (!map || map->size < offsetof(struct vmig_dma_map, gpa) +
					sizeof(map->gpa))
		return vmig_fail(s, -EINVAL, "dma map: size field too small");
	io = iommu_get(s, map->iommu_id);
	if (!io)
		return vmig_fail(s, -ENOENT, "dma map: no address space %u",
				 map->iommu_id);
	if (map->flags & ~(VMIG_DMA_READ | VMIG_DMA_WRITE | VMIG_DMA_EXISTING))
		return vmig_fail(s, -EINVAL, "dma map: unknown flags 0x%x",
				 map->flags);
	if (!(map->flags & (VMIG_DMA_READ | VMIG_DMA_WRITE)))
		return vmig_fail(s, -EINVAL,
				 "dma map: neither readable nor writable");
	if (!map->length || ((map->iova | map->length | map->gpa) &
			     PAGE_MASK_4K) ||
	    map->iova + map->length < map->iova)
		return vmig_fail(s, -EINVAL,
				 "dma map %s 0x%llx+0x%llx: not 4 KiB aligned, "
				 "empty or wrapping",
				 io->name, (unsigned long long)map->iova,
				 (unsigned long long)map->length);
	region = vmig_region_find(s, map->gpa, map->length);
	if (region < 0)
		return vmig_fail(s, -EINVAL,
				 "dma map %s: guest range 0x%llx+0x%llx is not "
				 "inside one region",
				 io->name, (unsigned long long)map->gpa,
				 (unsigned long long)map->length);
	pos = vmig_mapping_lower(io, map->iova);
	if (pos < io->nr_maps &&
	    range_overlaps(map->iova, map->length, io->maps[pos].iova,
			   io->maps[pos].length))
		return vmig_fail(s, -EEXIST,
				 "dma map %s 0x%llx+0x%llx overlaps the mapping "
				 "at 0x%llx",
				 io->name, (unsigned long long)map->iova,
				 (unsigned long long)map->length,
				 (unsigned long long)io->maps[pos].iova);

	if (io->nr_maps == io->cap_maps) {
		size_t cap = io->cap_maps ? io->cap_maps * 2 : 8;

		arr = realloc(io->maps, cap * sizeof(*arr));
		if (!arr)
			return -ENOMEM;
		io->maps = arr;
		io->cap_maps = cap;
	}
	m.iova = map->iova;
	m.length = map->length;
	m.gpa = map->gpa;
	m.flags = map->flags & (VMIG_DMA_READ | VMIG_DMA_WRITE);
	m.region = (uint32_t)region;

	/*
	 * Sources hear of the range before the device can reach it, so no
	 * write to it can happen unseen. A source that cannot take it fails
	 * over to the fallback, which covers the range from the next sync.
	 */
	if (s->tracking && (m.flags & VMIG_DMA_WRITE)) {
		struct vmig_range r = { m.iova, m.length };

		for (i = 0; i < s->nr_sources; i++) {
			struct vmig_source_rec *src = &s->sources[i];

			if (!src->started || src->failed || !src->nr_devices)
				continue;
			ret = vmig_src_map(src, io->desc.id, &r);
			if (ret < 0)
				vmig_source_fail(s, src, ret, "map");
		}
	}

	if (!(map->flags & VMIG_DMA_EXISTING)) {
		ret = vmig_kernel_map(s, io, &m);
		if (ret < 0)
			return vmig_fail(s, ret,
					 "dma map %s 0x%llx+0x%llx: %s",
					 io->name,
					 (unsigned long long)m.iova,
					 (unsigned long long)m.length,
					 vmig_strerror(ret));
	}
	memmove(&io->maps[pos + 1], &io->maps[pos],
		(io->nr_maps - pos) * sizeof(*io->maps));
	io->maps[pos] = m;
	io->nr_maps++;
	/*
	 * A range the VMM mapped itself existed before the sources heard of
	 * it: a device could write it in between, unseen by a DMA log that
	 * was started with the ranges known then (and restarted only now).
	 * What it wrote there is unknown: the range is dirty once.
	 */
	if (s->tracking && (map->flags & VMIG_DMA_EXISTING) &&
	    (m.flags & VMIG_DMA_WRITE))
		vmig_dirty_mark_iova(s, io->desc.id, m.iova, m.length);
	return 0;
}

static int dma_unmap(vmig_session *s, uint32_t iommu_id, uint64_t iova,
		     uint64_t length);

struct unmap_args {
	uint32_t iommu_id;
	uint64_t iova;
	uint64_t length;
};

static int dma_unmap_call(vmig_session *s, void *arg)
{
	const struct unmap_args *a = arg;

	return dma_unmap(s, a->iommu_id, a->iova, a->length);
}

VMIG_API int vmig_dma_unmap(vmig_session *s, uint32_t iommu_id,
			    uint64_t iova, uint64_t length)
{
	struct unmap_args a = { iommu_id, iova, length };

	if (!s)
		return -EINVAL;
	return vmig_engine_call(s, dma_unmap_call, &a);
}

static int dma_unmap(vmig_session *s, uint32_t iommu_id, uint64_t iova,
		     uint64_t length)
{
	struct vmig_iommu_rec *io;
	size_t first, last;
	uint64_t end;
	int ret;

	if (!s)
		return -EINVAL;
	io = iommu_get(s, iommu_id);
	if (!io)
		return vmig_fail(s, -ENOENT, "dma unmap: no address space %u",
				 iommu_id);
	end = iova + length;
	if (!length || ((iova | length) & PAGE_MASK_4K) || end < iova)
		return vmig_fail(s, -EINVAL,
				 "dma unmap %s 0x%llx+0x%llx: not 4 KiB aligned, "
				 "empty or wrapping",
				 io->name, (unsigned long long)iova,
				 (unsigned long long)length);
	first = vmig_mapping_lower(io, iova);
	last = first;
	while (last < io->nr_maps && io->maps[last].iova < end)
		last++;
	if (first == last)
		return vmig_fail(s, -ENOENT,
				 "dma unmap %s 0x%llx+0x%llx: nothing mapped",
				 io->name, (unsigned long long)iova,
				 (unsigned long long)length);
	if (io->maps[first].iova < iova ||
	    io->maps[last - 1].iova + io->maps[last - 1].length > end)
		return vmig_fail(s, -EINVAL,
				 "dma unmap %s 0x%llx+0x%llx cuts through a "
				 "mapping",
				 io->name, (unsigned long long)iova,
				 (unsigned long long)length);

	if (!s->tracking) {
		ret = vmig_kernel_unmap(s, io, iova, length);
		if (ret < 0)
			return vmig_fail(s, ret,
					 "dma unmap %s 0x%llx+0x%llx: %s",
					 io->name, (unsigned long long)iova,
					 (unsigned long long)length,
					 vmig_strerror(ret));
		memmove(&io->maps[first], &io->maps[last],
			(io->nr_maps - last) * sizeof(*io->maps));
		io->nr_maps -= last - first;
		return 0;
	}
	/*
	 * While tracking, one run of touching mappings at a time: iommufd's
	 * GET_DIRTY_BITMAP stops at the first unmapped hole of its range and
	 * still returns success (shared docs/kernel-uapi.md 2.9), so a
	 * harvest over a range with holes would never read the mappings
	 * after the first hole. A run, not a mapping: one kernel mapping
	 * may be registered as several vmig mappings (VMIG_DMA_EXISTING),
	 * and the kernel refuses to unmap part of one (IOAS_UNMAP: ENOENT,
	 * 2.5; type1 refuses to split a mapping too). The records of a run
	 * go as soon as it is gone in the kernel, so that a failure half-way
	 * leaves vmig's records and the kernel's mappings alike.
	 */
	while (first < last) {
		const struct vmig_mapping_rec *m = &io->maps[first];
		uint64_t miova = m->iova, mlen = m->length;
		size_t n = 1;

		while (first + n < last &&
		       io->maps[first + n].iova == miova + mlen) {
			mlen += io->maps[first + n].length;
			n++;
		}
		ret = vmig_dirty_harvest_unmap(s, io->desc.id, miova, mlen);
		if (ret < 0)
			return vmig_fail(s, ret,
					 "dma unmap %s 0x%llx+0x%llx: the "
					 "mapping at 0x%llx+0x%llx: %s",
					 io->name, (unsigned long long)iova,
					 (unsigned long long)length,
					 (unsigned long long)miova,
					 (unsigned long long)mlen,
					 vmig_strerror(ret));
		memmove(&io->maps[first], &io->maps[first + n],
			(io->nr_maps - first - n) * sizeof(*io->maps));
		io->nr_maps -= n;
		last -= n;
	}
	return 0;
}

/* ------------------------------------------------------------------ */
/* Devices                                                             */

static struct vmig_device_rec *device_get(vmig_session *s, uint32_t id)
{
	if (id >= s->nr_devices || !s->devices[id]->present)
		return NULL;
	return s->devices[id];
}

int vmig_device_desc_fill(vmig_session *s, struct vmig_device_rec *dev)
{
	struct vmig_iommu_rec *io = s->iommus[dev->iommu];
	struct vmig_range *ranges;
	size_t i, n = 0;

	ranges = realloc(dev->ranges, (io->nr_maps ? io->nr_maps : 1) *
					      sizeof(*ranges));
	if (!ranges)
		return -ENOMEM;
	dev->ranges = ranges;
	for (i = 0; i < io->nr_maps; i++) {
		if (!(io->maps[i].flags & VMIG_DMA_WRITE))
			continue;
		/* Adjacent mappings make one range: fewer for the device. */
		if (n && ranges[n - 1].iova + ranges[n - 1].length ==
				 io->maps[i].iova) {
			ranges[n - 1].length += io->maps[i].length;
			continue;
		}
		ranges[n].iova = io->maps[i].iova;
		ranges[n].length = io->maps[i].length;
		n++;
	}
	if (dev->nr_pasids && !dev->pasid_descs) {
		dev->pasid_descs = calloc(dev->nr_pasids,
					  sizeof(*dev->pasid_descs));
		if (!dev->pasid_descs)
			return -ENOMEM;
	}
	for (i = 0; i < dev->nr_pasids; i++) {
		dev->pasid_descs[i].size = sizeof(dev->pasid_descs[i]);
		dev->pasid_descs[i].pasid = dev->pasids[i].pasid;
		dev->pasid_descs[i].iommu =
			&s->iommus[dev->pasids[i].iommu_id]->desc;
	}

	memset(&dev->desc, 0, sizeof(dev->desc));
	dev->desc.size = sizeof(dev->desc);
	dev->desc.id = dev->id;
	dev->desc.name = dev->name;
	dev->desc.address = dev->address;
	dev->desc.kind = dev->kind;
	dev->desc.device_fd = dev->device_fd;
	dev->desc.group_fd = dev->group_fd;
	dev->desc.iommufd_id = dev->iommufd_id;
	dev->desc.iommu = &io->desc;
	dev->desc.ranges = ranges;
	dev->desc.nr_ranges = (uint32_t)n;
	dev->desc.nr_pasids = dev->nr_pasids;
	dev->desc.pasids = dev->pasid_descs;
	return 0;
}

static int device_add(vmig_session *s, const struct vmig_device *d,
		      uint32_t *out_id);

struct add_args {
	const struct vmig_device *d;
	uint32_t *out_id;
};

static int device_add_call(vmig_session *s, void *arg)
{
	const struct add_args *a = arg;

	return device_add(s, a->d, a->out_id);
}

VMIG_API int vmig_device_add(vmig_session *s, const struct vmig_device *d,
			     uint32_t *out_id)
{
	struct add_args a = { d, out_id };

	if (!s)
		return -EINVAL;
	return vmig_engine_call(s, device_add_call, &a);
}

static int device_add(vmig_session *s, const struct vmig_device *d,
		      uint32_t *out_id)
{
	struct vmig_device_rec **arr, *dev;
	size_t i;
	int ret;

	if (!s)
		return -EINVAL;
	if (!d || d->size < offsetof(struct vmig_device, pasids) +
				    sizeof(d->pasids))
		return vmig_fail(s, -EINVAL, "device: size field too small");
	if (!d->name || !*d->name)
		return vmig_fail(s, -EINVAL, "device: empty name");
	if (d->kind != VMIG_DEVICE_VFIO_PCI && d->kind != VMIG_DEVICE_MDEV)
		return vmig_fail(s, -EINVAL, "device %s: unknown kind %u",
				 d->name, d->kind);
	if (!iommu_get(s, d->iommu_id))
		return vmig_fail(s, -ENOENT,
				 "device %s: no address space %u", d->name,
				 d->iommu_id);
	if (d->nr_pasids && !d->pasids)
		return vmig_fail(s, -EINVAL, "device %s: no PASID table",
				 d->name);
	for (i = 0; i < d->nr_pasids; i++) {
		if (!iommu_get(s, d->pasids[i].iommu_id))
			return vmig_fail(s, -ENOENT,
					 "device %s: PASID %u: no address "
					 "space %u",
					 d->name, d->pasids[i].pasid,
					 d->pasids[i].iommu_id);
	}
	for (i = 0; i < s->nr_devices; i++) {
		if (s->devices[i]->present &&
		    !strcmp(s->devices[i]->name, d->name))
			return vmig_fail(s, -EEXIST,
					 "device %s: the name is taken",
					 d->name);
	}
	if (s->tracking && s->hotplug == VMIG_HOTPLUG_POLICY_REJECT)
		return vmig_fail(s, -EBUSY,
				 "device %s: hot-plug during migration is "
				 "rejected by policy",
				 d->name);

	arr = realloc(s->devices, (s->nr_devices + 1) * sizeof(*arr));
	if (!arr)
		return -ENOMEM;
	s->devices = arr;
	dev = calloc(1, sizeof(*dev));
	if (!dev)
		return -ENOMEM;
	dev->id = (uint32_t)s->nr_devices;
	dev->present = true;
	dev->name = strdup(d->name);
	dev->address = strdup(d->address ? d->address : d->name);
	dev->kind = d->kind;
	dev->iommu = d->iommu_id;
	dev->device_fd = d->device_fd;
	dev->group_fd = d->group_fd;
	dev->iommufd_id = d->iommufd_id;
	dev->source = VMIG_SOURCE_NONE;
	dev->nr_pasids = d->nr_pasids;
	if (d->nr_pasids) {
		dev->pasids = malloc(d->nr_pasids * sizeof(*dev->pasids));
		if (dev->pasids)
			memcpy(dev->pasids, d->pasids,
			       d->nr_pasids * sizeof(*dev->pasids));
	}
	if (!dev->name || !dev->address || (d->nr_pasids && !dev->pasids)) {
		device_free(s, dev);
		return -ENOMEM;
	}
	arr[s->nr_devices++] = dev;

	if (s->tracking) {
		/*
		 * Whatever it wrote before now is unknown: everything it can
		 * reach is dirty once, then its source takes over.
		 */
		dev->hotplugged = true;
		vmig_dirty_mark_space(s, dev->iommu);
		for (i = 0; i < dev->nr_pasids; i++)
			vmig_dirty_mark_space(s, dev->pasids[i].iommu_id);
		ret = vmig_arbiter_assign(s, dev);
		if (ret < 0) {
			s->nr_devices--;
			device_free(s, dev);
			return vmig_fail(s, ret, "device %s: %s", d->name,
					 vmig_strerror(ret));
		}
	}
	if (out_id)
		*out_id = dev->id;
	return 0;
}

static int device_remove(vmig_session *s, void *arg);

VMIG_API int vmig_device_remove(vmig_session *s, uint32_t id)
{
	if (!s)
		return -EINVAL;
	return vmig_engine_call(s, device_remove, &id);
}

static int device_remove(vmig_session *s, void *arg)
{
	uint32_t id = *(uint32_t *)arg;
	struct vmig_device_rec *dev;

	if (!s)
		return -EINVAL;
	dev = device_get(s, id);
	if (!dev)
		return vmig_fail(s, -ENOENT, "device %u: no such device", id);
	/*
	 * Its state is part of the stream the destination expects: it
	 * cannot leave in the middle (one without state can).
	 */
	if (dev->mig_state && vmig_engine_running(s))
		return vmig_fail(s, -EBUSY,
				 "device %s: its VFIO migration state is being "
				 "migrated; unplug it before or after",
				 dev->name);
	/*
	 * The stopped device's handle is kept on its fd until the outcome
	 * is settled: vmig_resolve() may still bring it back to RUNNING.
	 */
	if (vmig_engine_holds_device(s, dev->id))
		return vmig_fail(s, -EBUSY,
				 "device %s: it stays stopped for the "
				 "unresolved migration (its VFIO state is "
				 "held); unplug it after vmig_resolve()",
				 dev->name);
	if (s->tracking) {
		vmig_dirty_harvest_device(s, dev);
		vmig_arbiter_release(s, dev);
	}
	dev->present = false;
	vmig_arbiter_device_gone(s, dev);
	if (dev->owned_fd)
		close_owned(s, &dev->device_fd);
	return 0;
}

VMIG_API int vmig_device_status(vmig_session *s, uint32_t id,
				struct vmig_device_status *out)
{
	struct vmig_device_rec *dev;
	const char *name = "";

	if (!s)
		return -EINVAL;
	dev = device_get(s, id);
	if (!dev)
		return vmig_fail(s, -ENOENT, "device %u: no such device", id);
	if (!out || out->size < sizeof(*out))
		return vmig_fail(s, -EINVAL, "device status: size too small");

	if (dev->source >= 0) {
		struct vmig_source_rec *src = &s->sources[dev->source];
		struct vmig_probe p;

		name = src->name;
		/* The precision may have changed since the probe. */
		if (vmig_src_status(src, dev->id, &p) == 0 &&
		    p.precision != VMIG_PRECISION_NONE) {
			dev->precision = p.precision;
			if (p.reason[0])
				snprintf(dev->reason, sizeof(dev->reason),
					 "%s", p.reason);
		}
	} else if (dev->source == VMIG_SOURCE_FALLBACK) {
		name = VMIG_FALLBACK_NAME;
	}
	out->precision = dev->source == VMIG_SOURCE_NONE ? VMIG_PRECISION_NONE
							 : dev->precision;
	snprintf(out->source, sizeof(out->source), "%s", name);
	snprintf(out->reason, sizeof(out->reason), "%s", dev->reason);
	return 0;
}
