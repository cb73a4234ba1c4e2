#!/usr/bin/env python3
"""Instrument a COPY of rvfio's sources for analysis (scripts/bench.sh with
RVFIO_INSTRUMENT=1; never applied to the source tree).

The timing itself is Rust (rust/instrument.rs), compiled in when the module
is built with `--cfg rvfio_instrument` (bench.sh passes it). What has to be C
is the module parameter the totals are read and reset through,
/sys/module/rvfio/parameters/bench_stats: this script appends it to the
copy's glue.c. bench/rvfio_bench.c prints the totals per case ("BENCH-STATS"
lines, one per timed path) and resets them; bench/report.py tabulates them.

usage: instrument_glue.py GLUE_C   (appends to the file in place)
"""
import os
import sys

path = sys.argv[1]
if not os.path.exists(os.path.join(os.path.dirname(path), "instrument.rs")):
    sys.exit(f"instrument_glue: {os.path.dirname(path)} has no instrument.rs: "
             "this revision predates the Rust-side instrumentation")
block = """
/* ---- bench instrumentation (bench/instrument_glue.py; rust/instrument.rs) ---- */
long rvfio_rs_bench_stats(char *buf, size_t len);
void rvfio_rs_bench_reset(void);

static int rvfio_bench_stats_get(char *buf, const struct kernel_param *kp)
{
	return rvfio_rs_bench_stats(buf, PAGE_SIZE);
}

static int rvfio_bench_stats_set(const char *val, const struct kernel_param *kp)
{
	rvfio_rs_bench_reset();
	return 0;
}

static const struct kernel_param_ops rvfio_bench_stats_ops = {
	.get = rvfio_bench_stats_get,
	.set = rvfio_bench_stats_set,
};
module_param_cb(bench_stats, &rvfio_bench_stats_ops, NULL, 0644);
"""
with open(path, "a") as f:
    f.write(block)
print(f"instrument_glue: {path}: bench_stats parameter added")
