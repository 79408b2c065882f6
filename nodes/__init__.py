"""ComfyUI adapters: each module declares one family of nodes; no tensor math lives here."""
from . import context_windows, embeds, latent_masks, sampler, training, vae

MODULES = (latent_masks, embeds, vae, sampler, training, context_windows)

NODE_CLASS_MAPPINGS = {}
NODE_DISPLAY_NAME_MAPPINGS = {}
for _m in MODULES:
    NODE_CLASS_MAPPINGS.update(_m.NODE_CLASS_MAPPINGS)
    NODE_DISPLAY_NAME_MAPPINGS.update(_m.NODE_DISPLAY_NAME_MAPPINGS)
