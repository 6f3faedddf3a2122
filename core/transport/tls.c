/*
 * tls.c: TLS 1.3 over TCP, through GnuTLS ("tls:host:port?options",
 * "tls-psk:host:port?options").
 *
 * This file owns the authenticated transports: their options (after
 * '?', "key=value" joined by '&'), the credentials they name
 * (certificates and keys in PEM files, or a pre-shared key in a file of
 * hex digits), and a connection that wraps a TCP one of stream.c: the
 * bytes TCP receives go into a ciphertext buffer GnuTLS pulls from,
 * what GnuTLS pushes is written as one TCP write per owner's write, and
 * the owner sees plaintext exactly as on TCP. A listener wraps a TCP
 * listener: an accepted connection is its owner's at once, and the
 * handshake runs when it starts reading, so the owner's handshake bound
 * covers it; a peer that fails it (plain, wrong certificate or name,
 * wrong key) ends the reading with the reason (vmig_conn_errmsg).
 *
 * tls: a destination (listen) needs cert= and key= (its certificate and
 * key); with ca= it requires a client certificate signed by that CA,
 * and with name= one for that name. A source (connect) needs ca= (the
 * destination's CA); name= is the destination's name (default: the
 * host); cert= and key= give it a client certificate.
 * tls-psk: both sides need key= (a file of hex digits, at least 32 bytes
 * of key); identity= names it (default "vmig").
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <gnutls/gnutls.h>

#include "transport.h"

#define TLS_PRIO "NORMAL:-VERS-ALL:+VERS-TLS1.3"
#define TLS_PSK_PRIO \
	"NORMAL:-VERS-ALL:+VERS-TLS1.3:-KX-ALL:+ECDHE-PSK:+DHE-PSK:+PSK"
/*
 * The ciphers first, where the processor has AES and carry-less multiply
 * instructions: AES-GCM, which GnuTLS runs with them, before ChaCha20,
 * which it does not (GnuTLS's own order put ChaCha20 first on a machine
 * that has them, and moved pages at a seventh of the speed).
 */
#define TLS_AES_FIRST \
	":-CIPHER-ALL:+AES-128-GCM:+AES-256-GCM:+CHACHA20-POLY1305"

#define IN_ROOM 65536u /* ciphertext read at most at once */
/*
 * A client's handshake is bounded here too: until it completes, the
 * connection is nobody's but this file's, so a source that gave up
 * (handshake_timeout_ms) could not close it, and its loop would wait for
 * a stalled server for good.
 */
#define TLS_HANDSHAKE_MS VMIG_DEFAULT_HANDSHAKE_TIMEOUT_MS

struct tls_opts {
	bool psk;
	char ca[256], cert[256], key[256], name[256], identity[128];
};

struct tls_conn {
	struct vmig_conn base;   /* what the owner sees */
	struct vmig_conn *tcp;   /* the TCP connection underneath */
	/* The same while it connects (its connect may be abandoned). */
	struct vmig_conn *tcp_connecting;
	gnutls_session_t sess;
	gnutls_certificate_credentials_t xcred;
	gnutls_psk_client_credentials_t pcred;
	gnutls_psk_server_credentials_t scred;
	gnutls_datum_t psk;      /* server: the key the callback returns */
	/* Its options: GnuTLS keeps pointers to the names in them. */
	struct tls_opts o;
	bool server, handshaken, reading, tcp_reading, eof, failed, closing;
	int eof_err;
	uint8_t *in;             /* ciphertext received, not yet pulled */
	size_t in_off, in_len, in_cap;
	uint8_t *out;            /* ciphertext pushed, not yet written */
	size_t out_len, out_cap;
	/* Client, until the handshake is done. */
	uv_timer_t *hs;          /* bounds it (freed by its close) */
	uv_loop_t *loop;
	vmig_connected_fn connected;
	char *cerr;
	size_t cerrlen;
};

struct tls_write {
	struct tls_conn *c;
	uint8_t *buf;
	vmig_write_fn done;
	void *opaque;
};

struct tls_listener {
	struct vmig_listener base;
	struct vmig_listener *tcp;
	struct tls_opts o;
	struct tls_conn *next;   /* made for the accept under way */
	vmig_accepted_fn accepted;
	void *opaque;
};

/* ------------------------------------------------------------------ */
/* Options                                                             */

static int opt_copy(char *dst, size_t len, const char *v, size_t n)
{
	if (!n || n >= len)
		return -EINVAL;
	memcpy(dst, v, n);
	dst[n] = '\0';
	return 0;
}

/* Parses "k=v&k=v" into o; the names the mode does not know are refused. */
static int tls_parse_opts(const char *s, struct tls_opts *o, const char *text,
			  char *err, size_t errlen)
{
	while (s && *s) {
		const char *amp = strchr(s, '&'), *eq = strchr(s, '=');
		size_t klen, vlen;
		char *dst = NULL;
		size_t dlen = 0;

		if (!amp)
			amp = s + strlen(s);
		if (!eq || eq > amp) {
			snprintf(err, errlen, "%s: option \"%.*s\" is not "
				 "key=value", text, (int)(amp - s), s);
			return -EINVAL;
		}
		klen = (size_t)(eq - s);
		vlen = (size_t)(amp - eq - 1);
#define KEY(k) (klen == strlen(k) && !memcmp(s, k, klen))
		if (KEY("key")) {
			dst = o->key;
			dlen = sizeof(o->key);
		} else if (!o->psk && KEY("ca")) {
			dst = o->ca;
			dlen = sizeof(o->ca);
		} else if (!o->psk && KEY("cert")) {
			dst = o->cert;
			dlen = sizeof(o->cert);
		} else if (!o->psk && KEY("name")) {
			dst = o->name;
			dlen = sizeof(o->name);
		} else if (o->psk && KEY("identity")) {
			dst = o->identity;
			dlen = sizeof(o->identity);
		}
#undef KEY
		if (!dst) {
			snprintf(err, errlen, "%s: unknown option \"%.*s\" "
				 "(%s)", text, (int)klen, s,
				 o->psk ? "tls-psk takes key= and identity="
					: "tls takes ca=, cert=, key= and "
					  "name=");
			return -EINVAL;
		}
		if (opt_copy(dst, dlen, eq + 1, vlen) < 0) {
			snprintf(err, errlen, "%s: option \"%.*s\": empty or "
				 "too long", text, (int)klen, s);
			return -EINVAL;
		}
		s = *amp ? amp + 1 : amp;
	}
	return 0;
}

/* "host:port?opts": the TCP part as tcp.c parses it, then the options. */
static int tls_parse_common(const char *rest, bool listen, bool psk,
			    struct vmig_address *a, char *err, size_t errlen)
{
	const char *q = strchr(rest, '?');
	struct tls_opts o = { .psk = psk };
	char hp[300];
	size_t n = q ? (size_t)(q - rest) : strlen(rest);
	int ret;

	if (n >= sizeof(hp)) {
		snprintf(err, errlen, "%s: the host is too long", a->text);
		return -EINVAL;
	}
	memcpy(hp, rest, n);
	hp[n] = '\0';
	ret = vmig_tcp_parse(hp, listen, a, err, errlen);
	if (ret < 0)
		return ret;
	if (q && strlen(q + 1) >= sizeof(a->options)) {
		snprintf(err, errlen, "%s: the options are too long", a->text);
		return -EINVAL;
	}
	snprintf(a->options, sizeof(a->options), "%s", q ? q + 1 : "");
	ret = tls_parse_opts(a->options, &o, a->text, err, errlen);
	if (ret < 0)
		return ret;
	if (!o.key[0]) {
		snprintf(err, errlen, "%s: %s", a->text,
			 psk ? "expected key=<file of the pre-shared key>"
			     : listen ? "expected cert=<file> and key=<file> "
					"(this side's certificate)"
				      : "expected ca=<file> (the "
					"destination's CA)");
		if (psk || listen || !o.ca[0])
			return -EINVAL;
	}
	if (!psk && listen && !o.cert[0]) {
		snprintf(err, errlen, "%s: expected cert=<file> and key=<file> "
			 "(this side's certificate)", a->text);
		return -EINVAL;
	}
	if (!psk && !listen && !o.ca[0]) {
		snprintf(err, errlen, "%s: expected ca=<file> (the "
			 "destination's CA)", a->text);
		return -EINVAL;
	}
	if (!psk && !listen && !o.cert[0] != !o.key[0]) {
		snprintf(err, errlen, "%s: cert= and key= go together",
			 a->text);
		return -EINVAL;
	}
	return 0;
}

static int tls_parse(const char *rest, bool listen, struct vmig_address *a,
		     char *err, size_t errlen)
{
	return tls_parse_common(rest, listen, false, a, err, errlen);
}

static int tls_psk_parse(const char *rest, bool listen,
			 struct vmig_address *a, char *err, size_t errlen)
{
	return tls_parse_common(rest, listen, true, a, err, errlen);
}

/* The options of a parsed address (checked by the parse). */
static void tls_opts_of(const struct vmig_address *a, struct tls_opts *o)
{
	char err[16];

	memset(o, 0, sizeof(*o));
	o->psk = !strcmp(a->t->scheme, "tls-psk");
	tls_parse_opts(a->options, o, a->text, err, sizeof(err));
	if (o->psk && !o->identity[0])
		snprintf(o->identity, sizeof(o->identity), "vmig");
	if (!o->psk && !o->name[0])
		snprintf(o->name, sizeof(o->name), "%s", a->host);
}

/* ------------------------------------------------------------------ */
/* GnuTLS's transport: the buffers                                     */

static ssize_t tls_push(gnutls_transport_ptr_t p, const void *data,
			size_t len)
{
	struct tls_conn *c = p;

	if (c->out_len + len > c->out_cap) {
		size_t cap = (c->out_len + len) * 2;
		uint8_t *n = realloc(c->out, cap);

		if (!n) {
			gnutls_transport_set_errno(c->sess, ENOMEM);
			return -1;
		}
		c->out = n;
		c->out_cap = cap;
	}
	memcpy(c->out + c->out_len, data, len);
	c->out_len += len;
	return (ssize_t)len;
}

static ssize_t tls_pull(gnutls_transport_ptr_t p, void *data, size_t len)
{
	struct tls_conn *c = p;
	size_t n = c->in_len - c->in_off;

	if (!n) {
		if (c->eof)
			return 0;
		gnutls_transport_set_errno(c->sess, EAGAIN);
		return -1;
	}
	if (n > len)
		n = len;
	memcpy(data, c->in + c->in_off, n);
	c->in_off += n;
	return (ssize_t)n;
}

static void tls_written(void *opaque, int status)
{
	struct tls_write *w = opaque;

	if (w->done)
		w->done(w->opaque, status);
	free(w->buf);
	free(w);
}

/* Writes what GnuTLS pushed; done(opaque) once it is on the socket. */
static int tls_flush(struct tls_conn *c, vmig_write_fn done, void *opaque)
{
	struct vmig_iov iov;
	struct tls_write *w;
	int ret;

	if (!c->out_len)
		return 0;
	w = malloc(sizeof(*w));
	if (!w)
		return -ENOMEM;
	w->c = c;
	w->buf = c->out;
	w->done = done;
	w->opaque = opaque;
	iov.base = c->out;
	iov.len = c->out_len;
	c->out = NULL;
	c->out_len = c->out_cap = 0;
	ret = vmig_conn_write(c->tcp, &iov, 1, tls_written, w);
	if (ret < 0) {
		free(w->buf);
		free(w);
	}
	return ret;
}

/* ------------------------------------------------------------------ */
/* The session                                                         */

static int tls_psk_lookup(gnutls_session_t s, const char *user,
			  gnutls_datum_t *key)
{
	struct tls_conn *c = gnutls_session_get_ptr(s);

	(void)user;
	key->data = gnutls_malloc(c->psk.size);
	if (!key->data)
		return -1;
	memcpy(key->data, c->psk.data, c->psk.size);
	key->size = c->psk.size;
	return 0;
}

/* Reads a file of hex digits (whitespace around it) as the key. */
static int tls_read_psk(const char *path, gnutls_datum_t *key, char *err,
			size_t errlen)
{
	char buf[1024], *p, *e;
	gnutls_datum_t hex;
	size_t n, len = 0;
	FILE *f = fopen(path, "r");

	if (!f) {
		snprintf(err, errlen, "tls-psk: %s: %s", path, strerror(errno));
		return -errno;
	}
	n = fread(buf, 1, sizeof(buf) - 1, f);
	fclose(f);
	buf[n] = '\0';
	for (p = buf; *p == ' ' || *p == '\n' || *p == '\t'; p++)
		;
	for (e = p; (*e >= '0' && *e <= '9') || (*e >= 'a' && *e <= 'f') ||
		    (*e >= 'A' && *e <= 'F');
	     e++)
		len++;
	if (len < 64 || len % 2) {
		snprintf(err, errlen, "tls-psk: %s: expected at least 64 hex "
			 "digits (32 bytes of key)", path);
		return -EINVAL;
	}
	hex.data = (unsigned char *)p;
	hex.size = (unsigned int)len;
	if (gnutls_hex_decode2(&hex, key) < 0) {
		snprintf(err, errlen, "tls-psk: %s: not hex digits", path);
		return -EINVAL;
	}
	return 0;
}

static void tls_hs_freed(uv_handle_t *h)
{
	free(h);
}

/* The client's handshake is over (done, failed, or the conn freed). */
static void tls_hs_stop(struct tls_conn *c)
{
	if (!c->hs)
		return;
	uv_timer_stop(c->hs);
	c->hs->data = NULL;
	uv_close((uv_handle_t *)c->hs, tls_hs_freed);
	c->hs = NULL;
}

static void tls_free(struct tls_conn *c)
{
	tls_hs_stop(c);
	if (c->sess)
		gnutls_deinit(c->sess);
	if (c->xcred)
		gnutls_certificate_free_credentials(c->xcred);
	if (c->pcred)
		gnutls_psk_free_client_credentials(c->pcred);
	if (c->scred)
		gnutls_psk_free_server_credentials(c->scred);
	gnutls_free(c->psk.data);
	free(c->in);
	free(c->out);
	free(c);
}

/* The priority string prio, with AES-GCM first where that is faster. */
static int tls_priority(gnutls_session_t sess, const char *prio)
{
	char buf[256];

#if defined(__x86_64__)
	__builtin_cpu_init();
	if (__builtin_cpu_supports("aes") && __builtin_cpu_supports("pclmul")) {
		snprintf(buf, sizeof(buf), "%s%s", prio, TLS_AES_FIRST);
		prio = buf;
	}
#else
	(void)buf;
#endif
	return gnutls_priority_set_direct(sess, prio, NULL);
}

/* The session of one side, its credentials from o. */
static int tls_session(struct tls_conn *c, const struct tls_opts *opts,
		       bool server, char *err, size_t errlen)
{
	const struct tls_opts *o = &c->o;
	const char *what = "tls";
	int ret;

	c->o = *opts;
	c->server = server;
	ret = gnutls_init(&c->sess, (server ? GNUTLS_SERVER : GNUTLS_CLIENT) |
					    GNUTLS_NONBLOCK);
	if (ret < 0)
		goto bad;
	gnutls_session_set_ptr(c->sess, c);
	gnutls_transport_set_ptr(c->sess, c);
	gnutls_transport_set_push_function(c->sess, tls_push);
	gnutls_transport_set_pull_function(c->sess, tls_pull);
	if (o->psk) {
		what = "tls-psk";
		ret = tls_read_psk(o->key, &c->psk, err, errlen);
		if (ret < 0)
			return ret;
		ret = tls_priority(c->sess, TLS_PSK_PRIO);
		if (ret < 0)
			goto bad;
		if (server) {
			ret = gnutls_psk_allocate_server_credentials(&c->scred);
			if (ret < 0)
				goto bad;
			gnutls_psk_set_server_credentials_function(
				c->scred, tls_psk_lookup);
			ret = gnutls_credentials_set(c->sess, GNUTLS_CRD_PSK,
						     c->scred);
		} else {
			ret = gnutls_psk_allocate_client_credentials(&c->pcred);
			if (ret == 0)
				ret = gnutls_psk_set_client_credentials(
					c->pcred, o->identity, &c->psk,
					GNUTLS_PSK_KEY_RAW);
			if (ret == 0)
				ret = gnutls_credentials_set(
					c->sess, GNUTLS_CRD_PSK, c->pcred);
		}
		if (ret < 0)
			goto bad;
		return 0;
	}
	ret = tls_priority(c->sess, TLS_PRIO);
	if (ret == 0)
		ret = gnutls_certificate_allocate_credentials(&c->xcred);
	if (ret < 0)
		goto bad;
	if (o->ca[0]) {
		ret = gnutls_certificate_set_x509_trust_file(
			c->xcred, o->ca, GNUTLS_X509_FMT_PEM);
		if (ret <= 0) {
			snprintf(err, errlen, "tls: ca=%s: %s", o->ca,
				 ret < 0 ? gnutls_strerror(ret)
					 : "no certificate in it");
			return -EINVAL;
		}
	}
	if (o->cert[0]) {
		ret = gnutls_certificate_set_x509_key_file(
			c->xcred, o->cert, o->key, GNUTLS_X509_FMT_PEM);
		if (ret < 0) {
			snprintf(err, errlen, "tls: cert=%s, key=%s: %s",
				 o->cert, o->key, gnutls_strerror(ret));
			return -EINVAL;
		}
	}
	ret = gnutls_credentials_set(c->sess, GNUTLS_CRD_CERTIFICATE,
				     c->xcred);
	if (ret < 0)
		goto bad;
	if (!server) {
		gnutls_server_name_set(c->sess, GNUTLS_NAME_DNS, o->name,
				       strlen(o->name));
		gnutls_session_set_verify_cert(c->sess, o->name, 0);
	} else if (o->ca[0]) {
		/* A client certificate is required, from that CA. */
		gnutls_certificate_server_set_request(c->sess,
						      GNUTLS_CERT_REQUIRE);
		gnutls_session_set_verify_cert(c->sess,
					       o->name[0] ? o->name : NULL, 0);
	}
	return 0;
bad:
	snprintf(err, errlen, "%s: %s", what, gnutls_strerror(ret));
	return -EINVAL;
}

/* Why a handshake failed, in words. */
static void tls_why(struct tls_conn *c, int ret, char *buf, size_t len)
{
	const char *peer = c->base.peer[0] ? c->base.peer : "?";
	bool psk = c->pcred || c->scred;
	unsigned int status;
	gnutls_datum_t out = { NULL, 0 };

	if (ret == GNUTLS_E_CERTIFICATE_VERIFICATION_ERROR) {
		status = gnutls_session_get_verify_cert_status(c->sess);
		if (gnutls_certificate_verification_status_print(
			    status, GNUTLS_CRT_X509, &out, 0) == 0) {
			snprintf(buf, len, "tls: handshake with %s refused: "
				 "the peer's certificate: %s",
				 peer, out.data);
			gnutls_free(out.data);
			return;
		}
	}
	snprintf(buf, len, "tls: handshake with %s failed: %s%s", peer,
		 gnutls_strerror(ret),
		 ret == GNUTLS_E_UNEXPECTED_PACKET_LENGTH ||
				 ret == GNUTLS_E_UNEXPECTED_PACKET
			 ? " (a peer without TLS?)"
		 : psk && (ret == GNUTLS_E_RECEIVED_ILLEGAL_PARAMETER ||
			   ret == GNUTLS_E_DECRYPTION_FAILED ||
			   ret == GNUTLS_E_WARNING_ALERT_RECEIVED ||
			   ret == GNUTLS_E_FATAL_ALERT_RECEIVED)
			 ? " (not the same pre-shared key?)"
			 : "");
}

/* ------------------------------------------------------------------ */
/* Progress: the handshake, then plaintext to the owner                */

static void tls_fail(struct tls_conn *c, int err)
{
	tls_hs_stop(c);
	c->failed = true;
	if (!c->server && !c->handshaken && c->connected) {
		vmig_connected_fn fn = c->connected;

		c->connected = NULL;
		if (c->cerr)
			snprintf(c->cerr, c->cerrlen, "%s", c->base.err);
		fn(c->base.opaque, NULL, err);
		/* Nobody owns it: closing it frees it, silently. */
		c->base.ops = NULL;
		vmig_conn_close(c->tcp);
		return;
	}
	if (c->reading) {
		c->reading = false;
		c->base.ops->read_end(c->base.opaque, err);
	}
}

static void tls_progress(struct tls_conn *c)
{
	ssize_t r;
	int ret;

	if (c->failed || c->closing)
		return;
	if (!c->handshaken) {
		ret = gnutls_handshake(c->sess);
		tls_flush(c, NULL, NULL);
		if (ret == GNUTLS_E_AGAIN || ret == GNUTLS_E_INTERRUPTED) {
			if (c->eof) {
				snprintf(c->base.err, sizeof(c->base.err),
					 "tls: %s closed the connection during "
					 "the handshake",
					 c->tcp->peer);
				tls_fail(c, c->eof_err ? c->eof_err
						       : -ECONNRESET);
			}
			return;
		}
		if (ret < 0) {
			tls_why(c, ret, c->base.err, sizeof(c->base.err));
			tls_fail(c, -EACCES);
			return;
		}
		c->handshaken = true;
		tls_hs_stop(c);
		if (!c->server && c->connected) {
			vmig_connected_fn fn = c->connected;

			c->connected = NULL;
			fn(c->base.opaque, &c->base, 0);
		}
	}
	while (c->reading && !c->failed && !c->closing) {
		void *p = NULL;
		size_t len = 0;

		c->base.ops->read_buf(c->base.opaque, &p, &len);
		r = gnutls_record_recv(c->sess, p, len);
		if (r > 0) {
			c->base.ops->read_done(c->base.opaque, (size_t)r);
			continue;
		}
		if (r == GNUTLS_E_AGAIN || r == GNUTLS_E_INTERRUPTED) {
			if (c->eof) {
				c->reading = false;
				c->base.ops->read_end(c->base.opaque,
						      c->eof_err);
			}
			return;
		}
		if (r == 0) {
			c->reading = false;
			c->base.ops->read_end(c->base.opaque, 0);
			return;
		}
		snprintf(c->base.err, sizeof(c->base.err), "tls: %s: %s",
			 c->tcp->peer, gnutls_strerror((int)r));
		tls_fail(c, -EPROTO);
		return;
	}
}

/* TCP's callbacks. */

static void tls_tcp_read_buf(void *opaque, void **buf, size_t *len)
{
	struct tls_conn *c = opaque;

	if (c->in_off == c->in_len)
		c->in_off = c->in_len = 0;
	if (c->in_cap - c->in_len < IN_ROOM) {
		size_t cap = c->in_len + IN_ROOM;
		uint8_t *n;

		if (c->in_off) {
			memmove(c->in, c->in + c->in_off,
				c->in_len - c->in_off);
			c->in_len -= c->in_off;
			c->in_off = 0;
		}
		n = c->in_cap >= c->in_len + IN_ROOM ? c->in
						      : realloc(c->in, cap);
		if (n) {
			c->in = n;
			if (c->in_cap < cap)
				c->in_cap = cap;
		}
	}
	*buf = c->in + c->in_len;
	*len = c->in_cap - c->in_len;
}

static void tls_tcp_read_done(void *opaque, size_t n)
{
	struct tls_conn *c = opaque;

	c->in_len += n;
	tls_progress(c);
}

static void tls_tcp_read_end(void *opaque, int err)
{
	struct tls_conn *c = opaque;

	c->eof = true;
	c->eof_err = err;
	tls_progress(c);
}

static void tls_tcp_closed(void *opaque)
{
	struct tls_conn *c = opaque;

	if (c->base.ops && c->base.ops->closed)
		c->base.ops->closed(c->base.opaque);
	tls_free(c);
}

/*
 * The TCP connect began: from now the owner may abandon the whole
 * connect, TCP and handshake (tls_close before its connected() ran).
 */
static void tls_tcp_connecting(void *opaque, struct vmig_conn *tcp)
{
	struct tls_conn *c = opaque;

	c->tcp_connecting = tcp;
	if (c->base.ops && c->base.ops->connecting)
		c->base.ops->connecting(c->base.opaque, &c->base);
}

static const struct vmig_conn_ops tls_tcp_ops = {
	.read_buf = tls_tcp_read_buf,
	.read_done = tls_tcp_read_done,
	.read_end = tls_tcp_read_end,
	.closed = tls_tcp_closed,
	.connecting = tls_tcp_connecting,
};

/* The owner's calls. */

static int tls_read_start(struct vmig_conn *conn)
{
	struct tls_conn *c = (struct tls_conn *)conn;
	int ret;

	c->reading = true;
	if (!c->tcp_reading) {
		c->tcp_reading = true;
		ret = vmig_conn_read_start(c->tcp);
		if (ret < 0)
			return ret;
	}
	/* A server starts its handshake here: the owner's bound runs. */
	if (c->server && !c->handshaken)
		tls_progress(c);
	return 0;
}

static void tls_read_stop(struct vmig_conn *conn)
{
	((struct tls_conn *)conn)->reading = false;
}

static int tls_write(struct vmig_conn *conn, const struct vmig_iov *iov,
		     unsigned int n, vmig_write_fn done, void *opaque)
{
	struct tls_conn *c = (struct tls_conn *)conn;
	unsigned int i;

	if (c->closing)
		return -ECANCELED;
	if (!c->handshaken || c->failed)
		return -ENOTCONN;
	for (i = 0; i < n; i++) {
		const uint8_t *p = iov[i].base;
		size_t left = iov[i].len;

		while (left) {
			ssize_t r = gnutls_record_send(c->sess, p, left);

			if (r == GNUTLS_E_AGAIN || r == GNUTLS_E_INTERRUPTED)
				continue;
			if (r < 0)
				return r == GNUTLS_E_MEMORY_ERROR ? -ENOMEM
								  : -EPROTO;
			p += r;
			left -= (size_t)r;
		}
	}
	return tls_flush(c, done, opaque);
}

static void tls_close(struct vmig_conn *conn)
{
	struct tls_conn *c = (struct tls_conn *)conn;

	if (c->closing)
		return;
	c->closing = true;
	c->reading = false;
	if (!c->server && !c->handshaken && c->connected) {
		/*
		 * Abandoned while connecting: connected() runs with
		 * -ECANCELED, from the TCP connect's end (which frees c) or
		 * from here during the handshake (c goes with its TCP).
		 */
		if (!c->tcp) {
			vmig_conn_close(c->tcp_connecting);
			return;
		}
		snprintf(c->base.err, sizeof(c->base.err),
			 "tls: the handshake with %s was abandoned",
			 c->base.peer);
		tls_fail(c, -ECANCELED);
		return;
	}
	vmig_conn_close(c->tcp);
}

static const struct vmig_conn_class tls_conn_class = {
	.read_start = tls_read_start,
	.read_stop = tls_read_stop,
	.write = tls_write,
	.close = tls_close,
};

static struct tls_conn *tls_conn_new(const struct vmig_conn_ops *ops,
				     void *opaque)
{
	struct tls_conn *c = calloc(1, sizeof(*c));

	if (!c)
		return NULL;
	c->base.cls = &tls_conn_class;
	c->base.ops = ops;
	c->base.opaque = opaque;
	return c;
}

/* "tcp:..." as "tls:..." (the peer's address, for messages). */
static void tls_peer(struct tls_conn *c, const char *scheme)
{
	const char *tcp = c->tcp ? c->tcp->peer : "";

	snprintf(c->base.peer, sizeof(c->base.peer), "%s:%.*s", scheme,
		 (int)(sizeof(c->base.peer) - 9),
		 !strncmp(tcp, "tcp:", 4) ? tcp + 4 : tcp);
}

/* ------------------------------------------------------------------ */
/* Connecting                                                          */

static void tls_hs_expired(uv_timer_t *t)
{
	struct tls_conn *c = t->data;

	if (!c)
		return;
	snprintf(c->base.err, sizeof(c->base.err),
		 "tls: %s did not complete the handshake in %u ms",
		 c->base.peer, (unsigned int)TLS_HANDSHAKE_MS);
	tls_fail(c, -ETIMEDOUT);
}

static void tls_tcp_connected(void *opaque, struct vmig_conn *tcp, int err)
{
	struct tls_conn *c = opaque;
	vmig_connected_fn fn = c->connected;
	int ret;

	if (err < 0) {
		/* The TCP message is in the owner's buffer already. */
		c->connected = NULL;
		fn(c->base.opaque, NULL, err);
		tls_free(c);
		return;
	}
	c->tcp = tcp;
	tls_peer(c, c->pcred ? "tls-psk" : "tls");
	c->hs = malloc(sizeof(*c->hs));
	if (c->hs) {
		uv_timer_init(c->loop, c->hs);
		c->hs->data = c;
		uv_timer_start(c->hs, tls_hs_expired, TLS_HANDSHAKE_MS, 0);
	}
	c->tcp_reading = true;
	ret = vmig_conn_read_start(tcp);
	if (ret < 0) {
		snprintf(c->base.err, sizeof(c->base.err), "tls: %s: %s",
			 tcp->peer, uv_strerror(ret));
		tls_fail(c, ret);
		return;
	}
	tls_progress(c);
}

static int tls_connect(uv_loop_t *loop, const struct vmig_address *a,
		       const struct vmig_conn_ops *ops, void *opaque,
		       vmig_connected_fn connected, char *err, size_t errlen)
{
	struct tls_opts o;
	struct tls_conn *c;
	int ret;

	tls_opts_of(a, &o);
	c = tls_conn_new(ops, opaque);
	if (!c) {
		snprintf(err, errlen, "connect %s: out of memory", a->text);
		return -ENOMEM;
	}
	ret = tls_session(c, &o, false, err, errlen);
	if (ret < 0) {
		tls_free(c);
		return ret;
	}
	c->connected = connected;
	c->cerr = err;
	c->cerrlen = errlen;
	c->loop = loop;
	ret = vmig_transport_tcp.connect(loop, a, &tls_tcp_ops, c,
					 tls_tcp_connected, err, errlen);
	if (ret < 0)
		tls_free(c);
	return ret;
}

/* ------------------------------------------------------------------ */
/* Listening                                                           */

static void tls_inner_accepted(void *opaque, struct vmig_conn *tcp, int err)
{
	struct tls_listener *l = opaque;
	struct tls_conn *c = l->next;
	vmig_accepted_fn fn = l->accepted;

	l->next = NULL;
	l->accepted = NULL;
	if (err < 0) {
		tls_free(c);
		fn(l->opaque, NULL, err);
		return;
	}
	c->tcp = tcp;
	tls_peer(c, l->o.psk ? "tls-psk" : "tls");
	fn(l->opaque, &c->base, 0);
}

static int tls_accept(struct vmig_listener *base,
		      const struct vmig_conn_ops *ops, void *conn_opaque,
		      vmig_accepted_fn accepted, void *opaque)
{
	struct tls_listener *l = (struct tls_listener *)base;
	char err[256];
	int ret;

	if (l->next) {
		tls_free(l->next);
		l->next = NULL;
	}
	l->accepted = accepted;
	l->opaque = opaque;
	if (!accepted)
		return l->tcp->cls->accept(l->tcp, NULL, NULL, NULL, NULL);
	l->next = tls_conn_new(ops, conn_opaque);
	if (!l->next)
		return -ENOMEM;
	ret = tls_session(l->next, &l->o, true, err, sizeof(err));
	if (ret < 0) {
		tls_free(l->next);
		l->next = NULL;
		return ret;
	}
	return l->tcp->cls->accept(l->tcp, &tls_tcp_ops, l->next,
				   tls_inner_accepted, l);
}

static void tls_listener_close(struct vmig_listener *base)
{
	struct tls_listener *l = (struct tls_listener *)base;

	if (l->next)
		tls_free(l->next);
	vmig_listener_close(l->tcp);
	free(l);
}

static const struct vmig_listener_class tls_listener_class = {
	.accept = tls_accept,
	.close = tls_listener_close,
};

static int tls_listen(uv_loop_t *loop, const struct vmig_address *a,
		      struct vmig_listener **out, char *err, size_t errlen)
{
	struct tls_listener *l = calloc(1, sizeof(*l));
	struct tls_conn probe = { 0 };
	int ret;

	if (!l) {
		snprintf(err, errlen, "listen %s: out of memory", a->text);
		return -ENOMEM;
	}
	l->base.cls = &tls_listener_class;
	tls_opts_of(a, &l->o);
	/* The credentials are read now: a bad file is a listen error. */
	ret = tls_session(&probe, &l->o, true, err, errlen);
	if (probe.sess)
		gnutls_deinit(probe.sess);
	if (probe.xcred)
		gnutls_certificate_free_credentials(probe.xcred);
	if (probe.scred)
		gnutls_psk_free_server_credentials(probe.scred);
	gnutls_free(probe.psk.data);
	if (ret < 0) {
		free(l);
		return ret;
	}
	ret = vmig_transport_tcp.listen(loop, a, &l->tcp, err, errlen);
	if (ret < 0) {
		free(l);
		return ret;
	}
	/* The options are this side's: a source gives its own. */
	snprintf(l->base.bound, sizeof(l->base.bound), "%s:%.*s",
		 a->t->scheme, (int)(sizeof(l->base.bound) - 9),
		 l->tcp->bound + 4);
	*out = &l->base;
	return 0;
}

const struct vmig_transport vmig_transport_tls = {
	.scheme = "tls",
	.parse = tls_parse,
	.connect = tls_connect,
	.listen = tls_listen,
};

const struct vmig_transport vmig_transport_tls_psk = {
	.scheme = "tls-psk",
	.parse = tls_psk_parse,
	.connect = tls_connect,
	.listen = tls_listen,
};
