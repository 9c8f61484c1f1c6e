"""train/asf_amc.py: an Acclaim clip becomes a Bvh whose forward kinematics match the Acclaim
definition, and a written BVH reads back the same."""
import numpy as np

from train import asf_amc
from train.bvh import forward_kinematics, read_bvh

ASF = """:version 1.10
:name VICON
:units
  length 0.45
  angle deg
:root
   order TX TY TZ RX RY RZ
   axis XYZ
   position 0 0 0
   orientation 0 0 0
:bonedata
  begin
     id 1
     name lowerback
     direction 0 1 0
     length 2
     axis 0 0 0  XYZ
    dof rx ry rz
  end
  begin
     id 2
     name thorax
     direction 0 1 0
     length 1.5
     axis 0 0 0  XYZ
    dof rx ry rz
  end
  begin
     id 3
     name lhumerus
     direction 1 0 0
     length 3
     axis 0 0 30  XYZ
    dof rx ry rz
  end
  begin
     id 4
     name lradius
     direction 1 0 0
     length 2.5
     axis 0 0 30  XYZ
    dof rx
  end
:hierarchy
  begin
    root lowerback
    lowerback thorax
    thorax lhumerus
    lhumerus lradius
  end
"""

AMC = """:FULLY-SPECIFIED
:DEGREES
1
root 1 17 -3 10 20 30
lowerback 5 -4 3
thorax 2 1 -7
lhumerus -30 40 80
lradius 45
2
root 1.5 17.2 -2 -15 60 5
lowerback -8 12 4
thorax 9 -3 2
lhumerus 60 -20 -45
lradius 100
"""


def _clip(tmp_path):
    (tmp_path / "s.asf").write_text(ASF)
    (tmp_path / "s_01.amc").write_text(AMC)
    asf = asf_amc.read_asf(tmp_path / "s.asf")
    return asf, asf_amc.read_amc(tmp_path / "s_01.amc", asf)


def test_acclaim_geometry_matches_the_acclaim_definition(tmp_path):
    asf, channels = _clip(tmp_path)
    assert channels.shape == (2, 6 + 3 + 3 + 3 + 1)
    bvh = asf_amc.to_bvh(asf, channels, like_hahne=False)
    positions, _ = forward_kinematics(bvh)
    reference = asf_amc.acclaim_positions(asf, channels)
    assert np.allclose(positions[1:, : len(asf.names)], reference, atol=1e-9)
    # The rest frame in front is the zero pose at the first frame's root position.
    assert np.allclose(bvh.motion[0, :3], [1, 17, -3]) and not bvh.motion[0, 3:].any()
    # Names follow Hahne's MotionBuilder release.
    assert bvh.names[:5] == ["Hips", "LowerBack", "Spine1", "LeftArm", "LeftForeArm"]


def test_like_hahne_drops_only_the_thorax_vector(tmp_path):
    asf, channels = _clip(tmp_path)
    bvh = asf_amc.to_bvh(asf, channels)
    assert np.allclose(bvh.offsets[bvh.names.index("LeftArm")], 0.0)
    assert np.allclose(bvh.offsets[bvh.names.index("Spine1")], [0, 2, 0])


def test_written_bvh_reads_back(tmp_path):
    asf, channels = _clip(tmp_path)
    bvh = asf_amc.to_bvh(asf, channels, fps=30)
    asf_amc.write_bvh(bvh, tmp_path / "s_01.bvh")
    back = read_bvh(tmp_path / "s_01.bvh")
    assert abs(back.fps - 30) < 1e-3
    p1, _ = forward_kinematics(bvh)
    p2, _ = forward_kinematics(back)
    order = [back.names.index(n) for n in bvh.names]
    assert np.allclose(p1, p2[:, order], atol=1e-3)
