"""The masked-loss training loop, independent of any trainer framework (pure torch).

Each step draws ``batch_size`` items of the dataset and a sigma per item, as ComfyUI's native
trainer does (indices from ``randperm`` and sigmas from ``rand`` on one generator seeded with
``seed``, so runs repeat), noises the items, asks the model for its prediction, and reduces the
unreduced loss with the loss weights of the same items (:func:`masked_training_loss`). With prior
preservation a teacher prediction (the base model, adapters off) is taken first, without grad.
Gradients accumulate over ``grad_accumulation`` steps before each optimizer step.

Everything model-specific comes in as callables, so the ComfyUI node only wires its guider, noise
and sigma functions into :meth:`MaskedLossLoop.run`.

Shapes: latents [N, C, T, h, w]; raw weights [N, 1, T, h, w]; a batch [B, C, T, h, w].
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Callable

import torch

from .mask_loss import MaskLossSettings
from .training import elementwise_loss, masked_training_loss

Predict = Callable[[torch.Tensor, torch.Tensor, list[int]], torch.Tensor]
"""``predict(x_t [B,C,T,h,w], sigmas [B], item indices) -> prediction [B,C,T,h,w]``."""


@dataclass
class MaskedLossLoop:
    """Args:
        weights: [N, 1, T, h, w] raw loss weights, one per dataset item (gamma / floor are applied
            by the reducer, see :class:`MaskLossSettings`).
        settings: the masked-loss settings.
        loss_function: "MSE", "L1", "Huber" or "SmoothL1" (unreduced, see :func:`elementwise_loss`).
        batch_size: items per step (at most N).
        grad_accumulation: steps per optimizer step.
        total_steps: steps to run (native: steps * grad_accumulation).
        seed: seeds the item and sigma draws.
    """

    weights: torch.Tensor
    settings: MaskLossSettings
    loss_function: str = "MSE"
    batch_size: int = 1
    grad_accumulation: int = 1
    total_steps: int = 16
    seed: int = 0
    curves: dict[str, list[float]] = field(default_factory=lambda: {"loss": [], "target_loss": [], "prior_loss": []})

    def __post_init__(self):
        self.loss_fn = elementwise_loss(self.loss_function)
        if self.batch_size < 1 or self.grad_accumulation < 1 or self.total_steps < 0:
            raise ValueError(f"batch_size {self.batch_size}, grad_accumulation_steps {self.grad_accumulation} and "
                             f"steps {self.total_steps}: need at least 1 item and 1 accumulation step.")

    def draws(self, n_items: int, percent_to_sigma: Callable[[float], float]):
        """Yield (step, item indices, sigmas [B] as floats) for every step, reproducibly from ``seed``."""
        rng = torch.Generator().manual_seed(self.seed)
        for step in range(self.total_steps):
            idx = torch.randperm(n_items, generator=rng)[:self.batch_size].tolist()
            yield step, idx, [percent_to_sigma(torch.rand((1,), generator=rng).item()) for _ in idx]

    def run(self, latents: torch.Tensor, *, predict: Predict, noise: Callable[[int, torch.Tensor], torch.Tensor],
            percent_to_sigma: Callable[[float], float],
            noise_scaling: Callable[[torch.Tensor, torch.Tensor, torch.Tensor], torch.Tensor],
            backward: Callable[[torch.Tensor], None], optimizer_step: Callable[[], None],
            teacher: Predict | None = None, before_step: Callable[[], None] | None = None,
            after_step: Callable[[], None] | None = None) -> dict[str, list[float]]:
        """Train for ``total_steps`` steps; returns the loss curves (total, target and prior loss per step).

        Args:
            latents: [N, C, T, h, w] clean latents of the dataset.
            predict: the trained model's prediction (with grad).
            noise: ``noise(step, x0) -> eps`` with x0's shape (seeded per step by the caller).
            percent_to_sigma: the model's sigma at a fraction of the schedule.
            noise_scaling: ``noise_scaling(sigmas [B], eps, x0) -> x_t``; with sigma 0 and eps 0 it gives
                the prediction target.
            backward: backpropagates one (already accumulation-scaled) loss, e.g. through a GradScaler.
            optimizer_step: one optimizer step (and zero_grad), after every ``grad_accumulation`` steps.
            teacher: the base model's prediction, called under ``torch.no_grad`` when prior preservation
                is on (``settings.uses_prior``).
            before_step / after_step: called around every step (interrupt checks, progress).
        """
        if latents.shape[0] != self.weights.shape[0]:
            raise ValueError(f"loss weights for {self.weights.shape[0]} items, {latents.shape[0]} latent items.")
        if self.settings.uses_prior and teacher is None:
            raise ValueError("teacher: prior_preservation_weight > 0 needs the base model's prediction.")
        weights = self.weights.to(latents.device)
        for step, idx, sigma_values in self.draws(latents.shape[0], percent_to_sigma):
            if before_step is not None:
                before_step()
            x0 = latents[idx]
            eps = noise(step, x0).to(x0.device)
            sigmas = torch.tensor(sigma_values, device=x0.device)
            xt = noise_scaling(sigmas, eps, x0)
            target = noise_scaling(torch.zeros_like(sigmas), torch.zeros_like(eps), x0)
            prior = None
            if self.settings.uses_prior:
                with torch.no_grad():
                    prior = teacher(xt, sigmas, idx).detach()
            loss, stats = masked_training_loss(predict(xt, sigmas, idx), target, weights[idx], self.settings,
                                               self.loss_fn, prior)
            backward(loss / self.grad_accumulation)
            self.curves["loss"].append(loss.item())
            self.curves["target_loss"].append(stats["target"])
            self.curves["prior_loss"].append(stats["prior"])
            if (step + 1) % self.grad_accumulation == 0:
                optimizer_step()
            if after_step is not None:
                after_step()
        return self.curves


def optimizer_step(optimizer: torch.optim.Optimizer, grad_scaler: torch.amp.GradScaler | None = None) -> None:
    """One optimizer step as ComfyUI's trainer takes it: gradients cast to their parameter's dtype
    (adapters may train in another dtype than the autocast compute), through the GradScaler when
    there is one (fp16), then ``zero_grad``."""
    if grad_scaler is not None:
        grad_scaler.unscale_(optimizer)
    for group in optimizer.param_groups:
        for p in group["params"]:
            if p.grad is not None:
                p.grad.data = p.grad.data.to(p.data.dtype)
    if grad_scaler is not None:
        grad_scaler.step(optimizer)
        grad_scaler.update()
    else:
        optimizer.step()
    optimizer.zero_grad()
