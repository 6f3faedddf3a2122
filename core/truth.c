/*
 * truth.c: comparing what the dirty sources reported with what the
 * simulated devices really wrote.
 *
 * The simulated kernel records every DMA write (ksim_truth_drain). A run
 * drains those records just before each sync and checks, page by page,
 * that every page written was reported. When the devices write while the
 * run works (a migration: a workload thread keeps the guest busy), a
 * write that lands between the drain and the sync is reported by that
 * sync but drained only the next time; so a page written in iteration i
 * must be in what sync i-1 or sync i reported, else it was missed. When
 * nothing writes concurrently (a tracking run steps the devices itself),
 * the check is strict: sync i must report it.
 */
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "../tests/ksim/ksim.h"
#include "engine.h"

struct vmig_truth {
	vmig_session *s;
	bool concurrent;
	uint64_t **written; /* per region: pages written since the last sync */
	uint64_t **prev;    /* per region: what the last sync reported */
	uint64_t writes;    /* writes drained since the last compare */
	uint64_t stray;     /* writes that landed outside guest memory */
	uint64_t settled;   /* pages written and settled since then */
};

void vmig_truth_free(struct vmig_truth *t)
{
	size_t i;

	if (!t)
		return;
	for (i = 0; i < t->s->nr_regions; i++) {
		if (t->written)
			free(t->written[i]);
		if (t->prev)
			free(t->prev[i]);
	}
	free(t->written);
	free(t->prev);
	free(t);
}

int vmig_truth_new(vmig_session *s, bool concurrent, struct vmig_truth **out)
{
	struct vmig_truth *t;
	size_t i, n = s->nr_regions ? s->nr_regions : 1;

	*out = NULL;
	if (!s->ksim)
		return 0;
	t = calloc(1, sizeof(*t));
	if (!t)
		return -ENOMEM;
	t->s = s;
	t->concurrent = concurrent;
	t->written = calloc(n, sizeof(*t->written));
	t->prev = calloc(n, sizeof(*t->prev));
	if (!t->written || !t->prev) {
		vmig_truth_free(t);
		return -ENOMEM;
	}
	for (i = 0; i < s->nr_regions; i++) {
		uint64_t words = vmig_bitmap_words(s->regions[i].npages);

		t->written[i] = calloc(words, sizeof(uint64_t));
		t->prev[i] = calloc(words, sizeof(uint64_t));
		if (!t->written[i] || !t->prev[i]) {
			vmig_truth_free(t);
			return -ENOMEM;
		}
	}
	*out = t;
	return 0;
}

static void truth_write(void *opaque, const struct ksim_write *w)
{
	struct vmig_truth *t = opaque;
	int r = vmig_region_find_hva(t->s, w->hva, w->len ? w->len : 1);
	const struct vmig_region_rec *rec;
	uint64_t off, first, last;

	t->writes++;
	if (r < 0 || !w->len) {
		t->stray += w->len != 0;
		return;
	}
	rec = &t->s->regions[r];
	off = (uint64_t)((uint8_t *)w->hva - rec->hva);
	first = off / VMIG_PAGE_SIZE;
	last = (off + w->len - 1) / VMIG_PAGE_SIZE;
	vmig_bitmap_set(t->written[r], first, last - first + 1);
}

static void truth_ignore(void *opaque, const struct ksim_write *w)
{
	(void)opaque;
	(void)w;
}

void vmig_truth_reset(struct vmig_truth *t)
{
	size_t i;

	if (!t)
		return;
	ksim_truth_drain(t->s->ksim, truth_ignore, NULL);
	for (i = 0; i < t->s->nr_regions; i++) {
		uint64_t np = t->s->regions[i].npages;

		memset(t->written[i], 0, vmig_bitmap_bytes(np));
		/*
		 * Nothing "reported before" the first sync. What was written
		 * before the sources saw writes is drained and forgotten just
		 * above (tracking has started when this runs), so every write
		 * from here on must be in the first sync or, drained late, in
		 * the second; an all-ones set here (tracking's start marks
		 * everything dirty) let any miss of the first pass through.
		 */
		memset(t->prev[i], 0, vmig_bitmap_bytes(np));
	}
	t->writes = 0;
	t->stray = 0;
	t->settled = 0;
}

void vmig_truth_drain(struct vmig_truth *t)
{
	if (t)
		ksim_truth_drain(t->s->ksim, truth_write, t);
}

/*
 * A call of the VMM between two syncs (a hot-plug, an unplug, an unmap
 * and the sources' failures it causes) marks pages dirty in the regions'
 * bitmaps, covering what was written there before the call: the engine
 * sends such a page after the call. But it may send it, and clear its
 * bit, before the next sync, which then does not report it; the rule
 * above would count a miss where nothing was lost (found by the chaos
 * test: a last write before an unplug or an unmap, harvested into the
 * bitmap and sent in the same iteration). So, right after such a call,
 * the writes made so far to pages dirty now are settled: covered, since
 * the page goes after this point. Writes made later are checked as
 * usual. Runs on the migration's loop, which alone clears bits.
 */
void vmig_truth_settle(struct vmig_truth *t)
{
	vmig_session *s = t->s;
	size_t r;
	uint64_t w;

	vmig_truth_drain(t);
	for (r = 0; r < s->nr_regions; r++) {
		const struct vmig_region_rec *rec = &s->regions[r];
		uint64_t *wr = t->written[r];

		for (w = 0; w < vmig_bitmap_words(rec->npages); w++) {
			uint64_t covered = wr[w] & rec->dirty[w];

			t->settled += (uint64_t)__builtin_popcountll(covered);
			wr[w] &= ~covered;
		}
	}
}

void vmig_truth_compare(struct vmig_truth *t, struct vmig_iter_stats *it)
{
	vmig_session *s = t->s;
	uint64_t reported = 0, written = 0, missed = 0, w;
	size_t r;

	for (r = 0; r < s->nr_regions; r++) {
		const struct vmig_region_rec *rec = &s->regions[r];
		uint64_t words = vmig_bitmap_words(rec->npages);
		uint64_t *wr = t->written[r], *pv = t->prev[r];

		reported += vmig_bitmap_count(rec->dirty, 0, rec->npages);
		written += vmig_bitmap_count(wr, 0, rec->npages);
		for (w = 0; w < words; w++) {
			uint64_t seen = rec->dirty[w];

			if (t->concurrent)
				seen |= pv[w];
			missed += (uint64_t)__builtin_popcountll(wr[w] & ~seen);
		}
		memset(wr, 0, words * sizeof(uint64_t));
		if (t->concurrent)
			memcpy(pv, rec->dirty, words * sizeof(uint64_t));
	}
	missed += t->stray;
	written += t->settled;
	it->writes += t->writes;
	it->pages_written += written;
	it->pages_missed += missed;
	it->pages_reported = reported;
	t->writes = 0;
	t->stray = 0;
	t->settled = 0;
}
