"""Blend exported lifter networks into one weights file (``retarget.lifter.Lifter`` reads it).

    python -m train.ensemble A.npz:0.7 B.npz:0.3 --out retarget/lifter_weights.npz

Each member keeps its own layers (arrays prefixed ``m<i>_``) and weight; the lifter runs each and
blends their raw outputs. Networks trained on different data err differently, so the blend can
beat both (LIFTER_MODEL_CARD.md).
"""
from __future__ import annotations

import argparse
import json
from pathlib import Path

import numpy as np


def combine(members: list[tuple[Path, float]], out: Path) -> None:
    arrays, configs = {}, []
    for index, (path, weight) in enumerate(members):
        with np.load(path) as data:
            config = json.loads(bytes(data["config"]).decode())
            if "members" in config:
                raise ValueError(f"{path} is already a blend: name its members instead")
            prefix = f"m{index}_"
            for name in data.files:
                if name != "config":
                    arrays[prefix + name] = data[name]
        configs.append({**config, "prefix": prefix, "weight": weight, "source": path.name})
    blend = {"members": configs, "receptive_field": max(c["receptive_field"] for c in configs)}
    arrays["config"] = np.frombuffer(json.dumps(blend).encode(), dtype=np.uint8)
    np.savez_compressed(out, **arrays)


def _member(text: str) -> tuple[Path, float]:
    path, _, weight = text.rpartition(":")
    if not path:
        return Path(text), 1.0
    return Path(path), float(weight)


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("members", nargs="+", type=_member, metavar="WEIGHTS.npz[:WEIGHT]")
    parser.add_argument("--out", type=Path, required=True)
    args = parser.parse_args(argv)
    combine(args.members, args.out)
    print(f"wrote {args.out} ({args.out.stat().st_size / 1e6:.2f} MB, {len(args.members)} networks)")


if __name__ == "__main__":
    main()
