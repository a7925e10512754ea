"""Fixtures of the browser tests: a JupyterLab server on a temporary copy of ``notebooks/``, headless
Chromium driven by Playwright, and a guard that no server, kernel or browser process outlives them.

Needs ``bash scripts/install_browser_test_deps.sh`` (Debian's Chromium, JupyterLab and Playwright).
Without them the tests are skipped, except under CI (``CI`` set), where they fail.
"""

from __future__ import annotations

import importlib.util
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import psutil
import pytest

REPO = Path(__file__).resolve().parents[2]
ARTIFACTS = REPO / "test-artifacts" / "browser"
CHROMIUM = Path("/usr/bin/chromium")
#: Playwright adds --no-sandbox (needed as root) and --headless itself. Without the networking flags
#: Chromium keeps trying to reach the internet, which this machine's closed network refuses.
CHROMIUM_ARGS = [
    "--disable-gpu",
    "--disable-dev-shm-usage",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]
SERVER_START_SECONDS = 90.0
STOP_SECONDS = 15.0

#: JupyterLab user settings: no news or update pop-ups, and every cell kept in the DOM.
LAB_SETTINGS = {
    "@jupyterlab/apputils-extension/notification.jupyterlab-settings": '{"fetchNews": "false", "checkForUpdates": false}',
    "@jupyterlab/notebook-extension/tracker.jupyterlab-settings": '{"windowingMode": "none"}',
}


def _missing_requirements() -> list[str]:
    missing = []
    if not CHROMIUM.exists():
        missing.append(str(CHROMIUM))
    for module in ("playwright", "jupyterlab", "ipywidgets", "nbformat"):
        if importlib.util.find_spec(module) is None:
            missing.append(f"the Python package {module}")
    return missing


@pytest.fixture(scope="session")
def browser_requirements() -> None:
    missing = _missing_requirements()
    if missing:
        message = f"browser tests need {', '.join(missing)}: run bash scripts/install_browser_test_deps.sh"
        if os.environ.get("CI"):
            pytest.fail(message)
        pytest.skip(message)


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item: pytest.Item, call: pytest.CallInfo[None]) -> Iterator[None]:
    outcome = yield
    report = outcome.get_result()
    setattr(item, f"report_{report.when}", report)


# --- processes ------------------------------------------------------------------------------------


class ProcessGuard:
    """Remembers every process the fixtures start, and ends any still running by PID."""

    def __init__(self, marker: str) -> None:
        #: A string (the temporary directory) found on the command line of every server and kernel.
        self.marker = marker
        self.known: dict[int, tuple[float, str]] = {}
        #: Processes that had to be ended because they outlived their parent's own shutdown.
        self.forced: list[str] = []

    def add(self, process: psutil.Process, what: str) -> None:
        try:
            self.known.setdefault(process.pid, (process.create_time(), what))
        except psutil.NoSuchProcess:
            pass

    def add_tree(self, pid: int, what: str) -> None:
        """Remember ``pid`` and all its descendants."""
        try:
            root = psutil.Process(pid)
            processes = [root, *root.children(recursive=True)]
        except psutil.NoSuchProcess:
            return
        for process in processes:
            self.add(process, what if process.pid == pid else f"child of {what}")

    def add_playwright(self) -> None:
        """Remember Playwright's driver (a child of this process) and the Chromium processes under it."""
        for child in psutil.Process().children():
            try:
                command = " ".join(child.cmdline())
            except psutil.Error:
                continue
            if "playwright" in command:
                self.add_tree(child.pid, "playwright driver")

    def alive(self) -> list[tuple[psutil.Process, str]]:
        """Remembered processes still running (the same process: PID and start time), and any other
        process whose command line names the marker."""
        found: dict[int, tuple[psutil.Process, str]] = {}
        for pid, (created, what) in self.known.items():
            try:
                process = psutil.Process(pid)
                if process.create_time() == created and process.status() != psutil.STATUS_ZOMBIE:
                    found[pid] = (process, what)
            except psutil.Error:
                pass
        for process in psutil.process_iter(["pid", "cmdline", "status"]):
            if process.pid == os.getpid() or process.info["status"] == psutil.STATUS_ZOMBIE:
                continue
            if any(self.marker in part for part in process.info["cmdline"] or ()):
                found.setdefault(process.pid, (process, "names the test directory"))
        return list(found.values())

    def end(self, processes: list[psutil.Process], timeout: float = STOP_SECONDS) -> None:
        """SIGTERM, then SIGKILL what is left after ``timeout`` seconds (by PID)."""
        for process in processes:
            try:
                process.terminate()
            except psutil.NoSuchProcess:
                pass
        _gone, left = psutil.wait_procs(processes, timeout=timeout)
        for process in left:
            try:
                process.kill()
            except psutil.NoSuchProcess:
                pass
        psutil.wait_procs(left, timeout=timeout)


def _describe(process: psutil.Process, what: str) -> str:
    try:
        command = " ".join(process.cmdline())[:200]
    except psutil.Error:
        command = "?"
    return f"PID {process.pid} ({what}): {command}"


@pytest.fixture(scope="module")
def lab_dir(browser_requirements: None, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A temporary directory for one JupyterLab: ``notebooks/`` (the server's root) and its settings.

    Also empties ``test-artifacts/browser/``, so that it holds only this run's screenshots and log.
    """
    shutil.rmtree(ARTIFACTS, ignore_errors=True)
    ARTIFACTS.mkdir(parents=True)
    return tmp_path_factory.mktemp("jupyterlab")


@pytest.fixture(scope="module")
def process_guard(lab_dir: Path) -> Iterator[ProcessGuard]:
    """Fails the module if any process the fixtures started is still running once they are torn down."""
    guard = ProcessGuard(str(lab_dir))
    yield guard
    deadline = time.monotonic() + 5.0
    left = guard.alive()
    while left and time.monotonic() < deadline:
        time.sleep(0.2)
        left = guard.alive()
    if left:
        guard.end([process for process, _what in left])
    problems = guard.forced + [_describe(*item) for item in left]
    if problems:
        pytest.fail("processes outlived the browser tests (now killed):\n" + "\n".join(problems))


# --- JupyterLab -----------------------------------------------------------------------------------


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


class JupyterServer:
    def __init__(self, process: subprocess.Popen[bytes], url: str, root: Path, log: Path) -> None:
        self.process = process
        self.url = url
        self.root = root
        self.log = log

    def log_tail(self, lines: int = 60) -> str:
        try:
            return "\n".join(self.log.read_text(errors="replace").splitlines()[-lines:])
        except OSError:
            return ""


def _wait_until_serving(server: JupyterServer) -> None:
    deadline = time.monotonic() + SERVER_START_SECONDS
    while time.monotonic() < deadline:
        if server.process.poll() is not None:
            raise RuntimeError(f"JupyterLab exited with code {server.process.returncode}:\n{server.log_tail()}")
        try:
            with urllib.request.urlopen(f"{server.url}api/status", timeout=2) as response:
                if response.status == 200:
                    return
        except (urllib.error.URLError, OSError):
            pass
        time.sleep(0.25)
    raise RuntimeError(f"JupyterLab did not answer within {SERVER_START_SECONDS:.0f}s:\n{server.log_tail()}")


def write_lab_settings(settings_dir: Path) -> None:
    for relative, text in LAB_SETTINGS.items():
        path = settings_dir / relative
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text)


@pytest.fixture(scope="module")
def notebooks_dir(lab_dir: Path) -> Path:
    """A copy of the repository's ``notebooks/`` (without stored results): the server's root directory.

    JupyterLab autosaves what it opens, so the repository's notebooks are never served directly.
    """
    root = lab_dir / "notebooks"
    source = REPO / "notebooks"
    if source.is_dir():
        shutil.copytree(source, root, ignore=shutil.ignore_patterns("storage", ".ipynb_checkpoints", "__pycache__"))
    else:
        root.mkdir()
    return root


@pytest.fixture(scope="module")
def jupyter_server(lab_dir: Path, notebooks_dir: Path, process_guard: ProcessGuard) -> Iterator[JupyterServer]:
    """JupyterLab, run by this test environment's Python (so its kernels import labtech_nb), on a free
    port of 127.0.0.1 without a token; its settings, runtime files and workspaces stay in ``lab_dir``."""
    write_lab_settings(lab_dir / "settings")
    for name in ("config", "data", "runtime", "workspaces", "ipython"):
        (lab_dir / name).mkdir(exist_ok=True)
    env = dict(os.environ)
    env.update(
        JUPYTERLAB_SETTINGS_DIR=str(lab_dir / "settings"),
        JUPYTERLAB_WORKSPACES_DIR=str(lab_dir / "workspaces"),
        JUPYTER_CONFIG_DIR=str(lab_dir / "config"),
        JUPYTER_RUNTIME_DIR=str(lab_dir / "runtime"),
        JUPYTER_DATA_DIR=str(lab_dir / "data"),
        IPYTHONDIR=str(lab_dir / "ipython"),
        JUPYTER_PLATFORM_DIRS="1",
        PYTHONUNBUFFERED="1",
        PATH=os.pathsep.join([str(Path(sys.executable).parent), env.get("PATH", "")]),
    )
    port = _free_port()
    command = [
        sys.executable,
        "-m",
        "jupyter",
        "lab",
        "--no-browser",
        "--ServerApp.ip=127.0.0.1",
        f"--ServerApp.port={port}",
        "--ServerApp.port_retries=0",
        "--ServerApp.allow_root=True",
        "--IdentityProvider.token=",
        f"--ServerApp.root_dir={notebooks_dir}",
        "--ServerApp.terminals_enabled=False",
        "--LabApp.expose_app_in_browser=True",
        "--LabApp.extension_manager=readonly",
    ]
    log = lab_dir / "jupyterlab.log"
    with log.open("wb") as log_file:
        process = subprocess.Popen(
            command,
            cwd=lab_dir,
            env=env,
            stdin=subprocess.DEVNULL,
            stdout=log_file,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
    process_guard.add(psutil.Process(process.pid), "jupyter lab")
    server = JupyterServer(process, f"http://127.0.0.1:{port}/", notebooks_dir, log)
    try:
        _wait_until_serving(server)
        yield server
    finally:
        _stop_server(server, process_guard)
        ARTIFACTS.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(log, ARTIFACTS / "jupyterlab.log")


def _stop_server(server: JupyterServer, guard: ProcessGuard) -> None:
    """SIGTERM the server (it shuts its kernels down), then end whatever of its tree is left, by PID."""
    try:
        descendants = psutil.Process(server.process.pid).children(recursive=True)
    except psutil.NoSuchProcess:
        descendants = []
    for process in descendants:
        guard.add(process, "child of jupyter lab")
    if server.process.poll() is None:
        server.process.send_signal(signal.SIGTERM)
        try:
            server.process.wait(timeout=STOP_SECONDS)
        except subprocess.TimeoutExpired:
            server.process.kill()
            server.process.wait(timeout=STOP_SECONDS)
    _gone, left = psutil.wait_procs(descendants, timeout=5.0)
    # Shutting the server down must end its kernels, and their kernels' worker processes.
    guard.forced += [_describe(process, "outlived the server's shutdown") for process in left]
    guard.end(left)


# --- Chromium -------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def chromium(browser_requirements: None, process_guard: ProcessGuard) -> Iterator[Any]:
    """Debian's Chromium (headless) through Playwright; never a browser downloaded by Playwright."""
    from playwright.sync_api import sync_playwright

    playwright = sync_playwright().start()
    browser = None
    try:
        browser = playwright.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_ARGS, timeout=60_000)
        process_guard.add_playwright()
        yield browser
    finally:
        # Chromium starts renderer processes as pages open: remember them before closing.
        process_guard.add_playwright()
        try:
            if browser is not None:
                browser.close()
        finally:
            playwright.stop()
