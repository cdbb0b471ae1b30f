"""Flink's filesystem sink options, translated to :class:`~tidal.connectors.partitioned.PartitionedFiles`.

A ``'filesystem'`` table whose ``'path'`` is a directory (``PARTITIONED BY``, a path ending in
``/``, or any ``sink.*`` / ``partition.*`` option) is written the way Flink writes it: part
files in ``col=value/`` directories, rolled by ``sink.rolling-policy.*`` and committed with a
``_SUCCESS`` file by ``sink.partition-commit.*``.

>>> flink_duration("1 min"), flink_duration("30s"), flink_duration("2 hours")
(60000, 30000, 7200000)
>>> memory_size("128MB"), memory_size("1 kb")
(134217728, 1024)
"""

from __future__ import annotations

import re

from tidal.connectors.base import Sink
from tidal.connectors.partitioned import PartitionCommit, PartitionedFiles
from tidal.errors import ConfigError
from tidal.plan import did_you_mean
from tidal.sql.connectors import TableOptions
from tidal.sql.expressions import java_time_format

__all__ = ["filesystem_sink", "flink_duration", "is_directory_sink", "memory_size"]

_AMOUNT = re.compile(r"^\s*(\d+)\s*([a-z]*)\s*$", re.IGNORECASE)
_DURATION_UNITS = {
    **dict.fromkeys(("", "ms", "milli", "millis", "millisecond", "milliseconds"), 1),
    **dict.fromkeys(("s", "sec", "secs", "second", "seconds"), 1_000),
    **dict.fromkeys(("m", "min", "mins", "minute", "minutes"), 60_000),
    **dict.fromkeys(("h", "hour", "hours"), 3_600_000),
    **dict.fromkeys(("d", "day", "days"), 86_400_000),
}
_SIZE_UNITS = {
    **dict.fromkeys(("", "b", "bytes"), 1),
    **dict.fromkeys(("k", "kb", "kibibytes"), 1 << 10),
    **dict.fromkeys(("m", "mb", "mebibytes"), 1 << 20),
    **dict.fromkeys(("g", "gb", "gibibytes"), 1 << 30),
    **dict.fromkeys(("t", "tb", "tebibytes"), 1 << 40),
}
TRIGGERS = ("partition-time", "process-time")
POLICIES = ("success-file",)


def flink_duration(text: str, option: str = "duration", table: str | None = None) -> int:
    """A Flink ``Duration`` option (``'1 min'``, ``'30s'``, ``'100 ms'``, ``'1 d'``) in ms."""
    return _measure(text, _DURATION_UNITS, option, table,
                    "duration; write a number and a unit (ms, s, min, h, d), e.g. '1 min' or '30 s'")


def memory_size(text: str, option: str = "size", table: str | None = None) -> int:
    """A Flink ``MemorySize`` option (``'128MB'``, ``'1 gb'``, ``'512kb'``) in bytes."""
    return _measure(text, _SIZE_UNITS, option, table,
                    "size; write a number and a unit (b, kb, mb, gb), e.g. '128MB'")


def _measure(text: str, units: dict[str, int], option: str, table: str | None, what: str) -> int:
    m = _AMOUNT.match(text)
    if m is None or m.group(2).lower() not in units:
        where = f"table {table!r}: " if table else ""
        raise ConfigError(f"{where}'{option}' = {text!r} is not a {what}")
    return int(m.group(1)) * units[m.group(2).lower()]


def is_directory_sink(t: TableOptions) -> bool:
    """Whether the table is written as Flink does (a directory of part files) rather than
    as tidal's single file: partitioned, a path ending in ``/``, or rolling/commit options."""
    path = t.options.get("path", "")
    return bool(t.partition_keys) or path.endswith("/") or any(
        k.startswith(("sink.", "partition.")) for k in t.options)


def filesystem_sink(t: TableOptions) -> Sink:
    """The directory sink of a ``'filesystem'`` table (see the module docstring)."""
    path = t.need("path", "out/")
    fmt = t.need("format", "csv")
    if fmt not in ("csv", "json", "parquet"):
        raise ConfigError(f"table {t.table!r}: 'format' = {fmt!r} is not one of json, csv, parquet")

    def duration(key: str, default: str) -> int:
        return flink_duration(t.get(key, default) or default, key, t.table)

    rolling = {
        "file_size": memory_size(t.get("sink.rolling-policy.file-size", "128MB") or "128MB",
                                 "sink.rolling-policy.file-size", t.table),
        "rollover_ms": duration("sink.rolling-policy.rollover-interval", "30 min"),
        "inactivity_ms": duration("sink.rolling-policy.inactivity-interval", "30 min"),
        "check_interval_ms": duration("sink.rolling-policy.check-interval", "1 min"),
    }
    return PartitionedFiles(path, format=fmt, partition_by=t.partition_keys,  # type: ignore[arg-type]
                            commit=_commit(t), default_partition=t.get(
                                "partition.default-name", "__DEFAULT_PARTITION__") or "", **rolling)


def _commit(t: TableOptions) -> PartitionCommit | None:
    """The partition commit of ``sink.partition-commit.*``; like Flink, none without a policy."""
    trigger = t.get("sink.partition-commit.trigger", "process-time") or "process-time"
    if trigger not in TRIGGERS:
        raise ConfigError(f"table {t.table!r}: 'sink.partition-commit.trigger' = {trigger!r} is not "
                          f"one of {', '.join(TRIGGERS)}{did_you_mean(trigger, list(TRIGGERS))}")
    delay = flink_duration(t.get("sink.partition-commit.delay", "0 s") or "0 s",
                           "sink.partition-commit.delay", t.table)
    zone = t.get("sink.partition-commit.watermark-time-zone", "UTC") or "UTC"
    if zone.upper() not in ("UTC", "GMT", "Z"):
        raise ConfigError(f"table {t.table!r}: 'sink.partition-commit.watermark-time-zone' = "
                          f"{zone!r} is not supported: tidal's watermarks and DATE_FORMAT are UTC; "
                          "remove the option")
    kind = t.get("partition.time-extractor.kind", "default") or "default"
    if kind != "default":
        raise ConfigError(f"table {t.table!r}: 'partition.time-extractor.kind' = {kind!r} is not "
                          "supported; use the default extractor with "
                          "'partition.time-extractor.timestamp-pattern'")
    pattern = t.get("partition.time-extractor.timestamp-pattern")
    formatter = t.get("partition.time-extractor.timestamp-formatter")
    success = t.get("sink.partition-commit.success-file.name", "_SUCCESS") or "_SUCCESS"
    policies = [p.strip() for p in (t.get("sink.partition-commit.policy.kind") or "").split(",")
                if p.strip()]
    for p in policies:
        if p not in POLICIES:
            raise ConfigError(f"table {t.table!r}: 'sink.partition-commit.policy.kind' = {p!r} is "
                              "not supported; the filesystem connector commits partitions with "
                              "'success-file' (a metastore needs Hive, which tidal does not have)")
    commit = PartitionCommit(trigger, delay, pattern,  # type: ignore[arg-type]
                             java_time_format(formatter) if formatter else None, success)
    stray = [f for f in commit.fields() if f not in t.partition_keys]
    if stray:
        keys = t.partition_keys
        example = " ".join(f"${k}" for k in keys) if keys else ""
        raise ConfigError(
            f"table {t.table!r}: 'partition.time-extractor.timestamp-pattern' = {pattern!r} names "
            f"{', '.join('$' + f for f in stray)}, which is not a partition column"
            + (f"; the table is PARTITIONED BY ({', '.join(keys)}): name those, e.g. '{example}'"
               if keys else "; declare the table PARTITIONED BY (...) the columns it names"))
    if not policies:
        return None
    if not t.partition_keys:
        raise ConfigError(f"table {t.table!r}: 'sink.partition-commit.policy.kind' needs a "
                          "partitioned table; declare it PARTITIONED BY (...) its partition columns")
    return commit
