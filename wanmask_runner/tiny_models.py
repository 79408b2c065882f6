"""Make tiny Wan checkpoints with random weights in the real key layout.

Run in a subprocess with ComfyUI importable (``python tiny_models.py COMFYUI_PATH OUT_DIR``):
the modules are ComfyUI's own Wan classes, so the key layout is exactly what ComfyUI's model
detection expects. ComfyUI's ops skip weight init, so every parameter is filled here.

Files written (fp16 for the VAE to halve its size):
* ``diffusion_models/wan_tiny_t2v.safetensors``  dim 128, 2 layers, in_dim 16
* ``diffusion_models/wan_tiny_i2v.safetensors``  dim 128, 2 layers, in_dim 36, img_emb (i2v)
* ``diffusion_models/wan_tiny_vace.safetensors`` dim 128, 2 layers, 1 VACE layer (vace_in_dim 96)
* ``diffusion_models/wan_tiny_wan22_5b.safetensors`` dim 128, 2 layers, in/out 48 (Wan 2.2 TI2V-5B layout)
* ``diffusion_models/wan_tiny_flf2v.safetensors`` the i2v layout plus ``img_emb.emb_pos`` for 514 CLIP
  tokens (start + end image), which makes ComfyUI detect a first-last-frame model
* ``diffusion_models/wan_tiny_animate.safetensors`` dim 128, 5 layers (ComfyUI's face adapter needs
  num_layers // 5 >= 1), Wan-Animate layout; its motion and face encoders keep their real sizes (35 M
  parameters, stored in fp16)
* ``vae/wan_tiny_vae.safetensors``                the real-size Wan 2.1 VAE (width 96), random
"""
from __future__ import annotations

import os
import sys

import torch

MODEL_FILES = {
    "t2v": "wan_tiny_t2v.safetensors",
    "i2v": "wan_tiny_i2v.safetensors",
    "vace": "wan_tiny_vace.safetensors",
    "wan22_5b": "wan_tiny_wan22_5b.safetensors",
    "flf2v": "wan_tiny_flf2v.safetensors",
    "animate": "wan_tiny_animate.safetensors",
}
HALF = {"animate"}  # saved in fp16 (ComfyUI casts on load)
VAE_FILE = "wan_tiny_vae.safetensors"


def _fill(module: torch.nn.Module, seed: int) -> dict[str, torch.Tensor]:
    g = torch.Generator().manual_seed(seed)
    sd = {}
    for name, p in module.state_dict().items():
        leaf = name.rsplit(".", 1)[-1]
        if leaf in ("gamma",) or (leaf == "weight" and ("norm" in name or p.dim() == 1)):
            # norm scales: named *norm* (RMSNorm, LayerNorm) or 1-D weights of unnamed norms, e.g. the
            # LayerNorms inside img_emb.proj (a zero scale there would cut the CLIP features off)
            t = torch.ones(p.shape)
        elif leaf == "emb_pos":
            # FLF2V's per-token position embedding at the tokens' own scale, so that which image's tokens
            # come first matters to the model (at fan-in scale it would be ~1e-3 and barely count)
            t = torch.randn(p.shape, generator=g)
        elif leaf == "bias" or p.dim() <= 1:
            t = torch.zeros(p.shape)
        else:
            fan_in = max(1, p[0].numel())
            t = torch.randn(p.shape, generator=g) * min(0.02, fan_in ** -0.5)
        sd[name] = t.contiguous()
    return sd


def main(comfy_path: str, out_dir: str) -> None:
    sys.path.insert(0, comfy_path)
    from safetensors.torch import save_file

    import comfy.cli_args

    comfy.cli_args.args.cpu = True  # no CUDA probing when imported outside main.py
    import comfy.ops
    from comfy.ldm.wan.model import VaceWanModel, WanModel
    from comfy.ldm.wan.model_animate import AnimateWanModel
    from comfy.ldm.wan.vae import WanVAE

    ops = comfy.ops.disable_weight_init
    common = dict(dim=128, ffn_dim=256, num_heads=1, num_layers=2, text_dim=4096, device="meta", operations=ops)
    models = {
        "t2v": WanModel(model_type="t2v", in_dim=16, out_dim=16, **common),
        "i2v": WanModel(model_type="i2v", in_dim=36, out_dim=16, **common),
        "vace": VaceWanModel(in_dim=16, out_dim=16, vace_layers=1, vace_in_dim=96, **common),
        "wan22_5b": WanModel(model_type="t2v", in_dim=48, out_dim=48, **common),
        "flf2v": WanModel(model_type="i2v", in_dim=36, out_dim=16, flf_pos_embed_token_number=514, **common),
        "animate": AnimateWanModel(in_dim=36, out_dim=16, **dict(common, num_layers=5)),
    }
    os.makedirs(os.path.join(out_dir, "diffusion_models"), exist_ok=True)
    os.makedirs(os.path.join(out_dir, "vae"), exist_ok=True)
    for i, (kind, m) in enumerate(models.items()):
        sd = _fill(m, seed=i)
        if kind == "animate":
            # The motion encoder's StyleGAN layers (EqualConv2d / EqualLinear) multiply their weights by
            # 1/sqrt(fan_in) at run time, so their weights are stored at unit scale; fan-in scaling twice
            # would shrink the face signal to nothing within a few layers.
            g = torch.Generator().manual_seed(100)
            for k, v in sd.items():
                if k.startswith("motion_encoder.") and k.endswith(".weight") and v.dim() >= 2:
                    sd[k] = torch.randn(v.shape, generator=g)
        if kind in HALF:
            sd = {k: v.half() for k, v in sd.items()}
        save_file(sd, os.path.join(out_dir, "diffusion_models", MODEL_FILES[kind]))
    with torch.device("meta"):
        vae = WanVAE(dim=96, z_dim=16, dim_mult=[1, 2, 4, 4], num_res_blocks=2, attn_scales=[],
                     temperal_downsample=[False, True, True])
    sd = {k: v.half() for k, v in _fill(vae, seed=10).items()}
    save_file(sd, os.path.join(out_dir, "vae", VAE_FILE))


if __name__ == "__main__":
    main(sys.argv[1], sys.argv[2])
