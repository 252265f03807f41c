/* batch.c -- batched accesses and multi-process trace replay.
 *
 * One C call runs a whole NumPy array of accesses.  The loop is the same
 * access as access_one() -- TLB hit, else access_slow() -- with shortcuts
 * that change no outcome and no counter:
 *
 *  - the counters of the fast paths live in registers and reach p->st when
 *    the batch ends (or switches process); TLB hits are not counted one by
 *    one at all but derived from the other counts;
 *  - in a read-only or write-only batch, an access to the page of the access
 *    before is a TLB hit without looking (that access left the entry there);
 *  - a TLB miss on a present entry with the needed permission in a region
 *    that allows the access is what access_slow() would call a hit: the
 *    loop fills the TLB (and sets the dirty bit of a write) itself, and
 *    remembers the region of the last such access;
 *  - a software pipeline over blocks of BLK accesses: walk block b + 2 (the
 *    level-0 and level-1 tables of the last walk remembered) and prefetch
 *    its level-0 entries; read the entries of block b + 1 and prefetch the
 *    frame metadata a CoW fault will need; run block b.
 *
 * Copies specialised at compile time (reads only / writes only, TLB on /
 * off, 4 KiB pages) keep the hot loops short; the general one serves
 * per-access writes, outcome arrays and replay.
 *
 * Everything else -- faults, segfaults, out of frames -- goes through
 * access_slow(), which owns the fault semantics.  Valid because regions never
 * change during a batch and, until an odf fork has happened, tables are
 * never freed in one: a walked pointer or a remembered region stays right
 * until the batch returns (a NULL pointer, no table yet, just means the
 * access walks again).  A huge level-1 entry (thp.c) stops the walk: a TLB
 * miss under it goes to the handler (a split in a fault turns a huge entry
 * into a table, never the reverse).  After an odf fork, TLB misses all go to
 * the handler.
 * A hit is counted as before: a TLB hit when the TLB had the page. */
#include <string.h>
#include "internal.h"

#define BLK 16        /* accesses per pipeline block */
#define RING (4 * BLK)   /* hints of three blocks in flight; a power of two */

enum { MODE_READ, MODE_WRITE, MODE_MIXED };   /* writes: none, all, per access */
enum { TLB_OFF, TLB_ON, TLB_ASK };            /* known at compile time, or not */

/* The look-ahead's walk: pte_lookup with the level-0 and level-1 tables of
 * the previous walk remembered (neighbouring accesses share them; a random
 * access over a few GiB still shares the level-1 table). */
typedef struct {
    const unsigned char *tpool;
    const uint64_t *root;
    unsigned shift, bits, l1shift, l2shift, topshift;
    uint64_t imask, user_end;
    uint64_t tag0, tag1;      /* a >> l1shift of l0, a >> l2shift of l1; UINT64_MAX: none */
    const uint64_t *l0, *l1;
} walker;

static inline void walker_init(walker *w, const cs_machine *m, const cs_proc *p)
{
    w->tpool = m->tpool;
    w->root = (const uint64_t *)(m->tpool + (p->root << m->page_shift));
    w->shift = m->page_shift;
    w->bits = m->bits;
    w->l1shift = m->page_shift + m->bits;
    w->l2shift = m->page_shift + 2 * m->bits;
    w->topshift = m->page_shift + (m->levels - 1) * m->bits;
    w->imask = m->epl - 1;
    w->user_end = m->user_end;
    w->tag0 = w->tag1 = UINT64_MAX;
    w->l0 = w->l1 = NULL;
}

static inline const uint64_t *table_below(const walker *w, uint64_t e)
{
    return (const uint64_t *)(w->tpool + (PTE_FRAME(e) << w->shift));
}

/* The level-0 entry of a, or NULL when a table on the way is missing.
 * kshift: the page shift when known at compile time (then so are the other
 * shifts and the index mask), else 0. */
static inline __attribute__((always_inline)) uint64_t *walk(walker *w, uint64_t a, const unsigned kshift)
{
    const unsigned shift = kshift ? kshift : w->shift;
    const unsigned l1shift = kshift ? 2 * kshift - 3 : w->l1shift;
    const unsigned l2shift = kshift ? 3 * kshift - 6 : w->l2shift;
    const uint64_t imask = kshift ? ((uint64_t)1 << (kshift - 3)) - 1 : w->imask;
    uint64_t tag0 = a >> l1shift;
    if (tag0 != w->tag0) {
        uint64_t tag1 = a >> l2shift;
        const uint64_t *t = w->l1;
        if (tag1 != w->tag1) {   /* from the root down to level 1 */
            if (a >= w->user_end)   /* (user_end is a power of two above l2shift) */
                return NULL;
            t = w->root;
            for (unsigned s = w->topshift; s >= l2shift; s -= w->bits) {
                uint64_t e = t[(a >> s) & imask];
                if (!(e & PTE_PRESENT))
                    return NULL;
                t = table_below(w, e);
            }
            w->tag1 = tag1;
            w->l1 = t;
        }
        uint64_t e = t[tag0 & imask];
        if ((e & (PTE_PRESENT | PMD_HUGE)) != PTE_PRESENT)   /* none, or a huge mapping (thp.c) */
            return NULL;
        w->tag0 = tag0;
        w->l0 = (const uint64_t *)(w->tpool + (PTE_FRAME(e) << shift));
    }
    return (uint64_t *)&w->l0[(a >> shift) & imask];
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

/* Adds a process's fast-path counters to its stats and to the batch result.
 * Of its `ran` accesses, `slow` went through access_slow (which counted
 * them), the others were hits: `fills` after a TLB miss, the rest TLB hits
 * (not counted one by one: no store in the hit loop).  TLB off, a hit is
 * just an access. */
static inline void flush_counts(cs_proc *p, bool tlb, uint64_t ran, uint64_t fills, uint64_t slow,
                                cs_batch_result *res)
{
    uint64_t fast = ran - slow;
    p->st.accesses += fast;
    res->counts[CS_HIT] += fast;
    if (tlb) {
        p->st.tlb_hits += fast - fills;
        p->st.tlb_misses += fills;
    }
}

/* A replay keeps the state of the last processes it saw, by pid. */
#define NLANES 8      /* a power of two */

/* The pipeline's first stage: the process, walker and last page of the
 * accesses looked at, and the level-0 entry found for each (NULL: a table
 * is missing, or no such live process); in a replay, a walker per process. */
typedef struct {
    int32_t pid;
    cs_proc *p;               /* NULL: no live process with that pid */
    walker w;
} walk_lane;

typedef struct {
    cs_proc *ap;
    int32_t apid;
    walker *aw;
    uint64_t alast;
    uint64_t *apte;
    uint64_t *hint[RING];
    walk_lane lanes[NLANES];
} pipeline;

/* Stage 1, accesses [from, to): walk and prefetch the level-0 entries.  (No
 * TLB look: with the tables of the last walk remembered, a walk to a page
 * the TLB holds costs about what the look would.) */
static inline __attribute__((always_inline)) void
stage_walk(pipeline *P, cs_machine *m, const int32_t *pids, const uint64_t *addrs, uint64_t from,
           uint64_t to, const unsigned kshift)
{
    const unsigned shift = kshift ? kshift : m->page_shift;
    cs_proc *ap = P->ap;
    walker *aw = P->aw;
    uint64_t alast = P->alast;
    uint64_t *apte = P->apte;
    for (uint64_t j = from; j < to; j++) {
        if (pids && pids[j] != P->apid) {
            P->apid = pids[j];
            walk_lane *l = &P->lanes[(uint32_t)P->apid & (NLANES - 1)];
            if (l->pid != P->apid) {
                l->pid = P->apid;
                if (proc_get(m, l->pid, &l->p))
                    l->p = NULL;
                else
                    walker_init(&l->w, m, l->p);
            }
            ap = l->p;
            aw = &l->w;
            alast = TLB_INVALID;
        }
        uint64_t a = addrs[j], vpn = a >> shift;
        if (vpn != alast) {
            alast = vpn;
            apte = pids && !ap ? NULL : walk(aw, a, kshift);
            if (apte)
                __builtin_prefetch(apte);
        }
        P->hint[j & (RING - 1)] = apte;
    }
    P->ap = ap;
    P->aw = aw;
    P->alast = alast;
    P->apte = apte;
}

/* The running side of a replay: per process, its region last found and its
 * counters (see flush_counts). */
typedef struct {
    int32_t pid;
    cs_proc *p;               /* NULL: slot unused */
    cs_vma *vma;
    uint64_t vs, vlen, rlen, wlen;
    uint64_t ran, fills, slow;
} run_lane;

/* Stage 2 (batches with writes), accesses [from, to): a CoW fault reads the
 * metadata of the entry's frame; prefetch it. */
static inline void stage_frames(const pipeline *P, const cs_machine *m, uint64_t from, uint64_t to)
{
    for (uint64_t j = from; j < to; j++) {
        const uint64_t *h = P->hint[j & (RING - 1)];
        if (h) {
            uint64_t e = *h;
            if ((e & (PTE_PRESENT | PTE_WRITE)) == PTE_PRESENT)
                __builtin_prefetch(&m->fm[PTE_FRAME(e)]);
        }
    }
}

/* The batch loop, a pipeline of blocks: walk block b + 2, prefetch the frames
 * of block b + 1, run block b.  mode, tlbmode and kshift (the page shift, 0:
 * ask the machine) are constants in the specialised copies; pids is NULL for
 * a one-process batch (then p is its process). */
static inline __attribute__((always_inline)) cs_status
run(cs_machine *m, cs_proc *p, const int32_t *pids, const uint64_t *addrs, const uint8_t *writes,
    bool write_all, uint64_t n, uint8_t *outcomes, int32_t stop_on_segv, cs_batch_result *res,
    uint64_t *done, const int mode, const int tlbmode, const unsigned kshift)
{
    const unsigned shift = kshift ? kshift : m->page_shift;
    const uint64_t tmask = m->tlb_mask;
    cs_status st = CS_OK;

    /* The running process (it changes in a replay; NULL until a replay's
     * first access picks one, whatever its pid -- 0 included), its TLB, its
     * region last found [vs, vs + vlen) and its counters since access `since`. */
    int32_t cur = pids ? 0 : p->pid;
    tlb_entry *tlb = p && tlbmode != TLB_OFF ? p->tlb : NULL;
    cs_vma *vma = NULL;
    uint64_t vs = 0, vlen = 0;
    uint64_t rlen = 0, wlen = 0;   /* vlen if the region allows reads (writes), else 0 */
    uint64_t since = 0, fills = 0, slow = 0;
    /* In a read-only or a write-only batch, an access to the page of the
     * access before, if that one did not segfault, is a hit: the TLB entry
     * that access used or filled is still there (nothing in between can
     * evict it) and so is the entry's permission. */
    uint64_t prev = TLB_INVALID;
    /* Once an odf fork happened (odf.c), a level-1 entry can write-protect the
     * table below it and a fault can take a shared table over, leaving the
     * pointers walked before it stale: TLB misses then go to the handler
     * (the look-ahead only prefetches; a stale pointer still lies in the
     * table pool). */
    const bool fill = !m->odf_used;

    pipeline P;
    P.ap = p;
    P.apid = cur;
    P.alast = TLB_INVALID;
    P.apte = NULL;
    P.aw = &P.lanes[0].w;
    run_lane R[NLANES];
    run_lane *rl = NULL;
    if (p) {
        walker_init(P.aw, m, p);
    } else {
        for (unsigned k = 0; k < NLANES; k++) {
            P.lanes[k].pid = 0;   /* never a live pid */
            P.lanes[k].p = NULL;
            R[k].p = NULL;
        }
    }
    stage_walk(&P, m, pids, addrs, 0, n < 2 * BLK ? n : 2 * BLK, kshift);
    if (mode != MODE_READ)
        stage_frames(&P, m, 0, n < BLK ? n : BLK);

    uint64_t i = 0;
    for (uint64_t b = 0; b < n; b += BLK) {
        uint64_t end = b + BLK < n ? b + BLK : n;
        if (b + 2 * BLK < n)
            stage_walk(&P, m, pids, addrs, b + 2 * BLK, b + 3 * BLK < n ? b + 3 * BLK : n, kshift);
        if (mode != MODE_READ && end < n)
            stage_frames(&P, m, end, end + BLK < n ? end + BLK : n);
        for (i = b; i < end; i++) {
            if (pids && (!p || pids[i] != cur)) {   /* a replay switches (or picks its first) process */
                if (p) {
                    rl->vma = vma;
                    rl->vs = vs;
                    rl->vlen = vlen;
                    rl->rlen = rlen;
                    rl->wlen = wlen;
                    rl->ran += i - since;
                    rl->fills = fills;
                    rl->slow = slow;
                }
                since = i;
                run_lane *nl = &R[(uint32_t)pids[i] & (NLANES - 1)];
                if (!nl->p || nl->pid != pids[i]) {
                    if (nl->p)
                        flush_counts(nl->p, tlbmode != TLB_OFF && nl->p->tlb, nl->ran, nl->fills, nl->slow, res);
                    nl->p = NULL;
                    if ((st = proc_get(m, pids[i], &p))) {
                        p = NULL;
                        res->stop_index = i;
                        goto out;
                    }
                    *nl = (run_lane){.pid = pids[i], .p = p};
                }
                rl = nl;
                p = nl->p;
                cur = pids[i];
                tlb = tlbmode != TLB_OFF ? p->tlb : NULL;
                vma = nl->vma;
                vs = nl->vs;
                vlen = nl->vlen;
                rlen = nl->rlen;
                wlen = nl->wlen;
                fills = nl->fills;
                slow = nl->slow;
            }
            if (mode != MODE_MIXED) {   /* the same-page run, in a loop of its own */
                while ((addrs[i] >> shift) == prev)
                    if (++i == end)
                        goto block_done;
            }
            uint64_t a = addrs[i], vpn = a >> shift;
            bool w = mode == MODE_READ ? false : mode == MODE_WRITE ? true
                     : writes ? writes[i] != 0 : write_all;
            if (tlbmode == TLB_ON || (tlbmode == TLB_ASK && tlb)) {
                tlb_entry *t = &tlb[vpn & tmask];
                if (t->vpn == vpn) {
                    if (!w) {
                        if (outcomes)
                            outcomes[i] = CS_HIT;
                        prev = vpn;
                        continue;
                    }
                    uint64_t e = *t->pte;
                    if (e & PTE_WRITE) {
                        *t->pte = e | PTE_DIRTY;
                        if (outcomes)
                            outcomes[i] = CS_HIT;
                        prev = vpn;
                        continue;
                    }
                }
            }
            /* A TLB miss (or no TLB): a present entry with the permission, in a
             * region that allows the access, is a hit.  Not after an odf fork
             * (see `fill`): the handler decides, and walks itself. */
            uint64_t *pte = NULL;
            if (fill) {
                pte = P.hint[i & (RING - 1)];
                if (!pte)
                    pte = pte_lookup(m, p, a);
            }
            if (a - vs >= vlen) {
                cs_vma *v = vma_find(p, a);
                if (v) {
                    vma = v;
                    vs = v->start;
                    vlen = v->end - v->start;
                    rlen = v->prot != CS_PROT_NONE ? vlen : 0;   /* check_access's rule */
                    wlen = v->prot & CS_PROT_WRITE ? vlen : 0;
                }
            }
            bool allowed = a - vs < (w ? wlen : rlen);
            if (pte && allowed) {
                uint64_t e = *pte;
                if ((e & PTE_PRESENT) && (!w || (e & PTE_WRITE))) {
                    if (w)
                        *pte = e | PTE_DIRTY;
                    if (tlbmode == TLB_ON || (tlbmode == TLB_ASK && tlb)) {
                        tlb[vpn & tmask].vpn = vpn;
                        tlb[vpn & tmask].pte = pte;
                    }
                    fills++;
                    if (outcomes)
                        outcomes[i] = CS_HIT;
                    prev = vpn;
                    continue;
                }
            }
            /* A fault or a segfault: the handler, with the counters it expects
             * (the permission check done, when the remembered region allows). */
            p->st.accesses++;
            if (tlb)
                p->st.tlb_misses++;
            int r = allowed ? access_fault(m, p, vma, a, w, pte) : access_slow(m, p, a, w, &res->info, pte);
            if (r > CS_HIT && r < CS_SEGFAULT) {   /* a fault, which filled the TLB */
                slow++;
                prev = vpn;
                if (mode != MODE_READ)
                    prefetch_free_list(m);
                res->counts[r]++;
                if (outcomes)
                    outcomes[i] = (uint8_t)r;
                continue;
            }
            if (r == CS_HIT) {
                slow++;
                prev = vpn;
                res->counts[CS_HIT]++;
                if (outcomes)
                    outcomes[i] = CS_HIT;
                continue;
            }
            prev = TLB_INVALID;
            if (r >= 0)
                slow++;   /* a segfault */
            if ((st = batch_step(res, outcomes, i, r, stop_on_segv))) {
                if (st == CS_ESEGV)
                    i++;   /* the segfault itself was counted */
                goto out;
            }
        }
    block_done:;
    }
out:
    if (!pids) {
        flush_counts(p, tlb, i - since, fills, slow, res);
    } else {
        if (p) {
            rl->ran += i - since;
            rl->fills = fills;
            rl->slow = slow;
        }
        for (unsigned k = 0; k < NLANES; k++)
            if (R[k].p)
                flush_counts(R[k].p, tlbmode != TLB_OFF && R[k].p->tlb, R[k].ran, R[k].fills, R[k].slow, res);
    }
    *done = i;
    return st;
}

/* The specialised copies: reads only or writes only, TLB on or off, 4 KiB
 * pages or any; the general one (per-access writes, outcomes, replay) asks
 * at run time. */
#define SPECIALISE(name, write_all, mode, tlbmode, kshift)                                            \
    static cs_status name(cs_machine *m, cs_proc *p, const uint64_t *addrs, uint64_t n, int32_t stop, \
                          cs_batch_result *res, uint64_t *done)                                       \
    {                                                                                                 \
        return run(m, p, NULL, addrs, NULL, write_all, n, NULL, stop, res, done, mode, tlbmode,      \
                   kshift);                                                                           \
    }
SPECIALISE(run_read_tlb_4k, false, MODE_READ, TLB_ON, 12)
SPECIALISE(run_read_tlb, false, MODE_READ, TLB_ON, 0)
SPECIALISE(run_read_notlb_4k, false, MODE_READ, TLB_OFF, 12)
SPECIALISE(run_read_notlb, false, MODE_READ, TLB_OFF, 0)
SPECIALISE(run_write_tlb_4k, true, MODE_WRITE, TLB_ON, 12)
SPECIALISE(run_write_tlb, true, MODE_WRITE, TLB_ON, 0)
SPECIALISE(run_write_notlb, true, MODE_WRITE, TLB_OFF, 0)
#undef SPECIALISE

static cs_status run_general(cs_machine *m, cs_proc *p, const int32_t *pids, const uint64_t *addrs,
                             const uint8_t *writes, bool write_all, uint64_t n, uint8_t *outcomes,
                             int32_t stop, cs_batch_result *res, uint64_t *done)
{
    return run(m, p, pids, addrs, writes, write_all, n, outcomes, stop, res, done, MODE_MIXED, TLB_ASK, 0);
}

/* Per-access writes (or replay), no outcome array, TLB on, 4 KiB pages. */
static cs_status run_mixed_tlb_4k(cs_machine *m, cs_proc *p, const int32_t *pids, const uint64_t *addrs,
                                  const uint8_t *writes, bool write_all, uint64_t n, int32_t stop,
                                  cs_batch_result *res, uint64_t *done)
{
    return run(m, p, pids, addrs, writes, write_all, n, NULL, stop, res, done, MODE_MIXED, TLB_ON, 12);
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
        bool k4 = m->page_shift == 12;
        if (writes && !outcomes && k4 && p->tlb)
            st = run_mixed_tlb_4k(m, p, NULL, addrs, writes, write_all != 0, n, stop_on_segv, res, &done);
        else if (writes || outcomes)
            st = run_general(m, p, NULL, addrs, writes, write_all != 0, n, outcomes, stop_on_segv, res, &done);
        else if (write_all)
            st = (!p->tlb ? run_write_notlb : k4 ? run_write_tlb_4k : run_write_tlb)(m, p, addrs, n, stop_on_segv,
                                                                                    res, &done);
        else if (p->tlb)
            st = (k4 ? run_read_tlb_4k : run_read_tlb)(m, p, addrs, n, stop_on_segv, res, &done);
        else
            st = (k4 ? run_read_notlb_4k : run_read_notlb)(m, p, addrs, n, stop_on_segv, res, &done);
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
    /* Every live process has a TLB when the machine has one. */
    cs_status st = !outcomes && m->page_shift == 12 && m->cfg.tlb_entries
                       ? run_mixed_tlb_4k(m, NULL, pids, addrs, writes, write_all != 0, n, stop_on_segv, res, &done)
                       : run_general(m, NULL, pids, addrs, writes, write_all != 0, n, outcomes, stop_on_segv,
                                     res, &done);
    res->done = done;
    UNLOCK(m);
    return st;
}
