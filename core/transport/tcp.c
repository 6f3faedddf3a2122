/*
 * tcp.c: the TCP transport ("tcp:host:port").
 *
 * This file owns TCP addresses (IPv4, IPv6 in brackets, or a name
 * resolved when connecting or listening), their text form for messages,
 * connecting (no delay: control frames are small) and listening (port 0:
 * the kernel chooses, and the bound address says which). A connect to a
 * name looks it up in a thread of its own, so that the loop runs (and a
 * cancel takes effect) while a slow resolver answers. The stream itself
 * is stream.c's.
 */
#include <errno.h>
#include <netinet/in.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>

#include "transport.h"

int (*vmig_tcp_lookup)(const char *host, const char *port,
		       const struct addrinfo *hints,
		       struct addrinfo **res) = getaddrinfo;

static int tcp_bad(const struct vmig_address *a, char *err, size_t errlen)
{
	snprintf(err, errlen,
		 "%s: expected " VMIG_ADDRESS_FORMS,
		 a->text);
	return -EINVAL;
}

/* The port: decimal digits, at most 65535, 0 only for a listener. */
static int tcp_parse_port(const char *p, bool listen, struct vmig_address *a,
			  char *err, size_t errlen)
{
	long port = 0;

	if (!*p || strlen(p) > 5)
		goto bad;
	for (; *p; p++) {
		if (*p < '0' || *p > '9')
			goto bad;
		port = port * 10 + (*p - '0');
	}
	if (port > 65535 || (!listen && port == 0))
		goto bad;
	snprintf(a->port, sizeof(a->port), "%u", (unsigned int)port);
	return 0;
bad:
	snprintf(err, errlen, "%s: expected a port from %d to 65535", a->text,
		 listen ? 0 : 1);
	return -EINVAL;
}

int vmig_tcp_parse(const char *host, bool listen, struct vmig_address *a,
		   char *err, size_t errlen)
{
	const char *colon = strrchr(host, ':');
	size_t hlen;

	if (!colon || colon == host)
		return tcp_bad(a, err, errlen);
	hlen = (size_t)(colon - host);
	if (host[0] == '[') {
		if (hlen < 3 || host[hlen - 1] != ']')
			return tcp_bad(a, err, errlen);
		host++;
		hlen -= 2;
	}
	if (hlen >= sizeof(a->host) || memchr(host, '[', hlen) ||
	    memchr(host, ']', hlen))
		return tcp_bad(a, err, errlen);
	memcpy(a->host, host, hlen);
	a->host[hlen] = '\0';
	return tcp_parse_port(colon + 1, listen, a, err, errlen);
}

/*
 * Looks host:port up (vmig_tcp_lookup, in the calling thread): its first
 * IPv4 or IPv6 address into out. Returns 0, or -ENOENT or -EHOSTUNREACH
 * with why in why (to follow "<address>: ").
 */
static int tcp_lookup_addr(const char *host, const char *port, bool passive,
			   struct sockaddr_storage *out, char *why,
			   size_t whylen)
{
	struct addrinfo hints = {
		.ai_family = AF_UNSPEC,
		.ai_socktype = SOCK_STREAM,
		.ai_flags = passive ? AI_PASSIVE : 0,
	};
	struct addrinfo *res = NULL, *ai;
	int ret = vmig_tcp_lookup(host, port, &hints, &res);

	if (ret) {
		snprintf(why, whylen, "cannot resolve \"%s\": %s", host,
			 ret == EAI_NONAME ? "no such host" : gai_strerror(ret));
		return ret == EAI_NONAME ? -ENOENT : -EHOSTUNREACH;
	}
	for (ai = res; ai; ai = ai->ai_next) {
		if (ai->ai_family == AF_INET || ai->ai_family == AF_INET6)
			break;
	}
	if (!ai) {
		freeaddrinfo(res);
		snprintf(why, whylen, "\"%s\" has no IPv4 or IPv6 address",
			 host);
		return -ENOENT;
	}
	memset(out, 0, sizeof(*out));
	memcpy(out, ai->ai_addr, ai->ai_addrlen);
	freeaddrinfo(res);
	return 0;
}

/* Resolves a TCP address synchronously (the loop does not run yet). */
static int tcp_resolve(const struct vmig_address *a, bool passive,
		       struct sockaddr_storage *out, char *err, size_t errlen)
{
	char why[320];
	int ret = tcp_lookup_addr(a->host, a->port, passive, out, why,
				  sizeof(why));

	if (ret < 0)
		snprintf(err, errlen, "%s: %s", a->text, why);
	return ret;
}

void vmig_tcp_sockaddr_text(const struct sockaddr *sa, char *buf,
			    size_t len)
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

/*
 * A name being looked up for a connect, shared by the loop and the
 * lookup's thread (each holds a reference): the thread answers through
 * async, unless the connect was abandoned (the connection closed); then
 * it ends on its own, whenever the resolver answers.
 */
struct tcp_lookup {
	pthread_mutex_t lock;
	int refs;
	bool abandoned;           /* under lock */
	uv_async_t async;         /* the loop's */
	struct vmig_conn *c;      /* connecting (the loop's) */
	uv_connect_t *req;
	vmig_connected_fn connected; /* the owner's */
	void *opaque;
	char *err;                /* the owner's message buffer */
	size_t errlen;
	char host[256], port[12], text[300];
	/* The answer, under lock. */
	int status;
	struct sockaddr_storage ss;
	char why[320];
};

static void tcp_lookup_put(struct tcp_lookup *l)
{
	int refs;

	pthread_mutex_lock(&l->lock);
	refs = --l->refs;
	pthread_mutex_unlock(&l->lock);
	if (refs)
		return;
	pthread_mutex_destroy(&l->lock);
	free(l);
}

static void *tcp_lookup_main(void *arg)
{
	struct tcp_lookup *l = arg;
	struct sockaddr_storage ss = { 0 };
	char why[sizeof(l->why)] = "";
	int ret = tcp_lookup_addr(l->host, l->port, false, &ss, why,
				  sizeof(why));

	pthread_mutex_lock(&l->lock);
	l->status = ret;
	l->ss = ss;
	memcpy(l->why, why, sizeof(why));
	if (!l->abandoned)
		uv_async_send(&l->async);
	pthread_mutex_unlock(&l->lock);
	tcp_lookup_put(l);
	return NULL;
}

/*
 * The loop is done with the lookup. An abandoned connect ends as libuv
 * ends one it cancels: connected() with -ECANCELED, once the connection
 * is gone (its owner's closed() is not called).
 */
static void tcp_lookup_closed(uv_handle_t *h)
{
	struct tcp_lookup *l = h->data;

	if (l->abandoned) {
		snprintf(l->err, l->errlen, "connect %s: cancelled while "
			 "looking up \"%s\"", l->text, l->host);
		l->connected(l->opaque, NULL, -ECANCELED);
	}
	tcp_lookup_put(l);
}

/* The owner closed the connection before the answer: it is abandoned. */
static void tcp_lookup_abandon(void *arg)
{
	struct tcp_lookup *l = arg;

	pthread_mutex_lock(&l->lock);
	l->abandoned = true;
	pthread_mutex_unlock(&l->lock);
	l->c->ops = NULL;
	uv_close((uv_handle_t *)&l->async, tcp_lookup_closed);
}

/* The answer: connect, or say why not. */
static void tcp_lookup_done(uv_async_t *async)
{
	struct tcp_lookup *l = async->data;
	struct vmig_conn *c = l->c;
	int ret;

	vmig_stream_conn_on_close(c, NULL, NULL);
	uv_close((uv_handle_t *)&l->async, tcp_lookup_closed);
	pthread_mutex_lock(&l->lock);
	ret = l->status;
	pthread_mutex_unlock(&l->lock);
	if (ret == 0) {
		vmig_tcp_sockaddr_text((struct sockaddr *)&l->ss, c->peer,
				       sizeof(c->peer));
		ret = uv_tcp_connect(l->req,
				     (uv_tcp_t *)vmig_stream_conn_handle(c),
				     (struct sockaddr *)&l->ss,
				     vmig_stream_connected);
		if (ret == 0)
			return;
		snprintf(l->err, l->errlen, "connect %s: %s", l->text,
			 uv_strerror(ret));
	} else {
		snprintf(l->err, l->errlen, "%s: %s", l->text, l->why);
	}
	vmig_stream_conn_discard(c);
	l->connected(l->opaque, NULL, ret);
}

/*
 * Connects to a name: c is the owner's from now (its connecting hook has
 * it), and the lookup runs in a thread. 0, or an error with err set.
 */
static int tcp_connect_name(uv_loop_t *loop, const struct vmig_address *a,
			    const struct vmig_conn_ops *ops, void *opaque,
			    vmig_connected_fn connected, char *err,
			    size_t errlen)
{
	struct tcp_lookup *l = calloc(1, sizeof(*l));
	struct vmig_conn *c = l ? vmig_stream_conn_new(loop, true, ops, opaque)
				: NULL;
	pthread_attr_t attr;
	pthread_t th;
	int ret;

	if (!c || uv_async_init(loop, &l->async, tcp_lookup_done) < 0) {
		if (c)
			vmig_stream_conn_discard(c);
		free(l);
		snprintf(err, errlen, "connect %s: out of memory", a->text);
		return -ENOMEM;
	}
	pthread_mutex_init(&l->lock, NULL);
	l->refs = 2;
	l->async.data = l;
	l->c = c;
	l->connected = connected;
	l->opaque = opaque;
	l->err = err;
	l->errlen = errlen;
	snprintf(l->host, sizeof(l->host), "%s", a->host);
	snprintf(l->port, sizeof(l->port), "%s", a->port);
	snprintf(l->text, sizeof(l->text), "%s", a->text);
	snprintf(c->peer, sizeof(c->peer), "%s", a->text);
	vmig_stream_tune(c, true);
	vmig_stream_conn_on_close(c, tcp_lookup_abandon, l);
	pthread_attr_init(&attr);
	pthread_attr_setdetachstate(&attr, PTHREAD_CREATE_DETACHED);
	ret = pthread_create(&th, &attr, tcp_lookup_main, l);
	pthread_attr_destroy(&attr);
	if (ret) {
		/* No thread: only the loop's reference, and no connected(). */
		l->refs = 1;
		vmig_stream_conn_on_close(c, NULL, NULL);
		vmig_stream_conn_discard(c);
		uv_close((uv_handle_t *)&l->async, tcp_lookup_closed);
		snprintf(err, errlen, "connect %s: %s", a->text, strerror(ret));
		return -ret;
	}
	/* The owner may abandon it from here (vmig_conn_close). */
	l->req = vmig_stream_conn_connecting(c, connected, err, errlen);
	return 0;
}

/* Whether host is an address already (no lookup). */
static bool tcp_numeric(const char *host)
{
	struct in6_addr a6;
	struct in_addr a4;

	return uv_inet_pton(AF_INET, host, &a4) == 0 ||
	       uv_inet_pton(AF_INET6, host, &a6) == 0;
}

static int tcp_connect(uv_loop_t *loop, const struct vmig_address *a,
		       const struct vmig_conn_ops *ops, void *opaque,
		       vmig_connected_fn connected, char *err, size_t errlen)
{
	struct sockaddr_storage ss;
	struct vmig_conn *c;
	uv_connect_t *req;
	int ret;

	if (!tcp_numeric(a->host))
		return tcp_connect_name(loop, a, ops, opaque, connected, err,
					errlen);
	ret = tcp_resolve(a, false, &ss, err, errlen);
	if (ret < 0)
		return ret;
	c = vmig_stream_conn_new(loop, true, ops, opaque);
	if (!c) {
		snprintf(err, errlen, "connect %s: out of memory", a->text);
		return -ENOMEM;
	}
	vmig_tcp_sockaddr_text((struct sockaddr *)&ss, c->peer,
			       sizeof(c->peer));
	vmig_stream_tune(c, true);
	req = vmig_stream_conn_connecting(c, connected, err, errlen);
	ret = uv_tcp_connect(req, (uv_tcp_t *)vmig_stream_conn_handle(c),
			     (struct sockaddr *)&ss, vmig_stream_connected);
	if (ret < 0) {
		vmig_stream_conn_discard(c);
		snprintf(err, errlen, "connect %s: %s", a->text,
			 uv_strerror(ret));
		return ret;
	}
	return 0;
}

static int tcp_listen(uv_loop_t *loop, const struct vmig_address *a,
		      struct vmig_listener **out, char *err, size_t errlen)
{
	struct sockaddr_storage ss;
	struct vmig_listener *l;
	uv_tcp_t *h;
	int ret, len = sizeof(ss);

	ret = tcp_resolve(a, true, &ss, err, errlen);
	if (ret < 0)
		return ret;
	l = vmig_stream_listener_new(loop, true);
	if (!l) {
		snprintf(err, errlen, "listen %s: out of memory", a->text);
		return -ENOMEM;
	}
	h = (uv_tcp_t *)vmig_stream_listener_handle(l);
	ret = uv_tcp_bind(h, (struct sockaddr *)&ss, 0);
	if (ret == 0)
		ret = vmig_stream_listen(l);
	if (ret == 0)
		ret = uv_tcp_getsockname(h, (struct sockaddr *)&ss, &len);
	if (ret == 0)
		vmig_tcp_sockaddr_text((struct sockaddr *)&ss, l->bound,
				       sizeof(l->bound));
	return vmig_stream_listen_done(l, a, ret, out, err, errlen);
}

const struct vmig_transport vmig_transport_tcp = {
	.scheme = "tcp",
	.parse = vmig_tcp_parse,
	.connect = tcp_connect,
	.listen = tcp_listen,
};
