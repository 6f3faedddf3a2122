/*
 * rig.h: a live migration in one process over the kernel simulator, for
 * the chaos test, the hard cases and the precision benchmark.
 *
 * A rig builds a source and a destination session from one JSON
 * configuration with a simulated kernel (docs/config.md; the destination
 * gets its own simulated copy of every device and memory of the same
 * layout), and plays the VMM around vmig_migrate_local():
 *
 *  - the source's guest is a thread that, while the guest runs, steps the
 *    simulated devices' DMA engines and makes the writes of the devices
 *    the rig drives itself ("writers": devices the test must be able to
 *    quiesce, PASIDs, hot-plugged devices);
 *  - the VMM callbacks stop that thread (no write after stop returns),
 *    resume it, and count;
 *  - the VMM's operations during a migration, from any thread or from the
 *    progress callback: hot-plug, unplug, map and unmap, with a device
 *    write made just before an unplug or an unmap (where a write can be
 *    lost) and just after a map;
 *  - the checks after it: the destination's memory page by page against
 *    the source's (the guest is stopped), the migrated devices' states,
 *    and the simulator's ground truth (pages written and not reported by
 *    the sync that should have: pages_missed).
 *
 * The rig keeps a mirror of every address space's mappings so that its
 * writers and its last writes aim at mapped pages. Everything random is
 * drawn from seeds; every wait is bounded by the guest's short steps.
 */
#ifndef VMIG_CHAOS_RIG_H
#define VMIG_CHAOS_RIG_H

#include <pthread.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <cjson/cJSON.h>
#include <vmig/vmig.h>

#include "ksim/ksim.h"
#include "sim/guest.h"

#define RIG_PAGE 4096u
#define RIG_MAX_SPACES 16
#define RIG_MAX_MAPS 256
#define RIG_MAX_WRITERS 32
#define RIG_MAX_DEVICES 64

/* One mapping of the mirror. */
struct rig_map {
	uint64_t iova;
	uint64_t length;
	uint64_t gpa;
	bool writable;
};

/* The rig's mirror of one address space. */
struct rig_space {
	char label[32];
	uint32_t id; /* vmig's id */
	uint32_t kind; /* VMIG_IOMMU_TYPE1 or VMIG_IOMMU_IOMMUFD */
	int fd;      /* the container, or the iommufd */
	uint32_t ioas_id;
	struct rig_map maps[RIG_MAX_MAPS];
	size_t nr_maps;
};

/*
 * A device the rig registered (the configuration's, and hot-plugged
 * ones): the rig's own record, so that other threads need not read the
 * session's while a migration changes it.
 */
struct rig_device {
	char name[64];
	char address[64]; /* the simulated device's name */
	int space;        /* index into rig.spaces */
	uint32_t id;      /* vmig's id */
	bool present;
};

/* DMA the rig makes itself for one device (through one PASID or none). */
struct rig_writer {
	char device[64];  /* the simulated device's name (its address) */
	struct ksim_device *kd;
	uint32_t pasid;   /* 0: its main attachment */
	int space;        /* index into rig.spaces of where it writes */
	uint32_t writes;  /* per guest step */
	uint32_t write_size;
	uint64_t rng;
	bool active;
	uint64_t made;    /* writes that landed */
};

/* What rig_check() found. */
struct rig_result {
	int ret;                  /* vmig_migrate_local's */
	/* In: ret 0 stands for an unresolved ending settled in favour of
	 * the destination (its report says "resolved"). */
	bool resolved;
	bool completed;           /* ret == 0 and the report says so */
	uint64_t pages_differing; /* destination pages unlike the source's */
	uint64_t devices_differing; /* migrated device states unlike */
	uint64_t pages_written;   /* ground truth, every sync */
	uint64_t pages_missed;    /* written and not reported in time */
	uint64_t pages_sent;      /* PAGES and ZERO pages of the stream */
	uint64_t bytes_sent;      /* the stream's bytes */
	unsigned int stops, resumes, starts;
	char what[512];           /* what differed, for a message */
};

/*
 * The guest's vCPUs, when the rig has them (rig_vcpu_add): each step of
 * the guest writes some pages of guest memory directly and logs them, as
 * KVM's dirty log would, and a vCPU dirty source (VMIG_IOMMU_GPA)
 * registered in the source session reads and clears that log. Its start
 * discards the log, as KVM's does. Under its own lock.
 */
#define RIG_VCPU_REGIONS 8
struct rig_vcpu {
	bool on;
	pthread_mutex_t lock;
	uint32_t writes;   /* pages written per step */
	uint64_t rng;
	int fail_reads;    /* reads left to fail (EIO) */
	uint64_t made;     /* pages written */
	unsigned int starts, failed_reads;
	size_t nr;
	uint64_t gpa[RIG_VCPU_REGIONS], npages[RIG_VCPU_REGIONS];
	uint8_t *hva[RIG_VCPU_REGIONS];
	uint64_t *log[RIG_VCPU_REGIONS];
};

struct rig {
	vmig_session *src, *dst;
	struct ksim *k;  /* the source's simulated kernel (src owns it) */
	struct ksim *dk; /* the destination's */

	/* Address spaces as the configuration made them (by label). */
	struct rig_space spaces[RIG_MAX_SPACES];
	size_t nr_spaces;
	struct rig_writer writers[RIG_MAX_WRITERS];
	size_t nr_writers;
	struct rig_device devices[RIG_MAX_DEVICES]; /* under lock */
	size_t nr_devices;

	/*
	 * The guest (tests/sim/guest.c): its thread steps the devices, its
	 * writers and its vCPU while it runs; in lockstep with the syncs
	 * while a migration runs (guest.p.steps_per_sync steps between two
	 * of them, so that what the devices write per iteration does not
	 * depend on the machine's speed). guest.lock is the rig's lock:
	 * the devices above and the guest's state are under it; guest.busy
	 * counts the writes of other threads under way, guest.paused the
	 * unmaps that quiesce DMA (rig_unmap).
	 */
	struct sim_guest guest;
	struct rig_vcpu vcpu;

	/* Called from the migration's progress callback (its loop). */
	void (*progress)(struct rig *r, const struct vmig_progress *p);
	void *opaque;
	unsigned int progress_calls;

	/* The last log lines of both sessions, for a failure's message. */
	char log[32768];
	size_t log_len;
	bool log_echo; /* also to stderr */
	pthread_mutex_t log_lock;
};

/*
 * Builds a rig from a configuration body: a JSON object without "role"
 * and "transport" (the rig adds them: "local" for the source,
 * "destination" for the other), with a "kernel" of type "simulated".
 * The guest thread starts (its devices write from now on). On failure
 * writes why into err and returns a negative errno or VMIG_E* code.
 */
int rig_new(const char *json, struct rig **out, char *err, size_t errlen);

/* Stops the guest, frees both sessions and the rig. Accepts NULL. */
void rig_free(struct rig *r);

/*
 * Sets the source's policies (the other fields from *p); verify 0 means
 * strict here.
 */
int rig_policies(struct rig *r, const struct vmig_policies *p);

/* The mirror index of a space by its configuration label, or -1. */
int rig_space(struct rig *r, const char *label);

/* vmig's id of the device named name (the last of that name), or -1. */
int rig_device_id(struct rig *r, const char *name);

/*
 * Adds a writer: device (its simulated name) writes writes_per_step
 * times write_size bytes at random mapped, writable pages of space
 * (through pasid, or its main attachment when 0) on every guest step
 * while active. Returns its index or -ENOSPC, -ENOENT.
 */
int rig_writer_add(struct rig *r, const char *device, uint32_t pasid,
		   const char *space, uint32_t writes_per_step,
		   uint32_t write_size, uint64_t seed, bool active);

/* (De)activates writers of device; returns once no step uses them. */
void rig_writers_set(struct rig *r, const char *device, bool active);

/*
 * One write of len bytes by device (through pasid, 0: its main
 * attachment) at a random mapped, writable page of space while the
 * guest runs (the write is the guest's: never after the VMM's stop), or
 * at *iova when iova and *iova != UINT64_MAX. Stores the IOVA written in
 * *iova. Returns 0, -EAGAIN (the guest is stopped), -ENOENT (nothing
 * mapped), or the simulator's error.
 */
int rig_write(struct rig *r, const char *device, uint32_t pasid,
	      const char *space, uint64_t *iova, size_t len, uint64_t seed);

/* True while the guest runs (before the VMM's stop, or after resume). */
bool rig_guest_running(struct rig *r);

/*
 * Gives the guest vCPUs that write `writes` pages of guest memory a step
 * (of region only_region alone, in the configuration's order, or of all
 * when it is -1),
 * tracked by a vCPU dirty source registered in the source session (call
 * before rig_migrate; one rig with vCPUs at a time per process). Returns
 * 0 or what vmig_plugin_register returned.
 */
int rig_vcpu_add(struct rig *r, uint32_t writes, uint64_t seed,
		 int only_region);

/* Makes the vCPU source's next `times` reads fail with EIO. */
void rig_vcpu_fail(struct rig *r, int times);

/*
 * Waits until the guest made n more steps (its devices wrote), at most
 * timeout_ms: so that a test's migration sees writes however slowly the
 * guest thread gets scheduled (valgrind). Returns whether it did.
 */
bool rig_wait_steps(struct rig *r, unsigned int n, unsigned int timeout_ms);

/*
 * Maps [iova, iova + len) of space onto gpa through vmig_dma_map and, on
 * success, into the mirror. Returns what vmig_dma_map returned.
 */
int rig_map(struct rig *r, const char *space, uint64_t iova, uint64_t gpa,
	    uint64_t len, bool writable);

/*
 * Unmaps [iova, iova + len) of space: out of the mirror first (no writer
 * aims there any more), the guest quiesced, then a last write by
 * last_writer (a device that writes that space; NULL for none) of a page
 * inside the range (*last_iova, or, when it is UINT64_MAX, a random page
 * of every writable mapping the range covers), then vmig_dma_unmap.
 * *last_iova is then the IOVA written last, or
 * UINT64_MAX when no last write happened (the guest is stopped, or
 * nothing writable). Returns what vmig_dma_unmap returned (on failure
 * the mirror gets the range back).
 */
int rig_unmap(struct rig *r, const char *space, uint64_t iova, uint64_t len,
	      const char *last_writer, uint64_t *last_iova, uint64_t seed);

/* Parameters of a device to hot-plug (rig_hotplug). */
struct rig_hotplug {
	const char *name;    /* vmig's name and the simulated device's */
	bool mdev;
	const char *space;   /* an existing space's label */
	int group;           /* type1: a new group number */
	uint32_t cdev_index; /* iommufd: a new /dev/vfio/devices/vfio<N> */
	bool dirty_tracking; /* iommufd: its IOMMU has dirty bits */
	uint64_t iommu_pgsizes; /* iommufd: its domains' page sizes; 0: all */
	struct ksim_feature_params feature;
	/* Writes before vmig_device_add (while the guest runs). */
	unsigned int early_writes;
	uint32_t writes_per_step; /* its writer, active once added */
	uint32_t write_size;
	uint64_t seed;
};

/*
 * Hot-plugs a device: adds it to the simulator, opens and attaches it as
 * a VMM does (group into the container, or cdev bound and attached to
 * the IOAS), makes its early writes, then vmig_device_add. On success
 * its writer runs; on vmig's refusal everything is undone (the device
 * leaves the kernel). Returns vmig_device_add's result; *out_id the
 * device's id; -ENODEV style errors of the kernel side are returned
 * with *kernel_failed set (an injected fault hit the VMM's own calls).
 */
int rig_hotplug(struct rig *r, const struct rig_hotplug *hp,
		uint32_t *out_id, bool *kernel_failed);

/*
 * Unplugs a device the way a VMM does: its writers stop (the guest
 * quiesced it), a last write (when last_write, while the guest runs),
 * vmig_device_remove (which harvests its last bits), then the device
 * leaves the simulated kernel. *wrote tells whether the last write
 * happened. Returns vmig_device_remove's result (on failure the device
 * stays, its writers run again).
 */
int rig_unplug(struct rig *r, const char *name, bool last_write, bool *wrote,
	       uint64_t seed);

/*
 * Migrates src into dst with vmig_migrate_local, the simulator's ground
 * truth on. Returns its result.
 */
int rig_migrate(struct rig *r);

/* Where a migration's connection is cut (see tests/common/relay.h). */
struct rig_cut {
	int dir;             /* RELAY_S2D or RELAY_D2S */
	uint64_t limit;      /* bytes of dir that pass */
	uint32_t after_type; /* counted from this frame type's start; 0: all */
};

struct rig_cut_result {
	int ret;          /* the source's vmig_migrate */
	int dret;         /* the destination's vmig_receive */
	bool cut;         /* the relay did cut (more was to come) */
	bool unresolved;  /* ret was VMIG_EUNRESOLVED: settled as dret said */
	int resolve_ret;  /* vmig_resolve's */
};

/*
 * rig_migrate over a unix socket through a relay that cuts the
 * connection as cut says (NULL: rig_migrate), the destination receiving
 * in a thread of its own; an unresolved ending is settled with
 * vmig_resolve() as the destination's result says, as a VMM would after
 * asking it. Returns vmig_migrate's result; *out says the rest.
 */
int rig_migrate_cut(struct rig *r, const struct rig_cut *cut,
		    struct rig_cut_result *out);

/*
 * Checks the migration just made into *res: the report's result, the
 * memories page by page, the migrated devices' states, the ground truth.
 * Returns true when all is as it must be: completed with equal memories
 * and states, or failed with the guest resumed on the source; and no
 * page missed either way.
 */
bool rig_check(struct rig *r, struct rig_result *res);

/* The source's report, parsed (cJSON_Delete it). */
cJSON *rig_report(vmig_session *s);

/* The report's entry of the device named name, or NULL. */
cJSON *rig_report_device(cJSON *report, const char *name);

/* A string member of a report object, or "" when absent. */
const char *rig_str(const cJSON *o, const char *key);

/* A number member of a report object, or -1 when absent. */
double rig_num(const cJSON *o, const char *key);

/*
 * Reads argv[*i] when it is "--seeds N" (into *n) or "--first S" (into
 * *first), moving *i to its value; false for any other argument.
 */
bool rig_seed_arg(int argc, char **argv, int *i, uint64_t *first,
		  uint64_t *n);

/* Appends a line to the rig's log (and to stderr when echoing). */
void rig_logf(struct rig *r, const char *fmt, ...)
	__attribute__((format(printf, 2, 3)));

/* A small, seedable pseudo-random generator (xorshift64*). */
static inline uint64_t rig_rand(uint64_t *state)
{
	uint64_t x = *state ? *state : 0x9e3779b97f4a7c15ull;

	x ^= x >> 12;
	x ^= x << 25;
	x ^= x >> 27;
	*state = x;
	return x * 0x2545f4914f6cdd1dull;
}

/* A number in [0, n). */
static inline uint64_t rig_below(uint64_t *state, uint64_t n)
{
	return n ? rig_rand(state) % n : 0;
}

/* A growable string, for building configurations. */
struct rig_buf {
	char *p;
	size_t len;
	size_t cap;
	bool nomem;
};

void rig_buf_printf(struct rig_buf *b, const char *fmt, ...)
	__attribute__((format(printf, 2, 3)));
void rig_buf_free(struct rig_buf *b);

#endif /* VMIG_CHAOS_RIG_H */
