"""The search filter: MLflow's grammar (``params.lr = '0.1' and metrics.loss < 0.1 and attributes.status =
'FINISHED' and tags.host LIKE 'gpu%'``), with ``metrics.NAME.min/.max/.last/.count``, ``metrics.NAME@CONTEXT``,
``context = 'validation'``, ``OR`` and parentheses besides.

A filter is parsed into a small tree and turned into SQL with every value bound as a parameter (nothing
of the filter's text ever becomes SQL). A syntax error names the position and what was expected.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any, Union

from ..errors import FilterSyntaxError

AGGREGATES = ("last", "min", "max", "count")
# attribute → (column of the lead rank row, is it a number)
ATTRIBUTES: dict[str, tuple[str, bool]] = {
    "run_id": ("r.run_id", False), "run_name": ("r.run_id", False), "experiment": ("r.experiment", False),
    "experiment_name": ("r.experiment", False), "status": ("r.run_status", False), "user": ("r.user", False),
    "user_id": ("r.user", False), "host": ("r.host", False), "run_dir": ("r.run_dir", False),
    "error": ("r.error", False), "task_id": ("r.task_id", False), "workflow_id": ("r.workflow_id", False),
    "start_time": ("r.start_ms", True), "end_time": ("r.end_ms", True), "duration": ("r.duration_s", True),
    "world_size": ("r.world_size", True), "ranks": ("r.world_size", True),
}
_PREFIXES = {"params": "param", "param": "param", "metrics": "metric", "metric": "metric",
             "attributes": "attribute", "attribute": "attribute", "attr": "attribute", "run": "attribute",
             "tags": "tag", "tag": "tag"}
_OPERATORS = ("!=", "<>", "<=", ">=", "=", "<", ">")
_BARE_KEY = re.compile(r"[A-Za-z0-9_\-/:.]+")
_NUMBER = re.compile(r"[+-]?(\d+\.?\d*|\.\d+)([eE][+-]?\d+)?")
_WORD = re.compile(r"[A-Za-z_]+")


@dataclass(frozen=True)
class Field:
    """What a clause looks at: a param, a metric series' summary, an attribute, a tag, or the contexts."""
    kind: str  # param, metric, attribute, tag, context
    key: str = ""
    context: str | None = None  # a metric's context (``metrics.loss@validation``); None: any context
    aggregate: str = "last"


@dataclass(frozen=True)
class Compare:
    field: Field
    op: str  # = != < <= > >= LIKE ILIKE IN NOT IN IS NULL IS NOT NULL
    value: Any = None  # a string, a number, a tuple of them (IN), None (IS NULL)


@dataclass(frozen=True)
class Both:
    parts: tuple["Node", ...]


@dataclass(frozen=True)
class Either:
    parts: tuple["Node", ...]


Node = Union[Compare, Both, Either]


class _Parser:
    def __init__(self, text: str):
        self.text = text
        self.pos = 0

    # ------------------------------------------------------------ reading
    def fail(self, expected: str) -> FilterSyntaxError:
        found = self.text[self.pos:self.pos + 20] or "the end"
        pointer = f"\n  {self.text}\n  {' ' * self.pos}^"
        return FilterSyntaxError(f"filter: at position {self.pos + 1}, expected {expected}, found {found!r}{pointer}")

    def skip(self) -> None:
        while self.pos < len(self.text) and self.text[self.pos].isspace():
            self.pos += 1

    def peek_word(self) -> str:
        self.skip()
        match = _WORD.match(self.text, self.pos)
        return match.group(0).upper() if match else ""

    def take_word(self, word: str) -> bool:
        if self.peek_word() == word:
            end = self.pos + len(word)
            if end == len(self.text) or not (self.text[end].isalnum() or self.text[end] == "_"):
                self.pos = end
                return True
        return False

    def take(self, symbol: str) -> bool:
        self.skip()
        if self.text.startswith(symbol, self.pos):
            self.pos += len(symbol)
            return True
        return False

    def quoted(self, quotes: str) -> str | None:
        """A quoted text (a doubled quote inside stands for itself), or None when none starts here."""
        self.skip()
        if self.pos >= len(self.text) or self.text[self.pos] not in quotes:
            return None
        quote, start = self.text[self.pos], self.pos
        self.pos += 1
        out = []
        while self.pos < len(self.text):
            char = self.text[self.pos]
            if char == quote:
                if self.text.startswith(quote * 2, self.pos):
                    out.append(quote)
                    self.pos += 2
                    continue
                self.pos += 1
                return "".join(out)
            out.append(char)
            self.pos += 1
        self.pos = start
        raise self.fail(f"a closing {quote}")

    # ------------------------------------------------------------ grammar
    def parse(self) -> Node | None:
        self.skip()
        if self.pos == len(self.text):
            return None
        node = self.either()
        self.skip()
        if self.pos != len(self.text):
            raise self.fail("AND, OR or the end of the filter")
        return node

    def either(self) -> Node:
        parts = [self.both()]
        while self.take_word("OR"):
            parts.append(self.both())
        return parts[0] if len(parts) == 1 else Either(tuple(parts))

    def both(self) -> Node:
        parts = [self.atom()]
        while self.take_word("AND"):
            parts.append(self.atom())
        return parts[0] if len(parts) == 1 else Both(tuple(parts))

    def atom(self) -> Node:
        if self.take("("):
            node = self.either()
            if not self.take(")"):
                raise self.fail("')'")
            return node
        field = self.field()
        return self.comparison(field)

    def field(self) -> Field:
        self.skip()
        start = self.pos
        if self.take_word("CONTEXT"):
            return Field("context")
        match = _WORD.match(self.text, self.pos)
        prefix = _PREFIXES.get(match.group(0).lower()) if match else None
        if prefix is None:
            raise self.fail("params.NAME, metrics.NAME, attributes.NAME, tags.NAME or context")
        self.pos = match.end()
        if not self.take("."):
            raise self.fail(f"'.' and a name after {match.group(0)!r}")
        key = self.quoted("`\"")
        bare = key is None
        if bare:
            found = _BARE_KEY.match(self.text, self.pos)
            if not found:
                raise self.fail("a name (quote it with backticks when it has spaces or other signs)")
            key = found.group(0)
            self.pos = found.end()
        context, aggregate = None, "last"
        if prefix == "metric":
            if bare:  # loss@validation.min: the aggregate and the context are read off the bare name
                for name in AGGREGATES:
                    if key.endswith("." + name):
                        key, aggregate = key[: -len(name) - 1], name
                        break
            if self.take("@"):
                context = self.quoted("`\"")
                if context is None:
                    found = _BARE_KEY.match(self.text, self.pos)
                    if not found:
                        raise self.fail("a context name after '@'")
                    context = found.group(0)
                    self.pos = found.end()
                    for name in AGGREGATES:
                        if context.endswith("." + name):
                            context, aggregate = context[: -len(name) - 1], name
                            break
            if self.take("."):
                word = self.peek_word().lower()
                if word not in AGGREGATES:
                    raise self.fail(f"one of {', '.join(AGGREGATES)} after the metric's '.'")
                self.pos += len(word)
                aggregate = word
        elif prefix == "attribute" and key not in ATTRIBUTES:
            self.pos = start
            raise self.fail(f"an attribute: {', '.join(sorted(ATTRIBUTES))}")
        if not key:
            raise self.fail("a non-empty name")
        return Field(prefix, key, context, aggregate)

    def comparison(self, field: Field) -> Compare:
        if self.take_word("IS"):
            negated = self.take_word("NOT")
            if not self.take_word("NULL"):
                raise self.fail("NULL after IS")
            return Compare(field, "IS NOT NULL" if negated else "IS NULL")
        negated = self.take_word("NOT")
        if self.take_word("IN"):
            if not self.take("("):
                raise self.fail("'(' after IN")
            values = [self.value()]
            while self.take(","):
                values.append(self.value())
            if not self.take(")"):
                raise self.fail("',' or ')' in the IN list")
            return self.checked(Compare(field, "NOT IN" if negated else "IN", tuple(values)))
        if negated:
            raise self.fail("IN after NOT")
        for word in ("LIKE", "ILIKE"):
            if self.take_word(word):
                value = self.value()
                if not isinstance(value, str):
                    raise self.fail(f"a quoted pattern after {word}")
                return self.checked(Compare(field, word, value))
        self.skip()
        op = next((o for o in _OPERATORS if self.text.startswith(o, self.pos)), None)
        if op is None:
            raise self.fail("a comparison: =, !=, <, <=, >, >=, LIKE, ILIKE, IN, NOT IN, IS NULL")
        self.pos += len(op)
        return self.checked(Compare(field, "!=" if op == "<>" else op, self.value()))

    def value(self) -> str | float:
        text = self.quoted("'\"")
        if text is not None:
            return text
        self.skip()
        match = _NUMBER.match(self.text, self.pos)
        if match:
            self.pos = match.end()
            return float(match.group(0))
        raise self.fail("a value: a quoted text ('FINISHED') or a number")

    def checked(self, clause: Compare) -> Compare:
        """Refuse what would compare a number with a text (a metric with 'a', a text attribute with <)."""
        values = clause.value if isinstance(clause.value, tuple) else (clause.value,)
        kind, key = clause.field.kind, clause.field.key
        numeric = kind == "metric" or (kind == "attribute" and ATTRIBUTES[key][1] and key not in ("start_time",
                                                                                                    "end_time"))
        if numeric and any(isinstance(v, str) for v in values):
            raise FilterSyntaxError(f"filter: {_name(clause.field)} is a number; compare it with a number, not "
                                    f"{next(v for v in values if isinstance(v, str))!r}")
        if clause.op in ("<", "<=", ">", ">=") and kind in ("tag", "context") and isinstance(clause.value, str):
            raise FilterSyntaxError(f"filter: {_name(clause.field)} is a text; use =, !=, LIKE, ILIKE or IN with it")
        if clause.op in ("LIKE", "ILIKE") and numeric:
            raise FilterSyntaxError(f"filter: {_name(clause.field)} is a number; LIKE compares texts")
        return clause


def _name(field: Field) -> str:
    if field.kind == "context":
        return "context"
    plural = {"param": "params", "metric": "metrics", "attribute": "attributes", "tag": "tags"}[field.kind]
    return f"{plural}.{field.key}" + (f"@{field.context}" if field.context else "")


def parse_filter(text: str | None) -> Node | None:
    """The tree of a filter; None for an empty one (every run). FilterSyntaxError when it does not parse."""
    if text is None:
        return None
    if not isinstance(text, str):
        raise FilterSyntaxError(f"filter: a filter is a text such as \"metrics.loss < 0.1\", not a {type(text).__name__}")
    return _Parser(text).parse()


def parse_order(items: list[str] | str | None) -> list[tuple[Field, bool]]:
    """``["metrics.loss", "attributes.start_time DESC"]`` → [(field, descending)]."""
    if items is None:
        return []
    out = []
    for item in [items] if isinstance(items, str) else items:
        parser = _Parser(item)
        field = parser.field()
        descending = parser.take_word("DESC")
        if not descending:
            parser.take_word("ASC")
        parser.skip()
        if parser.pos != len(item):
            raise parser.fail("ASC, DESC or the end of the order")
        out.append((field, descending))
    return out


def like(text: Any, pattern: str, insensitive: int) -> int:
    """SQL LIKE as MLflow means it: ``%`` any run of characters, ``_`` one, case-sensitive unless ILIKE."""
    if text is None:
        return 0
    regex = _LIKE_CACHE.get((pattern, insensitive))
    if regex is None:
        body = "".join(".*" if c == "%" else "." if c == "_" else re.escape(c) for c in pattern)
        regex = re.compile(body, re.DOTALL | (re.IGNORECASE if insensitive else 0))
        _LIKE_CACHE[pattern, insensitive] = regex
    return 1 if regex.fullmatch(str(text)) else 0


_LIKE_CACHE: dict[tuple[str, int], re.Pattern] = {}


def to_sql(node: Node | None) -> tuple[str, list[Any]]:
    """A WHERE condition over the lead rank rows ``r`` and its bound values."""
    if node is None:
        return "1", []
    if isinstance(node, (Both, Either)):
        parts = [to_sql(part) for part in node.parts]
        joiner = " AND " if isinstance(node, Both) else " OR "
        return "(" + joiner.join(sql for sql, _ in parts) + ")", [v for _, values in parts for v in values]
    return _clause(node)


def _test(column: str, op: str, value: Any) -> tuple[str, list[Any]]:
    """``column op value`` in SQL, values bound."""
    if op in ("LIKE", "ILIKE"):
        return f"yp_like({column}, ?, {1 if op == 'ILIKE' else 0})", [value]
    if op in ("IN", "NOT IN"):
        return f"{column} {op} ({', '.join('?' for _ in value)})", list(value)
    return f"{column} {op} ?", [value]


def value_sql(field: Field) -> tuple[str, list[Any]]:
    """A SQL expression for the field's value on the lead rank row ``r`` (NULL where the run has none)."""
    if field.kind == "attribute":
        return ATTRIBUTES[field.key][0], []
    if field.kind == "metric":
        where, values = "m.unit = r.unit AND m.key = ?", [field.key]
        if field.context is not None:
            where += " AND m.context = ?"
            values.append(field.context)
        return f"(SELECT m.{field.aggregate} FROM metrics m WHERE {where} ORDER BY m.context = 'training' DESC, " \
               f"m.context LIMIT 1)", values
    if field.kind == "param":
        return "(SELECT COALESCE(p.number, p.text) FROM params p WHERE p.unit = r.unit AND p.key = ? LIMIT 1)", \
            [field.key]
    if field.kind == "tag":
        return "(SELECT t.text FROM tags t WHERE t.unit = r.unit AND t.key = ? LIMIT 1)", [field.key]
    return "(SELECT MIN(c.name) FROM contexts c WHERE c.unit = r.unit)", []


def _clause(clause: Compare) -> tuple[str, list[Any]]:
    field, op, value = clause.field, clause.op, clause.value
    if field.kind == "attribute":
        column, numeric = ATTRIBUTES[field.key]
        if op in ("IS NULL", "IS NOT NULL"):
            return f"{column} {op}", []
        if field.key in ("start_time", "end_time") and isinstance(value, str):
            column = column.replace("_ms", "_time")  # an ISO time compares with the ISO text
        return _test(column, op, value)
    if field.kind == "metric":
        where, values = "m.unit = r.unit AND m.key = ?", [field.key]
        if field.context is not None:
            where += " AND m.context = ?"
            values.append(field.context)
        if op in ("IS NULL", "IS NOT NULL"):
            return f"{'NOT ' if op == 'IS NULL' else ''}EXISTS (SELECT 1 FROM metrics m WHERE {where})", values
        test, more = _test(f"m.{field.aggregate}", op, value)
        return f"EXISTS (SELECT 1 FROM metrics m WHERE {where} AND {test})", values + more
    table, alias, column = {"param": ("params", "p", None), "tag": ("tags", "t", "t.text"),
                            "context": ("contexts", "c", "c.name")}[field.kind]
    where, values = (f"{alias}.unit = r.unit", []) if field.kind == "context" else \
        (f"{alias}.unit = r.unit AND {alias}.key = ?", [field.key])
    if op in ("IS NULL", "IS NOT NULL"):
        return f"{'NOT ' if op == 'IS NULL' else ''}EXISTS (SELECT 1 FROM {table} {alias} WHERE {where})", values
    if field.kind == "param":  # MLflow compares params as text; a number compares with a number param
        candidates = value if isinstance(value, tuple) else (value,)
        column = "p.number" if all(isinstance(v, float) for v in candidates) else "p.text"
        if column == "p.text" and any(isinstance(v, float) for v in candidates):
            value = tuple(_number_text(v) if isinstance(v, float) else v for v in candidates)
            value = value if isinstance(clause.value, tuple) else value[0]
    test, more = _test(column, op, value)
    return f"EXISTS (SELECT 1 FROM {table} {alias} WHERE {where} AND {test})", values + more


def _number_text(value: float) -> str:
    return str(int(value)) if value.is_integer() else repr(value)
