"""Kept so that mypy configurations written for labtech (``plugins = labtech.mypy_plugin``) still load.

labtech_nb's ``task`` decorator uses ``typing.dataclass_transform``, so type checkers understand task
classes without any plugin; this plugin adds nothing.
"""

from __future__ import annotations

from mypy.plugin import Plugin


class LabtechNbPlugin(Plugin):
    """A no-op plugin: task classes are already typed by ``dataclass_transform``."""


def plugin(version: str) -> type[Plugin]:
    """Entry point called by mypy."""
    return LabtechNbPlugin
