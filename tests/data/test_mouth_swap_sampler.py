import numpy as np
import pytest

from avatarlm.data.mouth_swap import MouthSwapSampler


def test_triples_are_face_target_donor_of_two_identities() -> None:
    sampler = MouthSwapSampler([3, 7, 11], size=48)
    frames, pairs, targets = sampler.draw(np.random.default_rng(0), 16)
    assert frames.shape == (16, 3, 48, 48, 3) and frames.dtype == np.uint8
    assert all(face != donor and {face, donor} <= {3, 7, 11} for face, donor in pairs)
    assert len(targets) == 16 and all(0.0 <= t.mouth_open <= 1.0 for t in targets)
    x = frames.astype(np.int16)
    changed = np.abs(x[:, 1] - x[:, 0]).max(axis=-1) > 0  # (B, H, W): where target and face differ
    # the target is the face with another mouth: a small patch changes, never the whole head or background
    assert changed.mean(axis=(1, 2)).max() < 0.06
    assert changed.any(axis=(1, 2)).sum() >= 12, "most targets should show a mouth other than the face's"
    # the donor is another person in another state: most of the frame differs
    assert (np.abs(x[:, 2] - x[:, 0]).max(axis=-1) > 0).mean() > 0.5


def test_same_rng_same_triples_and_bad_batch_refused() -> None:
    a = MouthSwapSampler([1, 2], size=32)(np.random.default_rng(5), 3)
    b = MouthSwapSampler([1, 2], size=32)(np.random.default_rng(5), 3)
    np.testing.assert_array_equal(a, b)
    with pytest.raises(ValueError, match="batch must be at least 1"):
        MouthSwapSampler([1, 2], size=32)(np.random.default_rng(5), 0)


def test_one_identity_is_its_own_donor() -> None:
    _, pairs, _ = MouthSwapSampler([4], size=32).draw(np.random.default_rng(0), 2)
    assert pairs == [(4, 4), (4, 4)]


def test_references_are_each_identity_in_a_typical_state_and_leave_the_triples_alone() -> None:
    plain = MouthSwapSampler([3, 7, 11], size=48)(np.random.default_rng(2), 6)
    frames = MouthSwapSampler([3, 7, 11], size=48, references=True)(np.random.default_rng(2), 6)
    assert frames.shape == (6, 5, 48, 48, 3)
    np.testing.assert_array_equal(frames[0, :3], plain[0])  # the first item's triple is drawn as before
    x = frames.astype(np.int16)

    def differs(a: int, b: int) -> float:  # share of pixels where frames a and b differ
        return float((np.abs(x[:, a] - x[:, b]).max(axis=-1) > 8).mean())

    # a reference shares its identity's background and clothes: it is far closer to its own face than to
    # the other identity's frame
    assert differs(0, 3) < 0.5 * differs(0, 4) and differs(2, 4) < 0.5 * differs(2, 3)
    assert differs(0, 3) > 0  # in another state than the face
