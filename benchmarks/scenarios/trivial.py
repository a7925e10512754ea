"""trivial: N tasks that return their parameter: per-task overhead of running and of loading from cache.

    python trivial.py --storage DIR --n 1000 --backend fork

Metrics (µs per task): first run (compute + cache) and cached re-run (a fresh Lab on the same storage).
"""

from __future__ import annotations

import os

import labtech
from _bench import Timer, argument_parser, count_entries, emit, maxrss_mb
from _tasks import Trivial


def main() -> None:
    parser = argument_parser(__doc__)
    parser.add_argument("--n", type=int, required=True)
    parser.add_argument("--backend", required=True)
    args = parser.parse_args()
    storage = os.path.join(args.storage, "trivial")
    options = {"disable_progress": True, "disable_top": True}

    with Timer() as build:
        tasks = [Trivial(i=i) for i in range(args.n)]

    lab = labtech.Lab(storage=storage, max_workers=args.max_workers, runner_backend=args.backend)
    with Timer() as first:
        results = lab.run_tasks(tasks, **options)
    assert len(results) == args.n and results[tasks[-1]] == args.n - 1
    entries = count_entries(storage)
    del results

    lab = labtech.Lab(storage=storage, max_workers=args.max_workers, runner_backend=args.backend)
    tasks = [Trivial(i=i) for i in range(args.n)]
    with Timer() as cached:
        results = lab.run_tasks(tasks, **options)
    assert len(results) == args.n and results[tasks[-1]] == args.n - 1

    emit(
        {
            "first_us_per_task": first.seconds / args.n * 1e6,
            "cached_us_per_task": cached.seconds / args.n * 1e6,
        },
        {
            "n": args.n,
            "backend": args.backend,
            "first_s": first.seconds,
            "cached_s": cached.seconds,
            "build_us_per_task": build.seconds / args.n * 1e6,
            "entries": entries,
            "parent_maxrss_mb": maxrss_mb(),
        },
    )


if __name__ == "__main__":
    main()
