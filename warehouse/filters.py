"""Filter conditions such as ``n_est>=100`` or ``roc_auc>0.9``, parsed, never pasted into SQL.

A condition is ``<name><op><value>``. The operator comes from a fixed list, the name and the
value become bound parameters, so quotes, semicolons or SQL in a filter are only ever data.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from cmfq.errors import InvalidInputError

OPS = ("<=", ">=", "!=", "==", "=", "<", ">")
_SQL_OP = {"<=": "<=", ">=": ">=", "!=": "<>", "==": "=", "=": "=", "<": "<", ">": ">"}
_SPLIT = re.compile(r"^(?P<name>.+?)\s*(?P<op><=|>=|!=|==|=|<|>)\s*(?P<value>.*)$", re.S)


@dataclass(frozen=True)
class Condition:
    name: str
    op: str  # one of the SQL operators in _SQL_OP's values
    value: float | str

    @property
    def numeric(self) -> bool:
        return isinstance(self.value, float)

    @classmethod
    def parse(cls, text: str) -> Condition:
        """Parse ``name op value``; numbers compare as numbers, anything else as text.

        >>> Condition.parse("n_est>=100")
        Condition(name='n_est', op='>=', value=100.0)
        """
        m = _SPLIT.match(text.strip())
        if not m or not m["name"].strip():
            raise InvalidInputError(
                f"Cannot read the filter {text!r}.",
                hint="Write it as NAME OP VALUE with OP one of = != < <= > >=, e.g. n_est>=100.",
            )
        return cls(m["name"].strip(), _SQL_OP[m["op"]], _value(m["value"].strip()))

    @classmethod
    def equals(cls, name: str, value: object) -> Condition:
        if isinstance(value, bool):
            return cls(name, "=", "true" if value else "false")
        if isinstance(value, int | float):
            return cls(name, "=", float(value))
        return cls(name, "=", str(value))


def _value(text: str) -> float | str:
    if len(text) >= 2 and text[0] == text[-1] and text[0] in "'\"":
        return text[1:-1]
    try:
        return float(text)
    except ValueError:
        return text


# -- expressions: conditions joined by AND, OR, NOT and parentheses ------------------------------

#: Fields an expression may name besides params.<key> and metrics.<name>.
FIELDS = ("pipeline", "stage", "status", "project", "site", "host", "git_commit", "git_branch", "type")

_TOKEN = re.compile(r"""\s*(?:
    (?P<lp>\() | (?P<rp>\)) |
    (?P<op><=|>=|!=|<>|==|=|<|>) |
    (?P<str>'(?:[^'\\]|\\.)*'|"(?:[^"\\]|\\.)*") |
    (?P<num>[-+]?(?:\d+\.?\d*|\.\d+)(?:[eE][-+]?\d+)?(?![\w.])) |
    (?P<word>[A-Za-z_][\w\-]*(?:\.(?:[\w\-]+|'(?:[^'\\]|\\.)*'|"(?:[^"\\]|\\.)*"))*)
)""", re.X)


@dataclass(frozen=True)
class Compiled:
    """An expression as SQL text with ``?`` placeholders and the values bound to them."""

    sql: str
    args: tuple[object, ...]
    metrics: tuple[str, ...] = ()  # the metric names the expression mentions


def compile_where(text: str, *, params: str = "params", execution_id: str = "id",
                  metric_sql: str = "(SELECT f.value FROM final_metrics AS f WHERE f.execution_id = {id} "
                                    "AND f.name = ?)") -> Compiled:
    """Compile e.g. ``params.n_est > 50 AND (metrics.roc_auc >= 0.9 OR stage = 'train')``.

    ``params.<key>`` reads the JSON column ``params``; ``metrics.<name>`` an execution's final
    metric (``metric_sql``, one placeholder for the name); plain names the columns in FIELDS.
    Numbers compare as numbers, anything else as text. Names and values are bound as
    parameters: a quote or semicolon in a filter is only ever data.
    """
    tokens = _tokenize(text)
    parser = _Parser(tokens, text, params, metric_sql.format(id=execution_id))
    sql = parser.expr()
    if parser.pos != len(tokens):
        raise _syntax(text, f"unexpected {tokens[parser.pos][1]!r}")
    return Compiled(sql, tuple(parser.args), tuple(dict.fromkeys(parser.metrics)))


def _tokenize(text: str) -> list[tuple[str, str]]:
    tokens, pos = [], 0
    while pos < len(text):
        if text[pos:].strip() == "":
            break
        m = _TOKEN.match(text, pos)
        if not m or m.end() == pos:
            raise _syntax(text, f"cannot read {text[pos:pos + 10]!r}")
        kind = m.lastgroup or ""
        tokens.append((kind, m.group(kind)))
        pos = m.end()
    if not tokens:
        raise _syntax(text, "it is empty")
    return tokens


class _Parser:
    def __init__(self, tokens: list[tuple[str, str]], text: str, params: str, metric_sql: str) -> None:
        self.tokens, self.text, self.pos = tokens, text, 0
        self.params, self.metric_sql = params, metric_sql
        self.args: list[object] = []
        self.metrics: list[str] = []

    def peek(self) -> tuple[str, str] | None:
        return self.tokens[self.pos] if self.pos < len(self.tokens) else None

    def keyword(self, word: str) -> bool:
        tok = self.peek()
        if tok and tok[0] == "word" and tok[1].upper() == word:
            self.pos += 1
            return True
        return False

    def expr(self) -> str:
        parts = [self.conjunction()]
        while self.keyword("OR"):
            parts.append(self.conjunction())
        return parts[0] if len(parts) == 1 else "(" + " OR ".join(parts) + ")"

    def conjunction(self) -> str:
        parts = [self.negation()]
        while self.keyword("AND"):
            parts.append(self.negation())
        return parts[0] if len(parts) == 1 else "(" + " AND ".join(parts) + ")"

    def negation(self) -> str:
        if self.keyword("NOT"):
            return f"(NOT coalesce({self.negation()}, false))"
        tok = self.peek()
        if tok and tok[0] == "lp":
            self.pos += 1
            inner = self.expr()
            if not (self.peek() and self.peek()[0] == "rp"):  # type: ignore[index]
                raise _syntax(self.text, "a '(' is not closed")
            self.pos += 1
            return inner
        return self.comparison()

    def comparison(self) -> str:
        field = self.take("word", "a name such as params.n_est, metrics.roc_auc or stage")
        op = _SQL_OP[self.take("op", "an operator (= != < <= > >=)")]
        kind, raw = self.tokens[self.pos] if self.pos < len(self.tokens) else ("", "")
        if kind not in ("num", "str", "word"):
            raise _syntax(self.text, f"a value is missing after {field} {op}")
        self.pos += 1
        value: object = float(raw) if kind == "num" else _unquote(raw) if kind == "str" else raw
        numeric = isinstance(value, float)
        target = self.target(field, numeric)
        self.args.append(value)
        return f"({target} {op} ?)"

    def target(self, field: str, numeric: bool) -> str:
        head, _, name = field.partition(".")
        name = _unquote(name) if name[:1] in "'\"" else name
        if head.lower() in ("params", "param", "p") and name:
            self.args.append(name)
            expr = f"json_extract_string({self.params}, json_key_path(?))"
            return f"TRY_CAST({expr} AS DOUBLE)" if numeric else expr
        if head.lower() in ("metrics", "metric", "m") and name:
            self.args.append(name)
            self.metrics.append(name)
            return self.metric_sql if numeric else f"CAST({self.metric_sql} AS VARCHAR)"
        if not name and field.lower() in FIELDS:
            return f'"{field.lower()}"' if not numeric else f'TRY_CAST("{field.lower()}" AS DOUBLE)'
        raise _syntax(self.text, f"unknown name {field!r} (use params.<key>, metrics.<name> or one of "
                      f"{', '.join(FIELDS)})")

    def take(self, kind: str, what: str) -> str:
        tok = self.peek()
        if not tok or tok[0] != kind:
            raise _syntax(self.text, f"expected {what}" + (f", found {tok[1]!r}" if tok else " at the end"))
        self.pos += 1
        return tok[1]


def _unquote(text: str) -> str:
    return re.sub(r"\\(.)", r"\1", text[1:-1])


def _syntax(text: str, problem: str) -> InvalidInputError:
    return InvalidInputError(f"Cannot read the filter {text!r}: {problem}.",
                             hint="Example: params.n_est > 50 AND (metrics.roc_auc >= 0.9 OR stage = 'train').")
