"""Render a frame of an lrpose ``.glb`` through its video camera with Blender (dev tool; run with a
Python that has PyPI ``bpy``, e.g. a separate venv with ``pip install "bpy<4.3"``).

  python tools/render_glb_blender.py results/clip/clip.glb frame.png --time 0.4

Made ``examples/blender_glb_overlay.png`` (the render blended over the video frame it shows).
"""

import argparse

import bpy

ap = argparse.ArgumentParser()
ap.add_argument("glb")
ap.add_argument("out")
ap.add_argument("--time", type=float, default=0.0, help="seconds into the video")
ap.add_argument("--size", type=int, nargs=2, default=(640, 480))
args = ap.parse_args()
bpy.ops.wm.read_factory_settings(use_empty=True)
bpy.ops.import_scene.gltf(filepath=args.glb)
scene = bpy.context.scene
scene.camera = next(o for o in scene.objects if o.type == "CAMERA")  # the video's camera from the .glb
scene.render.engine = "CYCLES"
scene.cycles.samples = 8
scene.cycles.device = "CPU"
scene.render.resolution_x, scene.render.resolution_y = args.size
world = bpy.data.worlds.new("world")
scene.world = world
world.use_nodes = True
world.node_tree.nodes["Background"].inputs[1].default_value = 3.0
frame = args.time * scene.render.fps / scene.render.fps_base
scene.frame_set(int(frame), subframe=frame - int(frame))
scene.render.filepath = args.out
bpy.ops.render.render(write_still=True)
