"""Benchmark labtech_nb against labtech 1.1.0 on identical scenarios.

Usage (from the repository root):

    .venv/bin/python benchmarks/run.py [--smoke] [--disk] [--out DIR] [--only NAME...]

- Creates (or reuses) ``.venv-labtech`` at the repository root, a virtual environment holding
  labtech==1.1.0, numpy, psutil and scikit-learn (the version this interpreter has, for the
  ``tutorial`` scenario). It is reused when it already imports labtech 1.1.0 and that
  scikit-learn; otherwise the missing packages are installed into it.
- Runs every scenario in ``benchmarks/scenarios/`` against both libraries, alternating between them
  within one session, each measurement in a fresh subprocess: ``.venv-labtech/bin/python`` for
  labtech, this interpreter for labtech_nb. For labtech_nb, ``benchmarks/shim`` is put on PYTHONPATH
  so that the scenarios' ``import labtech`` resolves to labtech_nb: the same code runs on both.
- Repeats each measurement 3 times (1 with ``--smoke``, which also uses small sizes), except labtech
  on ``load``, which runs once (about 10 minutes at full size).
- Storage lives in a RAM-backed directory (/dev/shm) by default, on disk with ``--disk``.
- Writes ``results.json`` and ``results.md`` (median, min-max, ratio labtech/labtech_nb and the
  machine description) into ``--out`` (default ``benchmarks/results/``).

The exit code is 0 when every measurement succeeded, 1 otherwise (the reports are written anyway).
See benchmarks/README.md for what each scenario measures and how to read the table.
"""

from __future__ import annotations

import argparse
import dataclasses
import datetime
import fcntl
import importlib.metadata
import json
import os
import platform
import resource
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import psutil

BENCH_DIR = Path(__file__).resolve().parent
REPO = BENCH_DIR.parent
SCENARIOS_DIR = BENCH_DIR / "scenarios"
SHIM_DIR = BENCH_DIR / "shim"
LABTECH_VENV = REPO / ".venv-labtech"
LABTECH_VERSION = "1.1.0"
LIBRARIES = ("labtech", "labtech_nb")
RESULT_PREFIX = "BENCH_RESULT "
BUSY_SHARE = 0.25  # a measurement during which other processes used more of the CPU is flagged as disturbed
EN_DASH, TIMES = "\u2013", "\u00d7"  # for the Markdown report
#: For the tutorial's scikit-learn fits: with two workers on two cores, multi-threaded BLAS
#: oversubscribes the machine, and one logistic regression then takes 0.5-4 s instead of 0.1 s.
ONE_BLAS_THREAD = {"OPENBLAS_NUM_THREADS": "1", "OMP_NUM_THREADS": "1", "MKL_NUM_THREADS": "1"}
SCENARIO_NAMES = ("trivial", "fanout", "listing", "big_results", "load", "tutorial", "dashboard", "floor")
DESCRIPTIONS = {
    "trivial": "N trivial tasks: first run (compute + cache) and cached re-run, per task",
    "fanout": "one large array result feeding many small dependents, per backend",
    "listing": "cached_tasks() and uncache_tasks() over many cached entries; labtech_nb also: the cache browser's first page",
    "big_results": "tasks returning large arrays on the fork backend: first run, cached reload, parent peak RSS",
    "load": "a 20,000-task DAG around one shared large dependency, with chains of large intermediate results, serial: wall time and peak RSS",
    "tutorial": "the labtech tutorial's final pipeline (scikit-learn, no mlflow) on fork: first run and cached re-run",
    "dashboard": "labtech_nb only: N trivial tasks on fork with no view and with the notebook dashboard attached",
    "floor": "no library: bare pickle+rename and ProcessPoolExecutor round trip (control: ratio ≈ 1)",
}
METRIC_LABELS = {
    "first_us_per_task": "first run",
    "cached_us_per_task": "cached re-run",
    "wall_s": "wall time",
    "parent_peak_rss_mb": "parent peak RSS",
    "worker_peak_rss_mb": "largest worker peak RSS",
    "workers_peak_uss_mb": "all workers' peak USS",
    "cached_tasks_s": "cached_tasks([T])",
    "uncache_tasks_s": "uncache_tasks(all)",
    "browser_first_page_s": "browse_cache() to first page",
    "first_run_s": "first run",
    "cached_rerun_s": "cached re-run",
    "no_view_s": "wall time, no view",
    "dashboard_s": "wall time, dashboard attached",
    "dashboard_overhead_pct": "dashboard overhead, wall time",
    "dashboard_observer_pct": "dashboard overhead, time in its observer",
    "frontend_messages": "messages to the front end",
    "first_s": "first run",
    "cached_s": "cached reload",
    "first_parent_peak_rss_mb": "parent peak RSS, first run",
    "cached_parent_peak_rss_mb": "parent peak RSS, cached reload",
    "first_worker_peak_rss_mb": "largest worker peak RSS, first run",
    "first_workers_peak_uss_mb": "all workers' peak USS, first run",
    "pickle_rename_us_per_task": "pickle to file + rename",
    "entry_us_per_task": "entry dir + data.pickle + metadata.json + rename",
    "pool_roundtrip_us_per_task": "ProcessPoolExecutor round trip",
}


@dataclasses.dataclass
class Case:
    scenario: str
    name: str
    args: list[str]
    params: dict[str, Any]
    #: labtech's fork backend needs about 11 ms per task for a first run plus a cached re-run, so
    #: 20,000 tasks take ~215 s on a quiet 2-core machine and over 300 s on a busy one.
    min_timeout: float = 0
    #: The libraries the case runs on: a scenario for a feature labtech lacks runs on labtech_nb only.
    libraries: tuple[str, ...] = LIBRARIES
    #: Extra environment variables of the scenario's process (both libraries).
    env: dict[str, str] = dataclasses.field(default_factory=dict)
    #: At most this many repeats for a library (the first ones), when fewer than --repeats.
    max_repeats: dict[str, int] = dataclasses.field(default_factory=dict)

    def repeats_for(self, library: str, repeats: int) -> int:
        return min(repeats, self.max_repeats.get(library, repeats)) if library in self.libraries else 0


def build_cases(smoke: bool) -> list[Case]:
    cases: list[Case] = []
    for n in [200] if smoke else [1_000, 5_000, 20_000]:
        for backend in ("serial", "fork"):
            cases.append(
                Case(
                    "trivial",
                    f"n={n} {backend}",
                    ["--n", str(n), "--backend", backend],
                    {"n": n, "backend": backend},
                    min_timeout=n * 0.045,
                )
            )
    mb, dependents = (5, 20) if smoke else (50, 200)
    # A smoke run's pool lives for a few tens of milliseconds: memory is sampled every 2 ms so that
    # its workers are seen at all (every 25 ms in a full run, where the sampling would cost time).
    sample_ms = 2 if smoke else 25
    for backend in ("serial", "thread", "fork", "spawn", "fork-per-task"):
        cases.append(
            Case(
                "fanout",
                f"{mb} MB -> {dependents} {backend}",
                ["--mb", str(mb), "--dependents", str(dependents), "--backend", backend, "--sample-ms", str(sample_ms)],
                {"mb": mb, "dependents": dependents, "backend": backend},
            )
        )
    n = 300 if smoke else 10_000
    cases.append(Case("listing", f"n={n}", ["--n", str(n)], {"n": n}))
    tasks, mb = (20, 5) if smoke else (20, 100)
    cases.append(
        Case(
            "big_results",
            f"{tasks} x {mb} MB fork",
            ["--tasks", str(tasks), "--mb", str(mb)],
            {"tasks": tasks, "mb": mb, "backend": "fork"},
        )
    )
    # The reliability suite's load DAG: 1 shared task, leaves, and chains of links, each chain ending
    # in one more task: 20,001 tasks at full size, 1,000 with --smoke.
    leaves, chains, links, link_mb, shared_mb = (955, 4, 10, 1, 4) if smoke else (17_960, 40, 50, 5, 20)
    tasks = 1 + leaves + chains * (links + 1)
    cases.append(
        Case(
            "load",
            f"{tasks} tasks: {chains} chains x {links} x {link_mb} MB, {shared_mb} MB shared, serial",
            [
                *("--leaves", str(leaves), "--chains", str(chains), "--links", str(links)),
                *("--link-mb", str(link_mb), "--shared-mb", str(shared_mb), "--backend", "serial"),
            ],
            {
                "tasks": tasks,
                "leaves": leaves,
                "chains": chains,
                "links": links,
                "link_mb": link_mb,
                "shared_mb": shared_mb,
                "backend": "serial",
            },
            # labtech's coordinator rehashes every pending task (each link's hash walks its whole
            # chain) after each task: ~10 minutes at 20,001 tasks on a busy 2-core machine, so it
            # runs once per full run, and is allowed 90 ms per task (30 minutes).
            min_timeout=tasks * 0.09,
            max_repeats={"labtech": 1},
        )
    )
    estimators, datasets = (2, "iris") if smoke else (10, "digits,iris")
    cases.append(
        Case(
            "tutorial",
            f"{datasets.replace(',', '+')}, RF 1-{estimators} + LR, fork",
            ["--estimators", str(estimators), "--datasets", datasets],
            {"estimators": estimators, "datasets": datasets.split(","), "backend": "fork", "env": ONE_BLAS_THREAD},
            env=ONE_BLAS_THREAD,
        )
    )
    n = 200 if smoke else 5_000
    rounds = 1 if smoke else 2
    cases.append(
        Case(
            "dashboard",
            f"n={n} fork",
            ["--n", str(n), "--rounds", str(rounds)],
            {"n": n, "backend": "fork", "rounds": rounds},
            libraries=("labtech_nb",),
        )
    )
    cases.append(Case("floor", f"n={n}", ["--n", str(n)], {"n": n}))
    return cases


def log(message: str) -> None:
    print(message, file=sys.stderr, flush=True)


# ---------------------------------------------------------------------------------------------
# The labtech virtual environment


def interpreter_versions(python: str, env: dict[str, str] | None = None) -> dict[str, str | None] | None:
    """Versions an interpreter imports (labtech, numpy, psutil are required; scikit-learn is None when missing)."""
    code = (
        "import json, sys, platform; import labtech, numpy, psutil\n"
        "try:\n    import sklearn; sklearn_version = sklearn.__version__\n"
        "except ImportError:\n    sklearn_version = None\n"
        "print(json.dumps({'labtech': labtech.__version__, 'numpy': numpy.__version__, "
        "'psutil': psutil.__version__, 'sklearn': sklearn_version, 'python': platform.python_version(), "
        "'executable': sys.executable}))"
    )
    try:
        out = subprocess.run(
            [python, "-c", code], capture_output=True, text=True, timeout=120, env=env, cwd=tempfile.gettempdir()
        )
    except (OSError, subprocess.TimeoutExpired):
        return None
    if out.returncode != 0:
        return None
    return json.loads(out.stdout.strip().splitlines()[-1])


def wanted_sklearn() -> str:
    """The scikit-learn requirement for .venv-labtech: the version labtech_nb's interpreter has, so
    that the ``tutorial`` scenario fits the same models on both sides."""
    # Read from the installed metadata, not by importing it: the scenarios' processes start from
    # this one, and Linux carries a process's peak RSS across fork and exec into their figures.
    try:
        return f"scikit-learn=={importlib.metadata.version('scikit-learn')}"
    except importlib.metadata.PackageNotFoundError:
        return "scikit-learn"


def labtech_venv_is_ready(versions: dict[str, str | None] | None, sklearn_requirement: str) -> bool:
    if not versions or versions["labtech"] != LABTECH_VERSION or versions.get("sklearn") is None:
        return False
    _, _, pinned = sklearn_requirement.partition("==")
    return not pinned or versions["sklearn"] == pinned


def ensure_labtech_venv() -> str:
    """Create .venv-labtech with labtech 1.1.0 and scikit-learn (or reuse it) and return its interpreter.

    An existing environment that lacks scikit-learn, or has another version of it than this
    interpreter, gets it installed (pip upgrades or downgrades in place).
    """
    python = LABTECH_VENV / "bin" / "python"
    sklearn_requirement = wanted_sklearn()
    # Serialise concurrent runs (e.g. a test and a manual run) on a lock held on this very file.
    with open(__file__) as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        versions = interpreter_versions(str(python)) if python.exists() else None
        if labtech_venv_is_ready(versions, sklearn_requirement):
            return str(python)
        if not python.exists():
            log(f"creating {LABTECH_VENV} ...")
            subprocess.run([sys.executable, "-m", "venv", str(LABTECH_VENV)], check=True)
        requirements = [f"labtech=={LABTECH_VERSION}", "numpy", "psutil", sklearn_requirement]
        log(f"installing {' '.join(requirements)} into {LABTECH_VENV} ...")
        subprocess.run(
            [str(python), "-m", "pip", "install", "--quiet", "--disable-pip-version-check", *requirements],
            check=True,
        )
        versions = interpreter_versions(str(python))
        if not labtech_venv_is_ready(versions, sklearn_requirement):
            raise SystemExit(
                f"{LABTECH_VENV} does not import labtech {LABTECH_VERSION} and {sklearn_requirement} after installation"
            )
    return str(python)


# ---------------------------------------------------------------------------------------------
# Machine description


def mount_of(path: Path) -> tuple[str, str, str]:
    """(device, mount point, filesystem type) of the mount holding path."""
    path = path.resolve()
    best = ("?", "/", "?")
    with open("/proc/mounts") as mounts:
        for line in mounts:
            device, point, fstype = line.split()[:3]
            if (path == Path(point) or Path(point) in path.parents) and len(point) >= len(best[1]):
                best = (device, point, fstype)
    return best


def storage_description(root: Path) -> str:
    device, point, fstype = mount_of(root)
    if fstype in {"tmpfs", "ramfs"}:
        return f"RAM-backed ({fstype} at {point}), directory {root}"
    kind = "disk"
    name = Path(device).name
    rotational = Path(f"/sys/block/{name}/queue/rotational")
    if rotational.exists():
        kind = "rotational disk" if rotational.read_text().strip() == "1" else "SSD"
        if Path(f"/sys/block/{name}/device/driver").exists() and "virtio" in os.path.realpath(f"/sys/block/{name}/device/driver"):
            kind += " (virtio virtual disk; the flag is the hypervisor's)"
    return f"{kind}: {fstype} on {device} at {point}, directory {root}"


def cpu_model() -> str:
    try:
        with open("/proc/cpuinfo") as cpuinfo:
            for line in cpuinfo:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown"


def machine_description(storage_root: Path, interpreters: dict[str, dict[str, str | None] | None]) -> dict[str, Any]:
    try:
        hypervisor = "yes" if "hypervisor" in Path("/proc/cpuinfo").read_text() else "no"
    except OSError:
        hypervisor = "unknown"
    commit = subprocess.run(["git", "rev-parse", "--short", "HEAD"], capture_output=True, text=True, cwd=REPO).stdout.strip()
    dirty = subprocess.run(
        ["git", "status", "--porcelain", "--untracked-files=no"], capture_output=True, text=True, cwd=REPO
    ).stdout.strip()
    return {
        "cpu": cpu_model(),
        "logical_cores": os.cpu_count(),
        "physical_cores": psutil.cpu_count(logical=False),
        "virtual_machine": hypervisor,
        "ram_gib": round(psutil.virtual_memory().total / 2**30, 1),
        "os": platform.platform(),
        "python": {lib: (info or {}).get("python") for lib, info in interpreters.items()},
        "numpy": {lib: (info or {}).get("numpy") for lib, info in interpreters.items()},
        "scikit_learn": {lib: (info or {}).get("sklearn") for lib, info in interpreters.items()},
        "library_versions": {lib: (info or {}).get("labtech") for lib, info in interpreters.items()},
        "storage": storage_description(storage_root),
        "openblas_env": {name: os.environ.get(name) for name in ("OPENBLAS_CORETYPE", "OPENBLAS_L2_SIZE")},
        "labtech_nb_commit": commit + ("+uncommitted changes" if dirty else ""),
    }


# ---------------------------------------------------------------------------------------------
# Running one measurement


def session_processes(sid: int) -> list[psutil.Process]:
    found = []
    for proc in psutil.process_iter(["pid"]):
        try:
            if proc.pid != os.getpid() and os.getsid(proc.pid) == sid and proc.status() != psutil.STATUS_ZOMBIE:
                found.append(proc)
        except (ProcessLookupError, PermissionError, psutil.Error):
            continue
    return found


def describe(proc: psutil.Process) -> str:
    try:
        return f"pid {proc.pid} {' '.join(proc.cmdline())[:200]}"
    except psutil.Error:
        return f"pid {proc.pid}"


def busy_cpu_seconds() -> float:
    """CPU seconds the whole machine has spent busy since boot (steal included: a busy host counts)."""
    times = psutil.cpu_times()
    total = sum(times) - getattr(times, "guest", 0) - getattr(times, "guest_nice", 0)  # guest is inside user
    return total - times.idle - getattr(times, "iowait", 0)


def children_cpu_seconds() -> float:
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime


def wait_for_quiet(max_wait: float, threshold: float = 25.0) -> float:
    """Wait (up to max_wait s) until the machine is less than threshold % busy; return the last reading."""
    deadline = time.monotonic() + max_wait
    busy = psutil.cpu_percent(interval=0.5)
    while busy >= threshold and time.monotonic() < deadline:
        busy = psutil.cpu_percent(interval=1.0)
    return busy


def run_measurement(
    case: Case, library: str, python: str, storage_root: Path, timeout: float, quiet_wait: float = 0
) -> dict[str, Any]:
    env = dict(os.environ)
    env.pop("PYTHONPATH", None)
    env["PYTHONUNBUFFERED"] = "1"
    env.update(case.env)
    if library == "labtech_nb":
        env["PYTHONPATH"] = str(SHIM_DIR)
    storage = Path(tempfile.mkdtemp(prefix=f"labtech-bench-{case.scenario}-", dir=storage_root))
    command = [python, str(SCENARIOS_DIR / f"{case.scenario}.py"), "--storage", str(storage), *case.args]
    record: dict[str, Any] = {"library": library, "ok": False, "busy_before_pct": wait_for_quiet(quiet_wait)}
    busy_before, own_before = busy_cpu_seconds(), children_cpu_seconds()
    start = time.perf_counter()
    proc = subprocess.Popen(
        command, env=env, cwd=storage, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, start_new_session=True
    )
    try:
        stdout, stderr = proc.communicate(timeout=timeout)
    except subprocess.TimeoutExpired:
        os.killpg(proc.pid, signal.SIGKILL)
        stdout, stderr = proc.communicate()
        record["error"] = f"timed out after {timeout:.0f} s"
    record["process_s"] = time.perf_counter() - start
    # How much of the machine other processes used meanwhile: all busy CPU time minus the
    # measurement's own (its waited-for process tree). Above ~0.25 the timings are disturbed.
    others = (busy_cpu_seconds() - busy_before) - (children_cpu_seconds() - own_before)
    record["others_cpu_share"] = max(0.0, others) / (record["process_s"] * (os.cpu_count() or 1))
    record["returncode"] = proc.returncode

    # Anything left in the measurement's session once its main process has gone is a leftover
    # (a worker that outlived its parent). Give it a moment to exit on its own, then kill it.
    leftovers = session_processes(proc.pid)
    deadline = time.monotonic() + 3
    while leftovers and time.monotonic() < deadline:
        time.sleep(0.1)
        leftovers = session_processes(proc.pid)
    if leftovers:
        record["leftover_processes"] = [describe(p) for p in leftovers]
        for p in leftovers:
            try:
                p.kill()
            except psutil.Error:
                pass
    shutil.rmtree(storage, ignore_errors=True)

    lines = [line for line in stdout.splitlines() if line.startswith(RESULT_PREFIX)]
    if lines and "error" not in record and proc.returncode == 0:
        payload = json.loads(lines[-1][len(RESULT_PREFIX) :])
        impl = payload["library"]["impl"]
        if impl not in (None, library):
            record["error"] = f"scenario ran {impl!r} instead of {library!r}"
        else:
            record.update(ok=True, metrics=payload["metrics"], info=payload["info"], python=payload["python"])
    elif "error" not in record:
        record["error"] = f"exit code {proc.returncode}" + ("" if lines else ", no result line")
    if not record["ok"]:
        record["stderr_tail"] = stderr[-3000:]
        record["stdout_tail"] = stdout[-1000:]
    elif stderr.strip():
        record["stderr_tail"] = stderr[-1000:]
    return record


# ---------------------------------------------------------------------------------------------
# Aggregation and reports


def unit_of(metric: str) -> str:
    if metric.endswith("_us_per_task"):
        return "µs/task"
    if metric.endswith("_mb"):
        return "MiB"
    if metric.endswith("_s"):
        return "s"
    if metric.endswith("_pct"):
        return "%"
    return ""


def summarise(values: list[float]) -> dict[str, Any]:
    return {"values": values, "median": statistics.median(values), "min": min(values), "max": max(values)}


def aggregate(cases: list[Case], runs: dict[tuple[str, str], dict[str, list[dict[str, Any]]]]) -> dict[str, Any]:
    scenarios: dict[str, Any] = {}
    for case in cases:
        by_lib = runs[(case.scenario, case.name)]
        metric_names: list[str] = []
        for records in by_lib.values():
            for record in records:
                for name in record.get("metrics", {}):
                    if name not in metric_names:
                        metric_names.append(name)
        metrics: dict[str, Any] = {}
        for name in metric_names:
            entry: dict[str, Any] = {"unit": unit_of(name), "label": METRIC_LABELS.get(name, name), "not_measured": []}
            for lib in LIBRARIES:
                succeeded = [r for r in by_lib.get(lib, []) if r.get("ok")]
                values = [r["metrics"][name] for r in succeeded if name in r["metrics"]]
                entry[lib] = summarise(values) if values else None
                # Not run on this library, or run fine without reporting the metric: the library
                # lacks the feature ("—" in the table). None with no such mark means it failed.
                if lib not in case.libraries or (succeeded and not values):
                    entry["not_measured"].append(lib)
            if entry["labtech"] and entry["labtech_nb"] and entry["labtech_nb"]["median"] > 0:
                entry["ratio"] = entry["labtech"]["median"] / entry["labtech_nb"]["median"]
            else:
                entry["ratio"] = None
            metrics[name] = entry
        scenario = scenarios.setdefault(case.scenario, {"description": DESCRIPTIONS[case.scenario], "cases": {}})
        scenario["cases"][case.name] = {"params": case.params, "metrics": metrics, "runs": by_lib}
    return scenarios


def fmt(value: float) -> str:
    if value >= 100:
        return f"{value:,.0f}"
    if value >= 10:
        return f"{value:.1f}"
    if value >= 1:
        return f"{value:.2f}"
    return f"{value:.3g}"


def cell(summary: dict[str, Any] | None, not_measured: bool = False) -> str:
    if not summary:
        return "—" if not_measured else "failed"
    if len(summary["values"]) == 1:
        return fmt(summary["median"])
    return f"{fmt(summary['median'])} ({fmt(summary['min'])}{EN_DASH}{fmt(summary['max'])})"


def floor_comparison(scenarios: dict[str, Any]) -> list[str]:
    """labtech_nb's per-task cost on the largest trivial case next to the bare-Python floor."""
    trivial = scenarios.get("trivial", {}).get("cases", {})
    floor_cases = scenarios.get("floor", {}).get("cases", {})
    if not trivial or not floor_cases:
        return []
    floor = next(iter(floor_cases.values()))["metrics"]

    def median(metrics: dict[str, Any], name: str, lib: str = "labtech_nb") -> float | None:
        entry = metrics.get(name)
        return entry[lib]["median"] if entry and entry.get(lib) else None

    rows = []
    largest = max(case["params"]["n"] for case in trivial.values())
    for name, case in trivial.items():
        params = case["params"]
        if params["n"] != largest:
            continue
        first = median(case["metrics"], "first_us_per_task")
        cached = median(case["metrics"], "cached_us_per_task")
        if params["backend"] == "serial":
            floor_first, recipe = median(floor, "entry_us_per_task"), "entry write"
        else:
            a, b = median(floor, "pool_roundtrip_us_per_task"), median(floor, "entry_us_per_task")
            floor_first, recipe = (a + b if a is not None and b is not None else None), "pool round trip + entry write"
        if first is not None and floor_first:
            rows.append(f"| {name} first run | {fmt(first)} | {fmt(floor_first)} ({recipe}) | {first / floor_first:.1f}{TIMES} |")
        if cached is not None:
            labtech_cached = median(case["metrics"], "cached_us_per_task", "labtech")
            extra = f" (labtech: {fmt(labtech_cached)})" if labtech_cached else ""
            rows.append(f"| {name} cached re-run | {fmt(cached)}{extra} | — | — |")
    if not rows:
        return []
    return [
        "### Distance to the floor (labtech_nb, µs per task)",
        "",
        "| trivial case | labtech_nb | bare-Python floor | labtech_nb / floor |",
        "|---|---:|---:|---:|",
        *rows,
        "",
    ]


def markdown(report: dict[str, Any]) -> str:
    machine = report["machine"]
    config = report["config"]
    lines = [
        "| scenario | case | metric | labtech 1.1.0 | labtech_nb | labtech / labtech_nb |",
        "|---|---|---|---:|---:|---:|",
    ]
    for scenario_name, scenario in report["scenarios"].items():
        for case_name, case in scenario["cases"].items():
            for metric in case["metrics"].values():
                ratio = f"{metric['ratio']:.2f}{TIMES}" if metric["ratio"] is not None else "—"
                label = f"{metric['label']} ({metric['unit']})" if metric["unit"] else metric["label"]
                cells = [cell(metric[lib], lib in metric.get("not_measured", ())) for lib in LIBRARIES]
                lines.append(f"| {scenario_name} | {case_name} | {label} | {' | '.join(cells)} | {ratio} |")
    header = [
        "# labtech_nb vs labtech 1.1.0 benchmark",
        "",
        f"Run {config['started']} → {config['finished']}; {config['repeats']} repeat(s) per measurement"
        f"{' (smoke sizes)' if config['smoke'] else ''}; max_workers=2.",
        f"Cells: median (min{EN_DASH}max) over the repeats. Ratio: labtech median / labtech_nb median, so above 1 means",
        "labtech_nb is faster or uses less memory.",
        "",
    ]
    fewer = config.get("fewer_repeats") or {}
    if fewer:
        header[-1:] = [
            "Fewer repeats (a single value is shown): " + "; ".join(f"{where}: {count}" for where, count in fewer.items()) + ".",
            "",
        ]
    single_library = any(
        metric.get("not_measured")
        for scenario in report["scenarios"].values()
        for case in scenario["cases"].values()
        for metric in case["metrics"].values()
    )
    if single_library:
        header[-1:] = ["— means not measured: labtech has no such feature (the cache browser, the notebook dashboard).", ""]
    load = report.get("machine_load") or {}
    if load.get("measurements"):
        header[-1:] = [
            f"Other processes on the machine used {load['others_cpu_share_median']:.0%} of its CPU during the median "
            f"measurement (at most {load['others_cpu_share_max']:.0%}); {len(load['disturbed'])} of {load['measurements']} "
            f"measurements ran while they used more than {load['disturbed_threshold']:.0%} (listed in results.json).",
            "",
        ]
    machine_lines = [
        "### Machine",
        "",
        f"- CPU: {machine['cpu']}, {machine['logical_cores']} logical cores ({machine['physical_cores']} physical), "
        f"virtual machine: {machine['virtual_machine']}",
        f"- RAM: {machine['ram_gib']} GiB",
        f"- OS: {machine['os']}",
        f"- Python: {', '.join(f'{lib} {version}' for lib, version in machine['python'].items())}; "
        f"numpy: {', '.join(f'{lib} {version}' for lib, version in machine['numpy'].items())}; "
        f"scikit-learn: {', '.join(f'{lib} {version}' for lib, version in machine.get('scikit_learn', {}).items())}",
        f"- Versions: {', '.join(f'{lib} {version}' for lib, version in machine['library_versions'].items())} "
        f"(labtech_nb commit {machine['labtech_nb_commit']})",
        f"- Storage: {machine['storage']}",
        f"- OPENBLAS_CORETYPE / OPENBLAS_L2_SIZE: {machine['openblas_env']['OPENBLAS_CORETYPE']} / "
        f"{machine['openblas_env']['OPENBLAS_L2_SIZE']} (left as found; only `tutorial` calls BLAS, "
        f"with {', '.join(f'{name}={value}' for name, value in ONE_BLAS_THREAD.items())})",
        "",
    ]
    problems = []
    for problem in report["problems"]:
        problems.append(f"- {problem}")
    if problems:
        problems = ["### Problems seen during the run", "", *problems, ""]
    return "\n".join([*header, *lines, "", *floor_comparison(report["scenarios"]), *machine_lines, *problems])


def machine_load(scenarios: dict[str, Any]) -> dict[str, Any]:
    """How much other processes disturbed the measurements (see run_measurement)."""
    shares = [
        (record["others_cpu_share"], f"{name} / {case_name} / {lib} / repeat {index + 1}")
        for name, scenario in scenarios.items()
        for case_name, case in scenario["cases"].items()
        for lib, records in case["runs"].items()
        for index, record in enumerate(records)
        if "others_cpu_share" in record
    ]
    values = [share for share, _ in shares]
    return {
        "measurements": len(values),
        "others_cpu_share_median": statistics.median(values) if values else None,
        "others_cpu_share_max": max(values) if values else None,
        "disturbed_threshold": BUSY_SHARE,
        "disturbed": [f"{where}: {share:.0%}" for share, where in shares if share > BUSY_SHARE],
    }


def collect_problems(scenarios: dict[str, Any]) -> list[str]:
    problems = []
    for scenario_name, scenario in scenarios.items():
        for case_name, case in scenario["cases"].items():
            for lib, records in case["runs"].items():
                for index, record in enumerate(records):
                    where = f"{scenario_name} / {case_name} / {lib} / repeat {index + 1}"
                    if not record.get("ok"):
                        tail = (record.get("stderr_tail") or "").strip().splitlines()[-1:] or [""]
                        problems.append(f"{where}: {record.get('error')}: {tail[0][:300]}")
                    if record.get("leftover_processes"):
                        problems.append(f"{where}: leftover processes after exit: {record['leftover_processes']}")
    return problems


# ---------------------------------------------------------------------------------------------


def storage_root_for(disk: bool) -> Path:
    if disk:
        root = BENCH_DIR / ".storage"
    elif Path("/dev/shm").is_dir() and os.access("/dev/shm", os.W_OK):
        root = Path("/dev/shm")
    else:
        log("warning: /dev/shm is not available; storage goes to the temporary directory")
        root = Path(tempfile.gettempdir())
    root.mkdir(parents=True, exist_ok=True)
    return root


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--smoke", action="store_true", help="small sizes and 1 repeat (a check that everything runs)")
    parser.add_argument("--disk", action="store_true", help="put storage on disk (benchmarks/.storage/) instead of /dev/shm")
    parser.add_argument("--out", type=Path, default=BENCH_DIR / "results", help="output directory (default: benchmarks/results/)")
    parser.add_argument(
        "--only", nargs="+", choices=SCENARIO_NAMES, metavar="NAME", help=f"run only these scenarios: {', '.join(SCENARIO_NAMES)}"
    )
    parser.add_argument("--repeats", type=int, default=None, help="repeats per measurement (default: 3, or 1 with --smoke)")
    parser.add_argument(
        "--timeout",
        type=float,
        default=300,
        help="seconds allowed per measurement (default: 300; trivial allows 45 ms per task and load 90 ms per task when that is more)",
    )
    parser.add_argument(
        "--quiet-wait",
        type=float,
        default=None,
        help="before each measurement, wait up to this many seconds for the machine to be under 25%% busy (default: 20, 0 with --smoke)",
    )
    parser.add_argument("--labtech-python", default=None, help="use this interpreter for labtech instead of .venv-labtech")
    args = parser.parse_args(argv)

    repeats = args.repeats or (1 if args.smoke else 3)
    quiet_wait = args.quiet_wait if args.quiet_wait is not None else (0 if args.smoke else 20)
    cases = [case for case in build_cases(args.smoke) if not args.only or case.scenario in args.only]
    storage_root = storage_root_for(args.disk)
    pythons = {"labtech": args.labtech_python or ensure_labtech_venv(), "labtech_nb": sys.executable}
    nb_env = {**os.environ, "PYTHONPATH": str(SHIM_DIR)}
    interpreters = {
        "labtech": interpreter_versions(pythons["labtech"]),
        "labtech_nb": interpreter_versions(pythons["labtech_nb"], env=nb_env),
    }
    for lib, info in interpreters.items():
        if not info:
            raise SystemExit(f"{pythons[lib]} cannot import labtech (as {lib}), numpy and psutil")
    log(f"labtech: {pythons['labtech']}; labtech_nb: {pythons['labtech_nb']}; storage under {storage_root}")

    started = datetime.datetime.now().astimezone().isoformat(timespec="seconds")
    runs: dict[tuple[str, str], dict[str, list[dict[str, Any]]]] = {
        (c.scenario, c.name): {lib: [] for lib in c.libraries} for c in cases
    }
    total = sum(c.repeats_for(lib, repeats) for c in cases for lib in c.libraries)
    done = 0
    for repeat in range(repeats):
        for index, case in enumerate(cases):
            # Alternate which library goes first, so that neither always runs on a warmer machine.
            order = LIBRARIES if (repeat + index) % 2 == 0 else LIBRARIES[::-1]
            for lib in (lib for lib in order if repeat < case.repeats_for(lib, repeats)):
                done += 1
                record = run_measurement(case, lib, pythons[lib], storage_root, max(args.timeout, case.min_timeout), quiet_wait)
                runs[(case.scenario, case.name)][lib].append(record)
                if record["ok"]:
                    summary = ", ".join(f"{k}={fmt(v)}" for k, v in record["metrics"].items())
                else:
                    summary = f"FAILED: {record['error']}"
                if record["others_cpu_share"] > BUSY_SHARE:
                    summary += f" [machine busy: others used {record['others_cpu_share']:.0%} of the CPU]"
                if record.get("leftover_processes"):
                    summary += f" [leftover processes: {len(record['leftover_processes'])}]"
                log(f"[{done}/{total}] {case.scenario} {case.name} {lib} ({record['process_s']:.1f} s): {summary}")

    scenarios = aggregate(cases, runs)
    report = {
        "config": {
            "smoke": args.smoke,
            "disk": args.disk,
            "repeats": repeats,
            "timeout_s": args.timeout,
            "quiet_wait_s": quiet_wait,
            "max_workers": 2,
            "fewer_repeats": {
                f"{c.scenario} / {c.name} / {lib}": c.repeats_for(lib, repeats)
                for c in cases
                for lib in c.libraries
                if c.repeats_for(lib, repeats) < repeats
            },
            "started": started,
            "finished": datetime.datetime.now().astimezone().isoformat(timespec="seconds"),
            "interpreters": pythons,
        },
        "machine": machine_description(storage_root, interpreters),
        "problems": collect_problems(scenarios),
        "machine_load": machine_load(scenarios),
        "scenarios": scenarios,
    }
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / "results.json").write_text(json.dumps(report, indent=2, ensure_ascii=False) + "\n")
    (args.out / "results.md").write_text(markdown(report))
    log(f"wrote {args.out / 'results.json'} and {args.out / 'results.md'}")
    failed = [p for p in report["problems"] if "leftover processes" not in p]
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
