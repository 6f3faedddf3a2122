/*
 * section_state.c: the VMM's own state as a migration section.
 *
 * This file owns the VMM's state sections (vmig_state_register): the
 * registrations of a session; on the source, the section that calls
 * their save callbacks (save_live once per pre-copy pass, save_final once
 * the guest is stopped), queues the records they put, and sends them as
 * VMM_STATE frames, each section ended by VMM_STATE_END; and the check
 * of what was sent, which the destination's ACK must repeat before
 * COMMIT. On the destination: the match of HELLO's sections with the
 * registered ones (name, version range), each checked record handed to
 * its section's load, load_done at COMPLETE, load_abort on a failure,
 * and the check the ACK carries.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "section.h"

/* ------------------------------------------------------------------ */
/* Registration                                                        */

static struct vmig_state_reg *state_find(struct vmig_engine *e,
					 const char *name, size_t len)
{
	uint32_t i;

	for (i = 0; i < e->nr_states; i++) {
		if (strlen(e->states[i].name) == len &&
		    !memcmp(e->states[i].name, name, len))
			return &e->states[i];
	}
	return NULL;
}

/* A name is 1 to VMIG_STATE_NAME_MAX bytes, without control characters. */
static bool state_name_ok(const char *name)
{
	size_t i, len = strnlen(name, VMIG_STATE_NAME_MAX + 1);

	if (!len || len > VMIG_STATE_NAME_MAX)
		return false;
	for (i = 0; i < len; i++) {
		unsigned char c = (unsigned char)name[i];

		if (c < 0x20 || c == 0x7f)
			return false;
	}
	return true;
}

VMIG_API int vmig_state_register(vmig_session *s, const char *name,
				 uint32_t version, uint32_t min_version,
				 const struct vmig_state_ops *ops,
				 void *opaque)
{
	struct vmig_state_reg *reg, *grown;
	struct vmig_engine *e;
	int ret;

	if (!s)
		return -EINVAL;
	ret = vmig_engine_idle_get(s, "state section", &e);
	if (ret)
		return ret;
	if (!name || !state_name_ok(name))
		return vmig_fail(s, -EINVAL, "state section: the name must be "
				 "1 to %u bytes without control characters",
				 VMIG_STATE_NAME_MAX);
	if (!version || min_version > version)
		return vmig_fail(s, -EINVAL, "state section \"%s\": version "
				 "%u, min_version %u: the version is 1 or "
				 "more, the min_version at most the version",
				 name, version, min_version);
	if (!VMIG_HAS_FIELD(ops, struct vmig_state_ops, load_abort))
		return vmig_fail(s, -EINVAL, "state section \"%s\": ops size "
				 "field too small", name);
	if (!ops->save_final && !ops->load)
		return vmig_fail(s, -EINVAL, "state section \"%s\": neither "
				 "save_final (a source) nor load (a "
				 "destination)", name);
	if (state_find(e, name, strlen(name)))
		return vmig_fail(s, -EEXIST, "state section \"%s\" is "
				 "registered already", name);
	if (e->nr_states >= VMIG_STATE_SECTIONS_MAX)
		return vmig_fail(s, -ENOSPC, "state section \"%s\": %u "
				 "sections are the most", name,
				 VMIG_STATE_SECTIONS_MAX);
	grown = realloc(e->states, (e->nr_states + 1) * sizeof(*grown));
	if (!grown)
		return vmig_fail(s, -ENOMEM, "state section: out of memory");
	e->states = grown;
	reg = &e->states[e->nr_states++];
	memset(reg, 0, sizeof(*reg));
	strcpy(reg->name, name);
	reg->version = version;
	reg->min_version = min_version ? min_version : version;
	memcpy(&reg->ops, ops,
	       ops->size < sizeof(reg->ops) ? ops->size : sizeof(reg->ops));
	reg->ops.size = sizeof(reg->ops);
	reg->opaque = opaque;
	return 0;
}

VMIG_API int vmig_state_unregister(vmig_session *s, const char *name)
{
	struct vmig_state_reg *reg;
	struct vmig_engine *e;
	int ret;

	if (!s || !name)
		return -EINVAL;
	ret = vmig_engine_idle_get(s, "state section", &e);
	if (ret)
		return ret;
	reg = state_find(e, name, strlen(name));
	if (!reg)
		return vmig_fail(s, -ENOENT, "state section \"%s\" is not "
				 "registered", name);
	memmove(reg, reg + 1,
		(size_t)(e->states + e->nr_states - (reg + 1)) * sizeof(*reg));
	e->nr_states--;
	return 0;
}

/* ------------------------------------------------------------------ */
/* The source's section                                                */

struct state_rec {
	struct state_rec *next;
	void *data;
	size_t len;
};

/* A section the source sends (it has save_final). */
struct state_item {
	const struct vmig_state_reg *reg;
	struct state_rec *head, **tail;
	uint64_t queued;   /* bytes put and not sent yet */
	uint64_t offset;   /* bytes sent */
	bool ended;        /* VMM_STATE_END queued */
};

struct state_src {
	struct state_item *items; /* HELLO's order */
	uint32_t n;
	bool live_due;     /* a pre-copy pass began: save_live is due */
	bool final_saved;  /* save_final called */
	uint64_t check;    /* vmig_state_check of what was queued */
};

/* What vmig_state_put() writes into, during a save callback. */
struct vmig_state_out {
	struct state_item *item;
	int err;           /* a put failed: the callback's call fails */
};

VMIG_API int vmig_state_put(vmig_state_out *out, const void *data, size_t len)
{
	struct state_rec *rec;

	if (!out || !out->item || !data || !len ||
	    len > VMIG_STATE_RECORD_MAX)
		return -EINVAL;
	rec = calloc(1, sizeof(*rec));
	if (rec)
		rec->data = malloc(len);
	if (!rec || !rec->data) {
		free(rec);
		out->err = -ENOMEM;
		return -ENOMEM;
	}
	memcpy(rec->data, data, len);
	rec->len = len;
	*out->item->tail = rec;
	out->item->tail = &rec->next;
	out->item->queued += len;
	return 0;
}

static struct state_src *state_of(const struct vmig_section *sec)
{
	return sec->priv;
}

static void state_drop(struct state_item *it)
{
	struct state_rec *rec;

	while ((rec = it->head)) {
		it->head = rec->next;
		free(rec->data);
		free(rec);
	}
	it->tail = &it->head;
	it->queued = 0;
}

static int state_setup(struct vmig_section *sec)
{
	struct vmig_engine *e = sec->e;
	struct state_src *st = calloc(1, sizeof(*st));
	uint32_t i;

	sec->priv = st;
	if (st)
		st->items = calloc(e->nr_states + 1, sizeof(*st->items));
	if (!st || !st->items) {
		snprintf(sec->err, sizeof(sec->err), "out of memory");
		return -ENOMEM;
	}
	for (i = 0; i < e->nr_states; i++) {
		struct state_item *it = &st->items[st->n];

		if (!e->states[i].ops.save_final)
			continue;
		it->reg = &e->states[i];
		it->tail = &it->head;
		st->n++;
		vmig_logf(sec->s, VMIG_LOG_INFO,
			  "source: VMM state section \"%s\" (version %u) "
			  "travels",
			  it->reg->name, it->reg->version);
	}
	e->st.nr_vmm_states = st->n;
	e->st.vmm_state_bytes = 0;
	return 0;
}

static void state_cleanup(struct vmig_section *sec)
{
	struct state_src *st = state_of(sec);
	uint32_t i;

	if (!st)
		return;
	for (i = 0; i < st->n; i++)
		state_drop(&st->items[i]);
	free(st->items);
	free(st);
	sec->priv = NULL;
}

static void state_pass_begin(struct vmig_section *sec, uint64_t dirty,
			     bool final)
{
	(void)dirty;
	state_of(sec)->live_due = !final;
}

static uint64_t state_pending(struct vmig_section *sec)
{
	struct state_src *st = state_of(sec);
	uint64_t sum = 0;
	uint32_t i;

	for (i = 0; i < st->n; i++) {
		const struct vmig_state_reg *reg = st->items[i].reg;

		sum += st->items[i].queued;
		if (!st->final_saved && reg->ops.pending)
			sum += reg->ops.pending(reg->opaque);
	}
	return sum;
}

/* Calls one save callback of every section (final: save_final). */
static int state_call(struct vmig_section *sec, bool final)
{
	struct state_src *st = state_of(sec);
	uint32_t i;
	int ret;

	for (i = 0; i < st->n; i++) {
		struct state_item *it = &st->items[i];
		const struct vmig_state_reg *reg = it->reg;
		int (*fn)(void *, vmig_state_out *) =
			final ? reg->ops.save_final : reg->ops.save_live;
		struct vmig_state_out out = { .item = it };

		if (!fn)
			continue;
		ret = fn(reg->opaque, &out);
		if (!ret)
			ret = out.err;
		if (ret < 0) {
			snprintf(sec->err, sizeof(sec->err),
				 "state section \"%s\": the VMM's %s failed: "
				 "%s",
				 reg->name, final ? "save_final" : "save_live",
				 vmig_strerror(ret));
			return ret;
		}
	}
	return 0;
}

/*
 * Sends what the sections queued, while the sink has room. Returns 1
 * when nothing is left, 0 when the sink is full, or an error.
 */
static int state_drain(struct vmig_section *sec, uint32_t phase,
		       struct vmig_section_sink *out)
{
	struct state_src *st = state_of(sec);
	uint32_t i;

	for (i = 0; i < st->n; i++) {
		struct state_item *it = &st->items[i];
		struct state_rec *rec;
		uint8_t *hdr;

		while ((rec = it->head)) {
			hdr = out->next(out->opaque);
			if (!hdr)
				return 0;
			vmig_enc_vmm_state(hdr, i, it->offset, phase,
					   rec->data, rec->len);
			st->check = vmig_state_check(st->check, rec->data,
						     rec->len);
			it->head = rec->next;
			if (!it->head)
				it->tail = &it->head;
			it->queued -= rec->len;
			it->offset += rec->len;
			sec->e->st.vmm_state_bytes += rec->len;
			out->it->device_bytes += rec->len;
			if (out->add(out->opaque, rec->data, rec->len, true) <
			    0) {
				free(rec);
				return -EIO;
			}
			free(rec);
		}
	}
	return 1;
}

static int state_save_live(struct vmig_section *sec,
			   struct vmig_section_sink *out)
{
	struct state_src *st = state_of(sec);
	int ret;

	if (st->live_due) {
		st->live_due = false;
		ret = state_call(sec, false);
		if (ret < 0)
			return ret;
	}
	return state_drain(sec, VMIG_DS_PRECOPY, out);
}

static int state_save_final(struct vmig_section *sec,
			    struct vmig_section_sink *out)
{
	struct state_src *st = state_of(sec);
	uint8_t *hdr;
	uint32_t i;
	int ret;

	if (!st->final_saved) {
		st->final_saved = true;
		ret = state_call(sec, true);
		if (ret < 0)
			return ret;
	}
	ret = state_drain(sec, VMIG_DS_STOPCOPY, out);
	if (ret <= 0)
		return ret;
	for (i = 0; i < st->n; i++) {
		if (st->items[i].ended)
			continue;
		hdr = out->next(out->opaque);
		if (!hdr)
			return 0;
		vmig_enc_vmm_state_end(hdr, i, st->items[i].offset);
		if (out->add(out->opaque, NULL, 0, false) < 0)
			return -EIO;
		st->items[i].ended = true;
	}
	return 1;
}

const struct vmig_section_ops vmig_section_state = {
	.name = "VMM state",
	.setup = state_setup,
	.cleanup = state_cleanup,
	.pass_begin = state_pass_begin,
	.pending = state_pending,
	.save_live = state_save_live,
	.save_final = state_save_final,
};

uint32_t vmig_section_state_count(const struct vmig_section *sec)
{
	const struct state_src *st = state_of(sec);

	return st ? st->n : 0;
}

const struct vmig_state_reg *
vmig_section_state_reg(const struct vmig_section *sec, uint32_t i)
{
	return state_of(sec)->items[i].reg;
}

uint64_t vmig_section_state_check(const struct vmig_section *sec)
{
	const struct state_src *st = state_of(sec);

	return st ? st->check : 0;
}

/* ------------------------------------------------------------------ */
/* The destination                                                     */

/* Whether one of the first n sections HELLO named is reg. */
static bool rx_named(const struct vmig_rx *rx, uint32_t n,
		     const struct vmig_state_reg *reg)
{
	uint32_t i;

	for (i = 0; i < n; i++) {
		if (rx->states[i].reg == reg)
			return true;
	}
	return false;
}

int vmig_state_rx_hello(struct vmig_rx *rx, const uint8_t *layout,
			const struct vmig_hello_counts *n, char *err,
			size_t errlen)
{
	struct vmig_engine *e = vmig_engine_get(rx->s);
	char name[4 * VMIG_HELLO_SECTION_NAME + 1];
	uint32_t i, j;

	if (e)
		rx->states = calloc(n->sections + 1, sizeof(*rx->states));
	if (!e || !rx->states) {
		snprintf(err, errlen, "out of memory");
		return -ENOMEM;
	}
	rx->nr_states = n->sections;
	for (i = 0; i < n->sections; i++) {
		struct vmig_hello_section hs;
		const struct vmig_state_reg *reg;

		vmig_hello_get_section(layout, n, i, &hs);
		vmig_proto_text(name, sizeof(name), hs.name, hs.name_len);
		reg = state_find(e, (const char *)hs.name, hs.name_len);
		if (!hs.name_len || hs.reserved) {
			snprintf(err, errlen, "state section %u (\"%s\"): %s",
				 i, name,
				 hs.reserved ? "reserved field is not 0"
					     : "no name");
			return -EPROTO;
		}
		if (!reg || !reg->ops.load) {
			snprintf(err, errlen, "state section %u (\"%s\", "
				 "version %u) is not known here (no state "
				 "section of that name is registered to load "
				 "it)",
				 i, name, hs.version);
			return -EPROTO;
		}
		if (hs.version < reg->min_version ||
		    hs.version > reg->version) {
			snprintf(err, errlen, "state section %u (\"%s\"): "
				 "version %u, this destination loads "
				 "versions %u to %u",
				 i, name, hs.version, reg->min_version,
				 reg->version);
			return -EPROTO;
		}
		if (rx_named(rx, i, reg)) {
			snprintf(err, errlen, "state section %u (\"%s\") is "
				 "named twice", i, name);
			return -EPROTO;
		}
		rx->states[i].reg = reg;
		rx->states[i].version = hs.version;
	}
	for (j = 0; j < e->nr_states; j++) {
		if (e->states[j].ops.load &&
		    !rx_named(rx, rx->nr_states, &e->states[j])) {
			snprintf(err, errlen, "the state section \"%s\" this "
				 "destination loads is not in the stream",
				 e->states[j].name);
			return -EPROTO;
		}
	}
	e->st.nr_vmm_states = rx->nr_states;
	e->st.vmm_state_bytes = 0;
	return 0;
}

int vmig_state_rx_record(struct vmig_rx *rx, uint32_t i, const void *data,
			 size_t len, char *err, size_t errlen)
{
	struct vmig_rx_vmmstate *st = &rx->states[i];
	const struct vmig_state_reg *reg = st->reg;
	int ret;

	rx->states_touched = true;
	ret = reg->ops.load(reg->opaque, st->version, data, len);
	if (ret < 0) {
		snprintf(err, errlen, "the VMM's load refused a record of "
			 "%zu bytes: %s", len, vmig_strerror(ret));
		return ret;
	}
	rx->state_check = vmig_state_check(rx->state_check, data, len);
	st->offset += len;
	vmig_engine_get(rx->s)->st.vmm_state_bytes += len;
	return 0;
}

int vmig_state_rx_done(struct vmig_rx *rx, char *err, size_t errlen)
{
	uint32_t i;
	int ret;

	for (i = 0; i < rx->nr_states; i++) {
		const struct vmig_state_reg *reg = rx->states[i].reg;

		if (!reg->ops.load_done)
			continue;
		rx->states_touched = true;
		ret = reg->ops.load_done(reg->opaque, rx->states[i].version);
		if (ret < 0) {
			snprintf(err, errlen, "state section \"%s\": the "
				 "VMM's load_done failed: %s",
				 reg->name, vmig_strerror(ret));
			return ret;
		}
	}
	return 0;
}

void vmig_state_rx_abort(struct vmig_rx *rx)
{
	uint32_t i;

	if (!rx->states_touched)
		return;
	rx->states_touched = false;
	for (i = 0; i < rx->nr_states; i++) {
		const struct vmig_state_reg *reg = rx->states[i].reg;

		if (reg->ops.load_abort)
			reg->ops.load_abort(reg->opaque);
	}
}
