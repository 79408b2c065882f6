"""ComfyUI-WanMasking: masking that lands on the right frames for Wan video.

ComfyUI imports this file; the node classes live in ``nodes/``, the math in ``masking/``,
``wan/`` and ``vae/`` (pure torch).
"""
from .nodes import NODE_CLASS_MAPPINGS, NODE_DISPLAY_NAME_MAPPINGS

__all__ = ["NODE_CLASS_MAPPINGS", "NODE_DISPLAY_NAME_MAPPINGS"]
