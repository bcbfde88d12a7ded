"""One local SparkSession for the whole test session: its JVM takes seconds to start."""

from __future__ import annotations

import shutil
from collections.abc import Iterator
from typing import Any

import pytest


@pytest.fixture(scope="session")
def spark() -> Iterator[Any]:
    if shutil.which("java") is None:
        pytest.fail("Spark needs Java 17+: `make test` installs it (apt-get install default-jre-headless)")
    import cmfq.spark

    session = cmfq.spark.session("local[2]", {"spark.sql.shuffle.partitions": "2",
                                              "spark.default.parallelism": "2"})
    yield session
    session.stop()
