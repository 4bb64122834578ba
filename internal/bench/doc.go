// Package bench is Tombstone's benchmark suite: `make bench` runs it and prints one table.
//
// It holds only tests. Every benchmark builds (or reuses) demo datasets with one big tenant,
// bigco, owning 10k, 1M and, with BENCH_LARGE=1, 10M rows next to 99 ordinary tenants, repeats
// each measurement BENCH_RUNS times (at least 3) inside a single benchmark iteration, measures
// its baseline in the same run, and records a Figure. When the benchmarks end, TestMain prints
// the table (median, min–max, baseline median, ratio, target and whether it is met) and, with
// BENCH_OUT set, writes it as Markdown with the machine description and the command.
//
// The sections:
//
//   - preview: the exact preview of bigco against hand-written join counts over the same tree,
//     the time to planner estimates, and the peak RSS of the process;
//   - execution: Tombstone's hard delete against PostgreSQL's own ON DELETE CASCADE on an
//     identical copy, its soft delete against a hand-written UPDATE of the same rows, archive on
//     against archive off, and a row-by-row loop as the slow peer. Each run works on a fresh
//     copy of the dataset (CREATE DATABASE ... TEMPLATE), dropped afterwards;
//   - console and audit: page latency under load and the audit export.
//
// Environment:
//
//	BENCH_SIZES=10000,100000  rows under bigco (default 10000,1000000; BENCH_LARGE=1 adds 10000000)
//	BENCH_RUNS=5              measured runs per figure (default and minimum 3)
//	BENCH_OUT=docs/benchmarks.md  write the table there (relative to the module root)
//	BENCH_KEEP=1              keep the datasets (tsbench_<rows>_*) and reuse them next time
//	BENCH_ROW_LOOP_MAX=N      largest dataset the row-by-row loop runs on (default 1000000)
package bench
