"""Commands that answer cross-pipeline questions: compare, diff, influence, best, audit...

Each is a thin client of one cmfq.Warehouse method (warehouse/analytics.py); facts written
here (taint, annotate, deploy) go through cmfq.ingest.facts as one durable partition each.
"""

from __future__ import annotations

import datetime as dt
import json
import sys
from typing import TYPE_CHECKING, Annotated

import typer

from cmfq.cli.main import LimitOpt, OffsetOpt, WarehouseOpt, app, open_warehouse, warehouse_of
from cmfq.cli.render import Format

if TYPE_CHECKING:
    from pathlib import Path

    from cmfq.warehouse.layout import Layout

FormatOpt = Annotated[Format, typer.Option("--format", "-f", help="Output: a table for people, json/csv for scripts.")]
MetricOpt = Annotated[str, typer.Option("--metric", "-m", help="The metric to rank by, e.g. roc_auc.")]
AscOpt = Annotated[bool, typer.Option("--asc", help="Lower is better (a loss, an error rate).")]
ProjectOpt = Annotated[str | None, typer.Option("--project", help="Only this project.")]


def _date(value: str | None, option: str) -> dt.datetime | None:
    if value is None:
        return None
    from cmfq.errors import InvalidInputError

    try:
        when = dt.datetime.fromisoformat(value)
    except ValueError:
        raise InvalidInputError(f"{option} {value!r} is not a date.", hint="Use YYYY-MM-DD or an ISO time.") from None
    return when if when.tzinfo else when.replace(tzinfo=dt.UTC)


def _layout(ctx: typer.Context, warehouse: Path | None) -> Layout:
    from cmfq.config import warehouse_path
    from cmfq.warehouse.layout import Layout

    return Layout(warehouse_path(warehouse_of(ctx, warehouse))).require()


@app.command()
def compare(
    ctx: typer.Context,
    stage: Annotated[str | None, typer.Option("--stage", "-s", help="Runs of this stage.")] = None,
    metric: Annotated[str | None, typer.Option("--metric", "-m", help="Rank by this metric.")] = None,
    where: Annotated[str | None, typer.Option(
        help="Filter: params.<key>, metrics.<name>, stage, status... with = != < <= > >=, AND, OR, NOT, "
             "parentheses. Example: \"params.n_est > 50 AND (metrics.roc_auc > 0.9 OR params.model = 'gbm')\"")] = None,
    by: Annotated[str | None, typer.Option("--by", help="'dataset': group by the raw dataset each run descends from.")
                  ] = None,
    step: Annotated[int | None, typer.Option(help="Also show the metric at this step.")] = None,
    pipeline: Annotated[str | None, typer.Option("--pipeline", "-p")] = None,
    asc: AscOpt = False,
    limit: LimitOpt = 100,
    offset: OffsetOpt = 0,
    warehouse: WarehouseOpt = None,
    format: FormatOpt = Format.table,
) -> None:
    """Runs side by side: the params that vary, a metric (final, min, max, at a step) and who
    scored it, best first. A train run is scored by the evaluation that used its model.

    Example: `cmfq compare --stage train --metric roc_auc --where "params.n_est >= 100" --by dataset`
    """
    from cmfq.cli.render import emit_page

    with open_warehouse(ctx, warehouse) as wh:
        # One page, cut in DuckDB (and one row more, to tell whether there are more).
        emit_page(wh.compare(stage, metric, pipeline=pipeline, where=where, by=by, step=step, ascending=asc,
                             limit=limit + 1, offset=offset), format, limit, offset, paged=True)


@app.command()
def diff(ctx: typer.Context, a: Annotated[str, typer.Argument(help="An execution id or prefix.")],
         b: Annotated[str, typer.Argument(help="Another one.")],
         all: Annotated[bool, typer.Option("--all", help="Show unchanged params and artifacts too.")] = False,
         warehouse: WarehouseOpt = None, format: Annotated[str, typer.Option("--format", "-f",
                                                                             help="table or json.")] = "table") -> None:
    """What changed between two runs: params, metrics, inputs/outputs, code and environment."""
    from cmfq.cli.render import emit, out

    with open_warehouse(ctx, warehouse) as wh:
        d = wh.diff(a, b, all=all)
    sections = {"params": d.params, "metrics": d.metrics, "artifacts": d.artifacts, "code": d.code,
                "environment": d.environment}
    if format == "json":
        sys.stdout.write(json.dumps({"a": d.a["id"], "b": d.b["id"], **{k: v.to_dicts() for k, v in sections.items()}},
                                    indent=2, default=str) + "\n")
        return
    console = out()
    console.print(f"a = {d.a['id']}  ({d.a['pipeline']} / {d.a['stage']}, {d.a['status']})", highlight=False)
    console.print(f"b = {d.b['id']}  ({d.b['pipeline']} / {d.b['stage']}, {d.b['status']})", highlight=False)
    for title, frame in sections.items():
        console.print(f"\n[bold]{title}[/bold]" + ("" if frame.height else "  (no difference)"))
        if frame.height:
            emit(frame, Format.table)


@app.command()
def influence(ctx: typer.Context, ref: Annotated[str, typer.Argument(help="Artifact hash, prefix or name.")],
              warehouse: WarehouseOpt = None, format: FormatOpt = Format.table,
              limit: LimitOpt = 100, offset: OffsetOpt = 0) -> None:
    """The sphere of influence of an artifact (a corrupted dataset, say): every downstream
    artifact, execution, model and deployment, with distance and pipeline."""
    from cmfq.cli.render import emit_page

    with open_warehouse(ctx, warehouse) as wh:
        emit_page(wh.influence(ref), format, limit, offset)


@app.command()
def taint(ctx: typer.Context, ref: Annotated[str, typer.Argument(help="Artifact hash, prefix or name.")],
          reason: Annotated[str | None, typer.Option("--reason", "-r", help="Why it is bad.")] = None,
          clear: Annotated[bool, typer.Option("--clear", help="Remove the taint.")] = False,
          warehouse: WarehouseOpt = None) -> None:
    """Mark an artifact as bad; everything downstream counts as tainted (`cmfq models --tainted`)."""
    from cmfq.cli.render import err
    from cmfq.errors import InvalidInputError
    from cmfq.ingest import facts

    if clear == (reason is not None):
        raise InvalidInputError("Give --reason to taint, or --clear to remove a taint.")
    with open_warehouse(ctx, warehouse) as wh:
        digest = wh.resolve_artifact(ref)
        affected = wh.influence(digest)
    facts.write(_layout(ctx, warehouse), "annotations", [facts.annotation("artifact", digest, facts.TAINT, reason)])
    models = affected.filter((affected["entity"] == "artifact") & (affected["kind"] == "model")).height
    err().print(f"{'Cleared the taint of' if clear else 'Tainted'} {digest[:12]}: {models} models and "
                f"{affected.filter(affected['entity'] == 'execution').height} executions downstream.", highlight=False)


@app.command()
def models(ctx: typer.Context,
           tainted: Annotated[bool | None, typer.Option("--tainted/--clean",
                                                        help="Only tainted models, or only clean ones.")] = None,
           project: ProjectOpt = None, warehouse: WarehouseOpt = None, format: FormatOpt = Format.table,
           limit: LimitOpt = 100, offset: OffsetOpt = 0) -> None:
    """Models with the run that produced them and, if any, why they are tainted."""
    from cmfq.cli.render import emit_page

    with open_warehouse(ctx, warehouse) as wh:
        emit_page(wh.models(tainted=tainted, project=project, limit=limit + 1, offset=offset), format, limit, offset,
                  paged=True)


@app.command()
def best(ctx: typer.Context, metric: MetricOpt,
         dataset: Annotated[str | None, typer.Option("--dataset", "-d", help="Dataset hash, prefix or name.")] = None,
         per_dataset: Annotated[bool, typer.Option("--per-dataset", help="The best run of every raw dataset.")] = False,
         stage: Annotated[str | None, typer.Option("--stage", "-s", help="Only runs of this stage.")] = None,
         asc: AscOpt = False, limit: Annotated[int, typer.Option("--limit", "-n", min=1)] = 10,
         warehouse: WarehouseOpt = None, format: FormatOpt = Format.table) -> None:
    """Which runs used a dataset (directly or through derived data) and which did best, with
    their params and code version.

    Example: `cmfq best --metric roc_auc --dataset data/breast_cancer.csv --stage train`
    """
    from cmfq.cli.render import emit

    with open_warehouse(ctx, warehouse) as wh:
        emit(wh.best(metric, dataset, per_dataset=per_dataset, stage=stage, ascending=asc, limit=limit), format)


@app.command()
def audit(ctx: typer.Context, model: Annotated[str, typer.Argument(help="Model hash, prefix or name.")],
          warehouse: WarehouseOpt = None,
          format: Annotated[str, typer.Option("--format", "-f", help="markdown (a model card) or json.")
                            ] = "markdown") -> None:
    """Everything about a model: its data, code, params, environment, metrics, deployments,
    serving, and who ran what where. Markdown output is a model card."""
    from cmfq.warehouse.analytics import to_markdown

    with open_warehouse(ctx, warehouse) as wh:
        report = wh.audit(model)
    sys.stdout.write(json.dumps(report, indent=2, default=str) + "\n" if format == "json" else to_markdown(report))


@app.command()
def features(ctx: typer.Context, feature: Annotated[str, typer.Argument(help="A feature (column) name.")],
             metric: MetricOpt, stage: Annotated[str, typer.Option("--stage", "-s")] = "train",
             warehouse: WarehouseOpt = None, format: FormatOpt = Format.table) -> None:
    """Did adding a feature help? Runs whose featureset has it versus runs whose featureset has
    not, per raw dataset: runs, mean and best score, and the difference."""
    from cmfq.cli.render import emit

    with open_warehouse(ctx, warehouse) as wh:
        emit(wh.feature_effect(feature, metric=metric, stage=stage), format)


@app.command()
def techniques(ctx: typer.Context, project: ProjectOpt = None, warehouse: WarehouseOpt = None,
               format: FormatOpt = Format.table,
               limit: LimitOpt = 100, offset: OffsetOpt = 0) -> None:
    """Which model types and feature transformations each project and pipeline used."""
    from cmfq.cli.render import emit_page

    with open_warehouse(ctx, warehouse) as wh:
        emit_page(wh.techniques(project, limit=limit + 1, offset=offset), format, limit, offset, paged=True)


@app.command()
def datasets(ctx: typer.Context, project: ProjectOpt = None,
             since: Annotated[str | None, typer.Option(help="Only runs started on or after (YYYY-MM-DD).")] = None,
             warehouse: WarehouseOpt = None, format: FormatOpt = Format.table,
             limit: LimitOpt = 100, offset: OffsetOpt = 0) -> None:
    """Datasets that runs read in a time window (optionally of one project)."""
    from cmfq.cli.render import emit_page

    with open_warehouse(ctx, warehouse) as wh:
        emit_page(wh.datasets(project, _date(since, "--since"), limit=limit + 1, offset=offset), format, limit, offset,
                  paged=True)


@app.command()
def stats(ctx: typer.Context,
          ref: Annotated[str, typer.Argument(help="A dataset: hash, prefix or name; with --record, a file path.")],
          record: Annotated[bool, typer.Option("--record", help="Compute the statistics of this file and record them.")
                            ] = False,
          warehouse: WarehouseOpt = None, format: FormatOpt = Format.table) -> None:
    """Column statistics of a dataset (count, nulls, mean, std, min, max, deciles, top values).

    Example: `cmfq stats data/train.csv --record`, then `cmfq drift <old> <new>`
    """
    from cmfq.cli.render import emit, err

    if record:
        from pathlib import Path

        from cmfq.ingest import facts
        from cmfq.ingest.hashing import HashCache
        from cmfq.ingest.stats import column_stats, read_table

        layout = _layout(ctx, warehouse)
        path = Path(ref)
        rows = column_stats(read_table(path))
        digest, size = HashCache().file(path) if path.is_file() else HashCache().directory(path)[:2]
        at = facts.now_us()
        facts.write(layout, "artifacts", [facts.artifact(digest, "dataset", path.as_posix(), size=size,
                                                         uri=path.resolve().as_uri(), site=layout.settings().get("site"))])
        facts.write(layout, "dataset_stats", [{"artifact_hash": digest, **r, "at": at} for r in rows])
        err().print(f"Recorded statistics of {len(rows)} columns for {path} ({digest[:12]}).", highlight=False)
        ref = digest
    with open_warehouse(ctx, warehouse) as wh:
        emit(wh.dataset_stats(ref), format)


@app.command()
def drift(ctx: typer.Context, a: Annotated[str, typer.Argument(help="The reference dataset.")],
          b: Annotated[str, typer.Argument(help="The dataset to compare with it.")],
          psi: Annotated[float, typer.Option(help="Flag a column when its PSI is above this.")] = 0.2,
          mean: Annotated[float, typer.Option(help="... or its mean moved more than this many std.")] = 0.5,
          warehouse: WarehouseOpt = None, format: FormatOpt = Format.table) -> None:
    """Covariate shift between two datasets from their recorded statistics: per numeric column,
    the move of the mean in std units and the population stability index."""
    from cmfq.cli.render import emit

    with open_warehouse(ctx, warehouse) as wh:
        emit(wh.drift(a, b, psi_threshold=psi, mean_threshold=mean), format)


@app.command()
def rank(ctx: typer.Context, metric: MetricOpt, project: ProjectOpt = None,
         include_tainted: Annotated[bool, typer.Option("--include-tainted", help="Keep tainted models.")] = False,
         data_after: Annotated[str | None, typer.Option(
             help="Only models whose newest raw data was first seen after this date.")] = None,
         asc: AscOpt = False, warehouse: WarehouseOpt = None, format: FormatOpt = Format.table,
         limit: LimitOpt = 100, offset: OffsetOpt = 0) -> None:
    """Candidate models for deployment, best dev score first, tainted ones left out."""
    from cmfq.cli.render import emit_page

    with open_warehouse(ctx, warehouse) as wh:
        emit_page(wh.rank_models(metric, project=project, exclude_tainted=not include_tainted,
                                 data_after=_date(data_after, "--data-after"), ascending=asc,
                                 limit=limit + 1, offset=offset), format, limit, offset, paged=True)


@app.command()
def deployments(ctx: typer.Context, project: ProjectOpt = None,
                history: Annotated[bool, typer.Option("--history", help="Every status change.")] = False,
                warehouse: WarehouseOpt = None, format: FormatOpt = Format.table,
                limit: LimitOpt = 100, offset: OffsetOpt = 0) -> None:
    """Deployed models per project and environment, as they stand (or their timeline)."""
    from cmfq.cli.render import emit_page

    with open_warehouse(ctx, warehouse) as wh:
        emit_page(wh.deployments(project, history=history), format, limit, offset)


@app.command()
def deploy(ctx: typer.Context, model: Annotated[str, typer.Argument(help="Model hash, prefix or name.")],
           env: Annotated[str, typer.Option("--env", "-e", help="The environment, e.g. production.")],
           status: Annotated[str, typer.Option(help="scheduled, active, archived or failed.")] = "active",
           project: ProjectOpt = None,
           id: Annotated[str | None, typer.Option("--id", help="Update this deployment's status instead.")] = None,
           warehouse: WarehouseOpt = None) -> None:
    """Record a deployment of a model (or, with --id, a status change of one)."""
    from cmfq.cli.render import err
    from cmfq.config import default_site
    from cmfq.ingest import facts
    from cmfq.ingest.ids import uuid7

    layout = _layout(ctx, warehouse)
    with open_warehouse(ctx, warehouse) as wh:
        digest = wh.resolve_artifact(model)
        dep_id = wh.resolve_deployment(id) if id else uuid7()
    row = facts.deployment(dep_id, digest, env, status, site=str(layout.settings().get("site") or default_site()),
                           project=project)
    facts.write(layout, "deployments", [row])
    err().print(f"Deployment {dep_id}: {digest[:12]} {status} in {env}.", highlight=False)


@app.command()
def serving(ctx: typer.Context, deployment: Annotated[str | None, typer.Argument(help="Deployment id or prefix.")] = None,
            metric: Annotated[str | None, typer.Option("--metric", "-m")] = None,
            warehouse: WarehouseOpt = None, format: FormatOpt = Format.table,
            limit: LimitOpt = 100, offset: OffsetOpt = 0) -> None:
    """Serving performance over time, per deployment and metric."""
    from cmfq.cli.render import emit_page

    with open_warehouse(ctx, warehouse) as wh:
        emit_page(wh.serving(deployment, metric), format, limit, offset)


@app.command()
def search(ctx: typer.Context, text: Annotated[str, typer.Argument(help="Text to look for.")],
           warehouse: WarehouseOpt = None, format: FormatOpt = Format.table,
           limit: LimitOpt = 100, offset: OffsetOpt = 0) -> None:
    """Find artifacts, executions and annotations by name, hash or id prefix, parameter, tag or pipeline."""
    from cmfq.cli.render import emit_page

    with open_warehouse(ctx, warehouse) as wh:
        emit_page(wh.search(text, limit=limit + 1, offset=offset), format, limit, offset, paged=True)


@app.command()
def annotate(ctx: typer.Context, kind: Annotated[str, typer.Argument(help="artifact, execution, pipeline or project.")],
             ref: Annotated[str, typer.Argument(help="Its hash, id, prefix or name.")],
             key: Annotated[str, typer.Argument(help="e.g. tag:baseline, label, note.")],
             value: Annotated[str | None, typer.Argument(help="The value; omit it to remove the key.")] = None,
             warehouse: WarehouseOpt = None) -> None:
    """Tag, label or note anything (the latest value wins; no value removes the key)."""
    from cmfq.cli.render import err
    from cmfq.ingest import facts

    entity = ref
    if kind in ("artifact", "execution"):
        with open_warehouse(ctx, warehouse) as wh:
            entity = wh.resolve_artifact(ref) if kind == "artifact" else wh.resolve_execution(ref)
    facts.write(_layout(ctx, warehouse), "annotations", [facts.annotation(kind, entity, key, value)])
    err().print(f"{kind} {entity[:36]}: {key} = {value}", highlight=False)
