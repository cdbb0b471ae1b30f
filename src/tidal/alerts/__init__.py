"""Alerting: rules over streams that notify people and programs, with state and history.

Declare rules in Python next to the pipeline; each is a stateful step of the flow
(checkpointed under the stable name ``alerts.<rule>``), evaluated vectorized per batch:

- :func:`rule` with a **threshold** (a boolean Polars expression over the rows),
  :func:`rate_of_change`, or an **anomaly** detector (:func:`zscore`, :func:`ewma`), per key;
- :func:`absent`: a key that sent nothing for a while (event time, by the watermark).

Every rule and key goes pending -> firing -> resolved, after holding for ``for_``;
notifications are de-duplicated per rule and key, repeated every ``repeat_interval``
while firing, and a resolution is sent. Channels deliver from background threads with
retries and backoff and never block the pipeline: :func:`webhook`, :func:`slack`,
:func:`email`, :func:`topic` (the embedded log) and :func:`log` (Python logging).
:func:`tidal.alerts.http.alerts_router` serves ``GET /alerts``. See docs/alerts.md.

>>> import polars as pl, tidal as td
>>> flow = td.Flow("shop")
>>> orders = flow.source(td.sources.memory([{"shop": "a", "failed": 9, "n": 10, "t": 0}]),
...                      timestamp="t")
>>> r = td.alerts.rule("failing-orders", orders, pl.col("failed") / pl.col("n") > 0.5,
...                    key="shop", severity="critical", channels=[td.alerts.log()])
>>> r.events.print()
>>> _ = flow.run(quiet=True)  # doctest: +ELLIPSIS
shop=a rule=failing-orders state=firing at=0 since=0 value=0.9 severity=critical ...
"""

from ._channels import (
    Channel,
    Email,
    LogChannel,
    Notification,
    Slack,
    Topic,
    Webhook,
    email,
    log,
    slack,
    topic,
    webhook,
)
from ._conditions import Condition, ewma, rate_of_change, threshold, zscore
from ._rule import Rule, absent, rule, rules

__all__ = [
    "Channel",
    "Condition",
    "Email",
    "LogChannel",
    "Notification",
    "Rule",
    "Slack",
    "Topic",
    "Webhook",
    "absent",
    "email",
    "ewma",
    "log",
    "rate_of_change",
    "rule",
    "rules",
    "slack",
    "threshold",
    "topic",
    "webhook",
    "zscore",
]
