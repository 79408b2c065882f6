"""The bad-input corpus: miswired or malformed graphs a user can really build, each with the
words its error must contain (the input's name and the fix). Families add their cases to CASES."""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Callable

import torch
from safetensors.torch import save_file

from comfyui_wanmasking.tests.integration.graphs import Graph, tiny_t2v_model, tiny_vae, zero_cond

FRAMES, SIZE = 17, 32  # small: the tiny VAE has the real Wan VAE's width


@dataclass
class Case:
    id: str
    build: Callable[[Graph, Path], None]  # adds nodes (ending in an output node) to the graph
    expect: tuple[str, ...]  # all must appear in the error (case-insensitive)


CASES: list[Case] = []


def case(id: str, *expect: str):
    def register(fn):
        CASES.append(Case(id, fn, expect))
        return fn
    return register


def load(g: Graph, io_dir: Path, name: str, **tensors):
    path = io_dir / f"{name}.safetensors"
    save_file({k: v.contiguous() for k, v in tensors.items()}, str(path))
    return g.add("WanMaskTestLoad", path=str(path))


def clip(g: Graph, io_dir: Path, frames=FRAMES, size=SIZE, mask=None):
    """(source, latent) handles: source gives a random clip (IMAGE) and a full MASK, latent a random
    Wan 2.1 latent of the matching shape (as VAEEncode would give, without spending time on it)."""
    m = mask if mask is not None else torch.ones(frames, size, size)
    t = 1 + (frames - 1) // 4
    src = load(g, io_dir, f"clip{frames}_{size}", image=torch.rand(frames, size, size, 3), mask=m,
               samples=torch.randn(1, 16, t, size // 8, size // 8))
    return src, src[2]


def save(g: Graph, io_dir: Path, **inputs):
    g.add("WanMaskTestSave", path=str(io_dir / "never.safetensors"), **inputs)


# ---- WanMaskToLatent / WanMaskPreview ---------------------------------------------------------

def to_latent(g, samples, mask, **kw):
    args = dict(temporal="max", spatial="max", grow=0) | kw
    return g.add("WanMaskToLatent", samples=samples, mask=mask, **args)


@case("to_latent_mask_frames_not_1_T_or_F", "mask: 16 frames", "Fix", "17")
def _(g, d):
    src, lat = clip(g, d)
    bad = load(g, d, "m16", mask=torch.ones(16, SIZE, SIZE))
    save(g, d, latent=to_latent(g, lat, bad[1]))


@case("to_latent_mask_with_nan", "mask:", "NaN", "Fix")
def _(g, d):
    m = torch.ones(FRAMES, SIZE, SIZE)
    m[3, 5, 5] = float("nan")
    src, lat = clip(g, d)
    bad = load(g, d, "mnan", mask=m)
    save(g, d, latent=to_latent(g, lat, bad[1]))


@case("to_latent_mask_is_4d", "mask: expected a MASK", "Fix")
def _(g, d):
    src, lat = clip(g, d)
    bad = load(g, d, "m4d", mask=torch.ones(1, FRAMES, SIZE, SIZE))
    save(g, d, latent=to_latent(g, lat, bad[1]))


@case("to_latent_image_latent_not_video", "samples: expected a Wan video latent", "Fix")
def _(g, d):
    empty = g.add("EmptyLatentImage", width=64, height=64, batch_size=1)
    m = load(g, d, "m1", mask=torch.ones(1, SIZE, SIZE))
    save(g, d, latent=to_latent(g, empty, m[1]))


@case("to_latent_not_a_wan_latent", "samples: a latent with 32 channels", "Fix")
def _(g, d):
    src = load(g, d, "lat32", samples=torch.zeros(1, 32, 5, 8, 8), mask=torch.ones(FRAMES, SIZE, SIZE))
    save(g, d, latent=to_latent(g, src[2], src[1]))


@case("to_latent_batch_cannot_broadcast", "mask: 7 frames", "latent batch of 2", "10 or 34")
def _(g, d):
    empty = g.add("EmptyHunyuanLatentVideo", width=64, height=64, length=17, batch_size=2)
    m = load(g, d, "m7", mask=torch.ones(7, SIZE, SIZE))
    save(g, d, latent=to_latent(g, empty, m[1]))


@case("to_latent_unknown_temporal_mode", "temporal", "max", "trilinear")
def _(g, d):
    src, lat = clip(g, d)
    save(g, d, latent=to_latent(g, lat, src[1], temporal="median"))


@case("to_latent_grow_out_of_range", "grow", "64")
def _(g, d):
    src, lat = clip(g, d)
    save(g, d, latent=to_latent(g, lat, src[1], grow=100))


@case("to_latent_mask_not_connected", "mask", "required input")
def _(g, d):
    src, lat = clip(g, d)
    node = g.add("WanMaskToLatent", samples=lat, temporal="max", spatial="max", grow=0)
    save(g, d, latent=node)


@case("preview_images_wrong_frame_count", "images:", "17", "Fix")
def _(g, d):
    src, lat = clip(g, d)
    other = load(g, d, "img9", image=torch.rand(9, SIZE, SIZE, 3))
    p = g.add("WanMaskPreview", samples=to_latent(g, lat, src[1]), images=other[0])
    save(g, d, mask=p[1])


@case("preview_images_wrong_size", "images:", f"{SIZE}x{SIZE}", "Fix")
def _(g, d):
    src, lat = clip(g, d)
    other = load(g, d, "img48", image=torch.rand(FRAMES, 48, 48, 3))
    p = g.add("WanMaskPreview", samples=to_latent(g, lat, src[1]), images=other[0])
    save(g, d, mask=p[1])


@case("preview_user_mask_wrong_frames", "mask: 12 frames", "Fix")
def _(g, d):
    src, lat = clip(g, d)
    bad = load(g, d, "m12", mask=torch.ones(12, SIZE, SIZE))
    p = g.add("WanMaskPreview", samples=to_latent(g, lat, src[1]), mask=bad[1])
    save(g, d, mask=p[1])


@case("preview_image_latent_not_video", "samples: expected a Wan video latent")
def _(g, d):
    p = g.add("WanMaskPreview", samples=g.add("EmptyLatentImage", width=64, height=64, batch_size=1))
    save(g, d, mask=p[1])


# ---- WanMaskSamplerPatch --------------------------------------------------------------------------

def patch(g, model, **kw):
    args = dict(differential="timestep", strength=1.0, exact_keep=True, validate=True) | kw
    return g.add("WanMaskSamplerPatch", model=model, **args)


def sample(g, model, latent, positive=None, negative=None):
    cond = zero_cond(g)
    return g.add("KSampler", model=model, positive=positive or cond, negative=negative or cond, latent_image=latent,
                 seed=1, steps=2, cfg=1.0, sampler_name="euler", scheduler="simple", denoise=1.0)


@case("patch_16ch_latent_on_48ch_5b_model", "16 channels", "48-channel", "Fix")
def _(g, d):
    src = load(g, d, "lat16", samples=torch.randn(1, 16, 5, 8, 8))
    save(g, d, latent=sample(g, patch(g, tiny_t2v_model(g, "wan22_5b")), src[2]))


@case("patch_i2v_conditioning_for_another_length", "built for 4 latent frames but the latent has 5", "WanImageToVideo")
def _(g, d):
    img = load(g, d, "start", image=torch.rand(1, SIZE, SIZE, 3))
    cond = zero_cond(g)
    i2v = g.add("WanImageToVideo", positive=cond, negative=cond, vae=tiny_vae(g), width=SIZE, height=SIZE, length=13,
                batch_size=1, start_image=img[0])
    latent = g.add("EmptyHunyuanLatentVideo", width=SIZE, height=SIZE, length=FRAMES, batch_size=1)
    save(g, d, latent=sample(g, patch(g, tiny_t2v_model(g, "i2v")), latent, i2v[0], i2v[1]))


@case("patch_noise_mask_for_another_length", "noise_mask: 21 frames", "5 latent frames", "17")
def _(g, d):
    m = load(g, d, "m21", mask=torch.ones(21, SIZE, SIZE))
    latent = g.add("EmptyHunyuanLatentVideo", width=SIZE, height=SIZE, length=FRAMES, batch_size=1)
    masked = g.add("SetLatentNoiseMask", samples=latent, mask=m[1])
    save(g, d, latent=sample(g, patch(g, tiny_t2v_model(g)), masked))


@case("patch_vace_reference_without_trimmed_latent", "vace_frames[0]: 6 latent frames", "reference image",
      "TrimVideoLatent")
def _(g, d):
    img = load(g, d, "ref", image=torch.rand(1, SIZE, SIZE, 3))
    cond = zero_cond(g)
    vace = g.add("WanVaceToVideo", positive=cond, negative=cond, vae=tiny_vae(g), width=SIZE, height=SIZE,
                 length=FRAMES, batch_size=1, strength=1.0, reference_image=img[0])
    latent = g.add("EmptyHunyuanLatentVideo", width=SIZE, height=SIZE, length=FRAMES, batch_size=1)
    save(g, d, latent=sample(g, patch(g, tiny_t2v_model(g, "vace")), latent, vace[0], vace[1]))


@case("patch_strength_above_1", "strength", "1.0")
def _(g, d):
    src, lat = clip(g, d)
    save(g, d, latent=sample(g, patch(g, tiny_t2v_model(g), strength=2.0), lat))


@case("patch_unknown_differential_mode", "differential", "timestep", "soft")
def _(g, d):
    src, lat = clip(g, d)
    save(g, d, latent=sample(g, patch(g, tiny_t2v_model(g), differential="linear"), lat))


# ---- Embed builders: WanMaskI2VEmbeds, WanMaskVaceEmbeds, WanMaskTemporal, WanMaskAnimateEmbeds, TrimLatent

def image(g, d, frames=1, size=SIZE, name=None):
    return load(g, d, name or f"img{frames}_{size}", image=torch.rand(frames, size, size, 3))[0]


def i2v(g, d, **kw):
    cond = zero_cond(g)
    args = dict(positive=cond, negative=cond, vae=tiny_vae(g), width=SIZE, height=SIZE, length=FRAMES, batch_size=1,
                fun_or_fl2v_model=True, null_fill="gray", latent_strength=1.0) | kw
    emb = g.add("WanMaskI2VEmbeds", **args)
    save(g, d, latent=emb[2])


def vace(g, d, **kw):
    cond = zero_cond(g)
    args = dict(positive=cond, negative=cond, vae=tiny_vae(g), width=SIZE, height=SIZE, length=FRAMES, batch_size=1,
                strength=1.0, mask_threshold=0.5) | kw
    save(g, d, latent=g.add("WanMaskVaceEmbeds", **args)[2])


def animate(g, d, **kw):
    cond = zero_cond(g)
    args = dict(positive=cond, negative=cond, vae=tiny_vae(g), width=SIZE, height=SIZE, length=FRAMES,
                batch_size=1) | kw
    save(g, d, latent=g.add("WanMaskAnimateEmbeds", **args)[2])


@case("i2v_length_not_4n_plus_1", "length: 16 frames is not of the form 1+4k", "13 or 17")
def _(g, d):
    i2v(g, d, length=16, start_image=image(g, d))


@case("i2v_width_not_multiple_of_16", f"72x{SIZE}", "multiple of 16", "Use")
def _(g, d):
    i2v(g, d, width=72, start_image=image(g, d))


@case("i2v_keyframe_index_outside_clip", "keyframe_indices: frame index 20", "Fix")
def _(g, d):
    i2v(g, d, keyframes=image(g, d), keyframe_indices="20")


@case("i2v_keyframe_count_mismatch", "keyframe_indices: 1 index(es)", "2 keyframe", "Fix")
def _(g, d):
    i2v(g, d, keyframes=image(g, d, frames=2), keyframe_indices="8")


@case("i2v_keyframe_index_not_a_number", "keyframe_indices:", "not an integer", "Fix")
def _(g, d):
    i2v(g, d, keyframes=image(g, d), keyframe_indices="middle")


@case("i2v_indices_without_keyframes", "keyframe_indices:", "no keyframes IMAGE is connected", "Fix")
def _(g, d):
    i2v(g, d, start_image=image(g, d), keyframe_indices="8")


@case("i2v_end_image_overflows_without_fun_model", "end_image: with fun_or_fl2v_model off", "length 81")
def _(g, d):
    i2v(g, d, length=81, fun_or_fl2v_model=False, end_image=image(g, d))


@case("i2v_mask_given_as_start_image", "start_image: expected an IMAGE", "Fix")
def _(g, d):
    bad = load(g, d, "img_as_5d", image=torch.rand(1, 1, SIZE, SIZE, 3))
    i2v(g, d, start_image=bad[0])


@case("i2v_unknown_null_fill", "null_fill", "gray", "black")
def _(g, d):
    i2v(g, d, start_image=image(g, d), null_fill="white")


@case("vace_length_not_4n_plus_1", "length: 20 frames is not of the form 1+4k", "17 or 21")
def _(g, d):
    vace(g, d, length=20)


@case("vace_height_not_multiple_of_16", f"{SIZE}x40", "multiple of 16")
def _(g, d):
    vace(g, d, height=40)


@case("vace_mask_threshold_out_of_range", "mask_threshold", "1.0")
def _(g, d):
    vace(g, d, mask_threshold=1.5)


@case("vace_control_masks_with_nan", "control_masks", "NaN", "Fix")
def _(g, d):
    m = torch.ones(FRAMES, SIZE, SIZE)
    m[0, 0, 0] = float("nan")
    vace(g, d, control_masks=load(g, d, "vnan", mask=m)[1])


@case("temporal_keep_not_a_range", "keep:", "not a frame range", "Fix")
def _(g, d):
    save(g, d, mask=g.add("WanMaskTemporal", length=FRAMES, width=SIZE, height=SIZE, keep="first and last"))


@case("temporal_keep_outside_clip", "keep:", "frame index 30", "Fix")
def _(g, d):
    save(g, d, mask=g.add("WanMaskTemporal", length=FRAMES, width=SIZE, height=SIZE, keep="0-0, 30-32"))


@case("temporal_keep_range_reversed", "keep: range '9-4' ends before it starts", "Fix")
def _(g, d):
    save(g, d, mask=g.add("WanMaskTemporal", length=FRAMES, width=SIZE, height=SIZE, keep="9-4"))


@case("animate_bg_images_without_mask", "mask: bg_images is connected but mask is not", "Fix")
def _(g, d):
    animate(g, d, bg_images=image(g, d, frames=FRAMES))


@case("animate_pose_video_ended_before_the_chunk", "pose_video: 17 frame(s), but this chunk starts at frame 25",
      "the video has ended", "Fix")
def _(g, d):
    animate(g, d, pose_video=image(g, d, frames=FRAMES), continue_motion=image(g, d, frames=5, name="motion5"),
            video_frame_offset=30)


@case("animate_mask_without_bg_images", "bg_images: mask is connected but bg_images is not", "Fix")
def _(g, d):
    animate(g, d, mask=load(g, d, "amask", mask=torch.ones(FRAMES, SIZE, SIZE))[1])


@case("trim_latent_more_than_it_has", "cannot trim 4 latent frame(s) from the start and 3 from the end", "Fix")
def _(g, d):
    src, lat = clip(g, d)
    save(g, d, latent=g.add("WanMaskTrimLatent", samples=lat, trim_start=4, trim_end=3))


# ---- Training: WanMaskLossWeights, WanMaskTrainLoRA -------------------------------------------------

def train(g, d, latent_frames=3, mask=None, **kw):
    src = load(g, d, f"train{latent_frames}", samples=torch.randn(1, 16, latent_frames, 8, 8),
               mask=mask if mask is not None else torch.ones(1 + 4 * (latent_frames - 1), SIZE, SIZE))
    args = dict(model=tiny_t2v_model(g), latents=src[2], positive=zero_cond(g), batch_size=1, grad_accumulation_steps=1,
                steps=1, learning_rate=1e-4, rank=4, optimizer="AdamW", loss_function="MSE", seed=0,
                training_dtype="fp32", lora_dtype="fp32", algorithm="LoRA", gradient_checkpointing=False,
                existing_lora="[None]", gamma=1.0, min_weight=0.0, prior_preservation_weight=0.0,
                prior_mask_threshold=0.0, normalize_per_sample=True, require_mask=True, loss_mask=src[1],
                # native Train LoRA options of ComfyUI 0.33 (0.3.64 ignores inputs its node lacks)
                quantized_backward=False, checkpoint_depth=1, offloading=False, bucket_mode=False,
                bypass_mode=False) | kw
    if args["loss_mask"] is None:
        del args["loss_mask"]
    # an output node both versions have (the save LoRA node was renamed in 0.33)
    g.add("WanMaskTestSaveLoss", loss=g.add("WanMaskTrainLoRA", **args)[2], path="/dev/null")
    return src


@case("train_required_mask_missing", "loss_mask: no mask is connected but require_mask is on")
def _(g, d):
    train(g, d, loss_mask=None)


@case("train_mask_frames_do_not_fit", "loss_mask: 6 frames does not fit", "3 latent frames")
def _(g, d):
    train(g, d, mask=torch.ones(6, SIZE, SIZE))


@case("train_min_weight_not_below_1", "min_weight", "1")
def _(g, d):
    train(g, d, min_weight=1.5)


@case("train_gamma_zero", "gamma", "0.01")
def _(g, d):
    train(g, d, gamma=0.0)


@case("loss_weights_mask_out_of_8bit_range", "mask", "255")
def _(g, d):
    m = load(g, d, "w300", mask=torch.full((1, SIZE, SIZE), 300.0))
    w = g.add("WanMaskLossWeights", mask=m[1], preset="custom", gamma=1.0, min_weight=0.0, width=0, height=0)
    save(g, d, mask=w[0])
