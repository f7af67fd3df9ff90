"""1,000 random small programs through the sandbox pool; prints one JSON line.

    python benchmarks/fuzz_sandbox.py [--count 1000] [--seed 0] [--workers 0]

Exit status 1 when anything was left behind or an execution ended in a sandbox error.
"""

from __future__ import annotations

import argparse
import json
import os
import sys

from grpo.sandbox.fuzz import fuzz
from grpo.sandbox.pool import SandboxPool


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--count", type=int, default=1000)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--workers", type=int, default=0)
    args = parser.parse_args()
    pool = SandboxPool(workers=args.workers)
    report = fuzz(pool, args.count, args.seed)
    pool.close()
    ok = not (report.bad_status or report.leftover_processes or report.leftover_dirs)
    print(json.dumps({"executions": report.executions, "statuses": report.statuses, "seconds": round(report.seconds, 1),
                      "slowest_s": round(report.slowest_s, 2), "leftover_processes": report.leftover_processes,
                      "leftover_dirs": report.leftover_dirs, "sandbox_errors": len(report.bad_status),
                      "trainer_alive": True, "layers": sorted(pool.host.layers), "loadavg": os.getloadavg()}))
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
