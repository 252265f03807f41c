/*
 * fuzz_core.c -- libFuzzer harness for the cowsim C core alone (no Python).
 *
 * The input bytes are decoded into a machine configuration and then a sequence
 * of operations (spawn, mmap, munmap, mprotect, madvise, touch, read, write,
 * fork cow/odf/eager/vfork, exec, exit, batched accesses, multi-process
 * replays with pids of every kind, inspection, record holds) on a small machine, so that frames run out,
 * regions collide and processes share pages.  After every operation:
 *   - cs_check() must pass;
 *   - the status must be exactly the one an independent oracle predicts from
 *     the arguments and the regions (or, for allocations, one of OK/ENOMEM);
 *   - an operation that failed must have changed nothing (machine counters, the
 *     acting process's regions, page table and counters), except the segfault
 *     counters of a segmentation fault and the pages a multi-page read/write
 *     completed before it ran out of frames;
 *   - a successful operation must have the effect it promises (spot checks:
 *     pids, addresses, regions, entries, counters, bytes read back).
 * Any violation prints a line to stderr and traps, which libFuzzer reports as a
 * crash with the input that caused it.  Build: fuzz/build.sh.
 */
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cowsim.h"

#define MAX_PIDS 48
#define MAX_OPS 256
#define MSGLEN 512
#define MAX_FILES 64
#define NOPS 27      /* operation codes: op % NOPS */

/* ------------------------------------------------------------------------- */
/* input decoding                                                             */

typedef struct {
    const uint8_t *p;
    size_t n;
} input;

static uint8_t u8(input *in)
{
    if (!in->n)
        return 0;
    in->n--;
    return *in->p++;
}

static uint64_t u64(input *in)
{
    uint64_t v = 0;
    for (int i = 0; i < 8; i++)
        v |= (uint64_t)u8(in) << (8 * i);
    return v;
}

/* ------------------------------------------------------------------------- */
/* failure reporting                                                          */

static void die(const char *fmt, ...) __attribute__((noreturn, format(printf, 1, 2)));
static void die(const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    fputs("fuzz_core: ", stderr);
    vfprintf(stderr, fmt, ap);
    fputc('\n', stderr);
    va_end(ap);
    __builtin_trap();
}

#define REQUIRE(cond, ...)        \
    do {                          \
        if (!(cond))              \
            die(__VA_ARGS__);     \
    } while (0)

static void *xmalloc(size_t n)
{
    void *p = malloc(n ? n : 1);
    if (!p)
        die("host malloc failed");
    return p;
}

/* ------------------------------------------------------------------------- */
/* harness state                                                              */

/* P_SUSPENDED: a vfork parent; P_EXITED: its record is held (cs_proc_get);
 * P_REAPED: exited and freed. */
enum { P_NEVER = 0, P_LIVE = 1, P_EXITED = 2, P_SUSPENDED = 3, P_REAPED = 4 };

typedef struct {
    cs_machine *m;
    cs_geometry g;
    uint64_t ps, pm;          /* page size, page mask */
    int store;
    int32_t next_pid;         /* the pid the next spawn/fork must return */
    uint8_t state[MAX_PIDS + 2];
    int32_t lender[MAX_PIDS + 2];   /* of a vfork child until it execs or exits, else 0 */
    uint32_t holds[MAX_PIDS + 2];   /* handles the harness took (cs_proc_get) */
    char msg[MSGLEN];
    int op;                   /* index of the current operation, for messages */
    int32_t nfiles;           /* files created: ids 1..nfiles */
    uint8_t fdeleted[MAX_FILES + 2];
} harness;

/* Snapshot of one process: counters, regions, page table. */
typedef struct {
    cs_status st;             /* of cs_regions: OK or the process's error */
    cs_proc_stats ps;
    cs_region *regs;
    size_t nregs;
    uint64_t *vp, *fr;
    uint8_t *fl;
    size_t npt;
} proc_snap;

static void snap_free(proc_snap *s)
{
    free(s->regs);
    free(s->vp);
    free(s->fr);
    free(s->fl);
    memset(s, 0, sizeof *s);
}

static void snap_take(harness *h, int32_t pid, proc_snap *s)
{
    memset(s, 0, sizeof *s);
    size_t n = 0;
    s->st = cs_regions(h->m, pid, NULL, 0, &n);
    if (s->st != CS_OK)
        return;
    s->regs = xmalloc(n * sizeof *s->regs);
    size_t n2 = 0;
    REQUIRE(cs_regions(h->m, pid, s->regs, n, &n2) == CS_OK && n2 == n, "op %d: cs_regions unstable", h->op);
    s->nregs = n;
    REQUIRE(cs_proc_stats_get(h->m, pid, &s->ps) == CS_OK, "op %d: proc stats of live pid failed", h->op);
    /* Attempt counters, not state: a refused access still counts as one. */
    s->ps.accesses = s->ps.tlb_hits = s->ps.tlb_misses = s->ps.tlb_flushes = 0;
    REQUIRE(cs_page_table(h->m, pid, NULL, NULL, NULL, 0, &n) == CS_OK, "op %d: cs_page_table failed", h->op);
    s->vp = xmalloc(n * sizeof *s->vp);
    s->fr = xmalloc(n * sizeof *s->fr);
    s->fl = xmalloc(n);
    REQUIRE(cs_page_table(h->m, pid, s->vp, s->fr, s->fl, n, &n2) == CS_OK && n2 == n,
            "op %d: cs_page_table unstable", h->op);
    s->npt = n;
}

static int snap_equal(const proc_snap *a, const proc_snap *b)
{
    if (a->st != b->st)
        return 0;
    if (a->st != CS_OK)
        return 1;
    return a->nregs == b->nregs && a->npt == b->npt &&
           !memcmp(a->regs, b->regs, a->nregs * sizeof *a->regs) &&
           !memcmp(a->vp, b->vp, a->npt * sizeof *a->vp) &&
           !memcmp(a->fr, b->fr, a->npt * sizeof *a->fr) && !memcmp(a->fl, b->fl, a->npt) &&
           !memcmp(&a->ps, &b->ps, sizeof a->ps);
}

static cs_machine_stats mstats(harness *h)
{
    cs_machine_stats s;
    REQUIRE(cs_machine_stats_get(h->m, &s) == CS_OK, "op %d: machine stats failed", h->op);
    REQUIRE(s.frames_used + s.frames_free == s.frames_total, "op %d: used + free != total", h->op);
    REQUIRE(s.data_frames + s.page_table_frames == s.frames_used, "op %d: data + tables != used", h->op);
    return s;
}

static void run_check(harness *h, const char *after)
{
    h->msg[0] = 0;
    cs_status st = cs_check(h->m, h->msg, sizeof h->msg);
    REQUIRE(st == CS_OK, "op %d (%s): cs_check returned %d: %s", h->op, after, (int)st, h->msg);
}

/* The status proc_get would give for pid, from the harness's own record. */
static cs_status pid_status(const harness *h, int32_t pid)
{
    if (pid <= 0 || pid >= h->next_pid)
        return CS_ENOPROC;
    if (pid > MAX_PIDS)
        die("pid %d beyond the harness's table", pid);
    return h->state[pid] == P_LIVE ? CS_OK : h->state[pid] == P_SUSPENDED ? CS_ESUSPENDED : CS_EEXITED;
}

static int32_t pick_pid(harness *h, input *in)
{
    uint8_t b = u8(in);
    int32_t created = h->next_pid - 1;
    if (b < 6 || created == 0) {
        static const int32_t bad[] = {0, -1, INT32_MIN, INT32_MAX, 1000};
        if (b % 6 == 5 || created == 0)
            return h->next_pid;            /* never created (yet) */
        return bad[b % 5];
    }
    /* Prefer live pids; exited ones now and then. */
    int32_t pid = 1 + (int32_t)(b % (uint8_t)created);
    if (h->state[pid] != P_LIVE && (b & 0x80)) {
        for (int32_t i = 0; i < created; i++) {
            int32_t q = 1 + (pid - 1 + i) % created;
            if (h->state[q] == P_LIVE)
                return q;
        }
    }
    return pid;
}

/* Regions of a pid (empty for a pid that is not live).  Caller frees. */
static cs_region *regions_of(harness *h, int32_t pid, size_t *n)
{
    *n = 0;
    if (cs_regions(h->m, pid, NULL, 0, n) != CS_OK) {
        *n = 0;
        return xmalloc(1);
    }
    cs_region *r = xmalloc(*n * sizeof *r);
    size_t n2;
    REQUIRE(cs_regions(h->m, pid, r, *n, &n2) == CS_OK && n2 == *n, "op %d: cs_regions unstable", h->op);
    return r;
}

static const cs_region *region_at(const cs_region *r, size_t n, uint64_t addr)
{
    for (size_t i = 0; i < n; i++)
        if (r[i].start <= addr && addr < r[i].end)
            return &r[i];
    return NULL;
}

static int range_overlaps(const cs_region *r, size_t n, uint64_t s, uint64_t e)
{
    for (size_t i = 0; i < n; i++)
        if (r[i].start < e && s < r[i].end)
            return 1;
    return 0;
}

static int range_mapped(const cs_region *r, size_t n, uint64_t s, uint64_t e)
{
    uint64_t at = s;
    for (size_t i = 0; i < n && at < e; i++) {
        if (r[i].end <= at)
            continue;
        if (r[i].start > at)
            return 0;
        at = r[i].end;
    }
    return at >= e;
}

/* An address for pid: near its regions, the edges of user space, another
 * process's regions, unaligned, or raw 64-bit. */
static uint64_t pick_addr(harness *h, input *in, int32_t pid)
{
    uint8_t mode = u8(in);
    int8_t off = (int8_t)u8(in);
    size_t n;
    cs_region *r;
    uint64_t base;
    if ((mode & 15) == 13 && h->next_pid > 1)
        r = regions_of(h, 1 + (int32_t)(mode % (uint8_t)(h->next_pid - 1)), &n);
    else
        r = regions_of(h, pid, &n);
    switch (mode & 15) {
    case 10:
        base = n ? r[mode % n].end : h->g.user_end;
        break;
    case 11:
        base = h->g.user_start;
        break;
    case 12:
        base = h->g.user_end;
        break;
    case 14:
        free(r);
        return u64(in);
    default:
        base = n ? r[(mode >> 4) % n].start : h->g.user_end - 16 * h->ps;
        break;
    }
    free(r);
    uint64_t a = base + (uint64_t)(int64_t)(off / 4) * h->ps;
    if ((mode & 15) == 15)
        a += (uint64_t)(off & 0x3f) * 67;   /* usually unaligned */
    return a;
}

static uint64_t pick_len(harness *h, input *in)
{
    uint8_t b = u8(in);
    switch (b >> 5) {
    case 0:
        return (uint64_t)(b & 31) * h->ps;                   /* may be 0 */
    case 1:
        return (uint64_t)(b & 31) * h->ps + u8(in) + 1;      /* ragged */
    case 2:
        return (uint64_t)(b & 31) * h->ps * 17;
    case 3: {
        static const uint64_t huge[] = {UINT64_MAX, UINT64_MAX - 4095, 1ULL << 63, 1ULL << 47, 1ULL << 40,
                                        (1ULL << 47) - 65536, 0, 1};
        return huge[b & 7];
    }
    default:
        return (uint64_t)((b & 63) % 12 + 1) * h->ps;
    }
}

/* Expected status of a range operation's argument check (range_check). */
static cs_status range_status(const harness *h, uint64_t addr, uint64_t len, uint64_t *end)
{
    if (len == 0 || (addr & h->pm))
        return CS_EINVAL;
    uint64_t rlen = (len + h->pm) & ~h->pm;
    if (rlen < len || addr + rlen < addr || addr + rlen > h->g.user_end)
        return CS_EINVAL;
    *end = addr + rlen;
    return CS_OK;
}

static void translate(harness *h, int32_t pid, uint64_t addr, cs_translation *t)
{
    REQUIRE(cs_translate(h->m, pid, addr, t) == CS_OK, "op %d: translate of live pid %d failed", h->op, pid);
}

/* ------------------------------------------------------------------------- */
/* operations                                                                 */

static cs_status op_spawn(harness *h)
{
    if (h->next_pid > MAX_PIDS)
        return CS_OK;
    cs_machine_stats b = mstats(h);
    int32_t pid = -1;
    cs_status st = cs_spawn(h->m, &pid);
    if (b.frames_free == 0) {
        REQUIRE(st == CS_ENOMEM, "op %d: spawn with no free frame returned %d", h->op, (int)st);
        return st;
    }
    REQUIRE(st == CS_OK, "op %d: spawn returned %d with %llu frames free", h->op, (int)st,
            (unsigned long long)b.frames_free);
    REQUIRE(pid == h->next_pid, "op %d: spawn returned pid %d, expected %d", h->op, pid, h->next_pid);
    h->state[h->next_pid++] = P_LIVE;
    cs_machine_stats a = mstats(h);
    REQUIRE(a.frames_used == b.frames_used + 1 && a.page_table_frames == b.page_table_frames + 1 &&
                a.processes == b.processes + 1,
            "op %d: spawn did not take exactly one table frame", h->op);
    int32_t ppid = -1;
    REQUIRE(cs_proc_parent(h->m, pid, &ppid) == CS_OK && ppid == 0, "op %d: spawned process has a parent", h->op);
    return st;
}

static cs_status op_mmap(harness *h, input *in, int fixed)
{
    int32_t pid = pick_pid(h, in);
    uint64_t len = pick_len(h, in);
    uint8_t b = u8(in);
    int32_t prot = (b & 3) == 3 ? CS_PROT_READ | CS_PROT_WRITE : (b & 3);
    int32_t flags = ((b & 4) ? CS_MAP_SHARED : 0) | ((b & 8) ? CS_VMA_HUGE : 0);
    if (b == 0xff)
        prot = 2;   /* write-only: not a valid protection */
    if (b == 0xfe)
        flags = 0x40;
    uint64_t addr = fixed ? pick_addr(h, in, pid) : 0;
    /* A shared region's page array is host memory allocated at mmap: keep
     * them below 2**20 pages (8 MiB of host memory). */
    if ((flags & CS_MAP_SHARED) && len > (h->ps << 20))
        len = h->ps << 20;

    size_t n;
    cs_region *r = regions_of(h, pid, &n);
    cs_status want;
    uint64_t want_addr = 0;
    uint64_t rlen = (len + h->pm) & ~h->pm;
    int huge = (flags & CS_VMA_HUGE) != 0;
    if (prot == 2 || (flags & ~(CS_MAP_SHARED | CS_VMA_HUGE)) ||
        (huge && ((flags & CS_MAP_SHARED) || h->ps != 4096)))
        want = CS_EINVAL;
    else if ((want = pid_status(h, pid)) != CS_OK)
        ;
    else if (len == 0 || rlen < len || rlen > h->g.user_end - h->g.user_start)
        want = CS_EINVAL;
    else if (addr) {
        uint64_t end;
        if ((want = range_status(h, addr, rlen, &end)) == CS_OK) {
            if (addr < h->g.user_start)
                want = CS_EINVAL;
            else if (range_overlaps(r, n, addr, end))
                want = CS_EEXIST;
            else
                want_addr = addr;
        }
    } else {
        want = CS_ENOVSPACE;   /* top-down: the highest gap that fits */
        uint64_t hi = h->g.user_end;
        for (size_t i = n + 1; i-- > 0;) {
            uint64_t lo = i ? r[i - 1].end : h->g.user_start;
            if (i < n)
                hi = r[i].start;
            if (hi > lo && hi - lo >= rlen) {
                want = CS_OK;
                want_addr = hi - rlen;
                break;
            }
        }
    }

    cs_machine_stats before = mstats(h);
    uint64_t got = 0;
    cs_status st = cs_mmap(h->m, pid, addr, len, prot, flags, &got);
    /* A huge region the core places itself goes to a 2 MiB-aligned start when
     * one fits (thp_get_unmapped_area): any free, page-aligned place will do here. */
    if (st == CS_OK && huge && !addr && want == CS_OK) {
        REQUIRE(!(got & h->pm) && got >= h->g.user_start && got + rlen <= h->g.user_end &&
                    !range_overlaps(r, n, got, got + rlen),
                "op %d: huge mmap placed at 0x%llx over a region or outside user space", h->op,
                (unsigned long long)got);
        want_addr = got;
    }
    free(r);
    if (want == CS_OK && st == CS_ENOMEM)
        return st;   /* an odf table it had to copy did not fit ("nothing changed": the caller) */
    REQUIRE(st == want, "op %d: mmap(pid %d, addr 0x%llx, len 0x%llx, prot %d, flags %d) returned %d, expected %d",
            h->op, pid, (unsigned long long)addr, (unsigned long long)len, prot, flags, (int)st, (int)want);
    cs_machine_stats after = mstats(h);
    if (st == CS_OK) {
        REQUIRE(got == want_addr, "op %d: mmap returned 0x%llx, expected 0x%llx", h->op, (unsigned long long)got,
                (unsigned long long)want_addr);
        /* The only frames: odf tables the new region made this process copy. */
        REQUIRE(after.frames_used == before.frames_used + (after.table_copies - before.table_copies) &&
                    after.shared_objects == before.shared_objects + ((flags & CS_MAP_SHARED) ? 1 : 0),
                "op %d: mmap used frames or miscounted shared objects", h->op);
        r = regions_of(h, pid, &n);
        const cs_region *v = region_at(r, n, got);
        REQUIRE(v && v->start == got && v->end == got + rlen && v->prot == prot && v->flags == flags,
                "op %d: mmap'd region not found as mapped", h->op);
        free(r);
    }
    return st;
}

static cs_status op_munmap(harness *h, input *in)
{
    int32_t pid = pick_pid(h, in);
    uint64_t addr = pick_addr(h, in, pid);
    uint64_t len = pick_len(h, in);
    uint64_t end = 0;
    cs_status want = pid_status(h, pid);
    if (want == CS_OK)
        want = range_status(h, addr, len, &end);
    cs_status st = cs_munmap(h->m, pid, addr, len);
    if (want == CS_OK && st == CS_ENOMEM)
        return st;   /* odf: a partly unmapped shared table's copy did not fit */
    REQUIRE(st == want, "op %d: munmap(pid %d, 0x%llx, 0x%llx) returned %d, expected %d", h->op, pid,
            (unsigned long long)addr, (unsigned long long)len, (int)st, (int)want);
    if (st == CS_OK) {
        size_t n;
        cs_region *r = regions_of(h, pid, &n);
        REQUIRE(!range_overlaps(r, n, addr, end), "op %d: region left in an unmapped range", h->op);
        free(r);
        cs_translation t;
        translate(h, pid, addr, &t);
        REQUIRE(!t.present, "op %d: entry left at an unmapped address", h->op);
        translate(h, pid, end - h->ps, &t);
        REQUIRE(!t.present, "op %d: entry left at the end of an unmapped range", h->op);
    }
    return st;
}

static cs_status op_mprotect(harness *h, input *in)
{
    int32_t pid = pick_pid(h, in);
    uint64_t addr = pick_addr(h, in, pid);
    uint64_t len = pick_len(h, in);
    uint8_t b = u8(in);
    int32_t prot = (b & 3) == 3 ? CS_PROT_READ | CS_PROT_WRITE : (b & 3);
    if (b >= 0xf0)
        prot = (int32_t)b;   /* invalid */
    uint64_t end = 0;
    size_t n;
    cs_region *r = regions_of(h, pid, &n);
    cs_status want;
    if (prot == 2 || prot > 3)
        want = CS_EINVAL;
    else if ((want = pid_status(h, pid)) == CS_OK && (want = range_status(h, addr, len, &end)) == CS_OK &&
             !range_mapped(r, n, addr, end))
        want = CS_ENOTMAPPED;
    free(r);
    cs_status st = cs_mprotect(h->m, pid, addr, len, prot);
    if (want == CS_OK && st == CS_ENOMEM)
        return st;   /* odf: a shared table's copy did not fit */
    REQUIRE(st == want, "op %d: mprotect(pid %d, 0x%llx, 0x%llx, %d) returned %d, expected %d", h->op, pid,
            (unsigned long long)addr, (unsigned long long)len, prot, (int)st, (int)want);
    if (st == CS_OK) {
        r = regions_of(h, pid, &n);
        for (size_t i = 0; i < n; i++)
            if (r[i].start < end && addr < r[i].end)
                /* Regions already at prot are not split (mprotect_fixup). */
                REQUIRE(r[i].prot == prot, "op %d: mprotect(%d) left region [0x%llx, 0x%llx) prot %d", h->op,
                        prot, (unsigned long long)r[i].start, (unsigned long long)r[i].end, r[i].prot);
        free(r);
        if (!(prot & CS_PROT_WRITE)) {
            cs_translation t;
            translate(h, pid, addr, &t);
            REQUIRE(!(t.present && (t.flags & CS_PTE_WRITE)), "op %d: writable entry after mprotect", h->op);
        }
    }
    return st;
}

static cs_status op_madvise(harness *h, input *in)
{
    int32_t pid = pick_pid(h, in);
    uint64_t addr = pick_addr(h, in, pid);
    uint64_t len = pick_len(h, in);
    uint8_t b = u8(in);
    int adv = b % 7;
    if (b >= 0xfa)
        adv = b;   /* invalid */
    uint64_t end = 0;
    size_t n;
    cs_region *r = regions_of(h, pid, &n);
    cs_status want;
    if (adv > 6)
        want = CS_EINVAL;
    else if ((want = pid_status(h, pid)) == CS_OK && (want = range_status(h, addr, len, &end)) == CS_OK) {
        if (!range_mapped(r, n, addr, end))
            want = CS_ENOTMAPPED;
        else if (adv == CS_ADV_WIPEONFORK)
            for (size_t i = 0; i < n; i++)
                if (r[i].start < end && addr < r[i].end && (r[i].flags & (CS_MAP_SHARED | CS_VMA_FILE)))
                    want = CS_ESHARED;
    }
    free(r);
    cs_status st = cs_madvise(h->m, pid, addr, len, (cs_advice)adv);
    if (want == CS_OK && st == CS_ENOMEM && adv == CS_ADV_DONTNEED)
        return st;   /* odf: a shared table's copy did not fit */
    REQUIRE(st == want, "op %d: madvise(pid %d, 0x%llx, 0x%llx, %d) returned %d, expected %d", h->op, pid,
            (unsigned long long)addr, (unsigned long long)len, adv, (int)st, (int)want);
    if (st == CS_OK) {
        static const int32_t flag[] = {CS_VMA_DONTFORK, CS_VMA_DONTFORK, CS_VMA_WIPEONFORK, CS_VMA_WIPEONFORK, 0,
                                       CS_VMA_RANDOM, CS_VMA_RANDOM};
        r = regions_of(h, pid, &n);
        for (size_t i = 0; i < n; i++)
            if (r[i].start < end && addr < r[i].end && flag[adv])
                REQUIRE(!!(r[i].flags & flag[adv]) == (adv == 0 || adv == 2 || adv == 5),
                        "op %d: madvise %d not applied to region 0x%llx", h->op, adv, (unsigned long long)r[i].start);
        free(r);
        if (adv == CS_ADV_DONTNEED) {
            cs_translation t;
            translate(h, pid, addr, &t);
            REQUIRE(!t.present, "op %d: entry left after MADV_DONTNEED", h->op);
        }
    }
    return st;
}

/* Expected F1 outcome of one access from the regions: CS_OK or CS_ESEGV. */
static cs_status access_status(const cs_region *r, size_t n, uint64_t addr, int write)
{
    const cs_region *v = region_at(r, n, addr);
    if (!v || v->prot == CS_PROT_NONE || (write && !(v->prot & CS_PROT_WRITE)))
        return CS_ESEGV;
    return CS_OK;
}

static cs_status op_touch(harness *h, input *in, int write)
{
    int32_t pid = pick_pid(h, in);
    uint64_t addr = pick_addr(h, in, pid);
    size_t n;
    cs_region *r = regions_of(h, pid, &n);
    cs_status want = pid_status(h, pid);
    if (want == CS_OK)
        want = access_status(r, n, addr, write);
    const cs_region *fv = region_at(r, n, addr);
    int file_region = fv && (fv->flags & CS_VMA_FILE);
    free(r);
    cs_machine_stats b = mstats(h);
    cs_access_info info;
    memset(&info, 0xa5, sizeof info);
    cs_status st = cs_touch(h->m, pid, addr, write, &info);
    cs_machine_stats a = mstats(h);
    if (want == CS_OK && st == CS_ENOMEM) {
        REQUIRE(b.frames_free < 8, "op %d: touch out of memory with %llu frames free", h->op,
                (unsigned long long)b.frames_free);
        return st;
    }
    if (want == CS_OK && st == CS_ESIGBUS) {   /* FB1: a file page past the end of the file */
        REQUIRE(file_region && info.outcome == CS_SIGBUS && info.addr == addr && a.sigbus == b.sigbus + 1 &&
                    a.minflt == b.minflt && a.majflt == b.majflt,
                "op %d: bad SIGBUS", h->op);
        return st;
    }
    REQUIRE(st == want, "op %d: touch(pid %d, 0x%llx, %d) returned %d, expected %d", h->op, pid,
            (unsigned long long)addr, write, (int)st, (int)want);
    if (st == CS_ESEGV)
        REQUIRE(info.outcome == CS_SEGFAULT && info.addr == addr &&
                    (info.segv_reason == CS_SEGV_UNMAPPED || info.segv_reason == CS_SEGV_PROTECTION),
                "op %d: bad segfault info", h->op);
    if (st != CS_OK)
        return st;
    REQUIRE((info.outcome >= CS_HIT && info.outcome <= CS_FAULT_SHARED) ||
                (info.outcome == CS_FAULT_FILE && file_region && !write),
            "op %d: outcome %d", h->op, info.outcome);
    REQUIRE(a.minflt + a.majflt == b.minflt + b.majflt + (info.outcome != CS_HIT), "op %d: minflt moved by %lld for outcome %d", h->op,
            (long long)(a.minflt - b.minflt), info.outcome);
    REQUIRE(a.pages_copied == b.pages_copied + (info.outcome == CS_FAULT_COW_COPY),
            "op %d: pages_copied wrong for outcome %d", h->op, info.outcome);
    cs_translation t;
    translate(h, pid, addr, &t);
    REQUIRE(t.present, "op %d: no entry after a successful access", h->op);
    if (write)
        REQUIRE((t.flags & CS_PTE_WRITE) && (t.flags & CS_PTE_DIRTY) && t.frame != 0,
                "op %d: entry not writable+dirty after a write", h->op);
    return st;
}

static cs_status op_rw(harness *h, input *in, int write)
{
    int32_t pid = pick_pid(h, in);
    uint64_t addr = pick_addr(h, in, pid);
    uint8_t b = u8(in);
    uint64_t len;
    switch (b >> 6) {
    case 0: len = b & 63; break;
    case 1: len = (uint64_t)(b & 7) * h->ps + u8(in); break;
    case 2: len = (uint64_t)(b & 15) * h->ps / 3 + 1; break;
    default: len = (b & 1) ? UINT64_MAX - (b & 63) : (1ULL << 62); break;
    }
    uint8_t fill = u8(in);

    size_t n;
    cs_region *r = regions_of(h, pid, &n);
    cs_status want;
    uint64_t ok_bytes = 0;   /* accessible bytes before the first bad page */
    if (!write && !h->store)
        want = CS_ENODATA;
    else
        want = pid_status(h, pid);
    if (want == CS_OK && len) {
        if (addr + len < addr) {
            want = CS_EINVAL;
        } else {
            /* F1 on every page, region by region. */
            uint64_t at = addr & ~h->pm, end = addr + len;
            while (at < end) {
                if ((want = access_status(r, n, at, write)) != CS_OK)
                    break;
                at = region_at(r, n, at)->end;
            }
            ok_bytes = at - (addr & ~h->pm);
        }
    }
    free(r);
    /* The core checks every page of the range before touching any: skip
     * calls that would spend minutes over a huge mapped range. */
    if (want == CS_ESEGV && ok_bytes / h->ps > 4096)
        return CS_OK;
    /* Only issue calls whose buffers are small. */
    if (want == CS_OK && len > 64 * h->ps)
        len = 64 * h->ps;
    size_t blen = want == CS_OK ? (size_t)len : 16;
    uint8_t *buf = xmalloc(blen);
    memset(buf, fill, blen);
    for (size_t i = 0; i < blen; i += 97)
        buf[i] = (uint8_t)(i * 31 + fill);
    cs_machine_stats bs = mstats(h);
    cs_access_info info;
    memset(&info, 0x5a, sizeof info);
    cs_status st = write ? cs_write(h->m, pid, addr, buf, len, &info) : cs_read(h->m, pid, addr, buf, len, &info);
    if (want == CS_OK && st == CS_ENOMEM) {
        REQUIRE(bs.frames_free < 16 + len / h->ps, "op %d: read/write out of memory with %llu frames free",
                h->op, (unsigned long long)bs.frames_free);
        free(buf);
        return st;
    }
    if (want == CS_OK && st == CS_ESIGBUS) {   /* a file page past the end: the pages before took effect */
        free(buf);
        return st;
    }
    REQUIRE(st == want, "op %d: %s(pid %d, 0x%llx, 0x%llx) returned %d, expected %d", h->op,
            write ? "write" : "read", pid, (unsigned long long)addr, (unsigned long long)len, (int)st, (int)want);
    if (st == CS_ESEGV)
        REQUIRE(info.outcome == CS_SEGFAULT && info.addr >= addr && info.addr - addr < len,
                "op %d: segfault address 0x%llx outside the access", h->op, (unsigned long long)info.addr);
    if (st == CS_OK && write && h->store && len) {
        /* Bytes written must read back (all pages are now mapped writable). */
        uint8_t *back = xmalloc(len);
        cs_machine_stats b2 = mstats(h);
        REQUIRE(cs_read(h->m, pid, addr, back, len, &info) == CS_OK, "op %d: read-back failed", h->op);
        REQUIRE(!memcmp(back, buf, len), "op %d: bytes read back differ from those written", h->op);
        cs_machine_stats a2 = mstats(h);
        REQUIRE(a2.minflt == b2.minflt, "op %d: read-back after write faulted", h->op);
        free(back);
    }
    free(buf);
    return st;
}

static cs_status op_fork(harness *h, input *in, cs_fork_mode mode)
{
    int32_t pid = pick_pid(h, in);
    if (h->next_pid > MAX_PIDS)
        return CS_OK;
    uint8_t b0 = u8(in);
    if (b0 == 0xff)
        mode = (cs_fork_mode)7;   /* invalid */
    else if (mode == CS_FORK_COW && (b0 & 1))
        mode = CS_FORK_ODF;       /* half of the cow forks share their last-level tables */
    cs_status want = (mode != CS_FORK_COW && mode != CS_FORK_EAGER && mode != CS_FORK_ODF) ? CS_EINVAL
                                                                                            : pid_status(h, pid);
    proc_snap ps;
    snap_take(h, pid, &ps);
    cs_machine_stats b = mstats(h);
    int32_t child = -1;
    cs_status st = cs_fork(h->m, pid, mode, &child);
    if (want == CS_OK && st == CS_ENOMEM) {
        snap_free(&ps);
        return st;   /* "nothing changed" is checked by the caller */
    }
    REQUIRE(st == want, "op %d: fork(pid %d, mode %d) returned %d, expected %d", h->op, pid, (int)mode, (int)st,
            (int)want);
    if (st != CS_OK) {
        snap_free(&ps);
        return st;
    }
    REQUIRE(child == h->next_pid, "op %d: fork returned pid %d, expected %d", h->op, child, h->next_pid);
    h->state[h->next_pid++] = P_LIVE;
    cs_machine_stats a = mstats(h);
    REQUIRE(a.process_records == b.process_records + 1, "op %d: fork did not add a record", h->op);
    cs_proc_stats cst;
    REQUIRE(cs_proc_stats_get(h->m, child, &cst) == CS_OK, "op %d: child stats", h->op);
    REQUIRE(cst.minflt == 0 && cst.segfaults == 0, "op %d: child starts with faults", h->op);
    REQUIRE(a.forks == b.forks + 1 && a.processes == b.processes + 1 && a.minflt == b.minflt,
            "op %d: fork counters", h->op);
    /* The child's tables are new, but those an odf fork shares with the parent. */
    REQUIRE(a.frames_used - b.frames_used == cst.page_table_frames - cst.page_tables_shared + cst.pages_copied,
            "op %d: fork used %llu frames, child holds %llu tables (%llu shared) + %llu copies", h->op,
            (unsigned long long)(a.frames_used - b.frames_used), (unsigned long long)cst.page_table_frames,
            (unsigned long long)cst.page_tables_shared, (unsigned long long)cst.pages_copied);
    if (mode != CS_FORK_EAGER)
        REQUIRE(cst.pages_copied == 0, "op %d: cow/odf fork copied pages", h->op);
    if (mode != CS_FORK_ODF)
        REQUIRE(cst.page_tables_shared == 0, "op %d: a non-odf fork shared tables", h->op);
    int32_t ppid = -1;
    REQUIRE(cs_proc_parent(h->m, child, &ppid) == CS_OK && ppid == pid, "op %d: child's parent", h->op);

    /* Regions: the parent's, less dont-fork ones; wipe-on-fork ones lose anon_vma. */
    proc_snap cs;
    snap_take(h, child, &cs);
    size_t j = 0;
    for (size_t i = 0; i < ps.nregs; i++) {
        cs_region pr = ps.regs[i];
        if (pr.flags & CS_VMA_DONTFORK)
            continue;
        if (pr.flags & CS_VMA_WIPEONFORK)
            pr.flags &= ~CS_VMA_ANON_VMA;
        REQUIRE(j < cs.nregs && !memcmp(&cs.regs[j], &pr, sizeof pr), "op %d: child region %zu differs", h->op, j);
        j++;
    }
    REQUIRE(j == cs.nregs, "op %d: child has extra regions", h->op);
    /* Entries: copied exactly in private regions with anon_vma (K1..K3). */
    proc_snap pa;
    snap_take(h, pid, &pa);
    REQUIRE(pa.npt == ps.npt, "op %d: fork changed the parent's entry count", h->op);
    size_t k = 0;
    for (size_t i = 0; i < pa.npt; i++) {
        uint64_t va = pa.vp[i] * h->ps;
        const cs_region *v = region_at(ps.regs, ps.nregs, va);
        REQUIRE(v != NULL, "op %d: parent entry outside its regions", h->op);
        int copied = !(v->flags & (CS_MAP_SHARED | CS_VMA_DONTFORK | CS_VMA_WIPEONFORK)) &&
                     (v->flags & CS_VMA_ANON_VMA);
        if (!copied)
            continue;
        REQUIRE(k < cs.npt && cs.vp[k] == pa.vp[i], "op %d: child lacks entry for vpage 0x%llx", h->op,
                (unsigned long long)pa.vp[i]);
        if (pa.fr[i] == 0 || mode != CS_FORK_EAGER) {
            REQUIRE(cs.fr[k] == pa.fr[i] && !(cs.fl[k] & CS_PTE_WRITE) && !(pa.fl[i] & CS_PTE_WRITE),
                    "op %d: cow-shared entry 0x%llx not shared read-only", h->op, (unsigned long long)pa.vp[i]);
        } else {
            REQUIRE(cs.fr[k] != pa.fr[i] && pa.fl[i] == ps.fl[i] && pa.fr[i] == ps.fr[i],
                    "op %d: eager fork did not copy vpage 0x%llx", h->op, (unsigned long long)pa.vp[i]);
        }
        REQUIRE((cs.fl[k] & CS_PTE_DIRTY) == (pa.fl[i] & CS_PTE_DIRTY), "op %d: dirty bit not kept", h->op);
        if (h->store && pa.fr[i] && (v->prot & CS_PROT_READ)) {
            uint8_t x[64], y[64];
            cs_access_info info;
            REQUIRE(cs_read(h->m, pid, va, x, sizeof x, &info) == CS_OK &&
                        cs_read(h->m, child, va, y, sizeof y, &info) == CS_OK,
                    "op %d: read of a present entry failed", h->op);
            REQUIRE(!memcmp(x, y, sizeof x), "op %d: child's bytes differ from the parent's", h->op);
        }
        k++;
    }
    REQUIRE(k == cs.npt, "op %d: child has %zu entries, expected %zu", h->op, cs.npt, k);
    snap_free(&pa);
    snap_free(&cs);
    snap_free(&ps);
    return st;
}

static cs_status op_exit(harness *h, input *in)
{
    int32_t pid = pick_pid(h, in);
    cs_status want = pid_status(h, pid);
    cs_machine_stats b = mstats(h);
    cs_status st = cs_exit(h->m, pid);
    REQUIRE(st == want, "op %d: exit(pid %d) returned %d, expected %d", h->op, pid, (int)st, (int)want);
    if (st != CS_OK)
        return st;
    h->state[pid] = h->holds[pid] ? P_EXITED : P_REAPED;
    if (h->lender[pid]) {   /* a vfork child gives the space back: its parent resumes */
        h->state[h->lender[pid]] = P_LIVE;
        h->lender[pid] = 0;
    }
    cs_machine_stats a = mstats(h);
    REQUIRE(a.processes == b.processes - 1, "op %d: exit did not drop the process count", h->op);
    REQUIRE(a.process_records == b.process_records - !h->holds[pid], "op %d: exit kept %llu records of %llu",
            h->op, (unsigned long long)a.process_records, (unsigned long long)b.process_records);
    cs_proc_stats s;
    if (h->holds[pid])
        REQUIRE(cs_proc_stats_get(h->m, pid, &s) == CS_OK && s.page_table_frames == 0,
                "op %d: exited process still holds tables", h->op);
    else
        REQUIRE(cs_proc_stats_get(h->m, pid, &s) == CS_EEXITED, "op %d: stats of a reaped pid", h->op);
    size_t n;
    REQUIRE(cs_regions(h->m, pid, NULL, 0, &n) == CS_EEXITED, "op %d: regions of an exited process", h->op);
    return st;
}

/* vfork: the child takes the parent's address space as it is (regions, entries,
 * tables: no frame is used), and the parent is suspended until the child execs
 * or exits. */
static cs_status op_vfork(harness *h, input *in)
{
    int32_t pid = pick_pid(h, in);
    if (h->next_pid > MAX_PIDS)
        return CS_OK;
    cs_status want = pid_status(h, pid);
    proc_snap ps;
    snap_take(h, pid, &ps);
    cs_machine_stats b = mstats(h);
    int32_t child = -1;
    cs_status st = cs_fork(h->m, pid, CS_FORK_VFORK, &child);
    REQUIRE(st == want, "op %d: vfork(pid %d) returned %d, expected %d", h->op, pid, (int)st, (int)want);
    if (st != CS_OK) {
        snap_free(&ps);
        return st;
    }
    REQUIRE(child == h->next_pid, "op %d: vfork returned pid %d, expected %d", h->op, child, h->next_pid);
    h->state[h->next_pid++] = P_LIVE;
    h->state[pid] = P_SUSPENDED;
    h->lender[child] = pid;
    cs_machine_stats a = mstats(h);
    REQUIRE(a.frames_used == b.frames_used && a.forks == b.forks + 1 && a.processes == b.processes + 1 &&
                a.minflt == b.minflt,
            "op %d: vfork used frames or miscounted", h->op);
    int32_t ppid = -1, state = -1;
    REQUIRE(cs_proc_parent(h->m, child, &ppid) == CS_OK && ppid == pid, "op %d: vfork child's parent", h->op);
    REQUIRE(cs_proc_state(h->m, pid, &state) == CS_OK && state == 2, "op %d: vfork parent not suspended", h->op);
    proc_snap cs, now;
    snap_take(h, child, &cs);
    snap_take(h, pid, &now);
    REQUIRE(now.st == CS_ESUSPENDED, "op %d: regions of a suspended parent returned %d", h->op, (int)now.st);
    /* The same space: the same regions and entries; the child's counters start at 0. */
    REQUIRE(cs.st == CS_OK && cs.nregs == ps.nregs && !memcmp(cs.regs, ps.regs, ps.nregs * sizeof *ps.regs) &&
                cs.npt == ps.npt && !memcmp(cs.vp, ps.vp, ps.npt * sizeof *ps.vp) &&
                !memcmp(cs.fr, ps.fr, ps.npt * sizeof *ps.fr) && !memcmp(cs.fl, ps.fl, ps.npt),
            "op %d: the vfork child does not have the parent's space", h->op);
    REQUIRE(cs.ps.minflt == 0 && cs.ps.page_table_frames == ps.ps.page_table_frames,
            "op %d: vfork child's counters", h->op);
    snap_free(&now);
    snap_free(&cs);
    snap_free(&ps);
    return st;
}

/* exec: a fresh, empty space (one root table); a vfork child first gives the
 * borrowed one back (and then needs a free frame).  Counters survive. */
static cs_status op_exec(harness *h, input *in)
{
    int32_t pid = pick_pid(h, in);
    cs_status want = pid_status(h, pid);
    cs_machine_stats b = mstats(h);
    if (want == CS_OK && h->lender[pid] && b.frames_free == 0)
        want = CS_ENOMEM;
    proc_snap ps;
    snap_take(h, pid, &ps);
    cs_status st = cs_exec(h->m, pid);
    REQUIRE(st == want, "op %d: exec(pid %d) returned %d, expected %d", h->op, pid, (int)st, (int)want);
    if (st != CS_OK) {
        snap_free(&ps);
        return st;
    }
    int32_t lender = h->lender[pid];
    if (lender) {
        h->state[lender] = P_LIVE;
        h->lender[pid] = 0;
        proc_snap ls;
        snap_take(h, lender, &ls);
        REQUIRE(ls.st == CS_OK && ls.nregs == ps.nregs && !memcmp(ls.regs, ps.regs, ps.nregs * sizeof *ps.regs) &&
                    ls.npt == ps.npt && !memcmp(ls.fr, ps.fr, ps.npt * sizeof *ps.fr),
                "op %d: the vfork parent did not get its space back", h->op);
        snap_free(&ls);
    }
    cs_machine_stats a = mstats(h);
    proc_snap now;
    snap_take(h, pid, &now);
    REQUIRE(now.st == CS_OK && now.nregs == 0 && now.npt == 0 && now.ps.page_table_frames == 1,
            "op %d: exec left %zu regions, %zu entries, %llu tables", h->op, now.nregs, now.npt,
            (unsigned long long)now.ps.page_table_frames);
    REQUIRE(now.ps.minflt == ps.ps.minflt && now.ps.segfaults == ps.ps.segfaults && a.minflt == b.minflt &&
                a.processes == b.processes,
            "op %d: exec changed counters", h->op);
    if (lender)
        REQUIRE(a.frames_used == b.frames_used + 1, "op %d: vfork child's exec took %lld frames", h->op,
                (long long)(a.frames_used - b.frames_used));
    snap_free(&now);
    snap_free(&ps);
    return st;
}

/* A batch's addresses: mostly in and around pid's regions (with the same page
 * again and again), sometimes anywhere; writes per access, or all or none. */
/* Files and the page cache: create, pwrite, pread, fsync, evict, unlink,
 * drop_caches, and file mappings; the ids drawn from the created ones, 0,
 * negative and never created. */
static cs_status op_file(harness *h, input *in)
{
    int32_t pid = pick_pid(h, in);
    uint8_t b = u8(in), c = u8(in);
    int32_t id = (int32_t)(c % (h->nfiles + 2)) - (c >= 250 ? 300 : 0);
    int known = id >= 1 && id <= h->nfiles && !h->fdeleted[id];
    cs_status want = known ? CS_OK : CS_ENOFILE;
    cs_machine_stats ms = mstats(h);
    uint64_t off = (uint64_t)u8(in) * (h->ps / 4), len = (uint64_t)u8(in) * (h->ps / 16) + (b >> 7);
    cs_status st;
    switch (b & 7) {
    case 0: {   /* create */
        if (h->nfiles >= MAX_FILES)
            return CS_OK;
        int32_t nid = 0;
        int cached = (b >> 3) & 1;
        st = cs_file_new(h->m, len, cached, &nid);
        uint64_t pages = (len + h->pm) / h->ps;
        if (st == CS_ENOMEM) {
            REQUIRE(cached && ms.frames_free < pages, "op %d: file_new out of memory", h->op);
            return st;
        }
        REQUIRE(st == CS_OK && nid == h->nfiles + 1 && h->nfiles < MAX_FILES, "op %d: file_new returned %d, id %d",
                h->op, (int)st, nid);
        h->nfiles++;
        return st;
    }
    case 1: {   /* pwrite */
        uint8_t *buf = xmalloc(len + 1);
        memset(buf, b, len + 1);
        st = cs_file_write(h->m, id, off, buf, len);
        free(buf);
        if (st == CS_ENOMEM && known)
            return st;
        break;
    }
    case 2: {   /* pread (buf NULL: cache only) */
        uint8_t *buf = h->store && (b & 8) ? xmalloc(len + 1) : NULL;
        uint64_t got = 0;
        st = cs_file_read(h->m, id, off, buf, len, &got);
        free(buf);
        if (st == CS_ENOMEM && known)
            return st;
        if (!h->store && (b & 8))
            want = known ? CS_OK : want;
        break;
    }
    case 3: st = cs_file_sync(h->m, id); break;
    case 4: st = cs_file_evict(h->m, id); break;
    case 5:
        st = cs_file_delete(h->m, id);
        if (st == CS_OK)
            h->fdeleted[id] = 1;
        break;
    case 6: want = CS_OK; st = cs_drop_caches(h->m); break;
    default: {   /* a file mapping */
        uint64_t got = 0, addr = (b & 8) ? pick_addr(h, in, pid) : 0;
        int32_t prot = (b >> 4) & 1 ? CS_PROT_READ | CS_PROT_WRITE : CS_PROT_READ;
        st = cs_mmap_file(h->m, pid, addr, len ? len : h->ps, prot, (b >> 5) & 1 ? CS_MAP_SHARED : 0, id,
                          off & ~h->pm, &got);
        REQUIRE(known || st != CS_OK, "op %d: mmap of file %d succeeded", h->op, id);
        if (st == CS_OK) {
            size_t n;
            cs_region *r = regions_of(h, pid, &n);
            const cs_region *v = region_at(r, n, got);
            REQUIRE(v && v->start == got && v->file == id && v->offset == (off & ~h->pm) && (v->flags & CS_VMA_FILE),
                    "op %d: file mapping not listed", h->op);
            free(r);
        }
        return st;
    }
    }
    REQUIRE(st == want || (!h->store && (b & 7) == 2 && (b & 8) && st == CS_ENODATA),
            "op %d: file op %d on id %d returned %d, expected %d", h->op, b & 7, id, (int)st, (int)want);
    return st;
}

static uint64_t batch_len(input *in)
{
    uint8_t b = u8(in);
    if (b >= 240)
        return 64 + (uint64_t)(b - 240) * 24;   /* up to 424: several pipeline blocks */
    return b % 40;
}

static void batch_fill(harness *h, input *in, int32_t pid, uint64_t *addrs, uint8_t *writes, uint64_t n)
{
    uint64_t base = pick_addr(h, in, pid);
    uint8_t pattern = u8(in), stride = u8(in);
    for (uint64_t i = 0; i < n; i++) {
        if (pattern & 1) {   /* a strided walk over 32 pages */
            addrs[i] = base + (i * ((uint64_t)stride * 67 + 8)) % (32 * h->ps);
            if (writes)
                writes[i] = (uint8_t)((i * stride) >> 3 & 1);
            continue;
        }
        uint8_t x = u8(in);
        addrs[i] = base + (uint64_t)((int64_t)(x & 0x3f) - 8) * h->ps + ((x & 0x40) ? (x * 37u) % h->ps : 0);
        if ((x & 0x3f) == 0x3f)
            addrs[i] = pick_addr(h, in, pid);
        if (writes)
            writes[i] = x >> 7;
    }
}

/* Checks a batch's result against its status: the counts sum to the
 * accesses done, the outcomes (when asked) agree with them and with the
 * regions (an address outside every region, or without the permission,
 * segfaults; any other does not), the stop index and the segfault's address. */
static void batch_verify(harness *h, const char *what, cs_status st, const cs_batch_result *res,
                         const uint64_t *addrs, const uint8_t *writes, int write_all, uint64_t n,
                         const uint8_t *outcomes, int stop, cs_region *const *regs, const size_t *nregs)
{
    uint64_t sum = 0;
    for (int k = 0; k < CS_NOUTCOMES; k++)
        sum += res->counts[k];
    REQUIRE(res->done <= n && sum == res->done, "op %d: %s: counts sum to %llu, done %llu of %llu", h->op, what,
            (unsigned long long)sum, (unsigned long long)res->done, (unsigned long long)n);
    if (st == CS_OK)
        REQUIRE(res->done == n, "op %d: %s: OK after %llu of %llu", h->op, what, (unsigned long long)res->done,
                (unsigned long long)n);
    else if (st == CS_ESEGV || st == CS_ESIGBUS)
        REQUIRE(stop && res->done >= 1 && res->stop_index == res->done - 1 && res->info.addr == addrs[res->stop_index],
                "op %d: %s: segfault stop at %llu (done %llu)", h->op, what, (unsigned long long)res->stop_index,
                (unsigned long long)res->done);
    else
        REQUIRE(res->stop_index == res->done && res->done < n, "op %d: %s: stopped with %d at %llu (done %llu)",
                h->op, what, (int)st, (unsigned long long)res->stop_index, (unsigned long long)res->done);
    if (!stop)
        REQUIRE(st != CS_ESEGV && st != CS_ESIGBUS, "op %d: %s: stopped at a signal without being asked", h->op, what);
    if (!outcomes)
        return;
    uint64_t counts[CS_NOUTCOMES] = {0};
    for (uint64_t i = 0; i < res->done; i++) {
        REQUIRE(outcomes[i] < CS_NOUTCOMES, "op %d: %s: outcome %d", h->op, what, outcomes[i]);
        REQUIRE(outcomes[i] != CS_SIGBUS && outcomes[i] != CS_FAULT_FILE ? 1 : (region_at(regs[i], nregs[i], addrs[i]) &&
                    (region_at(regs[i], nregs[i], addrs[i])->flags & CS_VMA_FILE)),
                "op %d: %s: file outcome %d outside a file region", h->op, what, outcomes[i]);
        counts[outcomes[i]]++;
        const cs_region *v = region_at(regs[i], nregs[i], addrs[i]);
        int w = writes ? writes[i] != 0 : write_all;
        int allowed = v && (v->prot & CS_PROT_READ) && (!w || (v->prot & CS_PROT_WRITE));
        REQUIRE(allowed == (outcomes[i] != CS_SEGFAULT), "op %d: %s: access %llu to 0x%llx (%s) had outcome %d",
                h->op, what, (unsigned long long)i, (unsigned long long)addrs[i], w ? "write" : "read", outcomes[i]);
    }
    REQUIRE(!memcmp(counts, res->counts, sizeof counts), "op %d: %s: outcomes disagree with the counts", h->op, what);
}

/* cs_access_batch: one process, n accesses (aligned host arrays of exactly n
 * elements, so ASan sees any access past them). */
static cs_status op_batch(harness *h, input *in)
{
    int32_t pid = pick_pid(h, in);
    uint8_t flags = u8(in);
    int want_out = flags & 1, stop = (flags >> 1) & 1, per_access = (flags >> 2) & 1, write_all = (flags >> 3) & 1;
    uint64_t n = batch_len(in);
    uint64_t *addrs = xmalloc(n * sizeof *addrs);
    uint8_t *writes = per_access ? xmalloc(n) : NULL;
    uint8_t *outcomes = want_out ? xmalloc(n) : NULL;
    batch_fill(h, in, pid, addrs, writes, n);
    size_t nr;
    cs_region *r = regions_of(h, pid, &nr);
    cs_status want = pid_status(h, pid);
    cs_machine_stats b = mstats(h);
    cs_proc_stats pb;
    memset(&pb, 0, sizeof pb);
    if (want == CS_OK)
        REQUIRE(cs_proc_stats_get(h->m, pid, &pb) == CS_OK, "op %d: stats", h->op);
    cs_batch_result res;
    memset(&res, 0x5a, sizeof res);
    cs_status st = cs_access_batch(h->m, pid, addrs, writes, write_all, n, outcomes, stop, &res);
    if (want != CS_OK) {
        REQUIRE(st == want && res.done == 0, "op %d: access_batch(pid %d) returned %d, expected %d", h->op, pid,
                (int)st, (int)want);
    } else {
        REQUIRE(st == CS_OK || st == CS_ESEGV || st == CS_ESIGBUS || st == CS_ENOMEM, "op %d: access_batch returned %d",
                h->op, (int)st);
        cs_region **regs = xmalloc(n * sizeof *regs);
        size_t *nregs = xmalloc(n * sizeof *nregs);
        for (uint64_t i = 0; i < n; i++)
            regs[i] = r, nregs[i] = nr;
        batch_verify(h, "access_batch", st, &res, addrs, writes, write_all, n, outcomes, stop, regs, nregs);
        free(regs);
        free(nregs);
        cs_machine_stats a = mstats(h);
        cs_proc_stats pa;
        REQUIRE(cs_proc_stats_get(h->m, pid, &pa) == CS_OK, "op %d: stats", h->op);
        uint64_t faults = res.done - res.counts[CS_HIT] - res.counts[CS_SEGFAULT] - res.counts[CS_SIGBUS];
        REQUIRE(pa.accesses - pb.accesses == res.done && pa.minflt + pa.majflt - pb.minflt - pb.majflt == faults &&
                    pa.sigbus - pb.sigbus == res.counts[CS_SIGBUS] &&
                    pa.segfaults - pb.segfaults == res.counts[CS_SEGFAULT] &&
                    a.minflt + a.majflt - b.minflt - b.majflt == faults &&
                    a.segfaults - b.segfaults == res.counts[CS_SEGFAULT],
                "op %d: access_batch counters: %llu accesses for %llu done", h->op,
                (unsigned long long)(pa.accesses - pb.accesses), (unsigned long long)res.done);
        if (st == CS_ENOMEM)
            REQUIRE(a.frames_free < 1 + 2 * (uint64_t)h->g.levels, "op %d: batch out of memory with %llu frames free",
                    h->op, (unsigned long long)a.frames_free);
    }
    free(r);
    free(addrs);
    free(writes);
    free(outcomes);
    return st;
}

/* cs_replay: access i by pids[i], the pids drawn from every kind (live,
 * suspended, exited, 0, negative, never created), in runs. */
static cs_status op_replay(harness *h, input *in)
{
    uint8_t flags = u8(in);
    int want_out = flags & 1, stop = (flags >> 1) & 1, per_access = (flags >> 2) & 1, write_all = (flags >> 3) & 1;
    uint64_t n = batch_len(in);
    int32_t *pids = xmalloc(n * sizeof *pids);
    uint64_t *addrs = xmalloc(n * sizeof *addrs);
    uint8_t *writes = per_access ? xmalloc(n) : NULL;
    uint8_t *outcomes = want_out ? xmalloc(n) : NULL;
    cs_region **regs = xmalloc(n * sizeof *regs);
    size_t *nregs = xmalloc(n * sizeof *nregs);
    uint64_t first_bad = n;
    cs_status bad = CS_OK;
    for (uint64_t i = 0; i < n;) {   /* runs of one pid, each from batch_fill */
        int32_t pid = pick_pid(h, in);
        uint64_t run = 1 + u8(in) % 24;
        if (run > n - i)
            run = n - i;
        batch_fill(h, in, pid, addrs + i, writes ? writes + i : NULL, run);
        cs_region *r = regions_of(h, pid, &nregs[i]);
        for (uint64_t k = 0; k < run; k++) {
            pids[i + k] = pid;
            regs[i + k] = k ? NULL : r;   /* owned by the run's first entry */
            nregs[i + k] = nregs[i];
        }
        if (first_bad == n && pid_status(h, pid) != CS_OK) {
            first_bad = i;
            bad = pid_status(h, pid);
        }
        i += run;
    }
    const cs_region **view = xmalloc(n * sizeof *view);
    for (uint64_t i = 0, j = 0; i < n; i++) {
        if (regs[i])
            j = i;
        view[i] = regs[j];
    }
    cs_machine_stats b = mstats(h);
    cs_batch_result res;
    memset(&res, 0x5a, sizeof res);
    cs_status st = cs_replay(h->m, pids, addrs, writes, write_all, n, outcomes, stop, &res);
    REQUIRE(st == CS_OK || st == CS_ESEGV || st == CS_ENOMEM || st == bad, "op %d: replay returned %d", h->op,
            (int)st);
    batch_verify(h, "replay", st, &res, addrs, writes, write_all, n, outcomes, stop, (cs_region *const *)view,
                 nregs);
    /* It stops at the first pid that is not live, unless a segfault or running
     * out of frames stopped it before; all pids before the stop are live. */
    if (st == bad && bad != CS_OK)
        REQUIRE(res.stop_index == first_bad, "op %d: replay stopped at %llu, the first bad pid is at %llu", h->op,
                (unsigned long long)res.stop_index, (unsigned long long)first_bad);
    else
        REQUIRE(res.done <= first_bad, "op %d: replay ran accesses of pid %d (status %d)", h->op,
                first_bad < n ? pids[first_bad] : 0, (int)bad);
    cs_machine_stats a = mstats(h);
    uint64_t faults = res.done - res.counts[CS_HIT] - res.counts[CS_SEGFAULT] - res.counts[CS_SIGBUS];
    REQUIRE(a.minflt + a.majflt - b.minflt - b.majflt == faults && a.segfaults - b.segfaults == res.counts[CS_SEGFAULT],
            "op %d: replay machine counters", h->op);
    for (uint64_t i = 0; i < n; i++)
        free(regs[i]);
    free(view);
    free(regs);
    free(nregs);
    free(pids);
    free(addrs);
    free(writes);
    free(outcomes);
    return st;
}

/* cs_proc_get / cs_proc_put of any pid: live, exited and held, reaped, never
 * created, 0, negative.  The last put of an exited process frees its record. */
static cs_status op_hold(harness *h, input *in)
{
    int32_t pid = pick_pid(h, in);
    int put = u8(in) & 1;
    cs_status want = pid_status(h, pid);
    if ((want == CS_EEXITED && h->state[pid] == P_EXITED) || want == CS_ESUSPENDED)
        want = CS_OK;   /* a held exited record, or a suspended vfork parent: the record is there */
    if (want == CS_OK && put && !h->holds[pid])
        want = CS_EINVAL;
    cs_machine_stats b = mstats(h);
    int32_t ppid = -7, ppid2 = -8;
    cs_status st = put ? cs_proc_put(h->m, pid) : cs_proc_get(h->m, pid, &ppid);
    REQUIRE(st == want, "op %d: %s(pid %d) returned %d, expected %d", h->op, put ? "put" : "get", pid, (int)st,
            (int)want);
    if (st != CS_OK)
        return st;
    if (!put) {
        h->holds[pid]++;
        REQUIRE(cs_proc_parent(h->m, pid, &ppid2) == CS_OK && ppid == ppid2 && ppid >= 0 && ppid < pid,
                "op %d: get(pid %d) gave parent %d", h->op, pid, ppid);
        return st;
    }
    int freed = !--h->holds[pid] && h->state[pid] == P_EXITED;
    cs_machine_stats a = mstats(h);
    REQUIRE(a.process_records == b.process_records - freed, "op %d: put(pid %d) left %llu records of %llu", h->op,
            pid, (unsigned long long)a.process_records, (unsigned long long)b.process_records);
    if (freed) {
        h->state[pid] = P_REAPED;
        cs_proc_stats s;
        REQUIRE(cs_proc_stats_get(h->m, pid, &s) == CS_EEXITED && cs_proc_parent(h->m, pid, &ppid2) == CS_EEXITED &&
                    cs_proc_get(h->m, pid, &ppid2) == CS_EEXITED,
                "op %d: a reaped pid still has a record", h->op);
    }
    return st;
}

/* The records the core must keep: live processes and held exited ones; the
 * pid map between 1/8 and 1/2 full (16 slots at least). */
static void check_records(harness *h, const char *after)
{
    cs_machine_stats s = mstats(h);
    uint64_t n = 0;
    for (int32_t pid = 1; pid < h->next_pid; pid++)
        n += h->state[pid] == P_LIVE || h->state[pid] == P_SUSPENDED || h->state[pid] == P_EXITED;
    REQUIRE(s.process_records == n, "op %d (%s): %llu records, expected %llu", h->op, after,
            (unsigned long long)s.process_records, (unsigned long long)n);
    REQUIRE(s.pid_map_slots == 0 ? h->next_pid == 1
                                 : s.pid_map_slots >= 16 && n * 2 <= s.pid_map_slots &&
                                       (s.pid_map_slots == 16 || n * 8 >= s.pid_map_slots),
            "op %d (%s): %llu records in %llu slots", h->op, after, (unsigned long long)n,
            (unsigned long long)s.pid_map_slots);
}

/* Inspection calls with arbitrary (often too small) capacities: the buffers
 * are exactly that large, so ASan catches any write past cap. */
static cs_status op_inspect(harness *h, input *in)
{
    int32_t pid = pick_pid(h, in);
    uint8_t b = u8(in);
    size_t cap = b & 15;
    size_t n = 0;
    cs_status want = pid_status(h, pid);
    switch (b >> 4 & 7) {
    case 0: {
        uint64_t *f = xmalloc(cap * 8);
        uint32_t *rc = xmalloc(cap * 4), *mc = xmalloc(cap * 4);
        uint8_t *fl = xmalloc(cap);
        REQUIRE(cs_frames(h->m, f, rc, mc, fl, cap, &n) == CS_OK, "op %d: cs_frames", h->op);
        REQUIRE(n == mstats(h).frames_used, "op %d: cs_frames lists %zu frames", h->op, n);
        for (size_t i = 0; i < n && i < cap; i++)
            REQUIRE(rc[i] > 0 && (i == 0 || f[i] > f[i - 1]) && f[i] > 0, "op %d: frame listing", h->op);
        free(f), free(rc), free(mc), free(fl);
        break;
    }
    case 1: {
        uint64_t *vp = xmalloc(cap * 8), *fr = xmalloc(cap * 8);
        uint8_t *fl = xmalloc(cap);
        cs_status st = cs_page_table(h->m, pid, vp, fr, fl, cap, &n);
        REQUIRE(st == want, "op %d: page_table status %d, expected %d", h->op, (int)st, (int)want);
        for (size_t i = 1; st == CS_OK && i < n && i < cap; i++)
            REQUIRE(vp[i] > vp[i - 1], "op %d: page table not sorted", h->op);
        free(vp), free(fr), free(fl);
        break;
    }
    case 2: {
        cs_region *r = xmalloc(cap * sizeof *r);
        cs_status st = cs_regions(h->m, pid, r, cap, &n);
        REQUIRE(st == want, "op %d: regions status %d, expected %d", h->op, (int)st, (int)want);
        for (size_t i = 0; st == CS_OK && i < n && i < cap; i++)
            REQUIRE(r[i].start < r[i].end && (i == 0 || r[i].start >= r[i - 1].end), "op %d: regions", h->op);
        free(r);
        break;
    }
    case 3: {
        cs_smaps s;
        cs_status st = cs_smaps_get(h->m, pid, 1, 0, &s);
        REQUIRE(st == want, "op %d: smaps status %d", h->op, (int)st);
        if (st == CS_OK)
            REQUIRE(s.Rss == s.Shared_Clean + s.Shared_Dirty + s.Private_Clean + s.Private_Dirty &&
                        s.Pss <= s.Rss && s.Anonymous <= s.Rss && s.Pss_Dirty <= s.Pss,
                    "op %d: smaps fields inconsistent", h->op);
        break;
    }
    case 4: {
        uint64_t addr = pick_addr(h, in, pid);
        cs_smaps s;
        size_t nr;
        cs_region *r = regions_of(h, pid, &nr);
        cs_status w = want == CS_OK && !region_at(r, nr, addr) ? CS_ENOTMAPPED : want;
        free(r);
        cs_status st = cs_smaps_get(h->m, pid, 0, addr, &s);
        REQUIRE(st == w, "op %d: smaps(addr) status %d, expected %d", h->op, (int)st, (int)w);
        break;
    }
    case 5: {
        cs_proc_stats s;
        cs_status st = cs_proc_stats_get(h->m, pid, &s);
        /* held exited: final stats; reaped: CS_EEXITED; a suspended vfork parent: its stats */
        cs_status w = (want == CS_EEXITED && h->state[pid] == P_EXITED) || want == CS_ESUSPENDED ? CS_OK : want;
        REQUIRE(st == w, "op %d: proc stats status %d, expected %d", h->op, (int)st, (int)w);
        if (st == CS_OK)
            REQUIRE(s.minflt == s.faults_zero_page + s.faults_zero_fill + s.faults_cow_copy + s.faults_cow_reuse +
                                    s.faults_shared,
                    "op %d: minflt is not the sum of its kinds", h->op);
        break;
    }
    case 6: {
        int32_t *pids = xmalloc(cap * 4);
        REQUIRE(cs_pids(h->m, pids, cap, &n) == CS_OK && n == mstats(h).processes, "op %d: cs_pids", h->op);
        for (size_t i = 0; i < n && i < cap; i++)
            REQUIRE(pids[i] > 0 && pids[i] < h->next_pid &&
                        (h->state[pids[i]] == P_LIVE || h->state[pids[i]] == P_SUSPENDED),
                    "op %d: pid list", h->op);
        free(pids);
        break;
    }
    default: {
        uint64_t addr = pick_addr(h, in, pid);
        cs_translation t;
        cs_status st = cs_translate(h->m, pid, addr, &t);
        REQUIRE(st == want, "op %d: translate status %d", h->op, (int)st);
        break;
    }
    }
    return CS_OK;
}

/* ------------------------------------------------------------------------- */

static int bad_config(input *in)
{
    /* Invalid configurations must be refused without allocating anything. */
    static const cs_config bad[] = {
        {1 << 20, 8192, 48, 1, 65536, 0, 0, 0, 0},          /* page size */
        {1 << 20, 0, 48, 1, 65536, 0, 0, 0, 0},
        {4096, 4096, 48, 1, 65536, 0, 0, 0, 0},             /* one frame */
        {4096 * 3 + 1, 4096, 48, 0, 65536, 0, 0, 0, 0},     /* not a multiple */
        {1 << 20, 4096, 64, 0, 65536, 0, 0, 0, 0},          /* va_bits */
        {1 << 20, 4096, 21, 0, 65536, 0, 0, 0, 0},
        {0, 65536, 48, 1, 0, 0, 0, 0, 0},
        {(uint64_t)1 << 46, 4096, 48, 0, 0, 0, 0, 0, 0},    /* 2**34 frames */
        {1 << 20, 4096, 48, 0, 65536, 64, 7, 0, 0},         /* thp_cow */
    };
    const cs_config *c = &bad[u8(in) % (sizeof bad / sizeof bad[0])];
    cs_machine *m = (cs_machine *)&m;
    cs_status st = cs_machine_new(c, &m);
    REQUIRE(st == CS_EINVAL && m == NULL, "invalid config accepted (status %d)", (int)st);
    return 0;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    input in = {data, size};
    uint8_t c0 = u8(&in), c1 = u8(&in), c2 = u8(&in);
    if (c0 & 0x80)
        bad_config(&in);
    static const uint32_t page_sizes[] = {4096, 16384, 65536};
    uint32_t ps = page_sizes[c0 % 3];
    unsigned shift = ps == 4096 ? 12 : ps == 16384 ? 14 : 16, bits = shift - 3;
    uint32_t va;
    switch ((c0 >> 3) & 3) {
    case 0: va = 48; break;
    case 1: va = 2 * shift - 2; break;          /* the smallest: a 2-level tree */
    case 2: va = 2 * shift - 2 + bits; break;   /* 3 levels */
    default: va = 63; break;
    }
    uint64_t nframes = 2 + (c1 % 96);
    if (c1 >= 224)
        nframes = 2 + (uint64_t)c1 * 2;   /* up to ~510 frames */
    if (c1 >= 244)
        nframes = 1030 + (uint64_t)(c1 - 244) * 90;   /* room for one to three huge pages */
    static const uint32_t fa[] = {65536, 0, 4096, 16384, 1 << 20, 131072, 8192, 65536};
    cs_config cfg = {.memory = nframes * ps, .page_size = ps, .va_bits = va, .store_data = (c0 >> 2) & 1,
                     .fault_around_bytes = fa[c2 & 7], .tlb_entries = (c2 >> 3) & 1 ? 0 : 1u << ((c2 >> 4) & 7),
                     .thp_cow = (c0 >> 5) & 1 ? CS_THP_COW_COPY_HUGE : CS_THP_COW_SPLIT,
                     .readahead_kb = (c0 >> 6) & 1 ? 0 : 16u << (c2 & 3), .large_folios = (c0 >> 7) & 1};
    harness h;
    memset(&h, 0, sizeof h);
    cs_status st = cs_machine_new(&cfg, &h.m);
    REQUIRE(st == CS_OK && h.m, "cs_machine_new(memory %llu, page %u, va %u) returned %d",
            (unsigned long long)cfg.memory, ps, va, (int)st);
    REQUIRE(cs_geometry_get(h.m, &h.g) == CS_OK && h.g.nframes == nframes, "geometry");
    h.ps = ps;
    h.pm = ps - 1;
    h.store = cfg.store_data;
    h.next_pid = 1;
    run_check(&h, "new");
    /* FUZZ_CORE_TRACE=1 prints each operation and its status (debugging). */
    static int trace = -1;
    if (trace < 0)
        trace = getenv("FUZZ_CORE_TRACE") != NULL;

    for (h.op = 0; h.op < MAX_OPS && in.n; h.op++) {
        uint8_t op = u8(&in);
        /* Everything observable before the operation, to prove that a failed
         * one (or an inspection) changed nothing. */
        cs_machine_stats before = mstats(&h);
        int32_t created = h.next_pid - 1;
        /* Every operation but spawn starts by decoding its pid: peek at it
         * (a failed call may only change its own process; cs_check covers
         * the reference counts of all the others). */
        input peek = in;
        int32_t actor = (op % NOPS > 1 && op % NOPS < 24) || op % NOPS == 26 ? pick_pid(&h, &peek) : 0;
        proc_snap snap;
        snap_take(&h, actor, &snap);
        int partial_ok = 0, inspect = 0, batch = 0;
        const char *name;
        cs_status st;
        switch (op % NOPS) {
        case 0: case 1: name = "spawn"; st = op_spawn(&h); break;
        case 2: case 3: case 4: name = "mmap"; st = op_mmap(&h, &in, 0); break;
        case 5: name = "mmap fixed"; st = op_mmap(&h, &in, 1); break;
        case 6: name = "munmap"; st = op_munmap(&h, &in); break;
        case 7: name = "mprotect"; st = op_mprotect(&h, &in); break;
        case 8: name = "madvise"; st = op_madvise(&h, &in); break;
        case 9: case 10: name = "touch read"; st = op_touch(&h, &in, 0); break;
        case 11: case 12: name = "touch write"; st = op_touch(&h, &in, 1); break;
        case 13: name = "read"; partial_ok = 1; st = op_rw(&h, &in, 0); break;
        case 14: name = "write"; partial_ok = 1; st = op_rw(&h, &in, 1); break;
        case 15: name = "fork cow"; st = op_fork(&h, &in, CS_FORK_COW); break;
        case 16: name = "fork eager"; st = op_fork(&h, &in, CS_FORK_EAGER); break;
        case 17: name = "exit"; st = op_exit(&h, &in); break;
        case 20: name = "vfork"; st = op_vfork(&h, &in); break;
        case 21: name = "exec"; st = op_exec(&h, &in); break;
        case 22: case 23: name = "access batch"; batch = 1; st = op_batch(&h, &in); break;
        case 24: case 25: name = "replay"; batch = 1; st = op_replay(&h, &in); break;
        case 26: name = "hold"; st = op_hold(&h, &in); break;
        case 18: name = "file"; st = op_file(&h, &in); break;
        default: name = "inspect"; inspect = 1; st = op_inspect(&h, &in); break;
        }
        if (trace)
            fprintf(stderr, "op %d: %s -> %d\n", h.op, name, (int)st);
        run_check(&h, name);
        check_records(&h, name);
        cs_machine_stats after = mstats(&h);
        /* A failed call changes nothing but segfault counters.  Exception: a
         * multi-page read/write that ran out of frames keeps the pages it
         * completed (cowsim's documented behaviour is under discussion). */
        /* A batch that stopped keeps the accesses before the stop (checked by
         * op_batch / op_replay). */
        /* SIGBUS (FB1) keeps what the read fault's fault-around mapped first. */
        if ((st != CS_OK && st != CS_ESIGBUS && !(partial_ok && st == CS_ENOMEM) && !batch) || inspect) {
            cs_machine_stats b2 = before, a2 = after;
            REQUIRE(a2.segfaults == b2.segfaults + (st == CS_ESEGV), "op %d (%s): segfault counter moved by %lld",
                    h.op, name, (long long)(a2.segfaults - b2.segfaults));
            b2.segfaults = a2.segfaults = 0;
            REQUIRE(!memcmp(&b2, &a2, sizeof b2), "op %d (%s): failed with %d but changed machine counters", h.op,
                    name, (int)st);
            REQUIRE(h.next_pid - 1 == created, "op %d (%s): failed but created a process", h.op, name);
            proc_snap now;
            snap_take(&h, actor, &now);
            snap.ps.segfaults = now.ps.segfaults = 0;
            REQUIRE(snap_equal(&snap, &now), "op %d (%s): failed with %d but changed pid %d", h.op, name, (int)st,
                    actor);
            snap_free(&now);
        }
        snap_free(&snap);
    }
    /* Every handle let go: only the live processes keep records. */
    for (int32_t pid = 1; pid < h.next_pid; pid++)
        while (h.holds[pid]) {
            REQUIRE(cs_proc_put(h.m, pid) == CS_OK, "final put(pid %d)", pid);
            if (!--h.holds[pid] && h.state[pid] == P_EXITED)
                h.state[pid] = P_REAPED;
        }
    check_records(&h, "final puts");
    run_check(&h, "final puts");
    cs_machine_free(h.m);
    return 0;
}
