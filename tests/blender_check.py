"""Run under a Python that has ``bpy`` (Blender as a module): import a .glb with Blender's own glTF
importer and print, as JSON, every armature's bone count, the scene's frame rate and range, and the
world position of every bone head at the given times (converted back to glTF's y-up axes).

  python blender_check.py FILE.glb 0.0 0.4
"""

import json
import sys

import bpy

path, times = sys.argv[1], [float(t) for t in sys.argv[2:]]
bpy.ops.wm.read_factory_settings(use_empty=True)
bpy.ops.import_scene.gltf(filepath=path)
scene = bpy.context.scene
fps = scene.render.fps / scene.render.fps_base
arms = [o for o in scene.objects if o.type == "ARMATURE"]
out = {"fps": fps, "frame_start": scene.frame_start, "frame_end": scene.frame_end, "armatures": {}, "heads": {}}
for arm in arms:
    out["armatures"][arm.name] = len(arm.pose.bones)
for t in times:
    frame = t * fps
    scene.frame_set(int(frame), subframe=frame - int(frame))
    heads = {}
    for arm in arms:
        for bone in arm.pose.bones:
            x, y, z = arm.matrix_world @ bone.head
            heads[bone.name] = [x, z, -y]  # Blender z-up -> glTF y-up
    out["heads"][str(t)] = heads
print("RESULT " + json.dumps(out))
