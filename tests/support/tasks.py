"""Small task types for real runs whose events and progress the tests check; module-level so every runner can import them."""

from __future__ import annotations

from typing import Any

import labtech_nb as labtech


@labtech.task
class Number:
    value: int

    def run(self) -> int:
        return self.value


@labtech.task
class Scaled:
    """Multiplies its source's result, printing one line of output as it does."""

    source: Any
    factor: int

    def run(self) -> int:
        print(f"scaling {self.source.result} by {self.factor}")
        return self.source.result * self.factor


@labtech.task
class Explodes:
    source: Any

    def run(self) -> int:
        raise ValueError(f"cannot use {self.source.result}")


@labtech.task
class Leaf:
    n: int

    def run(self) -> int:
        return self.n


@labtech.task
class Root:
    """Sums its leaves; fails on a negative leaf."""

    leaves: Any

    def run(self) -> int:
        if any(leaf.result < 0 for leaf in self.leaves):
            raise ValueError("negative leaf")
        return sum(leaf.result for leaf in self.leaves)
