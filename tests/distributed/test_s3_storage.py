"""FsspecStorage against an S3-compatible server on loopback (moto in server mode, through s3fs)."""

from __future__ import annotations

import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from typing import Any

import pytest

import labtech_nb as labtech
from labtech_nb.storage import FsspecStorage


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


@pytest.fixture(scope="module")
def s3_endpoint() -> Iterator[str]:
    port = _free_port()
    server = subprocess.Popen(
        [sys.executable, "-m", "moto.server", "-H", "127.0.0.1", "-p", str(port)],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    endpoint = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 30
    while True:
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=0.5):
                break
        except OSError:
            assert time.monotonic() < deadline, "moto server did not start"
            assert server.poll() is None, "moto server exited"
            time.sleep(0.1)
    try:
        yield endpoint
    finally:
        server.terminate()
        server.wait(timeout=10)


class S3Storage(FsspecStorage):
    """What a user writes for S3 (here: the loopback server)."""

    def __init__(self, storage_dir: str, endpoint: str) -> None:
        self.endpoint = endpoint
        super().__init__(storage_dir)

    def fs_constructor(self) -> Any:
        import s3fs

        return s3fs.S3FileSystem(
            key="testing", secret="testing", client_kwargs={"endpoint_url": self.endpoint, "region_name": "us-west-2"}
        )


@labtech.task
class Square:
    x: int

    def run(self) -> int:
        return self.x * self.x


@labtech.task
class Total:
    parts: list

    def run(self) -> int:
        return sum(part.result for part in self.parts)


@pytest.fixture
def bucket(s3_endpoint: str, request: pytest.FixtureRequest) -> str:
    import s3fs

    name = "labtech-" + "".join(char if char.isalnum() else "-" for char in request.node.name.lower())[:50].strip("-")
    fs = s3fs.S3FileSystem(
        key="testing", secret="testing", client_kwargs={"endpoint_url": s3_endpoint, "region_name": "us-west-2"}
    )
    fs.mkdir(name)
    return name


@pytest.mark.parametrize("backend", ["thread", "spawn"])
def test_runs_cache_and_reload_on_s3(s3_endpoint: str, bucket: str, backend: str, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("LABTECH_NB_PROGRESS", "off")
    storage = S3Storage(f"{bucket}/cache", s3_endpoint)
    lab = labtech.Lab(storage=storage, runner_backend=backend, max_workers=2)
    total = Total(parts=[Square(x=x) for x in range(5)])

    assert lab.run_task(total) == 30
    keys = storage.find_keys()
    assert len(keys) == 6 and all(key.startswith("pickle__") for key in keys)
    assert lab.is_cached(total)

    fresh = labtech.Lab(storage=S3Storage(f"{bucket}/cache", s3_endpoint), runner_backend=backend, max_workers=2)
    assert fresh.run_task(Total(parts=[Square(x=x) for x in range(5)])) == 30
    assert fresh.last_run is not None and fresh.last_run.progress.totals.loaded == 1
    assert {type(task) for task in fresh.cached_tasks([Square, Total])} == {Square, Total}

    fresh.uncache_tasks([Square(x=0)])
    assert len(storage.find_keys()) == 5


def test_entry_appears_only_when_complete_on_s3(s3_endpoint: str, bucket: str) -> None:
    storage = S3Storage(f"{bucket}/atomic", s3_endpoint)
    writer = storage.begin_write("pickle__Square__abc")
    with writer.file_handle("data.pickle", mode="wb") as handle:
        handle.write(b"partial")
    assert storage.find_keys() == []
    writer.commit()
    assert storage.find_keys() == ["pickle__Square__abc"]
    aborted = storage.begin_write("pickle__Square__def")
    with aborted.file_handle("data.pickle", mode="wb") as handle:
        handle.write(b"x")
    aborted.abort()
    assert storage.find_keys() == ["pickle__Square__abc"]
