/*
 * json.h: the syntax check of a JSON document, and quoting its text for
 * messages (json.c).
 */
#ifndef VMIG_TOOL_JSON_H
#define VMIG_TOOL_JSON_H

#include <stdbool.h>
#include <stddef.h>

/* Deeper than any valid configuration, and far below cJSON's own limit. */
#define JSON_MAX_DEPTH 64

/*
 * Checks len bytes of s against RFC 8259, as strictly as cJSON must
 * parse it (no "\u0000", no number longer than cJSON reads, nesting
 * bounded). Returns 0, or VMIG_ECONFIG with "line L, column C: what" in
 * err (if errlen > 0).
 */
int json_check(const unsigned char *s, size_t len, char *err, size_t errlen);

/* True for '0' to '9'. */
bool json_is_digit(unsigned char c);

/* The value of a hexadecimal digit, or -1. */
int json_hex_digit(unsigned char c);

/* A quoted, escaped and shortened copy of a string, for messages. */
struct json_qstr {
	char s[72];
};

/*
 * Quotes n bytes of str into q and returns q->s. Valid UTF-8 is kept,
 * anything else is written as \xNN, so that a message never carries a
 * control character or a broken sequence.
 */
const char *json_quote_n(struct json_qstr *q, const char *str, size_t n);
const char *json_quote(struct json_qstr *q, const char *s);

#endif /* VMIG_TOOL_JSON_H */
