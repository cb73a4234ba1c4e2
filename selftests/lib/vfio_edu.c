// SPDX-License-Identifier: GPL-2.0
/*
 * vfio_edu.c - helpers for the rvfio selftests. See vfio_edu.h.
 */
#include <linux/capability.h>
#include <sys/syscall.h>
#include "vfio_edu.h"

#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/mman.h>
#include <sys/random.h>
#include <time.h>
#include <unistd.h>

#include <linux/pci_regs.h>

static char edu_bdfs[MAX_EDU][32];
static int edu_nr = -1;

static void parse_bdfs(void)
{
	const char *env = getenv("EDU_BDFS");
	char buf[512], *save = NULL, *tok;

	edu_nr = 0;
	if (!env)
		return;
	snprintf(buf, sizeof(buf), "%s", env);
	for (tok = strtok_r(buf, " \t,\n", &save); tok && edu_nr < MAX_EDU;
	     tok = strtok_r(NULL, " \t,\n", &save)) {
		/* Accept "00:03.0" as well as "0000:00:03.0". */
		if (strchr(tok, ':') == strrchr(tok, ':'))
			snprintf(edu_bdfs[edu_nr], sizeof(edu_bdfs[0]), "0000:%s", tok);
		else
			snprintf(edu_bdfs[edu_nr], sizeof(edu_bdfs[0]), "%s", tok);
		edu_nr++;
	}
}

int edu_count(void)
{
	if (edu_nr < 0)
		parse_bdfs();
	return edu_nr;
}

const char *edu_bdf(int idx)
{
	if (idx < 0 || idx >= edu_count())
		return NULL;
	return edu_bdfs[idx];
}

int edu_group_id(const char *bdf)
{
	char path[256], link[256];
	const char *base;
	ssize_t n;

	snprintf(path, sizeof(path), "/sys/bus/pci/devices/%s/iommu_group", bdf);
	n = readlink(path, link, sizeof(link) - 1);
	if (n < 0)
		return -errno;
	link[n] = '\0';
	base = strrchr(link, '/');
	base = base ? base + 1 : link;
	return atoi(base);
}

long vfio_ioctl(int fd, unsigned long req, void *arg)
{
	long ret = ioctl(fd, req, arg);

	return ret < 0 ? -errno : ret;
}

int vfio_container_open(void)
{
	int fd = open("/dev/vfio/vfio", O_RDWR | O_CLOEXEC);
	int ver;

	if (fd < 0)
		return -errno;
	ver = ioctl(fd, VFIO_GET_API_VERSION);
	if (ver != VFIO_API_VERSION) {
		close(fd);
		return -EPROTO;
	}
	return fd;
}

int vfio_group_attach(int container, const char *bdf, int *group_id)
{
	struct vfio_group_status st = { .argsz = sizeof(st) };
	char path[64];
	int id, fd, ret;

	id = edu_group_id(bdf);
	if (id < 0)
		return id;
	if (group_id)
		*group_id = id;
	snprintf(path, sizeof(path), "/dev/vfio/%d", id);
	fd = open(path, O_RDWR | O_CLOEXEC);
	if (fd < 0)
		return -errno;
	if (ioctl(fd, VFIO_GROUP_GET_STATUS, &st)) {
		ret = -errno;
		goto err;
	}
	if (!(st.flags & VFIO_GROUP_FLAGS_VIABLE)) {
		ret = -EPERM;
		goto err;
	}
	if (ioctl(fd, VFIO_GROUP_SET_CONTAINER, &container)) {
		ret = -errno;
		goto err;
	}
	return fd;
err:
	close(fd);
	return ret;
}

int vfio_set_iommu(int container, int type)
{
	return ioctl(container, VFIO_SET_IOMMU, type) < 0 ? -errno : 0;
}

int vfio_pci_config_read(int device, unsigned int off, void *buf, size_t len)
{
	struct vfio_region_info ri = {
		.argsz = sizeof(ri), .index = VFIO_PCI_CONFIG_REGION_INDEX,
	};
	ssize_t n;

	if (ioctl(device, VFIO_DEVICE_GET_REGION_INFO, &ri))
		return -errno;
	n = pread(device, buf, len, ri.offset + off);
	if (n < 0)
		return -errno;
	return (size_t)n == len ? 0 : -EIO;
}

int vfio_pci_config_write(int device, unsigned int off, const void *buf, size_t len)
{
	struct vfio_region_info ri = {
		.argsz = sizeof(ri), .index = VFIO_PCI_CONFIG_REGION_INDEX,
	};
	ssize_t n;

	if (ioctl(device, VFIO_DEVICE_GET_REGION_INFO, &ri))
		return -errno;
	n = pwrite(device, buf, len, ri.offset + off);
	if (n < 0)
		return -errno;
	return (size_t)n == len ? 0 : -EIO;
}

static void seterr(char *err, size_t errlen, const char *fmt, ...)
{
	va_list ap;

	if (!err || !errlen)
		return;
	va_start(ap, fmt);
	vsnprintf(err, errlen, fmt, ap);
	va_end(ap);
}

int edu_open_device(struct edu *e, char *err, size_t errlen)
{
	struct vfio_region_info ri = {
		.argsz = sizeof(ri), .index = VFIO_PCI_BAR0_REGION_INDEX,
	};
	uint16_t vendor, devid, cmd;
	void *bar;
	int ret;

	e->device = ioctl(e->group, VFIO_GROUP_GET_DEVICE_FD, e->bdf);
	if (e->device < 0) {
		ret = -errno;
		seterr(err, errlen, "VFIO_GROUP_GET_DEVICE_FD(%s): %s", e->bdf, strerror(-ret));
		e->device = -1;
		return ret;
	}
	ret = vfio_pci_config_read(e->device, PCI_VENDOR_ID, &vendor, 2);
	if (!ret)
		ret = vfio_pci_config_read(e->device, PCI_DEVICE_ID, &devid, 2);
	if (ret) {
		seterr(err, errlen, "config read: %s", strerror(-ret));
		return ret;
	}
	if (vendor != EDU_VENDOR || devid != EDU_DEVICE) {
		seterr(err, errlen, "%s is %04x:%04x, not an edu device", e->bdf, vendor, devid);
		return -ENODEV;
	}
	ret = vfio_pci_config_read(e->device, PCI_COMMAND, &cmd, 2);
	if (ret) {
		seterr(err, errlen, "config read PCI_COMMAND: %s", strerror(-ret));
		return ret;
	}
	cmd |= PCI_COMMAND_MEMORY | PCI_COMMAND_MASTER;
	ret = vfio_pci_config_write(e->device, PCI_COMMAND, &cmd, 2);
	if (!ret)
		ret = vfio_pci_config_read(e->device, PCI_COMMAND, &cmd, 2);
	if (ret || !(cmd & PCI_COMMAND_MASTER)) {
		seterr(err, errlen, "enabling bus mastering failed (%s, cmd %#x)",
		       strerror(ret ? -ret : EIO), cmd);
		return ret ? ret : -EIO;
	}
	if (ioctl(e->device, VFIO_DEVICE_GET_REGION_INFO, &ri)) {
		ret = -errno;
		seterr(err, errlen, "GET_REGION_INFO(BAR0): %s", strerror(-ret));
		return ret;
	}
	if (!(ri.flags & VFIO_REGION_INFO_FLAG_MMAP) || ri.size < 0x100) {
		seterr(err, errlen, "BAR0 not mmappable (flags %#x size %#llx)", ri.flags,
		       (unsigned long long)ri.size);
		return -ENODEV;
	}
	bar = mmap(NULL, ri.size, PROT_READ | PROT_WRITE, MAP_SHARED, e->device, ri.offset);
	if (bar == MAP_FAILED) {
		ret = -errno;
		seterr(err, errlen, "mmap BAR0: %s", strerror(-ret));
		return ret;
	}
	e->bar0 = bar;
	e->bar0_size = ri.size;
	if (edu_read32(e, EDU_REG_ID) != EDU_ID_VALUE) {
		seterr(err, errlen, "edu ID register reads %#x", edu_read32(e, EDU_REG_ID));
		return -ENODEV;
	}
	edu_write32(e, EDU_REG_LIVENESS, 0x12345678);
	if (edu_read32(e, EDU_REG_LIVENESS) != ~0x12345678u) {
		seterr(err, errlen, "edu liveness register does not invert");
		return -EIO;
	}
	return 0;
}

int edu_open(struct edu *e, const char *bdf, int container, int iommu_type,
	     char *err, size_t errlen)
{
	int ret;

	memset(e, 0, sizeof(*e));
	e->container = e->group = e->device = -1;
	if (!bdf) {
		seterr(err, errlen, "no edu BDF (EDU_BDFS unset or too short)");
		return -ENODEV;
	}
	snprintf(e->bdf, sizeof(e->bdf), "%s", bdf);
	if (container < 0) {
		ret = vfio_container_open();
		if (ret < 0) {
			seterr(err, errlen, "open /dev/vfio/vfio: %s", strerror(-ret));
			return ret;
		}
		e->container = ret;
		e->own_container = true;
	} else {
		e->container = container;
	}
	ret = vfio_group_attach(e->container, bdf, &e->group_id);
	if (ret < 0) {
		seterr(err, errlen, "attach group of %s: %s", bdf, strerror(-ret));
		goto fail;
	}
	e->group = ret;
	if (iommu_type) {
		ret = vfio_set_iommu(e->container, iommu_type);
		if (ret) {
			seterr(err, errlen, "VFIO_SET_IOMMU(%d): %s", iommu_type, strerror(-ret));
			goto fail;
		}
	}
	ret = edu_open_device(e, err, errlen);
	if (ret)
		goto fail;
	return 0;
fail:
	edu_close(e);
	return ret;
}

void edu_close(struct edu *e)
{
	if (e->bar0) {
		munmap((void *)e->bar0, e->bar0_size);
		e->bar0 = NULL;
	}
	if (e->device >= 0)
		close(e->device);
	e->device = -1;
	if (e->group >= 0)
		close(e->group);
	e->group = -1;
	if (e->own_container && e->container >= 0)
		close(e->container);
	e->container = -1;
	e->own_container = false;
}

int vfio_map(int container, uint64_t iova, const void *vaddr, uint64_t size,
	     uint32_t flags)
{
	struct vfio_iommu_type1_dma_map map = {
		.argsz = sizeof(map),
		.flags = flags,
		.vaddr = (uintptr_t)vaddr,
		.iova = iova,
		.size = size,
	};

	return ioctl(container, VFIO_IOMMU_MAP_DMA, &map) ? -errno : 0;
}

int vfio_unmap(int container, uint64_t iova, uint64_t size, uint32_t flags,
	       uint64_t *unmapped)
{
	struct vfio_iommu_type1_dma_unmap unmap = {
		.argsz = sizeof(unmap),
		.flags = flags,
		.iova = iova,
		.size = size,
	};
	int ret = ioctl(container, VFIO_IOMMU_UNMAP_DMA, &unmap) ? -errno : 0;

	if (unmapped)
		*unmapped = unmap.size;
	return ret;
}

int vfio_unmap_all(int container, uint64_t *unmapped)
{
	return vfio_unmap(container, 0, 0, VFIO_DMA_UNMAP_FLAG_ALL, unmapped);
}

struct vfio_iommu_type1_info *vfio_get_info(int container)
{
	struct vfio_iommu_type1_info *info;
	uint32_t argsz = sizeof(*info);

	for (int tries = 0; tries < 4; tries++) {
		info = calloc(1, argsz);
		if (!info)
			return NULL;
		info->argsz = argsz;
		if (ioctl(container, VFIO_IOMMU_GET_INFO, info)) {
			int e = errno;

			free(info);
			errno = e;
			return NULL;
		}
		if (info->argsz <= argsz)
			return info;
		argsz = info->argsz;
		free(info);
	}
	errno = EOVERFLOW;
	return NULL;
}

const struct vfio_info_cap_header *vfio_info_cap(const struct vfio_iommu_type1_info *info,
						 uint16_t id)
{
	uint32_t off;
	int hops = 0;

	if (!(info->flags & VFIO_IOMMU_INFO_CAPS))
		return NULL;
	for (off = info->cap_offset; off; hops++) {
		const struct vfio_info_cap_header *h;

		if (hops > 64 || off < sizeof(*info) ||
		    off + sizeof(*h) > info->argsz)
			return NULL;
		h = (const void *)((const char *)info + off);
		if (h->id == id)
			return h;
		off = h->next;
	}
	return NULL;
}

int vfio_iova_ranges(int container, struct vfio_iova_range **ranges)
{
	const struct vfio_iommu_type1_info_cap_iova_range *cap;
	struct vfio_iommu_type1_info *info = vfio_get_info(container);
	int n;

	*ranges = NULL;
	if (!info)
		return -errno;
	cap = (const void *)vfio_info_cap(info, VFIO_IOMMU_TYPE1_INFO_CAP_IOVA_RANGE);
	if (!cap) {
		free(info);
		return -ENOENT;
	}
	n = cap->nr_iovas;
	if ((const char *)&cap->iova_ranges[n] > (const char *)info + info->argsz) {
		free(info);
		return -EOVERFLOW;
	}
	*ranges = calloc(n ? n : 1, sizeof(**ranges));
	if (!*ranges) {
		free(info);
		return -ENOMEM;
	}
	memcpy(*ranges, cap->iova_ranges, n * sizeof(**ranges));
	free(info);
	return n;
}

uint32_t edu_read32(struct edu *e, unsigned int off)
{
	return *(volatile uint32_t *)(e->bar0 + off);
}

void edu_write32(struct edu *e, unsigned int off, uint32_t val)
{
	*(volatile uint32_t *)(e->bar0 + off) = val;
}

uint64_t edu_read64(struct edu *e, unsigned int off)
{
	return *(volatile uint64_t *)(e->bar0 + off);
}

void edu_write64(struct edu *e, unsigned int off, uint64_t val)
{
	*(volatile uint64_t *)(e->bar0 + off) = val;
}

static uint64_t now_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return ts.tv_sec * 1000ull + ts.tv_nsec / 1000000;
}

int edu_dma(struct edu *e, uint64_t src, uint64_t dst, uint32_t len, bool to_ram)
{
	uint64_t edu_addr = to_ram ? src : dst;
	uint64_t deadline;

	if (!len || edu_addr < EDU_BUF_ADDR || edu_addr + len > EDU_BUF_ADDR + EDU_BUF_SIZE)
		return -EINVAL;
	/* A previous transfer still running would ignore our register writes. */
	deadline = now_ms() + EDU_DMA_TIMEOUT_MS;
	while (edu_read32(e, EDU_REG_DMA_CMD) & EDU_DMA_CMD_RUN) {
		if (now_ms() > deadline)
			return -EBUSY;
		usleep(1000);
	}
	edu_write64(e, EDU_REG_DMA_SRC, src);
	edu_write64(e, EDU_REG_DMA_DST, dst);
	edu_write64(e, EDU_REG_DMA_COUNT, len);
	if (edu_read64(e, EDU_REG_DMA_SRC) != src || edu_read64(e, EDU_REG_DMA_DST) != dst ||
	    edu_read64(e, EDU_REG_DMA_COUNT) != len)
		return -EIO;
	edu_write32(e, EDU_REG_DMA_CMD, EDU_DMA_CMD_RUN | (to_ram ? EDU_DMA_CMD_TO_RAM : 0));
	deadline = now_ms() + EDU_DMA_TIMEOUT_MS;
	while (edu_read32(e, EDU_REG_DMA_CMD) & EDU_DMA_CMD_RUN) {
		if (now_ms() > deadline)
			return -ETIMEDOUT;
		usleep(2000);
	}
	__sync_synchronize();
	return 0;
}

int edu_dma_to_dev(struct edu *e, uint64_t iova, uint32_t buf_off, uint32_t len)
{
	return edu_dma(e, iova, EDU_BUF_ADDR + buf_off, len, false);
}

int edu_dma_to_ram(struct edu *e, uint32_t buf_off, uint64_t iova, uint32_t len)
{
	return edu_dma(e, EDU_BUF_ADDR + buf_off, iova, len, true);
}

void *alloc_pages_4k(size_t size, uint8_t fill)
{
	void *p = mmap(NULL, size, PROT_READ | PROT_WRITE,
		       MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);

	if (p == MAP_FAILED)
		return p;
#ifdef MADV_NOHUGEPAGE
	madvise(p, size, MADV_NOHUGEPAGE);	/* best effort: ENOSYS/EINVAL are fine */
#endif
	memset(p, fill, size);
	return p;
}

static inline uint8_t pattern_byte(size_t i, uint32_t seed)
{
	uint32_t x = (uint32_t)i * 2654435761u ^ seed;

	x ^= x >> 15;
	x *= 0x2c1b3c6du;
	x ^= x >> 12;
	return (uint8_t)(x ^ (x >> 8));
}

void fill_pattern(void *buf, size_t len, uint32_t seed)
{
	uint8_t *b = buf;

	for (size_t i = 0; i < len; i++)
		b[i] = pattern_byte(i, seed);
}

long check_pattern(const void *buf, size_t len, uint32_t seed)
{
	const volatile uint8_t *b = buf;

	for (size_t i = 0; i < len; i++)
		if (b[i] != pattern_byte(i, seed))
			return (long)i;
	return -1;
}

long check_fill(const void *buf, size_t len, uint8_t val)
{
	const volatile uint8_t *b = buf;

	for (size_t i = 0; i < len; i++)
		if (b[i] != val)
			return (long)i;
	return -1;
}

uint32_t random_seed(void)
{
	uint32_t s;

	if (getrandom(&s, sizeof(s), 0) != sizeof(s))
		s = (uint32_t)time(NULL) * 2654435761u ^ (uint32_t)getpid();
	return s | 1;	/* never the all-zero pattern seed */
}

static long long read_key(const char *path, const char *key, char sep)
{
	char line[256];
	size_t kl = strlen(key);
	long long v = LLONG_MIN;
	FILE *f = fopen(path, "re");

	if (!f)
		return LLONG_MIN;
	while (fgets(line, sizeof(line), f)) {
		if (!strncmp(line, key, kl) && line[kl] == sep) {
			v = strtoll(line + kl + 1, NULL, 10);
			break;
		}
	}
	fclose(f);
	return v;
}

long vmlck_kb(void)
{
	long long v = read_key("/proc/self/status", "VmLck", ':');

	return v == LLONG_MIN ? -ENOENT : (long)v;
}

long vmlck_kb_pid(int pid)
{
	char path[64];
	long long v;

	snprintf(path, sizeof(path), "/proc/%d/status", pid);
	v = read_key(path, "VmLck", ':');
	return v == LLONG_MIN ? -ENOENT : (long)v;
}

int edu_copy(struct edu *e, uint64_t src, uint64_t dst, uint32_t len)
{
	int ret = edu_dma_to_dev(e, src, 0, len);

	return ret ? ret : edu_dma_to_ram(e, 0, dst, len);
}

/*
 * vmstat node counters are kept per CPU and folded into the global value
 * only past a threshold or periodically, so /proc/vmstat lags by up to a few
 * dozen pages per CPU. Writing /proc/sys/vm/stat_refresh (root) folds them
 * all first, which makes the counts exact.
 */
static void vmstat_refresh(void)
{
	int fd = open("/proc/sys/vm/stat_refresh", O_WRONLY | O_CLOEXEC);

	if (fd >= 0) {
		if (write(fd, "1\n", 2) < 0)
			perror("# stat_refresh");
		close(fd);
	}
}

int foll_pin_counts(long long *acquired, long long *released)
{
	vmstat_refresh();
	*acquired = read_key("/proc/vmstat", "nr_foll_pin_acquired", ' ');
	*released = read_key("/proc/vmstat", "nr_foll_pin_released", ' ');
	if (*acquired == LLONG_MIN || *released == LLONG_MIN)
		return -ENOENT;
	return 0;
}

long long foll_pins_outstanding(void)
{
	long long a, r;

	if (foll_pin_counts(&a, &r))
		return LLONG_MIN;
	return a - r;
}

long long pins_settle(long long want, int ms)
{
	long long p = foll_pins_outstanding();

	for (int i = 0; i < ms / 50 && p != want; i++) {
		usleep(50000);
		p = foll_pins_outstanding();
	}
	return p;
}

int module_refcount(const char *name)
{
	char line[512], mod[128];
	int ref, ret = -ENOENT;
	FILE *f = fopen("/proc/modules", "re");

	if (!f)
		return -errno;
	while (fgets(line, sizeof(line), f)) {
		/* "name size refcount deps state addr" */
		if (sscanf(line, "%127s %*u %d", mod, &ref) == 2 && !strcmp(mod, name)) {
			ret = ref;
			break;
		}
	}
	fclose(f);
	return ret;
}

int module_param_read(const char *mod, const char *param, long *val)
{
	char path[256];
	FILE *f;
	int ret;

	snprintf(path, sizeof(path), "/sys/module/%s/parameters/%s", mod, param);
	f = fopen(path, "re");
	if (!f)
		return -errno;
	ret = fscanf(f, "%ld", val) == 1 ? 0 : -EINVAL;
	fclose(f);
	return ret;
}

int module_param_write(const char *mod, const char *param, long val)
{
	char path[256];
	FILE *f;
	int ret = 0;

	snprintf(path, sizeof(path), "/sys/module/%s/parameters/%s", mod, param);
	f = fopen(path, "we");
	if (!f)
		return -errno;
	if (fprintf(f, "%ld\n", val) < 0)
		ret = -EIO;
	if (fclose(f))
		ret = -errno;
	return ret;
}

/* Drop CAP_IPC_LOCK from the effective set (so RLIMIT_MEMLOCK applies). */
int drop_cap_ipc_lock(void)
{
	struct __user_cap_header_struct hdr = { .version = _LINUX_CAPABILITY_VERSION_3 };
	struct __user_cap_data_struct data[2];

	if (syscall(SYS_capget, &hdr, data))
		return -errno;
	data[CAP_IPC_LOCK / 32].effective &= ~(1u << (CAP_IPC_LOCK % 32));
	if (syscall(SYS_capset, &hdr, data))
		return -errno;
	return 0;
}
