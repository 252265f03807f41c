/* batch.c -- batched accesses and multi-process trace replay.
 *
 * One C call runs a whole NumPy array of accesses; the loop stays on the
 * TLB fast path (access_one) and only misses take the table walk. */
#include <string.h>
#include "internal.h"

#define PREFETCH 16   /* accesses looked ahead */

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
    uint64_t *hint[PREFETCH];
    while (i < n) {
        /* Look ahead: walk to the level-0 entries of the next accesses that
         * miss the TLB and prefetch them, so their cache misses overlap.
         * Tables are never freed during a batch, so the pointers stay valid. */
        uint64_t k = n - i < PREFETCH ? n - i : PREFETCH;
        for (uint64_t j = 0; j < k; j++) {
            uint64_t a = addrs[i + j];
            hint[j] = NULL;
            if (p->tlb && p->tlb[(a >> m->page_shift) & m->tlb_mask].vpn == a >> m->page_shift)
                continue;
            if (a < m->user_end && (hint[j] = pte_lookup(m, p, a)))
                __builtin_prefetch(hint[j]);
        }
        for (uint64_t j = 0; j < k; j++, i++) {
            if (writes)
                w = writes[i] != 0;
            int r = access_one_hinted(m, p, addrs[i], w, &res->info, hint[j]);
            if (r == CS_HIT && !outcomes) {   /* the hot path */
                res->counts[CS_HIT]++;
                continue;
            }
            if ((st = batch_step(res, outcomes, i, r, stop_on_segv))) {
                if (st == CS_ESEGV)
                    i++;   /* the segfault itself was counted */
                goto out;
            }
        }
    }
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
