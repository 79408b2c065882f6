"""The masked-loss training loop, independent of any trainer framework (pure torch).

Each step draws ``batch_size`` items of the dataset and a sigma per item, as ComfyUI's native
trainer does (indices from ``randperm`` and sigmas from ``rand`` on one generator seeded with
``seed``, so runs repeat), noises the items, asks the model for its prediction, and reduces the
unreduced loss with the loss weights of the same items (:func:`masked_training_loss`). With prior
preservation a teacher prediction (the base model, adapters off) is taken first, without grad.
Gradients accumulate over ``grad_accumulation`` steps before each optimizer step.

Everything model-specific comes in as callables, so the ComfyUI node only wires its guider, noise
and sigma functions into :meth:`MaskedLossLoop.run` (one latent tensor of one shape) or
:meth:`MaskedLossLoop.run_buckets` (items of several shapes grouped by :func:`buckets.bucket_items`;
a bucket and its items per step as native's bucket mode, see :class:`buckets.BucketDraws`; the set
stays on the CPU and only each step's batch moves to the training device).

Shapes: latents [N, C, T, h, w]; raw weights [N, 1, T, h, w]; a batch [B, C, T, h, w].
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Callable, Sequence

import torch

from .buckets import Bucket, BucketDraw, BucketDraws
from .loss import MaskLossSettings
from .step_loss import elementwise_loss, masked_training_loss

Predict = Callable[[torch.Tensor, torch.Tensor, list[int]], torch.Tensor]
"""``predict(x_t [B,C,T,h,w], sigmas [B], item indices) -> prediction [B,C,T,h,w]``."""


@dataclass
class MaskedLossLoop:
    """Args:
        weights: [N, 1, T, h, w] raw loss weights, one per dataset item (gamma / floor are applied
            by the reducer, see :class:`MaskLossSettings`); None with :meth:`run_buckets` (the buckets
            carry their weights).
        settings: the masked-loss settings.
        loss_function: "MSE", "L1", "Huber" or "SmoothL1" (unreduced, see :func:`elementwise_loss`).
        batch_size: items per step (at most N; in bucket mode a smaller bucket gives all its items).
        grad_accumulation: steps per optimizer step.
        total_steps: steps to run (native: steps * grad_accumulation).
        seed: seeds the item and sigma draws.

    After a run, ``drawn_indices`` holds the item indices of every step (global indices in bucket
    mode) and, in bucket mode, ``drawn`` their item names.
    """

    weights: torch.Tensor | None
    settings: MaskLossSettings
    loss_function: str = "MSE"
    batch_size: int = 1
    grad_accumulation: int = 1
    total_steps: int = 16
    seed: int = 0
    curves: dict[str, list[float]] = field(default_factory=lambda: {"loss": [], "target_loss": [], "prior_loss": []})
    drawn: list[list[str]] = field(default_factory=list)
    drawn_indices: list[list[int]] = field(default_factory=list)

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

        The item indices of every step are appended to ``self.drawn_indices``.
        """
        if self.weights is None:
            raise ValueError("weights: no loss weights for the latents. Fix: build the loop with the [N,1,T,h,w] "
                             "weights of these latents, or train buckets with run_buckets.")
        if latents.shape[0] != self.weights.shape[0]:
            raise ValueError(f"loss weights for {self.weights.shape[0]} items, {latents.shape[0]} latent items. "
                             f"Fix: give one loss-weight grid per latent item.")
        self._check_teacher(teacher)
        weights = self.weights.to(latents.device)

        def steps():
            for step, idx, sigma_values in self.draws(latents.shape[0], percent_to_sigma):
                self.drawn_indices.append(idx)
                yield step, idx, sigma_values, lambda idx=idx: (latents[idx], weights[idx])

        return self._train(steps(), predict, noise, noise_scaling, backward, optimizer_step, teacher,
                           before_step, after_step)

    def run_buckets(self, buckets: list[Bucket], *, device: torch.device | str, predict: Predict,
                    noise: Callable[[int, torch.Tensor], torch.Tensor], percent_to_sigma: Callable[[float], float],
                    noise_scaling: Callable[[torch.Tensor, torch.Tensor, torch.Tensor], torch.Tensor],
                    backward: Callable[[torch.Tensor], None], optimizer_step: Callable[[], None],
                    teacher: Predict | None = None, before_step: Callable[[], None] | None = None,
                    after_step: Callable[[], None] | None = None,
                    draws: Sequence[BucketDraw] | None = None) -> dict[str, list[float]]:
        """Train on buckets of items (see :func:`bucket_items`) for ``total_steps`` steps; returns the loss curves.

        Each step draws a bucket and its items with :class:`BucketDraws` (seeded with ``seed``) and moves
        ONLY that batch (latents [B,C,T,h,w] and weights [B,1,T,h,w]) to ``device``; the buckets stay where
        they are. ``predict``, ``teacher`` get the GLOBAL item indices (bucket offset + index inside the
        bucket: the index into the conditionings flattened bucket after bucket). The other callables are
        those of :meth:`run`. ``self.weights`` is not used (it may be None).

        Args:
            buckets: the training set, e.g. from :func:`bucket_items`.
            device: where the batch goes (the model's device).
            draws: replay these draws instead of the seeded ones, one per step (``len(draws)`` must be
                ``total_steps``); each must fit the buckets (:meth:`BucketDraws.check`).

        The item names and global indices of every step are appended to ``self.drawn`` and
        ``self.drawn_indices``.
        """
        if not buckets:
            raise ValueError("buckets: no buckets to train on. Fix: give at least one bucket of items (bucket_items).")
        for b in buckets:
            if b.latents.shape[0] != b.size or b.weights.shape[0] != b.size:
                raise ValueError(f"bucket {b.key}: {b.size} names, latents {list(b.latents.shape)}, weights "
                                 f"{list(b.weights.shape)}. Fix: build the buckets with bucket_items.")
        self._check_teacher(teacher)
        seeded = BucketDraws([b.size for b in buckets], self.batch_size, self.seed)
        if draws is not None:
            if len(draws) != self.total_steps:
                raise ValueError(f"draws: {len(draws)} draws for total_steps {self.total_steps}. Fix: give one draw "
                                 f"per step.")
            for step, draw in enumerate(draws):
                seeded.check(draw, step)
        plan = seeded if draws is None else draws

        def steps():
            for step, (bucket, relative, indices, percents) in zip(range(self.total_steps), plan):
                b = buckets[bucket]
                self.drawn.append([b.names[r] for r in relative])
                self.drawn_indices.append(list(indices))
                yield step, list(indices), [percent_to_sigma(p) for p in percents], \
                    lambda b=b, r=relative: (b.latents[r].to(device), b.weights[r].to(device))

        return self._train(steps(), predict, noise, noise_scaling, backward, optimizer_step, teacher,
                           before_step, after_step)

    def _check_teacher(self, teacher: Predict | None) -> None:
        if self.settings.uses_prior and teacher is None:
            raise ValueError("teacher: prior_preservation_weight > 0 needs the base model's prediction. "
                             "Fix: pass the teacher, or set prior_preservation_weight to 0.")

    def _train(self, steps, predict, noise, noise_scaling, backward, optimizer_step, teacher, before_step,
               after_step) -> dict[str, list[float]]:
        """The step loop shared by :meth:`run` and :meth:`run_buckets`: ``steps`` yields (step, item
        indices, sigma values, fetch) with ``fetch() -> (x0 [B,C,T,h,w], raw weights [B,1,T,h,w])`` on the
        training device."""
        for step, idx, sigma_values, fetch in steps:
            if before_step is not None:
                before_step()
            x0, batch_weights = fetch()
            eps = noise(step, x0).to(x0.device)
            sigmas = torch.tensor(sigma_values, device=x0.device)
            xt = noise_scaling(sigmas, eps, x0)
            target = noise_scaling(torch.zeros_like(sigmas), torch.zeros_like(eps), x0)
            prior = None
            if self.settings.uses_prior:
                with torch.no_grad():
                    prior = teacher(xt, sigmas, idx).detach()
            loss, stats = masked_training_loss(predict(xt, sigmas, idx), target, batch_weights, self.settings,
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
