"""``--backend ray``: the same documents through Ray Data, one engine per actor.

The driver lists SOURCE (as the local backend does) into a Ray dataset of small work items, runs
``map_batches`` on an actor pool (``compute=ActorPoolStrategy``; Ray 2.60 deprecates
``concurrency=``), and writes the outcomes it streams back: the same files, byte for byte, as the
local backend, wherever the actors ran. Actors read the source files themselves, so on a cluster
SOURCE must be on a shared path (or object store mount) every node sees.

Small machines: on a local instance of N CPUs the actors share N - 0.5 CPUs and the rest is left
to Ray Data's read and output tasks; with whole CPUs per actor a read task and two actors
starve each other on 2 cores and the run hangs.
"""

from __future__ import annotations

import logging
import os
import pickle
from collections.abc import Iterator
from typing import Any

from rvl_llm.errors import RvlError
from rvl_llm.ocr.config import OcrConfig, OcrSettings
from rvl_llm.ocr.documents import Outcome, loaded_engine, process
from rvl_llm.ocr.sources import Item

LEFT_FOR_DATA = 0.5  # CPUs a local instance keeps for Ray Data's own tasks
BATCH = 1  # documents per map_batches call: a page takes ~0.5 s, batching gains nothing


class OcrActor:
    """One engine per actor, loaded once."""

    def __init__(self, settings: OcrSettings) -> None:
        os.environ.setdefault("OMP_THREAD_LIMIT", "1")
        self.settings = settings
        self.engine, self.version = loaded_engine(settings)

    def __call__(self, batch: dict[str, Any]) -> dict[str, Any]:
        import numpy as np

        out = []
        for blob in batch["work"]:
            item, done = pickle.loads(blob)
            outcome = process(item, self.engine, self.version, self.settings, done)
            out.append(pickle.dumps(outcome))
        return {"outcome": np.array(out, dtype=object)}


def ray_outcomes(cfg: OcrConfig, work: Iterator[tuple[Item, str | None]]) -> Iterator[Outcome]:
    try:  # an extra: only --backend ray needs it
        import ray
        import ray.data
    except ImportError as err:
        raise RvlError(f"--backend ray: ray is not installed ({err}); "
                       "pip install 'rvl-llm[ray]'") from err
    address = cfg.ray_address or os.environ.get("RAY_ADDRESS")
    started = not ray.is_initialized()
    if started:
        quiet = {"log_to_driver": False, "logging_level": logging.WARNING}
        if address:
            ray.init(address=address, **quiet)
        else:
            ray.init(num_cpus=len(os.sched_getaffinity(0)), include_dashboard=False, **quiet)
    context = ray.data.DataContext.get_current()
    context.enable_progress_bars = False  # ours counts documents and pages/s
    logging.getLogger("ray.data").setLevel(logging.WARNING)
    try:
        cpus = float(ray.cluster_resources().get("CPU", 1))
        actors = cfg.jobs or max(1, int(cpus - LEFT_FOR_DATA))
        per_actor = 1.0 if address else max(0.1, (cpus - LEFT_FOR_DATA) / actors)
        items = [{"work": pickle.dumps(w)} for w in work]
        if not items:
            return
        ds = ray.data.from_items(items, override_num_blocks=min(len(items), actors * 4))
        ds = ds.map_batches(OcrActor, fn_constructor_kwargs={"settings": cfg.settings},
                            batch_size=BATCH, batch_format="numpy", num_cpus=per_actor,
                            compute=ray.data.ActorPoolStrategy(size=actors))
        for row in ds.iter_rows():
            yield pickle.loads(row["outcome"])
    finally:
        if started:
            ray.shutdown()
