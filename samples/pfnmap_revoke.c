// SPDX-License-Identifier: GPL-2.0
/*
 * pfnmap_revoke: how a VMM learns that rvfio revoked a peer-to-peer mapping.
 *
 * A VMM that assigns two devices to a guest maps each device's BARs into the
 * IOMMU too (VFIO_IOMMU_MAP_DMA of the BAR's mmap), so that one device can
 * DMA into the other (peer-to-peer). When a BAR goes away underneath such a
 * mapping (the VMM munmap()s it, the device is reset or its memory space
 * disabled, the device is unplugged), rvfio removes the IOMMU translation at
 * once and tells the VMM (include/uapi/linux/rvfio.h):
 *
 *   - VFIO_CHECK_EXTENSION(RVFIO_PFNMAP_REVOKE) == 1 says it will;
 *   - RVFIO_IOMMU_REVOKE_EVENTFD registers an eventfd, signalled once per
 *     revocation, after the translation is gone;
 *   - RVFIO_IOMMU_DMA_QUERY says which mapping an IOVA belongs to, whether
 *     it maps PFNMAP memory and how much of it was revoked.
 *
 * A revoked mapping is never re-established: the VMM unmaps it (UNMAP_DMA
 * succeeds and reports the whole size) and, when the BAR is back, maps the
 * new mmap again.
 *
 * The demo: edu #1 (first BDF) is the DMA master, edu #2 (second BDF) the
 * peer. Its BAR0 is mapped at PEER_IOVA; edu #1 reads edu #2's ID register
 * through it; then the BAR is munmap()ed, the eventfd fires, the VMM walks
 * its own list of PFNMAP mappings with the query ioctl, finds the revoked
 * one, unmaps it, mmaps the BAR again and maps it back. edu #1 reads the ID
 * register again through the new mapping.
 *
 * On vfio_iommu_type1 (extension 0, ioctls ENOTTY) it says so and exits 0:
 * a VMM must then not rely on revocation.
 *
 * Usage: pfnmap_revoke [BDF1 BDF2]   (default: the first two of $EDU_BDFS)
 * Exit status: 0 on success (or no revocation support), 1 otherwise.
 */
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <poll.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>
#include <sys/ioctl.h>
#include <sys/mman.h>
#include <time.h>
#include <unistd.h>

#include <linux/pci_regs.h>
#include <linux/vfio.h>
#include <linux/rvfio.h>	/* after linux/vfio.h: rvfio's additions */

#define EDU_REG_ID		0x00
#define EDU_ID_VALUE		0x010000edu
#define EDU_REG_DMA_SRC		0x80
#define EDU_REG_DMA_DST		0x88
#define EDU_REG_DMA_COUNT	0x90
#define EDU_REG_DMA_CMD		0x98
#define   EDU_DMA_START		0x1
#define   EDU_DMA_TO_RAM	0x2
#define EDU_BUF_ADDR		0x40000

#define PEER_IOVA		0x40000000ULL	/* edu #2's BAR0 */
#define RAM_IOVA		0x10000000ULL	/* one page of our memory */
#define PAGE			4096

static void die(const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	fprintf(stderr, "pfnmap_revoke: ");
	vfprintf(stderr, fmt, ap);
	fprintf(stderr, "\n");
	va_end(ap);
	exit(1);
}

struct dev {
	const char *bdf;
	int group, fd;
	uint64_t bar_off, bar_size;
	volatile uint8_t *bar;
};

static int group_of(const char *bdf)
{
	char path[128], link[256], *slash;
	ssize_t n;

	snprintf(path, sizeof(path), "/sys/bus/pci/devices/%s/iommu_group", bdf);
	n = readlink(path, link, sizeof(link) - 1);
	if (n < 0)
		die("%s: %s", path, strerror(errno));
	link[n] = '\0';
	slash = strrchr(link, '/');
	return atoi(slash ? slash + 1 : link);
}

/* Group into the container, device fd, memory + bus master on, BAR0 info. */
static void open_dev(struct dev *d, int container, bool first)
{
	struct vfio_region_info bar = { .argsz = sizeof(bar), .index = VFIO_PCI_BAR0_REGION_INDEX };
	struct vfio_region_info cfg = { .argsz = sizeof(cfg), .index = VFIO_PCI_CONFIG_REGION_INDEX };
	char path[64];
	uint16_t cmd;

	snprintf(path, sizeof(path), "/dev/vfio/%d", group_of(d->bdf));
	d->group = open(path, O_RDWR);
	if (d->group < 0)
		die("open %s: %s", path, strerror(errno));
	if (ioctl(d->group, VFIO_GROUP_SET_CONTAINER, &container))
		die("%s: VFIO_GROUP_SET_CONTAINER: %s", d->bdf, strerror(errno));
	/* After the first group, pick the IOMMU model; later groups join it. */
	if (first && ioctl(container, VFIO_SET_IOMMU, VFIO_TYPE1v2_IOMMU))
		die("VFIO_SET_IOMMU: %s", strerror(errno));
	d->fd = ioctl(d->group, VFIO_GROUP_GET_DEVICE_FD, d->bdf);
	if (d->fd < 0)
		die("%s: VFIO_GROUP_GET_DEVICE_FD: %s", d->bdf, strerror(errno));
	if (ioctl(d->fd, VFIO_DEVICE_GET_REGION_INFO, &cfg) ||
	    ioctl(d->fd, VFIO_DEVICE_GET_REGION_INFO, &bar))
		die("%s: VFIO_DEVICE_GET_REGION_INFO: %s", d->bdf, strerror(errno));
	if (pread(d->fd, &cmd, 2, cfg.offset + PCI_COMMAND) != 2)
		die("%s: config read", d->bdf);
	cmd |= PCI_COMMAND_MEMORY | PCI_COMMAND_MASTER;
	if (pwrite(d->fd, &cmd, 2, cfg.offset + PCI_COMMAND) != 2)
		die("%s: config write", d->bdf);
	d->bar_off = bar.offset;
	d->bar_size = bar.size;
	d->bar = NULL;
}

static volatile uint8_t *map_bar(struct dev *d)
{
	void *p = mmap(NULL, d->bar_size, PROT_READ | PROT_WRITE, MAP_SHARED, d->fd, d->bar_off);

	if (p == MAP_FAILED)
		die("%s: mmap BAR0: %s", d->bdf, strerror(errno));
	return p;
}

static uint64_t now_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return ts.tv_sec * 1000ULL + ts.tv_nsec / 1000000;
}

/* One edu DMA of len bytes; to_ram: edu buffer -> IOVA dst, else IOVA src -> edu buffer. */
static void edu_dma(struct dev *e, uint64_t src, uint64_t dst, uint32_t len, bool to_ram)
{
	volatile uint64_t *r = (volatile uint64_t *)e->bar;
	uint64_t deadline = now_ms() + 10000;

	r[EDU_REG_DMA_SRC / 8] = src;
	r[EDU_REG_DMA_DST / 8] = dst;
	r[EDU_REG_DMA_COUNT / 8] = len;
	*(volatile uint32_t *)(e->bar + EDU_REG_DMA_CMD) =
		EDU_DMA_START | (to_ram ? EDU_DMA_TO_RAM : 0);
	while (*(volatile uint32_t *)(e->bar + EDU_REG_DMA_CMD) & EDU_DMA_START) {
		if (now_ms() > deadline)
			die("edu DMA timed out");
		usleep(2000);
	}
}

/* edu #1 reads 4 bytes at iova (through the IOMMU) and hands them to us via RAM. */
static uint32_t peer_read32(struct dev *e1, volatile uint32_t *ram, uint64_t iova)
{
	*ram = 0xdeadbeef;
	edu_dma(e1, iova, EDU_BUF_ADDR, 4, false);
	edu_dma(e1, EDU_BUF_ADDR, RAM_IOVA, 4, true);
	return *ram;
}

static void map_dma(int container, uint64_t iova, volatile void *vaddr, uint64_t size)
{
	struct vfio_iommu_type1_dma_map m = {
		.argsz = sizeof(m),
		.flags = VFIO_DMA_MAP_FLAG_READ | VFIO_DMA_MAP_FLAG_WRITE,
		.vaddr = (uintptr_t)vaddr, .iova = iova, .size = size,
	};

	if (ioctl(container, VFIO_IOMMU_MAP_DMA, &m))
		die("MAP_DMA %#" PRIx64 ": %s", iova, strerror(errno));
}

/*
 * What a VMM does when the revoke eventfd fires: it keeps its own list of
 * PFNMAP mappings (here: one) and asks about each.
 */
static int handle_revocations(int container, const uint64_t *iovas, int n)
{
	int revoked = 0;

	for (int i = 0; i < n; i++) {
		struct rvfio_dma_query q = { .argsz = sizeof(q), .iova = iovas[i] };
		struct vfio_iommu_type1_dma_unmap u = { .argsz = sizeof(u) };

		if (ioctl(container, RVFIO_IOMMU_DMA_QUERY, &q))
			die("RVFIO_IOMMU_DMA_QUERY %#" PRIx64 ": %s", iovas[i], strerror(errno));
		printf("  mapping %#" PRIx64 "+%#" PRIx64 ": %s%s, %" PRIu64 " bytes revoked\n",
		       (uint64_t)q.iova, (uint64_t)q.size,
		       q.flags & RVFIO_DMA_QUERY_PFNMAP ? "PFNMAP" : "memory",
		       q.flags & RVFIO_DMA_QUERY_REVOKED ? ", REVOKED" : "",
		       (uint64_t)q.revoked_bytes);
		if (!(q.flags & RVFIO_DMA_QUERY_REVOKED))
			continue;
		/* Never re-established: unmap it, map the new BAR mmap later. */
		u.iova = q.iova;
		u.size = q.size;
		if (ioctl(container, VFIO_IOMMU_UNMAP_DMA, &u))
			die("UNMAP_DMA: %s", strerror(errno));
		if (u.size != q.size)
			die("UNMAP_DMA unmapped %#llx of %#llx", (unsigned long long)u.size,
			    (unsigned long long)q.size);
		revoked++;
	}
	return revoked;
}

int main(int argc, char **argv)
{
	char bdfs[2][32] = { "", "" };
	struct dev e1 = { 0 }, e2 = { 0 };
	struct rvfio_revoke_eventfd ev = { .argsz = sizeof(ev) };
	const uint64_t pfnmap_iovas[] = { PEER_IOVA };
	volatile uint32_t *ram;
	struct pollfd pfd;
	uint64_t count;
	uint32_t id;
	int container, efd;

	if (argc == 3) {
		snprintf(bdfs[0], sizeof(bdfs[0]), "%s", argv[1]);
		snprintf(bdfs[1], sizeof(bdfs[1]), "%s", argv[2]);
	} else if (!getenv("EDU_BDFS") ||
		   sscanf(getenv("EDU_BDFS"), "%31s %31s", bdfs[0], bdfs[1]) != 2) {
		die("usage: %s BDF1 BDF2 (or two BDFs in $EDU_BDFS)", argv[0]);
	}
	e1.bdf = bdfs[0];
	e2.bdf = bdfs[1];

	container = open("/dev/vfio/vfio", O_RDWR);
	if (container < 0)
		die("/dev/vfio/vfio: %s", strerror(errno));
	open_dev(&e1, container, true);
	open_dev(&e2, container, false);

	/* 1. Does this backend revoke? Probe after VFIO_SET_IOMMU. */
	if (ioctl(container, VFIO_CHECK_EXTENSION, RVFIO_PFNMAP_REVOKE) != 1) {
		printf("pfnmap_revoke: this IOMMU backend does not revoke PFNMAP mappings "
		       "(e.g. vfio_iommu_type1); a VMM must not rely on it\n");
		return 0;
	}

	/* 2. The eventfd: the VMM's event loop polls it. */
	efd = eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
	if (efd < 0)
		die("eventfd: %s", strerror(errno));
	ev.fd = efd;
	if (ioctl(container, RVFIO_IOMMU_REVOKE_EVENTFD, &ev))
		die("RVFIO_IOMMU_REVOKE_EVENTFD: %s", strerror(errno));
	printf("pfnmap_revoke: eventfd set, %llu revocation(s) so far\n",
	       (unsigned long long)ev.revocations);

	/* 3. Peer-to-peer: edu #2's BAR0 into the IOMMU, edu #1 reads it. */
	e1.bar = map_bar(&e1);
	ram = mmap(NULL, PAGE, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	if (ram == MAP_FAILED)
		die("mmap: %s", strerror(errno));
	*ram = 0;
	map_dma(container, RAM_IOVA, ram, PAGE);
	e2.bar = map_bar(&e2);
	map_dma(container, PEER_IOVA, e2.bar, e2.bar_size);
	id = peer_read32(&e1, ram, PEER_IOVA);
	printf("pfnmap_revoke: edu #1 reads edu #2's ID through IOVA %#llx: %#x\n",
	       PEER_IOVA, id);
	if (id != EDU_ID_VALUE)
		die("peer-to-peer read failed");

	/* 4. The BAR goes away (here: the VMM munmap()s it, as on hot-unplug). */
	munmap((void *)e2.bar, e2.bar_size);
	e2.bar = NULL;
	pfd.fd = efd;
	pfd.events = POLLIN;
	if (poll(&pfd, 1, 5000) != 1 || read(efd, &count, sizeof(count)) != sizeof(count))
		die("no revocation event within 5 s");
	printf("pfnmap_revoke: eventfd fired (%llu)\n", (unsigned long long)count);
	id = peer_read32(&e1, ram, PEER_IOVA);
	printf("pfnmap_revoke: edu #1 now reads %#x at IOVA %#llx\n", id, PEER_IOVA);
	if (id == EDU_ID_VALUE)
		die("DMA still reaches the BAR after the revocation");

	/* 5. Find the revoked mapping(s), unmap, map the BAR again. */
	if (handle_revocations(container, pfnmap_iovas, 1) != 1)
		die("the query did not report the mapping revoked");
	e2.bar = map_bar(&e2);
	map_dma(container, PEER_IOVA, e2.bar, e2.bar_size);
	id = peer_read32(&e1, ram, PEER_IOVA);
	printf("pfnmap_revoke: mapped again, edu #1 reads %#x\n", id);
	if (id != EDU_ID_VALUE)
		die("peer-to-peer read after re-map failed");

	close(efd);
	close(e1.fd);
	close(e2.fd);
	close(e1.group);
	close(e2.group);
	close(container);
	printf("pfnmap_revoke: OK\n");
	return 0;
}
