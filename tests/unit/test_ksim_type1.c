/*
 * test_ksim_type1.c: the kernel simulator's core and its VFIO type1 part
 * behave as Linux 6.12 does (shared docs/kernel-uapi.md section 1 and
 * the kernel sources it cites): fds, containers, groups, device fds, the
 * errno of every type1 dirty-tracking row, bitmaps and their pitfalls,
 * pinned scope, the DMA engine and its ground truth, hot-unplug, failure
 * injection and iommufd's compatibility container.
 */
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <pthread.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <linux/vfio.h>

#include "ksim/ksim.h"
#include "ksim/ksim_internal.h"
#include "unit/testutil.h"
#include "unit/ksimglobal.h"
#include "unit/ksimutil.h"

#define PG 4096ull
#define MiB (1ull << 20)
/* x86-64 TASK_SIZE_MAX with 4-level paging: access_ok()'s limit. */
#define TASK_SIZE_MAX 0x00007ffffffff000ull
#define PATTERN 0xa5a5a5a5a5a5a5a5ull

/* GET_BITMAP's argument: the header and the _get payload (48 bytes). */
struct dirty_get {
	uint32_t argsz;
	uint32_t flags;
	struct vfio_iommu_type1_dirty_bitmap_get get;
};

/* UNMAP_DMA with a vfio_bitmap behind it (48 bytes). */
struct unmap_bitmap {
	uint32_t argsz;
	uint32_t flags;
	uint64_t iova;
	uint64_t size;
	struct vfio_bitmap bitmap;
};

_Static_assert(sizeof(struct dirty_get) == 48, "GET_BITMAP argsz");
_Static_assert(sizeof(struct unmap_bitmap) == 48, "UNMAP+bitmap argsz");

/* ------------------------------------------------------------------ */
/* Helpers                                                             */

static void sim_new(uint64_t pgsize, bool compat)
{
	struct ksim_params p = { .type1_pgsize = pgsize,
				 .iommufd_compat = compat };

	CU_ASSERT_FATAL(ksim_new(&p, &K) == 0);
	H = ksim_host(K);
}

static struct ksim_device *dev_add(const char *name,
				   enum ksim_device_kind kind, int group,
				   bool pins)
{
	struct ksim_device_params p = { .name = name, .kind = kind,
					.group = group, .pins_pages = pins };
	struct ksim_device *d = NULL;

	CU_ASSERT_FATAL(ksim_device_add(K, &p, &d) == 0);
	return d;
}

static void *arg_of(unsigned long v)
{
	return (void *)(uintptr_t)v;
}

static int group_open(int n)
{
	char path[32];

	snprintf(path, sizeof(path), "/dev/vfio/%d", n);
	return xopen(path);
}

static int set_container(int gfd, int cfd)
{
	return xioctl(gfd, VFIO_GROUP_SET_CONTAINER, &cfd);
}

static int set_iommu(int cfd, unsigned long type)
{
	return xioctl(cfd, VFIO_SET_IOMMU, arg_of(type));
}

static int device_fd(int gfd, const char *name)
{
	return xioctl(gfd, VFIO_GROUP_GET_DEVICE_FD, (void *)name);
}

static int map(int cfd, uint64_t iova, uint64_t size, void *vaddr,
	       uint32_t flags)
{
	struct vfio_iommu_type1_dma_map m = {
		.argsz = sizeof(m), .flags = flags,
		.vaddr = (uintptr_t)vaddr, .iova = iova, .size = size,
	};

	return xioctl(cfd, VFIO_IOMMU_MAP_DMA, &m);
}

#define RW (VFIO_DMA_MAP_FLAG_READ | VFIO_DMA_MAP_FLAG_WRITE)

static int unmap(int cfd, uint64_t iova, uint64_t size, uint32_t flags,
		 uint64_t *out)
{
	struct vfio_iommu_type1_dma_unmap u = {
		.argsz = sizeof(u), .flags = flags, .iova = iova, .size = size,
	};
	int ret = xioctl(cfd, VFIO_IOMMU_UNMAP_DMA, &u);

	if (out)
		*out = u.size;
	return ret;
}

static int dirty(int cfd, uint32_t flags)
{
	struct vfio_iommu_type1_dirty_bitmap d = { .argsz = sizeof(d),
						   .flags = flags };

	return xioctl(cfd, VFIO_IOMMU_DIRTY_PAGES, &d);
}

static int get_bitmap(int cfd, uint64_t iova, uint64_t size, uint64_t pgsize,
		      void *data, uint64_t bsize)
{
	struct dirty_get g = {
		.argsz = sizeof(g),
		.flags = VFIO_IOMMU_DIRTY_PAGES_FLAG_GET_BITMAP,
		.get = { .iova = iova, .size = size,
			 .bitmap = { .pgsize = pgsize, .size = bsize,
				     .data = data } },
	};

	return xioctl(cfd, VFIO_IOMMU_DIRTY_PAGES, &g);
}

static void *guest_mem(size_t size)
{
	return vmig_test_guest_mem(size, PG);
}

static void fill64(uint64_t *w, size_t n, uint64_t v)
{
	size_t i;

	for (i = 0; i < n; i++)
		w[i] = v;
}

/*
 * A container with group `group` set to it and the IOMMU chosen, and the
 * device's fd opened (when name is not NULL).
 */
struct setup {
	int cfd;
	int gfd;
	int dfd;
};

static struct setup setup_group(int group, const char *name,
				 unsigned long type)
{
	struct setup s = { -1, -1, -1 };

	s.cfd = xopen("/dev/vfio/vfio");
	CU_ASSERT_FATAL(s.cfd >= 0);
	s.gfd = group_open(group);
	CU_ASSERT_FATAL(s.gfd >= 0);
	CU_ASSERT_FATAL(set_container(s.gfd, s.cfd) == 0);
	if (type)
		CU_ASSERT_FATAL(set_iommu(s.cfd, type) == 0);
	if (name) {
		s.dfd = device_fd(s.gfd, name);
		CU_ASSERT_FATAL(s.dfd >= 0);
	}
	return s;
}

/* Finds a capability by id in a GET_INFO buffer; NULL when absent. */
static const struct vfio_info_cap_header *cap_find(const uint8_t *buf,
						   uint16_t id)
{
	const struct vfio_iommu_type1_info *info = (const void *)buf;
	uint32_t off = info->cap_offset;

	while (off) {
		const struct vfio_info_cap_header *h;

		h = (const void *)(buf + off);
		if (h->id == id)
			return h;
		off = h->next;
	}
	return NULL;
}

/* ------------------------------------------------------------------ */
/* fds and paths                                                       */

static void test_fds_are_real(void)
{
	int cfd, flags;

	sim_new(0, false);
	cfd = xopen("/dev/vfio/vfio");
	CU_ASSERT_FATAL(cfd >= 0);
	flags = fcntl(cfd, F_GETFD);
	CU_ASSERT(flags >= 0 && (flags & FD_CLOEXEC));
	CU_ASSERT(xclose(cfd) == 0);
	CU_ASSERT(fcntl(cfd, F_GETFD) < 0 && errno == EBADF);
	CU_ASSERT(xclose(cfd) == -EBADF);
	sim_free();
}

static void test_foreign_fds(void)
{
	struct pollfd pfd;
	void *out = NULL;
	int p[2], v = 0;
	char c;

	sim_new(0, false);
	CU_ASSERT_FATAL(pipe(p) == 0);
	CU_ASSERT(xioctl(p[0], VFIO_GET_API_VERSION, NULL) == -EBADF);
	CU_ASSERT(H->read(H->kctx, p[0], &c, 1) == -EBADF);
	CU_ASSERT(H->write(H->kctx, p[1], &c, 1) == -EBADF);
	CU_ASSERT(H->mmap(H->kctx, NULL, PG, 0, 0, p[0], 0, &out) == -EBADF);
	CU_ASSERT(xclose(p[0]) == -EBADF);
	CU_ASSERT(xioctl(-1, VFIO_GET_API_VERSION, NULL) == -EBADF);
	/* poll marks a descriptor it does not know, as Linux does. */
	pfd.fd = p[0];
	pfd.events = POLLIN;
	CU_ASSERT(H->poll(H->kctx, &pfd, 1, 0) == 1);
	CU_ASSERT(pfd.revents == POLLNVAL);
	/* ksim never touched the real pipe: it still works. */
	CU_ASSERT(fcntl(p[0], F_GETFD) >= 0);
	CU_ASSERT(write(p[1], &v, 1) == 1);
	CU_ASSERT(read(p[0], &c, 1) == 1);
	close(p[0]);
	close(p[1]);
	sim_free();
}

static void test_no_fd_leak(void)
{
	int before = vmig_test_count_fds(), dfd;
	struct setup s;

	CU_ASSERT_FATAL(before > 0);
	sim_new(0, false);
	dev_add("0000:01:00.0", KSIM_DEV_PCI, 7, false);
	s = setup_group(7, "0000:01:00.0", VFIO_TYPE1v2_IOMMU);
	dfd = device_fd(s.gfd, "0000:01:00.0");
	CU_ASSERT(dfd >= 0 && dfd != s.dfd);
	CU_ASSERT(xopen("/dev/vfio/vfio") >= 0);
	CU_ASSERT(vmig_test_count_fds() == before + 5);
	sim_free(); /* closes all five */
	CU_ASSERT(vmig_test_count_fds() == before);
}

static void test_paths(void)
{
	int g1, g2;

	sim_new(0, false);
	dev_add("0000:01:00.0", KSIM_DEV_PCI, 7, false);
	CU_ASSERT(group_open(8) == -ENOENT);
	CU_ASSERT(xopen("/dev/vfio/007") == -ENOENT);
	CU_ASSERT(xopen("/dev/vfio/7x") == -ENOENT);
	CU_ASSERT(xopen("/dev/vfio/-7") == -ENOENT);
	/* /dev/iommu belongs to the iommufd part. */
	CU_ASSERT(xopen("/dev/iommu") >= 0);
	CU_ASSERT(xopen("/dev/vfio/devices/vfio0") == -ENOENT);
	CU_ASSERT(xopen("/dev/null") == -ENOENT);
	CU_ASSERT(H->open(H->kctx, NULL, 0) == -EFAULT);
	g1 = group_open(7);
	CU_ASSERT(g1 >= 0);
	/* Only one open of a group at a time. */
	CU_ASSERT(group_open(7) == -EBUSY);
	CU_ASSERT(xclose(g1) == 0);
	g2 = group_open(7);
	CU_ASSERT(g2 >= 0);
	/* Each open of /dev/vfio/vfio is a new container. */
	g1 = xopen("/dev/vfio/vfio");
	CU_ASSERT(g1 >= 0 && g1 != xopen("/dev/vfio/vfio"));
	sim_free();
}

static void test_container_file_ops(void)
{
	struct pollfd pfd;
	void *out = NULL;
	int cfd, gfd;
	char c;

	sim_new(0, false);
	dev_add("0000:01:00.0", KSIM_DEV_PCI, 3, false);
	cfd = xopen("/dev/vfio/vfio");
	gfd = group_open(3);
	/* Neither file has read, write or mmap methods. */
	CU_ASSERT(H->read(H->kctx, cfd, &c, 1) == -EINVAL);
	CU_ASSERT(H->write(H->kctx, gfd, &c, 1) == -EINVAL);
	CU_ASSERT(H->mmap(H->kctx, NULL, PG, 0, 0, cfd, 0, &out) == -ENODEV);
	CU_ASSERT(H->munmap(H->kctx, &c, 1) == -EINVAL);
	/* Without a poll method a file is always ready. */
	pfd.fd = gfd;
	pfd.events = POLLIN | POLLOUT;
	CU_ASSERT(H->poll(H->kctx, &pfd, 1, -1) == 1);
	CU_ASSERT(pfd.revents == (POLLIN | POLLOUT));
	CU_ASSERT(xioctl(gfd, 0x3bff, NULL) == -ENOTTY);
	sim_free();
}

/*
 * The seam for data fds: a real pipe end registered as a ksim object is
 * read and polled for real, alongside simulated files.
 */
static const struct ksim_obj_ops pipe_ops = { .type = KSIM_OBJ_DATA };

static void test_real_pipe_objects(void)
{
	struct pollfd pfd[2];
	int before = vmig_test_count_fds(), p[2], fd, cfd;
	char buf[8];

	sim_new(0, false);
	cfd = xopen("/dev/vfio/vfio");
	CU_ASSERT_FATAL(pipe2(p, O_CLOEXEC) == 0);
	pthread_mutex_lock(&K->lock);
	fd = ksim_obj_install(K, &pipe_ops, NULL, p[0], NULL);
	pthread_mutex_unlock(&K->lock);
	CU_ASSERT_FATAL(fd == p[0]);
	pfd[0].fd = fd;
	pfd[0].events = POLLIN;
	CU_ASSERT(H->poll(H->kctx, pfd, 1, 0) == 0);
	/* A ready simulated file: the real pipe is not waited for. */
	pfd[1].fd = cfd;
	pfd[1].events = POLLIN;
	CU_ASSERT(H->poll(H->kctx, pfd, 2, -1) == 1);
	CU_ASSERT(pfd[0].revents == 0 && pfd[1].revents == POLLIN);
	CU_ASSERT(write(p[1], "data", 4) == 4);
	CU_ASSERT(H->poll(H->kctx, pfd, 1, -1) == 1);
	CU_ASSERT(pfd[0].revents == POLLIN);
	CU_ASSERT(H->read(H->kctx, fd, buf, sizeof(buf)) == 4);
	CU_ASSERT(memcmp(buf, "data", 4) == 0);
	/* Real errors come back as they are: a read end is not writable. */
	CU_ASSERT(H->write(H->kctx, fd, "x", 1) == -EBADF);
	CU_ASSERT(xioctl(fd, VFIO_GET_API_VERSION, NULL) == -ENOTTY);
	close(p[1]);
	CU_ASSERT(H->read(H->kctx, fd, buf, sizeof(buf)) == 0);
	sim_free(); /* closes the pipe's read end too */
	CU_ASSERT(vmig_test_count_fds() == before);
}

/* ------------------------------------------------------------------ */
/* Containers                                                          */

static void test_extensions(void)
{
	struct setup s;

	sim_new(0, false);
	dev_add("0000:01:00.0", KSIM_DEV_PCI, 1, false);
	dev_add("mdev-a", KSIM_DEV_MDEV, 2, false);
	s = setup_group(1, NULL, 0);
	CU_ASSERT(xioctl(s.cfd, VFIO_GET_API_VERSION, NULL) ==
		  VFIO_API_VERSION);
	CU_ASSERT(xioctl(s.cfd, VFIO_CHECK_EXTENSION,
			 arg_of(VFIO_TYPE1_IOMMU)) == 1);
	CU_ASSERT(xioctl(s.cfd, VFIO_CHECK_EXTENSION,
			 arg_of(VFIO_TYPE1v2_IOMMU)) == 1);
	CU_ASSERT(xioctl(s.cfd, VFIO_CHECK_EXTENSION,
			 arg_of(VFIO_TYPE1_NESTING_IOMMU)) == 1);
	CU_ASSERT(xioctl(s.cfd, VFIO_CHECK_EXTENSION,
			 arg_of(VFIO_UNMAP_ALL)) == 1);
	/* These need an IOMMU driver set on the container. */
	CU_ASSERT(xioctl(s.cfd, VFIO_CHECK_EXTENSION,
			 arg_of(VFIO_UPDATE_VADDR)) == 0);
	CU_ASSERT(xioctl(s.cfd, VFIO_CHECK_EXTENSION,
			 arg_of(VFIO_DMA_CC_IOMMU)) == 0);
	CU_ASSERT(xioctl(s.cfd, VFIO_CHECK_EXTENSION,
			 arg_of(VFIO_SPAPR_TCE_IOMMU)) == 0);
	CU_ASSERT(xioctl(s.cfd, VFIO_CHECK_EXTENSION,
			 arg_of(VFIO_NOIOMMU_IOMMU)) == 0);
	CU_ASSERT(xioctl(s.cfd, VFIO_CHECK_EXTENSION, arg_of(42)) == 0);
	CU_ASSERT(set_iommu(s.cfd, VFIO_TYPE1v2_IOMMU) == 0);
	CU_ASSERT(xioctl(s.cfd, VFIO_CHECK_EXTENSION,
			 arg_of(VFIO_UPDATE_VADDR)) == 1);
	CU_ASSERT(xioctl(s.cfd, VFIO_CHECK_EXTENSION,
			 arg_of(VFIO_DMA_CC_IOMMU)) == 1);
	/* An mdev in the container turns UPDATE_VADDR off. */
	s.gfd = group_open(2);
	CU_ASSERT(set_container(s.gfd, s.cfd) == 0);
	CU_ASSERT(xioctl(s.cfd, VFIO_CHECK_EXTENSION,
			 arg_of(VFIO_UPDATE_VADDR)) == 0);
	sim_free();
}

static void test_set_iommu(void)
{
	uint8_t buf[64] = { 0 };
	int cfd, gfd;

	sim_new(0, false);
	dev_add("0000:01:00.0", KSIM_DEV_PCI, 1, false);
	cfd = xopen("/dev/vfio/vfio");
	/* A container without groups cannot choose an IOMMU. */
	CU_ASSERT(set_iommu(cfd, VFIO_TYPE1v2_IOMMU) == -EINVAL);
	/* Nor do anything else but the three base ioctls. */
	CU_ASSERT(map(cfd, 0, PG, buf, RW) == -EINVAL);
	CU_ASSERT(xioctl(cfd, 0x3bff, NULL) == -EINVAL);
	gfd = group_open(1);
	CU_ASSERT(set_container(gfd, cfd) == 0);
	CU_ASSERT(set_iommu(cfd, 42) == -ENODEV);
	CU_ASSERT(set_iommu(cfd, VFIO_UNMAP_ALL) == -EINVAL);
	CU_ASSERT(set_iommu(cfd, VFIO_NOIOMMU_IOMMU) == -ENODEV);
	/* x86 IOMMU domains cannot nest. */
	CU_ASSERT(set_iommu(cfd, VFIO_TYPE1_NESTING_IOMMU) == -EINVAL);
	CU_ASSERT(set_iommu(cfd, VFIO_TYPE1v2_IOMMU) == 0);
	CU_ASSERT(set_iommu(cfd, VFIO_TYPE1v2_IOMMU) == -EINVAL);
	/* With the driver set, unknown requests reach it: ENOTTY. */
	CU_ASSERT(xioctl(cfd, 0x3bff, NULL) == -ENOTTY);
	sim_free();

	/* An mdev-only container accepts nesting (no domain to nest). */
	sim_new(0, false);
	dev_add("mdev-a", KSIM_DEV_MDEV, 2, false);
	cfd = xopen("/dev/vfio/vfio");
	gfd = group_open(2);
	CU_ASSERT(set_container(gfd, cfd) == 0);
	CU_ASSERT(set_iommu(cfd, VFIO_TYPE1_NESTING_IOMMU) == 0);
	sim_free();
}

static void test_get_info(void)
{
	uint8_t buf[512] __attribute__((aligned(8)));
	struct vfio_iommu_type1_info *info = (void *)buf;
	const struct vfio_iommu_type1_info_cap_migration *mig;
	const struct vfio_iommu_type1_info_dma_avail *avail;
	const struct vfio_iommu_type1_info_cap_iova_range *iova;
	uint8_t *mem = guest_mem(PG);
	uint32_t need;
	struct setup s;

	sim_new(0, false);
	dev_add("0000:01:00.0", KSIM_DEV_PCI, 1, false);
	s = setup_group(1, NULL, VFIO_TYPE1v2_IOMMU);
	CU_ASSERT(map(s.cfd, 0x100000, PG, mem, RW) == 0);

	/* First call: just the struct; the size needed comes back. */
	memset(buf, 0, sizeof(buf));
	info->argsz = sizeof(*info);
	CU_ASSERT(xioctl(s.cfd, VFIO_IOMMU_GET_INFO, info) == 0);
	CU_ASSERT(info->flags ==
		  (VFIO_IOMMU_INFO_PGSIZES | VFIO_IOMMU_INFO_CAPS));
	CU_ASSERT(info->cap_offset == 0);
	CU_ASSERT((info->iova_pgsizes & -info->iova_pgsizes) == PG);
	/* 24 + migration 32 + dma_avail 16 + iova 16 + 2 ranges. */
	need = info->argsz;
	CU_ASSERT(need == 24 + 32 + 16 + 16 + 2 * 16);

	memset(buf, 0, sizeof(buf));
	info->argsz = need;
	CU_ASSERT(xioctl(s.cfd, VFIO_IOMMU_GET_INFO, info) == 0);
	CU_ASSERT(info->argsz == need);
	CU_ASSERT(info->cap_offset == sizeof(*info));
	/* The kernel's order: migration, dma_avail, iova_range. */
	CU_ASSERT(((struct vfio_info_cap_header *)(buf + 24))->id ==
		  VFIO_IOMMU_TYPE1_INFO_CAP_MIGRATION);
	mig = (const void *)cap_find(buf, VFIO_IOMMU_TYPE1_INFO_CAP_MIGRATION);
	CU_ASSERT_FATAL(mig != NULL);
	CU_ASSERT(mig->header.version == 1);
	CU_ASSERT(mig->flags == 0);
	CU_ASSERT(mig->pgsize_bitmap == PG);
	CU_ASSERT(mig->max_dirty_bitmap_size == 256 * MiB);
	avail = (const void *)cap_find(buf, VFIO_IOMMU_TYPE1_INFO_DMA_AVAIL);
	CU_ASSERT_FATAL(avail != NULL);
	CU_ASSERT(avail->avail == 65535 - 1);
	CU_ASSERT((const uint8_t *)avail - buf == 24 + 32);
	iova = (const void *)cap_find(buf,
				      VFIO_IOMMU_TYPE1_INFO_CAP_IOVA_RANGE);
	CU_ASSERT_FATAL(iova != NULL);
	CU_ASSERT(iova->header.next == 0);
	CU_ASSERT(iova->nr_iovas == 2);
	CU_ASSERT(iova->iova_ranges[0].start == 0);
	CU_ASSERT(iova->iova_ranges[0].end == 0xfedfffff);
	CU_ASSERT(iova->iova_ranges[1].start == 0xfef00000);
	CU_ASSERT(iova->iova_ranges[1].end == (1ull << 48) - 1);

	/* Too short for the fixed part; or no memory at all. */
	info->argsz = 15;
	CU_ASSERT(xioctl(s.cfd, VFIO_IOMMU_GET_INFO, info) == -EINVAL);
	CU_ASSERT(xioctl(s.cfd, VFIO_IOMMU_GET_INFO, NULL) == -EFAULT);
	free(mem);
	sim_free();
}

static void test_get_info_mdev_only(void)
{
	uint8_t buf[512] __attribute__((aligned(8)));
	struct vfio_iommu_type1_info *info = (void *)buf;
	const struct vfio_iommu_type1_info_cap_migration *mig;
	struct setup s;

	/* A larger IOMMU page does not matter without an IOMMU domain. */
	sim_new(65536, false);
	dev_add("mdev-a", KSIM_DEV_MDEV, 2, false);
	s = setup_group(2, NULL, VFIO_TYPE1v2_IOMMU);
	memset(buf, 0, sizeof(buf));
	info->argsz = sizeof(buf);
	CU_ASSERT(xioctl(s.cfd, VFIO_IOMMU_GET_INFO, info) == 0);
	CU_ASSERT(info->argsz == sizeof(buf)); /* big enough: untouched */
	CU_ASSERT(info->iova_pgsizes == ~(PG - 1));
	CU_ASSERT(cap_find(buf, VFIO_IOMMU_TYPE1_INFO_CAP_IOVA_RANGE) == NULL);
	CU_ASSERT(cap_find(buf, VFIO_IOMMU_TYPE1_INFO_DMA_AVAIL) != NULL);
	mig = (const void *)cap_find(buf, VFIO_IOMMU_TYPE1_INFO_CAP_MIGRATION);
	CU_ASSERT_FATAL(mig != NULL);
	CU_ASSERT(mig->pgsize_bitmap == PG);
	sim_free();
}

static void test_type1_pgsize(void)
{
	uint8_t buf[512] __attribute__((aligned(8)));
	struct vfio_iommu_type1_info *info = (void *)buf;
	const struct vfio_iommu_type1_info_cap_migration *mig;
	uint8_t *mem = vmig_test_guest_mem(65536, 65536);
	uint64_t bm[1] = { 0 };
	struct setup s;

	CU_ASSERT(ksim_new(&(struct ksim_params){ .type1_pgsize = 12288 },
			   &K) == -EINVAL);
	sim_new(65536, false);
	dev_add("0000:01:00.0", KSIM_DEV_PCI, 1, false);
	s = setup_group(1, NULL, VFIO_TYPE1v2_IOMMU);
	memset(buf, 0, sizeof(buf));
	info->argsz = sizeof(buf);
	CU_ASSERT(xioctl(s.cfd, VFIO_IOMMU_GET_INFO, info) == 0);
	mig = (const void *)cap_find(buf, VFIO_IOMMU_TYPE1_INFO_CAP_MIGRATION);
	CU_ASSERT_FATAL(mig != NULL);
	CU_ASSERT(mig->pgsize_bitmap == 65536);
	CU_ASSERT((info->iova_pgsizes & -info->iova_pgsizes) == 65536);
	/* Mappings and bitmaps follow the smallest IOMMU page. */
	CU_ASSERT(map(s.cfd, 0x10000, PG, mem, RW) == -EINVAL);
	CU_ASSERT(map(s.cfd, 0x10000, 65536, mem, RW) == 0);
	CU_ASSERT(dirty(s.cfd, VFIO_IOMMU_DIRTY_PAGES_FLAG_START) == 0);
	CU_ASSERT(get_bitmap(s.cfd, 0x10000, 65536, PG, bm, 8) == -EINVAL);
	CU_ASSERT(get_bitmap(s.cfd, 0x10000, 65536, 65536, bm, 8) == 0);
	CU_ASSERT(bm[0] == 1);
	free(mem);
	sim_free();
}

/* ------------------------------------------------------------------ */
/* MAP_DMA and UNMAP_DMA                                               */

static void test_map_rules(void)
{
	struct vfio_iommu_type1_dma_map m = { .argsz = 31, .flags = RW,
					      .size = PG };
	uint8_t *mem = guest_mem(16 * PG);
	struct setup s;

	sim_new(0, false);
	dev_add("0000:01:00.0", KSIM_DEV_PCI, 1, false);
	s = setup_group(1, NULL, VFIO_TYPE1v2_IOMMU);
	m.vaddr = (uintptr_t)mem;
	CU_ASSERT(xioctl(s.cfd, VFIO_IOMMU_MAP_DMA, &m) == -EINVAL);
	CU_ASSERT(xioctl(s.cfd, VFIO_IOMMU_MAP_DMA, NULL) == -EFAULT);
	CU_ASSERT(map(s.cfd, 0x100000, 4 * PG, mem, RW) == 0);
	/* Any overlap, even a page. */
	CU_ASSERT(map(s.cfd, 0x100000 + 3 * PG, 2 * PG, mem, RW) == -EEXIST);
	CU_ASSERT(map(s.cfd, 0x100000 - PG, 2 * PG, mem, RW) == -EEXIST);
	/* Adjacent is fine. */
	CU_ASSERT(map(s.cfd, 0x100000 + 4 * PG, PG, mem, RW) == 0);
	CU_ASSERT(map(s.cfd, 0x200000 + 1, PG, mem, RW) == -EINVAL);
	CU_ASSERT(map(s.cfd, 0x200000, PG + 1, mem, RW) == -EINVAL);
	CU_ASSERT(map(s.cfd, 0x200000, PG, mem + 1, RW) == -EINVAL);
	CU_ASSERT(map(s.cfd, 0x200000, 0, mem, RW) == -EINVAL);
	CU_ASSERT(map(s.cfd, 0x200000, PG, mem, 0) == -EINVAL);
	CU_ASSERT(map(s.cfd, 0x200000, PG, mem, RW | 0x8) == -EINVAL);
	/* IOVA or vaddr wrap-around. */
	CU_ASSERT(map(s.cfd, UINT64_MAX - PG + 1, 2 * PG, mem, RW) ==
		  -EINVAL);
	CU_ASSERT(map(s.cfd, 0x200000, 2 * PG, (void *)(UINTPTR_MAX - PG + 1),
		      RW) == -EINVAL);
	/* Outside the valid IOVA ranges: the MSI window, past 48 bits. */
	CU_ASSERT(map(s.cfd, 0xfee00000, PG, mem, RW) == -EINVAL);
	CU_ASSERT(map(s.cfd, 1ull << 48, PG, mem, RW) == -EINVAL);
	/* Pages that cannot be pinned (nothing mapped at NULL). */
	CU_ASSERT(map(s.cfd, 0x200000, PG, NULL, RW) == -EFAULT);
	CU_ASSERT(map(s.cfd, 0x200000, PG, mem, VFIO_DMA_MAP_FLAG_READ) == 0);
	free(mem);
	sim_free();
}

static void test_unmap_rules(void)
{
	uint8_t *mem = guest_mem(16 * PG);
	uint64_t size = 1;
	struct setup s;

	sim_new(0, false);
	dev_add("0000:01:00.0", KSIM_DEV_PCI, 1, false);
	s = setup_group(1, NULL, VFIO_TYPE1v2_IOMMU);
	CU_ASSERT(map(s.cfd, 0x100000, 4 * PG, mem, RW) == 0);
	CU_ASSERT(map(s.cfd, 0x104000, 2 * PG, mem + 4 * PG, RW) == 0);
	CU_ASSERT(map(s.cfd, 0x300000, 2 * PG, mem + 6 * PG, RW) == 0);
	/* v2: no bisecting, at either end. */
	CU_ASSERT(unmap(s.cfd, 0x101000, 3 * PG, 0, NULL) == -EINVAL);
	CU_ASSERT(unmap(s.cfd, 0x100000, 5 * PG, 0, NULL) == -EINVAL);
	CU_ASSERT(unmap(s.cfd, 0x100000, PG + 1, 0, NULL) == -EINVAL);
	CU_ASSERT(unmap(s.cfd, 0x100001, PG, 0, NULL) == -EINVAL);
	CU_ASSERT(unmap(s.cfd, 0x100000, 0, 0, NULL) == -EINVAL);
	CU_ASSERT(unmap(s.cfd, 0x100000, PG, 0x8, NULL) == -EINVAL);
	CU_ASSERT(unmap(s.cfd, 0x1000, PG, VFIO_DMA_UNMAP_FLAG_ALL,
			NULL) == -EINVAL);
	/* A hole: success, nothing unmapped. */
	CU_ASSERT(unmap(s.cfd, 0x200000, 16 * PG, 0, &size) == 0);
	CU_ASSERT(size == 0);
	/* Two mappings at once, holes around them allowed. */
	CU_ASSERT(unmap(s.cfd, 0x0, 0x200000, 0, &size) == 0);
	CU_ASSERT(size == 6 * PG);
	CU_ASSERT(map(s.cfd, 0x100000, 6 * PG, mem, RW) == 0);
	/* Unmap all. */
	CU_ASSERT(unmap(s.cfd, 0, 0, VFIO_DMA_UNMAP_FLAG_ALL, &size) == 0);
	CU_ASSERT(size == 8 * PG);
	CU_ASSERT(map(s.cfd, 0x300000, 2 * PG, mem, RW) == 0);
	free(mem);
	sim_free();
}

static void test_unmap_v1(void)
{
	uint8_t *mem = guest_mem(4 * PG);
	uint64_t size = 1;
	struct setup s;

	sim_new(0, false);
	dev_add("0000:01:00.0", KSIM_DEV_PCI, 1, false);
	s = setup_group(1, NULL, VFIO_TYPE1_IOMMU);
	CU_ASSERT(map(s.cfd, 0x100000, 4 * PG, mem, RW) == 0);
	/* v1: from inside a mapping, nothing happens, successfully. */
	CU_ASSERT(unmap(s.cfd, 0x101000, PG, 0, &size) == 0);
	CU_ASSERT(size == 0);
	CU_ASSERT(map(s.cfd, 0x100000, PG, mem, RW) == -EEXIST);
	/* Covering its first page unmaps all of it. */
	CU_ASSERT(unmap(s.cfd, 0x100000, PG, 0, &size) == 0);
	CU_ASSERT(size == 4 * PG);
	CU_ASSERT(map(s.cfd, 0x103000, PG, mem, RW) == 0);
	free(mem);
	sim_free();
}

static void test_update_vaddr(void)
{
	uint8_t *a = guest_mem(2 * PG), *b = guest_mem(2 * PG);
	struct vfio_iommu_type1_dma_map m = {
		.argsz = sizeof(m), .flags = VFIO_DMA_MAP_FLAG_VADDR,
		.iova = 0x100000, .size = 2 * PG,
	};
	struct ksim_device *d;
	uint64_t size = 0;
	struct setup s;

	sim_new(0, false);
	d = dev_add("0000:01:00.0", KSIM_DEV_PCI, 1, false);
	s = setup_group(1, NULL, VFIO_TYPE1v2_IOMMU);
	CU_ASSERT(map(s.cfd, 0x100000, 2 * PG, a, RW) == 0);
	m.vaddr = (uintptr_t)b;
	/* Only an invalidated vaddr can be replaced. */
	CU_ASSERT(xioctl(s.cfd, VFIO_IOMMU_MAP_DMA, &m) == -EINVAL);
	CU_ASSERT(unmap(s.cfd, 0x100000, 2 * PG, VFIO_DMA_UNMAP_FLAG_VADDR,
			&size) == 0);
	CU_ASSERT(size == 2 * PG);
	/* Still mapped; a second invalidation is refused. */
	CU_ASSERT(map(s.cfd, 0x100000, PG, a, RW) == -EEXIST);
	CU_ASSERT(unmap(s.cfd, 0x100000, 2 * PG, VFIO_DMA_UNMAP_FLAG_VADDR,
			&size) == -EINVAL);
	CU_ASSERT(xioctl(s.cfd, VFIO_IOMMU_MAP_DMA, &m) == 0);
	/* The device's writes now land in the new memory. */
	CU_ASSERT(ksim_dma_write(d, 0x100000, "abc", 3) == 0);
	CU_ASSERT(memcmp(b, "abc", 3) == 0 && a[0] == 0);
	m.iova = 0x200000;
	CU_ASSERT(xioctl(s.cfd, VFIO_IOMMU_MAP_DMA, &m) == -ENOENT);
	sim_free();

	/* With an mdev in the container vaddrs cannot be invalidated. */
	sim_new(0, false);
	dev_add("mdev-a", KSIM_DEV_MDEV, 2, false);
	s = setup_group(2, NULL, VFIO_TYPE1v2_IOMMU);
	CU_ASSERT(map(s.cfd, 0x100000, 2 * PG, a, RW) == 0);
	CU_ASSERT(unmap(s.cfd, 0x100000, 2 * PG, VFIO_DMA_UNMAP_FLAG_VADDR,
			NULL) == -EBUSY);
	free(a);
	free(b);
	sim_free();
}

/* ------------------------------------------------------------------ */
/* VFIO_IOMMU_DIRTY_PAGES: the errno of every row of 1.9               */

static void test_dirty_errnos(void)
{
	struct vfio_iommu_type1_dirty_bitmap hdr = { .argsz = 7 };
	struct dirty_get g = {
		.argsz = 47, .flags = VFIO_IOMMU_DIRTY_PAGES_FLAG_GET_BITMAP,
	};
	uint8_t *mem = guest_mem(8 * PG);
	uint64_t bm[8] = { 0 };
	struct setup s;

	sim_new(0, false);
	dev_add("0000:01:00.0", KSIM_DEV_PCI, 1, false);
	dev_add("0000:02:00.0", KSIM_DEV_PCI, 2, false);

	/* A TYPE1 (v1) container: EACCES before anything is read. */
	s = setup_group(2, NULL, VFIO_TYPE1_IOMMU);
	CU_ASSERT(xioctl(s.cfd, VFIO_IOMMU_DIRTY_PAGES, NULL) == -EACCES);

	s = setup_group(1, NULL, VFIO_TYPE1v2_IOMMU);
	CU_ASSERT(map(s.cfd, 0x100000, 8 * PG, mem, RW) == 0);
	CU_ASSERT(xioctl(s.cfd, VFIO_IOMMU_DIRTY_PAGES, NULL) == -EFAULT);
	hdr.flags = VFIO_IOMMU_DIRTY_PAGES_FLAG_START;
	CU_ASSERT(xioctl(s.cfd, VFIO_IOMMU_DIRTY_PAGES, &hdr) == -EINVAL);
	CU_ASSERT(dirty(s.cfd, 0) == -EINVAL);
	CU_ASSERT(dirty(s.cfd, 0x8) == -EINVAL);
	CU_ASSERT(dirty(s.cfd, VFIO_IOMMU_DIRTY_PAGES_FLAG_START |
				       VFIO_IOMMU_DIRTY_PAGES_FLAG_STOP) ==
		  -EINVAL);
	/* STOP without START is fine; GET before START is not. */
	CU_ASSERT(dirty(s.cfd, VFIO_IOMMU_DIRTY_PAGES_FLAG_STOP) == 0);
	CU_ASSERT(get_bitmap(s.cfd, 0x100000, 8 * PG, PG, bm, 8) == -EINVAL);
	CU_ASSERT(dirty(s.cfd, VFIO_IOMMU_DIRTY_PAGES_FLAG_START) == 0);
	CU_ASSERT(dirty(s.cfd, VFIO_IOMMU_DIRTY_PAGES_FLAG_START) == 0);

	/* argsz must hold the _get payload. */
	g.get.iova = 0x100000;
	g.get.size = 8 * PG;
	g.get.bitmap.pgsize = PG;
	g.get.bitmap.size = 8;
	g.get.bitmap.data = (void *)bm;
	CU_ASSERT(xioctl(s.cfd, VFIO_IOMMU_DIRTY_PAGES, &g) == -EINVAL);
	g.argsz = 48;
	CU_ASSERT(xioctl(s.cfd, VFIO_IOMMU_DIRTY_PAGES, &g) == 0);
	/* Wrap-around. */
	CU_ASSERT(get_bitmap(s.cfd, UINT64_MAX - PG + 1, 2 * PG, PG, bm, 8) ==
		  -EINVAL);
	/* access_ok: the buffer must end inside the user address space. */
	CU_ASSERT(get_bitmap(s.cfd, 0x100000, 8 * PG, PG,
			     (void *)(uintptr_t)(TASK_SIZE_MAX - 4), 8) ==
		  -EINVAL);
	/* Bitmap sizes. */
	CU_ASSERT(get_bitmap(s.cfd, 0x100000, 8 * PG, PG, bm, 0) == -EINVAL);
	CU_ASSERT(get_bitmap(s.cfd, 0x100000, 0, PG, bm, 8) == -EINVAL);
	CU_ASSERT(get_bitmap(s.cfd, 0x100000, 8 * PG, PG, bm,
			     256 * MiB + 8) == -EINVAL);
	CU_ASSERT(get_bitmap(s.cfd, 0x100000, 65 * 64 * PG, PG, bm, 64) ==
		  -EINVAL);
	/* The page size rule. */
	CU_ASSERT(get_bitmap(s.cfd, 0x100000, 8 * PG, 2 * PG, bm, 8) ==
		  -EINVAL);
	CU_ASSERT(get_bitmap(s.cfd, 0x100000, 8 * PG, 0, bm, 8) == -EINVAL);
	CU_ASSERT(get_bitmap(s.cfd, 0x100800, 8 * PG, PG, bm, 8) == -EINVAL);
	CU_ASSERT(get_bitmap(s.cfd, 0x100000, 8 * PG - 512, PG, bm, 8) ==
		  -EINVAL);
	/* Cutting through a mapping, at the start or at the end. */
	CU_ASSERT(get_bitmap(s.cfd, 0x101000, 7 * PG, PG, bm, 8) == -EINVAL);
	CU_ASSERT(get_bitmap(s.cfd, 0x100000, 4 * PG, PG, bm, 8) == -EINVAL);
	CU_ASSERT(get_bitmap(s.cfd, 0x0, 0x101000, PG, bm, 64) == -EINVAL);
	/* A buffer that cannot be written: EFAULT, but only if used. */
	CU_ASSERT(get_bitmap(s.cfd, 0x100000, 8 * PG, PG, NULL, 8) ==
		  -EFAULT);
	CU_ASSERT(get_bitmap(s.cfd, 0x200000, 8 * PG, PG, NULL, 8) == 0);
	free(mem);
	sim_free();
}

static void test_dirty_int_max(void)
{
	uint64_t huge = (1ull << 31) * PG; /* INT_MAX + 1 pages */
	uint64_t at = 1ull << 44;          /* 8 TiB fit above the MSI window */
	void *fake = (void *)(uintptr_t)(1ull << 32); /* never touched */
	uint8_t *mem = guest_mem(PG);
	struct setup s;

	sim_new(0, false);
	dev_add("0000:01:00.0", KSIM_DEV_PCI, 1, false);
	s = setup_group(1, NULL, VFIO_TYPE1v2_IOMMU);
	CU_ASSERT(map(s.cfd, at, huge, fake, RW) == 0);
	CU_ASSERT(dirty(s.cfd, VFIO_IOMMU_DIRTY_PAGES_FLAG_START) == -EINVAL);
	CU_ASSERT(unmap(s.cfd, 0, 0, VFIO_DMA_UNMAP_FLAG_ALL, NULL) == 0);
	CU_ASSERT(map(s.cfd, 0x100000, PG, mem, RW) == 0);
	CU_ASSERT(dirty(s.cfd, VFIO_IOMMU_DIRTY_PAGES_FLAG_START) == 0);
	/* A mapping too big to track is refused, and not left behind. */
	CU_ASSERT(map(s.cfd, at, huge, fake, RW) == -EINVAL);
	CU_ASSERT(map(s.cfd, at, PG, mem, RW) == 0);
	free(mem);
	sim_free();
}

/* ------------------------------------------------------------------ */
/* Bitmaps                                                             */

/*
 * With a PCI group outside pinned scope every mapped page is dirty on
 * every query. Bits are relative to the request's iova; words covering
 * only holes keep what the buffer held.
 */
static void test_dirty_pci_everything(void)
{
	uint8_t *mem = guest_mem(12 * PG);
	uint64_t bm[8];
	struct setup s;
	int round;

	sim_new(0, false);
	dev_add("0000:01:00.0", KSIM_DEV_PCI, 1, false);
	s = setup_group(1, "0000:01:00.0", VFIO_TYPE1v2_IOMMU);
	/* 8 pages at bit 0 (word 0), 4 pages at bit 256 (word 4). */
	CU_ASSERT(map(s.cfd, 0x100000, 8 * PG, mem, RW) == 0);
	CU_ASSERT(map(s.cfd, 0x200000, 4 * PG, mem + 8 * PG, RW) == 0);
	CU_ASSERT(dirty(s.cfd, VFIO_IOMMU_DIRTY_PAGES_FLAG_START) == 0);
	for (round = 0; round < 3; round++) {
		fill64(bm, 8, PATTERN);
		CU_ASSERT(get_bitmap(s.cfd, 0x100000, 512 * PG, PG, bm,
				     sizeof(bm)) == 0);
		CU_ASSERT(bm[0] == 0xff);
		CU_ASSERT(bm[1] == PATTERN && bm[2] == PATTERN &&
			  bm[3] == PATTERN);
		CU_ASSERT(bm[4] == 0xf);
		CU_ASSERT(bm[5] == PATTERN && bm[6] == PATTERN &&
			  bm[7] == PATTERN);
	}
	/* The same mapping seen from another request iova. */
	memset(bm, 0, sizeof(bm));
	CU_ASSERT(get_bitmap(s.cfd, 0x200000 - 2 * PG, 8 * PG, PG, bm, 8) ==
		  0);
	CU_ASSERT(bm[0] == 0x3c);
	free(mem);
	sim_free();
}

/*
 * A mapping that starts mid-word relative to the request: its log is
 * shifted in place and only its own bits are cleared after a report, so
 * the shifted copy stays behind and drifts up by the shift on every
 * report (extra bits past the mapping's end, never missing ones); and the
 * buffer's first word is ORed in whole, so garbage there shows as dirty,
 * and keeps showing.
 */
static void test_dirty_mid_word_merge(void)
{
	uint8_t *mem = guest_mem(4 * PG);
	uint64_t bm[2];
	struct setup s;

	sim_new(0, false);
	dev_add("0000:01:00.0", KSIM_DEV_PCI, 1, false);
	s = setup_group(1, NULL, VFIO_TYPE1v2_IOMMU);
	CU_ASSERT(map(s.cfd, 0x100000 + 8 * PG, 4 * PG, mem, RW) == 0);
	CU_ASSERT(dirty(s.cfd, VFIO_IOMMU_DIRTY_PAGES_FLAG_START) == 0);
	bm[0] = 0;
	bm[1] = PATTERN;
	CU_ASSERT(get_bitmap(s.cfd, 0x100000, 128 * PG, PG, bm, 16) == 0);
	CU_ASSERT(bm[0] == 0xf00);
	CU_ASSERT(bm[1] == PATTERN); /* only holes there: untouched */
	memset(bm, 0, sizeof(bm));
	CU_ASSERT(get_bitmap(s.cfd, 0x100000, 128 * PG, PG, bm, 16) == 0);
	CU_ASSERT(bm[0] == 0xf0f00 && bm[1] == 0);
	bm[0] = PATTERN;
	bm[1] = 0;
	CU_ASSERT(get_bitmap(s.cfd, 0x100000, 128 * PG, PG, bm, 16) == 0);
	CU_ASSERT(bm[0] == (PATTERN | 0xf0f0f00));
	/*
	 * The ORed word stays in the kernel's log past the mapping's bits:
	 * even a request starting at the mapping (no shift) returns it.
	 */
	memset(bm, 0, sizeof(bm));
	CU_ASSERT(get_bitmap(s.cfd, 0x100000 + 8 * PG, 4 * PG, PG, bm, 8) ==
		  0);
	CU_ASSERT(bm[0] == (PATTERN | 0xf0f0f0f));
	/* Only STOP and START give a clean log; then it is exact. */
	CU_ASSERT(dirty(s.cfd, VFIO_IOMMU_DIRTY_PAGES_FLAG_STOP) == 0);
	CU_ASSERT(dirty(s.cfd, VFIO_IOMMU_DIRTY_PAGES_FLAG_START) == 0);
	memset(bm, 0, sizeof(bm));
	CU_ASSERT(get_bitmap(s.cfd, 0x100000 + 8 * PG, 4 * PG, PG, bm, 8) ==
		  0);
	CU_ASSERT(bm[0] == 0xf);
	free(mem);
	sim_free();
}

/*
 * The kernel shifts a mid-word mapping's log in place and clears only the
 * mapping's own bits afterwards (update_user_bitmap, bitmap_shift_left
 * without a last-word mask): the shifted-out bits stay in the spare word
 * and come back in the next report of the same range, past the mapping's
 * end. Reported as a superset, never as a loss.
 */
static void test_dirty_spare_word_quirk(void)
{
	uint8_t *mem = guest_mem(8 * PG);
	struct ksim_device *d;
	uint64_t bm[2];
	struct setup s;

	sim_new(0, false);
	d = dev_add("mdev-a", KSIM_DEV_MDEV, 2, false);
	s = setup_group(2, "mdev-a", VFIO_TYPE1v2_IOMMU);
	CU_ASSERT(map(s.cfd, 0x100000 + 60 * PG, 8 * PG, mem, RW) == 0);
	CU_ASSERT(dirty(s.cfd, VFIO_IOMMU_DIRTY_PAGES_FLAG_START) == 0);
	CU_ASSERT(ksim_dma_write(d, 0x100000 + 60 * PG, NULL, 8 * PG) == 0);
	memset(bm, 0, sizeof(bm));
	CU_ASSERT(get_bitmap(s.cfd, 0x100000, 128 * PG, PG, bm, 16) == 0);
	CU_ASSERT(bm[0] == 0xfull << 60 && bm[1] == 0xf);
	memset(bm, 0, sizeof(bm));
	CU_ASSERT(get_bitmap(s.cfd, 0x100000, 128 * PG, PG, bm, 16) == 0);
	CU_ASSERT(bm[0] == 0 && bm[1] == 0xffull << 56);
	free(mem);
	sim_free();
}

/*
 * mdev-only container: exactly the pinned pages, again on every query,
 * plus vfio_dma_rw writes, once.
 */
static void test_dirty_mdev_pinned(void)
{
	uint8_t *mem = guest_mem(16 * PG);
	const uint64_t base = 0x100000;
	struct ksim_device *d;
	uint64_t bm[1];
	struct setup s;

	sim_new(0, false);
	d = dev_add("mdev-a", KSIM_DEV_MDEV, 2, false);
	s = setup_group(2, "mdev-a", VFIO_TYPE1v2_IOMMU);
	CU_ASSERT(map(s.cfd, base, 16 * PG, mem, RW) == 0);
	/* START seeds the log with the pages pinned before it. */
	CU_ASSERT(ksim_pin(d, base + 2 * PG, 1) == 0);
	CU_ASSERT(dirty(s.cfd, VFIO_IOMMU_DIRTY_PAGES_FLAG_START) == 0);
	CU_ASSERT(ksim_pin(d, base + 3 * PG, 1) == 0);
	bm[0] = 0;
	CU_ASSERT(get_bitmap(s.cfd, base, 16 * PG, PG, bm, 8) == 0);
	CU_ASSERT(bm[0] == 0xc);
	CU_ASSERT(ksim_dma_write(d, base + 7 * PG + 100, "x", 1) == 0);
	bm[0] = 0;
	CU_ASSERT(get_bitmap(s.cfd, base, 16 * PG, PG, bm, 8) == 0);
	CU_ASSERT(bm[0] == (0xc | 0x80));
	bm[0] = 0;
	CU_ASSERT(get_bitmap(s.cfd, base, 16 * PG, PG, bm, 8) == 0);
	CU_ASSERT(bm[0] == 0xc);
	/* An unpinned page goes after the next report, not before it. */
	CU_ASSERT(ksim_unpin(d, base + 2 * PG, 1) == 0);
	bm[0] = 0;
	CU_ASSERT(get_bitmap(s.cfd, base, 16 * PG, PG, bm, 8) == 0);
	CU_ASSERT(bm[0] == 0xc);
	bm[0] = 0;
	CU_ASSERT(get_bitmap(s.cfd, base, 16 * PG, PG, bm, 8) == 0);
	CU_ASSERT(bm[0] == 0x8);
	/* A mapping made while tracking starts clean. */
	CU_ASSERT(map(s.cfd, base + 16 * PG, 4 * PG, mem, RW) == 0);
	bm[0] = 0;
	CU_ASSERT(get_bitmap(s.cfd, base, 20 * PG, PG, bm, 8) == 0);
	CU_ASSERT(bm[0] == 0x8);
	/* STOP drops the log; a new START seeds it again. */
	CU_ASSERT(ksim_dma_write(d, base + 9 * PG, "x", 1) == 0);
	CU_ASSERT(dirty(s.cfd, VFIO_IOMMU_DIRTY_PAGES_FLAG_STOP) == 0);
	CU_ASSERT(dirty(s.cfd, VFIO_IOMMU_DIRTY_PAGES_FLAG_START) == 0);
	bm[0] = 0;
	CU_ASSERT(get_bitmap(s.cfd, base, 20 * PG, PG, bm, 8) == 0);
	CU_ASSERT(bm[0] == 0x8);
	free(mem);
	sim_free();
}

/* START while tracking keeps the log it has. */
static void test_dirty_start_twice(void)
{
	uint8_t *mem = guest_mem(4 * PG);
	struct ksim_device *d;
	uint64_t bm[1] = { 0 };
	struct setup s;

	sim_new(0, false);
	d = dev_add("mdev-a", KSIM_DEV_MDEV, 2, false);
	s = setup_group(2, "mdev-a", VFIO_TYPE1v2_IOMMU);
	CU_ASSERT(map(s.cfd, 0x100000, 4 * PG, mem, RW) == 0);
	CU_ASSERT(dirty(s.cfd, VFIO_IOMMU_DIRTY_PAGES_FLAG_START) == 0);
	CU_ASSERT(ksim_dma_write(d, 0x101000, "x", 1) == 0);
	CU_ASSERT(dirty(s.cfd, VFIO_IOMMU_DIRTY_PAGES_FLAG_START) == 0);
	CU_ASSERT(get_bitmap(s.cfd, 0x100000, 4 * PG, PG, bm, 8) == 0);
	CU_ASSERT(bm[0] == 0x2);
	free(mem);
	sim_free();
}

/*
 * A PCI device whose driver pins pages moves its container from
 * "everything" to "pinned" with its first pin; its own DMA through the
 * IOMMU is never seen by type1.
 */
static void test_pins_pages_promotion(void)
{
	uint8_t *mem = guest_mem(16 * PG);
	struct ksim_device *d;
	uint64_t bm[1];
	struct setup s;

	sim_new(0, false);
	d = dev_add("0000:03:00.0", KSIM_DEV_PCI, 3, true);
	s = setup_group(3, "0000:03:00.0", VFIO_TYPE1v2_IOMMU);
	CU_ASSERT(map(s.cfd, 0x100000, 16 * PG, mem, RW) == 0);
	CU_ASSERT(dirty(s.cfd, VFIO_IOMMU_DIRTY_PAGES_FLAG_START) == 0);
	bm[0] = 0;
	CU_ASSERT(get_bitmap(s.cfd, 0x100000, 16 * PG, PG, bm, 8) == 0);
	CU_ASSERT(bm[0] == 0xffff);
	CU_ASSERT(ksim_pin(d, 0x100000 + 5 * PG, 1) == 0);
	CU_ASSERT(ksim_unpin(d, 0x100000 + 5 * PG, 1) == 0);
	bm[0] = 0;
	CU_ASSERT(get_bitmap(s.cfd, 0x100000, 16 * PG, PG, bm, 8) == 0);
	CU_ASSERT(bm[0] == 0x20);
	/* Promoted for good: unpinned and DMA-written, nothing reported. */
	CU_ASSERT(ksim_dma_write(d, 0x100000, NULL, 4 * PG) == 0);
	bm[0] = 0;
	CU_ASSERT(get_bitmap(s.cfd, 0x100000, 16 * PG, PG, bm, 8) == 0);
	CU_ASSERT(bm[0] == 0);
	free(mem);
	sim_free();
}

/*
 * An mdev and a plain PCI group share a container: everything is dirty.
 * The PCI group leaving marks all mappings dirty once, then the mdev's
 * pins alone are reported.
 */
static void test_detach_non_pinned_group(void)
{
	uint8_t *mem = guest_mem(8 * PG);
	struct ksim_device *m;
	uint64_t bm[1];
	struct setup s;
	int gfd;

	sim_new(0, false);
	m = dev_add("mdev-a", KSIM_DEV_MDEV, 2, false);
	dev_add("0000:01:00.0", KSIM_DEV_PCI, 1, false);
	s = setup_group(2, "mdev-a", VFIO_TYPE1v2_IOMMU);
	gfd = group_open(1);
	CU_ASSERT(set_container(gfd, s.cfd) == 0);
	CU_ASSERT(map(s.cfd, 0x100000, 8 * PG, mem, RW) == 0);
	CU_ASSERT(ksim_pin(m, 0x100000, 1) == 0);
	CU_ASSERT(dirty(s.cfd, VFIO_IOMMU_DIRTY_PAGES_FLAG_START) == 0);
	bm[0] = 0;
	CU_ASSERT(get_bitmap(s.cfd, 0x100000, 8 * PG, PG, bm, 8) == 0);
	CU_ASSERT(bm[0] == 0xff);
	bm[0] = 0;
	CU_ASSERT(get_bitmap(s.cfd, 0x100000, 8 * PG, PG, bm, 8) == 0);
	CU_ASSERT(bm[0] == 0xff);
	CU_ASSERT(xioctl(gfd, VFIO_GROUP_UNSET_CONTAINER, NULL) == 0);
	bm[0] = 0;
	CU_ASSERT(get_bitmap(s.cfd, 0x100000, 8 * PG, PG, bm, 8) == 0);
	CU_ASSERT(bm[0] == 0xff);
	bm[0] = 0;
	CU_ASSERT(get_bitmap(s.cfd, 0x100000, 8 * PG, PG, bm, 8) == 0);
	CU_ASSERT(bm[0] == 0x1);
	free(mem);
	sim_free();
}

static void test_unmap_get_dirty_bitmap(void)
{
	struct unmap_bitmap u = {
		.argsz = sizeof(u),
		.flags = VFIO_DMA_UNMAP_FLAG_GET_DIRTY_BITMAP,
		.iova = 0x100000, .size = 64 * PG,
		.bitmap = { .pgsize = PG, .size = 8 },
	};
	uint8_t *mem = guest_mem(8 * PG);
	struct ksim_device *d;
	uint64_t bm[1] = { 0 };
	struct setup s;

	sim_new(0, false);
	d = dev_add("mdev-a", KSIM_DEV_MDEV, 2, false);
	s = setup_group(2, "mdev-a", VFIO_TYPE1v2_IOMMU);
	CU_ASSERT(map(s.cfd, 0x100000 + 8 * PG, 4 * PG, mem, RW) == 0);
	u.bitmap.data = (void *)bm;
	/* Tracking must be on. */
	CU_ASSERT(xioctl(s.cfd, VFIO_IOMMU_UNMAP_DMA, &u) == -EINVAL);
	CU_ASSERT(dirty(s.cfd, VFIO_IOMMU_DIRTY_PAGES_FLAG_START) == 0);
	CU_ASSERT(ksim_dma_write(d, 0x100000 + 9 * PG, "y", 1) == 0);
	CU_ASSERT(ksim_pin(d, 0x100000 + 11 * PG, 1) == 0);
	u.argsz = 47;
	CU_ASSERT(xioctl(s.cfd, VFIO_IOMMU_UNMAP_DMA, &u) == -EINVAL);
	u.argsz = sizeof(u);
	u.flags |= VFIO_DMA_UNMAP_FLAG_ALL;
	CU_ASSERT(xioctl(s.cfd, VFIO_IOMMU_UNMAP_DMA, &u) == -EINVAL);
	u.flags = VFIO_DMA_UNMAP_FLAG_GET_DIRTY_BITMAP |
		  VFIO_DMA_UNMAP_FLAG_VADDR;
	CU_ASSERT(xioctl(s.cfd, VFIO_IOMMU_UNMAP_DMA, &u) == -EINVAL);
	u.flags = VFIO_DMA_UNMAP_FLAG_GET_DIRTY_BITMAP;
	u.bitmap.pgsize = 2 * PG;
	CU_ASSERT(xioctl(s.cfd, VFIO_IOMMU_UNMAP_DMA, &u) == -EINVAL);
	u.bitmap.pgsize = PG;
	u.size = 65 * PG; /* 65 bits do not fit in 8 bytes */
	CU_ASSERT(xioctl(s.cfd, VFIO_IOMMU_UNMAP_DMA, &u) == -EINVAL);
	u.size = 64 * PG;
	/* Nothing was unmapped by the refusals. */
	CU_ASSERT(map(s.cfd, 0x100000 + 8 * PG, PG, mem, RW) == -EEXIST);
	CU_ASSERT(xioctl(s.cfd, VFIO_IOMMU_UNMAP_DMA, &u) == 0);
	CU_ASSERT(u.size == 4 * PG);
	/* Bits relative to the unmap iova: the write and the pinned page. */
	CU_ASSERT(bm[0] == ((1ull << 9) | (1ull << 11)));
	CU_ASSERT(map(s.cfd, 0x100000 + 8 * PG, 4 * PG, mem, RW) == 0);
	/* The device had to unpin what the unmap took away. */
	CU_ASSERT(ksim_unpin(d, 0x100000 + 11 * PG, 1) == -EINVAL);
	free(mem);
	sim_free();
}

/* ------------------------------------------------------------------ */
/* Groups and device fds                                               */

static void test_group_status(void)
{
	struct vfio_group_status st = { .argsz = sizeof(st) };
	int cfd, gfd;

	sim_new(0, false);
	dev_add("0000:01:00.0", KSIM_DEV_PCI, 1, false);
	cfd = xopen("/dev/vfio/vfio");
	gfd = group_open(1);
	CU_ASSERT(xioctl(gfd, VFIO_GROUP_GET_STATUS, &st) == 0);
	CU_ASSERT(st.flags == VFIO_GROUP_FLAGS_VIABLE);
	CU_ASSERT(set_container(gfd, cfd) == 0);
	CU_ASSERT(xioctl(gfd, VFIO_GROUP_GET_STATUS, &st) == 0);
	CU_ASSERT(st.flags == (VFIO_GROUP_FLAGS_VIABLE |
			       VFIO_GROUP_FLAGS_CONTAINER_SET));
	st.argsz = 7;
	CU_ASSERT(xioctl(gfd, VFIO_GROUP_GET_STATUS, &st) == -EINVAL);
	CU_ASSERT(xioctl(gfd, VFIO_GROUP_GET_STATUS, NULL) == -EFAULT);
	sim_free();
}

static void test_set_container_errors(void)
{
	int cfd, gfd, g2, p[2], fd;

	sim_new(0, false);
	dev_add("0000:01:00.0", KSIM_DEV_PCI, 1, false);
	dev_add("0000:02:00.0", KSIM_DEV_PCI, 2, false);
	cfd = xopen("/dev/vfio/vfio");
	gfd = group_open(1);
	g2 = group_open(2);
	CU_ASSERT_FATAL(pipe(p) == 0);
	CU_ASSERT(xioctl(gfd, VFIO_GROUP_SET_CONTAINER, NULL) == -EFAULT);
	fd = -1;
	CU_ASSERT(xioctl(gfd, VFIO_GROUP_SET_CONTAINER, &fd) == -EBADF);
	/* An open file that is no container (nor an iommufd). */
	CU_ASSERT(set_container(gfd, p[0]) == -EBADFD);
	CU_ASSERT(set_container(gfd, g2) == -EBADFD);
	CU_ASSERT(set_container(gfd, cfd) == 0);
	CU_ASSERT(set_container(gfd, cfd) == -EINVAL);
	close(p[0]);
	close(p[1]);
	sim_free();
}

static void test_get_device_fd(void)
{
	char longname[5000];
	int cfd, gfd;

	sim_new(0, false);
	dev_add("0000:01:00.0", KSIM_DEV_PCI, 1, false);
	dev_add("0000:01:00.1", KSIM_DEV_PCI, 1, false);
	cfd = xopen("/dev/vfio/vfio");
	gfd = group_open(1);
	/* No container yet; the name is checked first. */
	CU_ASSERT(device_fd(gfd, "0000:09:00.0") == -ENODEV);
	CU_ASSERT(device_fd(gfd, "0000:01:00.0") == -EINVAL);
	CU_ASSERT(set_container(gfd, cfd) == 0);
	/* A container without an IOMMU gives no device. */
	CU_ASSERT(device_fd(gfd, "0000:01:00.0") == -EINVAL);
	CU_ASSERT(set_iommu(cfd, VFIO_TYPE1v2_IOMMU) == 0);
	CU_ASSERT(device_fd(gfd, NULL) == -EFAULT);
	memset(longname, 'a', sizeof(longname) - 1);
	longname[sizeof(longname) - 1] = 0;
	CU_ASSERT(device_fd(gfd, longname) == -EINVAL);
	CU_ASSERT(device_fd(gfd, "0000:01:00.0") >= 0);
	CU_ASSERT(device_fd(gfd, "0000:01:00.1") >= 0);
	/* A device may be opened again through its group. */
	CU_ASSERT(device_fd(gfd, "0000:01:00.0") >= 0);
	sim_free();
}

static void test_unset_container(void)
{
	uint8_t buf[256] __attribute__((aligned(8)));
	struct vfio_iommu_type1_info *info = (void *)buf;
	const struct vfio_iommu_type1_info_dma_avail *avail;
	uint8_t *mem = guest_mem(PG);
	struct setup s;

	sim_new(0, false);
	dev_add("0000:01:00.0", KSIM_DEV_PCI, 1, false);
	s = setup_group(1, "0000:01:00.0", VFIO_TYPE1v2_IOMMU);
	CU_ASSERT(map(s.cfd, 0x100000, PG, mem, RW) == 0);
	/* An open device keeps its group in the container. */
	CU_ASSERT(xioctl(s.gfd, VFIO_GROUP_UNSET_CONTAINER, NULL) == -EBUSY);
	CU_ASSERT(xclose(s.dfd) == 0);
	CU_ASSERT(xioctl(s.gfd, VFIO_GROUP_UNSET_CONTAINER, NULL) == 0);
	CU_ASSERT(xioctl(s.gfd, VFIO_GROUP_UNSET_CONTAINER, NULL) == -EINVAL);
	/* The last group took the IOMMU and the mappings with it. */
	CU_ASSERT(map(s.cfd, 0x100000, PG, mem, RW) == -EINVAL);
	CU_ASSERT(set_container(s.gfd, s.cfd) == 0);
	CU_ASSERT(set_iommu(s.cfd, VFIO_TYPE1v2_IOMMU) == 0);
	memset(buf, 0, sizeof(buf));
	info->argsz = sizeof(buf);
	CU_ASSERT(xioctl(s.cfd, VFIO_IOMMU_GET_INFO, info) == 0);
	avail = (const void *)cap_find(buf, VFIO_IOMMU_TYPE1_INFO_DMA_AVAIL);
	CU_ASSERT(avail && avail->avail == 65535);
	CU_ASSERT(map(s.cfd, 0x100000, PG, mem, RW) == 0);
	free(mem);
	sim_free();
}

/* Device fds hold their group's file: it cannot be reopened meanwhile. */
static void test_group_file_held(void)
{
	struct setup s;

	sim_new(0, false);
	dev_add("0000:01:00.0", KSIM_DEV_PCI, 1, false);
	s = setup_group(1, "0000:01:00.0", VFIO_TYPE1v2_IOMMU);
	CU_ASSERT(xclose(s.gfd) == 0);
	CU_ASSERT(group_open(1) == -EBUSY);
	/* The container stays set up: the device's ioctls still work. */
	CU_ASSERT(xioctl(s.dfd, VFIO_DEVICE_RESET, NULL) == 0);
	CU_ASSERT(xclose(s.dfd) == 0);
	s.gfd = group_open(1);
	CU_ASSERT(s.gfd >= 0);
	/* Its release took the group out of the container. */
	CU_ASSERT(set_container(s.gfd, s.cfd) == 0);
	sim_free();
}

static void test_device_ioctls(void)
{
	struct vfio_device_info info = { .argsz = sizeof(info) };
	struct setup s;
	int mfd;

	sim_new(0, false);
	dev_add("0000:01:00.0", KSIM_DEV_PCI, 1, false);
	dev_add("mdev-a", KSIM_DEV_MDEV, 2, false);
	s = setup_group(1, "0000:01:00.0", VFIO_TYPE1v2_IOMMU);
	CU_ASSERT(xioctl(s.dfd, VFIO_DEVICE_GET_INFO, &info) == 0);
	CU_ASSERT(info.flags == (VFIO_DEVICE_FLAGS_PCI |
				 VFIO_DEVICE_FLAGS_RESET));
	CU_ASSERT(info.num_regions == VFIO_PCI_NUM_REGIONS);
	CU_ASSERT(info.num_irqs == VFIO_PCI_NUM_IRQS);
	info.argsz = 15;
	CU_ASSERT(xioctl(s.dfd, VFIO_DEVICE_GET_INFO, &info) == -EINVAL);
	CU_ASSERT(xioctl(s.dfd, VFIO_DEVICE_GET_INFO, NULL) == -EFAULT);
	CU_ASSERT(xioctl(s.dfd, VFIO_DEVICE_RESET, NULL) == 0);
	/* The vfio core reads the feature header first (ksim_feature.c). */
	CU_ASSERT(xioctl(s.dfd, VFIO_DEVICE_FEATURE, NULL) == -EFAULT);
	CU_ASSERT(xioctl(s.dfd, 0x3bff, NULL) == -ENOTTY);
	s.gfd = group_open(2);
	CU_ASSERT(set_container(s.gfd, s.cfd) == 0);
	mfd = device_fd(s.gfd, "mdev-a");
	CU_ASSERT_FATAL(mfd >= 0);
	memset(&info, 0, sizeof(info));
	info.argsz = sizeof(info);
	CU_ASSERT(xioctl(mfd, VFIO_DEVICE_GET_INFO, &info) == 0);
	CU_ASSERT(info.flags == VFIO_DEVICE_FLAGS_PCI);
	sim_free();
}

/* ------------------------------------------------------------------ */
/* Pinning                                                             */

static void test_pin_rules(void)
{
	uint8_t *mem = guest_mem(8 * PG);
	struct ksim_device *m, *p, *v1;
	struct setup s;

	sim_new(0, false);
	m = dev_add("mdev-a", KSIM_DEV_MDEV, 2, false);
	p = dev_add("0000:01:00.0", KSIM_DEV_PCI, 1, false);
	/* Attached to nothing. */
	CU_ASSERT(ksim_pin(m, 0x100000, 1) == -ENODEV);
	s = setup_group(2, NULL, VFIO_TYPE1v2_IOMMU);
	CU_ASSERT(map(s.cfd, 0x100000, 4 * PG, mem, RW) == 0);
	CU_ASSERT(map(s.cfd, 0x200000, 4 * PG, mem, VFIO_DMA_MAP_FLAG_READ) ==
		  0);
	/* The device is not open: its driver cannot pin. */
	CU_ASSERT(ksim_pin(m, 0x100000, 1) == -EINVAL);
	CU_ASSERT(device_fd(s.gfd, "mdev-a") >= 0);
	CU_ASSERT(ksim_pin(m, 0x100000, 0) == -EINVAL);
	CU_ASSERT(ksim_pin(m, 0x100000, 513) == -E2BIG);
	CU_ASSERT(ksim_pin(m, 0x100000 + 3 * PG, 2) == -EINVAL);
	CU_ASSERT(ksim_pin(m, 0x200000, 1) == -EPERM);
	CU_ASSERT(ksim_pin(m, 0x100000, 4) == 0);
	CU_ASSERT(ksim_pin(m, 0x100000, 1) == 0);
	CU_ASSERT(ksim_unpin(m, 0x100000, 2) == 0);
	CU_ASSERT(ksim_unpin(m, 0x100000, 1) == 0);
	/* Counts: the first page was pinned twice, released twice. */
	CU_ASSERT(ksim_unpin(m, 0x100000, 1) == -EINVAL);
	CU_ASSERT(ksim_unpin(m, 0x300000, 1) == -EINVAL);
	/* A PCI device whose driver does not pin. */
	CU_ASSERT(ksim_pin(p, 0x100000, 1) == -EINVAL);
	sim_free();

	/* Pinning needs a v2 container. */
	sim_new(0, false);
	v1 = dev_add("mdev-b", KSIM_DEV_MDEV, 3, false);
	s = setup_group(3, "mdev-b", VFIO_TYPE1_IOMMU);
	CU_ASSERT(map(s.cfd, 0x100000, 4 * PG, mem, RW) == 0);
	CU_ASSERT(ksim_pin(v1, 0x100000, 1) == -EACCES);
	free(mem);
	sim_free();
}

/* ------------------------------------------------------------------ */
/* The DMA engine                                                      */

struct truth {
	struct ksim_write w[64];
	size_t n;
};

static void collect(void *opaque, const struct ksim_write *w)
{
	struct truth *t = opaque;

	if (t->n < 64)
		t->w[t->n] = *w;
	t->n++;
}

static void test_dma_real_memory(void)
{
	uint8_t *mem = guest_mem(4 * PG), *before = malloc(4 * PG);
	struct truth t = { .n = 0 };
	struct ksim_device *d;
	struct setup s;

	sim_new(0, false);
	d = dev_add("0000:01:00.0", KSIM_DEV_PCI, 1, false);
	/* Not in any address space yet. */
	CU_ASSERT(ksim_dma_write(d, 0x100000, "x", 1) == -ENODEV);
	s = setup_group(1, NULL, VFIO_TYPE1v2_IOMMU);
	CU_ASSERT(map(s.cfd, 0x100000, 4 * PG, mem, RW) == 0);
	CU_ASSERT(ksim_dma_write(d, 0x100000 + 10, "hello", 5) == 0);
	CU_ASSERT(memcmp(mem + 10, "hello", 5) == 0);
	CU_ASSERT(ksim_truth_drain(K, collect, &t) == 1);
	CU_ASSERT(t.w[0].dev == d && t.w[0].seq == 1);
	CU_ASSERT(t.w[0].iova == 0x100000 + 10 && t.w[0].len == 5);
	CU_ASSERT(t.w[0].hva == mem + 10);
	/* Drained: nothing left. */
	CU_ASSERT(ksim_truth_drain(K, collect, &t) == 0);
	/* Random content really changes memory. */
	memcpy(before, mem, 4 * PG);
	CU_ASSERT(ksim_dma_write(d, 0x100000 + PG, NULL, PG) == 0);
	CU_ASSERT(memcmp(before + PG, mem + PG, PG) != 0);
	CU_ASSERT(memcmp(before, mem, PG) == 0);
	CU_ASSERT(ksim_dma_write(d, 0x100000, "x", 0) == -EINVAL);
	CU_ASSERT(ksim_faults(K) == 0);
	free(before);
	free(mem);
	sim_free();
}

/* QEMU's edu model: regions, bus mastering, its DMA engine both ways. */
static int64_t edu_reg(int fd, uint32_t reg, uint32_t v)
{
	return ksim_device_pwrite(K, fd, &v, 4, reg);
}

static void test_edu(void)
{
	const uint64_t cfg = (uint64_t)VFIO_PCI_CONFIG_REGION_INDEX << 40;
	struct vfio_region_info ri = { .argsz = sizeof(ri) };
	struct ksim_device_params p = { .name = "0000:00:03.0",
					.kind = KSIM_DEV_PCI, .group = 3,
					.edu = true };
	uint8_t *mem = guest_mem(4 * PG);
	struct truth t = { .n = 0 };
	struct setup s;
	uint16_t command = 0;
	uint32_t v = 0;

	sim_new(0, false);
	CU_ASSERT_FATAL(ksim_device_add(K, &p, NULL) == 0);
	s = setup_group(3, "0000:00:03.0", VFIO_TYPE1v2_IOMMU);
	CU_ASSERT(map(s.cfd, 0x100000, 4 * PG, mem, RW) == 0);
	CU_ASSERT(xioctl(s.dfd, VFIO_DEVICE_GET_REGION_INFO, &ri) == 0);
	CU_ASSERT(ri.size == 1u << 20 && ri.offset == 0);
	ri.index = VFIO_PCI_CONFIG_REGION_INDEX;
	CU_ASSERT(xioctl(s.dfd, VFIO_DEVICE_GET_REGION_INFO, &ri) == 0);
	CU_ASSERT(ri.size == 256 && ri.offset == cfg);
	CU_ASSERT(ksim_device_pread(K, s.dfd, &v, 4, 0) == 4 &&
		  v == 0x010000ed);
	memset(mem, 0x5a, 64);
	/* Bus mastering off: the engine finishes, nothing moves. */
	CU_ASSERT(edu_reg(s.dfd, 0x80, 0x40000) == 4);
	CU_ASSERT(edu_reg(s.dfd, 0x88, 0x100000 + PG) == 4);
	CU_ASSERT(edu_reg(s.dfd, 0x90, 64) == 4);
	CU_ASSERT(edu_reg(s.dfd, 0x98, 3) == 4);
	CU_ASSERT(ksim_device_pread(K, s.dfd, &v, 4, 0x98) == 4 && !(v & 1));
	CU_ASSERT(ksim_truth_drain(K, collect, &t) == 0);
	/* On: memory to the buffer, then the buffer to another page. */
	CU_ASSERT(ksim_device_pread(K, s.dfd, &command, 2, cfg + 4) == 2);
	command |= 4;
	CU_ASSERT(ksim_device_pwrite(K, s.dfd, &command, 2, cfg + 4) == 2);
	CU_ASSERT(edu_reg(s.dfd, 0x80, 0x100000) == 4);
	CU_ASSERT(edu_reg(s.dfd, 0x88, 0x40000) == 4);
	CU_ASSERT(edu_reg(s.dfd, 0x98, 1) == 4);
	CU_ASSERT(edu_reg(s.dfd, 0x80, 0x40000) == 4);
	CU_ASSERT(edu_reg(s.dfd, 0x88, 0x100000 + PG) == 4);
	CU_ASSERT(edu_reg(s.dfd, 0x98, 3) == 4);
	CU_ASSERT(memcmp(mem + PG, mem, 64) == 0);
	CU_ASSERT(ksim_truth_drain(K, collect, &t) == 1);
	CU_ASSERT(t.w[0].iova == 0x100000 + PG && t.w[0].len == 64);
	/* Out of the buffer: refused, a fault. */
	CU_ASSERT(edu_reg(s.dfd, 0x80, 0x40000 + 4090) == 4);
	CU_ASSERT(edu_reg(s.dfd, 0x98, 3) == 4);
	CU_ASSERT(ksim_faults(K) == 1);
	/* Not an edu device, or not a device: no regions. */
	CU_ASSERT(ksim_device_pread(K, s.cfd, &v, 4, 0) == -EINVAL);
	CU_ASSERT(ksim_device_pread(K, 999, &v, 4, 0) == -EBADF);
	xclose(s.dfd);
	xclose(s.gfd);
	xclose(s.cfd);
	free(mem);
	sim_free();
}

static void test_dma_faults(void)
{
	uint8_t *mem = guest_mem(8 * PG), *ro = guest_mem(PG);
	struct truth t = { .n = 0 };
	struct ksim_device *d;
	struct setup s;

	sim_new(0, false);
	d = dev_add("0000:01:00.0", KSIM_DEV_PCI, 1, false);
	s = setup_group(1, NULL, VFIO_TYPE1v2_IOMMU);
	CU_ASSERT(map(s.cfd, 0x100000, 2 * PG, mem, RW) == 0);
	CU_ASSERT(map(s.cfd, 0x200000, PG, ro, VFIO_DMA_MAP_FLAG_READ) == 0);
	memset(mem, 0x11, 2 * PG);
	CU_ASSERT(ksim_dma_write(d, 0x300000, "x", 1) == -EFAULT);
	CU_ASSERT(ksim_dma_write(d, 0x200000, "x", 1) == -EFAULT);
	/* Straddling the end of a mapping: nothing at all is written. */
	CU_ASSERT(ksim_dma_write(d, 0x100000 + 2 * PG - 2, "abcd", 4) ==
		  -EFAULT);
	CU_ASSERT(mem[2 * PG - 2] == 0x11 && mem[2 * PG - 1] == 0x11);
	CU_ASSERT(ro[0] == 0);
	CU_ASSERT(ksim_dma_write(d, UINT64_MAX - 1, "abcd", 4) == -EFAULT);
	CU_ASSERT(ksim_faults(K) == 4);
	CU_ASSERT(ksim_truth_drain(K, collect, &t) == 0);
	free(mem);
	free(ro);
	sim_free();
}

static void test_dma_spans_mappings(void)
{
	uint8_t *a = guest_mem(PG), *b = guest_mem(PG);
	struct truth t = { .n = 0 };
	uint8_t data[64];
	struct ksim_device *d;
	struct setup s;
	int i;

	for (i = 0; i < 64; i++)
		data[i] = (uint8_t)i;
	sim_new(0, false);
	d = dev_add("0000:01:00.0", KSIM_DEV_PCI, 1, false);
	s = setup_group(1, NULL, VFIO_TYPE1v2_IOMMU);
	/* Adjacent in IOVA, apart in memory. */
	CU_ASSERT(map(s.cfd, 0x100000, PG, a, RW) == 0);
	CU_ASSERT(map(s.cfd, 0x101000, PG, b, RW) == 0);
	CU_ASSERT(ksim_dma_write(d, 0x101000 - 16, data, 64) == 0);
	CU_ASSERT(memcmp(a + PG - 16, data, 16) == 0);
	CU_ASSERT(memcmp(b, data + 16, 48) == 0);
	CU_ASSERT(ksim_truth_drain(K, collect, &t) == 2);
	CU_ASSERT(t.w[0].iova == 0x101000 - 16 && t.w[0].len == 16);
	CU_ASSERT(t.w[0].hva == a + PG - 16);
	CU_ASSERT(t.w[1].iova == 0x101000 && t.w[1].len == 48);
	CU_ASSERT(t.w[1].hva == b);
	CU_ASSERT(t.w[1].seq == t.w[0].seq + 1);
	free(a);
	free(b);
	sim_free();
}

/* vfio_dma_rw needs the mapping readable too, and the device open. */
static void test_dma_mdev(void)
{
	uint8_t *mem = guest_mem(2 * PG);
	struct ksim_device *d;
	struct setup s;

	sim_new(0, false);
	d = dev_add("mdev-a", KSIM_DEV_MDEV, 2, false);
	s = setup_group(2, NULL, VFIO_TYPE1v2_IOMMU);
	CU_ASSERT(map(s.cfd, 0x100000, PG, mem, RW) == 0);
	CU_ASSERT(map(s.cfd, 0x101000, PG, mem + PG,
		      VFIO_DMA_MAP_FLAG_WRITE) == 0);
	CU_ASSERT(ksim_dma_write(d, 0x100000, "x", 1) == -ENODEV);
	s.dfd = device_fd(s.gfd, "mdev-a");
	CU_ASSERT(ksim_dma_write(d, 0x100000, "x", 1) == 0);
	CU_ASSERT(ksim_dma_write(d, 0x101000, "x", 1) == -EFAULT);
	CU_ASSERT(mem[0] == 'x' && mem[PG] == 0);
	free(mem);
	sim_free();
}

/* Writes of a step: where they landed, in order. */
struct step_log {
	uint64_t iova[4096];
	uint64_t len[4096];
	size_t n;
};

static void step_collect(void *opaque, const struct ksim_write *w)
{
	struct step_log *l = opaque;

	if (l->n < 4096) {
		l->iova[l->n] = w->iova;
		l->len[l->n] = w->len;
	}
	l->n++;
}

/*
 * A PCI device with a DMA pattern behind two writable mappings and a
 * read-only one: the simulator (K) ready to step.
 */
static void step_setup(enum ksim_dma_pattern pat, uint32_t per_step,
		       uint32_t size, uint64_t seed, uint8_t *mem)
{
	struct ksim_device_params p = {
		.name = "0000:01:00.0", .kind = KSIM_DEV_PCI, .group = 1,
		.dma = { .pattern = pat, .writes_per_step = per_step,
			 .write_size = size, .seed = seed },
	};
	struct setup s;

	sim_new(0, false);
	CU_ASSERT_FATAL(ksim_device_add(K, &p, NULL) == 0);
	s = setup_group(1, NULL, VFIO_TYPE1v2_IOMMU);
	CU_ASSERT(map(s.cfd, 0x100000, 64 * PG, mem, RW) == 0);
	CU_ASSERT(map(s.cfd, 0x140000, 16 * PG, mem + 64 * PG,
		      VFIO_DMA_MAP_FLAG_READ) == 0);
	CU_ASSERT(map(s.cfd, 0x800000, 16 * PG, mem + 80 * PG, RW) == 0);
}

static bool in_writable(uint64_t iova, uint64_t len)
{
	return (iova >= 0x100000 && iova + len <= 0x140000) ||
	       (iova >= 0x800000 && iova + len <= 0x810000);
}

static void test_step_random(void)
{
	uint8_t *mem = guest_mem(96 * PG);
	struct step_log *a = calloc(1, sizeof(*a)), *b = calloc(1, sizeof(*b));
	size_t i;

	step_setup(KSIM_DMA_RANDOM, 200, 0, 42, mem);
	CU_ASSERT(ksim_step(K) == 200);
	CU_ASSERT(ksim_truth_drain(K, step_collect, a) == 200);
	for (i = 0; i < a->n; i++) {
		CU_ASSERT(a->len[i] == PG);
		CU_ASSERT(a->iova[i] % PG == 0);
		CU_ASSERT(in_writable(a->iova[i], a->len[i]));
	}
	/* Both writable mappings are hit. */
	for (i = 0; i < a->n && a->iova[i] < 0x800000; i++)
		;
	CU_ASSERT(i < a->n);
	CU_ASSERT(ksim_faults(K) == 0);
	sim_free();
	/* The same seed, the same writes. */
	step_setup(KSIM_DMA_RANDOM, 200, 0, 42, mem);
	CU_ASSERT(ksim_step(K) == 200);
	CU_ASSERT(ksim_truth_drain(K, step_collect, b) == 200);
	CU_ASSERT(memcmp(a->iova, b->iova, 200 * sizeof(uint64_t)) == 0);
	sim_free();
	/* Another seed, other writes. */
	b->n = 0;
	step_setup(KSIM_DMA_RANDOM, 200, 0, 43, mem);
	CU_ASSERT(ksim_step(K) == 200);
	CU_ASSERT(ksim_truth_drain(K, step_collect, b) == 200);
	CU_ASSERT(memcmp(a->iova, b->iova, 200 * sizeof(uint64_t)) != 0);
	sim_free();
	free(a);
	free(b);
	free(mem);
}

static void test_step_sequential(void)
{
	uint8_t *mem = guest_mem(96 * PG);
	struct step_log *l = calloc(1, sizeof(*l));
	size_t i;

	/* 8 KiB writes: 63 slots in the first run, 15 in the second. */
	step_setup(KSIM_DMA_SEQUENTIAL, 50, 2 * PG, 1, mem);
	CU_ASSERT(ksim_step(K) == 50);
	CU_ASSERT(ksim_step(K) == 50);
	CU_ASSERT(ksim_truth_drain(K, step_collect, l) == 100);
	for (i = 0; i < l->n; i++) {
		uint64_t slot = (2 * i) % (63 + 15);
		uint64_t want = slot < 63 ? 0x100000 + slot * PG :
					    0x800000 + (slot - 63) * PG;

		CU_ASSERT(l->iova[i] == want);
		CU_ASSERT(l->len[i] == 2 * PG);
		CU_ASSERT(in_writable(l->iova[i], l->len[i]));
	}
	sim_free();
	free(l);
	free(mem);
}

static void test_step_hotspot(void)
{
	uint8_t *mem = guest_mem(96 * PG);
	struct step_log *l = calloc(1, sizeof(*l));
	size_t i, hot = 0;

	/* 80 writable pages: the first 8 are hot. */
	step_setup(KSIM_DMA_HOTSPOT, 1000, 0, 7, mem);
	CU_ASSERT(ksim_step(K) == 1000);
	CU_ASSERT(ksim_truth_drain(K, step_collect, l) == 1000);
	for (i = 0; i < 1000; i++) {
		CU_ASSERT(in_writable(l->iova[i], PG));
		hot += l->iova[i] < 0x100000 + 8 * PG;
	}
	CU_ASSERT(hot > 850 && hot < 950);
	sim_free();
	free(l);
	free(mem);
}

static void test_step_nothing_mapped(void)
{
	struct ksim_device_params p = {
		.name = "mdev-a", .kind = KSIM_DEV_MDEV, .group = 2,
		.dma = { .pattern = KSIM_DMA_RANDOM, .writes_per_step = 10,
			 .seed = 1 },
	};

	sim_new(0, false);
	CU_ASSERT_FATAL(ksim_device_add(K, &p, NULL) == 0);
	CU_ASSERT(ksim_step(K) == 0);
	setup_group(2, "mdev-a", VFIO_TYPE1v2_IOMMU);
	CU_ASSERT(ksim_step(K) == 0);
	CU_ASSERT(ksim_faults(K) == 0);
	sim_free();
}

/* ------------------------------------------------------------------ */
/* Devices: hot-plug and unplug                                        */

static void test_device_add_errors(void)
{
	struct ksim_device_params p = { .name = "a", .kind = KSIM_DEV_PCI,
					.group = 1 };

	sim_new(0, false);
	CU_ASSERT(ksim_device_add(K, NULL, NULL) == -EINVAL);
	p.name = NULL;
	CU_ASSERT(ksim_device_add(K, &p, NULL) == -EINVAL);
	p.name = "a";
	p.kind = 3;
	CU_ASSERT(ksim_device_add(K, &p, NULL) == -EINVAL);
	p.kind = KSIM_DEV_PCI;
	CU_ASSERT(ksim_device_add(K, &p, NULL) == 0);
	CU_ASSERT(ksim_device_add(K, &p, NULL) == -EEXIST);
	p.name = "b";
	p.kind = KSIM_DEV_MDEV;
	CU_ASSERT(ksim_device_add(K, &p, NULL) == -EEXIST);
	CU_ASSERT(ksim_device_find(K, "a") != NULL);
	CU_ASSERT(strcmp(ksim_device_name(ksim_device_find(K, "a")), "a") ==
		  0);
	CU_ASSERT(ksim_device_find(K, "b") == NULL);
	sim_free();
}

static void test_unplug(void)
{
	struct vfio_group_status st = { .argsz = sizeof(st) };
	uint8_t *mem = guest_mem(4 * PG);
	struct ksim_device *d, *e;
	struct setup s;
	char c;

	sim_new(0, false);
	d = dev_add("mdev-a", KSIM_DEV_MDEV, 2, false);
	s = setup_group(2, "mdev-a", VFIO_TYPE1v2_IOMMU);
	CU_ASSERT(map(s.cfd, 0x100000, 4 * PG, mem, RW) == 0);
	CU_ASSERT(ksim_pin(d, 0x100000, 1) == 0);
	CU_ASSERT(ksim_device_remove(K, d) == 0);
	CU_ASSERT(ksim_device_remove(K, d) == -ENOENT);
	CU_ASSERT(ksim_device_find(K, "mdev-a") == NULL);
	/* Its fds stay open but fail. */
	CU_ASSERT(fcntl(s.dfd, F_GETFD) >= 0);
	CU_ASSERT(xioctl(s.dfd, VFIO_DEVICE_RESET, NULL) == -ENODEV);
	CU_ASSERT(H->read(H->kctx, s.dfd, &c, 1) == -ENODEV);
	CU_ASSERT(ksim_dma_write(d, 0x100000, "x", 1) == -ENODEV);
	CU_ASSERT(ksim_pin(d, 0x100000, 1) == -ENODEV);
	CU_ASSERT(ksim_unpin(d, 0x100000, 1) == -EINVAL);
	/* The group went with its last device, leaving the container. */
	CU_ASSERT(xioctl(s.gfd, VFIO_GROUP_GET_STATUS, &st) == -ENODEV);
	CU_ASSERT(device_fd(s.gfd, "mdev-a") == -ENODEV);
	CU_ASSERT(set_container(s.gfd, s.cfd) == -ENODEV);
	CU_ASSERT(group_open(2) == -ENOENT);
	CU_ASSERT(map(s.cfd, 0x200000, PG, mem, RW) == -EINVAL);
	/* Hot-plug of a new device with the same name and group. */
	e = dev_add("mdev-a", KSIM_DEV_MDEV, 2, false);
	CU_ASSERT(e != d);
	CU_ASSERT(group_open(2) >= 0);
	CU_ASSERT(xclose(s.dfd) == 0);
	CU_ASSERT(xclose(s.gfd) == 0);
	free(mem);
	sim_free();
}

static void test_hotplug_into_attached_group(void)
{
	uint8_t *mem = guest_mem(PG);
	struct ksim_device *d, *e;
	struct setup s;

	sim_new(0, false);
	d = dev_add("0000:01:00.0", KSIM_DEV_PCI, 1, false);
	s = setup_group(1, NULL, VFIO_TYPE1v2_IOMMU);
	CU_ASSERT(map(s.cfd, 0x100000, PG, mem, RW) == 0);
	e = dev_add("0000:01:00.1", KSIM_DEV_PCI, 1, false);
	CU_ASSERT(ksim_dma_write(e, 0x100000, "new", 3) == 0);
	CU_ASSERT(memcmp(mem, "new", 3) == 0);
	/* The group stays while it has a device. */
	CU_ASSERT(ksim_device_remove(K, d) == 0);
	CU_ASSERT(ksim_dma_write(e, 0x100000, "old", 3) == 0);
	CU_ASSERT(device_fd(s.gfd, "0000:01:00.1") >= 0);
	free(mem);
	sim_free();
}

/* ------------------------------------------------------------------ */
/* Failure injection                                                   */

static void test_fail_nth(void)
{
	uint8_t *mem = guest_mem(PG);
	uint64_t calls;
	struct setup s;

	sim_new(0, false);
	dev_add("0000:01:00.0", KSIM_DEV_PCI, 1, false);
	CU_ASSERT(ksim_calls(K) == 0);
	s = setup_group(1, NULL, VFIO_TYPE1v2_IOMMU);
	/* open, open, SET_CONTAINER, SET_IOMMU */
	CU_ASSERT(ksim_calls(K) == 4);
	/* Failed and refused calls count too. */
	CU_ASSERT(xioctl(12345, VFIO_GET_API_VERSION, NULL) == -EBADF);
	CU_ASSERT(ksim_calls(K) == 5);
	ksim_fail_nth(K, 2, EIO);
	CU_ASSERT(xioctl(s.cfd, VFIO_GET_API_VERSION, NULL) == 0);
	CU_ASSERT(map(s.cfd, 0x100000, PG, mem, RW) == -EIO);
	/* It had no effect: the mapping is not there. */
	CU_ASSERT(map(s.cfd, 0x100000, PG, mem, RW) == 0);
	calls = ksim_calls(K);
	CU_ASSERT(calls == 8);
	/* Any operation counts, open included; it creates nothing. */
	ksim_fail_nth(K, 1, ENOMEM);
	CU_ASSERT(xopen("/dev/vfio/vfio") == -ENOMEM);
	ksim_fail_nth(K, 1, EINTR);
	CU_ASSERT(H->poll(H->kctx, NULL, 0, 0) == -EINTR);
	ksim_fail_nth(K, 3, EIO);
	ksim_fail_clear(K);
	CU_ASSERT(xioctl(s.cfd, VFIO_GET_API_VERSION, NULL) == 0);
	CU_ASSERT(xioctl(s.cfd, VFIO_GET_API_VERSION, NULL) == 0);
	CU_ASSERT(xioctl(s.cfd, VFIO_GET_API_VERSION, NULL) == 0);
	CU_ASSERT(ksim_calls(K) == calls + 5);
	free(mem);
	sim_free();
}

static void test_fail_request(void)
{
	uint8_t *mem = guest_mem(4 * PG);
	struct setup s;
	int i;

	sim_new(0, false);
	dev_add("0000:01:00.0", KSIM_DEV_PCI, 1, false);
	s = setup_group(1, NULL, VFIO_TYPE1v2_IOMMU);
	ksim_fail_request(K, VFIO_IOMMU_MAP_DMA, ENOMEM, 2);
	CU_ASSERT(map(s.cfd, 0x100000, PG, mem, RW) == -ENOMEM);
	/* Other requests are not affected. */
	CU_ASSERT(xioctl(s.cfd, VFIO_GET_API_VERSION, NULL) == 0);
	CU_ASSERT(map(s.cfd, 0x100000, PG, mem, RW) == -ENOMEM);
	CU_ASSERT(map(s.cfd, 0x100000, PG, mem, RW) == 0);
	/* Always, then replaced, then removed. */
	ksim_fail_request(K, VFIO_IOMMU_MAP_DMA, EFAULT, -1);
	for (i = 0; i < 5; i++)
		CU_ASSERT(map(s.cfd, 0x200000, PG, mem, RW) == -EFAULT);
	ksim_fail_request(K, VFIO_IOMMU_MAP_DMA, EPERM, -1);
	CU_ASSERT(map(s.cfd, 0x200000, PG, mem, RW) == -EPERM);
	ksim_fail_request(K, VFIO_IOMMU_MAP_DMA, EPERM, 0);
	CU_ASSERT(map(s.cfd, 0x200000, PG, mem, RW) == 0);
	ksim_fail_request(K, VFIO_IOMMU_UNMAP_DMA, EBUSY, -1);
	ksim_fail_request(K, VFIO_IOMMU_DIRTY_PAGES, EBUSY, -1);
	ksim_fail_clear(K);
	CU_ASSERT(unmap(s.cfd, 0x200000, PG, 0, NULL) == 0);
	CU_ASSERT(dirty(s.cfd, VFIO_IOMMU_DIRTY_PAGES_FLAG_START) == 0);
	free(mem);
	sim_free();
}

/* An injected close failure still closes the fd (as Linux does). */
static void test_fail_close(void)
{
	int before, cfd;

	sim_new(0, false);
	cfd = xopen("/dev/vfio/vfio");
	before = vmig_test_count_fds();
	ksim_fail_nth(K, 1, EIO);
	CU_ASSERT(xclose(cfd) == -EIO);
	CU_ASSERT(fcntl(cfd, F_GETFD) < 0);
	CU_ASSERT(vmig_test_count_fds() == before - 1);
	CU_ASSERT(xioctl(cfd, VFIO_GET_API_VERSION, NULL) == -EBADF);
	sim_free();
}

/* ------------------------------------------------------------------ */
/* iommufd's VFIO compatibility container                              */

static void test_compat(void)
{
	uint8_t buf[256] __attribute__((aligned(8)));
	struct vfio_iommu_type1_info *info = (void *)buf;
	const struct vfio_iommu_type1_info_dma_avail *avail;
	const struct vfio_iommu_type1_info_cap_iova_range *iova;
	struct unmap_bitmap u = {
		.argsz = sizeof(u),
		.flags = VFIO_DMA_UNMAP_FLAG_GET_DIRTY_BITMAP,
		.iova = 0x100000, .size = 4 * PG,
		.bitmap = { .pgsize = PG, .size = 8 },
	};
	uint8_t *mem = guest_mem(8 * PG);
	uint64_t bm[1] = { 0 }, size = 1;
	struct ksim_device *d;
	int cfd, gfd, dfd;

	sim_new(0, true);
	d = dev_add("0000:01:00.0", KSIM_DEV_PCI, 1, false);
	cfd = xopen("/dev/vfio/vfio");
	memset(buf, 0, sizeof(buf));
	info->argsz = sizeof(buf);
	/* No compat IOAS before a group joins. */
	CU_ASSERT(xioctl(cfd, VFIO_IOMMU_GET_INFO, info) == -ENODEV);
	CU_ASSERT(set_iommu(cfd, VFIO_TYPE1v2_IOMMU) == -ENODEV);
	gfd = group_open(1);
	CU_ASSERT(set_container(gfd, cfd) == 0);
	CU_ASSERT(xioctl(cfd, VFIO_CHECK_EXTENSION,
			 arg_of(VFIO_TYPE1v2_IOMMU)) == 1);
	CU_ASSERT(xioctl(cfd, VFIO_CHECK_EXTENSION,
			 arg_of(VFIO_TYPE1_NESTING_IOMMU)) == 0);
	CU_ASSERT(xioctl(cfd, VFIO_CHECK_EXTENSION,
			 arg_of(VFIO_UPDATE_VADDR)) == 0);
	CU_ASSERT(set_iommu(cfd, VFIO_TYPE1_NESTING_IOMMU) == -EINVAL);
	CU_ASSERT(set_iommu(cfd, VFIO_TYPE1v2_IOMMU) == 0);
	CU_ASSERT(set_iommu(cfd, VFIO_TYPE1v2_IOMMU) == 0);
	/* No type1 dirty tracking at all. */
	CU_ASSERT(dirty(cfd, VFIO_IOMMU_DIRTY_PAGES_FLAG_START) == -ENOTTY);
	dfd = device_fd(gfd, "0000:01:00.0");
	CU_ASSERT(dfd >= 0);

	memset(buf, 0, sizeof(buf));
	info->argsz = sizeof(buf);
	CU_ASSERT(xioctl(cfd, VFIO_IOMMU_GET_INFO, info) == 0);
	/* argsz comes back as the exact size: 24 + 16 + 16 + 2 ranges. */
	CU_ASSERT(info->argsz == 24 + 16 + 16 + 2 * 16);
	CU_ASSERT(info->cap_offset == 24);
	CU_ASSERT(cap_find(buf, VFIO_IOMMU_TYPE1_INFO_CAP_MIGRATION) == NULL);
	avail = (const void *)cap_find(buf, VFIO_IOMMU_TYPE1_INFO_DMA_AVAIL);
	CU_ASSERT(avail && avail->avail == UINT32_MAX);
	iova = (const void *)cap_find(buf,
				      VFIO_IOMMU_TYPE1_INFO_CAP_IOVA_RANGE);
	CU_ASSERT_FATAL(iova != NULL);
	CU_ASSERT(iova->nr_iovas == 2);
	CU_ASSERT(iova->iova_ranges[1].start == 0xfef00000);
	/* A short argsz: the full size back, no chain. */
	memset(buf, 0, sizeof(buf));
	info->argsz = sizeof(*info);
	CU_ASSERT(xioctl(cfd, VFIO_IOMMU_GET_INFO, info) == 0);
	CU_ASSERT(info->argsz == 24 + 16 + 16 + 2 * 16);
	CU_ASSERT(info->cap_offset == 0);
	CU_ASSERT(info->flags & VFIO_IOMMU_INFO_CAPS);

	CU_ASSERT(map(cfd, 0x100000, 4 * PG, mem, RW) == 0);
	CU_ASSERT(map(cfd, 0x102000, 4 * PG, mem, RW) == -EEXIST);
	CU_ASSERT(map(cfd, 0xfee00000, PG, mem, RW) == -EINVAL);
	CU_ASSERT(map(cfd, 0x200000, PG, mem, RW | VFIO_DMA_MAP_FLAG_VADDR) ==
		  -EINVAL);
	u.bitmap.data = (void *)bm;
	CU_ASSERT(xioctl(cfd, VFIO_IOMMU_UNMAP_DMA, &u) == -EINVAL);
	/* Devices write through the compat IOAS, untracked. */
	CU_ASSERT(ksim_dma_write(d, 0x100000, "io", 2) == 0);
	CU_ASSERT(memcmp(mem, "io", 2) == 0);
	/* iommufd unmap rules: cutting through is ENOENT, holes are 0. */
	CU_ASSERT(unmap(cfd, 0x101000, PG, 0, &size) == -ENOENT);
	CU_ASSERT(size == 0);
	CU_ASSERT(unmap(cfd, 0x300000, PG, 0, &size) == 0);
	CU_ASSERT(size == 0);
	CU_ASSERT(unmap(cfd, 0, 0, VFIO_DMA_UNMAP_FLAG_ALL, &size) == 0);
	CU_ASSERT(size == 4 * PG);
	CU_ASSERT(ksim_dma_write(d, 0x100000, "io", 2) == -EFAULT);
	free(mem);
	sim_free();
}

/* SET_IOMMU(TYPE1) on the compat container allows unmapping inside. */
static void test_compat_type1_cut(void)
{
	uint8_t *mem = guest_mem(4 * PG);
	uint64_t size = 0;
	int cfd, gfd;

	sim_new(0, true);
	dev_add("mdev-a", KSIM_DEV_MDEV, 2, false);
	cfd = xopen("/dev/vfio/vfio");
	gfd = group_open(2);
	CU_ASSERT(set_container(gfd, cfd) == 0);
	CU_ASSERT(set_iommu(cfd, VFIO_TYPE1_IOMMU) == 0);
	CU_ASSERT(map(cfd, 0x100000, 4 * PG, mem, RW) == 0);
	CU_ASSERT(unmap(cfd, 0x101000, PG, 0, &size) == 0);
	CU_ASSERT(size == PG);
	CU_ASSERT(map(cfd, 0x101000, PG, mem, RW) == 0);
	CU_ASSERT(map(cfd, 0x100000, PG, mem, RW) == -EEXIST);
	CU_ASSERT(map(cfd, 0x103000, PG, mem, RW) == -EEXIST);
	free(mem);
	sim_free();
}

/*
 * With iommufd a device fd does not hold its group's file: the group can
 * be closed (and, unplugged, be gone) while the device fd lives on.
 */
static void test_compat_unplug(void)
{
	uint8_t *mem = guest_mem(PG);
	struct vfio_group_status st = { .argsz = sizeof(st) };
	struct ksim_device *d;
	int cfd, gfd, dfd;

	sim_new(0, true);
	d = dev_add("mdev-a", KSIM_DEV_MDEV, 2, false);
	cfd = xopen("/dev/vfio/vfio");
	gfd = group_open(2);
	CU_ASSERT(set_container(gfd, cfd) == 0);
	dfd = device_fd(gfd, "mdev-a");
	CU_ASSERT_FATAL(dfd >= 0);
	CU_ASSERT(map(cfd, 0x100000, PG, mem, RW) == 0);
	CU_ASSERT(ksim_pin(d, 0x100000, 1) == 0);
	CU_ASSERT(ksim_dma_write(d, 0x100000, "z", 1) == 0);
	CU_ASSERT(xclose(gfd) == 0);
	/* Reopened at once: the device fd holds no group file here. */
	gfd = group_open(2);
	CU_ASSERT(gfd >= 0);
	CU_ASSERT(ksim_device_remove(K, d) == 0);
	CU_ASSERT(xioctl(gfd, VFIO_GROUP_GET_STATUS, &st) == -ENODEV);
	CU_ASSERT(xclose(gfd) == 0);
	CU_ASSERT(xioctl(dfd, VFIO_DEVICE_RESET, NULL) == -ENODEV);
	CU_ASSERT(xclose(dfd) == 0);
	/* The container and its mappings outlive the group (the IOAS). */
	CU_ASSERT(map(cfd, 0x100000, PG, mem, RW) == -EEXIST);
	free(mem);
	sim_free();
}

/* ------------------------------------------------------------------ */
/* Two threads                                                         */

struct race {
	int cfd;
	int errors;
};

static void *reader(void *opaque)
{
	struct race *r = opaque;
	uint64_t bm[1];
	int i;

	for (i = 0; i < 200; i++) {
		bm[0] = 0;
		if (get_bitmap(r->cfd, 0x100000, 64 * PG, PG, bm, 8))
			r->errors++;
	}
	return NULL;
}

/*
 * A DMA engine in one thread, a reader in another: every entry point
 * takes the simulator's lock, so both complete and nothing is lost from
 * the ground truth.
 */
static void test_threads(void)
{
	struct ksim_device_params p = {
		.name = "mdev-a", .kind = KSIM_DEV_MDEV, .group = 2,
		.dma = { .pattern = KSIM_DMA_RANDOM, .writes_per_step = 8,
			 .seed = 3 },
	};
	uint8_t *mem = guest_mem(64 * PG);
	struct race r = { 0 };
	int64_t writes = 0;
	struct setup s;
	pthread_t t;
	int i;

	sim_new(0, false);
	CU_ASSERT_FATAL(ksim_device_add(K, &p, NULL) == 0);
	s = setup_group(2, "mdev-a", VFIO_TYPE1v2_IOMMU);
	CU_ASSERT(map(s.cfd, 0x100000, 64 * PG, mem, RW) == 0);
	CU_ASSERT(dirty(s.cfd, VFIO_IOMMU_DIRTY_PAGES_FLAG_START) == 0);
	r.cfd = s.cfd;
	CU_ASSERT_FATAL(pthread_create(&t, NULL, reader, &r) == 0);
	for (i = 0; i < 200; i++)
		writes += ksim_step(K);
	CU_ASSERT(pthread_join(t, NULL) == 0);
	CU_ASSERT(r.errors == 0);
	CU_ASSERT(writes == 200 * 8);
	CU_ASSERT(ksim_truth_drain(K, NULL, NULL) == 200 * 8);
	free(mem);
	sim_free();
}

/* ------------------------------------------------------------------ */

static CU_TestInfo fd_tests[] = {
	{ "fds are real", test_fds_are_real },
	{ "foreign fds", test_foreign_fds },
	{ "no fd leaks", test_no_fd_leak },
	{ "paths", test_paths },
	{ "container and group file ops", test_container_file_ops },
	{ "real pipe objects", test_real_pipe_objects },
	CU_TEST_INFO_NULL,
};

static CU_TestInfo container_tests[] = {
	{ "extensions", test_extensions },
	{ "set iommu", test_set_iommu },
	{ "get info two-call and caps", test_get_info },
	{ "get info mdev only", test_get_info_mdev_only },
	{ "type1 page size", test_type1_pgsize },
	CU_TEST_INFO_NULL,
};

static CU_TestInfo map_tests[] = {
	{ "map rules", test_map_rules },
	{ "unmap rules", test_unmap_rules },
	{ "unmap v1", test_unmap_v1 },
	{ "update vaddr", test_update_vaddr },
	CU_TEST_INFO_NULL,
};

static CU_TestInfo dirty_tests[] = {
	{ "errnos of 1.9", test_dirty_errnos },
	{ "INT_MAX pages", test_dirty_int_max },
	{ "pci: everything, every time", test_dirty_pci_everything },
	{ "mid-word merge", test_dirty_mid_word_merge },
	{ "spare word quirk", test_dirty_spare_word_quirk },
	{ "mdev: pinned pages and dma_rw", test_dirty_mdev_pinned },
	{ "start twice", test_dirty_start_twice },
	{ "pins_pages promotion", test_pins_pages_promotion },
	{ "detach non-pinned group", test_detach_non_pinned_group },
	{ "unmap with dirty bitmap", test_unmap_get_dirty_bitmap },
	CU_TEST_INFO_NULL,
};

static CU_TestInfo group_tests[] = {
	{ "status", test_group_status },
	{ "set container errors", test_set_container_errors },
	{ "get device fd", test_get_device_fd },
	{ "unset container", test_unset_container },
	{ "group file held by devices", test_group_file_held },
	{ "device ioctls", test_device_ioctls },
	{ "pin rules", test_pin_rules },
	CU_TEST_INFO_NULL,
};

static CU_TestInfo dma_tests[] = {
	{ "real memory and truth", test_dma_real_memory },
	{ "faults", test_dma_faults },
	{ "QEMU edu model", test_edu },
	{ "spans two mappings", test_dma_spans_mappings },
	{ "mdev dma_rw", test_dma_mdev },
	{ "step random", test_step_random },
	{ "step sequential", test_step_sequential },
	{ "step hotspot", test_step_hotspot },
	{ "step with nothing mapped", test_step_nothing_mapped },
	{ "two threads", test_threads },
	CU_TEST_INFO_NULL,
};

static CU_TestInfo device_tests[] = {
	{ "add errors", test_device_add_errors },
	{ "unplug", test_unplug },
	{ "hot-plug into an attached group", test_hotplug_into_attached_group },
	CU_TEST_INFO_NULL,
};

static CU_TestInfo inject_tests[] = {
	{ "nth call", test_fail_nth },
	{ "by request", test_fail_request },
	{ "close", test_fail_close },
	CU_TEST_INFO_NULL,
};

static CU_TestInfo compat_tests[] = {
	{ "compat container", test_compat },
	{ "compat TYPE1 cuts", test_compat_type1_cut },
	{ "compat unplug", test_compat_unplug },
	CU_TEST_INFO_NULL,
};

static CU_SuiteInfo suites[] = {
	VMIG_SUITE("ksim fds", fd_tests),
	VMIG_SUITE("type1 container", container_tests),
	VMIG_SUITE("type1 map", map_tests),
	VMIG_SUITE("type1 dirty", dirty_tests),
	VMIG_SUITE("groups", group_tests),
	VMIG_SUITE("dma engine", dma_tests),
	VMIG_SUITE("devices", device_tests),
	VMIG_SUITE("failure injection", inject_tests),
	VMIG_SUITE("iommufd compat", compat_tests),
	CU_SUITE_INFO_NULL,
};

VMIG_TEST_MAIN(suites)
