"""What fresh memory costs on this machine: allocate N GB in 64 MiB blocks, touch every page,
and report the system time it took (the kernel zeroing and mapping the pages). Used in
docs/benchmarks.md to separate the machine's first-touch cost from the job's own work.

    python benches/memory_touch.py 1 6 6    # GB per run; each run in a fresh process
"""

import resource
import subprocess
import sys
import time

import numpy as np

BLOCK = 64 * 1024 * 1024
PAGE = 4096


def touch(gigabytes: float) -> None:
    before = resource.getrusage(resource.RUSAGE_SELF)
    started = time.time()
    blocks = []
    for _ in range(int(gigabytes * 1024 * 1024 * 1024 / BLOCK)):
        block = np.empty(BLOCK // 8, dtype=np.float64)
        block[:: PAGE // 8] = 1.0
        blocks.append(block)
    after = resource.getrusage(resource.RUSAGE_SELF)
    system = after.ru_stime - before.ru_stime
    print(
        f"gb={gigabytes} wall_s={time.time() - started:.2f} system_s={system:.2f} "
        f"system_s_per_gb={system / gigabytes:.3f} minor_faults={after.ru_minflt - before.ru_minflt}"
    )


if __name__ == "__main__":
    if len(sys.argv) == 3 and sys.argv[1] == "--one":
        touch(float(sys.argv[2]))
    else:
        for size in sys.argv[1:] or ["1", "6"]:
            subprocess.run([sys.executable, __file__, "--one", size], check=True)
