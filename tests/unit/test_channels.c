/*
 * test_channels.c: the pages over several connections ("connections": N,
 * docs/protocol.md "Data connections").
 *
 * Whole migrations (in one process over socket pairs, and between two
 * threads over TCP) move every byte with 2 to 4 data connections; a
 * source written here, frame by frame, shows what the destination does
 * with what a real source never sends: an older copy of a page that
 * arrives after the newer one on another connection is applied first
 * (the pass barrier), a connection without the token is refused, and a
 * data connection whose frames are corrupt, cut short, repeated or left
 * out ends the migration with a reason, never in a guest started.
 */
#include <errno.h>
#include <pthread.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <linux/sockios.h>
#include <time.h>
#include <unistd.h>

#include <CUnit/CUnit.h>
#include <vmig/vmig.h>

#include "core/proto.h"
#include "testutil.h"
#include "sessionutil.h"
#include "common/frames.h"
#include "common/receiver.h"
#include "common/sendall.h"
#include "common/vmmcount.h"

#define PG 4096u
#define LEN (16u << 20)

/* A destination of len bytes of fresh memory whose log goes to log. */
static vmig_session *logged_destination(size_t len, struct vmig_vmm_count *vc,
					uint8_t **mem, struct vmig_test_log *log)
{
	struct vmig_session_params p = { .size = sizeof(p),
					 .role = VMIG_ROLE_DESTINATION,
					 .log = vmig_test_session_log,
					 .log_opaque = log,
					 .log_level = VMIG_LOG_INFO };

	return vmig_test_ram_session_p(&p, len, false, vc, mem);
}

/*
 * n connections, and a switchover after three passes whatever the speed
 * (without a dirty source every sync finds all of memory dirty): each
 * page goes three times, on any of the connections.
 */
static void set_connections(vmig_session *s, uint32_t n, uint32_t verify)
{
	struct vmig_policies pol = {
		.size = sizeof(pol), .verify = verify, .connections = n,
		.max_iterations = 3,
		.timeout_strategy = VMIG_TIMEOUT_STRATEGY_FORCE,
	};

	CU_ASSERT_FATAL(vmig_set_policies(s, &pol) == 0);
}

/*
 * The report's policies.connections of session s; and its committed_ms,
 * within the whole duration.
 */
static double report_connections(vmig_session *s)
{
	cJSON *rep = json_session_report(s);
	const cJSON *pol = cJSON_GetObjectItem(rep, "policies");
	const cJSON *n = cJSON_GetObjectItem(pol, "connections");
	const cJSON *c = cJSON_GetObjectItem(rep, "committed_ms");
	const cJSON *d = cJSON_GetObjectItem(rep, "duration_us");
	double v = cJSON_IsNumber(n) ? n->valuedouble : -1;

	CU_ASSERT(cJSON_IsNumber(c) && cJSON_IsNumber(d) &&
		  c->valuedouble > 0 &&
		  c->valuedouble <= d->valuedouble / 1000);
	cJSON_Delete(rep);
	return v;
}

/* In one process: every byte arrives, whatever the number. */
static void test_local(void)
{
	static const uint32_t counts[] = { 2, 3, 4 };
	size_t i;

	for (i = 0; i < sizeof(counts) / sizeof(counts[0]); i++) {
		struct vmig_vmm_count svc = { 0 }, dvc = { 0 };
		uint8_t *smem, *dmem;
		vmig_session *src = vmig_test_ram_session(VMIG_ROLE_SOURCE,
							  LEN, true, &svc,
							  &smem);
		vmig_session *dst = vmig_test_ram_session(
			VMIG_ROLE_DESTINATION, LEN, false, &dvc, &dmem);
		int ret;

		/* Zero pages among the data: ZERO frames go there too. */
		memset(smem + LEN / 2, 0, LEN / 8);
		set_connections(src, counts[i],
				i == 1 ? VMIG_VERIFY_AUDIT : VMIG_VERIFY_STRICT);
		ret = vmig_migrate_local(src, dst);
		if (ret)
			printf("\n  %u connections: %s\n", counts[i],
			       vmig_errmsg(src));
		CU_ASSERT_EQUAL(ret, 0);
		CU_ASSERT(memcmp(smem, dmem, LEN) == 0);
		CU_ASSERT_EQUAL(atomic_load(&svc.stops), 1);
		CU_ASSERT_EQUAL(atomic_load(&svc.resumes), 0);
		CU_ASSERT_EQUAL(atomic_load(&dvc.starts), 1);
		CU_ASSERT_EQUAL(report_connections(src), counts[i]);
		vmig_test_ram_free(src, smem, LEN);
		vmig_test_ram_free(dst, dmem, LEN);
	}
}

/*
 * Between two threads over a socket (listen: the destination's address):
 * the data connections go to the same peer, all at once.
 */
static void over_name(const char *listen, const char *name, uint32_t conns)
{
	struct vmig_vmm_count svc = { 0 }, dvc = { 0 };
	struct vmig_test_receiver rc = { 0 };
	struct vmig_test_log log = { { 0 } };
	uint8_t *smem, *dmem;
	vmig_session *src = vmig_test_ram_session(VMIG_ROLE_SOURCE, LEN, true,
						  &svc, &smem);
	vmig_session *dst = logged_destination(LEN, &dvc, &dmem, &log);
	char bound[128], addr[160], said[80];
	pthread_t th;
	int ret;

	rc.s = dst;
	CU_ASSERT_FATAL(vmig_listen(dst, listen, bound, sizeof(bound)) == 0);
	/* By name: the port bound, after the name (looked up by a thread). */
	if (name)
		snprintf(addr, sizeof(addr), "tcp:%s:%s", name,
			 strrchr(bound, ':') + 1);
	else
		snprintf(addr, sizeof(addr), "%s", bound);
	CU_ASSERT_FATAL(pthread_create(&th, NULL, vmig_test_receive_main,
				       &rc) == 0);
	set_connections(src, conns, VMIG_VERIFY_STRICT);
	ret = vmig_migrate(src, addr);
	if (ret)
		printf("\n  %s, %u connections: %s\n", listen, conns,
		       vmig_errmsg(src));
	CU_ASSERT_EQUAL(ret, 0);
	pthread_join(th, NULL);
	CU_ASSERT_EQUAL(rc.ret, 0);
	CU_ASSERT(memcmp(smem, dmem, LEN) == 0);
	CU_ASSERT_EQUAL(atomic_load(&dvc.starts), 1);
	snprintf(said, sizeof(said),
		 "the pages come over %u data connection(s)", conns);
	CU_ASSERT(has(log.text, said));
	vmig_test_ram_free(src, smem, LEN);
	vmig_test_ram_free(dst, dmem, LEN);
}

static void over(const char *listen, uint32_t conns)
{
	over_name(listen, NULL, conns);
}

static void test_tcp(void)
{
	over("tcp:127.0.0.1:0", 3);
	/* The source connects to a name; its data connections, to the peer. */
	over_name("tcp:localhost:0", "localhost", 2);
}

/* The most, at once: each connects while the others wait to be accepted. */
static void test_sixteen(void)
{
	char path[128];

	over("tcp:127.0.0.1:0", VMIG_CONNECTIONS_MAX);
	snprintf(path, sizeof(path), "unix:/tmp/vmig-chan-%d-16.sock",
		 (int)getpid());
	unlink(path + 5);
	over(path, VMIG_CONNECTIONS_MAX);
	unlink(path + 5);
}

static void test_policy_limits(void)
{
	struct vmig_vmm_count vc = { 0 };
	uint8_t *mem;
	vmig_session *s = vmig_test_ram_session(VMIG_ROLE_SOURCE, PG * 16,
						false, &vc, &mem);
	struct vmig_policies pol = { .size = sizeof(pol),
				     .connections = VMIG_CONNECTIONS_MAX + 1 };

	CU_ASSERT_EQUAL(vmig_set_policies(s, &pol), -EINVAL);
	CU_ASSERT(has(vmig_errmsg(s), "connections 17, at most 16"));
	pol.connections = VMIG_CONNECTIONS_MAX;
	CU_ASSERT_EQUAL(vmig_set_policies(s, &pol), 0);
	vmig_test_ram_free(s, mem, PG * 16);
}

/* ------------------------------------------------------------------ */
/* A source written here, frame by frame                               */

#define RPAGES 16u

struct raw {
	struct vmig_vmm_count dvc;
	struct vmig_test_receiver rc;
	struct vmig_test_log log;
	uint8_t *dmem;
	char path[108];
	pthread_t th;
	int main_fd;
	uint64_t token[2];
	uint64_t frames; /* on the main stream */
	char errmsg[1024];
};

static int unix_connect(const char *path)
{
	struct sockaddr_un sa = { .sun_family = AF_UNIX };
	int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);

	CU_ASSERT_FATAL(fd >= 0);
	snprintf(sa.sun_path, sizeof(sa.sun_path), "%s", path);
	CU_ASSERT_FATAL(connect(fd, (struct sockaddr *)&sa, sizeof(sa)) == 0);
	return fd;
}

static void put(int fd, const uint8_t hdr[VMIG_FRAME_HDR], const void *data,
		size_t len)
{
	CU_ASSERT_FATAL(vmig_test_send_all(fd, hdr, VMIG_FRAME_HDR) == 0);
	if (len)
		CU_ASSERT_FATAL(vmig_test_send_all(fd, data, len) == 0);
}

/*
 * A destination of RPAGES pages receiving on a unix socket (with the
 * policies pol, NULL: its defaults), and a source here that said HELLO
 * with nchans data connections and read WELCOME.
 */
static void raw_start_pol(struct raw *r, uint32_t nchans,
			  const struct vmig_policies *pol)
{
	struct vmig_hello_counts n = { .regions = 1 };
	uint8_t hdr[VMIG_FRAME_HDR], buf[256], layout[VMIG_HELLO_REGION];
	char addr[128];

	memset(r, 0, sizeof(*r));
	r->rc.s = logged_destination(RPAGES * PG, &r->dvc, &r->dmem, &r->log);
	if (pol)
		CU_ASSERT_FATAL(vmig_set_policies(r->rc.s, pol) == 0);
	snprintf(r->path, sizeof(r->path), "/tmp/vmig-chan-%d.sock",
		 (int)getpid());
	unlink(r->path);
	snprintf(addr, sizeof(addr), "unix:%s", r->path);
	CU_ASSERT_FATAL(vmig_listen(r->rc.s, addr, NULL, 0) == 0);
	CU_ASSERT_FATAL(pthread_create(&r->th, NULL, vmig_test_receive_main,
				       &r->rc) == 0);
	r->main_fd = unix_connect(r->path);
	memset(layout, 0, sizeof(layout));
	vmig_hello_put_region(layout, 0, 0, RPAGES * PG, "ram");
	vmig_enc_hello(hdr, 0, nchans, &n, layout, sizeof(layout));
	put(r->main_fd, hdr, layout, sizeof(layout));
	r->frames++;
	CU_ASSERT_FATAL(read_frame(r->main_fd, hdr, buf, sizeof(buf)) ==
			VMIG_FRAME_WELCOME);
	r->token[0] = get_le(hdr + 32, 8);
	r->token[1] = get_le(hdr + 40, 8);
	CU_ASSERT(r->token[0] || r->token[1]);
}

static void raw_start(struct raw *r, uint32_t nchans)
{
	raw_start_pol(r, nchans, NULL);
}

/* Data connection index, its CHANNEL sent with token. */
static int raw_channel(struct raw *r, uint32_t index, const uint64_t *token)
{
	uint8_t hdr[VMIG_FRAME_HDR];
	int fd = unix_connect(r->path);

	vmig_enc_channel(hdr, token, index);
	put(fd, hdr, NULL, 0);
	return fd;
}

/* raw_start() with one data connection, opened: its socket. */
static int raw_start_one(struct raw *r)
{
	raw_start(r, 1);
	return raw_channel(r, 0, r->token);
}

/* Frames that carry no payload, on fd. */
static void raw_iteration(int fd, uint64_t k)
{
	uint8_t hdr[VMIG_FRAME_HDR];

	vmig_enc_iteration(hdr, k);
	put(fd, hdr, NULL, 0);
}

static void raw_switchover(int fd)
{
	uint8_t hdr[VMIG_FRAME_HDR];

	vmig_enc_switchover(hdr);
	put(fd, hdr, NULL, 0);
}

static void raw_complete(int fd, uint64_t pages, uint64_t frames)
{
	uint8_t hdr[VMIG_FRAME_HDR];

	vmig_enc_complete(hdr, pages, frames);
	put(fd, hdr, NULL, 0);
}

/* Page p, all bytes v; with crc (after SWITCHOVER) DATA_CRC. */
static void raw_page(int fd, uint64_t p, uint8_t v, bool crc)
{
	uint8_t hdr[VMIG_FRAME_HDR], page[PG];

	memset(page, v, sizeof(page));
	vmig_enc_pages(hdr, 0, p, 1, page, crc);
	put(fd, hdr, page, sizeof(page));
}

/* Bytes written on fd that the destination has not read yet (unix). */
static int unread(int fd)
{
	int n = 0;

	CU_ASSERT_FATAL(ioctl(fd, SIOCOUTQ, &n) == 0);
	return n;
}

/* The destination's vmig_receive returned; its message is in errmsg. */
static void raw_finish(struct raw *r)
{
	close(r->main_fd);
	pthread_join(r->th, NULL);
	unlink(r->path);
	snprintf(r->errmsg, sizeof(r->errmsg), "%s", vmig_errmsg(r->rc.s));
	vmig_test_ram_free(r->rc.s, r->dmem, RPAGES * PG);
}

/* The destination said ERROR on the main stream. */
static void raw_expect_error(struct raw *r)
{
	uint8_t hdr[VMIG_FRAME_HDR], buf[VMIG_ERROR_MAX];

	CU_ASSERT_EQUAL(read_frame(r->main_fd, hdr, buf, sizeof(buf)),
			VMIG_FRAME_ERROR);
}

/* ... and ended refusing the stream (why in r->errmsg), never started. */
static void raw_rejected(struct raw *r, int c0)
{
	close(c0);
	raw_finish(r);
	CU_ASSERT_EQUAL(r->rc.ret, VMIG_EPROTO);
	CU_ASSERT_EQUAL(atomic_load(&r->dvc.starts), 0);
}

/*
 * A whole migration of one page, p (all bytes v), on data connection c0
 * of a source started with one: it arrives, the ACK, COMMIT, STARTED.
 */
static void raw_one_page(struct raw *r, int c0, uint64_t p, uint8_t v)
{
	uint8_t hdr[VMIG_FRAME_HDR], buf[256];

	raw_iteration(r->main_fd, 0);
	raw_iteration(c0, 0);
	raw_page(c0, p, v, false);
	raw_switchover(c0);
	raw_complete(c0, 1, 4);
	raw_switchover(r->main_fd);
	r->frames += 2;
	raw_complete(r->main_fd, 1, r->frames);
	CU_ASSERT_EQUAL(read_frame(r->main_fd, hdr, buf, sizeof(buf)),
			VMIG_FRAME_ACK);
	CU_ASSERT_EQUAL(r->dmem[p * PG], v);
	vmig_enc_commit(hdr);
	put(r->main_fd, hdr, NULL, 0);
	CU_ASSERT_EQUAL(read_frame(r->main_fd, hdr, buf, sizeof(buf)),
			VMIG_FRAME_STARTED);
}

/*
 * Page 5 went in iteration 0 on connection 0 (A) and again in iteration 1
 * on connection 1 (B); connection 1's whole stream is written first, and
 * connection 0's copy only after the destination had all the time it
 * wanted to read connection 1 to its end. B, the newer, must win: the
 * destination applies nothing of iteration 1 before every connection
 * ended iteration 0.
 */
static void test_older_copy_late(void)
{
	struct raw r;
	uint8_t hdr[VMIG_FRAME_HDR], buf[256];
	struct timespec ts = { 0, 5 * 1000 * 1000 };
	int c0, c1, i;

	raw_start(&r, 2);
	c0 = raw_channel(&r, 0, r.token);
	c1 = raw_channel(&r, 1, r.token);
	raw_iteration(r.main_fd, 0);
	r.frames++;
	raw_iteration(c0, 0);
	/* Connection 1: iteration 0 (nothing), 1 (B), the end. */
	raw_iteration(c1, 0);
	raw_iteration(c1, 1);
	raw_page(c1, 5, 'B', false);
	raw_switchover(c1);
	raw_complete(c1, 1, 5);
	/*
	 * A destination without the barrier reads all of it at once; one
	 * with it stops at iteration 1. Either way, A comes after.
	 */
	for (i = 0; i < 100 && unread(c1) > 0; i++)
		nanosleep(&ts, NULL);
	raw_page(c0, 5, 'A', false);
	raw_iteration(c0, 1);
	raw_switchover(c0);
	raw_complete(c0, 1, 5);
	raw_iteration(r.main_fd, 1);
	raw_switchover(r.main_fd);
	r.frames += 2;
	raw_complete(r.main_fd, 2, r.frames);
	CU_ASSERT_EQUAL(read_frame(r.main_fd, hdr, buf, sizeof(buf)),
			VMIG_FRAME_ACK);
	CU_ASSERT_EQUAL(get_le(hdr + 40, 8), 2); /* pages */
	CU_ASSERT_EQUAL(r.dmem[5 * PG], 'B');
	CU_ASSERT_EQUAL(r.dmem[6 * PG - 1], 'B');
	vmig_enc_commit(hdr);
	put(r.main_fd, hdr, NULL, 0);
	CU_ASSERT_EQUAL(read_frame(r.main_fd, hdr, buf, sizeof(buf)),
			VMIG_FRAME_STARTED);
	close(c0);
	close(c1);
	raw_finish(&r);
	CU_ASSERT_EQUAL(r.rc.ret, 0);
}

/*
 * Strangers on the listener while the data connection is awaited: one
 * that says nothing (it holds a slot), one with another token (dropped
 * at once). The migration goes on with its own connection, and the log
 * says who was closed and why.
 */
static void test_stranger(void)
{
	uint8_t buf[256];
	uint64_t wrong[2];
	struct raw r;
	int silent, other, c0;

	raw_start(&r, 1);
	silent = unix_connect(r.path);
	wrong[0] = r.token[0] ^ 1;
	wrong[1] = r.token[1];
	other = raw_channel(&r, 0, wrong);
	/* Dropped: the destination closes it (whatever the timing). */
	CU_ASSERT_EQUAL(read(other, buf, sizeof(buf)), 0);
	c0 = raw_channel(&r, 0, r.token);
	raw_one_page(&r, c0, 2, 'x');
	close(c0);
	close(other);
	close(silent);
	raw_finish(&r);
	CU_ASSERT_EQUAL(r.rc.ret, 0);
	CU_ASSERT_EQUAL(atomic_load(&r.dvc.starts), 1);
	CU_ASSERT(has(r.log.text, "not this migration's token; closed"));
}

/*
 * More silent strangers than there are slots (one data connection and
 * four spare), connected before the data connection: each connection
 * accepted when every slot is taken closes the stranger that waited
 * longest, so the data connection gets a slot at once and the migration
 * completes; without that it would wait for the strangers' handshake
 * bound (two minutes here), and the log would not say why they went.
 */
static void test_strangers_fill_slots(void)
{
	struct vmig_policies pol = { .size = sizeof(pol),
				     .handshake_timeout_ms = 120000 };
	uint8_t buf[256];
	int silent[7], c0, i, closed = 0;
	struct raw r;

	raw_start_pol(&r, 1, &pol);
	for (i = 0; i < 7; i++)
		silent[i] = unix_connect(r.path);
	c0 = raw_channel(&r, 0, r.token);
	raw_one_page(&r, c0, 3, 'y');
	/* The oldest strangers were closed: they read the end. */
	for (i = 0; i < 7; i++) {
		struct timeval tv = { 0, 1000 };

		setsockopt(silent[i], SOL_SOCKET, SO_RCVTIMEO, &tv,
			   sizeof(tv));
		if (read(silent[i], buf, sizeof(buf)) == 0)
			closed++;
	}
	CU_ASSERT(closed >= 3);
	close(c0);
	for (i = 0; i < 7; i++)
		close(silent[i]);
	raw_finish(&r);
	CU_ASSERT_EQUAL(r.rc.ret, 0);
	CU_ASSERT_EQUAL(atomic_load(&r.dvc.starts), 1);
	CU_ASSERT(has(r.log.text, "every slot was taken"));
}

/*
 * COMMIT right after COMPLETE, before the data connection ended (so
 * before any ACK): refused, the guest never starts.
 */
static void test_commit_before_ack(void)
{
	uint8_t hdr[VMIG_FRAME_HDR];
	struct raw r;
	int c0;

	c0 = raw_start_one(&r);
	raw_iteration(r.main_fd, 0);
	raw_switchover(r.main_fd);
	r.frames += 2;
	raw_complete(r.main_fd, 0, r.frames);
	vmig_enc_commit(hdr);
	put(r.main_fd, hdr, NULL, 0);
	raw_expect_error(&r);
	raw_rejected(&r, c0);
	CU_ASSERT(has(r.errmsg, "(COMMIT): before this destination's ACK"));
}

/* Pages on the main stream when HELLO named data connections. */
static void test_pages_on_main(void)
{
	struct raw r;
	int c0;

	c0 = raw_start_one(&r);
	raw_page(r.main_fd, 1, 'x', false);
	raw_expect_error(&r);
	/* Refused at its header: nothing was written. */
	CU_ASSERT_EQUAL(r.dmem[PG], 0);
	raw_rejected(&r, c0);
	CU_ASSERT(has(r.errmsg, "pages travel on the 1 data connection(s)"));
}

/*
 * A data connection that skips a pass's marker, its COMPLETE consistent
 * with what it sent: the other one, at the next pass's barrier, would
 * wait for a marker that never comes. The destination refuses at once,
 * saying which ended short, not when its switchover bound (two minutes
 * here) runs out.
 */
static void test_marker_skipped(void)
{
	struct vmig_policies pol = { .size = sizeof(pol),
				     .switchover_timeout_ms = 120000 };
	struct raw r;
	int c0, c1;

	raw_start_pol(&r, 2, &pol);
	c0 = raw_channel(&r, 0, r.token);
	c1 = raw_channel(&r, 1, r.token);
	raw_iteration(r.main_fd, 0);
	raw_iteration(r.main_fd, 1);
	raw_switchover(r.main_fd);
	r.frames += 3;
	raw_iteration(c0, 0);
	raw_iteration(c0, 1);
	raw_switchover(c0);
	raw_complete(c0, 0, 4);
	raw_iteration(c1, 0);
	raw_switchover(c1); /* no ITERATION 1 */
	raw_complete(c1, 0, 3);
	{
		uint8_t hdr[VMIG_FRAME_HDR];

		/* It may have refused and closed the main stream already. */
		vmig_enc_complete(hdr, 0, r.frames);
		(void)vmig_test_send_all(r.main_fd, hdr, sizeof(hdr));
	}
	raw_expect_error(&r);
	close(c1);
	raw_rejected(&r, c0);
	CU_ASSERT(has(r.errmsg, "data connection 2 ended after 2"));
}

/* A data connection's COMPLETE that does not match what came on it. */
static void test_short_connection(void)
{
	struct raw r;
	int c0;

	c0 = raw_start_one(&r);
	raw_iteration(c0, 0);
	raw_page(c0, 1, 'x', false);
	raw_switchover(c0);
	raw_complete(c0, 2, 4); /* says 2 pages, 1 came */
	raw_expect_error(&r);
	raw_rejected(&r, c0);
	CU_ASSERT(has(r.errmsg, "data connection 1 of 1"));
	CU_ASSERT(has(r.errmsg, "the source sent 2 pages in 4 frames on it, "
				  "1 pages in 4 frames arrived"));
}

/* ------------------------------------------------------------------ */
/* Hostile data connections                                            */

struct dstream {
	uint8_t buf[16 * PG];
	size_t len;
	size_t at[16]; /* where each frame starts */
	unsigned int frames;
};

static void ds_put(struct dstream *d, const uint8_t *hdr, const void *data,
		   size_t len)
{
	CU_ASSERT_FATAL(d->len + VMIG_FRAME_HDR + len <= sizeof(d->buf) &&
			d->frames < 16);
	d->at[d->frames++] = d->len;
	memcpy(d->buf + d->len, hdr, VMIG_FRAME_HDR);
	if (len)
		memcpy(d->buf + d->len + VMIG_FRAME_HDR, data, len);
	d->len += VMIG_FRAME_HDR + len;
}

/*
 * A whole data connection as a source sends it, connection index of a
 * migration whose pages [8 * index, 8 * index + 8) it carries: CHANNEL,
 * ITERATION 0, one page, four zero pages, ITERATION 1, two pages,
 * SWITCHOVER, the first page again (with DATA_CRC), COMPLETE: 8 pages
 * before it in 8 frames.
 */
#define DS_PAGES 8u
static void ds_build(struct dstream *d, const uint64_t token[2],
		     uint32_t index)
{
	uint8_t hdr[VMIG_FRAME_HDR], data[2 * PG];
	uint64_t p = 8 * index;

	memset(d, 0, sizeof(*d));
	memset(data, 'a', sizeof(data));
	vmig_enc_channel(hdr, token, index);
	ds_put(d, hdr, NULL, 0);
	vmig_enc_iteration(hdr, 0);
	ds_put(d, hdr, NULL, 0);
	vmig_enc_pages(hdr, 0, p + 1, 1, data, false);
	ds_put(d, hdr, data, PG);
	vmig_enc_zero(hdr, 0, p + 2, 4);
	ds_put(d, hdr, NULL, 0);
	vmig_enc_iteration(hdr, 1);
	ds_put(d, hdr, NULL, 0);
	memset(data, 'b', sizeof(data));
	vmig_enc_pages(hdr, 0, p + 6, 2, data, false);
	ds_put(d, hdr, data, 2 * PG);
	vmig_enc_switchover(hdr);
	ds_put(d, hdr, NULL, 0);
	memset(data, 'c', PG);
	vmig_enc_pages(hdr, 0, p + 1, 1, data, true);
	ds_put(d, hdr, data, PG);
	vmig_enc_complete(hdr, DS_PAGES, 8);
	ds_put(d, hdr, NULL, 0);
}

static uint64_t xorshift(uint64_t *x)
{
	*x ^= *x << 13;
	*x ^= *x >> 7;
	*x ^= *x << 17;
	return *x;
}

/*
 * One of the ways a stream goes wrong, after CHANNEL (the strangers test
 * covers that one): bytes flipped anywhere; a header field changed with
 * its header CRC made right again (so that the frame's own checks see
 * it); the stream cut short; a frame sent twice or left out. Returns the
 * new length.
 */
static size_t ds_mutate(struct dstream *d, uint64_t *x, uint8_t *out)
{
	size_t len = d->len, first = d->at[1], n, i;
	unsigned int f = 1 + (unsigned int)(xorshift(x) % (d->frames - 1)),
		     g = 1 + (unsigned int)(xorshift(x) % (d->frames - 1));
	size_t fend = f + 1 < d->frames ? d->at[f + 1] : d->len;
	uint32_t crc;

	memcpy(out, d->buf, d->len);
	switch (xorshift(x) % 5) {
	case 0:
		for (n = 1 + xorshift(x) % 4; n; n--)
			out[first + xorshift(x) % (len - first)] ^=
				(uint8_t)(1u << (xorshift(x) % 8));
		break;
	case 1:
		i = d->at[f] + 4 + xorshift(x) % (VMIG_FRAME_HDR - 4);
		if (i >= d->at[f] + 12 && i < d->at[f] + 16)
			i += 4; /* not the CRC itself */
		out[i] ^= (uint8_t)(1u + xorshift(x) % 255);
		memset(out + d->at[f] + 12, 0, 4);
		crc = vmig_crc32c(0, out + d->at[f], VMIG_FRAME_HDR);
		memcpy(out + d->at[f] + 12, &crc, 4); /* little-endian */
		break;
	case 2:
		len = first + xorshift(x) % (len - first);
		break;
	case 3: /* frame f again, after frame g */
		i = g + 1 < d->frames ? d->at[g + 1] : d->len;
		memcpy(out + i, d->buf + d->at[f], fend - d->at[f]);
		memcpy(out + i + (fend - d->at[f]), d->buf + i, d->len - i);
		len = d->len + (fend - d->at[f]);
		break;
	default: /* frame f left out */
		memcpy(out + d->at[f], d->buf + fend, d->len - fend);
		len = d->len - (fend - d->at[f]);
		break;
	}
	return len;
}

/*
 * A data connection that says what a real source never does, drawn from
 * a seed, alone or beside a valid one (whose pass barrier must not wait
 * for markers that never come): the destination ends every time, at
 * once, and either
 * acknowledges what it was sent and starts the guest on COMMIT, or
 * refuses the stream on the main one (ERROR) and never starts it; its
 * checks are the main stream's, so nothing lands outside its memory
 * (the sanitizers' and valgrind's runs of this test watch that).
 */
static void test_hostile_connection(void)
{
	static struct dstream d;
	static uint8_t out[2 * sizeof(d.buf)];
	uint64_t x = 0x9e3779b97f4a7c15ull;
	unsigned int k, acked = 0, refused = 0;
	/*
	 * A bound on the waits, never reached: a stream cut short ends at
	 * its EOF, and one the destination did not see as bad would fail
	 * the test here, not pass on a timer.
	 */
	struct vmig_policies pol = { .size = sizeof(pol),
				     .idle_timeout_ms = 20000,
				     .switchover_timeout_ms = 20000 };

	for (k = 0; k < 240; k++) {
		uint8_t hdr[VMIG_FRAME_HDR], buf[VMIG_ERROR_MAX];
		uint32_t n = 1 + k % 2, i;
		struct raw r;
		size_t len;
		int c[2], type;

		raw_start_pol(&r, n, &pol);
		/* The valid one first, all of it, then the other. */
		for (i = 0; i + 1 < n; i++) {
			ds_build(&d, r.token, i);
			c[i] = unix_connect(r.path);
			(void)vmig_test_send_all(c[i], d.buf, d.len);
			shutdown(c[i], SHUT_WR);
		}
		ds_build(&d, r.token, n - 1);
		len = ds_mutate(&d, &x, out);
		c[n - 1] = unix_connect(r.path);
		/* The destination may close it first: no assert. */
		(void)vmig_test_send_all(c[n - 1], out, len);
		shutdown(c[n - 1], SHUT_WR);
		/* It may have refused and closed the main stream too. */
		vmig_enc_iteration(hdr, 0);
		(void)vmig_test_send_all(r.main_fd, hdr, sizeof(hdr));
		vmig_enc_iteration(hdr, 1);
		(void)vmig_test_send_all(r.main_fd, hdr, sizeof(hdr));
		vmig_enc_switchover(hdr);
		(void)vmig_test_send_all(r.main_fd, hdr, sizeof(hdr));
		vmig_enc_complete(hdr, n * DS_PAGES, r.frames + 3);
		(void)vmig_test_send_all(r.main_fd, hdr, sizeof(hdr));
		type = read_frame(r.main_fd, hdr, buf, sizeof(buf));
		if (type == VMIG_FRAME_ACK) {
			acked++;
			/* Every page the main stream's COMPLETE counted. */
			CU_ASSERT_EQUAL(get_le(hdr + 40, 8), n * DS_PAGES);
			vmig_enc_commit(hdr);
			put(r.main_fd, hdr, NULL, 0);
			CU_ASSERT_EQUAL(read_frame(r.main_fd, hdr, buf,
						   sizeof(buf)),
					VMIG_FRAME_STARTED);
			for (i = 0; i < n; i++)
				close(c[i]);
			raw_finish(&r);
			CU_ASSERT_EQUAL(r.rc.ret, 0);
			CU_ASSERT_EQUAL(atomic_load(&r.dvc.starts), 1);
		} else {
			refused++;
			CU_ASSERT_EQUAL(type, VMIG_FRAME_ERROR);
			for (i = 0; i < n; i++)
				close(c[i]);
			raw_finish(&r);
			CU_ASSERT(r.rc.ret < 0);
			CU_ASSERT_EQUAL(atomic_load(&r.dvc.starts), 0);
			if (getenv("VMIG_TEST_VERBOSE"))
				fprintf(stderr, "\n  %u: %s", k, r.errmsg);
			/* It says what and where, at once. */
			CU_ASSERT(has(r.errmsg, "data connection") ||
				  has(r.errmsg, "frame"));
			CU_ASSERT_PTR_NULL(strstr(r.errmsg, "timeout"));
		}
	}
	if (getenv("VMIG_TEST_VERBOSE"))
		fprintf(stderr, "\n  %u acknowledged, %u refused\n", acked,
			refused);
	/* Both outcomes were drawn (flipped page bytes are still pages). */
	CU_ASSERT(refused > 0);
	CU_ASSERT(acked > 0);
}

/*
 * A destination written here: it welcomes the source with a token, and
 * its listener is gone by then, so that no data connection can connect.
 */
struct gone {
	char path[108];
	int lfd;
	int last;        /* the last frame type the source sent */
	pthread_t thread;
};

static void *gone_main(void *opaque)
{
	struct gone *g = opaque;
	static uint8_t buf[65536];
	uint8_t hdr[VMIG_FRAME_HDR];
	const uint64_t token[2] = { 1, 2 };
	int fd = accept(g->lfd, NULL, NULL), t;

	close(g->lfd);
	unlink(g->path);
	if (fd < 0)
		return NULL;
	if (read_frame(fd, hdr, buf, sizeof(buf)) == VMIG_FRAME_HELLO) {
		vmig_enc_welcome(hdr, token);
		put(fd, hdr, NULL, 0);
	}
	while ((t = read_frame(fd, hdr, buf, sizeof(buf))) >= 0)
		g->last = t;
	close(fd);
	return NULL;
}

/*
 * A data connection that cannot connect ends the migration at once, with
 * its reason (not when an idle bound passes): the guest never stopped,
 * and the destination heard why (ERROR).
 */
static void test_cannot_connect(void)
{
	struct sockaddr_un sa = { .sun_family = AF_UNIX };
	struct vmig_vmm_count svc = { 0 };
	struct gone g = { .last = -1 };
	uint8_t *smem;
	vmig_session *src = vmig_test_ram_session(VMIG_ROLE_SOURCE, LEN, true,
						  &svc, &smem);
	struct vmig_policies pol = {
		.size = sizeof(pol), .connections = 2,
		/* Far: only the connect's failure can end it soon. */
		.idle_timeout_ms = 600000, .handshake_timeout_ms = 600000,
	};
	char addr[160];
	int ret;

	snprintf(g.path, sizeof(g.path), "/tmp/vmig-chan-%d-gone.sock",
		 (int)getpid());
	unlink(g.path);
	snprintf(sa.sun_path, sizeof(sa.sun_path), "%s", g.path);
	g.lfd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
	CU_ASSERT_FATAL(g.lfd >= 0);
	CU_ASSERT_FATAL(bind(g.lfd, (struct sockaddr *)&sa, sizeof(sa)) == 0);
	CU_ASSERT_FATAL(listen(g.lfd, 1) == 0);
	CU_ASSERT_FATAL(pthread_create(&g.thread, NULL, gone_main, &g) == 0);
	CU_ASSERT_FATAL(vmig_set_policies(src, &pol) == 0);
	snprintf(addr, sizeof(addr), "unix:%s", g.path);
	ret = vmig_migrate(src, addr);
	pthread_join(g.thread, NULL);
	CU_ASSERT_EQUAL(ret, -ENOENT);
	CU_ASSERT(has(vmig_errmsg(src), "data connection "));
	CU_ASSERT(has(vmig_errmsg(src), ": connect: "));
	CU_ASSERT_EQUAL(atomic_load(&svc.stops), 0);
	if (g.last != VMIG_FRAME_ERROR)
		printf("\n  last frame %d: %s\n", g.last, vmig_errmsg(src));
	CU_ASSERT_EQUAL(g.last, VMIG_FRAME_ERROR);
	vmig_test_ram_free(src, smem, LEN);
}

/*
 * A data connection of an earlier migration, left in the backlog: the
 * next vmig_receive takes it first, sees CHANNEL, closes it and goes on
 * with the real source.
 */
static void test_stale_connection(void)
{
	struct raw r;
	uint8_t hdr[VMIG_FRAME_HDR], buf[256];
	const uint64_t old[2] = { 7, 7 };
	char addr[128];
	int stale;

	memset(&r, 0, sizeof(r));
	r.rc.s = logged_destination(RPAGES * PG, &r.dvc, &r.dmem, &r.log);
	snprintf(r.path, sizeof(r.path), "/tmp/vmig-chan-%d-stale.sock",
		 (int)getpid());
	unlink(r.path);
	snprintf(addr, sizeof(addr), "unix:%s", r.path);
	CU_ASSERT_FATAL(vmig_listen(r.rc.s, addr, NULL, 0) == 0);
	/* Before the receive runs: it waits in the backlog. */
	stale = unix_connect(r.path);
	vmig_enc_channel(hdr, old, 0);
	put(stale, hdr, NULL, 0);
	CU_ASSERT_FATAL(pthread_create(&r.th, NULL, vmig_test_receive_main,
				       &r.rc) == 0);
	/* Closed by the destination: then the source comes. */
	CU_ASSERT_EQUAL(read(stale, buf, sizeof(buf)), 0);
	close(stale);
	r.main_fd = unix_connect(r.path);
	vmig_enc_error(hdr, -ECANCELED, NULL, 0);
	put(r.main_fd, hdr, NULL, 0);
	raw_finish(&r);
	/* It heard this source's ERROR, not the stale connection's bytes. */
	CU_ASSERT_EQUAL(r.rc.ret, -ECANCELED);
	CU_ASSERT(has(r.log.text, "sent CHANNEL first (a data connection of "
				  "no migration here); closed, waiting for a "
				  "source"));
}

static CU_TestInfo tests[] = {
	{ "every byte over 2, 3 and 4 data connections", test_local },
	{ "over TCP, to the same peer", test_tcp },
	{ "the policy's limits", test_policy_limits },
	{ "an older copy arriving late is applied first", test_older_copy_late },
	{ "strangers on the listener", test_stranger },
	{ "more strangers than slots", test_strangers_fill_slots },
	{ "COMMIT before the ACK", test_commit_before_ack },
	{ "16 connections over TCP and unix", test_sixteen },
	{ "a data connection that cannot connect", test_cannot_connect },
	{ "an earlier migration's connection in the backlog",
	  test_stale_connection },
	{ "pages on the main stream", test_pages_on_main },
	{ "hostile data connections", test_hostile_connection },
	{ "a data connection that skips a marker", test_marker_skipped },
	{ "a data connection's COMPLETE that does not add up",
	  test_short_connection },
	CU_TEST_INFO_NULL,
};

static CU_SuiteInfo suites[] = {
	{ "channels", NULL, NULL, NULL, NULL, tests },
	CU_SUITE_INFO_NULL,
};

int main(void)
{
	return vmig_test_run(suites);
}
