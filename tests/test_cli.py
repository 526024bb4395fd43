import subprocess
import sys

import pytest

from avatarlm.cli import main


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--hours", "0"], "--hours must be a positive number"),
        (["--hours", "0.01", "--languages", "en,klingon"], "unknown language 'klingon'"),
        (["--hours", "0.01", "--workers", "0"], "--workers must be at least 1"),
    ],
)
def test_synth_bad_arguments_exit_2_with_one_message(tmp_path, capsys, args, message):
    out = tmp_path / "ds"
    assert main(["data", "synth", "--out", str(out), *args]) == 2
    err = capsys.readouterr().err
    assert err.startswith("avatarlm: error: ") and message in err and err.count("\n") == 1
    assert not (out / "index.json").exists()


def test_console_entry_point_runs_synth(tmp_path):
    out = tmp_path / "ds"
    cmd = [
        sys.executable,
        "-m",
        "avatarlm.cli",
        "data",
        "synth",
        "--hours",
        "0.002",
        "--out",
        str(out),
        "--size",
        "32",
        "--languages",
        "fr",
    ]
    done = subprocess.run(cmd, capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    assert "wrote 1 clips" in done.stdout and (out / "index.json").exists()
    bad = subprocess.run([*cmd[:3], "demo", "--language", "xx"], capture_output=True, text=True, timeout=60)
    assert bad.returncode == 2 and "unknown language 'xx'" in bad.stderr


def test_train_ae_refuses_a_dataset_of_the_wrong_size(tiny_dataset, tmp_path, capsys):
    code = main(
        [
            "train",
            "ae",
            "--preset",
            "tiny",
            "--data",
            str(tiny_dataset),
            "--out",
            str(tmp_path / "r"),
            "--steps",
            "1",
        ]
    )
    assert code == 2 and "the autoencoder needs (128, 128, 3)" in capsys.readouterr().err
    assert not (tmp_path / "r").exists()


@pytest.mark.parametrize(
    ("args", "message"),
    [
        ([], "--data is needed"),
        (["--mouth-channels", "4", "--data", "x"], "--mouth-channels renders its own training frames"),
        (["--mouth-channels", "32"], "mouth_channels=32 must be in 0..31"),
        (["--mouth-channels", "4", "--window", "4"], "the mouth swap trains on single frames"),
        (["--final-lr-fraction", "1.5"], "--final-lr-fraction must be in [0, 1], got 1.5"),
    ],
)
def test_train_ae_bad_data_and_mouth_options_exit_2(tmp_path, capsys, args, message):
    code = main(["train", "ae", "--out", str(tmp_path / "r"), "--steps", "1", *args])
    err = capsys.readouterr().err
    assert code == 2 and message in err and err.count("\n") == 1, err
    assert not (tmp_path / "r").exists()


def test_ae_encode_and_eval_commands(tiny_dataset, tmp_path, capsys):
    from ae_helpers import small_config
    from avatarlm.autoencoder.model import DCAutoencoder

    DCAutoencoder(small_config(image_height=64, image_width=64)).save_pretrained(tmp_path / "ae")
    assert main(["ae", "encode", "--data", str(tiny_dataset), "--model", str(tmp_path / "ae")]) == 0
    assert (tiny_dataset / "latents" / "ae").is_dir()
    assert (
        main(["ae", "eval", "--data", str(tiny_dataset), "--model", str(tmp_path / "ae"), "--clips", "1"])
        == 0
    )
    out = capsys.readouterr().out
    assert "mouth_psnr" in out and "flicker" in out
    assert main(["ae", "eval", "--data", str(tiny_dataset), "--model", str(tmp_path / "missing")]) == 2


def test_train_ar_and_eval_refuse_bad_input_with_one_message(tiny_dataset, tmp_path, capsys):
    from ar_helpers import TAG, encoded_dataset, train_config

    ae = encoded_dataset(tiny_dataset)
    base = [
        "train",
        "ar",
        "--data",
        str(tiny_dataset),
        "--ae",
        str(ae),
        "--out",
        str(tmp_path / "r"),
        "--steps",
        "1",
    ]
    cases = [
        (["--preset", "nope"], "unknown preset 'nope'"),
        (["--preset", "tiny", "--tag", TAG], "the autoencoder's latent is 4x4 tokens x 8 channels"),
        (["--preset", str(tmp_path / "missing.json")], "no such file"),
    ]
    cfg = tmp_path / "cfg.json"
    cfg.write_text(__import__("json").dumps(train_config().to_dict()))
    cases.append((["--preset", str(cfg), "--tag", "never-encoded"], "run `avatarlm ae encode` first"))
    cases.append((["--preset", str(cfg), "--tag", TAG, "--set", "model.nope=1"], "unknown field 'nope'"))
    for extra, message in cases:
        assert main([*base, *extra]) == 2
        err = capsys.readouterr().err
        assert message in err and err.count("\n") == 1, err
        assert not (tmp_path / "r").exists()
    assert main(["eval", "lipsync", "--model", str(tmp_path), "--data", str(tiny_dataset), "--out", "x"]) == 2
    assert "pipeline.json is missing" in capsys.readouterr().err
    lips = ["eval", "lipsync", "--model", str(tmp_path), "--data", str(tiny_dataset), "--out", "x"]
    assert main([*lips, "--lip-strength", "-1"]) == 2
    assert "--lip-strength must be in [0, 10], got -1.0" in capsys.readouterr().err
