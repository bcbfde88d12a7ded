"""Rebuild an exported event with openlineage-python's models: the schema check of the tests.

Every object goes through the attrs classes generated from the OpenLineage spec (required
fields, run id as UUID, ISO date-times, the eventType enum, facets with _producer and
_schemaURL); the model serialised back must equal the event we wrote.
"""

from __future__ import annotations

from typing import Any

from openlineage.client.event_v2 import InputDataset, Job, OutputDataset, Run, RunEvent, RunState
from openlineage.client.generated import (
    dataset_version_dataset,
    error_message_run,
    job_type_job,
    parent_run,
    source_code_location_job,
)
from openlineage.client.generated.base import DatasetFacet, JobFacet, RunFacet
from openlineage.client.serde import Serde


def _fields(facet: dict[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in facet.items() if not k.startswith("_")}


def _custom(base: type, facet: dict[str, Any]) -> Any:
    assert facet["_producer"] and facet["_schemaURL"], facet
    return base(producer=facet["_producer"]).with_additional_properties(**_fields(facet))


def run_facet(name: str, facet: dict[str, Any]) -> Any:
    f = _fields(facet)
    if name == "parent":
        return parent_run.ParentRunFacet(run=parent_run.Run(**f["run"]), job=parent_run.Job(**f["job"]),
                                         producer=facet["_producer"])
    if name == "errorMessage":
        return error_message_run.ErrorMessageRunFacet(**f, producer=facet["_producer"])
    return _custom(RunFacet, facet)


def job_facet(name: str, facet: dict[str, Any]) -> Any:
    f = _fields(facet)
    if name == "jobType":
        return job_type_job.JobTypeJobFacet(**f, producer=facet["_producer"])
    if name == "sourceCodeLocation":
        return source_code_location_job.SourceCodeLocationJobFacet(**f, producer=facet["_producer"])
    return _custom(JobFacet, facet)


def dataset_facet(name: str, facet: dict[str, Any]) -> Any:
    if name == "version":
        return dataset_version_dataset.DatasetVersionDatasetFacet(**_fields(facet), producer=facet["_producer"])
    return _custom(DatasetFacet, facet)


def to_model(event: dict[str, Any]) -> RunEvent:
    """The event as openlineage-python's RunEvent (raises on anything the spec forbids)."""
    def datasets(items: list[dict[str, Any]], cls: type) -> list[Any]:
        return [cls(namespace=d["namespace"], name=d["name"],
                    facets={k: dataset_facet(k, v) for k, v in d.get("facets", {}).items()}) for d in items]

    return RunEvent(
        eventType=RunState(event["eventType"]), eventTime=event["eventTime"], producer=event["producer"],
        run=Run(runId=event["run"]["runId"], facets={k: run_facet(k, v) for k, v in event["run"]["facets"].items()}),
        job=Job(namespace=event["job"]["namespace"], name=event["job"]["name"],
                facets={k: job_facet(k, v) for k, v in event["job"]["facets"].items()}),
        inputs=datasets(event.get("inputs", []), InputDataset), outputs=datasets(event.get("outputs", []), OutputDataset))


def check_event(event: dict[str, Any]) -> None:
    """Build the model and check that it serialises back to the same event."""
    model = to_model(event)
    assert model.schemaURL == event["schemaURL"]
    back = _no_empty(Serde.to_dict(model))  # models add empty defaults ({} facets)
    ours = _no_empty(Serde.remove_nulls_and_enums(event))
    _drop_custom_schema_urls(back, ours)
    assert back == ours


def _no_empty(value: Any) -> Any:
    if isinstance(value, dict):
        return {k: _no_empty(v) for k, v in value.items() if v != {}}
    if isinstance(value, list):
        return [_no_empty(v) for v in value]
    return value


def _drop_custom_schema_urls(*events: dict[str, Any]) -> None:
    # A custom facet built from a base class reports the base schema; the spec wants ours.
    for event in events:
        facet_maps = [event["run"].get("facets", {}), event["job"].get("facets", {})]
        facet_maps += [d.get("facets", {}) for d in event.get("inputs", []) + event.get("outputs", [])]
        for facets in facet_maps:
            for name, facet in facets.items():
                if name.startswith("cmfq_"):
                    facet.pop("_schemaURL", None)
