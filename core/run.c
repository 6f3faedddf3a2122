/*
 * run.c: running what a configuration says.
 *
 * A source run today is a tracking run: start every dirty source, let the
 * simulated devices write (when the kernel is simulated), sync the sources
 * for the configured number of iterations, and compare what they reported
 * with what the devices really wrote. The comparison is per iteration: a
 * page written between two syncs must be reported by the second one, or
 * it is missed. The report says how many pages were written, reported and
 * missed; missed must be 0.
 */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "../tests/ksim/ksim.h"
#include "internal.h"

static uint64_t now_us(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000000u + (uint64_t)ts.tv_nsec / 1000u;
}

struct truth {
	vmig_session *s;
	uint64_t **pages; /* per region: pages the devices wrote */
	uint64_t stray;   /* writes that landed outside guest memory */
};

static void truth_write(void *opaque, const struct ksim_write *w)
{
	struct truth *t = opaque;
	int r = vmig_region_find_hva(t->s, w->hva, w->len ? w->len : 1);
	const struct vmig_region_rec *rec;
	uint64_t off, first, last;

	if (r < 0 || !w->len) {
		t->stray += w->len != 0;
		return;
	}
	rec = &t->s->regions[r];
	off = (uint64_t)((uint8_t *)w->hva - rec->hva);
	first = off / VMIG_PAGE_SIZE;
	last = (off + w->len - 1) / VMIG_PAGE_SIZE;
	vmig_bitmap_set(t->pages[r], first, last - first + 1);
}

static void truth_ignore(void *opaque, const struct ksim_write *w)
{
	(void)opaque;
	(void)w;
}

static void truth_free(struct truth *t, size_t n)
{
	size_t i;

	if (!t->pages)
		return;
	for (i = 0; i < n; i++)
		free(t->pages[i]);
	free(t->pages);
}

/* Compares one iteration's truth with the regions' dirty bitmaps. */
static void compare(vmig_session *s, struct truth *t,
		    struct vmig_iter_stats *it)
{
	size_t r;
	uint64_t w;

	for (r = 0; r < s->nr_regions; r++) {
		const struct vmig_region_rec *rec = &s->regions[r];
		uint64_t words = vmig_bitmap_words(rec->npages);

		it->pages_reported += vmig_bitmap_count(rec->dirty, 0,
							rec->npages);
		if (!t->pages)
			continue;
		it->pages_written += vmig_bitmap_count(t->pages[r], 0,
						       rec->npages);
		for (w = 0; w < words; w++)
			it->pages_missed += (uint64_t)__builtin_popcountll(
				t->pages[r][w] & ~rec->dirty[w]);
		memset(t->pages[r], 0, words * sizeof(uint64_t));
	}
	it->pages_missed += t->stray;
	t->stray = 0;
}

static int write_report(vmig_session *s, const char *path)
{
	char *tmp = NULL, *buf;
	int64_t len;
	int fd, ret = 0;

	len = vmig_report_json(s, NULL, 0);
	if (len < 0)
		return vmig_fail(s, (int)len, "report: %s",
				 vmig_strerror((int)len));
	buf = malloc((size_t)len + 1);
	if (!buf)
		return -ENOMEM;
	vmig_report_json(s, buf, (size_t)len + 1);
	buf[len] = '\n';
	/* Written aside and renamed: a reader never sees half a report. */
	if (asprintf(&tmp, "%s.tmp.%d", path, (int)getpid()) < 0) {
		free(buf);
		return -ENOMEM;
	}
	fd = open(tmp, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
	if (fd < 0) {
		ret = vmig_fail(s, -errno, "report %s: %s", path,
				vmig_strerror(-errno));
		goto out;
	}
	if (write(fd, buf, (size_t)len + 1) != len + 1) {
		ret = vmig_fail(s, -EIO, "report %s: short write", path);
		close(fd);
		unlink(tmp);
		goto out;
	}
	if (close(fd) < 0 || rename(tmp, path) < 0) {
		ret = vmig_fail(s, -errno, "report %s: %s", path,
				vmig_strerror(-errno));
		unlink(tmp);
	}
out:
	free(tmp);
	free(buf);
	return ret;
}

VMIG_API int vmig_run(vmig_session *s, const char *report_path)
{
	struct truth t = { .s = s };
	struct vmig_run_stats *st;
	uint64_t start;
	uint32_t i;
	size_t r;
	int ret;

	if (!s)
		return -EINVAL;
	if (s->role != VMIG_ROLE_SOURCE)
		return vmig_fail(s, -ENOTSUP,
				 "run: this version runs source sessions only "
				 "(dirty tracking); the destination side comes "
				 "with the migration engine");
	if (!report_path)
		report_path = s->report_path;

	st = &s->stats;
	free(st->iters);
	memset(st, 0, sizeof(*st));
	st->iters = calloc(s->run_iterations ? s->run_iterations : 1,
			   sizeof(*st->iters));
	if (!st->iters)
		return -ENOMEM;
	if (s->ksim) {
		t.pages = calloc(s->nr_regions ? s->nr_regions : 1,
				 sizeof(*t.pages));
		if (!t.pages)
			return -ENOMEM;
		for (r = 0; r < s->nr_regions; r++) {
			t.pages[r] = calloc(vmig_bitmap_words(
						    s->regions[r].npages),
					    sizeof(uint64_t));
			if (!t.pages[r]) {
				truth_free(&t, s->nr_regions);
				return -ENOMEM;
			}
		}
		st->truth = true;
	}

	start = now_us();
	ret = vmig_tracking_start(s);
	if (ret < 0)
		goto out;
	/*
	 * Iteration 0 of a migration sends all of memory; here it is taken
	 * as sent, and what the devices wrote before is forgotten.
	 */
	for (r = 0; r < s->nr_regions; r++)
		vmig_dirty_clear(s, (uint32_t)r);
	if (s->ksim)
		ksim_truth_drain(s->ksim, truth_ignore, NULL);

	for (i = 0; i < s->run_iterations; i++) {
		struct vmig_iter_stats *it = &st->iters[i];
		struct vmig_progress p = { .size = sizeof(p) };
		uint64_t t0 = now_us();
		int64_t n;

		it->iteration = i + 1;
		if (s->ksim) {
			n = ksim_step(s->ksim);
			it->writes = n > 0 ? (uint64_t)n : 0;
			ksim_truth_drain(s->ksim, truth_write, &t);
		}
		n = vmig_dirty_sync(s);
		if (n < 0) {
			ret = (int)n;
			break;
		}
		compare(s, &t, it);
		it->duration_us = now_us() - t0;
		st->nr_iters++;
		st->pages_written += it->pages_written;
		st->pages_reported += it->pages_reported;
		st->pages_missed += it->pages_missed;
		for (r = 0; r < s->nr_regions; r++)
			vmig_dirty_clear(s, (uint32_t)r);
		if (s->progress) {
			p.iteration = it->iteration;
			p.pages_dirty = it->pages_reported;
			p.bytes_left = it->pages_reported * VMIG_PAGE_SIZE;
			p.dirty_rate = it->duration_us
					       ? it->pages_reported *
							 VMIG_PAGE_SIZE *
							 1000000u /
							 it->duration_us
					       : 0;
			s->progress(s->progress_opaque, &p);
		}
	}
	vmig_tracking_stop(s);
	st->duration_us = now_us() - start;
	st->valid = true;

	if (report_path) {
		int wret = write_report(s, report_path);

		if (ret == 0)
			ret = wret;
	}
	if (ret == 0 && st->pages_missed)
		ret = vmig_fail(s, VMIG_EMISSED,
				"run: %llu written page(s) were not reported",
				(unsigned long long)st->pages_missed);
out:
	truth_free(&t, s->nr_regions);
	return ret;
}
