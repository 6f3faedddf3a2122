/*
 * vmig/vmig.h: the embedding API.
 *
 * A VMM embeds vmig to migrate a guest whose memory is written by vCPUs
 * and by passthrough devices. It creates a session, tells it about guest
 * memory (regions), I/O address spaces (a VFIO type1 container or an
 * iommufd IOAS), the DMA mappings in them and the devices behind them,
 * and vmig picks, device by device, a dirty source that sees the device's
 * writes. (The vmig program sets sessions up from a JSON configuration,
 * docs/config.md, through this API.)
 *
 * Conventions:
 *  - Every function that can fail returns 0 (or a count) on success and a
 *    negative errno value, or one of the VMIG_E* codes below, on failure.
 *    vmig_strerror() names the code; vmig_errmsg() gives the session's
 *    last error in full (which file, which JSON key, which device).
 *  - Structures passed in start with their size (set it to sizeof); they
 *    only ever grow at the end, so a program built against an older header
 *    keeps working.
 *  - A session is used from one thread at a time.
 *  - The library never prints: it logs through the log callback.
 */
#ifndef VMIG_VMIG_H
#define VMIG_VMIG_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <vmig/plugin.h>
#include <vmig/version.h>

#ifdef __cplusplus
extern "C" {
#endif

#if defined(VMIG_BUILDING_LIBRARY) && defined(__GNUC__)
#define VMIG_API __attribute__((visibility("default")))
#else
#define VMIG_API
#endif

/* Error codes of vmig's own, beyond the errno range. */
enum vmig_error {
	/* The configuration is invalid; vmig_errmsg() names the key. */
	VMIG_ECONFIG = -4001,
	/* A plugin file could not be loaded (dlopen failed). */
	VMIG_ENOTPLUGIN = -4002,
	/* A plugin file has no VMIG_PLUGIN_ENTRY symbol. */
	VMIG_ENOENTRY = -4003,
	/* A plugin was built for another plugin ABI major. */
	VMIG_EABI = -4004,
	/* A plugin's descriptor is too short or malformed. */
	VMIG_EBADPLUGIN = -4005,
	/* Another loaded plugin has the same name. */
	VMIG_EDUPLICATE = -4006,
	/* A plugin's entry point refused to initialise. */
	VMIG_EREFUSED = -4007,
	/* Writes were missed: a dirty source broke its promise. */
	VMIG_EMISSED = -4008,
	/* The migration stream is malformed or was rejected by the peer. */
	VMIG_EPROTO = -4009,
	/* The destination's memory differs from the source's. */
	VMIG_EMISMATCH = -4010,
	/*
	 * Source: COMMIT was written but the destination did not confirm
	 * that it started the guest: either side may own it. The guest
	 * stays paused until vmig_resolve() says which side runs it.
	 */
	VMIG_EUNRESOLVED = -4011,
	/*
	 * Source: the guest was migrated away (committed, or resolved in
	 * favour of the destination): this session no longer owns it.
	 */
	VMIG_EMIGRATED = -4012,
	/*
	 * Source, verify policy "audit": the migration committed (the
	 * guest runs on the destination), then the source's digest of its
	 * stopped memory differed from the destination's. The report says
	 * "audit": "mismatch"; the destination's memory is suspect.
	 */
	VMIG_EAUDIT = -4013,
};

/*
 * Returns a static description of err (a negative errno or VMIG_E* code).
 * Never NULL.
 */
VMIG_API const char *vmig_strerror(int err);

/* Returns VMIG_VERSION of the library in use (which may be newer). */
VMIG_API unsigned int vmig_version(void);

/* Returns VMIG_VERSION_STRING of the library in use. */
VMIG_API const char *vmig_version_string(void);

/*
 * Returns the host table of the real Linux system calls (its kernel
 * operations; log and ranges_unknown are NULL): what a session uses when
 * vmig_session_params.kernel is NULL. An embedder may wrap it (to trace
 * or inject failures) and pass the wrapper as the session's kernel, or
 * hand it to a plugin it drives itself. Never NULL.
 */
VMIG_API const struct vmig_host *vmig_linux_kernel(void);

/* ------------------------------------------------------------------ */
/* Sessions                                                            */

/* One side of one migration. */
typedef struct vmig_session vmig_session;

enum vmig_role {
	VMIG_ROLE_SOURCE = 1,
	VMIG_ROLE_DESTINATION = 2,
};

/* Receives every log message at or above the session's log level. */
typedef void (*vmig_log_fn)(void *opaque, enum vmig_log_level level,
			    const char *msg);

/* Progress of a long-running operation. */
struct vmig_progress {
	uint32_t size;
	uint32_t iteration;      /* 0 is the first pass */
	uint64_t pages_dirty;    /* pages found dirty in this iteration */
	uint64_t bytes_left;     /* bytes still to move */
	uint64_t dirty_rate;     /* bytes dirtied per second */
	uint64_t bandwidth;      /* bytes moved per second */
	uint64_t expected_downtime_us; /* UINT64_MAX: not known yet */
	/* Since 0.2. */
	uint32_t phase;          /* enum vmig_phase */
	uint32_t reserved;
	uint64_t bytes_sent;     /* bytes written since the migration began */
	uint64_t elapsed_us;     /* since the migration began (to its end) */
};

typedef void (*vmig_progress_fn)(void *opaque,
				 const struct vmig_progress *progress);

struct vmig_session_params {
	uint32_t size;
	uint32_t role; /* enum vmig_role; 0 means source */
	vmig_log_fn log;
	void *log_opaque;
	uint32_t log_level; /* enum vmig_log_level; messages above are dropped */
	uint32_t reserved;
	/*
	 * The kernel the session and its plugins talk to: only its kernel
	 * operations and kctx are used. NULL means the real Linux system
	 * calls. Must outlive the session.
	 */
	const struct vmig_host *kernel;
	vmig_progress_fn progress;
	void *progress_opaque;
};

/*
 * Creates a session. params may be NULL for defaults. Errors: -EINVAL
 * (params->size too small, unknown role), -ENOMEM.
 */
VMIG_API int vmig_session_new(const struct vmig_session_params *params,
			      vmig_session **out);

/*
 * Destroys a session: stops tracking, destroys the dirty-source
 * instances, unloads plugins no other session uses, and releases what the
 * session opened or allocated itself. Accepts NULL.
 */
VMIG_API void vmig_session_free(vmig_session *s);

/*
 * Returns the message of the session's last failed call (empty when none
 * failed). Valid until the next call on the session.
 */
VMIG_API const char *vmig_errmsg(const vmig_session *s);

/* ------------------------------------------------------------------ */
/* Plugins                                                             */

/*
 * Adds a directory to search for plugins, before VMIG_PLUGIN_PATH and the
 * install directory (in the order added). Errors: -EINVAL (NULL or
 * empty), -ENOMEM.
 */
VMIG_API int vmig_plugin_add_path(vmig_session *s, const char *dir);

/*
 * Loads a plugin into the session. name_or_path is either a plugin name
 * ("vfio-type1" is looked for as vmig-vfio-type1.so in each search
 * directory in turn) or a path containing '/'. Loading the same file
 * twice is a no-op. Errors, each with a message naming the file:
 * -ENOENT (not found), VMIG_ENOTPLUGIN (not a loadable object, with the
 * dynamic loader's words), VMIG_ENOENTRY (no entry symbol), VMIG_EABI
 * (another ABI major), VMIG_EBADPLUGIN (descriptor too short or
 * malformed), VMIG_EREFUSED (the entry point returned NULL),
 * VMIG_EDUPLICATE (another plugin of the same name is loaded), -EBUSY
 * (tracking has started), -ENOMEM.
 */
VMIG_API int vmig_plugin_load(vmig_session *s, const char *name_or_path);

/*
 * Registers a dirty source linked into the program (the VMM's own vCPU
 * dirty log, or a plugin built statically). desc must stay valid for the
 * session's life. Errors: as vmig_plugin_load for a malformed
 * descriptor, VMIG_EABI, VMIG_EDUPLICATE, -EBUSY, -ENOMEM.
 */
VMIG_API int vmig_plugin_register(vmig_session *s,
				  const struct vmig_plugin *desc);

/*
 * vmig_plugin_register() with a pointer for the source: its instances
 * find it in their host table (struct vmig_host's user, plugin ABI 1.1),
 * so that a source linked into the program reaches its VM without a
 * global. Registering the same descriptor again keeps one source and the
 * last pointer. Errors: as vmig_plugin_register.
 */
VMIG_API int vmig_plugin_register_user(vmig_session *s,
				       const struct vmig_plugin *desc,
				       void *user);

/*
 * What vmig_plugins_scan() found about one plugin file. The pointers are
 * valid during the callback only: the file is unloaded right after.
 */
struct vmig_plugin_info {
	uint32_t size;
	int32_t error;           /* 0, or why it cannot be loaded */
	const char *path;        /* the file */
	const char *errmsg;      /* when error != 0 */
	const struct vmig_plugin *desc; /* when error == 0 */
};

/*
 * Calls fn for every plugin file (vmig-*.so) in the search directories,
 * loading each to read its descriptor and unloading it afterwards. A file
 * shadowed by one of the same name earlier in the search order is skipped.
 * Returns the number of files reported, or -ENOMEM.
 */
VMIG_API int vmig_plugins_scan(vmig_session *s,
			       void (*fn)(void *opaque,
					  const struct vmig_plugin_info *info),
			       void *opaque);

/*
 * Sets the order in which sources are tried for each device, by plugin
 * name; plugins not named come after, in load order. The default is
 * "iommufd", "device-dirty", "vfio-type1". Errors: -EINVAL (NULL or empty
 * name), -EBUSY (tracking has started), -ENOMEM.
 */
VMIG_API int vmig_set_preference(vmig_session *s, const char *const *names,
				 size_t n);

/* ------------------------------------------------------------------ */
/* Guest memory                                                        */

/* A block of guest RAM. */
/*
 * vmig_region.flags. FRESH: the memory is a new mapping that reads as
 * zero and nothing wrote yet. A destination then never writes, nor reads,
 * a page that arrives as zero before anything else arrived for it, so
 * memory the guest never used is never backed. It holds for the first
 * vmig_receive() only: that call clears it, whatever its outcome.
 */
#define VMIG_REGION_FRESH 0x1u
/*
 * ANON_PRIVATE: hva is private anonymous memory of this process
 * (MAP_PRIVATE | MAP_ANONYMOUS, 4 KiB or transparent huge pages, not
 * hugetlb), written only through this process's page tables (vCPUs, DMA
 * to pinned pages). A source then does not read a page that
 * /proc/self/pagemap shows neither present nor swapped: it was never
 * written and is sent as zero. vmig_region_add checks the mappings
 * (/proc/self/maps) and refuses the flag with -EINVAL on anything else.
 * Never set it on memory registered with userfaultfd in missing mode (a
 * page not yet filled is a hole whose contents are not zero):
 * vmig_region_add refuses it with -EINVAL on memory registered so when
 * it is called (/proc/self/smaps), and cannot see a registration made
 * later.
 *
 * A region with an fd needs no flag: when the fd is a tmpfs file (a
 * memfd) that every mapping of hva maps shared at fd_offset onwards
 * (vmig_region_add checks), the file's holes (lseek SEEK_DATA/SEEK_HOLE,
 * which moves the fd's offset) are not read; any other fd is not used,
 * nor the holes of a mapping registered with userfaultfd in missing mode.
 */
#define VMIG_REGION_ANON_PRIVATE 0x2u

struct vmig_region {
	uint32_t size;
	uint32_t flags;   /* VMIG_REGION_* */
	const char *name; /* optional */
	uint64_t gpa;     /* guest-physical start, 4 KiB aligned */
	uint64_t length;  /* bytes, a multiple of 4 KiB */
	void *hva;        /* where the VMM mapped it */
	int32_t fd;       /* backing memfd, or -1 (see ANON_PRIVATE) */
	uint32_t reserved;
	uint64_t fd_offset;
};

/*
 * Adds a region of guest memory. Errors: -EINVAL (unaligned, empty, NULL
 * hva, flags set), -EEXIST (overlaps another region, in guest-physical or
 * host address), -EBUSY (tracking has started), -ENOMEM.
 */
VMIG_API int vmig_region_add(vmig_session *s, const struct vmig_region *r,
			     uint32_t *out_index);

/* ------------------------------------------------------------------ */
/* I/O address spaces and DMA mappings                                 */

/* A VFIO type1 container or an iommufd IOAS that the VMM opened. */
struct vmig_iommu {
	uint32_t size;
	uint32_t kind;    /* VMIG_IOMMU_TYPE1 or VMIG_IOMMU_IOMMUFD */
	const char *name; /* optional */
	int32_t fd;       /* container fd or iommufd; stays the VMM's */
	uint32_t ioas_id; /* iommufd only */
};

/*
 * Registers an address space. Errors: -EINVAL (unknown kind, negative
 * fd), -ENOMEM.
 */
VMIG_API int vmig_iommu_add(vmig_session *s, const struct vmig_iommu *io,
			    uint32_t *out_id);

#define VMIG_DMA_READ 0x1u     /* the device may read the range */
#define VMIG_DMA_WRITE 0x2u    /* the device may write the range */
#define VMIG_DMA_EXISTING 0x4u /* the VMM mapped it already: record only */

/* A DMA mapping: IOVA range of an address space onto guest memory. */
struct vmig_dma_map {
	uint32_t size;
	uint32_t flags; /* VMIG_DMA_* */
	uint32_t iommu_id;
	uint32_t reserved;
	uint64_t iova;
	uint64_t length;
	uint64_t gpa; /* must lie inside one region */
};

/*
 * Maps guest memory into an address space, through the kernel (MAP_DMA
 * or IOAS_MAP with a fixed IOVA) unless VMIG_DMA_EXISTING. While tracking
 * runs, every source tracking a device of that space is told first, so
 * the range is covered from the moment it exists; a range registered with
 * VMIG_DMA_EXISTING existed before, so it is also sent as dirty once.
 * Errors: -EINVAL
 * (unaligned, no READ/WRITE, not inside one region), -ENOENT (no such
 * address space), -EEXIST (overlaps a mapping), or the kernel's error.
 */
VMIG_API int vmig_dma_map(vmig_session *s, const struct vmig_dma_map *map);

/*
 * Unmaps [iova, iova + length) of an address space, which must cover
 * whole mappings. While tracking runs, the last dirty bits of the range
 * are harvested first (type1: unmap with bitmap; iommufd: a read that does
 * not clear, then the unmap; device logs: a last report) and kept in the
 * session's dirty bitmaps. Errors: -EINVAL (unaligned, cuts a mapping),
 * -ENOENT (no such space, nothing mapped there), or the kernel's error.
 */
VMIG_API int vmig_dma_unmap(vmig_session *s, uint32_t iommu_id,
			    uint64_t iova, uint64_t length);

/* ------------------------------------------------------------------ */
/* Devices                                                             */

struct vmig_pasid {
	uint32_t pasid;
	uint32_t iommu_id; /* the address space the PASID translates through */
};

/* A passthrough device. The fds stay the VMM's. */
struct vmig_device {
	uint32_t size;
	uint32_t kind;       /* enum vmig_device_kind */
	const char *name;    /* unique in the session */
	const char *address; /* sysfs name (PCI address, mdev UUID); optional */
	uint32_t iommu_id;   /* where its DMA goes */
	int32_t device_fd;   /* -1 if none */
	int32_t group_fd;    /* type1: the group, else -1 */
	uint32_t iommufd_id; /* iommufd: id from VFIO_DEVICE_BIND_IOMMUFD */
	uint32_t nr_pasids;
	uint32_t reserved;
	const struct vmig_pasid *pasids;
};

/*
 * Registers a device. While tracking runs it is treated as hot-plugged:
 * every range it can write is marked dirty once, then it is tracked by its
 * best source. Errors: -EINVAL (unknown kind, empty name), -EEXIST (name
 * taken), -ENOENT (no such address space), -ENOMEM.
 */
VMIG_API int vmig_device_add(vmig_session *s, const struct vmig_device *dev,
			     uint32_t *out_id);

/*
 * Unregisters a device (unplug). While tracking runs, its source's last
 * bits are harvested first, then it leaves its source (its DMA log stops,
 * or it moves back from a dirty-tracking HWPT to an automatic domain), so
 * no source can see a write it makes after the harvest. Call it once the
 * device has stopped writing guest memory (the guest released it and the
 * VMM quiesced, reset or closed it), as every unplug does before the
 * device goes; every write it made before is then in the harvest. Errors:
 * -ENOENT, -EBUSY (its VFIO state is being migrated, or the device is
 * held stopped by an unresolved migration: vmig_resolve() first, which
 * may still bring it back through its fd).
 */
VMIG_API int vmig_device_remove(vmig_session *s, uint32_t id);

/* How a device is tracked. */
struct vmig_device_status {
	uint32_t size;
	uint32_t precision; /* enum vmig_precision of its source */
	char source[64];    /* the source's name; "all-dirty" for none */
	char reason[160];   /* why that source, and what its precision means */
};

/*
 * Tells how a device is tracked. Before tracking starts the source is
 * empty and precision NONE. Errors: -ENOENT, -EINVAL (size too small).
 */
VMIG_API int vmig_device_status(vmig_session *s, uint32_t id,
				struct vmig_device_status *out);

/* ------------------------------------------------------------------ */
/* Dirty tracking                                                      */

/*
 * Chooses a source for every device (every source probes every device;
 * the preference order picks; a device nothing can track has its ranges
 * treated as dirty on every sync) and starts tracking. All guest memory
 * starts dirty. Errors: -EALREADY, or a source's error when no fallback
 * could be arranged.
 */
VMIG_API int vmig_tracking_start(vmig_session *s);

/*
 * Reads every source and ORs what it reports, translated to guest-physical
 * pages, into the regions' dirty bitmaps. A source that fails has its
 * ranges marked dirty and is logged. Returns the number of dirty pages in
 * the bitmaps afterwards, or -EINVAL (tracking not started).
 */
VMIG_API int64_t vmig_dirty_sync(vmig_session *s);

/*
 * Gives a region's dirty bitmap: one bit per 4 KiB page from the region's
 * start, bit n being bit n % 64 of word n / 64. Valid until the next call
 * on the session. Errors: -ENOENT (no such region).
 */
VMIG_API int vmig_dirty_bitmap(vmig_session *s, uint32_t region,
			       const uint64_t **bitmap, uint64_t *npages);

/* Clears a region's dirty bitmap (its pages were sent). Errors: -ENOENT. */
VMIG_API int vmig_dirty_clear(vmig_session *s, uint32_t region);

/* Stops tracking on every source. Errors: -EINVAL (not started). */
VMIG_API int vmig_tracking_stop(vmig_session *s);

/* ------------------------------------------------------------------ */
/* Migration                                                           */

/*
 * What the engine needs the VMM to do. Each returns 0 or a negative errno.
 * They run on the migration's thread: they may call vmig on the session
 * themselves, but must not wait for another thread that does (its call
 * waits for the migration's thread).
 */
struct vmig_vmm_ops {
	uint32_t size;
	uint32_t reserved;
	/*
	 * Source, at switchover: stop the vCPUs, and quiesce any device that
	 * has no VFIO migration support (devices that have it are stopped by
	 * vmig). No guest write may happen after it returns.
	 */
	int (*stop)(void *opaque);
	/*
	 * Source: the migration failed or was cancelled after vmig called
	 * stop (even when stop itself failed, so it must accept a guest that
	 * runs already), and the destination never started the guest: run
	 * it again. Never called for a guest that was committed, nor for a
	 * failure before stop, nor while the outcome is unresolved (until
	 * vmig_resolve() says so).
	 */
	int (*resume)(void *opaque);
	/* Destination: the source committed: start the guest. */
	int (*start)(void *opaque);
};

/*
 * Sets the VMM's callbacks (copied; opaque is passed back). Without them a
 * source cannot stop the guest: vmig_migrate then fails with -EINVAL.
 * Errors: -EINVAL (size too small), -EBUSY (a migration runs, or the last
 * one is unresolved: the paused guest belongs to the callbacks that
 * stopped it, which vmig_resolve() calls; set others after it).
 */
VMIG_API int vmig_set_vmm_ops(vmig_session *s, const struct vmig_vmm_ops *ops,
			      void *opaque);

/* ------------------------------------------------------------------ */
/* The VMM's own state (since 0.3)                                     */

/*
 * A VMM's state that is not guest memory nor a VFIO device's (vCPU
 * registers, interrupt controllers, emulated devices, the machine's
 * configuration) travels in the migration stream as named, versioned
 * state sections. Their records enter the commit check (the
 * destination's ACK proves it loaded every byte), and the destination
 * loads them before the VMM's start callback. A section the destination
 * has not registered, or a version outside what it loads, fails the
 * migration at the handshake with an error that names it; so does a
 * section the destination registered and the source does not send.
 * docs/embedding.md has the rules and an example.
 */

/* Where a save callback writes its records (valid during the call). */
typedef struct vmig_state_out vmig_state_out;

/* The longest state section name, in bytes (UTF-8, no NUL). */
#define VMIG_STATE_NAME_MAX 63u
/* The largest record (one vmig_state_put), in bytes. */
#define VMIG_STATE_RECORD_MAX (1u << 20)
/* The most state sections a session registers. */
#define VMIG_STATE_SECTIONS_MAX 64u

/*
 * A state section's callbacks. They run on the migration's thread, like
 * struct vmig_vmm_ops, and return 0 or a negative errno.
 */
struct vmig_state_ops {
	uint32_t size;
	uint32_t reserved;
	/*
	 * Source, optional: the bytes save_final would write now (the
	 * convergence estimate counts them inside the downtime).
	 */
	uint64_t (*pending)(void *opaque);
	/*
	 * Source, optional: the guest runs; called once per pre-copy pass,
	 * to write what can go early (records, with vmig_state_put()).
	 */
	int (*save_live)(void *opaque, vmig_state_out *out);
	/*
	 * Source, required: the guest and the devices are stopped (after
	 * the VMM's stop callback): write the rest. Called once per
	 * switchover; if the migration then fails, the guest resumes and a
	 * later migration calls it again.
	 */
	int (*save_final)(void *opaque, vmig_state_out *out);
	/*
	 * Destination, required: one record, whole and in the order it
	 * was written, of the source's section version (within what this
	 * side registered). Records come while pages arrive, all before
	 * the VMM's start callback.
	 */
	int (*load)(void *opaque, uint32_t version, const void *data,
		    size_t len);
	/*
	 * Destination, optional: every record arrived (before the ACK):
	 * is the state whole? A failure fails the migration: the source
	 * resumes its guest.
	 */
	int (*load_done)(void *opaque, uint32_t version);
	/*
	 * Destination, optional: the migration failed after the first
	 * record came (or after load_done): what was loaded is dropped (the
	 * guest never runs here).
	 */
	void (*load_abort)(void *opaque);
};

/*
 * Registers a state section (ops copied, name copied, opaque passed
 * back). version is what this side's save_final writes (1 or more);
 * a destination loads the versions min_version to version. Both sides
 * register the same names; their order need not match.
 * Errors: -EINVAL (no name, a name longer than VMIG_STATE_NAME_MAX or
 * with a control character, version 0, min_version above version, ops
 * size too small, neither save_final nor load), -EEXIST (the name is
 * registered), -ENOSPC (VMIG_STATE_SECTIONS_MAX reached), -EBUSY (a
 * migration runs), -ENOMEM.
 */
VMIG_API int vmig_state_register(vmig_session *s, const char *name,
				 uint32_t version, uint32_t min_version,
				 const struct vmig_state_ops *ops,
				 void *opaque);

/*
 * Removes a state section. Errors: -ENOENT (no such name), -EBUSY (a
 * migration runs), -EINVAL.
 */
VMIG_API int vmig_state_unregister(vmig_session *s, const char *name);

/*
 * From a save callback: queues one record of len bytes (1 to
 * VMIG_STATE_RECORD_MAX; copied). The destination's load gets it
 * whole. Errors: -EINVAL (out, data or len), -ENOMEM.
 */
VMIG_API int vmig_state_put(vmig_state_out *out, const void *data,
			    size_t len);

enum vmig_hotplug_policy {
	VMIG_HOTPLUG_POLICY_TRACK = 0,   /* track it with its best source */
	VMIG_HOTPLUG_POLICY_DEGRADE = 1, /* treat its ranges as always dirty */
	VMIG_HOTPLUG_POLICY_REJECT = 2,  /* refuse it (vmig_device_add fails) */
};

enum vmig_timeout_strategy {
	VMIG_TIMEOUT_STRATEGY_CANCEL = 0, /* keep the guest on the source */
	VMIG_TIMEOUT_STRATEGY_FORCE = 1,  /* switch over anyway */
};

enum vmig_tracking_policy {
	/* Each device its best source, several sources per space. */
	VMIG_TRACKING_POLICY_MIXED = 0,
	/*
	 * One source for all devices of an address space, or none: the
	 * "one mode per container" policy, for comparison.
	 */
	VMIG_TRACKING_POLICY_ALL_OR_NOTHING = 1,
};

/*
 * How the source checks the destination's memory digest (ACK) against
 * its own (docs/protocol.md "Digest").
 */
enum vmig_verify_policy {
	/*
	 * 0 (or an older caller's shorter struct): VMIG_VERIFY_AUDIT; while
	 * a migration runs (it cannot change then), the one it uses.
	 */
	VMIG_VERIFY_DEFAULT = 0,
	/*
	 * Commit on the destination's ACK; then hash the stopped memory
	 * and compare: a mismatch returns VMIG_EAUDIT (the guest already
	 * runs on the destination). Nothing of it is in the downtime.
	 */
	VMIG_VERIFY_AUDIT = 1,
	/*
	 * Hash the stopped memory (on every core) before COMMIT and commit
	 * only on equal digests; a mismatch fails with VMIG_EMISMATCH and
	 * the guest resumes on the source. The hashing is in the downtime
	 * (and in the expected downtime).
	 */
	VMIG_VERIFY_STRICT = 2,
	/*
	 * No comparison: commit on ACK (its page count is still checked);
	 * neither end hashes memory.
	 */
	VMIG_VERIFY_OFF = 3,
};

/* How a migration behaves; zero fields take the defaults. */
struct vmig_policies {
	uint32_t size;
	uint32_t hotplug;           /* enum vmig_hotplug_policy */
	uint64_t downtime_limit_ms; /* switch over under this; default 300 */
	uint64_t bandwidth_limit;   /* bytes per second; 0 = unlimited */
	uint32_t max_iterations;    /* default 30 */
	uint32_t timeout_strategy;  /* enum vmig_timeout_strategy */
	uint64_t timeout_ms;        /* 0 = none */
	/* Since 0.1: older callers' shorter struct means mixed. */
	uint32_t tracking;          /* enum vmig_tracking_policy */
	uint32_t reserved;          /* 0 */
	/*
	 * Appended after tracking: the longest the source's guest stays
	 * stopped waiting for the destination (for the last bytes to
	 * drain, for ACK, for STARTED), from the return of the stop
	 * callback. When it passes before COMMIT was written, the guest
	 * resumes on the source; after, the outcome is VMIG_EUNRESOLVED.
	 * 0 (or an older caller's shorter struct) means
	 * VMIG_DEFAULT_SWITCHOVER_TIMEOUT_MS.
	 */
	uint64_t switchover_timeout_ms;
	/*
	 * Appended after switchover_timeout_ms (0 or an older caller's
	 * shorter struct: the defaults below). Both sides bound every wait
	 * for their peer, so that a peer that connects and stalls is
	 * dropped:
	 *
	 * handshake_timeout_ms: source, from connecting to the
	 * destination's WELCOME; destination, from accepting a connection
	 * to the whole HELLO.
	 *
	 * idle_timeout_ms: the longest time nothing moves while the stream
	 * runs: source, during the pre-copy, no byte written and no reply
	 * read (once the guest is stopped, switchover_timeout_ms bounds
	 * it); destination, from HELLO to COMPLETE, no byte received.
	 *
	 * A destination also bounds the wait from SWITCHOVER to COMMIT by
	 * switchover_timeout_ms, and the whole migration, from accepting,
	 * by timeout_ms when it is not 0. A destination that gives up
	 * never starts the guest; its listener stays, so vmig_receive()
	 * may be called again for the next source.
	 */
	uint64_t handshake_timeout_ms;
	uint64_t idle_timeout_ms;
	/* Appended after switchover_timeout_ms: enum vmig_verify_policy. */
	uint32_t verify;
	/*
	 * Was reserved (0), now: the source's connections, fixed for the
	 * migration once it starts. 0 or 1: one stream carries everything.
	 * 2 to VMIG_CONNECTIONS_MAX: the pages travel over that many
	 * connections of their own to the same address (tcp: or unix:, not
	 * TLS), each written by a thread of its own on the source and read
	 * by one on the destination, beside the stream that keeps the
	 * control frames and the device and VMM state (docs/protocol.md,
	 * "Data connections").
	 */
	uint32_t connections;
};

/* The most vmig_policies.connections may be. */
#define VMIG_CONNECTIONS_MAX 16u

/* The default of vmig_policies.switchover_timeout_ms. */
#define VMIG_DEFAULT_SWITCHOVER_TIMEOUT_MS 30000u
/* The default of vmig_policies.handshake_timeout_ms. */
#define VMIG_DEFAULT_HANDSHAKE_TIMEOUT_MS 30000u
/* The default of vmig_policies.idle_timeout_ms. */
#define VMIG_DEFAULT_IDLE_TIMEOUT_MS 60000u

/*
 * Sets the policies (a configuration's "policies" sets them too). From
 * any thread while a migration runs, the bandwidth limit, the downtime
 * limit, the timeout and the switchover timeout may change: they take
 * effect at the next decision (the timeout counts from the migration's
 * start; one already passed fires at once). Errors: -EINVAL (size too
 * small, unknown value), -EBUSY (a migration runs and another field
 * differs: the message names it).
 */
VMIG_API int vmig_set_policies(vmig_session *s,
			       const struct vmig_policies *p);

/*
 * Source: connects to address ("unix:/path", "tcp:host:port", or TLS 1.3
 * over TCP: "tls:host:port?ca=FILE[&name=N][&cert=FILE&key=FILE]",
 * "tls-psk:host:port?key=FILE[&identity=ID]"; docs/config.md) and
 * migrates: pre-copy iterations while the guest runs, then switchover
 * through the VMM's stop callback, the final pages and device state,
 * COMMIT on the destination's ACK (with verify "strict", only once its
 * memory digest equals the source's), and the destination's STARTED. Blocks until done; progress goes to the
 * progress callback. On any failure before COMMIT is written, the
 * devices and the guest (resume callback, when stop was called) run
 * again on the source. Returns 0 (the destination confirmed it runs the
 * guest), VMIG_EUNRESOLVED (COMMIT was written but STARTED did not
 * come: the guest stays paused; ask the destination, then call
 * vmig_resolve()), -ECANCELED (vmig_cancel), -ETIMEDOUT (timeout with
 * strategy cancel, handshake_timeout_ms, idle_timeout_ms or
 * switchover_timeout_ms; the message names what was awaited),
 * VMIG_EPROTO (the destination rejected the stream), VMIG_EMISMATCH
 * (strict: the digests differ; the guest resumes here), VMIG_EAUDIT
 * (audit: committed, the guest runs on the destination, then the
 * digests differed),
 * VMIG_EMIGRATED (this session's guest was migrated already: nothing is
 * done, resume is not called), -EBUSY (a migration runs, or the last one
 * is unresolved), or another error, always with vmig_errmsg naming the
 * cause. docs/protocol.md ("Endings") gives who runs the guest at every
 * point where the connection can break.
 */
VMIG_API int vmig_migrate(vmig_session *s, const char *address);

/* How vmig_resolve() settles an unresolved migration. */
enum vmig_resolution {
	/*
	 * The destination did not start the guest (its vmig_receive
	 * failed; it never starts it later): the devices and the guest run
	 * on the source again (resume callback).
	 */
	VMIG_RESOLVE_RESUME = 1,
	/*
	 * The destination started the guest (its vmig_receive returned 0):
	 * the source's guest stays stopped for good; the session counts as
	 * migrated.
	 */
	VMIG_RESOLVE_DESTINATION = 2,
};

/*
 * Source: settles a migration that ended with VMIG_EUNRESOLVED, once the
 * VMM learned by its own means whether the destination runs the guest.
 * Calling it with the wrong answer runs the guest twice or nowhere: only
 * the destination knows. VMIG_RESOLVE_RESUME brings the devices back to
 * RUNNING, then calls the resume callback, and sets the report's
 * downtime to the time from the stop to that resume. Errors: -EINVAL (no
 * unresolved migration, an unknown decision, or no resume callback: after
 * a run of the vmig program with its simulated guest, whose guest ended
 * with the run; nothing changes), the resume callback's error (the session stays
 * unresolved, to try again), or a device's error when one could not be
 * brought back to RUNNING: the guest and the other devices were resumed
 * all the same and the outcome is settled (vmig_errmsg and the log name
 * the device).
 */
VMIG_API int vmig_resolve(vmig_session *s, uint32_t decision);

/*
 * Destination: binds address ("unix:/path", "tcp:host:port",
 * "tls:host:port?cert=FILE&key=FILE[&ca=FILE[&name=N]]" or
 * "tls-psk:host:port?key=FILE"; port 0
 * picks one; NULL: the transport of the configuration the session was
 * set up from, by the vmig program's tool) and writes the bound
 * address into bound (NUL-terminated, truncated to len; may be NULL).
 * Call vmig_receive next. Errors: -EINVAL (bad address, or a TLS file
 * that cannot be read: the message names it), -EADDRINUSE, the socket's
 * errors. A TLS destination refuses a source that fails the handshake
 * (plain, wrong key or certificate): vmig_receive fails with the reason.
 */
VMIG_API int vmig_listen(vmig_session *s, const char *address, char *bound,
			 size_t len);

/*
 * Destination: accepts one source on the address vmig_listen bound and
 * receives its migration into the session's regions and devices, checking
 * every frame before applying it; after the source commits, starts the
 * devices and calls the VMM's start callback, then confirms (STARTED).
 * Blocks until done. Returns 0 (started: this side owns the guest, even
 * when the confirmation could not reach the source), VMIG_EPROTO (a
 * malformed or hostile stream, rejected: vmig_errmsg names the check),
 * -ETIMEDOUT (the source stalled past handshake_timeout_ms,
 * idle_timeout_ms, switchover_timeout_ms or timeout_ms), -ECANCELED, or
 * another error; on any error the guest was not started here and never
 * will be by this call. After an error the listener stays: calling
 * vmig_receive again accepts the next source (one that connected in the
 * meantime waits for it). After success, or vmig_cancel, it is closed.
 */
VMIG_API int vmig_receive(vmig_session *s);

/*
 * Runs both ends in this process, src migrating into dst over a socket
 * pair. Returns as vmig_migrate (dst's own outcome is in its report).
 */
VMIG_API int vmig_migrate_local(vmig_session *src, vmig_session *dst);

/* Where a source's migration stands (vmig_query, events, progress). */
enum vmig_phase {
	VMIG_PHASE_NONE = 0,       /* no migration ran yet */
	VMIG_PHASE_SETUP = 1,      /* connecting, handshake (HELLO) */
	VMIG_PHASE_PRECOPY = 2,    /* iterations while the guest runs */
	VMIG_PHASE_SWITCHOVER = 3, /* guest stopped: the rest, the digest */
	VMIG_PHASE_COMMIT = 4,     /* COMMIT sent: waiting for STARTED */
	VMIG_PHASE_COMPLETED = 5,  /* the destination runs the guest */
	VMIG_PHASE_FAILED = 6,     /* the guest runs on the source */
	VMIG_PHASE_UNRESOLVED = 7, /* paused: vmig_resolve() decides */
};

/*
 * The name of a precision (enum vmig_precision, <vmig/plugin.h>), as the
 * report prints it: "exact", "superset", "all-mapped" or "none".
 */
VMIG_API const char *vmig_precision_name(uint32_t precision);

/* The name of a phase ("pre-copy"), or "unknown". */
VMIG_API const char *vmig_phase_name(uint32_t phase);

/* What vmig_query() says about the session's (last) migration. */
struct vmig_status {
	uint32_t size;
	uint32_t phase;          /* enum vmig_phase */
	uint32_t iteration;      /* the current (or last) pass */
	uint32_t reserved;
	uint64_t bytes_sent;     /* written since the migration began */
	uint64_t bytes_left;     /* still to send in this pass */
	uint64_t pages_dirty;    /* found dirty by this pass's sync */
	uint64_t dirty_rate;     /* bytes dirtied per second */
	uint64_t bandwidth;      /* bytes moved per second */
	uint64_t expected_downtime_us; /* UINT64_MAX: not known yet */
	uint64_t elapsed_us;     /* since the migration began (to its end) */
	uint64_t stopped_us;     /* how long the guest has been stopped */
};

/*
 * Fills *out (out->size set by the caller) with where the session's
 * migration stands. Safe from any thread, while a migration runs or
 * after. Errors: -EINVAL (size too small).
 */
VMIG_API int vmig_query(vmig_session *s, struct vmig_status *out);

/* What happened (struct vmig_event's type). */
enum vmig_event_type {
	VMIG_EVENT_PHASE = 1,      /* the phase changed (phase: the new one) */
	VMIG_EVENT_ITERATION = 2,  /* a pass ended (its figures) */
	VMIG_EVENT_CONVERGED = 3,  /* the migration will switch over */
	VMIG_EVENT_SWITCHOVER = 4, /* the guest was stopped */
	VMIG_EVENT_COMMIT = 5,     /* COMMIT written */
	VMIG_EVENT_COMPLETED = 6,  /* the destination started the guest */
	VMIG_EVENT_FAILED = 7,     /* error: the code; message: why */
};

/* One event of a source's migration; valid during the callback only. */
struct vmig_event {
	uint32_t size;
	uint32_t type;           /* enum vmig_event_type */
	uint32_t phase;          /* enum vmig_phase, after the event */
	uint32_t iteration;
	int32_t error;           /* FAILED: the migration's result */
	uint32_t reserved;
	uint64_t elapsed_us;     /* since the migration began (to its end) */
	uint64_t pages_dirty;    /* ITERATION: what its sync found */
	uint64_t bytes_sent;
	uint64_t expected_downtime_us; /* UINT64_MAX: not known yet */
	const char *message;     /* a line of text, never NULL */
};

typedef void (*vmig_event_fn)(void *opaque, const struct vmig_event *ev);

/*
 * Sets the callback that receives the migration's events (NULL: none).
 * It runs on the migration's thread: it may call vmig_query; it must not
 * block. Errors: -EBUSY (a migration runs).
 */
VMIG_API int vmig_set_event_callback(vmig_session *s, vmig_event_fn fn,
				     void *opaque);

/*
 * Cancels the session's migration from any thread: the source sends an
 * error to the destination and resumes the guest if it had stopped it;
 * once COMMIT may have left, it cannot know who runs the guest and ends
 * unresolved (VMIG_EUNRESOLVED). A destination that is cancelled before
 * COMMIT never starts the guest. Returns 0, or -EINVAL when nothing
 * runs.
 */
VMIG_API int vmig_cancel(vmig_session *s);

/*
 * Computes the digest of the session's guest memory (docs/protocol.md):
 * what a destination acknowledges with. Errors: -EINVAL.
 */
VMIG_API int vmig_memory_digest(vmig_session *s, uint64_t *digest);

/*
 * Writes every region of the session's guest memory, in ascending
 * guest-physical order, to the file at path (created or truncated): to
 * compare two memories page by page. Errors: -EINVAL, the file's errors.
 */
VMIG_API int vmig_memory_dump(vmig_session *s, const char *path);

/* ------------------------------------------------------------------ */
/* Observing a session (since 0.2)                                     */

/*
 * What an observer that knows what the guest really wrote (a simulated
 * kernel's ground truth) says about one sync: its sync callback fills it
 * after the sync. vmig zeroes it before the call and adds the figures to
 * the iteration's record in the report (docs/report.md).
 */
struct vmig_sync_truth {
	uint32_t size;
	uint32_t reserved;
	uint64_t writes;        /* DMA writes made in the interval */
	uint64_t pages_written; /* distinct pages they wrote */
	uint64_t pages_missed;  /* written and reported by no sync */
	/*
	 * Per region (in vmig_region_add order), one bit per page: what
	 * counts as written when each source's report of this sync is
	 * judged (its pages_unwritten). NULL: not known. Read by vmig
	 * right after the callback returns.
	 */
	uint64_t *const *written;
};

/* vmig_observer.flags: the observer's sync figures are the truth. */
#define VMIG_OBSERVER_TRUTH (1u << 0)

/*
 * Callbacks at the points of dirty tracking where what the guest wrote
 * can be checked against what the sources reported. Each may be NULL.
 * They run on the thread that made the call (during a migration, its
 * thread) and must not call vmig on the session.
 */
struct vmig_observer {
	uint32_t size;
	uint32_t flags; /* VMIG_OBSERVER_* */
	/*
	 * Tracking started (vmig_tracking_start; all of memory is dirty):
	 * what was written so far is covered. With VMIG_OBSERVER_TRUTH,
	 * what tracking's start marked is not counted as any source's
	 * report.
	 */
	void (*tracking_started)(void *opaque);
	/*
	 * Around each vmig_dirty_sync (a migration's included): before it
	 * (after false, truth NULL), then after it (after true; truth NULL
	 * when the sync failed).
	 */
	void (*sync)(void *opaque, bool after, struct vmig_sync_truth *truth);
	/*
	 * A call of the VMM that a migration ran on its thread between two
	 * syncs (a hot-plug, an unplug, an unmap) is done: it may have
	 * marked pages dirty, which the migration may send before the next
	 * sync.
	 */
	void (*vmm_call_done)(void *opaque);
};

/*
 * Sets the session's observer (copied; opaque is passed back), or clears
 * it (NULL). While one is set, tracking started outside a migration is
 * recorded as a tracking run (each sync an iteration; vmig_report_json
 * describes it) and the progress callback hears of each sync. Errors:
 * -EINVAL (size too small, unknown flags), -EBUSY (a migration runs).
 */
VMIG_API int vmig_set_observer(vmig_session *s,
			       const struct vmig_observer *obs, void *opaque);

/* ------------------------------------------------------------------ */
/* Report                                                              */

/*
 * Writes the session's report as JSON into buf (NUL-terminated, truncated
 * to len). Returns the full length without the NUL, like snprintf, or
 * -ENOMEM.
 */
VMIG_API int64_t vmig_report_json(vmig_session *s, char *buf, size_t len);

#ifdef __cplusplus
}
#endif

#endif /* VMIG_VMIG_H */
