/*
 * ksim_internal.h: what the parts of the kernel simulator share.
 *
 * ksim.c owns the simulator itself: the lock, the fd table, the simulated
 * devices and their groups, pinned pages, the DMA engine, the ground truth
 * and failure injection. Each interface is a "part" in a file of its own
 * (ksim_type1.c: /dev/vfio/vfio containers and /dev/vfio/N groups; later
 * iommufd and the device features) that plugs in through three seams:
 *
 *  - the fd table: every fd maps to a struct ksim_obj whose ops (one
 *    struct ksim_obj_ops per type of file) implement ioctl, read, write,
 *    poll, mmap and release for that type;
 *  - struct ksim_ext: a part's hooks (paths it opens, device ioctls it
 *    answers, device hot-plug and unplug), listed in ksim.c's table;
 *  - struct ksim_as_ops: a device's address space, set by whatever the
 *    device is attached to (a type1 container now, an iommufd HWPT or IOAS
 *    later), which translates the device's DMA and records dirty state.
 *
 * Every function here expects the caller to hold k->lock unless it says
 * otherwise; the public entry points in ksim.h take it.
 */
#ifndef VMIG_KSIM_INTERNAL_H
#define VMIG_KSIM_INTERNAL_H

#include <pthread.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "ksim.h"

/*
 * The kernel's ENOIOCTLCMD: "not mine, ask someone else". Parts return
 * KSIM_PASS from a hook for a request or path they do not own; callers of
 * ksim never see it.
 */
#define KSIM_ENOIOCTLCMD 515
#define KSIM_PASS (-KSIM_ENOIOCTLCMD)

/* The CPU page size the simulated kernel runs with (x86-64). */
#define KSIM_PAGE_SIZE 4096ull

/*
 * The simulated user address space. access_ok() on x86-64 only checks that
 * a range ends below TASK_SIZE_MAX; a copy then faults where nothing is
 * mapped. ksim cannot know what the caller mapped, so it treats the range
 * below mmap_min_addr (64 KiB, where Linux never maps anything; NULL lives
 * there) as the only unmapped memory: a copy touching it fails with
 * -EFAULT. Any other pointer is trusted, as the kernel would.
 */
#define KSIM_USER_MIN 0x10000ull
#define KSIM_TASK_SIZE_MAX 0x00007ffffffff000ull

/* Device permissions of a mapping (the kernel's IOMMU_READ/IOMMU_WRITE). */
#define KSIM_PROT_READ 0x1
#define KSIM_PROT_WRITE 0x2

/* ------------------------------------------------------------------ */
/* Objects and the fd table                                            */

enum ksim_obj_type {
	KSIM_OBJ_CONTAINER = 1, /* /dev/vfio/vfio */
	KSIM_OBJ_GROUP = 2,     /* /dev/vfio/N */
	KSIM_OBJ_DEVICE = 3,    /* a VFIO device fd (group or cdev) */
	KSIM_OBJ_IOMMUFD = 4,   /* /dev/iommu (iommufd part) */
	KSIM_OBJ_DATA = 5,      /* a migration data fd (device part) */
};

struct ksim_obj;

/*
 * The file operations of one type of fd. A NULL operation behaves as the
 * kernel's VFS does for a file without it: read and write -EINVAL, mmap
 * -ENODEV, poll "always readable and writable" (DEFAULT_POLLMASK), ioctl
 * -ENOTTY. When the object wraps a real fd (real_io) and read, write or
 * poll is NULL, ksim performs that operation on the real fd.
 */
struct ksim_obj_ops {
	enum ksim_obj_type type;
	int (*ioctl)(struct ksim *k, struct ksim_obj *o, unsigned int cmd,
		     void *arg);
	int64_t (*read)(struct ksim *k, struct ksim_obj *o, void *buf,
			size_t len);
	int64_t (*write)(struct ksim *k, struct ksim_obj *o, const void *buf,
			 size_t len);
	/* Returns the poll events that are ready now. */
	short (*poll)(struct ksim *k, struct ksim_obj *o);
	int (*mmap)(struct ksim *k, struct ksim_obj *o, void *addr, size_t len,
		    int prot, int flags, int64_t offset, void **out);
	/* The fd was closed: drop the object's references. */
	void (*release)(struct ksim *k, struct ksim_obj *o);
};

struct ksim_obj {
	int fd;        /* the real descriptor behind it */
	bool real_io;  /* fd is a pipe end ksim reads and writes for real */
	const struct ksim_obj_ops *ops;
	void *priv;    /* the type's state */
};

/*
 * Puts an object in the fd table. With real_fd < 0 a new descriptor of
 * /dev/null backs it (so numbers are unique process-wide); otherwise
 * real_fd (a pipe end the part created) is adopted and read, written and
 * polled for real. Returns the fd or a negative errno (real_fd is closed
 * on failure).
 */
int ksim_obj_install(struct ksim *k, const struct ksim_obj_ops *ops,
		     void *priv, int real_fd, struct ksim_obj **out);

/* The object behind fd, or NULL when ksim did not create fd. */
struct ksim_obj *ksim_obj_get(struct ksim *k, int fd);

/* ------------------------------------------------------------------ */
/* Devices, groups, device fds                                         */

enum ksim_ext_id {
	KSIM_EXT_TYPE1 = 0,
	KSIM_EXT_IOMMUFD = 1,
	KSIM_EXT_FEATURE = 2,
	KSIM_EXT_NR = 3,
};

struct ksim_container; /* ksim_type1.c */
struct ksim_as_ops;

/* A pinned 4 KiB page and how many times this device pinned it. */
struct ksim_pin {
	uint64_t iova;
	uint64_t count;
};

struct ksim_device {
	struct ksim *k;
	char *name;
	enum ksim_device_kind kind;
	int group_id;
	bool pins_pages;
	bool removed;               /* hot-unplugged: its fds get -ENODEV */
	struct ksim_dma_params dma;
	struct ksim_feature_params feature; /* p->feature: ksim_feature.c */
	struct ksim_iommufd_device_params iommufd; /* ksim_iommufd.c */
	uint64_t rng;               /* splitmix64 state: where it writes */
	uint64_t fill_rng;          /* splitmix64 state: what it writes */
	uint64_t cursor;            /* KSIM_DMA_SEQUENTIAL position */
	struct ksim_group *group;   /* NULL once removed */
	unsigned int open_count;    /* open device fds (vfio open_count) */

	/*
	 * Where its DMA goes: set by what the device is attached to, NULL
	 * when it is attached to nothing.
	 */
	const struct ksim_as_ops *as_ops;
	void *as;

	/* Pages pinned through ksim_pin, sorted by iova. */
	struct ksim_pin *pins;
	size_t nr_pins;
	size_t cap_pins;

	/* Per-device state of each part (freed after its device_free hook). */
	void *ext[KSIM_EXT_NR];
	struct ksim_edu *edu;       /* QEMU's edu model, or NULL */
	struct ksim_device *next;
};

/*
 * A VFIO group (/dev/vfio/<id>): the devices of one IOMMU group. It exists
 * while it has devices; after the last one is unplugged it is "gone" and
 * lives on only while its file is open.
 */
struct ksim_group {
	int id;
	enum ksim_device_kind kind; /* all its devices are of this kind */
	unsigned int nr_devices;    /* devices not unplugged */
	bool gone;
	/*
	 * References to the group's file (the kernel's group->opened_file):
	 * its own fd and one per device opened through it. The group cannot
	 * be opened again until all are gone.
	 */
	unsigned int file_refs;
	bool fd_open;
	/* Device fds pointing at it: the struct outlives them. */
	unsigned int devfile_refs;

	/* type1: the container (type1 or iommufd compat) it is set to. */
	struct ksim_container *container;
	unsigned int container_users; /* 1 + devices opened (container.c) */
	bool t1_attached;     /* attached to the container's type1 IOMMU */
	bool t1_pinned_scope; /* vfio_iommu_group.pinned_page_dirty_scope */

	/* Devices of the group opened as cdevs (blocks the group, EBUSY). */
	unsigned int cdev_open_count;

	/* Per-group state of each part, freed with free(). */
	void *ext[KSIM_EXT_NR];
	struct ksim_group *next;
};

/* The state behind a device fd. */
struct ksim_devfile {
	struct ksim_device *dev;
	struct ksim_group *group; /* opened through this group, or NULL */
	/* Called by ksim.c when the fd is closed, for the opener's part. */
	void (*release)(struct ksim *k, struct ksim_devfile *df);
	/*
	 * Per-fd state of each part (e.g. an iommufd binding), freed with
	 * free() after release.
	 */
	void *ext[KSIM_EXT_NR];
};

/* ksim_edu.c: QEMU's edu device (d->edu). */
struct ksim_edu;
int ksim_edu_init(struct ksim_device *d);
void ksim_edu_free(struct ksim_device *d);
int ksim_edu_region_info(struct ksim_device *d, void *arg);
int64_t ksim_edu_rw(struct ksim *k, struct ksim_device *d, void *buf,
		    size_t len, uint64_t off, bool write);

/* The live group with this id, or NULL. */
struct ksim_group *ksim_group_find(struct ksim *k, int id);

/* Frees g when it is gone (no devices) and nothing holds its file. */
void ksim_group_try_free(struct ksim *k, struct ksim_group *g);

/*
 * Creates a device fd for d (d->open_count is the opener's business).
 * Returns the fd or a negative errno.
 */
int ksim_devfile_open(struct ksim *k, struct ksim_device *d,
		      struct ksim_group *g,
		      void (*release)(struct ksim *k, struct ksim_devfile *df),
		      struct ksim_devfile **out);

/* Attaches d's DMA to an address space (ops NULL: to none). */
void ksim_device_set_as(struct ksim_device *d, const struct ksim_as_ops *ops,
			void *as);

/*
 * d writes len bytes at iova through the address space (ops, as), which
 * need not be its own (a PASID's domain): ksim_dma_write() with the
 * address space given. Only writes through d's own address space reach
 * the parts' dma_written hooks.
 */
int ksim_dma_write_as(struct ksim *k, struct ksim_device *d,
		      const struct ksim_as_ops *ops, void *as, uint64_t iova,
		      const void *buf, uint64_t len);

/* ------------------------------------------------------------------ */
/* Address spaces                                                      */

/*
 * What a device's DMA goes through. The type1 part implements it for its
 * containers; the iommufd part will for HWPTs and IOASes.
 */
struct ksim_as_ops {
	/*
	 * Translates the device's write of [iova, iova + len): the host
	 * address of the piece that starts at iova in *hva and its length
	 * (at most len, within one mapping) in *plen. Returns 0, -EFAULT (not
	 * mapped with the permission the device needs), or another negative
	 * errno the kernel would give (-EBUSY, -ENODEV).
	 */
	int (*translate)(struct ksim *k, void *as, struct ksim_device *d,
			 uint64_t iova, uint64_t len, void **hva,
			 uint64_t *plen);
	/* The device wrote [iova, iova + len): record it where tracked. */
	void (*written)(struct ksim *k, void *as, struct ksim_device *d,
			uint64_t iova, uint64_t len);
	/*
	 * The device pins npages 4 KiB pages at iova (vfio_pin_pages):
	 * checks them and records what pinning does there (dirty bits,
	 * scope). ksim.c keeps the counts afterwards. Returns 0 or a negative
	 * errno; on error nothing changed.
	 */
	int (*pin)(struct ksim *k, void *as, struct ksim_device *d,
		   uint64_t iova, uint64_t npages);
	/* Calls fn for each range the device can write now, by iova. */
	void (*for_each_writable)(struct ksim *k, void *as,
				  struct ksim_device *d,
				  void (*fn)(void *opaque, uint64_t iova,
					     uint64_t len),
				  void *opaque);
};

/*
 * Calls fn(opaque, iova) for each page pinned in [iova, iova + len) by a
 * device attached to as (a page pinned by two devices comes twice).
 */
void ksim_pins_for_each(struct ksim *k, const void *as, uint64_t iova,
			uint64_t len, void (*fn)(void *opaque, uint64_t iova),
			void *opaque);

/*
 * Unpins every page in [iova, iova + len) of the devices attached to as,
 * as their drivers do when the range is unmapped (vfio's dma_unmap
 * callback).
 */
void ksim_pins_drop_range(struct ksim *k, const void *as, uint64_t iova,
			  uint64_t len);

/* Drops all the device's pins. */
void ksim_pins_clear(struct ksim_device *d);

/* ------------------------------------------------------------------ */
/* Parts                                                               */

/*
 * A part of the simulator. Every hook may be NULL. ksim.c lists the parts
 * in its table (ksim_exts[]); a new part adds itself there.
 */
struct ksim_ext {
	const char *name;
	/* Allocates k->ext[id]. Returns 0 or -ENOMEM. */
	int (*init)(struct ksim *k);
	/* Frees k->ext[id], after every fd was closed. */
	void (*fini)(struct ksim *k);
	/* Opens path if it is this part's: the fd, an errno, or KSIM_PASS. */
	int (*open)(struct ksim *k, const char *path, int flags);
	/* An ioctl on a device fd: the result, or KSIM_PASS. */
	int (*device_ioctl)(struct ksim *k, struct ksim_devfile *df,
			    unsigned int cmd, void *arg);
	/*
	 * A device fd is being closed (before its opener's release), e.g.
	 * to tear down DMA logging as drivers do on close.
	 */
	void (*device_closed)(struct ksim *k, struct ksim_devfile *df);
	/*
	 * The device wrote [iova, iova + len) (after the address space's
	 * own written hook): what a device's own DMA log needs to see.
	 */
	void (*dma_written)(struct ksim *k, struct ksim_device *d,
			    uint64_t iova, uint64_t len);
	/*
	 * A device is being added: its group exists and counts it. Returns
	 * 0 or -ENOMEM (then every part's device_free undoes the add).
	 */
	int (*device_added)(struct ksim *k, struct ksim_device *d);
	/*
	 * A device is being unplugged: d->removed is set, its pins are gone
	 * and d->group->nr_devices already counts it out (0: the group is
	 * going away).
	 */
	void (*device_removed)(struct ksim *k, struct ksim_device *d);
	/*
	 * Frees what d->ext[id] holds (at ksim_free, or when the add
	 * failed); ksim frees d->ext[id] itself after it.
	 */
	void (*device_free)(struct ksim *k, struct ksim_device *d);
	/* munmap of a range this part mapped: 0, an errno, or KSIM_PASS. */
	int (*munmap)(struct ksim *k, void *addr, size_t len);
	/*
	 * Whether the device's DMA engine may run now (ksim_step): false
	 * when this part holds it stopped (a migration state in which a
	 * device issues no DMA). NULL: no opinion.
	 */
	bool (*dma_allowed)(struct ksim *k, struct ksim_device *d);
};

extern const struct ksim_ext ksim_ext_type1;
extern const struct ksim_ext ksim_ext_iommufd; /* ksim_iommufd.c */
extern const struct ksim_ext ksim_ext_feature; /* ksim_feature.c */

/* ------------------------------------------------------------------ */
/* The simulator                                                       */

struct ksim_fail_req {
	unsigned long request;
	int err;
	int times; /* < 0: always */
};

struct ksim {
	pthread_mutex_t lock;
	struct ksim_params params;
	uint64_t type1_pgsize; /* params.type1_pgsize, or 4096 */
	struct vmig_host host;

	/* fd -> object; NULL where ksim has nothing. */
	struct ksim_obj **fds;
	size_t nr_fds;

	struct ksim_device *devices; /* live devices, in order of addition */
	struct ksim_device *removed; /* unplugged ones, kept until ksim_free */
	struct ksim_group *groups;   /* groups with devices */
	struct ksim_group *gone_groups; /* without devices, file still open */

	/* Ground truth. */
	struct ksim_write *truth;
	size_t nr_truth;
	size_t cap_truth;
	uint64_t seq;
	uint64_t faults;

	/* Failure injection. */
	uint64_t calls;
	uint64_t fail_at; /* 0: none */
	int fail_err;
	struct ksim_fail_req *fail_reqs;
	size_t nr_fail_reqs;
	size_t cap_fail_reqs;
	/* ksim_fail_feature: one VFIO_DEVICE_FEATURE index that fails. */
	uint32_t fail_feature;
	int fail_feature_err;
	int fail_feature_times; /* < 0: always; 0: none */

	/* Per-simulator state of each part. */
	void *ext[KSIM_EXT_NR];
};

/* ------------------------------------------------------------------ */
/* Helpers                                                             */

/* access_ok(): the range ends inside the user address space. */
bool ksim_access_ok(const void *uptr, uint64_t len);

/* copy_{from,to}_user(): 0, or -EFAULT where nothing can be mapped. */
int ksim_copy_from_user(void *dst, const void *usrc, size_t len);
int ksim_copy_to_user(void *udst, const void *src, size_t len);

/*
 * The head of a VFIO argument that starts with its argsz: the first minsz
 * bytes copied in (0 or -EFAULT), -EINVAL when argsz is below minsz.
 */
int ksim_argsz_in(void *dst, const void *arg, size_t minsz);

/*
 * __ffs(): the index of the lowest set bit; 0 for 0, which is what x86's
 * tzcnt gives once the shift count is reduced modulo 64.
 */
static inline unsigned int ksim_ffs64(uint64_t v)
{
	unsigned int n = 0;

	if (!v)
		return 0;
	while (!(v & 1)) {
		v >>= 1;
		n++;
	}
	return n;
}

/*
 * A user range that pin_user_pages() would refuse: below mmap_min_addr
 * (where nothing is ever mapped) or past TASK_SIZE_MAX.
 */
static inline bool ksim_uva_faults(uint64_t uva, uint64_t len)
{
	return uva < KSIM_USER_MIN || len > KSIM_TASK_SIZE_MAX ||
	       uva > KSIM_TASK_SIZE_MAX - len;
}

/*
 * The simulator's growable arrays: nr elements of size bytes, room for
 * *cap. ksim_array_grow returns the array with room for one more, its
 * capacity doubled (first when it had none) when it was full; NULL when
 * that failed, the array left as it was. ksim_array_open then makes a
 * hole at index i for an insertion that keeps the order.
 */
void *ksim_array_grow(void *base, size_t *cap, size_t nr, size_t size,
		      size_t first);
void ksim_array_open(void *base, size_t nr, size_t i, size_t size);

/*
 * The first index of a sorted array of nr elements of size bytes whose
 * key (key_of the element) is not below key: a binary search.
 */
size_t ksim_lower_bound(const void *base, size_t nr, size_t size,
			uint64_t key, uint64_t (*key_of)(const void *elem));

/* splitmix64: the simulator's only source of pseudo-random numbers. */
uint64_t ksim_rand(uint64_t *state);

/* Bit n of a bitmap of 64-bit words, one bit at a time. */
static inline bool ksim_bit_test(const uint64_t *bm, uint64_t n)
{
	return (bm[n / 64] >> (n % 64)) & 1;
}

static inline void ksim_bit_set(uint64_t *bm, uint64_t n)
{
	bm[n / 64] |= 1ull << (n % 64);
}

static inline void ksim_bit_clear(uint64_t *bm, uint64_t n)
{
	bm[n / 64] &= ~(1ull << (n % 64));
}

#endif /* VMIG_KSIM_INTERNAL_H */
