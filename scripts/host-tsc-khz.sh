#!/usr/bin/env bash
# Prints the host's TSC rate in kHz (for the guest's tsc_early_khz=): under
# TCG the guest's TSC ticks at the host's rate, but a guest on a busy host
# calibrates it badly and its clock then runs fast or slow. Exit 1 when the
# rate cannot be found. Used by scripts/vm.sh and scripts/bench.sh.
set -u
mhz=$(dmesg 2>/dev/null | sed -n 's/.*tsc: Refined TSC clocksource calibration: \([0-9.]*\) MHz.*/\1/p' | tail -n1)
[ -n "$mhz" ] || mhz=$(dmesg 2>/dev/null | sed -n 's/.*tsc: Detected \([0-9.]*\) MHz processor.*/\1/p' | tail -n1)
[ -n "$mhz" ] || mhz=$(awk -F': *' '/^cpu MHz/ {print $2; exit}' /proc/cpuinfo)
[ -n "$mhz" ] || exit 1
awk -v m="$mhz" 'BEGIN { printf "%d\n", m * 1000 }'
