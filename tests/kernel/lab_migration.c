/*
 * lab_migration.c: VFIO migration v2 on the mtty sample (boot "viommu"),
 * from one mdev to the other: first through the lab's own calls, each
 * state and each answer checked, then through core/devstate.c, the
 * driver libvmig's migration engine uses.
 *
 * mtty's image (samples/vfio-mdev/mtty.c) is a 24-byte header, which
 * PRE_COPY offers, and 36 bytes a port, which STOP_COPY adds; ksim's is
 * records of its own (4 KiB chunks). Their sizes differ, so the recorder
 * compares whether a read moved data, ended (0) or failed, and shows the
 * numbers; what is checked here holds for any image: PRECOPY_INFO's
 * initial_bytes is what the next reads give, and all that PRE_COPY and
 * STOP_COPY gave is what MIG_DATA_SIZE said before it began.
 *
 * mtty's quirks, from its source: a read at the temporary end of the
 * PRE_COPY stream returns 0, not ENOMSG (mtty_save_read() has no such
 * case); dirty_bytes is always 0 (mtty_precopy_ioctl()); its state
 * survives a close of the device (mtty_close() only ends the data
 * sessions; it has no open_device to reset it).
 */
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include <linux/vfio.h>

#include "core/devstate.h"
#include <vmig/linux-uapi.h>
#include "lab.h"
#include "lab_scenarios.h"

/* A read's buffer: far more than either image. */
#define CHUNK 65536u
/* Where an image is kept between the source and the destination. */
#define IMAGE_MAX (4 * CHUNK)
/* Reads of one stream before it is taken as endless. */
#define MAX_READS 64

/* MIG_DEVICE_STATE with flags (GET or SET), m copied in and back out. */
static int mig_state(struct lab *lab, int devfd, uint32_t flags,
		     struct vfio_device_feature_mig_state *m)
{
	return lab_feature(lab, devfd,
			   flags | VFIO_DEVICE_FEATURE_MIG_DEVICE_STATE, m,
			   sizeof(*m), m);
}

static int get_state(struct lab *lab, int devfd, uint32_t *state)
{
	struct vfio_device_feature_mig_state m = { .data_fd = -1 };
	int ret = mig_state(lab, devfd, VFIO_DEVICE_FEATURE_GET, &m);

	*state = ret ? VK_VFIO_STATE_NR : m.device_state;
	return ret;
}

/* A SET of the state; *data_fd gets the fd it gave, or -1. */
static int set_state(struct lab *lab, int devfd, uint32_t state,
		     int *data_fd)
{
	struct vfio_device_feature_mig_state m = {
		.device_state = state,
		.data_fd = -1,
	};
	int ret = mig_state(lab, devfd, VFIO_DEVICE_FEATURE_SET, &m);

	*data_fd = ret ? -1 : m.data_fd;
	return ret;
}

/* Expects the device in state; says so in the failure otherwise. */
static void expect_state(struct lab *lab, int devfd, uint32_t want,
			 const char *what)
{
	uint32_t s;
	int ret = get_state(lab, devfd, &s);

	LAB_EXPECT(lab, ret == 0 && s == want, "%s: %d, %s, not %s", what, ret,
		   lab_mig_state(s), lab_mig_state(want));
}

/* A SET expected to succeed and to give a data fd, or none. */
static int move(struct lab *lab, int devfd, uint32_t state, bool want_fd,
		int *data_fd)
{
	int ret = set_state(lab, devfd, state, data_fd);

	LAB_EXPECT(lab, ret == 0 && (*data_fd >= 0) == want_fd,
		   "SET %s: %d, data fd %s", lab_mig_state(state), ret,
		   *data_fd >= 0 ? "given" : "none");
	return ret;
}

static int precopy_info(struct lab *lab, int data_fd, uint32_t argsz,
			uint64_t *initial, uint64_t *dirty)
{
	struct vk_vfio_precopy_info info = { .argsz = argsz };
	int ret = lab_ioctl(lab, data_fd, VK_VFIO_MIG_GET_PRECOPY_INFO,
			    &info);

	*initial = ret ? 0 : info.initial_bytes;
	*dirty = ret ? 0 : info.dirty_bytes;
	return ret;
}

static int data_size(struct lab *lab, int devfd, uint64_t *size)
{
	struct vk_vfio_device_feature_mig_data_size m = { 0 };
	int ret = lab_feature(lab, devfd,
			      VFIO_DEVICE_FEATURE_GET |
				      VK_VFIO_DEVICE_FEATURE_MIG_DATA_SIZE,
			      &m, sizeof(m), &m);

	*size = ret ? 0 : m.stop_copy_length;
	return ret;
}

/*
 * Reads the data fd into image + *len until a read gives 0 or fails
 * (bounded); returns that last answer.
 */
static int64_t drain(struct lab *lab, int data_fd, uint8_t *image,
		     size_t *len)
{
	int64_t n = -EIO;
	int i;

	for (i = 0; i < MAX_READS; i++) {
		if (*len + CHUNK > IMAGE_MAX)
			return -EFBIG;
		n = lab_read(lab, data_fd, image + *len, CHUNK);
		if (n <= 0)
			return n;
		*len += (size_t)n;
	}
	return n;
}

/*
 * The source: RUNNING -> PRE_COPY (a saving fd; PRECOPY_INFO before and
 * after the initial image is read; the temporary end) -> STOP_COPY (the
 * same fd, read to its end) -> STOP (the fd ends). Fills the image.
 */
static int save_raw(struct lab *lab, int src, uint8_t *image, size_t *len)
{
	uint64_t initial = 0, dirty = 0, total = 0;
	size_t at;
	int64_t n;
	int fd = -1, ret;

	*len = 0;
	ret = data_size(lab, src, &total);
	LAB_EXPECT(lab, ret == 0 && total, "MIG_DATA_SIZE: %d, %llu", ret,
		   (unsigned long long)total);
	expect_state(lab, src, VK_VFIO_STATE_RUNNING, "the source");
	ret = move(lab, src, VK_VFIO_STATE_PRE_COPY, true, &fd);
	if (ret || fd < 0)
		return ret ? ret : -EIO;

	ret = precopy_info(lab, fd, sizeof(struct vk_vfio_precopy_info),
			   &initial, &dirty);
	LAB_EXPECT(lab, ret == 0 && initial && !dirty,
		   "PRECOPY_INFO in PRE_COPY: %d, initial %llu, dirty %llu",
		   ret, (unsigned long long)initial,
		   (unsigned long long)dirty);
	ret = precopy_info(lab, fd, 16, &initial, &dirty);
	LAB_EXPECT_RET(lab, ret, -EINVAL, "PRECOPY_INFO with argsz 16");
	{
		/* A device's request, on the data fd: not its business. */
		uint64_t raw[2] = { 8, 0 };

		ret = lab_ioctl(lab, fd, VFIO_DEVICE_FEATURE, raw);
		LAB_EXPECT_RET(lab, ret, -ENOTTY,
			       "VFIO_DEVICE_FEATURE on the data fd");
	}
	ret = precopy_info(lab, fd, sizeof(struct vk_vfio_precopy_info),
			   &initial, &dirty);
	/* The initial image, in one read: initial_bytes was all of it. */
	n = lab_read(lab, fd, image, CHUNK);
	LAB_EXPECT(lab, n > 0 && (uint64_t)n == initial,
		   "the PRE_COPY read: %lld bytes, initial_bytes %llu",
		   (long long)n, (unsigned long long)initial);
	if (n > 0)
		*len = (size_t)n;
	ret = precopy_info(lab, fd, sizeof(struct vk_vfio_precopy_info),
			   &initial, &dirty);
	LAB_EXPECT(lab, ret == 0 && !initial && !dirty,
		   "PRECOPY_INFO after the read: %d, %llu, %llu", ret,
		   (unsigned long long)initial, (unsigned long long)dirty);
	/* mtty's temporary end of stream: 0 where the UAPI says ENOMSG. */
	n = lab_read(lab, fd, image + *len, CHUNK);
	LAB_EXPECT(lab, n == 0,
		   "the read at PRE_COPY's temporary end: %lld, not mtty's 0",
		   (long long)n);
	ret = precopy_info(lab, fd, sizeof(struct vk_vfio_precopy_info),
			   &initial, &dirty);
	LAB_EXPECT(lab, ret == 0 && !initial && !dirty,
		   "PRECOPY_INFO at the temporary end: %d", ret);

	/* STOP_COPY: no new fd, the same stream goes on to its end. */
	{
		int fd2 = -1;

		ret = move(lab, src, VK_VFIO_STATE_STOP_COPY, false, &fd2);
		if (fd2 >= 0)
			lab_close(lab, fd2);
	}
	expect_state(lab, src, VK_VFIO_STATE_STOP_COPY, "the source");
	ret = precopy_info(lab, fd, sizeof(struct vk_vfio_precopy_info),
			   &initial, &dirty);
	LAB_EXPECT_RET(lab, ret, -EINVAL, "PRECOPY_INFO in STOP_COPY");
	at = *len;
	n = drain(lab, fd, image, len);
	LAB_EXPECT(lab, n == 0 && *len > at,
		   "STOP_COPY's stream: %lld at its end, %zu bytes",
		   (long long)n, *len - at);
	LAB_EXPECT(lab, *len == total,
		   "the image is %zu bytes, MIG_DATA_SIZE said %llu", *len,
		   (unsigned long long)total);
	/* A saving fd is read-only (anon_inode_getfile(..., O_RDONLY)). */
	n = lab_write(lab, fd, image, 1);
	LAB_EXPECT(lab, n == -EBADF, "a write on the saving fd: %lld",
		   (long long)n);

	/* STOP: the session ends, the fd stays the caller's, dead. */
	{
		int fd2 = -1;

		ret = move(lab, src, VK_VFIO_STATE_STOP, false, &fd2);
		if (fd2 >= 0)
			lab_close(lab, fd2);
	}
	n = lab_read(lab, fd, image + *len, CHUNK);
	LAB_EXPECT(lab, n == -ENODEV, "a read after STOP: %lld",
		   (long long)n);
	ret = precopy_info(lab, fd, sizeof(struct vk_vfio_precopy_info),
			   &initial, &dirty);
	LAB_EXPECT_RET(lab, ret, -EINVAL, "PRECOPY_INFO in STOP");
	lab_close(lab, fd);
	expect_state(lab, src, VK_VFIO_STATE_STOP, "the source");
	return 0;
}

/*
 * The destination: RUNNING -> RESUMING (a resuming fd, written the whole
 * image) -> RUNNING (through STOP, where the image is loaded).
 */
static void resume_raw(struct lab *lab, int dst, const uint8_t *image,
		       size_t len)
{
	uint8_t byte;
	int64_t n;
	int fd = -1, fd2 = -1, ret;

	expect_state(lab, dst, VK_VFIO_STATE_RUNNING, "the destination");
	ret = move(lab, dst, VK_VFIO_STATE_RESUMING, true, &fd);
	if (ret || fd < 0)
		return;
	/* A resuming fd is write-only (anon_inode_getfile(..., O_WRONLY)). */
	n = lab_read(lab, fd, &byte, 1);
	LAB_EXPECT(lab, n == -EBADF, "a read on the resuming fd: %lld",
		   (long long)n);
	n = lab_write(lab, fd, image, len);
	LAB_EXPECT(lab, n >= 0 && (size_t)n == len,
		   "writing the image: %lld of %zu bytes", (long long)n, len);
	ret = move(lab, dst, VK_VFIO_STATE_RUNNING, false, &fd2);
	if (fd2 >= 0)
		lab_close(lab, fd2);
	expect_state(lab, dst, VK_VFIO_STATE_RUNNING, "the destination");
	n = lab_write(lab, fd, image, 1);
	LAB_EXPECT(lab, n == -ENODEV, "a write after RESUMING: %lld",
		   (long long)n);
	lab_close(lab, fd);
}

/* One step of the driver, said in the transcript. */
static void say_ds(struct lab *lab, const char *what, int ret,
		   struct vmig_devstate *ds)
{
	char eb[32];

	lab_say(lab, "devstate %s = %s: state=%s data_fd=%s", what,
		lab_err(ret, eb, sizeof(eb)),
		lab_mig_state(vmig_devstate_state(ds)),
		vmig_devstate_data_fd(ds) >= 0 ? "fd" : "none");
	if (ret < 0)
		lab_note(lab, "devstate: %s", vmig_devstate_error(ds));
}

/* A finish, said; it must leave the device in state, its data fd closed. */
static void say_finish(struct lab *lab, const char *what, int ret,
		       struct vmig_devstate *ds, uint32_t state)
{
	say_ds(lab, what, ret, ds);
	LAB_EXPECT(lab, ret == 0 && vmig_devstate_state(ds) == state &&
			vmig_devstate_data_fd(ds) < 0,
		   "%s: %d", what, ret);
}

/*
 * Reads the driver's stream until it says what ends this part of it
 * (-EAGAIN in PRE_COPY, 0 in STOP_COPY); returns that answer.
 */
static int64_t ds_drain(struct lab *lab, struct vmig_devstate *ds,
			uint8_t *image, size_t *len)
{
	int64_t n = -EIO;
	char eb[32];
	int i;

	for (i = 0; i < MAX_READS; i++) {
		if (*len + CHUNK > IMAGE_MAX)
			return -EFBIG;
		n = vmig_devstate_read(ds, image + *len, CHUNK);
		lab_say(lab, "devstate read = %s",
			n > 0 ? "data" : lab_err((int)n, eb, sizeof(eb)));
		if (n <= 0)
			return n;
		*len += (size_t)n;
	}
	return n;
}

static void say_sizes(struct lab *lab, struct vmig_devstate *ds)
{
	struct vmig_devstate_sizes sz;
	char eb[32];
	int ret = vmig_devstate_sizes(ds, &sz);

	lab_say(lab, "devstate sizes = %s: precopy_initial=%s "
		     "precopy_dirty=%s stop_copy=%s",
		lab_err(ret, eb, sizeof(eb)),
		sz.precopy_initial ? "nonzero" : "0",
		sz.precopy_dirty ? "nonzero" : "0",
		sz.stop_copy ? "nonzero" : "0");
	lab_note(lab, "devstate sizes: %llu %llu %llu",
		 (unsigned long long)sz.precopy_initial,
		 (unsigned long long)sz.precopy_dirty,
		 (unsigned long long)sz.stop_copy);
	LAB_EXPECT(lab, ret == 0 && !sz.precopy_dirty,
		   "devstate sizes: %d, dirty %llu", ret,
		   (unsigned long long)sz.precopy_dirty);
}

/*
 * The same migration through core/devstate.c, as the engine makes it for
 * one device on each side: precopy_start, reads until -EAGAIN,
 * stop_copy, reads until 0, save_finish; resume_start, write,
 * resume_finish. The source is then set RUNNING again.
 */
static void migrate_devstate(struct lab *lab, int src_fd, int dst_fd,
			     uint8_t *image, uint64_t total)
{
	struct vmig_devstate *src = NULL, *dst = NULL;
	size_t len = 0;
	int64_t n;
	int ret;

	ret = vmig_devstate_open(&lab->host, src_fd, "mtty-source", &src);
	LAB_REQUIRE(lab, ret == 0, "devstate open of the source: %d", ret);
	say_ds(lab, "open source", ret, src);
	LAB_EXPECT(lab, vmig_devstate_flags(src) ==
				(VK_VFIO_MIGRATION_STOP_COPY |
				 VK_VFIO_MIGRATION_P2P |
				 VK_VFIO_MIGRATION_PRE_COPY),
		   "the source's flags: 0x%llx",
		   (unsigned long long)vmig_devstate_flags(src));
	ret = vmig_devstate_open(&lab->host, dst_fd, "mtty-destination",
				 &dst);
	LAB_REQUIRE(lab, ret == 0, "devstate open of the destination: %d",
		    ret);
	say_ds(lab, "open destination", ret, dst);

	ret = vmig_devstate_precopy_start(&src, 1);
	say_ds(lab, "precopy_start", ret, src);
	LAB_REQUIRE(lab, ret == 0 && vmig_devstate_state(src) ==
					     VK_VFIO_STATE_PRE_COPY,
		    "precopy_start: %d", ret);
	say_sizes(lab, src);
	n = ds_drain(lab, src, image, &len);
	LAB_EXPECT(lab, n == -EAGAIN && len,
		   "PRE_COPY through devstate: %lld, %zu bytes",
		   (long long)n, len);
	say_sizes(lab, src);

	ret = vmig_devstate_stop_copy(&src, 1);
	say_ds(lab, "stop_copy", ret, src);
	LAB_REQUIRE(lab, ret == 0, "stop_copy: %d", ret);
	n = ds_drain(lab, src, image, &len);
	LAB_EXPECT(lab, n == 0 && len == total,
		   "STOP_COPY through devstate: %lld, %zu bytes of %llu",
		   (long long)n, len, (unsigned long long)total);
	ret = vmig_devstate_save_finish(&src, 1);
	say_finish(lab, "save_finish", ret, src, VK_VFIO_STATE_STOP);

	ret = vmig_devstate_resume_start(&dst, 1);
	say_ds(lab, "resume_start", ret, dst);
	LAB_REQUIRE(lab, ret == 0, "resume_start: %d", ret);
	ret = vmig_devstate_write(dst, image, len);
	say_ds(lab, "write", ret, dst);
	LAB_EXPECT_RET(lab, ret, 0, "devstate write");
	ret = vmig_devstate_resume_finish(&dst, 1);
	say_finish(lab, "resume_finish", ret, dst, VK_VFIO_STATE_RUNNING);

	/* The source runs again, as the lab found it. */
	ret = vmig_devstate_set(src, VK_VFIO_STATE_RUNNING);
	say_ds(lab, "set RUNNING", ret, src);
	LAB_EXPECT_RET(lab, ret, 0, "the source back to RUNNING");
out:
	if (src && vmig_devstate_state(src) != VK_VFIO_STATE_RUNNING)
		vmig_devstate_abort(&src, 1);
	if (dst && vmig_devstate_state(dst) != VK_VFIO_STATE_RUNNING)
		vmig_devstate_abort(&dst, 1);
	vmig_devstate_close(src);
	vmig_devstate_close(dst);
}

/*
 * mtty's state across a close of its device: it stays (STOP here), where
 * drivers with an open_device (mlx5) start RUNNING again. Reopens the
 * device and sets it RUNNING.
 */
static int reopen(struct lab *lab, const struct lab_dev *dev, int group,
		  int *devfd)
{
	int ret, fd = -1;

	lab_close(lab, *devfd);
	*devfd = lab_ioctl(lab, group, VFIO_GROUP_GET_DEVICE_FD,
			   (void *)dev->name);
	if (*devfd < 0)
		return *devfd;
	expect_state(lab, *devfd, VK_VFIO_STATE_STOP,
		     "the source reopened (mtty keeps its state)");
	ret = set_state(lab, *devfd, VK_VFIO_STATE_RUNNING, &fd);
	LAB_EXPECT(lab, ret == 0 && fd < 0, "SET RUNNING: %d", ret);
	if (fd >= 0)
		lab_close(lab, fd);
	return ret;
}

void lab_migration_v2_mtty(struct lab *lab)
{
	const struct lab_facts *f = &lab->facts;
	int sc = -1, sg = -1, sd = -1, dc = -1, dg = -1, dd = -1, ret;
	uint8_t *image = NULL;
	size_t len = 0;

	LAB_REQUIRE(lab, f->nr_mdevs >= 2, "this boot has fewer than 2 mdevs");
	image = calloc(1, IMAGE_MAX);
	LAB_REQUIRE(lab, image, "out of memory");
	ret = lab_vfio_open(lab, &f->mdevs[0], &sc, &sg, &sd);
	LAB_REQUIRE(lab, ret == 0, "cannot open the source mdev: %d", ret);
	ret = lab_vfio_open(lab, &f->mdevs[1], &dc, &dg, &dd);
	LAB_REQUIRE(lab, ret == 0, "cannot open the destination mdev: %d",
		    ret);

	ret = save_raw(lab, sd, image, &len);
	LAB_REQUIRE(lab, ret == 0, "the source did not save: %d", ret);
	resume_raw(lab, dd, image, len);
	ret = reopen(lab, &f->mdevs[0], sg, &sd);
	LAB_REQUIRE(lab, ret == 0, "the source cannot run again: %d", ret);

	lab_note(lab, "the same through core/devstate.c");
	memset(image, 0, IMAGE_MAX);
	migrate_devstate(lab, sd, dd, image, len);
	expect_state(lab, sd, VK_VFIO_STATE_RUNNING, "the source at the end");
	expect_state(lab, dd, VK_VFIO_STATE_RUNNING,
		     "the destination at the end");
out:
	lab_vfio_close(lab, &dc, &dg, &dd);
	lab_vfio_close(lab, &sc, &sg, &sd);
	free(image);
}
