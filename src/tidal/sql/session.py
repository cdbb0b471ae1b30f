"""A SQL session: a catalog, settings and functions, and the statements that use them.

:meth:`Session.execute` runs a script of statements against one flow: DDL changes the
catalog, ``INSERT INTO`` adds a sink to the flow, a ``SELECT`` returns its stream, and
``SHOW TABLES`` / ``DESCRIBE`` / ``EXPLAIN`` return text. Nothing runs until the flow does.
"""

from __future__ import annotations

import importlib
import logging
import re
import weakref
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import polars as pl
import sqlglot
from sqlglot import exp
from sqlglot.errors import ParseError, TokenError

from tidal.errors import ConfigError
from tidal.operators.stateless import Passthrough
from tidal.sql.catalog import (
    Catalog,
    Registered,
    TableDef,
    ViewDef,
    create_table_sql,
    describe_type,
    table_from_ddl,
    table_from_query,
    table_like,
)
from tidal.sql.connectors import REGISTRY
from tidal.sql.dialect import Flink
from tidal.sql.errors import SqlError, error, unsupported
from tidal.sql.expressions import Function, Translator, sql_type
from tidal.sql.planner import Planner, Rel
from tidal.sql.updating import DELETE

if TYPE_CHECKING:
    from tidal.api.flow import Flow
    from tidal.api.stream import Stream
    from tidal.plan import Node

__all__ = ["Result", "Session", "builtin_functions", "parse", "session_for"]


@dataclass
class Result:
    """What one statement produced: a query's stream (``kind="select"``), text
    (``show``/``describe``/``explain``) or nothing (DDL, ``INSERT``)."""

    kind: str
    stream: Stream | None = None
    text: str | None = None
    updating: bool = False
    key: list[str] | None = None


@dataclass
class _Writers:
    """The INSERTs into one table of a flow: one sink step, named after the table, reading
    the union of their results (Flink writes the rows of every INSERT into the table)."""

    table: str
    sink: Node
    inputs: list[Stream]
    updating: bool
    union: Node | None = None

    def add(self, out: Stream, updating: bool, node: exp.Expr) -> None:
        """Write ``out`` into the table too: the sink step keeps its name (and so its
        checkpointed rows), and reads a stateless union of every INSERT's result."""
        name, first = self.table, self.inputs[0]
        if updating != self.updating:
            kinds = ("an updating", "an appending") if updating else ("an appending", "an updating")
            raise unsupported(f"INSERT INTO {name} of {kinds[0]} result beside {kinds[1]} one",
                              node, "write them into two tables")
        if dict(out.schema or {}) != dict(first.schema or {}):
            raise error(f"INSERT INTO {name}: this query writes the columns "
                        f"{', '.join(out.schema or [])} but an earlier INSERT INTO {name} writes "
                        f"{', '.join(first.schema or [])}; give both the same columns", node)
        flow = out.flow
        if self.union is not None:  # made again over every input, under the same name
            flow.nodes.remove(self.union)
            flow._names.discard(self.union.name)
        self.inputs.append(out)
        union = first._then("union", f"{name}.union", lambda n: Passthrough(n),
                            schema=first.schema, time=None,
                            inputs=[(s.node, "out") for s in self.inputs])
        self.union = union.node
        flow.nodes.remove(self.sink)  # the flow's steps are in topological order
        self.sink.inputs = [(self.union, "out")]
        flow.nodes.append(self.sink)


_STATEMENT_SET = re.compile(r"\bEXECUTE\s+STATEMENT\s+SET\s+BEGIN\b", re.IGNORECASE)


def _blank(text: str, start: int, end: int) -> str:
    """``text`` with ``[start, end)`` turned into spaces (newlines kept, so positions stay)."""
    return text[:start] + re.sub(r"[^\n]", " ", text[start:end]) + text[end:]


def _statement_sets(script: str) -> str:
    """``EXECUTE STATEMENT SET BEGIN INSERT ...; INSERT ...; END;`` → the INSERTs alone: a
    script's INSERTs already share their sources and run as one flow."""
    from sqlglot.tokens import TokenType

    while (m := _STATEMENT_SET.search(script)) is not None:
        depth, end = 0, None
        try:
            tokens = Flink().tokenize(script[m.end():])
        except TokenError as exc:
            raise SqlError(f"cannot read the statement: {exc}") from None
        for i, tok in enumerate(tokens):
            if tok.token_type == TokenType.CASE:
                depth += 1
            elif tok.token_type == TokenType.END:
                if depth:
                    depth -= 1
                    continue
                last = tokens[i + 1] if i + 1 < len(tokens) and \
                    tokens[i + 1].token_type == TokenType.SEMICOLON else tok
                end = (m.end() + tok.start, m.end() + last.end + 1)
                break
        line = script.count("\n", 0, m.start()) + 1
        if end is None:
            raise SqlError("EXECUTE STATEMENT SET BEGIN without its END;", line,
                           m.start() - script.rfind("\n", 0, m.start()))
        body = sqlglot.parse(script[m.end():end[0]], read=Flink) if \
            script[m.end():end[0]].strip() else []
        if not body or any(b is not None and not isinstance(b, exp.Insert) for b in body):
            raise SqlError("EXECUTE STATEMENT SET takes INSERT INTO statements only", line,
                           m.start() - script.rfind("\n", 0, m.start()))
        script = _blank(_blank(script, *end), m.start(), m.end())
    return script


def parse(script: str) -> list[exp.Expr]:
    """The statements of ``script``; a syntax error names its line and column."""
    upper = script.upper()
    logging.getLogger("sqlglot").setLevel(logging.ERROR)  # SHOW/EXPLAIN parse as commands
    try:
        if "STATEMENT" in upper:
            script = _statement_sets(script)
        statements = [s for s in sqlglot.parse(script, read=Flink) if s is not None]
    except ParseError as exc:
        first = exc.errors[0] if exc.errors else {}
        line, col = first.get("line"), first.get("col")
        desc = first.get("description", str(exc))
        near = (first.get("highlight") or "").strip()
        raise SqlError(f"{desc}" + (f" near {near!r}" if near else ""), line,
                       None if col is None else max(col - len(first.get("highlight") or "") + 1, 1)
                       ) from None
    except TokenError as exc:
        raise SqlError(f"cannot read the statement: {exc}") from None
    texts = _texts(script)
    if len(texts) == len(statements):
        for node, text in zip(statements, texts, strict=True):
            node.meta["sql"] = text
    return statements


def _texts(script: str) -> list[str]:
    """The text of each statement of ``script`` (what ``SHOW CREATE`` prints back)."""
    from sqlglot.tokens import TokenType

    chunks: list[list[Any]] = [[]]
    for tok in Flink().tokenize(script):
        if tok.token_type == TokenType.SEMICOLON:
            chunks.append([])
        else:
            chunks[-1].append(tok)
    return [script[c[0].start:c[-1].end + 1] for c in chunks if c]


def udf(return_type: Any = None, *, vectorized: bool = True) -> Callable[[Callable[..., Any]],
                                                                       Callable[..., Any]]:
    """Mark a Python function as a SQL scalar function: its ``return_type`` (a SQL type
    name or a Polars type) and whether it is ``vectorized`` (gets Polars Series) or called
    per row. ``CREATE FUNCTION name AS 'module.function'`` and
    :meth:`tidal.Flow.register_function` read these marks.

    >>> @udf("BIGINT")
    ... def twice(s):
    ...     return s * 2
    >>> twice.return_type, twice.vectorized
    ('BIGINT', True)
    """
    def mark(fn: Callable[..., Any]) -> Callable[..., Any]:
        fn.return_type = return_type  # type: ignore[attr-defined]
        fn.vectorized = vectorized  # type: ignore[attr-defined]
        return fn

    return mark


class Session:
    """Catalog, settings and functions shared by the statements of one flow."""

    def __init__(self) -> None:
        self.catalog = Catalog()
        self.settings: dict[str, str] = {}
        self.functions: dict[str, Function] = {}
        self._streams: weakref.WeakKeyDictionary[Flow, dict[str, Rel]] = weakref.WeakKeyDictionary()
        self._shared: weakref.WeakKeyDictionary[Flow, dict[tuple[Any, ...], tuple[Stream, int]]] \
            = weakref.WeakKeyDictionary()
        self._written: weakref.WeakKeyDictionary[Flow, dict[str, _Writers]] = \
            weakref.WeakKeyDictionary()

    def streams_of(self, flow: Flow) -> dict[str, Rel]:
        """The tables a flow has already read (one source per table per flow)."""
        return self._streams.setdefault(flow, {})

    def aggregates_of(self, flow: Flow) -> dict[tuple[Any, ...], tuple[Stream, int]]:
        """The aggregations a flow already computes, by what they compute: a second
        identical GROUP BY (q5's two HOP counts) reads the first one's result instead of
        keeping the same state twice."""
        return self._shared.setdefault(flow, {})

    # -- Python interop ----------------------------------------------------------------------
    def register_table(self, name: str, stream: Stream) -> None:
        self.catalog.add(Registered(name, stream), replace=True)

    def register_function(self, name: str, fn: Callable[..., Any], vectorized: bool = True,
                          return_type: Any = None) -> None:
        if not callable(fn):
            raise ConfigError(f"register_function({name!r}): expected a function, got "
                              f"{type(fn).__name__}")
        from tidal.api.agg import UserAggregate

        if isinstance(fn, UserAggregate):  # an aggregate: its types come with it
            self.functions[name.lower()] = Function(name, fn, True, fn.return_type)
            return
        dtype = None
        if isinstance(return_type, str):
            dtype = sql_type(sqlglot.parse_one(f"CAST(x AS {return_type})", read=Flink).to,
                             collections=True)
        elif return_type is not None:
            dtype = return_type
        self.functions[name.lower()] = Function(name, fn, vectorized, dtype)

    # -- statements -----------------------------------------------------------------------------
    def execute(self, flow: Flow, script: str) -> list[Result]:
        """Run every statement of ``script`` against ``flow``."""
        return [self.statement(flow, s) for s in parse(script)]

    def statement(self, flow: Flow, node: exp.Expr) -> Result:
        n_nodes, names = len(flow.nodes), set(flow._names)
        cached = dict(self.streams_of(flow))
        try:
            return self._statement(flow, node)
        except BaseException:
            # leave the flow as it was before the failed statement
            del flow.nodes[n_nodes:]
            flow._names.clear()
            flow._names.update(names)
            self._streams[flow] = cached
            raise

    def _statement(self, flow: Flow, node: exp.Expr) -> Result:
        if isinstance(node, exp.Select | exp.Union | exp.Subquery):
            rel = Planner(self, flow).query(node)
            return Result("select", rel.stream, updating=rel.updating, key=rel.key or None)
        if isinstance(node, exp.Create):
            if _materialized(node):
                return self._materialized_view(flow, node)
            return self._create(flow, node)
        if isinstance(node, exp.Drop):
            kind = (node.args.get("kind") or "TABLE").upper()
            if kind == "FUNCTION":
                for t in node.args.get("tables") or [node.this]:
                    if self.functions.pop(t.name.lower(), None) is None and \
                            not node.args.get("exists"):
                        raise error(f"DROP FUNCTION {t.name}: no such function", t)
                return Result("ddl")
            if kind not in ("TABLE", "VIEW"):
                raise unsupported(f"DROP {kind}", node)
            for t in node.args.get("tables") or [node.this]:
                self.catalog.drop(t.name, bool(node.args.get("exists")), t)
            return Result("ddl")
        if isinstance(node, exp.Insert):
            return self._insert(flow, node)
        if isinstance(node, exp.Describe):
            return Result("describe", text=self.describe(node.this.name, node.this))
        if isinstance(node, exp.Set):
            for item in node.expressions:
                eq = item.this
                if not isinstance(eq, exp.EQ):
                    raise unsupported(f"SET {item.sql()}", node)
                if not all(isinstance(s, exp.Literal) and s.is_string for s in eq.args.values()):
                    raise error("SET: quote the key and the value, as Flink does: "
                                "SET 'key' = 'value'", node)
                self.settings[eq.this.name] = eq.expression.name
            return Result("ddl")
        if isinstance(node, exp.Command):
            return self._command(flow, node)
        raise unsupported(f"the statement {node.key.upper()}", node)

    def _command(self, flow: Flow, node: exp.Command) -> Result:
        word = node.this.upper()
        rest = node.expression if isinstance(node.expression, str) else \
            node.expression.name if node.expression is not None else ""
        if word == "SET":
            raise error(f"SET {rest.strip()}: quote the key and the value, as Flink does: "
                        "SET 'key' = 'value'", node)
        if word == "SHOW" and rest.split()[:1] == ["CREATE"]:
            return Result("show", text=self.show_create(rest, node))
        if word == "SHOW" and " ".join(rest.upper().split()) in ("FUNCTIONS", "USER FUNCTIONS"):
            names = sorted(f.name for f in self.functions.values())
            if rest.split()[0].upper() != "USER":
                names = sorted({*names, *builtin_functions()})
            return Result("show", text="\n".join(names))
        if word == "SHOW" and rest.strip().upper() in ("TABLES", "VIEWS"):
            kinds = ViewDef if rest.strip().upper() == "VIEWS" else (TableDef, ViewDef, Registered)
            names = [n for n in self.catalog.names() if isinstance(self.catalog.entries[n], kinds)]
            return Result("show", text="\n".join(names))
        if word == "EXPLAIN":
            text = rest.strip()
            for prefix in ("PLAN FOR ",):
                if text.upper().startswith(prefix):
                    text = text[len(prefix):]
            return Result("explain", text=self.explain(text))
        if word in ("DESC",):
            return Result("describe", text=self.describe(rest.strip()))
        create = re.fullmatch(r"\s*(?:TEMPORARY\s+)?(?:SYSTEM\s+)?FUNCTION\s+(IF\s+NOT\s+EXISTS\s+)?"
                              r"(\w+)\s+AS\s+'([^']*)'(?:\s+LANGUAGE\s+(\w+))?\s*;?\s*", rest,
                              re.IGNORECASE)
        if word == "CREATE" and create is not None:
            exists, name, target, language = create.groups()
            return self._create_function(name, target, (language or "PYTHON").upper(),
                                         bool(exists), node)
        if word == "EXECUTE" or word == "BEGIN" or word == "END":
            raise unsupported(f"{word} STATEMENT SET", node,
                              "write the INSERT statements one after another in one script")
        raise unsupported(f"the statement {word} {rest.split()[0] if rest.split() else ''}".strip(),
                          node)

    def _create(self, flow: Flow, node: exp.Create) -> Result:
        kind = (node.args.get("kind") or "").upper()
        replace_ = bool(node.args.get("replace"))
        exists = bool(node.args.get("exists"))
        if kind == "TABLE":
            if node.args.get("expression") is not None:
                return self._create_as(flow, node)
            props = node.args.get("properties")
            like = next((p for p in (props.expressions if props else [])
                         if isinstance(p, exp.LikeProperty)), None)
            table = self._like(node, like) if like is not None else table_from_ddl(node)
            table.ddl = node.meta.get("sql")
            self.catalog.add(table, exists, replace_, node)
            return Result("ddl")
        if kind == "VIEW":
            props = node.args.get("properties")
            temporary = bool(props and any(isinstance(p, exp.TemporaryProperty)
                                           for p in props.expressions))
            name = node.this.name
            self.catalog.add(ViewDef(name, node.args["expression"], temporary, node.meta.get("sql")),
                             exists, replace_, node)
            return Result("ddl")
        if kind == "FUNCTION":
            props = node.args.get("properties")
            language = next((p.this.name.upper() for p in (props.expressions if props else [])
                             if isinstance(p, exp.LanguageProperty)), "PYTHON")
            target = node.args.get("expression")
            if not isinstance(target, exp.Literal) or not target.is_string:
                raise error("CREATE FUNCTION name AS 'module.function' names a Python "
                            "function by its import path", node)
            return self._create_function(node.this.name, target.this, language, exists, node)
        raise unsupported(f"CREATE {kind}", node)

    def _like(self, node: exp.Create, like: exp.LikeProperty) -> TableDef:
        """``CREATE TABLE t [WITH (...)] LIKE base``: a copy of ``base`` with the options
        given overwriting its own (Flink's default); columns or LIKE options beside it are
        not supported."""
        if isinstance(node.this, exp.Schema) or isinstance(like.this, exp.Schema):
            raise unsupported("CREATE TABLE ... LIKE with a column list or LIKE options", like,
                              "write CREATE TABLE t WITH (...) LIKE base: it copies base and "
                              "overwrites its options")
        base = self.catalog.get(like.this.name, like)
        if not isinstance(base, TableDef):
            raise error(f"CREATE TABLE {node.this.name} LIKE {like.this.name}: "
                        f"{like.this.name!r} is not a table declared with CREATE TABLE", like)
        return table_like(node, base)

    def _create_as(self, flow: Flow, node: exp.Create) -> Result:
        """``CREATE TABLE t WITH (...) AS query`` (Flink's CTAS): a table whose columns are
        the query's, written by the query as ``INSERT INTO t`` would; an updating query's
        upsert key becomes the table's primary key."""
        if isinstance(node.this, exp.Schema):
            raise unsupported("a column list in CREATE TABLE ... AS SELECT", node.this,
                              "the table takes the query's columns: leave the list out")
        name = node.this.name
        if name in self.catalog.entries:
            raise error(f"CREATE TABLE {name} AS SELECT: table {name!r} already exists; DROP it "
                        "first, or INSERT INTO it", node)
        if node.args.get("replace"):
            raise unsupported("CREATE OR REPLACE TABLE ... AS SELECT", node)
        rel = Planner(self, flow).query(node.args["expression"])
        names = [f.name for f in rel.fields]
        key = [n for n, f in zip(names, rel.fields, strict=True) if f.column in rel.key]
        table = table_from_query(node, {n: rel.schema[f.column] for n, f in
                                        zip(names, rel.fields, strict=True)},
                                 key if rel.updating else [])
        self._write(table, rel, names, node)
        self.catalog.add(table, node=node)
        return Result("insert")

    def _create_function(self, name: str, target: str, language: str, exists: bool,
                         node: exp.Expr) -> Result:
        """``CREATE FUNCTION name AS 'package.module.function' [LANGUAGE PYTHON]``: import
        the function and register it as :meth:`register_function` would (an aggregate when
        it is a ``td.agg.udaf``; a scalar function's ``return_type`` and ``vectorized`` come
        from :func:`udf` when it was decorated with it)."""
        if language != "PYTHON":
            raise unsupported(f"CREATE FUNCTION ... LANGUAGE {language}", node,
                              "tidal runs Python functions: LANGUAGE PYTHON")
        if name.lower() in self.functions:
            if exists:
                return Result("ddl")
            raise error(f"CREATE FUNCTION {name}: a function {name!r} exists already", node)
        module, _, attr = target.rpartition(".")
        if not module:
            raise error(f"CREATE FUNCTION {name} AS {target!r}: give the import path "
                        "'package.module.function'", node)
        try:
            fn = getattr(importlib.import_module(module), attr)
        except (ImportError, AttributeError) as exc:
            raise error(f"CREATE FUNCTION {name} AS {target!r}: cannot import it ({exc}); "
                        "is its module on the Python path (PYTHONPATH)?", node) from None
        self.register_function(name, fn, vectorized=getattr(fn, "vectorized", True),
                               return_type=getattr(fn, "return_type", None))
        return Result("ddl")

    def _materialized_view(self, flow: Flow, node: exp.Create) -> Result:
        """``CREATE MATERIALIZED VIEW v AS SELECT ... GROUP BY ...``: the query's latest row
        per group key, served like ``stream.to_view`` (windowed queries keep their last 60
        windows per key)."""
        query = node.args["expression"]
        rel = Planner(self, flow).query(query)
        names = [f.name for f in rel.fields]
        select = query if isinstance(query, exp.Select) else None
        group = select.args.get("group") if select is not None else None
        grouped = [e.alias_or_name for e in (group.expressions if group else [])]
        key = [g for g in grouped if g in names and g.lower() not in ("window_start", "window_end")]
        windowed = any(g.lower() == "window_start" for g in grouped) and "window_start" in names
        if not key and not windowed:
            raise error(f"CREATE MATERIALIZED VIEW {node.this.name}: the view needs a key: "
                        "GROUP BY the columns that identify a row, and select them", node)
        stream = rel.stream.select([pl.col(f.column).alias(f.name) for f in rel.fields]
                                   + [pl.col(DELETE)] * (DELETE in rel.schema))
        stream.to_view(node.this.name, key=key, windows=60 if windowed else None)
        return Result("ddl")

    def _insert(self, flow: Flow, node: exp.Insert) -> Result:
        target = node.this
        columns: list[str] | None = None
        if isinstance(target, exp.Schema):
            columns = [c.name for c in target.expressions]
            target = target.this
        name = target.name
        entry = self.catalog.get(name, target)
        if not isinstance(entry, TableDef):
            raise error(f"INSERT INTO {name}: {name!r} is a view, not a table with a connector",
                        target)
        if REGISTRY[entry.connector].sink is None:
            raise error(f"INSERT INTO {name}: the {entry.connector!r} connector can only be read",
                        target)
        rel = Planner(self, flow).query(node.expression)
        self._write(entry, rel, columns or list(entry.columns), node)
        return Result("insert")

    def _write(self, entry: TableDef, rel: Rel, sink_cols: list[str], node: exp.Expr) -> None:
        """Sink ``rel`` into the table ``entry``: its columns in order into ``sink_cols``."""
        name = entry.name
        conn = REGISTRY[entry.connector]
        if conn.sink is None:
            raise error(f"CREATE TABLE {name} AS SELECT: the {entry.connector!r} connector can "
                        "only be read", node)
        if len(sink_cols) != len(rel.fields):
            raise error(f"INSERT INTO {name}: the query gives {len(rel.fields)} column(s) "
                        f"({', '.join(f.name for f in rel.fields)}) but the table takes "
                        f"{len(sink_cols)} ({', '.join(sink_cols)})", node)
        if rel.updating and not conn.upsert:
            raise error(f"INSERT INTO {name}: the query's result is updating (a GROUP BY without "
                        f"a window) and the {entry.connector!r} connector can only append; "
                        "write it to a 'sqlite' table with a PRIMARY KEY", node)
        if rel.updating and entry.connector == "sqlite" and not entry.primary_key:
            raise error(f"INSERT INTO {name}: an updating result needs PRIMARY KEY (...) NOT "
                        f"ENFORCED on {name!r} so that each row replaces its key's row", node)
        exprs = []
        as_is = list(rel.schema) == sink_cols
        for f, target_col in zip(rel.fields, sink_cols, strict=True):
            e = pl.col(f.column)
            want = entry.columns.get(target_col)
            if want is not None and rel.schema[f.column] != want:
                e = e.cast(want, strict=False)
                as_is = False
            as_is = as_is and f.column == target_col
            exprs.append(e.alias(target_col))
        if DELETE in rel.schema:  # the sink removes the keys of deleted rows
            exprs.append(pl.col(DELETE))
        opts = entry.table_options()
        sink = conn.sink(opts)
        unused = sorted(set(entry.options) - opts.used)
        if unused:
            raise ConfigError(f"table {name!r}: option(s) {unused} are not known to the "
                              f"{entry.connector!r} sink")
        out = rel.stream if as_is else rel.stream.select(exprs)
        written = self._written.setdefault(out.flow, {})
        if name in written:
            written[name].add(out, rel.updating, node)
            return
        out.sink(sink, name=f"{name}")
        written[name] = _Writers(name, out.flow.nodes[-1], [out], rel.updating)

    # -- text results ---------------------------------------------------------------------------
    def show_create(self, rest: str, node: exp.Expr) -> str:
        """``SHOW CREATE TABLE t`` / ``SHOW CREATE VIEW v``: a statement that declares it again."""
        words = rest.split()
        kind = words[1].upper() if len(words) > 1 else ""
        if kind not in ("TABLE", "VIEW") or len(words) != 3:
            raise unsupported(f"SHOW {rest.strip()}", node, "write SHOW CREATE TABLE name or "
                              "SHOW CREATE VIEW name")
        name = words[2].strip("`")
        entry = self.catalog.get(name, node)
        if kind == "TABLE" and isinstance(entry, TableDef):
            return create_table_sql(entry)
        if kind == "VIEW" and isinstance(entry, ViewDef):
            return entry.ddl or f"CREATE VIEW `{name}` AS {entry.query.sql(dialect=Flink)}"
        what = "a view" if isinstance(entry, ViewDef) else "a table" if \
            isinstance(entry, TableDef) else "a stream registered from Python"
        raise error(f"SHOW CREATE {kind} {name}: {name!r} is {what}", node)

    def describe(self, name: str, node: exp.Expr | None = None) -> str:
        entry = self.catalog.get(name, node)
        rows: list[tuple[str, str, str]] = []
        if isinstance(entry, TableDef):
            for c, t in entry.columns.items():
                extra = "*ROWTIME*" if c == entry.rowtime else ""
                if c in entry.primary_key:
                    extra = (extra + " PRI").strip()
                rows.append((c, describe_type(t), extra))
            for c, e in entry.computed.items():
                rows.append((c, "", f"AS {e.sql()}"))
            if entry.proctime:
                rows.append((entry.proctime, "TIMESTAMP_LTZ(3)", "*PROCTIME* AS PROCTIME()"))
            if entry.rowtime:
                rows.append(("", "", f"WATERMARK FOR {entry.rowtime} AS {entry.rowtime} - "
                                     f"INTERVAL '{entry.delay_ms}' MILLISECOND"))
        else:
            from tidal.api.flow import Flow

            rel = Planner(self, Flow("describe")).table(name, node)
            time = rel.stream.node.time
            for f in rel.fields:
                if f.column in ("window_start", "window_end", "window_time") and rel.window:
                    continue
                extra = "*ROWTIME*" if time is not None and f.column == time.column else ""
                rows.append((f.name, describe_type(rel.schema[f.column]), extra))
        width = max([len(r[0]) for r in rows] + [4])
        twidth = max([len(r[1]) for r in rows] + [4])
        lines = [f"{'name':<{width}}  {'type':<{twidth}}  extras"]
        lines += [f"{a:<{width}}  {b:<{twidth}}  {c}".rstrip() for a, b, c in rows]
        return "\n".join(lines)

    def explain(self, query: str) -> str:
        from tidal.api.flow import Flow

        statements = parse(query)
        if len(statements) != 1:
            raise SqlError("EXPLAIN takes one query")
        flow = Flow("explain")
        result = self._statement(flow, statements[0])
        lines = []
        for n in flow.nodes:
            inputs = ", ".join(i.name for i, _ in n.inputs)
            what = n.signature or n.kind
            time = f" time={n.time.column}" if n.time is not None else ""
            lines.append(f"{n.name} <- [{inputs}] {n.kind}: {what}{time}")
        if result.kind == "select":
            lines.append(f"result: {'updating (upserts by ' + ', '.join(result.key or []) + ')' if result.updating else 'append'}")
        return "\n".join(lines)


_sessions: weakref.WeakKeyDictionary[Flow, Session] = weakref.WeakKeyDictionary()


def _materialized(node: exp.Create) -> bool:
    props = node.args.get("properties")
    return (node.args.get("kind") or "").upper() == "VIEW" and bool(
        props and any(isinstance(p, exp.MaterializedProperty) for p in props.expressions))


_INTERNAL_NAMES = frozenset({"ARRAYAGG", "DATE_TO_DATE_STR", "PAD", "STR_POSITION",
                             "S_H_A2_DIGEST", "TIME_TO_TIME_STR", "TS_OR_DS_TO_DATE_STR"})
"""Names sqlglot derives from its own node classes, which no SQL dialect spells."""


def builtin_functions() -> list[str]:
    """The names of the built-in SQL functions (what ``SHOW FUNCTIONS`` lists besides the
    user's), found rather than listed so the list stays true as functions are added: each
    name the dialect parses as a call, kept when it reads as a node the
    :class:`~tidal.sql.expressions.Translator` has a ``_<node class>`` method for or as a
    planned aggregate; and the Translator's ``_fn_<name>`` functions. Functions that are only
    refused (marked :func:`~tidal.sql.errors.refused`) are left out."""
    from sqlglot.errors import ErrorLevel

    from tidal.sql.aggregates import AGGREGATES

    parser = Flink.parser_class
    found = {name.lower() for name in AGGREGATES.values()}
    found |= {attr[4:] for attr in dir(Translator)
              if attr.startswith("_fn_") and not getattr(getattr(Translator, attr), "refused", False)}
    for name in {*parser.FUNCTIONS, *parser.FUNCTION_PARSERS} - _INTERNAL_NAMES:
        if not re.fullmatch(r"[A-Z][A-Z0-9_]*", name):
            continue
        for args in ("a", "a AS INT"):
            try:
                call = sqlglot.parse_one(f"{name}({args})", read=Flink,
                                         error_level=ErrorLevel.IGNORE)
            except Exception:  # noqa: BLE001 - a builder that wants other arguments
                continue
            if isinstance(call, exp.Cast) and name not in ("CAST", "TRY_CAST"):
                break  # a type name read as a cast (UUID(a)), or another dialect's CONVERT
            method = getattr(Translator, f"_{type(call).__name__.lower()}", None)
            planned = isinstance(call, exp.Func) and not isinstance(
                call, exp.Connector | exp.Anonymous | exp.Case) and \
                method is not None and not getattr(method, "refused", False)
            if planned or type(call) in AGGREGATES:
                found.add(name.lower())
                break
    return sorted(found)


def session_for(flow: Flow) -> Session:
    """The SQL session of ``flow`` (made on first use)."""
    s = _sessions.get(flow)
    if s is None:
        s = _sessions[flow] = Session()
    return s
