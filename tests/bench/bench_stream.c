/*
 * bench_stream.c: vmig-bench-stream, the migration stream's throughput
 * against the socket it runs on.
 *
 * A one-iteration migration of one region of incompressible (random)
 * data (2 GiB unless told otherwise), source and destination each in its
 * own thread with its own loop, over a unix socket and over TCP on
 * loopback; and, in the same run, a plain sender and receiver moving the
 * same bytes through the same kind of socket with write() and read() of
 * large buffers, its unix sender given the socket buffer vmig asks for
 * (4 MiB, see core/transport/stream.c), so that the ratio measures vmig and not
 * the buffer. Both receivers write into memory touched beforehand, as
 * a VMM's preallocated guest RAM would be. Prints GB/s for each (the
 * page stream: first byte received to last page applied, from the
 * destination's report), the ratio vmig/plain per socket kind, and the
 * digest time apart. Each run measures both, alternately, `reps` times
 * and keeps the best of each: on a shared machine the noise is all on
 * the slow side.
 *
 * usage: vmig-bench-stream [MiB] [runs] [reps]
 */
#include <errno.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <time.h>
#include <unistd.h>

#include <cjson/cJSON.h>
#include <vmig/vmig.h>

#include "common/receiver.h"
#include "ksim/ksim.h"

static double now_s(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static void *map_touched(size_t len)
{
	void *p = mmap(NULL, len, PROT_READ | PROT_WRITE,
		       MAP_PRIVATE | MAP_ANONYMOUS | MAP_POPULATE, -1, 0);

	if (p == MAP_FAILED) {
		perror("mmap");
		exit(1);
	}
	return p;
}

/* ------------------------------------------------------------------ */
/* vmig                                                                */

static int vmm_nop(void *opaque)
{
	(void)opaque;
	return 0;
}

static const struct vmig_vmm_ops nop_ops = {
	.size = sizeof(struct vmig_vmm_ops),
	.stop = vmm_nop, .resume = vmm_nop, .start = vmm_nop,
};

static void bench_log(void *opaque, enum vmig_log_level level,
		      const char *msg)
{
	(void)opaque;
	if (level <= VMIG_LOG_WARN)
		fprintf(stderr, "vmig: %s\n", msg);
}

static vmig_session *session(int role, struct ksim *k, void *mem, size_t len)
{
	struct vmig_session_params p = {
		.size = sizeof(p), .role = (uint32_t)role, .log = bench_log,
		.log_level = VMIG_LOG_WARN,
		/* A simulated kernel: no vCPU writes to assume. */
		.kernel = ksim_host(k),
	};
	struct vmig_region r = { .size = sizeof(r), .fd = -1, .gpa = 0,
				 .length = len, .hva = mem, .name = "ram" };
	struct vmig_policies pol = { .size = sizeof(pol),
				     .downtime_limit_ms = 3600000 };
	vmig_session *s;

	if (vmig_session_new(&p, &s) < 0 || vmig_region_add(s, &r, NULL) < 0 ||
	    vmig_set_vmm_ops(s, &nop_ops, NULL) < 0 ||
	    vmig_set_policies(s, &pol) < 0) {
		fprintf(stderr, "cannot set up a session\n");
		exit(1);
	}
	return s;
}

static double report_num(vmig_session *s, const char *key)
{
	int64_t len = vmig_report_json(s, NULL, 0);
	double v = 0;
	cJSON *root;
	char *buf = malloc((size_t)len + 1);

	if (!buf)
		return 0;
	vmig_report_json(s, buf, (size_t)len + 1);
	root = cJSON_Parse(buf);
	free(buf);
	if (cJSON_IsNumber(cJSON_GetObjectItem(root, key)))
		v = cJSON_GetObjectItem(root, key)->valuedouble;
	cJSON_Delete(root);
	return v;
}

struct result {
	double gbs;       /* page stream, GB/s */
	double digest_ms; /* the destination's digest */
	double total_ms;  /* the whole migration, as the source saw it */
};

static int vmig_once(const char *address, void *src_mem, void *dst_mem,
		     size_t len, struct result *res)
{
	struct ksim *ks, *kd;
	vmig_session *src, *dst;
	struct vmig_test_receiver rc;
	char bound[128];
	pthread_t th;
	double t0;
	int ret;

	if (ksim_new(NULL, &ks) < 0 || ksim_new(NULL, &kd) < 0)
		return -ENOMEM;
	src = session(VMIG_ROLE_SOURCE, ks, src_mem, len);
	dst = session(VMIG_ROLE_DESTINATION, kd, dst_mem, len);
	ret = vmig_listen(dst, address, bound, sizeof(bound));
	if (ret < 0) {
		fprintf(stderr, "listen: %s\n", vmig_errmsg(dst));
		return ret;
	}
	rc.s = dst;
	rc.ret = 1;
	pthread_create(&th, NULL, vmig_test_receive_main, &rc);
	t0 = now_s();
	ret = vmig_migrate(src, bound);
	res->total_ms = (now_s() - t0) * 1000;
	pthread_join(th, NULL);
	if (ret < 0 || rc.ret < 0) {
		fprintf(stderr, "migration: %s / %s\n", vmig_errmsg(src),
			vmig_errmsg(dst));
		ret = ret < 0 ? ret : rc.ret;
	} else {
		double ms = report_num(dst, "stream_ms");

		res->gbs = ms > 0 ? (double)len / (ms / 1000) / 1e9 : 0;
		res->digest_ms = report_num(dst, "digest_ms");
	}
	vmig_session_free(src);
	vmig_session_free(dst);
	ksim_free(ks);
	ksim_free(kd);
	return ret;
}

/* ------------------------------------------------------------------ */
/* Plain sockets                                                       */

#define CHUNK (4u << 20)
#define UNIX_SNDBUF (4 << 20) /* core/transport/stream.c asks it */

struct plain {
	int fd;
	bool send;  /* writes the bytes, else reads them */
	uint8_t *mem;
	size_t len;
	double first, last; /* the first chunk moved, the last one */
};

/* Moves p's bytes through its socket, a large buffer at a time. */
static void *plain_move(void *opaque)
{
	struct plain *p = opaque;
	size_t off = 0;

	while (off < p->len) {
		size_t n = p->len - off < CHUNK ? p->len - off : CHUNK;
		ssize_t r = p->send ? write(p->fd, p->mem + off, n)
				    : read(p->fd, p->mem + off, n);

		if (r <= 0) {
			perror(p->send ? "write" : "read");
			break;
		}
		if (!off)
			p->first = now_s();
		off += (size_t)r;
	}
	p->last = now_s();
	return NULL;
}

/* A connected pair of the kind: unix (stream) or TCP on loopback. */
static void socket_pair(bool tcp, int *a, int *b)
{
	int l, one = 1, sndbuf = UNIX_SNDBUF;

	if (!tcp) {
		struct sockaddr_un sun = { .sun_family = AF_UNIX };

		snprintf(sun.sun_path, sizeof(sun.sun_path),
			 "/tmp/vmig-bench-plain-%d.sock", (int)getpid());
		unlink(sun.sun_path);
		l = socket(AF_UNIX, SOCK_STREAM, 0);
		if (bind(l, (struct sockaddr *)&sun, sizeof(sun)) ||
		    listen(l, 1)) {
			perror("unix socket");
			exit(1);
		}
		*a = socket(AF_UNIX, SOCK_STREAM, 0);
		if (connect(*a, (struct sockaddr *)&sun, sizeof(sun))) {
			perror("connect");
			exit(1);
		}
		*b = accept(l, NULL, NULL);
		unlink(sun.sun_path);
		setsockopt(*a, SOL_SOCKET, SO_SNDBUF, &sndbuf, sizeof(sndbuf));
		setsockopt(*b, SOL_SOCKET, SO_SNDBUF, &sndbuf, sizeof(sndbuf));
	} else {
		struct sockaddr_in sin = { .sin_family = AF_INET,
					   .sin_addr.s_addr =
						   htonl(INADDR_LOOPBACK) };
		socklen_t sl = sizeof(sin);

		l = socket(AF_INET, SOCK_STREAM, 0);
		if (bind(l, (struct sockaddr *)&sin, sizeof(sin)) ||
		    listen(l, 1) ||
		    getsockname(l, (struct sockaddr *)&sin, &sl)) {
			perror("tcp socket");
			exit(1);
		}
		*a = socket(AF_INET, SOCK_STREAM, 0);
		if (connect(*a, (struct sockaddr *)&sin, sizeof(sin))) {
			perror("connect");
			exit(1);
		}
		*b = accept(l, NULL, NULL);
		setsockopt(*a, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
	}
	close(l);
}

static double plain_once(bool tcp, uint8_t *src_mem, uint8_t *dst_mem,
			 size_t len)
{
	struct plain tx = { .send = true, .mem = src_mem, .len = len };
	struct plain rx = { .mem = dst_mem, .len = len };
	pthread_t th;

	socket_pair(tcp, &tx.fd, &rx.fd);
	pthread_create(&th, NULL, plain_move, &tx);
	plain_move(&rx);
	pthread_join(th, NULL);
	close(tx.fd);
	close(rx.fd);
	if (memcmp(src_mem, dst_mem, 4096) ||
	    memcmp(src_mem + len - 4096, dst_mem + len - 4096, 4096))
		fprintf(stderr, "plain: the bytes differ\n");
	return (double)len / (rx.last - rx.first) / 1e9;
}

int main(int argc, char **argv)
{
	size_t mib = argc > 1 ? strtoul(argv[1], NULL, 0) : 2048;
	int runs = argc > 2 ? atoi(argv[2]) : 1, i, k, j;
	int reps = argc > 3 ? atoi(argv[3]) : 3;
	size_t len = mib << 20;
	uint8_t *src_mem, *dst_mem;
	char unix_addr[128];
	double t0;

	if (!mib || runs < 1 || reps < 1) {
		fprintf(stderr, "usage: %s [MiB] [runs] [reps]\n", argv[0]);
		return 2;
	}
	snprintf(unix_addr, sizeof(unix_addr), "unix:/tmp/vmig-bench-%d.sock",
		 (int)getpid());
	src_mem = map_touched(len);
	dst_mem = map_touched(len);
	t0 = now_s();
	vmig_test_fill_xorshift(src_mem, len, 0x243F6A8885A308D3ull);
	printf("region: %zu MiB of random data (filled in %.2f s)\n", mib,
	       now_s() - t0);
	printf("best of %d per run\n", reps);
	for (i = 0; i < runs; i++) {
		for (k = 0; k < 2; k++) {
			bool tcp = k == 1;
			struct result best = { 0 };
			double plain = 0;

			for (j = 0; j < reps; j++) {
				struct result r = { 0 };
				double p;

				memset(dst_mem, 0x11, len);
				if (vmig_once(tcp ? "tcp:127.0.0.1:0"
						  : unix_addr,
					      src_mem, dst_mem, len, &r) < 0)
					return 1;
				if (memcmp(src_mem, dst_mem, len)) {
					fprintf(stderr,
						"vmig: the memories differ\n");
					return 1;
				}
				if (r.gbs > best.gbs)
					best = r;
				memset(dst_mem, 0x22, len);
				p = plain_once(tcp, src_mem, dst_mem, len);
				if (p > plain)
					plain = p;
			}
			printf("run %d %-4s  vmig %.2f GB/s  plain %.2f GB/s  "
			       "vmig/plain %.2f  (digest %.0f ms, whole "
			       "migration %.0f ms)\n",
			       i + 1, tcp ? "tcp" : "unix", best.gbs, plain,
			       plain > 0 ? best.gbs / plain : 0,
			       best.digest_ms, best.total_ms);
			fflush(stdout);
		}
	}
	munmap(src_mem, len);
	munmap(dst_mem, len);
	return 0;
}
