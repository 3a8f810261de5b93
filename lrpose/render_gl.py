"""Fast mesh overlays with OpenGL through moderngl (the only module importing moderngl).

A headless EGL context (Mesa; software llvmpipe on machines without a GPU) draws the same
screen-space meshes as ``lrpose.render`` with a depth test and two-sided headlight shading.
``available()`` is False when moderngl or EGL cannot be used; callers then use the torch path.
"""

from __future__ import annotations

import numpy as np

_VERTEX = """
#version 330
uniform vec2 size;
uniform float near_z;
uniform float far_z;
in vec3 in_pos;
in vec3 in_normal;
in vec3 in_color;
out vec3 v_normal;
out vec3 v_color;
void main() {
    float x = (in_pos.x + 0.5) / size.x * 2.0 - 1.0;
    float y = 1.0 - (in_pos.y + 0.5) / size.y * 2.0;
    float d = in_pos.z;
    float a = (far_z + near_z) / (far_z - near_z);
    float b = -2.0 * far_z * near_z / (far_z - near_z);
    gl_Position = vec4(x * d, y * d, a * d + b, d);
    v_normal = in_normal;
    v_color = in_color;
}
"""
_FRAGMENT = """
#version 330
in vec3 v_normal;
in vec3 v_color;
out vec4 f_color;
void main() {
    float l = abs(normalize(v_normal).z);
    f_color = vec4(clamp(v_color * (0.35 + 0.65 * l), 0.0, 1.0), 1.0);
}
"""

_STATE: dict[str, object] = {}


def _context():
    if "ctx" not in _STATE:
        try:
            import moderngl

            ctx = moderngl.create_context(standalone=True, backend="egl")
            prog = ctx.program(vertex_shader=_VERTEX, fragment_shader=_FRAGMENT)
            _STATE.update(ctx=ctx, prog=prog, error=None)
        except Exception as e:  # no moderngl, no EGL, no GL 3.3: the torch path takes over
            _STATE.update(ctx=None, prog=None, error=f"{type(e).__name__}: {e}")
    return _STATE["ctx"], _STATE["prog"]


def available() -> bool:
    """True when a headless GL context can be created here."""
    return _context()[0] is not None


def unavailable_reason() -> str | None:
    _context()
    return _STATE.get("error")  # type: ignore[return-value]


def draw(
    screen: np.ndarray, normals: np.ndarray, colors: np.ndarray, faces: np.ndarray, width: int, height: int
) -> tuple[np.ndarray, np.ndarray]:
    """Rasterise one scene: screen (V, 3) ``(x_px, y_px, depth)``, normals (V, 3), colors (V, 3) in [0, 1],
    faces (F, 3). Returns (H, W, 3) float32 shaded colours and (H, W) bool coverage."""
    ctx, prog = _context()
    if ctx is None:
        raise RuntimeError(f"OpenGL unavailable: {unavailable_reason()}")
    import moderngl

    far = float(max(screen[:, 2].max() * 2.0, 1.0))
    prog["size"].value = (float(width), float(height))
    prog["near_z"].value = 0.01
    prog["far_z"].value = far
    data = np.concatenate([screen, normals, colors], 1).astype("f4")
    vbo = ctx.buffer(data.tobytes())
    ibo = ctx.buffer(faces.astype("i4").tobytes())
    vao = ctx.vertex_array(prog, [(vbo, "3f 3f 3f", "in_pos", "in_normal", "in_color")], index_buffer=ibo)
    fbo = ctx.simple_framebuffer((width, height), components=4)
    try:
        fbo.use()
        ctx.enable(moderngl.DEPTH_TEST)
        ctx.disable(moderngl.CULL_FACE)
        fbo.clear(0.0, 0.0, 0.0, 0.0, depth=1.0)
        vao.render(moderngl.TRIANGLES)
        rgba = np.frombuffer(fbo.read(components=4, alignment=1), np.uint8).reshape(height, width, 4)[::-1]
    finally:
        for obj in (vao, vbo, ibo, fbo):
            obj.release()
    return rgba[..., :3].astype(np.float32) / 255.0, rgba[..., 3] > 0
