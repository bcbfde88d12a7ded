"""``from cmfq.compat.cmfquery import CmfQuery``: cmflib's reader API over a cmfq warehouse."""

from cmfq.ingest.compat.cmfquery import CmfQuery

__all__ = ["CmfQuery"]
