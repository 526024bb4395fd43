"""Face tracking for ingestion: the MediaPipe face mesh, run in its own environment.

mediapipe 0.10.21 is the last release that ships its face models (later ones download them at run time,
which cannot work offline), and it pins numpy<2 while avatarlm runs on numpy 2. So the mesh runs in a child
process (:mod:`avatarlm.data.face_mesh_worker`) started with the interpreter of a second environment,
``.venv-ingest``, that ``bash scripts/setup.sh --ingest`` creates (``scripts/test.sh`` always does).
The interpreter is, in order: ``$AVATARLM_FACE_PYTHON``; ``.venv-ingest/bin/python`` beside the running
environment; this interpreter itself if it can import mediapipe.
"""

from __future__ import annotations

import importlib.util
import os
import subprocess
import sys
import tempfile
from pathlib import Path

import numpy as np

from avatarlm.data import face_mesh_worker as worker

ENV_VAR = "AVATARLM_FACE_PYTHON"
SETUP_HINT = (
    "face tracking needs mediapipe 0.10.21 in its own environment: run `bash scripts/setup.sh --ingest` "
    f"(creates .venv-ingest), or set {ENV_VAR} to a Python that has `pip install mediapipe==0.10.21`"
)


def tracker_python() -> str:
    """The interpreter that runs the face mesh; ValueError with the set-up step when there is none."""
    if os.environ.get(ENV_VAR):
        path = os.environ[ENV_VAR]
        if not Path(path).is_file():
            raise ValueError(f"{ENV_VAR}={path}: no such interpreter. {SETUP_HINT}")
        return path
    beside = Path(sys.prefix).parent / ".venv-ingest" / "bin" / "python"
    if beside.is_file():
        return str(beside)
    if importlib.util.find_spec("mediapipe") is not None:
        return sys.executable
    raise ValueError(SETUP_HINT)


class FaceTracker:
    """``track(image, reset)`` -> (468, 3) landmarks (x, y as fractions of the image, z as x) or None.
    Use as a context manager; frames of one shot go in order with ``reset`` at the shot's first frame."""

    def __init__(self, python: str | None = None):
        self.python = python or tracker_python()
        self._proc: subprocess.Popen[bytes] | None = None
        self._log = tempfile.TemporaryFile()  # noqa: SIM115 (closed in __exit__; the tracker is the context)

    def __enter__(self) -> FaceTracker:
        self._proc = subprocess.Popen(
            [self.python, worker.__file__],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=self._log,  # a file, not a pipe: its messages must never fill a buffer and block it
            env={**os.environ, "GLOG_minloglevel": "2", "TF_CPP_MIN_LOG_LEVEL": "3"},
        )
        assert self._proc.stdout is not None
        if self._proc.stdout.read(1) != worker.READY:
            raise ValueError(f"the face tracker did not start with {self.python}: {self._stderr()}")
        return self

    def _stderr(self) -> str:
        assert self._proc is not None
        self._proc.kill()
        self._proc.wait()
        self._log.seek(0)
        lines = self._log.read().decode(errors="replace").strip().splitlines()
        return (lines[-1] if lines else "no message") + f". {SETUP_HINT}"

    def track(self, image: np.ndarray, reset: bool = False) -> np.ndarray | None:
        proc = self._proc
        assert proc is not None and proc.stdin is not None and proc.stdout is not None, "use `with`"
        image = np.ascontiguousarray(image, dtype=np.uint8)
        if image.ndim != 3 or image.shape[2] != 3:
            raise ValueError(f"the face tracker takes (H, W, 3) RGB images, got shape {image.shape}")
        try:
            proc.stdin.write(worker.HEADER.pack(image.shape[0], image.shape[1], int(reset), 0))
            proc.stdin.write(image.tobytes())
            proc.stdin.flush()
            found = proc.stdout.read(1)
        except BrokenPipeError:
            found = b""
        if found == b"\x00":
            return None
        if found != b"\x01":
            raise RuntimeError(f"the face tracker stopped: {self._stderr()}")
        size = worker.POINTS * 3 * 4
        return np.frombuffer(proc.stdout.read(size), "<f4").reshape(worker.POINTS, 3).copy()

    def __exit__(self, *exc) -> None:
        proc, self._proc = self._proc, None
        self._log.close()
        if proc is None:
            return
        try:
            assert proc.stdin is not None
            proc.stdin.write(worker.HEADER.pack(0, 0, 0, 0))
            proc.stdin.close()
            proc.wait(timeout=10)
        except (BrokenPipeError, subprocess.TimeoutExpired):
            proc.kill()
            proc.wait()
