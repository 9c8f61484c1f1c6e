"""Which of MediaPipe's 468 face-mesh vertices stands for each iBUG-68 landmark (data only).

How the table was made. MediaPipe names its contours (``face_mesh_connections``: face oval,
brows, eyes, nose, lips); each iBUG group was matched to one of them, its ends to the contour's
own ends (eye corners 33/133 and 362/263, mouth corners 61/291 and 78/308, chin 152, nose tip,
subnasale 2), and the points between were placed on a real face: the mesh MediaPipe finds on the
Grace Hopper portrait that matplotlib ships (frontal), with the project's own face template
(``pose/face_template.py``) fitted onto it by a similarity transform through the eye corners,
mouth corners, nose tip and chin. Each iBUG point took the contour vertex nearest the fitted
template point, which agrees with iBUG's spacing rules:
- jaw 0-16: the lower face oval from the right ear (234) round the chin (152) to the left ear
  (454), points at even arc length (every 1/16 of the contour);
- brows 17-26: the five vertices of each brow's upper edge, outer to inner on the right, inner to
  outer on the left (iBUG's brow points lie on the upper edge);
- nose 27-30: nasion (168) to the tip at even steps; 31-35: the nostril base, right to left;
- eyes 36-47: corners, then the lid vertices nearest one and two thirds of each lid's length;
- mouth 48-67: outer lips at the cupid's bow and its thirds, inner lips at a third of the half
  width from the corner, the midline vertices 0/17 and 13/14.
Every right-side vertex has the mirror-image vertex of the mesh on the left (MediaPipe's mesh is
symmetric), so the table is symmetric too. ``tests/backend/test_extract_mediapipe.py`` checks the
table on that real face: order along each contour, sides, and places against the body's points.

"Right" and "left" are the person's, as in iBUG: point 0 is at the person's right ear.
"""
from __future__ import annotations

# iBUG index -> face-mesh vertex, in iBUG order (68 entries).
FACE68_FROM_MESH = (
    # 0-16 jaw, right ear round the chin to the left ear
    234, 93, 132, 58, 172, 150, 149, 148, 152, 377, 378, 379, 397, 288, 361, 323, 454,
    # 17-21 right brow (outer -> inner), 22-26 left brow (inner -> outer)
    70, 63, 105, 66, 107, 336, 296, 334, 293, 300,
    # 27-30 nose bridge (nasion -> tip), 31-35 nostril base (right -> left)
    168, 197, 5, 4, 98, 97, 2, 326, 327,
    # 36-41 right eye: outer corner, upper lid, inner corner, lower lid
    33, 159, 157, 133, 153, 144,
    # 42-47 left eye: inner corner, upper lid, outer corner, lower lid
    362, 384, 386, 263, 373, 380,
    # 48-59 outer lips: right corner, upper lip, left corner, lower lip back to the right
    61, 39, 37, 0, 267, 269, 291, 405, 314, 17, 84, 181,
    # 60-67 inner lips: right corner, upper, left corner, lower
    78, 82, 13, 312, 308, 317, 14, 87,
)

# The iris centres, only present when the mesh is refined (478 vertices): right, then left, as
# OpenPose's face-70 lists its pupils.
PUPILS_FROM_MESH = (468, 473)
REFINED_MESH_SIZE = 478

assert len(FACE68_FROM_MESH) == 68 and len(set(FACE68_FROM_MESH)) == 68
