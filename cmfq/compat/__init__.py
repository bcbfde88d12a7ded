"""Drop-in replacements for cmflib's API, writing to and reading from a cmfq warehouse.

Change only the imports of code written for cmflib::

    from cmfq.compat.cmf import Cmf               # was: from cmflib.cmf import Cmf
    from cmfq.compat.cmfquery import CmfQuery     # was: from cmflib.cmfquery import CmfQuery

Differences from cmflib 0.1.0:

- Storage: facts go to a cmfq warehouse (``$CMFQ_WAREHOUSE``, else ``.cmfq`` next to
  ``filepath``), not to an MLMD SQLite file; no git repository, DVC remote or ``cmf init`` is
  needed, and cmfq never runs ``git commit`` or ``dvc add`` (``finalize()`` only makes the
  facts durable). Hashes are DVC-compatible md5s computed by cmfq.
- Ids: executions are UUIDs (``Execution_uuid`` is the id), artifacts are their content hash;
  ``Context_ID``/``Pipeline_id`` are stable integers derived from the names.
- Names: artifacts are named ``<path>:<md5>`` in frames (models without cmflib's trailing
  ``:<execution id>``); the reader also accepts a bare path or hash.
- Executions end: as completed when the next ``create_execution`` starts or the process exits,
  as failed when it exits with an uncaught exception (cmflib records no state).
  ``create_new_execution=False`` (reusing an execution) is not supported: a new one is created.
- Metrics: ``log_execution_metrics`` values become final metrics plus a ``metrics`` artifact;
  ``log_metric`` points are stored at once as step metrics ``<metrics_name>/<key>`` (steps
  from 1), and ``commit_metrics`` adds a ``step_metrics`` artifact instead of a Parquet file;
  ``CmfQuery.get_metrics`` reads them back (cmflib 0.1.0 returns None there).
- Data slices: committed as a ``dataslice`` artifact whose properties list the members; no
  Parquet file is written, so ``read_dataslice``/``update_dataslice`` are not provided.
- The Python environment is recorded for every execution as its ``env_hash``, not as an
  ``Environment`` input event, so it is not among an artifact's parents.
- ``graph=True`` (Neo4j) is ignored; ``is_server=True`` is refused; methods for CMF's server
  and merger (``merge_created_*``, ``update_context``, ``update_*_url``, ``log_dvc_lock``,
  ``link_artifacts``, ``log_validation_output``) raise an error saying what to use instead.
- Frames are pandas DataFrames with CMF's (sorted) columns; they also accept
  ``drop(columns=..., axis=1)``, which cmflib's examples use and pandas 3 refuses.
"""
