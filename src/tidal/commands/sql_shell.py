"""``tidal sql`` on a terminal: an interactive shell like Flink's SQL client.

Statements end with ``;`` and may span lines. DDL, ``SET``, ``SHOW``, ``DESCRIBE`` and
``EXPLAIN`` print their result at once; a ``SELECT`` runs its own flow in a background
thread and shows its result as a live table until its input ends or Ctrl-C cancels it. The
result mode is Flink's setting ``sql-client.execution.result-mode``:

- ``table``: the current rows. An updating result (a GROUP BY without a window) is applied
  by its key, so each key shows its latest row; an append result shows its latest rows.
- ``changelog``: every change with an ``op`` column: ``+I`` insert, ``-U``/``+U`` the old
  and new row of an update, ``-D`` a delete.
- ``tableau``: the changes printed as they arrive, without redrawing.

History is kept in ``~/.tidal_sql_history`` and Tab completes keywords, tables, columns and
functions, both through the standard library's ``readline`` (the shell works without it).
"""

from __future__ import annotations

import contextlib
import queue
import re
import threading
import time
from collections import deque
from collections.abc import Callable, Iterable, Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Any

import polars as pl
from rich.console import Console, Group
from rich.markup import escape
from rich.table import Table
from rich.text import Text

from tidal.connectors.base import Sink

if TYPE_CHECKING:
    from sqlglot import exp

    from tidal.api.flow import Flow
    from tidal.sql.session import Result, Session

__all__ = ["Completer", "ResultView", "Shell", "complete_statement", "run_shell"]

HISTORY_FILE = "~/.tidal_sql_history"
RESULT_MODE = "sql-client.execution.result-mode"
MAX_ROWS = "sql-client.execution.max-table-result.rows"
MODES = ("table", "changelog", "tableau")
DEFAULT_MAX_ROWS = 10_000

PROMPT, MORE = "tidal> ", "     > "

HELP = """\
Statements end with ';' and may span lines.
  CREATE TABLE / VIEW ..., DROP ..., SHOW TABLES, DESCRIBE t, EXPLAIN query
  SELECT ...                 a live result; Ctrl-C cancels it
  INSERT INTO t SELECT ...   runs until its input ends; Ctrl-C cancels it
  SET 'key' = 'value';       e.g. SET 'sql-client.execution.result-mode' = 'changelog';
                             (table | changelog | tableau)
  SET;  RESET;  RESET 'key'; list, clear or remove settings
  HELP;  CLEAR;  QUIT; (or EXIT; or Ctrl-D)
Tab completes keywords, tables, columns and functions; up/down walk the history.
See docs/sql.md."""

KEYWORDS = """SELECT FROM WHERE GROUP BY ORDER HAVING LIMIT AS AND OR NOT IN IS NULL LIKE BETWEEN
DISTINCT CASE WHEN THEN ELSE END CAST TRY_CAST INTERVAL SECOND MINUTE HOUR DAY MILLISECOND
INSERT INTO CREATE TEMPORARY TABLE VIEW MATERIALIZED IF EXISTS DROP SHOW TABLES VIEWS
DESCRIBE EXPLAIN SET RESET WITH WATERMARK FOR PRIMARY KEY ENFORCED JOIN LEFT RIGHT INNER FULL
OUTER CROSS ON UNION ALL OVER PARTITION ROWS RANGE PRECEDING CURRENT ROW UNBOUNDED FILTER
DESCRIPTOR SYSTEM_TIME OF EXECUTE STATEMENT BEGIN TRUE FALSE HELP CLEAR QUIT EXIT
BIGINT INT INTEGER SMALLINT TINYINT STRING VARCHAR CHAR DOUBLE FLOAT DECIMAL BOOLEAN DATE
TIMESTAMP TIMESTAMP_LTZ""".split()

SETTINGS = [RESULT_MODE, MAX_ROWS, "table.exec.state.ttl"]


# -- reading statements -------------------------------------------------------------------------
_STATEMENT_SET = re.compile(r"\bEXECUTE\s+STATEMENT\s+SET\s+BEGIN\b", re.IGNORECASE)
_SET_END = re.compile(r"\bEND\s*;\s*$", re.IGNORECASE)


def complete_statement(text: str) -> bool:
    """Whether ``text`` ends a statement: its last token is a ``;`` outside strings and
    comments (and an ``EXECUTE STATEMENT SET BEGIN`` has its ``END;``)."""
    from sqlglot.errors import TokenError
    from sqlglot.tokens import TokenType

    from tidal.sql.dialect import Flink

    try:
        tokens = Flink().tokenize(text)
    except TokenError:
        return False  # an open string or comment: more lines follow
    if not tokens or tokens[-1].token_type != TokenType.SEMICOLON:
        return False
    return not _STATEMENT_SET.search(text) or bool(_SET_END.search(text))


def _one_line(text: str) -> str:
    """A statement as one history entry (history files hold one line per entry)."""
    lines = [_without_comment(ln).strip() for ln in text.splitlines()]
    return " ".join(ln for ln in lines if ln)


def _without_comment(line: str) -> str:
    """``line`` without a ``--`` comment (one inside quotes is text, not a comment)."""
    quote = None
    for i, ch in enumerate(line):
        if quote is not None:
            quote = None if ch == quote else quote
        elif ch in "'`\"":
            quote = ch
        elif line.startswith("--", i):
            return line[:i]
    return line


# -- completion ---------------------------------------------------------------------------------
def function_names(session: Session) -> list[str]:
    """The SQL functions the planner translates, the aggregates and window functions, and the
    session's Python functions."""
    from sqlglot import exp as sqlexp

    from tidal.sql.expressions import Translator

    methods = {m[1:] for m in dir(Translator) if m.startswith("_") and not m.startswith("__")}
    names = {n for cls in sqlexp.ALL_FUNCTIONS if cls.__name__.lower() in methods
             for n in cls.sql_names()}
    names |= {m[3:].upper() for m in methods if m.startswith("fn_")}
    names |= {"COUNT", "SUM", "MIN", "MAX", "AVG", "ROW_NUMBER", "TUMBLE", "HOP", "CUMULATE",
              "SESSION", "PROCTIME"}
    names |= {f.upper() for f in session.functions}
    return sorted(names - {"AND", "OR", "CASE"})


class Completer:
    """Tab completion for readline: keywords, table names, column names and functions of a
    session, matched case-insensitively (keywords follow the case typed).

    >>> from tidal.sql import Session
    >>> Completer(Session()).matches("sel")
    ['select']
    """

    def __init__(self, session: Session) -> None:
        self.session = session
        self._view_columns: dict[str, list[str]] = {}
        self._found: list[str] = []

    def columns(self) -> list[str]:
        """The columns of every table and view of the catalog."""
        from tidal.sql.catalog import Registered, TableDef

        out: list[str] = []
        for name, entry in self.session.catalog.entries.items():
            if isinstance(entry, TableDef):
                out += [*entry.columns, *entry.computed]
                out += [entry.proctime] if entry.proctime else []
            elif isinstance(entry, Registered):
                out += list(entry.stream.node.schema)
            else:
                out += self._view(name)
        return out

    def _view(self, name: str) -> list[str]:
        if name not in self._view_columns:
            from tidal.api.flow import Flow
            from tidal.sql.planner import Planner

            try:
                rel = Planner(self.session, Flow("complete")).table(name, None)
                self._view_columns[name] = [f.name for f in rel.fields]
            except Exception:  # noqa: BLE001 - a broken view just completes nothing
                self._view_columns[name] = []
        return self._view_columns[name]

    def matches(self, text: str, before: str = "") -> list[str]:
        """Every completion of the word ``text``; ``before`` is the line before it (inside a
        quoted string, the setting names of SET, or a result mode, complete)."""
        if before.count("'") % 2:  # inside '...': a setting's name or value
            quote = before.rfind("'")
            typed = before[quote:] + text
            if re.search(r"result-mode'\s*=\s*$", before[:quote], re.IGNORECASE):
                values = [f"'{m}'" for m in MODES]
            elif re.fullmatch(r"\s*(SET|RESET)\s*", before[:quote], re.IGNORECASE):
                values = [f"'{k}'" for k in SETTINGS]
            else:
                values = []
            # readline replaces only ``text`` (a '.' ends a word): hand back that part, and
            # leave the closing quote to readline when the word opens right after the quote
            cut = -1 if before.endswith("'") else None
            return [v[len(typed) - len(text):cut] for v in values if v.startswith(typed)]
        low = text.lower()
        lower_case = text.islower()
        words = [w.lower() if lower_case else w for w in KEYWORDS]
        words += [f.lower() if lower_case else f for f in function_names(self.session)]
        names = [*self.session.catalog.names(), *self.columns()]
        found = [w for w in words if w.startswith(text) or (not lower_case and w.lower().startswith(low))]
        found += [n for n in names if n.lower().startswith(low)]
        return sorted(dict.fromkeys(found))

    def __call__(self, text: str, state: int) -> str | None:
        """readline's completer protocol: the ``state``-th completion of ``text``."""
        if state == 0:
            self._view_columns.clear()
            try:
                import readline

                before = readline.get_line_buffer()[:readline.get_begidx()]
            except ImportError:
                before = ""
            try:
                self._found = self.matches(text, before)
            except Exception:  # noqa: BLE001 - an exception here would silently kill completion
                self._found = []
        return self._found[state] if state < len(self._found) else None

class _LineEditor:
    """readline when the standard library has it (history and completion), else plain input."""

    def __init__(self, session: Session, history: Path) -> None:
        self.history = history
        try:
            import readline
        except ImportError:  # e.g. Windows without pyreadline: a plain prompt still works
            self.rl: Any = None
            return
        self.rl = readline
        readline.set_completer(Completer(session))
        readline.set_completer_delims(" \t\n()[],;=.<>+-*/%|`\"'")
        if "libedit" in (readline.__doc__ or ""):
            readline.parse_and_bind("bind ^I rl_complete")
        else:
            readline.parse_and_bind("tab: complete")
        readline.set_auto_history(False)  # whole statements go in, not their lines
        readline.set_history_length(1000)
        with contextlib.suppress(OSError):
            readline.read_history_file(history)

    def read(self, prompt: str) -> str:
        return input(prompt)

    def remember(self, statement: str) -> None:
        if self.rl is None or not statement:
            return
        n = self.rl.get_current_history_length()
        if n == 0 or self.rl.get_history_item(n) != statement:
            self.rl.add_history(statement)
        with contextlib.suppress(OSError):
            self.rl.write_history_file(self.history)


# -- results --------------------------------------------------------------------------------------
def _delete_column(columns: Iterable[str]) -> str | None:
    """The reserved boolean column that marks a row of an updating result as a delete, when
    the planner defines one and the stream carries it."""
    from tidal.operators.changelog import DELETE

    return DELETE if DELETE in columns else None


def _cell(v: Any) -> str:
    return "<NULL>" if v is None else str(v)


class ResultView:
    """The rows of a running query as the shell shows them: applied by key in table mode,
    as a changelog (``op`` column) in changelog and tableau modes.

    >>> import polars as pl
    >>> v = ResultView(["k", "n"], "table", updating=True, key=["k"])
    >>> _ = v.apply(pl.DataFrame({"k": [1, 2], "n": [1, 1]}))
    >>> v.apply(pl.DataFrame({"k": [1], "n": [2]}))
    [('-U', (1, 1)), ('+U', (1, 2))]
    >>> v.rows()
    [(1, 2), (2, 1)]
    """

    def __init__(self, columns: list[str], mode: str, *, updating: bool = False,
                 key: list[str] | None = None, max_rows: int = DEFAULT_MAX_ROWS) -> None:
        self.delete = _delete_column(columns) if updating else None
        self.columns = [c for c in columns if c != self.delete]
        self.mode, self.updating = mode, updating
        self.key_at = [self.columns.index(k) for k in key or [] if k in self.columns]
        self.keyed = updating and bool(key) and len(self.key_at) == len(key or [])
        self.current: dict[tuple[Any, ...], tuple[Any, ...]] = {}
        self.latest: deque[tuple[Any, ...]] = deque(maxlen=max_rows)
        self.changes: deque[tuple[str, tuple[Any, ...]]] = deque(maxlen=max_rows)
        self.received = 0

    def apply(self, batch: pl.DataFrame) -> list[tuple[str, tuple[Any, ...]]]:
        """Take one output batch; returns its changes as ``(op, row)``."""
        self.received += batch.height
        deleted = batch[self.delete].fill_null(False).to_list() if self.delete else None
        rows = batch.select(self.columns)
        changes: list[tuple[str, tuple[Any, ...]]] = []
        if not self.updating:
            tail = rows.tail(self.latest.maxlen or rows.height).rows()
            self.latest.extend(tail)
            changes = [("+I", r) for r in tail]
        elif not self.keyed:  # an updating result whose key was not selected: upserts as they come
            tail = rows.tail(self.latest.maxlen or rows.height).rows()
            self.latest.extend(tail)
            changes = [("+U", r) for r in tail]
        else:
            for i, row in enumerate(rows.iter_rows()):
                k = tuple(row[j] for j in self.key_at)
                old = self.current.get(k)
                if deleted is not None and deleted[i]:
                    if old is not None:
                        del self.current[k]
                        changes.append(("-D", old))
                elif old is None:
                    self.current[k] = row
                    changes.append(("+I", row))
                elif old != row:
                    self.current[k] = row
                    changes += [("-U", old), ("+U", row)]
        self.changes.extend(changes)
        return changes

    def rows(self) -> list[tuple[Any, ...]]:
        """The rows table mode shows: current rows by key, else the latest rows."""
        return list(self.current.values()) if self.keyed else list(self.latest)

    def render(self, height: int, status: str) -> Group:
        """What fits in ``height`` lines (the latest rows or changes), then ``status``."""
        changelog = self.mode != "table"
        table = Table(*(["op"] if changelog else []), *self.columns, show_edge=False,
                      header_style="bold")
        fit = max(height - 5, 3)
        shown = list(self.changes)[-fit:] if changelog else self.rows()[-fit:]
        for item in shown:
            op, row = item if changelog else ("", item)
            table.add_row(*([op] if changelog else []), *(escape(_cell(v)) for v in row))
        return Group(table, Text(status, style="dim"))

    def summary(self) -> str:
        """How many rows the result holds and how many changes arrived."""
        if self.mode == "table":
            n = len(self.rows())
            what = "row" if n == 1 else "rows"
            extra = "" if self.keyed or len(self.latest) < (self.latest.maxlen or 0) else \
                f" (the latest {n})"
            kind = "updating" if self.updating else "append"
            return f"{n} {what}{extra} · {self.received} received · {kind} result"
        return f"{self.received} received · {len(self.changes)} changes kept"


class _Feed(Sink):
    """Hands a query's batches to the shell's thread; gives up when the query is stopped."""

    name = "shell"

    def __init__(self, out: queue.Queue[pl.DataFrame], stop: threading.Event) -> None:
        self.out, self.stop = out, stop

    def write(self, batch: pl.DataFrame) -> None:
        while not self.stop.is_set():
            try:
                self.out.put(batch, timeout=0.1)
                return
            except queue.Full:
                continue


class _Run:
    """A flow running in a background thread until its input ends or ``stop()``."""

    def __init__(self, flow: Flow, max_batch_rows: int) -> None:
        self.stop_event = threading.Event()
        self.error: BaseException | None = None

        def target() -> None:
            try:
                flow.run(quiet=True, stop=self.stop_event, max_batch_rows=max_batch_rows)
            except BaseException as exc:  # noqa: BLE001 - reported by the shell's thread
                self.error = exc

        self.thread = threading.Thread(target=target, name=f"tidal-sql-{flow.name}", daemon=True)

    def start(self) -> _Run:
        self.thread.start()
        return self

    @property
    def done(self) -> bool:
        return not self.thread.is_alive()

    def stop(self) -> None:
        """Stop the flow (its sources close, open windows are not fired) and wait for it."""
        self.stop_event.set()
        while self.thread.is_alive():
            try:
                self.thread.join()
            except KeyboardInterrupt:  # a second Ctrl-C: the flow is stopping already
                continue


@contextlib.contextmanager
def _quiet_keyboard(fd: int | None) -> Iterator[None]:
    """While a result is live, keys typed do not echo over it (Ctrl-C still interrupts)."""
    try:
        import termios
    except ImportError:
        yield
        return
    try:
        saved = termios.tcgetattr(fd) if fd is not None else None
    except termios.error:
        saved = None
    if saved is None:
        yield
        return
    quiet = list(saved)
    quiet[3] &= ~(termios.ECHO | termios.ICANON)
    try:
        termios.tcsetattr(fd, termios.TCSANOW, quiet)
        yield
    finally:
        termios.tcsetattr(fd, termios.TCSANOW, saved)
        termios.tcflush(fd, termios.TCIFLUSH)  # what was typed meanwhile is not a statement


# -- the shell -----------------------------------------------------------------------------------
class Shell:
    """Reads statements and runs them against one SQL session, a flow per query."""

    def __init__(self, console: Console | None = None, *, max_batch_rows: int = 100_000,
                 history: Path | None = None, read: Callable[[str], str] | None = None,
                 stdin_fd: int | None = None) -> None:
        from tidal.sql import Session

        self.console = console or Console()
        self.session = Session()
        self.max_batch_rows = max_batch_rows
        self.editor = _LineEditor(self.session, history or Path(HISTORY_FILE).expanduser())
        self.read = read or self.editor.read
        self.stdin_fd = stdin_fd

    @property
    def mode(self) -> str:
        return self.session.settings.get(RESULT_MODE, "table").lower()

    def loop(self) -> None:
        """Read and run statements until ``QUIT;``, ``EXIT;`` or end of input (Ctrl-D)."""
        self.console.print("tidal SQL shell: statements end with ';'. HELP; for help, "
                           "QUIT; or Ctrl-D to leave.", highlight=False)
        lines: list[str] = []
        while True:
            try:
                if self._next(lines) == "quit":
                    return
            except EOFError:
                self.console.print()
                return
            except KeyboardInterrupt:  # Ctrl-C at a prompt drops the statement being typed
                self.console.print()
                lines.clear()

    def _next(self, lines: list[str]) -> str | None:
        """Read a line into ``lines``; run the statement once it is complete."""
        line = self.read(MORE if lines else PROMPT)
        if not lines and line.strip().rstrip(";").strip().upper() in ("QUIT", "EXIT"):
            return "quit"
        lines.append(line)
        text = "\n".join(lines)
        if not text.strip():
            lines.clear()
            return None
        if not complete_statement(text):
            return None
        lines.clear()
        self.editor.remember(_one_line(text))
        return self.run(text)

    def run(self, text: str) -> str | None:
        """Run the statements of ``text`` (or a command of the shell: HELP, SET, ...);
        ``"quit"`` when it is ``QUIT;`` or ``EXIT;``."""
        from tidal.errors import TidalError
        from tidal.sql import parse

        word = text.strip().rstrip(";").strip()
        upper = word.upper()
        if upper in ("QUIT", "EXIT"):
            return "quit"
        if upper == "HELP":
            self.console.print(HELP, highlight=False, markup=False)
            return None
        if upper == "CLEAR":
            self.console.clear()
            return None
        if upper == "SET":
            for k, v in sorted(self.session.settings.items()):
                self.console.print(f"'{k}' = '{v}'", highlight=False, markup=False)
            return None
        reset = re.fullmatch(r"RESET(?:\s+'([^']*)')?", word, re.IGNORECASE)
        if reset:
            if reset.group(1) is None:
                self.session.settings.clear()
            else:
                self.session.settings.pop(reset.group(1), None)
            self._info("Session properties have been reset.")
            return None
        try:
            statements = parse(text)
        except TidalError as exc:
            self._error(exc)
            return None
        for node in statements:
            try:
                self.statement(node)
            except TidalError as exc:
                self._error(exc)
                return None
            except Exception as exc:  # noqa: BLE001 - the shell outlives a failed query
                self._error(f"{type(exc).__name__}: {exc}")
                return None
        return None

    def statement(self, node: exp.Expr) -> None:
        """Run one parsed statement: print its text, show its rows or run its INSERT."""
        from tidal.api.flow import Flow
        from tidal.sql.errors import SqlError

        flow = Flow("sql")
        before = dict(self.session.settings)
        result = self.session.statement(flow, node)
        if result.kind == "select" and result.stream is not None:
            self.select(flow, result)
        elif result.kind == "insert":
            self.insert(flow)
        elif result.text is not None:
            self.console.print(result.text, highlight=False, markup=False, soft_wrap=True)
        elif self.session.settings != before:
            problem = self._check_settings()
            if problem:
                self.session.settings = before
                raise SqlError(problem)
            self._info("Session property has been set.")
        else:
            self._info("Execute statement succeeded.")

    def _check_settings(self) -> str | None:
        if self.mode not in MODES:
            return (f"{RESULT_MODE} must be 'table', 'changelog' or 'tableau', not "
                    f"{self.session.settings[RESULT_MODE]!r}")
        rows = self.session.settings.get(MAX_ROWS)
        if rows is not None and not (rows.isdigit() and int(rows) > 0):
            return f"{MAX_ROWS} must be a positive number of rows, not {rows!r}"
        return None

    def select(self, flow: Flow, result: Result) -> None:
        """Show a query's result live until its input ends or Ctrl-C."""
        assert result.stream is not None
        batches: queue.Queue[pl.DataFrame] = queue.Queue(maxsize=64)
        columns = list(result.stream.node.schema)
        view = ResultView(columns, self.mode, updating=result.updating, key=result.key,
                          max_rows=int(self.session.settings.get(MAX_ROWS, DEFAULT_MAX_ROWS)))
        run = _Run(flow, self.max_batch_rows)
        result.stream.sink(_Feed(batches, run.stop_event), name="shell")
        show = self._tableau if self.mode == "tableau" else self._live
        if self._watch(run.start(), lambda: show(view, batches, run)):
            self._info(f"Query cancelled. {view.summary()}.")
        else:
            self._info(f"Query finished: its input ended. {view.summary()}.")

    def _drain(self, view: ResultView, batches: queue.Queue[pl.DataFrame], run: _Run,
               wait: float) -> tuple[list[tuple[str, tuple[Any, ...]]], bool]:
        """Apply the batches that arrive within ``wait`` seconds; whether the query ended."""
        changes: list[tuple[str, tuple[Any, ...]]] = []
        deadline = time.monotonic() + wait
        while True:
            ended = run.done  # read before draining: no batch can follow a finished run
            try:
                changes += view.apply(batches.get(timeout=max(deadline - time.monotonic(), 0.0)))
                continue
            except queue.Empty:
                pass
            if ended or time.monotonic() >= deadline:
                return changes, ended and batches.empty()

    def _live(self, view: ResultView, batches: queue.Queue[pl.DataFrame], run: _Run) -> None:
        from rich.live import Live

        def frame(note: str) -> Group:
            return view.render(self.console.size.height, f"{view.summary()} · {note}")

        with Live(frame("running, Ctrl-C to stop"), console=self.console, auto_refresh=False,
                  transient=False) as live:
            ended = False
            while not ended:
                _, ended = self._drain(view, batches, run, 0.25)
                live.update(frame("done" if ended else "running, Ctrl-C to stop"), refresh=True)
        if not self.console.is_terminal:
            self.console.line()  # Live ends its last frame without one off a terminal

    def _tableau(self, view: ResultView, batches: queue.Queue[pl.DataFrame], run: _Run) -> None:
        widths = [max(len(c), 12) for c in view.columns]

        def line(op: str, cells: Iterable[str]) -> str:
            fitted = [c if len(c) <= w else c[:w - 1] + "…" for c, w in zip(cells, widths, strict=True)]
            return "| " + " | ".join([f"{op:<2}", *(f"{c:>{w}}" for c, w in zip(fitted, widths, strict=True))]) + " |"

        rule = "+" + "+".join("-" * (w + 2) for w in [2, *widths]) + "+"
        self.console.print(rule, line("op", view.columns), rule, sep="\n", highlight=False,
                           markup=False)
        ended = False
        try:
            while not ended:
                changes, ended = self._drain(view, batches, run, 0.25)
                for op, row in changes:
                    self.console.print(line(op, map(_cell, row)), highlight=False, markup=False)
        finally:
            self.console.print(rule, highlight=False, markup=False)

    def insert(self, flow: Flow) -> None:
        """Run an ``INSERT INTO``'s flow until its input ends or Ctrl-C."""
        run = _Run(flow, self.max_batch_rows).start()
        sink = flow.nodes[-1].name if flow.nodes else "the table"

        def wait() -> None:
            with self.console.status(f"INSERT INTO {sink} running, Ctrl-C to stop"):
                while not run.done:
                    run.thread.join(0.25)

        cancelled = self._watch(run, wait)
        self._info(f"INSERT INTO {sink} {'cancelled' if cancelled else 'finished: its input ended'}.")

    def _watch(self, run: _Run, show: Callable[[], None]) -> bool:
        """Call ``show`` while ``run`` goes on, then stop the run; whether Ctrl-C cancelled it
        (a failure of the run is raised)."""
        cancelled = False
        with _quiet_keyboard(self.stdin_fd):
            try:
                show()
            except KeyboardInterrupt:
                cancelled = True
            finally:
                run.stop()
        if run.error is not None and not cancelled:
            raise run.error
        return cancelled

    def _info(self, text: str) -> None:
        self.console.print(f"[bold blue]\\[INFO][/] {escape(text)}", highlight=False,
                           soft_wrap=True)

    def _error(self, exc: BaseException | str) -> None:
        self.console.print(f"[bold red]\\[ERROR][/] {escape(str(exc))}", highlight=False,
                           soft_wrap=True)


def run_shell(max_batch_rows: int = 100_000) -> None:
    """Open the interactive shell on this terminal (``tidal sql`` with no script)."""
    import sys

    fd = sys.stdin.fileno() if sys.stdin.isatty() else None
    Shell(max_batch_rows=max_batch_rows, stdin_fd=fd).loop()
