/*
 * registry.c: the table of transports, addresses, and the engine's calls
 * on connections and listeners (core/engine.h), dispatched to their
 * transport's class.
 *
 * A new transport is one file that defines a struct vmig_transport and
 * one line in the table below.
 */
#include <errno.h>
#include <stdio.h>
#include <string.h>

#include "transport.h"

static const struct vmig_transport *const transports[] = {
	&vmig_transport_unix,
	&vmig_transport_tcp,
	&vmig_transport_tls,
	&vmig_transport_tls_psk,
};

#define NR_TRANSPORTS (sizeof(transports) / sizeof(transports[0]))

/* The transport whose scheme starts address (followed by ':'). */
static const struct vmig_transport *transport_find(const char *address)
{
	size_t i, n;

	for (i = 0; i < NR_TRANSPORTS; i++) {
		n = strlen(transports[i]->scheme);
		if (!strncmp(address, transports[i]->scheme, n) &&
		    address[n] == ':')
			return transports[i];
	}
	return NULL;
}

int vmig_address_parse(const char *address, bool listen,
		       struct vmig_address *a, char *err, size_t errlen)
{
	memset(a, 0, sizeof(*a));
	a->text = address;
	if (address)
		a->t = transport_find(address);
	if (!a->t) {
		snprintf(err, errlen,
			 "%s: expected " VMIG_ADDRESS_FORMS,
			 address ? address : "(null)");
		return -EINVAL;
	}
	return a->t->parse(address + strlen(a->t->scheme) + 1, listen, a, err,
			   errlen);
}

const char *vmig_address_scheme(const struct vmig_address *a)
{
	return a->t->scheme;
}

int vmig_conn_connect(uv_loop_t *loop, const char *address,
		      const struct vmig_conn_ops *ops, void *opaque,
		      void (*connected)(void *opaque, struct vmig_conn *c,
					int err),
		      char *err, size_t errlen)
{
	struct vmig_address a;
	int ret;

	ret = vmig_address_parse(address, false, &a, err, errlen);
	if (ret < 0)
		return ret;
	return a.t->connect(loop, &a, ops, opaque, connected, err, errlen);
}

int vmig_conn_read_start(struct vmig_conn *c)
{
	return c->cls->read_start(c);
}

void vmig_conn_read_stop(struct vmig_conn *c)
{
	c->cls->read_stop(c);
}

int vmig_conn_write(struct vmig_conn *c, const struct vmig_iov *iov,
		    unsigned int n, vmig_write_fn done, void *opaque)
{
	return c->cls->write(c, iov, n, done, opaque);
}

void vmig_conn_close(struct vmig_conn *c)
{
	if (c)
		c->cls->close(c);
}

int vmig_conn_fd(struct vmig_conn *c)
{
	return c->cls->fd ? c->cls->fd(c) : -ENOTSUP;
}

const char *vmig_conn_peer(const struct vmig_conn *c)
{
	return c->peer;
}

const char *vmig_conn_errmsg(const struct vmig_conn *c)
{
	return c ? c->err : "";
}

int vmig_listener_open(uv_loop_t *loop, const char *address,
		       struct vmig_listener **out, char *bound,
		       size_t boundlen, char *err, size_t errlen)
{
	struct vmig_address a;
	int ret;

	ret = vmig_address_parse(address, true, &a, err, errlen);
	if (ret < 0)
		return ret;
	ret = a.t->listen(loop, &a, out, err, errlen);
	if (ret < 0)
		return ret;
	if (bound && boundlen)
		snprintf(bound, boundlen, "%s", (*out)->bound);
	return 0;
}

int vmig_listener_accept(struct vmig_listener *l,
			 const struct vmig_conn_ops *ops, void *conn_opaque,
			 void (*accepted)(void *opaque, struct vmig_conn *c,
					  int err),
			 void *opaque)
{
	return l->cls->accept(l, ops, conn_opaque, accepted, opaque);
}

void vmig_listener_close(struct vmig_listener *l)
{
	if (l)
		l->cls->close(l);
}
