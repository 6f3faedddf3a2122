/*
 * sections.c: the sections a migration moves, in their order (see
 * section.h).
 *
 * This file owns the source's set of sections: which ones there are (a
 * new one is one line in the table below, and its file), the order of
 * the calls, which section fills the pooled batches and which put their
 * frames between them and after them, and the first failure's message.
 */
#include "section.h"

static const struct vmig_section_ops *const section_ops[] = {
	[VMIG_SECTION_RAM] = &vmig_section_ram,
	[VMIG_SECTION_DEVICES] = &vmig_section_devstate,
	[VMIG_SECTION_STATE] = &vmig_section_state,
};

_Static_assert(sizeof(section_ops) / sizeof(section_ops[0]) ==
		       VMIG_SECTION_NR,
	       "every section has its ops");

void vmig_sections_init(struct vmig_sections *set, vmig_session *s,
			struct vmig_engine *e)
{
	uint32_t i;

	for (i = 0; i < VMIG_SECTION_NR; i++) {
		set->sec[i].ops = section_ops[i];
		set->sec[i].s = s;
		set->sec[i].e = e;
	}
}

/* The section failed with ret: its message is the set's. */
static int sections_failed(struct vmig_sections *set,
			   struct vmig_section *sec, int ret)
{
	set->why = sec->err;
	return ret;
}

int vmig_sections_setup(struct vmig_sections *set)
{
	uint32_t i;
	int ret;

	for (i = 0; i < VMIG_SECTION_NR; i++) {
		ret = set->sec[i].ops->setup(&set->sec[i]);
		if (ret < 0)
			return sections_failed(set, &set->sec[i], ret);
	}
	return 0;
}

int vmig_sections_live(struct vmig_sections *set)
{
	struct vmig_section *sec;
	uint32_t i;
	int ret;

	for (i = 0; i < VMIG_SECTION_NR; i++) {
		sec = &set->sec[i];
		if (!sec->ops->live_start)
			continue;
		ret = sec->ops->live_start(sec);
		if (ret < 0)
			return sections_failed(set, sec, ret);
	}
	return 0;
}

int vmig_sections_stop(struct vmig_sections *set)
{
	struct vmig_section *sec;
	uint32_t i;
	int ret;

	for (i = 0; i < VMIG_SECTION_NR; i++) {
		sec = &set->sec[i];
		if (!sec->ops->stop)
			continue;
		ret = sec->ops->stop(sec);
		if (ret < 0)
			return sections_failed(set, sec, ret);
	}
	return 0;
}

void vmig_sections_recover(struct vmig_sections *set)
{
	uint32_t i;

	for (i = 0; i < VMIG_SECTION_NR; i++) {
		if (set->sec[i].ops->recover)
			set->sec[i].ops->recover(&set->sec[i]);
	}
}

void vmig_sections_cleanup(struct vmig_sections *set)
{
	uint32_t i;

	for (i = 0; i < VMIG_SECTION_NR; i++)
		set->sec[i].ops->cleanup(&set->sec[i]);
}

void vmig_sections_pass(struct vmig_sections *set, uint64_t dirty,
			bool final)
{
	uint32_t i;

	for (i = 0; i < VMIG_SECTION_NR; i++) {
		if (set->sec[i].ops->pass_begin)
			set->sec[i].ops->pass_begin(&set->sec[i], dirty,
						    final);
	}
	set->fill = 0;
}

uint64_t vmig_sections_dirty(struct vmig_sections *set)
{
	struct vmig_section *ram = &set->sec[VMIG_SECTION_RAM];

	return ram->ops->pending(ram);
}

uint64_t vmig_sections_pending(struct vmig_sections *set)
{
	uint64_t sum = 0;
	uint32_t i;

	for (i = 0; i < VMIG_SECTION_NR; i++) {
		if (i != VMIG_SECTION_RAM && set->sec[i].ops->pending)
			sum += set->sec[i].ops->pending(&set->sec[i]);
	}
	return sum;
}

bool vmig_sections_fill(struct vmig_sections *set,
			struct vmig_section_sink *out, bool final)
{
	struct vmig_section *sec;
	int ret = 1;

	while (set->fill < VMIG_SECTION_NR && ret == 1) {
		sec = &set->sec[set->fill];
		if (sec->ops->batched)
			ret = final ? sec->ops->save_final(sec, out)
				    : sec->ops->save_live(sec, out);
		if (ret == 1)
			set->fill++;
	}
	return set->fill == VMIG_SECTION_NR;
}

int vmig_sections_save_live(struct vmig_sections *set,
			    struct vmig_section_sink *out)
{
	struct vmig_section *sec;
	uint32_t i;
	int ret;

	for (i = 0; i < VMIG_SECTION_NR; i++) {
		sec = &set->sec[i];
		if (sec->ops->batched || !sec->ops->save_live)
			continue;
		ret = sec->ops->save_live(sec, out);
		if (ret < 0)
			return sections_failed(set, sec, ret);
	}
	return 0;
}

int vmig_sections_save_final(struct vmig_sections *set,
			     struct vmig_section_sink *out)
{
	struct vmig_section *sec;
	int ret;

	for (; set->tail < VMIG_SECTION_NR; set->tail++) {
		sec = &set->sec[set->tail];
		if (sec->ops->batched || !sec->ops->save_final)
			continue;
		ret = sec->ops->save_final(sec, out);
		if (ret < 0)
			return sections_failed(set, sec, ret);
		if (ret == 0)
			return 0;
	}
	return 1;
}
