"""ComfyUI internals: training sets from folders (WanMaskTrainingSet).

Part of the compatibility boundary (see the package docstring): feature detection, never a
version compare; ComfyUI modules are imported inside the functions that need them."""
from __future__ import annotations


def input_directory() -> str:
    import folder_paths
    return folder_paths.get_input_directory()


def output_directory() -> str:
    import folder_paths
    return folder_paths.get_output_directory()


def input_subfolders() -> list[str]:
    """Subfolders of ComfyUI's input folder, recursive, '/'-separated (as native's dataset loaders list them)."""
    import folder_paths
    return list(folder_paths.get_input_subfolders())


def dataset_cache_root() -> str:
    """Where encoded training sets are cached: ComfyUI's ``datasets`` folder where this version registers
    one (native SaveTrainingDataset writes there), else ``<output>/datasets``."""
    import os
    import folder_paths
    roots = folder_paths.folder_names_and_paths.get("datasets")
    if roots and roots[0]:
        return roots[0][0]
    return os.path.join(folder_paths.get_output_directory(), "datasets")


def vae_spatial_stride(vae) -> int:
    """Pixels per latent cell of a comfy.sd.VAE (8 for Wan 2.1, 16 for the Wan 2.2 5B VAE)."""
    return int(vae.spacial_compression_encode())


def vae_state_dict(vae) -> dict:
    return vae.first_stage_model.state_dict()


def clip_state_dict(clip) -> dict:
    return clip.cond_stage_model.state_dict()


def encode_caption(clip, text: str) -> list:
    """CONDITIONING of one caption, as native MakeTrainingDataset encodes it."""
    return clip.encode_from_tokens_scheduled(clip.tokenize(text))
