/*
 * cowsim.h -- the public C API of the cowsim core, and the single source of
 * the cffi declarations: setup_build.py feeds this file to ffi.cdef() after
 * dropping the preprocessor lines, so everything between the guards must stay
 * in the subset of C that cffi parses (typedefs, opaque structs, enums with
 * literal values, prototypes).
 *
 * Conventions: every function returns a cs_status (0 = CS_OK) and writes its
 * results through out-parameters; nothing aborts or prints.  Processes are
 * named by pid.  All functions take the machine's lock, so a machine may be
 * used from several threads at once; a fork() of the host process waits for
 * the calls in progress (pthread_atfork, machine.c), so the child gets
 * consistent machines.  Arrays are read in place: they must be aligned to
 * their element type.
 */
#ifndef COWSIM_H
#define COWSIM_H
#include <stddef.h>
#include <stdint.h>

typedef struct cs_machine cs_machine;

/* Status codes; cowsim/_ffi.py maps them onto the Python exceptions. */
typedef enum {
    CS_OK = 0,
    CS_ENOMEM = 1,      /* simulated physical frames exhausted */
    CS_EINVAL = 2,      /* bad argument */
    CS_ESEGV = 3,       /* segmentation fault (details in cs_access_info) */
    CS_ENOPROC = 4,     /* no process with this pid was ever created */
    CS_EEXITED = 5,     /* the process has exited */
    CS_EHOST = 6,       /* the host refused memory for the simulator itself */
    CS_EEXIST = 7,      /* a fixed mapping overlaps an existing region */
    CS_ENOVSPACE = 8,   /* no free virtual address range large enough */
    CS_ENOTMAPPED = 9,  /* part of the range is not mapped */
    CS_ENODATA = 10,    /* bytes requested from a metadata-only machine */
    CS_ESHARED = 11,    /* operation not valid on a shared region */
    CS_ECLOSED = 12,    /* machine already freed */
    CS_EINVARIANT = 13, /* cs_check found a broken invariant */
    CS_ESUSPENDED = 14, /* the process lent its address space to a vfork child */
    CS_ESIGBUS = 15,    /* an access to a file page wholly past the end of its file */
    CS_ENOFILE = 16     /* no such file (never created, or deleted) */
} cs_status;

/* Protection bits (a region is none, r or rw). */
enum { CS_PROT_NONE = 0, CS_PROT_READ = 1, CS_PROT_WRITE = 2 };

/* Region flags, as reported in cs_region.flags (and CS_MAP_SHARED for mmap). */
enum {
    CS_MAP_SHARED = 1,
    CS_VMA_DONTFORK = 2,
    CS_VMA_WIPEONFORK = 4,
    CS_VMA_ANON_VMA = 8,    /* a private page was ever written (anon_vma) */
    CS_VMA_HUGE = 16,       /* THP-eligible private region (mmap only, 4 KiB pages) */
    CS_VMA_FILE = 32,       /* a file mapping (cs_mmap_file), private or shared */
    CS_VMA_RANDOM = 64      /* MADV_RANDOM: faults read no pages ahead */
};

/* What a write to a write-protected, shared huge page does (cs_config.thp_cow). */
typedef enum { CS_THP_COW_SPLIT = 0, CS_THP_COW_COPY_HUGE = 1 } cs_thp_cow;

typedef enum {
    CS_ADV_DONTFORK = 0,
    CS_ADV_DOFORK = 1,
    CS_ADV_WIPEONFORK = 2,
    CS_ADV_KEEPONFORK = 3,
    CS_ADV_DONTNEED = 4,
    CS_ADV_RANDOM = 5,
    CS_ADV_NORMAL = 6
} cs_advice;

/* cow: Linux fork; eager: copy every resident private page at fork; vfork:
 * the child borrows the parent's address space (the parent is suspended)
 * until it calls cs_exec or exits; odf: on-demand fork, the child shares the
 * parent's last-level tables, write-protected, until one side changes one. */
typedef enum { CS_FORK_COW = 0, CS_FORK_EAGER = 1, CS_FORK_VFORK = 2, CS_FORK_ODF = 3 } cs_fork_mode;

/* What one access did.  Also the per-access codes of batched accesses. */
typedef enum {
    CS_HIT = 0,              /* mapped with the needed permission: no fault */
    CS_FAULT_ZERO_PAGE = 1,  /* F2: read of an empty private page -> zero page */
    CS_FAULT_ZERO_FILL = 2,  /* F3/F4: write of an empty or zero-page entry */
    CS_FAULT_COW_COPY = 3,   /* F5: copy of a shared anonymous page */
    CS_FAULT_COW_REUSE = 4,  /* F5: exclusive or sole reference: reused */
    CS_FAULT_SHARED = 5,     /* F6, FR4: fault in a shared region (shmem or file) */
    CS_SEGFAULT = 6,         /* F1: no region, or no permission */
    CS_FAULT_FILE = 7,       /* FR1: read fault in a private file region, page-cache pages mapped */
    CS_SIGBUS = 8            /* FB1: a file page wholly past the end of the file */
} cs_outcome;
enum { CS_NOUTCOMES = 9 };

enum { CS_SEGV_UNMAPPED = 1, CS_SEGV_PROTECTION = 2 };

/* Frame flags, as reported by cs_frames. */
enum {
    CS_FRAME_ANON = 1,
    CS_FRAME_EXCLUSIVE = 2,  /* PageAnonExclusive */
    CS_FRAME_DIRTY = 4,      /* PageDirty (shmem pages written through a fault) */
    CS_FRAME_PAGETABLE = 8,
    CS_FRAME_SHMEM = 16,
    CS_FRAME_HUGE = 32,      /* one of the 512 frames of a huge page */
    CS_FRAME_FILE = 64       /* a page-cache page of a file (DIRTY: its folio is dirty) */
};

/* Page-table entry flags, as reported by cs_page_table / cs_translate. */
enum { CS_PTE_WRITE = 1, CS_PTE_DIRTY = 2 };

typedef struct {
    uint64_t memory;             /* bytes of simulated physical memory */
    uint32_t page_size;          /* 4096, 16384 or 65536 */
    uint32_t va_bits;            /* virtual address bits of the table tree (48) */
    int32_t store_data;          /* nonzero: keep each frame's bytes */
    uint32_t fault_around_bytes; /* shmem read fault-around window (65536) */
    uint32_t tlb_entries;        /* per-process software TLB, power of two; 0 = off */
    int32_t thp_cow;             /* cs_thp_cow: split (Linux >= 5.8) or copy-huge */
    uint32_t readahead_kb;       /* read_ahead_kb of the simulated disk (FC1); 0: no readahead */
    int32_t large_folios;        /* nonzero: file writes cache large folios, as ext4 (FL) */
} cs_config;

typedef struct {
    uint32_t levels;             /* page-table levels */
    uint32_t entries_per_table;
    uint64_t nframes;            /* memory / page_size, frame 0 included */
    uint64_t user_start;         /* lowest mappable address */
    uint64_t user_end;           /* end of user address space (exclusive) */
} cs_geometry;

typedef struct {
    uint64_t frames_total;       /* allocatable frames (all but the zero page) */
    uint64_t frames_used;
    uint64_t frames_free;
    uint64_t page_table_frames;
    uint64_t data_frames;        /* frames_used - page_table_frames */
    uint64_t frames_peak;        /* high-water mark of frames_used */
    uint64_t frames_allocated;   /* cumulative */
    uint64_t frames_freed;       /* cumulative */
    uint64_t pages_copied;       /* page copies: CoW faults and eager forks */
    uint64_t shared_objects;     /* live shmem objects */
    uint64_t processes;          /* live processes */
    uint64_t forks;
    uint64_t minflt;             /* all minor faults, every process ever */
    uint64_t segfaults;
    uint64_t table_copies;       /* odf: shared last-level tables copied before a change */
    uint64_t table_reuses;       /* odf: write-protected tables taken over by their sole holder */
    uint64_t page_tables_shared; /* odf: last-level tables held by more than one process now */
    uint64_t thp_faults;         /* huge pages allocated by faults */
    uint64_t thp_splits;         /* huge mappings split into 512 entries */
    uint64_t process_records;    /* records kept: live processes + exited ones still held */
    uint64_t pid_map_slots;      /* slots of the pid -> record map (0, or 16.. 8 x records) */
    uint64_t majflt;             /* major faults (a page read from disk), every process ever */
    uint64_t sigbus;             /* accesses past the end of a file (FB1) */
    uint64_t page_cache_hits;    /* file faults that found their page cached */
    uint64_t page_cache_frames;  /* frames in the page cache now */
    uint64_t page_cache_dirty;   /* of them, dirty (not yet written back) */
    uint64_t files;              /* files that exist (created, not deleted) */
    uint64_t pages_read;         /* pages read from disk into the page cache */
    uint64_t pages_written;      /* dirty pages written back to disk */
} cs_machine_stats;

typedef struct {
    uint64_t minflt;             /* minor faults: minflt + majflt = the six fault kinds below */
    uint64_t faults_zero_page;
    uint64_t faults_zero_fill;
    uint64_t faults_cow_copy;
    uint64_t faults_cow_reuse;
    uint64_t faults_shared;
    uint64_t segfaults;
    uint64_t pages_copied;       /* by this process's faults, and at its eager fork */
    uint64_t page_table_frames;  /* table pages this process holds, root included */
    uint64_t accesses;           /* every access, hits and faults and segfaults */
    uint64_t tlb_hits;           /* accesses served by the TLB alone */
    uint64_t tlb_misses;         /* accesses that walked the tables (TLB on) */
    uint64_t tlb_flushes;        /* flush events: fork, CoW copy, munmap, mprotect, ... */
    uint64_t table_copies;       /* odf: shared last-level tables this process copied */
    uint64_t table_reuses;       /* odf: write-protected tables it took over as sole holder */
    uint64_t page_tables_shared; /* odf: of page_table_frames, tables other processes hold too */
    uint64_t fork_ptes;          /* entries copied into this process's tables by its fork */
    uint64_t fork_tables;        /* last-level tables its fork allocated for it */
    uint64_t thp_faults;         /* huge pages its faults allocated */
    uint64_t thp_splits;         /* huge mappings of its own it split */
    uint64_t faults_file;        /* FR1: read faults in private file regions */
    uint64_t majflt;             /* faults that read their page from disk (not in minflt) */
    uint64_t sigbus;             /* accesses past the end of a file */
    uint64_t page_cache_hits;    /* file faults that found their page cached */
} cs_proc_stats;

/* smaps fields in kB, computed as fs/proc/task_mmu.c does. */
typedef struct {
    uint64_t Rss;
    uint64_t Pss;
    uint64_t Pss_Dirty;
    uint64_t Pss_Anon;
    uint64_t Pss_Shmem;
    uint64_t Shared_Clean;
    uint64_t Shared_Dirty;
    uint64_t Private_Clean;
    uint64_t Private_Dirty;
    uint64_t Anonymous;
    uint64_t AnonHugePages;      /* PMD-mapped anonymous huge pages */
    uint64_t Pss_File;
} cs_smaps;

/* /proc/PID/status memory fields in kB (the mm's RSS counters). */
typedef struct {
    uint64_t VmRSS;
    uint64_t RssAnon;
    uint64_t RssFile;
    uint64_t RssShmem;
    uint64_t VmPTE;              /* table pages other than the root (mm_pgtables_bytes) */
} cs_status_mem;

/* A file, as cs_file_stat reports it. */
typedef struct {
    uint64_t size;               /* bytes */
    uint64_t pages;              /* pages holding bytes: ceil(size / page_size) */
    uint64_t cached;             /* pages in the page cache */
    uint64_t dirty;              /* of them, dirty */
    uint64_t mapped;             /* cached pages mapped by at least one entry */
    uint64_t folios;             /* folios in the cache */
    uint32_t mappings;           /* regions mapping the file */
    int32_t deleted;             /* unlinked, kept while mapped */
} cs_file_stats;

typedef struct {
    uint64_t start;
    uint64_t end;
    int32_t prot;
    int32_t flags;
    int32_t file;                /* file id of a file mapping, else 0 */
    uint64_t offset;             /* its byte offset in the file */
} cs_region;

typedef struct {
    int32_t outcome;             /* cs_outcome of the (last) access */
    int32_t segv_reason;         /* CS_SEGV_* when outcome is CS_SEGFAULT */
    uint64_t addr;               /* faulting address when outcome is CS_SEGFAULT */
} cs_access_info;

/* Result of a batch: per-outcome counts of the accesses done, and how far it got. */
typedef struct {
    uint64_t counts[9];          /* indexed by cs_outcome (CS_NOUTCOMES) */
    uint64_t done;               /* accesses that took effect */
    uint64_t stop_index;         /* index of the access that stopped the batch, if any */
    cs_access_info info;         /* details of the stopping access */
} cs_batch_result;

typedef struct {
    int32_t present;
    int32_t flags;               /* CS_PTE_* */
    uint64_t frame;
} cs_translation;

/* Machine */
cs_status cs_machine_new(const cs_config *cfg, cs_machine **out);
void cs_machine_free(cs_machine *m);
cs_status cs_geometry_get(cs_machine *m, cs_geometry *out);
cs_status cs_machine_stats_get(cs_machine *m, cs_machine_stats *out);
cs_status cs_check(cs_machine *m, char *msg, size_t msglen);

/* Processes */
cs_status cs_spawn(cs_machine *m, int32_t *pid_out);
cs_status cs_fork(cs_machine *m, int32_t pid, cs_fork_mode mode, int32_t *child_out);
cs_status cs_exit(cs_machine *m, int32_t pid);
/* Replaces the address space with a fresh, empty one (a vfork child gives
 * the borrowed one back to its parent first).  Needs one free frame. */
cs_status cs_exec(cs_machine *m, int32_t pid);
cs_status cs_proc_parent(cs_machine *m, int32_t pid, int32_t *ppid_out);
/* Handles on a process record (get_task_struct / put_task_struct): an exited
 * process's record, and its final counters, stay while a handle holds it;
 * without one it is freed at exit (or at the last put) and its pid is reaped:
 * every call naming it then returns CS_EEXITED, a pid never created CS_ENOPROC.
 * cs_proc_get takes a handle and gives the parent's pid (0 if spawned);
 * cs_proc_put of a record nobody holds returns CS_EINVAL. */
cs_status cs_proc_get(cs_machine *m, int32_t pid, int32_t *ppid_out);
cs_status cs_proc_put(cs_machine *m, int32_t pid);
/* What a process is doing (cs_proc_state). */
typedef enum {
    CS_PROC_EXITED = 0,     /* exited (its record held, or reaped): only final stats remain */
    CS_PROC_RUNNING = 1,    /* live, on its own address space */
    CS_PROC_SUSPENDED = 2,  /* a vfork parent: its space is lent to the child */
    CS_PROC_BORROWING = 3   /* a vfork child, on its parent's space until it execs or exits */
} cs_proc_state_t;
cs_status cs_proc_state(cs_machine *m, int32_t pid, int32_t *state_out);   /* a cs_proc_state_t */
cs_status cs_pids(cs_machine *m, int32_t *out, size_t cap, size_t *count);

/* Files and the page cache (filemap.c).  A file's bytes live on a simulated
 * disk; reads and faults bring its pages into the page cache, one frame per
 * file page, grouped in folios.  File ids start at 1. */
cs_status cs_file_new(cs_machine *m, uint64_t size, int32_t cached, int32_t *id_out);
/* pwrite: through the cache (new folios as FL), the folios written become
 * dirty; the file grows to offset + len.  buf may be NULL on a metadata-only
 * machine (the bytes are not kept anyway). */
cs_status cs_file_write(cs_machine *m, int32_t id, uint64_t offset, const void *buf, uint64_t len);
/* pread: up to len bytes (fewer at the end of the file, *n_out); the pages
 * read are cached (single-page folios, clean).  buf NULL: cache them only. */
cs_status cs_file_read(cs_machine *m, int32_t id, uint64_t offset, void *buf, uint64_t len, uint64_t *n_out);
cs_status cs_file_sync(cs_machine *m, int32_t id);     /* fsync */
cs_status cs_file_evict(cs_machine *m, int32_t id);    /* fsync, then POSIX_FADV_DONTNEED */
cs_status cs_file_delete(cs_machine *m, int32_t id);   /* unlink */
cs_status cs_drop_caches(cs_machine *m);               /* echo 1 > /proc/sys/vm/drop_caches */
cs_status cs_file_stat(cs_machine *m, int32_t id, cs_file_stats *out);
/* The cached folios in page order: first page, pages, and CS_FRAME_DIRTY. */
cs_status cs_file_folios(cs_machine *m, int32_t id, uint64_t *first, uint32_t *npages, uint8_t *flags,
                         size_t cap, size_t *count);
cs_status cs_file_ids(cs_machine *m, int32_t *out, size_t cap, size_t *count);

/* Regions */
cs_status cs_mmap(cs_machine *m, int32_t pid, uint64_t addr, uint64_t len,
                  int32_t prot, int32_t flags, uint64_t *addr_out);
/* A mapping of file `file` from byte `offset` (page aligned); flags 0
 * (private) or CS_MAP_SHARED.  It may reach past the end of the file. */
cs_status cs_mmap_file(cs_machine *m, int32_t pid, uint64_t addr, uint64_t len, int32_t prot,
                       int32_t flags, int32_t file, uint64_t offset, uint64_t *addr_out);
cs_status cs_munmap(cs_machine *m, int32_t pid, uint64_t addr, uint64_t len);
cs_status cs_mprotect(cs_machine *m, int32_t pid, uint64_t addr, uint64_t len,
                      int32_t prot);
cs_status cs_madvise(cs_machine *m, int32_t pid, uint64_t addr, uint64_t len,
                     cs_advice advice);

/* Accesses */
cs_status cs_touch(cs_machine *m, int32_t pid, uint64_t addr, int32_t write,
                   cs_access_info *info);
/* The same for callers that want one integer back (no out-parameter):
 * returns the cs_outcome (0..5, 7, 8), CS_TOUCH_SEGV_UNMAPPED or
 * CS_TOUCH_SEGV_PROTECTION for a segfault, or -status on other errors. */
enum { CS_TOUCH_SEGV_UNMAPPED = 6, CS_TOUCH_SEGV_PROTECTION = 9 };   /* 6: CS_SEGFAULT */
int32_t cs_touch_fast(cs_machine *m, int32_t pid, uint64_t addr, int32_t write);
cs_status cs_read(cs_machine *m, int32_t pid, uint64_t addr, void *buf,
                  uint64_t len, cs_access_info *info);
cs_status cs_write(cs_machine *m, int32_t pid, uint64_t addr, const void *buf,
                   uint64_t len, cs_access_info *info);

/* Batched accesses: one call for n accesses.  writes may be NULL (then
 * write_all applies to every access).  outcomes may be NULL.  A segfault stops
 * the batch only when stop_on_segv is nonzero (status CS_ESEGV); running out
 * of frames always stops it (CS_ENOMEM).  The accesses before the stop have
 * taken effect; res->stop_index is the access that stopped it. */
cs_status cs_access_batch(cs_machine *m, int32_t pid, const uint64_t *addrs, const uint8_t *writes,
                          int32_t write_all, uint64_t n, uint8_t *outcomes, int32_t stop_on_segv,
                          cs_batch_result *res);
/* The same across processes, in order: access i is done by pids[i].  A pid
 * that is not a live, running process stops the replay at that access
 * (CS_ENOPROC, CS_EEXITED or CS_ESUSPENDED; res->stop_index). */
cs_status cs_replay(cs_machine *m, const int32_t *pids, const uint64_t *addrs, const uint8_t *writes,
                    int32_t write_all, uint64_t n, uint8_t *outcomes, int32_t stop_on_segv,
                    cs_batch_result *res);

/* Inspection */
cs_status cs_proc_stats_get(cs_machine *m, int32_t pid, cs_proc_stats *out);
cs_status cs_smaps_get(cs_machine *m, int32_t pid, int32_t whole, uint64_t addr,
                       cs_smaps *out);
cs_status cs_status_mem_get(cs_machine *m, int32_t pid, cs_status_mem *out);
cs_status cs_regions(cs_machine *m, int32_t pid, cs_region *out, size_t cap,
                     size_t *count);
cs_status cs_translate(cs_machine *m, int32_t pid, uint64_t addr,
                       cs_translation *out);
cs_status cs_page_table(cs_machine *m, int32_t pid, uint64_t *vpages,
                        uint64_t *frames, uint8_t *flags, size_t cap,
                        size_t *count);
cs_status cs_frames(cs_machine *m, uint64_t *frames, uint32_t *refcounts,
                    uint32_t *mapcounts, uint8_t *flags, size_t cap,
                    size_t *count);

#endif
