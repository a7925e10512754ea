"""The engine: task graphs, scheduling, events and the `Lab`. It never imports notebook libraries."""
