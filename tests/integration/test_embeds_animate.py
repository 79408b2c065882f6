"""WanMaskAnimateEmbeds inside a real ComfyUI: against native WanAnimateToVideo, whose character-mask
placement is probed (``comfy_compat.native_animate_mask_slot_shift``), not assumed: ComfyUI up to 0.33
writes mask frame f to slot f, newer versions (PR #16406) to slot f+3 as this pack does. Also sampled on
the tiny I2V and Wan-Animate checkpoints."""
from __future__ import annotations


import pytest
import torch

from comfyui_wanmasking.masking.geometry import WAN21
from comfyui_wanmasking.tests.integration.embeds_media import (
    C, L, S, T, clip_slots, load, max_diff, read, save_cond, write_media,
)
from comfyui_wanmasking.tests.integration.embeds_media import media as make_media
from comfyui_wanmasking.tests.integration.graphs import Graph, ksampler, tiny_t2v_model, tiny_vae, zero_cond
from comfyui_wanmasking.wan.i2v import frame_mask_to_concat_mask
from comfyui_wanmasking.tests.integration.comfy_server import run_compat_in_comfyui

PLACEMENT_NOTE = "writes character-mask frame f to concat-mask slot f"


@pytest.fixture(scope="module")
def native_shift(comfyui_path):
    """The probe's answer for this ComfyUI's own WanAnimateToVideo (run in a fresh process of its tree)."""
    return run_compat_in_comfyui(comfyui_path, "m.native_animate_mask_slot_shift(wan.WanAnimateToVideo)",
                                 prelude="import comfy_extras.nodes_wan as wan\n")


def test_native_animate_placement_is_probed(native_shift):
    """0 (frame f in slot f: ComfyUI up to 0.33) or 3 (slot f+3: PR #16406 on). Which one is right for this
    server is checked against native's full run by the tests below."""
    assert native_shift in (0, 3)


def test_animate_mask_is_native_shifted_by_the_probed_slots(server, io_dir, native_shift):
    """This pack writes character-mask frame f to slot f+3 (frame 0 to slots 0..3), the causal group that
    holds frame f; native writes it to slot f + the probed shift (0 up to ComfyUI 0.33: a deliberate
    difference; 3 after: equal). The concat image (reference + background clip) is identical. Where native
    differs, the node says so once in the log."""
    media = make_media(io_dir)
    g = Graph()
    vae, cond, clip, ref = tiny_vae(g), zero_cond(g), load(g, media["clip"]), load(g, media["ref"])
    native = g.add("WanAnimateToVideo", positive=cond, negative=cond, vae=vae, width=S, height=S, length=L,
                   batch_size=1, continue_motion_max_frames=5, video_frame_offset=0, reference_image=ref[0],
                   background_video=clip[0], character_mask=clip[1])
    ours = g.add("WanMaskAnimateEmbeds", positive=cond, negative=cond, vae=vae, width=S, height=S, length=L,
                 batch_size=1, reference_image=ref[0], bg_images=clip[0], mask=clip[1])
    save_cond(g, str(io_dir / "native.safetensors"), native[0], value=native[3])
    save_cond(g, str(io_dir / "ours.safetensors"), ours[0], value=ours[3])
    server.run_ok(g.prompt)
    n, o = read(io_dir / "native.safetensors"), read(io_dir / "ours.safetensors")
    assert max_diff(n["concat_latent_image"], o["concat_latent_image"]) == 0.0
    assert float(n["int"]) == float(o["int"]) == 1.0
    assert n["concat_mask"].shape == o["concat_mask"].shape == (1, 4, T + 1, C, C)
    ns, os_ = clip_slots(n["concat_mask"]), clip_slots(o["concat_mask"])
    assert max_diff(os_[3:3 + L], ns[native_shift:native_shift + L]) == 0.0  # ours slot f+3 == native's
    assert max_diff(os_[:3], ns[:1].expand(3, C, C)) == 0.0  # frame 0 repeated into slots 0..2
    # the reference latent block is all "given" in both
    assert (o["concat_mask"][:, :, 0] == 0).all() and max_diff(n["concat_mask"][:, :, 0], o["concat_mask"][:, :, 0]) == 0.0
    assert (PLACEMENT_NOTE in server.log_path.read_text(errors="replace")) == (native_shift == 0)


def test_animate_moving_mask_lands_in_its_own_group(server, io_dir, native_shift):
    """A character present only in frame 6: this pack marks latent 2, channel 1 (frames 5..8 are latent 2).
    Native up to 0.33 marks slot 6 = latent 1, channel 2 (a frame of latent 1's group, 3 frames early), and
    leaves the 3 slots past the last frame at 1, whatever the mask says there; newer native equals ours."""
    mask = torch.zeros(L, S, S)
    mask[6] = 1.0
    path = write_media(io_dir, {"bg": {"image": torch.full((L, S, S, 3), 0.4), "mask": mask}})["bg"]
    g = Graph()
    vae, cond, bg = tiny_vae(g), zero_cond(g), load(g, path)
    native = g.add("WanAnimateToVideo", positive=cond, negative=cond, vae=vae, width=S, height=S, length=L,
                   batch_size=1, continue_motion_max_frames=5, video_frame_offset=0,
                   background_video=bg[0], character_mask=bg[1])
    ours = g.add("WanMaskAnimateEmbeds", positive=cond, negative=cond, vae=vae, width=S, height=S, length=L,
                 batch_size=1, bg_images=bg[0], mask=bg[1])
    save_cond(g, str(io_dir / "native.safetensors"), native[0])
    save_cond(g, str(io_dir / "ours.safetensors"), ours[0])
    server.run_ok(g.prompt)
    n, o = read(io_dir / "native.safetensors"), read(io_dir / "ours.safetensors")
    hot = lambda m: sorted((m[0, :, 1:, 0, 0] == 1).nonzero().tolist())  # noqa: E731  [channel, clip latent]
    assert hot(o["concat_mask"]) == [[1, 2]]
    # up to 0.33: slot 6 = latent 1, channel 2; and slots 17..19 (past the 17 frames) stay 1 = generate
    assert hot(n["concat_mask"]) == {0: [[1, 4], [2, 1], [2, 4], [3, 4]], 3: [[1, 2]]}[native_shift]


def test_animate_continue_motion_and_frame_offset_match_native(server, io_dir, native_shift):
    """Chunked long video: 7 frames of the previous chunk (the last 5 used) and video_frame_offset 20, with
    40-frame pose, face, background and character-mask videos. Native WanAnimateToVideo and this pack
    seek the videos to frame 15 alike: the concat image, pose latent, face pixels, trim_image and the
    next offset are identical; the character mask sits at the probed shift in native's concat mask and at
    slot f+3 in ours (the motion frames are given in both)."""
    g0 = torch.Generator().manual_seed(9)
    src = 40
    mask = (torch.rand(src, 1, 1, generator=g0) > 0.5).float().expand(src, S, S).contiguous()
    paths = write_media(io_dir, {"drive": {"image": torch.rand(src, S, S, 3, generator=g0), "mask": mask},
                                 "face": {"image": torch.rand(src, 16, 16, 3, generator=g0)},
                                 "motion": {"image": torch.rand(7, S, S, 3, generator=g0)}})
    g = Graph()
    vae, cond = tiny_vae(g), zero_cond(g)
    drive, face, motion = (load(g, paths[k]) for k in ("drive", "face", "motion"))
    common = dict(positive=cond, negative=cond, vae=vae, width=S, height=S, length=L, batch_size=1,
                  continue_motion_max_frames=5, video_frame_offset=20, continue_motion=motion[0],
                  pose_video=drive[0], face_video=face[0])
    native = g.add("WanAnimateToVideo", background_video=drive[0], character_mask=drive[1], **common)
    ours = g.add("WanMaskAnimateEmbeds", bg_images=drive[0], mask=drive[1], **common)
    for name, node, outputs in (("native", native, (3, 4, 5)), ("ours", ours, (3, 4, 5))):
        for i in outputs:
            save_cond(g, str(io_dir / f"{name}_{i}.safetensors"), node[0], value=node[i])
    server.run_ok(g.prompt)
    n = {i: read(io_dir / f"native_{i}.safetensors") for i in (3, 4, 5)}
    o = {i: read(io_dir / f"ours_{i}.safetensors") for i in (3, 4, 5)}
    assert [float(o[i]["int"]) for i in (3, 4, 5)] == [float(n[i]["int"]) for i in (3, 4, 5)] == [1.0, 5.0, 32.0]
    n, o = n[3], o[3]
    for key in ("concat_latent_image", "pose_video_latent", "face_video_pixels"):
        assert n[key].shape == o[key].shape, key
        assert max_diff(n[key], o[key]) == 0.0, key
    ns, os_ = clip_slots(n["concat_mask"], cells=False), clip_slots(o["concat_mask"], cells=False)
    assert os_[:8].tolist() == [0.0] * 8 and ns[:5].tolist() == [0.0] * 5  # motion frames 0..4: given
    source = mask[15 + 5:15 + L, 0, 0].tolist()  # frames 5..16 = source 20..31
    assert os_[8:].tolist() == ns[5 + native_shift:L + native_shift].tolist() == source


def test_animate_sampled_end_to_end_on_the_tiny_i2v_model(server, io_dir):
    """Character replacement sampled on the tiny I2V model. The conditioning holds the reference block (all
    given) and the character mask in the core's causal slots (frames 0..8 background, kept; 9..16
    character, generated), and the sampled latent reads the background, the mask and the reference:
    changing any one of them (same seed) changes it."""
    g0 = torch.Generator().manual_seed(11)
    mask = torch.zeros(L, S, S)
    mask[9:] = 1.0
    paths = write_media(io_dir, {
        "bg": {"image": torch.rand(L, S, S, 3, generator=g0), "mask": mask},
        "bg2": {"image": torch.rand(L, S, S, 3, generator=g0), "mask": 1.0 - mask},
        "ref": {"image": torch.rand(1, S, S, 3, generator=g0)},
        "ref2": {"image": torch.rand(1, S, S, 3, generator=g0)}})
    g = Graph()
    vae, cond, model = tiny_vae(g), zero_cond(g), tiny_t2v_model(g, "i2v")
    n = {name: load(g, path) for name, path in paths.items()}
    runs = {"base": ("bg", "bg", "ref"), "background": ("bg2", "bg", "ref"), "mask": ("bg", "bg2", "ref"),
            "reference": ("bg", "bg", "ref2")}
    for tag, (bg, mask_from, ref) in runs.items():
        emb = g.add("WanMaskAnimateEmbeds", positive=cond, negative=cond, vae=vae, width=S, height=S, length=L,
                    batch_size=1, reference_image=n[ref][0], pose_video=n["bg"][0], bg_images=n[bg][0],
                    mask=n[mask_from][1])
        trimmed = g.add("TrimVideoLatent", samples=ksampler(g, model, emb[0], emb[2], steps=2), trim_amount=emb[3])
        g.add("WanMaskTestSave", path=str(io_dir / f"{tag}.safetensors"), latent=trimmed)
        if tag == "base":
            save_cond(g, str(io_dir / "cond.safetensors"), emb[0])
            g.add("WanMaskTestSave", path=str(io_dir / "decoded.safetensors"),
                  image=g.add("VAEDecode", samples=trimmed, vae=vae))
    server.run_ok(g.prompt)
    c = read(io_dir / "cond.safetensors")
    want = frame_mask_to_concat_mask(mask[:, ::8, ::8], WAN21, C, C)
    assert max_diff(c["concat_mask"][:, :, 1:], want) == 0.0 and (c["concat_mask"][:, :, 0] == 0).all()
    assert clip_slots(c["concat_mask"], cells=False).tolist() == [0.0] * 12 + [1.0] * 8
    out = {tag: read(io_dir / f"{tag}.safetensors") for tag in runs}
    assert out["base"]["samples"].shape == (1, 16, T, C, C)
    assert read(io_dir / "decoded.safetensors")["image"].shape == (L, S, S, 3)
    for changed in ("background", "mask"):
        assert max_diff(out["base"]["samples"], out[changed]["samples"]) > 1e-3, changed
    # the reference latent is trimmed; it reaches the clip only through attention (on the tiny model ~1e-5).
    # Sampling on the CPU is deterministic, so a reference that never reached the model would give exactly 0.
    assert max_diff(out["base"]["samples"], out["reference"]["samples"]) > 0.0


def test_animate_chunk_sampled_on_the_tiny_animate_model(server, io_dir):
    """A second chunk (5 continue_motion frames, video_frame_offset 10) on the tiny Wan-Animate checkpoint:
    it samples, and the model reads our pose latent and face pixels (changing either changes the result).
    9 frames and 1 step: the face motion encoder runs at its real size on 512x512 crops."""
    g0 = torch.Generator().manual_seed(3)
    src, length, t = 30, 9, 3
    paths = write_media(io_dir, {
        "drive": {"image": torch.rand(src, S, S, 3, generator=g0), "mask": torch.ones(src, S, S)},
        "pose2": {"image": torch.rand(src, S, S, 3, generator=g0)},
        "face": {"image": torch.rand(src, 32, 32, 3, generator=g0)},
        "face2": {"image": torch.rand(src, 32, 32, 3, generator=g0)},
        "ref": {"image": torch.rand(1, S, S, 3, generator=g0)},
        "motion": {"image": torch.rand(5, S, S, 3, generator=g0)}})
    g = Graph()
    vae, cond, model = tiny_vae(g), zero_cond(g), tiny_t2v_model(g, "animate")
    n = {name: load(g, path) for name, path in paths.items()}

    def chunk(tag, pose, face):
        emb = g.add("WanMaskAnimateEmbeds", positive=cond, negative=cond, vae=vae, width=S, height=S, length=length,
                    batch_size=1, reference_image=n["ref"][0], pose_video=pose, face_video=face,
                    bg_images=n["drive"][0], mask=n["drive"][1], continue_motion=n["motion"][0],
                    continue_motion_max_frames=5, video_frame_offset=10)
        trimmed = g.add("TrimVideoLatent", samples=ksampler(g, model, emb[0], emb[2], steps=1), trim_amount=emb[3])
        g.add("WanMaskTestSave", path=str(io_dir / f"{tag}.safetensors"), latent=trimmed)
        save_cond(g, str(io_dir / f"{tag}_offset.safetensors"), emb[0], value=emb[5])

    chunk("base", n["drive"][0], n["face"][0])
    chunk("pose2", n["pose2"][0], n["face"][0])
    chunk("face2", n["drive"][0], n["face2"][0])
    server.run_ok(g.prompt, timeout=1200)
    out = {tag: read(io_dir / f"{tag}.safetensors")["samples"] for tag in ("base", "pose2", "face2")}
    assert out["base"].shape == (1, 16, t, C, C) and torch.isfinite(out["base"]).all()
    print(f"\n[animate] |change| pose {max_diff(out['base'], out['pose2']):.4g}, "
          f"face {max_diff(out['base'], out['face2']):.4g}")
    assert max_diff(out["base"], out["pose2"]) > 1e-3
    assert max_diff(out["base"], out["face2"]) > 1e-3
    assert float(read(io_dir / "base_offset.safetensors")["int"]) == 10 - 5 + length
