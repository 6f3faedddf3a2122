/*
 * devstate.c: the VFIO migration v2 driver: a device's migration state
 * (VFIO_DEVICE_FEATURE_MIG_DEVICE_STATE), its data fds, the sizes that
 * feed convergence, and the ordering of several devices' transitions
 * through the P2P states, on the source and on the destination, with the
 * way back to RUNNING (or a reset) on failure.
 *
 * Every kernel call goes through the host table given at open.
 */
#include <errno.h>
#include <poll.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "devstate.h"
#include <vmig/linux-uapi.h>

struct vmig_devstate {
	const struct vmig_host *host;
	int fd;      /* the device fd: the caller's */
	int data_fd; /* the session's, ours: -1 when none */
	uint64_t flags;
	uint32_t state;
	bool eof; /* the STOP_COPY image was read to its end */
	char name[64];
	char err[192];
};

static bool saving(uint32_t s)
{
	return s == VK_VFIO_STATE_PRE_COPY ||
	       s == VK_VFIO_STATE_PRE_COPY_P2P ||
	       s == VK_VFIO_STATE_STOP_COPY;
}

static bool precopy(uint32_t s)
{
	return s == VK_VFIO_STATE_PRE_COPY || s == VK_VFIO_STATE_PRE_COPY_P2P;
}

static const char *state_name(uint32_t s)
{
	static const char *const names[] = {
		"ERROR",     "STOP",        "RUNNING",  "STOP_COPY",
		"RESUMING",  "RUNNING_P2P", "PRE_COPY", "PRE_COPY_P2P",
	};

	return s < VK_VFIO_STATE_NR ? names[s] : "unknown";
}

#if defined(__GNUC__)
__attribute__((format(printf, 2, 3)))
#endif
static void ds_fail(struct vmig_devstate *ds, const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(ds->err, sizeof(ds->err), fmt, ap);
	va_end(ap);
}

/* ------------------------------------------------------------------ */
/* The kernel                                                          */

static int feature(struct vmig_devstate *ds, uint32_t flags, void *payload,
		   size_t len)
{
	return vk_device_feature(ds->host, ds->fd, flags, payload, len);
}

static int get_state(struct vmig_devstate *ds, uint32_t *state)
{
	struct vfio_device_feature_mig_state m = { .data_fd = -1 };
	int ret;

	ret = feature(ds, VFIO_DEVICE_FEATURE_GET |
				  VFIO_DEVICE_FEATURE_MIG_DEVICE_STATE,
		      &m, sizeof(m));
	if (ret < 0)
		return ret;
	*state = m.device_state;
	return 0;
}

static void data_close(struct vmig_devstate *ds)
{
	if (ds->data_fd < 0)
		return;
	/* Linux frees the descriptor even when close() reports an error. */
	ds->host->close(ds->host->kctx, ds->data_fd);
	ds->data_fd = -1;
	ds->eof = false;
}

/* A data fd is kept only while the device is in its session's states. */
static void data_settle(struct vmig_devstate *ds)
{
	if (!saving(ds->state) && ds->state != VK_VFIO_STATE_RESUMING)
		data_close(ds);
}

static int device_reset(struct vmig_devstate *ds)
{
	int ret = ds->host->ioctl(ds->host->kctx, ds->fd, VFIO_DEVICE_RESET,
				  NULL);
	uint32_t s;

	if (ret < 0) {
		ds_fail(ds, "%s: VFIO_DEVICE_RESET: %s", ds->name,
			strerror(-ret));
		return ret;
	}
	/* A reset returns the device to RUNNING; read it back if we can. */
	ds->state = get_state(ds, &s) < 0 ? VK_VFIO_STATE_RUNNING : s;
	data_settle(ds);
	return ds->state == VK_VFIO_STATE_RUNNING ? 0 : -EIO;
}

/* ------------------------------------------------------------------ */
/* One device                                                          */

int vmig_devstate_open(const struct vmig_host *host, int device_fd,
		       const char *name, struct vmig_devstate **out)
{
	struct vmig_devstate *ds;
	struct vfio_device_feature_migration mig = { 0 };
	int ret;

	if (!VMIG_HAS_FIELD(host, struct vmig_host, close) || !host->ioctl ||
	    !host->read || !host->write || !host->poll || !name ||
	    device_fd < 0 || !out)
		return -EINVAL;
	ds = calloc(1, sizeof(*ds));
	if (!ds)
		return -ENOMEM;
	ds->host = host;
	ds->fd = device_fd;
	ds->data_fd = -1;
	snprintf(ds->name, sizeof(ds->name), "%s", name);
	ret = feature(ds, VFIO_DEVICE_FEATURE_GET |
				  VFIO_DEVICE_FEATURE_MIGRATION,
		      &mig, sizeof(mig));
	if (ret < 0)
		goto err;
	ds->flags = mig.flags;
	if (!(ds->flags & VK_VFIO_MIGRATION_STOP_COPY)) {
		ret = -EOPNOTSUPP;
		goto err;
	}
	ret = get_state(ds, &ds->state);
	if (ret < 0)
		goto err;
	*out = ds;
	return 0;
err:
	free(ds);
	return ret;
}

void vmig_devstate_close(struct vmig_devstate *ds)
{
	if (!ds)
		return;
	data_close(ds);
	free(ds);
}

uint64_t vmig_devstate_flags(const struct vmig_devstate *ds)
{
	return ds->flags;
}

uint32_t vmig_devstate_state(const struct vmig_devstate *ds)
{
	return ds->state;
}

int vmig_devstate_data_fd(const struct vmig_devstate *ds)
{
	return ds->data_fd;
}

const char *vmig_devstate_name(const struct vmig_devstate *ds)
{
	return ds->name;
}

const char *vmig_devstate_error(const struct vmig_devstate *ds)
{
	return ds->err;
}

int vmig_devstate_set(struct vmig_devstate *ds, uint32_t state)
{
	struct vfio_device_feature_mig_state m = {
		.device_state = state,
		.data_fd = -1,
	};
	uint32_t from = ds->state, now;
	int ret;

	ret = feature(ds, VFIO_DEVICE_FEATURE_SET |
				  VFIO_DEVICE_FEATURE_MIG_DEVICE_STATE,
		      &m, sizeof(m));
	if (ret < 0) {
		/* The device may have stopped half-way, or in ERROR. */
		ds->state = get_state(ds, &now) < 0 ? VMIG_DEVSTATE_UNKNOWN :
						      now;
		ds_fail(ds, "%s: %s -> %s: %s (now %s)", ds->name,
			state_name(from), state_name(state), strerror(-ret),
			state_name(ds->state));
		if (ds->state != VMIG_DEVSTATE_UNKNOWN)
			data_settle(ds);
		return ret;
	}
	ds->state = state;
	if (m.data_fd >= 0) {
		/* A new session: the old one (if any) is over. */
		data_close(ds);
		ds->data_fd = m.data_fd;
	} else {
		data_settle(ds);
	}
	return 0;
}

/* ------------------------------------------------------------------ */
/* Groups                                                              */

/* Whether the P2P states order the group's transitions. */
static bool use_p2p(struct vmig_devstate *const *devs, size_t n)
{
	size_t i;

	if (n < 2)
		return false;
	for (i = 0; i < n; i++) {
		if (!(devs[i]->flags & VK_VFIO_MIGRATION_P2P))
			return false;
	}
	return true;
}

static bool responsive(uint32_t s)
{
	return s == VK_VFIO_STATE_RUNNING || s == VK_VFIO_STATE_RUNNING_P2P ||
	       s == VK_VFIO_STATE_PRE_COPY || s == VK_VFIO_STATE_PRE_COPY_P2P;
}

int vmig_devstate_abort(struct vmig_devstate *const *devs, size_t n)
{
	bool p2p = use_p2p(devs, n);
	int first = 0, ret;
	size_t i;

	/*
	 * With P2P, first every stopped device answers P2P again
	 * (RUNNING_P2P); those that cannot (RESUMING, whose image is
	 * incomplete, ERROR, or a refused arc) are reset, which makes them
	 * RUNNING, only then: no device runs while a peer is still stopped,
	 * as far as the devices let it.
	 */
	for (i = 0; p2p && i < n; i++) {
		struct vmig_devstate *ds = devs[i];

		if (responsive(ds->state) ||
		    ds->state == VK_VFIO_STATE_RESUMING ||
		    ds->state == VK_VFIO_STATE_ERROR)
			continue;
		vmig_devstate_set(ds, VK_VFIO_STATE_RUNNING_P2P);
	}
	for (i = 0; p2p && i < n; i++) {
		if (responsive(devs[i]->state))
			continue;
		ret = device_reset(devs[i]);
		if (ret < 0 && !first)
			first = ret;
	}
	for (i = 0; i < n; i++) {
		struct vmig_devstate *ds = devs[i];

		ret = -EIO;
		if (ds->state == VK_VFIO_STATE_RUNNING)
			ret = 0;
		else if (ds->state != VK_VFIO_STATE_RESUMING &&
			 ds->state != VK_VFIO_STATE_ERROR)
			ret = vmig_devstate_set(ds, VK_VFIO_STATE_RUNNING);
		if (ret < 0)
			ret = device_reset(ds);
		if (ret < 0 && !first)
			first = ret;
		data_close(ds);
	}
	return first;
}

/*
 * Moves every device to the state target(ds) gives (skipping those for
 * which it gives the current state); on a failure, the whole group goes
 * back and the first error is returned.
 */
static int group_step(struct vmig_devstate *const *devs, size_t n,
		      uint32_t (*target)(const struct vmig_devstate *ds))
{
	size_t i;
	int ret;

	for (i = 0; i < n; i++) {
		uint32_t t = target(devs[i]);

		if (t == devs[i]->state)
			continue;
		ret = vmig_devstate_set(devs[i], t);
		if (ret < 0) {
			vmig_devstate_abort(devs, n);
			return ret;
		}
	}
	return 0;
}

static uint32_t to_precopy(const struct vmig_devstate *ds)
{
	if (ds->state == VK_VFIO_STATE_RUNNING &&
	    (ds->flags & VK_VFIO_MIGRATION_PRE_COPY))
		return VK_VFIO_STATE_PRE_COPY;
	return ds->state;
}

static uint32_t to_p2p(const struct vmig_devstate *ds)
{
	if (ds->state == VK_VFIO_STATE_RUNNING)
		return VK_VFIO_STATE_RUNNING_P2P;
	if (ds->state == VK_VFIO_STATE_PRE_COPY)
		return VK_VFIO_STATE_PRE_COPY_P2P;
	return ds->state;
}

static uint32_t to_stop_copy(const struct vmig_devstate *ds)
{
	(void)ds;
	return VK_VFIO_STATE_STOP_COPY;
}

static uint32_t to_stop(const struct vmig_devstate *ds)
{
	(void)ds;
	return VK_VFIO_STATE_STOP;
}

static uint32_t to_resuming(const struct vmig_devstate *ds)
{
	(void)ds;
	return VK_VFIO_STATE_RESUMING;
}

static uint32_t to_running_p2p(const struct vmig_devstate *ds)
{
	(void)ds;
	return VK_VFIO_STATE_RUNNING_P2P;
}

static uint32_t to_running(const struct vmig_devstate *ds)
{
	(void)ds;
	return VK_VFIO_STATE_RUNNING;
}

int vmig_devstate_precopy_start(struct vmig_devstate *const *devs,
				size_t n)
{
	return group_step(devs, n, to_precopy);
}

int vmig_devstate_stop_copy(struct vmig_devstate *const *devs, size_t n)
{
	int ret;

	if (use_p2p(devs, n)) {
		ret = group_step(devs, n, to_p2p);
		if (ret < 0)
			return ret;
	}
	return group_step(devs, n, to_stop_copy);
}

int vmig_devstate_save_finish(struct vmig_devstate *const *devs, size_t n)
{
	size_t i;

	for (i = 0; i < n; i++) {
		if (devs[i]->state != VK_VFIO_STATE_STOP_COPY ||
		    !devs[i]->eof) {
			ds_fail(devs[i],
				"%s: its image was not read to the end",
				devs[i]->name);
			return -EINVAL;
		}
	}
	return group_step(devs, n, to_stop);
}

int vmig_devstate_resume_start(struct vmig_devstate *const *devs, size_t n)
{
	int ret;

	if (use_p2p(devs, n)) {
		ret = group_step(devs, n, to_p2p);
		if (ret < 0)
			return ret;
	}
	return group_step(devs, n, to_resuming);
}

int vmig_devstate_resume_finish(struct vmig_devstate *const *devs,
				size_t n)
{
	size_t i;
	int ret;

	for (i = 0; i < n; i++) {
		if (devs[i]->state != VK_VFIO_STATE_RESUMING) {
			ds_fail(devs[i], "%s: not resuming (%s)", devs[i]->name,
				state_name(devs[i]->state));
			vmig_devstate_abort(devs, n);
			return -EINVAL;
		}
	}
	/* Every image is checked before any device runs. */
	ret = group_step(devs, n, to_stop);
	if (ret < 0)
		return ret;
	if (use_p2p(devs, n)) {
		ret = group_step(devs, n, to_running_p2p);
		if (ret < 0)
			return ret;
	}
	return group_step(devs, n, to_running);
}

/* ------------------------------------------------------------------ */
/* Data                                                                */

static int precopy_info(struct vmig_devstate *ds, uint64_t *initial,
			uint64_t *dirty)
{
	struct vk_vfio_precopy_info info = { .argsz = sizeof(info) };
	int ret;

	ret = ds->host->ioctl(ds->host->kctx, ds->data_fd,
			      VK_VFIO_MIG_GET_PRECOPY_INFO, &info);
	if (ret < 0)
		return ret;
	*initial = info.initial_bytes;
	*dirty = info.dirty_bytes;
	return 0;
}

int64_t vmig_devstate_read(struct vmig_devstate *ds, void *buf, size_t len)
{
	int64_t n;

	if (ds->data_fd < 0 || !saving(ds->state))
		return -EINVAL;
	if (!len)
		return 0;
	if (precopy(ds->state)) {
		uint64_t initial, dirty;
		int ret = precopy_info(ds, &initial, &dirty);

		if (ret < 0) {
			ds_fail(ds, "%s: VFIO_MIG_GET_PRECOPY_INFO: %s",
				ds->name, strerror(-ret));
			return ret;
		}
		if (!initial && !dirty)
			return -EAGAIN;
	} else if (ds->eof) {
		return 0;
	}
	do {
		n = ds->host->read(ds->host->kctx, ds->data_fd, buf, len);
	} while (n == -EINTR);
	if (precopy(ds->state)) {
		/*
		 * The temporary end of the PRE_COPY stream: ENOMSG, or 0 from
		 * a driver that does not follow the rule (the mtty sample).
		 */
		if (n == -ENOMSG || n == 0)
			return -EAGAIN;
	} else if (n == 0) {
		ds->eof = true;
	}
	if (n < 0 && n != -EAGAIN)
		ds_fail(ds, "%s: reading its %s data: %s", ds->name,
			state_name(ds->state), strerror((int)-n));
	return n;
}

int vmig_devstate_write(struct vmig_devstate *ds, const void *buf,
			size_t len)
{
	const uint8_t *p = buf;

	if (ds->data_fd < 0 || ds->state != VK_VFIO_STATE_RESUMING)
		return -EINVAL;
	while (len) {
		int64_t n = ds->host->write(ds->host->kctx, ds->data_fd, p,
					    len);

		if (n == -EINTR)
			continue;
		if (n == -EAGAIN) {
			struct pollfd pfd = { .fd = ds->data_fd,
					      .events = POLLOUT };

			n = ds->host->poll(ds->host->kctx, &pfd, 1, -1);
			if (n >= 0)
				continue;
		}
		if (n <= 0) {
			if (!n)
				n = -EIO;
			ds_fail(ds, "%s: writing its data: %s", ds->name,
				strerror((int)-n));
			return (int)n;
		}
		p += n;
		len -= (size_t)n;
	}
	return 0;
}

int vmig_devstate_sizes(struct vmig_devstate *ds,
			struct vmig_devstate_sizes *out)
{
	struct vk_vfio_device_feature_mig_data_size sz = { 0 };
	int ret;

	memset(out, 0, sizeof(*out));
	if (precopy(ds->state) && ds->data_fd >= 0) {
		ret = precopy_info(ds, &out->precopy_initial,
				   &out->precopy_dirty);
		if (ret < 0)
			return ret;
	}
	ret = feature(ds, VFIO_DEVICE_FEATURE_GET |
				  VK_VFIO_DEVICE_FEATURE_MIG_DATA_SIZE,
		      &sz, sizeof(sz));
	/* Kernels before 6.2 lack MIG_DATA_SIZE: no estimate. */
	if (ret == -ENOTTY)
		return 0;
	if (ret < 0)
		return ret;
	out->stop_copy = sz.stop_copy_length;
	return 0;
}

int vmig_devstate_sizes_sum(struct vmig_devstate *const *devs, size_t n,
			    struct vmig_devstate_sizes *out)
{
	struct vmig_devstate_sizes one;
	size_t i;
	int ret;

	memset(out, 0, sizeof(*out));
	for (i = 0; i < n; i++) {
		ret = vmig_devstate_sizes(devs[i], &one);
		if (ret < 0)
			return ret;
		out->precopy_initial += one.precopy_initial;
		out->precopy_dirty += one.precopy_dirty;
		out->stop_copy += one.stop_copy;
	}
	return 0;
}
