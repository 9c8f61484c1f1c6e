"""A small numpy reader for CMU's original Acclaim files (ASF skeleton + AMC motion).

CMU's own release is ASF/AMC; Bruce Hahne's BVH releases were made from it. This module turns a
subject's ASF and one trial's AMC (or a bare table of AMC channel values in ASF bone order, as
some dataset bundles store them) into the same ``train.bvh.Bvh`` that ``read_bvh`` gives for
Hahne's MotionBuilder release: joints named ``Hips``, ``LeftUpLeg``, ``LeftArm``, ... with
``Zrotation Yrotation Xrotation`` channels, so ``forward_kinematics``, ``skeleton.coco18`` and
``make_dataset`` take it unchanged. ``write_bvh`` stores such a clip as a BVH file.

Acclaim conventions (https://research.cs.wisc.edu/graphics/Courses/cs-838-1999/Jeff/ASF-AMC.html):
every bone has a rest ``direction`` and ``length`` in the global rest frame and an ``axis`` (Euler
angles, order given, here always XYZ) that defines its local frame C. An AMC frame gives each
bone's DOF angles (rx, ry, rz in the ASF ``dof`` order; missing ones are zero), forming
M = Rz Ry Rx. A bone's world rotation is ``R = R_parent @ C @ M @ C.T`` and its end lies at
``start + R @ (direction * length)``. The root's rotation is C_root M_root C_root.T, its position
the AMC's TX TY TZ (plus the ASF root position). In BVH terms each bone becomes the joint at the
bone's start, with the local rotation C M C.T and the parent bone's vector as its offset; the
leaf bones' vectors become End Sites. Units stay the ASF's (CMU: ``length 0.45``, the same units
as Hahne's BVH files).
"""
from __future__ import annotations

import numpy as np

from .bvh import Bvh

# CMU ASF bone -> the joint name in Hahne's MotionBuilder BVH release.
MB_NAMES = {
    "root": "Hips",
    "lhipjoint": "LHipJoint", "lfemur": "LeftUpLeg", "ltibia": "LeftLeg", "lfoot": "LeftFoot",
    "ltoes": "LeftToeBase",
    "rhipjoint": "RHipJoint", "rfemur": "RightUpLeg", "rtibia": "RightLeg", "rfoot": "RightFoot",
    "rtoes": "RightToeBase",
    "lowerback": "LowerBack", "upperback": "Spine", "thorax": "Spine1", "lowerneck": "Neck",
    "upperneck": "Neck1", "head": "Head",
    "lclavicle": "LeftShoulder", "lhumerus": "LeftArm", "lradius": "LeftForeArm",
    "lwrist": "LeftHand", "lhand": "LeftFingerBase", "lfingers": "LeftHandIndex1",
    "lthumb": "LThumb",
    "rclavicle": "RightShoulder", "rhumerus": "RightArm", "rradius": "RightForeArm",
    "rwrist": "RightHand", "rhand": "RightFingerBase", "rfingers": "RightHandIndex1",
    "rthumb": "RThumb",
}
_ZYX = ["Zrotation", "Yrotation", "Xrotation"]


class Asf:
    """Bones in file order (root first), with rest vectors, axis frames, DOFs and parents."""

    def __init__(self, names, parents, vectors, axes, dofs, root_order, root_position):
        self.names = names  # ["root", "lhipjoint", ...]
        self.parents = np.asarray(parents)  # -1 for the root
        self.vectors = np.asarray(vectors, dtype=np.float64)  # (B, 3) direction * length
        self.axes = np.asarray(axes, dtype=np.float64)  # (B, 3, 3) C
        self.dofs = dofs  # per bone, e.g. ["rx", "ry", "rz"]; root: ["tx", ..., "rz"]
        self.root_order = root_order
        self.root_position = np.asarray(root_position, dtype=np.float64)

    @property
    def channel_count(self) -> int:
        return sum(len(d) for d in self.dofs)


def _euler_xyz(angles_deg) -> np.ndarray:
    """(..., 3) x, y, z angles in degrees -> (..., 3, 3) Rz @ Ry @ Rx (x applied first)."""
    a = np.radians(np.asarray(angles_deg, dtype=np.float64))
    cx, cy, cz = np.cos(a[..., 0]), np.cos(a[..., 1]), np.cos(a[..., 2])
    sx, sy, sz = np.sin(a[..., 0]), np.sin(a[..., 1]), np.sin(a[..., 2])
    out = np.empty(a.shape[:-1] + (3, 3))
    out[..., 0, 0] = cz * cy
    out[..., 0, 1] = cz * sy * sx - sz * cx
    out[..., 0, 2] = cz * sy * cx + sz * sx
    out[..., 1, 0] = sz * cy
    out[..., 1, 1] = sz * sy * sx + cz * cx
    out[..., 1, 2] = sz * sy * cx - cz * sx
    out[..., 2, 0] = -sy
    out[..., 2, 1] = cy * sx
    out[..., 2, 2] = cy * cx
    return out


def _zyx_angles(m: np.ndarray) -> np.ndarray:
    """(..., 3, 3) rotation -> (..., 3) degrees (z, y, x) with R = Rz @ Ry @ Rx."""
    sy = np.clip(-m[..., 2, 0], -1.0, 1.0)
    y = np.arcsin(sy)
    z = np.arctan2(m[..., 1, 0], m[..., 0, 0])
    x = np.arctan2(m[..., 2, 1], m[..., 2, 2])
    # Gimbal lock (|y| = 90 deg): put the whole remaining turn into x.
    lock = np.abs(sy) > 1.0 - 1e-9
    if np.any(lock):
        z = np.where(lock, 0.0, z)
        x = np.where(lock, np.arctan2(-m[..., 1, 2], m[..., 1, 1]), x)
    return np.degrees(np.stack([z, y, x], axis=-1))


def read_asf(path) -> Asf:
    with open(path, "r", encoding="utf-8", errors="replace") as handle:
        lines = [line.split() for line in handle
                 if line.strip() and not line.lstrip().startswith("#")]
    section, bones, bone = None, [], None
    root_order, root_axis, root_position, root_orientation = [], "XYZ", [0.0] * 3, [0.0] * 3
    children: dict[str, list[str]] = {}
    for tok in lines:
        if tok[0].startswith(":"):
            section = tok[0][1:].lower()
            continue
        key = tok[0].lower()
        if section == "root":
            if key == "order":
                root_order = [t.lower() for t in tok[1:]]
            elif key == "axis":
                root_axis = tok[1].upper()
            elif key == "position":
                root_position = [float(v) for v in tok[1:4]]
            elif key == "orientation":
                root_orientation = [float(v) for v in tok[1:4]]
        elif section == "bonedata":
            if key == "begin":
                bone = {"dof": []}
            elif key == "end":
                bones.append(bone)
                bone = None
            elif key == "name":
                bone["name"] = tok[1]
            elif key == "direction":
                bone["direction"] = [float(v) for v in tok[1:4]]
            elif key == "length":
                bone["length"] = float(tok[1])
            elif key == "axis":
                if tok[4].upper() != "XYZ":
                    raise ValueError(f"axis order {tok[4]} not supported (CMU uses XYZ)")
                bone["axis"] = [float(v) for v in tok[1:4]]
            elif key == "dof":
                bone["dof"] = [t.lower() for t in tok[1:]]
        elif section == "hierarchy" and key not in ("begin", "end"):
            children.setdefault(tok[0], []).extend(tok[1:])
    if root_axis != "XYZ":
        raise ValueError(f"root axis {root_axis} not supported (CMU uses XYZ)")
    parent_of = {c: p for p, cs in children.items() for c in cs}
    names = ["root"] + [b["name"] for b in bones]
    parents = [-1] + [names.index(parent_of[b["name"]]) for b in bones]
    vectors = [np.zeros(3)] + [np.asarray(b["direction"]) * b["length"] for b in bones]
    axes = [_euler_xyz(root_orientation)] + [_euler_xyz(b["axis"]) for b in bones]
    dofs = [root_order] + [b["dof"] for b in bones]
    return Asf(names, parents, vectors, axes, dofs, root_order, root_position)


def read_amc(path, asf: Asf) -> np.ndarray:
    """(frames, channels) AMC values, columns in ASF bone order (root first), each bone's DOFs
    in its ASF ``dof`` order: the layout ``to_bvh`` takes."""
    starts, start = {}, 0
    for name, dof in zip(asf.names, asf.dofs):
        starts[name] = start
        start += len(dof)
    frames, row = [], None
    with open(path, "r", encoding="utf-8", errors="replace") as handle:
        for line in handle:
            tok = line.split()
            if not tok or tok[0].startswith((":", "#")):
                continue
            if len(tok) == 1 and tok[0].isdigit():
                row = np.zeros(start)
                frames.append(row)
                continue
            values = [float(v) for v in tok[1:]]
            row[starts[tok[0]] : starts[tok[0]] + len(values)] = values
    return np.asarray(frames)


def to_bvh(asf: Asf, channels: np.ndarray, fps: float = 120.0, rest_frame: bool = True,
           like_hahne: bool = True) -> Bvh:
    """A ``Bvh`` of the Acclaim clip.

    ``like_hahne`` (default) reproduces Hahne's MotionBuilder BVH exactly: his files give the
    joints after ``thorax`` (Neck, LeftShoulder, RightShoulder) a zero offset, i.e. they drop the
    thorax bone's vector (about 2 CMU units, 11 cm), so neck and shoulders sit that much lower on
    the spine than in the ASF. With it the clip matches his BVH of the same trial (channels to
    his 4-decimal print); with ``like_hahne=False`` joint positions equal the Acclaim definition
    (``acclaim_positions``). The training and evaluation BVH files are Hahne's, so the default
    keeps all clips on one geometry.

    ``rest_frame`` puts a rest pose (zero angles, at the first frame's root position) in front,
    as Hahne's converter does, since ``make_dataset`` drops frame 0.
    """
    if any(p >= b for b, p in enumerate(asf.parents)):
        raise ValueError("ASF bones must come after their parents")
    channels = np.atleast_2d(np.asarray(channels, dtype=np.float64))
    if channels.shape[1] != asf.channel_count:
        raise ValueError(f"{channels.shape[1]} channels, the ASF has {asf.channel_count}")
    frames = channels.shape[0]
    names, parents, offsets, chans, columns = [], [], [], [], []
    start = 0
    for b, (bone, dof) in enumerate(zip(asf.names, asf.dofs)):
        values = channels[:, start : start + len(dof)]
        start += len(dof)
        angles = np.zeros((frames, 3))
        translation = np.zeros((frames, 3))
        for k, d in enumerate(dof):
            if d.startswith("r"):
                angles[:, "xyz".index(d[1])] = values[:, k]
            elif d.startswith("t"):
                translation[:, "xyz".index(d[1])] = values[:, k]
            elif d != "l":
                raise ValueError(f"DOF {d} not supported")
        c = asf.axes[b]
        local = c @ _euler_xyz(angles) @ c.T  # in the parent's (rest-aligned) frame
        names.append(MB_NAMES.get(bone, bone))
        parents.append(asf.parents[b])
        parent = asf.parents[b]
        dropped = like_hahne and parent > 0 and asf.names[parent] == "thorax"
        offsets.append(np.zeros(3) if parent <= 0 or dropped else asf.vectors[parent])
        if b == 0:
            chans.append(["Xposition", "Yposition", "Zposition"] + _ZYX)
            columns.append(translation + asf.root_position)
        else:
            chans.append(list(_ZYX))
        columns.append(_zyx_angles(local))
    # Leaf bones: their vectors become End Sites (``read_bvh`` names them ``<parent>_End``).
    has_child = set(int(p) for p in asf.parents if p >= 0)
    for b in range(1, len(asf.names)):
        if b not in has_child:
            names.append(names[b] + "_End")
            parents.append(b)
            offsets.append(asf.vectors[b])
            chans.append([])
    # read_bvh orders joints depth-first as written; write_bvh writes depth-first too, so keep
    # this (ASF) order here and let write_bvh / read_bvh round-trip to file order.
    motion = np.concatenate(columns, axis=1)
    if rest_frame:
        rest = np.zeros((1, motion.shape[1]))
        rest[0, :3] = motion[0, :3]
        motion = np.concatenate([rest, motion])
    return Bvh(names, np.asarray(parents), np.asarray(offsets), chans, motion, 1.0 / fps)


def read(asf_path, amc_path, fps: float = 120.0) -> Bvh:
    asf = read_asf(asf_path)
    return to_bvh(asf, read_amc(amc_path, asf), fps)


def write_bvh(bvh: Bvh, path) -> None:
    """Write a ``Bvh`` (joints with End Sites as ``<name>_End`` children) as a BVH file."""
    kids: dict[int, list[int]] = {}
    for j, p in enumerate(bvh.parents):
        kids.setdefault(int(p), []).append(j)
    slices = bvh.channel_slices()
    order: list[int] = []
    out: list[str] = ["HIERARCHY"]

    def emit(j: int, depth: int) -> None:
        pad = "\t" * depth
        off = " ".join(f"{v:.6f}" for v in bvh.offsets[j])
        if bvh.names[j].endswith("_End") and not bvh.channels[j]:
            out.extend([f"{pad}End Site", f"{pad}{{", f"{pad}\tOFFSET {off}", f"{pad}}}"])
            return
        out.append(f"{pad}{'ROOT' if bvh.parents[j] < 0 else 'JOINT'} {bvh.names[j]}")
        out.extend([f"{pad}{{", f"{pad}\tOFFSET {off}"])
        out.append(f"{pad}\tCHANNELS {len(bvh.channels[j])} {' '.join(bvh.channels[j])}")
        order.append(j)
        for k in kids.get(j, []):
            emit(k, depth + 1)
        out.append(f"{pad}}}")

    emit(kids[-1][0], 0)
    cols = np.concatenate([np.arange(slices[j].start, slices[j].stop) for j in order])
    out.extend(["MOTION", f"Frames: {bvh.motion.shape[0]}", f"Frame Time: {bvh.frame_time:.7f}"])
    out.extend(" ".join(f"{v:.4f}" for v in row) for row in bvh.motion[:, cols])
    with open(path, "w", encoding="utf-8", newline="\n") as handle:
        handle.write("\n".join(out) + "\n")


def acclaim_positions(asf: Asf, channels: np.ndarray) -> np.ndarray:
    """(frames, bones, 3) world position of every bone's *start*, straight from the Acclaim
    definition (no BVH in between): the reference the conversion is checked against."""
    channels = np.atleast_2d(channels)
    frames, bones = channels.shape[0], len(asf.names)
    world = np.zeros((frames, bones, 3, 3))
    start_pos = np.zeros((frames, bones, 3))
    end_pos = np.zeros((frames, bones, 3))
    col = 0
    for b, dof in enumerate(asf.dofs):
        angles, trans = np.zeros((frames, 3)), np.zeros((frames, 3))
        for k, d in enumerate(dof):
            (angles if d.startswith("r") else trans)[:, "xyz".index(d[1])] = channels[:, col + k]
        col += len(dof)
        c = asf.axes[b]
        local = c @ _euler_xyz(angles) @ c.T
        p = asf.parents[b]
        if p < 0:
            world[:, b] = local
            start_pos[:, b] = trans + asf.root_position
        else:
            world[:, b] = world[:, p] @ local
            start_pos[:, b] = end_pos[:, p]
        end_pos[:, b] = start_pos[:, b] + world[:, b] @ asf.vectors[b]
    return start_pos


def main(argv=None) -> None:
    import argparse

    parser = argparse.ArgumentParser(
        description="CMU ASF + AMC -> BVH (Hahne's MotionBuilder layout)")
    parser.add_argument("asf")
    parser.add_argument("amc")
    parser.add_argument("out")
    parser.add_argument("--fps", type=float, default=120.0)
    parser.add_argument("--acclaim-geometry", action="store_true",
                        help="keep the ASF thorax vector (Hahne's BVH files drop it)")
    args = parser.parse_args(argv)
    asf = read_asf(args.asf)
    write_bvh(to_bvh(asf, read_amc(args.amc, asf), args.fps, like_hahne=not args.acclaim_geometry),
              args.out)


if __name__ == "__main__":
    main()
