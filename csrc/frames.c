/* frames.c -- the physical frame allocator: O(1) allocate and free.
 *
 * Free frames form a LIFO list threaded through their metadata.  Frames
 * never handed out lie above `bump` and are taken in increasing order, so a
 * huge machine costs no host memory until its frames are used. */
#include <string.h>
#include "internal.h"

uint64_t frame_alloc(cs_machine *m, uint8_t flags)
{
    uint64_t f;
    if (m->free_head) {
        f = m->free_head;
        m->free_head = m->fm[f].next_free;
    } else if (m->bump < m->nframes) {
        f = m->bump++;
    } else {
        return 0;
    }
    m->nused++;
    if (m->nused > m->st.frames_peak)
        m->st.frames_peak = m->nused;
    m->st.frames_allocated++;
    m->fm[f].ref = 1;
    m->fm[f].mapc = 0;
    m->fm[f].flags = flags;
    if (m->mem && !(flags & CS_FRAME_PAGETABLE))
        memset(frame_data(m, f), 0, (size_t)1 << m->page_shift);
    return f;
}

void frame_free(cs_machine *m, uint64_t f)
{
    m->fm[f].ref = 0;
    m->fm[f].next_free = (uint32_t)m->free_head;
    m->free_head = f;
    m->nused--;
    m->st.frames_freed++;
}

void frame_put(cs_machine *m, uint64_t f)
{
    if (--m->fm[f].ref == 0)
        frame_free(m, f);
}
