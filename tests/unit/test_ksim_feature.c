/*
 * test_ksim_feature.c: the simulator's VFIO device features behave as
 * Linux 6.12 does (shared docs/kernel-uapi.md section 3 and the sources it
 * cites): the core's VFIO_DEVICE_FEATURE rules, the migration FSM for
 * every pair of states and every set of flags, data sessions (STOP_COPY
 * images restored on a second device, refused images, PRECOPY_INFO,
 * MIG_DATA_SIZE), DMA logging (START/REPORT/STOP errors, range merging,
 * page sizes, REPORT semantics) and the drivers' quirks (pds teardown,
 * close, a failing tracker, the mtty stub). Numbers are the UAPI's, spelt
 * out here rather than taken from vmig's own headers.
 */
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <linux/vfio.h>

#include "ksim/ksim.h"
#include "unit/testutil.h"
#include "unit/ksimutil.h"

#define PG 4096ull
#define KiB 1024ull

/* The 6.12 UAPI values 6.1's header lacks (kernel-uapi.md section 3). */
#define MIG_STOP_COPY 1u
#define MIG_P2P 2u
#define MIG_PRE_COPY 4u
#define F_MIGRATION 1u
#define F_MIG_STATE 2u
#define F_LOG_START 6u
#define F_LOG_STOP 7u
#define F_LOG_REPORT 8u
#define F_DATA_SIZE 9u
#define F_GET 0x10000u
#define F_SET 0x20000u
#define F_PROBE 0x40000u
#define DEVICE_FEATURE 0x3b75u
#define PRECOPY_INFO 0x3b79u

enum {
	ST_ERROR = 0,
	ST_STOP = 1,
	ST_RUNNING = 2,
	ST_STOP_COPY = 3,
	ST_RESUMING = 4,
	ST_RUNNING_P2P = 5,
	ST_PRE_COPY = 6,
	ST_PRE_COPY_P2P = 7,
	ST_NR = 8,
};

struct precopy_info {
	uint32_t argsz;
	uint32_t flags;
	uint64_t initial_bytes;
	uint64_t dirty_bytes;
};

struct log_range {
	uint64_t iova;
	uint64_t length;
};

/* ------------------------------------------------------------------ */
/* A simulated host: one type1 container, devices in groups of their   */
/* own, guest memory mapped at IOVA = offset.                          */

#define MEM_PAGES 512u

struct rig {
	struct ksim *k;
	const struct vmig_host *h;
	int cfd;
	int gfd[8];
	int dfd[8];
	struct ksim_device *dev[8];
	int ndev;
	uint8_t *mem;
};

static int kio(struct rig *r, int fd, unsigned long req, void *arg)
{
	return r->h->ioctl(r->h->kctx, fd, req, arg);
}

static int64_t kread(struct rig *r, int fd, void *buf, size_t len)
{
	return r->h->read(r->h->kctx, fd, buf, len);
}

static int64_t kwrite(struct rig *r, int fd, const void *buf, size_t len)
{
	return r->h->write(r->h->kctx, fd, buf, len);
}

static int kclose(struct rig *r, int fd)
{
	return r->h->close(r->h->kctx, fd);
}

static void rig_new(struct rig *r)
{
	memset(r, 0, sizeof(*r));
	vmig_test_type1_kernel(&r->k, &r->h, &r->cfd);
	r->mem = vmig_test_guest_mem(MEM_PAGES * PG, PG);
}

static void rig_free(struct rig *r)
{
	ksim_free(r->k);
	free(r->mem);
}

/* Adds a device in group 10 + index and opens its fd; returns the index. */
static int rig_dev(struct rig *r, const char *name,
		   const struct ksim_feature_params *fp)
{
	return vmig_test_type1_pci(r->k, r->h, r->cfd, name, 10, fp, &r->ndev,
				   r->dev, r->gfd, r->dfd);
}

/* Maps guest pages [first, first + n) writable at IOVA first * 4 KiB. */
static void rig_map(struct rig *r, uint64_t first, uint64_t n)
{
	vmig_test_type1_map(r->h, r->cfd, r->mem + first * PG, first * PG,
			    n * PG);
}

/* VFIO_DEVICE_FEATURE with payload (copied in and back out). */
static int feat(struct rig *r, int fd, uint32_t flags, void *payload,
		size_t len)
{
	struct {
		uint32_t argsz;
		uint32_t flags;
		uint64_t data[16];
	} f;
	int ret;

	CU_ASSERT_FATAL(len <= sizeof(f.data));
	memset(&f, 0, sizeof(f));
	f.argsz = (uint32_t)(8 + len);
	f.flags = flags;
	if (len)
		memcpy(f.data, payload, len);
	ret = kio(r, fd, DEVICE_FEATURE, &f);
	if (len)
		memcpy(payload, f.data, len);
	return ret;
}

/* Sets the migration state; *data_fd gets what the kernel returned. */
static int mig_set(struct rig *r, int dfd, uint32_t state, int *data_fd)
{
	struct {
		uint32_t device_state;
		int32_t data_fd;
	} m = { state, -7 };
	int ret = feat(r, dfd, F_SET | F_MIG_STATE, &m, sizeof(m));

	if (data_fd)
		*data_fd = m.data_fd;
	return ret;
}

static int mig_get(struct rig *r, int dfd)
{
	struct {
		uint32_t device_state;
		int32_t data_fd;
	} m = { 99, 99 };
	int ret = feat(r, dfd, F_GET | F_MIG_STATE, &m, sizeof(m));

	if (ret)
		return ret;
	CU_ASSERT(m.data_fd == -1);
	return (int)m.device_state;
}

static int64_t data_size(struct rig *r, int dfd)
{
	uint64_t size = 0;
	int ret = feat(r, dfd, F_GET | F_DATA_SIZE, &size, sizeof(size));

	return ret ? ret : (int64_t)size;
}

static int precopy(struct rig *r, int fd, uint64_t *initial, uint64_t *dirty)
{
	struct precopy_info pi = { .argsz = sizeof(pi) };
	int ret = kio(r, fd, PRECOPY_INFO, &pi);

	*initial = pi.initial_bytes;
	*dirty = pi.dirty_bytes;
	return ret;
}

/*
 * Reads fd to the end (read() == 0) in pieces of `piece` bytes into a
 * growing buffer; returns the length or the first error.
 */
static int64_t read_all(struct rig *r, int fd, size_t piece, uint8_t **out)
{
	size_t len = 0, cap = 0;
	uint8_t *buf = NULL;

	for (;;) {
		int64_t n;

		if (len + piece > cap) {
			cap = (len + piece) * 2;
			buf = realloc(buf, cap);
			CU_ASSERT_FATAL(buf != NULL);
		}
		n = kread(r, fd, buf + len, piece);
		if (n < 0) {
			free(buf);
			*out = NULL;
			return n;
		}
		if (n == 0)
			break;
		len += (size_t)n;
	}
	*out = buf;
	return (int64_t)len;
}

/* Writes all of buf in pieces; returns 0 or the first error. */
static int write_all(struct rig *r, int fd, const uint8_t *buf, size_t len,
		     size_t piece)
{
	while (len) {
		size_t n = len < piece ? len : piece;
		int64_t w = kwrite(r, fd, buf, n);

		if (w < 0)
			return (int)w;
		CU_ASSERT_FATAL(w == (int64_t)n);
		buf += n;
		len -= n;
	}
	return 0;
}

static int log_start(struct rig *r, int dfd, const struct log_range *rg,
		     uint32_t n, uint64_t *page_size)
{
	struct vfio_device_feature_dma_logging_control c = {
		.page_size = *page_size,
		.num_ranges = n,
		.ranges = (uintptr_t)rg,
	};
	int ret = feat(r, dfd, F_SET | F_LOG_START, &c, sizeof(c));

	*page_size = c.page_size;
	return ret;
}

static int log_stop(struct rig *r, int dfd)
{
	return feat(r, dfd, F_SET | F_LOG_STOP, NULL, 0);
}

static int log_report(struct rig *r, int dfd, uint64_t iova, uint64_t len,
		      uint64_t page_size, void *bitmap)
{
	struct vfio_device_feature_dma_logging_report rep = {
		.iova = iova,
		.length = len,
		.page_size = page_size,
		.bitmap = (uintptr_t)bitmap,
	};

	return feat(r, dfd, F_GET | F_LOG_REPORT, &rep, sizeof(rep));
}

static bool bit(const uint64_t *bm, uint64_t n)
{
	return (bm[n / 64] >> (n % 64)) & 1;
}

static uint64_t popcount(const uint64_t *bm, size_t words)
{
	uint64_t n = 0;
	size_t i;

	for (i = 0; i < words; i++)
		n += (uint64_t)__builtin_popcountll(bm[i]);
	return n;
}

static const struct ksim_feature_params all_flags = {
	.migration = true,
	.mig_flags = MIG_P2P | MIG_PRE_COPY,
	.state_size = 8 * KiB,
	.log = KSIM_LOG_MLX5,
};

/* ------------------------------------------------------------------ */
/* VFIO_DEVICE_FEATURE: the core's rules                               */

static void test_core_rules(void)
{
	struct rig r;
	uint64_t v = 0;
	struct {
		uint32_t argsz;
		uint32_t flags;
		uint64_t data[2];
	} f;
	int plain;

	rig_new(&r);
	rig_dev(&r, "mig", &all_flags);
	plain = rig_dev(&r, "plain", NULL);

	/* argsz below the 8-byte header. */
	f.argsz = 7;
	f.flags = F_GET | F_MIGRATION;
	CU_ASSERT(kio(&r, r.dfd[0], DEVICE_FEATURE, &f) == -EINVAL);
	/* An unknown flag bit. */
	CU_ASSERT(feat(&r, r.dfd[0], F_GET | F_MIGRATION | 0x80000u, &v,
		       8) == -EINVAL);
	/* GET with SET without PROBE. */
	CU_ASSERT(feat(&r, r.dfd[0], F_GET | F_SET | F_MIG_STATE, &v, 8) ==
		  -EINVAL);
	/* With PROBE: allowed where the feature has both; no payload. */
	CU_ASSERT(feat(&r, r.dfd[0], F_PROBE | F_GET | F_SET | F_MIG_STATE,
		       NULL, 0) == 0);
	CU_ASSERT(feat(&r, r.dfd[0], F_PROBE | F_MIG_STATE, NULL, 0) == 0);
	/* PROBE of an operation the feature lacks. */
	CU_ASSERT(feat(&r, r.dfd[0], F_PROBE | F_SET | F_MIGRATION, NULL,
		       0) == -EINVAL);
	CU_ASSERT(feat(&r, r.dfd[0], F_PROBE | F_GET | F_LOG_START, NULL,
		       0) == -EINVAL);
	CU_ASSERT(feat(&r, r.dfd[0], F_PROBE | F_SET | F_LOG_START, NULL,
		       0) == 0);
	/* Neither GET nor SET, no PROBE. */
	CU_ASSERT(feat(&r, r.dfd[0], F_MIGRATION, &v, 8) == -EINVAL);
	/* Payload too short. */
	CU_ASSERT(feat(&r, r.dfd[0], F_GET | F_MIGRATION, &v, 4) == -EINVAL);
	CU_ASSERT(feat(&r, r.dfd[0], F_SET | F_LOG_START, &v, 8) == -EINVAL);
	/* Unreadable argument. */
	CU_ASSERT(kio(&r, r.dfd[0], DEVICE_FEATURE, NULL) == -EFAULT);
	/* Features ksim does not model, and unknown indexes. */
	CU_ASSERT(feat(&r, r.dfd[0], F_PROBE | F_GET, NULL, 0) == -ENOTTY);
	CU_ASSERT(feat(&r, r.dfd[0], F_PROBE | F_GET | 10u, NULL, 0) ==
		  -ENOTTY);
	CU_ASSERT(feat(&r, r.dfd[0], F_PROBE | F_GET | 0x1234u, NULL, 0) ==
		  -ENOTTY);
	/* A device without the ops: ENOTTY, PROBE included. */
	CU_ASSERT(feat(&r, r.dfd[plain], F_GET | F_MIGRATION, &v, 8) ==
		  -ENOTTY);
	CU_ASSERT(feat(&r, r.dfd[plain], F_PROBE | F_GET | F_MIG_STATE, NULL,
		       0) == -ENOTTY);
	CU_ASSERT(feat(&r, r.dfd[plain], F_GET | F_DATA_SIZE, &v, 8) ==
		  -ENOTTY);
	CU_ASSERT(feat(&r, r.dfd[plain], F_PROBE | F_SET | F_LOG_START, NULL,
		       0) == -ENOTTY);
	CU_ASSERT(log_stop(&r, r.dfd[plain]) == -ENOTTY);
	CU_ASSERT(feat(&r, r.dfd[plain], F_PROBE | F_GET | F_LOG_REPORT,
		       NULL, 0) == -ENOTTY);
	/* The core's checks come before the missing ops. */
	CU_ASSERT(feat(&r, r.dfd[plain], F_GET | F_SET | F_MIGRATION, &v,
		       8) == -EINVAL);
	rig_free(&r);
}

static void test_migration_flags(void)
{
	struct ksim_feature_params p2p = { .migration = true,
					   .mig_flags = MIG_P2P };
	struct ksim_feature_params none = { .migration = true };
	struct rig r;
	uint64_t v = 0;

	rig_new(&r);
	rig_dev(&r, "all", &all_flags);
	rig_dev(&r, "p2p", &p2p);
	rig_dev(&r, "stopcopy", &none);
	v = 0;
	CU_ASSERT(feat(&r, r.dfd[0], F_GET | F_MIGRATION, &v, 8) == 0);
	CU_ASSERT(v == (MIG_STOP_COPY | MIG_P2P | MIG_PRE_COPY));
	CU_ASSERT(feat(&r, r.dfd[1], F_GET | F_MIGRATION, &v, 8) == 0);
	CU_ASSERT(v == (MIG_STOP_COPY | MIG_P2P));
	CU_ASSERT(feat(&r, r.dfd[2], F_GET | F_MIGRATION, &v, 8) == 0);
	CU_ASSERT(v == MIG_STOP_COPY);
	/* Every device starts RUNNING; GET says so with data_fd -1. */
	CU_ASSERT(mig_get(&r, r.dfd[0]) == ST_RUNNING);
	CU_ASSERT(ksim_device_mig_state(r.dev[2]) == ST_RUNNING);
	rig_free(&r);
}

/* ------------------------------------------------------------------ */
/* The FSM                                                             */

static bool supported(uint32_t flags, int s)
{
	switch (s) {
	case ST_STOP:
	case ST_RUNNING:
	case ST_STOP_COPY:
	case ST_RESUMING:
		return true;
	case ST_RUNNING_P2P:
		return flags & MIG_P2P;
	case ST_PRE_COPY:
		return flags & MIG_PRE_COPY;
	case ST_PRE_COPY_P2P:
		return (flags & MIG_P2P) && (flags & MIG_PRE_COPY);
	default:
		return false;
	}
}

static bool saving(int s)
{
	return s == ST_PRE_COPY || s == ST_PRE_COPY_P2P || s == ST_STOP_COPY;
}

/* The arcs the hook saw. */
struct arcs {
	int n;
	int from[64];
	int to[64];
	const struct ksim_device *dev[64];
};

static void arc_hook(void *opaque, const struct ksim_device *d, int from,
		     int to)
{
	struct arcs *a = opaque;

	if (a->n < 64) {
		a->dev[a->n] = d;
		a->from[a->n] = from;
		a->to[a->n] = to;
		a->n++;
	}
}

/* A valid STOP_COPY image of a device of state_size bytes (seed 99). */
static int64_t donor_image(uint32_t state_size, uint8_t **img)
{
	struct ksim_feature_params fp = { .migration = true,
					  .state_size = state_size,
					  .state_seed = 99 };
	struct rig r;
	int64_t len;
	int fd;

	rig_new(&r);
	rig_dev(&r, "donor", &fp);
	CU_ASSERT_FATAL(mig_set(&r, r.dfd[0], ST_STOP_COPY, &fd) == 0);
	CU_ASSERT_FATAL(fd >= 0);
	len = read_all(&r, fd, 4096, img);
	CU_ASSERT_FATAL(len > 0);
	rig_free(&r);
	return len;
}

/* Puts device i into `state` from RUNNING; returns the data fd or -1. */
static int reach(struct rig *r, int i, int state, const uint8_t *img,
		 size_t img_len)
{
	int fd = -1;

	CU_ASSERT_FATAL(mig_set(r, r->dfd[i], (uint32_t)state, &fd) == 0);
	if (state == ST_RESUMING) {
		CU_ASSERT_FATAL(fd >= 0);
		CU_ASSERT_FATAL(write_all(r, fd, img, img_len, 1000) == 0);
	}
	return fd;
}

/*
 * Every pair of states (and two invalid targets) for every set of flags:
 * the result, the state afterwards, whether a data fd came back, what
 * happened to the fd of the state left.
 */
static void test_fsm_every_pair(void)
{
	static const uint32_t flag_sets[] = {
		0, MIG_P2P, MIG_PRE_COPY, MIG_P2P | MIG_PRE_COPY,
	};
	uint8_t *img;
	int64_t img_len = donor_image(8 * KiB, &img);
	size_t fi;
	int before = vmig_test_count_fds();

	for (fi = 0; fi < 4; fi++) {
		struct ksim_feature_params fp = {
			.migration = true,
			.mig_flags = flag_sets[fi],
			.state_size = 8 * KiB,
		};
		struct rig r;
		int from, to;

		rig_new(&r);
		rig_dev(&r, "d", &fp);
		for (from = ST_STOP; from < ST_NR; from++) {
			if (!supported(flag_sets[fi], from))
				continue;
			for (to = 0; to <= ST_NR; to++) {
				bool ok = to < ST_NR && to != ST_ERROR &&
					  supported(flag_sets[fi], to) &&
					  !(from == ST_STOP_COPY &&
					    (to == ST_PRE_COPY ||
					     to == ST_PRE_COPY_P2P));
				bool opens = ok && to != from &&
					     (to == ST_RESUMING ||
					      (saving(to) && !saving(from)));
				int old = reach(&r, 0, from, img,
						(size_t)img_len);
				int fd = -9, ret;
				uint8_t c;

				ret = mig_set(&r, r.dfd[0], (uint32_t)to, &fd);
				CU_ASSERT(ret == (ok ? 0 : -EINVAL));
				CU_ASSERT(mig_get(&r, r.dfd[0]) ==
					  (ok ? to : from));
				CU_ASSERT((fd >= 0) == opens);
				if (!opens)
					CU_ASSERT(fd == -1);
				if (old >= 0 && saving(from)) {
					int64_t n = kread(&r, old, &c, 1);

					/* Kept within the saving group. */
					CU_ASSERT((n == -ENODEV) ==
						  (ok && !saving(to)));
				}
				if (old >= 0 && from == ST_RESUMING)
					CU_ASSERT((kwrite(&r, old, &c, 1) ==
						   -ENODEV) ==
						  (ok && to != from));
				if (fd >= 0)
					CU_ASSERT(kclose(&r, fd) == 0);
				if (old >= 0)
					CU_ASSERT(kclose(&r, old) == 0);
				/* RESET returns it to RUNNING. */
				CU_ASSERT(kio(&r, r.dfd[0], VFIO_DEVICE_RESET,
					      NULL) == 0);
				CU_ASSERT(mig_get(&r, r.dfd[0]) ==
					  ST_RUNNING);
			}
		}
		rig_free(&r);
	}
	free(img);
	CU_ASSERT(vmig_test_count_fds() == before);
}

/* Paths the kernel documents (vfio_main.c) for a device with all flags. */
static void test_fsm_paths(void)
{
	static const struct {
		int from, to;
		int path[6]; /* states after from, ending with to */
	} cases[] = {
		{ ST_RUNNING, ST_STOP_COPY,
		  { ST_RUNNING_P2P, ST_STOP, ST_STOP_COPY } },
		{ ST_PRE_COPY, ST_STOP_COPY,
		  { ST_PRE_COPY_P2P, ST_STOP_COPY } },
		{ ST_PRE_COPY, ST_STOP,
		  { ST_RUNNING, ST_RUNNING_P2P, ST_STOP } },
		{ ST_PRE_COPY_P2P, ST_RUNNING, { ST_RUNNING_P2P, ST_RUNNING } },
		{ ST_STOP, ST_PRE_COPY,
		  { ST_RUNNING_P2P, ST_RUNNING, ST_PRE_COPY } },
		{ ST_RUNNING, ST_PRE_COPY_P2P,
		  { ST_RUNNING_P2P, ST_PRE_COPY_P2P } },
		{ ST_STOP_COPY, ST_RUNNING,
		  { ST_STOP, ST_RUNNING_P2P, ST_RUNNING } },
	};
	struct ksim_feature_params nop2p = { .migration = true,
					     .mig_flags = MIG_PRE_COPY,
					     .state_size = 8 * KiB };
	struct arcs a;
	struct rig r;
	size_t i;
	int j, fd, old;

	rig_new(&r);
	rig_dev(&r, "all", &all_flags);
	rig_dev(&r, "nop2p", &nop2p);
	ksim_feature_set_arc_hook(r.k, arc_hook, &a);
	for (i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		old = reach(&r, 0, cases[i].from, NULL, 0);
		memset(&a, 0, sizeof(a));
		CU_ASSERT(mig_set(&r, r.dfd[0], (uint32_t)cases[i].to, &fd) ==
			  0);
		for (j = 0; cases[i].path[j]; j++) {
			CU_ASSERT(a.to[j] == cases[i].path[j]);
			CU_ASSERT(a.from[j] ==
				  (j ? cases[i].path[j - 1] : cases[i].from));
		}
		CU_ASSERT(a.n == j);
		if (fd >= 0)
			kclose(&r, fd);
		if (old >= 0)
			kclose(&r, old);
		kio(&r, r.dfd[0], VFIO_DEVICE_RESET, NULL);
	}
	/* Without P2P: RUNNING -> STOP, PRE_COPY -> STOP_COPY are one arc. */
	memset(&a, 0, sizeof(a));
	CU_ASSERT(mig_set(&r, r.dfd[1], ST_STOP, NULL) == 0);
	CU_ASSERT(a.n == 1 && a.from[0] == ST_RUNNING && a.to[0] == ST_STOP);
	kio(&r, r.dfd[1], VFIO_DEVICE_RESET, NULL);
	old = reach(&r, 1, ST_PRE_COPY, NULL, 0);
	memset(&a, 0, sizeof(a));
	CU_ASSERT(mig_set(&r, r.dfd[1], ST_STOP_COPY, &fd) == 0);
	CU_ASSERT(fd == -1);
	CU_ASSERT(a.n == 1 && a.to[0] == ST_STOP_COPY);
	kclose(&r, old);
	ksim_feature_set_arc_hook(r.k, NULL, NULL);
	rig_free(&r);
}

/* ERROR: not a target, entered by a failing arc, left by RESET only. */
static void test_fsm_error(void)
{
	struct ksim_feature_params pds = all_flags;
	struct rig r;
	int fd;

	pds.log = KSIM_LOG_PDS;
	rig_new(&r);
	rig_dev(&r, "mlx5", &all_flags);
	rig_dev(&r, "pds", &pds);
	CU_ASSERT(mig_set(&r, r.dfd[0], ST_ERROR, &fd) == -EINVAL);
	CU_ASSERT(fd == -1);
	CU_ASSERT(mig_set(&r, r.dfd[0], 8, NULL) == -EINVAL);
	CU_ASSERT(mig_set(&r, r.dfd[0], 0xffffffffu, NULL) == -EINVAL);
	CU_ASSERT(mig_get(&r, r.dfd[0]) == ST_RUNNING);

	/* A failing arc leaves the device where it was... */
	ksim_device_fail_arc(r.dev[0], ST_RUNNING_P2P, ST_STOP, EIO, false);
	CU_ASSERT(mig_set(&r, r.dfd[0], ST_STOP_COPY, &fd) == -EIO);
	CU_ASSERT(fd == -1);
	CU_ASSERT(mig_get(&r, r.dfd[0]) == ST_RUNNING_P2P);
	/* ...once: the next try goes through. */
	CU_ASSERT(mig_set(&r, r.dfd[0], ST_STOP, NULL) == 0);

	/* ...or in ERROR, when the driver could not recover. */
	ksim_device_fail_arc(r.dev[0], KSIM_MIG_ANY, KSIM_MIG_ANY, EIO, true);
	CU_ASSERT(mig_set(&r, r.dfd[0], ST_RUNNING, NULL) == -EIO);
	CU_ASSERT(mig_get(&r, r.dfd[0]) == ST_ERROR);
	/* From ERROR the FSM refuses (mlx5: EINVAL), except staying. */
	CU_ASSERT(mig_set(&r, r.dfd[0], ST_RUNNING, NULL) == -EINVAL);
	CU_ASSERT(mig_set(&r, r.dfd[0], ST_ERROR, NULL) == 0);
	CU_ASSERT(kio(&r, r.dfd[0], VFIO_DEVICE_RESET, NULL) == 0);
	CU_ASSERT(mig_get(&r, r.dfd[0]) == ST_RUNNING);

	/* pds answers EIO for anything while in ERROR. */
	ksim_device_fail_arc(r.dev[1], ST_RUNNING, KSIM_MIG_ANY, ENOMEM, true);
	CU_ASSERT(mig_set(&r, r.dfd[1], ST_STOP, NULL) == -EIO);
	CU_ASSERT(mig_get(&r, r.dfd[1]) == ST_ERROR);
	CU_ASSERT(mig_set(&r, r.dfd[1], ST_RUNNING, NULL) == -EIO);
	CU_ASSERT(mig_set(&r, r.dfd[1], ST_ERROR, NULL) == -EIO);
	CU_ASSERT(kio(&r, r.dfd[1], VFIO_DEVICE_RESET, NULL) == 0);
	CU_ASSERT(mig_get(&r, r.dfd[1]) == ST_RUNNING);
	rig_free(&r);
}

/* ------------------------------------------------------------------ */
/* Data sessions                                                       */

static void test_stop_copy_restore(void)
{
	struct ksim_feature_params fp = { .migration = true,
					  .state_size = 256 * KiB,
					  .state_seed = 1 };
	struct ksim_feature_params fq = fp;
	uint8_t *img, c;
	int64_t len, est;
	struct rig r;
	int fd, before = vmig_test_count_fds();
	uint64_t dig;

	fq.state_seed = 2;
	rig_new(&r);
	rig_dev(&r, "src", &fp);
	rig_dev(&r, "dst", &fq);
	rig_map(&r, 0, 64);
	/* The state follows the device's activity. */
	dig = ksim_device_state_digest(r.dev[0]);
	CU_ASSERT(ksim_dma_write(r.dev[0], 5 * PG, NULL, PG) == 0);
	CU_ASSERT(ksim_device_state_digest(r.dev[0]) != dig);
	CU_ASSERT(ksim_device_state_run(r.dev[0], 10) == 10);
	CU_ASSERT(ksim_device_state_digest(r.dev[0]) !=
		  ksim_device_state_digest(r.dev[1]));

	CU_ASSERT(mig_set(&r, r.dfd[0], ST_STOP, NULL) == 0);
	/* A stopped device does not change. */
	dig = ksim_device_state_digest(r.dev[0]);
	CU_ASSERT(ksim_device_state_run(r.dev[0], 10) == 0);
	CU_ASSERT(ksim_dma_write(r.dev[0], 6 * PG, NULL, PG) == 0);
	CU_ASSERT(ksim_device_state_digest(r.dev[0]) == dig);
	est = data_size(&r, r.dfd[0]);
	CU_ASSERT(mig_set(&r, r.dfd[0], ST_STOP_COPY, &fd) == 0);
	CU_ASSERT_FATAL(fd >= 0);
	CU_ASSERT(fcntl(fd, F_GETFD) & FD_CLOEXEC);
	/* Bigger than a pipe: the reader never deadlocks. */
	len = read_all(&r, fd, 1000, &img);
	CU_ASSERT_FATAL(len > 256 * (int64_t)KiB);
	CU_ASSERT(len == est);
	/* The end stays the end. */
	CU_ASSERT(kread(&r, fd, &c, 1) == 0);
	CU_ASSERT(data_size(&r, r.dfd[0]) == 0);
	CU_ASSERT(mig_set(&r, r.dfd[0], ST_STOP, NULL) == 0);
	CU_ASSERT(kread(&r, fd, &c, 1) == -ENODEV);
	CU_ASSERT(kclose(&r, fd) == 0);

	CU_ASSERT(mig_set(&r, r.dfd[1], ST_RESUMING, &fd) == 0);
	CU_ASSERT_FATAL(fd >= 0);
	/* A resuming fd is written, never read: opened O_WRONLY. */
	CU_ASSERT(kread(&r, fd, &c, 1) == -EBADF);
	CU_ASSERT(kio(&r, fd, PRECOPY_INFO, NULL) == -ENOTTY);
	CU_ASSERT(write_all(&r, fd, img, (size_t)len, 777) == 0);
	CU_ASSERT(mig_set(&r, r.dfd[1], ST_RUNNING, NULL) == 0);
	CU_ASSERT(ksim_device_state_digest(r.dev[1]) == dig);
	CU_ASSERT(kwrite(&r, fd, img, 16) == -ENODEV);
	CU_ASSERT(kclose(&r, fd) == 0);
	free(img);
	rig_free(&r);
	CU_ASSERT(vmig_test_count_fds() == before);
}

/*
 * A device's DMA engine runs only in the running migration states: in
 * STOP, STOP_COPY and RESUMING a device issues no DMA.
 */
static void test_dma_only_while_running(void)
{
	struct ksim_feature_params fp = { .migration = true,
					  .mig_flags = VFIO_MIGRATION_P2P };
	struct ksim_device_params dp = {
		.name = "dma",
		.kind = KSIM_DEV_PCI,
		.group = 30,
		.feature = fp,
		.dma = { .pattern = KSIM_DMA_RANDOM, .writes_per_step = 8,
			 .seed = 5 },
	};
	struct ksim_device *d;
	struct rig r;
	int gfd, dfd;

	rig_new(&r);
	CU_ASSERT_FATAL(ksim_device_add(r.k, &dp, &d) == 0);
	gfd = r.h->open(r.h->kctx, "/dev/vfio/30", O_RDWR);
	CU_ASSERT_FATAL(gfd >= 0);
	CU_ASSERT_FATAL(kio(&r, gfd, VFIO_GROUP_SET_CONTAINER, &r.cfd) == 0);
	CU_ASSERT_FATAL(kio(&r, r.cfd, VFIO_SET_IOMMU,
			    (void *)(uintptr_t)VFIO_TYPE1v2_IOMMU) == 0);
	dfd = kio(&r, gfd, VFIO_GROUP_GET_DEVICE_FD, (void *)"dma");
	CU_ASSERT_FATAL(dfd >= 0);
	rig_map(&r, 0, 64);

	CU_ASSERT_EQUAL(ksim_step(r.k), 8);
	CU_ASSERT(mig_set(&r, dfd, ST_RUNNING_P2P, NULL) == 0);
	CU_ASSERT_EQUAL(ksim_step(r.k), 8);
	CU_ASSERT(mig_set(&r, dfd, ST_STOP, NULL) == 0);
	CU_ASSERT_EQUAL(ksim_step(r.k), 0);
	CU_ASSERT(mig_set(&r, dfd, ST_RUNNING, NULL) == 0);
	CU_ASSERT_EQUAL(ksim_step(r.k), 8);
	rig_free(&r);
}

/* A data fd polls for real: readable with data, hung up at the end. */
static void test_data_fd_poll(void)
{
	struct ksim_feature_params fp = all_flags;
	struct pollfd pfd;
	struct rig r;
	uint8_t *img;
	int fd;

	rig_new(&r);
	rig_dev(&r, "d", &fp);
	CU_ASSERT(mig_set(&r, r.dfd[0], ST_PRE_COPY, &fd) == 0);
	pfd.fd = fd;
	pfd.events = POLLIN;
	CU_ASSERT(r.h->poll(r.h->kctx, &pfd, 1, 0) == 1);
	CU_ASSERT(pfd.revents & POLLIN);
	/* Drain to the temporary end: nothing to poll for. */
	CU_ASSERT(read_all(&r, fd, 4096, &img) == -ENOMSG);
	CU_ASSERT(r.h->poll(r.h->kctx, &pfd, 1, 0) == 0);
	/* The device works: there is more. */
	CU_ASSERT(ksim_device_state_run(r.dev[0], 1) == 1);
	CU_ASSERT(r.h->poll(r.h->kctx, &pfd, 1, 0) == 1);
	CU_ASSERT(mig_set(&r, r.dfd[0], ST_STOP_COPY, NULL) == 0);
	CU_ASSERT(read_all(&r, fd, 4096, &img) > 0);
	free(img);
	CU_ASSERT(r.h->poll(r.h->kctx, &pfd, 1, 0) == 1);
	CU_ASSERT(pfd.revents & POLLHUP);
	kclose(&r, fd);
	rig_free(&r);
}

static void test_bad_images(void)
{
	struct ksim_feature_params small = { .migration = true,
					     .state_size = 4 * KiB };
	struct ksim_feature_params fp = { .migration = true,
					  .state_size = 8 * KiB };
	uint8_t *img, *bad;
	int64_t len = donor_image(8 * KiB, &img);
	uint64_t dig, want;
	struct rig r;
	int fd;

	bad = malloc((size_t)len);
	CU_ASSERT_FATAL(bad != NULL);
	rig_new(&r);
	rig_dev(&r, "d", &fp);
	rig_dev(&r, "small", &small);
	dig = ksim_device_state_digest(r.dev[0]);

	/* A corrupted chunk: accepted as written, refused at the end. */
	memcpy(bad, img, (size_t)len);
	bad[len - 100] ^= 0x40;
	CU_ASSERT(mig_set(&r, r.dfd[0], ST_RESUMING, &fd) == 0);
	CU_ASSERT(write_all(&r, fd, bad, (size_t)len, 4096) == 0);
	CU_ASSERT(mig_set(&r, r.dfd[0], ST_STOP, NULL) == -EIO);
	CU_ASSERT(mig_get(&r, r.dfd[0]) == ST_RESUMING);
	CU_ASSERT(ksim_device_state_digest(r.dev[0]) == dig);
	kclose(&r, fd);
	kio(&r, r.dfd[0], VFIO_DEVICE_RESET, NULL);

	/* Truncated: EINVAL; the rest written later completes it. */
	CU_ASSERT(mig_set(&r, r.dfd[0], ST_RESUMING, &fd) == 0);
	CU_ASSERT(write_all(&r, fd, img, (size_t)len - 30, 4096) == 0);
	CU_ASSERT(mig_set(&r, r.dfd[0], ST_RUNNING, NULL) == -EINVAL);
	CU_ASSERT(mig_get(&r, r.dfd[0]) == ST_RESUMING);
	CU_ASSERT(write_all(&r, fd, img + len - 30, 30, 4096) == 0);
	CU_ASSERT(mig_set(&r, r.dfd[0], ST_RUNNING, NULL) == 0);
	/* The end record carries the digest of the state it describes. */
	memcpy(&want, img + len - 16, 8);
	CU_ASSERT(ksim_device_state_digest(r.dev[0]) == want);
	CU_ASSERT(want != dig);
	kclose(&r, fd);

	/* A wrong header: the write fails, and every write after it. */
	memcpy(bad, img, (size_t)len);
	bad[16] ^= 1; /* the magic */
	CU_ASSERT(mig_set(&r, r.dfd[0], ST_RESUMING, &fd) == 0);
	CU_ASSERT(kwrite(&r, fd, bad, (size_t)len) == -EINVAL);
	CU_ASSERT(kwrite(&r, fd, img, (size_t)len) == -ENODEV);
	CU_ASSERT(mig_set(&r, r.dfd[0], ST_STOP, NULL) == -EINVAL);
	kclose(&r, fd);
	kio(&r, r.dfd[0], VFIO_DEVICE_RESET, NULL);

	/* An unknown record after the header: mlx5's EOPNOTSUPP. */
	memcpy(bad, img, (size_t)len);
	bad[16 + 24] = 0x7f; /* the first chunk record's type */
	CU_ASSERT(mig_set(&r, r.dfd[0], ST_RESUMING, &fd) == 0);
	CU_ASSERT(kwrite(&r, fd, bad, (size_t)len) == -EOPNOTSUPP);
	kclose(&r, fd);
	kio(&r, r.dfd[0], VFIO_DEVICE_RESET, NULL);

	/* Another device's geometry. */
	CU_ASSERT(mig_set(&r, r.dfd[1], ST_RESUMING, &fd) == 0);
	CU_ASSERT(kwrite(&r, fd, img, (size_t)len) == -EINVAL);
	/* An unreadable buffer. */
	kclose(&r, fd);
	kio(&r, r.dfd[1], VFIO_DEVICE_RESET, NULL);
	CU_ASSERT(mig_set(&r, r.dfd[1], ST_RESUMING, &fd) == 0);
	CU_ASSERT(kwrite(&r, fd, (void *)16, 8) == -EFAULT);
	kclose(&r, fd);
	free(bad);
	free(img);
	rig_free(&r);
}

static void test_precopy_info(void)
{
	const uint64_t full = 24 + 16 + 2 * (16 + 4096) + 0;
	uint64_t initial, dirty, left;
	uint8_t buf[8192];
	struct rig r;
	int fd, dst, rfd;
	int64_t n, est;

	rig_new(&r);
	rig_dev(&r, "src", &all_flags);
	dst = rig_dev(&r, "dst", &all_flags);
	CU_ASSERT(mig_set(&r, r.dfd[0], ST_PRE_COPY, &fd) == 0);
	CU_ASSERT_FATAL(fd >= 0);
	CU_ASSERT(precopy(&r, fd, &initial, &dirty) == 0);
	CU_ASSERT(initial == full);
	CU_ASSERT(dirty == 0);
	/* initial_bytes counts down as the image is read. */
	CU_ASSERT(kread(&r, fd, buf, 1000) == 1000);
	CU_ASSERT(precopy(&r, fd, &initial, &dirty) == 0);
	CU_ASSERT(initial == full - 1000);
	/* dirty_bytes grows while the device runs. */
	CU_ASSERT(ksim_device_state_run(r.dev[0], 1) == 1);
	CU_ASSERT(precopy(&r, fd, &initial, &dirty) == 0);
	CU_ASSERT(initial == full - 1000);
	CU_ASSERT(dirty == 0 || dirty == 16 + 4096);
	/* MIG_DATA_SIZE: what is left, and the end record. */
	est = data_size(&r, r.dfd[0]);
	CU_ASSERT(est == (int64_t)(initial + dirty + 32));
	/* Read everything there is: then ENOMSG and both zero. */
	left = 0;
	while ((n = kread(&r, fd, buf, sizeof(buf))) > 0)
		left += (uint64_t)n;
	CU_ASSERT(n == -ENOMSG);
	CU_ASSERT(left >= full - 1000);
	CU_ASSERT(precopy(&r, fd, &initial, &dirty) == 0);
	CU_ASSERT(initial == 0 && dirty == 0);
	CU_ASSERT(kread(&r, fd, buf, sizeof(buf)) == -ENOMSG);
	/* More activity, more data: one chunk record. */
	CU_ASSERT(ksim_device_state_run(r.dev[0], 1) == 1);
	CU_ASSERT(precopy(&r, fd, &initial, &dirty) == 0);
	CU_ASSERT(initial == 0 && dirty == 16 + 4096);
	/* The data fd's other ioctls and bad arguments. */
	CU_ASSERT(kio(&r, fd, VFIO_DEVICE_RESET, NULL) == -ENOTTY);
	CU_ASSERT(kio(&r, fd, PRECOPY_INFO, NULL) == -EFAULT);
	{
		struct precopy_info pi = { .argsz = 23 };

		CU_ASSERT(kio(&r, fd, PRECOPY_INFO, &pi) == -EINVAL);
	}
	/* A saving fd is read, never written: opened O_RDONLY. */
	CU_ASSERT(kwrite(&r, fd, buf, 1) == -EBADF);
	CU_ASSERT(kread(&r, fd, (void *)8, 1) == -EFAULT);
	/* PRE_COPY_P2P: the same fd, still counting; running still dirties. */
	CU_ASSERT(mig_set(&r, r.dfd[0], ST_PRE_COPY_P2P, &rfd) == 0);
	CU_ASSERT(rfd == -1);
	CU_ASSERT(ksim_device_state_run(r.dev[0], 1) == 1);
	CU_ASSERT(precopy(&r, fd, &initial, &dirty) == 0);
	CU_ASSERT(dirty >= 16 + 4096);
	/* STOP_COPY: PRECOPY_INFO is refused; the rest ends with 0. */
	CU_ASSERT(mig_set(&r, r.dfd[0], ST_STOP_COPY, &rfd) == 0);
	CU_ASSERT(rfd == -1);
	CU_ASSERT(precopy(&r, fd, &initial, &dirty) == -EINVAL);
	CU_ASSERT(ksim_device_state_run(r.dev[0], 5) == 0);

	/* The whole stream, PRE_COPY part included, restores the state. */
	{
		uint8_t *all = NULL, *tail;
		int64_t tlen;
		int wfd;

		CU_ASSERT(mig_set(&r, r.dfd[dst], ST_RESUMING, &wfd) == 0);
		/*
		 * What was read before is gone; restore instead from a fresh
		 * STOP_COPY image of the same (now stopped) state.
		 */
		tlen = read_all(&r, fd, 3000, &tail);
		CU_ASSERT(tlen > 0);
		free(tail);
		CU_ASSERT(mig_set(&r, r.dfd[0], ST_STOP, NULL) == 0);
		CU_ASSERT(mig_set(&r, r.dfd[0], ST_STOP_COPY, &rfd) == 0);
		tlen = read_all(&r, rfd, 3000, &all);
		CU_ASSERT_FATAL(tlen > 0);
		CU_ASSERT(write_all(&r, wfd, all, (size_t)tlen, 5000) == 0);
		CU_ASSERT(mig_set(&r, r.dfd[dst], ST_STOP, NULL) == 0);
		CU_ASSERT(ksim_device_state_digest(r.dev[dst]) ==
			  ksim_device_state_digest(r.dev[0]));
		free(all);
		kclose(&r, wfd);
		kclose(&r, rfd);
	}
	kclose(&r, fd);

	/* Leaving PRE_COPY for RUNNING ends the session. */
	CU_ASSERT(mig_set(&r, r.dfd[0], ST_RUNNING, NULL) == 0);
	CU_ASSERT(mig_set(&r, r.dfd[0], ST_PRE_COPY, &fd) == 0);
	CU_ASSERT(mig_set(&r, r.dfd[0], ST_RUNNING, NULL) == 0);
	CU_ASSERT(kread(&r, fd, buf, 1) == -ENODEV);
	CU_ASSERT(precopy(&r, fd, &initial, &dirty) == -EINVAL);
	kclose(&r, fd);
	rig_free(&r);
}

/* Appends n bytes of buf to the growing *stream (*len of *cap used). */
static void append(uint8_t **stream, size_t *len, size_t *cap,
		   const uint8_t *buf, size_t n)
{
	if (*len + n > *cap) {
		*cap = 2 * (*len + n);
		*stream = realloc(*stream, *cap);
		CU_ASSERT_FATAL(*stream != NULL);
	}
	memcpy(*stream + *len, buf, n);
	*len += n;
}

/* A PRE_COPY stream then its STOP_COPY rest restore the final state. */
static void test_precopy_stream_restores(void)
{
	struct ksim_feature_params fp = all_flags;
	uint8_t *stream = NULL, buf[3000];
	size_t len = 0, cap = 0;
	struct rig r;
	int fd, wfd, k;
	int64_t n;

	fp.state_size = 64 * KiB;
	rig_new(&r);
	rig_dev(&r, "src", &fp);
	rig_dev(&r, "dst", &fp);
	CU_ASSERT(mig_set(&r, r.dfd[0], ST_PRE_COPY, &fd) == 0);
	for (k = 0; k < 40; k++) {
		/* The device keeps working between the reads. */
		ksim_device_state_run(r.dev[0], 3);
		n = kread(&r, fd, buf, sizeof(buf));
		if (n == -ENOMSG)
			continue;
		CU_ASSERT_FATAL(n > 0);
		append(&stream, &len, &cap, buf, (size_t)n);
	}
	CU_ASSERT(mig_set(&r, r.dfd[0], ST_STOP_COPY, NULL) == 0);
	while ((n = kread(&r, fd, buf, sizeof(buf))) > 0) {
		append(&stream, &len, &cap, buf, (size_t)n);
	}
	CU_ASSERT(n == 0);
	CU_ASSERT(mig_set(&r, r.dfd[1], ST_RESUMING, &wfd) == 0);
	CU_ASSERT(write_all(&r, wfd, stream, len, 4000) == 0);
	CU_ASSERT(mig_set(&r, r.dfd[1], ST_RUNNING, NULL) == 0);
	CU_ASSERT(ksim_device_state_digest(r.dev[1]) ==
		  ksim_device_state_digest(r.dev[0]));
	free(stream);
	kclose(&r, fd);
	kclose(&r, wfd);
	rig_free(&r);
}

static void test_data_size(void)
{
	struct ksim_feature_params fp = { .migration = true,
					  .state_size = 10 * KiB };
	const int64_t full = 16 + 24 + 3 * (16 + 4096) + 16 + 16;
	uint64_t v = 0;
	struct rig r;
	uint8_t buf[100];
	int fd;

	rig_new(&r);
	rig_dev(&r, "d", &fp);
	/* Any state; the state rounds up to whole 4 KiB chunks. */
	CU_ASSERT(data_size(&r, r.dfd[0]) == full);
	CU_ASSERT(mig_set(&r, r.dfd[0], ST_STOP_COPY, &fd) == 0);
	CU_ASSERT(data_size(&r, r.dfd[0]) == full);
	CU_ASSERT(kread(&r, fd, buf, 100) == 100);
	CU_ASSERT(data_size(&r, r.dfd[0]) == full - 100);
	CU_ASSERT(feat(&r, r.dfd[0], F_SET | F_DATA_SIZE, &v, 8) == -EINVAL);
	CU_ASSERT(feat(&r, r.dfd[0], F_GET | F_DATA_SIZE, &v, 7) == -EINVAL);
	CU_ASSERT(feat(&r, r.dfd[0], F_PROBE | F_GET | F_DATA_SIZE, NULL,
		       0) == 0);
	kclose(&r, fd);
	rig_free(&r);
}

/* Sessions end when the device's last fd closes; the state is reset. */
static void test_close_ends_sessions(void)
{
	struct rig r;
	uint8_t c;
	int fd, dfd2;

	rig_new(&r);
	rig_dev(&r, "d", &all_flags);
	dfd2 = kio(&r, r.gfd[0], VFIO_GROUP_GET_DEVICE_FD, (void *)"d");
	CU_ASSERT_FATAL(dfd2 >= 0);
	CU_ASSERT(mig_set(&r, r.dfd[0], ST_STOP_COPY, &fd) == 0);
	/* Another fd of the device is still open: nothing happens. */
	CU_ASSERT(kclose(&r, r.dfd[0]) == 0);
	CU_ASSERT(mig_get(&r, dfd2) == ST_STOP_COPY);
	CU_ASSERT(kread(&r, fd, &c, 1) == 1);
	CU_ASSERT(kclose(&r, dfd2) == 0);
	CU_ASSERT(kread(&r, fd, &c, 1) == -ENODEV);
	CU_ASSERT(ksim_device_mig_state(r.dev[0]) == ST_RUNNING);
	CU_ASSERT(kclose(&r, fd) == 0);
	rig_free(&r);
}

/*
 * The mtty sample's migration (a device whose DMA logging is the stub):
 * read() returns 0 at the temporary end of PRE_COPY instead of ENOMSG,
 * and the device keeps its state across the last close, where mlx5 and
 * pds reset it to RUNNING.
 */
static void test_mtty_quirks(void)
{
	struct ksim_feature_params mtty = all_flags;
	struct rig r;
	uint8_t buf[8192];
	int64_t n;
	int fd, dfd2, i;

	mtty.log = KSIM_LOG_STUB;
	mtty.state_size = 4096;
	rig_new(&r);
	rig_dev(&r, "mtty", &mtty);
	CU_ASSERT(mig_set(&r, r.dfd[0], ST_PRE_COPY, &fd) == 0);
	CU_ASSERT_FATAL(fd >= 0);
	/* Read the initial image, then the temporary end reads 0. */
	for (i = 0, n = 1; i < 100 && n > 0; i++)
		n = kread(&r, fd, buf, sizeof(buf));
	CU_ASSERT_EQUAL(n, 0);
	CU_ASSERT(mig_set(&r, r.dfd[0], ST_STOP, NULL) == 0);
	CU_ASSERT(kclose(&r, fd) == 0);
	CU_ASSERT(kclose(&r, r.dfd[0]) == 0);
	/* Opened again: still in STOP. */
	dfd2 = kio(&r, r.gfd[0], VFIO_GROUP_GET_DEVICE_FD, (void *)"mtty");
	CU_ASSERT_FATAL(dfd2 >= 0);
	CU_ASSERT(mig_get(&r, dfd2) == ST_STOP);
	CU_ASSERT(ksim_device_mig_state(r.dev[0]) == ST_STOP);
	rig_free(&r);
}

/* ------------------------------------------------------------------ */
/* DMA logging                                                         */

static void test_log_start_errors(void)
{
	struct log_range rg[300];
	struct rig r;
	uint64_t ps;
	int i;

	rig_new(&r);
	rig_dev(&r, "d", &all_flags);
	for (i = 0; i < 300; i++) {
		rg[i].iova = (uint64_t)i * 2 * PG;
		rg[i].length = PG;
	}
	ps = PG;
	CU_ASSERT(log_start(&r, r.dfd[0], rg, 0, &ps) == -EINVAL);
	CU_ASSERT(log_start(&r, r.dfd[0], rg, 257, &ps) == -E2BIG);
	/* 256 is the core's maximum. */
	CU_ASSERT(log_start(&r, r.dfd[0], rg, 256, &ps) == 0);
	/* A second START while active: EINVAL (mlx5, pds). */
	CU_ASSERT(log_start(&r, r.dfd[0], rg, 1, &ps) == -EINVAL);
	CU_ASSERT(log_stop(&r, r.dfd[0]) == 0);
	/* STOP is always 0. */
	CU_ASSERT(log_stop(&r, r.dfd[0]) == 0);

	rg[1].iova = 2 * PG + 512;
	CU_ASSERT(log_start(&r, r.dfd[0], rg, 2, &ps) == -EINVAL);
	rg[1].iova = 2 * PG;
	rg[1].length = 100;
	CU_ASSERT(log_start(&r, r.dfd[0], rg, 2, &ps) == -EINVAL);
	rg[1].length = PG;
	/* page_size 0 refuses any non-zero value. */
	ps = 0;
	CU_ASSERT(log_start(&r, r.dfd[0], rg, 2, &ps) == -EINVAL);
	ps = PG;
	/* Overflow. */
	rg[1].iova = 0xfffffffffffff000ull;
	rg[1].length = PG;
	CU_ASSERT(log_start(&r, r.dfd[0], rg, 2, &ps) == -EOVERFLOW);
	rg[1].length = 0;
	rg[1].iova = 2 * PG;
	/* Overlap, in either order; adjacent is fine. */
	rg[1].iova = 0;
	rg[1].length = 2 * PG;
	CU_ASSERT(log_start(&r, r.dfd[0], rg, 2, &ps) == -EINVAL);
	rg[0].iova = 8 * PG;
	rg[0].length = PG;
	rg[1].iova = 7 * PG;
	rg[1].length = 2 * PG;
	CU_ASSERT(log_start(&r, r.dfd[0], rg, 2, &ps) == -EINVAL);
	rg[1].length = PG;
	CU_ASSERT(log_start(&r, r.dfd[0], rg, 2, &ps) == 0);
	CU_ASSERT(log_stop(&r, r.dfd[0]) == 0);
	/* Unreadable ranges. */
	CU_ASSERT(log_start(&r, r.dfd[0], NULL, 2, &ps) == -EFAULT);
	/* GET is not an operation of START; SET not of REPORT. */
	CU_ASSERT(feat(&r, r.dfd[0], F_GET | F_LOG_START, rg, 24) == -EINVAL);
	CU_ASSERT(feat(&r, r.dfd[0], F_SET | F_LOG_REPORT, rg, 32) ==
		  -EINVAL);
	rig_free(&r);
}

static void test_log_report_errors(void)
{
	struct log_range rg = { 0, 16 * PG };
	uint64_t bm[4] = { 0 }, ps = PG;
	struct rig r;

	rig_new(&r);
	rig_dev(&r, "d", &all_flags);
	/* Not started: EINVAL (mlx5). */
	CU_ASSERT(log_report(&r, r.dfd[0], 0, 16 * PG, PG, bm) == -EINVAL);
	CU_ASSERT(log_start(&r, r.dfd[0], &rg, 1, &ps) == 0);
	CU_ASSERT(log_report(&r, r.dfd[0], 0, 16 * PG, 2048, bm) == -EINVAL);
	CU_ASSERT(log_report(&r, r.dfd[0], 0, 16 * PG, 3 * PG, bm) ==
		  -EINVAL);
	CU_ASSERT(log_report(&r, r.dfd[0], 0, 16 * PG, 0, bm) == -EINVAL);
	CU_ASSERT(log_report(&r, r.dfd[0], 0xfffffffffffff000ull, 2 * PG, PG,
			     bm) == -EOVERFLOW);
	CU_ASSERT(feat(&r, r.dfd[0], F_GET | F_LOG_REPORT, &rg, 16) ==
		  -EINVAL);
	CU_ASSERT(log_report(&r, r.dfd[0], 0, 16 * PG, PG, bm) == 0);
	CU_ASSERT(popcount(bm, 4) == 0);
	rig_free(&r);
}

/* Six ranges with gaps of 1, 7, 2, 86 and 2 pages (in pages). */
static const struct log_range six[] = {
	{ 0 * PG, PG },   { 2 * PG, PG },   { 10 * PG, PG },
	{ 13 * PG, PG },  { 100 * PG, PG }, { 103 * PG, PG },
};

static void check_merge(uint32_t limit, const struct log_range *want,
			int nwant)
{
	struct ksim_feature_params fp = all_flags;
	struct vmig_range got[8];
	uint64_t ps = PG, bm[2] = { 0 };
	struct rig r;
	int n, i;

	fp.log_max_ranges = limit;
	rig_new(&r);
	rig_dev(&r, "d", &fp);
	rig_map(&r, 0, 128);
	/* In reverse order: the device sorts them. */
	{
		struct log_range rev[6];

		for (i = 0; i < 6; i++)
			rev[i] = six[5 - i];
		CU_ASSERT(log_start(&r, r.dfd[0], rev, 6, &ps) == 0);
	}
	n = ksim_device_log_ranges(r.dev[0], got, 8, &ps);
	CU_ASSERT(n == nwant);
	CU_ASSERT(ps == PG);
	for (i = 0; i < n && i < nwant; i++) {
		CU_ASSERT(got[i].iova == want[i].iova);
		CU_ASSERT(got[i].length == want[i].length);
	}
	/* A write in the gap [1, 2) pages and one in [50, 51). */
	CU_ASSERT(ksim_dma_write(r.dev[0], 1 * PG, NULL, PG) == 0);
	CU_ASSERT(ksim_dma_write(r.dev[0], 50 * PG, NULL, PG) == 0);
	CU_ASSERT(ksim_dma_write(r.dev[0], 100 * PG, NULL, 8) == 0);
	CU_ASSERT(log_report(&r, r.dfd[0], 0, 128 * PG, PG, bm) == 0);
	CU_ASSERT(bit(bm, 1) == (limit != 0 && limit <= 4));
	CU_ASSERT(bit(bm, 50) == (limit == 1));
	CU_ASSERT(bit(bm, 100));
	CU_ASSERT(popcount(bm, 2) ==
		  1u + (limit && limit <= 4) + (limit == 1));
	rig_free(&r);
}

static void test_merge_limits(void)
{
	static const struct log_range l4[] = {
		{ 0, 3 * PG }, { 10 * PG, 4 * PG }, { 100 * PG, PG },
		{ 103 * PG, PG },
	};
	static const struct log_range l2[] = {
		{ 0, 14 * PG }, { 100 * PG, 4 * PG },
	};
	static const struct log_range l1[] = { { 0, 104 * PG } };

	check_merge(256, six, 6);
	check_merge(0, six, 6);
	check_merge(4, l4, 4);
	check_merge(2, l2, 2);
	check_merge(1, l1, 1);
}

static void test_page_sizes(void)
{
	struct ksim_feature_params fp = all_flags;
	struct ksim_feature_params pds = all_flags;
	struct log_range rg = { 0, 64 * PG };
	uint64_t ps, bm[2] = { 0 };
	struct rig r;

	fp.log_min_page_size = 16 * KiB;
	fp.log_max_page_size = 64 * KiB;
	pds.log = KSIM_LOG_PDS;
	rig_new(&r);
	rig_dev(&r, "mlx5", &fp);
	rig_dev(&r, "pds", &pds);
	rig_map(&r, 0, 64);
	/* mlx5 clamps and writes its choice back. */
	ps = PG;
	CU_ASSERT(log_start(&r, r.dfd[0], &rg, 1, &ps) == 0);
	CU_ASSERT(ps == 16 * KiB);
	CU_ASSERT(log_stop(&r, r.dfd[0]) == 0);
	ps = 1 << 20;
	{
		struct log_range rg1m = { 0, 1 << 20 };

		CU_ASSERT(log_start(&r, r.dfd[0], &rg1m, 1, &ps) == 0);
	}
	CU_ASSERT(ps == 64 * KiB);
	CU_ASSERT(log_stop(&r, r.dfd[0]) == 0);
	ps = 32 * KiB;
	CU_ASSERT(log_start(&r, r.dfd[0], &rg, 1, &ps) == 0);
	CU_ASSERT(ps == 32 * KiB);
	CU_ASSERT(log_stop(&r, r.dfd[0]) == 0);
	ps = PG;
	CU_ASSERT(log_start(&r, r.dfd[0], &rg, 1, &ps) == 0);
	CU_ASSERT(ps == 16 * KiB);

	/* A 16 KiB granule reported at 4 KiB: four bits. */
	CU_ASSERT(ksim_dma_write(r.dev[0], 5 * PG, NULL, 16) == 0);
	CU_ASSERT(log_report(&r, r.dfd[0], 0, 64 * PG, PG, bm) == 0);
	CU_ASSERT(bm[0] == 0xf0u && bm[1] == 0);
	/* At 64 KiB: granules OR into one bit. */
	bm[0] = 0;
	CU_ASSERT(ksim_dma_write(r.dev[0], 5 * PG, NULL, 16) == 0);
	CU_ASSERT(ksim_dma_write(r.dev[0], 9 * PG, NULL, 16) == 0);
	CU_ASSERT(log_report(&r, r.dfd[0], 0, 64 * PG, 64 * KiB, bm) == 0);
	CU_ASSERT(bm[0] == 0x1u);
	/* A request not aligned to the granule loses the first granule. */
	bm[0] = 0;
	CU_ASSERT(ksim_dma_write(r.dev[0], 4 * PG, NULL, 16) == 0);
	CU_ASSERT(log_report(&r, r.dfd[0], 5 * PG, 3 * PG, PG, bm) == 0);
	CU_ASSERT(bm[0] == 0);
	CU_ASSERT(log_report(&r, r.dfd[0], 4 * PG, 4 * PG, PG, bm) == 0);
	CU_ASSERT(bm[0] == 0);

	/* pds takes the page size as given, a power of two >= 4 KiB. */
	ps = 8 * KiB;
	CU_ASSERT(log_start(&r, r.dfd[1], &rg, 1, &ps) == 0);
	CU_ASSERT(ps == 8 * KiB);
	CU_ASSERT(log_stop(&r, r.dfd[1]) == 0);
	ps = 12 * KiB;
	{
		struct log_range rg12 = { 0, 48 * KiB };

		CU_ASSERT(log_start(&r, r.dfd[1], &rg12, 1, &ps) == -EINVAL);
	}
	rig_free(&r);
}

static void test_report_semantics(void)
{
	struct log_range rg = { 0, 64 * PG };
	uint64_t ps = PG, bm[2];
	uint8_t raw[16];
	struct rig r;

	rig_new(&r);
	rig_dev(&r, "d", &all_flags);
	rig_map(&r, 0, 64);
	CU_ASSERT(log_start(&r, r.dfd[0], &rg, 1, &ps) == 0);
	/* Writes before START are not logged; after are. */
	CU_ASSERT(ksim_dma_write(r.dev[0], 3 * PG, NULL, 2 * PG) == 0);
	/* Relative to the request's iova. */
	memset(bm, 0, sizeof(bm));
	CU_ASSERT(log_report(&r, r.dfd[0], 2 * PG, 8 * PG, PG, bm) == 0);
	CU_ASSERT(bm[0] == 0x6u);
	/* Cleared by the report. */
	memset(bm, 0, sizeof(bm));
	CU_ASSERT(log_report(&r, r.dfd[0], 0, 64 * PG, PG, bm) == 0);
	CU_ASSERT(bm[0] == 0 && bm[1] == 0);
	/* Bits only set, never cleared; the buffer need not be aligned. */
	CU_ASSERT(ksim_dma_write(r.dev[0], 9 * PG, NULL, 1) == 0);
	memset(raw, 0, sizeof(raw));
	raw[1] = 0x01;
	CU_ASSERT(log_report(&r, r.dfd[0], 0, 16 * PG, PG, raw + 1) == 0);
	CU_ASSERT(raw[1] == 0x01 && raw[2] == 0x02);
	/* An unwritable bitmap: 0, and the bits are lost (iova_bitmap). */
	CU_ASSERT(ksim_dma_write(r.dev[0], 9 * PG, NULL, 1) == 0);
	CU_ASSERT(log_report(&r, r.dfd[0], 0, 16 * PG, PG, (void *)8) == 0);
	memset(bm, 0, sizeof(bm));
	CU_ASSERT(log_report(&r, r.dfd[0], 0, 16 * PG, PG, bm) == 0);
	CU_ASSERT(bm[0] == 0);
	/* Length 0: nothing, no error (mlx5). */
	CU_ASSERT(log_report(&r, r.dfd[0], 0, 0, PG, bm) == 0);
	/* Writes outside the tracked range are not logged. */
	rig_map(&r, 64, 8);
	CU_ASSERT(ksim_dma_write(r.dev[0], 65 * PG, NULL, 1) == 0);
	CU_ASSERT(log_report(&r, r.dfd[0], 64 * PG, 8 * PG, PG, bm) == 0);
	CU_ASSERT(bm[0] == 0);
	/* STOP drops the log; REPORT is then EINVAL. */
	CU_ASSERT(ksim_dma_write(r.dev[0], 1 * PG, NULL, 1) == 0);
	CU_ASSERT(log_stop(&r, r.dfd[0]) == 0);
	CU_ASSERT(log_report(&r, r.dfd[0], 0, 64 * PG, PG, bm) == -EINVAL);
	CU_ASSERT(log_start(&r, r.dfd[0], &rg, 1, &ps) == 0);
	CU_ASSERT(log_report(&r, r.dfd[0], 0, 64 * PG, PG, bm) == 0);
	CU_ASSERT(bm[0] == 0);
	rig_free(&r);
}

static void test_pds_quirks(void)
{
	struct ksim_feature_params fp = all_flags;
	struct log_range rg[2] = { { 0, 8 * PG }, { 16 * PG, 8 * PG } };
	uint64_t ps = PG, bm[1];
	uint8_t *img;
	struct rig r;
	int fd;

	fp.log = KSIM_LOG_PDS;
	rig_new(&r);
	rig_dev(&r, "pds", &fp);
	rig_map(&r, 0, 32);
	CU_ASSERT(log_start(&r, r.dfd[0], rg, 2, &ps) == 0);
	CU_ASSERT(log_start(&r, r.dfd[0], rg, 2, &ps) == -EINVAL);
	CU_ASSERT(ksim_dma_write(r.dev[0], 17 * PG, NULL, 1) == 0);
	/* A request across two regions, or beyond one, or empty: EINVAL. */
	bm[0] = 0;
	CU_ASSERT(log_report(&r, r.dfd[0], 0, 24 * PG, PG, bm) == -EINVAL);
	CU_ASSERT(log_report(&r, r.dfd[0], 16 * PG, 9 * PG, PG, bm) ==
		  -EINVAL);
	CU_ASSERT(log_report(&r, r.dfd[0], 9 * PG, PG, PG, bm) == -EINVAL);
	CU_ASSERT(log_report(&r, r.dfd[0], 16 * PG, 0, PG, bm) == -EINVAL);
	CU_ASSERT(log_report(&r, r.dfd[0], 16 * PG, 8 * PG, PG, bm) == 0);
	CU_ASSERT(bm[0] == 0x2u);

	/* STOP_COPY -> STOP turns logging off. */
	CU_ASSERT(mig_set(&r, r.dfd[0], ST_STOP_COPY, &fd) == 0);
	CU_ASSERT(log_report(&r, r.dfd[0], 0, 8 * PG, PG, bm) == 0);
	CU_ASSERT(read_all(&r, fd, 4096, &img) > 0);
	free(img);
	CU_ASSERT(mig_set(&r, r.dfd[0], ST_STOP, NULL) == 0);
	CU_ASSERT(log_report(&r, r.dfd[0], 0, 8 * PG, PG, bm) == -EINVAL);
	CU_ASSERT(ksim_device_log_ranges(r.dev[0], NULL, 0, NULL) == 0);
	kclose(&r, fd);

	/* So does dropping to ERROR. */
	CU_ASSERT(log_start(&r, r.dfd[0], rg, 2, &ps) == 0);
	ksim_device_fail_arc(r.dev[0], KSIM_MIG_ANY, KSIM_MIG_ANY, EIO, true);
	CU_ASSERT(mig_set(&r, r.dfd[0], ST_RUNNING_P2P, NULL) == -EIO);
	CU_ASSERT(log_report(&r, r.dfd[0], 0, 8 * PG, PG, bm) == -EINVAL);
	CU_ASSERT(kio(&r, r.dfd[0], VFIO_DEVICE_RESET, NULL) == 0);

	/* A reset alone does not. */
	CU_ASSERT(log_start(&r, r.dfd[0], rg, 2, &ps) == 0);
	CU_ASSERT(kio(&r, r.dfd[0], VFIO_DEVICE_RESET, NULL) == 0);
	CU_ASSERT(log_report(&r, r.dfd[0], 0, 8 * PG, PG, bm) == 0);

	/* Merging down to the firmware's limit. */
	CU_ASSERT(log_stop(&r, r.dfd[0]) == 0);
	rig_free(&r);

	fp.log_max_ranges = 1;
	rig_new(&r);
	rig_dev(&r, "pds", &fp);
	rig_map(&r, 0, 32);
	CU_ASSERT(log_start(&r, r.dfd[0], rg, 2, &ps) == 0);
	CU_ASSERT(ksim_dma_write(r.dev[0], 10 * PG, NULL, 1) == 0);
	bm[0] = 0;
	CU_ASSERT(log_report(&r, r.dfd[0], 0, 24 * PG, PG, bm) == 0);
	CU_ASSERT(bm[0] == 1u << 10);
	rig_free(&r);
}

/* Logging ends when the device's last fd closes (mlx5, pds). */
static void test_log_close(void)
{
	static const enum ksim_log_model models[] = { KSIM_LOG_MLX5,
						      KSIM_LOG_PDS };
	struct log_range rg = { 0, 8 * PG };
	uint64_t ps = PG, bm[1] = { 0 };
	size_t i;

	for (i = 0; i < 2; i++) {
		struct ksim_feature_params fp = all_flags;
		struct rig r;
		int dfd2;

		fp.log = models[i];
		rig_new(&r);
		rig_dev(&r, "d", &fp);
		CU_ASSERT(log_start(&r, r.dfd[0], &rg, 1, &ps) == 0);
		/* Not the last fd: logging goes on. */
		dfd2 = kio(&r, r.gfd[0], VFIO_GROUP_GET_DEVICE_FD,
			   (void *)"d");
		CU_ASSERT_FATAL(dfd2 >= 0);
		CU_ASSERT(kclose(&r, dfd2) == 0);
		CU_ASSERT(log_report(&r, r.dfd[0], 0, 8 * PG, PG, bm) == 0);
		CU_ASSERT(kclose(&r, r.dfd[0]) == 0);
		r.dfd[0] = kio(&r, r.gfd[0], VFIO_GROUP_GET_DEVICE_FD,
			       (void *)"d");
		CU_ASSERT_FATAL(r.dfd[0] >= 0);
		CU_ASSERT(log_report(&r, r.dfd[0], 0, 8 * PG, PG, bm) ==
			  -EINVAL);
		CU_ASSERT(log_start(&r, r.dfd[0], &rg, 1, &ps) == 0);
		rig_free(&r);
	}
}

static void test_failing_tracker(void)
{
	struct log_range rg = { 0, 8 * PG };
	uint64_t ps = PG, bm[1] = { 0 };
	struct rig r;

	rig_new(&r);
	rig_dev(&r, "d", &all_flags);
	rig_map(&r, 0, 8);
	CU_ASSERT(log_start(&r, r.dfd[0], &rg, 1, &ps) == 0);
	ksim_device_log_break(r.dev[0], EIO);
	CU_ASSERT(log_report(&r, r.dfd[0], 0, 8 * PG, PG, bm) == -EIO);
	CU_ASSERT(log_report(&r, r.dfd[0], 0, 8 * PG, PG, bm) == -EIO);
	/* Still "active": START says EINVAL until STOP. */
	CU_ASSERT(log_start(&r, r.dfd[0], &rg, 1, &ps) == -EINVAL);
	CU_ASSERT(log_stop(&r, r.dfd[0]) == 0);
	CU_ASSERT(log_start(&r, r.dfd[0], &rg, 1, &ps) == 0);
	CU_ASSERT(ksim_dma_write(r.dev[0], 2 * PG, NULL, 1) == 0);
	CU_ASSERT(log_report(&r, r.dfd[0], 0, 8 * PG, PG, bm) == 0);
	CU_ASSERT(bm[0] == 0x4u);
	/* Detached from its PF: ENOTCONN until it comes back. */
	ksim_device_log_break(r.dev[0], ENOTCONN);
	CU_ASSERT(log_report(&r, r.dfd[0], 0, 8 * PG, PG, bm) == -ENOTCONN);
	CU_ASSERT(log_stop(&r, r.dfd[0]) == 0);
	CU_ASSERT(log_start(&r, r.dfd[0], &rg, 1, &ps) == -ENOTCONN);
	ksim_device_log_break(r.dev[0], 0);
	CU_ASSERT(log_start(&r, r.dfd[0], &rg, 1, &ps) == 0);
	rig_free(&r);
}

static void test_stub(void)
{
	struct ksim_feature_params fp = { .log = KSIM_LOG_STUB };
	struct log_range rg = { 0, 8 * PG };
	uint64_t ps = 8 * KiB, bm[1] = { 0 };
	struct rig r;

	rig_new(&r);
	rig_dev(&r, "mtty", &fp);
	rig_map(&r, 0, 8);
	/* The core's checks still apply. */
	CU_ASSERT(log_start(&r, r.dfd[0], &rg, 0, &ps) == -EINVAL);
	CU_ASSERT(log_start(&r, r.dfd[0], &rg, 1, &ps) == 0);
	CU_ASSERT(ps == 8 * KiB);
	CU_ASSERT(log_start(&r, r.dfd[0], &rg, 1, &ps) == 0);
	CU_ASSERT(ksim_dma_write(r.dev[0], 2 * PG, NULL, 1) == 0);
	CU_ASSERT(log_report(&r, r.dfd[0], 0, 8 * PG, PG, bm) == 0);
	/* The write is invisible. */
	CU_ASSERT(bm[0] == 0);
	CU_ASSERT(log_report(&r, r.dfd[0], 0, 8 * PG, 2048, bm) == -EINVAL);
	CU_ASSERT(log_stop(&r, r.dfd[0]) == 0);
	rig_free(&r);
}

/* Everything ksim opened is closed with it: data fds included. */
static void test_no_fd_leak(void)
{
	int before = vmig_test_count_fds(), fd1, fd2;
	struct rig r;

	rig_new(&r);
	rig_dev(&r, "a", &all_flags);
	rig_dev(&r, "b", &all_flags);
	CU_ASSERT(mig_set(&r, r.dfd[0], ST_PRE_COPY, &fd1) == 0);
	CU_ASSERT(mig_set(&r, r.dfd[1], ST_RESUMING, &fd2) == 0);
	/* Each session is one fd for the caller and one ksim keeps. */
	/* A container, two groups, two devices, two pipes. */
	CU_ASSERT(vmig_test_count_fds() == before + 1 + 2 + 2 + 2 * 2);
	rig_free(&r);
	CU_ASSERT(vmig_test_count_fds() == before);
}

/* ------------------------------------------------------------------ */

static CU_TestInfo core_tests[] = {
	{ "core rules", test_core_rules },
	{ "migration flags", test_migration_flags },
	CU_TEST_INFO_NULL,
};

static CU_TestInfo fsm_tests[] = {
	{ "every pair, every flag set", test_fsm_every_pair },
	{ "documented paths", test_fsm_paths },
	{ "error and reset", test_fsm_error },
	CU_TEST_INFO_NULL,
};

static CU_TestInfo data_tests[] = {
	{ "stop-copy image restored", test_stop_copy_restore },
	{ "data fd polls", test_data_fd_poll },
	{ "DMA only while running", test_dma_only_while_running },
	{ "bad images", test_bad_images },
	{ "precopy info", test_precopy_info },
	{ "precopy stream restores", test_precopy_stream_restores },
	{ "mig data size", test_data_size },
	{ "close ends sessions", test_close_ends_sessions },
	{ "mtty quirks", test_mtty_quirks },
	CU_TEST_INFO_NULL,
};

static CU_TestInfo log_tests[] = {
	{ "start errors", test_log_start_errors },
	{ "report errors", test_log_report_errors },
	{ "merging at device limits", test_merge_limits },
	{ "page sizes", test_page_sizes },
	{ "report semantics", test_report_semantics },
	{ "pds quirks", test_pds_quirks },
	{ "close stops logging", test_log_close },
	{ "failing tracker", test_failing_tracker },
	{ "mtty stub", test_stub },
	CU_TEST_INFO_NULL,
};

static CU_TestInfo leak_tests[] = {
	{ "no fd leak", test_no_fd_leak },
	CU_TEST_INFO_NULL,
};

static CU_SuiteInfo suites[] = {
	VMIG_SUITE("feature core", core_tests),
	VMIG_SUITE("migration fsm", fsm_tests),
	VMIG_SUITE("migration data", data_tests),
	VMIG_SUITE("dma logging", log_tests),
	VMIG_SUITE("fds", leak_tests),
	CU_SUITE_INFO_NULL,
};

VMIG_TEST_MAIN(suites)
