"""Plain-Python helpers for the workloads' pandas references (no Spark): Spark ML's hashing and text cleaning."""

import re

MASK = 0xFFFFFFFF


def murmur3_32(data: bytes, seed: int = 42) -> int:
    """MurmurHash3 x86_32, as Spark ML's FeatureHasher and HashingTF hash terms; returns a signed int."""
    h = seed & MASK
    rounded = len(data) - len(data) % 4
    for i in range(0, rounded, 4):
        h = _mix_h(h, _mix_k(int.from_bytes(data[i:i + 4], "little")))
    tail = int.from_bytes(data[rounded:], "little") if len(data) % 4 else 0
    if len(data) % 4:
        h ^= _mix_k(tail)
    h ^= len(data)
    h ^= h >> 16
    h = (h * 0x85EBCA6B) & MASK
    h ^= h >> 13
    h = (h * 0xC2B2AE35) & MASK
    h ^= h >> 16
    return h - (1 << 32) if h & 0x80000000 else h


def _mix_k(k):
    k = (k * 0xCC9E2D51) & MASK
    k = ((k << 15) | (k >> 17)) & MASK
    return (k * 0x1B873593) & MASK


def _mix_h(h, k):
    h ^= k
    h = ((h << 13) | (h >> 19)) & MASK
    return (h * 5 + 0xE6546B64) & MASK


def term_index(term: str, buckets: int) -> int:
    """The vector index Spark ML's hashing gives a term: a non-negative murmur3 modulo."""
    return murmur3_32(term.encode()) % buckets


def clean_words(text: str) -> list[str]:
    """Lower-case, strip everything but letters, digits and spaces, split on whitespace."""
    return re.sub(r"[^a-z0-9\s]", "", text.lower()).split()
