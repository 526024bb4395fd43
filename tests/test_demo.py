import av
import numpy as np

from avatarlm.demo import run_demo
from avatarlm.media import GENERATED_TAG, read_mp4


def test_demo_writes_sheet_and_dialogue_with_sound(tmp_path):
    sheet, video = run_demo(tmp_path, seed=1, language="it", size=64, seconds=4.0)
    from PIL import Image

    image = np.asarray(Image.open(sheet))
    assert image.shape[0] > 4 * 128 - 10 and image.std() > 20  # 4x4 identities of 128 px
    frames, meta = read_mp4(video)
    assert frames.shape[1:] == (64, 128, 3) and len(frames) >= 100  # two avatars side by side, >= 4 s
    assert meta["comment"] == GENERATED_TAG
    with av.open(str(video)) as box:
        audio = np.concatenate([f.to_ndarray().reshape(-1) for f in box.decode(audio=0)])
    assert np.abs(audio).max() > 0.05  # there is speech in the soundtrack


def test_talking_video_streams_a_pipeline(tmp_path):
    from ar_helpers import random_pipeline_folder
    from avatarlm.demo import talking_video

    folder = random_pipeline_folder(tmp_path)
    path, summary = talking_video(tmp_path / "out", "de", seed=3, model=str(folder), text="Guten Tag.")
    frames, meta = read_mp4(path)
    assert path.name == "talking_de.mp4" and frames.shape[1:] == (64, 64, 3) and len(frames) > 10
    assert meta["comment"] == GENERATED_TAG and "real-time factor" in summary


def test_demo_with_an_mp4_out_writes_one_talking_video(tmp_path, capsys):
    """The streaming issue's main command: `avatarlm demo --text ... --lang xx --out demo.mp4`."""
    from ar_helpers import random_pipeline_folder
    from avatarlm.cli import main

    folder = str(random_pipeline_folder(tmp_path))
    out = tmp_path / "demo.mp4"
    args = ["demo", "--model", folder, "--text", "Guten Tag.", "--lang", "de", "--identity", "5"]
    assert main([*args, "--lip-strength", "1", "--out", str(out)]) == 0
    printed = capsys.readouterr().out
    frames, meta = read_mp4(out)
    assert frames.shape[1:] == (64, 64, 3) and len(frames) > 10 and meta["comment"] == GENERATED_TAG
    assert "real-time factor" in printed and not list(tmp_path.glob("*.png"))  # no folder demo
    bad = tmp_path / "bad.mp4"
    assert main(["demo", "--model", folder, "--lang", "xx", "--out", str(bad)]) == 2
    err = capsys.readouterr().err
    assert "unknown language 'xx'" in err and err.count("\n") == 1 and not bad.exists()
