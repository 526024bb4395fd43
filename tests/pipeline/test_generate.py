"""`avatarlm generate`: a speech file or text in, an mp4 with sound out; bad input gets one error line and
leaves no file behind."""

import numpy as np
import soundfile as sf

from avatarlm.cli import main
from avatarlm.media import read_mp4, write_png
from avatarlm.pipeline.session import StreamingSession


def test_generate_from_a_file_at_another_rate(random_pipeline, tmp_path, capsys):
    wav = tmp_path / "speech.wav"
    t = np.arange(22050) / 22050  # 1 s at 22.05 kHz: resampled to 16 kHz
    sf.write(wav, (0.3 * np.sin(2 * np.pi * 200 * t)).astype(np.float32), 22050)
    out = tmp_path / "clip.mp4"
    assert main(["generate", "--model", str(random_pipeline), "--audio", str(wav), "--out", str(out)]) == 0
    frames, meta = read_mp4(out)
    assert frames.shape == (26, 64, 64, 3)  # the reference + 25 frames
    assert "avatarlm" in str(meta)
    assert "real-time factor" in capsys.readouterr().out


def test_generate_from_text_and_an_image(random_pipeline, tmp_path, capsys, monkeypatch):
    noise = np.random.default_rng(0).integers(0, 256, (90, 120, 3), dtype=np.uint8)
    image = write_png(tmp_path / "face.png", noise)
    out = tmp_path / "said.mp4"
    args = ["generate", "--model", str(random_pipeline), "--text", "hola", "--lang", "es"]
    assert main([*args, "--image", str(image), "--out", str(out)]) == 0
    frames, _ = read_mp4(out)
    assert frames.shape[0] > 5 and frames.shape[1:] == (64, 64, 3)
    assert "far from what the model was trained on" in capsys.readouterr().err  # a warning, not an error

    pushed = []  # the spans reach the session (what a span does there: test_session.py)
    original = StreamingSession.push_text
    monkeypatch.setattr(
        StreamingSession,
        "push_text",
        lambda self, text, span=None: pushed.append((text, span)) or original(self, text, span),
    )
    spans = "0.1-0.3:smile, 0.2-0.5:look left"
    assert main([*args, "--instructions", spans, "--out", str(tmp_path / "smile.mp4")]) == 0
    assert pushed == [("smile", (0.1, 0.3)), ("look left", (0.2, 0.5))]


def test_the_domain_warning_tells_renders_from_foreign_images():
    """With the bundled autoencoder: a rendered face passes, noise and a real photo are flagged."""
    from pathlib import Path

    from avatarlm.autoencoder.model import DCAutoencoder
    from avatarlm.eval.real_frames import real_portraits
    from avatarlm.pipeline.generate import FAR_FROM_TRAINING_DB, domain_warning, reference_psnr
    from avatarlm.pipeline.session import reference_image

    ae = DCAutoencoder.from_pretrained(Path(__file__).resolve().parents[2] / "models" / "tiny" / "ae")

    class Pipe:
        autoencoder = ae

    render = reference_image(Pipe(), 12)  # type: ignore[arg-type]
    assert reference_psnr(ae, render) > FAR_FROM_TRAINING_DB + 2 and domain_warning(ae, render) is None
    noise = np.random.default_rng(0).integers(0, 256, (128, 128, 3), dtype=np.uint8)
    assert domain_warning(ae, noise) is not None
    assert domain_warning(ae, real_portraits(128, 128)["astronaut"]) is not None


def test_generate_rejects_bad_input(random_pipeline, tmp_path, capsys):
    corrupt = tmp_path / "corrupt.wav"
    corrupt.write_bytes(b"RIFF not really a wave file")
    bad_image = tmp_path / "face.png"
    bad_image.write_bytes(b"not a png")
    base = ["generate", "--model", str(random_pipeline)]
    out = tmp_path / "x.mp4"
    cases = [
        (["--audio", str(tmp_path / "missing.wav")], "no such audio file"),
        (["--audio", str(corrupt)], "cannot read audio"),
        (["--text", "  "], "--text is empty"),
        (["--text", "hi", "--lang", "xx"], "unknown language 'xx'"),
        (["--text", "hi", "--image", str(bad_image)], "cannot read image"),
        (["--text", "hi", "--partner-audio", str(corrupt)], "cannot read audio"),
        (["--text", "hi", "--instructions", "3-2:smile"], "START-END:TEXT"),
        (["--text", "hi", "--instructions", "1-2"], "START-END:TEXT"),
        (["--text", "hi", "--anchor", "1.5"], "anchor must be in [0, 1), got 1.5"),
        (["--text", "hi", "--lip-strength", "-1"], "lip_strength must be in [0, 10], got -1.0"),
    ]
    for extra, message in cases:
        assert main([*base, *extra, "--out", str(out)]) == 2
        err = capsys.readouterr().err
        assert message in err and err.count("\n") == 1, err
        assert not out.exists() and not list(tmp_path.glob(".*.mp4"))
    wav = tmp_path / "partner.wav"
    sf.write(wav, np.zeros(8000, np.float32), 16000)
    assert main([*base, "--text", "hi", "--partner-audio", str(wav), "--out", str(out)]) == 2
    assert "needs a duplex model" in capsys.readouterr().err and not out.exists()
    assert main([*base, "--text", "hi", "--out", str(tmp_path / "x.avi")]) == 2
    assert "must name an .mp4" in capsys.readouterr().err
