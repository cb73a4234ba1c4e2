/* SPDX-License-Identifier: GPL-2.0 */
/*
 * vfio_edu.h - helpers for the rvfio selftests: a VFIO type1 container with
 * QEMU "edu" devices (PCI 1234:11e8) bound to vfio-pci.
 *
 * Every helper that can fail returns 0 (or a non-negative value) on success
 * and -errno on failure, so tests can compare errnos directly:
 *
 *	ASSERT_EQ(-EEXIST, vfio_map(c, iova, buf, size, VFIO_DMA_MAP_FLAG_READ));
 *
 * The edu device (QEMU hw/misc/edu.c) copies between guest memory and its own
 * 4 KiB buffer, which sits at device address EDU_BUF_ADDR. Its DMA goes through
 * the (emulated) IOMMU, so bytes that arrive prove what the IOMMU maps.
 */
#ifndef VFIO_EDU_H
#define VFIO_EDU_H

#include <stdbool.h>
#include <stddef.h>
#include <limits.h>
#include <stdint.h>
#include <linux/vfio.h>

#define EDU_VENDOR		0x1234
#define EDU_DEVICE		0x11e8
#define EDU_REG_ID		0x00	/* reads 0x010000ed */
#define EDU_ID_VALUE		0x010000edu
#define EDU_REG_LIVENESS	0x04	/* reads back the inverse of what was written */
#define EDU_REG_DMA_SRC		0x80
#define EDU_REG_DMA_DST		0x88
#define EDU_REG_DMA_COUNT	0x90
#define EDU_REG_DMA_CMD		0x98
#define EDU_DMA_CMD_RUN		0x1
#define EDU_DMA_CMD_TO_RAM	0x2	/* edu buffer -> RAM; clear: RAM -> edu buffer */
#define EDU_BUF_ADDR		0x40000ull
#define EDU_BUF_SIZE		0x1000u
#define EDU_DMA_TIMEOUT_MS	10000

#define PAGE_4K			4096ul
#define SZ_1M			0x100000ull
#define SZ_2M			0x200000ull
#define SZ_4G			0x100000000ull

/* x86 interrupt (MSI) window, reserved in every VT-d domain. */
#define X86_MSI_BASE		0xfee00000ull
#define X86_MSI_END		0xfeefffffull

#define MAX_EDU			8

/* One edu device opened through a container. */
struct edu {
	char bdf[32];		/* "0000:00:03.0" */
	int group_id;		/* N of /dev/vfio/N */
	int container;		/* container fd (-1 if not owned) */
	int group;		/* group fd */
	int device;		/* device fd */
	volatile uint8_t *bar0;	/* mmap of BAR0 */
	size_t bar0_size;
	bool own_container;	/* close the container in edu_close() */
};

/* Number of edu BDFs in $EDU_BDFS and the idx-th one, or NULL. */
int edu_count(void);
const char *edu_bdf(int idx);

/* /sys/bus/pci/devices/<bdf>/iommu_group -> N, or -errno. */
int edu_group_id(const char *bdf);

/* open("/dev/vfio/vfio") and check the API version. Returns fd or -errno. */
int vfio_container_open(void);
/* Open /dev/vfio/<group of bdf>, check viable, VFIO_GROUP_SET_CONTAINER. fd or -errno. */
int vfio_group_attach(int container, const char *bdf, int *group_id);
/* VFIO_SET_IOMMU; type is VFIO_TYPE1_IOMMU or VFIO_TYPE1v2_IOMMU. 0 or -errno. */
int vfio_set_iommu(int container, int type);
/* ioctl wrapper returning the ioctl's non-negative result or -errno. */
long vfio_ioctl(int fd, unsigned long req, void *arg);

/*
 * Full setup: new container (if container < 0) or the given one, attach the
 * group of bdf, SET_IOMMU(iommu_type) if iommu_type != 0, get the device fd,
 * enable memory + bus mastering, mmap BAR0 and check the edu ID register.
 * On failure returns -errno and writes a reason to err (may be NULL); e is
 * left closed.
 */
int edu_open(struct edu *e, const char *bdf, int container, int iommu_type,
	     char *err, size_t errlen);
/* Open the device part only (group already attached and IOMMU set). */
int edu_open_device(struct edu *e, char *err, size_t errlen);
/* munmap BAR0, close device, group and (if owned) container. Idempotent. */
void edu_close(struct edu *e);

/* MAP_DMA of [vaddr, vaddr+size) at iova; 0 or -errno. */
int vfio_map(int container, uint64_t iova, const void *vaddr, uint64_t size,
	     uint32_t flags);
/* UNMAP_DMA; returns 0 or -errno, *unmapped gets the size the kernel reported. */
int vfio_unmap(int container, uint64_t iova, uint64_t size, uint32_t flags,
	       uint64_t *unmapped);
/* UNMAP_DMA with VFIO_DMA_UNMAP_FLAG_ALL. */
int vfio_unmap_all(int container, uint64_t *unmapped);

/*
 * VFIO_IOMMU_GET_INFO with enough room for the capability chain. Returns a
 * malloc'd buffer (caller frees) or NULL with errno set.
 */
struct vfio_iommu_type1_info *vfio_get_info(int container);
/* Find capability id in info's chain (NULL if absent or malformed). */
const struct vfio_info_cap_header *vfio_info_cap(const struct vfio_iommu_type1_info *info,
						 uint16_t id);
/* Copy of the IOVA ranges; returns count (>= 0) or -errno. *ranges malloc'd. */
int vfio_iova_ranges(int container, struct vfio_iova_range **ranges);

/* edu registers. */
uint32_t edu_read32(struct edu *e, unsigned int off);
void edu_write32(struct edu *e, unsigned int off, uint32_t val);
uint64_t edu_read64(struct edu *e, unsigned int off);
void edu_write64(struct edu *e, unsigned int off, uint64_t val);

/*
 * One edu DMA of len bytes: to_ram false copies IOVA src -> edu buffer
 * address dst (EDU_BUF_ADDR + offset); to_ram true copies edu buffer address
 * src -> IOVA dst. Waits for completion. 0, -EINVAL (bad args) or -ETIMEDOUT.
 */
int edu_dma(struct edu *e, uint64_t src, uint64_t dst, uint32_t len, bool to_ram);
/* Convenience: RAM(iova) -> edu buffer offset, and edu buffer offset -> RAM(iova). */
int edu_dma_to_dev(struct edu *e, uint64_t iova, uint32_t buf_off, uint32_t len);
int edu_dma_to_ram(struct edu *e, uint32_t buf_off, uint64_t iova, uint32_t len);

/* PCI config space access through the vfio config region. 0 or -errno. */
int vfio_pci_config_read(int device, unsigned int off, void *buf, size_t len);
int vfio_pci_config_write(int device, unsigned int off, const void *buf, size_t len);

/*
 * Anonymous private memory, 4 KiB pages where the kernel allows it
 * (MADV_NOHUGEPAGE is best effort), every page written (pre-faulted).
 * MAP_FAILED on error. Free with munmap().
 */
void *alloc_pages_4k(size_t size, uint8_t fill);
/* Fill with a pattern derived from seed / check it. */
void fill_pattern(void *buf, size_t len, uint32_t seed);
/* Index of the first byte that differs from the pattern, or -1 if all match. */
long check_pattern(const void *buf, size_t len, uint32_t seed);
/* Index of the first byte != val, or -1. */
long check_fill(const void *buf, size_t len, uint8_t val);
/* Fresh random seed (getrandom, falling back to time). */
uint32_t random_seed(void);

/* VmLck of /proc/self/status in kB, or -errno. */
long vmlck_kb(void);
/*
 * nr_foll_pin_acquired / nr_foll_pin_released from /proc/vmstat, exact: the
 * per-CPU deltas are folded first through /proc/sys/vm/stat_refresh (without
 * that the counts lag by dozens of pages). 0 or -errno.
 */
int foll_pin_counts(long long *acquired, long long *released);
/* acquired - released (pages currently FOLL_PIN-pinned system wide), or LLONG_MIN. */
long long foll_pins_outstanding(void);
/* Waits up to ms for foll_pins_outstanding() to reach want; the last count. */
long long pins_settle(long long want, int ms);
/* VmLck of /proc/<pid>/status in kB, or -errno. */
long vmlck_kb_pid(int pid);
/*
 * Two edu DMAs: IOVA src -> edu buffer offset 0 -> IOVA dst, len bytes
 * (len <= EDU_BUF_SIZE). 0 or -errno.
 */
int edu_copy(struct edu *e, uint64_t src, uint64_t dst, uint32_t len);
/* Reference count of a loaded module from /proc/modules, or -ENOENT. */
int module_refcount(const char *name);
/* Read an integer module parameter /sys/module/<mod>/parameters/<param>. */
int module_param_read(const char *mod, const char *param, long *val);
int module_param_write(const char *mod, const char *param, long val);

/* Drops CAP_IPC_LOCK from the effective set; 0 or -errno. */
int drop_cap_ipc_lock(void);

/*
 * Assertions for kselftest_harness tests (expanded only where used).
 */

/* The system-wide count of outstanding FOLL_PIN pins is exactly @expected. */
#define ASSERT_PINS(expected) do { \
	long long __p = foll_pins_outstanding(); \
	ASSERT_NE(LLONG_MIN, __p); \
	ASSERT_EQ((long long)(expected), __p) \
		TH_LOG("outstanding FOLL_PIN pins: expected %lld, have %lld", \
		       (long long)(expected), __p); \
} while (0)

/*
 * Device @e copies one page: IOVA @src -> edu -> IOVA @dst; the pattern put
 * at @src_mem must arrive at @dst_mem.
 */
#define ASSERT_DEV_COPY(e, src, src_mem, dst, dst_mem) do { \
	uint32_t __seed = random_seed(); \
	fill_pattern((src_mem), PAGE_4K, __seed); \
	memset((dst_mem), 0xd1, PAGE_4K); \
	ASSERT_EQ(0, edu_copy((e), (src), (dst), PAGE_4K)); \
	EXPECT_EQ(-1, check_pattern((dst_mem), PAGE_4K, __seed)) \
		TH_LOG("%s: copy %#llx -> %#llx did not move the data", (e)->bdf, \
		       (unsigned long long)(src), (unsigned long long)(dst)); \
} while (0)


#endif /* VFIO_EDU_H */
