"""Recording the topology of any PyTorch model from the user's own training loop.

    with sparsetopo.record(model, "my-run") as rec:
        for epoch in range(epochs):
            train_one_epoch(model)
            rec.snapshot(epoch=epoch, test_accuracy=acc)

Each snapshot is copied from the model when `snapshot()` is called and stored by the same
background writer `train` uses, so the loop goes on while the graph store writes. The run is
marked completed when the block ends, interrupted on Ctrl-C, failed on any other exception.
"""

from __future__ import annotations

import math
from typing import Any

from .errors import UsageError
from .torch_dataflow import trace_dataflow
from .torch_topology import model_layers, snapshot_of

STATUSES = ("completed", "interrupted", "failed")


class _ClosedAsFailed(Exception):
    """Passed into the recording to mark the run failed when the caller closes it so."""


class Recorder:
    def __init__(
        self,
        store,
        model,
        run_id: str,
        *,
        masks: dict | None = None,
        name: str | None = None,
        every: int | None = None,
        method: str | None = None,
        dataset: str | None = None,
        queue: int = 8,
        owns_store: bool = False,
    ):
        from .graphstore.background import recording
        from .graphstore.errors import check_run_id
        from .graphstore.model import RunInfo

        if every is not None and every < 1:
            raise UsageError(f"every must be at least 1; got {every}")
        check_run_id(run_id)
        self.model, self.masks, self.every = model, masks, every
        self.run_id = run_id
        self._store, self._owns_store = store, owns_store
        layers = model_layers(model, masks, None)  # refuses a model it cannot record before the run exists
        # traced once: producers come from the dataflow, else from shapes in module order
        self._dataflow = trace_dataflow(model, [layer.name for layer in layers])
        layers = model_layers(model, masks, self._dataflow)
        self.layer_names = [layer.name for layer in layers]
        info = RunInfo(
            run_id,
            snapshot_of(layers, run_id, 0).architecture,
            name=name,
            method=method,
            dataset=dataset,
            config={
                "recorded_from": "torch",
                "layer_modules": self.layer_names,
                "mask_sources": [layer.source for layer in layers],
                "chain_source": "module-order" if self._dataflow is None else "traced",
            },
        )
        self._recording = recording(store, info, queue)
        self._sink = self._recording.__enter__()
        self._calls = 0
        self._next_step = self._first_free_step()
        self.closed = False

    def _first_free_step(self) -> int:
        steps = [s["step"] for s in self._store.list_snapshots(self.run_id)]
        return max(steps) + 1 if steps else 0

    def snapshot(self, step: int | None = None, *, epoch: int | None = None, **metrics: Any) -> int | None:
        """Store the model's current topology as the next step (or `step`); returns the step, or
        None when `every` skips this call. Metrics are numbers stored on the snapshot."""
        if self.closed:
            raise UsageError(f"the recording of run '{self.run_id}' is closed")
        self._calls += 1
        if self.every is not None and (self._calls - 1) % self.every:
            return None
        if step is None:
            step = self._next_step
        bad = {k: v for k, v in metrics.items() if not isinstance(v, (int, float)) or isinstance(v, bool)}
        if bad:
            raise UsageError(f"metrics must be numbers; got {', '.join(f'{k}={v!r}' for k, v in bad.items())}")
        layers = model_layers(self.model, self.masks, self._dataflow)
        names = [layer.name for layer in layers]
        if names != self.layer_names:
            raise UsageError(f"the model's layers changed from {self.layer_names} to {names} during the recording")
        values = {k: float(v) for k, v in metrics.items() if math.isfinite(float(v))}
        self._sink(snapshot_of(layers, self.run_id, step, values, epoch))
        self._next_step = step + 1
        return step

    @property
    def stored(self) -> int:
        """Snapshots the background writer has written so far."""
        return self._sink.stored

    def close(self, status: str = "completed") -> None:
        """Wait for every queued snapshot, then mark the run `status` (completed, interrupted, failed)."""
        if status not in STATUSES:
            raise UsageError(f"unknown status '{status}'; choose one of: {', '.join(STATUSES)}")
        if self.closed:
            return
        self.closed = True
        try:
            if status == "completed":
                self._recording.__exit__(None, None, None)
            else:
                error: BaseException = (
                    KeyboardInterrupt() if status == "interrupted" else _ClosedAsFailed("closed as failed")
                )
                self._recording.__exit__(type(error), error, None)
        finally:
            if self._owns_store:
                self._store.close()

    def __enter__(self) -> Recorder:
        return self

    def __exit__(self, kind, error, traceback) -> None:
        if self.closed:
            return
        if kind is None:
            self.close("completed")
            return
        self.closed = True
        try:
            # the recording sees the caller's exception: interrupted on Ctrl-C, failed otherwise
            self._recording.__exit__(kind, error, traceback)
        finally:
            if self._owns_store:
                self._store.close()


def default_run_id() -> str:
    import secrets
    import time

    return f"recorded-{time.strftime('%Y%m%d-%H%M%S')}-{secrets.token_hex(2)}"
