"""Masked-loss training, pure torch: everything the trainer computes, in one place.

* ``weights``      masks -> raw loss weights on the latent grid (8-bit levels, gamma, floor, causal grouping)
* ``loss``         the masked loss reducer (region-normalized weighted means, prior preservation)
* ``step_loss``    one step's loss from prediction, target and teacher
* ``trainer_inputs`` the trainer's list inputs (latents, conditionings, loss masks) as one set
* ``loop``         the training loop: item, bucket and sigma draws, accumulation, teacher pass
* ``dataset_*``    a training set from folders: pairing items with masks, reading frames, the cache
* ``buckets``      bucketing items by latent shape
* ``musubi``       writing a masked set in musubi-tuner / blissful-tuner's layout

Nothing here imports ComfyUI; the ComfyUI side (adapters, guider, bypass) sits behind nodes/comfy_compat/ (training.py).
"""
