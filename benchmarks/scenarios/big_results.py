"""big_results: many tasks each returning a large array, on the fork backend.

    python big_results.py --storage DIR --tasks 20 --mb 100

Times the first run (compute, transfer to the parent, cache) and a cached reload (a fresh Lab on the
same storage, in a second process of the same interpreter, started before the first run while the
parent is still small, so that its peak RSS is its own), and reports each process's peak RSS from
getrusage (exact, not sampled; Linux keeps a process's peak across exec, hence the early start). The results total tasks x mb,
which the parent must hold at the end since run_tasks returns them all.
"""

from __future__ import annotations

import json
import os
import resource
import subprocess
import sys

import labtech
from _bench import MemorySampler, Timer, argument_parser, emit, maxrss_mb
from _tasks import Big


def run(args, tasks: list) -> float:  # type: ignore[no-untyped-def]
    lab = labtech.Lab(
        storage=os.path.join(args.storage, "big_results"), max_workers=args.max_workers, runner_backend=args.backend
    )
    with Timer() as timer:
        results = lab.run_tasks(tasks, disable_progress=True, disable_top=True)
    assert len(results) == args.tasks and float(results[tasks[-1]][0]) == args.tasks - 1
    return timer.seconds


def main() -> None:
    parser = argument_parser(__doc__)
    parser.add_argument("--tasks", type=int, required=True)
    parser.add_argument("--mb", type=float, required=True)
    parser.add_argument("--backend", default="fork")
    parser.add_argument("--cached-phase", action="store_true", help="internal: only the cached reload")
    args = parser.parse_args()
    tasks = [Big(i=i, mb=args.mb) for i in range(args.tasks)]
    baseline = maxrss_mb()

    if args.cached_phase:
        if sys.stdin.readline().strip() != "go":
            return
        seconds = run(args, tasks)
        print(json.dumps({"cached_s": seconds, "maxrss_mb": maxrss_mb(), "baseline_mb": baseline}), flush=True)
        return

    child = subprocess.Popen(
        [sys.executable, *sys.argv, "--cached-phase"],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        with MemorySampler() as sampler:
            first_s = run(args, tasks)
            first_peaks = sampler.phase()
        first_peak = maxrss_mb()
        first_worker_peak = maxrss_mb(resource.RUSAGE_CHILDREN)
        stdout, _ = child.communicate("go\n", timeout=600)
    finally:
        if child.poll() is None:
            child.kill()
            child.wait()
    if child.returncode != 0:
        raise RuntimeError(f"cached phase failed with exit code {child.returncode}")
    cached = json.loads(stdout.strip().splitlines()[-1])
    emit(
        {
            "first_s": first_s,
            "cached_s": cached["cached_s"],
            "first_parent_peak_rss_mb": first_peak,
            "cached_parent_peak_rss_mb": cached["maxrss_mb"],
            "first_worker_peak_rss_mb": first_worker_peak,
            "first_workers_peak_uss_mb": first_peaks["workers_uss_mb"],
        },
        {
            "tasks": args.tasks,
            "mb": args.mb,
            "results_total_mb": args.tasks * args.mb,
            "parent_baseline_rss_mb": baseline,
            "cached_parent_baseline_rss_mb": cached["baseline_mb"],
        },
    )


if __name__ == "__main__":
    main()
