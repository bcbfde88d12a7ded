"""What cmfq's OpenLineage exporter and importer agree on: names, schema URLs, custom facets.

An execution is one run of the job ``{namespace: <pipeline>, name: <stage>}``; its id is the
run id. An artifact is a dataset named from its URI by OpenLineage's naming conventions
(``file`` + path, ``s3://bucket`` + key, ...; ``cmfq`` + its name when it has no URI); its
content hash is the standard ``version`` facet (``datasetVersion``).

Custom facets (``_schemaURL`` names their version) carry what OpenLineage has no place for:

- run ``cmfq_execution``: pipeline, stage, status, type, site, host, user, cmd, git, env hash,
  parent, error and properties;
- run ``cmfq_params``: ``{"params": {...}}``;
- run ``cmfq_metrics``: ``{"metrics": [{"name", "step", "value", "at"}, ...]}`` (every point);
- dataset ``cmfq_artifact``: hash, kind, name, uri, size, properties.
"""

from __future__ import annotations

from urllib.parse import urlsplit

import cmfq

SPEC = "https://openlineage.io/spec/2-0-2/OpenLineage.json"
RUN_EVENT_SCHEMA = f"{SPEC}#/$defs/RunEvent"
FACET_SCHEMAS = {
    "parent": "https://openlineage.io/spec/facets/1-2-0/ParentRunFacet.json#/$defs/ParentRunFacet",
    "errorMessage": "https://openlineage.io/spec/facets/1-0-1/ErrorMessageRunFacet.json#/$defs/ErrorMessageRunFacet",
    "jobType": "https://openlineage.io/spec/facets/2-0-4/JobTypeJobFacet.json#/$defs/JobTypeJobFacet",
    "sourceCodeLocation": "https://openlineage.io/spec/facets/1-1-0/SourceCodeLocationJobFacet.json"
                          "#/$defs/SourceCodeLocationJobFacet",
    "version": "https://openlineage.io/spec/facets/1-0-1/DatasetVersionDatasetFacet.json"
               "#/$defs/DatasetVersionDatasetFacet",
}
CUSTOM_VERSION = "1-0-0"
CUSTOM_FACETS = ("cmfq_execution", "cmfq_params", "cmfq_metrics", "cmfq_artifact")
#: Status of a cmfq execution -> the eventType of its final event (a running one has none).
FINAL_EVENT = {"completed": "COMPLETE", "failed": "FAIL", "interrupted": "ABORT"}
#: eventType -> status.
STATUS_OF_EVENT = {"START": "running", "RUNNING": "running", "COMPLETE": "completed", "FAIL": "failed",
                   "ABORT": "interrupted", "OTHER": None}


def producer() -> str:
    """The URI naming this producer in every event and facet."""
    return f"urn:cmfq:{cmfq.__version__}"


def custom_schema(facet: str) -> str:
    """The ``_schemaURL`` of one of cmfq's custom facets."""
    return f"urn:cmfq:facets:{CUSTOM_VERSION}:{facet}"


def facet(facet_name: str, /, **fields: object) -> dict[str, object]:
    """A facet object: ``_producer``, ``_schemaURL`` and the fields."""
    schema = FACET_SCHEMAS.get(facet_name) or custom_schema(facet_name)
    return {"_producer": producer(), "_schemaURL": schema, **fields}


def dataset_name(uri: str | None, name: str) -> tuple[str, str]:
    """(namespace, name) of an artifact, by OpenLineage's naming conventions."""
    if uri:
        parts = urlsplit(uri)
        if parts.scheme == "file":
            return "file", parts.path or name
        if parts.scheme and parts.netloc:
            return f"{parts.scheme}://{parts.netloc}", parts.path.lstrip("/") or name
    return "cmfq", name


def dataset_uri(namespace: str, name: str) -> str | None:
    """The URI a dataset's (namespace, name) stands for, when it is a storage location."""
    if namespace == "file":
        return "file://" + (name if name.startswith("/") else "/" + name)
    if "://" in namespace:
        return f"{namespace.rstrip('/')}/{name.lstrip('/')}"
    return None
