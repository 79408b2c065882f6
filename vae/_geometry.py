"""The pack's single source of frame/pixel geometry (masking/geometry.py), importable both inside
ComfyUI (``vae`` is a subpackage of the node pack) and in tests (``vae`` is top level)."""
try:
    from ..masking.geometry import WAN21, WAN22, VaeGeometry
except ImportError:  # imported as a top-level package (unit tests, benchmarks)
    from masking.geometry import WAN21, WAN22, VaeGeometry

__all__ = ["WAN21", "WAN22", "VaeGeometry"]
