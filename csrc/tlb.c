/* tlb.c -- the per-process software TLB: allocation and flushes.
 *
 * Direct mapped, indexed by virtual page number.  Flushed exactly where the
 * kernel flushes: the whole TLB of the parent after a CoW fork
 * (dup_mmap -> flush_tlb_mm), one page when a CoW fault replaces a frame
 * (wp_page_copy -> ptep_clear_flush), the range of munmap, mprotect and
 * madvise(DONTNEED) (tlb_finish_mmu / flush_tlb_range). */
#include <stdlib.h>
#include "internal.h"

bool tlb_init(cs_machine *m, cs_proc *p)
{
    if (!m->cfg.tlb_entries)
        return true;
    p->tlb = malloc(m->cfg.tlb_entries * sizeof *p->tlb);
    if (!p->tlb)
        return false;
    for (uint64_t i = 0; i <= m->tlb_mask; i++)
        p->tlb[i].vpn = TLB_INVALID;
    return true;
}

void tlb_release(cs_proc *p)
{
    free(p->tlb);
    p->tlb = NULL;
}

void tlb_flush_all(cs_machine *m, cs_proc *p)
{
    if (!p->tlb)
        return;
    for (uint64_t i = 0; i <= m->tlb_mask; i++)
        p->tlb[i].vpn = TLB_INVALID;
    p->st.tlb_flushes++;
}

void tlb_flush_range(cs_machine *m, cs_proc *p, uint64_t start, uint64_t end)
{
    if (!p->tlb)
        return;
    uint64_t first = start >> m->page_shift, last = (end - 1) >> m->page_shift;
    if (last - first >= m->tlb_mask) {   /* like the kernel's flush ceiling: all */
        for (uint64_t i = 0; i <= m->tlb_mask; i++)
            p->tlb[i].vpn = TLB_INVALID;
    } else {
        for (uint64_t v = first; v <= last; v++)
            if (p->tlb[v & m->tlb_mask].vpn == v)
                p->tlb[v & m->tlb_mask].vpn = TLB_INVALID;
    }
    p->st.tlb_flushes++;
}

void tlb_flush_page(cs_machine *m, cs_proc *p, uint64_t addr)
{
    if (!p->tlb)
        return;
    uint64_t v = addr >> m->page_shift;
    if (p->tlb[v & m->tlb_mask].vpn == v)
        p->tlb[v & m->tlb_mask].vpn = TLB_INVALID;
    p->st.tlb_flushes++;
}
