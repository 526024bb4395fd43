import subprocess
import sys

import numpy as np
import pytest
from apps_speech import LevelModel, envelope_segments, scripted

from avatarlm.apps.vad import SAMPLE_RATE, WINDOW, StreamingVAD, VADConfig, events_of

ONSET_TOL_S = 0.1  # VAD onset vs the energy envelope's rise
OFFSET_TOL_S = 0.15  # VAD offset vs the envelope's fall (the model holds on a little after speech)


def run(vad: StreamingVAD, audio: np.ndarray, sizes: list[int] | None = None):
    if sizes is None:
        return vad.push(audio) + vad.flush()
    windows, at = [], 0
    for size in sizes:
        windows += vad.push(audio[at : at + size])
        at += size
    return windows + vad.push(audio[at:]) + vad.flush()


@pytest.mark.parametrize(
    "kwargs, message",
    [
        ({"onset_threshold": 0.3, "offset_threshold": 0.5}, "offset_threshold <= onset_threshold"),
        ({"onset_threshold": 1.0}, "onset_threshold < 1"),
        ({"offset_threshold": 0.0}, "0 < offset_threshold"),
        ({"min_speech_s": -0.1}, "min_speech_s"),
        ({"min_silence_s": float("nan")}, "min_silence_s"),
        ({"backend": "tflite"}, "backend must be one of jit, onnx"),
    ],
)
def test_config_rejects_bad_values(kwargs, message):
    with pytest.raises(ValueError, match=message):
        VADConfig(**kwargs)


def test_durations_round_up_to_whole_windows():
    cfg = VADConfig(min_speech_s=0.1, min_silence_s=0.064)
    assert (cfg.min_speech_windows, cfg.min_silence_windows) == (4, 2)
    assert VADConfig(min_speech_s=0.0).min_speech_windows == 1


def test_hysteresis_on_scripted_probabilities():
    cfg = VADConfig(onset_threshold=0.5, offset_threshold=0.3, min_speech_s=0.064, min_silence_s=0.096)
    vad = StreamingVAD(cfg, model=LevelModel())
    probs = [0.1, 0.4, 0.4]  # between the thresholds: never starts speech
    probs += [0.9, 0.2]  # one window above onset, then below offset: a blip, no onset
    probs += [0.6, 0.35, 0.35]  # starts above onset, stays above offset: onset at window 5 after 2 windows
    probs += [0.1, 0.1, 0.45, 0.1]  # silence run kept going by 0.45 (< onset): offset at window 8
    probs += [0.2, 0.8, 0.9]  # speech again: onset at window 13
    probs += [0.1, 0.6, 0.1, 0.1, 0.1]  # 0.6 (>= onset) breaks the silence run; offset at window 17
    windows = run(vad, scripted(probs))
    assert [w.prob for w in windows] == pytest.approx(probs)
    events = [(e.kind, e.sample // WINDOW, e.decided_sample // WINDOW) for e in events_of(windows)]
    assert events == [("onset", 5, 7), ("offset", 8, 11), ("onset", 13, 15), ("offset", 17, 20)]
    assert [w.speech for w in windows][6:8] == [True, True] and not windows[-1].speech
    first = events_of(windows)[0]
    assert first.time == pytest.approx(5 * WINDOW / SAMPLE_RATE)
    assert first.decided_at == pytest.approx(7 * WINDOW / SAMPLE_RATE)


def test_input_checks_int16_and_flush():
    vad = StreamingVAD(model=LevelModel())
    for bad, message in ((np.zeros((2, 512), np.float32), "1-D"), (np.zeros(10, np.int32), "float")):
        with pytest.raises(ValueError, match=message):
            vad.push(bad)
    with pytest.raises(ValueError, match="finite"):
        vad.push(np.array([0.0, np.nan], np.float32))
    windows = vad.push(np.full(700, 16384, np.int16))  # int16 is scaled to [-1, 1)
    assert len(windows) == 1 and windows[0].prob == pytest.approx(0.5)
    assert vad.samples_pushed == 700 and vad.time == pytest.approx(700 / SAMPLE_RATE)
    assert len(vad.flush()) == 1 and vad.samples_pushed == 2 * WINDOW  # padded to the window's end
    assert vad.flush() == []


def test_onsets_and_offsets_follow_real_speech(conversation):
    vad = StreamingVAD()
    events = events_of(run(vad, conversation.audio))
    kinds = [e.kind for e in events]
    assert kinds == ["onset", "offset"] * (len(events) // 2) and events, kinds
    segments = [(a.time, b.time) for a, b in zip(events[::2], events[1::2], strict=True)]
    envelope = envelope_segments(conversation.audio)
    for start, end in segments:
        # speech is found only where a clip is, never in the silences between them
        assert any(a - ONSET_TOL_S <= start and end <= b + OFFSET_TOL_S for a, b in conversation.spans)
        assert min(abs(start - a) for a, _ in envelope) <= ONSET_TOL_S, (start, envelope)
        assert min(abs(end - b) for _, b in envelope) <= OFFSET_TOL_S, (end, envelope)
    for a, b in envelope:  # every stretch of speech energy is inside a detected segment
        assert any(start <= (a + b) / 2 <= end for start, end in segments), ((a, b), segments)
    for a, b in conversation.spans:
        assert any(a - ONSET_TOL_S <= start <= b for start, _ in segments)
    for event in events:
        windows = VADConfig().min_speech_windows if event.kind == "onset" else VADConfig().min_silence_windows
        assert event.decided_sample - event.sample == windows * WINDOW


def test_chunking_does_not_change_probabilities_or_events(conversation):
    audio = conversation.audio[: round(conversation.spans[1][1] * SAMPLE_RATE) + SAMPLE_RATE]
    rng = np.random.default_rng(1)
    chunkings = [None, [160] * (len(audio) // 160), [WINDOW - 1] * 40 + [WINDOW + 1] * 40, [1, 0, 2, 3, 511]]
    chunkings.append(rng.integers(0, 2000, 60).tolist())
    vad = StreamingVAD()
    reference = run(vad, audio)
    assert len(events_of(reference)) >= 2
    for sizes in chunkings[1:]:
        vad.reset()
        assert run(vad, audio, sizes) == reference, sizes


def test_onnx_backend_agrees_with_torchscript(conversation):
    pytest.importorskip("onnxruntime")
    audio = conversation.audio[: round(conversation.spans[0][1] * SAMPLE_RATE) + SAMPLE_RATE]
    jit = run(StreamingVAD(VADConfig(backend="jit")), audio)
    onnx = run(StreamingVAD(VADConfig(backend="onnx")), audio)
    assert np.allclose([w.prob for w in jit], [w.prob for w in onnx], atol=1e-3)
    assert events_of(jit) == events_of(onnx) and events_of(jit)


def test_loading_the_model_keeps_the_callers_torch_threads():
    code = (
        "import torch; torch.set_num_threads(2)\n"
        "from avatarlm.apps.vad import load_model; load_model()\n"
        "print(torch.get_num_threads())"
    )
    out = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True, timeout=120
    )
    assert out.stdout.strip() == "2"
