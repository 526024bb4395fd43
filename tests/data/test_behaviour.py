import numpy as np

from avatarlm.data.behaviour import (
    MOVE_S,
    TURN_RANGE,
    BehaviourInputs,
    behaviour_track,
    blink_track,
    head_turn_track,
)
from avatarlm.data.face import EXPRESSIONS, FACE_STATE_FIELDS
from avatarlm.data.instructions import TimedInstruction, active_matrix, sample_instructions

FPS = 25.0
F = {n: i for i, n in enumerate(FACE_STATE_FIELDS)}


def _inputs(n: int, instructions=(), speaking=None, partner=None, mouth=None) -> BehaviourInputs:
    speaking = np.zeros(n, bool) if speaking is None else speaking
    return BehaviourInputs(
        mouth=np.zeros((n, 3), np.float32) if mouth is None else mouth,
        self_speaking=speaking,
        partner_speaking=np.zeros(n, bool) if partner is None else partner,
        self_energy=np.where(speaking, 0.7, 0.0).astype(np.float32),
        backchannels=[],
        instructions=list(instructions),
        partner_gaze_x=0.5,
    )


def test_instructions_trigger_their_behaviour():
    n = 250
    ins = [
        TimedInstruction("look left", 1.0, 3.0),
        TimedInstruction("smile", 4.0, 6.0),
        TimedInstruction("shake head", 7.0, 9.0),
    ]
    track = behaviour_track(_inputs(n, ins), FPS, np.random.default_rng(0))
    t = np.arange(n) / FPS
    mid_left = (t > 1.5) & (t < 2.5)
    assert track[mid_left, F["yaw"]].mean() < -15 and track[mid_left, F["gaze_x"]].mean() < -0.5
    mid_smile = (t > 4.5) & (t < 5.5)
    assert (track[mid_smile, F["expression"]] == EXPRESSIONS.index("smile")).all()
    assert track[mid_smile, F["expression_strength"]].min() > 0.8
    shake = (t > 7.2) & (t < 8.8)
    assert track[shake, F["yaw"]].std() > 3 * track[(t > 9.5), F["yaw"]].std()


def test_listening_closes_mouth_and_looks_at_partner():
    n = 200
    partner = np.zeros(n, bool)
    partner[50:150] = True
    mouth = np.zeros((n, 3), np.float32)
    track = behaviour_track(_inputs(n, partner=partner, mouth=mouth), FPS, np.random.default_rng(1))
    assert np.all(track[50:150, F["mouth_open"]] == 0)
    assert track[60:140, F["gaze_x"]].mean() > track[160:, F["gaze_x"]].mean() + 0.3


def test_values_stay_in_range_and_blinks_happen():
    n = 500
    speaking = np.ones(n, bool)
    mouth = np.random.default_rng(0).uniform(0, 1, (n, 3)).astype(np.float32)
    track = behaviour_track(_inputs(n, speaking=speaking, mouth=mouth), FPS, np.random.default_rng(2))
    assert np.abs(track[:, F["yaw"]]).max() <= 30 and np.abs(track[:, F["pitch"]]).max() <= 25
    assert track[:, F["mouth_open"]].min() >= 0 and track[:, F["mouth_open"]].max() <= 1
    blinks = blink_track(np.random.default_rng(3), 25 * 60, FPS)
    closes = np.sum((blinks[1:] == 1.0) & (blinks[:-1] < 1.0))
    assert 8 <= closes <= 40  # a blink every 1.5-7 s over a minute


def test_sampled_instructions_do_not_overlap_and_mark_frames():
    for seed in range(20):
        ins = sample_instructions(np.random.default_rng(seed), 12.0)
        for a, b in zip(ins, ins[1:], strict=False):
            assert a.end <= b.start
        m = active_matrix(ins, 300, FPS)
        assert m.sum(axis=1).max() <= 1
        assert abs(m.sum() - sum((i.end - i.start) * FPS for i in ins)) <= len(ins)


def test_head_turns_hold_and_move_on_their_own():
    n = 750
    turns = head_turn_track(np.random.default_rng(3), n, FPS)
    assert turns.shape == (n, 3)
    assert (np.abs(turns) <= np.array(TURN_RANGE) + 1e-4).all()
    step = np.abs(np.diff(turns, axis=0)).max(axis=1)
    moving = step > 1e-3
    assert 0.05 < moving.mean() < 0.5  # mostly holding a direction, turning now and then
    assert turns[:, 0].std() > 8  # turns that a still head is far from
    for seed in range(20):  # eased, and a turn ends before the next begins: no jumps
        step = np.abs(np.diff(head_turn_track(np.random.default_rng(seed), n, FPS), axis=0))
        assert (step <= 1.5 * 2 * np.array(TURN_RANGE) / (MOVE_S[0] * FPS) + 1e-4).all()  # smoothstep's slope
        moving = np.concatenate([[0], (step.max(axis=1) > 1e-6).astype(int), [0]])
        starts, ends = np.flatnonzero(np.diff(moving) == 1), np.flatnonzero(np.diff(moving) == -1)
        assert (ends - starts <= np.ceil(MOVE_S[1] * FPS) + 1).all()  # one turn per run of motion
    # Added to the head: the same inputs and seed with and without turns differ by exactly the turns.
    base = _inputs(n)
    plain = behaviour_track(base, FPS, np.random.default_rng(0))
    base.head_turns = turns
    turned = behaviour_track(base, FPS, np.random.default_rng(0))
    inside = np.abs(plain[:, F["yaw"]] + turns[:, 0]) < 30  # away from the yaw limit's clipping
    yaw = turned[inside, F["yaw"]] - plain[inside, F["yaw"]]
    np.testing.assert_allclose(yaw, turns[inside, 0], atol=1e-4)
    assert (turned[:, F["mouth_open"]] == plain[:, F["mouth_open"]]).all()
