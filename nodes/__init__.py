"""The pack's ComfyUI nodes, every one an ``io.ComfyNode`` (V3 schema), registered through one
``ComfyExtension``. Each module declares one family of nodes; no tensor math lives here."""
from __future__ import annotations

from comfy_api.latest import ComfyExtension, io

from .context_windows import WanMaskContextWindows
from .embeds import WanMaskAnimateEmbeds, WanMaskI2VEmbeds, WanMaskVaceEmbeds
from .frame_ranges import WanMaskTemporal, WanMaskTrimLatent
from .latent_masks import WanMaskPreview, WanMaskToLatent
from .sampler import WanMaskSamplerPatch
from .train_lora import WanMaskTrainLoRA
from .training import WanMaskLossTiers, WanMaskLossWeights
from .training_set import WanMaskSaveMusubiDataset, WanMaskTrainingSet
from .vae import WanMaskVAEDecode, WanMaskVAEEncode, WanMaskVAELoader

NODES: list[type[io.ComfyNode]] = [
    WanMaskToLatent, WanMaskPreview,
    WanMaskI2VEmbeds, WanMaskVaceEmbeds, WanMaskTemporal, WanMaskAnimateEmbeds, WanMaskTrimLatent,
    WanMaskVAELoader, WanMaskVAEDecode, WanMaskVAEEncode,
    WanMaskSamplerPatch, WanMaskContextWindows,
    WanMaskLossWeights, WanMaskLossTiers, WanMaskTrainLoRA, WanMaskTrainingSet,
    WanMaskSaveMusubiDataset,
]


class WanMaskingExtension(ComfyExtension):
    async def get_node_list(self) -> list[type[io.ComfyNode]]:
        return list(NODES)
