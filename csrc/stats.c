/* stats.c -- statistics and inspection: counters, smaps, regions, tables. */
#include <stdlib.h>
#include <string.h>
#include "internal.h"

/* fs/proc/task_mmu.c: PSS is summed in bytes << PSS_SHIFT, so that a page
 * shared by N processes adds size / N without losing the fraction. */
#define PSS_SHIFT 12

cs_status cs_machine_stats_get(cs_machine *m, cs_machine_stats *out)
{
    LOCK(m);
    *out = m->st;
    out->frames_total = m->nframes - 1;
    out->frames_used = m->nused;
    out->frames_free = frames_free(m);
    out->page_table_frames = m->npt;
    out->data_frames = m->nused - m->npt;
    out->shared_objects = m->nobjs;
    out->processes = m->nlive;
    out->process_records = m->pids.count;
    out->pid_map_slots = m->pids.cap;
    out->page_tables_shared = m->nshared_tables;
    out->page_cache_frames = m->ncache;
    out->page_cache_dirty = m->ncache_dirty;
    out->files = m->nfiles;
    UNLOCK(m);
    return CS_OK;
}

static void count_shared(cs_machine *m, cs_proc *p UNUSED, uint64_t *pmd, uint64_t s UNUSED, void *ctx)
{
    if (table_meta(m, PTE_FRAME(*pmd))->ref > 1)
        ++*(uint64_t *)ctx;
}

cs_status cs_proc_stats_get(cs_machine *m, int32_t pid, cs_proc_stats *out)
{
    LOCK(m);
    cs_proc *p;
    cs_status st = proc_get(m, pid, &p);
    if ((st == CS_EEXITED || st == CS_ESUSPENDED) && (p = pidmap_find(&m->pids, pid)))
        st = CS_OK;   /* final (while held) or frozen counters stay readable */
    if (!st) {
        *out = p->st;
        out->page_table_frames = p->ntables;
        out->page_tables_shared = 0;
        if (m->nshared_tables)
            pmd_walk(m, p, 0, m->user_end, count_shared, &out->page_tables_shared);
    }
    UNLOCK(m);
    return st;
}

/* smaps_account / smaps_page_accumulate, for one page each. */
typedef struct {
    uint64_t rss, pss, pss_dirty, pss_anon, pss_shmem, pss_file;
    uint64_t shared_clean, shared_dirty, private_clean, private_dirty, anonymous, anon_huge;
    const uint32_t *lmap;   /* mapcounts per process when odf tables are shared */
} mem_size_stats;

/* A page under a huge entry comes as a scratch entry with pmd's PMD_HUGE:
 * smaps_account's per-subpage loop, each subpage with its own mapcount. */
static void smaps_pte(cs_machine *m UNUSED, cs_proc *p UNUSED, uint64_t *pte, uint64_t pmd, uint64_t addr UNUSED,
                      void *ctx UNUSED)
{
    mem_size_stats *s = ctx;
    uint64_t f = PTE_FRAME(*pte);
    if (f == ZERO_FRAME)
        return;
    uint64_t size = (uint64_t)1 << m->page_shift;
    uint32_t mc = s->lmap ? s->lmap[f] : m->fm[f].mapc;
    uint64_t pss = size << PSS_SHIFT;   /* fixed point, as smaps_page_accumulate */
    if (mc >= 2)
        pss /= mc;
    bool dirty = (*pte & PTE_DIRTY) || (m->fm[f].flags & CS_FRAME_DIRTY);
    s->rss += size;
    s->pss += pss;
    if (pmd_is_huge(pmd))
        s->anon_huge += size;   /* smaps_pmd_entry: HPAGE_PMD_SIZE, a page at a time */
    if (m->fm[f].flags & CS_FRAME_ANON) {
        s->anonymous += size;
        s->pss_anon += pss;
    } else if (m->fm[f].flags & CS_FRAME_FILE) {
        s->pss_file += pss;
    } else {
        s->pss_shmem += pss;
    }
    if (dirty) {
        s->pss_dirty += pss;
        if (mc >= 2)
            s->shared_dirty += size;
        else
            s->private_dirty += size;
    } else if (mc >= 2) {
        s->shared_clean += size;
    } else {
        s->private_clean += size;
    }
}

cs_status cs_smaps_get(cs_machine *m, int32_t pid, int32_t whole, uint64_t addr, cs_smaps *out)
{
    LOCK(m);
    cs_proc *p;
    cs_status st = proc_get(m, pid, &p);
    if (st)
        goto out;
    mem_size_stats s;
    memset(&s, 0, sizeof s);
    uint32_t *lmap;
    if ((st = odf_logical_mapcounts(m, &lmap)))
        goto out;
    s.lmap = lmap;
    if (whole) {
        for (cs_vma *v = p->vma_first; v; v = v->next)
            pte_walk(m, p, v->start, v->end, smaps_pte, &s);
    } else {
        cs_vma *v = vma_find(p, addr);
        if (!v) {
            free(lmap);
            st = CS_ENOTMAPPED;
            goto out;
        }
        pte_walk(m, p, v->start, v->end, smaps_pte, &s);
    }
    free(lmap);
    /* Printed in kB; pss values carry PSS_SHIFT fraction bits until printed. */
    out->Rss = s.rss >> 10;
    out->Pss = s.pss >> (PSS_SHIFT + 10);
    out->Pss_Dirty = s.pss_dirty >> (PSS_SHIFT + 10);
    out->Pss_Anon = s.pss_anon >> (PSS_SHIFT + 10);
    out->Pss_Shmem = s.pss_shmem >> (PSS_SHIFT + 10);
    out->Shared_Clean = s.shared_clean >> 10;
    out->Shared_Dirty = s.shared_dirty >> 10;
    out->Private_Clean = s.private_clean >> 10;
    out->Private_Dirty = s.private_dirty >> 10;
    out->Anonymous = s.anonymous >> 10;
    out->AnonHugePages = s.anon_huge >> 10;
    out->Pss_File = s.pss_file >> (PSS_SHIFT + 10);
out:
    UNLOCK(m);
    return st;
}

/* The mm's RSS counters (MM_ANONPAGES, MM_FILEPAGES, MM_SHMEMPAGES): one per
 * present entry of a real frame; VmPTE: the tables below the root. */
static void status_pte(cs_machine *m, cs_proc *p UNUSED, uint64_t *pte, uint64_t pmd UNUSED, uint64_t addr UNUSED,
                       void *ctx)
{
    uint64_t *c = ctx, f = PTE_FRAME(*pte);
    if (f == ZERO_FRAME)
        return;
    uint8_t fl = m->fm[f].flags;
    c[(fl & CS_FRAME_ANON) ? 0 : (fl & CS_FRAME_FILE) ? 1 : 2]++;
}

cs_status cs_status_mem_get(cs_machine *m, int32_t pid, cs_status_mem *out)
{
    LOCK(m);
    cs_proc *p;
    cs_status st = proc_get(m, pid, &p);
    if (!st) {
        uint64_t c[3] = {0, 0, 0}, kb = ((uint64_t)1 << m->page_shift) >> 10;
        pte_walk(m, p, 0, m->user_end, status_pte, c);
        out->RssAnon = c[0] * kb;
        out->RssFile = c[1] * kb;
        out->RssShmem = c[2] * kb;
        out->VmRSS = out->RssAnon + out->RssFile + out->RssShmem;
        out->VmPTE = p->ntables ? (p->ntables - 1) * kb : 0;
    }
    UNLOCK(m);
    return st;
}

cs_status cs_regions(cs_machine *m, int32_t pid, cs_region *out, size_t cap, size_t *count)
{
    LOCK(m);
    cs_proc *p;
    cs_status st = proc_get(m, pid, &p);
    if (!st) {
        size_t i = 0;
        for (cs_vma *v = p->vma_first; v && i < cap; v = v->next, i++) {
            out[i].start = v->start;
            out[i].end = v->end;
            out[i].prot = v->prot;
            out[i].flags = v->flags;
            out[i].file = v->obj && v->obj->id ? v->obj->id : 0;
            out[i].offset = out[i].file ? v->pgoff << m->page_shift : 0;
        }
        *count = p->nvmas;
    }
    UNLOCK(m);
    return st;
}

/* CS_PTE_* of an entry as the hardware sees it: writable only if the
 * level-1 entry above does not write-protect it (odf). */
static uint8_t pte_flags(uint64_t pte, uint64_t pmd)
{
    return (((pte & PTE_WRITE) && !(pmd & PMD_WP)) ? CS_PTE_WRITE : 0) | ((pte & PTE_DIRTY) ? CS_PTE_DIRTY : 0);
}

cs_status cs_translate(cs_machine *m, int32_t pid, uint64_t addr, cs_translation *out)
{
    LOCK(m);
    cs_proc *p;
    cs_status st = proc_get(m, pid, &p);
    if (!st) {
        memset(out, 0, sizeof *out);
        uint64_t *pmd = addr < m->user_end ? pmd_lookup(m, p, addr) : NULL;
        uint64_t *pte = addr < m->user_end ? pte_lookup(m, p, addr) : NULL;
        if (pmd && pmd_is_huge(*pmd)) {
            out->present = 1;
            out->frame = frame_at(m, p, addr);
            out->flags = pte_flags(*pmd, 0);
        } else if (pte && (*pte & PTE_PRESENT)) {
            out->present = 1;
            out->frame = PTE_FRAME(*pte);
            out->flags = pte_flags(*pte, *pmd_lookup(m, p, addr));
        }
    }
    UNLOCK(m);
    return st;
}

typedef struct {
    uint64_t *vpages, *frames;
    uint8_t *flags;
    size_t cap, n;
} pt_listing;

static void list_pte(cs_machine *m UNUSED, cs_proc *p UNUSED, uint64_t *pte, uint64_t pmd, uint64_t addr UNUSED,
                     void *ctx UNUSED)
{
    pt_listing *l = ctx;
    if (l->n < l->cap) {
        l->vpages[l->n] = addr >> m->page_shift;
        l->frames[l->n] = PTE_FRAME(*pte);
        l->flags[l->n] = pte_flags(*pte, pmd);
    }
    l->n++;
}

cs_status cs_page_table(cs_machine *m, int32_t pid, uint64_t *vpages, uint64_t *frames,
                        uint8_t *flags, size_t cap, size_t *count)
{
    LOCK(m);
    cs_proc *p;
    cs_status st = proc_get(m, pid, &p);
    if (!st) {
        pt_listing l = {vpages, frames, flags, cap, 0};
        pte_walk(m, p, 0, m->user_end, list_pte, &l);
        *count = l.n;
    }
    UNLOCK(m);
    return st;
}

cs_status cs_frames(cs_machine *m, uint64_t *frames, uint32_t *refcounts, uint32_t *mapcounts,
                    uint8_t *flags, size_t cap, size_t *count)
{
    LOCK(m);
    size_t n = 0;
    for (uint64_t f = 1; f < m->bump; f++) {
        if (!m->fm[f].ref)
            continue;
        if (n < cap) {
            frames[n] = f;
            refcounts[n] = m->fm[f].ref;
            mapcounts[n] = m->fm[f].mapc;
            flags[n] = m->fm[f].flags;
        }
        n++;
    }
    *count = n;
    UNLOCK(m);
    return CS_OK;
}
