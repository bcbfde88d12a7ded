"""Stage 3: a random forest on the train features; step metrics and the model logged."""

import os
import pickle

import click
import numpy as np
import yaml
from cmflib.cmf import Cmf
from sklearn.ensemble import RandomForestClassifier


def train(input_dir: str, output_dir: str) -> None:
    params = yaml.safe_load(open("params.yaml"))["train"]
    metawriter = Cmf(filepath="mlmd", pipeline_name="Test-env", graph=False)
    _ = metawriter.create_context(pipeline_stage="Train")
    _ = metawriter.create_execution(execution_type="Train-execution", custom_properties=params)
    features = os.path.join(input_dir, "train.pkl")
    _ = metawriter.log_dataset(features, "input")
    with open(features, "rb") as f:
        matrix = pickle.load(f)
    labels, x = np.squeeze(matrix[:, 1].toarray()), matrix[:, 2:]
    model = RandomForestClassifier(n_estimators=params["n_est"], min_samples_split=params["min_split"], n_jobs=1,
                                   random_state=params["seed"])
    model.fit(x, labels)
    os.makedirs(output_dir, exist_ok=True)
    model_file = os.path.join(output_dir, "model.pkl")
    with open(model_file, "wb") as f:
        pickle.dump(model, f)
    for epoch in range(3):
        _ = metawriter.log_metric("training_metrics", {"train_loss": 1.0 / (epoch + 1)})
    _ = metawriter.commit_metrics("training_metrics")
    _ = metawriter.log_model(path=model_file, event="output", model_framework="SKlearn",
                             model_type="RandomForestClassifier", model_name="RandomForestClassifier:default")
    metawriter.finalize()


@click.command()
@click.argument("input_dir")
@click.argument("output_dir")
def main(input_dir: str, output_dir: str) -> None:
    train(input_dir, output_dir)


if __name__ == "__main__":
    main()
