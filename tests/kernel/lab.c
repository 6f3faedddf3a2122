/*
 * lab.c: the kernel lab program (vmig-lab): options, the scenario table,
 * the kernel of each scenario (real, or the simulator built from the
 * guest's device facts), the recording host table and the transcript.
 *
 *   vmig-lab --kernel real|sim --boot mock|viommu [device facts]
 *            [--plugin-dir DIR] [--scenario NAME]...
 *   vmig-lab --list
 *
 * Device facts, as the guest's /init found them:
 *   --pci BDF --pci-group N [--pci-cdev PATH]
 *   --mdev UUID --mdev-group N [--mdev-cdev PATH]   (repeatable)
 *
 * Exits 0 when every scenario run passed, 1 when one failed, 2 on a usage
 * error.
 */
#include <dlfcn.h>
#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/utsname.h>
#include <unistd.h>

#include <linux/vfio.h>

#include <vmig/linux-uapi.h>
#include "ksim/ksim.h"
#include "lab.h"
#include "lab_scenarios.h"

/*
 * The scenarios, by boot. Adding one is adding a line here (and its
 * function, in a lab_<topic>.c file declared in lab_scenarios.h).
 */
static const struct lab_scenario {
	const char *name;
	enum lab_boot boot;
	void (*run)(struct lab *lab);
} scenarios[] = {
	{ "iommufd-mock-smoke", LAB_BOOT_MOCK, lab_iommufd_mock_smoke },
	{ "iommufd-mock-rows", LAB_BOOT_MOCK, lab_iommufd_mock_rows },
	{ "iommufd-plugin-mock", LAB_BOOT_MOCK, lab_iommufd_plugin_mock },
	{ "iommufd-plugin-huge", LAB_BOOT_MOCK, lab_iommufd_plugin_huge },
	{ "e2e-iommufd-mock", LAB_BOOT_MOCK, lab_e2e_iommufd_mock },
	{ "type1-info", LAB_BOOT_VIOMMU, lab_type1_info },
	{ "type1-pci-all-dirty", LAB_BOOT_VIOMMU, lab_type1_pci_all_dirty },
	{ "type1-mdev-pinned", LAB_BOOT_VIOMMU, lab_type1_mdev_pinned },
	{ "type1-scope-change", LAB_BOOT_VIOMMU, lab_type1_scope_change },
	{ "type1-pci-session", LAB_BOOT_VIOMMU, lab_type1_pci_session },
	{ "iommufd-devices", LAB_BOOT_VIOMMU, lab_iommufd_devices },
	{ "vfio-device-features", LAB_BOOT_VIOMMU, lab_vfio_device_features },
	{ "iommufd-plugin-edu", LAB_BOOT_VIOMMU, lab_iommufd_plugin_edu },
	{ "device-dirty-mtty", LAB_BOOT_VIOMMU, lab_device_dirty_mtty },
	{ "migration-v2-mtty", LAB_BOOT_VIOMMU, lab_migration_v2_mtty },
	{ "e2e-type1-edu", LAB_BOOT_VIOMMU, lab_e2e_type1_edu },
};

#define NR_SCENARIOS (sizeof(scenarios) / sizeof(scenarios[0]))

#define DP_GET VFIO_IOMMU_DIRTY_PAGES_FLAG_GET_BITMAP

static const char *boot_name(enum lab_boot b)
{
	return b == LAB_BOOT_MOCK ? "mock" : "viommu";
}

/* ------------------------------------------------------------------ */
/* The transcript                                                      */

static pthread_mutex_t quiet_lock = PTHREAD_MUTEX_INITIALIZER;

/* Keeps a quiet line once (lab_quiet_end says each, sorted). */
static void quiet_keep(struct lab *lab, const char *line)
{
	char **arr;
	size_t i;

	for (i = 0; i < lab->nr_quiet; i++)
		if (!strcmp(lab->quiet_lines[i], line))
			return;
	arr = realloc(lab->quiet_lines, (lab->nr_quiet + 1) * sizeof(*arr));
	if (!arr)
		return;
	lab->quiet_lines = arr;
	arr[lab->nr_quiet] = strdup(line);
	if (arr[lab->nr_quiet])
		lab->nr_quiet++;
}

void lab_say(struct lab *lab, const char *fmt, ...)
{
	char line[512];
	va_list ap;

	if (!lab->quiet) {
		printf("#%03u ", ++lab->step);
		va_start(ap, fmt);
		vprintf(fmt, ap);
		va_end(ap);
		putchar('\n');
		return;
	}
	va_start(ap, fmt);
	vsnprintf(line, sizeof(line), fmt, ap);
	va_end(ap);
	pthread_mutex_lock(&quiet_lock);
	printf("~ %s\n", line);
	quiet_keep(lab, line);
	pthread_mutex_unlock(&quiet_lock);
}

void lab_quiet_begin(struct lab *lab)
{
	lab->quiet = true;
}

static int quiet_cmp(const void *a, const void *b)
{
	return strcmp(*(char *const *)a, *(char *const *)b);
}

void lab_quiet_end(struct lab *lab, const char *what)
{
	size_t i;

	pthread_mutex_lock(&quiet_lock);
	lab->quiet = false;
	pthread_mutex_unlock(&quiet_lock);
	qsort(lab->quiet_lines, lab->nr_quiet, sizeof(*lab->quiet_lines),
	      quiet_cmp);
	for (i = 0; i < lab->nr_quiet; i++) {
		lab_say(lab, "%s: %s", what, lab->quiet_lines[i]);
		free(lab->quiet_lines[i]);
	}
	free(lab->quiet_lines);
	lab->quiet_lines = NULL;
	lab->nr_quiet = 0;
}

int64_t lab_pread(struct lab *lab, int fd, void *buf, size_t len,
		  uint64_t offset)
{
	ssize_t n;

	if (!lab->real)
		return ksim_device_pread(lab->k, fd, buf, len, offset);
	n = pread(fd, buf, len, (off_t)offset);
	return n < 0 ? -errno : n;
}

int64_t lab_pwrite(struct lab *lab, int fd, const void *buf, size_t len,
		   uint64_t offset)
{
	ssize_t n;

	if (!lab->real)
		return ksim_device_pwrite(lab->k, fd, buf, len, offset);
	n = pwrite(fd, buf, len, (off_t)offset);
	return n < 0 ? -errno : n;
}

void lab_note(struct lab *lab, const char *fmt, ...)
{
	va_list ap;

	(void)lab;
	fputs("~ ", stdout);
	va_start(ap, fmt);
	vprintf(fmt, ap);
	va_end(ap);
	putchar('\n');
}

void lab_fail(struct lab *lab, int line, const char *fmt, ...)
{
	char msg[256];
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(msg, sizeof(msg), fmt, ap);
	va_end(ap);
	/* Shown, not compared: the simulator may fail elsewhere. */
	lab_note(lab, "FAILED (line %d): %s", line, msg);
	if (!lab->failed)
		snprintf(lab->reason, sizeof(lab->reason), "%s", msg);
	lab->failed = true;
}

static bool bit_test(const uint64_t *bm, uint64_t n)
{
	return (bm[n / 64] >> (n % 64)) & 1;
}

uint64_t lab_bits_count(const uint64_t *bm, uint64_t first, uint64_t n)
{
	uint64_t i, c = 0;

	for (i = first; i < first + n; i++)
		c += bit_test(bm, i);
	return c;
}

void lab_say_bitmap(struct lab *lab, const char *what, const uint64_t *bm,
		    uint64_t nbits)
{
	char *buf;
	size_t cap = 4096, len = 0;
	uint64_t i = 0, set = 0;

	buf = malloc(cap);
	if (!buf) {
		lab_say(lab, "%s: (out of memory)", what);
		return;
	}
	buf[0] = '\0';
	while (i < nbits) {
		uint64_t start;
		int n;

		if (!bit_test(bm, i)) {
			i++;
			continue;
		}
		start = i;
		while (i < nbits && bit_test(bm, i))
			i++;
		set += i - start;
		if (cap - len < 64) {
			char *p = realloc(buf, cap * 2);

			if (!p)
				break;
			buf = p;
			cap *= 2;
		}
		if (i - start == 1)
			n = snprintf(buf + len, cap - len, "%s%llu",
				     len ? "," : "",
				     (unsigned long long)start);
		else
			n = snprintf(buf + len, cap - len, "%s%llu-%llu",
				     len ? "," : "",
				     (unsigned long long)start,
				     (unsigned long long)(i - 1));
		len += (size_t)n;
	}
	lab_say(lab, "%s: %llu of %llu bits set: %s", what,
		(unsigned long long)set, (unsigned long long)nbits,
		set ? buf : "none");
	free(buf);
}

static const struct {
	int err;
	const char *name;
} errnames[] = {
#define E(x) { x, #x }
	E(EPERM), E(ENOENT), E(ESRCH), E(EINTR), E(EIO), E(ENXIO),
	E(E2BIG), E(EBADF), E(EAGAIN), E(ENOMEM), E(EACCES), E(EFAULT),
	E(EBUSY), E(EEXIST), E(EXDEV), E(ENODEV), E(EINVAL), E(ENFILE),
	E(EMFILE), E(ENOTTY), E(EFBIG), E(ENOSPC), E(ESPIPE), E(ERANGE),
	E(ENOSYS), E(ENOMSG), E(EOVERFLOW), E(EBADFD), E(EOPNOTSUPP),
	E(EADDRINUSE), E(ENOTCONN), E(EPROTO), E(EALREADY), E(ENOTSUP),
	E(EMSGSIZE),
#undef E
};

const char *lab_err(int ret, char *buf, size_t len)
{
	size_t i;

	if (ret < 0) {
		for (i = 0; i < sizeof(errnames) / sizeof(errnames[0]); i++) {
			if (errnames[i].err == -ret) {
				snprintf(buf, len, "-%s", errnames[i].name);
				return buf;
			}
		}
	}
	snprintf(buf, len, "%d", ret);
	return buf;
}

const char *lab_precision(uint32_t precision)
{
	switch (precision) {
	case VMIG_PRECISION_NONE:
		return "NONE";
	case VMIG_PRECISION_EXACT:
		return "EXACT";
	case VMIG_PRECISION_SUPERSET:
		return "SUPERSET";
	case VMIG_PRECISION_ALL_MAPPED:
		return "ALL_MAPPED";
	default:
		return "?";
	}
}

const char *lab_mig_state(uint32_t state)
{
	static const char *const names[] = {
		[VK_VFIO_STATE_ERROR] = "ERROR",
		[VK_VFIO_STATE_STOP] = "STOP",
		[VK_VFIO_STATE_RUNNING] = "RUNNING",
		[VK_VFIO_STATE_STOP_COPY] = "STOP_COPY",
		[VK_VFIO_STATE_RESUMING] = "RESUMING",
		[VK_VFIO_STATE_RUNNING_P2P] = "RUNNING_P2P",
		[VK_VFIO_STATE_PRE_COPY] = "PRE_COPY",
		[VK_VFIO_STATE_PRE_COPY_P2P] = "PRE_COPY_P2P",
	};

	return state < VK_VFIO_STATE_NR ? names[state] : "?";
}

/*
 * A size that depends on the device's own image format (mtty's few dozen
 * bytes, ksim's 4 KiB chunks): compared as zero or not, the number shown.
 */
static const char *size_class(uint64_t v)
{
	return v ? "nonzero" : "0";
}

/* ------------------------------------------------------------------ */
/* The recording host table                                            */

static enum lab_fd_kind fd_kind(struct lab *lab, int fd)
{
	return fd >= 0 && fd < LAB_MAX_FDS ? lab->fd_kind[fd] : LAB_FD_NONE;
}

static void fd_set_kind(struct lab *lab, int fd, enum lab_fd_kind kind)
{
	if (fd >= 0 && fd < LAB_MAX_FDS)
		lab->fd_kind[fd] = (unsigned char)kind;
}

static const char *kind_name(enum lab_fd_kind kind)
{
	static const char *const kinds[] = {
		[LAB_FD_NONE] = "unknown",
		[LAB_FD_CONTAINER] = "container",
		[LAB_FD_GROUP] = "group",
		[LAB_FD_DEVICE] = "device",
		[LAB_FD_IOMMUFD] = "iommufd",
		[LAB_FD_OTHER] = "other",
		[LAB_FD_SAVE_DATA] = "saving-data",
		[LAB_FD_RESUME_DATA] = "resuming-data",
		[LAB_FD_MOCK_DEVICE] = "mock-device",
	};

	return (unsigned int)kind < sizeof(kinds) / sizeof(kinds[0]) ?
		       kinds[kind] : "unknown";
}

static bool data_kind(enum lab_fd_kind kind)
{
	return kind == LAB_FD_SAVE_DATA || kind == LAB_FD_RESUME_DATA;
}

static enum lab_fd_kind path_kind(const char *path)
{
	if (!path)
		return LAB_FD_OTHER;
	if (!strcmp(path, "/dev/vfio/vfio"))
		return LAB_FD_CONTAINER;
	if (!strcmp(path, "/dev/iommu"))
		return LAB_FD_IOMMUFD;
	if (!strncmp(path, "/dev/vfio/devices/", 18))
		return LAB_FD_DEVICE;
	if (!strncmp(path, "/dev/vfio/", 10))
		return LAB_FD_GROUP;
	return LAB_FD_OTHER;
}

/* A user pointer the recorder may read: not NULL, not in the low page. */
static bool readable(const void *p)
{
	uintptr_t v = (uintptr_t)p;

	return v >= 0x10000 && v < 0x00007ffffffff000ull;
}

struct req_name {
	enum lab_fd_kind kind;
	unsigned long req;
	const char *name;
};

/*
 * Request numbers are reused between fd types (0x3b75 is the container's
 * DIRTY_PAGES and the device's FEATURE), so names are by fd type.
 */
static const struct req_name req_names[] = {
#define C(r) { LAB_FD_CONTAINER, r, #r }
#define G(r) { LAB_FD_GROUP, r, #r }
#define D(r) { LAB_FD_DEVICE, r, #r }
#define I(r, n) { LAB_FD_IOMMUFD, r, n }
	C(VFIO_GET_API_VERSION), C(VFIO_CHECK_EXTENSION), C(VFIO_SET_IOMMU),
	C(VFIO_IOMMU_GET_INFO), C(VFIO_IOMMU_MAP_DMA),
	C(VFIO_IOMMU_UNMAP_DMA), C(VFIO_IOMMU_DIRTY_PAGES),
	G(VFIO_GROUP_GET_STATUS), G(VFIO_GROUP_SET_CONTAINER),
	G(VFIO_GROUP_UNSET_CONTAINER), G(VFIO_GROUP_GET_DEVICE_FD),
	D(VFIO_DEVICE_GET_INFO), D(VFIO_DEVICE_GET_REGION_INFO),
	D(VFIO_DEVICE_GET_IRQ_INFO), D(VFIO_DEVICE_SET_IRQS),
	D(VFIO_DEVICE_RESET), D(VFIO_DEVICE_FEATURE),
	{ LAB_FD_DEVICE, VK_VFIO_DEVICE_BIND_IOMMUFD,
	  "VFIO_DEVICE_BIND_IOMMUFD" },
	{ LAB_FD_DEVICE, VK_VFIO_DEVICE_ATTACH_IOMMUFD_PT,
	  "VFIO_DEVICE_ATTACH_IOMMUFD_PT" },
	{ LAB_FD_DEVICE, VK_VFIO_DEVICE_DETACH_IOMMUFD_PT,
	  "VFIO_DEVICE_DETACH_IOMMUFD_PT" },
	I(VK_IOMMU_DESTROY, "IOMMU_DESTROY"),
	I(VK_IOMMU_IOAS_ALLOC, "IOMMU_IOAS_ALLOC"),
	I(VK_IOMMU_IOAS_ALLOW_IOVAS, "IOMMU_IOAS_ALLOW_IOVAS"),
	I(VK_IOMMU_IOAS_COPY, "IOMMU_IOAS_COPY"),
	I(VK_IOMMU_IOAS_IOVA_RANGES, "IOMMU_IOAS_IOVA_RANGES"),
	I(VK_IOMMU_IOAS_MAP, "IOMMU_IOAS_MAP"),
	I(VK_IOMMU_IOAS_UNMAP, "IOMMU_IOAS_UNMAP"),
	I(VK_IOMMU_OPTION, "IOMMU_OPTION"),
	I(VK_IOMMU_VFIO_IOAS, "IOMMU_VFIO_IOAS"),
	I(VK_IOMMU_HWPT_ALLOC, "IOMMU_HWPT_ALLOC"),
	I(VK_IOMMU_GET_HW_INFO, "IOMMU_GET_HW_INFO"),
	I(VK_IOMMU_HWPT_SET_DIRTY_TRACKING, "IOMMU_HWPT_SET_DIRTY_TRACKING"),
	I(VK_IOMMU_HWPT_GET_DIRTY_BITMAP, "IOMMU_HWPT_GET_DIRTY_BITMAP"),
	I(VK_IOMMU_HWPT_INVALIDATE, "IOMMU_HWPT_INVALIDATE"),
	I(VK_IOMMU_TEST_CMD, "IOMMU_TEST_CMD"),
	/* iommufd answers the type1 container requests (compat). */
	I(VFIO_GET_API_VERSION, "VFIO_GET_API_VERSION"),
	I(VFIO_CHECK_EXTENSION, "VFIO_CHECK_EXTENSION"),
	I(VFIO_SET_IOMMU, "VFIO_SET_IOMMU"),
	I(VFIO_IOMMU_GET_INFO, "VFIO_IOMMU_GET_INFO"),
	I(VFIO_IOMMU_MAP_DMA, "VFIO_IOMMU_MAP_DMA"),
	I(VFIO_IOMMU_UNMAP_DMA, "VFIO_IOMMU_UNMAP_DMA"),
	I(VFIO_IOMMU_DIRTY_PAGES, "VFIO_IOMMU_DIRTY_PAGES"),
	/* The only request of a migration data fd. */
	{ LAB_FD_SAVE_DATA, VK_VFIO_MIG_GET_PRECOPY_INFO,
	  "VFIO_MIG_GET_PRECOPY_INFO" },
	{ LAB_FD_RESUME_DATA, VK_VFIO_MIG_GET_PRECOPY_INFO,
	  "VFIO_MIG_GET_PRECOPY_INFO" },
	{ LAB_FD_MOCK_DEVICE, VK_VFIO_DEVICE_ATTACH_IOMMUFD_PT,
	  "VFIO_DEVICE_ATTACH_IOMMUFD_PT" },
#undef C
#undef G
#undef D
#undef I
};

static const char *req_name(enum lab_fd_kind kind, unsigned long req,
			    char *buf, size_t len)
{
	size_t i;

	for (i = 0; i < sizeof(req_names) / sizeof(req_names[0]); i++)
		if (req_names[i].kind == kind && req_names[i].req == req)
			return req_names[i].name;
	snprintf(buf, len, "0x%lx", req);
	return buf;
}

static const char *test_op_name(uint32_t op)
{
	static const char *const names[] = {
		[VK_IOMMU_TEST_OP_ADD_RESERVED] = "ADD_RESERVED",
		[VK_IOMMU_TEST_OP_MOCK_DOMAIN] = "MOCK_DOMAIN",
		[VK_IOMMU_TEST_OP_MD_CHECK_MAP] = "MD_CHECK_MAP",
		[VK_IOMMU_TEST_OP_MD_CHECK_REFS] = "MD_CHECK_REFS",
		[VK_IOMMU_TEST_OP_CREATE_ACCESS] = "CREATE_ACCESS",
		[VK_IOMMU_TEST_OP_DESTROY_ACCESS_PAGES] =
			"DESTROY_ACCESS_PAGES",
		[VK_IOMMU_TEST_OP_ACCESS_PAGES] = "ACCESS_PAGES",
		[VK_IOMMU_TEST_OP_ACCESS_RW] = "ACCESS_RW",
		[VK_IOMMU_TEST_OP_SET_TEMP_MEMORY_LIMIT] =
			"SET_TEMP_MEMORY_LIMIT",
		[VK_IOMMU_TEST_OP_MOCK_DOMAIN_REPLACE] = "MOCK_DOMAIN_REPLACE",
		[VK_IOMMU_TEST_OP_ACCESS_REPLACE_IOAS] = "ACCESS_REPLACE_IOAS",
		[VK_IOMMU_TEST_OP_MOCK_DOMAIN_FLAGS] = "MOCK_DOMAIN_FLAGS",
		[VK_IOMMU_TEST_OP_DIRTY] = "DIRTY",
		[VK_IOMMU_TEST_OP_MD_CHECK_IOTLB] = "MD_CHECK_IOTLB",
		[VK_IOMMU_TEST_OP_TRIGGER_IOPF] = "TRIGGER_IOPF",
	};

	return op < sizeof(names) / sizeof(names[0]) && names[op] ?
		       names[op] : "?";
}

static const char *dirty_flags_name(uint32_t flags)
{
	switch (flags) {
	case VFIO_IOMMU_DIRTY_PAGES_FLAG_START:
		return "START";
	case VFIO_IOMMU_DIRTY_PAGES_FLAG_STOP:
		return "STOP";
	case VFIO_IOMMU_DIRTY_PAGES_FLAG_GET_BITMAP:
		return "GET_BITMAP";
	default:
		return NULL;
	}
}

/* Whether a VFIO_DEVICE_FEATURE call carries a payload of len bytes. */
static bool feature_has(const struct vfio_device_feature *f, uint32_t op,
			size_t len)
{
	return (f->flags & op) && !(f->flags & VFIO_DEVICE_FEATURE_PROBE) &&
	       f->argsz >= sizeof(*f) + len;
}

/* The payload of the features the lab's scenarios use, as input. */
static void feature_input(const struct vfio_device_feature *f, char *buf,
			  size_t len)
{
	const uint32_t SET = VFIO_DEVICE_FEATURE_SET,
		       GET = VFIO_DEVICE_FEATURE_GET;

	buf[0] = '\0';
	switch (f->flags & VFIO_DEVICE_FEATURE_MASK) {
	case VFIO_DEVICE_FEATURE_MIG_DEVICE_STATE:
		if (feature_has(f, SET, 8)) {
			const struct vfio_device_feature_mig_state *m =
				(const void *)f->data;

			snprintf(buf, len, " state=%s",
				 lab_mig_state(m->device_state));
		}
		break;
	case VFIO_DEVICE_FEATURE_DMA_LOGGING_START:
		if (feature_has(f, SET, 24)) {
			const struct vfio_device_feature_dma_logging_control
				*c = (const void *)f->data;

			snprintf(buf, len, " page_size=%llu num_ranges=%u",
				 (unsigned long long)c->page_size,
				 c->num_ranges);
		}
		break;
	case VFIO_DEVICE_FEATURE_DMA_LOGGING_REPORT:
		if (feature_has(f, GET, 32)) {
			const struct vfio_device_feature_dma_logging_report
				*r = (const void *)f->data;

			snprintf(buf, len,
				 " iova=0x%llx length=0x%llx page_size=%llu",
				 (unsigned long long)r->iova,
				 (unsigned long long)r->length,
				 (unsigned long long)r->page_size);
		}
		break;
	default:
		break;
	}
}

/* What a successful VFIO_DEVICE_FEATURE gave back that can be compared. */
static void feature_output(struct lab *lab, const struct vfio_device_feature *f)
{
	const uint32_t SET = VFIO_DEVICE_FEATURE_SET,
		       GET = VFIO_DEVICE_FEATURE_GET;

	switch (f->flags & VFIO_DEVICE_FEATURE_MASK) {
	case VFIO_DEVICE_FEATURE_MIGRATION:
		if (feature_has(f, GET, 8)) {
			const struct vfio_device_feature_migration *m =
				(const void *)f->data;

			lab_say(lab, "  migration flags=0x%llx",
				(unsigned long long)m->flags);
		}
		break;
	case VFIO_DEVICE_FEATURE_MIG_DEVICE_STATE:
		if (feature_has(f, GET | SET, 8)) {
			const struct vfio_device_feature_mig_state *m =
				(const void *)f->data;

			lab_say(lab, "  device_state=%s data_fd=%s",
				lab_mig_state(m->device_state),
				m->data_fd < 0 ? "none" : "fd");
		}
		break;
	case VK_VFIO_DEVICE_FEATURE_MIG_DATA_SIZE:
		if (feature_has(f, GET, 8)) {
			const struct vk_vfio_device_feature_mig_data_size *m =
				(const void *)f->data;

			lab_say(lab, "  stop_copy_length=%s",
				size_class(m->stop_copy_length));
			lab_note(lab, "stop_copy_length=%llu",
				 (unsigned long long)m->stop_copy_length);
		}
		break;
	case VFIO_DEVICE_FEATURE_DMA_LOGGING_START:
		if (feature_has(f, SET, 24)) {
			const struct vfio_device_feature_dma_logging_control
				*c = (const void *)f->data;

			lab_say(lab, "  page_size=%llu",
				(unsigned long long)c->page_size);
		}
		break;
	case VFIO_DEVICE_FEATURE_DMA_LOGGING_REPORT:
		if (feature_has(f, GET, 32)) {
			const struct vfio_device_feature_dma_logging_report
				*r = (const void *)f->data;

			if (r->page_size && readable((void *)(uintptr_t)
							     r->bitmap))
				lab_say_bitmap(lab, "  report",
					       (const uint64_t *)(uintptr_t)
						       r->bitmap,
					       r->length / r->page_size);
		}
		break;
	default:
		break;
	}
}

/*
 * What a call was asked to do, from its input (the request's own
 * arguments, never a pointer or an fd): appended to the request's name.
 */
static void describe_input(enum lab_fd_kind kind, unsigned long req,
			   const void *arg, char *buf, size_t len)
{
	buf[0] = '\0';
	if (kind == LAB_FD_CONTAINER || kind == LAB_FD_IOMMUFD) {
		if (req == VFIO_CHECK_EXTENSION || req == VFIO_SET_IOMMU) {
			snprintf(buf, len, "(%lu)", (unsigned long)arg);
			return;
		}
	}
	if (!readable(arg))
		return;
	if (kind == LAB_FD_CONTAINER) {
		if (req == VFIO_IOMMU_DIRTY_PAGES) {
			const struct vfio_iommu_type1_dirty_bitmap *db = arg;
			const struct vfio_iommu_type1_dirty_bitmap_get *g =
				(const void *)db->data;
			const char *f = dirty_flags_name(db->flags);
			char fb[16];

			if (!f) {
				snprintf(fb, sizeof(fb), "0x%x", db->flags);
				f = fb;
			}
			if (db->flags == DP_GET &&
			    db->argsz >= sizeof(*db) + sizeof(*g))
				snprintf(buf, len,
					 "(%s argsz=%u iova=0x%llx size=0x%llx "
					 "pgsize=%llu bitmap.size=%llu)",
					 f, db->argsz,
					 (unsigned long long)g->iova,
					 (unsigned long long)g->size,
					 (unsigned long long)g->bitmap.pgsize,
					 (unsigned long long)g->bitmap.size);
			else
				snprintf(buf, len, "(%s argsz=%u)", f,
					 db->argsz);
		} else if (req == VFIO_IOMMU_MAP_DMA) {
			const struct vfio_iommu_type1_dma_map *m = arg;

			snprintf(buf, len,
				 "(iova=0x%llx size=0x%llx flags=0x%x)",
				 (unsigned long long)m->iova,
				 (unsigned long long)m->size, m->flags);
		} else if (req == VFIO_IOMMU_UNMAP_DMA) {
			const struct vfio_iommu_type1_dma_unmap *u = arg;
			const struct vfio_bitmap *b = (const void *)u->data;

			if (u->flags & VFIO_DMA_UNMAP_FLAG_GET_DIRTY_BITMAP &&
			    u->argsz >= sizeof(*u) + sizeof(*b))
				snprintf(buf, len,
					 "(flags=0x%x argsz=%u iova=0x%llx "
					 "size=0x%llx pgsize=%llu "
					 "bitmap.size=%llu)",
					 u->flags, u->argsz,
					 (unsigned long long)u->iova,
					 (unsigned long long)u->size,
					 (unsigned long long)b->pgsize,
					 (unsigned long long)b->size);
			else
				snprintf(buf, len,
					 "(flags=0x%x argsz=%u iova=0x%llx "
					 "size=0x%llx)",
					 u->flags, u->argsz,
					 (unsigned long long)u->iova,
					 (unsigned long long)u->size);
		} else if (req == VFIO_IOMMU_GET_INFO) {
			const struct vfio_iommu_type1_info *i = arg;

			snprintf(buf, len, "(argsz=%u)", i->argsz);
		}
	} else if (kind == LAB_FD_GROUP) {
		if (req == VFIO_GROUP_GET_DEVICE_FD)
			snprintf(buf, len, "(%.64s)", (const char *)arg);
	} else if (kind == LAB_FD_DEVICE) {
		if (req == VFIO_DEVICE_FEATURE) {
			const struct vfio_device_feature *f = arg;
			char more[128];

			feature_input(f, more, sizeof(more));
			snprintf(buf, len, "(feature=%u%s%s%s argsz=%u%s)",
				 f->flags & VFIO_DEVICE_FEATURE_MASK,
				 f->flags & VFIO_DEVICE_FEATURE_GET ? " GET" :
								      "",
				 f->flags & VFIO_DEVICE_FEATURE_SET ? " SET" :
								      "",
				 f->flags & VFIO_DEVICE_FEATURE_PROBE ?
					 " PROBE" : "",
				 f->argsz, more);
		}
	} else if (data_kind(kind)) {
		if (req == VK_VFIO_MIG_GET_PRECOPY_INFO) {
			const struct vk_vfio_precopy_info *p = arg;

			snprintf(buf, len, "(argsz=%u)", p->argsz);
		}
	} else if (kind == LAB_FD_IOMMUFD) {
		if (req == VK_IOMMU_TEST_CMD) {
			const struct vk_iommu_test_cmd *t = arg;

			if (t->op == VK_IOMMU_TEST_OP_DIRTY)
				snprintf(buf, len,
					 "(DIRTY iova=0x%llx length=0x%llx "
					 "page_size=%llu)",
					 (unsigned long long)t->dirty.iova,
					 (unsigned long long)t->dirty.length,
					 (unsigned long long)
						 t->dirty.page_size);
			else if (t->op == VK_IOMMU_TEST_OP_MOCK_DOMAIN_FLAGS)
				snprintf(buf, len, "(%s dev_flags=0x%x)",
					 test_op_name(t->op),
					 t->mock_domain_flags.dev_flags);
			else
				snprintf(buf, len, "(%s)",
					 test_op_name(t->op));
		} else if (req == VK_IOMMU_IOAS_MAP) {
			const struct vk_iommu_ioas_map *m = arg;

			if (m->flags & VK_IOMMU_IOAS_MAP_FIXED_IOVA)
				snprintf(buf, len,
					 "(flags=0x%x iova=0x%llx "
					 "length=0x%llx)",
					 m->flags, (unsigned long long)m->iova,
					 (unsigned long long)m->length);
			else
				snprintf(buf, len, "(flags=0x%x length=0x%llx)",
					 m->flags,
					 (unsigned long long)m->length);
		} else if (req == VK_IOMMU_IOAS_UNMAP) {
			const struct vk_iommu_ioas_unmap *u = arg;

			snprintf(buf, len, "(iova=0x%llx length=0x%llx)",
				 (unsigned long long)u->iova,
				 (unsigned long long)u->length);
		} else if (req == VK_IOMMU_HWPT_ALLOC) {
			const struct vk_iommu_hwpt_alloc *h = arg;

			snprintf(buf, len, "(flags=0x%x data_type=%u)",
				 h->flags, h->data_type);
		} else if (req == VK_IOMMU_HWPT_SET_DIRTY_TRACKING) {
			const struct vk_iommu_hwpt_set_dirty_tracking *s = arg;

			snprintf(buf, len, "(flags=0x%x)", s->flags);
		} else if (req == VK_IOMMU_HWPT_GET_DIRTY_BITMAP) {
			const struct vk_iommu_hwpt_get_dirty_bitmap *g = arg;

			snprintf(buf, len,
				 "(flags=0x%x iova=0x%llx length=0x%llx "
				 "page_size=%llu)",
				 g->flags, (unsigned long long)g->iova,
				 (unsigned long long)g->length,
				 (unsigned long long)g->page_size);
		}
	}
}

/* The capability chain of a VFIO_IOMMU_GET_INFO answer, one line each. */
static void say_info(struct lab *lab, const struct vfio_iommu_type1_info *i)
{
	const uint8_t *base = (const void *)i;
	uint32_t off = i->cap_offset;
	unsigned int hops = 0;

	lab_say(lab, "  info: argsz=%u flags=0x%x cap_offset=%u "
		     "iova_pgsizes=0x%llx",
		i->argsz, i->flags, i->cap_offset,
		(unsigned long long)i->iova_pgsizes);
	if (!(i->flags & VFIO_IOMMU_INFO_CAPS))
		return;
	while (off) {
		struct vfio_info_cap_header h;

		if (hops++ > 16 || off < sizeof(*i) ||
		    off + sizeof(h) > i->argsz) {
			lab_say(lab, "  cap chain broken at offset %u", off);
			return;
		}
		memcpy(&h, base + off, sizeof(h));
		if (h.id == VFIO_IOMMU_TYPE1_INFO_CAP_MIGRATION &&
		    off + sizeof(struct vfio_iommu_type1_info_cap_migration) <=
			    i->argsz) {
			struct vfio_iommu_type1_info_cap_migration m;

			memcpy(&m, base + off, sizeof(m));
			lab_say(lab, "  cap MIGRATION v%u @%u: flags=0x%x "
				     "pgsize_bitmap=0x%llx "
				     "max_dirty_bitmap_size=0x%llx",
				h.version, off, m.flags,
				(unsigned long long)m.pgsize_bitmap,
				(unsigned long long)m.max_dirty_bitmap_size);
		} else if (h.id == VFIO_IOMMU_TYPE1_INFO_DMA_AVAIL &&
			   off + sizeof(struct vfio_iommu_type1_info_dma_avail)
				   <= i->argsz) {
			struct vfio_iommu_type1_info_dma_avail a;

			memcpy(&a, base + off, sizeof(a));
			lab_say(lab, "  cap DMA_AVAIL v%u @%u: avail=%u",
				h.version, off, a.avail);
		} else if (h.id == VFIO_IOMMU_TYPE1_INFO_CAP_IOVA_RANGE) {
			struct vfio_iommu_type1_info_cap_iova_range r;
			char rs[512];
			size_t n = 0;
			uint32_t k;

			memcpy(&r, base + off, sizeof(r));
			rs[0] = '\0';
			for (k = 0; k < r.nr_iovas && n < sizeof(rs) - 48;
			     k++) {
				struct vfio_iova_range v;
				size_t at = off + sizeof(r) + k * sizeof(v);

				if (at + sizeof(v) > i->argsz)
					break;
				memcpy(&v, base + at, sizeof(v));
				n += (size_t)snprintf(
					rs + n, sizeof(rs) - n,
					" [0x%llx-0x%llx]",
					(unsigned long long)v.start,
					(unsigned long long)v.end);
			}
			lab_say(lab, "  cap IOVA_RANGE v%u @%u: %u ranges:%s",
				h.version, off, r.nr_iovas, rs);
		} else {
			lab_say(lab, "  cap id=%u v%u @%u", h.id, h.version,
				off);
		}
		off = h.next;
	}
}

/* What a successful call gave back that can be compared. */
static void describe_output(struct lab *lab, enum lab_fd_kind kind,
			    unsigned long req, void *arg)
{
	if (!readable(arg))
		return;
	if (kind == LAB_FD_CONTAINER || kind == LAB_FD_IOMMUFD) {
		if (req == VFIO_IOMMU_GET_INFO) {
			say_info(lab, arg);
		} else if (req == VFIO_IOMMU_DIRTY_PAGES) {
			struct vfio_iommu_type1_dirty_bitmap *db = arg;
			struct vfio_iommu_type1_dirty_bitmap_get *g =
				(void *)db->data;

			if (db->flags != DP_GET ||
			    !g->bitmap.pgsize || !readable(g->bitmap.data))
				return;
			lab_say_bitmap(lab, "  bitmap",
				       (const uint64_t *)g->bitmap.data,
				       g->size / g->bitmap.pgsize);
		} else if (req == VFIO_IOMMU_UNMAP_DMA) {
			struct vfio_iommu_type1_dma_unmap *u = arg;
			struct vfio_bitmap *b = (void *)u->data;

			lab_say(lab, "  unmapped size=0x%llx",
				(unsigned long long)u->size);
			if (u->flags & VFIO_DMA_UNMAP_FLAG_GET_DIRTY_BITMAP &&
			    b->pgsize && readable(b->data))
				lab_say_bitmap(lab, "  bitmap",
					       (const uint64_t *)b->data,
					       u->size / b->pgsize);
		}
	}
	if (kind == LAB_FD_GROUP && req == VFIO_GROUP_GET_STATUS) {
		struct vfio_group_status *st = arg;

		lab_say(lab, "  status flags=0x%x", st->flags);
	} else if (kind == LAB_FD_DEVICE && req == VFIO_DEVICE_FEATURE) {
		feature_output(lab, arg);
	} else if (data_kind(kind) && req == VK_VFIO_MIG_GET_PRECOPY_INFO) {
		struct vk_vfio_precopy_info *p = arg;

		lab_say(lab, "  initial_bytes=%s dirty_bytes=%s",
			size_class(p->initial_bytes),
			size_class(p->dirty_bytes));
		lab_note(lab, "initial_bytes=%llu dirty_bytes=%llu",
			 (unsigned long long)p->initial_bytes,
			 (unsigned long long)p->dirty_bytes);
	} else if (kind == LAB_FD_IOMMUFD) {
		if (req == VK_IOMMU_TEST_CMD) {
			struct vk_iommu_test_cmd *t = arg;

			if (t->op == VK_IOMMU_TEST_OP_DIRTY)
				lab_say(lab, "  out_nr_dirty=%llu",
					(unsigned long long)
						t->dirty.out_nr_dirty);
		} else if (req == VK_IOMMU_HWPT_GET_DIRTY_BITMAP) {
			struct vk_iommu_hwpt_get_dirty_bitmap *g = arg;

			if (g->page_size &&
			    readable((void *)(uintptr_t)g->data))
				lab_say_bitmap(lab, "  bitmap",
					       (const uint64_t *)(uintptr_t)
						       g->data,
					       g->length / g->page_size);
		} else if (req == VK_IOMMU_GET_HW_INFO) {
			struct vk_iommu_hw_info *h = arg;

			lab_say(lab, "  hw_info: data_type=0x%x data_len=%u "
				     "capabilities=0x%llx",
				h->out_data_type, h->data_len,
				(unsigned long long)h->out_capabilities);
		} else if (req == VK_IOMMU_IOAS_IOVA_RANGES) {
			struct vk_iommu_ioas_iova_ranges *r = arg;

			lab_say(lab, "  num_iovas=%u alignment=0x%llx",
				r->num_iovas,
				(unsigned long long)r->out_iova_alignment);
		} else if (req == VK_IOMMU_IOAS_UNMAP) {
			struct vk_iommu_ioas_unmap *u = arg;

			lab_say(lab, "  unmapped length=0x%llx",
				(unsigned long long)u->length);
		}
	}
}

static int rec_open(void *kctx, const char *path, int flags)
{
	struct lab *lab = kctx;
	int fd = lab->kernel->open(lab->kernel->kctx, path, flags);
	char eb[32];

	if (fd >= 0) {
		fd_set_kind(lab, fd, path_kind(path));
		lab_say(lab, "open %s = fd", path ? path : "(null)");
	} else {
		lab_say(lab, "open %s = %s", path ? path : "(null)",
			lab_err(fd, eb, sizeof(eb)));
	}
	return fd;
}

static struct lab_mock_device *mock_find(struct lab *lab, int fd)
{
	unsigned int i;

	for (i = 0; i < LAB_MAX_MOCK_DEVICES; i++)
		if (lab->mock_devices[i].fd == fd && fd >= 0)
			return &lab->mock_devices[i];
	return NULL;
}

int lab_mock_device_open(struct lab *lab, int iommufd, uint32_t stdev_id)
{
	struct lab_mock_device *m = NULL;
	unsigned int i;
	int fd;

	for (i = 0; !m && i < LAB_MAX_MOCK_DEVICES; i++)
		if (lab->mock_devices[i].fd < 0)
			m = &lab->mock_devices[i];
	if (!m)
		return -EMFILE;
	/* A descriptor of the lab's process, never the kernel's under test. */
	fd = open("/dev/null", O_RDONLY | O_CLOEXEC);
	if (fd < 0)
		return -errno;
	if (fd >= LAB_MAX_FDS) {
		close(fd);
		return -EMFILE;
	}
	m->fd = fd;
	m->iommufd = iommufd;
	m->stdev_id = stdev_id;
	fd_set_kind(lab, fd, LAB_FD_MOCK_DEVICE);
	lab_say(lab, "mock-device stand-in opened");
	return fd;
}

void lab_mock_device_close(struct lab *lab, int fd)
{
	struct lab_mock_device *m = mock_find(lab, fd);

	if (!m)
		return;
	close(fd);
	fd_set_kind(lab, fd, LAB_FD_NONE);
	m->fd = -1;
	lab_say(lab, "mock-device stand-in closed");
}

/*
 * An ioctl on a mock device's stand-in: VFIO_DEVICE_ATTACH_IOMMUFD_PT
 * becomes IOMMU_TEST_OP_MOCK_DOMAIN_REPLACE of its selftest object, after
 * the vfio core's own checks of the request (vfio_df_ioctl_attach_pt());
 * nothing else has a meaning there.
 */
static int mock_device_ioctl(struct lab *lab, struct lab_mock_device *m,
			     unsigned long request, void *arg)
{
	struct vk_vfio_device_attach_iommufd_pt *a = arg;
	struct vk_iommu_test_cmd t = {
		.size = sizeof(t),
		.op = VK_IOMMU_TEST_OP_MOCK_DOMAIN_REPLACE,
		.id = m->stdev_id,
	};
	char eb[32];
	int ret;

	if (request != VK_VFIO_DEVICE_ATTACH_IOMMUFD_PT || !readable(arg)) {
		lab_say(lab, "ioctl 0x%lx on mock-device = -ENOTTY (the lab "
			     "has no such request for a mock device)",
			request);
		return -ENOTTY;
	}
	if (a->argsz < sizeof(*a) || a->flags) {
		lab_say(lab, "ioctl VFIO_DEVICE_ATTACH_IOMMUFD_PT(argsz=%u "
			     "flags=0x%x) on mock-device = -EINVAL (the vfio "
			     "core's checks)",
			a->argsz, a->flags);
		return -EINVAL;
	}
	/* mock_domain_replace.pt_id: the first word of the union. */
	memcpy(t.raw, &a->pt_id, sizeof(a->pt_id));
	ret = lab->kernel->ioctl(lab->kernel->kctx, m->iommufd,
				 VK_IOMMU_TEST_CMD, &t);
	lab_say(lab, "ioctl VFIO_DEVICE_ATTACH_IOMMUFD_PT on mock-device, as "
		     "IOMMU_TEST_CMD(MOCK_DOMAIN_REPLACE) = %s",
		lab_err(ret, eb, sizeof(eb)));
	if (!ret)
		memcpy(&a->pt_id, t.raw, sizeof(a->pt_id));
	return ret;
}

static int rec_close(void *kctx, int fd)
{
	struct lab *lab = kctx;
	enum lab_fd_kind kind = fd_kind(lab, fd);
	char eb[32];
	int ret;

	if (kind == LAB_FD_MOCK_DEVICE) {
		lab_mock_device_close(lab, fd);
		return 0;
	}
	ret = lab->kernel->close(lab->kernel->kctx, fd);
	fd_set_kind(lab, fd, LAB_FD_NONE);
	lab_say(lab, "close %s = %s", kind_name(kind),
		lab_err(ret, eb, sizeof(eb)));
	return ret;
}

/*
 * A data fd comes back from a SET of MIG_DEVICE_STATE: it is named by the
 * session it opens (RESUMING: writes; the saving states: reads).
 */
static void note_data_fd(struct lab *lab, unsigned long request, void *arg)
{
	const struct vfio_device_feature *f = arg;
	const struct vfio_device_feature_mig_state *m;

	if (request != VFIO_DEVICE_FEATURE || !readable(arg) ||
	    (f->flags & VFIO_DEVICE_FEATURE_MASK) !=
		    VFIO_DEVICE_FEATURE_MIG_DEVICE_STATE ||
	    !feature_has(f, VFIO_DEVICE_FEATURE_SET, sizeof(*m)))
		return;
	m = (const void *)f->data;
	if (m->data_fd >= 0)
		fd_set_kind(lab, m->data_fd,
			    m->device_state == VK_VFIO_STATE_RESUMING ?
				    LAB_FD_RESUME_DATA :
				    LAB_FD_SAVE_DATA);
}

static int rec_ioctl(void *kctx, int fd, unsigned long request, void *arg)
{
	struct lab *lab = kctx;
	enum lab_fd_kind kind = fd_kind(lab, fd);
	char nb[32], in[256], eb[32];
	const char *name = req_name(kind, request, nb, sizeof(nb));
	struct lab_mock_device *m;
	int ret;

	if (kind == LAB_FD_MOCK_DEVICE && (m = mock_find(lab, fd)))
		return mock_device_ioctl(lab, m, request, arg);
	describe_input(kind, request, arg, in, sizeof(in));
	ret = lab->kernel->ioctl(lab->kernel->kctx, fd, request, arg);
	if (ret >= 0 && kind == LAB_FD_GROUP &&
	    request == VFIO_GROUP_GET_DEVICE_FD) {
		fd_set_kind(lab, ret, LAB_FD_DEVICE);
		lab_say(lab, "ioctl %s%s = fd", name, in);
		return ret;
	}
	if (ret >= 0 && kind == LAB_FD_DEVICE)
		note_data_fd(lab, request, arg);
	if (ret >= 0 && kind == LAB_FD_IOMMUFD &&
	    request == VK_IOMMU_HWPT_ALLOC && readable(arg))
		lab->last_hwpt_id =
			((struct vk_iommu_hwpt_alloc *)arg)->out_hwpt_id;
	lab_say(lab, "ioctl %s%s%s%s = %s", name, in,
		data_kind(kind) ? " on " : "",
		data_kind(kind) ? kind_name(kind) : "",
		lab_err(ret, eb, sizeof(eb)));
	if (ret >= 0)
		describe_output(lab, kind, request, arg);
	return ret;
}

/*
 * A migration data fd carries the device's own image, whose size is the
 * driver's business (mtty: a 24-byte header and 36 bytes a port; ksim: 4
 * KiB chunks in records): what is compared is whether a call moved data,
 * reached the end (0) or failed; the sizes are shown.
 */
static int64_t rec_read(void *kctx, int fd, void *buf, size_t len)
{
	struct lab *lab = kctx;
	enum lab_fd_kind kind = fd_kind(lab, fd);
	int64_t n = lab->kernel->read(lab->kernel->kctx, fd, buf, len);
	char eb[32];

	if (data_kind(kind)) {
		lab_say(lab, "read %s len=%zu = %s", kind_name(kind), len,
			n > 0 ? "data" : lab_err((int)n, eb, sizeof(eb)));
		lab_note(lab, "read returned %lld", (long long)n);
		return n;
	}
	lab_say(lab, "read len=%zu = %s", len,
		n < 0 ? lab_err((int)n, eb, sizeof(eb)) : "ok");
	if (n >= 0)
		lab_say(lab, "  read %lld bytes", (long long)n);
	return n;
}

static int64_t rec_write(void *kctx, int fd, const void *buf, size_t len)
{
	struct lab *lab = kctx;
	enum lab_fd_kind kind = fd_kind(lab, fd);
	int64_t n = lab->kernel->write(lab->kernel->kctx, fd, buf, len);
	char eb[32];

	if (data_kind(kind)) {
		lab_say(lab, "write %s = %s", kind_name(kind),
			n < 0 ? lab_err((int)n, eb, sizeof(eb)) :
			(uint64_t)n == len ? "all" : "part");
		lab_note(lab, "write len=%zu returned %lld", len,
			 (long long)n);
		return n;
	}
	lab_say(lab, "write len=%zu = %s", len,
		n < 0 ? lab_err((int)n, eb, sizeof(eb)) : "ok");
	if (n >= 0)
		lab_say(lab, "  wrote %lld bytes", (long long)n);
	return n;
}

static int rec_poll(void *kctx, struct pollfd *fds, unsigned int nfds,
		    int timeout_ms)
{
	struct lab *lab = kctx;
	int n = lab->kernel->poll(lab->kernel->kctx, fds, nfds, timeout_ms);
	char eb[32];

	lab_say(lab, "poll nfds=%u = %s", nfds, lab_err(n, eb, sizeof(eb)));
	return n;
}

static int rec_mmap(void *kctx, void *addr, size_t len, int prot, int flags,
		    int fd, int64_t offset, void **out)
{
	struct lab *lab = kctx;
	int ret = lab->kernel->mmap(lab->kernel->kctx, addr, len, prot, flags,
				    fd, offset, out);
	char eb[32];

	lab_say(lab, "mmap len=%zu offset=0x%llx = %s", len,
		(unsigned long long)offset, lab_err(ret, eb, sizeof(eb)));
	return ret;
}

static int rec_munmap(void *kctx, void *addr, size_t len)
{
	struct lab *lab = kctx;
	int ret = lab->kernel->munmap(lab->kernel->kctx, addr, len);
	char eb[32];

	lab_say(lab, "munmap len=%zu = %s", len, lab_err(ret, eb, sizeof(eb)));
	return ret;
}

static void rec_log(void *ctx, int level, const char *msg)
{
	static const char *const levels[] = { "error", "warn", "info",
					      "debug" };

	lab_note(ctx, "log %s: %s",
		 level >= 0 && level <= 3 ? levels[level] : "?", msg);
}

static void rec_ranges_unknown(void *ctx, uint32_t iommu_id,
			       const struct vmig_range *ranges, uint32_t n)
{
	uint32_t i;

	for (i = 0; i < n; i++)
		lab_say(ctx, "ranges_unknown iommu=%u 0x%llx+0x%llx", iommu_id,
			(unsigned long long)ranges[i].iova,
			(unsigned long long)ranges[i].length);
}

int lab_open(struct lab *lab, const char *path, int flags)
{
	return lab->host.open(lab->host.kctx, path, flags);
}

int lab_close(struct lab *lab, int fd)
{
	return lab->host.close(lab->host.kctx, fd);
}

int lab_ioctl(struct lab *lab, int fd, unsigned long request, void *arg)
{
	return lab->host.ioctl(lab->host.kctx, fd, request, arg);
}

int64_t lab_read(struct lab *lab, int fd, void *buf, size_t len)
{
	return lab->host.read(lab->host.kctx, fd, buf, len);
}

int64_t lab_write(struct lab *lab, int fd, const void *buf, size_t len)
{
	return lab->host.write(lab->host.kctx, fd, buf, len);
}

/* ------------------------------------------------------------------ */
/* Memory and plugins                                                  */

void *lab_mem_alloc(size_t len, size_t align)
{
	uint8_t *p, *a;
	size_t lead;

	/* Over-allocate, then trim to the alignment asked for. */
	p = mmap(NULL, len + align, PROT_READ | PROT_WRITE,
		 MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	if (p == MAP_FAILED)
		return NULL;
	a = (uint8_t *)(((uintptr_t)p + align - 1) & ~(uintptr_t)(align - 1));
	lead = (size_t)(a - p);
	if (lead)
		munmap(p, lead);
	if (align - lead)
		munmap(a + len, align - lead);
	/* Touch it, so that the pages exist before the kernel pins them. */
	memset(a, 0, len);
	return a;
}

void lab_mem_free(void *p, size_t len)
{
	if (p)
		munmap(p, len);
}

const struct vmig_plugin *lab_plugin(struct lab *lab, const char *name)
{
	char path[4096];
	vmig_plugin_entry_fn entry;
	struct lab_plugin *lp;

	if (lab->nr_plugins == LAB_MAX_PLUGINS) {
		lab_fail(lab, __LINE__, "too many plugins");
		return NULL;
	}
	lp = &lab->plugins[lab->nr_plugins];
	snprintf(path, sizeof(path), "%s/vmig-%s.so", lab->plugin_dir, name);
	lp->dl = dlopen(path, RTLD_NOW | RTLD_LOCAL);
	if (!lp->dl) {
		lab_fail(lab, __LINE__, "dlopen %s: %s", path, dlerror());
		return NULL;
	}
	entry = (vmig_plugin_entry_fn)dlsym(lp->dl, VMIG_PLUGIN_ENTRY_NAME);
	lp->desc = entry ? entry(&lab->host, VMIG_PLUGIN_ABI_MAJOR) : NULL;
	if (!lp->desc) {
		lab_fail(lab, __LINE__, "%s: no plugin descriptor", path);
		dlclose(lp->dl);
		return NULL;
	}
	lab->nr_plugins++;
	return lp->desc;
}

/* ------------------------------------------------------------------ */
/* The kernel of a scenario                                            */

/* N of /dev/vfio/devices/vfioN; false when path is not such a cdev. */
static bool cdev_index(const char *path, uint32_t *index)
{
	const char *p = path ? strrchr(path, '/') : NULL;
	char *end;
	unsigned long v;

	if (!p || strncmp(p, "/vfio", 5) || !p[5])
		return false;
	v = strtoul(p + 5, &end, 10);
	if (*end || v > UINT32_MAX)
		return false;
	*index = (uint32_t)v;
	return true;
}

/*
 * The simulator, with the devices the guest had: the same names, groups,
 * cdevs and kinds, so that the same calls mean the same there, and what
 * the guest's devices are (kernel-uapi.md, shared/kernel/README.md).
 */
static int sim_build(struct lab *lab)
{
	const struct lab_facts *f = &lab->facts;
	unsigned int i;
	int ret;

	ret = ksim_new(NULL, &lab->k);
	if (ret)
		return ret;
	if (f->pci.name) {
		/*
		 * QEMU's edu on vfio-pci: IOMMU-backed, its driver pins
		 * nothing, no migration, no DMA logging; behind QEMU's Intel
		 * vIOMMU, which has no second-stage dirty bits.
		 */
		struct ksim_device_params p = {
			.name = f->pci.name,
			.kind = KSIM_DEV_PCI,
			.group = f->pci.group,
			.iommufd = { .model = KSIM_IOMMU_INTEL },
			.edu = true,
		};

		p.iommufd.cdev = cdev_index(f->pci.cdev, &p.iommufd.cdev_index);
		ret = ksim_device_add(lab->k, &p, NULL);
		if (ret)
			return ret;
	}
	for (i = 0; i < f->nr_mdevs; i++) {
		/*
		 * The mtty sample: migration v2 with P2P and PRE_COPY, DMA
		 * logging stubs that never report. Its image is a few dozen
		 * bytes (a header, then its ports); ksim's smallest state,
		 * one 4 KiB chunk, keeps each part of the image within one
		 * read() as mtty's is, so that the calls line up.
		 */
		struct ksim_device_params p = {
			.name = f->mdevs[i].name,
			.kind = KSIM_DEV_MDEV,
			.group = f->mdevs[i].group,
			.feature = {
				.migration = true,
				.mig_flags = VFIO_MIGRATION_P2P |
					     VK_VFIO_MIGRATION_PRE_COPY,
				.state_size = 4096,
				.log = KSIM_LOG_STUB,
			},
		};

		p.iommufd.cdev = cdev_index(f->mdevs[i].cdev,
					    &p.iommufd.cdev_index);
		ret = ksim_device_add(lab->k, &p, NULL);
		if (ret)
			return ret;
	}
	return 0;
}

static int kernel_begin(struct lab *lab)
{
	unsigned int i;
	int ret;

	memset(lab->fd_kind, 0, sizeof(lab->fd_kind));
	lab->last_hwpt_id = 0;
	for (i = 0; i < LAB_MAX_MOCK_DEVICES; i++)
		lab->mock_devices[i].fd = -1;
	if (lab->real) {
		lab->kernel = vmig_linux_kernel();
	} else {
		ret = sim_build(lab);
		if (ret)
			return ret;
		lab->kernel = ksim_host(lab->k);
	}
	lab->host = (struct vmig_host){
		.size = sizeof(struct vmig_host),
		.abi_minor = VMIG_PLUGIN_ABI_MINOR,
		.kctx = lab,
		.ctx = lab,
		.open = rec_open,
		.close = rec_close,
		.ioctl = rec_ioctl,
		.read = rec_read,
		.write = rec_write,
		.poll = rec_poll,
		.mmap = rec_mmap,
		.munmap = rec_munmap,
		.log = rec_log,
		.ranges_unknown = rec_ranges_unknown,
	};
	return 0;
}

static void kernel_end(struct lab *lab)
{
	int fd;

	/* A scenario closes what it opened; this only mops up after one. */
	for (fd = 0; fd < LAB_MAX_FDS; fd++) {
		if (lab->fd_kind[fd] == LAB_FD_NONE)
			continue;
		lab_note(lab, "closing fd %d that the scenario left open", fd);
		if (lab->fd_kind[fd] == LAB_FD_MOCK_DEVICE)
			close(fd); /* the lab's own */
		else
			lab->kernel->close(lab->kernel->kctx, fd);
		lab->fd_kind[fd] = LAB_FD_NONE;
	}
	for (fd = 0; fd < LAB_MAX_MOCK_DEVICES; fd++)
		lab->mock_devices[fd].fd = -1;
	while (lab->nr_plugins)
		dlclose(lab->plugins[--lab->nr_plugins].dl);
	if (lab->k) {
		ksim_free(lab->k);
		lab->k = NULL;
	}
}

static bool run_scenario(struct lab *lab, const struct lab_scenario *sc)
{
	int ret;

	lab->scenario = sc->name;
	lab->step = 0;
	lab->failed = false;
	lab->reason[0] = '\0';
	printf("=== BEGIN %s\n", sc->name);
	ret = kernel_begin(lab);
	if (ret)
		lab_fail(lab, __LINE__, "cannot build the simulator: %s",
			 strerror(-ret));
	else
		sc->run(lab);
	kernel_end(lab);
	printf("=== END %s\n", sc->name);
	if (lab->failed)
		printf("RESULT %s FAIL %s\n", sc->name, lab->reason);
	else
		printf("RESULT %s PASS\n", sc->name);
	fflush(stdout);
	return !lab->failed;
}

/* ------------------------------------------------------------------ */
/* Options                                                             */

/* <dir of libvmig.so>/vmig/plugins: where libvmig's loader looks too. */
static char *default_plugin_dir(void)
{
	Dl_info info;
	const char *slash;
	char *dir;

	if (!dladdr((void *)vmig_version, &info) || !info.dli_fname)
		return NULL;
	slash = strrchr(info.dli_fname, '/');
	if (!slash)
		return strdup("vmig/plugins");
	if (asprintf(&dir, "%.*s/vmig/plugins",
		     (int)(slash - info.dli_fname), info.dli_fname) < 0)
		return NULL;
	return dir;
}

static void usage(FILE *f)
{
	fprintf(f,
		"usage: vmig-lab --kernel real|sim --boot mock|viommu\n"
		"                [--pci BDF --pci-group N [--pci-cdev PATH]]\n"
		"                [--mdev UUID --mdev-group N "
		"[--mdev-cdev PATH]]...\n"
		"                [--plugin-dir DIR] [--scenario NAME]...\n"
		"       vmig-lab --list\n");
}

static int parse_int(const char *s, int *out)
{
	char *end;
	long v;

	errno = 0;
	v = strtol(s, &end, 10);
	if (errno || *end || end == s || v < 0 || v > 1 << 20)
		return -EINVAL;
	*out = (int)v;
	return 0;
}

enum {
	OPT_KERNEL = 256,
	OPT_BOOT,
	OPT_PCI,
	OPT_PCI_GROUP,
	OPT_PCI_CDEV,
	OPT_MDEV,
	OPT_MDEV_GROUP,
	OPT_MDEV_CDEV,
	OPT_PLUGIN_DIR,
	OPT_SCENARIO,
	OPT_LIST,
	OPT_HELP,
};

static const struct option options[] = {
	{ "kernel", required_argument, NULL, OPT_KERNEL },
	{ "boot", required_argument, NULL, OPT_BOOT },
	{ "pci", required_argument, NULL, OPT_PCI },
	{ "pci-group", required_argument, NULL, OPT_PCI_GROUP },
	{ "pci-cdev", required_argument, NULL, OPT_PCI_CDEV },
	{ "mdev", required_argument, NULL, OPT_MDEV },
	{ "mdev-group", required_argument, NULL, OPT_MDEV_GROUP },
	{ "mdev-cdev", required_argument, NULL, OPT_MDEV_CDEV },
	{ "plugin-dir", required_argument, NULL, OPT_PLUGIN_DIR },
	{ "scenario", required_argument, NULL, OPT_SCENARIO },
	{ "list", no_argument, NULL, OPT_LIST },
	{ "help", no_argument, NULL, OPT_HELP },
	{ NULL, 0, NULL, 0 },
};

int main(int argc, char **argv)
{
	static struct lab lab;
	const char *kernel = NULL, *boot = NULL;
	const char *only[NR_SCENARIOS];
	unsigned int nr_only = 0, run = 0, passed = 0, i, j;
	char *plugin_dir = NULL;
	struct lab_dev *m = NULL;
	int opt, pci_group = -1;

	while ((opt = getopt_long(argc, argv, "", options, NULL)) != -1) {
		switch (opt) {
		case OPT_KERNEL:
			kernel = optarg;
			break;
		case OPT_BOOT:
			boot = optarg;
			break;
		case OPT_PCI:
			lab.facts.pci.name = optarg;
			break;
		case OPT_PCI_GROUP:
			if (parse_int(optarg, &pci_group))
				goto bad;
			break;
		case OPT_PCI_CDEV:
			lab.facts.pci.cdev = optarg;
			break;
		case OPT_MDEV:
			if (lab.facts.nr_mdevs == LAB_MAX_MDEVS)
				goto bad;
			m = &lab.facts.mdevs[lab.facts.nr_mdevs++];
			m->name = optarg;
			m->group = -1;
			break;
		case OPT_MDEV_GROUP:
			if (!m || parse_int(optarg, &m->group))
				goto bad;
			break;
		case OPT_MDEV_CDEV:
			if (!m)
				goto bad;
			m->cdev = optarg;
			break;
		case OPT_PLUGIN_DIR:
			plugin_dir = optarg;
			break;
		case OPT_SCENARIO:
			if (nr_only == NR_SCENARIOS)
				goto bad;
			only[nr_only++] = optarg;
			break;
		case OPT_LIST:
			for (i = 0; i < NR_SCENARIOS; i++)
				printf("%s %s\n", scenarios[i].name,
				       boot_name(scenarios[i].boot));
			return 0;
		case OPT_HELP:
			usage(stdout);
			return 0;
		default:
			goto bad;
		}
	}
	if (optind != argc || !kernel || !boot)
		goto bad;
	if (!strcmp(kernel, "real"))
		lab.real = true;
	else if (strcmp(kernel, "sim"))
		goto bad;
	if (!strcmp(boot, "mock"))
		lab.boot = LAB_BOOT_MOCK;
	else if (!strcmp(boot, "viommu"))
		lab.boot = LAB_BOOT_VIOMMU;
	else
		goto bad;
	lab.facts.pci.group = pci_group;
	if (lab.facts.pci.name && pci_group < 0)
		goto bad;
	for (i = 0; i < lab.facts.nr_mdevs; i++)
		if (lab.facts.mdevs[i].group < 0)
			goto bad;
	for (j = 0; j < nr_only; j++) {
		for (i = 0; i < NR_SCENARIOS; i++)
			if (!strcmp(only[j], scenarios[i].name))
				break;
		if (i == NR_SCENARIOS) {
			fprintf(stderr, "vmig-lab: no scenario '%s'\n",
				only[j]);
			return 2;
		}
	}
	lab.plugin_dir = plugin_dir ? plugin_dir : default_plugin_dir();
	if (!lab.plugin_dir) {
		fprintf(stderr, "vmig-lab: cannot find the plugin directory\n");
		return 2;
	}

	if (lab.real) {
		struct utsname u;

		if (!uname(&u))
			printf("~ kernel %s %s\n", u.release, u.version);
	}
	printf("~ vmig-lab: kernel=%s boot=%s plugins=%s\n", kernel, boot,
	       lab.plugin_dir);
	for (i = 0; i < NR_SCENARIOS; i++) {
		const struct lab_scenario *sc = &scenarios[i];

		if (sc->boot != lab.boot)
			continue;
		if (nr_only) {
			for (j = 0; j < nr_only; j++)
				if (!strcmp(only[j], sc->name))
					break;
			if (j == nr_only)
				continue;
		}
		run++;
		passed += run_scenario(&lab, sc);
	}
	printf("LAB DONE %u scenarios, %u passed\n", run, passed);
	if (lab.plugin_dir != plugin_dir)
		free((char *)lab.plugin_dir);
	return passed == run ? 0 : 1;

bad:
	usage(stderr);
	return 2;
}
