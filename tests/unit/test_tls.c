/*
 * test_tls.c: migrations over the authenticated transports (tls.c),
 * between two threads over TCP on loopback.
 *
 * The certificates are made here with GnuTLS at test time (a CA, the
 * destination's certificate for "vmig-dst", a client certificate for
 * "vmig-src", and one of another CA), in a scratch directory. A
 * migration completes with server authentication, with client
 * authentication and a required peer name, and with a pre-shared key.
 * A destination that requires authentication refuses a plain TCP
 * source, a source with a wrong key, one without a client certificate
 * and one whose certificate another CA signed (GnuTLS does not even send
 * it, the destination's request naming its CA): each with a message that
 * says TLS refused it, the guest not started and not one byte of its
 * memory written.
 */
#include <arpa/inet.h>
#include <errno.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include <gnutls/gnutls.h>
#include <gnutls/x509.h>
#include <vmig/vmig.h>

#include "testutil.h"
#include "common/vmmcount.h"

#define PG 4096u
#define LEN (64u * PG)

static char dir[64];

/* ------------------------------------------------------------------ */
/* Certificates and keys                                               */

static void save(const char *name, const gnutls_datum_t *d)
{
	char path[128];
	FILE *f;

	snprintf(path, sizeof(path), "%s/%s", dir, name);
	f = fopen(path, "w");
	CU_ASSERT_FATAL(f != NULL);
	CU_ASSERT_FATAL(fwrite(d->data, 1, d->size, f) == d->size);
	fclose(f);
}

struct ident {
	gnutls_x509_privkey_t key;
	gnutls_x509_crt_t crt;
};

/* A key and a certificate for cn, signed by ca (NULL: by itself). */
static void make(struct ident *id, const char *cn, const struct ident *ca,
		 const char *file)
{
	static unsigned char serial = 1;
	gnutls_datum_t d;
	char name[64];

	CU_ASSERT_FATAL(gnutls_x509_privkey_init(&id->key) == 0);
	CU_ASSERT_FATAL(gnutls_x509_privkey_generate(
				id->key, GNUTLS_PK_ECDSA,
				GNUTLS_CURVE_TO_BITS(GNUTLS_ECC_CURVE_SECP256R1),
				0) == 0);
	CU_ASSERT_FATAL(gnutls_x509_crt_init(&id->crt) == 0);
	gnutls_x509_crt_set_version(id->crt, 3);
	serial++;
	gnutls_x509_crt_set_serial(id->crt, &serial, 1);
	gnutls_x509_crt_set_activation_time(id->crt, time(NULL) - 3600);
	gnutls_x509_crt_set_expiration_time(id->crt, time(NULL) + 86400);
	gnutls_x509_crt_set_dn_by_oid(id->crt, GNUTLS_OID_X520_COMMON_NAME, 0,
				      cn, (unsigned int)strlen(cn));
	gnutls_x509_crt_set_key(id->crt, id->key);
	if (!ca) {
		gnutls_x509_crt_set_basic_constraints(id->crt, 1, -1);
		gnutls_x509_crt_set_key_usage(id->crt,
					      GNUTLS_KEY_KEY_CERT_SIGN |
						      GNUTLS_KEY_CRL_SIGN);
	} else {
		gnutls_x509_crt_set_basic_constraints(id->crt, 0, -1);
		gnutls_x509_crt_set_key_usage(id->crt,
					      GNUTLS_KEY_DIGITAL_SIGNATURE);
		gnutls_x509_crt_set_subject_alt_name(
			id->crt, GNUTLS_SAN_DNSNAME, cn,
			(unsigned int)strlen(cn), GNUTLS_FSAN_SET);
		gnutls_x509_crt_set_key_purpose_oid(id->crt,
						    GNUTLS_KP_TLS_WWW_SERVER,
						    0);
		gnutls_x509_crt_set_key_purpose_oid(id->crt,
						    GNUTLS_KP_TLS_WWW_CLIENT,
						    0);
	}
	CU_ASSERT_FATAL(gnutls_x509_crt_sign2(id->crt, ca ? ca->crt : id->crt,
					      ca ? ca->key : id->key,
					      GNUTLS_DIG_SHA256, 0) == 0);
	CU_ASSERT_FATAL(gnutls_x509_crt_export2(id->crt, GNUTLS_X509_FMT_PEM,
						&d) == 0);
	snprintf(name, sizeof(name), "%s.pem", file);
	save(name, &d);
	gnutls_free(d.data);
	CU_ASSERT_FATAL(gnutls_x509_privkey_export2(id->key,
						    GNUTLS_X509_FMT_PEM,
						    &d) == 0);
	snprintf(name, sizeof(name), "%s.key", file);
	save(name, &d);
	gnutls_free(d.data);
}

static void unmake(struct ident *id)
{
	gnutls_x509_crt_deinit(id->crt);
	gnutls_x509_privkey_deinit(id->key);
}

static void save_text(const char *name, const char *text)
{
	gnutls_datum_t d = { (unsigned char *)text, (unsigned int)strlen(text) };

	save(name, &d);
}

/* The files, made by the first test that needs them. */
static void certificates(void)
{
	struct ident ca, other, dst, src, stranger;
	static bool made;

	if (made)
		return;
	made = true;
	make(&ca, "vmig test CA", NULL, "ca");
	make(&other, "another CA", NULL, "other-ca");
	make(&dst, "vmig-dst", &ca, "dst");
	make(&src, "vmig-src", &ca, "src");
	make(&stranger, "vmig-src", &other, "stranger");
	unmake(&ca);
	unmake(&other);
	unmake(&dst);
	unmake(&src);
	unmake(&stranger);
	save_text("psk", "8f2b6c1d0e9a7b3c5d4e6f708192a3b4"
			 "c5d6e7f8091a2b3c4d5e6f7081920a1b\n");
	save_text("wrong-psk", "00112233445566778899aabbccddeeff"
			       "00112233445566778899aabbccddeeff\n");
}

static int suite_init(void)
{
	snprintf(dir, sizeof(dir), "/tmp/vmig-tls-XXXXXX");
	return mkdtemp(dir) ? 0 : 1;
}

static int suite_clean(void)
{
	static const char *const files[] = {
		"ca.pem", "ca.key", "other-ca.pem", "other-ca.key",
		"dst.pem", "dst.key", "src.pem", "src.key", "stranger.pem",
		"stranger.key", "psk", "wrong-psk",
	};
	char path[128];
	size_t i;

	for (i = 0; i < sizeof(files) / sizeof(files[0]); i++) {
		snprintf(path, sizeof(path), "%s/%s", dir, files[i]);
		unlink(path);
	}
	rmdir(dir);
	return 0;
}

/* ------------------------------------------------------------------ */
/* Two sides                                                           */

struct side {
	vmig_session *s;
	struct vmig_vmm_count vmm;
	uint8_t *mem;
	int ret;
	char msg[1024];
};

/* The source's policy "connections" in the next migrate() (0: none). */
static uint32_t src_connections;

static void side_new(struct side *sd, int role)
{
	struct vmig_policies pol = { .size = sizeof(pol),
				     .connections = src_connections };

	memset(sd, 0, sizeof(*sd));
	sd->s = vmig_test_ram_session(role, LEN, role == VMIG_ROLE_SOURCE,
				      &sd->vmm, &sd->mem);
	if (role == VMIG_ROLE_SOURCE)
		CU_ASSERT_FATAL(vmig_set_policies(sd->s, &pol) == 0);
}

static void side_free(struct side *sd)
{
	vmig_test_ram_free(sd->s, sd->mem, LEN);
}

static void *receive_main(void *opaque)
{
	struct side *sd = opaque;

	sd->ret = vmig_receive(sd->s);
	snprintf(sd->msg, sizeof(sd->msg), "%s", vmig_errmsg(sd->s));
	return NULL;
}

static bool untouched(const struct side *sd)
{
	size_t i;

	for (i = 0; i < LEN; i++)
		if (sd->mem[i])
			return false;
	return true;
}

/*
 * Migrates over the destination's listen address (dst_opts after
 * "<scheme>:127.0.0.1:0?") and the source's (src_scheme and src_opts to
 * the port bound). Returns the source's result; the sides stay for the
 * caller to check and free.
 */
static int migrate(struct side *src, struct side *dst, const char *scheme,
		   const char *dst_opts, const char *src_scheme,
		   const char *src_opts)
{
	char laddr[512], bound[160], caddr[512];
	const char *port;
	pthread_t th;
	int ret;

	certificates();
	side_new(src, VMIG_ROLE_SOURCE);
	side_new(dst, VMIG_ROLE_DESTINATION);
	snprintf(laddr, sizeof(laddr), "%s:127.0.0.1:0?%s", scheme, dst_opts);
	CU_ASSERT_FATAL(vmig_listen(dst->s, laddr, bound, sizeof(bound)) ==
			0);
	CU_ASSERT(has(bound, scheme));
	port = strrchr(bound, ':');
	CU_ASSERT_FATAL(port != NULL);
	snprintf(caddr, sizeof(caddr), "%s:127.0.0.1%s%s%s", src_scheme, port,
		 src_opts[0] ? "?" : "", src_opts);
	CU_ASSERT_FATAL(pthread_create(&th, NULL, receive_main, dst) == 0);
	ret = vmig_migrate(src->s, caddr);
	snprintf(src->msg, sizeof(src->msg), "%s", vmig_errmsg(src->s));
	pthread_join(th, NULL);
	return ret;
}

/* A file of the scratch directory (four at a time). */
static const char *at(const char *name)
{
	static char paths[4][128];
	static unsigned int next;
	char *p = paths[next++ % 4];

	snprintf(p, 128, "%s/%s", dir, name);
	return p;
}

static void check_completed(struct side *src, struct side *dst, int ret)
{
	if (ret || dst->ret)
		fprintf(stderr, "\n  source: %s\n  destination: %s\n",
			src->msg, dst->msg);
	CU_ASSERT_EQUAL(ret, 0);
	CU_ASSERT_EQUAL(dst->ret, 0);
	CU_ASSERT_EQUAL(atomic_load(&src->vmm.stops), 1);
	CU_ASSERT_EQUAL(atomic_load(&src->vmm.resumes), 0);
	CU_ASSERT_EQUAL(atomic_load(&dst->vmm.starts), 1);
	CU_ASSERT(memcmp(src->mem, dst->mem, LEN) == 0);
}

/* Refused before a byte of the stream: nothing ran, nothing written. */
static void check_refused(struct side *src, struct side *dst, int ret)
{
	CU_ASSERT(ret < 0);
	CU_ASSERT(dst->ret < 0);
	CU_ASSERT_EQUAL(atomic_load(&src->vmm.stops), 0);
	CU_ASSERT_EQUAL(atomic_load(&dst->vmm.starts), 0);
	CU_ASSERT(untouched(dst));
	CU_ASSERT(has(dst->msg, "the guest was not started here"));
}

/* Migrates as migrate() does, checks that it completed, frees the sides. */
static void completes(const char *scheme, const char *dst_opts,
		      const char *src_scheme, const char *src_opts)
{
	struct side src, dst;
	int ret;

	ret = migrate(&src, &dst, scheme, dst_opts, src_scheme, src_opts);
	check_completed(&src, &dst, ret);
	side_free(&src);
	side_free(&dst);
}

/*
 * Migrates as migrate() does, checks that it was refused, the
 * destination's message with dst_says and the source's with src_says
 * (each unless NULL), and frees the sides.
 */
static void refused(const char *scheme, const char *dst_opts,
		    const char *src_scheme, const char *src_opts,
		    const char *dst_says, const char *src_says)
{
	struct side src, dst;
	int ret;

	ret = migrate(&src, &dst, scheme, dst_opts, src_scheme, src_opts);
	check_refused(&src, &dst, ret);
	if (dst_says)
		CU_ASSERT(has(dst.msg, dst_says));
	if (src_says)
		CU_ASSERT(has(src.msg, src_says));
	side_free(&src);
	side_free(&dst);
}

static void test_certificates(void)
{
	char d[512], s[512];

	snprintf(d, sizeof(d), "cert=%s&key=%s", at("dst.pem"), at("dst.key"));
	snprintf(s, sizeof(s), "ca=%s&name=vmig-dst", at("ca.pem"));
	completes("tls", d, "tls", s);
}

static void test_client_certificates(void)
{
	char d[512], s[512];

	snprintf(d, sizeof(d), "cert=%s&key=%s&ca=%s&name=vmig-src", at("dst.pem"), at("dst.key"), at("ca.pem"));
	snprintf(s, sizeof(s), "ca=%s&name=vmig-dst&cert=%s&key=%s", at("ca.pem"), at("src.pem"), at("src.key"));
	completes("tls", d, "tls", s);

	/* Without a client certificate: refused. */
	snprintf(s, sizeof(s), "ca=%s&name=vmig-dst", at("ca.pem"));
	refused("tls", d, "tls", s, "tls: handshake with tls:127.0.0.1:",
		NULL);

	/* A certificate of another CA: refused. */
	snprintf(s, sizeof(s), "ca=%s&name=vmig-dst&cert=%s&key=%s", at("ca.pem"), at("stranger.pem"), at("stranger.key"));
	refused("tls", d, "tls", s, "tls: handshake with tls:127.0.0.1:",
		NULL);
}

static void test_wrong_server_name(void)
{
	struct side src, dst;
	char d[512], s[512];
	int ret;

	snprintf(d, sizeof(d), "cert=%s&key=%s", at("dst.pem"), at("dst.key"));
	snprintf(s, sizeof(s), "ca=%s&name=somebody-else", at("ca.pem"));
	ret = migrate(&src, &dst, "tls", d, "tls", s);
	check_refused(&src, &dst, ret);
	CU_ASSERT(has(src.msg, "tls: handshake with"));
	CU_ASSERT(has(src.msg, "certificate"));
	side_free(&src);
	side_free(&dst);
}

static void test_psk(void)
{
	char d[512], s[512];

	snprintf(d, sizeof(d), "key=%s", at("psk"));
	snprintf(s, sizeof(s), "key=%s&identity=rack7", at("psk"));
	completes("tls-psk", d, "tls-psk", s);

	snprintf(s, sizeof(s), "key=%s", at("wrong-psk"));
	refused("tls-psk", d, "tls-psk", s,
		"tls: handshake with tls-psk:127.0.0.1:",
		"tls: handshake with");
}

static void test_plain_peer_refused(void)
{
	char d[512];

	snprintf(d, sizeof(d), "key=%s", at("psk"));
	refused("tls-psk", d, "tcp", "",
		"tls: handshake with tls-psk:127.0.0.1:", NULL);

	snprintf(d, sizeof(d), "cert=%s&key=%s", at("dst.pem"), at("dst.key"));
	refused("tls", d, "tcp", "", "tls: handshake with tls:127.0.0.1:",
		NULL);
}

/*
 * TLS carries one stream: a source asked for data connections fails
 * before HELLO, its guest never stopped, and says why.
 */
static void test_no_data_connections(void)
{
	struct side src, dst;
	char d[512], s[512];
	int ret;

	snprintf(d, sizeof(d), "key=%s", at("psk"));
	snprintf(s, sizeof(s), "key=%s", at("psk"));
	src_connections = 2;
	ret = migrate(&src, &dst, "tls-psk", d, "tls-psk", s);
	src_connections = 0;
	CU_ASSERT_EQUAL(ret, -EINVAL);
	CU_ASSERT(has(src.msg, "connections 2: data connections open to a "
			       "tcp: or unix: address"));
	CU_ASSERT_EQUAL(atomic_load(&src.vmm.stops), 0);
	CU_ASSERT(dst.ret < 0);
	CU_ASSERT_EQUAL(atomic_load(&dst.vmm.starts), 0);
	CU_ASSERT(untouched(&dst));
	side_free(&src);
	side_free(&dst);
}

/*
 * Mutual authentication between two processes: the destination is a
 * child process with its own session, memory and TLS state; it sends
 * back where it listens, then its vmig_receive result and its memory's
 * digest, which must be the source's.
 */
static void test_two_processes(void)
{
	char laddr[560], bound[160], caddr[560], d[512], s[512];
	uint64_t sdig = 0, ddig = 0;
	struct side src;
	int pipefd[2], status = -1, dret = -1, ret;
	const char *port;
	pid_t pid;

	certificates();
	snprintf(d, sizeof(d), "cert=%s&key=%s&ca=%s&name=vmig-src",
		 at("dst.pem"), at("dst.key"), at("ca.pem"));
	snprintf(s, sizeof(s), "ca=%s&name=vmig-dst&cert=%s&key=%s",
		 at("ca.pem"), at("src.pem"), at("src.key"));
	snprintf(laddr, sizeof(laddr), "tls:127.0.0.1:0?%s", d);
	CU_ASSERT_FATAL(pipe(pipefd) == 0);
	fflush(NULL);
	pid = fork();
	CU_ASSERT_FATAL(pid >= 0);
	if (pid == 0) {
		struct side dst;
		uint64_t dg = 0;
		int r;

		close(pipefd[0]);
		side_new(&dst, VMIG_ROLE_DESTINATION);
		memset(bound, 0, sizeof(bound));
		if (vmig_listen(dst.s, laddr, bound, sizeof(bound)) != 0 ||
		    write(pipefd[1], bound, sizeof(bound)) != sizeof(bound))
			_exit(2);
		r = vmig_receive(dst.s);
		if (r == 0 && vmig_memory_digest(dst.s, &dg) != 0)
			r = -1;
		if (write(pipefd[1], &r, sizeof(r)) != sizeof(r) ||
		    write(pipefd[1], &dg, sizeof(dg)) != sizeof(dg))
			_exit(2);
		r = r == 0 && atomic_load(&dst.vmm.starts) == 1 ? 0 : 1;
		side_free(&dst);
		close(pipefd[1]);
		_exit(r);
	}
	close(pipefd[1]);
	CU_ASSERT_FATAL(read(pipefd[0], bound, sizeof(bound)) ==
			sizeof(bound));
	port = strrchr(bound, ':');
	CU_ASSERT_FATAL(port != NULL);
	snprintf(caddr, sizeof(caddr), "tls:127.0.0.1%.8s?%s", port, s);
	side_new(&src, VMIG_ROLE_SOURCE);
	ret = vmig_migrate(src.s, caddr);
	if (ret)
		fprintf(stderr, "\n  source: %s\n", vmig_errmsg(src.s));
	CU_ASSERT_EQUAL(ret, 0);
	CU_ASSERT(read(pipefd[0], &dret, sizeof(dret)) == sizeof(dret));
	CU_ASSERT(read(pipefd[0], &ddig, sizeof(ddig)) == sizeof(ddig));
	CU_ASSERT(waitpid(pid, &status, 0) == pid);
	CU_ASSERT(WIFEXITED(status) && WEXITSTATUS(status) == 0);
	CU_ASSERT_EQUAL(dret, 0);
	CU_ASSERT(vmig_memory_digest(src.s, &sdig) == 0);
	CU_ASSERT(sdig == ddig && sdig != 0);
	CU_ASSERT_EQUAL(atomic_load(&src.vmm.stops), 1);
	CU_ASSERT_EQUAL(atomic_load(&src.vmm.resumes), 0);
	close(pipefd[0]);
	side_free(&src);
}

static CU_TestInfo tests[] = {
	{ "certificates: server authentication", test_certificates },
	{ "certificates: client authentication and its name",
	  test_client_certificates },
	{ "a destination of another name", test_wrong_server_name },
	{ "pre-shared key, and a wrong one", test_psk },
	{ "a plain TCP source is refused", test_plain_peer_refused },
	{ "no data connections over TLS", test_no_data_connections },
	{ "two processes, mutual authentication", test_two_processes },
	CU_TEST_INFO_NULL,
};

static CU_SuiteInfo suites[] = {
	{ "tls", suite_init, suite_clean, NULL, NULL, tests },
	CU_SUITE_INFO_NULL,
};

VMIG_TEST_MAIN(suites)
