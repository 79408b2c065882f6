"""What ``wan/`` uses from the masking core, importable both inside ComfyUI (``wan`` is a
subpackage of the node pack) and in unit tests (``wan`` and ``masking`` are top-level packages).
The one place in ``wan/`` that knows about the two import paths."""
try:
    from ..masking import conventions
    from ..masking.geometry import GEOMETRIES, WAN21, FrameLayout, VaeGeometry
    from ..masking.mask_input import validate_mask
except ImportError:  # imported as a top-level package (unit tests, benchmarks)
    from masking import conventions
    from masking.geometry import GEOMETRIES, WAN21, FrameLayout, VaeGeometry
    from masking.mask_input import validate_mask

__all__ = ["GEOMETRIES", "WAN21", "FrameLayout", "VaeGeometry", "conventions", "validate_mask"]
