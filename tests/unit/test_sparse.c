/*
 * test_sparse.c: a source does not read guest memory that was never
 * written, where the backing can say so (a memfd's holes, pagemap for
 * private anonymous memory), and never skips a page that was.
 *
 * Each test migrates a mostly untouched region in one process
 * (vmig_migrate_local, verify audit: the digests of both ends are
 * compared) and then asks the kernel how much of the source's memory was
 * touched: mincore() for the anonymous region (a page read once maps the
 * zero page and counts), the memfd's allocated blocks for the memfd (a
 * page read through a shared mapping is allocated). The same migration
 * without the backing's information reads everything: the check can
 * tell.
 */
#include <errno.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <fcntl.h>
#include <linux/userfaultfd.h>
#include <sys/ioctl.h>
#include <sys/mman.h>
#include <sys/syscall.h>
#include <linux/magic.h>
#include <sys/stat.h>
#include <sys/statfs.h>
#include <unistd.h>

#include <CUnit/CUnit.h>
#include <vmig/vmig.h>

#include "core/engine.h"
#include "core/section.h"
#include "testutil.h"
#include "common/vmmcount.h"

#define PG 4096u
#define NPAGES 16384u /* 64 MiB */
#define LEN ((size_t)NPAGES * PG)

/* The pages the tests write: the first, one in the middle, the last. */
static const uint64_t written[] = { 0, NPAGES / 2 + 7, NPAGES - 1 };
#define NWRITTEN (sizeof(written) / sizeof(written[0]))

static void write_pages(uint8_t *mem)
{
	size_t i;

	for (i = 0; i < NWRITTEN; i++)
		memset(mem + written[i] * PG, (int)(0xa0 + i), PG);
}

/* Whether fd's file is on tmpfs. */
static bool vmig_test_on_tmpfs(int fd)
{
	struct statfs sfs;

	return !fstatfs(fd, &sfs) && sfs.f_type == TMPFS_MAGIC;
}

/* Pages of [mem, mem + LEN) that mincore says are resident. */
static uint64_t resident(uint8_t *mem)
{
	static unsigned char vec[NPAGES];
	uint64_t i, n = 0;

	CU_ASSERT_FATAL(mincore(mem, LEN, vec) == 0);
	for (i = 0; i < NPAGES; i++)
		n += vec[i] & 1;
	return n;
}

/* A source session of one region as given, its VMM counting. */
static vmig_session *source(uint8_t *hva, uint32_t flags, int fd,
			    struct vmig_vmm_count *vc)
{
	return vmig_test_region_session(VMIG_ROLE_SOURCE, hva, LEN, flags, fd,
					vc);
}

static uint8_t *anon_map(void)
{
	uint8_t *m = mmap(NULL, LEN, PROT_READ | PROT_WRITE,
			  MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0);

	CU_ASSERT_FATAL(m != MAP_FAILED);
	/* One written page must stay one resident page. */
	madvise(m, LEN, MADV_NOHUGEPAGE);
	return m;
}

/*
 * Migrates src into a fresh anonymous destination; checks the written
 * pages arrived (and the zero ones are zero), both VMMs' calls. Returns
 * the source's report figure pages_unread of iteration 0.
 */
static double migrate_and_check(vmig_session *src, const uint8_t *expect,
				struct vmig_vmm_count *svc)
{
	struct vmig_vmm_count dvc = { 0 };
	uint8_t *dmem = NULL;
	vmig_session *dst = vmig_test_ram_session(VMIG_ROLE_DESTINATION, LEN,
						  false, &dvc, &dmem);
	struct vmig_policies pol = { .size = sizeof(pol),
				     .verify = VMIG_VERIFY_AUDIT };
	char *rep;
	int64_t n;
	double unread = -1;
	size_t i;

	CU_ASSERT_FATAL(vmig_set_policies(src, &pol) == 0);
	/* 0 with verify audit: the destination's digest equals ours. */
	CU_ASSERT_EQUAL_FATAL(vmig_migrate_local(src, dst), 0);
	for (i = 0; i < NWRITTEN; i++)
		CU_ASSERT(memcmp(dmem + written[i] * PG,
				 expect + written[i] * PG, PG) == 0);
	CU_ASSERT(dmem[PG] == 0 && dmem[LEN / 2] == 0);
	CU_ASSERT_EQUAL(atomic_load(&svc->stops), 1);
	CU_ASSERT_EQUAL(atomic_load(&svc->resumes), 0);
	CU_ASSERT_EQUAL(atomic_load(&dvc.starts), 1);
	n = vmig_report_json(src, NULL, 0);
	CU_ASSERT_FATAL(n > 0);
	rep = malloc((size_t)n + 1);
	CU_ASSERT_FATAL(rep != NULL);
	CU_ASSERT(vmig_report_json(src, rep, (size_t)n + 1) == n);
	{
		const char *u = strstr(rep, "\"pages_unread\":");

		if (u)
			unread = strtod(u + strlen("\"pages_unread\":"), NULL);
	}
	free(rep);
	vmig_test_ram_free(dst, dmem, LEN);
	return unread;
}

/* pagemap: only an entry neither present nor swapped is a hole. */
static void test_pagemap_bits(void)
{
	CU_ASSERT(vmig_pagemap_hole(0));
	CU_ASSERT(vmig_pagemap_hole(0x1234)); /* a hidden pfn, no flags */
	CU_ASSERT(!vmig_pagemap_hole(1ull << 63)); /* present */
	CU_ASSERT(!vmig_pagemap_hole(1ull << 62)); /* swapped */
	CU_ASSERT(!vmig_pagemap_hole((1ull << 63) | (1ull << 62)));
	CU_ASSERT(!vmig_pagemap_hole((1ull << 62) | 0x5678)); /* swap entry */
}

/*
 * The extent of a private anonymous region: written pages are data, a
 * page paged out to swap stays data (when this machine can swap).
 */
static void test_anon_extent(void)
{
	struct vmig_region_rec reg = { .fd = -1, .npages = NPAGES,
				       .anon_private = true };
	uint8_t *mem = anon_map();
	uint64_t n;
	bool hole;

	reg.hva = mem;
	write_pages(mem);
	n = vmig_region_extent(&reg, 0, NPAGES, &hole);
	CU_ASSERT(!hole && n == 1);
	n = vmig_region_extent(&reg, 1, NPAGES - 1, &hole);
	CU_ASSERT(hole && n == written[1] - 1);
	n = vmig_region_extent(&reg, written[1], 100, &hole);
	CU_ASSERT(!hole && n == 1);
	/* Without the flag nothing is known: all data. */
	reg.anon_private = false;
	n = vmig_region_extent(&reg, 1, 100, &hole);
	CU_ASSERT(!hole && n == 100);
	reg.anon_private = true;
#ifdef MADV_PAGEOUT
	if (madvise(mem + written[1] * PG, PG, MADV_PAGEOUT) == 0) {
		/* Swapped or still present: never a hole. */
		n = vmig_region_extent(&reg, written[1], 1, &hole);
		CU_ASSERT(!hole && n == 1);
	}
#endif
	munmap(mem, LEN);
}

/*
 * The extent of a memfd: runs of data end where the file's data ends,
 * found in bounded looks; a short hole inside data counts as data (it is
 * read, never skipped); a page written through another mapping is data.
 */
static void test_memfd_extent(void)
{
	struct vmig_region_rec reg = { .npages = NPAGES, .length = LEN };
	int fd = memfd_create("extent", MFD_CLOEXEC);
	char why[256];
	uint8_t *m;
	uint64_t n;
	bool hole;

	CU_ASSERT_FATAL(fd >= 0);
	CU_ASSERT_FATAL(ftruncate(fd, (off_t)LEN) == 0);
	m = mmap(NULL, LEN, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
	CU_ASSERT_FATAL(m != MAP_FAILED);
	reg.fd = fd;
	reg.hva = m;
	/* A memfd that hva maps shared: its holes are trusted. */
	CU_ASSERT_FATAL(vmig_region_backing(&reg, why, sizeof(why)) == 0);
	CU_ASSERT_FATAL(reg.fd_holes);
	memset(m, 1, 100 * PG);             /* data [0, 100) */
	memset(m + 200 * PG, 1, 1801 * PG); /* hole [100, 200), data to 2001 */
	memset(m + 5000 * PG, 1, PG);       /* hole [2001, 5000), data 5000 */
	n = vmig_region_extent(&reg, 0, NPAGES, &hole);
	CU_ASSERT(!hole && n == 2001);
	n = vmig_region_extent(&reg, 150, NPAGES - 150, &hole);
	CU_ASSERT(hole && n == 50);
	n = vmig_region_extent(&reg, 2001, NPAGES - 2001, &hole);
	CU_ASSERT(hole && n == 2999);
	n = vmig_region_extent(&reg, 5000, NPAGES - 5000, &hole);
	CU_ASSERT(!hole && n == 1);
	n = vmig_region_extent(&reg, 5001, NPAGES - 5001, &hole);
	CU_ASSERT(hole && n == NPAGES - 5001);
	/* At most max. */
	n = vmig_region_extent(&reg, 2001, 10, &hole);
	CU_ASSERT(hole && n == 10);
	n = vmig_region_extent(&reg, 0, 10, &hole);
	CU_ASSERT(!hole && n == 10);
	munmap(m, LEN);
	close(fd);
}

/*
 * Private anonymous memory, 3 pages of 16384 written: with the flag the
 * source reads only those (and sends the rest as zero); without it, it
 * reads everything.
 */
static void test_anon_holes_not_read(void)
{
	struct vmig_vmm_count vc = { 0 };
	uint8_t *mem = anon_map();
	vmig_session *s;
	double unread;

	write_pages(mem);
	CU_ASSERT_EQUAL(resident(mem), NWRITTEN);
	s = source(mem, VMIG_REGION_ANON_PRIVATE, -1, &vc);
	unread = migrate_and_check(s, mem, &vc);
	/* Neither the pass nor the audit's digest read a hole. */
	CU_ASSERT_EQUAL(resident(mem), NWRITTEN);
	CU_ASSERT_EQUAL(unread, NPAGES - NWRITTEN);
	vmig_session_free(s);

	/* The control: an hva alone is read in full. */
	memset(&vc, 0, sizeof(vc));
	s = source(mem, 0, -1, &vc);
	unread = migrate_and_check(s, mem, &vc);
	CU_ASSERT_EQUAL(unread, 0);
	CU_ASSERT(resident(mem) > NPAGES / 2);
	vmig_session_free(s);
	munmap(mem, LEN);
}

/*
 * A memfd written through another mapping (as another process would:
 * nothing in the registered mapping's page tables): the pages written
 * are migrated, the file's holes are never read (never allocated).
 */
static void test_memfd_holes_not_read(void)
{
	struct vmig_vmm_count vc = { 0 };
	uint8_t *hva, *other;
	vmig_session *s;
	struct stat st;
	double unread;
	int fd = memfd_create("sparse", MFD_CLOEXEC);

	CU_ASSERT_FATAL(fd >= 0);
	CU_ASSERT_FATAL(ftruncate(fd, (off_t)LEN) == 0);
	hva = mmap(NULL, LEN, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
	other = mmap(NULL, LEN, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
	CU_ASSERT_FATAL(hva != MAP_FAILED && other != MAP_FAILED);
	write_pages(other);
	s = source(hva, 0, fd, &vc);
	unread = migrate_and_check(s, other, &vc);
	CU_ASSERT_EQUAL(unread, NPAGES - NWRITTEN);
	CU_ASSERT_FATAL(fstat(fd, &st) == 0);
	/* At most a huge page per page written, where shmem uses them. */
	CU_ASSERT((uint64_t)st.st_blocks * 512 <= NWRITTEN * (2ull << 20));
	vmig_session_free(s);

	/* The control: without the fd, reading allocates the holes. */
	memset(&vc, 0, sizeof(vc));
	s = source(hva, 0, -1, &vc);
	migrate_and_check(s, other, &vc);
	CU_ASSERT_FATAL(fstat(fd, &st) == 0);
	CU_ASSERT((uint64_t)st.st_blocks * 512 >= LEN / 2);
	vmig_session_free(s);
	munmap(hva, LEN);
	munmap(other, LEN);
	close(fd);
}

/*
 * An fd whose holes do not describe hva's pages is never trusted: a
 * private mapping of the memfd (writes go to private copies, the file
 * stays a hole), a shared mapping at another offset, a file not on
 * tmpfs. Every page is then data, read and sent.
 */
static void test_fd_not_trusted(void)
{
	struct vmig_region_rec reg = { .npages = NPAGES, .length = LEN };
	int fd = memfd_create("untrusted", MFD_CLOEXEC);
	char path[] = "/var/tmp/vmig-sparse-XXXXXX", why[256];
	uint8_t *m;
	uint64_t n;
	bool hole;
	int ffd;

	CU_ASSERT_FATAL(fd >= 0);
	CU_ASSERT_FATAL(ftruncate(fd, (off_t)(2 * LEN)) == 0);
	reg.fd = fd;
	m = mmap(NULL, LEN, PROT_READ | PROT_WRITE, MAP_PRIVATE, fd, 0);
	CU_ASSERT_FATAL(m != MAP_FAILED);
	memset(m + 10 * PG, 0xab, PG);
	reg.hva = m;
	CU_ASSERT(vmig_region_backing(&reg, why, sizeof(why)) == 0);
	CU_ASSERT(!reg.fd_holes);
	n = vmig_region_extent(&reg, 0, NPAGES, &hole);
	CU_ASSERT(!hole && n == NPAGES);
	munmap(m, LEN);
	/* Shared, but at offset LEN while the VMM says 0. */
	m = mmap(NULL, LEN, PROT_READ | PROT_WRITE, MAP_SHARED, fd,
		 (off_t)LEN);
	CU_ASSERT_FATAL(m != MAP_FAILED);
	reg.hva = m;
	CU_ASSERT(vmig_region_backing(&reg, why, sizeof(why)) == 0);
	CU_ASSERT(!reg.fd_holes);
	reg.fd_offset = LEN;
	CU_ASSERT(vmig_region_backing(&reg, why, sizeof(why)) == 0);
	CU_ASSERT(reg.fd_holes);
	munmap(m, LEN);
	close(fd);
	/* A sparse file where /var/tmp is not tmpfs: its holes are not
	 * trusted (a private mapping of one would lose every write). */
	ffd = mkstemp(path);
	CU_ASSERT_FATAL(ffd >= 0);
	unlink(path);
	CU_ASSERT_FATAL(ftruncate(ffd, (off_t)LEN) == 0);
	m = mmap(NULL, LEN, PROT_READ | PROT_WRITE, MAP_SHARED, ffd, 0);
	CU_ASSERT_FATAL(m != MAP_FAILED);
	reg.fd = ffd;
	reg.fd_offset = 0;
	reg.hva = m;
	CU_ASSERT(vmig_region_backing(&reg, why, sizeof(why)) == 0);
	CU_ASSERT_EQUAL(reg.fd_holes, vmig_test_on_tmpfs(ffd));
	munmap(m, LEN);
	close(ffd);
}

/* VMIG_REGION_ANON_PRIVATE on memory that is not private anonymous. */
static void test_anon_flag_checked(void)
{
	struct vmig_region r = { .size = sizeof(r), .gpa = 0, .length = LEN,
				 .flags = VMIG_REGION_ANON_PRIVATE, .fd = -1 };
	int fd = memfd_create("flagged", MFD_CLOEXEC);
	vmig_session *s = NULL;
	uint8_t *shared, *file;

	CU_ASSERT_FATAL(fd >= 0 && ftruncate(fd, (off_t)LEN) == 0);
	shared = mmap(NULL, LEN, PROT_READ | PROT_WRITE,
		      MAP_SHARED | MAP_ANONYMOUS, -1, 0);
	file = mmap(NULL, LEN, PROT_READ | PROT_WRITE, MAP_PRIVATE, fd, 0);
	CU_ASSERT_FATAL(shared != MAP_FAILED && file != MAP_FAILED);
	CU_ASSERT_FATAL(vmig_session_new(NULL, &s) == 0);
	r.hva = shared;
	CU_ASSERT_EQUAL(vmig_region_add(s, &r, NULL), -EINVAL);
	CU_ASSERT(has(vmig_errmsg(s), "VMIG_REGION_ANON_PRIVATE, but its "
				      "memory is not private anonymous"));
	r.hva = file;
	CU_ASSERT_EQUAL(vmig_region_add(s, &r, NULL), -EINVAL);
	vmig_session_free(s);
	munmap(shared, LEN);
	munmap(file, LEN);
	close(fd);
}

/*
 * The pagemap entries of fake_lo's pages [fake_first, fake_end): swapped
 * out (bit 62), as the kernel says of pages it paged out under pressure.
 */
static uintptr_t fake_lo;
static uint64_t fake_first, fake_end;

static ssize_t fake_pagemap(int fd, void *buf, size_t len, off_t off)
{
	ssize_t got = pread(fd, buf, len, off);
	uint64_t *e = buf, first = (uint64_t)off / 8, i;

	for (i = 0; got > 0 && i < (uint64_t)got / 8; i++) {
		uint64_t page = first + i, q = page - fake_lo / PG;

		if (page >= fake_lo / PG && q >= fake_first && q < fake_end)
			e[i] = 1ull << 62;
	}
	return got;
}

/*
 * A page mincore() does not call resident is a hole only when pagemap
 * says it is neither present nor swapped: pages 20-29 of a region whose
 * pages 0-9 were written, the rest never, are swapped out (as pagemap
 * would say under memory pressure, on a machine that swaps): they are
 * data, read and sent, never sent as zero unread.
 */
static void test_swapped_not_a_hole(void)
{
	struct vmig_region_rec rec = { 0 };
	uint8_t *m = mmap(NULL, 64 * PG, PROT_READ | PROT_WRITE,
			  MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	bool hole;

	CU_ASSERT_FATAL(m != MAP_FAILED);
	madvise(m, 64 * PG, MADV_NOHUGEPAGE);
	memset(m, 'x', 10 * PG);
	rec.hva = m;
	rec.length = 64 * PG;
	rec.npages = 64;
	rec.fd = -1;
	rec.anon_private = true;
	fake_lo = (uintptr_t)m;
	fake_first = 20;
	fake_end = 30;
	vmig_pagemap_pread = fake_pagemap;
	CU_ASSERT_EQUAL(vmig_region_extent(&rec, 0, 64, &hole), 10);
	CU_ASSERT_FALSE(hole);
	CU_ASSERT_EQUAL(vmig_region_extent(&rec, 10, 54, &hole), 10);
	CU_ASSERT_TRUE(hole);
	CU_ASSERT_EQUAL(vmig_region_extent(&rec, 20, 44, &hole), 10);
	CU_ASSERT_FALSE(hole);
	CU_ASSERT_EQUAL(vmig_region_extent(&rec, 25, 39, &hole), 5);
	CU_ASSERT_FALSE(hole);
	CU_ASSERT_EQUAL(vmig_region_extent(&rec, 30, 34, &hole), 34);
	CU_ASSERT_TRUE(hole);
	/* A look that starts in a resident run stops where it ends. */
	CU_ASSERT_EQUAL(vmig_region_extent(&rec, 3, 61, &hole), 7);
	CU_ASSERT_FALSE(hole);
	vmig_pagemap_pread = pread;
	munmap(m, 64 * PG);
}

/*
 * Memory registered with userfaultfd in missing mode: a page not filled
 * yet is a hole whose contents are not zero (a VM restored lazily), so
 * VMIG_REGION_ANON_PRIVATE is refused on it, and a memfd's holes are not
 * trusted. Skipped where this process may not use userfaultfd.
 */
static void test_uffd_missing_refused(void)
{
	struct vmig_region r = { .size = sizeof(r), .gpa = 0, .length = LEN,
				 .flags = VMIG_REGION_ANON_PRIVATE, .fd = -1 };
	struct vmig_region_rec rec = { 0 };
	struct uffdio_api api = { .api = UFFD_API };
	struct uffdio_register ureg = { .mode = UFFDIO_REGISTER_MODE_MISSING };
	vmig_session *s = NULL;
	int uffd, mfd;
	uint8_t *anon, *shm;
	char why[256];

	uffd = (int)syscall(SYS_userfaultfd, O_CLOEXEC | UFFD_USER_MODE_ONLY);
	if (uffd < 0)
		uffd = (int)syscall(SYS_userfaultfd, O_CLOEXEC);
	if (uffd < 0 || ioctl(uffd, UFFDIO_API, &api) < 0) {
		printf("(skipped: userfaultfd: %s) ", strerror(errno));
		if (uffd >= 0)
			close(uffd);
		return;
	}
	anon = mmap(NULL, LEN, PROT_READ | PROT_WRITE,
		    MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	CU_ASSERT_FATAL(anon != MAP_FAILED);
	/* Before registering: accepted. */
	CU_ASSERT_FATAL(vmig_session_new(NULL, &s) == 0);
	r.hva = anon;
	CU_ASSERT_EQUAL(vmig_region_add(s, &r, NULL), 0);
	vmig_session_free(s);
	ureg.range.start = (uintptr_t)anon;
	ureg.range.len = LEN;
	CU_ASSERT_FATAL(ioctl(uffd, UFFDIO_REGISTER, &ureg) == 0);
	CU_ASSERT_FATAL(vmig_session_new(NULL, &s) == 0);
	CU_ASSERT_EQUAL(vmig_region_add(s, &r, NULL), -EINVAL);
	CU_ASSERT(has(vmig_errmsg(s), "registered with userfaultfd in "
				      "missing mode"));
	vmig_session_free(s);
	/* A memfd's holes, under the same registration: not trusted. */
	mfd = memfd_create("uffd", MFD_CLOEXEC);
	CU_ASSERT_FATAL(mfd >= 0 && ftruncate(mfd, (off_t)LEN) == 0);
	shm = mmap(NULL, LEN, PROT_READ | PROT_WRITE, MAP_SHARED, mfd, 0);
	CU_ASSERT_FATAL(shm != MAP_FAILED);
	rec.fd = mfd;
	rec.hva = shm;
	rec.length = LEN;
	CU_ASSERT(vmig_region_backing(&rec, why, sizeof(why)) == 0);
	CU_ASSERT_EQUAL(rec.fd_holes, vmig_test_on_tmpfs(mfd));
	ureg.range.start = (uintptr_t)shm;
	if (ioctl(uffd, UFFDIO_REGISTER, &ureg) == 0) {
		CU_ASSERT(vmig_region_backing(&rec, why, sizeof(why)) == 0);
		CU_ASSERT_FALSE(rec.fd_holes);
	} else {
		printf("(memfd part skipped: %s) ", strerror(errno));
	}
	munmap(shm, LEN);
	close(mfd);
	munmap(anon, LEN);
	close(uffd);
}

struct sink {
	uint8_t hdr[4][VMIG_FRAME_HDR];
	int n, room;
};

static uint8_t *sink_next(void *o)
{
	struct sink *k = o;

	return k->room > 0 ? k->hdr[k->n] : NULL;
}

static int sink_add(void *o, const void *d, size_t len, bool own)
{
	struct sink *k = o;

	(void)d;
	(void)len;
	(void)own;
	k->n++;
	k->room--;
	return 0;
}

/*
 * The backing's answer is not kept past a fill: a page that was a hole
 * when one fill looked, then written and its write merged into the
 * bitmap being sent between two fills (an unmap's harvest does that), is
 * read and sent as data, never as zero.
 */
static void test_hole_answer_not_stale(void)
{
	struct vmig_vmm_count vc = { 0 };
	struct vmig_iter_stats it = { 0 };
	struct sink k = { .room = 1 };
	struct vmig_section_sink out = { .next = sink_next, .add = sink_add,
					 .opaque = &k, .it = &it };
	struct vmig_section sec = { .ops = &vmig_section_ram };
	struct vmig_region_rec *reg;
	struct vmig_frame f;
	uint8_t *mem = mmap(NULL, LEN, PROT_READ | PROT_WRITE,
			    MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	vmig_session *s;

	CU_ASSERT_FATAL(mem != MAP_FAILED);
	madvise(mem, LEN, MADV_NOHUGEPAGE);
	s = vmig_test_region_session(VMIG_ROLE_SOURCE, mem, LEN,
				     VMIG_REGION_ANON_PRIVATE, -1, &vc);
	sec.s = s;
	reg = &s->regions[0];
	/* Page 0: written, dirty, then discarded: a hole that is dirty. */
	memset(mem, 1, PG);
	madvise(mem, PG, MADV_DONTNEED);
	vmig_bitmap_set(reg->dirty, 0, 1);
	CU_ASSERT_FATAL(vmig_section_ram.setup(&sec) == 0);
	vmig_section_ram.pass_begin(&sec, 1, false);
	CU_ASSERT(vmig_section_ram.save_live(&sec, &out) == 0);
	CU_ASSERT_EQUAL_FATAL(k.n, 1);
	vmig_frame_unpack(k.hdr[0], &f);
	CU_ASSERT(f.type == VMIG_FRAME_ZERO && f.b == 0 && f.c == 1);
	/* Between two fills: page 10 written, its bit merged. */
	memset(mem + 10 * PG, 0xab, PG);
	vmig_bitmap_set(reg->dirty, 10, 1);
	k.room = 1;
	vmig_section_ram.save_live(&sec, &out);
	CU_ASSERT_EQUAL_FATAL(k.n, 2);
	vmig_frame_unpack(k.hdr[1], &f);
	CU_ASSERT(f.type == VMIG_FRAME_PAGES && f.b == 10 && f.c == 1);
	vmig_section_ram.cleanup(&sec);
	vmig_session_free(s);
	munmap(mem, LEN);
}

static CU_TestInfo tests[] = {
	{ "pagemap: present or swapped is data", test_pagemap_bits },
	{ "private anonymous: extents", test_anon_extent },
	{ "private anonymous: holes not read", test_anon_holes_not_read },
	{ "memfd: extents", test_memfd_extent },
	{ "memfd: holes not read", test_memfd_holes_not_read },
	{ "an fd whose holes are not hva's", test_fd_not_trusted },
	{ "the anonymous flag is checked", test_anon_flag_checked },
	{ "a swapped page is data, not a hole", test_swapped_not_a_hole },
	{ "userfaultfd's missing mode: no hole trusted",
	  test_uffd_missing_refused },
	{ "a hole's answer does not outlive a fill",
	  test_hole_answer_not_stale },
	CU_TEST_INFO_NULL,
};

VMIG_TEST_MAIN_SUITE(VMIG_SUITE("sparse", tests))
