/*
 * fuzz_rx.c: libFuzzer harness of the destination's receive machine
 * (core/dest.c, struct vmig_rx), without sockets.
 *
 * An input is two bytes of mode, then a stream as a source would send
 * it. The mode says how the stream is fed and whether the harness makes
 * it pass the integrity checks first:
 *
 *   byte 0, bit 0: fix the CRCs: walk the stream frame by frame (each
 *                  header's length says where the next one starts) and
 *                  write the header CRC and, where DATA_CRC is set, the
 *                  data CRC, so the fuzzer reaches the checks behind
 *                  them;
 *           bit 1: fix each header's magic and version as well;
 *   byte 1:        0: each read as large as the receiver allows; else
 *                  reads of 1 to 16 * byte 1 bytes, drawn from a
 *                  generator seeded by it (a socket's arbitrary
 *                  chunking).
 *
 * The session is a destination of two regions at 0x100000 (16 pages)
 * and 0x40000000 (8 pages) and two devices, "nic0" and "gpu0", whose
 * state goes to a loader of this file that takes any bytes: the machine
 * is what is tested, not a kernel. Its VMM loads one state section,
 * "cpu" (versions 1 and 2), whose load reads every byte and takes it. The regions sit between guard pages:
 * a write outside them faults. After each input the machine's own
 * invariants are checked: a failed stream has a message, and nothing
 * counts more pages than the regions hold.
 */
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>

#include <vmig/vmig.h>

#include "core/engine.h"
#include "core/proto.h"
#include "core/section.h"

#define PG 4096u
#define R0_PAGES 16u
#define R1_PAGES 8u

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);
int LLVMFuzzerInitialize(int *argc, char ***argv);

static vmig_session *sess;
static struct vmig_rx fresh; /* vmig_rx_init()'s machine, never fed */

/* A region between two inaccessible pages. */
static uint8_t *guarded(size_t pages)
{
	uint8_t *p = mmap(NULL, (pages + 2) * PG, PROT_READ | PROT_WRITE,
			  MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);

	if (p == MAP_FAILED)
		abort();
	mprotect(p, PG, PROT_NONE);
	mprotect(p + (pages + 1) * PG, PG, PROT_NONE);
	return p + PG;
}

/* Device state goes nowhere: any bytes are taken. */
static int fake_open(struct vmig_rx *rx, struct vmig_rx_device *d, char *err,
		     size_t errlen)
{
	(void)rx;
	(void)err;
	(void)errlen;
	d->ds = NULL;
	return 0;
}

static int fake_write(struct vmig_rx *rx, struct vmig_rx_device *d,
		      const void *buf, size_t len, char *err, size_t errlen)
{
	(void)rx;
	(void)d;
	(void)err;
	(void)errlen;
	/* Touch every byte: a length past the buffer shows up here. */
	if (len && ((const volatile uint8_t *)buf)[len - 1] == 0x5a &&
	    ((const volatile uint8_t *)buf)[0] == 0xa5)
		return 0;
	return 0;
}

/* Starting, loading and running the devices: nothing to do. */
static int fake_ok(struct vmig_rx *rx, char *err, size_t errlen)
{
	(void)rx;
	(void)err;
	(void)errlen;
	return 0;
}

static void fake_none(struct vmig_rx *rx)
{
	(void)rx;
}

static const struct vmig_section_loader fake_devs = {
	.name = "fuzz-devices",
	.open = fake_open,
	.start = fake_ok,
	.write = fake_write,
	.load = fake_ok,
	.run = fake_ok,
	.abort = fake_none,
	.close = fake_none,
};

/* The VMM's "cpu" section: every byte read, every record taken. */
static int cpu_load(void *opaque, uint32_t version, const void *data,
		    size_t len)
{
	(void)opaque;
	(void)version;
	if (((const volatile uint8_t *)data)[len - 1] == 0x5a &&
	    ((const volatile uint8_t *)data)[0] == 0xa5)
		return 0;
	return 0;
}

static const struct vmig_state_ops cpu_ops = {
	.size = sizeof(cpu_ops),
	.load = cpu_load,
};

/* Adds region name at gpa, pages long, between guard pages. */
static void add_region(const char *name, uint64_t gpa, size_t pages)
{
	struct vmig_region r = { .size = sizeof(r), .fd = -1, .name = name,
				 .gpa = gpa, .length = pages * PG };

	r.hva = guarded(pages);
	if (vmig_region_add(sess, &r, NULL))
		abort();
}

int LLVMFuzzerInitialize(int *argc, char ***argv)
{
	static const char *const devices[] = { "nic0", "gpu0" };
	struct vmig_session_params p = { .size = sizeof(p),
					 .role = VMIG_ROLE_DESTINATION };
	struct vmig_iommu io = { .size = sizeof(io),
				 .kind = VMIG_IOMMU_TYPE1, .fd = 0 };
	struct vmig_device d = { .size = sizeof(d),
				 .kind = VMIG_DEVICE_VFIO_PCI,
				 .device_fd = -1, .group_fd = -1 };
	size_t i;

	(void)argc;
	(void)argv;
	if (vmig_session_new(&p, &sess))
		abort();
	add_region("low", 0x100000, R0_PAGES);
	add_region("high", 0x40000000, R1_PAGES);
	if (vmig_iommu_add(sess, &io, &d.iommu_id))
		abort();
	for (i = 0; i < sizeof(devices) / sizeof(devices[0]); i++) {
		d.name = devices[i];
		if (vmig_device_add(sess, &d, NULL))
			abort();
	}
	if (vmig_state_register(sess, "cpu", 2, 1, &cpu_ops, NULL))
		abort();
	if (vmig_rx_init(&fresh, sess))
		abort();
	return 0;
}

static uint64_t le(const uint8_t *p, unsigned int n)
{
	uint64_t v = 0;

	while (n--)
		v = (v << 8) | p[n];
	return v;
}

static void put_le(uint8_t *p, uint64_t v, unsigned int n)
{
	unsigned int i;

	for (i = 0; i < n; i++)
		p[i] = (uint8_t)(v >> (8 * i));
}

/* Makes every whole frame of s pass the magic, version and CRC checks. */
static void fix_up(uint8_t *s, size_t len, bool magic)
{
	size_t off = 0;

	while (len - off >= VMIG_FRAME_HDR) {
		uint8_t *h = s + off;
		uint64_t plen = le(h + 24, 8);
		size_t avail = len - off - VMIG_FRAME_HDR;

		if (magic) {
			memcpy(h, "VMIG", 4);
			put_le(h + 4, VMIG_PROTO_VERSION, 2);
		}
		if (le(h + 8, 4) & VMIG_FRAME_DATA_CRC)
			put_le(h + 16,
			       vmig_crc32c(0, h + VMIG_FRAME_HDR,
					   plen < avail ? (size_t)plen : avail),
			       4);
		put_le(h + 12, 0, 4);
		put_le(h + 12, vmig_crc32c(0, h, VMIG_FRAME_HDR), 4);
		if (plen > avail)
			break;
		off += VMIG_FRAME_HDR + (size_t)plen;
	}
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	static struct vmig_rx rx;
	uint8_t *s;
	uint32_t rnd;
	size_t len, off = 0, chunk;
	int ret = 0;

	if (size < 2)
		return 0;
	len = size - 2;
	s = malloc(len ? len : 1);
	if (!s)
		return 0;
	memcpy(s, data + 2, len);
	if (data[0] & 1)
		fix_up(s, len, data[0] & 2);
	chunk = data[1];
	rnd = data[1] * 2654435761u + 1;
	/*
	 * A machine as vmig_rx_init() made it, its scratch buffer shared by
	 * every input: a fresh megabyte each time (mapped, its shadow
	 * poisoned, unmapped) would be most of the fuzzer's time. (Should
	 * init ever own more than the scratch, fini of the copy frees it
	 * and AddressSanitizer says so on the next input.)
	 */
	rx = fresh;
	rx.devs = &fake_devs;
	while (off < len) {
		void *dst;
		size_t room, n;

		vmig_rx_buf(&rx, &dst, &room);
		if (!room)
			abort(); /* the machine must always take bytes */
		n = len - off < room ? len - off : room;
		if (chunk) {
			rnd = rnd * 1103515245u + 12345u;
			if (n > 1 + (rnd >> 8) % (16 * chunk))
				n = 1 + (rnd >> 8) % (16 * chunk);
		}
		memcpy(dst, s + off, n);
		off += n;
		ret = vmig_rx_feed(&rx, n);
		/* The source's ERROR ends the stream: dest.c reads no more. */
		if (ret < 0 || ret == VMIG_RX_PEER_ERROR)
			break;
	}
	if (ret < 0 && (rx.state != VMIG_RX_FAILED || !rx.err[0])) {
		/* A rejected stream says why. */
		fprintf(stderr, "fuzz_rx: error %d in state %s, message "
			"\"%s\"\n", ret, vmig_rx_state_name(rx.state), rx.err);
		abort();
	}
	/* For triage (and to check that the seeds reach COMMIT). */
	if (getenv("VMIG_FUZZ_VERBOSE"))
		fprintf(stderr, "fuzz_rx: %zu bytes, state %s, frame %llu%s%s\n",
			len, vmig_rx_state_name(rx.state),
			(unsigned long long)rx.frame_no, rx.err[0] ? ": " : "",
			rx.err);
	if (rx.pages > (uint64_t)(R0_PAGES + R1_PAGES) * 1000000u)
		abort();
	rx.scratch = NULL;
	vmig_rx_fini(&rx);
	free(s);
	return 0;
}
