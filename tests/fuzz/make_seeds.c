/*
 * make_seeds.c: writes the seed corpus of fuzz_rx (tests/fuzz/corpus/rx)
 * with proto.c's encoders: small valid streams for fuzz_rx's session
 * (two regions, devices "nic0" and "gpu0", the VMM's state section
 * "cpu"), each behind the two mode
 * bytes fuzz_rx reads, fed whole, in small chunks, and with the CRCs
 * fixed by the harness. Run by hand after a change of the format:
 *
 *   build-fuzz/bin/vmig-fuzz-seeds tests/fuzz/corpus/rx
 */
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/proto.h"

#define PG 4096u

struct stream {
	uint8_t buf[1 << 16];
	size_t len;
	uint64_t frames, pages;
};

static void put(struct stream *st, const void *p, size_t n)
{
	if (st->len + n > sizeof(st->buf)) {
		fprintf(stderr, "seed too large\n");
		exit(1);
	}
	memcpy(st->buf + st->len, p, n);
	st->len += n;
}

static void frame(struct stream *st, const uint8_t hdr[VMIG_FRAME_HDR],
		  const void *payload, size_t len)
{
	put(st, hdr, VMIG_FRAME_HDR);
	if (len)
		put(st, payload, len);
	st->frames++;
}

static void hello(struct stream *st, uint32_t ndev, uint32_t conns,
		  uint32_t flags)
{
	const struct vmig_hello_counts n = { .regions = 2, .devices = ndev,
					     .sections = 1 };
	uint8_t hdr[VMIG_FRAME_HDR], layout[512];
	size_t len = vmig_hello_len(&n);

	memset(layout, 0, sizeof(layout));
	vmig_hello_put_region(layout, 0, 0x100000, 16 * PG, "low");
	vmig_hello_put_region(layout, 1, 0x40000000, 8 * PG, "high");
	if (ndev > 0)
		vmig_hello_put_device(layout, 2, 0, "nic0");
	if (ndev > 1)
		vmig_hello_put_device(layout, 2, 1, "gpu0");
	vmig_hello_put_section(layout, &n, 0, "cpu", 2);
	vmig_enc_hello(hdr, flags, conns, &n, layout, len);
	frame(st, hdr, layout, len);
}

static void pages(struct stream *st, uint32_t region, uint64_t first,
		  uint32_t count, bool crc, uint8_t fill)
{
	static uint8_t data[2 * PG];
	uint8_t hdr[VMIG_FRAME_HDR];

	memset(data, fill, sizeof(data));
	vmig_enc_pages(hdr, region, first, count, data, crc);
	frame(st, hdr, data, count * PG);
	st->pages += count;
}

static void zero(struct stream *st, uint32_t region, uint64_t first,
		 uint64_t count)
{
	uint8_t hdr[VMIG_FRAME_HDR];

	vmig_enc_zero(hdr, region, first, count);
	frame(st, hdr, NULL, 0);
	st->pages += count;
}

static void state(struct stream *st, uint32_t dev, uint64_t off,
		  uint32_t phase, size_t len)
{
	uint8_t hdr[VMIG_FRAME_HDR], data[64];

	memset(data, 0x30 + (int)dev, sizeof(data));
	vmig_enc_device_state(hdr, dev, off, phase, data, len);
	frame(st, hdr, data, len);
}

/* One record of the VMM's "cpu" section. */
static void vmm_state(struct stream *st, uint64_t off, uint32_t phase,
		      size_t len)
{
	uint8_t hdr[VMIG_FRAME_HDR], data[64];

	memset(data, 0x70, sizeof(data));
	vmig_enc_vmm_state(hdr, 0, off, phase, data, len);
	frame(st, hdr, data, len);
}

static void simple(struct stream *st, void (*enc)(uint8_t *))
{
	uint8_t hdr[VMIG_FRAME_HDR];

	enc(hdr);
	frame(st, hdr, NULL, 0);
}

static void iteration(struct stream *st, uint64_t n)
{
	uint8_t hdr[VMIG_FRAME_HDR];

	vmig_enc_iteration(hdr, n);
	frame(st, hdr, NULL, 0);
}

/*
 * A whole migration: two iterations, device state, the end, COMMIT;
 * HELLO with the stream flags given.
 */
static void migration(struct stream *st, uint32_t ndev, uint32_t flags)
{
	uint8_t hdr[VMIG_FRAME_HDR];
	uint32_t d;

	hello(st, ndev, 0, flags);
	iteration(st, 0);
	pages(st, 0, 0, 2, false, 0x11);
	zero(st, 0, 2, 14);
	zero(st, 1, 0, 8);
	for (d = 0; d < ndev; d++)
		state(st, d, 0, VMIG_DS_PRECOPY, 16);
	vmm_state(st, 0, VMIG_DS_PRECOPY, 12);
	iteration(st, 1);
	pages(st, 1, 3, 1, false, 0x22);
	simple(st, vmig_enc_switchover);
	pages(st, 0, 5, 1, true, 0x33);
	for (d = 0; d < ndev; d++) {
		state(st, d, 16, VMIG_DS_STOPCOPY, 8);
		vmig_enc_device_end(hdr, d, 24);
		frame(st, hdr, NULL, 0);
	}
	vmm_state(st, 12, VMIG_DS_STOPCOPY, 40);
	vmig_enc_vmm_state_end(hdr, 0, 52);
	frame(st, hdr, NULL, 0);
	vmig_enc_complete(hdr, st->pages, st->frames);
	frame(st, hdr, NULL, 0);
	simple(st, vmig_enc_commit);
}

static void write_seed(const char *dir, const char *name, uint8_t mode,
		       uint8_t chunk, const struct stream *st)
{
	char path[4096];
	FILE *f;

	snprintf(path, sizeof(path), "%s/%s", dir, name);
	f = fopen(path, "wb");
	if (!f || fputc(mode, f) == EOF || fputc(chunk, f) == EOF ||
	    fwrite(st->buf, 1, st->len, f) != st->len || fclose(f)) {
		perror(path);
		exit(1);
	}
}

int main(int argc, char **argv)
{
	static struct stream st;
	uint8_t hdr[VMIG_FRAME_HDR];
	const char msg[] = "cancelled by the source";

	if (argc != 2) {
		fprintf(stderr, "usage: %s DIR\n", argv[0]);
		return 2;
	}
	migration(&st, 2, 0);
	write_seed(argv[1], "migration-2dev", 0, 0, &st);
	write_seed(argv[1], "migration-2dev-chunked", 0, 3, &st);
	write_seed(argv[1], "migration-2dev-fixcrc", 1, 1, &st);
	memset(&st, 0, sizeof(st));
	migration(&st, 0, 0);
	write_seed(argv[1], "migration-nodev", 0, 0, &st);
	write_seed(argv[1], "migration-nodev-fix", 3, 7, &st);
	/* verify "strict" and "off": the destination's other digests. */
	memset(&st, 0, sizeof(st));
	migration(&st, 0, VMIG_HELLO_FULL_DIGEST);
	write_seed(argv[1], "migration-full-digest", 0, 0, &st);
	memset(&st, 0, sizeof(st));
	migration(&st, 0, VMIG_HELLO_NO_DIGEST);
	write_seed(argv[1], "migration-no-digest", 0, 0, &st);
	memset(&st, 0, sizeof(st));
	hello(&st, 1, 0, 0);
	iteration(&st, 0);
	vmig_enc_error(hdr, -125, msg, sizeof(msg) - 1);
	frame(&st, hdr, msg, sizeof(msg) - 1);
	write_seed(argv[1], "hello-then-error", 0, 0, &st);
	/* Pages on data connections: the main stream carries none. */
	memset(&st, 0, sizeof(st));
	hello(&st, 0, 2, 0);
	iteration(&st, 0);
	iteration(&st, 1);
	vmig_enc_error(hdr, -125, msg, sizeof(msg) - 1);
	frame(&st, hdr, msg, sizeof(msg) - 1);
	write_seed(argv[1], "hello-data-connections", 0, 0, &st);
	return 0;
}
