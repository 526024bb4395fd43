import numpy as np

from avatarlm.data.clip import ClipSpec, from_sample, make_clip, to_sample
from avatarlm.data.conversation import frame_energy
from avatarlm.data.face import FACE_STATE_FIELDS, FaceState
from avatarlm.data.identity import Identity
from avatarlm.data.render import KEYPOINT_NAMES, Renderer

MOUTH = FACE_STATE_FIELDS.index("mouth_open")


def _spec(**kw) -> ClipSpec:
    base = dict(
        key="c",
        seed=5,
        kind="dialogue",
        language="es",
        identity_seed=3,
        partner_identity_seed=4,
        duration=8.0,
        height=64,
        width=64,
    )
    return ClipSpec(**(base | kw))  # type: ignore[arg-type]


def test_same_spec_same_clip_and_other_seed_differs():
    a, b = make_clip(_spec()), make_clip(_spec())
    np.testing.assert_array_equal(a.frames, b.frames)
    np.testing.assert_array_equal(a.audio, b.audio)
    assert a.meta == b.meta
    c = make_clip(_spec(seed=6))
    assert c.audio.shape != a.audio.shape or not np.array_equal(c.audio, a.audio)


def test_truth_agrees_with_audio_and_pixels():
    clip = make_clip(_spec(kind="monologue", language="de", duration=10.0))
    n = clip.n_frames
    assert clip.frames.shape == (n, 64, 64, 3) and clip.truth.keypoints.shape == (n, len(KEYPOINT_NAMES), 2)
    energy = frame_energy(clip.audio[0], n, 25.0)
    speaking = clip.truth.speaking.astype(bool)
    assert energy[speaking].mean() > energy[~speaking].mean() + 0.3  # speaking flag follows own audio
    mouth = clip.truth.face[:, MOUTH]
    assert mouth[~speaking].max() < 0.35 and mouth[speaking].mean() > 0.15  # the mouth moves only with speech
    # The mouth opens where the audio is loud: per-frame correlation between label and loudness.
    assert np.corrcoef(mouth, energy)[0, 1] > 0.3
    # Pixels: frames labelled wide open have more dark (mouth interior) pixels in the lower face.
    renderer = Renderer(Identity.from_seed(clip.spec.identity_seed), 64, 64)
    dark = np.zeros(n)
    for i, v in enumerate(clip.truth.face):
        x0, y0, x1, y1 = renderer.mouth_box(FaceState.from_vector(v))
        dark[i] = (clip.frames[i, y0:y1, x0:x1].mean(axis=2) < 60).sum()
    assert dark[mouth > 0.5].mean() > dark[mouth < 0.05].mean() + 3
    assert np.corrcoef(mouth, dark)[0, 1] > 0.6
    assert np.all(clip.audio[1] == 0)  # a monologue's partner stream is silence


def test_dialogue_has_listening_and_sample_round_trip():
    clip = make_clip(_spec(duration=12.0))
    assert clip.truth.listening.sum() > 0 and clip.truth.speaking.sum() > 0
    assert not np.any(clip.truth.listening & clip.truth.speaking)
    back = from_sample(to_sample(clip))
    np.testing.assert_array_equal(back.frames, clip.frames)
    np.testing.assert_array_equal(back.truth.face, clip.truth.face)
    assert back.spec == clip.spec


def test_head_turns_change_only_the_head_and_survive_the_round_trip():
    plain, turned = make_clip(_spec(duration=6.0)), make_clip(_spec(duration=6.0, head_turns=True))
    np.testing.assert_array_equal(plain.audio, turned.audio)  # the same conversation
    head = [FACE_STATE_FIELDS.index(f) for f in ("yaw", "pitch", "roll")]
    rest = [i for i in range(len(FACE_STATE_FIELDS)) if i not in head]
    np.testing.assert_array_equal(plain.truth.face[:, rest], turned.truth.face[:, rest])
    assert np.abs(turned.truth.face[:, head] - plain.truth.face[:, head]).max() > 5
    assert from_sample(to_sample(turned)).spec.head_turns
