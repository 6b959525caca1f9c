"""What makes a run resumable and readable: an append-only log.jsonl, per-stage checkpoints written atomically,
and a done.json per finished stage."""
from __future__ import annotations

import json
import os
import time
from pathlib import Path

import torch

from .config import write_json_atomic

# Written by make_training_set.sh beside the data; copied into the run and into the exported generator.
DATA_NOTICE_FILES = ("SOURCE.md", "LICENSE-Apache-2.0.txt")


class RunLog:
    def __init__(self, run_dir: Path) -> None:
        self.path = run_dir / "log.jsonl"

    def write(self, event: str, **fields) -> None:
        record = {"event": event, "time": time.strftime("%Y-%m-%dT%H:%M:%S%z"), **fields}
        with self.path.open("a") as f:
            f.write(json.dumps(record) + "\n")
        print(json.dumps(record), flush=True)


class StageFiles:
    """<run>/<stage>/: checkpoint.pt while training, model.pth + done.json once finished."""

    DONE = "done.json"

    def __init__(self, run_dir: Path, stage: str) -> None:
        self.dir = run_dir / stage
        self.dir.mkdir(parents=True, exist_ok=True)
        self.checkpoint = self.dir / "checkpoint.pt"
        self.model = self.dir / "model.pth"
        self.done = self.dir / self.DONE
        self.latents = self.dir / "latents.pt"

    @classmethod
    def existing(cls, run_dir: Path, stage: str) -> "StageFiles | None":
        """The stage folder of another run, without creating it (None when it is not there)."""
        if not (run_dir / stage).is_dir():
            return None
        return cls(run_dir, stage)

    def is_done(self) -> bool:
        return self.done.exists()

    def read_done(self) -> dict:
        return json.loads(self.done.read_text())

    def save_torch(self, obj, path: Path) -> None:
        tmp = path.with_name(f".{path.name}.tmp-{os.getpid()}")
        torch.save(obj, tmp)
        os.replace(tmp, path)

    def finish(self, state_dict: dict, done: dict) -> None:
        # The thesis container ({"model": state_dict}); done.json last, so its presence means everything is there.
        self.save_torch({"model": state_dict}, self.model)
        write_json_atomic(self.done, done)
        self.checkpoint.unlink(missing_ok=True)
