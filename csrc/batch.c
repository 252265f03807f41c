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
 * Copies specialised at compile time keep the hot loops short: one per
 * reads only / writes only / per-access writes (replay included), TLB on /
 * off, 4 KiB pages or any (the table `variants`); the general one, which
 * asks at run time, serves outcome arrays.
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
    if (outcome_is_signal(r) && stop_on_segv) {
        res->stop_index = i;
        return r == CS_SIGBUS ? CS_ESIGBUS : CS_ESEGV;
    }
    return CS_OK;
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

/* Stage 1 before the first block: the first process (NULL in a replay, whose
 * lanes start empty: pid 0 is never a live pid). */
static inline void pipeline_init(pipeline *P, cs_machine *m, cs_proc *p, int32_t pid)
{
    P->ap = p;
    P->apid = pid;
    P->alast = TLB_INVALID;
    P->apte = NULL;
    P->aw = &P->lanes[0].w;
    if (p) {
        walker_init(P->aw, m, p);
    } else {
        for (unsigned k = 0; k < NLANES; k++) {
            P->lanes[k].pid = 0;
            P->lanes[k].p = NULL;
        }
    }
}

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

/* One batch (pids NULL, the process given) or replay, as the caller asked. */
typedef struct {
    const int32_t *pids;      /* a replay: the pid of each access */
    const uint64_t *addrs;
    const uint8_t *writes;    /* per access; NULL: write_all for each */
    bool write_all;
    uint64_t n;
    uint8_t *outcomes;        /* NULL: not wanted */
    int32_t stop_on_segv;
    cs_batch_result *res;
} batch_req;

/* What a specialised copy of the loop fixes at compile time. */
typedef struct {
    int mode;                 /* MODE_*; a replay runs MODE_MIXED copies only (the
                               * same-page shortcut does not follow a switch) */
    int tlb;                  /* TLB_* */
    unsigned kshift;          /* the page shift; 0: ask the machine */
    bool outcomes;            /* false: the request has no outcome array */
} variant;

/* The running side of a replay: the state of a process not running now. */
typedef struct {
    int32_t pid;
    cs_proc *p;               /* NULL: slot unused */
    cs_vma *vma;
    uint64_t vs, vlen, rlen, wlen;
    uint64_t ran, fills, slow;   /* see lane_flush */
} run_lane;

/* The loop's state: the running process (it changes in a replay; NULL until
 * a replay's first access picks one, whatever its pid -- 0 included), its
 * TLB, its region last found [vs, vs + vlen) and its counters since access
 * `since`. */
typedef struct {
    cs_proc *p;
    int32_t pid;
    run_lane *lane;           /* a replay: p's lane */
    tlb_entry *tlb;           /* NULL: TLB off */
    cs_vma *vma;
    uint64_t vs, vlen;
    uint64_t rlen, wlen;      /* vlen if the region allows reads (writes), else 0 */
    uint64_t since, fills, slow;
} run_state;

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

/* flush_counts for the process of lane l. */
static inline void lane_flush(const run_lane *l, cs_batch_result *res, const int tlbmode)
{
    flush_counts(l->p, tlbmode != TLB_OFF && l->p->tlb, l->ran, l->fills, l->slow, res);
}

/* The running process's state into its lane, at access i. */
static inline void lane_save(run_lane *l, const run_state *s, uint64_t i)
{
    l->vma = s->vma;
    l->vs = s->vs;
    l->vlen = s->vlen;
    l->rlen = s->rlen;
    l->wlen = s->wlen;
    l->ran += i - s->since;
    l->fills = s->fills;
    l->slow = s->slow;
}

/* Lane l's process runs from access i on. */
static inline void lane_load(run_state *s, run_lane *l, uint64_t i, const int tlbmode)
{
    s->p = l->p;
    s->pid = l->pid;
    s->lane = l;
    s->tlb = tlbmode != TLB_OFF ? l->p->tlb : NULL;
    s->vma = l->vma;
    s->vs = l->vs;
    s->vlen = l->vlen;
    s->rlen = l->rlen;
    s->wlen = l->wlen;
    s->since = i;
    s->fills = l->fills;
    s->slow = l->slow;
}

/* A replay switches to process `pid` at access i (or picks its first one).
 * A lane another process held flushes that one's counters first.  A pid with
 * no live process stops the replay (s->p NULL). */
static inline __attribute__((always_inline)) cs_status
replay_switch(cs_machine *m, run_state *s, run_lane *R, int32_t pid, uint64_t i, cs_batch_result *res,
              const int tlbmode)
{
    if (s->p)
        lane_save(s->lane, s, i);
    run_lane *l = &R[(uint32_t)pid & (NLANES - 1)];
    if (!l->p || l->pid != pid) {
        if (l->p)
            lane_flush(l, res, tlbmode);
        l->p = NULL;
        cs_proc *p;
        cs_status st = proc_get(m, pid, &p);
        if (st) {
            s->p = NULL;
            return st;
        }
        *l = (run_lane){.pid = pid, .p = p};
    }
    lane_load(s, l, i, tlbmode);
    return CS_OK;
}

/* The batch's counters into the processes' stats and the result, at its end
 * (access i). */
static inline void run_flush(run_state *s, run_lane *R, bool replay, uint64_t i, cs_batch_result *res,
                             const int tlbmode)
{
    if (!replay) {
        flush_counts(s->p, s->tlb, i - s->since, s->fills, s->slow, res);
        return;
    }
    if (s->p)
        lane_save(s->lane, s, i);
    for (unsigned k = 0; k < NLANES; k++)
        if (R[k].p)
            lane_flush(&R[k], res, tlbmode);
}

/* The region of a, if a lies outside the region last found (else, or when no
 * region holds a, that one stays). */
static inline void region_at(run_state *s, uint64_t a)
{
    if (a - s->vs >= s->vlen) {
        cs_vma *v = vma_find(s->p, a);
        if (v) {
            s->vma = v;
            s->vs = v->start;
            s->vlen = v->end - v->start;
            s->rlen = v->prot != CS_PROT_NONE ? s->vlen : 0;   /* check_access's rule */
            s->wlen = v->prot & CS_PROT_WRITE ? s->vlen : 0;
        }
    }
}

/* A TLB miss (or no TLB) in a region that allows the access: a present
 * entry with the permission is a hit, which fills the TLB (and sets the
 * dirty bit of a write) as the handler would. */
static inline __attribute__((always_inline)) bool
miss_hit(run_state *s, uint64_t *pte, bool w, uint64_t vpn, uint64_t tmask, const int tlbmode)
{
    uint64_t e = *pte;
    if (!(e & PTE_PRESENT) || (w && !(e & PTE_WRITE)))
        return false;
    if (w)
        *pte = e | PTE_DIRTY;
    if (tlbmode == TLB_ON || (tlbmode == TLB_ASK && s->tlb)) {
        s->tlb[vpn & tmask].vpn = vpn;
        s->tlb[vpn & tmask].pte = pte;
    }
    s->fills++;
    return true;
}

/* A fault or a segfault at access i: the handler, with the counters it
 * expects (the permission check done, when the remembered region allows).
 * Returns its outcome, or -1 when out of frames; a hit or a fault (which
 * filled the TLB) is counted here, a segfault by batch_step. */
static inline __attribute__((always_inline)) int
run_handler(cs_machine *m, run_state *s, uint64_t a, bool w, bool allowed, uint64_t *pte, uint64_t i,
            uint8_t *outcomes, cs_batch_result *res, const int mode)
{
    cs_proc *p = s->p;
    p->st.accesses++;
    if (s->tlb)
        p->st.tlb_misses++;
    int r = allowed ? access_fault(m, p, s->vma, a, w, &res->info, pte) : access_slow(m, p, a, w, &res->info, pte);
    if (r > CS_HIT && !outcome_is_signal(r)) {
        s->slow++;
        if (mode != MODE_READ)
            prefetch_free_list(m);
        res->counts[r]++;
        if (outcomes)
            outcomes[i] = (uint8_t)r;
    } else if (r == CS_HIT) {
        s->slow++;
        res->counts[CS_HIT]++;
        if (outcomes)
            outcomes[i] = CS_HIT;
    } else if (r >= 0) {
        s->slow++;   /* a segfault or a SIGBUS */
    }
    return r;
}

/* The batch loop, a pipeline of blocks: walk block b + 2, prefetch the frames
 * of block b + 1, run block b.  v is a constant in each copy (see VARIANT);
 * p is the process of a one-process batch, NULL in a replay. */
static inline __attribute__((always_inline)) cs_status
run(cs_machine *m, cs_proc *p, const batch_req *rq, const variant v)
{
    const int mode = v.mode, tlbmode = v.tlb;
    const unsigned kshift = v.kshift, shift = kshift ? kshift : m->page_shift;
    const int32_t *pids = mode == MODE_MIXED ? rq->pids : NULL;
    const uint8_t *writes = mode == MODE_MIXED ? rq->writes : NULL;
    uint8_t *outcomes = v.outcomes ? rq->outcomes : NULL;
    const uint64_t *addrs = rq->addrs, n = rq->n, tmask = m->tlb_mask;
    const bool write_all = rq->write_all;
    cs_batch_result *res = rq->res;
    cs_status st = CS_OK;
    run_state s = {.p = p, .pid = pids ? 0 : p->pid, .tlb = p && tlbmode != TLB_OFF ? p->tlb : NULL};
    run_lane R[NLANES];
    for (unsigned k = 0; pids && k < NLANES; k++)
        R[k].p = NULL;
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
    pipeline_init(&P, m, p, s.pid);
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
            if (pids && (!s.p || pids[i] != s.pid)) {   /* a replay switches (or picks its first) process */
                if ((st = replay_switch(m, &s, R, pids[i], i, res, tlbmode))) {
                    res->stop_index = i;
                    goto out;
                }
            }
            if (mode != MODE_MIXED) {   /* the same-page run, in a loop of its own */
                while ((addrs[i] >> shift) == prev)
                    if (++i == end)
                        goto block_done;
            }
            uint64_t a = addrs[i], vpn = a >> shift;
            bool w = mode == MODE_READ ? false : mode == MODE_WRITE ? true
                     : writes ? writes[i] != 0 : write_all;
            if (tlbmode == TLB_ON || (tlbmode == TLB_ASK && s.tlb)) {
                tlb_entry *t = &s.tlb[vpn & tmask];
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
                    pte = pte_lookup(m, s.p, a);
            }
            region_at(&s, a);
            bool allowed = a - s.vs < (w ? s.wlen : s.rlen);
            if (pte && allowed && miss_hit(&s, pte, w, vpn, tmask, tlbmode)) {
                if (outcomes)
                    outcomes[i] = CS_HIT;
                prev = vpn;
                continue;
            }
            int r = run_handler(m, &s, a, w, allowed, pte, i, outcomes, res, mode);
            if (r >= 0 && !outcome_is_signal(r)) {
                prev = vpn;
                continue;
            }
            prev = TLB_INVALID;
            if ((st = batch_step(res, outcomes, i, r, rq->stop_on_segv))) {
                if (st == CS_ESEGV || st == CS_ESIGBUS)
                    i++;   /* the signalled access itself was counted */
                goto out;
            }
        }
    block_done:;
    }
out:
    run_flush(&s, R, pids != NULL, i, res, tlbmode);
    res->done = i;
    return st;
}

/* The specialised copies (the loop with a constant variant), one per read /
 * write / per-access-write batch, TLB on or off, 4 KiB pages or any; and the
 * general one, for outcome arrays, which asks the machine at run time. */
typedef cs_status (*batch_fn)(cs_machine *m, cs_proc *p, const batch_req *rq);
#define VARIANT(name, mode, tlb, kshift, outcomes)                        \
    static cs_status name(cs_machine *m, cs_proc *p, const batch_req *rq) \
    {                                                                     \
        return run(m, p, rq, (variant){mode, tlb, kshift, outcomes});     \
    }
VARIANT(run_read_notlb, MODE_READ, TLB_OFF, 0, false)
VARIANT(run_read_notlb_4k, MODE_READ, TLB_OFF, PAGE_SHIFT_4K, false)
VARIANT(run_read_tlb, MODE_READ, TLB_ON, 0, false)
VARIANT(run_read_tlb_4k, MODE_READ, TLB_ON, PAGE_SHIFT_4K, false)
VARIANT(run_write_notlb, MODE_WRITE, TLB_OFF, 0, false)
VARIANT(run_write_notlb_4k, MODE_WRITE, TLB_OFF, PAGE_SHIFT_4K, false)
VARIANT(run_write_tlb, MODE_WRITE, TLB_ON, 0, false)
VARIANT(run_write_tlb_4k, MODE_WRITE, TLB_ON, PAGE_SHIFT_4K, false)
VARIANT(run_mixed_notlb, MODE_MIXED, TLB_OFF, 0, false)
VARIANT(run_mixed_notlb_4k, MODE_MIXED, TLB_OFF, PAGE_SHIFT_4K, false)
VARIANT(run_mixed_tlb, MODE_MIXED, TLB_ON, 0, false)
VARIANT(run_mixed_tlb_4k, MODE_MIXED, TLB_ON, PAGE_SHIFT_4K, false)
VARIANT(run_general, MODE_MIXED, TLB_ASK, 0, true)
#undef VARIANT

static const batch_fn variants[3][2][2] = {   /* [mode][TLB on][4 KiB pages] */
    [MODE_READ] = {{run_read_notlb, run_read_notlb_4k}, {run_read_tlb, run_read_tlb_4k}},
    [MODE_WRITE] = {{run_write_notlb, run_write_notlb_4k}, {run_write_tlb, run_write_tlb_4k}},
    [MODE_MIXED] = {{run_mixed_notlb, run_mixed_notlb_4k}, {run_mixed_tlb, run_mixed_tlb_4k}},
};

/* The copy for a request: the general one when it wants outcomes. */
static batch_fn pick(const cs_machine *m, const batch_req *rq, int mode, bool tlb)
{
    return rq->outcomes ? run_general : variants[mode][tlb][m->page_shift == PAGE_SHIFT_4K];
}

cs_status cs_access_batch(cs_machine *m, int32_t pid, const uint64_t *addrs, const uint8_t *writes,
                          int32_t write_all, uint64_t n, uint8_t *outcomes, int32_t stop_on_segv,
                          cs_batch_result *res)
{
    memset(res, 0, sizeof *res);
    LOCK(m);
    cs_proc *p;
    cs_status st = proc_get(m, pid, &p);
    if (!st) {
        batch_req rq = {.addrs = addrs, .writes = writes, .write_all = write_all != 0, .n = n,
                        .outcomes = outcomes, .stop_on_segv = stop_on_segv, .res = res};
        int mode = writes ? MODE_MIXED : write_all ? MODE_WRITE : MODE_READ;
        st = pick(m, &rq, mode, p->tlb != NULL)(m, p, &rq);
    }
    UNLOCK(m);
    return st;
}

cs_status cs_replay(cs_machine *m, const int32_t *pids, const uint64_t *addrs, const uint8_t *writes,
                    int32_t write_all, uint64_t n, uint8_t *outcomes, int32_t stop_on_segv,
                    cs_batch_result *res)
{
    memset(res, 0, sizeof *res);
    LOCK(m);
    batch_req rq = {.pids = pids, .addrs = addrs, .writes = writes, .write_all = write_all != 0, .n = n,
                    .outcomes = outcomes, .stop_on_segv = stop_on_segv, .res = res};
    /* Every live process has a TLB when the machine has one. */
    cs_status st = pick(m, &rq, MODE_MIXED, m->cfg.tlb_entries != 0)(m, NULL, &rq);
    UNLOCK(m);
    return st;
}
