"""Applications built on the avatar: the conversation loop of a duplex (two-party) talk.

- ``vad``: streaming voice activity detection (packaged silero-vad model, offline).
- ``turns``: end-of-turn and barge-in detection on a simulated clock, with a small state machine.
- ``responder``: what the avatar says back (offline scripted replies, an OpenAI-compatible endpoint, or
  the endpoint with an offline fallback).
- ``tts``: the avatar's own speech, streamed in short chunks that can be stopped mid-way.
- ``duplex``: the lock-step loop that ties the microphone, the turn detector and the avatar's voice.
"""
