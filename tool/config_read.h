/*
 * config_read.h: what the files of the configuration share (config.c,
 * config_sim.c, config_read.c).
 *
 * config_read.c owns reading a parsed document: every getter checks a
 * value's type and range and, when it is wrong, writes a message naming
 * the JSON path of the value and what was expected; the path is kept in
 * struct ctx as the parser descends. It also owns the sorted indexes the
 * cross references use (names, address ranges), and allocation through
 * cJSON's hooks.
 */
#ifndef VMIG_TOOL_CONFIG_READ_H
#define VMIG_TOOL_CONFIG_READ_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <cjson/cJSON.h>

#include "config.h"

#define PAGE_4K 4096u
/* Doubles hold every integer below 2^53 exactly, and no wider range. */
#define EXACT_LIMIT 9007199254740992.0
#define EXACT_MAX 9007199254740991LL

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


struct key_ent {
	const char *str; /* compared first when not NULL */
	uint64_t num;
	size_t idx;
};

struct span {
	const char *space;
	uint64_t first, last;
	size_t idx;
};

enum u64_result { U64_OK, U64_BAD, U64_IMPRECISE, U64_OVERFLOW };
enum u64_kind { U_SIZE, U_ADDRESS, U_BANDWIDTH, U_INTEGER };

/* config_read.c */

void *cfg_zalloc(size_t n, size_t size);
void cfg_xfree(void *p);
char *cfg_sdup(const char *s);
int cfg_fail(struct ctx *c, const char *fmt, ...)
	__attribute__((format(printf, 2, 3)));
int cfg_nomem(struct ctx *c);
size_t cfg_push_key(struct ctx *c, const char *key);
size_t cfg_push_index(struct ctx *c, size_t i);
void cfg_pop(struct ctx *c, size_t old);
int cfg_missing(struct ctx *c, const char *key);
const cJSON *cfg_item(const cJSON *obj, const char *key);
size_t cfg_count(const cJSON *arr);
int cfg_check_object(struct ctx *c, const cJSON *obj, const char *const *keys);
int cfg_fail_key(struct ctx *c, const char *key, const char *fmt, ...)
	__attribute__((format(printf, 3, 4)));
bool cfg_json_int(const cJSON *v, int64_t min, int64_t max, int64_t *out);
int cfg_get_int(struct ctx *c, const cJSON *obj, const char *key, int64_t min,
		int64_t max, const char *what, int64_t *out);
int cfg_get_bool(struct ctx *c, const cJSON *obj, const char *key, bool *out);
int cfg_get_enum(struct ctx *c, const cJSON *obj, const char *key,
		 const char *const *names, int *out);
int cfg_get_string(struct ctx *c, const cJSON *obj, const char *key,
		   char **out);
int cfg_resolve(struct ctx *c, const char *p, char **out);
enum u64_result cfg_u64_value(const cJSON *v, uint64_t *out);
int cfg_get_u64(struct ctx *c, const cJSON *obj, const char *key,
		enum u64_kind kind, uint64_t *out);
int cfg_get_aligned(struct ctx *c, const cJSON *obj, const char *key,
		    enum u64_kind kind, uint64_t *out);
int cfg_range_last(struct ctx *c, uint64_t start, uint64_t size,
		   uint64_t *last);
/* qsort order of key entries: by key, then by index. */
int cfg_key_cmp(const void *a, const void *b);
bool cfg_same_key(const struct key_ent *a, const struct key_ent *b);
bool cfg_find_dup(struct key_ent *v, size_t n, size_t *first, size_t *dup);
bool cfg_find_overlap(struct span *v, size_t n, struct span *a, struct span *b);
size_t cfg_span_find(const struct span *v, size_t n, const char *space,
		     uint64_t addr);
bool cfg_span_covers(const struct span *v, size_t n, const char *space,
		     uint64_t first, uint64_t last);

/* config.c: a device by name in the sorted index; SIZE_MAX if none. */
size_t cfg_device_find(const struct ctx *c, const char *name);

/* config_sim.c: the "kernel" object (the real kernel, or the simulator). */
int cfg_parse_kernel(struct ctx *c, const cJSON *root, struct vmig_config *cfg);

#endif /* VMIG_TOOL_CONFIG_READ_H */
