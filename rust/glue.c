// SPDX-License-Identifier: GPL-2.0
/*
 * rvfio C glue: the vfio_iommu_driver_ops table (its type is in vfio's
 * private header), module parameters, and wrappers for static inline kernel
 * functions. No policy lives here: every decision is made in Rust.
 */
#include <linux/iommu.h>
#include <linux/mm.h>
#include <linux/module.h>
#include <linux/sched/mm.h>
#include <linux/sched/signal.h>
#include <linux/sched/task.h>
#include <linux/capability.h>
#include <linux/err.h>
#include <linux/kthread.h>
#include <linux/eventfd.h>
#include <linux/mmu_notifier.h>
#include <linux/scatterlist.h>
#include <linux/slab.h>
#include <linux/uaccess.h>
#include <linux/vfio.h>
#include "vfio.h"	/* drivers/vfio/vfio.h: struct vfio_iommu_driver_ops */
#include "glue.h"

/* Same names, types, permissions and defaults as vfio_iommu_type1's. */
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

/* --- The ops table: shims into Rust. --- */

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

/* --- IOMMU domains. --- */

static int rvfio_domain_alloc_one(struct device *dev, void *data)
{
	struct iommu_domain **domain = data;

	*domain = iommu_paging_domain_alloc(dev);
	return 1; /* Only the first device: stop iterating. */
}

int rvfio_domain_alloc(struct iommu_group *group, struct iommu_domain **out)
{
	struct iommu_domain *domain = ERR_PTR(-ENODEV);

	iommu_group_for_each_dev(group, &domain, rvfio_domain_alloc_one);
	if (IS_ERR(domain))
		return PTR_ERR(domain);
	*out = domain;
	return 0;
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
	return iommu_map(domain, iova, paddr, size, prot | IOMMU_CACHE,
			 GFP_ATOMIC | __GFP_NOWARN);
}

/* --- Reserved regions. --- */

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

/* --- The calling process. --- */

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

void rvfio_task_put(struct task_struct *task)
{
	put_task_struct(task);
}

bool rvfio_capable_ipc_lock(void)
{
	return capable(CAP_IPC_LOCK);
}

int rvfio_lock_acct(struct mm_struct *mm, struct task_struct *task,
		    long npages, bool lock_cap)
{
	/* The caller's own mm has users while it runs: no reference needed. */
	bool own = mm == current->mm;
	int ret;

	if (!npages)
		return 0;
	if (!own && !mmget_not_zero(mm))
		return -ESRCH;
	ret = mmap_write_lock_killable(mm);
	if (!ret) {
		ret = __account_locked_vm(mm, abs(npages), npages > 0, task,
					  lock_cap);
		mmap_write_unlock(mm);
	}
	if (!own)
		mmput(mm);
	return ret;
}

bool rvfio_access_ok(unsigned long ptr, unsigned long size)
{
	return access_ok((void __user *)ptr, size);
}

unsigned long rvfio_current_memlock_limit(void)
{
	return rlimit(RLIMIT_MEMLOCK);
}

/* --- Emulated-IOMMU devices. --- */

bool rvfio_vdev_has_dma_unmap(struct vfio_device *vdev)
{
	return vdev->ops->dma_unmap;
}

void rvfio_vdev_dma_unmap(struct vfio_device *vdev, u64 iova, u64 length)
{
	vdev->ops->dma_unmap(vdev, iova, length);
}

int rvfio_mm_rw(struct mm_struct *mm, unsigned long vaddr, void *buf,
		size_t count, bool write)
{
	bool kthread = current->mm == NULL;
	unsigned long left = count;

	if (!mmget_not_zero(mm))
		return -EPERM;
	if (kthread)
		kthread_use_mm(mm);
	if (kthread || current->mm == mm)
		left = write ? copy_to_user((void __user *)vaddr, buf, count) :
			       copy_from_user(buf, (void __user *)vaddr, count);
	if (kthread)
		kthread_unuse_mm(mm);
	mmput(mm);
	return left ? -EFAULT : 0;
}

bool rvfio_pfn_valid(u64 pfn)
{
	return pfn_valid(pfn);
}

/* --- Pinning. --- */

/*
 * type1's follow_fault_pfn(): the pfn behind @vaddr in a VM_PFNMAP vma,
 * faulting it in when absent (vfio-pci populates BAR mmaps on first access).
 * -EAGAIN when the fault dropped the mmap lock: the vma may be stale.
 */
static int rvfio_follow_fault_pfn(struct vm_area_struct *vma,
				  struct mm_struct *mm, unsigned long vaddr,
				  unsigned long *pfn, bool write,
				  unsigned long *leaf_end)
{
	struct follow_pfnmap_args args = { .vma = vma, .address = vaddr };
	int ret;

	/*
	 * Honour the vma's permissions as GUP does for ordinary memory:
	 * follow_pfnmap_start() finds ptes that mprotect(PROT_NONE) left in
	 * place, and type1 would map them. No FOLL_FORCE-like bypass.
	 */
	if (!(vma->vm_flags & VM_READ) || (write && !(vma->vm_flags & VM_WRITE)))
		return -EFAULT;

	ret = follow_pfnmap_start(&args);
	if (ret) {
		bool unlocked = false;

		ret = fixup_user_fault(mm, vaddr,
				       FAULT_FLAG_REMOTE |
				       (write ? FAULT_FLAG_WRITE : 0),
				       &unlocked);
		if (unlocked)
			return -EAGAIN;
		if (ret)
			return ret;
		ret = follow_pfnmap_start(&args);
		if (ret)
			return ret;
	}
	if (write && !args.writable) {
		ret = -EFAULT;
	} else {
		*pfn = args.pfn;
		/*
		 * A PMD or PUD leaf (vfio-pci's huge_fault installs them for
		 * aligned BAR mmaps) maps contiguous pfns: the caller need not
		 * look up the rest of the PMD. 6.12 says which only through
		 * follow_pfnmap_args' internal ptep (NULL above the pte
		 * level); 6.15 added addr_mask for this.
		 */
		*leaf_end = args.ptep ? vaddr + PAGE_SIZE
				      : ALIGN_DOWN(vaddr, PMD_SIZE) + PMD_SIZE;
	}
	follow_pfnmap_end(&args);
	return ret;
}

/*
 * Up to @npages pfns of a VM_PFNMAP range from @vaddr, in one vma, under the
 * mmap read lock: a page-table lookup per page and a fault only where a page
 * is absent. Returns the number found (> 0) or -errno for the first page.
 * Pfns found before a fault dropped the lock are kept: the caller's
 * mmu-notifier sequence check catches any change.
 */
static long rvfio_pfnmap_lookup(struct mm_struct *mm, unsigned long vaddr,
				long npages, bool write, u64 *pfns)
{
	struct vm_area_struct *vma;
	unsigned long pfn, leaf_end;
	long i = 0;
	int ret;

retry:
	vma = vma_lookup(mm, vaddr);
	if (!vma || !(vma->vm_flags & VM_PFNMAP))
		return i ? i : -EFAULT;
	while (i < npages && vaddr < vma->vm_end) {
		ret = rvfio_follow_fault_pfn(vma, mm, vaddr, &pfn, write,
					     &leaf_end);
		if (ret == -EAGAIN)
			goto retry;
		if (ret)
			return i ? i : ret;
		/* type1 refuses a PFNMAP pfn backed by ordinary memory. */
		if (!rvfio_pfn_is_reserved(pfn))
			return i ? i : -EFAULT;
		do {
			pfns[i++] = (pfn++) | RVFIO_PFN_RESERVED;
			vaddr += PAGE_SIZE;
		} while (i < npages && vaddr < leaf_end && vaddr < vma->vm_end);
	}
	return i;
}

/*
 * Pins up to @npages pages at @vaddr of @mm into @buf as struct page
 * pointers (*@pages set), or, for a VM_PFNMAP range, looks their pfns up
 * into @buf, all tagged RVFIO_PFN_RESERVED (*@pages clear). Returns the
 * number (> 0) or -errno.
 */
static long rvfio_pin_raw(struct mm_struct *mm, unsigned long vaddr,
			  long npages, bool write, bool pfnmap_ok, u64 *buf,
			  bool *pages)
{
	unsigned int flags = FOLL_LONGTERM | (write ? FOLL_WRITE : 0);
	struct vm_area_struct *vma;
	unsigned long addr;
	long ret;

	/* struct page * and u64 have the same size on 64-bit. */
	BUILD_BUG_ON(sizeof(struct page *) != sizeof(*buf));
	*pages = true;
	/*
	 * The usual case, MAP_DMA by the mapping's owner: the lockless GUP
	 * fast path (as iommufd does), which pins a whole THP or hugetlb
	 * folio per page-table entry instead of walking page by page under
	 * the mmap lock. Anything it cannot pin (a VM_PFNMAP range, an error)
	 * is sorted out below with the lock held.
	 */
	if (mm == current->mm) {
		ret = pin_user_pages_fast(vaddr, npages, flags,
					  (struct page **)buf);
		if (ret > 0)
			return ret;
	}
	if (!mmget_not_zero(mm))
		return -ENODEV;
	mmap_read_lock(mm);
	/*
	 * A VM_PFNMAP range (another device's BAR) cannot be pinned: look its
	 * pfns up instead, as 6.12's vaddr_get_pfns() does when pinning fails
	 * (but without trying to pin first). Such pfns are neither pinned nor
	 * charged. Pinning stops where such a range begins.
	 */
	addr = untagged_addr_remote(mm, vaddr);
	vma = vma_lookup(mm, addr);
	if (vma && (vma->vm_flags & VM_PFNMAP)) {
		*pages = false;
		ret = pfnmap_ok ? rvfio_pfnmap_lookup(mm, addr, npages, write, buf)
				: -EREMCHG;
		goto out;
	}
	ret = pin_user_pages_remote(mm, vaddr, npages, flags,
				    (struct page **)buf, NULL);
	if (ret == 0)
		ret = -EFAULT;
out:
	mmap_read_unlock(mm);
	mmput(mm);
	return ret;
}

/*
 * How many of the @n pages from @i on in @buf continue the physically
 * contiguous stretch that starts there, and whether it is reserved (the
 * zero page; every PFNMAP pfn). The pages of a large folio (THP, hugetlb)
 * that follow each other in order are contiguous and never reserved: their
 * struct pages are not read at all, which is most of the cost for 2 MiB
 * folios.
 */
static long rvfio_stretch(const u64 *buf, bool pages, long i, long n,
			  unsigned long *pfn, bool *reserved)
{
	long len = 1;

	if (!pages) {
		*pfn = buf[i] & ~RVFIO_PFN_RESERVED;
		*reserved = true;
		while (i + len < n &&
		       (buf[i + len] & ~RVFIO_PFN_RESERVED) == *pfn + len)
			len++;
	} else {
		struct page **pg = (struct page **)buf;
		struct page *page = pg[i];
		struct folio *folio = page_folio(page);
		long left;

		*pfn = page_to_pfn(page);
		if (!folio_test_large(folio)) {
			*reserved = PageReserved(page);
			return 1;
		}
		*reserved = false;
		left = folio_nr_pages(folio) - folio_page_idx(folio, page);
		while (len < left && i + len < n &&
		       pg[i + len] == nth_page(page, len))
			len++;
	}
	return len;
}

long rvfio_pin_runs(struct mm_struct *mm, unsigned long vaddr, u64 iova,
		    long npages, bool write, bool pfnmap_ok, u64 *buf,
		    struct rvfio_run *runs, long *nruns)
{
	bool pages, reserved, split = READ_ONCE(disable_hugepages);
	struct rvfio_run *r = NULL;
	unsigned long pfn;
	long got, i, len, k;

	*nruns = 0;
	got = rvfio_pin_raw(mm, vaddr, npages, write, pfnmap_ok, buf, &pages);
	for (i = 0; i < got; i += len) {
		len = rvfio_stretch(buf, pages, i, got, &pfn, &reserved);
		if (!split && r && r->reserved == reserved &&
		    r->pfn + r->npages == pfn) {
			r->npages += len;
			continue;
		}
		/* disable_hugepages: a run per page, as type1 maps them. */
		for (k = 0; k < (split ? len : 1); k++) {
			r = &runs[(*nruns)++];
			r->iova = iova + ((i + k) << PAGE_SHIFT);
			r->pfn = pfn + k;
			r->npages = split ? 1 : len;
			r->reserved = reserved;
		}
	}
	return got;
}

/* Runs per iommu_map_sg() call: one IOTLB sync for all of them. */
#define RVFIO_SG_RUNS	256
/* Longest run put in a scatterlist entry (its length is 32 bits). */
#define RVFIO_SG_MAX_PAGES	(SZ_1G >> PAGE_SHIFT)

static bool rvfio_run_sg_ok(const struct rvfio_run *r)
{
	return r->npages < RVFIO_SG_MAX_PAGES && pfn_valid(r->pfn);
}

int rvfio_domain_map_runs(struct iommu_domain *domain,
			  const struct rvfio_run *runs, long n, int prot)
{
	struct scatterlist *sgl = NULL;
	u64 start = runs[0].iova;
	long i, k;
	int ret = 0;

	for (i = 1; i < n; i++)
		if (WARN_ON_ONCE(runs[i].iova !=
				 runs[i - 1].iova + (runs[i - 1].npages << PAGE_SHIFT)))
			return -EINVAL;
	prot |= IOMMU_CACHE;
	/*
	 * Many runs (fragmented memory): through scatterlists, so that the
	 * IOTLB sync iommu_map() does after every call (an invalidation per
	 * run on VT-d in caching mode) happens once per RVFIO_SG_RUNS runs.
	 * Without the buffer, or for a run no sg entry can describe, one
	 * iommu_map() per run.
	 */
	if (n > 1)
		sgl = kmalloc_array(min_t(long, n, RVFIO_SG_RUNS), sizeof(*sgl),
				    GFP_KERNEL | __GFP_NOWARN);
	for (i = 0; i < n && !ret; i += k) {
		ssize_t mapped;

		if (!sgl || !rvfio_run_sg_ok(&runs[i])) {
			ret = iommu_map(domain, runs[i].iova,
					PFN_PHYS(runs[i].pfn),
					runs[i].npages << PAGE_SHIFT, prot,
					GFP_KERNEL_ACCOUNT);
			k = 1;
			continue;
		}
		/*
		 * iommu_map_sg() merges physically adjacent entries into one
		 * mapping (with larger pages): runs split on purpose
		 * (disable_hugepages) must not meet in one call.
		 */
		for (k = 0; i + k < n && k < RVFIO_SG_RUNS &&
			    rvfio_run_sg_ok(&runs[i + k]) &&
			    !(k && runs[i + k].pfn == runs[i + k - 1].pfn +
						      runs[i + k - 1].npages);
		     k++)
			;
		sg_init_table(sgl, k);
		for (long j = 0; j < k; j++)
			sg_set_page(&sgl[j], pfn_to_page(runs[i + j].pfn),
				    runs[i + j].npages << PAGE_SHIFT, 0);
		mapped = iommu_map_sg(domain, runs[i].iova, sgl, k, prot,
				      GFP_KERNEL_ACCOUNT);
		if (mapped < 0)
			ret = mapped;
	}
	kfree(sgl);
	/* The failed call undid itself; undo the calls before it. */
	if (ret && i - k > 0)
		iommu_unmap(domain, start, runs[i - k].iova - start);
	return ret;
}

void rvfio_unpin_pfns(u64 pfn, u64 npages, bool dirty)
{
	unpin_user_page_range_dirty_lock(pfn_to_page(pfn), npages, dirty);
}

/* One-page runs unpinned per unpin_user_pages_dirty_lock() call. */
#define RVFIO_UNPIN_BATCH	512

/*
 * Unpins the one-page runs from @runs on (stopping at the first longer
 * one), a batch per call through @pages (room for RVFIO_UNPIN_BATCH):
 * fragmented memory. Returns how many runs it went through.
 */
static long rvfio_unpin_singles(const struct rvfio_run *runs, long n,
				bool dirty, struct page **pages)
{
	long i;
	int k = 0;

	for (i = 0; i < n && runs[i].npages == 1; i++) {
		if (runs[i].reserved)
			continue;
		pages[k++] = pfn_to_page(runs[i].pfn);
		if (k == RVFIO_UNPIN_BATCH) {
			unpin_user_pages_dirty_lock(pages, k, dirty);
			k = 0;
		}
	}
	if (k)
		unpin_user_pages_dirty_lock(pages, k, dirty);
	return i;
}

void rvfio_unpin_runs(const struct rvfio_run *runs, long n, bool dirty)
{
	/*
	 * A heap buffer, not a stack array: INIT_STACK_ALL_ZERO would clear
	 * the array on every call (a byte-by-byte rep stosb under TCG).
	 */
	struct page **pages = NULL;
	long i = 0;

	while (i < n) {
		if (runs[i].npages == 1 && i + 1 < n && runs[i + 1].npages == 1 &&
		    (pages || (pages = kmalloc_array(RVFIO_UNPIN_BATCH,
						     sizeof(*pages),
						     GFP_KERNEL | __GFP_NOWARN)))) {
			i += rvfio_unpin_singles(runs + i, n - i, dirty, pages);
			continue;
		}
		if (!runs[i].reserved)
			unpin_user_page_range_dirty_lock(pfn_to_page(runs[i].pfn),
							 runs[i].npages, dirty);
		i++;
	}
	kfree(pages);
}

bool rvfio_pfn_is_reserved(u64 pfn)
{
	/* type1's is_invalid_reserved_pfn(). */
	if (pfn_valid(pfn))
		return PageReserved(pfn_to_page(pfn));
	return true;
}

/* --- PFNMAP watches: mmu interval notifiers (rust/revoke.rs). --- */

struct rvfio_watch {
	struct mmu_interval_notifier mni;
	const void *revoker;
};

static bool rvfio_watch_invalidate(struct mmu_interval_notifier *mni,
				   const struct mmu_notifier_range *range,
				   unsigned long cur_seq)
{
	struct rvfio_watch *w = container_of(mni, struct rvfio_watch, mni);

	return rvfio_rs_watch_invalidate(w->revoker, w, cur_seq, range->start,
					 range->end,
					 mmu_notifier_range_blockable(range));
}

static const struct mmu_interval_notifier_ops rvfio_watch_ops = {
	.invalidate = rvfio_watch_invalidate,
};

int rvfio_watch_new(struct mm_struct *mm, unsigned long start,
		    unsigned long length, const void *revoker,
		    struct rvfio_watch **out)
{
	struct rvfio_watch *w;
	int ret;

	w = kzalloc(sizeof(*w), GFP_KERNEL_ACCOUNT);
	if (!w)
		return -ENOMEM;
	w->revoker = revoker;
	/* Registering the mm's first notifier needs a live mm. */
	if (!mmget_not_zero(mm)) {
		kfree(w);
		return -ENODEV;
	}
	ret = mmu_interval_notifier_insert(&w->mni, mm, start, length,
					   &rvfio_watch_ops);
	mmput(mm);
	if (ret) {
		kfree(w);
		return ret;
	}
	*out = w;
	return 0;
}

void rvfio_watch_free(struct rvfio_watch *w)
{
	/* Waits for a running invalidate callback to return. */
	mmu_interval_notifier_remove(&w->mni);
	kfree(w);
}

unsigned long rvfio_watch_read_begin(struct rvfio_watch *w)
{
	return mmu_interval_read_begin(&w->mni);
}

bool rvfio_watch_read_retry(struct rvfio_watch *w, unsigned long seq)
{
	return mmu_interval_read_retry(&w->mni, seq);
}

void rvfio_watch_set_seq(struct rvfio_watch *w, unsigned long cur_seq)
{
	mmu_interval_set_seq(&w->mni, cur_seq);
}

/* --- eventfd. --- */

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

/*
 * ====================================================================
 * Nesting (rust/nesting.rs, rust/stage2.rs). Kept apart at the end of
 * the file: one-call wrappers only, no policy.
 * ====================================================================
 */
#include <linux/highmem.h>
#include <uapi/linux/iommufd.h>	/* IOMMU_HWPT_ALLOC_NEST_PARENT */

int rvfio_domain_map(struct iommu_domain *domain, u64 iova, u64 paddr,
		     u64 size, int prot)
{
	return iommu_map(domain, iova, paddr, size, prot | IOMMU_CACHE,
			 GFP_KERNEL_ACCOUNT);
}

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
