/*
 * truth.c: comparing what the dirty sources reported with what the
 * simulated devices really wrote (the simulator's ground truth, plugged
 * into a session as its observer).
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
 *
 * The same comparison judges the sources' reports the other way round
 * (docs/report.md): what a source marked dirty in an interval that no
 * device wrote then, nor while the sync ran, is its pages_unwritten. The
 * library counts that from the pages a compare gives it as written.
 *
 * The session's records (its regions' memory and dirty bitmaps) are read
 * through the library's internal header: the simulator is built with it.
 */
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "core/internal.h"
#include "ksim/ksim.h"
#include "sim/truth.h"

struct vmig_truth {
	vmig_session *s;
	struct ksim *k;
	bool concurrent;
	uint64_t **written; /* per region: pages written since the last sync */
	uint64_t **prev;    /* per region: what the last sync reported */
	/*
	 * Per region: written while the sync ran (drained right after it:
	 * the next interval's, but the sync may have reported them), and
	 * written pages a call settled since the last compare. Both count
	 * as written when a source's report is judged.
	 */
	uint64_t **late;
	uint64_t **credit;
	bool credit_stale;  /* credit was given to the library: clear it */
	uint64_t **into;    /* where truth_write puts what it drains */
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
		if (t->late)
			free(t->late[i]);
		if (t->credit)
			free(t->credit[i]);
	}
	free(t->written);
	free(t->prev);
	free(t->late);
	free(t->credit);
	free(t);
}

int vmig_truth_new(vmig_session *s, struct ksim *k, bool concurrent,
		   struct vmig_truth **out)
{
	struct vmig_truth *t;
	size_t i, n = s->nr_regions ? s->nr_regions : 1;

	*out = NULL;
	if (!k)
		return 0;
	t = calloc(1, sizeof(*t));
	if (!t)
		return -ENOMEM;
	t->s = s;
	t->k = k;
	t->concurrent = concurrent;
	t->written = calloc(n, sizeof(*t->written));
	t->prev = calloc(n, sizeof(*t->prev));
	t->late = calloc(n, sizeof(*t->late));
	t->credit = calloc(n, sizeof(*t->credit));
	if (!t->written || !t->prev || !t->late || !t->credit) {
		vmig_truth_free(t);
		return -ENOMEM;
	}
	for (i = 0; i < s->nr_regions; i++) {
		uint64_t words = vmig_bitmap_words(s->regions[i].npages);

		t->written[i] = calloc(words, sizeof(uint64_t));
		t->prev[i] = calloc(words, sizeof(uint64_t));
		t->late[i] = calloc(words, sizeof(uint64_t));
		t->credit[i] = calloc(words, sizeof(uint64_t));
		if (!t->written[i] || !t->prev[i] || !t->late[i] ||
		    !t->credit[i]) {
			vmig_truth_free(t);
			return -ENOMEM;
		}
	}
	t->into = t->written;
	*out = t;
	return 0;
}

/* The region holding [hva, hva + len), or -1. */
static int region_of(const vmig_session *s, const void *hva, uint64_t len)
{
	uintptr_t a = (uintptr_t)hva;
	size_t i;

	for (i = 0; i < s->nr_regions; i++) {
		const struct vmig_region_rec *r = &s->regions[i];
		uintptr_t base = (uintptr_t)r->hva;

		if (a >= base && len <= r->length &&
		    a - base <= r->length - len)
			return (int)i;
	}
	return -1;
}

/* The credit the last compare gave the library is done with. */
static void credit_fresh(struct vmig_truth *t)
{
	size_t i;

	if (!t->credit_stale)
		return;
	for (i = 0; i < t->s->nr_regions; i++)
		memset(t->credit[i], 0,
		       vmig_bitmap_bytes(t->s->regions[i].npages));
	t->credit_stale = false;
}

static void truth_write(void *opaque, const struct ksim_write *w)
{
	struct vmig_truth *t = opaque;
	int r = region_of(t->s, w->hva, w->len ? w->len : 1);
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
	vmig_bitmap_set(t->into[r], first, last - first + 1);
}

void vmig_truth_reset(struct vmig_truth *t)
{
	size_t i;

	if (!t)
		return;
	for (i = 0; i < t->s->nr_regions; i++) {
		uint64_t np = t->s->regions[i].npages;

		memset(t->written[i], 0, vmig_bitmap_bytes(np));
		memset(t->credit[i], 0, vmig_bitmap_bytes(np));
		/*
		 * Nothing "reported before" the first sync. What was written
		 * before the sources saw writes is drained and left unchecked
		 * below (tracking has started when this runs), so every write
		 * from here on must be in the first sync or, drained late, in
		 * the second; an all-ones set here (tracking's start marks
		 * everything dirty) let any miss of the first pass through.
		 */
		memset(t->prev[i], 0, vmig_bitmap_bytes(np));
	}
	/*
	 * What was written so far is covered by tracking's start, not to
	 * be checked; but the sources may have seen the writes made since
	 * they started, and report them at the first sync: they count as
	 * written when that report is judged.
	 */
	t->credit_stale = false;
	t->into = t->credit;
	ksim_truth_drain(t->k, truth_write, t);
	t->into = t->written;
	t->writes = 0;
	t->stray = 0;
	t->settled = 0;
}

void vmig_truth_drain(struct vmig_truth *t)
{
	if (t)
		ksim_truth_drain(t->k, truth_write, t);
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
	credit_fresh(t);
	for (r = 0; r < s->nr_regions; r++) {
		const struct vmig_region_rec *rec = &s->regions[r];
		uint64_t *wr = t->written[r];

		for (w = 0; w < vmig_bitmap_words(rec->npages); w++) {
			uint64_t covered = wr[w] & rec->dirty[w];

			t->settled += (uint64_t)__builtin_popcountll(covered);
			t->credit[r][w] |= covered;
			wr[w] &= ~covered;
		}
	}
}

void vmig_truth_compare(struct vmig_truth *t, struct vmig_sync_truth *out)
{
	vmig_session *s = t->s;
	uint64_t written = 0, missed = 0, w, writes, stray;
	size_t r;

	/*
	 * What was written while the sync ran belongs to the next interval
	 * (its counts wait for the next compare), but the sync may have
	 * reported it: when the sources' reports are judged, it counts as
	 * written, as do the pages a call settled.
	 */
	writes = t->writes;
	stray = t->stray;
	t->into = t->late;
	vmig_truth_drain(t);
	t->into = t->written;
	credit_fresh(t);
	for (r = 0; r < s->nr_regions; r++) {
		uint64_t words = vmig_bitmap_words(s->regions[r].npages);

		for (w = 0; w < words; w++)
			t->credit[r][w] |= t->written[r][w] | t->late[r][w];
	}
	/* The library judges the sources' reports with it. */
	out->written = t->credit;
	t->credit_stale = true;

	for (r = 0; r < s->nr_regions; r++) {
		const struct vmig_region_rec *rec = &s->regions[r];
		uint64_t words = vmig_bitmap_words(rec->npages);
		uint64_t *wr = t->written[r], *pv = t->prev[r];

		written += vmig_bitmap_count(wr, 0, rec->npages);
		for (w = 0; w < words; w++) {
			uint64_t seen = rec->dirty[w];

			if (t->concurrent)
				seen |= pv[w];
			missed += (uint64_t)__builtin_popcountll(wr[w] & ~seen);
		}
		/* The late writes are the next interval's first. */
		memcpy(wr, t->late[r], words * sizeof(uint64_t));
		memset(t->late[r], 0, words * sizeof(uint64_t));
		if (t->concurrent)
			memcpy(pv, rec->dirty, words * sizeof(uint64_t));
	}
	missed += stray;
	written += t->settled;
	out->writes += writes;
	out->pages_written += written;
	out->pages_missed += missed;
	/* The late drain's own counts go to the next compare. */
	t->writes -= writes;
	t->stray -= stray;
	t->settled = 0;
}

void vmig_truth_on_sync(struct vmig_truth *t, bool after,
			struct vmig_sync_truth *out)
{
	if (!after)
		vmig_truth_drain(t);
	else if (out)
		vmig_truth_compare(t, out);
}

static void observe_started(void *opaque)
{
	vmig_truth_reset(opaque);
}

static void observe_sync(void *opaque, bool after, struct vmig_sync_truth *out)
{
	vmig_truth_on_sync(opaque, after, out);
}

static void observe_call(void *opaque)
{
	vmig_truth_settle(opaque);
}

int vmig_truth_observe(vmig_session *s, struct vmig_truth *t)
{
	static const struct vmig_observer obs = {
		.size = sizeof(obs),
		.flags = VMIG_OBSERVER_TRUTH,
		.tracking_started = observe_started,
		.sync = observe_sync,
		.vmm_call_done = observe_call,
	};

	return vmig_set_observer(s, t ? &obs : NULL, t);
}
