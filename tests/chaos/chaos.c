/*
 * chaos.c: random migrations with everything happening at once.
 *
 * Each run draws from its seed a guest memory layout (1 to 3 regions, one
 * above 4 GiB when there are several), address spaces (VFIO type1
 * containers, iommufd IOASes behind an Intel IOMMU with 2 MiB IOPTEs
 * where the memory allows, and behind the selftest's mock IOMMU with or
 * without 1 MiB ones; Intel ones at the default page sizes with 2 MiB
 * mappings, so that huge IOPTEs carry them) with their DMA mappings, and
 * a device mix: vfio-pci functions in type1 containers (some whose driver
 * pins pages), mdevs with pinned pages (in type1 containers, beside
 * functions or alone, or behind iommufd),
 * iommufd functions with and without IOMMU dirty tracking, devices with
 * DMA logging of the mlx5, pds or stub model, devices with VFIO
 * migration state (with and without P2P and PRE_COPY), PASID devices
 * (the simulator's newer-kernel PASID attach left on, or turned off
 * once the VMM attached them, so that no dirty source can move them),
 * each with a DMA pattern and rate. Then a local migration with random
 * policies (hot-plug track, degrade or reject; mixed or all-or-nothing
 * tracking) during which events happen at random times, some from the
 * progress callback (the migration's loop), some from a second thread
 * calling the API: hot-plug, unplug (with a last write just before),
 * map (with a write just after), unmap (with a last write just before),
 * unmap of two mappings with a hole between (a last write in each), the
 * vCPU source's reads failing (the guest's vCPUs write memory, logged as
 * KVM would, when the run has them), and the connection cut around the
 * switchover (a relay between the two sessions),
 * injected failures (a read or REPORT failing once, several times or for
 * good, a device's tracker broken, the nth kernel call failing) and
 * their repair.
 *
 * A run is correct when the migration completed, the destination's
 * memory equals the source's page by page, every migrated device's state
 * equals its source's, the ground truth says no written page went
 * unreported, and every event behaved as the API says (a rejected
 * hot-plug fails with EBUSY, a device with migration state cannot leave
 * mid-migration, a degraded device is on the all-dirty fallback); or when
 * an injected failure of a call the migration cannot do without (a device
 * state transition, the nth call) ended it, and the guest runs again on
 * the source with nothing missed; or, when the connection was cut, when
 * exactly one side runs the guest (an unresolved ending settled as the
 * destination says) with the same checks for that side. Anything else is
 * a mismatch, printed
 * with the seed and what differed.
 *
 * The stub DMA-logging model (the mtty sample) validates START and
 * REPORT and never reports a write. Through the uAPI it cannot be told
 * from a device that wrote nothing, so no arbitration can detect it: a
 * device DMA log is trusted like an IOMMU's bits (QEMU trusts it too).
 * A stub device is therefore only correct when something it does not
 * depend on covers its writes. The mix holds stub devices that do no DMA
 * (like the real mtty, which has no DMA engine), and stub devices that do
 * DMA only behind an IOMMU with dirty tracking in mixed mode, with no
 * failure injected that could take the iommufd source away from them:
 * there the arbitration must (and does) prefer the IOMMU's HWPT over the
 * device's own log, and their writes arrive.
 *
 * Usage: vmig-chaos [--seeds N] [--first S] [-v|-vv]; -v prints a line
 * per run, and the configuration and the log of a mismatch, -vv those of
 * every run. The last line is "N runs, M mismatches"; the exit status is
 * 0 only when M is 0. Runs are drawn from their seeds; what happens when
 * depends on the threads' timing, so a seed's mismatch may need a few
 * runs to show again.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "rig.h"
#include "common/relay.h"

#include "core/engine.h"
#include <vmig/linux-uapi.h>

#define MiB (1ull << 20)
#define CHUNK MiB          /* the unit of mappings */
#define MAX_CHUNKS 24
#define MAX_SPACES 4
#define MAX_DEVS 16        /* initial and hot-plugged */
#define MAX_EVENTS 8
#define MOCK_BASE 0x1000000ull /* the mock IOMMU's aperture starts here */

enum sp_type { SP_T1, SP_INTEL, SP_MOCK };

enum chunk_state { CH_UNMAPPED, CH_MAPPED, CH_BUSY };

struct cspace {
	char label[16];
	enum sp_type type;
	/*
	 * Intel: its devices' IOMMUs have the default page sizes (4 KiB,
	 * 2 MiB, 1 GiB) and its mappings are 2 MiB where the chunks allow,
	 * so that huge IOPTEs carry them. Its map and unmap events take
	 * whole mappings (never half of a 2 MiB one).
	 */
	bool big;
	enum chunk_state state[MAX_CHUNKS];
	bool writable[MAX_CHUNKS];
};

enum log_kind { LOG_NONE, LOG_MLX5, LOG_PDS, LOG_STUB };

struct cdev {
	char name[16];
	int space;
	bool mdev;
	bool dirty;          /* iommufd: its IOMMU has dirty tracking */
	bool huge;           /* mock: huge IOPTEs */
	enum log_kind log;
	uint32_t log_max_ranges;
	bool log_min_8k;     /* mlx5: its tracker's granule is 8 KiB */
	bool mig, p2p, pre_copy;
	uint32_t state_kib;
	int pattern;         /* enum ksim_dma_pattern; NONE: see manual */
	uint32_t writes, write_size;
	bool manual;         /* the rig writes for it: it can be unplugged */
	bool quiet;          /* never does DMA (a stub nothing else covers) */
	bool log_detached;   /* its log broke with ENOTCONN (repairable) */
	uint32_t pasid;      /* 0: none */
	int pasid_space;
	int group;
	uint32_t cdev;
	uint32_t pin_pages;  /* mdev, or a vfio-pci that pins pages */
	int pin_chunk;
	bool pins;           /* vfio-pci in type1: its driver pins pages */
	/* While it runs. */
	bool present;
	bool claimed;
	bool hotplugged;
	bool via_thread;
};

enum ev_type {
	EV_HOTPLUG,
	EV_UNPLUG,
	EV_UNPLUG_STATE,
	EV_MAP,
	EV_UNMAP,
	EV_UNMAP_HOLE,
	EV_UNMAP_PARTIAL,
	EV_VCPU_FAIL,
	EV_SIZE_FAIL,
	EV_FAIL_READ,
	EV_LOG_BREAK,
	EV_FAIL_NTH,
	EV_FIX,
	EV_NR,
};

static const char *const ev_names[EV_NR] = {
	"hotplug", "unplug", "unplug-stateful", "map", "unmap", "unmap-hole",
	"unmap-partial", "vcpu-fail", "size-fail", "fail-read", "log-break", "fail-nth", "repair",
};

/*
 * Classes of what a run drew, counted in the summary so that a change of
 * the generator cannot quietly stop drawing one of them.
 */
enum cls {
	CL_MIXED_CONTAINER, /* a type1 container with an mdev and a function */
	CL_PINNED_PCI,      /* a vfio-pci function that pins pages */
	CL_HUGE_DEFAULT,    /* huge IOPTEs at the default page sizes */
	CL_HOTPLUG_TRACKED, /* a hot-plug into a space already tracked */
	CL_UNMAP_HOLE,      /* an unmap over mappings with a hole between */
	CL_VCPU_RESTART,    /* a vCPU source that failed and was restarted */
	CL_SIZE_FAIL,       /* a device's state size query failing */
	CL_CUT,             /* the connection cut around the switchover */
	CL_UNMAP_PARTIAL,   /* an unmap cutting through a mapping (refused) */
	CL_UNPLUG_HOLE,     /* an unplug from a space with holes */
	CL_NR,
};

static const char *const cl_names[CL_NR] = {
	"mixed-container", "pinned-pci", "huge-default", "hotplug-tracked",
	"unmap-hole", "vcpu-restart", "size-query-fail", "cut-switchover",
	"unmap-partial", "unplug-hole",
};

struct event {
	enum ev_type type;
	bool from_thread;
	uint32_t at; /* the progress call's number, or ms from the start */
	uint64_t seed;
	unsigned long request; /* fail-read */
	int times;
	int err;
	bool done;
};

struct scenario {
	uint64_t seed;
	uint64_t rng;
	int nr_regions;
	uint64_t region_gpa[4], region_len[4];
	uint64_t chunk_gpa[MAX_CHUNKS];
	int nr_chunks;
	struct cspace spaces[MAX_SPACES];
	int nr_spaces;
	struct cdev devs[MAX_DEVS];
	int nr_devs;
	struct event events[MAX_EVENTS];
	int nr_events;
	struct vmig_policies pol;
	bool pasid_off;
	bool any_pasid;
	uint32_t vcpu_writes; /* vCPUs writing that many pages a step; 0: none */
	int vcpu_region;      /* the only region they write, or -1: all */
	bool cut;             /* the connection is cut around the switchover */
	struct rig_cut cut_at;
	bool stub_dma_ok;
	bool may_abort; /* an injected failure may end the migration */
	int next_group, next_cdev, next_hp;
};

/* One run: the scenario, its rig, what went wrong. */
struct run {
	struct scenario *sc;
	struct rig *r;
	pthread_mutex_t lock; /* the scenario's run-time state */
	bool done;
	uint64_t start_us;
	char fail[1024];
	unsigned int ev_done[EV_NR];
	unsigned int cl_done[CL_NR]; /* events of a class that happened */
	unsigned int cut_src, cut_dst, cut_unresolved; /* who runs it */
};

static int verbose;

static uint64_t now_us(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000000u + (uint64_t)ts.tv_nsec / 1000u;
}

static void run_fail(struct run *ru, const char *fmt, ...)
	__attribute__((format(printf, 2, 3)));

static void run_fail(struct run *ru, const char *fmt, ...)
{
	size_t n;
	va_list ap;

	pthread_mutex_lock(&ru->lock);
	n = strlen(ru->fail);
	if (n + 3 < sizeof(ru->fail)) {
		if (n) {
			memcpy(ru->fail + n, "; ", 3);
			n += 2;
		}
		va_start(ap, fmt);
		vsnprintf(ru->fail + n, sizeof(ru->fail) - n, fmt, ap);
		va_end(ap);
	}
	pthread_mutex_unlock(&ru->lock);
}

/* ------------------------------------------------------------------ */
/* Drawing a scenario                                                  */

static uint64_t draw(struct scenario *sc, uint64_t n)
{
	return rig_below(&sc->rng, n);
}

static bool chance(struct scenario *sc, unsigned int percent)
{
	return draw(sc, 100) < percent;
}

static uint64_t chunk_iova(const struct scenario *sc, int space, int c)
{
	if (sc->spaces[space].type == SP_MOCK)
		return MOCK_BASE + (uint64_t)c * CHUNK;
	return sc->chunk_gpa[c];
}

static void draw_memory(struct scenario *sc)
{
	static const uint64_t high[] = { 0x100000000ull, 0x140000000ull,
					 0x200000000ull };
	int i, c;

	sc->nr_regions = 1 + (int)draw(sc, 3);
	sc->region_gpa[0] = sc->nr_regions == 1 && chance(sc, 30)
				    ? high[draw(sc, 3)]
				    : 0;
	sc->region_len[0] = (2 + draw(sc, 5)) * MiB;
	if (sc->nr_regions >= 2) {
		sc->region_gpa[1] = high[draw(sc, 3)];
		sc->region_len[1] = (1 + draw(sc, 4)) * MiB;
	}
	if (sc->nr_regions == 3) {
		/* Between the two, below 4 GiB (and the MSI window). */
		sc->region_gpa[2] = 0x40000000ull;
		sc->region_len[2] = (1 + draw(sc, 2)) * MiB;
	}
	for (i = 0; i < sc->nr_regions; i++)
		for (c = 0; (uint64_t)c * CHUNK < sc->region_len[i]; c++)
			sc->chunk_gpa[sc->nr_chunks++] =
				sc->region_gpa[i] + (uint64_t)c * CHUNK;
}

static void draw_spaces(struct scenario *sc)
{
	int i, c, t1 = 0, ioas = 0;

	sc->nr_spaces = 1 + (int)draw(sc, MAX_SPACES);
	for (i = 0; i < sc->nr_spaces; i++) {
		struct cspace *sp = &sc->spaces[i];
		unsigned int d = (unsigned int)draw(sc, 100);

		sp->type = d < 40 ? SP_T1 : d < 85 ? SP_INTEL : SP_MOCK;
		sp->big = sp->type == SP_INTEL && chance(sc, 30);
		if (sp->type == SP_T1)
			snprintf(sp->label, sizeof(sp->label), "c%d", t1++);
		else
			snprintf(sp->label, sizeof(sp->label), "a%d", ioas++);
		for (c = 0; c < sc->nr_chunks; c++) {
			sp->state[c] = chance(sc, 85) ? CH_MAPPED
						       : CH_UNMAPPED;
			sp->writable[c] = chance(sc, 92);
		}
		/* Something the devices can write, at least. */
		c = (int)draw(sc, (uint64_t)sc->nr_chunks);
		sp->state[c] = CH_MAPPED;
		sp->writable[c] = true;
		/* Often a hole between two mappings, as a vIOMMU leaves. */
		if (sc->nr_chunks >= 3 && chance(sc, 40)) {
			c = 1 + (int)draw(sc, (uint64_t)sc->nr_chunks - 2);
			sp->state[c - 1] = CH_MAPPED;
			sp->state[c] = CH_UNMAPPED;
			sp->state[c + 1] = CH_MAPPED;
		}
	}
}

static int first_mapped_writable(const struct scenario *sc, int space)
{
	int c;

	for (c = 0; c < sc->nr_chunks; c++)
		if (sc->spaces[space].state[c] == CH_MAPPED &&
		    sc->spaces[space].writable[c])
			return c;
	return -1;
}

/* A DMA pattern, a rate and a size for a device of the simulator. */
static void draw_dma(struct scenario *sc, struct cdev *d)
{
	static const uint32_t sizes[] = { 64, 512, 4096, 4096, 8192, 16384 };

	d->pattern = 1 + (int)draw(sc, 3);
	d->writes = 1 + (uint32_t)draw(sc, 32);
	d->write_size = sizes[draw(sc, 6)];
	if (chance(sc, 10))
		d->pattern = KSIM_DMA_NONE;
}

static void draw_device(struct scenario *sc, struct cdev *d, int idx)
{
	const struct cspace *sp;
	unsigned int x;

	memset(d, 0, sizeof(*d));
	snprintf(d->name, sizeof(d->name), "d%d", idx);
	d->space = (int)draw(sc, (uint64_t)sc->nr_spaces);
	sp = &sc->spaces[d->space];
	d->present = true;
	if (sp->type == SP_T1) {
		d->group = sc->next_group++;
		d->mdev = chance(sc, 35);
	} else {
		d->cdev = (uint32_t)sc->next_cdev++;
		d->mdev = sp->type == SP_INTEL && chance(sc, 15);
		d->dirty = sp->type == SP_MOCK || chance(sc, 65);
		d->huge = sp->type == SP_MOCK && chance(sc, 60);
	}
	x = (unsigned int)draw(sc, 100);
	d->log = x < 20 ? LOG_MLX5 : x < 35 ? LOG_PDS : x < 45 ? LOG_STUB
							      : LOG_NONE;
	if (d->log == LOG_MLX5 || d->log == LOG_PDS) {
		if (chance(sc, 40))
			d->log_max_ranges = 1 + (uint32_t)draw(sc, 3);
		d->log_min_8k = d->log == LOG_MLX5 && chance(sc, 25);
	}
	/* A function whose driver pins pages: type1's pinned scope. */
	d->pins = sp->type == SP_T1 && !d->mdev && chance(sc, 20);
	if (d->mdev || d->pins) {
		d->pin_chunk = first_mapped_writable(sc, d->space);
		d->pin_pages = 1 + (uint32_t)draw(sc, 16);
	}
	if (!d->mdev && chance(sc, 40)) {
		d->mig = true;
		d->p2p = chance(sc, 50);
		d->pre_copy = chance(sc, 50);
		d->state_kib = 16u << draw(sc, 3);
	}
	draw_dma(sc, d);
	/* Some devices the rig drives, so that they can be quiesced. */
	if (!d->mig && chance(sc, 35)) {
		d->manual = true;
		d->pattern = KSIM_DMA_NONE;
	}
	if (sp->type == SP_INTEL && !d->mdev && chance(sc, 25)) {
		int i, ps = -1;

		/* Its PASID writes through an Intel IOAS (maybe its own). */
		for (i = 0; i < sc->nr_spaces; i++)
			if (sc->spaces[i].type == SP_INTEL &&
			    (ps < 0 || chance(sc, 50)))
				ps = i;
		d->pasid = 1 + (uint32_t)draw(sc, 15);
		d->pasid_space = ps;
		sc->any_pasid = true;
	}
}

/* The initial devices; hot-plugged ones are drawn by their event. */
static void draw_devices(struct scenario *sc)
{
	int i, n = 2 + (int)draw(sc, 5);

	sc->next_group = 10;
	for (i = 0; i < n; i++)
		draw_device(sc, &sc->devs[i], i);
	sc->nr_devs = n;
}

static void draw_events(struct scenario *sc)
{
	static const unsigned long reads[] = {
		VK_IOMMU_HWPT_GET_DIRTY_BITMAP,
		VFIO_IOMMU_DIRTY_PAGES, /* also VFIO_DEVICE_FEATURE */
	};
	static const int times[] = { 1, 1, 2, 3, -1 };
	int i, n = (int)draw(sc, MAX_EVENTS + 1);

	for (i = 0; i < n; i++) {
		struct event *ev = &sc->events[i];
		unsigned int x = (unsigned int)draw(sc, 100);

		ev->type = x < 20 ? EV_HOTPLUG : x < 32 ? EV_UNPLUG :
			   x < 36 ? EV_UNPLUG_STATE : x < 50 ? EV_MAP :
			   x < 52 ? EV_UNMAP : x < 58 ? EV_UNMAP_HOLE :
			   x < 62 ? EV_UNMAP_PARTIAL :
			   x < 66 ? EV_VCPU_FAIL : x < 71 ? EV_SIZE_FAIL :
			   x < 76 ? EV_FAIL_READ :
			   x < 84 ? EV_LOG_BREAK : x < 90 ? EV_FAIL_NTH :
			   EV_FIX;
		/* Only the loop knows for sure that the migration runs. */
		ev->from_thread = ev->type != EV_UNPLUG_STATE && chance(sc, 50);
		ev->at = ev->from_thread ? 2 + (uint32_t)draw(sc, 200)
					 : 1 + (uint32_t)draw(sc, 4);
		ev->seed = rig_rand(&sc->rng);
		ev->request = reads[draw(sc, 2)];
		ev->times = times[draw(sc, 5)];
		ev->err = chance(sc, 70) ? EIO : ENOTCONN;
		if (ev->type == EV_FAIL_NTH)
			ev->times = 1 + (int)draw(sc, 40);
	}
	sc->nr_events = n;
}

/*
 * What an injected failure may do: a failure of VFIO_DEVICE_FEATURE
 * (which shares its number with VFIO_IOMMU_DIRTY_PAGES) hits the device
 * state transitions the migration needs, and the nth call can be any; a
 * broken tracker or a failing GET_DIRTY_BITMAP only costs precision.
 * Where a stub device does DMA, nothing may take the iommufd source away
 * from it (see the top): such runs keep the IOMMU's reads working.
 */
static void draw_constraints(struct scenario *sc)
{
	bool state = false;
	int i;

	for (i = 0; i < sc->nr_devs; i++)
		state |= sc->devs[i].mig;
	sc->stub_dma_ok = sc->pol.tracking == VMIG_TRACKING_POLICY_MIXED;
	for (i = 0; i < sc->nr_events; i++) {
		const struct event *ev = &sc->events[i];

		if (ev->type == EV_FAIL_NTH)
			sc->may_abort = true;
		if (ev->type == EV_FAIL_READ &&
		    ev->request == VFIO_IOMMU_DIRTY_PAGES && state)
			sc->may_abort = true;
		if (ev->type == EV_FAIL_NTH ||
		    (ev->type == EV_FAIL_READ &&
		     ev->request == VK_IOMMU_HWPT_GET_DIRTY_BITMAP))
			sc->stub_dma_ok = false;
	}
	for (i = 0; i < sc->nr_devs; i++) {
		struct cdev *d = &sc->devs[i];
		bool covered = sc->spaces[d->space].type != SP_T1 && d->dirty &&
			       !d->mdev;

		if (d->log == LOG_STUB && !(covered && sc->stub_dma_ok)) {
			d->quiet = true;
			d->pattern = KSIM_DMA_NONE;
			d->manual = false;
			d->pasid = 0;
		}
	}
}

static void draw_policies(struct scenario *sc)
{
	unsigned int x = (unsigned int)draw(sc, 100);

	memset(&sc->pol, 0, sizeof(sc->pol));
	sc->pol.size = sizeof(sc->pol);
	sc->pol.hotplug = x < 60 ? VMIG_HOTPLUG_POLICY_TRACK :
			  x < 85 ? VMIG_HOTPLUG_POLICY_DEGRADE :
				   VMIG_HOTPLUG_POLICY_REJECT;
	sc->pol.tracking = chance(sc, 25) ? VMIG_TRACKING_POLICY_ALL_OR_NOTHING
					  : VMIG_TRACKING_POLICY_MIXED;
	sc->pol.downtime_limit_ms = 1 + draw(sc, 20);
	sc->pol.max_iterations = 3 + (uint32_t)draw(sc, 4);
	sc->pol.timeout_strategy = VMIG_TIMEOUT_STRATEGY_FORCE;
	/* Slow enough for events to happen during the migration. */
	sc->pol.bandwidth_limit = (32 + draw(sc, 96)) * MiB;
	/*
	 * 1 to 4 connections, from the seed itself: the draws that follow
	 * (and so each seed's scenario) are those of before.
	 */
	sc->pol.connections = 1 + (uint32_t)(sc->seed % 4);
	sc->pasid_off = chance(sc, 40);
	/*
	 * vCPUs with their dirty log, as a VMM registers them; half of
	 * them write only a region of their own that no device maps, where
	 * nothing but the vCPU source can report a write.
	 */
	sc->vcpu_writes = chance(sc, 60) ? 1 + (uint32_t)draw(sc, 16) : 0;
	sc->vcpu_region = -1;
	if (sc->vcpu_writes && chance(sc, 50)) {
		sc->vcpu_region = sc->nr_regions++;
		sc->region_gpa[sc->vcpu_region] = 0x380000000ull;
		sc->region_len[sc->vcpu_region] = MiB;
	}
	/*
	 * The connection cut from the switchover on: in the last pages and
	 * device state, around COMPLETE and COMMIT, or in ACK and STARTED.
	 */
	sc->cut = chance(sc, 20);
	if (sc->cut) {
		unsigned int k = (unsigned int)draw(sc, 4);

		sc->cut_at.dir = k == 3 ? RELAY_D2S : RELAY_S2D;
		sc->cut_at.after_type = k < 2 ? 8 /* SWITCHOVER */
				      : k == 2 ? 9 /* COMPLETE */
					       : 10 /* ACK */;
		sc->cut_at.limit = k < 2 ? draw(sc, 64 << 10) : draw(sc, 200);
		/*
		 * The relay carries one connection, the main stream, whose
		 * bytes the cut counts: the pages go on it too.
		 */
		sc->pol.connections = 1;
	}
}

static void draw_scenario(struct scenario *sc, uint64_t seed)
{
	memset(sc, 0, sizeof(*sc));
	sc->seed = seed;
	sc->rng = seed * 0x9e3779b97f4a7c15ull + 0x632be59bd9b4e019ull;
	draw_memory(sc);
	draw_spaces(sc);
	draw_devices(sc);
	draw_policies(sc);
	draw_events(sc);
	draw_constraints(sc);
}

/* ------------------------------------------------------------------ */
/* The configuration                                                   */

static const char *const pattern_names[] = { "none", "random", "sequential",
					     "hotspot" };

static void json_device(struct rig_buf *b, const struct scenario *sc,
			const struct cdev *d)
{
	const struct cspace *sp = &sc->spaces[d->space];

	rig_buf_printf(b, "{ \"name\": \"%s\", \"kind\": \"%s\"", d->name,
		       d->mdev ? "mdev" : "vfio-pci");
	if (sp->type == SP_T1)
		rig_buf_printf(b, ", \"group\": %d, \"container\": \"%s\" }",
			       d->group, sp->label);
	else
		rig_buf_printf(b, ", \"iommu\": \"iommufd\", \"cdev\": "
			       "\"/dev/vfio/devices/vfio%u\", \"ioas\": \"%s\"",
			       d->cdev, sp->label);
	if (sp->type != SP_T1 && d->pasid)
		rig_buf_printf(b, ", \"pasids\": [ { \"pasid\": %u, \"ioas\": "
			       "\"%s\" } ]", d->pasid,
			       sc->spaces[d->pasid_space].label);
	if (sp->type != SP_T1)
		rig_buf_printf(b, " }");
}

static void json_sim_device(struct rig_buf *b, const struct scenario *sc,
			    const struct cdev *d)
{
	const struct cspace *sp = &sc->spaces[d->space];

	rig_buf_printf(b, "{ \"name\": \"%s\"", d->name);
	if (d->pins)
		rig_buf_printf(b, ", \"pins_pages\": true");
	if (sp->type != SP_T1)
		rig_buf_printf(b, ", \"iommu_dirty_tracking\": %s",
			       d->dirty ? "true" : "false");
	if (sp->type == SP_MOCK)
		rig_buf_printf(b, ", \"iommu\": { \"model\": \"mock\", "
			       "\"huge_iova\": %s }", d->huge ? "true"
							      : "false");
	else if (sp->type == SP_INTEL && !d->mdev && sp->big)
		/* The default page sizes: 4 KiB, 2 MiB and 1 GiB. */
		rig_buf_printf(b, ", \"iommu\": { \"max_pasid_log2\": %d }",
			       d->pasid ? 4 : 0);
	else if (sp->type == SP_INTEL && !d->mdev)
		rig_buf_printf(b, ", \"iommu\": { \"page_sizes\": [\"4K\", "
			       "\"2M\"], \"max_pasid_log2\": %d }",
			       d->pasid ? 4 : 0);
	if ((d->mdev || d->pins) && d->pin_chunk >= 0)
		rig_buf_printf(b,
			       ", \"pin\": { \"iova\": %llu, \"pages\": %u }",
			       (unsigned long long)chunk_iova(sc, d->space,
							      d->pin_chunk),
			       d->pin_pages);
	if (d->pattern != KSIM_DMA_NONE)
		rig_buf_printf(b, ", \"dma\": { \"pattern\": \"%s\", "
			       "\"writes_per_step\": %u, \"write_size\": %u, "
			       "\"seed\": %llu }", pattern_names[d->pattern],
			       d->writes, d->write_size,
			       (unsigned long long)(sc->seed * 31 +
						    (uint64_t)d->group +
						    d->cdev * 7u + 1));
	if (d->mig)
		rig_buf_printf(b, ", \"migration\": { \"p2p\": %s, "
			       "\"pre_copy\": %s, \"state_size\": \"%uK\" }",
			       d->p2p ? "true" : "false",
			       d->pre_copy ? "true" : "false", d->state_kib);
	if (d->log == LOG_STUB)
		rig_buf_printf(b, ", \"dma_logging\": \"stub\"");
	else if (d->log != LOG_NONE) {
		rig_buf_printf(b, ", \"dma_logging\": { \"model\": \"%s\"",
			       d->log == LOG_MLX5 ? "mlx5" : "pds");
		if (d->log_max_ranges)
			rig_buf_printf(b, ", \"max_ranges\": %u",
				       d->log_max_ranges);
		if (d->log_min_8k)
			rig_buf_printf(b, ", \"min_page_size\": \"8K\"");
		rig_buf_printf(b, " }");
	}
	rig_buf_printf(b, " }");
}

/*
 * Whether chunk c of a big space is mapped together with the next one as
 * one 2 MiB mapping that a huge IOPTE can carry: both mapped, alike, and
 * contiguous from a 2 MiB boundary.
 */
static bool merges(const struct scenario *sc, int space, int c)
{
	const struct cspace *sp = &sc->spaces[space];

	return sp->big && c + 1 < sc->nr_chunks &&
	       sp->state[c] == CH_MAPPED && sp->state[c + 1] == CH_MAPPED &&
	       sp->writable[c] == sp->writable[c + 1] &&
	       sc->chunk_gpa[c] % (2 * CHUNK) == 0 &&
	       sc->chunk_gpa[c + 1] == sc->chunk_gpa[c] + CHUNK;
}

static void json_build(struct rig_buf *b, const struct scenario *sc)
{
	int i, c, n = 0;

	rig_buf_printf(b, "{ \"memory\": [");
	for (i = 0; i < sc->nr_regions; i++)
		rig_buf_printf(b, "%s{ \"gpa\": %llu, \"size\": %llu }",
			       i ? ", " : " ",
			       (unsigned long long)sc->region_gpa[i],
			       (unsigned long long)sc->region_len[i]);
	rig_buf_printf(b, " ],\n  \"devices\": [");
	for (i = 0; i < sc->nr_devs; i++) {
		rig_buf_printf(b, "%s\n    ", i ? "," : "");
		json_device(b, sc, &sc->devs[i]);
	}
	rig_buf_printf(b, " ],\n  \"dma_mappings\": [");
	for (i = 0; i < sc->nr_spaces; i++) {
		bool used = false;
		int d;

		/* A space nothing names is never opened: no mappings. */
		for (d = 0; d < sc->nr_devs; d++)
			used |= sc->devs[d].space == i ||
				(sc->devs[d].pasid &&
				 sc->devs[d].pasid_space == i);
		for (c = 0; used && c < sc->nr_chunks; c++) {
			uint64_t len = CHUNK;

			if (sc->spaces[i].state[c] != CH_MAPPED)
				continue;
			if (merges(sc, i, c))
				len = 2 * CHUNK;
			rig_buf_printf(b,
				       "%s\n    { \"space\": \"%s\", "
				       "\"iova\": %llu, \"gpa\": %llu, "
				       "\"size\": %llu, \"write\": %s }",
				       n++ ? "," : "",
				       sc->spaces[i].label,
				       (unsigned long long)chunk_iova(sc, i, c),
				       (unsigned long long)sc->chunk_gpa[c],
				       (unsigned long long)len,
				       sc->spaces[i].writable[c] ? "true"
								 : "false");
			if (len > CHUNK)
				c++;
		}
	}
	rig_buf_printf(b, " ],\n  \"kernel\": { \"type\": \"simulated\", "
		       "\"pasid_attach\": %s, \"devices\": [",
		       sc->any_pasid ? "true" : "false");
	for (i = 0; i < sc->nr_devs; i++) {
		rig_buf_printf(b, "%s\n    ", i ? "," : "");
		json_sim_device(b, sc, &sc->devs[i]);
	}
	rig_buf_printf(b, " ] } }\n");
}

/* ------------------------------------------------------------------ */
/* Events                                                              */

/* A present device of the given space that can write it, or NULL. */
static struct cdev *writer_of(struct scenario *sc, int space)
{
	int i;

	for (i = 0; i < sc->nr_devs; i++) {
		struct cdev *d = &sc->devs[i];

		if (d->present && !d->claimed && d->space == space &&
		    !d->quiet)
			return d;
	}
	return NULL;
}

/* Whether a device is in the space (a type1 container without groups
 * has no IOMMU any more: it would need VFIO_SET_IOMMU again). */
static bool space_alive(const struct scenario *sc, int space)
{
	int i;

	for (i = 0; i < sc->nr_devs; i++)
		if (sc->devs[i].present && sc->devs[i].space == space)
			return true;
	return false;
}

static bool hotplug_policy_reject(const struct scenario *sc)
{
	return sc->pol.hotplug == VMIG_HOTPLUG_POLICY_REJECT;
}

static void ev_hotplug(struct run *ru, struct event *ev)
{
	struct scenario *sc = ru->sc;
	struct rig_hotplug hp = { 0 };
	uint64_t rng = ev->seed;
	struct cdev *d;
	int spaces[MAX_SPACES], n = 0, i, ret;
	bool kfail, logs;
	uint32_t id;

	pthread_mutex_lock(&ru->lock);
	for (i = 0; i < sc->nr_spaces; i++)
		if (sc->spaces[i].type != SP_MOCK && space_alive(sc, i) &&
		    rig_space(ru->r, sc->spaces[i].label) >= 0)
			spaces[n++] = i;
	if (!n || sc->nr_devs == MAX_DEVS) {
		pthread_mutex_unlock(&ru->lock);
		return;
	}
	d = &sc->devs[sc->nr_devs++];
	memset(d, 0, sizeof(*d));
	snprintf(d->name, sizeof(d->name), "hp%d", sc->next_hp++);
	d->space = spaces[rig_below(&rng, (uint64_t)n)];
	d->claimed = true;
	d->hotplugged = true;
	d->via_thread = ev->from_thread;
	d->manual = true;
	if (sc->spaces[d->space].type == SP_T1) {
		d->group = 100 + sc->next_hp;
		d->mdev = rig_below(&rng, 3) == 0;
	} else {
		d->cdev = 100u + (uint32_t)sc->next_hp;
		d->mdev = rig_below(&rng, 6) == 0;
		d->dirty = rig_below(&rng, 3) != 0;
	}
	/* A stub only where the IOMMU covers it (see the top). */
	logs = rig_below(&rng, 2);
	d->log = !logs ? LOG_NONE : rig_below(&rng, 2) ? LOG_MLX5 : LOG_PDS;
	pthread_mutex_unlock(&ru->lock);

	hp.name = d->name;
	hp.mdev = d->mdev;
	hp.space = sc->spaces[d->space].label;
	hp.group = d->group;
	hp.cdev_index = d->cdev;
	hp.dirty_tracking = d->dirty;
	hp.feature.log = d->log == LOG_MLX5 ? KSIM_LOG_MLX5 :
			 d->log == LOG_PDS ? KSIM_LOG_PDS : KSIM_LOG_NONE;
	/*
	 * Writes before vmig hears of it: only where the guest surely runs,
	 * and not when vmig is to refuse it (a VMM lets a device run only
	 * once vmig took it: what a refused device wrote is lost).
	 */
	hp.early_writes = ev->from_thread || hotplug_policy_reject(sc)
				  ? 0
				  : (unsigned int)rig_below(&rng, 4);
	hp.writes_per_step = 1 + (uint32_t)rig_below(&rng, 16);
	hp.write_size = rig_below(&rng, 2) ? 4096 : 512;
	hp.seed = ev->seed;
	ret = rig_hotplug(ru->r, &hp, &id, &kfail);

	pthread_mutex_lock(&ru->lock);
	d->claimed = false;
	d->present = ret == 0;
	if (ret == 0)
		ru->cl_done[CL_HOTPLUG_TRACKED]++;
	pthread_mutex_unlock(&ru->lock);
	if (kfail) {
		/* (Or its space's last device left meanwhile.) */
		if (!sc->may_abort && space_alive(sc, d->space))
			run_fail(ru, "hot-plug of %s: the simulated kernel "
				 "refused the VMM's own calls (%s) with no "
				 "failure injected", d->name,
				 vmig_strerror(ret));
		return;
	}
	if (hotplug_policy_reject(sc)) {
		/*
		 * Refused while tracking runs; a thread's call may come
		 * after the migration ended, when tracking no longer runs.
		 */
		if (ret == -EBUSY)
			return;
		if (ret == 0 && ev->from_thread)
			return; /* checked after the run: not arbitrated */
		run_fail(ru, "hot-plug of %s with policy reject: %s, not "
			 "EBUSY", d->name, ret ? vmig_strerror(ret) : "added");
		return;
	}
	if (ret < 0)
		run_fail(ru, "hot-plug of %s: vmig_device_add: %s", d->name,
			 vmig_strerror(ret));
}

/* Under the lock: an unmapped chunk between two mapped ones. */
static bool space_has_hole(const struct scenario *sc, int space)
{
	const struct cspace *sp = &sc->spaces[space];
	bool mapped = false, hole = false;
	int c;

	for (c = 0; c < sc->nr_chunks; c++) {
		if (sp->state[c] == CH_UNMAPPED) {
			hole = mapped;
			continue;
		}
		if (hole)
			return true;
		mapped = true;
	}
	return false;
}

static void ev_unplug(struct run *ru, struct event *ev)
{
	struct scenario *sc = ru->sc;
	struct cdev *d = NULL;
	uint64_t rng = ev->seed;
	int i, n = 0, ret;
	bool wrote;

	pthread_mutex_lock(&ru->lock);
	for (i = 0; i < sc->nr_devs; i++) {
		struct cdev *c = &sc->devs[i];

		if (c->present && !c->claimed && c->manual && !c->mig &&
		    !c->pasid && rig_below(&rng, (uint64_t)++n) == 0)
			d = c;
	}
	if (d)
		d->claimed = true;
	pthread_mutex_unlock(&ru->lock);
	if (!d)
		return;
	ret = rig_unplug(ru->r, d->name, true, &wrote, ev->seed);
	pthread_mutex_lock(&ru->lock);
	d->claimed = false;
	d->present = ret < 0;
	if (ret == 0 && space_has_hole(sc, d->space))
		ru->cl_done[CL_UNPLUG_HOLE]++;
	pthread_mutex_unlock(&ru->lock);
	if (ret < 0)
		run_fail(ru, "unplug of %s: vmig_device_remove: %s", d->name,
			 vmig_strerror(ret));
}

/* From the loop only: a device whose state travels cannot go now. */
static void ev_unplug_state(struct run *ru, struct event *ev)
{
	struct scenario *sc = ru->sc;
	int i, id, ret;

	(void)ev;
	for (i = 0; i < sc->nr_devs; i++) {
		if (!sc->devs[i].mig || !sc->devs[i].present)
			continue;
		id = rig_device_id(ru->r, sc->devs[i].name);
		ret = vmig_device_remove(ru->r->src, (uint32_t)id);
		if (ret != -EBUSY ||
		    !strstr(vmig_errmsg(ru->r->src), "unplug it before or "
							 "after"))
			run_fail(ru, "unplug of %s (VFIO migration state) "
				 "during the migration: %d (%s), not EBUSY",
				 sc->devs[i].name, ret,
				 vmig_errmsg(ru->r->src));
		return;
	}
}

static void ev_map(struct run *ru, struct event *ev, bool unmap)
{
	struct scenario *sc = ru->sc;
	uint64_t rng = ev->seed;
	int s, c = -1, i, n = 0, ret;
	struct cdev *w = NULL;
	struct cspace *sp;
	uint64_t iova, last = UINT64_MAX;

	s = (int)rig_below(&rng, (uint64_t)sc->nr_spaces);
	sp = &sc->spaces[s];
	/* (A big space's mappings stay as they are: see struct cspace.) */
	if (sp->big || rig_space(ru->r, sp->label) < 0)
		return;
	pthread_mutex_lock(&ru->lock);
	for (i = 0; i < sc->nr_chunks; i++) {
		if (sp->state[i] != (unmap ? CH_MAPPED : CH_UNMAPPED))
			continue;
		if (rig_below(&rng, (uint64_t)++n) == 0)
			c = i;
	}
	/*
	 * A device of the space makes the write around it; a space whose
	 * devices all left has no IOMMU domain any more (type1 refuses a
	 * map then, as the kernel does): nothing to do there.
	 */
	w = c >= 0 ? writer_of(sc, s) : NULL;
	if (w) {
		sp->state[c] = CH_BUSY;
		w->claimed = true;
	}
	pthread_mutex_unlock(&ru->lock);
	if (!w)
		return;
	iova = chunk_iova(sc, s, c);
	if (unmap) {
		ret = rig_unmap(ru->r, sp->label, iova, CHUNK, w->name, &last,
				ev->seed);
	} else {
		ret = rig_map(ru->r, sp->label, iova, sc->chunk_gpa[c], CHUNK,
			      true);
		/* The range's first write, just after it exists. */
		if (ret == 0) {
			uint64_t at = iova + rig_below(&rng, CHUNK / RIG_PAGE) *
						     RIG_PAGE;

			rig_write(ru->r, w->name, 0, sp->label, &at, RIG_PAGE,
				  ev->seed);
		}
	}
	pthread_mutex_lock(&ru->lock);
	w->claimed = false;
	if (ret == 0) {
		sp->state[c] = unmap ? CH_UNMAPPED : CH_MAPPED;
		sp->writable[c] = unmap ? sp->writable[c] : true;
	} else {
		sp->state[c] = unmap ? CH_MAPPED : CH_UNMAPPED;
	}
	pthread_mutex_unlock(&ru->lock);
	if (ret < 0 && !sc->may_abort)
		run_fail(ru, "%s of %s 0x%llx: %s", unmap ? "unmap" : "map",
			 sp->label, (unsigned long long)iova,
			 vmig_strerror(ret));
}

/*
 * One unmap over two mappings with unmapped IOVA between them: every
 * mapping the range covers gets a last write just before, the one past
 * the hole included, and each must be harvested (the kernel's dirty
 * reads stop at a hole without an error).
 */
static void ev_unmap_hole(struct run *ru, struct event *ev)
{
	struct scenario *sc = ru->sc;
	uint64_t rng = ev->seed, iova, end, last = UINT64_MAX;
	int s, c, c1 = -1, c2 = -1, n = 0, ret;
	struct cdev *w = NULL;
	struct cspace *sp;

	s = (int)rig_below(&rng, (uint64_t)sc->nr_spaces);
	sp = &sc->spaces[s];
	if (sp->big || rig_space(ru->r, sp->label) < 0)
		return;
	pthread_mutex_lock(&ru->lock);
	/* A pair (mapped, unmapped..., mapped), drawn among all. */
	for (c = 0; c < sc->nr_chunks; c++) {
		int e;

		if (sp->state[c] != CH_MAPPED || c + 1 >= sc->nr_chunks ||
		    sp->state[c + 1] != CH_UNMAPPED)
			continue;
		for (e = c + 2; e < sc->nr_chunks &&
				sp->state[e] == CH_UNMAPPED; e++)
			;
		if (e >= sc->nr_chunks || sp->state[e] != CH_MAPPED ||
		    chunk_iova(sc, s, e) < chunk_iova(sc, s, c))
			continue;
		if (rig_below(&rng, (uint64_t)++n) == 0) {
			c1 = c;
			c2 = e;
		}
	}
	w = c1 >= 0 ? writer_of(sc, s) : NULL;
	if (w) {
		sp->state[c1] = CH_BUSY;
		sp->state[c2] = CH_BUSY;
		w->claimed = true;
	}
	pthread_mutex_unlock(&ru->lock);
	if (!w)
		return;
	iova = chunk_iova(sc, s, c1);
	end = chunk_iova(sc, s, c2) + CHUNK;
	ret = rig_unmap(ru->r, sp->label, iova, end - iova, w->name, &last,
			ev->seed);
	pthread_mutex_lock(&ru->lock);
	w->claimed = false;
	sp->state[c1] = ret == 0 ? CH_UNMAPPED : CH_MAPPED;
	sp->state[c2] = ret == 0 ? CH_UNMAPPED : CH_MAPPED;
	if (ret == 0)
		ru->cl_done[CL_UNMAP_HOLE]++;
	pthread_mutex_unlock(&ru->lock);
	if (ret < 0 && !sc->may_abort)
		run_fail(ru, "unmap of %s 0x%llx+0x%llx (over a hole): %s",
			 sp->label, (unsigned long long)iova,
			 (unsigned long long)(end - iova), vmig_strerror(ret));
}

/*
 * An unmap that cuts through a mapping (its second half, or from its
 * middle into the next chunk): vmig refuses it (-EINVAL, as the kernels
 * refuse to split a mapping) and nothing changes, the mapping still
 * tracked.
 */
static void ev_unmap_partial(struct run *ru, struct event *ev)
{
	struct scenario *sc = ru->sc;
	uint64_t rng = ev->seed, iova, len;
	int s, c = -1, i, n = 0, sp_idx, ret;
	struct cspace *sp;

	s = (int)rig_below(&rng, (uint64_t)sc->nr_spaces);
	sp = &sc->spaces[s];
	sp_idx = rig_space(ru->r, sp->label);
	if (sp->big || sp_idx < 0)
		return;
	pthread_mutex_lock(&ru->lock);
	for (i = 0; i < sc->nr_chunks; i++)
		if (sp->state[i] == CH_MAPPED &&
		    rig_below(&rng, (uint64_t)++n) == 0)
			c = i;
	if (c >= 0)
		sp->state[c] = CH_BUSY;
	pthread_mutex_unlock(&ru->lock);
	if (c < 0)
		return;
	iova = chunk_iova(sc, s, c) + CHUNK / 2;
	len = rig_below(&rng, 2) ? CHUNK / 2 : CHUNK;
	ret = vmig_dma_unmap(ru->r->src, ru->r->spaces[sp_idx].id, iova, len);
	pthread_mutex_lock(&ru->lock);
	sp->state[c] = CH_MAPPED;
	if (ret == -EINVAL)
		ru->cl_done[CL_UNMAP_PARTIAL]++;
	pthread_mutex_unlock(&ru->lock);
	if (ret != -EINVAL && !(ret < 0 && sc->may_abort))
		run_fail(ru, "unmap of %s 0x%llx+0x%llx (cutting a mapping): "
			 "%s, not EINVAL", sp->label, (unsigned long long)iova,
			 (unsigned long long)len,
			 ret ? vmig_strerror(ret) : "done");
}

/*
 * Breaks a random device's DMA log (err), or repairs (err 0) those whose
 * VF was detached from its PF (ENOTCONN: reattached, it logs again). A
 * tracker error (EIO) is not repaired so: the device lost what it did
 * not record, and only a STOP (the plugin's restart) ends it; clearing
 * it under the plugin would have REPORT succeed without those bits.
 */
static void ev_log_break(struct run *ru, struct event *ev, int err)
{
	struct scenario *sc = ru->sc;
	uint64_t rng = ev->seed;
	int i, n = 0;
	struct ksim_device *pick = NULL;
	struct cdev *picked = NULL;

	pthread_mutex_lock(&ru->lock);
	for (i = 0; i < sc->nr_devs; i++) {
		struct cdev *d = &sc->devs[i];
		struct ksim_device *kd;

		if (!d->present || d->log == LOG_NONE)
			continue;
		kd = ksim_device_find(ru->r->k, d->name);
		if (!kd)
			continue;
		if (!err && d->log_detached) {
			ksim_device_log_break(kd, 0);
			d->log_detached = false;
		} else if (err && rig_below(&rng, (uint64_t)++n) == 0) {
			pick = kd;
			picked = d;
		}
	}
	if (pick) {
		picked->log_detached |= err == ENOTCONN;
		ksim_device_log_break(pick, err);
		rig_logf(ru->r, "chaos: %s's DMA log broken (%s)",
			 ksim_device_name(pick), vmig_strerror(-err));
	}
	pthread_mutex_unlock(&ru->lock);
}

static void run_event(struct run *ru, struct event *ev)
{
	struct rig *r = ru->r;

	rig_logf(r, "chaos: event %s (%s %u)", ev_names[ev->type],
		 ev->from_thread ? "thread, ms" : "progress call", ev->at);
	switch (ev->type) {
	case EV_HOTPLUG:
		ev_hotplug(ru, ev);
		break;
	case EV_UNPLUG:
		ev_unplug(ru, ev);
		break;
	case EV_UNPLUG_STATE:
		ev_unplug_state(ru, ev);
		break;
	case EV_MAP:
		ev_map(ru, ev, false);
		break;
	case EV_UNMAP:
		ev_map(ru, ev, true);
		break;
	case EV_UNMAP_HOLE:
		ev_unmap_hole(ru, ev);
		break;
	case EV_UNMAP_PARTIAL:
		ev_unmap_partial(ru, ev);
		break;
	case EV_SIZE_FAIL:
		/*
		 * The devices' state size cannot be read for a while, or
		 * until the end: an unknown size is too large to switch
		 * over, so only the strategy force ends the pre-copy then.
		 */
		ksim_fail_feature(r->k, VK_VFIO_DEVICE_FEATURE_MIG_DATA_SIZE,
				  EIO, ev->times);
		rig_logf(r, "chaos: MIG_DATA_SIZE fails (EIO) %d time(s)",
			 ev->times);
		for (int i = 0; i < ru->sc->nr_devs; i++) {
			if (!ru->sc->devs[i].mig)
				continue;
			pthread_mutex_lock(&ru->lock);
			ru->cl_done[CL_SIZE_FAIL]++;
			pthread_mutex_unlock(&ru->lock);
			break;
		}
		break;
	case EV_VCPU_FAIL:
		/* Its reads fail: failed, restarted (or replaced). */
		if (!ru->sc->vcpu_writes)
			break;
		rig_vcpu_fail(r, 1 + (int)(ev->seed % 3));
		rig_logf(r, "chaos: the vCPU source's next %d read(s) fail",
			 1 + (int)(ev->seed % 3));
		pthread_mutex_lock(&ru->lock);
		ru->cl_done[CL_VCPU_RESTART]++;
		pthread_mutex_unlock(&ru->lock);
		break;
	case EV_FAIL_READ:
		ksim_fail_request(r->k, ev->request, EIO, ev->times);
		rig_logf(r, "chaos: %s fails (EIO) %d time(s)",
			 ev->request == VFIO_IOMMU_DIRTY_PAGES
				 ? "VFIO_IOMMU_DIRTY_PAGES/DEVICE_FEATURE"
				 : "IOMMU_HWPT_GET_DIRTY_BITMAP",
			 ev->times);
		break;
	case EV_LOG_BREAK:
		ev_log_break(ru, ev, ev->err);
		break;
	case EV_FAIL_NTH:
		ksim_fail_nth(r->k, (uint64_t)ev->times, EIO);
		rig_logf(r, "chaos: kernel call %d from now fails (EIO)",
			 ev->times);
		break;
	case EV_FIX:
		ksim_fail_clear(r->k);
		ev_log_break(ru, ev, 0);
		break;
	case EV_NR:
		break;
	}
	pthread_mutex_lock(&ru->lock);
	ev->done = true;
	ru->ev_done[ev->type]++;
	pthread_mutex_unlock(&ru->lock);
}

/* The progress callback: events due at this call, on the loop. */
static void on_progress(struct rig *r, const struct vmig_progress *p)
{
	struct run *ru = r->opaque;
	int i;

	(void)p;
	/* After the VMM's stop, the guest cannot write: no event. */
	if (!rig_guest_running(r))
		return;
	for (i = 0; i < ru->sc->nr_events; i++) {
		struct event *ev = &ru->sc->events[i];

		if (!ev->from_thread && !ev->done &&
		    ev->at <= r->progress_calls)
			run_event(ru, ev);
	}
}

/* The second thread: events at their times, while the migration runs. */
static void *thread_main(void *opaque)
{
	struct run *ru = opaque;
	struct scenario *sc = ru->sc;
	bool started = false;
	int i;

	for (;;) {
		struct event *next = NULL;
		uint64_t now;
		bool done;

		pthread_mutex_lock(&ru->lock);
		done = ru->done;
		pthread_mutex_unlock(&ru->lock);
		if (done)
			break;
		for (i = 0; i < sc->nr_events; i++) {
			struct event *ev = &sc->events[i];

			if (ev->from_thread && !ev->done &&
			    (!next || ev->at < next->at))
				next = ev;
		}
		if (!next)
			break;
		/*
		 * The API may be called from this thread during a migration
		 * (vmig.h), not before it began: wait for it (bounded: the
		 * main thread ends this loop when the migration is over).
		 */
		if (!started && !(started = vmig_engine_running(ru->r->src))) {
			usleep(200);
			continue;
		}
		now = (now_us() - ru->start_us) / 1000;
		if (now >= next->at) {
			run_event(ru, next);
			continue;
		}
		/* Bounded: the main thread says when it is over. */
		usleep(1000);
	}
	return NULL;
}

/* ------------------------------------------------------------------ */
/* One run                                                             */

static void add_writers(struct run *ru)
{
	struct scenario *sc = ru->sc;
	uint64_t rng = sc->seed ^ 0x5bd1e995u;
	int i;

	for (i = 0; i < sc->nr_devs; i++) {
		struct cdev *d = &sc->devs[i];
		uint32_t writes = 1 + (uint32_t)rig_below(&rng, 16);

		if (d->manual)
			rig_writer_add(ru->r, d->name, 0,
				       sc->spaces[d->space].label, writes,
				       d->write_size, rig_rand(&rng), true);
		if (d->pasid)
			rig_writer_add(ru->r, d->name, d->pasid,
				       sc->spaces[d->pasid_space].label,
				       1 + (uint32_t)rig_below(&rng, 8),
				       RIG_PAGE, rig_rand(&rng), true);
	}
}

/* After a completed run: what the report says of each device. */
static void check_devices(struct run *ru, cJSON *rep)
{
	struct scenario *sc = ru->sc;
	int i;

	for (i = 0; i < sc->nr_devs; i++) {
		const struct cdev *d = &sc->devs[i];
		cJSON *o = rig_report_device(rep, d->name);
		const char *src, *prec;
		bool hp;

		if (!d->present)
			continue;
		if (!o) {
			/* Refused, or not added. */
			if (!d->hotplugged)
				run_fail(ru, "%s: not in the report", d->name);
			continue;
		}
		src = rig_str(o, "source");
		prec = rig_str(o, "precision");
		if (!*src) {
			/* Only a thread's hot-plug after tracking ended. */
			if (!(d->hotplugged && d->via_thread))
				run_fail(ru, "%s: no source", d->name);
			continue;
		}
		/*
		 * A thread's hot-plug can land after the migrating call
		 * began but before tracking started (the handshake): then
		 * it is no hot-plug for vmig (the report says so), and its
		 * policy does not apply.
		 */
		hp = d->hotplugged &&
		     cJSON_IsTrue(cJSON_GetObjectItem(o, "hotplugged"));
		if (hp && !hotplug_policy_reject(sc) &&
		    sc->pol.hotplug == VMIG_HOTPLUG_POLICY_DEGRADE &&
		    strcmp(src, "all-dirty"))
			run_fail(ru, "%s: hot-plugged with policy degrade, "
				 "tracked by %s", d->name, src);
		if (hp && hotplug_policy_reject(sc))
			run_fail(ru, "%s: hot-plugged with policy reject, "
				 "tracked by %s", d->name, src);
		if (d->mdev && !strcmp(src, "iommufd"))
			run_fail(ru, "%s: an mdev tracked by iommufd",
				 d->name);
		if (!strcmp(src, "all-dirty") && strcmp(prec, "all-mapped"))
			run_fail(ru, "%s: all-dirty with precision %s",
				 d->name, prec);
		if (!strcmp(prec, "none"))
			run_fail(ru, "%s: tracked by %s with precision none",
				 d->name, src);
		/* A stub's own log never reports: not to be relied on. */
		if (d->log == LOG_STUB && d->pattern != KSIM_DMA_NONE &&
		    !strcmp(src, "device-dirty"))
			run_fail(ru, "%s: a DMA-ing stub tracked by its log",
				 d->name);
	}
}

struct tally {
	unsigned int runs, mismatches, completed, aborted;
	unsigned int events[EV_NR];
	unsigned int classes[CL_NR];
	unsigned int cut_src, cut_dst, cut_unresolved;
	uint64_t pages_written;
};

/*
 * After a cut run: exactly one side runs the guest (an unresolved ending
 * was settled by what the destination said), and the result that
 * rig_check judges: 0 when the destination runs it.
 */
static void cut_outcome(struct run *ru, const struct rig_cut_result *cr,
			struct rig_result *res)
{
	bool dst_runs = cr->dret == 0;
	bool src_gave_up = cr->ret == 0 || cr->unresolved;

	if (cr->cut) {
		ru->cl_done[CL_CUT]++;
		ru->cut_unresolved += cr->unresolved;
		ru->cut_dst += cr->dret == 0;
		ru->cut_src += cr->dret != 0;
	}
	if (dst_runs && !src_gave_up)
		run_fail(ru, "the guest runs twice: the destination started "
			 "it and the source resumed it (%s)",
			 vmig_strerror(cr->ret));
	if (!dst_runs && cr->ret == 0)
		run_fail(ru, "the guest runs nowhere: the source committed, "
			 "the destination did not start it (%s)",
			 vmig_strerror(cr->dret));
	if (cr->unresolved && cr->resolve_ret)
		run_fail(ru, "vmig_resolve: %s", vmig_strerror(cr->resolve_ret));
	res->resolved = cr->unresolved && dst_runs;
	res->ret = dst_runs ? 0 : cr->ret ? cr->ret : -EPIPE;
}

/* The classes a scenario drew in its layout (events count their own). */
static void scenario_classes(const struct scenario *sc, unsigned int *cl)
{
	int i, j;

	for (i = 0; i < sc->nr_devs; i++) {
		const struct cdev *d = &sc->devs[i];

		if (d->hotplugged)
			continue;
		cl[CL_PINNED_PCI] += d->pins;
		cl[CL_HUGE_DEFAULT] += sc->spaces[d->space].big && !d->mdev;
		if (sc->spaces[d->space].type != SP_T1 || !d->mdev)
			continue;
		for (j = 0; j < sc->nr_devs; j++)
			if (!sc->devs[j].hotplugged && !sc->devs[j].mdev &&
			    sc->devs[j].space == d->space) {
				cl[CL_MIXED_CONTAINER]++;
				break;
			}
	}
}

static bool run_seed(uint64_t seed, struct tally *t)
{
	struct scenario sc;
	struct rig_buf json = { 0 };
	struct rig_result res = { 0 };
	struct run ru = { 0 };
	pthread_t th;
	char err[512];
	bool ok, thread = false;
	uint64_t t0 = now_us();
	cJSON *rep;
	int i, ret;

	draw_scenario(&sc, seed);
	json_build(&json, &sc);
	ru.sc = &sc;
	pthread_mutex_init(&ru.lock, NULL);
	if (json.nomem) {
		snprintf(ru.fail, sizeof(ru.fail), "out of memory");
		goto out;
	}
	ret = rig_new(json.p, &ru.r, err, sizeof(err));
	if (ret < 0) {
		snprintf(ru.fail, sizeof(ru.fail), "setting up: %s (%s)", err,
			 vmig_strerror(ret));
		goto out;
	}
	ru.r->opaque = &ru;
	ru.r->progress = on_progress;
	if (sc.pasid_off)
		ksim_iommufd_set_pasid_attach(ru.r->k, false);
	ret = rig_policies(ru.r, &sc.pol);
	if (ret < 0) {
		snprintf(ru.fail, sizeof(ru.fail), "policies: %s",
			 vmig_errmsg(ru.r->src));
		goto out;
	}
	add_writers(&ru);
	if (sc.vcpu_writes) {
		ret = rig_vcpu_add(ru.r, sc.vcpu_writes, sc.seed,
				   sc.vcpu_region);
		if (ret < 0) {
			snprintf(ru.fail, sizeof(ru.fail), "vCPUs: %s",
				 vmig_strerror(ret));
			goto out;
		}
	}

	ru.start_us = now_us();
	thread = pthread_create(&th, NULL, thread_main, &ru) == 0;
	if (!thread)
		run_fail(&ru, "cannot start the event thread");
	if (sc.cut) {
		struct rig_cut_result cr = { 0 };

		rig_migrate_cut(ru.r, &sc.cut_at, &cr);
		cut_outcome(&ru, &cr, &res);
	} else {
		res.ret = rig_migrate(ru.r);
	}
	pthread_mutex_lock(&ru.lock);
	ru.done = true;
	pthread_mutex_unlock(&ru.lock);
	if (thread)
		pthread_join(th, NULL);
	/* What the events left broken is repaired, for the teardown. */
	ksim_fail_clear(ru.r->k);

	ok = rig_check(ru.r, &res);
	if (!ok)
		run_fail(&ru, "%s", res.what);
	if (res.ret && !sc.may_abort && !sc.cut)
		run_fail(&ru, "the migration failed with no failure injected "
			 "that may end it: %s", vmig_errmsg(ru.r->src));
	rep = rig_report(ru.r->src);
	if (res.ret == 0 && rep)
		check_devices(&ru, rep);
	cJSON_Delete(rep);
	t->pages_written += res.pages_written;
	if (res.ret == 0)
		t->completed++;
	else
		t->aborted++;
	for (i = 0; i < EV_NR; i++)
		t->events[i] += ru.ev_done[i];
	scenario_classes(&sc, ru.cl_done);
	t->cut_src += ru.cut_src;
	t->cut_dst += ru.cut_dst;
	t->cut_unresolved += ru.cut_unresolved;
	for (i = 0; i < CL_NR; i++)
		t->classes[i] += ru.cl_done[i];
out:
	t->runs++;
	ok = !ru.fail[0];
	if (!ok)
		t->mismatches++;
	if (!ok || verbose)
		printf("seed %llu: %s%s%s (%d region(s), %d space(s), %d "
		       "device(s), %d event(s), %s, %u connection(s), %llu "
		       "page(s) written, %llu ms)\n",
		       (unsigned long long)seed, ok ? "ok" : "MISMATCH: ",
		       ok ? "" : ru.fail,
		       ok ? (res.ret ? ", aborted" : ", completed") : "",
		       sc.nr_regions, sc.nr_spaces, sc.nr_devs, sc.nr_events,
		       sc.pol.tracking ? "all-or-nothing" : "mixed",
		       sc.pol.connections,
		       (unsigned long long)res.pages_written,
		       (unsigned long long)(now_us() - t0) / 1000);
	if ((!ok || verbose > 1) && ru.r) {
		if (res.ret)
			printf("  migration: %s\n", vmig_errmsg(ru.r->src));
		if (verbose) {
			printf("  configuration:\n%s", json.p);
			printf("  log (last lines):\n%s", ru.r->log);
		}
	}
	fflush(stdout);
	rig_free(ru.r);
	rig_buf_free(&json);
	pthread_mutex_destroy(&ru.lock);
	return ok;
}

static void usage(void)
{
	fprintf(stderr, "usage: vmig-chaos [--seeds N] [--first S] [-v|-vv]\n");
}

int main(int argc, char **argv)
{
	uint64_t first = 1, n = 50, s;
	struct tally t = { 0 };
	uint64_t t0 = now_us();
	int i;

	for (i = 1; i < argc; i++) {
		if (rig_seed_arg(argc, argv, &i, &first, &n))
			continue;
		if (!strcmp(argv[i], "-v")) {
			verbose++;
		} else if (!strcmp(argv[i], "-vv")) {
			verbose += 2;
		} else {
			usage();
			return 2;
		}
	}
	for (s = first; s < first + n; s++)
		run_seed(s, &t);
	printf("seeds %llu..%llu: %u completed, %u ended by an injected "
	       "failure (guest resumed, nothing missed); %llu page(s) "
	       "written; %.1f s\n",
	       (unsigned long long)first,
	       (unsigned long long)(first + n - 1), t.completed, t.aborted,
	       (unsigned long long)t.pages_written,
	       (double)(now_us() - t0) / 1e6);
	printf("events:");
	for (i = 0; i < EV_NR; i++)
		printf(" %s %u", ev_names[i], t.events[i]);
	printf("\nclasses:");
	for (i = 0; i < CL_NR; i++)
		printf(" %s %u", cl_names[i], t.classes[i]);
	printf("\ncuts: the guest ran on the source after %u, on the "
	       "destination after %u; %u left it unresolved, settled with "
	       "vmig_resolve",
	       t.cut_src, t.cut_dst, t.cut_unresolved);
	printf("\n%u runs, %u mismatches\n", t.runs, t.mismatches);
	return t.mismatches ? 1 : 0;
}
