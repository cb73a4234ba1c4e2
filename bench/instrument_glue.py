#!/usr/bin/env python3
"""Instrument a COPY of rvfio's rust/glue.c for analysis (scripts/bench.sh
with RVFIO_INSTRUMENT=1; never applied to the source tree).

Every C function rvfio's map and unmap paths go through is wrapped with
ktime_get_ns() and call/page counters, and the ioctl entry point is timed per
command. The totals are read from /sys/module/rvfio/parameters/bench_stats
(bench/bench-init.sh prints it at the end of a boot, as "### STATS ...").
What the ioctl total has beyond the wrapped C calls is the Rust side's own
work (bookkeeping, per-page checks, allocations).

usage: instrument_glue.py GLUE_C   (rewrites the file in place)
"""
import re
import sys

path = sys.argv[1]
s = open(path).read()

# Wrapped functions and their counter. Signatures are read from the source
# (they change between revisions); "npages" counts pages when present.
WRAP = {
    "rvfio_pin_pfns": "BS_PIN",
    "rvfio_pin_runs": "BS_PIN",
    "rvfio_lock_acct": "BS_ACCT",
    "rvfio_domain_map": "BS_MAP",
    "rvfio_domain_map_atomic": "BS_MAP",
    "rvfio_domain_map_runs": "BS_MAP",
    "rvfio_unpin_pfns": "BS_UNPIN",
    "rvfio_pfn_is_reserved": "BS_RSVD",
}

stats = """
/* ---- bench instrumentation (bench/instrument_glue.py) ---- */
#include <linux/ktime.h>
enum { BS_PIN, BS_ACCT, BS_MAP, BS_UNPIN, BS_RSVD, BS_IOCTL_MAP, BS_IOCTL_UNMAP, BS_N };
static const char *const bs_name[BS_N] = {
	"pin_pfns", "lock_acct", "iommu_map", "unpin_pfns", "pfn_is_reserved",
	"ioctl_map_dma", "ioctl_unmap_dma",
};
static atomic64_t bs_ns[BS_N], bs_calls[BS_N], bs_pages[BS_N];
static void bs_add(int i, u64 t0, long pages)
{
	atomic64_add(ktime_get_ns() - t0, &bs_ns[i]);
	atomic64_inc(&bs_calls[i]);
	atomic64_add(pages, &bs_pages[i]);
}
static int bs_get(char *buf, const struct kernel_param *kp)
{
	int i, n = 0;

	for (i = 0; i < BS_N; i++)
		n += sysfs_emit_at(buf, n, "%s calls=%lld pages=%lld ns=%lld\\n", bs_name[i],
				   atomic64_read(&bs_calls[i]), atomic64_read(&bs_pages[i]),
				   atomic64_read(&bs_ns[i]));
	return n;
}
static int bs_set(const char *val, const struct kernel_param *kp)
{
	int i;

	for (i = 0; i < BS_N; i++) {
		atomic64_set(&bs_ns[i], 0);
		atomic64_set(&bs_calls[i], 0);
		atomic64_set(&bs_pages[i], 0);
	}
	return 0;
}
static const struct kernel_param_ops bs_ops = { .get = bs_get, .set = bs_set };
module_param_cb(bench_stats, &bs_ops, NULL, 0644);
"""

# Only in some revisions (PFNMAP revocation maps under a spinlock; pinning
# and mapping moved from pfn lists to runs).
OPTIONAL = {"rvfio_domain_map", "rvfio_domain_map_atomic", "rvfio_pin_pfns", "rvfio_pin_runs",
            "rvfio_domain_map_runs"}

# Rename the real definitions, then add timed wrappers with the old names.
done = []
wrappers = []
for name, idx in WRAP.items():
    pat = re.compile(r"^((?:[A-Za-z_]\w*[ \t\*]+)+)" + name + r"\(([^)]*)\)\s*\{", re.M)
    m = pat.search(s)
    if not m:
        if name in OPTIONAL:
            continue
        sys.exit(f"instrument_glue: {name} not found in {path}")
    ret = m.group(1).strip()
    params = " ".join(m.group(2).split())
    args = ", ".join(re.findall(r"(\w+)\s*(?:,|$)", params))
    pages = "npages" if re.search(r"\bnpages\b", args) else None
    s = s[:m.start()] + "static " + m.group(1) + name + "__real(" + s[m.start(2):]
    # Calls of the function inside glue.c itself (e.g. pfn_is_reserved from
    # pin_pfns) keep going through the wrapper: only the definition moved.
    if ret == "void":
        body = f"\tu64 t0 = ktime_get_ns();\n\n\t{name}__real({args});\n" \
               f"\tbs_add({idx}, t0, {pages or 0});\n"
    elif name == "rvfio_pfn_is_reserved":
        body = f"\tatomic64_inc(&bs_calls[{idx}]);\n\treturn {name}__real({args});\n"
    else:
        body = f"\tu64 t0 = ktime_get_ns();\n\t{ret} r = {name}__real({args});\n\n" \
               f"\tbs_add({idx}, t0, {('r > 0 ? r : 0') if pages else 0});\n\treturn r;\n"
    wrappers.append(f"{ret} {name}({params})\n{{\n{body}}}\n")
    done.append(name)

# Forward declarations of the __real functions are not needed when the
# wrappers come last; but pin_pfns calls pfn_is_reserved before its
# definition, so declare the wrapper names (glue.h does) and put the stats
# block first.
first_fn = s.index("/* Same names, types")
s = s[:first_fn] + stats + "\n" + s[first_fn:]

# The ioctl entry point, timed per command.
s = s.replace("\t.ioctl\t\t= rvfio_rs_ioctl,", "\t.ioctl\t\t= rvfio_ioctl_timed,")
table = s.index("static const struct vfio_iommu_driver_ops rvfio_ops")
s = s[:table] + """static long rvfio_ioctl_timed(void *data, unsigned int cmd, unsigned long arg)
{
	u64 t0 = ktime_get_ns();
	long r = rvfio_rs_ioctl(data, cmd, arg);

	if (cmd == VFIO_IOMMU_MAP_DMA)
		bs_add(BS_IOCTL_MAP, t0, 0);
	else if (cmd == VFIO_IOMMU_UNMAP_DMA)
		bs_add(BS_IOCTL_UNMAP, t0, 0);
	return r;
}

""" + s[table:]
s += "\n/* ---- timed wrappers ---- */\n" + "\n".join(wrappers)
if "rvfio_ioctl_timed," not in s:
    sys.exit("instrument_glue: ops table .ioctl not found")
open(path, "w").write(s)
print(f"instrument_glue: {path}: {', '.join(done)} and the ioctl entry timed")
