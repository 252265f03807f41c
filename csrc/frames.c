/* frames.c -- the physical frame allocator: O(1) allocate and free.
 *
 * Free frames form a LIFO list threaded through their metadata.  Frames
 * never handed out lie above `bump` and are taken in increasing order, so a
 * huge machine costs no host memory until its frames are used.
 *
 * Huge pages need 512 contiguous frames, 512-aligned (a buddy allocator's
 * order-9 block).  Once a huge region exists (frames_thp_enable) the
 * allocator also keeps, per 512-frame block, how many of its frames are on
 * the free list, and back links through the list, so a fully free block is
 * known however its frames were freed and can be unlinked in O(512).
 * Single-frame allocation is unchanged (LIFO list, then bump), so frame
 * numbers are those of a machine without THP until a huge page is taken. */
#define _DEFAULT_SOURCE   /* MAP_ANONYMOUS, MAP_NORESERVE */
#include <string.h>
#include <sys/mman.h>
#include "internal.h"

static inline void blk_count(cs_machine *m, uint64_t f, int d)
{
    m->blk_free[f >> HPAGE_ORDER] = (uint16_t)(m->blk_free[f >> HPAGE_ORDER] + d);
}

static inline void fresh(cs_machine *m, uint64_t f, uint8_t flags)
{
    m->fm[f].ref = 1;
    m->fm[f].mapc = 0;
    m->fm[f].flags = flags;
}

static inline void count_alloc(cs_machine *m, uint64_t n)
{
    m->nused += n;
    if (m->nused > m->st.frames_peak)
        m->st.frames_peak = m->nused;
    m->st.frames_allocated += n;
}

/* A frame off the free list (or the never-used end), its bytes as they are. */
static uint64_t frame_take(cs_machine *m, uint8_t flags)
{
    uint64_t f;
    if (m->free_head) {
        f = m->free_head;
        m->free_head = m->fm[f].next_free;
        if (m->thp_used) {
            m->prev_free[m->free_head] = 0;
            blk_count(m, f, -1);
        }
    } else if (m->bump < m->nframes) {
        f = m->bump++;
    } else {
        return 0;
    }
    count_alloc(m, 1);
    fresh(m, f, flags);
    return f;
}

uint64_t frame_alloc(cs_machine *m, uint8_t flags)
{
    uint64_t f = frame_take(m, flags);
    if (f && m->mem && !(flags & CS_FRAME_PAGETABLE))
        memset(frame_data(m, f), 0, (size_t)1 << m->page_shift);
    return f;
}

/* A frame holding a copy of frame src's bytes (data mode): no zeroing first,
 * which would double the memory traffic of a CoW copy. */
uint64_t frame_alloc_copy(cs_machine *m, uint8_t flags, uint64_t src)
{
    uint64_t f = frame_take(m, flags);
    if (f && m->mem)
        memcpy(frame_data(m, f), frame_data(m, src), (size_t)1 << m->page_shift);
    return f;
}

static inline void push_free(cs_machine *m, uint64_t f)
{
    m->fm[f].ref = 0;
    m->fm[f].next_free = (uint32_t)m->free_head;
    if (m->thp_used) {
        m->prev_free[m->free_head] = (uint32_t)f;   /* slot 0 is a harmless sink */
        m->prev_free[f] = 0;
        blk_count(m, f, +1);
    }
    m->free_head = f;
}

void frame_free(cs_machine *m, uint64_t f)
{
    push_free(m, f);
    m->nused--;
    m->st.frames_freed++;
}

void frame_put(cs_machine *m, uint64_t f)
{
    if (--m->fm[f].ref == 0)
        frame_free(m, f);
}

/* The first huge region: reserve the side arrays (untouched memory costs
 * nothing) and count the free list into them.  Frames above bump are free
 * but not listed; blocks wholly above bump are taken from there. */
cs_status frames_thp_enable(cs_machine *m)
{
    if (m->thp_used)
        return CS_OK;
    size_t nblk = (m->nframes >> HPAGE_ORDER) + 1;
    m->blk_freelen = nblk * sizeof *m->blk_free;
    m->prev_freelen = m->nframes * sizeof *m->prev_free;
    void *b = mmap(NULL, m->blk_freelen, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0);
    void *pv = mmap(NULL, m->prev_freelen, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0);
    if (b == MAP_FAILED || pv == MAP_FAILED) {
        if (b != MAP_FAILED)
            munmap(b, m->blk_freelen);
        if (pv != MAP_FAILED)
            munmap(pv, m->prev_freelen);
        return CS_EHOST;
    }
    m->blk_free = b;
    m->prev_free = pv;
    uint64_t prev = 0;
    for (uint64_t f = m->free_head; f; prev = f, f = m->fm[f].next_free) {
        m->prev_free[f] = (uint32_t)prev;
        blk_count(m, f, +1);
    }
    m->thp_used = true;
    return CS_OK;
}

/* A free 512-aligned block of 512 frames: the lowest-numbered one whose
 * frames are all on the free list, else the first aligned block above
 * bump.  Returns its first frame, or 0.  (Block 0 holds the zero page, so
 * 0 never names a block.) */
uint64_t frame_block_find(cs_machine *m)
{
    uint64_t below = m->bump >> HPAGE_ORDER;
    for (uint64_t b = 1; b < below; b++)
        if (m->blk_free[b] == HPAGE_NR)
            return b << HPAGE_ORDER;
    uint64_t f = (m->bump + HPAGE_NR - 1) & ~(uint64_t)(HPAGE_NR - 1);
    return f + HPAGE_NR <= m->nframes ? f : 0;
}

/* Takes block b (from frame_block_find) for a huge page: ANON, EXCLUSIVE,
 * HUGE, refcount 1, mapcount 1 on each frame.  A block above bump moves
 * bump past it; the frames skipped below it go onto the free list, lowest
 * on top, so single frames still come out in increasing order. */
void frame_block_alloc(cs_machine *m, uint64_t b)
{
    if (b >= m->bump) {
        for (uint64_t f = b; f-- > m->bump;)
            push_free(m, f);
        m->bump = b + HPAGE_NR;
    } else {
        for (uint64_t f = b; f < b + HPAGE_NR; f++) {   /* unlink from the free list */
            uint64_t next = m->fm[f].next_free, prev = m->prev_free[f];
            if (prev)
                m->fm[prev].next_free = (uint32_t)next;
            else
                m->free_head = next;
            m->prev_free[next] = (uint32_t)prev;
        }
        m->blk_free[b >> HPAGE_ORDER] = 0;
    }
    count_alloc(m, HPAGE_NR);
    for (uint64_t f = b; f < b + HPAGE_NR; f++) {
        fresh(m, f, CS_FRAME_ANON | CS_FRAME_EXCLUSIVE | CS_FRAME_HUGE);
        m->fm[f].mapc = 1;
    }
    if (m->mem)
        memset(frame_data(m, b), 0, (size_t)HPAGE_NR << m->page_shift);
}
