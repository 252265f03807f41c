/* pagetable.c -- multi-level radix page tables whose pages are frames.
 *
 * Level 0 tables hold the entries that map pages; a table at level l >= 1
 * holds entries pointing at tables of level l-1; the root is at levels-1. */
#include <string.h>
#include "internal.h"

uint64_t table_alloc(cs_machine *m, cs_proc *p)
{
    uint64_t f = frame_alloc(m, CS_FRAME_PAGETABLE);
    if (!f)
        return 0;
    uint64_t slot = m->tfree_head;   /* there is a slot for every frame */
    if (slot)
        m->tfree_head = m->tframe[slot];
    else
        slot = m->tbump++;
    m->tframe[slot] = (uint32_t)f;
    memset(table_of(m, slot), 0, (size_t)1 << m->page_shift);
    m->npt++;
    p->ntables++;
    return slot;
}

void table_free(cs_machine *m, cs_proc *p, uint64_t slot)
{
    m->npt--;
    p->ntables--;
    frame_put(m, m->tframe[slot]);
    m->tframe[slot] = (uint32_t)m->tfree_head;
    m->tfree_head = slot;
}

uint64_t *pte_lookup(cs_machine *m, cs_proc *p, uint64_t addr)
{
    uint64_t f = p->root;
    for (unsigned l = m->levels - 1; l > 0; l--) {
        uint64_t e = table_of(m, f)[entry_index(m, addr, l)];
        if ((e & (PTE_PRESENT | PMD_HUGE)) != PTE_PRESENT)
            return NULL;
        f = PTE_FRAME(e);
    }
    return &table_of(m, f)[entry_index(m, addr, 0)];
}

unsigned pte_missing_tables(cs_machine *m, cs_proc *p, uint64_t addr)
{
    uint64_t f = p->root;
    for (unsigned l = m->levels - 1; l > 0; l--) {
        uint64_t e = table_of(m, f)[entry_index(m, addr, l)];
        if (!(e & PTE_PRESENT))
            return l;   /* tables at levels l-1 .. 0 are missing */
        f = PTE_FRAME(e);
    }
    return 0;
}

/* Walks down to the level-0 entry, allocating missing tables.  The caller has
 * checked (pte_missing_tables) that enough frames are free. */
uint64_t *pte_alloc(cs_machine *m, cs_proc *p, uint64_t addr)
{
    uint64_t f = p->root;
    for (unsigned l = m->levels - 1; l > 0; l--) {
        uint64_t *e = &table_of(m, f)[entry_index(m, addr, l)];
        if (!(*e & PTE_PRESENT)) {
            uint64_t t = table_alloc(m, p);
            if (!t)
                return NULL;
            *e = MK_PTE(t, PTE_PRESENT);
        }
        f = PTE_FRAME(*e);
    }
    return &table_of(m, f)[entry_index(m, addr, 0)];
}

/* Walks down to the level-1 entry, allocating missing tables above level 0
 * (the caller has counted them). */
uint64_t *pmd_alloc(cs_machine *m, cs_proc *p, uint64_t addr)
{
    uint64_t f = p->root;
    for (unsigned l = m->levels - 1; l > 1; l--) {
        uint64_t *e = &table_of(m, f)[entry_index(m, addr, l)];
        if (!(*e & PTE_PRESENT))
            *e = MK_PTE(table_alloc(m, p), PTE_PRESENT);
        f = PTE_FRAME(*e);
    }
    return &table_of(m, f)[entry_index(m, addr, 1)];
}

uint64_t frame_at(cs_machine *m, cs_proc *p, uint64_t addr)
{
    uint64_t *pmd = pmd_lookup(m, p, addr);
    if (pmd && pmd_is_huge(*pmd)) {
        uint64_t b = huge_block(m, *pmd);
        return b ? b + entry_index(m, addr, 0) : ZERO_FRAME;
    }
    return PTE_FRAME(*pte_lookup(m, p, addr));
}

/* A huge entry seen as its pages: a scratch level-0 entry per page. */
static void walk_huge(cs_machine *m, cs_proc *p, uint64_t pmd, uint64_t s, uint64_t e, pte_visit_fn fn,
                      void *ctx)
{
    uint64_t b = huge_block(m, pmd);
    uint64_t flags = pmd & (PTE_PRESENT | PTE_WRITE | PTE_DIRTY);
    for (uint64_t a = s; a < e; a += 1ULL << m->page_shift) {
        uint64_t pte = b ? MK_PTE(b + entry_index(m, a, 0), flags) : MK_PTE(ZERO_FRAME, PTE_PRESENT);
        fn(m, p, &pte, pmd, a, ctx);
    }
}

static void walk_rec(cs_machine *m, cs_proc *p, uint64_t tf, unsigned level, uint64_t s,
                     uint64_t e, uint64_t pmd, pte_visit_fn fn, void *ctx, bool huge)
{
    uint64_t *t = table_of(m, tf);
    for (uint64_t a = s; a < e;) {
        uint64_t next = span_next(m, a, level, e);
        uint64_t *ent = &t[entry_index(m, a, level)];
        if (*ent & PTE_PRESENT) {
            if (level == 0)
                fn(m, p, ent, pmd, a, ctx);
            else if (level == 1 && pmd_is_huge(*ent)) {
                if (huge)
                    walk_huge(m, p, *ent, a, next, fn, ctx);
            } else
                walk_rec(m, p, PTE_FRAME(*ent), level - 1, a, next, *ent, fn, ctx, huge);
        }
        a = next;
    }
}

/* Calls fn for every present level-0 entry mapping an address in [start, end). */
void pte_walk(cs_machine *m, cs_proc *p, uint64_t start, uint64_t end, pte_visit_fn fn, void *ctx)
{
    if (p->root && start < end)
        walk_rec(m, p, p->root, m->levels - 1, start, end, 0, fn, ctx, true);
}

void pte_walk_small(cs_machine *m, cs_proc *p, uint64_t start, uint64_t end, pte_visit_fn fn, void *ctx)
{
    if (p->root && start < end)
        walk_rec(m, p, p->root, m->levels - 1, start, end, 0, fn, ctx, false);
}

uint64_t *pmd_lookup(cs_machine *m, cs_proc *p, uint64_t addr)
{
    uint64_t f = p->root;
    for (unsigned l = m->levels - 1; l > 1; l--) {
        uint64_t e = table_of(m, f)[entry_index(m, addr, l)];
        if (!(e & PTE_PRESENT))
            return NULL;
        f = PTE_FRAME(e);
    }
    return &table_of(m, f)[entry_index(m, addr, 1)];
}

static void pmd_walk_rec(cs_machine *m, cs_proc *p, uint64_t tf, unsigned level, uint64_t s,
                         uint64_t e, pmd_visit_fn fn, void *ctx)
{
    uint64_t *t = table_of(m, tf);
    uint64_t span = 1ULL << entry_shift(m, level);
    for (uint64_t a = s; a < e;) {
        uint64_t next = span_next(m, a, level, e);
        uint64_t *ent = &t[entry_index(m, a, level)];
        if (*ent & PTE_PRESENT) {
            if (level == 1)
                fn(m, p, ent, a & ~(span - 1), ctx);
            else
                pmd_walk_rec(m, p, PTE_FRAME(*ent), level - 1, a, next, fn, ctx);
        }
        a = next;
    }
}

/* Calls fn for every present level-1 entry whose span overlaps [start, end),
 * in address order (fn may clear the entry or point it elsewhere). */
void pmd_walk(cs_machine *m, cs_proc *p, uint64_t start, uint64_t end, pmd_visit_fn fn, void *ctx)
{
    if (p->root && start < end)
        pmd_walk_rec(m, p, p->root, m->levels - 1, start, end, fn, ctx);
}

static void free_unused_rec(cs_machine *m, cs_proc *p, uint64_t tf, unsigned level, uint64_t s,
                            uint64_t e)
{
    uint64_t *t = table_of(m, tf);
    uint64_t span = 1ULL << entry_shift(m, level);
    for (uint64_t a = s; a < e;) {
        uint64_t next = span_next(m, a, level, e);
        uint64_t *ent = &t[entry_index(m, a, level)];
        if (*ent & PTE_PRESENT) {
            uint64_t child = PTE_FRAME(*ent);
            uint64_t cs = a & ~(span - 1);
            if (level > 1)
                free_unused_rec(m, p, child, level - 1, a, next);
            /* M2: a table goes once no region remains in its span. */
            if (!vma_overlaps(p, cs, cs + span)) {
                table_free(m, p, child);
                *ent = 0;
            }
        }
        a = next;
    }
}

void tables_free_unused(cs_machine *m, cs_proc *p, uint64_t start, uint64_t end)
{
    if (p->root && m->levels > 1 && start < end)
        free_unused_rec(m, p, p->root, m->levels - 1, start, end);
}

static void free_all_rec(cs_machine *m, cs_proc *p, uint64_t tf, unsigned level)
{
    if (level > 0) {
        uint64_t *t = table_of(m, tf);
        for (uint64_t i = 0; i < m->epl; i++)
            if (t[i] & PTE_PRESENT)
                free_all_rec(m, p, PTE_FRAME(t[i]), level - 1);
    }
    table_free(m, p, tf);
}

/* Frees every table of p, the root included (exit).  Entries must be zapped. */
void tables_free_all(cs_machine *m, cs_proc *p)
{
    if (p->root)
        free_all_rec(m, p, p->root, m->levels - 1);
    p->root = 0;
}
