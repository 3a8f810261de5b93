"""Render ``examples/person_64px.png``: a low-resolution person made with lrpose's own stand-in body.

Licence-clean by construction (our body model, our renderer, procedural colours). A walking pose,
clothes coloured by each vertex's dominant skinning joint, rendered at 256 px and shrunk
(area averaging) to a 64 x 64 person-centred crop, the size a CCTV camera gives a distant person.

Usage: python tools/make_example_image.py [--out examples/person_64px.png] [--size 64]
"""

from __future__ import annotations

import argparse
import math

import numpy as np
import torch

from lrpose import assets
from lrpose.body import BodyModel
from lrpose.crops import resize_square
from lrpose.files import save_png
from lrpose.render import project_to_screen, rasterize, shade

# dominant joint -> colour (shirt, trousers, skin, shoes, hair)
SHIRT, TROUSERS, SKIN, SHOES = (0.75, 0.2, 0.15), (0.15, 0.2, 0.45), (0.85, 0.65, 0.5), (0.1, 0.1, 0.1)
JOINT_COLOUR = {0: TROUSERS, 1: TROUSERS, 2: TROUSERS, 4: TROUSERS, 5: TROUSERS, 7: SHOES, 8: SHOES, 10: SHOES, 11: SHOES,
                15: SKIN, 20: SKIN, 21: SKIN, 22: SKIN, 23: SKIN}  # fmt: skip


def walking_pose() -> torch.Tensor:
    """(1, 72) axis-angle: mid-stride, facing the camera slightly turned, arms swinging."""
    p = torch.zeros(24, 3)
    p[0] = torch.tensor([math.pi, 0.35, 0.0])  # camera frame (y down), turned 20 degrees
    p[1, 0], p[2, 0] = -0.45, 0.35  # hips: left forward, right back
    p[4, 0], p[5, 0] = 0.25, 0.6  # knees
    p[16, 2], p[17, 2] = -1.2, 1.2  # arms down
    p[16, 1], p[17, 1] = 0.35, 0.35  # arm swing
    p[18, 1], p[19, 1] = -0.3, 0.3  # elbows
    return p.reshape(1, 72)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--out", default="examples/person_64px.png")
    ap.add_argument("--size", type=int, default=64)
    args = ap.parse_args()
    body = BodyModel.from_standin(assets.resolve("standin_body"))
    with torch.no_grad():
        v = body.forward_axis_angle(walking_pose()).vertices
    dominant = body.layer.lbs_weights.argmax(1).tolist()
    colours = torch.tensor([JOINT_COLOUR.get(j, SHIRT) for j in dominant])
    hi = 256
    lo, up = v[0].min(0).values, v[0].max(0).values
    centre, height = (lo + up) / 2, float(up[1] - lo[1])
    focal = 5000.0 / 224 * hi
    trans = torch.tensor([[-float(centre[0]), -float(centre[1]), focal * height * 1.2 / hi]])
    screen = project_to_screen(v, trans, focal, torch.tensor([[hi / 2 - 0.5, hi / 2 - 0.5]]))
    frags = rasterize(screen, body.faces, hi, hi)
    rgb = shade(frags, v + trans[:, None], body.faces, colours)[0].numpy()
    yy = np.linspace(0, 1, hi)[:, None, None]
    background = (0.55 + 0.25 * yy) * np.array([0.8, 0.85, 0.8]) + 0.03 * np.random.default_rng(0).standard_normal((hi, hi, 3))
    mask = frags.mask[0].numpy()[..., None]
    img = (np.where(mask, rgb, background).clip(0, 1) * 255).astype(np.uint8)
    save_png(args.out, resize_square(img, args.size))
    print(f"wrote {args.out} ({args.size} px, person about {args.size / 1.2:.0f} px tall)")


if __name__ == "__main__":
    main()
