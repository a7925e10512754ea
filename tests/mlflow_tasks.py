"""Importable task types for the mlflow tests (process backends must find them by module path)."""

from __future__ import annotations

import enum
import os

import labtech_nb as labtech


class Colour(enum.Enum):
    RED = "r"
    GREEN = "g"


class Palette:
    class Shade(enum.Enum):
        """A nested Enum: logged with its qualified name (``Palette.Shade.DARK``)."""

        DARK = 1


@labtech.task
class Leaf:
    seed: int

    def run(self) -> int:
        return self.seed * 10


@labtech.task(mlflow_run=True)
class Tracked:
    """Every kind of parameter mlflow params are flattened from."""

    child: Leaf
    items: tuple
    opts: dict
    colour: Colour = Colour.RED
    shade: Palette.Shade = Palette.Shade.DARK
    ratio: float = 0.5
    flag: bool = True
    label: str = "x"
    nothing: int | None = None

    def run(self) -> int:
        return self.child.result + 1


@labtech.task(mlflow_run=True)
class Square:
    x: int

    def run(self) -> dict:
        return {"value": self.x * self.x, "pid": os.getpid()}


@labtech.task(mlflow_run=True)
class Total:
    """Depends on other mlflow tasks: its run and theirs are separate (not nested) runs."""

    parts: list

    def run(self) -> int:
        return sum(part.result["value"] for part in self.parts)


@labtech.task(mlflow_run=True)
class Explodes:
    n: int

    def run(self) -> int:
        raise ValueError(f"boom {self.n}")


@labtech.task(mlflow_run=True)
class ReportsActiveRun:
    """Returns the id of the mlflow run active while ``run()`` executes."""

    n: int

    def run(self) -> str | None:
        import mlflow

        active = mlflow.active_run()
        return None if active is None else active.info.run_id
