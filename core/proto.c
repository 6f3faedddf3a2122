/*
 * proto.c: the wire format of the migration stream (docs/protocol.md).
 *
 * This file owns the 64-byte frame header (little-endian, whatever the
 * host), CRC32C, the names of the frame types, and the checks a receiver
 * makes on a header before anything else: those that need no knowledge of
 * the receiver's memory or of where the stream is. Each check failing
 * gives a message naming the frame by its number and type, so that both
 * ends can say precisely what was wrong.
 */
#include <endian.h>
#include <errno.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>

#include "proto.h"

/* ------------------------------------------------------------------ */
/* CRC32C                                                              */

#define CRC32C_POLY 0x82F63B78u /* 0x1EDC6F41 reflected */

static uint32_t crc_table[8][256];
static pthread_once_t crc_once = PTHREAD_ONCE_INIT;
static bool crc_hw;

static void crc_init(void)
{
	uint32_t i, j, c;

	for (i = 0; i < 256; i++) {
		c = i;
		for (j = 0; j < 8; j++)
			c = c & 1 ? (c >> 1) ^ CRC32C_POLY : c >> 1;
		crc_table[0][i] = c;
	}
	for (i = 0; i < 256; i++) {
		c = crc_table[0][i];
		for (j = 1; j < 8; j++) {
			c = crc_table[0][c & 0xff] ^ (c >> 8);
			crc_table[j][i] = c;
		}
	}
#if defined(__x86_64__)
	crc_hw = __builtin_cpu_supports("sse4.2");
#endif
}

/* Slicing by 8: portable, about 1 byte per cycle. */
static uint32_t crc_sw(uint32_t c, const uint8_t *p, size_t len)
{
	while (len && ((uintptr_t)p & 7)) {
		c = crc_table[0][(c ^ *p++) & 0xff] ^ (c >> 8);
		len--;
	}
	while (len >= 8) {
		uint64_t w;

		memcpy(&w, p, 8);
		w = le64toh(w) ^ c;
		c = crc_table[7][w & 0xff] ^ crc_table[6][(w >> 8) & 0xff] ^
		    crc_table[5][(w >> 16) & 0xff] ^
		    crc_table[4][(w >> 24) & 0xff] ^
		    crc_table[3][(w >> 32) & 0xff] ^
		    crc_table[2][(w >> 40) & 0xff] ^
		    crc_table[1][(w >> 48) & 0xff] ^ crc_table[0][w >> 56];
		p += 8;
		len -= 8;
	}
	while (len--)
		c = crc_table[0][(c ^ *p++) & 0xff] ^ (c >> 8);
	return c;
}

#if defined(__x86_64__)
/* The SSE4.2 instruction: several bytes per cycle. */
__attribute__((target("sse4.2"))) static uint32_t
crc_hw_run(uint32_t c, const uint8_t *p, size_t len)
{
	uint64_t c64;

	while (len && ((uintptr_t)p & 7)) {
		c = __builtin_ia32_crc32qi(c, *p++);
		len--;
	}
	c64 = c;
	while (len >= 8) {
		uint64_t w;

		memcpy(&w, p, 8);
		c64 = __builtin_ia32_crc32di(c64, w);
		p += 8;
		len -= 8;
	}
	c = (uint32_t)c64;
	while (len--)
		c = __builtin_ia32_crc32qi(c, *p++);
	return c;
}
#endif

uint32_t vmig_crc32c(uint32_t crc, const void *buf, size_t len)
{
	uint32_t c = ~crc;

	pthread_once(&crc_once, crc_init);
#if defined(__x86_64__)
	if (crc_hw)
		return ~crc_hw_run(c, buf, len);
#endif
	return ~crc_sw(c, buf, len);
}

/* ------------------------------------------------------------------ */
/* Headers                                                             */

static const char *const frame_names[VMIG_FRAME_NR] = {
	[VMIG_FRAME_HELLO] = "HELLO",
	[VMIG_FRAME_WELCOME] = "WELCOME",
	[VMIG_FRAME_PAGES] = "PAGES",
	[VMIG_FRAME_ZERO] = "ZERO",
	[VMIG_FRAME_DEVICE_STATE] = "DEVICE_STATE",
	[VMIG_FRAME_DEVICE_END] = "DEVICE_END",
	[VMIG_FRAME_ITERATION] = "ITERATION",
	[VMIG_FRAME_SWITCHOVER] = "SWITCHOVER",
	[VMIG_FRAME_COMPLETE] = "COMPLETE",
	[VMIG_FRAME_ACK] = "ACK",
	[VMIG_FRAME_COMMIT] = "COMMIT",
	[VMIG_FRAME_ERROR] = "ERROR",
	[VMIG_FRAME_STARTED] = "STARTED",
	[VMIG_FRAME_VMM_STATE] = "VMM_STATE",
	[VMIG_FRAME_VMM_STATE_END] = "VMM_STATE_END",
	[VMIG_FRAME_CHANNEL] = "CHANNEL",
};

const char *vmig_frame_name(uint32_t type)
{
	return type < VMIG_FRAME_NR ? frame_names[type] : NULL;
}

static const uint8_t magic[4] = { 0x56, 0x4D, 0x49, 0x47 }; /* "VMIG" */

static void put16(uint8_t *p, uint16_t v)
{
	v = htole16(v);
	memcpy(p, &v, 2);
}

static void put32(uint8_t *p, uint32_t v)
{
	v = htole32(v);
	memcpy(p, &v, 4);
}

static void put64(uint8_t *p, uint64_t v)
{
	v = htole64(v);
	memcpy(p, &v, 8);
}

static uint16_t get16(const uint8_t *p)
{
	uint16_t v;

	memcpy(&v, p, 2);
	return le16toh(v);
}

static uint32_t get32(const uint8_t *p)
{
	uint32_t v;

	memcpy(&v, p, 4);
	return le32toh(v);
}

static uint64_t get64(const uint8_t *p)
{
	uint64_t v;

	memcpy(&v, p, 8);
	return le64toh(v);
}

static void pack4(uint8_t *out, uint32_t type, uint32_t flags,
		  uint32_t data_crc, uint64_t length, uint64_t a, uint64_t b,
		  uint64_t c, uint64_t d)
{
	memcpy(out, magic, 4);
	put16(out + 4, VMIG_PROTO_VERSION);
	put16(out + 6, (uint16_t)type);
	put32(out + 8, flags);
	put32(out + 12, 0);
	put32(out + 16, data_crc);
	put32(out + 20, 0);
	put64(out + 24, length);
	put64(out + 32, a);
	put64(out + 40, b);
	put64(out + 48, c);
	put64(out + 56, d);
	put32(out + 12, vmig_crc32c(0, out, VMIG_FRAME_HDR));
}

static void pack(uint8_t *out, uint32_t type, uint32_t flags,
		 uint32_t data_crc, uint64_t length, uint64_t a, uint64_t b,
		 uint64_t c)
{
	pack4(out, type, flags, data_crc, length, a, b, c, 0);
}

void vmig_frame_pack(uint8_t out[VMIG_FRAME_HDR], uint32_t type,
		     uint64_t length, uint64_t a, uint64_t b, uint64_t c,
		     const void *data)
{
	if (data)
		pack(out, type, VMIG_FRAME_DATA_CRC,
		     vmig_crc32c(0, data, (size_t)length), length, a, b, c);
	else
		pack(out, type, 0, 0, length, a, b, c);
}

void vmig_frame_pack_crc(uint8_t out[VMIG_FRAME_HDR], uint32_t type,
			 uint64_t length, uint64_t a, uint64_t b, uint64_t c,
			 uint32_t data_crc)
{
	pack(out, type, VMIG_FRAME_DATA_CRC, data_crc, length, a, b, c);
}

void vmig_frame_unpack(const uint8_t in[VMIG_FRAME_HDR], struct vmig_frame *f)
{
	f->version = get16(in + 4);
	f->type = get16(in + 6);
	f->flags = get32(in + 8);
	f->header_crc = get32(in + 12);
	f->data_crc = get32(in + 16);
	f->reserved = get32(in + 20);
	f->length = get64(in + 24);
	f->a = get64(in + 32);
	f->b = get64(in + 40);
	f->c = get64(in + 48);
	f->d = get64(in + 56);
}

/* ------------------------------------------------------------------ */
/* Checks                                                              */

/* What a type requires of its header. */
enum len_rule {
	LEN_NONE,   /* no payload */
	LEN_UPTO,   /* at most max */
	LEN_PAGES,  /* c pages of 4096 bytes, at most max */
	LEN_HELLO,  /* b regions, c devices, d sections, at most max */
	LEN_SOME,   /* 1 to max */
};

enum crc_rule {
	CRC_NEVER,    /* no payload, so no DATA_CRC */
	CRC_MAY,      /* the receiver's state decides */
	CRC_ALWAYS,
};

struct frame_rule {
	enum len_rule len;
	uint64_t max;
	enum crc_rule crc;
	uint8_t zero; /* fields that must be 0: bit 0 a, 1 b, 2 c, 3 d */
};

#define ZA 0x1u
#define ZB 0x2u
#define ZC 0x4u
#define ZD 0x8u

static const struct frame_rule rules[VMIG_FRAME_NR] = {
	[VMIG_FRAME_HELLO] = { LEN_HELLO, VMIG_HELLO_MAX, CRC_ALWAYS, 0 },
	[VMIG_FRAME_WELCOME] = { LEN_NONE, 0, CRC_NEVER, ZC | ZD },
	[VMIG_FRAME_PAGES] = { LEN_PAGES, VMIG_PAGES_MAX * 4096ull, CRC_MAY,
			       ZD },
	[VMIG_FRAME_ZERO] = { LEN_NONE, 0, CRC_NEVER, ZD },
	[VMIG_FRAME_DEVICE_STATE] = { LEN_SOME, VMIG_DEVSTATE_MAX, CRC_ALWAYS,
				      ZD },
	[VMIG_FRAME_DEVICE_END] = { LEN_NONE, 0, CRC_NEVER, ZC | ZD },
	[VMIG_FRAME_ITERATION] = { LEN_NONE, 0, CRC_NEVER, ZB | ZC | ZD },
	[VMIG_FRAME_SWITCHOVER] = { LEN_NONE, 0, CRC_NEVER,
				    ZA | ZB | ZC | ZD },
	[VMIG_FRAME_COMPLETE] = { LEN_NONE, 0, CRC_NEVER, ZC | ZD },
	[VMIG_FRAME_ACK] = { LEN_NONE, 0, CRC_NEVER, ZD },
	[VMIG_FRAME_COMMIT] = { LEN_NONE, 0, CRC_NEVER, ZA | ZB | ZC | ZD },
	[VMIG_FRAME_ERROR] = { LEN_UPTO, VMIG_ERROR_MAX, CRC_MAY,
			       ZB | ZC | ZD },
	[VMIG_FRAME_STARTED] = { LEN_NONE, 0, CRC_NEVER, ZA | ZB | ZC | ZD },
	[VMIG_FRAME_VMM_STATE] = { LEN_SOME, VMIG_VMMSTATE_MAX, CRC_ALWAYS,
				   ZD },
	[VMIG_FRAME_VMM_STATE_END] = { LEN_NONE, 0, CRC_NEVER, ZC | ZD },
	[VMIG_FRAME_CHANNEL] = { LEN_NONE, 0, CRC_NEVER, ZD },
};

__attribute__((format(printf, 5, 6))) static int
bad(char *err, size_t errlen, uint64_t frame_no, uint32_t type,
    const char *fmt, ...)
{
	const char *name = vmig_frame_name(type);
	char msg[256];
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(msg, sizeof(msg), fmt, ap);
	va_end(ap);
	if (!err || !errlen)
		return -EPROTO;
	if (type == UINT32_MAX)
		snprintf(err, errlen, "frame %llu: %s",
			 (unsigned long long)frame_no, msg);
	else if (name)
		snprintf(err, errlen, "frame %llu (%s): %s",
			 (unsigned long long)frame_no, name, msg);
	else
		snprintf(err, errlen, "frame %llu (type %u): %s",
			 (unsigned long long)frame_no, type, msg);
	return -EPROTO;
}

int vmig_frame_check_head(const uint8_t raw[VMIG_FRAME_HDR],
			  uint64_t frame_no, struct vmig_frame *f, char *err,
			  size_t errlen)
{
	uint8_t copy[VMIG_FRAME_HDR];
	uint32_t crc;

	vmig_frame_unpack(raw, f);
	if (memcmp(raw, magic, 4))
		return bad(err, errlen, frame_no, UINT32_MAX,
			   "bad magic %02x %02x %02x %02x (not a vmig "
			   "stream, or out of step)",
			   raw[0], raw[1], raw[2], raw[3]);
	if (f->version != VMIG_PROTO_VERSION)
		return bad(err, errlen, frame_no, UINT32_MAX,
			   "version %u, this end speaks version %u",
			   f->version, VMIG_PROTO_VERSION);
	memcpy(copy, raw, sizeof(copy));
	memset(copy + 12, 0, 4);
	crc = vmig_crc32c(0, copy, sizeof(copy));
	if (crc != f->header_crc)
		return bad(err, errlen, frame_no, UINT32_MAX,
			   "header CRC 0x%08x, computed 0x%08x",
			   f->header_crc, crc);
	if (f->flags & ~VMIG_FRAME_DATA_CRC)
		return bad(err, errlen, frame_no, f->type,
			   "reserved flags 0x%x set", f->flags);
	if (f->reserved)
		return bad(err, errlen, frame_no, f->type,
			   "reserved field is 0x%x, must be 0", f->reserved);
	if (!(f->flags & VMIG_FRAME_DATA_CRC) && f->data_crc)
		return bad(err, errlen, frame_no, f->type,
			   "data_crc 0x%08x without the DATA_CRC flag",
			   f->data_crc);
	if (!vmig_frame_name(f->type))
		return bad(err, errlen, frame_no, f->type,
			   "unknown frame type");
	return 0;
}

int vmig_frame_check_body(const struct vmig_frame *f, uint64_t frame_no,
			  char *err, size_t errlen)
{
	const struct frame_rule *r = &rules[f->type];
	static const char names[] = "abcd";
	const uint64_t v[4] = { f->a, f->b, f->c, f->d };
	uint64_t want;
	int i;

	switch (r->len) {
	case LEN_NONE:
		if (f->length)
			return bad(err, errlen, frame_no, f->type,
				   "length %llu, expected 0",
				   (unsigned long long)f->length);
		break;
	case LEN_UPTO:
	case LEN_SOME:
		if (f->length > r->max)
			return bad(err, errlen, frame_no, f->type,
				   "length %llu above the limit of %llu",
				   (unsigned long long)f->length,
				   (unsigned long long)r->max);
		if (r->len == LEN_SOME && !f->length)
			return bad(err, errlen, frame_no, f->type,
				   "length 0, expected 1 to %llu",
				   (unsigned long long)r->max);
		break;
	case LEN_PAGES:
		if (f->length > r->max)
			return bad(err, errlen, frame_no, f->type,
				   "length %llu above the limit of %llu",
				   (unsigned long long)f->length,
				   (unsigned long long)r->max);
		if (f->c > VMIG_PAGES_MAX || f->length != f->c * 4096)
			return bad(err, errlen, frame_no, f->type,
				   "length %llu, expected %llu pages of 4096 "
				   "bytes",
				   (unsigned long long)f->length,
				   (unsigned long long)f->c);
		break;
	case LEN_HELLO:
		if (f->length > r->max)
			return bad(err, errlen, frame_no, f->type,
				   "length %llu above the limit of %llu",
				   (unsigned long long)f->length,
				   (unsigned long long)r->max);
		want = f->b <= r->max && f->c <= r->max && f->d <= r->max
			       ? f->b * VMIG_HELLO_REGION +
					 f->c * VMIG_HELLO_DEVICE +
					 f->d * VMIG_HELLO_SECTION
			       : UINT64_MAX;
		if (f->length != want)
			return bad(err, errlen, frame_no, f->type,
				   "length %llu, expected %llu for %llu "
				   "region(s), %llu device(s) and %llu state "
				   "section(s)",
				   (unsigned long long)f->length,
				   (unsigned long long)want,
				   (unsigned long long)f->b,
				   (unsigned long long)f->c,
				   (unsigned long long)f->d);
		break;
	}
	for (i = 0; i < 4; i++) {
		if ((r->zero & (1u << i)) && v[i])
			return bad(err, errlen, frame_no, f->type,
				   "field %c is 0x%llx, must be 0", names[i],
				   (unsigned long long)v[i]);
	}
	switch (r->crc) {
	case CRC_NEVER:
		if (f->flags & VMIG_FRAME_DATA_CRC)
			return bad(err, errlen, frame_no, f->type,
				   "DATA_CRC on a frame without payload");
		break;
	case CRC_ALWAYS:
		if (!(f->flags & VMIG_FRAME_DATA_CRC))
			return bad(err, errlen, frame_no, f->type,
				   "DATA_CRC missing");
		break;
	case CRC_MAY:
		break;
	}

	/* The type's own fields that need no knowledge of the receiver. */
	switch (f->type) {
	case VMIG_FRAME_HELLO:
		if ((uint32_t)f->a & ~(uint32_t)VMIG_HELLO_FLAGS)
			return bad(err, errlen, frame_no, f->type,
				   "unknown stream flags 0x%x",
				   (uint32_t)f->a & ~(uint32_t)VMIG_HELLO_FLAGS);
		if ((f->a & VMIG_HELLO_FULL_DIGEST) &&
		    (f->a & VMIG_HELLO_NO_DIGEST))
			return bad(err, errlen, frame_no, f->type,
				   "stream flags FULL_DIGEST and NO_DIGEST "
				   "together");
		if ((f->a >> VMIG_HELLO_CONN_SHIFT) > VMIG_DATA_CONN_MAX)
			return bad(err, errlen, frame_no, f->type,
				   "%llu data connections, at most %u",
				   (unsigned long long)(f->a >>
							VMIG_HELLO_CONN_SHIFT),
				   VMIG_DATA_CONN_MAX);
		break;
	case VMIG_FRAME_CHANNEL:
		if (f->c >= VMIG_DATA_CONN_MAX)
			return bad(err, errlen, frame_no, f->type,
				   "connection index %llu, at most %u",
				   (unsigned long long)f->c,
				   VMIG_DATA_CONN_MAX - 1);
		break;
	case VMIG_FRAME_PAGES:
		if (!f->c)
			return bad(err, errlen, frame_no, f->type,
				   "page count 0");
		break;
	case VMIG_FRAME_ZERO:
		if (!f->c || f->c > VMIG_ZERO_MAX)
			return bad(err, errlen, frame_no, f->type,
				   "page count %llu, expected 1 to %llu",
				   (unsigned long long)f->c,
				   (unsigned long long)VMIG_ZERO_MAX);
		break;
	case VMIG_FRAME_DEVICE_STATE:
	case VMIG_FRAME_VMM_STATE:
		if (f->c != VMIG_DS_PRECOPY && f->c != VMIG_DS_STOPCOPY)
			return bad(err, errlen, frame_no, f->type,
				   "phase %llu, expected 1 (pre-copy) or 2 "
				   "(stop-copy)",
				   (unsigned long long)f->c);
		break;
	case VMIG_FRAME_ERROR:
		if ((int64_t)f->a >= 0 || (int64_t)f->a < -(int64_t)INT32_MAX)
			return bad(err, errlen, frame_no, f->type,
				   "error code %lld, expected a negative "
				   "errno",
				   (long long)(int64_t)f->a);
		break;
	}
	return 0;
}

/* ------------------------------------------------------------------ */
/* Typed encoders                                                      */

void vmig_enc_hello(uint8_t hdr[VMIG_FRAME_HDR], uint32_t flags,
		    uint32_t connections, const struct vmig_hello_counts *n,
		    const void *layout, size_t len)
{
	pack4(hdr, VMIG_FRAME_HELLO, VMIG_FRAME_DATA_CRC,
	      vmig_crc32c(0, layout, len), len,
	      flags | (uint64_t)connections << VMIG_HELLO_CONN_SHIFT,
	      n->regions, n->devices, n->sections);
}

void vmig_enc_welcome(uint8_t hdr[VMIG_FRAME_HDR], const uint64_t token[2])
{
	vmig_frame_pack(hdr, VMIG_FRAME_WELCOME, 0, token ? token[0] : 0,
			token ? token[1] : 0, 0, NULL);
}

void vmig_enc_channel(uint8_t hdr[VMIG_FRAME_HDR], const uint64_t token[2],
		      uint32_t index)
{
	vmig_frame_pack(hdr, VMIG_FRAME_CHANNEL, 0, token[0], token[1], index,
			NULL);
}

void vmig_enc_pages(uint8_t hdr[VMIG_FRAME_HDR], uint32_t region,
		    uint64_t first, uint64_t count, const void *data,
		    bool crc)
{
	vmig_frame_pack(hdr, VMIG_FRAME_PAGES, count * 4096, region, first,
			count, crc ? data : NULL);
}

void vmig_enc_zero(uint8_t hdr[VMIG_FRAME_HDR], uint32_t region,
		   uint64_t first, uint64_t count)
{
	vmig_frame_pack(hdr, VMIG_FRAME_ZERO, 0, region, first, count, NULL);
}

void vmig_enc_device_state(uint8_t hdr[VMIG_FRAME_HDR], uint32_t device,
			   uint64_t offset, uint32_t phase, const void *data,
			   size_t len)
{
	vmig_frame_pack(hdr, VMIG_FRAME_DEVICE_STATE, len, device, offset,
			phase, data);
}

void vmig_enc_device_end(uint8_t hdr[VMIG_FRAME_HDR], uint32_t device,
			 uint64_t total)
{
	vmig_frame_pack(hdr, VMIG_FRAME_DEVICE_END, 0, device, total, 0, NULL);
}

void vmig_enc_iteration(uint8_t hdr[VMIG_FRAME_HDR], uint64_t number)
{
	vmig_frame_pack(hdr, VMIG_FRAME_ITERATION, 0, number, 0, 0, NULL);
}

void vmig_enc_switchover(uint8_t hdr[VMIG_FRAME_HDR])
{
	vmig_frame_pack(hdr, VMIG_FRAME_SWITCHOVER, 0, 0, 0, 0, NULL);
}

void vmig_enc_complete(uint8_t hdr[VMIG_FRAME_HDR], uint64_t pages,
		       uint64_t frames)
{
	vmig_frame_pack(hdr, VMIG_FRAME_COMPLETE, 0, pages, frames, 0, NULL);
}

void vmig_enc_vmm_state(uint8_t hdr[VMIG_FRAME_HDR], uint32_t section,
			uint64_t offset, uint32_t phase, const void *data,
			size_t len)
{
	vmig_frame_pack(hdr, VMIG_FRAME_VMM_STATE, len, section, offset, phase,
			data);
}

void vmig_enc_vmm_state_end(uint8_t hdr[VMIG_FRAME_HDR], uint32_t section,
			    uint64_t total)
{
	vmig_frame_pack(hdr, VMIG_FRAME_VMM_STATE_END, 0, section, total, 0,
			NULL);
}

void vmig_enc_ack(uint8_t hdr[VMIG_FRAME_HDR], uint64_t digest,
		  uint64_t pages, uint64_t state_check)
{
	vmig_frame_pack(hdr, VMIG_FRAME_ACK, 0, digest, pages, state_check,
			NULL);
}

uint64_t vmig_state_check(uint64_t check, const void *data, size_t len)
{
	uint32_t crc = vmig_crc32c((uint32_t)check, data, len);
	uint32_t records = (uint32_t)(check >> 32) + 1;

	return (uint64_t)records << 32 | crc;
}

void vmig_enc_commit(uint8_t hdr[VMIG_FRAME_HDR])
{
	vmig_frame_pack(hdr, VMIG_FRAME_COMMIT, 0, 0, 0, 0, NULL);
}

void vmig_enc_error(uint8_t hdr[VMIG_FRAME_HDR], int code, const void *msg,
		    size_t len)
{
	/* Two's complement, 64 bits: -1 is 0xffff...ff. */
	vmig_frame_pack(hdr, VMIG_FRAME_ERROR, len, (uint64_t)(int64_t)code,
			0, 0, msg);
}

void vmig_enc_started(uint8_t hdr[VMIG_FRAME_HDR])
{
	vmig_frame_pack(hdr, VMIG_FRAME_STARTED, 0, 0, 0, 0, NULL);
}

uint32_t vmig_frame_type_of(const uint8_t hdr[VMIG_FRAME_HDR])
{
	return get16(hdr + 6);
}

/* ------------------------------------------------------------------ */
/* The typed decoder                                                   */

void vmig_frame_decode(const struct vmig_frame *f, struct vmig_msg *m)
{
	memset(m, 0, sizeof(*m));
	m->type = f->type;
	m->crc = f->flags & VMIG_FRAME_DATA_CRC;
	m->data_crc = f->data_crc;
	m->length = f->length;
	switch (f->type) {
	case VMIG_FRAME_HELLO:
		m->hello.flags = (uint32_t)f->a;
		m->hello.connections =
			(uint32_t)(f->a >> VMIG_HELLO_CONN_SHIFT);
		m->hello.nr_regions = f->b;
		m->hello.nr_devices = f->c;
		m->hello.nr_sections = f->d;
		break;
	case VMIG_FRAME_PAGES:
	case VMIG_FRAME_ZERO:
		m->pages.region = f->a;
		m->pages.first = f->b;
		m->pages.count = f->c;
		break;
	case VMIG_FRAME_DEVICE_STATE:
		m->state.device = f->a;
		m->state.offset = f->b;
		m->state.phase = f->c;
		break;
	case VMIG_FRAME_DEVICE_END:
		m->end.device = f->a;
		m->end.total = f->b;
		break;
	case VMIG_FRAME_VMM_STATE:
		m->vmm.section = f->a;
		m->vmm.offset = f->b;
		m->vmm.phase = f->c;
		break;
	case VMIG_FRAME_VMM_STATE_END:
		m->vmm_end.section = f->a;
		m->vmm_end.total = f->b;
		break;
	case VMIG_FRAME_ITERATION:
		m->iteration.number = f->a;
		break;
	case VMIG_FRAME_WELCOME:
	case VMIG_FRAME_CHANNEL:
		m->channel.token[0] = f->a;
		m->channel.token[1] = f->b;
		m->channel.index = f->c;
		break;
	case VMIG_FRAME_COMPLETE:
		m->complete.pages = f->a;
		m->complete.frames = f->b;
		break;
	case VMIG_FRAME_ACK:
		m->ack.digest = f->a;
		m->ack.pages = f->b;
		m->ack.state_check = f->c;
		break;
	case VMIG_FRAME_ERROR:
		/* The checks kept it in -1 .. -INT32_MAX. */
		m->error.code = (int)(int64_t)f->a;
		break;
	}
}

/* ------------------------------------------------------------------ */
/* HELLO's layout                                                      */

size_t vmig_hello_len(const struct vmig_hello_counts *n)
{
	return (size_t)n->regions * VMIG_HELLO_REGION +
	       (size_t)n->devices * VMIG_HELLO_DEVICE +
	       (size_t)n->sections * VMIG_HELLO_SECTION;
}

/* Where device i of a layout with nr_regions regions begins. */
static size_t hello_device_at(uint32_t nr_regions, uint32_t i)
{
	return (size_t)nr_regions * VMIG_HELLO_REGION +
	       (size_t)i * VMIG_HELLO_DEVICE;
}

void vmig_hello_put_region(uint8_t *layout, uint32_t i, uint64_t gpa,
			   uint64_t size, const char *name)
{
	uint8_t *q = layout + (size_t)i * VMIG_HELLO_REGION;

	put64(q, gpa);
	put64(q + 8, size);
	strncpy((char *)q + 16, name, VMIG_HELLO_NAME);
}

void vmig_hello_put_device(uint8_t *layout, uint32_t nr_regions, uint32_t i,
			   const char *name)
{
	uint8_t *q = layout + hello_device_at(nr_regions, i);

	strncpy((char *)q, name, VMIG_HELLO_DEVICE);
}

void vmig_hello_get_region(const uint8_t *layout, uint32_t i,
			   struct vmig_hello_region *r)
{
	const uint8_t *p = layout + (size_t)i * VMIG_HELLO_REGION;

	r->gpa = get64(p);
	r->size = get64(p + 8);
	r->name = p + 16;
	r->name_len = strnlen((const char *)r->name, VMIG_HELLO_NAME);
}

void vmig_hello_get_device(const uint8_t *layout, uint32_t nr_regions,
			   uint32_t i, const uint8_t **name, size_t *len)
{
	const uint8_t *p = layout + hello_device_at(nr_regions, i);

	*name = p;
	*len = strnlen((const char *)p, VMIG_HELLO_DEVICE);
}

/* Where state section i of a layout begins. */
static size_t hello_section_at(const struct vmig_hello_counts *n, uint32_t i)
{
	return hello_device_at(n->regions, n->devices) +
	       (size_t)i * VMIG_HELLO_SECTION;
}

void vmig_hello_put_section(uint8_t *layout, const struct vmig_hello_counts *n,
			    uint32_t i, const char *name, uint32_t version)
{
	uint8_t *q = layout + hello_section_at(n, i);

	strncpy((char *)q, name, VMIG_HELLO_SECTION_NAME);
	put32(q + VMIG_HELLO_SECTION_NAME, version);
	put32(q + VMIG_HELLO_SECTION_NAME + 4, 0);
}

void vmig_hello_get_section(const uint8_t *layout,
			    const struct vmig_hello_counts *n, uint32_t i,
			    struct vmig_hello_section *sec)
{
	const uint8_t *p = layout + hello_section_at(n, i);

	sec->name = p;
	sec->name_len = strnlen((const char *)p, VMIG_HELLO_SECTION_NAME);
	sec->version = get32(p + VMIG_HELLO_SECTION_NAME);
	sec->reserved = get32(p + VMIG_HELLO_SECTION_NAME + 4);
}

/* Length of the UTF-8 sequence at p (at most n bytes), 0 if invalid. */
static size_t utf8_len(const uint8_t *p, size_t n)
{
	size_t len, i;
	uint32_t cp;

	if (p[0] < 0x80)
		return 1;
	if ((p[0] & 0xe0) == 0xc0) {
		len = 2;
		cp = p[0] & 0x1f;
	} else if ((p[0] & 0xf0) == 0xe0) {
		len = 3;
		cp = p[0] & 0x0f;
	} else if ((p[0] & 0xf8) == 0xf0) {
		len = 4;
		cp = p[0] & 0x07;
	} else {
		return 0;
	}
	if (len > n)
		return 0;
	for (i = 1; i < len; i++) {
		if ((p[i] & 0xc0) != 0x80)
			return 0;
		cp = cp << 6 | (p[i] & 0x3f);
	}
	/* Overlong forms, surrogates and beyond U+10FFFF are not UTF-8. */
	if ((len == 2 && cp < 0x80) || (len == 3 && cp < 0x800) ||
	    (len == 4 && cp < 0x10000) || cp > 0x10ffff ||
	    (cp >= 0xd800 && cp <= 0xdfff))
		return 0;
	return len;
}

void vmig_proto_text(char *out, size_t outlen, const void *msg, size_t len)
{
	const uint8_t *p = msg;
	size_t o = 0, i = 0;

	if (!outlen)
		return;
	while (i < len && o + 1 < outlen) {
		size_t n = utf8_len(p + i, len - i);

		if (n == 1 && (p[i] < 0x20 || p[i] == 0x7f)) {
			out[o++] = '?';
			i++;
		} else if (n == 0) {
			out[o++] = '?';
			i++;
		} else if (o + n < outlen) {
			memcpy(out + o, p + i, n);
			o += n;
			i += n;
		} else {
			break;
		}
	}
	out[o] = '\0';
}
