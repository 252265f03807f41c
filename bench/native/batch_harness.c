/* batch_harness.c -- the batched-access benchmarks of bench_speed.py in C,
 * without Python, timed with the TSC; and the same address arrays run by
 * trivial loops and a pointer chase, the lower bounds of this machine.
 *
 * Build (from the repository root):
 *   gcc -std=c11 -O2 -Wall -Wextra -Icsrc csrc/[a-z]*.c bench/native/batch_harness.c \
 *       -o /tmp/batch_harness -lpthread
 * Run:
 *   /tmp/batch_harness seq|rand|cow|replay [runs] [pages] [tlb_entries]
 *   /tmp/batch_harness limits
 * seq: 8 reads per page over `pages` resident pages (default 262144: 1 GiB);
 * rand: as many uniform random reads; cow: one write per page in random order
 * right after a CoW fork (KEEP=1: the previous child stays, so new frames come
 * from the never-used end, not the free list); replay: two processes (parent
 * and child by page parity, N accesses, 30% writes; RUNLEN=k: in runs of k).
 * VERBOSE=1: the rate of every run.
 * Valgrind: valgrind --tool=callgrind /tmp/batch_harness seq 1 32768 */
#define _GNU_SOURCE
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <time.h>
#include <x86intrin.h>
#include "cowsim.h"

#define PAGE 4096ULL

static double now(void)
{
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return t.tv_sec + t.tv_nsec * 1e-9;
}

static uint64_t rng = 88172645463325252ULL;
static uint64_t xr(void)
{
    rng ^= rng << 13;
    rng ^= rng >> 7;
    rng ^= rng << 17;
    return rng;
}

static uint64_t env(const char *name, uint64_t dflt)
{
    const char *s = getenv(name);
    return s ? strtoull(s, NULL, 0) : dflt;
}

static void *big(size_t n)
{
    void *p = mmap(NULL, n, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    if (p == MAP_FAILED)
        abort();
    madvise(p, n, MADV_HUGEPAGE);
    memset(p, 0, n);
    return p;
}

typedef struct {
    uint64_t vpn;
    uint64_t *pte;
} toy_tlb;

/* Trivial loops over the bench's address arrays (1 GiB, 8 accesses per page). */
static void limits(void)
{
    const uint64_t pages = 262144, n = pages * 8, base = 0x7f0000000000ULL;
    uint64_t *seq = big(n * 8), *rnd = big(n * 8), *tab = big(pages * 8);
    for (uint64_t i = 0; i < n; i++) {
        seq[i] = base + i * 512;
        rnd[i] = base + xr() % (pages * PAGE);
    }
    for (uint64_t i = 0; i < pages; i++)
        tab[i] = (i << 12) | 1;   /* the level-0 entries of 1 GiB: 2 MiB */
    toy_tlb *tlb = big(64 * sizeof *tlb);
    static const char *names[] = {
        "seq: stream the addresses (shift+add)", "seq: TLB look + level-0 read + fill",
        "rand: one random level-0 entry read", "rand: same, prefetched 32 ahead",
        "rand: TLB look + prefetched entry + fill"};
    uint64_t best[5];
    for (int k = 0; k < 5; k++)
        best[k] = UINT64_MAX;
    volatile uint64_t sink = 0;
    for (int r = 0; r < 7; r++) {
        for (int k = 0; k < 5; k++) {
            for (int e = 0; e < 64; e++)
                tlb[e].vpn = UINT64_MAX;
            uint64_t s = 0, c0 = __rdtsc();
            for (uint64_t i = 0; i < n; i++) {
                const uint64_t *arr = k < 2 ? seq : rnd;
                uint64_t v = arr[i] >> 12;
                if (k == 0) {
                    s += v;
                    continue;
                }
                if (k >= 3 && i + 32 < n)
                    __builtin_prefetch(&tab[(arr[i + 32] >> 12) & (pages - 1)]);
                if (k == 2 || k == 3) {
                    s += tab[v & (pages - 1)];
                    continue;
                }
                toy_tlb *t = &tlb[v & 63];
                if (t->vpn == v) {
                    s++;
                } else {
                    uint64_t *p = &tab[v & (pages - 1)];
                    if (*p & 1) {
                        t->vpn = v;
                        t->pte = p;
                    }
                }
            }
            uint64_t c = __rdtsc() - c0;
            sink += s;
            if (c < best[k])
                best[k] = c;
        }
    }
    for (int k = 0; k < 5; k++)
        printf("%-42s %5.2f TSC cycles/access\n", names[k], (double)best[k] / n);
    /* Latency of one random cache line, by working-set size. */
    static const size_t sizes[] = {256 << 10, 1 << 20, 2 << 20, 4 << 20, 16 << 20, 256 << 20};
    for (unsigned s = 0; s < sizeof sizes / sizeof *sizes; s++) {
        size_t lines = sizes[s] / 64;
        uint64_t *a = big(sizes[s]);
        uint32_t *perm = malloc(lines * sizeof *perm);
        for (size_t i = 0; i < lines; i++)
            perm[i] = (uint32_t)i;
        for (size_t i = lines - 1; i > 0; i--) {
            size_t j = xr() % (i + 1);
            uint32_t t = perm[i];
            perm[i] = perm[j];
            perm[j] = t;
        }
        for (size_t i = 0; i < lines; i++)
            a[perm[i] * 8] = perm[(i + 1) % lines] * 8;
        uint64_t p = 0, steps = 2000000, c0 = __rdtsc();
        for (uint64_t k = 0; k < steps; k++)
            p = a[p];
        printf("pointer chase over %6zu KiB: %6.1f TSC cycles per step\n", sizes[s] >> 10,
               (double)(__rdtsc() - c0) / steps);
        sink += p;
        munmap(a, sizes[s]);
        free(perm);
    }
    /* The data-mode CoW bound: 4 KiB copies alone, from pages in random order
     * (the writes' order) to fresh frames in order (the free list's), 1 GiB. */
    uint64_t npg = 262144;
    unsigned char *src = big(npg * PAGE), *dst = big(npg * PAGE);
    uint32_t *order = malloc(npg * sizeof *order);
    for (uint64_t i = 0; i < npg; i++)
        order[i] = (uint32_t)i;
    for (uint64_t i = npg - 1; i > 0; i--) {
        uint64_t j = xr() % (i + 1);
        uint32_t t = order[i];
        order[i] = order[j];
        order[j] = t;
    }
    double bestc = 1e30;
    for (int r = 0; r < 3; r++) {
        double t0 = now();
        for (uint64_t i = 0; i < npg; i++)
            memcpy(dst + i * PAGE, src + (uint64_t)order[i] * PAGE, PAGE);
        double t = now() - t0;
        if (t < bestc)
            bestc = t;
    }
    sink += dst[12345];
    printf("4 KiB copies, random source, 1 GiB:     %6.2f M copies/s\n", npg / bestc / 1e6);
    munmap(src, npg * PAGE);
    munmap(dst, npg * PAGE);
    free(order);
}

int main(int argc, char **argv)
{
    const char *w = argc > 1 ? argv[1] : "seq";
    if (!strcmp(w, "limits")) {
        limits();
        return 0;
    }
    int runs = argc > 2 ? atoi(argv[2]) : 5;
    uint64_t pages = argc > 3 ? strtoull(argv[3], NULL, 0) : 262144;
    uint32_t tlb = argc > 4 ? (uint32_t)atoi(argv[4]) : 64;
    cs_config cfg = {.memory = 16ULL << 30, .page_size = 4096, .va_bits = 48, .store_data = 0,
                     .fault_around_bytes = 65536, .tlb_entries = tlb};
    cs_machine *m;
    int32_t pid, kid = 0;
    uint64_t a;
    cs_batch_result res;
    if (cs_machine_new(&cfg, &m) || cs_spawn(m, &pid) ||
        cs_mmap(m, pid, 0, pages * PAGE, CS_PROT_READ | CS_PROT_WRITE, 0, &a))
        return 1;
    uint64_t *every = malloc(pages * 8);
    for (uint64_t i = 0; i < pages; i++)
        every[i] = a + i * PAGE;
    cs_access_batch(m, pid, every, NULL, 1, pages, NULL, 0, &res);

    if (!strcmp(w, "replay")) {
        uint64_t n = env("N", 400000), runlen = env("RUNLEN", 0);
        cs_fork(m, pid, CS_FORK_COW, &kid);
        int32_t *pids = malloc(n * sizeof *pids);
        uint64_t *ad = malloc(n * 8);
        uint8_t *wr = malloc(n);
        for (uint64_t i = 0; i < n; i++) {
            uint64_t pg = xr() % pages;
            if (runlen)
                pg = (pg & ~1ULL) | ((i / runlen) & 1);
            pids[i] = pg & 1 ? kid : pid;
            ad[i] = a + pg * PAGE;
            wr[i] = xr() % 10 < 3;
        }
        double best = 1e9;
        for (int r = 0; r < runs; r++) {
            double t = now();
            cs_replay(m, pids, ad, wr, 0, n, NULL, 0, &res);
            t = now() - t;
            best = t < best ? t : best;
        }
        printf("replay best %.1f M/s\n", n / best / 1e6);
        return 0;
    }
    uint64_t n = !strcmp(w, "cow") ? pages : pages * 8;
    uint64_t *ad = malloc(n * 8);
    for (uint64_t i = 0; i < n; i++)
        ad[i] = !strcmp(w, "seq") ? a + i * (PAGE / 8) : !strcmp(w, "rand") ? a + xr() % (pages * PAGE) : every[i];
    if (!strcmp(w, "cow"))
        for (uint64_t i = n - 1; i > 0; i--) {
            uint64_t j = xr() % (i + 1), t = ad[i];
            ad[i] = ad[j];
            ad[j] = t;
        }
    double best = 1e9;
    uint64_t bestc = UINT64_MAX;
    for (int r = 0; r < runs; r++) {
        if (!strcmp(w, "cow")) {
            if (kid && !getenv("KEEP"))
                cs_exit(m, kid);
            cs_fork(m, pid, CS_FORK_COW, &kid);
        }
        double t = now();
        uint64_t c0 = __rdtsc();
        cs_access_batch(m, !strcmp(w, "cow") ? kid : pid, ad, NULL, !strcmp(w, "cow"), n, NULL, 0, &res);
        uint64_t c = __rdtsc() - c0;
        t = now() - t;
        best = t < best ? t : best;
        bestc = c < bestc ? c : bestc;
        if (getenv("VERBOSE"))
            printf("  run %d: %.1f M/s\n", r, n / t / 1e6);
    }
    printf("%s best %.1f M/s, %.1f TSC cycles/access\n", w, n / best / 1e6, (double)bestc / n);
    return 0;
}
