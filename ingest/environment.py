"""The Python environment of a run, as a content-addressed ``env`` artifact.

The environment's id is the md5 of its canonical text (the Python version and the sorted
``name==version`` list of installed distributions), so every execution run in the same
environment, on any site, points at the same artifact.
"""

from __future__ import annotations

import hashlib
import platform
from dataclasses import dataclass
from functools import lru_cache


@dataclass(frozen=True)
class Environment:
    hash: str
    python: str
    packages: tuple[str, ...]

    def text(self) -> str:
        return f"python=={self.python}\n" + "".join(p + "\n" for p in self.packages)


@lru_cache(maxsize=1)
def current_environment() -> Environment:
    from importlib.metadata import distributions

    names = {}
    for dist in distributions():
        name = dist.metadata["Name"]
        if name:
            names[name.lower().replace("_", "-")] = dist.version
    packages = tuple(sorted(f"{n}=={v}" for n, v in names.items()))
    python = platform.python_version()
    env = Environment("", python, packages)
    digest = hashlib.md5(env.text().encode()).hexdigest()
    return Environment(digest, python, packages)
