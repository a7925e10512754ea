"""load: a 20,000-task DAG around one shared large dependency, with chains of large intermediate results.

    python load.py --storage DIR --leaves 17960 --chains 40 --links 50 --link-mb 5 --shared-mb 20 --backend serial

The DAG of the reliability suite's load test (tests/reliability/test_load.py), with its own task
types (``_tasks.py``): one task returns a ``--shared-mb`` array that every other task depends on,
directly or through its chain; ``--chains`` chains of ``--links`` links each return a fresh
``--link-mb`` array that only the next link reads, and each chain ends in a task returning a number;
``--leaves`` tasks return a number. Nothing is cached (``storage=None``): the scenario measures how
long the lab holds results in memory, not the cache. Holding every result until the end would take
chains x links x link-mb + shared-mb (10,020 MiB at full size); a lab that releases each result once
no pending task needs it holds about one array per chain.

Metrics: wall time of ``run_tasks`` and the lab process's peak RSS (getrusage, for the whole life of
the process, imports included; exact, not sampled). With a process backend, also the largest
worker's peak RSS (the larger of a psutil sample every 25 ms and getrusage(RUSAGE_CHILDREN)).
"""

from __future__ import annotations

import resource

import labtech
import psutil
from _bench import MB, MemorySampler, Timer, argument_parser, emit, maxrss_mb
from _tasks import LoadChainEnd, LoadLeaf, LoadLink, LoadShared

PROCESS_BACKENDS = {"fork", "spawn", "fork-per-task"}


def main() -> None:
    parser = argument_parser(__doc__)
    parser.add_argument("--leaves", type=int, required=True)
    parser.add_argument("--chains", type=int, required=True)
    parser.add_argument("--links", type=int, required=True)
    parser.add_argument("--link-mb", type=float, required=True)
    parser.add_argument("--shared-mb", type=float, required=True)
    parser.add_argument("--backend", default="serial")
    args = parser.parse_args()

    with Timer() as build:
        shared = LoadShared(mb=args.shared_mb)
        ends = []
        for chain in range(args.chains):
            previous = None
            for link in range(args.links):
                previous = LoadLink(chain=chain, link=link, shared=shared, mb=args.link_mb, previous=previous)
            ends.append(LoadChainEnd(last=previous))
        leaves = [LoadLeaf(i=i, shared=shared) for i in range(args.leaves)]
        tasks = [*leaves, *ends]
    task_count = 1 + args.leaves + args.chains * (args.links + 1)

    lab = labtech.Lab(storage=None, max_workers=args.max_workers, runner_backend=args.backend)
    options = {"disable_progress": True, "disable_top": True}
    baseline_rss = psutil.Process().memory_info().rss / MB
    baseline_maxrss = maxrss_mb()
    if args.backend in PROCESS_BACKENDS:
        with MemorySampler() as sampler:
            sampler.phase()
            with Timer() as wall:
                results = lab.run_tasks(tasks, **options)
            peaks = sampler.phase()
    else:
        # In-process backends: getrusage is exact, and a sampling thread would only compete for the GIL.
        peaks = None
        with Timer() as wall:
            results = lab.run_tasks(tasks, **options)
    parent_peak = maxrss_mb()

    # Link k of every chain holds k + shared[0] = k + 1: each link read its predecessor's array.
    assert len(results) == len(tasks)
    assert all(results[leaf] == leaf.i + 1 for leaf in leaves)
    assert {results[end] for end in ends} == ({float(args.links)} if ends else set())

    metrics = {"wall_s": wall.seconds, "parent_peak_rss_mb": parent_peak}
    info = {
        "backend": args.backend,
        "tasks": task_count,
        "leaves": args.leaves,
        "chains": args.chains,
        "links": args.links,
        "link_mb": args.link_mb,
        "shared_mb": args.shared_mb,
        "storage": None,
        "build_s": build.seconds,
        "us_per_task": wall.seconds / task_count * 1e6,
        # RSS once the tasks are built, just before run_tasks, and the process's peak until then.
        "baseline_rss_mb": baseline_rss,
        "baseline_peak_rss_mb": baseline_maxrss,
        "peak_above_baseline_mb": parent_peak - baseline_rss,
        # What the lab would hold at the end if it released no result.
        "unreleased_mb": args.chains * args.links * args.link_mb + args.shared_mb,
    }
    if peaks is not None:
        metrics["worker_peak_rss_mb"] = max(peaks["worker_rss_mb"], maxrss_mb(resource.RUSAGE_CHILDREN))
        info.update(
            samples=peaks["samples"],
            sampled_parent_rss_mb=peaks["parent_rss_mb"],
            sampled_worker_rss_mb=peaks["worker_rss_mb"],
            sampled_workers_uss_mb=peaks["workers_uss_mb"],
        )
    emit(metrics, info)


if __name__ == "__main__":
    main()
