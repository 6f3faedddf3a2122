/*
 * transport.h: the transports a migration stream runs over, behind one
 * table (inside core/transport/ only; the engine sees core/engine.h's
 * vmig_conn_* and vmig_listener_* calls).
 *
 * registry.c owns the table of transports, addresses (address.h: which
 * transport an address names, and its parsing and validation), and the
 * dispatch of the engine's calls to a connection's or a listener's
 * class. A
 * transport is a struct vmig_transport in a file of its own (unix.c,
 * tcp.c) and one line in registry.c's table; pair.c makes the socket
 * pair of a migration inside one process; stream.c is what the libuv
 * stream transports share (reading into the owner's buffers, writes,
 * closing, accepting).
 */
#ifndef VMIG_CORE_TRANSPORT_H
#define VMIG_CORE_TRANSPORT_H

#include <stdbool.h>
#include <stddef.h>

#include <netdb.h>

#include "address.h"
#include "core/engine.h"

#define VMIG_PEER_MAX 160

struct vmig_transport;

typedef void (*vmig_connected_fn)(void *opaque, struct vmig_conn *c,
				  int err);
typedef void (*vmig_accepted_fn)(void *opaque, struct vmig_conn *c,
				 int err);

/* What a connection does: the class of its transport's connections. */
struct vmig_conn_class {
	int (*read_start)(struct vmig_conn *c);
	void (*read_stop)(struct vmig_conn *c);
	/* Queues iov[0..n): done(opaque, 0 or -errno) once written. */
	int (*write)(struct vmig_conn *c, const struct vmig_iov *iov,
		     unsigned int n, vmig_write_fn done, void *opaque);
	/* Pending writes end with -ECANCELED, then ops->closed, free. */
	void (*close)(struct vmig_conn *c);
	/* Optional: its socket, when the bytes on it are the stream's. */
	int (*fd)(struct vmig_conn *c);
};

/* Every connection starts with this. */
struct vmig_conn {
	const struct vmig_conn_class *cls;
	const struct vmig_conn_ops *ops;
	void *opaque;
	char peer[VMIG_PEER_MAX];
	/* Why it failed, when its transport knows better than an errno. */
	char err[256];
};

/* What a listener does. */
struct vmig_listener_class {
	int (*accept)(struct vmig_listener *l,
		      const struct vmig_conn_ops *ops, void *conn_opaque,
		      vmig_accepted_fn accepted, void *opaque);
	void (*close)(struct vmig_listener *l);
};

/* Every listener starts with this. */
struct vmig_listener {
	const struct vmig_listener_class *cls;
	char bound[VMIG_PEER_MAX];
};

/* A transport: one kind of address, its connections and listeners. */
struct vmig_transport {
	const char *scheme;  /* the address's prefix before ':' */
	/*
	 * Parses rest, the address after "scheme:", into a. listen: for
	 * a listener (a TCP port may be 0). Returns 0 or -EINVAL (or
	 * another error) with the reason in err.
	 */
	int (*parse)(const char *rest, bool listen, struct vmig_address *a,
		     char *err, size_t errlen);
	/* Starts connecting; see vmig_conn_connect(). */
	int (*connect)(uv_loop_t *loop, const struct vmig_address *a,
		       const struct vmig_conn_ops *ops, void *opaque,
		       vmig_connected_fn connected, char *err,
		       size_t errlen);
	/* Binds and listens; see vmig_listener_open(). */
	int (*listen)(uv_loop_t *loop, const struct vmig_address *a,
		      struct vmig_listener **out, char *err, size_t errlen);
};

extern const struct vmig_transport vmig_transport_unix;
extern const struct vmig_transport vmig_transport_tcp;
extern const struct vmig_transport vmig_transport_tls;
extern const struct vmig_transport vmig_transport_tls_psk;

/* tcp.c: "host:port" into a (tls.c's addresses start the same way). */
int vmig_tcp_parse(const char *hostport, bool listen, struct vmig_address *a,
		   char *err, size_t errlen);

/* stream.c: libuv streams (unix sockets, TCP, socket pairs). */

/* A connection over a libuv stream, of the kind given. */
struct vmig_conn *vmig_stream_conn_new(uv_loop_t *loop, bool tcp,
				       const struct vmig_conn_ops *ops,
				       void *opaque);
/* Its handle (a uv_pipe_t or uv_tcp_t, initialised). */
uv_stream_t *vmig_stream_conn_handle(struct vmig_conn *c);
/*
 * Closes a connection nobody owns yet (it never connected, or accepting
 * it failed): its owner's callbacks are not called.
 */
void vmig_stream_conn_discard(struct vmig_conn *c);
/*
 * Connects with req (the connection's own); connected(opaque, c, 0) or
 * (opaque, NULL, err) with "connect <peer>: <reason>" in err.
 */
uv_connect_t *vmig_stream_conn_connecting(struct vmig_conn *c,
					  vmig_connected_fn connected,
					  char *err, size_t errlen);
void vmig_stream_connected(uv_connect_t *req, int status);
/*
 * fn(arg) runs when c is closed (before its handle closes); NULL: none.
 * For what its connect waits on before libuv's (a name lookup).
 */
void vmig_stream_conn_on_close(struct vmig_conn *c, void (*fn)(void *arg),
			       void *arg);
/* Socket options of a new connection (tcp: no delay; unix: buffers). */
void vmig_stream_tune(struct vmig_conn *c, bool tcp);

/*
 * A listener on a libuv stream: its handle (a uv_pipe_t or uv_tcp_t) is
 * bound by the transport, then vmig_stream_listen() starts it. A path
 * set with vmig_stream_listener_set_path() is removed when it closes.
 */
struct vmig_listener *vmig_stream_listener_new(uv_loop_t *loop, bool tcp);
uv_stream_t *vmig_stream_listener_handle(struct vmig_listener *l);
void vmig_stream_listener_set_path(struct vmig_listener *l,
				   const char *path);
int vmig_stream_listen(struct vmig_listener *l);
/*
 * Ends a listen on a: where ret (of binding and starting l) is 0, *out is
 * l; else l is closed and err says why. Returns ret.
 */
int vmig_stream_listen_done(struct vmig_listener *l,
			    const struct vmig_address *a, int ret,
			    struct vmig_listener **out, char *err,
			    size_t errlen);

/*
 * tcp.c: how a host name is looked up when connecting (getaddrinfo; a
 * test may put a lookup of its own here before any connect).
 */
extern int (*vmig_tcp_lookup)(const char *host, const char *port,
			      const struct addrinfo *hints,
			      struct addrinfo **res);

/* tcp.c: a peer's address as text ("tcp:1.2.3.4:5", "tcp:[::1]:5"). */
void vmig_tcp_sockaddr_text(const struct sockaddr *sa, char *buf,
			    size_t len);

#endif /* VMIG_CORE_TRANSPORT_H */
