"""A canonical 3-D face for rigs that have a head bone but no face bones.

The points are those of OpenPose's face (iBUG-68 landmarks plus the two pupils) and the body's
nose, eyes and ears, placed on a reference adult head. They are written in the *rig frame* of the
head bone (see ``rigmap``): origin at the head bone's head, x = the person's left, y = up,
z = forward (the way the face looks), in units of the head bone's rest length.

Reference head (millimetres; adult norms in the spirit of Farkas' anthropometry, rounded)
----------------------------------------------------------------------------------------
Coordinates while building the table: x = to the person's left, z = height above the chin's
lowest point (menton), y = distance in front of the ear canals (the head bone's axis runs
straight up through them, from the top of the neck to the crown).

=========================================  ======  ==========================================
measure                                    value   used for
=========================================  ======  ==========================================
head height, menton to crown (v-gn)        230     scale of everything
head bone: top of neck to crown            184     the unit (bone starts at 20 % of the head
                                                   height, about mouth level: where rigs such
                                                   as Mixamo and Rigify put the head joint)
nasion (bridge top) above menton (n-gn)    121     nose bridge, brow height
eye line above menton                      112     eye corners, pupils (≈ half head height)
subnasale above menton (sn-gn)             69      nose base
stomion (lips' meeting line) above menton  47      mouth corners, inner lips
brow line above menton                     ~133    brows (≈ 20 mm above the eyes)
ear canal (tragion) height                 ~102    on the Frankfort plane, 10 mm below eyes
interpupillary distance                    63      pupils at ±31.5
inner / outer eye corners (en-en, ex-ex)   33/91   eye contours
mouth width (ch-ch)                        54      corners at ±27
nose width at the nostrils                 ~28     lower nose at ±14
jaw angles (go-go) / face edge at the ear  97/140  jaw contour
ear centres (ear width apart)              ±74     body ears, 10 mm behind the canal
nose tip / nasion / chin in front of ears  117/95/80  depth of the profile
=========================================  ======  ==========================================

The depths of the other points follow the face's curvature (outer eye corners 16 mm behind the
inner ones, mouth corners 12 mm behind the lip centre, the jaw contour curving back to the
ears). The table is written for the person's right side and the midline; the left side is its
mirror image. Landmark numbering is iBUG's: jaw 0-16 from the person's right ear round the chin
to the left ear, brows 17-26, nose 27-35, eyes 36-47 (right eye first), mouth 48-67.
"""
from __future__ import annotations

HEAD_HEIGHT_MM = 230.0
# The head bone spans the top 80 % of the head: from 20 % of the head height to the crown.
BONE_START_MM = 0.20 * HEAD_HEIGHT_MM
BONE_LENGTH_MM = HEAD_HEIGHT_MM - BONE_START_MM

# (x left, z up from menton, y forward of the ear canals), millimetres; right side + midline.
_REFERENCE_MM: dict[str, tuple[float, float, float]] = {
    # Jaw contour: in front of the right ear down to the chin (iBUG 0-8).
    "face_0": (-70.0, 102.0, 22.0),
    "face_1": (-69.0, 87.0, 22.0),
    "face_2": (-67.0, 71.0, 24.0),
    "face_3": (-62.0, 55.0, 28.0),
    "face_4": (-53.0, 40.0, 36.0),
    "face_5": (-44.0, 27.0, 50.0),
    "face_6": (-33.0, 15.0, 64.0),
    "face_7": (-18.0, 5.0, 75.0),
    "face_8": (0.0, 0.0, 80.0),
    # Right brow, outer end to inner end (17-21).
    "face_17": (-58.0, 128.0, 70.0),
    "face_18": (-47.0, 134.0, 83.0),
    "face_19": (-35.0, 136.0, 92.0),
    "face_20": (-23.0, 134.0, 98.0),
    "face_21": (-12.0, 130.0, 100.0),
    # Nose bridge, nasion to tip (27-30); lower nose, right nostril to septum (31-33).
    "face_27": (0.0, 118.0, 95.0),
    "face_28": (0.0, 106.0, 103.0),
    "face_29": (0.0, 94.0, 110.0),
    "face_30": (0.0, 82.0, 117.0),
    "face_31": (-14.0, 72.0, 96.0),
    "face_32": (-7.0, 70.0, 99.0),
    "face_33": (0.0, 69.0, 100.0),
    # Right eye: outer corner, upper lid (outer, inner), inner corner, lower lid (inner, outer).
    "face_36": (-45.5, 113.0, 68.0),
    "face_37": (-36.0, 117.0, 79.0),
    "face_38": (-24.0, 117.0, 84.0),
    "face_39": (-16.5, 112.0, 84.0),
    "face_40": (-24.0, 109.0, 83.0),
    "face_41": (-36.0, 109.0, 78.0),
    # Outer lips: right corner, upper lip to its centre (48-51), lower lip centre and right (57-59).
    "face_48": (-27.0, 47.0, 88.0),
    "face_49": (-17.0, 52.0, 96.0),
    "face_50": (-7.0, 56.0, 100.0),
    "face_51": (0.0, 55.0, 101.0),
    "face_57": (0.0, 37.0, 98.0),
    "face_58": (-8.0, 38.0, 97.0),
    "face_59": (-17.0, 42.0, 93.0),
    # Inner lips (mouth closed): right corner, upper (61, 62), lower (66, 67).
    "face_60": (-23.0, 47.0, 90.0),
    "face_61": (-8.0, 48.0, 97.0),
    "face_62": (0.0, 48.0, 98.0),
    "face_66": (0.0, 46.0, 97.0),
    "face_67": (-8.0, 46.0, 96.0),
    # Pupils (on the cornea, in front of the eye corners) and the body's points.
    "r_pupil": (-31.5, 112.0, 88.0),
    "r_eye": (-31.5, 112.0, 88.0),
    "nose": (0.0, 82.0, 117.0),
    "r_ear": (-74.0, 104.0, -10.0),
}

# iBUG mirror pairs (right index -> left index); midline points map to themselves.
FACE_MIRROR: dict[int, int] = {
    **{i: 16 - i for i in range(0, 8)},
    17: 26, 18: 25, 19: 24, 20: 23, 21: 22,
    31: 35, 32: 34,
    36: 45, 37: 44, 38: 43, 39: 42, 40: 47, 41: 46,
    48: 54, 49: 53, 50: 52, 59: 55, 58: 56,
    60: 64, 61: 63, 67: 65,
}


def mirror_point_name(name: str) -> str:
    """The same point on the other side of the face (right <-> left); midline points unchanged."""
    if name.startswith("face_"):
        index = int(name[5:])
        for right, left in FACE_MIRROR.items():
            if index == right:
                return f"face_{left}"
            if index == left:
                return f"face_{right}"
        return name
    if name.startswith("r_"):
        return "l_" + name[2:]
    if name.startswith("l_"):
        return "r_" + name[2:]
    return name


def _full_reference() -> dict[str, tuple[float, float, float]]:
    points = dict(_REFERENCE_MM)
    for name, (x, z, y) in _REFERENCE_MM.items():
        other = mirror_point_name(name)
        if other != name:
            points[other] = (-x, z, y)
    return points


REFERENCE_MM = _full_reference()


def template_offsets() -> dict[str, tuple[float, float, float]]:
    """Every template point as (left, up, forward) in head-bone lengths from the bone's head."""
    return {
        name: (x / BONE_LENGTH_MM, (z - BONE_START_MM) / BONE_LENGTH_MM, y / BONE_LENGTH_MM)
        for name, (x, z, y) in REFERENCE_MM.items()
    }


TEMPLATE_POINTS = tuple(sorted(REFERENCE_MM))
