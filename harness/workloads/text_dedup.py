"""Deduplicating the corpus: exact copies by content hash, near copies with MinHash LSH.

Exact: documents whose cleaned text is identical share a SHA-256; each group keeps its lowest doc_id.
Near: each document's set of word 3-gram shingles, MinHash-ed into 20 hash tables, joined with itself; pairs
whose Jaccard distance is below 0.4 (over 60% of shingles shared; a near copy with 5% of its words replaced
shares about 75%) are reported. Shingles, not single words: a frequent word shared by most documents would put
them all in one LSH bucket and make the candidate pairs grow with the square of the corpus.
"""

import hashlib
from itertools import combinations

import pandas as pd
from pyspark.ml.feature import HashingTF, MinHashLSH, NGram
from pyspark.sql import functions as F

from . import Workload, keep_alive
from ._reference import clean_words
from .text_prep import BUCKETS, reference_tokens, tokens

DISTANCE = 0.4
SHINGLE = 3


def exact(tables):
    cleaned = F.trim(F.regexp_replace(F.regexp_replace(F.lower("text"), r"[^a-z0-9\s]", ""), r"\s+", " "))
    hashed = tables["corpus"].select("doc_id", F.sha2(cleaned, 256).alias("content_hash"))
    return hashed.groupBy("content_hash").agg(F.min("doc_id").alias("doc_id"), F.count(F.lit(1)).alias("copies"))


def reference_exact(tables):
    corpus = tables["corpus"]
    hashes = [hashlib.sha256(" ".join(clean_words(t)).encode()).hexdigest() for t in corpus.text]
    grouped = corpus.assign(content_hash=hashes).groupby("content_hash", as_index=False)
    return grouped.agg(doc_id=("doc_id", "min"), copies=("doc_id", "size"))


def near(tables):
    shingled = NGram(n=SHINGLE, inputCol="tokens", outputCol="shingles").transform(tokens(tables["corpus"]))
    sets = HashingTF(inputCol="shingles", outputCol="set", numFeatures=BUCKETS, binary=True).transform(
        shingled.where(F.size("shingles") > 0))
    model = MinHashLSH(inputCol="set", outputCol="signature", numHashTables=20, seed=7).fit(sets)
    pairs = model.approxSimilarityJoin(sets, sets, DISTANCE, distCol="distance")
    distance = "distance" if "distance" in pairs.columns else "distCol"  # Spark Connect 4.1 ignores distCol
    return keep_alive(pairs.select(F.col("datasetA.doc_id").alias("doc_a"), F.col("datasetB.doc_id").alias("doc_b"),
                                   F.col(distance).alias("distance")).where("doc_a < doc_b"), model)


def reference_near(tables):
    """Every pair below the distance, by brute force over exact shingle sets (LSH must find them all)."""
    sets = {doc: {" ".join(words[i:i + SHINGLE]) for i in range(len(words) - SHINGLE + 1)}
            for doc, words in zip(*reference_tokens(tables).T.values)}
    sets = {doc: shingles for doc, shingles in sets.items() if shingles}
    pairs = []
    for (a, sa), (b, sb) in combinations(sorted(sets.items()), 2):
        distance = 1 - len(sa & sb) / len(sa | sb)
        if distance < DISTANCE:
            pairs.append((a, b, distance))
    return pd.DataFrame(pairs, columns=["doc_a", "doc_b", "distance"])


WORKLOADS = [
    Workload(
        name="text_dedup_exact",
        family="shuffle",
        tables=("corpus",),
        build=exact,
        reference=reference_exact,
        description="exact duplicate documents grouped by SHA-256 of their cleaned text",
    ),
    Workload(
        name="text_dedup_minhash",
        family="join",
        tables=("corpus",),
        build=near,
        reference=reference_near,
        description="near-duplicate pairs (Jaccard distance < 0.4) by MinHash LSH over word 3-gram shingles, 20 tables",
    ),
]
