"""A small numpy BVH reader: hierarchy, offsets, channels, and forward kinematics.

Only what the lifter's data needs: joint names and parents, rest offsets, the channel layout,
the motion table, and world positions (and rotations) of every joint per frame. End Sites
become extra joints named ``<parent>_End`` (the head's end site marks the crown).

Rotation channels compose in the order the file lists them, each about the joint's *parent*
frame axes applied right to left (``Zrotation Yrotation Xrotation`` -> R = Rz @ Ry @ Rx), which
is the BVH convention and the one Blender's importer follows.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np


@dataclass
class Bvh:
    names: list[str]
    parents: np.ndarray  # (J,) int, -1 for the root
    offsets: np.ndarray  # (J, 3) rest offset from the parent joint, file units
    channels: list[list[str]]  # per joint, e.g. ["Zrotation", "Yrotation", "Xrotation"]
    motion: np.ndarray  # (frames, total channels) float64
    frame_time: float

    @property
    def fps(self) -> float:
        return 1.0 / self.frame_time

    def index(self, name: str) -> int:
        return self.names.index(name)

    def channel_slices(self) -> list[slice]:
        """Where each joint's channels sit in a motion row."""
        out, start = [], 0
        for chans in self.channels:
            out.append(slice(start, start + len(chans)))
            start += len(chans)
        return out


def read_bvh(path) -> Bvh:
    with open(path, "r", encoding="utf-8", errors="replace") as handle:
        tokens_by_line = [line.split() for line in handle]
    names, parents, offsets, channels = [], [], [], []
    stack: list[int] = []
    row = 0
    while row < len(tokens_by_line):
        tok = tokens_by_line[row]
        row += 1
        if not tok:
            continue
        key = tok[0].upper()
        if key in ("ROOT", "JOINT"):
            names.append(tok[1])
            parents.append(stack[-1] if stack else -1)
            offsets.append(np.zeros(3))
            channels.append([])
            stack.append(len(names) - 1)
        elif key == "END":  # End Site: a joint with no channels
            parent = stack[-1]
            names.append(names[parent] + "_End")
            parents.append(parent)
            offsets.append(np.zeros(3))
            channels.append([])
            stack.append(len(names) - 1)
        elif key == "OFFSET":
            offsets[stack[-1]] = np.array([float(v) for v in tok[1:4]])
        elif key == "CHANNELS":
            channels[stack[-1]] = tok[2 : 2 + int(tok[1])]
        elif key == "}":
            stack.pop()
        elif key == "MOTION":
            break
    frames = int(tokens_by_line[row][1])
    frame_time = float(tokens_by_line[row + 1][2])
    data = [list(map(float, t)) for t in tokens_by_line[row + 2 : row + 2 + frames] if t]
    motion = np.asarray(data, dtype=np.float64)
    return Bvh(names, np.asarray(parents), np.asarray(offsets), channels, motion, frame_time)


def _axis_rotations(axis: str, degrees: np.ndarray) -> np.ndarray:
    """(frames, 3, 3) rotations about one of x/y/z."""
    a = np.radians(degrees)
    c, s = np.cos(a), np.sin(a)
    one, zero = np.ones_like(a), np.zeros_like(a)
    if axis == "x":
        rows = [[one, zero, zero], [zero, c, -s], [zero, s, c]]
    elif axis == "y":
        rows = [[c, zero, s], [zero, one, zero], [-s, zero, c]]
    else:
        rows = [[c, -s, zero], [s, c, zero], [zero, zero, one]]
    return np.stack([np.stack(r, axis=-1) for r in rows], axis=-2)


def forward_kinematics(bvh: Bvh, motion: np.ndarray | None = None, offsets: np.ndarray | None = None):
    """World positions (frames, J, 3) and rotations (frames, J, 3, 3) of every joint.

    ``motion`` and ``offsets`` default to the file's; passing others lets the data maker mix
    body parts between clips or change bone lengths without re-reading the file.
    """
    motion = bvh.motion if motion is None else motion
    offsets = bvh.offsets if offsets is None else offsets
    frames, joints = motion.shape[0], len(bvh.names)
    positions = np.zeros((frames, joints, 3))
    rotations = np.zeros((frames, joints, 3, 3))
    for j, (chans, sl) in enumerate(zip(bvh.channels, bvh.channel_slices())):
        local = np.broadcast_to(np.eye(3), (frames, 3, 3)).copy()
        translation = np.broadcast_to(offsets[j], (frames, 3)).copy()
        for k, name in enumerate(chans):
            values = motion[:, sl.start + k]
            if name.endswith("rotation"):
                local = local @ _axis_rotations(name[0].lower(), values)
            elif name.endswith("position"):
                # The root's position channels replace its offset (as every BVH reader does).
                translation[:, "XYZ".index(name[0].upper())] = values
        parent = bvh.parents[j]
        if parent < 0:
            positions[:, j] = translation
            rotations[:, j] = local
        else:
            positions[:, j] = positions[:, parent] + np.einsum("fij,fj->fi", rotations[:, parent], translation)
            rotations[:, j] = rotations[:, parent] @ local
    return positions, rotations
