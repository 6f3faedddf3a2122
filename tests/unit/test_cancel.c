/*
 * test_cancel.c: vmig_cancel() from another thread ends a migration at
 * any moment, with the guest running on the source.
 *
 * Each test brings the migration to one moment and only then cancels,
 * from a thread of its own: the set-up (a destination that accepts,
 * reads HELLO and never answers), iteration 0 of a large sparse guest
 * under a tiny bandwidth limit, the switchover wait (a relay holds the
 * destination's ACK), and the destination's side (while it receives, and
 * while it waits for a source). The moment is known from an event, or
 * from what the driven destination has read: never from a sleep. Every
 * wait the test does not end is far away (60 s), so that only the cancel
 * can end the migration; the time a cancel takes is the benchmark's
 * (vmig-bench-migrate cancel), never asserted here.
 *
 * After each: the migration says cancelled, the source's VMM was resumed
 * exactly as often as it was stopped (the guest runs there), and the
 * destination never started the guest.
 */
#include <errno.h>
#include <pthread.h>
#include <sched.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <netdb.h>
#include <sys/mman.h>
#include <time.h>
#include <arpa/inet.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#include <CUnit/CUnit.h>
#include <vmig/vmig.h>

#include "core/proto.h"
#include "core/transport/transport.h"
#include "testutil.h"
#include "common/frames.h"
#include "common/relay.h"
#include "common/vmmcount.h"
#include "sessionutil.h"

#define PG 4096u
#define FAR_MS 60000u

/* ------------------------------------------------------------------ */
/* The canceller: a thread that cancels once a moment is reached       */

struct canceller {
	pthread_mutex_t lock;
	pthread_cond_t cond;
	bool reached;            /* the moment came */
	bool quit;               /* the migration ended first */
	vmig_session *target;    /* whom to cancel */
	uint32_t phase;          /* the source phase that is the moment, or 0 */
	int ret;                 /* vmig_cancel's */
	bool cancelled;
	pthread_t thread;
};

static void *canceller_main(void *opaque)
{
	struct canceller *c = opaque;

	pthread_mutex_lock(&c->lock);
	while (!c->reached && !c->quit)
		pthread_cond_wait(&c->cond, &c->lock);
	if (c->reached) {
		c->ret = vmig_cancel(c->target);
		c->cancelled = true;
	}
	pthread_mutex_unlock(&c->lock);
	return NULL;
}

static void canceller_start(struct canceller *c, vmig_session *target,
			    uint32_t phase)
{
	memset(c, 0, sizeof(*c));
	pthread_mutex_init(&c->lock, NULL);
	pthread_cond_init(&c->cond, NULL);
	c->target = target;
	c->phase = phase;
	c->ret = 1;
	CU_ASSERT_FATAL(pthread_create(&c->thread, NULL, canceller_main, c) ==
			0);
}

static void canceller_reach(struct canceller *c)
{
	pthread_mutex_lock(&c->lock);
	c->reached = true;
	pthread_cond_broadcast(&c->cond);
	pthread_mutex_unlock(&c->lock);
}

/* Waits for the thread; true when it cancelled (and vmig_cancel said 0). */
static bool canceller_join(struct canceller *c)
{
	pthread_mutex_lock(&c->lock);
	c->quit = true;
	pthread_cond_broadcast(&c->cond);
	pthread_mutex_unlock(&c->lock);
	pthread_join(c->thread, NULL);
	pthread_mutex_destroy(&c->lock);
	pthread_cond_destroy(&c->cond);
	return c->cancelled && c->ret == 0;
}

/* The source's events: the phase that is the moment reaches it. */
static void on_event(void *opaque, const struct vmig_event *ev)
{
	struct canceller *c = opaque;

	if (ev->type == VMIG_EVENT_PHASE && c->phase && ev->phase == c->phase)
		canceller_reach(c);
}

/* ------------------------------------------------------------------ */
/* Sessions                                                            */

/* Far bounds: only the cancel ends a migration here. */
static void far_policies(vmig_session *s, uint64_t bandwidth, uint32_t conns)
{
	struct vmig_policies p = {
		.size = sizeof(p),
		.downtime_limit_ms = 60000,
		.bandwidth_limit = bandwidth,
		.timeout_ms = 0,
		.switchover_timeout_ms = FAR_MS,
		.handshake_timeout_ms = FAR_MS,
		.idle_timeout_ms = FAR_MS,
		.connections = conns,
	};

	CU_ASSERT_FATAL(vmig_set_policies(s, &p) == 0);
}

/* A region of len bytes, private anonymous, data in its first data bytes. */
static uint8_t *guest_map(size_t len, size_t data)
{
	uint8_t *m = mmap(NULL, len, PROT_READ | PROT_WRITE,
			  MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0);
	size_t i;

	CU_ASSERT_FATAL(m != MAP_FAILED);
	for (i = 0; i < data; i += 64)
		m[i] = (uint8_t)(i / 64 + 1);
	return m;
}

static vmig_session *session(int role, uint8_t *mem, size_t len,
			     uint32_t flags, struct vmig_vmm_count *vc)
{
	return vmig_test_region_session(role, mem, len, flags, -1, vc);
}

struct receiver {
	vmig_session *s;
	int ret;
	pthread_t thread;
};

static void *receive_main(void *opaque)
{
	struct receiver *r = opaque;

	r->ret = vmig_receive(r->s);
	return NULL;
}

static void unix_path(char *buf, size_t len, const char *what)
{
	snprintf(buf, len, "/tmp/vmig-cancel-%d-%s", (int)getpid(), what);
	unlink(buf);
}

/* A destination listening on path, receiving in a thread of its own. */
static void receiver_start(struct receiver *r, vmig_session *s,
			   const char *path)
{
	char addr[160];

	snprintf(addr, sizeof(addr), "unix:%s", path);
	r->s = s;
	r->ret = 1;
	CU_ASSERT_FATAL(vmig_listen(s, addr, NULL, 0) == 0);
	CU_ASSERT_FATAL(pthread_create(&r->thread, NULL, receive_main, r) ==
			0);
}

static const char *report_result(vmig_session *s, char *buf, size_t len)
{
	cJSON *rep = json_session_report(s);
	const cJSON *v = cJSON_GetObjectItem(rep, "result");

	snprintf(buf, len, "%s", cJSON_IsString(v) ? v->valuestring : "?");
	cJSON_Delete(rep);
	return buf;
}

/* The source ended cancelled, its guest running there. */
static void check_source_cancelled(vmig_session *s, int ret,
				   const struct vmig_vmm_count *vc,
				   unsigned int stops)
{
	struct vmig_status st = { .size = sizeof(st) };
	char res[64];

	CU_ASSERT_EQUAL(ret, -ECANCELED);
	CU_ASSERT(has(vmig_errmsg(s), "cancelled (vmig_cancel)"));
	CU_ASSERT_EQUAL(atomic_load(&vc->stops), stops);
	CU_ASSERT_EQUAL(atomic_load(&vc->resumes), stops);
	CU_ASSERT_EQUAL(atomic_load(&vc->starts), 0);
	CU_ASSERT(vmig_query(s, &st) == 0);
	CU_ASSERT_EQUAL(st.phase, VMIG_PHASE_FAILED);
	CU_ASSERT_STRING_EQUAL(report_result(s, res, sizeof(res)),
			       "cancelled");
}

/* ------------------------------------------------------------------ */
/* The moments                                                         */

struct mute {
	int lfd, fd;
	char path[108];
	bool hello;     /* it read the source's HELLO */
	pthread_t thread;
	struct canceller *c;
};

/* Accepts, reads HELLO, tells the canceller, then only reads. */
static void *mute_main(void *opaque)
{
	struct mute *m = opaque;
	static uint8_t buf[65536];
	uint8_t hdr[VMIG_TEST_FRAME_HDR];

	m->fd = accept(m->lfd, NULL, NULL);
	if (m->fd < 0)
		return NULL;
	m->hello = read_frame(m->fd, hdr, buf, sizeof(buf)) ==
		   VMIG_FRAME_HELLO;
	canceller_reach(m->c);
	/* Never a reply: whatever comes is read until the source closes. */
	while (read_frame(m->fd, hdr, buf, sizeof(buf)) >= 0)
		;
	return NULL;
}

/*
 * Set-up: the destination accepted and read HELLO, and never answers
 * (its handshake bound is 60 s away).
 */
static void test_setup(void)
{
	struct sockaddr_un a = { .sun_family = AF_UNIX };
	struct vmig_vmm_count vc = { 0 };
	struct canceller c;
	struct mute m = { .fd = -1 };
	char addr[160];
	uint8_t *mem = guest_map(16 * PG, 16 * PG);
	vmig_session *s = session(VMIG_ROLE_SOURCE, mem, 16 * PG, 0, &vc);
	int ret;

	far_policies(s, 0, 0);
	unix_path(m.path, sizeof(m.path), "mute");
	snprintf(a.sun_path, sizeof(a.sun_path), "%s", m.path);
	m.lfd = socket(AF_UNIX, SOCK_STREAM, 0);
	CU_ASSERT_FATAL(m.lfd >= 0);
	CU_ASSERT_FATAL(bind(m.lfd, (struct sockaddr *)&a, sizeof(a)) == 0);
	CU_ASSERT_FATAL(listen(m.lfd, 1) == 0);
	canceller_start(&c, s, 0);
	m.c = &c;
	CU_ASSERT_FATAL(pthread_create(&m.thread, NULL, mute_main, &m) == 0);
	snprintf(addr, sizeof(addr), "unix:%s", m.path);
	ret = vmig_migrate(s, addr);
	CU_ASSERT(canceller_join(&c));
	pthread_join(m.thread, NULL);
	CU_ASSERT(m.hello);
	check_source_cancelled(s, ret, &vc, 0);
	CU_ASSERT(has(vmig_errmsg(s), "at iteration 0"));
	if (m.fd >= 0)
		close(m.fd);
	close(m.lfd);
	unlink(m.path);
	vmig_session_free(s);
	munmap(mem, 16 * PG);
}

/* A TCP listener on 127.0.0.1, any port (its address in *a). */
static int loopback_listener(struct sockaddr_in *a, int backlog)
{
	socklen_t alen = sizeof(*a);
	int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);

	memset(a, 0, sizeof(*a));
	a->sin_family = AF_INET;
	a->sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	CU_ASSERT_FATAL(fd >= 0);
	CU_ASSERT_FATAL(bind(fd, (struct sockaddr *)a, sizeof(*a)) == 0);
	CU_ASSERT_FATAL(getsockname(fd, (struct sockaddr *)a, &alen) == 0);
	CU_ASSERT_FATAL(listen(fd, backlog) == 0);
	return fd;
}

/* Accepts, reads the first bytes, tells the canceller, then only reads. */
static void *silent_main(void *opaque)
{
	struct mute *m = opaque;
	uint8_t buf[4096];
	ssize_t n;

	m->fd = accept(m->lfd, NULL, NULL);
	if (m->fd < 0)
		return NULL;
	n = read(m->fd, buf, sizeof(buf));
	m->hello = n > 0;
	canceller_reach(m->c);
	while (n > 0)
		n = read(m->fd, buf, sizeof(buf));
	return NULL;
}

/*
 * Set-up, in the TLS handshake: the destination accepts TCP and reads
 * the source's first handshake message, and never answers (the TLS
 * layer's own bound, and the handshake's, are 30 and 60 s away).
 */
static void test_tls_handshake(void)
{
	struct sockaddr_in a;
	struct vmig_vmm_count vc = { 0 };
	struct canceller c;
	struct mute m = { .fd = loopback_listener(&a, 1) };
	char addr[256], key[108];
	uint8_t *mem = guest_map(16 * PG, 16 * PG);
	vmig_session *s = session(VMIG_ROLE_SOURCE, mem, 16 * PG, 0, &vc);
	FILE *f;
	int ret;

	unix_path(key, sizeof(key), "psk");
	f = fopen(key, "w");
	CU_ASSERT_FATAL(f != NULL);
	fputs("8f2b6c1d0e9a7b3c5d4e6f708192a3b4"
	      "c5d6e7f8091a2b3c4d5e6f7081920a1b\n", f);
	fclose(f);
	m.lfd = m.fd;
	m.fd = -1;
	far_policies(s, 0, 0);
	canceller_start(&c, s, 0);
	m.c = &c;
	CU_ASSERT_FATAL(pthread_create(&m.thread, NULL, silent_main, &m) ==
			0);
	snprintf(addr, sizeof(addr), "tls-psk:127.0.0.1:%u?key=%s",
		 (unsigned int)ntohs(a.sin_port), key);
	ret = vmig_migrate(s, addr);
	CU_ASSERT(canceller_join(&c));
	pthread_join(m.thread, NULL);
	/* The handshake had begun: its first message arrived. */
	CU_ASSERT(m.hello);
	check_source_cancelled(s, ret, &vc, 0);
	if (m.fd >= 0)
		close(m.fd);
	close(m.lfd);
	unlink(key);
	vmig_session_free(s);
	munmap(mem, 16 * PG);
}

/* A resolver that answers only when released (or after 60 s). */
static pthread_mutex_t slow_lock = PTHREAD_MUTEX_INITIALIZER;
static pthread_cond_t slow_cond = PTHREAD_COND_INITIALIZER;
static bool slow_released;

static int slow_lookup(const char *host, const char *port,
		       const struct addrinfo *hints, struct addrinfo **res)
{
	struct timespec until;

	(void)host;
	(void)port;
	(void)hints;
	*res = NULL;
	clock_gettime(CLOCK_REALTIME, &until);
	until.tv_sec += 60;
	pthread_mutex_lock(&slow_lock);
	while (!slow_released &&
	       pthread_cond_timedwait(&slow_cond, &slow_lock, &until) == 0)
		;
	pthread_mutex_unlock(&slow_lock);
	return EAI_NONAME;
}

/*
 * Set-up, looking up the destination's name: the resolver does not
 * answer until released, which happens only after vmig_migrate returned.
 */
static void test_name_lookup(void)
{
	struct vmig_vmm_count vc = { 0 };
	struct canceller c;
	uint8_t *mem = guest_map(16 * PG, 16 * PG);
	vmig_session *s = session(VMIG_ROLE_SOURCE, mem, 16 * PG, 0, &vc);
	int ret;

	vmig_tcp_lookup = slow_lookup;
	far_policies(s, 0, 0);
	canceller_start(&c, s, VMIG_PHASE_SETUP);
	CU_ASSERT_FATAL(vmig_set_event_callback(s, on_event, &c) == 0);
	ret = vmig_migrate(s, "tcp:vmig-cancel.invalid:4444");
	CU_ASSERT(canceller_join(&c));
	check_source_cancelled(s, ret, &vc, 0);
	pthread_mutex_lock(&slow_lock);
	/* Returned while the lookup still waited: nothing answered it. */
	CU_ASSERT_FALSE(slow_released);
	slow_released = true;
	pthread_cond_broadcast(&slow_cond);
	pthread_mutex_unlock(&slow_lock);
	vmig_tcp_lookup = getaddrinfo;
	vmig_session_free(s);
	munmap(mem, 16 * PG);
}

/* A resolver that knows no name. */
static int no_lookup(const char *host, const char *port,
		     const struct addrinfo *hints, struct addrinfo **res)
{
	(void)host;
	(void)port;
	(void)hints;
	*res = NULL;
	return EAI_NONAME;
}

/* A name that does not resolve: the source fails, saying which. */
static void test_name_unknown(void)
{
	struct vmig_vmm_count vc = { 0 };
	uint8_t *mem = guest_map(16 * PG, 16 * PG);
	vmig_session *s = session(VMIG_ROLE_SOURCE, mem, 16 * PG, 0, &vc);

	vmig_tcp_lookup = no_lookup;
	far_policies(s, 0, 0);
	CU_ASSERT_EQUAL(vmig_migrate(s, "tcp:vmig-none.invalid:4444"),
			-ENOENT);
	CU_ASSERT(has(vmig_errmsg(s), "tcp:vmig-none.invalid:4444: cannot "
				      "resolve \"vmig-none.invalid\": no such "
				      "host"));
	CU_ASSERT_EQUAL(atomic_load(&vc.stops), 0);
	vmig_tcp_lookup = getaddrinfo;
	vmig_session_free(s);
	munmap(mem, 16 * PG);
}

/*
 * Set-up, still connecting: the destination's accept queue is full (a
 * backlog of 0 and one connection in it), so the kernel drops the
 * source's SYN and retries it for minutes. Cancelled once the source says
 * it sets up (its connect is then issued: the cancel runs on its loop).
 */
static void test_connecting(void)
{
	struct sockaddr_in a;
	struct vmig_vmm_count vc = { 0 };
	struct canceller c;
	char addr[64];
	uint8_t *mem = guest_map(16 * PG, 16 * PG);
	vmig_session *s = session(VMIG_ROLE_SOURCE, mem, 16 * PG, 0, &vc);
	int lfd = loopback_listener(&a, 0);
	int filler = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
	int ret;

	CU_ASSERT_FATAL(filler >= 0);
	CU_ASSERT_FATAL(connect(filler, (struct sockaddr *)&a, sizeof(a)) ==
			0);
	far_policies(s, 0, 0);
	canceller_start(&c, s, VMIG_PHASE_SETUP);
	CU_ASSERT_FATAL(vmig_set_event_callback(s, on_event, &c) == 0);
	snprintf(addr, sizeof(addr), "tcp:127.0.0.1:%u",
		 (unsigned int)ntohs(a.sin_port));
	ret = vmig_migrate(s, addr);
	CU_ASSERT(canceller_join(&c));
	check_source_cancelled(s, ret, &vc, 0);
	close(filler);
	close(lfd);
	vmig_session_free(s);
	munmap(mem, 16 * PG);
}

#define BIG (1ull << 30)        /* a large guest, mostly never written */
#define BIG_DATA (8ull << 20)   /* of which data */
#define TINY_BW (64ull << 10)   /* bytes per second: 128 s of data */

/*
 * Iteration 0 of a 1 GiB guest (8 MiB of data, the rest never written)
 * under a bandwidth limit that makes it last minutes, its pages on conns
 * data connections (0: the main stream). With cancel_dst, the
 * destination is cancelled instead of the source.
 */
static void iteration0(bool cancel_dst, uint32_t conns)
{
	struct vmig_vmm_count svc = { 0 }, dvc = { 0 };
	struct vmig_status st = { .size = sizeof(st) };
	struct canceller c;
	struct receiver r;
	char path[108];
	uint8_t *smem = guest_map(BIG, BIG_DATA), *dmem = guest_map(BIG, 0);
	vmig_session *s = session(VMIG_ROLE_SOURCE, smem, BIG,
				  VMIG_REGION_ANON_PRIVATE, &svc);
	vmig_session *d = session(VMIG_ROLE_DESTINATION, dmem, BIG,
				  VMIG_REGION_FRESH, &dvc);
	char addr[160];
	int ret;

	far_policies(s, TINY_BW, conns);
	unix_path(path, sizeof(path), cancel_dst ? "i0d" : "i0s");
	receiver_start(&r, d, path);
	canceller_start(&c, cancel_dst ? d : s, VMIG_PHASE_PRECOPY);
	CU_ASSERT_FATAL(vmig_set_event_callback(s, on_event, &c) == 0);
	snprintf(addr, sizeof(addr), "unix:%s", path);
	ret = vmig_migrate(s, addr);
	CU_ASSERT(canceller_join(&c));
	pthread_join(r.thread, NULL);
	CU_ASSERT(vmig_query(s, &st) == 0);
	CU_ASSERT_EQUAL(st.iteration, 0);
	/* In the middle of it: most of the data never went. */
	CU_ASSERT(st.bytes_sent < BIG_DATA / 2);
	CU_ASSERT_EQUAL(atomic_load(&dvc.starts), 0);
	if (cancel_dst) {
		CU_ASSERT_EQUAL(r.ret, -ECANCELED);
		CU_ASSERT(has(vmig_errmsg(d), "cancelled"));
		/* The source failed, its guest never stopped. */
		CU_ASSERT(ret < 0);
		CU_ASSERT_EQUAL(atomic_load(&svc.stops), 0);
		CU_ASSERT_EQUAL(atomic_load(&svc.resumes), 0);
	} else {
		check_source_cancelled(s, ret, &svc, 0);
		CU_ASSERT(has(vmig_errmsg(s), "at iteration 0"));
		CU_ASSERT(r.ret < 0);
	}
	vmig_session_free(s);
	vmig_session_free(d);
	munmap(smem, BIG);
	munmap(dmem, BIG);
}

static void test_iteration0(void)
{
	iteration0(false, 0);
}

static void test_destination_receiving(void)
{
	iteration0(true, 0);
}

/* The same with the pages on three data connections of their own. */
static void test_iteration0_connections(void)
{
	iteration0(false, 3);
}

static void test_destination_receiving_connections(void)
{
	iteration0(true, 3);
}

/*
 * The switchover wait: the guest is stopped and the relay holds what the
 * destination sends after WELCOME, its ACK (the bound,
 * switchover_timeout_ms, is 60 s away).
 */
static void test_switchover_wait(void)
{
	struct vmig_vmm_count svc = { 0 }, dvc = { 0 };
	struct canceller c;
	struct receiver r;
	struct relay rl;
	char dpath[108], spath[108];
	size_t len = 64 * PG;
	uint8_t *smem = guest_map(len, len / 2), *dmem = guest_map(len, 0);
	vmig_session *s = session(VMIG_ROLE_SOURCE, smem, len, 0, &svc);
	vmig_session *d = session(VMIG_ROLE_DESTINATION, dmem, len, 0, &dvc);
	int ret;

	far_policies(s, 0, 0);
	unix_path(dpath, sizeof(dpath), "swd");
	unix_path(spath, sizeof(spath), "sws");
	receiver_start(&r, d, dpath);
	/* WELCOME (a header alone) goes back, nothing after it. */
	CU_ASSERT_FATAL(relay_start(&rl, spath, dpath, RELAY_D2S,
				    VMIG_TEST_FRAME_HDR, VMIG_FRAME_WELCOME + 0,
				    true) == 0);
	canceller_start(&c, s, VMIG_PHASE_SWITCHOVER);
	CU_ASSERT_FATAL(vmig_set_event_callback(s, on_event, &c) == 0);
	ret = vmig_migrate(s, rl.src_addr);
	CU_ASSERT(canceller_join(&c));
	/* The ACK never reached the source. */
	CU_ASSERT(relay_frame_off(&rl, RELAY_D2S, VMIG_FRAME_ACK + 0) < 0);
	relay_stop(&rl);
	pthread_join(r.thread, NULL);
	check_source_cancelled(s, ret, &svc, 1);
	CU_ASSERT(has(vmig_errmsg(s), "after the switchover"));
	CU_ASSERT_EQUAL(atomic_load(&dvc.starts), 0);
	CU_ASSERT(r.ret < 0);
	vmig_session_free(s);
	vmig_session_free(d);
	munmap(smem, len);
	munmap(dmem, len);
}

/* The destination, listening, before any source came. */
static void test_destination_listening(void)
{
	struct vmig_vmm_count dvc = { 0 };
	struct receiver r;
	char path[108];
	uint8_t *dmem = guest_map(16 * PG, 0);
	vmig_session *d = session(VMIG_ROLE_DESTINATION, dmem, 16 * PG, 0,
				  &dvc);
	int ret;

	unix_path(path, sizeof(path), "listen");
	receiver_start(&r, d, path);
	/*
	 * vmig_cancel says -EINVAL until vmig_receive runs: asked again
	 * until it takes (no time is assumed).
	 */
	while ((ret = vmig_cancel(d)) == -EINVAL)
		sched_yield();
	CU_ASSERT_EQUAL(ret, 0);
	pthread_join(r.thread, NULL);
	CU_ASSERT_EQUAL(r.ret, -ECANCELED);
	CU_ASSERT_EQUAL(atomic_load(&dvc.starts), 0);
	vmig_session_free(d);
	munmap(dmem, 16 * PG);
}

static CU_TestInfo tests[] = {
	{ "set-up: a connect never answered", test_connecting },
	{ "set-up: a destination that never answers", test_setup },
	{ "set-up: a TLS handshake never answered", test_tls_handshake },
	{ "set-up: a name being looked up", test_name_lookup },
	{ "set-up: a name that does not resolve", test_name_unknown },
	{ "iteration 0 of a large sparse guest, bandwidth-limited",
	  test_iteration0 },
	{ "the switchover wait: the ACK held", test_switchover_wait },
	{ "the destination, receiving", test_destination_receiving },
	{ "iteration 0 over 3 data connections", test_iteration0_connections },
	{ "the destination, receiving over 3 data connections",
	  test_destination_receiving_connections },
	{ "the destination, listening", test_destination_listening },
	CU_TEST_INFO_NULL,
};

VMIG_TEST_MAIN_SUITE(VMIG_SUITE("cancel", tests))
