// SPDX-License-Identifier: GPL-2.0
/*
 * params_test - the module parameters of the loaded backend
 * (/sys/module/$VFIO_BACKEND/parameters/), which must be type1's:
 *   allow_unsafe_interrupts  bool 0644, default N
 *   disable_hugepages        bool 0644, default N: when set, every IOMMU
 *                            mapping is made one 4 KiB page at a time
 *   dma_entry_limit          uint 0644, default 65535: mappings per
 *                            container, taken when the container gets its
 *                            IOMMU (SET_IOMMU), shown as the DMA_AVAIL cap
 * Every test that changes a parameter restores it in a teardown that runs in
 * the harness's parent process, so even a crashed test leaves the old value.
 *
 * The page-table checks read the Intel IOMMU's debugfs dump of the device's
 * domain (/sys/kernel/debug/iommu/intel/<bdf>/domain_translation_struct,
 * drivers/iommu/intel/debugfs.c): one line per leaf entry,
 *	"0x<iova pfn, 13 digits> |\t<PML5E>\t<PML4E>\t<PDPE>[\t<PDE>[\t<PTE>]]"
 * so a 2 MiB leaf is a line ending at its PDE (bit 7, PS, set) and a 4 KiB
 * leaf a line with a PTE.
 */
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include "kselftest_harness.h"
#include "edu_fixture.h"
#include "iommu_pt.h"

#define HUGE_IOVA	0x40000000ull	/* 1 GiB: 2 MiB aligned */

static int param_path(char *buf, size_t len, const char *be, const char *p)
{
	return snprintf(buf, len, "/sys/module/%s/parameters/%s", be, p);
}

/* The raw text of a parameter without the newline, or -errno. */
static int param_read_str(const char *be, const char *p, char *out, size_t len)
{
	char path[256];
	ssize_t n;
	int fd;

	param_path(path, sizeof(path), be, p);
	fd = open(path, O_RDONLY | O_CLOEXEC);
	if (fd < 0)
		return -errno;
	n = read(fd, out, len - 1);
	close(fd);
	if (n < 0)
		return -errno;
	out[n] = '\0';
	if (n && out[n - 1] == '\n')
		out[n - 1] = '\0';
	return 0;
}

/* write(2) of text to a parameter: 0 or -errno of the write. */
static int param_write_str(const char *be, const char *p, const char *text)
{
	char path[256];
	ssize_t n;
	int fd;

	param_path(path, sizeof(path), be, p);
	fd = open(path, O_WRONLY | O_CLOEXEC);
	if (fd < 0)
		return -errno;
	n = write(fd, text, strlen(text));
	n = n < 0 ? -errno : 0;
	close(fd);
	return n;
}

/* A bool parameter: 1 (Y), 0 (N) or -errno. */
static int param_read_bool(const char *be, const char *p)
{
	char s[16];
	int ret = param_read_str(be, p, s, sizeof(s));

	if (ret)
		return ret;
	if (!strcmp(s, "Y") || !strcmp(s, "1"))
		return 1;
	if (!strcmp(s, "N") || !strcmp(s, "0"))
		return 0;
	return -EINVAL;
}

static uint32_t dma_avail(int c)
{
	const struct vfio_iommu_type1_info_dma_avail *a;
	struct vfio_iommu_type1_info *info = vfio_get_info(c);
	uint32_t v = UINT32_MAX;

	if (!info)
		return v;
	a = (const void *)vfio_info_cap(info, VFIO_IOMMU_TYPE1_INFO_DMA_AVAIL);
	if (a)
		v = a->avail;
	free(info);
	return v;
}

FIXTURE(params) {
	char be[64];
	long old_limit;
	int old_dh;
	bool have_limit, have_dh;
	struct edu dev;
};

FIXTURE_SETUP(params)
{
	const char *be = getenv("VFIO_BACKEND");

	self->have_limit = self->have_dh = false;
	self->dev.container = self->dev.group = self->dev.device = -1;
	self->dev.bar0 = NULL;
	if (!be || !be[0])
		SKIP(return, "VFIO_BACKEND is not set");
	snprintf(self->be, sizeof(self->be), "%s", be);
	ASSERT_EQ(0, module_param_read(be, "dma_entry_limit", &self->old_limit))
		TH_LOG("no /sys/module/%s/parameters/dma_entry_limit", be);
	self->have_limit = true;
	self->old_dh = param_read_bool(be, "disable_hugepages");
	ASSERT_GE(self->old_dh, 0) TH_LOG("no readable %s disable_hugepages", be);
	self->have_dh = true;
}

/* In the harness's process: runs even if the test process died. */
FIXTURE_TEARDOWN_PARENT(params)
{
	if (self->have_limit) {
		EXPECT_EQ(0, module_param_write(self->be, "dma_entry_limit", self->old_limit));
	}
	if (self->have_dh) {
		EXPECT_EQ(0, param_write_str(self->be, "disable_hugepages",
					     self->old_dh ? "1" : "0"));
	}
}

#define OPEN_EDU(e) do { \
	char __err[256] = ""; \
	if (edu_count() < 1) \
		SKIP(return, "needs an edu device in EDU_BDFS"); \
	ASSERT_EQ(0, edu_open((e), edu_bdf(0), -1, VFIO_TYPE1v2_IOMMU, __err, sizeof(__err))) \
		TH_LOG("%s", __err); \
} while (0)

/* The three parameters exist with type1's permissions and defaults. */
TEST_F(params, exist_with_type1_defaults_and_modes)
{
	static const char * const names[] = {
		"allow_unsafe_interrupts", "disable_hugepages", "dma_entry_limit",
	};
	char path[256], s[32];
	struct stat st;

	for (int i = 0; i < 3; i++) {
		param_path(path, sizeof(path), self->be, names[i]);
		ASSERT_EQ(0, stat(path, &st)) TH_LOG("%s: %s", path, strerror(errno));
		EXPECT_EQ(0644, st.st_mode & 07777) TH_LOG("%s mode %o", path, st.st_mode & 07777);
	}
	EXPECT_EQ(0, param_read_bool(self->be, "allow_unsafe_interrupts"));
	ASSERT_EQ(0, param_read_str(self->be, "allow_unsafe_interrupts", s, sizeof(s)));
	EXPECT_STREQ("N", s);
	EXPECT_EQ(0, self->old_dh);
	ASSERT_EQ(0, param_read_str(self->be, "disable_hugepages", s, sizeof(s)));
	EXPECT_STREQ("N", s);
	EXPECT_EQ(65535, self->old_limit);
	ASSERT_EQ(0, param_read_str(self->be, "dma_entry_limit", s, sizeof(s)));
	EXPECT_STREQ("65535", s);
}

/* Bad values are refused with EINVAL and change nothing; bools take Y/N/1/0. */
TEST_F(params, bad_values_refused)
{
	char s[32];

	EXPECT_EQ(-EINVAL, param_write_str(self->be, "dma_entry_limit", "abc"));
	EXPECT_EQ(-EINVAL, param_write_str(self->be, "dma_entry_limit", "-1"));
	EXPECT_EQ(-EINVAL, param_write_str(self->be, "disable_hugepages", "maybe"));
	ASSERT_EQ(0, param_read_str(self->be, "dma_entry_limit", s, sizeof(s)));
	EXPECT_EQ(self->old_limit, atol(s));
	EXPECT_EQ(self->old_dh, param_read_bool(self->be, "disable_hugepages"));
	ASSERT_EQ(0, param_write_str(self->be, "disable_hugepages", "Y"));
	EXPECT_EQ(1, param_read_bool(self->be, "disable_hugepages"));
	ASSERT_EQ(0, param_write_str(self->be, "disable_hugepages", "0"));
	EXPECT_EQ(0, param_read_bool(self->be, "disable_hugepages"));
	ASSERT_EQ(0, param_write_str(self->be, "dma_entry_limit", "1234\n"));
	ASSERT_EQ(0, param_read_str(self->be, "dma_entry_limit", s, sizeof(s)));
	EXPECT_STREQ("1234", s);
}

/*
 * dma_entry_limit = N: a container set up afterwards takes N mappings,
 * ENOSPC for the next, DMA_AVAIL counts down to 0 and back up on UNMAP. A
 * container that got its IOMMU before the change keeps the old limit.
 */
TEST_F(params, dma_entry_limit_bounds_new_containers)
{
	const int N = 5;
	uint8_t *buf = alloc_pages_4k(8 * PAGE_4K, 0);
	struct edu *e = &self->dev;
	uint32_t avail_old;
	uint64_t n;

	ASSERT_NE(MAP_FAILED, buf);
	OPEN_EDU(e);
	avail_old = dma_avail(e->container);
	EXPECT_EQ((uint32_t)self->old_limit, avail_old);
	ASSERT_EQ(0, module_param_write(self->be, "dma_entry_limit", N));
	/* The existing container: unchanged, and it can map more than N. */
	EXPECT_EQ(avail_old, dma_avail(e->container));
	for (int i = 0; i < N + 1; i++) {
		ASSERT_EQ(0, vfio_map(e->container, SZ_1M * (i + 1), buf + i * PAGE_4K, PAGE_4K, RW))
			TH_LOG("old container, mapping %d", i);
	}
	EXPECT_EQ(avail_old - (N + 1), dma_avail(e->container));
	edu_close(e);

	/* A new container: N. */
	OPEN_EDU(e);
	EXPECT_EQ((uint32_t)N, dma_avail(e->container));
	for (int i = 0; i < N; i++) {
		ASSERT_EQ(0, vfio_map(e->container, SZ_1M * (i + 1), buf + i * PAGE_4K, PAGE_4K, RW))
			TH_LOG("mapping %d of %d", i, N);
		EXPECT_EQ((uint32_t)(N - i - 1), dma_avail(e->container));
	}
	EXPECT_EQ(-ENOSPC, vfio_map(e->container, SZ_4G, buf + N * PAGE_4K, PAGE_4K, RW));
	EXPECT_EQ(0, dma_avail(e->container));
	n = 0;
	ASSERT_EQ(0, vfio_unmap(e->container, 2 * SZ_1M, PAGE_4K, 0, &n));
	EXPECT_EQ(PAGE_4K, n);
	EXPECT_EQ(1, dma_avail(e->container));
	ASSERT_EQ(0, vfio_map(e->container, SZ_4G, buf + N * PAGE_4K, PAGE_4K, RW));
	EXPECT_EQ(0, dma_avail(e->container));
	EXPECT_EQ(-ENOSPC, vfio_map(e->container, SZ_4G + SZ_1M, buf + 7 * PAGE_4K, PAGE_4K, RW));
	n = 0;
	ASSERT_EQ(0, vfio_unmap_all(e->container, &n));
	EXPECT_EQ(N * PAGE_4K, n);
	EXPECT_EQ((uint32_t)N, dma_avail(e->container));
	edu_close(e);

	/* Limit 0: nothing can be mapped. */
	ASSERT_EQ(0, module_param_write(self->be, "dma_entry_limit", 0));
	OPEN_EDU(e);
	EXPECT_EQ(0, dma_avail(e->container));
	EXPECT_EQ(-ENOSPC, vfio_map(e->container, SZ_1M, buf, PAGE_4K, RW));
	edu_close(e);
	munmap(buf, 8 * PAGE_4K);
}

/* The container's VFIO_IOMMU_INFO_PGSIZES, or 0 (errno set) when GET_INFO fails. */
static uint64_t iova_pgsizes(int c)
{
	struct vfio_iommu_type1_info *info = vfio_get_info(c);
	uint64_t pgsizes;

	if (!info)
		return 0;
	pgsizes = info->iova_pgsizes;
	free(info);
	return pgsizes;
}

/*
 * One 2 MiB hugetlbfs page, mapped at HUGE_IOVA; returns the buffer or
 * MAP_FAILED (no free hugepage).
 */
static void *huge_page(void)
{
	void *p = mmap(NULL, SZ_2M, PROT_READ | PROT_WRITE,
		       MAP_PRIVATE | MAP_ANONYMOUS | MAP_HUGETLB, -1, 0);

	if (p != MAP_FAILED)
		memset(p, 0x5a, SZ_2M);
	return p;
}

/* The device copies page 0 -> page 511 of the hugepage through the IOMMU. */
static void huge_dma_check(struct __test_metadata *_metadata, struct edu *e, uint8_t *hp)
{
	uint32_t seed = random_seed();

	fill_pattern(hp, PAGE_4K, seed);
	memset(hp + 511 * PAGE_4K, 0, PAGE_4K);
	ASSERT_EQ(0, edu_copy(e, HUGE_IOVA, HUGE_IOVA + 511 * PAGE_4K, PAGE_4K));
	EXPECT_EQ(-1, check_pattern(hp + 511 * PAGE_4K, PAGE_4K, seed));
}

/*
 * disable_hugepages=1: a 2 MiB-aligned, physically contiguous hugetlbfs page
 * mapped at a 2 MiB-aligned IOVA is still mapped with 512 4 KiB PTEs.
 */
TEST_F_TIMEOUT(params, disable_hugepages_maps_4k_ptes, DMA_TEST_TIMEOUT)
{
	static struct iommu_leaf lv[600];
	char why[300] = "";
	struct edu *e = &self->dev;
	uint8_t *hp;
	uint64_t n;
	int cnt;

	hp = huge_page();
	if (hp == MAP_FAILED)
		SKIP(return, "no free 2 MiB hugepage (MAP_HUGETLB: %s)", strerror(errno));
	OPEN_EDU(e);
	ASSERT_EQ(0, param_write_str(self->be, "disable_hugepages", "1"));
	ASSERT_EQ(0, vfio_map(e->container, HUGE_IOVA, hp, SZ_2M, RW));
	cnt = iommu_read_leaves(e->bdf, HUGE_IOVA, SZ_2M, lv, 600, why, sizeof(why));
	if (cnt == -ENOENT || cnt == -ENODATA)
		SKIP(return, "intel IOMMU debugfs cannot show the domain: %s", why);
	ASSERT_GE(cnt, 0) TH_LOG("%s", why);
	EXPECT_EQ(512, cnt) TH_LOG("leaf entries for the 2 MiB range");
	for (int i = 0; i < cnt && i < 600; i++) {
		EXPECT_EQ(5, lv[i].nvals) TH_LOG("pfn %#llx is not a 4 KiB PTE (%d levels)",
						 (unsigned long long)lv[i].pfn, lv[i].nvals);
		if (lv[i].nvals != 5)
			break;
		EXPECT_EQ(0, lv[i].val[3] & VTD_PS);
		EXPECT_NE(0, lv[i].val[4] & 3) TH_LOG("PTE without R/W");
	}
	huge_dma_check(_metadata, e, hp);
	n = 0;
	ASSERT_EQ(0, vfio_unmap(e->container, HUGE_IOVA, SZ_2M, 0, &n));
	EXPECT_EQ(SZ_2M, n);
	cnt = iommu_read_leaves(e->bdf, HUGE_IOVA, SZ_2M, lv, 600, why, sizeof(why));
	EXPECT_EQ(0, cnt) TH_LOG("entries left after UNMAP");
	edu_close(e);
	munmap(hp, SZ_2M);
}

/*
 * disable_hugepages=0 (the default): the same page is mapped with one 2 MiB
 * leaf (a PDE with PS set), if the IOMMU offers 2 MiB pages.
 */
TEST_F_TIMEOUT(params, hugepages_map_2m_leaf, DMA_TEST_TIMEOUT)
{
	static struct iommu_leaf lv[600];
	char why[300] = "";
	struct edu *e = &self->dev;
	uint64_t pgsizes, n;
	uint8_t *hp;
	int cnt;

	hp = huge_page();
	if (hp == MAP_FAILED)
		SKIP(return, "no free 2 MiB hugepage (MAP_HUGETLB: %s)", strerror(errno));
	OPEN_EDU(e);
	pgsizes = iova_pgsizes(e->container);
	ASSERT_NE(0, pgsizes) TH_LOG("VFIO_IOMMU_GET_INFO: %s", strerror(errno));
	if (!(pgsizes & SZ_2M))
		SKIP(return, "the IOMMU offers no 2 MiB pages (iova_pgsizes %#llx)",
		     (unsigned long long)pgsizes);
	ASSERT_EQ(0, param_write_str(self->be, "disable_hugepages", "0"));
	ASSERT_EQ(0, vfio_map(e->container, HUGE_IOVA, hp, SZ_2M, RW));
	cnt = iommu_read_leaves(e->bdf, HUGE_IOVA, SZ_2M, lv, 600, why, sizeof(why));
	if (cnt == -ENOENT || cnt == -ENODATA)
		SKIP(return, "intel IOMMU debugfs cannot show the domain: %s", why);
	ASSERT_GE(cnt, 0) TH_LOG("%s", why);
	ASSERT_EQ(1, cnt) TH_LOG("leaf entries for the 2 MiB range (%d levels in the first)",
				 cnt ? lv[0].nvals : 0);
	EXPECT_EQ(HUGE_IOVA >> 12, lv[0].pfn);
	ASSERT_EQ(4, lv[0].nvals) TH_LOG("not a PDE leaf");
	EXPECT_NE(0, lv[0].val[3] & VTD_PS) TH_LOG("PDE %#llx without PS",
						   (unsigned long long)lv[0].val[3]);
	huge_dma_check(_metadata, e, hp);
	n = 0;
	ASSERT_EQ(0, vfio_unmap(e->container, HUGE_IOVA, SZ_2M, 0, &n));
	EXPECT_EQ(SZ_2M, n);
	edu_close(e);
	munmap(hp, SZ_2M);
}

#ifndef MAP_HUGE_1GB
#define MAP_HUGE_1GB	(30 << 26)	/* MAP_HUGE_SHIFT 26, log2(1 GiB) */
#endif
#define SZ_1G		0x40000000ull
#define GIG_IOVA	(4 * SZ_1G)	/* 1 GiB aligned, above the MSI window */
#define HP1G_SYSFS	"/sys/kernel/mm/hugepages/hugepages-1048576kB/free_hugepages"

/*
 * disable_hugepages=0: one hugetlbfs 1 GiB page (reserved at boot with
 * hugepagesz=1G hugepages=1) mapped at a 1 GiB-aligned IOVA becomes a single
 * 1 GiB leaf (a PDPE with PS set) if the IOMMU offers 1 GiB pages; the
 * device DMAs between two offsets inside it; UNMAP reports 1 GiB, leaves no
 * entry behind and returns VmLck to its old value.
 */
TEST_F_TIMEOUT(params, hugetlb_1g_maps_1g_leaf, 300)
{
	static struct iommu_leaf lv[8];
	const uint64_t src_off = 0x2345000ull, dst_off = SZ_1G - 3 * PAGE_4K;
	char why[300] = "", freehp[32] = "?";
	struct edu *e = &self->dev;
	uint64_t pgsizes, n;
	uint32_t seed;
	uint8_t *hp;
	long lck0;
	FILE *f;
	int cnt;

	hp = mmap(NULL, SZ_1G, PROT_READ | PROT_WRITE,
		  MAP_PRIVATE | MAP_ANONYMOUS | MAP_HUGETLB | MAP_HUGE_1GB, -1, 0);
	if (hp == MAP_FAILED) {
		int err = errno;

		f = fopen(HP1G_SYSFS, "re");
		if (!f)
			snprintf(freehp, sizeof(freehp), "missing");
		else {
			if (!fgets(freehp, sizeof(freehp), f))
				snprintf(freehp, sizeof(freehp), "?");
			freehp[strcspn(freehp, "\n")] = '\0';
			fclose(f);
		}
		SKIP(return, "no free 1 GiB hugepage (MAP_HUGE_1GB: %s; %s: %s; boot with "
		     "hugepagesz=1G hugepages=1)", strerror(err), HP1G_SYSFS, freehp);
	}
	/* One write faults in (and zeroes) the whole page. */
	hp[0] = 1;
	OPEN_EDU(e);
	pgsizes = iova_pgsizes(e->container);
	ASSERT_NE(0, pgsizes) TH_LOG("VFIO_IOMMU_GET_INFO: %s", strerror(errno));
	if (!(pgsizes & SZ_1G))
		SKIP(return, "the IOMMU offers no 1 GiB pages (iova_pgsizes %#llx): "
		     "no 1 GiB second-level superpages (VT-d CAP.SLLPS bit 35)",
		     (unsigned long long)pgsizes);
	ASSERT_EQ(0, param_write_str(self->be, "disable_hugepages", "0"));
	lck0 = vmlck_kb();
	ASSERT_GE(lck0, 0);
	ASSERT_EQ(0, vfio_map(e->container, GIG_IOVA, hp, SZ_1G, RW));
	EXPECT_EQ(lck0 + (long)(SZ_1G / 1024), vmlck_kb());

	cnt = iommu_read_leaves(e->bdf, GIG_IOVA, SZ_1G, lv, 8, why, sizeof(why));
	if (cnt == -ENOENT || cnt == -ENODATA)
		SKIP(return, "intel IOMMU debugfs cannot show the domain: %s", why);
	ASSERT_GE(cnt, 0) TH_LOG("%s", why);
	ASSERT_EQ(1, cnt) TH_LOG("leaf entries for the 1 GiB range (%d levels in the first)",
				 cnt ? lv[0].nvals : 0);
	EXPECT_EQ(GIG_IOVA >> 12, lv[0].pfn);
	ASSERT_EQ(3, lv[0].nvals) TH_LOG("not a PDPE leaf (%d levels)", lv[0].nvals);
	EXPECT_NE(0, lv[0].val[2] & VTD_PS) TH_LOG("PDPE %#llx without PS",
						   (unsigned long long)lv[0].val[2]);
	EXPECT_NE(0, lv[0].val[2] & 3) TH_LOG("PDPE without R/W");
	ksft_print_msg("%s: 1 GiB leaf at IOVA pfn %#llx: PDPE %#llx\n", self->be,
		       (unsigned long long)lv[0].pfn, (unsigned long long)lv[0].val[2]);

	/* The device copies between two offsets inside the 1 GiB page. */
	seed = random_seed();
	fill_pattern(hp + src_off, PAGE_4K, seed);
	memset(hp + dst_off, 0, PAGE_4K);
	ASSERT_EQ(0, edu_copy(e, GIG_IOVA + src_off, GIG_IOVA + dst_off, PAGE_4K));
	EXPECT_EQ(-1, check_pattern(hp + dst_off, PAGE_4K, seed));

	n = 0;
	ASSERT_EQ(0, vfio_unmap(e->container, GIG_IOVA, SZ_1G, 0, &n));
	EXPECT_EQ(SZ_1G, n);
	cnt = iommu_read_leaves(e->bdf, GIG_IOVA, SZ_1G, lv, 8, why, sizeof(why));
	EXPECT_EQ(0, cnt) TH_LOG("entries left after UNMAP");
	EXPECT_EQ(lck0, vmlck_kb());
	edu_close(e);
	munmap(hp, SZ_1G);
}

#define THP_SIZE	(2 * SZ_2M)	/* two THPs: two 2 MiB leaves */
#define KPF_COMPOUND_HEAD	15
#define KPF_THP			22

/*
 * THP_SIZE of anonymous memory at a 2 MiB-aligned address, madvised
 * MADV_HUGEPAGE and touched. Returns MAP_FAILED (why set) when the THP mode
 * is "never" or the mapping fails.
 */
static uint8_t *thp_buf(char *why, size_t whylen)
{
	char mode[128] = "";
	uint8_t *raw, *p;
	uintptr_t a;
	FILE *f;

	f = fopen("/sys/kernel/mm/transparent_hugepage/enabled", "re");
	if (!f || !fgets(mode, sizeof(mode), f)) {
		snprintf(why, whylen, "no /sys/kernel/mm/transparent_hugepage/enabled");
		if (f)
			fclose(f);
		return MAP_FAILED;
	}
	fclose(f);
	mode[strcspn(mode, "\n")] = '\0';
	if (strstr(mode, "[never]")) {
		snprintf(why, whylen, "THP disabled (enabled: %s)", mode);
		return MAP_FAILED;
	}
	raw = mmap(NULL, THP_SIZE + SZ_2M, PROT_READ | PROT_WRITE,
		   MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0);
	if (raw == MAP_FAILED) {
		snprintf(why, whylen, "mmap: %s", strerror(errno));
		return MAP_FAILED;
	}
	a = ((uintptr_t)raw + SZ_2M - 1) & ~(uintptr_t)(SZ_2M - 1);
	p = (uint8_t *)a;
	if (p > raw)
		munmap(raw, p - raw);
	if (p + THP_SIZE < raw + THP_SIZE + SZ_2M)
		munmap(p + THP_SIZE, raw + THP_SIZE + SZ_2M - (p + THP_SIZE));
	if (madvise(p, THP_SIZE, MADV_HUGEPAGE)) {
		snprintf(why, whylen, "madvise(MADV_HUGEPAGE): %s", strerror(errno));
		munmap(p, THP_SIZE);
		return MAP_FAILED;
	}
	for (size_t off = 0; off < THP_SIZE; off += PAGE_4K)
		p[off] = 0x5a;
	return p;
}

/*
 * Whether [buf, buf + THP_SIZE) is backed by whole THPs: every 4 KiB page's
 * PFN (/proc/self/pagemap) has KPF_THP in /proc/kpageflags, the first of
 * each 2 MiB is a 2 MiB-aligned compound head and the rest follow it
 * contiguously. 1 yes, 0 no (why set), -errno when it cannot be read.
 */
static int thp_backed(const uint8_t *buf, char *why, size_t whylen)
{
	int pm = open("/proc/self/pagemap", O_RDONLY | O_CLOEXEC);
	int kf = open("/proc/kpageflags", O_RDONLY | O_CLOEXEC);
	uint64_t head = 0;
	int ret = 1;

	if (pm < 0 || kf < 0) {
		ret = -errno;
		snprintf(why, whylen, "cannot open %s: %s",
			 pm < 0 ? "/proc/self/pagemap" : "/proc/kpageflags", strerror(errno));
		goto out;
	}
	for (size_t i = 0; i < THP_SIZE / PAGE_4K; i++) {
		uint64_t ent, pfn, flags;
		uintptr_t va = (uintptr_t)buf + i * PAGE_4K;

		if (pread(pm, &ent, 8, (va / PAGE_4K) * 8) != 8) {
			ret = -EIO;
			snprintf(why, whylen, "pagemap read: %s", strerror(errno));
			goto out;
		}
		pfn = ent & ((1ull << 55) - 1);
		if (!(ent & (1ull << 63)) || !pfn) {
			ret = -EPERM;
			snprintf(why, whylen, "pagemap shows no PFN for %#lx (entry %#llx)",
				 (unsigned long)va, (unsigned long long)ent);
			goto out;
		}
		if (pread(kf, &flags, 8, pfn * 8) != 8) {
			ret = -EIO;
			snprintf(why, whylen, "kpageflags read: %s", strerror(errno));
			goto out;
		}
		if (!(flags & (1ull << KPF_THP))) {
			ret = 0;
			snprintf(why, whylen, "page %#lx (pfn %#llx) is not THP (kpageflags %#llx)",
				 (unsigned long)va, (unsigned long long)pfn,
				 (unsigned long long)flags);
			goto out;
		}
		if (!(i % 512)) {
			if (!(flags & (1ull << KPF_COMPOUND_HEAD)) || (pfn & 511)) {
				ret = 0;
				snprintf(why, whylen, "%#lx (pfn %#llx) is not a 2 MiB THP head",
					 (unsigned long)va, (unsigned long long)pfn);
				goto out;
			}
			head = pfn;
		} else if (pfn != head + i % 512) {
			ret = 0;
			snprintf(why, whylen, "%#lx: pfn %#llx not contiguous with head %#llx",
				 (unsigned long)va, (unsigned long long)pfn,
				 (unsigned long long)head);
			goto out;
		}
	}
out:
	if (pm >= 0)
		close(pm);
	if (kf >= 0)
		close(kf);
	return ret;
}

/*
 * disable_hugepages=0: two transparent huge pages of an anonymous buffer
 * (MADV_HUGEPAGE), mapped at a 2 MiB-aligned IOVA, become two 2 MiB leaves;
 * the device DMAs across them; UNMAP returns VmLck and pins to baseline.
 */
TEST_F_TIMEOUT(params, thp_maps_2m_leaf, DMA_TEST_TIMEOUT)
{
	static struct iommu_leaf lv[1100];
	char why[300] = "";
	struct edu *e = &self->dev;
	uint32_t seed0, seed1;
	long long pins0;
	uint64_t pgsizes, n;
	long lck0;
	uint8_t *buf;
	int cnt;

	buf = thp_buf(why, sizeof(why));
	if (buf == MAP_FAILED)
		SKIP(return, "no THP buffer: %s", why);
	cnt = thp_backed(buf, why, sizeof(why));
	if (cnt < 0)
		SKIP(return, "cannot verify THP backing: %s", why);
	if (cnt == 0)
		SKIP(return, "THP allocation failed: %s", why);
	OPEN_EDU(e);
	pgsizes = iova_pgsizes(e->container);
	ASSERT_NE(0, pgsizes) TH_LOG("VFIO_IOMMU_GET_INFO: %s", strerror(errno));
	if (!(pgsizes & SZ_2M))
		SKIP(return, "the IOMMU offers no 2 MiB pages (iova_pgsizes %#llx)",
		     (unsigned long long)pgsizes);
	ASSERT_EQ(0, param_write_str(self->be, "disable_hugepages", "0"));
	lck0 = vmlck_kb();
	pins0 = foll_pins_outstanding();
	ASSERT_GE(lck0, 0);
	ASSERT_NE(LLONG_MIN, pins0) TH_LOG("no nr_foll_pin_* in /proc/vmstat");

	ASSERT_EQ(0, vfio_map(e->container, HUGE_IOVA, buf, THP_SIZE, RW));
	EXPECT_EQ(lck0 + (long)(THP_SIZE / 1024), vmlck_kb());
	EXPECT_EQ(pins0 + (long long)(THP_SIZE / PAGE_4K), foll_pins_outstanding());
	/* Pinning did not split the THPs. */
	EXPECT_EQ(1, thp_backed(buf, why, sizeof(why))) TH_LOG("%s", why);

	cnt = iommu_read_leaves(e->bdf, HUGE_IOVA, THP_SIZE, lv, 1100, why, sizeof(why));
	if (cnt == -ENOENT || cnt == -ENODATA)
		SKIP(return, "intel IOMMU debugfs cannot show the domain: %s", why);
	ASSERT_GE(cnt, 0) TH_LOG("%s", why);
	ASSERT_EQ(2, cnt) TH_LOG("leaf entries for the 4 MiB range (%d levels in the first)",
				 cnt ? lv[0].nvals : 0);
	for (int i = 0; i < 2; i++) {
		EXPECT_EQ((HUGE_IOVA + i * SZ_2M) >> 12, lv[i].pfn);
		ASSERT_EQ(4, lv[i].nvals) TH_LOG("leaf %d (pfn %#llx) not a PDE leaf", i,
						 (unsigned long long)lv[i].pfn);
		EXPECT_NE(0, lv[i].val[3] & VTD_PS) TH_LOG("PDE %#llx without PS",
							   (unsigned long long)lv[i].val[3]);
		EXPECT_NE(0, lv[i].val[3] & 3) TH_LOG("PDE without R/W");
	}

	/* The device copies across the two leaves, both ways. */
	seed0 = random_seed();
	seed1 = seed0 ^ 0x9e3779b9u;
	fill_pattern(buf, PAGE_4K, seed0);
	fill_pattern(buf + SZ_2M, PAGE_4K, seed1);
	memset(buf + THP_SIZE - PAGE_4K, 0, PAGE_4K);
	memset(buf + SZ_2M - PAGE_4K, 0, PAGE_4K);
	ASSERT_EQ(0, edu_copy(e, HUGE_IOVA, HUGE_IOVA + THP_SIZE - PAGE_4K, PAGE_4K));
	ASSERT_EQ(0, edu_copy(e, HUGE_IOVA + SZ_2M, HUGE_IOVA + SZ_2M - PAGE_4K, PAGE_4K));
	EXPECT_EQ(-1, check_pattern(buf + THP_SIZE - PAGE_4K, PAGE_4K, seed0));
	EXPECT_EQ(-1, check_pattern(buf + SZ_2M - PAGE_4K, PAGE_4K, seed1));

	n = 0;
	ASSERT_EQ(0, vfio_unmap(e->container, HUGE_IOVA, THP_SIZE, 0, &n));
	EXPECT_EQ(THP_SIZE, n);
	cnt = iommu_read_leaves(e->bdf, HUGE_IOVA, THP_SIZE, lv, 1100, why, sizeof(why));
	EXPECT_EQ(0, cnt) TH_LOG("entries left after UNMAP");
	EXPECT_EQ(lck0, vmlck_kb());
	EXPECT_EQ(pins0, foll_pins_outstanding());
	edu_close(e);
	munmap(buf, THP_SIZE);
}

TEST_HARNESS_MAIN
