/* batch.c -- batched accesses and multi-process trace replay.
 *
 * One C call runs a whole NumPy array of accesses.  The loop is the same
 * access as access_one() -- TLB hit, else access_slow() -- with three
 * shortcuts that change no outcome and no counter:
 *
 *  - the counters of the fast paths live in registers and reach p->st when
 *    the batch ends (or switches process);
 *  - a TLB miss on a present entry with the needed permission in a region
 *    that allows the access is what access_slow() would call a hit: the
 *    loop fills the TLB (and sets the dirty bit of a write) itself, with a
 *    walk whose constants are hoisted and whose last level-0 table is
 *    remembered, and the region of the last such access;
 *  - a software pipeline over the accesses ahead: 2*DIST ahead, walk the
 *    upper levels and prefetch the level-0 entry; DIST ahead, read that
 *    entry and prefetch the frame metadata a CoW fault will need.
 *
 * Everything else -- faults, segfaults, out of frames -- goes through
 * access_slow(), which owns the fault semantics.  Valid because tables are
 * never freed and regions never change during a batch: a walked pointer or a
 * remembered region stays right until the batch returns (a NULL pointer, no
 * table yet, just means the access walks again). */
#include <string.h>
#include "internal.h"

#define DIST 8        /* pipeline distance, in accesses */
#define RING 32       /* > 2 * DIST, a power of two */

enum { MODE_READ, MODE_WRITE, MODE_MIXED };   /* writes: none, all, per access */
enum { TLB_OFF, TLB_ON, TLB_ASK };            /* known at compile time, or not */

/* pte_lookup with the machine's constants in registers and the level-0 table
 * of the last walk remembered (sequential accesses share it). */
typedef struct {
    const unsigned char *tpool;
    const uint64_t *root;
    unsigned shift, bits, l1shift, topshift;
    uint64_t imask;
    uint64_t user_end;
    uint64_t tag;             /* addr >> l1shift of l0, UINT64_MAX when none */
    uint64_t *l0;
} walker;

static inline void walker_init(walker *w, const cs_machine *m, const cs_proc *p)
{
    w->tpool = m->tpool;
    w->root = (const uint64_t *)(m->tpool + (p->root << m->page_shift));
    w->shift = m->page_shift;
    w->bits = m->bits;
    w->l1shift = m->page_shift + m->bits;
    w->topshift = m->page_shift + (m->levels - 1) * m->bits;
    w->imask = m->epl - 1;
    w->user_end = m->user_end;
    w->tag = UINT64_MAX;
    w->l0 = NULL;
}

/* The level-0 entry of a, or NULL when a table on the way is missing. */
static inline uint64_t *walk(walker *w, uint64_t a)
{
    uint64_t tag = a >> w->l1shift;
    if (tag != w->tag) {
        if (a >= w->user_end)
            return NULL;
        const uint64_t *t = w->root;
        for (unsigned s = w->topshift; s >= w->l1shift; s -= w->bits) {
            uint64_t e = t[(a >> s) & w->imask];
            if (!(e & PTE_PRESENT))
                return NULL;
            t = (const uint64_t *)(w->tpool + (PTE_FRAME(e) << w->shift));
        }
        w->tag = tag;
        w->l0 = (uint64_t *)t;
    }
    return &w->l0[(a >> w->shift) & w->imask];
}

/* The process running the accesses, with its fast-path counters. */
typedef struct {
    cs_proc *p;
    tlb_entry *tlb;
    walker w;
    uint64_t vs, vlen;        /* the region last found: [vs, vs + vlen) */
    int32_t vprot;
    uint64_t hits;            /* TLB hits */
    uint64_t fills;           /* TLB misses that were hits (or, TLB off, walks) */
} lane;

static inline void lane_init(lane *L, const cs_machine *m, cs_proc *p)
{
    L->p = p;
    L->tlb = p->tlb;
    walker_init(&L->w, m, p);
    L->vs = L->vlen = 0;
    L->vprot = CS_PROT_NONE;
    L->hits = L->fills = 0;
}

/* Adds the lane's counters to its process and the batch result. */
static inline void lane_flush(lane *L, cs_batch_result *res)
{
    if (!L->p)
        return;
    L->p->st.accesses += L->hits + L->fills;
    L->p->st.tlb_hits += L->hits;
    if (L->tlb)
        L->p->st.tlb_misses += L->fills;
    res->counts[CS_HIT] += L->hits + L->fills;
    L->hits = L->fills = 0;
}

/* Does the region of a allow the access?  Refreshes the remembered region. */
static inline bool region_allows(lane *L, uint64_t a, bool w)
{
    if (a - L->vs >= L->vlen) {
        cs_vma *v = vma_find(L->p, a);
        if (!v)
            return false;
        L->vs = v->start;
        L->vlen = v->end - v->start;
        L->vprot = v->prot;
    }
    return w ? (L->vprot & CS_PROT_WRITE) != 0 : L->vprot != CS_PROT_NONE;
}

/* A frame allocation reads the free-list head's metadata; after each fault,
 * read the (already prefetched) head's link and prefetch the next one, so a
 * run of faults finds each frame's metadata in cache.  A hint only. */
static inline void prefetch_free_list(const cs_machine *m)
{
    uint64_t h = m->free_head;
    if (h) {
        uint64_t next = m->fm[h].next_free;
        if (next < m->nframes)
            __builtin_prefetch(&m->fm[next], 1);
    }
}

/* Records access i's outcome r; returns the status that stops the batch. */
static inline cs_status batch_step(cs_batch_result *res, uint8_t *outcomes, uint64_t i, int r,
                                   int32_t stop_on_segv)
{
    if (r < 0) {
        res->stop_index = i;
        return CS_ENOMEM;
    }
    res->counts[r]++;
    if (outcomes)
        outcomes[i] = (uint8_t)r;
    if (r == CS_SEGFAULT && stop_on_segv) {
        res->stop_index = i;
        return CS_ESEGV;
    }
    return CS_OK;
}

/* The batch loop.  mode and tlbmode are constants in the specialised copies;
 * pids is NULL for a one-process batch (then p is its process). */
static inline __attribute__((always_inline)) cs_status
run(cs_machine *m, cs_proc *p, const int32_t *pids, const uint64_t *addrs, const uint8_t *writes,
    bool write_all, uint64_t n, uint8_t *outcomes, int32_t stop_on_segv, cs_batch_result *res,
    uint64_t *done, const int mode, const int tlbmode)
{
    const unsigned shift = m->page_shift;
    const uint64_t tmask = m->tlb_mask;
    cs_status st = CS_OK;
    lane L = {0};
    int32_t cur = 0;
    if (!pids)
        lane_init(&L, m, p);

    /* The look-ahead: its own process (replay), walker and last page. */
    cs_proc *ap = p;
    int32_t apid = 0;
    walker aw = {0};
    if (!pids)
        walker_init(&aw, m, p);
    uint64_t alast = TLB_INVALID;
    uint64_t *apte = NULL;
    uint64_t *hint[RING];

    uint64_t i = 0;
    for (uint64_t j = 0; j < n + 2 * DIST; j++) {
        if (j < n) {   /* look ahead at access j */
            if (pids && pids[j] != apid) {
                apid = pids[j];
                if (proc_get(m, apid, &ap))
                    ap = NULL;
                else
                    walker_init(&aw, m, ap);
                alast = TLB_INVALID;
            }
            uint64_t a = addrs[j], vpn = a >> shift;
            if (vpn != alast) {
                alast = vpn;
                tlb_entry *atlb = tlbmode == TLB_OFF || !ap ? NULL : ap->tlb;
                if (!ap || (atlb && atlb[vpn & tmask].vpn == vpn)) {
                    apte = NULL;
                } else {
                    apte = walk(&aw, a);
                    if (apte)
                        __builtin_prefetch(apte);
                }
            }
            hint[j & (RING - 1)] = apte;
        }
        if (mode != MODE_READ && j >= DIST && j - DIST < n) {   /* CoW faults read the frame's metadata */
            uint64_t *h = hint[(j - DIST) & (RING - 1)];
            if (h) {
                uint64_t e = *h;
                if ((e & (PTE_PRESENT | PTE_WRITE)) == PTE_PRESENT)
                    __builtin_prefetch(&m->fm[PTE_FRAME(e)]);
            }
        }
        if (j < 2 * DIST)
            continue;
        i = j - 2 * DIST;   /* run access i */
        if (i >= n)
            break;

        if (pids && (pids[i] != cur || !L.p)) {
            lane_flush(&L, res);
            cs_proc *np;
            if ((st = proc_get(m, pids[i], &np))) {
                res->stop_index = i;
                break;
            }
            lane_init(&L, m, np);
            cur = pids[i];
        }
        uint64_t a = addrs[i], vpn = a >> shift;
        bool w = mode == MODE_READ ? false : mode == MODE_WRITE ? true
                 : writes ? writes[i] != 0 : write_all;
        tlb_entry *tlb = tlbmode == TLB_OFF ? NULL : L.tlb;
        if (tlb) {
            tlb_entry *t = &tlb[vpn & tmask];
            if (t->vpn == vpn) {
                if (!w) {
                    L.hits++;
                    if (outcomes)
                        outcomes[i] = CS_HIT;
                    continue;
                }
                uint64_t e = *t->pte;
                if (e & PTE_WRITE) {
                    *t->pte = e | PTE_DIRTY;
                    L.hits++;
                    if (outcomes)
                        outcomes[i] = CS_HIT;
                    continue;
                }
            }
        }
        /* A TLB miss (or no TLB): a present entry with the permission is a hit. */
        uint64_t *pte = hint[i & (RING - 1)];
        if (!pte)
            pte = walk(&L.w, a);
        if (pte && region_allows(&L, a, w)) {
            uint64_t e = *pte;
            if ((e & PTE_PRESENT) && (!w || (e & PTE_WRITE))) {
                if (w)
                    *pte = e | PTE_DIRTY;
                if (tlb) {
                    tlb[vpn & tmask].vpn = vpn;
                    tlb[vpn & tmask].pte = pte;
                }
                L.fills++;
                if (outcomes)
                    outcomes[i] = CS_HIT;
                continue;
            }
        }
        /* A fault or a segfault: the handler, with the counters it expects. */
        L.p->st.accesses++;
        if (tlb)
            L.p->st.tlb_misses++;
        int r = access_slow(m, L.p, a, w, &res->info, pte);
        if (mode != MODE_READ && r > CS_HIT && r < CS_SEGFAULT)
            prefetch_free_list(m);
        if (r == CS_HIT && !outcomes) {
            res->counts[CS_HIT]++;
            continue;
        }
        if ((st = batch_step(res, outcomes, i, r, stop_on_segv))) {
            if (st == CS_ESEGV)
                i++;   /* the segfault itself was counted */
            break;
        }
    }
    if (!st)
        i = n;
    lane_flush(&L, res);
    *done = i;
    return st;
}

/* The specialised copies: reads only or writes only, TLB on or off; the
 * general one (per-access writes, outcomes) asks at run time. */
static cs_status run_read_tlb(cs_machine *m, cs_proc *p, const uint64_t *addrs, uint64_t n,
                              int32_t stop, cs_batch_result *res, uint64_t *done)
{
    return run(m, p, NULL, addrs, NULL, false, n, NULL, stop, res, done, MODE_READ, TLB_ON);
}

static cs_status run_read_notlb(cs_machine *m, cs_proc *p, const uint64_t *addrs, uint64_t n,
                                int32_t stop, cs_batch_result *res, uint64_t *done)
{
    return run(m, p, NULL, addrs, NULL, false, n, NULL, stop, res, done, MODE_READ, TLB_OFF);
}

static cs_status run_write_tlb(cs_machine *m, cs_proc *p, const uint64_t *addrs, uint64_t n,
                               int32_t stop, cs_batch_result *res, uint64_t *done)
{
    return run(m, p, NULL, addrs, NULL, true, n, NULL, stop, res, done, MODE_WRITE, TLB_ON);
}

static cs_status run_write_notlb(cs_machine *m, cs_proc *p, const uint64_t *addrs, uint64_t n,
                                 int32_t stop, cs_batch_result *res, uint64_t *done)
{
    return run(m, p, NULL, addrs, NULL, true, n, NULL, stop, res, done, MODE_WRITE, TLB_OFF);
}

static cs_status run_general(cs_machine *m, cs_proc *p, const int32_t *pids, const uint64_t *addrs,
                             const uint8_t *writes, bool write_all, uint64_t n, uint8_t *outcomes,
                             int32_t stop, cs_batch_result *res, uint64_t *done)
{
    return run(m, p, pids, addrs, writes, write_all, n, outcomes, stop, res, done, MODE_MIXED, TLB_ASK);
}

cs_status cs_access_batch(cs_machine *m, int32_t pid, const uint64_t *addrs, const uint8_t *writes,
                          int32_t write_all, uint64_t n, uint8_t *outcomes, int32_t stop_on_segv,
                          cs_batch_result *res)
{
    memset(res, 0, sizeof *res);
    LOCK(m);
    cs_proc *p;
    cs_status st = proc_get(m, pid, &p);
    uint64_t done = 0;
    if (!st) {
        if (writes || outcomes)
            st = run_general(m, p, NULL, addrs, writes, write_all != 0, n, outcomes, stop_on_segv, res, &done);
        else if (write_all)
            st = (p->tlb ? run_write_tlb : run_write_notlb)(m, p, addrs, n, stop_on_segv, res, &done);
        else
            st = (p->tlb ? run_read_tlb : run_read_notlb)(m, p, addrs, n, stop_on_segv, res, &done);
    }
    res->done = done;
    UNLOCK(m);
    return st;
}

cs_status cs_replay(cs_machine *m, const int32_t *pids, const uint64_t *addrs, const uint8_t *writes,
                    int32_t write_all, uint64_t n, uint8_t *outcomes, int32_t stop_on_segv,
                    cs_batch_result *res)
{
    memset(res, 0, sizeof *res);
    LOCK(m);
    uint64_t done = 0;
    cs_status st = run_general(m, NULL, pids, addrs, writes, write_all != 0, n, outcomes, stop_on_segv,
                               res, &done);
    res->done = done;
    UNLOCK(m);
    return st;
}
