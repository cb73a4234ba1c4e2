/* SPDX-License-Identifier: GPL-2.0 */
/*
 * fault_inject.h - systematic fault injection for the rvfio selftests
 * (Documentation/fault-injection/fault-injection.rst in the kernel tree).
 *
 * fi_setup() prepares the kernel's failslab, fail_page_alloc and
 * fail_usercopy attributes (debugfs) so that only calls made with the given
 * module's code on the stack can be failed, sleeping and highmem allocations
 * and order-0 pages included; fi_restore() puts the old settings back.
 * Failures are then requested per thread through
 * /proc/self/task/<tid>/fail-nth: fail_nth_arm(n) makes the n-th fallible
 * call of this thread (counting only calls that pass the stack filter) fail;
 * fail_nth_disarm() stops it and tells whether the failure was injected.
 *
 * Also: the leaf entries of a device's IOMMU page table as a fingerprint
 * (iommu_pt_fingerprint), to compare a container's translations before and
 * after a failed call.
 */
#ifndef FAULT_INJECT_H
#define FAULT_INJECT_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/* [start, end) of mod's code, from /sys/module and /proc/kallsyms. 0 or -errno. */
int module_text_range(const char *mod, uint64_t *start, uint64_t *end,
		      char *why, size_t whylen);

/*
 * Restricts failslab, fail_page_alloc and fail_usercopy to calls with
 * [start, end) on the stack (stacktrace-depth 32) and lets them fail
 * sleeping, highmem and order-0 allocations. Saves the old values for
 * fi_restore(). 0 or -errno (why set).
 */
int fi_setup(uint64_t start, uint64_t end, char *why, size_t whylen);
/* Restores what fi_setup() changed. */
void fi_restore(void);

struct fail_nth {
	int fd;		/* /proc/self/task/<tid>/fail-nth, or -1 */
};

/* Opens the calling thread's fail-nth file. 0 or -errno. */
int fail_nth_open(struct fail_nth *f);
void fail_nth_close(struct fail_nth *f);
/* The n-th (n >= 1) fallible call from now on fails. 0 or -errno. */
int fail_nth_arm(struct fail_nth *f, unsigned int n);
/*
 * Disarms and returns how many fallible calls were still to come before the
 * failure: 0 means the failure was injected, -errno if the file could not
 * be read.
 */
long fail_nth_disarm(struct fail_nth *f);

/*
 * A fingerprint of bdf's IOMMU page table: the number of leaf entries and a
 * hash of (IOVA pfn, leaf value) of each. The upper-level entries (which
 * hold page-table page addresses) are left out, so two domains mapping the
 * same pages at the same IOVAs compare equal. -ENODATA for a device with no
 * page table (blocked or no domain), else 0 or -errno.
 */
struct iommu_pt_print {
	int ret;
	long leaves;
	uint64_t hash;
	uint64_t first_pfn, last_pfn;
};
void iommu_pt_fingerprint(const char *bdf, struct iommu_pt_print *p);

/* TAINT_WARN (W): the kernel has WARNed since boot. */
#define TAINT_WARN_BIT		9
/* /proc/sys/kernel/tainted, or -errno. */
long kernel_taint(void);
/*
 * Whether the kernel WARNed since kernel_taint() read taint0. W stays set
 * once set, so only a first WARN can be seen: false while it was set.
 */
bool kernel_warned_since(long taint0);

#endif /* FAULT_INJECT_H */
