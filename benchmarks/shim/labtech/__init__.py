"""Benchmark shim: makes ``import labtech`` (and ``import labtech.<sub>``) resolve to labtech_nb.

benchmarks/run.py puts this directory on PYTHONPATH only for labtech_nb runs, so one scenario script
written against ``labtech`` runs unchanged on both libraries. Every ``labtech.X`` submodule import is
answered with the module object of ``labtech_nb.X`` (the same object, not a copy), so
``labtech.runners.ForkPoolRunnerBackend is labtech_nb.runners.ForkPoolRunnerBackend``.
"""

from __future__ import annotations

import importlib
import importlib.abc
import importlib.util
import sys

import labtech_nb
from labtech_nb import *  # noqa: F403

__version__ = labtech_nb.__version__
__labtech_nb_shim__ = True


class _AliasLoader(importlib.abc.Loader):
    def __init__(self, target: str) -> None:
        self.target = target

    def create_module(self, spec):  # type: ignore[no-untyped-def]
        return importlib.import_module(self.target)

    def exec_module(self, module) -> None:  # type: ignore[no-untyped-def]
        pass  # the target module is already executed


class _AliasFinder(importlib.abc.MetaPathFinder):
    def find_spec(self, fullname, path=None, target=None):  # type: ignore[no-untyped-def]
        if not fullname.startswith("labtech."):
            return None
        real = "labtech_nb." + fullname[len("labtech.") :]
        if importlib.util.find_spec(real) is None:
            return None
        return importlib.util.spec_from_loader(fullname, _AliasLoader(real))


sys.meta_path.insert(0, _AliasFinder())
