/*
 * transport.c: the sockets a migration stream runs over, on libuv.
 *
 * This file owns addresses ("unix:/path", "tcp:host:port" with IPv4,
 * IPv6 in brackets, or a name resolved with uv_getaddrinfo), listening
 * and accepting one connection, connecting, socket pairs for a migration
 * inside one process, and a connection's plumbing: received bytes go
 * where the owner's read_buf says, exactly (the owner hands out the span
 * of the frame part it expects, so a read never straddles two frames and
 * page payloads land straight in guest memory); writes are uv_write()s of
 * the owner's buffer arrays. Framing and checking are the owners'.
 */
#include <errno.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>

#include "engine.h"

struct vmig_conn {
	union {
		uv_handle_t handle;
		uv_stream_t stream;
		uv_tcp_t tcp;
		uv_pipe_t pipe;
	} h;
	const struct vmig_conn_ops *ops;
	void *opaque;
	bool closing;
	char peer[160];
	/* While connecting. */
	uv_connect_t creq;
	void (*connected)(void *opaque, struct vmig_conn *c, int err);
	char *cerr;
	size_t cerrlen;
};

struct vmig_listener {
	union {
		uv_handle_t handle;
		uv_stream_t stream;
		uv_tcp_t tcp;
		uv_pipe_t pipe;
	} h;
	bool tcp;
	bool closing;
	char path[sizeof(((struct sockaddr_un *)0)->sun_path)];
	char bound[160];
	bool pending;       /* a connection waits to be accepted */
	int pending_status;
	const struct vmig_conn_ops *ops;
	void *conn_opaque;
	void (*accepted)(void *opaque, struct vmig_conn *c, int err);
	void *opaque;
};

/* ------------------------------------------------------------------ */
/* Addresses                                                           */

struct addr {
	bool is_unix;
	char path[sizeof(((struct sockaddr_un *)0)->sun_path)];
	char host[256];
	char port[12];
};

static int addr_parse(const char *address, bool listen, struct addr *a,
		      char *err, size_t errlen)
{
	const char *host, *colon, *p;
	size_t hlen;
	long port = 0;

	memset(a, 0, sizeof(*a));
	if (!address)
		goto bad;
	if (!strncmp(address, "unix:", 5)) {
		if (!address[5])
			goto bad;
		if (strlen(address + 5) >= sizeof(a->path)) {
			snprintf(err, errlen,
				 "%s: the path is longer than a unix socket "
				 "allows (%zu bytes)",
				 address, sizeof(a->path) - 1);
			return -ENAMETOOLONG;
		}
		a->is_unix = true;
		strcpy(a->path, address + 5);
		return 0;
	}
	if (strncmp(address, "tcp:", 4))
		goto bad;
	host = address + 4;
	colon = strrchr(host, ':');
	if (!colon || colon == host)
		goto bad;
	hlen = (size_t)(colon - host);
	if (host[0] == '[') {
		if (hlen < 3 || host[hlen - 1] != ']')
			goto bad;
		host++;
		hlen -= 2;
	}
	if (hlen >= sizeof(a->host) || memchr(host, '[', hlen) ||
	    memchr(host, ']', hlen))
		goto bad;
	memcpy(a->host, host, hlen);
	a->host[hlen] = '\0';
	p = colon + 1;
	if (!*p || strlen(p) > 5)
		goto bad_port;
	for (; *p; p++) {
		if (*p < '0' || *p > '9')
			goto bad_port;
		port = port * 10 + (*p - '0');
	}
	if (port > 65535 || (!listen && port == 0))
		goto bad_port;
	snprintf(a->port, sizeof(a->port), "%u", (unsigned int)port);
	return 0;
bad_port:
	snprintf(err, errlen, "%s: expected a port from %d to 65535", address,
		 listen ? 0 : 1);
	return -EINVAL;
bad:
	snprintf(err, errlen,
		 "%s: expected \"unix:<path>\" or \"tcp:<host>:<port>\"",
		 address ? address : "(null)");
	return -EINVAL;
}

/* Resolves a TCP address synchronously (the loop does not run yet). */
static int addr_resolve(uv_loop_t *loop, const struct addr *a, bool passive,
			struct sockaddr_storage *out, const char *address,
			char *err, size_t errlen)
{
	struct addrinfo hints = {
		.ai_family = AF_UNSPEC,
		.ai_socktype = SOCK_STREAM,
		.ai_flags = passive ? AI_PASSIVE : 0,
	};
	uv_getaddrinfo_t req;
	struct addrinfo *ai;
	int ret;

	ret = uv_getaddrinfo(loop, &req, NULL, a->host, a->port, &hints);
	if (ret < 0) {
		snprintf(err, errlen, "%s: cannot resolve \"%s\": %s",
			 address, a->host, uv_strerror(ret));
		return ret == UV_EAI_NONAME ? -ENOENT : -EHOSTUNREACH;
	}
	for (ai = req.addrinfo; ai; ai = ai->ai_next) {
		if (ai->ai_family == AF_INET || ai->ai_family == AF_INET6)
			break;
	}
	if (!ai) {
		uv_freeaddrinfo(req.addrinfo);
		snprintf(err, errlen, "%s: \"%s\" has no IPv4 or IPv6 address",
			 address, a->host);
		return -ENOENT;
	}
	memset(out, 0, sizeof(*out));
	memcpy(out, ai->ai_addr, ai->ai_addrlen);
	uv_freeaddrinfo(req.addrinfo);
	return 0;
}

static void sockaddr_text(const struct sockaddr *sa, char *buf, size_t len)
{
	char ip[INET6_ADDRSTRLEN] = "";

	if (sa->sa_family == AF_INET6) {
		const struct sockaddr_in6 *s6 = (const void *)sa;

		uv_ip6_name(s6, ip, sizeof(ip));
		snprintf(buf, len, "tcp:[%s]:%u", ip, ntohs(s6->sin6_port));
	} else {
		const struct sockaddr_in *s4 = (const void *)sa;

		uv_ip4_name(s4, ip, sizeof(ip));
		snprintf(buf, len, "tcp:%s:%u", ip, ntohs(s4->sin_port));
	}
}

/* ------------------------------------------------------------------ */
/* Connections                                                         */

static struct vmig_conn *conn_new(const struct vmig_conn_ops *ops,
				  void *opaque)
{
	struct vmig_conn *c = calloc(1, sizeof(*c));

	if (!c)
		return NULL;
	c->ops = ops;
	c->opaque = opaque;
	c->h.handle.data = c;
	return c;
}

static void conn_free_cb(uv_handle_t *h)
{
	struct vmig_conn *c = h->data;

	if (c->ops && c->ops->closed)
		c->ops->closed(c->opaque);
	free(c);
}

void vmig_conn_close(struct vmig_conn *c)
{
	if (!c || c->closing)
		return;
	c->closing = true;
	uv_close(&c->h.handle, conn_free_cb);
}

const char *vmig_conn_peer(const struct vmig_conn *c)
{
	return c->peer;
}

static void conn_alloc(uv_handle_t *h, size_t suggested, uv_buf_t *buf)
{
	struct vmig_conn *c = h->data;
	void *p = NULL;
	size_t len = 0;

	(void)suggested;
	c->ops->read_buf(c->opaque, &p, &len);
	buf->base = p;
	buf->len = len;
}

static void conn_read(uv_stream_t *st, ssize_t nread, const uv_buf_t *buf)
{
	struct vmig_conn *c = st->data;

	(void)buf;
	if (nread > 0) {
		c->ops->read_done(c->opaque, (size_t)nread);
		return;
	}
	if (nread == 0)
		return; /* EAGAIN: nothing this time */
	uv_read_stop(st);
	c->ops->read_end(c->opaque, nread == UV_EOF ? 0 : (int)nread);
}

int vmig_conn_read_start(struct vmig_conn *c)
{
	return uv_read_start(&c->h.stream, conn_alloc, conn_read);
}

void vmig_conn_read_stop(struct vmig_conn *c)
{
	if (!c->closing)
		uv_read_stop(&c->h.stream);
}

int vmig_conn_write(struct vmig_conn *c, uv_write_t *req,
		    const uv_buf_t *bufs, unsigned int n, uv_write_cb cb)
{
	if (c->closing)
		return -ECANCELED;
	return uv_write(req, &c->h.stream, bufs, n, cb);
}

/*
 * A unix stream socket charges what waits at the receiver to the sender's
 * buffer, and the default one (208 KiB) cuts each 1 MiB frame into five
 * wakeups of each side: ask for 4 MiB (the kernel caps it at
 * net.core.wmem_max; a smaller buffer is slower, not wrong). TCP sizes
 * its buffers itself, and setting them would stop that.
 */
#define UNIX_SNDBUF (4 << 20)

/* TCP before it connects; unix once the handle has its fd. */
static void conn_tune(struct vmig_conn *c, bool tcp)
{
	int v = UNIX_SNDBUF;

	/* Control frames are small and must not wait for more data. */
	if (tcp)
		uv_tcp_nodelay(&c->h.tcp, 1);
	else
		uv_send_buffer_size(&c->h.handle, &v);
}

static void conn_connected(uv_connect_t *req, int status)
{
	struct vmig_conn *c = req->data;

	if (status < 0) {
		if (c->cerr)
			snprintf(c->cerr, c->cerrlen, "connect %s: %s",
				 c->peer, uv_strerror(status));
		c->connected(c->opaque, NULL, status);
		/* Nobody owns a connection that never was. */
		c->ops = NULL;
		vmig_conn_close(c);
		return;
	}
	if (c->h.handle.type == UV_NAMED_PIPE)
		conn_tune(c, false);
	c->connected(c->opaque, c, 0);
}

int vmig_conn_connect(uv_loop_t *loop, const char *address,
		      const struct vmig_conn_ops *ops, void *opaque,
		      void (*connected)(void *opaque, struct vmig_conn *c,
					int err),
		      char *err, size_t errlen)
{
	struct sockaddr_storage ss;
	struct vmig_conn *c;
	struct addr a;
	int ret;

	ret = addr_parse(address, false, &a, err, errlen);
	if (ret < 0)
		return ret;
	if (!a.is_unix) {
		ret = addr_resolve(loop, &a, false, &ss, address, err, errlen);
		if (ret < 0)
			return ret;
	}
	c = conn_new(ops, opaque);
	if (!c)
		return -ENOMEM;
	c->connected = connected;
	c->cerr = err;
	c->cerrlen = errlen;
	c->creq.data = c;
	if (a.is_unix) {
		snprintf(c->peer, sizeof(c->peer), "%s", address);
		ret = uv_pipe_init(loop, &c->h.pipe, 0);
		if (ret < 0) {
			free(c);
			goto fail;
		}
		uv_pipe_connect(&c->creq, &c->h.pipe, a.path, conn_connected);
		return 0;
	}
	sockaddr_text((struct sockaddr *)&ss, c->peer, sizeof(c->peer));
	ret = uv_tcp_init(loop, &c->h.tcp);
	if (ret < 0) {
		free(c);
		goto fail;
	}
	conn_tune(c, true);
	ret = uv_tcp_connect(&c->creq, &c->h.tcp, (struct sockaddr *)&ss,
			     conn_connected);
	if (ret < 0) {
		c->ops = NULL;
		vmig_conn_close(c);
		goto fail;
	}
	return 0;
fail:
	snprintf(err, errlen, "connect %s: %s", address, uv_strerror(ret));
	return ret;
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
	ca = conn_new(ops_a, opaque_a);
	cb = conn_new(ops_b, opaque_b);
	if (!ca || !cb) {
		free(ca);
		free(cb);
		close(fds[0]);
		close(fds[1]);
		return -ENOMEM;
	}
	snprintf(ca->peer, sizeof(ca->peer), "socketpair");
	snprintf(cb->peer, sizeof(cb->peer), "socketpair");
	uv_pipe_init(loop, &ca->h.pipe, 0);
	uv_pipe_init(loop, &cb->h.pipe, 0);
	ret = uv_pipe_open(&ca->h.pipe, fds[0]);
	if (ret < 0)
		close(fds[0]);
	else
		ret = uv_pipe_open(&cb->h.pipe, fds[1]);
	if (ret < 0) {
		/* fds[0] is closed with ca when ca took it. */
		close(fds[1]);
		snprintf(err, errlen, "socketpair: %s", uv_strerror(ret));
		ca->ops = NULL;
		cb->ops = NULL;
		vmig_conn_close(ca);
		vmig_conn_close(cb);
		return ret;
	}
	conn_tune(ca, false);
	conn_tune(cb, false);
	*a = ca;
	*b = cb;
	return 0;
}

/* ------------------------------------------------------------------ */
/* Listeners                                                           */

static void listener_free_cb(uv_handle_t *h)
{
	free(h->data);
}

void vmig_listener_close(struct vmig_listener *l)
{
	if (!l || l->closing)
		return;
	l->closing = true;
	/* The socket file was ours: a later bind must not find it. */
	if (!l->tcp && l->path[0])
		unlink(l->path);
	uv_close(&l->h.handle, listener_free_cb);
}

static void listener_do_accept(struct vmig_listener *l)
{
	struct vmig_conn *c;
	int ret = l->pending_status;

	l->pending = false;
	if (ret < 0) {
		l->accepted(l->opaque, NULL, ret);
		return;
	}
	c = conn_new(l->ops, l->conn_opaque);
	if (!c) {
		l->accepted(l->opaque, NULL, -ENOMEM);
		return;
	}
	ret = l->tcp ? uv_tcp_init(l->h.handle.loop, &c->h.tcp)
		     : uv_pipe_init(l->h.handle.loop, &c->h.pipe, 0);
	if (ret < 0) {
		free(c);
		l->accepted(l->opaque, NULL, ret);
		return;
	}
	ret = uv_accept(&l->h.stream, &c->h.stream);
	if (ret < 0) {
		c->ops = NULL;
		vmig_conn_close(c);
		l->accepted(l->opaque, NULL, ret);
		return;
	}
	if (l->tcp) {
		struct sockaddr_storage ss;
		int len = sizeof(ss);

		conn_tune(c, true);
		if (uv_tcp_getpeername(&c->h.tcp, (struct sockaddr *)&ss,
				       &len) == 0)
			sockaddr_text((struct sockaddr *)&ss, c->peer,
				      sizeof(c->peer));
	} else {
		conn_tune(c, false);
		snprintf(c->peer, sizeof(c->peer), "%s", l->bound);
	}
	l->accepted(l->opaque, c, 0);
}

static void listener_connection(uv_stream_t *server, int status)
{
	struct vmig_listener *l = server->data;

	if (l->pending || l->closing)
		return; /* one at a time; the rest wait in the backlog */
	l->pending = true;
	l->pending_status = status;
	if (l->accepted)
		listener_do_accept(l);
}

int vmig_listener_accept(struct vmig_listener *l,
			 const struct vmig_conn_ops *ops, void *conn_opaque,
			 void (*accepted)(void *opaque, struct vmig_conn *c,
					  int err),
			 void *opaque)
{
	l->ops = ops;
	l->conn_opaque = conn_opaque;
	l->accepted = accepted;
	l->opaque = opaque;
	if (l->pending)
		listener_do_accept(l);
	return 0;
}

/*
 * A unix socket file left by a process that died: nobody accepts on it,
 * so it may go. Anything else at that path is somebody's.
 */
static int unix_clear_stale(const char *path, const char *address,
			    char *err, size_t errlen)
{
	struct sockaddr_un sun = { .sun_family = AF_UNIX };
	struct stat st;
	int fd, ret;

	if (lstat(path, &st) < 0)
		return 0;
	if (!S_ISSOCK(st.st_mode)) {
		snprintf(err, errlen, "listen %s: %s exists and is not a "
			 "socket", address, path);
		return -EADDRINUSE;
	}
	fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
	if (fd < 0)
		return 0;
	strcpy(sun.sun_path, path);
	ret = connect(fd, (struct sockaddr *)&sun, sizeof(sun));
	ret = ret < 0 ? -errno : 0;
	close(fd);
	if (ret == 0) {
		snprintf(err, errlen, "listen %s: another process listens "
			 "there", address);
		return -EADDRINUSE;
	}
	if (ret == -ECONNREFUSED)
		unlink(path);
	return 0;
}

int vmig_listener_open(uv_loop_t *loop, const char *address,
		       struct vmig_listener **out, char *bound,
		       size_t boundlen, char *err, size_t errlen)
{
	struct sockaddr_storage ss;
	struct vmig_listener *l;
	struct addr a;
	int ret;

	ret = addr_parse(address, true, &a, err, errlen);
	if (ret < 0)
		return ret;
	if (a.is_unix) {
		ret = unix_clear_stale(a.path, address, err, errlen);
		if (ret < 0)
			return ret;
	} else {
		ret = addr_resolve(loop, &a, true, &ss, address, err, errlen);
		if (ret < 0)
			return ret;
	}
	l = calloc(1, sizeof(*l));
	if (!l)
		return -ENOMEM;
	l->h.handle.data = l;
	l->tcp = !a.is_unix;
	if (a.is_unix) {
		ret = uv_pipe_init(loop, &l->h.pipe, 0);
		if (ret < 0) {
			free(l);
			goto fail;
		}
		ret = uv_pipe_bind(&l->h.pipe, a.path);
		if (ret == 0)
			strcpy(l->path, a.path);
		snprintf(l->bound, sizeof(l->bound), "unix:%s", a.path);
	} else {
		ret = uv_tcp_init(loop, &l->h.tcp);
		if (ret < 0) {
			free(l);
			goto fail;
		}
		ret = uv_tcp_bind(&l->h.tcp, (struct sockaddr *)&ss, 0);
	}
	if (ret == 0)
		ret = uv_listen(&l->h.stream, 1, listener_connection);
	if (ret == 0 && l->tcp) {
		int len = sizeof(ss);

		ret = uv_tcp_getsockname(&l->h.tcp, (struct sockaddr *)&ss,
					 &len);
		if (ret == 0)
			sockaddr_text((struct sockaddr *)&ss, l->bound,
				      sizeof(l->bound));
	}
	if (ret < 0) {
		vmig_listener_close(l);
		goto fail;
	}
	if (bound && boundlen)
		snprintf(bound, boundlen, "%s", l->bound);
	*out = l;
	return 0;
fail:
	snprintf(err, errlen, "listen %s: %s", address, uv_strerror(ret));
	return ret;
}
