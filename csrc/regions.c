/* regions.c -- per-process regions (VMAs): mmap, munmap, mprotect, madvise.
 *
 * A process keeps its regions in an array sorted by address.  Splits happen
 * at range boundaries; regions are never merged (vma_merge is not modelled). */
#include <stdlib.h>
#include <string.h>
#include "internal.h"

size_t vma_first_ending_after(const cs_proc *p, uint64_t addr)
{
    size_t lo = 0, hi = p->nvmas;
    while (lo < hi) {
        size_t mid = lo + (hi - lo) / 2;
        if (p->vmas[mid].end <= addr)
            lo = mid + 1;
        else
            hi = mid;
    }
    return lo;
}

cs_vma *vma_find(cs_proc *p, uint64_t addr)
{
    size_t i = p->vma_hint;   /* accesses cluster: try the last region found first */
    if (i < p->nvmas && p->vmas[i].start <= addr && addr < p->vmas[i].end)
        return &p->vmas[i];
    i = vma_first_ending_after(p, addr);
    if (i < p->nvmas && p->vmas[i].start <= addr) {
        p->vma_hint = i;
        return &p->vmas[i];
    }
    return NULL;
}

bool vma_overlaps(const cs_proc *p, uint64_t start, uint64_t end)
{
    size_t i = vma_first_ending_after(p, start);
    return i < p->nvmas && p->vmas[i].start < end;
}

/* Makes room for `extra` more regions, so that later steps cannot fail. */
bool vma_reserve(cs_proc *p, size_t extra)
{
    if (p->nvmas + extra <= p->capvmas)
        return true;
    size_t cap = p->capvmas ? p->capvmas : 8;
    while (cap < p->nvmas + extra)
        cap *= 2;
    cs_vma *v = realloc(p->vmas, cap * sizeof *v);
    if (!v)
        return false;
    p->vmas = v;
    p->capvmas = cap;
    return true;
}

void vma_insert(cs_proc *p, size_t idx, const cs_vma *v)
{
    memmove(&p->vmas[idx + 1], &p->vmas[idx], (p->nvmas - idx) * sizeof *v);
    p->vmas[idx] = *v;
    p->nvmas++;
}

void shobj_put(cs_machine *m, cs_shobj *o)
{
    if (--o->nvmas)
        return;
    for (uint64_t i = 0; i < o->npages; i++)
        if (o->pages[i])
            frame_put(m, o->pages[i]);
    if (o->prev)
        o->prev->next = o->next;
    else
        m->objs = o->next;
    if (o->next)
        o->next->prev = o->prev;
    m->nobjs--;
    free(o->pages);
    free(o);
}

void vma_remove(cs_machine *m, cs_proc *p, size_t idx)
{
    if (p->vmas[idx].obj)
        shobj_put(m, p->vmas[idx].obj);
    memmove(&p->vmas[idx], &p->vmas[idx + 1], (p->nvmas - idx - 1) * sizeof(cs_vma));
    p->nvmas--;
}

/* Splits region idx at `at` (strictly inside it); capacity must be reserved. */
static void vma_split(cs_machine *m, cs_proc *p, size_t idx, uint64_t at)
{
    cs_vma hi = p->vmas[idx];
    hi.start = at;
    if (hi.obj) {
        hi.pgoff += (at - p->vmas[idx].start) >> m->page_shift;
        hi.obj->nvmas++;
    }
    p->vmas[idx].end = at;
    vma_insert(p, idx + 1, &hi);
    if (hi.flags & CS_VMA_HUGE)
        thp_split_at(m, p, at);   /* vma_adjust_trans_huge */
}

/* zap_pte_range over one level-0 table: a tight loop, as exit is hot. */
static void zap_leaf(cs_machine *m, uint64_t *t, uint64_t i0, uint64_t n)
{
    for (uint64_t i = i0; i < i0 + n; i++) {
        uint64_t e = t[i], f = PTE_FRAME(e);
        if (!e)
            continue;
        t[i] = 0;
        if (f == ZERO_FRAME)
            continue;
        /* A dirty entry of a file (shmem) page dirties the page. */
        if ((m->fm[f].flags & CS_FRAME_SHMEM) && (e & PTE_DIRTY))
            m->fm[f].flags |= CS_FRAME_DIRTY;
        m->fm[f].mapc--;
        if (--m->fm[f].ref == 0)
            frame_free(m, f);
    }
}

static void zap_rec(cs_machine *m, cs_proc *p, uint64_t slot, unsigned level, uint64_t s, uint64_t e)
{
    uint64_t *t = table_of(m, slot);
    uint64_t span = 1ULL << entry_shift(m, level);
    for (uint64_t a = s; a < e;) {
        uint64_t next = (a & ~(span - 1)) + span;
        if (next > e)
            next = e;
        uint64_t *ent_p = &t[entry_index(m, a, level)], ent = *ent_p;
        if (level == 1 && pmd_is_huge(ent)) {
            if (!(a & (span - 1)) && next - a == span) {   /* the whole huge page */
                thp_zap(m, p, ent_p);
                a = next;
                continue;
            }
            thp_split(m, p, ent_p, a & ~(span - 1));   /* part of it: split first */
            ent = *ent_p;
        }
        if (ent & PTE_PRESENT) {
            if (level > 1)
                zap_rec(m, p, PTE_FRAME(ent), level - 1, a, next);
            else
                zap_leaf(m, table_of(m, PTE_FRAME(ent)), entry_index(m, a, 0), (next - a) >> m->page_shift);
        }
        a = next;
    }
}

void zap_range(cs_machine *m, cs_proc *p, uint64_t start, uint64_t end)
{
    if (p->root && start < end)
        zap_rec(m, p, p->root, m->levels - 1, start, end);
}

/* ---- argument checks shared by the range operations ---- */

static cs_status range_check(cs_machine *m, uint64_t addr, uint64_t len, uint64_t *end)
{
    uint64_t mask = ((uint64_t)1 << m->page_shift) - 1;
    if (len == 0 || (addr & mask))
        return CS_EINVAL;
    uint64_t rlen = (len + mask) & ~mask;
    if (rlen < len || addr + rlen < addr || addr + rlen > m->user_end)
        return CS_EINVAL;
    *end = addr + rlen;
    return CS_OK;
}

static bool range_fully_mapped(const cs_proc *p, uint64_t start, uint64_t end)
{
    size_t i = vma_first_ending_after(p, start);
    uint64_t at = start;
    for (; i < p->nvmas && at < end; i++) {
        if (p->vmas[i].start > at)
            return false;
        at = p->vmas[i].end;
    }
    return at >= end;
}

/* Splits so that [start, end) boundaries fall on region edges for the region
 * at idx; returns the index of the part inside the range. */
static size_t vma_isolate(cs_machine *m, cs_proc *p, size_t idx, uint64_t start, uint64_t end)
{
    if (p->vmas[idx].start < start) {
        vma_split(m, p, idx, start);
        idx++;
    }
    if (p->vmas[idx].end > end)
        vma_split(m, p, idx, end);
    return idx;
}

/* ---- mmap ---- */

static bool find_free_range(const cs_proc *p, uint64_t len, uint64_t lo_limit, uint64_t hi_limit,
                            uint64_t *out)
{
    /* Top-down, like the kernel's default mmap layout. */
    uint64_t hi = hi_limit;
    for (size_t i = p->nvmas + 1; i-- > 0;) {
        uint64_t lo = i ? p->vmas[i - 1].end : lo_limit;
        if (i < p->nvmas)
            hi = p->vmas[i].start;
        if (hi > lo && hi - lo >= len) {
            *out = hi - len;
            return true;
        }
    }
    return false;
}

/* thp_get_unmapped_area: search for len + 2 MiB and align (top-down, the
 * highest aligned start that fits); the plain search if that finds nothing. */
static bool thp_free_range(const cs_machine *m, const cs_proc *p, uint64_t len, uint64_t *out)
{
    uint64_t h = hpage_size(m), base;
    if (len + h < len || !find_free_range(p, len + h, m->user_start, m->user_end, &base))
        return false;
    uint64_t off_sub = (0 - base) & (h - 1);
    *out = off_sub ? base + off_sub : base + h;
    return true;
}

cs_status cs_mmap(cs_machine *m, int32_t pid, uint64_t addr, uint64_t len, int32_t prot,
                  int32_t flags, uint64_t *addr_out)
{
    if (prot != CS_PROT_NONE && prot != CS_PROT_READ && prot != (CS_PROT_READ | CS_PROT_WRITE))
        return CS_EINVAL;
    if ((flags & ~(CS_MAP_SHARED | CS_VMA_HUGE)) ||
        ((flags & CS_VMA_HUGE) && ((flags & CS_MAP_SHARED) || m->page_shift != 12)))
        return CS_EINVAL;   /* THP: private anonymous memory with 4 KiB pages only */
    LOCK(m);
    cs_proc *p;
    cs_status st = proc_get(m, pid, &p);
    if (st)
        goto out;
    uint64_t mask = ((uint64_t)1 << m->page_shift) - 1;
    uint64_t rlen = (len + mask) & ~mask;
    if (len == 0 || rlen < len || rlen > m->user_end - m->user_start) {
        st = CS_EINVAL;
        goto out;
    }
    if (addr) {
        uint64_t end;
        if ((st = range_check(m, addr, rlen, &end)))
            goto out;
        if (addr < m->user_start) {
            st = CS_EINVAL;
            goto out;
        }
        if (vma_overlaps(p, addr, end)) {
            st = CS_EEXIST;
            goto out;
        }
    } else if (!((flags & CS_VMA_HUGE) && thp_free_range(m, p, rlen, &addr)) &&
               !find_free_range(p, rlen, m->user_start, m->user_end, &addr)) {
        st = CS_ENOVSPACE;
        goto out;
    }
    if ((flags & CS_VMA_HUGE) && (st = frames_thp_enable(m)))
        goto out;
    if (!vma_reserve(p, 1)) {
        st = CS_EHOST;
        goto out;
    }
    /* odf: a new region changes the spans it overlaps (their holders must
     * keep the same regions), so their shared tables become its own. */
    if (frames_free(m) < odf_prepare_need(m, p, addr, addr + rlen, false, NULL)) {
        st = CS_ENOMEM;
        goto out;
    }
    cs_vma v = {.start = addr, .end = addr + rlen, .prot = prot, .flags = flags};
    if (flags & CS_MAP_SHARED) {
        cs_shobj *o = calloc(1, sizeof *o);
        uint64_t *pages = o ? calloc(rlen >> m->page_shift, sizeof *pages) : NULL;
        if (!pages) {
            free(o);
            st = CS_EHOST;
            goto out;
        }
        o->npages = rlen >> m->page_shift;
        o->pages = pages;
        o->nvmas = 1;
        o->next = m->objs;
        if (m->objs)
            m->objs->prev = o;
        m->objs = o;
        m->nobjs++;
        v.obj = o;
    }
    odf_prepare(m, p, addr, addr + rlen, false);
    vma_insert(p, vma_first_ending_after(p, addr), &v);
    *addr_out = addr;
out:
    UNLOCK(m);
    return st;
}

/* ---- munmap ---- */

cs_status cs_munmap(cs_machine *m, int32_t pid, uint64_t addr, uint64_t len)
{
    LOCK(m);
    cs_proc *p;
    uint64_t end;
    cs_status st = proc_get(m, pid, &p);
    if (!st)
        st = range_check(m, addr, len, &end);
    if (st)
        goto out;
    /* Shared objects lose their regions only after the tables are freed
     * (unmap_vmas, free_pgtables, then remove_vma -> fput), so note them. */
    size_t nobj = 0;
    for (size_t k = vma_first_ending_after(p, addr); k < p->nvmas && p->vmas[k].start < end; k++)
        nobj += p->vmas[k].obj != NULL;
    cs_shobj **objs = nobj ? malloc(nobj * sizeof *objs) : NULL;
    if ((nobj && !objs) || !vma_reserve(p, 2)) {
        free(objs);
        st = CS_EHOST;
        goto out;
    }
    if (frames_free(m) < odf_prepare_need(m, p, addr, end, true, NULL)) {
        free(objs);
        st = CS_ENOMEM;
        goto out;
    }
    odf_prepare(m, p, addr, end, true);
    size_t i = vma_first_ending_after(p, addr);
    if (i < p->nvmas && p->vmas[i].start < addr)
        vma_split(m, p, i++, addr);
    size_t j = vma_first_ending_after(p, end - 1);
    if (j < p->nvmas && p->vmas[j].start < end && p->vmas[j].end > end)
        vma_split(m, p, j, end);
    if (i < p->nvmas && p->vmas[i].start < end) {   /* nothing mapped: nothing to flush */
        zap_range(m, p, addr, end);
        tlb_flush_range(m, p, addr, end);
    }
    size_t k = 0;
    while (i < p->nvmas && p->vmas[i].start < end) {
        if (p->vmas[i].obj)
            objs[k++] = p->vmas[i].obj;
        p->vmas[i].obj = NULL;
        vma_remove(m, p, i);
    }
    tables_free_unused(m, p, addr, end);
    for (size_t o = 0; o < k; o++)
        shobj_put(m, objs[o]);
    free(objs);
out:
    UNLOCK(m);
    return st;
}

/* ---- mprotect ---- */

static void pte_wrprotect(cs_machine *m UNUSED, cs_proc *p UNUSED, uint64_t *pte, uint64_t pmd UNUSED, uint64_t addr UNUSED,
                          void *ctx UNUSED)
{
    *pte &= ~PTE_WRITE;
}

static void pte_mkwrite_shared(cs_machine *m UNUSED, cs_proc *p UNUSED, uint64_t *pte, uint64_t pmd UNUSED, uint64_t addr UNUSED,
                               void *ctx UNUSED)
{
    *pte |= PTE_WRITE;
}

/* can_change_pte_writable: only exclusive anonymous pages become writable. */
static void pte_mkwrite_private(cs_machine *m UNUSED, cs_proc *p UNUSED, uint64_t *pte, uint64_t pmd UNUSED, uint64_t addr UNUSED,
                                void *ctx UNUSED)
{
    uint64_t f = PTE_FRAME(*pte);
    if (f != ZERO_FRAME && (m->fm[f].flags & CS_FRAME_EXCLUSIVE))
        *pte |= PTE_WRITE;
}

/* odf: the parts of [addr, end) whose protection changes get tables of their own
 * (counted first, so that a lack of frames changes nothing). */
static cs_status mprotect_unshare(cs_machine *m, cs_proc *p, uint64_t addr, uint64_t end, int32_t prot)
{
    uint64_t need = 0, last = UINT64_MAX;
    for (int apply = 0; apply < 2; apply++) {
        for (size_t i = vma_first_ending_after(p, addr); i < p->nvmas && p->vmas[i].start < end; i++) {
            if (p->vmas[i].prot == prot)
                continue;
            uint64_t s = p->vmas[i].start > addr ? p->vmas[i].start : addr;
            uint64_t e = p->vmas[i].end < end ? p->vmas[i].end : end;
            if (apply)
                odf_prepare(m, p, s, e, false);
            else
                need += odf_prepare_need(m, p, s, e, false, &last);
        }
        if (!apply && frames_free(m) < need)
            return CS_ENOMEM;
    }
    return CS_OK;
}

cs_status cs_mprotect(cs_machine *m, int32_t pid, uint64_t addr, uint64_t len, int32_t prot)
{
    if (prot != CS_PROT_NONE && prot != CS_PROT_READ && prot != (CS_PROT_READ | CS_PROT_WRITE))
        return CS_EINVAL;
    LOCK(m);
    cs_proc *p;
    uint64_t end;
    cs_status st = proc_get(m, pid, &p);
    if (!st)
        st = range_check(m, addr, len, &end);
    if (st)
        goto out;
    if (!range_fully_mapped(p, addr, end)) {
        st = CS_ENOTMAPPED;
        goto out;
    }
    if (!vma_reserve(p, 2)) {
        st = CS_EHOST;
        goto out;
    }
    if (m->odf_used && (st = mprotect_unshare(m, p, addr, end, prot)))
        goto out;
    for (size_t i = vma_first_ending_after(p, addr); i < p->nvmas && p->vmas[i].start < end; i++) {
        if (p->vmas[i].prot == prot)
            continue;   /* mprotect_fixup: unchanged regions are not split */
        i = vma_isolate(m, p, i, addr, end);
        cs_vma *v = &p->vmas[i];
        v->prot = prot;
        pte_visit_fn fn = pte_wrprotect;
        if (prot & CS_PROT_WRITE)
            fn = (v->flags & CS_MAP_SHARED) ? pte_mkwrite_shared : pte_mkwrite_private;
        pte_walk_small(m, p, v->start, v->end, fn, NULL);
        thp_mprotect(m, p, v->start, v->end, (prot & CS_PROT_WRITE) && !(v->flags & CS_MAP_SHARED));
        tlb_flush_range(m, p, v->start, v->end);
    }
out:
    UNLOCK(m);
    return st;
}

/* ---- madvise ---- */

cs_status cs_madvise(cs_machine *m, int32_t pid, uint64_t addr, uint64_t len, cs_advice advice)
{
    int32_t set = 0, clear = 0;
    switch (advice) {
    case CS_ADV_DONTFORK: set = CS_VMA_DONTFORK; break;
    case CS_ADV_DOFORK: clear = CS_VMA_DONTFORK; break;
    case CS_ADV_WIPEONFORK: set = CS_VMA_WIPEONFORK; break;
    case CS_ADV_KEEPONFORK: clear = CS_VMA_WIPEONFORK; break;
    case CS_ADV_DONTNEED: break;
    default: return CS_EINVAL;
    }
    LOCK(m);
    cs_proc *p;
    uint64_t end;
    cs_status st = proc_get(m, pid, &p);
    if (!st)
        st = range_check(m, addr, len, &end);
    if (st)
        goto out;
    if (!range_fully_mapped(p, addr, end)) {
        st = CS_ENOTMAPPED;
        goto out;
    }
    if (advice == CS_ADV_DONTNEED) {
        if (frames_free(m) < odf_prepare_need(m, p, addr, end, true, NULL)) {
            st = CS_ENOMEM;
            goto out;
        }
        odf_prepare(m, p, addr, end, true);
        zap_range(m, p, addr, end);
        tlb_flush_range(m, p, addr, end);
        goto out;
    }
    size_t first = vma_first_ending_after(p, addr);
    if (set == CS_VMA_WIPEONFORK) {
        /* MADV_WIPEONFORK is for private anonymous memory only (EINVAL). */
        for (size_t i = first; i < p->nvmas && p->vmas[i].start < end; i++)
            if (p->vmas[i].flags & CS_MAP_SHARED) {
                st = CS_ESHARED;
                goto out;
            }
    }
    if (!vma_reserve(p, 2)) {
        st = CS_EHOST;
        goto out;
    }
    for (size_t i = first; i < p->nvmas && p->vmas[i].start < end; i++) {
        int32_t nf = (p->vmas[i].flags | set) & ~clear;
        if (nf == p->vmas[i].flags)
            continue;   /* madvise_update_vma: unchanged regions are not split */
        i = vma_isolate(m, p, i, addr, end);
        p->vmas[i].flags = nf;
    }
out:
    UNLOCK(m);
    return st;
}
