"""SQL queries → Stream API calls: the same plan nodes and operators as Python pipelines.

A query is planned bottom-up into a :class:`Rel` (a Stream plus the SQL names of its
columns):

- ``FROM`` a table, view, CTE or subquery; ``TABLE(TUMBLE|HOP|CUMULATE|SESSION(...))``
  marks the relation as windowed;
- ``JOIN ... ON a.k = b.k [AND residual]`` → :meth:`Stream.join` (regular join, state kept
  for ``table.exec.state.ttl``, default forever), the residual as a filter;
- ``WHERE`` → :meth:`Stream.filter`; ``GROUP BY window_start, window_end, keys`` over a
  windowing TVF (or a legacy ``GROUP BY SESSION(t, INTERVAL ...)``) → ``key_by(keys)
  .window(spec).agg(...)``; ``GROUP BY`` over the window columns of a window aggregation
  → the same windows again (window propagation); any other ``GROUP BY`` → a running
  ``key_by(keys).agg(...)`` whose result is *updating* (an upsert per changed key);
- the ``SELECT`` list → :meth:`Stream.select`.

What is not supported raises :class:`~tidal.sql.errors.UnsupportedSql` naming it.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field, replace
from typing import TYPE_CHECKING, Any

import polars as pl
from sqlglot import exp

import tidal.api.agg as agg
from tidal.api.watermarks import bounded_delay
from tidal.api.windows import Session, WindowSpec, session, sliding, tumbling
from tidal.errors import TidalError
from tidal.operators.retract import upsert_aggregate
from tidal.operators.timeattr import TimeAttr
from tidal.sql import windowing
from tidal.sql.catalog import Registered, TableDef, ViewDef
from tidal.sql.dialect import WindowTVF
from tidal.sql.errors import error, unsupported
from tidal.sql.expressions import Field, Scope, Translator, interval_ms
from tidal.sql.over import over_calls, plan_over
from tidal.sql.updating import (
    DELETE,
    check_aggregate_input,
    filtered,
    row_identity,
    without_identity,
)

if TYPE_CHECKING:
    from tidal.api.flow import Flow
    from tidal.api.stream import Stream
    from tidal.sql.session import Session as SqlSession

__all__ = ["Planner", "Rel"]

FOREVER_MS = 10**15
"""State retention of a regular join without ``table.exec.state.ttl``: about 31,700 years."""


@dataclass
class Rel:
    """A planned relation: its stream, the SQL names of its columns, how it changes."""

    stream: Stream
    fields: list[Field]
    updating: bool = False
    """An upsert stream (a non-windowed GROUP BY): each row replaces the row of its key."""
    key: list[str] = field(default_factory=list)
    window: tuple[str, WindowSpec, str] | None = None
    """A pending windowing TVF: (kind, spec, physical time column)."""
    window_cols: dict[str, tuple[str, WindowSpec]] = field(default_factory=dict)
    """Physical columns holding the start/end of a window aggregation's windows."""
    proctime: set[str] = field(default_factory=set)
    rank: RankSpec | None = None
    """A pending ``ROW_NUMBER() OVER (...)``: planned once the enclosing query's ``WHERE rn
    <= N`` gives its N (:meth:`Planner.apply_rank`)."""
    origin: dict[str, str] = field(default_factory=dict)
    """Output column → the input column a projection copied it from (plain references)."""
    identity: list[str] = field(default_factory=list)
    """An updating result whose key was projected away: hidden copies of the key, which a
    GROUP BY over it retracts by (:mod:`tidal.sql.updating`)."""

    @property
    def schema(self) -> pl.Schema:
        assert self.stream.schema is not None
        return self.stream.schema

    def scope(self, replace_: dict[str, pl.Expr] | None = None) -> Scope:
        return Scope(self.fields, self.schema, dict(replace_ or {}))

    def requalify(self, qualifier: str | None) -> Rel:
        return replace(self, fields=[Field(qualifier, f.name, f.column) for f in self.fields])


@dataclass
class RankSpec:
    """``ROW_NUMBER() OVER (PARTITION BY ... ORDER BY ...) AS rn`` waiting for its ``N``."""

    partition: list[str]
    """Physical (hidden) columns holding the PARTITION BY values."""
    order: list[str]
    descending: list[bool]
    ties: str
    """``"last"``: Flink's keep-last-row deduplication (ORDER BY a time attribute DESC)."""
    column: str
    """The physical column the row number goes to."""
    name: str
    """Its SQL name (the alias)."""
    key: list[str]
    """The columns naming a partition in the output (visible copies where there are)."""
    node: exp.Expr
    window: tuple[str, str] | None = None
    """The hidden partition columns holding a window's start and end, when the partition is
    per window (a window Top-N, :func:`tidal.sql.windowing.window_top_n`)."""


def _now_ms(_: pl.Series) -> pl.Series:
    return pl.Series([time.time_ns() // 1_000_000], dtype=pl.Int64)


PROCTIME_EXPR = pl.lit(0).map_batches(_now_ms, returns_scalar=True, return_dtype=pl.Int64) \
    .cast(pl.Datetime("ms"))


class Planner:
    """Plans queries of one session into one flow."""

    def __init__(self, session: SqlSession, flow: Flow) -> None:
        self.session, self.flow = session, flow
        self.ctes: list[dict[str, Rel]] = []
        self.n = 0

    def _name(self, prefix: str) -> str:
        self.n += 1
        return f"__{prefix}{self.n}"

    def translator(self, scope: Scope) -> Translator:
        return Translator(scope, self.session.functions)

    # -- tables -------------------------------------------------------------------------
    def table(self, name: str, node: exp.Expr | None) -> Rel:
        for level in reversed(self.ctes):
            if name in level:
                return level[name]
        entry = self.session.catalog.get(name, node)
        cache = self.session.streams_of(self.flow)
        if name in cache:
            return cache[name]
        if isinstance(entry, ViewDef):
            saved, self.ctes = self.ctes, []
            try:
                rel = self.relation_of(entry.query)
            finally:
                self.ctes = saved
        elif isinstance(entry, Registered):
            if entry.stream.flow is not self.flow:
                raise error(f"table {name!r} was registered from another flow", node)
            schema = entry.stream.schema
            if schema is None:
                raise error(f"table {name!r}: its stream's columns are unknown (after map or "
                            "map_batches); add a select(...) with the columns first", node)
            rel = Rel(entry.stream, [Field(None, c, c) for c in schema])
        else:
            rel = self._source(entry)
        cache[name] = rel
        return rel

    def _source(self, t: TableDef) -> Rel:
        from tidal.sql.connectors import REGISTRY

        conn = REGISTRY[t.connector]
        if conn.source is None:
            raise error(f"table {t.name!r} uses connector {t.connector!r}, which can only be "
                        "written (INSERT INTO), not read")
        opts = t.table_options()
        source = conn.source(opts)
        declared = pl.Schema(t.columns) if t.connector not in ("nexmark", "datagen") else None
        at_source: dict[str, pl.Expr] = {}
        if t.rowtime in t.computed:  # ts AS TO_TIMESTAMP_LTZ(...), WATERMARK FOR ts: computed
            columns = pl.Schema(t.columns)  # as each batch is read, before its time is taken
            tr = self.translator(Scope([Field(None, c, c) for c in columns], columns))
            at_source[t.rowtime] = tr.expr(t.computed[t.rowtime])
        stream = self.flow.source(
            source, timestamp=t.rowtime, watermark=bounded_delay(t.delay_ms), schema=declared,
            name=t.name, computed=at_source or None,
        )
        rel = Rel(stream, [Field(None, c, c) for c in [*t.columns, *at_source]])
        extra = {c: e for c, e in t.computed.items() if c not in at_source}
        if t.proctime is not None:
            rel = self._with(rel, {t.proctime: PROCTIME_EXPR})
            rel.proctime.add(t.proctime)
        if extra:
            tr = self.translator(rel.scope())
            rel = self._with(rel, {c: tr.expr(e) for c, e in extra.items()})
        return rel

    def _with(self, rel: Rel, columns: dict[str, pl.Expr]) -> Rel:
        stream = rel.stream.with_columns(**columns)
        fields = rel.fields + [Field(None, c, c) for c in columns if c not in rel.schema]
        return replace(rel, stream=stream, fields=fields)

    # -- queries --------------------------------------------------------------------------
    def query(self, node: exp.Expr) -> Rel:
        """Plan a whole query: its result, ready for a sink or a stream."""
        return self.settled(without_identity(self.relation_of(node)), node)

    def settled(self, rel: Rel, node: exp.Expr) -> Rel:
        """``rel`` unless it is a ROW_NUMBER still waiting for its ``WHERE rn <= N``."""
        if rel.rank is not None:
            raise unsupported(f"ROW_NUMBER() OVER (...) AS {rel.rank.name} without a WHERE "
                              f"{rel.rank.name} <= N on it in the enclosing query",
                              rel.rank.node, "select from it with WHERE "
                              f"{rel.rank.name} <= N (Top-N) or = 1 (deduplication)")
        return rel

    def relation_of(self, node: exp.Expr) -> Rel:
        """Plan a query that may end in a pending ROW_NUMBER (a subquery, view or CTE)."""
        if isinstance(node, exp.Subquery):
            return self.relation_of(node.this)
        if isinstance(node, exp.Union):
            return self._union(node)
        if not isinstance(node, exp.Select):
            raise unsupported(f"the statement {node.key.upper()} inside a query", node)
        with_ = node.args.get("with_") or node.args.get("with")
        self.ctes.append({})
        try:
            if with_ is not None:
                if with_.args.get("recursive"):
                    raise unsupported("WITH RECURSIVE", with_)
                for cte in with_.expressions:
                    self.ctes[-1][cte.alias] = self.relation_of(cte.this)
            return self.select(node)
        finally:
            self.ctes.pop()

    def _union(self, node: exp.Union) -> Rel:
        if not isinstance(node, exp.Union) or node.args.get("distinct", True):
            raise unsupported("UNION (distinct)", node, "use UNION ALL")
        left, right = self.query(node.left), self.query(node.right)
        if [f.name for f in left.fields] != [f.name for f in right.fields] or \
                left.updating or right.updating:
            raise unsupported("UNION ALL of inputs with different column names or updating "
                              "inputs", node)
        stream = left.stream.union(right.stream)
        return Rel(stream, [Field(None, f.name, f.column) for f in left.fields])

    def select(self, node: exp.Select) -> Rel:
        if any(node.args.get(a) is not None for a in ("order", "limit", "offset")):
            from tidal.sql.ordering import plan_order_limit

            bare = node.copy()
            for a in ("order", "limit", "offset"):
                bare.set(a, None)
            return plan_order_limit(self, self.settled(self.select(bare), node), node)
        if node.args.get("distinct") is not None:
            node = _distinct_as_group_by(node)
        self._mark_user_aggregates(node)
        row_number: exp.Alias | None = None
        overs = over_calls(node)  # AGG(x) OVER (...) in the SELECT list: tidal.sql.over
        clauses = [*node.expressions, *(node.args.get(k) for k in ("where", "group", "having"))]
        for clause in clauses:
            for w in clause.find_all(exp.Window) if clause is not None else ():
                if isinstance(w.this, exp.RowNumber) and isinstance(w.parent, exp.Alias) and \
                        w.parent in node.expressions and row_number is None:
                    row_number = w.parent
                    continue
                if any(w is o for o in overs):
                    continue
                raise unsupported(f"the OVER window {w.sql()}", w,
                                  "OVER is planned in the SELECT list: ROW_NUMBER() OVER "
                                  "(PARTITION BY ... ORDER BY ...) AS rn, filtered by WHERE rn "
                                  "<= N in an enclosing query, and AGG(x) OVER (...)")
        where = node.args.get("where")
        conjuncts = _conjuncts(where.this) if where is not None else []
        rel = self.from_(node, conjuncts)
        ranked = rel.rank is not None
        if ranked:
            rel, conjuncts = self.apply_rank(rel, conjuncts)
        where = None
        if conjuncts:
            cond = conjuncts[0]
            for c in conjuncts[1:]:
                cond = exp.And(this=cond, expression=c)
            where = exp.Where(this=cond)
        if where is not None:
            if rel.window is not None and _mentions(where.this, ("window_start", "window_end",
                                                                  "window_time")):
                raise unsupported("a WHERE on window columns of a window TVF", where)
            if list(where.this.find_all(exp.AggFunc)):
                raise error("aggregates are not allowed in WHERE; use HAVING", where)
            if not overs and row_number is None:
                rel = _pruned(rel, node, where.this)
            rel = filtered(rel, self.translator(rel.scope()).expr(where.this))
        if overs:
            return plan_over(self, rel, node, overs)
        group = node.args.get("group")
        aggs = [a for e in node.expressions for a in _aggs(e)]
        having = node.args.get("having")
        if group is not None or aggs:
            return self.aggregate(rel, node, group, having)
        if having is not None:
            raise error("HAVING needs GROUP BY or aggregates", having)
        if rel.window is not None:
            rel = self._materialize_window(rel, node)
        if row_number is not None:
            return self.row_number(rel, node, row_number)
        out = self.project(rel, node.expressions)
        if ranked and out.updating and not out.key:
            shown = [f.name for f in rel.fields if f.column in rel.key]
            raise unsupported(
                "a Top-N result without its key columns (the PARTITION BY columns, and the row "
                f"number when N > 1: {', '.join(shown) or 'PARTITION BY expressions'})", node,
                "select them (and PARTITION BY columns, not expressions) so each row replaces "
                "the row of its key")
        return out

    # -- ROW_NUMBER (Top-N and deduplication) -------------------------------------------
    def row_number(self, rel: Rel, node: exp.Select, item: exp.Alias) -> Rel:
        """``SELECT ..., ROW_NUMBER() OVER (PARTITION BY p ORDER BY o) AS rn``: the
        projection, with the partition and order values carried in hidden columns and the
        ranking left pending until the enclosing query's ``WHERE rn <= N``."""
        w = item.this
        if w.args.get("spec") is not None:
            raise unsupported(f"a frame clause in {w.sql()}", w)
        if rel.updating:
            raise unsupported("ROW_NUMBER over an updating result", w)
        if rel.window is not None:
            raise unsupported("window Top-N (ROW_NUMBER over a window TVF)", w)
        order = w.args.get("order")
        if order is None or not order.expressions:
            raise error(f"{w.sql()} needs ORDER BY", w)
        scope = rel.scope()
        tr = self.translator(scope)
        carry: dict[str, pl.Expr] = {}
        partition: list[str] = []
        sources: list[str | None] = []
        for p in w.args.get("partition_by") or []:
            name = self._name("rkp")
            carry[name] = tr.expr(p)
            partition.append(name)
            sources.append(scope.resolve(p).column if isinstance(p, exp.Column) else None)
        if not partition:
            name = self._name("rkp")
            carry[name] = pl.lit(0, pl.Int8)
            partition.append(name)
        ordered: list[str] = []
        descending: list[bool] = []
        for o in order.expressions:
            name = self._name("rko")
            carry[name] = tr.expr(o.this)
            ordered.append(name)
            descending.append(bool(o.args.get("desc")))
        first = order.expressions[0].this
        time = rel.stream.node.time
        attrs = set(rel.proctime) | ({time.column} if time is not None else set())
        by_time = len(order.expressions) == 1 and isinstance(first, exp.Column) and \
            scope.resolve(first).column in attrs
        items = [e for e in node.expressions if e is not item]
        out = self.project(rel, items, carry=carry)
        back = {src: name for name, src in out.origin.items()}
        key = [back.get(src, hidden) if src is not None else hidden
               for src, hidden in zip(sources, partition, strict=True)]
        if not all(k in out.schema for k in key):
            key = partition
        alias = item.alias
        column = alias
        while column in out.schema:
            column += "_"
        spec = RankSpec(partition, ordered, descending, "last" if by_time and descending[0]
                        else "first", column, alias, key, w)
        spec.window = windowing.rank_window(rel, w, partition)
        return replace(out, fields=[*out.fields, Field(None, alias, column)], rank=spec)

    def apply_rank(self, rel: Rel, conjuncts: list[exp.Expr]) -> tuple[Rel, list[exp.Expr]]:
        """Plan a pending ROW_NUMBER with the ``N`` of ``rn <= N`` / ``rn < N`` / ``rn =
        1`` among ``conjuncts``; returns the ranked relation and the other conjuncts."""
        spec = rel.rank
        assert spec is not None
        limits: list[int] = []
        rest: list[exp.Expr] = []
        for c in conjuncts:
            cols = [x for x in c.find_all(exp.Column) if x.name == spec.name
                    and _resolves(rel.scope(), x) and rel.scope().resolve(x).column == spec.column]
            if not cols:
                rest.append(c)
                continue
            n = _rank_limit(c, spec.name)
            if n is None:
                raise unsupported(f"the condition {c.sql()} on the row number {spec.name}", c,
                                  f"write {spec.name} <= N or {spec.name} = 1")
            limits.append(n)
        if not limits:
            self.settled(rel, spec.node)  # raises: nothing limits the row number
        if rest:
            raise unsupported("a WHERE condition on a ROW_NUMBER result other than on its row "
                              f"number ({' AND '.join(c.sql() for c in rest)})",
                              rest[0].find(exp.Column) or rest[0],
                              "filter in the subquery, before the ROW_NUMBER")
        n = min(limits)
        if n < 1:
            raise error(f"{spec.name} <= {n} keeps no row", spec.node)
        if spec.window is not None:
            return windowing.window_top_n(rel, spec, n), []
        from tidal.operators.rank import TopN

        stream = rel.stream
        schema = stream.schema
        assert schema is not None
        out_schema = pl.Schema({**schema, spec.column: pl.Int64()})
        order = spec.node.args["order"].sql()
        label = f"top_n[{','.join(spec.key)}]({n} {order}, ties {spec.ties})"
        ranked = stream._then(
            "top_n", label,
            lambda name: TopN(name, spec.partition, spec.order, spec.descending, n,
                              rank_column=spec.column, ties=spec.ties),
            schema=out_schema, time=None, stateful=True, signature=label)
        key = list(spec.key) if n == 1 else [*spec.key, spec.column]
        return replace(rel, stream=ranked, rank=None, updating=True, key=key), []

    # -- FROM and JOIN ------------------------------------------------------------------------
    def from_(self, node: exp.Select, where: list[exp.Expr] | None = None) -> Rel:
        """The FROM clause; a comma join (``FROM a, b WHERE a.k = b.k``) takes its
        equalities out of ``where`` (the WHERE's conjuncts, changed in place)."""
        frm = node.args.get("from_") or node.args.get("from")
        if frm is None:
            raise unsupported("SELECT without FROM", node)
        rel = self.relation(frm.this)
        match = node.args.get("match")
        if match is not None:
            if node.args.get("joins"):
                raise unsupported("MATCH_RECOGNIZE in a join", match,
                                  "match in a subquery, then join its result")
            from tidal.sql.match_recognize import plan_match_recognize

            return plan_match_recognize(self, rel, match)
        for j in node.args.get("joins") or []:
            rel = self.join(rel, j, where if where is not None else [])
        return rel

    def relation(self, node: exp.Expr) -> Rel:
        alias = node.alias or None
        if isinstance(node, exp.Table):
            inner = node.this
            if isinstance(inner, exp.Anonymous) and inner.name.upper() == "TABLE":
                tvf = inner.expressions[0] if inner.expressions else None
                if not isinstance(tvf, WindowTVF):
                    raise unsupported(f"the table function {inner.sql()}", node)
                return self.window_tvf(tvf).requalify(alias)
            if isinstance(inner, WindowTVF):
                return self.window_tvf(inner).requalify(alias)
            if node.args.get("db") or node.args.get("catalog"):
                raise unsupported("catalog- or database-qualified table names", node)
            if isinstance(inner, exp.Anonymous | exp.Func):
                raise unsupported(f"the table function {inner.sql()}", node)
            if node.args.get("version") is not None or node.args.get("when") is not None:
                raise unsupported("temporal joins (FOR SYSTEM_TIME AS OF)", node)
            return self.table(node.name, node).requalify(alias or node.name)
        if isinstance(node, exp.Subquery):
            return self.relation_of(node.this).requalify(alias)
        if isinstance(node, exp.Lateral | exp.Unnest):
            raise unsupported(f"{node.key.upper()} in FROM", node)
        raise unsupported(f"{node.sql()} in FROM", node)

    def window_tvf(self, tvf: WindowTVF) -> Rel:
        src = tvf.this
        rel = self.relation(src) if not isinstance(src, exp.Subquery) else \
            self.query(src.this).requalify(src.alias or None)
        col = tvf.args["column"]
        ivs = [interval_ms(i) for i in tvf.expressions]
        kind = tvf.name
        want = {"TUMBLE": 1, "HOP": 2, "CUMULATE": 2, "SESSION": 1}[kind]
        if len(ivs) == want + 1 and kind != "SESSION":
            raise unsupported(f"the offset argument of {kind}", tvf)
        if len(ivs) != want:
            raise error(f"{kind} takes {want} interval(s) after DESCRIPTOR(...), got {len(ivs)}",
                        tvf)
        physical = rel.scope().resolve(col).column
        time = rel.stream.node.time
        if physical not in rel.proctime and (time is None or time.column != physical):
            attrs = [f.name for f in rel.fields if time is not None and f.column == time.column]
            attrs += [f.name for f in rel.fields if f.column in rel.proctime]
            raise error(
                f"{kind}(... DESCRIPTOR({col.name}) ...): column {col.name!r} is not a time "
                "attribute, so its windows could never be known complete; declare it with "
                f"WATERMARK FOR {col.name} AS {col.name} - INTERVAL '5' SECOND in CREATE TABLE, "
                "or use PROCTIME() (time attributes here: "
                f"{', '.join(attrs) or 'none'})", col)
        spec: WindowSpec
        if kind == "TUMBLE":
            spec = tumbling(ivs[0])
        elif kind == "HOP":
            slide, size = ivs
            if size % slide:
                raise unsupported("HOP with a size that is not a multiple of the slide", tvf)
            spec = sliding(size, every=slide)
        elif kind == "SESSION":
            if tvf.args.get("partition"):
                raise unsupported("SESSION(TABLE t PARTITION BY ...)", tvf,
                                  "put the keys in GROUP BY instead")
            spec = session(ivs[0])
        else:  # CUMULATE(TABLE t, DESCRIPTOR(ts), step, size)
            spec = windowing.cumulate_spec(ivs[0], ivs[1], tvf)
        if physical in rel.proctime:
            s = rel.stream.select(pl.all())
            s.node.time = TimeAttr(physical)  # processing time drives this window
            rel = replace(rel, stream=s)
        fields = rel.fields + [Field(None, c, c) for c in ("window_start", "window_end",
                                                           "window_time")]
        return replace(rel, window=(kind, spec, physical), fields=fields)

    def _materialize_window(self, rel: Rel, node: exp.Expr) -> Rel:
        return windowing.materialize(rel, node)

    def join(self, left: Rel, node: exp.Join, where: list[exp.Expr]) -> Rel:
        side, kind = (node.args.get("side") or "").upper(), (node.args.get("kind") or "").upper()
        if isinstance(node.this, exp.Table) and node.this.args.get("version") is not None:
            return self.lookup_join(left, node, side, kind)
        how = "inner"
        if side == "LEFT" and kind in ("", "OUTER"):
            how = "left"  # with time bounds: an interval join emitting unmatched left rows
        elif side or kind not in ("", "INNER"):
            raise unsupported(f"{' '.join(x for x in (side, kind) if x)} JOIN", node,
                              "inner joins are planned, and LEFT JOIN with time bounds between "
                              "the two sides (an interval join)")
        if node.args.get("using"):
            raise unsupported("JOIN ... USING", node, "write JOIN ... ON a.k = b.k")
        left = self.settled(left, node)
        on = node.args.get("on")
        comma = on is None and not kind and not side
        if on is None and not comma:
            raise unsupported("a join without ON (a cross join)", node,
                              "write JOIN ... ON a.k = b.k")
        right = self.settled(self.relation(node.this), node)
        if comma:
            # FROM a, b WHERE a.k = b.k ...: the equalities between the two sides join them
            lscope, rscope = left.scope(), right.scope()
            found = [c for c in where if isinstance(c, exp.EQ)
                     and {_side(c.this, lscope, rscope), _side(c.expression, lscope, rscope)}
                     == {"L", "R"}]
            if not found:
                raise unsupported("a join without an equality between the two sides (a cross "
                                  "join)", node, "add WHERE a.k = b.k")
            for c in found:
                where.remove(c)
            on = found[0]
            for c in found[1:]:
                on = exp.And(this=on, expression=c)
        if left.window is not None:  # rows of a window TVF: one per window (a window join)
            left = windowing.materialize(left, node)
        if right.window is not None:
            right = windowing.materialize(right, node)
        if left.updating or right.updating:
            raise unsupported("a join of an updating result (GROUP BY without a window)", node)
        left, right, pushed = self._push_down(left, right, where, _conjuncts(on), how)
        lscope, rscope = left.scope(), right.scope()
        keys: list[tuple[pl.Expr, pl.Expr]] = []
        residual: list[exp.Expr] = []
        for cond in _conjuncts(on):
            if id(cond) in pushed:
                continue
            pair = None
            if isinstance(cond, exp.EQ):
                a, b = cond.this, cond.expression
                sa, sb = _side(a, lscope, rscope), _side(b, lscope, rscope)
                if sa == "L" and sb == "R":
                    pair = (a, b)
                elif sa == "R" and sb == "L":
                    pair = (b, a)
            if pair is None:
                residual.append(cond)
            else:
                keys.append((self.translator(lscope).expr(pair[0]),
                             self.translator(rscope).expr(pair[1])))
        if not keys:
            raise unsupported("a join without an equality between the two sides", node,
                              "add ON a.k = b.k")
        names = [self._name("jk") for _ in keys]
        ls = left.stream.with_columns(**{n: k[0] for n, k in zip(names, keys, strict=True)})
        rs = right.stream.with_columns(**{n: k[1] for n, k in zip(names, keys, strict=True)})
        # a LEFT JOIN's bounds are in ON: a WHERE filters the joined (and padded) rows
        interval = self._interval(left, right, [*residual, *where] if how == "inner" else
                                  residual, node)
        if how == "left":
            rest = [c for c in residual if interval is None or all(c is not u for u in interval[2])]
            if interval is None or rest:
                raise unsupported(
                    "a LEFT JOIN " + ("without time bounds between the two sides' event times "
                                      "(a regular outer join needs retractions)" if interval is
                                      None else f"with the ON condition {rest[0].sql()}"), node,
                    "write ON a.k = b.k AND b.ts BETWEEN a.ts - INTERVAL ... AND a.ts + "
                    "INTERVAL ... (conditions on the right side alone are fine too)")
        if interval is not None:  # the time bounds hold the state: an interval join
            lo, hi, used = interval
            residual = [c for c in residual if all(c is not u for u in used)]
            where[:] = [c for c in where if all(c is not u for u in used)]
            joined = ls.join(rs, on=names, within=(lo, hi), how=how)
        elif (ends := windowing.window_join_ends(left, right, _conjuncts(on))) is not None:
            joined = windowing.window_join(ls, rs, names, ends)  # the windows hold the state
        else:
            ttl = self.session.settings.get("table.exec.state.ttl")
            joined = ls.join(rs, on=names, ttl=interval_ms_text(ttl) if ttl else FOREVER_MS)
        lcols = set(left.schema) | set(names)
        rmap = {c: (c + "_right" if c in lcols else c) for c in right.schema}
        out = joined.schema
        assert out is not None
        if any(v not in out for v in rmap.values()):
            raise unsupported("a join whose column names clash twice", node)
        fields = left.fields + [Field(f.qualifier, f.name, rmap[f.column]) for f in right.fields]
        keep = [c for c in out if c not in names]
        rel = Rel(joined.select(keep), fields)
        if residual:
            cond = residual[0]
            for r in residual[1:]:
                cond = exp.And(this=cond, expression=r)
            rel = replace(rel, stream=rel.stream.filter(self.translator(rel.scope()).expr(cond)))
        return rel

    def _interval(self, left: Rel, right: Rel, conds: list[exp.Expr],
                  node: exp.Expr) -> tuple[int, int, list[exp.Expr]] | None:
        """The bounds ``(lo, hi)`` of ``right time - left time`` that the conditions among
        ``conds`` comparing the two sides' event-time attributes give (``a.ts BETWEEN b.ts -
        INTERVAL '1' HOUR AND b.ts``, ``a.ts >= b.ts``, ...), with the conditions used; None
        unless both a lower and an upper bound are found (then it is a regular join)."""
        lt, rt = left.stream.node.time, right.stream.node.time
        if lt is None or rt is None or lt.column in left.proctime or \
                rt.column in right.proctime:
            return None
        lscope, rscope = left.scope(), right.scope()

        def term(e: exp.Expr) -> tuple[str, int] | None:
            """``(side, c)`` when ``e`` is that side's event time + c ms."""
            while isinstance(e, exp.Paren):
                e = e.this
            shift = 0
            if isinstance(e, exp.Add | exp.Sub) and isinstance(e.expression, exp.Interval):
                shift = interval_ms(e.expression) * (1 if isinstance(e, exp.Add) else -1)
                e = e.this
            if not isinstance(e, exp.Column):
                return None
            side = _side(e, lscope, rscope)
            rel, t = (left, lt) if side == "L" else (right, rt) if side == "R" else (None, None)
            if rel is None or t is None or rel.scope().resolve(e).column != t.column:
                return None
            return side, shift - t.offset_ms  # type: ignore[return-value]

        ops = {exp.GTE: ">=", exp.GT: ">", exp.LTE: "<=", exp.LT: "<"}
        flip = {">=": "<=", ">": "<", "<=": ">=", "<": ">"}
        lo: int | None = None
        hi: int | None = None
        used: list[exp.Expr] = []
        for c in conds:
            if isinstance(c, exp.Between) and not c.args.get("symmetric"):
                parts = [(c.this, c.args["low"], ">="), (c.this, c.args["high"], "<=")]
            elif type(c) in ops:
                parts = [(c.this, c.expression, ops[type(c)])]
            else:
                continue
            found: list[tuple[str, int]] = []
            for a, b, op in parts:
                ta, tb = term(a), term(b)
                if ta is None or tb is None or ta[0] == tb[0]:
                    break
                # right time - left time compared with a constant
                found.append((op, tb[1] - ta[1]) if ta[0] == "R" else (flip[op], ta[1] - tb[1]))
            else:
                for op, v in found:
                    if op in (">=", ">"):
                        v += op == ">"
                        lo = v if lo is None else max(lo, v)
                    else:
                        v -= op == "<"
                        hi = v if hi is None else min(hi, v)
                used.append(c)
        if lo is None or hi is None:
            return None
        if lo > hi:
            raise error(f"the join's time conditions ({' AND '.join(c.sql() for c in used)}) "
                        "can never hold together", node)
        return lo, hi, used

    def _push_down(self, left: Rel, right: Rel, where: list[exp.Expr],
                   on: list[exp.Expr], how: str = "inner") -> tuple[Rel, Rel, set[int]]:
        """Filter each side of a join before joining by the conditions that read only that
        side: the WHERE conjuncts (taken out of ``where``) and the ON conjuncts (their ids
        returned: done). Fewer rows reach the join and its state, as in the hand-written
        pipeline that filters first. In a LEFT JOIN a WHERE on the right side filters the
        padded rows too and an ON on the left side keeps failing rows (padded): both stay."""
        lscope, rscope = left.scope(), right.scope()
        preds: dict[str, list[exp.Expr]] = {"L": [], "R": []}
        pushed: set[int] = set()
        for cond, source in [*((c, where) for c in list(where)), *((c, None) for c in on)]:
            if any(isinstance(n, exp.Subquery | exp.AggFunc | exp.Window) for n in cond.walk()):
                continue
            side = _side(cond, lscope, rscope)
            if side not in preds or (how == "left" and side == ("R" if source is not None
                                                                else "L")):
                continue
            preds[side].append(cond)
            if source is not None:
                source.remove(cond)
            else:
                pushed.add(id(cond))
        out = []
        for rel, side in ((left, "L"), (right, "R")):
            if preds[side]:
                tr = self.translator(rel.scope())
                pred = tr.expr(preds[side][0])
                for c in preds[side][1:]:
                    pred = pred & tr.expr(c)
                rel = replace(rel, stream=rel.stream.filter(pred))
            out.append(rel)
        return out[0], out[1], pushed

    def lookup_join(self, left: Rel, node: exp.Join, side: str, kind: str) -> Rel:
        """``JOIN t FOR SYSTEM_TIME AS OF a.proctime AS s ON f(a) = s.k``: a processing-time
        lookup into table ``t``, read whole when the flow starts (``Stream.lookup`` with a
        reference table); ``LEFT JOIN`` keeps rows without a match."""
        table = node.this
        version = table.args["version"]
        if side not in ("", "LEFT") or kind not in ("", "INNER", "OUTER"):
            raise unsupported(f"{' '.join(x for x in (side, kind) if x)} JOIN with FOR "
                              "SYSTEM_TIME AS OF", node, "use JOIN or LEFT JOIN")
        how = "left" if side == "LEFT" else "inner"
        left = self.settled(left, node)
        if left.updating or left.window is not None:
            raise unsupported("a lookup join of an updating or windowed input", node)
        lscope = left.scope()
        at = version.expression
        if not isinstance(at, exp.Column) or (version.text("kind") or "").upper() != "AS OF":
            raise unsupported(f"FOR SYSTEM_TIME {version.text('kind')} {at.sql()}", version)
        at_col = lscope.resolve(at).column
        if at_col not in left.proctime:
            time = left.stream.node.time
            if time is not None and time.column == at_col:
                raise unsupported("event-time temporal joins (FOR SYSTEM_TIME AS OF a rowtime "
                                  "attribute, against a versioned table)", at,
                                  "look up by processing time: add p AS PROCTIME() and join "
                                  "FOR SYSTEM_TIME AS OF p")
            raise error(f"FOR SYSTEM_TIME AS OF {at.sql()}: {at.name!r} is not a processing-time "
                        "attribute; declare it as PROCTIME()", at)
        name = table.name
        entry = self.session.catalog.get(name, table)
        if not isinstance(entry, TableDef):
            raise unsupported(f"a lookup join into {name!r}, which is a view or a Python stream",
                              table, "look up into a table with a connector (filesystem, "
                              "datagen, ...)")
        ref = _reference_table(entry, self.translator)
        assert ref.schema is not None
        qual = table.alias or name
        rfields = [Field(qual, c, c) for c in ref.schema]
        rscope = Scope(rfields, ref.schema)
        on = node.args.get("on")
        if on is None:
            raise error(f"the lookup join into {name!r} needs ON ... = {qual}.key", node)
        pairs: list[tuple[pl.Expr, str]] = []
        residual: list[exp.Expr] = []
        for cond in _conjuncts(on):
            if isinstance(cond, exp.EQ):
                a, b = cond.this, cond.expression
                if _side(a, lscope, rscope) == "R":
                    a, b = b, a
                if _side(a, lscope, rscope) == "L" and isinstance(b, exp.Column) and \
                        _side(b, lscope, rscope) == "R":
                    pairs.append((self.translator(lscope).expr(a), rscope.resolve(b).column))
                    continue
            residual.append(cond)
        if not pairs:
            raise unsupported("a lookup join without an equality between the input and a "
                              f"column of {name!r}", node, f"add ON a.x = {qual}.key")
        if residual and how == "left":
            raise unsupported("LEFT JOIN ... FOR SYSTEM_TIME AS OF with conditions beside the "
                              "key equalities", residual[0])
        names = [self._name("lk") for _ in pairs]
        ls = left.stream.with_columns(**{n: e for n, (e, _) in zip(names, pairs, strict=True)})
        lschema = ls.schema
        assert lschema is not None
        keyed = _with_keys(ref, {n: (c, lschema[n]) for n, (_, c) in zip(names, pairs,
                                                                           strict=True)})
        joined = ls.lookup(keyed, on=names, how=how)  # type: ignore[arg-type]
        lcols = set(lschema)
        rmap = {c: (c + "_right" if c in lcols else c) for c in ref.schema}
        fields = left.fields + [Field(f.qualifier, f.name, rmap[f.column]) for f in rfields]
        out = joined.schema
        assert out is not None
        keep = [c for c in out if c not in names]
        rel = replace(left, stream=joined.select(keep), fields=fields, origin={})
        if residual:
            cond = residual[0]
            for r in residual[1:]:
                cond = exp.And(this=cond, expression=r)
            rel = replace(rel, stream=rel.stream.filter(self.translator(rel.scope()).expr(cond)))
        return rel

    # -- projections ----------------------------------------------------------------------
    def project(self, rel: Rel, items: list[exp.Expr], scope: Scope | None = None,
                carry: dict[str, pl.Expr] | None = None) -> Rel:
        """The SELECT list; ``carry`` adds hidden columns (``__`` names) after it."""
        scope = scope or rel.scope()
        tr = self.translator(scope)
        exprs: list[pl.Expr] = []
        names: list[str] = []
        sources: list[str | None] = []  # the physical column a plain reference keeps
        for i, item in enumerate(items):
            if isinstance(item, exp.Star) or (isinstance(item, exp.Column)
                                              and isinstance(item.this, exp.Star)):
                qual = item.table if isinstance(item, exp.Column) else None
                hidden = {"window_start", "window_end", "window_time"} if rel.window else set()
                chosen = [f for f in scope.fields if (qual is None or f.qualifier == qual)
                          and not f.column.startswith("__") and f.column not in hidden]
                if qual and not chosen:
                    raise error(f"unknown table or alias {qual!r} in {qual}.*", item)
                for f in chosen:
                    exprs.append(pl.col(f.column))
                    names.append(f.name)
                    sources.append(f.column)
                continue
            inner = item.this if isinstance(item, exp.Alias) else item
            name = item.alias_or_name if isinstance(item, exp.Alias | exp.Column) else ""
            if isinstance(inner, exp.Anonymous) and inner.name.upper() == "PROCTIME":
                exprs.append(PROCTIME_EXPR)
                names.append(name or f"EXPR${i}")
                sources.append("__proctime")
                continue
            e = tr.expr(inner)
            exprs.append(e)
            names.append(name or f"EXPR${i}")
            col = None
            if _plain_column(scope, inner):
                col = scope.resolve(inner).column if inner.sql() not in scope.replace else None
            elif inner.sql() in scope.replace and scope.replace[inner.sql()].meta.is_column():
                col = scope.replace[inner.sql()].meta.output_name()  # a GROUP BY expression
            sources.append(col)
        seen: set[str] = set()
        for i, n in enumerate(names):  # Flink names a repeated column dateTime0, dateTime1, ...
            k, unique = 0, n
            while unique in seen:
                unique, k = f"{n}{k}", k + 1
            names[i] = unique
            seen.add(unique)
        hidden = list(carry or {})
        lost, identity = row_identity(rel, names, sources)
        if not carry and names == sources == list(rel.schema):
            stream = rel.stream  # SELECT of every column as it is: no step
        else:
            stream = rel.stream.select([e.alias(n) for e, n in zip(exprs, names, strict=True)]
                                       + [e.alias(n) for n, e in (carry or {}).items()]
                                       + [pl.col(DELETE)] * (DELETE in rel.schema)
                                       + [e.alias(n) for n, e in lost.items()])
        out = Rel(stream, [Field(None, n, n) for n in [*names, *hidden]], updating=rel.updating,
                  origin={n: s for n, s in zip(names, sources, strict=True)
                          if s is not None and not s.startswith("__")})
        time = rel.stream.node.time
        if time is not None and stream.node.time is None and time.column in sources:
            # event time survives a rename (SELECT `dateTime` AS t): Flink's time attribute
            stream.node.time = TimeAttr(names[sources.index(time.column)], time.offset_ms)
        for n, src in zip(names, sources, strict=True):
            if src is not None and src in rel.window_cols:
                out.window_cols[n] = rel.window_cols[src]
            if src is not None and src in rel.proctime:
                out.proctime.add(n)
            if src == "__proctime":
                out.proctime.add(n)
            if src is not None and src in rel.key:
                out.key.append(n)
        if rel.updating and len(out.key) != len(rel.key):
            out.key = []  # the upsert key was projected away
            out.identity = identity
        return out

    # -- aggregation ------------------------------------------------------------------------
    def aggregate(self, rel: Rel, node: exp.Select, group: exp.Group | None,
                  having: exp.Having | None) -> Rel:
        if rel.updating:  # retractions: tidal.sql.updating
            check_aggregate_input(rel, node, group, having)
        keys_sql = list(group.expressions) if group is not None else []
        for k in ("rollup", "cube", "grouping_sets"):
            if group is not None and group.args.get(k):
                raise unsupported(k.upper().replace("_", " "), group)
        scope = rel.scope()
        tr = self.translator(scope)
        spec: WindowSpec | None = None
        legacy: str | None = None
        propagated: tuple[str, str] | None = None
        key_nodes: list[exp.Expr] = []
        for k in keys_sql:
            if isinstance(k, exp.Anonymous) and k.name.upper() in ("TUMBLE", "HOP", "SESSION"):
                legacy = k.name.upper()
                spec = self._legacy_window(rel, k)
                continue
            if isinstance(k, exp.Column) and rel.window is not None and \
                    k.name in ("window_start", "window_end", "window_time") and \
                    scope.resolve(k).column in ("window_start", "window_end", "window_time"):
                continue
            key_nodes.append(k)
        if rel.window is not None:
            names = {k.name for k in keys_sql if isinstance(k, exp.Column)}
            if not {"window_start", "window_end"} <= names:
                raise unsupported(f"GROUP BY over {rel.window[0]} without both window_start "
                                  "and window_end", group or node,
                                  "add window_start, window_end to GROUP BY")
            spec = rel.window[1]
        elif legacy is None:
            starts = [k for k in key_nodes if _plain_column(scope, k)
                      and rel.window_cols.get(scope.resolve(k).column, ("",))[0] == "start"]
            ends = [k for k in key_nodes if _plain_column(scope, k)
                    and rel.window_cols.get(scope.resolve(k).column, ("",))[0] == "end"]
            if starts and ends:
                s_col, e_col = scope.resolve(starts[0]).column, scope.resolve(ends[0]).column
                propagated = (s_col, e_col)
                inner = rel.window_cols[s_col][1]
                if isinstance(inner, Session):
                    raise unsupported("grouping the result of a SESSION window by its window",
                                      group)
                spec = windowing.propagated_spec(inner)
        # the same aggregation of the same input, planned before, is shared: naming replays
        # from where that planning started, so every name below comes out the same
        shared = self.session.aggregates_of(self.flow)
        calls_sql = sorted({a.sql() for e in [*node.expressions, *([having.this] if having
                                                                   is not None else [])]
                            for a in _aggs(e)})
        sig = (rel.stream.node.name, tuple((f.qualifier, f.name, f.column) for f in rel.fields),
               tuple(k.sql() for k in keys_sql), repr(spec), propagated, tuple(calls_sql))
        resume_n = self.n
        if sig in shared:
            self.n = shared[sig][1]
        start_n = self.n
        # keys: plain columns keep their physical name, expressions get one
        pre: dict[str, pl.Expr] = {}
        key_cols: list[str] = []
        replace_: dict[str, pl.Expr] = {}
        for k in key_nodes:
            if _plain_column(scope, k):
                col = scope.resolve(k).column
            else:
                col = self._name("key")
                pre[col] = tr.expr(k)
                replace_[k.sql()] = pl.col(col)
            if propagated is not None and col in propagated:
                alias = self._name("wk")
                pre[alias] = pl.col(col)
                col = alias
                replace_[k.sql()] = pl.col(alias)
                for f in rel.fields:
                    if f.column == propagated[0 if k is starts[0] else 1]:
                        replace_[exp.column(f.name, f.qualifier).sql()] = pl.col(alias)
                        replace_[exp.column(f.name).sql()] = pl.col(alias)
            if col not in key_cols:
                key_cols.append(col)
        # aggregates
        calls: dict[str, exp.Expr] = {}
        for e in [*node.expressions, *([having.this] if having is not None else [])]:
            for a in _aggs(e):
                calls.setdefault(a.sql(), a)
        calls = {k: calls[k] for k in sorted(calls)}  # names in a fixed order (sharing)
        specs: dict[str, agg.Agg] = {}
        finals: dict[str, pl.Expr] = {}
        for sql_text, call in calls.items():
            out = self._name("agg")
            finals[sql_text] = self._agg(call, out, tr, pre, specs)
        if not specs:
            specs[self._name("agg")] = agg.count()
        if not key_cols and spec is None:  # one global group
            pre["__global"] = pl.lit(0, pl.Int8)
            key_cols.append("__global")
        if sig in shared:
            result = shared[sig][0]
            self.n = max(resume_n, self.n)
        else:
            stream = rel.stream.with_columns(**pre) if pre else rel.stream
            keyed = stream.key_by(key_cols)
            if spec is not None:
                result = keyed.window(spec).agg(specs)
            elif rel.updating:
                result = upsert_aggregate(stream, rel.key or rel.identity, key_cols, specs)
            else:
                result = keyed.agg(specs)
            shared[sig] = (result, start_n)
        post: dict[str, pl.Expr] = {}
        out_fields = [f for f in rel.fields if f.column in key_cols]
        for k in key_nodes:
            if not isinstance(k, exp.Column):
                out_fields.append(Field(None, k.sql(), replace_[k.sql()].meta.output_name()))
        window_cols: dict[str, tuple[str, WindowSpec]] = {}
        if spec is not None:
            if propagated is None:
                quals = {f.qualifier for f in rel.fields if f.name == "window_start"} or {None}
                out_fields += [Field(q, c, c) for q in quals for c in ("window_start", "window_end")]
                window_cols = {"window_start": ("start", spec), "window_end": ("end", spec)}
                if legacy:
                    pre_name = {"TUMBLE": "TUMBLE", "HOP": "HOP", "SESSION": "SESSION"}[legacy]
                    for suffix, col in (("START", "window_start"), ("END", "window_end"),
                                        ("ROWTIME", "window_end")):
                        for e in node.find_all(exp.Anonymous):
                            if e.name.upper() == f"{pre_name}_{suffix}":
                                replace_[e.sql()] = pl.col(col) if suffix != "ROWTIME" else \
                                    pl.col(col) - pl.duration(milliseconds=1)
            else:
                inner_spec = rel.window_cols[propagated[0]][1]
                window_cols = {}
                for f in rel.fields:
                    if f.column in propagated:
                        alias = [c for c in pre if pre[c].meta.output_name() == f.column
                                 and c.startswith("__wk")]
                        if alias:
                            out_fields.append(Field(f.qualifier, f.name, alias[0]))
                            window_cols[alias[0]] = rel.window_cols[f.column][0], inner_spec
        for name, e in finals.items():
            post[name] = e
        scope2 = Scope(out_fields, result.schema, {**replace_, **post})  # type: ignore[arg-type]
        out = Rel(result, out_fields, updating=spec is None, key=list(key_cols) if spec is None
                  else [], window_cols=window_cols)
        if having is not None:
            out = filtered(out, self.translator(scope2).expr(having.this))
        self._check_grouped(node, scope2)
        return self.project(out, node.expressions, scope2)

    def _check_grouped(self, node: exp.Select, scope: Scope) -> None:
        for item in node.expressions:
            for col in _columns_outside_aggs(item, scope.replace):
                try:
                    scope.resolve(col)
                except Exception:
                    raise error(f"column {col.sql()!r} is neither in GROUP BY nor inside an "
                                "aggregate", col) from None

    def _legacy_window(self, rel: Rel, k: exp.Anonymous) -> WindowSpec:
        args = k.expressions
        col = args[0]
        if not isinstance(col, exp.Column):
            raise error(f"{k.name}(...) takes the time column first", k)
        physical = rel.scope().resolve(col).column
        time = rel.stream.node.time
        if physical not in rel.proctime and (time is None or time.column != physical):
            raise error(f"{k.name}({col.name}, ...): column {col.name!r} is not a time attribute; "
                        f"declare WATERMARK FOR {col.name} in CREATE TABLE", col)
        ivs = [interval_ms(a) for a in args[1:]]
        name = k.name.upper()
        if name == "TUMBLE" and len(ivs) == 1:
            return tumbling(ivs[0])
        if name == "HOP" and len(ivs) == 2:
            return sliding(ivs[1], every=ivs[0])
        if name == "SESSION" and len(ivs) == 1:
            return session(ivs[0])
        raise error(f"bad arguments for the group window {k.sql()}", k)

    def _mark_user_aggregates(self, node: exp.Select) -> None:
        """Calls of aggregates registered from Python (``td.agg.udaf``) become aggregate
        nodes, so GROUP BY, HAVING and the checks of WHERE treat them as aggregates."""
        from tidal.api.agg import UserAggregate

        for call in list(node.find_all(exp.Anonymous)):
            f = self.session.functions.get(call.name.lower())
            if f is not None and isinstance(f.fn, UserAggregate):
                call.replace(exp.AnonymousAggFunc(this=call.name, expressions=call.expressions))

    def _user_agg(self, call: exp.AnonymousAggFunc, out: str, tr: Translator,
                  pre: dict[str, pl.Expr], specs: dict[str, agg.Agg]) -> pl.Expr:
        ua = self.session.functions[call.name.lower()].fn
        if not call.expressions:
            raise error(f"the aggregate {call.name}() takes at least one argument", call)
        cols = []
        for i, arg in enumerate(call.expressions):
            if _plain_column(tr.scope, arg):
                cols.append(tr.scope.resolve(arg).column)
            else:
                cols.append(f"{out}_in{i}")
                pre[cols[-1]] = tr.expr(arg)
        specs[out] = ua(*cols)
        return pl.col(out)

    def _agg(self, call: exp.Expr, out: str, tr: Translator, pre: dict[str, pl.Expr],
             specs: dict[str, agg.Agg]) -> pl.Expr:
        cond = None
        if isinstance(call, exp.Filter):
            if isinstance(call.this, exp.AnonymousAggFunc):
                raise unsupported(f"FILTER (WHERE ...) on the user-defined aggregate "
                                  f"{call.this.name}", call, "filter the rows in a subquery")
            cond = tr.expr(call.expression.this)
            call = call.this
        if isinstance(call, exp.AnonymousAggFunc):
            return self._user_agg(call, out, tr, pre, specs)
        distinct = isinstance(call.this, exp.Distinct)
        arg = call.this.expressions[0] if distinct else call.this
        if distinct and len(call.this.expressions) != 1:
            raise unsupported("COUNT(DISTINCT a, b)", call)
        name = type(call).__name__.upper()
        if isinstance(call, exp.Anonymous) or name not in ("COUNT", "SUM", "MIN", "MAX", "AVG"):
            raise unsupported(f"the aggregate {call.sql()}", call,
                              "use COUNT, SUM, MIN, MAX, AVG, COUNT(DISTINCT ...)")
        if distinct and name != "COUNT":
            raise unsupported(f"{name}(DISTINCT ...)", call)
        star = isinstance(arg, exp.Star) or arg is None
        if star:
            if name != "COUNT":
                raise error(f"{name}(*) is not valid; give a column", call)
            if cond is None:
                specs[out] = agg.count()
                return pl.col(out)
            value: pl.Expr = pl.lit(1)
        else:
            value = tr.expr(arg)
        if cond is not None:
            value = pl.when(cond).then(value).otherwise(None)
        src: str
        if not star and cond is None and _plain_column(tr.scope, arg):
            src = tr.scope.resolve(arg).column
        else:
            src = out + "_in"
            pre[src] = value
        if name == "COUNT":
            specs[out] = agg.count_distinct(src) if distinct else agg.count(src)
            return pl.col(out)
        if name == "AVG":
            dtype = tr.dtype(value)
            specs[out + "_s"], specs[out + "_n"] = agg.sum(src), agg.count(src)
            s, n = pl.col(out + "_s"), pl.col(out + "_n")
            if dtype.is_integer():  # AVG of an integer is an integer, truncated (Flink)
                q = s // n
                q = pl.when((s % n != 0) & (s < 0)).then(q + 1).otherwise(q)
            else:
                q = s.cast(pl.Float64) / n
            return pl.when(n > 0).then(q).otherwise(None)
        if name == "SUM":  # SQL: the SUM of no values (all NULL, or FILTER kept none) is NULL
            specs[out], specs[out + "_n"] = agg.sum(src), agg.count(src)
            return pl.when(pl.col(out + "_n") > 0).then(pl.col(out)).otherwise(None)
        specs[out] = {"MIN": agg.min, "MAX": agg.max}[name](src)
        return pl.col(out)


def interval_ms_text(text: str) -> int:
    """``'1 h'``, ``'10 min'``, ``'3600000'`` (ms) or ``'30 s'`` as milliseconds."""
    from tidal._time import duration_ms

    t = text.strip().replace(" ", "")
    if t.isdigit():
        return int(t)
    t = t.replace("min", "m").replace("hour", "h").replace("sec", "s")
    return duration_ms(t, "table.exec.state.ttl")


def _reference_table(t: TableDef, translator: Any) -> Any:
    """Table ``t`` as a ``td.table`` reference table: its connector's source read whole
    (bounded sources only) when the flow starts, cast to the declared types, with its
    computed columns."""
    from tidal.api.joins import Table
    from tidal.connectors.base import SourceContext
    from tidal.sql.connectors import REGISTRY

    conn = REGISTRY[t.connector]
    if conn.source is None:
        raise error(f"table {t.name!r} uses connector {t.connector!r}, which can only be "
                    "written, not looked up")
    source = conn.source(t.table_options())
    if not source.bounded:
        raise unsupported(f"a lookup join into {t.name!r}, whose {t.connector!r} source never "
                          "ends", None, "look up into a bounded table ('filesystem', "
                          "'datagen')")
    declared = pl.Schema(t.columns)
    computed = {c: translator(Scope([Field(None, n, n) for n in declared], declared)).expr(e)
                for c, e in t.computed.items()}
    schema = pl.DataFrame(schema=declared).with_columns(**computed).schema

    def load() -> pl.DataFrame:
        parts = []
        for partition in source.partitions():
            ctx = SourceContext("lookup", t.name, partition, lambda *a: None)
            reader = source.open(partition, None, ctx)
            deadline = time.monotonic() + 600
            while not reader.done:
                batch = reader.poll(1 << 16)
                if batch is None:
                    if time.monotonic() > deadline:
                        raise error(f"lookup table {t.name!r}: its source stopped giving rows")
                    time.sleep(0.001)
                    continue
                frame = batch if isinstance(batch, pl.DataFrame) else pl.from_arrow(batch)
                parts.append(frame)  # type: ignore[arg-type]
            reader.close()
        frame = pl.concat(parts, how="diagonal_relaxed") if parts else pl.DataFrame(
            schema=declared)
        frame = frame.select([pl.col(c).cast(d, strict=False) for c, d in declared.items()])
        return frame.with_columns(**computed)

    return Table(load, t.name, schema)


def _with_keys(ref: Any, keys: dict[str, tuple[str, pl.DataType]]) -> Any:
    """``ref`` with copies of its key columns under the join's key names and types."""
    from tidal.api.joins import Table

    extra = [pl.col(c).cast(d, strict=False).alias(n) for n, (c, d) in keys.items()]
    return Table(lambda: ref.load().with_columns(extra), ref.name,
                 pl.DataFrame(schema=ref.schema).with_columns(extra).schema)


def _rank_limit(c: exp.Expr, name: str) -> int | None:
    """N of ``rn <= N``, ``rn < N + 1``, ``rn = 1`` (either way round); None otherwise."""
    if not isinstance(c, exp.LTE | exp.LT | exp.GTE | exp.GT | exp.EQ):
        return None
    a, b = c.this, c.expression
    flip = {exp.LTE: exp.GTE, exp.GTE: exp.LTE, exp.LT: exp.GT, exp.GT: exp.LT, exp.EQ: exp.EQ}
    op: type = type(c)
    if isinstance(b, exp.Column) and b.name == name:
        a, b, op = b, a, flip[op]
    if not (isinstance(a, exp.Column) and a.name == name and isinstance(b, exp.Literal)
            and not b.is_string and b.this.isdigit()):
        return None
    n = int(b.this)
    if op is exp.LTE:
        return n
    if op is exp.LT:
        return n - 1
    if op is exp.EQ and n == 1:
        return 1
    return None


def _distinct_as_group_by(node: exp.Select) -> exp.Select:
    """``SELECT DISTINCT a, f(b) AS c ...`` as ``SELECT a, f(b) AS c ... GROUP BY a, f(b)``
    (Flink plans it so): an updating result keyed by the selected values, or over a window
    TVF with its window columns selected, a window aggregation."""
    distinct = node.args["distinct"]
    if distinct.args.get("on") is not None:
        raise unsupported("SELECT DISTINCT ON (...)", distinct,
                          "use ROW_NUMBER() OVER (PARTITION BY ...) with rn = 1")
    if node.args.get("group") is not None or any(_aggs(e) for e in node.expressions):
        raise unsupported("SELECT DISTINCT with GROUP BY or aggregates", distinct,
                          "select from the aggregate in a subquery")
    keys = []
    for item in node.expressions:
        inner = item.this if isinstance(item, exp.Alias) else item
        if isinstance(inner, exp.Star) or (isinstance(inner, exp.Column)
                                           and isinstance(inner.this, exp.Star)):
            raise unsupported("SELECT DISTINCT *", item, "name the columns")
        keys.append(inner.copy())
    named = {k.name: k for k in keys if isinstance(k, exp.Column)}
    for have, need in (("window_start", "window_end"), ("window_end", "window_start")):
        if have in named and need not in named:  # a window's start names its end
            keys.append(exp.column(need, named[have].table or None))
    out = node.copy()
    out.set("distinct", None)
    out.set("group", exp.Group(expressions=keys))
    return out


def _conjuncts(e: exp.Expr) -> list[exp.Expr]:
    if isinstance(e, exp.And):
        return _conjuncts(e.this) + _conjuncts(e.expression)
    if isinstance(e, exp.Paren):
        return _conjuncts(e.this)
    return [e]


def _side(e: exp.Expr, left: Scope, right: Scope) -> str | None:
    cols = list(e.find_all(exp.Column))
    if not cols:
        return None
    sides = set()
    for c in cols:
        in_l = _resolves(left, c)
        in_r = _resolves(right, c)
        if in_l and in_r:
            return None
        sides.add("L" if in_l else "R" if in_r else "?")
    return sides.pop() if len(sides) == 1 else None


def _pruned(rel: Rel, node: exp.Select, where: exp.Expr) -> Rel:
    """``rel`` without the columns a plain ``SELECT ... WHERE`` never reads, so the filter
    does not copy them: a Flink view over the Nexmark table keeps one of its three ROWs."""
    if rel.updating or rel.window is not None or rel.window_cols or rel.proctime or \
            node.args.get("group") is not None or any(_aggs(e) for e in node.expressions):
        return rel
    scope, used = rel.scope(), set()
    for c in [*where.find_all(exp.Column), *(c for e in node.expressions
                                             for c in e.find_all(exp.Column))]:
        if isinstance(c.this, exp.Star):
            return rel
        try:
            access = scope.field_access(c)
            used.add(access[0].column if access is not None else scope.resolve(c).column)
        except TidalError:
            return rel  # the filter or the projection names the mistake
    if any(isinstance(e, exp.Star) for e in node.expressions):
        return rel
    time = rel.stream.node.time
    keep = [c for c in rel.schema if c in used or c.startswith("__")
            or (time is not None and c == time.column)]
    if len(keep) == len(rel.schema):
        return rel
    return replace(rel, stream=rel.stream.select(keep),
                   fields=[f for f in rel.fields if f.column in keep],
                   origin={k: v for k, v in rel.origin.items() if k in keep})


def _plain_column(scope: Scope, e: exp.Expr) -> bool:
    """Whether ``e`` names a column (``person.id`` may be a field of the ROW column ``person``,
    which is computed like an expression)."""
    return isinstance(e, exp.Column) and scope.field_access(e) is None


def _resolves(scope: Scope, c: exp.Column) -> bool:
    try:
        if scope.field_access(c) is None:
            scope.resolve(c)
        return True
    except Exception:
        return False


def _aggs(e: exp.Expr) -> list[exp.Expr]:
    """Aggregate calls in ``e`` (with their FILTER), outermost first."""
    found: list[exp.Expr] = []

    def visit(n: exp.Expr) -> None:
        if isinstance(n, exp.Filter) and isinstance(n.this, exp.AggFunc):
            found.append(n)
            return
        if isinstance(n, exp.AggFunc) and not isinstance(n.parent, exp.Window):
            found.append(n)
            return
        for child in n.iter_expressions():
            visit(child)

    visit(e)
    return found


def _columns_outside_aggs(e: exp.Expr, replaced: dict[str, Any]) -> list[exp.Column]:
    out: list[exp.Column] = []

    def visit(n: exp.Expr) -> None:
        if n.sql() in replaced:
            return
        if isinstance(n, exp.AggFunc | exp.Filter):
            return
        if isinstance(n, exp.Column) and not isinstance(n.this, exp.Star):
            out.append(n)
            return
        for child in n.iter_expressions():
            visit(child)

    visit(e)
    return out


def _mentions(e: exp.Expr, names: tuple[str, ...]) -> bool:
    return any(c.name in names for c in e.find_all(exp.Column))
