"""lrpose: 3D human pose, shape and texture (SMPL) of people in low-resolution images and videos."""

__version__ = "0.1.0"
