"""Stand-ins for the IPython shells that code checks to tell a Jupyter kernel from anywhere else."""

from __future__ import annotations


class KernelShell:
    """Stands in for an IPython kernel's shell."""

    kernel = object()


class TerminalShell:
    """Stands in for terminal IPython: a shell without a kernel."""
