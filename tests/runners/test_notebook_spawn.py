"""Task classes defined in a notebook cell run under the spawn backend (pickled by value)."""

from __future__ import annotations

import nbformat
from nbclient import NotebookClient

CELLS = [
    "import labtech_nb as labtech",
    """
@labtech.task
class Square:
    x: int

    def run(self):
        import os
        print(f"squaring {self.x} in process {os.getpid()}")
        return self.x * self.x


@labtech.task
class Total:
    parts: list

    def run(self):
        return sum(part.result for part in self.parts)
""",
    """
import os
lab = labtech.Lab(storage=STORAGE, runner_backend="spawn", max_workers=2)
total = Total(parts=[Square(x=x) for x in range(5)])
result = lab.run_task(total)
print("RESULT", result, "PARENT", os.getpid())
""",
]


def test_notebook_defined_tasks_run_under_spawn(tmp_path):
    notebook = nbformat.v4.new_notebook()
    notebook.cells = [nbformat.v4.new_code_cell(f"STORAGE = {str(tmp_path / 'storage')!r}")]
    notebook.cells += [nbformat.v4.new_code_cell(source) for source in CELLS]
    NotebookClient(notebook, timeout=120, kernel_name="python3", resources={"metadata": {"path": str(tmp_path)}}).execute()

    outputs = "".join(
        output.get("text", "")
        for cell in notebook.cells
        for output in cell.get("outputs", [])
        if output["output_type"] == "stream"
    )
    result_line = next(line for line in outputs.splitlines() if line.startswith("RESULT"))
    assert result_line.split()[1] == "30"
    parent = result_line.split()[3]
    worker_pids = {line.rsplit(" ", 1)[1] for line in outputs.splitlines() if "squaring" in line}
    # The squares were computed in other (spawned) processes, and their output reached the notebook.
    assert worker_pids and parent not in worker_pids
    assert (tmp_path / "storage").is_dir() and len(
        [p for p in (tmp_path / "storage").iterdir() if p.name.startswith("pickle__")]
    ) == 6
