// SPDX-License-Identifier: GPL-2.0
/*
 * rvfio_mdev_sample - a mediated device that pins container memory on request.
 *
 * An emulated-IOMMU vfio device in the style of i915 GVT-g and s390
 * vfio-ccw, reduced to what those drivers ask of a VFIO IOMMU backend:
 *
 *   vfio_pin_pages()    pin pages of the container's IOVA space and get
 *                       their struct page (then access them with kmap)
 *   vfio_unpin_pages()  release such pins
 *   vfio_dma_rw()       copy to/from IOVA space without pinning, from the
 *                       ioctl caller or from a kthread
 *   .dma_unmap          the backend tells the driver that user space unmaps
 *                       an IOVA range; the driver must unpin what it holds
 *                       there before the unmap can complete
 *
 * There is no hardware and no guest-visible device model: user space asks
 * for each operation with an ioctl on the vfio device fd (the ABI is in
 * rvfio_mdev_sample.h) and reads counters back, which makes the backend's
 * behaviour testable.
 *
 * Registration (6.12): one parent device (our own class device) with one
 * mdev type, registered with mdev_register_parent(); each mdev created
 * through sysfs is probed by our mdev_driver, which allocates a vfio_device
 * and registers it with vfio_register_emulated_iommu_dev(). That gives the
 * mdev its own "emulated" IOMMU group (/dev/vfio/N, no IOMMU domain), which
 * a container accepts next to IOMMU-backed groups. With CONFIG_IOMMUFD the
 * vfio core also requires the vfio_iommufd_emulated_* ops.
 *
 * Locking. The backend calls .dma_unmap with its own locks arranged so that
 * the callback may call vfio_unpin_pages() (type1 holds its device-list
 * mutex, not its main lock), while vfio_pin_pages() takes the backend's main
 * lock, and device registration takes the main lock and then the device-list
 * mutex. A driver mutex held both around vfio_pin_pages() and inside
 * .dma_unmap would therefore close a lock cycle (driver -> main ->
 * device-list -> driver). So:
 *   - pin_mutex serializes the PIN/UNPIN ioctls and close_device, and is
 *     held across vfio_pin_pages()/vfio_unpin_pages(); .dma_unmap never
 *     takes it;
 *   - the xarray's own spinlock (xa_lock) protects the table of pinned pages
 *     and the counters; nobody calls into vfio while holding it.
 * Whoever removes a pin reference from the table (UNPIN, .dma_unmap,
 * close_device) is the one that calls vfio_unpin_pages() for it, so every
 * successful vfio_pin_pages() page is unpinned exactly once. A .dma_unmap
 * that overlaps a PIN still inside vfio_pin_pages() cannot see those pages
 * yet; the backend re-notifies until the range has no pins left, and by
 * then the PIN has recorded them.
 */
#define pr_fmt(fmt) KBUILD_MODNAME ": " fmt

#include <linux/device.h>
#include <linux/highmem.h>
#include <linux/iommu.h>
#include <linux/mdev.h>
#include <linux/mm.h>
#include <linux/module.h>
#include <linux/mutex.h>
#include <linux/slab.h>
#include <linux/uaccess.h>
#include <linux/vfio.h>
#include <linux/workqueue.h>
#include <linux/xarray.h>

#include "rvfio_mdev_sample.h"

static unsigned int instances = 4;
module_param(instances, uint, 0444);
MODULE_PARM_DESC(instances, "number of mdevs that can exist at once (default 4)");

/* One IOVA page this device holds pinned. */
struct sample_pin {
	u64 iova;
	struct page *page;	/* from vfio_pin_pages() */
	unsigned int refs;	/* successful vfio_pin_pages() not yet undone */
	int prot;		/* IOMMU_READ/IOMMU_WRITE it was pinned with, ORed */
	struct list_head free_link;	/* on a private list once out of the table */
};

struct sample_state {
	struct vfio_device vdev;
	struct mutex pin_mutex;	/* see "Locking" above */
	struct xarray pins;	/* iova >> PAGE_SHIFT -> struct sample_pin */
	/* Counters, under xa_lock(&pins). */
	u64 dma_unmap_calls;
	u64 last_unmap_iova;
	u64 last_unmap_length;
	u64 unmap_unpinned;
};

static struct sample_state *to_state(struct vfio_device *vdev)
{
	return container_of(vdev, struct sample_state, vdev);
}

/*
 * Give back pins that have been taken out of the table: one
 * vfio_unpin_pages() call per reference. Never called under xa_lock.
 */
static void sample_release_pins(struct sample_state *s, struct list_head *list)
{
	struct sample_pin *p, *tmp;

	list_for_each_entry_safe(p, tmp, list, free_link) {
		while (p->refs--)
			vfio_unpin_pages(&s->vdev, p->iova, 1);
		list_del(&p->free_link);
		kfree(p);
	}
}

/* Take every pin in [first, last] (page indexes) out of the table onto list. */
static u64 sample_take_range(struct sample_state *s, unsigned long first,
			     unsigned long last, struct list_head *list)
{
	struct sample_pin *p;
	unsigned long idx;
	u64 refs = 0;

	lockdep_assert_held(&s->pins.xa_lock);
	xa_for_each_range(&s->pins, idx, p, first, last) {
		__xa_erase(&s->pins, idx);
		refs += p->refs;
		list_add_tail(&p->free_link, list);
	}
	return refs;
}

/* Record one page returned by vfio_pin_pages(). 0 or -ENOMEM. */
static int sample_record_pin(struct sample_state *s, u64 iova,
			     struct page *page, int prot)
{
	struct sample_pin *p, *new;
	int ret = 0;

	new = kzalloc(sizeof(*new), GFP_KERNEL);
	xa_lock(&s->pins);
	p = xa_load(&s->pins, iova >> PAGE_SHIFT);
	if (p) {
		/* Pinned before: the backend took one more reference. */
		p->refs++;
		p->prot |= prot;
	} else if (!new) {
		ret = -ENOMEM;
	} else {
		*new = (struct sample_pin){
			.iova = iova, .page = page, .refs = 1, .prot = prot,
		};
		/* May drop and retake xa_lock to allocate; only PIN inserts. */
		ret = xa_err(__xa_store(&s->pins, iova >> PAGE_SHIFT, new,
					GFP_KERNEL));
		if (!ret)
			new = NULL;
	}
	xa_unlock(&s->pins);
	kfree(new);
	return ret;
}

static long sample_ioctl_pin(struct sample_state *s, void __user *arg)
{
	struct rvfio_mdev_pin pin;
	struct page **pages;
	int prot = 0, ret, i;

	if (copy_from_user(&pin, arg, sizeof(pin)))
		return -EFAULT;
	if (pin.iova & ~PAGE_MASK || !pin.npages ||
	    pin.npages > RVFIO_MDEV_PIN_MAX ||
	    pin.prot & ~(RVFIO_MDEV_PROT_READ | RVFIO_MDEV_PROT_WRITE) ||
	    pin.iova + (u64)pin.npages * PAGE_SIZE - 1 < pin.iova)
		return -EINVAL;
	if (pin.prot & RVFIO_MDEV_PROT_READ)
		prot |= IOMMU_READ;
	if (pin.prot & RVFIO_MDEV_PROT_WRITE)
		prot |= IOMMU_WRITE;

	pages = kcalloc(pin.npages, sizeof(*pages), GFP_KERNEL);
	if (!pages)
		return -ENOMEM;

	mutex_lock(&s->pin_mutex);
	ret = vfio_pin_pages(&s->vdev, pin.iova, pin.npages, prot, pages);
	/* ret: pages pinned (the backend pins all or nothing) or -errno. */
	for (i = 0; i < ret; i++) {
		if (sample_record_pin(s, pin.iova + (u64)i * PAGE_SIZE,
				      pages[i], prot)) {
			/* Out of memory: give back what cannot be tracked. */
			vfio_unpin_pages(&s->vdev, pin.iova + (u64)i * PAGE_SIZE,
					 ret - i);
			ret = i ? i : -ENOMEM;
			break;
		}
	}
	mutex_unlock(&s->pin_mutex);
	kfree(pages);
	return ret;
}

static long sample_ioctl_unpin(struct sample_state *s, void __user *arg)
{
	struct rvfio_mdev_pin pin;
	struct sample_pin *p;
	u32 i, done = 0;
	long ret = 0;

	if (copy_from_user(&pin, arg, sizeof(pin)))
		return -EFAULT;
	if (pin.iova & ~PAGE_MASK || !pin.npages ||
	    pin.npages > RVFIO_MDEV_PIN_MAX || pin.prot ||
	    pin.iova + (u64)pin.npages * PAGE_SIZE - 1 < pin.iova)
		return -EINVAL;

	mutex_lock(&s->pin_mutex);
	/* All or nothing: every page must be ours. */
	for (i = 0; i < pin.npages; i++) {
		if (!xa_load(&s->pins, (pin.iova >> PAGE_SHIFT) + i)) {
			ret = -EINVAL;
			goto out;
		}
	}
	for (i = 0; i < pin.npages; i++) {
		u64 iova = pin.iova + (u64)i * PAGE_SIZE;
		bool mine = false;

		xa_lock(&s->pins);
		p = xa_load(&s->pins, iova >> PAGE_SHIFT);
		if (p) {	/* else .dma_unmap took it meanwhile */
			mine = true;
			if (!--p->refs)
				__xa_erase(&s->pins, iova >> PAGE_SHIFT);
			else
				p = NULL;
		}
		xa_unlock(&s->pins);
		if (mine) {
			vfio_unpin_pages(&s->vdev, iova, 1);
			done++;
		}
		kfree(p);
	}
	ret = done;
out:
	mutex_unlock(&s->pin_mutex);
	return ret;
}

/* READ_PINNED / WRITE_PINNED: touch the pinned struct page directly. */
static long sample_ioctl_access(struct sample_state *s, void __user *arg,
				bool write)
{
	struct rvfio_mdev_access acc;
	struct sample_pin *p;
	struct page *page = NULL;
	void *bounce, *vaddr;
	long ret;

	if (copy_from_user(&acc, arg, sizeof(acc)))
		return -EFAULT;
	if (acc.iova & ~PAGE_MASK || !acc.len || acc.offset >= PAGE_SIZE ||
	    acc.len > PAGE_SIZE - acc.offset)
		return -EINVAL;

	/* Hold a page reference so a concurrent unpin cannot free it under us. */
	xa_lock(&s->pins);
	p = xa_load(&s->pins, acc.iova >> PAGE_SHIFT);
	if (!p)
		ret = -ENOENT;
	else if (write && !(p->prot & IOMMU_WRITE))
		ret = -EPERM;
	else {
		page = p->page;
		get_page(page);
		ret = 0;
	}
	xa_unlock(&s->pins);
	if (ret)
		return ret;

	bounce = kmalloc(acc.len, GFP_KERNEL);
	if (!bounce) {
		ret = -ENOMEM;
		goto out_put;
	}
	if (write) {
		if (copy_from_user(bounce, u64_to_user_ptr(acc.data), acc.len)) {
			ret = -EFAULT;
			goto out_free;
		}
		vaddr = kmap_local_page(page);
		memcpy(vaddr + acc.offset, bounce, acc.len);
		kunmap_local(vaddr);
		set_page_dirty_lock(page);
	} else {
		vaddr = kmap_local_page(page);
		memcpy(bounce, vaddr + acc.offset, acc.len);
		kunmap_local(vaddr);
		if (copy_to_user(u64_to_user_ptr(acc.data), bounce, acc.len)) {
			ret = -EFAULT;
			goto out_free;
		}
	}
	ret = acc.len;
out_free:
	kfree(bounce);
out_put:
	put_page(page);
	return ret;
}

/* vfio_dma_rw() from a workqueue worker, i.e. a kthread without an mm. */
struct sample_rw_work {
	struct work_struct work;
	struct vfio_device *vdev;
	u64 iova;
	void *buf;
	size_t len;
	bool write;
	int ret;
};

static void sample_rw_workfn(struct work_struct *work)
{
	struct sample_rw_work *rw = container_of(work, struct sample_rw_work, work);

	rw->ret = vfio_dma_rw(rw->vdev, rw->iova, rw->buf, rw->len, rw->write);
}

static long sample_ioctl_dma_rw(struct sample_state *s, void __user *arg)
{
	struct rvfio_mdev_dma_rw req;
	bool write;
	void *buf;
	long ret;

	if (copy_from_user(&req, arg, sizeof(req)))
		return -EFAULT;
	if (req.flags & ~(RVFIO_MDEV_DMA_RW_WRITE | RVFIO_MDEV_DMA_RW_KTHREAD))
		return -EINVAL;
	if (req.len > RVFIO_MDEV_DMA_RW_MAX)
		return -E2BIG;
	write = req.flags & RVFIO_MDEV_DMA_RW_WRITE;

	buf = kvzalloc(max_t(size_t, req.len, 1), GFP_KERNEL);
	if (!buf)
		return -ENOMEM;
	if (write && copy_from_user(buf, u64_to_user_ptr(req.data), req.len)) {
		ret = -EFAULT;
		goto out;
	}

	if (req.flags & RVFIO_MDEV_DMA_RW_KTHREAD) {
		struct sample_rw_work rw = {
			.vdev = &s->vdev, .iova = req.iova, .buf = buf,
			.len = req.len, .write = write,
		};

		INIT_WORK_ONSTACK(&rw.work, sample_rw_workfn);
		queue_work(system_unbound_wq, &rw.work);
		flush_work(&rw.work);
		destroy_work_on_stack(&rw.work);
		ret = rw.ret;
	} else {
		ret = vfio_dma_rw(&s->vdev, req.iova, buf, req.len, write);
	}

	if (!ret && !write &&
	    copy_to_user(u64_to_user_ptr(req.data), buf, req.len))
		ret = -EFAULT;
out:
	kvfree(buf);
	return ret;
}

static long sample_ioctl_stats(struct sample_state *s, void __user *arg)
{
	struct rvfio_mdev_stats st = {};
	struct sample_pin *p;
	unsigned long idx;

	xa_lock(&s->pins);
	st.dma_unmap_calls = s->dma_unmap_calls;
	st.last_unmap_iova = s->last_unmap_iova;
	st.last_unmap_length = s->last_unmap_length;
	st.unmap_unpinned = s->unmap_unpinned;
	xa_for_each(&s->pins, idx, p) {
		st.pinned_pages++;
		st.pinned_refs += p->refs;
	}
	xa_unlock(&s->pins);

	return copy_to_user(arg, &st, sizeof(st)) ? -EFAULT : 0;
}

/* VFIO_DEVICE_GET_INFO: no regions, no interrupts, no flags. */
static long sample_ioctl_get_info(void __user *arg)
{
	unsigned long minsz = offsetofend(struct vfio_device_info, num_irqs);
	struct vfio_device_info info;

	if (copy_from_user(&info, arg, minsz))
		return -EFAULT;
	if (info.argsz < minsz)
		return -EINVAL;
	info.flags = 0;
	info.num_regions = 0;
	info.num_irqs = 0;
	return copy_to_user(arg, &info, minsz) ? -EFAULT : 0;
}

static long sample_ioctl(struct vfio_device *vdev, unsigned int cmd,
			 unsigned long arg)
{
	struct sample_state *s = to_state(vdev);
	void __user *uarg = (void __user *)arg;

	switch (cmd) {
	case VFIO_DEVICE_GET_INFO:
		return sample_ioctl_get_info(uarg);
	case RVFIO_MDEV_PIN:
		return sample_ioctl_pin(s, uarg);
	case RVFIO_MDEV_UNPIN:
		return sample_ioctl_unpin(s, uarg);
	case RVFIO_MDEV_READ_PINNED:
		return sample_ioctl_access(s, uarg, false);
	case RVFIO_MDEV_WRITE_PINNED:
		return sample_ioctl_access(s, uarg, true);
	case RVFIO_MDEV_DMA_RW:
		return sample_ioctl_dma_rw(s, uarg);
	case RVFIO_MDEV_GET_STATS:
		return sample_ioctl_stats(s, uarg);
	}
	return -ENOTTY;
}

/*
 * The backend is about to unmap [iova, iova + length): drop every pin this
 * device holds there. The backend calls this for each mapping that still has
 * pinned pages (from any device), with that whole mapping as the range.
 */
static void sample_dma_unmap(struct vfio_device *vdev, u64 iova, u64 length)
{
	struct sample_state *s = to_state(vdev);
	LIST_HEAD(doomed);

	xa_lock(&s->pins);
	s->dma_unmap_calls++;
	s->last_unmap_iova = iova;
	s->last_unmap_length = length;
	if (length)
		s->unmap_unpinned += sample_take_range(s, iova >> PAGE_SHIFT,
						       (iova + length - 1) >> PAGE_SHIFT,
						       &doomed);
	xa_unlock(&s->pins);
	sample_release_pins(s, &doomed);
}

/* Last fd closed: give back every pin (the container is still attached). */
static void sample_close_device(struct vfio_device *vdev)
{
	struct sample_state *s = to_state(vdev);
	LIST_HEAD(doomed);

	mutex_lock(&s->pin_mutex);
	xa_lock(&s->pins);
	sample_take_range(s, 0, ULONG_MAX, &doomed);
	xa_unlock(&s->pins);
	sample_release_pins(s, &doomed);
	mutex_unlock(&s->pin_mutex);
}

static int sample_init_dev(struct vfio_device *vdev)
{
	struct sample_state *s = to_state(vdev);

	mutex_init(&s->pin_mutex);
	xa_init(&s->pins);
	return 0;
}

static void sample_release_dev(struct vfio_device *vdev)
{
	struct sample_state *s = to_state(vdev);

	/* close_device emptied the table; nothing can add to it now. */
	WARN_ON(!xa_empty(&s->pins));
	xa_destroy(&s->pins);
	mutex_destroy(&s->pin_mutex);
}

static const struct vfio_device_ops sample_dev_ops = {
	.name		= "rvfio-mdev-sample",
	.init		= sample_init_dev,
	.release	= sample_release_dev,
	.close_device	= sample_close_device,
	.ioctl		= sample_ioctl,
	.dma_unmap	= sample_dma_unmap,
	/* Required with CONFIG_IOMMUFD; used when opened through iommufd. */
	.bind_iommufd	= vfio_iommufd_emulated_bind,
	.unbind_iommufd	= vfio_iommufd_emulated_unbind,
	.attach_ioas	= vfio_iommufd_emulated_attach_ioas,
	.detach_ioas	= vfio_iommufd_emulated_detach_ioas,
};

static int sample_probe(struct mdev_device *mdev)
{
	struct sample_state *s;
	int ret;

	s = vfio_alloc_device(sample_state, vdev, &mdev->dev, &sample_dev_ops);
	if (IS_ERR(s))
		return PTR_ERR(s);
	ret = vfio_register_emulated_iommu_dev(&s->vdev);
	if (ret) {
		vfio_put_device(&s->vdev);
		return ret;
	}
	dev_set_drvdata(&mdev->dev, s);
	return 0;
}

static void sample_remove(struct mdev_device *mdev)
{
	struct sample_state *s = dev_get_drvdata(&mdev->dev);

	vfio_unregister_group_dev(&s->vdev);
	vfio_put_device(&s->vdev);
}

static struct mdev_type sample_type = {
	.sysfs_name	= "pin",	/* shown as <class name>-pin */
	.pretty_name	= "rvfio pinning sample",
};

static struct mdev_type *sample_types[] = { &sample_type };

static struct mdev_driver sample_driver = {
	.device_api	= RVFIO_MDEV_SAMPLE_DEVICE_API,
	.driver = {
		.name		= "rvfio_mdev_sample",
		.owner		= THIS_MODULE,
		.mod_name	= KBUILD_MODNAME,
	},
	.probe		= sample_probe,
	.remove		= sample_remove,
};

/* The parent: a bare class device, /sys/class/rvfio_mdev_sample/rvfio_mdev_sample. */
static const struct class sample_class = {
	.name = RVFIO_MDEV_SAMPLE_PARENT,
};

static void sample_parent_release(struct device *dev)
{
}

static struct device sample_parent_dev = {
	.class		= &sample_class,
	.release	= sample_parent_release,
};

static struct mdev_parent sample_parent;

static int __init sample_init(void)
{
	int ret;

	if (!instances)
		return -EINVAL;
	sample_driver.max_instances = instances;

	ret = mdev_register_driver(&sample_driver);
	if (ret)
		return ret;
	ret = class_register(&sample_class);
	if (ret)
		goto err_driver;
	dev_set_name(&sample_parent_dev, "%s", RVFIO_MDEV_SAMPLE_PARENT);
	ret = device_register(&sample_parent_dev);
	if (ret)
		goto err_put;
	ret = mdev_register_parent(&sample_parent, &sample_parent_dev,
				   &sample_driver, sample_types,
				   ARRAY_SIZE(sample_types));
	if (ret)
		goto err_device;
	pr_info("ready: %u instance(s) of type %s\n", instances,
		RVFIO_MDEV_SAMPLE_TYPE);
	return 0;

err_device:
	device_del(&sample_parent_dev);
err_put:
	put_device(&sample_parent_dev);
	class_unregister(&sample_class);
err_driver:
	mdev_unregister_driver(&sample_driver);
	return ret;
}

static void __exit sample_exit(void)
{
	mdev_unregister_parent(&sample_parent);
	device_unregister(&sample_parent_dev);
	class_unregister(&sample_class);
	mdev_unregister_driver(&sample_driver);
}

module_init(sample_init);
module_exit(sample_exit);

MODULE_LICENSE("GPL");
MODULE_DESCRIPTION("rvfio sample mdev: drives vfio_pin_pages/vfio_dma_rw/.dma_unmap from user space");
