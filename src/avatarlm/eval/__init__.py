"""Evaluation: pixel metrics, probes that read ground truth back from pixels, reports."""
