"""The masked-loss training loop of the core (masking/train_steps.py), on a toy model: it draws
items and sigmas as native does and reproducibly, accumulates gradients, learns only where the
weights say so, and runs the teacher only with prior preservation."""
import pytest
import torch

from comfyui_wanmasking.masking.mask_loss import MaskLossSettings
from comfyui_wanmasking.masking.train_steps import MaskedLossLoop, optimizer_step


class Toy(torch.nn.Module):
    """Predicts x0 from x_t with one learnable per-cell offset: prediction = x_t * 0 + bias."""

    def __init__(self, shape):
        super().__init__()
        self.bias = torch.nn.Parameter(torch.zeros(shape))

    def forward(self, xt):
        return xt * 0 + self.bias


def _run(weights, settings=MaskLossSettings(), steps=40, grad_acc=1, batch=2, seed=3, teacher=None):
    latents = torch.ones(3, 2, 2, 4, 4)
    model = Toy(latents.shape[1:])
    opt = torch.optim.SGD(model.parameters(), lr=16.0)
    calls = {"opt": 0, "teacher": 0, "before": 0}

    def step():
        calls["opt"] += 1
        optimizer_step(opt)

    def teach(xt, sigmas, idx):
        calls["teacher"] += 1
        assert not torch.is_grad_enabled()
        return teacher(xt) if teacher else torch.zeros_like(xt)

    loop = MaskedLossLoop(weights, settings, "MSE", batch, grad_acc, steps, seed)
    curves = loop.run(latents, predict=lambda xt, s, idx: model(xt), teacher=teach,
                      noise=lambda step, x0: torch.randn(x0.shape, generator=torch.Generator().manual_seed(step)),
                      percent_to_sigma=lambda p: 1.0 - p, noise_scaling=lambda s, eps, x0: s.view(-1, 1, 1, 1, 1) * eps + (1 - s.view(-1, 1, 1, 1, 1)) * x0,
                      backward=lambda loss: loss.backward(), optimizer_step=step,
                      before_step=lambda: calls.__setitem__("before", calls["before"] + 1))
    return model, curves, calls, loop


def test_learns_inside_the_weights_only():
    weights = torch.zeros(3, 1, 2, 4, 4)
    weights[..., :2] = 1.0  # left half of every frame is trained, the right half has weight 0
    model, curves, calls, _ = _run(weights)
    assert torch.allclose(model.bias[..., :2], torch.ones_like(model.bias[..., :2]), atol=1e-3)
    assert torch.equal(model.bias[..., 2:], torch.zeros_like(model.bias[..., 2:]))
    assert curves["loss"][-1] < curves["loss"][0] * 1e-3
    assert calls == {"opt": 40, "teacher": 0, "before": 40}


def test_gradient_accumulation_steps_the_optimizer_every_k_steps():
    _, curves, calls, _ = _run(torch.ones(3, 1, 2, 4, 4), steps=12, grad_acc=4)
    assert calls["opt"] == 3 and len(curves["loss"]) == 12


def test_draws_repeat_with_the_seed_and_change_with_it():
    loop = MaskedLossLoop(torch.ones(5, 1, 1, 1, 1), MaskLossSettings(), batch_size=2, total_steps=6, seed=7)
    a = [(idx, s) for _, idx, s in loop.draws(5, lambda p: p)]
    b = [(idx, s) for _, idx, s in loop.draws(5, lambda p: p)]
    loop.seed = 8
    c = [(idx, s) for _, idx, s in loop.draws(5, lambda p: p)]
    assert a == b and a != c
    assert all(len(idx) == 2 and len(set(idx)) == 2 and all(0 <= i < 5 for i in idx) for idx, _ in a)
    # the native trainer's order on one generator: randperm, then one rand per item
    rng = torch.Generator().manual_seed(7)
    first = torch.randperm(5, generator=rng)[:2].tolist()
    assert a[0] == (first, [torch.rand((1,), generator=rng).item() for _ in first])


def test_teacher_runs_only_with_prior_preservation_and_pulls_outside_the_mask():
    weights = torch.zeros(3, 1, 2, 4, 4)
    weights[..., :2] = 1.0
    settings = MaskLossSettings(prior_weight=1.0)
    model, curves, calls, _ = _run(weights, settings, teacher=lambda xt: torch.full_like(xt, -1.0))
    assert calls["teacher"] == 40
    assert torch.allclose(model.bias[..., 2:], torch.full_like(model.bias[..., 2:], -1.0), atol=1e-3)
    assert torch.allclose(model.bias[..., :2], torch.ones_like(model.bias[..., :2]), atol=1e-3)
    assert max(curves["prior_loss"][-5:]) < 1e-5


def test_bad_settings_are_refused():
    with pytest.raises(ValueError, match="grad_accumulation_steps"):
        MaskedLossLoop(torch.ones(1, 1, 1, 1, 1), MaskLossSettings(), grad_accumulation=0)
    with pytest.raises(ValueError, match="loss_function"):
        MaskedLossLoop(torch.ones(1, 1, 1, 1, 1), MaskLossSettings(), loss_function="Cosine")
    loop = MaskedLossLoop(torch.ones(2, 1, 1, 1, 1), MaskLossSettings())
    with pytest.raises(ValueError, match="2 items, 3 latent"):
        loop.run(torch.ones(3, 1, 1, 1, 1), predict=None, noise=None, percent_to_sigma=None, noise_scaling=None,
                 backward=None, optimizer_step=None)
