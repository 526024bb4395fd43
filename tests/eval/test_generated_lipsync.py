import json

import numpy as np
import pytest
import torch

from ar_helpers import ae_config, ar_config
from avatarlm.autoencoder.model import DCAutoencoder
from avatarlm.data.shards import iter_samples
from avatarlm.eval.generated_lipsync import MOUTH_OPEN, evaluate_lipsync
from avatarlm.media import read_mp4
from avatarlm.model import ARModel
from avatarlm.pipeline.folder import load_pipeline, save_pipeline
from avatarlm.pipeline.offline import encode_reference
from avatarlm.trainer.ar_data import clip_from_sample


@pytest.fixture(scope="module")
def pipe(tmp_path_factory):
    root = tmp_path_factory.mktemp("pipe")
    torch.manual_seed(0)
    ae = DCAutoencoder(ae_config()).save_pretrained(root / "ae")
    return load_pipeline(save_pipeline(root / "pipeline", ae, ARModel(ar_config()), "test"))


def test_evaluation_writes_video_plot_and_scores(pipe, tiny_dataset, tmp_path):
    report = evaluate_lipsync(pipe, tiny_dataset, "train", max_clips=2, max_frames=None, out_dir=tmp_path,
                              progress=False)  # fmt: skip
    assert report.clips == 2 and report.frames > 100
    summary = json.loads((tmp_path / "lipsync.json").read_text())
    assert set(summary) >= {"generated", "reconstructed", "truth", "languages"}
    assert summary["truth"]["corr_at_best"] > 0.5  # the probe reads the true mouths (0.64 at 64x64)
    per_clip = summary["per_clip"]  # each clip's scores; their mean is the report's
    assert [c["language"] for c in per_clip] == summary["languages"]
    for source in ("generated", "reconstructed", "truth"):
        mean = np.mean([c[source] for c in per_clip])
        assert mean == pytest.approx(summary[source]["corr_at_0"], abs=1e-9)
    assert (tmp_path / "lipsync.png").stat().st_size > 5000
    video = next(tmp_path.glob("*_generated_vs_truth.mp4"))
    frames, meta = read_mp4(video)
    assert frames.shape[0] > 50 and frames.shape[2] == 128  # generated | truth, side by side
    assert "avatarlm" in json.dumps(meta)


def test_reference_image_must_fit_the_autoencoder(pipe):
    with pytest.raises(ValueError, match="reference image must be uint8"):
        encode_reference(pipe.autoencoder, np.zeros((32, 32, 3), np.uint8))
    tokens = encode_reference(pipe.autoencoder, np.zeros((64, 64, 3), np.uint8))
    assert tokens.shape == (16, 8)


def test_clips_with_a_shut_mouth_are_passed_over(pipe, tiny_dataset):
    """A listener's clip (or a clip's silent start) has no lip-sync to score: it is named and the next taken."""
    frames = 20
    report = evaluate_lipsync(pipe, tiny_dataset, "train", max_clips=3, max_frames=frames, progress=False)
    opening = {}
    for sample in iter_samples(tiny_dataset, "train"):
        opening[sample.key] = clip_from_sample(sample).truth["face"][1:frames, MOUTH_OPEN]
    scored = [clip["key"] for clip in report.per_clip]
    assert report.skipped and len(scored) == report.clips == 3
    assert all(opening[key].std() == 0 for key in report.skipped)
    assert all(opening[key].std() > 0 for key in scored)
    order = list(opening)  # clips are taken in the split's order, none left out between
    assert sorted(report.skipped + scored, key=order.index) == order[: len(report.skipped) + 3]
