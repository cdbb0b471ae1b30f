"""``MATCH_RECOGNIZE`` (SQL row pattern recognition) planned onto the CEP operator.

Flink's clause is compiled onto :class:`tidal.operators.cep.PatternMatcher`, the operator
behind ``keyed.match(td.pattern(...))``, so SQL and Python patterns share one engine:

- ``PARTITION BY`` columns are the matcher's keys; ``ORDER BY`` must be the input's event
  time attribute (rows are matched in event-time order once the watermark passes them);
- ``PATTERN (A B+ C? D{2,3})``: each variable is a step with strict contiguity (a
  match is a run of consecutive rows of its partition), quantifiers ``* + ? {n} {n,}
  {n,m} {,m}``, greedy by default (a greedy step keeps taking rows while they match it),
  reluctant with a trailing ``?``; ``WITHIN INTERVAL ...`` is the pattern's ``within``;
- ``DEFINE``: conjuncts that read only the current row are Polars expressions evaluated
  vectorized into the matcher's bit mask; the others (``LAST(A.price, 1)``,
  ``FIRST(A.x)``, ``B.price`` of an earlier variable, aggregates over a variable) are
  compiled to small Python functions the matcher calls per partial match (its *iterative
  conditions*); a variable without a definition matches every row;
- ``MEASURES`` are Polars expressions over the matcher's output (one list of rows per
  variable): ``FIRST/LAST(A.col[, n])``, ``A.col`` (the last row of ``A``), aggregates
  ``COUNT/SUM/MIN/MAX/AVG`` over a variable's rows, ``MATCH_ROWTIME()``;
- ``ONE ROW PER MATCH``; ``AFTER MATCH SKIP PAST LAST ROW`` (the default) ``| TO NEXT ROW
  | TO FIRST v | TO LAST v``, in Flink's order (a match waits while a match that started
  earlier may still complete).

Everything else (``ALL ROWS PER MATCH``, alternation, groups, ``PERMUTE``, ``{- -}``,
``PREV``/``NEXT``, ``CLASSIFIER()``, ``MATCH_NUMBER()``) raises :class:`UnsupportedSql`
naming it.

>>> import tidal as td
>>> flow = td.Flow("mr")
>>> rows = [{"sym": "A", "price": p, "t": i * 1000} for i, p in enumerate([5, 3, 2, 4])]
>>> flow.register_table("ticks", flow.source(td.sources.memory(rows), timestamp="t"))
>>> out = td.sinks.memory()
>>> flow.sql('''SELECT * FROM ticks MATCH_RECOGNIZE (PARTITION BY sym ORDER BY t
...   MEASURES FIRST(D.price) AS top, LAST(D.price) AS bottom, U.price AS up
...   PATTERN (D{2,} U) DEFINE D AS D.price < LAST(D.price, 1) OR LAST(D.price, 1) IS NULL,
...   U AS U.price > LAST(D.price))''').sink(out)
>>> _ = flow.run(quiet=True)
>>> out.rows
[{'sym': 'A', 'top': 5, 'bottom': 2, 'up': 4}]
"""

from __future__ import annotations

import operator
import re
from collections.abc import Callable
from dataclasses import dataclass
from decimal import Decimal
from typing import TYPE_CHECKING, Any

import polars as pl
from sqlglot import exp
from sqlglot.tokens import TokenType

from tidal.operators.cep import CompiledPattern, PatternMatcher, Step
from tidal.operators.timeattr import TimeAttr
from tidal.sql.errors import error, unsupported
from tidal.sql.expressions import Field, Scope, interval_ms

if TYPE_CHECKING:
    from tidal.sql.planner import Planner, Rel

__all__ = ["Variable", "parse_match_recognize", "parse_pattern", "plan_match_recognize"]

Row = tuple[Any, ...]
Events = tuple[tuple[int, int, int, Row], ...]
Eval = Callable[[Events, Row], Any]


# -- syntax ------------------------------------------------------------------------------------
def parse_match_recognize(self: Any) -> exp.MatchRecognize | None:
    """The Flink dialect's ``MATCH_RECOGNIZE (...)``: sqlglot's clause plus ``WITHIN
    INTERVAL ...`` after ``PATTERN (...)`` (kept in the node's ``within`` argument)."""
    if not self._match(TokenType.MATCH_RECOGNIZE):
        return None
    self._match_l_paren()
    partition = self._parse_partition_by()
    order = self._parse_order()
    measures = (self._parse_csv(self._parse_match_recognize_measure)
                if self._match_text_seq("MEASURES") else None)
    rows = None
    if self._match_text_seq("ONE", "ROW", "PER", "MATCH"):
        rows = exp.var("ONE ROW PER MATCH")
    elif self._match_text_seq("ALL", "ROWS", "PER", "MATCH"):
        rows = exp.var("ALL ROWS PER MATCH")
    after = None
    if self._match_text_seq("AFTER", "MATCH", "SKIP"):
        if self._match_text_seq("PAST", "LAST", "ROW"):
            after = exp.var("PAST LAST ROW")
        elif self._match_text_seq("TO", "NEXT", "ROW"):
            after = exp.var("TO NEXT ROW")
        elif self._match_text_seq("TO"):
            how = "LAST"
            if self._match_texts(("FIRST", "LAST")):
                how = self._prev.text.upper()
            var = self._advance_any()
            if var is None:
                self.raise_error(f"Expecting a pattern variable after AFTER MATCH SKIP TO {how}")
            after = exp.var(f"TO {how} {var.text if var else ''}")
        else:
            self.raise_error("Expecting PAST LAST ROW, TO NEXT ROW, TO FIRST v or TO LAST v")
    pattern = None
    if self._match_text_seq("PATTERN"):
        self._match_l_paren()
        start, end, depth = self._curr, self._curr, 1
        while self._curr is not None:
            depth += {TokenType.L_PAREN: 1, TokenType.R_PAREN: -1}.get(self._curr.token_type, 0)
            if depth == 0:
                break
            end = self._curr
            self._advance()
        if self._curr is None or start is None or start is self._curr:
            self.raise_error("Expecting a pattern and ) in PATTERN (...)")
        pattern = exp.var(self._find_sql(start, end))
        self._match_r_paren()
    within = self._parse_bitwise() if self._match_text_seq("WITHIN") else None
    if self._match_text_seq("SUBSET"):
        self.raise_error("SUBSET is not supported in MATCH_RECOGNIZE")
    define = (self._parse_csv(self._parse_name_as_expression)
              if self._match_text_seq("DEFINE") else None)
    self._match_r_paren()
    node = self.expression(exp.MatchRecognize(
        partition_by=partition, order=order, measures=measures, rows=rows, after=after,
        pattern=pattern, define=define, alias=self._parse_table_alias()))
    if within is not None:
        node.set("within", within)
    return node


@dataclass(frozen=True)
class Variable:
    """One pattern variable with its quantifier: ``min``..``max`` rows (``max`` None: no
    bound), ``optional`` (zero rows allowed), ``greedy`` (vs reluctant)."""

    name: str
    min: int = 1
    max: int | None = 1
    optional: bool = False
    greedy: bool = True

    @property
    def quantified(self) -> bool:
        """Whether the variable may take more than one row."""
        return self.max != 1


_TOKEN = re.compile(r"\s*(?:(?P<var>[A-Za-z_][A-Za-z_0-9]*|`[^`]+`|\"[^\"]+\")"
                    r"|(?P<quant>\*|\+|\?|\{\s*\d*\s*(?:,\s*\d*\s*)?\})(?P<reluctant>\?)?"
                    r"|(?P<other>\{-|-\}|\S))")


def parse_pattern(text: str, node: exp.Expr | None = None) -> list[Variable]:
    """The variables of ``PATTERN (text)``, a sequence of quantified variables.

    >>> [(v.name, v.min, v.max, v.optional, v.greedy) for v in parse_pattern("A B+? C{2,}")]
    [('A', 1, 1, False, True), ('B', 1, None, False, False), ('C', 2, None, False, True)]
    """
    out: list[Variable] = []
    pos = 0
    text = text.strip()
    if "|" in text:
        raise unsupported("alternation (|) in PATTERN", node,
                          "write the pattern as a sequence of quantified variables")
    while pos < len(text):
        m = _TOKEN.match(text, pos)
        assert m is not None
        pos = m.end()
        if m.group("var"):
            name = m.group("var").strip('`"')
            if name.upper() == "PERMUTE":
                raise unsupported("PERMUTE in PATTERN", node)
            out.append(Variable(name))
        elif m.group("quant"):
            if not out:
                raise error(f"PATTERN ({text}): a quantifier needs a variable before it", node)
            q = m.group("quant")
            last = out[-1]
            if last != Variable(last.name):
                raise error(f"PATTERN ({text}): variable {last.name} has two quantifiers", node)
            out[-1] = _quantify(last.name, q, m.group("reluctant") is None, text, node)
        else:
            other = m.group("other")
            what = {"|": "alternation (|)", "(": "grouping with ( ... )",
                    ")": "grouping with ( ... )", "{-": "exclusion {- ... -}",
                    "-}": "exclusion {- ... -}", "^": "the anchor ^", "$": "the anchor $"}
            raise unsupported(f"{what.get(other, repr(other))} in PATTERN", node,
                              "write the pattern as a sequence of quantified variables")
    if not out:
        raise error("PATTERN () is empty", node)
    return out


def _quantify(name: str, q: str, greedy: bool, text: str, node: exp.Expr | None) -> Variable:
    if q == "*":
        lo, hi = 0, None
    elif q == "+":
        lo, hi = 1, None
    elif q == "?":
        lo, hi = 0, 1
    else:
        inner = q[1:-1].replace(" ", "")
        if "," in inner:
            a, b = inner.split(",")
            lo, hi = int(a or 0), (int(b) if b else None)
        else:
            lo = hi = int(inner)
    if hi is not None and (hi < 1 or hi < lo):
        raise error(f"PATTERN ({text}): the quantifier {q} of {name} matches no row", node)
    if lo == 0 and hi == 1 and not greedy:
        raise unsupported(f"the reluctant optional quantifier {name}{q}?", node, f"write {name}?")
    return Variable(name, max(lo, 1), hi, lo == 0, greedy and hi != lo)


# -- planning ----------------------------------------------------------------------------------
def plan_match_recognize(planner: Planner, rel: Rel, node: exp.MatchRecognize) -> Rel:
    """``rel MATCH_RECOGNIZE (...) [AS alias]``: the matcher step and the MEASURES."""
    from tidal.sql.planner import Rel

    if rel.updating:
        raise unsupported("MATCH_RECOGNIZE over an updating result", node)
    rows = node.args.get("rows")
    if rows is not None and rows.name != "ONE ROW PER MATCH":
        raise unsupported(rows.name, node, "write ONE ROW PER MATCH")
    scope = rel.scope()
    keys = [_partition_column(scope, p) for p in node.args.get("partition_by") or []]
    time = _order_time(rel, scope, node)
    pattern_node = node.args.get("pattern")
    if pattern_node is None:
        raise error("MATCH_RECOGNIZE needs PATTERN (...)", node)
    pattern_node = node  # the PATTERN text has no position of its own: point at the clause
    variables = parse_pattern(pattern_node.args["pattern"].name, pattern_node)
    names = [v.name for v in variables]
    for n in names:
        if names.count(n) > 1:
            raise unsupported(f"the variable {n} appearing twice in PATTERN", pattern_node,
                              "give each occurrence its own variable")
    if variables[0].optional:
        raise unsupported(f"an optional first variable ({variables[0].name})", pattern_node,
                          "a match starts with a required row")
    if variables[-1].greedy and variables[-1].max is None:
        last = variables[-1].name
        raise unsupported(f"a greedy quantifier on the last variable {last}", pattern_node,
                          f"make it reluctant ({last}+? or {last}*?) or end the pattern with "
                          f"another variable, e.g. C defined as NOT <{last}'s condition>")
    within_node = node.args.get("within")
    within = interval_ms(within_node) if within_node is not None else None
    if within is not None and within <= 0:
        raise error("WITHIN needs a positive interval", within_node)
    after, skip_to = _after_match(node, variables)
    steps_of = {v.name: i for i, v in enumerate(variables)}
    defines = {}
    for d in node.args.get("define") or []:
        if d.alias not in steps_of:
            raise error(f"DEFINE {d.alias}: {d.alias} is not a variable of PATTERN "
                        f"({', '.join(names)})", d)
        defines[d.alias] = d.this
    define_scope = Scope(
        [*scope.fields, *(Field(v, f.name, f.column) for v in names for f in scope.fields)],
        rel.schema)
    conditions: list[pl.Expr] = []
    checks: list[Any] = []
    steps: list[Step] = []
    for i, v in enumerate(variables):
        cond, check = _define(planner, define_scope, v.name, defines.get(v.name), steps_of,
                              scope)
        conditions.append(cond)
        checks.append(check)
        steps.append(Step(name=_step_column(i), cond=i, strict=i > 0, min=v.min, max=v.max,
                          optional=v.optional, consecutive=True, quantified=True,
                          forbidden=(), greedy=v.greedy))
    compiled = CompiledPattern(tuple(steps), (), tuple(conditions), within, tuple(checks))
    stream = rel.stream
    assert stream.schema is not None
    out_schema = PatternMatcher.output_schema(compiled, keys, stream.schema, time)
    text = " ".join(f"{k}={a.sql()}" for k, a in node.args.items()
                    if a is not None and k not in ("alias", "measures") and not isinstance(a, list))
    text += " define " + ", ".join(f"{k}: {e.sql()}" for k, e in defines.items())
    label = f"match_recognize[{','.join(keys)}]({' '.join(names)})"
    matched = stream._then(
        "match", label,
        lambda n: PatternMatcher(n, keys, time, compiled, after, skip_to=skip_to, ordered=True),
        schema=out_schema, time=TimeAttr("match_end"), stateful=True,
        signature=f"{label} {text} after={after}:{skip_to}")
    measures, rowtime = _measures(planner, node, variables, rel, keys, out_schema)
    alias = node.alias or None
    out = matched.select(*(pl.col(k) for k in keys), **measures)
    if rowtime is not None:
        out.node.time = TimeAttr(rowtime)
    back = {f.column: f.name for f in scope.fields}
    fields = [Field(alias, back.get(k, k), k) for k in keys]
    fields += [Field(alias, m, m) for m in measures]
    return Rel(out, fields)


def _step_column(i: int) -> str:
    return f"__mr{i}"


def _partition_column(scope: Scope, p: exp.Expr) -> str:
    if not isinstance(p, exp.Column):
        raise unsupported(f"PARTITION BY the expression {p.sql()}", p,
                          "compute it as a column in a subquery first")
    return scope.resolve(p).column


def _order_time(rel: Rel, scope: Scope, node: exp.MatchRecognize) -> TimeAttr:
    order = node.args.get("order")
    time = rel.stream.node.time
    attrs = [f.name for f in rel.fields if time is not None and f.column == time.column]
    if order is None or not order.expressions:
        raise error("MATCH_RECOGNIZE needs ORDER BY the table's event time attribute "
                    f"({', '.join(attrs) or 'none: declare one with WATERMARK FOR'})", node)
    first = order.expressions[0]
    if len(order.expressions) > 1:
        raise unsupported("ORDER BY more than the time attribute in MATCH_RECOGNIZE",
                          order.expressions[1], "rows with equal times are matched in arrival order")
    col = first.this
    physical = scope.resolve(col).column if isinstance(col, exp.Column) else None
    if physical is not None and physical in rel.proctime:
        raise unsupported("MATCH_RECOGNIZE ordered by processing time", col,
                          "order by an event time attribute (WATERMARK FOR ...)")
    if time is None or physical != time.column:
        raise error(f"MATCH_RECOGNIZE ORDER BY {col.sql()}: it must be the event time "
                    f"attribute of the input (time attributes here: {', '.join(attrs) or 'none'}"
                    "); declare one with WATERMARK FOR col AS col - INTERVAL ...", col)
    if first.args.get("desc"):
        raise unsupported("ORDER BY ... DESC in MATCH_RECOGNIZE", first)
    return time


def _after_match(node: exp.MatchRecognize, variables: list[Variable]) -> tuple[str, int | None]:
    after = node.args.get("after")
    text = after.name if after is not None else "PAST LAST ROW"
    text = text.removeprefix("AFTER MATCH SKIP ").strip()
    if text == "PAST LAST ROW":
        return "skip_past_last", None
    if text == "TO NEXT ROW":
        return "skip_to_next", None
    how, _, var = text.removeprefix("TO ").partition(" ")
    names = [v.name for v in variables]
    if var not in names:
        raise error(f"AFTER MATCH SKIP TO {how} {var}: {var} is not a variable of PATTERN "
                    f"({', '.join(names)})", after)
    i = names.index(var)
    if variables[i].optional:
        raise unsupported(f"AFTER MATCH SKIP TO {how} {var} where {var} may match no row", after,
                          "skip to a required variable or PAST LAST ROW")
    if i == 0 and how == "FIRST":
        raise error(f"AFTER MATCH SKIP TO FIRST {var} would find the same match again ({var} "
                    "starts every match); use SKIP TO NEXT ROW", after)
    return ("skip_to_first" if how == "FIRST" else "skip_to_last"), i


# -- DEFINE --------------------------------------------------------------------------------------
_NAVIGATION = (exp.First, exp.Last, exp.AggFunc)


def _define(planner: Planner, scope: Scope, var: str, cond: exp.Expr | None,
            steps_of: dict[str, int], plain: Scope) -> tuple[pl.Expr, Any]:
    """(the vectorized part of ``var``'s condition, its iterative part or None)."""
    if cond is None:
        return pl.lit(True), None
    _reject(cond)
    vectorized: list[exp.Expr] = []
    iterative: list[exp.Expr] = []
    for c in _conjuncts(cond):
        reads_others = any(isinstance(n, _NAVIGATION) for n in c.walk()) or any(
            (col.table or var) != var for col in c.find_all(exp.Column))
        (iterative if reads_others else vectorized).append(c)
    tr = planner.translator(scope)
    mask = pl.lit(True)
    for c in vectorized:
        e = tr.expr(c)
        if tr.dtype(e) != pl.Boolean:
            raise error(f"DEFINE {var}: the condition {c.sql()} is not a boolean", c)
        mask = mask & e
    if not iterative:
        return mask, None
    compiler = _Compiler(var, steps_of, plain)
    fns = [compiler.compile(c) for c in iterative]

    def bind(columns: list[str]) -> Callable[[Events, Row], bool]:
        index = {c: i for i, c in enumerate(columns)}
        bound = [f(index) for f in fns]
        if len(bound) == 1:
            one = bound[0]
            return lambda events, row: one(events, row) is True
        return lambda events, row: all(f(events, row) is True for f in bound)

    return mask, bind


def _conjuncts(e: exp.Expr) -> list[exp.Expr]:
    while isinstance(e, exp.Paren):
        e = e.this
    if isinstance(e, exp.And):
        return [*_conjuncts(e.this), *_conjuncts(e.expression)]
    return [e]


def _reject(e: exp.Expr) -> None:
    """Raise for what MATCH_RECOGNIZE expressions may not use here."""
    for n in e.walk():
        if isinstance(n, exp.Anonymous):
            name = n.name.upper()
            if name in ("PREV", "NEXT"):
                raise unsupported(f"{name}(...) (physical row offsets)", n,
                                  "use LAST(var.col, n) (the n-th last row of var) instead")
            if name in ("CLASSIFIER", "MATCH_NUMBER", "MATCH_PROCTIME"):
                raise unsupported(f"{name}()", n)
        if isinstance(n, exp.Window):
            raise unsupported("an OVER window in MATCH_RECOGNIZE", n)


_CMP: dict[type, Callable[[Any, Any], Any]] = {
    exp.EQ: operator.eq, exp.NEQ: operator.ne, exp.GT: operator.gt, exp.GTE: operator.ge,
    exp.LT: operator.lt, exp.LTE: operator.le,
}
_ARITH: dict[type, Callable[[Any, Any], Any]] = {
    exp.Add: operator.add, exp.Sub: operator.sub, exp.Mul: operator.mul,
}
_AGGS = {exp.Count: "COUNT", exp.Sum: "SUM", exp.Min: "MIN", exp.Max: "MAX", exp.Avg: "AVG"}


class _Compiler:
    """A DEFINE conjunct that reads earlier rows of the match → a Python function of (the
    partial match's events, the current row), in SQL's three-valued logic (None is NULL).

    The row being tested counts as a row of the variable being defined (running semantics):
    ``LAST(A.price, 1)`` in ``A``'s definition is the previous row of ``A``."""

    def __init__(self, var: str, steps_of: dict[str, int], scope: Scope) -> None:
        self.var, self.steps_of, self.scope = var, steps_of, scope

    def compile(self, node: exp.Expr) -> Callable[[dict[str, int]], Eval]:
        """A binder: given the column → position map of rows, the evaluating function."""
        return self._node(node)

    def _node(self, node: exp.Expr) -> Callable[[dict[str, int]], Eval]:
        if isinstance(node, exp.Paren):
            return self._node(node.this)
        if isinstance(node, exp.Column):
            return self._column(node)
        if isinstance(node, exp.Literal | exp.Boolean | exp.Null):
            value = _literal(node)
            return lambda index: lambda events, row: value
        if isinstance(node, exp.First | exp.Last):
            return self._navigate(node)
        if type(node) in _AGGS:
            return self._aggregate(node)
        if type(node) in _CMP or type(node) in _ARITH or isinstance(node, exp.Div | exp.Mod):
            return self._binary(node)
        if isinstance(node, exp.Neg):
            inner = self._node(node.this)

            def neg(index: dict[str, int]) -> Eval:
                f = inner(index)
                return lambda events, row: None if (v := f(events, row)) is None else -v
            return neg
        if isinstance(node, exp.And | exp.Or):
            return self._logic(node)
        if isinstance(node, exp.Not):
            inner = self._node(node.this)

            def not_(index: dict[str, int]) -> Eval:
                f = inner(index)
                return lambda events, row: None if (v := f(events, row)) is None else not v
            return not_
        if isinstance(node, exp.Is) and isinstance(node.expression, exp.Null):
            inner = self._node(node.this)
            return lambda index: (lambda f: lambda events, row: f(events, row) is None)(
                inner(index))
        if isinstance(node, exp.Between):
            return self._node(exp.And(
                this=exp.GTE(this=node.this, expression=node.args["low"]),
                expression=exp.LTE(this=node.this, expression=node.args["high"])))
        raise unsupported(f"{node.sql()!r} ({type(node).__name__}) in a DEFINE condition that "
                          "reads other rows of the match", node,
                          "conditions on earlier rows may use columns, literals, arithmetic, "
                          "comparisons, AND/OR/NOT, IS NULL, BETWEEN, FIRST/LAST and "
                          "COUNT/SUM/MIN/MAX/AVG")

    # rows of a variable in the partial match (the tested row included for self.var)
    def _rows(self, var: str | None) -> Callable[[Events, Row], list[Row]]:
        if var is None:
            return lambda events, row: [*(e[3] for e in events), row]
        step = self.steps_of[var]
        if var == self.var:
            return lambda events, row: [*(e[3] for e in events if e[0] == step), row]
        return lambda events, row: [e[3] for e in events if e[0] == step]

    def _var_of(self, col: exp.Column) -> str | None:
        q = col.table or None
        if q is not None and q not in self.steps_of:
            raise error(f"{col.sql()}: {q} is not a variable of PATTERN "
                        f"({', '.join(self.steps_of)})", col)
        return q

    def _column(self, node: exp.Column) -> Callable[[dict[str, int]], Eval]:
        var = self._var_of(node)
        if var is None or var == self.var:  # the current row
            name = self.scope.resolve(exp.column(node.name)).column
            return lambda index: (lambda i: lambda events, row: row[i])(index[name])
        return self._navigate(exp.Last(this=node))

    def _navigate(self, node: exp.First | exp.Last) -> Callable[[dict[str, int]], Eval]:
        col = node.this
        if not isinstance(col, exp.Column) or isinstance(col.this, exp.Star):
            raise unsupported(f"{node.sql()}: FIRST/LAST of anything but var.column", node)
        offset = node.expression
        if offset is not None and not (isinstance(offset, exp.Literal) and not offset.is_string
                                       and offset.this.isdigit()):
            raise unsupported(f"the offset {offset.sql()} in {node.sql()}", node,
                              "write a non-negative integer literal")
        n = int(offset.this) if offset is not None else 0
        rows = self._rows(self._var_of(col))
        name = self.scope.resolve(exp.column(col.name)).column
        pick = (lambda got: got[-1 - n] if n < len(got) else None) if isinstance(node, exp.Last) \
            else (lambda got: got[n] if n < len(got) else None)

        def bind(index: dict[str, int]) -> Eval:
            i = index[name]

            def nav(events: Events, row: Row) -> Any:
                r = pick(rows(events, row))
                return None if r is None else r[i]
            return nav
        return bind

    def _aggregate(self, node: exp.Expr) -> Callable[[dict[str, int]], Eval]:
        what = _AGGS[type(node)]
        arg = node.this
        if isinstance(arg, exp.Star):
            arg = exp.Column(this=exp.Star())
        if not isinstance(arg, exp.Column) or (node.args.get("distinct")):
            raise unsupported(f"{node.sql()} in DEFINE: aggregates take var.column", node)
        rows = self._rows(self._var_of(arg))
        star = isinstance(arg.this, exp.Star)
        if star and what != "COUNT":
            raise error(f"{what}(*) is not an aggregate", node)
        name = None if star else self.scope.resolve(exp.column(arg.name)).column

        def bind(index: dict[str, int]) -> Eval:
            if name is None:
                return lambda events, row: len(rows(events, row))
            assert name is not None
            i = index[name]

            def agg(events: Events, row: Row) -> Any:
                vals = [r[i] for r in rows(events, row) if r[i] is not None]
                if what == "COUNT":
                    return len(vals)
                if not vals:
                    return None
                if what == "SUM":
                    return sum(vals)
                if what == "MIN":
                    return min(vals)
                if what == "MAX":
                    return max(vals)
                return _divide(sum(vals), len(vals))  # an integer AVG truncates (Flink)
            return agg
        return bind

    def _binary(self, node: exp.Expr) -> Callable[[dict[str, int]], Eval]:
        left, right = self._node(node.this), self._node(node.expression)
        if isinstance(node, exp.Div):
            op = _divide
        elif isinstance(node, exp.Mod):
            op = _modulo
        else:
            op = _CMP.get(type(node)) or _ARITH[type(node)]

        def bind(index: dict[str, int]) -> Eval:
            lf, rf = left(index), right(index)

            def apply(events: Events, row: Row) -> Any:
                a = lf(events, row)
                if a is None:
                    return None
                b = rf(events, row)
                return None if b is None else op(a, b)
            return apply
        return bind

    def _logic(self, node: exp.And | exp.Or) -> Callable[[dict[str, int]], Eval]:
        left, right = self._node(node.this), self._node(node.expression)
        conj = isinstance(node, exp.And)

        def bind(index: dict[str, int]) -> Eval:
            lf, rf = left(index), right(index)

            def apply(events: Events, row: Row) -> Any:
                a = lf(events, row)
                if a is (not conj):  # FALSE AND x, TRUE OR x
                    return a
                b = rf(events, row)
                if b is (not conj):
                    return b
                return None if a is None or b is None else conj
            return apply
        return bind


def _literal(node: exp.Expr) -> Any:
    if isinstance(node, exp.Null):
        return None
    if isinstance(node, exp.Boolean):
        return bool(node.this)
    assert isinstance(node, exp.Literal)
    if node.is_string:
        return node.this
    text = node.this
    if re.fullmatch(r"\d+", text):
        return int(text)
    if re.fullmatch(r"\d*\.\d*", text):
        return Decimal(text)  # exact, as Flink's DECIMAL literals
    return float(text)


def _divide(a: Any, b: Any) -> Any:
    if b == 0:
        return None
    if isinstance(a, int) and isinstance(b, int):
        q = abs(a) // abs(b)  # Java: truncate toward zero
        return q if (a >= 0) == (b > 0) else -q
    return a / b


def _modulo(a: Any, b: Any) -> Any:
    if b == 0:
        return None
    if isinstance(a, int) and isinstance(b, int):
        r = abs(a) % abs(b)
        return r if a >= 0 else -r
    return a % b


# -- MEASURES ------------------------------------------------------------------------------------
def _measures(planner: Planner, node: exp.MatchRecognize, variables: list[Variable], rel: Rel,
              keys: list[str], out_schema: pl.Schema) -> tuple[dict[str, pl.Expr], str | None]:
    """The measure columns over the matcher's output, and the one holding MATCH_ROWTIME()."""
    steps_of = {v.name: i for i, v in enumerate(variables)}
    every = pl.concat_list([pl.col(_step_column(i)) for i in range(len(variables))])
    physical = rel.scope()
    out: dict[str, pl.Expr] = {}
    rowtime = None
    for m in node.args.get("measures") or []:
        item = m.this
        if not isinstance(item, exp.Alias):
            raise error(f"MEASURES {item.sql()}: give the measure a name ({item.sql()} AS name)",
                        item)
        name = item.alias
        if name in out or name in keys:
            raise error(f"MEASURES: the name {name!r} is used twice in the output", item)
        _reject(item.this)
        replace: dict[str, pl.Expr] = {}

        def rows_of(col: exp.Column) -> pl.Expr:
            q = col.table or None
            if q is None:
                return every
            if q not in steps_of:
                raise error(f"{col.sql()}: {q} is not a variable of PATTERN "
                            f"({', '.join(steps_of)})", col)
            return pl.col(_step_column(steps_of[q]))

        def field(col: exp.Column) -> str:
            return physical.resolve(exp.column(col.name)).column

        for n in item.this.walk():
            key = n.sql()
            if key in replace:
                continue
            if isinstance(n, exp.Anonymous) and n.name.upper() == "MATCH_ROWTIME":
                replace[key] = pl.col("match_end")
                if item.this is n:
                    rowtime = name
            elif isinstance(n, exp.First | exp.Last):
                col = n.this
                if not isinstance(col, exp.Column) or isinstance(col.this, exp.Star):
                    raise unsupported(f"{n.sql()}: FIRST/LAST of anything but var.column", n)
                off = n.expression
                if off is not None and not (isinstance(off, exp.Literal) and off.this.isdigit()):
                    raise unsupported(f"the offset {off.sql()} in {n.sql()}", n,
                                      "write a non-negative integer literal")
                k = int(off.this) if off is not None else 0
                idx = -1 - k if isinstance(n, exp.Last) else k
                replace[key] = rows_of(col).list.get(idx, null_on_oob=True).struct.field(field(col))
            elif type(n) in _AGGS:
                replace[key] = _measure_aggregate(planner, n, rows_of, physical)
            elif isinstance(n, exp.Column) and not isinstance(n.this, exp.Star) and \
                    not any(isinstance(a, _NAVIGATION) for a in _ancestors(n, item.this)):
                replace[key] = rows_of(n).list.last().struct.field(field(n))
        scope = Scope([Field(None, k, k) for k in keys], out_schema, replace)
        out[name] = planner.translator(scope).expr(item.this)
    if not out:
        raise error("MATCH_RECOGNIZE needs MEASURES (what each match outputs)", node)
    return out, rowtime


def _ancestors(n: exp.Expr, top: exp.Expr) -> list[exp.Expr]:
    out = []
    p = n.parent
    while p is not None and p is not top.parent:
        out.append(p)
        p = p.parent
    return out


def _measure_aggregate(planner: Planner, n: exp.Expr, rows_of: Callable[[exp.Column], pl.Expr],
                       physical: Scope) -> pl.Expr:
    what = _AGGS[type(n)]
    arg = n.this
    if n.args.get("distinct") or isinstance(arg, exp.Distinct):
        raise unsupported(f"DISTINCT in {n.sql()} in MEASURES", n)
    if isinstance(arg, exp.Star):
        return rows_of(exp.Column(this=exp.Star())).list.len().cast(pl.Int64)
    cols = list(arg.find_all(exp.Column))
    quals = {c.table or None for c in cols}
    if len(quals) != 1:
        raise unsupported(f"{n.sql()}: an aggregate over columns of several variables", n)
    rows = rows_of(cols[0])
    if isinstance(arg, exp.Column) and isinstance(arg.this, exp.Star):
        return rows.list.len().cast(pl.Int64)
    inner = {c.sql(): pl.element().struct.field(physical.resolve(exp.column(c.name)).column)
             for c in cols}
    value = planner.translator(Scope(physical.fields, physical.schema, inner)).expr(arg)
    count = rows.list.eval(value.count()).list.first().cast(pl.Int64)
    if what == "COUNT":
        return count
    plain = planner.translator(Scope(physical.fields, physical.schema, {
        c.sql(): pl.col(physical.resolve(exp.column(c.name)).column) for c in cols}))
    if what == "AVG" and plain.dtype(plain.expr(arg)).is_integer():
        # AVG of an integer is an integer, truncated toward zero (Flink)
        total = rows.list.eval(value.sum()).list.first()
        q = total // count
        result = pl.when((total % count != 0) & (total < 0)).then(q + 1).otherwise(q)
    else:
        agg = {"SUM": value.sum(), "MIN": value.min(), "MAX": value.max(),
               "AVG": value.mean()}[what]
        result = rows.list.eval(agg).list.first()
    # SQL: an aggregate over no (non-null) values is NULL, where Polars' sum is 0
    return pl.when(count > 0).then(result)
