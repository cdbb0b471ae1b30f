"""Aggregate functions for keyed windows and running aggregates.

Each aggregate is computed in three vectorized stages so that state stays columnar:
``partial`` (Polars expressions over a group of raw rows), ``merge`` (expressions over a
group of partial rows, used to fold batches into state), and ``final`` (an expression over
merged partials giving the output column). The engine runs all three inside
``group_by().agg()``; no Python code runs per row.

>>> import tidal as td
>>> aggs = dict(n=td.agg.count(), top=td.agg.max("price"), avg=td.agg.mean("price"))

Besides the exact aggregates there are ``percentile`` (exact, keeps the values) and two
sketches from Apache DataSketches whose partial state is the sketch serialized as bytes, so
they merge across batches, panes and checkpoints in constant space:
``approx_count_distinct`` (HyperLogLog) and ``approx_quantile`` (KLL).
"""

from __future__ import annotations

import struct
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import numpy as np
import polars as pl

__all__ = [
    "Agg",
    "UserAggregate",
    "approx_count_distinct",
    "approx_quantile",
    "count",
    "count_distinct",
    "first",
    "last",
    "listagg",
    "max",
    "mean",
    "min",
    "percentile",
    "std",
    "sum",
    "udaf",
    "var",
]

TIME = "__t"
"""Name of the engine's Int64 event-time column inside stateful operators."""

_builtin_max, _builtin_min, _builtin_sum = max, min, sum


@dataclass(frozen=True)
class Agg:
    """One aggregate: what it reads and how its partial state is built, merged and read."""

    kind: str
    column: str | None = None
    params: tuple[Any, ...] = ()
    """Options of parametrized aggregates (a quantile, a sketch size)."""

    def inputs(self) -> set[str]:
        """Input columns this aggregate reads."""
        if self.kind == "udaf":
            return set(self.params[1])
        return {self.column} if self.column else set()

    def partial(self, out: str) -> list[pl.Expr]:
        """Expressions over raw rows of one group, producing the partial columns."""
        c = pl.col(self.column) if self.column else None
        match self.kind:
            case "udaf":
                return [self.params[0]._partial(self.params[1]).alias(_p(out))]
            case "count":
                return [(pl.len() if c is None else c.count()).cast(pl.Int64).alias(_p(out))]
            case "sum":
                return [c.sum().alias(_p(out))]
            case "min":
                return [c.min().alias(_p(out))]
            case "max":
                return [c.max().alias(_p(out))]
            case "mean":
                return [c.sum().alias(_p(out, "s")), c.count().cast(pl.Int64).alias(_p(out, "n"))]
            case "first" | "last":
                t = pl.col(TIME)
                if self.params and self.params[0]:  # ignore nulls
                    t, c = t.filter(c.is_not_null()), c.filter(c.is_not_null())
                pick = c.sort_by(t, maintain_order=True)
                return [(pick.first() if self.kind == "first" else pick.last()).alias(_p(out)),
                        (t.min() if self.kind == "first" else t.max()).alias(_p(out, "t"))]
            case "variance":
                x = c.cast(pl.Float64)
                return [x.count().cast(pl.Int64).alias(_p(out, "n")), x.mean().alias(_p(out, "m")),
                        ((x - x.mean()) ** 2).sum().alias(_p(out))]
            case "listagg" | "array_agg":  # params: (separator | ignore nulls, by time, ...)
                t = pl.col(TIME) if self.params[1] else pl.int_range(pl.len())
                if self.kind == "listagg" or self.params[0]:
                    t, c = t.filter(c.is_not_null()), c.filter(c.is_not_null())
                if self.kind == "listagg":
                    c = c.cast(pl.String)
                return [c.sort_by(t, maintain_order=True).alias(_p(out)),
                        t.sort().alias(_p(out, "t"))]
            case "count_distinct" | "sum_distinct":
                return [c.drop_nulls().unique().alias(_p(out))]
            case "percentile":
                return [c.drop_nulls().cast(pl.Float64).alias(_p(out))]
            case "approx_count_distinct":
                lg_k = self.params[0]
                return [c.drop_nulls().hash(_HLL_SEED).map_batches(
                    lambda h: _hll_build(h, lg_k), returns_scalar=True, return_dtype=pl.Binary,
                ).alias(_p(out))]
            case "approx_quantile":
                k = self.params[1]
                return [c.drop_nulls().cast(pl.Float64).map_batches(
                    lambda v: _kll_build(v, k), returns_scalar=True, return_dtype=pl.Binary,
                ).alias(_p(out))]
        raise AssertionError(self.kind)

    def merge(self, out: str) -> list[pl.Expr]:
        """Expressions over partial rows of one group, folding them into one partial row."""
        p = pl.col(_p(out))
        match self.kind:
            case "udaf":
                return [self.params[0]._merge(p)]
            case "count" | "sum":
                return [p.sum()]
            case "min":
                return [p.min()]
            case "max":
                return [p.max()]
            case "mean":
                return [pl.col(_p(out, "s")).sum(), pl.col(_p(out, "n")).sum()]
            case "first":  # a partial without values has no time: sorted last
                t = pl.col(_p(out, "t"))
                return [p.sort_by(t, nulls_last=True, maintain_order=True).first(), t.min()]
            case "last":
                t = pl.col(_p(out, "t"))
                return [p.sort_by(t, nulls_last=False, maintain_order=True).last(), t.max()]
            case "variance":  # Chan et al.: combine counts, means and squared deviations
                n, m = pl.col(_p(out, "n")), pl.col(_p(out, "m"))
                total = n.sum()
                mean = (n * m).sum() / total
                return [total, pl.when(total > 0).then(mean).otherwise(None).alias(_p(out, "m")),
                        (p.sum() + (n * (m - mean) ** 2).sum()).alias(_p(out))]
            case "listagg" | "array_agg":
                t = pl.col(_p(out, "t")).explode()
                keep = t.is_not_null()  # an empty list explodes to one null
                return [p.explode().filter(keep).sort_by(t.filter(keep), maintain_order=True),
                        t.filter(keep).sort()]
            case "count_distinct" | "sum_distinct":
                return [p.explode().drop_nulls().unique()]
            case "percentile":
                return [p.explode().drop_nulls()]
            case "approx_count_distinct":
                return [p.map_batches(_hll_merge, returns_scalar=True, return_dtype=pl.Binary)]
            case "approx_quantile":
                return [p.map_batches(_kll_merge, returns_scalar=True, return_dtype=pl.Binary)]
        raise AssertionError(self.kind)

    def final(self, out: str) -> pl.Expr:
        """Expression over a merged partial row giving the output column ``out``."""
        p = pl.col(_p(out))
        match self.kind:
            case "udaf":
                return self.params[0]._final(p, self.params[1]).alias(out)
            case "mean":
                return (pl.col(_p(out, "s")) / pl.col(_p(out, "n"))).alias(out)
            case "variance":
                ddof, root = self.params
                n = pl.col(_p(out, "n"))
                v = pl.max_horizontal(p, 0.0) / (n - ddof)
                return pl.when(n > ddof).then(v.sqrt() if root else v).otherwise(None).alias(out)
            case "listagg":
                return pl.when(p.list.len() > 0).then(p.list.join(self.params[0])) \
                    .otherwise(None).alias(out)
            case "array_agg":
                return pl.when(p.list.len() > 0).then(p).otherwise(None).alias(out)
            case "count_distinct":
                return p.list.len().cast(pl.Int64).alias(out)
            case "sum_distinct":
                return pl.when(p.list.len() > 0).then(p.list.sum()).otherwise(None).alias(out)
            case "percentile":
                q, how = self.params
                return p.list.eval(pl.element().quantile(q, interpolation=how)).list.first().alias(out)
            case "approx_count_distinct":
                return p.map_elements(_hll_estimate, return_dtype=pl.Int64,
                                      skip_nulls=True).alias(out)
            case "approx_quantile":
                q = self.params[0]
                return p.map_elements(lambda b: _kll_quantile(b, q), return_dtype=pl.Float64,
                                      skip_nulls=True).alias(out)
        return p.alias(out)

    def output_dtype(self) -> pl.DataType | None:
        """The output type when it does not follow from the input column's type."""
        if self.kind in ("percentile", "approx_quantile", "variance"):
            return pl.Float64()
        if self.kind == "listagg":
            return pl.String()
        if self.kind == "array_agg":
            return self.params[2]
        if self.kind == "approx_count_distinct":
            return pl.Int64()
        if self.kind == "udaf":
            return self.params[0].return_type
        return None

    def partial_columns(self, out: str) -> list[str]:
        """Names of the partial-state columns of this aggregate."""
        if self.kind == "mean":
            return [_p(out, "s"), _p(out, "n")]
        if self.kind in ("first", "last", "listagg", "array_agg"):
            return [_p(out), _p(out, "t")]
        if self.kind == "variance":
            return [_p(out, "n"), _p(out, "m"), _p(out)]
        return [_p(out)]

    def __repr__(self) -> str:
        if self.kind == "udaf":
            return f"{self.params[0].name}({', '.join(self.params[1])})"
        params = "".join(f", {p!r}" for p in self.params)
        return f"{self.kind}({self.column or ''}{params})"


def _p(out: str, part: str = "") -> str:
    return f"__{out}__{part}"


def count(column: str | None = None) -> Agg:
    """Number of rows (or of non-null values of ``column``)."""
    return Agg("count", column)


def sum(column: str) -> Agg:  # noqa: A001 - mirrors SQL
    """Sum of ``column``."""
    return Agg("sum", column)


def min(column: str) -> Agg:  # noqa: A001
    """Smallest value of ``column``."""
    return Agg("min", column)


def max(column: str) -> Agg:  # noqa: A001
    """Largest value of ``column``."""
    return Agg("max", column)


def mean(column: str) -> Agg:
    """Arithmetic mean of ``column`` (nulls ignored)."""
    return Agg("mean", column)


def first(column: str, ignore_nulls: bool = False) -> Agg:
    """Value of ``column`` in the row with the earliest event time (of the earliest row where
    it is not null, with ``ignore_nulls``); rows of the same time count in arrival order."""
    return Agg("first", column, (True,) if ignore_nulls else ())


def last(column: str, ignore_nulls: bool = False) -> Agg:
    """Value of ``column`` in the row with the latest event time (of the latest row where it
    is not null, with ``ignore_nulls``); rows of the same time count in arrival order."""
    return Agg("last", column, (True,) if ignore_nulls else ())


def var(column: str, ddof: int = 1) -> Agg:
    """Variance of ``column`` (nulls ignored) as a float: the sample variance by default,
    the population variance with ``ddof=0``; null for a group of ``ddof`` values or fewer.

    The state is a count, a mean and a sum of squared deviations, merged exactly (Chan et
    al.), so it stays accurate where a sum of squares would cancel.

    >>> import tidal as td
    >>> td.agg.var("price", ddof=0)
    variance(price, 0, False)
    """
    return Agg("variance", column, (_ddof(ddof), False))


def std(column: str, ddof: int = 1) -> Agg:
    """Standard deviation of ``column``: the square root of :func:`var`.

    >>> import tidal as td
    >>> td.agg.std("price")
    variance(price, 1, True)
    """
    return Agg("variance", column, (_ddof(ddof), True))


def listagg(column: str, separator: str = ",", by_time: bool = True) -> Agg:
    """The non-null values of ``column`` as strings joined by ``separator`` (null when there
    are none), in event-time order (rows of the same time in arrival order), or in the
    order of the rows with ``by_time=False`` (for inputs without event time).

    >>> import tidal as td
    >>> td.agg.listagg("bidder", ";")
    listagg(bidder, ';', True)
    """
    if not isinstance(separator, str):
        from tidal.errors import ConfigError

        raise ConfigError(f"listagg({column!r}): separator must be a string, not {separator!r}")
    return Agg("listagg", column, (separator, bool(by_time)))


def count_distinct(column: str) -> Agg:
    """Exact number of distinct non-null values of ``column``."""
    return Agg("count_distinct", column)


def percentile(column: str, q: float,
               interpolation: str = "linear") -> Agg:
    """Exact ``q`` quantile (0 to 1) of ``column``, like SQL's ``PERCENTILE_CONT``.

    Keeps every value of a group until it is final (state grows with the group); for
    large groups prefer :func:`approx_quantile`. ``interpolation`` is Polars' (``"linear"``,
    ``"nearest"``, ``"lower"``, ``"higher"``, ``"midpoint"``).

    >>> import polars as pl, tidal as td
    >>> td.agg.percentile("latency", 0.99)
    percentile(latency, 0.99, 'linear')
    """
    _check_q("percentile", q)
    if interpolation not in ("linear", "nearest", "lower", "higher", "midpoint"):
        from tidal.errors import ConfigError

        raise ConfigError(
            f"percentile({column!r}): interpolation {interpolation!r} is not one of linear, "
            "nearest, lower, higher, midpoint"
        )
    return Agg("percentile", column, (float(q), interpolation))


def approx_count_distinct(column: str, lg_k: int = 12) -> Agg:
    """Approximate number of distinct non-null values of ``column`` (HyperLogLog).

    Each group's partial state is a DataSketches ``hll_sketch`` (HLL_8, ``2**lg_k``
    registers) serialized as bytes: 4 KiB at the default ``lg_k=12``, whatever the
    cardinality, with a relative standard error of about ``1.04 / sqrt(2**lg_k)`` (1.6 %).
    Values are hashed with Polars' 64-bit hash, vectorized; partials merge by register max.

    >>> import tidal as td
    >>> td.agg.approx_count_distinct("user")
    approx_count_distinct(user, 12)
    """
    if not isinstance(lg_k, int) or not 4 <= lg_k <= 21:
        from tidal.errors import ConfigError

        raise ConfigError(f"approx_count_distinct({column!r}): lg_k must be an integer 4..21, "
                          f"not {lg_k!r}")
    _need_datasketches("approx_count_distinct")
    return Agg("approx_count_distinct", column, (lg_k,))


def approx_quantile(column: str, q: float, k: int = 200) -> Agg:
    """Approximate ``q`` quantile (0 to 1) of ``column`` (a DataSketches KLL sketch).

    The partial state is a ``kll_doubles_sketch`` serialized as bytes; with the default
    ``k=200`` the rank error is about 1.65 % (``sketch.normalized_rank_error``), and its
    size grows only logarithmically with the number of values.

    >>> import tidal as td
    >>> td.agg.approx_quantile("latency", 0.5)
    approx_quantile(latency, 0.5, 200)
    """
    _check_q("approx_quantile", q)
    _need_datasketches("approx_quantile")
    return Agg("approx_quantile", column, (float(q), int(k)))


@dataclass(frozen=True, eq=False)
class UserAggregate:
    """A user-defined aggregate function (see :func:`udaf`); call it with column names to
    get an :class:`Agg`: ``weighted("price", "qty")``."""

    fn: Callable[..., Any]
    merge_fn: Callable[[pl.Series], Any] | None
    finish: Callable[[Any], Any] | None
    return_type: pl.DataType
    state_type: pl.DataType | None
    name: str

    def __call__(self, *columns: str) -> Agg:
        if not columns or not all(isinstance(c, str) for c in columns):
            from tidal.errors import PlanError

            raise PlanError(f"aggregate {self.name}(...) takes column names, got {columns!r}")
        return Agg("udaf", columns[0], (self, tuple(columns)))

    def _values(self, columns: tuple[str, ...]) -> pl.Expr:
        return pl.col(columns[0]) if len(columns) == 1 else pl.struct(list(columns))

    def _call(self, values: pl.Series, columns: tuple[str, ...]) -> Any:
        if len(columns) == 1:
            return self.fn(values)
        return self.fn(*(values.struct.field(c) for c in columns))

    def _partial(self, columns: tuple[str, ...]) -> pl.Expr:
        values = self._values(columns)
        if self.merge_fn is None:  # holistic: the group's values are the state
            return values
        return values.map_batches(lambda s: pl.Series([self._call(s, columns)],
                                                      dtype=self.state_type),
                                  returns_scalar=True, return_dtype=self.state_type)

    def _merge(self, p: pl.Expr) -> pl.Expr:
        if self.merge_fn is None:
            return p.explode()
        merge = self.merge_fn
        return p.map_batches(lambda s: pl.Series([merge(s)], dtype=self.state_type),
                             returns_scalar=True, return_dtype=self.state_type)

    def _final(self, p: pl.Expr, columns: tuple[str, ...]) -> pl.Expr:
        if self.merge_fn is None:
            return p.map_elements(lambda s: self._call(s, columns), return_dtype=self.return_type,
                                  skip_nulls=False)
        finish = self.finish
        if finish is None:
            return p.cast(self.return_type)
        return p.map_elements(finish, return_dtype=self.return_type, skip_nulls=False)


def udaf(fn: Callable[..., Any], *, return_type: Any, merge: Callable[[pl.Series], Any] |
         None = None, finish: Callable[[Any], Any] | None = None, state_type: Any = None,
         name: str | None = None) -> UserAggregate:
    """A user-defined aggregate, vectorized per group: ``fn`` gets a group's values as Polars
    Series (one per column) and returns one value.

    Without ``merge`` the state of a group is its values and ``fn`` runs when the result is
    read (any function: a median, a mode, a custom score). With ``merge`` the aggregate is
    decomposable and its state stays one value per group: ``fn`` turns a batch of a group's
    rows into a partial value of ``state_type``, ``merge`` folds a Series of partials into
    one, and ``finish`` (default: the partial itself) turns it into the result.
    ``return_type`` / ``state_type``: a Polars type or a SQL type name (``'DOUBLE'``).
    Register one for SQL with :meth:`tidal.Flow.register_function`.

    >>> import polars as pl, tidal as td
    >>> spread = td.agg.udaf(lambda s: s.max() - s.min(), return_type="BIGINT", name="spread")
    >>> spread("price")
    spread(price)
    >>> total = td.agg.udaf(lambda q, p: (q * p).sum(), merge=lambda s: s.sum(),
    ...                     return_type=pl.Float64, state_type=pl.Float64, name="total")
    >>> total("qty", "price")
    total(qty, price)
    """
    if not callable(fn) or (merge is not None and not callable(merge)) or \
            (finish is not None and not callable(finish)):
        from tidal.errors import ConfigError

        raise ConfigError("udaf(fn, merge=..., finish=...): fn, merge and finish must be functions")
    rt = _dtype(return_type, "return_type")
    st = _dtype(state_type, "state_type") if state_type is not None else (
        rt if merge is not None else None)
    return UserAggregate(fn, merge, finish, rt, st, name or getattr(fn, "__name__", "udaf"))


def _dtype(t: Any, what: str) -> pl.DataType:
    if isinstance(t, str):
        import sqlglot

        from tidal.sql.dialect import Flink
        from tidal.sql.expressions import sql_type

        return sql_type(sqlglot.parse_one(f"CAST(x AS {t})", read=Flink).to)
    if isinstance(t, pl.DataType) or (isinstance(t, type) and issubclass(t, pl.DataType)):
        return t() if isinstance(t, type) else t
    from tidal.errors import ConfigError

    raise ConfigError(f"udaf: {what} must be a Polars type or a SQL type name, not {t!r}")


def _ddof(ddof: int) -> int:
    if isinstance(ddof, bool) or not isinstance(ddof, int) or ddof < 0:
        from tidal.errors import ConfigError

        raise ConfigError(f"ddof must be 0 (population) or 1 (sample), not {ddof!r}")
    return ddof


def _check_q(name: str, q: float) -> None:
    if isinstance(q, bool) or not isinstance(q, int | float) or not 0 <= q <= 1:
        from tidal.errors import ConfigError

        raise ConfigError(f"{name}: q must be a number from 0 to 1 (0.99 for p99), not {q!r}")


def _need_datasketches(name: str) -> None:
    try:
        import datasketches  # noqa: F401
    except ImportError:
        from tidal.errors import ConfigError

        raise ConfigError(
            f"td.agg.{name} needs Apache DataSketches: pip install 'tidal[sketches]'"
        ) from None


# -- sketches (one Python call per group, vectorized inside) ----------------------------------
_HLL_SEED = 0x7ADA1
_HLL_HEADER = 40  # DataSketches HLL preamble, then one byte per register (HLL_8)


def _hll_registers(hashes: pl.Series, lg_k: int) -> np.ndarray:
    h = hashes.to_numpy()
    slots = (h & np.uint64((1 << lg_k) - 1)).astype(np.int64)
    rest = pl.Series(h >> np.uint64(lg_k)).bitwise_leading_zeros().to_numpy().astype(np.int64)
    rho = np.minimum(rest - lg_k + 1, 64 - lg_k + 1).astype(np.uint8)
    regs = np.zeros(1 << lg_k, np.uint8)
    np.maximum.at(regs, slots, rho)
    return regs


def _hll_bytes(regs: np.ndarray) -> bytes:
    """An HLL_8 ``hll_sketch`` serialization of ``regs``, flagged out-of-order so that
    DataSketches estimates from the registers (composite estimator) rather than HIP."""
    lg_k = int(regs.size).bit_length() - 1
    v = regs.astype(np.float64)
    low = regs < 32
    kxq0 = float(np.sum(np.where(low, np.exp2(-v), 0.0)))
    kxq1 = float(np.sum(np.where(low, 0.0, np.exp2(-v))))
    header = bytes([10, 1, 7, lg_k, 0, 8 | 16, 0, 2 | (2 << 2)])
    return header + struct.pack("<dddii", 0.0, kxq0, kxq1, int(np.sum(regs == 0)), 0) + regs.tobytes()


def _hll_build(hashes: pl.Series, lg_k: int) -> pl.Series:
    return pl.Series([_hll_bytes(_hll_registers(hashes, lg_k))], dtype=pl.Binary)


def _hll_merge(partials: pl.Series) -> pl.Series:
    blobs = [b for b in partials.to_list() if b is not None]
    if not blobs:
        return pl.Series([None], dtype=pl.Binary)
    if len(blobs) == 1:
        return pl.Series(blobs, dtype=pl.Binary)
    regs = np.stack([np.frombuffer(b, np.uint8, offset=_HLL_HEADER) for b in blobs]).max(axis=0)
    return pl.Series([_hll_bytes(regs)], dtype=pl.Binary)


def _hll_estimate(blob: bytes) -> int:
    from datasketches import hll_sketch

    return round(hll_sketch.deserialize(blob).get_estimate())


def _kll_build(values: pl.Series, k: int) -> pl.Series:
    from datasketches import kll_doubles_sketch

    if not values.len():
        return pl.Series([None], dtype=pl.Binary)
    sketch = kll_doubles_sketch(k)
    sketch.update(np.array(values.to_numpy(), dtype=np.float64))  # writable, contiguous
    return pl.Series([sketch.serialize()], dtype=pl.Binary)


def _kll_merge(partials: pl.Series) -> pl.Series:
    from datasketches import kll_doubles_sketch

    blobs = [b for b in partials.to_list() if b is not None]
    if len(blobs) <= 1:
        return pl.Series(blobs or [None], dtype=pl.Binary)
    sketch = kll_doubles_sketch.deserialize(blobs[0])
    for b in blobs[1:]:
        sketch.merge(kll_doubles_sketch.deserialize(b))
    return pl.Series([sketch.serialize()], dtype=pl.Binary)


def _kll_quantile(blob: bytes, q: float) -> float:
    from datasketches import kll_doubles_sketch

    return kll_doubles_sketch.deserialize(blob).get_quantile(q)


def compile_aggs(aggs: dict[str, Agg]) -> tuple[list[pl.Expr], list[pl.Expr], list[pl.Expr]]:
    """Partial, merge and final expressions for a set of named aggregates."""
    from tidal.errors import PlanError

    if not aggs:
        raise PlanError("agg() needs at least one aggregate, e.g. .agg(n=td.agg.count())")
    partial: list[pl.Expr] = []
    merge: list[pl.Expr] = []
    final: list[pl.Expr] = []
    for out, a in aggs.items():
        if not isinstance(a, Agg):
            raise PlanError(
                f"agg({out}=...) got {type(a).__name__}; use an aggregate from td.agg, "
                "for example td.agg.count() or td.agg.max('price')"
            )
        partial += a.partial(out)
        merge += a.merge(out)
        final.append(a.final(out))
    return partial, merge, final
