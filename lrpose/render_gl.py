"""Fast mesh overlays with OpenGL through moderngl (the only module importing moderngl).

A headless EGL context (Mesa; software llvmpipe on machines without a GPU) draws the same
screen-space meshes as ``lrpose.render`` with a depth test and two-sided headlight shading.
``available()`` is False when moderngl or EGL cannot be used; callers then use the torch path.
"""

from __future__ import annotations

import threading

import numpy as np

_VERTEX = """
#version 330
uniform vec2 size;
uniform float focal;
uniform float near_z;
uniform float far_z;
uniform int verts_per_mesh;
uniform vec3 colors[32];
in vec3 in_cam;
out vec3 v_cam;
out vec3 v_color;
void main() {
    // perspective projection to pixels (principal point at the image centre), then to clip space
    float d = in_cam.z;
    float x = focal * in_cam.x / d / (0.5 * size.x);
    float y = -focal * in_cam.y / d / (0.5 * size.y);
    float a = (far_z + near_z) / (far_z - near_z);
    float b = -2.0 * far_z * near_z / (far_z - near_z);
    gl_Position = vec4(x * d, y * d, a * d + b, d);
    v_cam = in_cam;
    v_color = colors[(gl_VertexID / verts_per_mesh) % 32];
}
"""
_FRAGMENT = """
#version 330
in vec3 v_cam;
in vec3 v_color;
out vec4 f_color;
void main() {
    // flat, two-sided headlight shading from the triangle's screen-space derivatives
    vec3 n = normalize(cross(dFdx(v_cam), dFdy(v_cam)));
    float l = abs(n.z);
    f_color = vec4(clamp(v_color * (0.35 + 0.65 * l), 0.0, 1.0), 1.0);
}
"""

_LOCAL = threading.local()
"""One GL context per thread (an EGL context is current in one thread only): the overlay is drawn in
``lrpose.video``'s render thread while other code may draw in the main one."""


def _context():
    state = _state()
    if "ctx" not in state:
        try:
            import moderngl

            ctx = moderngl.create_context(standalone=True, backend="egl")
            prog = ctx.program(vertex_shader=_VERTEX, fragment_shader=_FRAGMENT)
            state.update(ctx=ctx, prog=prog, error=None)
        except Exception as e:  # no moderngl, no EGL, no GL 3.3: the torch path takes over
            state.update(ctx=None, prog=None, error=f"{type(e).__name__}: {e}")
    return state["ctx"], state["prog"]


def available() -> bool:
    """True when a headless GL context can be created here."""
    return _context()[0] is not None


def unavailable_reason() -> str | None:
    _context()
    return _state().get("error")  # type: ignore[return-value]


def _state() -> dict[str, object]:
    """This thread's context, program and creation error."""
    if not hasattr(_LOCAL, "state"):
        _LOCAL.state = {}
    return _LOCAL.state


def draw(
    verts_cam: np.ndarray, faces: np.ndarray, colors: np.ndarray, focal_px: float, width: int, height: int
) -> tuple[np.ndarray, np.ndarray]:
    """Rasterise N meshes sharing ``faces`` (F, 3): verts_cam (N, V, 3) camera-frame metres (x right,
    y down, z forward; translation included), colors (N, 3) in [0, 1], a pinhole camera with
    ``focal_px`` and the principal point at the image centre (pixel centres at integer + 0.5 edges,
    as ``lrpose.render``). Projection, clipping and depth test run in GL; shading is flat.
    Returns (H, W, 3) uint8 colours and (H, W) bool coverage (views of one read-back buffer: no float copies)."""
    ctx, prog = _context()
    if ctx is None:
        raise RuntimeError(f"OpenGL unavailable: {unavailable_reason()}")
    import moderngl

    n, nv = verts_cam.shape[:2]
    far = float(max(verts_cam[..., 2].max() * 2.0, 1.0))
    prog["size"].value = (float(width), float(height))
    prog["focal"].value = float(focal_px)
    prog["near_z"].value = 0.01
    prog["far_z"].value = far
    prog["verts_per_mesh"].value = int(nv)
    palette = np.zeros((32, 3), "f4")
    palette[: min(n, 32)] = colors[:32]
    prog["colors"].write(palette.tobytes())
    vbo = ctx.buffer(np.ascontiguousarray(verts_cam, "f4").tobytes())
    ibo = ctx.buffer(_indices(faces, n, nv))
    vao = ctx.vertex_array(prog, [(vbo, "3f", "in_cam")], index_buffer=ibo)
    fbo = _framebuffer(ctx, width, height)
    try:
        fbo.use()
        ctx.enable(moderngl.DEPTH_TEST)
        ctx.disable(moderngl.CULL_FACE)
        fbo.clear(0.0, 0.0, 0.0, 0.0, depth=1.0)
        vao.render(moderngl.TRIANGLES)
        rgba = np.frombuffer(fbo.read(components=4, alignment=1), np.uint8).reshape(height, width, 4)[::-1]
    finally:
        for obj in (vao, vbo, ibo):
            obj.release()
    return rgba[..., :3], rgba[..., 3] > 0


def _framebuffer(ctx, width: int, height: int):
    """One framebuffer per size, reused (releasing a framebuffer does not free its renderbuffers)."""
    fbos = _state().setdefault("fbos", {})
    if (width, height) not in fbos:
        if len(fbos) >= 4:
            for fbo in fbos.values():
                for att in (*fbo.color_attachments, fbo.depth_attachment):
                    if att is not None:
                        att.release()
                fbo.release()
            fbos.clear()
        fbos[(width, height)] = ctx.simple_framebuffer((width, height), components=4)
    return fbos[(width, height)]


_INDEX_CACHE: dict[tuple[int, int, int], bytes] = {}


def _indices(faces: np.ndarray, n: int, nv: int) -> bytes:
    """Index buffer of ``n`` copies of ``faces`` (cached: the same few sizes repeat every frame)."""
    key = (id(faces), n, nv)
    if key not in _INDEX_CACHE:
        if len(_INDEX_CACHE) > 64:
            _INDEX_CACHE.clear()
        _INDEX_CACHE[key] = (faces.astype("i4")[None] + (np.arange(n, dtype="i4") * nv)[:, None, None]).tobytes()
    return _INDEX_CACHE[key]
