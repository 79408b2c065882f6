"""The training-set encode cache (masking/training/dataset_cache.py): bit-exact round trips of items
and conditionings, hits and misses by source and settings, corrupt shards, atomic writes, no
pickle anywhere, and the cheap model fingerprint."""
import hashlib
import json
import logging
import os
import pickle
import time

import pytest
import torch

from comfyui_wanmasking.masking.training import dataset_cache
from comfyui_wanmasking.masking.training.dataset_cache import (
    SCHEMA_VERSION, TrainingSetCache, conditioning_to_tensors, file_sha256, fingerprint_state_dict,
    tensors_to_conditioning)

SETTINGS = {"vae": "abc123", "frames": 9, "resolution": [32, 64], "gamma": 1.0}


def rand(*shape, seed=0, dtype=torch.float32):
    return torch.rand(*shape, generator=torch.Generator().manual_seed(seed)).to(dtype)


def item_tensors(seed):
    return {"latent": rand(16, 3, 4, 8, seed=seed, dtype=torch.bfloat16), "weights": rand(1, 3, 4, 8, seed=seed + 1)}


def conditioning():
    """A CONDITIONING with a tensor, non-tensor dict values, a nested list of tensors and a tuple."""
    return [[rand(1, 7, 12, seed=3, dtype=torch.float16),
             {"pooled_output": None, "attention_mask": torch.tensor([[1, 1, 0]]), "strength": 0.75, "ok": True,
              "count": 3, "name": "umt5", "refs": [rand(2, 2, seed=4), rand(3, seed=5)], "area": (0, 8, 0.5),
              "nested": {"inner": rand(2, seed=6), "tags": ["a", "b"]}}],
            [rand(1, 4, 12, seed=7), {}]]


def assert_same(a, b):
    """Equal values, tensors bit-exact with the same dtype, containers of the same type."""
    assert type(a) is type(b)
    if isinstance(a, torch.Tensor):
        assert a.dtype == b.dtype and a.shape == b.shape and torch.equal(a, b)
    elif isinstance(a, (list, tuple)):
        assert len(a) == len(b)
        for x, y in zip(a, b):
            assert_same(x, y)
    elif isinstance(a, dict):
        assert a.keys() == b.keys()
        for k in a:
            assert_same(a[k], b[k])
    else:
        assert a == b


@pytest.fixture
def no_pickle(monkeypatch):
    """Any pickle or torch.load / torch.save during the test raises."""
    def refuse(*args, **kwargs):
        raise AssertionError("pickle / torch.load / torch.save used")
    for obj, name in [(torch, "load"), (torch, "save"), (pickle, "load"), (pickle, "loads"), (pickle, "dump"),
                      (pickle, "dumps"), (pickle, "Unpickler"), (pickle, "Pickler")]:
        monkeypatch.setattr(obj, name, refuse)


def test_items_and_conditionings_round_trip_bit_exact_without_pickle(tmp_path, no_pickle):
    cache = TrainingSetCache(tmp_path, SETTINGS)
    sources = {"a.mp4": "1" * 64, "weighted_masks/a.mkv": "2" * 64}
    cache.store_item("a", sources, item_tensors(0))
    cache.store_cond("a person walking", "enc1", conditioning())
    fresh = TrainingSetCache(tmp_path, SETTINGS)  # a second run: everything comes from disk
    assert_same(fresh.load_item("a", sources), item_tensors(0))
    assert_same(fresh.load_cond("a person walking", "enc1"), conditioning())
    assert fresh.load_cond("a person walking", "enc2") is None and fresh.load_cond("another", "enc1") is None
    manifest = json.loads((tmp_path / "manifest.json").read_text())
    assert manifest["schema"] == SCHEMA_VERSION and manifest["settings"] == SETTINGS
    assert manifest["items"]["a"] == {"sources": sources, "shard": "items/a.safetensors",
                                      "latent_shape": [16, 3, 4, 8],
                                      "shapes": {"latent": [16, 3, 4, 8], "weights": [1, 3, 4, 8]}}
    assert sorted(p.name for p in tmp_path.rglob("*") if p.is_file() and p.suffix not in (".json", ".safetensors")) \
        == []  # no temporary files left


def test_conditioning_serialisation_names_what_it_cannot_store():
    tensors, meta = conditioning_to_tensors(conditioning(), "caption0")
    assert all(k.startswith("caption0.") for k in tensors) and json.loads(json.dumps(meta)) == meta
    assert_same(tensors_to_conditioning(tensors, meta, "caption0"), conditioning())
    with pytest.raises(ValueError, match="prefix"):
        tensors_to_conditioning(tensors, meta, "caption1")
    bad = conditioning()
    bad[0][1]["control"] = object()
    with pytest.raises(ValueError, match="key '0.extra.control' holds a object.*Fix:"):
        conditioning_to_tensors(bad, "c")
    with pytest.raises(ValueError, match="entry 0 is not a \\[tensor, dict\\] pair"):
        conditioning_to_tensors([rand(1, 2)], "c")


def test_unchanged_sources_hit_a_changed_source_misses_only_that_item(tmp_path):
    cache = TrainingSetCache(tmp_path, SETTINGS)
    sources = {name: {f"{name}.png": f"{i}" * 64} for i, name in enumerate(["a", "b", "c"])}
    for i, name in enumerate(sources):
        cache.store_item(name, sources[name], item_tensors(10 * i))
    second = TrainingSetCache(tmp_path, SETTINGS)
    assert all(second.load_item(n, s) is not None for n, s in sources.items())
    changed = dict(sources, b={"b.png": "f" * 64})
    third = TrainingSetCache(tmp_path, SETTINGS)
    hits = {n: third.load_item(n, s) is not None for n, s in changed.items()}
    assert hits == {"a": True, "b": False, "c": True}
    added_mask = dict(sources["a"], **{"weighted_masks/a.png": "9" * 64})
    assert third.load_item("a", added_mask) is None and third.load_item("d", {"d.png": "0" * 64}) is None


def test_changed_settings_miss_every_item(tmp_path, caplog):
    cache = TrainingSetCache(tmp_path, SETTINGS)
    cache.store_item("a", {"a.png": "0" * 64}, item_tensors(0))
    cache.store_item("b", {"b.png": "1" * 64}, item_tensors(1))
    with caplog.at_level(logging.WARNING, logger="WanMasking"):
        other = TrainingSetCache(tmp_path, dict(SETTINGS, frames=17))
    assert "other settings" in caplog.text
    assert other.load_item("a", {"a.png": "0" * 64}) is None and other.load_item("b", {"b.png": "1" * 64}) is None
    other.store_item("a", {"a.png": "0" * 64}, item_tensors(5))
    assert_same(TrainingSetCache(tmp_path, dict(SETTINGS, frames=17)).load_item("a", {"a.png": "0" * 64}),
                item_tensors(5))
    assert TrainingSetCache(tmp_path, SETTINGS).load_item("a", {"a.png": "0" * 64}) is None


def test_a_corrupt_shard_is_encoded_again(tmp_path, caplog):
    cache = TrainingSetCache(tmp_path, SETTINGS)
    sources = {"a.png": "0" * 64}
    cache.store_item("a", sources, item_tensors(0))
    shard = tmp_path / "items" / "a.safetensors"
    shard.write_bytes(shard.read_bytes()[:40])  # truncated, as after a crash without atomic writes
    fresh = TrainingSetCache(tmp_path, SETTINGS)
    with caplog.at_level(logging.WARNING, logger="WanMasking"):
        assert fresh.load_item("a", sources) is None
    assert "corrupt cache shard for item 'a'" in caplog.text and str(shard) in caplog.text
    fresh.store_item("a", sources, item_tensors(0))  # the re-encode path
    assert_same(TrainingSetCache(tmp_path, SETTINGS).load_item("a", sources), item_tensors(0))
    cond = fresh.cond_path("x", "enc")
    fresh.store_cond("x", "enc", conditioning())
    cond.write_bytes(b"garbage")
    assert fresh.load_cond("x", "enc") is None


def test_a_corrupt_manifest_misses_but_valid_shards_still_hit(tmp_path, caplog):
    TrainingSetCache(tmp_path, SETTINGS).store_item("a", {"a.png": "0" * 64}, item_tensors(0))
    (tmp_path / "manifest.json").write_text("{not json")
    with caplog.at_level(logging.WARNING, logger="WanMasking"):
        cache = TrainingSetCache(tmp_path, SETTINGS)
    assert "unreadable cache manifest" in caplog.text
    assert_same(cache.load_item("a", {"a.png": "0" * 64}), item_tensors(0))  # the shard carries its own identity
    assert cache.load_item("a", {"a.png": "1" * 64}) is None
    cache.save_manifest()
    assert json.loads((tmp_path / "manifest.json").read_text())["items"]["a"]["shard"] == "items/a.safetensors"


def test_writes_are_atomic(tmp_path, monkeypatch):
    cache = TrainingSetCache(tmp_path, SETTINGS)
    cache.store_item("a", {"a.png": "0" * 64}, item_tensors(0))
    replaced = []
    real_replace = os.replace
    monkeypatch.setattr(dataset_cache.os, "replace", lambda src, dst: (replaced.append((src, dst)),
                                                                        real_replace(src, dst)))
    cache.store_item("a", {"a.png": "0" * 64}, item_tensors(1))
    cache.store_cond("x", "enc", conditioning())
    assert [os.path.basename(dst) for _, dst in replaced][:2] == ["a.safetensors", "manifest.json"]
    assert all(os.path.dirname(src) == os.path.dirname(dst) and src.endswith(".tmp") for src, dst in replaced)

    def crash(tensors, path, metadata=None):
        with open(path, "wb") as f:
            f.write(b"half")
        raise OSError("disk full")
    monkeypatch.setattr(dataset_cache, "save_file", crash)
    with pytest.raises(OSError, match="disk full"):
        cache.store_item("a", {"a.png": "0" * 64}, item_tensors(2))
    assert_same(TrainingSetCache(tmp_path, SETTINGS).load_item("a", {"a.png": "0" * 64}), item_tensors(1))
    assert not list((tmp_path / "items").glob("*.tmp")) and not list((tmp_path / "items").glob(".*"))


def test_prune_drops_items_no_longer_in_the_set(tmp_path):
    cache = TrainingSetCache(tmp_path, SETTINGS)
    for i, name in enumerate(["a", "b", "c"]):
        cache.store_item(name, {f"{name}.png": str(i) * 64}, item_tensors(i))
    assert cache.prune({"a", "c"}) == ["b"]
    assert sorted(p.stem for p in (tmp_path / "items").iterdir()) == ["a", "c"]
    assert sorted(json.loads((tmp_path / "manifest.json").read_text())["items"]) == ["a", "c"]
    assert cache.prune({"a", "c"}) == []


def test_bad_names_and_settings_are_refused(tmp_path):
    with pytest.raises(ValueError, match="cache settings: not JSON-able"):
        TrainingSetCache(tmp_path, {"path": object()})
    cache = TrainingSetCache(tmp_path, SETTINGS)
    with pytest.raises(ValueError, match="item name '../x' cannot name a file"):
        cache.store_item("../x", {}, item_tensors(0))
    with pytest.raises(ValueError, match="item 'a' has non-tensor values"):
        cache.store_item("a", {}, {"latent": [1, 2]})


def test_file_sha256_reads_the_bytes(tmp_path):
    path = tmp_path / "clip.bin"
    path.write_bytes(b"abc" * 1_000_000)
    assert file_sha256(path) == hashlib.sha256(b"abc" * 1_000_000).hexdigest()
    with pytest.raises(ValueError, match="missing.bin: cannot read"):
        file_sha256(tmp_path / "missing.bin")


def test_fingerprint_is_stable_and_sees_keys_shapes_dtypes_and_values():
    sd = {"a.weight": rand(64, 32), "b.bias": rand(7, seed=1), "c": rand(3, 5, 9, seed=2).transpose(0, 2)}
    base = fingerprint_state_dict(sd)
    assert base == fingerprint_state_dict(dict(reversed(list(sd.items()))))
    assert base == fingerprint_state_dict({k: v.clone() for k, v in sd.items()})
    variants = [dict(sd, extra=torch.zeros(1)), {k.upper(): v for k, v in sd.items()},
                dict(sd, **{"a.weight": sd["a.weight"].double()}),
                dict(sd, **{"a.weight": sd["a.weight"].reshape(32, 64)})]
    changed = sd["b.bias"].clone()
    changed[3] += 1.0  # 7 values: all sampled
    variants.append(dict(sd, **{"b.bias": changed}))
    changed = sd["c"].clone()
    changed[-1, -1, -1] = 5.0  # the last element is always sampled (non-contiguous tensor too)
    variants.append(dict(sd, c=changed))
    assert len({base, *map(fingerprint_state_dict, variants)}) == len(variants) + 1


def test_fingerprint_samples_huge_tensors_instead_of_reading_them():
    huge = torch.arange(1000, dtype=torch.bfloat16).reshape(1000, 1).expand(1000, 10**7)  # 10^10 elements, 20 GB view
    start = time.perf_counter()
    first = fingerprint_state_dict({"w": huge, "v": huge[:, :5]})
    assert time.perf_counter() - start < 2.0
    assert fingerprint_state_dict({"w": torch.arange(1000, dtype=torch.bfloat16).flip(0).reshape(1000, 1)
                                   .expand(1000, 10**7), "v": huge[:, :5]}) != first
