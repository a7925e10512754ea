"""Keeping forked workers from holding on to other programs' pipes.

A process forked while another thread is starting a program with `subprocess` inherits that
program's pipes, and the pipe `subprocess` uses to learn that the program has started. Until the
forked process ends, the program never sees the end of its input and `subprocess` goes on waiting.
In a notebook, the dashboard draws its task graph with graphviz in the kernel's main thread while a
background run forks its workers: without care, showing the run could hang until its workers exit.

labtech_nb's own forks and the programs it runs take turns through `FORK_LOCK`.
"""

from __future__ import annotations

import threading

#: Held while labtech_nb forks a worker process, and while it runs a program (graphviz's ``dot``).
FORK_LOCK = threading.Lock()
