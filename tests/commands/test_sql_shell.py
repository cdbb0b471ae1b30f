"""The interactive ``tidal sql`` shell, driven through a pseudo-terminal as a person would, and
``tidal sql`` reading a script from stdin."""

from __future__ import annotations

import fcntl
import json
import os
import pty
import re
import select
import struct
import subprocess
import sys
import termios
import time
from pathlib import Path

import polars as pl
import pytest

import tidal as td
import tidal.log
from tidal.commands.sql_shell import Completer, ResultView, complete_statement
from tidal.operators.changelog import DELETE, apply_changelog
from tidal.sql import Session

ANSI = re.compile(r"\x1b\[[0-9;?]*[A-Za-z]|\x1b[=>]|\x07")

DATAGEN = """CREATE TABLE t (id BIGINT, k INT)
  WITH ('connector' = 'datagen', 'number-of-rows' = '1000', 'fields.id.kind' = 'sequence',
        'fields.id.start' = '1', 'fields.id.end' = '1000', 'fields.k.min' = '1',
        'fields.k.max' = '3');"""
GROUPED = "SELECT k, COUNT(*) AS n, SUM(id) AS s FROM t GROUP BY k;"


class Terminal:
    """``tidal sql`` on a pseudo-terminal: type into it, wait for what it shows."""

    def __init__(self, home: Path, *args: str, cwd: Path | None = None) -> None:
        self.pid, self.fd = pty.fork()
        if self.pid == 0:  # the child: the shell, with the pty as its controlling terminal
            os.environ.update(HOME=str(home), TERM="xterm", COLUMNS="100", LINES="40")
            os.environ.pop("NO_COLOR", None)
            if cwd is not None:
                os.chdir(cwd)
            os.execv(sys.executable, [sys.executable, "-m", "tidal.cli", "sql", *args])
        fcntl.ioctl(self.fd, termios.TIOCSWINSZ, struct.pack("HHHH", 40, 100, 0, 0))
        self.raw = b""
        self.seen = 0  # what expect() has matched so far
        self.status: int | None = None

    @property
    def text(self) -> str:
        return ANSI.sub("", self.raw.decode(errors="replace")).replace("\r", "")

    def _read(self, timeout: float) -> bool:
        ready, _, _ = select.select([self.fd], [], [], timeout)
        if not ready:
            return True
        try:
            chunk = os.read(self.fd, 65536)
        except OSError:  # the shell exited
            return False
        self.raw += chunk
        return bool(chunk)

    def type(self, keys: str) -> None:
        os.write(self.fd, keys.encode())

    def at_prompt(self, keys: str) -> None:
        """Wait for the next ``tidal>`` prompt, then type ``keys``."""
        self.expect(r"tidal> ")
        self.type(keys)

    def interrupt_at_prompt(self, timeout: float = 60) -> None:
        """Press Ctrl-C at a prompt and wait for the next ``tidal>`` prompt. readline can miss
        a SIGINT that lands just before it waits for a key (CPython's input() loop), as a
        person would see: they press Ctrl-C again, and so does this."""
        deadline = time.monotonic() + timeout
        while True:
            self.type("\x03")
            try:
                self.expect(r"tidal> ", timeout=1)
                return
            except AssertionError:
                if time.monotonic() > deadline:
                    raise

    def expect(self, pattern: str, timeout: float = 60) -> re.Match[str]:
        """Wait until the screen shows ``pattern`` (a regex) after what was matched before."""
        deadline = time.monotonic() + timeout
        while True:
            m = re.compile(pattern, re.MULTILINE).search(self.text, self.seen)
            if m is not None:
                self.seen = m.end()
                return m
            if time.monotonic() > deadline or not self._read(0.2):
                raise AssertionError(f"the shell never showed {pattern!r}; it showed:\n"
                                     f"{self.text[self.seen:][-3000:]}")

    def wait(self, timeout: float = 60) -> int:
        """Wait for the shell to exit; its exit status."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            self._read(0.1)
            pid, status = os.waitpid(self.pid, os.WNOHANG)
            if pid:
                self.status = os.waitstatus_to_exitcode(status)
                return self.status
        raise AssertionError(f"the shell did not exit; it showed:\n{self.text[-3000:]}")

    def close(self) -> None:
        if self.status is None:
            try:
                os.kill(self.pid, 9)
                os.waitpid(self.pid, 0)
            except (ProcessLookupError, ChildProcessError):
                pass
        os.close(self.fd)


@pytest.fixture
def home(tmp_path: Path) -> Path:
    (tmp_path / "home").mkdir()
    return tmp_path / "home"


def final_rows(script: str, query: str, key: list[str]) -> dict[tuple, tuple]:
    """The query's result computed without the shell: its last upsert per key."""
    session, flow = Session(), td.Flow("expected")
    session.execute(flow, script)
    out = td.sinks.memory()
    session.execute(flow, query)[0].stream.sink(out)  # type: ignore[union-attr]
    flow.run(quiet=True, max_batch_rows=100)
    frame = out.frame()
    return {tuple(r[c] for c in key): tuple(r.values())
            for r in frame.iter_rows(named=True)}


def table_rows(screen: str) -> list[list[str]]:
    """The rows of the last table drawn in ``screen`` (cells split on the column rule)."""
    block = screen.rsplit("━", 1)[-1] if "━" in screen else screen.rsplit("─", 1)[-1]
    rows = []
    for line in block.splitlines():
        if "│" in line:
            rows.append([c.strip() for c in line.split("│")])
    return rows


def test_shell_runs_statements_and_shows_updating_results_as_table_and_changelog(home: Path) -> None:
    term = Terminal(home, "--max-batch-rows", "100")
    try:
        first, rest = DATAGEN.split("\n", 1)
        term.at_prompt(first + "\n")
        term.expect(r"^     > ")  # the statement goes on: the continuation prompt
        term.type(rest.replace("\n", " ") + "\n")
        term.expect(r"\[INFO\] Execute statement succeeded")

        term.at_prompt(GROUPED + "\n")
        done = term.expect(r"\[INFO\] Query finished: its input ended\. 3 rows")
        shown = {(int(r[0]),): tuple(int(c) for c in r) for r in
                 table_rows(term.text[:done.start()])}
        assert shown == final_rows(DATAGEN, GROUPED, ["k"])
        assert sum(v[1] for v in shown.values()) == 1000
        assert sum(v[2] for v in shown.values()) == 500500

        term.at_prompt("SET 'sql-client.execution.result-mode' = 'changelog';\n")
        term.expect(r"\[INFO\] Session property has been set")
        term.at_prompt(GROUPED + "\n")
        done = term.expect(r"\[INFO\] Query finished")
        changes = [r for r in table_rows(term.text[:done.start()]) if r and r[0] in
                   ("+I", "-U", "+U", "-D")]
        assert {"-U", "+U"} <= {r[0] for r in changes}, changes  # the latest changes fit
        latest = {}
        for op, *row in changes:
            if op in ("+I", "+U"):
                latest[(int(row[0]),)] = tuple(int(c) for c in row)
        assert latest == final_rows(DATAGEN, GROUPED, ["k"])

        term.at_prompt("SET 'sql-client.execution.result-mode' = 'tableau';\n")
        term.expect(r"\[INFO\] Session property has been set")
        term.at_prompt(GROUPED + "\n")
        start = term.expect(r"\| op +\| +k \| +n \| +s \|").end()
        done = term.expect(r"\[INFO\] Query finished")
        changes = [[c.strip() for c in line.strip("|").split("|")]
                   for line in term.text[start:done.start()].splitlines()
                   if re.match(r"\| [+-][IUD] ", line)]
        current: dict[tuple, tuple] = {}
        for op, *cells in changes:  # the whole changelog, applied, is the table
            row = tuple(int(c) for c in cells)
            if op == "+I":
                assert row[:1] not in current
            elif op == "-U":
                assert current[row[:1]] == row  # -U carries the row being replaced
            current[row[:1]] = row
        assert [c[0] for c in changes].count("+I") == 3
        assert current == final_rows(DATAGEN, GROUPED, ["k"])

        term.at_prompt("SET 'sql-client.execution.result-mode' = 'board';\n")
        term.expect(r"\[ERROR\] SQL error: sql-client.execution.result-mode must be 'table', "
                    r"'changelog' or 'tableau', not 'board'")
        term.at_prompt("SELECT nope FROM t;\n")
        term.expect(r"\[ERROR\] SQL error at line 1, column 8: unknown column 'nope'")
        term.at_prompt("QUIT;\n")
        assert term.wait() == 0
    finally:
        term.close()


def test_live_result_follows_its_input_and_ctrl_c_cancels_the_query(home: Path,
                                                                      tmp_path: Path) -> None:
    log_dir = tmp_path / "log"

    def produce(users: list[str]) -> None:
        with tidal.log.open(log_dir) as log:
            log.create_topic("clicks", partitions=1, exist_ok=True).append_batch(
                pl.DataFrame({"user": users, "n": [1] * len(users)}), key="user")

    produce(["ann", "bob", "ann"])
    term = Terminal(home)
    try:
        term.at_prompt(f"CREATE TABLE clicks (`user` STRING, n BIGINT) WITH ('connector' = 'log', "
                  f"'topic' = 'clicks', 'log-dir' = '{log_dir}');\n")
        term.expect(r"\[INFO\] Execute statement succeeded")
        term.at_prompt("SELECT `user`, SUM(n) AS total FROM clicks GROUP BY `user`;\n")
        term.expect(r"ann\s*│\s*2\b")
        produce(["ann", "ann", "ann", "cid"])  # while the query runs, its table updates
        term.expect(r"ann\s*│\s*5\b")
        term.expect(r"cid\s*│\s*1\b")
        term.expect(r"running, Ctrl-C to stop")
        term.type("\x03")
        term.expect(r"\[INFO\] Query cancelled\. 3 rows")
        term.at_prompt("SHOW TABLES;\n")  # the shell goes on after the cancelled query
        term.expect(r"^clicks$")
        term.at_prompt("SELECT `user`\n")
        term.expect(r"^     > ")
        term.interrupt_at_prompt()  # Ctrl-C at a prompt drops the statement being typed
        term.type("DESCRIBE clicks;\n")
        term.expect(r"^user +STRING")
        term.at_prompt("\x04")  # Ctrl-D leaves; the query's flow is stopped, so the process ends
        assert term.wait() == 0
    finally:
        term.close()


def test_tab_completes_names_and_history_persists_across_sessions(home: Path) -> None:
    ddl = ("CREATE TABLE nexbid (auction BIGINT, channel STRING) "
           "WITH ('connector' = 'nexmark', 'kind' = 'bid', 'events' = '50');")
    term = Terminal(home)
    try:
        term.at_prompt(ddl + "\n")
        term.expect(r"\[INFO\] Execute statement succeeded")
        term.at_prompt("SET 'sql-client.execution.res\t = 'chan\t;\n")
        term.expect(r"\[INFO\] Session property has been set")
        term.at_prompt("SET;\n")
        term.expect(r"'sql-client.execution.result-mode' = 'changelog'")
        term.at_prompt("RESET;\n")
        term.expect(r"\[INFO\] Session properties have been reset")
        term.at_prompt("SELECT auc\t, UPP\t(chan\t) AS ch FROM nex\t;\n")
        term.expect(r"SELECT auction, UPPER\(channel\) AS ch FROM nexbid;")
        term.expect(r"\[INFO\] Query finished: its input ended\. \d+ rows")
        term.at_prompt("QUIT;\n")
        assert term.wait() == 0
    finally:
        term.close()
    history = (home / ".tidal_sql_history").read_text().splitlines()
    assert ddl in history
    assert "SELECT auction, UPPER(channel) AS ch FROM nexbid;" in history

    again = Terminal(home)  # a new session: up-arrow walks the saved statements
    try:
        again.at_prompt("\x1b[A")
        for _ in range(history[::-1].index(ddl)):
            again.type("\x1b[A")
        again.type("\n")
        again.expect(r"\[INFO\] Execute statement succeeded")
        again.at_prompt("DESCRIBE nexbid;\n")
        again.expect(r"auction\s+BIGINT")
        again.at_prompt("\x04")
        assert again.wait() == 0
    finally:
        again.close()


def _tidal_sql(*args: str, stdin: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "tidal.cli", "sql", *args], input=stdin,
                          capture_output=True, text=True, timeout=120, check=False)


def test_piped_script_runs_and_prints_json_lines() -> None:
    result = _tidal_sql(stdin=DATAGEN + "\nSELECT id, k FROM t WHERE id <= 5;\n")
    assert result.returncode == 0, result.stderr
    rows = [json.loads(line) for line in result.stdout.splitlines()]
    assert [r["id"] for r in rows] == [1, 2, 3, 4, 5]
    assert all(1 <= r["k"] <= 3 for r in rows)
    csv = _tidal_sql("--format", "csv", stdin=DATAGEN + "\nSELECT COUNT(*) AS n FROM t "
                     "GROUP BY k;")
    lines = csv.stdout.splitlines()
    assert lines[0] == "op,n"  # an updating result prints its changelog
    assert all(line.split(",")[0] in ("+I", "+U") for line in lines[1:]) and len(lines) > 1


def test_piped_updating_result_prints_flink_ops_with_deletes(tmp_path: Path) -> None:
    levels = tmp_path / "levels.jsonl"
    levels.write_text("".join(json.dumps({"u": f"u{i % 10}", "level": i // 10, "t": i}) + "\n"
                              for i in range(500)))  # each level fills, then empties
    script = f"""CREATE TABLE levels (u STRING, level BIGINT, t BIGINT)
                 WITH ('connector' = 'filesystem', 'path' = '{levels}', 'format' = 'json');
                 SELECT best, COUNT(*) AS users
                 FROM (SELECT u, MAX(level) AS best FROM levels GROUP BY u) GROUP BY best;"""
    rows = [json.loads(line) for line in
            _tidal_sql("--max-batch-rows", "1", stdin=script).stdout.splitlines()]
    table: dict[int, int] = {}
    for r in rows:
        assert r["op"] == ("-D" if r["op"] == "-D" else "+U" if r["best"] in table else "+I")
        if r["op"] == "-D":
            del table[r["best"]]
        else:
            table[r["best"]] = r["users"]
    assert table == {49: 10}
    assert sum(r["op"] == "-D" for r in rows) > 10


def test_piped_script_errors_name_line_and_column() -> None:
    result = _tidal_sql(stdin=DATAGEN + "\nSELECT id,\n  FROM t WHERE;\n")
    assert result.returncode == 1
    assert re.search(r"SQL error at line 6, column \d+", result.stderr), result.stderr


# -- the parts, without a terminal ----------------------------------------------------------------
@pytest.mark.parametrize(("text", "complete"), [
    ("SELECT 1;", True),
    ("SELECT 1", False),
    ("SELECT ';'", False),
    ("SELECT 'a;", False),                      # an open string: more lines follow
    ("SELECT 1 -- done;", False),               # the ; is in a comment
    ("SELECT 1; -- done", True),                # a comment after the ; is not a statement
    ("CREATE TABLE t (a INT)\n WITH ('connector' = 'print');", True),
    ("EXECUTE STATEMENT SET BEGIN\n INSERT INTO a SELECT * FROM b;", False),
    ("EXECUTE STATEMENT SET BEGIN\n INSERT INTO a SELECT * FROM b;\nEND;", True),
])
def test_a_statement_ends_at_its_semicolon(text: str, complete: bool) -> None:
    assert complete_statement(text) is complete


def test_completion_offers_tables_columns_functions_and_keywords() -> None:
    session = Session()
    session.execute(td.Flow("c"), DATAGEN + """
      CREATE VIEW big AS SELECT id AS big_id FROM t WHERE id > 10;""")
    session.register_function("twice", lambda s: s * 2, return_type="BIGINT")
    complete = Completer(session)
    assert complete.matches("bi") == ["big", "big_id", "bigint", "bin"]  # BIN(): a function
    assert complete.matches("BI") == ["BIGINT", "BIN", "big", "big_id"]
    assert "UPPER" in complete.matches("UP") and "upper" in complete.matches("up")
    assert "TWICE" in complete.matches("TW")
    assert "TUMBLE" in complete.matches("TUM")
    assert complete.matches("r", "SET 'sql-client.execution.") == ["result-mode'"]
    assert complete.matches("ta", "SET 'sql-client.execution.result-mode' = '") == \
        ["table", "tableau"]  # readline closes the quote
    assert [complete("i", i) for i in range(3)][:1] == ["id"]


def test_result_view_applies_upserts_by_key_and_keeps_the_latest_append_rows() -> None:
    upserts = ResultView(["k", "n"], "changelog", updating=True, key=["k"])
    assert upserts.apply(pl.DataFrame({"k": [1, 2], "n": [1, 1]})) == [("+I", (1, 1)),
                                                                        ("+I", (2, 1))]
    assert upserts.apply(pl.DataFrame({"k": [2, 1], "n": [1, 3]})) == [("-U", (1, 1)),
                                                                        ("+U", (1, 3))]
    assert upserts.rows() == [(1, 3), (2, 1)]
    appended = ResultView(["x"], "table", max_rows=3)
    appended.apply(pl.DataFrame({"x": [1, 2]}))
    appended.apply(pl.DataFrame({"x": [3, 4, 5]}))
    assert appended.rows() == [(3,), (4,), (5,)] and appended.received == 5
    assert "the latest 3" in appended.summary()


BUCKETS = ("SELECT bucket, COUNT(*) AS keys FROM (SELECT k, COUNT(*) / 100 AS bucket FROM t "
           "GROUP BY k) GROUP BY bucket;")


def test_deletes_remove_rows_in_table_mode_and_show_as_minus_d(home: Path) -> None:
    session, flow = Session(), td.Flow("expected")  # the result computed without the shell
    session.execute(flow, DATAGEN)
    out = td.sinks.memory()
    session.execute(flow, BUCKETS)[0].stream.sink(out)  # type: ignore[union-attr]
    flow.run(quiet=True, max_batch_rows=100)
    log = out.frame()
    assert log[DELETE].any()  # buckets empty out as counts grow: the query deletes
    expected = sorted(apply_changelog(log, ["bucket"]).rows())

    term = Terminal(home, "--max-batch-rows", "100")
    try:
        term.at_prompt(DATAGEN.replace("\n", " ") + "\n")
        term.at_prompt(BUCKETS + "\n")
        done = term.expect(r"\[INFO\] Query finished")
        assert sorted(tuple(int(c) for c in r) for r in
                      table_rows(term.text[:done.start()])) == expected
        term.at_prompt("SET 'sql-client.execution.result-mode' = 'tableau';\n")
        term.at_prompt(BUCKETS + "\n")
        start = term.expect(r"\| op +\| +bucket \| +keys \|").end()
        done = term.expect(r"\[INFO\] Query finished")
        current: dict[int, tuple] = {}
        for line in term.text[start:done.start()].splitlines():
            if not re.match(r"\| [+-][IUD] ", line):
                continue
            op, *cells = (c.strip() for c in line.strip("|").split("|"))
            row = tuple(int(c) for c in cells)
            if op == "-D":
                assert current.pop(row[0]) == row  # -D shows the row it removes
            elif op != "-U":
                current[row[0]] = row
        assert sorted(current.values()) == expected
        term.at_prompt("QUIT;\n")
        assert term.wait() == 0
    finally:
        term.close()


def test_result_view_applies_deletes() -> None:
    view = ResultView(["k", "n", DELETE], "table", updating=True, key=["k"])
    assert view.columns == ["k", "n"]  # the delete marker is not a column to show
    view.apply(pl.DataFrame({"k": [1, 2], "n": [5, 6], DELETE: [False, False]}))
    changes = view.apply(pl.DataFrame({"k": [1, 3], "n": [None, 1], DELETE: [True, False]}))
    assert changes == [("-D", (1, 5)), ("+I", (3, 1))]
    assert view.rows() == [(2, 6), (3, 1)]


def test_shell_runs_insert_into_and_its_own_commands(tmp_path: Path) -> None:
    import io

    from rich.console import Console

    from tidal.commands.sql_shell import Shell

    typed = iter([DATAGEN, "CREATE TABLE out (id BIGINT) WITH ('connector' = 'filesystem',",
                  f"  'path' = '{tmp_path}/out.jsonl', 'format' = 'json');",
                  "INSERT INTO out SELECT id FROM t WHERE k = 2;", "HELP;", "SHOW TABLES;",
                  "EXIT;", "SELECT 'never run';"])

    def read(prompt: str) -> str:
        return next(typed)

    screen = io.StringIO()
    Shell(Console(file=screen, width=120), history=tmp_path / "history", read=read).loop()
    text = screen.getvalue()
    assert "[INFO] INSERT INTO out finished: its input ended." in text
    assert "SET 'sql-client.execution.result-mode'" in text  # the help
    assert "out\nt\n" in text
    assert next(typed) == "SELECT 'never run';"  # EXIT; left the shell
    session, flow = Session(), td.Flow("expected")
    session.execute(flow, DATAGEN)
    out = td.sinks.memory()
    session.execute(flow, "SELECT id FROM t WHERE k = 2")[0].stream.sink(out)  # type: ignore[union-attr]
    flow.run(quiet=True)
    written = pl.read_ndjson(tmp_path / "out.jsonl")["id"].to_list()
    assert written and sorted(written) == sorted(out.frame()["id"].to_list())


@pytest.mark.parametrize("statement", ["SET sql-client.execution.result-mode = changelog;",
                                       "SET 'table.exec.state.ttl' = 1;",
                                       "SET table.exec.state.ttl = '1 h';"])
def test_set_wants_quoted_key_and_value(statement: str) -> None:
    from tidal.sql import SqlError

    session = Session()
    with pytest.raises(SqlError, match=r"quote the key and the value, as Flink does: "
                                       r"SET 'key' = 'value'"):
        session.execute(td.Flow("set"), statement)
    assert session.settings == {}


def test_a_statement_is_one_history_line_without_its_comments() -> None:
    from tidal.commands.sql_shell import _one_line

    typed = "-- top prices\nSELECT price -- in cents\n  FROM bid WHERE url <> 'http://a--b';"
    assert _one_line(typed) == "SELECT price FROM bid WHERE url <> 'http://a--b';"


def test_shell_works_without_readline(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    import io

    from rich.console import Console

    from tidal.commands.sql_shell import Shell

    monkeypatch.setitem(sys.modules, "readline", None)  # `import readline` raises ImportError
    typed = iter([DATAGEN, "SELECT k, COUNT(*) AS n FROM t GROUP BY k;"])

    def read(prompt: str) -> str:
        line = next(typed, None)
        if line is None:
            raise EOFError
        return line

    screen = io.StringIO()
    Shell(Console(file=screen, width=100), history=tmp_path / "history", read=read).loop()
    assert "[INFO] Query finished: its input ended. 3 rows" in screen.getvalue()
    assert not (tmp_path / "history").exists()
    assert Completer(Session())("sel", 0) == "select"
