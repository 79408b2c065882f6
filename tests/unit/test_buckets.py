"""Bucketing training items by latent shape (masking/training/buckets.py): grouping, order, the
checks that name the item, and the seeded draws in native's bucket-mode order on one generator."""
import pytest
import torch

from comfyui_wanmasking.masking.training.buckets import BucketDraw, BucketDraws, bucket_items, bucket_offsets


def rand(*shape, seed=0):
    return torch.rand(*shape, generator=torch.Generator().manual_seed(seed))


def items(shapes, channels=4):
    """names, latents [C,T,h,w], weights [1,T,h,w], conds for items of the given (T, h, w)."""
    names = [f"item{i}" for i in range(len(shapes))]
    latents = [rand(channels, *s, seed=i) for i, s in enumerate(shapes)]
    weights = [rand(1, *s, seed=100 + i) for i, s in enumerate(shapes)]
    conds = [[torch.full((1, 3), float(i)), {"i": i}] for i in range(len(shapes))]
    return names, latents, weights, conds


def test_items_are_grouped_by_shape_sorted_by_key_in_input_order():
    shapes = [(3, 4, 2), (1, 2, 4), (3, 4, 2), (1, 4, 2), (1, 2, 4), (3, 4, 2)]
    names, latents, weights, conds = items(shapes)
    buckets = bucket_items(names, latents, weights, conds)
    keys = sorted(set(shapes))
    assert [b.key for b in buckets] == keys
    for b in buckets:
        members = [i for i, s in enumerate(shapes) if s == b.key]
        assert b.names == [names[i] for i in members] and b.size == len(members)
        assert b.conds == [conds[i] for i in members]
        assert b.latents.shape == (len(members), 4, *b.key) and b.weights.shape == (len(members), 1, *b.key)
        assert b.latents.device.type == "cpu" and b.weights.device.type == "cpu"
        for j, i in enumerate(members):
            assert torch.equal(b.latents[j], latents[i]) and torch.equal(b.weights[j], weights[i])
    assert sum(b.size for b in buckets) == len(shapes)


def test_one_shape_gives_one_bucket():
    names, latents, weights, conds = items([(2, 2, 2)] * 3)
    (bucket,) = bucket_items(names, latents, weights, conds)
    assert bucket.names == names and torch.equal(bucket.latents, torch.stack(latents))


@pytest.mark.parametrize("break_it, message", [
    (lambda n, l, w, c: w.__setitem__(1, torch.ones(1, 1, 4, 4)), "'item1': loss weights of shape \\[1, 1, 4, 4\\]"),
    (lambda n, l, w, c: w.__setitem__(0, torch.ones(2, 1, 2, 2)), "'item0': loss weights"),
    (lambda n, l, w, c: l.__setitem__(2, torch.ones(4, 1, 2, 2, 1)), "'item2': latent shape"),
    (lambda n, l, w, c: l.__setitem__(1, torch.ones(8, 1, 2, 2)), "'item1': latent with 8 channels"),
    (lambda n, l, w, c: n.__setitem__(2, "item0"), "'item0': the name appears twice"),
    (lambda n, l, w, c: c.pop(), "differ in length"),
])
def test_bad_items_are_refused_naming_the_item(break_it, message):
    names, latents, weights, conds = items([(1, 2, 2)] * 3)
    break_it(names, latents, weights, conds)
    with pytest.raises(ValueError, match=message) as e:
        bucket_items(names, latents, weights, conds)
    assert "Fix:" in str(e.value)


def test_no_items_is_refused():
    with pytest.raises(ValueError, match="no items"):
        bucket_items([], [], [], [])


def test_draws_follow_natives_bucket_mode_on_one_generator():
    sizes, batch, seed = [3, 1, 4], 2, 11
    draws = BucketDraws(sizes, batch, seed).take(30)
    rng = torch.Generator().manual_seed(seed)
    offsets = bucket_offsets(sizes)
    assert offsets == [0, 3, 4]
    for d in draws:
        bucket = torch.multinomial(torch.tensor(sizes, dtype=torch.float32), 1, generator=rng).item()
        relative = torch.randperm(sizes[bucket], generator=rng)[:batch].tolist()
        percents = [torch.rand((1,), generator=rng).item() for _ in relative]
        assert d == BucketDraw(bucket, relative, [offsets[bucket] + r for r in relative], percents)
        assert len(d.relative) == min(batch, sizes[bucket])
    assert {d.bucket for d in draws} == {0, 1, 2}


def test_draws_repeat_with_the_seed_and_change_with_it():
    a = BucketDraws([2, 5], 3, seed=4)
    assert a.take(20) == a.take(20) == BucketDraws([2, 5], 3, seed=4).take(20)
    assert a.take(20) != BucketDraws([2, 5], 3, seed=5).take(20)
    assert a.take(20)[:7] == a.take(7)


def test_buckets_are_drawn_in_proportion_to_their_size():
    sizes = [1, 3, 6]
    counts = [0, 0, 0]
    for d in BucketDraws(sizes, 1, seed=0).take(3000):
        counts[d.bucket] += 1
    for size, count in zip(sizes, counts):
        assert abs(count / 3000 - size / sum(sizes)) < 0.03


def test_bad_sizes_and_replayed_draws_are_refused():
    with pytest.raises(ValueError, match="at least one item"):
        BucketDraws([2, 0], 1, 0)
    with pytest.raises(ValueError, match="batch_size 0"):
        BucketDraws([2], 0, 0)
    draws = BucketDraws([2, 3], 2, 0)
    draws.check(BucketDraw(1, [2, 0], [4, 2], [0.1, 0.2]), 0)
    for bad in [BucketDraw(2, [0], [0], [0.1]), BucketDraw(1, [3], [5], [0.1]), BucketDraw(1, [1], [1], [0.1]),
                BucketDraw(0, [1, 1], [1, 1], [0.1, 0.2]), BucketDraw(0, [], [], []), BucketDraw(0, [0], [0], [])]:
        with pytest.raises(ValueError, match="step 7 draws"):
            draws.check(bad, 7)
