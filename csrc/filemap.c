/* filemap.c -- files, the page cache and file faults (DESIGN.md 3.F: FR1-FR4,
 * FB1, FC1, FL), after mm/filemap.c, mm/readahead.c and mm/memory.c.
 *
 * A file is a cs_shobj with an id (an address_space): pages[i] is the frame
 * caching page i, or 0.  The cache holds one reference to each of its frames
 * (flag FILE); every entry mapping one adds a reference and a mapping.
 * Folios are naturally aligned runs of 2^order pages; pstate[i] holds the
 * order of page i's folio, and the readahead mark (PG_readahead) on a
 * folio's first page.  Dirtiness is per folio: every frame of a dirty folio
 * carries DIRTY.  The bytes of a data-mode file live on a simulated disk
 * (o->disk): a page read in copies them, a writeback copies them back.
 *
 * Not modelled: reclaim (the cache shrinks only by drop_caches, evict and
 * delete), read(2)'s own readahead (f.read caches the pages it reads),
 * mmap_miss (readahead is never switched off), truncation. */
#define _DEFAULT_SOURCE   /* MAP_ANONYMOUS, MAP_NORESERVE, mremap */
#define _GNU_SOURCE
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include "internal.h"

static inline uint64_t pmask(const cs_machine *m) { return ((uint64_t)1 << m->page_shift) - 1; }
static inline unsigned folio_order(const cs_shobj *o, uint64_t i) { return o->pstate[i] & PS_ORDER; }
static inline uint64_t folio_head(const cs_shobj *o, uint64_t i) { return i & ~((1ULL << folio_order(o, i)) - 1); }
static inline uint64_t folio_nr(const cs_shobj *o, uint64_t i) { return 1ULL << folio_order(o, i); }

/* ---- the file table ---- */

cs_status file_get(cs_machine *m, int32_t id, cs_shobj **out)
{
    if (id <= 0 || id >= m->next_file_id || !m->ftab[id] || m->ftab[id]->unlinked)
        return CS_ENOFILE;
    *out = m->ftab[id];
    return CS_OK;
}

/* Room for n pages in pages[], pstate[] and (data mode) the disk. */
static bool file_reserve(cs_machine *m, cs_shobj *o, uint64_t n)
{
    if (n <= o->npages)
        return true;
    uint64_t cap = o->npages ? o->npages : 16;
    while (cap < n)
        cap *= 2;
    if (cap > (UINT64_MAX >> m->page_shift) / 2)
        return false;
    uint64_t *pages = realloc(o->pages, cap * sizeof *pages);
    if (!pages)
        return false;
    o->pages = pages;
    uint8_t *ps = realloc(o->pstate, cap);
    if (!ps)
        return false;
    o->pstate = ps;
    if (m->cfg.store_data) {
        size_t len = (size_t)cap << m->page_shift;
        void *d = o->disk ? mremap(o->disk, o->disklen, len, MREMAP_MAYMOVE)
                          : mmap(NULL, len, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0);
        if (d == MAP_FAILED)
            return false;
        o->disk = d;
        o->disklen = len;
    }
    memset(pages + o->npages, 0, (cap - o->npages) * sizeof *pages);
    memset(ps + o->npages, 0, cap - o->npages);
    o->npages = cap;
    return true;
}

static void cache_count_dirty(cs_machine *m, uint64_t f, bool dirty)
{
    bool was = (m->fm[f].flags & CS_FRAME_DIRTY) != 0;
    if (was == dirty)
        return;
    if (dirty) {
        m->fm[f].flags |= CS_FRAME_DIRTY;
        m->ncache_dirty++;
    } else {
        m->fm[f].flags &= (uint8_t)~CS_FRAME_DIRTY;
        m->ncache_dirty--;
    }
}

/* A new cache frame for page i (add_to_page_cache): the disk's bytes. */
static uint64_t cache_add(cs_machine *m, cs_shobj *o, uint64_t i, unsigned order)
{
    uint64_t f = frame_alloc(m, CS_FRAME_FILE);
    if (!f)
        return 0;
    if (m->mem && i < o->fpages)
        memcpy(frame_data(m, f), o->disk + (i << m->page_shift), (size_t)1 << m->page_shift);
    o->pages[i] = f;
    o->pstate[i] = (uint8_t)order;
    m->ncache++;
    return f;
}

static void cache_drop(cs_machine *m, cs_shobj *o, uint64_t i)
{
    uint64_t f = o->pages[i];
    cache_count_dirty(m, f, false);
    frame_put(m, f);
    o->pages[i] = 0;
    o->pstate[i] = 0;
    m->ncache--;
}

void folio_mark_dirty(cs_machine *m, cs_shobj *o, uint64_t idx)
{
    uint64_t h = folio_head(o, idx), n = folio_nr(o, idx);
    for (uint64_t i = h; i < h + n; i++)
        cache_count_dirty(m, o->pages[i], true);
}

void file_free(cs_machine *m, cs_shobj *o)
{
    for (uint64_t i = 0; i < o->npages; i++)
        if (o->pages[i])
            cache_drop(m, o, i);
    m->ftab[o->id] = NULL;
    if (o->disk)
        munmap(o->disk, o->disklen);
    free(o->pages);
    free(o->pstate);
    free(o);
}

void files_free_all(cs_machine *m)
{
    for (int32_t id = 1; id < m->next_file_id; id++)
        if (m->ftab[id]) {
            cs_shobj *o = m->ftab[id];
            if (o->disk)
                munmap(o->disk, o->disklen);
            free(o->pages);
            free(o->pstate);
            free(o);
        }
    free(m->ftab);
}

/* ---- writeback (fsync): page_mkclean, then the folios are clean ---- */

static void mkclean_pte(cs_machine *m, cs_proc *p, uint64_t *pte, uint64_t pmd UNUSED, uint64_t addr,
                        void *ctx UNUSED)
{
    uint64_t f = PTE_FRAME(*pte);
    if ((m->fm[f].flags & (CS_FRAME_FILE | CS_FRAME_DIRTY)) == (CS_FRAME_FILE | CS_FRAME_DIRTY) &&
        (*pte & (PTE_WRITE | PTE_DIRTY))) {
        *pte &= ~(PTE_WRITE | PTE_DIRTY);
        tlb_flush_page(m, p, addr);
    }
}

static void writeback(cs_machine *m, cs_shobj *o)
{
    uint64_t ndirty = 0;
    for (uint64_t i = 0; i < o->npages && !ndirty; i++)
        ndirty = o->pages[i] && (m->fm[o->pages[i]].flags & CS_FRAME_DIRTY);
    if (!ndirty)
        return;
    /* page_mkclean: the shared mappings' entries of dirty pages become clean
     * and read-only, so the next write faults (write-notify). */
    cs_proc *p;
    pidmap_for_each(&m->pids, p) {
        if (p->exited || !p->root)
            continue;
        for (cs_vma *v = p->vma_first; v; v = v->next)
            if (v->obj == o && (v->flags & CS_MAP_SHARED))
                pte_walk_small(m, p, v->start, v->end, mkclean_pte, NULL);
    }
    uint64_t ps = (uint64_t)1 << m->page_shift;
    for (uint64_t i = 0; i < o->npages; i++) {
        uint64_t f = o->pages[i];
        if (!f || !(m->fm[f].flags & CS_FRAME_DIRTY))
            continue;
        if (m->mem && i < o->fpages) {
            unsigned char *d = frame_data(m, f);
            uint64_t valid = o->size - (i << m->page_shift);
            if (valid < ps)   /* the part past EOF is zeroed on writeback */
                memset(d + valid, 0, ps - valid);
            memcpy(o->disk + (i << m->page_shift), d, ps);
        }
        cache_count_dirty(m, f, false);
        m->st.pages_written++;
    }
}

/* Drops every clean folio none of whose pages is mapped. */
static void invalidate(cs_machine *m, cs_shobj *o)
{
    for (uint64_t h = 0; h < o->npages;) {
        if (!o->pages[h]) {
            h++;
            continue;
        }
        uint64_t n = folio_nr(o, h);
        bool busy = false;
        for (uint64_t i = h; i < h + n; i++)
            busy |= m->fm[o->pages[i]].mapc || (m->fm[o->pages[i]].flags & CS_FRAME_DIRTY);
        if (!busy)
            for (uint64_t i = h; i < h + n; i++)
                cache_drop(m, o, i);
        h += n;
    }
}

/* ---- the API ---- */

cs_status cs_file_new(cs_machine *m, uint64_t size, int32_t cached, int32_t *id_out)
{
    LOCK(m);
    cs_status st = CS_OK;
    uint64_t pages = (size >> m->page_shift) + ((size & pmask(m)) != 0);
    if (size > (UINT64_MAX >> 2)) {
        st = CS_EINVAL;
        goto out;
    }
    if (cached && frames_free(m) < pages) {
        st = CS_ENOMEM;
        goto out;
    }
    if (m->next_file_id == INT32_MAX) {
        st = CS_EHOST;
        goto out;
    }
    if ((size_t)m->next_file_id + 1 > m->ftabcap) {
        size_t cap = m->ftabcap ? m->ftabcap * 2 : 16;
        cs_shobj **t = realloc(m->ftab, cap * sizeof *t);
        if (!t) {
            st = CS_EHOST;
            goto out;
        }
        m->ftab = t;
        m->ftabcap = cap;
    }
    cs_shobj *o = calloc(1, sizeof *o);
    if (!o || !file_reserve(m, o, pages ? pages : 1)) {
        if (o) {
            if (o->disk)
                munmap(o->disk, o->disklen);
            free(o->pages);
            free(o->pstate);
        }
        free(o);
        st = CS_EHOST;
        goto out;
    }
    if (!m->next_file_id)
        m->next_file_id = 1;
    o->id = m->next_file_id++;
    o->size = size;
    o->fpages = pages;
    m->ftab[o->id] = o;
    m->nfiles++;
    if (cached) {   /* as readahead leaves it: single-page folios, clean */
        for (uint64_t i = 0; i < pages; i++)
            cache_add(m, o, i, 0);
        m->st.pages_read += pages;
    }
    *id_out = o->id;
out:
    UNLOCK(m);
    return st;
}

/* The order of a new folio for page i in a write of `left` more bytes from
 * byte position pos: __filemap_get_folio(fgf_set_order(len)) within
 * generic_perform_write's chunk (a PMD-sized, aligned piece of the file),
 * at most the alignment of i, lowered while the range holds cached pages. */
static unsigned write_order(cs_machine *m, const cs_shobj *o, uint64_t i, uint64_t pos, uint64_t left)
{
    if (!m->cfg.large_folios)
        return 0;
    uint64_t chunk = (uint64_t)1 << (m->page_shift + FOLIO_MAX_ORDER);
    uint64_t in_chunk = chunk - (pos & (chunk - 1));
    uint64_t len = left < in_chunk ? left : in_chunk;
    unsigned order = 0;
    while (order < FOLIO_MAX_ORDER && ((uint64_t)2 << (m->page_shift + order)) <= len)
        order++;
    if (i && (unsigned)__builtin_ctzll(i) < order)
        order = (unsigned)__builtin_ctzll(i);
    for (; order; order--) {
        bool free_range = true;
        for (uint64_t k = i; k < i + (1ULL << order) && free_range; k++)
            free_range = k >= o->npages || !o->pages[k];
        if (free_range)
            break;
    }
    return order;
}

cs_status cs_file_write(cs_machine *m, int32_t id, uint64_t offset, const void *buf, uint64_t len)
{
    LOCK(m);
    cs_shobj *o;
    cs_status st = file_get(m, id, &o);
    if (st || !len)
        goto out;
    if (offset + len < offset || offset + len > (UINT64_MAX >> 2) || (m->cfg.store_data && !buf)) {
        st = CS_EINVAL;
        goto out;
    }
    uint64_t first = offset >> m->page_shift, last = (offset + len - 1) >> m->page_shift;
    uint64_t need = 0;
    for (uint64_t i = first; i <= last; i++)
        need += i >= o->npages || !o->pages[i];
    if (frames_free(m) < need) {
        st = CS_ENOMEM;
        goto out;
    }
    if (!file_reserve(m, o, last + 1)) {
        st = CS_EHOST;
        goto out;
    }
    uint64_t ps = (uint64_t)1 << m->page_shift, end = offset + len;
    const unsigned char *src = buf;
    for (uint64_t i = first; i <= last;) {
        uint64_t pos = i == first ? offset : i << m->page_shift;
        if (!o->pages[i]) {
            unsigned order = write_order(m, o, i, pos, end - pos);
            for (uint64_t k = i; k < i + (1ULL << order); k++) {
                cache_add(m, o, k, order);
                /* a page the write covers in part is read first if it holds bytes */
                uint64_t ks = k << m->page_shift;
                if ((ks < offset || ks + ps > end) && ks < o->size)
                    m->st.pages_read++;
            }
        }
        uint64_t h = folio_head(o, i), n = folio_nr(o, i);
        folio_mark_dirty(m, o, i);
        for (; i < h + n && i <= last; i++) {
            uint64_t s = i == first ? offset : i << m->page_shift;
            uint64_t e = ((i + 1) << m->page_shift) < end ? (i + 1) << m->page_shift : end;
            if (m->mem)
                memcpy(frame_data(m, o->pages[i]) + (s & (ps - 1)), src, e - s);
            src += e - s;
        }
    }
    if (end > o->size) {
        o->size = end;
        o->fpages = (end >> m->page_shift) + ((end & (ps - 1)) != 0);
    }
out:
    UNLOCK(m);
    return st;
}

cs_status cs_file_read(cs_machine *m, int32_t id, uint64_t offset, void *buf, uint64_t len, uint64_t *n_out)
{
    LOCK(m);
    cs_shobj *o;
    cs_status st = file_get(m, id, &o);
    if (st)
        goto out;
    if (buf && !m->cfg.store_data) {
        st = CS_ENODATA;
        goto out;
    }
    if (offset + len < offset) {
        st = CS_EINVAL;
        goto out;
    }
    uint64_t n = offset >= o->size ? 0 : (len < o->size - offset ? len : o->size - offset);
    *n_out = n;
    if (!n)
        goto out;
    uint64_t first = offset >> m->page_shift, last = (offset + n - 1) >> m->page_shift, need = 0;
    for (uint64_t i = first; i <= last; i++)
        need += !o->pages[i];
    if (frames_free(m) < need) {
        st = CS_ENOMEM;
        goto out;
    }
    uint64_t ps = (uint64_t)1 << m->page_shift;
    unsigned char *dst = buf;
    for (uint64_t i = first; i <= last; i++) {
        if (!o->pages[i]) {
            cache_add(m, o, i, 0);
            m->st.pages_read++;
        }
        if (dst) {
            uint64_t s = i == first ? offset : i << m->page_shift;
            uint64_t e = ((i + 1) << m->page_shift) < offset + n ? (i + 1) << m->page_shift : offset + n;
            memcpy(dst, frame_data(m, o->pages[i]) + (s & (ps - 1)), e - s);
            dst += e - s;
        }
    }
out:
    UNLOCK(m);
    return st;
}

cs_status cs_file_sync(cs_machine *m, int32_t id)
{
    LOCK(m);
    cs_shobj *o;
    cs_status st = file_get(m, id, &o);
    if (!st)
        writeback(m, o);
    UNLOCK(m);
    return st;
}

cs_status cs_file_evict(cs_machine *m, int32_t id)
{
    LOCK(m);
    cs_shobj *o;
    cs_status st = file_get(m, id, &o);
    if (!st) {
        writeback(m, o);
        invalidate(m, o);
    }
    UNLOCK(m);
    return st;
}

cs_status cs_file_delete(cs_machine *m, int32_t id)
{
    LOCK(m);
    cs_shobj *o;
    cs_status st = file_get(m, id, &o);
    if (!st) {
        o->unlinked = true;
        m->nfiles--;
        if (!o->nvmas)
            file_free(m, o);
    }
    UNLOCK(m);
    return st;
}

cs_status cs_drop_caches(cs_machine *m)
{
    LOCK(m);
    for (int32_t id = 1; id < m->next_file_id; id++)
        if (m->ftab[id])
            invalidate(m, m->ftab[id]);
    UNLOCK(m);
    return CS_OK;
}

cs_status cs_file_stat(cs_machine *m, int32_t id, cs_file_stats *out)
{
    LOCK(m);
    cs_shobj *o;
    cs_status st = file_get(m, id, &o);
    if (!st) {
        memset(out, 0, sizeof *out);
        out->size = o->size;
        out->pages = o->fpages;
        out->mappings = o->nvmas;
        for (uint64_t i = 0; i < o->npages; i++) {
            uint64_t f = o->pages[i];
            if (!f)
                continue;
            out->cached++;
            out->dirty += (m->fm[f].flags & CS_FRAME_DIRTY) != 0;
            out->mapped += m->fm[f].mapc != 0;
            out->folios += folio_head(o, i) == i;
        }
    }
    UNLOCK(m);
    return st;
}

cs_status cs_file_folios(cs_machine *m, int32_t id, uint64_t *first, uint32_t *npages, uint8_t *flags,
                         size_t cap, size_t *count)
{
    LOCK(m);
    cs_shobj *o;
    cs_status st = file_get(m, id, &o);
    if (!st) {
        size_t n = 0;
        for (uint64_t i = 0; i < o->npages;) {
            if (!o->pages[i]) {
                i++;
                continue;
            }
            if (n < cap) {
                first[n] = i;
                npages[n] = (uint32_t)folio_nr(o, i);
                flags[n] = m->fm[o->pages[i]].flags & CS_FRAME_DIRTY;
            }
            n++;
            i += folio_nr(o, i);
        }
        *count = n;
    }
    UNLOCK(m);
    return st;
}

cs_status cs_file_ids(cs_machine *m, int32_t *out, size_t cap, size_t *count)
{
    LOCK(m);
    size_t n = 0;
    for (int32_t id = 1; id < m->next_file_id; id++)
        if (m->ftab[id] && !m->ftab[id]->unlinked) {
            if (n < cap)
                out[n] = id;
            n++;
        }
    *count = n;
    UNLOCK(m);
    return CS_OK;
}

/* ---- faults ---- */

/* The fault-around window of a read fault at addr (do_fault_around), cut at
 * the end of the file (filemap_map_pages). */
static void fa_window(cs_machine *m, const cs_vma *v, uint64_t addr, uint64_t *from, uint64_t *to)
{
    uint64_t i = entry_index(m, addr, 0), f, t;
    uint64_t voff = (addr - v->start) >> m->page_shift;
    fault_around_window(m, v, addr, &f, &t);
    /* entry j holds file page idx + j - i: keep j < i + fpages - idx */
    int64_t t_eof = (int64_t)i + (int64_t)v->obj->fpages - (int64_t)(v->pgoff + voff);
    if (t_eof < 0)
        t_eof = 0;
    if ((int64_t)t < t_eof)
        t_eof = (int64_t)t;
    t = (uint64_t)t_eof;
    *from = f;
    *to = t > f ? t : f;
}

/* Whether the fault-around would map page j (entry index) of the window. */
static inline bool fa_mappable(const cs_shobj *o, const uint64_t *table, uint64_t j, uint64_t fidx)
{
    return (!table || !table[j]) && o->pages[fidx] && !(o->pstate[fidx] & PS_RA_MARK);
}

static uint64_t fa_count(cs_machine *m, const cs_vma *v, const uint64_t *table, uint64_t addr)
{
    uint64_t from, to, n = 0, i = entry_index(m, addr, 0);
    uint64_t idx = v->pgoff + ((addr - v->start) >> m->page_shift);
    fa_window(m, v, addr, &from, &to);
    for (uint64_t j = from; j < to; j++)
        n += fa_mappable(v->obj, table, j, idx + j - i);
    return n;
}

static void map_file_page(cs_machine *m, uint64_t *pte, uint64_t f, uint64_t flags)
{
    m->fm[f].ref++;
    m->fm[f].mapc++;
    *pte = MK_PTE(f, PTE_PRESENT | flags);
}

/* filemap_map_pages over the window: every cached, unmarked page not yet
 * mapped, read-only and clean (private: CoW; shared: write-notify). */
static void fault_around(cs_machine *m, const cs_vma *v, uint64_t *pte, uint64_t addr)
{
    uint64_t from, to, i = entry_index(m, addr, 0);
    uint64_t idx = v->pgoff + ((addr - v->start) >> m->page_shift);
    uint64_t *table = pte - i;
    fa_window(m, v, addr, &from, &to);
    for (uint64_t j = from; j < to; j++)
        if (fa_mappable(v->obj, table, j, idx + j - i))
            map_file_page(m, &table[j], v->obj->pages[idx + j - i], 0);
}

/* FL: the whole large folio of page idx, where it lies inside the region and
 * one level-0 table: its empty entries mapped with `flags` (filemap_map_pages
 * maps a large folio at once in a fresh table; do_shared_fault maps the whole
 * folio).  Returns false when it does not fit (the caller maps one page). */
static bool map_whole_folio(cs_machine *m, const cs_vma *v, uint64_t *pte, uint64_t addr, uint64_t flags)
{
    cs_shobj *o = v->obj;
    uint64_t idx = v->pgoff + ((addr - v->start) >> m->page_shift);
    uint64_t head = folio_head(o, idx), nr = folio_nr(o, idx);
    uint64_t vs = (addr & ~(((uint64_t)1 << m->page_shift) - 1)) - ((idx - head) << m->page_shift), ve = vs + (nr << m->page_shift);
    if (nr == 1 || vs < v->start || ve > v->end || (vs >> entry_shift(m, 1)) != ((ve - 1) >> entry_shift(m, 1)))
        return false;
    uint64_t *table = pte - entry_index(m, addr, 0), j0 = entry_index(m, vs, 0);
    for (uint64_t k = 0; k < nr; k++)
        if (!table[j0 + k])
            map_file_page(m, &table[j0 + k], o->pages[head + k], flags);
    return true;
}

/* One page read alone (filemap_fault's __filemap_get_folio). */
static void read_page(cs_machine *m, cs_shobj *o, uint64_t i)
{
    cache_add(m, o, i, 0);
    m->st.pages_read++;
}

/* page_cache_ra_order: reads the uncached pages of [start, start + size), cut at
 * EOF, in folios of o->ra_order (smaller where the index is not aligned, a
 * folio would pass EOF, or meets a cached page); the folio holding
 * start + size - async gets PG_readahead.  Readahead gives up at the first
 * folio it has no frames for beyond `reserve`, the frames the fault still
 * needs; page `must` (or UINT64_MAX) is counted in reserve and always read. */
static void ra_window(cs_machine *m, cs_shobj *o, uint64_t start, uint64_t size, uint64_t async, uint64_t must,
                      uint64_t reserve)
{
    uint64_t end = o->fpages - start < size ? o->fpages : start + size;
    uint64_t mark = start + size - async;
    for (uint64_t i = start; i < end;) {
        if (o->pages[i]) {
            i++;
            continue;
        }
        unsigned order = o->ra_order;
        if (i && (unsigned)__builtin_ctzll(i) < order)
            order = (unsigned)__builtin_ctzll(i);
        for (;;) {
            bool fits = i + (1ULL << order) <= end;
            for (uint64_t k = i; fits && k < i + (1ULL << order); k++)
                fits = !o->pages[k];
            if (fits || !order)
                break;
            order--;
        }
        uint64_t n = 1ULL << order;
        bool has_must = must >= i && must < i + n;
        if (frames_free(m) < reserve + n - has_must)
            break;
        for (uint64_t k = i; k < i + n; k++)
            cache_add(m, o, k, order);
        m->st.pages_read += n;
        if (has_must) {
            must = UINT64_MAX;
            reserve--;
        }
        if (mark >= i && mark < i + n)
            o->pstate[i] |= PS_RA_MARK;
        i += n;
    }
    if (must != UINT64_MAX && !o->pages[must])   /* filemap_fault reads it alone */
        read_page(m, o, must);
}

static uint64_t next_ra_size(uint64_t cur, uint64_t max)
{
    uint64_t n = cur < max / 16 ? 4 * cur : 2 * cur;
    return n < max ? n : max;
}

/* do_sync_mmap_readahead on a miss of page idx. */
static void sync_readahead(cs_machine *m, const cs_vma *v, uint64_t idx, uint64_t reserve)
{
    cs_shobj *o = v->obj;
    uint64_t ra = m->ra_pages;
    if ((v->flags & CS_VMA_RANDOM) || !ra) {
        read_page(m, o, idx);
        return;
    }
    o->ra_start = idx > ra / 2 ? idx - ra / 2 : 0;   /* mmap read-around */
    o->ra_size = ra;
    o->ra_async = ra / 4;
    o->ra_order = 0;
    ra_window(m, o, o->ra_start, o->ra_size, o->ra_async, idx, reserve);
}

/* do_async_mmap_readahead: page idx is cached and marked (page_cache_async_ra). */
static void async_readahead(cs_machine *m, const cs_vma *v, uint64_t idx, uint64_t reserve)
{
    cs_shobj *o = v->obj;
    uint64_t ra = m->ra_pages;
    o->pstate[idx] &= (uint8_t)~PS_RA_MARK;
    if ((v->flags & CS_VMA_RANDOM) || !ra)
        return;
    if (idx == o->ra_start + o->ra_size - o->ra_async || idx == o->ra_start + o->ra_size) {
        o->ra_start += o->ra_size;
        o->ra_size = next_ra_size(o->ra_size, ra);
    } else {   /* a mark without valid state: restart after the cached run */
        uint64_t s = idx + 1;
        while (s < o->fpages && s - idx <= ra && o->pages[s])
            s++;
        if (s - idx > ra)
            return;
        o->ra_size = next_ra_size(s - idx + ra, ra);
        o->ra_start = s;
    }
    o->ra_async = o->ra_size;
    unsigned lg = 63 - (unsigned)__builtin_clzll(o->ra_size);   /* ilog2(ra->size) */
    o->ra_order += 2;   /* each asynchronous round ramps the folio order up */
    if (o->ra_order > lg)
        o->ra_order = lg;
    if (o->ra_order > FOLIO_MAX_ORDER)
        o->ra_order = FOLIO_MAX_ORDER;
    if (o->ra_start < o->fpages)
        ra_window(m, o, o->ra_start, o->ra_size, o->ra_async, UINT64_MAX, reserve);
}

/* A fault on an empty entry of a file region (do_read_fault, do_cow_fault,
 * do_shared_fault).  The tables above level 0 are allocated first, as
 * __handle_mm_fault does, even when the access then gets SIGBUS.  Returns
 * CS_ESIGBUS for a page wholly past the end of the file (FB1). */
cs_status filemap_fault(cs_machine *m, cs_proc *p, cs_vma *v, uint64_t addr, bool write, uint64_t **ptep,
                        cs_outcome *kind, bool *major)
{
    cs_shobj *o = v->obj;
    bool shared = (v->flags & CS_MAP_SHARED) != 0;
    uint64_t idx = v->pgoff + ((addr - v->start) >> m->page_shift);
    uint64_t *pte = *ptep;
    unsigned missing = pte ? 0 : pte_missing_tables(m, p, addr);
    uint64_t upper = missing ? missing - 1 : 0, leaf = missing ? 1 : 0;
    const uint64_t *table = pte ? pte - entry_index(m, addr, 0) : NULL;
    bool past = idx >= o->fpages;
    bool cached = !past && o->pages[idx];
    uint64_t around = write ? 0 : fa_count(m, v, table, addr);
    /* Frames the fault cannot do without; readahead takes only what is left. */
    uint64_t need = upper + ((past && !around) ? 0 : leaf) + (!past && !cached) + (!past && write && !shared);
    if (frames_free(m) < need)
        return CS_ENOMEM;
    if (!pte && upper)
        pmd_alloc(m, p, addr);
    *kind = shared ? CS_FAULT_SHARED : write ? CS_FAULT_COW_COPY : CS_FAULT_FILE;
    if (!write && around) {   /* do_fault_around first */
        if (!pte)
            *ptep = pte = pte_alloc(m, p, addr);
        fault_around(m, v, pte, addr);
        if (leaf && cached && !(o->pstate[idx] & PS_RA_MARK))   /* FL: a fresh table maps the whole folio */
            map_whole_folio(m, v, pte, addr, 0);
        if (*pte) {
            p->st.page_cache_hits++;
            m->st.page_cache_hits++;
            return CS_OK;
        }
    }
    if (past)
        return CS_ESIGBUS;
    uint64_t reserve = (pte ? 0 : 1) + (write && !shared);   /* still to come after the read */
    if (!cached) {
        *major = true;
        sync_readahead(m, v, idx, reserve + 1);
        if (!write) {   /* the retried fault: fault-around maps the window */
            if (!pte)
                *ptep = pte = pte_alloc(m, p, addr);
            fault_around(m, v, pte, addr);
            if (*pte)
                return CS_OK;
        }
    } else {
        p->st.page_cache_hits++;
        m->st.page_cache_hits++;
    }
    if (o->pstate[idx] & PS_RA_MARK)   /* fault-around skipped it */
        async_readahead(m, v, idx, (pte ? 0 : 1) + (write && !shared));
    if (!pte)
        *ptep = pte = pte_alloc(m, p, addr);
    uint64_t f = o->pages[idx];
    if (!write) {
        map_file_page(m, pte, f, 0);
        return CS_OK;
    }
    if (shared) {   /* do_shared_fault: the page (FL: its whole folio), writable and dirty */
        if (!map_whole_folio(m, v, pte, addr, PTE_WRITE | PTE_DIRTY))
            map_file_page(m, pte, f, PTE_WRITE | PTE_DIRTY);
        folio_mark_dirty(m, o, idx);
        return CS_OK;
    }
    /* do_cow_fault: a new anonymous page with the cache page's bytes */
    uint64_t nf = frame_alloc_copy(m, CS_FRAME_ANON | CS_FRAME_EXCLUSIVE, f);
    m->fm[nf].mapc = 1;
    *pte = MK_PTE(nf, PTE_PRESENT | PTE_WRITE | PTE_DIRTY);
    v->flags |= CS_VMA_ANON_VMA;
    p->st.pages_copied++;
    m->st.pages_copied++;
    return CS_OK;
}

/* A write to a present, read-only entry of a shared file region
 * (wp_page_shared): the same page, writable and dirty, its folio dirty. */
cs_status filemap_wp_fault(cs_machine *m, cs_proc *p UNUSED, cs_vma *v, uint64_t addr, uint64_t *pte,
                           cs_outcome *kind)
{
    uint64_t idx = v->pgoff + ((addr - v->start) >> m->page_shift);
    *pte |= PTE_WRITE | PTE_DIRTY;
    folio_mark_dirty(m, v->obj, idx);
    *kind = CS_FAULT_SHARED;
    return CS_OK;
}
