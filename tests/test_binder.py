"""Replays the Binder set-up (binder/requirements.txt, then binder/postBuild) in a fresh virtual
environment and executes the tutorial notebook there, so a Binder launch works."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

REPOSITORY = Path(__file__).resolve().parents[1]


def _copy_tracked_files(destination: Path) -> None:
    """Copy what a fresh clone has: the files git tracks (symlinks kept as links)."""
    listed = subprocess.run(["git", "ls-files", "-z"], cwd=REPOSITORY, capture_output=True, check=True).stdout.decode()
    for name in filter(None, listed.split("\0")):
        source, target = REPOSITORY / name, destination / name
        target.parent.mkdir(parents=True, exist_ok=True)
        if source.is_symlink():
            target.symlink_to(os.readlink(source))
        elif source.is_file():
            shutil.copy2(source, target)


@pytest.mark.timeout(1500)
def test_binder_setup_runs_the_tutorial(tmp_path: Path) -> None:
    postbuild = (REPOSITORY / "binder" / "postBuild").read_text()
    assert postbuild.splitlines()[1].strip() == "set -e" or "set -e" in postbuild.splitlines()[:3]
    assert (REPOSITORY / "binder" / "apt.txt").read_text().split() == ["graphviz"]
    assert shutil.which("dot"), "the graphviz package in binder/apt.txt provides dot"

    environment = tmp_path / "binder-env"
    subprocess.run([sys.executable, "-m", "venv", str(environment)], check=True)
    python = environment / "bin" / "python"
    env = {**os.environ, "PATH": f"{environment / 'bin'}:{os.environ['PATH']}", "VIRTUAL_ENV": str(environment)}
    env.pop("PYTHONPATH", None)
    checkout = tmp_path / "repo"
    _copy_tracked_files(checkout)
    assert (checkout / "labtech_nb" / "storage" / "local.py").is_file()
    subprocess.run(
        [str(python), "-m", "pip", "install", "-q", "-r", "binder/requirements.txt"], cwd=checkout, env=env, check=True
    )
    subprocess.run(["bash", "binder/postBuild"], cwd=checkout, env=env, check=True)

    runner = textwrap.dedent(
        """
        import sys, nbformat
        from nbclient import NotebookClient
        notebook = nbformat.read("notebooks/tutorial.ipynb", as_version=4)
        NotebookClient(notebook, timeout=600, kernel_name="python3", resources={"metadata": {"path": "notebooks"}}).execute()
        errors = [output for cell in notebook.cells for output in cell.get("outputs", []) if output.get("output_type") == "error"]
        print("cells", len(notebook.cells), "errors", len(errors))
        sys.exit(1 if errors else 0)
        """
    )
    result = subprocess.run([str(python), "-c", runner], cwd=checkout, env=env, capture_output=True, text=True)
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    assert "errors 0" in result.stdout
    # The notebook ran against the package installed in the Binder environment, not this checkout's.
    installed = subprocess.run(
        [str(python), "-c", "import labtech_nb; print(labtech_nb.__file__)"],
        env=env,
        cwd=tmp_path,
        capture_output=True,
        text=True,
        check=True,
    )
    assert str(environment) in installed.stdout
