"""Flink's string, regex, JSON and hash functions, translated to Polars string expressions.

A mixin of :class:`~tidal.sql.expressions.Translator` (``self`` is a Translator): methods
named ``_<sqlglot node class>`` translate the functions sqlglot parses into their own
nodes, and ``_fn_<name>`` the ones it leaves as ``Anonymous`` calls.

Positions count characters from 1, as Flink does. Regular expressions must be string
literals: Flink's are Java regexes, tidal runs them with Polars' Rust engine, which has no
look-around and no backreferences; a pattern Rust cannot run as Java would fails at plan
time, never per row, and ``\\d``, ``\\w``, ``\\s`` are rewritten to the ASCII classes they
are in Java (:func:`_rust_regex`). The hash functions run Python's :mod:`hashlib` over each
batch.

>>> import polars as pl, sqlglot
>>> from tidal.sql.dialect import Flink
>>> from tidal.sql.expressions import Field, Scope, Translator
>>> t = Translator(Scope([Field(None, "s", "s")], pl.Schema({"s": pl.String})))
>>> e = t.expr(sqlglot.parse_one("LPAD(s, 5, '*')", read=Flink))
>>> pl.DataFrame({"s": ["ab", None]}).select(e).to_series().to_list()
['***ab', None]
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Callable
from itertools import pairwise
from typing import TYPE_CHECKING
from urllib.parse import quote_plus, unquote_plus

import polars as pl
import sqlglot
from sqlglot import exp

from tidal.sql.dialect import Flink
from tidal.sql.errors import error, unsupported

if TYPE_CHECKING:
    from tidal.sql.expressions import Translator

__all__ = ["StringFunctions"]

_ANCHORS = {"^", "$", "\\b", "\\B", "\\A", "\\z", "\\Z"}
_REGEX_TOKEN = re.compile(r"\\.|\[\^?\]?(?:\\.|[^\]\\])*\]|.", re.S)
_JSON_PATH = re.compile(r"\$(?:\.[A-Za-z_][A-Za-z0-9_]*|\[\d+\])*")
_URL = r"^(?i:(https?|ftp|file)):(?://([^/?#]*))?([^?#]*)(?:\?([^#]*))?(?:#(.*))?$"
_URL_GROUPS = {"PROTOCOL": 1, "AUTHORITY": 2, "PATH": 3, "QUERY": 4, "REF": 5}
_INITCAP_DEFAULT = sqlglot.parse_one("INITCAP(s)", read=Flink).expression  # sqlglot's own
_JAVA_CLASSES = {"d": "[0-9]", "D": "[^0-9]", "w": "[a-zA-Z_0-9]", "W": "[^a-zA-Z_0-9]",
                 "s": "[ \\t\\n\\x0B\\f\\r]", "S": "[^ \\t\\n\\x0B\\f\\r]"}
_JAVA_POSIX = re.compile(r"\\[pP]\{(?:Is)?(?:Lower|Upper|ASCII|Alpha|Digit|Alnum|Punct|Graph|"
                         r"Print|Blank|Cntrl|XDigit|Space)\}")


def _rust_regex(java: str) -> str:
    """``java`` (a Java regular expression) for Polars' Rust engine: ``\\d``, ``\\w`` and
    ``\\s`` become the ASCII classes they are in Java; a construct that would compile in
    Rust with another meaning (possessive quantifiers, POSIX ``\\p{Alpha}``) raises
    ValueError, and so does one Rust cannot compile."""
    tokens = _REGEX_TOKEN.findall(java)
    if any(a in ("*", "+", "?", "}") and b == "+" for a, b in pairwise(tokens)):
        raise ValueError("possessive quantifiers are not supported")
    if _JAVA_POSIX.search(java):
        raise ValueError("Java's POSIX classes such as \\p{Alpha} are not supported")
    rust = re.sub(r"\\(.)", lambda m: _JAVA_CLASSES.get(m[1], m[0]), java, flags=re.S)
    try:
        pl.select(pl.lit("").str.contains(rust))
    except pl.exceptions.PolarsError as exc:
        raise ValueError(str(exc).split("error: ")[-1].splitlines()[0]) from None
    return rust


def _arity(node: exp.Expr, name: str, args: list[exp.Expr], n: int) -> None:
    if len(args) != n:
        raise error(f"{name} takes {n} argument{'s' if n != 1 else ''}, got {len(args)}", node)


def _no_more_args(node: exp.Expr, name: str, n: int, *extra: str) -> None:
    """Refuses the arguments other dialects add after Flink's ``n`` (sqlglot keeps them as
    ``extra``)."""
    if any(node.args.get(k) is not None for k in extra):
        raise unsupported(f"{name} with more than {n} arguments", node)


def _is_instr(node: exp.StrPosition) -> bool:
    """sqlglot reads INSTR and LOCATE into one node; the length of the name the parser kept
    in the node's meta (for error positions) tells them apart: INSTR is the one of 5."""
    meta = node.meta
    return "start" in meta and meta["end"] - meta["start"] == 4


def _is_string(node: exp.Expr | None) -> bool:
    return isinstance(node, exp.Literal) and node.is_string


def _anchored(pattern: str) -> bool:
    """Whether ``pattern`` uses ``^``, ``$`` or a word boundary outside a character class."""
    return any(t in _ANCHORS for t in _REGEX_TOKEN.findall(pattern))


def _char_offset(s: pl.Expr, byte_offset: pl.Expr) -> pl.Expr:
    """Characters of ``s`` before ``byte_offset`` (Polars finds byte offsets)."""
    return s.cast(pl.Binary).bin.head(byte_offset).cast(pl.String).str.len_chars()


def _repeat(s: pl.Expr, times: pl.Expr) -> pl.Expr:
    """``s`` repeated ``times`` times ('' when ``times`` <= 0), NULL when either is."""
    joined = s.repeat_by(times.clip(0)).list.join("")
    return pl.when(s.is_not_null() & times.is_not_null()).then(joined)


def _per_value(fn: Callable[[str], str | None]) -> Callable[[pl.Series], pl.Series]:
    """A batch function applying ``fn`` to each non-NULL string (for what Polars lacks)."""
    def run(batch: pl.Series) -> pl.Series:
        return pl.Series([None if v is None else fn(v) for v in batch], dtype=pl.String)
    return run


def _url_decode(text: str) -> str | None:
    """Java's ``URLDecoder.decode(text, UTF-8)``; None where it throws (a bad ``%`` escape)."""
    if re.search("%(?![0-9a-fA-F]{2})", text):
        return None
    return unquote_plus(text, errors="replace")


def _url_encode(text: str) -> str:
    """Java's ``URLEncoder.encode(text, UTF-8)``: keeps letters, digits and ``.-*_``."""
    return quote_plus(text, safe="*").replace("~", "%7E")


class StringFunctions:
    """String, regex, JSON and hash functions (see the module docstring)."""

    # -- helpers --------------------------------------------------------------------------
    def _text(self: Translator, node: exp.Expr) -> pl.Expr:
        return self.expr(node).cast(pl.String)

    def _regex(self: Translator, node: exp.Expr, pattern: exp.Expr | None, fn: str) -> str:
        """The literal regular expression of ``fn``, translated for Polars (:func:`_rust_regex`)."""
        if not _is_string(pattern):
            raise unsupported(f"{fn} with a pattern that is not a string literal", node,
                              "write the regular expression as a literal")
        text = pattern.this  # type: ignore[union-attr]
        try:
            return _rust_regex(text)
        except ValueError as exc:
            raise unsupported(f"{fn} with the regular expression {text!r} ({exc})", node,
                              "tidal runs Rust regular expressions: no look-around, no "
                              "backreferences, no possessive quantifiers") from None

    def _literal_string(self: Translator, node: exp.Expr, arg: exp.Expr | None, what: str) -> str:
        if not _is_string(arg):
            raise unsupported(f"{what} that is not a string literal", node)
        return arg.this  # type: ignore[union-attr]

    # -- search -------------------------------------------------------------------------
    def _strposition(self: Translator, node: exp.StrPosition) -> pl.Expr:
        """POSITION(sub IN s), LOCATE(sub, s[, from]), INSTR(s, sub): 1-based, 0 if absent."""
        if node.args.get("occurrence") is not None:
            raise unsupported("INSTR with an occurrence argument", node)
        s, sub = self._text(node.this), self._text(node.args["substr"])
        start = node.args.get("position")
        if start is not None and _is_instr(node) and not (
                isinstance(start, exp.Literal) and not start.is_string and int(start.this) >= 1):
            raise unsupported("INSTR with a start that is not a positive integer literal", node,
                              "Flink's INSTR searches backwards from a negative start; use "
                              "LOCATE(sub, s, start) to search forwards")
        skipped = pl.lit(0) if start is None else (self.expr(start) - 1).clip(0)
        rest = s.str.slice(skipped)
        found = rest.str.find(sub, literal=True)
        at = (_char_offset(rest, found) + skipped + 1).cast(pl.Int32)
        out = pl.when(sub == "").then(pl.lit(1, pl.Int32)).when(found.is_null()) \
            .then(pl.lit(0, pl.Int32)).otherwise(at)
        return pl.when(s.is_not_null() & sub.is_not_null() & skipped.is_not_null()).then(out)

    def _startswith(self: Translator, node: exp.StartsWith) -> pl.Expr:
        return self._text(node.this).str.starts_with(self._text(node.expression))

    def _endswith(self: Translator, node: exp.EndsWith) -> pl.Expr:
        return self._text(node.this).str.ends_with(self._text(node.expression))

    # -- replace, pad, repeat -----------------------------------------------------------
    def _replace(self: Translator, node: exp.Replace) -> pl.Expr:
        """REPLACE(s, old, new): every non-overlapping ``old``, as Java's String.replace."""
        if node.args.get("replacement") is None:
            raise error("REPLACE takes 3 arguments (string, search, replacement)", node)
        old = self._literal_string(node, node.expression, "REPLACE with a search string")
        new = self._text(node.args["replacement"])
        out = self._text(node.this).str.replace_all(old, new, literal=True)
        return pl.when(new.is_not_null()).then(out)

    def _pad(self: Translator, node: exp.Pad) -> pl.Expr:
        """LPAD/RPAD(s, n, pad): ``s`` cut or padded to ``n`` characters; NULL if n < 0 or
        pad is ''."""
        s, n = self._text(node.this), self.expr(node.expression)
        fill = node.args.get("fill_pattern")
        pad = self._text(fill) if fill is not None else pl.lit(" ")
        need = (n - s.str.len_chars().cast(pl.Int64)).clip(0)
        padding = _repeat(pad, need).str.head(need)
        body = s.str.head(n.clip(0))
        parts = [padding, body] if node.args.get("is_left") else [body, padding]
        return pl.when((n >= 0) & (pad != "")).then(pl.concat_str(parts))

    def _overlay(self: Translator, node: exp.Overlay) -> pl.Expr:
        """OVERLAY(s PLACING r FROM i [FOR n]): ``n`` (``r``'s length by default) characters
        of ``s`` from position ``i`` replaced by ``r``; ``s`` unchanged when ``i`` is outside
        it (Flink)."""
        s, r = self._text(node.this), self._text(node.expression)
        start, count = self.expr(node.args["from_"]), node.args.get("for_")
        n = r.str.len_chars().cast(pl.Int64) if count is None else self.expr(count)
        tail = pl.when(n > 0).then(s.str.slice(start - 1 + n)).otherwise(pl.lit(""))
        placed = pl.concat_str([s.str.head(start - 1), r, tail])
        out = pl.when((start <= 0) | (start > s.str.len_chars())).then(s).otherwise(placed)
        return pl.when(r.is_not_null() & start.is_not_null() & n.is_not_null()).then(out)

    def _translate(self: Translator, node: exp.Translate) -> pl.Expr:
        """TRANSLATE(s, from, to): each character of ``from`` becomes the one at the same
        place in ``to``, or is removed when ``to`` is shorter (``from``, ``to`` literals)."""
        old = self._literal_string(node, node.args.get("from_"), "TRANSLATE with a from string")
        new = self._literal_string(node, node.args.get("to"), "TRANSLATE with a to string")
        table: dict[str, str] = {}
        for i, c in enumerate(old):
            table.setdefault(c, new[i] if i < len(new) else "")
        return self._text(node.this).str.replace_many(table) if table else self._text(node.this)

    def _repeat(self: Translator, node: exp.Repeat) -> pl.Expr:
        return _repeat(self._text(node.this), self.expr(node.args["times"]))

    def _reverse(self: Translator, node: exp.Reverse) -> pl.Expr:
        return self._text(node.this).str.reverse()

    def _left(self: Translator, node: exp.Left) -> pl.Expr:
        return self._text(node.this).str.head(self.expr(node.expression).clip(0))

    def _right(self: Translator, node: exp.Right) -> pl.Expr:
        return self._text(node.this).str.tail(self.expr(node.expression).clip(0))

    def _initcap(self: Translator, node: exp.Initcap) -> pl.Expr:
        """INITCAP as Flink (Calcite): words are runs of ASCII letters and digits; the first
        letter of a word is upper-cased, the others lower-cased; other characters stay."""
        if node.expression is not None and node.expression != _INITCAP_DEFAULT:
            raise unsupported("INITCAP with more than 1 argument", node)
        c = pl.element()
        in_word = c.shift(1).str.contains("^[A-Za-z0-9]$").fill_null(False)
        char = pl.when(in_word & c.str.contains("^[A-Z]$")).then(c.str.to_lowercase()) \
            .when(~in_word & c.str.contains("^[a-z]$")).then(c.str.to_uppercase()).otherwise(c)
        return self._text(node.this).str.split("").list.eval(char).list.join("")

    def _concatws(self: Translator, node: exp.ConcatWs) -> pl.Expr:
        """CONCAT_WS(sep, s1, ...): skips NULL strings; NULL only when ``sep`` is NULL."""
        sep, *parts = node.expressions
        if isinstance(sep, exp.Null):
            return pl.lit(None, pl.String)
        text = self._literal_string(node, sep, "CONCAT_WS with a separator")
        return pl.concat_str([self._text(p) for p in parts], separator=text, ignore_nulls=True)

    def _elt(self: Translator, node: exp.Elt) -> pl.Expr:
        """ELT(i, s1, s2, ...): the ``i``-th string (from 1); NULL when ``i`` is out of range."""
        index, out = self.expr(node.this), pl.lit(None, pl.String)
        for i, e in reversed(list(enumerate(node.expressions, start=1))):
            out = pl.when(index == i).then(self._text(e)).otherwise(out)
        return out

    # -- characters and encodings -----------------------------------------------------------
    def _ascii(self: Translator, node: exp.Ascii) -> pl.Expr:
        """The first UTF-8 byte as a signed Java byte (the code of an ASCII character); 0
        for ''."""
        s = self._text(node.this)
        first = s.cast(pl.Binary).bin.get(0, null_on_oob=True).cast(pl.Int32)
        signed = pl.when(first >= 128).then(first - 256).otherwise(first).fill_null(0)
        return pl.when(s.is_not_null()).then(signed)

    def _chr(self: Translator, node: exp.Chr) -> pl.Expr:
        """CHR(n): the character of code ``n & 255`` ('' for n < 0)."""
        _arity(node, "CHR", node.expressions, 1)
        n = self.expr(node.expressions[0])
        char = (n % 256).replace_strict(list(range(256)), [chr(i) for i in range(256)],
                                        return_dtype=pl.String)
        return pl.when(n < 0).then(pl.lit("")).otherwise(char)

    def _tobase64(self: Translator, node: exp.ToBase64) -> pl.Expr:
        return self._text(node.this).str.encode("base64")

    def _frombase64(self: Translator, node: exp.FromBase64) -> pl.Expr:
        """FROM_BASE64: invalid base64 fails the job (as in Flink); bytes that are not
        UTF-8 give NULL."""
        return self._text(node.this).str.decode("base64").cast(pl.String, strict=False)

    # -- hashes ---------------------------------------------------------------------------
    def _digest(self: Translator, arg: exp.Expr, algorithm: str) -> pl.Expr:
        """Lower-case hex digest of the UTF-8 bytes: Polars has no MD5/SHA, so this runs
        :mod:`hashlib` over each batch in Python (one call a batch, a loop over its values)."""
        digest = _per_value(lambda v: hashlib.new(algorithm, v.encode()).hexdigest())
        return self._text(arg).map_batches(digest, return_dtype=pl.String, is_elementwise=True)

    def _md5(self: Translator, node: exp.MD5) -> pl.Expr:
        return self._digest(node.this, "md5")

    def _sha(self: Translator, node: exp.SHA) -> pl.Expr:
        return self._digest(node.this, "sha1")

    def _sha2digest(self: Translator, node: exp.SHA2Digest) -> pl.Expr:
        return self._sha2(node)  # type: ignore[arg-type]

    def _sha2(self: Translator, node: exp.SHA2) -> pl.Expr:
        """SHA2(s, bits), SHA256/384/512(s)."""
        bits = node.args.get("length")
        if not (isinstance(bits, exp.Literal) and bits.this in ("224", "256", "384", "512")):
            raise unsupported(f"SHA2 with the bit length {bits.sql() if bits else '(none)'}",
                              node, "use a literal 224, 256, 384 or 512")
        return self._digest(node.this, f"sha{bits.this}")

    def _fn_sha224(self: Translator, node: exp.Expr, args: list[exp.Expr]) -> pl.Expr:
        _arity(node, "SHA224", args, 1)
        return self._digest(args[0], "sha224")

    # -- regular expressions ----------------------------------------------------------------
    def _bitwisenot(self: Translator, node: exp.BitwiseNot) -> pl.Expr:
        """Flink's ``REGEXP(s, regex)``: sqlglot reads the keyword REGEXP as the prefix
        operator ``~`` applied to the tuple ``(s, regex)``; Flink SQL has no ``~``."""
        pair = node.this
        if not (isinstance(pair, exp.Tuple) and len(pair.expressions) == 2):
            raise unsupported("the operator ~", node)
        s, pattern = pair.expressions
        regex = self._regex(node, pattern, "REGEXP")
        value = self._text(s)
        if regex == "":  # Flink: an empty pattern matches nothing
            return pl.when(value.is_not_null()).then(pl.lit(False))
        return value.str.contains(regex)

    def _regexpreplace(self: Translator, node: exp.RegexpReplace) -> pl.Expr:
        """REGEXP_REPLACE(s, regex, replacement): every match; the replacement is literal
        text (Flink quotes it), so ``$1`` is not a group reference."""
        _no_more_args(node, "REGEXP_REPLACE", 3, "position", "occurrence", "modifiers")
        if node.args.get("replacement") is None:
            raise error("REGEXP_REPLACE takes 3 arguments (string, regex, replacement)", node)
        regex = self._regex(node, node.expression, "REGEXP_REPLACE")
        repl = self._text(node.args["replacement"]).str.replace_all("$", "$$", literal=True)
        return pl.when(repl.is_not_null()).then(self._text(node.this).str.replace_all(regex, repl))

    def _regexpcount(self: Translator, node: exp.RegexpCount) -> pl.Expr:
        _no_more_args(node, "REGEXP_COUNT", 2, "position", "parameters")
        regex = self._regex(node, node.expression, "REGEXP_COUNT")
        return self._text(node.this).str.count_matches(regex).cast(pl.Int32)

    def _regexpsubstr(self: Translator, node: exp.RegexpSubstr) -> pl.Expr:
        _no_more_args(node, "REGEXP_SUBSTR", 2, "position", "occurrence", "parameters", "group")
        regex = self._regex(node, node.expression, "REGEXP_SUBSTR")
        return self._text(node.this).str.extract(regex, 0)

    def _regexpinstr(self: Translator, node: exp.RegexpInstr) -> pl.Expr:
        """REGEXP_INSTR(s, regex): the 1-based character position of the first match, 0 if
        none."""
        _no_more_args(node, "REGEXP_INSTR", 2, "position", "occurrence", "option", "parameters",
                      "group")
        regex = self._regex(node, node.expression, "REGEXP_INSTR")
        s = self._text(node.this)
        found = s.str.find(regex)
        at = (_char_offset(s, found) + 1).cast(pl.Int32)
        return pl.when(s.is_null()).then(None).when(found.is_null()) \
            .then(pl.lit(0, pl.Int32)).otherwise(at)

    def _regexpextractall(self: Translator, node: exp.RegexpExtractAll) -> pl.Expr:
        """REGEXP_EXTRACT_ALL(s, regex[, group]): ARRAY<STRING> of ``group`` (1 by default)
        of every match. A group is read by matching the pattern again on each whole match,
        which is exact unless the pattern is anchored (``^``, ``$``, ``\\b``)."""
        _no_more_args(node, "REGEXP_EXTRACT_ALL", 3, "parameters", "position", "occurrence")
        regex = self._regex(node, node.expression, "REGEXP_EXTRACT_ALL")
        group = node.args.get("group")
        if group is not None and not (isinstance(group, exp.Literal) and not group.is_string):
            raise unsupported("REGEXP_EXTRACT_ALL with a group that is not an integer literal",
                              node)
        idx = 1 if group is None else int(group.this)  # type: ignore[union-attr]
        groups = len(pl.select(pl.lit("").str.extract_groups(regex)).to_series().struct.fields)
        if not 0 <= idx <= groups:
            raise error(f"REGEXP_EXTRACT_ALL group {idx} does not exist: the pattern {regex!r} "
                        f"has {groups} group{'' if groups == 1 else 's'}", node)
        matches = self._text(node.this).str.extract_all(regex)
        if idx == 0:
            return matches
        if _anchored(regex):
            raise unsupported(f"REGEXP_EXTRACT_ALL of group {idx} with an anchored pattern "
                              f"{regex!r}", node, "extract group 0, or drop ^, $ and \\b")
        return matches.list.eval(pl.element().str.extract(regex, idx))

    def _split(self: Translator, node: exp.Split) -> pl.Expr:
        """SPLIT(s, delimiter) → ARRAY<STRING>; an empty delimiter splits every character."""
        if node.args.get("limit") is not None:
            raise unsupported("SPLIT with a limit", node)
        s, by = self._text(node.this), self._text(node.expression)
        return pl.when(by.is_not_null()).then(s.str.split(by))

    # -- JSON -----------------------------------------------------------------------------
    def _json_path(self: Translator, node: exp.Expr, path: exp.Expr | None, fn: str) -> str:
        text = self._literal_string(node, path, f"{fn} with a path")
        plain = text.strip().removeprefix("lax ").strip()
        if plain.startswith("strict ") or not _JSON_PATH.fullmatch(plain):
            raise unsupported(f"{fn} with the path {text!r}", node,
                              "use a lax path of member names and array indexes, such as "
                              "'$.a.b[0]'")
        return plain

    def _json_match(self: Translator, json: exp.Expr, path: str) -> tuple[pl.Expr, pl.Expr]:
        """The value at ``path`` as text (strings unquoted, objects and arrays as compact
        JSON), and whether it is an object or array (read as: has a first member, or is
        written ``{}``/``[]``, so a string value ``'{}'`` counts as an object)."""
        s = self._text(json)
        value = s.str.json_path_match(path)
        member = s.str.json_path_match(f"{path}.*").is_not_null() | \
            s.str.json_path_match(f"{path}[*]").is_not_null()
        return value, member | value.is_in(["{}", "[]"])

    def _jsonvalue(self: Translator, node: exp.JSONValue) -> pl.Expr:
        """JSON_VALUE(json, path [RETURNING type]): the scalar at ``path``, NULL when it is
        missing, an object, an array, or not of the type (Flink's NULL ON EMPTY/ERROR)."""
        cond = node.args.get("on_condition")
        if cond is not None and any(not (isinstance(v, str) and v.upper().startswith("NULL "))
                                    for v in cond.args.values() if v is not None):
            raise unsupported(f"JSON_VALUE with {cond.sql()}", node,
                              "for a default in place of a missing value use "
                              "COALESCE(JSON_VALUE(...), default)")
        path = self._json_path(node, node.args.get("path"), "JSON_VALUE")
        value, container = self._json_match(node.this, path)
        scalar = pl.when(~container).then(value)
        returning = node.args.get("returning")
        if not isinstance(returning, exp.DataType):
            return scalar
        from tidal.sql.expressions import sql_type  # expressions imports this module

        to = sql_type(returning)
        if to == pl.Boolean:
            return pl.when(scalar == "true").then(True).when(scalar == "false").then(False)
        return scalar.cast(to, strict=False)

    def _fn_json_query(self: Translator, node: exp.Expr, args: list[exp.Expr]) -> pl.Expr:
        """JSON_QUERY(json, path): the object or array at ``path`` as JSON text (compact);
        NULL for a scalar or a missing path (no wrapper clauses)."""
        _arity(node, "JSON_QUERY", args, 2)
        value, container = self._json_match(args[0], self._json_path(node, args[1], "JSON_QUERY"))
        return pl.when(container).then(value)

    # -- URLs -----------------------------------------------------------------------------
    def _fn_url_encode(self: Translator, node: exp.Expr, args: list[exp.Expr]) -> pl.Expr:
        """URL_ENCODE(s): ``application/x-www-form-urlencoded`` in UTF-8, as Java's
        URLEncoder (a space is ``+``); Python over each batch, as the hashes."""
        _arity(node, "URL_ENCODE", args, 1)
        return self._text(args[0]).map_batches(_per_value(_url_encode), return_dtype=pl.String,
                                               is_elementwise=True)

    def _fn_url_decode(self: Translator, node: exp.Expr, args: list[exp.Expr]) -> pl.Expr:
        """URL_DECODE(s): the inverse of URL_ENCODE; NULL for a malformed ``%`` escape
        (Flink); bytes that are not UTF-8 become U+FFFD, as in Java."""
        _arity(node, "URL_DECODE", args, 1)
        return self._text(args[0]).map_batches(_per_value(_url_decode), return_dtype=pl.String,
                                               is_elementwise=True)

    def _parseurl(self: Translator, node: exp.ParseUrl) -> pl.Expr:
        """PARSE_URL(url, part[, key]) as Java's ``java.net.URL`` reads http(s), ftp and file
        URLs (others give NULL): HOST, PATH, QUERY, REF, PROTOCOL, AUTHORITY, FILE, USERINFO;
        with a key, the value of that query parameter."""
        part = self._literal_string(node, node.args.get("part_to_extract"),
                                    "PARSE_URL with a part").upper()
        url = self._text(node.this)
        key = node.args.get("key")
        if key is not None:
            name = self._literal_string(node, key, "PARSE_URL with a key")
            if part != "QUERY":
                return pl.lit(None, pl.String)
            query = url.str.extract(_URL, _URL_GROUPS["QUERY"])
            return query.str.extract(f"(?:&|^){re.escape(name)}=([^&]*)", 1)
        return self._url_part(url, part)

    def _url_part(self: Translator, url: pl.Expr, part: str) -> pl.Expr:
        if part in _URL_GROUPS:
            out = url.str.extract(_URL, _URL_GROUPS[part])
            if part == "PATH":  # a URL without a path has the path ''
                return pl.when(url.str.contains(_URL)).then(out.fill_null(""))
            return out.str.to_lowercase() if part == "PROTOCOL" else out
        authority = url.str.extract(_URL, _URL_GROUPS["AUTHORITY"])
        if part == "HOST":
            return authority.str.extract(r"^(?:[^@]*@)?(\[[^\]]*\]|[^:]*)", 1)
        if part == "USERINFO":
            return authority.str.extract("^([^@]*)@", 1)
        if part == "FILE":
            path = self._url_part(url, "PATH")
            query = url.str.extract(_URL, _URL_GROUPS["QUERY"])
            return pl.when(query.is_null()).then(path).otherwise(pl.concat_str([path, query],
                                                                               separator="?"))
        return pl.lit(None, pl.String)  # Flink: an unknown part gives NULL
