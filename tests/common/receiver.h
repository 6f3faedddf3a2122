/*
 * receiver.h: what a test or benchmark migrating between two sessions of
 * one process over a socket needs: the destination receiving on a thread
 * of its own, and guest memory of bytes that do not compress (xorshift64).
 */
#ifndef VMIG_TEST_RECEIVER_H
#define VMIG_TEST_RECEIVER_H

#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include <vmig/vmig.h>

/* A destination session s receiving: vmig_receive()'s result in ret. */
struct vmig_test_receiver {
	vmig_session *s;
	int ret;
};

/* A thread's start routine: receives on the struct vmig_test_receiver. */
static inline void *vmig_test_receive_main(void *opaque)
{
	struct vmig_test_receiver *rc = opaque;

	rc->ret = vmig_receive(rc->s);
	return NULL;
}

/* Fills the whole 8-byte words of len bytes at p from xorshift64 state x. */
static inline void vmig_test_fill_xorshift(uint8_t *p, size_t len, uint64_t x)
{
	size_t i;

	for (i = 0; i + 8 <= len; i += 8) {
		x ^= x << 13;
		x ^= x >> 7;
		x ^= x << 17;
		memcpy(p + i, &x, 8);
	}
}

#endif /* VMIG_TEST_RECEIVER_H */
