/*
 * frames.h: reading the migration stream's frames as a hostile or fake
 * peer written in a test does: a little-endian field of a header, and
 * one whole frame from a socket (docs/protocol.md, "Frames").
 */
#ifndef VMIG_TEST_FRAMES_H
#define VMIG_TEST_FRAMES_H

#include <stddef.h>
#include <stdint.h>
#include <unistd.h>

/* A frame header's bytes. */
#define VMIG_TEST_FRAME_HDR 64u

/* The n-byte little-endian field at p. */
static inline uint64_t get_le(const uint8_t *p, unsigned int n)
{
	uint64_t v = 0;

	while (n--)
		v = (v << 8) | p[n];
	return v;
}

/*
 * Reads one frame from fd: its header into hdr, its payload through buf
 * (len bytes at a time, the last piece left there). Returns the frame's
 * type, or -1 when the stream ended or failed first.
 */
static inline int read_frame(int fd, uint8_t *hdr, uint8_t *buf, size_t len)
{
	uint64_t plen, got = 0;

	while (got < VMIG_TEST_FRAME_HDR) {
		ssize_t n = read(fd, hdr + got, VMIG_TEST_FRAME_HDR - got);

		if (n <= 0)
			return -1;
		got += (uint64_t)n;
	}
	plen = get_le(hdr + 24, 8);
	got = 0;
	while (got < plen) {
		ssize_t n = read(fd, buf, plen - got < len ? plen - got : len);

		if (n <= 0)
			return -1;
		got += (uint64_t)n;
	}
	return (int)get_le(hdr + 6, 2);
}

#endif /* VMIG_TEST_FRAMES_H */
