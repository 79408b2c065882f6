"""The stages of ``benchmarks/gpu_check.py`` (one module each), its plan and time estimates
(:mod:`.plan`) and its report (:mod:`.report`). Nothing here runs on its own: the entry point is
``python benchmarks/run.py gpu_check``."""
