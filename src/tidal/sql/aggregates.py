"""Planning aggregation: ``GROUP BY`` over windowing TVFs (and legacy group windows), over
the windows of a window aggregation again, over updating results (with retractions), or
running (an updating result); ``GROUPING SETS``/``ROLLUP``/``CUBE`` over windowing TVFs;
the aggregate calls (docs/sql-functions.md lists them), user-defined aggregates, ``HAVING``
and ``SELECT DISTINCT``. A mixin of :class:`~tidal.sql.planner.Planner`."""

from __future__ import annotations

import polars as pl
from sqlglot import exp

import tidal.api.agg as agg
from tidal.api.windows import Session, WindowSpec, session, sliding, tumbling
from tidal.operators.retract import upsert_aggregate
from tidal.sql import syntax, windowing
from tidal.sql.errors import error, unsupported
from tidal.sql.expressions import Field, Scope, Translator, interval_ms
from tidal.sql.relation import Rel
from tidal.sql.updating import check_aggregate_input, filtered

__all__ = ["AGGREGATES", "AggregatePlanning", "distinct_as_group_by"]


class AggregatePlanning:
    """The aggregation methods of the planner (``self`` is a
    :class:`~tidal.sql.planner.Planner`)."""

    def aggregate(self, rel: Rel, node: exp.Select, group: exp.Group | None,
                  having: exp.Having | None) -> Rel:
        if group is not None and any(isinstance(k, _SETS) for k in group.expressions):
            return self._grouping_sets(rel, node, group, having)
        if rel.updating:  # retractions: tidal.sql.updating
            check_aggregate_input(rel, node, group, having)
        keys_sql = list(group.expressions) if group is not None else []
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
            starts = [k for k in key_nodes if syntax.plain_column(scope, k)
                      and rel.window_cols.get(scope.resolve(k).column, ("",))[0] == "start"]
            ends = [k for k in key_nodes if syntax.plain_column(scope, k)
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
                            for a in syntax.aggregate_calls(e)})
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
            if syntax.plain_column(scope, k):
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
            for a in syntax.aggregate_calls(e):
                calls.setdefault(a.sql(), a)
        calls = {k: calls[k] for k in sorted(calls)}  # names in a fixed order (sharing)
        specs: dict[str, agg.Agg] = {}
        finals: dict[str, pl.Expr] = {}
        for sql_text, call in calls.items():
            out = self._name("agg")
            finals[sql_text] = self._agg(call, out, tr, pre, specs, rel.updating)
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

    def _grouping_sets(self, rel: Rel, node: exp.Select, group: exp.Group,
                       having: exp.Having | None) -> Rel:
        """``GROUP BY window_start, window_end, GROUPING SETS (...)`` (or ``ROLLUP``,
        ``CUBE``) over a window TVF: one window aggregation per grouping set, the keys it
        leaves out NULL and ``GROUPING(...)`` a constant, the results unioned (append)."""
        plain = [k for k in group.expressions if not isinstance(k, _SETS)]
        sets = [k for k in group.expressions if isinstance(k, _SETS)]
        if rel.window is None:
            raise unsupported(f"{sets[0].key.upper()} outside a window TVF's GROUP BY", sets[0],
                              "GROUP BY window_start, window_end, GROUPING SETS (...) over "
                              "TUMBLE/HOP/CUMULATE, or one query per grouping set")
        if len(sets) > 1:
            raise unsupported("several GROUPING SETS, ROLLUP or CUBE in one GROUP BY", sets[1])
        grouped = _expand(sets[0])
        every = list({k.sql(): k for ks in grouped for k in ks}.values())
        parts: list[Rel] = []
        for keys in grouped:
            kept = {k.sql() for k in keys}
            one = node.copy()
            for item in [*one.expressions, *([one.args["having"]] if one.args.get("having")
                                              else [])]:
                _pad(item, kept, [k.sql() for k in every])
            one.set("group", exp.Group(expressions=[k.copy() for k in [*plain, *keys]]))
            parts.append(self.aggregate(rel, one, one.args["group"], one.args.get("having")))
        return _union_all(parts)

    def _check_grouped(self, node: exp.Select, scope: Scope) -> None:
        for item in node.expressions:
            for col in syntax.columns_outside_aggs(item, scope.replace):
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
        """Calls of aggregates registered from Python (``td.agg.udaf``), and ``LISTAGG``
        (which sqlglot reads as a plain function), become aggregate nodes, so GROUP BY, HAVING
        and the checks of WHERE treat them as aggregates."""
        from tidal.api.agg import UserAggregate

        for nulls in list(node.find_all(exp.IgnoreNulls, exp.RespectNulls)):
            if isinstance(nulls.this, exp.ArrayAgg):  # ARRAY_AGG(x IGNORE NULLS)
                nulls.this.set("nulls_excluded", isinstance(nulls, exp.IgnoreNulls) or None)
                nulls.replace(nulls.this)
        for call in list(node.find_all(exp.Anonymous)):
            if call.name.upper() == "LISTAGG" and not isinstance(call.parent, exp.Window):
                call.replace(_listagg(call))
                continue
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
            if syntax.plain_column(tr.scope, arg):
                cols.append(tr.scope.resolve(arg).column)
            else:
                cols.append(f"{out}_in{i}")
                pre[cols[-1]] = tr.expr(arg)
        specs[out] = ua(*cols)
        return pl.col(out)

    def _agg(self, call: exp.Expr, out: str, tr: Translator, pre: dict[str, pl.Expr],
             specs: dict[str, agg.Agg], updating: bool) -> pl.Expr:
        cond = None
        if isinstance(call, exp.Filter):
            if isinstance(call.this, exp.AnonymousAggFunc):
                raise unsupported(f"FILTER (WHERE ...) on the user-defined aggregate "
                                  f"{call.this.name}", call, "filter the rows in a subquery")
            cond = tr.expr(call.expression.this)
            call = call.this
        if isinstance(call, exp.AnonymousAggFunc):
            return self._user_agg(call, out, tr, pre, specs)
        name = _checked_name(call, updating)
        distinct = isinstance(call.this, exp.Distinct)
        args = list(call.this.expressions) if distinct else [call.this]
        if len(args) != 1 and name != "COUNT":
            raise error(f"{name} takes one argument", call)
        arg = args[0]
        star = isinstance(arg, exp.Star) or arg is None
        if star:
            if name != "COUNT":
                raise error(f"{name}(*) is not valid; give a column", call)
            if cond is None:
                specs[out] = agg.count()
                return pl.col(out)
            value: pl.Expr = pl.lit(1)
        elif len(args) > 1:  # COUNT(DISTINCT a, b): the distinct rows without a NULL
            values = [tr.expr(a) for a in args]
            value = pl.when(pl.all_horizontal(v.is_not_null() for v in values)) \
                .then(pl.struct(*(v.alias(f"f{i}") for i, v in enumerate(values))))
        else:
            value = tr.expr(arg)
        if cond is not None:
            value = pl.when(cond).then(value).otherwise(None)
        if distinct and name != "COUNT":
            return _sum_distinct(name, value, out, tr.dtype(value), pre, specs)
        if name[:3] in ("VAR", "STD") and tr.dtype(value).is_integer():
            return _integer_variance(name, value, out, pre, specs)
        if not star and cond is None and len(args) == 1 and syntax.plain_column(tr.scope, arg):
            src = tr.scope.resolve(arg).column
        else:
            src = out + "_in"
            pre[src] = value
        return _column_agg(name, call, src, tr.dtype(value), out, specs, distinct, updating)


def _checked_name(call: exp.Expr, updating: bool) -> str:
    """The name of the built-in aggregate ``call``, refusing what tidal does not plan."""
    name = AGGREGATES.get(type(call)) if not isinstance(call, exp.Anonymous) else None
    if name is None:
        raise unsupported(f"the aggregate {call.sql()}", call,
                          "see docs/sql-functions.md for the aggregates tidal plans")
    if isinstance(call.this, exp.Distinct) and name not in ("COUNT", "SUM", "AVG"):
        raise unsupported(f"{name}(DISTINCT ...)", call)
    if isinstance(call.this, exp.Order):
        raise unsupported(f"ORDER BY inside {name}(...)", call.this,
                          "the order is event time (see docs/sql-functions.md)")
    if name in ("FIRST_VALUE", "LAST_VALUE") and updating:
        raise unsupported(f"{name} over an updating input", call,
                          "it picks by event time, which an updating input does not have")
    return name


def _column_agg(name: str, call: exp.Expr, src: str, dtype: pl.DataType, out: str,
                specs: dict[str, agg.Agg], distinct: bool, updating: bool) -> pl.Expr:
    """The aggregate ``name`` of the column ``src`` (of type ``dtype``): its specs added to
    ``specs``, the expression reading its result returned."""
    if name == "COUNT":
        specs[out] = agg.count_distinct(src) if distinct else agg.count(src)
        return pl.col(out)
    if name == "AVG":
        specs[out + "_s"], specs[out + "_n"] = agg.sum(src), agg.count(src)
        return _avg(pl.col(out + "_s"), pl.col(out + "_n"), dtype)
    if name == "SUM":  # SQL: the SUM of no values (all NULL, or FILTER kept none) is NULL
        specs[out], specs[out + "_n"] = agg.sum(src), agg.count(src)
        return pl.when(pl.col(out + "_n") > 0).then(pl.col(out)).otherwise(None)
    if name == "LISTAGG":
        specs[out] = agg.listagg(src, call.args["separator"], by_time=not updating)
        return pl.col(out)
    if name == "ARRAY_AGG":
        specs[out] = agg.Agg("array_agg", src, (bool(call.args.get("nulls_excluded")),
                                                not updating, pl.List(dtype)))
        return pl.col(out)
    specs[out] = _SIMPLE[name](src)
    return pl.col(out)


def _sum_distinct(name: str, value: pl.Expr, out: str, dtype: pl.DataType,
                  pre: dict[str, pl.Expr], specs: dict[str, agg.Agg]) -> pl.Expr:
    """``SUM(DISTINCT x)`` / ``AVG(DISTINCT x)``: the state is the group's set of distinct
    values (as for ``COUNT(DISTINCT x)``), summed when read."""
    pre[out + "_in"] = value.cast(pl.Int64) if dtype.is_integer() else value
    specs[out] = agg.Agg("sum_distinct", out + "_in")
    if name == "SUM":
        return pl.col(out)
    specs[out + "_n"] = agg.count_distinct(out + "_in")
    return _avg(pl.col(out), pl.col(out + "_n"), dtype)


_SETS = (exp.GroupingSets, exp.Rollup, exp.Cube)


def _expand(sets: exp.Expr) -> list[list[exp.Expr]]:
    """The grouping sets of ``GROUPING SETS (...)``, ``ROLLUP (...)`` or ``CUBE (...)``."""
    items = sets.expressions
    if isinstance(sets, exp.Rollup):
        return [items[:n] for n in range(len(items), -1, -1)]
    if isinstance(sets, exp.Cube):
        return [[k for i, k in enumerate(items) if mask >> i & 1]
                for mask in range((1 << len(items)) - 1, -1, -1)]
    out = []
    for item in items:
        if isinstance(item, _SETS):
            raise unsupported(f"{item.key.upper()} inside GROUPING SETS", item,
                              "list the grouping sets")
        out.append(list(item.expressions) if isinstance(item, exp.Tuple) else
                   [item.this] if isinstance(item, exp.Paren) else [item])
    return out


def _pad(item: exp.Expr, kept: set[str], keys: list[str]) -> None:
    """In one grouping set's SELECT (or HAVING) ``item``: a key the set leaves out is NULL
    outside aggregates, and ``GROUPING(a, ...)`` the bits of the keys left out (Flink)."""
    for node in list(item.find_all(exp.Grouping, exp.GroupingId)):
        bits = 0
        for arg in node.expressions:
            if arg.sql() not in keys:
                raise error(f"GROUPING({arg.sql()}): not a key of the grouping sets", arg)
            bits = bits << 1 | (arg.sql() not in kept)
        node.replace(exp.cast(exp.Literal.number(bits), exp.DataType.build("BIGINT")))

    def visit(n: exp.Expr) -> None:
        if isinstance(n, exp.AggFunc | exp.Filter):
            return
        if n.sql() in keys and n.sql() not in kept and n is not item:
            n.replace(exp.Null())
            return
        for child in list(n.iter_expressions()):
            visit(child)

    if item.sql() in keys and item.sql() not in kept:  # a bare key in the list keeps its name
        item.replace(exp.alias_(exp.Null(), item.name) if isinstance(item, exp.Column)
                     else exp.Null())
    else:
        visit(item)


def _union_all(parts: list[Rel]) -> Rel:
    """The grouping sets' results as one append relation (a left-out key, NULL, typed as
    where the key is kept)."""
    first = parts[0]
    names = [f.name for f in first.fields]
    types: dict[str, pl.DataType] = {}
    for part in parts:
        for n, f in zip(names, part.fields, strict=True):
            t = part.schema[f.column]
            if n not in types or types[n] == pl.Null:
                types[n] = t
    cols = [f"__gs{i}" if n in names[:i] else n for i, n in enumerate(names)]
    streams = [part.stream.select([pl.col(f.column).cast(types[n]).alias(c) for n, f, c in
                                   zip(names, part.fields, cols, strict=True)])
               for part in parts]
    stream = streams[0].union(*streams[1:])
    return Rel(stream, [Field(None, n, c) for n, c in zip(names, cols, strict=True)])


def _integer_variance(name: str, value: pl.Expr, out: str, pre: dict[str, pl.Expr],
                      specs: dict[str, agg.Agg]) -> pl.Expr:
    """``VAR_*`` / ``STDDEV_*`` of an integer, as Flink computes it: Calcite reduces it to
    ``(SUM(x*x) - SUM(x)*SUM(x) / COUNT(x)) / COUNT(x)`` (``COUNT(x) - 1`` for the sample
    variants, NULL for one value) in the argument's integer type, so each division
    truncates, and the standard deviation is that variance's square root, truncated."""
    x = value.cast(pl.Int64)
    pre[out + "_in"], pre[out + "_sq"] = x, x * x
    specs[out + "_s"], specs[out + "_q"] = agg.sum(out + "_in"), agg.sum(out + "_sq")
    specs[out + "_n"] = agg.count(out + "_in")
    s, q, n = pl.col(out + "_s"), pl.col(out + "_q"), pl.col(out + "_n")
    denominator = n - 1 if name.endswith("SAMP") else n
    variance = (q - s * s // n) // denominator  # both >= 0: floor is truncation here
    result = variance.cast(pl.Float64).sqrt().cast(pl.Int64) if name[:3] == "STD" else variance
    return pl.when(denominator > 0).then(result).otherwise(None)


def _avg(s: pl.Expr, n: pl.Expr, dtype: pl.DataType) -> pl.Expr:
    """``AVG`` from a sum ``s`` and a count ``n`` of values of type ``dtype``."""
    if dtype.is_integer():  # AVG of an integer is an integer, truncated (Flink)
        q = s // n
        q = pl.when((s % n != 0) & (s < 0)).then(q + 1).otherwise(q)
    else:
        q = s.cast(pl.Float64) / n
    return pl.when(n > 0).then(q).otherwise(None)


def _listagg(call: exp.Anonymous) -> exp.GroupConcat:
    """``LISTAGG(x [, 'sep'])`` as an aggregate node (the separator a string literal, ','
    by default, as in Flink)."""
    args = call.expressions
    if not args or len(args) > 2 or isinstance(args[0], exp.Distinct):
        raise unsupported(f"{call.sql()}", call, "LISTAGG takes a value and an optional "
                          "separator literal: LISTAGG(x, ';')")
    sep = args[1] if len(args) == 2 else exp.Literal.string(",")
    if not (isinstance(sep, exp.Literal) and sep.is_string):
        raise unsupported(f"LISTAGG with the separator {sep.sql()}", sep,
                          "give the separator as a string literal")
    return exp.GroupConcat(this=args[0], separator=sep.name)


AGGREGATES: dict[type[exp.Expr], str] = {
    exp.Count: "COUNT", exp.Sum: "SUM", exp.Min: "MIN", exp.Max: "MAX", exp.Avg: "AVG",
    exp.VariancePop: "VAR_POP", exp.Variance: "VAR_SAMP", exp.StddevPop: "STDDEV_POP",
    exp.StddevSamp: "STDDEV_SAMP", exp.FirstValue: "FIRST_VALUE",
    exp.LastValue: "LAST_VALUE", exp.GroupConcat: "LISTAGG", exp.ArrayAgg: "ARRAY_AGG",
}
"""The built-in aggregates tidal plans, by sqlglot node (``VARIANCE`` reads as
``VAR_SAMP``)."""

_SIMPLE = {
    "MIN": agg.min, "MAX": agg.max,
    "VAR_POP": lambda c: agg.var(c, ddof=0), "VAR_SAMP": agg.var,
    "STDDEV_POP": lambda c: agg.std(c, ddof=0), "STDDEV_SAMP": agg.std,
    "FIRST_VALUE": lambda c: agg.first(c, ignore_nulls=True),
    "LAST_VALUE": lambda c: agg.last(c, ignore_nulls=True),
}
"""Aggregates that are one :mod:`tidal.api.agg` aggregate of one column (Flink's
FIRST_VALUE and LAST_VALUE skip NULLs; the variances here are of floating-point values)."""


def distinct_as_group_by(node: exp.Select) -> exp.Select:
    """``SELECT DISTINCT a, f(b) AS c ...`` as ``SELECT a, f(b) AS c ... GROUP BY a, f(b)``
    (Flink plans it so): an updating result keyed by the selected values, or over a window
    TVF with its window columns selected, a window aggregation."""
    distinct = node.args["distinct"]
    if distinct.args.get("on") is not None:
        raise unsupported("SELECT DISTINCT ON (...)", distinct,
                          "use ROW_NUMBER() OVER (PARTITION BY ...) with rn = 1")
    if node.args.get("group") is not None or \
            any(syntax.aggregate_calls(e) for e in node.expressions):
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
