/*
 * config.c: the JSON configuration. It owns the syntax check, the parsing
 * into struct vmig_config (core/config.h), the validation of everything
 * that can be checked without a kernel, and the error messages, which
 * name the JSON path of the offending value and what was expected
 * (docs/config.md).
 *
 * The text is first checked against RFC 8259 by a scanner that allocates
 * nothing. That gives syntax errors an exact line and column, and it means
 * that cJSON failing on a text the scanner accepted can only be a failed
 * allocation, which cJSON does not tell apart from a syntax error.
 *
 * Every allocation, cJSON's and ours, goes through cJSON's hooks
 * (cJSON_malloc, cJSON_free): a program that installs cJSON_InitHooks
 * controls all of them, and the tests make each one fail in turn.
 */
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <limits.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cjson/cJSON.h>

#include "config.h"
#include "core/kuapi.h"

#define PAGE_4K 4096u
/* Doubles hold every integer below 2^53 exactly, and no wider range. */
#define EXACT_LIMIT 9007199254740992.0
#define EXACT_MAX 9007199254740991LL
/* Deeper than any valid configuration, and far below cJSON's own limit. */
#define JSON_MAX_DEPTH 64
/* cJSON reads at most 63 characters of a number. */
#define JSON_MAX_NUMBER 63
/* A configuration is a few kilobytes; refuse to read a disk image. */
#define CONFIG_MAX_FILE (16u << 20)

_Static_assert(JSON_MAX_DEPTH < CJSON_NESTING_LIMIT,
	       "the scanner must refuse what cJSON would refuse");

/* ------------------------------------------------------------------ */
/* Allocation                                                          */

static void *zalloc(size_t n, size_t size)
{
	void *p;

	if (size && n > SIZE_MAX / size)
		return NULL;
	p = cJSON_malloc(n * size);
	if (p)
		memset(p, 0, n * size);
	return p;
}

static void xfree(void *p)
{
	if (p)
		cJSON_free(p);
}

static char *sdup(const char *s)
{
	size_t n = strlen(s) + 1;
	char *d = cJSON_malloc(n);

	if (d)
		memcpy(d, s, n);
	return d;
}

/* ------------------------------------------------------------------ */
/* Messages                                                            */

struct key_ent;
struct span;

struct ctx {
	char *err;
	size_t errlen;
	const char *base_dir; /* NULL or "": relative paths stay as written */
	char path[256];       /* the JSON path of the value being read */
	size_t plen;
	/*
	 * Sorted indexes built on the way, so that every cross reference
	 * is a binary search and no document takes quadratic time: regions
	 * by address, mappings by space and IOVA, device names, and the
	 * labels of the address spaces the devices use.
	 */
	struct span *regions;
	size_t nr_regions;
	struct span *maps;
	size_t nr_maps;
	struct key_ent *names;
	size_t nr_names;
	struct key_ent *labels;
	size_t nr_labels;
};

/* A quoted, escaped and shortened copy of a string, for messages. */
struct qstr {
	char s[72];
};

#define QUOTE_SHOWN 48

static size_t utf8_len(const unsigned char *s, size_t n);

/*
 * Quotes n bytes of s. Valid UTF-8 is kept (the scanner has checked
 * every string of the document), anything else is written as \xNN, so
 * that a message never carries a control character or a broken sequence.
 */
static const char *quote_n(struct qstr *q, const char *str, size_t n)
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

static const char *quote(struct qstr *q, const char *s)
{
	return quote_n(q, s, strlen(s));
}

static int fail(struct ctx *c, const char *fmt, ...)
	__attribute__((format(printf, 2, 3)));

/* Writes "<path>: <what>" and returns VMIG_ECONFIG. */
static int fail(struct ctx *c, const char *fmt, ...)
{
	va_list ap;
	int n;

	if (!c->err || !c->errlen)
		return VMIG_ECONFIG;
	n = snprintf(c->err, c->errlen, "%s: ", c->plen ? c->path : "(root)");
	if (n >= 0 && (size_t)n < c->errlen) {
		va_start(ap, fmt);
		vsnprintf(c->err + n, c->errlen - (size_t)n, fmt, ap);
		va_end(ap);
	}
	return VMIG_ECONFIG;
}

static int nomem(struct ctx *c)
{
	if (c->err && c->errlen)
		snprintf(c->err, c->errlen, "out of memory");
	return -ENOMEM;
}

static void path_advance(struct ctx *c, int n)
{
	if (n < 0)
		return;
	c->plen += (size_t)n;
	if (c->plen >= sizeof(c->path))
		c->plen = sizeof(c->path) - 1;
}

/* Pushes ".key" onto the path; returns what pop() restores. */
static size_t push_key(struct ctx *c, const char *key)
{
	size_t old = c->plen;

	path_advance(c, snprintf(c->path + c->plen, sizeof(c->path) - c->plen,
				 "%s%s", c->plen ? "." : "", key));
	return old;
}

static size_t push_index(struct ctx *c, size_t i)
{
	size_t old = c->plen;

	path_advance(c, snprintf(c->path + c->plen, sizeof(c->path) - c->plen,
				 "[%zu]", i));
	return old;
}

static void pop(struct ctx *c, size_t old)
{
	c->plen = old;
	c->path[old] = '\0';
}

static int missing(struct ctx *c, const char *key)
{
	return fail(c, "missing key \"%s\"", key);
}

/* ------------------------------------------------------------------ */
/* The syntax check                                                    */

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

static bool is_digit(unsigned char c)
{
	return c >= '0' && c <= '9';
}

static int hex_digit(unsigned char c)
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
		d = hex_digit(p->s[p->pos]);
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
	} else if (is_digit(p->s[p->pos])) {
		while (!at_end(p) && is_digit(p->s[p->pos]))
			p->pos++;
	} else {
		return JSON_NEAR;
	}
	if (!at_end(p) && p->s[p->pos] == '.') {
		p->pos++;
		if (at_end(p))
			return JSON_END;
		if (!is_digit(p->s[p->pos]))
			return JSON_NEAR;
		while (!at_end(p) && is_digit(p->s[p->pos]))
			p->pos++;
	}
	if (!at_end(p) && (p->s[p->pos] == 'e' || p->s[p->pos] == 'E')) {
		p->pos++;
		if (!at_end(p) && (p->s[p->pos] == '+' || p->s[p->pos] == '-'))
			p->pos++;
		if (at_end(p))
			return JSON_END;
		if (!is_digit(p->s[p->pos]))
			return JSON_NEAR;
		while (!at_end(p) && is_digit(p->s[p->pos]))
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
	if (ch == '-' || is_digit(ch))
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
static int json_error(struct ctx *c, const struct scan *p, enum jerr rc)
{
	size_t pos = rc == JSON_END ? p->len : p->pos, line = 1, col = 1;
	size_t i, n;
	struct qstr q;
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
	quote_n(&q, (const char *)p->s + pos, n);
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
	if (c->err && c->errlen)
		snprintf(c->err, c->errlen, "line %zu, column %zu: %s", line,
			 col, what);
	return VMIG_ECONFIG;
}

/* ------------------------------------------------------------------ */
/* Reading values                                                      */

static const cJSON *item(const cJSON *obj, const char *key)
{
	return cJSON_GetObjectItemCaseSensitive(obj, key);
}

static size_t count(const cJSON *arr)
{
	const cJSON *e;
	size_t n = 0;

	cJSON_ArrayForEach(e, arr)
		n++;
	return n;
}

static bool key_in(const char *const *keys, const char *key)
{
	for (; *keys; keys++)
		if (!strcmp(*keys, key))
			return true;
	return false;
}

/*
 * Checks that obj is an object of known keys, each given once (cJSON
 * keeps duplicates and would silently read the first). The loop is
 * bounded by the number of known keys: past it, a key must be unknown or
 * repeated.
 */
static int check_object(struct ctx *c, const cJSON *obj,
			const char *const *keys)
{
	const cJSON *it, *prev;
	struct qstr q;

	if (!cJSON_IsObject(obj))
		return fail(c, "expected an object");
	cJSON_ArrayForEach(it, obj) {
		const char *key = it->string ? it->string : "";

		if (!key_in(keys, key))
			return fail(c, "unknown key %s", quote(&q, key));
		for (prev = obj->child; prev != it; prev = prev->next)
			if (prev->string && !strcmp(prev->string, key))
				return fail(c, "duplicate key %s",
					    quote(&q, key));
	}
	return 0;
}

static int fail_key(struct ctx *c, const char *key, const char *fmt, ...)
	__attribute__((format(printf, 3, 4)));

/* Like fail(), for the value of obj[key] while the path names obj. */
static int fail_key(struct ctx *c, const char *key, const char *fmt, ...)
{
	char what[200];
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(what, sizeof(what), fmt, ap);
	va_end(ap);
	push_key(c, key);
	return fail(c, "%s", what);
}

/* A JSON number that is an integer in [min, max] (both below 2^53). */
static bool json_int(const cJSON *v, int64_t min, int64_t max, int64_t *out)
{
	double d;

	if (!cJSON_IsNumber(v))
		return false;
	d = v->valuedouble;
	if (!(d >= (double)min && d <= (double)max))
		return false;
	if (d != (double)(int64_t)d)
		return false;
	*out = (int64_t)d;
	return true;
}

/* Reads obj[key] if present: an integer in [min, max]. */
static int get_int(struct ctx *c, const cJSON *obj, const char *key,
		   int64_t min, int64_t max, const char *what, int64_t *out)
{
	const cJSON *v = item(obj, key);

	if (!v)
		return 0;
	if (json_int(v, min, max, out))
		return 0;
	if (what)
		return fail_key(c, key, "expected %s", what);
	return fail_key(c, key, "expected an integer from %" PRId64 " to %"
			PRId64, min, max);
}

static int get_bool(struct ctx *c, const cJSON *obj, const char *key,
		    bool *out)
{
	const cJSON *v = item(obj, key);

	if (!v)
		return 0;
	if (!cJSON_IsBool(v))
		return fail_key(c, key, "expected true or false");
	*out = cJSON_IsTrue(v);
	return 0;
}

/* Reads obj[key] if present: one of names, as its index. */
static int get_enum(struct ctx *c, const cJSON *obj, const char *key,
		    const char *const *names, int *out)
{
	const cJSON *v = item(obj, key);
	char what[160];
	size_t o = 0;
	int i;

	if (!v)
		return 0;
	for (i = 0; cJSON_IsString(v) && names[i]; i++) {
		if (!strcmp(v->valuestring, names[i])) {
			*out = i;
			return 0;
		}
	}
	what[0] = '\0';
	for (i = 0; names[i]; i++) {
		int n = snprintf(what + o, sizeof(what) - o, "%s\"%s\"",
				 i ? ", " : "", names[i]);

		if (n < 0 || (size_t)n >= sizeof(what) - o)
			break;
		o += (size_t)n;
	}
	return fail_key(c, key, "expected one of %s", what);
}

/* Reads obj[key] if present: a non-empty string, copied. */
static int get_string(struct ctx *c, const cJSON *obj, const char *key,
		      char **out)
{
	const cJSON *v = item(obj, key);

	if (!v)
		return 0;
	if (!cJSON_IsString(v) || !v->valuestring[0])
		return fail_key(c, key, "expected a non-empty string");
	*out = sdup(v->valuestring);
	return *out ? 0 : nomem(c);
}

/* Copies a path, resolving a relative one against the base directory. */
static int resolve(struct ctx *c, const char *p, char **out)
{
	size_t blen, plen;
	bool slash;

	if (p[0] == '/' || !c->base_dir || !c->base_dir[0]) {
		*out = sdup(p);
		return *out ? 0 : nomem(c);
	}
	blen = strlen(c->base_dir);
	plen = strlen(p);
	slash = c->base_dir[blen - 1] != '/';
	*out = cJSON_malloc(blen + slash + plen + 1);
	if (!*out)
		return nomem(c);
	memcpy(*out, c->base_dir, blen);
	if (slash)
		(*out)[blen] = '/';
	memcpy(*out + blen + slash, p, plen + 1);
	return 0;
}

enum u64_result { U64_OK, U64_BAD, U64_IMPRECISE, U64_OVERFLOW };

/*
 * Parses "0x<hex>" or "<decimal>[K|M|G|T|KiB|MiB|GiB|TiB]" (powers of
 * 1024) into the full 64-bit range.
 */
static enum u64_result u64_text(const char *s, uint64_t *out)
{
	static const char *const suffixes[][2] = {
		{ "K", "KiB" }, { "M", "MiB" }, { "G", "GiB" }, { "T", "TiB" },
	};
	uint64_t v = 0;
	unsigned int shift = 0, i;
	int d;

	if (s[0] == '0' && (s[1] == 'x' || s[1] == 'X')) {
		s += 2;
		if (!*s)
			return U64_BAD;
		for (; *s; s++) {
			d = hex_digit((unsigned char)*s);
			if (d < 0)
				return U64_BAD;
			if (v >> 60)
				return U64_OVERFLOW;
			v = v << 4 | (uint64_t)d;
		}
		*out = v;
		return U64_OK;
	}
	if (!is_digit((unsigned char)*s))
		return U64_BAD;
	for (; is_digit((unsigned char)*s); s++) {
		d = *s - '0';
		if (v > (UINT64_MAX - (uint64_t)d) / 10)
			return U64_OVERFLOW;
		v = v * 10 + (uint64_t)d;
	}
	if (*s) {
		for (i = 0; i < 4; i++)
			if (!strcmp(s, suffixes[i][0]) ||
			    !strcmp(s, suffixes[i][1]))
				break;
		if (i == 4)
			return U64_BAD;
		shift = 10 * (i + 1);
		if (v > UINT64_MAX >> shift)
			return U64_OVERFLOW;
	}
	*out = v << shift;
	return U64_OK;
}

static enum u64_result u64_value(const cJSON *v, uint64_t *out)
{
	double d;

	if (cJSON_IsString(v))
		return u64_text(v->valuestring, out);
	if (!cJSON_IsNumber(v))
		return U64_BAD;
	d = v->valuedouble;
	if (!(d >= 0))
		return U64_BAD;
	/* Every double from 2^53 up is an integer, but maybe not the one
	 * that was written. */
	if (d >= EXACT_LIMIT)
		return U64_IMPRECISE;
	if (d != (double)(uint64_t)d)
		return U64_BAD;
	*out = (uint64_t)d;
	return U64_OK;
}

enum u64_kind { U_SIZE, U_ADDRESS, U_BANDWIDTH, U_INTEGER };

static const char *const u64_expected[] = {
	[U_SIZE] = "a size (a positive integer, or a string like \"512M\")",
	[U_ADDRESS] = "an address (a non-negative integer, or a string like "
		      "\"0x100000000\")",
	[U_BANDWIDTH] = "a size per second (0 for none, a positive integer, "
			"or a string like \"1G\")",
	[U_INTEGER] = "a non-negative integer, or a string like \"0x5eed\"",
};

/* Reads obj[key] if present: a size, an address, or a 64-bit integer. */
static int get_u64(struct ctx *c, const cJSON *obj, const char *key,
		   enum u64_kind kind, uint64_t *out)
{
	const cJSON *v = item(obj, key);
	uint64_t x = 0;
	struct qstr q;

	if (!v)
		return 0;
	switch (u64_value(v, &x)) {
	case U64_OK:
		if (x == 0 && kind == U_SIZE)
			break;
		*out = x;
		return 0;
	case U64_IMPRECISE:
		return fail_key(c, key, "numbers from 2^53 up are imprecise "
				"in JSON; write it as a string");
	case U64_OVERFLOW:
		return fail_key(c, key, "%s is larger than 2^64-1",
				quote(&q, v->valuestring));
	case U64_BAD:
		break;
	}
	return fail_key(c, key, "expected %s", u64_expected[kind]);
}

static int get_aligned(struct ctx *c, const cJSON *obj, const char *key,
		       enum u64_kind kind, uint64_t *out)
{
	int rc = get_u64(c, obj, key, kind, out);

	if (rc)
		return rc;
	if (*out % PAGE_4K)
		return fail_key(c, key, "0x%" PRIx64 " is not a multiple of "
				"4 KiB", *out);
	return 0;
}

/* [first, last] of a range that must end at or below 2^64. */
static int range_last(struct ctx *c, uint64_t start, uint64_t size,
		      uint64_t *last)
{
	if (size - 1 > UINT64_MAX - start)
		return fail(c, "the range 0x%" PRIx64 " + 0x%" PRIx64
			    " goes past the end of the 64-bit space",
			    start, size);
	*last = start + (size - 1);
	return 0;
}

/* ------------------------------------------------------------------ */
/* Uniqueness and overlaps                                             */

struct key_ent {
	const char *str; /* compared first when not NULL */
	uint64_t num;
	size_t idx;
};

static int key_cmp(const void *a, const void *b)
{
	const struct key_ent *x = a, *y = b;
	int r = x->str && y->str ? strcmp(x->str, y->str) : 0;

	if (r)
		return r;
	if (x->num != y->num)
		return x->num < y->num ? -1 : 1;
	return x->idx < y->idx ? -1 : x->idx > y->idx;
}

static bool same_key(const struct key_ent *a, const struct key_ent *b)
{
	if (a->str && b->str && strcmp(a->str, b->str))
		return false;
	return a->num == b->num;
}

/*
 * Finds the first entry, in document order, whose key an earlier entry
 * has. Returns true with *dup that entry's index and *first the earliest
 * entry of the same key. Sorts v.
 */
static bool find_dup(struct key_ent *v, size_t n, size_t *first, size_t *dup)
{
	bool found = false;
	size_t i, j;

	qsort(v, n, sizeof(*v), key_cmp);
	/* Sorted by key then index: a run's first two entries are the
	 * earliest use of the key and the earliest repeat. */
	for (i = 0; i < n; i = j) {
		for (j = i + 1; j < n && same_key(&v[i], &v[j]); j++)
			;
		if (j > i + 1 && (!found || v[i + 1].idx < *dup)) {
			*first = v[i].idx;
			*dup = v[i + 1].idx;
			found = true;
		}
	}
	return found;
}

struct span {
	const char *space;
	uint64_t first, last;
	size_t idx;
};

static int span_cmp(const void *a, const void *b)
{
	const struct span *x = a, *y = b;
	int r = x->space && y->space ? strcmp(x->space, y->space) : 0;

	if (r)
		return r;
	if (x->first != y->first)
		return x->first < y->first ? -1 : 1;
	return x->idx < y->idx ? -1 : x->idx > y->idx;
}

static bool same_space(const struct span *a, const struct span *b)
{
	return !a->space || !b->space || !strcmp(a->space, b->space);
}

/*
 * Finds two spans of one space that overlap: *a is the one written first
 * in the document. Sorts v.
 */
static bool find_overlap(struct span *v, size_t n, struct span *a,
			 struct span *b)
{
	const struct span *holder = NULL;
	size_t i;

	qsort(v, n, sizeof(*v), span_cmp);
	for (i = 0; i < n; i++) {
		if (holder && same_space(holder, &v[i]) &&
		    v[i].first <= holder->last) {
			*a = holder->idx < v[i].idx ? *holder : v[i];
			*b = holder->idx < v[i].idx ? v[i] : *holder;
			return true;
		}
		if (!holder || !same_space(holder, &v[i]) ||
		    v[i].last > holder->last)
			holder = &v[i];
	}
	return false;
}

/*
 * Returns the index of the span of `space` that holds addr, in v sorted
 * by span_cmp with no two spans of one space overlapping; SIZE_MAX if
 * there is none.
 */
static size_t span_find(const struct span *v, size_t n, const char *space,
			uint64_t addr)
{
	struct span key = { .space = space, .first = addr, .idx = SIZE_MAX };
	size_t lo = 0, hi = n, mid;

	/* Finds the last span that sorts at or before (space, addr). */
	while (lo < hi) {
		mid = lo + (hi - lo) / 2;
		if (span_cmp(&v[mid], &key) <= 0)
			lo = mid + 1;
		else
			hi = mid;
	}
	if (!lo || !same_space(&v[lo - 1], &key) || addr > v[lo - 1].last)
		return SIZE_MAX;
	return lo - 1;
}

/* Tells whether spans of `space` cover [first, last] without a hole. */
static bool span_covers(const struct span *v, size_t n, const char *space,
			uint64_t first, uint64_t last)
{
	size_t i = span_find(v, n, space, first);

	if (i == SIZE_MAX)
		return false;
	for (; v[i].last < last; i++)
		if (i + 1 >= n || !same_space(&v[i], &v[i + 1]) ||
		    v[i + 1].first != v[i].last + 1)
			return false;
	return true;
}

/* Finds a device by name in the sorted index; SIZE_MAX if none. */
static size_t device_find(const struct ctx *c, const char *name)
{
	size_t lo = 0, hi = c->nr_names, mid;
	int r;

	while (lo < hi) {
		mid = lo + (hi - lo) / 2;
		r = strcmp(c->names[mid].str, name);
		if (!r)
			return c->names[mid].idx;
		if (r < 0)
			lo = mid + 1;
		else
			hi = mid;
	}
	return SIZE_MAX;
}

#define LABEL_CONTAINER 1u
#define LABEL_IOAS 2u

/* Indexes the container and IOAS labels the devices use, once each. */
static int index_labels(struct ctx *c, const struct vmig_config *cfg)
{
	const struct vmig_cfg_device *d;
	size_t n = 0, i, j, k = 0;
	struct key_ent *l;

	for (i = 0; i < cfg->nr_devices; i++)
		n += 1 + cfg->devices[i].nr_pasids;
	if (!n)
		return 0;
	l = c->labels = zalloc(n, sizeof(*l));
	if (!l)
		return nomem(c);
	for (i = 0; i < cfg->nr_devices; i++) {
		d = &cfg->devices[i];
		if (d->iommu == VMIG_CFG_IOMMU_TYPE1) {
			l[k].str = d->container;
			l[k++].num = LABEL_CONTAINER;
			continue;
		}
		l[k].str = d->ioas;
		l[k++].num = LABEL_IOAS;
		for (j = 0; j < d->nr_pasids; j++) {
			l[k].str = d->pasids[j].ioas;
			l[k++].num = LABEL_IOAS;
		}
	}
	qsort(l, k, sizeof(*l), key_cmp);
	for (i = 0, n = k, k = 0; i < n; i++)
		if (!k || !same_key(&l[k - 1], &l[i]))
			l[k++] = l[i];
	c->nr_labels = k;
	return 0;
}

/* The LABEL_* kinds of the address spaces called label. */
static unsigned int label_kinds(const struct ctx *c, const char *label)
{
	size_t lo = 0, hi = c->nr_labels, mid;
	unsigned int kinds = 0;

	while (lo < hi) {
		mid = lo + (hi - lo) / 2;
		if (strcmp(c->labels[mid].str, label) < 0)
			lo = mid + 1;
		else
			hi = mid;
	}
	for (; lo < c->nr_labels && !strcmp(c->labels[lo].str, label); lo++)
		kinds |= (unsigned int)c->labels[lo].num;
	return kinds;
}

/* ------------------------------------------------------------------ */
/* Top-level scalars, plugins, preference, policies, run               */

static bool plugin_name_ok(const char *s)
{
	if (!*s)
		return false;
	for (; *s; s++)
		if (!((*s >= 'a' && *s <= 'z') || is_digit((unsigned char)*s) ||
		      *s == '.' || *s == '_' || *s == '-'))
			return false;
	return true;
}

static int parse_transport(struct ctx *c, const cJSON *root,
			   struct vmig_config *cfg)
{
	const cJSON *v = item(root, "transport");
	const char *t, *host, *colon, *port;
	size_t hlen;
	long n = 0;

	if (!v)
		return 0;
	if (!cJSON_IsString(v))
		goto bad;
	t = v->valuestring;
	if (!strncmp(t, "unix:", 5) && t[5])
		goto ok;
	if (strncmp(t, "tcp:", 4))
		goto bad;
	host = t + 4;
	colon = strrchr(host, ':');
	if (!colon || colon == host)
		goto bad;
	hlen = (size_t)(colon - host);
	if (host[0] == '[') {
		/* An IPv6 address: "tcp:[::1]:4444". */
		if (hlen < 3 || host[hlen - 1] != ']' ||
		    memchr(host + 1, '[', hlen - 1) ||
		    memchr(host + 1, ']', hlen - 2))
			goto bad;
	} else if (memchr(host, ':', hlen) || memchr(host, '[', hlen) ||
		   memchr(host, ']', hlen)) {
		goto bad;
	}
	port = colon + 1;
	if (!*port || strlen(port) > 5)
		goto bad_port;
	for (; *port; port++) {
		if (!is_digit((unsigned char)*port))
			goto bad_port;
		n = n * 10 + (*port - '0');
	}
	/* A destination may ask for any free port (0). */
	if (n < (cfg->role == VMIG_ROLE_DESTINATION ? 0 : 1) || n > 65535)
		goto bad_port;
ok:
	cfg->transport = sdup(t);
	return cfg->transport ? 0 : nomem(c);
bad_port:
	if (cfg->role == VMIG_ROLE_DESTINATION)
		return fail_key(c, "transport", "expected a port from 0 (any "
				"free port) to 65535 after the last ':'");
	return fail_key(c, "transport", "expected a port from 1 to 65535 "
			"after the last ':'");
bad:
	return fail_key(c, "transport", "expected \"unix:<path>\" or "
			"\"tcp:<host>:<port>\"");
}

/*
 * Reads an array of strings into a vector. With names_only, each must be
 * a plugin name; otherwise a string with a '/' is a path, resolved.
 */
enum strv_kind { STRV_DIRS, STRV_PLUGINS, STRV_NAMES };

static int parse_strv(struct ctx *c, const cJSON *arr, enum strv_kind kind,
		      char ***out, size_t *nr)
{
	const cJSON *e;
	size_t i = 0, n;
	struct qstr q;
	int rc;

	if (!cJSON_IsArray(arr))
		return fail(c, "expected an array");
	n = count(arr);
	if (!n)
		return 0;
	*out = zalloc(n, sizeof(**out));
	if (!*out)
		return nomem(c);
	*nr = n;
	cJSON_ArrayForEach(e, arr) {
		size_t m = push_index(c, i);
		const char *s;

		if (!cJSON_IsString(e) || !e->valuestring[0])
			return fail(c, "expected a non-empty string");
		s = e->valuestring;
		if (kind == STRV_NAMES && !plugin_name_ok(s))
			return fail(c, "%s is not a plugin name ([a-z0-9._-]+)",
				    quote(&q, s));
		if (kind == STRV_PLUGINS && !strchr(s, '/') &&
		    !plugin_name_ok(s))
			return fail(c, "%s is neither a plugin name "
				    "([a-z0-9._-]+) nor a path (with a '/')",
				    quote(&q, s));
		if (kind == STRV_DIRS || (kind == STRV_PLUGINS &&
					  strchr(s, '/'))) {
			rc = resolve(c, s, &(*out)[i]);
			if (rc)
				return rc;
		} else {
			(*out)[i] = sdup(s);
			if (!(*out)[i])
				return nomem(c);
		}
		pop(c, m);
		i++;
	}
	return 0;
}

static const char *const plugins_keys[] = { "paths", "load", NULL };

static int parse_plugins(struct ctx *c, const cJSON *root,
			 struct vmig_config *cfg)
{
	const cJSON *obj = item(root, "plugins"), *v;
	size_t m, m2;
	int rc;

	if (!obj)
		return 0;
	m = push_key(c, "plugins");
	rc = check_object(c, obj, plugins_keys);
	if (rc)
		return rc;
	v = item(obj, "paths");
	if (v) {
		m2 = push_key(c, "paths");
		rc = parse_strv(c, v, STRV_DIRS, &cfg->plugin_paths,
				&cfg->nr_plugin_paths);
		if (rc)
			return rc;
		pop(c, m2);
	}
	v = item(obj, "load");
	if (v) {
		m2 = push_key(c, "load");
		rc = parse_strv(c, v, STRV_PLUGINS, &cfg->plugins,
				&cfg->nr_plugins);
		if (rc)
			return rc;
		cfg->plugins_given = true;
		pop(c, m2);
	}
	pop(c, m);
	return 0;
}

static int parse_preference(struct ctx *c, const cJSON *root,
			    struct vmig_config *cfg)
{
	const cJSON *v = item(root, "preference");
	struct key_ent *keys;
	size_t m, i, first, dup;
	struct qstr q;
	int rc;

	if (!v)
		return 0;
	m = push_key(c, "preference");
	rc = parse_strv(c, v, STRV_NAMES, &cfg->preference,
			&cfg->nr_preference);
	if (rc || cfg->nr_preference < 2)
		return rc;
	keys = zalloc(cfg->nr_preference, sizeof(*keys));
	if (!keys)
		return nomem(c);
	for (i = 0; i < cfg->nr_preference; i++) {
		keys[i].str = cfg->preference[i];
		keys[i].idx = i;
	}
	if (find_dup(keys, cfg->nr_preference, &first, &dup)) {
		xfree(keys);
		push_index(c, dup);
		return fail(c, "%s is already listed at preference[%zu]",
			    quote(&q, cfg->preference[dup]), first);
	}
	xfree(keys);
	pop(c, m);
	return 0;
}

static const char *const policies_keys[] = {
	"hotplug", "downtime_limit_ms", "bandwidth_limit", "max_iterations",
	"timeout_ms", "timeout_strategy", "tracking", "switchover_timeout_ms",
	NULL,
};
static const char *const hotplug_names[] = {
	"track", "degrade", "reject", NULL,
};
static const char *const timeout_names[] = { "cancel", "force", NULL };
static const char *const tracking_names[] = {
	"mixed", "all-or-nothing", NULL,
};

static int parse_policies(struct ctx *c, const cJSON *root,
			  struct vmig_config *cfg)
{
	struct vmig_cfg_policies *p = &cfg->policies;
	const cJSON *obj = item(root, "policies");
	int hotplug = VMIG_HOTPLUG_POLICY_TRACK, strategy = VMIG_TIMEOUT_STRATEGY_CANCEL;
	int tracking = VMIG_TRACKING_POLICY_MIXED;
	int64_t downtime = 300, iters = 30, timeout = 0;
	int64_t switchover = VMIG_DEFAULT_SWITCHOVER_TIMEOUT_MS;
	size_t m;
	int rc;

	p->bandwidth_limit = 0;
	if (obj) {
		m = push_key(c, "policies");
		rc = check_object(c, obj, policies_keys);
		rc = rc ? rc : get_enum(c, obj, "hotplug", hotplug_names,
					&hotplug);
		rc = rc ? rc : get_int(c, obj, "downtime_limit_ms", 1,
				       EXACT_MAX, "a positive integer "
				       "(milliseconds, below 2^53)",
				       &downtime);
		rc = rc ? rc : get_u64(c, obj, "bandwidth_limit", U_BANDWIDTH,
				       &p->bandwidth_limit);
		rc = rc ? rc : get_int(c, obj, "max_iterations", 1, 100000,
				       NULL, &iters);
		rc = rc ? rc : get_int(c, obj, "timeout_ms", 0, EXACT_MAX,
				       "a non-negative integer (milliseconds, "
				       "below 2^53)", &timeout);
		rc = rc ? rc : get_enum(c, obj, "timeout_strategy",
					timeout_names, &strategy);
		rc = rc ? rc : get_enum(c, obj, "tracking", tracking_names,
					&tracking);
		rc = rc ? rc : get_int(c, obj, "switchover_timeout_ms", 1,
				       EXACT_MAX, "a positive integer "
				       "(milliseconds, below 2^53)",
				       &switchover);
		if (rc)
			return rc;
		pop(c, m);
	}
	p->hotplug = (enum vmig_hotplug_policy)hotplug;
	p->downtime_limit_ms = (uint64_t)downtime;
	p->max_iterations = (uint32_t)iters;
	p->timeout_ms = (uint64_t)timeout;
	p->switchover_timeout_ms = (uint64_t)switchover;
	p->timeout_strategy = (enum vmig_timeout_strategy)strategy;
	p->tracking = (enum vmig_tracking_policy)tracking;
	return 0;
}

static const char *const run_keys[] = { "mode", "iterations", NULL };
static const char *const run_modes[] = { "migrate", "track", NULL };

static int parse_run(struct ctx *c, const cJSON *root,
		     struct vmig_config *cfg)
{
	const cJSON *obj = item(root, "run");
	int64_t iters = 5;
	int mode = 0;
	size_t m;
	int rc;

	if (obj) {
		m = push_key(c, "run");
		rc = check_object(c, obj, run_keys);
		rc = rc ? rc : get_enum(c, obj, "mode", run_modes, &mode);
		rc = rc ? rc : get_int(c, obj, "iterations", 1, 100000, NULL,
				       &iters);
		if (rc)
			return rc;
		pop(c, m);
	}
	cfg->run.track_only = mode == 1;
	cfg->run.iterations = (uint32_t)iters;
	return 0;
}

/* ------------------------------------------------------------------ */
/* Memory                                                              */

static const char *const region_keys[] = { "name", "gpa", "size", "fill",
					    NULL };
static const char *const fill_names[] = { "zero", "random", NULL };

static int parse_region(struct ctx *c, const cJSON *obj, size_t idx,
			struct vmig_cfg_region *r)
{
	int fill = VMIG_CFG_FILL_ZERO;
	uint64_t last;
	char name[32];
	int rc;

	rc = check_object(c, obj, region_keys);
	if (rc)
		return rc;
	if (!item(obj, "gpa"))
		return missing(c, "gpa");
	if (!item(obj, "size"))
		return missing(c, "size");
	rc = get_string(c, obj, "name", &r->name);
	rc = rc ? rc : get_aligned(c, obj, "gpa", U_ADDRESS, &r->gpa);
	rc = rc ? rc : get_aligned(c, obj, "size", U_SIZE, &r->size);
	rc = rc ? rc : range_last(c, r->gpa, r->size, &last);
	rc = rc ? rc : get_enum(c, obj, "fill", fill_names, &fill);
	if (rc)
		return rc;
	r->fill = (enum vmig_cfg_fill)fill;
	if (!r->name) {
		snprintf(name, sizeof(name), "ram%zu", idx);
		r->name = sdup(name);
		if (!r->name)
			return nomem(c);
	}
	return 0;
}

static int check_regions(struct ctx *c, const struct vmig_config *cfg)
{
	size_t n = cfg->nr_regions, i, first, dup;
	struct span *spans, a, b;
	struct key_ent *keys;
	struct qstr q;
	bool found;

	keys = zalloc(n, sizeof(*keys));
	if (!keys)
		return nomem(c);
	for (i = 0; i < n; i++) {
		keys[i].str = cfg->regions[i].name;
		keys[i].idx = i;
	}
	found = find_dup(keys, n, &first, &dup);
	xfree(keys);
	if (found) {
		push_index(c, dup);
		return fail_key(c, "name", "%s is already used by memory[%zu]",
				quote(&q, cfg->regions[dup].name), first);
	}
	spans = c->regions = zalloc(n, sizeof(*spans));
	if (!spans)
		return nomem(c);
	c->nr_regions = n;
	for (i = 0; i < n; i++) {
		spans[i].first = cfg->regions[i].gpa;
		spans[i].last = cfg->regions[i].gpa + cfg->regions[i].size - 1;
		spans[i].idx = i;
	}
	if (find_overlap(spans, n, &a, &b)) {
		push_index(c, b.idx);
		return fail(c, "0x%" PRIx64 "-0x%" PRIx64 " overlaps "
			    "memory[%zu] 0x%" PRIx64 "-0x%" PRIx64, b.first,
			    b.last, a.idx, a.first, a.last);
	}
	return 0;
}

static int parse_memory(struct ctx *c, const cJSON *root,
			struct vmig_config *cfg)
{
	const cJSON *arr = item(root, "memory"), *e;
	size_t m, i = 0, n;
	int rc;

	if (!arr)
		return missing(c, "memory");
	m = push_key(c, "memory");
	if (!cJSON_IsArray(arr))
		return fail(c, "expected an array");
	n = count(arr);
	if (!n)
		return fail(c, "expected at least one region");
	cfg->regions = zalloc(n, sizeof(*cfg->regions));
	if (!cfg->regions)
		return nomem(c);
	cfg->nr_regions = n;
	cJSON_ArrayForEach(e, arr) {
		size_t mi = push_index(c, i);

		rc = parse_region(c, e, i, &cfg->regions[i]);
		if (rc)
			return rc;
		pop(c, mi);
		i++;
	}
	rc = check_regions(c, cfg);
	if (rc)
		return rc;
	pop(c, m);
	return 0;
}

/* ------------------------------------------------------------------ */
/* Devices                                                             */

static const char *const device_keys[] = {
	"name", "kind", "address", "iommu", "group", "container", "cdev",
	"ioas", "pasids", NULL,
};
static const char *const kind_names[] = { "vfio-pci", "mdev", NULL };
static const char *const iommu_names[] = { "type1", "iommufd", NULL };
static const char *const type1_only[] = { "group", "container", NULL };
static const char *const iommufd_only[] = { "cdev", "ioas", "pasids", NULL };
static const char *const pasid_keys[] = { "pasid", "ioas", NULL };

static int parse_pasids(struct ctx *c, const cJSON *arr,
			struct vmig_cfg_device *d)
{
	size_t i = 0, n, m, base, first, dup;
	struct key_ent *keys;
	const cJSON *e;
	int64_t pasid = 0;
	bool found;
	int rc;

	m = push_key(c, "pasids");
	base = c->plen;
	if (!cJSON_IsArray(arr))
		return fail(c, "expected an array");
	n = count(arr);
	if (!n) {
		pop(c, m);
		return 0;
	}
	d->pasids = zalloc(n, sizeof(*d->pasids));
	if (!d->pasids)
		return nomem(c);
	d->nr_pasids = n;
	cJSON_ArrayForEach(e, arr) {
		size_t mi = push_index(c, i);

		rc = check_object(c, e, pasid_keys);
		if (rc)
			return rc;
		if (!item(e, "pasid"))
			return missing(c, "pasid");
		if (!item(e, "ioas"))
			return missing(c, "ioas");
		rc = get_int(c, e, "pasid", 1, 0xfffff,
			     "an integer from 1 to 1048575 (0xfffff)", &pasid);
		rc = rc ? rc : get_string(c, e, "ioas", &d->pasids[i].ioas);
		if (rc)
			return rc;
		d->pasids[i].pasid = (uint32_t)pasid;
		pop(c, mi);
		i++;
	}
	keys = zalloc(n, sizeof(*keys));
	if (!keys)
		return nomem(c);
	for (i = 0; i < n; i++) {
		keys[i].num = d->pasids[i].pasid;
		keys[i].idx = i;
	}
	found = find_dup(keys, n, &first, &dup);
	xfree(keys);
	if (found) {
		push_index(c, dup);
		return fail_key(c, "pasid", "%u is already used by %.*s[%zu]",
				d->pasids[dup].pasid, (int)base, c->path,
				first);
	}
	pop(c, m);
	return 0;
}

static int parse_device(struct ctx *c, const cJSON *obj,
			struct vmig_cfg_device *d)
{
	const char *const *foreign;
	int kind = 0, iommu = 0, rc;
	int64_t group = -1;
	const cJSON *v;

	rc = check_object(c, obj, device_keys);
	if (rc)
		return rc;
	if (!item(obj, "name"))
		return missing(c, "name");
	if (!item(obj, "kind"))
		return missing(c, "kind");
	rc = get_string(c, obj, "name", &d->name);
	rc = rc ? rc : get_enum(c, obj, "kind", kind_names, &kind);
	rc = rc ? rc : get_string(c, obj, "address", &d->address);
	rc = rc ? rc : get_enum(c, obj, "iommu", iommu_names, &iommu);
	if (rc)
		return rc;
	d->kind = kind ? VMIG_DEVICE_MDEV : VMIG_DEVICE_VFIO_PCI;
	d->iommu = iommu ? VMIG_CFG_IOMMU_IOMMUFD : VMIG_CFG_IOMMU_TYPE1;
	if (!d->address) {
		d->address = sdup(d->name);
		if (!d->address)
			return nomem(c);
	}
	foreign = iommu ? type1_only : iommufd_only;
	for (; *foreign; foreign++)
		if (item(obj, *foreign))
			return fail_key(c, *foreign, "only valid with "
					"\"iommu\": \"%s\"",
					iommu ? "type1" : "iommufd");
	if (!iommu) {
		if (!item(obj, "group"))
			return fail(c, "missing key \"group\" (required for a "
				    "type1 device)");
		rc = get_int(c, obj, "group", 0, INT_MAX, NULL, &group);
		rc = rc ? rc : get_string(c, obj, "container", &d->container);
		if (rc)
			return rc;
		d->group = (int)group;
		d->container = d->container ? d->container : sdup("default");
		return d->container ? 0 : nomem(c);
	}
	d->group = -1;
	if (!item(obj, "cdev"))
		return fail(c, "missing key \"cdev\" (required for an iommufd "
			    "device)");
	rc = get_string(c, obj, "cdev", &d->cdev);
	rc = rc ? rc : get_string(c, obj, "ioas", &d->ioas);
	if (rc)
		return rc;
	d->ioas = d->ioas ? d->ioas : sdup("default");
	if (!d->ioas)
		return nomem(c);
	v = item(obj, "pasids");
	return v ? parse_pasids(c, v, d) : 0;
}

/* Two devices of one VFIO group can only be in one container. */
static int check_groups(struct ctx *c, const struct vmig_config *cfg)
{
	size_t n = cfg->nr_devices, i, j, k = 0, bad = SIZE_MAX, other = 0;
	struct key_ent *keys;
	struct qstr q;

	keys = zalloc(n, sizeof(*keys));
	if (!keys)
		return nomem(c);
	for (i = 0; i < n; i++) {
		if (cfg->devices[i].iommu != VMIG_CFG_IOMMU_TYPE1)
			continue;
		keys[k].num = (uint64_t)cfg->devices[i].group;
		keys[k].idx = i;
		k++;
	}
	qsort(keys, k, sizeof(*keys), key_cmp);
	for (i = 0; i < k; i = j) {
		const char *head = cfg->devices[keys[i].idx].container;

		for (j = i + 1; j < k && keys[j].num == keys[i].num; j++) {
			size_t d = keys[j].idx;

			if (strcmp(cfg->devices[d].container, head) &&
			    d < bad) {
				bad = d;
				other = keys[i].idx;
			}
		}
	}
	xfree(keys);
	if (bad == SIZE_MAX)
		return 0;
	push_index(c, bad);
	return fail_key(c, "container", "devices[%zu] is in the same group %d "
			"but in container %s", other, cfg->devices[bad].group,
			quote(&q, cfg->devices[other].container));
}

static int parse_devices(struct ctx *c, const cJSON *root,
			 struct vmig_config *cfg)
{
	const cJSON *arr = item(root, "devices"), *e;
	size_t m, i = 0, n, first, dup;
	struct key_ent *keys;
	struct qstr q;
	int rc;

	if (!arr)
		return 0;
	m = push_key(c, "devices");
	if (!cJSON_IsArray(arr))
		return fail(c, "expected an array");
	n = count(arr);
	if (!n) {
		pop(c, m);
		return 0;
	}
	cfg->devices = zalloc(n, sizeof(*cfg->devices));
	if (!cfg->devices)
		return nomem(c);
	cfg->nr_devices = n;
	cJSON_ArrayForEach(e, arr) {
		size_t mi = push_index(c, i);

		rc = parse_device(c, e, &cfg->devices[i]);
		if (rc)
			return rc;
		pop(c, mi);
		i++;
	}
	keys = c->names = zalloc(n, sizeof(*keys));
	if (!keys)
		return nomem(c);
	c->nr_names = n;
	for (i = 0; i < n; i++) {
		keys[i].str = cfg->devices[i].name;
		keys[i].idx = i;
	}
	if (find_dup(keys, n, &first, &dup)) {
		push_index(c, dup);
		return fail_key(c, "name", "%s is already used by devices[%zu]",
				quote(&q, cfg->devices[dup].name), first);
	}
	rc = check_groups(c, cfg);
	if (rc)
		return rc;
	pop(c, m);
	return 0;
}

/* ------------------------------------------------------------------ */
/* DMA mappings                                                        */

static const char *const mapping_keys[] = {
	"space", "iova", "gpa", "size", "write", NULL,
};

static int parse_mapping(struct ctx *c, const cJSON *obj,
			 struct vmig_cfg_mapping *map)
{
	static const char *const required[] = { "space", "iova", "gpa",
						"size", NULL };
	const char *const *k;
	uint64_t iova_last, gpa_last = 0;
	unsigned int kinds;
	struct qstr q;
	size_t r;
	int rc;

	rc = check_object(c, obj, mapping_keys);
	if (rc)
		return rc;
	for (k = required; *k; k++)
		if (!item(obj, *k))
			return missing(c, *k);
	map->write = true;
	rc = get_string(c, obj, "space", &map->space);
	rc = rc ? rc : get_aligned(c, obj, "iova", U_ADDRESS, &map->iova);
	rc = rc ? rc : get_aligned(c, obj, "gpa", U_ADDRESS, &map->gpa);
	rc = rc ? rc : get_aligned(c, obj, "size", U_SIZE, &map->size);
	rc = rc ? rc : get_bool(c, obj, "write", &map->write);
	if (rc)
		return rc;
	kinds = label_kinds(c, map->space);
	if (!kinds)
		return fail_key(c, "space", "no device uses a container or an "
				"IOAS named %s", quote(&q, map->space));
	if (kinds == (LABEL_CONTAINER | LABEL_IOAS))
		return fail_key(c, "space", "%s names both a type1 container "
				"and an iommufd IOAS", quote(&q, map->space));
	rc = range_last(c, map->iova, map->size, &iova_last);
	rc = rc ? rc : range_last(c, map->gpa, map->size, &gpa_last);
	if (rc)
		return rc;
	/* Regions do not overlap: only the one holding gpa can hold all. */
	r = span_find(c->regions, c->nr_regions, NULL, map->gpa);
	if (r == SIZE_MAX || gpa_last > c->regions[r].last)
		return fail(c, "gpa 0x%" PRIx64 "-0x%" PRIx64 " is not inside "
			    "one memory region", map->gpa, gpa_last);
	return 0;
}

static int parse_mappings(struct ctx *c, const cJSON *root,
			  struct vmig_config *cfg)
{
	const cJSON *v = item(root, "dma_mappings"), *e;
	size_t m, i = 0, n;
	struct span *spans, a, b;
	struct qstr q;
	int rc;

	if (!v)
		return 0;
	m = push_key(c, "dma_mappings");
	if (cJSON_IsString(v) && !strcmp(v->valuestring, "identity")) {
		pop(c, m);
		return 0;
	}
	if (!cJSON_IsArray(v))
		return fail(c, "expected \"identity\" or an array");
	cfg->mappings_given = true;
	n = count(v);
	if (!n) {
		pop(c, m);
		return 0;
	}
	cfg->mappings = zalloc(n, sizeof(*cfg->mappings));
	if (!cfg->mappings)
		return nomem(c);
	cfg->nr_mappings = n;
	rc = index_labels(c, cfg);
	if (rc)
		return rc;
	cJSON_ArrayForEach(e, v) {
		size_t mi = push_index(c, i);

		rc = parse_mapping(c, e, &cfg->mappings[i]);
		if (rc)
			return rc;
		pop(c, mi);
		i++;
	}
	spans = c->maps = zalloc(n, sizeof(*spans));
	if (!spans)
		return nomem(c);
	c->nr_maps = n;
	for (i = 0; i < n; i++) {
		spans[i].space = cfg->mappings[i].space;
		spans[i].first = cfg->mappings[i].iova;
		spans[i].last = cfg->mappings[i].iova +
				(cfg->mappings[i].size - 1);
		spans[i].idx = i;
	}
	if (find_overlap(spans, n, &a, &b)) {
		push_index(c, b.idx);
		return fail(c, "iova 0x%" PRIx64 "-0x%" PRIx64 " overlaps "
			    "dma_mappings[%zu] 0x%" PRIx64 "-0x%" PRIx64
			    " in space %s", b.first, b.last, a.idx, a.first,
			    a.last, quote(&q, b.space));
	}
	pop(c, m);
	return 0;
}

/* ------------------------------------------------------------------ */
/* The simulated kernel                                                */

struct name_nr {
	const char *name;
	unsigned long nr;
};

#define NR(x) { #x, x }
#define VK(x) { #x, VK_##x }

/* Every ioctl vmig issues, by the name the kernel headers give it. */
static const struct name_nr requests[] = {
	NR(VFIO_GET_API_VERSION),
	NR(VFIO_CHECK_EXTENSION),
	NR(VFIO_SET_IOMMU),
	NR(VFIO_GROUP_GET_STATUS),
	NR(VFIO_GROUP_SET_CONTAINER),
	NR(VFIO_GROUP_UNSET_CONTAINER),
	NR(VFIO_GROUP_GET_DEVICE_FD),
	NR(VFIO_DEVICE_GET_INFO),
	NR(VFIO_DEVICE_RESET),
	NR(VFIO_DEVICE_FEATURE),
	NR(VFIO_IOMMU_GET_INFO),
	NR(VFIO_IOMMU_MAP_DMA),
	NR(VFIO_IOMMU_UNMAP_DMA),
	NR(VFIO_IOMMU_DIRTY_PAGES),
	VK(VFIO_DEVICE_BIND_IOMMUFD),
	VK(VFIO_DEVICE_ATTACH_IOMMUFD_PT),
	VK(VFIO_DEVICE_DETACH_IOMMUFD_PT),
	VK(VFIO_MIG_GET_PRECOPY_INFO),
	VK(IOMMU_DESTROY),
	VK(IOMMU_IOAS_ALLOC),
	VK(IOMMU_IOAS_ALLOW_IOVAS),
	VK(IOMMU_IOAS_COPY),
	VK(IOMMU_IOAS_IOVA_RANGES),
	VK(IOMMU_IOAS_MAP),
	VK(IOMMU_IOAS_UNMAP),
	VK(IOMMU_OPTION),
	VK(IOMMU_VFIO_IOAS),
	VK(IOMMU_HWPT_ALLOC),
	VK(IOMMU_GET_HW_INFO),
	VK(IOMMU_HWPT_SET_DIRTY_TRACKING),
	VK(IOMMU_HWPT_GET_DIRTY_BITMAP),
	VK(IOMMU_HWPT_INVALIDATE),
	VK(IOMMU_FAULT_QUEUE_ALLOC),
	VK(IOMMU_TEST_CMD),
};

static const struct name_nr errnos[] = {
	NR(EPERM), NR(ENOENT), NR(ESRCH), NR(EINTR), NR(EIO), NR(ENXIO),
	NR(E2BIG), NR(EBADF), NR(EAGAIN), NR(EWOULDBLOCK), NR(ENOMEM),
	NR(EACCES), NR(EFAULT), NR(EBUSY), NR(EEXIST), NR(ENODEV),
	NR(EINVAL), NR(ENFILE), NR(EMFILE), NR(ENOTTY), NR(EFBIG),
	NR(ENOSPC), NR(EPIPE), NR(ERANGE), NR(EDEADLK), NR(ENOSYS),
	NR(EOVERFLOW), NR(EOPNOTSUPP), NR(ENOTSUP), NR(ENOBUFS),
	NR(ENOTCONN), NR(ECONNRESET), NR(ETIMEDOUT), NR(EALREADY),
	NR(EINPROGRESS), NR(ECANCELED), NR(EMSGSIZE), NR(EHWPOISON),
};

#undef NR
#undef VK

static const struct name_nr *find_name(const struct name_nr *t, size_t n,
				       const char *name)
{
	size_t i;

	for (i = 0; i < n; i++)
		if (!strcmp(t[i].name, name))
			return &t[i];
	return NULL;
}

static const char *const fault_keys[] = {
	"request", "errno", "times", "nth", NULL,
};

static int parse_fault(struct ctx *c, const cJSON *obj,
		       struct vmig_cfg_fault *f)
{
	const struct name_nr *nn;
	const cJSON *req, *ev;
	int64_t times = 1, nth = 0, e;
	uint64_t nr = 0;
	char name[24];
	struct qstr q;
	int rc;

	rc = check_object(c, obj, fault_keys);
	if (rc)
		return rc;
	req = item(obj, "request");
	ev = item(obj, "errno");
	if (req && item(obj, "nth"))
		return fail(c, "give \"request\" or \"nth\", not both");
	if (!req && !item(obj, "nth"))
		return fail(c, "missing key \"request\" (or \"nth\")");
	if (!ev)
		return missing(c, "errno");
	if (!req && item(obj, "times"))
		return fail_key(c, "times", "only valid with \"request\"");
	if (req && cJSON_IsString(req) && !is_digit(*req->valuestring)) {
		nn = find_name(requests, sizeof(requests) / sizeof(*requests),
			       req->valuestring);
		if (!nn)
			return fail_key(c, "request", "unknown request %s",
					quote(&q, req->valuestring));
		nr = nn->nr;
		f->request_name = sdup(nn->name);
		if (!f->request_name)
			return nomem(c);
	} else if (req) {
		if (u64_value(req, &nr) != U64_OK || !nr || nr > UINT32_MAX)
			return fail_key(c, "request", "expected a request name "
					"like \"VFIO_IOMMU_MAP_DMA\", or a "
					"number from 1 to 0xffffffff");
		snprintf(name, sizeof(name), "0x%" PRIx64, nr);
		f->request_name = sdup(name);
		if (!f->request_name)
			return nomem(c);
	}
	rc = get_int(c, obj, "nth", 1, EXACT_MAX, "a positive integer", &nth);
	rc = rc ? rc : get_int(c, obj, "times", -1, INT_MAX,
			       "-1 (always) or a positive integer", &times);
	if (rc)
		return rc;
	if (!times)
		return fail_key(c, "times", "expected -1 (always) or a "
				"positive integer");
	if (cJSON_IsString(ev)) {
		nn = find_name(errnos, sizeof(errnos) / sizeof(*errnos),
			       ev->valuestring);
		if (!nn)
			return fail_key(c, "errno", "unknown errno name %s",
					quote(&q, ev->valuestring));
		e = (int64_t)nn->nr;
	} else if (!json_int(ev, 1, 4095, &e)) {
		return fail_key(c, "errno", "expected an errno name like "
				"\"EIO\", or a number from 1 to 4095");
	}
	f->request = (unsigned long)nr;
	f->err = (int)e;
	/* An nth fault fires once: "times" is for request faults only. */
	f->times = nth ? 0 : (int)times;
	f->nth = (uint64_t)nth;
	return 0;
}

static const char *const sim_device_keys[] = {
	"name", "pins_pages", "iommu_dirty_tracking", "pin", "dma",
	"migration", "dma_logging", "iommu", NULL,
};
static const char *const sim_iommu_keys[] = {
	"model", "page_sizes", "huge_iova", "max_pasid_log2", NULL,
};
/* In the order of enum ksim_iommu_model. */
static const char *const iommu_models[] = { "intel", "mock", NULL };
static const char *const migration_keys[] = {
	"p2p", "pre_copy", "state_size", "state_seed", NULL,
};
static const char *const logging_keys[] = {
	"model", "max_ranges", "min_page_size", "max_page_size", NULL,
};
/* In the order of enum ksim_log_model, from KSIM_LOG_MLX5. */
static const char *const log_models[] = { "mlx5", "pds", "stub", NULL };
static const char *const pin_keys[] = { "iova", "pages", NULL };
static const char *const dma_keys[] = {
	"pattern", "writes_per_step", "write_size", "seed", NULL,
};
static const char *const pattern_names[] = {
	"none", "random", "sequential", "hotspot", NULL,
};

/*
 * Tells whether [first, last] is mapped, without a hole, in the address
 * space of device di: by its space's explicit mappings, or by the regions
 * when every region is identity-mapped.
 */
static bool pin_mapped(const struct ctx *c, const struct vmig_config *cfg,
		       size_t di, uint64_t first, uint64_t last)
{
	const struct vmig_cfg_device *d = &cfg->devices[di];

	if (!cfg->mappings_given)
		return span_covers(c->regions, c->nr_regions, NULL, first,
				   last);
	return span_covers(c->maps, c->nr_maps,
			   d->iommu == VMIG_CFG_IOMMU_TYPE1 ? d->container
							    : d->ioas,
			   first, last);
}

static int parse_pin(struct ctx *c, const cJSON *obj,
		     const struct vmig_config *cfg, size_t di,
		     struct vmig_cfg_sim_device *sd)
{
	int64_t pages = 0;
	uint64_t last;
	int rc;

	rc = check_object(c, obj, pin_keys);
	if (rc)
		return rc;
	if (!item(obj, "iova"))
		return missing(c, "iova");
	if (!item(obj, "pages"))
		return missing(c, "pages");
	rc = get_aligned(c, obj, "iova", U_ADDRESS, &sd->pin_iova);
	rc = rc ? rc : get_int(c, obj, "pages", 1, EXACT_MAX,
			       "a positive integer", &pages);
	if (rc)
		return rc;
	if ((uint64_t)pages > ((UINT64_MAX - sd->pin_iova) >> 12) + 1)
		return fail_key(c, "pages", "0x%" PRIx64 " + %" PRId64 " pages "
				"goes past the end of the 64-bit space",
				sd->pin_iova, pages);
	sd->pin_pages = (uint64_t)pages;
	last = sd->pin_iova + ((uint64_t)pages * PAGE_4K - 1);
	if (!pin_mapped(c, cfg, di, sd->pin_iova, last))
		return fail(c, "0x%" PRIx64 "-0x%" PRIx64 " is not all mapped "
			    "in the device's address space", sd->pin_iova,
			    last);
	return 0;
}

static int parse_dma(struct ctx *c, const cJSON *obj,
		     struct vmig_cfg_sim_device *sd)
{
	int pattern = KSIM_DMA_NONE;
	int64_t wps = sd->dma.writes_per_step, ws = sd->dma.write_size;
	int rc;

	rc = check_object(c, obj, dma_keys);
	if (rc)
		return rc;
	if (!item(obj, "pattern"))
		return missing(c, "pattern");
	rc = get_enum(c, obj, "pattern", pattern_names, &pattern);
	rc = rc ? rc : get_int(c, obj, "writes_per_step", 0, 1000000, NULL,
			       &wps);
	rc = rc ? rc : get_int(c, obj, "write_size", 1, 1048576, NULL, &ws);
	rc = rc ? rc : get_u64(c, obj, "seed", U_INTEGER, &sd->dma.seed);
	if (rc)
		return rc;
	/* The names are in the order of enum ksim_dma_pattern. */
	sd->dma.pattern = (enum ksim_dma_pattern)pattern;
	sd->dma.writes_per_step = (uint32_t)wps;
	sd->dma.write_size = (uint32_t)ws;
	return 0;
}

/* "migration": true, false, or an object of the VFIO migration flags. */
static int parse_migration(struct ctx *c, const cJSON *v,
			   struct ksim_feature_params *f)
{
	bool p2p = false, pre_copy = false;
	uint64_t size = 64 << 10, seed = 0;
	int rc;

	if (cJSON_IsBool(v)) {
		f->migration = cJSON_IsTrue(v);
		return 0;
	}
	if (!cJSON_IsObject(v))
		return fail(c, "expected true, false or an object");
	rc = check_object(c, v, migration_keys);
	rc = rc ? rc : get_bool(c, v, "p2p", &p2p);
	rc = rc ? rc : get_bool(c, v, "pre_copy", &pre_copy);
	rc = rc ? rc : get_u64(c, v, "state_size", U_SIZE, &size);
	rc = rc ? rc : get_u64(c, v, "state_seed", U_INTEGER, &seed);
	if (rc)
		return rc;
	if (size > (64u << 20))
		return fail_key(c, "state_size", "at most 64M");
	f->migration = true;
	f->mig_flags = (p2p ? VK_VFIO_MIGRATION_P2P : 0) |
		       (pre_copy ? VK_VFIO_MIGRATION_PRE_COPY : 0);
	f->state_size = (uint32_t)size;
	f->state_seed = seed;
	return 0;
}

/* "dma_logging": false, a driver model's name, or an object. */
static int parse_logging(struct ctx *c, const cJSON *v,
			 struct ksim_feature_params *f)
{
	uint64_t minp = 4096, maxp = 1ull << 30;
	int model = 0;
	int64_t ranges = 0;
	int rc;

	if (cJSON_IsFalse(v))
		return 0;
	if (cJSON_IsString(v)) {
		for (model = 0; log_models[model]; model++) {
			if (!strcmp(v->valuestring, log_models[model])) {
				f->log = (enum ksim_log_model)(model + 1);
				return 0;
			}
		}
	}
	if (!cJSON_IsObject(v))
		return fail(c, "expected false, one of \"mlx5\", \"pds\", "
			    "\"stub\", or an object");
	rc = check_object(c, v, logging_keys);
	if (rc)
		return rc;
	if (!item(v, "model"))
		return missing(c, "model");
	rc = get_enum(c, v, "model", log_models, &model);
	rc = rc ? rc : get_int(c, v, "max_ranges", 1, 65535, NULL, &ranges);
	rc = rc ? rc : get_u64(c, v, "min_page_size", U_SIZE, &minp);
	rc = rc ? rc : get_u64(c, v, "max_page_size", U_SIZE, &maxp);
	if (rc)
		return rc;
	if (minp < 4096 || (minp & (minp - 1)))
		return fail_key(c, "min_page_size",
				"expected a power of two of at least 4K");
	if (maxp < minp || (maxp & (maxp - 1)))
		return fail_key(c, "max_page_size",
				"expected a power of two of at least "
				"min_page_size");
	f->log = (enum ksim_log_model)(model + 1);
	f->log_max_ranges = (uint32_t)ranges;
	f->log_min_page_size = minp;
	f->log_max_page_size = maxp;
	return 0;
}

/* "iommu": how iommufd sees the device's IOMMU. */
static int parse_sim_iommu(struct ctx *c, const cJSON *v,
			   struct ksim_iommufd_device_params *p)
{
	const cJSON *e, *sizes;
	int model = 0;
	int64_t pasid = 0;
	size_t i = 0;
	int rc;

	rc = check_object(c, v, sim_iommu_keys);
	rc = rc ? rc : get_enum(c, v, "model", iommu_models, &model);
	rc = rc ? rc : get_bool(c, v, "huge_iova", &p->mock_huge_iova);
	rc = rc ? rc : get_int(c, v, "max_pasid_log2", 0, 20, NULL, &pasid);
	if (rc)
		return rc;
	p->model = (enum ksim_iommu_model)model;
	p->max_pasid_log2 = (uint8_t)pasid;
	sizes = item(v, "page_sizes");
	if (!sizes)
		return 0;
	if (!cJSON_IsArray(sizes) || !cJSON_GetArraySize(sizes))
		return fail_key(c, "page_sizes",
				"expected a non-empty array of sizes");
	cJSON_ArrayForEach(e, sizes) {
		size_t m = push_key(c, "page_sizes");
		uint64_t sz = 0;

		push_index(c, i++);
		if (u64_value(e, &sz) != U64_OK || sz < 4096 ||
		    (sz & (sz - 1)))
			return fail(c, "expected a power of two of at least "
				    "4K");
		p->pgsizes |= sz;
		pop(c, m);
	}
	if (!(p->pgsizes & 4096))
		return fail_key(c, "page_sizes", "must include 4K");
	return 0;
}

static int parse_sim_device(struct ctx *c, const cJSON *obj,
			    const struct vmig_config *cfg, size_t *owner,
			    size_t idx, struct vmig_cfg_sim_device *sd)
{
	const struct vmig_cfg_device *d;
	const cJSON *v;
	struct qstr q;
	size_t di;
	int rc;

	rc = check_object(c, obj, sim_device_keys);
	if (rc)
		return rc;
	if (!item(obj, "name"))
		return missing(c, "name");
	rc = get_string(c, obj, "name", &sd->name);
	if (rc)
		return rc;
	di = device_find(c, sd->name);
	if (di == SIZE_MAX)
		return fail_key(c, "name", "no device %s in devices",
				quote(&q, sd->name));
	if (owner[di] != SIZE_MAX)
		return fail_key(c, "name", "%s is already used by "
				"kernel.devices[%zu]", quote(&q, sd->name),
				owner[di]);
	owner[di] = idx;
	d = &cfg->devices[di];
	if (d->kind == VMIG_DEVICE_MDEV && item(obj, "pins_pages"))
		return fail_key(c, "pins_pages", "only valid for a vfio-pci "
				"device (an mdev always pins)");
	sd->iommu_dirty_tracking = true;
	sd->dma.pattern = KSIM_DMA_NONE;
	sd->dma.writes_per_step = 64;
	sd->dma.write_size = 4096;
	sd->dma.seed = di + 1;
	rc = get_bool(c, obj, "pins_pages", &sd->pins_pages);
	rc = rc ? rc : get_bool(c, obj, "iommu_dirty_tracking",
				&sd->iommu_dirty_tracking);
	if (rc)
		return rc;
	v = item(obj, "pin");
	if (v) {
		size_t m = push_key(c, "pin");

		if (d->kind == VMIG_DEVICE_VFIO_PCI && !sd->pins_pages)
			return fail(c, "only an mdev, or a vfio-pci device "
				    "with \"pins_pages\": true, pins pages");
		rc = parse_pin(c, v, cfg, di, sd);
		if (rc)
			return rc;
		pop(c, m);
	}
	v = item(obj, "dma");
	if (v) {
		size_t m = push_key(c, "dma");

		rc = parse_dma(c, v, sd);
		if (rc)
			return rc;
		pop(c, m);
	}
	v = item(obj, "migration");
	if (v) {
		size_t m = push_key(c, "migration");

		rc = parse_migration(c, v, &sd->feature);
		if (rc)
			return rc;
		pop(c, m);
	}
	v = item(obj, "dma_logging");
	if (v) {
		size_t m = push_key(c, "dma_logging");

		rc = parse_logging(c, v, &sd->feature);
		if (rc)
			return rc;
		pop(c, m);
	}
	v = item(obj, "iommu");
	if (v) {
		size_t m = push_key(c, "iommu");

		if (!cJSON_IsObject(v))
			return fail(c, "expected an object");
		rc = parse_sim_iommu(c, v, &sd->iommufd);
		if (rc)
			return rc;
		pop(c, m);
	}
	return 0;
}

static int parse_sim_devices(struct ctx *c, const cJSON *arr,
			     struct vmig_config *cfg)
{
	struct vmig_cfg_kernel *k = &cfg->kernel;
	size_t *owner, i = 0, n, m;
	const cJSON *e;
	struct qstr q;
	int rc = 0;

	m = push_key(c, "devices");
	if (!cJSON_IsArray(arr))
		return fail(c, "expected an array");
	n = count(arr);
	if (n) {
		k->devices = zalloc(n, sizeof(*k->devices));
		if (!k->devices)
			return nomem(c);
		k->nr_devices = n;
	}
	owner = zalloc(cfg->nr_devices + 1, sizeof(*owner));
	if (!owner)
		return nomem(c);
	for (i = 0; i < cfg->nr_devices; i++)
		owner[i] = SIZE_MAX;
	i = 0;
	cJSON_ArrayForEach(e, arr) {
		size_t mi = push_index(c, i);

		rc = parse_sim_device(c, e, cfg, owner, i, &k->devices[i]);
		if (rc)
			break;
		pop(c, mi);
		i++;
	}
	for (i = 0; !rc && i < cfg->nr_devices; i++)
		if (owner[i] == SIZE_MAX)
			rc = fail(c, "devices[%zu] (%s) has no simulated "
				  "device", i, quote(&q, cfg->devices[i].name));
	xfree(owner);
	if (!rc)
		pop(c, m);
	return rc;
}

static int parse_faults(struct ctx *c, const cJSON *arr,
			struct vmig_cfg_kernel *k)
{
	const cJSON *e;
	size_t i = 0, n, m;
	int rc;

	m = push_key(c, "faults");
	if (!cJSON_IsArray(arr))
		return fail(c, "expected an array");
	n = count(arr);
	if (n) {
		k->faults = zalloc(n, sizeof(*k->faults));
		if (!k->faults)
			return nomem(c);
		k->nr_faults = n;
	}
	cJSON_ArrayForEach(e, arr) {
		size_t mi = push_index(c, i);

		rc = parse_fault(c, e, &k->faults[i]);
		if (rc)
			return rc;
		pop(c, mi);
		i++;
	}
	pop(c, m);
	return 0;
}

static const char *const kernel_keys[] = {
	"type", "type1_page_size", "iommufd_compat", "pasid_attach", "devices",
	"faults", NULL,
};

static int parse_kernel(struct ctx *c, const cJSON *root,
			struct vmig_config *cfg)
{
	struct vmig_cfg_kernel *k = &cfg->kernel;
	const cJSON *obj = item(root, "kernel"), *v;
	size_t m;
	int rc;

	k->type = VMIG_KERNEL_LINUX;
	if (!obj)
		return 0;
	m = push_key(c, "kernel");
	if (cJSON_IsString(obj) && !strcmp(obj->valuestring, "linux")) {
		pop(c, m);
		return 0;
	}
	if (!cJSON_IsObject(obj))
		return fail(c, "expected \"linux\" or an object");
	rc = check_object(c, obj, kernel_keys);
	if (rc)
		return rc;
	v = item(obj, "type");
	if (!v)
		return missing(c, "type");
	if (!cJSON_IsString(v) || strcmp(v->valuestring, "simulated"))
		return fail_key(c, "type", "expected \"simulated\"");
	if (!item(obj, "devices"))
		return missing(c, "devices");
	k->type = VMIG_KERNEL_SIMULATED;
	k->type1_pgsize = 4096;
	rc = get_u64(c, obj, "type1_page_size", U_SIZE, &k->type1_pgsize);
	if (rc)
		return rc;
	if (k->type1_pgsize & (k->type1_pgsize - 1))
		return fail_key(c, "type1_page_size", "0x%" PRIx64 " is not a "
				"power of two", k->type1_pgsize);
	rc = get_bool(c, obj, "iommufd_compat", &k->iommufd_compat);
	rc = rc ? rc : get_bool(c, obj, "pasid_attach", &k->pasid_attach);
	rc = rc ? rc : parse_sim_devices(c, item(obj, "devices"), cfg);
	if (rc)
		return rc;
	v = item(obj, "faults");
	if (v) {
		rc = parse_faults(c, v, k);
		if (rc)
			return rc;
	}
	pop(c, m);
	return 0;
}

/* ------------------------------------------------------------------ */
/* The document                                                        */

static const char *const root_keys[] = {
	"role", "transport", "plugins", "preference", "policies", "memory",
	"devices", "dma_mappings", "report", "run", "kernel", NULL,
};
static const char *const role_names[] = { "source", "destination", "local",
					   NULL };

static int parse_root(struct ctx *c, const cJSON *root,
		      struct vmig_config *cfg)
{
	const cJSON *v;
	int role = -1, rc;

	rc = check_object(c, root, root_keys);
	rc = rc ? rc : get_enum(c, root, "role", role_names, &role);
	if (rc)
		return rc;
	/* Without a role: local without a transport, else a source. */
	if (role < 0)
		role = item(root, "transport") ? 0 : 2;
	cfg->role = role == 1 ? VMIG_ROLE_DESTINATION : VMIG_ROLE_SOURCE;
	cfg->local = role == 2;
	cfg->base_dir = sdup(c->base_dir && c->base_dir[0] ? c->base_dir
							   : ".");
	if (!cfg->base_dir)
		return nomem(c);
	rc = parse_transport(c, root, cfg);
	if (rc == 0 && !cfg->local && !cfg->transport)
		return fail_key(c, "transport",
				"required for role \"%s\" (\"unix:<path>\" or "
				"\"tcp:<host>:<port>\")",
				role_names[role]);
	if (rc == 0 && cfg->local && cfg->transport)
		return fail_key(c, "transport",
				"not used with role \"local\" (both ends run "
				"in one process)");
	rc = rc ? rc : parse_plugins(c, root, cfg);
	rc = rc ? rc : parse_preference(c, root, cfg);
	rc = rc ? rc : parse_policies(c, root, cfg);
	rc = rc ? rc : parse_memory(c, root, cfg);
	rc = rc ? rc : parse_devices(c, root, cfg);
	rc = rc ? rc : parse_mappings(c, root, cfg);
	if (rc)
		return rc;
	v = item(root, "report");
	if (v) {
		if (!cJSON_IsString(v) || !v->valuestring[0])
			return fail_key(c, "report",
					"expected a non-empty string");
		rc = resolve(c, v->valuestring, &cfg->report);
		if (rc)
			return rc;
	}
	rc = parse_run(c, root, cfg);
	return rc ? rc : parse_kernel(c, root, cfg);
}

int vmig_config_parse(const char *json, size_t len,
			       const char *base_dir, vmig_config **out,
			       char *err, size_t errlen)
{
	struct ctx c = { .err = err, .errlen = errlen, .base_dir = base_dir };
	struct scan p = { .s = (const unsigned char *)json, .len = len };
	struct vmig_config *cfg;
	enum jerr jrc;
	cJSON *root;
	int rc;

	if (err && errlen)
		err[0] = '\0';
	if (!out)
		return -EINVAL;
	*out = NULL;
	if (!json)
		p.len = 0;
	/* A length that counts the terminating NUL (or a padded buffer) is
	 * forgiven; a NUL anywhere else is a syntax error. */
	while (p.len && p.s[p.len - 1] == '\0')
		p.len--;
	if (p.len >= 3 && !memcmp(p.s, "\xef\xbb\xbf", 3)) {
		p.s += 3;
		p.len -= 3;
	}
	jrc = json_scan(&p);
	if (jrc)
		return json_error(&c, &p, jrc);
	root = cJSON_ParseWithLengthOpts((const char *)p.s, p.len, NULL, 0);
	if (!root)
		return nomem(&c);
	cfg = zalloc(1, sizeof(*cfg));
	if (!cfg) {
		cJSON_Delete(root);
		return nomem(&c);
	}
	rc = parse_root(&c, root, cfg);
	cJSON_Delete(root);
	/* Kept whole: a local run builds its destination from it. */
	if (!rc) {
		cfg->text = zalloc(p.len + 1, 1);
		if (cfg->text) {
			memcpy(cfg->text, p.s, p.len);
			cfg->text_len = p.len;
		} else {
			rc = nomem(&c);
		}
	}
	xfree(c.regions);
	xfree(c.maps);
	xfree(c.names);
	xfree(c.labels);
	if (rc) {
		vmig_config_free(cfg);
		return rc;
	}
	*out = cfg;
	return 0;
}

/* ------------------------------------------------------------------ */
/* Files                                                               */

static int file_error(const char *path, int e, char *err, size_t errlen)
{
	const char *desc = strerrordesc_np(e);

	if (err && errlen)
		snprintf(err, errlen, "%s: %s", path,
			 desc ? desc : "unknown error");
	return -e;
}

/* Reads a whole file into a buffer allocated with cJSON_malloc. */
static int read_file(int fd, char **buf, size_t *len)
{
	size_t cap = 4096, n = 0;
	struct stat st;
	char *b, *nb;
	ssize_t r;

	if (!fstat(fd, &st) && S_ISREG(st.st_mode) && st.st_size > 0 &&
	    (uint64_t)st.st_size < CONFIG_MAX_FILE)
		cap = (size_t)st.st_size + 1;
	b = cJSON_malloc(cap);
	if (!b)
		return -ENOMEM;
	for (;;) {
		if (n == cap) {
			if (cap >= CONFIG_MAX_FILE) {
				cJSON_free(b);
				return -EFBIG;
			}
			nb = cJSON_malloc(cap * 2);
			if (!nb) {
				cJSON_free(b);
				return -ENOMEM;
			}
			memcpy(nb, b, n);
			cJSON_free(b);
			b = nb;
			cap *= 2;
		}
		r = read(fd, b + n, cap - n);
		if (r < 0 && errno == EINTR)
			continue;
		if (r < 0) {
			r = -errno;
			cJSON_free(b);
			return (int)r;
		}
		if (r == 0)
			break;
		n += (size_t)r;
	}
	*buf = b;
	*len = n;
	return 0;
}

int vmig_config_load(const char *path, vmig_config **out,
			      char *err, size_t errlen)
{
	char msg[512], *buf = NULL, *dir;
	const char *slash;
	size_t len = 0, dlen;
	int fd, rc;

	if (err && errlen)
		err[0] = '\0';
	if (out)
		*out = NULL;
	if (!path || !out)
		return -EINVAL;
	fd = open(path, O_RDONLY | O_CLOEXEC);
	if (fd < 0)
		return file_error(path, errno, err, errlen);
	rc = read_file(fd, &buf, &len);
	close(fd);
	if (rc == -ENOMEM) {
		if (err && errlen)
			snprintf(err, errlen, "%s: out of memory", path);
		return rc;
	}
	if (rc == -EFBIG) {
		if (err && errlen)
			snprintf(err, errlen, "%s: larger than %u MiB", path,
				 CONFIG_MAX_FILE >> 20);
		return rc;
	}
	if (rc)
		return file_error(path, -rc, err, errlen);
	/* Relative paths in the file are relative to the file itself. */
	slash = strrchr(path, '/');
	dlen = !slash ? 1 : slash == path ? 1 : (size_t)(slash - path);
	dir = cJSON_malloc(dlen + 1);
	if (!dir) {
		cJSON_free(buf);
		if (err && errlen)
			snprintf(err, errlen, "%s: out of memory", path);
		return -ENOMEM;
	}
	memcpy(dir, slash ? path : ".", dlen);
	dir[dlen] = '\0';
	rc = vmig_config_parse(buf, len, dir, out, msg, sizeof(msg));
	cJSON_free(dir);
	cJSON_free(buf);
	if (rc && err && errlen)
		snprintf(err, errlen, "%s: %s", path, msg);
	return rc;
}

/* ------------------------------------------------------------------ */
/* Freeing                                                             */

static void free_strv(char **v, size_t n)
{
	size_t i;

	for (i = 0; v && i < n; i++)
		xfree(v[i]);
	xfree(v);
}

void vmig_config_free(vmig_config *cfg)
{
	size_t i, j;

	if (!cfg)
		return;
	xfree(cfg->text);
	xfree(cfg->transport);
	xfree(cfg->base_dir);
	free_strv(cfg->plugin_paths, cfg->nr_plugin_paths);
	free_strv(cfg->plugins, cfg->nr_plugins);
	free_strv(cfg->preference, cfg->nr_preference);
	for (i = 0; cfg->regions && i < cfg->nr_regions; i++)
		xfree(cfg->regions[i].name);
	xfree(cfg->regions);
	for (i = 0; cfg->devices && i < cfg->nr_devices; i++) {
		struct vmig_cfg_device *d = &cfg->devices[i];

		xfree(d->name);
		xfree(d->address);
		xfree(d->container);
		xfree(d->cdev);
		xfree(d->ioas);
		for (j = 0; d->pasids && j < d->nr_pasids; j++)
			xfree(d->pasids[j].ioas);
		xfree(d->pasids);
	}
	xfree(cfg->devices);
	for (i = 0; cfg->mappings && i < cfg->nr_mappings; i++)
		xfree(cfg->mappings[i].space);
	xfree(cfg->mappings);
	xfree(cfg->report);
	for (i = 0; cfg->kernel.devices && i < cfg->kernel.nr_devices; i++)
		xfree(cfg->kernel.devices[i].name);
	xfree(cfg->kernel.devices);
	for (i = 0; cfg->kernel.faults && i < cfg->kernel.nr_faults; i++)
		xfree(cfg->kernel.faults[i].request_name);
	xfree(cfg->kernel.faults);
	xfree(cfg);
}
