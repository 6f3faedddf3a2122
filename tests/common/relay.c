/*
 * relay.c: the byte relay of relay.h.
 */
#include <errno.h>
#include <poll.h>
#include <stdio.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#include "relay.h"
#include "sendall.h"

#define HDR 64u

static uint64_t get_le(const uint8_t *p, unsigned int n)
{
	uint64_t v = 0;

	while (n--)
		v = (v << 8) | p[n];
	return v;
}

/*
 * Under the lock: follows the frames of direction d through n bytes
 * about to be forwarded. Returns how many of them may go now: all, or
 * up to the limit when a frame of after_type arms it inside them.
 */
static size_t parse(struct relay *r, int d, const uint8_t *p, size_t n)
{
	size_t done = 0;

	while (done < n) {
		if (d == r->dir && r->armed && r->fwd[d] >= r->limit)
			break;
		if (r->payload_left[d]) {
			uint64_t k = r->payload_left[d];

			if (k > n - done)
				k = n - done;
			if (d == r->dir && r->armed &&
			    k > r->limit - r->fwd[d])
				k = r->limit - r->fwd[d];
			r->payload_left[d] -= k;
			r->fwd[d] += k;
			done += (size_t)k;
			continue;
		}
		if (r->hdr_have[d] == 0 && r->nframes[d] < RELAY_MAX_FRAMES) {
			r->frames[d][r->nframes[d]].off = r->fwd[d];
			r->frames[d][r->nframes[d]].type = 0;
		}
		r->hdr[d][r->hdr_have[d]++] = p[done++];
		r->fwd[d]++;
		if (r->hdr_have[d] < HDR)
			continue;
		r->hdr_have[d] = 0;
		if (r->nframes[d] < RELAY_MAX_FRAMES) {
			struct relay_frame *f = &r->frames[d][r->nframes[d]++];

			f->type = (uint32_t)get_le(r->hdr[d] + 6, 2);
			if (d == r->dir && !r->armed &&
			    f->type == r->after_type) {
				r->armed = true;
				r->limit += f->off;
			}
		}
		r->payload_left[d] = get_le(r->hdr[d] + 24, 8);
	}
	return done;
}

/* Waits for relay_stop. */
static void hold(struct relay *r)
{
	struct pollfd pf = { .fd = r->release[0], .events = POLLIN };

	while (poll(&pf, 1, -1) < 0 && errno == EINTR)
		;
}

static void *relay_main(void *opaque)
{
	struct relay *r = opaque;
	struct sockaddr_un sa = { .sun_family = AF_UNIX };
	int fd[2] = { -1, -1 }; /* [S2D]: the source's end, [D2S]: dest's */
	bool eof[2] = { false, false };
	static __thread uint8_t buf[1 << 16];
	struct pollfd pf[3];

	pf[0].fd = r->lfd;
	pf[0].events = POLLIN;
	pf[1].fd = r->release[0];
	pf[1].events = POLLIN;
	if (poll(pf, 2, -1) <= 0 || (pf[1].revents & POLLIN))
		goto out;
	fd[RELAY_S2D] = accept(r->lfd, NULL, NULL);
	if (fd[RELAY_S2D] < 0)
		goto out;
	fd[RELAY_D2S] = socket(AF_UNIX, SOCK_STREAM, 0);
	snprintf(sa.sun_path, sizeof(sa.sun_path), "%s", r->dst_path);
	if (fd[RELAY_D2S] < 0 ||
	    connect(fd[RELAY_D2S], (struct sockaddr *)&sa, sizeof(sa)) < 0)
		goto out;
	while (!eof[0] || !eof[1]) {
		int d;

		for (d = 0; d < 2; d++) {
			pf[d].fd = eof[d] ? -1 : fd[d];
			pf[d].events = POLLIN;
		}
		pf[2].fd = r->release[0];
		pf[2].events = POLLIN;
		if (poll(pf, 3, -1) < 0) {
			if (errno == EINTR)
				continue;
			goto out;
		}
		for (d = 0; d < 2; d++) {
			ssize_t n;
			size_t ok;

			if (!pf[d].revents)
				continue;
			/* Peeked: what passes the limit stays unread. */
			n = recv(fd[d], buf, sizeof(buf), MSG_PEEK);
			if (n < 0 && errno == EINTR)
				continue;
			if (n < 0)
				goto out;
			if (n == 0) {
				eof[d] = true;
				shutdown(fd[!d], SHUT_WR);
				continue;
			}
			pthread_mutex_lock(&r->lock);
			ok = parse(r, d, buf, (size_t)n);
			if (ok < (size_t)n)
				r->hit = true;
			pthread_cond_broadcast(&r->moved);
			pthread_mutex_unlock(&r->lock);
			if (ok && (recv(fd[d], buf, ok, 0) != (ssize_t)ok ||
				   vmig_test_send_all(fd[!d], buf, ok) < 0))
				goto out;
			if (ok < (size_t)n) {
				if (r->stall)
					hold(r);
				goto out;
			}
		}
		if (pf[2].revents)
			goto out;
	}
out:
	/* A cut: both ends see the connection close at once. */
	if (fd[RELAY_S2D] >= 0)
		close(fd[RELAY_S2D]);
	if (fd[RELAY_D2S] >= 0)
		close(fd[RELAY_D2S]);
	return NULL;
}

int relay_start(struct relay *r, const char *src_path, const char *dst_path,
		int dir, uint64_t limit, uint32_t after_type, bool stall)
{
	struct sockaddr_un sa = { .sun_family = AF_UNIX };
	int err;

	memset(r, 0, sizeof(*r));
	r->lfd = -1;
	r->release[0] = r->release[1] = -1;
	pthread_mutex_init(&r->lock, NULL);
	pthread_cond_init(&r->moved, NULL);
	r->dir = dir;
	r->limit = limit;
	r->after_type = after_type;
	r->armed = after_type == 0;
	r->stall = stall;
	snprintf(r->dst_path, sizeof(r->dst_path), "%s", dst_path);
	snprintf(sa.sun_path, sizeof(sa.sun_path), "%s", src_path);
	snprintf(r->src_addr, sizeof(r->src_addr), "unix:%s", src_path);
	unlink(src_path);
	r->lfd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
	if (r->lfd < 0 || bind(r->lfd, (struct sockaddr *)&sa, sizeof(sa)) ||
	    listen(r->lfd, 1) || pipe(r->release))
		goto fail;
	if ((err = pthread_create(&r->thread, NULL, relay_main, r))) {
		errno = err;
		goto fail;
	}
	return 0;
fail:
	err = -errno;
	if (r->lfd >= 0)
		close(r->lfd);
	if (r->release[0] >= 0) {
		close(r->release[0]);
		close(r->release[1]);
	}
	unlink(src_path);
	pthread_cond_destroy(&r->moved);
	pthread_mutex_destroy(&r->lock);
	return err;
}

void relay_stop(struct relay *r)
{
	char c = 1;

	if (write(r->release[1], &c, 1) != 1)
		perror("relay_stop");
	pthread_join(r->thread, NULL);
	close(r->lfd);
	close(r->release[0]);
	close(r->release[1]);
	unlink(r->src_addr + 5);
	pthread_mutex_destroy(&r->lock);
	pthread_cond_destroy(&r->moved);
}

int64_t relay_frame_off(struct relay *r, int d, uint32_t t)
{
	int64_t off = -1;
	unsigned int i;

	pthread_mutex_lock(&r->lock);
	for (i = 0; i < r->nframes[d]; i++)
		if (r->frames[d][i].type == t) {
			off = (int64_t)r->frames[d][i].off;
			break;
		}
	pthread_mutex_unlock(&r->lock);
	return off;
}
