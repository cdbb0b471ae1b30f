"""Planning joins: regular joins (state kept for ``table.exec.state.ttl``; ``LEFT``,
``RIGHT`` and ``FULL OUTER JOIN`` give updating results that retract padded rows), interval
joins (time bounds between the two sides' event times; ``LEFT JOIN`` too), window joins, and
processing-time lookup joins (``FOR SYSTEM_TIME AS OF``); conditions on one side are
pushed below the join. A mixin of :class:`~tidal.sql.planner.Planner`."""

from __future__ import annotations

import time
from dataclasses import replace
from typing import Any

import polars as pl
from sqlglot import exp

from tidal.sql import syntax, windowing
from tidal.sql.catalog import TableDef
from tidal.sql.errors import error, unsupported
from tidal.sql.expressions import Field, Scope, interval_ms
from tidal.sql.relation import Rel

__all__ = ["FOREVER_MS", "JoinPlanning", "interval_ms_text"]

FOREVER_MS = 10**15
"""State retention of a regular join without ``table.exec.state.ttl``: about 31,700 years."""


class JoinPlanning:
    """The join methods of the planner (``self`` is a :class:`~tidal.sql.planner.Planner`)."""

    def join(self, left: Rel, node: exp.Join, where: list[exp.Expr]) -> Rel:
        side, kind = (node.args.get("side") or "").upper(), (node.args.get("kind") or "").upper()
        if isinstance(node.this, exp.Table) and node.this.args.get("version") is not None:
            return self.lookup_join(left, node, side, kind)
        how = "inner"
        if side in ("LEFT", "RIGHT", "FULL") and kind in ("", "OUTER"):
            how = side.lower()
        elif side or kind not in ("", "INNER"):
            raise unsupported(f"{' '.join(x for x in (side, kind) if x)} JOIN", node,
                              "write [INNER] JOIN or LEFT/RIGHT/FULL [OUTER] JOIN")
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
                     and {syntax.side(c.this, lscope, rscope),
                          syntax.side(c.expression, lscope, rscope)}
                     == {"L", "R"}]
            if not found:
                raise unsupported("a join without an equality between the two sides (a cross "
                                  "join)", node, "add WHERE a.k = b.k")
            for c in found:
                where.remove(c)
            on = syntax.conjunction(found)
        if left.window is not None:  # rows of a window TVF: one per window (a window join)
            left = windowing.materialize(left, node)
        if right.window is not None:
            right = windowing.materialize(right, node)
        if left.updating or right.updating:
            raise unsupported("a join of an updating result (GROUP BY without a window, an "
                              "outer join, a Top-N)", node)
        left, right, pushed = self._push_down(left, right, where, syntax.conjuncts(on), how)
        lscope, rscope = left.scope(), right.scope()
        keys: list[tuple[pl.Expr, pl.Expr]] = []
        residual: list[exp.Expr] = []
        for cond in syntax.conjuncts(on):
            if id(cond) in pushed:
                continue
            pair = None
            if isinstance(cond, exp.EQ):
                a, b = cond.this, cond.expression
                sa, sb = syntax.side(a, lscope, rscope), syntax.side(b, lscope, rscope)
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
        if how != "inner":
            rest = [c for c in residual if interval is None or all(c is not u for u in interval[2])]
            if how != "left" or interval is None or rest:
                # a regular outer join (an updating result); time bounds are conditions there
                if windowing.window_join_ends(left, right, syntax.conjuncts(on)) is not None:
                    raise unsupported(f"a {how.upper()} JOIN of window TVFs (an outer window "
                                      "join)", node, "join the windows with an inner JOIN")
                return self._outer_join(left, right, (ls, rs), names, residual, node)
        if interval is not None:  # the time bounds hold the state: an interval join
            lo, hi, used = interval
            residual = [c for c in residual if all(c is not u for u in used)]
            where[:] = [c for c in where if all(c is not u for u in used)]
            joined = ls.join(rs, on=names, within=(lo, hi), how=how)
        elif (ends := windowing.window_join_ends(left, right, syntax.conjuncts(on))) is not None:
            joined = windowing.window_join(ls, rs, names, ends)  # the windows hold the state
        else:
            ttl = self.session.settings.get("table.exec.state.ttl")
            joined = ls.join(rs, on=names, ttl=interval_ms_text(ttl) if ttl else FOREVER_MS)
        out = joined.schema
        assert out is not None
        fields = _joined_fields(left, right, names, out, node)
        keep = [c for c in out if c not in names]
        rel = Rel(joined.select(keep), fields)
        if residual:
            cond = syntax.conjunction(residual)
            rel = replace(rel, stream=rel.stream.filter(self.translator(rel.scope()).expr(cond)))
        return rel

    def _outer_join(self, left: Rel, right: Rel, streams: tuple[Any, Any], names: list[str],
                    residual: list[exp.Expr], node: exp.Join) -> Rel:
        """The LEFT, RIGHT or FULL ``node`` joining ``left`` and ``right`` (``streams``: theirs
        with the key columns ``names``) without time bounds, Flink's regular outer join:
        :func:`~tidal.operators.outer_join.outer_join`, whose result is updating by hidden
        per-side row ids; the ``residual`` ON conditions decide which pairs match."""
        from tidal.operators.outer_join import outer_join, outer_join_schema

        ls, rs = streams
        ids = (self._name("lid"), self._name("rid"))
        out = outer_join_schema(ls.schema, rs.schema, names, ids)
        fields = _joined_fields(left, right, names, out, node)
        cond = None
        if residual:
            cond = self.translator(Scope(fields, out)).expr(syntax.conjunction(residual))
        ttl = self.session.settings.get("table.exec.state.ttl")
        joined = outer_join(ls, rs, names, how=node.side.lower(), ids=ids, residual=cond,
                            ttl_ms=interval_ms_text(ttl) if ttl else None)
        keep = [c for c in out if c not in names]
        return Rel(joined.select(keep), fields, updating=True, key=list(ids))

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
            side = syntax.side(e, lscope, rscope)
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
        padded rows too and an ON on the left side keeps failing rows (padded): both stay;
        the other way round in a RIGHT JOIN, and a FULL JOIN pushes nothing."""
        lscope, rscope = left.scope(), right.scope()
        preds: dict[str, list[exp.Expr]] = {"L": [], "R": []}
        pushed: set[int] = set()
        padded = {"inner": "", "left": "R", "right": "L", "full": "LR"}[how]
        preserved = {"inner": "", "left": "L", "right": "R", "full": "LR"}[how]
        for cond, source in [*((c, where) for c in list(where)), *((c, None) for c in on)]:
            if any(isinstance(n, exp.Subquery | exp.AggFunc | exp.Window) for n in cond.walk()):
                continue
            side = syntax.side(cond, lscope, rscope)
            # a WHERE may not filter a padded side's input, an ON not a preserved side's
            if side not in preds or side in (padded if source is not None else preserved):
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
            if time is not None and time.column == at_col:  # against a versioned table
                from tidal.sql.temporal_join import temporal_join

                return temporal_join(self, left, node, how)  # type: ignore[arg-type]
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
        for cond in syntax.conjuncts(on):
            if isinstance(cond, exp.EQ):
                a, b = cond.this, cond.expression
                if syntax.side(a, lscope, rscope) == "R":
                    a, b = b, a
                if syntax.side(a, lscope, rscope) == "L" and isinstance(b, exp.Column) and \
                        syntax.side(b, lscope, rscope) == "R":
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
            cond = syntax.conjunction(residual)
            rel = replace(rel, stream=rel.stream.filter(self.translator(rel.scope()).expr(cond)))
        return rel

    # -- projections ----------------------------------------------------------------------


def _joined_fields(left: Rel, right: Rel, keys: list[str], out: pl.Schema,
                   node: exp.Expr | None) -> list[Field]:
    """The SQL names of a join's output columns ``out``: the left's, then the right's (a
    right column whose name the left has, or a key's, takes the suffix ``_right``)."""
    lcols = set(left.schema) | set(keys)
    rmap = {c: (c + "_right" if c in lcols else c) for c in right.schema}
    if any(v not in out for v in rmap.values()):
        raise unsupported("a join whose column names clash twice", node)
    return left.fields + [Field(f.qualifier, f.name, rmap[f.column]) for f in right.fields]


def interval_ms_text(text: str, what: str = "table.exec.state.ttl") -> int:
    """``'1 h'``, ``'10 min'``, ``'3600000'`` (ms) or ``'30 s'`` as milliseconds (an error
    names the setting ``what``)."""
    from tidal._time import duration_ms

    t = text.strip().replace(" ", "")
    if t.isdigit():
        return int(t)
    t = t.replace("min", "m").replace("hour", "h").replace("sec", "s")
    return duration_ms(t, what)


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
