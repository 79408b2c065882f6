"""The one boundary between this pack and ComfyUI internals (anything that is not a public node API),
one module per ComfyUI subsystem.

Every use of the prompt queue and worker, the LoRA trainer's building blocks, ``comfy.sd.VAE`` wiring,
sampler wrappers, the denoise-mask function, context-window handlers and the folders of training sets
goes through this package, with feature detection (never version-string comparison), one module per
subsystem: ``runtime``, ``prompt_queue``, ``sampling``, ``vae``, ``training``, ``datasets``,
``context_windows``, ``native_wan`` (native Wan nodes probed by behaviour), ``self_check``. A new ComfyUI that changes one of them breaks here:
:func:`self_check` lists what it found, and ``tests/integration/test_compat.py`` names the module when a
feature is missing. This file only re-exports, so ``nodes/`` imports ``comfy_compat`` as one module.

Tested against ComfyUI 0.3.64 and 0.33.0. Known differences it bridges:

* prompt queue items: 5 elements (0.3.64) or 6 (0.33, "sensitive" extra data). The runner never builds
  them: :func:`post_prompt` calls the running server's own ``POST /prompt`` handler.
* the guider resizes the noise mask to the latent before (0.33) or inside (0.3.64) the OUTER_SAMPLE
  wrappers: :func:`raw_denoise_mask` gives the sampler patch the mask as the user made it.
* context windows: 0.3.64's handler slices only conditionings with fewer dims than the window dim, so
  Wan's 5-D ``c_concat`` and 6-D ``vace_context`` reach the model whole; 0.33 slices them (with an anchor
  frame before each window) and converts overlaps differently. :class:`WanMaskContextHandler` composes
  the running version's own handler (built by its own node) for schedules, steps, fuse weights and
  FreeNoise; :func:`native_window_slicing` probes what a native handler slices.
* ``WanAnimateToVideo``'s character mask: frame f in slot f (0.3.64, 0.33) or in slot f+3 (PR #16406,
  0.34+, as this pack): :func:`native_animate_mask_slot_shift` runs the native node on a tiny input.
* ``TrainLoraNode``: a V1 node with ``train()`` (0.3.64) or a V3 ``io.ComfyNode`` with list inputs,
  bucket and bypass modes (0.33). This pack's trainer (nodes/lora_trainer.py) is its own sampler on
  the native building blocks in ``training``; the node declares 0.33's inputs on every version and
  :func:`trainer_features` says which of them this ComfyUI's trainer has.

Nothing here imports the rest of this pack (the runner loads this package on its own, by path), and
no ComfyUI module is imported before it is needed, so the package can be loaded before ComfyUI has
parsed its arguments.
"""
from __future__ import annotations

from .runtime import (  # Public node-API helpers (re-exported so nodes/ has one place to import ComfyUI from)
    progress_bar, throw_if_interrupted, intermediate_device, native_noise_mask_as_sampled, native_category,
    empty_latent_mean,
)
from .prompt_queue import (  # Prompt queue and worker (the embedded runner)
    route_handler, post_prompt, prompt_worker_thread, interrupt_processing, object_info, node_replacements,
    call_route, history_entry, start_comfyui, route_events, RequestPartMissing,
)
from .sampling import (  # Sampler wrappers and the denoise-mask function (WanMaskSamplerPatch)
    wan_base_model, install_sampler_patch, OUTER_SAMPLE_ARGS, bind_outer_sample, call_outer_sample,
    guider_prepares_mask_before_wrappers, raw_denoise_mask, prepare_mask, wan_model_facts, model_class_name,
    step_schedule, guider_model, guider_conds, load_device,
)
from .vae import (  # comfy.sd.VAE wiring (WanMaskVAELoader / Decode / Encode)
    should_use_bf16, read_vae_file, native_vae, wire_vae, load_vae_for, vae_model, vae_device, vae_latent_channels,
    native_vae_weights, vae_dtype, copy_vae, remembered, remember, native_memory_estimate,
)
from .training import (  # LoRA training building blocks (WanMaskTrainLoRA)
    native_train_module, node_inputs_v1, native_trainer_inputs, string_to_dtype, load_lora_for_inference,
    is_trained_now, trained_adapters_disabled, load_existing_lora, add_lora_adapters, make_optimizer,
    checkpointing_modules, checkpoint_patch, checkpoint_unpatch, make_train_guider, sampler_base,
    random_noise, detach_conds, batch_extra_args, training_state, load_for_training, clone_for_training,
    trainer_features, fp16_accumulation_enabled,
    model_dtype, prepare_base_for_training, set_bypass, TrainingModel,
)
from .datasets import (  # Training sets from folders (WanMaskTrainingSet)
    input_directory, output_directory, input_subfolders, dataset_cache_root, vae_spatial_stride,
    vae_state_dict, clip_state_dict, encode_caption,
)
from .context_windows import (  # Context windows (WanMaskContextWindows; the sampler patch's check of native windows)
    native_context_windows_nodes, native_wan_context_windows_schema, native_wan_context_handler,
    context_handler_settings, WanMaskContextHandler, install_context_windows, native_window_slicing,
)
from .native_wan import (  # Native Wan conditioning nodes, probed by behaviour (README, warnings, tests)
    native_animate_mask_slot_shift, ANIMATE_SLOT_SHIFT_SAME_SLOT, ANIMATE_SLOT_SHIFT_CAUSAL,
)
from .self_check import (  # Self check
    self_check,
)
