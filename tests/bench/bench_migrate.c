/*
 * bench_migrate.c: vmig-bench-migrate, a whole migration as a user runs
 * it, against a plain transfer of the same bytes.
 *
 * Each case runs two processes, `vmig run` as the destination and as the
 * source, over TCP on loopback, with fresh memory on both sides and the
 * default policies unless the case says otherwise. The guest is idle (no
 * device writes) or has one simulated device writing during pre-copy.
 * In the same run, right before and right after the migration, a plain
 * sender and receiver (two processes, TCP on loopback, the receiver
 * writing into fresh memory as a destination VMM would) move the guest's
 * data, then the bytes the migration put on the wire. Prints,
 * per case: the migration's time (the source's report: first byte to
 * the end, and to the destination's STARTED: the guest runs there; with
 * verify audit the source hashes its memory after that), the downtime, the bytes on the wire, each side's peak
 * resident memory and what is left of it after the guest's memory, and
 * the ratios of the migration's time to the plain transfers' (before /
 * after).
 *
 * A case named "-tls" runs over tls-psk (TLS 1.3, a pre-shared key): its
 * ratio to the plain transfer, beside the same case's over TCP, is what
 * the encryption costs.
 *
 * A case named "sparse-" has one region of which only the start was ever
 * written ("fill_size"): 2, 8 and 64 GiB guests with 1 GiB touched. Their
 * resident memory, less the 1 GiB, is vmig's own: what grows with the
 * guest (the bitmaps); sparse-64g's time is that of a 64 GiB guest whose
 * never-touched memory is not read (sparse-64g-memfd: the same guest in
 * a memfd, its holes found with SEEK_DATA).
 *
 * The "cancel-" cases measure how soon a cancel takes effect: SIGINT to
 * the source process at one moment (set-up: this program is a destination
 * that read HELLO and never answers, or, over TLS, a server that read the
 * first handshake bytes and never answers; iteration 0 of the 64 GiB sparse
 * guest under a 100 MB/s limit; the switchover wait: the destination
 * process stopped with SIGSTOP once the source says it switched over),
 * then the milliseconds until the source's events file says "failed"
 * (the guest runs on the source: vmig resumes it before it says so, or
 * never stopped it) and until the process exits (status 6).
 *
 * A case whose keys this build does not know (a configuration error) is
 * printed as "n/a" with the error, never as a figure.
 *
 * usage: vmig-bench-migrate [--vmig PATH] [--quick] [--repeat N] [CASE...]
 *   --vmig PATH  the vmig program (default: "vmig" next to this program)
 *   --quick      small guests (64 MiB and 256 MiB; the cancel cases at an
 *                eighth of their size), for a smoke run
 *   --repeat N   each migration case N times (1 to 99), then the medians
 *                of its figures and of its ratios, and the fastest
 *                migration against the fastest plain transfer: on a
 *                machine whose speed varies from one run to the next,
 *                the fastest of each is what the hardware allows
 *   CASE         run only the cases whose name starts with CASE
 */
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <signal.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include <cjson/cJSON.h>

#define MiB (1ull << 20)
#define GiB (1ull << 30)

struct bench_case {
	const char *name;
	uint64_t size;       /* guest memory */
	uint64_t random;     /* of which random data, from gpa 0 */
	bool device;         /* a simulated device writes during pre-copy */
	unsigned int connections; /* 0: the default (no key) */
	const char *verify;  /* NULL: the default (no key) */
	bool tls;            /* tls-psk: TLS 1.3 with a pre-shared key */
	bool sparse;         /* one region, of which `random` was written */
	const char *backing; /* sparse: memory[].backing, or NULL */
	const char *bandwidth; /* policies.bandwidth_limit, or NULL */
	unsigned int downtime_ms; /* policies.downtime_limit_ms, or 0 */
};

/* The pre-shared key of the TLS cases (written into the work directory). */
static char psk_path[PATH_MAX];

struct result {
	bool ok;
	char error[512];
	double migration_s;  /* the source's report: duration_us */
	double running_s;    /* its committed_ms: the guest runs there */
	double downtime_ms;
	uint64_t bytes;      /* total_bytes */
	long src_rss_kib;
	long dst_rss_kib;
	double plain_s;      /* the plain transfer, right after */
	double plain_before_s; /* and right before (of the guest's data) */
};

static double now_s(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static void die(const char *what)
{
	perror(what);
	exit(2);
}

/* A free TCP port on loopback (bound, then released for the child). */
static int free_port(void)
{
	struct sockaddr_in a = { .sin_family = AF_INET,
				 .sin_addr.s_addr = htonl(INADDR_LOOPBACK) };
	socklen_t len = sizeof(a);
	int fd = socket(AF_INET, SOCK_STREAM, 0), port;

	if (fd < 0 || bind(fd, (struct sockaddr *)&a, sizeof(a)) < 0 ||
	    getsockname(fd, (struct sockaddr *)&a, &len) < 0)
		die("free port");
	port = ntohs(a.sin_port);
	close(fd);
	return port;
}

/* ------------------------------------------------------------------ */
/* The configurations                                                  */

static void memory_json(FILE *f, const struct bench_case *c, bool src)
{
	fprintf(f, "  \"memory\": [\n");
	if (c->sparse) {
		fprintf(f, "    { \"name\": \"ram\", \"gpa\": 0, \"size\": %llu",
			(unsigned long long)c->size);
		if (src)
			fprintf(f, ", \"fill\": \"random\", \"fill_size\": %llu",
				(unsigned long long)c->random);
		if (c->backing)
			fprintf(f, ", \"backing\": \"%s\"", c->backing);
		fprintf(f, " }\n  ],\n");
		return;
	}
	if (c->random)
		fprintf(f, "    { \"name\": \"data\", \"gpa\": 0, "
			   "\"size\": %llu%s }%s\n",
			(unsigned long long)c->random,
			src ? ", \"fill\": \"random\"" : "",
			c->size > c->random ? "," : "");
	if (c->size > c->random)
		fprintf(f, "    { \"name\": \"rest\", \"gpa\": %llu, "
			   "\"size\": %llu }\n",
			(unsigned long long)c->random,
			(unsigned long long)(c->size - c->random));
	fprintf(f, "  ],\n");
}

/*
 * The device is behind iommufd, whose IOMMU maps with 4 KiB pages and
 * has dirty bits: what a VMM that migrates a device doing DMA chooses.
 * Behind a type1 container, a device that pins nothing has every mapped
 * page reported dirty at each sync (the kernel cannot know better), and
 * with superpages one write dirties a whole one (1 GiB for this
 * mapping): either way no pre-copy could converge.
 */
static void device_json(FILE *f, const struct bench_case *c, bool src)
{
	if (!c->device) {
		fprintf(f, "  \"kernel\": { \"type\": \"simulated\", "
			   "\"devices\": [] }\n");
		return;
	}
	fprintf(f,
		"  \"devices\": [ { \"name\": \"nic0\", \"kind\": \"vfio-pci\",\n"
		"    \"address\": \"0000:01:00.0\", \"iommu\": \"iommufd\",\n"
		"    \"cdev\": \"/dev/vfio/devices/vfio0\", \"ioas\": \"c\" } ],\n"
		"  \"dma_mappings\": [ { \"space\": \"c\", \"iova\": 0,\n"
		"    \"gpa\": 0, \"size\": %llu } ],\n"
		"  \"kernel\": { \"type\": \"simulated\", \"devices\": [\n"
		"    { \"name\": \"nic0\",\n"
		"      \"iommu\": { \"page_sizes\": [ \"4K\" ] }%s } ] }\n",
		(unsigned long long)(c->random ? c->random : c->size),
		src ? ", \"dma\": { \"pattern\": \"hotspot\", "
		      "\"writes_per_step\": 64, \"seed\": 7 }"
		    : "");
}

static void write_config(const char *path, const struct bench_case *c,
			 bool src, int port, const char *report)
{
	FILE *f = fopen(path, "w");

	if (!f)
		die(path);
	fprintf(f, "{\n  \"role\": \"%s\",\n", src ? "source" : "destination");
	if (c->tls)
		fprintf(f, "  \"transport\": \"tls-psk:127.0.0.1:%d?key=%s\",\n",
			port, psk_path);
	else
		fprintf(f, "  \"transport\": \"tcp:127.0.0.1:%d\",\n", port);
	fprintf(f, "  \"report\": \"%s\",\n", report);
	if (src && (c->connections || c->verify || c->bandwidth ||
		    c->downtime_ms)) {
		const char *sep = "";

		fprintf(f, "  \"policies\": {");
		if (c->connections) {
			fprintf(f, " \"connections\": %u", c->connections);
			sep = ",";
		}
		if (c->verify) {
			fprintf(f, "%s \"verify\": \"%s\"", sep, c->verify);
			sep = ",";
		}
		if (c->bandwidth) {
			fprintf(f, "%s \"bandwidth_limit\": \"%s\"", sep,
				c->bandwidth);
			sep = ",";
		}
		if (c->downtime_ms)
			fprintf(f, "%s \"downtime_limit_ms\": %u", sep,
				c->downtime_ms);
		fprintf(f, " },\n");
	}
	memory_json(f, c, src);
	device_json(f, c, src);
	fprintf(f, "}\n");
	if (fclose(f))
		die(path);
}

/* ------------------------------------------------------------------ */
/* Two processes                                                       */

/* `vmig run config`, with --events events when not NULL. */
static pid_t spawn_events(const char *vmig, const char *config,
			  const char *out, const char *events)
{
	pid_t pid = fork();

	if (pid < 0)
		die("fork");
	if (pid == 0) {
		int fd = open(out, O_WRONLY | O_CREAT | O_TRUNC, 0644);

		if (fd < 0 || dup2(fd, 1) < 0 || dup2(fd, 2) < 0)
			_exit(127);
		if (events)
			execl(vmig, vmig, "run", config, "--events", events,
			      (char *)NULL);
		else
			execl(vmig, vmig, "run", config, (char *)NULL);
		_exit(127);
	}
	return pid;
}

static pid_t spawn(const char *vmig, const char *config, const char *out)
{
	return spawn_events(vmig, config, out, NULL);
}

/* Waits until the destination's output says it listens (or it ended). */
static bool wait_listening(pid_t pid, const char *out)
{
	char line[512];
	int i;

	for (i = 0; i < 6000; i++) {
		FILE *f = fopen(out, "r");
		bool found = false;

		while (f && fgets(line, sizeof(line), f))
			found = found || strstr(line, "listening on");
		if (f)
			fclose(f);
		if (found)
			return true;
		if (waitpid(pid, NULL, WNOHANG) == pid)
			return false;
		usleep(10000);
	}
	return false;
}

static int reap(pid_t pid, long *rss_kib)
{
	struct rusage ru;
	int st;

	if (wait4(pid, &st, 0, &ru) != pid)
		die("wait4");
	*rss_kib = ru.ru_maxrss;
	return WIFEXITED(st) ? WEXITSTATUS(st) : 128 + WTERMSIG(st);
}

static void first_line(const char *path, char *buf, size_t len)
{
	FILE *f = fopen(path, "r");
	char line[512];

	buf[0] = '\0';
	while (f && fgets(line, sizeof(line), f)) {
		if (strstr(line, "vmig:") || strstr(line, "error") ||
		    strstr(line, "failed")) {
			line[strcspn(line, "\n")] = '\0';
			snprintf(buf, len, "%s", line);
			break;
		}
	}
	if (f)
		fclose(f);
}

static cJSON *load_json(const char *path)
{
	FILE *f = fopen(path, "r");
	char *text;
	long n;
	cJSON *j;

	if (!f)
		return NULL;
	fseek(f, 0, SEEK_END);
	n = ftell(f);
	fseek(f, 0, SEEK_SET);
	text = malloc((size_t)n + 1);
	if (!text || fread(text, 1, (size_t)n, f) != (size_t)n) {
		fclose(f);
		free(text);
		return NULL;
	}
	text[n] = '\0';
	fclose(f);
	j = cJSON_Parse(text);
	free(text);
	return j;
}

static double num(const cJSON *o, const char *key)
{
	const cJSON *v = cJSON_GetObjectItemCaseSensitive(o, key);

	return cJSON_IsNumber(v) ? v->valuedouble : -1;
}

/* A case's files in the work directory. */
struct case_files {
	char scfg[PATH_MAX], dcfg[PATH_MAX], srep[PATH_MAX], drep[PATH_MAX];
	char sout[PATH_MAX], dout[PATH_MAX], ev[PATH_MAX];
};

static void case_files(struct case_files *f, const char *dir,
		       const char *name)
{
	static const char *const ends[] = {
		"src.json", "dst.json", "src-report.json", "dst-report.json",
		"src.out", "dst.out", "events",
	};
	char *const to[] = { f->scfg, f->dcfg, f->srep, f->drep,
			     f->sout, f->dout, f->ev };
	size_t i;

	for (i = 0; i < sizeof(ends) / sizeof(ends[0]); i++)
		snprintf(to[i], PATH_MAX, "%s/%s-%s", dir, name, ends[i]);
}

static void run_migration(const char *vmig, const char *dir,
			  const struct bench_case *c, struct result *r)
{
	static struct case_files f;
	const char *scfg = f.scfg, *dcfg = f.dcfg, *srep = f.srep;
	const char *drep = f.drep, *sout = f.sout, *dout = f.dout;
	int port = free_port(), sret, dret;
	pid_t dpid, spid;
	cJSON *rep;

	case_files(&f, dir, c->name);
	write_config(scfg, c, true, port, srep);
	write_config(dcfg, c, false, port, drep);
	dpid = spawn(vmig, dcfg, dout);
	if (!wait_listening(dpid, dout)) {
		reap(dpid, &r->dst_rss_kib);
		first_line(dout, r->error, sizeof(r->error));
		return;
	}
	spid = spawn(vmig, scfg, sout);
	sret = reap(spid, &r->src_rss_kib);
	if (sret)
		kill(dpid, SIGTERM);
	dret = reap(dpid, &r->dst_rss_kib);
	if (sret || dret) {
		first_line(sout, r->error, sizeof(r->error));
		if (!r->error[0])
			first_line(dout, r->error, sizeof(r->error));
		if (!r->error[0])
			snprintf(r->error, sizeof(r->error),
				 "source exit %d, destination exit %d", sret,
				 dret);
		return;
	}
	rep = load_json(srep);
	if (!rep) {
		snprintf(r->error, sizeof(r->error), "no report in %.400s", srep);
		return;
	}
	r->migration_s = num(rep, "duration_us") / 1e6;
	r->running_s = num(rep, "committed_ms") / 1e3;
	r->downtime_ms = num(rep, "downtime_ms");
	r->bytes = (uint64_t)num(rep, "total_bytes");
	r->ok = r->migration_s > 0 && r->bytes > 0;
	if (!r->ok)
		snprintf(r->error, sizeof(r->error), "report %.400s lacks figures",
			 srep);
	cJSON_Delete(rep);
}

/* ------------------------------------------------------------------ */
/* Cancelling                                                          */

enum moment { AT_SETUP, AT_ITERATION0, AT_SWITCHOVER };

struct cancel_case {
	const char *name;
	enum moment at;
	struct bench_case guest; /* its memory and policies */
};

struct cancel_result {
	bool ok;
	char error[512];
	double resumed_ms; /* SIGINT to the "failed" event line */
	double exit_ms;    /* SIGINT to the source's exit */
	int status;
};

/* Whether file holds text now. */
static bool file_has(const char *path, const char *text)
{
	static char buf[1 << 20];
	FILE *f = fopen(path, "r");
	size_t n;

	if (!f)
		return false;
	n = fread(buf, 1, sizeof(buf) - 1, f);
	fclose(f);
	buf[n] = '\0';
	return strstr(buf, text) != NULL;
}

/* Waits for text in path while pid runs (polled each ms); false: ended. */
static bool await_text(const char *path, const char *text, pid_t pid)
{
	while (!file_has(path, text)) {
		if (waitpid(pid, NULL, WNOHANG) == pid)
			return false;
		usleep(1000);
	}
	return true;
}

/* Reads n bytes (false: the stream ended first). */
static bool read_n(int fd, uint8_t *p, size_t n)
{
	while (n) {
		ssize_t r = read(fd, p, n);

		if (r <= 0)
			return false;
		p += r;
		n -= (size_t)r;
	}
	return true;
}

/* A destination that accepts, reads HELLO (its header and payload), and
 * never answers: returns the connection, or -1. */
static int mute_accept(int lfd)
{
	uint8_t hdr[64], *payload;
	uint64_t len = 0;
	int fd = accept(lfd, NULL, NULL), i;

	if (fd < 0)
		return -1;
	if (!read_n(fd, hdr, sizeof(hdr))) {
		close(fd);
		return -1;
	}
	for (i = 7; i >= 0; i--)
		len = (len << 8) | hdr[24 + i];
	payload = malloc(len ? len : 1);
	if (!payload || !read_n(fd, payload, len)) {
		free(payload);
		close(fd);
		return -1;
	}
	free(payload);
	return fd;
}

/*
 * A TLS server that accepts, reads the client's first handshake bytes,
 * and never answers: returns the connection, or -1.
 */
static int silent_accept(int lfd)
{
	uint8_t b;
	int fd = accept(lfd, NULL, NULL);

	if (fd >= 0 && !read_n(fd, &b, 1)) {
		close(fd);
		return -1;
	}
	return fd;
}

static void run_cancel(const char *vmig, const char *dir,
		       const struct cancel_case *cc, struct cancel_result *r)
{
	const struct bench_case *c = &cc->guest;
	static struct case_files f;
	const char *scfg = f.scfg, *dcfg = f.dcfg, *srep = f.srep;
	const char *drep = f.drep, *sout = f.sout, *dout = f.dout, *ev = f.ev;
	struct sockaddr_in a = { .sin_family = AF_INET,
				 .sin_addr.s_addr = htonl(INADDR_LOOPBACK) };
	int port = free_port(), lfd = -1, mfd = -1, st;
	pid_t dpid = -1, spid;
	long rss;
	double t0;
	bool resumed = false;

	r->status = -1;
	case_files(&f, dir, cc->name);
	write_config(scfg, c, true, port, srep);
	if (cc->at == AT_SETUP) {
		a.sin_port = htons((uint16_t)port);
		lfd = socket(AF_INET, SOCK_STREAM, 0);
		if (lfd < 0 || bind(lfd, (struct sockaddr *)&a, sizeof(a)) < 0 ||
		    listen(lfd, 1) < 0)
			die("cancel: listen");
	} else {
		write_config(dcfg, c, false, port, drep);
		dpid = spawn(vmig, dcfg, dout);
		if (!wait_listening(dpid, dout)) {
			reap(dpid, &rss);
			first_line(dout, r->error, sizeof(r->error));
			return;
		}
	}
	unlink(ev);
	spid = spawn_events(vmig, scfg, sout, ev);
	switch (cc->at) {
	case AT_SETUP:
		mfd = c->tls ? silent_accept(lfd) : mute_accept(lfd);
		if (mfd < 0)
			snprintf(r->error, sizeof(r->error),
				 c->tls ? "the source began no TLS handshake"
					: "the source sent no HELLO");
		break;
	case AT_ITERATION0:
		if (!await_text(ev, "\"phase\":\"pre-copy\"", spid))
			snprintf(r->error, sizeof(r->error),
				 "the source ended before its pre-copy");
		/* Well inside the pass: its pages are on the wire. */
		usleep(200000);
		break;
	case AT_SWITCHOVER:
		if (!await_text(ev, "\"phase\":\"switchover\"", spid))
			snprintf(r->error, sizeof(r->error),
				 "the source ended before its switchover");
		/* The destination stalls before its reply. */
		kill(dpid, SIGSTOP);
		usleep(100000);
		break;
	}
	t0 = now_s();
	kill(spid, SIGINT);
	for (;;) {
		pid_t w = waitpid(spid, &st, WNOHANG);

		if (!resumed && file_has(ev, "\"event\":\"failed\"")) {
			r->resumed_ms = (now_s() - t0) * 1e3;
			resumed = true;
		}
		if (w == spid) {
			r->exit_ms = (now_s() - t0) * 1e3;
			break;
		}
		usleep(200);
	}
	if (!resumed && file_has(ev, "\"event\":\"failed\"")) {
		r->resumed_ms = r->exit_ms;
		resumed = true;
	}
	r->status = WIFEXITED(st) ? WEXITSTATUS(st) : 128 + WTERMSIG(st);
	if (dpid > 0) {
		kill(dpid, SIGCONT);
		kill(dpid, SIGTERM);
		reap(dpid, &rss);
	}
	if (mfd >= 0)
		close(mfd);
	if (lfd >= 0)
		close(lfd);
	if (r->error[0])
		return;
	if (cc->at == AT_SWITCHOVER &&
	    !file_has(srep, "after the switchover")) {
		snprintf(r->error, sizeof(r->error),
			 "the cancel did not land in the switchover wait "
			 "(see %.400s)", srep);
		return;
	}
	r->ok = resumed && r->status == 6;
	if (!r->ok)
		snprintf(r->error, sizeof(r->error),
			 "exit %d%s (see %.400s)", r->status,
			 resumed ? "" : ", no \"failed\" event", sout);
}

/* ------------------------------------------------------------------ */
/* The plain transfer                                                  */

static void plain_receiver(int lfd, uint64_t bytes)
{
	/*
	 * Fresh memory, as a destination VMM's guest RAM, with transparent
	 * huge pages as vmig's own guest memory has them: the comparison
	 * must not pay page faults that the migration does not.
	 */
	uint8_t *mem = mmap(NULL, bytes, PROT_READ | PROT_WRITE,
			    MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1,
			    0);
	uint64_t got = 0;
	char ack = 1;
	int fd;

	if (mem == MAP_FAILED)
		_exit(2);
	madvise(mem, bytes, MADV_HUGEPAGE);
	fd = accept(lfd, NULL, NULL);
	if (fd < 0)
		_exit(2);
	while (got < bytes) {
		ssize_t n = read(fd, mem + got,
				 bytes - got > 4 * MiB ? 4 * MiB
						       : bytes - got);

		if (n <= 0)
			_exit(2);
		got += (uint64_t)n;
	}
	if (write(fd, &ack, 1) != 1)
		_exit(2);
	_exit(0);
}

/* Seconds to move bytes from one process to another over loopback TCP. */
static double plain_transfer(uint64_t bytes)
{
	struct sockaddr_in a = { .sin_family = AF_INET,
				 .sin_addr.s_addr = htonl(INADDR_LOOPBACK) };
	socklen_t alen = sizeof(a);
	uint64_t sent = 0, x = 0x9e3779b97f4a7c15ull, i;
	int lfd, fd, one = 1, st;
	uint64_t *mem;
	double t0, t;
	pid_t pid;
	char ack;

	mem = mmap(NULL, bytes, PROT_READ | PROT_WRITE,
		   MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	if (mem == MAP_FAILED)
		die("mmap");
	madvise(mem, bytes, MADV_HUGEPAGE);
	for (i = 0; i < bytes / 8; i++) {
		x ^= x << 13;
		x ^= x >> 7;
		x ^= x << 17;
		mem[i] = x;
	}
	lfd = socket(AF_INET, SOCK_STREAM, 0);
	if (lfd < 0 || bind(lfd, (struct sockaddr *)&a, sizeof(a)) < 0 ||
	    getsockname(lfd, (struct sockaddr *)&a, &alen) < 0 ||
	    listen(lfd, 1) < 0)
		die("plain: listen");
	pid = fork();
	if (pid < 0)
		die("fork");
	if (pid == 0)
		plain_receiver(lfd, bytes);
	close(lfd);
	fd = socket(AF_INET, SOCK_STREAM, 0);
	t0 = now_s();
	if (fd < 0 || connect(fd, (struct sockaddr *)&a, sizeof(a)) < 0)
		die("plain: connect");
	setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
	while (sent < bytes) {
		ssize_t n = write(fd, (uint8_t *)mem + sent,
				  bytes - sent > 4 * MiB ? 4 * MiB
							 : bytes - sent);

		if (n <= 0)
			die("plain: write");
		sent += (uint64_t)n;
	}
	if (read(fd, &ack, 1) != 1)
		die("plain: ack");
	t = now_s() - t0;
	close(fd);
	waitpid(pid, &st, 0);
	munmap(mem, bytes);
	return t;
}

/* ------------------------------------------------------------------ */

static void default_vmig(const char *argv0, char *buf, size_t len)
{
	char self[4001];
	ssize_t n = readlink("/proc/self/exe", self, sizeof(self) - 1);
	char *slash;

	(void)argv0;
	if (n <= 0) {
		snprintf(buf, len, "vmig");
		return;
	}
	self[n] = '\0';
	slash = strrchr(self, '/');
	if (slash)
		*slash = '\0';
	snprintf(buf, len, "%.4000s/vmig", self);
}

static bool selected(const char *name, char **want, int nwant)
{
	int i;

	if (!nwant)
		return true;
	for (i = 0; i < nwant; i++)
		if (!strncmp(name, want[i], strlen(want[i])))
			return true;
	return false;
}

static void print_result(const struct bench_case *c, const struct result *r)
{
	/* What the guest keeps resident: its data (zero pages stay unset). */
	long guest_kib = (long)(c->random >> 10);

	if (!r->ok) {
		printf("%-16s n/a: %s\n", c->name, r->error);
		return;
	}
	printf("%-16s %8.2f s (running there at %5.2f s)  downtime %8.1f ms  "
	       "%7.1f MiB on the wire  "
	       "rss src %5ld MiB (data+%ld)  dst %5ld MiB (data+%ld)  "
	       "plain before %5.2f s after %5.2f s  "
	       "ratio %5.2f / %5.2f (running: %5.2f / %5.2f)\n",
	       c->name, r->migration_s, r->running_s, r->downtime_ms,
	       (double)r->bytes / MiB, r->src_rss_kib >> 10,
	       (r->src_rss_kib - guest_kib) >> 10, r->dst_rss_kib >> 10,
	       (r->dst_rss_kib - guest_kib) >> 10, r->plain_before_s,
	       r->plain_s, r->migration_s / r->plain_before_s,
	       r->migration_s / r->plain_s, r->running_s / r->plain_before_s,
	       r->running_s / r->plain_s);
}

/* A case's figures over --repeat runs. */
struct medians {
	int n;
	double running[99], downtime[99], before[99], after[99];
	double plain_min;    /* the fastest plain transfer, before or after */
};

static void medians_add(struct medians *md, const struct result *r)
{
	if (!r->ok || r->running_s <= 0)
		return;
	md->running[md->n] = r->running_s;
	md->downtime[md->n] = r->downtime_ms;
	md->before[md->n] = r->running_s / r->plain_before_s;
	md->after[md->n] = r->running_s / r->plain_s;
	if (!md->n || r->plain_before_s < md->plain_min)
		md->plain_min = r->plain_before_s;
	if (r->plain_s < md->plain_min)
		md->plain_min = r->plain_s;
	md->n++;
}

static int cmp_double(const void *a, const void *b)
{
	double x = *(const double *)a, y = *(const double *)b;

	return x < y ? -1 : x > y;
}

static double median(double *v, int n)
{
	qsort(v, (size_t)n, sizeof(*v), cmp_double);
	return n % 2 ? v[n / 2] : (v[n / 2 - 1] + v[n / 2]) / 2;
}

static void medians_print(const struct bench_case *c, struct medians *md)
{
	if (!md->n) {
		printf("%-16s median: no run completed\n", c->name);
		return;
	}
	printf("%-16s median of %d: running there at %5.2f s, downtime "
	       "%6.1f ms, ratio (running) %5.2f / %5.2f\n",
	       c->name, md->n, median(md->running, md->n),
	       median(md->downtime, md->n), median(md->before, md->n),
	       median(md->after, md->n));
	/* Sorted by median(): the fastest of each, what the hardware allows. */
	printf("%-16s fastest of %d: running there at %5.2f s, plain %5.2f s, "
	       "ratio %5.2f\n",
	       c->name, md->n, md->running[0], md->plain_min,
	       md->running[0] / md->plain_min);
}

int main(int argc, char **argv)
{
	static const struct bench_case full[] = {
		{ "idle-2g", 2 * GiB, 3 * GiB / 2, false, 0, NULL },
		{ "device-2g", 2 * GiB, 3 * GiB / 2, true, 0, NULL },
		{ "idle-8g", 8 * GiB, 6 * GiB, false, 0, NULL },
		{ "idle-2g-c1", 2 * GiB, 3 * GiB / 2, false, 1, NULL },
		{ "idle-2g-c2", 2 * GiB, 3 * GiB / 2, false, 2, NULL },
		{ "idle-2g-c4", 2 * GiB, 3 * GiB / 2, false, 4, NULL },
		{ "idle-2g-strict", 2 * GiB, 3 * GiB / 2, false, 0, "strict" },
		{ "idle-2g-audit", 2 * GiB, 3 * GiB / 2, false, 0, "audit" },
		{ "idle-2g-off", 2 * GiB, 3 * GiB / 2, false, 0, "off" },
		{ "idle-2g-tls", 2 * GiB, 3 * GiB / 2, false, 0, NULL, true },
		{ "device-2g-tls", 2 * GiB, 3 * GiB / 2, true, 0, NULL, true },
		{ "sparse-2g", 2 * GiB, 1 * GiB, .sparse = true },
		{ "sparse-8g", 8 * GiB, 1 * GiB, .sparse = true },
		{ "sparse-64g", 64 * GiB, 1 * GiB, .sparse = true },
		{ "sparse-64g-memfd", 64 * GiB, 1 * GiB, .sparse = true,
		  .backing = "memfd" },
	};
	static const struct cancel_case cancels[] = {
		{ "cancel-setup", AT_SETUP,
		  { "", 64 * GiB, 1 * GiB, .sparse = true } },
		{ "cancel-tls-handshake", AT_SETUP,
		  { "", 64 * GiB, 1 * GiB, .sparse = true, .tls = true } },
		{ "cancel-iteration0", AT_ITERATION0,
		  { "", 64 * GiB, 1 * GiB, .sparse = true,
		    .bandwidth = "100M" } },
		{ "cancel-switchover", AT_SWITCHOVER,
		  { "", 8 * GiB, 2 * GiB, .sparse = true, .verify = "strict",
		    .downtime_ms = 60000 } },
	};
	static const struct bench_case quick[] = {
		{ "idle-64m", 64 * MiB, 48 * MiB, false, 0, NULL },
		{ "device-64m", 64 * MiB, 48 * MiB, true, 0, NULL },
		{ "idle-256m", 256 * MiB, 192 * MiB, false, 0, NULL },
		{ "idle-64m-tls", 64 * MiB, 48 * MiB, false, 0, NULL, true },
		{ "sparse-1g", 1 * GiB, 64 * MiB, .sparse = true },
	};
	const struct bench_case *cases = full;
	size_t nr = sizeof(full) / sizeof(full[0]), i;
	size_t ncr = sizeof(cancels) / sizeof(cancels[0]);
	bool small = false;
	char vmig[PATH_MAX + 16], dir[] = "/tmp/vmig-bench-migrate-XXXXXX";
	char **want = NULL;
	int nwant = 0, a, failed = 0, repeat = 1;

	default_vmig(argv[0], vmig, sizeof(vmig));
	for (a = 1; a < argc; a++) {
		if (!strcmp(argv[a], "--vmig") && a + 1 < argc) {
			snprintf(vmig, sizeof(vmig), "%s", argv[++a]);
		} else if (!strcmp(argv[a], "--quick")) {
			cases = quick;
			nr = sizeof(quick) / sizeof(quick[0]);
			small = true;
		} else if (!strcmp(argv[a], "--repeat") && a + 1 < argc &&
			   atoi(argv[a + 1]) >= 1 && atoi(argv[a + 1]) <= 99) {
			repeat = atoi(argv[++a]);
		} else if (argv[a][0] == '-') {
			fprintf(stderr,
				"usage: %s [--vmig PATH] [--quick] [--repeat N] "
				"[CASE...]\n",
				argv[0]);
			return 2;
		} else {
			want = &argv[a];
			nwant = argc - a;
			break;
		}
	}
	if (access(vmig, X_OK)) {
		fprintf(stderr, "%s: %s: %s\n", argv[0], vmig,
			strerror(errno));
		return 2;
	}
	if (!mkdtemp(dir))
		die("mkdtemp");
	snprintf(psk_path, sizeof(psk_path), "%s/psk", dir);
	{
		FILE *f = fopen(psk_path, "w");

		if (!f || fputs("3f5a9c0e1b7d2468ace013579bdf2468"
				"0123456789abcdeffedcba9876543210\n",
				f) < 0 ||
		    fclose(f))
			die(psk_path);
	}
	printf("vmig-bench-migrate: %s, two processes, TCP on loopback, "
	       "default policies unless named; work files in %s\n",
	       vmig, dir);
	for (i = 0; i < nr; i++) {
		struct medians md = { 0 };
		int k;

		if (!selected(cases[i].name, want, nwant))
			continue;
		for (k = 0; k < repeat; k++) {
			struct result r = { 0 };

			/*
			 * The plain transfer before and after the migration:
			 * memory a process touches first may cost more than
			 * memory another process just freed (on a virtual
			 * machine whose host backs its memory on first touch,
			 * several times more), so one comparison alone would
			 * favour whichever ran second.
			 */
			r.plain_before_s = plain_transfer(
				cases[i].random ? cases[i].random : 64 * MiB);
			run_migration(vmig, dir, &cases[i], &r);
			if (r.ok)
				r.plain_s = plain_transfer(r.bytes);
			else if (!strstr(r.error, "policies"))
				failed++;
			print_result(&cases[i], &r);
			medians_add(&md, &r);
			fflush(stdout);
		}
		if (repeat > 1)
			medians_print(&cases[i], &md);
	}
	for (i = 0; i < ncr; i++) {
		struct cancel_result r = { 0 };
		struct cancel_case cc = cancels[i];

		if (!selected(cc.name, want, nwant))
			continue;
		/* --quick: an eighth of each guest (64 GiB: 8 GiB). */
		if (small) {
			cc.guest.size /= 8;
			cc.guest.random /= 8;
		}
		run_cancel(vmig, dir, &cc, &r);
		if (!r.ok) {
			failed++;
			printf("%-18s n/a: %s\n", cc.name, r.error);
		} else {
			printf("%-18s SIGINT -> guest running %7.1f ms, "
			       "-> exit %7.1f ms (status %d)\n",
			       cc.name, r.resumed_ms, r.exit_ms,
			       r.status);
		}
		fflush(stdout);
	}
	return failed ? 1 : 0;
}
