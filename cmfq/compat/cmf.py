"""``from cmfq.compat.cmf import Cmf``: cmflib's logging API over a cmfq warehouse."""

from cmfq.ingest.compat.cmf import Cmf, DataSlice

__all__ = ["Cmf", "DataSlice"]
