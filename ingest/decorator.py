"""Implicit tracking: ``@cmfq.track`` records every call of a function as an execution.

    import cmfq

    @cmfq.track(stage="train", inputs=["data_path"], outputs=["model_path"])
    def train(data_path: str, model_path: str, n_est: int = 100) -> dict[str, float]:
        ...
        return {"roc_auc": 0.91}

Each call becomes one execution of ``stage`` (default: the function's name):

- the arguments become its params: JSON values as they are, paths as text, anything else
  by its type name (``"<DataFrame>"``); ``self`` and ``cls`` are left out;
- the arguments named in ``inputs`` are logged as input artifacts before the call, those in
  ``outputs`` as output artifacts after it returns (a path, or a list of paths; a mapping
  ``{"model_path": "model"}`` also sets the kind, otherwise it is guessed from the name);
- a returned mapping of numbers is logged as the execution's final metrics;
- an exception marks the execution failed and propagates unchanged.

Calls made inside a tracked call (or inside ``with tracker.execution(...)``) record it as
their parent. The tracker is found at call time, not at import time: ``tracker=`` if given,
else the enclosing tracked call's tracker, else one shared tracker per (pipeline, warehouse),
where the pipeline is ``pipeline=``, ``$CMFQ_PIPELINE``, or the name of the script being
run, and the warehouse is ``warehouse=``, ``$CMFQ_WAREHOUSE`` or ``./.cmfq``.
:func:`set_default_tracker` makes one tracker the default for every undecided call.
"""

from __future__ import annotations

import functools
import inspect
import json
import math
import os
import sys
import threading
import warnings
from collections.abc import Callable, Iterable, Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any, TypeVar, cast, overload

from cmfq.errors import InvalidInputError

if TYPE_CHECKING:
    from cmfq.ingest.tracker import Execution, Tracker

ENV_PIPELINE = "CMFQ_PIPELINE"
#: A parameter whose JSON text is longer than this is recorded by its type name.
MAX_PARAM_JSON = 4096
F = TypeVar("F", bound=Callable[..., Any])

_trackers: dict[tuple[str, str], Tracker] = {}
_default: Tracker | None = None
_lock = threading.Lock()


@overload
def track(stage: F) -> F: ...


@overload
def track(stage: str | None = None, *, inputs: Iterable[str] | Mapping[str, str] = (),
          outputs: Iterable[str] | Mapping[str, str] = (), pipeline: str | None = None,
          warehouse: str | os.PathLike[str] | None = None, tracker: Tracker | None = None
          ) -> Callable[[F], F]: ...


def track(stage: str | Callable[..., Any] | None = None, *, inputs: Iterable[str] | Mapping[str, str] = (),
          outputs: Iterable[str] | Mapping[str, str] = (), pipeline: str | None = None,
          warehouse: str | os.PathLike[str] | None = None, tracker: Tracker | None = None) -> Any:
    """Decorate a function (or method) so that each call is recorded as an execution.

    ``@cmfq.track`` alone uses the function's name as the stage.
    """
    if callable(stage):
        return track()(stage)
    ins, outs = _kinds(inputs, "inputs"), _kinds(outputs, "outputs")

    def decorate(fn: F) -> F:
        if inspect.isgeneratorfunction(fn) or inspect.isasyncgenfunction(fn):
            raise InvalidInputError(f"@cmfq.track cannot record generator {fn.__qualname__!r}: its body runs "
                                    "after the call returns.", hint="Decorate the function that consumes it.")
        sig = inspect.signature(fn)
        _check_names(fn, sig, {**ins, **outs})
        spec = _Spec(stage or fn.__name__, ins, outs, pipeline, warehouse, tracker, sig, fn)
        if inspect.iscoroutinefunction(fn):
            @functools.wraps(fn)
            async def run_async(*args: Any, **kwargs: Any) -> Any:
                bound = spec.bind(args, kwargs)
                if bound is None:
                    return await fn(*args, **kwargs)
                with spec.open(bound) as ex:
                    spec.before(ex, bound)
                    result = await fn(*args, **kwargs)
                    spec.after(ex, bound, result)
                    return result
            return cast(F, run_async)

        @functools.wraps(fn)
        def run(*args: Any, **kwargs: Any) -> Any:
            bound = spec.bind(args, kwargs)
            if bound is None:  # a call that does not match the signature: let Python say so
                return fn(*args, **kwargs)
            with spec.open(bound) as ex:
                spec.before(ex, bound)
                result = fn(*args, **kwargs)
                spec.after(ex, bound, result)
                return result
        return cast(F, run)

    return decorate


def set_default_tracker(tracker: Tracker | None) -> None:
    """Make ``tracker`` the one that tracked calls use when nothing else decides (``None``
    goes back to one tracker per pipeline and warehouse)."""
    global _default
    _default = tracker


def default_pipeline() -> str:
    """``$CMFQ_PIPELINE``, else the name of the script being run (``train`` for ``train.py``),
    else ``default``."""
    env = os.environ.get(ENV_PIPELINE)
    if env:
        return env
    main = sys.argv[0] if sys.argv else ""
    stem = Path(main).stem if main and main not in ("-c", "-m") else ""
    return stem if stem and not stem.startswith("<") else "default"


class _Spec:
    """What one decorated function records, and how it finds its tracker."""

    def __init__(self, stage: str, inputs: dict[str, str], outputs: dict[str, str], pipeline: str | None,
                 warehouse: str | os.PathLike[str] | None, tracker: Tracker | None,
                 sig: inspect.Signature, fn: Callable[..., Any]) -> None:
        self.stage, self.inputs, self.outputs = stage, inputs, outputs
        self.pipeline, self.warehouse, self.tracker = pipeline, warehouse, tracker
        self.sig = sig
        params = list(sig.parameters)
        self.skip = {params[0]} if params and params[0] in ("self", "cls") else set()
        self.function = f"{fn.__module__}.{fn.__qualname__}"

    def bind(self, args: tuple[Any, ...], kwargs: dict[str, Any]) -> inspect.BoundArguments | None:
        try:
            bound = self.sig.bind(*args, **kwargs)
        except TypeError:
            return None
        bound.apply_defaults()
        return bound

    def open(self, bound: inspect.BoundArguments) -> Execution:
        params: dict[str, Any] = {}
        for name, value in bound.arguments.items():
            if name in self.skip:
                continue
            kind = self.sig.parameters[name].kind
            if kind is inspect.Parameter.VAR_KEYWORD:
                params.update({k: param_value(v) for k, v in value.items()})
            else:
                params[name] = param_value(value)
        return self._tracker().execution(self.stage, params, type=self.function.rsplit(".", 1)[-1],
                                         properties={"function": self.function})

    def before(self, ex: Execution, bound: inspect.BoundArguments) -> None:
        for name, kind in self.inputs.items():
            for path in _paths(bound.arguments.get(name), name):
                if _exists(path, name, "input"):
                    ex.log_input(path, kind=kind, role=name)

    def after(self, ex: Execution, bound: inspect.BoundArguments, result: Any) -> None:
        for name, kind in self.outputs.items():
            for path in _paths(bound.arguments.get(name), name):
                if _exists(path, name, "output"):
                    ex.log_output(path, kind=kind, role=name)
        if isinstance(result, Mapping):
            numbers = {str(k): float(v) for k, v in result.items() if _is_number(v)}
            if numbers:
                ex.log_metrics(numbers)

    def _tracker(self) -> Tracker:
        if self.tracker is not None:
            return self.tracker
        if self.pipeline is None and self.warehouse is None:
            from cmfq.ingest.tracker import current_execution

            outer = current_execution()
            if outer is not None:
                return outer.tracker
            if _default is not None:
                return _default
        return shared_tracker(self.pipeline or default_pipeline(), self.warehouse)


def shared_tracker(pipeline: str, warehouse: str | os.PathLike[str] | None = None) -> Tracker:
    """The tracker that tracked calls share for ``pipeline`` in ``warehouse`` (created on first
    use, closed at interpreter exit)."""
    from cmfq.config import warehouse_path
    from cmfq.ingest.tracker import Tracker

    key = (pipeline, str(warehouse_path(warehouse).resolve()))
    with _lock:
        found = _trackers.get(key)
        if found is None or found._closed:
            found = _trackers[key] = Tracker(pipeline, warehouse)
        return found


def param_value(value: Any) -> Any:
    """A parameter as JSON can hold it: JSON values as they are, paths as text, numpy-like
    scalars as numbers, non-finite floats as text, anything else as ``"<TypeName>"``."""
    if value is None or isinstance(value, (bool, int, str)):
        return value
    if isinstance(value, float):
        return value if math.isfinite(value) else str(value)
    if isinstance(value, os.PathLike):
        return os.fspath(value)
    item = getattr(value, "item", None)
    if callable(item) and getattr(value, "shape", None) == ():
        try:
            return param_value(item())
        except (TypeError, ValueError):
            pass
    if isinstance(value, (list, tuple, dict)):
        try:
            text = json.dumps(value, allow_nan=False, sort_keys=True)
        except (TypeError, ValueError):
            text = ""
        if text and len(text) <= MAX_PARAM_JSON:
            return json.loads(text)
    return f"<{type(value).__name__}>"


def guess_kind(name: str) -> str:
    """The artifact kind suggested by an argument's name: model, metrics, featureset or dataset."""
    lowered = name.lower()
    for word, kind in (("model", "model"), ("metric", "metrics"), ("feature", "featureset")):
        if word in lowered:
            return kind
    return "dataset"


def _kinds(names: Iterable[str] | Mapping[str, str], what: str) -> dict[str, str]:
    if isinstance(names, str):
        raise InvalidInputError(f"{what} must be a list of argument names, not the string {names!r}.",
                                hint=f'Write {what}=["{names}"].')
    if isinstance(names, Mapping):
        return {str(k): str(v) for k, v in names.items()}
    return {str(n): guess_kind(str(n)) for n in names}


def _check_names(fn: Callable[..., Any], sig: inspect.Signature, names: Mapping[str, str]) -> None:
    takes_kwargs = any(p.kind is inspect.Parameter.VAR_KEYWORD for p in sig.parameters.values())
    unknown = sorted(n for n in names if n not in sig.parameters)
    if unknown and not takes_kwargs:
        raise InvalidInputError(f"@cmfq.track names {unknown} in inputs/outputs, but {fn.__qualname__}() has "
                                f"no such argument.", hint=f"Its arguments are {list(sig.parameters)}.")


def _paths(value: Any, name: str) -> list[str | os.PathLike[str]]:
    if value is None:
        return []
    if isinstance(value, (str, os.PathLike)):
        return [value]
    if isinstance(value, (list, tuple, set, frozenset)) and all(isinstance(v, (str, os.PathLike)) for v in value):
        return list(value)
    warnings.warn(f"cmfq: argument {name!r} is not a path (got {type(value).__name__}); not logged as an "
                  "artifact.", stacklevel=4)
    return []


def _exists(path: str | os.PathLike[str], name: str, direction: str) -> bool:
    if os.path.exists(path):
        return True
    warnings.warn(f"cmfq: {direction} {name}={os.fspath(path)!r} does not exist; not logged.", stacklevel=4)
    return False


def _is_number(value: Any) -> bool:
    if isinstance(value, bool):
        return False
    if isinstance(value, (int, float)):
        return True
    item = getattr(value, "item", None)
    return callable(item) and getattr(value, "shape", None) == () and isinstance(item(), (int, float))
