"""The README's commands and quickstart stay true."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

REPOSITORY = Path(__file__).resolve().parents[1]
README = (REPOSITORY / "README.md").read_text()


def test_quickstart_runs_and_caches(tmp_path: Path) -> None:
    code = re.search(r"^```python\n(.*?)^```", README, re.MULTILINE | re.DOTALL)
    assert code, "the README has a Python quickstart"
    script = tmp_path / "quickstart.py"
    script.write_text(code.group(1))
    env = {**os.environ, "LABTECH_NB_PROGRESS": "off"}
    first = subprocess.run([sys.executable, str(script)], cwd=tmp_path, capture_output=True, text=True, env=env, check=True)
    assert first.stdout.strip() == "285"
    entries = list((tmp_path / "storage" / "quickstart").glob("pickle__*"))
    assert len(entries) == 11  # ten squares and the total
    second = subprocess.run([sys.executable, str(script)], cwd=tmp_path, capture_output=True, text=True, env=env, check=True)
    assert second.stdout.strip() == "285"
    assert {entry.stat().st_mtime for entry in entries} == {
        entry.stat().st_mtime for entry in (tmp_path / "storage" / "quickstart").glob("pickle__*")
    }


def test_the_two_commands_exist_and_ci_uses_the_test_command() -> None:
    commands = re.search(r"^```bash\n(.*?)^```", README, re.MULTILINE | re.DOTALL)
    assert commands
    lines = [line.split("#")[0].strip() for line in commands.group(1).strip().splitlines()]
    assert lines == ["bash scripts/demo.sh", "bash scripts/test.sh"]
    assert "bash scripts/test.sh" in (REPOSITORY / ".ci" / "run").read_text()
    for line in lines:
        assert (REPOSITORY / line.split()[1]).is_file()


def test_demo_pipeline_prints_the_evaluation_table(tmp_path: Path) -> None:
    result = subprocess.run(
        [
            sys.executable,
            str(REPOSITORY / "scripts" / "tutorial_pipeline.py"),
            "--storage",
            str(tmp_path / "storage"),
            "--backend",
            "fork",
            "--workers",
            "2",
        ],
        capture_output=True,
        text=True,
        env={**os.environ, "LABTECH_NB_PROGRESS": "off"},
        check=True,
    )
    lines = result.stdout.strip().splitlines()
    assert lines[0].split() == ["classifier", "dataset", "predictions", "log", "loss"]
    assert len(lines) == 1 + 44
    losses = [float(line.split()[-1]) for line in lines[1:]]
    assert all(loss >= 0 for loss in losses)
    assert any("random forest, 10 trees" in line and "digits" in line for line in lines)
