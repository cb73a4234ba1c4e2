// SPDX-License-Identifier: GPL-2.0
/* fault_inject.c - see fault_inject.h. */
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/syscall.h>
#include <unistd.h>

#include "fault_inject.h"

#define DEBUGFS "/sys/kernel/debug"

static int read_file(const char *path, char *buf, size_t len)
{
	int fd = open(path, O_RDONLY | O_CLOEXEC);
	ssize_t n;

	if (fd < 0)
		return -errno;
	n = read(fd, buf, len - 1);
	close(fd);
	if (n < 0)
		return -errno;
	buf[n] = '\0';
	buf[strcspn(buf, "\n")] = '\0';
	return 0;
}

static int write_file(const char *path, const char *val)
{
	int fd = open(path, O_WRONLY | O_CLOEXEC);
	ssize_t n;

	if (fd < 0)
		return -errno;
	n = write(fd, val, strlen(val));
	close(fd);
	if (n < 0)
		return -errno;
	return (size_t)n == strlen(val) ? 0 : -EIO;
}

/*
 * The module's code: .text of /sys/module/<mod>/sections is its start; its
 * other code sections and its symbols (/proc/kallsyms, types t/T) may reach
 * further. The end is the first code symbol above the module's last one
 * that belongs to someone else (or 64 KiB past it), so that the range never
 * covers another module's code.
 */
int module_text_range(const char *mod, uint64_t *start, uint64_t *end,
		      char *why, size_t whylen)
{
	char path[256], buf[64], line[512], tag[140];
	uint64_t lo, hi = 0, next = UINT64_MAX;
	FILE *f;
	int ret;

	snprintf(path, sizeof(path), "/sys/module/%s/sections/.text", mod);
	ret = read_file(path, buf, sizeof(buf));
	if (ret) {
		snprintf(why, whylen, "%s: %s", path, strerror(-ret));
		return ret;
	}
	lo = strtoull(buf, NULL, 16);
	if (!lo) {
		snprintf(why, whylen, "%s reads 0 (kptr_restrict?)", path);
		return -EPERM;
	}
	snprintf(tag, sizeof(tag), "[%s]", mod);
	f = fopen("/proc/kallsyms", "re");
	if (!f) {
		ret = -errno;
		snprintf(why, whylen, "/proc/kallsyms: %s", strerror(errno));
		return ret;
	}
	/* First pass: the module's own code symbols. */
	while (fgets(line, sizeof(line), f)) {
		char type, name[256], owner[140] = "";
		uint64_t a;

		if (sscanf(line, "%" SCNx64 " %c %255s %139s", &a, &type, name, owner) < 3)
			continue;
		if ((type != 't' && type != 'T') || strcmp(owner, tag))
			continue;
		if (a < lo)
			lo = a;
		if (a > hi)
			hi = a;
	}
	if (!hi) {
		fclose(f);
		snprintf(why, whylen, "no code symbol of %s in /proc/kallsyms", mod);
		return -ENOENT;
	}
	/* Second pass: the nearest foreign code symbol above it. */
	rewind(f);
	while (fgets(line, sizeof(line), f)) {
		char type, name[256], owner[140] = "";
		uint64_t a;

		if (sscanf(line, "%" SCNx64 " %c %255s %139s", &a, &type, name, owner) < 3)
			continue;
		if ((type != 't' && type != 'T') || !strcmp(owner, tag))
			continue;
		if (a > hi && a < next)
			next = a;
	}
	fclose(f);
	*start = lo;
	*end = next != UINT64_MAX && next - hi < 0x10000 ? next : hi + 0x10000;
	return 0;
}

/* The debugfs files fi_setup() changes: dir/file = value. */
static const struct {
	const char *dir, *file;
	const char *val;	/* NULL: the require range */
} fi_knobs[] = {
	{ "failslab", "require-start", NULL },
	{ "failslab", "require-end", NULL },
	{ "failslab", "stacktrace-depth", "32" },
	{ "failslab", "ignore-gfp-wait", "N" },
	{ "failslab", "verbose", "0" },
	{ "fail_page_alloc", "require-start", NULL },
	{ "fail_page_alloc", "require-end", NULL },
	{ "fail_page_alloc", "stacktrace-depth", "32" },
	{ "fail_page_alloc", "ignore-gfp-wait", "N" },
	{ "fail_page_alloc", "ignore-gfp-highmem", "N" },
	{ "fail_page_alloc", "min-order", "0" },
	{ "fail_page_alloc", "verbose", "0" },
	{ "fail_usercopy", "require-start", NULL },
	{ "fail_usercopy", "require-end", NULL },
	{ "fail_usercopy", "stacktrace-depth", "32" },
	{ "fail_usercopy", "verbose", "0" },
};
#define FI_NKNOBS (sizeof(fi_knobs) / sizeof(fi_knobs[0]))
static char fi_saved[FI_NKNOBS][64];
static bool fi_have_saved;

void fi_restore(void)
{
	char path[256];

	if (!fi_have_saved)
		return;
	for (size_t i = 0; i < FI_NKNOBS; i++) {
		snprintf(path, sizeof(path), DEBUGFS "/%s/%s", fi_knobs[i].dir, fi_knobs[i].file);
		write_file(path, fi_saved[i]);
	}
	fi_have_saved = false;
}

int fi_setup(uint64_t start, uint64_t end, char *why, size_t whylen)
{
	char path[256], val[64];
	int ret;

	if (access(DEBUGFS "/failslab", F_OK) || access(DEBUGFS "/fail_page_alloc", F_OK) ||
	    access(DEBUGFS "/fail_usercopy", F_OK)) {
		snprintf(why, whylen, "no " DEBUGFS "/{failslab,fail_page_alloc,fail_usercopy}: "
			 "CONFIG_FAILSLAB, FAIL_PAGE_ALLOC, FAULT_INJECTION_USERCOPY or "
			 "FAULT_INJECTION_DEBUG_FS is off, or debugfs is not mounted");
		return -ENOENT;
	}
	if (access("/proc/self/fail-nth", F_OK)) {
		snprintf(why, whylen, "no /proc/self/fail-nth (CONFIG_FAULT_INJECTION)");
		return -ENOENT;
	}
	for (size_t i = 0; i < FI_NKNOBS; i++) {
		snprintf(path, sizeof(path), DEBUGFS "/%s/%s", fi_knobs[i].dir, fi_knobs[i].file);
		ret = read_file(path, fi_saved[i], sizeof(fi_saved[i]));
		if (ret) {
			snprintf(why, whylen, "%s: %s%s", path, strerror(-ret),
				 strstr(fi_knobs[i].file, "require") ?
				 " (CONFIG_FAULT_INJECTION_STACKTRACE_FILTER?)" : "");
			return ret;
		}
	}
	fi_have_saved = true;
	for (size_t i = 0; i < FI_NKNOBS; i++) {
		const char *v = fi_knobs[i].val;

		if (!v) {
			snprintf(val, sizeof(val), "%#" PRIx64,
				 !strcmp(fi_knobs[i].file, "require-start") ? start : end);
			v = val;
		}
		snprintf(path, sizeof(path), DEBUGFS "/%s/%s", fi_knobs[i].dir, fi_knobs[i].file);
		ret = write_file(path, v);
		if (ret) {
			snprintf(why, whylen, "write %s to %s: %s", v, path, strerror(-ret));
			fi_restore();
			return ret;
		}
	}
	return 0;
}

int fail_nth_open(struct fail_nth *f)
{
	char path[64];

	snprintf(path, sizeof(path), "/proc/self/task/%ld/fail-nth", (long)syscall(SYS_gettid));
	f->fd = open(path, O_RDWR | O_CLOEXEC);
	return f->fd < 0 ? -errno : 0;
}

void fail_nth_close(struct fail_nth *f)
{
	if (f->fd >= 0)
		close(f->fd);
	f->fd = -1;
}

int fail_nth_arm(struct fail_nth *f, unsigned int n)
{
	char buf[16];
	int len = snprintf(buf, sizeof(buf), "%u", n);

	return pwrite(f->fd, buf, len, 0) == len ? 0 : -errno;
}

long fail_nth_disarm(struct fail_nth *f)
{
	char buf[32] = "";
	ssize_t n;

	/*
	 * Reading and writing this file run outside any module's code, so
	 * the stack filter keeps them from being failed themselves.
	 */
	n = pread(f->fd, buf, sizeof(buf) - 1, 0);
	if (n <= 0)
		return n < 0 ? -errno : -EIO;
	buf[n] = '\0';
	if (pwrite(f->fd, "0", 1, 0) != 1)
		return -errno;
	return strtol(buf, NULL, 10);
}

static void hash_u64(uint64_t *h, uint64_t v)
{
	for (int i = 0; i < 8; i++) {
		*h ^= (v >> (8 * i)) & 0xff;
		*h *= 0x100000001b3ull;
	}
}

void iommu_pt_fingerprint(const char *bdf, struct iommu_pt_print *p)
{
	char path[256], line[512];
	int header = 0;
	FILE *f;

	memset(p, 0, sizeof(*p));
	p->hash = 0xcbf29ce484222325ull;
	snprintf(path, sizeof(path),
		 "/sys/kernel/debug/iommu/intel/%s/domain_translation_struct", bdf);
	f = fopen(path, "re");
	if (!f) {
		p->ret = -errno;
		return;
	}
	while (fgets(line, sizeof(line), f)) {
		uint64_t pfn, v, leaf = 0;
		char *s, *end;

		if (!strncmp(line, "Device ", 7) || !strncmp(line, "IOVA_PFN", 8)) {
			header++;
			continue;
		}
		if (strncmp(line, "0x", 2))
			continue;
		pfn = strtoull(line, &end, 16);
		s = strchr(end, '|');
		if (!s)
			continue;
		for (s++;; s = end) {
			v = strtoull(s, &end, 16);
			if (end == s)
				break;
			if (v)
				leaf = v;
		}
		if (!p->leaves)
			p->first_pfn = pfn;
		p->last_pfn = pfn;
		p->leaves++;
		hash_u64(&p->hash, pfn);
		hash_u64(&p->hash, leaf);
	}
	fclose(f);
	if (!header)
		p->ret = -ENODATA;
}

long kernel_taint(void)
{
	char buf[32];
	int ret = read_file("/proc/sys/kernel/tainted", buf, sizeof(buf));

	return ret ? ret : strtol(buf, NULL, 10);
}

bool kernel_warned_since(long taint0)
{
	long t = kernel_taint();

	return taint0 >= 0 && !(taint0 & (1l << TAINT_WARN_BIT)) && t >= 0 &&
	       (t & (1l << TAINT_WARN_BIT));
}
