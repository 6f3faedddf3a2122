/*
 * pair.c: the socket pair of a migration inside one process
 * (vmig_migrate_local): two connected unix stream sockets, one end for
 * the source and one for the destination, on the same loop. Not
 * addressable: no address names it. The stream itself is stream.c's.
 */
#include <errno.h>
#include <stdio.h>
#include <sys/socket.h>
#include <unistd.h>

#include "transport.h"

/* Opens fd as c's stream, named "socketpair". */
static int pair_open(struct vmig_conn *c, int fd)
{
	snprintf(c->peer, sizeof(c->peer), "socketpair");
	return uv_pipe_open((uv_pipe_t *)vmig_stream_conn_handle(c), fd);
}

int vmig_conn_pair(uv_loop_t *loop, const struct vmig_conn_ops *ops_a,
		   void *opaque_a, const struct vmig_conn_ops *ops_b,
		   void *opaque_b, struct vmig_conn **a, struct vmig_conn **b,
		   char *err, size_t errlen)
{
	struct vmig_conn *ca, *cb;
	int fds[2], ret;

	if (socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, fds) < 0) {
		ret = -errno;
		snprintf(err, errlen, "socketpair: %s", uv_strerror(ret));
		return ret;
	}
	ca = vmig_stream_conn_new(loop, false, ops_a, opaque_a);
	cb = vmig_stream_conn_new(loop, false, ops_b, opaque_b);
	if (!ca || !cb) {
		if (ca)
			vmig_stream_conn_discard(ca);
		if (cb)
			vmig_stream_conn_discard(cb);
		close(fds[0]);
		close(fds[1]);
		snprintf(err, errlen, "socketpair: out of memory");
		return -ENOMEM;
	}
	ret = pair_open(ca, fds[0]);
	if (ret < 0)
		close(fds[0]);
	else
		ret = pair_open(cb, fds[1]);
	if (ret < 0) {
		/* fds[0] is closed with ca when ca took it. */
		close(fds[1]);
		snprintf(err, errlen, "socketpair: %s", uv_strerror(ret));
		vmig_stream_conn_discard(ca);
		vmig_stream_conn_discard(cb);
		return ret;
	}
	vmig_stream_tune(ca, false);
	vmig_stream_tune(cb, false);
	*a = ca;
	*b = cb;
	return 0;
}
