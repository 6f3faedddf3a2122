/*
 * ksim.c: the kernel simulator's core: the lock, the fd table and the host
 * table's entry points, simulated devices and their groups, device fds,
 * pinned pages, the DMA engine with its ground truth, and failure
 * injection. The interfaces themselves (type1 containers and groups now;
 * iommufd and device features later) are parts listed in ksim_exts[].
 */
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <linux/vfio.h>

#include "ksim_internal.h"

/*
 * The parts, by id. A new part defines its struct ksim_ext and adds it
 * here; a NULL slot is a part not written yet.
 */
static const struct ksim_ext *const ksim_exts[KSIM_EXT_NR] = {
	[KSIM_EXT_TYPE1] = &ksim_ext_type1,
	[KSIM_EXT_IOMMUFD] = &ksim_ext_iommufd,
	[KSIM_EXT_FEATURE] = &ksim_ext_feature,
};

/* vfio-pci's fixed region and interrupt counts (VFIO_DEVICE_GET_INFO). */
#define KSIM_PCI_NUM_REGIONS VFIO_PCI_NUM_REGIONS
#define KSIM_PCI_NUM_IRQS VFIO_PCI_NUM_IRQS

/* What a file without poll reports (the kernel's DEFAULT_POLLMASK). */
#define KSIM_DEFAULT_POLLMASK (POLLIN | POLLOUT | POLLRDNORM | POLLWRNORM)

/* vfio_pin_pages() refuses more pages than this at once (E2BIG). */
#define KSIM_PIN_PAGES_MAX 512u

/* ------------------------------------------------------------------ */
/* Helpers                                                             */

bool ksim_access_ok(const void *uptr, uint64_t len)
{
	uint64_t p = (uintptr_t)uptr;

	return len <= KSIM_TASK_SIZE_MAX && p <= KSIM_TASK_SIZE_MAX - len;
}

static bool user_range_faults(const void *uptr, size_t len)
{
	uint64_t p = (uintptr_t)uptr;

	if (!len)
		return false;
	return !ksim_access_ok(uptr, len) || p < KSIM_USER_MIN;
}

int ksim_copy_from_user(void *dst, const void *usrc, size_t len)
{
	if (user_range_faults(usrc, len))
		return -EFAULT;
	if (len)
		memcpy(dst, usrc, len);
	return 0;
}

int ksim_copy_to_user(void *udst, const void *src, size_t len)
{
	if (user_range_faults(udst, len))
		return -EFAULT;
	if (len)
		memcpy(udst, src, len);
	return 0;
}

int ksim_argsz_in(void *dst, const void *arg, size_t minsz)
{
	uint32_t argsz;
	int ret = ksim_copy_from_user(dst, arg, minsz);

	if (ret)
		return ret;
	memcpy(&argsz, dst, sizeof(argsz));
	return argsz < minsz ? -EINVAL : 0;
}

size_t ksim_lower_bound(const void *base, size_t nr, size_t size,
			uint64_t key, uint64_t (*key_of)(const void *elem))
{
	const char *b = base;
	size_t lo = 0, hi = nr;

	while (lo < hi) {
		size_t mid = lo + (hi - lo) / 2;

		if (key_of(b + mid * size) < key)
			lo = mid + 1;
		else
			hi = mid;
	}
	return lo;
}

void *ksim_array_grow(void *base, size_t *cap, size_t nr, size_t size,
		      size_t first)
{
	size_t n;
	void *p;

	if (nr < *cap)
		return base;
	n = *cap ? 2 * *cap : first;
	p = realloc(base, n * size);
	if (p)
		*cap = n;
	return p;
}

void ksim_array_open(void *base, size_t nr, size_t i, size_t size)
{
	char *b = base;

	memmove(b + (i + 1) * size, b + i * size, (nr - i) * size);
}

uint64_t ksim_rand(uint64_t *state)
{
	uint64_t z = (*state += 0x9e3779b97f4a7c15ull);

	z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
	z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
	return z ^ (z >> 31);
}

static void lock(const struct ksim *k)
{
	/* The lock is the one mutable thing even "const" readers touch. */
	pthread_mutex_lock((pthread_mutex_t *)&k->lock);
}

static void unlock(const struct ksim *k)
{
	pthread_mutex_unlock((pthread_mutex_t *)&k->lock);
}

/* ------------------------------------------------------------------ */
/* The fd table                                                        */

int ksim_obj_install(struct ksim *k, const struct ksim_obj_ops *ops,
		     void *priv, int real_fd, struct ksim_obj **out)
{
	struct ksim_obj *o;
	int fd = real_fd;

	if (fd < 0) {
		fd = open("/dev/null", O_RDWR | O_CLOEXEC);
		if (fd < 0)
			return -errno;
	}
	o = calloc(1, sizeof(*o));
	if (!o)
		goto err;
	if ((size_t)fd >= k->nr_fds) {
		size_t n = k->nr_fds ? k->nr_fds : 64;
		struct ksim_obj **fds;

		while (n <= (size_t)fd)
			n *= 2;
		fds = realloc(k->fds, n * sizeof(*fds));
		if (!fds) {
			free(o);
			goto err;
		}
		memset(fds + k->nr_fds, 0, (n - k->nr_fds) * sizeof(*fds));
		k->fds = fds;
		k->nr_fds = n;
	}
	o->fd = fd;
	o->real_io = real_fd >= 0;
	o->ops = ops;
	o->priv = priv;
	k->fds[fd] = o;
	if (out)
		*out = o;
	return fd;
err:
	close(fd);
	return -ENOMEM;
}

struct ksim_obj *ksim_obj_get(struct ksim *k, int fd)
{
	if (fd < 0 || (size_t)fd >= k->nr_fds)
		return NULL;
	return k->fds[fd];
}

/* Takes o out of the table, closes its fd and lets its type release it. */
static void obj_close(struct ksim *k, struct ksim_obj *o)
{
	k->fds[o->fd] = NULL;
	close(o->fd);
	if (o->ops->release)
		o->ops->release(k, o);
	free(o);
}

/* ------------------------------------------------------------------ */
/* Failure injection                                                   */

/*
 * Counts a kernel call and says whether it is one that must fail:
 * 0, or the negative errno to return instead of doing anything.
 */
static int enter(struct ksim *k, bool is_ioctl, unsigned long request)
{
	size_t i;

	k->calls++;
	if (k->fail_at && k->calls == k->fail_at) {
		k->fail_at = 0;
		return -k->fail_err;
	}
	if (!is_ioctl)
		return 0;
	for (i = 0; i < k->nr_fail_reqs; i++) {
		struct ksim_fail_req *r = &k->fail_reqs[i];
		int err = r->err;

		if (r->request != request)
			continue;
		if (r->times > 0 && --r->times == 0)
			k->fail_reqs[i] = k->fail_reqs[--k->nr_fail_reqs];
		return -err;
	}
	return 0;
}

static int errno_of(int err)
{
	if (err < 0)
		err = -err;
	return err ? err : EIO;
}

void ksim_fail_nth(struct ksim *k, uint64_t nth, int err)
{
	lock(k);
	k->fail_at = nth ? k->calls + nth : 0;
	k->fail_err = errno_of(err);
	unlock(k);
}

void ksim_fail_request(struct ksim *k, unsigned long request, int err,
		       int times)
{
	size_t i;

	lock(k);
	for (i = 0; i < k->nr_fail_reqs; i++)
		if (k->fail_reqs[i].request == request)
			break;
	if (times == 0) {
		if (i < k->nr_fail_reqs)
			k->fail_reqs[i] = k->fail_reqs[--k->nr_fail_reqs];
		goto out;
	}
	if (i == k->nr_fail_reqs) {
		struct ksim_fail_req *r;

		r = ksim_array_grow(k->fail_reqs, &k->cap_fail_reqs,
				    k->nr_fail_reqs, sizeof(*r), 8);
		if (!r)
			goto out; /* nothing armed: the test sees it */
		k->fail_reqs = r;
		k->nr_fail_reqs++;
	}
	k->fail_reqs[i].request = request;
	k->fail_reqs[i].err = errno_of(err);
	k->fail_reqs[i].times = times;
out:
	unlock(k);
}

void ksim_fail_feature(struct ksim *k, uint32_t feature, int err, int times)
{
	lock(k);
	k->fail_feature = feature;
	k->fail_feature_err = errno_of(err);
	k->fail_feature_times = times;
	unlock(k);
}

void ksim_fail_clear(struct ksim *k)
{
	lock(k);
	k->fail_at = 0;
	k->fail_feature_times = 0;
	k->nr_fail_reqs = 0;
	unlock(k);
}

uint64_t ksim_calls(const struct ksim *k)
{
	uint64_t n;

	lock(k);
	n = k->calls;
	unlock(k);
	return n;
}

/* ------------------------------------------------------------------ */
/* The host table                                                      */

static int host_open(void *kctx, const char *path, int flags)
{
	struct ksim *k = kctx;
	int ret, i;

	lock(k);
	ret = enter(k, false, 0);
	if (ret)
		goto out;
	if (!path) {
		ret = -EFAULT;
		goto out;
	}
	ret = -ENOENT;
	for (i = 0; i < KSIM_EXT_NR; i++) {
		const struct ksim_ext *e = ksim_exts[i];
		int r;

		if (!e || !e->open)
			continue;
		r = e->open(k, path, flags);
		if (r != KSIM_PASS) {
			ret = r;
			break;
		}
	}
out:
	unlock(k);
	return ret;
}

/*
 * Linux releases a descriptor even when close() reports an error, and
 * callers never retry it. An injected close failure does the same: the
 * fd is closed and its object released, and the error is returned.
 */
static int host_close(void *kctx, int fd)
{
	struct ksim *k = kctx;
	struct ksim_obj *o;
	int ret;

	lock(k);
	ret = enter(k, false, 0);
	o = ksim_obj_get(k, fd);
	if (!o) {
		ret = ret ? ret : -EBADF;
		goto out;
	}
	obj_close(k, o);
out:
	unlock(k);
	return ret;
}

static int host_ioctl(void *kctx, int fd, unsigned long request, void *arg)
{
	struct ksim *k = kctx;
	struct ksim_obj *o;
	int ret;

	lock(k);
	ret = enter(k, true, request);
	if (!ret && request == VFIO_DEVICE_FEATURE && k->fail_feature_times &&
	    arg) {
		struct vfio_device_feature f;

		memcpy(&f, arg, sizeof(f));
		if ((f.flags & VFIO_DEVICE_FEATURE_MASK) == k->fail_feature) {
			ret = -k->fail_feature_err;
			if (k->fail_feature_times > 0)
				k->fail_feature_times--;
		}
	}
	if (ret)
		goto out;
	o = ksim_obj_get(k, fd);
	if (!o)
		ret = -EBADF;
	else if (!o->ops->ioctl)
		ret = -ENOTTY;
	else /* ioctl(2) takes the request as an unsigned int */
		ret = o->ops->ioctl(k, o, (unsigned int)request, arg);
out:
	unlock(k);
	return ret;
}

/*
 * read and write on a real pipe end run outside the lock: they may block
 * until another thread (possibly inside ksim) fills or drains the pipe.
 */
static int64_t host_read(void *kctx, int fd, void *buf, size_t len)
{
	struct ksim *k = kctx;
	struct ksim_obj *o;
	int64_t ret;
	ssize_t n;

	lock(k);
	ret = enter(k, false, 0);
	if (ret)
		goto out;
	o = ksim_obj_get(k, fd);
	if (!o)
		ret = -EBADF;
	else if (o->ops->read)
		ret = o->ops->read(k, o, buf, len);
	else if (!o->real_io)
		ret = -EINVAL;
	else
		goto real;
out:
	unlock(k);
	return ret;
real:
	unlock(k);
	n = read(fd, buf, len);
	return n < 0 ? -errno : n;
}

static int64_t host_write(void *kctx, int fd, const void *buf, size_t len)
{
	struct ksim *k = kctx;
	struct ksim_obj *o;
	int64_t ret;
	ssize_t n;

	lock(k);
	ret = enter(k, false, 0);
	if (ret)
		goto out;
	o = ksim_obj_get(k, fd);
	if (!o)
		ret = -EBADF;
	else if (o->ops->write)
		ret = o->ops->write(k, o, buf, len);
	else if (!o->real_io)
		ret = -EINVAL;
	else
		goto real;
out:
	unlock(k);
	return ret;
real:
	unlock(k);
	n = write(fd, buf, len);
	return n < 0 ? -errno : n;
}

/*
 * poll as Linux does it: a descriptor ksim did not create gets POLLNVAL
 * (poll never fails with EBADF), a negative one is ignored. Simulated
 * files answer at once; real pipe ends are polled for real, outside the
 * lock, with the caller's timeout only when nothing simulated is ready.
 * Simulated files never change state while ksim sleeps, so a poll with
 * nothing real to wait for returns at once instead of blocking forever.
 */
static int host_poll(void *kctx, struct pollfd *fds, unsigned int nfds,
		     int timeout_ms)
{
	struct ksim *k = kctx;
	struct pollfd *real = NULL;
	unsigned int *where = NULL;
	unsigned int i, nreal = 0;
	int ret, ready = 0;

	lock(k);
	ret = enter(k, false, 0);
	if (ret)
		goto out;
	if (nfds && !fds) {
		ret = -EFAULT;
		goto out;
	}
	if (nfds) {
		real = calloc(nfds, sizeof(*real));
		where = calloc(nfds, sizeof(*where));
		if (!real || !where) {
			ret = -ENOMEM;
			goto out;
		}
	}
	for (i = 0; i < nfds; i++) {
		struct ksim_obj *o;
		short ev;

		fds[i].revents = 0;
		if (fds[i].fd < 0)
			continue;
		o = ksim_obj_get(k, fds[i].fd);
		if (!o) {
			fds[i].revents = POLLNVAL;
		} else if (o->ops->poll || !o->real_io) {
			ev = o->ops->poll ? o->ops->poll(k, o) :
					    KSIM_DEFAULT_POLLMASK;
			fds[i].revents = ev & (fds[i].events | POLLERR |
					       POLLHUP);
		} else {
			real[nreal].fd = fds[i].fd;
			real[nreal].events = fds[i].events;
			where[nreal++] = i;
		}
		if (fds[i].revents)
			ready++;
	}
	unlock(k);
	if (nreal) {
		int n = poll(real, nreal, ready ? 0 : timeout_ms);

		if (n < 0) {
			ret = -errno;
			goto done;
		}
		for (i = 0; i < nreal; i++) {
			fds[where[i]].revents = real[i].revents;
			if (real[i].revents)
				ready++;
		}
	}
	ret = ready;
	goto done;
out:
	unlock(k);
done:
	free(real);
	free(where);
	return ret;
}

static int host_mmap(void *kctx, void *addr, size_t len, int prot, int flags,
		     int fd, int64_t offset, void **out)
{
	struct ksim *k = kctx;
	struct ksim_obj *o;
	int ret;

	lock(k);
	ret = enter(k, false, 0);
	if (ret)
		goto out;
	o = ksim_obj_get(k, fd);
	if (!o)
		ret = -EBADF;
	else if (!out)
		ret = -EFAULT;
	else if (!o->ops->mmap)
		ret = -ENODEV; /* do_mmap() for a file without mmap */
	else
		ret = o->ops->mmap(k, o, addr, len, prot, flags, offset, out);
out:
	unlock(k);
	return ret;
}

/* ksim unmaps only what one of its parts mapped; anything else: EINVAL. */
static int host_munmap(void *kctx, void *addr, size_t len)
{
	struct ksim *k = kctx;
	int ret, i;

	lock(k);
	ret = enter(k, false, 0);
	if (ret)
		goto out;
	ret = -EINVAL;
	for (i = 0; i < KSIM_EXT_NR; i++) {
		const struct ksim_ext *e = ksim_exts[i];
		int r;

		if (!e || !e->munmap)
			continue;
		r = e->munmap(k, addr, len);
		if (r != KSIM_PASS) {
			ret = r;
			break;
		}
	}
out:
	unlock(k);
	return ret;
}

const struct vmig_host *ksim_host(struct ksim *k)
{
	return &k->host;
}

/* ------------------------------------------------------------------ */
/* Groups and devices                                                  */

struct ksim_group *ksim_group_find(struct ksim *k, int id)
{
	struct ksim_group *g;

	for (g = k->groups; g; g = g->next)
		if (g->id == id)
			return g;
	return NULL;
}

static void group_free(struct ksim *k, struct ksim_group *g)
{
	int i;

	for (i = 0; i < KSIM_EXT_NR; i++)
		free(g->ext[i]);
	(void)k;
	free(g);
}

void ksim_group_try_free(struct ksim *k, struct ksim_group *g)
{
	struct ksim_group **pp;

	if (!g->gone || g->file_refs || g->devfile_refs)
		return;
	for (pp = &k->gone_groups; *pp; pp = &(*pp)->next) {
		if (*pp == g) {
			*pp = g->next;
			group_free(k, g);
			return;
		}
	}
}

static struct ksim_device *device_find_locked(struct ksim *k,
					      const char *name)
{
	struct ksim_device *d;

	for (d = k->devices; d; d = d->next)
		if (!strcmp(d->name, name))
			return d;
	return NULL;
}

struct ksim_device *ksim_device_find(struct ksim *k, const char *name)
{
	struct ksim_device *d;

	if (!name)
		return NULL;
	lock(k);
	d = device_find_locked(k, name);
	unlock(k);
	return d;
}

const char *ksim_device_name(const struct ksim_device *d)
{
	return d->name;
}

void ksim_device_set_as(struct ksim_device *d, const struct ksim_as_ops *ops,
			void *as)
{
	d->as_ops = ops;
	d->as = ops ? as : NULL;
}

static void device_free(struct ksim *k, struct ksim_device *d);

/*
 * A device added without a VFIO group (group < 0, e.g. one reached only
 * through its iommufd cdev) still sits in an IOMMU group of its own. It
 * gets a private group with a negative id, which no /dev/vfio/N names.
 */
static int anon_group_id(const struct ksim *k)
{
	const struct ksim_group *g;
	int min = 0;

	for (g = k->groups; g; g = g->next)
		if (g->id < min)
			min = g->id;
	for (g = k->gone_groups; g; g = g->next)
		if (g->id < min)
			min = g->id;
	return min - 1;
}

int ksim_device_add(struct ksim *k, const struct ksim_device_params *p,
		    struct ksim_device **out)
{
	struct ksim_device *d, **tail;
	struct ksim_group *g;
	bool new_group = false;
	int ret = 0, i;

	if (!p || !p->name || !*p->name ||
	    (p->kind != KSIM_DEV_PCI && p->kind != KSIM_DEV_MDEV))
		return -EINVAL;
	lock(k);
	if (device_find_locked(k, p->name)) {
		ret = -EEXIST;
		goto out;
	}
	g = p->group < 0 ? NULL : ksim_group_find(k, p->group);
	if (g && g->kind != p->kind) {
		ret = -EEXIST;
		goto out;
	}
	d = calloc(1, sizeof(*d));
	if (!d || !(d->name = strdup(p->name)))
		goto nomem;
	if (!g) {
		g = calloc(1, sizeof(*g));
		if (!g)
			goto nomem;
		g->id = p->group < 0 ? anon_group_id(k) : p->group;
		g->kind = p->kind;
		g->next = k->groups;
		k->groups = g;
		new_group = true;
	}
	d->k = k;
	d->kind = p->kind;
	d->group_id = p->group;
	d->pins_pages = p->pins_pages;
	d->dma = p->dma;
	d->feature = p->feature;
	d->iommufd = p->iommufd;
	if (!d->dma.write_size)
		d->dma.write_size = KSIM_PAGE_SIZE;
	d->rng = p->dma.seed;
	d->fill_rng = p->dma.seed ^ 0x5851f42d4c957f2dull;
	d->group = g;
	g->nr_devices++;
	if (p->edu)
		ret = p->kind == KSIM_DEV_PCI ? ksim_edu_init(d) : -EINVAL;
	for (i = 0; ret == 0 && i < KSIM_EXT_NR; i++) {
		if (!ksim_exts[i] || !ksim_exts[i]->device_added)
			continue;
		ret = ksim_exts[i]->device_added(k, d);
		if (ret)
			break;
	}
	if (ret) {
		g->nr_devices--;
		if (new_group) {
			k->groups = g->next;
			free(g);
		}
		device_free(k, d);
		goto out;
	}
	for (tail = &k->devices; *tail; tail = &(*tail)->next)
		;
	*tail = d;
	if (out)
		*out = d;
	goto out;
nomem:
	if (d)
		free(d->name);
	free(d);
	ret = -ENOMEM;
out:
	unlock(k);
	return ret;
}

int ksim_device_remove(struct ksim *k, struct ksim_device *d)
{
	struct ksim_device **pp;
	struct ksim_group *g;
	int i;

	lock(k);
	for (pp = &k->devices; *pp && *pp != d; pp = &(*pp)->next)
		;
	if (!d || !*pp) {
		unlock(k);
		return -ENOENT;
	}
	*pp = d->next;
	d->next = k->removed;
	k->removed = d;

	d->removed = true;
	ksim_pins_clear(d);
	g = d->group;
	if (--g->nr_devices == 0)
		g->gone = true;
	for (i = 0; i < KSIM_EXT_NR; i++)
		if (ksim_exts[i] && ksim_exts[i]->device_removed)
			ksim_exts[i]->device_removed(k, d);
	ksim_device_set_as(d, NULL, NULL);
	d->group = NULL;
	if (g->gone) {
		struct ksim_group **gp;

		for (gp = &k->groups; *gp != g; gp = &(*gp)->next)
			;
		*gp = g->next;
		g->next = k->gone_groups;
		k->gone_groups = g;
		ksim_group_try_free(k, g);
	}
	unlock(k);
	return 0;
}

/* ------------------------------------------------------------------ */
/* Device fds                                                          */

/* vfio_device_info as 6.12 knows it (the 6.1 header lacks the pad). */
struct ksim_device_info {
	uint32_t argsz;
	uint32_t flags;
	uint32_t num_regions;
	uint32_t num_irqs;
	uint32_t cap_offset;
	uint32_t pad;
};

/*
 * VFIO_DEVICE_GET_INFO as vfio-pci (vfio_pci_ioctl_get_info) and the mtty
 * sample mdev answer it: an mdev says PCI without RESET and copies back
 * only up to num_irqs.
 */
static int device_get_info(struct ksim_device *d, void *arg)
{
	const size_t minsz = offsetof(struct ksim_device_info, cap_offset);
	struct ksim_device_info info = { 0 };
	size_t copy = minsz;
	int ret;

	ret = ksim_argsz_in(&info, arg, minsz);
	if (ret)
		return ret;
	info.flags = VFIO_DEVICE_FLAGS_PCI;
	info.num_regions = KSIM_PCI_NUM_REGIONS;
	info.num_irqs = KSIM_PCI_NUM_IRQS;
	if (d->kind == KSIM_DEV_PCI) {
		info.flags |= VFIO_DEVICE_FLAGS_RESET;
		copy = info.argsz < sizeof(info) ? info.argsz : sizeof(info);
	}
	return ksim_copy_to_user(arg, &info, copy);
}

static int devfile_ioctl(struct ksim *k, struct ksim_obj *o, unsigned int cmd,
			 void *arg)
{
	struct ksim_devfile *df = o->priv;
	int i;

	if (df->dev->removed)
		return -ENODEV;
	/* The parts first: VFIO_DEVICE_FEATURE belongs to the feature part. */
	for (i = 0; i < KSIM_EXT_NR; i++) {
		const struct ksim_ext *e = ksim_exts[i];
		int r;

		if (!e || !e->device_ioctl)
			continue;
		r = e->device_ioctl(k, df, cmd, arg);
		if (r != KSIM_PASS)
			return r;
	}
	switch (cmd) {
	case VFIO_DEVICE_GET_INFO:
		return device_get_info(df->dev, arg);
	case VFIO_DEVICE_GET_REGION_INFO:
		/* Regions are modelled for the edu device only. */
		return df->dev->edu ? ksim_edu_region_info(df->dev, arg)
				    : -ENOTTY;
	case VFIO_DEVICE_RESET:
		return 0;
	default:
		return -ENOTTY;
	}
}

/*
 * Region reads and writes (and mmap) are not modelled yet: a device fd
 * answers as a vfio-pci device for an offset outside its regions.
 */
static int64_t devfile_read(struct ksim *k, struct ksim_obj *o, void *buf,
			    size_t len)
{
	struct ksim_devfile *df = o->priv;

	(void)k;
	(void)buf;
	(void)len;
	return df->dev->removed ? -ENODEV : -EINVAL;
}

static int64_t devfile_write(struct ksim *k, struct ksim_obj *o,
			     const void *buf, size_t len)
{
	struct ksim_devfile *df = o->priv;

	(void)k;
	(void)buf;
	(void)len;
	return df->dev->removed ? -ENODEV : -EINVAL;
}

static int64_t device_region_rw(struct ksim *k, int fd, void *buf,
				size_t len, uint64_t offset, bool write)
{
	struct ksim_obj *o;
	struct ksim_devfile *df;
	int64_t ret;

	lock(k);
	o = ksim_obj_get(k, fd);
	if (!o || o->ops->type != KSIM_OBJ_DEVICE) {
		ret = o ? -EINVAL : -EBADF;
	} else {
		df = o->priv;
		if (df->dev->removed)
			ret = -ENODEV;
		else if (!df->dev->edu)
			ret = -EINVAL;
		else
			ret = ksim_edu_rw(k, df->dev, buf, len, offset, write);
	}
	unlock(k);
	return ret;
}

int64_t ksim_device_pread(struct ksim *k, int fd, void *buf, size_t len,
			  uint64_t offset)
{
	return device_region_rw(k, fd, buf, len, offset, false);
}

int64_t ksim_device_pwrite(struct ksim *k, int fd, const void *buf,
			   size_t len, uint64_t offset)
{
	return device_region_rw(k, fd, (void *)buf, len, offset, true);
}

static int devfile_mmap(struct ksim *k, struct ksim_obj *o, void *addr,
			size_t len, int prot, int flags, int64_t offset,
			void **out)
{
	struct ksim_devfile *df = o->priv;

	(void)k;
	(void)addr;
	(void)len;
	(void)prot;
	(void)flags;
	(void)offset;
	(void)out;
	return df->dev->removed ? -ENODEV : -EINVAL;
}

static void devfile_release(struct ksim *k, struct ksim_obj *o)
{
	struct ksim_devfile *df = o->priv;
	int i;

	for (i = 0; i < KSIM_EXT_NR; i++)
		if (ksim_exts[i] && ksim_exts[i]->device_closed)
			ksim_exts[i]->device_closed(k, df);
	if (df->release)
		df->release(k, df);
	if (df->group) {
		df->group->devfile_refs--;
		ksim_group_try_free(k, df->group);
	}
	for (i = 0; i < KSIM_EXT_NR; i++)
		free(df->ext[i]);
	free(df);
}

static const struct ksim_obj_ops devfile_ops = {
	.type = KSIM_OBJ_DEVICE,
	.ioctl = devfile_ioctl,
	.read = devfile_read,
	.write = devfile_write,
	.mmap = devfile_mmap,
	.release = devfile_release,
};

int ksim_devfile_open(struct ksim *k, struct ksim_device *d,
		      struct ksim_group *g,
		      void (*release)(struct ksim *k, struct ksim_devfile *df),
		      struct ksim_devfile **out)
{
	struct ksim_devfile *df;
	int fd;

	df = calloc(1, sizeof(*df));
	if (!df)
		return -ENOMEM;
	df->dev = d;
	df->group = g;
	fd = ksim_obj_install(k, &devfile_ops, df, -1, NULL);
	if (fd < 0) {
		free(df);
		return fd;
	}
	/* Set only now, so that a failed install never calls them. */
	df->release = release;
	if (g)
		g->devfile_refs++;
	if (out)
		*out = df;
	return fd;
}

/* ------------------------------------------------------------------ */
/* Pinned pages                                                        */

/* The index of the first pin at or after iova. */
static uint64_t pin_iova(const void *pin)
{
	return ((const struct ksim_pin *)pin)->iova;
}

static size_t pin_lower_bound(const struct ksim_device *d, uint64_t iova)
{
	return ksim_lower_bound(d->pins, d->nr_pins, sizeof(*d->pins), iova,
				pin_iova);
}

static int pin_page(struct ksim_device *d, uint64_t iova)
{
	size_t i = pin_lower_bound(d, iova);
	struct ksim_pin *p;

	if (i < d->nr_pins && d->pins[i].iova == iova) {
		d->pins[i].count++;
		return 0;
	}
	p = ksim_array_grow(d->pins, &d->cap_pins, d->nr_pins, sizeof(*p), 16);
	if (!p)
		return -ENOMEM;
	d->pins = p;
	ksim_array_open(p, d->nr_pins, i, sizeof(*p));
	d->pins[i].iova = iova;
	d->pins[i].count = 1;
	d->nr_pins++;
	return 0;
}

static bool page_pinned(const struct ksim_device *d, uint64_t iova)
{
	size_t i = pin_lower_bound(d, iova);

	return i < d->nr_pins && d->pins[i].iova == iova;
}

static void unpin_page(struct ksim_device *d, uint64_t iova)
{
	size_t i = pin_lower_bound(d, iova);

	if (i == d->nr_pins || d->pins[i].iova != iova)
		return;
	if (--d->pins[i].count)
		return;
	memmove(d->pins + i, d->pins + i + 1,
		(d->nr_pins - i - 1) * sizeof(*d->pins));
	d->nr_pins--;
}

void ksim_pins_clear(struct ksim_device *d)
{
	free(d->pins);
	d->pins = NULL;
	d->nr_pins = 0;
	d->cap_pins = 0;
}

void ksim_pins_for_each(struct ksim *k, const void *as, uint64_t iova,
			uint64_t len, void (*fn)(void *opaque, uint64_t iova),
			void *opaque)
{
	struct ksim_device *d;

	for (d = k->devices; d; d = d->next) {
		size_t i;

		if (d->as != as || !d->as_ops)
			continue;
		for (i = pin_lower_bound(d, iova);
		     i < d->nr_pins && d->pins[i].iova - iova < len; i++)
			fn(opaque, d->pins[i].iova);
	}
}

void ksim_pins_drop_range(struct ksim *k, const void *as, uint64_t iova,
			  uint64_t len)
{
	struct ksim_device *d;

	for (d = k->devices; d; d = d->next) {
		size_t i, j;

		if (d->as != as || !d->as_ops)
			continue;
		i = pin_lower_bound(d, iova);
		for (j = i; j < d->nr_pins && d->pins[j].iova - iova < len;)
			j++;
		if (j == i)
			continue;
		memmove(d->pins + i, d->pins + j,
			(d->nr_pins - j) * sizeof(*d->pins));
		d->nr_pins -= j - i;
	}
}

/*
 * vfio_pin_pages() as a vendor driver calls it: the device must be open
 * (the kernel WARNs and says EINVAL otherwise) and at most 512 pages go
 * at once (E2BIG). ksim asks for 4 KiB-aligned iovas, which the kernel
 * tolerates but no driver uses otherwise.
 */
int ksim_pin(struct ksim_device *d, uint64_t iova, uint64_t npages)
{
	struct ksim *k = d->k;
	uint64_t i;
	int ret;

	lock(k);
	if (d->removed) {
		ret = -ENODEV;
		goto out;
	}
	if (d->kind == KSIM_DEV_PCI && !d->pins_pages) {
		/* No dma_unmap callback: vfio_pin_pages() refuses it. */
		ret = -EINVAL;
		goto out;
	}
	if (!d->as_ops) {
		ret = -ENODEV;
		goto out;
	}
	if (!npages || !d->open_count || iova % KSIM_PAGE_SIZE ||
	    npages > (UINT64_MAX - iova) / KSIM_PAGE_SIZE) {
		ret = -EINVAL;
		goto out;
	}
	if (npages > KSIM_PIN_PAGES_MAX) {
		ret = -E2BIG;
		goto out;
	}
	ret = d->as_ops->pin ? d->as_ops->pin(k, d->as, d, iova, npages) :
			       -EINVAL;
	if (ret)
		goto out;
	for (i = 0; i < npages; i++) {
		ret = pin_page(d, iova + i * KSIM_PAGE_SIZE);
		if (ret) {
			while (i--)
				unpin_page(d, iova + i * KSIM_PAGE_SIZE);
			break;
		}
	}
out:
	unlock(k);
	return ret;
}

int ksim_unpin(struct ksim_device *d, uint64_t iova, uint64_t npages)
{
	struct ksim *k = d->k;
	uint64_t i;
	int ret = 0;

	lock(k);
	if (!npages || iova % KSIM_PAGE_SIZE ||
	    npages > (UINT64_MAX - iova) / KSIM_PAGE_SIZE) {
		ret = -EINVAL;
		goto out;
	}
	for (i = 0; i < npages; i++) {
		if (!page_pinned(d, iova + i * KSIM_PAGE_SIZE)) {
			ret = -EINVAL;
			goto out;
		}
	}
	for (i = 0; i < npages; i++)
		unpin_page(d, iova + i * KSIM_PAGE_SIZE);
out:
	unlock(k);
	return ret;
}

/* ------------------------------------------------------------------ */
/* The DMA engine and the ground truth                                 */

static int truth_add(struct ksim *k, const struct ksim_device *d,
		     uint64_t iova, uint64_t len, void *hva)
{
	struct ksim_write *w;

	w = ksim_array_grow(k->truth, &k->cap_truth, k->nr_truth, sizeof(*w),
			    256);
	if (!w)
		return -ENOMEM;
	k->truth = w;
	w = &k->truth[k->nr_truth++];
	w->dev = d;
	w->seq = ++k->seq;
	w->iova = iova;
	w->len = len;
	w->hva = hva;
	return 0;
}

static void fill_random(uint64_t *state, uint8_t *p, uint64_t len)
{
	while (len) {
		uint64_t r = ksim_rand(state);
		size_t n = len < sizeof(r) ? (size_t)len : sizeof(r);

		memcpy(p, &r, n);
		p += n;
		len -= n;
	}
}

/*
 * One DMA write through the address space (ops, as): translated piece by
 * piece (a write may span adjacent mappings), all pieces first so that a
 * fault writes nothing. Each piece is one ground-truth record. The parts'
 * dma_written hooks (a device's own DMA log) hear only of writes through
 * the device's own address space, not through a PASID's.
 */
int ksim_dma_write_as(struct ksim *k, struct ksim_device *d,
		      const struct ksim_as_ops *ops, void *as, uint64_t iova,
		      const void *buf, uint64_t len)
{
	bool own = ops == d->as_ops && as == d->as;
	uint64_t off, plen, seq = k->seq;
	size_t mark = k->nr_truth;
	void *hva;
	int ret, i;

	if (d->removed || !ops)
		return -ENODEV;
	if (!len)
		return -EINVAL;
	if (iova + len - 1 < iova) {
		k->faults++;
		return -EFAULT;
	}
	for (off = 0; off < len; off += plen) {
		ret = ops->translate(k, as, d, iova + off, len - off, &hva,
				     &plen);
		if (ret) {
			if (ret == -EFAULT)
				k->faults++;
			return ret;
		}
	}
	/* Reserve the records first: a write is never half recorded. */
	for (off = 0; off < len; off += plen) {
		ops->translate(k, as, d, iova + off, len - off, &hva, &plen);
		ret = truth_add(k, d, iova + off, plen, hva);
		if (ret) {
			k->nr_truth = mark;
			k->seq = seq;
			return ret;
		}
	}
	for (off = 0; off < len; off += plen) {
		ops->translate(k, as, d, iova + off, len - off, &hva, &plen);
		if (buf)
			memcpy(hva, (const uint8_t *)buf + off, plen);
		else
			fill_random(&d->fill_rng, hva, plen);
		if (ops->written)
			ops->written(k, as, d, iova + off, plen);
		for (i = 0; own && i < KSIM_EXT_NR; i++)
			if (ksim_exts[i] && ksim_exts[i]->dma_written)
				ksim_exts[i]->dma_written(k, d, iova + off,
							  plen);
	}
	return 0;
}

int ksim_dma_write(struct ksim_device *d, uint64_t iova, const void *buf,
		   size_t len)
{
	struct ksim *k = d->k;
	int ret;

	lock(k);
	ret = ksim_dma_write_as(k, d, d->as_ops, d->as, iova, buf, len);
	unlock(k);
	return ret;
}

/* The runs of writable IOVA a device can reach, adjacent ones merged. */
struct step_runs {
	struct ksim_range_run {
		uint64_t start;
		uint64_t len;
	} *run;
	size_t nr;
	size_t cap;
	bool nomem;
};

static void step_collect(void *opaque, uint64_t iova, uint64_t len)
{
	struct step_runs *r = opaque;
	struct ksim_range_run *p;

	if (r->nr && r->run[r->nr - 1].start + r->run[r->nr - 1].len == iova) {
		r->run[r->nr - 1].len += len;
		return;
	}
	p = ksim_array_grow(r->run, &r->cap, r->nr, sizeof(*p), 16);
	if (!p) {
		r->nomem = true;
		return;
	}
	r->run = p;
	r->run[r->nr].start = iova;
	r->run[r->nr].len = len;
	r->nr++;
}

/* Where writes of `size` bytes may start in a run: every 4 KiB page. */
static uint64_t run_slots(const struct ksim_range_run *run, uint64_t size)
{
	if (run->len < size)
		return 0;
	return (run->len - size) / KSIM_PAGE_SIZE + 1;
}

/* The iova of slot n, counting the slots of all runs in order. */
static uint64_t slot_iova(const struct step_runs *r, uint64_t size,
			  uint64_t n)
{
	size_t i;

	for (i = 0; i < r->nr; i++) {
		uint64_t s = run_slots(&r->run[i], size);

		if (n < s)
			return r->run[i].start + n * KSIM_PAGE_SIZE;
		n -= s;
	}
	return 0; /* not reached: n < the total */
}

static uint64_t step_pick(struct ksim_device *d, uint64_t nslots)
{
	uint64_t hot, pages;

	switch (d->dma.pattern) {
	case KSIM_DMA_SEQUENTIAL:
		pages = (d->dma.write_size + KSIM_PAGE_SIZE - 1) /
			KSIM_PAGE_SIZE;
		d->cursor += pages;
		return (d->cursor - pages) % nslots;
	case KSIM_DMA_HOTSPOT:
		hot = nslots / 10 ? nslots / 10 : 1;
		if (ksim_rand(&d->rng) % 10 < 9 || hot == nslots)
			return ksim_rand(&d->rng) % hot;
		return hot + ksim_rand(&d->rng) % (nslots - hot);
	case KSIM_DMA_RANDOM:
	default:
		return ksim_rand(&d->rng) % nslots;
	}
}

static int64_t device_step(struct ksim *k, struct ksim_device *d)
{
	struct step_runs r = { 0 };
	uint64_t nslots = 0, i;
	int64_t made = 0;
	size_t j;

	if (d->dma.pattern == KSIM_DMA_NONE || !d->dma.writes_per_step ||
	    !d->as_ops || !d->as_ops->for_each_writable)
		return 0;
	/* A device held stopped by a part (migration) issues no DMA. */
	for (j = 0; j < KSIM_EXT_NR; j++) {
		if (ksim_exts[j] && ksim_exts[j]->dma_allowed &&
		    !ksim_exts[j]->dma_allowed(k, d))
			return 0;
	}
	d->as_ops->for_each_writable(k, d->as, d, step_collect, &r);
	if (r.nomem) {
		free(r.run);
		return -ENOMEM;
	}
	for (j = 0; j < r.nr; j++)
		nslots += run_slots(&r.run[j], d->dma.write_size);
	for (i = 0; nslots && i < d->dma.writes_per_step; i++) {
		uint64_t iova = slot_iova(&r, d->dma.write_size,
					  step_pick(d, nslots));

		if (!ksim_dma_write_as(k, d, d->as_ops, d->as, iova, NULL,
				       d->dma.write_size))
			made++;
	}
	free(r.run);
	return made;
}

int64_t ksim_step(struct ksim *k)
{
	struct ksim_device *d;
	int64_t total = 0;

	lock(k);
	for (d = k->devices; d; d = d->next) {
		int64_t n = device_step(k, d);

		if (n < 0) {
			total = n;
			break;
		}
		total += n;
	}
	unlock(k);
	return total;
}

uint64_t ksim_truth_drain(struct ksim *k,
			  void (*fn)(void *opaque, const struct ksim_write *w),
			  void *opaque)
{
	struct ksim_write *w;
	size_t n, i;

	/* fn runs unlocked, so that it may call back into ksim. */
	lock(k);
	w = k->truth;
	n = k->nr_truth;
	k->truth = NULL;
	k->nr_truth = 0;
	k->cap_truth = 0;
	unlock(k);
	for (i = 0; fn && i < n; i++)
		fn(opaque, &w[i]);
	free(w);
	return n;
}

uint64_t ksim_faults(const struct ksim *k)
{
	uint64_t n;

	lock(k);
	n = k->faults;
	unlock(k);
	return n;
}

/* ------------------------------------------------------------------ */
/* Life cycle                                                          */

int ksim_new(const struct ksim_params *p, struct ksim **out)
{
	struct ksim *k;
	int i, ret;

	if (p && p->type1_pgsize & (p->type1_pgsize - 1))
		return -EINVAL; /* not a power of two */
	k = calloc(1, sizeof(*k));
	if (!k)
		return -ENOMEM;
	if (p)
		k->params = *p;
	k->type1_pgsize = k->params.type1_pgsize ? k->params.type1_pgsize :
						   KSIM_PAGE_SIZE;
	if (pthread_mutex_init(&k->lock, NULL)) {
		free(k);
		return -ENOMEM;
	}
	k->host.size = sizeof(k->host);
	k->host.abi_minor = VMIG_PLUGIN_ABI_MINOR;
	k->host.kctx = k;
	k->host.open = host_open;
	k->host.close = host_close;
	k->host.ioctl = host_ioctl;
	k->host.read = host_read;
	k->host.write = host_write;
	k->host.poll = host_poll;
	k->host.mmap = host_mmap;
	k->host.munmap = host_munmap;
	for (i = 0; i < KSIM_EXT_NR; i++) {
		if (!ksim_exts[i] || !ksim_exts[i]->init)
			continue;
		ret = ksim_exts[i]->init(k);
		if (ret) {
			while (i--)
				if (ksim_exts[i] && ksim_exts[i]->fini)
					ksim_exts[i]->fini(k);
			pthread_mutex_destroy(&k->lock);
			free(k);
			return ret;
		}
	}
	*out = k;
	return 0;
}

static void device_free(struct ksim *k, struct ksim_device *d)
{
	int i;

	for (i = 0; i < KSIM_EXT_NR; i++) {
		if (ksim_exts[i] && ksim_exts[i]->device_free)
			ksim_exts[i]->device_free(k, d);
		free(d->ext[i]);
	}
	ksim_pins_clear(d);
	ksim_edu_free(d);
	free(d->name);
	free(d);
}

void ksim_free(struct ksim *k)
{
	struct ksim_device *d;
	struct ksim_group *g;
	size_t fd;
	int i;

	if (!k)
		return;
	lock(k);
	/* Device fds first: they hold their groups' files. */
	for (fd = 0; fd < k->nr_fds; fd++)
		if (k->fds[fd] && k->fds[fd]->ops->type == KSIM_OBJ_DEVICE)
			obj_close(k, k->fds[fd]);
	for (fd = 0; fd < k->nr_fds; fd++)
		if (k->fds[fd])
			obj_close(k, k->fds[fd]);
	for (i = KSIM_EXT_NR - 1; i >= 0; i--)
		if (ksim_exts[i] && ksim_exts[i]->fini)
			ksim_exts[i]->fini(k);
	while ((d = k->devices)) {
		k->devices = d->next;
		device_free(k, d);
	}
	while ((d = k->removed)) {
		k->removed = d->next;
		device_free(k, d);
	}
	while ((g = k->groups)) {
		k->groups = g->next;
		group_free(k, g);
	}
	while ((g = k->gone_groups)) {
		k->gone_groups = g->next;
		group_free(k, g);
	}
	free(k->fds);
	free(k->truth);
	free(k->fail_reqs);
	unlock(k);
	pthread_mutex_destroy(&k->lock);
	free(k);
}
