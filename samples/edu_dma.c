// SPDX-License-Identifier: GPL-2.0
/*
 * edu_dma: a small VFIO type1 client, written to be read.
 *
 * It drives QEMU's "edu" teaching device (PCI 1234:11e8) from userspace the
 * way a VMM or a userspace driver (DPDK, SPDK, QEMU's vfio-pci) drives a real
 * device:
 *
 *   1. container: open /dev/vfio/vfio, check the API version and that the
 *      Type1v2 IOMMU model is offered;
 *   2. group: find the device's IOMMU group in sysfs, open /dev/vfio/<group>,
 *      put it in the container, then pick the IOMMU model (VFIO_SET_IOMMU);
 *   3. ask the IOMMU backend what it supports (VFIO_IOMMU_GET_INFO: page
 *      sizes and the usable IOVA ranges, from a capability chain);
 *   4. device: get a device fd, enable bus mastering in config space, mmap
 *      BAR0 to reach the edu registers;
 *   5. DMA: map buffers of this process into the device's IO virtual address
 *      space (VFIO_IOMMU_MAP_DMA), let the edu copy between them, compare,
 *      and unmap (VFIO_IOMMU_UNMAP_DMA), checking the size unmapped.
 *
 * The edu device copies at most 4 KiB at a time between "RAM" (an IOVA,
 * translated by the IOMMU) and its internal buffer at device address
 * 0x40000. So a copy from buffer A to buffer B is two DMAs:
 *
 *      A (IOVA) --DMA read--> edu buffer --DMA write--> B (IOVA)
 *
 * Two such copies run: one between IOVAs below 256 MiB, one that writes to
 * an IOVA above 4 GiB (the VM gives the edu a 64-bit DMA mask).
 *
 * Usage: edu_dma [BDF]    (default: the first BDF in $EDU_BDFS)
 * Exit status: 0 when every byte arrived as expected, 1 otherwise.
 */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <libgen.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/mman.h>
#include <time.h>
#include <unistd.h>

#include <linux/pci_regs.h>
#include <linux/vfio.h>

/* ---- The edu device (QEMU hw/misc/edu.c, docs/specs/edu.rst) ---- */

#define EDU_REG_ID		0x00	/* reads 0xRRrr00ed: version, "ed" */
#define EDU_REG_LIVENESS	0x04	/* reads back the bitwise NOT of a write */
#define EDU_REG_DMA_SRC		0x80	/* source address */
#define EDU_REG_DMA_DST		0x88	/* destination address */
#define EDU_REG_DMA_COUNT	0x90	/* bytes to copy */
#define EDU_REG_DMA_CMD		0x98	/* command/status */
#define   EDU_DMA_START		0x1	/* write: start; read: still busy */
#define   EDU_DMA_TO_RAM	0x2	/* direction: edu buffer -> RAM */
#define EDU_BUF_ADDR		0x40000	/* the internal buffer's device address */
#define EDU_BUF_SIZE		4096

/* The transfer size, and the size of each mapping. */
#define XFER_SIZE		4096
/*
 * IOVAs this program chooses for its buffers. The IOVA space belongs to the
 * container: any address inside a range VFIO_IOMMU_GET_INFO reports will do.
 */
#define IOVA_SRC		0x00100000ULL	/* 1 MiB */
#define IOVA_DST		0x00200000ULL	/* 2 MiB */
#define IOVA_HIGH		0x100200000ULL	/* 4 GiB + 2 MiB */

#define DMA_TIMEOUT_MS		10000	/* the edu finishes after 100 ms */

static void die(const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	fprintf(stderr, "edu_dma: ");
	vfprintf(stderr, fmt, ap);
	va_end(ap);
	fprintf(stderr, "\n");
	exit(1);
}

/* ---- Step 1 and 2: container and group ---- */

static int open_container(void)
{
	int container = open("/dev/vfio/vfio", O_RDWR);

	if (container < 0)
		die("open /dev/vfio/vfio: %s", strerror(errno));
	/* Every container speaks the same API version: VFIO_API_VERSION (0). */
	if (ioctl(container, VFIO_GET_API_VERSION) != VFIO_API_VERSION)
		die("unknown VFIO API version");
	/*
	 * Extensions are answered by the registered IOMMU backends until one is
	 * chosen with VFIO_SET_IOMMU. Type1v2 is the model every current user
	 * asks for: v2 fixes unmap semantics (no splitting of mappings).
	 */
	if (ioctl(container, VFIO_CHECK_EXTENSION, VFIO_TYPE1v2_IOMMU) <= 0)
		die("no backend offers VFIO_TYPE1v2_IOMMU (is an IOMMU backend module loaded?)");
	return container;
}

/* The IOMMU group of a PCI device is a symlink in sysfs: .../iommu_groups/N. */
static int group_of(const char *bdf)
{
	char path[256], target[256];
	ssize_t n;

	snprintf(path, sizeof(path), "/sys/bus/pci/devices/%s/iommu_group", bdf);
	n = readlink(path, target, sizeof(target) - 1);
	if (n < 0)
		die("readlink %s: %s", path, strerror(errno));
	target[n] = '\0';
	return atoi(basename(target));
}

static int open_group(int container, int group_id)
{
	struct vfio_group_status status = { .argsz = sizeof(status) };
	char path[64];
	int group;

	snprintf(path, sizeof(path), "/dev/vfio/%d", group_id);
	group = open(path, O_RDWR);
	if (group < 0)
		die("open %s: %s", path, strerror(errno));
	/* A group is viable when every device in it is bound to a vfio driver. */
	if (ioctl(group, VFIO_GROUP_GET_STATUS, &status))
		die("VFIO_GROUP_GET_STATUS: %s", strerror(errno));
	if (!(status.flags & VFIO_GROUP_FLAGS_VIABLE))
		die("group %d is not viable: bind all its devices to vfio-pci", group_id);
	if (ioctl(group, VFIO_GROUP_SET_CONTAINER, &container))
		die("VFIO_GROUP_SET_CONTAINER: %s", strerror(errno));
	return group;
}

/* ---- Step 3: what the IOMMU backend offers ---- */

/*
 * VFIO_IOMMU_GET_INFO returns a fixed struct followed by a chain of
 * capabilities. Call it once to learn the full size (argsz is updated), then
 * again with a buffer that large. Returns true if every IOVA in iovas[]
 * lies inside a reported range.
 */
static bool print_iommu_info(int container, const uint64_t *iovas, int n_iovas)
{
	struct vfio_iommu_type1_info *info;
	struct vfio_info_cap_header *cap;
	uint32_t argsz = sizeof(*info);
	bool have_ranges = false;
	bool iova_ok[8] = { false };
	bool all_ok = true;
	int i;

	info = calloc(1, argsz);
	info->argsz = argsz;
	if (ioctl(container, VFIO_IOMMU_GET_INFO, info))
		die("VFIO_IOMMU_GET_INFO: %s", strerror(errno));
	if (info->argsz > argsz) {
		argsz = info->argsz;
		info = realloc(info, argsz);
		memset(info, 0, argsz);
		info->argsz = argsz;
		if (ioctl(container, VFIO_IOMMU_GET_INFO, info))
			die("VFIO_IOMMU_GET_INFO: %s", strerror(errno));
	}

	if (info->flags & VFIO_IOMMU_INFO_PGSIZES) {
		printf("iommu: page sizes:");
		for (i = 0; i < 64; i++)
			if (info->iova_pgsizes & (1ULL << i)) {
				if (i >= 30)
					printf(" %uG", 1U << (i - 30));
				else if (i >= 20)
					printf(" %uM", 1U << (i - 20));
				else
					printf(" %uK", 1U << (i - 10));
			}
		printf(" (bitmap 0x%llx)\n", (unsigned long long)info->iova_pgsizes);
	}

	/* Walk the capability chain: offsets are from the start of info. */
	if ((info->flags & VFIO_IOMMU_INFO_CAPS) && info->cap_offset) {
		for (uint32_t off = info->cap_offset; off; off = cap->next) {
			cap = (struct vfio_info_cap_header *)((char *)info + off);
			switch (cap->id) {
			case VFIO_IOMMU_TYPE1_INFO_CAP_IOVA_RANGE: {
				struct vfio_iommu_type1_info_cap_iova_range *r =
					(void *)cap;

				have_ranges = true;
				printf("iommu: %u usable IOVA ranges:\n", r->nr_iovas);
				for (uint32_t k = 0; k < r->nr_iovas; k++) {
					printf("  [0x%016llx - 0x%016llx]\n",
					       (unsigned long long)r->iova_ranges[k].start,
					       (unsigned long long)r->iova_ranges[k].end);
					for (i = 0; i < n_iovas; i++)
						if (iovas[i] >= r->iova_ranges[k].start &&
						    iovas[i] + XFER_SIZE - 1 <=
						    r->iova_ranges[k].end)
							iova_ok[i] = true;
				}
				break;
			}
			case VFIO_IOMMU_TYPE1_INFO_DMA_AVAIL: {
				struct vfio_iommu_type1_info_dma_avail *a = (void *)cap;

				printf("iommu: %u more DMA mappings allowed\n", a->avail);
				break;
			}
			case VFIO_IOMMU_TYPE1_INFO_CAP_MIGRATION: {
				struct vfio_iommu_type1_info_cap_migration *m =
					(void *)cap;

				printf("iommu: dirty tracking: page sizes 0x%llx, max bitmap %llu bytes\n",
				       (unsigned long long)m->pgsize_bitmap,
				       (unsigned long long)m->max_dirty_bitmap_size);
				break;
			}
			default:
				printf("iommu: capability %u (version %u)\n",
				       cap->id, cap->version);
			}
		}
	}
	free(info);

	if (!have_ranges) {
		printf("iommu: no IOVA range capability; assuming all IOVAs are usable\n");
		return true;
	}
	for (i = 0; i < n_iovas; i++)
		if (!iova_ok[i]) {
			printf("iommu: IOVA 0x%llx is outside every usable range\n",
			       (unsigned long long)iovas[i]);
			all_ok = false;
		}
	return all_ok;
}

/* ---- Step 4: the device ---- */

struct edu {
	int fd;
	volatile uint8_t *bar0;
	size_t bar0_size;
};

static struct vfio_region_info region_info(int device, uint32_t index)
{
	struct vfio_region_info reg = { .argsz = sizeof(reg), .index = index };

	if (ioctl(device, VFIO_DEVICE_GET_REGION_INFO, &reg))
		die("VFIO_DEVICE_GET_REGION_INFO(%u): %s", index, strerror(errno));
	return reg;
}

static uint64_t edu_read(struct edu *edu, unsigned int reg)
{
	if (reg < 0x80)	/* the low registers take 32-bit accesses only */
		return *(volatile uint32_t *)(edu->bar0 + reg);
	return *(volatile uint64_t *)(edu->bar0 + reg);
}

static void edu_write(struct edu *edu, unsigned int reg, uint64_t val)
{
	if (reg < 0x80)
		*(volatile uint32_t *)(edu->bar0 + reg) = (uint32_t)val;
	else
		*(volatile uint64_t *)(edu->bar0 + reg) = val;
}

static struct edu open_edu(int group, const char *bdf)
{
	struct vfio_device_info dinfo = { .argsz = sizeof(dinfo) };
	struct vfio_region_info cfg, bar;
	struct edu edu;
	uint16_t cmd;
	uint32_t id;
	void *map;

	edu.fd = ioctl(group, VFIO_GROUP_GET_DEVICE_FD, bdf);
	if (edu.fd < 0)
		die("VFIO_GROUP_GET_DEVICE_FD(%s): %s", bdf, strerror(errno));
	if (ioctl(edu.fd, VFIO_DEVICE_GET_INFO, &dinfo))
		die("VFIO_DEVICE_GET_INFO: %s", strerror(errno));
	if (!(dinfo.flags & VFIO_DEVICE_FLAGS_PCI))
		die("%s is not a PCI device", bdf);
	printf("device %s: %u regions, %u irq types\n", bdf,
	       dinfo.num_regions, dinfo.num_irqs);

	/*
	 * Config space is region VFIO_PCI_CONFIG_REGION_INDEX, accessed with
	 * pread/pwrite at the region's offset in the device fd. vfio-pci
	 * virtualises parts of it; PCI_COMMAND's bus-master bit is passed on.
	 * Without it the device's DMA is refused.
	 */
	cfg = region_info(edu.fd, VFIO_PCI_CONFIG_REGION_INDEX);
	if (pread(edu.fd, &cmd, sizeof(cmd), cfg.offset + PCI_COMMAND) != sizeof(cmd))
		die("read PCI_COMMAND: %s", strerror(errno));
	cmd |= PCI_COMMAND_MEMORY | PCI_COMMAND_MASTER;
	if (pwrite(edu.fd, &cmd, sizeof(cmd), cfg.offset + PCI_COMMAND) != sizeof(cmd))
		die("write PCI_COMMAND: %s", strerror(errno));

	/* BAR0 holds the registers; vfio-pci lets us mmap it. */
	bar = region_info(edu.fd, VFIO_PCI_BAR0_REGION_INDEX);
	if (!(bar.flags & VFIO_REGION_INFO_FLAG_MMAP))
		die("BAR0 cannot be mmapped");
	map = mmap(NULL, bar.size, PROT_READ | PROT_WRITE, MAP_SHARED, edu.fd,
		   bar.offset);
	if (map == MAP_FAILED)
		die("mmap BAR0: %s", strerror(errno));
	edu.bar0 = map;
	edu.bar0_size = bar.size;

	id = edu_read(&edu, EDU_REG_ID);
	if ((id & 0xff) != 0xed)
		die("BAR0 ID register reads 0x%08x, not an edu device", id);
	edu_write(&edu, EDU_REG_LIVENESS, 0x12345678);
	if (edu_read(&edu, EDU_REG_LIVENESS) != (uint32_t)~0x12345678u)
		die("edu liveness check failed");
	printf("device %s: edu version %u.%u, BAR0 %llu bytes mmapped\n", bdf,
	       id >> 24, (id >> 16) & 0xff, (unsigned long long)bar.size);
	return edu;
}

static uint64_t now_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return ts.tv_sec * 1000ULL + ts.tv_nsec / 1000000;
}

/* One edu DMA: count bytes from src to dst; one side must be EDU_BUF_ADDR. */
static void edu_dma(struct edu *edu, uint64_t src, uint64_t dst, uint64_t count,
		    bool to_ram)
{
	uint64_t deadline = now_ms() + DMA_TIMEOUT_MS;
	struct timespec ms = { 0, 1000000 };

	edu_write(edu, EDU_REG_DMA_SRC, src);
	edu_write(edu, EDU_REG_DMA_DST, dst);
	edu_write(edu, EDU_REG_DMA_COUNT, count);
	edu_write(edu, EDU_REG_DMA_CMD, EDU_DMA_START | (to_ram ? EDU_DMA_TO_RAM : 0));
	while (edu_read(edu, EDU_REG_DMA_CMD) & EDU_DMA_START) {
		if (now_ms() > deadline)
			die("DMA 0x%llx -> 0x%llx did not finish in %d ms",
			    (unsigned long long)src, (unsigned long long)dst,
			    DMA_TIMEOUT_MS);
		nanosleep(&ms, NULL);
	}
}

/* ---- Step 5: DMA mappings ---- */

struct buffer {
	const char *name;
	uint8_t *va;
	uint64_t iova;
	uint64_t size;
};

static void map_dma(int container, struct buffer *b, uint32_t flags)
{
	struct vfio_iommu_type1_dma_map map = {
		.argsz = sizeof(map),
		/* READ/WRITE are from the device's point of view. */
		.flags = flags,
		.vaddr = (uintptr_t)b->va,
		.iova = b->iova,
		.size = b->size,
	};

	/* The backend pins the pages and programs the IOMMU. */
	if (ioctl(container, VFIO_IOMMU_MAP_DMA, &map))
		die("VFIO_IOMMU_MAP_DMA %s: %s", b->name, strerror(errno));
	printf("map   %-4s vaddr %p -> iova 0x%09llx, %llu bytes, device may %s\n",
	       b->name, (void *)b->va, (unsigned long long)b->iova,
	       (unsigned long long)b->size,
	       (flags & VFIO_DMA_MAP_FLAG_WRITE) ? "read+write" : "read");
}

static bool unmap_dma(int container, struct buffer *b)
{
	struct vfio_iommu_type1_dma_unmap unmap = {
		.argsz = sizeof(unmap),
		.iova = b->iova,
		.size = b->size,
	};

	if (ioctl(container, VFIO_IOMMU_UNMAP_DMA, &unmap))
		die("VFIO_IOMMU_UNMAP_DMA %s: %s", b->name, strerror(errno));
	/* On return, size holds how many bytes were really unmapped. */
	printf("unmap %-4s iova 0x%09llx: kernel unmapped %llu bytes\n", b->name,
	       (unsigned long long)b->iova, (unsigned long long)unmap.size);
	return unmap.size == b->size;
}

static struct buffer alloc_buffer(const char *name, uint64_t iova)
{
	struct buffer b = { .name = name, .iova = iova, .size = XFER_SIZE };

	/* Any page-aligned memory works; anonymous mmap gives exactly that. */
	b.va = mmap(NULL, b.size, PROT_READ | PROT_WRITE,
		    MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	if (b.va == MAP_FAILED)
		die("mmap: %s", strerror(errno));
	return b;
}

/* Copy src to dst through the edu's buffer; return the bytes that match. */
static size_t copy_and_compare(struct edu *edu, const struct buffer *src,
			       const struct buffer *dst, const uint8_t *expect)
{
	size_t good = 0;

	edu_dma(edu, src->iova, EDU_BUF_ADDR, XFER_SIZE, false);
	edu_dma(edu, EDU_BUF_ADDR, dst->iova, XFER_SIZE, true);
	for (size_t i = 0; i < XFER_SIZE; i++)
		good += dst->va[i] == expect[i];
	printf("dma   %s (0x%09llx) -> edu 0x%x -> %s (0x%09llx): %zu/%d bytes verified\n",
	       src->name, (unsigned long long)src->iova, EDU_BUF_ADDR, dst->name,
	       (unsigned long long)dst->iova, good, XFER_SIZE);
	return good;
}

/* Which container backend module is loaded, and how many users it has. */
static void print_backend(void)
{
	char line[256], name[64];
	unsigned long size, refs;
	FILE *f = fopen("/proc/modules", "r");

	if (!f)
		return;
	while (fgets(line, sizeof(line), f))
		if (sscanf(line, "%63s %lu %lu", name, &size, &refs) == 3 &&
		    (!strcmp(name, "rvfio") || !strcmp(name, "vfio_iommu_type1")))
			printf("backend: %s loaded, %lu user(s)\n", name, refs);
	fclose(f);
}

int main(int argc, char **argv)
{
	const uint64_t iovas[] = { IOVA_SRC, IOVA_DST, IOVA_HIGH };
	char bdf[32] = "";
	uint8_t pattern[XFER_SIZE];
	struct buffer src, dst, high;
	int container, group, gid;
	struct edu edu;
	bool ok = true;

	if (argc > 1) {
		snprintf(bdf, sizeof(bdf), "%s", argv[1]);
	} else if (getenv("EDU_BDFS")) {
		sscanf(getenv("EDU_BDFS"), "%31s", bdf);
	}
	if (!bdf[0])
		die("usage: edu_dma BDF (or set EDU_BDFS)");
	setvbuf(stdout, NULL, _IOLBF, 0);

	/* Steps 1-3. */
	container = open_container();
	gid = group_of(bdf);
	group = open_group(container, gid);
	printf("group %d: %s, added to the container\n", gid, bdf);
	/* The first group in a container lets us choose the IOMMU model. */
	if (ioctl(container, VFIO_SET_IOMMU, VFIO_TYPE1v2_IOMMU))
		die("VFIO_SET_IOMMU(TYPE1v2): %s", strerror(errno));
	print_backend();
	if (!print_iommu_info(container, iovas, 3))
		die("chosen IOVAs are not usable");

	/* Step 4. */
	edu = open_edu(group, bdf);

	/* Step 5: three one-page buffers with their IOVAs. */
	src = alloc_buffer("src", IOVA_SRC);
	dst = alloc_buffer("dst", IOVA_DST);
	high = alloc_buffer("high", IOVA_HIGH);
	for (size_t i = 0; i < XFER_SIZE; i++)
		pattern[i] = (uint8_t)(i * 7 + 3) ^ (uint8_t)(i >> 8);
	memcpy(src.va, pattern, XFER_SIZE);
	memset(dst.va, 0xaa, XFER_SIZE);
	memset(high.va, 0x55, XFER_SIZE);

	/* The device only reads src; it writes dst and high. */
	map_dma(container, &src, VFIO_DMA_MAP_FLAG_READ);
	map_dma(container, &dst, VFIO_DMA_MAP_FLAG_READ | VFIO_DMA_MAP_FLAG_WRITE);
	map_dma(container, &high, VFIO_DMA_MAP_FLAG_READ | VFIO_DMA_MAP_FLAG_WRITE);

	/* src -> dst below 256 MiB, then dst -> high above 4 GiB. */
	ok &= copy_and_compare(&edu, &src, &dst, pattern) == XFER_SIZE;
	ok &= copy_and_compare(&edu, &dst, &high, pattern) == XFER_SIZE;

	ok &= unmap_dma(container, &src);
	ok &= unmap_dma(container, &dst);
	ok &= unmap_dma(container, &high);

	munmap((void *)edu.bar0, edu.bar0_size);
	close(edu.fd);
	if (ioctl(group, VFIO_GROUP_UNSET_CONTAINER))
		die("VFIO_GROUP_UNSET_CONTAINER: %s", strerror(errno));
	close(group);
	close(container);

	printf("edu_dma: %s\n", ok ? "PASS" : "FAIL");
	return ok ? 0 : 1;
}
