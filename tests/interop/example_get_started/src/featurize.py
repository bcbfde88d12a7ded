"""Stage 2: TF-IDF features of the train and test posts, pickled as sparse matrices."""

import os
import pickle

import click
import numpy as np
import pandas as pd
import scipy.sparse as sparse
import yaml
from cmflib.cmf import Cmf
from sklearn.feature_extraction.text import CountVectorizer, TfidfTransformer


def _read(path: str) -> pd.DataFrame:
    return pd.read_csv(path, sep="\t", header=None, names=["id", "label", "text"], encoding="utf-8")


def _save(df: pd.DataFrame, features: sparse.spmatrix, path: str) -> None:
    ids = sparse.csr_matrix(df["id"].astype(np.int64)).T
    labels = sparse.csr_matrix(df["label"].astype(np.int64)).T
    with open(path, "wb") as f:
        pickle.dump(sparse.hstack([ids, labels, features], format="csr"), f)


def featurize(input_dir: str, output_dir: str) -> None:
    params = yaml.safe_load(open("params.yaml"))["featurize"]
    metawriter = Cmf(filepath="mlmd", pipeline_name="Test-env", graph=False)
    _ = metawriter.create_context(pipeline_stage="Featurize")
    _ = metawriter.create_execution(execution_type="Featurize-execution", custom_properties=params)
    train_in, test_in = os.path.join(input_dir, "train.tsv"), os.path.join(input_dir, "test.tsv")
    _ = metawriter.log_dataset(train_in, "input")
    _ = metawriter.log_dataset(test_in, "input")
    os.makedirs(output_dir, exist_ok=True)
    train_out, test_out = os.path.join(output_dir, "train.pkl"), os.path.join(output_dir, "test.pkl")
    train, test = _read(train_in), _read(test_in)
    words = CountVectorizer(stop_words="english", max_features=params["max_features"],
                            ngram_range=(1, params["ngrams"]))
    counts = words.fit_transform(train["text"].str.lower())
    tfidf = TfidfTransformer(smooth_idf=False).fit(counts)
    _save(train, tfidf.transform(counts), train_out)
    _save(test, tfidf.transform(words.transform(test["text"].str.lower())), test_out)
    _ = metawriter.log_dataset(train_out, "output")
    _ = metawriter.log_dataset(test_out, "output")
    metawriter.finalize()


@click.command()
@click.argument("input_dir")
@click.argument("output_dir")
def main(input_dir: str, output_dir: str) -> None:
    featurize(input_dir, output_dir)


if __name__ == "__main__":
    main()
