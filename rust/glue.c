// SPDX-License-Identifier: GPL-2.0
/*
 * rvfio C glue: only what must be C. Every decision is made in Rust; what is
 * here, and why it cannot be Rust:
 *
 * 1. The vfio_iommu_driver_ops table and its shims into Rust: the type lives
 *    in vfio's private drivers/vfio/vfio.h, and vfio core keeps a pointer to
 *    a static table. The pin_pages shim turns the pfns Rust returns into
 *    struct page pointers (pfn_to_page() is a macro), in place.
 * 2. The module parameters: module_param_named() is a macro that emits
 *    section data; same names, types and permissions as type1's.
 * 3. The mmu_interval_notifier_ops table of PFNMAP watches and its shim
 *    (the mm keeps a pointer to a static table; the shim reads the
 *    mmu_notifier_range with static inline accessors).
 * 4. One-call wrappers over static inline functions and macros that Rust
 *    cannot call: mmget_not_zero(), the mmap_lock functions, vma_lookup(),
 *    untagged_addr_remote(), pfn_to_page()/pfn_valid()/PageReserved()/the
 *    folio helpers, sg_set_page(), mmu_interval_read_retry(),
 *    eventfd_signal(), access_ok(), rlimit(), GFP_ATOMIC, ERR_PTR decoding;
 *    and field reads of structures bindgen only sees as opaque
 *    (struct iommu_domain, vm_area_struct, vfio_device ops).
 * 5. Loops that are pure mechanism, no decisions, each over a batch Rust
 *    chose, because a call into C per page costs more than the page's own
 *    work under the emulated CPUs this is measured on (the A/B table in
 *    bench/results/2026-12-07-notes.md):
 *    - rvfio_pages_to_runs(): a pinned batch as physically contiguous runs
 *      (one struct page read per folio); rust/runs.rs splits them when
 *      disable_hugepages asks;
 *    - rvfio_follow_pfnmap_range(): a PFNMAP range's pfns, pte by pte or
 *      leaf by leaf, stopping where rust/pfnmap.rs must decide (absent,
 *      read-only, ordinary memory);
 *    - rvfio_group_resv_regions(): walks and frees the list
 *      iommu_get_group_resv_regions() returns (list_for_each_entry_safe()
 *      is a macro over struct iommu_resv_region's embedded list head);
 *    - rvfio_unpin_page_runs(): the pages of a stretch of one-page runs,
 *      a batch per unpin_user_pages_dirty_lock();
 *    - the pin_pages shim of (1): pfn_to_page() over the pfns Rust found.
 *
 * Exported functions that are not inline (pin_user_pages_fast(),
 * fixup_user_fault(), iommu_map_sg(), __account_locked_vm(),
 * kthread_use_mm(), mmu_interval_notifier_insert()...) are called from Rust
 * directly.
 */
#include <linux/iommu.h>
#include <linux/mm.h>
#include <linux/module.h>
#include <linux/sched/mm.h>
#include <linux/sched/signal.h>
#include <linux/sched/task.h>
#include <linux/capability.h>
#include <linux/err.h>
#include <linux/eventfd.h>
#include <linux/mmu_notifier.h>
#include <linux/scatterlist.h>
#include <linux/slab.h>
#include <linux/uaccess.h>
#include <linux/vfio.h>
#include "vfio.h"	/* drivers/vfio/vfio.h: struct vfio_iommu_driver_ops */
#include "glue.h"

/* --- 2. Module parameters. --- */

static bool allow_unsafe_interrupts;
module_param_named(allow_unsafe_interrupts, allow_unsafe_interrupts, bool,
		   0644);
MODULE_PARM_DESC(allow_unsafe_interrupts,
		 "Enable VFIO IOMMU support for on platforms without interrupt remapping support.");

static bool disable_hugepages;
module_param_named(disable_hugepages, disable_hugepages, bool, 0644);
MODULE_PARM_DESC(disable_hugepages,
		 "Disable VFIO IOMMU support for IOMMU hugepages.");

static unsigned int dma_entry_limit __read_mostly = U16_MAX;
module_param_named(dma_entry_limit, dma_entry_limit, uint, 0644);
MODULE_PARM_DESC(dma_entry_limit,
		 "Maximum number of user DMA mappings per container (65535).");

bool rvfio_param_allow_unsafe_interrupts(void)
{
	return READ_ONCE(allow_unsafe_interrupts);
}

bool rvfio_param_disable_hugepages(void)
{
	return READ_ONCE(disable_hugepages);
}

unsigned int rvfio_param_dma_entry_limit(void)
{
	return READ_ONCE(dma_entry_limit);
}

/* --- 1. The ops table: shims into Rust. --- */

static void *rvfio_open(unsigned long arg)
{
	void *data = NULL;
	int ret = rvfio_rs_open(arg, &data);

	return ret ? ERR_PTR(ret) : data;
}

static int rvfio_attach_group(void *data, struct iommu_group *group,
			      enum vfio_group_type type)
{
	return rvfio_rs_attach_group(data, group, (int)type);
}

static int rvfio_pin_pages(void *data, struct iommu_group *group,
			   dma_addr_t iova, int npage, int prot,
			   struct page **pages)
{
	u64 *pfns = (u64 *)pages;
	int ret, i;

	BUILD_BUG_ON(sizeof(*pages) != sizeof(*pfns));
	if (!data || !pages)
		return -EINVAL;
	ret = rvfio_rs_pin_pages(data, group, iova, npage, prot, pfns);
	for (i = 0; i < ret; i++)
		pages[i] = pfn_to_page(pfns[i]);
	return ret;
}

static void rvfio_unpin_pages(void *data, dma_addr_t iova, int npage)
{
	rvfio_rs_unpin_pages(data, iova, npage);
}

static int rvfio_dma_rw(void *data, dma_addr_t iova, void *buf, size_t count,
			bool write)
{
	return rvfio_rs_dma_rw(data, iova, buf, count, write);
}

static const struct vfio_iommu_driver_ops rvfio_ops = {
	.name		= "rvfio",
	.owner		= THIS_MODULE,
	.open		= rvfio_open,
	.release	= rvfio_rs_release,
	.ioctl		= rvfio_rs_ioctl,
	.attach_group	= rvfio_attach_group,
	.detach_group	= rvfio_rs_detach_group,
	.pin_pages	= rvfio_pin_pages,
	.unpin_pages	= rvfio_unpin_pages,
	.register_device = rvfio_rs_register_device,
	.unregister_device = rvfio_rs_unregister_device,
	.dma_rw		= rvfio_dma_rw,
};

int rvfio_glue_register(void)
{
	return vfio_register_iommu_driver(&rvfio_ops);
}

void rvfio_glue_unregister(void)
{
	vfio_unregister_iommu_driver(&rvfio_ops);
}

/* --- 4. IOMMU domains. --- */

struct iommu_domain *rvfio_paging_domain_alloc(struct device *dev, int *err)
{
	struct iommu_domain *domain = iommu_paging_domain_alloc(dev);

	if (IS_ERR(domain)) {
		*err = PTR_ERR(domain);
		return NULL;
	}
	return domain;
}

void rvfio_domain_info(struct iommu_domain *domain,
		       struct rvfio_domain_info *info)
{
	info->pgsize_bitmap = domain->pgsize_bitmap;
	info->aperture_start = domain->geometry.aperture_start;
	info->aperture_end = domain->geometry.aperture_end;
	info->ops = domain->ops;
}

bool rvfio_domain_enforce_cc(struct iommu_domain *domain)
{
	if (domain->ops->enforce_cache_coherency)
		return domain->ops->enforce_cache_coherency(domain);
	return false;
}

int rvfio_domain_map_atomic(struct iommu_domain *domain, u64 iova, u64 paddr,
			    u64 size, int prot)
{
	return iommu_map(domain, iova, paddr, size, prot,
			 GFP_ATOMIC | __GFP_NOWARN);
}

void rvfio_sg_set_pfn(struct scatterlist *sg, u64 pfn, unsigned int len)
{
	sg_set_page(sg, pfn_to_page(pfn), len, 0);
}

/* --- 5. Reserved regions. --- */

const int RVFIO_RESV_DIRECT_RELAXABLE = IOMMU_RESV_DIRECT_RELAXABLE;
const int RVFIO_RESV_MSI = IOMMU_RESV_MSI;
const int RVFIO_RESV_SW_MSI = IOMMU_RESV_SW_MSI;

int rvfio_group_resv_regions(struct iommu_group *group, rvfio_resv_cb cb,
			     void *ctx)
{
	struct iommu_resv_region *region, *next;
	LIST_HEAD(regions);
	int ret;

	ret = iommu_get_group_resv_regions(group, &regions);
	list_for_each_entry_safe(region, next, &regions, list) {
		if (!ret)
			cb(ctx, region->start, region->length, region->type);
		kfree(region);
	}
	return ret;
}

/* --- 4. The calling process, mm references and locks. --- */

struct mm_struct *rvfio_current_mm_grab(void)
{
	struct mm_struct *mm = current->mm;

	if (mm)
		mmgrab(mm);
	return mm;
}

void rvfio_mm_drop(struct mm_struct *mm)
{
	mmdrop(mm);
}

struct task_struct *rvfio_current_leader_get(void)
{
	struct task_struct *task = current->group_leader;

	get_task_struct(task);
	return task;
}

struct task_struct *rvfio_current_leader(void)
{
	return current->group_leader;
}

void rvfio_task_put(struct task_struct *task)
{
	put_task_struct(task);
}

bool rvfio_capable_ipc_lock(void)
{
	return capable(CAP_IPC_LOCK);
}

void rvfio_mmgrab(struct mm_struct *mm)
{
	mmgrab(mm);
}

void rvfio_task_get(struct task_struct *task)
{
	get_task_struct(task);
}

struct mm_struct *rvfio_current_mm(void)
{
	return current->mm;
}

bool rvfio_mmget_not_zero(struct mm_struct *mm)
{
	return mmget_not_zero(mm);
}

int rvfio_mmap_write_lock_killable(struct mm_struct *mm)
{
	return mmap_write_lock_killable(mm);
}

void rvfio_mmap_write_unlock(struct mm_struct *mm)
{
	mmap_write_unlock(mm);
}

void rvfio_mmap_read_lock(struct mm_struct *mm)
{
	mmap_read_lock(mm);
}

void rvfio_mmap_read_unlock(struct mm_struct *mm)
{
	mmap_read_unlock(mm);
}

unsigned long rvfio_untagged_addr_remote(struct mm_struct *mm,
					 unsigned long addr)
{
	return untagged_addr_remote(mm, addr);
}

bool rvfio_access_ok(unsigned long ptr, unsigned long size)
{
	return access_ok((void __user *)ptr, size);
}

unsigned long rvfio_current_memlock_limit(void)
{
	return rlimit(RLIMIT_MEMLOCK);
}

/* --- 4. vmas. --- */

struct vm_area_struct *rvfio_vma_lookup(struct mm_struct *mm,
					unsigned long addr)
{
	return vma_lookup(mm, addr);
}

unsigned long rvfio_vma_flags(struct vm_area_struct *vma)
{
	return vma->vm_flags;
}

unsigned long rvfio_vma_start(struct vm_area_struct *vma)
{
	return vma->vm_start;
}

unsigned long rvfio_vma_end(struct vm_area_struct *vma)
{
	return vma->vm_end;
}

bool rvfio_vma_is_anonymous(struct vm_area_struct *vma)
{
	return vma_is_anonymous(vma);
}

long rvfio_follow_pfnmap_range(struct vm_area_struct *vma, unsigned long addr,
			       unsigned long end, bool write, u64 *pfns,
			       long max, int *stop)
{
	unsigned long pfn, leaf_end;
	long i = 0;

	*stop = RVFIO_FOLLOW_DONE;
	while (i < max && addr < end) {
		struct follow_pfnmap_args args = { .vma = vma, .address = addr };

		if (follow_pfnmap_start(&args)) {
			*stop = RVFIO_FOLLOW_ABSENT;
			break;
		}
		pfn = args.pfn;
		/*
		 * 6.12 tells a PMD or PUD leaf from a pte only through the
		 * internal ptep (NULL above the pte level); 6.15 added
		 * addr_mask for this. A PUD leaf is taken PMD by PMD.
		 */
		leaf_end = args.ptep ? addr + PAGE_SIZE :
				       ALIGN_DOWN(addr, PMD_SIZE) + PMD_SIZE;
		if (write && !args.writable)
			*stop = RVFIO_FOLLOW_READONLY;
		else if (!rvfio_pfn_is_reserved(pfn))
			*stop = RVFIO_FOLLOW_RAM;
		follow_pfnmap_end(&args);
		if (*stop)
			break;
		do {
			pfns[i++] = pfn++;
			addr += PAGE_SIZE;
		} while (i < max && addr < leaf_end && addr < end);
	}
	return i;
}

/* --- 4. Pages. --- */

bool rvfio_pfn_valid(u64 pfn)
{
	return pfn_valid(pfn);
}

bool rvfio_pfn_is_reserved(u64 pfn)
{
	if (pfn_valid(pfn))
		return PageReserved(pfn_to_page(pfn));
	return true;
}

long rvfio_pages_to_runs(struct page **pages, long n, u64 iova,
			 struct rvfio_run *out)
{
	struct rvfio_run *r = NULL;
	long i = 0, k = 0;

	while (i < n) {
		struct page *page = pages[i];
		struct folio *folio = page_folio(page);
		unsigned long pfn = page_to_pfn(page);
		long len = 1, left;
		bool reserved;

		if (folio_test_large(folio)) {
			reserved = false;
			left = folio_nr_pages(folio) - folio_page_idx(folio, page);
			while (len < left && i + len < n &&
			       pages[i + len] == nth_page(page, len))
				len++;
		} else {
			reserved = PageReserved(page);
		}
		if (r && r->reserved == reserved && r->pfn + r->npages == pfn) {
			r->npages += len;
		} else {
			r = &out[k++];
			r->iova = iova + ((u64)i << PAGE_SHIFT);
			r->pfn = pfn;
			r->npages = len;
			r->reserved = reserved;
		}
		i += len;
	}
	return k;
}

void rvfio_unpin_pfn_range(u64 pfn, u64 npages, bool dirty)
{
	unpin_user_page_range_dirty_lock(pfn_to_page(pfn), npages, dirty);
}

void rvfio_unpin_page_runs(const struct rvfio_run *runs, unsigned long n,
			   bool dirty, struct page **scratch,
			   unsigned long batch)
{
	unsigned long i, k = 0;

	for (i = 0; i < n; i++) {
		if (runs[i].reserved)
			continue;
		scratch[k++] = pfn_to_page(runs[i].pfn);
		if (k == batch) {
			unpin_user_pages_dirty_lock(scratch, k, dirty);
			k = 0;
		}
	}
	if (k)
		unpin_user_pages_dirty_lock(scratch, k, dirty);
}

/* --- 4. Emulated-IOMMU devices. --- */

bool rvfio_vdev_has_dma_unmap(struct vfio_device *vdev)
{
	return vdev->ops->dma_unmap;
}

void rvfio_vdev_dma_unmap(struct vfio_device *vdev, u64 iova, u64 length)
{
	vdev->ops->dma_unmap(vdev, iova, length);
}

/* --- 3. PFNMAP watches: the mmu interval notifier ops (rust/watch.rs). --- */

static bool rvfio_watch_invalidate(struct mmu_interval_notifier *mni,
				   const struct mmu_notifier_range *range,
				   unsigned long cur_seq)
{
	return rvfio_rs_watch_invalidate(mni, cur_seq, range->start,
					 range->end,
					 mmu_notifier_range_blockable(range));
}

const struct mmu_interval_notifier_ops rvfio_watch_ops = {
	.invalidate = rvfio_watch_invalidate,
};

bool rvfio_watch_read_retry(struct mmu_interval_notifier *mni,
			    unsigned long seq)
{
	return mmu_interval_read_retry(mni, seq);
}

void rvfio_watch_set_seq(struct mmu_interval_notifier *mni,
			 unsigned long cur_seq)
{
	mmu_interval_set_seq(mni, cur_seq);
}

/* --- 4. eventfd. --- */

int rvfio_eventfd_get(int fd, struct eventfd_ctx **out)
{
	struct eventfd_ctx *ctx = eventfd_ctx_fdget(fd);

	if (IS_ERR(ctx))
		return PTR_ERR(ctx);
	*out = ctx;
	return 0;
}

void rvfio_eventfd_signal(struct eventfd_ctx *ctx)
{
	eventfd_signal(ctx);
}

void rvfio_eventfd_put(struct eventfd_ctx *ctx)
{
	eventfd_ctx_put(ctx);
}

/* ======================================================================
 * Fault ring (rust/faults.rs, rust/fault_ring.rs). What is here, and why
 * it cannot be Rust; no policy, Rust decides:
 *
 * 1. The ring fd's file_operations table and its shims (the VFS keeps a
 *    pointer to a static table; the 6.12 kernel crate has no file
 *    abstraction), and anon_inode_getfd() with it.
 * 2. The iommu_fault_handler_t every rvfio domain gets: it reads the
 *    faulting struct device (iommu_group, to_pci_dev(), pci_dev_id() and
 *    pci_domain_nr() are fields and static inlines) and hands plain
 *    numbers to Rust.
 * 3. One-call wrappers over macros and static inlines: vmalloc_user()
 *    (an alloc_hooks() macro), remap_vmalloc_range(), the wait queue and
 *    poll helpers, raw_spin_lock_irqsave() and friends,
 *    rcu_read_lock()/rcu_read_unlock(), ktime_get_ns(), init_completion()
 *    and msecs_to_jiffies().
 * ====================================================================== */
#include <linux/anon_inodes.h>
#include <linux/completion.h>
#include <linux/pci.h>
#include <linux/poll.h>
#include <linux/rcupdate.h>
#include <linux/spinlock.h>
#include <linux/timekeeping.h>
#include <linux/vmalloc.h>
#include <linux/wait.h>

/*
 * The fault handler of every domain rvfio allocates. Runs where the IOMMU
 * driver reports: hard interrupt context on VT-d (dmar_fault(), with the
 * test kernel's patch) and ARM SMMUv2, the IRQ thread on AMD-Vi. @dev is
 * NULL on SMMUv2.
 */
static int rvfio_fault_handler(struct iommu_domain *domain, struct device *dev,
			       unsigned long iova, int flags, void *token)
{
	int group_id = -1, segment = -1;
	u16 rid = 0;

	if (dev && dev->iommu_group)
		group_id = iommu_group_id(dev->iommu_group);
	if (dev && dev_is_pci(dev)) {
		struct pci_dev *pdev = to_pci_dev(dev);

		segment = pci_domain_nr(pdev->bus);
		rid = pci_dev_id(pdev);
	}
	return rvfio_rs_hw_fault(token, iova, flags, group_id, segment, rid);
}

void rvfio_domain_set_fault_handler(struct iommu_domain *domain,
				    const void *token)
{
	iommu_set_fault_handler(domain, rvfio_fault_handler, (void *)token);
}

static int rvfio_ring_release(struct inode *inode, struct file *file)
{
	rvfio_rs_ring_release(file->private_data);
	return 0;
}

static __poll_t rvfio_ring_poll(struct file *file, poll_table *pt)
{
	return (__force __poll_t)rvfio_rs_ring_poll(file->private_data, file, pt);
}

static ssize_t rvfio_ring_write(struct file *file, const char __user *buf,
				size_t count, loff_t *ppos)
{
	return rvfio_rs_ring_write(file->private_data, (unsigned long)buf, count);
}

static int rvfio_ring_mmap(struct file *file, struct vm_area_struct *vma)
{
	return rvfio_rs_ring_mmap(file->private_data, vma, vma->vm_pgoff,
				  vma->vm_end - vma->vm_start,
				  vma->vm_flags & VM_SHARED);
}

static const struct file_operations rvfio_ring_fops = {
	.owner		= THIS_MODULE,
	.release	= rvfio_ring_release,
	.poll		= rvfio_ring_poll,
	.write		= rvfio_ring_write,
	.mmap		= rvfio_ring_mmap,
	.llseek		= noop_llseek,
};

int rvfio_ring_getfd(const void *ring)
{
	return anon_inode_getfd("[rvfio-fault-ring]", &rvfio_ring_fops,
				(void *)ring, O_RDWR | O_CLOEXEC);
}

void *rvfio_vmalloc_user(unsigned long size)
{
	return vmalloc_user(size);
}

void rvfio_vfree(void *addr)
{
	vfree(addr);
}

int rvfio_vma_remap_vmalloc(struct vm_area_struct *vma, void *addr,
			    unsigned long pgoff)
{
	return remap_vmalloc_range(vma, addr, pgoff);
}

void rvfio_waitqueue_init(struct wait_queue_head *wq)
{
	init_waitqueue_head(wq);
}

void rvfio_poll_wait(struct file *file, struct wait_queue_head *wq,
		     struct poll_table_struct *pt)
{
	poll_wait(file, wq, pt);
}

void rvfio_wake_up_poll(struct wait_queue_head *wq, unsigned int mask)
{
	if (wq_has_sleeper(wq))
		wake_up_interruptible_poll(wq, (__force __poll_t)mask);
}

void rvfio_raw_spin_lock_init(struct raw_spinlock *lock, const char *name,
			      struct lock_class_key *key)
{
#ifdef CONFIG_DEBUG_SPINLOCK
	__raw_spin_lock_init(lock, name, key, LD_WAIT_SPIN);
#else
	raw_spin_lock_init(lock);
#endif
}

unsigned long rvfio_raw_spin_lock_irqsave(struct raw_spinlock *lock)
{
	unsigned long flags;

	raw_spin_lock_irqsave(lock, flags);
	return flags;
}

void rvfio_raw_spin_unlock_irqrestore(struct raw_spinlock *lock,
				      unsigned long flags)
{
	raw_spin_unlock_irqrestore(lock, flags);
}

void rvfio_rcu_read_lock(void)
{
	rcu_read_lock();
}

void rvfio_rcu_read_unlock(void)
{
	rcu_read_unlock();
}

u64 rvfio_ktime_get_ns(void)
{
	return ktime_get_ns();
}

void rvfio_completion_init(struct completion *c)
{
	init_completion(c);
}

long rvfio_completion_wait_killable(struct completion *c, unsigned int ms)
{
	return wait_for_completion_killable_timeout(c, msecs_to_jiffies(ms));
}

/*
 * ====================================================================
 * Nesting (rust/nesting.rs, rust/stage2.rs). Kept apart at the end of
 * the file: one-call wrappers only, no policy.
 * ====================================================================
 */
#include <linux/highmem.h>
#include <uapi/linux/iommufd.h>	/* IOMMU_HWPT_ALLOC_NEST_PARENT */

u64 rvfio_pfn_read_u64(u64 pfn, unsigned int offset)
{
	void *page = kmap_local_pfn(pfn);
	/* The guest may write its table while it is read: one read each. */
	u64 val = READ_ONCE(*(u64 *)(page + (offset & (PAGE_SIZE - 8))));

	kunmap_local(page);
	return val;
}

static int rvfio_probe_nest_parent_one(struct device *dev, void *data)
{
	const struct iommu_ops *ops;
	struct iommu_domain *domain;
	int *ret = data;

	if (!dev->iommu || !dev->iommu->iommu_dev) {
		*ret = -ENODEV;
		return 1;
	}
	/* dev_iommu_ops() of drivers/iommu/iommu-priv.h. */
	ops = dev->iommu->iommu_dev->ops;
	if (!ops->domain_alloc_user) {
		*ret = -EOPNOTSUPP;
		return 1;
	}
	domain = ops->domain_alloc_user(dev, IOMMU_HWPT_ALLOC_NEST_PARENT,
					NULL, NULL);
	if (IS_ERR(domain)) {
		*ret = PTR_ERR(domain);
		return 1;
	}
	/* As iommufd_hwpt_paging_alloc() does; never attached. */
	domain->owner = ops;
	iommu_domain_free(domain);
	*ret = 0;
	return 1; /* Only the first device. */
}

int rvfio_group_probe_nest_parent(struct iommu_group *group)
{
	int ret = -ENODEV;

	iommu_group_for_each_dev(group, &ret, rvfio_probe_nest_parent_one);
	return ret;
}
