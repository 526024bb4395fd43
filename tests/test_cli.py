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
