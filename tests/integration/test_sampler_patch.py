"""WanMaskSamplerPatch inside a real ComfyUI, on the tiny Wan checkpoints (sampling shift 8).

Every graph is what a user would build: a latent with a noise mask, a model patched by our node
(or by native DifferentialDiffusion for comparison), and the native samplers.
"""
from __future__ import annotations

import pytest
import torch
from safetensors.torch import load_file, save_file

from comfyui_wanmasking.tests.integration.comfy_server import execution_error
from comfyui_wanmasking.tests.integration.graphs import Graph, ksampler, tiny_t2v_model, tiny_vae, zero_cond

FRAMES, SIZE = 17, 32  # pixels the tiny VAE encodes -> latent [B, 16, 5, 4, 4] (small: it has the real width)
# latent-only tests use [B, 16, 5, 8, 8] latents directly (no VAE)


def soft_mask(b=1, seed=0):
    """[B,1,5,8,8] latent-resolution mask: a kept band (0), a regenerated band (1), grey in between."""
    g = torch.Generator().manual_seed(seed)
    m = torch.rand(b, 1, 5, 8, 8, generator=g)
    m[..., :3] = 0.0
    m[..., -2:] = 1.0
    return m


@pytest.fixture
def latent_file(io_dir):
    g = torch.Generator().manual_seed(5)
    path = io_dir / "latent.safetensors"
    save_file({"samples": torch.randn(1, 16, 5, 8, 8, generator=g), "noise_mask": soft_mask()}, str(path))
    return path


def patch(g, model, differential="timestep", strength=1.0, exact_keep=True, validate=True):
    return g.add("WanMaskSamplerPatch", model=model, differential=differential, strength=strength,
                 exact_keep=exact_keep, validate=validate)


def save(g, io_dir, name, latent):
    g.add("WanMaskTestSave", path=str(io_dir / f"{name}.safetensors"), latent=latent)


def load(io_dir, name):
    return load_file(str(io_dir / f"{name}.safetensors"))


def test_node_is_listed_with_its_public_inputs(server):
    info = server.get("/object_info")["WanMaskSamplerPatch"]
    req = info["input"]["required"]
    assert list(req) == ["model", "differential", "strength", "exact_keep", "validate"]
    assert req["differential"][0] == "COMBO" and req["differential"][1]["options"] == ["off", "timestep", "step", "soft"]
    assert req["differential"][1]["default"] == "timestep"
    assert req["strength"][1]["default"] == 1.0 and req["strength"][1]["min"] == 0.0
    assert req["exact_keep"][1]["default"] is True and req["validate"][1]["default"] is True
    assert info["output"] == ["MODEL"] and info["category"].endswith("wan masking")


def test_timestep_mode_equals_native_differential_diffusion(server, latent_file, io_dir):
    """Same graph, same seed: native DifferentialDiffusion vs the patch (timestep, exact_keep off)."""
    g = Graph()
    latent = g.add("WanMaskTestLoad", path=str(latent_file))[2]
    model, cond = tiny_t2v_model(g), zero_cond(g)
    for strength in (1.0, 0.5):
        native = g.add("DifferentialDiffusion", model=model, strength=strength)
        ours = patch(g, model, "timestep", strength, exact_keep=False)
        save(g, io_dir, f"native_{strength}", ksampler(g, native, cond, latent, steps=4))
        save(g, io_dir, f"ours_{strength}", ksampler(g, ours, cond, latent, steps=4))
    server.run_ok(g.prompt)
    for strength in (1.0, 0.5):
        native, ours = load(io_dir, f"native_{strength}")["samples"], load(io_dir, f"ours_{strength}")["samples"]
        assert torch.equal(native, ours), f"strength {strength}: max diff {(native - ours).abs().max():.3g}"
    assert not torch.equal(load(io_dir, "ours_1.0")["samples"], load(io_dir, "ours_0.5")["samples"])


def test_exact_keep_under_karras_where_native_releases_the_kept_region(server, latent_file, io_dir):
    g = Graph()
    latent = g.add("WanMaskTestLoad", path=str(latent_file))[2]
    model, cond = tiny_t2v_model(g), zero_cond(g)
    save(g, io_dir, "input", latent)
    save(g, io_dir, "native", ksampler(g, g.add("DifferentialDiffusion", model=model, strength=1.0), cond, latent,
                                       steps=4, scheduler="karras"))
    for mode in ("timestep", "step", "soft", "off"):
        save(g, io_dir, mode, ksampler(g, patch(g, model, mode), cond, latent, steps=4, scheduler="karras"))
    server.run_ok(g.prompt)
    src = load(io_dir, "input")
    keep = (src["noise_mask"] == 0).expand_as(src["samples"])
    regen = (src["noise_mask"] == 1).expand_as(src["samples"])
    native = load(io_dir, "native")["samples"]
    assert (native - src["samples"])[keep].abs().max() > 1e-2, "native karras releases mask-0 cells on the last step"
    for mode in ("timestep", "step", "soft", "off"):
        out = load(io_dir, mode)["samples"]
        assert torch.equal(out[keep], src["samples"][keep]), mode
        assert (out - src["samples"])[regen].abs().mean() > 1e-2, f"{mode}: regenerated region did not change"


def test_strength_zero_equals_sampling_with_the_plain_soft_mask(server, latent_file, io_dir):
    g = Graph()
    latent = g.add("WanMaskTestLoad", path=str(latent_file))[2]
    model, cond = tiny_t2v_model(g), zero_cond(g)
    save(g, io_dir, "plain", ksampler(g, model, cond, latent, steps=3))
    save(g, io_dir, "ours0", ksampler(g, patch(g, model, "timestep", 0.0, exact_keep=False), cond, latent, steps=3))
    save(g, io_dir, "native0", ksampler(g, g.add("DifferentialDiffusion", model=model, strength=0.0), cond, latent,
                                        steps=3))
    server.run_ok(g.prompt)
    plain, ours, native = (load(io_dir, n)["samples"] for n in ("plain", "ours0", "native0"))
    assert torch.equal(ours, plain)
    assert not torch.equal(native, plain), "native strength 0 binarizes (acts like 1.0)"


def test_composes_with_wan_mask_to_latent_and_other_samplers(server, io_dir):
    """Encode -> WanMaskToLatent -> patched model -> KSampler / KSamplerAdvanced / SamplerCustomAdvanced."""
    g_ = torch.Generator().manual_seed(3)
    mask = torch.zeros(FRAMES, SIZE, SIZE)
    mask[:, 8:20, 10:22] = 1.0
    clip = io_dir / "clip.safetensors"
    save_file({"image": torch.rand(FRAMES, SIZE, SIZE, 3, generator=g_), "mask": mask}, str(clip))
    g = Graph()
    src = g.add("WanMaskTestLoad", path=str(clip))
    encoded = g.add("VAEEncode", pixels=src[0], vae=tiny_vae(g))
    masked = g.add("WanMaskToLatent", samples=encoded, mask=src[1], temporal="max", spatial="max", grow=0)
    model, cond = patch(g, tiny_t2v_model(g), "soft"), zero_cond(g)
    save(g, io_dir, "input", masked)
    save(g, io_dir, "ksampler", ksampler(g, model, cond, masked, steps=3, scheduler="karras"))
    adv = g.add("KSamplerAdvanced", model=model, add_noise="enable", noise_seed=3, steps=3, cfg=1.0,
                sampler_name="heun", scheduler="karras", positive=cond, negative=cond, latent_image=masked,
                start_at_step=0, end_at_step=10000, return_with_leftover_noise="disable")
    save(g, io_dir, "advanced", adv)
    sigmas = g.add("BasicScheduler", model=model, scheduler="karras", steps=3, denoise=1.0)
    custom = g.add("SamplerCustomAdvanced", noise=g.add("RandomNoise", noise_seed=3),
                   guider=g.add("BasicGuider", model=model, conditioning=cond),
                   sampler=g.add("KSamplerSelect", sampler_name="dpmpp_2m"), sigmas=sigmas, latent_image=masked)
    save(g, io_dir, "custom", custom)
    server.run_ok(g.prompt)
    before = load(io_dir, "input")
    keep = (before["noise_mask"] == 0).expand_as(before["samples"])
    assert keep.any() and (~keep).any()
    for name in ("ksampler", "advanced", "custom"):
        out = load(io_dir, name)["samples"]
        assert torch.equal(out[keep], before["samples"][keep]), name
        assert (out - before["samples"])[~keep].abs().mean() > 1e-2, name


def test_two_stage_ksampler_advanced_chain_ends_exactly_at_the_input(server, latent_file, io_dir):
    """Wan 2.2 14B style high/low split with KSamplerAdvanced. Natively the second sampler's "input
    latent" is the first one's leftover-noise output, so the kept region ends noisy; with the patch
    the first stage returns mask-0 cells clean and the chain ends exactly at the input."""
    g = Graph()
    latent = g.add("WanMaskTestLoad", path=str(latent_file))[2]
    base, cond = tiny_t2v_model(g), zero_cond(g)
    for name, model in (("ours", patch(g, base, "timestep")), ("native", g.add("DifferentialDiffusion", model=base,
                                                                                strength=1.0))):
        common = dict(model=model, noise_seed=4, steps=4, cfg=1.0, sampler_name="euler", scheduler="simple",
                      positive=cond, negative=cond)
        high = g.add("KSamplerAdvanced", add_noise="enable", latent_image=latent, start_at_step=0, end_at_step=2,
                     return_with_leftover_noise="enable", **common)
        low = g.add("KSamplerAdvanced", add_noise="disable", latent_image=high, start_at_step=2, end_at_step=10000,
                    return_with_leftover_noise="disable", **common)
        save(g, io_dir, f"{name}_high", high)
        save(g, io_dir, f"{name}_low", low)
    server.run_ok(g.prompt)
    src = load_file(str(latent_file))
    keep = (src["noise_mask"] == 0).expand_as(src["samples"])
    regen = (src["noise_mask"] == 1).expand_as(src["samples"])
    native_high, native_low = load(io_dir, "native_high")["samples"], load(io_dir, "native_low")["samples"]
    assert (native_low - src["samples"])[keep].abs().mean() > 1e-2, "native chain ends noisy in the kept region"
    ours_high, ours_low = load(io_dir, "ours_high")["samples"], load(io_dir, "ours_low")["samples"]
    assert torch.equal(ours_high[keep], src["samples"][keep]) and torch.equal(ours_low[keep], src["samples"][keep])
    # the regenerated region still carries the leftover noise between the stages, as natively
    assert torch.allclose(ours_high[regen], native_high[regen], atol=1e-5)
    assert (ours_low - ours_high)[regen].abs().mean() > 1e-2


def test_per_sample_masks_in_a_batch_keep_their_own_regions(server, io_dir):
    g_ = torch.Generator().manual_seed(9)
    m = torch.zeros(2, 1, 5, 8, 8)
    m[0, :, :, :, :4] = 1.0  # sample 0 regenerates the left half
    m[1, :, 2:] = 1.0  # sample 1 regenerates its last 3 latent frames
    path = io_dir / "batch.safetensors"
    save_file({"samples": torch.randn(2, 16, 5, 8, 8, generator=g_), "noise_mask": m}, str(path))
    g = Graph()
    latent = g.add("WanMaskTestLoad", path=str(path))[2]
    save(g, io_dir, "out", ksampler(g, patch(g, tiny_t2v_model(g), "timestep"), zero_cond(g), latent, steps=3,
                                    scheduler="karras"))
    server.run_ok(g.prompt)
    out = load(io_dir, "out")["samples"]
    src = load_file(str(path))["samples"]
    keep = (m == 0).expand_as(src)
    assert torch.equal(out[keep], src[keep])
    assert (out - src)[~keep].abs().mean() > 1e-2


# ---- validation: miswired graphs ------------------------------------------------------------------

def run_error(server, g) -> str:
    entry = server.run(g.prompt)
    assert entry["status"]["status_str"] == "error"
    return execution_error(entry)


def test_16_channel_latent_on_the_48_channel_5b_model(server, io_dir):
    path = io_dir / "wan21_latent.safetensors"
    save_file({"samples": torch.randn(1, 16, 5, 8, 8)}, str(path))
    g = Graph()
    latent = g.add("WanMaskTestLoad", path=str(path))[2]
    model = patch(g, tiny_t2v_model(g, "wan22_5b"))
    save(g, io_dir, "never", ksampler(g, model, zero_cond(g), latent))
    msg = run_error(server, g)
    assert "WanMaskSamplerPatch" in msg and "16 channels" in msg and "48-channel" in msg and "Wan 2.2 VAE" in msg
    assert "Fix:" in msg and not (io_dir / "never.safetensors").exists()
    # natively the same graph fails deep inside ComfyUI with a tensor-size message
    g2 = Graph()
    latent = g2.add("WanMaskTestLoad", path=str(path))[2]
    save(g2, io_dir, "never", ksampler(g2, tiny_t2v_model(g2, "wan22_5b"), zero_cond(g2), latent))
    assert "must match the size of tensor" in run_error(server, g2)


def test_i2v_conditioning_with_another_frame_count(server, io_dir):
    img = io_dir / "start.safetensors"
    save_file({"image": torch.rand(1, SIZE, SIZE, 3)}, str(img))
    g = Graph()
    cond = zero_cond(g)
    i2v = g.add("WanImageToVideo", positive=cond, negative=cond, vae=tiny_vae(g), width=SIZE, height=SIZE,
                length=13, batch_size=1, start_image=g.add("WanMaskTestLoad", path=str(img))[0])
    latent = g.add("EmptyHunyuanLatentVideo", width=SIZE, height=SIZE, length=FRAMES, batch_size=1)
    model = patch(g, tiny_t2v_model(g, "i2v"))
    sampled = g.add("KSampler", model=model, positive=i2v[0], negative=i2v[1], latent_image=latent, seed=1, steps=2,
                    cfg=1.0, sampler_name="euler", scheduler="simple", denoise=1.0)
    save(g, io_dir, "never", sampled)
    msg = run_error(server, g)
    assert "built for 4 latent frames but the latent has 5" in msg and "WanImageToVideo" in msg


def test_noise_mask_for_another_video_length(server, io_dir):
    path = io_dir / "mask21.safetensors"
    save_file({"mask": torch.ones(21, SIZE, SIZE)}, str(path))
    g = Graph()
    latent = g.add("EmptyHunyuanLatentVideo", width=SIZE, height=SIZE, length=FRAMES, batch_size=1)
    masked = g.add("SetLatentNoiseMask", samples=latent, mask=g.add("WanMaskTestLoad", path=str(path))[1])
    save(g, io_dir, "never", ksampler(g, patch(g, tiny_t2v_model(g)), zero_cond(g), masked))
    msg = run_error(server, g)
    assert "noise_mask: 21 frames does not fit a latent with 5 latent frames" in msg and "17" in msg


def test_i2v_model_without_start_image_warns_and_samples(server, io_dir):
    g = Graph()
    latent = g.add("EmptyHunyuanLatentVideo", width=SIZE, height=SIZE, length=FRAMES, batch_size=1)
    save(g, io_dir, "i2v", ksampler(g, patch(g, tiny_t2v_model(g, "i2v")), zero_cond(g), latent, steps=2))
    server.run_ok(g.prompt)
    assert load(io_dir, "i2v")["samples"].shape == (1, 16, 5, SIZE // 8, SIZE // 8)
    assert "is sampled with no concat image; ComfyUI fills the 20 channels with zeros" in server.log_tail(400)


def test_validate_off_lets_native_errors_through(server, io_dir):
    path = io_dir / "wan21_latent.safetensors"
    save_file({"samples": torch.randn(1, 16, 5, 8, 8)}, str(path))
    g = Graph()
    latent = g.add("WanMaskTestLoad", path=str(path))[2]
    save(g, io_dir, "never", ksampler(g, patch(g, tiny_t2v_model(g, "wan22_5b"), validate=False), zero_cond(g), latent))
    msg = run_error(server, g)
    assert "WanMaskSamplerPatch" not in msg and "must match the size of tensor" in msg


NON_WAN_SCRIPT = r"""
import importlib, importlib.util, logging, sys
sys.path.insert(0, sys.argv[1])  # ComfyUI
import comfy.cli_args
comfy.cli_args.args.cpu = True
import comfy.model_base
spec = importlib.util.spec_from_file_location("comfyui_wanmasking", sys.argv[2] + "/__init__.py",
                                              submodule_search_locations=[sys.argv[2]])
sys.modules[spec.name] = importlib.util.module_from_spec(spec)
spec.loader.exec_module(sys.modules[spec.name])
sampler = importlib.import_module("comfyui_wanmasking.nodes.sampler")
records = []
logging.getLogger("WanMasking").addHandler(type("H", (logging.Handler,), {"emit": lambda s, r: records.append(r.getMessage())})())
class FakePatcher:  # an SDXL-like model: not a comfy.model_base.WAN21
    model = object.__new__(comfy.model_base.SDXL)
    def clone(self):
        raise AssertionError("a non-Wan model must not be cloned or patched")
p = FakePatcher()
out = sampler.WanMaskSamplerPatch.execute(p, "timestep", 1.0, True, True).result[0]
assert out is p, out
assert len(records) == 1 and "SDXL is not a Wan model; passing it through unpatched" in records[0], records
print("OK")
"""


def test_non_wan_model_passes_through_with_a_warning(comfyui_path, tmp_path):
    """In a subprocess with ComfyUI imported (no checkpoint of another family is needed)."""
    import subprocess
    import sys
    from pathlib import Path
    script = tmp_path / "non_wan.py"
    script.write_text(NON_WAN_SCRIPT)
    repo = Path(__file__).resolve().parents[2]
    r = subprocess.run([sys.executable, str(script), str(comfyui_path), str(repo)], capture_output=True, text=True,
                       timeout=300, cwd=str(tmp_path))
    assert r.returncode == 0 and r.stdout.strip().endswith("OK"), r.stdout[-2000:] + r.stderr[-2000:]


def test_vace_reference_image_with_a_latent_missing_its_extra_frame(server, io_dir):
    """WanVaceToVideo with a reference image makes T+1 latent frames; sampling a plain T-frame latent
    fails natively deep in the model. The patch names the cause (reference frame) and the fix."""
    img = io_dir / "ref.safetensors"
    save_file({"image": torch.rand(1, SIZE, SIZE, 3)}, str(img))
    g = Graph()
    cond = zero_cond(g)
    vace = g.add("WanVaceToVideo", positive=cond, negative=cond, vae=tiny_vae(g), width=SIZE, height=SIZE,
                 length=FRAMES, batch_size=1, strength=1.0, reference_image=g.add("WanMaskTestLoad", path=str(img))[0])
    latent = g.add("EmptyHunyuanLatentVideo", width=SIZE, height=SIZE, length=FRAMES, batch_size=1)
    sampled = g.add("KSampler", model=patch(g, tiny_t2v_model(g, "vace")), positive=vace[0], negative=vace[1],
                    latent_image=latent, seed=1, steps=2, cfg=1.0, sampler_name="euler", scheduler="simple", denoise=1.0)
    save(g, io_dir, "never", sampled)
    msg = run_error(server, g)
    assert "vace_frames[0]: 6 latent frames but the latent has 5" in msg
    assert "reference image adds one latent frame" in msg and "TrimVideoLatent" in msg
