"""Load: a 20,000-task DAG sharing one 20 MiB dependency, with 2,000 intermediate 5 MiB results that
are each used once. Kept in memory together they would need 10 GiB; the lab process must stay far
below that, because each result is released as soon as its last dependent has finished.

Also: large results and large dependency payloads crossing one worker's pipe in both directions, and
a chain of thousands of dependent tasks.
"""

from __future__ import annotations

import time
from pathlib import Path

import pytest

import labtech_nb as labtech
from labtech_nb.cache import PickleCache
from tests.reliability.helpers import FIGURES, finish, lab_process, last_json_line
from tests.reliability.rel_tasks import Link

LEAVES, CHAINS, LINKS = 17_960, 40, 50
PEAK_RSS_LIMIT = 1024**3


def test_twenty_thousand_task_dag_completes_with_bounded_memory(tmp_path: Path) -> None:
    process, watch = lab_process(tmp_path / "logs", "load", str(LEAVES), str(CHAINS), str(LINKS), "serial")
    code, out, err, survivors = finish(process, watch, timeout=120)

    assert code == 0, err
    summary = last_json_line(out)
    assert summary["tasks"] == LEAVES + CHAINS * LINKS + CHAINS + 1 == 20_001
    assert summary["trivial_ok"] is True
    # Link k of every chain holds k + 1: each link read its predecessor's array before it was released.
    assert summary["chain_ends"] == [float(LINKS)]
    unreleased = CHAINS * LINKS * 5 * 1024**2
    assert summary["peak_rss"] < PEAK_RSS_LIMIT < unreleased / 8, (
        f"peak RSS {summary['peak_rss'] / 1024**2:.0f} MiB: intermediate results are not being released"
    )
    assert survivors == []
    FIGURES["load DAG tasks"] = summary["tasks"]
    FIGURES["load DAG peak RSS (MiB)"] = round(summary["peak_rss"] / 1024**2)
    FIGURES["load DAG baseline RSS (MiB)"] = round(summary["baseline_rss"] / 1024**2)
    FIGURES["load DAG seconds"] = round(summary["seconds"], 1)


def test_large_results_and_payloads_cross_a_pool_worker_pipe_both_ways(tmp_path: Path) -> None:
    control = tmp_path / "control"
    control.mkdir()
    process, watch = lab_process(tmp_path / "logs", "transfer", str(tmp_path / "storage"), str(control), "fork")
    deadline = time.monotonic() + 60
    while not (control / "open").exists() and process.poll() is None and time.monotonic() < deadline:
        time.sleep(0.01)
    # Once the gate is open, moving 4 MiB each way takes well under a second.
    code, out, err, survivors = finish(process, watch, timeout=5)
    assert code == 0, err
    assert last_json_line(out)["sum"] == 4 * 131072
    assert survivors == []


#: A chain of dependent tasks as long as this must run: everything derived from a task's dependencies
#: (identity, key, metadata, repr, pickle) is computed without recursion.
CHAIN_LINKS = 2_000
#: Process backends pickle each task with the whole chain below it, for every task of the chain: the work
#: grows with the square of the length (2,000 links take about a minute), so they run a shorter chain.
PROCESS_CHAIN_LINKS = 700


def build_chain(links: int) -> Link:
    chain = None
    for n in range(links):
        chain = Link(n=n, previous=chain)
    assert chain is not None
    return chain


@pytest.mark.parametrize(("backend", "links"), [("serial", CHAIN_LINKS), ("fork", PROCESS_CHAIN_LINKS)])
@pytest.mark.parametrize("storage", ["none", "local"])
def test_a_long_chain_of_dependent_tasks_runs(tmp_path: Path, storage: str, backend: str, links: int) -> None:
    chain = build_chain(links)
    storage_dir = None if storage == "none" else tmp_path / "storage"
    lab = labtech.Lab(storage=storage_dir, runner_backend=backend)
    started = time.monotonic()
    try:
        results = lab.run_tasks([chain], disable_progress=True, disable_top=True)
    except Exception as error:
        raise AssertionError(f"run_tasks raised {type(error).__name__}: {str(error)[:300]}") from error
    assert results == {chain: links}
    FIGURES[f"chain of {links} tasks, {backend}, storage {storage} (s)"] = round(time.monotonic() - started, 1)
    if storage_dir is None:
        return
    # Every link has its entry; a new lab finds the chain (built again) cached, reading the deeply nested
    # metadata of its top entry, and rebuilds the top task from that metadata.
    assert len(list(storage_dir.glob("pickle__Link__*/metadata.json"))) == links
    rebuilt = build_chain(links)
    relab = labtech.Lab(storage=storage_dir, runner_backend="serial")
    assert relab.is_cached(rebuilt)
    assert relab.run_tasks([rebuilt], disable_progress=True, disable_top=True) == {rebuilt: links}
    assert PickleCache().load_task(relab.storage, Link, rebuilt.cache_key) == chain
