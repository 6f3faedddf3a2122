/*
 * ksim.h: the kernel simulator, an in-process test double for the VFIO
 * and iommufd interfaces vmig uses.
 *
 * ksim hands out a struct vmig_host whose kernel operations act on
 * simulated objects: /dev/vfio/vfio (type1 containers), /dev/vfio/N
 * (groups) and the device fds they give, following shared
 * docs/kernel-uapi.md to the errno, pitfalls included. Simulated devices
 * have a DMA engine that writes real guest memory through their IOVA
 * mappings and records every write as ground truth, so that tests can
 * check that no write was lost. Any call can be made to fail.
 *
 * Every fd ksim returns is a real descriptor (of /dev/null), so numbers
 * never collide with the process's own fds; ksim refuses operations on
 * fds it did not create (-EBADF). All entry points take one lock, so a
 * DMA engine may run in another thread.
 *
 * The model is split by interface: ksim.c (fds, devices, DMA engine,
 * ground truth, failure injection), ksim_type1.c (containers and groups);
 * the iommufd and device-feature parts sit beside them.
 */
#ifndef VMIG_KSIM_H
#define VMIG_KSIM_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <vmig/plugin.h>

struct ksim;
struct ksim_device;

/*
 * Each interface part of the simulator has a header of its own for what
 * it adds to the public interface: device parameters and entry points.
 */
#include "ksim_feature.h"
#include "ksim_iommufd.h"

enum ksim_device_kind {
	KSIM_DEV_PCI = 1,  /* an IOMMU-backed vfio-pci device */
	KSIM_DEV_MDEV = 2, /* a mediated device: emulated IOMMU, pins pages */
};

/* How a simulated device's DMA engine writes on each ksim_step(). */
enum ksim_dma_pattern {
	KSIM_DMA_NONE = 0,
	KSIM_DMA_RANDOM = 1,     /* pages chosen uniformly among its mappings */
	KSIM_DMA_SEQUENTIAL = 2, /* a cursor sweeping its mappings */
	KSIM_DMA_HOTSPOT = 3,    /* 90% of writes to 10% of the pages */
};

struct ksim_dma_params {
	enum ksim_dma_pattern pattern;
	uint32_t writes_per_step; /* writes per ksim_step() */
	uint32_t write_size;      /* bytes per write; 0 = 4096 */
	uint64_t seed;
};

struct ksim_device_params {
	const char *name;           /* sysfs name: GET_DEVICE_FD matches it */
	enum ksim_device_kind kind;
	int group;                  /* /dev/vfio/<group>; devices may share */
	bool pins_pages;            /* PCI only: its driver calls
				       vfio_pin_pages (pinned scope) */
	struct ksim_dma_params dma;
	struct ksim_iommufd_device_params iommufd; /* ksim_iommufd.h */
	struct ksim_feature_params feature;        /* ksim_feature.h */
	/*
	 * PCI only: QEMU's edu device (ksim_edu.c): BAR0 and config space
	 * through ksim_device_pread/pwrite, and its DMA engine.
	 */
	bool edu;
};

struct ksim_params {
	/*
	 * The smallest IOMMU page size of type1 containers (the migration
	 * capability's pgsize_bitmap); 0 = 4096.
	 */
	uint64_t type1_pgsize;
	/*
	 * /dev/vfio/vfio is iommufd's compatibility container: no type1
	 * dirty tracking (kernel-uapi.md 1.10).
	 */
	bool iommufd_compat;
};

/* Creates a simulator. p may be NULL. Returns 0 or -ENOMEM. */
int ksim_new(const struct ksim_params *p, struct ksim **out);

/*
 * Destroys a simulator and closes every fd it still has open. The memory
 * that mappings pointed at is the caller's and is left alone.
 */
void ksim_free(struct ksim *k);

/*
 * The host table whose kernel operations are simulated (log and
 * ranges_unknown are NULL). Valid until ksim_free.
 */
const struct vmig_host *ksim_host(struct ksim *k);

/*
 * Adds a device (hot-plug when the guest runs). Returns 0, -EINVAL (no
 * name, unknown kind), -EEXIST (name taken; or an MDEV in a group that
 * holds a PCI device, or the reverse), -ENOMEM.
 */
int ksim_device_add(struct ksim *k, const struct ksim_device_params *p,
		    struct ksim_device **out);

/*
 * Removes a device (hot-unplug). Its fds stay open but fail with -ENODEV;
 * its pinned pages are unpinned. Returns 0 or -ENOENT.
 */
int ksim_device_remove(struct ksim *k, struct ksim_device *d);

/* Finds a device by name, or NULL. */
struct ksim_device *ksim_device_find(struct ksim *k, const char *name);

/* The device's name. */
const char *ksim_device_name(const struct ksim_device *d);

/* ------------------------------------------------------------------ */
/* DMA engine                                                          */

/*
 * The device writes len bytes at iova through its address space: buf, or
 * a pseudo-random pattern when buf is NULL. A PCI device writes through
 * the IOMMU; an MDEV writes the way vfio_dma_rw() does (which type1
 * tracking records). The write is recorded as ground truth. Returns 0,
 * -EFAULT (some byte not mapped writable: nothing is written, the fault
 * is counted), -ENODEV (removed, or not in an address space).
 */
int ksim_dma_write(struct ksim_device *d, uint64_t iova, const void *buf,
		   size_t len);

/*
 * pread and pwrite on a device fd at a vfio-pci region offset (index <<
 * 40): what the host table has no operation for. Only an edu device
 * (ksim_device_params.edu) has regions; others answer -EINVAL, as an
 * offset outside every region does. Returns bytes or a negative errno.
 */
int64_t ksim_device_pread(struct ksim *k, int fd, void *buf, size_t len,
			  uint64_t offset);
int64_t ksim_device_pwrite(struct ksim *k, int fd, const void *buf,
			   size_t len, uint64_t offset);

/*
 * Pins [iova, iova + npages * 4096) as vfio_pin_pages() does (MDEV, or a
 * PCI device with pins_pages: this promotes its group into pinned scope).
 * Pinned pages are reported dirty by type1 on every read while pinned.
 * Returns 0, -EINVAL (a page not mapped, or a PCI device without
 * pins_pages), -ENODEV.
 */
int ksim_pin(struct ksim_device *d, uint64_t iova, uint64_t npages);

/* Unpins pages pinned by ksim_pin. Returns 0 or -EINVAL (not pinned). */
int ksim_unpin(struct ksim_device *d, uint64_t iova, uint64_t npages);

/*
 * Runs every device's DMA pattern once. Writes that fault (nothing mapped)
 * are skipped. Returns the number of writes made.
 */
int64_t ksim_step(struct ksim *k);

/* ------------------------------------------------------------------ */
/* Ground truth                                                        */

/* One recorded DMA write. */
struct ksim_write {
	const struct ksim_device *dev;
	uint64_t seq;  /* 1, 2, ... in order of writing */
	uint64_t iova;
	uint64_t len;
	void *hva;     /* where the bytes landed */
};

/*
 * Calls fn for each write recorded since the last drain, oldest first, and
 * forgets them. Returns the number of writes.
 */
uint64_t ksim_truth_drain(struct ksim *k,
			  void (*fn)(void *opaque, const struct ksim_write *w),
			  void *opaque);

/* DMA writes refused because nothing writable was mapped there. */
uint64_t ksim_faults(const struct ksim *k);

/* ------------------------------------------------------------------ */
/* Failure injection                                                   */

/*
 * The nth kernel call from now (1 = the next one; any host operation
 * counts) fails with -err and has no effect.
 */
void ksim_fail_nth(struct ksim *k, uint64_t nth, int err);

/*
 * Calls of ioctl `request` fail with -err: the next `times` of them, or
 * all of them when times < 0. A later call for the same request replaces
 * this one; times == 0 removes it.
 */
void ksim_fail_request(struct ksim *k, unsigned long request, int err,
		       int times);

/*
 * VFIO_DEVICE_FEATURE calls for feature index `feature` (the low 16 bits
 * of their flags; any device) fail with -err: the next `times` of them,
 * or all when times < 0; times == 0 removes it. One feature at a time.
 */
void ksim_fail_feature(struct ksim *k, uint32_t feature, int err,
		       int times);

/* Removes every injected failure. */
void ksim_fail_clear(struct ksim *k);

/* Number of kernel calls made so far. */
uint64_t ksim_calls(const struct ksim *k);

#endif /* VMIG_KSIM_H */
