/*
 * unix.c: the unix stream socket transport ("unix:/path").
 *
 * This file owns the unix addresses (a path that fits sun_path),
 * connecting to one, and listening on one: a socket file left by a
 * process that died is removed first, anything else at the path is
 * refused, and the file is removed when the listener closes. The stream
 * itself is stream.c's.
 */
#include <errno.h>
#include <stdio.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <unistd.h>

#include "transport.h"

static int unix_parse(const char *rest, bool listen, struct vmig_address *a,
		      char *err, size_t errlen)
{
	(void)listen;
	if (!*rest) {
		snprintf(err, errlen,
			 "%s: expected " VMIG_ADDRESS_FORMS,
			 a->text);
		return -EINVAL;
	}
	if (strlen(rest) >= sizeof(a->path)) {
		snprintf(err, errlen,
			 "%s: the path is longer than a unix socket allows "
			 "(%zu bytes)",
			 a->text, sizeof(a->path) - 1);
		return -ENAMETOOLONG;
	}
	strcpy(a->path, rest);
	return 0;
}

static int unix_connect(uv_loop_t *loop, const struct vmig_address *a,
			const struct vmig_conn_ops *ops, void *opaque,
			vmig_connected_fn connected, char *err, size_t errlen)
{
	struct vmig_conn *c = vmig_stream_conn_new(loop, false, ops, opaque);
	uv_connect_t *req;

	if (!c) {
		snprintf(err, errlen, "connect %s: out of memory", a->text);
		return -ENOMEM;
	}
	snprintf(c->peer, sizeof(c->peer), "%s", a->text);
	req = vmig_stream_conn_connecting(c, connected, err, errlen);
	uv_pipe_connect(req, (uv_pipe_t *)vmig_stream_conn_handle(c), a->path,
			vmig_stream_connected);
	return 0;
}

/*
 * A unix socket file left by a process that died: nobody accepts on it,
 * so it may go. Anything else at that path is somebody's.
 */
static int unix_clear_stale(const struct vmig_address *a, char *err,
			    size_t errlen)
{
	struct sockaddr_un sun = { .sun_family = AF_UNIX };
	struct stat st;
	int fd, ret;

	if (lstat(a->path, &st) < 0)
		return 0;
	if (!S_ISSOCK(st.st_mode)) {
		snprintf(err, errlen, "listen %s: %s exists and is not a "
			 "socket", a->text, a->path);
		return -EADDRINUSE;
	}
	fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
	if (fd < 0)
		return 0;
	strcpy(sun.sun_path, a->path);
	ret = connect(fd, (struct sockaddr *)&sun, sizeof(sun));
	ret = ret < 0 ? -errno : 0;
	close(fd);
	if (ret == 0) {
		snprintf(err, errlen, "listen %s: another process listens "
			 "there", a->text);
		return -EADDRINUSE;
	}
	if (ret == -ECONNREFUSED)
		unlink(a->path);
	return 0;
}

static int unix_listen(uv_loop_t *loop, const struct vmig_address *a,
		       struct vmig_listener **out, char *err, size_t errlen)
{
	struct vmig_listener *l;
	int ret;

	ret = unix_clear_stale(a, err, errlen);
	if (ret < 0)
		return ret;
	l = vmig_stream_listener_new(loop, false);
	if (!l) {
		snprintf(err, errlen, "listen %s: out of memory", a->text);
		return -ENOMEM;
	}
	ret = uv_pipe_bind((uv_pipe_t *)vmig_stream_listener_handle(l),
			   a->path);
	/* Only a file this listener made is removed when it closes. */
	if (ret == 0)
		vmig_stream_listener_set_path(l, a->path);
	snprintf(l->bound, sizeof(l->bound), "unix:%s", a->path);
	if (ret == 0)
		ret = vmig_stream_listen(l);
	return vmig_stream_listen_done(l, a, ret, out, err, errlen);
}

const struct vmig_transport vmig_transport_unix = {
	.scheme = "unix",
	.parse = unix_parse,
	.connect = unix_connect,
	.listen = unix_listen,
};
