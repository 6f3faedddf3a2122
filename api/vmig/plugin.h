/*
 * vmig/plugin.h: the dirty-source plugin ABI.
 *
 * A dirty source tells vmig which guest pages a set of devices wrote. A
 * plugin is a shared object that exports exactly one symbol,
 * VMIG_PLUGIN_ENTRY (vmig_plugin_init), which returns a constant
 * descriptor: what the plugin is, what it can track, and its operations.
 *
 * Rules of the ABI:
 *
 *  - Every structure that crosses the boundary starts with its size, as
 *    the writer knows it. Fields are only ever appended (each is marked
 *    "Since: major.minor"). A reader accepts a shorter structure from an
 *    older peer and treats the missing fields as absent (zero or NULL);
 *    VMIG_HAS_FIELD() tells whether a field is present.
 *  - The ABI major must match exactly; the loader refuses any other.
 *  - Errors are negative errno values. A call into an operation that an
 *    older peer does not have yields -ENOTSUP.
 *  - Every call a plugin makes to the kernel (open, close, ioctl, read,
 *    write, poll, mmap, munmap) goes through the host table it was given,
 *    never straight to libc: the host may be the real kernel, a simulator
 *    or a wrapper that injects failures. Logging goes through the host too.
 *  - Memory never crosses the boundary to be freed on the other side: the
 *    caller of an operation owns every buffer it passes.
 *  - A plugin instance is used from one thread at a time.
 */
#ifndef VMIG_PLUGIN_H
#define VMIG_PLUGIN_H

#include <poll.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

#include <vmig/version.h>

#ifdef __cplusplus
extern "C" {
#endif

/* The name of the one symbol a plugin exports. */
#define VMIG_PLUGIN_ENTRY vmig_plugin_init
#define VMIG_PLUGIN_ENTRY_NAME "vmig_plugin_init"

#if defined(__GNUC__)
#define VMIG_PLUGIN_EXPORT __attribute__((visibility("default")))
#else
#define VMIG_PLUGIN_EXPORT
#endif

/*
 * True when the structure at ptr (whose first member is its uint32_t
 * size) is long enough to hold member.
 */
#define VMIG_HAS_FIELD(ptr, type, member)                 \
	((ptr) != NULL && (ptr)->size >= offsetof(type, member) + \
				  sizeof(((type *)0)->member))

/* The page size of vmig's migration bitmaps. */
#define VMIG_PAGE_SIZE 4096u

/* Log levels, most severe first. */
enum vmig_log_level {
	VMIG_LOG_ERROR = 0,
	VMIG_LOG_WARN = 1,
	VMIG_LOG_INFO = 2,
	VMIG_LOG_DEBUG = 3,
};

/* How closely a source's reports follow the writes really made. */
enum vmig_precision {
	/* Cannot track the device at all. */
	VMIG_PRECISION_NONE = 0,
	/* Reports exactly the pages written since the last read. */
	VMIG_PRECISION_EXACT = 1,
	/*
	 * Reports every page written and some that were not (merged ranges,
	 * whole huge IOPTEs, coarse granules).
	 */
	VMIG_PRECISION_SUPERSET = 2,
	/* Reports every mapped page on every read ("everything mapped"). */
	VMIG_PRECISION_ALL_MAPPED = 3,
};

/* Kinds of device; plugins advertise a mask of VMIG_KIND_BIT(kind). */
enum vmig_device_kind {
	VMIG_DEVICE_VFIO_PCI = 1, /* a vfio-pci function or VF */
	VMIG_DEVICE_MDEV = 2,     /* a mediated device (emulated IOMMU) */
};

/* Kinds of I/O address space; plugins advertise VMIG_KIND_BIT(kind). */
enum vmig_iommu_kind {
	VMIG_IOMMU_TYPE1 = 1,    /* a VFIO type1v2 container */
	VMIG_IOMMU_IOMMUFD = 2,  /* an iommufd IOAS */
	VMIG_IOMMU_GPA = 3,      /* guest-physical space (vCPU sources) */
};

#define VMIG_KIND_BIT(kind) (1u << (kind))

/*
 * The iommu_id of a vCPU source's reads (a source whose iommu_kinds is
 * VMIG_KIND_BIT(VMIG_IOMMU_GPA)): its "IOVA" is the guest-physical
 * address, read region by region (docs/plugin-guide.md).
 */
#define VMIG_GPA_SPACE 0xffffffffu

/* A range of I/O virtual addresses, [iova, iova + length). */
struct vmig_range {
	uint64_t iova;
	uint64_t length;
};

/*
 * An I/O address space: a type1 container or an iommufd IOAS, as the VMM
 * set it up. Without a vIOMMU, IOVA equals guest-physical address.
 */
struct vmig_iommu_desc {
	uint32_t size;
	uint32_t id;      /* vmig's id for this address space */
	uint32_t kind;    /* enum vmig_iommu_kind */
	int32_t fd;       /* container fd (type1) or iommufd; -1 for GPA */
	uint32_t ioas_id; /* iommufd: the IOAS */
	uint32_t reserved;
};

/* A PASID attachment: the device also writes through another space. */
struct vmig_pasid_desc {
	uint32_t size;
	uint32_t pasid;
	const struct vmig_iommu_desc *iommu; /* the space behind this PASID */
};

/*
 * A device as the VMM registered it. The structure and everything it
 * points to are valid during the call only: a plugin copies what it keeps.
 */
struct vmig_device_desc {
	uint32_t size;
	uint32_t id;        /* vmig's id for this device */
	const char *name;   /* the VMM's name for it */
	const char *address; /* sysfs name: PCI address or mdev UUID */
	uint32_t kind;      /* enum vmig_device_kind */
	int32_t device_fd;  /* VFIO device fd, or -1 */
	int32_t group_fd;   /* type1: VFIO group fd, or -1 */
	uint32_t iommufd_id; /* iommufd: bound device id (access id: mdev) */
	const struct vmig_iommu_desc *iommu; /* where its DMA goes */
	/* The device-writable IOVA ranges mapped now, sorted, disjoint. */
	const struct vmig_range *ranges;
	uint32_t nr_ranges;
	uint32_t nr_pasids;
	const struct vmig_pasid_desc *pasids;
};

/*
 * Probe flags: the source also tracks every PASID attachment of the
 * device (each domain the device writes through); without it, what a
 * PASID reaches is treated as dirty on every sync.
 */
#define VMIG_PROBE_PASIDS 0x1u

/* What a probe found. */
struct vmig_probe {
	uint32_t size;
	uint32_t precision; /* enum vmig_precision; NONE = declined */
	uint32_t cost;      /* relative cost per read, lower is cheaper */
	uint32_t flags;     /* VMIG_PROBE_* */
	char reason[160];   /* why declined, or a note on the precision */
};

/* Flags of struct vmig_read. */
#define VMIG_READ_NO_CLEAR 0x1u /* leave the bits set (plugin flag below) */

/*
 * A request to read the dirty state of [iova, iova + length) of one
 * address space at page_size granularity. iova and length are multiples
 * of page_size; page_size is a power of two.
 */
struct vmig_read {
	uint32_t size;
	uint32_t flags;    /* VMIG_READ_* */
	uint32_t iommu_id; /* which address space */
	uint32_t reserved;
	uint64_t iova;
	uint64_t length;
	uint64_t page_size;
};

/* Flags that unmap_prepare returns. */
#define VMIG_UNMAP_DONE 0x1u /* the plugin unmapped the range itself */

/*
 * The host services a plugin reaches. The kernel operations use kctx,
 * the vmig services use ctx. Return values are as for the system call
 * of the same name, except that failures are negative errno values.
 */
struct vmig_host {
	uint32_t size;
	uint32_t abi_minor;
	void *kctx; /* for the kernel operations */
	void *ctx;  /* for log and ranges_unknown */

	/* Since 1.0: the kernel. */
	int (*open)(void *kctx, const char *path, int flags);
	int (*close)(void *kctx, int fd);
	int (*ioctl)(void *kctx, int fd, unsigned long request, void *arg);
	int64_t (*read)(void *kctx, int fd, void *buf, size_t len);
	int64_t (*write)(void *kctx, int fd, const void *buf, size_t len);
	int (*poll)(void *kctx, struct pollfd *fds, unsigned int nfds,
		    int timeout_ms);
	int (*mmap)(void *kctx, void *addr, size_t len, int prot, int flags,
		    int fd, int64_t offset, void **out);
	int (*munmap)(void *kctx, void *addr, size_t len);

	/* Since 1.0: vmig. Each may be NULL in the table given to the entry. */
	void (*log)(void *ctx, int level, const char *msg);
	/*
	 * Declares that writes to these ranges of an address space may have
	 * been missed (a failed report, logging torn down): vmig treats them
	 * as dirty. Only in the tables given to instances.
	 */
	void (*ranges_unknown)(void *ctx, uint32_t iommu_id,
			       const struct vmig_range *ranges, uint32_t n);

	/*
	 * Since 1.1: the pointer the program gave vmig_plugin_register_user()
	 * for this source (its VM, for a vCPU source), NULL for a plugin
	 * loaded from a file. Only in the tables given to instances (check
	 * VMIG_HAS_FIELD(host, struct vmig_host, user) first).
	 */
	void *user;
};

/*
 * The operations of a dirty source. Every operation returns 0 or a
 * negative errno value. All of them except create may be NULL when the
 * plugin does not need them; vmig then treats the call as succeeding
 * without doing anything, except probe (NULL: declined), attach (NULL:
 * accepted) and read (NULL: the device's ranges are all dirty).
 */
struct vmig_source_ops {
	uint32_t size;
	uint32_t reserved;

	/* Since 1.0. */

	/*
	 * Creates an instance. host stays valid until destroy. Errors:
	 * -ENOMEM.
	 */
	int (*create)(const struct vmig_host *host, void **instance);
	/* Destroys an instance: stops tracking, closes what it opened. */
	void (*destroy)(void *instance);
	/*
	 * Says whether the instance can track dev and how well, in *out
	 * (precision NONE and a reason when it cannot). Has no lasting
	 * effect. Errors: a negative errno when the probe itself failed.
	 */
	int (*probe)(void *instance, const struct vmig_device_desc *dev,
		     struct vmig_probe *out);
	/*
	 * Takes dev under this instance: from the time tracking runs (now, if
	 * it already runs), its writes are reported. Errors: as the kernel
	 * returns them; -EINVAL, -EOPNOTSUPP when the device cannot be tracked
	 * after all.
	 */
	int (*attach)(void *instance, const struct vmig_device_desc *dev);
	/*
	 * Releases a device. The caller has read (harvested) its last bits
	 * first. Errors: -ENOENT if it was not attached.
	 */
	int (*detach)(void *instance, uint32_t device_id);
	/*
	 * Starts tracking every attached device, at page_size granularity
	 * where the source lets vmig choose. Writes made before start are not
	 * reported. Errors: as the kernel returns them.
	 */
	int (*start)(void *instance, uint64_t page_size);
	/* Stops tracking; the dirty state is dropped. */
	int (*stop)(void *instance);
	/*
	 * Reads the pages of rq's range that the attached devices wrote since
	 * the last read (or since start), and clears them unless
	 * VMIG_READ_NO_CLEAR is set. Sets bit n of bitmap (bit n % 64 of word
	 * n / 64) when [iova + n * page_size, +page_size) was written. The
	 * bitmap has room for length / page_size bits, rounded up to whole
	 * 64-bit words, and is zero on entry. Errors: -EINVAL for a malformed
	 * request, -ENOENT for an unknown address space, -ENOTSUP for NO_CLEAR
	 * when not offered, or what the kernel returned; on any error vmig
	 * treats the range as dirty.
	 */
	int (*read)(void *instance, const struct vmig_read *rq,
		    uint64_t *bitmap);
	/*
	 * A range of an address space has just been mapped while tracking
	 * runs; the source must report writes to it from now on. Errors: as
	 * the kernel returns them (vmig then treats the range as dirty in
	 * every iteration).
	 */
	int (*map)(void *instance, uint32_t iommu_id,
		   const struct vmig_range *range);
	/*
	 * A range is about to be unmapped: reads its last dirty bits into
	 * bitmap as read does. A source that can only harvest by unmapping
	 * (VFIO type1) unmaps the range itself and sets VMIG_UNMAP_DONE in
	 * *flags. Errors: as read.
	 */
	int (*unmap_prepare)(void *instance, const struct vmig_read *rq,
			     uint64_t *bitmap, uint32_t *flags);
	/*
	 * The range is now unmapped: reads any bits that can only be read
	 * afterwards (a device's own log) and forgets the range.
	 */
	int (*unmap_complete)(void *instance, const struct vmig_read *rq,
			      uint64_t *bitmap);
	/*
	 * Reports how well an attached device is tracked now, which may have
	 * changed since the probe (a group joining a type1 container).
	 */
	int (*status)(void *instance, uint32_t device_id,
		      struct vmig_probe *out);

	/* Since 1.1. */

	/*
	 * A device has left the session (unplugged), whichever source
	 * tracked it; called on every instance, after the tracking source's
	 * detach. A source that based anything on the device's probe (type1
	 * counts every vfio-pci group of a container, whoever tracks it)
	 * forgets it, so that a precision it coarsened can become finer
	 * again. Unknown ids are ignored.
	 */
	void (*device_gone)(void *instance, uint32_t device_id);
};

/* Descriptor flags. */
#define VMIG_PLUGIN_READ_NO_CLEAR 0x1u /* read accepts VMIG_READ_NO_CLEAR */

/* The constant descriptor a plugin's entry point returns. */
struct vmig_plugin {
	uint32_t size;
	uint32_t abi_major;   /* VMIG_PLUGIN_ABI_MAJOR it was built for */
	uint32_t abi_minor;   /* VMIG_PLUGIN_ABI_MINOR it was built for */
	uint32_t flags;       /* VMIG_PLUGIN_* */
	const char *name;     /* unique; [a-z0-9._-], at most 63 characters */
	const char *version;  /* the plugin's own version */
	const char *description;
	uint32_t device_kinds; /* VMIG_KIND_BIT(enum vmig_device_kind) */
	uint32_t iommu_kinds;  /* VMIG_KIND_BIT(enum vmig_iommu_kind) */
	uint32_t precision;    /* the best precision it can offer */
	uint32_t max_ranges;   /* ranges it tracks per device, 0 = no limit */
	uint64_t page_sizes;   /* page sizes it can report: bit n = 2^n */
	uint64_t max_read_bytes; /* largest bitmap of one read, 0 = no limit */
	const struct vmig_source_ops *ops;
};

/*
 * The entry point. host is valid only during the call (logging); abi_major
 * is the host's VMIG_PLUGIN_ABI_MAJOR. Returns the descriptor, which must
 * stay valid while the object is loaded, or NULL to refuse to load.
 */
typedef const struct vmig_plugin *(*vmig_plugin_entry_fn)(
	const struct vmig_host *host, uint32_t abi_major);

/* What a plugin defines, with VMIG_PLUGIN_EXPORT in front. */
const struct vmig_plugin *VMIG_PLUGIN_ENTRY(const struct vmig_host *host,
					    uint32_t abi_major);

/*
 * Logs through the host table, printf-style. Does nothing when the table
 * has no log function.
 */
#if defined(__GNUC__)
__attribute__((format(printf, 3, 4)))
#endif
static inline void vmig_host_logf(const struct vmig_host *host, int level,
				  const char *fmt, ...)
{
	char msg[512];
	va_list ap;

	if (!VMIG_HAS_FIELD(host, struct vmig_host, log) || !host->log)
		return;
	va_start(ap, fmt);
	vsnprintf(msg, sizeof(msg), fmt, ap);
	va_end(ap);
	host->log(host->ctx, level, msg);
}

#ifdef __cplusplus
}
#endif

#endif /* VMIG_PLUGIN_H */
