"""Window matrices like Blender's calc_matrix_camera, for tests that need a camera without bpy."""
import numpy as np


def perspective(focal_ndc_x, focal_ndc_y, near=0.1, far=100.0, shift=(0.0, 0.0)):
    """An OpenGL perspective window matrix like Blender's (shift moves the frame in NDC)."""
    m = np.zeros((4, 4))
    m[0, 0], m[1, 1] = focal_ndc_x, focal_ndc_y
    m[0, 2], m[1, 2] = shift[0], shift[1]
    m[2, 2] = -(far + near) / (far - near)
    m[2, 3] = -2 * far * near / (far - near)
    m[3, 2] = -1.0
    return m


def orthographic(half_width, half_height, near=0.1, far=100.0):
    m = np.eye(4)
    m[0, 0], m[1, 1] = 1 / half_width, 1 / half_height
    m[2, 2] = -2 / (far - near)
    m[2, 3] = -(far + near) / (far - near)
    return m
