/*
 * devstate.h: VFIO migration v2 device state, as the migration engine
 * moves it over the stream (internal to libvmig).
 *
 * One struct vmig_devstate per passthrough device, opened from its VFIO
 * device fd. Every kernel call goes through the host table given at open
 * (the real system calls or ksim). States are the kernel's enum
 * vfio_device_mig_state (VK_VFIO_STATE_* in <vmig/linux-uapi.h>).
 *
 * How the engine uses it (devs is the array of every migrating device;
 * the same array goes to each group call):
 *
 *  Source:
 *    vmig_devstate_precopy_start(devs, n)   RUNNING -> PRE_COPY where the
 *                                           device offers it
 *    while the guest runs, per device:
 *      vmig_devstate_read(ds, buf, len)     > 0: a chunk for the stream;
 *                                           -EAGAIN: nothing more now
 *      vmig_devstate_sizes(ds, &sz)         what is left (convergence)
 *    after the vCPUs stopped:
 *      vmig_devstate_stop_copy(devs, n)     all to STOP_COPY (through the
 *                                           P2P states when every device
 *                                           has them and n > 1)
 *      per device: vmig_devstate_read() until it returns 0
 *      vmig_devstate_save_finish(devs, n)   all to STOP, data fds closed
 *    on any failure or cancel: vmig_devstate_abort(devs, n) (the source
 *    runs again; must be called before resuming the vCPUs).
 *
 *  Destination:
 *    vmig_devstate_resume_start(devs, n)    all to RESUMING
 *    per device: vmig_devstate_write(ds, chunk, len) for each chunk of
 *      its stream, in order
 *    vmig_devstate_resume_finish(devs, n)   each image checked (RESUMING
 *                                           -> STOP), then all RUNNING
 *                                           (all RUNNING_P2P first)
 *    on failure: vmig_devstate_abort(devs, n).
 *
 * A device's stream is opaque bytes; the engine frames it (device id,
 * length) on the wire and must deliver each device's bytes in order, the
 * PRE_COPY part then the STOP_COPY part, to the same device on the
 * destination.
 *
 * A group call that fails has already brought every device of the group
 * back (vmig_devstate_abort) and returns the first error; the failed
 * device's vmig_devstate_error() says what happened. Nothing here blocks
 * forever in PRE_COPY; a read in STOP_COPY may block until the device has
 * data (the kernel's read). Not thread-safe: one caller at a time.
 */
#ifndef VMIG_CORE_DEVSTATE_H
#define VMIG_CORE_DEVSTATE_H

#include <stddef.h>
#include <stdint.h>

#include <vmig/plugin.h>

struct vmig_devstate;

/*
 * What is left to move of a device's state, to feed the convergence
 * estimate. precopy_* come from VFIO_MIG_GET_PRECOPY_INFO and are 0
 * outside PRE_COPY; stop_copy is the kernel's MIG_DATA_SIZE estimate of
 * the STOP_COPY image (0 when the kernel lacks the feature). Drivers
 * differ: ksim and mlx5 report data still unread, but mlx5 may report
 * dirty_bytes only once initial_bytes reached 0, and some drivers give
 * the whole state as stop_copy whatever PRE_COPY moved.
 */
struct vmig_devstate_sizes {
	uint64_t precopy_initial;
	uint64_t precopy_dirty;
	uint64_t stop_copy;
};

/*
 * Opens the migration state of a device: reads VFIO_DEVICE_FEATURE_
 * MIGRATION (its flags) and its current state. device_fd stays the
 * caller's; name is copied, for messages. Errors: -ENOTTY (the device
 * cannot migrate: its driver has no migration support), -EOPNOTSUPP (it
 * offers no STOP_COPY), -EINVAL (NULL host or name, negative fd),
 * -ENOMEM, or the kernel's error.
 */
int vmig_devstate_open(const struct vmig_host *host, int device_fd,
		       const char *name, struct vmig_devstate **out);

/*
 * Frees a device's state handle and closes its data fd, if any. The
 * device's migration state is left as it is (abort first to resume it).
 * Accepts NULL.
 */
void vmig_devstate_close(struct vmig_devstate *ds);

/* VFIO_MIGRATION_* flags the device offers (VK_VFIO_MIGRATION_*). */
uint64_t vmig_devstate_flags(const struct vmig_devstate *ds);

/*
 * The device's state as last set or read (VK_VFIO_STATE_*), or
 * VMIG_DEVSTATE_UNKNOWN after a failure the kernel would not explain.
 */
#define VMIG_DEVSTATE_UNKNOWN 0xffffffffu
uint32_t vmig_devstate_state(const struct vmig_devstate *ds);

/*
 * The current data fd (saving or resuming), for poll(), or -1. It stays
 * the handle's: never close it.
 */
int vmig_devstate_data_fd(const struct vmig_devstate *ds);

/* The name given at open. */
const char *vmig_devstate_name(const struct vmig_devstate *ds);

/* What the last failure of this device was, or "" (valid until next). */
const char *vmig_devstate_error(const struct vmig_devstate *ds);

/*
 * Moves one device to a state (the kernel walks the arcs), taking the
 * data fd a saving or resuming arc returns and closing it when the device
 * leaves the session's states. The group calls below are what the engine
 * uses; this is for single steps. Errors: the kernel's; the state is then
 * read back (the device may stop half-way, or in ERROR).
 */
int vmig_devstate_set(struct vmig_devstate *ds, uint32_t state);

/* ------------------------------------------------------------------ */
/* Source                                                              */

/*
 * Every device that offers PRE_COPY and is RUNNING goes to PRE_COPY (a
 * data fd to read while the guest runs); the others stay. Errors: the
 * first failure, after every device was brought back to RUNNING.
 */
int vmig_devstate_precopy_start(struct vmig_devstate *const *devs,
				size_t n);

/*
 * Every device to STOP_COPY. With more than one device, all offering P2P,
 * all first go to their P2P state (RUNNING_P2P or PRE_COPY_P2P), so that
 * no device still issues peer-to-peer DMA to one already stopped; then
 * all to STOP_COPY. Errors: as precopy_start.
 */
int vmig_devstate_stop_copy(struct vmig_devstate *const *devs, size_t n);

/*
 * Reads up to len bytes of the device's image into buf. Returns the count
 * (> 0); 0 at the end of the STOP_COPY image (and ever after); -EAGAIN in
 * PRE_COPY when the device has nothing more now (checked with
 * PRECOPY_INFO first, so it never blocks); -EINVAL when the device is not
 * saving; or the kernel's error (then abort).
 */
int64_t vmig_devstate_read(struct vmig_devstate *ds, void *buf, size_t len);

/*
 * Every device, its STOP_COPY image read to the end, goes to STOP; data
 * fds are closed. Errors: -EINVAL (a device not in STOP_COPY or whose
 * image was not read to the end; nothing was changed), or the kernel's
 * (after abort).
 */
int vmig_devstate_save_finish(struct vmig_devstate *const *devs, size_t n);

/* ------------------------------------------------------------------ */
/* Destination                                                         */

/*
 * Every device to RESUMING (a data fd to write). With P2P ordering as for
 * stop_copy. Errors: as precopy_start.
 */
int vmig_devstate_resume_start(struct vmig_devstate *const *devs, size_t n);

/*
 * Writes all of buf to the device's resuming data fd (short writes
 * continued, a full non-blocking fd polled). Errors: -EINVAL (not
 * RESUMING), or the kernel's (the image was refused: abort).
 */
int vmig_devstate_write(struct vmig_devstate *ds, const void *buf,
			size_t len);

/*
 * Every device's image is checked and loaded (RESUMING -> STOP) before
 * any device runs; then all to RUNNING (all to RUNNING_P2P first, with P2P
 * ordering). Errors: as precopy_start (a refused image: the devices are
 * reset and run their old state).
 */
int vmig_devstate_resume_finish(struct vmig_devstate *const *devs,
				size_t n);

/* ------------------------------------------------------------------ */
/* Either side                                                         */

/*
 * Brings every device back to RUNNING and closes every data fd: first all
 * to RUNNING_P2P (with P2P ordering), then all to RUNNING; a device that
 * cannot get there, or that is RESUMING or in ERROR, is reset
 * (VFIO_DEVICE_RESET returns it to RUNNING). Returns 0, or the first
 * error of a device that could not be brought back even by a reset.
 */
int vmig_devstate_abort(struct vmig_devstate *const *devs, size_t n);

/*
 * What is left to move of one device (see struct vmig_devstate_sizes).
 * Errors: the kernel's.
 */
int vmig_devstate_sizes(struct vmig_devstate *ds,
			struct vmig_devstate_sizes *out);

/* The sums over devices. Errors: the first device's error. */
int vmig_devstate_sizes_sum(struct vmig_devstate *const *devs, size_t n,
			    struct vmig_devstate_sizes *out);

#endif /* VMIG_CORE_DEVSTATE_H */
