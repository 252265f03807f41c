/* fork.c -- fork (cow, eager, odf and vfork strategies), exec and exit.
 *
 * Fork first counts the frames it will need (the child's tables, plus the
 * page copies of an eager fork) and fails before touching anything when they
 * are not free (K5); after that, no step can fail. */
#include <stdlib.h>
#include <string.h>
#include "internal.h"

typedef struct {
    uint64_t last[MAX_LEVELS];   /* last table counted per level (spans are visited in order) */
    uint64_t tables;
    uint64_t pages;
    bool eager;
    cs_proc *odf;     /* odf fork: the parent, whose shareable spans cost no table */
} fork_need;

static void count_rec(cs_machine *m, uint64_t tf, unsigned level, uint64_t s, uint64_t e,
                      fork_need *c)
{
    uint64_t *t = table_of(m, tf);
    uint64_t span = 1ULL << entry_shift(m, level);
    for (uint64_t a = s; a < e;) {
        uint64_t next = span_next(m, a, level, e);
        uint64_t ent = t[entry_index(m, a, level)];
        if (ent & PTE_PRESENT) {
            uint64_t child = PTE_FRAME(ent);
            if (level == 1 && pmd_is_huge(ent)) {   /* the child's own table (+ eager copies) */
                c->tables++;
                if (c->eager && huge_block(m, ent))
                    c->pages += HPAGE_NR;
                a = next;
                continue;
            }
            if (level == 1 && c->odf && span_shareable(c->odf, a & ~(span - 1), span)) {
                a = next;
                continue;
            }
            if (c->last[level - 1] != child) {
                c->last[level - 1] = child;
                c->tables++;
            }
            if (level > 1) {
                count_rec(m, child, level - 1, a, next, c);
            } else if (c->eager) {
                uint64_t *leaf = table_of(m, child);
                uint64_t i0 = entry_index(m, a, 0), n = (next - a) >> m->page_shift;
                for (uint64_t i = i0; i < i0 + n; i++)
                    if ((leaf[i] & PTE_PRESENT) && PTE_FRAME(leaf[i]) != ZERO_FRAME &&
                        !(m->fm[PTE_FRAME(leaf[i])].flags & CS_FRAME_FILE))
                        c->pages++;
            }
        }
        a = next;
    }
}

typedef struct {
    cs_proc *parent, *child;
    const cs_vma *vma;
    bool eager, odf;
} fork_ctx;

static void copy_leaf(cs_machine *m, fork_ctx *x, uint64_t *src, uint64_t *dst, uint64_t i0,
                      uint64_t n)
{
    for (uint64_t i = i0; i < i0 + n; i++) {
        uint64_t e = src[i];
        if (!(e & PTE_PRESENT))
            continue;
        x->child->st.fork_ptes++;
        uint64_t f = PTE_FRAME(e);
        if (f == ZERO_FRAME) {
            dst[i] = e;
        } else if (!x->eager || (m->fm[f].flags & CS_FRAME_FILE)) {
            dst[i] = pte_share(m, &src[i]);   /* K2; FK1: a page-cache page as it is */
        } else {
            uint64_t nf = frame_alloc_copy(m, CS_FRAME_ANON | CS_FRAME_EXCLUSIVE, f);
            m->fm[nf].mapc = 1;
            uint64_t flags = PTE_PRESENT | (e & PTE_DIRTY);
            if (x->vma->prot & CS_PROT_WRITE)
                flags |= PTE_WRITE;
            dst[i] = MK_PTE(nf, flags);
            x->child->st.pages_copied++;
            m->st.pages_copied++;
        }
    }
}

static void copy_rec(cs_machine *m, fork_ctx *x, uint64_t sf, uint64_t df, unsigned level,
                     uint64_t s, uint64_t e)
{
    uint64_t *src = table_of(m, sf), *dst = table_of(m, df);
    uint64_t span = 1ULL << entry_shift(m, level);
    for (uint64_t a = s; a < e;) {
        uint64_t next = span_next(m, a, level, e);
        uint64_t i = entry_index(m, a, level);
        if (src[i] & PTE_PRESENT) {
            if (level == 1 && pmd_is_huge(src[i])) {   /* never shared by odf */
                thp_fork_copy(m, x->child, &src[i], &dst[i], x->eager, (x->vma->prot & CS_PROT_WRITE) != 0);
                a = next;
                continue;
            }
            if (level == 1 && x->odf && span_shareable(x->parent, a & ~(span - 1), span)) {
                if (!(dst[i] & PTE_PRESENT))   /* once per span, however many regions */
                    odf_share(m, x->child, &src[i], &dst[i]);
                a = next;
                continue;
            }
            if (!(dst[i] & PTE_PRESENT)) {
                dst[i] = MK_PTE(table_alloc(m, x->child), PTE_PRESENT);
                x->child->st.fork_tables += level == 1;
            }
            uint64_t sc = PTE_FRAME(src[i]), dc = PTE_FRAME(dst[i]);
            if (level > 1)
                copy_rec(m, x, sc, dc, level - 1, a, next);
            else
                copy_leaf(m, x, table_of(m, sc), table_of(m, dc), entry_index(m, a, 0),
                          (next - a) >> m->page_shift);
        }
        a = next;
    }
}

/* vfork: no table is copied and nothing is write-protected; the child
 * borrows the parent's address space, and the parent is suspended until the
 * child execs or exits.  Only the child's record is new, so it needs no frame. */
static cs_status vfork(cs_machine *m, cs_proc *p, int32_t *child_out)
{
    cs_proc *c = proc_new(m, p->pid, 0, false);
    if (!c)
        return CS_EHOST;
    mm_move(c, p);
    c->lender = p->pid;
    p->borrower = c->pid;
    m->st.forks++;
    *child_out = c->pid;
    return CS_OK;
}

/* exit_mmap, for exit and exec: the address space goes, in the kernel's
 * order -- unmap_vmas, free_pgtables, then remove_vma -> fput releases the
 * shmem objects (the order decides which frames the LIFO free list hands out
 * next).  Tables shared with other processes (odf) are only let go. */
void mm_teardown(cs_machine *m, cs_proc *p)
{
    odf_detach_all(m, p);
    for (cs_vma *v = p->vma_first; v; v = v->next)
        zap_range(m, p, v->start, v->end);
    tables_free_all(m, p);
    vma_free_all(m, p);
}

cs_status cs_exec(cs_machine *m, int32_t pid)
{
    LOCK(m);
    cs_proc *p;
    cs_status st = proc_get(m, pid, &p);
    if (st)
        goto out;
    /* A borrowed space goes back whole; an own one is released first, so a
     * fresh root always fits then -- except for a vfork child on a full machine. */
    if (p->lender) {
        if (!frames_free(m)) {
            st = CS_ENOMEM;
            goto out;
        }
        mm_give_back(m, p);
    } else {
        mm_teardown(m, p);
    }
    p->root = table_alloc(m, p);
    if (p->tlb)
        tlb_flush_all(m, p);
out:
    UNLOCK(m);
    return st;
}

cs_status cs_fork(cs_machine *m, int32_t pid, cs_fork_mode mode, int32_t *child_out)
{
    if (mode != CS_FORK_COW && mode != CS_FORK_EAGER && mode != CS_FORK_VFORK && mode != CS_FORK_ODF)
        return CS_EINVAL;
    LOCK(m);
    cs_proc *p;
    cs_status st = proc_get(m, pid, &p);
    if (st)
        goto out;
    if (mode == CS_FORK_VFORK) {
        st = vfork(m, p, child_out);
        goto out;
    }
    fork_need need = {.eager = mode == CS_FORK_EAGER, .odf = mode == CS_FORK_ODF ? p : NULL};
    for (cs_vma *v = p->vma_first; v; v = v->next)
        if (vma_copies_entries(v))
            count_rec(m, p->root, m->levels - 1, v->start, v->end, &need);
    if (frames_free(m) < 1 + need.tables + need.pages) {   /* 1: the child's root */
        st = CS_ENOMEM;
        goto out;
    }
    cs_proc *c = proc_new(m, pid, p->nvmas, true);
    if (!c) {
        st = CS_EHOST;
        goto out;
    }
    fork_ctx x = {.parent = p, .child = c, .eager = need.eager, .odf = mode == CS_FORK_ODF};
    if (x.odf)
        m->odf_used = true;
    for (cs_vma *pv = p->vma_first; pv; pv = pv->next) {   /* dup_mmap */
        if (pv->flags & CS_VMA_DONTFORK)
            continue;   /* K3 */
        cs_vma *v = vma_alloc(c);   /* reserved by proc_new */
        *v = (cs_vma){.start = pv->start, .end = pv->end, .prot = pv->prot, .flags = pv->flags,
                      .obj = pv->obj, .pgoff = pv->pgoff};
        if (v->flags & CS_VMA_WIPEONFORK)
            v->flags &= ~CS_VMA_ANON_VMA;   /* K3: a clean slate */
        if (v->obj)
            v->obj->nvmas++;
        vma_link(c, v);
        if (vma_copies_entries(pv)) {
            x.vma = pv;
            copy_rec(m, &x, p->root, c->root, m->levels - 1, v->start, v->end);
        }
    }
    vma_trim_spares(c);   /* the nodes of don't-fork regions */
    if (!x.eager)
        tlb_flush_all(m, p);   /* dup_mmap -> flush_tlb_mm(oldmm) */
    m->st.forks++;
    *child_out = c->pid;
out:
    UNLOCK(m);
    return st;
}

cs_status cs_exit(cs_machine *m, int32_t pid)
{
    LOCK(m);
    cs_proc *p;
    cs_status st = proc_get(m, pid, &p);
    if (!st)
        proc_destroy(m, p);
    UNLOCK(m);
    return st;
}
