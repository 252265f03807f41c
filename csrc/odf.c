/* odf.c -- on-demand fork: last-level tables shared between processes.
 *
 * As in On-Demand-Fork (Zhao, Gong, Fonseca, EuroSys 2021): an odf fork
 * copies the upper levels of the tree only.  A level-1 entry whose span holds
 * nothing but regions a cow fork would copy entries of points the child at
 * the parent's level-0 table, and both entries get PMD_WP: the hardware ANDs
 * the write bit across levels, so every page below becomes read-only without
 * one level-0 entry being touched.  The table frame's reference count is the
 * number of processes holding it; the data pages below keep the counts of a
 * single mapping (one per table, not per process).
 *
 * Before a process changes a level-0 table it holds write-protected -- a write
 * fault in its span, or munmap, mprotect, madvise(DONTNEED) or mmap there --
 * it takes the table over when it is the sole holder (a reuse), and otherwise
 * copies it: the per-entry work a cow fork does (share each page,
 * write-protect both entries) done now, for this one table (a copy).  When a
 * munmap or DONTNEED would empty the whole table anyway, the process just
 * drops its reference.  Reads never copy: a read fault fills the shared table,
 * which is valid for every holder because any change to the regions of a
 * span unshares it first, so all holders of a table have the same regions
 * over its span. */
#include <stdlib.h>
#include "internal.h"

static inline uint64_t pmd_span(const cs_machine *m) { return 1ULL << entry_shift(m, 1); }

/* A span's table may be shared at fork when every region over it is one whose
 * entries a cow fork copies: then the child's view of the span is the
 * parent's, entry for entry. */
bool span_shareable(cs_proc *p, uint64_t span_start, uint64_t span)
{
    for (const cs_vma *v = vma_first_ending_after(p, span_start); v && v->start < span_start + span;
         v = v->next)
        if (!vma_copies_entries(v))
            return false;
    return true;
}

void odf_share(cs_machine *m, cs_proc *child, uint64_t *src_pmd, uint64_t *dst_pmd)
{
    frame_meta *tm = table_meta(m, PTE_FRAME(*src_pmd));
    if (tm->ref++ == 1)
        m->nshared_tables++;
    *src_pmd |= PMD_WP;
    *dst_pmd = *src_pmd;
    child->ntables++;
}

static void drop_holder(cs_machine *m, cs_proc *p, uint64_t *pmd)
{
    if (--table_meta(m, PTE_FRAME(*pmd))->ref == 1)
        m->nshared_tables--;
    p->ntables--;
}

/* Frames a write fault needs under the write-protected entry pmd: the
 * table's copy if it has other holders (then the page, shared by the copy,
 * needs one too), else what the page itself needs (do_wp_page / F3). */
unsigned odf_write_need(cs_machine *m, uint64_t pmd, uint64_t addr)
{
    if (table_meta(m, PTE_FRAME(pmd))->ref > 1)
        return 2;
    const uint64_t *t = table_of(m, PTE_FRAME(pmd));
    uint64_t i = entry_index(m, addr, 0), pte = t[i];
    if (!(pte & PTE_PRESENT))
        return 1;
    uint64_t f = PTE_FRAME(pte);
    if ((pte & PTE_WRITE) || f == ZERO_FRAME)
        return (pte & PTE_WRITE) ? 0 : 1;
    bool reuse = (m->fm[f].flags & CS_FRAME_HUGE) ? folio_reusable(m, t, i, f) : m->fm[f].ref == 1;
    return (m->fm[f].flags & CS_FRAME_EXCLUSIVE) || reuse ? 0 : 1;
}

/* Makes the table under *pmd (write-protected) p's own: taken over if p is
 * its sole holder, else copied, which needs one free frame.  Returns the
 * level-0 entry of addr in the table p now holds. */
uint64_t *odf_unshare(cs_machine *m, cs_proc *p, uint64_t *pmd, uint64_t addr)
{
    uint64_t slot = PTE_FRAME(*pmd);
    if (table_meta(m, slot)->ref == 1) {
        *pmd &= ~PMD_WP;   /* an upgrade: nothing to flush */
        p->st.table_reuses++;
        m->st.table_reuses++;
        return &table_of(m, slot)[entry_index(m, addr, 0)];
    }
    uint64_t ns = table_alloc(m, p);
    uint64_t *src = table_of(m, slot), *dst = table_of(m, ns);
    for (uint64_t i = 0; i < m->epl; i++) {
        if (src[i])   /* K2, for this table */
            dst[i] = PTE_FRAME(src[i]) == ZERO_FRAME ? src[i] : pte_share(m, &src[i]);
    }
    drop_holder(m, p, pmd);
    *pmd = MK_PTE(ns, PTE_PRESENT);
    uint64_t s = addr & ~(pmd_span(m) - 1);
    tlb_flush_range(m, p, s, s + pmd_span(m));   /* the span's tables changed */
    p->st.table_copies++;
    m->st.table_copies++;
    return &dst[entry_index(m, addr, 0)];
}

/* ---- range operations: unshare every write-protected table over a range ---- */

typedef struct {
    uint64_t start, end;   /* the range about to change */
    bool zap;              /* munmap / DONTNEED: entries in the range go */
    bool apply;            /* false: only count the frames needed */
    uint64_t need;
    uint64_t counted;      /* last span counted (spans seen twice count once) */
} prepare_ctx;

/* Would the zap of [start, end) empty the span?  Entries lie in regions only,
 * so it does when no region covers the rest of the span. */
static bool zap_empties_span(cs_proc *p, uint64_t s, uint64_t span, uint64_t start, uint64_t end)
{
    if (start > s && vma_overlaps(p, s, start))
        return false;
    return !(end < s + span && vma_overlaps(p, end, s + span));
}

static void prepare_pmd(cs_machine *m, cs_proc *p, uint64_t *pmd, uint64_t s, void *vctx)
{
    prepare_ctx *c = vctx;
    if (!(*pmd & PMD_WP))
        return;
    uint64_t lo = s > c->start ? s : c->start, hi = s + pmd_span(m) < c->end ? s + pmd_span(m) : c->end;
    if (c->zap && !vma_overlaps(p, lo, hi))
        return;   /* nothing of this span is zapped */
    bool shared = table_meta(m, PTE_FRAME(*pmd))->ref > 1;
    if (shared && c->zap && zap_empties_span(p, s, pmd_span(m), c->start, c->end)) {
        if (c->apply) {
            drop_holder(m, p, pmd);
            *pmd = 0;
            tlb_flush_range(m, p, s, s + pmd_span(m));
        }
        return;
    }
    if (!c->apply) {
        c->need += shared && c->counted != s;
        c->counted = s;
    } else
        odf_unshare(m, p, pmd, s);
}

/* Frames odf_prepare will need.  *last carries the last span counted from
 * one call to the next (UINT64_MAX at first), for callers that count several
 * ranges in address order; NULL for one range. */
uint64_t odf_prepare_need(cs_machine *m, cs_proc *p, uint64_t start, uint64_t end, bool zap,
                          uint64_t *last)
{
    prepare_ctx c = {.start = start, .end = end, .zap = zap, .counted = last ? *last : UINT64_MAX};
    if (m->odf_used)
        pmd_walk(m, p, start, end, prepare_pmd, &c);
    if (last)
        *last = c.counted;
    return c.need;
}

/* Unshares (or, for a zap that empties a whole span, drops) every
 * write-protected table over [start, end); odf_prepare_need frames must be free. */
void odf_prepare(cs_machine *m, cs_proc *p, uint64_t start, uint64_t end, bool zap)
{
    prepare_ctx c = {.start = start, .end = end, .zap = zap, .apply = true};
    if (m->odf_used)
        pmd_walk(m, p, start, end, prepare_pmd, &c);
}

static void detach_pmd(cs_machine *m, cs_proc *p, uint64_t *pmd, uint64_t s UNUSED, void *ctx UNUSED)
{
    if ((*pmd & PMD_WP) && table_meta(m, PTE_FRAME(*pmd))->ref > 1) {
        drop_holder(m, p, pmd);
        *pmd = 0;
    }
}

/* exit / exec: drop every table other processes still hold; the rest is
 * zapped and freed as usual. */
void odf_detach_all(cs_machine *m, cs_proc *p)
{
    if (m->odf_used)
        pmd_walk(m, p, 0, m->user_end, detach_pmd, NULL);
}

/* ---- accounting: a page's mappings, process by process ---- */

typedef struct {
    uint32_t *lmap;
    uint8_t *seen;   /* per table slot */
} logical_ctx;

static void add_sharers(cs_machine *m, cs_proc *p UNUSED, uint64_t *pmd, uint64_t s UNUSED, void *vctx)
{
    logical_ctx *c = vctx;
    uint64_t slot = PTE_FRAME(*pmd);
    uint32_t extra = table_meta(m, slot)->ref - 1;
    if (!extra || c->seen[slot])
        return;
    c->seen[slot] = 1;
    uint64_t *t = table_of(m, slot);
    for (uint64_t i = 0; i < m->epl; i++)
        if ((t[i] & PTE_PRESENT) && PTE_FRAME(t[i]) != ZERO_FRAME)
            c->lmap[PTE_FRAME(t[i])] += extra;
}

/* The number of (process, entry) pairs mapping each frame -- what smaps
 * calls the mapcount -- when tables are shared: a frame's own mapcount counts
 * tables, and a table held by k processes maps its pages k times. */
cs_status odf_logical_mapcounts(cs_machine *m, uint32_t **out)
{
    *out = NULL;
    if (!m->nshared_tables)
        return CS_OK;
    logical_ctx c = {calloc(m->bump, sizeof *c.lmap), calloc(m->tbump, 1)};
    if (!c.lmap || !c.seen) {
        free(c.lmap);
        free(c.seen);
        return CS_EHOST;
    }
    for (uint64_t f = 1; f < m->bump; f++)
        c.lmap[f] = m->fm[f].ref ? m->fm[f].mapc : 0;
    cs_proc *p;
    pidmap_for_each(&m->pids, p) {
        if (!p->exited)
            pmd_walk(m, p, 0, m->user_end, add_sharers, &c);
    }
    free(c.seen);
    *out = c.lmap;
    return CS_OK;
}
