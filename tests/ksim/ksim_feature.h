/*
 * ksim_feature.h: what the device-feature part of the simulator (VFIO
 * migration v2 and DMA logging on device fds, shared docs/kernel-uapi.md
 * section 3) adds to its interface: the per-device parameters and the
 * entry points tests use to look inside a device or make it misbehave.
 *
 * A simulated device with migration has a state: a blob of state_size
 * bytes, filled from a seed, that changes while the device runs (each DMA
 * write it makes, and each ksim_device_state_run() step, rewrites part of
 * it), so that a wrong restore shows in ksim_device_state_digest().
 */
#ifndef VMIG_KSIM_FEATURE_H
#define VMIG_KSIM_FEATURE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <vmig/plugin.h>

struct ksim;
struct ksim_device;

/*
 * Whose DMA logging (VFIO_DEVICE_FEATURE_DMA_LOGGING_*) a device models,
 * after the drivers of Linux 6.12.
 */
enum ksim_log_model {
	/* No log_ops (hisi_acc, qat, plain vfio-pci): ENOTTY. */
	KSIM_LOG_NONE = 0,
	/*
	 * mlx5-vfio-pci: merges ranges down to log_max_ranges, clamps the
	 * page size to [log_min_page_size, log_max_page_size] and writes its
	 * choice back; a second START is EINVAL; REPORT fails with EIO once
	 * the tracker broke (until STOP), ENOTCONN when detached; logging
	 * ends when the device is closed.
	 */
	KSIM_LOG_MLX5 = 1,
	/*
	 * pds-vfio-pci: merges down to log_max_ranges (at most 255 regions),
	 * uses the page size as given (a power of two >= 4096, else EINVAL);
	 * a REPORT must lie inside one merged region (EINVAL); logging ends
	 * on the STOP_COPY -> STOP arc, on ERROR and on close. A SET of the
	 * migration state fails with EIO once the device is in ERROR.
	 */
	KSIM_LOG_PDS = 2,
	/*
	 * The mtty sample: START, STOP and REPORT only validate their
	 * arguments (the vfio core's checks) and never report anything, so
	 * the device's writes are invisible to whoever relies on it.
	 */
	KSIM_LOG_STUB = 3,
};

/* The VFIO device features a simulated device offers. All zero: none. */
struct ksim_feature_params {
	/*
	 * Migration v2 (VFIO_DEVICE_FEATURE_MIGRATION, MIG_DEVICE_STATE,
	 * MIG_DATA_SIZE). Without it those features are ENOTTY.
	 */
	bool migration;
	/*
	 * VFIO_MIGRATION_P2P and/or VFIO_MIGRATION_PRE_COPY (the values of
	 * <linux/vfio.h>: 2 and 4); STOP_COPY is always offered.
	 */
	uint64_t mig_flags;
	/* Bytes of device state, rounded up to 4 KiB; 0 = 64 KiB. */
	uint32_t state_size;
	/* Seeds the state's initial contents; 0 = derived from the name. */
	uint64_t state_seed;

	/* DMA logging. */
	enum ksim_log_model log;
	/* Ranges the device tracks before it merges; 0 = no limit. */
	uint32_t log_max_ranges;
	/* mlx5: the page sizes its tracker supports; 0 = 4 KiB, 1 GiB. */
	uint64_t log_min_page_size;
	uint64_t log_max_page_size;
};

/* A wildcard state for ksim_device_fail_arc(). */
#define KSIM_MIG_ANY (-1)

/*
 * A digest (64-bit FNV-1a) of the device's current state, to compare a
 * source device with the destination device restored from its image.
 * Returns 0 for a device without migration.
 */
uint64_t ksim_device_state_digest(struct ksim_device *d);

/*
 * Makes the device do n units of internal work, each rewriting part of its
 * state, as it does on its own while running (RUNNING, RUNNING_P2P,
 * PRE_COPY, PRE_COPY_P2P); a stopped device does nothing. Returns the
 * number of changes made, or -ENOTTY (no migration), -ENODEV (removed).
 */
int ksim_device_state_run(struct ksim_device *d, unsigned int n);

/*
 * The device's migration state (enum vfio_device_mig_state), or -ENOTTY
 * when it has no migration support.
 */
int ksim_device_mig_state(struct ksim_device *d);

/*
 * Makes the next FSM arc from `from` to `to` (either may be KSIM_MIG_ANY)
 * that a SET of MIG_DEVICE_STATE takes fail with -err, as a driver's
 * firmware command can. The device stays in `from`, or drops to ERROR when
 * to_error (its data sessions end; a pds-like device stops logging). err 0
 * disarms.
 */
void ksim_device_fail_arc(struct ksim_device *d, int from, int to, int err,
			  bool to_error);

/*
 * Breaks the device's DMA-logging tracker: err = EIO makes every REPORT
 * fail with EIO until the next STOP (mlx5's tracker error), ENOTCONN makes
 * START and REPORT fail with ENOTCONN (mlx5's VF detached from its PF)
 * until cleared; 0 clears both. Other values: any REPORT fails with that
 * errno until the next STOP.
 */
void ksim_device_log_break(struct ksim_device *d, int err);

/*
 * What the device logs now: copies up to n of its (merged) ranges into
 * out, stores its granule in *page_size (when not NULL) and returns how
 * many ranges it tracks (0: not logging; a stub device reports 0).
 */
int ksim_device_log_ranges(struct ksim_device *d, struct vmig_range *out,
			   size_t n, uint64_t *page_size);

/*
 * Calls fn for every FSM arc any device takes, in order, with ksim's lock
 * held (fn must not call into ksim). NULL removes the hook.
 */
void ksim_feature_set_arc_hook(struct ksim *k,
			       void (*fn)(void *opaque,
					  const struct ksim_device *d,
					  int from, int to),
			       void *opaque);

#endif /* VMIG_KSIM_FEATURE_H */
