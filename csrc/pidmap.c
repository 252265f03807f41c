/* pidmap.c -- the map from pid to process record (kernel/pid.c: find_pid_ns).
 *
 * Open addressing with linear probing; a removed entry is closed up by
 * backward shift (Knuth 6.4, Algorithm R), so lookups never meet tombstones.
 * Fibonacci hashing spreads the consecutive pids a machine hands out.  The
 * map holds the records of live processes and of exited ones still held
 * (put_task_struct frees the rest), so its size follows the records, not the
 * pids ever created: it doubles past half full and halves below one eighth. */
#include <stdlib.h>
#include "internal.h"

static size_t pid_home(const pid_map *pm, int32_t pid)
{
    return (size_t)(((uint32_t)pid * 0x9E3779B9u) >> pm->shift);
}

static void slot_put(pid_map *pm, cs_proc *p)
{
    size_t mask = pm->cap - 1, i = pid_home(pm, p->pid);
    while (pm->slots[i].pid)
        i = (i + 1) & mask;
    pm->slots[i] = (pid_slot){p->pid, p};
}

/* Moves every entry into a table of cap slots (a power of two >= PIDMAP_MIN). */
static bool rehash(pid_map *pm, size_t cap)
{
    pid_slot *slots = calloc(cap, sizeof *slots);
    if (!slots)
        return false;
    pid_map old = *pm;
    unsigned bits = 0;
    while (((size_t)1 << bits) < cap)
        bits++;
    pm->slots = slots;
    pm->cap = cap;
    pm->shift = 32 - bits;
    for (size_t i = 0; i < old.cap; i++)
        if (old.slots[i].pid)
            slot_put(pm, old.slots[i].p);
    free(old.slots);
    return true;
}

cs_proc *pidmap_find(const pid_map *pm, int32_t pid)
{
    if (pid <= 0 || !pm->cap)
        return NULL;
    size_t mask = pm->cap - 1;
    for (size_t i = pid_home(pm, pid);; i = (i + 1) & mask) {   /* never full: ends at a free slot */
        if (pm->slots[i].pid == pid)
            return pm->slots[i].p;
        if (!pm->slots[i].pid)
            return NULL;
    }
}

bool pidmap_reserve(pid_map *pm)
{
    if ((pm->count + 1) * 2 <= pm->cap)
        return true;
    return rehash(pm, pm->cap ? pm->cap * 2 : PIDMAP_MIN);
}

void pidmap_insert(pid_map *pm, cs_proc *p)
{
    slot_put(pm, p);
    pm->count++;
}

void pidmap_remove(pid_map *pm, int32_t pid)
{
    size_t mask = pm->cap - 1, i = pid_home(pm, pid);
    while (pm->slots[i].pid != pid)
        i = (i + 1) & mask;
    /* Backward shift: an entry after the hole moves into it unless its home
     * lies cyclically in (hole, entry]. */
    for (size_t j = (i + 1) & mask; pm->slots[j].pid; j = (j + 1) & mask) {
        size_t h = pid_home(pm, pm->slots[j].pid);
        if (((j - h) & mask) >= ((j - i) & mask)) {
            pm->slots[i] = pm->slots[j];
            i = j;
        }
    }
    pm->slots[i] = (pid_slot){0, NULL};
    pm->count--;
    if (pm->cap > PIDMAP_MIN && pm->count * 8 < pm->cap)
        rehash(pm, pm->cap / 2);   /* best effort: a refused shrink keeps the larger table */
}

void pidmap_free(pid_map *pm)
{
    free(pm->slots);
    *pm = (pid_map){0};
}
