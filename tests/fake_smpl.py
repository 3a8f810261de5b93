"""Build tiny SMPL-format pickles like the official ones (chumpy shapedirs, scipy sparse J_regressor).

chumpy is not installed: a stand-in class is registered as ``chumpy.ch.Ch`` only while pickling,
so the file references chumpy exactly like the distributed SMPL files do.
"""

from __future__ import annotations

import pickle
import sys
import types
from pathlib import Path

import numpy as np
import scipy.sparse

NV = 6890  # SMPL's vertex count (smplx's default vertex ids index into it)


class _Ch:
    """Mimics chumpy.ch.Ch's pickled state: its __dict__ without caches, array under 'x'."""

    def __init__(self, x: np.ndarray) -> None:
        self.x = x
        self._dirty_vars = set()
        self._itr = None
        self._depends_on_deps = {}

    def __getstate__(self):
        return dict(self.__dict__)


def fake_smpl_dict(seed: int = 0) -> dict:
    """A random but well-formed SMPL dict whose 24 joints are vertices 0..23 of the template."""
    rng = np.random.default_rng(seed)
    v_template = rng.normal(0, 0.3, (NV, 3))
    jreg = scipy.sparse.csc_matrix((np.ones(24), (np.arange(24), np.arange(24))), shape=(24, NV))
    weights = rng.random((NV, 24))
    weights /= weights.sum(1, keepdims=True)
    faces = rng.integers(0, NV, (100, 3)).astype(np.uint32)
    kintree = np.array([[4294967295, 0, 0, 0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 9, 9, 12, 13, 14, 16, 17, 18, 19, 20, 21], list(range(24))])
    return {
        "v_template": v_template,
        "shapedirs": _Ch(rng.normal(0, 0.01, (NV, 3, 10))),
        "J_regressor": jreg,
        "weights": weights,
        "kintree_table": kintree,
        "f": faces,
        "bs_type": "lrotmin",
        "bs_style": "lbs",
    }


def write_fake_smpl(path: Path, seed: int = 0) -> dict:
    """Write a Python-2-style (protocol 2) SMPL pickle referencing chumpy.ch.Ch; return the dict."""
    data = fake_smpl_dict(seed)
    module = types.ModuleType("chumpy.ch")
    parent = types.ModuleType("chumpy")
    _Ch.__module__, _Ch.__qualname__, _Ch.__name__ = "chumpy.ch", "Ch", "Ch"
    module.Ch = _Ch
    parent.ch = module
    sys.modules["chumpy"], sys.modules["chumpy.ch"] = parent, module
    try:
        path.write_bytes(pickle.dumps(data, protocol=2))
    finally:
        del sys.modules["chumpy"], sys.modules["chumpy.ch"]
    return data
