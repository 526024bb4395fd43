"""`avatarlm data ingest` on real photographs, real recorded speech, a talking synthetic avatar whose truth is
known, and broken files; resuming; and the shards it writes loading in the trainers."""

from __future__ import annotations

import json

import numpy as np
import pytest

from avatarlm.cli import main
from avatarlm.data.face_tracker import ENV_VAR, FaceTracker
from avatarlm.data.ingest import REPORT_NAME, IngestConfig, ingest
from avatarlm.data.ingest_quality import QualityConfig
from avatarlm.data.shards import iter_samples, read_index
from ingest_videos import PAD

BAD = {
    "silent": "silent",
    "faceless": "no face found",
    "mute": "no audio track",
    "corrupt": "cannot open as a video",
    "truncated": "cannot open as a video",
}


@pytest.fixture(scope="module")
def ingested(videos, tmp_path_factory):
    out = tmp_path_factory.mktemp("ingested")
    names = ["talking", "photo", *BAD, "two_shots", "jump"]
    report = ingest(
        [str(videos[n]) for n in names] + [str(out / "missing.mp4")],
        IngestConfig(out=str(out)),
        progress=False,
    )
    return out, report


def entry(report, video):
    return next(e for e in report["videos"].values() if e["file"] == str(video))


def samples_of(root, video_name):
    return [s for s in iter_samples(root) if s.key.startswith(video_name)]


def test_talking_avatar_is_ingested_with_the_pose_and_mouth_it_was_rendered_with(ingested, videos):
    root, report = ingested
    e = entry(report, videos["talking"])
    assert e["status"] == "ingested" and [c["kept"] for c in e["clips"]] == [True]
    (s,) = samples_of(root, "talking")
    truth = np.load(videos["talking"].parent / "talking_truth.npz")
    face, n = truth["face"], len(truth["face"])
    assert s.frames.shape == (n, 128, 128, 3)  # every frame, cropped to the dataset's size
    assert len(s.audio["self"]) == n * 640 and not s.audio["partner"].any()
    pose = s.truth["pose"]
    for i in (0, 2):  # yaw, roll follow the renderer's angles (pitch has the mesh's own zero)
        assert np.corrcoef(face[:, i], pose[:, i])[0, 1] > 0.9
        assert np.abs(face[:, i] - pose[:, i]).mean() < 4.0
    assert np.corrcoef(face[:, 7], s.truth["lip_gap"])[0, 1] > 0.8  # mouth_open
    # The crop finds the rendered frame inside the padded video: named keypoints land where the renderer
    # put them, in crop coordinates.
    box = s.truth["crop_box"]
    assert np.abs(box[:, 0] - PAD[1]).max() < 12 and np.abs(box[:, 1] - PAD[0]).max() < 24
    assert 0.85 < np.median(box[:, 2]) / 256 < 1.25
    source_px = truth["keypoints"] * 256 + np.array([PAD[1], PAD[0]])
    expected = (source_px - box[:, None, :2]) / box[:, None, 2:3]
    assert np.abs(s.truth["keypoints"] - expected).mean() < 0.03
    assert s.meta["quality"]["lip_sync"] > 0.5 and s.meta["generator"] == "avatarlm ingest"
    words = s.meta["utterances"][0]
    assert words and words[0]["engine"] == "pocketsphinx" and words[0]["words"]


def test_a_still_photo_with_real_speech_is_found_but_left_out_for_its_still_lips(ingested, videos, tmp_path):
    _, report = ingested
    e = entry(report, videos["photo"])
    assert e["status"] == "skipped" and "quality filters" in e["reason"]
    (clip,) = e["clips"]
    assert not clip["kept"] and "lips do not follow the sound" in clip["reason"]
    assert clip["quality"]["face_px"] > 64 and clip["quality"]["audio_db"] > -45
    # Without the lip filter the real face is ingested, looking at the camera.
    cfg = IngestConfig(out=str(tmp_path), quality=QualityConfig(min_lip_sync=-2.0))
    ingest([str(videos["photo"])], cfg, progress=False)
    (s,) = iter_samples(tmp_path)
    assert np.abs(s.truth["pose"][:, 0]).max() < 15 and np.abs(s.truth["pose"][:, 2]).max() < 10
    kp = s.truth["keypoints"]
    assert kp[..., 0].min() > 0.2 and kp[..., 0].max() < 0.8  # the face is centred in the crop


@pytest.mark.parametrize("name", sorted(BAD))
def test_bad_files_are_skipped_with_their_reason(ingested, videos, name):
    root, report = ingested
    e = entry(report, videos[name])
    assert e["status"] == "skipped" and BAD[name] in e["reason"], e
    assert not samples_of(root, name)


def test_missing_file_and_clean_output(ingested):
    root, report = ingested
    missing = next(e for e in report["videos"].values() if e["file"].endswith("missing.mp4"))
    assert missing == {"file": missing["file"], "status": "skipped", "reason": "no such file"}
    assert not list(root.rglob("*.tmp")), "no half-written file is left"
    index = read_index(root)
    assert {s["path"].split("/")[1].split("-")[0] for s in index["shards"]} == {"video"}
    assert len(index["shards"]) == 3 and index["config"]["source"] == "ingest"


def test_a_shot_cut_splits_the_clips(ingested, videos):
    root, report = ingested
    e = entry(report, videos["two_shots"])
    first, second = e["clips"]  # two shots of equal length, one clip each, split exactly at the cut
    assert first["start"] == 0.0 and first["end"] == second["start"] > 2.0
    assert second["end"] == 2 * first["end"] and first["kept"] and second["kept"]


def test_a_face_that_jumps_across_the_frame_splits_the_clips(ingested, videos):
    _, report = ingested
    first, second = entry(report, videos["jump"])["clips"]
    assert first["start"] == 0.0 and first["end"] == 62 / 25  # the leap is at frame 62 ...
    assert second["start"] in (62 / 25, 63 / 25)  # ... where the tracker may need a frame to find the face


class CountingTracker(FaceTracker):
    calls = 0

    def track(self, image, reset=False):
        CountingTracker.calls += 1
        if CountingTracker.calls > CountingTracker.fail_after:
            raise RuntimeError("killed")
        return super().track(image, reset)


def test_rerun_resumes_after_a_crash_and_skips_what_is_done(videos, tmp_path):
    cfg = IngestConfig(out=str(tmp_path))
    files = [str(videos["talking"]), str(videos["two_shots"])]
    CountingTracker.calls, CountingTracker.fail_after = 0, 130  # dies inside the second video
    with pytest.raises(RuntimeError, match="killed"):
        ingest(files, cfg, tracker_factory=CountingTracker, progress=False)
    report = json.loads((tmp_path / REPORT_NAME).read_text())
    assert [e["status"] for e in report["videos"].values()] == ["ingested"]
    assert not list(tmp_path.rglob("*.tmp"))
    shard = next(tmp_path.rglob("*.tar"))
    before = shard.read_bytes()
    CountingTracker.calls, CountingTracker.fail_after = 0, 10**9
    report = ingest(files, cfg, tracker_factory=CountingTracker, progress=False)
    second = entry(report, videos["two_shots"])
    assert CountingTracker.calls == round(second["clips"][-1]["end"] * 25)  # only the second was tracked
    assert shard.read_bytes() == before and len(report["videos"]) == 2
    assert len(list(iter_samples(tmp_path))) == 3
    with pytest.raises(ValueError, match="other settings"):
        ingest(files, IngestConfig(out=str(tmp_path), size=64), progress=False)


def test_shards_from_ingestion_train_the_autoencoder_and_ar_model(videos, tmp_path):
    from ar_helpers import TAG, encoded_dataset, train_config
    from avatarlm.trainer.ar import train_ar, window_sampler
    from avatarlm.trainer.ar_data import load_ar_clips

    ingest(
        [str(videos["talking"]), str(videos["two_shots"])],
        IngestConfig(out=str(tmp_path), size=64, split="train"),
        progress=False,
    )
    encoded_dataset(tmp_path)  # `ae encode` of the ingested frames with a 64x64 autoencoder
    clips = load_ar_clips(tmp_path, TAG, "train", progress=False)
    assert len(clips) == 3 and all(c.pose.shape == (c.n_frames, 3) and c.pose.any() for c in clips)
    cfg = train_config(checkpoint_every=4)
    train_ar(cfg, window_sampler(cfg, clips), tmp_path / "run", 4, progress=False)
    assert (tmp_path / "run" / "model" / "model.safetensors").exists()


def test_cli_reports_skips_and_fails_when_nothing_is_ingested(videos, tmp_path, capsys):
    assert main(["data", "ingest", str(videos["corrupt"]), str(videos["mute"]), "--out", str(tmp_path)]) != 0
    err = capsys.readouterr().err
    assert "no video gave a clip" in err and "no audio track" in err
    assert (
        main(["data", "ingest", str(videos["talking"]), "--out", str(tmp_path / "b"), "--split", "bogus"])
        != 0
    )
    assert "--split must be" in capsys.readouterr().err


def test_tracker_without_mediapipe_says_how_to_set_it_up(monkeypatch, tmp_path):
    monkeypatch.setenv(ENV_VAR, str(tmp_path / "nowhere" / "python"))
    with pytest.raises(ValueError, match="setup.sh --ingest"):
        FaceTracker()
    import sys

    monkeypatch.setenv(ENV_VAR, sys.executable)  # the main environment has no mediapipe
    with pytest.raises(ValueError, match="did not start"), FaceTracker():
        pass
