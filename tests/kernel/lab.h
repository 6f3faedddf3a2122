/*
 * lab.h: what the kernel lab's scenarios share.
 *
 * The lab program (vmig-lab) runs scenarios against a kernel: the real one
 * (vmig_linux_kernel(), inside the QEMU guest that run-lab.sh boots) or the
 * simulator (ksim, built with the devices the guest had). Every kernel
 * call a scenario or a plugin makes goes through a recording host table,
 * which prints one transcript line per call: the operation, the request by
 * name, the result (a value or an errno name; never an fd number or an id
 * the kernel chose) and what the call returned that can be compared (a
 * bitmap as ranges of set bits, sizes, capabilities). run-lab.sh compares
 * the real and the simulated transcript line by line.
 *
 * Output of one scenario:
 *   === BEGIN <name>
 *   #<step> <what happened>       compared between real and simulated
 *   ~ <log message>               shown, not compared
 *   === END <name>
 *   RESULT <name> PASS
 *   RESULT <name> FAIL <reason>
 *
 * A scenario is a function in the table of lab.c, for one boot. It owns
 * every kernel object it creates and closes them before it returns, so the
 * next scenario starts from a clean kernel.
 */
#ifndef VMIG_LAB_H
#define VMIG_LAB_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <vmig/plugin.h>
#include <vmig/vmig.h>

struct ksim;

/* The boots of the lab, each a QEMU machine of its own. */
enum lab_boot {
	LAB_BOOT_MOCK = 1,   /* no vIOMMU: iommufd selftest mock domains */
	LAB_BOOT_VIOMMU = 2, /* Intel vIOMMU, edu on vfio-pci, mtty mdevs */
};

#define LAB_MAX_MDEVS 4

/* One device of the guest, as /init found it. */
struct lab_dev {
	const char *name; /* PCI address or mdev UUID */
	int group;        /* /dev/vfio/<group> */
	const char *cdev; /* /dev/vfio/devices/vfioN, or NULL */
};

/* What the guest had; in sim mode the simulator is built from it. */
struct lab_facts {
	struct lab_dev pci; /* name NULL when the boot has none */
	struct lab_dev mdevs[LAB_MAX_MDEVS];
	unsigned int nr_mdevs;
};

/* What the recorder knows about an fd, to name the requests made on it. */
enum lab_fd_kind {
	LAB_FD_NONE = 0,
	LAB_FD_CONTAINER,
	LAB_FD_GROUP,
	LAB_FD_DEVICE,
	LAB_FD_IOMMUFD,
	LAB_FD_OTHER,
	LAB_FD_SAVE_DATA,   /* a migration data fd of a saving session */
	LAB_FD_RESUME_DATA, /* a migration data fd of a resuming session */
	LAB_FD_MOCK_DEVICE, /* the lab's stand-in for a mock device's cdev */
};

#define LAB_MAX_FDS 1024
#define LAB_MAX_PLUGINS 8
#define LAB_MAX_MOCK_DEVICES 4

/*
 * A selftest mock device has no VFIO cdev, so nothing to issue
 * VFIO_DEVICE_ATTACH_IOMMUFD_PT on; the lab hands a plugin a descriptor
 * of its own (/dev/null, never given to the kernel under test) and the
 * recorder turns an attach on it into what the selftest offers for the
 * same move, IOMMU_TEST_OP_MOCK_DOMAIN_REPLACE (iommufd_device_replace(),
 * as a cdev's attach of a bound device is).
 */
struct lab_mock_device {
	int fd;            /* the stand-in, or -1 */
	int iommufd;       /* where the mock device lives */
	uint32_t stdev_id; /* its selftest object */
};

struct lab_plugin {
	void *dl;
	const struct vmig_plugin *desc;
};

struct lab {
	bool real;
	enum lab_boot boot;
	struct lab_facts facts;
	const char *plugin_dir;

	/* The kernel of the running scenario, and the recorder around it. */
	struct ksim *k;
	const struct vmig_host *kernel;
	struct vmig_host host;
	unsigned char fd_kind[LAB_MAX_FDS];
	/* The id of the last HWPT that IOMMU_HWPT_ALLOC gave (not said). */
	uint32_t last_hwpt_id;
	struct lab_mock_device mock_devices[LAB_MAX_MOCK_DEVICES];

	/* The running scenario. */
	const char *scenario;
	unsigned int step;
	bool failed;
	char reason[256];
	struct lab_plugin plugins[LAB_MAX_PLUGINS];
	unsigned int nr_plugins;

	/*
	 * While quiet (lab_quiet_begin), the transcript's lines are shown,
	 * not compared, and each distinct one is kept for lab_quiet_end.
	 */
	bool quiet;
	char **quiet_lines;
	size_t nr_quiet;
};

/* ------------------------------------------------------------------ */
/* The transcript                                                      */

/* Prints a compared transcript line (the next step). */
__attribute__((format(printf, 2, 3)))
void lab_say(struct lab *lab, const char *fmt, ...);

/*
 * A stretch whose number of calls depends on timing (a whole migration:
 * how many iterations it takes): lab_say lines are shown, not compared,
 * and lab_quiet_end says each distinct one once, sorted, as compared
 * lines "what: <line>". So the kinds of calls and their results are
 * compared, not how many there were. Thread-safe while quiet.
 */
void lab_quiet_begin(struct lab *lab);
void lab_quiet_end(struct lab *lab, const char *what);

/* Prints a line that is shown but not compared. */
__attribute__((format(printf, 2, 3)))
void lab_note(struct lab *lab, const char *fmt, ...);

/*
 * Prints the set bits of an nbits-bit bitmap (bit n is bit n % 64 of word
 * n / 64) as ranges: "what: 0-1023 (1024 set)".
 */
void lab_say_bitmap(struct lab *lab, const char *what, const uint64_t *bm,
		    uint64_t nbits);

/* The set bits of a bitmap in [first, first + n). */
uint64_t lab_bits_count(const uint64_t *bm, uint64_t first, uint64_t n);

/* The name of a negative errno ("-EINVAL"), or the number for others. */
const char *lab_err(int ret, char *buf, size_t len);

/* ------------------------------------------------------------------ */
/* Assertions: each scenario checks what it expects, diff or not.      */

/*
 * Records that the scenario failed (the first reason is kept) and says so
 * in the transcript.
 */
__attribute__((format(printf, 3, 4)))
void lab_fail(struct lab *lab, int line, const char *fmt, ...);

/* Fails the scenario unless cond holds, and goes on. */
#define LAB_EXPECT(lab, cond, ...)                               \
	do {                                                     \
		if (!(cond))                                     \
			lab_fail((lab), __LINE__, __VA_ARGS__);  \
	} while (0)

/* Fails the scenario unless cond holds, and jumps to the label out. */
#define LAB_REQUIRE(lab, cond, ...)                              \
	do {                                                     \
		if (!(cond)) {                                   \
			lab_fail((lab), __LINE__, __VA_ARGS__);  \
			goto out;                                \
		}                                                \
	} while (0)

/* Expects a call's result to be want (0, a value, or a -errno). */
#define LAB_EXPECT_RET(lab, got, want, what)                                 \
	do {                                                                 \
		int _g = (got), _w = (want);                                 \
		char _b1[32], _b2[32];                                       \
		if (_g != _w)                                                \
			lab_fail((lab), __LINE__, "%s: %s, expected %s",     \
				 (what), lab_err(_g, _b1, sizeof(_b1)),      \
				 lab_err(_w, _b2, sizeof(_b2)));             \
	} while (0)

/* ------------------------------------------------------------------ */
/* The kernel, through the recorder                                    */

/* Calls through the recording host table. */
int lab_open(struct lab *lab, const char *path, int flags);
int lab_close(struct lab *lab, int fd);
int lab_ioctl(struct lab *lab, int fd, unsigned long request, void *arg);
int64_t lab_read(struct lab *lab, int fd, void *buf, size_t len);
int64_t lab_write(struct lab *lab, int fd, const void *buf, size_t len);

/*
 * pread and pwrite on a device fd at a vfio-pci region offset, on the real
 * kernel or the simulator (the host table has no such operation). Not
 * recorded: callers say what they did. Bytes or a negative errno.
 */
int64_t lab_pread(struct lab *lab, int fd, void *buf, size_t len,
		  uint64_t offset);
int64_t lab_pwrite(struct lab *lab, int fd, const void *buf, size_t len,
		   uint64_t offset);

/*
 * Loads a plugin (vmig-<name>.so from the plugin directory) for the
 * scenario; it is unloaded when the scenario ends. Returns its
 * descriptor, or NULL (the scenario has then failed).
 */
const struct vmig_plugin *lab_plugin(struct lab *lab, const char *name);

/*
 * Anonymous memory for DMA mappings: len bytes aligned to align, zeroed,
 * or NULL. Freed with lab_mem_free.
 */
void *lab_mem_alloc(size_t len, size_t align);
void lab_mem_free(void *p, size_t len);

/* Names a precision ("ALL_MAPPED"). */
const char *lab_precision(uint32_t precision);

/* Names a VFIO migration state ("PRE_COPY"). */
const char *lab_mig_state(uint32_t state);

/*
 * The stand-in device fd of a mock device (struct lab_mock_device), or a
 * negative errno. Closed with lab_mock_device_close, or when the
 * scenario ends.
 */
int lab_mock_device_open(struct lab *lab, int iommufd, uint32_t stdev_id);
void lab_mock_device_close(struct lab *lab, int fd);

/* ------------------------------------------------------------------ */
/* What scenarios share (lab_common.c)                                 */

/* A plugin instance of a scenario, driven through its operations. */
struct lab_inst {
	const struct vmig_plugin *p;
	void *inst;
};

/*
 * Each says the call and its result in the transcript and returns the
 * operation's result. lab_inst_create loads the plugin (lab_plugin);
 * lab_inst_destroy accepts an instance never created.
 */
int lab_inst_create(struct lab *lab, struct lab_inst *in, const char *name);
void lab_inst_destroy(struct lab *lab, struct lab_inst *in);
/* The probe's reason is shown, not compared; *out gets all of it. */
int lab_inst_probe(struct lab *lab, struct lab_inst *in,
		   const struct vmig_device_desc *d, struct vmig_probe *out);
int lab_inst_status(struct lab *lab, struct lab_inst *in, uint32_t id,
		    uint32_t *precision);
int lab_inst_attach(struct lab *lab, struct lab_inst *in,
		    const struct vmig_device_desc *d);
int lab_inst_detach(struct lab *lab, struct lab_inst *in, uint32_t id);
int lab_inst_start(struct lab *lab, struct lab_inst *in, uint64_t page_size);
int lab_inst_stop(struct lab *lab, struct lab_inst *in);
/*
 * Reads [iova, iova + len) at page_size (flags: VMIG_READ_*) into bm,
 * zeroed first (room for len / page_size bits in whole words); says the
 * bits that came back.
 */
int lab_inst_read(struct lab *lab, struct lab_inst *in, uint32_t iommu_id,
		  uint64_t iova, uint64_t len, uint64_t page_size,
		  uint32_t flags, uint64_t *bm);
/* unmap_prepare of the same range; *flags gets what it returned. */
int lab_inst_unmap_prepare(struct lab *lab, struct lab_inst *in,
			   uint32_t iommu_id, uint64_t iova, uint64_t len,
			   uint64_t page_size, uint64_t *bm, uint32_t *flags);

/* Bytes of a bitmap of n bits: whole 64-bit words. */
uint64_t lab_bitmap_bytes(uint64_t nbits);

/*
 * Opens dev through its group in a container of its own (type1v2):
 * *container, *group and *device get the fds (-1 where it failed).
 * Returns 0 or the first error; lab_vfio_close closes what is open.
 */
int lab_vfio_open(struct lab *lab, const struct lab_dev *dev, int *container,
		  int *group, int *device);
void lab_vfio_close(struct lab *lab, int *container, int *group,
		    int *device);

/*
 * VFIO_DEVICE_FEATURE with up to 32 bytes of payload, copied in and, on
 * success, back out (when out is not NULL).
 */
int lab_feature(struct lab *lab, int devfd, uint32_t flags,
		const void *payload, size_t len, void *out);

/* ------------------------------------------------------------------ */
/* iommufd objects (lab_common.c); none says anything in the transcript */

/* IOMMU_DESTROY of object id. */
int lab_iommufd_destroy(struct lab *lab, int fd, uint32_t id);

/* IOMMU_IOAS_MAP of len bytes at mem, readable and writable, at iova. */
int lab_ioas_map(struct lab *lab, int fd, uint32_t ioas_id, uint64_t iova,
		 void *mem, uint64_t len);

/* IOMMU_HWPT_SET_DIRTY_TRACKING of the HWPT with these flags. */
int lab_hwpt_set_tracking(struct lab *lab, int fd, uint32_t hwpt_id,
			  uint32_t flags);

/*
 * IOMMU_HWPT_GET_DIRTY_BITMAP of one request, raw, into bm (bytes long,
 * zeroed first).
 */
int lab_hwpt_get_dirty(struct lab *lab, int fd, uint32_t hwpt_id,
		       uint32_t flags, uint64_t iova, uint64_t length,
		       uint64_t page_size, uint64_t *bm, size_t bytes);

/* A mock device, as IOMMU_TEST_OP_MOCK_DOMAIN(_FLAGS) made it. */
struct lab_mock {
	uint32_t stdev_id;
	uint32_t idev_id;
	int fd; /* its stand-in, or -1 */
};

/*
 * A mock device on the IOAS (dev_flags 0: MOCK_DOMAIN, else
 * MOCK_DOMAIN_FLAGS), and its stand-in fd; 0 or the first error, with
 * m left empty. lab_mock_free destroys what lab_mock_new made (expecting
 * the destroy to succeed) and accepts an empty one.
 */
int lab_mock_new(struct lab *lab, int fd, uint32_t ioas_id, uint32_t dev_flags,
		 struct lab_mock *m);
void lab_mock_free(struct lab *lab, int fd, struct lab_mock *m);

#endif /* VMIG_LAB_H */
