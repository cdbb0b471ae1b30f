"""Topic and group names are single plain path components; anything else is refused."""

from __future__ import annotations

import pytest

import tidal.log

BAD = [
    "",
    ".",
    "..",
    "../x",
    "a/b",
    "/abs",
    "a\\b",
    "-lead",
    ".hidden",
    "_x",
    "a b",
    "é",
    "x" * 202,
    "a\x00b",
    "a\nb",
]


@pytest.mark.parametrize("name", BAD)
def test_bad_topic_names_are_refused_everywhere(log, tmp_path, name):
    for call in (
        lambda: log.create_topic(name),
        lambda: log.topic(name),
        lambda: log.delete_topic(name),
        lambda: log.describe(name),
        lambda: log.commit("g", name, {0: 0}),
    ):
        with pytest.raises(tidal.log.InvalidNameError) as info:
            call()
        assert isinstance(info.value, ValueError)
        assert f"invalid topic name {name!r}" in str(info.value)
        assert "^[A-Za-z0-9][A-Za-z0-9._-]{0,200}$" in str(info.value)
    # nothing was created anywhere, inside or outside the log folder
    assert log.topics() == []
    assert sorted(p.name for p in tmp_path.iterdir()) == ["log"]


@pytest.mark.parametrize("name", ["../g", "a/b", ""])
def test_bad_group_names_are_refused(log, name):
    log.create_topic("t")
    with pytest.raises(tidal.log.InvalidNameError, match="invalid group name"):
        log.commit(name, "t", {0: 1})


@pytest.mark.parametrize("name", ["a", "A9", "orders.v2", "clicks_raw", "x-y", "0", "x" * 201])
def test_good_names_are_accepted(log, name):
    assert log.create_topic(name).name == name
    assert name in log.topics()


def test_non_string_name(log):
    with pytest.raises(tidal.log.InvalidNameError, match="invalid topic name 3"):
        log.create_topic(3)
