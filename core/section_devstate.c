/*
 * section_devstate.c: the VFIO devices' state as a migration section.
 *
 * This file owns the source's side of device state (VFIO migration v2,
 * over core/devstate.c): which devices carry state (those with VFIO
 * migration; the VMM's stop callback quiesces the others), PRE_COPY data
 * interleaved with the pages while the guest runs, STOP_COPY after the
 * stop, each image to its end with DEVICE_END, then STOP; the estimate
 * of what is left (an unknown size counts as too large to switch over,
 * and the report names the device); back to RUNNING on a failure; and
 * the handles an unresolved migration keeps.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "converge.h"
#include "devstate.h"
#include <vmig/linux-uapi.h>
#include "section.h"

#define DEV_CHUNK (256u << 10) /* device state per DEVICE_STATE frame */

struct devs {
	struct vmig_device_rec **devs; /* HELLO's order */
	struct vmig_devstate **dsv;
	uint64_t *offset;      /* bytes of each device's state queued */
	uint32_t n;
	uint32_t tail;         /* final: the device being read to its end */
	bool touched;          /* some device left RUNNING */
	bool saved;            /* all STOP after their images */
};

static struct devs *devs_of(const struct vmig_section *sec)
{
	return sec->priv;
}

/* Why a group call failed: the first device that says so. */
static const char *devs_error(const struct devs *d)
{
	uint32_t i;

	for (i = 0; i < d->n; i++) {
		const char *e = vmig_devstate_error(d->dsv[i]);

		if (e && *e)
			return e;
	}
	return "no device said why";
}

/* Device dev carries state when it has VFIO migration: 1, 0, or error. */
static int devs_open_one(struct vmig_section *sec, struct devs *d,
			 struct vmig_device_rec *dev)
{
	struct vmig_devstate *ds = NULL;
	uint64_t fl;
	int ret;

	ret = dev->device_fd < 0 ? -ENOTTY
				 : vmig_devstate_open(&sec->s->kernel,
						      dev->device_fd,
						      dev->name, &ds);
	if (ret == -ENOTTY || ret == -EOPNOTSUPP) {
		vmig_logf(sec->s, VMIG_LOG_INFO,
			  "device %s: no VFIO migration: the VMM's stop "
			  "callback quiesces it; it carries no state",
			  dev->name);
		return 0;
	}
	if (ret < 0) {
		snprintf(sec->err, sizeof(sec->err),
			 "device %s: its migration support: %s", dev->name,
			 vmig_strerror(ret));
		return ret;
	}
	fl = vmig_devstate_flags(ds);
	vmig_logf(sec->s, VMIG_LOG_INFO,
		  "device %s: VFIO migration (stop-copy%s%s): its state "
		  "travels",
		  dev->name, fl & VK_VFIO_MIGRATION_P2P ? ", p2p" : "",
		  fl & VK_VFIO_MIGRATION_PRE_COPY ? ", pre-copy" : "");
	dev->mig_state = true;
	d->devs[d->n] = dev;
	d->dsv[d->n] = ds;
	d->n++;
	return 1;
}

static int devs_setup(struct vmig_section *sec)
{
	vmig_session *s = sec->s;
	struct devs *d = calloc(1, sizeof(*d));
	size_t i;
	int ret;

	sec->priv = d;
	if (d) {
		d->devs = calloc(s->nr_devices + 1, sizeof(*d->devs));
		d->dsv = calloc(s->nr_devices + 1, sizeof(*d->dsv));
		d->offset = calloc(s->nr_devices + 1, sizeof(*d->offset));
	}
	if (!d || !d->devs || !d->dsv || !d->offset) {
		snprintf(sec->err, sizeof(sec->err), "out of memory");
		return -ENOMEM;
	}
	for (i = 0; i < s->nr_devices; i++) {
		struct vmig_device_rec *dev = s->devices[i];

		dev->mig_state = false;
		dev->state_bytes = 0;
		if (!dev->present)
			continue;
		ret = devs_open_one(sec, d, dev);
		if (ret < 0)
			return ret;
	}
	return 0;
}

static void devs_cleanup(struct vmig_section *sec)
{
	struct devs *d = devs_of(sec);
	uint32_t i;

	if (!d)
		return;
	for (i = 0; i < d->n; i++)
		vmig_devstate_close(d->dsv[i]);
	free(d->devs);
	free(d->dsv);
	free(d->offset);
	free(d);
	sec->priv = NULL;
}

/* The guest runs: devices that offer PRE_COPY start streaming. */
static int devs_live_start(struct vmig_section *sec)
{
	struct devs *d = devs_of(sec);
	int ret;

	if (!d->n)
		return 0;
	d->touched = true;
	ret = vmig_devstate_precopy_start(d->dsv, d->n);
	if (ret < 0)
		snprintf(sec->err, sizeof(sec->err), "devices to PRE_COPY: %s",
			 devs_error(d));
	return ret;
}

/*
 * Bytes of device state still to move after the stop (the estimate). A
 * device whose size cannot be read counts as VMIG_CONVERGE_UNKNOWN_STATE,
 * so that an unknown never lets the migration switch over early; the
 * report and the messages name it.
 */
static uint64_t devs_pending(struct vmig_section *sec)
{
	struct devs *d = devs_of(sec);
	char *list = sec->e->st.unknown_state;
	size_t cap = sizeof(sec->e->st.unknown_state), len = 0;
	struct vmig_devstate_sizes sz;
	uint64_t sum = 0;
	uint32_t i;
	int ret;

	list[0] = '\0';
	for (i = 0; i < d->n; i++) {
		ret = vmig_devstate_sizes(d->dsv[i], &sz);
		if (ret == 0) {
			sum += sz.precopy_initial + sz.stop_copy;
			continue;
		}
		sum += VMIG_CONVERGE_UNKNOWN_STATE;
		vmig_logf(sec->s, VMIG_LOG_WARN,
			  "source: device %s: its state size is unknown (%s): "
			  "counted as 100 GiB, too large to switch over",
			  d->devs[i]->name, vmig_strerror(ret));
		if (len < cap)
			len += (size_t)snprintf(list + len, cap - len, "%s%s",
						len ? "\n" : "",
						d->devs[i]->name);
	}
	return sum;
}

/*
 * Queues one chunk of device i's state (phase 1 or 2), when the sink has
 * room. Returns the bytes queued, 0 (nothing now: the image ended, or no
 * room), -EAGAIN, or an error.
 */
static int64_t devs_chunk(struct vmig_section *sec, uint32_t i,
			  uint32_t phase, struct vmig_section_sink *out)
{
	struct devs *d = devs_of(sec);
	uint8_t *hdr = out->next(out->opaque);
	void *buf;
	int64_t n;

	if (!hdr)
		return 0;
	buf = malloc(DEV_CHUNK);
	if (!buf) {
		snprintf(sec->err, sizeof(sec->err), "out of memory");
		return -ENOMEM;
	}
	n = vmig_devstate_read(d->dsv[i], buf, DEV_CHUNK);
	if (n <= 0) {
		const char *e = vmig_devstate_error(d->dsv[i]);

		free(buf);
		if (n < 0 && n != -EAGAIN)
			snprintf(sec->err, sizeof(sec->err),
				 "device %s: reading its state: %s",
				 d->devs[i]->name,
				 e[0] ? e : vmig_strerror((int)n));
		return n;
	}
	vmig_enc_device_state(hdr, i, d->offset[i], phase, buf, (size_t)n);
	if (out->add(out->opaque, buf, (size_t)n, true) < 0)
		return -EIO;
	d->offset[i] += (uint64_t)n;
	d->devs[i]->state_bytes += (uint64_t)n;
	out->it->device_bytes += (uint64_t)n;
	return n;
}

/* A failure that is the section's (not EAGAIN, not the sink's). */
static bool devs_failed(int64_t n)
{
	return n < 0 && n != -EAGAIN;
}

/* While the guest runs: what the devices have now, a chunk each. */
static int devs_save_live(struct vmig_section *sec,
			  struct vmig_section_sink *out)
{
	struct devs *d = devs_of(sec);
	uint32_t i;
	int64_t n;

	for (i = 0; i < d->n; i++) {
		uint32_t st = vmig_devstate_state(d->dsv[i]);

		if (st != VK_VFIO_STATE_PRE_COPY &&
		    st != VK_VFIO_STATE_PRE_COPY_P2P)
			continue;
		n = devs_chunk(sec, i, VMIG_DS_PRECOPY, out);
		if (devs_failed(n))
			return (int)n;
	}
	return 1;
}

/* Devices to their stop-copy state, after the VMM's stop. */
static int devs_stop(struct vmig_section *sec)
{
	struct devs *d = devs_of(sec);
	int ret;

	if (!d->n)
		return 0;
	d->touched = true;
	ret = vmig_devstate_stop_copy(d->dsv, d->n);
	if (ret < 0)
		snprintf(sec->err, sizeof(sec->err),
			 "stopping the devices: to STOP_COPY: %s",
			 devs_error(d));
	return ret;
}

/*
 * The guest is stopped: each device's image to its end, its DEVICE_END,
 * then all to STOP.
 */
static int devs_save_final(struct vmig_section *sec,
			   struct vmig_section_sink *out)
{
	struct devs *d = devs_of(sec);
	uint8_t *hdr;
	int64_t n;
	int ret;

	while (d->tail < d->n) {
		uint32_t i = d->tail;

		if (!out->next(out->opaque))
			return 0;
		n = devs_chunk(sec, i, VMIG_DS_STOPCOPY, out);
		if (n < 0)
			return devs_failed(n) ? (int)n : 0;
		if (n > 0)
			continue;
		hdr = out->next(out->opaque);
		if (!hdr)
			return 0;
		vmig_enc_device_end(hdr, i, d->offset[i]);
		if (out->add(out->opaque, NULL, 0, false) < 0)
			return -EIO;
		d->tail++;
	}
	if (d->n && !d->saved) {
		ret = vmig_devstate_save_finish(d->dsv, d->n);
		if (ret < 0) {
			snprintf(sec->err, sizeof(sec->err),
				 "devices to STOP: %s", devs_error(d));
			return ret;
		}
		d->saved = true;
	}
	return 1;
}

/* Devices back to RUNNING after a failure (before the vCPUs run). */
static void devs_recover(struct vmig_section *sec)
{
	struct devs *d = devs_of(sec);

	if (!d || !d->n || !d->touched)
		return;
	if (vmig_devstate_abort(d->dsv, d->n) < 0)
		vmig_logf(sec->s, VMIG_LOG_ERROR,
			  "source: a device could not be brought back: %s",
			  devs_error(d));
}

const struct vmig_section_ops vmig_section_devstate = {
	.name = "device state",
	.setup = devs_setup,
	.cleanup = devs_cleanup,
	.live_start = devs_live_start,
	.pending = devs_pending,
	.save_live = devs_save_live,
	.stop = devs_stop,
	.save_final = devs_save_final,
	.recover = devs_recover,
};

uint32_t vmig_section_devstate_count(const struct vmig_section *sec)
{
	const struct devs *d = devs_of(sec);

	return d ? d->n : 0;
}

const char *vmig_section_devstate_name(const struct vmig_section *sec,
				       uint32_t i)
{
	return devs_of(sec)->devs[i]->name;
}

bool vmig_section_devstate_hold(struct vmig_section *sec,
				struct vmig_engine *e)
{
	struct devs *d = devs_of(sec);
	uint32_t k;

	e->held_ids = calloc(d->n + 1, sizeof(*e->held_ids));
	if (!e->held_ids)
		return false;
	for (k = 0; k < d->n; k++)
		e->held_ids[k] = d->devs[k]->id;
	e->held_dsv = d->dsv;
	e->held_ndevs = d->n;
	d->dsv = NULL;
	d->n = 0;
	return true;
}

/* ------------------------------------------------------------------ */
/* The destination: RESUMING, then STOP, then RUNNING                  */

/* The devices HELLO named, their state handles in HELLO's order. */
static size_t rx_devs(const struct vmig_rx *rx, struct vmig_devstate **dsv)
{
	size_t i;

	for (i = 0; i < rx->nr_devices; i++)
		dsv[i] = rx->devices[i].ds;
	return rx->nr_devices;
}

static const char *dsv_error(struct vmig_devstate *const *dsv, size_t n)
{
	size_t i;

	for (i = 0; i < n; i++) {
		const char *e = dsv[i] ? vmig_devstate_error(dsv[i]) : "";

		if (e && *e)
			return e;
	}
	return "no device said why";
}

static int load_open(struct vmig_rx *rx, struct vmig_rx_device *rd,
		     char *err, size_t errlen)
{
	struct vmig_devstate *ds;
	int ret;

	if (rd->dev->device_fd < 0) {
		snprintf(err, errlen, "it has no device fd");
		return -ENOTTY;
	}
	ret = vmig_devstate_open(&rx->s->kernel, rd->dev->device_fd,
				 rd->dev->name, &ds);
	if (ret == -ENOTTY || ret == -EOPNOTSUPP) {
		snprintf(err, errlen, "no VFIO migration");
		return ret;
	}
	if (ret < 0) {
		snprintf(err, errlen, "%s", vmig_strerror(ret));
		return ret;
	}
	rd->ds = ds;
	rd->dev->mig_state = true;
	rd->dev->state_bytes = 0;
	return 0;
}

static int load_start(struct vmig_rx *rx, char *err, size_t errlen)
{
	struct vmig_devstate **dsv;
	size_t n;
	int ret;

	dsv = calloc(rx->nr_devices + 1, sizeof(*dsv));
	if (!dsv)
		return -ENOMEM;
	n = rx_devs(rx, dsv);
	rx->devs_touched = true;
	ret = vmig_devstate_resume_start(dsv, n);
	if (ret < 0)
		snprintf(err, errlen, "%s", dsv_error(dsv, n));
	free(dsv);
	return ret;
}

static int load_write(struct vmig_rx *rx, struct vmig_rx_device *rd,
		      const void *buf, size_t len, char *err, size_t errlen)
{
	int ret;

	(void)rx;
	ret = vmig_devstate_write(rd->ds, buf, len);
	if (ret < 0) {
		const char *e = vmig_devstate_error(rd->ds);

		snprintf(err, errlen, "%s", e[0] ? e : vmig_strerror(ret));
	} else {
		rd->dev->state_bytes += len;
	}
	return ret;
}

/* Every device to state st, in HELLO's order, the first failure says. */
static int load_set_all(struct vmig_devstate **dsv, size_t n, uint32_t st,
			char *err, size_t errlen)
{
	size_t i;
	int ret = 0;

	for (i = 0; i < n && ret == 0; i++) {
		ret = vmig_devstate_set(dsv[i], st);
		if (ret < 0)
			snprintf(err, errlen, "%s",
				 vmig_devstate_error(dsv[i]));
	}
	return ret;
}

/* COMPLETE: every image is checked and loaded (RESUMING -> STOP). */
static int load_load(struct vmig_rx *rx, char *err, size_t errlen)
{
	struct vmig_devstate **dsv;
	size_t n;
	int ret;

	if (!rx->nr_devices)
		return 0;
	dsv = calloc(rx->nr_devices, sizeof(*dsv));
	if (!dsv)
		return -ENOMEM;
	n = rx_devs(rx, dsv);
	ret = load_set_all(dsv, n, VK_VFIO_STATE_STOP, err, errlen);
	free(dsv);
	return ret;
}

/*
 * COMMIT: every device runs (all answering peer-to-peer first, when there
 * are several and all offer it, so that none runs while a peer is still
 * stopped).
 */
static int load_run(struct vmig_rx *rx, char *err, size_t errlen)
{
	struct vmig_devstate **dsv;
	bool p2p;
	size_t i, n;
	int ret = 0;

	if (!rx->nr_devices)
		return 0;
	dsv = calloc(rx->nr_devices, sizeof(*dsv));
	if (!dsv)
		return -ENOMEM;
	n = rx_devs(rx, dsv);
	p2p = n > 1;
	for (i = 0; i < n; i++) {
		if (!(vmig_devstate_flags(dsv[i]) & VK_VFIO_MIGRATION_P2P))
			p2p = false;
	}
	if (p2p)
		ret = load_set_all(dsv, n, VK_VFIO_STATE_RUNNING_P2P, err,
				   errlen);
	if (ret == 0)
		ret = load_set_all(dsv, n, VK_VFIO_STATE_RUNNING, err, errlen);
	free(dsv);
	return ret;
}

/* A failure: the devices leave RESUMING (reset), the guest never runs. */
static void load_abort(struct vmig_rx *rx)
{
	struct vmig_devstate **dsv;
	size_t n;

	if (!rx->nr_devices || !rx->devs_touched)
		return;
	dsv = calloc(rx->nr_devices, sizeof(*dsv));
	if (!dsv)
		return;
	n = rx_devs(rx, dsv);
	if (vmig_devstate_abort(dsv, n) < 0)
		vmig_logf(rx->s, VMIG_LOG_ERROR,
			  "destination: a device could not be reset: %s",
			  dsv_error(dsv, n));
	free(dsv);
}

static void load_close(struct vmig_rx *rx)
{
	uint32_t i;

	for (i = 0; rx->devices && i < rx->nr_devices; i++) {
		vmig_devstate_close(rx->devices[i].ds);
		rx->devices[i].ds = NULL;
	}
}

const struct vmig_section_loader vmig_section_devstate_loader = {
	.name = "device state",
	.open = load_open,
	.start = load_start,
	.write = load_write,
	.load = load_load,
	.run = load_run,
	.abort = load_abort,
	.close = load_close,
};
