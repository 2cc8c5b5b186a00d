"""LLM-style text preparation on the generated corpus: clean and tokenize, then n-grams with TF-IDF.

Cleaning lower-cases, strips punctuation, splits on whitespace and removes English stop words (Spark ML's
list); the TF-IDF step adds word bigrams to the tokens, hashes them into 2^18 buckets and weights by inverse
document frequency (IDF fitted on the corpus, as part of the timed work).
"""

import math
from collections import Counter

from pyspark.ml.feature import IDF, HashingTF, NGram, StopWordsRemover
from pyspark.sql import functions as F

from . import Workload, keep_alive
from ._reference import clean_words, term_index

BUCKETS = 1 << 18


def tokens(corpus):
    cleaned = F.regexp_replace(F.lower("text"), r"[^a-z0-9\s]", "")
    words = F.filter(F.split(F.trim(cleaned), r"\s+"), lambda w: w != "")
    return StopWordsRemover(inputCol="words", outputCol="tokens").transform(
        corpus.select("doc_id", words.alias("words"))).select("doc_id", "tokens")


def tfidf(tables):
    tokenized = NGram(n=2, inputCol="tokens", outputCol="bigrams").transform(tokens(tables["corpus"]))
    terms = tokenized.select("doc_id", F.concat("tokens", "bigrams").alias("terms"))
    counted = HashingTF(inputCol="terms", outputCol="tf", numFeatures=BUCKETS).transform(terms)
    model = IDF(inputCol="tf", outputCol="tfidf").fit(counted)
    return keep_alive(model.transform(counted).select("doc_id", "tfidf"), model)


def stop_words():
    return set(StopWordsRemover.loadDefaultStopWords("english"))


def reference_tokens(tables):
    stop = stop_words()
    corpus = tables["corpus"]
    return corpus.assign(tokens=[[w for w in clean_words(t) if w not in stop] for t in corpus.text])[["doc_id", "tokens"]]


def reference_tfidf(tables):
    tokenized = reference_tokens(tables)
    counts = []
    for words in tokenized.tokens:
        terms = words + [f"{a} {b}" for a, b in zip(words, words[1:])]
        counts.append(Counter(term_index(t, BUCKETS) for t in terms))
    documents = Counter(index for c in counts for index in c)
    idf = {index: math.log((len(counts) + 1) / (n + 1)) for index, n in documents.items()}
    return tokenized.assign(tfidf=[{i: n * idf[i] for i, n in c.items()} for c in counts])[["doc_id", "tfidf"]]


WORKLOADS = [
    Workload(
        name="text_clean_tokenize",
        family="featurize",
        tables=("corpus",),
        build=lambda tables: tokens(tables["corpus"]),
        reference=reference_tokens,
        description="lower-case, strip punctuation, tokenize, remove stop words (N/1000 documents)",
    ),
    Workload(
        name="text_ngrams_tfidf",
        family="featurize",
        tables=("corpus",),
        build=tfidf,
        reference=reference_tfidf,
        description="tokens plus word bigrams, hashed term frequencies (2^18 buckets), IDF fitted and applied",
    ),
]
