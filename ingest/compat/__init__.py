"""cmflib compatibility: ``Cmf`` and ``CmfQuery`` over a cmfq warehouse (imported as ``cmfq.compat``)."""
