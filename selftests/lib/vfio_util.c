// SPDX-License-Identifier: GPL-2.0
/* vfio_util.c - see vfio_util.h. */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/mman.h>
#include <unistd.h>

#include <linux/vfio.h>

#include "vfio_edu.h"
#include "vfio_util.h"

#ifndef MFD_HUGETLB
#define MFD_HUGETLB	0x0004u
#endif
#ifndef MFD_HUGE_2MB
#define MFD_HUGE_2MB	(21u << 26)
#endif

const char *backend_name(void)
{
	const char *be = getenv("VFIO_BACKEND");

	if (be && be[0])
		return be;
	return access("/sys/module/rvfio", F_OK) == 0 ? "rvfio" : "vfio_iommu_type1";
}

bool backend_is_rvfio(void)
{
	return !strcmp(backend_name(), "rvfio");
}

long vfio_check_ext(int c, long ext)
{
	return vfio_ioctl(c, VFIO_CHECK_EXTENSION, (void *)ext);
}

int sysfs_write_str(const char *path, const char *val)
{
	int fd = open(path, O_WRONLY | O_CLOEXEC);
	ssize_t n;

	if (fd < 0)
		return -errno;
	n = write(fd, val, strlen(val));
	n = n < 0 ? -errno : (size_t)n != strlen(val) ? -EIO : 0;
	close(fd);
	return (int)n;
}

void pci_driver(const char *bdf, char *buf, size_t len)
{
	char path[128], link[256];
	const char *base;
	ssize_t n;

	buf[0] = '\0';
	snprintf(path, sizeof(path), "/sys/bus/pci/devices/%s/driver", bdf);
	n = readlink(path, link, sizeof(link) - 1);
	if (n < 0)
		return;
	link[n] = '\0';
	base = strrchr(link, '/');
	base = base ? base + 1 : link;
	if (strlen(base) < len)
		memcpy(buf, base, strlen(base) + 1);
}

int vfio_bar0_region(int device, uint64_t *offset, uint64_t *size)
{
	struct vfio_region_info ri = {
		.argsz = sizeof(ri), .index = VFIO_PCI_BAR0_REGION_INDEX,
	};

	if (ioctl(device, VFIO_DEVICE_GET_REGION_INFO, &ri))
		return -errno;
	if (!(ri.flags & VFIO_REGION_INFO_FLAG_MMAP) || ri.size < PAGE_4K)
		return -ENODEV;
	*offset = ri.offset;
	*size = ri.size;
	return 0;
}

void *vfio_bar0_mmap(int device, int prot, uint64_t *size)
{
	uint64_t off;
	int ret = vfio_bar0_region(device, &off, size);

	if (ret) {
		errno = -ret;
		return MAP_FAILED;
	}
	return mmap(NULL, *size, prot, MAP_SHARED, device, off);
}

int vfio_dirty_ctl(int c, uint32_t flag)
{
	struct vfio_iommu_type1_dirty_bitmap db = { .argsz = sizeof(db), .flags = flag };

	return (int)vfio_ioctl(c, VFIO_IOMMU_DIRTY_PAGES, &db);
}

int vfio_dirty_get(int c, uint64_t iova, uint64_t size, uint64_t *bits, size_t words)
{
	struct {
		struct vfio_iommu_type1_dirty_bitmap db;
		struct vfio_iommu_type1_dirty_bitmap_get range;
	} req = {
		.db = { .argsz = sizeof(req), .flags = VFIO_IOMMU_DIRTY_PAGES_FLAG_GET_BITMAP },
		.range = {
			.iova = iova, .size = size,
			.bitmap = { .pgsize = PAGE_4K, .size = words * 8, .data = (__u64 *)bits },
		},
	};

	memset(bits, 0, words * 8);
	return (int)vfio_ioctl(c, VFIO_IOMMU_DIRTY_PAGES, &req);
}

int dma_query(int c, uint64_t iova, struct rvfio_dma_query *q)
{
	memset(q, 0, sizeof(*q));
	q->argsz = sizeof(*q);
	q->iova = iova;
	return (int)vfio_ioctl(c, RVFIO_IOMMU_DMA_QUERY, q);
}

int change_dma_owner(int c, const struct rvfio_dma_owner_entry *e, uint32_t count,
		     uint32_t *failed)
{
	struct rvfio_change_dma_owner a = {
		.argsz = sizeof(a), .count = count, .entries = (uintptr_t)e,
		.failed = 0x5a5a5a5a,
	};
	int ret = (int)vfio_ioctl(c, RVFIO_IOMMU_CHANGE_DMA_OWNER, &a);

	if (failed)
		*failed = a.failed;
	return ret;
}

int nesting_bind(int c, int group_id, uint64_t pgtbl, uint32_t width, uint64_t s1_flags,
		 uint32_t *out_flags)
{
	struct iommu_hwpt_vtd_s1 s1 = {
		.flags = s1_flags, .pgtbl_addr = pgtbl, .addr_width = width,
	};
	struct rvfio_nesting_bind b = {
		.argsz = sizeof(b), .group_id = group_id,
		.data_type = IOMMU_HWPT_DATA_VTD_S1, .data_len = sizeof(s1),
		.data_uptr = (uintptr_t)&s1,
	};
	int ret = (int)vfio_ioctl(c, RVFIO_IOMMU_NESTING_BIND, &b);

	if (!ret && out_flags)
		*out_flags = b.out_flags;
	return ret;
}

int nesting_unbind(int c, int group_id)
{
	struct rvfio_nesting_unbind u = { .argsz = sizeof(u), .group_id = group_id };

	return (int)vfio_ioctl(c, RVFIO_IOMMU_NESTING_UNBIND, &u);
}

int nesting_invalidate(int c, int group_id, uint64_t addr, uint64_t npages, uint32_t *done)
{
	struct iommu_hwpt_vtd_s1_invalidate e = { .addr = addr, .npages = npages };
	struct rvfio_nesting_invalidate inv = {
		.argsz = sizeof(inv), .group_id = group_id,
		.data_type = IOMMU_HWPT_INVALIDATE_DATA_VTD_S1,
		.data_uptr = (uintptr_t)&e, .entry_len = sizeof(e), .entry_num = 1,
	};
	int ret = (int)vfio_ioctl(c, RVFIO_IOMMU_NESTING_INVALIDATE, &inv);

	if (done)
		*done = inv.entry_num;
	return ret;
}

long nesting_group_flags(int c, int group_id)
{
	struct vfio_iommu_type1_info *info = vfio_get_info(c);
	const struct rvfio_iommu_info_cap_nesting *cap;
	long ret = -ENOENT;

	if (!info)
		return -errno;
	cap = (const void *)vfio_info_cap(info, RVFIO_IOMMU_INFO_CAP_NESTING);
	if (!cap) {
		free(info);
		return -ENODATA;
	}
	for (uint32_t i = 0; i < cap->nr_groups; i++)
		if (cap->groups[i].group_id == (uint32_t)group_id)
			ret = cap->groups[i].flags;
	free(info);
	return ret;
}

int revoke_eventfd(int c, int fd, uint64_t *revocations)
{
	struct rvfio_revoke_eventfd r = { .argsz = sizeof(r), .fd = fd };
	int ret = (int)vfio_ioctl(c, RVFIO_IOMMU_REVOKE_EVENTFD, &r);

	if (revocations)
		*revocations = r.revocations;
	return ret;
}

int memfd_new(const char *name, size_t len, bool huge)
{
	unsigned int flags = MFD_CLOEXEC | (huge ? MFD_HUGETLB | MFD_HUGE_2MB : 0);
	int fd = memfd_create(name, flags);

	if (fd < 0)
		return -errno;
	if (ftruncate(fd, len)) {
		int e = -errno;

		close(fd);
		return e;
	}
	return fd;
}
