/*
 * json.c: the syntax check of a JSON document (RFC 8259), before cJSON
 * parses it, and quoting its text for messages.
 *
 * The scanner allocates nothing. That gives syntax errors an exact line
 * and column, and it means that cJSON failing on a text the scanner
 * accepted can only be a failed allocation, which cJSON does not tell
 * apart from a syntax error.
 */
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>

#include <cjson/cJSON.h>
#include <vmig/vmig.h>

#include "json.h"

/* cJSON reads at most 63 characters of a number. */
#define JSON_MAX_NUMBER 63

_Static_assert(JSON_MAX_DEPTH < CJSON_NESTING_LIMIT,
	       "the scanner must refuse what cJSON would refuse");

static size_t utf8_len(const unsigned char *s, size_t n);

/* ------------------------------------------------------------------ */
/* Quoting                                                             */

#define QUOTE_SHOWN 48

/*
 * Quotes n bytes of s. Valid UTF-8 is kept (the scanner has checked
 * every string of the document), anything else is written as \xNN, so
 * that a message never carries a control character or a broken sequence.
 */
const char *json_quote_n(struct json_qstr *q, const char *str, size_t n)
{
	const unsigned char *s = (const unsigned char *)str;
	size_t o = 0, i = 0, k;

	q->s[o++] = '"';
	while (i < n) {
		unsigned char ch = s[i];
		size_t ulen = ch >= 0x80 ? utf8_len(s + i, n - i) : 1;
		size_t need = ulen ? ulen : 4;

		if (ch == '"' || ch == '\\')
			need = 2;
		else if (ch < 0x20 || ch == 0x7f)
			need = 4;
		if (o + need > QUOTE_SHOWN) {
			memcpy(q->s + o, "...", 3);
			o += 3;
			break;
		}
		if (ch == '"' || ch == '\\') {
			q->s[o++] = '\\';
			q->s[o++] = (char)ch;
			i++;
		} else if (ch < 0x20 || ch == 0x7f || !ulen) {
			snprintf(q->s + o, sizeof(q->s) - o, "\\x%02x", ch);
			o += 4;
			i++;
		} else {
			for (k = 0; k < ulen; k++)
				q->s[o++] = (char)s[i++];
		}
	}
	q->s[o++] = '"';
	q->s[o] = '\0';
	return q->s;
}

const char *json_quote(struct json_qstr *q, const char *s)
{
	return json_quote_n(q, s, strlen(s));
}

/* ------------------------------------------------------------------ */
/* The scanner                                                         */

enum jerr {
	JSON_OK = 0,
	JSON_NEAR,     /* an unexpected byte */
	JSON_END,      /* the text ends inside a value */
	JSON_EMPTY,    /* nothing but white space */
	JSON_DEPTH,    /* nested too deep */
	JSON_UTF8,     /* a string is not UTF-8 */
	JSON_NUL,      /* \u0000, which would cut the string short */
	JSON_NUMBER,   /* a number longer than cJSON reads */
	JSON_TRAILING, /* more text after the value */
};

struct scan {
	const unsigned char *s;
	size_t len;
	size_t pos;
};

/*
 * Returns the length of the well-formed UTF-8 sequence at s (RFC 3629: no
 * overlong forms, no surrogates, nothing above U+10FFFF), 0 if there is
 * none.
 */
static size_t utf8_len(const unsigned char *s, size_t n)
{
	unsigned char c = s[0], lo = 0x80, hi = 0xbf;
	size_t len, i;

	if (c < 0x80)
		return 1;
	if (c >= 0xc2 && c <= 0xdf)
		len = 2;
	else if (c >= 0xe0 && c <= 0xef)
		len = 3;
	else if (c >= 0xf0 && c <= 0xf4)
		len = 4;
	else
		return 0;
	if (c == 0xe0)
		lo = 0xa0;
	else if (c == 0xed)
		hi = 0x9f;
	else if (c == 0xf0)
		lo = 0x90;
	else if (c == 0xf4)
		hi = 0x8f;
	if (n < len || s[1] < lo || s[1] > hi)
		return 0;
	for (i = 2; i < len; i++)
		if (s[i] < 0x80 || s[i] > 0xbf)
			return 0;
	return len;
}

static bool at_end(const struct scan *p)
{
	return p->pos >= p->len;
}

static void skip_ws(struct scan *p)
{
	while (!at_end(p) && (p->s[p->pos] == ' ' || p->s[p->pos] == '\t' ||
			      p->s[p->pos] == '\n' || p->s[p->pos] == '\r'))
		p->pos++;
}

bool json_is_digit(unsigned char c)
{
	return c >= '0' && c <= '9';
}

int json_hex_digit(unsigned char c)
{
	if (c >= '0' && c <= '9')
		return c - '0';
	if (c >= 'a' && c <= 'f')
		return c - 'a' + 10;
	if (c >= 'A' && c <= 'F')
		return c - 'A' + 10;
	return -1;
}

static enum jerr scan_hex4(struct scan *p, unsigned int *out)
{
	int i, d;

	*out = 0;
	for (i = 0; i < 4; i++) {
		if (at_end(p))
			return JSON_END;
		d = json_hex_digit(p->s[p->pos]);
		if (d < 0)
			return JSON_NEAR;
		*out = *out << 4 | (unsigned int)d;
		p->pos++;
	}
	return JSON_OK;
}

/* Reads "\u" escapes as cJSON decodes them: surrogates must pair up. */
static enum jerr scan_unicode(struct scan *p)
{
	size_t start = p->pos;
	unsigned int cp, lo;
	enum jerr rc;

	p->pos += 2;
	rc = scan_hex4(p, &cp);
	if (rc)
		return rc;
	if (cp == 0) {
		p->pos = start;
		return JSON_NUL;
	}
	if (cp >= 0xdc00 && cp <= 0xdfff) {
		p->pos = start;
		return JSON_NEAR;
	}
	if (cp < 0xd800 || cp > 0xdbff)
		return JSON_OK;
	start = p->pos;
	if (p->len - p->pos < 2)
		return at_end(p) || p->s[p->pos] == '\\' ? JSON_END : JSON_NEAR;
	if (p->s[p->pos] != '\\' || p->s[p->pos + 1] != 'u')
		return JSON_NEAR;
	p->pos += 2;
	rc = scan_hex4(p, &lo);
	if (rc)
		return rc;
	if (lo < 0xdc00 || lo > 0xdfff) {
		p->pos = start;
		return JSON_NEAR;
	}
	return JSON_OK;
}

static enum jerr scan_string(struct scan *p)
{
	enum jerr rc;
	size_t n;

	p->pos++;
	for (;;) {
		unsigned char ch;

		if (at_end(p))
			return JSON_END;
		ch = p->s[p->pos];
		if (ch == '"') {
			p->pos++;
			return JSON_OK;
		}
		if (ch < 0x20)
			return JSON_NEAR;
		if (ch == '\\') {
			if (p->len - p->pos < 2)
				return JSON_END;
			switch (p->s[p->pos + 1]) {
			case '"': case '\\': case '/': case 'b':
			case 'f': case 'n': case 'r': case 't':
				p->pos += 2;
				continue;
			case 'u':
				rc = scan_unicode(p);
				if (rc)
					return rc;
				continue;
			default:
				return JSON_NEAR;
			}
		}
		n = utf8_len(p->s + p->pos, p->len - p->pos);
		if (!n)
			return JSON_UTF8;
		p->pos += n;
	}
}

/* RFC 8259 numbers only: cJSON's strtod would take "01", ".5", "1.". */
static enum jerr scan_number(struct scan *p)
{
	size_t start = p->pos;

	if (p->s[p->pos] == '-')
		p->pos++;
	if (at_end(p))
		return JSON_END;
	if (p->s[p->pos] == '0') {
		p->pos++;
	} else if (json_is_digit(p->s[p->pos])) {
		while (!at_end(p) && json_is_digit(p->s[p->pos]))
			p->pos++;
	} else {
		return JSON_NEAR;
	}
	if (!at_end(p) && p->s[p->pos] == '.') {
		p->pos++;
		if (at_end(p))
			return JSON_END;
		if (!json_is_digit(p->s[p->pos]))
			return JSON_NEAR;
		while (!at_end(p) && json_is_digit(p->s[p->pos]))
			p->pos++;
	}
	if (!at_end(p) && (p->s[p->pos] == 'e' || p->s[p->pos] == 'E')) {
		p->pos++;
		if (!at_end(p) && (p->s[p->pos] == '+' || p->s[p->pos] == '-'))
			p->pos++;
		if (at_end(p))
			return JSON_END;
		if (!json_is_digit(p->s[p->pos]))
			return JSON_NEAR;
		while (!at_end(p) && json_is_digit(p->s[p->pos]))
			p->pos++;
	}
	if (p->pos - start > JSON_MAX_NUMBER) {
		p->pos = start;
		return JSON_NUMBER;
	}
	return JSON_OK;
}

static enum jerr scan_literal(struct scan *p, const char *word)
{
	size_t i;

	for (i = 0; word[i]; i++, p->pos++) {
		if (at_end(p))
			return JSON_END;
		if (p->s[p->pos] != (unsigned char)word[i])
			return JSON_NEAR;
	}
	return JSON_OK;
}

static enum jerr scan_scalar(struct scan *p)
{
	unsigned char ch = p->s[p->pos];

	switch (ch) {
	case '"':
		return scan_string(p);
	case 't':
		return scan_literal(p, "true");
	case 'f':
		return scan_literal(p, "false");
	case 'n':
		return scan_literal(p, "null");
	}
	if (ch == '-' || json_is_digit(ch))
		return scan_number(p);
	return JSON_NEAR;
}

/*
 * Checks that s is one JSON value and nothing else. On failure p->pos is
 * the offending byte (the end of the text for JSON_END). Iterative, so
 * that no input can exhaust the stack.
 */
static enum jerr json_scan(struct scan *p)
{
	enum { VALUE, AFTER, KEY } state = VALUE;
	unsigned char stack[JSON_MAX_DEPTH];
	size_t depth = 0;
	enum jerr rc;
	unsigned char ch, close;

	skip_ws(p);
	if (at_end(p))
		return JSON_EMPTY;
	for (;;) {
		skip_ws(p);
		if (state == AFTER && depth == 0)
			return at_end(p) ? JSON_OK : JSON_TRAILING;
		if (at_end(p))
			return JSON_END;
		ch = p->s[p->pos];
		switch (state) {
		case VALUE:
			if (ch != '{' && ch != '[') {
				rc = scan_scalar(p);
				if (rc)
					return rc;
				state = AFTER;
				break;
			}
			if (depth == JSON_MAX_DEPTH)
				return JSON_DEPTH;
			stack[depth++] = ch;
			p->pos++;
			skip_ws(p);
			if (at_end(p))
				return JSON_END;
			if (p->s[p->pos] == (ch == '{' ? '}' : ']')) {
				p->pos++;
				depth--;
				state = AFTER;
			} else {
				state = ch == '{' ? KEY : VALUE;
			}
			break;
		case AFTER:
			close = stack[depth - 1] == '{' ? '}' : ']';
			if (ch == ',') {
				p->pos++;
				state = close == '}' ? KEY : VALUE;
			} else if (ch == close) {
				p->pos++;
				depth--;
			} else {
				return JSON_NEAR;
			}
			break;
		case KEY:
			if (ch != '"')
				return JSON_NEAR;
			rc = scan_string(p);
			if (rc)
				return rc;
			skip_ws(p);
			if (at_end(p))
				return JSON_END;
			if (p->s[p->pos] != ':')
				return JSON_NEAR;
			p->pos++;
			state = VALUE;
			break;
		}
	}
}

/* "line L, column C: ..." with columns counted in characters. */
static int json_error(const struct scan *p, enum jerr rc, char *err,
		      size_t errlen)
{
	size_t pos = rc == JSON_END ? p->len : p->pos, line = 1, col = 1;
	size_t i, n;
	struct json_qstr q;
	char what[128];

	for (i = 0; i < pos && i < p->len; i++) {
		if (p->s[i] == '\n') {
			line++;
			col = 1;
		} else if ((p->s[i] & 0xc0) != 0x80) {
			col++;
		}
	}
	for (n = 0; pos + n < p->len && n < 16 && p->s[pos + n] != '\n'; n++)
		;
	json_quote_n(&q, (const char *)p->s + pos, n);
	switch (rc) {
	case JSON_END:
		snprintf(what, sizeof(what),
			 "invalid JSON: unexpected end of the document");
		break;
	case JSON_EMPTY:
		snprintf(what, sizeof(what),
			 "invalid JSON: the document is empty");
		break;
	case JSON_DEPTH:
		snprintf(what, sizeof(what),
			 "invalid JSON: nested deeper than %d levels",
			 JSON_MAX_DEPTH);
		break;
	case JSON_UTF8:
		snprintf(what, sizeof(what), "invalid UTF-8 near %s", q.s);
		break;
	case JSON_NUL:
		snprintf(what, sizeof(what),
			 "a string cannot contain \\u0000");
		break;
	case JSON_NUMBER:
		snprintf(what, sizeof(what),
			 "invalid JSON: a number longer than %d characters",
			 JSON_MAX_NUMBER);
		break;
	case JSON_TRAILING:
		snprintf(what, sizeof(what),
			 "invalid JSON: text after the document near %s", q.s);
		break;
	default:
		snprintf(what, sizeof(what), "invalid JSON near %s", q.s);
		break;
	}
	if (err && errlen)
		snprintf(err, errlen, "line %zu, column %zu: %s", line, col,
			 what);
	return VMIG_ECONFIG;
}

int json_check(const unsigned char *s, size_t len, char *err, size_t errlen)
{
	struct scan p = { .s = s, .len = len };
	enum jerr rc = json_scan(&p);

	return rc ? json_error(&p, rc, err, errlen) : 0;
}
