"""Shared test set-up."""

# Scripts that tests run as subprocesses are not test modules (and must not be imported
# by --doctest-modules: they do their work at import time).
collect_ignore_glob = ["chaos/chaos_pipeline.py"]
