/* thp.c -- transparent huge pages: PMD-mapped 2 MiB anonymous pages.
 *
 * A huge mapping is one level-1 entry with PMD_HUGE (mm/huge_memory.c).  Its
 * frame field names the level-0 table deposited for it
 * (pgtable_trans_huge_deposit): a table frame held from the fault on, so
 * that a later split never needs a frame.  While the entry is huge the
 * deposited table's first word holds the first frame of the huge page (0:
 * the huge zero page, which, like the 4 KiB zero page, is no counted frame).
 *
 * Accounting is per subpage: a PMD mapping is one reference and one mapping
 * of each of its 512 frames, and a split turns it into 512 level-0 entries
 * without changing any count. */
#include <string.h>
#include "internal.h"

static void count_split(cs_machine *m, cs_proc *p)
{
    p->st.thp_splits++;
    m->st.thp_splits++;
}

bool thp_span_ok(const cs_machine *m, const cs_vma *v, uint64_t addr)
{
    uint64_t s = addr & ~(hpage_size(m) - 1);
    return (v->flags & CS_VMA_HUGE) && s >= v->start && s + hpage_size(m) <= v->end;
}

/* Large-folio reuse (Linux 6.13+, __wp_can_reuse_large_anon_folio): a
 * subpage f of a huge page may be reused by a write only if every mapping of
 * every subpage is the writer's own, and more than one subpage is mapped (a
 * last mapped subpage is copied, freeing the folio).  The writer can map subpage k only at
 * index k of the level-0 table over the page's 2 MiB span (`table`, where f
 * is at idx): addresses never move. */
bool folio_reusable(cs_machine *m, const uint64_t *table, uint64_t idx, uint64_t f)
{
    uint64_t b = f & ~(uint64_t)(HPAGE_NR - 1);
    if (idx != f - b)
        return false;
    uint64_t maps = 0, own = 0;
    for (uint64_t k = 0; k < HPAGE_NR; k++) {
        const frame_meta *fm = &m->fm[b + k];
        if (fm->ref && (fm->flags & CS_FRAME_HUGE))
            maps += fm->mapc;
        if ((table[k] & PTE_PRESENT) && PTE_FRAME(table[k]) == b + k)
            own++;
    }
    /* "Let's just free up a large folio if only a single page is mapped." */
    return maps == own && maps > 1;
}

/* __split_huge_pmd_locked: the deposited table gets 512 entries with the
 * huge entry's write and dirty bits (zero page: read-only, clean), and the
 * level-1 entry points at it.  No frame is needed; the span is flushed. */
void thp_split(cs_machine *m, cs_proc *p, uint64_t *pmd, uint64_t span_start)
{
    uint64_t slot = PTE_FRAME(*pmd), *t = table_of(m, slot), b = t[0];
    uint64_t flags = *pmd & (PTE_PRESENT | PTE_WRITE | PTE_DIRTY);
    for (uint64_t k = 0; k < HPAGE_NR; k++)
        t[k] = b ? MK_PTE(b + k, flags) : MK_PTE(ZERO_FRAME, PTE_PRESENT);
    *pmd = MK_PTE(slot, PTE_PRESENT);
    tlb_flush_range(m, p, span_start, span_start + hpage_size(m));
    count_split(m, p);
}

/* vma_adjust_trans_huge: a region boundary at addr inside a huge mapping. */
void thp_split_at(cs_machine *m, cs_proc *p, uint64_t addr)
{
    if (!m->thp_used || !(addr & (hpage_size(m) - 1)))
        return;
    uint64_t *pmd = pmd_lookup(m, p, addr);
    if (pmd && pmd_is_huge(*pmd))
        thp_split(m, p, pmd, addr & ~(hpage_size(m) - 1));
}

/* zap_huge_pmd: the deposited table is freed first (zap_deposited_table),
 * then one mapping of each subpage is dropped. */
void thp_zap(cs_machine *m, cs_proc *p, uint64_t *pmd)
{
    uint64_t b = huge_block(m, *pmd);
    table_free(m, p, PTE_FRAME(*pmd));
    *pmd = 0;
    if (!b)
        return;
    for (uint64_t k = 0; k < HPAGE_NR; k++) {
        m->fm[b + k].mapc--;
        frame_put(m, b + k);
    }
}

/* A fault in an empty span of a huge region (do_huge_pmd_anonymous_page).
 * Read: the huge zero page.  Write: a new huge page, if a free aligned block
 * exists and it and the deposited table fit; otherwise *res = THP_FALLBACK
 * and the 4 KiB path goes on (the tables above level 0 are then in place). */
cs_status thp_fault_none(cs_machine *m, cs_proc *p, cs_vma *v, uint64_t *pmd, uint64_t addr, bool write,
                         cs_outcome *kind, uint64_t **ptep, thp_result *res)
{
    /* Tables from level 1 down: the 4 KiB fault needs them all, the huge one
     * the same number (level 0 is the deposited table) -- plus the page(s). */
    unsigned missing = pmd ? 1 : pte_missing_tables(m, p, addr);
    *res = THP_DONE;
    if (frames_free(m) < missing + (write ? 1 : 0))
        return CS_ENOMEM;
    pmd = pmd_alloc(m, p, addr);
    uint64_t b = 0;
    if (write) {
        b = frame_block_find(m);
        if (!b || frames_free(m) < HPAGE_NR + 1) {
            *res = THP_FALLBACK;
            return CS_OK;
        }
        frame_block_alloc(m, b);
    }
    uint64_t slot = table_alloc(m, p);   /* pte_alloc_one + pgtable_trans_huge_deposit */
    table_of(m, slot)[0] = b;
    if (write) {
        *pmd = MK_PTE(slot, PTE_PRESENT | PMD_HUGE | PTE_WRITE | PTE_DIRTY);
        v->flags |= CS_VMA_ANON_VMA;
        p->st.thp_faults++;
        m->st.thp_faults++;
        *kind = CS_FAULT_ZERO_FILL;
    } else {
        *pmd = MK_PTE(slot, PTE_PRESENT | PMD_HUGE);
        *kind = CS_FAULT_ZERO_PAGE;
    }
    *ptep = pmd;
    return CS_OK;
}

static void copy_huge(cs_machine *m, cs_proc *p, uint64_t *pmd, uint64_t b, uint64_t nb, uint64_t span_start)
{
    frame_block_alloc(m, nb);
    if (m->mem)
        memcpy(frame_data(m, nb), frame_data(m, b), (size_t)HPAGE_NR << m->page_shift);
    table_of(m, PTE_FRAME(*pmd))[0] = nb;
    *pmd = MK_PTE(PTE_FRAME(*pmd), PTE_PRESENT | PMD_HUGE | PTE_WRITE | PTE_DIRTY);
    tlb_flush_range(m, p, span_start, span_start + hpage_size(m));   /* pmdp_huge_clear_flush */
    for (uint64_t k = 0; k < HPAGE_NR; k++) {
        m->fm[b + k].mapc--;
        frame_put(m, b + k);
    }
    p->st.pages_copied += HPAGE_NR;
    m->st.pages_copied += HPAGE_NR;
    p->st.thp_faults++;   /* the old kernels counted THP_FAULT_ALLOC here */
    m->st.thp_faults++;
}

/* A write to the huge zero page with a free block: a new zeroed huge page in
 * the same deposited table (Linux >= 6.13 do_huge_zero_wp_pmd; before 5.8,
 * do_huge_pmd_wp_page's `goto alloc`). */
static void zero_huge(cs_machine *m, cs_proc *p, uint64_t *pmd, uint64_t nb, uint64_t span_start)
{
    frame_block_alloc(m, nb);   /* zeroed */
    table_of(m, PTE_FRAME(*pmd))[0] = nb;
    *pmd = MK_PTE(PTE_FRAME(*pmd), PTE_PRESENT | PMD_HUGE | PTE_WRITE | PTE_DIRTY);
    vma_find(p, span_start)->flags |= CS_VMA_ANON_VMA;
    tlb_flush_range(m, p, span_start, span_start + hpage_size(m));
    p->st.thp_faults++;
    m->st.thp_faults++;
}

/* Linux < 5.8 without a free huge block (do_huge_pmd_wp_page_fallback):
 * every subpage is copied into a 4 KiB page of its own, mapped writable
 * and dirty by level-0 entries in the deposited table; the huge page loses
 * this mapping.  Needs HPAGE_NR free frames. */
static void copy_subpages(cs_machine *m, cs_proc *p, uint64_t *pmd, uint64_t b, uint64_t span_start)
{
    uint64_t *t = table_of(m, PTE_FRAME(*pmd));
    for (uint64_t k = 0; k < HPAGE_NR; k++) {
        uint64_t nf = frame_alloc_copy(m, CS_FRAME_ANON | CS_FRAME_EXCLUSIVE, b + k);
        m->fm[nf].mapc = 1;
        t[k] = MK_PTE(nf, PTE_PRESENT | PTE_WRITE | PTE_DIRTY);
    }
    *pmd = MK_PTE(PTE_FRAME(*pmd), PTE_PRESENT);
    tlb_flush_range(m, p, span_start, span_start + hpage_size(m));
    for (uint64_t k = 0; k < HPAGE_NR; k++) {
        m->fm[b + k].mapc--;
        frame_put(m, b + k);
    }
    p->st.pages_copied += HPAGE_NR;
    m->st.pages_copied += HPAGE_NR;
}

/* do_huge_pmd_wp_page's reuse test: PageAnonExclusive, or no subpage has
 * another reference or mapping. */
static bool huge_unshared(cs_machine *m, uint64_t b)
{
    if (m->fm[b].flags & CS_FRAME_EXCLUSIVE)
        return true;
    for (uint64_t k = 0; k < HPAGE_NR; k++)
        if (m->fm[b + k].ref != 1 || m->fm[b + k].mapc != 1)
            return false;
    return true;
}

/* An access under a huge entry (do_huge_pmd_wp_page for writes).  Reads and
 * writes through a writable entry hit.  A write to a write-protected one
 * reuses the whole page if its subpages have no other mapping.  With
 * thp_cow "copy-huge" (Linux < 5.8) it then copies 2 MiB into a free block
 * (the huge zero page: a zeroed huge page), or without one copies every
 * subpage into 4 KiB pages (not for the zero page).  Otherwise -- and
 * always under "split" -- it splits the entry and sets *res = THP_FALLBACK
 * with *ptep at the level-0 entry, for the 4 KiB write fault (F4 on the zero
 * page, F5 otherwise) to go on. */
cs_status thp_fault_huge(cs_machine *m, cs_proc *p, uint64_t *pmd, uint64_t addr, bool write,
                         cs_outcome *kind, uint64_t **ptep, thp_result *res)
{
    *ptep = pmd;
    *res = THP_DONE;
    *kind = CS_HIT;
    if (!write)
        return CS_OK;
    if (*pmd & PTE_WRITE) {
        *pmd |= PTE_DIRTY;
        return CS_OK;
    }
    uint64_t s = addr & ~(hpage_size(m) - 1), b = huge_block(m, *pmd);
    if (b) {
        if (huge_unshared(m, b)) {   /* reuse: an upgrade, nothing to flush */
            for (uint64_t k = 0; k < HPAGE_NR; k++)
                m->fm[b + k].flags |= CS_FRAME_EXCLUSIVE;
            *pmd |= PTE_WRITE | PTE_DIRTY;
            *kind = CS_FAULT_COW_REUSE;
            return CS_OK;
        }
    }
    if (!b || m->cfg.thp_cow == CS_THP_COW_COPY_HUGE) {
        uint64_t nb = frame_block_find(m);
        if (nb && frames_free(m) >= HPAGE_NR) {
            if (b)
                copy_huge(m, p, pmd, b, nb, s);
            else
                zero_huge(m, p, pmd, nb, s);
            *kind = b ? CS_FAULT_COW_COPY : CS_FAULT_ZERO_FILL;
            return CS_OK;
        }
    }
    if (m->cfg.thp_cow == CS_THP_COW_COPY_HUGE) {
        if (b && frames_free(m) >= HPAGE_NR) {
            copy_subpages(m, p, pmd, b, s);
            *kind = CS_FAULT_COW_COPY;
            return CS_OK;
        }
    }
    /* The 4 KiB fault after the split copies (or zero-fills) one page:
     * another mapping exists, so the page cannot be reused. */
    if (frames_free(m) < 1)
        return CS_ENOMEM;
    thp_split(m, p, pmd, s);
    *ptep = &table_of(m, PTE_FRAME(*pmd))[entry_index(m, addr, 0)];
    *res = THP_FALLBACK;
    return CS_OK;
}

/* ---- mprotect and fork ---- */

static void mprotect_pmd(cs_machine *m, cs_proc *p UNUSED, uint64_t *pmd, uint64_t s UNUSED, void *ctx)
{
    if (!pmd_is_huge(*pmd))
        return;
    uint64_t b = huge_block(m, *pmd);
    /* can_change_pmd_writable: only an exclusive anonymous page */
    if (*(bool *)ctx && b && (m->fm[b].flags & CS_FRAME_EXCLUSIVE))
        *pmd |= PTE_WRITE;
    else if (!*(bool *)ctx)
        *pmd &= ~PTE_WRITE;
}

/* change_huge_pmd over [start, end), whose huge entries lie wholly inside. */
void thp_mprotect(cs_machine *m, cs_proc *p, uint64_t start, uint64_t end, bool writable)
{
    if (m->thp_used)
        pmd_walk(m, p, start, end, mprotect_pmd, &writable);
}

/* copy_huge_pmd: the child gets the same entry and a deposited table of its
 * own; an anonymous huge page is shared (each subpage +1 reference and
 * mapping, no longer exclusive) and write-protected on both sides.  An eager
 * fork instead gives the child 512 private 4 KiB copies in a level-0 table. */
void thp_fork_copy(cs_machine *m, cs_proc *child, uint64_t *src, uint64_t *dst, bool eager, bool rw)
{
    uint64_t b = huge_block(m, *src);
    uint64_t slot = table_alloc(m, child);
    uint64_t *t = table_of(m, slot);
    child->st.fork_tables++;
    if (eager && b) {
        uint64_t flags = PTE_PRESENT | (*src & PTE_DIRTY) | (rw ? PTE_WRITE : 0);
        for (uint64_t k = 0; k < HPAGE_NR; k++) {
            uint64_t nf = frame_alloc_copy(m, CS_FRAME_ANON | CS_FRAME_EXCLUSIVE, b + k);
            m->fm[nf].mapc = 1;
            t[k] = MK_PTE(nf, flags);
        }
        *dst = MK_PTE(slot, PTE_PRESENT);
        child->st.fork_ptes += HPAGE_NR;
        child->st.pages_copied += HPAGE_NR;
        m->st.pages_copied += HPAGE_NR;
        return;
    }
    t[0] = b;
    if (b) {
        for (uint64_t k = 0; k < HPAGE_NR; k++) {
            m->fm[b + k].ref++;
            m->fm[b + k].mapc++;
            m->fm[b + k].flags &= (uint8_t)~CS_FRAME_EXCLUSIVE;
        }
        *src &= ~PTE_WRITE;
    }
    *dst = MK_PTE(slot, *src & (PTE_PRESENT | PMD_HUGE | PTE_WRITE | PTE_DIRTY));
    child->st.fork_ptes++;
}
