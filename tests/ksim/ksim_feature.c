/*
 * ksim_feature.c: the simulator's VFIO device features. It owns
 * VFIO_DEVICE_FEATURE on device fds (the vfio core's checks, then each
 * feature), migration v2 (the FSM, data sessions on real pipes,
 * VFIO_MIG_GET_PRECOPY_INFO, MIG_DATA_SIZE) over a device state that
 * changes while the device runs, and DMA logging (START, STOP, REPORT)
 * after the mlx5, pds and mtty drivers: shared docs/kernel-uapi.md
 * section 3, checked against Linux 6.12 (drivers/vfio/vfio_main.c,
 * drivers/vfio/pci/{mlx5,pds}, samples/vfio-mdev/mtty.c,
 * drivers/iommu/iommufd/iova_bitmap.c).
 *
 * A data session is a real pipe. Saving: the caller holds the read end;
 * ksim keeps the write end and fills it lazily, a record at a time, on
 * every call that can make room or data (a read, a state change, an FSM
 * arc), never blocking, so a reader that reads in a loop never deadlocks
 * and a real poll() on the fd tells the truth. When a STOP_COPY image is
 * complete ksim closes its end: read() returns 0 once drained. Resuming:
 * the caller holds the write end and ksim parses what is written as it
 * arrives; the arc RESUMING -> STOP checks the image.
 *
 * The image is a stream of records: a header (geometry), one record per
 * 4 KiB chunk of state (a chunk is sent again after it changes) and, in
 * STOP_COPY, an end record with the digest of the whole state.
 */
#include <errno.h>
#include <fcntl.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <unistd.h>

#include <linux/vfio.h>

#include "ksim_internal.h"

/* What 6.1's <linux/vfio.h> lacks, from the 6.12 UAPI (kernel-uapi.md). */
#define KS_MIGRATION_STOP_COPY 1ull
#define KS_MIGRATION_P2P 2ull
#define KS_MIGRATION_PRE_COPY 4ull
#define KS_FEATURE_MIG_DATA_SIZE 9u
#define KS_MIG_GET_PRECOPY_INFO 0x3b79u /* _IO(';', 121), on the data fd */

enum ks_state {
	KS_ERROR = 0,
	KS_STOP = 1,
	KS_RUNNING = 2,
	KS_STOP_COPY = 3,
	KS_RESUMING = 4,
	KS_RUNNING_P2P = 5,
	KS_PRE_COPY = 6,
	KS_PRE_COPY_P2P = 7,
	KS_NR_STATES = 8,
};

struct ks_precopy_info {
	uint32_t argsz;
	uint32_t flags;
	uint64_t initial_bytes;
	uint64_t dirty_bytes;
};

struct ks_mig_state {
	uint32_t device_state;
	int32_t data_fd;
};

_Static_assert(sizeof(struct ks_precopy_info) == 24, "precopy_info");
_Static_assert(sizeof(struct vfio_device_feature_dma_logging_control) == 24,
	       "logging control");
_Static_assert(sizeof(struct vfio_device_feature_dma_logging_report) == 32,
	       "logging report");

/* The vfio core refuses more ranges than fit in a page (LOG_MAX_RANGES). */
#define KS_LOG_MAX_RANGES (KSIM_PAGE_SIZE / 16)
/* pds asks its firmware for a u8 count of regions. */
#define KS_PDS_MAX_REGIONS 255u
#define KS_DEFAULT_STATE_SIZE (64u << 10)
#define KS_DEFAULT_MAX_PAGE (1ull << 30)

/* ------------------------------------------------------------------ */
/* The image format                                                    */

#define KS_CHUNK 4096u
#define KS_IMAGE_MAGIC 0x3156454d49534b53ull /* "SKSIMEV1" */
#define KS_IMAGE_VERSION 1u

enum ks_rec_type {
	KS_REC_HEADER = 1,
	KS_REC_CHUNK = 2,
	KS_REC_END = 3,
};

struct ks_rec {
	uint32_t type;
	uint32_t index;
	uint32_t len; /* of the payload that follows */
	uint32_t reserved;
};

struct ks_rec_header {
	uint64_t magic;
	uint32_t version;
	uint32_t chunk_size;
	uint32_t nr_chunks;
	uint32_t reserved;
};

struct ks_rec_end {
	uint64_t digest;
	uint64_t reserved;
};

#define KS_HEADER_BYTES (sizeof(struct ks_rec) + sizeof(struct ks_rec_header))
#define KS_CHUNK_BYTES (sizeof(struct ks_rec) + KS_CHUNK)
#define KS_END_BYTES (sizeof(struct ks_rec) + sizeof(struct ks_rec_end))

/* ------------------------------------------------------------------ */
/* State                                                               */

struct ks_dev;

/* A data transfer session and its fd. */
struct ks_session {
	struct ks_dev *owner; /* valid while obj is open (ksim_free order) */
	struct ksim_obj *obj; /* NULL once the caller closed the fd */
	bool saving;
	bool disabled; /* ended by the device: read and write say ENODEV */
	int keep_fd;   /* the pipe end ksim holds, or -1 */

	/* Saving. */
	uint64_t *initial; /* chunks of the initial image not captured yet */
	uint64_t *dirty;   /* chunks that changed after their capture */
	uint32_t nr_initial;
	uint32_t nr_dirty;
	uint32_t cursor;   /* where the next search for a chunk starts */
	bool header_pending;
	bool final;        /* STOP_COPY: the image ends with an end record */
	bool end_captured;
	uint8_t *stage;    /* the record being pushed into the pipe */
	size_t stage_len;
	size_t stage_off;
	uint64_t initial_len; /* stream bytes of the initial image */
	uint64_t captured;    /* stream bytes staged so far */
	uint64_t pushed;      /* stream bytes written into the pipe */

	/* Resuming. */
	uint8_t *image;    /* the state being assembled */
	uint64_t *have;    /* chunks received */
	uint32_t nr_have;
	uint8_t hdr[sizeof(struct ks_rec)];
	size_t hdr_len;
	struct ks_rec cur;
	uint8_t *payload;
	size_t payload_len;
	bool got_header;
	bool got_end;
	bool failed; /* a write was refused: the session takes no more */
	uint64_t end_digest;
};

/* A device's features. */
struct ks_dev {
	struct ksim_device *d;
	struct ksim_feature_params p;

	/* Migration. */
	uint32_t state;
	uint8_t *blob;
	uint32_t nchunks;
	uint64_t rng;
	struct ks_session *save;
	struct ks_session *resume;
	int fail_from;
	int fail_to;
	int fail_err;
	bool fail_to_error;

	/* DMA logging. */
	bool log_active;
	uint64_t log_pgsize;
	struct ks_range {
		uint64_t start;
		uint64_t last;
	} *ranges;
	uint32_t nr_ranges;
	uint64_t *dirty; /* dirty granules (address / log_pgsize), sorted */
	size_t nr_dirty;
	size_t cap_dirty;
	int log_err;   /* REPORT fails with it until STOP */
	bool detached; /* START and REPORT: ENOTCONN */
};

/* Per simulator: the arc observer. */
struct ks_sim {
	void (*arc_fn)(void *opaque, const struct ksim_device *d, int from,
		       int to);
	void *arc_opaque;
};

static struct ks_dev *ksdev(const struct ksim_device *d)
{
	return d->ext[KSIM_EXT_FEATURE];
}

static struct ks_sim *kssim(struct ksim *k)
{
	return k->ext[KSIM_EXT_FEATURE];
}

/* ------------------------------------------------------------------ */
/* Helpers                                                             */

/* Whether a user range can be copied to or from (ksim's model of it). */
static bool user_ok(const void *p, uint64_t len)
{
	return ksim_access_ok(p, len) && (uintptr_t)p >= KSIM_USER_MIN;
}

static uint64_t fnv1a(const uint8_t *p, size_t len, uint64_t h)
{
	size_t i;

	for (i = 0; i < len; i++) {
		h ^= p[i];
		h *= 0x100000001b3ull;
	}
	return h;
}

#define KS_FNV_BASIS 0xcbf29ce484222325ull

static bool is_pow2(uint64_t v)
{
	return v && !(v & (v - 1));
}

static unsigned int log2_floor(uint64_t v)
{
	return v ? 63u - (unsigned int)__builtin_clzll(v) : 0;
}

static bool is_saving(uint32_t s)
{
	return s == KS_PRE_COPY || s == KS_PRE_COPY_P2P || s == KS_STOP_COPY;
}

/*
 * The mtty sample's driver (its DMA logging is the stub): where its
 * migration differs from mlx5's and pds's, ksim follows it. At the
 * temporary end of PRE_COPY its read() returns 0 rather than ENOMSG
 * (mtty_save_read), and its device keeps its migration state across the
 * last close.
 */
static bool mtty_like(const struct ks_dev *f)
{
	return f->p.log == KSIM_LOG_STUB;
}

static bool is_running(uint32_t s)
{
	return s == KS_RUNNING || s == KS_RUNNING_P2P || s == KS_PRE_COPY ||
	       s == KS_PRE_COPY_P2P;
}

static bool bit_test(const uint64_t *bm, uint64_t n)
{
	return ksim_bit_test(bm, n);
}

static void arc_notify(struct ksim *k, struct ks_dev *f, uint32_t from,
		       uint32_t to)
{
	struct ks_sim *ks = kssim(k);

	if (ks && ks->arc_fn && from != to)
		ks->arc_fn(ks->arc_opaque, f->d, (int)from, (int)to);
}

/* ------------------------------------------------------------------ */
/* The device's state                                                  */

static uint64_t state_digest(const struct ks_dev *f)
{
	return fnv1a(f->blob, (size_t)f->nchunks * KS_CHUNK, KS_FNV_BASIS);
}

static void session_fill(struct ks_session *s);

/* A chunk changed: an open saving session must send it (again). */
static void note_changed(struct ks_dev *f, uint32_t chunk)
{
	struct ks_session *s = f->save;

	if (!s || s->disabled)
		return;
	if (!bit_test(s->initial, chunk) && !bit_test(s->dirty, chunk)) {
		ksim_bit_set(s->dirty, chunk);
		s->nr_dirty++;
	}
	session_fill(s);
}

/*
 * One unit of the device's work: 64 bytes of one chunk rewritten, where
 * and with what decided by the device's generator and salt (the DMA
 * address that caused it), so the state follows its activity. A stopped
 * device must not change its state (the UAPI's STOP).
 */
static bool state_touch(struct ks_dev *f, uint64_t salt)
{
	uint32_t chunk, off, i;

	if (!f->blob || !is_running(f->state))
		return false;
	chunk = (uint32_t)((ksim_rand(&f->rng) ^ salt) % f->nchunks);
	off = (uint32_t)(ksim_rand(&f->rng) % (KS_CHUNK / 64)) * 64;
	for (i = 0; i < 64; i += 8) {
		uint64_t r = ksim_rand(&f->rng);

		memcpy(f->blob + (size_t)chunk * KS_CHUNK + off + i, &r, 8);
	}
	note_changed(f, chunk);
	return true;
}

/* ------------------------------------------------------------------ */
/* Data sessions                                                       */

static void session_free(struct ks_session *s)
{
	if (s->keep_fd >= 0)
		close(s->keep_fd);
	free(s->initial);
	free(s->dirty);
	free(s->stage);
	free(s->image);
	free(s->have);
	free(s->payload);
	free(s);
}

/*
 * The device lets go of a session (it left the saving group or RESUMING,
 * was reset, closed or removed): the fd stays the caller's but reads and
 * writes fail with ENODEV, as the drivers' disabled files do; ksim's end
 * of the pipe is closed so a real poll() sees the hang-up.
 */
static void session_end(struct ks_session *s)
{
	struct ks_dev *f = s->owner;

	s->disabled = true;
	if (s->keep_fd >= 0) {
		close(s->keep_fd);
		s->keep_fd = -1;
	}
	if (f->save == s)
		f->save = NULL;
	if (f->resume == s)
		f->resume = NULL;
	if (!s->obj)
		session_free(s);
}

static void sessions_end(struct ks_dev *f)
{
	if (f->save)
		session_end(f->save);
	if (f->resume)
		session_end(f->resume);
}

/* Takes the next chunk of bm from the cursor on, or returns false. */
static bool take_chunk(struct ks_session *s, uint64_t *bm, uint32_t *count,
		       uint32_t *chunk)
{
	uint32_t n = s->owner->nchunks, i;

	if (!*count)
		return false;
	for (i = 0; i < n; i++) {
		uint32_t c = (s->cursor + i) % n;

		if (bit_test(bm, c)) {
			ksim_bit_clear(bm, c);
			(*count)--;
			s->cursor = (c + 1) % n;
			*chunk = c;
			return true;
		}
	}
	return false;
}

static void stage_record(struct ks_session *s, uint32_t type, uint32_t index,
			 const void *payload, uint32_t len)
{
	struct ks_rec r = { .type = type, .index = index, .len = len };

	memcpy(s->stage, &r, sizeof(r));
	memcpy(s->stage + sizeof(r), payload, len);
	s->stage_len = sizeof(r) + len;
	s->stage_off = 0;
	s->captured += s->stage_len;
}

/*
 * Captures the next record of the image: the header, the initial image,
 * then the chunks that changed, then (STOP_COPY) the end. A chunk is
 * copied when captured, so a later change marks it dirty again.
 */
static bool capture_next(struct ks_session *s)
{
	struct ks_dev *f = s->owner;
	uint32_t c;

	if (s->header_pending) {
		struct ks_rec_header h = {
			.magic = KS_IMAGE_MAGIC,
			.version = KS_IMAGE_VERSION,
			.chunk_size = KS_CHUNK,
			.nr_chunks = f->nchunks,
		};

		s->header_pending = false;
		stage_record(s, KS_REC_HEADER, 0, &h, sizeof(h));
		return true;
	}
	if (take_chunk(s, s->initial, &s->nr_initial, &c) ||
	    take_chunk(s, s->dirty, &s->nr_dirty, &c)) {
		stage_record(s, KS_REC_CHUNK, c,
			     f->blob + (size_t)c * KS_CHUNK, KS_CHUNK);
		return true;
	}
	if (s->final && !s->end_captured) {
		struct ks_rec_end e = { .digest = state_digest(f) };

		s->end_captured = true;
		stage_record(s, KS_REC_END, 0, &e, sizeof(e));
		return true;
	}
	return false;
}

/*
 * Pushes records into the pipe until it is full or the image has nothing
 * more for now. Never blocks (both pipe ends are non-blocking).
 */
static void session_fill(struct ks_session *s)
{
	if (!s->saving || s->disabled || s->keep_fd < 0)
		return;
	for (;;) {
		ssize_t n;

		if (s->stage_off == s->stage_len && !capture_next(s)) {
			if (s->end_captured) {
				/* The image is complete: EOF once drained. */
				close(s->keep_fd);
				s->keep_fd = -1;
			}
			return;
		}
		n = write(s->keep_fd, s->stage + s->stage_off,
			  s->stage_len - s->stage_off);
		if (n < 0) {
			if (errno == EINTR)
				continue;
			return; /* EAGAIN: full until the reader reads */
		}
		s->stage_off += (size_t)n;
		s->pushed += (uint64_t)n;
	}
}

/* Bytes the caller has read: pushed minus what still sits in the pipe. */
static uint64_t session_consumed(const struct ks_session *s)
{
	int queued = 0;

	if (!s->obj || ioctl(s->obj->fd, FIONREAD, &queued) < 0 ||
	    queued < 0)
		return s->pushed;
	return s->pushed - (uint64_t)queued;
}

/*
 * What the caller still has to read, split as PRECOPY_INFO does: the
 * initial image occupies the first initial_len bytes of the stream (it is
 * captured before any dirty chunk), the rest is dirty data.
 */
static void session_left(const struct ks_session *s, uint64_t *initial,
			 uint64_t *dirty)
{
	uint64_t consumed = session_consumed(s);
	uint64_t known = s->captured > s->initial_len ? s->captured :
							s->initial_len;

	known += (uint64_t)s->nr_dirty * KS_CHUNK_BYTES;
	*initial = s->initial_len > consumed ? s->initial_len - consumed : 0;
	*dirty = known - consumed - *initial;
}

static int64_t save_read(struct ksim *k, struct ksim_obj *o, void *buf,
			 size_t len)
{
	struct ks_session *s = o->priv;
	ssize_t n;

	(void)k;
	if (s->disabled)
		return -ENODEV;
	if (!len)
		return 0;
	if (!user_ok(buf, len))
		return -EFAULT;
	session_fill(s);
	n = read(o->fd, buf, len);
	if (n < 0) {
		int err = errno;

		if (err != EAGAIN)
			return -err;
		/*
		 * The pipe is empty and the image has nothing more now: the
		 * temporary end of stream of PRE_COPY (STOP_COPY never gets
		 * here: its image is pushed to the end, then EOF).
		 */
		if (s->owner->state == KS_PRE_COPY ||
		    s->owner->state == KS_PRE_COPY_P2P)
			return mtty_like(s->owner) ? 0 : -ENOMSG;
		return -EAGAIN;
	}
	session_fill(s);
	return n;
}

/*
 * VFIO_MIG_GET_PRECOPY_INFO, in mlx5's order of checks: the request, the
 * argument, its size, the device's state, then the session.
 */
static int save_ioctl(struct ksim *k, struct ksim_obj *o, unsigned int cmd,
		      void *arg)
{
	struct ks_session *s = o->priv;
	struct ks_precopy_info info;
	uint64_t initial, dirty;

	(void)k;
	if (cmd != KS_MIG_GET_PRECOPY_INFO)
		return -ENOTTY;
	if (ksim_copy_from_user(&info, arg, sizeof(info)))
		return -EFAULT;
	if (info.argsz < sizeof(info))
		return -EINVAL;
	if (s->owner->state != KS_PRE_COPY &&
	    s->owner->state != KS_PRE_COPY_P2P)
		return -EINVAL;
	if (s->disabled)
		return -ENODEV;
	session_fill(s);
	session_left(s, &initial, &dirty);
	info.initial_bytes = initial;
	info.dirty_bytes = dirty;
	return ksim_copy_to_user(arg, &info, sizeof(info));
}

/* The caller closed the fd; the device may still hold the session. */
static void session_release(struct ksim *k, struct ksim_obj *o)
{
	struct ks_session *s = o->priv;

	(void)k;
	s->obj = NULL;
	/* Nobody reads the pipe any more: stop filling it (and no SIGPIPE). */
	if (s->saving && s->keep_fd >= 0) {
		close(s->keep_fd);
		s->keep_fd = -1;
	}
	if (s->disabled)
		session_free(s);
}

/*
 * The direction a data file was not opened for: drivers open a saving
 * file O_RDONLY and a resuming one O_WRONLY, so the VFS refuses the other
 * direction with EBADF (vfs_read/vfs_write check FMODE_READ/FMODE_WRITE
 * first), whatever the session's state.
 */
static int64_t data_no_read(struct ksim *k, struct ksim_obj *o, void *buf,
			    size_t len)
{
	(void)k;
	(void)o;
	(void)buf;
	(void)len;
	return -EBADF;
}

static int64_t data_no_write(struct ksim *k, struct ksim_obj *o,
			     const void *buf, size_t len)
{
	(void)k;
	(void)o;
	(void)buf;
	(void)len;
	return -EBADF;
}

static const struct ksim_obj_ops save_ops = {
	.type = KSIM_OBJ_DATA,
	.ioctl = save_ioctl,
	.read = save_read,
	.write = data_no_write,
	.release = session_release,
};

/* ------------------------------------------------------------------ */
/* Resuming: parsing the image as it is written                        */

static int rec_begin(struct ks_session *s)
{
	struct ks_dev *f = s->owner;
	struct ks_rec *r = &s->cur;

	memcpy(r, s->hdr, sizeof(*r));
	if (r->reserved || s->got_end)
		return -EINVAL;
	switch (r->type) {
	case KS_REC_HEADER:
		if (s->got_header || r->len != sizeof(struct ks_rec_header))
			return -EINVAL;
		return 0;
	case KS_REC_CHUNK:
		if (!s->got_header || r->len != KS_CHUNK ||
		    r->index >= f->nchunks)
			return -EINVAL;
		return 0;
	case KS_REC_END:
		if (!s->got_header || r->len != sizeof(struct ks_rec_end))
			return -EINVAL;
		return 0;
	default:
		/* mlx5 refuses an unknown mandatory record so. */
		return s->got_header ? -EOPNOTSUPP : -EINVAL;
	}
}

static int rec_end(struct ks_session *s)
{
	struct ks_dev *f = s->owner;
	struct ks_rec_header h;
	struct ks_rec_end e;

	switch (s->cur.type) {
	case KS_REC_HEADER:
		memcpy(&h, s->payload, sizeof(h));
		if (h.magic != KS_IMAGE_MAGIC ||
		    h.version != KS_IMAGE_VERSION || h.chunk_size != KS_CHUNK ||
		    h.nr_chunks != f->nchunks || h.reserved)
			return -EINVAL;
		s->got_header = true;
		break;
	case KS_REC_CHUNK:
		memcpy(s->image + (size_t)s->cur.index * KS_CHUNK, s->payload,
		       KS_CHUNK);
		if (!bit_test(s->have, s->cur.index)) {
			ksim_bit_set(s->have, s->cur.index);
			s->nr_have++;
		}
		break;
	default:
		memcpy(&e, s->payload, sizeof(e));
		s->got_end = true;
		s->end_digest = e.digest;
		break;
	}
	return 0;
}

static int image_parse(struct ks_session *s, const uint8_t *p, size_t len)
{
	int ret;

	while (len) {
		size_t take;

		if (s->hdr_len < sizeof(s->hdr)) {
			take = sizeof(s->hdr) - s->hdr_len;
			if (take > len)
				take = len;
			memcpy(s->hdr + s->hdr_len, p, take);
			s->hdr_len += take;
			p += take;
			len -= take;
			if (s->hdr_len < sizeof(s->hdr))
				break;
			ret = rec_begin(s);
			if (ret)
				return ret;
			continue;
		}
		take = s->cur.len - s->payload_len;
		if (take > len)
			take = len;
		memcpy(s->payload + s->payload_len, p, take);
		s->payload_len += take;
		p += take;
		len -= take;
		if (s->payload_len == s->cur.len) {
			ret = rec_end(s);
			if (ret)
				return ret;
			s->hdr_len = 0;
			s->payload_len = 0;
		}
	}
	return 0;
}

/*
 * A write on the resuming fd. A refused record ends what the session
 * accepts (mlx5 marks its file broken: later writes say ENODEV).
 */
static int64_t resume_write(struct ksim *k, struct ksim_obj *o,
			    const void *buf, size_t len)
{
	struct ks_session *s = o->priv;
	int ret;

	(void)k;
	if (s->disabled || s->failed)
		return -ENODEV;
	if (!len)
		return 0;
	if (!user_ok(buf, len))
		return -EFAULT;
	ret = image_parse(s, buf, len);
	if (ret) {
		s->failed = true;
		return ret;
	}
	return (int64_t)len;
}

static const struct ksim_obj_ops resume_ops = {
	.type = KSIM_OBJ_DATA,
	.read = data_no_read,
	.write = resume_write,
	.release = session_release,
};

/*
 * RESUMING -> STOP: the image must be whole (the mtty sample says EINVAL
 * for a short one) and its digest must match what was assembled (a
 * firmware refusing corrupt state: EIO). Then it becomes the state.
 */
static int resume_complete(struct ks_session *s)
{
	struct ks_dev *f = s->owner;

	if (s->failed || !s->got_end || s->hdr_len || s->payload_len ||
	    s->nr_have != f->nchunks)
		return -EINVAL;
	if (fnv1a(s->image, (size_t)f->nchunks * KS_CHUNK, KS_FNV_BASIS) !=
	    s->end_digest)
		return -EIO;
	memcpy(f->blob, s->image, (size_t)f->nchunks * KS_CHUNK);
	return 0;
}

/* ------------------------------------------------------------------ */
/* Opening sessions                                                    */

static struct ks_session *session_alloc(struct ks_dev *f, bool saving)
{
	size_t words = (f->nchunks + 63) / 64;
	struct ks_session *s = calloc(1, sizeof(*s));

	if (!s)
		return NULL;
	s->owner = f;
	s->saving = saving;
	s->keep_fd = -1;
	if (saving) {
		s->initial = calloc(words, 8);
		s->dirty = calloc(words, 8);
		s->stage = malloc(KS_CHUNK_BYTES);
		if (!s->initial || !s->dirty || !s->stage)
			goto nomem;
	} else {
		s->image = calloc(f->nchunks, KS_CHUNK);
		s->have = calloc(words, 8);
		s->payload = malloc(KS_CHUNK);
		if (!s->image || !s->have || !s->payload)
			goto nomem;
	}
	return s;
nomem:
	session_free(s);
	return NULL;
}

/*
 * A session on a new pipe: the caller's data fd is the read end when
 * saving, the write end when resuming; the session holds the other end,
 * so that the caller's end never sees the pipe broken.
 */
static struct ks_session *session_open(struct ksim *k, struct ks_dev *f,
				       bool saving, int *out)
{
	struct ks_session *s = session_alloc(f, saving);
	int p[2], fd;

	if (!s) {
		*out = -ENOMEM;
		return NULL;
	}
	if (pipe2(p, O_CLOEXEC | O_NONBLOCK) < 0) {
		*out = -errno;
		session_free(s);
		return NULL;
	}
	fd = ksim_obj_install(k, saving ? &save_ops : &resume_ops, s,
			      p[saving ? 0 : 1], &s->obj);
	if (fd < 0) {
		close(p[saving ? 1 : 0]);
		session_free(s);
		*out = fd;
		return NULL;
	}
	s->keep_fd = p[saving ? 1 : 0];
	*out = fd;
	return s;
}

/*
 * Opens a saving session whose data fd the caller reads. final: a
 * STOP_COPY image (it ends); else PRE_COPY.
 */
static int save_open(struct ksim *k, struct ks_dev *f, bool final, int *out)
{
	struct ks_session *s = session_open(k, f, true, out);
	uint32_t i;

	if (!s)
		return *out;
	for (i = 0; i < f->nchunks; i++)
		ksim_bit_set(s->initial, i);
	s->nr_initial = f->nchunks;
	s->header_pending = true;
	s->final = final;
	s->initial_len = KS_HEADER_BYTES + (uint64_t)f->nchunks *
						   KS_CHUNK_BYTES;
	f->save = s;
	session_fill(s);
	return 0;
}

/* Opens a resuming session: the caller writes the image to its fd. */
static int resume_open(struct ksim *k, struct ks_dev *f, int *out)
{
	struct ks_session *s = session_open(k, f, false, out);

	if (!s)
		return *out;
	f->resume = s;
	return 0;
}

/* ------------------------------------------------------------------ */
/* DMA logging: the device's side                                      */

static void log_teardown(struct ks_dev *f)
{
	free(f->ranges);
	f->ranges = NULL;
	f->nr_ranges = 0;
	free(f->dirty);
	f->dirty = NULL;
	f->nr_dirty = 0;
	f->cap_dirty = 0;
	f->log_active = false;
	f->log_err = 0;
}

/* The first index of f->dirty at or after granule g. */
static uint64_t granule(const void *g)
{
	return *(const uint64_t *)g;
}

static size_t dirty_lower(const struct ks_dev *f, uint64_t g)
{
	return ksim_lower_bound(f->dirty, f->nr_dirty, sizeof(*f->dirty), g,
				granule);
}

static int dirty_insert(struct ks_dev *f, uint64_t g)
{
	size_t i = dirty_lower(f, g);
	uint64_t *p;

	if (i < f->nr_dirty && f->dirty[i] == g)
		return 0;
	p = ksim_array_grow(f->dirty, &f->cap_dirty, f->nr_dirty, sizeof(*p),
			    64);
	if (!p)
		return -ENOMEM;
	f->dirty = p;
	ksim_array_open(p, f->nr_dirty, i, sizeof(*p));
	f->dirty[i] = g;
	f->nr_dirty++;
	return 0;
}

/*
 * The device wrote [iova, iova + len): every granule of it that lies in a
 * tracked (merged) range is logged, gaps between the caller's ranges
 * included when the device merged them. A log that cannot grow breaks the
 * tracker rather than lose the write.
 */
static void log_record(struct ks_dev *f, uint64_t iova, uint64_t len)
{
	uint64_t last = iova + len - 1, g;
	uint32_t i;

	for (i = 0; i < f->nr_ranges; i++) {
		const struct ks_range *r = &f->ranges[i];
		uint64_t lo = iova > r->start ? iova : r->start;
		uint64_t hi = last < r->last ? last : r->last;

		if (lo > hi)
			continue;
		for (g = lo / f->log_pgsize; g <= hi / f->log_pgsize; g++) {
			if (dirty_insert(f, g)) {
				f->log_err = ENOMEM;
				return;
			}
		}
	}
}

static int range_cmp(const void *a, const void *b)
{
	const struct ks_range *x = a, *y = b;

	return x->start < y->start ? -1 : x->start > y->start;
}

/*
 * The kernel's vfio_combine_iova_ranges(): down to one span when only one
 * range is allowed, else merge the two neighbours separated by the
 * smallest gap (the first such pair on ties) until few enough remain.
 */
static uint32_t combine_ranges(struct ks_range *r, uint32_t n, uint32_t max)
{
	if (n <= max || !n)
		return n;
	if (max <= 1) {
		r[0].last = r[n - 1].last;
		return 1;
	}
	while (n > max) {
		uint64_t best = UINT64_MAX;
		uint32_t i, at = 1;

		for (i = 1; i < n; i++) {
			uint64_t gap = r[i].start - r[i - 1].last;

			if (gap < best) {
				best = gap;
				at = i;
			}
		}
		r[at - 1].last = r[at].last;
		memmove(r + at, r + at + 1, (n - at - 1) * sizeof(*r));
		n--;
	}
	return n;
}

/*
 * The driver's log_start, after the core's checks. nodes are the
 * caller's ranges as the core built them ([start, last]); a zero-length
 * range (last = start - 1) passes the core and is tracked as nothing.
 */
static int log_start_driver(struct ks_dev *f, const struct ks_range *nodes,
			    uint32_t n, uint64_t *page_size)
{
	uint32_t i, m = 0, max = f->p.log_max_ranges;
	uint64_t ps = *page_size;
	struct ks_range *r;

	switch (f->p.log) {
	case KSIM_LOG_STUB:
		return 0;
	case KSIM_LOG_MLX5: {
		unsigned int lg = log2_floor(ps);
		unsigned int lmin = log2_floor(f->p.log_min_page_size);
		unsigned int lmax = log2_floor(f->p.log_max_page_size);

		if (f->detached)
			return -ENOTCONN;
		if (f->log_active)
			return -EINVAL;
		/* mlx5 clamps the order to what its tracker supports. */
		if (lg < lmin)
			lg = lmin;
		else if (lg > lmax)
			lg = lmax;
		ps = 1ull << lg;
		break;
	}
	case KSIM_LOG_PDS:
		if (f->log_active)
			return -EINVAL;
		/* Handed to the firmware as is: only a real page size works. */
		if (!is_pow2(ps) || ps < KSIM_PAGE_SIZE)
			return -EINVAL;
		if (!max || max > KS_PDS_MAX_REGIONS)
			max = KS_PDS_MAX_REGIONS;
		break;
	default:
		return -ENOTTY;
	}
	r = calloc(n, sizeof(*r));
	if (!r)
		return -ENOMEM;
	for (i = 0; i < n; i++) {
		if (nodes[i].last + 1 == nodes[i].start)
			continue;
		r[m++] = nodes[i];
	}
	qsort(r, m, sizeof(*r), range_cmp);
	if (max)
		m = combine_ranges(r, m, max);
	f->ranges = r;
	f->nr_ranges = m;
	f->log_pgsize = ps;
	f->log_active = true;
	f->log_err = 0;
	*page_size = ps;
	return 0;
}

/* The driver's log_stop: always 0, running or not (mlx5, pds, mtty). */
static void log_stop_driver(struct ks_dev *f)
{
	if (f->p.log == KSIM_LOG_MLX5 || f->p.log == KSIM_LOG_PDS)
		log_teardown(f);
}

/*
 * ORs bits [first, last] into the caller's bitmap, a byte at a time (bit n
 * is bit n % 8 of byte n / 8 on little-endian, and the buffer need not be
 * aligned). A byte that cannot be written is skipped without an error, as
 * iova_bitmap_set() does when it cannot pin the user's page.
 */
static void user_bits_set(uint8_t *bm, uint64_t first, uint64_t last)
{
	uint64_t b;

	for (b = first; b <= last; b++) {
		uint8_t *p = bm + b / 8;

		if (!user_ok(p, 1))
			continue;
		*p |= (uint8_t)(1u << (b % 8));
	}
}

/*
 * Reports and clears the granules of [iova, iova + length) into the
 * caller's bitmap at page_size: a coarser granule sets several bits, finer
 * ones OR into one. As iova_bitmap_set() does, a granule that starts
 * before the request's iova is cleared but its bits are dropped (the
 * write is lost: requests must be aligned to the device's granule). Bits
 * past the request are not written (the kernel may write them into the
 * rest of the user's page).
 */
static void log_report(struct ks_dev *f, uint64_t iova, uint64_t length,
		       uint64_t page_size, uint8_t *bm)
{
	uint64_t end = iova + length, glo, ghi;
	size_t i, j;

	if (!length)
		return;
	glo = iova / f->log_pgsize;
	ghi = (end - 1) / f->log_pgsize;
	i = dirty_lower(f, glo);
	for (j = i; j < f->nr_dirty && f->dirty[j] <= ghi; j++) {
		uint64_t gs = f->dirty[j] * f->log_pgsize;
		uint64_t ge = gs + f->log_pgsize - 1;

		if (gs < iova)
			continue;
		if (ge > end - 1 || ge < gs)
			ge = end - 1;
		user_bits_set(bm, (gs - iova) / page_size,
			      (ge - iova) / page_size);
	}
	if (j == i)
		return;
	memmove(f->dirty + i, f->dirty + j,
		(f->nr_dirty - j) * sizeof(*f->dirty));
	f->nr_dirty -= j - i;
}

/* pds: the request must lie inside one region (page_count pages). */
static bool pds_in_one_region(const struct ks_dev *f, uint64_t iova,
			      uint64_t length)
{
	uint32_t i;

	for (i = 0; i < f->nr_ranges; i++) {
		const struct ks_range *r = &f->ranges[i];
		uint64_t len = r->last - r->start + 1;
		uint64_t size = (len + f->log_pgsize - 1) / f->log_pgsize *
				f->log_pgsize;

		if (iova < r->start || iova - r->start >= size)
			continue;
		return length && iova - r->start + length <= size;
	}
	return false;
}

/* ------------------------------------------------------------------ */
/* Migration: the FSM                                                  */

static bool state_supported(const struct ks_dev *f, uint32_t s)
{
	bool p2p = f->p.mig_flags & KS_MIGRATION_P2P;
	bool pre = f->p.mig_flags & KS_MIGRATION_PRE_COPY;

	switch (s) {
	case KS_STOP:
	case KS_RUNNING:
	case KS_STOP_COPY:
	case KS_RESUMING:
		return true;
	case KS_RUNNING_P2P:
		return p2p;
	case KS_PRE_COPY:
		return pre;
	case KS_PRE_COPY_P2P:
		return p2p && pre;
	default:
		return false;
	}
}

/*
 * The single arcs a device implements (the UAPI's list in
 * include/uapi/linux/vfio.h): with P2P the RUNNING <-> STOP arcs go
 * through RUNNING_P2P instead, and PRE_COPY reaches STOP_COPY directly
 * only without PRE_COPY_P2P.
 */
static bool arc_exists(const struct ks_dev *f, uint32_t a, uint32_t b)
{
	bool p2p = f->p.mig_flags & KS_MIGRATION_P2P;
	bool pre = f->p.mig_flags & KS_MIGRATION_PRE_COPY;

#define ARC(x, y) (a == (x) && b == (y))
	if (ARC(KS_RUNNING, KS_STOP) || ARC(KS_STOP, KS_RUNNING))
		return !p2p;
	if (ARC(KS_STOP, KS_STOP_COPY) || ARC(KS_STOP_COPY, KS_STOP) ||
	    ARC(KS_STOP, KS_RESUMING) || ARC(KS_RESUMING, KS_STOP))
		return true;
	if (ARC(KS_RUNNING, KS_RUNNING_P2P) ||
	    ARC(KS_RUNNING_P2P, KS_RUNNING) ||
	    ARC(KS_RUNNING_P2P, KS_STOP) || ARC(KS_STOP, KS_RUNNING_P2P))
		return p2p;
	if (ARC(KS_RUNNING, KS_PRE_COPY) || ARC(KS_PRE_COPY, KS_RUNNING))
		return pre;
	if (ARC(KS_PRE_COPY, KS_STOP_COPY))
		return pre && !p2p;
	if (ARC(KS_PRE_COPY, KS_PRE_COPY_P2P) ||
	    ARC(KS_PRE_COPY_P2P, KS_PRE_COPY) ||
	    ARC(KS_PRE_COPY_P2P, KS_RUNNING_P2P) ||
	    ARC(KS_RUNNING_P2P, KS_PRE_COPY_P2P) ||
	    ARC(KS_PRE_COPY_P2P, KS_STOP_COPY))
		return pre && p2p;
#undef ARC
	return false;
}

/*
 * The first arc of the shortest path from cur to target (breadth first,
 * lowest state number first). Interior states are never saving states,
 * except on a path from one saving state to another, which stays inside
 * the saving group (so STOP_COPY -> PRE_COPY has no path: EINVAL). This
 * reproduces the kernel's vfio_mig_get_next_state() for every set of
 * flags (test_ksim_feature checks every pair).
 */
static int next_state(const struct ks_dev *f, uint32_t cur, uint32_t target,
		      uint32_t *next)
{
	bool inside = is_saving(cur) && is_saving(target);
	uint32_t prev[KS_NR_STATES], queue[KS_NR_STATES];
	bool seen[KS_NR_STATES] = { false };
	unsigned int head = 0, tail = 0;
	uint32_t s, t;

	if (target >= KS_NR_STATES || !state_supported(f, target) ||
	    !state_supported(f, cur))
		return -EINVAL;
	seen[cur] = true;
	queue[tail++] = cur;
	while (head < tail) {
		s = queue[head++];
		if (s == target)
			break;
		/* Only the start may be what interior states cannot be. */
		if (s != cur && is_saving(s) != inside)
			continue;
		for (t = 0; t < KS_NR_STATES; t++) {
			if (seen[t] || !state_supported(f, t) ||
			    !arc_exists(f, s, t))
				continue;
			seen[t] = true;
			prev[t] = s;
			queue[tail++] = t;
		}
	}
	if (!seen[target] || target == cur)
		return -EINVAL;
	for (s = target; prev[s] != cur; s = prev[s])
		;
	*next = s;
	return 0;
}

static void mig_to_error(struct ksim *k, struct ks_dev *f)
{
	uint32_t from = f->state;

	sessions_end(f);
	/* pds_vfio_reset(ERROR) turns its dirty tracking off. */
	if (f->p.log == KSIM_LOG_PDS)
		log_teardown(f);
	f->state = KS_ERROR;
	arc_notify(k, f, from, KS_ERROR);
}

/*
 * One arc, as the drivers' step functions do it. Opens a data fd on the
 * arcs that begin a session (stored in *fd), ends sessions on the arcs
 * that leave them. On failure the state is unchanged, or ERROR when an
 * injected failure says so.
 */
static int mig_arc(struct ksim *k, struct ks_dev *f, uint32_t next, int *fd)
{
	uint32_t cur = f->state;
	int ret = 0;

	if (f->fail_err &&
	    (f->fail_from == KSIM_MIG_ANY || f->fail_from == (int)cur) &&
	    (f->fail_to == KSIM_MIG_ANY || f->fail_to == (int)next)) {
		ret = -f->fail_err;
		f->fail_err = 0;
		if (f->fail_to_error)
			mig_to_error(k, f);
		return ret;
	}
	if ((cur == KS_RUNNING && next == KS_PRE_COPY) ||
	    (cur == KS_RUNNING_P2P && next == KS_PRE_COPY_P2P)) {
		ret = save_open(k, f, false, fd);
	} else if (cur == KS_STOP && next == KS_STOP_COPY) {
		ret = save_open(k, f, true, fd);
	} else if (next == KS_STOP_COPY) {
		/* From PRE_COPY(_P2P): the same session goes on to its end. */
		if (f->save) {
			f->save->final = true;
			session_fill(f->save);
		}
	} else if (is_saving(cur) && !is_saving(next)) {
		if (f->save)
			session_end(f->save);
		/* pds stops logging when the stop-copy data has been read. */
		if (cur == KS_STOP_COPY && f->p.log == KSIM_LOG_PDS)
			log_teardown(f);
	} else if (cur == KS_STOP && next == KS_RESUMING) {
		ret = resume_open(k, f, fd);
	} else if (cur == KS_RESUMING) {
		ret = f->resume ? resume_complete(f->resume) : 0;
		if (!ret && f->resume)
			session_end(f->resume);
	}
	if (ret)
		return ret;
	f->state = next;
	arc_notify(k, f, cur, next);
	return 0;
}

/*
 * SET of MIG_DEVICE_STATE: single arcs until the target, as
 * mlx5vf_pci_set_device_state() loops. From ERROR nothing moves: the
 * kernel's FSM refuses (EINVAL), pds answers EIO.
 */
static int mig_set(struct ksim *k, struct ks_dev *f, uint32_t target,
		   int *data_fd)
{
	bool pds = f->p.log == KSIM_LOG_PDS;
	int ret = 0;

	*data_fd = -1;
	while (f->state != target) {
		uint32_t next;
		int fd = -1;

		if (f->state == KS_ERROR) {
			ret = pds ? -EIO : -EINVAL;
			break;
		}
		ret = next_state(f, f->state, target, &next);
		if (ret)
			break;
		ret = mig_arc(k, f, next, &fd);
		if (ret)
			break;
		/* Only the last arc of a path can open a session. */
		*data_fd = fd;
	}
	if (pds && f->state == KS_ERROR)
		ret = -EIO;
	if (ret)
		*data_fd = -1;
	return ret;
}

/* VFIO_DEVICE_RESET: back to RUNNING, sessions gone; logging stays. */
static void mig_reset(struct ksim *k, struct ks_dev *f)
{
	uint32_t from = f->state;

	if (!f->blob)
		return;
	sessions_end(f);
	f->state = KS_RUNNING;
	arc_notify(k, f, from, KS_RUNNING);
}

/* The stop-copy size the device estimates: what is left of the image. */
static uint64_t mig_data_size(const struct ks_dev *f)
{
	uint64_t initial, dirty;
	const struct ks_session *s = f->save;

	if (!s || s->disabled)
		return KS_HEADER_BYTES +
		       (uint64_t)f->nchunks * KS_CHUNK_BYTES + KS_END_BYTES;
	session_left(s, &initial, &dirty);
	return initial + dirty + (s->end_captured ? 0 : KS_END_BYTES);
}

/* ------------------------------------------------------------------ */
/* VFIO_DEVICE_FEATURE                                                 */

/* vfio_check_feature(): 1 to go on, else what to return. */
static int check_feature(uint32_t flags, size_t argsz, uint32_t supported,
			 size_t minsz)
{
	if (flags & (VFIO_DEVICE_FEATURE_GET | VFIO_DEVICE_FEATURE_SET) &
	    ~supported)
		return -EINVAL;
	if (flags & VFIO_DEVICE_FEATURE_PROBE)
		return 0;
	if (!(flags & (VFIO_DEVICE_FEATURE_GET | VFIO_DEVICE_FEATURE_SET)))
		return -EINVAL;
	if (argsz < minsz)
		return -EINVAL;
	return 1;
}

static int feat_migration(struct ks_dev *f, uint32_t flags, void *data,
			  size_t argsz)
{
	uint64_t mig;
	int ret;

	if (!f->p.migration)
		return -ENOTTY;
	ret = check_feature(flags, argsz, VFIO_DEVICE_FEATURE_GET,
			    sizeof(mig));
	if (ret != 1)
		return ret;
	mig = KS_MIGRATION_STOP_COPY |
	      (f->p.mig_flags & (KS_MIGRATION_P2P | KS_MIGRATION_PRE_COPY));
	return ksim_copy_to_user(data, &mig, sizeof(mig));
}

static int feat_mig_state(struct ksim *k, struct ks_dev *f, uint32_t flags,
			  void *data, size_t argsz)
{
	struct ks_mig_state mig;
	int ret, fd;

	if (!f->p.migration)
		return -ENOTTY;
	ret = check_feature(flags, argsz,
			    VFIO_DEVICE_FEATURE_GET | VFIO_DEVICE_FEATURE_SET,
			    sizeof(mig));
	if (ret != 1)
		return ret;
	if (ksim_copy_from_user(&mig, data, sizeof(mig)))
		return -EFAULT;
	if (flags & VFIO_DEVICE_FEATURE_GET) {
		mig.device_state = f->state;
		mig.data_fd = -1;
		return ksim_copy_to_user(data, &mig, sizeof(mig));
	}
	ret = mig_set(k, f, mig.device_state, &fd);
	mig.data_fd = fd;
	/*
	 * The copy back cannot fail here: ksim's faults depend on the
	 * address only, and the same bytes were just read.
	 */
	if (ksim_copy_to_user(data, &mig, sizeof(mig)))
		return -EFAULT;
	return ret;
}

static int feat_data_size(struct ks_dev *f, uint32_t flags, void *data,
			  size_t argsz)
{
	uint64_t size;
	int ret;

	if (!f->p.migration)
		return -ENOTTY;
	ret = check_feature(flags, argsz, VFIO_DEVICE_FEATURE_GET,
			    sizeof(size));
	if (ret != 1)
		return ret;
	size = mig_data_size(f);
	return ksim_copy_to_user(data, &size, sizeof(size));
}

/*
 * DMA_LOGGING_START: the core's checks in its order (count, then each
 * range: readable, aligned, not overflowing, not overlapping an earlier
 * one), the driver, then the control written back (a failed copy stops
 * logging again).
 */
static int feat_log_start(struct ks_dev *f, uint32_t flags, void *data,
			  size_t argsz)
{
	struct vfio_device_feature_dma_logging_control ctl;
	struct vfio_device_feature_dma_logging_range rg;
	struct ks_range *nodes;
	uint32_t i, j;
	uint64_t ps;
	int ret;

	if (f->p.log == KSIM_LOG_NONE)
		return -ENOTTY;
	ret = check_feature(flags, argsz, VFIO_DEVICE_FEATURE_SET,
			    sizeof(ctl));
	if (ret != 1)
		return ret;
	if (ksim_copy_from_user(&ctl, data, sizeof(ctl)))
		return -EFAULT;
	if (!ctl.num_ranges)
		return -EINVAL;
	if (ctl.num_ranges > KS_LOG_MAX_RANGES)
		return -E2BIG;
	nodes = calloc(ctl.num_ranges, sizeof(*nodes));
	if (!nodes)
		return -ENOMEM;
	for (i = 0; i < ctl.num_ranges; i++) {
		const uint8_t *src = (const uint8_t *)(uintptr_t)ctl.ranges +
				     (size_t)i * sizeof(rg);

		ret = ksim_copy_from_user(&rg, src, sizeof(rg));
		if (ret)
			goto out;
		/* IS_ALIGNED() with page_size 0 refuses any non-zero value. */
		if ((rg.iova & (ctl.page_size - 1)) ||
		    (rg.length & (ctl.page_size - 1))) {
			ret = -EINVAL;
			goto out;
		}
		if (rg.length > UINT64_MAX - rg.iova) {
			ret = -EOVERFLOW;
			goto out;
		}
		nodes[i].start = rg.iova;
		nodes[i].last = rg.iova + rg.length - 1;
		for (j = 0; j < i; j++) {
			if (nodes[j].start <= nodes[i].last &&
			    nodes[i].start <= nodes[j].last) {
				ret = -EINVAL;
				goto out;
			}
		}
	}
	ps = ctl.page_size;
	ret = log_start_driver(f, nodes, ctl.num_ranges, &ps);
	if (ret)
		goto out;
	ctl.page_size = ps;
	if (ksim_copy_to_user(data, &ctl, sizeof(ctl))) {
		log_stop_driver(f);
		ret = -EFAULT;
	}
out:
	free(nodes);
	return ret;
}

static int feat_log_stop(struct ks_dev *f, uint32_t flags, size_t argsz)
{
	int ret;

	if (f->p.log == KSIM_LOG_NONE)
		return -ENOTTY;
	ret = check_feature(flags, argsz, VFIO_DEVICE_FEATURE_SET, 0);
	if (ret != 1)
		return ret;
	log_stop_driver(f);
	return 0;
}

/*
 * DMA_LOGGING_REPORT: the core's checks, then the driver's (mlx5: not
 * started EINVAL, detached ENOTCONN, tracker broken EIO; pds: not started
 * or not inside one region EINVAL), then the bits.
 */
static int feat_log_report(struct ks_dev *f, uint32_t flags, void *data,
			   size_t argsz)
{
	struct vfio_device_feature_dma_logging_report rep;
	int ret;

	if (f->p.log == KSIM_LOG_NONE)
		return -ENOTTY;
	ret = check_feature(flags, argsz, VFIO_DEVICE_FEATURE_GET,
			    sizeof(rep));
	if (ret != 1)
		return ret;
	if (ksim_copy_from_user(&rep, data, sizeof(rep)))
		return -EFAULT;
	if (rep.page_size < KSIM_PAGE_SIZE || !is_pow2(rep.page_size))
		return -EINVAL;
	if (rep.length > UINT64_MAX - rep.iova)
		return -EOVERFLOW;
	switch (f->p.log) {
	case KSIM_LOG_STUB:
		return 0;
	case KSIM_LOG_MLX5:
		if (!f->log_active)
			return -EINVAL;
		if (f->detached)
			return -ENOTCONN;
		if (f->log_err)
			return -f->log_err;
		break;
	default:
		if (!f->log_active)
			return -EINVAL;
		if (f->log_err)
			return -f->log_err;
		if (!pds_in_one_region(f, rep.iova, rep.length))
			return -EINVAL;
		break;
	}
	log_report(f, rep.iova, rep.length, rep.page_size,
		   (uint8_t *)(uintptr_t)rep.bitmap);
	return 0;
}

/* vfio_ioctl_device_feature(): the core's rules, then the feature. */
static int device_feature(struct ksim *k, struct ks_dev *f, void *arg)
{
	const uint32_t known = VFIO_DEVICE_FEATURE_MASK |
			       VFIO_DEVICE_FEATURE_GET |
			       VFIO_DEVICE_FEATURE_SET |
			       VFIO_DEVICE_FEATURE_PROBE;
	struct vfio_device_feature hdr;
	void *data = (uint8_t *)arg + sizeof(hdr);
	size_t argsz;

	if (ksim_copy_from_user(&hdr, arg, sizeof(hdr)))
		return -EFAULT;
	if (hdr.argsz < sizeof(hdr))
		return -EINVAL;
	if (hdr.flags & ~known)
		return -EINVAL;
	if (!(hdr.flags & VFIO_DEVICE_FEATURE_PROBE) &&
	    (hdr.flags & VFIO_DEVICE_FEATURE_SET) &&
	    (hdr.flags & VFIO_DEVICE_FEATURE_GET))
		return -EINVAL;
	argsz = hdr.argsz - sizeof(hdr);
	switch (hdr.flags & VFIO_DEVICE_FEATURE_MASK) {
	case VFIO_DEVICE_FEATURE_MIGRATION:
		return feat_migration(f, hdr.flags, data, argsz);
	case VFIO_DEVICE_FEATURE_MIG_DEVICE_STATE:
		return feat_mig_state(k, f, hdr.flags, data, argsz);
	case VFIO_DEVICE_FEATURE_DMA_LOGGING_START:
		return feat_log_start(f, hdr.flags, data, argsz);
	case VFIO_DEVICE_FEATURE_DMA_LOGGING_STOP:
		return feat_log_stop(f, hdr.flags, argsz);
	case VFIO_DEVICE_FEATURE_DMA_LOGGING_REPORT:
		return feat_log_report(f, hdr.flags, data, argsz);
	case KS_FEATURE_MIG_DATA_SIZE:
		return feat_data_size(f, hdr.flags, data, argsz);
	default:
		/* PCI_VF_TOKEN, LOW_POWER_*, BUS_MASTER: not modelled. */
		return -ENOTTY;
	}
}

/* ------------------------------------------------------------------ */
/* Hooks                                                               */

static int feature_init(struct ksim *k)
{
	k->ext[KSIM_EXT_FEATURE] = calloc(1, sizeof(struct ks_sim));
	return k->ext[KSIM_EXT_FEATURE] ? 0 : -ENOMEM;
}

static void feature_fini(struct ksim *k)
{
	free(k->ext[KSIM_EXT_FEATURE]);
	k->ext[KSIM_EXT_FEATURE] = NULL;
}

static int feature_device_ioctl(struct ksim *k, struct ksim_devfile *df,
				unsigned int cmd, void *arg)
{
	struct ks_dev *f = ksdev(df->dev);

	if (!f)
		return KSIM_PASS;
	if (cmd == VFIO_DEVICE_FEATURE)
		return device_feature(k, f, arg);
	/* The reset itself is ksim.c's; the migration driver follows it. */
	if (cmd == VFIO_DEVICE_RESET)
		mig_reset(k, f);
	return KSIM_PASS;
}

/* Whether another fd of d is still open (close_device runs on the last). */
static bool device_still_open(struct ksim *k, const struct ksim_device *d)
{
	size_t i;

	for (i = 0; i < k->nr_fds; i++) {
		const struct ksim_obj *o = k->fds[i];

		if (o && o->ops->type == KSIM_OBJ_DEVICE &&
		    ((const struct ksim_devfile *)o->priv)->dev == d)
			return true;
	}
	return false;
}

/*
 * The last fd of the device closed: the drivers' close_device puts the
 * data files and (mlx5, pds) stops logging; open_device sets RUNNING
 * again, which ksim does now, as nothing can look before the next open.
 */
static void feature_device_closed(struct ksim *k, struct ksim_devfile *df)
{
	struct ks_dev *f = ksdev(df->dev);
	uint32_t from;

	if (!f || device_still_open(k, df->dev))
		return;
	sessions_end(f);
	log_stop_driver(f);
	/*
	 * mlx5 and pds reset the device to RUNNING on the last close; mtty
	 * has no such reset (mtty_close only disables the data files), so
	 * its device stays in its state until it is set again.
	 */
	if (f->blob && f->state != KS_RUNNING && !mtty_like(f)) {
		from = f->state;
		f->state = KS_RUNNING;
		arc_notify(k, f, from, KS_RUNNING);
	}
}

static void feature_dma_written(struct ksim *k, struct ksim_device *d,
				uint64_t iova, uint64_t len)
{
	struct ks_dev *f = ksdev(d);

	(void)k;
	if (!f || !len)
		return;
	state_touch(f, iova ^ (len << 48));
	if (f->log_active && !f->log_err)
		log_record(f, iova, len);
}

/*
 * A new device: its parameters with the defaults filled in and, with
 * migration, its initial state drawn from the seed. The state is what it
 * is whatever DMA the device made before: it starts RUNNING.
 */
static int feature_device_added(struct ksim *k, struct ksim_device *d)
{
	struct ks_dev *f = calloc(1, sizeof(*f));
	uint64_t seed, size;
	size_t i;

	(void)k;
	if (!f)
		return -ENOMEM;
	d->ext[KSIM_EXT_FEATURE] = f;
	f->d = d;
	f->p = d->feature;
	if (!f->p.log_min_page_size)
		f->p.log_min_page_size = KSIM_PAGE_SIZE;
	if (!f->p.log_max_page_size)
		f->p.log_max_page_size = KS_DEFAULT_MAX_PAGE;
	if (f->p.log_max_page_size < f->p.log_min_page_size)
		f->p.log_max_page_size = f->p.log_min_page_size;
	f->state = KS_RUNNING;
	if (!f->p.migration)
		return 0;
	size = f->p.state_size ? f->p.state_size : KS_DEFAULT_STATE_SIZE;
	f->nchunks = (uint32_t)((size + KS_CHUNK - 1) / KS_CHUNK);
	f->blob = malloc((size_t)f->nchunks * KS_CHUNK);
	if (!f->blob)
		return -ENOMEM;
	seed = f->p.state_seed ? f->p.state_seed :
				 fnv1a((const uint8_t *)d->name,
				       strlen(d->name), KS_FNV_BASIS);
	f->rng = seed ^ 0x2545f4914f6cdd1dull;
	for (i = 0; i < (size_t)f->nchunks * KS_CHUNK; i += 8) {
		uint64_t r = ksim_rand(&seed);

		memcpy(f->blob + i, &r, 8);
	}
	return 0;
}

static void feature_device_removed(struct ksim *k, struct ksim_device *d)
{
	struct ks_dev *f = ksdev(d);

	(void)k;
	if (!f)
		return;
	sessions_end(f);
	log_stop_driver(f);
}

static void feature_device_free(struct ksim *k, struct ksim_device *d)
{
	struct ks_dev *f = ksdev(d);

	(void)k;
	if (!f)
		return;
	sessions_end(f);
	log_teardown(f);
	free(f->blob);
}

/*
 * A device with migration support issues DMA only in the running states
 * (RUNNING_P2P forbids peer-to-peer DMA, not DMA to memory); in STOP,
 * STOP_COPY, RESUMING and ERROR it is quiet.
 */
static bool feature_dma_allowed(struct ksim *k, struct ksim_device *d)
{
	struct ks_dev *f = ksdev(d);

	(void)k;
	return !f || !f->blob || is_running(f->state);
}

const struct ksim_ext ksim_ext_feature = {
	.name = "feature",
	.dma_allowed = feature_dma_allowed,
	.init = feature_init,
	.fini = feature_fini,
	.device_ioctl = feature_device_ioctl,
	.device_closed = feature_device_closed,
	.dma_written = feature_dma_written,
	.device_added = feature_device_added,
	.device_removed = feature_device_removed,
	.device_free = feature_device_free,
};

/* ------------------------------------------------------------------ */
/* Entry points                                                        */

static void flock(struct ksim *k)
{
	pthread_mutex_lock(&k->lock);
}

static void funlock(struct ksim *k)
{
	pthread_mutex_unlock(&k->lock);
}

uint64_t ksim_device_state_digest(struct ksim_device *d)
{
	struct ks_dev *f = ksdev(d);
	uint64_t h = 0;

	flock(d->k);
	if (f && f->blob)
		h = state_digest(f);
	funlock(d->k);
	return h;
}

int ksim_device_state_run(struct ksim_device *d, unsigned int n)
{
	struct ks_dev *f = ksdev(d);
	unsigned int i;
	int made = 0;

	flock(d->k);
	if (!f || !f->blob) {
		made = -ENOTTY;
	} else if (d->removed) {
		made = -ENODEV;
	} else {
		for (i = 0; i < n; i++)
			made += state_touch(f, i);
	}
	funlock(d->k);
	return made;
}

int ksim_device_mig_state(struct ksim_device *d)
{
	struct ks_dev *f = ksdev(d);
	int state;

	flock(d->k);
	state = f && f->blob ? (int)f->state : -ENOTTY;
	funlock(d->k);
	return state;
}

void ksim_device_fail_arc(struct ksim_device *d, int from, int to, int err,
			  bool to_error)
{
	struct ks_dev *f = ksdev(d);

	flock(d->k);
	if (f) {
		f->fail_from = from;
		f->fail_to = to;
		f->fail_err = err < 0 ? -err : err;
		f->fail_to_error = to_error;
	}
	funlock(d->k);
}

void ksim_device_log_break(struct ksim_device *d, int err)
{
	struct ks_dev *f = ksdev(d);

	if (err < 0)
		err = -err;
	flock(d->k);
	if (f) {
		if (!err) {
			f->detached = false;
			f->log_err = 0;
		} else if (err == ENOTCONN) {
			f->detached = true;
		} else if (f->log_active) {
			f->log_err = err;
		}
	}
	funlock(d->k);
}

int ksim_device_log_ranges(struct ksim_device *d, struct vmig_range *out,
			   size_t n, uint64_t *page_size)
{
	struct ks_dev *f = ksdev(d);
	uint32_t i;
	int count = 0;

	flock(d->k);
	if (f && f->log_active) {
		for (i = 0; i < f->nr_ranges && i < n; i++) {
			out[i].iova = f->ranges[i].start;
			out[i].length = f->ranges[i].last - f->ranges[i].start +
					1;
		}
		count = (int)f->nr_ranges;
		if (page_size)
			*page_size = f->log_pgsize;
	} else if (page_size) {
		*page_size = 0;
	}
	funlock(d->k);
	return count;
}

void ksim_feature_set_arc_hook(struct ksim *k,
			       void (*fn)(void *opaque,
					  const struct ksim_device *d,
					  int from, int to),
			       void *opaque)
{
	struct ks_sim *ks = kssim(k);

	flock(k);
	ks->arc_fn = fn;
	ks->arc_opaque = fn ? opaque : NULL;
	funlock(k);
}
