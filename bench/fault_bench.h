/* SPDX-License-Identifier: GPL-2.0 */
/* The "faults" case of rvfio_bench (bench/fault_bench.c). */
#ifndef FAULT_BENCH_H
#define FAULT_BENCH_H

/* BENCH-FAULT lines for backend (rvfio or iommufd), reps repetitions;
 * BENCH-SKIP faults for the others. */
void case_faults(const char *backend, int reps);

#endif /* FAULT_BENCH_H */
