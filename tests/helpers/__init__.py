"""Test helpers shared by the unit and integration suites (one definition each).

Import them as ``comfyui_wanmasking.tests.helpers.<module>``: tests/conftest.py registers the repo root
as the package ``comfyui_wanmasking``, so unit, integration and reliability tests all reach them the
same way. Shared fixtures live in tests/conftest.py.

* :mod:`.masks`: synthetic pixel masks (``moving_square``).
* :mod:`.ui_graphs`: UI-format (frontend-saved) workflow pieces (``node``, ``link``).
"""
