/*
 * test_proto.c: the migration stream's wire format and the destination's
 * frame checks (core/proto.c, core/dest.c's receiving state machine).
 *
 * Frames are built in memory and fed to a destination state machine over
 * guest memory with a canary page on each side, checked after every
 * stream (a write just outside a region is an assertion that fails, not a
 * crash), and inaccessible guard pages beyond them, so that a write far
 * outside crashes the test. Every check of
 * docs/protocol.md is made to fail once, with its exact message; a fuzz
 * loop (fixed seed) feeds thousands of corrupted and truncated streams in
 * random chunk sizes and requires a clean ending every time.
 */
#include <endian.h>
#include <errno.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>

#include <vmig/vmig.h>

#include "core/engine.h"
#include "core/proto.h"
#include "testutil.h"

#define PG 4096u
#define R0_PAGES 64u  /* region 0: gpa 0x100000 */
#define R1_PAGES 16u  /* region 1: gpa 0x40000000 */

/* ------------------------------------------------------------------ */
/* A destination session over guarded memory                          */

struct guarded {
	uint8_t *base; /* guard, canary, memory, canary, guard */
	uint8_t *mem;
	size_t len;
};

#define CANARY 0xa5

static void guarded_map(struct guarded *g, size_t pages)
{
	g->len = pages * PG;
	g->base = mmap(NULL, g->len + 4 * PG, PROT_NONE,
		       MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	CU_ASSERT_FATAL(g->base != MAP_FAILED);
	g->mem = g->base + 2 * PG;
	CU_ASSERT_FATAL(mprotect(g->mem - PG, g->len + 2 * PG,
				 PROT_READ | PROT_WRITE) == 0);
	memset(g->mem - PG, CANARY, PG);
	memset(g->mem + g->len, CANARY, PG);
}

/* Whether the pages on both sides of the memory were left alone. */
static bool guarded_intact(const struct guarded *g)
{
	size_t i;

	for (i = 0; i < PG; i++)
		if (g->mem[-1 - (ptrdiff_t)i] != CANARY ||
		    g->mem[g->len + i] != CANARY)
			return false;
	return true;
}

static void guarded_unmap(struct guarded *g)
{
	/* Nothing was ever written outside the regions. */
	CU_ASSERT(guarded_intact(g));
	munmap(g->base, g->len + 4 * PG);
}

struct dest {
	vmig_session *s;
	struct guarded r0, r1;
	struct vmig_rx rx;
};

static void dest_init_flags(struct dest *d, uint32_t flags)
{
	struct vmig_session_params p = { .size = sizeof(p),
					 .role = VMIG_ROLE_DESTINATION };
	struct vmig_region r = { .size = sizeof(r), .fd = -1, .flags = flags };

	memset(d, 0, sizeof(*d));
	CU_ASSERT_FATAL(vmig_session_new(&p, &d->s) == 0);
	guarded_map(&d->r0, R0_PAGES);
	guarded_map(&d->r1, R1_PAGES);
	r.name = "low";
	r.gpa = 0x100000;
	r.length = R0_PAGES * PG;
	r.hva = d->r0.mem;
	CU_ASSERT_FATAL(vmig_region_add(d->s, &r, NULL) == 0);
	r.name = "high";
	r.gpa = 0x40000000;
	r.length = R1_PAGES * PG;
	r.hva = d->r1.mem;
	CU_ASSERT_FATAL(vmig_region_add(d->s, &r, NULL) == 0);
	CU_ASSERT_FATAL(vmig_rx_init(&d->rx, d->s) == 0);
}

static void dest_init(struct dest *d)
{
	dest_init_flags(d, 0);
}

static void dest_fini(struct dest *d)
{
	vmig_rx_fini(&d->rx);
	vmig_session_free(d->s);
	guarded_unmap(&d->r0);
	guarded_unmap(&d->r1);
}

/*
 * Feeds len bytes as a socket would, in pieces of at most chunk bytes
 * (0: as large as the receiver allows). Returns the last event, or the
 * first error; *events collects a bit per event seen.
 */
static int feed(struct dest *d, const uint8_t *buf, size_t len, size_t chunk,
		unsigned int *events)
{
	size_t off = 0;
	int ret = 0;

	while (off < len) {
		void *dst;
		size_t room, n;

		vmig_rx_buf(&d->rx, &dst, &room);
		CU_ASSERT_FATAL(room > 0);
		n = len - off < room ? len - off : room;
		if (chunk && n > chunk)
			n = chunk;
		memcpy(dst, buf + off, n);
		off += n;
		ret = vmig_rx_feed(&d->rx, n);
		if (ret < 0)
			return ret;
		if (events)
			*events |= 1u << ret;
	}
	return ret;
}

/* ------------------------------------------------------------------ */
/* Building streams                                                    */

struct stream {
	uint8_t *buf;
	size_t len, cap;
	uint64_t frames;
	uint64_t pages;
};

static void put(struct stream *st, const void *p, size_t n)
{
	if (st->len + n > st->cap) {
		st->cap = (st->len + n) * 2 + 4096;
		st->buf = realloc(st->buf, st->cap);
		CU_ASSERT_FATAL(st->buf != NULL);
	}
	memcpy(st->buf + st->len, p, n);
	st->len += n;
}

/* A well-formed frame; crc: with DATA_CRC over the payload. */
static void frame(struct stream *st, uint32_t type, uint64_t a, uint64_t b,
		  uint64_t c, const void *payload, size_t len, bool crc)
{
	uint8_t h[VMIG_FRAME_HDR];

	vmig_frame_pack(h, type, len, a, b, c, crc ? payload : NULL);
	put(st, h, sizeof(h));
	if (len)
		put(st, payload, len);
	st->frames++;
}

/* The layout of the destination above, as a source would send it. */
static void hello(struct stream *st, uint32_t nregions, uint64_t size0)
{
	uint8_t p[2 * VMIG_HELLO_REGION];
	uint64_t v;

	memset(p, 0, sizeof(p));
	v = htole64(0x100000);
	memcpy(p, &v, 8);
	v = htole64(size0);
	memcpy(p + 8, &v, 8);
	strcpy((char *)p + 16, "low");
	v = htole64(0x40000000);
	memcpy(p + VMIG_HELLO_REGION, &v, 8);
	v = htole64(R1_PAGES * PG);
	memcpy(p + VMIG_HELLO_REGION + 8, &v, 8);
	strcpy((char *)p + VMIG_HELLO_REGION + 16, "high");
	frame(st, VMIG_FRAME_HELLO, 0, nregions, 0, p,
	      nregions * VMIG_HELLO_REGION, true);
}

static void page_fill(uint8_t *p, size_t n, unsigned int seed)
{
	size_t i;

	for (i = 0; i < n; i++)
		p[i] = (uint8_t)(seed * 131 + i * 7 + (i >> 12));
}

/*
 * A whole valid migration: layout, two iterations of pages (data and
 * zero), switchover, the last pages with DATA_CRC, COMPLETE and COMMIT.
 * What region 0 and 1 end up holding is written to want0/want1.
 */
static void good_stream(struct stream *st, uint8_t *want0, uint8_t *want1)
{
	static uint8_t pages[8 * PG];

	memset(st, 0, sizeof(*st));
	memset(want0, 0, R0_PAGES * PG);
	memset(want1, 0, R1_PAGES * PG);
	hello(st, 2, R0_PAGES * PG);
	frame(st, VMIG_FRAME_ITERATION, 0, 0, 0, NULL, 0, false);
	page_fill(pages, 8 * PG, 1);
	frame(st, VMIG_FRAME_PAGES, 0, 3, 8, pages, 8 * PG, false);
	memcpy(want0 + 3 * PG, pages, 8 * PG);
	frame(st, VMIG_FRAME_ZERO, 0, 11, R0_PAGES - 11, NULL, 0, false);
	page_fill(pages, 2 * PG, 2);
	frame(st, VMIG_FRAME_PAGES, 1, 14, 2, pages, 2 * PG, false);
	memcpy(want1 + 14 * PG, pages, 2 * PG);
	st->pages += 8 + (R0_PAGES - 11) + 2;
	frame(st, VMIG_FRAME_ITERATION, 1, 0, 0, NULL, 0, false);
	page_fill(pages, PG, 3);
	frame(st, VMIG_FRAME_PAGES, 0, 5, 1, pages, PG, false);
	memcpy(want0 + 5 * PG, pages, PG);
	st->pages += 1;
	frame(st, VMIG_FRAME_SWITCHOVER, 0, 0, 0, NULL, 0, false);
	page_fill(pages, 3 * PG, 4);
	frame(st, VMIG_FRAME_PAGES, 0, 0, 3, pages, 3 * PG, true);
	memcpy(want0, pages, 3 * PG);
	frame(st, VMIG_FRAME_ZERO, 0, 4, 1, NULL, 0, false);
	memset(want0 + 4 * PG, 0, PG);
	st->pages += 4;
	frame(st, VMIG_FRAME_COMPLETE, st->pages, st->frames, 0, NULL, 0,
	      false);
	frame(st, VMIG_FRAME_COMMIT, 0, 0, 0, NULL, 0, false);
}

/* Rewrites a header's CRC after the test edited it. */
static void fix_crc(uint8_t *h)
{
	uint32_t crc;

	memset(h + 12, 0, 4);
	crc = htole32(vmig_crc32c(0, h, VMIG_FRAME_HDR));
	memcpy(h + 12, &crc, 4);
}

static void set64(uint8_t *h, size_t off, uint64_t v)
{
	v = htole64(v);
	memcpy(h + off, &v, 8);
}

static void set32(uint8_t *h, size_t off, uint32_t v)
{
	v = htole32(v);
	memcpy(h + off, &v, 4);
}

/* ------------------------------------------------------------------ */
/* Format                                                              */

/* Bit by bit, as the definition says: the reference for the fast ones. */
static uint32_t crc_ref(const uint8_t *p, size_t n)
{
	uint32_t c = 0xffffffffu;
	size_t i;
	int k;

	for (i = 0; i < n; i++) {
		c ^= p[i];
		for (k = 0; k < 8; k++)
			c = c & 1 ? (c >> 1) ^ 0x82F63B78u : c >> 1;
	}
	return ~c;
}

static void test_crc32c(void)
{
	uint8_t buf[1000];
	size_t i, n;

	CU_ASSERT_EQUAL(vmig_crc32c(0, "123456789", 9), 0xE3069283u);
	CU_ASSERT_EQUAL(vmig_crc32c(0, "", 0), 0);
	/* Chaining: the CRC of a followed by b. */
	CU_ASSERT_EQUAL(vmig_crc32c(vmig_crc32c(0, "1234", 4), "56789", 5),
			0xE3069283u);
	for (i = 0; i < sizeof(buf); i++)
		buf[i] = (uint8_t)(i * 37 + 11);
	/* Every length and misalignment against the definition. */
	for (n = 0; n < 80; n++)
		for (i = 0; i < 8; i++)
			CU_ASSERT_EQUAL(vmig_crc32c(0, buf + i, n),
					crc_ref(buf + i, n));
	CU_ASSERT_EQUAL(vmig_crc32c(0, buf, sizeof(buf)),
			crc_ref(buf, sizeof(buf)));
}

static void test_pack(void)
{
	static const uint8_t payload[] = "payload";
	uint8_t h[VMIG_FRAME_HDR];
	struct vmig_frame f;
	char err[256];

	vmig_frame_pack(h, VMIG_FRAME_DEVICE_STATE, 7, 1, 0x1122334455667788ull,
			2, payload);
	/* The layout of docs/protocol.md, little-endian. */
	CU_ASSERT(memcmp(h, "VMIG", 4) == 0);
	CU_ASSERT(h[4] == 6 && h[5] == 0);
	CU_ASSERT(h[6] == VMIG_FRAME_DEVICE_STATE && h[7] == 0);
	CU_ASSERT(h[8] == 1 && h[9] == 0 && h[10] == 0 && h[11] == 0);
	CU_ASSERT(h[24] == 7);
	CU_ASSERT(h[40] == 0x88 && h[47] == 0x11);
	vmig_frame_unpack(h, &f);
	CU_ASSERT_EQUAL(f.version, 6);
	CU_ASSERT_EQUAL(f.type, VMIG_FRAME_DEVICE_STATE);
	CU_ASSERT_EQUAL(f.flags, VMIG_FRAME_DATA_CRC);
	CU_ASSERT_EQUAL(f.data_crc, vmig_crc32c(0, payload, 7));
	CU_ASSERT_EQUAL(f.length, 7);
	CU_ASSERT_EQUAL(f.a, 1);
	CU_ASSERT_EQUAL(f.b, 0x1122334455667788ull);
	CU_ASSERT_EQUAL(f.c, 2);
	CU_ASSERT_EQUAL(f.d, 0);
	CU_ASSERT_EQUAL(f.reserved, 0);
	CU_ASSERT_EQUAL(vmig_frame_check_head(h, 3, &f, err, sizeof(err)), 0);
	CU_ASSERT_EQUAL(vmig_frame_check_body(&f, 3, err, sizeof(err)), 0);
	/* The header CRC is that of the header with the field zeroed. */
	memset(h + 12, 0, 4);
	CU_ASSERT_EQUAL(f.header_crc, vmig_crc32c(0, h, VMIG_FRAME_HDR));

	CU_ASSERT_STRING_EQUAL(vmig_frame_name(VMIG_FRAME_HELLO), "HELLO");
	CU_ASSERT_STRING_EQUAL(vmig_frame_name(VMIG_FRAME_ERROR), "ERROR");
	CU_ASSERT_PTR_NULL(vmig_frame_name(0));
	CU_ASSERT_STRING_EQUAL(vmig_frame_name(VMIG_FRAME_STARTED), "STARTED");
	CU_ASSERT_STRING_EQUAL(vmig_frame_name(VMIG_FRAME_VMM_STATE_END),
			       "VMM_STATE_END");
	CU_ASSERT_STRING_EQUAL(vmig_frame_name(VMIG_FRAME_CHANNEL), "CHANNEL");
	CU_ASSERT_PTR_NULL(vmig_frame_name(17));
}

static void test_text(void)
{
	char out[32];

	vmig_proto_text(out, sizeof(out), "ok \xc3\xa9t\xc3\xa9", 8);
	CU_ASSERT_STRING_EQUAL(out, "ok \xc3\xa9t\xc3\xa9");
	/* Control characters, bad UTF-8, overlong forms: '?'. */
	vmig_proto_text(out, sizeof(out), "a\nb\xff" "c\xc0\xaf", 7);
	CU_ASSERT_STRING_EQUAL(out, "a?b?c??");
	vmig_proto_text(out, 4, "abcdef", 6);
	CU_ASSERT_STRING_EQUAL(out, "abc");
}

/* ------------------------------------------------------------------ */
/* The destination                                                     */

static void test_good_stream(void)
{
	static uint8_t want0[R0_PAGES * PG], want1[R1_PAGES * PG];
	size_t chunks[] = { 0, 1, 7, 63, 4096, 5000 };
	struct stream st;
	struct dest d;
	unsigned int ev;
	size_t i;
	int ret;

	good_stream(&st, want0, want1);
	for (i = 0; i < sizeof(chunks) / sizeof(chunks[0]); i++) {
		dest_init(&d);
		/* Stale contents where the stream sends zero pages. */
		memset(d.r0.mem + 20 * PG, 0xaa, PG);
		ev = 0;
		ret = feed(&d, st.buf, st.len, chunks[i], &ev);
		CU_ASSERT_EQUAL(ret, VMIG_RX_COMMIT);
		CU_ASSERT_EQUAL(ev, (1u << VMIG_RX_MORE) |
					    (1u << VMIG_RX_HELLO) |
					    (1u << VMIG_RX_COMPLETE) |
					    (1u << VMIG_RX_COMMIT));
		CU_ASSERT_EQUAL(d.rx.state, VMIG_RX_DONE);
		CU_ASSERT_EQUAL(d.rx.pages, st.pages);
		CU_ASSERT_EQUAL(d.rx.frame_no, st.frames);
		CU_ASSERT(memcmp(d.r0.mem, want0, sizeof(want0)) == 0);
		CU_ASSERT(memcmp(d.r1.mem, want1, sizeof(want1)) == 0);
		/* Data after COMMIT is an error, named. */
		CU_ASSERT_EQUAL(feed(&d, st.buf, VMIG_FRAME_HDR, 0, NULL),
				-EPROTO);
		CU_ASSERT_STRING_EQUAL(d.rx.err, "frame 12: data after COMMIT");
		dest_fini(&d);
	}
	free(st.buf);
}

/* The source sent ERROR: the event, its code and its text. */
static void test_peer_error(void)
{
	struct stream st = { 0 };
	struct dest d;

	hello(&st, 2, R0_PAGES * PG);
	frame(&st, VMIG_FRAME_ERROR, (uint64_t)-ECANCELED, 0, 0, "gone\n", 5,
	      true);
	dest_init(&d);
	CU_ASSERT_EQUAL(feed(&d, st.buf, st.len, 0, NULL), VMIG_RX_PEER_ERROR);
	CU_ASSERT_EQUAL(d.rx.peer_code, -ECANCELED);
	CU_ASSERT_STRING_EQUAL(d.rx.peer_msg, "gone?");
	CU_ASSERT_EQUAL(d.rx.state, VMIG_RX_FAILED);
	dest_fini(&d);
	free(st.buf);
}

/*
 * Feeds the prefix (valid frames), then one frame whose header the edit
 * function changes (its CRC recomputed unless raw), with payload; the
 * frame must be refused with exactly msg.
 */
typedef void (*edit_fn)(uint8_t *h);

static void expect_reject(const struct stream *prefix, uint32_t type,
			  uint64_t a, uint64_t b, uint64_t c,
			  const void *payload, size_t len, bool crc,
			  edit_fn edit, bool raw, const char *msg)
{
	uint8_t h[VMIG_FRAME_HDR];
	struct dest d;
	int ret;

	dest_init(&d);
	if (prefix->len)
		CU_ASSERT_FATAL(feed(&d, prefix->buf, prefix->len, 0, NULL) >=
				0);
	vmig_frame_pack(h, type, len, a, b, c, crc ? payload : NULL);
	if (edit)
		edit(h);
	if (edit && !raw)
		fix_crc(h);
	ret = feed(&d, h, sizeof(h), 0, NULL);
	if (ret >= 0 && len)
		ret = feed(&d, payload, len, 0, NULL);
	CU_ASSERT_EQUAL(ret, -EPROTO);
	CU_ASSERT_EQUAL(d.rx.state, VMIG_RX_FAILED);
	if (strcmp(d.rx.err, msg))
		fprintf(stderr, "\n  got:  %s\n  want: %s\n", d.rx.err, msg);
	CU_ASSERT_STRING_EQUAL(d.rx.err, msg);
	/* Nothing more is taken. */
	CU_ASSERT_EQUAL(vmig_rx_feed(&d.rx, 1), -EPROTO);
	dest_fini(&d);
}

static void e_magic(uint8_t *h) { h[0] = 'X'; }
/* A version 2 peer: its digest means something else. */
static void e_version(uint8_t *h) { h[4] = 2; }
static void e_crc(uint8_t *h) { h[33] ^= 0x40; }
static void e_flags(uint8_t *h) { h[8] |= 2; }
static void e_reserved(uint8_t *h) { set32(h, 20, 1); }
static void e_datacrc(uint8_t *h) { set32(h, 16, 5); }
static void e_type99(uint8_t *h) { h[6] = 99; }
static void e_d(uint8_t *h) { set64(h, 56, 9); }
static void e_len8(uint8_t *h) { set64(h, 24, 8); }
static void e_crcflag(uint8_t *h) { h[8] |= 1; }
static void e_len_big(uint8_t *h) { set64(h, 24, 2 * 1024 * 1024); }
static void e_nocrc(uint8_t *h) { h[8] = 0; set32(h, 16, 0); }
static void e_badcrc(uint8_t *h) { set32(h, 16, 0x12345678); }

static void test_rejects(void)
{
	static uint8_t pg[4 * PG];
	struct stream none = { 0 }, pre = { 0 }, fin = { 0 };
	uint8_t h[VMIG_FRAME_HDR], regions[VMIG_HELLO_REGION];
	char msg[256];
	uint32_t crc;

	memset(pg, 0x5a, sizeof(pg));
	hello(&pre, 2, R0_PAGES * PG);
	frame(&pre, VMIG_FRAME_ITERATION, 0, 0, 0, NULL, 0, false);
	fin.buf = NULL;
	hello(&fin, 2, R0_PAGES * PG);
	frame(&fin, VMIG_FRAME_ITERATION, 0, 0, 0, NULL, 0, false);
	frame(&fin, VMIG_FRAME_SWITCHOVER, 0, 0, 0, NULL, 0, false);

	/* Header checks, in the order of docs/protocol.md. */
	expect_reject(&none, VMIG_FRAME_HELLO, 0, 0, 0, NULL, 0, false,
		      e_magic, true,
		      "frame 0: bad magic 58 4d 49 47 (not a vmig stream, or "
		      "out of step)");
	expect_reject(&none, VMIG_FRAME_HELLO, 0, 0, 0, NULL, 0, false,
		      e_version, true,
		      "frame 0: version 2, this end speaks version 6");
	vmig_frame_pack(h, VMIG_FRAME_ITERATION, 0, 1, 0, 0, NULL);
	memcpy(&crc, h + 12, 4);
	e_crc(h);
	memset(h + 12, 0, 4);
	snprintf(msg, sizeof(msg), "frame 2: header CRC 0x%08x, computed "
		 "0x%08x", le32toh(crc), vmig_crc32c(0, h, VMIG_FRAME_HDR));
	expect_reject(&pre, VMIG_FRAME_ITERATION, 1, 0, 0, NULL, 0, false,
		      e_crc, true, msg);
	expect_reject(&none, VMIG_FRAME_HELLO, 0, 0, 0, NULL, 0, false,
		      e_flags, false,
		      "frame 0 (HELLO): reserved flags 0x2 set");
	expect_reject(&none, VMIG_FRAME_HELLO, 0, 0, 0, NULL, 0, false,
		      e_reserved, false,
		      "frame 0 (HELLO): reserved field is 0x1, must be 0");
	expect_reject(&none, VMIG_FRAME_HELLO, 0, 0, 0, NULL, 0, false,
		      e_datacrc, false,
		      "frame 0 (HELLO): data_crc 0x00000005 without the "
		      "DATA_CRC flag");
	expect_reject(&none, VMIG_FRAME_HELLO, 0, 0, 0, NULL, 0, false,
		      e_type99, false, "frame 0 (type 99): unknown frame type");

	/* The state. */
	expect_reject(&none, VMIG_FRAME_PAGES, 0, 0, 1, pg, PG, false, NULL,
		      false, "frame 0 (PAGES): not allowed in state \"start\"");
	expect_reject(&pre, VMIG_FRAME_COMMIT, 0, 0, 0, NULL, 0, false, NULL,
		      false,
		      "frame 2 (COMMIT): not allowed in state \"receiving\"");
	expect_reject(&pre, VMIG_FRAME_DEVICE_END, 0, 0, 0, NULL, 0, false,
		      NULL, false,
		      "frame 2 (DEVICE_END): not allowed in state "
		      "\"receiving\"");
	expect_reject(&pre, VMIG_FRAME_VMM_STATE_END, 0, 0, 0, NULL, 0, false,
		      NULL, false,
		      "frame 2 (VMM_STATE_END): not allowed in state "
		      "\"receiving\"");
	expect_reject(&pre, VMIG_FRAME_VMM_STATE, 0, 0, VMIG_DS_PRECOPY, pg,
		      8, true, NULL, false,
		      "frame 2 (VMM_STATE): no state section 0 (the layout "
		      "has 0)");
	expect_reject(&pre, VMIG_FRAME_VMM_STATE, 0, 0, 3, pg, 8, true, NULL,
		      false,
		      "frame 2 (VMM_STATE): phase 3, expected 1 (pre-copy) or "
		      "2 (stop-copy)");
	expect_reject(&pre, VMIG_FRAME_VMM_STATE, 0, 0, VMIG_DS_PRECOPY, pg,
		      8, false, NULL, false,
		      "frame 2 (VMM_STATE): DATA_CRC missing");
	expect_reject(&fin, VMIG_FRAME_VMM_STATE_END, 5, 0, 0, NULL, 0, false,
		      NULL, false,
		      "frame 3 (VMM_STATE_END): no state section 5 (the "
		      "layout has 0)");
	expect_reject(&fin, VMIG_FRAME_ITERATION, 1, 0, 0, NULL, 0, false,
		      NULL, false,
		      "frame 3 (ITERATION): not allowed in state \"final\"");
	expect_reject(&pre, VMIG_FRAME_ACK, 0, 0, 0, NULL, 0, false, NULL,
		      false, "frame 2 (ACK): not allowed in state "
			     "\"receiving\"");

	/* Length, and the fields each type fixes. */
	expect_reject(&pre, VMIG_FRAME_ITERATION, 1, 0, 0, NULL, 0, false,
		      e_len8, false, "frame 2 (ITERATION): length 8, "
				     "expected 0");
	expect_reject(&pre, VMIG_FRAME_ITERATION, 1, 1, 0, NULL, 0, false,
		      NULL, false,
		      "frame 2 (ITERATION): field b is 0x1, must be 0");
	expect_reject(&pre, VMIG_FRAME_ZERO, 0, 0, 1, NULL, 0, false, e_d,
		      false, "frame 2 (ZERO): field d is 0x9, must be 0");
	expect_reject(&pre, VMIG_FRAME_SWITCHOVER, 0, 0, 0, NULL, 0, false,
		      e_crcflag, false,
		      "frame 2 (SWITCHOVER): DATA_CRC on a frame without "
		      "payload");
	expect_reject(&pre, VMIG_FRAME_PAGES, 0, 0, 1, pg, PG, false,
		      e_len_big, false,
		      "frame 2 (PAGES): length 2097152 above the limit of "
		      "1048576");
	expect_reject(&pre, VMIG_FRAME_PAGES, 0, 0, 2, pg, PG, false, NULL,
		      false,
		      "frame 2 (PAGES): length 4096, expected 2 pages of 4096 "
		      "bytes");
	expect_reject(&pre, VMIG_FRAME_PAGES, 0, 0, 0, NULL, 0, false, NULL,
		      false, "frame 2 (PAGES): page count 0");
	expect_reject(&pre, VMIG_FRAME_ZERO, 0, 0, 0, NULL, 0, false, NULL,
		      false,
		      "frame 2 (ZERO): page count 0, expected 1 to 4294967296");
	expect_reject(&pre, VMIG_FRAME_DEVICE_STATE, 0, 0, 3, pg, 16, true,
		      NULL, false,
		      "frame 2 (DEVICE_STATE): phase 3, expected 1 (pre-copy) "
		      "or 2 (stop-copy)");
	expect_reject(&pre, VMIG_FRAME_DEVICE_STATE, 0, 0, 1, pg, 16, false,
		      NULL, false, "frame 2 (DEVICE_STATE): DATA_CRC missing");
	expect_reject(&pre, VMIG_FRAME_ERROR, 5, 0, 0, NULL, 0, false, NULL,
		      false,
		      "frame 2 (ERROR): error code 5, expected a negative "
		      "errno");
	expect_reject(&pre, VMIG_FRAME_ERROR, (uint64_t)-EIO, 0, 0, pg, 5000,
		      false, NULL, false,
		      "frame 2 (ERROR): length 5000 above the limit of 4096");

	/* The type's own fields, against this destination. */
	expect_reject(&pre, VMIG_FRAME_PAGES, 2, 0, 1, pg, PG, false, NULL,
		      false, "frame 2 (PAGES): no region 2 (the layout has 2)");
	expect_reject(&pre, VMIG_FRAME_PAGES, 1, 15, 2, pg, 2 * PG, false,
		      NULL, false,
		      "frame 2 (PAGES): page range 15+2 outside region 1 (16 "
		      "pages)");
	expect_reject(&pre, VMIG_FRAME_ZERO, 0, 1ull << 60, 1, NULL, 0, false,
		      NULL, false,
		      "frame 2 (ZERO): page range 1152921504606846976+1 outside "
		      "region 0 (64 pages)");
	expect_reject(&pre, VMIG_FRAME_ZERO, 0, 10, UINT32_MAX, NULL, 0,
		      false, NULL, false,
		      "frame 2 (ZERO): page range 10+4294967295 outside region "
		      "0 (64 pages)");
	expect_reject(&pre, VMIG_FRAME_DEVICE_STATE, 0, 0, 1, pg, 16, true,
		      NULL, false,
		      "frame 2 (DEVICE_STATE): no device 0 (the layout has 0)");
	expect_reject(&pre, VMIG_FRAME_ITERATION, 2, 0, 0, NULL, 0, false,
		      NULL, false,
		      "frame 2 (ITERATION): iteration 2, expected 1");
	expect_reject(&fin, VMIG_FRAME_PAGES, 0, 0, 1, pg, PG, false, NULL,
		      false, "frame 3 (PAGES): DATA_CRC missing after "
			     "SWITCHOVER");
	snprintf(msg, sizeof(msg), "frame 3 (PAGES): data CRC 0x12345678, "
		 "computed 0x%08x", vmig_crc32c(0, pg, PG));
	expect_reject(&fin, VMIG_FRAME_PAGES, 0, 0, 1, pg, PG, true, e_badcrc,
		      false, msg);
	expect_reject(&fin, VMIG_FRAME_COMPLETE, 5, 3, 0, NULL, 0, false, NULL,
		      false,
		      "frame 3 (COMPLETE): the source sent 5 pages, 0 arrived");
	expect_reject(&fin, VMIG_FRAME_COMPLETE, 0, 7, 0, NULL, 0, false, NULL,
		      false,
		      "frame 3 (COMPLETE): the source sent 7 frames before it, "
		      "3 arrived");

	/* HELLO: its payload and the layout. */
	memset(regions, 0, sizeof(regions));
	expect_reject(&none, VMIG_FRAME_HELLO, 0, 1, 0, regions,
		      VMIG_HELLO_REGION, false, e_nocrc, false,
		      "frame 0 (HELLO): DATA_CRC missing");
	expect_reject(&none, VMIG_FRAME_HELLO, 0, 2, 0, regions,
		      VMIG_HELLO_REGION, true, NULL, false,
		      "frame 0 (HELLO): length 48, expected 96 for 2 region(s), "
		      "0 device(s) and 0 state section(s)");
	expect_reject(&none, VMIG_FRAME_HELLO, 6, 1, 0, regions,
		      VMIG_HELLO_REGION, true, NULL, false,
		      "frame 0 (HELLO): unknown stream flags 0x4");
	expect_reject(&none, VMIG_FRAME_HELLO, 3, 1, 0, regions,
		      VMIG_HELLO_REGION, true, NULL, false,
		      "frame 0 (HELLO): stream flags FULL_DIGEST and "
		      "NO_DIGEST together");
	expect_reject(&none, VMIG_FRAME_HELLO, 0, 1, 0, regions,
		      VMIG_HELLO_REGION, true, NULL, false,
		      "frame 0 (HELLO): the source has 1 region(s), this "
		      "destination 2");
	{
		struct stream h2 = { 0 };
		struct dest d;

		hello(&h2, 2, 32 * PG);
		dest_init(&d);
		CU_ASSERT_EQUAL(feed(&d, h2.buf, h2.len, 0, NULL), -EPROTO);
		CU_ASSERT_STRING_EQUAL(d.rx.err,
				       "frame 0 (HELLO): region 0 (\"low\", gpa "
				       "0x100000, size 0x20000) has no match "
				       "here");
		dest_fini(&d);
		h2.len = 0;
		hello(&h2, 2, 100);
		dest_init(&d);
		CU_ASSERT_EQUAL(feed(&d, h2.buf, h2.len, 0, NULL), -EPROTO);
		CU_ASSERT_STRING_EQUAL(d.rx.err,
				       "frame 0 (HELLO): region 0: size 0x64 "
				       "is not a positive multiple of 4096");
		dest_fini(&d);
		free(h2.buf);
	}
	{
		uint8_t lay[2 * VMIG_HELLO_REGION + VMIG_HELLO_DEVICE];
		struct stream h3 = { 0 };
		struct dest d;

		hello(&h3, 2, R0_PAGES * PG);
		/* The same regions, and a device this side does not have. */
		memcpy(lay, h3.buf + VMIG_FRAME_HDR, 2 * VMIG_HELLO_REGION);
		memset(lay + 2 * VMIG_HELLO_REGION, 0, VMIG_HELLO_DEVICE);
		strcpy((char *)lay + 2 * VMIG_HELLO_REGION, "nic\x01");
		h3.len = 0;
		frame(&h3, VMIG_FRAME_HELLO, 0, 2, 1, lay, sizeof(lay), true);
		dest_init(&d);
		CU_ASSERT_EQUAL(feed(&d, h3.buf, h3.len, 0, NULL), -EPROTO);
		CU_ASSERT_STRING_EQUAL(d.rx.err,
				       "frame 0 (HELLO): device 0 (\"nic?\") is "
				       "not here");
		dest_fini(&d);
		free(h3.buf);
	}
	free(pre.buf);
	free(fin.buf);
}

/* ------------------------------------------------------------------ */
/* Fuzzing                                                             */

static uint64_t rnd_state;

static uint64_t rnd(void)
{
	/* xorshift64*: fixed seed, the same streams on every run. */
	rnd_state ^= rnd_state >> 12;
	rnd_state ^= rnd_state << 25;
	rnd_state ^= rnd_state >> 27;
	return rnd_state * 0x2545F4914F6CDD1Dull;
}

/* The offsets where frame headers start in a stream. */
static size_t frame_starts(const struct stream *st, size_t *out, size_t max)
{
	size_t off = 0, n = 0;

	while (off + VMIG_FRAME_HDR <= st->len && n < max) {
		uint64_t len;

		memcpy(&len, st->buf + off + 24, 8);
		out[n++] = off;
		off += VMIG_FRAME_HDR + le64toh(len);
	}
	return n;
}

static void test_fuzz(void)
{
	static uint8_t want0[R0_PAGES * PG], want1[R1_PAGES * PG];
	struct stream st;
	size_t starts[64], nstarts, i, j;
	unsigned int kinds[4] = { 0 };
	uint8_t *buf;
	int iter;

	rnd_state = 0x5eed5eed5eed5eedull;
	good_stream(&st, want0, want1);
	nstarts = frame_starts(&st, starts, 64);
	CU_ASSERT_FATAL(nstarts == st.frames);
	buf = malloc(st.len + 64);
	CU_ASSERT_FATAL(buf != NULL);
	for (iter = 0; iter < 4000; iter++) {
		size_t len = st.len, chunk = rnd() % 3 ? 0 : 1 + rnd() % 9000;
		unsigned int kind = (unsigned int)(rnd() % 4);
		struct dest d;
		int ret;

		memcpy(buf, st.buf, st.len);
		switch (kind) {
		case 0: /* a few random bytes anywhere */
			for (j = 0, i = 1 + rnd() % 4; j < i; j++)
				buf[rnd() % len] ^= (uint8_t)(1 + rnd() % 255);
			break;
		case 1: /* a header byte, its CRC made right again */
			j = starts[rnd() % nstarts];
			i = 4 + rnd() % 60;
			if (i >= 12 && i < 16)
				i += 4;
			buf[j + i] ^= (uint8_t)(1 + rnd() % 255);
			fix_crc(buf + j);
			break;
		case 2: /* cut short */
			len = rnd() % st.len;
			break;
		case 3: /* a field set to an extreme, CRC made right */
			j = starts[rnd() % nstarts];
			set64(buf + j, 24 + 8 * (rnd() % 5),
			      rnd() % 2 ? UINT64_MAX - rnd() % 4096
					: rnd() % 512);
			fix_crc(buf + j);
			break;
		}
		dest_init(&d);
		ret = feed(&d, buf, len, chunk, NULL);
		if (ret < 0) {
			/* A clear error, naming the frame. */
			CU_ASSERT(ret == -EPROTO);
			CU_ASSERT(strncmp(d.rx.err, "frame ", 6) == 0);
			CU_ASSERT(d.rx.state == VMIG_RX_FAILED);
			CU_ASSERT(kind != 2); /* a cut stream is not wrong */
			kinds[kind]++;
		} else if (len < st.len) {
			/* Cut short: the receiver waits for the rest. */
			CU_ASSERT(d.rx.state != VMIG_RX_DONE);
			kinds[kind]++;
		} else {
			/*
			 * Accepted: only a change to pages sent before
			 * SWITCHOVER goes unnoticed here (they carry no CRC:
			 * the digest in ACK catches it), or a change the
			 * stream's own checks make harmless.
			 */
			CU_ASSERT(ret == VMIG_RX_COMMIT ||
				  ret == VMIG_RX_MORE ||
				  ret == VMIG_RX_PEER_ERROR);
		}
		dest_fini(&d);
	}
	/* Each kind of damage was met, and handled, many times. */
	for (i = 0; i < 4; i++)
		CU_ASSERT(kinds[i] > 100);
	free(buf);
	free(st.buf);
}

/* The digest's test vectors of docs/protocol.md. */
static void test_digest_vectors(void)
{
	struct vmig_session_params p = { .size = sizeof(p),
					 .role = VMIG_ROLE_DESTINATION };
	struct vmig_region r = { .size = sizeof(r), .fd = -1,
				 .gpa = 0x100000, .length = PG };
	struct guarded g;
	vmig_session *s;
	uint64_t d;
	size_t i;

	guarded_map(&g, 1);
	CU_ASSERT_FATAL(vmig_session_new(&p, &s) == 0);
	r.hva = g.mem;
	CU_ASSERT_FATAL(vmig_region_add(s, &r, NULL) == 0);
	CU_ASSERT_EQUAL(vmig_memory_digest(s, &d), 0);
	CU_ASSERT_EQUAL(d, 0xb290e8bf7f8ec301ull);
	for (i = 0; i < PG; i++)
		g.mem[i] = (uint8_t)i;
	CU_ASSERT_EQUAL(vmig_memory_digest(s, &d), 0);
	CU_ASSERT_EQUAL(d, 0x69df5c60d9e94e44ull);
	/* The layout is part of it: the same bytes elsewhere differ. */
	vmig_session_free(s);
	CU_ASSERT_FATAL(vmig_session_new(&p, &s) == 0);
	r.gpa = 0x200000;
	CU_ASSERT_FATAL(vmig_region_add(s, &r, NULL) == 0);
	CU_ASSERT_EQUAL(vmig_memory_digest(s, &d), 0);
	CU_ASSERT_NOT_EQUAL(d, 0x69df5c60d9e94e44ull);
	vmig_session_free(s);
	guarded_unmap(&g);
}

/*
 * Every implementation of the page hash this processor runs (the portable
 * one, and on x86-64 SSE2 and AVX2) gives the portable one's term, for
 * pages of every kind, at any alignment; and a change anywhere in a page,
 * or a swap of two of its words, changes the term.
 */
static void test_digest_impls(void)
{
	static uint8_t buf[3 * PG];
	uint64_t x = 0x243f6a8885a308d3ull, ref, t;
	unsigned int impl, k, found = 0;
	size_t i, at;

	CU_ASSERT_STRING_EQUAL(vmig_digest_impl(0), "portable");
	for (k = 0; k < 64; k++) {
		for (i = 0; i < sizeof(buf); i++) {
			x ^= x << 13;
			x ^= x >> 7;
			x ^= x << 17;
			/* Some pages mostly zero, some all ones, some random. */
			buf[i] = k % 4 == 0 ? (uint8_t)(i % 997 ? 0 : x)
				 : k % 4 == 1 ? 0xff
					      : (uint8_t)x;
		}
		at = (size_t)(x % PG);
		ref = vmig_digest_page_impl(0, 0x1000 * k, buf + at);
		CU_ASSERT_EQUAL(vmig_digest_page(0x1000 * k, buf + at), ref);
		for (impl = 1; vmig_digest_impl(impl); impl++)
			CU_ASSERT_EQUAL(vmig_digest_page_impl(impl, 0x1000 * k,
							      buf + at),
					ref);
		/* One bit, anywhere. */
		i = at + (size_t)((x >> 20) % PG);
		buf[i] ^= (uint8_t)(1u << (x >> 40) % 8);
		for (impl = 0; vmig_digest_impl(impl); impl++) {
			t = vmig_digest_page_impl(impl, 0x1000 * k, buf + at);
			CU_ASSERT_NOT_EQUAL(t, ref);
		}
		/* Two different words swapped (a copy out of order). */
		{
			uint64_t w1, w2;
			size_t a = at + 8 * (size_t)((x >> 8) % 512),
			       b = at + 8 * (size_t)((x >> 30) % 512);

			memcpy(&w1, buf + a, 8);
			memcpy(&w2, buf + b, 8);
			if (w1 == w2)
				continue;
			ref = vmig_digest_page_impl(0, 0x1000 * k, buf + at);
			memcpy(buf + a, &w2, 8);
			memcpy(buf + b, &w1, 8);
			CU_ASSERT_NOT_EQUAL(vmig_digest_page_impl(
						    0, 0x1000 * k, buf + at),
					    ref);
		}
	}
	for (impl = 0; vmig_digest_impl(impl); impl++)
		found++;
	CU_ASSERT(found >= 1);
	CU_ASSERT_PTR_NULL(vmig_digest_impl(99));
	/* A zero page's term, computed without reading one, is the same. */
	memset(buf, 0, PG);
	for (impl = 0; vmig_digest_impl(impl); impl++)
		CU_ASSERT_EQUAL(vmig_digest_page_impl(impl, 0x7000, buf),
				vmig_digest_zero_page(0x7000));
}

/*
 * The typed encoders put each field where docs/protocol.md says (the same
 * header vmig_frame_pack() makes from the table's a, b, c), and the
 * decoder reads them back by meaning from a checked header.
 */
static void test_typed(void)
{
	static const uint8_t page[2 * PG] = { 1, 2, 3 };
	uint8_t h[VMIG_FRAME_HDR], want[VMIG_FRAME_HDR];
	uint8_t layout[2 * VMIG_HELLO_REGION + VMIG_HELLO_DEVICE +
		       VMIG_HELLO_SECTION] = { 0 };
	const struct vmig_hello_counts counts = { 2, 1, 1 };
	struct vmig_hello_section hs;
	struct vmig_hello_region hr;
	struct vmig_frame f;
	struct vmig_msg m;
	const uint8_t *name;
	char err[256];
	size_t len;

	vmig_enc_pages(h, 1, 7, 2, page, true);
	vmig_frame_pack(want, VMIG_FRAME_PAGES, 2 * PG, 1, 7, 2, page);
	CU_ASSERT_EQUAL(memcmp(h, want, VMIG_FRAME_HDR), 0);
	CU_ASSERT_EQUAL(vmig_frame_type_of(h), VMIG_FRAME_PAGES);
	CU_ASSERT_EQUAL(vmig_frame_check_head(h, 0, &f, err, sizeof(err)), 0);
	CU_ASSERT_EQUAL(vmig_frame_check_body(&f, 0, err, sizeof(err)), 0);
	vmig_frame_decode(&f, &m);
	CU_ASSERT(m.crc && m.length == 2 * PG && m.pages.region == 1 &&
		  m.pages.first == 7 && m.pages.count == 2);
	vmig_enc_pages(h, 1, 7, 2, page, false);
	vmig_frame_pack(want, VMIG_FRAME_PAGES, 2 * PG, 1, 7, 2, NULL);
	CU_ASSERT_EQUAL(memcmp(h, want, VMIG_FRAME_HDR), 0);

	vmig_enc_device_state(h, 3, 4096, VMIG_DS_STOPCOPY, page, 10);
	vmig_frame_unpack(h, &f);
	vmig_frame_decode(&f, &m);
	CU_ASSERT(m.state.device == 3 && m.state.offset == 4096 &&
		  m.state.phase == VMIG_DS_STOPCOPY && m.length == 10);
	CU_ASSERT_EQUAL(m.data_crc, vmig_crc32c(0, page, 10));
	vmig_enc_device_end(h, 3, 4106);
	vmig_frame_unpack(h, &f);
	vmig_frame_decode(&f, &m);
	CU_ASSERT(m.end.device == 3 && m.end.total == 4106);
	vmig_enc_complete(h, 100, 42);
	vmig_frame_unpack(h, &f);
	vmig_frame_decode(&f, &m);
	CU_ASSERT(m.complete.pages == 100 && m.complete.frames == 42);
	vmig_enc_ack(h, 0x1234567890abcdefull, 99, 0x300000000abcdefull);
	vmig_frame_unpack(h, &f);
	vmig_frame_decode(&f, &m);
	CU_ASSERT(m.ack.digest == 0x1234567890abcdefull && m.ack.pages == 99 &&
		  m.ack.state_check == 0x300000000abcdefull);
	vmig_enc_vmm_state(h, 2, 4096, VMIG_DS_STOPCOPY, "regs", 4);
	CU_ASSERT_EQUAL(vmig_frame_check_head(h, 7, &f, err, sizeof(err)), 0);
	CU_ASSERT_EQUAL(vmig_frame_check_body(&f, 7, err, sizeof(err)), 0);
	vmig_frame_decode(&f, &m);
	CU_ASSERT(m.vmm.section == 2 && m.vmm.offset == 4096 &&
		  m.vmm.phase == VMIG_DS_STOPCOPY && m.crc && m.length == 4);
	vmig_enc_vmm_state_end(h, 2, 4100);
	CU_ASSERT_EQUAL(vmig_frame_check_head(h, 8, &f, err, sizeof(err)), 0);
	CU_ASSERT_EQUAL(vmig_frame_check_body(&f, 8, err, sizeof(err)), 0);
	vmig_frame_decode(&f, &m);
	CU_ASSERT(m.vmm_end.section == 2 && m.vmm_end.total == 4100);
	/* The state check: CRC32C of the bytes, and the records counted. */
	CU_ASSERT_EQUAL(vmig_state_check(vmig_state_check(0, "1234", 4),
					 "56789", 5),
			(2ull << 32) | 0xE3069283u);
	vmig_enc_error(h, -ENOSPC, "full", 4);
	CU_ASSERT_EQUAL(vmig_frame_check_head(h, 5, &f, err, sizeof(err)), 0);
	CU_ASSERT_EQUAL(vmig_frame_check_body(&f, 5, err, sizeof(err)), 0);
	vmig_frame_decode(&f, &m);
	CU_ASSERT(m.error.code == -ENOSPC && m.crc && m.length == 4);
	vmig_enc_iteration(h, 9);
	vmig_frame_unpack(h, &f);
	vmig_frame_decode(&f, &m);
	CU_ASSERT_EQUAL(m.iteration.number, 9);

	/* HELLO's layout: two regions, one device, read back. */
	vmig_hello_put_region(layout, 0, 0x100000, 64 * PG, "ram");
	vmig_hello_put_region(layout, 1, 0x40000000, 16 * PG,
			      "a name longer than thirty-two bytes, cut");
	vmig_hello_put_device(layout, 2, 0, "0000:01:00.0");
	vmig_hello_put_section(layout, &counts, 0, "cpu0", 3);
	CU_ASSERT_EQUAL(vmig_hello_len(&counts), sizeof(layout));
	vmig_hello_get_section(layout, &counts, 0, &hs);
	CU_ASSERT(hs.name_len == 4 && !memcmp(hs.name, "cpu0", 4) &&
		  hs.version == 3 && !hs.reserved);
	vmig_hello_get_region(layout, 1, &hr);
	CU_ASSERT(hr.gpa == 0x40000000 && hr.size == 16 * PG);
	CU_ASSERT_EQUAL(hr.name_len, VMIG_HELLO_NAME);
	vmig_hello_get_region(layout, 0, &hr);
	CU_ASSERT(hr.name_len == 3 && !memcmp(hr.name, "ram", 3));
	vmig_hello_get_device(layout, 2, 0, &name, &len);
	CU_ASSERT(len == 12 && !memcmp(name, "0000:01:00.0", 12));
	vmig_enc_hello(h, VMIG_HELLO_FULL_DIGEST, 0, &counts, layout,
		       sizeof(layout));
	CU_ASSERT_EQUAL(vmig_frame_check_head(h, 0, &f, err, sizeof(err)), 0);
	CU_ASSERT_EQUAL(vmig_frame_check_body(&f, 0, err, sizeof(err)), 0);
	vmig_frame_decode(&f, &m);
	CU_ASSERT(m.hello.nr_regions == 2 && m.hello.nr_devices == 1 &&
		  m.hello.nr_sections == 1 &&
		  m.hello.flags == VMIG_HELLO_FULL_DIGEST && m.crc);
}

/*
 * Fresh memory (VMIG_REGION_FRESH): a page that arrives as zero before
 * anything else is neither read nor written (its pages are PROT_NONE
 * here: a read would fault), a zero page over earlier data is written,
 * and the digest kept as pages arrived is the memory's.
 */
static void test_fresh_zero(void)
{
	static uint8_t pages[8 * PG];
	struct stream st;
	struct dest d;
	uint64_t kept, full, hashed;
	unsigned int ev = 0;
	size_t i;

	dest_init_flags(&d, VMIG_REGION_FRESH);
	memset(&st, 0, sizeof(st));
	hello(&st, 2, R0_PAGES * PG);
	frame(&st, VMIG_FRAME_ITERATION, 0, 0, 0, NULL, 0, false);
	page_fill(pages, 8 * PG, 5);
	frame(&st, VMIG_FRAME_PAGES, 0, 3, 8, pages, 8 * PG, false);
	frame(&st, VMIG_FRAME_ZERO, 0, 0, 3, NULL, 0, false);
	frame(&st, VMIG_FRAME_ZERO, 0, 11, R0_PAGES - 11, NULL, 0, false);
	frame(&st, VMIG_FRAME_ZERO, 1, 0, R1_PAGES, NULL, 0, false);
	frame(&st, VMIG_FRAME_ITERATION, 1, 0, 0, NULL, 0, false);
	/* Page 5 held data: its zero must be written. */
	frame(&st, VMIG_FRAME_ZERO, 0, 5, 1, NULL, 0, false);
	frame(&st, VMIG_FRAME_SWITCHOVER, 0, 0, 0, NULL, 0, false);
	frame(&st, VMIG_FRAME_COMPLETE, R0_PAGES + R1_PAGES + 1, st.frames,
	      0, NULL, 0, false);
	/* Pages 20 on of region 0 and all of region 1: no access. */
	CU_ASSERT_FATAL(mprotect(d.r0.mem + 20 * PG, (R0_PAGES - 20) * PG,
				 PROT_NONE) == 0);
	CU_ASSERT_FATAL(mprotect(d.r1.mem, R1_PAGES * PG, PROT_NONE) == 0);
	CU_ASSERT_EQUAL(feed(&d, st.buf, st.len, 0, &ev), VMIG_RX_COMPLETE);
	kept = vmig_rx_digest(&d.rx, &hashed);
	CU_ASSERT_EQUAL(hashed, 0);
	CU_ASSERT_FATAL(mprotect(d.r0.mem + 20 * PG, (R0_PAGES - 20) * PG,
				 PROT_READ | PROT_WRITE) == 0);
	CU_ASSERT_FATAL(mprotect(d.r1.mem, R1_PAGES * PG,
				 PROT_READ | PROT_WRITE) == 0);
	for (i = 0; i < PG; i++)
		CU_ASSERT_FATAL(d.r0.mem[5 * PG + i] == 0);
	CU_ASSERT(memcmp(d.r0.mem + 3 * PG, pages, 2 * PG) == 0);
	CU_ASSERT(memcmp(d.r0.mem + 6 * PG, pages + 3 * PG, 5 * PG) == 0);
	CU_ASSERT_EQUAL(vmig_memory_digest(d.s, &full), 0);
	CU_ASSERT_EQUAL(kept, full);
	free(st.buf);
	dest_fini(&d);
}

static CU_TestInfo format_tests[] = {
	{ "digest test vectors", test_digest_vectors },
		{ "digest: every implementation, the same terms",
		  test_digest_impls },
	{ "fresh memory: zero pages not touched", test_fresh_zero },
	{ "CRC32C", test_crc32c },
	{ "pack and unpack", test_pack },
	{ "typed encoders and decoder", test_typed },
	{ "error text", test_text },
	CU_TEST_INFO_NULL,
};

static CU_TestInfo dest_tests[] = {
	{ "a whole stream, any chunking", test_good_stream },
	{ "the source's ERROR", test_peer_error },
	{ "every check, its message", test_rejects },
	{ "fuzz: corrupted and truncated streams", test_fuzz },
	CU_TEST_INFO_NULL,
};

static CU_SuiteInfo suites[] = {
	VMIG_SUITE("format", format_tests),
	VMIG_SUITE("destination", dest_tests),
	CU_SUITE_INFO_NULL,
};

VMIG_TEST_MAIN(suites)
