import numpy as np
import pytest
import torch

from ar_helpers import TAG, encoded_dataset
from avatarlm.autoencoder.latent_cache import load_latents
from avatarlm.autoencoder.tokens import grid_to_tokens
from avatarlm.conditions import ConditionConfig, ConditionEncoder
from avatarlm.conditions.audio import AudioEncoder
from avatarlm.data.face import FACE_STATE_FIELDS
from avatarlm.data.instructions import INSTRUCTION_NAMES
from avatarlm.trainer.ar_data import (
    WindowSampler,
    frame_texts,
    load_ar_clips,
    stack_conditions,
    window_conditions,
)


@pytest.fixture(scope="module")
def clips(tiny_dataset):
    encoded_dataset(tiny_dataset)
    return load_ar_clips(tiny_dataset, TAG, "train", progress=False)


def test_clips_carry_tokens_truth_and_audio(clips, tiny_dataset):
    grids = load_latents(tiny_dataset, TAG, "train")
    clip = clips[0]
    np.testing.assert_array_equal(clip.latents, grid_to_tokens(grids[clip.key]))
    n = clip.n_frames
    assert clip.latents.shape == (n, 16, 8)
    assert clip.pose.shape == (n, 3) and clip.keypoints.shape[0] == n and len(clip.texts) == n
    assert clip.audio.shape[0] == 2 and clip.audio.shape[1] >= (n - 1) * 640


def test_frame_texts_names_the_first_active_instruction():
    m = np.zeros((3, len(INSTRUCTION_NAMES)), np.uint8)
    m[1, INSTRUCTION_NAMES.index("nod")] = 1
    m[2, INSTRUCTION_NAMES.index("smile")] = 1
    assert frame_texts(m, INSTRUCTION_NAMES) == [None, "nod", "smile"]


def test_windows_align_latents_audio_and_pose(clips):
    history, frames, ahead = 3, 6, 2
    sampler = WindowSampler(
        clips,
        frames,
        audio_history_frames=history,
        contiguous_reference=1.0,
        audio_lookahead_frames=ahead,
        face_fields=("mouth_open", "blink"),
    )
    windows = sampler.draw(np.random.default_rng(0), 16)
    assert windows == sampler.draw(np.random.default_rng(0), 16)
    batch = sampler.collate(windows)
    assert batch.latents.shape == (16, frames, 16, 8)
    assert batch.conditions.audio.shape == (16, 1, (history + frames - 1 + ahead) * 640)
    assert batch.face is not None and batch.face.shape == (16, frames - 1, 2)
    for i, w in enumerate(windows):
        clip = sampler.clips[w.clip]
        assert w.reference == w.start - 1  # contiguous: the frame before f_1
        np.testing.assert_array_equal(batch.latents[i, 0], clip.latents[w.reference])
        np.testing.assert_array_equal(batch.latents[i, 1:], clip.latents[w.start : w.start + frames - 1])
        np.testing.assert_array_equal(batch.conditions.pose[i], clip.pose[w.start : w.start + frames - 1])
        np.testing.assert_array_equal(batch.conditions.pose_previous[i], clip.pose[w.reference])
        np.testing.assert_array_equal(batch.conditions.keypoints_previous[i], clip.keypoints[w.reference])
        face = clip.truth["face"][w.start : w.start + frames - 1]
        np.testing.assert_array_equal(batch.face[i, :, 0], face[:, FACE_STATE_FIELDS.index("mouth_open")])
        # audio sample 0 is H frames before the frame preceding f_1, and it runs L frames past the last
        # frame (its look-ahead); silence outside the clip
        begin = (w.start - 1 - history) * 640
        audio = batch.conditions.audio[i, 0].numpy()
        lo, hi = max(begin, 0), min(begin + len(audio), clip.audio.shape[1])
        np.testing.assert_array_equal(audio[lo - begin : hi - begin], clip.audio[0, lo:hi])
        assert not audio[: lo - begin].any() and not audio[hi - begin :].any()


def test_last_frames_of_a_window_hear_the_audio_after_it(clips):
    """The audio tokens of a window's frames equal those of the same frames inside a longer window: the
    last frames' look-ahead is the clip's real audio, as in a running session, not silence."""
    cfg = ConditionConfig.preset("tiny")
    torch.manual_seed(0)
    encoder = ConditionEncoder(cfg).eval()
    clip = max(clips, key=lambda c: c.n_frames)
    history = AudioEncoder(cfg).receptive_field_frames

    def tokens(count: int) -> torch.Tensor:
        part = window_conditions(clip, 3, count, history, 1, 640, cfg.lookahead_frames)
        with torch.no_grad():
            return encoder(stack_conditions([part], ("audio",), history))

    short, long = tokens(5), tokens(9)
    torch.testing.assert_close(short, long[:, :5], atol=1e-5, rtol=1e-5)


def test_references_from_elsewhere_stay_outside_the_window(clips):
    sampler = WindowSampler(clips, 5, contiguous_reference=0.0)
    for w in sampler.draw(np.random.default_rng(1), 200):
        assert not w.start <= w.reference < w.start + 4
        assert 0 <= w.reference < sampler.clips[w.clip].n_frames
    # a delta target counts the first frame's change from the reference: so does the pose's change
    windows = sampler.draw(np.random.default_rng(2), 4)
    batch = sampler.collate(windows)
    for i, w in enumerate(windows):
        np.testing.assert_array_equal(
            batch.conditions.pose_previous[i], sampler.clips[w.clip].pose[w.reference]
        )


def test_only_enabled_modalities_are_collated(clips):
    sampler = WindowSampler(clips, 4, modalities=("audio",))
    batch = sampler.collate(sampler.draw(np.random.default_rng(2), 2))
    assert batch.conditions.modalities() == ["audio"]
    assert isinstance(batch.latents, torch.Tensor)


def test_bad_arguments(clips, tiny_dataset):
    with pytest.raises(ValueError, match="at least 2 frames"):
        WindowSampler(clips, 1)
    with pytest.raises(ValueError, match="no clip has the 100000 frames"):
        WindowSampler(clips, 100_000)
    with pytest.raises(ValueError, match="contiguous_reference"):
        WindowSampler(clips, 4, contiguous_reference=1.5)
    with pytest.raises(ValueError, match="audio_lookahead_frames"):
        WindowSampler(clips, 4, audio_lookahead_frames=-1)
    with pytest.raises(ValueError, match="unknown face fields"):
        WindowSampler(clips, 4, face_fields=("moustache",))
    with pytest.raises(FileNotFoundError, match="ae encode"):
        load_ar_clips(tiny_dataset, "no-such-tag", "train", progress=False)
