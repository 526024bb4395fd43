"""Condition encoders: audio, pose, text and actions -> a fixed number of tokens per video frame."""

from avatarlm.conditions.action import ActionEncoder
from avatarlm.conditions.audio import AudioEncoder, AudioStreamState
from avatarlm.conditions.config import MODALITIES, ConditionConfig
from avatarlm.conditions.mel import LogMel, mel_filterbank
from avatarlm.conditions.pose import PoseEncoder
from avatarlm.conditions.projector import ConditionBatch, ConditionEncoder
from avatarlm.conditions.text import ByteSentenceEncoder, TextEncoder

__all__ = [
    "MODALITIES",
    "ActionEncoder",
    "AudioEncoder",
    "AudioStreamState",
    "ByteSentenceEncoder",
    "ConditionBatch",
    "ConditionConfig",
    "ConditionEncoder",
    "LogMel",
    "PoseEncoder",
    "TextEncoder",
    "mel_filterbank",
]
