"""ComfyUI internals: context windows (WanMaskContextWindows; the sampler patch's check of native windows).

Part of the compatibility boundary (see the package docstring): feature detection, never a
version compare; ComfyUI modules are imported inside the functions that need them."""
from __future__ import annotations

import inspect
import logging

import torch

from .runtime import throw_if_interrupted

log = logging.getLogger("WanMasking")
FILE = __file__


def native_context_windows_nodes():
    import comfy_extras.nodes_context_windows as native_nodes
    return native_nodes


def native_wan_context_windows_schema():
    """The running version's native ``WanContextWindowsManual`` schema (its inputs, in native order, and
    its category), so WanMaskContextWindows takes exactly the same inputs."""
    return native_context_windows_nodes().WanContextWindowsManualNode.define_schema()


class _SettingsOnlyPatcher:
    """Just enough of a ModelPatcher for native's context-window node to store its handler on."""

    def __init__(self):
        self.model_options: dict = {"transformer_options": {}}

    def clone(self):
        return self

    def add_wrapper_with_key(self, *args, **kwargs):
        pass


def native_wan_context_handler(**inputs):
    """The context handler native ``WanContextWindowsManual`` builds from these inputs (its own unit
    conversion from pixel to latent frames, parsing and defaults, in the running version).

    Native's node runs on a stand-in model that only keeps the handler; nothing is sampled.
    """
    stand_in = _SettingsOnlyPatcher()
    native_context_windows_nodes().WanContextWindowsManualNode.execute(model=stand_in, **inputs)
    handler = stand_in.model_options.get("context_handler")
    if handler is None:
        raise RuntimeError(f"native WanContextWindowsManual set no context_handler on this ComfyUI (see {FILE})")
    return handler


def context_handler_settings(native) -> dict:
    """What the handler decides beyond the schedule, where the version has it: the causal anchor frame
    (0.33 ``causal_window_fix``), conditioning retained per window (``retain_first_frame``), the split
    of combined conditionings over the windows, and the fuse kind."""
    return {"anchor": bool(getattr(native, "causal_window_fix", False)),
            "retain": [int(i) for i in getattr(native, "cond_retain_index_list", []) or []],
            "split": bool(getattr(native, "split_conds_to_windows", False)),
            "relative": getattr(native.fuse_method, "name", "") == "relative"}


def _context_weights(native, length: int, full_length: int, idxs: list[int], timestep):
    import comfy.context_windows as cw
    kwargs = {"sigma": timestep}
    if "context_overlap" in inspect.signature(cw.get_context_weights).parameters:
        kwargs["context_overlap"] = native.context_overlap
    return cw.get_context_weights(length, full_length, idxs, native, **kwargs)


class WanMaskContextHandler:
    """A context handler (the protocol ``comfy.samplers.calc_cond_batch`` calls: ``should_use_context``
    and ``execute``) that slices every Wan model conditioning on its own time axis.

    Composition, no subclassing: ``native`` (native's IndexListContextHandler, built by native's node)
    gives the schedule, the step, the fuse weights and FreeNoise; ``windowing`` (the pack's
    ``wan.context_windows.WanWindowing``) does the per-window math. Stored in
    ``model_options["context_handler"]``, so native's sampling wrappers (memory estimate per window,
    FreeNoise) read it as they read native's.
    """

    def __init__(self, native, windowing):
        self.native = native
        self.windowing = windowing
        self.callbacks: dict = {}

    # what native's wrappers read
    @property
    def dim(self) -> int:
        return self.native.dim

    @property
    def context_length(self) -> int:
        return self.native.context_length

    @property
    def context_overlap(self) -> int:
        return self.native.context_overlap

    @property
    def freenoise(self) -> bool:
        return bool(getattr(self.native, "freenoise", False))

    def _apply_freenoise(self, noise, conds, seed):
        return self.native._apply_freenoise(noise, conds, seed)

    def should_use_context(self, model, conds, x_in, timestep, model_options) -> bool:
        use = x_in.size(self.dim) > self.context_length
        if use:
            log.info("WanMaskContextWindows: context windows of %d latent frames (overlap %d) for %d frames%s.",
                     self.context_length, self.context_overlap, x_in.size(self.dim),
                     ", given frames as guides in every window" if self.windowing.guides else "")
        return use

    def _windows(self, model, x_in, timestep, model_options) -> list[list[int]]:
        try:
            self.native.set_step(timestep, model_options)
        except Exception:  # a sub-step of a multi-step sampler (0.3.64 raises there): keep the last step
            pass
        return [list(w.index_list) for w in self.native.get_context_windows(model, x_in, model_options)]

    def _resize(self, cond_list, plan):
        if cond_list is None:
            return None
        if self.windowing.split and len(cond_list) > 1:
            cond_list = [cond_list[self.windowing.region(plan, len(cond_list))]]
        out = []
        for cond in cond_list:
            new = cond.copy()
            for key, value in cond.items():
                if isinstance(value, torch.Tensor):
                    sliced = self.windowing.slice_generic(value, plan)
                    if sliced is not None:
                        new[key] = sliced
                elif key == "model_conds" and isinstance(value, dict):
                    mc = dict(value)
                    for k, v in value.items():
                        t = getattr(v, "cond", None)
                        if isinstance(t, torch.Tensor):
                            sliced = self.windowing.slice_cond(k, t, plan)
                            if sliced is not None:
                                mc[k] = v._copy_with(sliced)
                    new[key] = mc
            out.append(new)
        return out

    def _model_cond_tensors(self, conds) -> list[dict]:
        found = []
        for cond_list in conds:
            for cond in cond_list or []:
                mc = cond.get("model_conds", {})
                found.append({k: v.cond for k, v in mc.items() if isinstance(getattr(v, "cond", None), torch.Tensor)})
        return found

    def execute(self, calc_cond_batch, model, conds, x_in, timestep, model_options):
        w = self.windowing
        windows = self._windows(model, x_in, timestep, model_options)
        total = x_in.size(self.dim)
        found = self._model_cond_tensors(conds)
        guides = w.given_frames(found, int(x_in.shape[1]), total) if w.guides else []
        keys = {k for mc in found for k in mc}
        fuser = w.fuser(x_in, len(conds))
        for index_list in windows:
            throw_if_interrupted()
            plan = w.plan(index_list, total, guides, keys)
            sub_conds = [self._resize(c, plan) for c in conds]
            model_options["transformer_options"]["context_window"] = plan
            outs = calc_cond_batch(model, sub_conds, w.take(x_in, plan), timestep, model_options)
            weights = None if w.relative else _context_weights(self.native, len(index_list), total, index_list, timestep)
            fuser.add(index_list, [w.strip(o.to(x_in.device), plan) for o in outs], weights)
        return fuser.result()


def install_context_windows(model_patcher, native, windowing):
    """A clone of the model that samples in context windows through :class:`WanMaskContextHandler`, with
    native's sampling wrappers (memory estimated per window; FreeNoise where the version has it)."""
    import comfy.context_windows as cw
    patched = model_patcher.clone()
    patched.model_options["context_handler"] = WanMaskContextHandler(native, windowing)
    cw.create_prepare_sampling_wrapper(patched)
    if getattr(native, "freenoise", False) and hasattr(cw, "create_sampler_sample_wrapper"):
        cw.create_sampler_sample_wrapper(patched)
    return patched


def native_window_slicing(model_patcher) -> dict[str, bool] | None:
    """None unless the model samples in native context windows (not WanMaskContextWindows); then what
    native's handler does, probed on small tensors with a copy of it:

    * ``c_concat``: it slices a Wan I2V concat (5-D, time dim 2) to the window;
    * ``vace_context``: it slices a VACE context (6-D, time dim 3);
    * ``retain_on_anchor``: with its retained frames (``retain_first_frame``) and an anchor frame before the
      window, frame 0's conditioning lands on the anchor, where the latent is another frame.
    """
    import copy

    import comfy.conds
    import comfy.context_windows as cw
    handler = getattr(model_patcher, "model_options", {}).get("context_handler")
    if handler is None or isinstance(handler, WanMaskContextHandler) or not hasattr(handler, "get_resized_cond"):
        return None
    dim, t = getattr(handler, "dim", 2), 5
    x = torch.zeros(1, 16, t, 2, 2)
    frames = torch.arange(t, dtype=torch.float32).reshape(1, 1, t, 1, 1)
    conds = [{"model_conds": {"c_concat": comfy.conds.CONDNoiseShape(frames.expand(1, 20, t, 2, 2).clone()),
                              "vace_context": comfy.conds.CONDRegular(torch.zeros(1, 1, 96, t, 2, 2))}}]
    kwargs = {"dim": dim}
    if "total_frames" in inspect.signature(cw.IndexListContextWindow.__init__).parameters:
        kwargs["total_frames"] = t
    window = cw.IndexListContextWindow([2, 3], **kwargs)
    anchor = bool(getattr(handler, "causal_window_fix", False))
    if anchor:
        window.causal_anchor_index = 1
    probe = copy.copy(handler)
    probe._model = getattr(model_patcher, "model", None)
    try:
        mc = probe.get_resized_cond(conds, x, window)[0]["model_conds"]
    except Exception as e:  # a handler this probe does not understand: say nothing rather than guess
        log.debug("native context-window probe failed: %s", e)
        return None
    concat = mc["c_concat"].cond
    sliced = concat.shape[2] != t
    return {"c_concat": sliced, "vace_context": mc["vace_context"].cond.shape[3] != t,
            "retain_on_anchor": sliced and anchor and float(concat[0, 0, 0, 0, 0]) == 0.0}
