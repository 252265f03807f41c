/* cowsim host probe: runs a cowsim scenario in real Linux processes and
 * measures what the kernel did, or measures the costs the cost model needs.
 *
 * Shipped as package data of cowsim.host and compiled at run time with the
 * system C compiler (see cowsim/host/probe.py).  Linux only.
 *
 *   probe run          reads a scenario (line format below) on stdin, runs it
 *   probe calibrate [quick]
 *                      prints raw timings, one "key value" line each
 *
 * Scenario input (all numbers decimal except addresses):
 *   cowsim-probe 1
 *   procs <n>                            process ids 0..n-1, 0 is the root
 *   region <r> <addr-hex> <pages>        fixed address of region r
 *   step <i> <op> <proc> <a0> <a1> <a2> <a3> [<a4> [<a5>]]
 *   end
 * ops and their arguments:
 *   map      region prot(0 none,1 r,3 rw) shared(0/1) huge(0/1) [file(-1 none) offset-pages]
 *            file >= 0: a mapping of that file (created by fcreate) at the
 *            page offset; it may extend past the end of the file
 *            huge 1: MADV_HUGEPAGE instead of MADV_NOHUGEPAGE (transparent huge
 *            pages); the region's address must be aligned to the reach of one
 *            page table (2 MiB with 4 KiB pages), so that each of its whole
 *            2 MiB spans can be mapped by one huge page
 *   read     region first count
 *   write    region first count value
 *   mprotect region first count prot
 *   munmap   region first count
 *   madvise  region first count advice(0 dontfork,1 dofork,2 wipeonfork,3 keeponfork,4 dontneed,
 *                                      5 random,6 normal,7 sequential)
 *   fcreate  file pages fill(0 none,1 one write() per page,2 one write()) cached(0 evicted,1 fsynced,
 *            2 dirty: no fsync) lastbytes(0: the last page is whole)
 *            creates file <dir>/cowsim-probe-<root pid>-f<file> on a disk file
 *            system (dir: $COWSIM_PROBE_DIR, default /var/tmp); page k is
 *            filled with the byte (k % 255) + 1
 *   fsync    file
 *   evict    file                 fsync, then posix_fadvise(POSIX_FADV_DONTNEED)
 *   fwrite   file first count value   one pwrite() of count pages of value
 *   fread    file first count         one pread(); data = sum of each page's first byte
 *   folios   file                 prints the file's cached folios (fl lines)
 *   fork     child-proc
 *   exit     exiting-proc     (proc = its parent, which reaps it and measures)
 *   measure
 *
 * Output (stdout; only one process writes at a time):
 *   info <key> <value>                   (unmapped_own_pages: see rewarm())
 *   m <step> <proc> minflt <n> copied <n> segv <n> data <n> majflt <n> sigbus <n>
 *     RssFile <kB> RssAnon <kB> RssShmem <kB> VmPTE <kB>        (-1 = not measured)
 *     (Rss*: /proc/self/status minus the probe's own memory, measured after
 *     each rewarm; VmPTE: /proc/self/status as it is)
 *   r <step> <proc> <region> mapped <0|1> Rss <kB> Pss <kB> ...  (-1 = field absent)
 *   f <step> <proc> <file> size <bytes> cached <pages> [dirty <pages> folios <n> large <pages>]
 *     (cached: mincore() on a fresh mapping; dirty/folios/large, with visible
 *     frame numbers only: /proc/kpageflags of the cached pages, mapped by a
 *     fresh MADV_RANDOM mapping so that no readahead runs)
 *   fl <step> <file> <first> <pages> <folio-pages> <flags>   runs of like folios
 *     (flags: D dirty, A readahead mark (PG_readahead = PG_reclaim), - none)
 *   warn <step> <text>
 *   error <step> <text>
 *   done
 *
 * How the numbers are kept clean: every access, syscall and getrusage()
 * happens in this C program; minor faults are getrusage(RUSAGE_SELF) deltas
 * taken right around the step.  Before any step, and again in both processes
 * after every fork, the probe "rewarms" itself: it runs every code path once
 * on scratch memory, maps every page of its read-only mappings (its own text,
 * libc's, the loader's, the vDSO: MADV_POPULATE_READ) and writes every page of
 * every private writable mapping outside the scenario (stack, .data, .bss,
 * libc data, TLS: MADV_POPULATE_WRITE) so that no fault of the probe's own
 * memory lands inside a measured step; then it checks that none of those
 * pages is unmapped (else a "warn" line).  The driver also disables glibc's rseq
 * registration (the kernel would write to it).  The processes are pinned to
 * one CPU so that per-CPU LRU batches cannot hold extra page references
 * (which would turn a CoW reuse into a copy).  Processes take turns through
 * one token pipe each, so only one of them runs a step at any time.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <sched.h>
#include <setjmp.h>
#include <signal.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/prctl.h>
#include <sys/resource.h>
#include <sys/syscall.h>
#include <sys/types.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#ifndef MAP_FIXED_NOREPLACE
#define MAP_FIXED_NOREPLACE 0x100000
#endif
#ifndef MADV_WIPEONFORK
#define MADV_WIPEONFORK 18
#define MADV_KEEPONFORK 19
#endif
#ifndef MADV_HUGEPAGE
#define MADV_HUGEPAGE 14
#endif
#ifndef MADV_NOHUGEPAGE
#define MADV_NOHUGEPAGE 15
#endif
#ifndef MADV_POPULATE_READ
#define MADV_POPULATE_READ 22
#define MADV_POPULATE_WRITE 23
#endif

#define MAXP 16
#define MAXR 32
#define MAXS 512
#define MAXPAGES (1L << 19)
#define MAXF 8
#define MAXFPAGES (1L << 18)
#ifndef POSIX_FADV_DONTNEED
#define POSIX_FADV_DONTNEED 4
#endif

enum { OP_MAP, OP_READ, OP_WRITE, OP_MPROTECT, OP_MUNMAP, OP_MADVISE, OP_FORK, OP_EXIT, OP_MEASURE,
       OP_FCREATE, OP_FSYNC, OP_EVICT, OP_FWRITE, OP_FREAD, OP_FOLIOS };
static const char *const OP_NAMES[] = {"map", "read", "write", "mprotect", "munmap",
                                       "madvise", "fork", "exit", "measure",
                                       "fcreate", "fsync", "evict", "fwrite", "fread", "folios"};
#define NOPS ((int)(sizeof OP_NAMES / sizeof OP_NAMES[0]))

static const char *const FIELDS[] = {"Rss", "Pss", "Pss_Dirty", "Shared_Clean", "Shared_Dirty",
                                     "Private_Clean", "Private_Dirty", "Anonymous", "AnonHugePages"};
enum { F_RSS = 0, F_ANON = 7 };
#define NFIELDS ((int)(sizeof FIELDS / sizeof FIELDS[0]))

struct region { uintptr_t addr; long pages; int shared, file; };
struct step { int op, proc, a[6]; };

static long PAGE;
static int NP, NR, NS;
static struct region R[MAXR];
static struct step S[MAXS];
static int token[MAXP][2];
static pid_t pids[MAXP];
static int me;
static uintptr_t scen_lo = UINTPTR_MAX, scen_hi;
static pid_t root_pid;
static const char *file_dir = "/var/tmp";
/* /proc/self/status counters of the probe's own memory (RssFile, RssAnon, RssShmem) */
static long long own_rss[3];
static int kpf_fd = -1, kpc_fd = -1;

static uint64_t zero_pfn;
static uint64_t huge_zero_pfn; /* first PFN of the huge zero page, 0 unknown */
static int pfn_ok;

/* scratch memory for the rewarm exercise */
static char *scratch_priv, *scratch_shared, *scratch_none;
static char *scratch_bus; /* a page of an empty memfd: SIGBUS */
#define SCRATCH_PAGES 4

/* buffers live in .bss or are mapped before the first rewarm: they are
 * rewarmed (every page written) like everything else, so keep them small */
static char iobuf[1 << 20];
static uint64_t *pfn_before, *pfn_after; /* one entry per page of the largest region */
static char outbuf[1 << 16];
static size_t outlen;
static char altstack[1 << 16] __attribute__((aligned(4096)));

static sigjmp_buf segv_jmp;
static volatile sig_atomic_t segv_armed;
static volatile int segv_hit;
static volatile sig_atomic_t fault_sig; /* the signal that stopped the last access */

/* ------------------------------------------------------------------ output */
static void flush_out(void) {
    size_t off = 0;
    while (off < outlen) {
        ssize_t n = write(1, outbuf + off, outlen - off);
        if (n < 0) {
            if (errno == EINTR) continue;
            kill(0, SIGKILL); /* the reader is gone: stop every probe process */
            _exit(3);
        }
        off += (size_t)n;
    }
    outlen = 0;
}

static void out(const char *fmt, ...) {
    va_list ap;
    va_start(ap, fmt);
    int n = vsnprintf(outbuf + outlen, sizeof outbuf - outlen, fmt, ap);
    va_end(ap);
    if (n < 0 || (size_t)n >= sizeof outbuf - outlen) {
        flush_out();
        va_start(ap, fmt);
        n = vsnprintf(outbuf, sizeof outbuf, fmt, ap);
        va_end(ap);
        if (n < 0) n = 0;
        outlen = (size_t)n < sizeof outbuf ? (size_t)n : sizeof outbuf - 1;
        return;
    }
    outlen += (size_t)n;
}

static void remove_files(void);
static void die(int step, const char *fmt, ...) {
    char msg[512];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof msg, fmt, ap);
    va_end(ap);
    out("error %d %s\n", step + 1, msg);
    flush_out();
    if (root_pid) remove_files();
    /* the probe leads its own process group: stop every probe process */
    kill(0, SIGKILL);
    _exit(2);
}

/* ------------------------------------------------------------------ tokens */
static void send_token(int p) {
    char c = 't';
    while (write(token[p][1], &c, 1) != 1)
        if (errno != EINTR) die(-1, "token write: %s", strerror(errno));
}

static void wait_token(void) {
    char c;
    for (;;) {
        ssize_t n = read(token[me][0], &c, 1);
        if (n == 1) return;
        if (n < 0 && errno == EINTR) continue;
        die(-1, "token read: %s", n ? strerror(errno) : "end of file");
    }
}

/* ------------------------------------------------------------- measuring */
static volatile long long last_majflt; /* ru_majflt of the last minflt() call */
static long long minflt(void) {
    struct rusage ru;
    syscall(SYS_getrusage, RUSAGE_SELF, &ru);
    last_majflt = (long long)ru.ru_majflt;
    return (long long)ru.ru_minflt;
}

static long long now_ns(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (long long)ts.tv_sec * 1000000000LL + ts.tv_nsec;
}

static ssize_t read_file(const char *path, char *buf, size_t cap) {
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0) return -1;
    size_t len = 0;
    for (;;) {
        if (len + 1 >= cap) { close(fd); return -2; }
        ssize_t n = read(fd, buf + len, cap - 1 - len);
        if (n < 0) {
            if (errno == EINTR) continue;
            close(fd);
            return -1;
        }
        if (n == 0) break;
        len += (size_t)n;
    }
    close(fd);
    buf[len] = 0;
    return (ssize_t)len;
}

/* PFNs (bit 63 present, bits 0-54 pfn) of count pages from addr */
static int read_pfns(uintptr_t addr, long count, uint64_t *dst) {
    int fd = open("/proc/self/pagemap", O_RDONLY | O_CLOEXEC);
    if (fd < 0) return -1;
    size_t want = (size_t)count * 8, got = 0;
    off_t off = (off_t)(addr / (uintptr_t)PAGE) * 8;
    while (got < want) {
        ssize_t n = pread(fd, (char *)dst + got, want - got, off + (off_t)got);
        if (n < 0 && errno == EINTR) continue;
        if (n <= 0) { close(fd); return -1; }
        got += (size_t)n;
    }
    close(fd);
    return 0;
}

#define PM_PRESENT (1ULL << 63)
#define PM_SWAP (1ULL << 62)
#define PM_PFN(x) ((x) & ((1ULL << 55) - 1))

static void on_segv(int sig, siginfo_t *si, void *ctx) {
    (void)si;
    (void)ctx;
    if (segv_armed) {
        segv_armed = 0;
        fault_sig = sig;
        siglongjmp(segv_jmp, 1);
    }
    /* a real crash: stop every probe process (the others would wait for a turn forever) */
    kill(0, SIGKILL);
    signal(sig, SIG_DFL);
    raise(sig);
}

static void on_fatal(int sig) {
    (void)sig;
    kill(0, SIGKILL);
    _exit(4);
}

/* Accesses count pages from base: one byte at the start of each page, in
 * order, stopping at the first segmentation fault or bus error.  Returns the
 * minor fault delta; *maj the major fault delta, *segv the signal that
 * stopped the access (SIGSEGV, SIGBUS, 0 none) and *sum the bytes read. */
static volatile long long acc_f0, acc_m0;
static volatile long acc_sum;
static long long access_pages(char *base, long count, int write, int value, int *segv, long *sum,
                              long long *maj) {
    long long f1;
    segv_hit = 0;
    acc_sum = 0;
    fault_sig = 0;
    if (sigsetjmp(segv_jmp, 1)) {
        f1 = minflt();
        *maj = last_majflt - acc_m0;
        *segv = fault_sig ? (int)fault_sig : SIGSEGV;
        *sum = acc_sum;
        return f1 - acc_f0;
    }
    segv_armed = 1;
    acc_f0 = minflt();
    acc_m0 = last_majflt;
    if (write) {
        for (long k = 0; k < count; k++) *(volatile char *)(base + k * PAGE) = (char)value;
    } else {
        long s = 0;
        for (long k = 0; k < count; k++) {
            s += *(volatile unsigned char *)(base + k * PAGE);
            acc_sum = s;
        }
    }
    f1 = minflt();
    *maj = last_majflt - acc_m0;
    segv_armed = 0;
    *segv = 0;
    *sum = acc_sum;
    return f1 - acc_f0;
}

/* Sums the smaps fields of every VMA inside each region of this process. */
static void scan_smaps(int step, long long val[MAXR][NFIELDS], int seen[NFIELDS], int mapped[MAXR]) {
    memset(val, 0, sizeof(long long) * MAXR * NFIELDS);
    memset(seen, 0, sizeof(int) * NFIELDS);
    memset(mapped, 0, sizeof(int) * MAXR);
    ssize_t n = read_file("/proc/self/smaps", iobuf, sizeof iobuf);
    if (n < 0) die(step, "cannot read /proc/self/smaps");
    char *line = iobuf;
    int cur = -1; /* region of the current VMA, -1 none */
    while (*line) {
        char *eol = strchr(line, '\n');
        if (eol) *eol = 0;
        char *dash = strchr(line, '-');
        char *colon = strchr(line, ':');
        if (dash && (!colon || dash < colon) && line[0] != ' ') {
            /* "start-end perms offset dev inode path": a VMA header */
            uintptr_t s = (uintptr_t)strtoull(line, NULL, 16);
            uintptr_t e = (uintptr_t)strtoull(dash + 1, NULL, 16);
            cur = -1;
            for (int r = 0; r < NR; r++) {
                uintptr_t rs = R[r].addr, re = R[r].addr + (uintptr_t)R[r].pages * (uintptr_t)PAGE;
                if (s < re && e > rs) {
                    if ((s < rs || e > re) && step >= 0)
                        out("warn %d VMA %lx-%lx overlaps region %d partially\n", step + 1,
                            (unsigned long)s, (unsigned long)e, r);
                    cur = r;
                    mapped[r] = 1;
                    break;
                }
            }
        } else if (colon) {
            *colon = 0;
            for (int f = 0; f < NFIELDS; f++) {
                if (strcmp(line, FIELDS[f]) == 0) {
                    if (cur >= 0) val[cur][f] += strtoll(colon + 1, NULL, 10);
                    seen[f] = 1;
                    break;
                }
            }
        }
        if (!eol) break;
        line = eol + 1;
    }
}

#define PM_FILE (1ULL << 61)

/* Pss_File of region r (kB): per-VMA smaps has no Pss_File (smaps_rollup only),
 * so it is summed as smaps_account@fs/proc/task_mmu.c does: every present
 * page-cache page (pagemap PM_FILE) adds (page size << 12) / its map count
 * (/proc/kpagecount), shifted down at the end.  -1 without frame numbers. */
static long long pss_file(int r) {
    if (!R[r].file) return 0;
    if (!pfn_ok) return -1;
    if (kpc_fd < 0) kpc_fd = open("/proc/kpagecount", O_RDONLY | O_CLOEXEC);
    if (kpc_fd < 0) return -1;
    static uint64_t pm[512];
    unsigned long long pss = 0;
    for (long k = 0; k < R[r].pages; k += 512) {
        long n = R[r].pages - k < 512 ? R[r].pages - k : 512;
        if (read_pfns(R[r].addr + (uintptr_t)k * (uintptr_t)PAGE, n, pm)) return -1;
        for (long j = 0; j < n; j++) {
            if (!(pm[j] & PM_PRESENT) || !(pm[j] & PM_FILE)) continue;
            uint64_t cnt = 0;
            if (pread(kpc_fd, &cnt, 8, (off_t)(PM_PFN(pm[j]) * 8)) != 8) return -1;
            pss += cnt >= 2 ? ((unsigned long long)PAGE << 12) / cnt : (unsigned long long)PAGE << 12;
        }
    }
    return (long long)(pss >> 12 >> 10);
}

static void measure_regions(int step) {
    static long long val[MAXR][NFIELDS];
    int seen[NFIELDS], mapped[MAXR];
    scan_smaps(step, val, seen, mapped);
    for (int r = 0; r < NR; r++) {
        out("r %d %d %d mapped %d", step + 1, me, r, mapped[r]);
        for (int f = 0; f < NFIELDS; f++) out(" %s %lld", FIELDS[f], seen[f] ? val[r][f] : -1LL);
        out(" Pss_File %lld\n", mapped[r] ? pss_file(r) : 0LL);
    }
}

/* RssFile, RssAnon, RssShmem, VmPTE of /proc/self/status (kB; -1 absent) */
static void read_status(long long v[4]) {
    static const char *const keys[4] = {"RssFile:", "RssAnon:", "RssShmem:", "VmPTE:"};
    static char buf[1 << 13];
    for (int k = 0; k < 4; k++) v[k] = -1;
    if (read_file("/proc/self/status", buf, sizeof buf) < 0) return;
    for (int k = 0; k < 4; k++) {
        char *p = strstr(buf, keys[k]);
        if (p) v[k] = strtoll(p + strlen(keys[k]), NULL, 10);
    }
}

/* What the scenario's regions add to RssFile, RssAnon, RssShmem (from smaps:
 * a file region's anonymous copies are RssAnon, the rest RssFile; a shared
 * anonymous region is shmem). */
static void scenario_rss(long long c[3]) {
    static long long val[MAXR][NFIELDS];
    int seen[NFIELDS], mapped[MAXR];
    scan_smaps(-1, val, seen, mapped);
    c[0] = c[1] = c[2] = 0;
    for (int r = 0; r < NR; r++) {
        if (!mapped[r]) continue;
        long long rss = val[r][F_RSS], anon = val[r][F_ANON];
        if (R[r].file) {
            c[1] += anon;
            c[0] += rss - anon;
        } else if (R[r].shared) {
            c[2] += rss;
        } else {
            c[1] += anon;
        }
    }
}

/* The probe's own share of the status counters, after a rewarm. */
static void set_own_rss(void) {
    long long v[4], c[3];
    read_status(v);
    scenario_rss(c);
    for (int k = 0; k < 3; k++) own_rss[k] = v[k] < 0 ? -1 : v[k] - c[k];
}

/* ------------------------------------------------------------------ files */
static void file_path(int f, char *buf, size_t cap) {
    snprintf(buf, cap, "%s/cowsim-probe-%d-f%d", file_dir, (int)root_pid, f);
}

static void remove_files(void) {
    char path[512];
    for (int f = 0; f < MAXF; f++) {
        file_path(f, path, sizeof path);
        unlink(path);
    }
}

static int open_file(int step, int f, int flags) {
    char path[512];
    if (f < 0 || f >= MAXF) die(step, "bad file %d", f);
    file_path(f, path, sizeof path);
    int fd = open(path, flags | O_CLOEXEC, 0600);
    if (fd < 0) die(step, "open %s: %s", path, strerror(errno));
    return fd;
}

static long file_size(int f) {
    char path[512];
    struct stat st;
    file_path(f, path, sizeof path);
    if (stat(path, &st)) return -1;
    return (long)st.st_size;
}

/* A buffer of len bytes, every page present (outside any measured window). */
static char *fresh_buffer(int step, size_t len) {
    char *b = mmap(NULL, len ? len : 1, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS | MAP_POPULATE, -1, 0);
    if (b == MAP_FAILED) die(step, "buffer mmap: %s", strerror(errno));
    return b;
}

static void full_pwrite(int step, int fd, const char *buf, size_t len, off_t off) {
    while (len) {
        ssize_t n = pwrite(fd, buf, len, off);
        if (n < 0 && errno == EINTR) continue;
        if (n <= 0) die(step, "pwrite: %s", n ? strerror(errno) : "no progress");
        buf += n;
        len -= (size_t)n;
        off += n;
    }
}

static unsigned char mvec[MAXFPAGES];

/* Pages of file f in the page cache: mincore() on a fresh mapping (no access,
 * so nothing is read in and no page table is allocated).  mincore() counts
 * only uptodate pages, so the count waits (up to 2 s) until it equals
 * cachestat()'s (Linux 6.5+: every cached page, I/O in flight included): the
 * readahead of a major fault may still be reading when the fault returns. */
struct cs_range { uint64_t off, len; };
struct cs_stat { uint64_t nr_cache, nr_dirty, nr_writeback, nr_evicted, nr_recently_evicted; };
#ifndef SYS_cachestat
#define SYS_cachestat 451
#endif
static long cached_pages(int step, int f, long size) {
    long pages = (size + PAGE - 1) / PAGE;
    if (pages <= 0) return 0;
    if (pages > MAXFPAGES) die(step, "file too large to measure");
    int fd = open_file(step, f, O_RDONLY);
    void *p = mmap(NULL, (size_t)pages * (size_t)PAGE, PROT_READ, MAP_SHARED, fd, 0);
    if (p == MAP_FAILED) die(step, "mmap for mincore: %s", strerror(errno));
    long n = 0;
    for (int tries = 0; tries < 2000; tries++) {
        if (mincore(p, (size_t)pages * (size_t)PAGE, mvec)) die(step, "mincore: %s", strerror(errno));
        n = 0;
        for (long k = 0; k < pages; k++) n += mvec[k] & 1;
        struct cs_range range = {0, 0};
        struct cs_stat cs;
        if (syscall(SYS_cachestat, fd, &range, &cs, 0) != 0 || (long)cs.nr_cache <= n) break;
        usleep(1000);
    }
    munmap(p, (size_t)pages * (size_t)PAGE);
    close(fd);
    return n;
}

#define KPF_DIRTY 4
#define KPF_RECLAIM 9 /* PG_readahead is PG_reclaim */
#define KPF_COMPOUND_HEAD 15
#define KPF_COMPOUND_TAIL 16

/* The cached folios of file f (/proc/kpageflags of each cached page, mapped
 * by a fresh MADV_RANDOM mapping: touching a page with a readahead mark there
 * starts no readahead).  Prints runs of like folios if verbose; counts in out4:
 * dirty pages, folios, pages in large folios, readahead marks. */
static void file_folios(int step, int f, int verbose, long out4[4]) {
    long size = file_size(f);
    long pages = (size + PAGE - 1) / PAGE;
    out4[0] = out4[1] = out4[2] = out4[3] = 0;
    if (pages <= 0) return;
    cached_pages(step, f, size); /* fills mvec */
    if (kpf_fd < 0) kpf_fd = open("/proc/kpageflags", O_RDONLY | O_CLOEXEC);
    if (kpf_fd < 0 || !pfn_ok) { out4[0] = out4[1] = out4[2] = out4[3] = -1; return; }
    int fd = open_file(step, f, O_RDONLY);
    size_t len = (size_t)pages * (size_t)PAGE;
    char *p = mmap(NULL, len, PROT_READ, MAP_SHARED, fd, 0);
    close(fd);
    if (p == MAP_FAILED) die(step, "mmap for kpageflags: %s", strerror(errno));
    madvise(p, len, MADV_RANDOM);
    long cur_first = -1, cur_n = 0, cur_flags = 0;     /* the folio being read */
    long run_first = -1, run_pages = 0, run_fsize = 0, run_flags = 0; /* a run of like folios */
    for (long k = 0; k <= pages; k++) {
        uint64_t kf = 0;
        int cached = k < pages && (mvec[k] & 1);
        if (cached) {
            uint64_t pm;
            (void)*(volatile char *)(p + k * PAGE);
            if (read_pfns((uintptr_t)(p + k * PAGE), 1, &pm) || !(pm & PM_PRESENT) ||
                pread(kpf_fd, &kf, 8, (off_t)(PM_PFN(pm) * 8)) != 8)
                cached = 0;
        }
        int tail = cached && (kf >> KPF_COMPOUND_TAIL & 1) && cur_first >= 0;
        if (!tail && cur_first >= 0) { /* the folio [cur_first, +cur_n) is complete */
            out4[1]++;
            if (cur_flags & 1) out4[0] += cur_n;
            if (cur_n > 1) out4[2] += cur_n;
            if (cur_flags & 2) out4[3]++;
            if (run_first >= 0 && cur_first == run_first + run_pages && cur_n == run_fsize && cur_flags == run_flags) {
                run_pages += cur_n;
            } else {
                if (run_first >= 0 && verbose)
                    out("fl %d %d %ld %ld %ld %s\n", step + 1, f, run_first, run_pages, run_fsize,
                        run_flags == 3 ? "DA" : run_flags == 1 ? "D" : run_flags == 2 ? "A" : "-");
                run_first = cur_first;
                run_pages = cur_n;
                run_fsize = cur_n;
                run_flags = cur_flags;
            }
            cur_first = -1;
        }
        if (!cached) continue;
        if (tail) {
            cur_n++;
        } else {
            cur_first = k;
            cur_n = 1;
            cur_flags = (kf >> KPF_DIRTY & 1) | (kf >> KPF_RECLAIM & 1) << 1;
        }
    }
    if (run_first >= 0 && verbose)
        out("fl %d %d %ld %ld %ld %s\n", step + 1, f, run_first, run_pages, run_fsize,
            run_flags == 3 ? "DA" : run_flags == 1 ? "D" : run_flags == 2 ? "A" : "-");
    munmap(p, len);
}

/* size and cached pages of every existing file */
static void measure_files(int step, int folios_of) {
    for (int f = 0; f < MAXF; f++) {
        long size = file_size(f);
        if (size < 0) continue;
        out("f %d %d %d size %ld cached %ld", step + 1, me, f, size, cached_pages(step, f, size));
        if (f == folios_of) {
            long c[4];
            file_folios(step, f, 0, c);
            out(" dirty %ld folios %ld large %ld ramarks %ld", c[0], c[1], c[2], c[3]);
        }
        out("\n");
    }
}

/* ------------------------------------------------------------- rewarming */
static void __attribute__((noinline)) touch_stack(void) {
    volatile char buf[256 * 1024];
    for (size_t i = 0; i < sizeof buf; i += 1024) buf[i] = (char)i;
    buf[sizeof buf - 1] = 0;
}

/* A mapping of this process the probe may touch: readable, outside the
 * scenario's regions and their guards, not a special mapping of the kernel
 * ([vvar*] pages may raise SIGBUS, [vsyscall] is execute-only). */
static int own_mapping(const char *line, uintptr_t *s, uintptr_t *e, char *perms) {
    if (sscanf(line, "%lx-%lx %7s", (unsigned long *)s, (unsigned long *)e, perms) != 3) return 0;
    if (perms[0] != 'r' || !(*e <= scen_lo || *s >= scen_hi)) return 0;
    if (scratch_bus && *s == (uintptr_t)scratch_bus) return 0; /* an empty memfd: SIGBUS on purpose */
    return strstr(line, "[vsyscall]") == NULL && strstr(line, "[vvar") == NULL;
}

/* Writes one byte (its own value) in every page of every private writable
 * mapping outside the scenario regions, breaking copy-on-write sharing of
 * the probe's own memory after a fork (and mapping untouched .bss pages). */
static void touch_private_memory(void) {
    static char maps[1 << 16];
    if (read_file("/proc/self/maps", maps, sizeof maps) < 0) die(-1, "cannot read /proc/self/maps");
    char *line = maps;
    while (*line) {
        char *eol = strchr(line, '\n');
        if (eol) *eol = 0; /* (without this, strstr() saw [vsyscall] on the last line and nothing was touched) */
        uintptr_t s, e;
        char perms[8] = {0};
        if (own_mapping(line, &s, &e, perms) && perms[1] == 'w' && perms[3] == 'p' &&
            madvise((void *)s, e - s, MADV_POPULATE_WRITE) != 0) { /* before Linux 5.14: by hand */
            for (uintptr_t a = s; a < e; a += (uintptr_t)PAGE) {
                volatile char *p = (volatile char *)a;
                *p = *p;
            }
        }
        if (!eol) break;
        line = eol + 1;
    }
}

/* Maps every page of every read-only mapping of the probe's own (its text
 * and rodata, libc's, the loader's, the vDSO).  Running the code paths once
 * is not enough: the text of a step's own case in do_step() runs first inside
 * that step, and file fault-around stops at a page-table boundary
 * (do_fault_around@mm/memory.c), so when the (randomised) load address puts
 * a 2 MiB boundary inside the text, the page beyond it was faulted in the
 * step and counted there (1 run in 512: the stray fault of step 1). */
static void populate_read_only(void) {
    static char maps[1 << 16];
    if (read_file("/proc/self/maps", maps, sizeof maps) < 0) die(-1, "cannot read /proc/self/maps");
    char *line = maps;
    while (*line) {
        char *eol = strchr(line, '\n');
        if (eol) *eol = 0;
        uintptr_t s, e;
        char perms[8] = {0};
        if (own_mapping(line, &s, &e, perms) && perms[1] != 'w' &&
            madvise((void *)s, e - s, MADV_POPULATE_READ) != 0) {
            /* before Linux 5.14: read one byte of every page (private file text and rodata) */
            for (uintptr_t a = s; a < e; a += (uintptr_t)PAGE) (void)*(volatile char *)a;
        }
        if (!eol) break;
        line = eol + 1;
    }
}

/* Pages of the probe's own readable mappings that are not mapped (pagemap:
 * neither present nor swapped): each would be a fault inside the next step. */
static long unmapped_own_pages(void) {
    static char maps[1 << 16];
    if (read_file("/proc/self/maps", maps, sizeof maps) < 0) return -1;
    long missing = 0;
    char *line = maps;
    while (*line) {
        char *eol = strchr(line, '\n');
        if (eol) *eol = 0;
        uintptr_t s, e;
        char perms[8] = {0};
        /* (the scratch mapping's second page is dropped by exercise() on purpose) */
        if (own_mapping(line, &s, &e, perms) && s != (uintptr_t)scratch_priv) {
            static uint64_t pm[512];
            for (uintptr_t a = s; a < e; a += (uintptr_t)PAGE * 512) {
                long n = (long)((e - a) / (uintptr_t)PAGE);
                if (n > 512) n = 512;
                if (read_pfns(a, n, pm)) return -1;
                for (long k = 0; k < n; k++)
                    if (!(pm[k] & (PM_PRESENT | PM_SWAP))) missing++;
            }
        }
        if (!eol) break;
        line = eol + 1;
    }
    return missing;
}

/* Runs every code path a step uses, on scratch memory. */
static void exercise(void) {
    int segv;
    long sum;
    long long maj;
    uint64_t pm[SCRATCH_PAGES];
    long long st[4];
    access_pages(scratch_priv, SCRATCH_PAGES, 1, 1, &segv, &sum, &maj);
    access_pages(scratch_priv, SCRATCH_PAGES, 0, 0, &segv, &sum, &maj);
    access_pages(scratch_shared, SCRATCH_PAGES, 1, 1, &segv, &sum, &maj);
    access_pages(scratch_shared, SCRATCH_PAGES, 0, 0, &segv, &sum, &maj);
    access_pages(scratch_none, 1, 0, 0, &segv, &sum, &maj); /* takes the SIGSEGV path */
    if (segv != SIGSEGV) die(-1, "the scratch PROT_NONE page did not fault");
    if (scratch_bus) {
        access_pages(scratch_bus, 1, 0, 0, &segv, &sum, &maj); /* the SIGBUS path */
        if (segv != SIGBUS) die(-1, "the scratch memfd page past its end did not raise SIGBUS");
    }
    read_status(st);
    mprotect(scratch_priv, (size_t)PAGE, PROT_READ);
    mprotect(scratch_priv, (size_t)PAGE, PROT_READ | PROT_WRITE);
    madvise(scratch_priv, (size_t)PAGE, MADV_DONTFORK);
    madvise(scratch_priv, (size_t)PAGE, MADV_DOFORK);
    madvise(scratch_priv + PAGE, (size_t)PAGE, MADV_DONTNEED);
    void *t = mmap(NULL, (size_t)PAGE, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    if (t != MAP_FAILED) {
        madvise(t, (size_t)PAGE, MADV_NOHUGEPAGE);
        munmap(t, (size_t)PAGE);
    }
    read_pfns((uintptr_t)scratch_priv, SCRATCH_PAGES, pm);
    (void)minflt();
}

static long rewarm(int step) {
    touch_stack();
    exercise();
    populate_read_only();
    touch_private_memory();
    exercise();
    touch_stack();
    long missing = unmapped_own_pages();
    if (missing) out("warn %d %ld pages of the probe's own mappings are not mapped before the step\n", step + 1, missing);
    return missing;
}

/* --------------------------------------------------------------- the steps */
static int prot_of(int p) {
    return p == 0 ? PROT_NONE : p == 1 ? PROT_READ : PROT_READ | PROT_WRITE;
}

static long long step_maj; /* the major fault delta of the step, -1 not measured */

static void emit_m(int step, long long flt, long long copied, int sig, long long data) {
    long long st[4];
    read_status(st);
    out("m %d %d minflt %lld copied %lld segv %d data %lld majflt %lld sigbus %d", step + 1, me, flt, copied,
        sig == SIGSEGV, data, flt < 0 ? -1 : step_maj, sig == SIGBUS);
    for (int k = 0; k < 3; k++) out(" %s %lld", k == 0 ? "RssFile" : k == 1 ? "RssAnon" : "RssShmem",
                                    st[k] < 0 || own_rss[k] < 0 ? -1 : st[k] - own_rss[k]);
    out(" VmPTE %lld\n", st[3]);
}

static long count_copied(long count) {
    long copied = 0;
    for (long k = 0; k < count; k++) {
        uint64_t b = pfn_before[k], a = pfn_after[k];
        int b_zero = PM_PFN(b) == zero_pfn ||
                     (huge_zero_pfn && PM_PFN(b) >= huge_zero_pfn && PM_PFN(b) < huge_zero_pfn + (uint64_t)(PAGE / 8));
        if ((b & PM_PRESENT) && (a & PM_PRESENT) && !b_zero && PM_PFN(a) != PM_PFN(b))
            copied++;
    }
    return copied;
}

#define WINDOW_BEGIN() do { f0 = minflt(); m0 = last_majflt; } while (0)
#define WINDOW_END() do { f1 = minflt(); step_maj = last_majflt - m0; } while (0)

/* Runs step i in this process.  Returns 1 in a child just created by it. */
static int do_step(int i) {
    struct step *s = &S[i];
    int r = s->a[0];
    char *base = NULL;
    long first = 0, count = 0;
    size_t len = 0;
    long long f0, f1, m0;
    int folios_of = -1;
    step_maj = 0;
    if (s->op >= OP_MAP && s->op <= OP_MADVISE) {
        if (r < 0 || r >= NR) die(i, "bad region %d", r);
        if (s->op != OP_MAP) {
            first = s->a[1];
            count = s->a[2];
            if (first < 0 || count <= 0 || first + count > R[r].pages) die(i, "bad page range");
        } else {
            count = R[r].pages;
        }
        base = (char *)R[r].addr + first * PAGE;
        len = (size_t)count * (size_t)PAGE;
    }
    switch (s->op) {
    case OP_MAP: {
        int file = s->a[4];
        int flags = MAP_FIXED_NOREPLACE | (s->a[2] ? MAP_SHARED : MAP_PRIVATE) | (file >= 0 ? 0 : MAP_ANONYMOUS);
        int huge = s->a[3] != 0;
        size_t pmd_span = (size_t)PAGE * (size_t)(PAGE / 8);
        if (huge && (s->a[2] || (uintptr_t)base % pmd_span || file >= 0))
            die(i, "a huge region must be private, anonymous and %zu-byte aligned", pmd_span);
        int fd = -1;
        if (file >= 0) fd = open_file(i, file, s->a[2] ? O_RDWR : O_RDONLY);
        R[r].shared = s->a[2] != 0;
        R[r].file = file >= 0;
        WINDOW_BEGIN();
        /* guard pages: own shmem objects, so they can never merge with the region */
        void *g1 = mmap(base - PAGE, (size_t)PAGE, PROT_NONE, MAP_SHARED | MAP_ANONYMOUS | MAP_FIXED_NOREPLACE, -1, 0);
        void *g2 = mmap(base + len, (size_t)PAGE, PROT_NONE, MAP_SHARED | MAP_ANONYMOUS | MAP_FIXED_NOREPLACE, -1, 0);
        void *p = mmap(base, len, prot_of(s->a[1]), flags, fd, (off_t)s->a[5] * PAGE);
        int adv = p == base ? madvise(p, len, huge ? MADV_HUGEPAGE : MADV_NOHUGEPAGE) : 0;
        WINDOW_END();
        if (fd >= 0) close(fd);
        if (g1 != base - PAGE || g2 != base + len) die(i, "guard mmap failed: %s", strerror(errno));
        if (p != base) die(i, "mmap at %p failed: %s", (void *)base, p == MAP_FAILED ? strerror(errno) : "moved");
        if (adv) die(i, "madvise(%s): %s", huge ? "MADV_HUGEPAGE" : "MADV_NOHUGEPAGE", strerror(errno));
        emit_m(i, f1 - f0, -1, 0, -1);
        break;
    }
    case OP_READ:
    case OP_WRITE: {
        int sig = 0;
        long sum = 0;
        int have = pfn_ok && read_pfns((uintptr_t)base, count, pfn_before) == 0;
        long long flt = access_pages(base, count, s->op == OP_WRITE, s->a[3], &sig, &sum, &step_maj);
        long long copied = -1;
        if (have && read_pfns((uintptr_t)base, count, pfn_after) == 0) copied = count_copied(count);
        emit_m(i, flt, copied, sig, s->op == OP_READ ? sum : -1);
        break;
    }
    case OP_MPROTECT: {
        WINDOW_BEGIN();
        int rc = mprotect(base, len, prot_of(s->a[3]));
        WINDOW_END();
        if (rc) die(i, "mprotect: %s", strerror(errno));
        emit_m(i, f1 - f0, -1, 0, -1);
        break;
    }
    case OP_MUNMAP: {
        WINDOW_BEGIN();
        int rc = munmap(base, len);
        WINDOW_END();
        if (rc) die(i, "munmap: %s", strerror(errno));
        emit_m(i, f1 - f0, -1, 0, -1);
        break;
    }
    case OP_MADVISE: {
        static const int adv[] = {MADV_DONTFORK, MADV_DOFORK, MADV_WIPEONFORK, MADV_KEEPONFORK, MADV_DONTNEED,
                                  MADV_RANDOM, MADV_NORMAL, MADV_SEQUENTIAL};
        if (s->a[3] < 0 || s->a[3] > 7) die(i, "bad advice %d", s->a[3]);
        WINDOW_BEGIN();
        int rc = madvise(base, len, adv[s->a[3]]);
        WINDOW_END();
        if (rc) die(i, "madvise: %s", strerror(errno));
        emit_m(i, f1 - f0, -1, 0, -1);
        break;
    }
    case OP_FCREATE: {
        int f = s->a[0], fill = s->a[2], cached = s->a[3];
        long pages = s->a[1], last = s->a[4] < 0 ? 0 : s->a[4];
        if (pages < 1 || pages > MAXFPAGES || last < 0 || last > PAGE || fill < 0 || fill > 2 || cached < 0 ||
            cached > 2)
            die(i, "bad fcreate arguments");
        long size = last ? (pages - 1) * PAGE + last : pages * PAGE;
        int fd = open_file(i, f, O_RDWR | O_CREAT | O_TRUNC);
        char *buf = fill == 2 ? fresh_buffer(i, (size_t)size) : NULL;
        if (buf)
            for (long k = 0; k < pages; k++)
                memset(buf + k * PAGE, (int)(k % 255) + 1, (size_t)(k == pages - 1 ? size - k * PAGE : PAGE));
        WINDOW_BEGIN();
        if (fill == 0) {
            if (ftruncate(fd, size)) die(i, "ftruncate: %s", strerror(errno));
        } else if (fill == 1) {
            for (long k = 0; k < pages; k++) {
                memset(iobuf, (int)(k % 255) + 1, (size_t)PAGE);
                full_pwrite(i, fd, iobuf, (size_t)(k == pages - 1 ? size - k * PAGE : PAGE), (off_t)(k * PAGE));
            }
        } else {
            full_pwrite(i, fd, buf, (size_t)size, 0);
        }
        if (cached != 2 && fsync(fd)) die(i, "fsync: %s", strerror(errno));
        if (cached == 0 && posix_fadvise(fd, 0, 0, POSIX_FADV_DONTNEED)) die(i, "posix_fadvise failed");
        WINDOW_END();
        close(fd);
        if (buf) munmap(buf, (size_t)size);
        emit_m(i, f1 - f0, -1, 0, -1);
        break;
    }
    case OP_FSYNC:
    case OP_EVICT: {
        int fd = open_file(i, s->a[0], O_RDWR);
        WINDOW_BEGIN();
        int rc = fsync(fd);
        if (!rc && s->op == OP_EVICT) rc = posix_fadvise(fd, 0, 0, POSIX_FADV_DONTNEED);
        WINDOW_END();
        close(fd);
        if (rc) die(i, "fsync/fadvise failed");
        emit_m(i, f1 - f0, -1, 0, -1);
        break;
    }
    case OP_FWRITE:
    case OP_FREAD: {
        long fp = s->a[1], n = s->a[2];
        if (fp < 0 || n <= 0 || fp + n > MAXFPAGES) die(i, "bad file page range");
        int fd = open_file(i, s->a[0], s->op == OP_FWRITE ? O_RDWR : O_RDONLY);
        size_t blen = (size_t)n * (size_t)PAGE;
        char *buf = fresh_buffer(i, blen);
        if (s->op == OP_FWRITE) memset(buf, s->a[3], blen);
        ssize_t got = 0;
        WINDOW_BEGIN();
        if (s->op == OP_FWRITE) full_pwrite(i, fd, buf, blen, (off_t)(fp * PAGE));
        else got = pread(fd, buf, blen, (off_t)(fp * PAGE));
        WINDOW_END();
        close(fd);
        long long data = -1;
        if (s->op == OP_FREAD) {
            if (got < 0) die(i, "pread: %s", strerror(errno));
            data = 0;
            for (ssize_t o = 0; o < got; o += PAGE) data += (unsigned char)buf[o];
        }
        munmap(buf, blen);
        emit_m(i, f1 - f0, -1, 0, data);
        break;
    }
    case OP_FOLIOS: {
        long c[4];
        WINDOW_BEGIN();
        WINDOW_END();
        emit_m(i, f1 - f0, -1, 0, -1);
        file_folios(i, s->a[0], 1, c);
        folios_of = s->a[0];
        break;
    }
    case OP_FORK: {
        int c = s->a[0];
        if (c <= 0 || c >= NP) die(i, "bad child %d", c);
        flush_out();
        pid_t self = getpid();
        pid_t pid = fork();
        if (pid < 0) die(i, "fork: %s", strerror(errno));
        if (pid == 0) {
            /* if the parent dies (killed, SIGPIPE...), do not wait for a token forever */
            prctl(PR_SET_PDEATHSIG, SIGKILL);
            if (getppid() != self) _exit(1);
            me = c;
            rewarm(i);
            set_own_rss();
            emit_m(i, -1, -1, 0, -1);
            measure_regions(i);
            measure_files(i, -1);
            flush_out();
            send_token(s->proc);
            return 1;
        }
        pids[c] = pid;
        wait_token(); /* the child has measured itself */
        rewarm(i);
        set_own_rss();
        emit_m(i, -1, -1, 0, -1);
        measure_regions(i);
        measure_files(i, -1);
        flush_out();
        return 0;
    }
    case OP_EXIT: {
        int c = s->a[0];
        int status;
        WINDOW_BEGIN();
        send_token(c);
        pid_t w;
        while ((w = waitpid(pids[c], &status, 0)) < 0 && errno == EINTR) {}
        WINDOW_END();
        if (w != pids[c]) die(i, "waitpid: %s", strerror(errno));
        if (!WIFEXITED(status) || WEXITSTATUS(status) != 0) die(i, "child %d ended with status %#x", c, status);
        emit_m(i, f1 - f0, -1, 0, -1);
        break;
    }
    case OP_MEASURE:
        WINDOW_BEGIN();
        WINDOW_END();
        emit_m(i, f1 - f0, -1, 0, -1);
        break;
    default:
        die(i, "bad op %d", s->op);
    }
    measure_regions(i);
    measure_files(i, folios_of);
    flush_out();
    return 0;
}

static void run_steps(void) {
    for (int i = 0; i < NS; i++) {
        struct step *s = &S[i];
        if (s->op == OP_EXIT && s->a[0] == me) {
            flush_out();
            wait_token();  /* from the parent, which reaps us */
            _exit(0);
        }
        if (s->proc != me) continue;
        if (i > 0 && S[i - 1].proc != me) wait_token();
        if (do_step(i)) continue; /* a new child: its parent passes the turn on */
        if (i + 1 < NS && S[i + 1].proc != me) send_token(S[i + 1].proc);
    }
    flush_out();
    if (me != 0) _exit(0);
}

/* ------------------------------------------------------------- the input */
static void parse_input(void) {
    size_t len = 0;
    for (;;) {
        if (len + 1 >= sizeof iobuf) die(-1, "input too long");
        ssize_t k = read(0, iobuf + len, sizeof iobuf - 1 - len);
        if (k < 0 && errno == EINTR) continue;
        if (k <= 0) break;
        len += (size_t)k;
    }
    iobuf[len] = 0;
    char *save = NULL;
    int got_header = 0, got_end = 0;
    for (char *line = strtok_r(iobuf, "\n", &save); line; line = strtok_r(NULL, "\n", &save)) {
        char word[32];
        if (sscanf(line, "%31s", word) != 1) continue;
        if (!strcmp(word, "cowsim-probe")) {
            int v = 0;
            if (sscanf(line, "%*s %d", &v) != 1 || v != 1) die(-1, "unsupported input version");
            got_header = 1;
        } else if (!strcmp(word, "procs")) {
            if (sscanf(line, "%*s %d", &NP) != 1 || NP < 1 || NP > MAXP) die(-1, "bad procs line");
        } else if (!strcmp(word, "region")) {
            int r;
            unsigned long addr;
            long pages;
            if (sscanf(line, "%*s %d %lx %ld", &r, &addr, &pages) != 3 || r != NR || r >= MAXR ||
                pages <= 0 || pages > MAXPAGES || addr % (unsigned long)PAGE)
                die(-1, "bad region line: %s", line);
            R[NR].addr = addr;
            R[NR].pages = pages;
            if (addr - (unsigned long)PAGE < scen_lo) scen_lo = addr - (unsigned long)PAGE;
            if (addr + (unsigned long)(pages + 1) * (unsigned long)PAGE > scen_hi)
                scen_hi = addr + (unsigned long)(pages + 1) * (unsigned long)PAGE;
            NR++;
        } else if (!strcmp(word, "step")) {
            int idx, proc, a[6] = {0, 0, 0, 0, -1, 0};
            char op[16];
            if (sscanf(line, "%*s %d %15s %d %d %d %d %d %d %d", &idx, op, &proc, &a[0], &a[1], &a[2], &a[3],
                       &a[4], &a[5]) < 7 ||
                idx != NS + 1 || NS >= MAXS || proc < 0 || proc >= NP)
                die(-1, "bad step line: %s", line);
            int o = -1;
            for (int k = 0; k < NOPS; k++)
                if (!strcmp(op, OP_NAMES[k])) o = k;
            if (o < 0) die(-1, "unknown op %s", op);
            S[NS].op = o;
            S[NS].proc = proc;
            memcpy(S[NS].a, a, sizeof a);
            NS++;
        } else if (!strcmp(word, "end")) {
            got_end = 1;
            break;
        } else {
            die(-1, "unknown input line: %s", line);
        }
    }
    if (!got_header || !got_end) die(-1, "incomplete input (header or end missing)");
}

/* ------------------------------------------------------------------ setup */
static void setup_common(void) {
    PAGE = sysconf(_SC_PAGESIZE);
    /* lead our own process group, so that kill(0, ...) reaches only probe processes */
    setpgid(0, 0);
    signal(SIGPIPE, on_fatal);
    /* pin to the CPU we are on: per-CPU LRU batches are then drained by the
     * fault handler itself, as the kernel's reuse check expects */
    int cpu = sched_getcpu();
    if (cpu >= 0) {
        cpu_set_t set;
        CPU_ZERO(&set);
        CPU_SET(cpu, &set);
        sched_setaffinity(0, sizeof set, &set);
    }
}

static void setup_run(void) {
    stack_t ss = {.ss_sp = altstack, .ss_size = sizeof altstack, .ss_flags = 0};
    if (sigaltstack(&ss, NULL)) die(-1, "sigaltstack: %s", strerror(errno));
    struct sigaction sa;
    memset(&sa, 0, sizeof sa);
    sa.sa_sigaction = on_segv;
    sa.sa_flags = SA_SIGINFO | SA_ONSTACK | SA_NODEFER;
    sigemptyset(&sa.sa_mask);
    sigaction(SIGSEGV, &sa, NULL);
    sigaction(SIGBUS, &sa, NULL);
    scratch_priv = mmap(NULL, SCRATCH_PAGES * (size_t)PAGE, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    scratch_shared = mmap(NULL, SCRATCH_PAGES * (size_t)PAGE, PROT_READ | PROT_WRITE, MAP_SHARED | MAP_ANONYMOUS, -1, 0);
    scratch_none = mmap(NULL, (size_t)PAGE, PROT_NONE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    if (scratch_priv == MAP_FAILED || scratch_shared == MAP_FAILED || scratch_none == MAP_FAILED)
        die(-1, "scratch mmap: %s", strerror(errno));
    madvise(scratch_priv, SCRATCH_PAGES * (size_t)PAGE, MADV_NOHUGEPAGE);
    int mfd = (int)syscall(SYS_memfd_create, "cowsim-probe-bus", 1U /* MFD_CLOEXEC */);
    if (mfd >= 0) {
        scratch_bus = mmap(NULL, (size_t)PAGE, PROT_READ, MAP_SHARED, mfd, 0);
        if (scratch_bus == MAP_FAILED) scratch_bus = NULL;
        close(mfd);
    }
    root_pid = getpid();
    const char *dir = getenv("COWSIM_PROBE_DIR");
    if (dir && *dir) file_dir = dir;
    long most = 1;
    for (int r = 0; r < NR; r++)
        if (R[r].pages > most) most = R[r].pages;
    pfn_before = mmap(NULL, 2 * (size_t)most * sizeof *pfn_before, PROT_READ | PROT_WRITE,
                      MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    if (pfn_before == MAP_FAILED) die(-1, "mmap: %s", strerror(errno));
    pfn_after = pfn_before + most;
    /* the zero page's PFN, and whether PFNs are visible at all (CAP_SYS_ADMIN) */
    char *z = mmap(NULL, (size_t)PAGE, PROT_READ, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    uint64_t pm = 0;
    if (z != MAP_FAILED) {
        (void)*(volatile char *)z;
        if (read_pfns((uintptr_t)z, 1, &pm) == 0 && (pm & PM_PRESENT) && PM_PFN(pm) != 0) {
            zero_pfn = PM_PFN(pm);
            pfn_ok = 1;
        }
        munmap(z, (size_t)PAGE);
    }
    /* with huge regions: the huge zero page's PFNs (a read of a huge region maps
     * it; like the zero page, replacing it is not a copy) */
    int any_huge = 0;
    for (int i = 0; i < NS; i++)
        if (S[i].op == OP_MAP && S[i].a[3]) any_huge = 1;
    if (pfn_ok && any_huge) {
        size_t span = (size_t)PAGE * (size_t)(PAGE / 8);
        char *raw = mmap(NULL, 2 * span, PROT_READ, MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0);
        if (raw != MAP_FAILED) {
            char *h = (char *)(((uintptr_t)raw + span - 1) & ~(uintptr_t)(span - 1));
            madvise(h, span, MADV_HUGEPAGE);
            (void)*(volatile char *)h;
            if (read_pfns((uintptr_t)h, 1, &pm) == 0 && (pm & PM_PRESENT) && PM_PFN(pm) != zero_pfn &&
                PM_PFN(pm) % (uint64_t)(PAGE / 8) == 0)
                huge_zero_pfn = PM_PFN(pm);
            munmap(raw, 2 * span);
        }
        out("info huge_zero_pfn_known %d\n", huge_zero_pfn != 0);
    }
    for (int p = 0; p < NP; p++)
        if (pipe2(token[p], O_CLOEXEC)) die(-1, "pipe: %s", strerror(errno));
    out("info pagesize %ld\ninfo pfn_visible %d\ninfo pid %d\n", PAGE, pfn_ok, (int)getpid());
    long missing = rewarm(0);
    set_own_rss();
    out("info unmapped_own_pages %ld\ninfo file_dir %s\n", missing, file_dir);
    flush_out();
}

/* ------------------------------------------------------------ calibration */
static char *map_region(size_t len, int noreserve) {
    char *p = mmap(NULL, len, PROT_READ | PROT_WRITE,
                   MAP_PRIVATE | MAP_ANONYMOUS | (noreserve ? MAP_NORESERVE : 0), -1, 0);
    if (p == MAP_FAILED) die(-1, "mmap %zu: %s", len, strerror(errno));
    madvise(p, len, MADV_NOHUGEPAGE);
    return p;
}

/* a region whose start is aligned to span (the reach of one page table) */
static char *map_aligned(size_t len, size_t span) {
    char *raw = map_region(len + span, 1);
    uintptr_t a = ((uintptr_t)raw + span - 1) & ~(uintptr_t)(span - 1);
    if (a > (uintptr_t)raw) munmap(raw, a - (uintptr_t)raw);
    uintptr_t end = (uintptr_t)raw + len + span;
    if (end > a + len) munmap((char *)(a + len), end - (a + len));
    return (char *)a;
}

static void write_pages(char *p, long n, long stride) {
    for (long k = 0; k < n; k++) *(volatile char *)(p + k * stride) = 1;
}

/* Fork latency seen by the parent for several resident sets, interleaved
 * repetition by repetition: all regions exist at once and MADV_DONTFORK hides
 * those not under test.  The child waits until the parent has read the clock,
 * so its exit is not in the time.  Prints "fork <label> <ptes> <tables> <ns>". */
struct forkcfg { const char *label; long n; long stride; char *p; size_t len; long tables; };

static void cal_forks(struct forkcfg *cfg, int ncfg, int reps) {
    size_t span = (size_t)PAGE * (size_t)(PAGE / 8);
    for (int c = 0; c < ncfg; c++) {
        cfg[c].len = (size_t)(cfg[c].n > 0 ? cfg[c].n : 1) * (size_t)cfg[c].stride;
        cfg[c].p = cfg[c].n > 0 ? map_aligned(cfg[c].len, span) : NULL;
        cfg[c].tables = cfg[c].n > 0 ? (long)((cfg[c].len + span - 1) / span) : 0;
    }
    for (int r = 0; r < reps; r++) {
        for (int c = 0; c < ncfg; c++) {
            for (int o = 0; o < ncfg; o++)
                if (cfg[o].p) madvise(cfg[o].p, cfg[o].len, o == c ? MADV_DOFORK : MADV_DONTFORK);
            if (cfg[c].p) write_pages(cfg[c].p, cfg[c].n, cfg[c].stride); /* writable + exclusive again */
            int fds[2];
            if (pipe(fds)) die(-1, "pipe: %s", strerror(errno));
            long long t0 = now_ns();
            pid_t pid = fork();
            if (pid == 0) {
                char ch;
                close(fds[1]);
                (void)!read(fds[0], &ch, 1);
                _exit(0);
            }
            long long t1 = now_ns();
            if (pid < 0) die(-1, "fork: %s", strerror(errno));
            close(fds[0]);
            close(fds[1]);
            waitpid(pid, NULL, 0);
            out("fork %s %ld %ld %lld\n", cfg[c].label, cfg[c].n, cfg[c].tables, t1 - t0);
            flush_out();
        }
    }
    for (int c = 0; c < ncfg; c++)
        if (cfg[c].p) munmap(cfg[c].p, cfg[c].len);
}

/* one timed pass over n fresh pages; kind: 0 read (zero page), 1 write (zero
 * fill), 2 write after fork with the child alive (CoW copy), 3 write after
 * fork with the child gone (CoW reuse).  Prints "fault <label> <n> <ns> <faults>". */
static void cal_fault_pass(const char *label, long n, int kind) {
    size_t len = (size_t)n * (size_t)PAGE;
    char *p = map_region(len, 0);
    int fds[2] = {-1, -1};
    pid_t pid = -1;
    if (kind >= 2) {
        write_pages(p, n, PAGE);
        if (pipe(fds)) die(-1, "pipe: %s", strerror(errno));
        pid = fork();
        if (pid < 0) die(-1, "fork: %s", strerror(errno));
        if (pid == 0) {
            char c;
            close(fds[1]);
            if (kind == 2) (void)!read(fds[0], &c, 1);
            _exit(0);
        }
        close(fds[0]);
        if (kind == 3) waitpid(pid, NULL, 0);
    }
    long long f0 = minflt(), t0 = now_ns();
    if (kind == 0) {
        long s = 0;
        for (long k = 0; k < n; k++) s += *(volatile char *)(p + k * PAGE);
        (void)s;
    } else {
        write_pages(p, n, PAGE);
    }
    long long t1 = now_ns(), f1 = minflt();
    if (kind >= 2) {
        close(fds[1]);
        if (kind == 2) waitpid(pid, NULL, 0);
    }
    munmap(p, len);
    out("fault %s %ld %lld %lld\n", label, n, t1 - t0, f1 - f0);
    flush_out();
}

static void cal_munmap(long n, int reps) {
    size_t len = (size_t)n * (size_t)PAGE;
    long long best = -1;
    for (int r = 0; r < reps; r++) {
        char *p = map_region(len, 0);
        write_pages(p, n, PAGE);
        long long t0 = now_ns();
        munmap(p, len);
        long long t1 = now_ns();
        if (best < 0 || t1 - t0 < best) best = t1 - t0;
    }
    out("munmap %ld %lld\n", n, best);
    flush_out();
}

static void cal_memcpy(long n, int reps) {
    size_t len = (size_t)n * (size_t)PAGE;
    char *src = map_region(len, 0), *dst = map_region(len, 0);
    memset(src, 1, len);
    memset(dst, 2, len);
    long long best = -1;
    for (int r = 0; r < reps; r++) {
        long long t0 = now_ns();
        for (long k = 0; k < n; k++) memcpy(dst + k * PAGE, src + k * PAGE, (size_t)PAGE);
        long long t1 = now_ns();
        __asm__ volatile("" ::"r"(dst) : "memory");
        if (best < 0 || t1 - t0 < best) best = t1 - t0;
    }
    out("memcpy %ld %lld\n", n, best);
    /* a hot 4 KiB copy (both pages in cache) */
    long loops = 20000;
    long long t0 = now_ns();
    for (long k = 0; k < loops; k++) {
        memcpy(dst, src + (k & 1) * PAGE, (size_t)PAGE);
        __asm__ volatile("" ::"r"(dst) : "memory");
    }
    long long t1 = now_ns();
    out("memcpy_hot %ld %lld\n", loops, t1 - t0);
    flush_out();
    munmap(src, len);
    munmap(dst, len);
}

/* mprotect r / rw of one page, present (needs a TLB flush) vs absent */
static void cal_mprotect(int loops) {
    char *p = map_region((size_t)PAGE, 0);
    long long res[2];
    for (int present = 1; present >= 0; present--) {
        if (present) *(volatile char *)p = 1;
        else madvise(p, (size_t)PAGE, MADV_DONTNEED);
        long long best = -1;
        for (int r = 0; r < 5; r++) {
            long long t0 = now_ns();
            for (int k = 0; k < loops; k++) {
                mprotect(p, (size_t)PAGE, PROT_READ);
                mprotect(p, (size_t)PAGE, PROT_READ | PROT_WRITE);
            }
            long long t1 = now_ns();
            if (best < 0 || t1 - t0 < best) best = t1 - t0;
        }
        res[present] = best;
    }
    out("mprotect %d %lld %lld\n", 2 * loops, res[1], res[0]);
    flush_out();
    munmap(p, (size_t)PAGE);
}

static void calibrate(int quick) {
    long mib = 1L << 20;
    long dense1 = (quick ? 8 : 64) * mib / PAGE, dense2 = (quick ? 32 : 256) * mib / PAGE;
    long nfault = (quick ? 8 : 64) * mib / PAGE;
    long sparse = quick ? 256 : 2048;
    int reps = quick ? 3 : 9;
    size_t span = (size_t)PAGE * (size_t)(PAGE / 8);
    out("info pagesize %ld\ninfo quick %d\n", PAGE, quick);
    flush_out();
    /* warm up the allocator (and, in a VM, the host's backing of guest
     * memory) and the code paths */
    for (int k = 0; k < 4; k++) cal_fault_pass("warmup", nfault, k);
    /* the kinds interleaved, repetition by repetition, so that slow phases of
     * the host hit every kind alike (the fit uses paired differences) */
    static const char *const kinds[] = {"zero_page", "zero_fill", "cow_copy", "cow_reuse"};
    for (int r = 0; r < reps; r++)
        for (int k = 0; k < 4; k++) cal_fault_pass(kinds[k], nfault, k);
    struct forkcfg cfg[] = {
        {"empty", 0, PAGE, NULL, 0, 0},
        {"dense1", dense1, PAGE, NULL, 0, 0},
        {"dense2", dense2, PAGE, NULL, 0, 0},
        {"sparse", sparse, (long)span, NULL, 0, 0},
    };
    cal_forks(cfg, 4, reps);
    cal_munmap(nfault, reps);
    cal_memcpy(nfault, reps);
    cal_mprotect(quick ? 2000 : 20000);
    out("done\n");
    flush_out();
}

int main(int argc, char **argv) {
    setup_common();
    if (argc >= 2 && !strcmp(argv[1], "run")) {
        parse_input();
        setup_run();
        run_steps();
        remove_files();
        out("done\n");
        flush_out();
        return 0;
    }
    if (argc >= 2 && !strcmp(argv[1], "calibrate")) {
        calibrate(argc >= 3 && !strcmp(argv[2], "quick"));
        return 0;
    }
    fprintf(stderr, "usage: %s run < scenario | %s calibrate [quick]\n", argv[0], argv[0]);
    return 64;
}
