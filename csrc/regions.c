/* regions.c -- per-process regions (VMAs): mmap, munmap, mprotect, madvise.
 *
 * A process keeps its regions in a balanced tree augmented with free gaps,
 * plus a list in address order (cs_vma): lookup, insertion, removal, a split
 * and the top-down search for a free range are O(log n).  Splits happen at
 * range boundaries; regions are never merged (vma_merge is not modelled). */
#include <stdlib.h>
#include <string.h>
#include "internal.h"

/* ---- the region tree (mm_rb before Linux 6.1, with an AVL balance) ---- */

static inline int32_t vma_height(const cs_vma *v) { return v ? v->height : 0; }
static inline uint64_t vma_subtree_gap(const cs_vma *v) { return v ? v->subtree_gap : 0; }

/* vma_compute_gap: the free range just below v (from 0 for the first). */
static inline uint64_t vma_gap(const cs_vma *v) { return v->start - (v->prev ? v->prev->end : 0); }

/* vma_compute_subtree_gap, and the height. */
static void vma_fix(cs_vma *v)
{
    int32_t hl = vma_height(v->left), hr = vma_height(v->right);
    uint64_t g = vma_gap(v), gl = vma_subtree_gap(v->left), gr = vma_subtree_gap(v->right);
    v->height = 1 + (hl > hr ? hl : hr);
    v->subtree_gap = g > gl ? (g > gr ? g : gr) : (gl > gr ? gl : gr);
}

static void vma_replace_child(cs_proc *p, cs_vma *parent, cs_vma *old, cs_vma *new)
{
    if (!parent)
        p->vma_root = new;
    else if (parent->left == old)
        parent->left = new;
    else
        parent->right = new;
    if (new)
        new->parent = parent;
}

/* x's child on side `right` takes x's place; x becomes its child.  Returns it. */
static cs_vma *vma_rotate(cs_proc *p, cs_vma *x, bool right)
{
    cs_vma *y = right ? x->left : x->right, *mid = right ? y->right : y->left;
    if (right) {
        x->left = mid;
        y->right = x;
    } else {
        x->right = mid;
        y->left = x;
    }
    if (mid)
        mid->parent = x;
    vma_replace_child(p, x->parent, x, y);
    x->parent = y;
    vma_fix(x);
    vma_fix(y);
    return y;
}

/* From v up to the root: heights and gaps recomputed (vma_gap_update), the
 * balance restored on the way (rb_insert_augmented / rb_erase_augmented). */
static void vma_retrace(cs_proc *p, cs_vma *v)
{
    for (; v; v = v->parent) {
        vma_fix(v);
        int32_t bf = vma_height(v->left) - vma_height(v->right);
        if (bf > 1) {
            if (vma_height(v->left->left) < vma_height(v->left->right))
                vma_rotate(p, v->left, false);
            v = vma_rotate(p, v, true);
        } else if (bf < -1) {
            if (vma_height(v->right->right) < vma_height(v->right->left))
                vma_rotate(p, v->right, true);
            v = vma_rotate(p, v, false);
        }
    }
}

/* find_vma: the first region ending above addr. */
cs_vma *vma_first_ending_after(const cs_proc *p, uint64_t addr)
{
    cs_vma *n = p->vma_root, *best = NULL;
    while (n) {
        if (n->end > addr) {
            best = n;
            if (n->start <= addr)
                break;
            n = n->left;
        } else {
            n = n->right;
        }
    }
    return best;
}

cs_vma *vma_find(cs_proc *p, uint64_t addr)
{
    cs_vma *v = p->vma_hint;   /* accesses cluster: try the last region found first */
    if (v && v->start <= addr && addr < v->end)
        return v;
    if (v && addr >= v->end && (v = v->next) && v->start <= addr && addr < v->end) {
        p->vma_hint = v;   /* the one above it: a scan across regions */
        return v;
    }
    v = vma_first_ending_after(p, addr);
    if (v && v->start <= addr) {
        p->vma_hint = v;
        return v;
    }
    return NULL;
}

bool vma_overlaps(const cs_proc *p, uint64_t start, uint64_t end)
{
    cs_vma *v = vma_first_ending_after(p, start);
    return v && v->start < end;
}

/* Preallocates the nodes an operation may need (mas_preallocate), so that
 * after it nothing can fail; the spares stay with the process. */
bool vma_reserve(cs_proc *p, size_t n)
{
    while (p->nspare < n) {
        cs_vma *v = malloc(sizeof *v);   /* vm_area_alloc */
        if (!v)
            return false;
        v->next = p->vma_spare;
        p->vma_spare = v;
        p->nspare++;
    }
    return true;
}

cs_vma *vma_alloc(cs_proc *p)
{
    cs_vma *v = p->vma_spare;
    p->vma_spare = v->next;
    p->nspare--;
    return v;
}

/* vm_area_free: back to the spares, or to the host. */
static void vma_free(cs_proc *p, cs_vma *v)
{
    if (p->nspare >= VMA_SPARES_KEPT) {
        free(v);
        return;
    }
    v->next = p->vma_spare;
    p->vma_spare = v;
    p->nspare++;
}

void vma_trim_spares(cs_proc *p)
{
    while (p->nspare > VMA_SPARES_KEPT)
        free(vma_alloc(p));
}

/* vma_link: into the list and the tree (as a leaf, then rebalanced).  Its
 * neighbours in address order are its ancestors, so the retrace also
 * updates the gap of the region above it. */
void vma_link(cs_proc *p, cs_vma *v)
{
    cs_vma *parent = NULL, **link = &p->vma_root, *prev = NULL, *next = NULL;
    while (*link) {
        parent = *link;
        if (v->start < parent->start) {
            next = parent;
            link = &parent->left;
        } else {
            prev = parent;
            link = &parent->right;
        }
    }
    *link = v;
    v->parent = parent;
    v->left = v->right = NULL;
    v->prev = prev;
    v->next = next;
    if (prev)
        prev->next = v;
    else
        p->vma_first = v;
    if (next)
        next->prev = v;
    else
        p->vma_last = v;
    p->nvmas++;
    vma_retrace(p, v);
}

/* __vma_unlink_list + vma_rb_erase: a node with two children is replaced by
 * its successor, moved as a node (pointers to regions stay valid). */
static void vma_unlink(cs_proc *p, cs_vma *v)
{
    cs_vma *next = v->next, *from;
    if (v->prev)
        v->prev->next = next;
    else
        p->vma_first = next;
    if (next)
        next->prev = v->prev;
    else
        p->vma_last = v->prev;
    if (!v->left || !v->right) {
        vma_replace_child(p, v->parent, v, v->left ? v->left : v->right);
        from = v->parent;
    } else {
        cs_vma *s = next;   /* leftmost of the right subtree: no left child */
        if (s->parent != v) {
            from = s->parent;
            vma_replace_child(p, s->parent, s, s->right);
            s->right = v->right;
            s->right->parent = s;
        } else {
            from = s;
        }
        s->left = v->left;
        s->left->parent = s;
        vma_replace_child(p, v->parent, v, s);
    }
    p->nvmas--;
    if (p->vma_hint == v)
        p->vma_hint = NULL;
    vma_retrace(p, from);
    for (cs_vma *n = next; n; n = n->parent)   /* the gap below the next one grew */
        vma_fix(n);
}

void shobj_put(cs_machine *m, cs_shobj *o)
{
    if (--o->nvmas)
        return;
    if (o->id) {   /* a file: its cache stays, unless it was deleted (FD1) */
        if (o->unlinked)
            file_free(m, o);
        return;
    }
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

/* remove_vma */
void vma_remove(cs_machine *m, cs_proc *p, cs_vma *v)
{
    if (v->obj)
        shobj_put(m, v->obj);
    vma_unlink(p, v);
    vma_free(p, v);
}

/* exit_mmap's remove_vma loop: every region in address order; the tree is
 * dropped whole. */
void vma_free_all(cs_machine *m, cs_proc *p)
{
    for (cs_vma *v = p->vma_first, *n; v; v = n) {
        n = v->next;
        if (v->obj)
            shobj_put(m, v->obj);
        free(v);
    }
    p->vma_root = p->vma_first = p->vma_last = p->vma_hint = NULL;
    p->nvmas = 0;
}

void vma_release(cs_proc *p)
{
    for (cs_vma *v = p->vma_first, *n; v; v = n) {
        n = v->next;
        free(v);
    }
    p->vma_root = p->vma_first = p->vma_last = p->vma_hint = NULL;
    p->nvmas = 0;
    while (p->nspare)
        free(vma_alloc(p));
}

/* __split_vma: v keeps [start, at), a new node (reserved) takes [at, end). */
static void vma_split(cs_machine *m, cs_proc *p, cs_vma *v, uint64_t at)
{
    cs_vma *hi = vma_alloc(p);
    hi->start = at;
    hi->end = v->end;
    hi->prot = v->prot;
    hi->flags = v->flags;
    hi->obj = v->obj;
    hi->pgoff = v->pgoff;
    if (hi->obj) {
        hi->pgoff += (at - v->start) >> m->page_shift;
        hi->obj->nvmas++;
    }
    v->end = at;
    vma_link(p, hi);
    if (hi->flags & CS_VMA_HUGE)
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
        uint64_t next = span_next(m, a, level, e);
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
    uint64_t at = start;
    for (const cs_vma *v = vma_first_ending_after(p, start); v && at < end; v = v->next) {
        if (v->start > at)
            return false;
        at = v->end;
    }
    return at >= end;
}

/* Splits so that [start, end) boundaries fall on region edges for region v;
 * returns the part inside the range. */
static cs_vma *vma_isolate(cs_machine *m, cs_proc *p, cs_vma *v, uint64_t start, uint64_t end)
{
    if (v->start < start) {
        vma_split(m, p, v, start);
        v = v->next;
    }
    if (v->end > end)
        vma_split(m, p, v, end);
    return v;
}

/* ---- mmap ---- */

/* unmapped_area_topdown: the top of the highest free range of len bytes or
 * more in [lo_limit, hi_limit) (regions lie inside it).  Above the last
 * region first; then down the tree by subtree_gap: right subtree, the gap
 * below the node, left subtree.  Only the first region's gap is counted from
 * 0 rather than lo_limit, and it is the last candidate: reaching it and
 * failing means nothing fits. */
static bool find_free_range(const cs_proc *p, uint64_t len, uint64_t lo_limit, uint64_t hi_limit,
                            uint64_t *out)
{
    uint64_t lo = p->vma_last ? p->vma_last->end : lo_limit;
    if (hi_limit > lo && hi_limit - lo >= len) {
        *out = hi_limit - len;
        return true;
    }
    const cs_vma *v = p->vma_root;
    if (!v || v->subtree_gap < len)
        return false;
    for (;;) {
        if (vma_subtree_gap(v->right) >= len) {
            v = v->right;
            continue;
        }
        lo = v->prev ? v->prev->end : lo_limit;
        if (v->start > lo && v->start - lo >= len) {
            *out = v->start - len;
            return true;
        }
        if (vma_subtree_gap(v->left) < len)
            return false;
        v = v->left;
    }
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

/* do_mmap: an anonymous region (file 0) or a mapping of file `file` from
 * byte `offset`. */
static cs_status do_mmap(cs_machine *m, int32_t pid, uint64_t addr, uint64_t len, int32_t prot,
                         int32_t flags, int32_t file, uint64_t offset, uint64_t *addr_out)
{
    if (prot != CS_PROT_NONE && prot != CS_PROT_READ && prot != (CS_PROT_READ | CS_PROT_WRITE))
        return CS_EINVAL;
    if ((flags & ~(CS_MAP_SHARED | CS_VMA_HUGE)) ||
        ((flags & CS_VMA_HUGE) && ((flags & CS_MAP_SHARED) || file || m->page_shift != PAGE_SHIFT_4K)))
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
    cs_shobj *fo = NULL;
    if (file) {
        if ((st = file_get(m, file, &fo)))
            goto out;
        /* the offset in pages, and the region's last page, stay far from overflow */
        if ((offset & mask) || (offset >> m->page_shift) + (rlen >> m->page_shift) > (UINT64_MAX >> 2)) {
            st = CS_EINVAL;
            goto out;
        }
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
    cs_shobj *obj = fo;
    if (fo) {
        fo->nvmas++;
        flags |= CS_VMA_FILE;
    } else if (flags & CS_MAP_SHARED) {
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
        obj = o;
    }
    odf_prepare(m, p, addr, addr + rlen, false);
    cs_vma *v = vma_alloc(p);
    *v = (cs_vma){.start = addr, .end = addr + rlen, .prot = (int16_t)prot, .flags = (int16_t)flags, .obj = obj,
                  .pgoff = fo ? offset >> m->page_shift : 0};
    vma_link(p, v);
    *addr_out = addr;
out:
    UNLOCK(m);
    return st;
}

cs_status cs_mmap(cs_machine *m, int32_t pid, uint64_t addr, uint64_t len, int32_t prot,
                  int32_t flags, uint64_t *addr_out)
{
    return do_mmap(m, pid, addr, len, prot, flags, 0, 0, addr_out);
}

cs_status cs_mmap_file(cs_machine *m, int32_t pid, uint64_t addr, uint64_t len, int32_t prot,
                       int32_t flags, int32_t file, uint64_t offset, uint64_t *addr_out)
{
    if (file <= 0)
        return CS_ENOFILE;
    return do_mmap(m, pid, addr, len, prot, flags, file, offset, addr_out);
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
    for (cs_vma *v = vma_first_ending_after(p, addr); v && v->start < end; v = v->next)
        nobj += v->obj != NULL;
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
    cs_vma *v = vma_first_ending_after(p, addr);
    if (v && v->start < addr) {
        vma_split(m, p, v, addr);
        v = v->next;
    }
    cs_vma *last = vma_first_ending_after(p, end - 1);
    if (last && last->start < end && last->end > end)
        vma_split(m, p, last, end);
    if (v && v->start < end) {   /* nothing mapped: nothing to flush */
        zap_range(m, p, addr, end);
        tlb_flush_range(m, p, addr, end);
    }
    size_t k = 0;
    while (v && v->start < end) {
        cs_vma *n = v->next;
        if (v->obj)
            objs[k++] = v->obj;
        v->obj = NULL;
        vma_remove(m, p, v);
        v = n;
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

/* can_change_pte_writable for a shared file mapping (write-notify): only a
 * dirty entry may become writable; a clean one must fault first. */
static void pte_mkwrite_shared_file(cs_machine *m UNUSED, cs_proc *p UNUSED, uint64_t *pte, uint64_t pmd UNUSED,
                                    uint64_t addr UNUSED, void *ctx UNUSED)
{
    if (*pte & PTE_DIRTY)
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
        for (cs_vma *v = vma_first_ending_after(p, addr); v && v->start < end; v = v->next) {
            if (v->prot == prot)
                continue;
            uint64_t s = v->start > addr ? v->start : addr;
            uint64_t e = v->end < end ? v->end : end;
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
    for (cs_vma *v = vma_first_ending_after(p, addr); v && v->start < end; v = v->next) {
        if (v->prot == prot)
            continue;   /* mprotect_fixup: unchanged regions are not split */
        v = vma_isolate(m, p, v, addr, end);
        v->prot = (int16_t)prot;
        pte_visit_fn fn = pte_wrprotect;
        if (prot & CS_PROT_WRITE)
            fn = !(v->flags & CS_MAP_SHARED) ? pte_mkwrite_private
                 : vma_is_file(v)             ? pte_mkwrite_shared_file
                                              : pte_mkwrite_shared;
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
    case CS_ADV_RANDOM: set = CS_VMA_RANDOM; break;
    case CS_ADV_NORMAL: clear = CS_VMA_RANDOM; break;
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
    cs_vma *first = vma_first_ending_after(p, addr);
    if (set == CS_VMA_WIPEONFORK) {
        /* MADV_WIPEONFORK is for private anonymous memory only (EINVAL). */
        for (cs_vma *v = first; v && v->start < end; v = v->next)
            if (v->flags & (CS_MAP_SHARED | CS_VMA_FILE)) {
                st = CS_ESHARED;
                goto out;
            }
    }
    if (!vma_reserve(p, 2)) {
        st = CS_EHOST;
        goto out;
    }
    for (cs_vma *v = first; v && v->start < end; v = v->next) {
        int32_t nf = (v->flags | set) & ~clear;
        if (nf == v->flags)
            continue;   /* madvise_update_vma: unchanged regions are not split */
        v = vma_isolate(m, p, v, addr, end);
        v->flags = (int16_t)nf;
    }
out:
    UNLOCK(m);
    return st;
}
