"""The public surface of tidal.log: pinned names, docstrings, runnable examples."""

from __future__ import annotations

import doctest
import importlib
import inspect

import pytest

import tidal.log

PUBLIC = {
    "NAME_RULE",
    "AppendResult",
    "ArrowRead",
    "Consumer",
    "CorruptRecordError",
    "GroupDescription",
    "InvalidNameError",
    "Log",
    "LogError",
    "OffsetOutOfRangeError",
    "OffsetRange",
    "PartitionDescription",
    "Record",
    "Topic",
    "TopicDescription",
    "TopicExistsError",
    "TopicSettings",
    "UnknownTopicError",
    "murmur2",
    "open",
}


def test_public_names_are_pinned():
    assert set(tidal.log.__all__) == PUBLIC


def test_every_public_name_and_method_has_a_docstring():
    for name in PUBLIC - {"NAME_RULE"}:
        obj = getattr(tidal.log, name)
        assert inspect.getdoc(obj), name
        if inspect.isclass(obj):
            for attr, member in vars(obj).items():
                if not attr.startswith("_") and callable(member):
                    assert inspect.getdoc(member), f"{name}.{attr}"


def test_errors_form_one_tree():
    for name in (
        "CorruptRecordError",
        "InvalidNameError",
        "OffsetOutOfRangeError",
        "TopicExistsError",
        "UnknownTopicError",
    ):
        assert issubclass(getattr(tidal.log, name), tidal.log.LogError)
    assert issubclass(tidal.log.InvalidNameError, ValueError)
    from tidal.errors import TidalError

    assert issubclass(tidal.log.LogError, TidalError)


@pytest.mark.parametrize(
    "module", ["tidal.log", "tidal.log._topic", "tidal.log._consumer", "tidal.log._record"]
)
def test_docstring_examples_run(module, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    result = doctest.testmod(importlib.import_module(module), optionflags=doctest.ELLIPSIS)
    assert result.attempted > 0
    assert result.failed == 0
