"""Where alert notifications go: webhook, Slack-compatible webhook, email, a log topic, logging.

Every channel delivers from its own background thread through a bounded queue, so a slow
or failing receiver never blocks the pipeline: :meth:`Channel.submit` only enqueues. A
failed send is retried with exponential backoff (``backoff``, doubling, at most
``max_backoff``) up to ``retries`` times, then given up and counted; when the queue is
full the oldest notification is dropped and counted. :meth:`Channel.stats` shows it all.

>>> import tidal.alerts as alerts
>>> received = []
>>> class Memory(alerts.Channel):
...     def send(self, note): received.append(note.title())
>>> ch = Memory("memory")
>>> ch.submit(alerts.Notification(rule="cpu", state="firing", key={"host": "a"}, at=0))
>>> ch.flush(timeout=5)
True
>>> received
['[FIRING] cpu host=a (warning)']
>>> ch.close()
"""

from __future__ import annotations

import collections
import json
import logging
import smtplib
import ssl
import threading
import urllib.error
import urllib.request
from abc import ABC, abstractmethod
from dataclasses import asdict, dataclass, field
from email.message import EmailMessage
from typing import Any, Literal

from tidal._time import Duration, duration_ms, format_ms
from tidal.errors import ConfigError

__all__ = ["Channel", "Email", "LogChannel", "Notification", "Slack", "Topic", "Webhook",
           "email", "log", "slack", "topic", "webhook"]

logger = logging.getLogger("tidal.alerts")


@dataclass(frozen=True)
class Notification:
    """One message about one alert (a rule and key): it started firing, still fires
    (``repeat``), or resolved. Times are event-time epoch milliseconds."""

    rule: str
    state: Literal["firing", "resolved"]
    key: dict[str, Any] = field(default_factory=dict)
    at: int = 0
    """When the alert fired or resolved (event time)."""
    since: int | None = None
    """When the condition started to hold."""
    value: float | None = None
    severity: str = "warning"
    labels: dict[str, str] = field(default_factory=dict)
    summary: str = ""
    repeat: bool = False
    flow: str = ""

    def key_text(self) -> str:
        """The key as ``col=value`` pairs (empty for a rule without key)."""
        return " ".join(f"{k}={v}" for k, v in self.key.items())

    def title(self) -> str:
        """A one-line title: ``[FIRING] rule key (severity)``."""
        key = f" {self.key_text()}" if self.key else ""
        return f"[{self.state.upper()}] {self.rule}{key} ({self.severity})"

    def text(self) -> str:
        """The full message as plain text (the email body)."""
        lines = [self.title(), ""]
        if self.summary:
            lines += [self.summary, ""]
        lines.append(f"state:    {self.state}{' (repeated)' if self.repeat else ''}")
        lines.append(f"at:       {format_ms(self.at)}")
        if self.since is not None:
            lines.append(f"since:    {format_ms(self.since)}")
        if self.value is not None:
            lines.append(f"value:    {self.value:g}")
        for k, v in self.labels.items():
            lines.append(f"label:    {k}={v}")
        if self.flow:
            lines.append(f"flow:     {self.flow}")
        return "\n".join(lines) + "\n"

    def to_json(self) -> dict[str, Any]:
        """The JSON body of webhooks and the row of the topic channel."""
        out = asdict(self)
        out["at_iso"] = format_ms(self.at)
        return out


class Channel(ABC):
    """Base of notification channels: subclasses implement :meth:`send` (called in the
    channel's worker thread; raise to have it retried)."""

    def __init__(self, name: str, *, retries: int = 5, backoff: Duration = "500ms",
                 max_backoff: Duration = "60s", max_queue: int = 1_000) -> None:
        if retries < 0 or max_queue < 1:
            raise ConfigError(f"channel {name!r}: retries must be >= 0 and max_queue >= 1")
        self.name = name
        self.retries = retries
        self.backoff_ms = duration_ms(backoff, "backoff")
        self.max_backoff_ms = duration_ms(max_backoff, "max_backoff")
        self.max_queue = max_queue
        self.sent = self.failed = self.retried = self.dropped = 0
        self.last_error: str | None = None
        self._queue: collections.deque[Notification] = collections.deque()
        self._cond = threading.Condition()
        self._busy = False
        self._closed = threading.Event()
        self._thread: threading.Thread | None = None

    @abstractmethod
    def send(self, note: Notification) -> None:
        """Deliver one notification now, raising on failure (runs in the worker thread)."""

    def submit(self, note: Notification) -> None:
        """Queue ``note`` for delivery; returns at once (drops the oldest when full)."""
        with self._cond:
            if len(self._queue) >= self.max_queue:
                self._queue.popleft()
                self.dropped += 1
                logger.warning("alert channel %s: queue full (%d), dropped the oldest "
                               "notification", self.name, self.max_queue)
            self._queue.append(note)
            if self._thread is None or not self._thread.is_alive():
                self._closed.clear()
                self._thread = threading.Thread(target=self._work, daemon=True,
                                                name=f"tidal-alerts-{self.name}")
                self._thread.start()
            self._cond.notify()

    def _work(self) -> None:
        while True:
            with self._cond:
                while not self._queue and not self._closed.is_set():
                    self._cond.wait()
                if self._closed.is_set():
                    return
                note = self._queue.popleft()
                self._busy = True
            try:
                self._deliver(note)
            finally:
                with self._cond:
                    self._busy = False
                    self._cond.notify_all()

    def _deliver(self, note: Notification) -> None:
        delay = self.backoff_ms / 1000
        for attempt in range(self.retries + 1):
            try:
                self.send(note)
            except Exception as exc:  # noqa: BLE001 - any failure of a receiver is retried
                self.last_error = f"{type(exc).__name__}: {exc}"
                if attempt == self.retries or self._closed.is_set():
                    self.failed += 1
                    logger.error("alert channel %s: giving up on %s after %d attempt(s): %s",
                                 self.name, note.title(), attempt + 1, self.last_error)
                    return
                self.retried += 1
                logger.warning("alert channel %s: sending %s failed (%s); retrying in %.1f s",
                               self.name, note.title(), self.last_error, delay)
                if self._closed.wait(delay):
                    self.failed += 1
                    return
                delay = min(delay * 2, self.max_backoff_ms / 1000)
            else:
                self.sent += 1
                return

    def flush(self, timeout: float = 5.0) -> bool:
        """Wait up to ``timeout`` seconds for queued notifications to be delivered (or given
        up); True when none is left."""
        with self._cond:
            return self._cond.wait_for(lambda: not self._queue and not self._busy, timeout)

    def close(self) -> None:
        """Stop the worker: a retry in progress is abandoned, queued notifications dropped."""
        with self._cond:
            self._closed.set()
            self._cond.notify_all()
        if self._thread is not None:
            self._thread.join(timeout=5)

    def stats(self) -> dict[str, Any]:
        """Delivery counters: sent, retried, failed (given up), dropped, queued, last error."""
        with self._cond:
            queued = len(self._queue) + int(self._busy)
        return {"name": self.name, "type": type(self).__name__.lower(), "sent": self.sent,
                "retried": self.retried, "failed": self.failed, "dropped": self.dropped,
                "queued": queued, "last_error": self.last_error}

    def __repr__(self) -> str:
        return f"{type(self).__name__}({self.name!r})"


class Webhook(Channel):
    """POST each notification as JSON (:meth:`Notification.to_json`) to ``url``."""

    def __init__(self, url: str, *, headers: dict[str, str] | None = None,
                 timeout: float = 10.0, name: str | None = None, **delivery: Any) -> None:
        if not url.startswith(("http://", "https://")):
            raise ConfigError(f"webhook url must start with http:// or https://, got {url!r}")
        super().__init__(name or f"webhook:{url}", **delivery)
        self.url, self.headers, self.timeout = url, dict(headers or {}), timeout

    def body(self, note: Notification) -> dict[str, Any]:
        return note.to_json()

    def send(self, note: Notification) -> None:
        data = json.dumps(self.body(note)).encode()
        request = urllib.request.Request(
            self.url, data=data, method="POST",
            headers={"Content-Type": "application/json", "User-Agent": "tidal-alerts",
                     **self.headers})
        with urllib.request.urlopen(request, timeout=self.timeout) as response:
            response.read()


class Slack(Webhook):
    """POST ``{"text": ...}`` to a Slack (or Mattermost, Rocket.Chat, ...) incoming webhook."""

    def body(self, note: Notification) -> dict[str, Any]:
        icon = ":rotating_light:" if note.state == "firing" else ":white_check_mark:"
        lines = [f"{icon} *{_slack_escape(note.title())}*"]
        if note.summary:
            lines.append(_slack_escape(note.summary))
        if note.value is not None:
            lines.append(f"value: {note.value:g}")
        if note.labels:
            lines.append(_slack_escape(" ".join(f"{k}={v}" for k, v in note.labels.items())))
        return {"text": "\n".join(lines)}


class Email(Channel):
    """Send each notification as a plain-text email through an SMTP server."""

    def __init__(self, host: str, port: int = 25, *, sender: str, to: str | list[str],
                 starttls: bool = False, username: str | None = None,
                 password: str | None = None, timeout: float = 10.0, name: str | None = None,
                 **delivery: Any) -> None:
        recipients = [to] if isinstance(to, str) else list(to)
        if not recipients:
            raise ConfigError("email channel needs at least one recipient in to=")
        if (username is None) != (password is None):
            raise ConfigError("email channel: give username and password together, or neither")
        super().__init__(name or f"email:{','.join(recipients)}", **delivery)
        self.host, self.port, self.sender, self.to = host, port, sender, recipients
        self.starttls, self.username, self.password = starttls, username, password
        self.timeout = timeout

    def message(self, note: Notification) -> EmailMessage:
        msg = EmailMessage()
        msg["Subject"] = note.title()
        msg["From"] = self.sender
        msg["To"] = ", ".join(self.to)
        msg.set_content(note.text())
        return msg

    def send(self, note: Notification) -> None:
        with smtplib.SMTP(self.host, self.port, timeout=self.timeout) as smtp:
            if self.starttls:
                smtp.starttls(context=ssl.create_default_context())
            if self.username is not None:
                smtp.login(self.username, self.password or "")
            smtp.send_message(self.message(note))


class Topic(Channel):
    """Append each notification as a row to a topic of the embedded log (created if
    missing): other flows can read alerts like any stream."""

    def __init__(self, name: str, *, log_dir: str | None = None, **delivery: Any) -> None:
        super().__init__(f"topic:{name}", **delivery)
        self.topic_name, self.log_dir = name, log_dir

    def send(self, note: Notification) -> None:
        import polars as pl

        import tidal.log

        j = note.to_json()
        row = pl.DataFrame([{
            "rule": note.rule, "state": note.state, "key": json.dumps(note.key, default=str),
            "at": note.at, "since": note.since, "value": note.value, "severity": note.severity,
            "labels": json.dumps(note.labels), "summary": note.summary, "repeat": note.repeat,
            "flow": note.flow, "at_iso": j["at_iso"],
        }], schema={"rule": pl.String, "state": pl.String, "key": pl.String, "at": pl.Int64,
                    "since": pl.Int64, "value": pl.Float64, "severity": pl.String,
                    "labels": pl.String, "summary": pl.String, "repeat": pl.Boolean,
                    "flow": pl.String, "at_iso": pl.String})
        with tidal.log.open(self.log_dir) as log:
            log.create_topic(self.topic_name, exist_ok=True).append_batch(row, timestamp="at")


class LogChannel(Channel):
    """Write each notification to Python logging (``tidal.alerts``): firing at WARNING
    (ERROR for severity ``critical``), resolved at INFO."""

    def __init__(self, logger_name: str = "tidal.alerts", **delivery: Any) -> None:
        super().__init__(f"log:{logger_name}", **delivery)
        self.logger = logging.getLogger(logger_name)

    def send(self, note: Notification) -> None:
        level = logging.INFO
        if note.state == "firing":
            level = logging.ERROR if note.severity == "critical" else logging.WARNING
        value = "" if note.value is None else f" value={note.value:g}"
        self.logger.log(level, "%s%s at %s", note.title(), value, format_ms(note.at))


def _slack_escape(text: str) -> str:
    # Slack's message formatting treats &, < and > as control characters
    return text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")


# -- constructors -------------------------------------------------------------------------------
def webhook(url: str, *, headers: dict[str, str] | None = None, timeout: float = 10.0,
            retries: int = 5, backoff: Duration = "500ms") -> Webhook:
    """POST notifications as JSON to ``url`` (with extra ``headers``, e.g. a token)."""
    return Webhook(url, headers=headers, timeout=timeout, retries=retries, backoff=backoff)


def slack(url: str, *, timeout: float = 10.0, retries: int = 5,
          backoff: Duration = "500ms") -> Slack:
    """POST ``{"text": ...}`` to a Slack-compatible incoming webhook ``url``."""
    return Slack(url, timeout=timeout, retries=retries, backoff=backoff)


def email(host: str, port: int = 25, *, sender: str, to: str | list[str],
          starttls: bool = False, username: str | None = None, password: str | None = None,
          retries: int = 5, backoff: Duration = "500ms") -> Email:
    """Email notifications through the SMTP server ``host:port`` (optionally STARTTLS and
    login) from ``sender`` to ``to``."""
    return Email(host, port, sender=sender, to=to, starttls=starttls, username=username,
                 password=password, retries=retries, backoff=backoff)


def topic(name: str, *, log_dir: str | None = None) -> Topic:
    """Append notifications to the topic ``name`` of the embedded log."""
    return Topic(name, log_dir=log_dir)


def log(logger_name: str = "tidal.alerts") -> LogChannel:
    """Write notifications to Python logging."""
    return LogChannel(logger_name)
