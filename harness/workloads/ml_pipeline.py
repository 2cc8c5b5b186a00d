"""Categorical and vector features with Spark ML, as one pipeline fitted and applied.

String indexing (most frequent first), one-hot encoding, feature hashing of a high-cardinality category and
a skewed key, and vector assembly with the numeric columns. The fit is part of the timed work.
"""

import numpy as np
from pyspark.ml import Pipeline
from pyspark.ml.feature import FeatureHasher, OneHotEncoder, StringIndexer, VectorAssembler

from . import Workload, keep_alive
from ._reference import term_index

HASHED = 256
NUMERIC = ["x1", "x3", "x4"]


def build(tables):
    features = tables["features"]
    pipeline = Pipeline(stages=[
        StringIndexer(inputCols=["cat_lo", "cat_hi"], outputCols=["cat_lo_idx", "cat_hi_idx"]),
        OneHotEncoder(inputCols=["cat_lo_idx", "cat_hi_idx"], outputCols=["cat_lo_vec", "cat_hi_vec"]),
        FeatureHasher(inputCols=["cat_hi", "key_zipf"], categoricalCols=["key_zipf"], outputCol="hashed",
                      numFeatures=HASHED),
        VectorAssembler(inputCols=[*NUMERIC, "cat_lo_vec", "cat_hi_vec", "hashed"], outputCol="vector"),
    ])
    model = pipeline.fit(features)
    return keep_alive(model.transform(features).select("id", "label", "vector"), model)


def _one_hot(column):
    """Indices by frequency, ties alphabetical; the last index is dropped (all zeros), as Spark ML does."""
    counts = column.value_counts()
    order = sorted(counts.index, key=lambda label: (-counts[label], label))
    index = {label: i for i, label in enumerate(order)}
    width = len(order) - 1
    block = np.zeros((len(column), width))
    positions = column.map(index).to_numpy()
    rows = np.nonzero(positions < width)[0]
    block[rows, positions[rows]] = 1.0
    return block


def reference(tables):
    features = tables["features"]
    hashed = np.zeros((len(features), HASHED))
    for row, (category, key) in enumerate(zip(features.cat_hi, features.key_zipf)):
        hashed[row, term_index(f"cat_hi={category}", HASHED)] += 1.0
        hashed[row, term_index(f"key_zipf={key}", HASHED)] += 1.0
    matrix = np.hstack([features[NUMERIC].to_numpy(), _one_hot(features.cat_lo), _one_hot(features.cat_hi), hashed])
    return features[["id", "label"]].assign(vector=list(matrix))


WORKLOAD = Workload(
    name="ml_pipeline",
    family="featurize",
    tables=("features",),
    build=build,
    reference=reference,
    description="Spark ML pipeline fitted and applied: StringIndexer, OneHotEncoder, FeatureHasher, VectorAssembler",
)
