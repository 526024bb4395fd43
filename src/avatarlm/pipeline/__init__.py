"""Inference procedures: pipeline folders and offline clip generation."""
