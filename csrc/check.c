/* check.c -- the full invariant check that tests run after every step.
 *
 * Recomputes every reference count and map count from the page tables and
 * shmem objects and compares them with the allocator's arrays, and checks
 * the rules the fault handler and fork must keep (no writable entry to a
 * shared anonymous page, entries only inside regions, ...). */
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include "internal.h"

typedef struct {
    cs_machine *m;
    uint32_t *ref, *map;
    uint32_t *blk;        /* THP: free-listed frames per 512-frame block */
    uint8_t *wpriv;       /* data frame: mapped writable in a private region;
                             table frame: held through an entry without PMD_WP */
    uint64_t tables;      /* distinct table frames */
    uint64_t held;        /* tables held by the process being checked */
    char *msg;
    size_t msglen;
    bool failed;
} checker;

static bool fail(checker *c, const char *fmt, ...)
{
    if (!c->failed) {
        va_list ap;
        va_start(ap, fmt);
        vsnprintf(c->msg, c->msglen, fmt, ap);
        va_end(ap);
        c->failed = true;
    }
    return false;
}

/* One level-0 entry as seen by p.  `count`: the first visit of its table (a
 * table shared by odf is checked against every holder's regions, counted once). */
static bool check_leaf(checker *c, cs_proc *p, uint64_t addr, uint64_t e, uint64_t pmd, bool count)
{
    cs_machine *m = c->m;
    uint64_t f = PTE_FRAME(e);
    cs_vma *v = vma_find(p, addr);
    if (!v)
        return fail(c, "pid %d: entry for 0x%llx outside every region", p->pid, (unsigned long long)addr);
    if ((e & PTE_WRITE) && !(v->prot & CS_PROT_WRITE))
        return fail(c, "pid %d: writable entry at 0x%llx in a read-only region", p->pid, (unsigned long long)addr);
    if ((pmd & PMD_WP) && (v->flags & CS_MAP_SHARED))
        return fail(c, "pid %d: shared region at 0x%llx under a write-protected table", p->pid,
                    (unsigned long long)addr);
    if (!count)
        return true;
    if (f >= m->bump || (f && !m->fm[f].ref))
        return fail(c, "pid %d: entry at 0x%llx maps unused frame %llu", p->pid, (unsigned long long)addr, (unsigned long long)f);
    uint64_t idx = v->obj ? v->pgoff + ((addr - v->start) >> m->page_shift) : 0;
    if (vma_is_file(v) && ((v->flags & CS_MAP_SHARED) || f == ZERO_FRAME || (m->fm[f].flags & CS_FRAME_FILE))) {
        /* a page-cache page: read-only in a private region; writable or
         * dirty in a shared one only while its folio is dirty */
        if (idx >= v->obj->fpages || f == ZERO_FRAME || f != v->obj->pages[idx])
            return fail(c, "pid %d: file entry at 0x%llx maps frame %llu, not the cache's page %llu", p->pid,
                        (unsigned long long)addr, (unsigned long long)f, (unsigned long long)idx);
        if ((m->fm[f].flags & (CS_FRAME_FILE | CS_FRAME_ANON | CS_FRAME_SHMEM)) != CS_FRAME_FILE)
            return fail(c, "frame %llu in a file region is not a page-cache page", (unsigned long long)f);
        if (!(v->flags & CS_MAP_SHARED) && (e & (PTE_WRITE | PTE_DIRTY)))
            return fail(c, "pid %d: private entry at 0x%llx maps a page-cache page writable or dirty", p->pid,
                        (unsigned long long)addr);
        if ((e & (PTE_WRITE | PTE_DIRTY)) && !(m->fm[f].flags & CS_FRAME_DIRTY))
            return fail(c, "pid %d: entry at 0x%llx writable or dirty over a clean folio", p->pid,
                        (unsigned long long)addr);
    } else if (v->obj && !vma_is_file(v)) {
        if (f != v->obj->pages[idx])
            return fail(c, "pid %d: shared entry at 0x%llx maps frame %llu, object has %llu", p->pid,
                        (unsigned long long)addr, (unsigned long long)f, (unsigned long long)v->obj->pages[idx]);
        if (!(m->fm[f].flags & CS_FRAME_SHMEM) || (m->fm[f].flags & CS_FRAME_ANON))
            return fail(c, "frame %llu in a shared region is not a shmem page", (unsigned long long)f);
    } else if (f == ZERO_FRAME) {
        if (e & PTE_WRITE)
            return fail(c, "pid %d: writable zero-page entry at 0x%llx", p->pid, (unsigned long long)addr);
        return true;
    } else {
        if (!(m->fm[f].flags & CS_FRAME_ANON))
            return fail(c, "frame %llu in a private region is not anonymous", (unsigned long long)f);
        if (!(v->flags & CS_VMA_ANON_VMA))
            return fail(c, "pid %d: region at 0x%llx maps anonymous pages but has no anon_vma", p->pid,
                        (unsigned long long)v->start);
        if (e & PTE_WRITE) {
            if (!(m->fm[f].flags & CS_FRAME_EXCLUSIVE))
                return fail(c, "pid %d: writable entry at 0x%llx to non-exclusive frame %llu", p->pid,
                            (unsigned long long)addr, (unsigned long long)f);
            c->wpriv[f] = 1;
        }
    }
    c->ref[f]++;
    c->map[f]++;
    return true;
}

static bool check_table(checker *c, cs_proc *p, uint64_t slot, unsigned level, uint64_t base, uint64_t up);

/* A huge entry at level 1 for [a, a + 2 MiB): inside one huge private region,
 * its deposited table (counted as a table) holding only the block's first
 * frame, an aligned block of 512 anonymous HUGE frames, one reference and
 * one mapping of each subpage. */
static bool check_huge(checker *c, cs_proc *p, uint64_t a, uint64_t e)
{
    cs_machine *m = c->m;
    uint64_t span = hpage_size(m);
    if (e & ((1ULL << PTE_FRAME_SHIFT) - 1) & ~(PTE_PRESENT | PTE_WRITE | PTE_DIRTY | PMD_HUGE))
        return fail(c, "pid %d: huge entry at 0x%llx with stray bits", p->pid, (unsigned long long)a);
    cs_vma *v = vma_find(p, a);
    if (!v || !(v->flags & CS_VMA_HUGE) || v->obj || v->end < a + span || m->page_shift != PAGE_SHIFT_4K)
        return fail(c, "pid %d: huge entry at 0x%llx outside a huge region", p->pid, (unsigned long long)a);
    if ((e & PTE_WRITE) && !(v->prot & CS_PROT_WRITE))
        return fail(c, "pid %d: writable huge entry at 0x%llx in a read-only region", p->pid, (unsigned long long)a);
    uint64_t slot = PTE_FRAME(e);
    if (slot == 0 || slot >= m->tbump)
        return fail(c, "pid %d: huge entry at 0x%llx has a bad deposited table", p->pid, (unsigned long long)a);
    uint64_t tf = m->tframe[slot];
    if (tf == 0 || tf >= m->bump || !(m->fm[tf].flags & CS_FRAME_PAGETABLE) || c->ref[tf]++)
        return fail(c, "pid %d: deposited table frame %llu is bad or held twice", p->pid, (unsigned long long)tf);
    c->wpriv[tf] = 1;
    c->tables++;
    c->held++;
    const uint64_t *t = table_of(m, slot);
    for (uint64_t k = 1; k < m->epl; k++)
        if (t[k])
            return fail(c, "pid %d: deposited table of 0x%llx is not empty", p->pid, (unsigned long long)a);
    uint64_t b = t[0];
    if (!b) {
        if (e & PTE_WRITE)
            return fail(c, "pid %d: writable huge zero page at 0x%llx", p->pid, (unsigned long long)a);
        return true;
    }
    if ((b & (HPAGE_NR - 1)) || b + HPAGE_NR > m->bump)
        return fail(c, "pid %d: huge entry at 0x%llx maps unaligned block %llu", p->pid, (unsigned long long)a,
                    (unsigned long long)b);
    if (!(v->flags & CS_VMA_ANON_VMA))
        return fail(c, "pid %d: huge page at 0x%llx in a region without anon_vma", p->pid, (unsigned long long)a);
    for (uint64_t f = b; f < b + HPAGE_NR; f++) {
        uint8_t fl = m->fm[f].flags;
        if (!m->fm[f].ref || (fl & (CS_FRAME_ANON | CS_FRAME_HUGE)) != (CS_FRAME_ANON | CS_FRAME_HUGE))
            return fail(c, "pid %d: huge entry at 0x%llx maps frame %llu, not a live huge subpage", p->pid,
                        (unsigned long long)a, (unsigned long long)f);
        if (e & PTE_WRITE) {
            if (!(fl & CS_FRAME_EXCLUSIVE))
                return fail(c, "pid %d: writable huge entry at 0x%llx to non-exclusive frame %llu", p->pid,
                            (unsigned long long)a, (unsigned long long)f);
            c->wpriv[f] = 1;
        }
        c->ref[f]++;
        c->map[f]++;
    }
    return true;
}

/* `up`: the entry pointing at this table (0 for the root). */
static bool check_table(checker *c, cs_proc *p, uint64_t slot, unsigned level, uint64_t base, uint64_t up)
{
    cs_machine *m = c->m;
    if (slot == 0 || slot >= m->tbump)
        return fail(c, "pid %d: bad table slot %llu", p->pid, (unsigned long long)slot);
    uint64_t tf = m->tframe[slot];
    if (tf == 0 || tf >= m->bump || !(m->fm[tf].flags & CS_FRAME_PAGETABLE))
        return fail(c, "pid %d: table frame %llu is not a page-table frame", p->pid, (unsigned long long)tf);
    if ((up & PMD_WP) && level != 0)
        return fail(c, "pid %d: write-protect bit above a level-%u table", p->pid, level);
    bool first = c->ref[tf]++ == 0;
    if (!first && level != 0)
        return fail(c, "table frame %llu (level %u) is used twice", (unsigned long long)tf, level);
    if (!(up & PMD_WP))
        c->wpriv[tf] = 1;
    c->tables += first;
    c->held++;
    uint64_t *t = table_of(m, slot);
    uint64_t span = 1ULL << entry_shift(m, level);
    for (uint64_t i = 0; i < m->epl; i++) {
        uint64_t e = t[i], a = base + i * span;
        if (!e)
            continue;
        if (!(e & PTE_PRESENT) || (level != 1 && (e & (PMD_WP | PMD_HUGE))))
            return fail(c, "pid %d: entry with stray bits at level %u", p->pid, level);
        if (level == 1 && pmd_is_huge(e)) {
            if (!check_huge(c, p, a, e))
                return false;
        } else if (level == 0) {
            if (!check_leaf(c, p, a, e, up, first))
                return false;
        } else {
            if (!vma_overlaps(p, a, a + span))
                return fail(c, "pid %d: table for 0x%llx+%llx has no region in its span", p->pid,
                            (unsigned long long)a, (unsigned long long)span);
            if (!check_table(c, p, PTE_FRAME(e), level - 1, a, e))
                return false;
        }
    }
    return true;
}

/* The region tree under v (regions.c): parent links, AVL heights and
 * balance, subtree gaps; its in-order walk meets the list's regions in
 * order (*at: the next one due). */
static bool check_vma_tree(checker *c, cs_proc *p, const cs_vma *v, const cs_vma *parent, const cs_vma **at,
                           unsigned depth)
{
    if (!v)
        return true;
    if (v->parent != parent || depth > 100)
        return fail(c, "pid %d: region tree link of 0x%llx is broken", p->pid, (unsigned long long)v->start);
    if (!check_vma_tree(c, p, v->left, v, at, depth + 1))
        return false;
    if (v != *at)
        return fail(c, "pid %d: region tree and list disagree at 0x%llx", p->pid, (unsigned long long)v->start);
    *at = v->next;
    if (!check_vma_tree(c, p, v->right, v, at, depth + 1))
        return false;
    int32_t hl = v->left ? v->left->height : 0, hr = v->right ? v->right->height : 0;
    uint64_t gap = v->start - (v->prev ? v->prev->end : 0), sg = gap;
    if (v->left && v->left->subtree_gap > sg)
        sg = v->left->subtree_gap;
    if (v->right && v->right->subtree_gap > sg)
        sg = v->right->subtree_gap;
    if (v->height != 1 + (hl > hr ? hl : hr) || hl - hr > 1 || hr - hl > 1)
        return fail(c, "pid %d: region tree unbalanced at 0x%llx", p->pid, (unsigned long long)v->start);
    if (v->subtree_gap != sg)
        return fail(c, "pid %d: region 0x%llx: subtree gap 0x%llx, expected 0x%llx", p->pid,
                    (unsigned long long)v->start, (unsigned long long)v->subtree_gap, (unsigned long long)sg);
    return true;
}

static bool check_regions(checker *c, cs_proc *p)
{
    cs_machine *m = c->m;
    uint64_t pm = (1ULL << m->page_shift) - 1, prev_end = 0;
    size_t n = 0, spares = 0;
    bool hint_seen = !p->vma_hint;
    const cs_vma *prev = NULL, *at = p->vma_first;
    for (const cs_vma *s = p->vma_spare; s && spares <= VMA_SPARES_KEPT; s = s->next)
        spares++;
    if (spares != p->nspare || spares > VMA_SPARES_KEPT)
        return fail(c, "pid %d: %zu spare region nodes, %zu recorded", p->pid, spares, p->nspare);
    if ((p->vma_root && p->vma_root->parent) || !check_vma_tree(c, p, p->vma_root, NULL, &at, 0))
        return fail(c, "pid %d: region tree link of the root is broken", p->pid);
    if (at)
        return fail(c, "pid %d: region list holds regions the tree does not", p->pid);
    for (cs_vma *v = p->vma_first; v; prev = v, v = v->next) {
        if (v->prev != prev || ++n > p->nvmas)
            return fail(c, "pid %d: region list broken or longer than %zu", p->pid, p->nvmas);
        hint_seen |= v == p->vma_hint;
        if (v->start >= v->end || (v->start & pm) || (v->end & pm) || v->start < prev_end ||
            v->start < m->user_start || v->end > m->user_end)
            return fail(c, "pid %d: bad region [0x%llx, 0x%llx)", p->pid, (unsigned long long)v->start,
                        (unsigned long long)v->end);
        prev_end = v->end;
        if (!!(v->flags & (CS_MAP_SHARED | CS_VMA_FILE)) != !!v->obj || (v->obj && !!v->obj->id != vma_is_file(v)) ||
            ((v->flags & CS_VMA_FILE) && (v->flags & (CS_VMA_HUGE | CS_VMA_WIPEONFORK))))
            return fail(c, "pid %d: region 0x%llx flags and object disagree", p->pid,
                        (unsigned long long)v->start);
        if (v->obj) {
            if (!v->obj->id && v->pgoff + ((v->end - v->start) >> m->page_shift) > v->obj->npages)
                return fail(c, "pid %d: shared region 0x%llx overruns its object", p->pid,
                            (unsigned long long)v->start);
            v->obj->seen++;
        }
    }
    if (n != p->nvmas || prev != p->vma_last || !hint_seen)
        return fail(c, "pid %d: %zu regions listed, %zu recorded (or a stale last or hint)", p->pid, n, p->nvmas);
    return true;
}

/* The pid map: every record reachable from its pid's home slot, none twice,
 * the count and the load bounds right, no record of a reaped or unborn pid. */
static void check_pidmap(checker *c)
{
    const cs_machine *m = c->m;
    const pid_map *pm = &m->pids;
    if (pm->cap && (pm->cap < PIDMAP_MIN || (pm->cap & (pm->cap - 1)) || pm->shift + __builtin_ctzll(pm->cap) != 32)) {
        fail(c, "pid map: %zu slots", pm->cap);
        return;
    }
    if (pm->count * 2 > pm->cap && pm->count) {
        fail(c, "pid map: %zu records in %zu slots", pm->count, pm->cap);
        return;
    }
    size_t n = 0;
    for (size_t i = 0; i < pm->cap; i++) {
        const pid_slot *s = &pm->slots[i];
        if (!s->pid) {
            if (s->p)
                fail(c, "pid map: free slot %zu holds a record", i);
            continue;
        }
        n++;
        if (!s->p || s->p->pid != s->pid || s->pid < 0 || s->pid >= m->next_pid)
            fail(c, "pid map: slot %zu maps pid %d to a wrong record", i, s->pid);
        else if (pidmap_find(pm, s->pid) != s->p)
            fail(c, "pid map: pid %d in slot %zu is not found from its home slot", s->pid, i);
    }
    if (n != pm->count)
        fail(c, "pid map: %zu records counted, %zu listed", pm->count, n);
}

/* Every process: its counters, its vfork pair, its regions and tables (the
 * references and mappings they hold are counted into c->ref / c->map); the
 * machine's counters are the sums over processes, the reaped ones included. */
static void check_processes(checker *c)
{
    cs_machine *m = c->m;
    uint64_t live = 0, minflt = m->reaped.minflt, segv = m->reaped.segfaults, copied = m->reaped.pages_copied,
             thp_faults = m->reaped.thp_faults, thp_splits = m->reaped.thp_splits, majflt = m->reaped.majflt,
             sigbus = m->reaped.sigbus, hits = m->reaped.page_cache_hits;
    cs_proc *p;
    pidmap_for_each(&m->pids, p) {
        if (c->failed)
            break;   /* the map itself may be broken */
        int32_t pid = p->pid;
        const cs_proc_stats *s = &p->st;
        if (s->minflt + s->majflt != s->faults_zero_page + s->faults_zero_fill + s->faults_cow_copy +
                                         s->faults_cow_reuse + s->faults_shared + s->faults_file)
            fail(c, "pid %d: minflt + majflt is not the sum of the fault kinds", pid);
        if (s->accesses < s->minflt + s->majflt + s->segfaults + s->sigbus ||
            (m->cfg.tlb_entries && s->tlb_hits + s->tlb_misses + s->segfaults < s->accesses))
            fail(c, "pid %d: access counters disagree with faults and TLB counts", pid);
        majflt += s->majflt;
        sigbus += s->sigbus;
        hits += s->page_cache_hits;
        minflt += s->minflt;
        segv += s->segfaults;
        copied += s->pages_copied;
        thp_faults += s->thp_faults;
        thp_splits += s->thp_splits;
        if (p->exited) {
            if (p->ntables || p->root || p->nvmas)
                fail(c, "exited pid %d still holds tables or regions", pid);
            if (!p->holds)   /* put_task_struct: the last handle frees it */
                fail(c, "exited pid %d kept with no handle", pid);
            if (p->lender || p->borrower)
                fail(c, "exited pid %d still in a vfork pair", pid);
            continue;
        }
        live++;
        if (p->lender) {
            cs_proc *l = pidmap_find(&m->pids, p->lender);
            if (!l || l->exited || l->borrower != pid)
                fail(c, "pid %d: vfork child of %d, which does not lend to it", pid, p->lender);
        }
        if (p->borrower) {   /* suspended: its space is with the vfork child */
            cs_proc *b = pidmap_find(&m->pids, p->borrower);
            if (p->root || p->nvmas || p->ntables || !b || b->exited || b->lender != pid)
                fail(c, "pid %d: suspended but holds a space or has no live borrower", pid);
            continue;
        }
        if (!p->root)
            fail(c, "pid %d: live without a root table", pid);
        c->held = 0;
        if (check_regions(c, p))
            check_table(c, p, p->root, m->levels - 1, 0, 0);
        if (c->held != p->ntables && !c->failed)
            fail(c, "pid %d: holds %llu tables, counted %llu", pid, (unsigned long long)p->ntables,
                 (unsigned long long)c->held);
    }
    if (live != m->nlive)
        fail(c, "live process count %llu, counted %llu", (unsigned long long)m->nlive, (unsigned long long)live);
    if (minflt != m->st.minflt || segv != m->st.segfaults || copied != m->st.pages_copied ||
        thp_faults != m->st.thp_faults || thp_splits != m->st.thp_splits || majflt != m->st.majflt ||
        sigbus != m->st.sigbus || hits != m->st.page_cache_hits)
        fail(c, "machine fault/segfault/copy/thp counters differ from the sum over processes");
    if (c->tables != m->npt && !c->failed)
        fail(c, "page_table_frames %llu, counted %llu", (unsigned long long)m->npt, (unsigned long long)c->tables);
}

/* Shmem objects: referenced by as many regions as they count; their pages
 * are shmem frames, each a reference. */
static void check_shmem(checker *c)
{
    cs_machine *m = c->m;
    uint64_t nobjs = 0;
    for (cs_shobj *o = m->objs; o; o = o->next) {
        nobjs++;
        if (o->seen != o->nvmas)
            fail(c, "shmem object referenced by %u regions, counts %u", o->seen, o->nvmas);
        for (uint64_t i = 0; i < o->npages; i++) {
            uint64_t f = o->pages[i];
            if (!f)
                continue;
            if (f >= m->bump || !(m->fm[f].flags & CS_FRAME_SHMEM))
                fail(c, "shmem object holds bad frame %llu", (unsigned long long)f);
            else
                c->ref[f]++;
        }
    }
    if (nobjs != m->nobjs)
        fail(c, "shared object count %llu, listed %llu", (unsigned long long)m->nobjs, (unsigned long long)nobjs);
}

/* Files: referenced by as many regions as they count, a deleted one only
 * while mapped; each cached page a FILE frame held once by the cache; folios
 * aligned, wholly cached, one order and one dirtiness throughout; the
 * gauges right. */
static void check_files(checker *c)
{
    cs_machine *m = c->m;
    uint64_t files = 0, cached = 0, dirty = 0;
    for (int32_t id = 1; id < m->next_file_id && !c->failed; id++) {
        cs_shobj *o = m->ftab[id];
        if (!o)
            continue;
        files += !o->unlinked;
        if (o->id != id || o->seen != o->nvmas || (o->unlinked && !o->nvmas) || o->fpages > o->npages ||
            o->fpages != (o->size >> m->page_shift) + ((o->size & ((1ULL << m->page_shift) - 1)) != 0))
            fail(c, "file %d: id, mappings (%u counted, %u recorded), deletion or size are wrong", id, o->seen,
                 o->nvmas);
        for (uint64_t i = 0; i < o->npages && !c->failed; i++) {
            uint64_t f = o->pages[i];
            if (!f) {
                if (o->pstate[i])
                    fail(c, "file %d: page %llu not cached but has folio state", id, (unsigned long long)i);
                continue;
            }
            cached++;
            uint8_t fl = m->fm[f].flags;
            dirty += (fl & CS_FRAME_DIRTY) != 0;
            if (f >= m->bump || (fl & (CS_FRAME_FILE | CS_FRAME_ANON | CS_FRAME_SHMEM | CS_FRAME_PAGETABLE)) !=
                                    CS_FRAME_FILE)
                fail(c, "file %d: page %llu is cached in bad frame %llu", id, (unsigned long long)i,
                     (unsigned long long)f);
            c->ref[f]++;
            unsigned order = o->pstate[i] & PS_ORDER;
            uint64_t h = i & ~((1ULL << order) - 1);
            if (order > FOLIO_MAX_ORDER || h + (1ULL << order) > o->npages)
                fail(c, "file %d: page %llu in a bad folio", id, (unsigned long long)i);
            else if ((o->pstate[i] & PS_RA_MARK) && h != i)
                fail(c, "file %d: readahead mark on a tail page %llu", id, (unsigned long long)i);
            else if (h != i && ((o->pstate[h] & PS_ORDER) != order || !o->pages[h] ||
                                ((m->fm[o->pages[h]].flags ^ fl) & CS_FRAME_DIRTY)))
                fail(c, "file %d: folio at page %llu is not whole, or not of one order and dirtiness", id,
                     (unsigned long long)h);
        }
    }
    if (!c->failed && (files != m->nfiles || cached != m->ncache || dirty != m->ncache_dirty))
        fail(c, "files %llu, cached %llu, dirty %llu; recorded %llu, %llu, %llu", (unsigned long long)files,
             (unsigned long long)cached, (unsigned long long)dirty, (unsigned long long)m->nfiles,
             (unsigned long long)m->ncache, (unsigned long long)m->ncache_dirty);
}

/* Every frame: refcount and mapcount are what the processes and objects hold
 * (counted above); exclusivity and write permission agree with sharing;
 * shared tables only after an odf fork, write-protected by every holder.
 * Returns the frames in use. */
static uint64_t check_frames(checker *c)
{
    cs_machine *m = c->m;
    uint64_t used = 0, shared_tables = 0;
    for (uint64_t f = 1; f < m->bump && !c->failed; f++) {
        if (m->fm[f].ref)
            used++;
        if ((m->fm[f].flags & CS_FRAME_PAGETABLE) && c->ref[f] > 1) {
            shared_tables++;
            if (c->wpriv[f])
                fail(c, "table frame %llu has %u holders, not all write-protected", (unsigned long long)f,
                     c->ref[f]);
            if (!m->odf_used)
                fail(c, "table frame %llu is shared without an odf fork", (unsigned long long)f);
        }
        if (m->fm[f].ref != c->ref[f] || m->fm[f].mapc != c->map[f]) {
            if (m->fm[f].ref || c->ref[f])
                fail(c, "frame %llu: refcount %u mapcount %u, expected %u and %u", (unsigned long long)f,
                     m->fm[f].ref, m->fm[f].ref ? m->fm[f].mapc : 0, c->ref[f], c->map[f]);
            continue;
        }
        if ((m->fm[f].flags & CS_FRAME_EXCLUSIVE) && c->map[f] > 1)
            fail(c, "frame %llu is exclusive but mapped %u times", (unsigned long long)f, c->map[f]);
        if (c->wpriv[f] && c->ref[f] != 1 && !(m->fm[f].flags & CS_FRAME_PAGETABLE))
            fail(c, "frame %llu is mapped writable while shared (refcount %u)", (unsigned long long)f, c->ref[f]);
    }
    if (!c->failed && shared_tables != m->nshared_tables)
        fail(c, "%llu shared tables counted, %llu recorded", (unsigned long long)shared_tables,
             (unsigned long long)m->nshared_tables);
    return used;
}

/* The allocators: the frame free list holds only unused frames, each once,
 * and with the untouched ones accounts for every frame not in use (THP: the
 * per-block counts are the free list's); the table pool's free slots and the
 * tables in use add up; the cumulative counters agree. */
static void check_free_lists(checker *c, uint64_t used)
{
    cs_machine *m = c->m;
    uint64_t nfree = 0, prev = 0;
    for (uint64_t f = m->free_head; f && !c->failed; prev = f, f = m->fm[f].next_free) {
        if (f >= m->bump || m->fm[f].ref || c->map[f] == UINT32_MAX)
            fail(c, "free list holds bad frame %llu", (unsigned long long)f);
        c->map[f] = UINT32_MAX;   /* visited */
        if (++nfree > m->nframes)
            fail(c, "free list has a cycle");
        if (m->thp_used && m->prev_free[f] != prev)
            fail(c, "free list back link of frame %llu is wrong", (unsigned long long)f);
        if (m->thp_used)
            c->blk[f >> HPAGE_ORDER]++;
    }
    for (uint64_t b = 0; m->thp_used && b <= (m->nframes >> HPAGE_ORDER) && !c->failed; b++)
        if (m->blk_free[b] != c->blk[b])
            fail(c, "block %llu: %u free frames recorded, %u listed", (unsigned long long)b, m->blk_free[b],
                 c->blk[b]);
    if (!c->failed && (used != m->nused || nfree + (m->nframes - m->bump) != frames_free(m)))
        fail(c, "frames used %llu (counted %llu), free %llu (listed %llu + untouched %llu)",
             (unsigned long long)m->nused, (unsigned long long)used, (unsigned long long)frames_free(m),
             (unsigned long long)nfree, (unsigned long long)(m->nframes - m->bump));
    uint64_t tfree = 0;
    for (uint64_t s = m->tfree_head; s && !c->failed; s = m->tframe[s])
        if (s >= m->tbump || ++tfree > m->tbump)
            fail(c, "table pool free list is broken at slot %llu", (unsigned long long)s);
    if (!c->failed && m->tbump - 1 - tfree != m->npt)
        fail(c, "table pool holds %llu slots in use, %llu tables counted", (unsigned long long)(m->tbump - 1 - tfree),
             (unsigned long long)m->npt);
    if (!c->failed && (m->st.frames_allocated - m->st.frames_freed != m->nused || m->st.frames_peak < m->nused))
        fail(c, "cumulative frame counters disagree with frames in use");
}

cs_status cs_check(cs_machine *m, char *msg, size_t msglen)
{
    LOCK(m);
    checker c = {.m = m, .msg = msg, .msglen = msglen};
    if (msglen)
        msg[0] = 0;
    c.ref = calloc(m->bump, sizeof *c.ref);
    c.map = calloc(m->bump, sizeof *c.map);
    c.wpriv = calloc(m->bump, 1);
    c.blk = calloc((m->nframes >> HPAGE_ORDER) + 1, sizeof *c.blk);
    cs_status st = CS_OK;
    if (!c.ref || !c.map || !c.wpriv || !c.blk) {
        st = CS_EHOST;
        goto out;
    }
    for (cs_shobj *o = m->objs; o; o = o->next)
        o->seen = 0;
    for (int32_t id = 1; id < m->next_file_id; id++)
        if (m->ftab[id])
            m->ftab[id]->seen = 0;
    check_pidmap(&c);
    check_processes(&c);
    check_shmem(&c);
    check_files(&c);
    check_free_lists(&c, check_frames(&c));
    if (c.failed)
        st = CS_EINVARIANT;
out:
    free(c.ref);
    free(c.map);
    free(c.wpriv);
    free(c.blk);
    UNLOCK(m);
    return st;
}
