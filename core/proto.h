/*
 * proto.h: the frames of the migration stream (docs/protocol.md).
 *
 * proto.c owns the wire format: packing and unpacking the 64-byte frame
 * header, CRC32C, the frame names, the checks of a header that do not
 * depend on the receiver's state (magic, version, header CRC, reserved
 * bits, the length and the fields each type requires), a typed encoder
 * for every frame and one typed decoder of a checked header, and the
 * HELLO payload's layout. The receivers (dest.c for the destination,
 * reply.c for the source's side) add the checks that depend on where
 * the stream is and on their own memory; no other file knows which field
 * of a header means what, so a change of the format touches this module
 * and docs/protocol.md only.
 */
#ifndef VMIG_CORE_PROTO_H
#define VMIG_CORE_PROTO_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define VMIG_PROTO_VERSION 6u
#define VMIG_FRAME_HDR 64u         /* bytes of a frame header */
#define VMIG_FRAME_DATA_CRC 0x1u   /* flags: data_crc covers the payload */

enum vmig_frame_type {
	VMIG_FRAME_HELLO = 1,
	VMIG_FRAME_WELCOME = 2,
	VMIG_FRAME_PAGES = 3,
	VMIG_FRAME_ZERO = 4,
	VMIG_FRAME_DEVICE_STATE = 5,
	VMIG_FRAME_DEVICE_END = 6,
	VMIG_FRAME_ITERATION = 7,
	VMIG_FRAME_SWITCHOVER = 8,
	VMIG_FRAME_COMPLETE = 9,
	VMIG_FRAME_ACK = 10,
	VMIG_FRAME_COMMIT = 11,
	VMIG_FRAME_ERROR = 12,
	VMIG_FRAME_STARTED = 13, /* since version 2 */
	VMIG_FRAME_VMM_STATE = 14,     /* since version 4 */
	VMIG_FRAME_VMM_STATE_END = 15, /* since version 4 */
	VMIG_FRAME_CHANNEL = 16,       /* since version 5 */
	VMIG_FRAME_NR,
};

/* Limits of docs/protocol.md. */
#define VMIG_HELLO_MAX (64u * 1024)      /* HELLO payload bytes */
#define VMIG_HELLO_REGION 48u            /* bytes per region in HELLO */
#define VMIG_HELLO_DEVICE 64u            /* bytes per device in HELLO */
#define VMIG_HELLO_NAME 32u              /* a region's name field */
#define VMIG_HELLO_SECTION 72u           /* bytes per state section */
#define VMIG_HELLO_SECTION_NAME 64u      /* a state section's name field */
#define VMIG_PAGES_MAX 256u              /* pages per PAGES frame */
#define VMIG_ZERO_MAX (1ull << 32)       /* pages per ZERO frame */
#define VMIG_DEVSTATE_MAX (1u << 20)     /* DEVICE_STATE payload bytes */
#define VMIG_VMMSTATE_MAX (1u << 20)     /* VMM_STATE payload bytes */
#define VMIG_ERROR_MAX 4096u             /* ERROR message bytes */

/* DEVICE_STATE phases (field c). */
#define VMIG_DS_PRECOPY 1u
#define VMIG_DS_STOPCOPY 2u

/* A frame header, unpacked. */
struct vmig_frame {
	uint16_t version;
	uint16_t type;
	uint32_t flags;
	uint32_t header_crc;
	uint32_t data_crc;
	uint32_t reserved;
	uint64_t length;
	uint64_t a, b, c, d;
};

/*
 * CRC32C (Castagnoli) of buf, continuing from crc (0 to start):
 * vmig_crc32c(vmig_crc32c(0, x, n), y, m) is the CRC of x followed by y,
 * and vmig_crc32c(0, "123456789", 9) == 0xE3069283. Uses the CPU's
 * instruction when it has one.
 */
uint32_t vmig_crc32c(uint32_t crc, const void *buf, size_t len);

/* The name of a frame type ("PAGES"), or NULL for an unknown one. */
const char *vmig_frame_name(uint32_t type);

/*
 * Fills a header: magic, version, type, the given fields, and the header
 * CRC. With data (non-NULL), sets DATA_CRC and the CRC of those length
 * bytes; without, the flags are 0.
 */
void vmig_frame_pack(uint8_t out[VMIG_FRAME_HDR], uint32_t type,
		     uint64_t length, uint64_t a, uint64_t b, uint64_t c,
		     const void *data);

/* Like vmig_frame_pack, with a data CRC computed by the caller. */
void vmig_frame_pack_crc(uint8_t out[VMIG_FRAME_HDR], uint32_t type,
			 uint64_t length, uint64_t a, uint64_t b, uint64_t c,
			 uint32_t data_crc);

/* Reads the fields of a header as they are, without any check. */
void vmig_frame_unpack(const uint8_t in[VMIG_FRAME_HDR],
		       struct vmig_frame *f);

/*
 * Checks what every receiver checks first, in the order of
 * docs/protocol.md: magic, version, header CRC, the reserved flags and
 * field (and a data CRC without DATA_CRC), that the type is known, then
 * the type's fixed rules: the length it requires and its limit, the
 * fields that must be 0, and DATA_CRC where the type always carries it.
 * Fills *f. Returns 0, or -EPROTO with a message "frame <n>[ (<TYPE>)]:
 * ..." in err. The receiver checks, between "known" and "length", that
 * the type is allowed where the stream is: vmig_frame_check_head() stops
 * there, vmig_frame_check_body() does the rest.
 */
int vmig_frame_check_head(const uint8_t raw[VMIG_FRAME_HDR],
			  uint64_t frame_no, struct vmig_frame *f, char *err,
			  size_t errlen);
int vmig_frame_check_body(const struct vmig_frame *f, uint64_t frame_no,
			  char *err, size_t errlen);

/*
 * Copies an ERROR payload into out as printable text (NUL-terminated):
 * control characters and invalid UTF-8 become '?'.
 */
void vmig_proto_text(char *out, size_t outlen, const void *msg, size_t len);

/* ------------------------------------------------------------------ */
/* Typed encoders: each fills a header of its frame type.              */

/*
 * HELLO's stream flags (field a). FULL_DIGEST: the destination's ACK
 * digest is a pass over all its memory at COMPLETE (the source's verify
 * "strict"), not the one it kept as pages arrived. NO_DIGEST: the source
 * will not look at it (verify "off"): the destination hashes nothing and
 * ACK's digest is 0. Not both.
 */
#define VMIG_HELLO_FULL_DIGEST 0x1u
#define VMIG_HELLO_NO_DIGEST 0x2u
#define VMIG_HELLO_FLAGS (VMIG_HELLO_FULL_DIGEST | VMIG_HELLO_NO_DIGEST)
/*
 * HELLO's field a: the flags in bits 0-31, the number of data connections
 * (0: the pages travel on this stream; 1 to VMIG_DATA_CONN_MAX) in bits
 * 32-47, the rest 0.
 */
#define VMIG_HELLO_CONN_SHIFT 32u
#define VMIG_DATA_CONN_MAX 16u

/* How many of each thing a HELLO layout names. */
struct vmig_hello_counts {
	uint32_t regions, devices, sections;
};

/*
 * HELLO: the layout follows, its regions, devices then state sections
 * (vmig_hello_len bytes, filled with vmig_hello_put_*), with DATA_CRC.
 */
void vmig_enc_hello(uint8_t hdr[VMIG_FRAME_HDR], uint32_t flags,
		    uint32_t connections, const struct vmig_hello_counts *n,
		    const void *layout, size_t len);
/*
 * WELCOME: with data connections, the token (128 bits) each one presents
 * in its CHANNEL frame; 0 without.
 */
void vmig_enc_welcome(uint8_t hdr[VMIG_FRAME_HDR], const uint64_t token[2]);
/* CHANNEL: the first frame of data connection index, with the token. */
void vmig_enc_channel(uint8_t hdr[VMIG_FRAME_HDR], const uint64_t token[2],
		      uint32_t index);
/*
 * PAGES: count pages from page first of region, the payload data (count
 * pages); with crc, DATA_CRC covers them (after SWITCHOVER).
 */
void vmig_enc_pages(uint8_t hdr[VMIG_FRAME_HDR], uint32_t region,
		    uint64_t first, uint64_t count, const void *data,
		    bool crc);
/* ZERO: count pages from page first of region are all zero. */
void vmig_enc_zero(uint8_t hdr[VMIG_FRAME_HDR], uint32_t region,
		   uint64_t first, uint64_t count);
/* DEVICE_STATE: len bytes of device's state at offset, in phase. */
void vmig_enc_device_state(uint8_t hdr[VMIG_FRAME_HDR], uint32_t device,
			   uint64_t offset, uint32_t phase, const void *data,
			   size_t len);
/* DEVICE_END: the device's state was total bytes. */
void vmig_enc_device_end(uint8_t hdr[VMIG_FRAME_HDR], uint32_t device,
			 uint64_t total);
void vmig_enc_iteration(uint8_t hdr[VMIG_FRAME_HDR], uint64_t number);
void vmig_enc_switchover(uint8_t hdr[VMIG_FRAME_HDR]);
/* COMPLETE: pages sent in all, frames sent before this one. */
void vmig_enc_complete(uint8_t hdr[VMIG_FRAME_HDR], uint64_t pages,
		       uint64_t frames);
/*
 * VMM_STATE: one record (len bytes) of state section `section`, at
 * offset in its bytes, in phase (VMIG_DS_PRECOPY or _STOPCOPY).
 */
void vmig_enc_vmm_state(uint8_t hdr[VMIG_FRAME_HDR], uint32_t section,
			uint64_t offset, uint32_t phase, const void *data,
			size_t len);
/* VMM_STATE_END: the section's records were total bytes. */
void vmig_enc_vmm_state_end(uint8_t hdr[VMIG_FRAME_HDR], uint32_t section,
			    uint64_t total);
/*
 * ACK: the destination's memory digest, the pages it received, and the
 * check of the VMM state it loaded (vmig_state_check).
 */
void vmig_enc_ack(uint8_t hdr[VMIG_FRAME_HDR], uint64_t digest,
		  uint64_t pages, uint64_t state_check);
/*
 * The check of the VMM state records, in stream order: CRC32C of their
 * bytes (low 32 bits) and their number (high 32 bits). Start with 0.
 */
uint64_t vmig_state_check(uint64_t check, const void *data, size_t len);
void vmig_enc_commit(uint8_t hdr[VMIG_FRAME_HDR]);
/*
 * ERROR: code (a negative errno or vmig code) and len bytes of message;
 * with msg non-NULL, DATA_CRC covers it (even when empty).
 */
void vmig_enc_error(uint8_t hdr[VMIG_FRAME_HDR], int code, const void *msg,
		    size_t len);
void vmig_enc_started(uint8_t hdr[VMIG_FRAME_HDR]);

/* The type of an encoded header. */
uint32_t vmig_frame_type_of(const uint8_t hdr[VMIG_FRAME_HDR]);

/* ------------------------------------------------------------------ */
/* The typed decoder                                                   */

/*
 * A header checked by vmig_frame_check_head() and _body(), by meaning.
 * Indexes and counts stay 64-bit: the receiver checks their ranges.
 */
struct vmig_msg {
	uint32_t type;
	bool crc;          /* DATA_CRC: data_crc covers the payload */
	uint32_t data_crc;
	uint64_t length;   /* payload bytes */
	union {
		struct {
			uint64_t flags, nr_regions, nr_devices, nr_sections;
			uint32_t connections; /* data connections */
		} hello;
		struct {       /* WELCOME, and CHANNEL with its index */
			uint64_t token[2];
			uint64_t index;
		} channel;
		struct {       /* PAGES and ZERO */
			uint64_t region, first, count;
		} pages;
		struct {
			uint64_t device, offset, phase;
		} state;
		struct {
			uint64_t device, total;
		} end;
		struct {       /* VMM_STATE */
			uint64_t section, offset, phase;
		} vmm;
		struct {       /* VMM_STATE_END */
			uint64_t section, total;
		} vmm_end;
		struct {
			uint64_t number;
		} iteration;
		struct {
			uint64_t pages, frames;
		} complete;
		struct {
			uint64_t digest, pages, state_check;
		} ack;
		struct {
			int code;
		} error;
	};
};

void vmig_frame_decode(const struct vmig_frame *f, struct vmig_msg *m);

/* ------------------------------------------------------------------ */
/* HELLO's layout                                                      */

/* Bytes of a layout of n's regions, devices and state sections. */
size_t vmig_hello_len(const struct vmig_hello_counts *n);

/* Writes region i (the name is cut to VMIG_HELLO_NAME bytes). */
void vmig_hello_put_region(uint8_t *layout, uint32_t i, uint64_t gpa,
			   uint64_t size, const char *name);
/* Writes device i, after nr_regions regions (cut to VMIG_HELLO_DEVICE). */
void vmig_hello_put_device(uint8_t *layout, uint32_t nr_regions, uint32_t i,
			   const char *name);

/* A region of a received layout; the name as sent, not NUL-terminated. */
struct vmig_hello_region {
	uint64_t gpa;
	uint64_t size;
	const uint8_t *name;
	size_t name_len;   /* up to the first NUL */
};

void vmig_hello_get_region(const uint8_t *layout, uint32_t i,
			   struct vmig_hello_region *r);
/* Device i's name as sent (len: up to the first NUL). */
void vmig_hello_get_device(const uint8_t *layout, uint32_t nr_regions,
			   uint32_t i, const uint8_t **name, size_t *len);

/* Writes state section i, after n's regions and devices. */
void vmig_hello_put_section(uint8_t *layout, const struct vmig_hello_counts *n,
			    uint32_t i, const char *name, uint32_t version);

/* A state section of a received layout; the name as sent. */
struct vmig_hello_section {
	const uint8_t *name;
	size_t name_len;   /* up to the first NUL */
	uint32_t version;
	uint32_t reserved; /* must be 0 */
};

void vmig_hello_get_section(const uint8_t *layout,
			    const struct vmig_hello_counts *n, uint32_t i,
			    struct vmig_hello_section *sec);

#endif /* VMIG_CORE_PROTO_H */
