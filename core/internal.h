/*
 * internal.h: the session's state, shared by the files of core/.
 *
 * A session holds guest memory (regions, each with its migration dirty
 * bitmap), I/O address spaces with their DMA mappings, devices, and the
 * dirty-source instances that track them. session.c owns the records and
 * the public calls that edit them; arbiter.c decides which source tracks
 * which device; dirty.c moves dirty bits from sources into the regions'
 * bitmaps; observer.c calls the session's observer; report.c describes
 * the last run.
 */
#ifndef VMIG_CORE_INTERNAL_H
#define VMIG_CORE_INTERNAL_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <stdarg.h>
#include <stdio.h>
#include <string.h>

#include <vmig/vmig.h>

#include "bitmap.h"
#include "loader.h"

struct vmig_ioas_backend;

/* A device tracked by nothing: its ranges are dirty on every sync. */
#define VMIG_SOURCE_FALLBACK (-1)
/* A device not arbitrated yet (tracking not started, or just plugged). */
#define VMIG_SOURCE_NONE (-2)

/* The name the report gives the built-in fallback. */
#define VMIG_FALLBACK_NAME "all-dirty"

struct vmig_region_rec {
	char *name;
	uint64_t gpa;
	uint64_t length;
	uint8_t *hva;
	int fd;
	uint64_t fd_offset;
	uint64_t npages;
	uint64_t *dirty; /* the migration bitmap: one bit per 4 KiB page */
	bool owned;      /* the session allocated the memory (configuration) */
	/*
	 * VMIG_REGION_FRESH: zero and never written; a receive clears it
	 * (the pages it wrote are no longer fresh).
	 */
	bool fresh;
	/*
	 * VMIG_REGION_ANON_PRIVATE: private anonymous memory of this
	 * process, whose never-written pages pagemap shows (checked at
	 * vmig_region_add: no hugetlb, no file).
	 */
	bool anon_private;
	/*
	 * fd is a tmpfs file (a memfd) that hva maps shared at fd_offset
	 * (checked at vmig_region_add): its holes are never-written pages.
	 */
	bool fd_holes;
};

struct vmig_mapping_rec {
	uint64_t iova;
	uint64_t length;
	uint64_t gpa;
	uint32_t flags;  /* VMIG_DMA_* */
	uint32_t region; /* the region holding [gpa, gpa + length) */
};

struct vmig_iommu_rec {
	struct vmig_iommu_desc desc;
	const struct vmig_ioas_backend *be; /* its kind's (ioas.h) */
	char *name;
	struct vmig_mapping_rec *maps; /* sorted by iova, disjoint */
	size_t nr_maps;
	size_t cap_maps;
	bool owned_fd; /* the session opened desc.fd (configuration) */
	/* Other fds the session opened for this space (type1 groups). */
	int *owned_fds;
	size_t nr_owned_fds;
};

/* What one source said about one device when it was arbitrated. */
struct vmig_candidate {
	uint32_t precision;
	uint32_t flags; /* VMIG_PROBE_* */
	int error; /* the probe's or the attach's error, or 0 */
	char reason[160];
};

struct vmig_device_rec {
	uint32_t id; /* index in the session's device array */
	bool present; /* false once removed */
	char *name;
	char *address;
	uint32_t kind;
	uint32_t iommu; /* index of its address space */
	int device_fd;
	int group_fd;
	uint32_t iommufd_id;
	struct vmig_pasid *pasids;
	uint32_t nr_pasids;
	bool owned_fd; /* the session opened device_fd (configuration) */
	bool hotplugged; /* arrived while tracking ran */
	int source; /* index into sources, or VMIG_SOURCE_* */
	uint32_t precision;
	bool pasids_covered; /* its source tracks its PASID spaces too */
	char reason[160];
	struct vmig_candidate *candidates; /* one per source, when arbitrated */
	size_t nr_candidates;
	/* The last migration (engine.h): its state travelled, how much. */
	bool mig_state;
	uint64_t state_bytes;
	/* Built on demand for the plugins: see vmig_device_desc_fill. */
	struct vmig_device_desc desc;
	struct vmig_range *ranges;
	struct vmig_pasid_desc *pasid_descs;
};

struct vmig_source_rec {
	vmig_session *s;
	size_t index;
	const struct vmig_plugin *desc;
	const char *name;
	void *inst;          /* NULL until created */
	struct vmig_host host; /* the table this instance was given */
	bool create_failed;
	bool gpa;            /* a vCPU source: reads guest-physical space */
	bool started;
	bool failed;
	bool restarted;      /* it failed once and was restarted */
	int error;           /* why it failed */
	uint32_t nr_devices; /* devices attached now */
	uint64_t reads;
	uint64_t read_errors;
	/*
	 * Since tracking started, summed over the syncs (report.md): the
	 * pages it reported, and of those the pages no device wrote in that
	 * interval, as far as a simulated kernel's ground truth tells.
	 */
	uint64_t pages_reported;
	uint64_t pages_unwritten;
};

/*
 * Who marks pages dirty, for the accounting of what each source reported
 * (vmig_dirty_account): a source's index, or this for vmig itself (the
 * fallback's spaces, what a call or a failure makes dirty once).
 */
#define VMIG_ACCT_VMIG (-1)

/* Figures of one iteration of a tracking run or a migration. */
struct vmig_iter_stats {
	uint32_t iteration;
	uint64_t duration_us;
	/*
	 * Per sync the record holds (its own; the last pre-copy one's also
	 * the final sync), summed: docs/report.md.
	 */
	uint64_t writes;         /* simulated DMA writes made */
	uint64_t pages_written;  /* distinct pages written in the interval */
	uint64_t pages_reported; /* distinct pages marked in the interval */
	uint64_t pages_missed;   /* written and not reported */
	/* Migration (engine.h): what the iteration sent. */
	bool final;              /* the stop-copy phase (guest stopped) */
	uint64_t pages_dirty;    /* pages to send when it began */
	uint64_t pages_sent;     /* as PAGES */
	uint64_t zero_pages;     /* as ZERO */
	uint64_t pages_unread;   /* of those, holes of the backing: not read */
	uint64_t bytes;          /* stream bytes */
	uint64_t device_bytes;   /* device state bytes */
	uint64_t dirty_rate;     /* bytes dirtied per second before it */
};

struct vmig_run_stats {
	bool valid;
	bool truth; /* an observer gave the ground truth: written figures real */
	bool migration; /* a migration's iterations, not a tracking run's */
	struct vmig_iter_stats *iters;
	size_t nr_iters;
	uint64_t pages_written;
	uint64_t pages_reported;
	uint64_t pages_missed;
	uint64_t duration_us;
};

struct vmig_session {
	uint32_t role;
	vmig_log_fn log;
	void *log_opaque;
	uint32_t log_level;
	vmig_progress_fn progress;
	void *progress_opaque;

	/* Kernel operations (real, simulated or the caller's) and kctx. */
	struct vmig_host kernel;
	/* How the report names the kernel; NULL: from its operations. */
	const char *kernel_name;

	struct vmig_pluginset *plugins;
	char **preference;
	size_t nr_preference;

	struct vmig_region_rec *regions;
	size_t nr_regions;
	/* Records are allocated one by one: their addresses never change. */
	struct vmig_iommu_rec **iommus;
	size_t nr_iommus;
	struct vmig_device_rec **devices;
	size_t nr_devices;
	struct vmig_source_rec *sources; /* one per plugin, once tracking starts */
	size_t nr_sources;

	bool tracking;
	/*
	 * Since tracking started, a sync found no vCPU dirty source to read
	 * on a kernel with vCPUs: all of guest memory was sent (the report
	 * says so).
	 */
	bool vcpus_untracked;
	uint32_t hotplug;    /* enum vmig_hotplug_policy */
	bool all_or_nothing; /* one source per address space, or none */
	/*
	 * What the layer that set the session up (the tool: a
	 * configuration, a simulated kernel) keeps with it, freed by
	 * attached_free when the session is, after every fd is closed.
	 */
	void *attached;
	void (*attached_free)(void *attached);

	/* Scratch bitmap for reads, grown to the largest mapping. */
	uint64_t *scratch;
	uint64_t scratch_words;

	/*
	 * What was marked dirty since the last vmig_dirty_account, per
	 * marker (each source, then vmig itself) and region: acct[k *
	 * nr_regions + r]. NULL when tracking has not started, or when it
	 * could not be allocated (then nothing is counted).
	 */
	uint64_t **acct;
	size_t nr_acct;  /* sources + 1 */
	int acct_who;    /* a source's index, or VMIG_ACCT_VMIG */
	/* vmig's own marks (VMIG_ACCT_VMIG), as a source's figures. */
	uint64_t vmig_reported;
	uint64_t vmig_unwritten;

	struct vmig_run_stats stats;
	/* vmig_set_observer (observer.c); observer.size 0: none. */
	struct vmig_observer observer;
	void *observer_opaque;
	/* The figures of the last observed sync (observer.c). */
	struct vmig_iter_stats synced;
	/*
	 * Observed tracking outside a migration is recorded in stats as a
	 * tracking run (observer.c): since when, and since when the sync
	 * under way.
	 */
	bool track_recording;
	uint64_t track_start_us;
	uint64_t sync_start_us;
	/* The migration engine (engine.h), created on first use. */
	struct vmig_engine *engine;
	char errmsg[1024];
};

/* session.c */


/* The region holding [gpa, gpa + len), or -1. */
int vmig_region_find(const vmig_session *s, uint64_t gpa, uint64_t len);

/* The region holding [hva, hva + len) of host memory, or -1. */
int vmig_region_find_hva(const vmig_session *s, const void *hva,
			 uint64_t len);

/* Index of the first mapping of io whose end is above iova. */
size_t vmig_mapping_lower(const struct vmig_iommu_rec *io, uint64_t iova);

/*
 * Fills dev->desc (and its ranges: the writable mappings of its space) for
 * handing to a plugin. Returns 0 or -ENOMEM.
 */
int vmig_device_desc_fill(vmig_session *s, struct vmig_device_rec *dev);

/* Makes sure the scratch bitmap holds nbits. Returns 0 or -ENOMEM. */
int vmig_scratch_reserve(vmig_session *s, uint64_t nbits);

/* host_linux.c: the real system calls, as a host table (kernel part). */
extern const struct vmig_host vmig_linux_host;

/* arbiter.c */

/* Creates a source record for every plugin (instances created lazily). */
int vmig_arbiter_init(vmig_session *s);

/*
 * Chooses and attaches a source for dev (every source probes it, the
 * preference order picks, the fallback covers the rest), starting the
 * source if tracking runs and it was idle. Never fails for lack of a
 * source: the fallback always takes the device. Returns 0 or -ENOMEM.
 */
int vmig_arbiter_assign(vmig_session *s, struct vmig_device_rec *dev);

/* Detaches dev from its source (its last bits were harvested). */
void vmig_arbiter_release(vmig_session *s, struct vmig_device_rec *dev);
/*
 * Tells every source that dev has left the session (after its release):
 * a source that based a precision on it may become finer again.
 */
void vmig_arbiter_device_gone(vmig_session *s,
			      const struct vmig_device_rec *dev);

/* Starts every source that has devices; a source that fails to start
 * hands its devices to the next candidates. */
int vmig_arbiter_start(vmig_session *s);

/* Stops every started source. */
void vmig_arbiter_stop(vmig_session *s);

/*
 * Starts every vCPU source (a plugin whose iommu_kinds has VMIG_IOMMU_GPA):
 * they track guest-physical space, not devices. Returns how many run.
 */
int vmig_arbiter_start_gpa(vmig_session *s);

/*
 * Marks a source failed (err, logged): its devices go to the fallback and
 * their ranges are dirty from now on.
 */
void vmig_source_fail(vmig_session *s, struct vmig_source_rec *src, int err,
		      const char *what);

/* Destroys every instance. */
void vmig_arbiter_fini(vmig_session *s);


/* dirty.c */

/*
 * ORs a bitmap of 4 KiB pages covering [iova, iova + length) of address
 * space io into the regions' dirty bitmaps, through its mappings.
 */
void vmig_dirty_or_iova(vmig_session *s, uint32_t io, uint64_t iova,
			uint64_t length, const uint64_t *bitmap);

/* Marks the mapped part of [iova, iova + length) of space io dirty. */
void vmig_dirty_mark_iova(vmig_session *s, uint32_t io, uint64_t iova,
			  uint64_t length);

/* Marks every writable mapping of space io dirty. */
void vmig_dirty_mark_space(vmig_session *s, uint32_t io);

/*
 * Harvests the last dirty bits of the mapping [iova, iova + length) of
 * space io before it is unmapped, then unmaps it in the kernel (unless a
 * source did) and tells the sources it is gone. One mapping per call: a
 * read across a hole is silently cut short by iommufd. Returns 0 or the
 * kernel's error.
 */
int vmig_dirty_harvest_unmap(vmig_session *s, uint32_t io, uint64_t iova,
			     uint64_t length);

/* Reads dev's source one last time over its space, before it goes. */
void vmig_dirty_harvest_device(vmig_session *s, struct vmig_device_rec *dev);

/* Marks all of guest memory dirty. */
void vmig_dirty_mark_all(vmig_session *s);

/*
 * Counts what was marked dirty since the last call, per marker, then
 * forgets it: adds to each source's pages_reported (and vmig's own), and
 * to its pages_unwritten the pages outside written (per region, what the
 * devices wrote in that time; NULL when unknown). Returns the distinct
 * pages marked, all markers together.
 */
uint64_t vmig_dirty_account(vmig_session *s, uint64_t *const *written);

/* Frees the accounting bitmaps. */
void vmig_dirty_account_free(vmig_session *s);

/* Total dirty pages in the regions' bitmaps. */
uint64_t vmig_dirty_count(const vmig_session *s);

/* observer.c: the session's observer (vmig_set_observer) */

/* Tracking started (vmig_tracking_start). */
void vmig_observe_tracking_started(vmig_session *s);

/* Before a sync: the observer's callback. */
void vmig_observe_sync_before(vmig_session *s);

/*
 * After a sync that found n dirty pages (n < 0: it failed): the
 * observer's callback, then what each source reported is counted,
 * judged by the observer's truth, into s->synced; outside a migration,
 * recorded as an iteration of a tracking run.
 */
void vmig_observe_sync_after(vmig_session *s, int64_t n);

/* A call of the VMM ran between two syncs. */
void vmig_observe_vmm_call(vmig_session *s);

/* True when the observer's figures are the ground truth. */
bool vmig_observer_judges(const vmig_session *s);

/*
 * After a successful sync: adds its figures to it (what the observed
 * sync counted; without an observer, what the sources reported).
 */
void vmig_sync_figures(vmig_session *s, struct vmig_iter_stats *it);

/* session.c: kernel-side mapping of a range (MAP_DMA / IOAS_MAP). */
int vmig_kernel_map(vmig_session *s, const struct vmig_iommu_rec *io,
		    const struct vmig_mapping_rec *m);
int vmig_kernel_unmap(vmig_session *s, const struct vmig_iommu_rec *io,
		      uint64_t iova, uint64_t length);

/*
 * Logging and failing on a session: the one implementation of
 * vmig_logf() and vmig_fail(), inline so that the tool, which links the
 * shared libvmig and may call only its exported functions, uses the same
 * code.
 */
/* Logs a formatted message at level through the session's callback. */
__attribute__((format(printf, 3, 4)))
static inline void vmig_logf(vmig_session *s, int level, const char *fmt,
			     ...)
{
	char msg[1024];
	va_list ap;

	if (!s->log || level > (int)s->log_level)
		return;
	va_start(ap, fmt);
	vsnprintf(msg, sizeof(msg), fmt, ap);
	va_end(ap);
	s->log(s->log_opaque, (enum vmig_log_level)level, msg);
}

/*
 * Records err with a formatted message as the session's last error and
 * logs it. Returns err, so that `return vmig_fail(s, -EINVAL, ...)` reads
 * naturally.
 */
__attribute__((format(printf, 3, 4)))
static inline int vmig_fail(vmig_session *s, int err, const char *fmt, ...)
{
	char msg[sizeof(s->errmsg)];
	va_list ap;

	/* The arguments may include the previous message: format aside. */
	va_start(ap, fmt);
	vsnprintf(msg, sizeof(msg), fmt, ap);
	va_end(ap);
	memcpy(s->errmsg, msg, sizeof(msg));
	vmig_logf(s, VMIG_LOG_DEBUG, "error: %s (%s)", s->errmsg,
		  vmig_strerror(err));
	return err;
}

#endif /* VMIG_CORE_INTERNAL_H */
