"""Helpers shared by several test modules: event recorders and builders, task types, cache storages."""
