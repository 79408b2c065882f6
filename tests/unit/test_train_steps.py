"""The masked-loss training loop of the core (masking/training/loop.py), on a toy model: it draws
items and sigmas as native does and reproducibly, accumulates gradients, learns only where the
weights say so, and runs the teacher only with prior preservation."""
import pytest
import torch

from comfyui_wanmasking.masking.training.loss import MaskLossSettings
from comfyui_wanmasking.masking.training.buckets import BucketDraw, BucketDraws, bucket_items, bucket_offsets
from comfyui_wanmasking.masking.training.loop import MaskedLossLoop, optimizer_step


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


def test_run_records_the_drawn_indices():
    _, _, _, loop = _run(torch.ones(3, 1, 2, 4, 4), steps=5)
    assert loop.drawn_indices == [idx for _, idx, _ in loop.draws(3, lambda p: p)] and loop.drawn == []


# ---- bucket mode -----------------------------------------------------------------------------

C = 3


class ChannelToy(torch.nn.Module):
    """Works on any latent shape: prediction = x_t * scale + bias + gain * cond of the item (per channel),
    so the loss depends on the noise, the sigma and the GLOBAL item index (its conditioning)."""

    def __init__(self):
        super().__init__()
        self.scale = torch.nn.Parameter(torch.zeros(C))
        self.bias = torch.nn.Parameter(torch.zeros(C))
        self.gain = torch.nn.Parameter(torch.zeros(C))

    def forward(self, xt, conds):
        view = (1, C, 1, 1, 1)
        return xt * self.scale.view(view) + self.bias.view(view) + self.gain.view(view) * conds.view(-1, C, 1, 1, 1)


def bucket_set(zero_weight=("z",)):
    """Items of two latent shapes; the items named in zero_weight have all-zero loss weights."""
    spec = [("a", (1, 2, 2)), ("b", (1, 2, 2)), ("z", (1, 2, 2)), ("c", (2, 2, 4)), ("d", (2, 2, 4))]
    names = [n for n, _ in spec]
    latents = [torch.rand(C, *s, generator=torch.Generator().manual_seed(i)) * 2 - 1 for i, (_, s) in enumerate(spec)]
    weights = [(torch.zeros if n in zero_weight else torch.ones)(1, *s) for n, s in spec]
    weights[0][..., 0] = 0.5  # a graded weight, so the global normalization matters
    conds = [torch.rand(C, generator=torch.Generator().manual_seed(50 + i)) for i in range(len(spec))]
    return names, latents, weights, conds


def _run_buckets(buckets, steps=30, batch=2, seed=3, draws=None, device="cpu", settings=MaskLossSettings()):
    model = ChannelToy().to(device)
    opt = torch.optim.SGD(model.parameters(), lr=0.5, momentum=0.0)
    flat_conds = torch.stack([c for b in buckets for c in b.conds]).to(device)  # conds flattened bucket after bucket
    seen = {"predict": [], "teacher": []}

    def predict(xt, sigmas, idx):
        assert xt.device == torch.device(device) and sigmas.device == xt.device
        seen["predict"].append(list(idx))
        return model(xt, flat_conds[idx])

    def teacher(xt, sigmas, idx):
        seen["teacher"].append(list(idx))
        return torch.zeros_like(xt)

    loop = MaskedLossLoop(None, settings, "MSE", batch, 1, steps, seed)
    loop.run_buckets(buckets, device=device, predict=predict, teacher=teacher, draws=draws,
                     noise=lambda step, x0: torch.sin(x0 * 12.9898 + 0.5),  # per item, independent of the batch
                     percent_to_sigma=lambda p: 1.0 - p,
                     noise_scaling=lambda s, eps, x0: s.view(-1, 1, 1, 1, 1) * eps + (1 - s.view(-1, 1, 1, 1, 1)) * x0,
                     backward=lambda loss: loss.backward(), optimizer_step=lambda: optimizer_step(opt))
    return model, loop, seen


def test_bucket_mode_draws_every_item_and_repeats_with_the_seed():
    buckets = bucket_items(*bucket_set(zero_weight=()))
    model, loop, seen = _run_buckets(buckets, steps=40, settings=MaskLossSettings(prior_weight=0.5))
    names = [n for b in buckets for n in b.names]
    assert {n for batch in loop.drawn for n in batch} == set(names)
    assert len(loop.drawn) == 40 and all(1 <= len(batch) <= 2 for batch in loop.drawn)
    assert all(len({next(b.key for b in buckets if n in b.names) for n in batch}) == 1 for batch in loop.drawn)
    # global indices: into the names (and conditionings) flattened bucket after bucket
    assert loop.drawn == [[names[i] for i in idx] for idx in loop.drawn_indices]
    assert seen["predict"] == seen["teacher"] == loop.drawn_indices
    assert loop.drawn_indices == [d.indices for d in BucketDraws([b.size for b in buckets], 2, 3).take(40)]
    again, loop2, _ = _run_buckets(buckets, steps=40, settings=MaskLossSettings(prior_weight=0.5))
    assert loop2.drawn == loop.drawn and loop2.curves == loop.curves
    assert all(torch.equal(p, q) for p, q in zip(model.parameters(), again.parameters()))
    _, other, _ = _run_buckets(buckets, steps=40, seed=4)
    assert other.drawn != loop.drawn


def _replay_without(buckets_a, buckets_b, draws_a, drop):
    """A's draws on set B (A without ``drop``): the other items of each batch, their percents kept;
    a step whose batch was only ``drop`` is left out (it updates nothing). Returns (replay, solo, mixed)."""
    offsets_b = bucket_offsets([b.size for b in buckets_b])
    replay, solo, mixed = [], 0, 0
    for d in draws_a:
        bucket_a = buckets_a[d.bucket]
        kept = [(bucket_a.names[r], p) for r, p in zip(d.relative, d.percents) if bucket_a.names[r] != drop]
        solo += not kept
        mixed += 0 < len(kept) < len(d.relative)
        if not kept:
            continue
        j = next(i for i, b in enumerate(buckets_b) if b.key == bucket_a.key)
        relative = [buckets_b[j].names.index(n) for n, _ in kept]
        replay.append(BucketDraw(j, relative, [offsets_b[j] + r for r in relative], [p for _, p in kept]))
    return replay, solo, mixed


@pytest.mark.parametrize("batch", [1, 2])
def test_an_item_with_zero_weights_contributes_no_gradient(batch):
    names, latents, weights, conds = bucket_set()
    buckets_a = bucket_items(names, latents, weights, conds)
    steps, seed = 40, 5
    model_a, loop_a, _ = _run_buckets(buckets_a, steps=steps, batch=batch, seed=seed)
    draws_a = BucketDraws([b.size for b in buckets_a], batch, seed).take(steps)
    assert loop_a.drawn == [[buckets_a[d.bucket].names[r] for r in d.relative] for d in draws_a]
    keep = [i for i, n in enumerate(names) if n != "z"]
    buckets_b = bucket_items(*[[x[i] for i in keep] for x in (names, latents, weights, conds)])
    replay, solo, mixed = _replay_without(buckets_a, buckets_b, draws_a, "z")
    assert (solo > 0) if batch == 1 else (mixed > 0)  # the case under test happened
    model_b, loop_b, _ = _run_buckets(buckets_b, steps=len(replay), batch=batch, draws=replay)
    assert all(n != "z" for batch_names in loop_b.drawn for n in batch_names)
    for p, q in zip(model_a.parameters(), model_b.parameters()):
        assert p.abs().max() > 1e-3  # it trained
        assert torch.allclose(p, q, rtol=1e-6, atol=1e-7)
    # control: the same item with weights learns something else, so the equality above can fail
    weights[names.index("z")] = torch.ones_like(weights[names.index("z")])
    model_c, _, _ = _run_buckets(bucket_items(names, latents, weights, conds), steps=steps, batch=batch, seed=seed)
    assert not all(torch.allclose(p, q, rtol=1e-4, atol=1e-5) for p, q in zip(model_c.parameters(),
                                                                              model_b.parameters()))


@pytest.mark.cuda
def test_bucket_mode_moves_only_the_batch_to_the_device():
    from torch.overrides import TorchFunctionMode

    device = "cuda" if torch.cuda.is_available() else "cpu"
    buckets = bucket_items(*bucket_set(zero_weight=()))
    before = [(b.latents.clone(), b.weights.clone(), b.latents.data_ptr(), b.weights.data_ptr()) for b in buckets]
    moved = []

    class SpyTo(TorchFunctionMode):
        def __torch_function__(self, func, types, args=(), kwargs=None):
            if func is torch.Tensor.to and isinstance(args[0], torch.Tensor):
                moved.append((args[0].data_ptr(), tuple(args[0].shape), args[1:], kwargs))
            return func(*args, **(kwargs or {}))

    with SpyTo():
        _, loop, _ = _run_buckets(buckets, steps=6, device=device)
    whole = {ptr for _, _, *ptrs in before for ptr in ptrs}
    assert not [m for m in moved if m[0] in whole]  # never a whole bucket
    to_device = [shape for _, shape, args, _ in moved if args == (device,) and len(shape) == 5]
    key_of = {n: b.key for b in buckets for n in b.names}
    expected = []
    for batch in loop.drawn:
        key = key_of[batch[0]]
        expected += [(len(batch), C, *key), (len(batch), 1, *key)]
    assert to_device == expected  # each step: exactly its latents and weights
    for b, (lat, w, lat_ptr, w_ptr) in zip(buckets, before):
        assert b.latents.device.type == b.weights.device.type == "cpu"
        assert b.latents.data_ptr() == lat_ptr and torch.equal(b.latents, lat) and torch.equal(b.weights, w)


def test_bucket_mode_refuses_bad_input():
    buckets = bucket_items(*bucket_set())
    loop = MaskedLossLoop(None, MaskLossSettings(), total_steps=2)
    kwargs = dict(device="cpu", predict=None, noise=None, percent_to_sigma=None, noise_scaling=None, backward=None,
                  optimizer_step=None)
    with pytest.raises(ValueError, match="no buckets"):
        loop.run_buckets([], **kwargs)
    with pytest.raises(ValueError, match="1 draws for total_steps 2"):
        loop.run_buckets(buckets, draws=[BucketDraw(0, [0], [0], [0.5])], **kwargs)
    with pytest.raises(ValueError, match="step 1 draws"):
        loop.run_buckets(buckets, draws=[BucketDraw(0, [0], [0], [0.5]), BucketDraw(1, [0], [0], [0.5])], **kwargs)
    with pytest.raises(ValueError, match="teacher"):
        MaskedLossLoop(None, MaskLossSettings(prior_weight=1.0)).run_buckets(buckets, **kwargs)
    with pytest.raises(ValueError, match="weights: no loss weights"):
        loop.run(torch.ones(1, 1, 1, 1, 1), **{k: v for k, v in kwargs.items() if k != "device"})
