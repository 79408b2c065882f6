"""Test-only node for the context-window tests: records what the model receives, call by call."""
import json
import os

import comfy.patcher_extension
import torch
from safetensors.torch import save_file

RECORDED = ("c_concat", "vace_context", "pose_latents", "face_pixel_values")


class WanMaskTestRecordModelInputs:
    """A clone of the model whose every model call (one per context window and step) is written to
    ``<folder>/call_<n>.safetensors``: the noisy input ``x``, the sigma ``t`` and the Wan conditionings
    of RECORDED that are present, plus ``<folder>/call_<n>.json`` with the window's frames as the
    context handler exposed them (``index_list``, and ``x_indices`` where the handler says which
    frames the input holds). Sampling is unchanged."""

    @classmethod
    def INPUT_TYPES(cls):
        return {"required": {"model": ("MODEL",), "folder": ("STRING", {"default": ""})}}

    RETURN_TYPES = ("MODEL",)
    FUNCTION = "wrap"
    CATEGORY = "testing"

    def wrap(self, model, folder):
        os.makedirs(folder, exist_ok=True)
        counter = [0]

        def record(executor, x, t, c_concat=None, c_crossattn=None, control=None, transformer_options={}, **kwargs):
            n = counter[0]
            counter[0] += 1
            d = {"x": x, "t": t.reshape(-1)[:1]}
            if c_concat is not None:
                d["c_concat"] = c_concat
            for k in RECORDED[1:]:
                if isinstance(kwargs.get(k), torch.Tensor):
                    d[k] = kwargs[k]
            save_file({k: v.detach().float().contiguous().cpu() for k, v in d.items()},
                      os.path.join(folder, f"call_{n:04d}.safetensors"))
            window = transformer_options.get("context_window")
            meta = {"index_list": list(getattr(window, "index_list", []) or []),
                    "x_indices": list(getattr(window, "x_indices", []) or []),
                    "anchor": getattr(window, "causal_anchor_index", getattr(window, "anchor", None))}
            with open(os.path.join(folder, f"call_{n:04d}.json"), "w") as f:
                json.dump(meta, f)
            return executor(x, t, c_concat, c_crossattn, control, transformer_options, **kwargs)

        m = model.clone()
        m.add_wrapper_with_key(comfy.patcher_extension.WrappersMP.APPLY_MODEL, "WanMaskTestRecord", record)
        return (m,)


NODE_CLASS_MAPPINGS = {"WanMaskTestRecordModelInputs": WanMaskTestRecordModelInputs}
