"""Shared test set-up."""

# Scripts that tests run as subprocesses are not test modules (and must not be imported
# by --doctest-modules: they do their work at import time).
# conftest files are loaded as plugins, never collected as doctest modules (that would
# import each under the same module name "conftest").
collect_ignore_glob = ["chaos/*_pipeline.py", "conftest.py", "*/conftest.py", "*/*/conftest.py"]
