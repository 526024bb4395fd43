"""MediaPipe face mesh in a child process: frames in on stdin, landmarks out on stdout.

Run by :class:`avatarlm.data.face_tracker.FaceTracker` with the interpreter of the ingestion environment
(``.venv-ingest``: mediapipe 0.10.21, the last release that ships its face models, pins numpy<2, which the
main environment does not hold). So this file imports nothing of avatarlm and nothing but numpy and
mediapipe.

Protocol, little-endian. A request is a header of four int32 ``(height, width, reset, 0)`` followed by
``height * width * 3`` bytes of RGB; ``reset`` = 1 starts tracking afresh (a shot cut); ``height`` = 0 ends
the worker. The answer is one byte (1: a face was found, 0: none) followed, when found, by
``POINTS * 3`` float32: x and y as fractions of the width and height, z (depth, smaller = nearer the camera)
in the same units as x. The first answer, before any request, is the byte ``READY``.
"""

from __future__ import annotations

import os
import struct
import sys

HEADER = struct.Struct("<4i")
POINTS = 468
READY = b"R"


def _read_exact(stream, n: int) -> bytes:
    data = bytearray()
    while len(data) < n:
        part = stream.read(n - len(data))
        if not part:
            raise EOFError
        data += part
    return bytes(data)


def main() -> int:
    os.environ.setdefault("GLOG_minloglevel", "2")
    import numpy as np
    from mediapipe.python.solutions import face_mesh

    def new_mesh():
        return face_mesh.FaceMesh(static_image_mode=False, max_num_faces=1, refine_landmarks=False,
                                  min_detection_confidence=0.5, min_tracking_confidence=0.5)  # fmt: skip

    stdin, stdout = sys.stdin.buffer, sys.stdout.buffer
    mesh = new_mesh()
    stdout.write(READY)
    stdout.flush()
    while True:
        try:
            height, width, reset, _ = HEADER.unpack(_read_exact(stdin, HEADER.size))
        except EOFError:
            return 0
        if height <= 0:
            return 0
        image = np.frombuffer(_read_exact(stdin, height * width * 3), np.uint8).reshape(height, width, 3)
        if reset:
            mesh.close()
            mesh = new_mesh()
        found = mesh.process(image).multi_face_landmarks
        if not found:
            stdout.write(b"\x00")
        else:
            points = np.array([(p.x, p.y, p.z) for p in found[0].landmark], dtype="<f4")
            stdout.write(b"\x01" + points[:POINTS].tobytes())
        stdout.flush()


if __name__ == "__main__":
    sys.exit(main())
