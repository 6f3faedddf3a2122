/*
 * config_read.c: reading a parsed configuration (config_read.h): the
 * getters that check a value and name its JSON path when it is wrong,
 * the path itself, the sorted indexes of the cross references, and
 * allocation through cJSON's hooks (cJSON_malloc, cJSON_free), so that a
 * program that installs cJSON_InitHooks controls every allocation, and
 * the tests make each one fail in turn.
 */
#include <errno.h>
#include <inttypes.h>
#include <limits.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cjson/cJSON.h>

#include "config_read.h"
#include "json.h"

/* ------------------------------------------------------------------ */
/* Allocation                                                          */

void *cfg_zalloc(size_t n, size_t size)
{
	void *p;

	if (size && n > SIZE_MAX / size)
		return NULL;
	p = cJSON_malloc(n * size);
	if (p)
		memset(p, 0, n * size);
	return p;
}

void cfg_xfree(void *p)
{
	if (p)
		cJSON_free(p);
}

char *cfg_sdup(const char *s)
{
	size_t n = strlen(s) + 1;
	char *d = cJSON_malloc(n);

	if (d)
		memcpy(d, s, n);
	return d;
}


/* ------------------------------------------------------------------ */
/* Messages and the JSON path                                          */

/* Writes "<path>: <what>" and returns VMIG_ECONFIG. */
int cfg_fail(struct ctx *c, const char *fmt, ...)
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

int cfg_nomem(struct ctx *c)
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

/* Pushes ".key" onto the path; returns what cfg_pop() restores. */
size_t cfg_push_key(struct ctx *c, const char *key)
{
	size_t old = c->plen;

	path_advance(c, snprintf(c->path + c->plen, sizeof(c->path) - c->plen,
				 "%s%s", c->plen ? "." : "", key));
	return old;
}

size_t cfg_push_index(struct ctx *c, size_t i)
{
	size_t old = c->plen;

	path_advance(c, snprintf(c->path + c->plen, sizeof(c->path) - c->plen,
				 "[%zu]", i));
	return old;
}

void cfg_pop(struct ctx *c, size_t old)
{
	c->plen = old;
	c->path[old] = '\0';
}

int cfg_missing(struct ctx *c, const char *key)
{
	return cfg_fail(c, "missing key \"%s\"", key);
}


/* ------------------------------------------------------------------ */
/* Reading values                                                      */

const cJSON *cfg_item(const cJSON *obj, const char *key)
{
	return cJSON_GetObjectItemCaseSensitive(obj, key);
}

size_t cfg_count(const cJSON *arr)
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
int cfg_check_object(struct ctx *c, const cJSON *obj,
		     const char *const *keys)
{
	const cJSON *it, *prev;
	struct json_qstr q;

	if (!cJSON_IsObject(obj))
		return cfg_fail(c, "expected an object");
	cJSON_ArrayForEach(it, obj) {
		const char *key = it->string ? it->string : "";

		if (!key_in(keys, key))
			return cfg_fail(c, "unknown key %s",
					json_quote(&q, key));
		for (prev = obj->child; prev != it; prev = prev->next)
			if (prev->string && !strcmp(prev->string, key))
				return cfg_fail(c, "duplicate key %s",
						json_quote(&q, key));
	}
	return 0;
}

/* Like cfg_fail(), for the value of obj[key] while the path names obj. */
int cfg_fail_key(struct ctx *c, const char *key, const char *fmt, ...)
{
	char what[200];
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(what, sizeof(what), fmt, ap);
	va_end(ap);
	cfg_push_key(c, key);
	return cfg_fail(c, "%s", what);
}

/* A JSON number that is an integer in [min, max] (both below 2^53). */
bool cfg_json_int(const cJSON *v, int64_t min, int64_t max, int64_t *out)
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
int cfg_get_int(struct ctx *c, const cJSON *obj, const char *key,
		int64_t min, int64_t max, const char *what, int64_t *out)
{
	const cJSON *v = cfg_item(obj, key);

	if (!v)
		return 0;
	if (cfg_json_int(v, min, max, out))
		return 0;
	if (what)
		return cfg_fail_key(c, key, "expected %s", what);
	return cfg_fail_key(c, key, "expected an integer from %" PRId64 " to %"
			    PRId64, min, max);
}

int cfg_get_bool(struct ctx *c, const cJSON *obj, const char *key,
		 bool *out)
{
	const cJSON *v = cfg_item(obj, key);

	if (!v)
		return 0;
	if (!cJSON_IsBool(v))
		return cfg_fail_key(c, key, "expected true or false");
	*out = cJSON_IsTrue(v);
	return 0;
}

/* Reads obj[key] if present: one of names, as its index. */
int cfg_get_enum(struct ctx *c, const cJSON *obj, const char *key,
		 const char *const *names, int *out)
{
	const cJSON *v = cfg_item(obj, key);
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
	return cfg_fail_key(c, key, "expected one of %s", what);
}

/* Reads obj[key] if present: a non-empty string, copied. */
int cfg_get_string(struct ctx *c, const cJSON *obj, const char *key,
		   char **out)
{
	const cJSON *v = cfg_item(obj, key);

	if (!v)
		return 0;
	if (!cJSON_IsString(v) || !v->valuestring[0])
		return cfg_fail_key(c, key, "expected a non-empty string");
	*out = cfg_sdup(v->valuestring);
	return *out ? 0 : cfg_nomem(c);
}

/* Copies a path, resolving a relative one against the base directory. */
int cfg_resolve(struct ctx *c, const char *p, char **out)
{
	size_t blen, plen;
	bool slash;

	if (p[0] == '/' || !c->base_dir || !c->base_dir[0]) {
		*out = cfg_sdup(p);
		return *out ? 0 : cfg_nomem(c);
	}
	blen = strlen(c->base_dir);
	plen = strlen(p);
	slash = c->base_dir[blen - 1] != '/';
	*out = cJSON_malloc(blen + slash + plen + 1);
	if (!*out)
		return cfg_nomem(c);
	memcpy(*out, c->base_dir, blen);
	if (slash)
		(*out)[blen] = '/';
	memcpy(*out + blen + slash, p, plen + 1);
	return 0;
}

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
			d = json_hex_digit((unsigned char)*s);
			if (d < 0)
				return U64_BAD;
			if (v >> 60)
				return U64_OVERFLOW;
			v = v << 4 | (uint64_t)d;
		}
		*out = v;
		return U64_OK;
	}
	if (!json_is_digit((unsigned char)*s))
		return U64_BAD;
	for (; json_is_digit((unsigned char)*s); s++) {
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

enum u64_result cfg_u64_value(const cJSON *v, uint64_t *out)
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

static const char *const u64_expected[] = {
	[U_SIZE] = "a size (a positive integer, or a string like \"512M\")",
	[U_ADDRESS] = "an address (a non-negative integer, or a string like "
		      "\"0x100000000\")",
	[U_BANDWIDTH] = "a size per second (0 for none, a positive integer, "
			"or a string like \"1G\")",
	[U_INTEGER] = "a non-negative integer, or a string like \"0x5eed\"",
};

/* Reads obj[key] if present: a size, an address, or a 64-bit integer. */
int cfg_get_u64(struct ctx *c, const cJSON *obj, const char *key,
		enum u64_kind kind, uint64_t *out)
{
	const cJSON *v = cfg_item(obj, key);
	uint64_t x = 0;
	struct json_qstr q;

	if (!v)
		return 0;
	switch (cfg_u64_value(v, &x)) {
	case U64_OK:
		if (x == 0 && kind == U_SIZE)
			break;
		*out = x;
		return 0;
	case U64_IMPRECISE:
		return cfg_fail_key(c, key,
				    "numbers from 2^53 up are imprecise "
				    "in JSON; write it as a string");
	case U64_OVERFLOW:
		return cfg_fail_key(c, key, "%s is larger than 2^64-1",
				    json_quote(&q, v->valuestring));
	case U64_BAD:
		break;
	}
	return cfg_fail_key(c, key, "expected %s", u64_expected[kind]);
}

int cfg_get_aligned(struct ctx *c, const cJSON *obj, const char *key,
		    enum u64_kind kind, uint64_t *out)
{
	int rc = cfg_get_u64(c, obj, key, kind, out);

	if (rc)
		return rc;
	if (*out % PAGE_4K)
		return cfg_fail_key(c, key,
				    "0x%" PRIx64 " is not a multiple of "
				    "4 KiB",
				    *out);
	return 0;
}

/* [first, last] of a range that must end at or below 2^64. */
int cfg_range_last(struct ctx *c, uint64_t start, uint64_t size,
		   uint64_t *last)
{
	if (size - 1 > UINT64_MAX - start)
		return cfg_fail(c, "the range 0x%" PRIx64 " + 0x%" PRIx64
				" goes past the end of the 64-bit space",
				start, size);
	*last = start + (size - 1);
	return 0;
}


/* ------------------------------------------------------------------ */
/* Uniqueness and overlaps                                             */

int cfg_key_cmp(const void *a, const void *b)
{
	const struct key_ent *x = a, *y = b;
	int r = x->str && y->str ? strcmp(x->str, y->str) : 0;

	if (r)
		return r;
	if (x->num != y->num)
		return x->num < y->num ? -1 : 1;
	return x->idx < y->idx ? -1 : x->idx > y->idx;
}

bool cfg_same_key(const struct key_ent *a, const struct key_ent *b)
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
bool cfg_find_dup(struct key_ent *v, size_t n, size_t *first, size_t *dup)
{
	bool found = false;
	size_t i, j;

	qsort(v, n, sizeof(*v), cfg_key_cmp);
	/* Sorted by key then index: a run's first two entries are the
	 * earliest use of the key and the earliest repeat. */
	for (i = 0; i < n; i = j) {
		for (j = i + 1; j < n && cfg_same_key(&v[i], &v[j]); j++)
			;
		if (j > i + 1 && (!found || v[i + 1].idx < *dup)) {
			*first = v[i].idx;
			*dup = v[i + 1].idx;
			found = true;
		}
	}
	return found;
}

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
bool cfg_find_overlap(struct span *v, size_t n, struct span *a,
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
size_t cfg_span_find(const struct span *v, size_t n, const char *space,
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
bool cfg_span_covers(const struct span *v, size_t n, const char *space,
		     uint64_t first, uint64_t last)
{
	size_t i = cfg_span_find(v, n, space, first);

	if (i == SIZE_MAX)
		return false;
	for (; v[i].last < last; i++)
		if (i + 1 >= n || !same_space(&v[i], &v[i + 1]) ||
		    v[i + 1].first != v[i].last + 1)
			return false;
	return true;
}
