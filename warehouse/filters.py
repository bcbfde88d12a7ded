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
