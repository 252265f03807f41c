/* fault.c -- the page-fault handler (DESIGN.md F1-F6) and byte accesses.
 *
 * Every access goes through access_one(): a present entry with the needed
 * permission is a hit; anything else is one minor fault of exactly one kind,
 * or a segmentation fault decided from the regions alone. */
#include <string.h>
#include "internal.h"

static inline uint64_t page_mask(const cs_machine *m) { return ((uint64_t)1 << m->page_shift) - 1; }

/* F1: the permission check, on regions only; changes nothing. */
cs_status check_access(cs_proc *p, uint64_t addr, bool write, cs_access_info *info)
{
    cs_vma *v = vma_find(p, addr);
    int32_t reason;
    if (!v)
        reason = CS_SEGV_UNMAPPED;
    else if (v->prot == CS_PROT_NONE || (write && !(v->prot & CS_PROT_WRITE)))
        reason = CS_SEGV_PROTECTION;
    else
        return CS_OK;
    info->outcome = CS_SEGFAULT;
    info->segv_reason = reason;
    info->addr = addr;
    return CS_ESEGV;
}

/* mm_account_fault: a minor fault of one kind; a fault that read its page
 * from disk is major instead (majflt, not minflt). */
static inline void count_fault(cs_machine *m, cs_proc *p, cs_outcome kind, bool major)
{
    switch (kind) {
    case CS_FAULT_ZERO_PAGE: p->st.faults_zero_page++; break;
    case CS_FAULT_ZERO_FILL: p->st.faults_zero_fill++; break;
    case CS_FAULT_COW_COPY: p->st.faults_cow_copy++; break;
    case CS_FAULT_COW_REUSE: p->st.faults_cow_reuse++; break;
    case CS_FAULT_SHARED: p->st.faults_shared++; break;
    case CS_FAULT_FILE: p->st.faults_file++; break;
    default: return;
    }
    if (__builtin_expect(major, 0)) {
        p->st.majflt++;
        m->st.majflt++;
        return;
    }
    p->st.minflt++;
    m->st.minflt++;
}

static void map_shmem_page(cs_machine *m, uint64_t *pte, const cs_vma *v, uint64_t f, bool write)
{
    uint64_t flags = PTE_PRESENT;
    if (v->prot & CS_PROT_WRITE)
        flags |= PTE_WRITE;   /* shmem needs no write-notify: mapped writable */
    if (write) {
        flags |= PTE_DIRTY;
        m->fm[f].flags |= CS_FRAME_DIRTY;   /* fault_dirty_shared_page */
    }
    m->fm[f].ref++;
    m->fm[f].mapc++;
    *pte = MK_PTE(f, flags);
}

/* do_fault_around's window for a read fault at addr in region v: entry
 * indexes [*from, *to) of addr's level-0 table, aligned on fault_around_pages
 * and cut at the region and the table (shmem here, files in filemap.c). */
void fault_around_window(const cs_machine *m, const cs_vma *v, uint64_t addr, uint64_t *from, uint64_t *to)
{
    uint64_t n = m->fault_around_pages;
    uint64_t i = entry_index(m, addr, 0);
    uint64_t voff = (addr - v->start) >> m->page_shift;
    uint64_t vpages = (v->end - v->start) >> m->page_shift;
    uint64_t f = i & ~(n - 1);
    uint64_t vstart = i - (i < voff ? i : voff);
    if (vstart > f)
        f = vstart;
    uint64_t t = f + n;
    if (t > m->epl)
        t = m->epl;
    if (t > i + vpages - voff)
        t = i + vpages - voff;
    *from = f;
    *to = t;
}

/* do_fault_around: map the neighbours already in the shmem object. */
static void fault_around(cs_machine *m, uint64_t *pte, const cs_vma *v, uint64_t addr)
{
    uint64_t i = entry_index(m, addr, 0), from, to;
    uint64_t voff = (addr - v->start) >> m->page_shift;
    fault_around_window(m, v, addr, &from, &to);
    uint64_t *table = pte - i;
    for (uint64_t j = from; j < to; j++) {
        if (j == i || table[j])
            continue;
        uint64_t f = v->obj->pages[v->pgoff + voff + j - i];
        if (f)
            map_shmem_page(m, &table[j], v, f, false);
    }
}

static cs_status fault_shared(cs_machine *m, cs_proc *p, cs_vma *v, uint64_t addr, bool write,
                              uint64_t **ptep, cs_outcome *kind)
{
    uint64_t *pte = *ptep;
    uint64_t idx = v->pgoff + ((addr - v->start) >> m->page_shift);
    uint64_t f = v->obj->pages[idx];
    unsigned need = (pte ? 0 : pte_missing_tables(m, p, addr)) + (f ? 0 : 1);
    if (frames_free(m) < need)
        return CS_ENOMEM;
    if (!pte)
        *ptep = pte = pte_alloc(m, p, addr);
    if (!f) {
        f = frame_alloc(m, CS_FRAME_SHMEM);   /* the object's reference */
        v->obj->pages[idx] = f;
    }
    map_shmem_page(m, pte, v, f, write);
    if (!write && m->fault_around_pages > 1)
        fault_around(m, pte, v, addr);
    *kind = CS_FAULT_SHARED;
    return CS_OK;
}

static uint64_t anon_frame_new(cs_machine *m)
{
    uint64_t f = frame_alloc(m, CS_FRAME_ANON | CS_FRAME_EXCLUSIVE);
    if (f)
        m->fm[f].mapc = 1;
    return f;
}

/* Handles one access to a page of region v that passed check_access; *ptep
 * is set to the level-0 entry (for the TLB fill), *ro to whether a level-1
 * entry above it write-protects it (odf). */
static cs_status fault_page(cs_machine *m, cs_proc *p, cs_vma *v, uint64_t addr, bool write,
                            cs_outcome *kind, uint64_t **ptep, bool *ro, bool *major)
{
    *ro = false;
    *major = false;
    bool took_table = false;   /* odf: a write-protected table became this process's */
    if (m->thp_used && !(v->flags & CS_MAP_SHARED)) {
        uint64_t *pmd = pmd_lookup(m, p, addr);
        thp_result res = THP_FALLBACK;
        cs_status st = CS_OK;
        if (pmd && pmd_is_huge(*pmd))
            st = thp_fault_huge(m, p, pmd, addr, write, kind, ptep, &res);
        else if ((!pmd || !*pmd) && thp_span_ok(m, v, addr))
            st = thp_fault_none(m, p, v, pmd, addr, write, kind, ptep, &res);
        if (st || res == THP_DONE)
            return st;
    }
    if (m->odf_used) {
        /* A caller's entry may be in a table this process has since copied. */
        uint64_t *pmd = pmd_lookup(m, p, addr);
        *ptep = pmd && (*pmd & PTE_PRESENT) ? &table_of(m, PTE_FRAME(*pmd))[entry_index(m, addr, 0)] : NULL;
        if (*ptep && (*pmd & PMD_WP)) {
            if (!write) {
                *ro = true;   /* reads fill or hit the shared table */
            } else if (frames_free(m) < odf_write_need(m, *pmd, addr)) {
                return CS_ENOMEM;
            } else {
                *ptep = odf_unshare(m, p, pmd, addr);
                took_table = true;
            }
        }
    }
    uint64_t *pte = *ptep ? *ptep : (*ptep = pte_lookup(m, p, addr));
    uint64_t e = pte ? *pte : 0;
    /* A write that only had to take a table over is still a fault: a reuse. */
    *kind = took_table ? CS_FAULT_COW_REUSE : CS_HIT;
    if (!(e & PTE_PRESENT)) {
        if (__builtin_expect(vma_is_file(v), 0))
            return filemap_fault(m, p, v, addr, write, ptep, kind, major);
        if (v->flags & CS_MAP_SHARED)
            return fault_shared(m, p, v, addr, write, ptep, kind);
        unsigned need = (pte ? 0 : pte_missing_tables(m, p, addr)) + (write ? 1 : 0);
        if (frames_free(m) < need)
            return CS_ENOMEM;
        if (!pte)
            *ptep = pte = pte_alloc(m, p, addr);
        if (!write) {   /* F2: do_anonymous_page maps the zero page */
            *pte = MK_PTE(ZERO_FRAME, PTE_PRESENT);
            *kind = CS_FAULT_ZERO_PAGE;
            return CS_OK;
        }
        uint64_t f = anon_frame_new(m);   /* F3 */
        *pte = MK_PTE(f, PTE_PRESENT | PTE_WRITE | PTE_DIRTY);
        v->flags |= CS_VMA_ANON_VMA;
        *kind = CS_FAULT_ZERO_FILL;
        return CS_OK;
    }
    if (!write)
        return CS_OK;
    if (e & PTE_WRITE) {
        *pte = e | PTE_DIRTY;   /* the hardware sets the dirty bit */
        return CS_OK;
    }
    uint64_t f = PTE_FRAME(e);
    if ((v->flags & CS_MAP_SHARED) && vma_is_file(v))
        return filemap_wp_fault(m, p, v, addr, pte, kind);
    if (v->flags & CS_MAP_SHARED) {   /* wp_page_shared */
        *pte = e | PTE_WRITE | PTE_DIRTY;
        m->fm[f].flags |= CS_FRAME_DIRTY;
        *kind = CS_FAULT_SHARED;
        return CS_OK;
    }
    if (f == ZERO_FRAME) {   /* F4: wp_page_copy of the zero page: no copy */
        uint64_t nf = anon_frame_new(m);
        if (!nf)
            return CS_ENOMEM;
        v->flags |= CS_VMA_ANON_VMA;
        *pte = MK_PTE(nf, PTE_PRESENT | PTE_WRITE | PTE_DIRTY);
        tlb_flush_page(m, p, addr);   /* ptep_clear_flush */
        *kind = CS_FAULT_ZERO_FILL;
        return CS_OK;
    }
    /* FR3: a page-cache page is never reused (its reference from the cache
     * keeps the count above 1, and it is never exclusive): always a copy. */
    bool reuse = (m->fm[f].flags & CS_FRAME_HUGE) ? folio_reusable(m, pte - entry_index(m, addr, 0),
                                                                    entry_index(m, addr, 0), f)
                                                  : m->fm[f].ref == 1;
    if ((m->fm[f].flags & CS_FRAME_EXCLUSIVE) || reuse) {   /* F5 reuse */
        m->fm[f].flags |= CS_FRAME_EXCLUSIVE;
        *pte = e | PTE_WRITE | PTE_DIRTY;
        *kind = CS_FAULT_COW_REUSE;
        return CS_OK;
    }
    uint64_t nf = frame_alloc_copy(m, CS_FRAME_ANON | CS_FRAME_EXCLUSIVE, f);   /* F5 copy */
    if (!nf)
        return CS_ENOMEM;
    m->fm[nf].mapc = 1;
    v->flags |= CS_VMA_ANON_VMA;
    *pte = MK_PTE(nf, PTE_PRESENT | PTE_WRITE | PTE_DIRTY);
    tlb_flush_page(m, p, addr);   /* ptep_clear_flush */
    m->fm[f].mapc--;
    frame_put(m, f);
    p->st.pages_copied++;
    m->st.pages_copied++;
    *kind = CS_FAULT_COW_COPY;
    return CS_OK;
}

/* The TLB-miss path: permission check (F1), walk, fault if needed, TLB fill.
 * `pte` is the level-0 entry if the caller already walked there, else NULL.
 * Returns the cs_outcome (CS_SEGFAULT with *info filled), or -1 when the
 * fault needs a frame and none is free (nothing changed). */
int access_slow(cs_machine *m, cs_proc *p, uint64_t addr, bool write, cs_access_info *info,
                uint64_t *pte)
{
    if (check_access(p, addr, write, info)) {
        p->st.segfaults++;
        m->st.segfaults++;
        return CS_SEGFAULT;
    }
    return access_fault(m, p, vma_find(p, addr), addr, write, info, pte);
}

/* access_slow after the permission check: v is the region of addr and allows
 * the access (batch.c calls it with the region it remembers). */
int access_fault(cs_machine *m, cs_proc *p, cs_vma *v, uint64_t addr, bool write, cs_access_info *info,
                 uint64_t *pte)
{
    cs_outcome kind;
    bool ro, major;
    cs_status st = fault_page(m, p, v, addr, write, &kind, &pte, &ro, &major);
    if (__builtin_expect(st == CS_ESIGBUS, 0)) {   /* FB1: no fault counted, the access signalled */
        p->st.sigbus++;
        m->st.sigbus++;
        info->outcome = CS_SIGBUS;
        info->segv_reason = 0;
        info->addr = addr;
        return CS_SIGBUS;
    }
    if (__builtin_expect(st != CS_OK, 0)) {
        p->st.accesses--;   /* out of frames: the access did not happen */
        if (p->tlb)
            p->st.tlb_misses--;
        return -1;
    }
    count_fault(m, p, kind, major);
    if (p->tlb) {
        uint64_t vpn = addr >> m->page_shift;
        p->tlb[vpn & m->tlb_mask].vpn = vpn;
        p->tlb[vpn & m->tlb_mask].pte = ro ? &m->ro_pte : pte;
    }
    return kind;
}

static cs_status outcome_status(int r)
{
    return r < 0 ? CS_ENOMEM : r == CS_SEGFAULT ? CS_ESEGV : r == CS_SIGBUS ? CS_ESIGBUS : CS_OK;
}

cs_status cs_touch(cs_machine *m, int32_t pid, uint64_t addr, int32_t write, cs_access_info *info)
{
    LOCK(m);
    cs_proc *p;
    cs_status st = proc_get(m, pid, &p);
    if (!st) {
        int r = access_one(m, p, addr, write != 0, info);
        if (r >= 0 && !outcome_is_signal(r))
            info->outcome = r;
        else if (r < 0)
            info->outcome = CS_HIT;
        st = outcome_status(r);
    }
    UNLOCK(m);
    return st;
}

int32_t cs_touch_fast(cs_machine *m, int32_t pid, uint64_t addr, int32_t write)
{
    LOCK(m);
    cs_proc *p;
    cs_access_info info;
    int32_t r;
    cs_status st = proc_get(m, pid, &p);
    if (st) {
        r = -(int32_t)st;
    } else {
        r = access_one(m, p, addr, write != 0, &info);
        if (r < 0)
            r = -(int32_t)CS_ENOMEM;
        else if (r == CS_SEGFAULT)
            r = info.segv_reason == CS_SEGV_PROTECTION ? CS_TOUCH_SEGV_PROTECTION : CS_TOUCH_SEGV_UNMAPPED;
    }
    UNLOCK(m);
    return r;
}

/* Reads or writes len bytes at addr, page by page.  All pages are checked
 * for permission first, so a segmentation fault changes no page. */
static cs_status access_bytes(cs_machine *m, int32_t pid, uint64_t addr, unsigned char *rbuf,
                              const unsigned char *wbuf, uint64_t len, cs_access_info *info)
{
    bool write = wbuf != NULL;
    info->outcome = CS_HIT;
    if (rbuf && !m->cfg.store_data)
        return CS_ENODATA;
    LOCK(m);
    cs_proc *p;
    cs_status st = proc_get(m, pid, &p);
    if (st || len == 0)
        goto out;
    if (addr + len < addr) {
        st = CS_EINVAL;
        goto out;
    }
    uint64_t end = addr + len, pm = page_mask(m);
    for (uint64_t a = addr & ~pm; a < end; a += pm + 1) {
        if ((st = check_access(p, a, write, info))) {
            info->addr = a < addr ? addr : a;
            p->st.accesses++;
            p->st.segfaults++;
            m->st.segfaults++;
            goto out;
        }
    }
    for (uint64_t a = addr; a < end;) {
        uint64_t next = (a & ~pm) + pm + 1;
        uint64_t n = (next < end ? next : end) - a;
        int r = access_one(m, p, a & ~pm, write, info);
        if ((st = outcome_status(r)))
            goto out;
        info->outcome = r;
        if (m->cfg.store_data) {
            uint64_t f = frame_at(m, p, a);
            unsigned char *d = frame_data(m, f) + (a & pm);
            if (write)
                memcpy(d, wbuf, n), wbuf += n;
            else
                memcpy(rbuf, d, n), rbuf += n;
        }
        a += n;
    }
out:
    UNLOCK(m);
    return st;
}

cs_status cs_read(cs_machine *m, int32_t pid, uint64_t addr, void *buf, uint64_t len,
                  cs_access_info *info)
{
    return access_bytes(m, pid, addr, buf, NULL, len, info);
}

cs_status cs_write(cs_machine *m, int32_t pid, uint64_t addr, const void *buf, uint64_t len,
                   cs_access_info *info)
{
    return access_bytes(m, pid, addr, NULL, buf, len, info);
}
