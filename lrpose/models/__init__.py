"""Networks: resolution-aware backbone, iterative SMPL regressor, RSC-Net, checkpoints.

``models/`` never imports ``training/``.
"""
