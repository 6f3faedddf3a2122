/*
 * stream.c: connections and listeners over libuv streams, shared by the
 * unix, tcp and socket-pair transports.
 *
 * This file owns a stream connection's plumbing: received bytes go where
 * the owner's read_buf says, exactly (the owner hands out the span of the
 * frame part it expects, so a read never straddles two frames and page
 * payloads land straight in guest memory); writes are uv_write()s of the
 * owner's buffer arrays, with the write requests pooled per connection
 * (none allocated once the pool is warm); closing; and a listener that
 * accepts one connection at a time. Which socket and which address are
 * the transports' (unix.c, tcp.c, pair.c).
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "transport.h"

/* The engine sees errnos; libuv's are the same numbers on Unix. */
_Static_assert(UV_ECANCELED == -ECANCELED, "libuv errors are -errno");

union stream_handle {
	uv_handle_t handle;
	uv_stream_t stream;
	uv_tcp_t tcp;
	uv_pipe_t pipe;
};

struct stream_write;

struct stream_conn {
	struct vmig_conn base;
	union stream_handle h;
	bool closing;
	/* Told when it closes before connecting began (a name lookup). */
	void (*on_close)(void *arg);
	void *on_close_arg;
	struct stream_write *free_writes; /* the pool */
	/* While connecting. */
	uv_connect_t creq;
	vmig_connected_fn connected;
	char *cerr;
	size_t cerrlen;
};

struct stream_write {
	uv_write_t req;
	struct stream_conn *c;
	vmig_write_fn done;
	void *opaque;
	struct stream_write *next;
};

struct stream_listener {
	struct vmig_listener base;
	union stream_handle h;
	bool tcp;
	bool closing;
	char path[sizeof(((struct sockaddr_un *)0)->sun_path)];
	bool pending;       /* a connection waits to be accepted */
	int pending_status;
	const struct vmig_conn_ops *ops;
	void *conn_opaque;
	vmig_accepted_fn accepted;
	void *opaque;
};

/*
 * Initializes h on loop, a TCP handle or a pipe, its data the object that
 * holds it: 0 or a libuv error.
 */
static int stream_handle_init(uv_loop_t *loop, bool tcp,
			      union stream_handle *h, void *owner)
{
	int ret = tcp ? uv_tcp_init(loop, &h->tcp)
		      : uv_pipe_init(loop, &h->pipe, 0);

	if (ret == 0)
		h->handle.data = owner;
	return ret;
}

static struct stream_conn *sc_of(struct vmig_conn *c)
{
	return (struct stream_conn *)c;
}

static struct stream_listener *sl_of(struct vmig_listener *l)
{
	return (struct stream_listener *)l;
}

/* ------------------------------------------------------------------ */
/* Connections                                                         */

static void conn_free_cb(uv_handle_t *h)
{
	struct stream_conn *c = h->data;
	struct stream_write *w;

	if (c->base.ops && c->base.ops->closed)
		c->base.ops->closed(c->base.opaque);
	/* Every write's callback ran before this one (libuv's order). */
	while ((w = c->free_writes)) {
		c->free_writes = w->next;
		free(w);
	}
	free(c);
}

static void stream_close(struct vmig_conn *conn)
{
	struct stream_conn *c = sc_of(conn);

	if (c->closing)
		return;
	c->closing = true;
	if (c->on_close) {
		c->on_close(c->on_close_arg);
		c->on_close = NULL;
	}
	uv_close(&c->h.handle, conn_free_cb);
}

void vmig_stream_conn_on_close(struct vmig_conn *conn, void (*fn)(void *arg),
			       void *arg)
{
	struct stream_conn *c = sc_of(conn);

	c->on_close = fn;
	c->on_close_arg = arg;
}

static void conn_alloc(uv_handle_t *h, size_t suggested, uv_buf_t *buf)
{
	struct stream_conn *c = h->data;
	void *p = NULL;
	size_t len = 0;

	(void)suggested;
	c->base.ops->read_buf(c->base.opaque, &p, &len);
	buf->base = p;
	buf->len = len;
}

static void conn_read(uv_stream_t *st, ssize_t nread, const uv_buf_t *buf)
{
	struct stream_conn *c = st->data;

	(void)buf;
	if (nread > 0) {
		c->base.ops->read_done(c->base.opaque, (size_t)nread);
		return;
	}
	if (nread == 0)
		return; /* EAGAIN: nothing this time */
	uv_read_stop(st);
	c->base.ops->read_end(c->base.opaque,
			      nread == UV_EOF ? 0 : (int)nread);
}

static int stream_read_start(struct vmig_conn *conn)
{
	return uv_read_start(&sc_of(conn)->h.stream, conn_alloc, conn_read);
}

static void stream_read_stop(struct vmig_conn *conn)
{
	struct stream_conn *c = sc_of(conn);

	if (!c->closing)
		uv_read_stop(&c->h.stream);
}

static void stream_written(uv_write_t *req, int status)
{
	struct stream_write *w = req->data;
	struct stream_conn *c = w->c;
	vmig_write_fn done = w->done;
	void *opaque = w->opaque;

	/* Back to the pool first: done() may write again. */
	w->next = c->free_writes;
	c->free_writes = w;
	done(opaque, status);
}

/* Buffers of a write on the stack up to this many; more are allocated. */
#define STACK_BUFS 160

static int stream_write(struct vmig_conn *conn, const struct vmig_iov *iov,
			unsigned int n, vmig_write_fn done, void *opaque)
{
	struct stream_conn *c = sc_of(conn);
	uv_buf_t stack[STACK_BUFS], *bufs = stack;
	struct stream_write *w;
	unsigned int i;
	int ret;

	if (c->closing)
		return -ECANCELED;
	w = c->free_writes;
	if (w)
		c->free_writes = w->next;
	else if (!(w = malloc(sizeof(*w))))
		return -ENOMEM;
	if (n > STACK_BUFS && !(bufs = malloc(n * sizeof(*bufs)))) {
		w->next = c->free_writes;
		c->free_writes = w;
		return -ENOMEM;
	}
	for (i = 0; i < n; i++)
		bufs[i] = uv_buf_init((char *)iov[i].base,
				      (unsigned int)iov[i].len);
	w->req.data = w;
	w->c = c;
	w->done = done;
	w->opaque = opaque;
	/* uv_write copies the array: it need not outlive the call. */
	ret = uv_write(&w->req, &c->h.stream, bufs, n, stream_written);
	if (bufs != stack)
		free(bufs);
	if (ret < 0) {
		w->next = c->free_writes;
		c->free_writes = w;
	}
	return ret;
}

static int stream_fd(struct vmig_conn *conn)
{
	uv_os_fd_t fd;
	int ret = uv_fileno(&sc_of(conn)->h.handle, &fd);

	return ret < 0 ? ret : fd;
}

static const struct vmig_conn_class stream_conn_class = {
	.read_start = stream_read_start,
	.read_stop = stream_read_stop,
	.write = stream_write,
	.close = stream_close,
	.fd = stream_fd,
};

struct vmig_conn *vmig_stream_conn_new(uv_loop_t *loop, bool tcp,
				       const struct vmig_conn_ops *ops,
				       void *opaque)
{
	struct stream_conn *c = calloc(1, sizeof(*c));

	if (!c)
		return NULL;
	c->base.cls = &stream_conn_class;
	c->base.ops = ops;
	c->base.opaque = opaque;
	if (stream_handle_init(loop, tcp, &c->h, c) < 0) {
		free(c);
		return NULL;
	}
	return &c->base;
}

uv_stream_t *vmig_stream_conn_handle(struct vmig_conn *c)
{
	return &sc_of(c)->h.stream;
}

void vmig_stream_conn_discard(struct vmig_conn *c)
{
	/* Nobody owns a connection that never was. */
	c->ops = NULL;
	stream_close(c);
}

/*
 * A unix stream socket charges what waits at the receiver to the sender's
 * buffer, and the default one (208 KiB) cuts each 1 MiB frame into five
 * wakeups of each side: ask for 4 MiB (the kernel caps it at
 * net.core.wmem_max; a smaller buffer is slower, not wrong). TCP sizes
 * its buffers itself, and setting them would stop that.
 */
#define UNIX_SNDBUF (4 << 20)
/*
 * A TCP receive queue the kernel lets grow to tcp_rmem's maximum (often
 * 32 MiB) holds that much of the stream the destination has not applied
 * yet: after the switchover the guest stays stopped until it is. 4 MiB
 * (the kernel doubles it) still covers 10 Gb/s at 2 ms of round trip.
 */
#define TCP_RCVBUF (4 << 20)

void vmig_stream_tune(struct vmig_conn *conn, bool tcp)
{
	struct stream_conn *c = sc_of(conn);
	int v = UNIX_SNDBUF, r = TCP_RCVBUF;

	/* Control frames are small and must not wait for more data. */
	if (tcp) {
		uv_tcp_nodelay(&c->h.tcp, 1);
		uv_recv_buffer_size(&c->h.handle, &r);
	} else {
		uv_send_buffer_size(&c->h.handle, &v);
	}
}

uv_connect_t *vmig_stream_conn_connecting(struct vmig_conn *conn,
					  vmig_connected_fn connected,
					  char *err, size_t errlen)
{
	struct stream_conn *c = sc_of(conn);

	c->connected = connected;
	c->cerr = err;
	c->cerrlen = errlen;
	c->creq.data = c;
	if (conn->ops && conn->ops->connecting)
		conn->ops->connecting(conn->opaque, conn);
	return &c->creq;
}

void vmig_stream_connected(uv_connect_t *req, int status)
{
	struct stream_conn *c = req->data;

	if (status < 0) {
		if (c->cerr)
			snprintf(c->cerr, c->cerrlen, "connect %s: %s",
				 c->base.peer, uv_strerror(status));
		c->connected(c->base.opaque, NULL, status);
		vmig_stream_conn_discard(&c->base);
		return;
	}
	/* TCP was tuned before connecting; a unix socket has its fd now. */
	if (c->h.handle.type == UV_NAMED_PIPE)
		vmig_stream_tune(&c->base, false);
	c->connected(c->base.opaque, &c->base, 0);
}

/* ------------------------------------------------------------------ */
/* Listeners                                                           */

static void listener_free_cb(uv_handle_t *h)
{
	free(h->data);
}

static void stream_listener_close(struct vmig_listener *base)
{
	struct stream_listener *l = sl_of(base);

	if (l->closing)
		return;
	l->closing = true;
	/* The socket file was ours: a later bind must not find it. */
	if (l->path[0])
		unlink(l->path);
	uv_close(&l->h.handle, listener_free_cb);
}

/* The accepted connection's peer: its TCP address, or the socket path. */
static void accepted_peer(struct stream_listener *l, struct stream_conn *c)
{
	struct sockaddr_storage ss;
	int len = sizeof(ss);

	if (!l->tcp) {
		snprintf(c->base.peer, sizeof(c->base.peer), "%s",
			 l->base.bound);
		return;
	}
	if (uv_tcp_getpeername(&c->h.tcp, (struct sockaddr *)&ss, &len) == 0)
		vmig_tcp_sockaddr_text((struct sockaddr *)&ss, c->base.peer,
				       sizeof(c->base.peer));
}

static void listener_do_accept(struct stream_listener *l)
{
	vmig_accepted_fn accepted;
	struct vmig_conn *conn;
	int ret = l->pending_status;

	l->pending = false;
	/*
	 * One connection per accept: a later one waits for the next call;
	 * meanwhile the listener keeps no loop running.
	 */
	accepted = l->accepted;
	l->accepted = NULL;
	uv_unref(&l->h.handle);
	if (ret < 0) {
		accepted(l->opaque, NULL, ret);
		return;
	}
	conn = vmig_stream_conn_new(l->h.handle.loop, l->tcp, l->ops,
				    l->conn_opaque);
	if (!conn) {
		accepted(l->opaque, NULL, -ENOMEM);
		return;
	}
	ret = uv_accept(&l->h.stream, vmig_stream_conn_handle(conn));
	if (ret < 0) {
		vmig_stream_conn_discard(conn);
		accepted(l->opaque, NULL, ret);
		return;
	}
	vmig_stream_tune(conn, l->tcp);
	accepted_peer(l, sc_of(conn));
	accepted(l->opaque, conn, 0);
}

static void listener_connection(uv_stream_t *server, int status)
{
	struct stream_listener *l = server->data;

	if (l->pending || l->closing)
		return; /* one at a time; the rest wait in the backlog */
	l->pending = true;
	l->pending_status = status;
	if (l->accepted)
		listener_do_accept(l);
}

static int stream_listener_accept(struct vmig_listener *base,
				  const struct vmig_conn_ops *ops,
				  void *conn_opaque, vmig_accepted_fn accepted,
				  void *opaque)
{
	struct stream_listener *l = sl_of(base);

	l->ops = ops;
	l->conn_opaque = conn_opaque;
	l->accepted = accepted;
	l->opaque = opaque;
	/* No callback: the wait is over; the listener keeps listening. */
	if (!accepted) {
		uv_unref(&l->h.handle);
		return 0;
	}
	/* Waiting for a connection keeps the loop running. */
	uv_ref(&l->h.handle);
	if (l->pending)
		listener_do_accept(l);
	return 0;
}

static const struct vmig_listener_class stream_listener_class = {
	.accept = stream_listener_accept,
	.close = stream_listener_close,
};

struct vmig_listener *vmig_stream_listener_new(uv_loop_t *loop, bool tcp)
{
	struct stream_listener *l = calloc(1, sizeof(*l));

	if (!l)
		return NULL;
	l->base.cls = &stream_listener_class;
	l->tcp = tcp;
	if (stream_handle_init(loop, tcp, &l->h, l) < 0) {
		free(l);
		return NULL;
	}
	return &l->base;
}

uv_stream_t *vmig_stream_listener_handle(struct vmig_listener *l)
{
	return &sl_of(l)->h.stream;
}

void vmig_stream_listener_set_path(struct vmig_listener *base,
				   const char *path)
{
	struct stream_listener *l = sl_of(base);

	snprintf(l->path, sizeof(l->path), "%s", path);
}

/*
 * Room in the kernel for every data connection of a migration at once
 * (they connect together, and are accepted one at a time), and a few
 * more.
 */
#define LISTEN_BACKLOG 32

int vmig_stream_listen(struct vmig_listener *l)
{
	return uv_listen(&sl_of(l)->h.stream, LISTEN_BACKLOG,
			 listener_connection);
}

int vmig_stream_listen_done(struct vmig_listener *l,
			    const struct vmig_address *a, int ret,
			    struct vmig_listener **out, char *err,
			    size_t errlen)
{
	if (ret < 0) {
		l->cls->close(l);
		snprintf(err, errlen, "listen %s: %s", a->text,
			 uv_strerror(ret));
		return ret;
	}
	*out = l;
	return 0;
}
