/*
 * tcp.c: the TCP transport ("tcp:host:port").
 *
 * This file owns TCP addresses (IPv4, IPv6 in brackets, or a name
 * resolved with uv_getaddrinfo when connecting or listening), their text
 * form for messages, connecting (no delay: control frames are small) and
 * listening (port 0: the kernel chooses, and the bound address says
 * which). The stream itself is stream.c's.
 */
#include <errno.h>
#include <netinet/in.h>
#include <stdio.h>
#include <string.h>
#include <sys/socket.h>

#include "transport.h"

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

/* Resolves a TCP address synchronously (the loop does not run yet). */
static int tcp_resolve(uv_loop_t *loop, const struct vmig_address *a,
		       bool passive, struct sockaddr_storage *out, char *err,
		       size_t errlen)
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
			 a->text, a->host, uv_strerror(ret));
		return ret == UV_EAI_NONAME ? -ENOENT : -EHOSTUNREACH;
	}
	for (ai = req.addrinfo; ai; ai = ai->ai_next) {
		if (ai->ai_family == AF_INET || ai->ai_family == AF_INET6)
			break;
	}
	if (!ai) {
		uv_freeaddrinfo(req.addrinfo);
		snprintf(err, errlen, "%s: \"%s\" has no IPv4 or IPv6 address",
			 a->text, a->host);
		return -ENOENT;
	}
	memset(out, 0, sizeof(*out));
	memcpy(out, ai->ai_addr, ai->ai_addrlen);
	uv_freeaddrinfo(req.addrinfo);
	return 0;
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

static int tcp_connect(uv_loop_t *loop, const struct vmig_address *a,
		       const struct vmig_conn_ops *ops, void *opaque,
		       vmig_connected_fn connected, char *err, size_t errlen)
{
	struct sockaddr_storage ss;
	struct vmig_conn *c;
	uv_connect_t *req;
	int ret;

	ret = tcp_resolve(loop, a, false, &ss, err, errlen);
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

	ret = tcp_resolve(loop, a, true, &ss, err, errlen);
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
