/*
 * lab_e2e.c: whole migrations on the lab's kernel, through libvmig's
 * public API and production Linux host (or the simulator, in sim mode),
 * with a real device writing guest memory by DMA.
 *
 * e2e-type1-edu: QEMU's edu device on vfio-pci in a type1 container.
 * The lab process maps 4 MiB of "guest memory" for it; a destination
 * process (forked at the start, receiving over a unix socket into fresh
 * memory) and the source session (vfio-type1 tracking the container, the
 * kernel calls recorded) migrate that memory while a thread keeps the
 * device's DMA engine copying a pattern from its buffer into pages of
 * the guest. The VMM's stop callback first unmaps the second mapping
 * (with its harvest) while the engine writes the first, lets the engine
 * finish at least EDU_MIN_WRITES transfers, so the device writes during
 * pre-copy on either kernel, then stops it. At the end the destination's memory must
 * equal the source's page by page, and every page the device wrote must
 * hold the pattern on both. In the same migration, the first mtty mdev's
 * VFIO migration v2 state travels in the stream to the second mtty, in
 * the destination process, which must end RUNNING there (vmig takes it
 * through RESUMING), and the source's must end STOP.
 *
 * Compared with the simulator: the set-up calls one by one; during the
 * migration (whose number of iterations depends on timing) each distinct
 * call and result once (lab_quiet_end); then the outcome. The number of
 * transfers and of iterations is shown, not compared.
 */
#include <errno.h>
#include <poll.h>
#include <pthread.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include <fcntl.h>
#include <linux/vfio.h>

#include <vmig/linux-uapi.h>

#include "lab.h"
#include "lab_scenarios.h"

#define PG 4096u
#define GUEST_LEN (4u << 20)
#define EDU_BUF 0x40000u
#define EDU_XFER 2048u       /* under the buffer's 4 KiB (QEMU 7.2) */
#define EDU_MIN_WRITES 3u
#define EDU_PATTERN_PAGE 0u  /* the page the pattern is read from */
#define EDU_TARGETS 48u      /* pages 1, 17, 33, ...: one every 16 */
#define MAP_A_LEN (3u << 20) /* the device writes here; B is the rest */
#define DST_SOCKET "unix:/tmp/vmig-lab-e2e.sock"

static double now_s(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

/* ------------------------------------------------------------------ */
/* The edu device                                                      */

struct edu {
	struct lab *lab;
	int fd;
	uint64_t bar0;   /* BAR0's region offset */
	uint64_t config; /* the config region's offset */
};

static int edu_reg(struct edu *e, uint32_t reg, uint32_t v)
{
	int64_t n = lab_pwrite(e->lab, e->fd, &v, 4, e->bar0 + reg);

	return n == 4 ? 0 : n < 0 ? (int)n : -EIO;
}

/*
 * One transfer of the DMA engine; waits (at most 10 s) until the command
 * register says it is done. to_ram: from the buffer to iova.
 */
static int edu_dma(struct edu *e, uint32_t iova, bool to_ram)
{
	uint32_t cmd = 1u | (to_ram ? 2u : 0u), v = 1;
	double until = now_s() + 10;
	int ret;

	ret = edu_reg(e, 0x80, to_ram ? EDU_BUF : iova);
	if (!ret)
		ret = edu_reg(e, 0x88, to_ram ? iova : EDU_BUF);
	if (!ret)
		ret = edu_reg(e, 0x90, EDU_XFER);
	if (!ret)
		ret = edu_reg(e, 0x98, cmd);
	while (!ret && (v & 1u)) {
		if (lab_pread(e->lab, e->fd, &v, 4, e->bar0 + 0x98) != 4)
			return -EIO;
		if (!(v & 1u))
			break;
		if (now_s() > until)
			return -ETIMEDOUT;
		usleep(1000);
	}
	return ret;
}

/* Pages 1, 17, 33, ... of mapping A (the first 3 MiB). */
static uint32_t target_iova(unsigned int i)
{
	return (1u + 16u * (i % EDU_TARGETS)) * PG;
}

/*
 * What happens to the guest while it runs: the edu engine writing (a
 * thread), and changes the VMM makes once during pre-copy (events), from
 * the stop callback before it stops anything: after at least one
 * pre-copy sync, before the final one, at the same point on both
 * kernels, so that the calls around them do not depend on timing.
 */
struct writer {
	struct edu *e;
	pthread_t th;
	atomic_bool stop;
	atomic_uint done;
	int error;
	bool running;
	bool events_done;
	void (*events)(void *opaque);
	void *events_opaque;
};

static void run_events(struct writer *w)
{
	if (w->events_done || !w->events)
		return;
	w->events_done = true;
	w->events(w->events_opaque);
}


static void *writer_main(void *arg)
{
	struct writer *w = arg;
	unsigned int i;

	for (i = 0; !atomic_load(&w->stop); i++) {
		w->error = edu_dma(w->e, target_iova(i), true);
		if (w->error)
			break;
		atomic_fetch_add(&w->done, 1);
		usleep(1000);
	}
	return NULL;
}

/* The VMM's stop: the device has written during pre-copy, then stops. */
static int vmm_stop(void *opaque)
{
	struct writer *w = opaque;
	double until = now_s() + 60;

	run_events(w);
	while (w->running && !w->error &&
	       atomic_load(&w->done) < EDU_MIN_WRITES && now_s() < until)
		usleep(1000);
	atomic_store(&w->stop, true);
	if (w->running)
		pthread_join(w->th, NULL);
	w->running = false;
	return 0;
}

static int vmm_resume(void *opaque)
{
	(void)opaque;
	return 0;
}

/* ------------------------------------------------------------------ */
/* The destination: another process                                    */

static int vmm_start(void *opaque)
{
	(void)opaque;
	return 0;
}

/* What the destination sends back before its memory. */
struct dst_result {
	int ret;        /* vmig_receive's */
	int digest_ret;
	uint64_t digest; /* vmig_memory_digest of what it received */
	int state_ret;  /* the GET of its mtty's state */
	uint32_t state; /* ... and the state */
};

/* A device's VFIO migration state, through host h. */
static int mig_state(const struct vmig_host *h, int fd, uint32_t *state)
{
	uint64_t raw[2] = { 0 };
	struct vfio_device_feature *f = (void *)raw;
	struct vfio_device_feature_mig_state *m = (void *)f->data;
	int ret;

	f->argsz = sizeof(*f) + sizeof(*m);
	f->flags = VFIO_DEVICE_FEATURE_GET |
		   VFIO_DEVICE_FEATURE_MIG_DEVICE_STATE;
	ret = h->ioctl(h->kctx, fd, VFIO_DEVICE_FEATURE, f);
	*state = ret ? ~0u : m->device_state;
	return ret;
}

/*
 * The destination's mtty: its own container, through host h (not the
 * recorder: this process's calls are not in the transcript).
 */
static int dst_mdev(const struct vmig_host *h, const struct lab_dev *dev,
		    int *container, int *group, int *device)
{
	char path[64];
	int ret;

	*container = h->open(h->kctx, "/dev/vfio/vfio", O_RDWR);
	snprintf(path, sizeof(path), "/dev/vfio/%d", dev->group);
	*group = h->open(h->kctx, path, O_RDWR);
	if (*container < 0 || *group < 0)
		return -ENODEV;
	ret = h->ioctl(h->kctx, *group, VFIO_GROUP_SET_CONTAINER, container);
	if (!ret)
		ret = h->ioctl(h->kctx, *container, VFIO_SET_IOMMU,
			       (void *)(uintptr_t)VFIO_TYPE1v2_IOMMU);
	if (ret)
		return ret;
	*device = h->ioctl(h->kctx, *group, VFIO_GROUP_GET_DEVICE_FD,
			   (void *)dev->name);
	return *device < 0 ? *device : 0;
}

/*
 * Receives into fresh memory (and, with mdev, that mtty's state), then
 * writes its result and the memory to out. Never returns.
 */
static void destination(const struct vmig_host *h, const struct lab_dev *mdev,
			int ready, int out)
{
	struct vmig_session_params sp = { .size = sizeof(sp),
					  .role = VMIG_ROLE_DESTINATION,
					  .kernel = h };
	struct vmig_iommu io = { .size = sizeof(io), .kind = VMIG_IOMMU_TYPE1 };
	struct vmig_device vd = { .size = sizeof(vd), .kind = VMIG_DEVICE_MDEV,
				  .name = "mtty0",
				  .address = mdev ? mdev->name : NULL };
	int container = -1, group = -1, device = -1;
	struct dst_result res = { .state_ret = -1 };
	struct vmig_vmm_ops ops = { .size = sizeof(ops), .start = vmm_start };
	struct vmig_region r = { .size = sizeof(r), .fd = -1,
				 .length = GUEST_LEN };
	vmig_session *s = NULL;
	uint8_t *mem;
	size_t off = 0;
	int ret;

	mem = mmap(NULL, GUEST_LEN, PROT_READ | PROT_WRITE,
		   MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	ret = mem == MAP_FAILED ? -ENOMEM : vmig_session_new(&sp, &s);
	r.hva = mem;
	if (!ret)
		ret = vmig_region_add(s, &r, NULL);
	if (!ret && mdev) {
		ret = dst_mdev(h, mdev, &container, &group, &device);
		io.fd = container;
		if (!ret)
			ret = vmig_iommu_add(s, &io, &vd.iommu_id);
		vd.device_fd = device;
		vd.group_fd = group;
		if (!ret)
			ret = vmig_device_add(s, &vd, NULL);
	}
	if (!ret)
		ret = vmig_set_vmm_ops(s, &ops, NULL);
	if (!ret)
		ret = vmig_listen(s, DST_SOCKET, NULL, 0);
	if (write(ready, &ret, sizeof(ret)) != sizeof(ret) || ret)
		_exit(1);
	ret = vmig_receive(s);
	if (ret)
		fprintf(stderr, "~ destination: %s\n", vmig_errmsg(s));
	res.ret = ret;
	if (!ret && mdev)
		res.state_ret = mig_state(h, device, &res.state);
	res.digest_ret = ret ? ret : vmig_memory_digest(s, &res.digest);
	if (write(out, &res, sizeof(res)) != sizeof(res))
		_exit(1);
	while (!ret && off < GUEST_LEN) {
		ssize_t n = write(out, mem + off, GUEST_LEN - off);

		if (n <= 0)
			_exit(1);
		off += (size_t)n;
	}
	vmig_session_free(s);
	if (device >= 0)
		h->close(h->kctx, device);
	if (group >= 0)
		h->close(h->kctx, group);
	if (container >= 0)
		h->close(h->kctx, container);
	_exit(0);
}

/* Reads exactly len bytes (or fails). */
static bool read_all(int fd, void *buf, size_t len)
{
	size_t off = 0;

	while (off < len) {
		ssize_t n = read(fd, (uint8_t *)buf + off, len - off);

		if (n <= 0)
			return false;
		off += (size_t)n;
	}
	return true;
}

static int region_offset(struct lab *lab, int fd, uint32_t index,
			 uint64_t *offset, uint64_t *size)
{
	struct vfio_region_info ri = { .argsz = sizeof(ri), .index = index };
	int ret = lab_ioctl(lab, fd, VFIO_DEVICE_GET_REGION_INFO, &ri);

	if (ret)
		return ret;
	*offset = ri.offset;
	*size = ri.size;
	lab_say(lab, "  region %u: size 0x%llx flags 0x%x", index,
		(unsigned long long)ri.size, ri.flags);
	return 0;
}

static void pattern(uint8_t *p)
{
	unsigned int i;

	for (i = 0; i < EDU_XFER; i++)
		p[i] = (uint8_t)(0xa5 ^ (i * 7));
}

/* ------------------------------------------------------------------ */
/* What both scenarios share                                           */

/* The destination process and the pipes to it. */
struct dst {
	pid_t child;
	int ready[2];
	int result[2];
	struct dst_result res;
};

/* Forks the destination (with mdev: that mtty too) and waits until it
 * listens. Call before this process opens anything. */
static int dst_spawn(struct lab *lab, const struct lab_dev *mdev,
		     struct dst *d)
{
	int ret = -1;

	d->child = -1;
	d->ready[0] = d->ready[1] = d->result[0] = d->result[1] = -1;
	d->res.ret = -1;
	if (pipe(d->ready) || pipe(d->result))
		return -errno;
	fflush(stdout);
	d->child = fork();
	if (d->child < 0)
		return -errno;
	if (d->child == 0) {
		close(d->ready[0]);
		close(d->result[0]);
		destination(lab->real ? vmig_linux_kernel() : lab->kernel, mdev,
			    d->ready[1], d->result[1]);
	}
	close(d->ready[1]);
	close(d->result[1]);
	d->ready[1] = d->result[1] = -1;
	if (!read_all(d->ready[0], &ret, sizeof(ret)))
		return -EPIPE;
	return ret;
}

/* Its result, then (when it started the guest) its memory into dmem. */
static bool dst_collect(struct dst *d, uint8_t *dmem)
{
	return read_all(d->result[0], &d->res, sizeof(d->res)) &&
	       (d->res.ret || read_all(d->result[0], dmem, GUEST_LEN));
}

static void dst_reap(struct dst *d)
{
	int st, i;

	if (d->child > 0) {
		if (d->res.ret != 0)
			kill(d->child, SIGKILL);
		waitpid(d->child, &st, 0);
	}
	for (i = 0; i < 2; i++) {
		if (d->ready[i] >= 0)
			close(d->ready[i]);
		if (d->result[i] >= 0)
			close(d->result[i]);
	}
	d->child = -1;
}

static uint64_t pages_differ(const uint8_t *a, const uint8_t *b)
{
	uint64_t n = 0, i;

	for (i = 0; i < GUEST_LEN / PG; i++)
		n += memcmp(a + i * PG, b + i * PG, PG) != 0;
	return n;
}

/* A source session on the recorder, the plugin loaded, memory added. */
static vmig_session *src_session(struct lab *lab, const char *plugin,
				 struct writer *w, uint8_t *mem)
{
	struct vmig_session_params sp = { .size = sizeof(sp),
					  .role = VMIG_ROLE_SOURCE,
					  .kernel = &lab->host };
	struct vmig_vmm_ops ops = { .size = sizeof(ops), .stop = vmm_stop,
				    .resume = vmm_resume };
	struct vmig_region r = { .size = sizeof(r), .fd = -1, .hva = mem,
				 .length = GUEST_LEN };
	vmig_session *s = NULL;
	int ret;

	ret = vmig_session_new(&sp, &s);
	if (ret) {
		lab_fail(lab, __LINE__, "vmig_session_new: %d", ret);
		return NULL;
	}
	ret = vmig_plugin_add_path(s, lab->plugin_dir);
	if (!ret)
		ret = vmig_plugin_load(s, plugin);
	if (!ret)
		ret = vmig_region_add(s, &r, NULL);
	if (!ret)
		ret = vmig_set_vmm_ops(s, &ops, w);
	if (ret) {
		lab_fail(lab, __LINE__, "session set-up: %s", vmig_errmsg(s));
		vmig_session_free(s);
		return NULL;
	}
	return s;
}

/* Maps [iova, iova + len) of the space onto gpa, through the session. */
static int src_map(vmig_session *s, uint32_t iommu_id, uint64_t iova,
		   uint64_t gpa, uint64_t len)
{
	struct vmig_dma_map map = { .size = sizeof(map),
				    .flags = VMIG_DMA_READ | VMIG_DMA_WRITE,
				    .iommu_id = iommu_id, .iova = iova,
				    .gpa = gpa, .length = len };

	return vmig_dma_map(s, &map);
}

/* Migrates, quietly; says the outcome and the destination's. */
static int migrate_and_check(struct lab *lab, vmig_session *s,
			     struct dst *d, const uint8_t *mem,
			     uint8_t *dmem)
{
	uint64_t differ, digest = 0;
	int ret, dg;

	lab_quiet_begin(lab);
	ret = vmig_migrate(s, DST_SOCKET);
	lab_quiet_end(lab, "during the migration");
	LAB_EXPECT(lab, ret == 0, "vmig_migrate: %s", vmig_errmsg(s));
	lab_say(lab, "migration: %s", ret == 0 ? "completed" : "failed");
	if (!dst_collect(d, dmem)) {
		lab_fail(lab, __LINE__, "no result from the destination");
		return -EPIPE;
	}
	LAB_EXPECT(lab, d->res.ret == 0, "the destination's vmig_receive: %d",
		   d->res.ret);
	lab_say(lab, "destination: %s", d->res.ret == 0 ? "started" : "failed");
	if (d->res.ret)
		return d->res.ret;
	dg = vmig_memory_digest(s, &digest);
	LAB_EXPECT(lab, dg == 0 && d->res.digest_ret == 0 &&
				digest == d->res.digest,
		   "digests: source %d 0x%llx, destination %d 0x%llx", dg,
		   (unsigned long long)digest, d->res.digest_ret,
		   (unsigned long long)d->res.digest);
	lab_say(lab, "memory digests equal: %s",
		!dg && !d->res.digest_ret && digest == d->res.digest ? "yes"
								      : "no");
	differ = pages_differ(mem, dmem);
	LAB_EXPECT(lab, differ == 0, "%llu pages differ",
		   (unsigned long long)differ);
	lab_say(lab, "memory: %llu pages differ", (unsigned long long)differ);
	return ret;
}

/* ------------------------------------------------------------------ */
/* e2e-type1-edu                                                       */

struct edu_events {
	struct lab *lab;
	vmig_session *s;
	uint32_t iommu_id;
	int ret;
};

/* While the device writes A: B (the last MiB) is unmapped, harvested. */
static void edu_events(void *opaque)
{
	struct edu_events *ev = opaque;

	ev->ret = vmig_dma_unmap(ev->s, ev->iommu_id, MAP_A_LEN,
				 GUEST_LEN - MAP_A_LEN);
}

void lab_e2e_type1_edu(struct lab *lab)
{
	const struct lab_dev *dev = &lab->facts.pci;
	struct vmig_iommu io = { .size = sizeof(io), .kind = VMIG_IOMMU_TYPE1 };
	struct vmig_device vd = { .size = sizeof(vd),
				  .kind = VMIG_DEVICE_VFIO_PCI,
				  .name = "edu" };
	struct vmig_device md = { .size = sizeof(md), .kind = VMIG_DEVICE_MDEV,
				  .name = "mtty0" };
	struct vmig_iommu mio = { .size = sizeof(mio),
				  .kind = VMIG_IOMMU_TYPE1 };
	int container = -1, group = -1, device = -1, mc = -1, mg = -1;
	int mdev = -1, ret;
	struct edu e = { .lab = lab, .fd = -1 };
	struct edu_events ev = { .lab = lab, .ret = -1 };
	struct writer w = { .e = &e, .events = edu_events,
			    .events_opaque = &ev };
	struct dst d = { .child = -1, .ready = { -1, -1 },
			 .result = { -1, -1 } };
	uint8_t pat[EDU_XFER], *mem = NULL, *dmem = NULL;
	uint64_t size, holding = 0;
	uint32_t sstate = ~0u;
	vmig_session *s = NULL;
	uint16_t command;
	unsigned int i;

	LAB_REQUIRE(lab, dev->name, "this boot has no vfio-pci device");
	LAB_REQUIRE(lab, lab->facts.nr_mdevs >= 2,
		    "this boot has fewer than 2 mdevs");
	ret = dst_spawn(lab, &lab->facts.mdevs[1], &d);
	LAB_REQUIRE(lab, ret == 0, "the destination cannot listen on %s: %d",
		    DST_SOCKET, ret);
	lab_say(lab, "destination: listening");

	mem = lab_mem_alloc(GUEST_LEN, 2u << 20);
	dmem = malloc(GUEST_LEN);
	LAB_REQUIRE(lab, mem && dmem, "out of memory");
	ret = lab_vfio_open(lab, dev, &container, &group, &device);
	LAB_REQUIRE(lab, ret == 0, "cannot open the edu device: %d", ret);
	e.fd = device;
	ret = region_offset(lab, device, VFIO_PCI_BAR0_REGION_INDEX, &e.bar0,
			    &size);
	LAB_REQUIRE(lab, ret == 0 && size >= 0x100, "BAR0: %d", ret);
	ret = region_offset(lab, device, VFIO_PCI_CONFIG_REGION_INDEX,
			    &e.config, &size);
	LAB_REQUIRE(lab, ret == 0 && size >= 64, "config space: %d", ret);
	LAB_REQUIRE(lab, lab_pread(lab, device, &command, 2, e.config + 4) ==
				 2,
		    "cannot read the PCI command register");
	command |= 0x4; /* bus master */
	LAB_REQUIRE(lab, lab_pwrite(lab, device, &command, 2, e.config + 4) ==
				 2,
		    "cannot set bus mastering");
	lab_say(lab, "edu: bus mastering on");

	/* The session maps the guest memory (MAP_DMA, recorded): A and B. */
	s = src_session(lab, "vfio-type1", &w, mem);
	LAB_REQUIRE(lab, s, "no session");
	ev.s = s;
	io.fd = container;
	LAB_REQUIRE(lab, vmig_iommu_add(s, &io, &ev.iommu_id) == 0,
		    "container: %s", vmig_errmsg(s));
	LAB_REQUIRE(lab, src_map(s, ev.iommu_id, 0, 0, MAP_A_LEN) == 0 &&
				 src_map(s, ev.iommu_id, MAP_A_LEN, MAP_A_LEN,
					 GUEST_LEN - MAP_A_LEN) == 0,
		    "map: %s", vmig_errmsg(s));
	vd.address = dev->name;
	vd.iommu_id = ev.iommu_id;
	vd.device_fd = device;
	vd.group_fd = group;
	LAB_REQUIRE(lab, vmig_device_add(s, &vd, NULL) == 0, "device: %s",
		    vmig_errmsg(s));
	/* The first mtty, in a container of its own: its state migrates. */
	ret = lab_vfio_open(lab, &lab->facts.mdevs[0], &mc, &mg, &mdev);
	LAB_REQUIRE(lab, ret == 0, "cannot open the first mtty: %d", ret);
	mio.fd = mc;
	LAB_REQUIRE(lab, vmig_iommu_add(s, &mio, &md.iommu_id) == 0,
		    "mtty's container: %s", vmig_errmsg(s));
	md.address = lab->facts.mdevs[0].name;
	md.device_fd = mdev;
	md.group_fd = mg;
	LAB_REQUIRE(lab, vmig_device_add(s, &md, NULL) == 0, "mtty: %s",
		    vmig_errmsg(s));

	/* The pattern, written by the CPU before tracking, into the buffer;
	 * B holds data of its own. */
	pattern(pat);
	memcpy(mem + EDU_PATTERN_PAGE * PG, pat, EDU_XFER);
	memset(mem + MAP_A_LEN, 0x3c, GUEST_LEN - MAP_A_LEN);
	ret = edu_dma(&e, EDU_PATTERN_PAGE * PG, false);
	LAB_REQUIRE(lab, ret == 0, "DMA into the device's buffer: %d", ret);
	lab_say(lab, "edu: pattern copied into its buffer");

	LAB_REQUIRE(lab, pthread_create(&w.th, NULL, writer_main, &w) == 0,
		    "cannot start the DMA writer");
	w.running = true;
	ret = migrate_and_check(lab, s, &d, mem, dmem);
	if (w.running)
		vmm_stop(&w);
	lab_note(lab, "the device made %u transfers", atomic_load(&w.done));
	LAB_EXPECT(lab, !w.error, "the DMA engine failed: %d", w.error);
	LAB_EXPECT(lab, atomic_load(&w.done) >= EDU_MIN_WRITES,
		   "the device made %u transfers during pre-copy",
		   atomic_load(&w.done));
	lab_say(lab, "device wrote during pre-copy: %s",
		atomic_load(&w.done) >= EDU_MIN_WRITES ? "yes" : "no");
	LAB_EXPECT(lab, ev.ret == 0, "unmap of B during pre-copy: %d", ev.ret);
	lab_say(lab, "B unmapped during pre-copy: %s",
		ev.ret == 0 ? "yes" : "no");
	LAB_REQUIRE(lab, ret == 0, "the migration failed");
	/* The state went through RESUMING into RUNNING there. */
	LAB_EXPECT(lab, d.res.state_ret == 0 &&
				d.res.state == VK_VFIO_STATE_RUNNING,
		   "the destination's mtty is in state %u (GET: %d)",
		   d.res.state, d.res.state_ret);
	lab_say(lab, "destination's mtty: %s",
		lab_mig_state(d.res.state_ret ? ~0u : d.res.state));
	ret = mig_state(&lab->host, mdev, &sstate);
	LAB_EXPECT(lab, ret == 0 && sstate == VK_VFIO_STATE_STOP,
		   "the source's mtty is in state %u", sstate);
	lab_say(lab, "source's mtty: %s", lab_mig_state(sstate));
	for (i = 0; i < EDU_TARGETS && i < atomic_load(&w.done); i++)
		holding += !memcmp(mem + target_iova(i), pat, EDU_XFER) &&
			   !memcmp(dmem + target_iova(i), pat, EDU_XFER);
	LAB_EXPECT(lab, holding == i, "%llu of %u written pages hold the "
				      "pattern on both sides",
		   (unsigned long long)holding, i);
	lab_say(lab, "written pages hold the pattern on both sides: %s",
		holding == i ? "yes" : "no");
out:
	if (w.running)
		vmm_stop(&w);
	vmig_session_free(s);
	dst_reap(&d);
	lab_vfio_close(lab, &mc, &mg, &mdev);
	lab_vfio_close(lab, &container, &group, &device);
	if (mem)
		lab_mem_free(mem, GUEST_LEN);
	free(dmem);
}

/* ------------------------------------------------------------------ */
/* e2e-iommufd-mock                                                    */

/*
 * The mock aperture: mapping A (2 MiB, guest 0..2 MiB), a 1 MiB hole,
 * mapping B (1 MiB, guest 2..3 MiB); the last MiB of guest memory is
 * mapped nowhere.
 */
#define MOCK_A VK_MOCK_APERTURE_START
#define MOCK_A_LEN (2u << 20)
#define MOCK_B (MOCK_A + MOCK_A_LEN + (1u << 20))
#define MOCK_B_LEN (1u << 20)
#define MOCK_SLOTS_PER_MIB ((1u << 20) / VK_MOCK_PAGE_SIZE)

struct mock_events {
	struct lab *lab;
	vmig_session *s;
	int iommufd;
	uint32_t ioas_id, iommu_id;
	uint8_t *mem;
	struct lab_mock second;
	uint32_t marked;      /* slots IOMMU_TEST_OP_DIRTY marked */
	int unmap_ret, add_ret;
};

/*
 * A device's write, as the selftest lets one be made: the CPU writes the
 * guest page (the data), IOMMU_TEST_OP_DIRTY marks its first slot dirty
 * in the plugin's HWPT (the IOPTE's dirty bit). 1 MiB at iova_mib.
 */
static void mock_write(struct mock_events *ev, uint64_t iova_mib,
		       uint64_t gpa_mib, const unsigned int *pages,
		       unsigned int n, uint8_t val)
{
	uint64_t marks[MOCK_SLOTS_PER_MIB / 64] = { 0 };
	struct vk_iommu_test_cmd t = { .size = sizeof(t),
				       .op = VK_IOMMU_TEST_OP_DIRTY,
				       .id = ev->lab->last_hwpt_id };
	unsigned int i, slot;

	for (i = 0; i < n; i++) {
		memset(ev->mem + gpa_mib + (uint64_t)pages[i] * PG, val, 64);
		slot = pages[i] * (PG / VK_MOCK_PAGE_SIZE);
		marks[slot / 64] |= 1ull << (slot % 64);
	}
	t.dirty.iova = iova_mib;
	t.dirty.length = 1u << 20;
	t.dirty.page_size = VK_MOCK_PAGE_SIZE;
	t.dirty.uptr = (uintptr_t)marks;
	if (lab_ioctl(ev->lab, ev->iommufd, VK_IOMMU_TEST_CMD, &t) == 0)
		ev->marked += (uint32_t)t.dirty.out_nr_dirty;
}

/*
 * Before the stop, after a pre-copy sync: writes into A and B; B
 * unmapped (a read that does not clear, then IOAS_UNMAP); a second mock
 * device plugged into the IOAS; writes into A again, marked in the HWPT
 * the plugin now uses.
 */
static void mock_events(void *opaque)
{
	static const unsigned int in_a[] = { 0, 3, 200 }, in_b[] = { 7, 100 };
	static const unsigned int again[] = { 5, 201, 255 };
	struct mock_events *ev = opaque;
	struct vmig_device vd = { .size = sizeof(vd),
				  .kind = VMIG_DEVICE_VFIO_PCI,
				  .name = "mock1", .address = "mock1",
				  .group_fd = -1 };

	mock_write(ev, MOCK_A, 0, in_a, 3, 0x11);
	mock_write(ev, MOCK_B, MOCK_A_LEN, in_b, 2, 0x22);
	ev->unmap_ret = vmig_dma_unmap(ev->s, ev->iommu_id, MOCK_B,
				       MOCK_B_LEN);
	ev->add_ret =
		lab_mock_new(ev->lab, ev->iommufd, ev->ioas_id, 0, &ev->second);
	vd.iommu_id = ev->iommu_id;
	vd.device_fd = ev->second.fd;
	vd.iommufd_id = ev->second.idev_id;
	if (!ev->add_ret)
		ev->add_ret = vmig_device_add(ev->s, &vd, NULL);
	mock_write(ev, MOCK_A + (1u << 20), 1u << 20, again, 3, 0x33);
}

void lab_e2e_iommufd_mock(struct lab *lab)
{
	struct vk_iommu_ioas_alloc ioas = { .size = sizeof(ioas) };
	struct vmig_iommu io = { .size = sizeof(io),
				 .kind = VMIG_IOMMU_IOMMUFD };
	struct vmig_device vd = { .size = sizeof(vd),
				  .kind = VMIG_DEVICE_VFIO_PCI,
				  .name = "mock0", .address = "mock0",
				  .group_fd = -1 };
	struct mock_events ev = { .lab = lab, .iommufd = -1,
				  .second = { .fd = -1 },
				  .unmap_ret = -1, .add_ret = -1 };
	struct writer w = { .events = mock_events, .events_opaque = &ev };
	struct dst d = { .child = -1, .ready = { -1, -1 },
			 .result = { -1, -1 } };
	struct lab_mock first = { .fd = -1 };
	uint8_t *dmem = NULL;
	vmig_session *s = NULL;
	int ret;

	ret = dst_spawn(lab, NULL, &d);
	LAB_REQUIRE(lab, ret == 0, "the destination cannot listen on %s: %d",
		    DST_SOCKET, ret);
	lab_say(lab, "destination: listening");
	ev.mem = lab_mem_alloc(GUEST_LEN, 2u << 20);
	dmem = malloc(GUEST_LEN);
	LAB_REQUIRE(lab, ev.mem && dmem, "out of memory");
	memset(ev.mem, 0x5a, GUEST_LEN);
	ev.iommufd = lab_open(lab, "/dev/iommu", O_RDWR);
	LAB_REQUIRE(lab, ev.iommufd >= 0, "/dev/iommu: %d", ev.iommufd);
	ret = lab_ioctl(lab, ev.iommufd, VK_IOMMU_IOAS_ALLOC, &ioas);
	LAB_REQUIRE(lab, ret == 0, "IOAS_ALLOC: %d", ret);
	ev.ioas_id = ioas.out_ioas_id;
	ret = lab_mock_new(lab, ev.iommufd, ev.ioas_id, 0, &first);
	LAB_REQUIRE(lab, ret == 0, "MOCK_DOMAIN: %d", ret);

	s = src_session(lab, "iommufd", &w, ev.mem);
	LAB_REQUIRE(lab, s, "no session");
	ev.s = s;
	io.fd = ev.iommufd;
	io.ioas_id = ev.ioas_id;
	LAB_REQUIRE(lab, vmig_iommu_add(s, &io, &ev.iommu_id) == 0,
		    "IOAS: %s", vmig_errmsg(s));
	LAB_REQUIRE(lab, src_map(s, ev.iommu_id, MOCK_A, 0, MOCK_A_LEN) == 0 &&
				 src_map(s, ev.iommu_id, MOCK_B, MOCK_A_LEN,
					 MOCK_B_LEN) == 0,
		    "map: %s", vmig_errmsg(s));
	vd.iommu_id = ev.iommu_id;
	vd.device_fd = first.fd;
	vd.iommufd_id = first.idev_id;
	LAB_REQUIRE(lab, vmig_device_add(s, &vd, NULL) == 0, "device: %s",
		    vmig_errmsg(s));

	ret = migrate_and_check(lab, s, &d, ev.mem, dmem);
	lab_note(lab, "IOMMU_TEST_OP_DIRTY marked %u slots", ev.marked);
	LAB_EXPECT(lab, ev.marked == 8, "%u of 8 slots marked", ev.marked);
	lab_say(lab, "writes marked in the HWPT during pre-copy: %s",
		ev.marked == 8 ? "all" : "not all");
	LAB_EXPECT(lab, ev.unmap_ret == 0, "unmap of B: %d", ev.unmap_ret);
	lab_say(lab, "B unmapped during pre-copy: %s",
		ev.unmap_ret == 0 ? "yes" : "no");
	LAB_EXPECT(lab, ev.add_ret == 0, "hot-plug: %d", ev.add_ret);
	lab_say(lab, "second device plugged during pre-copy: %s",
		ev.add_ret == 0 ? "yes" : "no");
	LAB_EXPECT(lab, ret == 0 && dmem[3 * PG] == 0x11 &&
				dmem[MOCK_A_LEN + 7 * PG] == 0x22 &&
				dmem[(1u << 20) + 255 * PG] == 0x33,
		   "the destination lacks a write");
	lab_say(lab, "the destination holds every write: %s",
		ret == 0 && dmem[3 * PG] == 0x11 &&
				dmem[MOCK_A_LEN + 7 * PG] == 0x22 &&
				dmem[(1u << 20) + 255 * PG] == 0x33
			? "yes"
			: "no");
out:
	vmig_session_free(s);
	dst_reap(&d);
	if (ev.iommufd >= 0) {
		lab_mock_free(lab, ev.iommufd, &ev.second);
		lab_mock_free(lab, ev.iommufd, &first);
		lab_close(lab, ev.iommufd);
	}
	if (ev.mem)
		lab_mem_free(ev.mem, GUEST_LEN);
	free(dmem);
}
