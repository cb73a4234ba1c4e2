// SPDX-License-Identifier: GPL-2.0
/*
 * pfnmap_test - MAP_DMA of VM_PFNMAP ranges (another device's BAR): follow-
 * fault, peer-to-peer DMA, refusals, and rvfio's revocation (issue 4).
 *
 * Two edu devices share one type1v2 container: edu #1 (the first BDF) is the
 * DMA master, edu #2 (the last BDF) the peer whose BAR0, mmap()ed through its
 * vfio device fd, is mapped at PEER_IOVA. edu #1 reads edu #2's registers
 * through the IOMMU (its ID register at +0x00 reads 0x010000ed) and writes
 * its liveness register (+0x04, reads back inverted). Every test checks bytes
 * that crossed the IOMMU, errnos, or the pin/locked_vm counters.
 *
 * Parts:
 *  - follow-fault and P2P (both backends): BAR untouched or touched before
 *    MAP_DMA; PFNMAP ranges are neither pinned nor charged to locked_vm.
 *  - refusals (both backends, must agree): PROT_NONE -> EFAULT and nothing
 *    left mapped; a WRITE map of a read-only range -> EFAULT, a READ map of it
 *    works; the same for BAR mmaps.
 *  - revocation (rvfio only, include/uapi/linux/rvfio.h): munmap, memory space
 *    disabled, device reset, device unbound, owning process exits. After each,
 *    edu #1's DMA from the IOVA reads zeros, RVFIO_IOMMU_DMA_QUERY reports the
 *    range revoked, the revoke eventfd fires, UNMAP_DMA reports the full size.
 *    On vfio_iommu_type1 these tests skip: it does not revoke.
 */
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>
#include <sys/ioctl.h>
#include <sys/mman.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <linux/pci_regs.h>
#include <linux/rvfio.h>

#include "kselftest_harness.h"
#include "edu_fixture.h"
#include "vfio_util.h"

#define PEER_IOVA	0x40000000ull	/* edu #2's BAR0 (2 MiB aligned) */
#define RAM_IOVA	0x10000000ull	/* one page of process memory, RW */
#define SPARE_IOVA	0x20000000ull	/* for the refusal tests */
#define REVOKE_WAIT_MS	5000		/* eventfd: it should be signalled already */
#define P2P_TIMEOUT	180

/* ---- backend ---------------------------------------------------------- */

/*
 * Revocation tests: skip on type1 (with the reason), fail on rvfio when the
 * container does not offer RVFIO_PFNMAP_REVOKE.
 */
#define REQUIRE_REVOKE(c) do { \
	if (!backend_is_rvfio()) \
		SKIP(return, "%s does not revoke PFNMAP mappings", backend_name()); \
	ASSERT_EQ(1, vfio_check_ext((c), RVFIO_PFNMAP_REVOKE)) \
		TH_LOG("rvfio container does not offer RVFIO_PFNMAP_REVOKE"); \
} while (0)

/* ---- uapi wrappers ------------------------------------------------------ */

/* Waits up to ms for the eventfd and reads it: the count, 0 on timeout, or -errno. */
static long long eventfd_wait(int efd, int ms)
{
	struct pollfd p = { .fd = efd, .events = POLLIN };
	uint64_t v = 0;
	int n = poll(&p, 1, ms);

	if (n < 0)
		return -errno;
	if (n == 0)
		return 0;
	if (read(efd, &v, sizeof(v)) != sizeof(v))
		return -errno;
	return (long long)v;
}

/* ---- sysfs -------------------------------------------------------------- */

static int pci_unbind(const char *bdf)
{
	char path[128];

	snprintf(path, sizeof(path), "/sys/bus/pci/devices/%s/driver/unbind", bdf);
	return sysfs_write_str(path, bdf);
}

/*
 * Binds bdf to vfio-pci again and waits (5 s) for /dev/vfio/<group>. 0 or
 * -errno.
 */
static int pci_bind_vfio(const char *bdf)
{
	char drv[64], dev[64];
	int ret, grp;

	pci_driver(bdf, drv, sizeof(drv));
	if (strcmp(drv, "vfio-pci")) {
		if (drv[0])
			return -EBUSY;
		ret = sysfs_write_str("/sys/bus/pci/drivers/vfio-pci/bind", bdf);
		if (ret)
			return ret;
	}
	grp = edu_group_id(bdf);
	if (grp < 0)
		return grp;
	snprintf(dev, sizeof(dev), "/dev/vfio/%d", grp);
	for (int i = 0; i < 50 && access(dev, F_OK); i++)
		usleep(100000);
	pci_driver(bdf, drv, sizeof(drv));
	if (strcmp(drv, "vfio-pci"))
		return -ENODEV;
	return access(dev, F_OK) ? -ENOENT : 0;
}

/* ---- edu #2 without touching its BAR ------------------------------------ */

/* mmap of BAR0 with prot (MAP_SHARED); nothing is touched. MAP_FAILED + errno. */
static void *bar0_mmap(int device, uint64_t offset, uint64_t size, int prot)
{
	return mmap(NULL, size, prot, MAP_SHARED, device, offset);
}

/* Sets or clears PCI_COMMAND_MEMORY (plus MASTER when set) through config space. */
static int pci_memory_enable(int device, bool on)
{
	uint16_t cmd;
	int ret = vfio_pci_config_read(device, PCI_COMMAND, &cmd, 2);

	if (ret)
		return ret;
	if (on)
		cmd |= PCI_COMMAND_MEMORY | PCI_COMMAND_MASTER;
	else
		cmd &= ~PCI_COMMAND_MEMORY;
	ret = vfio_pci_config_write(device, PCI_COMMAND, &cmd, 2);
	if (ret)
		return ret;
	ret = vfio_pci_config_read(device, PCI_COMMAND, &cmd, 2);
	if (ret)
		return ret;
	return !!(cmd & PCI_COMMAND_MEMORY) == on ? 0 : -EIO;
}

/*
 * Attach bdf's group to container c and open the device with memory space
 * enabled, its BAR0 not mapped and never touched. 0 or -errno (err says why).
 */
static int peer_open(int c, const char *bdf, int *group, int *device, uint64_t *bar_off,
		     uint64_t *bar_size, char *err, size_t errlen)
{
	int ret;

	*group = *device = -1;
	ret = vfio_group_attach(c, bdf, NULL);
	if (ret < 0) {
		snprintf(err, errlen, "attach group of %s: %s", bdf, strerror(-ret));
		return ret;
	}
	*group = ret;
	*device = ioctl(*group, VFIO_GROUP_GET_DEVICE_FD, bdf);
	if (*device < 0) {
		ret = -errno;
		snprintf(err, errlen, "VFIO_GROUP_GET_DEVICE_FD(%s): %s", bdf, strerror(-ret));
		return ret;
	}
	ret = pci_memory_enable(*device, true);
	if (ret) {
		snprintf(err, errlen, "enabling memory space of %s: %s", bdf, strerror(-ret));
		return ret;
	}
	ret = vfio_bar0_region(*device, bar_off, bar_size);
	if (ret)
		snprintf(err, errlen, "BAR0 region of %s: %s", bdf, strerror(-ret));
	return ret;
}

/* ---- the fixture --------------------------------------------------------- */

FIXTURE(p2p) {
	struct edu e1;		/* DMA master; owns the container */
	int c;
	char bdf2[32];
	int g2, d2;		/* edu #2's group and device fd */
	uint64_t bar_off, bar_size;
	volatile uint8_t *bar;	/* RW mmap of edu #2's BAR0, untouched at setup */
	uint8_t *ram;		/* one page mapped RW at RAM_IOVA */
	int efd;		/* revoke eventfd, or -1 */
	bool unbound;		/* edu #2 unbound from vfio-pci by the test */
};

FIXTURE_SETUP(p2p)
{
	char err[256] = "";
	void *p;
	int ret;

	self->c = self->g2 = self->d2 = self->efd = -1;
	self->e1.container = self->e1.group = self->e1.device = -1;
	self->bar = NULL;
	self->ram = NULL;
	self->unbound = false;
	SKIP_IF_NO_EDU(2);
	/* The last edu: scripts/vm.sh puts it alone behind a PCIe root port,
	 * which gives it a bus reset method (VFIO_DEVICE_RESET works). */
	snprintf(self->bdf2, sizeof(self->bdf2), "%s", edu_bdf(edu_count() - 1));
	ret = edu_open(&self->e1, edu_bdf(0), -1, VFIO_TYPE1v2_IOMMU, err, sizeof(err));
	ASSERT_EQ(0, ret) TH_LOG("setup: edu #1: %s", err);
	self->c = self->e1.container;
	ret = peer_open(self->c, self->bdf2, &self->g2, &self->d2, &self->bar_off,
			&self->bar_size, err, sizeof(err));
	ASSERT_EQ(0, ret) TH_LOG("setup: edu #2: %s", err);
	p = bar0_mmap(self->d2, self->bar_off, self->bar_size, PROT_READ | PROT_WRITE);
	ASSERT_NE(MAP_FAILED, p) TH_LOG("mmap edu #2 BAR0: %s", strerror(errno));
	self->bar = p;
	p = alloc_pages_4k(PAGE_4K, 0);
	ASSERT_NE(MAP_FAILED, p);
	self->ram = p;
	ASSERT_EQ(0, vfio_map(self->c, RAM_IOVA, self->ram, PAGE_4K, RW));
}

FIXTURE_TEARDOWN(p2p)
{
	if (self->efd >= 0)
		close(self->efd);
	if (self->c >= 0)
		vfio_unmap_all(self->c, NULL);
	if (self->bar)
		munmap((void *)self->bar, self->bar_size);
	if (self->d2 >= 0)
		close(self->d2);
	if (self->g2 >= 0)
		close(self->g2);
	edu_close(&self->e1);
	if (self->ram)
		munmap(self->ram, PAGE_4K);
	if (self->unbound) {
		int ret = pci_bind_vfio(self->bdf2);

		EXPECT_EQ(0, ret) TH_LOG("teardown: rebinding %s to vfio-pci: %s",
					 self->bdf2, strerror(-ret));
	}
}

/*
 * edu #1 reads 4 bytes at iova into its buffer, whose first 64 bytes were
 * prefilled with a random pattern from RAM, then copies those 64 bytes back
 * to RAM (prefilled with 0xd1). *val gets the 4 bytes read. Returns 0, a DMA
 * error, or -EIO when bytes 4..63 are not the pattern (a DMA did not run).
 */
static int p2p_read32(FIXTURE_DATA(p2p) *self, uint64_t iova, uint32_t *val)
{
	uint8_t expect[64];
	uint32_t seed = random_seed();
	int ret;

	fill_pattern(expect, sizeof(expect), seed);
	memcpy(self->ram, expect, sizeof(expect));
	ret = edu_dma_to_dev(&self->e1, RAM_IOVA, 0, sizeof(expect));
	if (!ret)
		ret = edu_dma_to_dev(&self->e1, iova, 0, 4);
	memset(self->ram, 0xd1, sizeof(expect));
	if (!ret)
		ret = edu_dma_to_ram(&self->e1, 0, RAM_IOVA, sizeof(expect));
	if (ret)
		return ret;
	memcpy(val, self->ram, 4);
	return memcmp(self->ram + 4, expect + 4, sizeof(expect) - 4) ? -EIO : 0;
}

/* edu #1 writes the 4 bytes v to iova (RAM -> edu buffer -> iova). */
static int p2p_write32(FIXTURE_DATA(p2p) *self, uint64_t iova, uint32_t v)
{
	int ret;

	memcpy(self->ram, &v, 4);
	ret = edu_dma_to_dev(&self->e1, RAM_IOVA, 0, 4);
	return ret ? ret : edu_dma_to_ram(&self->e1, 0, iova, 4);
}

static inline uint32_t mmio_read32(volatile uint8_t *bar, unsigned int off)
{
	return *(volatile uint32_t *)(bar + off);
}

static inline void mmio_write32(volatile uint8_t *bar, unsigned int off, uint32_t v)
{
	*(volatile uint32_t *)(bar + off) = v;
}

/* edu #1 reads edu #2's ID register through iova. */
#define ASSERT_PEER_ID(iova) do { \
	uint32_t __v = 0; \
	ASSERT_EQ(0, p2p_read32(self, (iova), &__v)); \
	ASSERT_EQ(EDU_ID_VALUE, __v) \
		TH_LOG("edu #1 read %#x from edu #2's ID register at IOVA %#llx", \
		       __v, (unsigned long long)(iova)); \
} while (0)

/* edu #1's read of iova delivers zeros: the translation is gone. */
#define EXPECT_PEER_CUT(iova, when) do { \
	uint32_t __v = 0xdeadbeef; \
	ASSERT_EQ(0, p2p_read32(self, (iova), &__v)); \
	EXPECT_EQ(0, __v) \
		TH_LOG("%s: edu #1 read %#x at IOVA %#llx (%s)", (when), __v, \
		       (unsigned long long)(iova), __v == EDU_ID_VALUE ? \
		       "DMA still reaches edu #2's BAR" : "expected zeros"); \
} while (0)

/*
 * edu #1 writes V to the liveness register through iova; reading it through
 * the CPU mapping bar gives ~V.
 */
#define ASSERT_PEER_WRITE(iova, bar) do { \
	uint32_t __v = random_seed(); \
	mmio_write32((bar), EDU_REG_LIVENESS, __v ^ 0xffff0000u); \
	ASSERT_EQ(0, p2p_write32(self, (iova) + EDU_REG_LIVENESS, __v)); \
	ASSERT_EQ(~__v, mmio_read32((bar), EDU_REG_LIVENESS)) \
		TH_LOG("DMA write of %#x to edu #2's liveness register lost", __v); \
} while (0)

/* The DMA write of V through iova does not reach the register (CPU sees ~W). */
#define EXPECT_PEER_WRITE_CUT(iova, bar) do { \
	uint32_t __w = random_seed(), __v = __w ^ 0x5a5a5a5au, __r; \
	mmio_write32((bar), EDU_REG_LIVENESS, __w); \
	ASSERT_EQ(~__w, mmio_read32((bar), EDU_REG_LIVENESS)); \
	ASSERT_EQ(0, p2p_write32(self, (iova) + EDU_REG_LIVENESS, __v)); \
	__r = mmio_read32((bar), EDU_REG_LIVENESS); \
	EXPECT_EQ(~__w, __r) TH_LOG("liveness reads %#x: %s", __r, \
		__r == ~__v ? "edu #1's DMA write reached the revoked BAR" : "unexpected"); \
} while (0)

/* Maps the fixture's BAR mmap at PEER_IOVA (RW). */
static int map_peer(FIXTURE_DATA(p2p) *self)
{
	return vfio_map(self->c, PEER_IOVA, (const void *)self->bar, self->bar_size, RW);
}

/* ---- 1. follow-fault and peer-to-peer ------------------------------------ */

static void p2p_roundtrip(struct __test_metadata *_metadata, FIXTURE_DATA(p2p) *self)
{
	long long pins0;
	long lck0;
	uint64_t n = 0;

	pins0 = foll_pins_outstanding();
	ASSERT_NE(LLONG_MIN, pins0);
	lck0 = vmlck_kb();
	ASSERT_GE(lck0, 0);

	ASSERT_EQ(0, map_peer(self));
	/* PFNMAP pages are neither pinned nor charged. */
	ASSERT_PINS(pins0);
	EXPECT_EQ(lck0, vmlck_kb()) TH_LOG("mapping edu #2's BAR changed VmLck");

	ASSERT_PEER_ID(PEER_IOVA);
	ASSERT_PEER_WRITE(PEER_IOVA, self->bar);
	ASSERT_PINS(pins0);

	ASSERT_EQ(0, vfio_unmap(self->c, PEER_IOVA, self->bar_size, 0, &n));
	EXPECT_EQ(self->bar_size, n);
	EXPECT_PEER_CUT(PEER_IOVA, "after UNMAP_DMA");
	ASSERT_PINS(pins0);
	EXPECT_EQ(lck0, vmlck_kb());
}

/* The BAR mmap is not touched before MAP_DMA: the backend faults it in. */
TEST_F_TIMEOUT(p2p, bar_untouched_map_then_peer_read_and_write, P2P_TIMEOUT)
{
	p2p_roundtrip(_metadata, self);
}

/* The BAR mmap is populated by CPU accesses first. */
TEST_F_TIMEOUT(p2p, bar_touched_map_then_peer_read_and_write, P2P_TIMEOUT)
{
	ASSERT_EQ(EDU_ID_VALUE, mmio_read32(self->bar, EDU_REG_ID));
	mmio_write32(self->bar, EDU_REG_LIVENESS, 0x0f0f0f0f);
	ASSERT_EQ(~0x0f0f0f0fu, mmio_read32(self->bar, EDU_REG_LIVENESS));
	p2p_roundtrip(_metadata, self);
}

/*
 * A PFNMAP range is not charged against RLIMIT_MEMLOCK: with CAP_IPC_LOCK
 * dropped and the limit 0, mapping edu #2's BAR works while one page of
 * anonymous memory is refused with ENOMEM.
 */
TEST_F_TIMEOUT(p2p, bar_map_not_limited_by_rlimit_memlock, P2P_TIMEOUT)
{
	struct rlimit rl = { 0, 0 };
	uint8_t *anon = alloc_pages_4k(PAGE_4K, 0x33);
	long lck0 = vmlck_kb();
	uint64_t n = 0;

	ASSERT_NE(MAP_FAILED, anon);
	ASSERT_EQ(0, drop_cap_ipc_lock());
	ASSERT_EQ(0, setrlimit(RLIMIT_MEMLOCK, &rl));
	EXPECT_EQ(-ENOMEM, vfio_map(self->c, SPARE_IOVA, anon, PAGE_4K, RW));
	ASSERT_EQ(0, map_peer(self));
	EXPECT_EQ(lck0, vmlck_kb());
	ASSERT_PEER_ID(PEER_IOVA);
	ASSERT_EQ(0, vfio_unmap(self->c, PEER_IOVA, self->bar_size, 0, &n));
	EXPECT_EQ(self->bar_size, n);
	munmap(anon, PAGE_4K);
}

/* ---- 2. refusals (both backends) ----------------------------------------- */

/* Nothing is mapped in [iova, iova+size): UNMAP reports 0 and a map of RAM there works. */
#define ASSERT_NOTHING_MAPPED(iova, size) do { \
	uint64_t __n = 1; \
	ASSERT_EQ(0, vfio_unmap(self->c, (iova), (size), 0, &__n)); \
	ASSERT_EQ(0, __n) TH_LOG("a refused MAP_DMA left %llu bytes mapped", \
				 (unsigned long long)__n); \
	ASSERT_EQ(0, vfio_map(self->c, (iova), self->ram, PAGE_4K, RO)); \
	ASSERT_EQ(0, vfio_unmap(self->c, (iova), PAGE_4K, 0, &__n)); \
	ASSERT_EQ(PAGE_4K, __n); \
} while (0)

/* PROT_NONE anonymous memory: EFAULT for READ, WRITE and READ|WRITE; nothing left behind. */
TEST_F(p2p, prot_none_anon_refused_efault)
{
	const size_t len = 4 * PAGE_4K;
	long long pins0 = foll_pins_outstanding();
	long lck0 = vmlck_kb();
	uint8_t *p = mmap(NULL, len, PROT_NONE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);

	ASSERT_NE(MAP_FAILED, p);
	EXPECT_EQ(-EFAULT, vfio_map(self->c, SPARE_IOVA, p, len, RW));
	EXPECT_EQ(-EFAULT, vfio_map(self->c, SPARE_IOVA, p, len, RO));
	EXPECT_EQ(-EFAULT, vfio_map(self->c, SPARE_IOVA, p, len, WO));
	ASSERT_NOTHING_MAPPED(SPARE_IOVA, len);
	ASSERT_PINS(pins0);
	EXPECT_EQ(lck0, vmlck_kb());
	munmap(p, len);
}

/*
 * A range whose first two pages are RW memory and the rest PROT_NONE: EFAULT,
 * and the pages already pinned for the first part are released again.
 */
TEST_F(p2p, prot_none_tail_refused_and_unwound)
{
	const size_t len = 4 * PAGE_4K;
	long long pins0 = foll_pins_outstanding();
	long lck0 = vmlck_kb();
	uint8_t *p = alloc_pages_4k(len, 0x44);

	ASSERT_NE(MAP_FAILED, p);
	ASSERT_EQ(0, mprotect(p + 2 * PAGE_4K, 2 * PAGE_4K, PROT_NONE));
	EXPECT_EQ(-EFAULT, vfio_map(self->c, SPARE_IOVA, p, len, RW));
	EXPECT_EQ(-EFAULT, vfio_map(self->c, SPARE_IOVA, p, len, RO));
	ASSERT_NOTHING_MAPPED(SPARE_IOVA, len);
	ASSERT_PINS(pins0);
	EXPECT_EQ(lck0, vmlck_kb());
	munmap(p, len);
}

/*
 * Read-only anonymous memory: a WRITE map is refused (pin_user_pages with
 * FOLL_WRITE on a vma without VM_WRITE: EFAULT, no FOLL_FORCE), a READ map
 * works and the device reads the memory through it.
 */
TEST_F_TIMEOUT(p2p, readonly_anon_write_map_refused_read_map_works, P2P_TIMEOUT)
{
	const size_t len = 2 * PAGE_4K;
	uint32_t seed = random_seed();
	long long pins0 = foll_pins_outstanding();
	uint8_t *p = alloc_pages_4k(len, 0);
	uint64_t n = 0;

	ASSERT_NE(MAP_FAILED, p);
	fill_pattern(p, len, seed);
	ASSERT_EQ(0, mprotect(p, len, PROT_READ));
	EXPECT_EQ(-EFAULT, vfio_map(self->c, SPARE_IOVA, p, len, RW));
	EXPECT_EQ(-EFAULT, vfio_map(self->c, SPARE_IOVA, p, len, WO));
	ASSERT_NOTHING_MAPPED(SPARE_IOVA, len);
	ASSERT_PINS(pins0);

	ASSERT_EQ(0, vfio_map(self->c, SPARE_IOVA, p, len, RO));
	ASSERT_PINS(pins0 + 2);
	memset(self->ram, 0xd1, PAGE_4K);
	ASSERT_EQ(0, edu_dma_to_dev(&self->e1, SPARE_IOVA + PAGE_4K, 0, PAGE_4K));
	ASSERT_EQ(0, edu_dma_to_ram(&self->e1, 0, RAM_IOVA, PAGE_4K));
	EXPECT_EQ(0, memcmp(self->ram, p + PAGE_4K, PAGE_4K))
		TH_LOG("device did not read the read-only memory");
	ASSERT_EQ(0, vfio_unmap(self->c, SPARE_IOVA, len, 0, &n));
	EXPECT_EQ(len, n);
	ASSERT_PINS(pins0);
	munmap(p, len);
}

/*
 * edu #2's BAR mmap()ed PROT_READ: a WRITE map is refused with EFAULT both
 * before and after the mmap is populated; a READ map works and edu #1 reads
 * the ID register through it.
 */
TEST_F_TIMEOUT(p2p, readonly_bar_write_map_refused_read_map_works, P2P_TIMEOUT)
{
	long long pins0 = foll_pins_outstanding();
	volatile uint8_t *ro;
	uint64_t n = 0;
	void *m;

	m = bar0_mmap(self->d2, self->bar_off, self->bar_size, PROT_READ);
	ASSERT_NE(MAP_FAILED, m) TH_LOG("mmap PROT_READ: %s", strerror(errno));
	ro = m;
	/* Untouched. */
	EXPECT_EQ(-EFAULT, vfio_map(self->c, PEER_IOVA, m, self->bar_size, RW));
	EXPECT_EQ(-EFAULT, vfio_map(self->c, PEER_IOVA, m, self->bar_size, WO));
	ASSERT_NOTHING_MAPPED(PEER_IOVA, self->bar_size);
	/* Populated by a CPU read. */
	ASSERT_EQ(EDU_ID_VALUE, mmio_read32(ro, EDU_REG_ID));
	EXPECT_EQ(-EFAULT, vfio_map(self->c, PEER_IOVA, m, self->bar_size, RW));
	ASSERT_NOTHING_MAPPED(PEER_IOVA, self->bar_size);
	ASSERT_PINS(pins0);

	ASSERT_EQ(0, vfio_map(self->c, PEER_IOVA, m, self->bar_size, RO));
	ASSERT_PINS(pins0);
	ASSERT_PEER_ID(PEER_IOVA);
	ASSERT_EQ(0, vfio_unmap(self->c, PEER_IOVA, self->bar_size, 0, &n));
	EXPECT_EQ(self->bar_size, n);
	munmap(m, self->bar_size);
}

/* A READ map of an untouched PROT_READ BAR mmap faults it in (read fault). */
TEST_F_TIMEOUT(p2p, readonly_bar_untouched_read_map_works, P2P_TIMEOUT)
{
	uint64_t n = 0;
	void *m = bar0_mmap(self->d2, self->bar_off, self->bar_size, PROT_READ);

	ASSERT_NE(MAP_FAILED, m) TH_LOG("mmap PROT_READ: %s", strerror(errno));
	ASSERT_EQ(0, vfio_map(self->c, PEER_IOVA, m, self->bar_size, RO));
	ASSERT_PEER_ID(PEER_IOVA);
	ASSERT_EQ(0, vfio_unmap(self->c, PEER_IOVA, self->bar_size, 0, &n));
	EXPECT_EQ(self->bar_size, n);
	munmap(m, self->bar_size);
}

/* edu #2's BAR mmap()ed PROT_NONE: every map is refused with EFAULT. */
TEST_F(p2p, prot_none_bar_refused_efault)
{
	long long pins0 = foll_pins_outstanding();
	void *m = bar0_mmap(self->d2, self->bar_off, self->bar_size, PROT_NONE);

	ASSERT_NE(MAP_FAILED, m) TH_LOG("mmap PROT_NONE: %s", strerror(errno));
	EXPECT_EQ(-EFAULT, vfio_map(self->c, PEER_IOVA, m, self->bar_size, RO));
	EXPECT_EQ(-EFAULT, vfio_map(self->c, PEER_IOVA, m, self->bar_size, RW));
	EXPECT_EQ(-EFAULT, vfio_map(self->c, PEER_IOVA, m, PAGE_4K, RO));
	ASSERT_NOTHING_MAPPED(PEER_IOVA, self->bar_size);
	ASSERT_PINS(pins0);
	munmap(m, self->bar_size);
}

/*
 * The BAR mmap populated by the CPU, then mprotect()ed PROT_NONE: still
 * EFAULT (issue 4: no bypass of the vma permission check). Upstream type1
 * maps it for READ: follow_fault_pfn() finds the PROT_NONE PTE present
 * (pte_present() is true for PROTNONE on x86) and never checks the vma's
 * VM_READ, so this is rvfio's own.
 */
TEST_F(p2p, prot_none_bar_after_populate_refused_efault)
{
	if (!backend_is_rvfio())
		SKIP(return, "%s maps a populated PFNMAP PTE without checking the vma's "
		     "protection (a PROT_NONE BAR mmap is mapped for READ)", backend_name());
	ASSERT_EQ(EDU_ID_VALUE, mmio_read32(self->bar, EDU_REG_ID));
	ASSERT_EQ(0, mprotect((void *)self->bar, self->bar_size, PROT_NONE));
	EXPECT_EQ(-EFAULT, map_peer(self));
	EXPECT_EQ(-EFAULT, vfio_map(self->c, PEER_IOVA, (void *)self->bar, PAGE_4K, RO));
	ASSERT_NOTHING_MAPPED(PEER_IOVA, self->bar_size);
}

/* ---- 3. revocation (rvfio) ----------------------------------------------- */

/* The uapi probe: type1 answers 0 and ENOTTY, rvfio offers the extension. */
TEST_F(p2p, revoke_uapi_probe)
{
	struct rvfio_dma_query q;
	long ext = vfio_check_ext(self->c, RVFIO_PFNMAP_REVOKE);

	if (!backend_is_rvfio()) {
		EXPECT_EQ(0, ext);
		EXPECT_EQ(-ENOTTY, dma_query(self->c, RAM_IOVA, &q));
		EXPECT_EQ(-ENOTTY, revoke_eventfd(self->c, -1, NULL));
		return;
	}
	EXPECT_EQ(1, ext) TH_LOG("rvfio container does not offer RVFIO_PFNMAP_REVOKE");
	EXPECT_EQ(0, dma_query(self->c, RAM_IOVA, &q));
	EXPECT_EQ(0, revoke_eventfd(self->c, -1, NULL));
}

/*
 * Before the event: eventfd set, edu #2's BAR mapped at PEER_IOVA, edu #1
 * reads its ID through it, and the query shows a live PFNMAP mapping.
 * *rev0 gets the revocation count.
 */
static void revoke_prepare(struct __test_metadata *_metadata, FIXTURE_DATA(p2p) *self,
			   uint64_t *rev0)
{
	struct rvfio_dma_query q;

	self->efd = eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
	ASSERT_GE(self->efd, 0);
	ASSERT_EQ(0, revoke_eventfd(self->c, self->efd, rev0));
	ASSERT_EQ(0, map_peer(self));
	ASSERT_PEER_ID(PEER_IOVA);
	ASSERT_EQ(0, dma_query(self->c, PEER_IOVA + 0x40, &q));
	EXPECT_EQ(RVFIO_DMA_QUERY_PFNMAP, q.flags);
	EXPECT_EQ(PEER_IOVA, q.iova);
	EXPECT_EQ(self->bar_size, q.size);
	EXPECT_EQ(0, q.revoked_bytes);
	/* Nothing was revoked yet. */
	EXPECT_EQ(0, eventfd_wait(self->efd, 0));
}

/*
 * After the event (DMA already checked by the caller): the query reports the
 * whole range revoked, the eventfd fired, the count grew, UNMAP_DMA works and
 * reports the full size.
 */
static void revoke_verify(struct __test_metadata *_metadata, FIXTURE_DATA(p2p) *self,
			  uint64_t rev0)
{
	struct rvfio_dma_query q;
	uint64_t rev1 = 0, n = 0;
	long long ev;

	EXPECT_EQ(0, dma_query(self->c, PEER_IOVA + PAGE_4K, &q));
	EXPECT_EQ(RVFIO_DMA_QUERY_PFNMAP | RVFIO_DMA_QUERY_REVOKED, q.flags);
	EXPECT_EQ(PEER_IOVA, q.iova);
	EXPECT_EQ(self->bar_size, q.size);
	EXPECT_EQ(self->bar_size, q.revoked_bytes);

	ev = eventfd_wait(self->efd, REVOKE_WAIT_MS);
	EXPECT_GE(ev, 1) TH_LOG("revoke eventfd: %lld (0: not signalled in %d ms)", ev,
				REVOKE_WAIT_MS);
	/* Setting the same eventfd again reports the count. */
	EXPECT_EQ(0, revoke_eventfd(self->c, self->efd, &rev1));
	EXPECT_GT(rev1, rev0) TH_LOG("revocations %llu -> %llu", (unsigned long long)rev0,
				     (unsigned long long)rev1);

	/* The RAM mapping next to it is not affected. */
	EXPECT_EQ(0, dma_query(self->c, RAM_IOVA, &q));
	EXPECT_EQ(0, q.flags);

	ASSERT_EQ(0, vfio_unmap(self->c, PEER_IOVA, self->bar_size, 0, &n));
	EXPECT_EQ(self->bar_size, n);
	EXPECT_EQ(-ENOENT, dma_query(self->c, PEER_IOVA, &q));
	/* The IOVA range is free again. */
	ASSERT_NOTHING_MAPPED(PEER_IOVA, self->bar_size);
}

/* (a) The process munmap()s the BAR mapping. */
TEST_F_TIMEOUT(p2p, revoke_on_munmap, P2P_TIMEOUT)
{
	uint64_t rev0 = 0;
	void *m;

	REQUIRE_REVOKE(self->c);
	revoke_prepare(_metadata, self, &rev0);
	ASSERT_EQ(0, munmap((void *)self->bar, self->bar_size));
	self->bar = NULL;
	EXPECT_PEER_CUT(PEER_IOVA, "after munmap");
	/* Writes are cut off too: a fresh mmap shows the register unchanged. */
	m = bar0_mmap(self->d2, self->bar_off, self->bar_size, PROT_READ | PROT_WRITE);
	ASSERT_NE(MAP_FAILED, m);
	EXPECT_PEER_WRITE_CUT(PEER_IOVA, (volatile uint8_t *)m);
	munmap(m, self->bar_size);
	revoke_verify(_metadata, self, rev0);
}

/* A partial munmap revokes (at least) the part that went away. */
TEST_F_TIMEOUT(p2p, revoke_on_partial_munmap, P2P_TIMEOUT)
{
	struct rvfio_dma_query q;
	uint64_t rev0 = 0, n = 0;

	REQUIRE_REVOKE(self->c);
	revoke_prepare(_metadata, self, &rev0);
	/* Unmap the first page only (the registers). */
	ASSERT_EQ(0, munmap((void *)self->bar, PAGE_4K));
	EXPECT_PEER_CUT(PEER_IOVA, "after munmap of the first page");
	ASSERT_EQ(0, dma_query(self->c, PEER_IOVA, &q));
	EXPECT_EQ(RVFIO_DMA_QUERY_PFNMAP | RVFIO_DMA_QUERY_REVOKED, q.flags);
	EXPECT_EQ(self->bar_size, q.size);
	EXPECT_GE(q.revoked_bytes, PAGE_4K);
	EXPECT_LE(q.revoked_bytes, self->bar_size);
	EXPECT_GE(eventfd_wait(self->efd, REVOKE_WAIT_MS), 1);
	ASSERT_EQ(0, vfio_unmap(self->c, PEER_IOVA, self->bar_size, 0, &n));
	EXPECT_EQ(self->bar_size, n);
	/* What is left of the mmap goes at teardown. */
	ASSERT_EQ(0, munmap((void *)(self->bar + PAGE_4K), self->bar_size - PAGE_4K));
	self->bar = NULL;
}

/*
 * (b) Memory space disabled through edu #2's config space: vfio-pci zaps the
 * BAR mmaps. Enabling memory again does not bring the translation back.
 */
TEST_F_TIMEOUT(p2p, revoke_on_memory_disable_and_stays_revoked, P2P_TIMEOUT)
{
	uint64_t rev0 = 0;

	REQUIRE_REVOKE(self->c);
	revoke_prepare(_metadata, self, &rev0);
	ASSERT_EQ(0, pci_memory_enable(self->d2, false));
	EXPECT_PEER_CUT(PEER_IOVA, "memory space disabled");
	ASSERT_EQ(0, pci_memory_enable(self->d2, true));
	/* The BAR answers the CPU again (the mmap faults back in)... */
	ASSERT_EQ(EDU_ID_VALUE, mmio_read32(self->bar, EDU_REG_ID));
	/* ...but not edu #1: revocation is permanent. */
	EXPECT_PEER_CUT(PEER_IOVA, "memory space enabled again");
	EXPECT_PEER_WRITE_CUT(PEER_IOVA, self->bar);
	revoke_verify(_metadata, self, rev0);
}

/* (c) VFIO_DEVICE_RESET of edu #2: vfio-pci zaps the BAR mmaps around it. */
TEST_F_TIMEOUT(p2p, revoke_on_device_reset, P2P_TIMEOUT)
{
	struct vfio_device_info info = { .argsz = sizeof(info) };
	uint64_t rev0 = 0;
	long ret;

	REQUIRE_REVOKE(self->c);
	ASSERT_EQ(0, vfio_ioctl(self->d2, VFIO_DEVICE_GET_INFO, &info));
	if (!(info.flags & VFIO_DEVICE_FLAGS_RESET))
		SKIP(return, "edu #2 (%s) has no reset method (VFIO_DEVICE_FLAGS_RESET clear), "
		     "vfio-pci refuses VFIO_DEVICE_RESET", self->bdf2);
	revoke_prepare(_metadata, self, &rev0);
	ret = vfio_ioctl(self->d2, VFIO_DEVICE_RESET, NULL);
	ASSERT_EQ(0, ret) TH_LOG("VFIO_DEVICE_RESET: %s", strerror((int)-ret));
	ASSERT_EQ(0, pci_memory_enable(self->d2, true));
	ASSERT_EQ(EDU_ID_VALUE, mmio_read32(self->bar, EDU_REG_ID));
	EXPECT_PEER_CUT(PEER_IOVA, "after VFIO_DEVICE_RESET");
	EXPECT_PEER_WRITE_CUT(PEER_IOVA, self->bar);
	revoke_verify(_metadata, self, rev0);
}

/* VFIO_DEVICE_FEATURE on edu #2 with no payload; 0 or -errno. */
static int device_feature(int device, uint32_t flags)
{
	struct vfio_device_feature f = { .argsz = sizeof(f), .flags = flags };

	return (int)vfio_ioctl(device, VFIO_DEVICE_FEATURE, &f);
}

/*
 * VFIO_DEVICE_FEATURE_LOW_POWER_ENTRY on edu #2: vfio-pci zaps the BAR mmaps
 * (they SIGBUS until LOW_POWER_EXIT). The device itself stays decoding (the
 * test kernel has no runtime PM), so only the revocation stops the DMA.
 */
TEST_F_TIMEOUT(p2p, revoke_on_low_power_entry, P2P_TIMEOUT)
{
	uint64_t rev0 = 0;
	int ret;

	REQUIRE_REVOKE(self->c);
	ret = device_feature(self->d2, VFIO_DEVICE_FEATURE_PROBE | VFIO_DEVICE_FEATURE_SET |
			     VFIO_DEVICE_FEATURE_LOW_POWER_ENTRY);
	if (ret)
		SKIP(return, "vfio-pci does not offer LOW_POWER_ENTRY for %s: %s", self->bdf2,
		     strerror(-ret));
	revoke_prepare(_metadata, self, &rev0);
	ret = device_feature(self->d2, VFIO_DEVICE_FEATURE_SET |
			     VFIO_DEVICE_FEATURE_LOW_POWER_ENTRY);
	ASSERT_EQ(0, ret) TH_LOG("LOW_POWER_ENTRY: %s", strerror(-ret));
	EXPECT_PEER_CUT(PEER_IOVA, "in low power");
	ret = device_feature(self->d2, VFIO_DEVICE_FEATURE_SET |
			     VFIO_DEVICE_FEATURE_LOW_POWER_EXIT);
	ASSERT_EQ(0, ret) TH_LOG("LOW_POWER_EXIT: %s", strerror(-ret));
	ASSERT_EQ(EDU_ID_VALUE, mmio_read32(self->bar, EDU_REG_ID));
	EXPECT_PEER_CUT(PEER_IOVA, "after low power exit");
	EXPECT_PEER_WRITE_CUT(PEER_IOVA, self->bar);
	revoke_verify(_metadata, self, rev0);
}

/*
 * (d) The device goes away: the BAR is munmap()ed, edu #2's device fd
 * closed and the device unbound from vfio-pci (which detaches its group from
 * the container). It is bound to vfio-pci again at the end.
 */
TEST_F_TIMEOUT(p2p, revoke_on_device_unbind, P2P_TIMEOUT)
{
	char drv[64];
	uint64_t rev0 = 0;
	int ret, grp, fd;
	char dev[64];

	REQUIRE_REVOKE(self->c);
	revoke_prepare(_metadata, self, &rev0);
	ASSERT_EQ(0, munmap((void *)self->bar, self->bar_size));
	self->bar = NULL;
	close(self->d2);
	self->d2 = -1;
	self->unbound = true;
	ret = pci_unbind(self->bdf2);
	ASSERT_EQ(0, ret) TH_LOG("unbind %s: %s", self->bdf2, strerror(-ret));
	pci_driver(self->bdf2, drv, sizeof(drv));
	ASSERT_EQ(0, drv[0]) TH_LOG("%s still bound to %s", self->bdf2, drv);
	EXPECT_PEER_CUT(PEER_IOVA, "edu #2 unbound");
	revoke_verify(_metadata, self, rev0);

	/* Back to vfio-pci, with a usable group node, for the tests after this one. */
	ret = pci_bind_vfio(self->bdf2);
	ASSERT_EQ(0, ret) TH_LOG("rebinding %s to vfio-pci: %s", self->bdf2, strerror(-ret));
	self->unbound = false;
	grp = edu_group_id(self->bdf2);
	ASSERT_GE(grp, 0);
	snprintf(dev, sizeof(dev), "/dev/vfio/%d", grp);
	fd = open(dev, O_RDWR | O_CLOEXEC);
	ASSERT_GE(fd, 0) TH_LOG("open %s after rebind: %s", dev, strerror(errno));
	{
		struct vfio_group_status st = { .argsz = sizeof(st) };

		EXPECT_EQ(0, vfio_ioctl(fd, VFIO_GROUP_GET_STATUS, &st));
		EXPECT_TRUE(st.flags & VFIO_GROUP_FLAGS_VIABLE);
	}
	close(fd);
}

/* Anonymous memory: flags 0; unmapped IOVA: ENOENT; bad argsz or flags: EINVAL. */
TEST_F(p2p, query_negative_control)
{
	struct rvfio_dma_query q;
	struct rvfio_revoke_eventfd r;
	uint8_t *p;
	uint64_t n = 0, rev = 0;
	int efd, nul;

	REQUIRE_REVOKE(self->c);
	p = alloc_pages_4k(4 * PAGE_4K, 0x12);
	ASSERT_NE(MAP_FAILED, p);
	ASSERT_EQ(0, vfio_map(self->c, SPARE_IOVA, p, 4 * PAGE_4K, RW));
	ASSERT_EQ(0, dma_query(self->c, SPARE_IOVA + 2 * PAGE_4K + 0x123, &q));
	EXPECT_EQ(0, q.flags);
	EXPECT_EQ(SPARE_IOVA, q.iova);
	EXPECT_EQ(4 * PAGE_4K, q.size);
	EXPECT_EQ(0, q.revoked_bytes);
	EXPECT_EQ(sizeof(q), q.argsz);

	/* Unmapped: right after the mapping, and an IOVA nothing ever used. */
	EXPECT_EQ(-ENOENT, dma_query(self->c, SPARE_IOVA + 4 * PAGE_4K, &q));
	EXPECT_EQ(-ENOENT, dma_query(self->c, 0x7000000000ull, &q));

	/* Bad input. */
	memset(&q, 0, sizeof(q));
	q.argsz = sizeof(q) - 1;
	q.iova = SPARE_IOVA;
	EXPECT_EQ(-EINVAL, vfio_ioctl(self->c, RVFIO_IOMMU_DMA_QUERY, &q));
	q.argsz = sizeof(q);
	q.flags = RVFIO_DMA_QUERY_PFNMAP;
	EXPECT_EQ(-EINVAL, vfio_ioctl(self->c, RVFIO_IOMMU_DMA_QUERY, &q));
	q.flags = 1u << 31;
	EXPECT_EQ(-EINVAL, vfio_ioctl(self->c, RVFIO_IOMMU_DMA_QUERY, &q));

	memset(&r, 0, sizeof(r));
	r.argsz = sizeof(r) - 1;
	r.fd = -1;
	EXPECT_EQ(-EINVAL, vfio_ioctl(self->c, RVFIO_IOMMU_REVOKE_EVENTFD, &r));
	r.argsz = sizeof(r);
	r.flags = 1;
	EXPECT_EQ(-EINVAL, vfio_ioctl(self->c, RVFIO_IOMMU_REVOKE_EVENTFD, &r));
	r.flags = 0;
	r.__reserved = 1;
	EXPECT_EQ(-EINVAL, vfio_ioctl(self->c, RVFIO_IOMMU_REVOKE_EVENTFD, &r));
	/* Not an fd at all: EBADF; an fd that is not an eventfd: EINVAL. */
	nul = open("/dev/null", O_RDWR | O_CLOEXEC);
	ASSERT_GE(nul, 0);
	close(nul);
	EXPECT_EQ(-EBADF, revoke_eventfd(self->c, nul, NULL));
	nul = open("/dev/null", O_RDWR | O_CLOEXEC);
	ASSERT_GE(nul, 0);
	EXPECT_EQ(-EINVAL, revoke_eventfd(self->c, nul, NULL));
	close(nul);

	/* Set, replace, clear; no revocation happened in this container. */
	efd = eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
	ASSERT_GE(efd, 0);
	EXPECT_EQ(0, revoke_eventfd(self->c, efd, &rev));
	EXPECT_EQ(0, rev);
	EXPECT_EQ(0, revoke_eventfd(self->c, efd, &rev));
	EXPECT_EQ(0, revoke_eventfd(self->c, -1, &rev));
	EXPECT_EQ(0, rev);

	/* Unmapping anonymous memory is not a revocation. */
	ASSERT_EQ(0, vfio_unmap(self->c, SPARE_IOVA, 4 * PAGE_4K, 0, &n));
	EXPECT_EQ(4 * PAGE_4K, n);
	EXPECT_EQ(-ENOENT, dma_query(self->c, SPARE_IOVA, &q));
	EXPECT_EQ(0, eventfd_wait(efd, 0));
	EXPECT_EQ(0, revoke_eventfd(self->c, -1, &rev));
	EXPECT_EQ(0, rev);
	close(efd);
	munmap(p, 4 * PAGE_4K);
}

/* ---- (e) the process owning the mm exits ---------------------------------- */

enum { FD_CONTAINER, FD_GROUP1, FD_DEVICE1, FD_GROUP2, FD_DEVICE2, NR_FDS };

struct child_msg {
	int err;		/* 0 or -errno */
	uint64_t bar_size;
	char why[200];
};

static int send_fds(int sock, const struct child_msg *msg, const int *fds, int nfds)
{
	char cbuf[CMSG_SPACE(sizeof(int) * NR_FDS)] = { 0 };
	struct iovec iov = { .iov_base = (void *)msg, .iov_len = sizeof(*msg) };
	struct msghdr mh = { .msg_iov = &iov, .msg_iovlen = 1 };
	struct cmsghdr *cm;

	if (nfds) {
		mh.msg_control = cbuf;
		mh.msg_controllen = CMSG_SPACE(sizeof(int) * nfds);
		cm = CMSG_FIRSTHDR(&mh);
		cm->cmsg_level = SOL_SOCKET;
		cm->cmsg_type = SCM_RIGHTS;
		cm->cmsg_len = CMSG_LEN(sizeof(int) * nfds);
		memcpy(CMSG_DATA(cm), fds, sizeof(int) * nfds);
	}
	return sendmsg(sock, &mh, 0) == sizeof(*msg) ? 0 : -errno;
}

/* Receives the message and up to NR_FDS fds; returns the number of fds or -errno. */
static int recv_fds(int sock, struct child_msg *msg, int *fds)
{
	char cbuf[CMSG_SPACE(sizeof(int) * NR_FDS)];
	struct iovec iov = { .iov_base = msg, .iov_len = sizeof(*msg) };
	struct msghdr mh = {
		.msg_iov = &iov, .msg_iovlen = 1,
		.msg_control = cbuf, .msg_controllen = sizeof(cbuf),
	};
	struct cmsghdr *cm;
	ssize_t n = recvmsg(sock, &mh, MSG_CMSG_CLOEXEC);

	if (n < 0)
		return -errno;
	if (n != sizeof(*msg))
		return -EPROTO;
	cm = CMSG_FIRSTHDR(&mh);
	if (!cm || cm->cmsg_type != SCM_RIGHTS)
		return 0;
	n = (cm->cmsg_len - CMSG_LEN(0)) / sizeof(int);
	memcpy(fds, CMSG_DATA(cm), n * sizeof(int));
	return (int)n;
}

/*
 * The child: container with edu #1 and edu #2, edu #2's BAR mmap()ed (not
 * touched) and mapped at PEER_IOVA; sends the fds, waits for a byte, exits.
 * No harness assertions here (this is a fork of the test).
 */
static void __attribute__((noreturn)) mm_owner_child(int sock)
{
	struct child_msg msg = { 0 };
	struct edu e1;
	int fds[NR_FDS], g2 = -1, d2 = -1;
	uint64_t off = 0, size = 0;
	char go;
	void *bar;

	msg.err = edu_open(&e1, edu_bdf(0), -1, VFIO_TYPE1v2_IOMMU, msg.why, sizeof(msg.why));
	if (msg.err)
		goto out;
	msg.err = peer_open(e1.container, edu_bdf(1), &g2, &d2, &off, &size, msg.why,
			    sizeof(msg.why));
	if (msg.err)
		goto out;
	bar = bar0_mmap(d2, off, size, PROT_READ | PROT_WRITE);
	if (bar == MAP_FAILED) {
		msg.err = -errno;
		snprintf(msg.why, sizeof(msg.why), "mmap BAR0: %s", strerror(errno));
		goto out;
	}
	msg.err = vfio_map(e1.container, PEER_IOVA, bar, size, RW);
	if (msg.err) {
		snprintf(msg.why, sizeof(msg.why), "MAP_DMA of edu #2's BAR: %s",
			 strerror(-msg.err));
		goto out;
	}
	msg.bar_size = size;
	fds[FD_CONTAINER] = e1.container;
	fds[FD_GROUP1] = e1.group;
	fds[FD_DEVICE1] = e1.device;
	fds[FD_GROUP2] = g2;
	fds[FD_DEVICE2] = d2;
	if (send_fds(sock, &msg, fds, NR_FDS))
		_exit(2);
	/* Keep the mm until the parent has checked the mapping. */
	if (read(sock, &go, 1) != 1)
		_exit(3);
	_exit(0);
out:
	send_fds(sock, &msg, NULL, 0);
	_exit(1);
}

/*
 * (e) The process that owns the mm of a PFNMAP mapping exits. The container
 * (and the groups and device fds) live on in this process, received over a
 * unix socket; its mapping of edu #2's BAR must be revoked when the child's
 * mm is torn down.
 */
TEST_F_TIMEOUT(p2p, revoke_on_mm_owner_exit, P2P_TIMEOUT)
{
	struct child_msg msg = { 0 };
	int sv[2], fds[NR_FDS], nfds, status = 0;
	uint64_t rev0 = 0, bar_off, bar_size;
	volatile uint8_t *mine;
	pid_t pid;
	void *m;

	REQUIRE_REVOKE(self->c);
	/* The child needs both groups: hand them over (a group opens once). */
	ASSERT_EQ(0, vfio_unmap_all(self->c, NULL));
	munmap((void *)self->bar, self->bar_size);
	self->bar = NULL;
	close(self->d2);
	close(self->g2);
	self->d2 = self->g2 = -1;
	edu_close(&self->e1);
	self->c = -1;

	ASSERT_EQ(0, socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv));
	pid = fork();
	ASSERT_GE(pid, 0);
	if (pid == 0) {
		close(sv[0]);
		mm_owner_child(sv[1]);
	}
	close(sv[1]);
	nfds = recv_fds(sv[0], &msg, fds);
	if (nfds != NR_FDS) {
		waitpid(pid, &status, 0);
		ASSERT_EQ(NR_FDS, nfds) TH_LOG("child: %s (%s)", msg.why, strerror(-msg.err));
	}
	/* Now the fixture's container is the child's; the fixture cleans up. */
	self->c = self->e1.container = fds[FD_CONTAINER];
	self->e1.own_container = true;
	self->e1.group = fds[FD_GROUP1];
	self->e1.device = fds[FD_DEVICE1];
	snprintf(self->e1.bdf, sizeof(self->e1.bdf), "%s", edu_bdf(0));
	self->g2 = fds[FD_GROUP2];
	self->d2 = fds[FD_DEVICE2];
	self->bar_size = msg.bar_size;
	ASSERT_EQ(0, vfio_bar0_region(self->e1.device, &bar_off, &bar_size));
	m = bar0_mmap(self->e1.device, bar_off, bar_size, PROT_READ | PROT_WRITE);
	ASSERT_NE(MAP_FAILED, m);
	self->e1.bar0 = m;
	self->e1.bar0_size = bar_size;
	ASSERT_EQ(EDU_ID_VALUE, edu_read32(&self->e1, EDU_REG_ID));
	/* Our own RAM page for the read-back, in our mm. */
	ASSERT_EQ(0, vfio_map(self->c, RAM_IOVA, self->ram, PAGE_4K, RW));

	self->efd = eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
	ASSERT_GE(self->efd, 0);
	ASSERT_EQ(0, revoke_eventfd(self->c, self->efd, &rev0));
	ASSERT_PEER_ID(PEER_IOVA);
	EXPECT_EQ(0, eventfd_wait(self->efd, 0));

	/* Let the child exit; its mm goes with it. */
	ASSERT_EQ(1, write(sv[0], "g", 1));
	ASSERT_EQ(pid, waitpid(pid, &status, 0));
	ASSERT_TRUE(WIFEXITED(status) && WEXITSTATUS(status) == 0) TH_LOG("child status %#x", status);
	close(sv[0]);

	EXPECT_PEER_CUT(PEER_IOVA, "mm owner exited");
	/* edu #2 itself is fine: its BAR answers through our own mmap, not through the IOVA. */
	ASSERT_EQ(0, vfio_bar0_region(self->d2, &self->bar_off, &bar_size));
	m = bar0_mmap(self->d2, self->bar_off, self->bar_size, PROT_READ | PROT_WRITE);
	ASSERT_NE(MAP_FAILED, m);
	self->bar = mine = m;
	ASSERT_EQ(EDU_ID_VALUE, mmio_read32(mine, EDU_REG_ID));
	EXPECT_PEER_WRITE_CUT(PEER_IOVA, mine);
	revoke_verify(_metadata, self, rev0);
}

TEST_HARNESS_MAIN
