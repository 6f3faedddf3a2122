/*
 * test_migrate.c: live migration between two processes, with the built
 * `vmig` program as a user runs it.
 *
 * A destination (`vmig run dst.json`, port 0 or a unix socket) says where
 * it listens; a source (`vmig run src.json`) migrates to it while its
 * simulated devices keep writing. Both write their reports and dump their
 * guest memory at the end, and the dumps are compared page by page. Over
 * a unix socket, TCP on loopback, and TCP between two network namespaces
 * joined by a veth pair that the test creates (root only). Then what must
 * fail cleanly: SIGINT to the source mid-migration, the destination
 * killed mid-stream, and a proxy between the two that cuts the stream or
 * flips a byte of a frame header. Each time the source says precisely
 * why, and its guest runs again.
 *
 * Every wait has a limit; every process, socket and namespace the test
 * makes is removed.
 */
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <pthread.h>
#include <signal.h>
#include <spawn.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include <cjson/cJSON.h>

#include "common/report.h"
#include "common/sendall.h"
#include "e2e/runner.h"
#include "unit/testutil.h"

#define VMIG VMIG_BINARY_DIR "/bin/vmig"
#define PG 4096
#define WAIT_MS 60000 /* the longest any process may take */

extern char **environ;

static char tmpdir[64];

static uint64_t now_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000u + (uint64_t)ts.tv_nsec / 1000000u;
}

static void sleep_ms(unsigned int ms)
{
	struct timespec ts = { ms / 1000, (long)(ms % 1000) * 1000000 };

	nanosleep(&ts, NULL);
}

static void path_in(char *buf, size_t len, const char *name)
{
	snprintf(buf, len, "%s/%s", tmpdir, name);
}

static bool has_either(const char *hay, const char *a, const char *b)
{
	if (strstr(hay, a) || strstr(hay, b))
		return true;
	fprintf(stderr, "\n  neither \"%s\" nor \"%s\" in \"%s\"\n", a, b,
		hay);
	return false;
}

/* ------------------------------------------------------------------ */
/* Processes                                                           */

struct proc {
	pid_t pid;
	int out;        /* the read end of its stdout (destinations) */
	int status;     /* exit status, or -1 (killed, or not waited) */
	char err[96];   /* the file its stderr goes to */
};

/*
 * Starts argv (argv[0] is found in PATH) with stderr to a file of the
 * test's and stdout to a pipe (out_pipe) or /dev/null.
 */
static void spawn(struct proc *p, const char *name, bool out_pipe,
		  const char *const *argv)
{
	posix_spawn_file_actions_t fa;
	int fds[2] = { -1, -1 };

	memset(p, 0, sizeof(*p));
	p->status = -1;
	p->out = -1;
	path_in(p->err, sizeof(p->err), name);
	posix_spawn_file_actions_init(&fa);
	if (out_pipe) {
		CU_ASSERT_FATAL(pipe2(fds, O_CLOEXEC) == 0);
		posix_spawn_file_actions_adddup2(&fa, fds[1], 1);
	} else {
		posix_spawn_file_actions_addopen(&fa, 1, "/dev/null", O_WRONLY,
						 0);
	}
	posix_spawn_file_actions_addopen(&fa, 2, p->err,
					 O_WRONLY | O_CREAT | O_TRUNC, 0600);
	CU_ASSERT_FATAL(posix_spawnp(&p->pid, argv[0], &fa, NULL,
				     (char *const *)argv, environ) == 0);
	posix_spawn_file_actions_destroy(&fa);
	if (out_pipe) {
		close(fds[1]);
		p->out = fds[0];
	}
}

/* Waits for p to exit, at most ms; kills it past that. */
static int reap(struct proc *p, unsigned int ms)
{
	uint64_t end = now_ms() + ms;
	int ws;

	if (p->pid <= 0)
		return p->status;
	for (;;) {
		pid_t r = waitpid(p->pid, &ws, WNOHANG);

		if (r == p->pid)
			break;
		if (now_ms() > end) {
			kill(p->pid, SIGKILL);
			waitpid(p->pid, &ws, 0);
			fprintf(stderr, "\n  %s: killed after %u ms\n", p->err,
				ms);
			ws = -1;
			break;
		}
		sleep_ms(10);
	}
	p->pid = 0;
	p->status = ws != -1 && WIFEXITED(ws) ? WEXITSTATUS(ws) : -1;
	if (p->out >= 0)
		close(p->out);
	p->out = -1;
	return p->status;
}

/* Reads the destination's "listening on ADDRESS" line (bounded). */
static bool read_listening(struct proc *p, char *addr, size_t len)
{
	char line[200];
	size_t n = 0;
	uint64_t end = now_ms() + 20000;

	while (n < sizeof(line) - 1 && now_ms() < end) {
		struct pollfd pfd = { .fd = p->out, .events = POLLIN };
		ssize_t r;

		if (poll(&pfd, 1, 100) <= 0)
			continue;
		r = read(p->out, line + n, 1);
		if (r <= 0)
			break;
		if (line[n] == '\n') {
			line[n] = '\0';
			if (strncmp(line, "listening on ", 13))
				break;
			snprintf(addr, len, "%s", line + 13);
			return true;
		}
		n++;
	}
	line[n] = '\0';
	fprintf(stderr, "\n  no \"listening on\" line (got \"%s\")\n", line);
	return false;
}

/* Waits until file contains text (bounded). */
static bool wait_for(const char *file, const char *text, unsigned int ms)
{
	static char buf[1 << 18];
	uint64_t end = now_ms() + ms;

	while (now_ms() < end) {
		vmig_slurp(file, buf, sizeof(buf));
		if (strstr(buf, text))
			return true;
		sleep_ms(20);
	}
	fprintf(stderr, "\n  \"%s\" never appeared in %s\n", text, file);
	return false;
}

/* ------------------------------------------------------------------ */
/* Configurations                                                      */

/*
 * 24 MiB of guest memory; a vfio-pci function that writes a 4 MiB window
 * at random (all-mapped by type1) and an mdev that writes region "high"
 * with a hot spot (exact). With fill, region "low" starts full of data
 * (on the source: the destination's stays zero until the stream fills
 * it), so that every pass over the function's window sends 4 MiB and
 * lasts long enough for the devices to write during it.
 */
static void write_config(const char *name, const char *role,
			 const char *transport, const char *policies,
			 bool fill)
{
	char path[128];
	FILE *f;

	path_in(path, sizeof(path), name);
	f = fopen(path, "w");
	CU_ASSERT_FATAL(f != NULL);
	fprintf(f,
		"{\n"
		"  \"role\": \"%s\",\n"
		"  \"transport\": \"%s\",\n"
		"  \"memory\": [ { \"name\": \"low\", \"gpa\": 0, "
		"\"size\": \"16M\", \"fill\": \"%s\" },\n"
		"              { \"name\": \"high\", \"gpa\": \"0x100000000\", "
		"\"size\": \"8M\" } ],\n"
		"  \"devices\": [\n"
		"    { \"name\": \"nic0\", \"kind\": \"vfio-pci\", \"group\": 10,\n"
		"      \"container\": \"pt\" },\n"
		"    { \"name\": \"vgpu0\", \"kind\": \"mdev\", \"group\": 20,\n"
		"      \"address\": \"mdev-e2e\", \"container\": \"med\" } ],\n"
		"  \"dma_mappings\": [\n"
		"    { \"space\": \"pt\", \"iova\": \"0x100000\", "
		"\"gpa\": \"0x100000\", \"size\": \"4M\" },\n"
		"    { \"space\": \"med\", \"iova\": \"0x100000000\", "
		"\"gpa\": \"0x100000000\", \"size\": \"8M\" } ],\n"
		"  \"policies\": { %s },\n"
		"  \"kernel\": { \"type\": \"simulated\", \"devices\": [\n"
		"    { \"name\": \"nic0\", \"dma\": { \"pattern\": \"random\",\n"
		"      \"writes_per_step\": 32 } },\n"
		"    { \"name\": \"vgpu0\", \"dma\": { \"pattern\": \"hotspot\",\n"
		"      \"writes_per_step\": 16 } } ] }\n"
		"}\n",
		role, transport, fill ? "random" : "zero", policies);
	fclose(f);
}

/*
 * Four pre-copy iterations while the devices write (the limit of 1 ms
 * cannot be met: the function's window is dirty at every sync), then the
 * switchover is forced.
 */
#define POLICIES_OK \
	"\"downtime_limit_ms\": 1, \"max_iterations\": 4, " \
	"\"bandwidth_limit\": \"32M\", " \
	"\"timeout_strategy\": \"force\""
/* Slow (2 MiB/s) and never converging: long enough to be interrupted. */
#define POLICIES_SLOW \
	"\"downtime_limit_ms\": 1, \"max_iterations\": 1000, " \
	"\"bandwidth_limit\": \"2M\""

/* Optionally a prefix (ip netns exec NS) to the vmig command. */
struct run {
	const char *ns_src, *ns_dst;
	struct proc src, dst;
	char addr[256];
	char src_report[128], dst_report[128], src_dump[128], dst_dump[128];
};

static void argv_run(const char **argv, const char *ns, const char *config,
		     const char *report, const char *dump, bool verbose)
{
	static char cfg[8][128];
	static int slot;
	int n = 0;

	if (ns) {
		argv[n++] = "ip";
		argv[n++] = "netns";
		argv[n++] = "exec";
		argv[n++] = ns;
	}
	argv[n++] = VMIG;
	if (verbose)
		argv[n++] = "-v";
	argv[n++] = "run";
	slot = (slot + 1) % 8;
	path_in(cfg[slot], sizeof(cfg[slot]), config);
	argv[n++] = cfg[slot];
	argv[n++] = "--report";
	argv[n++] = report;
	argv[n++] = "--dump-memory";
	argv[n++] = dump;
	argv[n] = NULL;
}

/* Starts the destination and reads where it listens. */
static bool start_destination(struct run *r, const char *transport)
{
	const char *argv[16];

	path_in(r->dst_report, sizeof(r->dst_report), "dst-report.json");
	path_in(r->dst_dump, sizeof(r->dst_dump), "dst-memory.bin");
	path_in(r->src_report, sizeof(r->src_report), "src-report.json");
	path_in(r->src_dump, sizeof(r->src_dump), "src-memory.bin");
	unlink(r->dst_report);
	unlink(r->src_report);
	write_config("dst.json", "destination", transport, "", false);
	argv_run(argv, r->ns_dst, "dst.json", r->dst_report, r->dst_dump,
		 true);
	spawn(&r->dst, "dst.err", true, argv);
	return read_listening(&r->dst, r->addr, sizeof(r->addr));
}

static void start_source(struct run *r, const char *transport,
			 const char *policies, bool fill)
{
	const char *argv[16];

	write_config("src.json", "source", transport, policies, fill);
	argv_run(argv, r->ns_src, "src.json", r->src_report, r->src_dump,
		 true);
	spawn(&r->src, "src.err", false, argv);
}

/* Pages of two dumps that differ; -1 when they cannot be compared. */
static long dumps_differ(const char *a, const char *b, size_t want_len)
{
	FILE *fa = fopen(a, "r"), *fb = fopen(b, "r");
	char pa[PG], pb[PG];
	size_t total = 0;
	long n = 0;

	if (!fa || !fb) {
		if (fa)
			fclose(fa);
		if (fb)
			fclose(fb);
		return -1;
	}
	for (;;) {
		size_t ra = fread(pa, 1, PG, fa), rb = fread(pb, 1, PG, fb);

		if (ra != rb) {
			n = -1;
			break;
		}
		if (!ra)
			break;
		total += ra;
		n += memcmp(pa, pb, ra) != 0;
	}
	fclose(fa);
	fclose(fb);
	return total == want_len ? n : -1;
}

static void show_logs(struct run *r)
{
	static char buf[8192];

	vmig_slurp(r->src.err, buf, sizeof(buf));
	fprintf(stderr, "\n--- source stderr\n%s", buf);
	vmig_slurp(r->dst.err, buf, sizeof(buf));
	fprintf(stderr, "--- destination stderr\n%s", buf);
}

/* A whole migration that must complete, checked on both sides. */
static void migrate_ok(struct run *r, const char *dst_transport)
{
	char transport[300];
	cJSON *src, *dst, *it;
	int n = 0, busy = 0, s_st, d_st;

	if (!start_destination(r, dst_transport)) {
		reap(&r->dst, 100);
		show_logs(r);
		CU_FAIL_FATAL("the destination does not listen");
	}
	snprintf(transport, sizeof(transport), "%s", r->addr);
	start_source(r, transport, POLICIES_OK, true);
	s_st = reap(&r->src, WAIT_MS);
	d_st = reap(&r->dst, WAIT_MS);
	if (s_st || d_st)
		show_logs(r);
	CU_ASSERT_EQUAL(s_st, 0);
	CU_ASSERT_EQUAL(d_st, 0);
	src = vmig_load_json(r->src_report);
	dst = vmig_load_json(r->dst_report);
	CU_ASSERT_FATAL(src && dst);
	CU_ASSERT_STRING_EQUAL(json_str(src, "result"), "completed");
	CU_ASSERT_STRING_EQUAL(json_str(dst, "result"), "completed");
	CU_ASSERT(cJSON_IsTrue(cJSON_GetObjectItem(src, "memory_match")));
	CU_ASSERT(cJSON_IsTrue(cJSON_GetObjectItem(dst, "memory_match")));
	CU_ASSERT_STRING_EQUAL(json_str(src, "digest"),
			       json_str(dst, "digest"));
	CU_ASSERT_EQUAL(json_num(src, "pages_missed"), 0);
	CU_ASSERT_STRING_EQUAL(json_str(src, "guest"), "migrated");
	CU_ASSERT_STRING_EQUAL(json_str(dst, "guest"), "started");
	/*
	 * The devices wrote during the whole pre-copy, all of it seen by the
	 * sources: between every two syncs (the simulated guest takes a
	 * fixed number of steps between two syncs, whatever the machine's
	 * speed), and every pass sent the whole window.
	 */
	CU_ASSERT_EQUAL(cJSON_GetArraySize(cJSON_GetObjectItem(src,
							       "iterations")),
			5);
	cJSON_ArrayForEach(it, cJSON_GetObjectItem(src, "iterations")) {
		if (n++ && json_num(it, "pages_written") > 0 &&
		    json_num(it, "pages_sent") >= 1024)
			busy++;
	}
	if (busy < 4) {
		char *text = cJSON_Print(cJSON_GetObjectItem(src,
							     "iterations"));

		fprintf(stderr, "\n  an idle pass: %s\n", text);
		free(text);
	}
	CU_ASSERT_EQUAL(busy, 4);
	/* The destination's memory is the source's, page by page. */
	CU_ASSERT_EQUAL(dumps_differ(r->src_dump, r->dst_dump, 24 << 20), 0);
	cJSON_Delete(src);
	cJSON_Delete(dst);
}

/* ------------------------------------------------------------------ */
/* Completing                                                          */

static void test_unix(void)
{
	struct run r = { 0 };
	char sock[128], addr[160];

	path_in(sock, sizeof(sock), "m.sock");
	snprintf(addr, sizeof(addr), "unix:%s", sock);
	migrate_ok(&r, addr);
	CU_ASSERT_STRING_EQUAL(r.addr, addr);
	CU_ASSERT_EQUAL(access(sock, F_OK), -1);
}

static void test_tcp_loopback(void)
{
	struct run r = { 0 };

	migrate_ok(&r, "tcp:127.0.0.1:0");
	CU_ASSERT(has(r.addr, "tcp:127.0.0.1:"));
	CU_ASSERT(strcmp(r.addr, "tcp:127.0.0.1:0") != 0);
}

/* Network namespaces ------------------------------------------------- */

static char ns_a[40], ns_b[40];

__attribute__((format(printf, 1, 2)))
static int sh(const char *fmt, ...)
{
	char cmd[512];
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(cmd, sizeof(cmd), fmt, ap);
	va_end(ap);
	return system(cmd);
}

static void netns_cleanup(void)
{
	if (!ns_a[0])
		return;
	/* Deleting a namespace takes its end of the veth pair, and both go. */
	sh("ip netns del %s >/dev/null 2>&1", ns_a);
	sh("ip netns del %s >/dev/null 2>&1", ns_b);
}

static void test_netns(void)
{
	struct run r = { 0 };
	unsigned int net = (unsigned int)getpid() % 200 + 20;
	char dst[64];

	/* main() ran this suite only where namespaces can be made. */
	CU_ASSERT_FATAL(geteuid() == 0);
	snprintf(ns_a, sizeof(ns_a), "vmig-e2e-%d-a", (int)getpid());
	snprintf(ns_b, sizeof(ns_b), "vmig-e2e-%d-b", (int)getpid());
	netns_cleanup();
	CU_ASSERT_FATAL(sh("ip netns add %s", ns_a) == 0);
	if (sh("ip netns add %s", ns_b) != 0 ||
	    sh("ip link add vmig%da netns %s type veth peer name vmig%db "
	       "netns %s", (int)getpid() % 100000, ns_a,
	       (int)getpid() % 100000, ns_b) != 0 ||
	    sh("ip -n %s addr add 10.231.%u.1/24 dev vmig%da", ns_a, net,
	       (int)getpid() % 100000) != 0 ||
	    sh("ip -n %s addr add 10.231.%u.2/24 dev vmig%db", ns_b, net,
	       (int)getpid() % 100000) != 0 ||
	    sh("ip -n %s link set vmig%da up", ns_a,
	       (int)getpid() % 100000) != 0 ||
	    sh("ip -n %s link set vmig%db up", ns_b,
	       (int)getpid() % 100000) != 0 ||
	    sh("ip -n %s link set lo up", ns_a) != 0 ||
	    sh("ip -n %s link set lo up", ns_b) != 0) {
		netns_cleanup();
		CU_FAIL_FATAL("cannot set up the namespaces");
	}
	r.ns_src = ns_a;
	r.ns_dst = ns_b;
	snprintf(dst, sizeof(dst), "tcp:10.231.%u.2:0", net);
	migrate_ok(&r, dst);
	CU_ASSERT(has(r.addr, "tcp:10.231."));
	netns_cleanup();
	ns_a[0] = '\0';
}

/* ------------------------------------------------------------------ */
/* Failing                                                             */

/* The source's report: how it ended, and that its guest runs. */
static cJSON *check_source_failed(struct run *r, const char *result)
{
	cJSON *src = vmig_load_json(r->src_report);

	CU_ASSERT_FATAL(src != NULL);
	CU_ASSERT_STRING_EQUAL(json_str(src, "result"), result);
	CU_ASSERT_STRING_EQUAL(json_str(src, "guest"), "running");
	/* Resumed exactly when vmig had stopped it. */
	CU_ASSERT_EQUAL(cJSON_IsTrue(cJSON_GetObjectItem(src,
							 "guest_resumed")),
			cJSON_IsTrue(cJSON_GetObjectItem(src,
							 "guest_stopped")));
	CU_ASSERT(cJSON_IsFalse(cJSON_GetObjectItem(src, "memory_match")));
	return src;
}

static void test_sigint_source(void)
{
	struct run r = { 0 };
	char sock[128], addr[160], err[4096];
	cJSON *src, *dst;

	path_in(sock, sizeof(sock), "int.sock");
	snprintf(addr, sizeof(addr), "unix:%s", sock);
	CU_ASSERT_FATAL(start_destination(&r, addr));
	start_source(&r, r.addr, POLICIES_SLOW, true);
	/*
	 * The migration runs from here, and cannot end by itself for a long
	 * while (POLICIES_SLOW never converges, and iteration 0 alone is
	 * 8 s of data at 2 MiB/s: region "low" is full of data, which
	 * iteration 0 must read, unlike never-written memory): no need to
	 * guess a moment.
	 */
	CU_ASSERT(wait_for(r.src.err, "source: iteration 0:", 20000));
	kill(r.src.pid, SIGINT);
	/* Cancelled (vmig(1)): the guest runs on the source. */
	CU_ASSERT_EQUAL(reap(&r.src, WAIT_MS), 6);
	CU_ASSERT_EQUAL(reap(&r.dst, WAIT_MS), 6);
	vmig_slurp(r.src.err, err, sizeof(err));
	CU_ASSERT(has(err, "interrupted: cancelling the migration"));
	src = check_source_failed(&r, "cancelled");
	CU_ASSERT(has(json_str(src, "error"), "cancelled (vmig_cancel) at "
					      "iteration "));
	dst = vmig_load_json(r.dst_report);
	CU_ASSERT_FATAL(dst != NULL);
	CU_ASSERT_STRING_EQUAL(json_str(dst, "result"), "cancelled");
	CU_ASSERT_STRING_EQUAL(json_str(dst, "guest"), "not started");
	CU_ASSERT(has(json_str(dst, "error"), "the source ended the migration: "
					      "cancelled (vmig_cancel)"));
	cJSON_Delete(src);
	cJSON_Delete(dst);
}

static void test_kill_destination(void)
{
	struct run r = { 0 };
	char addr[300];
	cJSON *src;
	const char *e;

	CU_ASSERT_FATAL(start_destination(&r, "tcp:127.0.0.1:0"));
	snprintf(addr, sizeof(addr), "%s", r.addr);
	start_source(&r, addr, POLICIES_SLOW, true);
	/*
	 * The migration runs from here, and cannot end by itself for a long
	 * while (POLICIES_SLOW never converges, and iteration 0 alone is
	 * 8 s of data at 2 MiB/s: region "low" is full of data, which
	 * iteration 0 must read, unlike never-written memory): no need to
	 * guess a moment.
	 */
	CU_ASSERT(wait_for(r.src.err, "source: iteration 0:", 20000));
	kill(r.dst.pid, SIGKILL);
	reap(&r.dst, WAIT_MS);
	CU_ASSERT_EQUAL(reap(&r.src, WAIT_MS), 1);
	src = check_source_failed(&r, "failed");
	e = json_str(src, "error");
	/* Its reading or its writing notices first; either names where. */
	CU_ASSERT(has_either(e, "connection lost at frame ",
			     "writing to tcp:127.0.0.1:"));
	cJSON_Delete(src);
}

/* A proxy between source and destination ---------------------------- */

struct proxy {
	char path[108];       /* listens here (unix) */
	char target[108];     /* the destination's socket */
	int lfd;
	pthread_t thread;
	uint64_t cut_after;   /* source bytes to pass, then close (0: all) */
	uint64_t flip_frame;  /* flip a header byte of this frame */
	size_t flip_offset;
	bool flip;
	/* Where the stream was cut. */
	uint64_t frame;       /* frames complete when cut */
	size_t hdr_have;      /* bytes of the next header passed */
	uint16_t type;
	uint64_t payload_len, payload_have;
	int error;
};

/* Follows the frames of the source's stream through the proxy. */
struct tracker {
	uint8_t hdr[64];
	size_t hdr_have;
	uint64_t payload_left, payload_len;
	uint64_t frame;
	uint16_t type;
};

static void track(struct tracker *t, struct proxy *p, uint8_t *buf,
		  size_t n)
{
	size_t i;

	for (i = 0; i < n;) {
		if (t->payload_left) {
			size_t k = n - i < t->payload_left ? n - i
							   : t->payload_left;

			t->payload_left -= k;
			i += k;
			if (!t->payload_left)
				t->frame++;
			continue;
		}
		if (p->flip && t->frame == p->flip_frame &&
		    t->hdr_have == p->flip_offset)
			buf[i] ^= 0x10;
		t->hdr[t->hdr_have++] = buf[i++];
		if (t->hdr_have == 64) {
			memcpy(&t->payload_len, t->hdr + 24, 8);
			memcpy(&t->type, t->hdr + 6, 2);
			t->hdr_have = 0;
			t->payload_left = t->payload_len;
			if (!t->payload_left)
				t->frame++;
		}
	}
}

/* Passes what from still holds to to, until from ends (bounded). */
static void forward_rest(int from, int to)
{
	static uint8_t rest[1 << 16];
	struct pollfd pfd = { .fd = from, .events = POLLIN };
	ssize_t n;

	while (poll(&pfd, 1, 2000) > 0) {
		n = read(from, rest, sizeof(rest));
		if (n <= 0 || vmig_test_send_all(to, rest, (size_t)n))
			return;
	}
}

static void *proxy_main(void *opaque)
{
	struct proxy *p = opaque;
	struct sockaddr_un sun = { .sun_family = AF_UNIX };
	struct pollfd pfd[2];
	struct tracker t = { 0 };
	uint64_t passed = 0, end = now_ms() + WAIT_MS;
	static uint8_t buf[1 << 16];
	int s = -1, d = -1;

	pfd[0].fd = p->lfd;
	pfd[0].events = POLLIN;
	if (poll(pfd, 1, 20000) <= 0 ||
	    (s = accept4(p->lfd, NULL, NULL, SOCK_CLOEXEC)) < 0) {
		p->error = -ETIMEDOUT;
		return NULL;
	}
	d = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
	strcpy(sun.sun_path, p->target);
	if (d < 0 || connect(d, (struct sockaddr *)&sun, sizeof(sun)) < 0) {
		p->error = -errno;
		goto out;
	}
	while (now_ms() < end) {
		ssize_t n;

		pfd[0].fd = s;
		pfd[0].events = POLLIN;
		pfd[1].fd = d;
		pfd[1].events = POLLIN;
		if (poll(pfd, 2, 100) <= 0)
			continue;
		if (pfd[0].revents) {
			n = read(s, buf, sizeof(buf));
			if (n <= 0)
				break;
			if (p->cut_after &&
			    passed + (uint64_t)n >= p->cut_after)
				n = (ssize_t)(p->cut_after - passed);
			track(&t, p, buf, (size_t)n);
			if (vmig_test_send_all(d, buf, (size_t)n)) {
				/*
				 * The destination has closed: what it said
				 * before (its ERROR) still goes back, as a
				 * wire would carry it.
				 */
				forward_rest(d, s);
				break;
			}
			passed += (uint64_t)n;
			if (p->cut_after && passed == p->cut_after) {
				p->frame = t.frame;
				p->hdr_have = t.hdr_have;
				p->type = t.type;
				p->payload_len = t.payload_len;
				p->payload_have = t.payload_len -
						  t.payload_left;
				if (!t.payload_left)
					p->payload_len = 0;
				break;
			}
		}
		if (pfd[1].revents) {
			n = read(d, buf, sizeof(buf));
			if (n <= 0 || vmig_test_send_all(s, buf, (size_t)n))
				break;
		}
	}
out:
	if (s >= 0)
		close(s);
	if (d >= 0)
		close(d);
	return NULL;
}

static void proxy_start(struct proxy *p, const char *target_addr)
{
	struct sockaddr_un sun = { .sun_family = AF_UNIX };

	CU_ASSERT_FATAL(!strncmp(target_addr, "unix:", 5));
	snprintf(p->target, sizeof(p->target), "%s", target_addr + 5);
	path_in(p->path, sizeof(p->path), "proxy.sock");
	unlink(p->path);
	p->lfd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
	CU_ASSERT_FATAL(p->lfd >= 0);
	strcpy(sun.sun_path, p->path);
	CU_ASSERT_FATAL(bind(p->lfd, (struct sockaddr *)&sun, sizeof(sun)) ==
			0);
	CU_ASSERT_FATAL(listen(p->lfd, 1) == 0);
	CU_ASSERT_FATAL(pthread_create(&p->thread, NULL, proxy_main, p) == 0);
}

static void proxy_stop(struct proxy *p)
{
	pthread_join(p->thread, NULL);
	close(p->lfd);
	unlink(p->path);
}

static void run_through_proxy(struct run *r, struct proxy *p,
			      const char *policies)
{
	char sock[128], addr[160];
	int s_st, d_st;

	path_in(sock, sizeof(sock), "px-dst.sock");
	snprintf(addr, sizeof(addr), "unix:%s", sock);
	CU_ASSERT_FATAL(start_destination(r, addr));
	proxy_start(p, r->addr);
	snprintf(addr, sizeof(addr), "unix:%s", p->path);
	start_source(r, addr, policies, true);
	s_st = reap(&r->src, WAIT_MS);
	d_st = reap(&r->dst, WAIT_MS);
	if (s_st != 1 || d_st != 1)
		show_logs(r);
	CU_ASSERT_EQUAL(s_st, 1);
	CU_ASSERT_EQUAL(d_st, 1);
	proxy_stop(p);
	CU_ASSERT_EQUAL(p->error, 0);
}

static const char *frame_name(uint16_t t)
{
	static const char *const names[] = {
		"?", "HELLO", "WELCOME", "PAGES", "ZERO", "DEVICE_STATE",
		"DEVICE_END", "ITERATION", "SWITCHOVER", "COMPLETE", "ACK",
		"COMMIT", "ERROR",
	};

	return t < 13 ? names[t] : "?";
}

/* The stream cut in the middle: both ends say where. */
static void test_truncated(void)
{
	struct proxy p = { .cut_after = 300000 + 1000 };
	struct run r = { 0 };
	char want[256];
	cJSON *src, *dst;

	run_through_proxy(&r, &p, POLICIES_SLOW);
	dst = vmig_load_json(r.dst_report);
	CU_ASSERT_FATAL(dst != NULL);
	if (p.payload_len)
		snprintf(want, sizeof(want),
			 "connection lost at frame %llu (%s, %llu of %llu "
			 "payload bytes): the source closed it",
			 (unsigned long long)p.frame, frame_name(p.type),
			 (unsigned long long)p.payload_have,
			 (unsigned long long)p.payload_len);
	else if (p.hdr_have)
		snprintf(want, sizeof(want),
			 "connection lost at frame %llu (%zu of 64 header "
			 "bytes): the source closed it",
			 (unsigned long long)p.frame, p.hdr_have);
	else
		snprintf(want, sizeof(want),
			 "connection lost at frame %llu (before its header): "
			 "the source closed it",
			 (unsigned long long)p.frame);
	CU_ASSERT_STRING_EQUAL(json_str(dst, "error"), want);
	CU_ASSERT_STRING_EQUAL(json_str(dst, "result"), "failed");
	CU_ASSERT_STRING_EQUAL(json_str(dst, "guest"), "not started");
	src = check_source_failed(&r, "failed");
	CU_ASSERT(has_either(json_str(src, "error"),
			     "connection lost at frame ", "writing to unix:"));
	cJSON_Delete(src);
	cJSON_Delete(dst);
}

/* A header byte flipped: the destination names the frame and the check. */
static void test_corrupted(void)
{
	struct proxy p = { .flip = true, .flip_frame = 9, .flip_offset = 41 };
	struct run r = { 0 };
	char want[64];
	cJSON *src, *dst;

	run_through_proxy(&r, &p, POLICIES_SLOW);
	snprintf(want, sizeof(want), "frame %llu: header CRC 0x",
		 (unsigned long long)p.flip_frame);
	dst = vmig_load_json(r.dst_report);
	CU_ASSERT_FATAL(dst != NULL);
	CU_ASSERT(!strncmp(json_str(dst, "error"), want, strlen(want)));
	CU_ASSERT_STRING_EQUAL(json_str(dst, "guest"), "not started");
	src = check_source_failed(&r, "failed");
	CU_ASSERT(has(json_str(src, "error"), "the destination rejected the "
					      "stream: "));
	CU_ASSERT(has(json_str(src, "error"), want));
	CU_ASSERT(has(json_str(src, "error_name"),
		      "malformed or rejected migration stream"));
	cJSON_Delete(src);
	cJSON_Delete(dst);
}

static int suite_init(void)
{
	return vmig_tmpdir_make(tmpdir, sizeof(tmpdir), "vmig-e2e");
}

static int suite_fini(void)
{
	netns_cleanup();
	return vmig_tmpdir_remove(tmpdir);
}

static CU_TestInfo tests[] = {
	{ "unix socket", test_unix },
	{ "TCP on loopback, port 0", test_tcp_loopback },
	{ "SIGINT to the source mid-migration", test_sigint_source },
	{ "the destination killed mid-stream", test_kill_destination },
	{ "the stream cut short", test_truncated },
	{ "a frame header corrupted", test_corrupted },
	CU_TEST_INFO_NULL,
};

static CU_TestInfo netns_tests[] = {
	{ "TCP between two network namespaces (veth)", test_netns },
	CU_TEST_INFO_NULL,
};

static CU_SuiteInfo suites[] = {
	VMIG_SUITE_INIT("migrate", suite_init, suite_fini, tests),
	CU_SUITE_INFO_NULL,
};

static CU_SuiteInfo netns_suites[] = {
	VMIG_SUITE_INIT("netns", suite_init, suite_fini, netns_tests),
	CU_SUITE_INFO_NULL,
};

/*
 * "test_migrate netns" runs the namespace test alone (its own CTest test):
 * without root or iproute2 it exits 77, which CTest shows as skipped
 * instead of a pass that tested nothing.
 */
int main(int argc, char **argv)
{
	if (argc > 1 && !strcmp(argv[1], "netns")) {
		if (geteuid() != 0 ||
		    system("ip netns list >/dev/null 2>&1") != 0) {
			fprintf(stderr, "network namespaces need root and "
					"iproute2: skipped\n");
			return 77;
		}
		return vmig_test_run(netns_suites);
	}
	return vmig_test_run(suites);
}
