/*
 * sendall.h: sending all of a buffer on a socket, as the tests' relays
 * between two migration peers do: interrupted sends retried, a peer gone
 * an answer (never SIGPIPE).
 */
#ifndef VMIG_TEST_SENDALL_H
#define VMIG_TEST_SENDALL_H

#include <errno.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/socket.h>
#include <sys/types.h>

/* Sends the n bytes at p on fd: 0, or -1 when the socket failed. */
static inline int vmig_test_send_all(int fd, const uint8_t *p, size_t n)
{
	while (n) {
		ssize_t k = send(fd, p, n, MSG_NOSIGNAL);

		if (k < 0 && errno == EINTR)
			continue;
		if (k <= 0)
			return -1;
		p += k;
		n -= (size_t)k;
	}
	return 0;
}

#endif /* VMIG_TEST_SENDALL_H */
