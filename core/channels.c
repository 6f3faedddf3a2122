/*
 * channels.c: the data connections of a migration (see channels.h).
 *
 * Each side keeps one thread per data connection. Their sockets are
 * non-blocking and every wait is a poll() that also watches an eventfd,
 * written once to stop them all: closing never waits behind a stalled
 * peer. The bounded waits of a migration (idle, switchover) stay the
 * loop's: a thread reports its progress there through an async handle.
 */
#include <errno.h>
#include <limits.h>
#include <poll.h>
#include <stdarg.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>
#include <sys/uio.h>
#include <unistd.h>

#include "channels.h"

/*
 * Waits for fd to be ready for events, or for stop_fd: 0, -ECANCELED
 * (stop), or -ETIMEDOUT once the monotonic clock passes until_us (0: no
 * deadline). fd -1 waits for the stop or the deadline alone.
 */
static int chan_wait(int fd, short events, int stop_fd, uint64_t until_us)
{
	struct pollfd p[2] = {
		{ .fd = stop_fd, .events = POLLIN },
		{ .fd = fd, .events = events },
	};

	for (;;) {
		int ms = -1, n;

		if (until_us) {
			uint64_t now = vmig_now_us();

			if (now >= until_us)
				return -ETIMEDOUT;
			ms = (int)((until_us - now + 999) / 1000);
		}
		n = poll(p, fd >= 0 ? 2 : 1, ms);
		if (n < 0) {
			if (errno == EINTR)
				continue;
			return -errno;
		}
		if (p[0].revents)
			return -ECANCELED;
		if (fd >= 0 && p[1].revents)
			return 0;
	}
}

/* Writes iov[0..n) whole (the array is consumed). 0 or -errno. */
static int chan_sendv(int fd, struct iovec *iov, size_t n, int stop_fd)
{
	while (n) {
		struct msghdr mh = { .msg_iov = iov,
				     .msg_iovlen = n < IOV_MAX ? n : IOV_MAX };
		ssize_t w = sendmsg(fd, &mh, MSG_NOSIGNAL);
		int ret;

		if (w < 0) {
			if (errno == EINTR)
				continue;
			if (errno != EAGAIN && errno != EWOULDBLOCK)
				return -errno;
			ret = chan_wait(fd, POLLOUT, stop_fd, 0);
			if (ret < 0)
				return ret;
			continue;
		}
		while (n && (size_t)w >= iov->iov_len) {
			w -= (ssize_t)iov->iov_len;
			iov++;
			n--;
		}
		if (n) {
			iov->iov_base = (uint8_t *)iov->iov_base + w;
			iov->iov_len -= (size_t)w;
		}
	}
	return 0;
}

/*
 * Reads len bytes whole into buf, by until_us (0: no deadline): 0,
 * -ECONNRESET at the end, -ETIMEDOUT, or -errno.
 */
static int chan_recv(int fd, void *buf, size_t len, int stop_fd,
		     uint64_t until_us)
{
	uint8_t *p = buf;

	while (len) {
		ssize_t r = recv(fd, p, len, 0);
		int ret;

		if (r > 0) {
			p += r;
			len -= (size_t)r;
			continue;
		}
		if (r == 0)
			return -ECONNRESET;
		if (errno == EINTR)
			continue;
		if (errno != EAGAIN && errno != EWOULDBLOCK)
			return -errno;
		ret = chan_wait(fd, POLLIN, stop_fd, until_us);
		if (ret < 0)
			return ret;
	}
	return 0;
}

/*
 * What both sides' sets share: the loop's async handle (its data the set,
 * which starts with this), the lock and condition of their threads, and
 * the eventfd written once to stop every wait.
 */
struct chan_base {
	uv_async_t async;
	pthread_mutex_t lock;
	pthread_cond_t cond;
	int stop_fd;
	bool stop;   /* under lock */
	bool closed; /* the loop's */
};

static int base_init(struct chan_base *b, uv_loop_t *loop, uv_async_cb cb)
{
	int ret;

	b->stop_fd = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
	if (b->stop_fd < 0)
		return -errno;
	ret = uv_async_init(loop, &b->async, cb);
	if (ret < 0) {
		close(b->stop_fd);
		return ret;
	}
	b->async.data = b;
	pthread_mutex_init(&b->lock, NULL);
	pthread_cond_init(&b->cond, NULL);
	return 0;
}

/* Every thread's waits end (the lock held). */
static void base_stop_locked(struct chan_base *b)
{
	uint64_t one = 1;

	b->stop = true;
	pthread_cond_broadcast(&b->cond);
	if (write(b->stop_fd, &one, sizeof(one)) < 0) {
		/* An eventfd written once cannot be full. */
	}
}

static void base_free(uv_handle_t *h)
{
	struct chan_base *b = h->data;

	pthread_mutex_destroy(&b->lock);
	pthread_cond_destroy(&b->cond);
	free(b);
}

/* Closing begins (false: it began already): every thread stops. */
static bool base_close_begin(struct chan_base *b)
{
	if (b->closed)
		return false;
	b->closed = true;
	pthread_mutex_lock(&b->lock);
	base_stop_locked(b);
	pthread_mutex_unlock(&b->lock);
	return true;
}

/* The threads were joined: the handle closes, then the set is freed. */
static void base_close(struct chan_base *b)
{
	close(b->stop_fd);
	uv_close((uv_handle_t *)&b->async, base_free);
}

/* ------------------------------------------------------------------ */
/* The source                                                          */

#define CONNECT_RETRY_US 5000u /* a unix backlog full: connect again */

struct chan_item {
	struct chan_item *next;
	struct vmig_chan *ch;       /* the connection it is queued on */
	const struct vmig_iov *iov; /* NULL: the frame in hdr alone */
	unsigned int niov;
	uint64_t bytes;
	vmig_write_fn done;         /* NULL: a frame of the set's own */
	void *opaque;
	int status;
	uint8_t hdr[VMIG_FRAME_HDR];
};

struct vmig_chan {
	struct vmig_chans *set;
	uint32_t index;
	int fd;
	pthread_t thread;
	bool started;
	struct chan_item *head, **tail; /* under set->b.lock */
	/* The loop's: what was queued on it, and is not written yet. */
	uint64_t queued, pages, frames;
};

struct vmig_chans {
	struct chan_base b;              /* first: the async's data */
	uv_loop_t *loop;
	struct chan_item *done_head, **done_tail; /* under lock */
	struct sockaddr_storage peer;
	socklen_t peerlen;
	uint64_t token[2];
	/* The first failure, under lock, and whether the loop heard it. */
	int errcode;
	char err[256];
	bool err_told;
	void (*failed)(void *opaque, int err, const char *msg);
	void *opaque;
	uint32_t n;
	struct vmig_chan ch[];
};

/* The connection failed: the loop hears it at once (chans_async). */
static void chans_failed(struct vmig_chan *c, const char *what, int err)
{
	struct vmig_chans *set = c->set;

	if (err == -ECANCELED)
		return;
	pthread_mutex_lock(&set->b.lock);
	if (!set->errcode) {
		set->errcode = err;
		snprintf(set->err, sizeof(set->err),
			 "data connection %u of %u: %s: %s", c->index + 1,
			 set->n, what, strerror(-err));
	}
	pthread_mutex_unlock(&set->b.lock);
	uv_async_send(&set->b.async);
}

/* Connects the thread's socket to the main stream's peer. */
static int chan_connect(struct vmig_chan *c)
{
	struct vmig_chans *set = c->set;
	int fd, ret, soerr = 0;
	socklen_t len = sizeof(soerr);
	bool pending = false;

	fd = socket(set->peer.ss_family,
		    SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
	if (fd < 0)
		return -errno;
	c->fd = fd;
	/*
	 * A unix socket's full backlog says EAGAIN, not connected: the
	 * destination accepts one at a time, so try again a little later
	 * (the migration's own bounds end the wait).
	 */
	while (connect(fd, (const struct sockaddr *)&set->peer,
		       set->peerlen) < 0) {
		if (errno == EINPROGRESS) {
			pending = true;
			break;
		}
		if (errno != EAGAIN && errno != EINTR)
			return -errno;
		ret = chan_wait(-1, 0, set->b.stop_fd,
				vmig_now_us() + CONNECT_RETRY_US);
		if (ret != -ETIMEDOUT)
			return ret < 0 ? ret : -ECANCELED;
	}
	if (!pending)
		return 0;
	ret = chan_wait(fd, POLLOUT, set->b.stop_fd, 0);
	if (ret < 0)
		return ret;
	if (getsockopt(fd, SOL_SOCKET, SO_ERROR, &soerr, &len) < 0)
		return -errno;
	return -soerr;
}

static int chan_write_item(struct vmig_chan *c, struct chan_item *it)
{
	struct iovec stack[2 * 64 + 2], *v = stack;
	unsigned int i;
	int ret;

	if (!it->iov) {
		stack[0] = (struct iovec){ it->hdr, VMIG_FRAME_HDR };
		return chan_sendv(c->fd, stack, 1, c->set->b.stop_fd);
	}
	if (it->niov > sizeof(stack) / sizeof(stack[0])) {
		v = malloc(it->niov * sizeof(*v));
		if (!v)
			return -ENOMEM;
	}
	for (i = 0; i < it->niov; i++)
		v[i] = (struct iovec){ (void *)it->iov[i].base,
				       it->iov[i].len };
	ret = chan_sendv(c->fd, v, it->niov, c->set->b.stop_fd);
	if (v != stack)
		free(v);
	return ret;
}

static void *chan_main(void *arg)
{
	struct vmig_chan *c = arg;
	struct vmig_chans *set = c->set;
	uint8_t hdr[VMIG_FRAME_HDR];
	struct iovec v = { hdr, sizeof(hdr) };
	int err = 0;

	if (c->fd < 0) {
		err = chan_connect(c);
		if (err < 0)
			chans_failed(c, "connect", err);
	}
	if (!err) {
		vmig_enc_channel(hdr, set->token, c->index);
		err = chan_sendv(c->fd, &v, 1, set->b.stop_fd);
		if (err < 0)
			chans_failed(c, "writing CHANNEL", err);
	}
	for (;;) {
		struct chan_item *it;

		pthread_mutex_lock(&set->b.lock);
		while (!set->b.stop && !c->head)
			pthread_cond_wait(&set->b.cond, &set->b.lock);
		if (set->b.stop) {
			pthread_mutex_unlock(&set->b.lock);
			break;
		}
		it = c->head;
		c->head = it->next;
		if (!c->head)
			c->tail = &c->head;
		pthread_mutex_unlock(&set->b.lock);

		if (!err) {
			err = chan_write_item(c, it);
			if (err < 0)
				chans_failed(c, "writing", err);
		}
		it->status = err;
		it->next = NULL;
		pthread_mutex_lock(&set->b.lock);
		*set->done_tail = it;
		set->done_tail = &it->next;
		pthread_mutex_unlock(&set->b.lock);
		uv_async_send(&set->b.async);
	}
	return NULL;
}

/* Ends the items of list with -ECANCELED (their done runs now). */
static void chans_cancel(struct chan_item *it)
{
	struct chan_item *next;

	for (; it; it = next) {
		next = it->next;
		if (it->done)
			it->done(it->opaque, -ECANCELED);
		free(it);
	}
}

/* A connection failed: the owner hears it once, with the reason. */
static void chans_tell_failure(struct vmig_chans *set)
{
	char msg[256];
	int err;

	pthread_mutex_lock(&set->b.lock);
	err = set->err_told ? 0 : set->errcode;
	set->err_told = set->err_told || err;
	snprintf(msg, sizeof(msg), "%s", set->err);
	pthread_mutex_unlock(&set->b.lock);
	if (err && set->failed)
		set->failed(set->opaque, err, msg);
}

/* The loop: completions, in each connection's order. */
static void chans_async(uv_async_t *a)
{
	struct vmig_chans *set = a->data;
	struct chan_item *it, *next;

	if (set->b.closed)
		return;
	/*
	 * A failure first: the owner ends the migration with its reason
	 * before the writes it failed come back as mere errors.
	 */
	chans_tell_failure(set);
	if (set->b.closed)
		return;
	pthread_mutex_lock(&set->b.lock);
	it = set->done_head;
	set->done_head = NULL;
	set->done_tail = &set->done_head;
	pthread_mutex_unlock(&set->b.lock);
	for (; it; it = next) {
		next = it->next;
		it->ch->queued -= it->bytes;
		if (it->done)
			it->done(it->opaque, it->status);
		free(it);
		/* That call closed the set: the rest is cancelled. */
		if (set->b.closed) {
			chans_cancel(next);
			return;
		}
	}
}

int vmig_chans_open(struct vmig_chans **out, uv_loop_t *loop, uint32_t n,
		    const struct sockaddr *peer, socklen_t peerlen,
		    const int *fds, const uint64_t token[2],
		    void (*failed)(void *opaque, int err, const char *msg),
		    void *opaque, char *err, size_t errlen)
{
	struct vmig_chans *set;
	uint32_t i;
	int ret;

	*out = NULL;
	set = calloc(1, sizeof(*set) + n * sizeof(set->ch[0]));
	if (!set || (!fds && peerlen > sizeof(set->peer))) {
		snprintf(err, errlen, set ? "data connections: peer address "
			 "too long" : "out of memory");
		ret = set ? -EINVAL : -ENOMEM;
		goto fail;
	}
	set->loop = loop;
	set->n = n;
	set->failed = failed;
	set->opaque = opaque;
	set->token[0] = token[0];
	set->token[1] = token[1];
	set->done_tail = &set->done_head;
	if (!fds) {
		memcpy(&set->peer, peer, peerlen);
		set->peerlen = peerlen;
	}
	ret = base_init(&set->b, loop, chans_async);
	if (ret < 0) {
		snprintf(err, errlen, "data connections: %s",
			 vmig_strerror(ret));
		goto fail;
	}
	for (i = 0; i < n; i++) {
		struct vmig_chan *c = &set->ch[i];

		c->set = set;
		c->index = i;
		c->fd = fds ? fds[i] : -1;
		c->tail = &c->head;
	}
	for (i = 0; i < n; i++) {
		ret = -pthread_create(&set->ch[i].thread, NULL, chan_main,
				      &set->ch[i]);
		if (ret < 0) {
			snprintf(err, errlen, "data connections: thread: %s",
				 strerror(-ret));
			vmig_chans_close(set);
			return ret;
		}
		set->ch[i].started = true;
	}
	*out = set;
	return 0;
fail:
	/* The sockets given are taken, whatever happens. */
	for (i = 0; fds && i < n; i++)
		close(fds[i]);
	free(set);
	return ret;
}

/* Appends it to c's queue. */
static void chan_push(struct vmig_chan *c, struct chan_item *it)
{
	struct vmig_chans *set = c->set;

	it->next = NULL;
	it->ch = c;
	pthread_mutex_lock(&set->b.lock);
	*c->tail = it;
	c->tail = &it->next;
	pthread_cond_broadcast(&set->b.cond);
	pthread_mutex_unlock(&set->b.lock);
}

int vmig_chans_write(struct vmig_chans *set, const struct vmig_iov *iov,
		     unsigned int niov, uint64_t bytes, uint64_t frames,
		     uint64_t pages, vmig_write_fn done, void *opaque)
{
	struct vmig_chan *c = &set->ch[0];
	struct chan_item *it;
	uint32_t i;

	if (set->b.closed)
		return -ECANCELED;
	for (i = 1; i < set->n; i++)
		if (set->ch[i].queued < c->queued)
			c = &set->ch[i];
	it = calloc(1, sizeof(*it));
	if (!it)
		return -ENOMEM;
	it->iov = iov;
	it->niov = niov;
	it->bytes = bytes;
	it->done = done;
	it->opaque = opaque;
	c->queued += bytes;
	c->frames += frames;
	c->pages += pages;
	chan_push(c, it);
	return 0;
}

/* Queues the frame hdr (a header alone) on c. */
static int chan_push_hdr(struct vmig_chan *c,
			 const uint8_t hdr[VMIG_FRAME_HDR])
{
	struct chan_item *it = calloc(1, sizeof(*it));

	if (!it)
		return -ENOMEM;
	memcpy(it->hdr, hdr, VMIG_FRAME_HDR);
	c->frames++;
	chan_push(c, it);
	return 0;
}

int vmig_chans_marker(struct vmig_chans *set,
		      const uint8_t hdr[VMIG_FRAME_HDR])
{
	uint32_t i;

	if (set->b.closed)
		return -ECANCELED;
	for (i = 0; i < set->n; i++)
		if (chan_push_hdr(&set->ch[i], hdr) < 0)
			return -ENOMEM;
	return 0;
}

int vmig_chans_complete(struct vmig_chans *set)
{
	uint8_t hdr[VMIG_FRAME_HDR];
	uint32_t i;

	if (set->b.closed)
		return -ECANCELED;
	for (i = 0; i < set->n; i++) {
		struct vmig_chan *c = &set->ch[i];

		/* COMPLETE counts the frames before it, CHANNEL included. */
		vmig_enc_complete(hdr, c->pages, c->frames + 1);
		if (chan_push_hdr(c, hdr) < 0)
			return -ENOMEM;
	}
	return 0;
}

int vmig_chans_error(struct vmig_chans *set, char *msg, size_t len)
{
	int err;

	msg[0] = '\0';
	if (!set)
		return 0;
	pthread_mutex_lock(&set->b.lock);
	err = set->errcode;
	snprintf(msg, len, "%s", set->err);
	pthread_mutex_unlock(&set->b.lock);
	return err;
}

void vmig_chans_close(struct vmig_chans *set)
{
	uint32_t i;

	if (!set || !base_close_begin(&set->b))
		return;
	for (i = 0; i < set->n; i++)
		if (set->ch[i].started)
			pthread_join(set->ch[i].thread, NULL);
	/* The threads are gone: what they wrote, then what they did not. */
	chans_cancel(set->done_head);
	set->done_head = NULL;
	for (i = 0; i < set->n; i++) {
		chans_cancel(set->ch[i].head);
		set->ch[i].head = NULL;
		if (set->ch[i].fd >= 0)
			close(set->ch[i].fd);
	}
	base_close(&set->b);
}

/* ------------------------------------------------------------------ */
/* The destination                                                     */

/*
 * Slots beyond the connections HELLO named: a stranger that connects to
 * the listener (and says nothing, or not this migration's CHANNEL) holds
 * one until it is dropped, without keeping a real data connection out.
 * When every slot is taken and a connection is still missing, the next
 * one accepted closes the stranger that has waited longest and takes
 * its slot: strangers never keep a data connection out for their
 * handshake bound (a data connection says CHANNEL as soon as it
 * connects, so the one that waited longest is a stranger).
 */
#define DCHAN_SPARE 4u

/*
 * A slot: free (not started), a thread reading a connection, or dropped
 * (a stranger, its thread ended, for the loop to reap).
 */
struct vmig_dchan {
	struct vmig_dchans *set;
	int fd;
	pthread_t thread;
	bool started;
	char peer[160];
	uint8_t *scratch;            /* a checked page's payload */
	/* The thread's, read by the loop once ended is set. */
	struct vmig_rx_terms terms;
	uint64_t pages, zero_pages, bytes, frame_no, last_page_us;
	uint64_t opened_us;          /* accepted: CHANNEL is due by a bound */
	/* Under the set's lock. */
	int index;                   /* its CHANNEL's, -1 before */
	uint64_t markers;            /* ITERATION and SWITCHOVER read */
	uint32_t marker_type;        /* the last one's frame type */
	bool ended;                  /* its COMPLETE was read */
	bool dropped;                /* never this migration's: why says */
	char why[768];
};

struct vmig_dchans {
	struct chan_base b;          /* first: the async's data */
	uv_loop_t *loop;
	struct vmig_rx *rx;
	uint64_t token[2];
	uint32_t n, slots;
	uint64_t handshake_us;       /* from accepting to CHANNEL, at most */
	void (*notify)(void *opaque);
	void *opaque;
	/* Under lock. */
	bool claimed[VMIG_DATA_CONN_MAX];
	uint32_t nclaimed, ended;
	/* The loop's: accepted, its slot being freed (-1: none). */
	int pending_fd;
	char pending_peer[160];
	int err;
	char errmsg[768];
	bool collected;
	struct vmig_dchan ch[];
};

/*
 * The connection failed (err, why): the whole stream does, unless it
 * never presented this migration's CHANNEL: then it was a stranger's,
 * and only it is dropped.
 */
__attribute__((format(printf, 3, 4))) static int
dchan_fail(struct vmig_dchan *c, int err, const char *fmt, ...)
{
	struct vmig_dchans *set = c->set;
	char why[512];
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(why, sizeof(why), fmt, ap);
	va_end(ap);
	pthread_mutex_lock(&set->b.lock);
	if (c->index < 0) {
		if (!c->dropped) {
			c->dropped = true;
			snprintf(c->why, sizeof(c->why),
				 "a connection from %s: %s", c->peer, why);
		}
	} else if (!set->err && !set->b.stop) {
		set->err = err;
		snprintf(set->errmsg, sizeof(set->errmsg),
			 "data connection %d of %u (%s): %s", c->index + 1,
			 set->n, c->peer, why);
		base_stop_locked(&set->b);
	}
	pthread_mutex_unlock(&set->b.lock);
	uv_async_send(&set->b.async);
	return err;
}

/*
 * A marker (the start of a pass): waits until every data connection has
 * read as many, so that nothing of an earlier pass is still to be applied
 * anywhere when this one's pages are.
 */
static int dchan_barrier(struct vmig_dchan *c)
{
	struct vmig_dchans *set = c->set;
	const struct vmig_dchan *short_one = NULL;
	int ret;

	pthread_mutex_lock(&set->b.lock);
	c->markers++;
	pthread_cond_broadcast(&set->b.cond);
	for (;;) {
		uint64_t least = UINT64_MAX;
		uint32_t i;

		if (set->b.stop)
			break;
		/* A data connection not here yet has read none. */
		if (set->nclaimed < set->n)
			least = 0;
		for (i = 0; i < set->slots; i++) {
			const struct vmig_dchan *o = &set->ch[i];

			if (o->index < 0)
				continue;
			/* Ended short of this pass: it never comes. */
			if (o->ended && o->markers < c->markers)
				short_one = o;
			if (o->markers < least)
				least = o->markers;
		}
		if (least >= c->markers || short_one)
			break;
		pthread_cond_wait(&set->b.cond, &set->b.lock);
	}
	ret = set->b.stop ? -ECANCELED : 0;
	pthread_mutex_unlock(&set->b.lock);
	if (!ret && short_one)
		return dchan_fail(c, VMIG_EPROTO,
				  "frame %llu (%s): marker %llu, and data "
				  "connection %d ended after %llu",
				  (unsigned long long)c->frame_no,
				  vmig_frame_name(c->marker_type),
				  (unsigned long long)c->markers,
				  short_one->index + 1,
				  (unsigned long long)short_one->markers);
	return ret;
}

/* The frame types a data connection may carry where it is. */
static bool dchan_allowed(const struct vmig_dchan *c, bool final,
			  uint32_t type)
{
	if (c->index < 0)
		return type == VMIG_FRAME_CHANNEL;
	switch (type) {
	case VMIG_FRAME_PAGES:
	case VMIG_FRAME_ZERO:
		return true;
	case VMIG_FRAME_ITERATION:
	case VMIG_FRAME_SWITCHOVER:
		return !final;
	case VMIG_FRAME_COMPLETE:
		return final;
	default:
		return false;
	}
}

/* CHANNEL: the token, and an index not taken yet. */
static int dchan_hello(struct vmig_dchan *c, const struct vmig_msg *m)
{
	struct vmig_dchans *set = c->set;
	bool taken;

	if (m->channel.token[0] != set->token[0] ||
	    m->channel.token[1] != set->token[1])
		return dchan_fail(c, VMIG_EPROTO, "frame 0 (CHANNEL): not "
				  "this migration's token");
	if (m->channel.index >= set->n)
		return dchan_fail(c, VMIG_EPROTO,
				  "frame 0 (CHANNEL): index %llu, HELLO named "
				  "%u data connection(s)",
				  (unsigned long long)m->channel.index, set->n);
	pthread_mutex_lock(&set->b.lock);
	/* Closed for a newer connection meanwhile: too late to claim. */
	taken = set->claimed[m->channel.index] || c->dropped;
	if (!taken) {
		set->claimed[m->channel.index] = true;
		set->nclaimed++;
		c->index = (int)m->channel.index;
		pthread_cond_broadcast(&set->b.cond);
	}
	pthread_mutex_unlock(&set->b.lock);
	if (taken)
		return dchan_fail(c, VMIG_EPROTO,
				  "frame 0 (CHANNEL): index %llu is taken",
				  (unsigned long long)m->channel.index);
	return 0;
}

/* PAGES: its payload into guest memory, checked first when it has a CRC. */
static int dchan_pages(struct vmig_dchan *c, const struct vmig_msg *m,
		       uint8_t *span, bool final)
{
	struct vmig_dchans *set = c->set;
	uint8_t *dst = m->crc ? c->scratch : span;
	uint32_t crc;
	int ret;

	if (final && !m->crc)
		return dchan_fail(c, VMIG_EPROTO,
				  "frame %llu (PAGES): DATA_CRC missing after "
				  "SWITCHOVER",
				  (unsigned long long)c->frame_no);
	ret = chan_recv(c->fd, dst, m->length, set->b.stop_fd, 0);
	if (ret < 0)
		return ret;
	c->bytes += m->length;
	if (m->crc) {
		crc = vmig_crc32c(0, dst, m->length);
		if (crc != m->data_crc)
			return dchan_fail(c, VMIG_EPROTO,
					  "frame %llu (PAGES): data CRC "
					  "0x%08x, computed 0x%08x",
					  (unsigned long long)c->frame_no,
					  m->data_crc, crc);
		memcpy(span, dst, m->length);
	}
	vmig_rx_pages_applied(set->rx, &c->terms, m);
	return 0;
}

/* One frame. 1: the connection's COMPLETE; 0; or an error. */
static int dchan_frame(struct vmig_dchan *c, bool *final, uint64_t *iter)
{
	struct vmig_dchans *set = c->set;
	uint8_t raw[VMIG_FRAME_HDR], *span = NULL;
	struct vmig_frame f;
	struct vmig_msg m;
	char err[384];
	int ret;

	/* Its CHANNEL comes by a bound: a silent stranger is dropped. */
	ret = chan_recv(c->fd, raw, sizeof(raw), set->b.stop_fd,
			c->index < 0 ? c->opened_us + set->handshake_us : 0);
	if (ret < 0)
		return ret;
	c->bytes += sizeof(raw);
	if (vmig_frame_check_head(raw, c->frame_no, &f, err, sizeof(err)) < 0)
		return dchan_fail(c, VMIG_EPROTO, "%s", err);
	if (!dchan_allowed(c, *final, f.type))
		return dchan_fail(c, VMIG_EPROTO,
				  "frame %llu (%s): not allowed on a data "
				  "connection %s",
				  (unsigned long long)c->frame_no,
				  vmig_frame_name(f.type),
				  c->index < 0 ? "before CHANNEL"
				  : *final     ? "after SWITCHOVER"
					       : "before SWITCHOVER");
	if (vmig_frame_check_body(&f, c->frame_no, err, sizeof(err)) < 0)
		return dchan_fail(c, VMIG_EPROTO, "%s", err);
	vmig_frame_decode(&f, &m);
	if (m.type == VMIG_FRAME_PAGES || m.type == VMIG_FRAME_ZERO) {
		if (vmig_rx_span(set->rx, &m, &span, err, sizeof(err)) < 0)
			return dchan_fail(c, VMIG_EPROTO, "frame %llu (%s): %s",
					  (unsigned long long)c->frame_no,
					  vmig_frame_name(m.type), err);
	}
	switch (m.type) {
	case VMIG_FRAME_CHANNEL:
		ret = dchan_hello(c, &m);
		break;
	case VMIG_FRAME_ITERATION:
		c->marker_type = m.type;
		if (m.iteration.number != *iter)
			return dchan_fail(c, VMIG_EPROTO,
					  "frame %llu (ITERATION): iteration "
					  "%llu, expected %llu",
					  (unsigned long long)c->frame_no,
					  (unsigned long long)m.iteration.number,
					  (unsigned long long)*iter);
		(*iter)++;
		ret = dchan_barrier(c);
		break;
	case VMIG_FRAME_SWITCHOVER:
		c->marker_type = m.type;
		*final = true;
		ret = dchan_barrier(c);
		break;
	case VMIG_FRAME_PAGES:
		ret = dchan_pages(c, &m, span, *final);
		c->pages += m.pages.count;
		c->last_page_us = vmig_now_us();
		break;
	case VMIG_FRAME_ZERO:
		vmig_rx_zero_applied(set->rx, &c->terms, &m, span);
		c->pages += m.pages.count;
		c->zero_pages += m.pages.count;
		c->last_page_us = vmig_now_us();
		break;
	case VMIG_FRAME_COMPLETE:
		if (m.complete.pages != c->pages ||
		    m.complete.frames != c->frame_no)
			return dchan_fail(c, VMIG_EPROTO,
					  "frame %llu (COMPLETE): the source "
					  "sent %llu pages in %llu frames on "
					  "it, %llu pages in %llu frames "
					  "arrived",
					  (unsigned long long)c->frame_no,
					  (unsigned long long)m.complete.pages,
					  (unsigned long long)m.complete.frames,
					  (unsigned long long)c->pages,
					  (unsigned long long)c->frame_no);
		ret = 1;
		break;
	}
	c->frame_no++;
	return ret;
}

static void *dchan_main(void *arg)
{
	struct vmig_dchan *c = arg;
	struct vmig_dchans *set = c->set;
	uint64_t iter = 0;
	bool final = false;
	int ret;

	do {
		ret = dchan_frame(c, &final, &iter);
		uv_async_send(&set->b.async);
	} while (ret == 0);
	if (ret == 1) {
		pthread_mutex_lock(&set->b.lock);
		c->ended = true;
		set->ended++;
		/* A barrier waiting for it learns it will not come. */
		pthread_cond_broadcast(&set->b.cond);
		pthread_mutex_unlock(&set->b.lock);
	} else if (ret == -ETIMEDOUT) {
		dchan_fail(c, ret, "no CHANNEL in %llu ms",
			   (unsigned long long)set->handshake_us / 1000);
	} else if (ret != -ECANCELED) {
		/* The stream broke (a failed check has said so already). */
		dchan_fail(c, ret, "connection lost at frame %llu: %s",
			   (unsigned long long)c->frame_no,
			   ret == -ECONNRESET ? "the source closed it"
					      : strerror(-ret));
	}
	uv_async_send(&set->b.async);
	return NULL;
}

static void dchans_async(uv_async_t *a)
{
	struct vmig_dchans *set = a->data;

	if (!set->b.closed)
		set->notify(set->opaque);
}

int vmig_dchans_new(struct vmig_dchans **out, uv_loop_t *loop,
		    struct vmig_rx *rx, uint32_t n, const uint64_t token[2],
		    uint64_t handshake_ms, void (*notify)(void *opaque),
		    void *opaque)
{
	struct vmig_dchans *set;
	uint32_t i, slots = n + DCHAN_SPARE;

	*out = NULL;
	set = calloc(1, sizeof(*set) + slots * sizeof(set->ch[0]));
	if (!set)
		return -ENOMEM;
	if (base_init(&set->b, loop, dchans_async) < 0) {
		free(set);
		return -ENOMEM;
	}
	set->loop = loop;
	set->rx = rx;
	set->n = n;
	set->slots = slots;
	set->handshake_us = handshake_ms * 1000u;
	set->token[0] = token[0];
	set->token[1] = token[1];
	set->notify = notify;
	set->opaque = opaque;
	set->pending_fd = -1;
	for (i = 0; i < slots; i++) {
		set->ch[i].set = set;
		set->ch[i].fd = -1;
		set->ch[i].index = -1;
	}
	*out = set;
	return 0;
}

/* A slot no thread reads: none, or NULL. */
static struct vmig_dchan *dchans_free_slot(struct vmig_dchans *set)
{
	uint32_t i;

	for (i = 0; i < set->slots; i++)
		if (!set->ch[i].started)
			return &set->ch[i];
	return NULL;
}

/*
 * Every slot is taken: the stranger that has waited longest for its
 * CHANNEL is closed (its thread reads the end, its slot is reaped).
 */
static void dchans_evict(struct vmig_dchans *set)
{
	struct vmig_dchan *old = NULL;
	uint32_t i;

	pthread_mutex_lock(&set->b.lock);
	for (i = 0; i < set->slots; i++) {
		struct vmig_dchan *c = &set->ch[i];

		if (c->started && c->index < 0 && !c->dropped &&
		    (!old || c->opened_us < old->opened_us))
			old = c;
	}
	if (old) {
		old->dropped = true;
		snprintf(old->why, sizeof(old->why),
			 "a connection from %s: no CHANNEL in %llu ms, and "
			 "every slot was taken when another connected",
			 old->peer,
			 (unsigned long long)(vmig_now_us() - old->opened_us) /
				 1000);
		shutdown(old->fd, SHUT_RDWR);
	}
	pthread_mutex_unlock(&set->b.lock);
}

static int dchans_start(struct vmig_dchan *c, int fd, const char *peer);

int vmig_dchans_add(struct vmig_dchans *set, int fd, const char *peer)
{
	struct vmig_dchan *c = dchans_free_slot(set);

	if (!c) {
		if (set->pending_fd >= 0) {
			close(fd);
			return -EBUSY;
		}
		/* It waits for the slot of the stranger closed for it. */
		dchans_evict(set);
		set->pending_fd = fd;
		snprintf(set->pending_peer, sizeof(set->pending_peer), "%s",
			 peer);
		return 0;
	}
	return dchans_start(c, fd, peer);
}

/* A thread for the connection fd, in the free slot c. */
static int dchans_start(struct vmig_dchan *c, int fd, const char *peer)
{
	int ret;

	c->fd = fd;
	c->opened_us = vmig_now_us();
	snprintf(c->peer, sizeof(c->peer), "%s", peer);
	if (!c->scratch)
		c->scratch = malloc(VMIG_PAGES_MAX * VMIG_PAGE_SIZE);
	if (!c->scratch) {
		close(fd);
		c->fd = -1;
		return -ENOMEM;
	}
	ret = -pthread_create(&c->thread, NULL, dchan_main, c);
	if (ret < 0) {
		close(fd);
		c->fd = -1;
		return ret;
	}
	c->started = true;
	return 0;
}

uint32_t vmig_dchans_claimed(struct vmig_dchans *set)
{
	uint32_t claimed;

	pthread_mutex_lock(&set->b.lock);
	claimed = set->nclaimed;
	pthread_mutex_unlock(&set->b.lock);
	return claimed;
}

bool vmig_dchans_want(struct vmig_dchans *set)
{
	return vmig_dchans_claimed(set) < set->n && set->pending_fd < 0;
}

/* The strangers' slots: their threads joined, the slots free again. */
static uint32_t dchans_reap(struct vmig_dchans *set, char *why, size_t len)
{
	uint32_t i, n = 0;

	for (i = 0; i < set->slots; i++) {
		struct vmig_dchan *c = &set->ch[i];
		bool dropped;

		pthread_mutex_lock(&set->b.lock);
		dropped = c->started && c->dropped;
		if (dropped)
			snprintf(why, len, "%s", c->why);
		pthread_mutex_unlock(&set->b.lock);
		if (!dropped)
			continue;
		pthread_join(c->thread, NULL);
		close(c->fd);
		c->fd = -1;
		c->started = false;
		c->dropped = false;
		c->frame_no = c->bytes = 0;
		n++;
	}
	return n;
}

int vmig_dchans_poll(struct vmig_dchans *set, uint32_t *dropped, char *msg,
		     size_t msglen)
{
	struct vmig_rx *rx = set->rx;
	bool all;
	uint32_t i;
	int err;

	msg[0] = '\0';
	pthread_mutex_lock(&set->b.lock);
	err = set->err;
	if (err)
		snprintf(msg, msglen, "%s", set->errmsg);
	all = set->ended == set->n;
	pthread_mutex_unlock(&set->b.lock);
	if (err)
		return err;
	*dropped = dchans_reap(set, msg, msglen);
	if (set->pending_fd >= 0) {
		struct vmig_dchan *c = dchans_free_slot(set);

		if (c) {
			int fd = set->pending_fd;

			set->pending_fd = -1;
			err = dchans_start(c, fd, set->pending_peer);
			if (err < 0) {
				snprintf(msg, msglen, "data connection from "
					 "%s: %s", set->pending_peer,
					 strerror(-err));
				return err;
			}
		}
	}
	/*
	 * All ended with the same markers: one that read more waited at its
	 * last barrier for the others, and dchan_barrier refuses a wait for
	 * one that ended short.
	 */
	if (!all)
		return 0;
	if (!set->collected) {
		set->collected = true;
		for (i = 0; i < set->slots; i++) {
			const struct vmig_dchan *c = &set->ch[i];

			if (c->index < 0)
				continue;
			rx->pages += c->pages;
			rx->zero_pages += c->zero_pages;
			rx->bytes += c->bytes;
			rx->terms.sum += c->terms.sum;
			rx->terms.pages += c->terms.pages;
			if (c->last_page_us > rx->last_page_us)
				rx->last_page_us = c->last_page_us;
		}
	}
	return 1;
}

void vmig_dchans_close(struct vmig_dchans *set)
{
	uint32_t i;

	if (!set || !base_close_begin(&set->b))
		return;
	for (i = 0; i < set->slots; i++) {
		struct vmig_dchan *c = &set->ch[i];

		if (c->started)
			pthread_join(c->thread, NULL);
		if (c->fd >= 0)
			close(c->fd);
		free(c->scratch);
	}
	if (set->pending_fd >= 0)
		close(set->pending_fd);
	base_close(&set->b);
}
