"""Flink's collection values in SQL: ARRAY (a Polars ``List``), MAP (a Polars ``Map``) and
the ROW constructor, with their functions.

A mixin of :class:`~tidal.sql.expressions.Translator` (``self`` is a Translator), as
:mod:`~tidal.sql.strings` is. Positions count from 1 as in Flink; an index out of range
gives NULL. Where Flink fails the job on a bad row (``ELEMENT`` of several elements) tidal
gives NULL, and Polars maps hold no NULL keys, so ``MAP[...]`` leaves such entries out.

>>> import polars as pl, sqlglot
>>> from tidal.sql.dialect import Flink
>>> from tidal.sql.expressions import Field, Scope, Translator
>>> t = Translator(Scope([Field(None, "a", "a")], pl.Schema({"a": pl.List(pl.Int64)})))
>>> e = t.expr(sqlglot.parse_one("a[2]", read=Flink))
>>> pl.DataFrame({"a": [[10, 20], [30], None]}).select(e).to_series().to_list()
[20, None, None]
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import polars as pl
from sqlglot import exp

from tidal.sql.dialect import Flink
from tidal.sql.errors import error, unsupported

if TYPE_CHECKING:
    from tidal.sql.expressions import Translator

__all__ = ["CollectionFunctions", "as_decimal", "common_type", "describe"]


class CollectionFunctions:
    """ARRAY, MAP and ROW constructors, ``[...]`` access and the collection functions."""

    def _array(self: Translator, node: exp.Array) -> pl.Expr:
        """``ARRAY[a, b, ...]``: the elements widened to one type, as Flink does."""
        if not node.expressions:
            raise error("ARRAY[] needs at least one element", node)
        items = [self.expr(e) for e in node.expressions]
        to = common_type(node, "ARRAY", [self.dtype(e) for e in items])
        return _list_of([e.cast(to) for e in items], to)

    def _bracket(self: Translator, node: exp.Bracket) -> pl.Expr:
        """``arr[i]`` (from 1; NULL out of range), ``map[key]`` (NULL when absent) and the
        constructor ``MAP[k1, v1, k2, v2, ...]``."""
        this = node.this
        if isinstance(this, exp.Column) and not this.table and not this.this.quoted and \
                this.name.upper() == "MAP":
            return self._map_of(node)
        if len(node.expressions) != 1:
            raise error(f"{node.sql(dialect=Flink)}: give one index or key in [...]", node)
        # sqlglot counted an integer index from 0 while parsing; Flink counts from 1
        index = exp.apply_index_offset(this, [node.expressions[0].copy()], 1, dialect=Flink)[0]
        base, key = self.expr(this), self.expr(index)
        dtype, kt = self.dtype(base), self.dtype(key)
        if isinstance(dtype, pl.Map):
            return base.map.get(key if kt == dtype.key else key.cast(
                common_type(node, "a MAP key", [dtype.key, kt])))
        if not isinstance(dtype, pl.List):
            raise error(f"{this.sql(dialect=Flink)} is {describe(dtype)}, not an ARRAY or a "
                        "MAP, so it takes no [...]", node)
        if not kt.is_integer():
            raise error(f"the index of {node.sql(dialect=Flink)} is {describe(kt)}; an ARRAY "
                        "index is an integer, counted from 1", node)
        return pl.when(key >= 1).then(base.list.get(key - 1, null_on_oob=True))

    def _fn_row(self: Translator, node: exp.Expr, args: list[exp.Expr]) -> pl.Expr:
        """``ROW(a, b, ...)``: a ROW whose fields are named ``EXPR$0``, ``EXPR$1``, ... as in
        Flink."""
        if not args:
            raise error("ROW() needs at least one value", node)
        return pl.struct([self.expr(a).alias(f"EXPR${i}") for i, a in enumerate(args)])

    def _tuple(self: Translator, node: exp.Tuple) -> pl.Expr:
        """``(a, b, ...)``: Flink's implicit ROW constructor."""
        return self._fn_row(node, node.expressions)

    def _map_of(self: Translator, node: exp.Bracket) -> pl.Expr:
        args = node.expressions
        if not args or len(args) % 2:
            raise error("MAP[...] takes keys and values in pairs: MAP[k1, v1, k2, v2, ...]", node)
        keys, values = [self.expr(a) for a in args[0::2]], [self.expr(a) for a in args[1::2]]
        kt = common_type(node, "MAP keys", [self.dtype(k) for k in keys])
        vt = common_type(node, "MAP values", [self.dtype(v) for v in values])
        entries = pl.concat_list([pl.struct(k.cast(kt).alias("key"), v.cast(vt).alias("value"))
                                  for k, v in zip(keys, values, strict=True)])
        # a Polars Map has no NULL keys: such entries are left out
        return entries.list.eval(pl.element().filter(
            pl.element().struct.field("key").is_not_null())).list.to_map()

    def _array_arg(self: Translator, node: exp.Expr, fn: str, arg: exp.Expr | None) -> tuple[pl.Expr, pl.List]:
        """``arg`` of ``fn``, which must be an ARRAY."""
        if arg is None:
            raise error(f"{fn} takes an ARRAY argument", node)
        e = self.expr(arg)
        dtype = self.dtype(e)
        if not isinstance(dtype, pl.List):
            raise error(f"{fn}({arg.sql(dialect=Flink)}, ...): it is {describe(dtype)}, not an "
                        "ARRAY", node)
        return e, dtype

    def _element_arg(self: Translator, node: exp.Expr, arg: exp.Expr, array: pl.List) -> pl.Expr:
        """``arg`` as an element of ``array`` (cast to its element type, as Flink does)."""
        e = self.expr(arg)
        t = self.dtype(e)
        return e if t == array.inner else e.cast(common_type(node, "the element", [array.inner, t]))

    def _fn_cardinality(self: Translator, node: exp.Expr, args: list[exp.Expr]) -> pl.Expr:
        e = self.expr(args[0]) if len(args) == 1 else None
        dtype = self.dtype(e) if e is not None else None
        if e is None or not isinstance(dtype, pl.List | pl.Map):
            raise error("CARDINALITY takes one ARRAY or MAP"
                        + (f"; {args[0].sql(dialect=Flink)} is {describe(dtype)}" if dtype else ""),
                        node)
        return (e.map.len() if isinstance(dtype, pl.Map) else e.list.len()).cast(pl.Int32)

    def _fn_element(self: Translator, node: exp.Expr, args: list[exp.Expr]) -> pl.Expr:
        """ELEMENT(arr): the only element; NULL when empty, and (where Flink fails the job)
        NULL when there are several."""
        a, _ = self._array_arg(node, "ELEMENT", args[0] if len(args) == 1 else None)
        return pl.when(a.list.len() == 1).then(a.list.first())

    def _arraycontains(self: Translator, node: exp.ArrayContains) -> pl.Expr:
        a, dtype = self._array_arg(node, "ARRAY_CONTAINS", node.this)
        return a.list.contains(self._element_arg(node, node.expression, dtype), nulls_equal=True)

    def _arraydistinct(self: Translator, node: exp.ArrayDistinct) -> pl.Expr:
        return self._array_arg(node, "ARRAY_DISTINCT", node.this)[0].list.unique(
            maintain_order=True)

    def _arrayposition(self: Translator, node: exp.ArrayPosition) -> pl.Expr:
        """ARRAY_POSITION(arr, x): where x first is, from 1; 0 when absent."""
        a, dtype = self._array_arg(node, "ARRAY_POSITION", node.this)
        if dtype.inner.is_nested():
            raise unsupported("ARRAY_POSITION over an array of ARRAYs, MAPs or ROWs", node)
        x = self._element_arg(node, node.expression, dtype)
        # x put in front of each row's array, so the per-list evaluation can compare with it
        first = pl.concat_list([x, a]).list.eval(
            (pl.element() == pl.element().first()).slice(1).arg_true().first() + 1).list.first()
        return pl.when(a.is_not_null() & x.is_not_null()).then(first.fill_null(0).cast(pl.Int32))

    def _arraytostring(self: Translator, node: exp.ArrayToString) -> pl.Expr:
        """ARRAY_JOIN(arr, sep[, null_text]): NULL elements left out unless replaced."""
        a, dtype = self._array_arg(node, "ARRAY_JOIN", node.this)
        if dtype.inner != pl.String:
            raise error(f"ARRAY_JOIN joins an ARRAY<STRING>, not {describe(dtype)}", node)
        sep, null = self.expr(node.expression), node.args.get("null")
        if null is not None:
            if not (isinstance(null, exp.Literal) and null.is_string):
                raise unsupported("ARRAY_JOIN with a NULL replacement that is not a string "
                                  "literal", node)
            a = a.list.eval(pl.element().fill_null(pl.lit(null.this)))
        return pl.when(sep.is_not_null()).then(a.list.join(sep, ignore_nulls=True))

    def _arrayslice(self: Translator, node: exp.ArraySlice) -> pl.Expr:
        """ARRAY_SLICE(arr, start[, end]): positions from 1 (0 is the first too), negative
        ones from the end, both ends included; an empty array when start is after end."""
        a, _ = self._array_arg(node, "ARRAY_SLICE", node.this)
        n = a.list.len()
        start, end = self.expr(node.args["start"]), node.args.get("end")
        stop = self.expr(end) if end is not None else n
        s = pl.max_horizontal(pl.when(start < 0).then(start + n + 1).otherwise(start), 1)
        e = pl.when(stop < 0).then(stop + n + 1).otherwise(stop)
        e = pl.when(e == 0).then(1).otherwise(pl.min_horizontal(e, n))
        out = a.list.slice(s - 1, pl.max_horizontal(e - s + 1, 0))
        return pl.when(start.is_not_null() & stop.is_not_null()).then(out)

    def _arrayconcat(self: Translator, node: exp.ArrayConcat) -> pl.Expr:
        """ARRAY_CONCAT(a, b, ...): NULL when one of them is."""
        arrays = [self._array_arg(node, "ARRAY_CONCAT", e) for e in
                  [node.this, *node.expressions]]
        to = pl.List(common_type(node, "ARRAY_CONCAT", [t.inner for _, t in arrays]))
        parts = [a if t == to else a.cast(to) for a, t in arrays]
        present = pl.all_horizontal([p.is_not_null() for p in parts])
        return pl.when(present).then(pl.concat_list(parts) if len(parts) > 1 else parts[0])

    def _flat_element(self: Translator, node: exp.Expr, fn: str, array: exp.Expr,
                      element: exp.Expr) -> tuple[pl.Expr, pl.Expr]:
        """The array and element arguments of ``fn``, whose elements are not nested (the
        functions below put the element in a list beside the array's)."""
        a, dtype = self._array_arg(node, fn, array)
        if dtype.inner.is_nested():
            raise unsupported(f"{fn} over an array of ARRAYs, MAPs or ROWs", node)
        return a, self._element_arg(node, element, dtype)

    def _arrayappend(self: Translator, node: exp.ArrayAppend) -> pl.Expr:
        a, x = self._flat_element(node, "ARRAY_APPEND", node.this, node.expression)
        return pl.when(a.is_not_null()).then(pl.concat_list([a, x]))

    def _arrayprepend(self: Translator, node: exp.ArrayPrepend) -> pl.Expr:
        # sqlglot reads PostgreSQL's array_prepend(element, array): Flink's array is second
        a, x = self._flat_element(node, "ARRAY_PREPEND", node.expression, node.this)
        return pl.when(a.is_not_null()).then(pl.concat_list([x, a]))

    def _arrayremove(self: Translator, node: exp.ArrayRemove) -> pl.Expr:
        """ARRAY_REMOVE(arr, x): without the elements equal to x (NULL removes NULLs)."""
        a, x = self._flat_element(node, "ARRAY_REMOVE", node.this, node.expression)
        kept = pl.element().ne_missing(pl.element().first()).slice(1)
        return pl.concat_list([x, a]).list.eval(pl.element().slice(1).filter(kept))

    def _arraysort(self: Translator, node: exp.ArraySort) -> pl.Expr:
        """ARRAY_SORT(arr[, ascending[, nulls_first]]): ascending by default, NULLs first
        when ascending and last when descending unless ``nulls_first`` says otherwise."""
        a, _ = self._array_arg(node, "ARRAY_SORT", node.this)
        if node.args.get("nulls_first") is not None:  # how sqlglot reads Spark's SORT_ARRAY
            raise unsupported("SORT_ARRAY with an order", node,
                              "write Flink's ARRAY_SORT(arr, ascending, nulls_first)")
        flags = [node.args.get("expression"), node.args.get("asc")]  # sqlglot's names
        if any(f is not None and not isinstance(f, exp.Boolean | exp.Null) for f in flags):
            raise unsupported("ARRAY_SORT with an order that is not TRUE or FALSE", node)
        if any(isinstance(f, exp.Null) for f in flags):
            return pl.lit(None, self.dtype(a))
        asc = flags[0] is None or bool(flags[0].this)
        nulls_first = asc if flags[1] is None else bool(flags[1].this)
        return a.list.sort(descending=not asc, nulls_last=not nulls_first)

    def _arrayreverse(self: Translator, node: exp.ArrayReverse) -> pl.Expr:
        return self._array_arg(node, "ARRAY_REVERSE", node.this)[0].list.reverse()

    def _arraymax(self: Translator, node: exp.ArrayMax) -> pl.Expr:
        return self._array_arg(node, "ARRAY_MAX", node.this)[0].list.max()

    def _arraymin(self: Translator, node: exp.ArrayMin) -> pl.Expr:
        return self._array_arg(node, "ARRAY_MIN", node.this)[0].list.min()

    def _map_arg(self: Translator, node: exp.Expr, fn: str, args: list[exp.Expr]) -> pl.Expr:
        e = self.expr(args[0]) if len(args) == 1 else None
        if e is None or not isinstance(self.dtype(e), pl.Map):
            raise error(f"{fn} takes one MAP", node)
        return e

    def _mapkeys(self: Translator, node: exp.MapKeys) -> pl.Expr:
        return self._map_arg(node, "MAP_KEYS", [node.this]).map.keys()

    def _fn_map_values(self: Translator, node: exp.Expr, args: list[exp.Expr]) -> pl.Expr:
        return self._map_arg(node, "MAP_VALUES", args).map.values()

    def _fn_map_entries(self: Translator, node: exp.Expr, args: list[exp.Expr]) -> pl.Expr:
        return self._map_arg(node, "MAP_ENTRIES", args).map.entries()


def as_decimal(dt: pl.DataType) -> pl.Decimal:
    """The DECIMAL holding every value of an integer type (a DECIMAL is itself)."""
    if isinstance(dt, pl.Decimal):
        return dt
    digits = {pl.Int8: 3, pl.Int16: 5, pl.Int32: 10, pl.Int64: 19, pl.UInt8: 3, pl.UInt16: 5,
              pl.UInt32: 10, pl.UInt64: 20}
    return pl.Decimal(digits.get(type(dt), 19), 0)  # type: ignore[call-overload]


def describe(dtype: pl.DataType | None) -> str:
    """A type as Flink spells it (NULL for None), for messages."""
    from tidal.sql.catalog import describe_type  # catalog imports this module

    return "NULL" if dtype is None else describe_type(dtype)


_INT_WIDTH = {pl.Int8: 1, pl.Int16: 2, pl.Int32: 3, pl.Int64: 4}


def common_type(node: exp.Expr, what: str, types: list[pl.DataType]) -> pl.DataType:
    """The type values of ``types`` widen to where they meet (an ARRAY's elements, a MAP's
    keys), as Flink's least restrictive type: integers to the widest, with a DECIMAL to a
    DECIMAL holding them all, with a FLOAT or DOUBLE to DOUBLE; a NULL takes the others'."""
    known = [t for t in types if t != pl.Null]
    if not known or all(t == known[0] for t in known):
        return known[0] if known else pl.Null()
    if all(t.is_numeric() for t in known):
        if any(t.is_float() for t in known):
            return pl.Float64()
        if any(t.is_decimal() for t in known):
            ds = [as_decimal(t) for t in known]
            scale = max(d.scale for d in ds)  # type: ignore[attr-defined]
            whole = max(d.precision - d.scale for d in ds)  # type: ignore[attr-defined]
            return pl.Decimal(min(whole + scale, 38), scale)
        return max(known, key=lambda t: _INT_WIDTH.get(type(t), 4))
    a, b = next((a, b) for a in known for b in known if a != b)
    raise error(f"{what} mixes {describe(a)} and {describe(b)}; CAST them to one type", node)


def _list_of(items: list[pl.Expr], inner: pl.DataType) -> pl.Expr:
    """One list per row of ``items`` (concat_list would splice list items together)."""
    if not inner.is_nested():
        return pl.concat_list(items)
    return pl.concat_list([pl.struct(e.alias("v")) for e in items]).list.eval(
        pl.element().struct.field("v"))
