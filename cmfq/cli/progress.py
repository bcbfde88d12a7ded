"""Progress bars for long work, on stderr, shown only when the work is long."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import AbstractContextManager, contextmanager

from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

#: Below this many items, no bar: it would only flicker.
MIN_ITEMS = 200


@contextmanager
def bar(description: str) -> Iterator[Callable[[int, int], None]]:
    """A ``(done, total)`` callback drawing a bar once ``total`` is large enough."""
    progress: Progress | None = None
    task = None

    def update(done: int, total: int) -> None:
        nonlocal progress, task
        if total < MIN_ITEMS:
            return
        if progress is None:
            progress = Progress(TextColumn(description), BarColumn(), MofNCompleteColumn(),
                                TimeElapsedColumn(), transient=True)
            progress.start()
            task = progress.add_task(description, total=total)
        progress.update(task, completed=done, total=total)  # type: ignore[arg-type]

    try:
        yield update
    finally:
        if progress is not None:
            progress.stop()


def index_progress() -> AbstractContextManager[Callable[[int, int], None]]:
    return bar("Indexing new partitions")
