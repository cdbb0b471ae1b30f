"""SQL queries → Stream API calls: the same plan nodes and operators as Python pipelines.

A query is planned bottom-up into a :class:`Rel` (a Stream plus the SQL names of its
columns):

- ``FROM`` a table, view, CTE or subquery; ``TABLE(TUMBLE|HOP|CUMULATE|SESSION(...))``
  marks the relation as windowed;
- ``JOIN ... ON a.k = b.k [AND residual]`` → :meth:`Stream.join` (regular join, state kept
  for ``table.exec.state.ttl``, default forever), the residual as a filter;
- ``WHERE`` → :meth:`Stream.filter`, its ``[NOT] IN (SELECT ...)`` / ``[NOT] EXISTS``
  conditions → semi and anti joins (:mod:`tidal.sql.subqueries`); ``GROUP BY window_start, window_end, keys`` over a
  windowing TVF (or a legacy ``GROUP BY SESSION(t, INTERVAL ...)``) → ``key_by(keys)
  .window(spec).agg(...)``; ``GROUP BY`` over the window columns of a window aggregation
  → the same windows again (window propagation); any other ``GROUP BY`` → a running
  ``key_by(keys).agg(...)`` whose result is *updating* (an upsert per changed key);
- the ``SELECT`` list → :meth:`Stream.select`.

The planner's parts live beside it: joins in :mod:`tidal.sql.joins`, aggregation in
:mod:`tidal.sql.aggregates` (both mixins of :class:`Planner`), window TVFs in
:mod:`tidal.sql.windowing`, OVER in :mod:`tidal.sql.over`, ORDER BY / LIMIT in
:mod:`tidal.sql.ordering`, MATCH_RECOGNIZE in :mod:`tidal.sql.match_recognize`, updating
results in :mod:`tidal.sql.updating`; :mod:`tidal.sql.relation` holds :class:`Rel`.
What is not supported raises :class:`~tidal.sql.errors.UnsupportedSql` naming it.
"""

from __future__ import annotations

import time
from dataclasses import replace
from typing import TYPE_CHECKING

import polars as pl
from sqlglot import exp

from tidal.api.watermarks import bounded_delay
from tidal.api.windows import WindowSpec, session, sliding, tumbling
from tidal.errors import TidalError
from tidal.operators.timeattr import TimeAttr
from tidal.sql import syntax, windowing
from tidal.sql.aggregates import AggregatePlanning, distinct_as_group_by
from tidal.sql.catalog import Registered, TableDef, ViewDef, describe_type
from tidal.sql.dialect import WindowTVF
from tidal.sql.errors import error, unsupported
from tidal.sql.expressions import Field, Scope, Translator, interval_ms
from tidal.sql.joins import FOREVER_MS, JoinPlanning, interval_ms_text
from tidal.sql.over import over_calls, plan_over
from tidal.sql.relation import RankSpec, Rel
from tidal.sql.subqueries import SubqueryPlanning, check_subqueries, is_subquery_condition
from tidal.sql.updating import DELETE, filtered, row_identity, without_identity

if TYPE_CHECKING:
    from tidal.api.flow import Flow
    from tidal.sql.session import Session as SqlSession

__all__ = ["FOREVER_MS", "Planner", "RankSpec", "Rel", "interval_ms_text"]


def _now_ms(_: pl.Series) -> pl.Series:
    return pl.Series([time.time_ns() // 1_000_000], dtype=pl.Int64)


PROCTIME_EXPR = pl.lit(0).map_batches(_now_ms, returns_scalar=True, return_dtype=pl.Int64) \
    .cast(pl.Datetime("ms"))


class Planner(JoinPlanning, AggregatePlanning, SubqueryPlanning):
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
        if isinstance(node, exp.Values):
            return self.values(node)
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
            node = distinct_as_group_by(node)
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
        conjuncts = syntax.conjuncts(where.this) if where is not None else []
        semi = [c for c in conjuncts if is_subquery_condition(c)]  # tidal.sql.subqueries
        conjuncts = [c for c in conjuncts if not is_subquery_condition(c)]
        check_subqueries(node, conjuncts)
        rel = self.from_(node, conjuncts)
        ranked = rel.rank is not None
        if ranked:
            rel, conjuncts = self.apply_rank(rel, conjuncts)
        where = exp.Where(this=syntax.conjunction(conjuncts)) if conjuncts else None
        if where is not None:
            if rel.window is not None and syntax.mentions(where.this, ("window_start", "window_end",
                                                                  "window_time")):
                raise unsupported("a WHERE on window columns of a window TVF", where)
            if list(where.this.find_all(exp.AggFunc)):
                raise error("aggregates are not allowed in WHERE; use HAVING", where)
            if not overs and row_number is None and not semi:
                rel = _pruned(rel, node, where.this)
            rel = filtered(rel, self.translator(rel.scope()).expr(where.this))
        if semi:
            rel = self.subquery_filters(rel, semi)
        if overs:
            return plan_over(self, rel, node, overs)
        group = node.args.get("group")
        aggs = [a for e in node.expressions for a in syntax.aggregate_calls(e)]
        having = node.args.get("having")
        if group is not None or aggs:
            windowing.check_session_keys(node, group)
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
                    and syntax.resolves(rel.scope(), x)
                    and rel.scope().resolve(x).column == spec.column]
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
        if frm is None and any(isinstance(e, exp.Star) for e in node.expressions):
            raise error("SELECT * needs a FROM", node)
        if frm is None:  # SELECT 1 + 1: one row, as FROM (VALUES (0)) with a hidden column
            alias = exp.TableAlias(columns=[exp.to_identifier("__dual")])
            rel = self.values(exp.Values(expressions=[exp.Tuple(expressions=[
                exp.Literal.number(0)])], alias=alias))
        else:
            rel = self.relation(frm.this)
        match = node.args.get("match")
        if match is not None:
            if node.args.get("joins"):
                raise unsupported("MATCH_RECOGNIZE in a join", match,
                                  "match in a subquery, then join its result")
            from tidal.sql.match_recognize import plan_match_recognize

            return plan_match_recognize(self, rel, match)
        for j in node.args.get("joins") or []:
            if isinstance(j.this, exp.Unnest):
                rel = self.unnest(rel, j)
                continue
            rel = self.join(rel, j, where if where is not None else [])
        return rel

    def unnest(self, rel: Rel, join: exp.Join) -> Rel:
        """``CROSS JOIN UNNEST(arr) [WITH ORDINALITY] AS t(x [, n])`` (or ``, UNNEST(...)``):
        each row once per element of its array, the element (the fields of a ROW element) as
        new columns and with ``WITH ORDINALITY`` its position from 1; a NULL or empty array
        gives no row, except in ``LEFT JOIN UNNEST(...) ON TRUE``, where it gives one with
        NULLs."""
        node = join.this
        left = join.args.get("side") == "LEFT"
        on = join.args.get("on")
        if join.args.get("side") not in (None, "LEFT") or (on is not None and not (
                left and isinstance(on, exp.Boolean) and on.this)) or (left and on is None):
            raise unsupported(f"{join.sql(dialect='risingwave').strip()}", join,
                              "write CROSS JOIN UNNEST(...) or LEFT JOIN UNNEST(...) ON TRUE")
        if len(node.expressions) != 1:
            raise unsupported("UNNEST of several arrays", node, "UNNEST one array at a time")
        if rel.updating or rel.window is not None:
            raise unsupported("UNNEST of an updating result or a window TVF", node)
        tr = self.translator(rel.scope())
        array = tr.expr(node.expressions[0])
        dtype = tr.dtype(array)
        if not isinstance(dtype, pl.List):
            raise error(f"UNNEST({node.expressions[0].sql()}): it is {describe_type(dtype)}, "
                        "not an array", node)
        element = dtype.inner
        fields = [f.name for f in element.fields] if isinstance(element, pl.Struct) else []
        alias = node.args.get("alias")
        ordinality = node.args.get("offset")
        names = [c.name for c in alias.columns] if alias is not None and alias.columns else \
            list(fields or ["EXPR$0"])
        if ordinality:  # sqlglot takes its name out of the alias's columns
            names.append(ordinality.name if isinstance(ordinality, exp.Expr) else "ORDINALITY")
        given = (fields or ["the element"]) + (["the position"] if ordinality else [])
        if len(names) != len(given):
            raise error(f"UNNEST({node.expressions[0].sql()}) gives {len(given)} column(s) "
                        f"({', '.join(given)}) but the alias names {len(names)} "
                        f"({', '.join(names)})", alias or node)
        columns = []
        for name in names:
            column = name
            while column in rel.schema or column in columns:
                column += "_"
            columns.append(column)
        hidden = self._name("unnest")
        n = pl.col(hidden).list.len().fill_null(0)
        stream = rel.stream.with_columns(array.alias(hidden))
        if not left:
            stream = stream.filter(n > 0)
        repeat = pl.int_range(pl.len()).repeat_by(pl.max_horizontal(n, 1) if left else n)
        out = [pl.exclude(hidden).gather(repeat.explode())]
        value = pl.col(hidden)
        if left:  # one NULL element where there is none
            value = pl.when(n > 0).then(value).otherwise(pl.concat_list(pl.lit(None, element)))
        value = value.explode()
        if fields:
            out += [value.struct.field(f).alias(c) for f, c in zip(fields, columns, strict=False)]
        else:
            out.append(value.alias(columns[0]))
        if ordinality:  # NULL on the row LEFT JOIN keeps for an empty array
            position = pl.int_ranges(1, pl.max_horizontal(n, 1) + 1, dtype=pl.Int32).explode()
            out.append(pl.when(n.gather(repeat.explode()) > 0).then(position)
                       .alias(columns[-1]))
        qualifier = alias.name if alias is not None and alias.name else None
        return replace(rel, stream=stream.select(out),
                       fields=rel.fields + [Field(qualifier, a, c) for a, c in
                                            zip(names, columns, strict=True)])

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
        if isinstance(node, exp.Values):
            return self.values(node).requalify(alias)
        if isinstance(node, exp.Lateral | exp.Unnest):
            raise unsupported(f"{node.key.upper()} in FROM", node)
        raise unsupported(f"{node.sql()} in FROM", node)

    def values(self, node: exp.Values) -> Rel:
        """``VALUES (1, 'a'), (2, 'b') [AS t(x, y)]``: a bounded source of those rows, typed as
        Flink types literals (``1`` INT, ``1.5`` DECIMAL(2, 1), ``'a'`` STRING), each column
        widened to hold every row's value; columns are ``EXPR$0, EXPR$1, ...`` unless named."""
        from tidal.sources import memory

        rows = [r.expressions if isinstance(r, exp.Tuple) else [r] for r in node.expressions]
        alias = node.args.get("alias")
        names = [c.name for c in alias.columns] if alias is not None and alias.columns else \
            [f"EXPR${i}" for i in range(len(rows[0]))]
        for row, r in zip(rows, node.expressions, strict=True):
            if len(row) != len(names):
                raise error(f"VALUES: every row needs {len(names)} value(s) (as many as "
                            f"{'its column names' if alias is not None and alias.columns else 'the first row'}"
                            f"), this one has {len(row)}: {r.sql()}", r)
        tr = self.translator(Scope([], pl.Schema()))
        frames = [pl.select([tr.expr(v).alias(n) for v, n in zip(row, names, strict=True)])
                  for row in rows]
        schema = {n: _widened([f.schema[n] for f in frames], n, node) for n in names}
        frame = pl.concat([f.cast(schema) for f in frames])  # type: ignore[arg-type]
        label, i = "values", 1
        while label in self.flow._names:
            i += 1
            label = f"values_{i}"
        stream = self.flow.source(memory(frame), name=label)
        return Rel(stream, [Field(None, n, n) for n in names])

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
            for key in windowing.session_partition(tvf):
                rel.scope().resolve(key)  # names an unknown column
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
            if syntax.plain_column(scope, inner):
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
_INT_DIGITS = {pl.Int8: 3, pl.Int16: 5, pl.Int32: 10, pl.Int64: 19}


def _widened(types: list[pl.DataType], column: str, node: exp.Expr) -> pl.DataType:
    """The type of a VALUES column whose rows have ``types``: Flink's widening of numbers
    (INT and BIGINT → BIGINT, INT and DECIMAL(2, 1) → DECIMAL(11, 1), any DOUBLE → DOUBLE)."""
    known = list(dict.fromkeys(t for t in types if t != pl.Null))
    if not known:
        raise error(f"VALUES: column {column} is NULL in every row; give it a type with "
                    "CAST(NULL AS type)", node)
    if len(known) == 1:
        return known[0]
    if not all(t.is_numeric() for t in known):
        raise error(f"VALUES: column {column} mixes the types "
                    f"{', '.join(describe_type(t) for t in known)}; CAST the values to one type",
                    node)
    if any(t.is_float() for t in known):
        return pl.Float64()
    decimals = [t for t in known if isinstance(t, pl.Decimal)]
    if not decimals:
        return max(known, key=lambda t: _INT_DIGITS[type(t)])
    scale = max(d.scale for d in decimals)
    digits = max([d.precision - d.scale for d in decimals]
                 + [_INT_DIGITS[type(t)] for t in known if not isinstance(t, pl.Decimal)])
    return pl.Decimal(min(digits + scale, 38), scale)


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


def _pruned(rel: Rel, node: exp.Select, where: exp.Expr) -> Rel:
    """``rel`` without the columns a plain ``SELECT ... WHERE`` never reads, so the filter
    does not copy them: a Flink view over the Nexmark table keeps one of its three ROWs."""
    if rel.updating or rel.window is not None or rel.window_cols or rel.proctime or \
            node.args.get("group") is not None or \
            any(syntax.aggregate_calls(e) for e in node.expressions):
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

