"""Read SMPL-format body files safely: the official ``.pkl`` and ``.npz`` versions.

The SMPL site distributes Python-2 pickles whose ``shapedirs`` is a chumpy ``Ch`` object and
whose ``J_regressor`` is a scipy sparse matrix. chumpy does not import on Python >= 3.11, and a
pickle can run arbitrary code, so we never call ``pickle.load`` with the default unpickler.
``RestrictedUnpickler`` resolves only an allow-list of globals (numpy array reconstruction,
builtin containers) and maps chumpy / scipy-sparse classes to inert stand-in objects that only
record their state; everything else is refused with ``AssetFormatError`` before any code runs.
"""

from __future__ import annotations

import io
import pickle
import zipfile
from pathlib import Path
from typing import Any

import numpy as np
import scipy.sparse

from lrpose.errors import AssetFormatError

REQUIRED_KEYS = ("v_template", "shapedirs", "J_regressor", "weights", "kintree_table", "f")


class _RecordedState:
    """Inert placeholder for a chumpy/scipy object: keeps the pickled state, runs nothing."""

    kind = "object"

    def __setstate__(self, state: Any) -> None:
        self.state = state


class _ChumpyArray(_RecordedState):
    kind = "chumpy"


class _SparseMatrix(_RecordedState):
    kind = "sparse"


def _reconstructor(cls: type, base: type, state: Any) -> Any:
    """Safe copy_reg._reconstructor: only instantiates our placeholders (state must be None)."""
    if not (isinstance(cls, type) and issubclass(cls, _RecordedState)) or base is not object or state is not None:
        raise pickle.UnpicklingError("copy_reg._reconstructor used on a class that is not allowed")
    return cls.__new__(cls)


def _latin1_encode(text: str, encoding: str = "latin1") -> bytes:
    """``_codecs.encode`` as Python 3 uses it for bytes in protocol-2 pickles; latin-1 only."""
    if encoding.lower().replace("-", "").replace("_", "") not in ("latin1", "iso88591") or not isinstance(text, str):
        raise pickle.UnpicklingError(f"refusing _codecs.encode with encoding {encoding!r}")
    return text.encode("latin1")


_NUMPY_RECONSTRUCT = np.zeros(1).__reduce__()[0]
_NUMPY_SCALAR = np.float64(1.0).__reduce__()[0]
_ALLOWED = {
    ("numpy", "ndarray"): np.ndarray,
    ("numpy", "dtype"): np.dtype,
    ("builtins", "set"): set,
    ("builtins", "frozenset"): frozenset,
    ("builtins", "object"): object,
    ("__builtin__", "set"): set,
    ("__builtin__", "frozenset"): frozenset,
    ("__builtin__", "object"): object,
    ("copy_reg", "_reconstructor"): _reconstructor,
    ("copyreg", "_reconstructor"): _reconstructor,
    ("_codecs", "encode"): _latin1_encode,
}
for _mod in ("numpy.core.multiarray", "numpy._core.multiarray"):
    _ALLOWED[(_mod, "_reconstruct")] = _NUMPY_RECONSTRUCT
    _ALLOWED[(_mod, "scalar")] = _NUMPY_SCALAR


class RestrictedUnpickler(pickle.Unpickler):
    """Unpickler that allows numpy arrays, builtin containers and inert chumpy/sparse records."""

    def find_class(self, module: str, name: str) -> Any:
        if (module, name) in _ALLOWED:
            return _ALLOWED[(module, name)]
        if module == "chumpy" or module.startswith("chumpy."):
            return _ChumpyArray
        if module.startswith("scipy.sparse") and name in ("csc_matrix", "csr_matrix", "coo_matrix"):
            return _SparseMatrix
        raise pickle.UnpicklingError(f"refusing to load global '{module}.{name}'")


def _to_array(value: Any, key: str) -> Any:
    """Turn recorded chumpy / sparse objects into plain numpy arrays."""
    if isinstance(value, _ChumpyArray):
        state = value.state if isinstance(value.state, dict) else {}
        if not isinstance(state.get("x"), np.ndarray):
            raise AssetFormatError(f"'{key}' is a chumpy object without a plain array ('x'); cannot read it")
        return state["x"]
    if isinstance(value, _SparseMatrix):
        st = value.state if isinstance(value.state, dict) else {}
        shape = st.get("_shape", st.get("shape"))
        try:
            if "indptr" in st:
                return scipy.sparse.csc_matrix((st["data"], st["indices"], st["indptr"]), shape=shape).toarray()
            return scipy.sparse.coo_matrix((st["data"], (st["row"], st["col"])), shape=shape).toarray()
        except (KeyError, TypeError, ValueError) as e:
            raise AssetFormatError(f"'{key}' is a sparse matrix in an unknown layout ({e})") from None
    if isinstance(value, _RecordedState):
        raise AssetFormatError(f"'{key}' holds an object of an unsupported type")
    return value


def read_pickle(path: Path) -> dict[str, Any]:
    """Load an SMPL ``.pkl`` with the restricted unpickler -> dict of numpy arrays and plain values."""
    data = Path(path).read_bytes()
    try:
        obj = RestrictedUnpickler(io.BytesIO(data), encoding="latin1").load()
    except (pickle.UnpicklingError, EOFError, AttributeError, ValueError, TypeError, IndexError) as e:
        raise AssetFormatError(f"{path} is not a safe SMPL pickle: {e}") from None
    if not isinstance(obj, dict):
        raise AssetFormatError(f"{path} does not hold a dict of arrays (got {type(obj).__name__})")
    return {str(k): _to_array(v, str(k)) for k, v in obj.items()}


def read_npz(path: Path) -> dict[str, Any]:
    """Load an ``.npz`` body file without pickles (``allow_pickle=False``)."""
    try:
        with np.load(path, allow_pickle=False) as z:
            return {k: z[k] for k in z.files}
    except (ValueError, OSError, zipfile.BadZipFile) as e:
        raise AssetFormatError(f"{path} is not a readable .npz body file (pickled arrays are refused): {e}") from None


def read_body_file(path: Path) -> dict[str, Any]:
    """Read an SMPL-format body file (``.pkl`` or ``.npz``) and check its required keys."""
    path = Path(path)
    suffix = path.suffix.lower()
    if suffix == ".pkl":
        data = read_pickle(path)
    elif suffix == ".npz":
        data = read_npz(path)
    else:
        raise AssetFormatError(f"{path}: unsupported body model file type '{suffix}' (expected .pkl or .npz)")
    missing = [k for k in REQUIRED_KEYS if k not in data]
    if missing:
        raise AssetFormatError(f"{path} is not an SMPL-format body file: missing {', '.join(missing)}")
    problem = shape_problem(data)
    if problem:
        raise AssetFormatError(f"{path} is not a consistent SMPL-format body file: {problem}")
    return data


def shape_problem(data: dict[str, Any]) -> str | None:
    """What is wrong with the array shapes of an SMPL-format dict (V vertices, J joints), or None:
    ``v_template`` (V, 3), ``shapedirs`` (V, 3, K), ``J_regressor`` (J, V), ``weights`` (V, J),
    ``kintree_table`` (2, J), ``f`` (F, 3) indices below V, ``posedirs`` (if any) (V, 3, P)."""
    try:
        arrays = {k: np.asarray(data[k]) for k in REQUIRED_KEYS}
    except (TypeError, ValueError) as e:
        return f"an array cannot be read ({e})"
    if any(a.dtype.kind not in "biuf" for a in arrays.values()):
        return "an array is not numeric"
    shapes = {k: a.shape for k, a in arrays.items()}
    v_template, n_joints = shapes["v_template"], shapes["J_regressor"][0] if arrays["J_regressor"].ndim == 2 else -1
    n_verts = v_template[0] if len(v_template) == 2 and v_template[1] == 3 else -1
    expected = {
        "v_template": (n_verts, 3), "J_regressor": (n_joints, n_verts), "weights": (n_verts, n_joints),
        "kintree_table": (2, n_joints), "f": (shapes["f"][0] if shapes["f"] else -1, 3),
    }  # fmt: skip
    if n_verts <= 0 or n_joints <= 0:
        return f"v_template {v_template} and J_regressor {shapes['J_regressor']} must be (V, 3) and (J, V)"
    for key, want in expected.items():
        if shapes[key] != want:
            return f"{key} has shape {shapes[key]}, expected {want} (V = {n_verts} vertices, J = {n_joints} joints)"
    if len(shapes["shapedirs"]) != 3 or shapes["shapedirs"][:2] != (n_verts, 3):
        return f"shapedirs has shape {shapes['shapedirs']}, expected ({n_verts}, 3, K)"
    if "posedirs" in data and np.asarray(data["posedirs"]).shape[:2] != (n_verts, 3):
        return f"posedirs has shape {np.asarray(data['posedirs']).shape}, expected ({n_verts}, 3, P)"
    if arrays["f"].size and (arrays["f"].min() < 0 or arrays["f"].max() >= n_verts):
        return f"faces (f) index vertices outside 0..{n_verts - 1}"
    return None
