"""dashboard (labtech_nb only): what the live notebook dashboard costs a run.

    python dashboard.py --storage DIR --n 5000 [--rounds 2]

Runs N trivial tasks on the fork backend (a first run: compute and cache, each run in a new storage
directory and with a fresh Lab), once with no view at all and once with the notebook dashboard
attached: a ``DashboardView`` (the observer a notebook run gets, with its default options) passed
through ``observers=``. Its widgets send through a recording comm that serialises each message to
JSON, as a kernel would, and counts it; nothing is displayed.

After an untimed warm-up of both kinds, each round runs no view, dashboard, dashboard, no view, so
that a machine that speeds up or slows down during the measurement affects both alike. Each wall
time is the fastest of its runs: other load on the machine only ever adds time.

Metrics: wall time with no view and with the dashboard (s); the dashboard's overhead (%) measured
two ways: as the difference of the wall times, and as the time spent inside the dashboard's observer
calls (where all its work happens, on the coordinating thread) over the wall time with no view. The
second is far less disturbed by other load on the machine. Also: the messages sent to the front
end during one dashboard run.
"""

from __future__ import annotations

import itertools
import os
import time
from statistics import mean
from typing import Any

import labtech
from _bench import FrontEndRecorder, Timer, argument_parser, emit, library_info
from _tasks import Trivial

OPTIONS = {"disable_progress": True, "disable_top": True}  # no terminal view: the dashboard is the only one


class TimedObserver:
    """Passes every event on to an observer and adds up the time the observer takes."""

    def __init__(self, observer: Any) -> None:
        self.observer = observer
        self.seconds = 0.0

    def __call__(self, event: Any) -> None:
        start = time.perf_counter()
        try:
            self.observer(event)
        finally:
            self.seconds += time.perf_counter() - start


def timed_run(storage: str, n: int, max_workers: int, observers: list[Any]) -> tuple[float, float]:
    """Wall time and this (the coordinating) process's CPU time of one run, in seconds."""
    lab = labtech.Lab(storage=storage, max_workers=max_workers, runner_backend="fork")
    tasks = [Trivial(i=i) for i in range(n)]
    cpu_before = time.process_time()
    with Timer() as run:
        results = lab.run_tasks(tasks, observers=observers, **OPTIONS)
    cpu = time.process_time() - cpu_before
    assert len(results) == n and results[tasks[-1]] == n - 1
    return run.seconds, cpu


def main() -> None:
    parser = argument_parser(__doc__)
    parser.add_argument("--n", type=int, required=True)
    parser.add_argument("--rounds", type=int, default=2, help="rounds of four runs (no view, dashboard twice, no view)")
    args = parser.parse_args()
    if library_info()["impl"] != "labtech_nb":
        raise SystemExit("the dashboard scenario needs labtech_nb (labtech has no notebook dashboard)")
    from labtech_nb.notebook.dashboard import DashboardView

    recorder = FrontEndRecorder().install()
    runs = itertools.count()

    def run(n: int, dashboard: bool) -> tuple[tuple[float, float], TimedObserver | None]:
        storage = os.path.join(args.storage, f"run-{next(runs)}")
        view = TimedObserver(DashboardView(display=False)) if dashboard else None
        return timed_run(storage, n, args.max_workers, [view] if view else []), view

    warm_up = min(args.n, 200)
    run(warm_up, dashboard=False)
    run(warm_up, dashboard=True)
    recorder.counts()

    no_view: list[tuple[float, float]] = []
    with_dashboard: list[tuple[float, float]] = []
    messages, refreshes, observer_s = [], [], []
    for dashboard in (False, True, True, False) * args.rounds:
        times, view = run(args.n, dashboard)
        (with_dashboard if dashboard else no_view).append(times)
        if view is not None:
            counts = recorder.counts()
            messages.append(counts)
            refreshes.append(view.observer.dashboard.refresh_count)
            observer_s.append(view.seconds)
            assert view.observer.progress.state == "finished", view.observer.progress.state
            assert counts["messages"] > 0, "the dashboard sent nothing: the recording comm is not installed"

    no_view_s, no_view_cpu_s = min(wall for wall, _ in no_view), min(cpu for _, cpu in no_view)
    dashboard_s, dashboard_cpu_s = min(wall for wall, _ in with_dashboard), min(cpu for _, cpu in with_dashboard)
    emit(
        {
            "no_view_s": no_view_s,
            "dashboard_s": dashboard_s,
            "dashboard_overhead_pct": (dashboard_s / no_view_s - 1) * 100,
            "dashboard_observer_pct": min(observer_s) / no_view_s * 100,
            "frontend_messages": mean(m["messages"] for m in messages),
        },
        {
            "n": args.n,
            "backend": "fork",
            "no_view_runs_s": [wall for wall, _ in no_view],
            "dashboard_runs_s": [wall for wall, _ in with_dashboard],
            "no_view_runs_parent_cpu_s": [cpu for _, cpu in no_view],
            "dashboard_runs_parent_cpu_s": [cpu for _, cpu in with_dashboard],
            "parent_cpu_overhead_pct": (dashboard_cpu_s / no_view_cpu_s - 1) * 100,
            "dashboard_observer_s": observer_s,
            "frontend_bytes": [m["bytes"] for m in messages],
            "frontend_messages_by_type": [m["by_type"] for m in messages],
            "dashboard_refreshes": refreshes,
        },
    )


if __name__ == "__main__":
    main()
