#!/usr/bin/env python3
"""Choose the held-out subjects: a seeded draw stratified by ventricle/ICV ratio, so validation spans small to
large ventricles instead of landing wherever chance puts it (with 20 subjects, an unstratified draw of 4 often
misses one end). Subjects are sorted by ratio, cut into `held_out` consecutive strata, and one subject is drawn
from each with numpy's PCG64 seeded by --seed.

  split.py --report prepared/prepare-report.jsonl --held-out 4 --seed 42 --out split.json
"""
from __future__ import annotations

import argparse
import json
import os
import sys
from pathlib import Path

import numpy as np


def stem(path: str) -> str:
    name = Path(path).name
    return name[: -len(".nii.gz")] if name.endswith(".nii.gz") else Path(path).stem


def choose(ratios: dict[str, float], held_out: int, seed: int) -> dict:
    names = sorted(ratios, key=lambda n: (ratios[n], n))
    if held_out < 1 or held_out >= len(names):
        raise ValueError(f"--held-out must be between 1 and {len(names) - 1} for {len(names)} subjects, got {held_out}")
    rng = np.random.default_rng(seed)
    strata = [list(s) for s in np.array_split(np.array(names), held_out)]
    chosen = [str(s[rng.integers(len(s))]) for s in strata]
    return {
        "seed": seed,
        "method": f"sorted by ventricle/ICV ratio (prepare-report ventricleMl.output / intracranialMl.output), cut into "
                  f"{held_out} strata of consecutive subjects, one drawn per stratum with numpy default_rng({seed})",
        "heldOut": sorted(chosen),
        "train": sorted(n for n in names if n not in chosen),
        "strata": strata,
        "ratio": {n: round(ratios[n], 6) for n in names},
    }


def main(argv: list[str]) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--report", required=True, type=Path, help="prepare-report.jsonl from brain-ldm prepare-labels")
    p.add_argument("--held-out", type=int, default=4)
    p.add_argument("--seed", type=int, default=42)
    p.add_argument("--out", required=True, type=Path)
    a = p.parse_args(argv)
    ratios = {}
    for n, line in enumerate(a.report.read_text().splitlines(), 1):
        if not line.strip():
            continue
        r = json.loads(line)
        try:
            ratios[stem(r["input"]["path"])] = r["ventricleMl"]["output"] / r["intracranialMl"]["output"]
        except (KeyError, TypeError, ZeroDivisionError) as e:
            print(f"split.py: {a.report} line {n}: field input.path, ventricleMl.output or intracranialMl.output "
                  f"missing or zero ({e!r})", file=sys.stderr)
            return 2
    split = choose(ratios, a.held_out, a.seed)
    tmp = a.out.with_name(f".{a.out.name}.tmp-{os.getpid()}")
    tmp.write_text(json.dumps(split, indent=2) + "\n")
    os.replace(tmp, a.out)
    print(f"held out: {' '.join(split['heldOut'])}")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
