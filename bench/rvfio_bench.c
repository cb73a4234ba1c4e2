// SPDX-License-Identifier: GPL-2.0
/*
 * rvfio_bench: map/unmap timings of one IOMMU backend, run inside the bench
 * VM by bench/bench-init.sh (see Documentation/bench.rst).
 *
 *   rvfio_bench BACKEND BDF [REPS] [MIB]
 *   (BENCH_CASES=a,b in the environment: only these cases)
 *
 * BACKEND is how the memory gets mapped:
 *   rvfio, vfio_iommu_type1   legacy container (/dev/vfio/vfio, TYPE1v2) with
 *                             BDF's group attached; the init script loaded
 *                             exactly one of the two modules
 *   iommufd                   IOMMU_IOAS_MAP/UNMAP on an IOAS the device
 *                             (/dev/vfio/devices/vfioN) is attached to
 *   floor                     /dev/rvfio_floor (bench/floor): pin +
 *                             iommu_map, iommu_unmap + unpin, timed in-kernel
 *   floor_remote, floor_remote_acct   the floor with type1's way of pinning
 *                             (RVFIO_FLOOR_F_REMOTE) and locked_vm charging
 *                             per batch (F_ACCT), for analysis only
 *
 * The case "faults" (bench/fault_bench.c) prints BENCH-FAULT lines instead.
 * Beside those, the nesting rows (case "nesting"): what a VMM with a virtual
 * IOMMU pays per guest IOMMU change, by userspace shadowing (shadow_1,
 * shadow_512: UNMAP_DMA/MAP_DMA of 4 KiB, on the container under test, any
 * backend) and, on rvfio only, with the guest's table bound to a second edu
 * device's group in a nesting container (nest_bind_4k/_2m: bind and unbind
 * of a table covering MIB MiB; nest_inval_1/_512: entries changed and
 * invalidated).
 *
 * One line per case on stdout, machine readable:
 *   BENCH {"backend":..,"case":..,"map_ms":[..],"unmap_ms":[..],...}
 * (the owner-change cases give "move_ms":[..] instead)
 * with every repetition's time (ms) and the physical contiguity of the buffer
 * (pages, runs of physically contiguous pages, largest run, 2 MiB-aligned
 * runs). A case a backend cannot do prints "BENCH-SKIP case why"; a failure
 * "BENCH-ERR case why". Map/unmap times are CLOCK_MONOTONIC around the ioctl,
 * except for the floor, whose times the module measures with ktime.
 */
#define _GNU_SOURCE
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <libgen.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/mman.h>
#include <sys/resource.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include <linux/iommufd.h>
#include <linux/vfio.h>
#include <linux/rvfio.h>	/* include/uapi: the nesting container */

#include "floor/rvfio_floor.h"
#include "fault_bench.h"

#ifndef MAP_HUGE_2MB
#define MAP_HUGE_2MB (21 << 26)
#endif
#ifndef MFD_HUGETLB
#define MFD_HUGETLB 0x0004U
#endif
#ifndef MFD_HUGE_2MB
#define MFD_HUGE_2MB (21U << 26)
#endif

#define PAGE 4096UL
#define HUGE (2UL << 20)
#define IOVA_BASE 0x100000000ULL /* 4 GiB: clear of the MSI window */
#define NR_SMALL 4096
#define MAXREPS 64

static const char *backend;
static int reps = 5;
static size_t size_mib = 256;

/* ---- helpers ---- */

static double now_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return ts.tv_sec * 1e3 + ts.tv_nsec / 1e6;
}

static void die(const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	printf("BENCH-FATAL ");
	vprintf(fmt, ap);
	printf(" (%s)\n", strerror(errno));
	va_end(ap);
	exit(1);
}

/* ---- backends: map/unmap one range; *kns gets the in-kernel time (floor) ---- */

static int container_fd = -1, group_fd = -1, device_fd = -1;
static int iommufd = -1, floor_fd = -1;
static uint32_t ioas_id;
static uint64_t floor_flags;

static int be_map(uint64_t va, uint64_t iova, uint64_t size, unsigned slot, double *kms)
{
	*kms = -1;
	if (!strcmp(backend, "iommufd")) {
		struct iommu_ioas_map m = {
			.size = sizeof(m),
			.flags = IOMMU_IOAS_MAP_FIXED_IOVA | IOMMU_IOAS_MAP_READABLE |
				 IOMMU_IOAS_MAP_WRITEABLE,
			.ioas_id = ioas_id, .user_va = va, .length = size, .iova = iova,
		};
		return ioctl(iommufd, IOMMU_IOAS_MAP, &m) ? -errno : 0;
	}
	if (floor_fd >= 0) {
		struct rvfio_floor_req r = {
			.vaddr = va, .size = size, .iova = iova, .slot = slot, .flags = floor_flags,
		};

		if (ioctl(floor_fd, RVFIO_FLOOR_MAP, &r))
			return -errno;
		*kms = r.total_ns / 1e6;
		return 0;
	}
	struct vfio_iommu_type1_dma_map m = {
		.argsz = sizeof(m),
		.flags = VFIO_DMA_MAP_FLAG_READ | VFIO_DMA_MAP_FLAG_WRITE,
		.vaddr = va, .iova = iova, .size = size,
	};
	return ioctl(container_fd, VFIO_IOMMU_MAP_DMA, &m) ? -errno : 0;
}

static int be_unmap(uint64_t iova, uint64_t size, unsigned slot, double *kms)
{
	*kms = -1;
	if (!strcmp(backend, "iommufd")) {
		struct iommu_ioas_unmap u = {
			.size = sizeof(u), .ioas_id = ioas_id, .iova = iova, .length = size,
		};
		if (ioctl(iommufd, IOMMU_IOAS_UNMAP, &u))
			return -errno;
		return u.length == size ? 0 : -EIO;
	}
	if (floor_fd >= 0) {
		struct rvfio_floor_req r = { .slot = slot };

		if (ioctl(floor_fd, RVFIO_FLOOR_UNMAP, &r))
			return -errno;
		*kms = r.total_ns / 1e6;
		return 0;
	}
	struct vfio_iommu_type1_dma_unmap u = {
		.argsz = sizeof(u), .iova = iova, .size = size,
	};
	if (ioctl(container_fd, VFIO_IOMMU_UNMAP_DMA, &u))
		return -errno;
	return u.size == size ? 0 : -EIO;
}

static void setup(const char *bdf)
{
	char path[512], link[256];
	ssize_t n;

	if (!strncmp(backend, "floor", 5)) {
		if (!strcmp(backend, "floor_remote"))
			floor_flags = RVFIO_FLOOR_F_REMOTE;
		else if (!strcmp(backend, "floor_remote_acct"))
			floor_flags = RVFIO_FLOOR_F_REMOTE | RVFIO_FLOOR_F_ACCT;
		else if (strcmp(backend, "floor"))
			die("unknown floor variant %s", backend);
		floor_fd = open("/dev/rvfio_floor", O_RDWR);
		if (floor_fd < 0)
			die("open /dev/rvfio_floor");
		return;
	}
	if (!strcmp(backend, "iommufd")) {
		char *name = NULL;
		struct iommu_ioas_alloc a = { .size = sizeof(a) };

		iommufd = open("/dev/iommu", O_RDWR);
		if (iommufd < 0)
			die("open /dev/iommu");
		if (ioctl(iommufd, IOMMU_IOAS_ALLOC, &a))
			die("IOMMU_IOAS_ALLOC");
		ioas_id = a.out_ioas_id;
		/* /sys/bus/pci/devices/BDF/vfio-dev/vfioN */
		snprintf(path, sizeof(path), "/sys/bus/pci/devices/%s/vfio-dev", bdf);
		DIR *d = opendir(path);
		struct dirent *e;

		while (d && (e = readdir(d)) && strncmp(e->d_name, "vfio", 4))
			;
		if (!d || !e)
			die("no vfio-dev under %s", path);
		snprintf(link, sizeof(link), "%s", e->d_name);
		closedir(d);
		name = link;
		snprintf(path, sizeof(path), "/dev/vfio/devices/%s", name);
		device_fd = open(path, O_RDWR);
		if (device_fd < 0)
			die("open %s", path);
		struct vfio_device_bind_iommufd b = { .argsz = sizeof(b), .iommufd = iommufd };

		if (ioctl(device_fd, VFIO_DEVICE_BIND_IOMMUFD, &b))
			die("VFIO_DEVICE_BIND_IOMMUFD");
		struct vfio_device_attach_iommufd_pt at = { .argsz = sizeof(at), .pt_id = ioas_id };

		if (ioctl(device_fd, VFIO_DEVICE_ATTACH_IOMMUFD_PT, &at))
			die("VFIO_DEVICE_ATTACH_IOMMUFD_PT");
		return;
	}
	container_fd = open("/dev/vfio/vfio", O_RDWR);
	if (container_fd < 0)
		die("open /dev/vfio/vfio");
	snprintf(path, sizeof(path), "/sys/bus/pci/devices/%s/iommu_group", bdf);
	n = readlink(path, link, sizeof(link) - 1);
	if (n < 0)
		die("readlink %s", path);
	link[n] = 0;
	snprintf(path, sizeof(path), "/dev/vfio/%s", basename(link));
	group_fd = open(path, O_RDWR);
	if (group_fd < 0)
		die("open %s", path);
	struct vfio_group_status st = { .argsz = sizeof(st) };

	if (ioctl(group_fd, VFIO_GROUP_GET_STATUS, &st) || !(st.flags & VFIO_GROUP_FLAGS_VIABLE))
		die("group %s not viable", path);
	if (ioctl(group_fd, VFIO_GROUP_SET_CONTAINER, &container_fd))
		die("VFIO_GROUP_SET_CONTAINER");
	if (ioctl(container_fd, VFIO_SET_IOMMU, VFIO_TYPE1v2_IOMMU))
		die("VFIO_SET_IOMMU TYPE1v2");
	device_fd = ioctl(group_fd, VFIO_GROUP_GET_DEVICE_FD, bdf);
	if (device_fd < 0)
		die("VFIO_GROUP_GET_DEVICE_FD %s", bdf);
}

/* ---- memory and its physical layout ---- */

struct layout {
	size_t pages, runs, largest, huge_runs, adjacent, absent;
};

/* From /proc/self/pagemap (root sees PFNs): physically contiguous runs. */
static struct layout layout_of(void *buf, size_t size)
{
	struct layout l = { .pages = size / PAGE };
	uint64_t *pm = malloc(l.pages * 8);
	int fd = open("/proc/self/pagemap", O_RDONLY);
	size_t i, run = 0;

	if (!pm || fd < 0 ||
	    pread(fd, pm, l.pages * 8, (uintptr_t)buf / PAGE * 8) != (ssize_t)(l.pages * 8)) {
		l.runs = l.largest = (size_t)-1;
		goto out;
	}
	for (i = 0; i < l.pages; i++) {
		uint64_t pfn = pm[i] & ((1ULL << 55) - 1);

		if (!(pm[i] >> 63) || !pfn) {
			l.absent++;
			continue;
		}
		uint64_t prev = i ? pm[i - 1] & ((1ULL << 55) - 1) : 0;

		if (i && (pm[i - 1] >> 63) && (pfn == prev + 1 || pfn + 1 == prev))
			l.adjacent++;
		if (i && (pm[i - 1] >> 63) && pfn == prev + 1) {
			run++;
		} else {
			if (run > l.largest)
				l.largest = run;
			l.runs++;
			run = 1;
		}
	}
	if (run > l.largest)
		l.largest = run;
	/* 2 MiB-aligned IOVA/VA chunks whose 512 pages are one aligned run */
	for (i = 0; i + 512 <= l.pages; i += 512) {
		uint64_t p0 = pm[i] & ((1ULL << 55) - 1);
		size_t k;

		if (((uintptr_t)buf + i * PAGE) % HUGE || p0 % 512 || !(pm[i] >> 63))
			continue;
		for (k = 1; k < 512; k++)
			if ((pm[i + k] & ((1ULL << 55) - 1)) != p0 + k)
				break;
		if (k == 512)
			l.huge_runs++;
	}
out:
	if (fd >= 0)
		close(fd);
	free(pm);
	return l;
}

static void touch(void *buf, size_t size)
{
	for (size_t off = 0; off < size; off += PAGE)
		((volatile char *)buf)[off] = 1;
}

static void *map_anon(size_t size, int advice)
{
	void *p = mmap(NULL, size, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);

	if (p == MAP_FAILED)
		return NULL;
	if (advice >= 0 && madvise(p, size, advice))
		die("madvise");
	return p;
}

/* 2 MiB-aligned anonymous memory with MADV_HUGEPAGE (THP). */
static void *map_thp(size_t size)
{
	char *p = mmap(NULL, size + HUGE, PROT_READ | PROT_WRITE,
		       MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);

	if (p == MAP_FAILED)
		return NULL;
	char *a = (char *)(((uintptr_t)p + HUGE - 1) & ~(HUGE - 1));

	if (a > p)
		munmap(p, a - p);
	munmap(a + size, p + size + HUGE - (a + size));
	if (madvise(a, size, MADV_HUGEPAGE))
		die("madvise(MADV_HUGEPAGE)");
	return a;
}

/*
 * size bytes of 4 KiB pages of which no two neighbours are physically
 * adjacent: fault in twice as much, give every other page back (in address
 * order), then fault in the buffer, which takes the freed pages (the page
 * allocator hands out the most recently freed first) while the other half
 * keeps them from merging. *hold is the other half, to be freed later.
 */
static void *map_fragmented(size_t size, void **hold)
{
	char *h = map_anon(2 * size, MADV_NOHUGEPAGE);
	char *b = map_anon(size, MADV_NOHUGEPAGE);

	if (!h || !b)
		return NULL;
	touch(h, 2 * size);
	for (size_t off = PAGE; off < 2 * size; off += 2 * PAGE)
		madvise(h + off, PAGE, MADV_DONTNEED);
	touch(b, size);
	*hold = h;
	return b;
}

/* ---- measuring ---- */

static int cmp_double(const void *a, const void *b)
{
	double x = *(const double *)a, y = *(const double *)b;

	return x < y ? -1 : x > y;
}

static double median(const double *v, int n)
{
	double s[MAXREPS];

	memcpy(s, v, n * sizeof(*v));
	qsort(s, n, sizeof(*s), cmp_double);
	return n % 2 ? s[n / 2] : (s[n / 2 - 1] + s[n / 2]) / 2;
}

static void print_list(const char *name, const double *v, int n)
{
	printf(",\"%s\":[", name);
	for (int i = 0; i < n; i++)
		printf("%s%.6f", i ? "," : "", v[i]);
	printf("],\"%s_median\":%.6f", name, median(v, n));
}

static void report(const char *cas, const double *map, const double *unmap, int n,
		   struct layout l, const char *extra)
{
	printf("BENCH {\"backend\":\"%s\",\"case\":\"%s\",\"reps\":%d", backend, cas, n);
	print_list("map_ms", map, n);
	print_list("unmap_ms", unmap, n);
	printf(",\"pages\":%zu,\"runs\":%zu,\"largest_run\":%zu,\"huge_runs\":%zu,"
	       "\"adjacent_pairs\":%zu,\"absent\":%zu%s}\n",
	       l.pages, l.runs, l.largest, l.huge_runs, l.adjacent, l.absent, extra ? extra : "");
	fflush(stdout);
}

/* One timed map of [buf, buf+size) at IOVA_BASE, then one timed unmap. */
static int map_unmap_once(void *buf, size_t size, double *map_ms, double *unmap_ms,
			  struct layout *l)
{
	double t0, t1, kms;
	int ret;

	t0 = now_ms();
	ret = be_map((uintptr_t)buf, IOVA_BASE, size, 0, &kms);
	t1 = now_ms();
	if (ret)
		return ret;
	*map_ms = kms >= 0 ? kms : t1 - t0;
	if (l)
		*l = layout_of(buf, size);
	t0 = now_ms();
	ret = be_unmap(IOVA_BASE, size, 0, &kms);
	t1 = now_ms();
	*unmap_ms = kms >= 0 ? kms : t1 - t0;
	return ret;
}

/* The same buffer mapped and unmapped REPS times. */
static void case_same_buffer(const char *cas, void *buf, size_t size, const char *extra)
{
	double map[MAXREPS], unmap[MAXREPS];
	struct layout l;
	int i, ret;

	for (i = 0; i < reps; i++) {
		ret = map_unmap_once(buf, size, &map[i], &unmap[i], i ? NULL : &l);
		if (ret) {
			printf("BENCH-ERR %s rep %d: %s\n", cas, i, strerror(-ret));
			return;
		}
	}
	report(cas, map, unmap, reps, l, extra);
}

static void case_4k_prefault(size_t size)
{
	void *b = map_anon(size, MADV_NOHUGEPAGE);

	if (!b)
		die("mmap");
	touch(b, size);
	case_same_buffer("4k_prefault", b, size, NULL);
	munmap(b, size);
}

/* Fresh, never-touched memory every repetition: the map faults it in. */
static void case_4k_fault(size_t size)
{
	double map[MAXREPS], unmap[MAXREPS];
	struct layout l;
	int i, ret;

	for (i = 0; i < reps; i++) {
		void *b = map_anon(size, MADV_NOHUGEPAGE);

		if (!b)
			die("mmap");
		ret = map_unmap_once(b, size, &map[i], &unmap[i], i ? NULL : &l);
		munmap(b, size);
		if (ret) {
			printf("BENCH-ERR 4k_fault rep %d: %s\n", i, strerror(-ret));
			return;
		}
	}
	report("4k_fault", map, unmap, reps, l, NULL);
}

static void case_4k_frag(size_t size)
{
	void *hold = NULL, *b = map_fragmented(size, &hold);

	if (!b)
		die("mmap");
	case_same_buffer("4k_frag", b, size, NULL);
	munmap(b, size);
	munmap(hold, 2 * size);
}

static void case_thp(size_t size)
{
	void *b = map_thp(size);

	if (!b)
		die("mmap");
	touch(b, size);
	case_same_buffer("thp", b, size, NULL);
	munmap(b, size);
}

static void case_hugetlb(size_t size)
{
	void *b = mmap(NULL, size, PROT_READ | PROT_WRITE,
		       MAP_PRIVATE | MAP_ANONYMOUS | MAP_HUGETLB | MAP_HUGE_2MB, -1, 0);

	if (b == MAP_FAILED) {
		printf("BENCH-ERR hugetlb mmap(MAP_HUGETLB) %zu MiB: %s\n", size >> 20,
		       strerror(errno));
		return;
	}
	touch(b, size);
	case_same_buffer("hugetlb", b, size, NULL);
	munmap(b, size);
}

/* NR_SMALL separate 4 KiB maps (IOVAs 8 KiB apart), then as many unmaps. */
static void case_small_maps(void)
{
	size_t size = NR_SMALL * PAGE;
	double map[MAXREPS], unmap[MAXREPS], umap[MAXREPS], uunmap[MAXREPS], t0, kms, ksum;
	char extra[128];
	char *b = map_anon(size, MADV_NOHUGEPAGE);
	struct layout l;
	int i, k, ret = 0;

	if (!b)
		die("mmap");
	touch(b, size);
	l = layout_of(b, size);
	for (i = 0; i < reps; i++) {
		t0 = now_ms();
		ksum = 0;
		for (k = 0; k < NR_SMALL; k++) {
			ret = be_map((uintptr_t)b + k * PAGE, IOVA_BASE + 2 * k * PAGE, PAGE, k, &kms);
			if (ret)
				goto err;
			ksum += kms;
		}
		umap[i] = now_ms() - t0;
		map[i] = kms >= 0 ? ksum : umap[i];
		t0 = now_ms();
		ksum = 0;
		for (k = 0; k < NR_SMALL; k++) {
			ret = be_unmap(IOVA_BASE + 2 * k * PAGE, PAGE, k, &kms);
			if (ret)
				goto err;
			ksum += kms;
		}
		uunmap[i] = now_ms() - t0;
		unmap[i] = kms >= 0 ? ksum : uunmap[i];
	}
	/* The floor's in-kernel sums leave out 4096 syscalls: give both. */
	snprintf(extra, sizeof(extra), ",\"user_map_ms_median\":%.4f,\"user_unmap_ms_median\":%.4f",
		 median(umap, reps), median(uunmap, reps));
	report("4k_x4096", map, unmap, reps, l, extra);
	munmap(b, size);
	return;
err:
	printf("BENCH-ERR 4k_x4096 rep %d map %d: %s\n", i, k, strerror(-ret));
	/* Leave no mapping behind for the next case. */
	for (k = 0; k < NR_SMALL; k++)
		be_unmap(IOVA_BASE + 2 * k * PAGE, PAGE, k, &kms);
	munmap(b, size);
}

/*
 * A large PFNMAP range: BAR2 of the VM's ivshmem-plain device (1af4:1110,
 * 64 MiB of RAM in QEMU), mmap'd 2 MiB aligned through the device's vfio
 * cdev, which is bound to an iommufd of its own only so that it can be
 * opened (the container under test is not touched). Returns the mapping
 * and its size, or NULL (no such device: the row is skipped).
 */
static void *map_ivshmem_bar(size_t *size)
{
	const char *base = "/sys/bus/pci/devices";
	DIR *d = opendir(base), *vd;
	struct dirent *e, *v;
	char path[512], buf[32];
	int dev = -1, ifd;
	void *bar = NULL;

	while (d && (e = readdir(d))) {
		FILE *f;
		unsigned int ven = 0, did = 0;

		snprintf(path, sizeof(path), "%s/%s/vendor", base, e->d_name);
		if ((f = fopen(path, "r"))) {
			if (fgets(buf, sizeof(buf), f))
				ven = strtoul(buf, NULL, 0);
			fclose(f);
		}
		snprintf(path, sizeof(path), "%s/%s/device", base, e->d_name);
		if ((f = fopen(path, "r"))) {
			if (fgets(buf, sizeof(buf), f))
				did = strtoul(buf, NULL, 0);
			fclose(f);
		}
		if (ven != 0x1af4 || did != 0x1110)
			continue;
		snprintf(path, sizeof(path), "%s/%s/vfio-dev", base, e->d_name);
		vd = opendir(path);
		while (vd && (v = readdir(vd)) && strncmp(v->d_name, "vfio", 4))
			;
		if (vd && v) {
			snprintf(path, sizeof(path), "/dev/vfio/devices/%s", v->d_name);
			dev = open(path, O_RDWR);
		}
		if (vd)
			closedir(vd);
		break;
	}
	if (d)
		closedir(d);
	if (dev < 0)
		return NULL;
	ifd = open("/dev/iommu", O_RDWR);
	struct vfio_device_bind_iommufd b = { .argsz = sizeof(b), .iommufd = ifd };
	struct vfio_region_info ri = { .argsz = sizeof(ri), .index = VFIO_PCI_BAR2_REGION_INDEX };

	if (ifd < 0 || ioctl(dev, VFIO_DEVICE_BIND_IOMMUFD, &b) ||
	    ioctl(dev, VFIO_DEVICE_GET_REGION_INFO, &ri) || !ri.size ||
	    !(ri.flags & VFIO_REGION_INFO_FLAG_MMAP)) {
		printf("BENCH-ERR pfnmap_64m ivshmem BAR2 setup: %s\n", strerror(errno));
		return NULL;
	}
	/* 2 MiB aligned, so that the BAR can be mapped with PMD leaves. */
	char *r = mmap(NULL, ri.size + HUGE, PROT_NONE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);

	if (r == MAP_FAILED)
		return NULL;
	char *a = (char *)(((uintptr_t)r + HUGE - 1) & ~(HUGE - 1));

	bar = mmap(a, ri.size, PROT_READ | PROT_WRITE, MAP_SHARED | MAP_FIXED, dev, ri.offset);
	if (bar == MAP_FAILED) {
		printf("BENCH-ERR pfnmap_64m mmap BAR2: %s\n", strerror(errno));
		return NULL;
	}
	*size = ri.size;
	return bar;
}

static void stats(const char *cas);

/* BAR0 of the device, mmap'd through its vfio fd: a VM_PFNMAP range. */
static void case_pfnmap(void)
{
	struct vfio_region_info ri = { .argsz = sizeof(ri), .index = VFIO_PCI_BAR0_REGION_INDEX };
	double map[MAXREPS], unmap[MAXREPS];
	struct layout l = { 0 };
	char extra[64];
	void *bar;
	int i, ret;

	if (floor_fd >= 0) {
		printf("BENCH-SKIP pfnmap the floor pins pages; a BAR has none\n");
		return;
	}
	if (!strcmp(backend, "iommufd")) {
		printf("BENCH-SKIP pfnmap iommufd in 6.12 cannot map VM_PFNMAP memory\n");
		return;
	}
	if (ioctl(device_fd, VFIO_DEVICE_GET_REGION_INFO, &ri) || !ri.size ||
	    !(ri.flags & VFIO_REGION_INFO_FLAG_MMAP)) {
		printf("BENCH-ERR pfnmap BAR0 region info: %s\n", strerror(errno));
		return;
	}
	bar = mmap(NULL, ri.size, PROT_READ | PROT_WRITE, MAP_SHARED, device_fd, ri.offset);
	if (bar == MAP_FAILED) {
		printf("BENCH-ERR pfnmap mmap BAR0: %s\n", strerror(errno));
		return;
	}
	/* One page, then the whole BAR: does the cost grow with the size? */
	for (int whole = 0; whole < 2; whole++) {
		size_t size = whole ? ri.size : PAGE;
		const char *cas = whole ? "pfnmap_bar" : "pfnmap_4k";
		double m0, u0;

		/* Warm-up (not counted): the first map faults the BAR's PTEs in. */
		ret = map_unmap_once(bar, size, &m0, &u0, NULL);
		/* Instrumented runs: each row's own breakdown, without the warm-up. */
		stats(NULL);
		for (i = 0; i < reps && !ret; i++)
			ret = map_unmap_once(bar, size, &map[i], &unmap[i], NULL);
		stats(cas);
		if (ret) {
			printf("BENCH-ERR %s: %s\n", cas, strerror(-ret));
			continue;
		}
		l.pages = size / PAGE;
		snprintf(extra, sizeof(extra), ",\"bar_bytes\":%llu", (unsigned long long)size);
		report(cas, map, unmap, reps, l, extra);
	}
	munmap(bar, ri.size);

	/* A 64 MiB BAR (16384 pages), when the VM has the ivshmem device. */
	size_t big_size = 0;
	void *big = map_ivshmem_bar(&big_size);

	if (!big) {
		printf("BENCH-SKIP pfnmap_64m no ivshmem-plain device bound to vfio-pci\n");
		return;
	}
	double m0, u0;

	ret = map_unmap_once(big, big_size, &m0, &u0, NULL);
	stats(NULL);
	for (i = 0; i < reps && !ret; i++)
		ret = map_unmap_once(big, big_size, &map[i], &unmap[i], NULL);
	stats("pfnmap_64m");
	if (ret) {
		printf("BENCH-ERR pfnmap_64m: %s\n", strerror(-ret));
		return;
	}
	l.pages = big_size / PAGE;
	snprintf(extra, sizeof(extra), ",\"bar_bytes\":%zu", big_size);
	report("pfnmap_64m", map, unmap, reps, l, extra);
}


/* ---- nesting: guest page-table bind against userspace shadowing ---- */

#define E_OK		0x7ULL			/* present, writable, user */
#define E_PS		(1ULL << 7)
#define NEST_TBL	0x10000000ULL		/* guest-physical: the tables */
#define NEST_RAM	0x40000000ULL		/* guest-physical: the memory, 1 GiB */
#define NEST_OPS	64			/* single invalidations per repetition */

/* Another edu device bound to vfio-pci than @bdf, into @out. */
static bool second_edu(const char *bdf, char *out, size_t len)
{
	const char *base = "/sys/bus/pci/devices";
	DIR *d = opendir(base);
	struct dirent *e;
	bool found = false;

	while (d && !found && (e = readdir(d))) {
		char path[512], buf[32] = "";
		unsigned int ven = 0, did = 0;
		FILE *f;

		if (e->d_name[0] == '.' || !strcmp(e->d_name, bdf))
			continue;
		snprintf(path, sizeof(path), "%s/%s/vendor", base, e->d_name);
		if ((f = fopen(path, "r"))) {
			if (fgets(buf, sizeof(buf), f))
				ven = strtoul(buf, NULL, 0);
			fclose(f);
		}
		snprintf(path, sizeof(path), "%s/%s/device", base, e->d_name);
		if ((f = fopen(path, "r"))) {
			if (fgets(buf, sizeof(buf), f))
				did = strtoul(buf, NULL, 0);
			fclose(f);
		}
		snprintf(path, sizeof(path), "%s/%s/driver/module/drivers/pci:vfio-pci", base,
			 e->d_name);
		if (ven == 0x1234 && did == 0x11e8 && !access(path, F_OK)) {
			snprintf(out, len, "%s", e->d_name);
			found = true;
		}
	}
	if (d)
		closedir(d);
	return found;
}

/* A nesting container with @bdf's group; *gid its IOMMU group id. */
static int nest_container(const char *bdf, int *group, int *gid)
{
	char path[512], link[256];
	ssize_t n;
	int c = open("/dev/vfio/vfio", O_RDWR);

	snprintf(path, sizeof(path), "/sys/bus/pci/devices/%s/iommu_group", bdf);
	n = readlink(path, link, sizeof(link) - 1);
	if (c < 0 || n < 0)
		return -1;
	link[n] = 0;
	*gid = atoi(basename(link));
	snprintf(path, sizeof(path), "/dev/vfio/%d", *gid);
	*group = open(path, O_RDWR);
	if (*group < 0 || ioctl(*group, VFIO_GROUP_SET_CONTAINER, &c) ||
	    ioctl(c, VFIO_SET_IOMMU, VFIO_TYPE1_NESTING_IOMMU))
		return -1;
	return c;
}

static int nest_bind(int c, int gid)
{
	struct iommu_hwpt_vtd_s1 s1 = { .pgtbl_addr = NEST_TBL, .addr_width = 48 };
	struct rvfio_nesting_bind b = {
		.argsz = sizeof(b), .group_id = gid, .data_type = IOMMU_HWPT_DATA_VTD_S1,
		.data_len = sizeof(s1), .data_uptr = (uintptr_t)&s1,
	};

	return ioctl(c, RVFIO_IOMMU_NESTING_BIND, &b) ? -errno : 0;
}

static int nest_unbind(int c, int gid)
{
	struct rvfio_nesting_unbind u = { .argsz = sizeof(u), .group_id = gid };

	return ioctl(c, RVFIO_IOMMU_NESTING_UNBIND, &u) ? -errno : 0;
}

static int nest_inval(int c, int gid, uint64_t iova, uint64_t npages)
{
	struct iommu_hwpt_vtd_s1_invalidate e = { .addr = iova, .npages = npages };
	struct rvfio_nesting_invalidate inv = {
		.argsz = sizeof(inv), .group_id = gid,
		.data_type = IOMMU_HWPT_INVALIDATE_DATA_VTD_S1, .data_uptr = (uintptr_t)&e,
		.entry_len = sizeof(e), .entry_num = 1,
	};

	return ioctl(c, RVFIO_IOMMU_NESTING_INVALIDATE, &inv) ? -errno : 0;
}

/*
 * The guest's table, identity-mapping its memory [NEST_RAM, NEST_RAM + size)
 * with 4 KiB leaves (PT pages after the PD) or 2 MiB ones. Page 0 is the
 * PML4, 1 the PDPT, 2 the PD, 3.. the PTs.
 */
static void nest_table(uint64_t *t, size_t size, bool huge)
{
	size_t n2m = size / HUGE;

	memset(t, 0, (3 + n2m) * PAGE);
	t[0] = (NEST_TBL + PAGE) | E_OK;
	t[512 + NEST_RAM / (1ULL << 30)] = (NEST_TBL + 2 * PAGE) | E_OK;
	for (size_t i = 0; i < n2m; i++) {
		uint64_t gpa = NEST_RAM + i * HUGE;

		if (huge) {
			t[1024 + i] = gpa | E_PS | E_OK;
			continue;
		}
		t[1024 + i] = (NEST_TBL + (3 + i) * PAGE) | E_OK;
		for (size_t k = 0; k < 512; k++)
			t[(3 + i) * 512 + k] = (gpa + k * PAGE) | E_OK;
	}
}

/*
 * Userspace shadowing, what a VMM does per changed guest IOMMU entry today:
 * UNMAP_DMA and MAP_DMA of 4 KiB. shadow_1: the time of one call (NEST_OPS
 * calls timed one by one); shadow_512: 512 maps, then 512 unmaps (totals).
 */
static void case_shadow(void)
{
	double map[MAXREPS], unmap[MAXREPS], t0 = 0, kms;
	struct layout l = { .pages = 512 };
	char *b = map_anon(512 * PAGE, MADV_NOHUGEPAGE);
	int i, k, ret = 0;

	if (!b)
		die("mmap");
	touch(b, 512 * PAGE);
	for (i = 0; i < reps && !ret; i++) {
		double tm = 0, tu = 0;

		for (k = 0; k < NEST_OPS && !ret; k++) {
			t0 = now_ms();
			ret = be_map((uintptr_t)b + k * PAGE, IOVA_BASE + k * PAGE, PAGE, k, &kms);
			tm += kms >= 0 ? kms : now_ms() - t0;
			t0 = now_ms();
			if (!ret)
				ret = be_unmap(IOVA_BASE + k * PAGE, PAGE, k, &kms);
			tu += kms >= 0 ? kms : now_ms() - t0;
		}
		map[i] = tm / NEST_OPS;
		unmap[i] = tu / NEST_OPS;
	}
	if (!ret)
		report("shadow_1", map, unmap, reps, l, NULL);
	for (i = 0; i < reps && !ret; i++) {
		double tm = 0, tu = 0;

		t0 = now_ms();
		for (k = 0; k < 512 && !ret; k++) {
			ret = be_map((uintptr_t)b + k * PAGE, IOVA_BASE + k * PAGE, PAGE, k, &kms);
			tm += kms;
		}
		map[i] = kms >= 0 ? tm : now_ms() - t0;
		t0 = now_ms();
		for (k = 0; k < 512 && !ret; k++) {
			ret = be_unmap(IOVA_BASE + k * PAGE, PAGE, k, &kms);
			tu += kms;
		}
		unmap[i] = kms >= 0 ? tu : now_ms() - t0;
	}
	if (ret)
		printf("BENCH-ERR shadow rep %d: %s\n", i, strerror(-ret));
	else
		report("shadow_512", map, unmap, reps, l, NULL);
	munmap(b, 512 * PAGE);
}

static void case_nesting(const char *bdf, size_t size)
{
	double map[MAXREPS], unmap[MAXREPS], t0;
	char other[300], extra[96];
	struct layout l = { 0 };
	size_t tsize = (3 + size / HUGE) * PAGE;
	uint64_t *t;
	char *ram;
	bool huge = true;
	int c, group = -1, gid = -1, i, k, ret = 0;

	case_shadow();
	if (strcmp(backend, "rvfio")) {
		printf("BENCH-SKIP nest_bind_4k %s has no stage-1 bind\n", backend);
		return;
	}
	if (!second_edu(bdf, other, sizeof(other))) {
		printf("BENCH-SKIP nest_bind_4k no second edu device bound to vfio-pci\n");
		return;
	}
	c = nest_container(other, &group, &gid);
	if (c < 0) {
		printf("BENCH-ERR nest_bind_4k nesting container on %s: %s\n", other,
		       strerror(errno));
		return;
	}
	/* The guest's memory: hugetlb like a VMM's, 4 KiB pages if none. */
	ram = mmap(NULL, size, PROT_READ | PROT_WRITE,
		   MAP_PRIVATE | MAP_ANONYMOUS | MAP_HUGETLB | MAP_HUGE_2MB, -1, 0);
	if (ram == MAP_FAILED) {
		huge = false;
		ram = map_anon(size, MADV_NOHUGEPAGE);
	}
	t = (uint64_t *)map_anon(tsize, MADV_NOHUGEPAGE);
	if (!ram || !t)
		die("mmap");
	touch(ram, size);
	nest_table(t, size, false);
	struct vfio_iommu_type1_dma_map m = {
		.argsz = sizeof(m), .flags = VFIO_DMA_MAP_FLAG_READ | VFIO_DMA_MAP_FLAG_WRITE,
		.vaddr = (uintptr_t)t, .iova = NEST_TBL, .size = tsize,
	};
	if (ioctl(c, VFIO_IOMMU_MAP_DMA, &m))
		die("MAP_DMA nesting tables");
	m.vaddr = (uintptr_t)ram;
	m.iova = NEST_RAM;
	m.size = size;
	if (ioctl(c, VFIO_IOMMU_MAP_DMA, &m))
		die("MAP_DMA nesting memory");
	l = layout_of(ram, size);
	snprintf(extra, sizeof(extra), ",\"stage2\":\"%s\",\"leaves\":%zu",
		 huge ? "hugetlb" : "4k", size / PAGE);

	/* Bind and unbind, 4 KiB leaves, then 2 MiB leaves. */
	for (int big = 0; big < 2; big++) {
		nest_table(t, size, big);
		for (i = 0; i < reps && !ret; i++) {
			t0 = now_ms();
			ret = nest_bind(c, gid);
			map[i] = now_ms() - t0;
			t0 = now_ms();
			if (!ret)
				ret = nest_unbind(c, gid);
			unmap[i] = now_ms() - t0;
		}
		if (ret) {
			printf("BENCH-ERR nest_bind: %s\n", strerror(-ret));
			goto out;
		}
		snprintf(extra, sizeof(extra), ",\"stage2\":\"%s\",\"leaves\":%zu",
			 huge ? "hugetlb" : "4k", big ? size / HUGE : size / PAGE);
		report(big ? "nest_bind_2m" : "nest_bind_4k", map, unmap, reps, l, extra);
	}

	/*
	 * Invalidations on the 4 KiB table: an entry made not present and
	 * invalidated ("unmap"), made present again and invalidated ("map").
	 */
	nest_table(t, size, false);
	ret = nest_bind(c, gid);
	for (i = 0; i < reps && !ret; i++) {
		double tm = 0, tu = 0;

		for (k = 0; k < NEST_OPS && !ret; k++) {
			uint64_t *pte = &t[3 * 512 + 7 * k];
			uint64_t iova = NEST_RAM + 7 * k * PAGE, keep = *pte;

			*pte = 0;
			t0 = now_ms();
			ret = nest_inval(c, gid, iova, 1);
			tu += now_ms() - t0;
			*pte = keep;
			t0 = now_ms();
			if (!ret)
				ret = nest_inval(c, gid, iova, 1);
			tm += now_ms() - t0;
		}
		map[i] = tm / NEST_OPS;
		unmap[i] = tu / NEST_OPS;
	}
	if (ret) {
		printf("BENCH-ERR nest_inval_1: %s\n", strerror(-ret));
		goto out;
	}
	report("nest_inval_1", map, unmap, reps, l, NULL);
	/* 512 entries: a whole PT page, one invalidation of 512 pages. */
	for (i = 0; i < reps && !ret; i++) {
		uint64_t *pt = &t[(3 + i % (size / HUGE)) * 512];
		uint64_t iova = NEST_RAM + (i % (size / HUGE)) * HUGE, keep[512];

		memcpy(keep, pt, sizeof(keep));
		memset(pt, 0, sizeof(keep));
		t0 = now_ms();
		ret = nest_inval(c, gid, iova, 512);
		unmap[i] = now_ms() - t0;
		memcpy(pt, keep, sizeof(keep));
		t0 = now_ms();
		if (!ret)
			ret = nest_inval(c, gid, iova, 512);
		map[i] = now_ms() - t0;
	}
	if (ret) {
		printf("BENCH-ERR nest_inval_512: %s\n", strerror(-ret));
		goto out;
	}
	report("nest_inval_512", map, unmap, reps, l, NULL);
	nest_unbind(c, gid);
out:
	close(group);
	close(c);
	munmap(t, tsize);
	munmap(ram, size);
}

/*
 * DMA owner change (issue 15): the owner of every mapping of a container
 * moves to another live process, which maps the same memfd at its own
 * address, and back, REPS times each way of doing it:
 *   _call    one RVFIO_IOMMU_CHANGE_DMA_OWNER for all mappings (rvfio only)
 *   _vaddr   type1's way: UNMAP_DMA with VFIO_DMA_UNMAP_FLAG_VADDR and
 *            MAP_DMA with VFIO_DMA_MAP_FLAG_VADDR for every mapping
 * Each repetition is one real move between two processes (the bench and a
 * child, in turn), timed in the caller. Both map the memory pre-faulted,
 * so neither way pays for page-table population. The memory: a 2 GiB memfd
 * of 4 KiB pages, and a 256 MiB hugetlbfs memfd (2 MiB pages; smaller so
 * that it fits the bench VM's 160 hugepages), each in mappings of
 * OWNER_MAP bytes, far below dma_entry_limit.
 */
#define OWNER_MAP	(32UL << 20)
#define OWNER_MAX_MAPS	64

struct owner_cmd {
	int way;		/* 0: one call, 1: the VADDR pair per mapping, -1: quit */
};

struct owner_res {
	int err;
	double ms;
};

/* Makes the calling process the owner of the n mappings, its memory at va. */
static int owner_move(int way, uint64_t va, unsigned int n, double *ms)
{
	struct rvfio_dma_owner_entry e[OWNER_MAX_MAPS];
	struct rvfio_change_dma_owner a = {
		.argsz = sizeof(a), .count = n, .entries = (uintptr_t)e,
	};
	double t0;
	unsigned int i;

	for (i = 0; i < n; i++) {
		e[i].iova = IOVA_BASE + i * OWNER_MAP;
		e[i].vaddr = va + i * OWNER_MAP;
	}
	t0 = now_ms();
	if (way == 0) {
		if (ioctl(container_fd, RVFIO_IOMMU_CHANGE_DMA_OWNER, &a))
			return -errno;
		*ms = now_ms() - t0;
		return 0;
	}
	for (i = 0; i < n; i++) {
		struct vfio_iommu_type1_dma_unmap u = {
			.argsz = sizeof(u), .flags = VFIO_DMA_UNMAP_FLAG_VADDR,
			.iova = e[i].iova, .size = OWNER_MAP,
		};
		struct vfio_iommu_type1_dma_map m = {
			.argsz = sizeof(m), .flags = VFIO_DMA_MAP_FLAG_VADDR,
			.vaddr = e[i].vaddr, .iova = e[i].iova, .size = OWNER_MAP,
		};

		if (ioctl(container_fd, VFIO_IOMMU_UNMAP_DMA, &u) ||
		    ioctl(container_fd, VFIO_IOMMU_MAP_DMA, &m))
			return -errno;
	}
	*ms = now_ms() - t0;
	return 0;
}

/* The other process: maps the memfd, then moves the mappings to itself when told. */
static void __attribute__((noreturn)) owner_child(int fd, size_t size, unsigned int n, int in,
						  int out)
{
	struct owner_res res = { 0 };
	struct owner_cmd cmd;
	void *m = mmap(NULL, size, PROT_READ | PROT_WRITE, MAP_SHARED | MAP_POPULATE, fd, 0);

	res.err = m == MAP_FAILED ? -errno : 0;
	if (write(out, &res, sizeof(res)) != sizeof(res) || res.err)
		_exit(1);
	while (read(in, &cmd, sizeof(cmd)) == sizeof(cmd) && cmd.way >= 0) {
		res.err = owner_move(cmd.way, (uintptr_t)m, n, &res.ms);
		if (write(out, &res, sizeof(res)) != sizeof(res))
			_exit(1);
	}
	_exit(0);
}

static void report_moves(const char *cas, const double *ms, int n, struct layout l,
			 unsigned int maps, size_t size)
{
	printf("BENCH {\"backend\":\"%s\",\"case\":\"%s\",\"reps\":%d", backend, cas, n);
	print_list("move_ms", ms, n);
	printf(",\"mappings\":%u,\"bytes\":%zu,\"pages\":%zu,\"runs\":%zu,\"largest_run\":%zu,"
	       "\"huge_runs\":%zu,\"adjacent_pairs\":%zu,\"absent\":%zu}\n",
	       maps, size, l.pages, l.runs, l.largest, l.huge_runs, l.adjacent, l.absent);
	fflush(stdout);
}

static void case_owner_one(const char *name, size_t size, bool huge)
{
	static const char *const way_name[2] = { "call", "vaddr" };
	unsigned int n = size / OWNER_MAP, i;
	int fd, to[2], from[2], k = 0, way, ret = 0;
	bool child_owns = false, way_ok[2] = { false, false };
	double ms[2][MAXREPS];
	struct owner_res res;
	struct layout l;
	char cas[64];
	pid_t pid;
	void *m;

	fd = memfd_create(name, huge ? MFD_HUGETLB | MFD_HUGE_2MB : 0);
	if (fd < 0 || ftruncate(fd, size)) {
		printf("BENCH-ERR %s memfd of %zu MiB: %s\n", name, size >> 20, strerror(errno));
		if (fd >= 0)
			close(fd);
		return;
	}
	m = mmap(NULL, size, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
	if (m == MAP_FAILED) {
		printf("BENCH-ERR %s mmap: %s\n", name, strerror(errno));
		close(fd);
		return;
	}
	touch(m, size);
	l = layout_of(m, size);
	for (i = 0; i < n && !ret; i++) {
		double kms;

		ret = be_map((uintptr_t)m + i * OWNER_MAP, IOVA_BASE + i * OWNER_MAP, OWNER_MAP, i,
			     &kms);
	}
	if (ret || pipe(to) || pipe(from)) {
		printf("BENCH-ERR %s setup (MAP_DMA %u of %u): %s\n", name, i, n,
		       strerror(ret ? -ret : errno));
		goto out;
	}
	pid = fork();
	if (pid == 0) {
		close(to[1]);
		close(from[0]);
		owner_child(fd, size, n, to[0], from[1]);
	}
	close(to[0]);
	close(from[1]);
	if (pid < 0 || read(from[0], &res, sizeof(res)) != sizeof(res) || res.err) {
		printf("BENCH-ERR %s the other process did not map the memory\n", name);
		goto out_child;
	}
	for (way = 0; way < 2; way++) {
		int r;

		for (r = 0; r < reps; r++, k++) {
			struct owner_cmd cmd = { .way = way };

			/* Every other move is the child's: the owner alternates. */
			if (k % 2 == 0) {
				if (write(to[1], &cmd, sizeof(cmd)) != sizeof(cmd) ||
				    read(from[0], &res, sizeof(res)) != sizeof(res))
					res.err = -EPIPE;
			} else {
				res.err = owner_move(way, (uintptr_t)m, n, &res.ms);
			}
			if (res.err)
				break;
			child_owns = k % 2 == 0;
			ms[way][r] = res.ms;
		}
		snprintf(cas, sizeof(cas), "%s_%s", name, way_name[way]);
		if (res.err == -ENOTTY && way == 0 && r == 0) {
			printf("BENCH-SKIP %s %s has no RVFIO_IOMMU_CHANGE_DMA_OWNER (ENOTTY)\n",
			       cas, backend);
			continue;
		}
		if (res.err) {
			printf("BENCH-ERR %s rep %d: %s\n", cas, r, strerror(-res.err));
			break;
		}
		way_ok[way] = true;
		report_moves(cas, ms[way], reps, l, n, size);
	}
	/* Back to this process, untimed, so that UNMAP finds its owner alive. */
	if (child_owns) {
		double t;

		ret = owner_move(way_ok[0] ? 0 : 1, (uintptr_t)m, n, &t);
		if (ret)
			printf("BENCH-ERR %s moving back: %s\n", name, strerror(-ret));
	}
out_child:
	{
		struct owner_cmd quit = { .way = -1 };

		if (write(to[1], &quit, sizeof(quit)) < 0)
			kill(pid, SIGKILL);
		close(to[1]);
		close(from[0]);
		waitpid(pid, NULL, 0);
	}
out:
	for (i = 0; i < n; i++) {
		double kms;

		be_unmap(IOVA_BASE + i * OWNER_MAP, OWNER_MAP, i, &kms);
	}
	munmap(m, size);
	close(fd);
}

static void case_owner(void)
{
	if (floor_fd >= 0 || !strcmp(backend, "iommufd")) {
		const char *why = floor_fd >= 0 ? "the floor has no owner to change" :
			"6.12 has no IOMMU_IOAS_CHANGE_PROCESS (6.13, and only for IOMMU_IOAS_MAP_FILE)";

		printf("BENCH-SKIP owner_4k_2g_call %s\n", why);
		printf("BENCH-SKIP owner_4k_2g_vaddr %s\n", why);
		printf("BENCH-SKIP owner_2m_256m_call %s\n", why);
		printf("BENCH-SKIP owner_2m_256m_vaddr %s\n", why);
		return;
	}
	case_owner_one("owner_4k_2g", 2048UL << 20, false);
	case_owner_one("owner_2m_256m", 256UL << 20, true);
}

/*
 * An instrumented rvfio (RVFIO_INSTRUMENT=1 scripts/bench.sh, see
 * bench/instrument_glue.py) counts and times its C calls: print them per
 * case ("BENCH-STATS case name calls=.. pages=.. ns=.."), then reset.
 */
static void stats(const char *cas)
{
	static const char *p = "/sys/module/rvfio/parameters/bench_stats";
	char line[256];
	FILE *f;

	if (cas && (f = fopen(p, "r"))) {
		while (fgets(line, sizeof(line), f))
			printf("BENCH-STATS %s %s", cas, line);
		fclose(f);
	}
	if ((f = fopen(p, "w"))) {
		fputs("0\n", f);
		fclose(f);
	}
}

int main(int argc, char **argv)
{
	struct rlimit unlimited = { RLIM_INFINITY, RLIM_INFINITY };
	const char *only = getenv("BENCH_CASES");
	size_t size;

	if (argc < 3) {
		fprintf(stderr, "usage: %s rvfio|vfio_iommu_type1|iommufd|floor BDF [REPS] [MIB]\n",
			argv[0]);
		return 2;
	}
	backend = argv[1];
	if (argc > 3)
		reps = atoi(argv[3]);
	if (argc > 4)
		size_mib = strtoul(argv[4], NULL, 0);
	if (reps < 1 || reps > MAXREPS)
		reps = 5;
	size = size_mib << 20;
	setrlimit(RLIMIT_MEMLOCK, &unlimited);
	setvbuf(stdout, NULL, _IOLBF, 0);
	/* iommufd's mock device, without VT-d: the fault case only. */
	if (!strcmp(backend, "iommufd-mock")) {
		printf("BENCH-INFO backend=%s reps=%d\n", backend, reps);
		case_faults(backend, reps);
		printf("BENCH-DONE\n");
		return 0;
	}
	setup(argv[2]);
	printf("BENCH-INFO backend=%s bdf=%s reps=%d size_mib=%zu\n", backend, argv[2], reps,
	       size_mib);

#define RUN(name, call) \
	do { \
		if (!only || strstr(only, name)) { \
			double _t = now_ms(); \
			stats(NULL); \
			call; \
			printf("BENCH-INFO case %s took %.0f ms\n", name, now_ms() - _t); \
			stats(name); \
		} \
	} while (0)
	RUN("4k_prefault", case_4k_prefault(size));
	RUN("4k_fault", case_4k_fault(size));
	RUN("thp", case_thp(size));
	RUN("hugetlb", case_hugetlb(size));
	RUN("4k_x4096", case_small_maps());
	RUN("pfnmap", case_pfnmap());
	RUN("owner", case_owner());
	/* DMA faults through rvfio's ring and iommufd's queue (fault_bench.c). */
	RUN("faults", case_faults(backend, reps));
	RUN("nesting", case_nesting(argv[2], size));
	/* Last: it leaves the page allocator's free lists scattered. */
	RUN("4k_frag", case_4k_frag(size));
	printf("BENCH-DONE\n");
	return 0;
}
