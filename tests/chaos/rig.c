/*
 * rig.c: a live migration in one process over the kernel simulator (see
 * rig.h): the sessions, the guest (the simulator's, tests/sim/guest.c,
 * with the rig's writers and vCPU), the VMM's callbacks and operations,
 * and the checks.
 */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "rig.h"
#include "common/relay.h"
#include "common/vcpu_plugin.h"

#include "core/converge.h"
#include "core/engine.h"
#include "core/internal.h"
#include <vmig/linux-uapi.h>
#include "sim/truth.h"
#include "tool/vmig_tool.h"

#define GUEST_STEP_US 250u /* the guest's pace: one DMA step per period */

/* ------------------------------------------------------------------ */
/* Strings and logs                                                    */

void rig_buf_printf(struct rig_buf *b, const char *fmt, ...)
{
	va_list ap;
	size_t room;
	char *p;
	int n;

	if (b->nomem)
		return;
	for (;;) {
		room = b->cap - b->len;
		va_start(ap, fmt);
		n = vsnprintf(b->p ? b->p + b->len : NULL, room, fmt, ap);
		va_end(ap);
		if (n < 0) {
			b->nomem = true;
			return;
		}
		if ((size_t)n < room) {
			b->len += (size_t)n;
			return;
		}
		room = b->cap ? b->cap * 2 : 1024;
		while (room < b->len + (size_t)n + 1)
			room *= 2;
		p = realloc(b->p, room);
		if (!p) {
			b->nomem = true;
			return;
		}
		b->p = p;
		b->cap = room;
	}
}

void rig_buf_free(struct rig_buf *b)
{
	free(b->p);
	memset(b, 0, sizeof(*b));
}

static void log_append(struct rig *r, const char *line)
{
	size_t n = strlen(line);

	pthread_mutex_lock(&r->log_lock);
	if (r->log_echo)
		fprintf(stderr, "%s\n", line);
	if (n + 2 > sizeof(r->log))
		n = sizeof(r->log) - 2;
	/* Only the last lines matter: drop the older half when full. */
	if (r->log_len + n + 2 > sizeof(r->log)) {
		size_t keep = r->log_len / 2;

		if (keep + n + 2 > sizeof(r->log))
			keep = 0;
		memmove(r->log, r->log + r->log_len - keep, keep);
		r->log_len = keep;
	}
	memcpy(r->log + r->log_len, line, n);
	r->log_len += n;
	r->log[r->log_len++] = '\n';
	r->log[r->log_len] = '\0';
	pthread_mutex_unlock(&r->log_lock);
}

void rig_logf(struct rig *r, const char *fmt, ...)
{
	char line[1024];
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(line, sizeof(line), fmt, ap);
	va_end(ap);
	log_append(r, line);
}

static void session_log(void *opaque, enum vmig_log_level level,
			const char *msg)
{
	struct rig *r = opaque;

	(void)level;
	log_append(r, msg);
}

static void dst_session_log(void *opaque, enum vmig_log_level level,
			    const char *msg)
{
	struct rig *r = opaque;

	(void)level;
	if (!strncmp(msg, "destination: ", 13))
		log_append(r, msg);
	else
		rig_logf(r, "destination: %s", msg);
}

static void on_progress(void *opaque, const struct vmig_progress *p)
{
	struct rig *r = opaque;

	r->progress_calls++;
	if (r->progress)
		r->progress(r, p);
}

/* ------------------------------------------------------------------ */
/* The guest                                                           */

/* A random mapped, writable page range of len bytes in space; -ENOENT. */
static int pick_iova(const struct rig_space *sp, uint64_t *rng, size_t len,
		     uint64_t *iova)
{
	size_t i, n = 0, k;

	for (i = 0; i < sp->nr_maps; i++)
		n += sp->maps[i].writable && sp->maps[i].length >= len;
	if (!n)
		return -ENOENT;
	k = rig_below(rng, n);
	for (i = 0; i < sp->nr_maps; i++) {
		const struct rig_map *m = &sp->maps[i];
		uint64_t slots;

		if (!m->writable || m->length < len || k--)
			continue;
		slots = (m->length - len) / RIG_PAGE + 1;
		*iova = m->iova + rig_below(rng, slots) * RIG_PAGE;
		return 0;
	}
	return -ENOENT;
}

static int dma_write(struct ksim_device *kd, uint32_t pasid, uint64_t iova,
		     size_t len)
{
	if (pasid)
		return ksim_dma_write_pasid(kd, pasid, iova, NULL, len);
	return ksim_dma_write(kd, iova, NULL, len);
}

/*
 * One step of the rig's writers. Runs with `stepping` set and the lock
 * released: writers and the mirror change only under the lock with no
 * step under way, so they are stable here.
 */
static void writers_step(struct rig *r)
{
	size_t i;
	uint32_t j;

	for (i = 0; i < r->nr_writers; i++) {
		struct rig_writer *w = &r->writers[i];

		for (j = 0; w->active && j < w->writes; j++) {
			uint64_t iova;

			if (pick_iova(&r->spaces[w->space], &w->rng,
				      w->write_size, &iova) < 0)
				break;
			if (dma_write(w->kd, w->pasid, iova, w->write_size) ==
			    0)
				w->made++;
		}
	}
}

/* ------------------------------------------------------------------ */
/* vCPUs and their dirty source                                        */

/* The rig whose vCPUs the source reads: create() takes no user pointer. */
static struct rig *vcpu_rig;

/* One guest step of the vCPUs: data first, then the log's bit. */
static void vcpu_step(struct rig *r)
{
	struct rig_vcpu *v = &r->vcpu;
	uint32_t i;

	for (i = 0; v->on && i < v->writes; i++) {
		size_t reg;
		uint64_t pg;

		pthread_mutex_lock(&v->lock);
		reg = (size_t)rig_below(&v->rng, v->nr);
		pg = rig_below(&v->rng, v->npages[reg]);
		v->hva[reg][pg * RIG_PAGE + rig_below(&v->rng, RIG_PAGE)] +=
			(uint8_t)(1 + rig_below(&v->rng, 255));
		v->log[reg][pg / 64] |= 1ull << (pg % 64);
		v->made++;
		pthread_mutex_unlock(&v->lock);
	}
}

static int vcpu_create(const struct vmig_host *h, void **inst)
{
	(void)h;
	if (!vcpu_rig)
		return -ENODEV;
	*inst = vcpu_rig;
	return 0;
}

static int vcpu_start(void *inst, uint64_t page_size)
{
	struct rig_vcpu *v = &((struct rig *)inst)->vcpu;
	size_t i;

	if (page_size != RIG_PAGE)
		return -EINVAL;
	pthread_mutex_lock(&v->lock);
	/*
	 * A restart: the guest ran on since the failed read, so a vCPU
	 * write falls between that failure and this start, whose log the
	 * start then forgets. Only vmig marking all of memory dirty on the
	 * restart keeps it.
	 */
	if (v->starts++ && v->on && v->nr) {
		size_t reg = (size_t)rig_below(&v->rng, v->nr);
		uint64_t pg = rig_below(&v->rng, v->npages[reg]);

		v->hva[reg][pg * RIG_PAGE] += 1;
		v->made++;
	}
	/* As KVM's: enabling the log forgets what was logged before. */
	for (i = 0; i < v->nr; i++)
		memset(v->log[i], 0, (v->npages[i] + 63) / 64 * 8);
	pthread_mutex_unlock(&v->lock);
	return 0;
}

/* Reads and clears the log over [iova, iova + length) of GPA space. */
static int vcpu_read(void *inst, const struct vmig_read *rq, uint64_t *bm)
{
	struct rig_vcpu *v = &((struct rig *)inst)->vcpu;
	uint64_t n = rq->length / RIG_PAGE, p;
	size_t i;

	pthread_mutex_lock(&v->lock);
	if (v->fail_reads > 0) {
		v->fail_reads--;
		v->failed_reads++;
		pthread_mutex_unlock(&v->lock);
		return -EIO;
	}
	for (i = 0; i < v->nr; i++) {
		for (p = 0; p < n; p++) {
			uint64_t gpa = rq->iova + p * RIG_PAGE, pg;

			if (gpa < v->gpa[i] ||
			    gpa >= v->gpa[i] + v->npages[i] * RIG_PAGE)
				continue;
			pg = (gpa - v->gpa[i]) / RIG_PAGE;
			if (!(v->log[i][pg / 64] & (1ull << (pg % 64))))
				continue;
			v->log[i][pg / 64] &= ~(1ull << (pg % 64));
			bm[p / 64] |= 1ull << (p % 64);
		}
	}
	pthread_mutex_unlock(&v->lock);
	return 0;
}

static const struct vmig_source_ops vcpu_ops = {
	.size = sizeof(struct vmig_source_ops),
	.create = vcpu_create,
	.start = vcpu_start,
	.read = vcpu_read,
};

static const struct vmig_plugin vcpu_plugin =
	VMIG_TEST_VCPU_PLUGIN("rig-vcpu", RIG_PAGE, vcpu_ops);

int rig_vcpu_add(struct rig *r, uint32_t writes, uint64_t seed,
		 int only_region)
{
	struct rig_vcpu *v = &r->vcpu;
	size_t i, first = 0, end = r->src->nr_regions;
	int ret;

	if (only_region >= 0) {
		if ((size_t)only_region >= end)
			return -EINVAL;
		first = (size_t)only_region;
		end = first + 1;
	}
	if (end - first > RIG_VCPU_REGIONS)
		return -E2BIG;
	for (i = 0; i < end - first; i++) {
		const struct vmig_region_rec *reg = &r->src->regions[first + i];

		v->log[i] = calloc((reg->npages + 63) / 64, 8);
		if (!v->log[i])
			return -ENOMEM;
		v->nr = i + 1; /* rig_free frees what is here */
		v->gpa[i] = reg->gpa;
		v->npages[i] = reg->npages;
		v->hva[i] = reg->hva;
	}
	v->rng = seed | 1;
	vcpu_rig = r;
	ret = vmig_plugin_register(r->src, &vcpu_plugin);
	if (ret < 0)
		return ret;
	pthread_mutex_lock(&v->lock);
	v->writes = writes;
	v->on = true;
	pthread_mutex_unlock(&v->lock);
	return 0;
}

void rig_vcpu_fail(struct rig *r, int times)
{
	pthread_mutex_lock(&r->vcpu.lock);
	r->vcpu.fail_reads = times;
	pthread_mutex_unlock(&r->vcpu.lock);
}

/* After each device step of the guest: its writers and its vCPU. */
static void guest_step(void *opaque, uint64_t step)
{
	struct rig *r = opaque;

	(void)step;
	writers_step(r);
	vcpu_step(r);
}

/* With the lock held: waits until no step is under way. */
static void wait_no_step(struct rig *r)
{
	while (r->guest.stepping)
		pthread_cond_wait(&r->guest.cond, &r->guest.lock);
}

static int vmm_stop(void *opaque)
{
	struct rig *r = opaque;

	return sim_guest_stop(&r->guest);
}

static int vmm_resume(void *opaque)
{
	struct rig *r = opaque;

	/* The migration is over: it runs freely. */
	return sim_guest_resume(&r->guest);
}

static int vmm_start(void *opaque)
{
	struct rig *r = opaque;

	return sim_guest_start(&r->guest);
}

static int vmm_nop(void *opaque)
{
	(void)opaque;
	return 0;
}

static const struct vmig_vmm_ops src_ops = {
	.size = sizeof(struct vmig_vmm_ops),
	.stop = vmm_stop,
	.resume = vmm_resume,
	.start = vmm_nop,
};

static const struct vmig_vmm_ops dst_ops = {
	.size = sizeof(struct vmig_vmm_ops),
	.stop = vmm_nop,
	.resume = vmm_nop,
	.start = vmm_start,
};

bool rig_guest_running(struct rig *r)
{
	bool running;

	pthread_mutex_lock(&r->guest.lock);
	running = r->guest.running;
	pthread_mutex_unlock(&r->guest.lock);
	return running;
}

bool rig_wait_steps(struct rig *r, unsigned int n, unsigned int timeout_ms)
{
	struct timespec until;
	uint64_t target;
	bool ok;

	clock_gettime(CLOCK_REALTIME, &until);
	until.tv_sec += timeout_ms / 1000;
	until.tv_nsec += (long)(timeout_ms % 1000) * 1000000;
	if (until.tv_nsec >= 1000000000) {
		until.tv_sec++;
		until.tv_nsec -= 1000000000;
	}
	pthread_mutex_lock(&r->guest.lock);
	target = r->guest.steps + n;
	/* In lockstep, these steps come on top of the iteration's. */
	if (r->guest.lockstep && r->guest.allowed < target) {
		r->guest.allowed = target;
		pthread_cond_broadcast(&r->guest.cond);
	}
	while (r->guest.steps < target && r->guest.running &&
	       !r->guest.paused &&
	       pthread_cond_timedwait(&r->guest.cond, &r->guest.lock,
				      &until) == 0)
		;
	ok = r->guest.steps >= target;
	pthread_mutex_unlock(&r->guest.lock);
	return ok;
}

/* ------------------------------------------------------------------ */
/* Building                                                            */

/* The document with "role" (and "transport") added after its '{'. */
static char *with_role(const char *json, bool source)
{
	const char *brace = strchr(json, '{');
	const char *head = source ? "\"role\": \"local\","
				  : "\"role\": \"destination\", "
				    "\"transport\": \"unix:/unused\",";
	size_t pre, len = strlen(json), hl = strlen(head);
	char *text;

	if (!brace)
		return NULL;
	pre = (size_t)(brace - json) + 1;
	text = malloc(len + hl + 2);
	if (!text)
		return NULL;
	memcpy(text, json, pre);
	memcpy(text + pre, head, hl);
	memcpy(text + pre + hl, json + pre, len - pre + 1);
	return text;
}

static int session_from(struct rig *r, const char *json, bool source,
			vmig_session **out, char *err, size_t errlen)
{
	struct vmig_session_params p = {
		.size = sizeof(p),
		.role = source ? VMIG_ROLE_SOURCE : VMIG_ROLE_DESTINATION,
		.log = source ? session_log : dst_session_log,
		.log_opaque = r,
		.log_level = VMIG_LOG_DEBUG,
		.progress = source ? on_progress : NULL,
		.progress_opaque = r,
	};
	char *text = with_role(json, source), cerr[512];
	vmig_config *cfg = NULL;
	vmig_session *s = NULL;
	int ret;

	*out = NULL;
	if (!text)
		return -ENOMEM;
	ret = vmig_config_parse(text, strlen(text), NULL, &cfg, cerr,
				sizeof(cerr));
	free(text);
	if (ret < 0) {
		snprintf(err, errlen, "configuration: %s", cerr);
		return ret;
	}
	ret = vmig_session_new(&p, &s);
	if (ret == 0)
		ret = vmig_plugin_add_path(s, VMIG_BUILD_PLUGIN_DIR);
	if (ret == 0) {
		ret = vmig_session_configure(s, cfg);
		if (ret < 0)
			snprintf(err, errlen, "%s: %s",
				 source ? "source" : "destination",
				 vmig_errmsg(s));
	} else {
		snprintf(err, errlen, "session: %s", vmig_strerror(ret));
	}
	vmig_config_free(cfg);
	if (ret == 0 && !vmig_tool_ksim(s)) {
		snprintf(err, errlen, "the configuration's kernel is not "
			 "simulated");
		ret = -EINVAL;
	}
	if (ret < 0) {
		vmig_session_free(s);
		return ret;
	}
	*out = s;
	return 0;
}

/* The mirror of every address space the configuration made. */
static int mirror_init(struct rig *r)
{
	size_t i, j;

	if (r->src->nr_iommus > RIG_MAX_SPACES)
		return -ENOSPC;
	for (i = 0; i < r->src->nr_iommus; i++) {
		const struct vmig_iommu_rec *io = r->src->iommus[i];
		struct rig_space *sp = &r->spaces[i];

		if (io->nr_maps > RIG_MAX_MAPS)
			return -ENOSPC;
		snprintf(sp->label, sizeof(sp->label), "%s", io->name);
		sp->id = io->desc.id;
		sp->kind = io->desc.kind;
		sp->fd = io->desc.fd;
		sp->ioas_id = io->desc.ioas_id;
		for (j = 0; j < io->nr_maps; j++) {
			sp->maps[j].iova = io->maps[j].iova;
			sp->maps[j].length = io->maps[j].length;
			sp->maps[j].gpa = io->maps[j].gpa;
			sp->maps[j].writable =
				io->maps[j].flags & VMIG_DMA_WRITE;
		}
		sp->nr_maps = io->nr_maps;
	}
	r->nr_spaces = r->src->nr_iommus;
	if (r->src->nr_devices > RIG_MAX_DEVICES)
		return -ENOSPC;
	for (i = 0; i < r->src->nr_devices; i++) {
		const struct vmig_device_rec *d = r->src->devices[i];
		struct rig_device *rd = &r->devices[i];

		snprintf(rd->name, sizeof(rd->name), "%s", d->name);
		snprintf(rd->address, sizeof(rd->address), "%s", d->address);
		rd->space = (int)d->iommu; /* the mirror follows vmig's ids */
		rd->id = d->id;
		rd->present = d->present;
	}
	r->nr_devices = r->src->nr_devices;
	return 0;
}

int rig_new(const char *json, struct rig **out, char *err, size_t errlen)
{
	struct sim_guest_params gp = {
		.step_us = GUEST_STEP_US,
		.steps_per_sync = 4,
		.step = guest_step,
	};
	struct rig *r;
	int ret;

	*out = NULL;
	err[0] = '\0';
	/*
	 * Strict's digests count in the expected downtime at one fixed
	 * rate, the conservative one: a test that means to run all its
	 * iterations (a limit that cannot be met) does so on any machine.
	 */
	vmig_digest_rate_fixed = VMIG_CONVERGE_DIGEST_RATE;
	r = calloc(1, sizeof(*r));
	if (!r)
		return -ENOMEM;
	gp.step_opaque = r;
	sim_guest_init(&r->guest, &gp);
	pthread_mutex_init(&r->log_lock, NULL);
	pthread_mutex_init(&r->vcpu.lock, NULL);
	ret = session_from(r, json, true, &r->src, err, errlen);
	if (ret == 0)
		ret = session_from(r, json, false, &r->dst, err, errlen);
	if (ret == 0) {
		r->k = vmig_tool_ksim(r->src);
		r->dk = vmig_tool_ksim(r->dst);
		ret = mirror_init(r);
		if (ret < 0)
			snprintf(err, errlen,
				 "too many spaces, mappings or devices");
	}
	if (ret == 0)
		ret = vmig_set_vmm_ops(r->src, &src_ops, r);
	if (ret == 0)
		ret = vmig_set_vmm_ops(r->dst, &dst_ops, r);
	if (ret == 0) {
		r->guest.p.k = r->k;
		ret = sim_guest_spawn(&r->guest);
		if (ret < 0)
			snprintf(err, errlen, "cannot start the guest thread");
	}
	if (ret < 0) {
		rig_free(r);
		return ret;
	}
	*out = r;
	return 0;
}

void rig_free(struct rig *r)
{
	if (!r)
		return;
	sim_guest_quit(&r->guest);
	/* Injected failures must not hit the teardown. */
	if (r->k)
		ksim_fail_clear(r->k);
	vmig_session_free(r->src);
	vmig_session_free(r->dst);
	sim_guest_fini(&r->guest);
	pthread_mutex_destroy(&r->log_lock);
	for (size_t i = 0; i < r->vcpu.nr; i++)
		free(r->vcpu.log[i]);
	pthread_mutex_destroy(&r->vcpu.lock);
	if (vcpu_rig == r)
		vcpu_rig = NULL;
	free(r);
}

int rig_policies(struct rig *r, const struct vmig_policies *p)
{
	struct vmig_policies q = *p;

	/*
	 * The rigs prove that a mismatch never commits: the source checks
	 * the digests before COMMIT unless a test asks otherwise.
	 */
	if (q.size >= sizeof(q) && !q.verify)
		q.verify = VMIG_VERIFY_STRICT;
	return vmig_set_policies(r->src, &q);
}

int rig_space(struct rig *r, const char *label)
{
	size_t i;

	for (i = 0; i < r->nr_spaces; i++)
		if (!strcmp(r->spaces[i].label, label))
			return (int)i;
	return -1;
}

/* Under the lock: the last record of that name, or NULL. */
static struct rig_device *device_find(struct rig *r, const char *name)
{
	size_t i;

	/* The last of that name: a hot-plugged device may reuse one. */
	for (i = r->nr_devices; i-- > 0;)
		if (!strcmp(r->devices[i].name, name))
			return &r->devices[i];
	return NULL;
}

int rig_device_id(struct rig *r, const char *name)
{
	struct rig_device *d;
	int id;

	pthread_mutex_lock(&r->guest.lock);
	d = device_find(r, name);
	id = d ? (int)d->id : -1;
	pthread_mutex_unlock(&r->guest.lock);
	return id;
}

/* ------------------------------------------------------------------ */
/* Writers and writes                                                  */

int rig_writer_add(struct rig *r, const char *device, uint32_t pasid,
		   const char *space, uint32_t writes_per_step,
		   uint32_t write_size, uint64_t seed, bool active)
{
	struct ksim_device *kd = ksim_device_find(r->k, device);
	int sp = rig_space(r, space);
	struct rig_writer *w;
	int idx;

	if (!kd || sp < 0)
		return -ENOENT;
	pthread_mutex_lock(&r->guest.lock);
	if (r->nr_writers == RIG_MAX_WRITERS) {
		pthread_mutex_unlock(&r->guest.lock);
		return -ENOSPC;
	}
	wait_no_step(r);
	idx = (int)r->nr_writers;
	w = &r->writers[r->nr_writers++];
	memset(w, 0, sizeof(*w));
	snprintf(w->device, sizeof(w->device), "%s", device);
	w->kd = kd;
	w->pasid = pasid;
	w->space = sp;
	w->writes = writes_per_step;
	w->write_size = write_size ? write_size : RIG_PAGE;
	w->rng = seed * 0x9e3779b97f4a7c15ull + 1;
	w->active = active;
	pthread_mutex_unlock(&r->guest.lock);
	return idx;
}

void rig_writers_set(struct rig *r, const char *device, bool active)
{
	size_t i;

	pthread_mutex_lock(&r->guest.lock);
	wait_no_step(r);
	for (i = 0; i < r->nr_writers; i++)
		if (!strcmp(r->writers[i].device, device))
			r->writers[i].active = active;
	pthread_mutex_unlock(&r->guest.lock);
}

int rig_write(struct rig *r, const char *device, uint32_t pasid,
	      const char *space, uint64_t *iova, size_t len, uint64_t seed)
{
	struct ksim_device *kd = ksim_device_find(r->k, device);
	int sp = rig_space(r, space), ret;
	uint64_t at, rng = seed | 1;

	if (!kd || sp < 0)
		return -ENOENT;
	pthread_mutex_lock(&r->guest.lock);
	if (!r->guest.running) {
		pthread_mutex_unlock(&r->guest.lock);
		return -EAGAIN;
	}
	if (iova && *iova != UINT64_MAX)
		at = *iova;
	else if ((ret = pick_iova(&r->spaces[sp], &rng, len, &at)) < 0) {
		pthread_mutex_unlock(&r->guest.lock);
		return ret;
	}
	/* The VMM's stop waits for it: a write of the running guest. */
	r->guest.busy++;
	pthread_mutex_unlock(&r->guest.lock);
	ret = dma_write(kd, pasid, at, len);
	pthread_mutex_lock(&r->guest.lock);
	r->guest.busy--;
	pthread_cond_broadcast(&r->guest.cond);
	pthread_mutex_unlock(&r->guest.lock);
	if (iova)
		*iova = at;
	return ret;
}

/* ------------------------------------------------------------------ */
/* Mappings                                                            */

/* Under the lock, no step under way. */
static int mirror_add(struct rig_space *sp, uint64_t iova, uint64_t gpa,
		      uint64_t len, bool writable)
{
	size_t i;

	if (sp->nr_maps == RIG_MAX_MAPS)
		return -ENOSPC;
	for (i = sp->nr_maps; i > 0 && sp->maps[i - 1].iova > iova; i--)
		sp->maps[i] = sp->maps[i - 1];
	sp->maps[i].iova = iova;
	sp->maps[i].length = len;
	sp->maps[i].gpa = gpa;
	sp->maps[i].writable = writable;
	sp->nr_maps++;
	return 0;
}

/* Takes the mappings inside [iova, iova + len) out; how many went. */
static size_t mirror_remove(struct rig_space *sp, uint64_t iova, uint64_t len,
			    struct rig_map *gone, size_t max)
{
	size_t i, n = 0, k = 0;

	for (i = 0; i < sp->nr_maps; i++) {
		struct rig_map *m = &sp->maps[i];

		if (m->iova >= iova && m->iova + m->length <= iova + len) {
			if (k < max)
				gone[k++] = *m;
			continue;
		}
		sp->maps[n++] = *m;
	}
	sp->nr_maps = n;
	return k;
}

int rig_map(struct rig *r, const char *space, uint64_t iova, uint64_t gpa,
	    uint64_t len, bool writable)
{
	struct vmig_dma_map m = {
		.size = sizeof(m),
		.flags = VMIG_DMA_READ | (writable ? VMIG_DMA_WRITE : 0),
		.iova = iova,
		.length = len,
		.gpa = gpa,
	};
	int sp = rig_space(r, space), ret;

	if (sp < 0)
		return -ENOENT;
	m.iommu_id = r->spaces[sp].id;
	ret = vmig_dma_map(r->src, &m);
	rig_logf(r, "rig: map %s 0x%llx+0x%llx -> gpa 0x%llx%s: %d", space,
		 (unsigned long long)iova, (unsigned long long)len,
		 (unsigned long long)gpa, writable ? "" : " (read-only)",
		 ret);
	if (ret < 0)
		return ret;
	pthread_mutex_lock(&r->guest.lock);
	wait_no_step(r);
	mirror_add(&r->spaces[sp], iova, gpa, len, writable);
	pthread_mutex_unlock(&r->guest.lock);
	return 0;
}

int rig_unmap(struct rig *r, const char *space, uint64_t iova, uint64_t len,
	      const char *last_writer, uint64_t *last_iova, uint64_t seed)
{
	struct rig_map gone[RIG_MAX_MAPS];
	int sp = rig_space(r, space), ret;
	uint64_t at = *last_iova, rng = seed | 1;
	bool wrote = false;
	size_t n, i;

	*last_iova = UINT64_MAX;
	if (sp < 0)
		return -ENOENT;
	/* Nothing aims at the range any more; the guest is quiesced. */
	pthread_mutex_lock(&r->guest.lock);
	r->guest.paused++;
	/* The sync hook waits for steps only while the guest can take them. */
	pthread_cond_broadcast(&r->guest.cond);
	wait_no_step(r);
	n = mirror_remove(&r->spaces[sp], iova, len, gone, RIG_MAX_MAPS);
	pthread_mutex_unlock(&r->guest.lock);
	/*
	 * The range's last writes, just before it goes: where the caller
	 * said, else one in every writable mapping it covers (an unmap over
	 * a hole must harvest the mappings past the hole too).
	 */
	if (last_writer && at != UINT64_MAX) {
		wrote = rig_write(r, last_writer, 0, space, &at, RIG_PAGE,
				  seed) == 0;
	} else {
		for (i = 0; i < n && last_writer; i++) {
			uint64_t w;

			if (!gone[i].writable)
				continue;
			w = gone[i].iova + rig_below(&rng, gone[i].length /
							      RIG_PAGE) *
						   RIG_PAGE;
			if (rig_write(r, last_writer, 0, space, &w, RIG_PAGE,
				      seed) == 0) {
				wrote = true;
				at = w;
			}
		}
	}
	ret = vmig_dma_unmap(r->src, r->spaces[sp].id, iova, len);
	rig_logf(r, "rig: unmap %s 0x%llx+0x%llx (last write %s at 0x%llx): "
		 "%d", space, (unsigned long long)iova,
		 (unsigned long long)len, wrote ? last_writer : "none",
		 (unsigned long long)at, ret);
	if (wrote)
		*last_iova = at;
	pthread_mutex_lock(&r->guest.lock);
	wait_no_step(r);
	for (i = 0; ret < 0 && i < n; i++)
		mirror_add(&r->spaces[sp], gone[i].iova, gone[i].gpa,
			   gone[i].length, gone[i].writable);
	if (r->guest.paused)
		r->guest.paused--;
	pthread_cond_broadcast(&r->guest.cond);
	pthread_mutex_unlock(&r->guest.lock);
	return ret;
}

/* ------------------------------------------------------------------ */
/* Hot-plug and unplug                                                 */

static int kopen(struct rig *r, const char *path)
{
	const struct vmig_host *h = ksim_host(r->k);

	return h->open(h->kctx, path, O_RDWR);
}

static int kioctl(struct rig *r, int fd, unsigned long req, void *arg)
{
	const struct vmig_host *h = ksim_host(r->k);

	return h->ioctl(h->kctx, fd, req, arg);
}

static void kclose(struct rig *r, int fd)
{
	const struct vmig_host *h = ksim_host(r->k);

	if (fd >= 0)
		h->close(h->kctx, fd);
}

/* The VMM's side of a type1 device: group into the container, device fd. */
static int open_type1(struct rig *r, const struct rig_hotplug *hp,
		      const struct rig_space *sp, int *gfd, int *dfd)
{
	int cfd = sp->fd, ret;
	char path[32];

	snprintf(path, sizeof(path), "/dev/vfio/%d", hp->group);
	*gfd = kopen(r, path);
	if (*gfd < 0)
		return *gfd;
	ret = kioctl(r, *gfd, VFIO_GROUP_SET_CONTAINER, &cfd);
	if (ret < 0)
		return ret;
	ret = kioctl(r, *gfd, VFIO_GROUP_GET_DEVICE_FD, (void *)hp->name);
	if (ret < 0)
		return ret;
	*dfd = ret;
	return 0;
}

/* The VMM's side of an iommufd device: cdev bound, attached to the IOAS. */
static int open_iommufd(struct rig *r, const struct rig_hotplug *hp,
			const struct rig_space *sp, int *dfd, uint32_t *devid)
{
	struct vk_vfio_device_bind_iommufd bind = {
		.argsz = sizeof(bind),
		.iommufd = sp->fd,
	};
	struct vk_vfio_device_attach_iommufd_pt at = {
		.argsz = sizeof(at),
		.pt_id = sp->ioas_id,
	};
	char path[48];
	int ret;

	snprintf(path, sizeof(path), "/dev/vfio/devices/vfio%u",
		 hp->cdev_index);
	*dfd = kopen(r, path);
	if (*dfd < 0)
		return *dfd;
	ret = kioctl(r, *dfd, VK_VFIO_DEVICE_BIND_IOMMUFD, &bind);
	if (ret < 0)
		return ret;
	ret = kioctl(r, *dfd, VK_VFIO_DEVICE_ATTACH_IOMMUFD_PT, &at);
	if (ret < 0)
		return ret;
	*devid = bind.out_devid;
	return 0;
}

int rig_hotplug(struct rig *r, const struct rig_hotplug *hp,
		uint32_t *out_id, bool *kernel_failed)
{
	struct ksim_device_params kp = {
		.name = hp->name,
		.kind = hp->mdev ? KSIM_DEV_MDEV : KSIM_DEV_PCI,
		.group = -1,
		.feature = hp->feature,
	};
	struct vmig_device d = {
		.size = sizeof(d),
		.kind = hp->mdev ? VMIG_DEVICE_MDEV : VMIG_DEVICE_VFIO_PCI,
		.name = hp->name,
		.device_fd = -1,
		.group_fd = -1,
	};
	int spi = rig_space(r, hp->space), gfd = -1, dfd = -1, ret, w = -1;
	struct ksim_device *kd = NULL;
	const struct rig_space *sp;
	unsigned int i;
	uint32_t id = 0;

	*kernel_failed = false;
	if (spi < 0)
		return -ENOENT;
	sp = &r->spaces[spi];
	d.iommu_id = sp->id;
	if (sp->kind == VMIG_IOMMU_TYPE1) {
		kp.group = hp->group;
	} else {
		kp.iommufd.cdev = true;
		kp.iommufd.cdev_index = hp->cdev_index;
		kp.iommufd.dirty_tracking = hp->dirty_tracking;
		kp.iommufd.pgsizes = hp->iommu_pgsizes;
	}
	ret = ksim_device_add(r->k, &kp, &kd);
	if (ret == 0)
		ret = sp->kind == VMIG_IOMMU_TYPE1
			      ? open_type1(r, hp, sp, &gfd, &dfd)
			      : open_iommufd(r, hp, sp, &dfd, &d.iommufd_id);
	if (ret < 0) {
		*kernel_failed = true;
		rig_logf(r, "rig: hot-plug of %s into %s: the kernel side "
			 "failed: %s", hp->name, hp->space,
			 vmig_strerror(ret));
		goto undo;
	}
	d.device_fd = dfd;
	d.group_fd = gfd;
	w = rig_writer_add(r, hp->name, 0, hp->space, hp->writes_per_step,
			   hp->write_size, hp->seed, false);
	/* What it writes before vmig hears of it: unknown, dirty once. */
	for (i = 0; i < hp->early_writes; i++)
		rig_write(r, hp->name, 0, hp->space, NULL, RIG_PAGE,
			  hp->seed + i);
	ret = vmig_device_add(r->src, &d, &id);
	/* (The session's message is the caller's to read: this may be
	 * another thread than the migration's.) */
	rig_logf(r, "rig: hot-plug %s into %s (%u early write(s)): %s",
		 hp->name, hp->space, hp->early_writes, vmig_strerror(ret));
	if (ret == 0) {
		pthread_mutex_lock(&r->guest.lock);
		if (r->nr_devices < RIG_MAX_DEVICES) {
			struct rig_device *rd = &r->devices[r->nr_devices++];

			snprintf(rd->name, sizeof(rd->name), "%s", hp->name);
			snprintf(rd->address, sizeof(rd->address), "%s",
				 hp->name);
			rd->space = spi;
			rd->id = id;
			rd->present = true;
		}
		pthread_mutex_unlock(&r->guest.lock);
		if (out_id)
			*out_id = id;
		if (w >= 0)
			rig_writers_set(r, hp->name, true);
		return 0;
	}
undo:
	/* The VMM unplugs what vmig refused (or what it could not open). */
	if (w >= 0) {
		pthread_mutex_lock(&r->guest.lock);
		wait_no_step(r);
		r->writers[w].active = false;
		r->writers[w].writes = 0;
		pthread_mutex_unlock(&r->guest.lock);
	}
	kclose(r, dfd);
	kclose(r, gfd);
	if (kd)
		ksim_device_remove(r->k, kd);
	return ret;
}

int rig_unplug(struct rig *r, const char *name, bool last_write, bool *wrote,
	       uint64_t seed)
{
	struct rig_device *rd;
	struct ksim_device *kd;
	char address[64];
	const char *space;
	uint32_t id;
	size_t i;
	int ret;

	*wrote = false;
	pthread_mutex_lock(&r->guest.lock);
	rd = device_find(r, name);
	if (!rd || !rd->present) {
		pthread_mutex_unlock(&r->guest.lock);
		return -ENOENT;
	}
	id = rd->id;
	space = r->spaces[rd->space].label;
	snprintf(address, sizeof(address), "%s", rd->address);
	pthread_mutex_unlock(&r->guest.lock);
	kd = ksim_device_find(r->k, address);
	/* The guest stopped using it; its last write before it goes. */
	rig_writers_set(r, address, false);
	if (last_write && kd &&
	    rig_write(r, address, 0, space, NULL, RIG_PAGE, seed) == 0)
		*wrote = true;
	ret = vmig_device_remove(r->src, id);
	rig_logf(r, "rig: unplug %s (last write: %s): %s", name,
		 *wrote ? "yes" : "no", vmig_strerror(ret));
	if (ret < 0) {
		rig_writers_set(r, address, true);
		return ret;
	}
	/* Gone from the kernel: its writers can never write again. */
	pthread_mutex_lock(&r->guest.lock);
	rd->present = false;
	wait_no_step(r);
	for (i = 0; i < r->nr_writers; i++) {
		if (strcmp(r->writers[i].device, address))
			continue;
		r->writers[i].active = false;
		r->writers[i].writes = 0;
	}
	pthread_mutex_unlock(&r->guest.lock);
	if (kd)
		ksim_device_remove(r->k, kd);
	return 0;
}

/* ------------------------------------------------------------------ */
/* Migrating and checking                                              */

/*
 * The engine's hook around each pre-copy sync: before it, waits until the
 * guest took the steps of this interval (unless it cannot step now);
 * after it, allows the next interval's.
 */
static void rig_sync_hook(void *opaque, bool after)
{
	struct rig *r = opaque;

	sim_guest_sync(&r->guest, after);
}

/*
 * The source's observer while it migrates: the ground truth around every
 * sync, composed with the guest's pacing (the guest takes its steps
 * before the truth drains, and is allowed the next ones once the truth
 * has compared).
 */
struct rig_observer {
	struct rig *r;
	struct vmig_truth *truth;
};

static void rig_observe_started(void *opaque)
{
	struct rig_observer *o = opaque;

	vmig_truth_reset(o->truth);
}

static void rig_observe_sync(void *opaque, bool after,
			     struct vmig_sync_truth *truth)
{
	struct rig_observer *o = opaque;

	if (!after)
		rig_sync_hook(o->r, false);
	vmig_truth_on_sync(o->truth, after, truth);
	if (after)
		rig_sync_hook(o->r, true);
}

static void rig_observe_call(void *opaque)
{
	struct rig_observer *o = opaque;

	vmig_truth_settle(o->truth);
}

static const struct vmig_observer rig_observer_ops = {
	.size = sizeof(struct vmig_observer),
	.flags = VMIG_OBSERVER_TRUTH,
	.tracking_started = rig_observe_started,
	.sync = rig_observe_sync,
	.vmm_call_done = rig_observe_call,
};

struct receiver {
	vmig_session *s;
	int ret;
	bool done;
	pthread_mutex_t lock;
};

static void *receive_main(void *opaque)
{
	struct receiver *rc = opaque;
	int ret = vmig_receive(rc->s);

	pthread_mutex_lock(&rc->lock);
	rc->ret = ret;
	rc->done = true;
	pthread_mutex_unlock(&rc->lock);
	return NULL;
}

/*
 * The source migrates through a relay to the destination receiving on a
 * socket of its own (cut), or straight over a socket pair (no cut).
 */
static int migrate_cut(struct rig *r, const struct rig_cut *cut,
		       struct rig_cut_result *out)
{
	char dpath[108], rpath[108], addr[120];
	struct receiver rc = { .s = r->dst };
	struct relay relay;
	pthread_t th;
	int ret;

	snprintf(dpath, sizeof(dpath), "/tmp/vmig-rig-%d-d.sock",
		 (int)getpid());
	snprintf(rpath, sizeof(rpath), "/tmp/vmig-rig-%d-r.sock",
		 (int)getpid());
	snprintf(addr, sizeof(addr), "unix:%s", dpath);
	unlink(dpath);
	ret = vmig_listen(r->dst, addr, NULL, 0);
	if (ret < 0)
		return ret;
	pthread_mutex_init(&rc.lock, NULL);
	ret = relay_start(&relay, rpath, dpath, cut->dir, cut->limit,
			  cut->after_type, false);
	if (ret == 0 && pthread_create(&th, NULL, receive_main, &rc)) {
		relay_stop(&relay);
		ret = -EAGAIN;
	}
	if (ret < 0) {
		pthread_mutex_destroy(&rc.lock);
		return ret;
	}
	ret = vmig_migrate(r->src, relay.src_addr);
	relay_stop(&relay);
	/*
	 * A source that never reached the relay leaves the destination
	 * waiting for a connection: cancel it (a no-op, -EINVAL, until it
	 * waits; nothing of a migration happened there).
	 */
	for (;;) {
		bool done;

		pthread_mutex_lock(&rc.lock);
		done = rc.done;
		pthread_mutex_unlock(&rc.lock);
		if (done || relay.fwd[RELAY_S2D])
			break;
		vmig_cancel(r->dst);
		usleep(1000);
	}
	pthread_join(th, NULL);
	pthread_mutex_destroy(&rc.lock);
	out->ret = ret;
	out->dret = rc.ret;
	out->cut = relay.hit;
	/* The VMM asks the destination, then settles as it answered. */
	if (ret == VMIG_EUNRESOLVED) {
		out->unresolved = true;
		out->resolve_ret = vmig_resolve(r->src,
						rc.ret == 0
							? VMIG_RESOLVE_DESTINATION
							: VMIG_RESOLVE_RESUME);
	}
	return ret;
}

int rig_migrate(struct rig *r)
{
	return rig_migrate_cut(r, NULL, NULL);
}

int rig_migrate_cut(struct rig *r, const struct rig_cut *cut,
		    struct rig_cut_result *out)
{
	struct rig_observer o = { .r = r };
	int ret;

	ret = vmig_truth_new(r->src, r->k, true, &o.truth);
	if (ret < 0)
		return ret;
	ret = vmig_set_observer(r->src, &rig_observer_ops, &o);
	if (ret < 0) {
		vmig_truth_free(o.truth);
		return ret;
	}
	pthread_mutex_lock(&r->guest.lock);
	r->guest.lockstep = true;
	r->guest.granted = false;
	r->guest.allowed = r->guest.steps + r->guest.p.steps_per_sync;
	pthread_mutex_unlock(&r->guest.lock);
	ret = cut ? migrate_cut(r, cut, out)
		  : vmig_migrate_local(r->src, r->dst);
	vmig_set_observer(r->src, NULL, NULL);
	pthread_mutex_lock(&r->guest.lock);
	r->guest.lockstep = false;
	pthread_cond_broadcast(&r->guest.cond);
	pthread_mutex_unlock(&r->guest.lock);
	vmig_truth_free(o.truth);
	return ret;
}

cJSON *rig_report(vmig_session *s)
{
	int64_t len = vmig_report_json(s, NULL, 0);
	cJSON *root;
	char *buf;

	if (len < 0)
		return NULL;
	buf = malloc((size_t)len + 1);
	if (!buf)
		return NULL;
	vmig_report_json(s, buf, (size_t)len + 1);
	root = cJSON_Parse(buf);
	free(buf);
	return root;
}

cJSON *rig_report_device(cJSON *report, const char *name)
{
	cJSON *dev;

	cJSON_ArrayForEach(dev, cJSON_GetObjectItem(report, "devices")) {
		if (!strcmp(rig_str(dev, "name"), name))
			return dev;
	}
	return NULL;
}

const char *rig_str(const cJSON *o, const char *key)
{
	const char *v = cJSON_GetStringValue(cJSON_GetObjectItem(o, key));

	return v ? v : "";
}

double rig_num(const cJSON *o, const char *key)
{
	const cJSON *v = cJSON_GetObjectItem(o, key);

	return cJSON_IsNumber(v) ? v->valuedouble : -1;
}

bool rig_seed_arg(int argc, char **argv, int *i, uint64_t *first,
		  uint64_t *n)
{
	if (!strcmp(argv[*i], "--seeds") && *i + 1 < argc) {
		*n = strtoull(argv[++*i], NULL, 0);
		return true;
	}
	if (!strcmp(argv[*i], "--first") && *i + 1 < argc) {
		*first = strtoull(argv[++*i], NULL, 0);
		return true;
	}
	return false;
}

static void what_add(struct rig_result *res, const char *fmt, ...)
	__attribute__((format(printf, 2, 3)));

static void what_add(struct rig_result *res, const char *fmt, ...)
{
	size_t n = strlen(res->what);
	va_list ap;

	if (n + 3 >= sizeof(res->what))
		return;
	if (n) {
		res->what[n++] = ';';
		res->what[n++] = ' ';
		res->what[n] = '\0';
	}
	va_start(ap, fmt);
	vsnprintf(res->what + n, sizeof(res->what) - n, fmt, ap);
	va_end(ap);
}

/* Destination pages unlike the source's; names the first few. */
static void compare_memory(struct rig *r, struct rig_result *res)
{
	char first[160] = "";
	size_t i, shown = 0, fl = 0;
	uint64_t pg;

	for (i = 0; i < r->src->nr_regions; i++) {
		const struct vmig_region_rec *a = &r->src->regions[i];
		const struct vmig_region_rec *b = &r->dst->regions[i];

		if (i >= r->dst->nr_regions || b->length != a->length) {
			res->pages_differing += a->npages;
			continue;
		}
		for (pg = 0; pg < a->npages; pg++) {
			if (!memcmp(a->hva + pg * RIG_PAGE,
				    b->hva + pg * RIG_PAGE, RIG_PAGE))
				continue;
			res->pages_differing++;
			if (shown++ < 4 && fl < sizeof(first))
				fl += (size_t)snprintf(
					first + fl, sizeof(first) - fl,
					" 0x%llx",
					(unsigned long long)(a->gpa +
							     pg * RIG_PAGE));
		}
	}
	if (res->pages_differing)
		what_add(res, "%llu page(s) of the destination differ, at "
			 "gpa%s%s",
			 (unsigned long long)res->pages_differing, first,
			 shown > 4 ? " ..." : "");
}

/* Devices whose state travelled: the destination's is the source's. */
static void compare_devices(struct rig *r, struct rig_result *res)
{
	size_t i;

	for (i = 0; i < r->src->nr_devices; i++) {
		const struct vmig_device_rec *dev = r->src->devices[i];
		struct ksim_device *ks, *kd;

		if (!dev->present || !dev->mig_state)
			continue;
		ks = ksim_device_find(r->k, dev->address);
		kd = ksim_device_find(r->dk, dev->address);
		if (ks && kd && ksim_device_state_digest(ks) ==
					ksim_device_state_digest(kd))
			continue;
		res->devices_differing++;
		what_add(res, "device %s: the destination's state differs",
			 dev->name);
	}
}

bool rig_check(struct rig *r, struct rig_result *res)
{
	const struct vmig_run_stats *st = &r->src->stats;
	cJSON *rep = rig_report(r->src);
	const char *result = rig_str(rep, "result");
	bool ok = true, resolved = res->resolved;
	int ret = res->ret;

	memset(res, 0, sizeof(*res));
	res->ret = ret;
	res->resolved = resolved;
	pthread_mutex_lock(&r->guest.lock);
	res->stops = r->guest.stops;
	res->resumes = r->guest.resumes;
	res->starts = r->guest.starts;
	pthread_mutex_unlock(&r->guest.lock);
	res->pages_written = st->pages_written;
	res->pages_missed = st->pages_missed;
	if (r->src->engine) {
		res->pages_sent = r->src->engine->st.total_pages;
		res->bytes_sent = r->src->engine->st.total_bytes;
	}
	if (!rep) {
		what_add(res, "no report");
		return false;
	}
	if (!st->truth) {
		what_add(res, "no ground truth");
		ok = false;
	}
	if (res->pages_missed) {
		char when[128] = "";
		size_t i, n = 0;

		/* Which syncs missed them. */
		for (i = 0; i < st->nr_iters && n < sizeof(when); i++)
			if (st->iters[i].pages_missed)
				n += (size_t)snprintf(
					when + n, sizeof(when) - n, " %u:%llu",
					st->iters[i].iteration,
					(unsigned long long)
						st->iters[i].pages_missed);
		what_add(res, "%llu written page(s) were not reported in time "
			 "(by the sync of iteration:pages%s)",
			 (unsigned long long)res->pages_missed, when);
		ok = false;
	}
	if (ret == 0) {
		res->completed = true;
		compare_memory(r, res);
		compare_devices(r, res);
		if (res->pages_differing || res->devices_differing)
			ok = false;
		if (strcmp(result, resolved ? "resolved" : "completed")) {
			what_add(res, "returned 0 but the report says \"%s\"",
				 result);
			ok = false;
		}
		if (res->stops != 1 || res->starts != 1 || res->resumes) {
			what_add(res, "completed with %u stop(s), %u start(s), "
				 "%u resume(s)", res->stops, res->starts,
				 res->resumes);
			ok = false;
		}
	} else {
		/*
		 * Nothing lost: the guest runs on the source again, resumed
		 * exactly when vmig had stopped it.
		 */
		if (res->resumes != res->stops || !rig_guest_running(r)) {
			what_add(res, "failed (%s) and the guest was not "
				 "resumed", vmig_strerror(ret));
			ok = false;
		}
		if (res->starts) {
			what_add(res, "failed (%s) but the destination "
				 "started", vmig_strerror(ret));
			ok = false;
		}
		if (!strcmp(result, "completed")) {
			what_add(res, "failed (%s) but the report says "
				 "completed", vmig_strerror(ret));
			ok = false;
		}
	}
	cJSON_Delete(rep);
	return ok;
}
