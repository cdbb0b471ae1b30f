"""Flink's arithmetic, math and conditional functions, translated to Polars expressions.

A mixin of :class:`~tidal.sql.expressions.Translator` (``self`` is a Translator): methods
named ``_<sqlglot node class>`` translate the functions sqlglot parses into their own
nodes, and ``_fn_<name>`` the ones it leaves as ``Anonymous`` calls.

Result types follow Flink: ``ABS``, ``SIGN``, ``FLOOR`` and ``CEIL`` keep the argument's type
(a DECIMAL loses its scale under ``FLOOR``/``CEIL``), ``ROUND`` and ``TRUNCATE`` keep it too
except on DECIMAL, which gets Flink's ``DECIMAL(1 + p - s + d, d)``; the transcendental
functions return DOUBLE. ``ROUND`` rounds half away from zero, and on a DOUBLE it rounds the
shortest decimal form of the value (Java's ``BigDecimal.valueOf``), so ``ROUND(1.005, 2)``
is ``1.01`` as in Flink, not the ``1.0`` of binary rounding.

>>> import polars as pl, sqlglot
>>> from tidal.sql.dialect import Flink
>>> from tidal.sql.expressions import Field, Scope, Translator
>>> scope = Scope([Field(None, "x", "x")], pl.Schema({"x": pl.Float64}))
>>> e = Translator(scope).expr(sqlglot.parse_one("ROUND(x, 2)", read=Flink))
>>> pl.DataFrame({"x": [1.005, -2.5, None]}).select(e).to_series().to_list()
[1.01, -2.5, None]
"""

from __future__ import annotations

import math
from decimal import Decimal
from typing import TYPE_CHECKING, Literal

import numpy as np
import polars as pl
from sqlglot import exp

from tidal.sql.errors import error, refused, unsupported

if TYPE_CHECKING:
    from tidal.sql.expressions import Translator

__all__ = ["NumericFunctions"]

_DIGITS = 17
"""Fractional digits kept when a DOUBLE is rounded through its decimal form (a DOUBLE has at
most 17 significant digits)."""

_REPLAY = ("its values would differ when the job replays from a checkpoint after a failure, "
           "breaking exactly-once results")

Mode = Literal["round", "truncate"]


class NumericFunctions:
    """Math and conditional functions (see the module docstring)."""

    # -- sign and rounding ----------------------------------------------------------------
    def _abs(self: Translator, node: exp.Abs) -> pl.Expr:
        return self.expr(node.this).abs()

    def _sign(self: Translator, node: exp.Sign) -> pl.Expr:
        return self.expr(node.this).sign()

    def _round(self: Translator, node: exp.Round) -> pl.Expr:
        return _round_to(self, node, "round")

    def _trunc(self: Translator, node: exp.Trunc) -> pl.Expr:
        return _round_to(self, node, "truncate")

    def _floor(self: Translator, node: exp.Floor) -> pl.Expr:
        if node.args.get("to") is not None:  # FLOOR(ts TO unit)
            return _time_unit(self, node, "_floor_time")
        return _floor_ceil(self, node, ceil=False)

    def _ceil(self: Translator, node: exp.Ceil) -> pl.Expr:
        if node.args.get("to") is not None:  # CEIL(ts TO unit)
            return _time_unit(self, node, "_ceil_time")
        return _floor_ceil(self, node, ceil=True)

    # -- powers, logarithms, trigonometry (all DOUBLE) ------------------------------------
    def _pow(self: Translator, node: exp.Pow) -> pl.Expr:
        return _double(self, node.this).pow(_double(self, node.expression))

    def _sqrt(self: Translator, node: exp.Sqrt) -> pl.Expr:
        return _double(self, node.this).sqrt()

    def _exp(self: Translator, node: exp.Exp) -> pl.Expr:
        return _double(self, node.this).exp()

    def _ln(self: Translator, node: exp.Ln) -> pl.Expr:
        return _double(self, node.this).log()

    def _log(self: Translator, node: exp.Log) -> pl.Expr:
        # LOG(x) is a natural logarithm; LOG(b, x), LOG10(x) and LOG2(x) arrive as
        # Log(this=b, expression=x). Flink's LOG and LOG2 fail the job when x <= 0 or b <= 1
        # (LN and LOG10 give NaN there); tidal gives NULL: a bad record never stops a job.
        if node.expression is None:
            x = _double(self, node.this)
            return pl.when(x > 0).then(x.log())
        base, x = node.this, _double(self, node.expression)
        if isinstance(base, exp.Literal) and base.this == "10":
            return x.map_batches(_log10, return_dtype=pl.Float64)
        b = _double(self, base)
        return pl.when((x > 0) & (b > 1)).then(x.log() / b.log())

    def _pi(self: Translator, node: exp.Pi) -> pl.Expr:
        return pl.lit(math.pi, pl.Float64)

    def _fn_e(self: Translator, node: exp.Expr, args: list[exp.Expr]) -> pl.Expr:
        _arity(node, args, 0)
        return pl.lit(math.e, pl.Float64)

    def _sin(self: Translator, node: exp.Sin) -> pl.Expr:
        return _double(self, node.this).sin()

    def _cos(self: Translator, node: exp.Cos) -> pl.Expr:
        return _double(self, node.this).cos()

    def _tan(self: Translator, node: exp.Tan) -> pl.Expr:
        return _double(self, node.this).tan()

    def _cot(self: Translator, node: exp.Cot) -> pl.Expr:
        return _double(self, node.this).cot()

    def _asin(self: Translator, node: exp.Asin) -> pl.Expr:
        return _double(self, node.this).arcsin()

    def _acos(self: Translator, node: exp.Acos) -> pl.Expr:
        return _double(self, node.this).arccos()

    def _atan(self: Translator, node: exp.Atan) -> pl.Expr:
        return _double(self, node.this).arctan()

    def _atan2(self: Translator, node: exp.Atan2) -> pl.Expr:
        return pl.arctan2(_double(self, node.this), _double(self, node.expression))

    def _sinh(self: Translator, node: exp.Sinh) -> pl.Expr:
        return _double(self, node.this).sinh()

    def _cosh(self: Translator, node: exp.Cosh) -> pl.Expr:
        return _double(self, node.this).cosh()

    def _tanh(self: Translator, node: exp.Tanh) -> pl.Expr:
        return _double(self, node.this).tanh()

    def _degrees(self: Translator, node: exp.Degrees) -> pl.Expr:
        return _double(self, node.this).degrees()

    def _radians(self: Translator, node: exp.Radians) -> pl.Expr:
        return _double(self, node.this).radians()

    # -- non-deterministic functions ------------------------------------------------------
    @refused
    def _rand(self: Translator, node: exp.Rand) -> pl.Expr:
        raise unsupported(node.sql(), node, f"{_REPLAY}; derive a value from the row's "
                          "columns instead")

    @refused
    def _fn_rand_integer(self: Translator, node: exp.Expr, args: list[exp.Expr]) -> pl.Expr:
        raise unsupported("RAND_INTEGER", node, f"{_REPLAY}; derive a value from the row's "
                          "columns instead")

    @refused
    def _uuid(self: Translator, node: exp.Uuid) -> pl.Expr:
        raise unsupported("UUID()", node, f"{_REPLAY}; build a key from the row's columns "
                          "instead")

    # -- number formatting ----------------------------------------------------------------
    def _fn_bin(self: Translator, node: exp.Expr, args: list[exp.Expr]) -> pl.Expr:
        _arity(node, args, 1)
        return _int_digits(self, node, args[0], "BIN", "{:08b}").str.strip_chars_start("0") \
            .replace("", "0")

    def _hex(self: Translator, node: exp.Hex) -> pl.Expr:
        v = self.expr(node.this)
        if self.dtype(v) == pl.String:  # the UTF-8 bytes of the string
            return v.str.encode("hex").str.to_uppercase()
        return _int_digits(self, node, node.this, "HEX", "{:02X}").str.strip_chars_start("0") \
            .replace("", "0")

    # -- conditional functions ------------------------------------------------------------
    def _greatest(self: Translator, node: exp.Greatest) -> pl.Expr:
        items = _comparable(self, node, "GREATEST")
        return _null_if_any(items, pl.max_horizontal(items))

    def _least(self: Translator, node: exp.Least) -> pl.Expr:
        items = _comparable(self, node, "LEAST")
        return _null_if_any(items, pl.min_horizontal(items))

    def _nullif(self: Translator, node: exp.Nullif) -> pl.Expr:
        a, b = self.expr(node.this), self.expr(node.expression)
        return pl.when((a == b).fill_null(False)).then(pl.lit(None, self.dtype(a))).otherwise(a)

    def _nullsafeeq(self: Translator, node: exp.NullSafeEQ) -> pl.Expr:
        a, b = self._cmp(node)
        return a.eq_missing(b)

    def _nullsafeneq(self: Translator, node: exp.NullSafeNEQ) -> pl.Expr:
        a, b = self._cmp(node)
        return a.ne_missing(b)


def _log10(s: pl.Series) -> pl.Series:
    """Base-10 logarithm exact on powers of ten, as Java's ``Math.log10`` (Polars' is not:
    its ``log10(1000)`` is 2.9999999999999996)."""
    with np.errstate(divide="ignore", invalid="ignore"):
        return np.log10(s)


def _arity(node: exp.Expr, args: list[exp.Expr], n: int) -> None:
    if len(args) != n:
        name = node.name.upper()
        raise error(f"{name} takes {n} argument{'s' if n != 1 else ''}, got {len(args)}", node)


def _sql_name(dtype: pl.DataType) -> str:
    from tidal.sql.catalog import describe_type  # the catalog imports the translator

    return describe_type(dtype)


def _double(t: Translator, node: exp.Expr) -> pl.Expr:
    return t.expr(node).cast(pl.Float64)


def _comparable(t: Translator, node: exp.Greatest | exp.Least, name: str) -> list[pl.Expr]:
    """The arguments of GREATEST/LEAST, which must be all numbers, all strings, ..."""
    items = [t.expr(e) for e in [node.this, *node.expressions]]
    dtypes = [t.dtype(i) for i in items]
    kinds = {"number" if dt.is_numeric() else type(dt).__name__ for dt in dtypes
             if dt != pl.Null}
    if len(kinds) > 1:
        raise error(f"{name} compares values of one kind (all numbers, all strings, ...), got "
                    f"{', '.join(_sql_name(dt) for dt in dtypes)}", node)
    return items


def _null_if_any(items: list[pl.Expr], value: pl.Expr) -> pl.Expr:
    """``value``, or NULL where any of ``items`` is (Flink's GREATEST and LEAST)."""
    return pl.when(pl.any_horizontal([i.is_null() for i in items])).then(None).otherwise(value)


def _time_unit(t: Translator, node: exp.Floor | exp.Ceil, method: str) -> pl.Expr:
    fn = getattr(t, method, None)
    if fn is None:
        raise unsupported(f"{node.key.upper()}(... TO {node.args['to'].name})", node)
    return fn(node)


def _floor_ceil(t: Translator, node: exp.Floor | exp.Ceil, ceil: bool) -> pl.Expr:
    if node.args.get("decimals") is not None:
        raise unsupported(f"{node.key.upper()} with a number of decimal places", node,
                          "use ROUND or TRUNCATE")
    v = t.expr(node.this)
    dtype = t.dtype(v)
    if dtype.is_integer():
        return v
    out = v.ceil() if ceil else v.floor()
    if isinstance(dtype, pl.Decimal):  # Calcite: DECIMAL(p, s) -> DECIMAL(p, 0)
        return out.cast(pl.Decimal(dtype.precision, 0))
    return out


def _places(t: Translator, node: exp.Round | exp.Trunc, name: str) -> int:
    d = node.args.get("decimals")
    if d is None:
        return 0
    sign = -1 if isinstance(d, exp.Neg) else 1
    lit = d.this if isinstance(d, exp.Neg) else d
    if not (isinstance(lit, exp.Literal) and not lit.is_string and lit.this.isdigit()):
        raise unsupported(f"{name} with a number of decimal places that is not an integer "
                          f"literal ({d.sql()})", node)
    return sign * int(lit.this)


def _round_to(t: Translator, node: exp.Round | exp.Trunc, mode: Mode) -> pl.Expr:
    """ROUND (half away from zero) or TRUNCATE (toward zero) to ``d`` decimal places."""
    name = "ROUND" if mode == "round" else "TRUNCATE"
    d = _places(t, node, name)
    v = t.expr(node.this)
    dtype = t.dtype(v)
    if dtype.is_integer():
        return v if d >= 0 else _int_places(v, -d, mode).cast(dtype)
    if isinstance(dtype, pl.Decimal):
        return _decimal_places(v, dtype, d, mode)
    if dtype.is_float():
        return _float_places(v, d, mode).cast(dtype)
    raise error(f"{name} expects a number, got {_sql_name(dtype)}", node)


def _int_places(v: pl.Expr, k: int, mode: Mode) -> pl.Expr:
    """Integers to a multiple of ``10**k`` (negative decimal places), in magnitude."""
    unit = 10**k
    a = v.abs().cast(pl.Int64)
    if mode == "round":
        a = a + unit // 2
    m = a // unit * unit
    return pl.when(v < 0).then(-m).otherwise(m)


def _decimal_places(v: pl.Expr, dtype: pl.Decimal, d: int, mode: Mode) -> pl.Expr:
    p, s = dtype.precision, dtype.scale
    if d >= s:
        return v
    if d < 0:  # scale down by 10**-d, to 0 places, back up: exact in DECIMAL
        shifted = v * pl.lit(Decimal(1).scaleb(d), pl.Decimal(1 - d, -d))
        out = _zero_places(shifted, mode) * pl.lit(10 ** -d, pl.Int64)
        return out.cast(pl.Decimal(min(38, 1 + p - s), 0))
    return _to_places(v, d, mode).cast(pl.Decimal(min(38, 1 + p - s + d), d))


def _zero_places(v: pl.Expr, mode: Mode) -> pl.Expr:
    if mode == "round":
        return v.round(0, mode="half_away_from_zero")
    return pl.when(v < 0).then(v.ceil()).otherwise(v.floor())


def _to_places(v: pl.Expr, d: int, mode: Mode) -> pl.Expr:
    """A DECIMAL rounded half away from zero, or truncated, to ``d >= 0`` places."""
    r = v.round(d, mode="half_away_from_zero")
    if mode == "round":
        return r
    unit = pl.lit(Decimal(1).scaleb(-d), pl.Decimal(d + 1, d))
    return pl.when(r.abs() > v.abs()).then(r - unit * v.sign()).otherwise(r)


def _float_places(v: pl.Expr, d: int, mode: Mode) -> pl.Expr:
    """A DOUBLE rounded or truncated as Flink does: on its shortest decimal form."""
    x = v.cast(pl.Float64)
    if d < 0:
        unit = float(10 ** -d)
        return _zero_places(x / unit, mode) * unit
    if d >= _DIGITS:
        return x
    exact = x.cast(pl.String).str.to_decimal(scale=_DIGITS)  # NULL for NaN, inf, 1e+21 ...
    return _to_places(exact, d, mode).cast(pl.Float64).fill_null(x)


def _int_digits(t: Translator, node: exp.Expr, arg: exp.Expr, name: str, fmt: str) -> pl.Expr:
    """The 64-bit two's complement digits of an integer (Java's ``Long.toBinaryString`` /
    ``toHexString``), zero-padded: byte by byte through a lookup table."""
    v = t.expr(arg)
    dtype = t.dtype(v)
    if not (dtype.is_integer() or dtype == pl.Null):
        raise error(f"{name} expects an integer{' or a string' if name == 'HEX' else ''}, "
                    f"got {_sql_name(dtype)}", node)
    u = v.cast(pl.Int64).reinterpret(signed=False)
    table = {i: fmt.format(i) for i in range(256)}
    parts = [(u // 256**k % 256).replace_strict(table, return_dtype=pl.String)
             for k in range(7, -1, -1)]
    return pl.concat_str(parts)
