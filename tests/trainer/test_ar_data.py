import numpy as np
import pytest
import torch

from ar_helpers import TAG, encoded_dataset
from avatarlm.autoencoder.latent_cache import load_latents
from avatarlm.autoencoder.tokens import grid_to_tokens
from avatarlm.data.instructions import INSTRUCTION_NAMES
from avatarlm.trainer.ar_data import WindowSampler, frame_texts, load_ar_clips


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
    history, frames = 3, 6
    sampler = WindowSampler(clips, frames, audio_history_frames=history, contiguous_reference=1.0)
    windows = sampler.draw(np.random.default_rng(0), 16)
    assert windows == sampler.draw(np.random.default_rng(0), 16)
    batch = sampler.collate(windows)
    assert batch.latents.shape == (16, frames, 16, 8)
    assert batch.conditions.audio.shape == (16, 1, (history + frames - 1) * 640)
    for i, w in enumerate(windows):
        clip = sampler.clips[w.clip]
        assert w.reference == w.start - 1  # contiguous: the frame before f_1
        np.testing.assert_array_equal(batch.latents[i, 0], clip.latents[w.reference])
        np.testing.assert_array_equal(batch.latents[i, 1:], clip.latents[w.start : w.start + frames - 1])
        np.testing.assert_array_equal(batch.conditions.pose[i], clip.pose[w.start : w.start + frames - 1])
        # audio sample 0 is H frames before the frame preceding f_1; silence before the clip starts
        begin = (w.start - 1 - history) * 640
        audio = batch.conditions.audio[i, 0].numpy()
        lo = max(begin, 0)
        np.testing.assert_array_equal(audio[lo - begin :], clip.audio[0, lo : begin + len(audio)])
        assert not audio[: lo - begin].any()


def test_references_from_elsewhere_stay_outside_the_window(clips):
    sampler = WindowSampler(clips, 5, contiguous_reference=0.0)
    for w in sampler.draw(np.random.default_rng(1), 200):
        assert not w.start <= w.reference < w.start + 4
        assert 0 <= w.reference < sampler.clips[w.clip].n_frames


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
    with pytest.raises(FileNotFoundError, match="ae encode"):
        load_ar_clips(tiny_dataset, "no-such-tag", "train", progress=False)
