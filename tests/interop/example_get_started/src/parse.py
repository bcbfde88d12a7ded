"""Stage 1: split StackOverflow posts (XML lines, gzipped) into train and test TSV files."""

import gzip
import os
import random
import re
import sys
import xml.etree.ElementTree as ET

import click
import yaml
from cmflib.cmf import Cmf


def parse(input_file: str, output_dir: str) -> None:
    params = yaml.safe_load(open("params.yaml"))["parse"]
    random.seed(params["seed"])
    metawriter = Cmf(filepath="mlmd", pipeline_name="Test-env", graph=False)
    _ = metawriter.create_context(pipeline_stage="Prepare", custom_properties={"user-metadata1": "metadata_value"})
    _ = metawriter.create_execution(execution_type="Prepare", custom_properties=params)
    _ = metawriter.log_dataset(input_file, "input", custom_properties={"user-metadata1": "metadata_value"},
                               label="artifacts/labels.csv", label_properties={"user1": "xyz"})
    os.makedirs(output_dir, exist_ok=True)
    train, test = os.path.join(output_dir, "train.tsv"), os.path.join(output_dir, "test.tsv")
    with gzip.open(input_file, "rt", encoding="utf8") as src, open(train, "w") as tr, open(test, "w") as te:
        for n, line in enumerate(src):
            try:
                post = ET.fromstring(line).attrib
            except ET.ParseError as exc:
                sys.stderr.write(f"line {n} skipped: {exc}\n")
                continue
            text = re.sub(r"\s+", " ", post.get("Title", "") + " " + post.get("Body", "")).strip()
            label = int("<python>" in post.get("Tags", ""))
            (te if random.random() < params["split"] else tr).write(f"{post.get('Id')}\t{label}\t{text}\n")
    _ = metawriter.log_dataset(train, "output")
    _ = metawriter.log_dataset(test, "output")
    metawriter.finalize()


@click.command()
@click.argument("input_file")
@click.argument("output_dir")
def main(input_file: str, output_dir: str) -> None:
    parse(input_file, output_dir)


if __name__ == "__main__":
    main()
