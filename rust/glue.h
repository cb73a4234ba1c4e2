/* SPDX-License-Identifier: GPL-2.0 */
/*
 * rvfio C glue: the parts that must be C.
 *
 * - The vfio_iommu_driver_ops table: its type lives in vfio's private
 *   drivers/vfio/vfio.h and the callbacks are thin shims into Rust.
 * - Wrappers for static inline kernel functions and macros (mmap lock,
 *   pfn_to_page, GFP flag composites, ERR_PTR) that Rust cannot call.
 * - Iteration over kernel lists (reserved regions) flattened to a callback.
 *
 * Everything here is called from rust/bindings.rs through bindgen-generated
 * declarations; keep the signatures plain (integers and opaque pointers).
 */
#ifndef RVFIO_GLUE_H
#define RVFIO_GLUE_H

#include <linux/types.h>

struct iommu_domain;
struct iommu_group;
struct mm_struct;
struct task_struct;
struct vfio_device;

/* --- Implemented in Rust (rust/backend.rs), called by the ops shims. --- */
int rvfio_rs_open(unsigned long type, void **data);
void rvfio_rs_release(void *data);
long rvfio_rs_ioctl(void *data, unsigned int cmd, unsigned long arg);
int rvfio_rs_attach_group(void *data, struct iommu_group *group, int type);
void rvfio_rs_detach_group(void *data, struct iommu_group *group);
/* Emulated-IOMMU (mdev) ops. rvfio_rs_pin_pages stores pfns in @pfns; the
 * C shim turns them into struct page pointers in place. */
int rvfio_rs_pin_pages(void *data, struct iommu_group *group, u64 iova,
		       int npage, int prot, u64 *pfns);
void rvfio_rs_unpin_pages(void *data, u64 iova, int npage);
void rvfio_rs_register_device(void *data, struct vfio_device *vdev);
void rvfio_rs_unregister_device(void *data, struct vfio_device *vdev);
int rvfio_rs_dma_rw(void *data, u64 iova, void *buf, size_t count, bool write);

/* --- Registration. --- */
int rvfio_glue_register(void);
void rvfio_glue_unregister(void);

/* --- Module parameters (defined in glue.c, same names as type1's). --- */
bool rvfio_param_allow_unsafe_interrupts(void);
bool rvfio_param_disable_hugepages(void);
unsigned int rvfio_param_dma_entry_limit(void);

/* --- IOMMU domains. --- */
struct rvfio_domain_info {
	u64 pgsize_bitmap;
	u64 aperture_start;
	u64 aperture_end;
	/* Identity of the IOMMU driver's domain ops: domains are shared only
	 * between groups whose domains have the same ops (as type1 does). */
	const void *ops;
};
/* Allocates a paging domain for the first device of @group; 0 or -errno. */
int rvfio_domain_alloc(struct iommu_group *group, struct iommu_domain **out);
void rvfio_domain_info(struct iommu_domain *domain,
		       struct rvfio_domain_info *info);
/* Calls ops->enforce_cache_coherency when the driver has it. */
bool rvfio_domain_enforce_cc(struct iommu_domain *domain);
/* iommu_map() with IOMMU_CACHE added and GFP_ATOMIC page-table
 * allocations: for callers holding a lock that mmu-notifier callbacks take
 * (no reclaim may run under it). */
int rvfio_domain_map_atomic(struct iommu_domain *domain, u64 iova, u64 paddr,
			    u64 size, int prot);
/* Maps @n runs that follow each other in IOVA (IOMMU_CACHE added), with
 * one IOTLB sync per batch of runs; on error nothing of them is mapped. */
struct rvfio_run;
int rvfio_domain_map_runs(struct iommu_domain *domain,
			  const struct rvfio_run *runs, long n, int prot);

/* --- Reserved regions of a group, one callback per region. --- */
typedef void (*rvfio_resv_cb)(void *ctx, u64 start, u64 length, int type);
int rvfio_group_resv_regions(struct iommu_group *group, rvfio_resv_cb cb,
			     void *ctx);
/* The values of enum iommu_resv_type that matter to the valid-IOVA list. */
extern const int RVFIO_RESV_DIRECT_RELAXABLE;
extern const int RVFIO_RESV_MSI;
extern const int RVFIO_RESV_SW_MSI;

/* --- The calling process: mm, group leader, capability. --- */
/* current->mm with mmgrab() taken, and current->group_leader with a task
 * reference taken; both NULL for a kernel thread. */
struct mm_struct *rvfio_current_mm_grab(void);
void rvfio_mm_drop(struct mm_struct *mm);
struct task_struct *rvfio_current_leader_get(void);
void rvfio_task_put(struct task_struct *task);
bool rvfio_capable_ipc_lock(void);

/*
 * Charge (@npages > 0) or uncharge (< 0) @mm's locked_vm like type1's
 * vfio_lock_acct(): the RLIMIT_MEMLOCK of @task is enforced unless
 * @lock_cap. Returns 0, -ENOMEM past the limit, -ESRCH when @mm has no
 * users any more (nothing to account against), -EINTR on a fatal signal.
 */
int rvfio_lock_acct(struct mm_struct *mm, struct task_struct *task,
		    long npages, bool lock_cap);
/* access_ok() for a user range (type1 refuses bitmaps failing it). */
bool rvfio_access_ok(unsigned long ptr, unsigned long size);
/* RLIMIT_MEMLOCK of the current process, in bytes (for messages). */
unsigned long rvfio_current_memlock_limit(void);

/* --- Emulated-IOMMU devices. --- */
/* The device has a dma_unmap callback (only those are registered). */
bool rvfio_vdev_has_dma_unmap(struct vfio_device *vdev);
/* Calls the device's dma_unmap callback. */
void rvfio_vdev_dma_unmap(struct vfio_device *vdev, u64 iova, u64 length);
/* type1's dma_rw chunk: copies between @buf and @vaddr of @mm, borrowing
 * the mm in a kernel thread; returns 0, -EPERM when @mm is gone, or
 * -EFAULT (also when the caller is a process other than @mm's). */
int rvfio_mm_rw(struct mm_struct *mm, unsigned long vaddr, void *buf,
		size_t count, bool write);
/* pfn_valid(): backed by a struct page. */
bool rvfio_pfn_valid(u64 pfn);

/* --- Pinning user memory. --- */
/* One physically contiguous piece of a mapping (rust/pin.rs `Run`): all
 * pinned, or all reserved (MMIO, the zero page: neither pinned nor charged). */
struct rvfio_run {
	u64 iova;
	u64 pfn;
	u64 npages;
	bool reserved;
};
/*
 * Long-term pins @npages pages at @vaddr of @mm (FOLL_LONGTERM, FOLL_WRITE
 * when @write) and describes them in @runs (room for @npages) as
 * physically contiguous runs mapped from @iova; *@nruns is their number.
 * @buf is scratch for @npages entries. Returns the number of pages pinned
 * (> 0) or -errno (-ENODEV when @mm has no users); never 0. A VM_PFNMAP
 * range yields reserved runs of unpinned pfns (up to the end of its vma),
 * faulted in if needed, or -EREMCHG when !@pfnmap_ok: the caller must
 * watch the range before mapping it (rust/revoke.rs). With the
 * disable_hugepages parameter every page is a run of its own.
 */
long rvfio_pin_runs(struct mm_struct *mm, unsigned long vaddr, u64 iova,
		    long npages, bool write, bool pfnmap_ok, u64 *buf,
		    struct rvfio_run *runs, long *nruns);
/* Tag of a reserved pfn in the PFNMAP lookup's output. */
#define RVFIO_PFN_RESERVED	(1ULL << 63)
/* Unpins a physically contiguous run pinned by rvfio_pin_runs(). */
void rvfio_unpin_pfns(u64 pfn, u64 npages, bool dirty);
/* Unpins the non-reserved runs of @runs. */
void rvfio_unpin_runs(const struct rvfio_run *runs, long n, bool dirty);
/* True for pfns type1 neither pins nor charges (MMIO, zero page). */
bool rvfio_pfn_is_reserved(u64 pfn);

/* --- PFNMAP watches (rust/revoke.rs). --- */
struct rvfio_watch;
struct eventfd_ctx;
/*
 * An mmu interval notifier on [@start, @start + @length) of @mm. Its
 * invalidate callback calls rvfio_rs_watch_invalidate(@revoker, watch, ...)
 * until rvfio_watch_free() returns. 0 or -errno (-ENODEV: @mm has exited).
 */
int rvfio_watch_new(struct mm_struct *mm, unsigned long start,
		    unsigned long length, const void *revoker,
		    struct rvfio_watch **out);
/* Unregisters (waiting for a running callback) and frees. */
void rvfio_watch_free(struct rvfio_watch *w);
/* mmu_interval_read_begin(), mmu_interval_read_retry(), mmu_interval_set_seq(). */
unsigned long rvfio_watch_read_begin(struct rvfio_watch *w);
bool rvfio_watch_read_retry(struct rvfio_watch *w, unsigned long seq);
void rvfio_watch_set_seq(struct rvfio_watch *w, unsigned long cur_seq);
/* Implemented in Rust: returns false only when !@blockable and the work
 * would have to sleep. */
bool rvfio_rs_watch_invalidate(const void *revoker, struct rvfio_watch *w,
			       unsigned long cur_seq, unsigned long start,
			       unsigned long end, bool blockable);

/* eventfd_ctx_fdget() (0 or -errno), eventfd_signal(), eventfd_ctx_put(). */
int rvfio_eventfd_get(int fd, struct eventfd_ctx **out);
void rvfio_eventfd_signal(struct eventfd_ctx *ctx);
void rvfio_eventfd_put(struct eventfd_ctx *ctx);

/*
 * ====================================================================
 * Nesting (rust/nesting.rs, rust/stage2.rs): one-call wrappers, kept
 * apart at the end of the file.
 * ====================================================================
 */
/* iommu_map() with IOMMU_CACHE added and GFP_KERNEL_ACCOUNT page tables. */
int rvfio_domain_map(struct iommu_domain *domain, u64 iova, u64 paddr,
		     u64 size, int prot);
/* READ_ONCE() of the u64 at byte @offset (8-aligned) of the page @pfn, which
 * the caller keeps pinned; kmap_local_pfn() around it. */
u64 rvfio_pfn_read_u64(u64 pfn, unsigned int offset);
/*
 * Asks the IOMMU driver of @group's first device for a nest-parent domain
 * (ops->domain_alloc_user(dev, IOMMU_HWPT_ALLOC_NEST_PARENT, NULL, NULL),
 * the ops found as drivers/iommu/iommu-priv.h's dev_iommu_ops() finds
 * them) and frees it at once. 0 when the driver could nest in hardware,
 * -EOPNOTSUPP when it has no such op or refuses, or another -errno.
 */
int rvfio_group_probe_nest_parent(struct iommu_group *group);

#endif /* RVFIO_GLUE_H */
