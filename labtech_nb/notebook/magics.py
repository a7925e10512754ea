"""``%labtech`` magics: run tasks, watch and stop runs, browse the cache and draw diagrams.

Load with ``%load_ext labtech_nb``. Every subcommand is a thin layer over a function in
`labtech_nb.notebook.commands`, and bad input gives a short usage error, never a traceback.
"""

from __future__ import annotations

import argparse
from typing import Any, NoReturn

from IPython.core.error import UsageError
from IPython.core.magic import Magics, line_magic, magics_class
from IPython.display import display

from labtech_nb.notebook import commands
from labtech_nb.notebook.commands import CommandError

HELP = """\
%labtech SUBCOMMAND [options]

  run TASKS [--lab LAB] [--bust-cache] [--background] [--backend NAME] [--workers N] [-o VAR]
        Run the tasks TASKS evaluates to (a task, a list, a comprehension...). With --background the
        cell returns at once and shows a dashboard with a Stop button. -o VAR stores the results
        (or the background run's handle) in VAR.
  status
        The runs of this kernel: state and counts.
  stop [RUN] [--force]
        Stop a run (the only active one, or RUN from %labtech status). Running tasks finish and are
        cached; stop again (or --force) to terminate them.
  cache [TYPE ...] [--lab LAB]
        Browse cached results: every entry in the Lab's storage, or only those of the named types.
  uncache TASKS [--lab LAB] [--yes]
        Delete the cache entries of TASKS, after confirmation unless --yes.
  diagram TASKS [--graphviz | --mermaid] [--direction BT|TB|LR|RL] [--instances]
        Draw the task types reached from TASKS (mermaid by default; --graphviz for graphviz), or with
        --instances every task as a graphviz node (falls back to mermaid without graphviz).
  timeline [RUN]
        A timeline of a run (the latest by default): one lane per worker.
  help
        This text.

Without --lab, the only Lab in the notebook is used."""


def split_line(line: str) -> list[str]:
    """Split a magic line at whitespace outside brackets and string literals, keeping each word's text.

    A word that is only a quoted string (e.g. an option value) is unquoted; quotes inside an
    expression are kept, so ``Model(kind='svm')`` stays a string literal.
    """
    words: list[str] = []
    current: list[str] = []
    depth = 0
    quote: str | None = None
    index = 0
    while index < len(line):
        char = line[index]
        if quote is not None:
            current.append(char)
            if char == "\\" and index + 1 < len(line):
                current.append(line[index + 1])
                index += 1
            elif char == quote:
                quote = None
        elif char in "'\"":
            quote = char
            current.append(char)
        elif char in "([{":
            depth += 1
            current.append(char)
        elif char in ")]}":
            depth -= 1
            current.append(char)
        elif char.isspace() and depth <= 0:
            if current:
                words.append("".join(current))
                current = []
        else:
            current.append(char)
        index += 1
    if quote is not None:
        raise ValueError("No closing quotation")
    if current:
        words.append("".join(current))
    unquoted = []
    for word in words:
        if len(word) >= 2 and word[0] == word[-1] and word[0] in "'\"" and word.count(word[0]) == 2:
            unquoted.append(word[1:-1])
        else:
            unquoted.append(word)
    return unquoted


class _Parser(argparse.ArgumentParser):
    """An argument parser that reports errors as IPython usage errors instead of exiting."""

    def error(self, message: str) -> NoReturn:
        raise UsageError(f"%labtech {self.prog}: {message}. See %labtech help.")

    def exit(self, status: int = 0, message: str | None = None) -> NoReturn:
        raise UsageError(message or HELP)


def _parser(name: str) -> _Parser:
    return _Parser(prog=name, add_help=False)


def _parsers() -> dict[str, _Parser]:
    parsers = {}
    run = parsers["run"] = _parser("run")
    run.add_argument("tasks", nargs="+")
    run.add_argument("--lab")
    run.add_argument("--bust-cache", action="store_true")
    run.add_argument("--background", action="store_true")
    run.add_argument("--backend")
    run.add_argument("--workers", type=int)
    run.add_argument("-o", dest="output")
    parsers["status"] = _parser("status")
    stop = parsers["stop"] = _parser("stop")
    stop.add_argument("run", nargs="?")
    stop.add_argument("--force", action="store_true")
    cache = parsers["cache"] = _parser("cache")
    cache.add_argument("types", nargs="*")
    cache.add_argument("--lab")
    uncache = parsers["uncache"] = _parser("uncache")
    uncache.add_argument("tasks", nargs="+")
    uncache.add_argument("--lab")
    uncache.add_argument("--yes", action="store_true")
    diagram = parsers["diagram"] = _parser("diagram")
    diagram.add_argument("tasks", nargs="+")
    kind = diagram.add_mutually_exclusive_group()
    kind.add_argument("--graphviz", action="store_true")
    kind.add_argument("--mermaid", action="store_true")
    diagram.add_argument("--direction", default="BT", choices=["BT", "TB", "LR", "RL"])
    diagram.add_argument("--instances", action="store_true")
    timeline = parsers["timeline"] = _parser("timeline")
    timeline.add_argument("run", nargs="?")
    parsers["help"] = _parser("help")
    return parsers


@magics_class
class LabtechMagics(Magics):
    """The ``%labtech`` line magic."""

    @line_magic
    def labtech(self, line: str) -> Any:
        """Run labtech_nb tasks and manage runs and the cache; ``%labtech help`` lists the subcommands."""
        try:
            words = split_line(line)
        except ValueError as error:
            raise UsageError(f"%labtech: cannot parse the line ({error}).") from None
        if not words:
            raise UsageError(HELP)
        name, rest = words[0], words[1:]
        parsers = _parsers()
        if name not in parsers:
            raise UsageError(f"%labtech: unknown subcommand '{name}'. Subcommands: {', '.join(parsers)}. See %labtech help.")
        arguments = parsers[name].parse_args(rest)
        try:
            return getattr(self, f"_{name}")(arguments)
        except CommandError as error:
            raise UsageError(f"%labtech {name}: {error}") from None

    # --- helpers --------------------------------------------------------------------------------

    @property
    def _shell(self) -> Any:
        if self.shell is None:
            raise CommandError("the magic is not attached to an IPython shell.")
        return self.shell

    def _evaluate(self, words: list[str]) -> tuple[Any, str]:
        expression = " ".join(words)
        try:
            return self._shell.ev(expression), expression
        except Exception as error:
            raise CommandError(f"could not evaluate '{expression}': {type(error).__name__}: {error}") from None

    def _tasks(self, words: list[str]) -> list[Any]:
        value, expression = self._evaluate(words)
        return commands.as_task_list(value, expression)

    def _lab(self, name: str | None) -> Any:
        return commands.find_lab(self._shell.user_ns, name)

    # --- subcommands ----------------------------------------------------------------------------

    def _run(self, arguments: argparse.Namespace) -> Any:
        base = self._lab(arguments.lab)
        lab = commands.lab_with(base, backend=arguments.backend, workers=arguments.workers)
        tasks = self._tasks(arguments.tasks)
        try:
            outcome = commands.run_tasks(lab, tasks, bust_cache=arguments.bust_cache, background=arguments.background)
        finally:
            if lab is not base:
                base.last_run = lab.last_run
        if arguments.output:
            self._shell.user_ns[arguments.output] = outcome
            return outcome if arguments.background else None
        return outcome

    def _status(self, arguments: argparse.Namespace) -> None:
        print(commands.format_status(commands.status_rows()))

    def _stop(self, arguments: argparse.Namespace) -> None:
        run = commands.find_run(arguments.run, active_only=arguments.run is None)
        print(commands.stop_run(run, force=arguments.force))

    def _cache(self, arguments: argparse.Namespace) -> Any:
        lab = self._lab(arguments.lab)
        types = [self._task_type(name) for name in arguments.types]
        try:
            from labtech_nb.notebook.browser import CacheBrowser
        except ImportError:
            if not types:
                raise CommandError("name the task types to list, e.g. %labtech cache MyTask.") from None
            print(commands.cache_listing(lab, types))
            return None
        return CacheBrowser(lab, task_types=types or None)

    def _task_type(self, name: str) -> type:
        from labtech_nb.params import is_task_type

        value, expression = self._evaluate([name])
        if not is_task_type(value):
            raise CommandError(f"'{expression}' is not a task type.")
        return value  # type: ignore[no-any-return]

    def _uncache(self, arguments: argparse.Namespace) -> None:
        lab = self._lab(arguments.lab)
        tasks = self._tasks(arguments.tasks)
        confirm = None if arguments.yes else (lambda question: input(f"{question} [y/N] ").strip().lower() in ("y", "yes"))
        print(commands.uncache(lab, tasks, confirm=confirm))

    def _diagram(self, arguments: argparse.Namespace) -> Any:
        from labtech_nb import diagram

        tasks = self._tasks(arguments.tasks)
        if arguments.graphviz or arguments.instances:
            if diagram.graphviz_available():
                if arguments.instances:
                    # Coloured by how each task fared in the latest run, when there is one.
                    latest = commands.RECENT_RUNS[-1].progress.statuses() if commands.RECENT_RUNS else None
                    return diagram.build_graphviz_instance_diagram(tasks, statuses=latest, direction=arguments.direction)
                return diagram.build_graphviz_type_diagram(tasks, direction=arguments.direction)
            print("Graphviz (the graphviz package and its 'dot' program) is not installed; showing the mermaid diagram instead.")
        return diagram.MermaidDiagram(diagram.build_task_diagram(tasks, direction=arguments.direction))

    def _timeline(self, arguments: argparse.Namespace) -> Any:
        run = commands.find_run(arguments.run, active_only=False)
        try:
            return run.timeline()
        except ValueError as error:
            raise CommandError(str(error)) from None

    def _help(self, arguments: argparse.Namespace) -> None:
        print(HELP)


LabtechMagics.labtech.__doc__ = HELP


def load_ipython_extension(ipython: Any) -> None:
    """Register the ``%labtech`` magic."""
    ipython.register_magics(LabtechMagics)


def unload_ipython_extension(ipython: Any) -> None:
    """Remove the ``%labtech`` magic (so ``%reload_ext labtech_nb`` registers it afresh)."""
    magics = ipython.magics_manager.magics
    magics["line"].pop("labtech", None)
    ipython.magics_manager.registry.pop("LabtechMagics", None)


__all__ = ["HELP", "LabtechMagics", "display", "load_ipython_extension", "unload_ipython_extension"]
