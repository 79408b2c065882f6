"""ComfyUI-WanMasking: masking that lands on the right frames for Wan video.

ComfyUI imports this folder as a package and calls ``comfy_entrypoint``; the node classes live in
``nodes/`` (V3 ``io.ComfyNode`` schemas), the math in ``masking/``, ``wan/`` and ``vae/`` (pure
torch). Importing the package itself loads nothing of ComfyUI, so the tests, the benchmarks and the
runner import the core as ``comfyui_wanmasking.masking`` and so on without one.
"""


async def comfy_entrypoint():
    from .nodes import WanMaskingExtension
    return WanMaskingExtension()
