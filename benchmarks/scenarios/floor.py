"""floor: what the per-task work costs in bare Python, with no library at all.

    python floor.py --storage DIR --n 5000

- pickle_rename_us_per_task: pickle a small result to a temporary file, then rename it into place
  (the least a crash-safe file cache can do per task).
- entry_us_per_task: the same as a labtech-style entry: a staging directory holding data.pickle and
  a small metadata.json, renamed into place.
- pool_roundtrip_us_per_task: submit a trivial call to a ``concurrent.futures.ProcessPoolExecutor``
  (fork, max_workers workers, already started) and collect its result, for N calls.

This scenario imports no library: run under both interpreters it is a control (ratio ≈ 1 shows the
two environments are equivalent), and its numbers are the floor the trivial scenario is compared to.
"""

from __future__ import annotations

import json
import multiprocessing
import os
import pickle
from concurrent.futures import ProcessPoolExecutor

from _bench import Timer, argument_parser, emit


def identity(i: int) -> int:
    return i


def main() -> None:
    parser = argument_parser(__doc__)
    parser.add_argument("--n", type=int, required=True)
    args = parser.parse_args()
    n = args.n

    files = os.path.join(args.storage, "files")
    os.makedirs(files)
    with Timer() as bare:
        for i in range(n):
            final = os.path.join(files, f"task{i}.pickle")
            tmp = final + ".tmp"
            with open(tmp, "wb") as f:
                pickle.dump(i, f, protocol=pickle.HIGHEST_PROTOCOL)
            os.rename(tmp, final)

    entries = os.path.join(args.storage, "entries")
    os.makedirs(entries)
    with Timer() as entry:
        for i in range(n):
            staging = os.path.join(entries, f".staging-{i}")
            os.mkdir(staging)
            with open(os.path.join(staging, "data.pickle"), "wb") as f:
                pickle.dump(i, f, protocol=pickle.HIGHEST_PROTOCOL)
            with open(os.path.join(staging, "metadata.json"), "w") as f:
                json.dump({"task": "Trivial", "params": {"i": i}, "duration": 0.0}, f)
            os.rename(staging, os.path.join(entries, f"pickle__Trivial__{i}"))

    context = multiprocessing.get_context("fork")
    with ProcessPoolExecutor(max_workers=args.max_workers, mp_context=context) as pool:
        list(pool.map(identity, range(args.max_workers * 4)))  # start the workers
        with Timer() as roundtrip:
            futures = [pool.submit(identity, i) for i in range(n)]
            total = sum(future.result() for future in futures)
    assert total == n * (n - 1) // 2

    emit(
        {
            "pickle_rename_us_per_task": bare.seconds / n * 1e6,
            "entry_us_per_task": entry.seconds / n * 1e6,
            "pool_roundtrip_us_per_task": roundtrip.seconds / n * 1e6,
        },
        {"n": n},
        library=False,
    )


if __name__ == "__main__":
    main()
