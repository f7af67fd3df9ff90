"""`grpo bench sandbox`: per-execution overhead of the full sandbox stack, and executions per second.

Overhead is the wall time of one `print(1)` execution, from the trainer's call to its return
(starting bwrap, namespaces, the bootstrap's limits and seccomp filter, the interpreter, teardown),
measured one at a time, with the CPU time all of that costs (a figure that load on the machine
inflates far less than wall time); throughput runs the same program on a pool with one slot per core.
Figures go to docs/performance.md, never into a test's assertion.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import time


def _percentile(values: list[float], share: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(round(share * (len(ordered) - 1))))]


def _cpu_seconds() -> float:
    """CPU seconds of this process and every waited-for descendant (bwrap, the bootstrap, the program)."""
    import resource

    own, children = resource.getrusage(resource.RUSAGE_SELF), resource.getrusage(resource.RUSAGE_CHILDREN)
    return own.ru_utime + own.ru_stime + children.ru_utime + children.ru_stime


def main(args: argparse.Namespace) -> int:
    """Print one JSON line: overhead median and p90 (ms), executions per second, layers, load."""
    from grpo.sandbox.pool import SandboxPool
    from grpo.sandbox.runner import Job

    job = Job("script", "print(1)")
    load_before = os.getloadavg()
    single = SandboxPool(workers=1, announce=False)
    single.execute(job)  # warm the page cache
    times = []
    cpu_before = _cpu_seconds()
    for _ in range(args.executions):
        start = time.perf_counter()
        result = single.execute(job)
        times.append(time.perf_counter() - start)
        if result.stdout != b"1\n":
            raise RuntimeError(f"print(1) did not print 1: {result.summary()}")
    cpu_ms = 1000 * (_cpu_seconds() - cpu_before) / args.executions
    single.close()
    pool = SandboxPool(workers=args.workers, announce=False)
    start = time.perf_counter()
    pool.map([job] * args.parallel)
    throughput = args.parallel / (time.perf_counter() - start)
    pool.close()
    print(json.dumps({
        "benchmark": "sandbox", "program": "print(1)", "executions": args.executions,
        "overhead_ms": {"median": round(1000 * statistics.median(times), 1),
                        "p90": round(1000 * _percentile(times, 0.9), 1), "min": round(1000 * min(times), 1)},
        "cpu_ms_per_execution": round(cpu_ms, 1), "executions_per_s": round(throughput, 1),
        "workers": pool.workers, "layers": sorted(pool.host.layers),
        "loadavg_before": [round(x, 2) for x in load_before], "loadavg_after": [round(x, 2) for x in os.getloadavg()],
        "cores": os.cpu_count()}))
    return 0
