"""Dynamic batching of generation steps across sessions that run on their own threads (a server's
connections): each session calls :meth:`StepBatcher.step` where it would call ``model.step``; the call waits
up to ``max_wait`` seconds for the other joined sessions' steps, then one of the waiting threads runs them all
as one :meth:`~avatarlm.model.ARModel.step_many` and hands every session its own frame.

A session that is alone, or whose partners have all submitted, does not wait. With ``max_wait=0``
(continuous batching) no step ever waits for another: a step runs at once when the model is free, and the
steps that arrive while a batch runs go together in the next one. Every session's frames are
those its own ``model.step`` would give (within float rounding: see ``step_many``), so batching changes
throughput, never content. A step that fails inside a batch (a bad condition of one session) is retried
alone for each of the batch's sessions, so the failure reaches only the session that caused it.
"""

from __future__ import annotations

import threading
import time
from dataclasses import dataclass

import torch

from avatarlm.model import ARModel, GenerationState


@dataclass
class _Request:
    state: GenerationState
    cond: torch.Tensor | None
    guidance: float | None
    result: torch.Tensor | None = None
    error: BaseException | None = None


class StepBatcher:
    """Shared by the sessions of one model; ``join()`` / ``leave()`` count the sessions that step."""

    def __init__(self, model: ARModel, max_wait: float = 0.005, max_batch: int = 16) -> None:
        if max_wait < 0 or max_batch < 1:
            raise ValueError(f"max_wait must be >= 0 and max_batch >= 1, got {max_wait} and {max_batch}")
        self.model, self.max_wait, self.max_batch = model, max_wait, max_batch
        self._cv = threading.Condition()
        self._pending: list[_Request] = []
        self._running = False
        self._sessions = 0
        self.batches = 0  # step_many calls so far
        self.steps = 0  # steps they made

    @property
    def sessions(self) -> int:
        """Sessions joined now."""
        return self._sessions

    def join(self) -> None:
        with self._cv:
            self._sessions += 1

    def leave(self) -> None:
        with self._cv:
            self._sessions = max(0, self._sessions - 1)
            self._cv.notify_all()  # a waiting batch may now be complete

    def step(
        self, state: GenerationState, cond_tokens: torch.Tensor | None, guidance: float | None = None
    ) -> torch.Tensor:
        """``model.step(state, cond_tokens, guidance=guidance)``, batched with the other sessions' steps."""
        request = _Request(state, cond_tokens, guidance)
        deadline = time.perf_counter() + self.max_wait
        with self._cv:
            self._pending.append(request)
            self._cv.notify_all()
            while request.result is None and request.error is None:
                full = len(self._pending) >= min(self.max_batch, max(1, self._sessions))
                late = time.perf_counter() >= deadline
                if not self._running and self._pending and (full or late):
                    self._run_batch()
                else:  # past the deadline only a finished batch or a new step changes anything
                    left = deadline - time.perf_counter()
                    self._cv.wait(timeout=left if left > 0 else None)
        if request.error is not None:
            raise request.error
        assert request.result is not None
        return request.result

    def _run_batch(self) -> None:
        """Called holding the lock: take up to ``max_batch`` pending steps and run them without the lock."""
        batch, self._pending = self._pending[: self.max_batch], self._pending[self.max_batch :]
        self._running = True
        self._cv.release()
        try:
            self._compute(batch)
        finally:
            self._cv.acquire()
            self._running = False
            self.batches += 1
            self.steps += len(batch)
            self._cv.notify_all()

    def _compute(self, batch: list[_Request]) -> None:
        try:
            out = self.model.step_many(
                [r.state for r in batch], [r.cond for r in batch], [r.guidance for r in batch]
            )
        except Exception:  # noqa: BLE001 - retried one by one: the error goes to its own session only
            for r in batch:
                try:
                    r.result = self.model.step(r.state, r.cond, guidance=r.guidance)
                except Exception as error:  # noqa: BLE001
                    r.error = error
            return
        for r, latent in zip(batch, out, strict=True):
            r.result = latent
