"""SQL over updating results: what a GROUP BY over an upsert input may be, and how it runs.

A ``GROUP BY`` whose input is updating (a non-windowed ``GROUP BY``, a Top-N) is planned
as :func:`~tidal.operators.retract.upsert_aggregate`: each new version of an input key
retracts the old version's contribution from its group (Flink's retractions), and a group
left without rows is deleted from the result (the hidden ``__delete`` column, see
:mod:`tidal.operators.changelog`). Nexmark q4 is the example::

    WITH win AS (SELECT a.id, a.category, MAX(b.price) AS final FROM auction a JOIN bid b
                 ON ... GROUP BY a.id, a.category)
    SELECT category AS id, AVG(final) AS final FROM win GROUP BY category

What cannot be planned this way is refused here, naming the construct.
"""

from __future__ import annotations

from dataclasses import replace
from typing import TYPE_CHECKING

import polars as pl
from sqlglot import exp

from tidal.operators.changelog import DELETE
from tidal.sql.errors import unsupported

if TYPE_CHECKING:
    from tidal.sql.planner import Rel

__all__ = ["DELETE", "check_aggregate_input", "filtered", "row_identity", "without_identity"]

HIDDEN_KEY = "__row_id"
"""Prefix of the hidden copies of an updating result's key columns (:func:`row_identity`)."""


def check_aggregate_input(rel: Rel, node: exp.Select, group: exp.Group | None,
                          having: exp.Having | None) -> None:
    """Refuse what a GROUP BY over the updating ``rel`` cannot do: windows (an updating
    input has no event time) and an input whose upsert key was not selected."""
    keys = list(group.expressions) if group is not None else []
    legacy = [k for k in keys if isinstance(k, exp.Anonymous)
              and k.name.upper() in ("TUMBLE", "HOP", "SESSION")]
    if rel.window is not None or legacy:
        raise unsupported("a window over an updating result (a GROUP BY without windows, or "
                          "a Top-N)", legacy[0] if legacy else group or node,
                          "window the input first and aggregate the windows' results, or "
                          "aggregate without windows")
    if not rel.key and not rel.identity:
        raise unsupported("an aggregate over an updating result whose upsert key is not "
                          "among its columns", node,
                          "select the inner GROUP BY's key columns (or the Top-N's PARTITION "
                          "BY columns and row number) in the subquery")


def filtered(rel: Rel, predicate: pl.Expr) -> Rel:
    """``WHERE``/``HAVING`` on ``rel``. On an append result it drops the rows failing
    ``predicate``; on an updating one a failing row becomes a delete of its key (``__delete``
    true), because the key's earlier version may have passed and must leave the result (a
    group whose running MAX outgrows ``HAVING MAX(x) < 100``). Sinks ignore deletes of keys
    they do not hold."""
    if not rel.updating:
        return replace(rel, stream=rel.stream.filter(predicate))
    gone = ~predicate.fill_null(False)
    if DELETE in rel.schema:
        gone = gone | pl.col(DELETE)
    return replace(rel, stream=rel.stream.with_columns(gone.alias(DELETE)))


def row_identity(rel: Rel, names: list[str],
                 sources: list[str | None]) -> tuple[dict[str, pl.Expr], list[str]]:
    """For a projection of ``rel`` (output ``names``, copied from ``sources``): hidden copies
    of the columns identifying an updating ``rel``'s rows that the projection leaves out,
    and the identifying columns' names in the projection's output.

    Flink's ``SELECT MAX(price) AS final, category FROM ... GROUP BY id, category`` keeps
    ``id`` hidden this way, so that an aggregate over it can still retract by ``id``.
    """
    if not rel.updating:
        return {}, []
    kept = {s: n for n, s in zip(names, sources, strict=True) if s is not None}
    lost: dict[str, pl.Expr] = {}
    identity: list[str] = []
    for i, column in enumerate(rel.key or rel.identity):
        if column in kept:
            identity.append(kept[column])
        else:
            hidden = f"{HIDDEN_KEY}{i}"
            lost[hidden] = pl.col(column)
            identity.append(hidden)
    return lost, identity


def without_identity(rel: Rel) -> Rel:
    """``rel`` without the hidden key copies of :func:`row_identity`: a whole query's
    result, where nothing aggregates it any more, shows only its columns (and deletes)."""
    if not rel.identity:
        return rel
    schema = rel.schema
    stream = rel.stream.select([c for c in schema if not c.startswith(HIDDEN_KEY)])
    return replace(rel, stream=stream, identity=[])
