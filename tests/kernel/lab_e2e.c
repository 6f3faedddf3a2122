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
 * the guest. The VMM's stop callback lets the engine finish at least
 * EDU_MIN_WRITES transfers first, so the device writes during pre-copy on
 * either kernel, then stops it. At the end the destination's memory must
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
#define EDU_TARGETS 64u      /* pages 1, 17, 33, ...: one every 16 */
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

static uint32_t target_iova(unsigned int i)
{
	return (1u + 16u * (i % EDU_TARGETS)) * PG;
}

/* The engine keeps writing until told to stop. */
struct writer {
	struct edu *e;
	pthread_t th;
	atomic_bool stop;
	atomic_uint done;
	int error;
	bool running;
};

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
 * Receives into fresh memory, then writes its result and the memory to
 * out. Never returns.
 */
static void destination(const struct vmig_host *h, const struct lab_dev *mdev,
			int ready, int out)
{
	struct vmig_session_params sp = { .size = sizeof(sp),
					  .role = VMIG_ROLE_DESTINATION,
					  .kernel = h };
	struct vmig_iommu io = { .size = sizeof(io), .kind = VMIG_IOMMU_TYPE1 };
	struct vmig_device vd = { .size = sizeof(vd), .kind = VMIG_DEVICE_MDEV,
				  .name = "mtty0", .address = mdev->name };
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
	if (!ret)
		ret = dst_mdev(h, mdev, &container, &group, &device);
	io.fd = container;
	if (!ret)
		ret = vmig_iommu_add(s, &io, &vd.iommu_id);
	vd.device_fd = device;
	vd.group_fd = group;
	if (!ret)
		ret = vmig_device_add(s, &vd, NULL);
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
	if (!ret)
		res.state_ret = mig_state(h, device, &res.state);
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

void lab_e2e_type1_edu(struct lab *lab)
{
	const struct lab_dev *dev = &lab->facts.pci;
	struct vmig_session_params sp = { .size = sizeof(sp),
					  .role = VMIG_ROLE_SOURCE,
					  .kernel = &lab->host };
	struct vmig_vmm_ops ops = { .size = sizeof(ops), .stop = vmm_stop,
				    .resume = vmm_resume };
	struct vmig_region r = { .size = sizeof(r), .fd = -1,
				 .length = GUEST_LEN };
	struct vmig_iommu io = { .size = sizeof(io), .kind = VMIG_IOMMU_TYPE1 };
	struct vmig_dma_map map = { .size = sizeof(map),
				    .flags = VMIG_DMA_READ | VMIG_DMA_WRITE,
				    .length = GUEST_LEN };
	struct vmig_device vd = { .size = sizeof(vd),
				  .kind = VMIG_DEVICE_VFIO_PCI,
				  .name = "edu" };
	struct vmig_device md = { .size = sizeof(md), .kind = VMIG_DEVICE_MDEV,
				  .name = "mtty0" };
	struct vmig_iommu mio = { .size = sizeof(mio),
				  .kind = VMIG_IOMMU_TYPE1 };
	int container = -1, group = -1, device = -1, ready[2] = { -1, -1 };
	int mc = -1, mg = -1, mdev = -1;
	int result[2] = { -1, -1 }, ret, dret = -1, st;
	struct dst_result dres = { .ret = -1 };
	uint32_t sstate = ~0u;
	struct edu e = { .lab = lab, .fd = -1 };
	struct writer w = { .e = &e };
	uint8_t pat[EDU_XFER], *mem = NULL, *dmem = NULL;
	uint64_t size, differ = 0, holding = 0;
	vmig_session *s = NULL;
	uint16_t command;
	pid_t child = -1;
	unsigned int i;

	LAB_REQUIRE(lab, dev->name, "this boot has no vfio-pci device");
	LAB_REQUIRE(lab, lab->facts.nr_mdevs >= 2,
		    "this boot has fewer than 2 mdevs");
	/* The destination first, before this process opens anything. */
	LAB_REQUIRE(lab, pipe(ready) == 0 && pipe(result) == 0, "pipe: %s",
		    strerror(errno));
	fflush(stdout);
	child = fork();
	LAB_REQUIRE(lab, child >= 0, "fork: %s", strerror(errno));
	if (child == 0) {
		close(ready[0]);
		close(result[0]);
		destination(lab->real ? vmig_linux_kernel() : lab->kernel,
			    &lab->facts.mdevs[1], ready[1], result[1]);
	}
	close(ready[1]);
	close(result[1]);
	ready[1] = result[1] = -1;
	LAB_REQUIRE(lab, read_all(ready[0], &ret, sizeof(ret)) && ret == 0,
		    "the destination cannot listen on %s", DST_SOCKET);
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

	/* The session maps the guest memory (MAP_DMA, recorded). */
	ret = vmig_session_new(&sp, &s);
	LAB_REQUIRE(lab, ret == 0, "vmig_session_new: %d", ret);
	ret = vmig_plugin_add_path(s, lab->plugin_dir);
	if (!ret)
		ret = vmig_plugin_load(s, "vfio-type1");
	LAB_REQUIRE(lab, ret == 0, "vfio-type1: %s", vmig_errmsg(s));
	r.hva = mem;
	LAB_REQUIRE(lab, vmig_region_add(s, &r, NULL) == 0, "region: %s",
		    vmig_errmsg(s));
	io.fd = container;
	LAB_REQUIRE(lab, vmig_iommu_add(s, &io, &map.iommu_id) == 0,
		    "container: %s", vmig_errmsg(s));
	LAB_REQUIRE(lab, vmig_dma_map(s, &map) == 0, "map: %s",
		    vmig_errmsg(s));
	vd.address = dev->name;
	vd.iommu_id = map.iommu_id;
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
	LAB_REQUIRE(lab, vmig_set_vmm_ops(s, &ops, &w) == 0, "ops: %s",
		    vmig_errmsg(s));

	/* The pattern, written by the CPU before tracking, into the buffer. */
	pattern(pat);
	memcpy(mem + EDU_PATTERN_PAGE * PG, pat, EDU_XFER);
	ret = edu_dma(&e, EDU_PATTERN_PAGE * PG, false);
	LAB_REQUIRE(lab, ret == 0, "DMA into the device's buffer: %d", ret);
	lab_say(lab, "edu: pattern copied into its buffer");

	LAB_REQUIRE(lab, pthread_create(&w.th, NULL, writer_main, &w) == 0,
		    "cannot start the DMA writer");
	w.running = true;
	lab_quiet_begin(lab);
	ret = vmig_migrate(s, DST_SOCKET);
	lab_quiet_end(lab, "during the migration");
	if (w.running)
		vmm_stop(&w);
	LAB_EXPECT(lab, ret == 0, "vmig_migrate: %s", vmig_errmsg(s));
	lab_say(lab, "migration: %s", ret == 0 ? "completed" : "failed");
	lab_note(lab, "the device made %u transfers",
		 atomic_load(&w.done));
	LAB_EXPECT(lab, !w.error, "the DMA engine failed: %d", w.error);
	LAB_EXPECT(lab, atomic_load(&w.done) >= EDU_MIN_WRITES,
		   "the device made %u transfers during pre-copy",
		   atomic_load(&w.done));
	lab_say(lab, "device wrote during pre-copy: %s",
		atomic_load(&w.done) >= EDU_MIN_WRITES ? "yes" : "no");

	LAB_REQUIRE(lab, read_all(result[0], &dres, sizeof(dres)),
		    "no result from the destination");
	dret = dres.ret;
	LAB_EXPECT(lab, dret == 0, "the destination's vmig_receive: %d",
		   dret);
	lab_say(lab, "destination: %s", dret == 0 ? "started" : "failed");
	/* The state went through RESUMING into RUNNING there. */
	LAB_EXPECT(lab, dres.state_ret == 0 &&
				dres.state == VK_VFIO_STATE_RUNNING,
		   "the destination's mtty is in state %u (GET: %d)",
		   dres.state, dres.state_ret);
	lab_say(lab, "destination's mtty: %s",
		lab_mig_state(dres.state_ret ? ~0u : dres.state));
	ret = mig_state(&lab->host, mdev, &sstate);
	LAB_EXPECT(lab, ret == 0 && sstate == VK_VFIO_STATE_STOP,
		   "the source's mtty is in state %u", sstate);
	lab_say(lab, "source's mtty: %s", lab_mig_state(sstate));
	LAB_REQUIRE(lab, dret == 0 && read_all(result[0], dmem, GUEST_LEN),
		    "no memory from the destination");
	for (i = 0; i < GUEST_LEN / PG; i++)
		differ += memcmp(mem + (size_t)i * PG, dmem + (size_t)i * PG,
				 PG) != 0;
	for (i = 0; i < EDU_TARGETS && i < atomic_load(&w.done); i++)
		holding += !memcmp(mem + target_iova(i), pat, EDU_XFER) &&
			   !memcmp(dmem + target_iova(i), pat, EDU_XFER);
	LAB_EXPECT(lab, differ == 0, "%llu pages differ",
		   (unsigned long long)differ);
	LAB_EXPECT(lab, holding == i, "%llu of %u written pages hold the "
				      "pattern on both sides",
		   (unsigned long long)holding, i);
	lab_say(lab, "memory: %llu pages differ; written pages hold the "
		     "pattern on both sides: %s",
		(unsigned long long)differ, holding == i ? "yes" : "no");
out:
	if (w.running)
		vmm_stop(&w);
	vmig_session_free(s);
	if (child > 0) {
		if (dret != 0)
			kill(child, SIGKILL);
		waitpid(child, &st, 0);
	}
	for (i = 0; i < 2; i++) {
		if (ready[i] >= 0)
			close(ready[i]);
		if (result[i] >= 0)
			close(result[i]);
	}
	lab_vfio_close(lab, &mc, &mg, &mdev);
	lab_vfio_close(lab, &container, &group, &device);
	if (mem)
		lab_mem_free(mem, GUEST_LEN);
	free(dmem);
}
