/*
 * internal.h -- data structures shared by the core's translation units.
 * Not part of the API (cffi never sees this file).
 */
#ifndef COWSIM_INTERNAL_H
#define COWSIM_INTERNAL_H

#include <pthread.h>
#include <stdbool.h>
#include "cowsim.h"

/* Page-table entry: frame number above PTE_FRAME_SHIFT, flag bits below.
 * A present entry with frame 0 maps the shared zero page. */
#define PTE_PRESENT  1ULL
#define PTE_WRITE    2ULL
#define PTE_DIRTY    4ULL
/* Level-1 entries only: the level-0 table below is shared by an odf fork and
 * write-protected for this process (odf.c). */
#define PMD_WP       8ULL
/* Level-1 entries only: a huge (PMD) mapping of 2 MiB (thp.c).  The entry's
 * frame field is the pool slot of the deposited level-0 table, whose first
 * word holds the huge page's first frame (0: the huge zero page); WRITE and
 * DIRTY are the mapping's own bits, read and set live through the TLB. */
#define PMD_HUGE    16ULL
#define HPAGE_ORDER 9
#define PAGE_SHIFT_4K 12   /* 4 KiB pages: THP's only size; batch.c's specialised copies */
#define HPAGE_NR    (1u << HPAGE_ORDER)   /* frames per huge page (4 KiB pages only) */
#define PTE_FRAME_SHIFT 12
#define PTE_FRAME(e) ((e) >> PTE_FRAME_SHIFT)
#define MK_PTE(frame, flags) (((uint64_t)(frame) << PTE_FRAME_SHIFT) | (flags))

#define ZERO_FRAME 0
#define UNUSED __attribute__((unused))   /* callback parameters some visitors ignore */
#define MAX_LEVELS 8

/* Per-frame metadata, packed in 8 bytes so that one cache line serves a
 * frame's counts and flags.  A free frame (ref 0) uses the second word as
 * the free-list link. */
typedef struct {
    uint32_t ref;
    union {
        struct {
            uint32_t mapc : 24;
            uint32_t flags : 8;
        };
        uint32_t next_free;
    };
} frame_meta;
#define MAPC_MAX ((1u << 24) - 1)

/* A shmem object (the pages behind a MAP_SHARED anonymous mapping) or a
 * file (its page cache: struct address_space; id > 0).  pages[i] is the
 * frame of page i, 0 when not allocated (shmem) or not cached (file); the
 * object holds one reference to each.  For a file, pages has room for
 * npages pages, of which fpages (ceil(size / page size)) hold bytes, and
 * pstate[i] gives page i's folio order and readahead mark (filemap.c). */
typedef struct cs_shobj {
    uint64_t npages;
    uint64_t *pages;          /* frame per page offset, 0 = not yet allocated / not cached */
    uint32_t nvmas;           /* regions referring to this object */
    uint32_t seen;            /* scratch for cs_check */
    struct cs_shobj *prev, *next;
    /* files only */
    int32_t id;               /* 0: a shmem object */
    bool unlinked;            /* deleted: freed when the last region goes */
    uint64_t size, fpages;    /* bytes, and pages holding bytes */
    uint8_t *pstate;          /* per page: PS_ORDER bits, PS_RA_MARK */
    unsigned char *disk;      /* data mode: the bytes on disk (npages pages, reserved lazily) */
    size_t disklen;
    uint64_t ra_start, ra_size, ra_async;   /* file_ra_state of the mmap readahead */
    unsigned ra_order;        /* its folio order (page_cache_ra_order) */
} cs_shobj;
#define PS_ORDER 0x0f         /* the order of the folio holding the page */
#define PS_RA_MARK 0x10       /* PG_readahead on the folio (its first page) */
#define FOLIO_MAX_ORDER 9     /* MAX_PAGECACHE_ORDER (a PMD) */

/* A region (vm_area_struct).  A process's regions are an AVL tree by start
 * (Linux < 6.1: mm_rb), augmented as the kernel's was: subtree_gap is the
 * largest free range just below a region of the subtree (rb_subtree_gap; the
 * first region's counts from address 0), and a list in address order
 * (vm_prev/vm_next).  Nodes never move while they live, so a pointer to a
 * region stays valid until that region is split away or unmapped. */
typedef struct cs_vma {
    uint64_t start, end;      /* byte addresses, page aligned, [start, end) */
    struct cs_vma *left, *right;   /* the tree (a lookup reads the first 32 bytes only) */
    int16_t prot;             /* CS_PROT_* */
    int16_t flags;            /* CS_MAP_SHARED | CS_VMA_* */
    int32_t height;           /* AVL height, 1 for a leaf */
    cs_shobj *obj;            /* shared regions only */
    uint64_t pgoff;           /* page offset of start inside obj */
    struct cs_vma *parent;
    struct cs_vma *prev, *next;    /* address order; next also links the spares */
    uint64_t subtree_gap;
} cs_vma;   /* 88 bytes: a 96-byte heap chunk */

/* A software TLB entry: the virtual page and its level-0 entry.  Entries
 * are read live, so the TLB can never return a stale translation; it is
 * flushed where the kernel flushes, which keeps pointers valid when tables
 * are freed and makes its hit/miss/flush counts those of a real TLB. */
typedef struct {
    uint64_t vpn;             /* TLB_INVALID when empty */
    uint64_t *pte;
} tlb_entry;
#define TLB_INVALID UINT64_MAX

typedef struct cs_proc {
    int32_t pid, ppid;
    uint64_t root;            /* pool slot of the top-level table */
    cs_vma *vma_root;         /* regions: the tree (see cs_vma) */
    cs_vma *vma_first, *vma_last;   /* and its ends in address order */
    size_t nvmas;
    cs_vma *vma_hint;         /* the last region found (vmacache) */
    cs_vma *vma_spare;        /* preallocated nodes (vma_reserve), linked by next */
    size_t nspare;
    uint64_t ntables;         /* table frames held, root included */
    int32_t lender;           /* vfork child: the pid whose address space it holds */
    int32_t borrower;         /* vfork parent: the child holding its address space */
    tlb_entry *tlb;           /* NULL when the machine has no TLB */
    cs_proc_stats st;
    uint32_t holds;           /* handles on the record (cs_proc_get), as task_struct's usage */
    bool exited;              /* its space is gone; the record stays while held */
} cs_proc;

/* pidmap.c: pid -> record, for live processes and held exited ones.  A slot
 * with pid 0 is free; cap is 0 or a power of two >= PIDMAP_MIN. */
typedef struct {
    int32_t pid;
    cs_proc *p;
} pid_slot;
typedef struct {
    pid_slot *slots;
    size_t cap, count;
    unsigned shift;           /* 32 - log2(cap), for the hash */
} pid_map;
#define PIDMAP_MIN 16

struct cs_machine {
    unsigned page_shift, bits, levels;
    uint64_t epl;             /* entries per table */
    uint64_t nframes;
    uint64_t user_start, user_end;
    uint64_t fault_around_pages;
    uint64_t tlb_mask;        /* tlb_entries - 1 */

    /* Frames. */
    frame_meta *fm;
    size_t fmlen;
    uint64_t free_head;       /* 0 = empty (frame 0 is never free) */
    uint64_t bump;            /* lowest never-used frame */
    uint64_t nused, npt;
    unsigned char *mem;       /* frame bytes (data mode only), reserved lazily */
    size_t memlen;
    /* The huge-page side of the allocator (frames.c), reserved and kept only
     * once a huge region exists: free-list frames per 512-frame block, and
     * back links so that a block's frames can leave the free list. */
    bool thp_used;
    uint16_t *blk_free;
    uint32_t *prev_free;
    size_t blk_freelen, prev_freelen;

    /* Table pages live in a dense pool of their own (good locality for
     * walks and forks); an upper-level entry holds the pool slot of the
     * table below, and tframe[slot] is the frame that the table costs.
     * Free slots are linked through tframe. */
    unsigned char *tpool;
    uint32_t *tframe;
    size_t tpoollen, tframelen;
    uint64_t tfree_head, tbump;

    /* Processes: the records of live ones and of exited ones still held.
     * A pid below next_pid without a record was reaped. */
    pid_map pids;
    int32_t next_pid;
    uint64_t nlive;
    cs_proc_stats reaped;     /* counters of the freed records, summed (cs_check) */

    cs_shobj *objs;
    uint64_t nobjs;


    /* On-demand fork (odf.c).  A TLB entry of a page under a write-protected
     * level-1 entry points at ro_pte, a read-only stand-in, so that the
     * TLB's write check fails as the hardware's would. */
    bool odf_used;            /* an odf fork ever happened: faults check level-1 entries */
    uint64_t nshared_tables;  /* level-0 tables with more than one holder */
    uint64_t ro_pte;

    cs_machine_stats st;      /* cumulative counters (gauges filled on read) */
    pthread_mutex_t lock;
    struct cs_machine *fork_prev, *fork_next;   /* the host process's machines (machine.c, atfork) */
    cs_config cfg;            /* as given (the hot copies of its values are above) */

    /* Files (filemap.c), kept at the end: the fields above are the hot ones.
     * ftab[id] for id < next_file_id, NULL once freed. */
    cs_shobj **ftab;
    size_t ftabcap;
    int32_t next_file_id;
    uint64_t nfiles;          /* not deleted */
    uint64_t ncache, ncache_dirty;   /* page-cache frames, dirty ones */
    uint64_t ra_pages;        /* readahead_kb in pages */
};

/* frames.c */
uint64_t frame_alloc(cs_machine *m, uint8_t flags);  /* zeroed; 0 when none free */
uint64_t frame_alloc_copy(cs_machine *m, uint8_t flags, uint64_t src);   /* src's bytes */
void frame_free(cs_machine *m, uint64_t f);
void frame_put(cs_machine *m, uint64_t f);           /* drop one reference */
cs_status frames_thp_enable(cs_machine *m);          /* first huge region: build the block counts */
uint64_t frame_block_find(cs_machine *m);            /* a free aligned 512-frame block, 0 if none */
void frame_block_alloc(cs_machine *m, uint64_t b);   /* takes the block frame_block_find gave */
static inline uint64_t frames_free(const cs_machine *m) { return m->nframes - 1 - m->nused; }
static inline unsigned char *frame_data(cs_machine *m, uint64_t f)
{
    return m->mem + (f << m->page_shift);
}

/* pagetable.c */
static inline uint64_t *table_of(cs_machine *m, uint64_t slot)
{
    return (uint64_t *)(m->tpool + (slot << m->page_shift));
}
static inline unsigned entry_shift(const cs_machine *m, unsigned level)
{
    return m->page_shift + level * m->bits;
}
static inline uint64_t entry_index(const cs_machine *m, uint64_t addr, unsigned level)
{
    return (addr >> entry_shift(m, level)) & (m->epl - 1);
}
/* End of the span of the entry covering `a` at `level`, clipped to `e` (also
 * when the span ends at the top of the address space: the sum wraps to 0). */
static inline uint64_t span_next(const cs_machine *m, uint64_t a, unsigned level, uint64_t e)
{
    uint64_t span = 1ULL << entry_shift(m, level);
    uint64_t next = (a & ~(span - 1)) + span;
    return (next > e || next < a) ? e : next;
}
uint64_t table_alloc(cs_machine *m, cs_proc *p);   /* a pool slot, 0 when no frame is free */
void table_free(cs_machine *m, cs_proc *p, uint64_t slot);
uint64_t *pte_lookup(cs_machine *m, cs_proc *p, uint64_t addr);   /* NULL under a huge entry too */
uint64_t *pmd_alloc(cs_machine *m, cs_proc *p, uint64_t addr);    /* tables above level 0 allocated */
uint64_t frame_at(cs_machine *m, cs_proc *p, uint64_t addr);      /* frame mapped at addr (present) */
unsigned pte_missing_tables(cs_machine *m, cs_proc *p, uint64_t addr);
uint64_t *pte_alloc(cs_machine *m, cs_proc *p, uint64_t addr);
/* pmd: the level-1 entry above the visited entry (PMD_WP: write-protected).
 * pte_walk visits a huge entry as its 512 pages, each through a scratch
 * level-0 entry (pmd then has PMD_HUGE); pte_walk_small skips huge entries. */
typedef void (*pte_visit_fn)(cs_machine *m, cs_proc *p, uint64_t *pte, uint64_t pmd, uint64_t addr,
                             void *ctx);
void pte_walk(cs_machine *m, cs_proc *p, uint64_t start, uint64_t end, pte_visit_fn fn, void *ctx);
void pte_walk_small(cs_machine *m, cs_proc *p, uint64_t start, uint64_t end, pte_visit_fn fn, void *ctx);
void tables_free_unused(cs_machine *m, cs_proc *p, uint64_t start, uint64_t end);
void tables_free_all(cs_machine *m, cs_proc *p);
uint64_t *pmd_lookup(cs_machine *m, cs_proc *p, uint64_t addr);   /* level-1 entry, NULL if absent */
typedef void (*pmd_visit_fn)(cs_machine *m, cs_proc *p, uint64_t *pmd, uint64_t span_start, void *ctx);
void pmd_walk(cs_machine *m, cs_proc *p, uint64_t start, uint64_t end, pmd_visit_fn fn, void *ctx);

/* odf.c */
static inline frame_meta *table_meta(cs_machine *m, uint64_t slot) { return &m->fm[m->tframe[slot]]; }
bool span_shareable(cs_proc *p, uint64_t span_start, uint64_t span);
void odf_share(cs_machine *m, cs_proc *child, uint64_t *src_pmd, uint64_t *dst_pmd);
unsigned odf_write_need(cs_machine *m, uint64_t pmd, uint64_t addr);
uint64_t *odf_unshare(cs_machine *m, cs_proc *p, uint64_t *pmd, uint64_t addr);
uint64_t odf_prepare_need(cs_machine *m, cs_proc *p, uint64_t start, uint64_t end, bool zap,
                          uint64_t *last);
void odf_prepare(cs_machine *m, cs_proc *p, uint64_t start, uint64_t end, bool zap);
void odf_detach_all(cs_machine *m, cs_proc *p);
cs_status odf_logical_mapcounts(cs_machine *m, uint32_t **out);   /* *out NULL when nothing is shared */

/* thp.c */
static inline uint64_t hpage_size(const cs_machine *m) { return (uint64_t)HPAGE_NR << m->page_shift; }
static inline bool pmd_is_huge(uint64_t pmd) { return (pmd & PMD_HUGE) != 0; }
static inline uint64_t huge_block(cs_machine *m, uint64_t pmd) { return table_of(m, PTE_FRAME(pmd))[0]; }
bool thp_span_ok(const cs_machine *m, const cs_vma *v, uint64_t addr);
bool folio_reusable(cs_machine *m, const uint64_t *table, uint64_t idx, uint64_t f);
typedef enum { THP_DONE, THP_FALLBACK } thp_result;
cs_status thp_fault_none(cs_machine *m, cs_proc *p, cs_vma *v, uint64_t *pmd, uint64_t addr, bool write,
                         cs_outcome *kind, uint64_t **ptep, thp_result *res);
cs_status thp_fault_huge(cs_machine *m, cs_proc *p, uint64_t *pmd, uint64_t addr, bool write,
                         cs_outcome *kind, uint64_t **ptep, thp_result *res);
void thp_split(cs_machine *m, cs_proc *p, uint64_t *pmd, uint64_t span_start);
void thp_split_at(cs_machine *m, cs_proc *p, uint64_t addr);
void thp_zap(cs_machine *m, cs_proc *p, uint64_t *pmd);
void thp_mprotect(cs_machine *m, cs_proc *p, uint64_t start, uint64_t end, bool writable);
void thp_fork_copy(cs_machine *m, cs_proc *child, uint64_t *src, uint64_t *dst, bool eager, bool rw);

/* K1 (vma_needs_copy): fork copies the entries of regions with an anon_vma
 * only; K3: not of don't-fork or wipe-on-fork regions. */
static inline bool vma_copies_entries(const cs_vma *v)
{
    return !(v->flags & (CS_MAP_SHARED | CS_VMA_DONTFORK | CS_VMA_WIPEONFORK)) &&
           (v->flags & CS_VMA_ANON_VMA);
}

/* K2 for one present entry of a private frame (not the zero page): the frame
 * gains a reference and a mapping and is no longer exclusive; the entry is
 * write-protected (dirty kept).  Returns the entry both sides now hold.
 * Used by a cow fork and by an odf table copy (the same work, deferred). */
static inline uint64_t pte_share(cs_machine *m, uint64_t *src)
{
    uint64_t e = *src, f = PTE_FRAME(e);
    m->fm[f].ref++;
    m->fm[f].mapc++;
    m->fm[f].flags &= (uint8_t)~CS_FRAME_EXCLUSIVE;
    *src = e & ~PTE_WRITE;
    return *src;
}

/* regions.c */
cs_vma *vma_find(cs_proc *p, uint64_t addr);
cs_vma *vma_first_ending_after(const cs_proc *p, uint64_t addr);   /* find_vma; NULL: none */
bool vma_overlaps(const cs_proc *p, uint64_t start, uint64_t end);
bool vma_reserve(cs_proc *p, size_t n);   /* n spare nodes, so that later steps cannot fail */
cs_vma *vma_alloc(cs_proc *p);            /* a spare node (reserved before) */
void vma_link(cs_proc *p, cs_vma *v);     /* v's range must be free */
void vma_remove(cs_machine *m, cs_proc *p, cs_vma *v);
enum { VMA_SPARES_KEPT = 2 };             /* what a split at both ends of a range needs */
void vma_trim_spares(cs_proc *p);         /* keeps VMA_SPARES_KEPT at most */
void vma_free_all(cs_machine *m, cs_proc *p);   /* every region (remove_vma order), shmem put */
void vma_release(cs_proc *p);             /* frees the nodes only (records being freed) */
void shobj_put(cs_machine *m, cs_shobj *o);
static inline bool vma_is_file(const cs_vma *v) { return (v->flags & CS_VMA_FILE) != 0; }
void zap_range(cs_machine *m, cs_proc *p, uint64_t start, uint64_t end);

/* tlb.c */
bool tlb_init(cs_machine *m, cs_proc *p);
void tlb_release(cs_proc *p);
void tlb_flush_all(cs_machine *m, cs_proc *p);
void tlb_flush_range(cs_machine *m, cs_proc *p, uint64_t start, uint64_t end);
void tlb_flush_page(cs_machine *m, cs_proc *p, uint64_t addr);

/* filemap.c */
cs_status file_get(cs_machine *m, int32_t id, cs_shobj **out);
void file_free(cs_machine *m, cs_shobj *f);   /* drops its cache (no region may map it) */
void files_free_all(cs_machine *m);
void folio_mark_dirty(cs_machine *m, cs_shobj *o, uint64_t idx);
cs_status filemap_fault(cs_machine *m, cs_proc *p, cs_vma *v, uint64_t addr, bool write, uint64_t **ptep,
                        cs_outcome *kind, bool *major);
cs_status filemap_wp_fault(cs_machine *m, cs_proc *p, cs_vma *v, uint64_t addr, uint64_t *pte, cs_outcome *kind);

/* fork.c */
void mm_teardown(cs_machine *m, cs_proc *p);   /* exit_mmap: every region, entry and table */

/* fault.c */
cs_status check_access(cs_proc *p, uint64_t addr, bool write, cs_access_info *info);
int access_slow(cs_machine *m, cs_proc *p, uint64_t addr, bool write, cs_access_info *info,
                uint64_t *pte);
void fault_around_window(const cs_machine *m, const cs_vma *v, uint64_t addr, uint64_t *from, uint64_t *to);
int access_fault(cs_machine *m, cs_proc *p, cs_vma *v, uint64_t addr, bool write, cs_access_info *info,
                 uint64_t *pte);
/* A signal outcome: SIGSEGV or SIGBUS (no fault counted, nothing mapped). */
static inline bool outcome_is_signal(int r) { return r == CS_SEGFAULT || r == CS_SIGBUS; }

/* One access: the TLB fast path, else access_slow.  Returns the cs_outcome,
 * or -1 when out of frames. */
static inline int access_one_hinted(cs_machine *m, cs_proc *p, uint64_t addr, bool write,
                                    cs_access_info *info, uint64_t *pte_hint)
{
    p->st.accesses++;
    if (p->tlb) {
        uint64_t vpn = addr >> m->page_shift;
        tlb_entry *t = &p->tlb[vpn & m->tlb_mask];
        if (t->vpn == vpn) {
            uint64_t e = *t->pte;
            if (!write) {
                p->st.tlb_hits++;
                return CS_HIT;
            }
            if (e & PTE_WRITE) {
                *t->pte = e | PTE_DIRTY;
                p->st.tlb_hits++;
                return CS_HIT;
            }
        }
        p->st.tlb_misses++;
    }
    return access_slow(m, p, addr, write, info, pte_hint);
}

static inline int access_one(cs_machine *m, cs_proc *p, uint64_t addr, bool write,
                             cs_access_info *info)
{
    return access_one_hinted(m, p, addr, write, info, NULL);
}

/* pidmap.c */
cs_proc *pidmap_find(const pid_map *pm, int32_t pid);   /* NULL: no record */
bool pidmap_reserve(pid_map *pm);                        /* room for one more; false: host refused */
void pidmap_insert(pid_map *pm, cs_proc *p);             /* after pidmap_reserve */
void pidmap_remove(pid_map *pm, int32_t pid);            /* pid must be in the map */
void pidmap_free(pid_map *pm);
#define pidmap_for_each(pm, p)                                                                          \
    for (size_t pm_i_ = 0; pm_i_ < (pm)->cap; pm_i_++)                                                  \
        if (((p) = (pm)->slots[pm_i_].p) != NULL)

/* machine.c */
cs_status proc_get(cs_machine *m, int32_t pid, cs_proc **out);   /* a live, running process */
cs_status proc_missing(const cs_machine *m, int32_t pid);        /* status for a pid without record */
cs_proc *proc_new(cs_machine *m, int32_t ppid, size_t vma_cap, bool with_root);  /* root needs 1 free frame */
void proc_destroy(cs_machine *m, cs_proc *p);
void mm_move(cs_proc *dst, cs_proc *src);      /* the address space changes hands */
void mm_give_back(cs_machine *m, cs_proc *p);   /* vfork child -> its lender */

#define LOCK(m) pthread_mutex_lock(&(m)->lock)
#define UNLOCK(m) pthread_mutex_unlock(&(m)->lock)

#endif
