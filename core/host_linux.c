/*
 * host_linux.c: the real kernel, as the kernel half of a host table.
 *
 * Sessions use this table unless the embedder passes another kernel (a
 * simulator, or a wrapper that injects failures). Each operation is the
 * system call of the same name with failures turned into negative errno
 * values, and with EINTR retried where the call has no side effect yet.
 */
#include <errno.h>
#include <fcntl.h>
#include <sys/ioctl.h>
#include <sys/mman.h>
#include <unistd.h>

#include "internal.h"

static int linux_open(void *kctx, const char *path, int flags)
{
	int fd;

	(void)kctx;
	do {
		fd = open(path, flags | O_CLOEXEC);
	} while (fd < 0 && errno == EINTR);
	return fd < 0 ? -errno : fd;
}

static int linux_close(void *kctx, int fd)
{
	(void)kctx;
	/* Linux releases the fd even when close reports EINTR: no retry. */
	return close(fd) < 0 && errno != EINTR ? -errno : 0;
}

static int linux_ioctl(void *kctx, int fd, unsigned long request, void *arg)
{
	int ret;

	(void)kctx;
	ret = ioctl(fd, request, arg);
	return ret < 0 ? -errno : ret;
}

static int64_t linux_read(void *kctx, int fd, void *buf, size_t len)
{
	ssize_t n;

	(void)kctx;
	do {
		n = read(fd, buf, len);
	} while (n < 0 && errno == EINTR);
	return n < 0 ? -errno : n;
}

static int64_t linux_write(void *kctx, int fd, const void *buf, size_t len)
{
	ssize_t n;

	(void)kctx;
	do {
		n = write(fd, buf, len);
	} while (n < 0 && errno == EINTR);
	return n < 0 ? -errno : n;
}

static int linux_poll(void *kctx, struct pollfd *fds, unsigned int nfds,
		      int timeout_ms)
{
	int n;

	(void)kctx;
	n = poll(fds, nfds, timeout_ms);
	return n < 0 ? -errno : n;
}

static int linux_mmap(void *kctx, void *addr, size_t len, int prot, int flags,
		      int fd, int64_t offset, void **out)
{
	void *p;

	(void)kctx;
	p = mmap(addr, len, prot, flags, fd, (off_t)offset);
	if (p == MAP_FAILED)
		return -errno;
	*out = p;
	return 0;
}

static int linux_munmap(void *kctx, void *addr, size_t len)
{
	(void)kctx;
	return munmap(addr, len) < 0 ? -errno : 0;
}

const struct vmig_host vmig_linux_host = {
	.size = sizeof(struct vmig_host),
	.abi_minor = VMIG_PLUGIN_ABI_MINOR,
	.open = linux_open,
	.close = linux_close,
	.ioctl = linux_ioctl,
	.read = linux_read,
	.write = linux_write,
	.poll = linux_poll,
	.mmap = linux_mmap,
	.munmap = linux_munmap,
};

VMIG_API const struct vmig_host *vmig_linux_kernel(void)
{
	return &vmig_linux_host;
}
