/* machine.c -- machine creation and teardown, the process table, spawn. */
#define _DEFAULT_SOURCE   /* MAP_ANONYMOUS, MAP_NORESERVE under -std=c11 */
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include "internal.h"

/* Reserves host memory that costs nothing until touched; `huge` asks for
 * transparent huge pages, which keep host TLB misses rare on dense data. */
static void *reserve(size_t len, bool huge)
{
    void *p = mmap(NULL, len, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0);
    if (p == MAP_FAILED)
        return NULL;
#ifdef MADV_HUGEPAGE
    if (huge)
        madvise(p, len, MADV_HUGEPAGE);
#endif
    return p;
}

static void release(void *p, size_t len)
{
    if (p)
        munmap(p, len);
}

static unsigned log2u(uint64_t v)
{
    unsigned s = 0;
    while ((1ULL << s) < v)
        s++;
    return s;
}

/* The host process forking (os.fork(), multiprocessing's fork start method, a
 * pre-fork server) while another thread is inside a call on a machine would
 * hand the child a copy of that machine's mutex locked by a thread the child
 * does not have, and a half-done operation: the child's next call would hang.
 * So fork() waits, like any other caller, until the calls in progress return:
 * the prepare handler takes every machine's lock, the parent and child
 * handlers release them.  The child then holds a consistent copy of every
 * machine, usable at once.  Lock order: the list, then machines; no other
 * code holds a machine's lock while taking the list's or another machine's. */
static pthread_mutex_t machines_lock = PTHREAD_MUTEX_INITIALIZER;
static cs_machine *machines;
static pthread_once_t atfork_once = PTHREAD_ONCE_INIT;
static int atfork_status;

static void atfork_prepare(void)
{
    pthread_mutex_lock(&machines_lock);
    for (cs_machine *m = machines; m; m = m->fork_next)
        LOCK(m);
}

static void atfork_release(void)
{
    for (cs_machine *m = machines; m; m = m->fork_next)
        UNLOCK(m);
    pthread_mutex_unlock(&machines_lock);
}

static void atfork_register(void)
{
    atfork_status = pthread_atfork(atfork_prepare, atfork_release, atfork_release);
}

static bool machine_list_add(cs_machine *m)
{
    if (pthread_once(&atfork_once, atfork_register) || atfork_status)
        return false;
    pthread_mutex_lock(&machines_lock);
    m->fork_prev = NULL;
    m->fork_next = machines;
    if (machines)
        machines->fork_prev = m;
    machines = m;
    pthread_mutex_unlock(&machines_lock);
    return true;
}

static void machine_list_del(cs_machine *m)
{
    pthread_mutex_lock(&machines_lock);
    if (m->fork_prev)
        m->fork_prev->fork_next = m->fork_next;
    else
        machines = m->fork_next;
    if (m->fork_next)
        m->fork_next->fork_prev = m->fork_prev;
    pthread_mutex_unlock(&machines_lock);
}

cs_status cs_machine_new(const cs_config *cfg, cs_machine **out)
{
    *out = NULL;
    uint32_t ps = cfg->page_size;
    if (ps != 4096 && ps != 16384 && ps != 65536)
        return CS_EINVAL;
    unsigned shift = log2u(ps), bits = shift - 3;
    if (cfg->thp_cow != CS_THP_COW_SPLIT && cfg->thp_cow != CS_THP_COW_COPY_HUGE)
        return CS_EINVAL;
    if (cfg->memory % ps || cfg->memory / ps < 2 || cfg->memory / ps > UINT32_MAX)
        return CS_EINVAL;
    if (cfg->va_bits < shift + bits + 1 || cfg->va_bits > 63)
        return CS_EINVAL;
    unsigned levels = (cfg->va_bits - shift + bits - 1) / bits;
    if (levels < 2 || levels > MAX_LEVELS)
        return CS_EINVAL;

    cs_machine *m = calloc(1, sizeof *m);
    if (!m)
        return CS_EHOST;
    m->cfg = *cfg;
    m->page_shift = shift;
    m->bits = bits;
    m->levels = levels;
    m->epl = (uint64_t)1 << bits;
    m->nframes = cfg->memory / ps;
    m->user_end = (uint64_t)1 << (cfg->va_bits - 1);
    m->user_start = 65536 > ps ? 65536 : ps;
    uint64_t fa = cfg->fault_around_bytes >> shift;
    m->fault_around_pages = 1;
    while (m->fault_around_pages * 2 <= fa)   /* rounddown_pow_of_two */
        m->fault_around_pages *= 2;
    m->ra_pages = ((uint64_t)cfg->readahead_kb << 10) >> shift;
    m->next_file_id = 1;
    m->bump = 1;   /* frame 0 is the zero page */
    m->ro_pte = PTE_PRESENT;
    if (cfg->tlb_entries & (cfg->tlb_entries - 1)) {
        free(m);
        return CS_EINVAL;
    }
    m->tlb_mask = cfg->tlb_entries ? cfg->tlb_entries - 1 : 0;
    /* Frames are handed out densely from the bottom, so everything below is
     * touched densely too: reserved lazily, backed by huge pages. */
    m->fmlen = m->nframes * sizeof *m->fm;
    m->fm = reserve(m->fmlen, true);
    m->tpoollen = (size_t)m->nframes << shift;   /* a slot per frame: never full */
    m->tpool = reserve(m->tpoollen, true);
    m->tframelen = m->nframes * sizeof *m->tframe;
    m->tframe = reserve(m->tframelen, true);
    m->tbump = 1;   /* slot 0 means "no table" */
    bool ok = m->fm && m->tpool && m->tframe;
    if (ok && cfg->store_data) {
        m->memlen = (size_t)m->nframes << shift;
        m->mem = reserve(m->memlen, true);
        ok = m->mem != NULL;
    }
    bool locked = ok && !pthread_mutex_init(&m->lock, NULL);
    if (!locked || !machine_list_add(m)) {
        if (locked)
            pthread_mutex_destroy(&m->lock);
        release(m->fm, m->fmlen);
        release(m->tpool, m->tpoollen);
        release(m->tframe, m->tframelen);
        release(m->mem, m->memlen);
        free(m);
        return CS_EHOST;
    }
    m->next_pid = 1;
    *out = m;
    return CS_OK;
}

void cs_machine_free(cs_machine *m)
{
    if (!m)
        return;
    machine_list_del(m);
    cs_proc *p;
    pidmap_for_each(&m->pids, p) {
        vma_release(p);
        tlb_release(p);
        free(p);
    }
    for (cs_shobj *o = m->objs, *n; o; o = n) {
        n = o->next;
        free(o->pages);
        free(o);
    }
    files_free_all(m);
    pidmap_free(&m->pids);
    release(m->fm, m->fmlen);
    release(m->tpool, m->tpoollen);
    release(m->tframe, m->tframelen);
    release(m->mem, m->memlen);
    release(m->blk_free, m->blk_freelen);
    release(m->prev_free, m->prev_freelen);
    pthread_mutex_destroy(&m->lock);
    free(m);
}

cs_status cs_geometry_get(cs_machine *m, cs_geometry *out)
{
    out->levels = m->levels;
    out->entries_per_table = (uint32_t)m->epl;
    out->nframes = m->nframes;
    out->user_start = m->user_start;
    out->user_end = m->user_end;
    return CS_OK;
}

/* A pid without a record: reaped (it existed) or never created. */
cs_status proc_missing(const cs_machine *m, int32_t pid)
{
    return pid > 0 && pid < m->next_pid ? CS_EEXITED : CS_ENOPROC;
}

cs_status proc_get(cs_machine *m, int32_t pid, cs_proc **out)
{
    cs_proc *p = pidmap_find(&m->pids, pid);
    if (!p)
        return proc_missing(m, pid);
    if (p->exited)
        return CS_EEXITED;
    *out = p;
    return p->borrower ? CS_ESUSPENDED : CS_OK;
}

cs_proc *proc_new(cs_machine *m, int32_t ppid, size_t vma_cap, bool with_root)
{
    if (m->next_pid == INT32_MAX || m->nlive >= MAPC_MAX)   /* a mapcount must fit 24 bits */
        return NULL;
    if (!pidmap_reserve(&m->pids))
        return NULL;
    cs_proc *p = calloc(1, sizeof *p);
    if (!p || (with_root && !vma_reserve(p, vma_cap)) || !tlb_init(m, p)) {
        if (p)
            vma_release(p);
        free(p);
        return NULL;
    }
    p->root = with_root ? table_alloc(m, p) : 0;
    if (with_root && !p->root) {
        tlb_release(p);
        vma_release(p);
        free(p);
        return NULL;
    }
    p->pid = m->next_pid++;
    p->ppid = ppid;
    pidmap_insert(&m->pids, p);
    m->nlive++;
    return p;
}

/* Moves the address space of a vfork child back to the process it borrowed
 * it from, which resumes.  The lender's TLB may hold translations the child
 * changed, so its entries are dropped (the child's own flushes were counted). */
void mm_move(cs_proc *dst, cs_proc *src)
{
    dst->root = src->root;
    dst->vma_root = src->vma_root;
    dst->vma_first = src->vma_first;
    dst->vma_last = src->vma_last;
    dst->nvmas = src->nvmas;
    dst->ntables = src->ntables;
    dst->vma_hint = NULL;
    src->root = 0;
    src->vma_root = src->vma_first = src->vma_last = NULL;
    src->nvmas = 0;
    src->ntables = 0;
    src->vma_hint = NULL;
}

void mm_give_back(cs_machine *m, cs_proc *p)
{
    cs_proc *l = pidmap_find(&m->pids, p->lender);   /* suspended, hence live */
    mm_move(l, p);
    l->borrower = 0;
    p->lender = 0;
    if (l->tlb)
        for (uint64_t i = 0; i <= m->tlb_mask; i++)
            l->tlb[i].vpn = TLB_INVALID;
}

/* release_task + put_task_struct: the record of an exited process goes
 * once nothing holds it; its pid stays used (reaped, never handed out again). */
static void proc_release(cs_machine *m, cs_proc *p)
{
    m->reaped.minflt += p->st.minflt;
    m->reaped.segfaults += p->st.segfaults;
    m->reaped.pages_copied += p->st.pages_copied;
    m->reaped.thp_faults += p->st.thp_faults;
    m->reaped.majflt += p->st.majflt;
    m->reaped.sigbus += p->st.sigbus;
    m->reaped.page_cache_hits += p->st.page_cache_hits;
    m->reaped.thp_splits += p->st.thp_splits;
    pidmap_remove(&m->pids, p->pid);
    free(p);
}

/* Exit: zap everything, free every table; the record stays for its stats
 * while a handle holds it (cs_proc_get), else it goes at once.
 * A vfork child gives the address space back instead. */
void proc_destroy(cs_machine *m, cs_proc *p)
{
    if (p->lender)
        mm_give_back(m, p);
    mm_teardown(m, p);
    tlb_release(p);
    vma_release(p);   /* the spares */
    p->exited = true;
    m->nlive--;
    if (!p->holds)
        proc_release(m, p);
}

cs_status cs_spawn(cs_machine *m, int32_t *pid_out)
{
    LOCK(m);
    cs_status st = CS_OK;
    if (frames_free(m) < 1) {
        st = CS_ENOMEM;
    } else {
        cs_proc *p = proc_new(m, 0, 0, true);
        if (p)
            *pid_out = p->pid;
        else
            st = CS_EHOST;
    }
    UNLOCK(m);
    return st;
}

cs_status cs_proc_parent(cs_machine *m, int32_t pid, int32_t *ppid_out)
{
    LOCK(m);
    cs_status st = CS_OK;
    cs_proc *p = pidmap_find(&m->pids, pid);
    if (!p)
        st = proc_missing(m, pid);
    else
        *ppid_out = p->ppid;
    UNLOCK(m);
    return st;
}

/* get_task_struct: a handle keeps the record, hence the final counters, of
 * an exited process. */
cs_status cs_proc_get(cs_machine *m, int32_t pid, int32_t *ppid_out)
{
    LOCK(m);
    cs_status st = CS_OK;
    cs_proc *p = pidmap_find(&m->pids, pid);
    if (!p)
        st = proc_missing(m, pid);
    else if (p->holds == UINT32_MAX)
        st = CS_EINVAL;
    else {
        p->holds++;
        *ppid_out = p->ppid;
    }
    UNLOCK(m);
    return st;
}

/* put_task_struct: the last handle on an exited process frees its record. */
cs_status cs_proc_put(cs_machine *m, int32_t pid)
{
    LOCK(m);
    cs_status st = CS_OK;
    cs_proc *p = pidmap_find(&m->pids, pid);
    if (!p)
        st = proc_missing(m, pid);
    else if (!p->holds)
        st = CS_EINVAL;
    else if (!--p->holds && p->exited)
        proc_release(m, p);
    UNLOCK(m);
    return st;
}

cs_status cs_proc_state(cs_machine *m, int32_t pid, int32_t *state_out)
{
    LOCK(m);
    cs_status st = CS_OK;
    cs_proc *p = pidmap_find(&m->pids, pid);
    if (!p && (st = proc_missing(m, pid)) == CS_EEXITED)
        st = CS_OK;   /* reaped */
    if (!st)
        *state_out = !p || p->exited ? CS_PROC_EXITED
                     : p->borrower  ? CS_PROC_SUSPENDED
                     : p->lender    ? CS_PROC_BORROWING
                                    : CS_PROC_RUNNING;
    UNLOCK(m);
    return st;
}

static int pid_cmp(const void *a, const void *b)
{
    int32_t x = *(const int32_t *)a, y = *(const int32_t *)b;
    return (x > y) - (x < y);
}

cs_status cs_pids(cs_machine *m, int32_t *out, size_t cap, size_t *count)
{
    LOCK(m);
    size_t n = 0;
    cs_proc *p;
    pidmap_for_each(&m->pids, p) {
        if (!p->exited) {
            if (n < cap)
                out[n] = p->pid;
            n++;
        }
    }
    if (n <= cap && n > 1)
        qsort(out, n, sizeof *out, pid_cmp);
    *count = n;
    UNLOCK(m);
    return CS_OK;
}
