/*
 * config.h: the parsed form of a JSON configuration (docs/config.md), for
 * the files of tool/.
 *
 * config.c turns JSON into these structures and validates everything it
 * can without a kernel: types, ranges, names that must match, overlaps.
 * Whatever it accepts, setup code can apply without re-checking the JSON.
 * Strings are owned by the structure (freed by vmig_config_free).
 */
#ifndef VMIG_TOOL_CONFIG_H
#define VMIG_TOOL_CONFIG_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <vmig/vmig.h>

#include "ksim/ksim.h"
#include "vmig_tool.h"

struct vmig_cfg_policies {
	enum vmig_hotplug_policy hotplug; /* default track */
	uint64_t downtime_limit_ms;  /* default 300 */
	uint64_t bandwidth_limit;    /* bytes per second, 0 = none (default) */
	uint32_t max_iterations;     /* default 30 */
	uint64_t timeout_ms;         /* default 0 = none */
	uint64_t switchover_timeout_ms; /* default 30000; never 0 */
	uint64_t handshake_timeout_ms;  /* default 30000; never 0 */
	uint64_t idle_timeout_ms;       /* default 60000; never 0 */
	enum vmig_timeout_strategy timeout_strategy; /* default cancel */
	enum vmig_tracking_policy tracking; /* default mixed */
	enum vmig_verify_policy verify; /* default audit */
	uint32_t connections;           /* default 1 */
};

enum vmig_cfg_fill {
	VMIG_CFG_FILL_ZERO = 0,   /* fresh anonymous memory */
	VMIG_CFG_FILL_RANDOM = 1, /* pseudo-random bytes, seeded by the gpa */
};

/* What backs a region's memory (the tool maps it). */
enum vmig_cfg_backing {
	VMIG_CFG_BACKING_ANONYMOUS = 0, /* private anonymous, THP advised */
	VMIG_CFG_BACKING_MEMFD = 1,     /* a memfd, shared, THP advised */
	VMIG_CFG_BACKING_HUGETLBFS = 2, /* a hugetlbfs memfd, 2 MiB pages */
};

struct vmig_cfg_region {
	char *name;    /* default "ram<index>" */
	uint64_t gpa;  /* 4 KiB aligned */
	uint64_t size; /* a non-zero multiple of 4 KiB (2 MiB: hugetlbfs) */
	enum vmig_cfg_fill fill; /* the contents the program starts with */
	uint64_t fill_size; /* "random": the bytes filled from the start (0: all) */
	enum vmig_cfg_backing backing; /* default anonymous */
};

enum vmig_cfg_iommu_type {
	VMIG_CFG_IOMMU_TYPE1 = 1,
	VMIG_CFG_IOMMU_IOMMUFD = 2,
};

struct vmig_cfg_pasid {
	uint32_t pasid;
	char *ioas; /* the iommufd IOAS label it translates through */
};

struct vmig_cfg_device {
	char *name;    /* unique */
	uint32_t kind; /* VMIG_DEVICE_VFIO_PCI or VMIG_DEVICE_MDEV */
	char *address; /* sysfs name; default: the name */
	enum vmig_cfg_iommu_type iommu;
	/* type1 */
	int group;        /* required for type1, >= 0 */
	char *container;  /* container label, default "default" */
	/* iommufd */
	char *cdev;       /* required for iommufd: /dev/vfio/devices/vfioN */
	char *ioas;       /* IOAS label, default "default" */
	struct vmig_cfg_pasid *pasids;
	size_t nr_pasids;
};

/*
 * An explicit DMA mapping. `space` names a type1 container label or an
 * iommufd IOAS label (which one is found by matching the devices).
 */
struct vmig_cfg_mapping {
	char *space;
	uint64_t iova;
	uint64_t gpa;
	uint64_t size;
	bool write; /* default true */
};

struct vmig_cfg_sim_device {
	char *name; /* matches a vmig_cfg_device */
	bool pins_pages;
	bool iommu_dirty_tracking; /* the device's IOMMU has dirty bits */
	struct ksim_dma_params dma;
	/* Pages [pin_iova, + pin_pages*4K) pinned at start (MDEV, pins_pages). */
	uint64_t pin_iova;
	uint64_t pin_pages;
	/* VFIO device features: migration v2, DMA logging (ksim_feature.h). */
	struct ksim_feature_params feature;
	/*
	 * Its IOMMU as iommufd sees it (ksim_iommufd.h); dirty_tracking and
	 * the cdev fields are filled in by setup from the other keys.
	 */
	struct ksim_iommufd_device_params iommufd;
};

enum vmig_cfg_kernel_type {
	VMIG_KERNEL_LINUX = 0, /* default */
	VMIG_KERNEL_SIMULATED = 1,
};

struct vmig_cfg_fault {
	char *request_name;    /* as written, for messages */
	unsigned long request; /* ioctl request number */
	int err;               /* positive errno */
	int times;             /* < 0: always */
	uint64_t nth;          /* nonzero: fail the nth kernel call instead */
};

struct vmig_cfg_kernel {
	enum vmig_cfg_kernel_type type;
	uint64_t type1_pgsize; /* simulated: default 4096 */
	bool iommufd_compat;   /* simulated: /dev/vfio/vfio is iommufd's */
	bool pasid_attach;     /* simulated: a newer kernel's PASID attach */
	struct vmig_cfg_sim_device *devices;
	size_t nr_devices;
	struct vmig_cfg_fault *faults;
	size_t nr_faults;
};

struct vmig_cfg_run {
	/* "track": the dirty-tracking run, no migration (default "migrate"). */
	bool track_only;
	uint32_t iterations; /* tracking run: iterations, default 5 */
};

struct vmig_config {
	enum vmig_role role;   /* default source */
	/*
	 * Both ends in one process over a socket pair (role "local", the
	 * default when there is no transport); role is then the source's.
	 */
	bool local;
	char *transport;       /* NULL, or "unix:/path" / "tcp:host:port" */
	char *text;            /* the document as parsed (a local run's mirror) */
	size_t text_len;
	char *base_dir;        /* relative paths are resolved against it */
	char **plugin_paths;   /* resolved against base_dir */
	size_t nr_plugin_paths;
	char **plugins;        /* names or paths to load; NULL = the defaults */
	size_t nr_plugins;
	bool plugins_given;    /* "plugins.load" was present (even empty) */
	char **preference;     /* NULL = the default order */
	size_t nr_preference;
	struct vmig_cfg_policies policies;
	struct vmig_cfg_region *regions;
	size_t nr_regions;
	struct vmig_cfg_device *devices;
	size_t nr_devices;
	/* NULL with nr 0: identity-map every region into every space. */
	struct vmig_cfg_mapping *mappings;
	size_t nr_mappings;
	bool mappings_given;
	char *report;          /* resolved against base_dir; may be NULL */
	struct vmig_cfg_kernel kernel;
	struct vmig_cfg_run run;
};

#endif /* VMIG_TOOL_CONFIG_H */
