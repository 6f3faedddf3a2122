/*
 * test_hostile.c: hostile peers on a real network socket (TCP on
 * loopback), written here with plain sockets.
 *
 * A destination whose source connects and says nothing, or sends a valid
 * HELLO and then stalls, drops it once its handshake or idle bound
 * passes, never starts the guest, tells the peer why (ERROR), and keeps
 * its listener: the real source, which connected meanwhile, migrates on
 * the next vmig_receive(). A source whose destination accepts and never
 * welcomes, or welcomes and then stops reading, gives up the same way,
 * its guest never stopped. An ACK with a wrong digest followed by a
 * close is reported as a digest mismatch. The bounds are configured
 * small (a stalled peer never answers, so only they can end the wait);
 * what is asserted is the ending and its message, not how long it took.
 * The defaults (both sides bounded without any configuration) are read
 * back from the report.
 */
#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cjson/cJSON.h>
#include <vmig/vmig.h>

#include "core/proto.h"
#include "testutil.h"
#include "common/frames.h"
#include "common/sendall.h"
#include "common/vmmcount.h"
#include "sessionutil.h"

#define PG 4096u
#define TINY_LEN (4u * PG)
#define BIG_LEN (64u << 20) /* more than the source keeps in flight */
#define HDR VMIG_FRAME_HDR
#define SMALL_MS 200

struct side {
	vmig_session *s;
	struct vmig_vmm_count vmm;
	uint8_t *mem;
	size_t len;
	int ret;
	pthread_t thread;
	char addr[128];
};

static void side_new(struct side *sd, int role, size_t len, bool data)
{
	memset(sd, 0, sizeof(*sd));
	sd->len = len;
	sd->s = vmig_test_ram_session(role, len, data, &sd->vmm, &sd->mem);
}

static void side_free(struct side *sd)
{
	vmig_test_ram_free(sd->s, sd->mem, sd->len);
	sd->s = NULL;
}

/* Small bounds where the test stalls a peer; 0 keeps the default. */
static void bounds(struct side *sd, uint64_t handshake_ms, uint64_t idle_ms)
{
	struct vmig_policies p = {
		.size = sizeof(p),
		.downtime_limit_ms = 60000,
		.handshake_timeout_ms = handshake_ms,
		.idle_timeout_ms = idle_ms,
	};

	CU_ASSERT_FATAL(vmig_set_policies(sd->s, &p) == 0);
}

static void *receive_main(void *opaque)
{
	struct side *sd = opaque;

	sd->ret = vmig_receive(sd->s);
	return NULL;
}

static void *migrate_main(void *opaque)
{
	struct side *sd = opaque;

	sd->ret = vmig_migrate(sd->s, sd->addr);
	return NULL;
}

/* The port of a bound "tcp:127.0.0.1:<port>". */
static int bound_port(const char *bound)
{
	const char *c = strrchr(bound, ':');

	CU_ASSERT_FATAL(c != NULL);
	return atoi(c + 1);
}

static int connect_port(int port)
{
	struct sockaddr_in sa = { .sin_family = AF_INET,
				  .sin_port = htons((uint16_t)port) };
	int fd = socket(AF_INET, SOCK_STREAM, 0);

	CU_ASSERT_FATAL(fd >= 0);
	sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	CU_ASSERT_FATAL(connect(fd, (struct sockaddr *)&sa, sizeof(sa)) == 0);
	return fd;
}

/* A listening TCP socket on loopback; its port in *port. */
static int listen_any(int *port)
{
	struct sockaddr_in sa = { .sin_family = AF_INET };
	socklen_t len = sizeof(sa);
	int fd = socket(AF_INET, SOCK_STREAM, 0);

	CU_ASSERT_FATAL(fd >= 0);
	sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	CU_ASSERT_FATAL(bind(fd, (struct sockaddr *)&sa, sizeof(sa)) == 0);
	CU_ASSERT_FATAL(listen(fd, 4) == 0);
	CU_ASSERT_FATAL(getsockname(fd, (struct sockaddr *)&sa, &len) == 0);
	*port = ntohs(sa.sin_port);
	return fd;
}

/* A valid HELLO for one region at gpa 0 of len bytes. */
static void send_hello(int fd, size_t len)
{
	const struct vmig_hello_counts n = { .regions = 1 };
	uint8_t hdr[HDR], layout[64];

	CU_ASSERT_FATAL(vmig_hello_len(&n) <= sizeof(layout));
	memset(layout, 0, sizeof(layout));
	vmig_hello_put_region(layout, 0, 0, len, "ram");
	vmig_enc_hello(hdr, 0, 0, &n, layout, vmig_hello_len(&n));
	CU_ASSERT_FATAL(vmig_test_send_all(fd, hdr, HDR) == 0);
	CU_ASSERT_FATAL(vmig_test_send_all(fd, layout, vmig_hello_len(&n)) ==
			0);
}

static bool same_memory(const struct side *a, const struct side *b)
{
	return a->len == b->len && !memcmp(a->mem, b->mem, a->len);
}

/* ------------------------------------------------------------------ */
/* Hostile sources                                                     */

/*
 * A peer connects and says nothing; the real source connects after it
 * and waits. The destination drops the silent one (handshake bound),
 * tells it why, does not start the guest, and its listener stays: the
 * VMM calls vmig_receive() again and the real source migrates.
 */
static void test_silent_source_then_real_one(void)
{
	struct side dst, src;
	pthread_t th;
	char bound[128];
	uint8_t hdr[HDR], buf[4096];
	int fd;

	side_new(&dst, VMIG_ROLE_DESTINATION, TINY_LEN, false);
	side_new(&src, VMIG_ROLE_SOURCE, TINY_LEN, true);
	bounds(&dst, SMALL_MS, SMALL_MS);
	CU_ASSERT_FATAL(vmig_listen(dst.s, "tcp:127.0.0.1:0", bound,
				    sizeof(bound)) == 0);
	fd = connect_port(bound_port(bound));
	/* Queued behind the silent one (accepted in order). */
	snprintf(src.addr, sizeof(src.addr), "%s", bound);
	CU_ASSERT_FATAL(pthread_create(&th, NULL, migrate_main, &src) == 0);

	dst.ret = vmig_receive(dst.s);
	CU_ASSERT_EQUAL(dst.ret, -ETIMEDOUT);
	CU_ASSERT(has(vmig_errmsg(dst.s), "handshake timeout: tcp:127.0.0.1:"));
	CU_ASSERT(has(vmig_errmsg(dst.s), "sent no whole HELLO in 200 ms "
					  "(handshake_timeout_ms), at frame "
					  "0 (before its header)"));
	CU_ASSERT_EQUAL(atomic_load(&dst.vmm.starts), 0);
	/* The silent peer is told why before the close. */
	CU_ASSERT_EQUAL(read_frame(fd, hdr, buf, sizeof(buf)),
			VMIG_FRAME_ERROR);
	CU_ASSERT(read(fd, buf, sizeof(buf)) == 0);
	close(fd);

	/* The VMM wants the next source, with the default bounds. */
	bounds(&dst, 0, 0);
	dst.ret = vmig_receive(dst.s);
	pthread_join(th, NULL);
	CU_ASSERT_EQUAL(dst.ret, 0);
	CU_ASSERT_EQUAL(src.ret, 0);
	CU_ASSERT_EQUAL(atomic_load(&dst.vmm.starts), 1);
	CU_ASSERT_EQUAL(atomic_load(&src.vmm.stops), 1);
	CU_ASSERT_EQUAL(atomic_load(&src.vmm.resumes), 0);
	CU_ASSERT(same_memory(&src, &dst));
	/* The guest runs here: this destination takes no more. */
	CU_ASSERT_EQUAL(vmig_receive(dst.s), -EINVAL);
	CU_ASSERT(has(vmig_errmsg(dst.s), "not listening"));
	side_free(&src);
	side_free(&dst);
}

/*
 * A peer sends a valid HELLO, reads WELCOME, and stalls: the idle bound
 * drops it, the destination's state named; a peer that stops in the
 * middle of a header is dropped the same way.
 */
static void stall_after(bool half_header)
{
	struct side dst;
	char bound[128];
	uint8_t hdr[HDR], buf[4096];
	int fd;

	side_new(&dst, VMIG_ROLE_DESTINATION, TINY_LEN, false);
	bounds(&dst, SMALL_MS, SMALL_MS);
	CU_ASSERT_FATAL(vmig_listen(dst.s, "tcp:127.0.0.1:0", bound,
				    sizeof(bound)) == 0);
	CU_ASSERT_FATAL(pthread_create(&dst.thread, NULL, receive_main,
				       &dst) == 0);
	fd = connect_port(bound_port(bound));
	send_hello(fd, TINY_LEN);
	CU_ASSERT_EQUAL(read_frame(fd, hdr, buf, sizeof(buf)),
			VMIG_FRAME_WELCOME);
	if (half_header) {
		vmig_enc_iteration(hdr, 0);
		CU_ASSERT_FATAL(vmig_test_send_all(fd, hdr, HDR / 2) == 0);
	}
	pthread_join(dst.thread, NULL);
	CU_ASSERT_EQUAL(dst.ret, -ETIMEDOUT);
	CU_ASSERT(has(vmig_errmsg(dst.s), "idle timeout: nothing came from "
					  "tcp:127.0.0.1:"));
	CU_ASSERT(has(vmig_errmsg(dst.s), "for 200 ms (idle_timeout_ms)"));
	CU_ASSERT(has(vmig_errmsg(dst.s),
		      half_header ? "at frame 1 (32 of 64 header bytes) in "
				    "state \"receiving\""
				  : "at frame 1 (before its header) in state "
				    "\"receiving\""));
	CU_ASSERT_EQUAL(atomic_load(&dst.vmm.starts), 0);
	CU_ASSERT_EQUAL(read_frame(fd, hdr, buf, sizeof(buf)),
			VMIG_FRAME_ERROR);
	close(fd);
	side_free(&dst);
}

static void test_source_stalls_after_hello(void)
{
	stall_after(false);
}

static void test_source_stalls_in_a_header(void)
{
	stall_after(true);
}

/* ------------------------------------------------------------------ */
/* Hostile destinations                                                */

enum fake_kind {
	FAKE_SILENT,      /* accepts, reads nothing, says nothing */
	FAKE_DEAF,        /* welcomes, then stops reading */
	FAKE_WRONG_DIGEST, /* ACK with a wrong digest, then a close */
	FAKE_WRONG_DIGEST_RST, /* the same, the close a reset */
};

struct fake_dst {
	int lfd;
	enum fake_kind kind;
	int fd;
	uint64_t pages;
	bool acked;
	pthread_mutex_t lock;
	pthread_cond_t cond;
	bool release;   /* the test is done with the stalled connection */
};

static void *fake_dst_main(void *opaque)
{
	struct fake_dst *f = opaque;
	static uint8_t buf[1 << 20];
	uint8_t hdr[HDR], out[HDR];
	int t;

	f->fd = accept(f->lfd, NULL, NULL);
	if (f->fd < 0)
		return NULL;
	while (f->kind != FAKE_SILENT &&
	       (t = read_frame(f->fd, hdr, buf, sizeof(buf))) > 0) {
		if (t == VMIG_FRAME_HELLO) {
			vmig_enc_welcome(out, NULL);
			vmig_test_send_all(f->fd, out, HDR);
			if (f->kind == FAKE_DEAF)
				break;
		} else if (t == VMIG_FRAME_PAGES || t == VMIG_FRAME_ZERO) {
			f->pages += get_le(hdr + 48, 8);
		} else if (t == VMIG_FRAME_COMPLETE) {
			vmig_enc_ack(out, 0x0123456789abcdefull, f->pages, 0);
			vmig_test_send_all(f->fd, out, HDR);
			f->acked = true;
			break;
		}
	}
	if (f->kind == FAKE_WRONG_DIGEST_RST) {
		struct linger lg = { .l_onoff = 1, .l_linger = 0 };

		setsockopt(f->fd, SOL_SOCKET, SO_LINGER, &lg, sizeof(lg));
	}
	if (f->kind != FAKE_WRONG_DIGEST && f->kind != FAKE_WRONG_DIGEST_RST) {
		/* Holds the connection open until the test is done. */
		pthread_mutex_lock(&f->lock);
		while (!f->release)
			pthread_cond_wait(&f->cond, &f->lock);
		pthread_mutex_unlock(&f->lock);
	}
	close(f->fd);
	return NULL;
}

/* Migrates src into a fake destination of that kind; its result. */
static int against_fake(struct side *src, enum fake_kind kind,
			struct fake_dst *f)
{
	pthread_t th;
	int port, ret;

	memset(f, 0, sizeof(*f));
	f->kind = kind;
	pthread_mutex_init(&f->lock, NULL);
	pthread_cond_init(&f->cond, NULL);
	f->lfd = listen_any(&port);
	snprintf(src->addr, sizeof(src->addr), "tcp:127.0.0.1:%d", port);
	CU_ASSERT_FATAL(pthread_create(&th, NULL, fake_dst_main, f) == 0);
	ret = vmig_migrate(src->s, src->addr);
	pthread_mutex_lock(&f->lock);
	f->release = true;
	pthread_cond_broadcast(&f->cond);
	pthread_mutex_unlock(&f->lock);
	pthread_join(th, NULL);
	close(f->lfd);
	pthread_mutex_destroy(&f->lock);
	pthread_cond_destroy(&f->cond);
	return ret;
}

/*
 * A source of len bytes, its bounds small, against a fake destination
 * of kind that never lets it finish: -ETIMEDOUT.
 */
static void source_times_out(struct side *src, size_t len,
			     enum fake_kind kind)
{
	struct fake_dst f;

	side_new(src, VMIG_ROLE_SOURCE, len, true);
	bounds(src, SMALL_MS, SMALL_MS);
	CU_ASSERT_EQUAL(against_fake(src, kind, &f), -ETIMEDOUT);
}

/* Its guest was never stopped (nor resumed); then frees the source. */
static void source_untouched_free(struct side *src)
{
	CU_ASSERT_EQUAL(atomic_load(&src->vmm.stops), 0);
	CU_ASSERT_EQUAL(atomic_load(&src->vmm.resumes), 0);
	side_free(src);
}

static void test_destination_never_welcomes(void)
{
	struct side src;

	source_times_out(&src, TINY_LEN, FAKE_SILENT);
	CU_ASSERT(has(vmig_errmsg(src.s), "handshake timeout: no WELCOME "
					  "from tcp:127.0.0.1:"));
	CU_ASSERT(has(vmig_errmsg(src.s), "in 200 ms (handshake_timeout_ms), "
					  "waiting for the destination's "
					  "WELCOME; the guest stays on the "
					  "source"));
	source_untouched_free(&src);
}

static void test_destination_stops_reading(void)
{
	struct side src;

	source_times_out(&src, BIG_LEN, FAKE_DEAF);
	CU_ASSERT(has(vmig_errmsg(src.s), "idle timeout: nothing moved for "
					  "200 ms (idle_timeout_ms) waiting "
					  "for the destination to take "
					  "iteration 0"));
	CU_ASSERT(has(vmig_errmsg(src.s), "the guest stays on the source"));
	source_untouched_free(&src);
}

/*
 * With verify "strict", the destination acknowledges with a digest that
 * is not the source's and closes at once (a FIN, or a reset): whatever arrives first at the
 * source (the ACK, the close, its own digest: instant for a tiny guest,
 * slower for 64 MiB), the message is the mismatch, never "connection
 * lost".
 */
static void test_wrong_digest_then_close(void)
{
	struct fake_dst f;
	struct side src;
	int ret, i;

	for (i = 0; i < 12; i++) {
		/* Half with a digest that takes its time. */
		/* Strict, and a limit any machine's speed meets. */
		struct vmig_policies p = { .size = sizeof(p),
					   .downtime_limit_ms = 60000,
					   .verify = VMIG_VERIFY_STRICT };

		side_new(&src, VMIG_ROLE_SOURCE, i % 4 < 2 ? TINY_LEN : BIG_LEN,
			 true);
		/* Strict: the source compares before COMMIT. */
		CU_ASSERT_FATAL(vmig_set_policies(src.s, &p) == 0);
		ret = against_fake(&src, i % 2 ? FAKE_WRONG_DIGEST_RST
					       : FAKE_WRONG_DIGEST, &f);
		CU_ASSERT(f.acked);
		CU_ASSERT_EQUAL(ret, VMIG_EMISMATCH);
		CU_ASSERT(has(vmig_errmsg(src.s),
			      "the destination's memory digest "
			      "0x0123456789abcdef differs from the "
			      "source's"));
		CU_ASSERT_EQUAL(atomic_load(&src.vmm.stops), 1);
		CU_ASSERT_EQUAL(atomic_load(&src.vmm.resumes), 1);
		side_free(&src);
	}
}

/* The source's VMM state: one record of registers. */
static int put_regs(void *opaque, vmig_state_out *out)
{
	static const uint64_t regs[4] = { 0x1030, 0x20, 0x6100, 5233 };

	(void)opaque;
	return vmig_state_put(out, regs, sizeof(regs));
}

/*
 * The destination acknowledges without having loaded the VMM state the
 * source sent (its ACK's check says 0 records): in every verify mode the
 * source never commits, names the difference and resumes its guest.
 */
static void test_state_not_loaded(void)
{
	static const struct vmig_state_ops ops = {
		.size = sizeof(ops),
		.save_final = put_regs,
	};
	static const uint32_t modes[] = { VMIG_VERIFY_AUDIT,
					  VMIG_VERIFY_OFF };
	struct fake_dst f;
	struct side src;
	size_t i;

	for (i = 0; i < sizeof(modes) / sizeof(modes[0]); i++) {
		struct vmig_policies p = { .size = sizeof(p),
					   .downtime_limit_ms = 60000,
					   .verify = modes[i] };

		side_new(&src, VMIG_ROLE_SOURCE, TINY_LEN, true);
		CU_ASSERT_FATAL(vmig_set_policies(src.s, &p) == 0);
		CU_ASSERT_FATAL(vmig_state_register(src.s, "cpu", 1, 1, &ops,
						    NULL) == 0);
		CU_ASSERT_EQUAL(against_fake(&src, FAKE_WRONG_DIGEST, &f),
				VMIG_EMISMATCH);
		CU_ASSERT(f.acked);
		CU_ASSERT(has(vmig_errmsg(src.s),
			      "the destination loaded 0 VMM state record(s) "
			      "(CRC32C 0x00000000), the source sent 1"));
		CU_ASSERT_EQUAL(atomic_load(&src.vmm.stops), 1);
		CU_ASSERT_EQUAL(atomic_load(&src.vmm.resumes), 1);
		side_free(&src);
	}
}

/* ------------------------------------------------------------------ */
/* Defaults                                                            */

static uint64_t report_policy(vmig_session *s, const char *key)
{
	cJSON *root = json_session_report(s);
	uint64_t v;

	v = (uint64_t)json_num(cJSON_GetObjectItem(root, "policies"), key);
	cJSON_Delete(root);
	return v;
}

/*
 * The report gives the policies of the last migration: one that fails
 * at once (the source's connection refused; the destination's peer
 * gone before a byte).
 */
static void fail_once(struct side *sd, int role)
{
	char bound[128];
	int port, fd;

	if (role == VMIG_ROLE_SOURCE) {
		fd = listen_any(&port);
		close(fd);
		snprintf(sd->addr, sizeof(sd->addr), "tcp:127.0.0.1:%d",
			 port);
		CU_ASSERT(vmig_migrate(sd->s, sd->addr) < 0);
		return;
	}
	/* A failed receive keeps the listener: the first call made it. */
	if (!sd->addr[0]) {
		CU_ASSERT_FATAL(vmig_listen(sd->s, "tcp:127.0.0.1:0", bound,
					    sizeof(bound)) == 0);
		snprintf(sd->addr, sizeof(sd->addr), "%s", bound);
	}
	close(connect_port(bound_port(sd->addr)));
	CU_ASSERT(vmig_receive(sd->s) < 0);
}

/* Fails once; the report gives the handshake and idle bounds. */
static void fails_bounded(struct side *sd, int role, uint64_t handshake_ms,
			  uint64_t idle_ms)
{
	fail_once(sd, role);
	CU_ASSERT_EQUAL(report_policy(sd->s, "handshake_timeout_ms"),
			handshake_ms);
	CU_ASSERT_EQUAL(report_policy(sd->s, "idle_timeout_ms"), idle_ms);
}

/*
 * Without any policy, and with an older caller's shorter struct, both
 * sides bound the handshake and an idle stream.
 */
static void test_bounded_by_default(void)
{
	struct vmig_policies old = {
		.size = offsetof(struct vmig_policies, handshake_timeout_ms),
		.handshake_timeout_ms = 1, /* beyond its size: not read */
		.idle_timeout_ms = 1,
	};
	struct side sd;
	int role;

	for (role = VMIG_ROLE_SOURCE; role <= VMIG_ROLE_DESTINATION;
	     role++) {
		side_new(&sd, role, TINY_LEN, false);
		fails_bounded(&sd, role, VMIG_DEFAULT_HANDSHAKE_TIMEOUT_MS,
			      VMIG_DEFAULT_IDLE_TIMEOUT_MS);
		CU_ASSERT_EQUAL(report_policy(sd.s, "switchover_timeout_ms"),
				VMIG_DEFAULT_SWITCHOVER_TIMEOUT_MS);
		CU_ASSERT_EQUAL_FATAL(vmig_set_policies(sd.s, &old), 0);
		fails_bounded(&sd, role, VMIG_DEFAULT_HANDSHAKE_TIMEOUT_MS,
			      VMIG_DEFAULT_IDLE_TIMEOUT_MS);
		bounds(&sd, 1234, 5678);
		fails_bounded(&sd, role, 1234, 5678);
		side_free(&sd);
	}
}

static CU_TestInfo source_tests[] = {
	{ "a silent source, then the real one",
	  test_silent_source_then_real_one },
	{ "a source that stalls after HELLO", test_source_stalls_after_hello },
	{ "a source that stalls inside a header",
	  test_source_stalls_in_a_header },
	CU_TEST_INFO_NULL,
};

static CU_TestInfo destination_tests[] = {
	{ "a destination that never welcomes",
	  test_destination_never_welcomes },
	{ "a destination that stops reading", test_destination_stops_reading },
	{ "a wrong digest, then a close", test_wrong_digest_then_close },
	{ "the VMM state not loaded", test_state_not_loaded },
	CU_TEST_INFO_NULL,
};

static CU_TestInfo default_tests[] = {
	{ "both sides bounded by default", test_bounded_by_default },
	CU_TEST_INFO_NULL,
};

static CU_SuiteInfo suites[] = {
	VMIG_SUITE("hostile source", source_tests),
	VMIG_SUITE("hostile destination", destination_tests),
	VMIG_SUITE("defaults", default_tests),
	CU_SUITE_INFO_NULL,
};

VMIG_TEST_MAIN(suites)
