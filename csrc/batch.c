/* batch.c -- batched accesses and multi-process trace replay.
 *
 * One C call runs a whole NumPy array of accesses; the loop stays on the
 * TLB fast path (access_one) and only misses take the table walk. */
#include <string.h>
#include "internal.h"

#define DIST 8        /* pipeline distance, in accesses */
#define RING 32       /* > 2 * DIST, a power of two */

/* The level-0 entry of addr, prefetched, or NULL if the TLB has it or no
 * table is there yet. */
static inline uint64_t *lookahead(cs_machine *m, cs_proc *p, uint64_t a)
{
    uint64_t vpn = a >> m->page_shift;
    if ((p->tlb && p->tlb[vpn & m->tlb_mask].vpn == vpn) || a >= m->user_end)
        return NULL;
    uint64_t *pte = pte_lookup(m, p, a);
    if (pte)
        __builtin_prefetch(pte);
    return pte;
}

static void batch_begin(cs_batch_result *res)
{
    memset(res, 0, sizeof *res);
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

cs_status cs_access_batch(cs_machine *m, int32_t pid, const uint64_t *addrs, const uint8_t *writes,
                          int32_t write_all, uint64_t n, uint8_t *outcomes, int32_t stop_on_segv,
                          cs_batch_result *res)
{
    batch_begin(res);
    LOCK(m);
    cs_proc *p;
    cs_status st = proc_get(m, pid, &p);
    uint64_t i = 0;
    if (st)
        goto out;
    bool w = write_all != 0;
    /* A software pipeline over the accesses that miss the TLB: 2*D ahead,
     * walk the upper levels and prefetch the level-0 entry; D ahead, read
     * that entry and prefetch the frame's metadata.  Tables are never freed
     * during a batch, so the looked-up pointers stay valid; a NULL one (no
     * table yet) just means the access walks again. */
    uint64_t *hint[RING] = {0};
    for (uint64_t j = 0; j < 2 * DIST && j < n; j++)
        hint[j & (RING - 1)] = lookahead(m, p, addrs[j]);
    uint64_t fast_hits = 0;   /* TLB hits counted here, added to the stats once */
    for (; i < n; i++) {
        if (writes)
            w = writes[i] != 0;
        if (i + 2 * DIST < n)
            hint[(i + 2 * DIST) & (RING - 1)] = lookahead(m, p, addrs[i + 2 * DIST]);
        if (i + DIST < n) {
            uint64_t *h = hint[(i + DIST) & (RING - 1)];
            if (h && (*h & PTE_PRESENT))
                __builtin_prefetch(&m->fm[PTE_FRAME(*h)]);
        }
        if (p->tlb) {
            uint64_t vpn = addrs[i] >> m->page_shift;
            tlb_entry *t = &p->tlb[vpn & m->tlb_mask];
            if (t->vpn == vpn && (!w || (*t->pte & PTE_WRITE))) {
                if (w)
                    *t->pte |= PTE_DIRTY;
                fast_hits++;
                if (outcomes)
                    outcomes[i] = CS_HIT;
                continue;
            }
        }
        int r = access_one_hinted(m, p, addrs[i], w, &res->info, hint[i & (RING - 1)]);
        if (r == CS_HIT && !outcomes) {   /* the hot path */
            res->counts[CS_HIT]++;
            continue;
        }
        if ((st = batch_step(res, outcomes, i, r, stop_on_segv))) {
            if (st == CS_ESEGV)
                i++;   /* the segfault itself was counted */
            break;
        }
    }
    res->counts[CS_HIT] += fast_hits;
    p->st.accesses += fast_hits;
    p->st.tlb_hits += fast_hits;
out:
    res->done = i;
    UNLOCK(m);
    return st;
}

cs_status cs_replay(cs_machine *m, const int32_t *pids, const uint64_t *addrs, const uint8_t *writes,
                    int32_t write_all, uint64_t n, uint8_t *outcomes, int32_t stop_on_segv,
                    cs_batch_result *res)
{
    batch_begin(res);
    LOCK(m);
    cs_status st = CS_OK;
    cs_proc *p = NULL;
    int32_t cur = 0;
    uint64_t i = 0;
    bool w = write_all != 0;
    for (; i < n; i++) {
        if (pids[i] != cur || !p) {
            if ((st = proc_get(m, pids[i], &p))) {
                res->stop_index = i;
                break;
            }
            cur = pids[i];
        }
        if (writes)
            w = writes[i] != 0;
        int r = access_one(m, p, addrs[i], w, &res->info);
        if ((st = batch_step(res, outcomes, i, r, stop_on_segv))) {
            if (st == CS_ESEGV)
                i++;
            break;
        }
    }
    res->done = i;
    UNLOCK(m);
    return st;
}
