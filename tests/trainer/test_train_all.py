"""`avatarlm train all` on a tiny plan: every stage runs once, a rerun resumes instead of redoing, other
settings are refused, and the pipeline it writes loads and generates."""

import argparse
import json

import pytest
import torch

from ar_helpers import ae_config, train_config
from avatarlm.autoencoder.model import DCAutoencoder
from avatarlm.cli import build_parser, main
from avatarlm.cli_train import PLAN_FIELDS, train_all_plan
from avatarlm.pipeline.folder import load_pipeline
from avatarlm.trainer.ae_config import AETrainConfig
from avatarlm.trainer.train_all import (
    OWN_HISTORY_RECIPE,
    STAGES,
    TrainAllPlan,
    budget_table,
    result_pipeline,
    train_all,
)


@pytest.fixture(scope="module")
def configs(tmp_path_factory):
    root = tmp_path_factory.mktemp("configs")
    ae = AETrainConfig(autoencoder=ae_config(), warmup_steps=1, checkpoint_every=2, latent_stats_batches=1)
    (root / "ae.json").write_text(json.dumps(ae.to_dict()))
    timed = ae.replace(autoencoder=ae.autoencoder.replace(temporal_levels=2))  # room for temporal layers
    (root / "ae_temporal.json").write_text(json.dumps(timed.to_dict()))
    ar = train_config(window_frames=6, batch_size=2, micro_batch=2, val_windows=2)
    (root / "ar.json").write_text(json.dumps(ar.to_dict()))
    return root


def tiny_plan(configs, **overrides) -> TrainAllPlan:
    values = dict(
        ae_preset=str(configs / "ae.json"),
        ar_preset=str(configs / "ar.json"),
        hours=0.005,
        seed=1,
        languages=["en", "es"],
        clip_seconds=(3.0, 4.0),
        head_turns=0.5,
        ae_steps=2,
        ae_batch=2,
        ae_lr=None,  # the preset's
        ae_mouth_channels=0,
        ae_mouth_weight=0.0,
        ae_reference_steps=0,
        ae_temporal_steps=0,
        ar_steps=2,
        workers=1,
    )
    values.update(overrides)
    return TrainAllPlan(**values)  # type: ignore[arg-type]


def test_train_all_runs_every_stage_once_and_resumes(configs, tmp_path):
    out = tmp_path / "run"
    reports = train_all(tiny_plan(configs), out, progress=False)
    assert [r.name for r in reports] == list(STAGES) and not any(r.skipped for r in reports)
    pipe = load_pipeline(out / "ar" / "pipeline")
    assert pipe.model.config.tokens_per_frame == 16
    assert sorted(json.loads((out / "stages.json").read_text())) == sorted(STAGES)
    assert json.loads((out / "data" / "index.json").read_text())["config"]["head_turn_fraction"] == 0.5
    weights = (out / "ar" / "pipeline" / "ar" / "model.safetensors").stat().st_mtime_ns

    # a rerun (other worker count, compiled: allowed) finds everything done and changes nothing
    again = train_all(tiny_plan(configs, workers=2, compile=True), out, progress=False)
    assert all(r.skipped for r in again)
    assert (out / "ar" / "pipeline" / "ar" / "model.safetensors").stat().st_mtime_ns == weights
    assert "| AR model |" in budget_table(again)

    # a stage forgotten (as after a kill inside it) runs again, and only that one
    done = json.loads((out / "stages.json").read_text())
    del done["ar"]
    (out / "stages.json").write_text(json.dumps(done))
    third = train_all(tiny_plan(configs), out, progress=False)
    assert [r.name for r in third if not r.skipped] == ["ar"]

    with pytest.raises(ValueError, match="other settings \\(ar_steps differ\\)"):
        train_all(tiny_plan(configs, ar_steps=3), out, progress=False)


def test_train_all_with_mouth_channels_and_a_duplex_stage_builds_the_bundled_recipe(configs, tmp_path):
    """The bundled model's recipe in one command: a mouth-swap autoencoder whose decoder reads the
    reference frame, a duplex AR model, then the fine-tune on its own rollouts."""
    plan = tiny_plan(
        configs, ae_preset=str(configs / "ae_temporal.json"), ae_mouth_channels=2, ae_mouth_weight=3.0, ae_lr=6e-4, ae_reference_steps=2, ae_reference_levels=1, ae_temporal_steps=2,
        ae_temporal_window=3, ae_temporal_batch=1, duplex_steps=2, own_history_steps=2,
    )  # fmt: skip
    out = tmp_path / "run"
    reports = train_all(plan, out, progress=False)
    assert [r.name for r in reports] == list(STAGES)
    assert result_pipeline(plan, out) == out / "own_history" / "pipeline"
    pipe = load_pipeline(result_pipeline(plan, out))
    assert pipe.autoencoder.config.mouth_channels == 2
    assert pipe.autoencoder.config.reference_levels == 1  # the decoder reads the reference frame
    # and then learned time, in the decoder alone: the reference stage's encoder and latents stay
    assert pipe.autoencoder.config.temporal and not pipe.autoencoder.config.temporal_encoder
    before = DCAutoencoder.from_pretrained(out / "ae_reference" / "model")
    assert before.config.latent_shift == pipe.autoencoder.config.latent_shift
    encoder = {k: v for k, v in before.state_dict().items() if k.startswith("encoder.")}
    assert all(torch.equal(v, pipe.autoencoder.state_dict()[k]) for k, v in encoder.items())
    assert pipe.model.config.mouth_channels == 2  # train ar takes the autoencoder's mouth channels
    assert pipe.model.config.conditions.audio_streams == 2
    spatial = json.loads((out / "ae_spatial" / "train_config.json").read_text())
    assert (spatial["mouth_weight"], spatial["lr"]) == (3.0, 6e-4)
    reference = json.loads((out / "ae_reference" / "train_config.json").read_text())
    assert (reference["stage"], reference["reference_change_weight"]) == ("decoder", 4.0)
    trained = json.loads((out / "own_history" / "train_config.json").read_text())
    assert {k: trained[k] for k in OWN_HISTORY_RECIPE} == OWN_HISTORY_RECIPE
    table = budget_table(reports)
    assert "| duplex fine-tune |" in table and "| own-history fine-tune |" in table
    assert result_pipeline(tiny_plan(configs, duplex_steps=2), out) == out / "duplex" / "pipeline"
    assert result_pipeline(tiny_plan(configs), out) == out / "ar" / "pipeline"


def test_a_run_begun_before_a_setting_existed_resumes(configs, tmp_path):
    """plan.json of an older run lacks settings added since: they read as their defaults."""
    out = tmp_path / "run"
    train_all(tiny_plan(configs), out, progress=False)
    plan = json.loads((out / "plan.json").read_text())
    del plan["own_history_steps"], plan["own_history_overrides"]
    (out / "plan.json").write_text(json.dumps(plan))
    assert all(r.skipped for r in train_all(tiny_plan(configs), out, progress=False))
    with pytest.raises(ValueError, match="own_history_steps differ"):
        train_all(tiny_plan(configs, duplex_steps=1, own_history_steps=1), out, progress=False)


def test_train_all_command_rejects_bad_settings(configs, tmp_path, capsys):
    out = tmp_path / "bad"
    assert main(["train", "all", "--out", str(out), "--hours", "0"]) == 2
    assert "--hours must be positive" in capsys.readouterr().err
    assert main(["train", "all", "--out", str(out), "--ae-preset", str(configs / "missing.json")]) == 2
    assert "no such file" in capsys.readouterr().err and not out.exists()
    with pytest.raises(ValueError, match="ar_steps must be at least 1"):
        tiny_plan(configs, ar_steps=0).validate()
    with pytest.raises(ValueError, match="duplex_steps must be >= 0"):
        tiny_plan(configs, duplex_steps=-1).validate()
    with pytest.raises(ValueError, match="own_history_steps fine-tunes the duplex model"):
        tiny_plan(configs, own_history_steps=2).validate()
    assert main(["train", "all", "--out", str(tmp_path / "turns"), "--head-turns", "1.5"]) == 2
    assert "--head-turns must be a share in [0, 1]" in capsys.readouterr().err
    assert not (tmp_path / "turns").exists()
    with pytest.raises(ValueError, match="duplex_dialogue_fraction must be in"):
        tiny_plan(configs, duplex_dialogue_fraction=2.0).validate()
    with pytest.raises(ValueError, match="ae_mouth_weight must be >= 0"):
        tiny_plan(configs, ae_mouth_weight=-1.0).validate()
    with pytest.raises(ValueError, match="ae_lr must be positive"):
        tiny_plan(configs, ae_lr=0.0).validate()
    with pytest.raises(ValueError, match="ae_final_lr must be in"):
        tiny_plan(configs, ae_final_lr=-0.1).validate()
    with pytest.raises(ValueError, match="ae_reference_final_lr in \\[0, 1\\]"):
        tiny_plan(configs, ae_reference_final_lr=1.5).validate()


def _subcommand(parser: argparse.ArgumentParser, name: str) -> argparse.ArgumentParser:
    sub = next(a for a in parser._actions if isinstance(a, argparse._SubParsersAction))
    return sub.choices[name]


def test_train_all_command_left_out_settings_take_the_budget_recipe():
    """`avatarlm train all --out DIR` alone is the recipe the README times; flags change one setting each,
    and the help states the plan's defaults."""
    parser = build_parser()
    assert train_all_plan(parser.parse_args(["train", "all", "--out", "x"])) == TrainAllPlan()
    recipe = TrainAllPlan()
    assert (recipe.ae_mouth_channels, recipe.ae_mouth_weight, recipe.ae_reference_steps) == (4, 4.0, 2000)
    args = parser.parse_args(["train", "all", "--out", "x", "--mouth-channels", "0", "--ae-lr", "3e-4"])
    plan = train_all_plan(args)
    assert (plan.ae_mouth_channels, plan.ae_lr, plan.ae_steps) == (0, 3e-4, recipe.ae_steps)
    everything = _subcommand(_subcommand(parser, "train"), "all")
    helps = {a.dest: a.help for a in everything._actions}
    for field in PLAN_FIELDS:
        assert f"(default {getattr(recipe, field):g}" in helps[field], field
