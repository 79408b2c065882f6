"""Pure-torch masking core of ComfyUI-WanMasking.

Nothing in this package imports ComfyUI. ``geometry`` is the single source of truth for
how Wan's causal VAE maps pixel frames and pixels to latent cells; every other module asks it.
"""
