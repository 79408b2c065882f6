"""The one error of the UI <-> API conversion."""
from __future__ import annotations


class WorkflowFormatError(ValueError):
    """A workflow that cannot be converted (unknown node type, broken link, ...)."""

