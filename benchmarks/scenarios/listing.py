"""listing: cache bookkeeping over many entries.

    python listing.py --storage DIR --n 10000

Populates N cached entries (serial backend; timed as info only), then, with a fresh Lab, times
``lab.cached_tasks([Listed])`` (which must list all N) and ``lab.uncache_tasks(tasks)`` for all N.

Where the library has a cache browser (``Lab.browse_cache``: labtech_nb, not labtech), it also
times, on another fresh Lab before uncaching, ``lab.browse_cache()`` up to the first page being
shown: the widget built with its first page of rows and its display bundle (text and HTML, as a
notebook asks for) produced. Its widgets talk to a recording comm, as they would to a kernel.
"""

from __future__ import annotations

import os
from typing import Any

import labtech
from _bench import FrontEndRecorder, Timer, argument_parser, count_entries, emit
from _tasks import Listed


def time_browser_first_page(storage: str, n: int) -> tuple[float, dict[str, Any]]:
    """Seconds from ``lab.browse_cache()`` on a fresh Lab to its first page being displayable."""
    with Timer() as imports:
        import ipywidgets  # noqa: F401  (already imported in a notebook kernel: not part of the timing)
    recorder = FrontEndRecorder().install()
    lab = labtech.Lab(storage=storage, max_workers=1, runner_backend="serial")
    with Timer() as browse:
        browser = lab.browse_cache()
        bundle = browser._repr_mimebundle_()
    rows = browser.page_entries()
    assert len(rows) == min(n, browser.page_size), (len(rows), browser.page_size)
    assert str(n) in bundle["text/plain"] and "<table" in bundle["text/html"], bundle["text/plain"][:200]
    messages = recorder.counts()
    return browse.seconds, {
        "browser_rows_on_first_page": len(rows),
        "browser_frontend_messages": messages["messages"],
        "browser_frontend_bytes": messages["bytes"],
        "ipywidgets_import_s": imports.seconds,
    }


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

    metrics = {"cached_tasks_s": listing.seconds}
    info: dict[str, Any] = {}
    if hasattr(labtech.Lab, "browse_cache"):
        metrics["browser_first_page_s"], info = time_browser_first_page(storage, args.n)

    with Timer() as uncache:
        lab.uncache_tasks(tasks)
    remaining = count_entries(storage)
    assert remaining == 0, remaining

    emit(
        {**metrics, "uncache_tasks_s": uncache.seconds},
        {
            "n": args.n,
            "populate_s": populate.seconds,
            "cached_tasks_us_per_entry": listing.seconds / args.n * 1e6,
            "uncache_tasks_us_per_entry": uncache.seconds / args.n * 1e6,
            **info,
        },
    )


if __name__ == "__main__":
    main()
