"""What makes an alert active: threshold, rate of change, anomaly (z-score, EWMA), absence.

A condition turns a batch into one *sample* per row — the key, the row's time, whether the
alert condition holds and the value that made it so — with Polars kernels over the whole
batch. Conditions that need history (rate of change, anomalies, absence) carry it per key
in a small frame passed in and returned by :meth:`Condition.evaluate`, so the alert
operator snapshots it whole with its own state.

>>> import polars as pl
>>> c = threshold(pl.col("errors") / pl.col("n") > 0.05)
>>> frame = pl.DataFrame({"svc": ["a", "b"], T: [1_000, 1_000], "errors": [1, 9], "n": [100, 100]})
>>> samples, _ = c.evaluate(frame, ["svc"], None)
>>> samples.select("svc", ACTIVE, VALUE).rows()
[('a', False, 0.01), ('b', True, 0.09)]
"""

from __future__ import annotations

import json
from abc import ABC, abstractmethod
from dataclasses import dataclass
from typing import Any

import polars as pl

from tidal._time import Duration, duration_ms
from tidal.errors import ConfigError

__all__ = [
    "ACTIVE",
    "T",
    "VALUE",
    "Absence",
    "Condition",
    "Ewma",
    "RateOfChange",
    "Threshold",
    "ZScore",
    "ewma",
    "rate_of_change",
    "threshold",
    "zscore",
]

T = "__alert_t"
ACTIVE = "__alert_active"
VALUE = "__alert_value"
_OLD = "__alert_old"
_U = "__alert_u"
_MEAN = "__alert_mean"
_VAR = "__alert_var"
_N = "__alert_n"

_COMPARISONS = {"Gt", "GtEq", "Lt", "LtEq", "Eq", "EqValidity", "NotEq", "NotEqValidity"}

State = pl.DataFrame | None


class Condition(ABC):
    """Base of alert conditions; see the module docstring."""

    kind: str = "condition"
    columns: tuple[str, ...] = ()
    """Input columns the condition reads (checked against the stream's schema)."""

    @abstractmethod
    def evaluate(self, frame: pl.DataFrame, keys: list[str], state: State) -> tuple[pl.DataFrame, State]:
        """Samples (``keys``, :data:`T`, :data:`ACTIVE`, :data:`VALUE`) for the rows of
        ``frame`` (which holds the row time in :data:`T`), and the new per-key state."""

    def describe(self) -> str:
        """A one-line description (shown on the dashboard, recorded in checkpoints)."""
        return self.kind


@dataclass(frozen=True)
class Threshold(Condition):
    """Active while a boolean Polars expression holds for the key's latest row."""

    expr: pl.Expr
    value: pl.Expr | None = None
    kind = "threshold"

    @property
    def columns(self) -> tuple[str, ...]:  # type: ignore[override]
        return tuple(self.expr.meta.root_names())

    def evaluate(self, frame: pl.DataFrame, keys: list[str], state: State) -> tuple[pl.DataFrame, State]:
        value = self.value if self.value is not None else _left_operand(self.expr)
        out = frame.select(
            *keys, T,
            self.expr.fill_null(False).cast(pl.Boolean).alias(ACTIVE),
            (value if value is not None else pl.lit(None)).cast(pl.Float64, strict=False).alias(VALUE),
        )
        return out, None

    def describe(self) -> str:
        return str(self.expr)


@dataclass(frozen=True)
class RateOfChange(Condition):
    """Active when ``column`` changes faster than ``above`` (or slower than ``below``)
    between consecutive rows of a key: per ``per`` of event time, or as a fraction of the
    previous value when ``relative``."""

    column: str
    above: float | None
    below: float | None
    per_ms: int
    relative: bool
    kind = "rate_of_change"

    @property
    def columns(self) -> tuple[str, ...]:  # type: ignore[override]
        return (self.column,)

    def evaluate(self, frame: pl.DataFrame, keys: list[str], state: State) -> tuple[pl.DataFrame, State]:
        v = "__alert_v"
        cur = _numeric(frame, keys, self.column, v)
        both = _with_history(cur, state)
        prev_v = pl.col(v).shift(1).over(keys) if keys else pl.col(v).shift(1)
        prev_t = pl.col(T).shift(1).over(keys) if keys else pl.col(T).shift(1)
        if self.relative:
            rate = (pl.col(v) - prev_v) / prev_v.abs()
        else:
            dt = (pl.col(T) - prev_t).cast(pl.Float64)
            rate = (pl.col(v) - prev_v) / pl.when(dt > 0).then(dt / self.per_ms)
        rate = pl.when(rate.is_finite()).then(rate)
        both = both.with_columns(rate.alias(VALUE))
        new_state = _last_per_key(both, keys).select(*keys, T, v)
        samples = both.filter(~pl.col(_OLD)).select(
            *keys, T, _outside(pl.col(VALUE), self.above, self.below).alias(ACTIVE), VALUE
        )
        return samples, new_state

    def describe(self) -> str:
        unit = "relative change" if self.relative else f"change per {self.per_ms} ms"
        return f"{unit} of {self.column} {_bounds(self.above, self.below)}"


@dataclass(frozen=True)
class ZScore(Condition):
    """Active when a row's ``column`` is more than ``threshold`` standard deviations from the
    mean of the key's previous ``window`` rows (a rolling z-score)."""

    column: str
    window: int
    threshold: float
    min_samples: int
    kind = "zscore"

    @property
    def columns(self) -> tuple[str, ...]:  # type: ignore[override]
        return (self.column,)

    def evaluate(self, frame: pl.DataFrame, keys: list[str], state: State) -> tuple[pl.DataFrame, State]:
        v = "__alert_v"
        both = _with_history(_numeric(frame, keys, self.column, v), state)

        def per_key(e: pl.Expr) -> pl.Expr:
            return e.over(keys) if keys else e

        prior = pl.col(v).shift(1)
        mean = per_key(prior.rolling_mean(self.window, min_samples=self.min_samples))
        std = per_key(prior.rolling_std(self.window, min_samples=self.min_samples))
        z = pl.when(std > 0).then((pl.col(v) - mean) / std)
        both = both.with_columns(z.alias(VALUE))
        tail = both.group_by(keys, maintain_order=True).tail(self.window) if keys else both.tail(self.window)
        samples = both.filter(~pl.col(_OLD)).select(
            *keys, T, (pl.col(VALUE).abs() > self.threshold).fill_null(False).alias(ACTIVE), VALUE
        )
        return samples, tail.select(*keys, T, v)

    def describe(self) -> str:
        return f"|z-score of {self.column} over {self.window} rows| > {self.threshold}"


@dataclass(frozen=True)
class Ewma(Condition):
    """Active when a row's ``column`` is more than ``threshold`` standard deviations from the
    key's exponentially weighted moving average (weight ``alpha`` for the newest row)."""

    column: str
    alpha: float
    threshold: float
    min_samples: int
    kind = "ewma"

    @property
    def columns(self) -> tuple[str, ...]:  # type: ignore[override]
        return (self.column,)

    def evaluate(self, frame: pl.DataFrame, keys: list[str], state: State) -> tuple[pl.DataFrame, State]:
        # m_i = (1-a) m_{i-1} + a x_i and var_i = (1-a) var_{i-1} + a (1-a) d_i^2 with
        # d_i = x_i - m_{i-1}: both are ewm_mean(adjust=False) recurrences, so a key's
        # saved (mean, var) prepended as its first row continues them exactly.
        a = self.alpha
        v = "__alert_v"
        cur = _numeric(frame, keys, self.column, v).with_columns(
            pl.lit(None, pl.Float64).alias(_VAR), pl.lit(0, pl.Int64).alias(_N))
        prior = state.select(*keys, T, pl.col(_MEAN).alias(v), _VAR, _N) if state is not None else None
        both = _with_history(cur, prior)

        def per_key(e: pl.Expr) -> pl.Expr:
            return e.over(keys) if keys else e

        both = both.with_columns(per_key(pl.col(v).ewm_mean(alpha=a, adjust=False)).alias(_MEAN))
        prev_mean = per_key(pl.col(_MEAN).shift(1))
        diff = (pl.col(v) - prev_mean).fill_null(0.0)
        both = both.with_columns(
            diff.alias(VALUE),
            pl.when(pl.col(_OLD)).then(pl.col(_VAR)).otherwise((1 - a) * diff * diff)
            .fill_null(0.0).alias(_U),
            per_key(pl.col(_N).cum_sum() + (~pl.col(_OLD)).cast(pl.Int64).cum_sum()).alias(_N),
        )
        both = both.with_columns(per_key(pl.col(_U).ewm_mean(alpha=a, adjust=False)).alias(_VAR))
        prev_var, prev_n = per_key(pl.col(_VAR).shift(1)), per_key(pl.col(_N).shift(1)).fill_null(0)
        z = pl.when((prev_var > 0) & (prev_n >= self.min_samples)).then(
            pl.col(VALUE) / prev_var.sqrt())
        both = both.with_columns(z.alias(VALUE))
        new_state = _last_per_key(both, keys).select(*keys, T, _MEAN, _VAR, _N)
        samples = both.filter(~pl.col(_OLD)).select(
            *keys, T, (pl.col(VALUE).abs() > self.threshold).fill_null(False).alias(ACTIVE), VALUE
        )
        return samples, new_state

    def describe(self) -> str:
        return f"|deviation of {self.column} from its EWMA (alpha {self.alpha})| > {self.threshold} sd"


@dataclass(frozen=True)
class Absence(Condition):
    """Active for a key once event time (the watermark) passes its last row + ``after_ms``;
    the key's next row resolves it. Sample values are silences in seconds."""

    after_ms: int
    kind = "absence"

    def evaluate(self, frame: pl.DataFrame, keys: list[str], state: State) -> tuple[pl.DataFrame, State]:
        first = "__alert_first"
        aggs = [pl.col(T).min().alias(first), pl.col(T).max()]
        seen = (frame.group_by(keys, maintain_order=True).agg(aggs) if keys
                else frame.select(aggs)).filter(pl.col(T).is_not_null())
        if state is None:
            merged = seen.select(*keys, T)
            gap = pl.lit(None, pl.Float64)
        else:
            prev = "__alert_prev"
            seen = seen.join(state.rename({T: prev}), on=keys, how="left") if keys \
                else seen.with_columns(pl.lit(state[T].max() if state.height else None).alias(prev))
            gap = (pl.col(first) - pl.col(prev)) / 1000
            both = pl.concat([state, seen.select(*keys, T)], how="vertical_relaxed")
            merged = (both.group_by(keys, maintain_order=True).agg(pl.col(T).max()) if keys
                      else both.select(pl.col(T).max()))
        # a returning key's sample carries how long it was silent, in seconds
        samples = seen.select(*keys, pl.col(first).alias(T), pl.lit(False).alias(ACTIVE),
                              gap.alias(VALUE))
        return samples, merged

    def expired(self, state: State, previous_wm: int, watermark: int) -> pl.DataFrame | None:
        """Samples for the keys whose silence passed ``after_ms`` between the watermarks
        (the value: the silence so far, in seconds)."""
        if state is None or not state.height:
            return None
        due = pl.col(T) + self.after_ms
        out = state.filter((due > previous_wm) & (due <= watermark))
        return out.select(*[c for c in state.columns if c != T], due.alias(T),
                          pl.lit(True).alias(ACTIVE),
                          pl.lit(self.after_ms / 1000, pl.Float64).alias(VALUE))

    def describe(self) -> str:
        return f"no rows for {self.after_ms} ms of event time"


# -- constructors (the public names) -----------------------------------------------------------
def threshold(expr: pl.Expr, value: pl.Expr | None = None) -> Threshold:
    """A threshold condition (a plain Polars expression passed to ``rule`` means the same).

    ``value`` is what notifications show; by default the left side of a comparison.
    """
    if not isinstance(expr, pl.Expr):
        raise ConfigError(f"a threshold needs a Polars expression such as pl.col('x') > 5, got "
                          f"{type(expr).__name__}")
    return Threshold(expr, value)


def rate_of_change(column: str, *, above: float | None = None, below: float | None = None,
                   per: Duration = "1s", relative: bool = False) -> RateOfChange:
    """Alert on how fast ``column`` changes between consecutive rows of a key.

    The change is per ``per`` of event time (``"1s"``: a derivative per second) or, with
    ``relative=True``, a fraction of the previous value (``above=0.2``: up 20 %).
    """
    _need_bound("rate_of_change", above, below)
    return RateOfChange(column, above, below, max(1, duration_ms(per, "per")), relative)


def zscore(column: str, *, window: int = 60, threshold: float = 3.0,
           min_samples: int = 10) -> ZScore:
    """Anomaly: ``column`` more than ``threshold`` standard deviations away from the mean of
    the key's previous ``window`` rows (after at least ``min_samples`` of them)."""
    if window < 2 or min_samples < 2:
        raise ConfigError(f"zscore needs window >= 2 and min_samples >= 2, got {window}, {min_samples}")
    return ZScore(column, window, threshold, min(min_samples, window))


def ewma(column: str, *, alpha: float = 0.1, threshold: float = 3.0,
         min_samples: int = 10) -> Ewma:
    """Anomaly: ``column`` more than ``threshold`` standard deviations away from the key's
    exponentially weighted moving average (``alpha``: weight of the newest row, 0 < alpha < 1)."""
    if not 0 < alpha < 1:
        raise ConfigError(f"ewma alpha must be between 0 and 1 (exclusive), got {alpha}")
    return Ewma(column, alpha, threshold, min_samples)


def as_condition(condition: Any, where: str) -> Condition:
    """A :class:`Condition` from what ``rule`` was given (a Polars expression or a condition)."""
    if isinstance(condition, Condition):
        return condition
    if isinstance(condition, pl.Expr):
        return Threshold(condition)
    raise ConfigError(
        f"alert rule at {where}: the condition must be a Polars expression (pl.col('errors') > "
        f"10) or td.alerts.rate_of_change/zscore/ewma(...), got {type(condition).__name__}"
    )


# -- helpers -------------------------------------------------------------------------------------
def _left_operand(expr: pl.Expr) -> pl.Expr | None:
    """The left side of ``expr`` when it is a comparison (what the alert reports)."""
    try:
        tree = json.loads(expr.meta.serialize(format="json"))
        if tree.get("BinaryExpr", {}).get("op") in _COMPARISONS:
            return expr.meta.pop()[-1]
    except Exception:  # noqa: BLE001 - the serialized form is Polars' business; no value then
        return None
    return None


def _numeric(frame: pl.DataFrame, keys: list[str], column: str, alias: str) -> pl.DataFrame:
    return (frame.select(*keys, T, pl.col(column).cast(pl.Float64, strict=False).alias(alias))
            .filter(pl.col(alias).is_not_null() & pl.col(alias).is_finite())
            .sort(T, maintain_order=True)
            .with_columns(pl.lit(False).alias(_OLD)))


def _with_history(cur: pl.DataFrame, state: State) -> pl.DataFrame:
    if state is None or not state.height:
        return cur
    return pl.concat([state.with_columns(pl.lit(True).alias(_OLD)), cur], how="diagonal_relaxed")


def _last_per_key(frame: pl.DataFrame, keys: list[str]) -> pl.DataFrame:
    return frame.group_by(keys, maintain_order=True).tail(1) if keys else frame.tail(1)


def _outside(e: pl.Expr, above: float | None, below: float | None) -> pl.Expr:
    out = pl.lit(False)
    if above is not None:
        out = out | (e > above)
    if below is not None:
        out = out | (e < below)
    return out.fill_null(False)


def _bounds(above: float | None, below: float | None) -> str:
    return " or ".join(s for s in (above is not None and f"> {above}",
                                   below is not None and f"< {below}") if s)


def _need_bound(name: str, above: float | None, below: float | None) -> None:
    if above is None and below is None:
        raise ConfigError(f"{name} needs above= or below= (or both), e.g. above=0.5")
