// SPDX-License-Identifier: GPL-2.0
/*
 * rvfio_floor: the floor of a MAP_DMA/UNMAP_DMA for `make bench` (see
 * rvfio_floor.h and Documentation/bench.rst). Benchmark-only: nothing else
 * loads it.
 */
#include <linux/iommu.h>
#include <linux/ktime.h>
#include <linux/miscdevice.h>
#include <linux/mm.h>
#include <linux/sched/mm.h>
#include <linux/module.h>
#include <linux/mutex.h>
#include <linux/pci.h>
#include <linux/slab.h>
#include <linux/uaccess.h>

#include "rvfio_floor.h"

/* Pages pinned per pin_user_pages_fast() call (type1 pins 512 at a time). */
#define PIN_BATCH 512

struct floor_map {
	struct page **pages;
	unsigned long npages;
	unsigned long nr_runs;	/* physically contiguous runs */
	u64 iova;
	unsigned long charged;	/* pages charged to mm's locked_vm (F_ACCT) */
	struct mm_struct *mm;	/* mmgrab()bed while charged */
};

static struct pci_dev *edu;
static struct iommu_domain *domain;
static struct floor_map *slots;
static DEFINE_MUTEX(floor_lock);

static long floor_map(struct rvfio_floor_req *r)
{
	struct floor_map *m = &slots[r->slot];
	unsigned long npages = r->size >> PAGE_SHIFT, pinned = 0, i, j;
	u64 t0, t1, t2;
	long ret;

	if (m->pages)
		return -EBUSY;
	if (!npages || (r->vaddr | r->size | r->iova) & ~PAGE_MASK)
		return -EINVAL;
	t0 = ktime_get_ns();
	m->pages = kvmalloc_array(npages, sizeof(*m->pages), GFP_KERNEL);
	if (!m->pages)
		return -ENOMEM;
	m->charged = 0;
	while (pinned < npages) {
		unsigned long va = r->vaddr + (pinned << PAGE_SHIFT);
		unsigned long n = min_t(unsigned long, npages - pinned, PIN_BATCH);

		if (r->flags & RVFIO_FLOOR_F_REMOTE) {
			struct mm_struct *mm = current->mm;

			ret = -ESRCH;
			if (mmget_not_zero(mm)) {
				mmap_read_lock(mm);
				ret = pin_user_pages_remote(mm, va, n, FOLL_WRITE | FOLL_LONGTERM,
							    m->pages + pinned, NULL);
				mmap_read_unlock(mm);
				mmput(mm);
			}
		} else {
			ret = pin_user_pages_fast(va, n, FOLL_WRITE | FOLL_LONGTERM,
						  m->pages + pinned);
		}
		if (ret <= 0) {
			ret = ret ?: -EFAULT;
			goto err_unpin;
		}
		pinned += ret;
		if (r->flags & RVFIO_FLOOR_F_ACCT) {
			long n_acct = ret;

			ret = account_locked_vm(current->mm, n_acct, true);
			if (ret)
				goto err_unpin;
			if (!m->charged) {
				m->mm = current->mm;
				mmgrab(m->mm);
			}
			m->charged += n_acct;
		}
	}
	t1 = ktime_get_ns();
	r->nr_runs = 0;
	for (i = 0; i < npages; i = j) {
		unsigned long pfn = page_to_pfn(m->pages[i]);

		for (j = i + 1; j < npages && page_to_pfn(m->pages[j]) == pfn + (j - i); j++)
			;
		ret = iommu_map(domain, r->iova + (i << PAGE_SHIFT), PFN_PHYS(pfn),
				(j - i) << PAGE_SHIFT, IOMMU_READ | IOMMU_WRITE, GFP_KERNEL);
		if (ret) {
			if (i)
				iommu_unmap(domain, r->iova, i << PAGE_SHIFT);
			goto err_unpin;
		}
		r->nr_runs++;
	}
	t2 = ktime_get_ns();
	m->npages = npages;
	m->nr_runs = r->nr_runs;
	m->iova = r->iova;
	r->pin_ns = t1 - t0;
	r->iommu_ns = t2 - t1;
	r->total_ns = t2 - t0;
	return 0;

err_unpin:
	if (m->charged) {
		account_locked_vm(m->mm, m->charged, false);
		mmdrop(m->mm);
	}
	unpin_user_pages(m->pages, pinned);
	kvfree(m->pages);
	m->pages = NULL;
	return ret;
}

static long floor_unmap(struct rvfio_floor_req *r)
{
	struct floor_map *m = &slots[r->slot];
	size_t size, done;
	u64 t0, t1, t2;

	if (!m->pages)
		return -ENOENT;
	size = m->npages << PAGE_SHIFT;
	t0 = ktime_get_ns();
	done = iommu_unmap(domain, m->iova, size);
	t1 = ktime_get_ns();
	/*
	 * Long runs: one unpin_user_page_range_dirty_lock() per run (folio
	 * steps, no walk of the page array); short ones: the array variant.
	 */
	if (m->nr_runs * 8 <= m->npages) {
		unsigned long i, j;

		for (i = 0; i < m->npages; i = j) {
			unsigned long pfn = page_to_pfn(m->pages[i]);

			for (j = i + 1; j < m->npages && page_to_pfn(m->pages[j]) == pfn + (j - i);
			     j++)
				;
			unpin_user_page_range_dirty_lock(m->pages[i], j - i, true);
		}
	} else {
		unpin_user_pages_dirty_lock(m->pages, m->npages, true);
	}
	kvfree(m->pages);
	if (m->charged) {
		account_locked_vm(m->mm, m->charged, false);
		mmdrop(m->mm);
		m->charged = 0;
	}
	t2 = ktime_get_ns();
	m->pages = NULL;
	r->iommu_ns = t1 - t0;
	r->pin_ns = t2 - t1;
	r->total_ns = t2 - t0;
	return done == size ? 0 : -EIO;
}

static long floor_ioctl(struct file *f, unsigned int cmd, unsigned long arg)
{
	struct rvfio_floor_req r;
	long ret;

	if (copy_from_user(&r, (void __user *)arg, sizeof(r)))
		return -EFAULT;
	if (r.slot >= RVFIO_FLOOR_SLOTS)
		return -EINVAL;
	mutex_lock(&floor_lock);
	switch (cmd) {
	case RVFIO_FLOOR_MAP:
		ret = floor_map(&r);
		break;
	case RVFIO_FLOOR_UNMAP:
		ret = floor_unmap(&r);
		break;
	default:
		ret = -ENOTTY;
	}
	mutex_unlock(&floor_lock);
	if (!ret && copy_to_user((void __user *)arg, &r, sizeof(r)))
		ret = -EFAULT;
	return ret;
}

static const struct file_operations floor_fops = {
	.owner = THIS_MODULE,
	.unlocked_ioctl = floor_ioctl,
};

static struct miscdevice floor_misc = {
	.minor = MISC_DYNAMIC_MINOR,
	.name = "rvfio_floor",
	.fops = &floor_fops,
	.mode = 0600,
};

static void floor_release_all(void)
{
	struct rvfio_floor_req r = {};

	for (r.slot = 0; r.slot < RVFIO_FLOOR_SLOTS; r.slot++)
		if (slots[r.slot].pages)
			floor_unmap(&r);
}

static int __init floor_init(void)
{
	struct pci_dev *pdev = NULL;
	int ret;

	while ((pdev = pci_get_device(0x1234, 0x11e8, pdev)))
		if (!pdev->dev.driver)
			break;
	if (!pdev) {
		pr_err("rvfio_floor: no edu device without a driver\n");
		return -ENODEV;
	}
	edu = pdev;
	slots = kvcalloc(RVFIO_FLOOR_SLOTS, sizeof(*slots), GFP_KERNEL);
	ret = -ENOMEM;
	if (!slots)
		goto err_put;
	domain = iommu_paging_domain_alloc(&edu->dev);
	if (IS_ERR(domain)) {
		ret = PTR_ERR(domain);
		goto err_slots;
	}
	ret = iommu_attach_device(domain, &edu->dev);
	if (ret)
		goto err_domain;
	ret = misc_register(&floor_misc);
	if (ret)
		goto err_detach;
	pr_info("rvfio_floor: paging domain (pgsize_bitmap %#lx) attached to %s\n",
		domain->pgsize_bitmap, pci_name(edu));
	return 0;

err_detach:
	iommu_detach_device(domain, &edu->dev);
err_domain:
	iommu_domain_free(domain);
err_slots:
	kvfree(slots);
err_put:
	pci_dev_put(edu);
	pr_err("rvfio_floor: setup failed: %d\n", ret);
	return ret;
}

static void __exit floor_exit(void)
{
	misc_deregister(&floor_misc);
	floor_release_all();
	iommu_detach_device(domain, &edu->dev);
	iommu_domain_free(domain);
	kvfree(slots);
	pci_dev_put(edu);
}

module_init(floor_init);
module_exit(floor_exit);
MODULE_LICENSE("GPL");
MODULE_DESCRIPTION("rvfio benchmark floor: pin + iommu_map, iommu_unmap + unpin");
