"""`make bench`: every benchmark, printing measured figures (not a test: nothing asserts)."""

from bench import apply_bench, plan_bench, report_bench, sandbox_bench, settle_bench, status_bench

plan_bench.report(plan_bench.run())
plan_bench.report_formats(plan_bench.run_formats())
sandbox_bench.report(sandbox_bench.run())
apply_bench.report(apply_bench.run())
settle_bench.report(settle_bench.run())
status_bench.report(status_bench.run())
report_bench.report(report_bench.run())
