"""SQL scalar expressions → Polars expressions (vectorized), with Flink's semantics.

Where Flink and Polars differ, the translation follows Flink: integer ``/`` and ``%``
truncate toward zero (Java), a literal with a decimal point is an exact DECIMAL and
``DECIMAL(p1,s1) * DECIMAL(p2,s2)`` is ``DECIMAL(p1+p2+1, s1+s2)`` (so ``0.908 * price`` is
DECIMAL(23,3)), ``CONCAT`` is NULL when an argument is, ``SUBSTRING`` counts from 1,
``SPLIT_INDEX`` from 0, ``REGEXP_EXTRACT`` gives NULL on no match, and time functions read
UTC (timestamps are zone-less UTC).

>>> import polars as pl, sqlglot
>>> from tidal.sql.dialect import Flink
>>> scope = Scope([Field(None, "price", "price")], pl.Schema({"price": pl.Int64}))
>>> e = Translator(scope).expr(sqlglot.parse_one("0.908 * price", read=Flink))
>>> pl.DataFrame({"price": [100]}).select(e).dtypes
[Decimal(precision=23, scale=3)]
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass, field
from decimal import Decimal
from typing import Any

import polars as pl
from sqlglot import exp

from tidal.plan import did_you_mean
from tidal.sql.collections import CollectionFunctions, as_decimal, describe
from tidal.sql.errors import error, refused, unsupported
from tidal.sql.numeric import NumericFunctions
from tidal.sql.strings import StringFunctions
from tidal.sql.temporal import TimeFunctions

__all__ = ["Field", "Function", "Scope", "Translator", "java_time_format", "sql_type"]


@dataclass
class Field:
    """A column visible to SQL: its table qualifier, its SQL name and its physical column."""

    qualifier: str | None
    name: str
    column: str


@dataclass
class Scope:
    """The columns a clause may reference, and the physical schema behind them."""

    fields: list[Field]
    schema: pl.Schema
    replace: dict[str, pl.Expr] = field(default_factory=dict)
    """SQL text of a sub-expression → the column holding it (group keys, aggregates)."""

    def field_access(self, node: exp.Column) -> tuple[Field, list[str], pl.DataType] | None:
        """``col.field`` / ``tbl.col.field`` (deeper for nested ROWs): the ROW column, the path
        of field names and the field's type; None when ``node`` is a plain column reference.

        As in Flink, a leading name that is a table or alias in scope qualifies a column;
        otherwise it is a column and the names after it select fields.
        """
        parts = [p.name for p in node.parts]
        if len(parts) < 2 or isinstance(node.this, exp.Star):
            return None
        quals = {f.qualifier for f in self.fields if f.qualifier}
        if parts[0] in quals:
            if len(parts) == 2:
                return None
            qual, base, path = parts[0], parts[1], parts[2:]
        else:
            qual, base, path = None, parts[0], parts[1:]
        if not any(f.name == base and (qual is None or f.qualifier == qual) for f in self.fields):
            rows = [f.name for f in self.fields if isinstance(self.schema.get(f.column), pl.Struct)]
            if qual is not None or not rows:
                return None  # resolve() names what is unknown
            tables = sorted(quals)
            raise error(f"unknown table, alias or ROW column {base!r} in {'.'.join(parts)}"
                        f"{did_you_mean(base, [*tables, *rows])} (tables: "
                        f"{', '.join(tables) or 'none'}; ROW columns: {', '.join(rows)})", node)
        col = self.resolve(exp.column(base, qual, quoted=True))
        dtype = self.schema[col.column]
        shown = ".".join([*([qual] if qual else []), base])
        for name in path:
            if not isinstance(dtype, pl.Struct):
                from tidal.sql.catalog import describe_type

                alone = "; no table or alias of that name is in scope" if shown == base else ""
                raise error(f"{shown!r} is not a ROW (its type is {describe_type(dtype)}), so it "
                            f"has no field {name!r}{alone}", node)
            fields = {f.name: f.dtype for f in dtype.fields}
            if name not in fields:
                hint = did_you_mean(name, list(fields))
                if not hint:
                    lower = [n for n in fields if n.lower() == name.lower()]
                    hint = f"; did you mean {lower[0]!r}? (names are case-sensitive)" if lower else ""
                raise error(f"unknown field {name!r} of the ROW column {shown!r}{hint} "
                            f"(fields: {', '.join(fields)})", node)
            dtype, shown = fields[name], f"{shown}.{name}"
        return col, path, dtype

    def resolve(self, node: exp.Column) -> Field:
        name, qual = node.name, node.table or None
        hits = [f for f in self.fields
                if f.name == name and (qual is None or f.qualifier == qual)]
        if len(hits) == 1:
            return hits[0]
        if len(hits) > 1:
            if len({f.column for f in hits}) == 1:
                return hits[0]
            quals = ", ".join(sorted(f"{f.qualifier}.{name}" for f in hits if f.qualifier))
            raise error(f"column {name!r} is ambiguous; qualify it ({quals})", node)
        if qual is not None and not any(f.qualifier == qual for f in self.fields):
            if self.field_access(node) is not None:  # a ROW field where only columns may go
                raise unsupported(f"the ROW field {'.'.join(p.name for p in node.parts)} here",
                                  node, f"select it as a column first (SELECT {node.sql()} AS "
                                  f"{name} ... in a subquery or view) and use {name}")
            tables = sorted({f.qualifier for f in self.fields if f.qualifier})
            raise error(f"unknown table or alias {qual!r} in {qual}.{name}"
                        f"{did_you_mean(qual, tables)} (in scope: {', '.join(tables) or 'none'})",
                        node)
        names = [f.name for f in self.fields if qual is None or f.qualifier == qual]
        hint = did_you_mean(name, names)
        if not hint:
            lower = [n for n in names if n.lower() == name.lower()]
            hint = f"; did you mean {lower[0]!r}? (names are case-sensitive)" if lower else ""
        shown = f"{qual}.{name}" if qual else name
        raise error(f"unknown column {shown!r}{hint} (available: {', '.join(dict.fromkeys(names))})",
                    node)


@dataclass
class Function:
    """A scalar UDF registered with :meth:`tidal.Flow.register_function`."""

    name: str
    fn: Callable[..., Any]
    vectorized: bool
    return_type: pl.DataType | None


_TYPES: dict[str, pl.DataType] = {
    "TINYINT": pl.Int8(), "SMALLINT": pl.Int16(), "INT": pl.Int32(), "INTEGER": pl.Int32(),
    "BIGINT": pl.Int64(), "FLOAT": pl.Float32(), "DOUBLE": pl.Float64(), "REAL": pl.Float32(),
    "BOOLEAN": pl.Boolean(), "VARCHAR": pl.String(), "CHAR": pl.String(), "TEXT": pl.String(),
    "STRING": pl.String(), "DATE": pl.Date(), "BINARY": pl.Binary(), "VARBINARY": pl.Binary(),
    "BYTES": pl.Binary(),
}


def sql_type(dt: exp.DataType, *, collections: bool = False) -> pl.DataType:
    """The Polars type of a SQL type (``TIMESTAMP(3)`` → ``Datetime('ms')``, UTC;
    ``ROW<a INT, ...>`` → ``Struct``); with ``collections`` (a CAST, a function's result)
    also ``ARRAY<T>`` → ``List`` and ``MAP<K, V>`` → ``Map``, which table columns cannot be
    yet: not every format reads and writes them."""
    name = dt.this.name if hasattr(dt.this, "name") else str(dt.this)
    name = name.upper()
    params = [int(p.this.this) for p in dt.expressions if isinstance(p, exp.DataTypeParam)
              and isinstance(p.this, exp.Literal)]
    if name in _TYPES:
        return _TYPES[name]
    if dt.this == exp.DType.STRUCT:  # ROW<name TYPE, ...>
        return pl.Struct([pl.Field(f.name, sql_type(f.kind, collections=collections))
                          for f in dt.expressions])
    if (dt.this, len(dt.expressions)) in ((exp.DType.ARRAY, 1), (exp.DType.MAP, 2)):
        inner = [sql_type(e, collections=True) for e in dt.expressions]
        out = pl.List(inner[0]) if dt.this == exp.DType.ARRAY else pl.Map(*inner)
        if not collections:
            raise unsupported(f"the column type {describe(out)}", dt,
                              "ARRAY and MAP values are made in queries (ARRAY[...], MAP[...], "
                              "SPLIT, ARRAY_AGG, CAST(... AS ARRAY<T>))")
        return out
    if name in ("DECIMAL", "NUMERIC", "DEC"):
        p = params[0] if params else 10
        s = params[1] if len(params) > 1 else 0
        return pl.Decimal(p, s)
    if name.startswith("TIMESTAMP"):
        if "LTZ" in name or "TZ" in name:
            return pl.Datetime("ms", "UTC")
        return pl.Datetime("ms")
    if name in ("DOUBLE PRECISION",):
        return pl.Float64()
    raise unsupported(f"the SQL type {dt.sql()}", dt)


_JAVA = [("yyyy", "%Y"), ("yy", "%y"), ("MM", "%m"), ("dd", "%d"), ("HH", "%H"), ("hh", "%I"),
         ("mm", "%M"), ("ss", "%S"), ("SSS", "%3f"), ("a", "%p"), ("EEE", "%a")]


def java_time_format(pattern: str, node: exp.Expr | None = None) -> str:
    """A Java ``SimpleDateFormat`` pattern (``'yyyy-MM-dd HH:mm'``) as strftime."""
    out, i = [], 0
    while i < len(pattern):
        if pattern[i] == "'":  # quoted literal text
            j = pattern.find("'", i + 1)
            j = len(pattern) if j < 0 else j
            out.append(pattern[i + 1:j].replace("%", "%%") or "'")
            i = j + 1
            continue
        for java, strf in _JAVA:
            if pattern.startswith(java, i):
                out.append(strf)
                i += len(java)
                break
        else:
            if pattern[i].isalpha():
                raise unsupported(f"the date format letter {pattern[i]!r} in {pattern!r}", node,
                                  "use yyyy, yy, MM, dd, HH, hh, mm, ss, SSS, a, EEE")
            out.append("%%" if pattern[i] == "%" else pattern[i])
            i += 1
    return "".join(out)


def _trunc_div(a: pl.Expr, b: pl.Expr) -> pl.Expr:
    # Java integer division truncates toward zero; Polars // floors
    q = a // b
    return pl.when((a % b != 0) & ((a < 0) != (b < 0))).then(q + 1).otherwise(q)


def _java_mod(a: pl.Expr, b: pl.Expr) -> pl.Expr:
    return a - b * _trunc_div(a, b)


def _is_int(dt: pl.DataType) -> bool:
    return dt.is_integer()


_INTERVAL_MS = {"MILLISECOND": 1, "SECOND": 1000, "MINUTE": 60_000, "HOUR": 3_600_000,
                "DAY": 86_400_000}


def interval_ms(node: exp.Expr) -> int:
    """Milliseconds of ``INTERVAL '10' SECOND`` (also ``'10 SECOND'``, ``'1.5' SECOND``)."""
    if not isinstance(node, exp.Interval):
        raise error(f"expected an interval such as INTERVAL '10' SECOND, got {node.sql()}", node)
    text = node.this.name if node.this is not None else ""
    unit = node.unit.name.upper() if node.unit is not None else ""
    if not unit and " " in text.strip():
        text, unit = text.strip().split(None, 1)
    unit = unit.upper().rstrip("S") if unit.upper() not in ("MS",) else "MILLISECOND"
    if unit not in _INTERVAL_MS:
        raise unsupported(f"the interval unit {unit or '(none)'}", node,
                          "use MILLISECOND, SECOND, MINUTE, HOUR or DAY")
    try:
        value = Decimal(text.strip())
    except ArithmeticError:
        raise error(f"bad interval value {text!r}", node) from None
    return int(value * _INTERVAL_MS[unit])


class Translator(StringFunctions, TimeFunctions, NumericFunctions, CollectionFunctions):
    """Translates one scope's scalar expressions (the built-in functions are in the mixins
    :mod:`~tidal.sql.strings`, :mod:`~tidal.sql.temporal`, :mod:`~tidal.sql.numeric` and
    :mod:`~tidal.sql.collections`)."""

    def __init__(self, scope: Scope, functions: dict[str, Function] | None = None) -> None:
        self.scope = scope
        self.functions = functions or {}

    def dtype(self, e: pl.Expr) -> pl.DataType:
        """The type ``e`` has over the scope's schema."""
        try:
            return pl.LazyFrame(schema=self.scope.schema).select(e.alias("x")).collect_schema()["x"]
        except pl.exceptions.PolarsError as exc:
            raise error(f"invalid expression: {str(exc).splitlines()[0]}") from None

    def expr(self, node: exp.Expr) -> pl.Expr:
        """The Polars expression computing ``node``."""
        key = node.sql()
        if key in self.scope.replace:
            return self.scope.replace[key]
        method = getattr(self, f"_{type(node).__name__.lower()}", None)
        if method is None:
            raise unsupported(f"the SQL expression {node.sql(dialect='risingwave')!r} "
                              f"({type(node).__name__})", node)
        return method(node)

    # -- leaves -------------------------------------------------------------------------
    def _column(self, node: exp.Column) -> pl.Expr:
        if isinstance(node.this, exp.Star):
            raise error("* is only allowed in SELECT lists and COUNT(*)", node)
        access = self.scope.field_access(node)
        if access is not None:
            col, path, _ = access
            out = pl.col(col.column)
            for name in path:
                out = out.struct.field(name)
            return out
        return pl.col(self.scope.resolve(node).column)

    def _literal(self, node: exp.Literal) -> pl.Expr:
        if node.is_string:
            return pl.lit(node.this, pl.String)
        text = node.this
        if re.fullmatch(r"\d+", text):
            v = int(text)
            return pl.lit(v, pl.Int32 if v < 2**31 else pl.Int64)
        if re.fullmatch(r"\d*\.\d*", text):
            whole, _, frac = text.partition(".")
            digits = len(whole.lstrip("0")) + len(frac)
            return pl.lit(Decimal(text), pl.Decimal(max(digits, len(frac), 1), len(frac)))
        return pl.lit(float(text), pl.Float64)

    def _boolean(self, node: exp.Boolean) -> pl.Expr:
        return pl.lit(bool(node.this), pl.Boolean)

    def _null(self, node: exp.Null) -> pl.Expr:
        return pl.lit(None)

    def _paren(self, node: exp.Paren) -> pl.Expr:
        return self.expr(node.this)

    def _alias(self, node: exp.Alias) -> pl.Expr:
        return self.expr(node.this)

    # -- arithmetic ---------------------------------------------------------------------
    def _arith(self, node: exp.Binary, op: str) -> pl.Expr:
        if isinstance(node.expression, exp.Interval) or isinstance(node.this, exp.Interval):
            return self._time_plus(node, op)
        a, b = self.expr(node.this), self.expr(node.expression)
        ta, tb = self.dtype(a), self.dtype(b)
        if op in "+-*" and (ta.is_decimal() or tb.is_decimal()) and \
                not (ta.is_float() or tb.is_float()):
            da, db = as_decimal(ta), as_decimal(tb)
            a, b = a.cast(da), b.cast(db)
            if op == "*":
                p, s = da.precision + db.precision + 1, da.scale + db.scale  # type: ignore[attr-defined]
            else:
                s = max(da.scale, db.scale)  # type: ignore[attr-defined]
                p = max(da.precision - da.scale, db.precision - db.scale) + s + 1  # type: ignore[attr-defined]
            out = a * b if op == "*" else (a + b if op == "+" else a - b)
            return out.cast(pl.Decimal(min(p, 38), s))
        if op == "+":
            return a + b
        if op == "-":
            return a - b
        if op == "*":
            return a * b
        if op == "/":
            if _is_int(ta) and _is_int(tb):
                return _trunc_div(a, b)
            return a.cast(pl.Float64) / b.cast(pl.Float64) if not ta.is_decimal() else a / b
        if _is_int(ta) and _is_int(tb):
            return _java_mod(a, b)
        raise unsupported(f"% on {ta} and {tb}", node)

    def _time_plus(self, node: exp.Binary, op: str) -> pl.Expr:
        if isinstance(node.this, exp.Interval):
            raise unsupported("an interval on the left of + or -", node)
        ms = interval_ms(node.expression)
        base = self.expr(node.this)
        return base + pl.duration(milliseconds=ms if op == "+" else -ms)

    def _add(self, node: exp.Add) -> pl.Expr:
        return self._arith(node, "+")

    def _sub(self, node: exp.Sub) -> pl.Expr:
        return self._arith(node, "-")

    def _mul(self, node: exp.Mul) -> pl.Expr:
        return self._arith(node, "*")

    def _div(self, node: exp.Div) -> pl.Expr:
        return self._arith(node, "/")

    def _intdiv(self, node: exp.IntDiv) -> pl.Expr:
        return _trunc_div(self.expr(node.this), self.expr(node.expression))

    def _mod(self, node: exp.Mod) -> pl.Expr:
        return self._arith(node, "%")

    def _neg(self, node: exp.Neg) -> pl.Expr:
        return -self.expr(node.this)

    # -- logic and comparison -------------------------------------------------------------
    def _cmp(self, node: exp.Binary) -> tuple[pl.Expr, pl.Expr]:
        a, b = self.expr(node.this), self.expr(node.expression)
        ta, tb = self.dtype(a), self.dtype(b)
        if ta.is_temporal() and tb == pl.String:
            b = b.str.to_datetime(time_unit="ms")
        elif tb.is_temporal() and ta == pl.String:
            a = a.str.to_datetime(time_unit="ms")
        return a, b

    def _eq(self, node: exp.EQ) -> pl.Expr:
        a, b = self._mod_zero(node) or self._cmp(node)
        return a == b

    def _neq(self, node: exp.NEQ) -> pl.Expr:
        a, b = self._mod_zero(node) or self._cmp(node)
        return a != b

    def _mod_zero(self, node: exp.Binary) -> tuple[pl.Expr, pl.Expr] | None:
        """``MOD(a, b) = 0`` as Polars' floor modulo, which is zero exactly when SQL's
        truncating MOD is, at a third of the cost (Nexmark q2's sampling filter)."""
        m, z = node.this, node.expression
        if isinstance(m, exp.Literal):
            m, z = z, m
        if not (isinstance(m, exp.Mod) and isinstance(z, exp.Literal) and not z.is_string
                and z.this == "0"):
            return None
        a, b = self.expr(m.this), self.expr(m.expression)
        if not (_is_int(self.dtype(a)) and _is_int(self.dtype(b))):
            return None
        return a % b, pl.lit(0)

    def _gt(self, node: exp.GT) -> pl.Expr:
        a, b = self._cmp(node)
        return a > b

    def _gte(self, node: exp.GTE) -> pl.Expr:
        a, b = self._cmp(node)
        return a >= b

    def _lt(self, node: exp.LT) -> pl.Expr:
        a, b = self._cmp(node)
        return a < b

    def _lte(self, node: exp.LTE) -> pl.Expr:
        a, b = self._cmp(node)
        return a <= b

    def _and(self, node: exp.And) -> pl.Expr:
        return self.expr(node.this) & self.expr(node.expression)

    def _or(self, node: exp.Or) -> pl.Expr:
        return self.expr(node.this) | self.expr(node.expression)

    def _not(self, node: exp.Not) -> pl.Expr:
        return ~self.expr(node.this)

    def _is(self, node: exp.Is) -> pl.Expr:
        if isinstance(node.expression, exp.Null):
            return self.expr(node.this).is_null()
        if isinstance(node.expression, exp.Boolean):
            v = self.expr(node.this)
            return (v == node.expression.this).fill_null(False)
        raise unsupported(f"IS {node.expression.sql()}", node)

    def _between(self, node: exp.Between) -> pl.Expr:
        v = self.expr(node.this)
        lo, hi = self.expr(node.args["low"]), self.expr(node.args["high"])
        return (v >= lo) & (v <= hi)

    def _in(self, node: exp.In) -> pl.Expr:
        if node.args.get("query") is not None:
            raise unsupported("IN (subquery)", node, "join with the subquery instead")
        v = self.expr(node.this)
        items = [self.expr(e) for e in node.expressions]
        out = items[0] == v
        for i in items[1:]:
            out = out | (i == v)
        return out

    def _like(self, node: exp.Like) -> pl.Expr:
        pattern = node.expression
        if not (isinstance(pattern, exp.Literal) and pattern.is_string):
            raise unsupported("LIKE with a pattern that is not a string literal", node)
        regex = "".join(".*" if c == "%" else "." if c == "_" else re.escape(c)
                        for c in pattern.this)
        return self.expr(node.this).str.contains(f"(?s)^{regex}$")

    def _case(self, node: exp.Case) -> pl.Expr:
        subject = self.expr(node.this) if node.this is not None else None
        out: Any = pl
        for branch in node.args["ifs"]:
            cond = self.expr(branch.this)
            if subject is not None:
                cond = subject == cond
            out = out.when(cond).then(self.expr(branch.args["true"]))
        default = node.args.get("default")
        return out.otherwise(self.expr(default) if default is not None else pl.lit(None))

    def _if(self, node: exp.If) -> pl.Expr:
        other = node.args.get("false")
        return pl.when(self.expr(node.this)).then(self.expr(node.args["true"])) \
            .otherwise(self.expr(other) if other is not None else pl.lit(None))

    def _coalesce(self, node: exp.Coalesce) -> pl.Expr:
        return pl.coalesce([self.expr(node.this), *(self.expr(e) for e in node.expressions)])

    def _cast(self, node: exp.Cast) -> pl.Expr:
        to = sql_type(node.to, collections=True)
        v = self.expr(node.this)
        src = self.dtype(v)
        if (dated := self._cast_time(v, src, to)) is not None:  # DATE casts: temporal.py
            return dated
        if src == pl.String and isinstance(to, pl.Datetime):
            return v.str.to_datetime(time_unit="ms", time_zone=to.time_zone)
        if src.is_temporal() and to == pl.String:
            return v.dt.strftime("%Y-%m-%d %H:%M:%S%.3f")
        if isinstance(to, pl.List | pl.Map) and src != pl.Null and type(src) is not type(to):
            raise unsupported(f"CAST from {describe(src)} to {describe(to)}", node,
                              "an ARRAY casts to an ARRAY, a MAP to a MAP")
        return v.cast(to, strict=False)

    def _trycast(self, node: exp.TryCast) -> pl.Expr:
        return self._cast(node)  # type: ignore[arg-type]

    # -- strings ------------------------------------------------------------------------
    def _lower(self, node: exp.Lower) -> pl.Expr:
        return self.expr(node.this).str.to_lowercase()

    def _upper(self, node: exp.Upper) -> pl.Expr:
        return self.expr(node.this).str.to_uppercase()

    def _length(self, node: exp.Length) -> pl.Expr:
        return self.expr(node.this).str.len_chars().cast(pl.Int32)

    def _concat(self, node: exp.Concat) -> pl.Expr:
        parts = [self.expr(e).cast(pl.String) for e in node.expressions]
        return pl.concat_str(parts, ignore_nulls=False)

    def _dpipe(self, node: exp.DPipe) -> pl.Expr:
        return pl.concat_str([self.expr(node.this).cast(pl.String),
                              self.expr(node.expression).cast(pl.String)], ignore_nulls=False)

    def _substring(self, node: exp.Substring) -> pl.Expr:
        v = self.expr(node.this)
        start = node.args.get("start")
        length = node.args.get("length")
        s = self.expr(start) if start is not None else pl.lit(1)
        off = pl.when(s > 0).then(s - 1).otherwise(pl.when(s < 0).then(s).otherwise(0))
        return v.str.slice(off, self.expr(length) if length is not None else None)

    def _trim(self, node: exp.Trim) -> pl.Expr:
        """TRIM([BOTH | LEADING | TRAILING] [chars] FROM s), LTRIM(s), RTRIM(s)."""
        chars = node.expression
        s = self.expr(node.this).str
        c = None if chars is None else self.expr(chars)
        side = str(node.args.get("position") or "BOTH").upper()
        if side == "LEADING":
            return s.strip_chars_start(c)
        return s.strip_chars_end(c) if side == "TRAILING" else s.strip_chars(c)

    def _regexpextract(self, node: exp.RegexpExtract) -> pl.Expr:
        pattern = node.expression
        if not (isinstance(pattern, exp.Literal) and pattern.is_string):
            raise unsupported("REGEXP_EXTRACT with a pattern that is not a string literal", node)
        group = node.args.get("position") or node.args.get("group")
        idx = int(group.this) if group is not None else 0  # type: ignore[union-attr]
        return self.expr(node.this).str.extract(pattern.this, idx)

    def _regexplike(self, node: exp.RegexpLike) -> pl.Expr:
        pattern = node.expression
        return self.expr(node.this).str.contains(pattern.this)  # type: ignore[union-attr]

    # -- time ---------------------------------------------------------------------------
    def _hour(self, node: exp.Hour) -> pl.Expr:
        return self.expr(node.this).dt.hour().cast(pl.Int64)

    def _minute(self, node: exp.Minute) -> pl.Expr:
        return self.expr(node.this).dt.minute().cast(pl.Int64)

    @refused
    def _currenttimestamp(self, node: exp.Expr) -> pl.Expr:
        raise unsupported("CURRENT_TIMESTAMP in a continuous query", node,
                          "use PROCTIME() for processing time")

    # -- named functions sqlglot does not know ------------------------------------------
    def _anonymous(self, node: exp.Anonymous) -> pl.Expr:
        name = node.name.upper()
        args = node.expressions
        udf = self.functions.get(name.lower())
        if udf is not None:
            return self._udf(udf, args)
        fn = getattr(self, f"_fn_{name.lower()}", None)
        if fn is None:
            known = [n[4:].upper() for n in dir(self) if n.startswith("_fn_")]
            known += [n.upper() for n in self.functions]
            raise unsupported(f"the function {name}", node,
                              f"register it with flow.register_function({name.lower()!r}, fn)"
                              f"{did_you_mean(name, known)}")
        return fn(node, args)

    def _fn_date_format(self, node: exp.Expr, args: list[exp.Expr]) -> pl.Expr:
        if len(args) != 2 or not (isinstance(args[1], exp.Literal) and args[1].is_string):
            raise unsupported("DATE_FORMAT without a literal pattern", node)
        v = self.expr(args[0])
        if self.dtype(v) == pl.String:
            v = v.str.to_datetime(time_unit="ms")
        return v.dt.strftime(java_time_format(args[1].this, node))

    def _fn_split_index(self, node: exp.Expr, args: list[exp.Expr]) -> pl.Expr:
        if len(args) != 3 or not isinstance(args[2], exp.Literal):
            raise unsupported("SPLIT_INDEX without a literal index", node)
        sep = args[1].this if isinstance(args[1], exp.Literal) else None
        if sep is None:
            raise unsupported("SPLIT_INDEX without a literal separator", node)
        idx = int(args[2].this)
        return self.expr(args[0]).str.split(sep).list.get(idx, null_on_oob=True)

    def _fn_char_length(self, node: exp.Expr, args: list[exp.Expr]) -> pl.Expr:
        return self.expr(args[0]).str.len_chars().cast(pl.Int32)

    def _fn_to_timestamp_ltz(self, node: exp.Expr, args: list[exp.Expr]) -> pl.Expr:
        precision = int(args[1].this) if len(args) > 1 else 3  # type: ignore[attr-defined]
        unit = {0: "s", 3: "ms"}.get(precision)
        if unit is None:
            raise unsupported(f"TO_TIMESTAMP_LTZ precision {precision}", node, "use 0 or 3")
        return pl.from_epoch(self.expr(args[0]), time_unit=unit).dt.cast_time_unit("ms")

    def _fn_to_timestamp(self, node: exp.Expr, args: list[exp.Expr]) -> pl.Expr:
        # Flink's default 'yyyy-MM-dd HH:mm:ss' also reads a fraction of a second
        fmt = "%Y-%m-%d %H:%M:%S%.f" if len(args) < 2 else java_time_format(args[1].this, node)  # type: ignore[attr-defined]
        return self.expr(args[0]).str.to_datetime(fmt, time_unit="ms", strict=False)

    def _fn_mod(self, node: exp.Expr, args: list[exp.Expr]) -> pl.Expr:
        return _java_mod(self.expr(args[0]), self.expr(args[1]))

    def _fn_proctime(self, node: exp.Expr, args: list[exp.Expr]) -> pl.Expr:
        raise unsupported("PROCTIME() here", node,
                          "use it as a column of a SELECT list or a computed column")

    def _udf(self, udf: Function, args: list[exp.Expr]) -> pl.Expr:
        exprs = [self.expr(a) for a in args]
        fn = udf.fn
        if udf.vectorized:
            def run(s: pl.Series) -> pl.Series:
                cols = [s.struct.field(f"a{i}") for i in range(len(exprs))]
                return pl.Series(fn(*cols))
        else:
            def run(s: pl.Series) -> pl.Series:
                cols = [s.struct.field(f"a{i}").to_list() for i in range(len(exprs))]
                return pl.Series([fn(*row) for row in zip(*cols, strict=True)],
                                 dtype=udf.return_type)
        packed = pl.struct([e.alias(f"a{i}") for i, e in enumerate(exprs)])
        return packed.map_batches(run, return_dtype=udf.return_type)
