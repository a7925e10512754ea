"""fanout: one task returning a large array, feeding many dependents that each return a number.

    python fanout.py --storage DIR --mb 50 --dependents 200 --backend fork

Measures how each backend moves one large dependency result to many tasks: wall time of the whole
run (the source task, its caching, and every dependent), and the peak memory of the parent and of
the worker processes (sampled with psutil every ``--sample-ms`` milliseconds, 25 by default, plus
getrusage for waited-for workers).
"""

from __future__ import annotations

import os
import resource

import labtech
from _bench import MemorySampler, Timer, argument_parser, emit, maxrss_mb
from _tasks import Dependent, Source

PROCESS_BACKENDS = {"fork", "spawn", "fork-per-task"}
POOL_BACKENDS = {"fork", "spawn"}


def main() -> None:
    parser = argument_parser(__doc__)
    parser.add_argument("--mb", type=float, required=True)
    parser.add_argument("--dependents", type=int, required=True)
    parser.add_argument("--backend", required=True)
    parser.add_argument("--sample-ms", type=float, default=25.0, help="how often memory is sampled")
    args = parser.parse_args()
    storage = os.path.join(args.storage, "fanout")

    source = Source(mb=args.mb)
    tasks = [Dependent(source=source, i=i) for i in range(args.dependents)]
    lab = labtech.Lab(storage=storage, max_workers=args.max_workers, runner_backend=args.backend)
    with MemorySampler(interval=args.sample_ms / 1000) as sampler:
        sampler.phase()
        with Timer() as wall:
            results = lab.run_tasks(tasks, disable_progress=True, disable_top=True)
        peaks = sampler.phase()
    assert len(results) == args.dependents
    assert results[tasks[-1]] == 1.0 + (args.dependents - 1)

    # getrusage peaks are exact (this process's whole life, imports included; the largest waited-for
    # worker); the sampled ones can miss short peaks but see workers that are never waited for.
    metrics = {"wall_s": wall.seconds, "parent_peak_rss_mb": max(peaks["parent_rss_mb"], maxrss_mb())}
    if args.backend in PROCESS_BACKENDS:
        metrics["worker_peak_rss_mb"] = max(peaks["worker_rss_mb"], maxrss_mb(resource.RUSAGE_CHILDREN))
    if args.backend in POOL_BACKENDS:
        # Summed USS is sampled; only pool workers live long enough to be sampled reliably.
        metrics["workers_peak_uss_mb"] = peaks["workers_uss_mb"]
    emit(
        metrics,
        {
            "backend": args.backend,
            "mb": args.mb,
            "dependents": args.dependents,
            "samples": peaks["samples"],
            "sampled_parent_rss_mb": peaks["parent_rss_mb"],
            "sampled_worker_rss_mb": peaks["worker_rss_mb"],
            "sampled_workers_uss_mb": peaks["workers_uss_mb"],
        },
    )


if __name__ == "__main__":
    main()
