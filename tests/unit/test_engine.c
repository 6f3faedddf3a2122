/*
 * test_engine.c: live migrations in one process, through the C API.
 *
 * A source session runs over the kernel simulator with two simulated
 * devices (a vfio-pci function and an mdev, tracked by the vfio-type1
 * plugin) whose DMA engines a "guest" thread steps continuously while the
 * guest runs; the VMM callbacks stop it, resume it and count. A
 * destination session has memory of the same layout. vmig_migrate_local()
 * (a socket pair) or vmig_migrate() and vmig_receive() (real sockets, the
 * destination in a thread) move the guest, and the tests check the
 * outcome against the two memories compared page by page, the callbacks,
 * the report and the timing: convergence, max_iterations and the timeout
 * with both strategies, the bandwidth cap, cancellation from another
 * thread, a forced digest mismatch, a destination that refuses the
 * stream, vCPU dirty sources and the API's errors.
 */
#include <errno.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <signal.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include <cjson/cJSON.h>
#include <vmig/vmig.h>

#include "core/bitmap.h"
#include "core/engine.h"
#include "core/internal.h"
#include <vmig/linux-uapi.h>
#include "ksim/ksim.h"
#include "testutil.h"
#include "unit/sessionutil.h"
#include "common/receiver.h"
#include "common/vcpu_plugin.h"
#include "sim/guest.h"
#include "tool/vmig_tool.h"

#define PG 4096u
#define MiB (1u << 20)
#define R0_LEN (8 * MiB)    /* gpa 0 */
#define R1_LEN (4 * MiB)    /* gpa 4 GiB */
#define R1_GPA 0x100000000ull
#define NIC_IOVA MiB        /* the vfio-pci function: [1, 5) MiB of r0 */
#define NIC_LEN (4 * MiB)

static uint64_t now_us(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000000u + (uint64_t)ts.tv_nsec / 1000u;
}

/* ------------------------------------------------------------------ */
/* The guest and the VMM callbacks                                     */

struct guest {
	/*
	 * The thread stepping the devices while the guest runs, and the
	 * VMM callbacks' counts (tests/sim/guest.c). While a migration
	 * runs, the guest takes STEPS_PER_SYNC steps between two syncs
	 * (the observer's sync waits for them): what the devices write
	 * per iteration does not depend on the machine.
	 */
	struct sim_guest sim;
	/* Set by the progress callback: a migration runs. */
	bool progressed;
	/* vCPU writes (the GPA source test): a page of memory to bump. */
	uint8_t *vcpu_mem;
	size_t vcpu_pages;
	uint64_t *vcpu_log; /* what the fake vCPU source reports */
	/* Written into the destination's memory at the stop (mismatch). */
	uint8_t *scribble;
};

#define STEPS_PER_SYNC 4u

/* After each device step: the "vCPU" writes a page, when it has one. */
static void vcpu_step(void *opaque, uint64_t step)
{
	struct guest *g = opaque;
	size_t pg;

	if (!g->vcpu_mem)
		return;
	pg = (size_t)(step * 7919) % g->vcpu_pages;
	g->vcpu_mem[pg * PG + step % PG]++;
	__atomic_or_fetch(&g->vcpu_log[pg / 64], 1ull << (pg % 64),
			  __ATOMIC_RELAXED);
}

/* Starts the guest's thread (with a kernel to step), or only its VMM. */
static void guest_start(struct guest *g, struct ksim *k, bool lockstep)
{
	struct sim_guest_params p = {
		.k = k,
		.step_us = 200,
		.steps_per_sync = STEPS_PER_SYNC,
		.lockstep = lockstep,
		.step = vcpu_step,
		.step_opaque = g,
	};

	memset(g, 0, sizeof(*g));
	sim_guest_init(&g->sim, &p);
	if (k)
		CU_ASSERT_FATAL(sim_guest_spawn(&g->sim) == 0);
}

static int vmm_stop(void *opaque)
{
	struct guest *g = opaque;

	sim_guest_stop(&g->sim);
	if (g->scribble)
		g->scribble[17] ^= 0x55;
	return 0;
}

static int vmm_resume(void *opaque)
{
	return sim_guest_resume(&((struct guest *)opaque)->sim);
}

static int vmm_start(void *opaque)
{
	return sim_guest_start(&((struct guest *)opaque)->sim);
}

/* The guest observes the source session's syncs. */
static void guest_observe_sync(void *opaque, bool after,
			       struct vmig_sync_truth *truth)
{
	(void)truth;
	sim_guest_sync(&((struct guest *)opaque)->sim, after);
}

static const struct vmig_observer guest_observer = {
	.size = sizeof(struct vmig_observer),
	.sync = guest_observe_sync,
};

static const struct vmig_vmm_ops vmm_ops = {
	.size = sizeof(struct vmig_vmm_ops),
	.stop = vmm_stop,
	.resume = vmm_resume,
	.start = vmm_start,
};

/* ------------------------------------------------------------------ */
/* Rigs                                                                */

struct rig {
	struct ksim *k;
	vmig_session *src, *dst;
	uint8_t *smem[2], *dmem[2];
	size_t len[2];
	struct guest g;    /* the source's guest */
	struct guest dg;   /* the destination's VMM (start only) */
	char msg[1024];    /* the source's error, kept */
	char log[16384];
	/* vmig_cancel(src) from the log, at the first line with this. */
	const char *cancel_at;
	bool cancel_sent;
	int cancel_ret;
	/* Progress reports. */
	unsigned int progress_calls;
	uint32_t max_iteration;
	bool progress_known_downtime;
};

static void rig_progress(void *opaque, const struct vmig_progress *p)
{
	struct rig *r = opaque;

	CU_ASSERT_EQUAL(p->size, sizeof(*p));
	r->progress_calls++;
	if (p->iteration > r->max_iteration)
		r->max_iteration = p->iteration;
	pthread_mutex_lock(&r->g.sim.lock);
	r->g.progressed = true;
	pthread_cond_broadcast(&r->g.sim.cond);
	pthread_mutex_unlock(&r->g.sim.lock);
	if (p->iteration > 0 && p->expected_downtime_us != UINT64_MAX)
		r->progress_known_downtime = true;
}

static void rig_log(void *opaque, enum vmig_log_level level, const char *msg)
{
	struct rig *r = opaque;
	size_t n = strlen(r->log);

	(void)level;
	if (n < sizeof(r->log) - 1)
		snprintf(r->log + n, sizeof(r->log) - n, "%s\n", msg);
	if (r->cancel_at && !r->cancel_sent && strstr(msg, r->cancel_at)) {
		r->cancel_sent = true;
		r->cancel_ret = vmig_cancel(r->src);
	}
}

static uint8_t *map_mem(size_t len)
{
	uint8_t *p = mmap(NULL, len, PROT_READ | PROT_WRITE,
			  MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);

	CU_ASSERT_FATAL(p != MAP_FAILED);
	return p;
}

static void add_regions(vmig_session *s, uint8_t *const mem[2],
			const size_t len[2])
{
	struct vmig_region r = { .size = sizeof(r), .fd = -1 };

	r.name = "low";
	r.gpa = 0;
	r.length = len[0];
	r.hva = mem[0];
	CU_ASSERT_FATAL(vmig_region_add(s, &r, NULL) == 0);
	r.name = "high";
	r.gpa = R1_GPA;
	r.length = len[1];
	r.hva = mem[1];
	CU_ASSERT_FATAL(vmig_region_add(s, &r, NULL) == 0);
}

/* A device in its own group and container, with a DMA pattern. */
static void add_device(struct rig *r, const char *name,
		       enum ksim_device_kind kind, int group,
		       enum ksim_dma_pattern pattern, uint32_t writes,
		       uint64_t iova, uint64_t gpa, uint64_t len)
{
	const struct vmig_host *h = ksim_host(r->k);
	struct ksim_device_params dp = {
		.name = name, .kind = kind, .group = group,
		.dma = { .pattern = pattern, .writes_per_step = writes,
			 .seed = (uint64_t)group },
	};
	struct vmig_iommu io = { .size = sizeof(io),
				 .kind = VMIG_IOMMU_TYPE1, .name = name };
	struct vmig_device d = {
		.size = sizeof(d),
		.kind = kind == KSIM_DEV_MDEV ? VMIG_DEVICE_MDEV
					      : VMIG_DEVICE_VFIO_PCI,
		.name = name,
	};
	struct vmig_dma_map m = {
		.size = sizeof(m),
		.flags = VMIG_DMA_READ | VMIG_DMA_WRITE,
		.iova = iova, .length = len, .gpa = gpa,
	};
	char path[32];
	int cfd, gfd;

	CU_ASSERT_FATAL(ksim_device_add(r->k, &dp, NULL) == 0);
	cfd = h->open(h->kctx, "/dev/vfio/vfio", 2);
	snprintf(path, sizeof(path), "/dev/vfio/%d", group);
	gfd = h->open(h->kctx, path, 2);
	CU_ASSERT_FATAL(cfd >= 0 && gfd >= 0);
	CU_ASSERT_FATAL(h->ioctl(h->kctx, gfd, VFIO_GROUP_SET_CONTAINER,
				 &cfd) == 0);
	CU_ASSERT_FATAL(h->ioctl(h->kctx, cfd, VFIO_SET_IOMMU,
				 (void *)(uintptr_t)VFIO_TYPE1v2_IOMMU) == 0);
	io.fd = cfd;
	CU_ASSERT_FATAL(vmig_iommu_add(r->src, &io, &d.iommu_id) == 0);
	d.group_fd = gfd;
	d.device_fd = h->ioctl(h->kctx, gfd, VFIO_GROUP_GET_DEVICE_FD,
			       (void *)name);
	CU_ASSERT_FATAL(d.device_fd >= 0);
	CU_ASSERT_FATAL(vmig_device_add(r->src, &d, NULL) == 0);
	m.iommu_id = d.iommu_id;
	CU_ASSERT_FATAL(vmig_dma_map(r->src, &m) == 0);
}

static void fill(uint8_t *p, size_t len, uint64_t seed)
{
	vmig_test_fill_xorshift(p, len, seed * 0x9E3779B97F4A7C15ull + 1);
}

/*
 * Builds both sessions: memory (r0 data up to data0 bytes, the rest
 * zero; r1 half data), the devices, the callbacks; the guest thread runs.
 */
static void rig_init(struct rig *r, size_t data0, uint32_t nic_writes,
		     uint32_t vgpu_writes)
{
	struct vmig_session_params sp = { .size = sizeof(sp) };
	struct vmig_session_params dp = { .size = sizeof(dp),
					  .role = VMIG_ROLE_DESTINATION };

	memset(r, 0, sizeof(*r));
	CU_ASSERT_FATAL(ksim_new(NULL, &r->k) == 0);
	r->len[0] = R0_LEN;
	r->len[1] = R1_LEN;
	r->smem[0] = map_mem(R0_LEN);
	r->smem[1] = map_mem(R1_LEN);
	r->dmem[0] = map_mem(R0_LEN);
	r->dmem[1] = map_mem(R1_LEN);
	fill(r->smem[0], data0, 1);
	fill(r->smem[1], R1_LEN / 2, 2);
	/* Stale bytes where the source has zero pages: ZERO must clear. */
	memset(r->dmem[0] + R0_LEN - PG, 0xee, PG);

	sp.kernel = ksim_host(r->k);
	sp.log = rig_log;
	sp.log_opaque = r;
	sp.log_level = VMIG_LOG_DEBUG;
	sp.progress = rig_progress;
	sp.progress_opaque = r;
	CU_ASSERT_FATAL(vmig_session_new(&sp, &r->src) == 0);
	dp.log = rig_log;
	dp.log_opaque = r;
	dp.log_level = VMIG_LOG_DEBUG;
	CU_ASSERT_FATAL(vmig_session_new(&dp, &r->dst) == 0);
	add_regions(r->src, r->smem, r->len);
	add_regions(r->dst, r->dmem, r->len);
	CU_ASSERT_FATAL(vmig_plugin_add_path(r->src, VMIG_BUILD_PLUGIN_DIR) ==
			0);
	CU_ASSERT_FATAL(vmig_plugin_load(r->src, "vfio-type1") == 0);
	/* The function: all-mapped by type1; the mdev: exact. */
	add_device(r, "0000:01:00.0", KSIM_DEV_PCI, 1, KSIM_DMA_RANDOM,
		   nic_writes, NIC_IOVA, NIC_IOVA, NIC_LEN);
	add_device(r, "mdev-1", KSIM_DEV_MDEV, 2, KSIM_DMA_HOTSPOT,
		   vgpu_writes, R1_GPA, R1_GPA, R1_LEN);

	guest_start(&r->g, r->k, true);
	guest_start(&r->dg, NULL, false);
	CU_ASSERT_FATAL(vmig_set_observer(r->src, &guest_observer, &r->g) ==
			0);
	CU_ASSERT_FATAL(vmig_set_vmm_ops(r->src, &vmm_ops, &r->g) == 0);
	CU_ASSERT_FATAL(vmig_set_vmm_ops(r->dst, &vmm_ops, &r->dg) == 0);
}

static void rig_fini(struct rig *r)
{
	sim_guest_quit(&r->g.sim);
	vmig_session_free(r->src);
	vmig_session_free(r->dst);
	ksim_free(r->k);
	munmap(r->smem[0], R0_LEN);
	munmap(r->smem[1], R1_LEN);
	munmap(r->dmem[0], R0_LEN);
	munmap(r->dmem[1], R1_LEN);
	sim_guest_fini(&r->g.sim);
	sim_guest_fini(&r->dg.sim);
}

static void policies(struct rig *r, uint64_t downtime_ms, uint32_t max_iter,
		     uint32_t strategy, uint64_t timeout_ms, uint64_t bw)
{
	struct vmig_policies p = {
		.size = sizeof(p),
		.downtime_limit_ms = downtime_ms,
		.max_iterations = max_iter,
		.timeout_strategy = strategy,
		.timeout_ms = timeout_ms,
		.bandwidth_limit = bw,
		.verify = VMIG_VERIFY_STRICT,
	};

	CU_ASSERT_FATAL(vmig_set_policies(r->src, &p) == 0);
}

/* Destination pages unlike the source's (the guest is stopped). */
static uint64_t pages_differing(struct rig *r)
{
	uint64_t n = 0;
	size_t i, pg;

	for (i = 0; i < 2; i++)
		for (pg = 0; pg < r->len[i] / PG; pg++)
			n += memcmp(r->smem[i] + pg * PG, r->dmem[i] + pg * PG,
				    PG) != 0;
	return n;
}

static double num(cJSON *o, const char *key)
{
	cJSON *v = cJSON_GetObjectItem(o, key);

	CU_ASSERT_FATAL(cJSON_IsNumber(v));
	return v->valuedouble;
}

static const char *str(cJSON *o, const char *key)
{
	const char *v = cJSON_GetStringValue(cJSON_GetObjectItem(o, key));

	CU_ASSERT_FATAL(v != NULL);
	return v;
}

/* ------------------------------------------------------------------ */
/* Migrations that complete                                            */

static void check_completed(struct rig *r, int ret)
{
	cJSON *rep;

	if (ret)
		fprintf(stderr, "\n  migration: %s\n", vmig_errmsg(r->src));
	CU_ASSERT_EQUAL_FATAL(ret, 0);
	CU_ASSERT_EQUAL(pages_differing(r), 0);
	CU_ASSERT_EQUAL(r->g.sim.stops, 1);
	CU_ASSERT_EQUAL(r->g.sim.resumes, 0);
	CU_ASSERT_EQUAL(r->dg.sim.starts, 1);
	/* Tracking ended with the migration. */
	CU_ASSERT_EQUAL(vmig_dirty_sync(r->src), -EINVAL);
	rep = json_session_report(r->src);
	CU_ASSERT_STRING_EQUAL(str(rep, "result"), "completed");
	CU_ASSERT(cJSON_IsTrue(cJSON_GetObjectItem(rep, "memory_match")));
	CU_ASSERT_STRING_EQUAL(str(rep, "digest"), str(rep, "peer_digest"));
	CU_ASSERT_STRING_EQUAL(str(rep, "guest"), "migrated");
	cJSON_Delete(rep);
	rep = json_session_report(r->dst);
	CU_ASSERT_STRING_EQUAL(str(rep, "role"), "destination");
	CU_ASSERT_STRING_EQUAL(str(rep, "result"), "completed");
	CU_ASSERT_STRING_EQUAL(str(rep, "guest"), "started");
	cJSON_Delete(rep);
}

/*
 * The devices write during the whole pre-copy: the downtime limit can
 * never be met (the vfio-pci function is all-mapped: 4 MiB every sync),
 * so after max_iterations the strategy forces the switchover. Every
 * iteration saw writes; the memories end equal.
 */
static void test_writes_during_precopy(void)
{
	struct rig r;
	cJSON *rep, *it;
	uint64_t steps;
	int ret, n = 0;

	rig_init(&r, 6 * MiB, 64, 32);
	policies(&r, 1, 4, VMIG_TIMEOUT_STRATEGY_FORCE, 0, 0);
	ret = vmig_migrate_local(r.src, r.dst);
	steps = r.g.sim.steps;
	check_completed(&r, ret);
	CU_ASSERT(steps > 4);
	rep = json_session_report(r.src);
	CU_ASSERT_EQUAL(cJSON_GetArraySize(cJSON_GetObjectItem(rep,
							       "iterations")),
			5);
	cJSON_ArrayForEach(it, cJSON_GetObjectItem(rep, "iterations")) {
		if (n++ == 0)
			continue;
		/* Each sync found the function's mapping, at least. */
		CU_ASSERT(num(it, "pages_dirty") >= NIC_LEN / PG);
		CU_ASSERT(num(it, "pages_sent") + num(it, "zero_pages") ==
			  num(it, "pages_dirty"));
	}
	it = cJSON_GetArrayItem(cJSON_GetObjectItem(rep, "iterations"), 4);
	CU_ASSERT_STRING_EQUAL(str(it, "phase"), "stop-copy");
	CU_ASSERT(has(r.log, "switching over anyway (strategy force)"));
	/* Progress after each iteration, with an estimate once known. */
	CU_ASSERT(r.progress_calls >= 4);
	CU_ASSERT(r.max_iteration >= 3); /* 4: the stop-copy phase */
	CU_ASSERT(r.progress_known_downtime);
	cJSON_Delete(rep);
	rig_fini(&r);
}

/*
 * A generous downtime limit: the first iteration is enough. Zero pages
 * travel as ZERO frames, not as 4 KiB of zeros.
 */
static void test_converges_zero_pages(void)
{
	struct rig r;
	cJSON *rep, *it0;
	double zero_pages, dev_pages;

	rig_init(&r, 2 * MiB, 8, 8);
	policies(&r, 60000, 0, 0, 0, 0);
	check_completed(&r, vmig_migrate_local(r.src, r.dst));
	rep = json_session_report(r.src);
	CU_ASSERT_EQUAL(cJSON_GetArraySize(cJSON_GetObjectItem(rep,
							       "iterations")),
			2);
	it0 = cJSON_GetArrayItem(cJSON_GetObjectItem(rep, "iterations"), 0);
	zero_pages = num(it0, "zero_pages");
	/*
	 * r0: 2 MiB data of 8; r1: 2 of 4; less what the devices wrote
	 * before the first sync: STEPS_PER_SYNC steps before the migration
	 * and as many in the first interval, each of 8 + 8 writes of a page
	 * (two, where a write straddles a page boundary).
	 */
	dev_pages = 2.0 * 2 * STEPS_PER_SYNC * (8 + 8);
	CU_ASSERT(zero_pages >= (6 * MiB + 2 * MiB) / PG - dev_pages);
	CU_ASSERT_EQUAL(num(it0, "pages_sent") + zero_pages,
			(R0_LEN + R1_LEN) / PG);
	/* The stream carried the data pages, not the zero ones. */
	CU_ASSERT(num(it0, "bytes") < (4 * MiB + dev_pages * PG) * 1.05);
	CU_ASSERT(num(rep, "expected_downtime_ms") <= 60000);
	CU_ASSERT(has(r.log, "converged after 1 iteration(s)"));
	cJSON_Delete(rep);
	rig_fini(&r);
}

/*
 * A clock that only the engine's pacing moves: a migration under it
 * takes, on that clock, exactly the time the bandwidth limit makes it
 * wait, however fast or loaded the machine is.
 */
struct vclock {
	uint64_t now;
	uint64_t waits;
};

static uint64_t vclock_now(void *opaque)
{
	return __atomic_load_n(&((struct vclock *)opaque)->now,
			       __ATOMIC_ACQUIRE);
}

static void vclock_advance(void *opaque, uint64_t us)
{
	struct vclock *c = opaque;

	__atomic_add_fetch(&c->now, us, __ATOMIC_ACQ_REL);
	__atomic_add_fetch(&c->waits, 1, __ATOMIC_RELAXED);
}

/* The bandwidth cap holds over a whole migration, on the engine's clock. */
static void test_bandwidth_cap(void)
{
	const uint64_t cap = 16 * MiB;
	struct vclock vc = { .now = 1000000 };
	const struct vmig_test_clock clock = {
		.now = vclock_now, .advance = vclock_advance, .opaque = &vc,
	};
	struct rig r;
	cJSON *rep;
	double bytes, us, rate;

	rig_init(&r, 6 * MiB, 4, 4);
	policies(&r, 60000, 0, 0, 0, cap);
	vmig_test_clock_set(&clock);
	check_completed(&r, vmig_migrate_local(r.src, r.dst));
	vmig_test_clock_set(NULL);
	rep = json_session_report(r.src);
	bytes = num(rep, "total_bytes");
	us = num(rep, "duration_us");
	rate = bytes * 1e6 / us;
	if (rate > cap * 1.15 || rate < cap * 0.9)
		fprintf(stderr, "\n  %.0f bytes in %.0f us: %.0f B/s\n", bytes,
			us, rate);
	/* About 8 MiB of data at 16 MiB/s: half a second, not less. */
	CU_ASSERT(bytes > 7.5 * MiB);
	CU_ASSERT(vc.waits > 0);
	/*
	 * The token bucket lets one burst (1 MiB here) through on top of
	 * the rate, and never waits longer than a page's worth of tokens.
	 */
	CU_ASSERT(bytes <= (double)cap * us / 1e6 + MiB + 300 * 1024);
	CU_ASSERT(rate >= cap * 0.9);
	cJSON_Delete(rep);
	rig_fini(&r);
}

/* The timeout with strategy force switches over when it fires. */
static void test_timeout_force(void)
{
	struct rig r;
	uint64_t t0, us;

	rig_init(&r, 6 * MiB, 64, 32);
	policies(&r, 1, 1000, VMIG_TIMEOUT_STRATEGY_FORCE, 200, 32 * MiB);
	t0 = now_us();
	check_completed(&r, vmig_migrate_local(r.src, r.dst));
	us = now_us() - t0;
	CU_ASSERT(has(r.log, "timeout after 200 ms"));
	CU_ASSERT(has(r.log, "switching over (strategy force)"));
	CU_ASSERT(us >= 190000); /* a coarse clock: a few ms either way */
	rig_fini(&r);
}

/* ------------------------------------------------------------------ */
/* Migrations that do not complete                                     */

/*
 * The source's guest runs again; the destination's never started. The
 * VMM's resume ran exactly when vmig had stopped the guest.
 */
static void check_resumed(struct rig *r, int ret, int want,
			  const char *result)
{
	cJSON *rep;

	CU_ASSERT_EQUAL(ret, want);
	CU_ASSERT(r->g.sim.stops <= 1);
	CU_ASSERT_EQUAL(r->g.sim.resumes, r->g.sim.stops);
	CU_ASSERT(r->g.sim.running);
	CU_ASSERT_EQUAL(r->dg.sim.starts, 0);
	rep = json_session_report(r->src);
	CU_ASSERT_STRING_EQUAL(str(rep, "result"), result);
	CU_ASSERT_STRING_EQUAL(str(rep, "guest"), "running");
	CU_ASSERT_EQUAL(cJSON_IsTrue(cJSON_GetObjectItem(rep,
							 "guest_resumed")),
			r->g.sim.stops == 1);
	CU_ASSERT_STRING_EQUAL(str(rep, "error"), vmig_errmsg(r->src));
	cJSON_Delete(rep);
	rep = json_session_report(r->dst);
	CU_ASSERT_STRING_EQUAL(str(rep, "guest"), "not started");
	CU_ASSERT_STRING_EQUAL(str(rep, "result"),
			       want == -ECANCELED || want == -ETIMEDOUT
				       ? "cancelled"
				       : "failed");
	cJSON_Delete(rep);
	/* Tracking stopped (this call's error replaces the message). */
	snprintf(r->msg, sizeof(r->msg), "%s", vmig_errmsg(r->src));
	CU_ASSERT_EQUAL(vmig_dirty_sync(r->src), -EINVAL);
}

static void test_max_iterations_cancel(void)
{
	struct rig r;

	rig_init(&r, 6 * MiB, 64, 32);
	policies(&r, 1, 3, VMIG_TIMEOUT_STRATEGY_CANCEL, 0, 0);
	check_resumed(&r, vmig_migrate_local(r.src, r.dst), -ETIMEDOUT,
		      "cancelled");
	CU_ASSERT(has(r.msg,
		      "did not converge in 3 iteration(s) (max_iterations)"));
	/* Which part is over the limit, and by how much. */
	CU_ASSERT(has(r.msg, "over the 1 ms limit by "));
	CU_ASSERT(has(r.msg, "memory still dirty "));
	CU_ASSERT(has(r.msg, "; mostly "));
	CU_ASSERT(has(vmig_errmsg(r.dst), "the source ended the migration: "
					  "did not converge in 3"));
	rig_fini(&r);
}

static void test_timeout_cancel(void)
{
	struct rig r;
	uint64_t t0, us;

	rig_init(&r, 6 * MiB, 8, 8);
	/* 2 MiB/s: the first iteration alone would take seconds. */
	policies(&r, 300, 0, VMIG_TIMEOUT_STRATEGY_CANCEL, 250, 2 * MiB);
	t0 = now_us();
	check_resumed(&r, vmig_migrate_local(r.src, r.dst), -ETIMEDOUT,
		      "cancelled");
	us = now_us() - t0;
	/*
	 * At 2 MiB/s iteration 0 cannot end before 3 s: the timer decides,
	 * however slow the machine. It never fires early (libuv's clock is
	 * coarse: a few ms either way); how late it fires under load is not
	 * this test's business.
	 */
	CU_ASSERT(has(r.msg, "timeout after 250 ms (timeout_ms) "
					  "at iteration 0"));
	if (us < 240000)
		fprintf(stderr, "\n  timeout after %llu us\n",
			(unsigned long long)us);
	CU_ASSERT(us >= 240000);
	CU_ASSERT_EQUAL(r.g.sim.stops, 0);
	rig_fini(&r);
}

struct canceller {
	vmig_session *s;
	struct guest *g;
	int ret;
};

/*
 * Cancels once the migration reported progress (with a guest), or as
 * soon as a migration runs (without one: vmig_cancel says -EINVAL until
 * then). No guess of how long anything takes.
 */
static void *cancel_main(void *opaque)
{
	struct canceller *c = opaque;
	struct timespec ms = { 0, 1000000 };

	if (c->g) {
		pthread_mutex_lock(&c->g->sim.lock);
		while (!c->g->progressed)
			pthread_cond_wait(&c->g->sim.cond, &c->g->sim.lock);
		pthread_mutex_unlock(&c->g->sim.lock);
		c->ret = vmig_cancel(c->s);
		return NULL;
	}
	while ((c->ret = vmig_cancel(c->s)) == -EINVAL)
		nanosleep(&ms, NULL);
	return NULL;
}

static void test_cancel_from_thread(void)
{
	struct canceller c;
	pthread_t th;
	struct rig r;

	rig_init(&r, 6 * MiB, 8, 8);
	CU_ASSERT_EQUAL(vmig_cancel(r.src), -EINVAL); /* nothing runs */
	/*
	 * Never converges (the function's 4 MiB window is dirty at every
	 * sync, a second's worth at 4 MiB/s, over the 300 ms limit) and
	 * has no timeout: only the cancel can end it.
	 */
	policies(&r, 300, 0, 0, 0, 4 * MiB);
	c.s = r.src;
	c.g = &r.g;
	c.ret = 1;
	CU_ASSERT_FATAL(pthread_create(&th, NULL, cancel_main, &c) == 0);
	check_resumed(&r, vmig_migrate_local(r.src, r.dst), -ECANCELED,
		      "cancelled");
	pthread_join(th, NULL);
	CU_ASSERT_EQUAL(c.ret, 0);
	CU_ASSERT(has(r.msg, "cancelled (vmig_cancel)"));
	CU_ASSERT(has(vmig_errmsg(r.dst), "the source ended the migration: "
					  "cancelled"));
	CU_ASSERT_EQUAL(vmig_cancel(r.src), -EINVAL); /* over */
	rig_fini(&r);
}

/*
 * vmig_cancel() in the middle of iteration 0: asked once its ITERATION
 * frame is queued and before any page is (the log line that says so), it
 * ends the migration before the rest of memory is read, whatever the
 * size: the sender checks between batches, not only between iterations.
 * The guest never stopped and runs on the source.
 */
static void test_cancel_mid_iteration(void)
{
	struct rig r;
	cJSON *rep, *its, *it0;
	double sent;

	rig_init(&r, 6 * MiB, 8, 8);
	policies(&r, 60000, 0, 0, 0, 0);
	r.cancel_at = "source: iteration 0: ";
	check_resumed(&r, vmig_migrate_local(r.src, r.dst), -ECANCELED,
		      "cancelled");
	CU_ASSERT(r.cancel_sent);
	CU_ASSERT_EQUAL(r.cancel_ret, 0);
	CU_ASSERT_EQUAL(r.g.sim.stops, 0);
	CU_ASSERT(has(r.msg, "cancelled (vmig_cancel) at iteration 0"));
	rep = json_session_report(r.src);
	its = cJSON_GetObjectItem(rep, "iterations");
	CU_ASSERT_EQUAL_FATAL(cJSON_GetArraySize(its), 1);
	it0 = cJSON_GetArrayItem(its, 0);
	sent = num(it0, "pages_sent") + num(it0, "zero_pages");
	/* 12 MiB of guest: far less than one pump's worth (32 MiB). */
	CU_ASSERT(sent < (R0_LEN + R1_LEN) / PG);
	cJSON_Delete(rep);
	rig_fini(&r);
}

/*
 * The destination's memory changes behind its back after it received a
 * page: its digest differs, the source does not commit.
 */
static void test_digest_mismatch(void)
{
	struct rig r;

	rig_init(&r, 6 * MiB, 8, 8);
	policies(&r, 60000, 0, 0, 0, 0);
	/* Page 0 of r0: sent first, never written by a device. */
	r.g.scribble = r.dmem[0];
	check_resumed(&r, vmig_migrate_local(r.src, r.dst), VMIG_EMISMATCH,
		      "failed");
	CU_ASSERT_EQUAL(r.g.sim.stops, 1);
	CU_ASSERT(has(r.msg, "the destination's memory digest "));
	CU_ASSERT(has(r.msg, " differs from the source's "));
	CU_ASSERT(has(vmig_errmsg(r.dst), "the source ended the migration: "
					  "the destination's memory digest"));
	rig_fini(&r);
}

/* The source's policies with verify v (the others as policies()). */
static void policies_verify(struct rig *r, uint32_t v)
{
	struct vmig_policies p = {
		.size = sizeof(p),
		.downtime_limit_ms = 60000,
		.verify = v,
	};

	CU_ASSERT_FATAL(vmig_set_policies(r->src, &p) == 0);
}

/*
 * verify "audit" (the default): the source commits on ACK, then hashes
 * its stopped memory. Equal memories: completed, "audit": "match", the
 * destination's digest (kept as pages arrived) is its memory's.
 */
static void test_audit_match(void)
{
	struct rig r;
	uint64_t d;
	cJSON *rep;

	rig_init(&r, 6 * MiB, 8, 8);
	policies_verify(&r, VMIG_VERIFY_DEFAULT);
	check_completed(&r, vmig_migrate_local(r.src, r.dst));
	rep = json_session_report(r.src);
	CU_ASSERT_STRING_EQUAL(str(rep, "audit"), "match");
	CU_ASSERT_STRING_EQUAL(str(cJSON_GetObjectItem(rep, "policies"),
				   "verify"), "audit");
	CU_ASSERT_EQUAL(num(cJSON_GetObjectItem(rep, "downtime_parts_ms"),
			    "source_digest"), 0);
	cJSON_Delete(rep);
	rep = json_session_report(r.dst);
	CU_ASSERT_EQUAL_FATAL(vmig_memory_digest(r.dst, &d), 0);
	CU_ASSERT_EQUAL(strtoull(str(rep, "digest"), NULL, 16), d);
	cJSON_Delete(rep);
	rig_fini(&r);
}

/*
 * verify "audit": a write no source reported (the VMM's stop scribbles on
 * the source's memory, after the pages went) is found after COMMIT: the
 * guest runs on the destination, and the call says VMIG_EAUDIT.
 */
static void test_audit_mismatch(void)
{
	struct rig r;
	cJSON *rep;
	int ret;

	rig_init(&r, 6 * MiB, 8, 8);
	policies_verify(&r, VMIG_VERIFY_AUDIT);
	r.g.scribble = r.smem[0];
	ret = vmig_migrate_local(r.src, r.dst);
	CU_ASSERT_EQUAL(ret, VMIG_EAUDIT);
	CU_ASSERT_EQUAL(r.g.sim.stops, 1);
	CU_ASSERT_EQUAL(r.g.sim.resumes, 0);
	CU_ASSERT_EQUAL(r.dg.sim.starts, 1);
	CU_ASSERT(has(vmig_errmsg(r.src), "audit after COMMIT: the "
					  "destination's memory digest "));
	CU_ASSERT(has(vmig_strerror(VMIG_EAUDIT), "audit"));
	rep = json_session_report(r.src);
	CU_ASSERT_STRING_EQUAL(str(rep, "result"), "completed, audit failed");
	CU_ASSERT_STRING_EQUAL(str(rep, "audit"), "mismatch");
	CU_ASSERT_STRING_EQUAL(str(rep, "guest"), "migrated");
	CU_ASSERT(cJSON_IsFalse(cJSON_GetObjectItem(rep, "memory_match")));
	cJSON_Delete(rep);
	rep = json_session_report(r.dst);
	CU_ASSERT_STRING_EQUAL(str(rep, "guest"), "started");
	cJSON_Delete(rep);
	rig_fini(&r);
}

/* The same write under "strict": no COMMIT, the guest resumes here. */
static void test_strict_source_mismatch(void)
{
	struct rig r;

	rig_init(&r, 6 * MiB, 8, 8);
	policies_verify(&r, VMIG_VERIFY_STRICT);
	r.g.scribble = r.smem[0];
	check_resumed(&r, vmig_migrate_local(r.src, r.dst), VMIG_EMISMATCH,
		      "failed");
	rig_fini(&r);
}

/* strict, equal memories: compared before COMMIT, no audit after. */
static void test_strict_match(void)
{
	struct rig r;
	cJSON *rep;

	rig_init(&r, 6 * MiB, 8, 8);
	policies_verify(&r, VMIG_VERIFY_STRICT);
	check_completed(&r, vmig_migrate_local(r.src, r.dst));
	rep = json_session_report(r.src);
	CU_ASSERT(cJSON_IsNull(cJSON_GetObjectItem(rep, "audit")));
	CU_ASSERT_STRING_EQUAL(str(cJSON_GetObjectItem(rep, "policies"),
				   "verify"), "strict");
	cJSON_Delete(rep);
	rig_fini(&r);
}

/* verify "off": committed on ACK, nothing compared. */
static void test_verify_off(void)
{
	struct rig r;
	cJSON *rep;

	rig_init(&r, 6 * MiB, 8, 8);
	policies_verify(&r, VMIG_VERIFY_OFF);
	r.g.scribble = r.smem[0];
	CU_ASSERT_EQUAL(vmig_migrate_local(r.src, r.dst), 0);
	CU_ASSERT_EQUAL(r.dg.sim.starts, 1);
	rep = json_session_report(r.src);
	CU_ASSERT_STRING_EQUAL(str(rep, "result"), "completed");
	CU_ASSERT(cJSON_IsNull(cJSON_GetObjectItem(rep, "digest")));
	CU_ASSERT(cJSON_IsNull(cJSON_GetObjectItem(rep, "audit")));
	/* Nor did the destination hash anything (HELLO's NO_DIGEST). */
	CU_ASSERT(cJSON_IsNull(cJSON_GetObjectItem(rep, "peer_digest")));
	cJSON_Delete(rep);
	rep = json_session_report(r.dst);
	CU_ASSERT_STRING_EQUAL(str(rep, "result"), "completed");
	CU_ASSERT(cJSON_IsNull(cJSON_GetObjectItem(rep, "digest")));
	/* Nothing compared: not a match. */
	CU_ASSERT(cJSON_IsFalse(cJSON_GetObjectItem(rep, "memory_match")));
	cJSON_Delete(rep);
	rig_fini(&r);
}

/* A destination that refuses the layout: VMIG_EPROTO, with its reason. */
static void test_destination_refuses(void)
{
	struct vmig_session_params dp = { .size = sizeof(dp),
					  .role = VMIG_ROLE_DESTINATION };
	struct vmig_region reg = { .size = sizeof(reg), .fd = -1, .gpa = 0,
				   .length = R0_LEN / 2 };
	vmig_session *other;
	struct rig r;

	rig_init(&r, 2 * MiB, 8, 8);
	CU_ASSERT_FATAL(vmig_session_new(&dp, &other) == 0);
	reg.hva = r.dmem[0];
	CU_ASSERT_FATAL(vmig_region_add(other, &reg, NULL) == 0);
	CU_ASSERT_EQUAL(vmig_migrate_local(r.src, other), VMIG_EPROTO);
	CU_ASSERT(has(vmig_errmsg(r.src),
		      "the destination rejected the stream: frame 0 (HELLO): "
		      "the source has 2 region(s), this destination 1"));
	CU_ASSERT(has(vmig_errmsg(other), "frame 0 (HELLO): the source has 2 "
					  "region(s), this destination 1"));
	/* Never stopped, so never resumed: the guest ran all along. */
	CU_ASSERT_EQUAL(r.g.sim.resumes, 0);
	CU_ASSERT_EQUAL(r.g.sim.stops, 0);
	CU_ASSERT_EQUAL(vmig_dirty_sync(r.src), -EINVAL);
	vmig_session_free(other);
	rig_fini(&r);
}

/* ------------------------------------------------------------------ */
/* Sockets                                                             */

static void migrate_over(const char *address, const char *want_prefix)
{
	struct vmig_test_receiver rc;
	char bound[128];
	pthread_t th;
	struct rig r;
	cJSON *rep;
	int ret;

	rig_init(&r, 4 * MiB, 16, 16);
	policies(&r, 60000, 0, 0, 0, 0);
	CU_ASSERT_FATAL(vmig_listen(r.dst, address, bound, sizeof(bound)) ==
			0);
	CU_ASSERT(has(bound, want_prefix));
	/* A second listener on the same address is refused. */
	CU_ASSERT_EQUAL(vmig_listen(r.dst, address, NULL, 0), -EALREADY);
	rc.s = r.dst;
	rc.ret = 1;
	CU_ASSERT_FATAL(pthread_create(&th, NULL, vmig_test_receive_main,
				       &rc) == 0);
	ret = vmig_migrate(r.src, bound);
	pthread_join(th, NULL);
	check_completed(&r, ret);
	CU_ASSERT_EQUAL(rc.ret, 0);
	rep = json_session_report(r.dst);
	CU_ASSERT(cJSON_IsTrue(cJSON_GetObjectItem(rep, "memory_match")));
	cJSON_Delete(rep);
	rig_fini(&r);
}

static void test_unix_socket(void)
{
	char path[64], addr[80];

	snprintf(path, sizeof(path), "/tmp/vmig-engine-%d.sock", (int)getpid());
	snprintf(addr, sizeof(addr), "unix:%s", path);
	migrate_over(addr, addr);
	/* The socket file goes with the listener. */
	CU_ASSERT_EQUAL(access(path, F_OK), -1);
}

static void test_tcp_loopback(void)
{
	migrate_over("tcp:127.0.0.1:0", "tcp:127.0.0.1:");
	migrate_over("tcp:[::1]:0", "tcp:[::1]:");
}

/* A destination waiting for its source can be cancelled. */
static void test_cancel_destination(void)
{
	struct canceller c;
	struct vmig_test_receiver rc;
	pthread_t th, tc;
	char path[64], addr[80];
	struct rig r;

	rig_init(&r, MiB, 0, 0);
	snprintf(path, sizeof(path), "/tmp/vmig-engine-c-%d.sock",
		 (int)getpid());
	snprintf(addr, sizeof(addr), "unix:%s", path);
	CU_ASSERT_FATAL(vmig_listen(r.dst, addr, NULL, 0) == 0);
	rc.s = r.dst;
	rc.ret = 1;
	c.s = r.dst;
	c.g = NULL;
	c.ret = 1;
	CU_ASSERT_FATAL(pthread_create(&th, NULL, vmig_test_receive_main,
				       &rc) == 0);
	CU_ASSERT_FATAL(pthread_create(&tc, NULL, cancel_main, &c) == 0);
	pthread_join(tc, NULL);
	pthread_join(th, NULL);
	CU_ASSERT_EQUAL(c.ret, 0);
	CU_ASSERT_EQUAL(rc.ret, -ECANCELED);
	CU_ASSERT(has(vmig_errmsg(r.dst), "the destination was cancelled"));
	CU_ASSERT_EQUAL(r.dg.sim.starts, 0);
	/* The listener went with it, and its socket file. */
	CU_ASSERT_EQUAL(access(path, F_OK), -1);
	rig_fini(&r);
}

/*
 * A write to a socket whose peer is gone raises SIGPIPE, which kills the
 * process by default: around its loop, a migration blocks it in the
 * calling thread, so the write just fails (EPIPE), and consumes the
 * signal after. (Which of a read or a write notices a peer's death first
 * is a race in a real migration; here the write comes first for sure.)
 */
static void test_sigpipe_guard(void)
{
	struct vmig_sigpipe sp;
	sigset_t before, after, pending;
	int fds[2];

	CU_ASSERT_FATAL(socketpair(AF_UNIX, SOCK_STREAM, 0, fds) == 0);
	close(fds[1]);
	pthread_sigmask(SIG_SETMASK, NULL, &before);
	vmig_sigpipe_block(&sp);
	CU_ASSERT_EQUAL(write(fds[0], "x", 1), -1);
	CU_ASSERT_EQUAL(errno, EPIPE);
	vmig_sigpipe_restore(&sp);
	/* Consumed, and the caller's mask is back. */
	CU_ASSERT_EQUAL(sigpending(&pending), 0);
	CU_ASSERT_FALSE(sigismember(&pending, SIGPIPE));
	pthread_sigmask(SIG_SETMASK, NULL, &after);
	CU_ASSERT_EQUAL(sigismember(&after, SIGPIPE),
			sigismember(&before, SIGPIPE));
	close(fds[0]);
}

static void test_connect_refused(void)
{
	struct rig r;
	char addr[80];

	rig_init(&r, MiB, 4, 4);
	snprintf(addr, sizeof(addr), "unix:/tmp/vmig-engine-none-%d.sock",
		 (int)getpid());
	CU_ASSERT_EQUAL(vmig_migrate(r.src, addr), -ENOENT);
	CU_ASSERT(has(vmig_errmsg(r.src),
		      "connect unix:/tmp/vmig-engine-none"));
	CU_ASSERT_EQUAL(r.g.sim.resumes, 0);
	rig_fini(&r);
}

/* ------------------------------------------------------------------ */
/* vCPU sources                                                        */

/* A registered vCPU dirty source: what the guest thread's "vCPU" wrote. */
static uint64_t vcpu_log[R1_LEN / PG / 64];
static unsigned int vcpu_reads;

static int vcpu_create(const struct vmig_host *h, void **inst)
{
	(void)h;
	*inst = vcpu_log;
	return 0;
}

static int vcpu_read(void *inst, const struct vmig_read *rq, uint64_t *bm)
{
	uint64_t i, n = rq->length / PG;

	(void)inst;
	CU_ASSERT_EQUAL(rq->iommu_id, UINT32_MAX);
	if (rq->iova != R1_GPA)
		return 0; /* the vCPU writes r1 only */
	vcpu_reads++;
	for (i = 0; i < n / 64; i++)
		bm[i] = __atomic_exchange_n(&vcpu_log[i], 0, __ATOMIC_RELAXED);
	return 0;
}

static const struct vmig_source_ops vcpu_ops = {
	.size = sizeof(struct vmig_source_ops),
	.create = vcpu_create,
	.read = vcpu_read,
};

static const struct vmig_plugin vcpu_desc =
	VMIG_TEST_VCPU_PLUGIN("kvm-test", PG, vcpu_ops);

static void test_vcpu_source(void)
{
	struct rig r;
	cJSON *rep, *src;
	bool found = false;

	memset(vcpu_log, 0, sizeof(vcpu_log));
	vcpu_reads = 0;
	rig_init(&r, 4 * MiB, 8, 0);
	CU_ASSERT_FATAL(vmig_plugin_register(r.src, &vcpu_desc) == 0);
	pthread_mutex_lock(&r.g.sim.lock);
	r.g.vcpu_log = vcpu_log;
	r.g.vcpu_pages = R1_LEN / PG;
	r.g.vcpu_mem = r.smem[1];
	pthread_mutex_unlock(&r.g.sim.lock);
	policies(&r, 1, 3, VMIG_TIMEOUT_STRATEGY_FORCE, 0, 0);
	check_completed(&r, vmig_migrate_local(r.src, r.dst));
	CU_ASSERT(vcpu_reads >= 3);
	rep = json_session_report(r.src);
	cJSON_ArrayForEach(src, cJSON_GetObjectItem(rep, "sources")) {
		if (!strcmp(str(src, "name"), "kvm-test")) {
			found = true;
			CU_ASSERT(cJSON_IsTrue(cJSON_GetObjectItem(src,
								   "vcpu")));
			CU_ASSERT(num(src, "reads") >= 6);
		}
	}
	CU_ASSERT(found);
	cJSON_Delete(rep);
	rig_fini(&r);
}

/*
 * On the real kernel, without a vCPU source, a vCPU may have written any
 * page: every sync reports all of guest memory.
 */
static void test_real_kernel_without_vcpu_source(void)
{
	struct vmig_region reg = { .size = sizeof(reg), .fd = -1,
				   .length = 64 * PG };
	uint8_t *mem = map_mem(64 * PG);
	struct rig log = { 0 };
	struct vmig_session_params p = { .size = sizeof(p), .log = rig_log,
					 .log_opaque = &log,
					 .log_level = VMIG_LOG_WARN };
	vmig_session *s;

	CU_ASSERT_FATAL(vmig_session_new(&p, &s) == 0);
	reg.hva = mem;
	CU_ASSERT_FATAL(vmig_region_add(s, &reg, NULL) == 0);
	CU_ASSERT_FATAL(vmig_tracking_start(s) == 0);
	CU_ASSERT(has(log.log, "no vCPU dirty source runs"));
	CU_ASSERT_EQUAL(vmig_dirty_clear(s, 0), 0);
	CU_ASSERT_EQUAL(vmig_dirty_sync(s), 64);
	CU_ASSERT_EQUAL(vmig_dirty_clear(s, 0), 0);
	CU_ASSERT_EQUAL(vmig_dirty_sync(s), 64);
	vmig_session_free(s);
	munmap(mem, 64 * PG);
}

/*
 * A guest too small for any iteration to measure throughput (a few pages,
 * one of them always dirty): the engine must still estimate a downtime
 * and converge, not run out of iterations.
 */
static int tiny_read(void *inst, const struct vmig_read *rq, uint64_t *bm)
{
	(void)inst;
	(void)rq;
	bm[0] |= 1; /* the first page, every time */
	return 0;
}

static const struct vmig_source_ops tiny_ops = {
	.size = sizeof(struct vmig_source_ops),
	.create = vcpu_create,
	.read = tiny_read,
};

static const struct vmig_plugin tiny_desc =
	VMIG_TEST_VCPU_PLUGIN("tiny-vcpu", PG, tiny_ops);

static int noop_cb(void *opaque)
{
	(void)opaque;
	return 0;
}

static void test_tiny_guest_converges(void)
{
	struct vmig_session_params sp = { .size = sizeof(sp),
					  .role = VMIG_ROLE_SOURCE };
	struct vmig_session_params dp = { .size = sizeof(dp),
					  .role = VMIG_ROLE_DESTINATION };
	struct vmig_vmm_ops ops = { .size = sizeof(ops), .stop = noop_cb,
				    .resume = noop_cb, .start = noop_cb };
	struct vmig_region reg = { .size = sizeof(reg), .fd = -1,
				   .length = 16 * PG };
	uint8_t *smem = map_mem(16 * PG), *dmem = map_mem(16 * PG);
	vmig_session *src, *dst;
	cJSON *rep;

	memset(smem, 0x5a, 16 * PG);
	CU_ASSERT_FATAL(vmig_session_new(&sp, &src) == 0);
	CU_ASSERT_FATAL(vmig_session_new(&dp, &dst) == 0);
	reg.hva = smem;
	CU_ASSERT_FATAL(vmig_region_add(src, &reg, NULL) == 0);
	reg.hva = dmem;
	CU_ASSERT_FATAL(vmig_region_add(dst, &reg, NULL) == 0);
	CU_ASSERT_FATAL(vmig_plugin_register(src, &tiny_desc) == 0);
	CU_ASSERT_FATAL(vmig_set_vmm_ops(src, &ops, NULL) == 0);
	CU_ASSERT_FATAL(vmig_set_vmm_ops(dst, &ops, NULL) == 0);
	CU_ASSERT_EQUAL(vmig_migrate_local(src, dst), 0);
	CU_ASSERT(memcmp(smem, dmem, 16 * PG) == 0);
	rep = json_session_report(src);
	CU_ASSERT_STRING_EQUAL(str(rep, "result"), "completed");
	/* Converged on the estimate, long before max_iterations (30). */
	CU_ASSERT(cJSON_GetArraySize(cJSON_GetObjectItem(rep, "iterations")) <
		  5);
	cJSON_Delete(rep);
	vmig_session_free(src);
	vmig_session_free(dst);
	munmap(smem, 16 * PG);
	munmap(dmem, 16 * PG);
}

/* ------------------------------------------------------------------ */
/* Every kind of device, with state                                    */

/*
 * An iommufd function (hardware dirty bits), two VFs with their own DMA
 * logging (mlx5-like, pds-like) and an iommufd function whose IOMMU has
 * no dirty bits (all-dirty); the first three carry VFIO migration state,
 * with P2P. Both sessions come from the same document (the destination
 * with its own simulated copy of each device).
 */
static const char feature_doc[] =
	"{ \"role\": \"%s\", \"transport\": \"unix:/unused\",\n"
	"  \"memory\": [ { \"gpa\": 0, \"size\": \"16M\" },\n"
	"              { \"gpa\": \"0x100000000\", \"size\": \"8M\" } ],\n"
	"  \"devices\": [\n"
	"    { \"name\": \"acc0\", \"kind\": \"vfio-pci\", \"iommu\": \"iommufd\",\n"
	"      \"address\": \"0000:3b:00.0\", \"cdev\": \"/dev/vfio/devices/vfio0\" },\n"
	"    { \"name\": \"vf0\", \"kind\": \"vfio-pci\", \"group\": 30,\n"
	"      \"address\": \"0000:3b:00.2\" },\n"
	"    { \"name\": \"vf1\", \"kind\": \"vfio-pci\", \"group\": 31,\n"
	"      \"address\": \"0000:3b:00.3\" },\n"
	"    { \"name\": \"old0\", \"kind\": \"vfio-pci\", \"iommu\": \"iommufd\",\n"
	"      \"address\": \"0000:5e:00.0\", \"cdev\": \"/dev/vfio/devices/vfio2\" }\n"
	"  ],\n"
	"  \"kernel\": { \"type\": \"simulated\", \"devices\": [\n"
	"    { \"name\": \"acc0\", \"migration\": { \"p2p\": true, \"pre_copy\": true,\n"
	"        \"state_size\": \"256K\" },\n"
	"      \"dma\": { \"pattern\": \"random\", \"writes_per_step\": 16 } },\n"
	"    { \"name\": \"vf0\", \"dma_logging\": \"mlx5\",\n"
	"      \"migration\": { \"p2p\": true, \"pre_copy\": true },\n"
	"      \"dma\": { \"pattern\": \"hotspot\", \"writes_per_step\": 16 } },\n"
	"    { \"name\": \"vf1\", \"dma_logging\": { \"model\": \"pds\" },\n"
	"      \"migration\": { \"p2p\": true },\n"
	"      \"dma\": { \"pattern\": \"sequential\", \"writes_per_step\": 8 } },\n"
	"    { \"name\": \"old0\", \"iommu_dirty_tracking\": false,\n"
	"      \"dma\": { \"pattern\": \"random\", \"writes_per_step\": 4 } } ] } }\n";

static vmig_session *feature_session(int role, struct rig *r)
{
	struct vmig_session_params p = { .size = sizeof(p), .log = rig_log,
					 .log_opaque = r,
					 .log_level = VMIG_LOG_DEBUG };
	char text[sizeof(feature_doc) + 32], err[512];
	vmig_config *cfg = NULL;
	vmig_session *s;

	snprintf(text, sizeof(text), feature_doc,
		 role == VMIG_ROLE_SOURCE ? "source" : "destination");
	if (vmig_config_parse(text, strlen(text), NULL, &cfg, err,
			      sizeof(err)) < 0)
		fprintf(stderr, "\n  config: %s\n", err);
	CU_ASSERT_FATAL(cfg != NULL);
	CU_ASSERT_FATAL(vmig_session_new(&p, &s) == 0);
	CU_ASSERT_FATAL(vmig_plugin_add_path(s, VMIG_BUILD_PLUGIN_DIR) == 0);
	if (vmig_session_configure(s, cfg) < 0)
		fprintf(stderr, "\n  configure: %s\n", vmig_errmsg(s));
	vmig_config_free(cfg);
	CU_ASSERT_FATAL(vmig_tool_ksim(s) != NULL);
	return s;
}

/* Every FSM arc the devices of one simulator take, in order. */
struct arcs {
	int n;
	struct { const struct ksim_device *d; int from, to; } a[256];
};

static void record_arc(void *opaque, const struct ksim_device *d, int from,
		       int to)
{
	struct arcs *ar = opaque;

	if (ar->n < 256) {
		ar->a[ar->n].d = d;
		ar->a[ar->n].from = from;
		ar->a[ar->n].to = to;
		ar->n++;
	}
}

/*
 * P2P ordering: no device takes an arc into `late` before every device
 * that took one took the arc into a P2P state first.
 */
static bool p2p_first(const struct arcs *ar, int late, int devices)
{
	int i, p2p = 0;

	for (i = 0; i < ar->n; i++) {
		if (ar->a[i].to == VK_VFIO_STATE_RUNNING_P2P ||
		    ar->a[i].to == VK_VFIO_STATE_PRE_COPY_P2P)
			p2p++;
		if (ar->a[i].to == late)
			return p2p >= devices;
	}
	return false;
}

static void test_every_device_kind(void)
{
	static const char *const migrating[] = { "0000:3b:00.0",
						 "0000:3b:00.2",
						 "0000:3b:00.3" };
	struct arcs sarcs = { 0 }, darcs = { 0 };
	struct rig r;
	cJSON *rep, *dev;
	size_t i;
	int ret;

	memset(&r, 0, sizeof(r));
	r.src = feature_session(VMIG_ROLE_SOURCE, &r);
	r.dst = feature_session(VMIG_ROLE_DESTINATION, &r);
	guest_start(&r.g, vmig_tool_ksim(r.src), false);
	guest_start(&r.dg, NULL, false);
	CU_ASSERT_FATAL(vmig_set_vmm_ops(r.src, &vmm_ops, &r.g) == 0);
	CU_ASSERT_FATAL(vmig_set_vmm_ops(r.dst, &vmm_ops, &r.dg) == 0);
	policies(&r, 1, 3, VMIG_TIMEOUT_STRATEGY_FORCE, 0, 0);
	ksim_feature_set_arc_hook(vmig_tool_ksim(r.src), record_arc, &sarcs);
	ksim_feature_set_arc_hook(vmig_tool_ksim(r.dst), record_arc, &darcs);
	ret = vmig_migrate_local(r.src, r.dst);
	if (ret)
		fprintf(stderr, "\n  migration: %s\n", vmig_errmsg(r.src));
	CU_ASSERT_EQUAL_FATAL(ret, 0);
	ksim_feature_set_arc_hook(vmig_tool_ksim(r.src), NULL, NULL);
	ksim_feature_set_arc_hook(vmig_tool_ksim(r.dst), NULL, NULL);

	/* Guest memory, page by page, and every device's state. */
	for (i = 0; i < 2; i++) {
		CU_ASSERT_EQUAL(r.src->regions[i].length,
				r.dst->regions[i].length);
		CU_ASSERT(memcmp(r.src->regions[i].hva, r.dst->regions[i].hva,
				 r.src->regions[i].length) == 0);
	}
	for (i = 0; i < 3; i++) {
		struct ksim_device *ks = ksim_device_find(vmig_tool_ksim(r.src),
							  migrating[i]);
		struct ksim_device *kd = ksim_device_find(vmig_tool_ksim(r.dst),
							  migrating[i]);

		CU_ASSERT_FATAL(ks && kd);
		CU_ASSERT_EQUAL(ksim_device_state_digest(ks),
				ksim_device_state_digest(kd));
		CU_ASSERT_EQUAL(ksim_device_mig_state(ks), VK_VFIO_STATE_STOP);
		CU_ASSERT_EQUAL(ksim_device_mig_state(kd),
				VK_VFIO_STATE_RUNNING);
	}
	/* Stopped in P2P order on the source, started so on the other. */
	CU_ASSERT(p2p_first(&sarcs, VK_VFIO_STATE_STOP_COPY, 3));
	CU_ASSERT(p2p_first(&darcs, VK_VFIO_STATE_RUNNING, 3));
	CU_ASSERT_EQUAL(r.dg.sim.starts, 1);

	rep = json_session_report(r.src);
	CU_ASSERT_STRING_EQUAL(str(rep, "result"), "completed");
	CU_ASSERT_EQUAL(num(rep, "state_devices"), 3);
	CU_ASSERT(num(rep, "device_bytes") > 0);
	cJSON_ArrayForEach(dev, cJSON_GetObjectItem(rep, "devices")) {
		const char *name = str(dev, "name");

		if (!strcmp(name, "acc0"))
			CU_ASSERT_STRING_EQUAL(str(dev, "source"), "iommufd");
		if (!strcmp(name, "vf0") || !strcmp(name, "vf1"))
			CU_ASSERT_STRING_EQUAL(str(dev, "source"),
					       "device-dirty");
		if (!strcmp(name, "old0")) {
			CU_ASSERT_STRING_EQUAL(str(dev, "source"), "all-dirty");
			CU_ASSERT(cJSON_IsFalse(cJSON_GetObjectItem(
				dev, "state_migrated")));
		} else {
			CU_ASSERT(cJSON_IsTrue(cJSON_GetObjectItem(
				dev, "state_migrated")));
			CU_ASSERT(num(dev, "state_bytes") > 0);
		}
	}
	cJSON_Delete(rep);
	sim_guest_quit(&r.g.sim);
	vmig_session_free(r.src);
	vmig_session_free(r.dst);
	sim_guest_fini(&r.g.sim);
	sim_guest_fini(&r.dg.sim);
}

/* Cancelled with migrating devices: they run again on the source. */
static void test_devices_recover(void)
{
	static const char *const migrating[] = { "0000:3b:00.0",
						 "0000:3b:00.2",
						 "0000:3b:00.3" };
	struct canceller c;
	pthread_t th;
	struct rig r;
	size_t i;

	memset(&r, 0, sizeof(r));
	r.src = feature_session(VMIG_ROLE_SOURCE, &r);
	r.dst = feature_session(VMIG_ROLE_DESTINATION, &r);
	guest_start(&r.g, vmig_tool_ksim(r.src), false);
	guest_start(&r.dg, NULL, false);
	CU_ASSERT_FATAL(vmig_set_vmm_ops(r.src, &vmm_ops, &r.g) == 0);
	CU_ASSERT_FATAL(vmig_set_vmm_ops(r.dst, &vmm_ops, &r.dg) == 0);
	policies(&r, 1, 1000, 0, 0, 8 * MiB);
	c.s = r.src;
	c.g = NULL;
	c.ret = 1;
	CU_ASSERT_FATAL(pthread_create(&th, NULL, cancel_main, &c) == 0);
	CU_ASSERT_EQUAL(vmig_migrate_local(r.src, r.dst), -ECANCELED);
	pthread_join(th, NULL);
	CU_ASSERT_EQUAL(r.g.sim.resumes, r.g.sim.stops);
	CU_ASSERT_EQUAL(r.dg.sim.starts, 0);
	for (i = 0; i < 3; i++) {
		struct ksim_device *ks = ksim_device_find(vmig_tool_ksim(r.src),
							  migrating[i]);
		struct ksim_device *kd = ksim_device_find(vmig_tool_ksim(r.dst),
							  migrating[i]);

		CU_ASSERT_EQUAL(ksim_device_mig_state(ks),
				VK_VFIO_STATE_RUNNING);
		/* The destination's never ran the migrated state: reset. */
		CU_ASSERT_NOT_EQUAL(ksim_device_mig_state(kd),
				    VK_VFIO_STATE_RESUMING);
	}
	sim_guest_quit(&r.g.sim);
	vmig_session_free(r.src);
	vmig_session_free(r.dst);
	sim_guest_fini(&r.g.sim);
	sim_guest_fini(&r.dg.sim);
}

/* ------------------------------------------------------------------ */
/* API                                                                 */

static void test_api_errors(void)
{
	struct vmig_session_params dp = { .size = sizeof(dp),
					  .role = VMIG_ROLE_DESTINATION };
	struct vmig_policies pol = { .size = sizeof(pol) };
	struct vmig_vmm_ops ops = vmm_ops;
	vmig_session *s, *d;
	uint64_t digest;
	struct rig r;

	CU_ASSERT_EQUAL(vmig_migrate(NULL, "unix:/x"), -EINVAL);
	CU_ASSERT_EQUAL(vmig_set_policies(NULL, &pol), -EINVAL);
	CU_ASSERT_EQUAL(vmig_cancel(NULL), -EINVAL);
	CU_ASSERT_FATAL(vmig_session_new(NULL, &s) == 0);
	CU_ASSERT_FATAL(vmig_session_new(&dp, &d) == 0);
	/* No memory, no callbacks. */
	CU_ASSERT_EQUAL(vmig_migrate(s, "unix:/tmp/x"), -EINVAL);
	CU_ASSERT_EQUAL(vmig_memory_digest(s, &digest), -EINVAL);
	pol.size = 8;
	CU_ASSERT_EQUAL(vmig_set_policies(s, &pol), -EINVAL);
	pol.size = sizeof(pol);
	pol.timeout_strategy = 2;
	CU_ASSERT_EQUAL(vmig_set_policies(s, &pol), -EINVAL);
	CU_ASSERT(has(vmig_errmsg(s), "unknown timeout strategy 2"));
	pol.timeout_strategy = 0;
	pol.hotplug = 3;
	CU_ASSERT_EQUAL(vmig_set_policies(s, &pol), -EINVAL);
	pol.hotplug = 0;
	CU_ASSERT_EQUAL(vmig_set_policies(s, &pol), 0);
	ops.size = 8;
	CU_ASSERT_EQUAL(vmig_set_vmm_ops(s, &ops, NULL), -EINVAL);
	CU_ASSERT_EQUAL(vmig_set_vmm_ops(s, NULL, NULL), 0);
	/* Roles. */
	CU_ASSERT_EQUAL(vmig_listen(s, "tcp:127.0.0.1:0", NULL, 0), -EINVAL);
	CU_ASSERT_EQUAL(vmig_receive(s), -EINVAL);
	CU_ASSERT_EQUAL(vmig_receive(d), -EINVAL);
	CU_ASSERT(has(vmig_errmsg(d), "call vmig_listen first"));
	CU_ASSERT_EQUAL(vmig_listen(d, "udp:x:1", NULL, 0), -EINVAL);
	CU_ASSERT(has(vmig_errmsg(d), "expected \"unix:<path>\", "
				      "\"tcp:<host>:<port>\", \"tls:"));
	CU_ASSERT_EQUAL(vmig_listen(d, NULL, NULL, 0), -EINVAL);
	CU_ASSERT_EQUAL(vmig_migrate_local(s, s), -EINVAL);
	vmig_session_free(s);
	vmig_session_free(d);

	/* A source with memory and callbacks, to a bad address. */
	rig_init(&r, MiB, 0, 0);
	CU_ASSERT_EQUAL(vmig_migrate(r.src, "tcp:host"), -EINVAL);
	CU_ASSERT_EQUAL(vmig_migrate(r.src, "tcp:no.such.host.invalid:1"),
			-ENOENT);
	CU_ASSERT(has(vmig_errmsg(r.src), "cannot resolve"));
	CU_ASSERT_EQUAL(vmig_migrate_local(r.src, r.src), -EINVAL);
	/* The digest is the documented function of the layout and bytes. */
	CU_ASSERT_EQUAL(vmig_memory_digest(r.src, &digest), 0);
	{
		uint64_t d2;

		CU_ASSERT_EQUAL(vmig_memory_digest(r.dst, &d2), 0);
		CU_ASSERT(digest != d2);
		memcpy(r.dmem[0], r.smem[0], R0_LEN);
		memcpy(r.dmem[1], r.smem[1], R1_LEN);
		CU_ASSERT_EQUAL(vmig_memory_digest(r.dst, &d2), 0);
		CU_ASSERT_EQUAL(digest, d2);
	}
	rig_fini(&r);
}

static CU_TestInfo complete_tests[] = {
	{ "devices write during the pre-copy (max_iterations, force)",
	  test_writes_during_precopy },
	{ "convergence, zero pages", test_converges_zero_pages },
	{ "bandwidth cap", test_bandwidth_cap },
	{ "timeout, force", test_timeout_force },
	{ "vCPU source", test_vcpu_source },
	{ "a tiny guest converges", test_tiny_guest_converges },
	{ "iommufd, device-dirty, all-dirty; device state with P2P",
	  test_every_device_kind },
	CU_TEST_INFO_NULL,
};

static CU_TestInfo fail_tests[] = {
	{ "max_iterations, cancel", test_max_iterations_cancel },
	{ "timeout, cancel", test_timeout_cancel },
	{ "vmig_cancel from another thread", test_cancel_from_thread },
	{ "cancel in the middle of iteration 0", test_cancel_mid_iteration },
	{ "digest mismatch", test_digest_mismatch },
	{ "verify audit: match", test_audit_match },
	{ "verify audit: mismatch after COMMIT", test_audit_mismatch },
	{ "verify strict: a write nobody reported", test_strict_source_mismatch },
	{ "verify off", test_verify_off },
	{ "verify strict: equal memories", test_strict_match },
	{ "the destination refuses", test_destination_refuses },
	{ "connection refused", test_connect_refused },
	{ "no SIGPIPE from a migration's writes", test_sigpipe_guard },
	{ "a destination cancelled while it waits", test_cancel_destination },
	{ "devices run again after a cancel", test_devices_recover },
	CU_TEST_INFO_NULL,
};

static CU_TestInfo socket_tests[] = {
	{ "unix socket", test_unix_socket },
	{ "TCP loopback, IPv4 and IPv6", test_tcp_loopback },
	CU_TEST_INFO_NULL,
};

static CU_TestInfo api_tests[] = {
	{ "errors", test_api_errors },
	{ "real kernel without a vCPU source",
	  test_real_kernel_without_vcpu_source },
	CU_TEST_INFO_NULL,
};

static CU_SuiteInfo suites[] = {
	VMIG_SUITE("complete", complete_tests),
	VMIG_SUITE("fail", fail_tests),
	VMIG_SUITE("sockets", socket_tests),
	VMIG_SUITE("api", api_tests),
	CU_SUITE_INFO_NULL,
};

VMIG_TEST_MAIN(suites)
