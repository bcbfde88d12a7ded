"""Stage 4: evaluate the model on the test features; the metrics are logged after finalize()."""

import json
import os
import pickle

import click
import sklearn.metrics as metrics
from cmflib.cmf import Cmf


def evaluate(model_dir: str, dataset_dir: str, output_dir: str) -> None:
    model_file, features = os.path.join(model_dir, "model.pkl"), os.path.join(dataset_dir, "test.pkl")
    metawriter = Cmf(filepath="mlmd", pipeline_name="Test-env", graph=False)
    _ = metawriter.create_context(pipeline_stage="Evaluate")
    _ = metawriter.create_execution(execution_type="Evaluate-execution")
    metawriter.log_model(path=model_file, event="input", model_framework="sklearn", model_type="RandomForest",
                         model_name="RandomForest_default")
    _ = metawriter.log_dataset(features, "input")
    metawriter.finalize()
    with open(model_file, "rb") as f:
        model = pickle.load(f)
    with open(features, "rb") as f:
        matrix = pickle.load(f)
    labels, scores = matrix[:, 1].toarray().ravel(), model.predict_proba(matrix[:, 2:])[:, 1]
    results = {"avg_prec": float(metrics.average_precision_score(labels, scores)),
               "roc_auc": float(metrics.roc_auc_score(labels, scores))}
    os.makedirs(output_dir, exist_ok=True)
    with open(os.path.join(output_dir, "scores.json"), "w") as f:
        json.dump(results, f, indent=2)
    _ = metawriter.log_execution_metrics("metrics", results)


@click.command()
@click.argument("model_dir")
@click.argument("dataset_dir")
@click.argument("output_dir")
def main(model_dir: str, dataset_dir: str, output_dir: str) -> None:
    evaluate(model_dir, dataset_dir, output_dir)


if __name__ == "__main__":
    main()
