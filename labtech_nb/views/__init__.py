"""Views of runs: the `RunProgress` model every view reads, the terminal view, and view selection.

Views observe the engine's events; the engine never imports them.
"""
