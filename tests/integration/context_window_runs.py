"""The context-window test graphs shared by tests/integration/test_context_windows.py (T2V and I2V)
and test_context_windows_vace_animate.py: the clip and its media, our and native's window nodes, a
model wrapper that records what the model receives per window, and the checks that each window gets
an exact slice of the full clip's conditionings (plus the given frames, with guides).

33 frames at 32x32 (latent [1, 16, 9, 4, 4]; small, since the tiny VAE has the real one's width) in
windows of 17 pixel frames (5 latent frames) with an overlap of 8 (2 latent frames on both versions).
The recorder is tests/integration/helper_nodes/windows_io.py."""
from __future__ import annotations

import json

import torch
from safetensors.torch import load_file

from comfyui_wanmasking.tests.integration.embeds_media import load, write_media
from comfyui_wanmasking.tests.integration.graphs import ksampler, tiny_vae, zero_cond

L, S, T = 33, 32, 9
C = S // 8  # latent cells per side
WINDOW = {"context_length": 17, "context_overlap": 8, "context_schedule": "standard_static"}
NATIVE = "WanContextWindowsManual"


def native_defaults(info) -> dict:
    """Native WanContextWindowsManual's widget defaults on this ComfyUI."""
    out = {}
    inputs = info[NATIVE]["input"]
    for section in ("required", "optional"):
        for name, spec in inputs.get(section, {}).items():
            opts = spec[1] if len(spec) > 1 else {}
            if name == "model":
                continue
            if "default" in opts:
                out[name] = opts["default"]
            elif isinstance(spec[0], list):
                out[name] = spec[0][0]
            else:
                out[name] = opts["options"][0]
    return out


def native_has_anchor(info) -> bool:
    """0.33's handler prepends the frame before each window (its Wan node has freenoise beside it)."""
    return "freenoise" in {**info[NATIVE]["input"]["required"], **info[NATIVE]["input"].get("optional", {})}


def windows(g, info, model, ours=True, guides=False, **over):
    kw = native_defaults(info) | WINDOW | over
    if ours:
        return g.add("WanMaskContextWindows", model=model, given_frames_as_guides=guides, **kw)
    return g.add(NATIVE, model=model, **kw)


def record(g, model, folder):
    return g.add("WanMaskTestRecordModelInputs", model=model, folder=str(folder))


def calls(folder) -> list[tuple[dict, dict]]:
    """[(tensors, window meta)] per model call, in call order."""
    out = []
    for path in sorted(folder.glob("call_*.safetensors")):
        out.append((load_file(str(path)), json.loads(path.with_suffix(".json").read_text())))
    return out


def media(io_dir) -> dict:
    g = torch.Generator().manual_seed(11)
    clip = torch.rand(L, S, S, 3, generator=g)
    box = torch.zeros(L, S, S)
    box[:, S // 4:3 * S // 4, S // 8:5 * S // 8] = 1.0
    items = {"clip": {"image": clip, "mask": box}, "start": {"image": clip[:1]}, "end": {"image": clip[-1:]},
             "keys": {"image": clip[[0, 16, 32]]}, "ref": {"image": torch.rand(1, S, S, 3, generator=g)},
             "motion": {"image": torch.rand(7, S, S, 3, generator=g)}}
    return write_media(io_dir, items, prefix="media_")


def patch(g, model, exact_keep=True):
    return g.add("WanMaskSamplerPatch", model=model, differential="timestep", strength=1.0, exact_keep=exact_keep,
                 validate=True)


I2V_CASES = {
    # name: (embeds inputs, fun_or_fl2v_model, latent frames, given latent frames)
    "start": (("start",), True, T, [0]),
    "first_last": (("start", "end"), True, T, [0, T - 1]),
    "keyframes": (("keys",), True, T, [0, 4, 8]),
    "end_alone": (("start", "end"), False, T + 1, [0, T]),
}


def i2v_embeds(g, paths, case, keep=False):
    names, fun, _, _ = I2V_CASES[case]
    vae, cond = tiny_vae(g), zero_cond(g)
    kw = {"start_image": load(g, paths["start"])[0]} if "start" in names else {}
    if "end" in names:
        kw["end_image"] = load(g, paths["end"])[0]
    if "keys" in names:
        kw |= {"keyframes": load(g, paths["keys"])[0], "keyframe_indices": "0, 16, 32"}
    return g.add("WanMaskI2VEmbeds", positive=cond, negative=cond, vae=vae, width=S, height=S, length=L, batch_size=1,
                 fun_or_fl2v_model=fun, null_fill="gray", latent_strength=1.0, keep_given_latents=keep, **kw)


def sample(g, io_dir, name, model, emb, steps=2):
    out = ksampler(g, model, emb[0], emb[2], steps=steps)
    g.add("WanMaskTestSave", path=str(io_dir / f"{name}.safetensors"), latent=out)
    return out


def record_three_ways(g, io_dir, info, base, emb):
    """Recorded runs of the embeds: without windows (1 step, the full clip's conditionings), in our windows
    with exact slicing ("ours") and with given frames as guides ("guided")."""
    sample(g, io_dir, "full", record(g, base, io_dir / "full"), emb, steps=1)
    sample(g, io_dir, "ours", windows(g, info, record(g, base, io_dir / "ours")), emb)
    sample(g, io_dir, "guided", windows(g, info, record(g, base, io_dir / "guided"), guides=True), emb)


def read(io_dir, name):
    return load_file(str(io_dir / f"{name}.safetensors"))


def check_exact_slices(folder, full: dict, key: str, dim: int, anchor_expected: bool, guides: list[int] | None):
    """Every recorded call's ``key`` is the full-clip one at exactly the frames the window's input holds."""
    recorded = calls(folder)
    assert recorded, "the model was never called"
    windows_seen = set()
    for tensors, meta in recorded:
        idx = meta["x_indices"]
        own = meta["index_list"]
        windows_seen.add(tuple(own))
        lead = [own[0] - 1] if anchor_expected and own[0] > 0 else []
        extra = [g for g in (guides or []) if g not in own and g not in lead]
        assert idx[:len(lead) + len(own)] == lead + own, meta
        assert sorted(idx[len(lead) + len(own):]) == sorted(extra), meta
        assert tensors["x"].shape[2] == len(idx)
        want = full[key].index_select(dim, torch.tensor(idx))
        assert torch.equal(tensors[key], want), (meta, float((tensors[key] - want).abs().max()))
    assert len(windows_seen) >= 3, windows_seen
    return recorded


def own_end(meta) -> int:
    """Positions of the anchor (if any) and the window's own frames in the model input."""
    lead = 0 if meta["x_indices"][0] == meta["index_list"][0] else 1
    return lead + len(meta["index_list"])


def check_guides_are_the_given_frames(recorded, guides: list[int]):
    """At each guide position the input holds that frame's latent as the window that owns it saw it in the
    same step (same sigma), and its concat conditioning with the given slots (1 - concat_mask = 1)."""
    by_step: dict[float, list] = {}
    for tensors, meta in recorded:
        by_step.setdefault(float(tensors["t"][0]), []).append((tensors, meta))
    checked = 0
    for step_calls in by_step.values():
        owner = {}
        for tensors, meta in step_calls:
            for pos in range(own_end(meta)):
                owner.setdefault(meta["x_indices"][pos], tensors["x"][:, :, pos])
        for tensors, meta in step_calls:
            for pos in range(own_end(meta), len(meta["x_indices"])):
                i = meta["x_indices"][pos]
                assert i in guides, meta
                assert torch.equal(tensors["x"][:, :, pos], owner[i]), (meta, i)
                assert (tensors["c_concat"][:, :4, pos] == 1).flatten(2).all(2).any(), (meta, i)
                checked += 1
    assert checked > 0
