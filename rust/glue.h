/* SPDX-License-Identifier: GPL-2.0 */
/*
 * rvfio C glue: the parts that must be C (see the top of glue.c for the
 * list and the reason for each).
 *
 * Everything here is called from Rust through rust/bindings.rs (bindgen);
 * keep the signatures plain (integers and opaque pointers). Exported kernel
 * functions that are not static inline (pin_user_pages_fast(),
 * iommu_map_sg(), __account_locked_vm(), mmu_interval_notifier_insert()...)
 * are called from Rust directly and have no wrapper here.
 */
#ifndef RVFIO_GLUE_H
#define RVFIO_GLUE_H

#include <linux/types.h>

struct device;
struct iommu_domain;
struct iommu_group;
struct mm_struct;
struct mmu_interval_notifier;
struct page;
struct scatterlist;
struct task_struct;
struct vfio_device;
struct vm_area_struct;
struct eventfd_ctx;

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
/* rust/watch.rs: the mmu interval notifier callback of a PFNMAP watch. */
bool rvfio_rs_watch_invalidate(struct mmu_interval_notifier *mni,
			       unsigned long cur_seq, unsigned long start,
			       unsigned long end, bool blockable);

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
/* iommu_paging_domain_alloc(): the domain, or NULL with *@err set. */
struct iommu_domain *rvfio_paging_domain_alloc(struct device *dev, int *err);
/* Fields of struct iommu_domain. */
void rvfio_domain_info(struct iommu_domain *domain,
		       struct rvfio_domain_info *info);
/* ops->enforce_cache_coherency(), false when the driver has none. */
bool rvfio_domain_enforce_cc(struct iommu_domain *domain);
/* iommu_map() with GFP_ATOMIC page-table allocations (GFP_ATOMIC is a
 * macro composite). */
int rvfio_domain_map_atomic(struct iommu_domain *domain, u64 iova, u64 paddr,
			    u64 size, int prot);
/* sg_set_page(@sg, pfn_to_page(@pfn), @len, 0): both static inline. */
void rvfio_sg_set_pfn(struct scatterlist *sg, u64 pfn, unsigned int len);

/* --- Reserved regions of a group, one callback per region. --- */
typedef void (*rvfio_resv_cb)(void *ctx, u64 start, u64 length, int type);
int rvfio_group_resv_regions(struct iommu_group *group, rvfio_resv_cb cb,
			     void *ctx);
/* The values of enum iommu_resv_type that matter to the valid-IOVA list. */
extern const int RVFIO_RESV_DIRECT_RELAXABLE;
extern const int RVFIO_RESV_MSI;
extern const int RVFIO_RESV_SW_MSI;

/* --- The calling process, and mm_struct references and locks. --- */
/* current->mm with mmgrab() taken, and current->group_leader with a task
 * reference taken; both NULL for a kernel thread. */
struct mm_struct *rvfio_current_mm_grab(void);
void rvfio_mm_drop(struct mm_struct *mm);
struct task_struct *rvfio_current_leader_get(void);
/* current->group_leader, no reference taken. */
struct task_struct *rvfio_current_leader(void);
void rvfio_task_put(struct task_struct *task);
bool rvfio_capable_ipc_lock(void);
/* mmgrab() and get_task_struct(): one more reference. */
void rvfio_mmgrab(struct mm_struct *mm);
void rvfio_task_get(struct task_struct *task);
/* current->mm, no reference taken (NULL in a kernel thread). */
struct mm_struct *rvfio_current_mm(void);
/* mmget_not_zero(); mmput() is exported and called directly. */
bool rvfio_mmget_not_zero(struct mm_struct *mm);
/* mmap_lock: the static inline lock functions. */
int rvfio_mmap_write_lock_killable(struct mm_struct *mm);
void rvfio_mmap_write_unlock(struct mm_struct *mm);
void rvfio_mmap_read_lock(struct mm_struct *mm);
void rvfio_mmap_read_unlock(struct mm_struct *mm);
/* untagged_addr_remote() (a macro); needs the mmap lock. */
unsigned long rvfio_untagged_addr_remote(struct mm_struct *mm,
					 unsigned long addr);
/* access_ok() for a user range (type1 refuses bitmaps failing it). */
bool rvfio_access_ok(unsigned long ptr, unsigned long size);
/* RLIMIT_MEMLOCK of the current process, in bytes (for messages). */
unsigned long rvfio_current_memlock_limit(void);

/* --- vmas, under the mmap lock. --- */
/* vma_lookup(); the vma's vm_flags and vm_end. */
struct vm_area_struct *rvfio_vma_lookup(struct mm_struct *mm,
					unsigned long addr);
unsigned long rvfio_vma_flags(struct vm_area_struct *vma);
unsigned long rvfio_vma_start(struct vm_area_struct *vma);
unsigned long rvfio_vma_end(struct vm_area_struct *vma);
/* vma_is_anonymous(): no vm_ops (private anonymous memory, not shmem). */
bool rvfio_vma_is_anonymous(struct vm_area_struct *vma);
/*
 * Mechanism loop for rust/pfnmap.rs (which decides what to refuse, fault
 * in and retry): the pfns mapped at @addr, @addr + PAGE_SIZE, ... of the
 * VM_PFNMAP vma @vma, under the mmap lock, up to @end and at most @max of
 * them, into @pfns. follow_pfnmap_start()/_end() per pte; inside a PMD or
 * PUD leaf the pfns are filled without a walk per page. Stops early where
 * nothing is mapped (RVFIO_FOLLOW_ABSENT), at a read-only pte when @write
 * (RVFIO_FOLLOW_READONLY) or at a pfn of ordinary memory, which type1
 * refuses in a PFNMAP range (RVFIO_FOLLOW_RAM); *@stop says why, or
 * RVFIO_FOLLOW_DONE. Returns the number of pfns stored.
 */
#define RVFIO_FOLLOW_DONE	0
#define RVFIO_FOLLOW_ABSENT	1
#define RVFIO_FOLLOW_READONLY	2
#define RVFIO_FOLLOW_RAM	3
long rvfio_follow_pfnmap_range(struct vm_area_struct *vma, unsigned long addr,
			       unsigned long end, bool write, u64 *pfns,
			       long max, int *stop);

/* --- Pages (struct page helpers are static inline). --- */
/* pfn_valid(): backed by a struct page. */
bool rvfio_pfn_valid(u64 pfn);
/* type1's is_invalid_reserved_pfn(): MMIO or PageReserved. */
bool rvfio_pfn_is_reserved(u64 pfn);
/* A physically contiguous piece of a mapping (rust/runs.rs `Run`). */
struct rvfio_run {
	u64 iova;
	u64 pfn;
	u64 npages;
	/* PageReserved (the zero page), or PFNMAP: neither pinned nor charged. */
	bool reserved;
};
/*
 * Mechanism loop for rust/runs.rs (which decides whether runs are split
 * into pages, and what is charged): describes the @n pinned pages of
 * @pages, mapped from @iova on, as maximal physically contiguous runs of
 * one kind (reserved or not) into @out (room for @n) and returns their
 * number. The pages of a large folio (THP, hugetlb) that follow each other
 * in order are taken without reading their struct pages (with
 * SPARSEMEM_VMEMMAP, nth_page() is page + n).
 */
long rvfio_pages_to_runs(struct page **pages, long n, u64 iova,
			 struct rvfio_run *out);
/* unpin_user_page_range_dirty_lock(pfn_to_page(@pfn), ...). */
void rvfio_unpin_pfn_range(u64 pfn, u64 npages, bool dirty);
/*
 * Mechanism loop for fragmented memory (rust/unpin.rs decides which runs
 * come here): unpins the page of each of the @n one-page runs of @runs
 * that is not reserved (reserved runs were never pinned), a batch of
 * pfn_to_page() pointers in @scratch (room for @batch) per
 * unpin_user_pages_dirty_lock() call.
 */
void rvfio_unpin_page_runs(const struct rvfio_run *runs, unsigned long n,
			   bool dirty, struct page **scratch,
			   unsigned long batch);

/* --- Emulated-IOMMU devices. --- */
/* The device has a dma_unmap callback (only those are registered). */
bool rvfio_vdev_has_dma_unmap(struct vfio_device *vdev);
/* Calls the device's dma_unmap callback. */
void rvfio_vdev_dma_unmap(struct vfio_device *vdev, u64 iova, u64 length);

/* --- PFNMAP watches: mmu interval notifiers (rust/watch.rs). --- */
/* The ops table; its invalidate shim calls rvfio_rs_watch_invalidate(). */
extern const struct mmu_interval_notifier_ops rvfio_watch_ops;
/* mmu_interval_read_retry() and mmu_interval_set_seq(): static inline. */
bool rvfio_watch_read_retry(struct mmu_interval_notifier *mni,
			    unsigned long seq);
void rvfio_watch_set_seq(struct mmu_interval_notifier *mni,
			 unsigned long cur_seq);

/* --- eventfd. --- */
/* eventfd_ctx_fdget() (0 or -errno), eventfd_signal(), eventfd_ctx_put(). */
int rvfio_eventfd_get(int fd, struct eventfd_ctx **out);
void rvfio_eventfd_signal(struct eventfd_ctx *ctx);
void rvfio_eventfd_put(struct eventfd_ctx *ctx);

/* ======================================================================
 * Fault ring (rust/fault_ring.rs, rust/faults.rs, rust/irq_lock.rs,
 * rust/rcu.rs): the ring fd's file_operations and the IOMMU fault
 * handler, as shims into Rust, and one-call wrappers.
 * ====================================================================== */
struct completion;
struct device;
struct file;
struct lock_class_key;
struct poll_table_struct;
struct raw_spinlock;
struct vm_area_struct;
struct wait_queue_head;

/* Implemented in Rust (rust/faults.rs): a DMA fault the IOMMU driver
 * reported on a domain whose handler token is @token. @group_id is -1 and
 * @pci_segment -1 when unknown. Returns 0 when the fault was taken. */
int rvfio_rs_hw_fault(const void *token, u64 iova, int flags, int group_id,
		      int pci_segment, u16 pci_rid);
/* Implemented in Rust (rust/fault_ring.rs): the ring fd's operations on
 * its private data @ring. */
void rvfio_rs_ring_release(const void *ring);
unsigned int rvfio_rs_ring_poll(const void *ring, struct file *file,
				struct poll_table_struct *pt);
long rvfio_rs_ring_write(const void *ring, unsigned long buf, size_t count);
int rvfio_rs_ring_mmap(const void *ring, struct vm_area_struct *vma,
		       unsigned long pgoff, unsigned long len, bool shared);

/* iommu_set_fault_handler() with glue.c's handler, which calls
 * rvfio_rs_hw_fault(@token, ...). */
void rvfio_domain_set_fault_handler(struct iommu_domain *domain,
				    const void *token);
/* anon_inode_getfd() of a ring fd (O_RDWR | O_CLOEXEC) whose private data
 * is @ring: the fd or -errno. */
int rvfio_ring_getfd(const void *ring);
/* vmalloc_user() (zeroed, suitable for remap_vmalloc_range()); vfree(). */
void *rvfio_vmalloc_user(unsigned long size);
void rvfio_vfree(void *addr);
/* remap_vmalloc_range(@vma, @addr, @pgoff): 0 or -errno. */
int rvfio_vma_remap_vmalloc(struct vm_area_struct *vma, void *addr,
			    unsigned long pgoff);
/* init_waitqueue_head(), poll_wait(), and a wake-up of pollers with @mask
 * when there are any (wq_has_sleeper()). */
void rvfio_waitqueue_init(struct wait_queue_head *wq);
void rvfio_poll_wait(struct file *file, struct wait_queue_head *wq,
		     struct poll_table_struct *pt);
void rvfio_wake_up_poll(struct wait_queue_head *wq, unsigned int mask);
/* raw_spinlock_t: init with a lockdep class, lock with interrupts saved
 * and disabled (returns the flags), unlock restoring them. */
void rvfio_raw_spin_lock_init(struct raw_spinlock *lock, const char *name,
			      struct lock_class_key *key);
unsigned long rvfio_raw_spin_lock_irqsave(struct raw_spinlock *lock);
void rvfio_raw_spin_unlock_irqrestore(struct raw_spinlock *lock,
				      unsigned long flags);
/* rcu_read_lock(), rcu_read_unlock(). */
void rvfio_rcu_read_lock(void);
void rvfio_rcu_read_unlock(void);
/* ktime_get_ns(): CLOCK_MONOTONIC. */
u64 rvfio_ktime_get_ns(void);
/* init_completion(); wait_for_completion_killable_timeout() for @ms
 * milliseconds: > 0 completed, 0 timed out, -ERESTARTSYS killed. */
void rvfio_completion_init(struct completion *c);
long rvfio_completion_wait_killable(struct completion *c, unsigned int ms);
/*
 * ====================================================================
 * Nesting (rust/nesting.rs, rust/stage2.rs): one-call wrappers, kept
 * apart at the end of the file.
 * ====================================================================
 */
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
