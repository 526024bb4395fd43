"""Identity sampling: deterministic, varied, and strict about bad seeds."""

from __future__ import annotations

import dataclasses

import pytest

from avatarlm.data.identity import BEARD_STYLES, CLOTHING_STYLES, HAIR_STYLES, Identity


def test_same_seed_same_identity() -> None:
    assert Identity.from_seed(7) == Identity.from_seed(7)


def test_different_seeds_differ() -> None:
    ids = [Identity.from_seed(s) for s in range(50)]
    assert len({dataclasses.astuple(i)[1:] for i in ids}) == 50
    assert len({i.skin for i in ids}) == 50


def test_seeds_cover_the_style_catalogue() -> None:
    ids = [Identity.from_seed(s) for s in range(200)]
    assert {i.hair_style for i in ids} == set(HAIR_STYLES)
    assert {i.clothing_style for i in ids} == set(CLOTHING_STYLES)
    assert {i.beard for i in ids} == set(BEARD_STYLES)
    glasses = sum(i.glasses != "none" for i in ids) / len(ids)
    assert 0.15 < glasses < 0.45
    lightest = max(sum(i.skin) for i in ids)
    darkest = min(sum(i.skin) for i in ids)
    assert lightest - darkest > 300


def test_values_in_documented_ranges() -> None:
    for s in range(100):
        i = Identity.from_seed(s)
        assert 0.9 <= i.face_width <= 1.08 and 1.22 <= i.face_height <= 1.45
        for colour in (
            i.skin,
            i.hair_colour,
            i.iris_colour,
            i.lip_colour,
            i.clothing_colour,
            i.background_top,
        ):
            assert len(colour) == 3 and all(0 <= c <= 255 and isinstance(c, int) for c in colour)


@pytest.mark.parametrize("seed", [-1, 1.5, "3", True, None])
def test_bad_seed_raises(seed: object) -> None:
    with pytest.raises(ValueError, match="seed"):
        Identity.from_seed(seed)  # type: ignore[arg-type]
