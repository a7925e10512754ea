"""The progress model views read; it lives in the engine (`labtech_nb.engine.progress`)."""

from labtech_nb.engine.progress import ActiveTask, Failure, RunProgress, TaskSpan, TypeCounts, format_bytes, format_seconds

__all__ = ["ActiveTask", "Failure", "RunProgress", "TaskSpan", "TypeCounts", "format_bytes", "format_seconds"]
