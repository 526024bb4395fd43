"""`avatarlm train duplex`: a mono pipeline becomes a duplex one that starts from its weights, learns on a
set share of dialogue windows, streams with a partner, resumes its own run, and refuses bad input."""

import csv
import json
import shutil

import numpy as np
import pytest
import torch

from ar_helpers import TAG, ae_config, encoded_dataset, random_pipeline_folder
from avatarlm.autoencoder.latent_cache import encode_dataset
from avatarlm.autoencoder.model import DCAutoencoder
from avatarlm.cli import build_parser, main
from avatarlm.data.synth import SynthConfig, synthesize_dataset
from avatarlm.model import ARModel
from avatarlm.pipeline.folder import load_pipeline
from avatarlm.pipeline.session import SessionConfig, StreamingSession
from avatarlm.trainer.ar import train_ar, validation_loss
from avatarlm.trainer.ar_data import load_ar_clips
from avatarlm.trainer.duplex_init import NULL_AUDIO, SLOT_EMBEDDING, duplex_state
from avatarlm.trainer.duplex_run import (
    DEFAULT_DIALOGUE_FRACTION,
    duplex_sampler,
    duplex_train_config,
    is_dialogue,
    latent_tag,
    run_duplex_training,
)

SMALL = {
    "window_frames": 8,
    "batch_size": 4,
    "micro_batch": 2,
    "warmup_steps": 2,
    "checkpoint_every": 2,
    "log_every": 1,
    "val_every": 2,
    "val_windows": 4,
}


@pytest.fixture(scope="module")
def data(tiny_dataset):
    encoded_dataset(tiny_dataset)
    return tiny_dataset


@pytest.fixture(scope="module")
def mono(tmp_path_factory):
    return random_pipeline_folder(tmp_path_factory.mktemp("mono"), audio_streams=1)


@pytest.fixture(scope="module")
def finetuned(data, mono, tmp_path_factory):
    out = tmp_path_factory.mktemp("duplex-run")
    overrides = {**SMALL, "lr": 2e-3, "ema_decay": 0.9, "checkpoint_every": 20}
    path = run_duplex_training(mono, data, out, 30, tag=TAG, overrides=overrides, progress=False)
    return out, path


def rows_of(out):
    return list(csv.DictReader((out / "loss.csv").open()))


def test_the_duplex_model_starts_from_exactly_the_mono_weights(data, mono, tmp_path):
    pipe = load_pipeline(mono)
    cfg = duplex_train_config(pipe.model, SMALL)
    assert cfg.model.conditions.audio_streams == 2 and cfg.lr == 1e-4  # the fine-tuning settings
    clips = load_ar_clips(data, TAG, "train", progress=False)
    start = duplex_state(pipe.model, ARModel(cfg.model))
    model = train_ar(cfg, duplex_sampler(cfg, clips, 0.5), tmp_path, 4, progress=False, stop_after=0,
                     init_state=start)  # fmt: skip
    got, before = model.state_dict(), pipe.model.state_dict()
    assert got.keys() == before.keys()
    for key in before.keys() - {SLOT_EMBEDDING, NULL_AUDIO}:
        assert torch.equal(got[key], before[key]), key
    # [self audio][partner audio][pose][text]: the self rows and the rest are the mono rows, the partner's
    # start as copies of the self ones
    slots = before[SLOT_EMBEDDING]
    torch.testing.assert_close(
        got[SLOT_EMBEDDING], torch.cat([slots[:1], slots[:1], slots[1:]]), atol=0, rtol=0
    )
    torch.testing.assert_close(got[NULL_AUDIO], before[NULL_AUDIO].repeat(2, 1), atol=0, rtol=0)
    # a duplex init is taken as it is
    again = duplex_state(model, ARModel(cfg.model))
    assert all(torch.equal(v, again[k]) for k, v in got.items())


def test_a_pose_change_branch_starts_at_zero_on_a_model_trained_without_it(mono):
    pipe = load_pipeline(mono)
    cfg = duplex_train_config(pipe.model, {"model.conditions.pose_delta": True})
    start = duplex_state(pipe.model, ARModel(cfg.model))
    added = {k for k in start if k.startswith("conditions.encoders.pose.delta.")}
    assert added == {"conditions.encoders.pose.delta.weight", "conditions.encoders.pose.delta.bias"}
    assert all(start[k].eq(0).all() for k in added)
    before = pipe.model.state_dict()
    assert all(torch.equal(start[k], before[k]) for k in start.keys() - added - {SLOT_EMBEDDING, NULL_AUDIO})


def test_another_architecture_is_refused_with_one_clear_error(mono):
    pipe = load_pipeline(mono)
    for change in ({"model.backbone.num_layers": 3}, {"model.backbone.intermediate_size": 96}):
        cfg = duplex_train_config(pipe.model, change)
        with pytest.raises(ValueError, match="do not fit the duplex model"):
            duplex_state(pipe.model, ARModel(cfg.model))
    with pytest.raises(ValueError, match="two audio streams"):
        duplex_train_config(pipe.model, {"model.conditions.audio_streams": 1})


def test_fine_tuning_lowers_the_loss_and_writes_a_duplex_pipeline_that_streams(data, mono, finetuned):
    out, path = finetuned
    assert path == out / "pipeline"
    rows = rows_of(out)
    assert [int(r["step"]) for r in rows] == list(range(1, 31))
    vals = [float(r["val_loss"]) for r in rows if r["val_loss"]]
    assert len(vals) == 15 and vals[-1] < 0.8 * vals[0], vals
    # the loss on a fixed set of training windows (fixed noise), before and after
    init = load_pipeline(mono).model
    cfg = duplex_train_config(init, SMALL)
    before = ARModel(cfg.model)
    before.load_state_dict(duplex_state(init, before))
    sampler = duplex_sampler(cfg, load_ar_clips(data, TAG, "train", progress=False), 0.75)
    start, end = (validation_loss(m, sampler, 16, 4, "cpu") for m in (before, load_pipeline(path).model))
    assert end < 0.9 * start, (start, end)  # 3.25 -> 2.77 here
    assert json.loads((out / "duplex.json").read_text())["dialogue_fraction"] == DEFAULT_DIALOGUE_FRACTION

    pipe = load_pipeline(path)
    assert pipe.model.config.conditions.audio_streams == 2 and pipe.info["preset"] == "test-duplex"
    t = np.arange(7680) / 16000  # 0.48 s: 12 frames
    session = StreamingSession(pipe, identity_seed=1, config=SessionConfig(window_frames=64))
    frames = [f for _, f in session.frames()]
    session.push_audio((0.3 * np.sin(2 * np.pi * 200 * t)).astype(np.float32))
    session.push_partner_audio((0.3 * np.sin(2 * np.pi * 300 * t)).astype(np.float32))
    session.flush()
    frames += [f for _, f in session.frames()]
    assert np.stack(frames).shape == (1 + 12, 64, 64, 3)  # the reference, then a frame per 40 ms


def test_a_rerun_continues_the_interrupted_run_not_the_init(data, mono, tmp_path):
    whole = run_duplex_training(mono, data, tmp_path / "whole", 5, tag=TAG, overrides=SMALL, progress=False)
    init = tmp_path / "init"
    shutil.copytree(mono, init)
    cut = tmp_path / "cut"
    assert run_duplex_training(init, data, cut, 5, TAG, overrides=SMALL, progress=False, stop_after=3) is None
    assert not (cut / "pipeline").exists()
    # other init weights now: a run that started over from the init would end elsewhere
    torch.manual_seed(1)
    ARModel(load_pipeline(init).model.config).save_pretrained(init / "ar")
    resumed = run_duplex_training(init, data, cut, 5, TAG, overrides=SMALL, progress=False)
    assert resumed is not None and whole is not None
    a, b = load_pipeline(whole).model.state_dict(), load_pipeline(resumed).model.state_dict()
    assert all(torch.equal(a[k], b[k]) for k in a)
    assert [int(r["step"]) for r in rows_of(cut)] == list(range(1, 6))
    with pytest.raises(ValueError, match="other dialogue_fraction"):
        run_duplex_training(init, data, cut, 5, TAG, overrides=SMALL, dialogue_fraction=0.2, progress=False)


def test_the_dialogue_share_is_respected(data, mono):
    cfg = duplex_train_config(load_pipeline(mono).model, SMALL)
    clips = load_ar_clips(data, TAG, "train", progress=False)
    kinds = [is_dialogue(c) for c in clips]
    assert 0 < sum(kinds) < len(clips)
    assert kinds == [bool(np.abs(c.audio[1]).max() > 0) for c in clips]  # dialogues have a speaking partner
    for share in (0.0, 0.3, 0.9, 1.0):
        sampler = duplex_sampler(cfg, clips, share)
        windows = sampler.draw(np.random.default_rng(0), 3000)
        drawn = np.mean([is_dialogue(sampler.clips[w.clip]) for w in windows])
        assert abs(drawn - share) < 0.03, (share, drawn)
    sampler = duplex_sampler(cfg, clips, 1.0)
    batch = sampler.collate(sampler.draw(np.random.default_rng(1), 8))
    partner = batch.conditions.audio[:, 1]  # (B, samples): the partner's stream reaches training
    assert batch.conditions.audio.shape[1] == 2 and (partner.abs().amax(dim=1) > 0).sum() >= 4
    with pytest.raises(ValueError, match="dialogue-fraction must be in"):
        duplex_sampler(cfg, clips, 1.5)
    monologues = [c for c in clips if not is_dialogue(c)]
    with pytest.raises(ValueError, match="needs dialogue clips"):
        duplex_sampler(cfg, monologues, 0.5)
    assert len(duplex_sampler(cfg, monologues, 0.0).clips) == len(monologues)


def test_the_latent_tag_defaults_to_the_only_set(tmp_path):
    (tmp_path / "latents" / "only").mkdir(parents=True)
    assert latent_tag(tmp_path, None) == "only"
    (tmp_path / "latents" / "other").mkdir()
    with pytest.raises(ValueError, match="several latent sets; pass --tag"):
        latent_tag(tmp_path, None)
    with pytest.raises(ValueError, match="no latents under tag 'nope'"):
        latent_tag(tmp_path, "nope")


@pytest.fixture(scope="module")
def monologue_data(tmp_path_factory):
    root = tmp_path_factory.mktemp("monologues")
    cfg = SynthConfig(hours=0.003, out=str(root), height=64, width=64, languages=["en"], clips_per_shard=2,
                      clip_seconds=(3.0, 4.0), seed=5, dialogue_fraction=0.0)  # fmt: skip
    synthesize_dataset(cfg, show_progress=False)
    torch.manual_seed(0)
    encode_dataset(DCAutoencoder(ae_config()), root, TAG, show_progress=False)
    return root


def test_cli_trains_and_refuses_bad_input_with_one_line(data, mono, monologue_data, tmp_path, capsys):
    args = build_parser().parse_args(
        ["train", "duplex", "--init", "i", "--data", "d", "--out", "o", "--steps", "1"]
    )
    assert args.dialogue_fraction == DEFAULT_DIALOGUE_FRACTION  # the CLI's default is the trainer's
    sets = [x for k, v in SMALL.items() for x in ("--set", f"{k}={v}")]
    out = tmp_path / "run"
    base = ["train", "duplex", "--out", str(out), "--steps", "2", *sets]
    assert main([*base, "--init", str(mono), "--data", str(data), "--tag", TAG]) == 0
    assert f"wrote {out / 'pipeline'}" in capsys.readouterr().out
    assert load_pipeline(out / "pipeline").model.config.conditions.audio_streams == 2

    bad = tmp_path / "bad"
    base = ["train", "duplex", "--out", str(bad), "--steps", "2", *sets]
    cases = [
        (["--init", str(tmp_path / "missing"), "--data", str(data)], "no such pipeline folder"),
        (["--init", str(data), "--data", str(data)], "pipeline.json is missing"),
        (["--init", str(mono), "--data", str(data), "--tag", "never-encoded"], "no latents under tag"),
        (["--init", str(mono), "--data", str(monologue_data), "--tag", TAG], "needs dialogue clips"),
        (["--init", str(mono), "--data", str(data), "--tag", TAG, "--dialogue-fraction", "2"], "must be in [0, 1]"),
        (["--init", str(mono), "--data", str(data), "--tag", TAG, "--set", "model.backbone.num_layers=3"],
         "do not fit the duplex model"),
        (["--init", str(mono), "--data", str(data), "--tag", TAG, "--steps", "0"], "--steps must be at least 1"),
    ]  # fmt: skip
    for extra, message in cases:
        assert main([*base, *extra]) == 2, extra
        err = capsys.readouterr().err  # a progress bar may come first
        assert message in err and err.count("avatarlm: error:") == 1, err
        assert err[err.index("avatarlm: error:") :].count("\n") == 1, err
        assert not (bad / "pipeline").exists() and not bad.exists(), extra
