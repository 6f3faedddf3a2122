/*
 * setup.c: applying a configuration to a fresh session
 * (vmig_session_configure).
 *
 * A configuration (config.c has already validated it) describes what a
 * VMM would otherwise register through the C API: plugins, guest memory,
 * the kernel to talk to (the real one, or a simulated one that setup
 * creates), the VFIO containers, groups, iommufd IOASes and device fds to
 * open, and the DMA mappings to make. Every error names the configuration
 * key it comes from.
 */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

#include "config.h"
#include "core/engine.h"
#include "core/internal.h"
#include <vmig/linux-uapi.h>
#include "ksim/ksim.h"
#include "tool.h"

static const char *const default_plugins[] = {
	"iommufd",
	"device-dirty",
	"vfio-type1",
};

/* An address space the configuration names, opened once. */
struct space {
	enum vmig_cfg_iommu_type type;
	const char *label;
	uint32_t id; /* vmig's id once registered */
};

struct setup {
	vmig_session *s;
	bool named_enomem; /* an -ENOMEM whose message says more */
	struct vmig_tool_state *tst;
	const struct vmig_config *cfg;
	struct space *spaces;
	size_t nr_spaces;
	int iommufd; /* shared by every IOAS, -1 until opened */
};

static int kopen(vmig_session *s, const char *path, int flags)
{
	return s->kernel.open(s->kernel.kctx, path, flags);
}

static int kioctl(vmig_session *s, int fd, unsigned long req, void *arg)
{
	return s->kernel.ioctl(s->kernel.kctx, fd, req, arg);
}

static int own_fd(struct vmig_iommu_rec *io, int fd)
{
	int *p = realloc(io->owned_fds, (io->nr_owned_fds + 1) * sizeof(*p));

	if (!p)
		return -ENOMEM;
	io->owned_fds = p;
	io->owned_fds[io->nr_owned_fds++] = fd;
	return 0;
}

static struct space *space_find(struct setup *st,
				enum vmig_cfg_iommu_type type,
				const char *label)
{
	size_t i;

	for (i = 0; i < st->nr_spaces; i++) {
		if (st->spaces[i].type == type &&
		    !strcmp(st->spaces[i].label, label))
			return &st->spaces[i];
	}
	return NULL;
}

/* Opens a type1 container for a label. */
static int open_container(struct setup *st, const char *label,
			  struct space *sp)
{
	vmig_session *s = st->s;
	struct vmig_iommu io = {
		.size = sizeof(io),
		.kind = VMIG_IOMMU_TYPE1,
		.name = label,
	};
	int fd, ret;

	fd = kopen(s, "/dev/vfio/vfio", O_RDWR);
	if (fd < 0)
		return tool_fail(s, fd, "container \"%s\": /dev/vfio/vfio: %s",
				 label, vmig_strerror(fd));
	io.fd = fd;
	ret = vmig_iommu_add(s, &io, &sp->id);
	if (ret < 0) {
		s->kernel.close(s->kernel.kctx, fd);
		return ret;
	}
	s->iommus[sp->id]->owned_fd = true;
	return 0;
}

/* Opens /dev/iommu once and allocates an IOAS for a label. */
static int open_ioas(struct setup *st, const char *label, struct space *sp)
{
	vmig_session *s = st->s;
	struct vk_iommu_ioas_alloc alloc = { .size = sizeof(alloc) };
	struct vmig_iommu io = {
		.size = sizeof(io),
		.kind = VMIG_IOMMU_IOMMUFD,
		.name = label,
	};
	bool first = st->iommufd < 0;
	int ret;

	if (first) {
		ret = kopen(s, "/dev/iommu", O_RDWR);
		if (ret < 0)
			return tool_fail(s, ret, "ioas \"%s\": /dev/iommu: %s",
					 label, vmig_strerror(ret));
		st->iommufd = ret;
	}
	ret = kioctl(s, st->iommufd, VK_IOMMU_IOAS_ALLOC, &alloc);
	if (ret < 0) {
		if (first) {
			s->kernel.close(s->kernel.kctx, st->iommufd);
			st->iommufd = -1;
		}
		return tool_fail(s, ret, "ioas \"%s\": IOMMU_IOAS_ALLOC: %s",
				 label, vmig_strerror(ret));
	}
	io.fd = st->iommufd;
	io.ioas_id = alloc.out_ioas_id;
	ret = vmig_iommu_add(s, &io, &sp->id);
	if (ret < 0) {
		if (first) {
			s->kernel.close(s->kernel.kctx, st->iommufd);
			st->iommufd = -1;
		}
		return ret;
	}
	/* The first IOAS record owns the fd all of them share. */
	s->iommus[sp->id]->owned_fd = first;
	return 0;
}

static int space_get(struct setup *st, enum vmig_cfg_iommu_type type,
		     const char *label, struct space **out)
{
	struct space *sp = space_find(st, type, label), *arr;
	int ret;

	if (sp) {
		*out = sp;
		return 0;
	}
	arr = realloc(st->spaces, (st->nr_spaces + 1) * sizeof(*arr));
	if (!arr)
		return -ENOMEM;
	st->spaces = arr;
	sp = &arr[st->nr_spaces];
	sp->type = type;
	sp->label = label;
	ret = type == VMIG_CFG_IOMMU_TYPE1 ? open_container(st, label, sp)
					   : open_ioas(st, label, sp);
	if (ret < 0)
		return ret;
	st->nr_spaces++;
	*out = sp;
	return 0;
}

/*
 * Puts a type1 device's group into its container (the first group sets
 * the IOMMU type) and opens the device. Groups stay open for the
 * session; devices sharing a group share its fd.
 */
static int open_type1_device(struct setup *st, size_t idx,
			     struct vmig_device *d, struct space *sp)
{
	vmig_session *s = st->s;
	const struct vmig_cfg_device *cd = &st->cfg->devices[idx];
	struct vmig_iommu_rec *io = s->iommus[sp->id];
	struct vfio_group_status status = { .argsz = sizeof(status) };
	char path[64];
	size_t i;
	int gfd = -1, ret, cfd = io->desc.fd;

	for (i = 0; i < idx; i++) {
		const struct vmig_cfg_device *o = &st->cfg->devices[i];

		if (o->iommu == VMIG_CFG_IOMMU_TYPE1 && o->group == cd->group) {
			gfd = s->devices[i]->group_fd;
			break;
		}
	}
	if (gfd < 0) {
		snprintf(path, sizeof(path), "/dev/vfio/%d", cd->group);
		gfd = kopen(s, path, O_RDWR);
		if (gfd < 0)
			return tool_fail(s, gfd, "devices[%zu].group: %s: %s",
					 idx, path, vmig_strerror(gfd));
		ret = own_fd(io, gfd);
		if (ret < 0) {
			s->kernel.close(s->kernel.kctx, gfd);
			return ret;
		}
		ret = kioctl(s, gfd, VFIO_GROUP_GET_STATUS, &status);
		if (ret < 0)
			return tool_fail(s, ret,
					 "devices[%zu].group: group %d: "
					 "VFIO_GROUP_GET_STATUS: %s",
					 idx, cd->group, vmig_strerror(ret));
		if (!(status.flags & VFIO_GROUP_FLAGS_VIABLE))
			return tool_fail(s, -EPERM,
					 "devices[%zu].group: group %d is not "
					 "viable (every device in it must be "
					 "bound to vfio)",
					 idx, cd->group);
		ret = kioctl(s, gfd, VFIO_GROUP_SET_CONTAINER, &cfd);
		if (ret < 0)
			return tool_fail(s, ret,
					 "devices[%zu].group: group %d into "
					 "container \"%s\": %s",
					 idx, cd->group, cd->container,
					 vmig_strerror(ret));
		if (io->nr_owned_fds == 1) {
			ret = kioctl(s, cfd, VFIO_CHECK_EXTENSION,
				     (void *)(uintptr_t)VFIO_TYPE1v2_IOMMU);
			if (ret <= 0)
				return tool_fail(s, ret < 0 ? ret : -ENODEV,
						 "devices[%zu]: container \"%s\" "
						 "has no VFIO type1v2 IOMMU",
						 idx, cd->container);
			ret = kioctl(s, cfd, VFIO_SET_IOMMU,
				     (void *)(uintptr_t)VFIO_TYPE1v2_IOMMU);
			if (ret < 0)
				return tool_fail(s, ret,
						 "devices[%zu]: container \"%s\": "
						 "VFIO_SET_IOMMU: %s",
						 idx, cd->container,
						 vmig_strerror(ret));
		}
	}
	ret = kioctl(s, gfd, VFIO_GROUP_GET_DEVICE_FD, cd->address);
	if (ret < 0)
		return tool_fail(s, ret,
				 "devices[%zu].address: \"%s\" in group %d: %s",
				 idx, cd->address, cd->group,
				 vmig_strerror(ret));
	d->group_fd = gfd;
	d->device_fd = ret;
	return 0;
}

/* Opens an iommufd device cdev, binds it and attaches it to its IOAS. */
static int open_iommufd_device(struct setup *st, size_t idx,
			       struct vmig_device *d, struct space *sp)
{
	vmig_session *s = st->s;
	const struct vmig_cfg_device *cd = &st->cfg->devices[idx];
	struct vmig_iommu_rec *io = s->iommus[sp->id];
	struct vk_vfio_device_bind_iommufd bind = {
		.argsz = sizeof(bind),
		.iommufd = io->desc.fd,
	};
	struct vk_vfio_device_attach_iommufd_pt attach = {
		.argsz = sizeof(attach),
		.pt_id = io->desc.ioas_id,
	};
	int fd, ret;

	fd = kopen(s, cd->cdev, O_RDWR);
	if (fd < 0)
		return tool_fail(s, fd, "devices[%zu].cdev: %s: %s", idx,
				 cd->cdev, vmig_strerror(fd));
	d->device_fd = fd;
	ret = kioctl(s, fd, VK_VFIO_DEVICE_BIND_IOMMUFD, &bind);
	if (ret < 0)
		goto fail;
	ret = kioctl(s, fd, VK_VFIO_DEVICE_ATTACH_IOMMUFD_PT, &attach);
	if (ret < 0)
		goto fail;
	d->iommufd_id = bind.out_devid;
	return 0;
fail:
	s->kernel.close(s->kernel.kctx, fd);
	d->device_fd = -1;
	return tool_fail(s, ret, "devices[%zu].cdev: %s: %s", idx, cd->cdev,
			 ret == -ENOTTY ? "not a VFIO device cdev"
					: vmig_strerror(ret));
}

static int setup_kernel(struct setup *st)
{
	vmig_session *s = st->s;
	const struct vmig_cfg_kernel *kc = &st->cfg->kernel;
	struct ksim_params kp = {
		.type1_pgsize = kc->type1_pgsize,
		.iommufd_compat = kc->iommufd_compat,
	};
	size_t i, j;
	int ret;

	if (kc->type != VMIG_KERNEL_SIMULATED)
		return 0;
	ret = ksim_new(&kp, &st->tst->ksim);
	if (ret < 0)
		return tool_fail(s, ret, "kernel: cannot create the simulator");
	for (i = 0; i < st->cfg->nr_devices; i++) {
		const struct vmig_cfg_device *cd = &st->cfg->devices[i];
		const struct vmig_cfg_sim_device *sd = NULL;
		struct ksim_device_params dp = { 0 };

		for (j = 0; j < kc->nr_devices; j++) {
			if (!strcmp(kc->devices[j].name, cd->name))
				sd = &kc->devices[j];
		}
		if (!sd)
			return tool_fail(s, VMIG_ECONFIG,
					 "kernel.devices: no simulated device "
					 "for devices[%zu] \"%s\"",
					 i, cd->name);
		dp.name = cd->address;
		dp.kind = cd->kind == VMIG_DEVICE_MDEV ? KSIM_DEV_MDEV
						      : KSIM_DEV_PCI;
		dp.group = cd->iommu == VMIG_CFG_IOMMU_TYPE1 ? cd->group : -1;
		dp.pins_pages = sd->pins_pages;
		dp.dma = sd->dma;
		dp.feature = sd->feature;
		dp.iommufd = sd->iommufd;
		dp.iommufd.dirty_tracking = sd->iommu_dirty_tracking;
		if (cd->iommu == VMIG_CFG_IOMMU_IOMMUFD) {
			unsigned int n;
			char end;

			/* The simulator numbers its cdevs like the kernel. */
			if (sscanf(cd->cdev, "/dev/vfio/devices/vfio%u%c", &n,
				   &end) != 1)
				return tool_fail(s, VMIG_ECONFIG,
						 "devices[%zu].cdev: the simulated "
						 "kernel has /dev/vfio/devices/"
						 "vfio<N> only, not %s",
						 i, cd->cdev);
			dp.iommufd.cdev = true;
			dp.iommufd.cdev_index = n;
		}
		ret = ksim_device_add(st->tst->ksim, &dp, NULL);
		if (ret < 0)
			return tool_fail(s, ret,
					 "kernel.devices: simulated device for "
					 "devices[%zu] \"%s\": %s",
					 i, cd->name, vmig_strerror(ret));
	}
	if (kc->pasid_attach)
		ksim_iommufd_set_pasid_attach(st->tst->ksim, true);
	/* The session's kernel is the simulator from now on. */
	memcpy(&s->kernel, ksim_host(st->tst->ksim),
	       offsetof(struct vmig_host, log));
	s->kernel.size = sizeof(s->kernel);
	s->kernel.ctx = NULL;
	s->kernel_name = "simulated";
	return 0;
}

static int setup_plugins(struct setup *st)
{
	vmig_session *s = st->s;
	const struct vmig_config *cfg = st->cfg;
	size_t i;
	int ret;

	for (i = 0; i < cfg->nr_plugin_paths; i++) {
		ret = vmig_plugin_add_path(s, cfg->plugin_paths[i]);
		if (ret < 0)
			return ret;
	}
	if (cfg->plugins_given) {
		for (i = 0; i < cfg->nr_plugins; i++) {
			ret = vmig_plugin_load(s, cfg->plugins[i]);
			if (ret < 0)
				return tool_fail(s, ret, "plugins.load[%zu]: %s",
						 i, vmig_errmsg(s));
		}
	} else {
		/* The default set: each one that is installed. */
		for (i = 0; i < sizeof(default_plugins) /
					sizeof(default_plugins[0]);
		     i++) {
			ret = vmig_plugin_load(s, default_plugins[i]);
			if (ret == -ENOENT) {
				tool_logf(s, VMIG_LOG_INFO,
					  "plugin %s is not installed",
					  default_plugins[i]);
				continue;
			}
			if (ret < 0)
				return tool_fail(s, ret, "plugins: %s",
						 vmig_errmsg(s));
		}
	}
	if (cfg->preference) {
		ret = vmig_set_preference(s,
					  (const char *const *)cfg->preference,
					  cfg->nr_preference);
		if (ret < 0)
			return tool_fail(s, ret, "preference: %s",
					 vmig_errmsg(s));
	}
	return 0;
}

/* vmig_configure_interrupt() was called (from any thread). */
static bool configure_interrupted;

void vmig_configure_interrupt(void)
{
	__atomic_store_n(&configure_interrupted, true, __ATOMIC_RELEASE);
}

static bool interrupted(void)
{
	return __atomic_load_n(&configure_interrupted, __ATOMIC_ACQUIRE);
}

#define FILL_CHUNK (64ull << 20) /* bytes between interrupt checks */

/*
 * "fill": "random": bytes no page of which is zero, the same for the same
 * gpa on every run (xorshift64, seeded by the region's gpa). False when
 * interrupted.
 */
static bool fill_random(uint8_t *p, uint64_t len, uint64_t gpa)
{
	uint64_t x = gpa ^ 0x9E3779B97F4A7C15ull, i;

	for (i = 0; i + 8 <= len; i += 8) {
		if (!(i % FILL_CHUNK) && interrupted())
			return false;
		x ^= x << 13;
		x ^= x >> 7;
		x ^= x << 17;
		memcpy(p + i, &x, 8);
	}
	return true;
}

#define HUGE_2M (2ull << 20)

/*
 * A 2 MiB-aligned reservation of len bytes (no access yet): huge pages
 * can back it from its first byte. MAP_FAILED on failure (errno set).
 */
static void *reserve_aligned(uint64_t len)
{
	uint8_t *p, *a;
	uint64_t head;

	p = mmap(NULL, len + HUGE_2M, PROT_NONE,
		 MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0);
	if (p == MAP_FAILED)
		return MAP_FAILED;
	a = (uint8_t *)(((uintptr_t)p + HUGE_2M - 1) & ~(uintptr_t)(HUGE_2M - 1));
	head = (uint64_t)(a - p);
	if (head)
		munmap(p, head);
	munmap(a + len, HUGE_2M - head);
	return a;
}

/*
 * Maps a region's memory as a VMM would: 2 MiB-aligned, anonymous (THP
 * advised), a memfd (shared, THP advised) or a hugetlbfs memfd, whose fd
 * comes back in *mfd_out (the session's, to find its holes with), else
 * -1. NULL with *err set.
 */
static void *map_region(const struct vmig_cfg_region *cr, int *err,
			const char **what, int *mfd_out)
{
	unsigned int mfd = MFD_CLOEXEC;
	void *a, *p;
	int fd, flags = MAP_SHARED | MAP_FIXED;

	*mfd_out = -1;
	a = reserve_aligned(cr->size);
	if (a == MAP_FAILED) {
		*err = -errno;
		*what = "cannot reserve";
		return NULL;
	}
	if (cr->backing == VMIG_CFG_BACKING_ANONYMOUS) {
		/* Lazily backed: untouched guest pages cost nothing. */
		p = mmap(a, cr->size, PROT_READ | PROT_WRITE,
			 MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE |
				 MAP_FIXED,
			 -1, 0);
		if (p == MAP_FAILED) {
			*err = -errno;
			*what = "cannot map";
			munmap(a, cr->size);
			return NULL;
		}
		/* Fewer faults, and no 4 KiB page tables to walk. */
		madvise(p, cr->size, MADV_HUGEPAGE);
		return p;
	}
	if (cr->backing == VMIG_CFG_BACKING_HUGETLBFS)
		mfd |= MFD_HUGETLB;
	else
		flags |= MAP_NORESERVE;
	fd = memfd_create(cr->name, mfd);
	if (fd < 0 || ftruncate(fd, (off_t)cr->size) < 0) {
		*err = -errno;
		*what = fd < 0 ? "cannot create the memfd for" : "cannot size";
		if (fd >= 0)
			close(fd);
		munmap(a, cr->size);
		return NULL;
	}
	/* hugetlbfs reserves its pages here: none left fails now. */
	p = mmap(a, cr->size, PROT_READ | PROT_WRITE, flags, fd, 0);
	*err = p == MAP_FAILED ? -errno : 0;
	if (p == MAP_FAILED) {
		close(fd);
		*what = "cannot map";
		munmap(a, cr->size);
		return NULL;
	}
	*mfd_out = fd;
	if (cr->backing == VMIG_CFG_BACKING_MEMFD)
		madvise(p, cr->size, MADV_HUGEPAGE);
	return p;
}

static int setup_memory(struct setup *st)
{
	vmig_session *s = st->s;
	size_t i;
	int ret;

	for (i = 0; i < st->cfg->nr_regions; i++) {
		const struct vmig_cfg_region *cr = &st->cfg->regions[i];
		struct vmig_region r = {
			.size = sizeof(r),
			.name = cr->name,
			.gpa = cr->gpa,
			.length = cr->size,
			.fd = -1,
		};
		static const char *const backing[] = {
			"anonymous", "memfd", "hugetlbfs",
		};
		const char *what = "";
		void *p;
		int err = 0, mfd;

		p = map_region(cr, &err, &what, &mfd);
		st->named_enomem = err == -ENOMEM;
		if (!p)
			return tool_fail(s, err,
					 "memory[%zu]: %s %llu bytes of %s "
					 "memory: %s%s",
					 i, what, (unsigned long long)cr->size,
					 backing[cr->backing], vmig_strerror(err),
					 cr->backing ==
							 VMIG_CFG_BACKING_HUGETLBFS
						 ? " (are enough 2 MiB pages "
						   "reserved? "
						   "/proc/sys/vm/nr_hugepages)"
						 : "");
		if (cr->fill == VMIG_CFG_FILL_RANDOM &&
		    !fill_random(p, cr->fill_size ? cr->fill_size : cr->size,
				 cr->gpa)) {
			munmap(p, cr->size);
			if (mfd >= 0)
				close(mfd);
			return tool_fail(s, -ECANCELED,
					 "memory[%zu]: configuring was "
					 "interrupted",
					 i);
		}
		if (cr->fill != VMIG_CFG_FILL_RANDOM)
			/* Nothing wrote it: a destination skips zero pages. */
			r.flags |= VMIG_REGION_FRESH;
		/*
		 * What never-written memory looks like to the source: its
		 * memfd's holes, or pagemap's for private anonymous memory.
		 */
		r.fd = mfd;
		if (cr->backing == VMIG_CFG_BACKING_ANONYMOUS)
			r.flags |= VMIG_REGION_ANON_PRIVATE;
		r.hva = p;
		ret = vmig_region_add(s, &r, NULL);
		if (ret < 0) {
			if (mfd >= 0)
				close(mfd);
			munmap(p, cr->size);
			return tool_fail(s, ret, "memory[%zu]: %s", i,
					 vmig_errmsg(s));
		}
		s->regions[s->nr_regions - 1].owned = true;
	}
	return 0;
}

static int setup_mappings(struct setup *st)
{
	vmig_session *s = st->s;
	const struct vmig_config *cfg = st->cfg;
	size_t i, j;
	int ret;

	if (!cfg->nr_mappings) {
		/* Identity: every region at IOVA = GPA in every space. */
		for (i = 0; i < st->nr_spaces; i++) {
			for (j = 0; j < s->nr_regions; j++) {
				struct vmig_dma_map m = {
					.size = sizeof(m),
					.flags = VMIG_DMA_READ | VMIG_DMA_WRITE,
					.iommu_id = st->spaces[i].id,
					.iova = s->regions[j].gpa,
					.length = s->regions[j].length,
					.gpa = s->regions[j].gpa,
				};

				ret = vmig_dma_map(s, &m);
				if (ret < 0)
					return tool_fail(s, ret,
							 "dma_mappings (identity) "
							 "of memory[%zu] into "
							 "\"%s\": %s",
							 j, st->spaces[i].label,
							 vmig_errmsg(s));
			}
		}
		return 0;
	}
	for (i = 0; i < cfg->nr_mappings; i++) {
		const struct vmig_cfg_mapping *cm = &cfg->mappings[i];
		struct space *sp = space_find(st, VMIG_CFG_IOMMU_TYPE1,
					      cm->space);
		struct vmig_dma_map m = {
			.size = sizeof(m),
			.flags = VMIG_DMA_READ |
				 (cm->write ? VMIG_DMA_WRITE : 0),
			.iova = cm->iova,
			.length = cm->size,
			.gpa = cm->gpa,
		};

		if (!sp)
			sp = space_find(st, VMIG_CFG_IOMMU_IOMMUFD, cm->space);
		if (!sp)
			return tool_fail(s, VMIG_ECONFIG,
					 "dma_mappings[%zu].space: no container "
					 "or IOAS \"%s\"",
					 i, cm->space);
		m.iommu_id = sp->id;
		ret = vmig_dma_map(s, &m);
		if (ret < 0)
			return tool_fail(s, ret, "dma_mappings[%zu]: %s", i,
					 vmig_errmsg(s));
	}
	return 0;
}

static int setup_devices(struct setup *st)
{
	vmig_session *s = st->s;
	const struct vmig_config *cfg = st->cfg;
	size_t i, j;
	int ret;

	for (i = 0; i < cfg->nr_devices; i++) {
		const struct vmig_cfg_device *cd = &cfg->devices[i];
		struct vmig_pasid *pasids = NULL;
		struct vmig_device d = {
			.size = sizeof(d),
			.kind = cd->kind,
			.name = cd->name,
			.address = cd->address,
			.device_fd = -1,
			.group_fd = -1,
		};
		struct space *sp;

		ret = space_get(st, cd->iommu,
				cd->iommu == VMIG_CFG_IOMMU_TYPE1 ? cd->container
								  : cd->ioas,
				&sp);
		if (ret < 0)
			return ret;
		d.iommu_id = sp->id;
		ret = cd->iommu == VMIG_CFG_IOMMU_TYPE1
			      ? open_type1_device(st, i, &d, sp)
			      : open_iommufd_device(st, i, &d, sp);
		if (ret < 0)
			return ret;
		if (cd->nr_pasids) {
			pasids = calloc(cd->nr_pasids, sizeof(*pasids));
			if (!pasids)
				ret = -ENOMEM;
		}
		for (j = 0; ret == 0 && j < cd->nr_pasids; j++) {
			struct vk_vfio_device_attach_iommufd_pt_pasid at = {
				.argsz = sizeof(at),
				.flags = VK_VFIO_DEVICE_ATTACH_PASID,
				.pasid = cd->pasids[j].pasid,
			};
			struct space *ps;

			ret = space_get(st, VMIG_CFG_IOMMU_IOMMUFD,
					cd->pasids[j].ioas, &ps);
			if (ret < 0)
				break;
			pasids[j].pasid = cd->pasids[j].pasid;
			pasids[j].iommu_id = ps->id;
			/* Kernels before 6.13 have no PASID attach: EINVAL. */
			at.pt_id = s->iommus[ps->id]->desc.ioas_id;
			ret = kioctl(s, d.device_fd,
				     VK_VFIO_DEVICE_ATTACH_IOMMUFD_PT, &at);
			if (ret < 0)
				ret = tool_fail(s, ret,
						"devices[%zu].pasids[%zu]: attach "
						"of PASID %u: %s%s",
						i, j, at.pasid,
						vmig_strerror(ret),
						ret == -EINVAL
							? " (this kernel has no "
							  "PASID attach)"
							: "");
		}
		d.pasids = pasids;
		d.nr_pasids = (uint32_t)cd->nr_pasids;
		if (ret == 0)
			ret = vmig_device_add(s, &d, NULL);
		free(pasids);
		if (ret < 0) {
			if (d.device_fd >= 0)
				s->kernel.close(s->kernel.kctx, d.device_fd);
			return tool_fail(s, ret, "devices[%zu] \"%s\": %s", i,
					 cd->name, vmig_errmsg(s));
		}
		s->devices[s->nr_devices - 1]->owned_fd = true;
	}
	return 0;
}

/* Pins and injected failures of the simulated kernel, last of all. */
static int setup_simulation(struct setup *st)
{
	vmig_session *s = st->s;
	const struct vmig_cfg_kernel *kc = &st->cfg->kernel;
	size_t i, j;
	int ret;

	if (!st->tst->ksim)
		return 0;
	for (i = 0; i < kc->nr_devices; i++) {
		const struct vmig_cfg_sim_device *sd = &kc->devices[i];
		struct ksim_device *kd;

		if (!sd->pin_pages)
			continue;
		for (j = 0; j < st->cfg->nr_devices; j++) {
			if (!strcmp(st->cfg->devices[j].name, sd->name))
				break;
		}
		kd = ksim_device_find(st->tst->ksim,
				      st->cfg->devices[j].address);
		ret = kd ? ksim_pin(kd, sd->pin_iova, sd->pin_pages) : -ENOENT;
		if (ret < 0)
			return tool_fail(s, ret, "kernel.devices[%zu].pin: %s",
					 i, vmig_strerror(ret));
	}
	for (i = 0; i < kc->nr_faults; i++) {
		const struct vmig_cfg_fault *f = &kc->faults[i];

		if (f->nth)
			ksim_fail_nth(st->tst->ksim, f->nth, f->err);
		else
			ksim_fail_request(st->tst->ksim, f->request, f->err,
					  f->times);
	}
	return 0;
}

/* The policies, and what a run needs later: the tool's state. */
static int setup_run(struct setup *st)
{
	vmig_session *s = st->s;
	const struct vmig_config *cfg = st->cfg;
	struct vmig_tool_state *tst = st->tst;
	struct vmig_policies p = {
		.size = sizeof(p),
		.hotplug = (uint32_t)cfg->policies.hotplug,
		.downtime_limit_ms = cfg->policies.downtime_limit_ms,
		.bandwidth_limit = cfg->policies.bandwidth_limit,
		.max_iterations = cfg->policies.max_iterations,
		.timeout_strategy = (uint32_t)cfg->policies.timeout_strategy,
		.timeout_ms = cfg->policies.timeout_ms,
		.tracking = (uint32_t)cfg->policies.tracking,
		.switchover_timeout_ms = cfg->policies.switchover_timeout_ms,
		.handshake_timeout_ms = cfg->policies.handshake_timeout_ms,
		.idle_timeout_ms = cfg->policies.idle_timeout_ms,
		.verify = (uint32_t)cfg->policies.verify,
		.connections = cfg->policies.connections,
	};

	if (vmig_set_policies(s, &p) < 0)
		return tool_fail(s, VMIG_ECONFIG, "policies: %s",
				      vmig_errmsg(s));
	tst->run_iterations = cfg->run.iterations;
	tst->run_track_only = cfg->run.track_only;
	tst->local = cfg->local;
	if (cfg->report && !(tst->report_path = strdup(cfg->report)))
		return -ENOMEM;
	if (cfg->transport) {
		tst->transport = strdup(cfg->transport);
		/* vmig_listen(s, NULL) binds it too. */
		s->engine->transport = strdup(cfg->transport);
		if (!tst->transport || !s->engine->transport)
			return -ENOMEM;
	}
	if (cfg->text) {
		tst->config_text = malloc(cfg->text_len + 1);
		if (!tst->config_text)
			return -ENOMEM;
		memcpy(tst->config_text, cfg->text, cfg->text_len);
		tst->config_text[cfg->text_len] = '\0';
		tst->config_len = cfg->text_len;
	}
	if (cfg->base_dir && !(tst->config_base = strdup(cfg->base_dir)))
		return -ENOMEM;
	return 0;
}

int vmig_session_configure(vmig_session *s, const vmig_config *cfg)
{
	struct setup st = { .s = s, .cfg = cfg, .iommufd = -1 };
	int ret;

	if (!s)
		return -EINVAL;
	if (!cfg)
		return tool_fail(s, -EINVAL,
				      "configure: no configuration");
	if (vmig_tool_state(s, false) || s->tracking || s->nr_regions ||
	    s->nr_iommus || s->nr_devices)
		return tool_fail(s, -EBUSY,
				      "configure: the session is not fresh");
	st.tst = vmig_tool_state(s, true);
	if (!st.tst)
		return tool_fail(s, -ENOMEM, "configure: out of memory");
	s->role = cfg->role;
	if (interrupted())
		return tool_fail(s, -ECANCELED, "configure: interrupted");
	ret = setup_run(&st);
	if (ret == 0)
		ret = setup_kernel(&st);
	if (ret == 0)
		ret = setup_plugins(&st);
	if (ret == 0)
		ret = setup_memory(&st);
	if (ret == 0)
		ret = setup_devices(&st);
	if (ret == 0)
		ret = setup_mappings(&st);
	if (ret == 0)
		ret = setup_simulation(&st);
	free(st.spaces);
	if (ret == -ENOMEM && !st.named_enomem)
		return tool_fail(s, ret, "configure: out of memory");
	return ret;
}
