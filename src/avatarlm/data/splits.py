"""Train / val / test splits by identity and by language, so that evaluation sees unseen faces and tongues."""

from __future__ import annotations

import hashlib

SPLITS: tuple[str, ...] = ("train", "val", "test")
# Languages that appear only in the test split (the model never trains on them).
TEST_ONLY_LANGUAGES: tuple[str, ...] = ("el", "sw")


def bucket_split(bucket: int) -> str:
    """The split of a stable hash bucket 0..9: 8 and 9 are val and test (10 % each), the rest train."""
    return "test" if bucket == 9 else "val" if bucket == 8 else "train"


def identity_split(identity_seed: int) -> str:
    """Every identity belongs to exactly one split: 80 % train, 10 % val, 10 % test, by a stable hash."""
    return bucket_split(
        int.from_bytes(hashlib.sha256(f"identity:{identity_seed}".encode()).digest()[:4], "little") % 10
    )


def language_allowed(language: str, split: str) -> bool:
    return split == "test" or language not in TEST_ONLY_LANGUAGES


def split_identities(split: str, count: int) -> list[int]:
    """The first ``count`` identity seeds (0, 1, 2, ...) that belong to ``split``."""
    out: list[int] = []
    seed = 0
    while len(out) < count:
        if identity_split(seed) == split:
            out.append(seed)
        seed += 1
    return out
