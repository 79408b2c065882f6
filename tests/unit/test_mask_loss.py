"""The masked loss reducer: weighted-mean normalization, per-sample mode, prior preservation
(continuous and threshold), the training-step helper and every validation message."""
import logging

import pytest
import torch

from comfyui_wanmasking.masking.training.loss import MaskLossSettings, masked_loss, region_masks, weighted_mean
from comfyui_wanmasking.masking.training.step_loss import LOSS_FUNCTIONS, elementwise_loss, masked_training_loss


def rand(*shape, seed=0):
    return torch.rand(*shape, generator=torch.Generator().manual_seed(seed))


# ---- normalization ---------------------------------------------------------------------------

def test_global_weighted_mean_is_normalized_by_the_weight_sum():
    loss = rand(2, 4, 3, 5, 5)
    w = rand(2, 1, 3, 5, 5, seed=1)
    out, _ = masked_loss(loss, w, MaskLossSettings())
    expected = (loss * w).sum() / (w.expand_as(loss).sum())
    assert out.item() == pytest.approx(expected.item(), rel=1e-6)


def test_full_weight_equals_the_plain_mean():
    loss = rand(2, 16, 3, 4, 4)
    out, _ = masked_loss(loss, torch.ones(2, 1, 3, 4, 4), MaskLossSettings())
    assert out.item() == pytest.approx(loss.mean().item(), rel=1e-6)


def test_loss_scale_does_not_depend_on_mask_area():
    """The same per-cell error gives the same loss whether the mask covers 1 cell or 20."""
    loss = torch.full((1, 4, 1, 5, 5), 0.3)
    small, large = torch.zeros(1, 1, 1, 5, 5), torch.zeros(1, 1, 1, 5, 5)
    small[..., 0, 0] = 1
    large[..., :4, :] = 1
    a, _ = masked_loss(loss, small, MaskLossSettings())
    b, _ = masked_loss(loss, large, MaskLossSettings())
    assert a.item() == pytest.approx(0.3) and b.item() == pytest.approx(0.3)


def test_zero_weight_cells_do_not_contribute():
    loss = torch.zeros(1, 2, 1, 2, 2)
    loss[..., 1, 1] = 100.0
    w = torch.ones(1, 1, 1, 2, 2)
    w[..., 1, 1] = 0
    out, _ = masked_loss(loss, w, MaskLossSettings())
    assert out.item() == 0.0


def test_gamma_and_floor_are_applied_to_raw_weights():
    loss = torch.tensor([1.0, 0.0]).reshape(1, 1, 1, 1, 2)
    raw = torch.tensor([0.0, 1.0]).reshape(1, 1, 1, 1, 2)
    out, stats = masked_loss(loss, raw, MaskLossSettings(min_weight=0.2))
    assert out.item() == pytest.approx(0.2 / 1.2)                  # weights 0.2 and 1.0
    raw = torch.tensor([0.25, 1.0]).reshape(1, 1, 1, 1, 2)
    out, _ = masked_loss(loss, raw, MaskLossSettings(gamma=2.0))
    assert out.item() == pytest.approx(0.0625 / 1.0625)


def test_per_sample_normalization_averages_sample_means():
    loss = torch.zeros(2, 1, 1, 2, 2)
    loss[0] = 1.0
    loss[1] = 3.0
    w = torch.zeros(2, 1, 1, 2, 2)
    w[0, ..., 0, 0] = 1           # sample 0: 1 cell
    w[1] = 1                      # sample 1: 4 cells
    glob, _ = masked_loss(loss, w, MaskLossSettings())
    per, _ = masked_loss(loss, w, MaskLossSettings(normalize_per_sample=True))
    assert glob.item() == pytest.approx((1 * 1 + 3 * 4) / 5)
    assert per.item() == pytest.approx((1 + 3) / 2)


def test_per_sample_zero_weight_sample_counts_as_zero():
    loss = torch.ones(2, 1, 1, 2, 2) * 2.0
    w = torch.zeros(2, 1, 1, 2, 2)
    w[0] = 1
    out, _ = masked_loss(loss, w, MaskLossSettings(normalize_per_sample=True))
    assert out.item() == pytest.approx(1.0)  # (2 + 0) / 2


def test_all_zero_weights_give_zero_with_a_warning_and_keep_the_graph(caplog):
    pred = torch.ones(1, 2, 1, 2, 2, requires_grad=True)
    with caplog.at_level(logging.WARNING, logger="WanMasking"):
        out, _ = masked_loss(pred * 2, torch.zeros(1, 1, 1, 2, 2), MaskLossSettings())
    assert out.item() == 0.0 and "All loss weights are zero" in caplog.text
    out.backward()
    assert pred.grad.abs().sum() == 0


def test_gradient_outside_a_zero_weight_mask_is_zero():
    pred = rand(1, 4, 2, 4, 4).requires_grad_()
    target = torch.zeros(1, 4, 2, 4, 4)
    w = torch.zeros(1, 1, 2, 4, 4)
    w[..., :2, :] = 1
    out, _ = masked_training_loss(pred, target, w, MaskLossSettings(), elementwise_loss("MSE"))
    out.backward()
    assert pred.grad[..., 2:, :].abs().max() == 0
    assert pred.grad[..., :2, :].abs().min() > 0


def test_4d_image_loss_with_3d_weights():
    loss = rand(2, 4, 3, 3)
    w = rand(2, 3, 3, seed=2)
    out, _ = masked_loss(loss, w, MaskLossSettings())
    assert out.item() == pytest.approx(((loss * w[:, None]).sum() / (w.sum() * 4)).item(), rel=1e-6)


def test_shape_mismatch_is_an_error():
    with pytest.raises(ValueError, match=r"loss weights: shape \[1, 1, 2, 4, 4\] does not match the loss "
                                         r"\[1, 4, 3, 4, 4\]"):
        masked_loss(torch.ones(1, 4, 3, 4, 4), torch.ones(1, 1, 2, 4, 4), MaskLossSettings())
    with pytest.raises(ValueError, match=r"expected an unreduced loss"):
        masked_loss(torch.ones(4, 4), torch.ones(4, 4), MaskLossSettings())


# ---- prior preservation ----------------------------------------------------------------------

def test_continuous_prior_mask_is_one_minus_processed_weight():
    raw = torch.tensor([0.0, 0.5, 1.0])
    target, prior = region_masks(raw, MaskLossSettings(prior_weight=1.0, min_weight=0.1))
    assert torch.allclose(target, torch.tensor([0.1, 0.55, 1.0]))
    assert torch.allclose(prior, torch.tensor([0.9, 0.45, 0.0]))


def test_threshold_prior_uses_the_raw_mask_and_removes_overlap():
    raw = torch.tensor([0.0, 0.05, 0.2, 1.0])
    target, prior = region_masks(raw, MaskLossSettings(prior_weight=1.0, prior_threshold=0.1, min_weight=0.3))
    assert prior.tolist() == [1.0, 1.0, 0.0, 0.0]
    assert target[:2].tolist() == [0.0, 0.0]                       # no target weight where the prior applies
    assert torch.allclose(target[2:], torch.tensor([0.2 * 0.7 + 0.3, 1.0]))
    assert (target * prior).sum() == 0


def test_continuous_mode_overlaps_by_design():
    raw = torch.tensor([0.5])
    target, prior = region_masks(raw, MaskLossSettings(prior_weight=1.0))
    assert target.item() == 0.5 and prior.item() == 0.5


def test_no_prior_mask_when_prior_is_off():
    _, prior = region_masks(torch.rand(4), MaskLossSettings())
    assert prior is None


def test_total_is_target_plus_weighted_prior_region_means():
    loss = torch.tensor([2.0, 4.0]).reshape(1, 1, 1, 1, 2)
    prior_loss = torch.tensor([8.0, 16.0]).reshape(1, 1, 1, 1, 2)
    raw = torch.tensor([1.0, 0.0]).reshape(1, 1, 1, 1, 2)
    out, stats = masked_loss(loss, raw, MaskLossSettings(prior_weight=0.5), prior_loss)
    # target region: cell 0 (w=1) -> 2.0; prior region: cell 1 (1-w=1) -> 16.0, times 0.5
    assert stats["target"] == pytest.approx(2.0) and stats["prior"] == pytest.approx(8.0)
    assert out.item() == pytest.approx(10.0)


def test_prior_weight_is_an_independent_knob():
    loss, prior_loss = rand(2, 3, 2, 4, 4), rand(2, 3, 2, 4, 4, seed=5)
    raw = rand(2, 1, 2, 4, 4, seed=6)
    base, _ = masked_loss(loss, raw, MaskLossSettings())
    one, s1 = masked_loss(loss, raw, MaskLossSettings(prior_weight=1.0), prior_loss)
    two, s2 = masked_loss(loss, raw, MaskLossSettings(prior_weight=2.0), prior_loss)
    assert one.item() == pytest.approx(base.item() + s1["prior"], rel=1e-6)
    assert s2["prior"] == pytest.approx(2 * s1["prior"], rel=1e-6)
    assert two.item() - base.item() == pytest.approx(2 * (one.item() - base.item()), rel=1e-5)


def test_prior_per_sample_normalization():
    loss = torch.zeros(2, 1, 1, 1, 2)
    prior_loss = torch.tensor([[1.0, 1.0], [5.0, 5.0]]).reshape(2, 1, 1, 1, 2)
    raw = torch.tensor([[0.0, 1.0], [0.0, 0.0]]).reshape(2, 1, 1, 1, 2)  # prior: 1 cell, then 2 cells
    s = MaskLossSettings(prior_weight=1.0, prior_threshold=0.5, normalize_per_sample=True)
    out, _ = masked_loss(loss, raw, s, prior_loss)
    assert out.item() == pytest.approx((1.0 + 5.0) / 2)
    s = MaskLossSettings(prior_weight=1.0, prior_threshold=0.5)
    out, _ = masked_loss(loss, raw, s, prior_loss)
    assert out.item() == pytest.approx((1.0 + 5.0 + 5.0) / 3)


def test_empty_prior_region_adds_nothing():
    loss, prior_loss = torch.ones(1, 1, 1, 2, 2), torch.full((1, 1, 1, 2, 2), 9.0)
    out, stats = masked_loss(loss, torch.ones(1, 1, 1, 2, 2), MaskLossSettings(prior_weight=1.0), prior_loss)
    assert out.item() == pytest.approx(1.0) and stats["prior"] == 0.0


def test_prior_needs_the_teacher_loss():
    with pytest.raises(ValueError, match=r"prior_loss: prior_preservation_weight > 0 needs the loss to the teacher"):
        masked_loss(torch.ones(1, 1, 1, 2, 2), torch.ones(1, 1, 1, 2, 2), MaskLossSettings(prior_weight=1.0))
    with pytest.raises(ValueError, match=r"prior_loss: shape \[1, 1, 1, 2, 3\] does not match"):
        masked_loss(torch.ones(1, 1, 1, 2, 2), torch.ones(1, 1, 1, 2, 2), MaskLossSettings(prior_weight=1.0),
                    torch.ones(1, 1, 1, 2, 3))


# ---- the training step helper ----------------------------------------------------------------

def test_training_loss_pulls_outside_toward_the_teacher():
    pred = torch.zeros(1, 1, 1, 1, 2, requires_grad=True)
    target = torch.tensor([1.0, 1.0]).reshape(1, 1, 1, 1, 2)
    teacher = torch.tensor([0.0, -1.0]).reshape(1, 1, 1, 1, 2)
    raw = torch.tensor([1.0, 0.0]).reshape(1, 1, 1, 1, 2)
    out, _ = masked_training_loss(pred, target, raw, MaskLossSettings(prior_weight=1.0),
                                  elementwise_loss("MSE"), teacher)
    out.backward()
    g = pred.grad.flatten()
    assert g[0] < 0          # inside: move up toward the target 1
    assert g[1] > 0          # outside: move down toward the teacher -1, not toward the target


def test_training_loss_requires_a_teacher_with_prior():
    with pytest.raises(ValueError, match=r"teacher: prior_preservation_weight > 0 needs the base model's prediction"):
        masked_training_loss(torch.zeros(1, 1, 1, 1, 1), torch.zeros(1, 1, 1, 1, 1), torch.ones(1, 1, 1, 1, 1),
                             MaskLossSettings(prior_weight=1.0), elementwise_loss("MSE"))


def test_training_loss_rejects_prediction_target_mismatch():
    with pytest.raises(ValueError, match=r"prediction \[1, 1, 1, 1, 2\] and target \[1, 1, 1, 1, 1\] differ"):
        masked_training_loss(torch.zeros(1, 1, 1, 1, 2), torch.zeros(1, 1, 1, 1, 1), torch.ones(1, 1, 1, 1, 2),
                             MaskLossSettings(), elementwise_loss("MSE"))


@pytest.mark.parametrize("kind,module", [("MSE", torch.nn.MSELoss), ("L1", torch.nn.L1Loss),
                                         ("Huber", torch.nn.HuberLoss), ("SmoothL1", torch.nn.SmoothL1Loss)])
def test_elementwise_losses_match_torch_with_full_weight(kind, module):
    pred, target = rand(1, 2, 2, 3, 3) * 4, rand(1, 2, 2, 3, 3, seed=3)
    out, _ = masked_training_loss(pred, target, torch.ones(1, 1, 2, 3, 3), MaskLossSettings(), elementwise_loss(kind))
    assert out.item() == pytest.approx(module()(pred, target).item(), rel=1e-6)


def test_unknown_loss_function_is_an_error():
    with pytest.raises(ValueError, match=r"loss_function: unknown 'L3'; choose one of MSE, L1, Huber, SmoothL1"):
        elementwise_loss("L3")
    assert set(LOSS_FUNCTIONS) == {"MSE", "L1", "Huber", "SmoothL1"}


# ---- validation and banner ---------------------------------------------------------------------

@pytest.mark.parametrize("kwargs,match", [
    ({"gamma": 0.0}, r"gamma must be > 0, got 0.0"),
    ({"gamma": -2.0}, r"gamma must be > 0, got -2.0"),
    ({"min_weight": -0.1}, r"min_weight must be in range \[0, 1\), got -0.1"),
    ({"min_weight": 1.0}, r"min_weight must be in range \[0, 1\), got 1.0"),
    ({"prior_weight": -0.5}, r"prior_preservation_weight must be >= 0, got -0.5"),
    ({"prior_weight": 1.0, "prior_threshold": 0.0}, r"prior_mask_threshold must be in range \(0, 1\), got 0.0"),
    ({"prior_weight": 1.0, "prior_threshold": 1.0}, r"prior_mask_threshold must be in range \(0, 1\), got 1.0"),
    ({"prior_threshold": -0.2}, r"prior_mask_threshold must be in range \(0, 1\), got -0.2"),
])
def test_every_validation_message(kwargs, match):
    with pytest.raises(ValueError, match=match):
        MaskLossSettings(**kwargs)


@pytest.mark.parametrize("kwargs,prior_mask", [
    ({"gamma": 1e-3, "min_weight": 0.0, "prior_weight": 0.0, "prior_threshold": None}, "none"),
    ({"min_weight": 0.999}, "none"),
    ({"prior_weight": 1.0, "prior_threshold": 0.999}, "some"),
    ({"prior_weight": 1.0, "prior_threshold": 1e-3}, "none"),
])
def test_valid_boundaries(kwargs, prior_mask):
    """Values at the edge of each allowed range are accepted as given, and the loss they give is finite;
    a threshold just under 1 puts (almost) every pixel of a random mask in the prior region, one just
    over 0 none."""
    settings = MaskLossSettings(**kwargs)
    for name, value in kwargs.items():
        assert getattr(settings, name) == value, name
    raw = rand(1, 1, 2, 3, 3, seed=1) * 0.99 + 0.005  # inside (1e-3, 0.999)
    out, stats = masked_loss(rand(1, 4, 2, 3, 3), raw, settings, prior_loss=rand(1, 4, 2, 3, 3, seed=2))
    assert torch.isfinite(out) and out.item() > 0.0
    assert (stats["prior_mask_mean"] > 0.0) == (prior_mask == "some")
    if settings.min_weight:
        assert stats["target_mask_mean"] >= settings.min_weight


def test_warnings_for_valid_but_risky_settings():
    text = " | ".join(MaskLossSettings(prior_weight=1.0, min_weight=0.1).warnings())
    assert "shrinks the prior region" in text and "without normalize_per_sample" in text
    assert "has no effect" in " ".join(MaskLossSettings(prior_threshold=0.1, min_weight=0.05).warnings())
    assert "phantom limbs" in " ".join(MaskLossSettings().warnings())
    assert MaskLossSettings(prior_weight=1.0, normalize_per_sample=True).warnings() == []


def test_banner_states_the_active_settings():
    b = MaskLossSettings(gamma=0.7, prior_weight=1.0, prior_threshold=0.1, normalize_per_sample=True).banner()
    assert "MASKED PRIOR PRESERVATION TRAINING ENABLED" in b
    for line in ("min_weight: 0.0", "gamma: 0.7", "prior_preservation_weight: 1.0",
                 "prior_mask_threshold: 0.1 (threshold mode)", "normalize_per_sample: True"):
        assert line in b
    plain = MaskLossSettings(min_weight=0.05).banner()
    assert "MASK-WEIGHTED LOSS TRAINING ENABLED" in plain and "prior_mask_threshold" not in plain


def test_weighted_mean_dtype_is_fp32():
    out = weighted_mean(torch.ones(1, 2, 1, 2, 2, dtype=torch.bfloat16), torch.ones(1, 1, 1, 2, 2), False)
    assert out.dtype == torch.float32


def test_prior_region_warning_catches_the_floor_trap():
    from comfyui_wanmasking.masking.training.loss import prior_region_warning
    baked = torch.full((1, 1, 2, 4, 4), 0.1)           # a 0.1 floor already baked into the weights
    baked[..., :2, :] = 1.0
    s = MaskLossSettings(prior_weight=1.0, prior_threshold=0.1)
    assert "no loss weight is below it (smallest 0.1)" in prior_region_warning(baked, s)
    assert prior_region_warning(baked, MaskLossSettings(prior_weight=1.0, prior_threshold=0.2)) is None
    assert "every loss weight is 1" in prior_region_warning(torch.ones(1, 1, 1, 2, 2), MaskLossSettings(prior_weight=1.0))
    assert prior_region_warning(baked, MaskLossSettings()) is None
