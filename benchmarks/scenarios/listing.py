"""listing: cache bookkeeping over many entries.

    python listing.py --storage DIR --n 10000

Populates N cached entries (serial backend; timed as info only), then, with a fresh Lab, times
``lab.cached_tasks([Listed])`` (which must list all N) and ``lab.uncache_tasks(tasks)`` for all N.
"""

from __future__ import annotations

import os

import labtech
from _bench import Timer, argument_parser, count_entries, emit
from _tasks import Listed


def main() -> None:
    parser = argument_parser(__doc__)
    parser.add_argument("--n", type=int, required=True)
    args = parser.parse_args()
    storage = os.path.join(args.storage, "listing")

    tasks = [Listed(i=i) for i in range(args.n)]
    lab = labtech.Lab(storage=storage, max_workers=1, runner_backend="serial")
    with Timer() as populate:
        lab.run_tasks(tasks, disable_progress=True, disable_top=True)

    lab = labtech.Lab(storage=storage, max_workers=1, runner_backend="serial")
    with Timer() as listing:
        listed = lab.cached_tasks([Listed])
    assert len(listed) == args.n, (len(listed), args.n)
    assert {task.i for task in listed} == set(range(args.n))

    with Timer() as uncache:
        lab.uncache_tasks(tasks)
    remaining = count_entries(storage)
    assert remaining == 0, remaining

    emit(
        {
            "cached_tasks_s": listing.seconds,
            "uncache_tasks_s": uncache.seconds,
        },
        {
            "n": args.n,
            "populate_s": populate.seconds,
            "cached_tasks_us_per_entry": listing.seconds / args.n * 1e6,
            "uncache_tasks_us_per_entry": uncache.seconds / args.n * 1e6,
        },
    )


if __name__ == "__main__":
    main()
