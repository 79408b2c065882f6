"""The encode cache of a training set: latents, loss weights and caption conditionings on disk.

Encoding a real dataset (VAE + text encoder) takes minutes; the cache keeps each item's encoding
so a second run only encodes what changed. A cache is one folder::

    manifest.json                    {"schema": 1, "settings": {...}, "settings_hash": str,
                                      "items": {name: {"sources": {relpath: sha256}, "shard": str,
                                                       "latent_shape": [...] | None, "shapes": {...}}}}
    items/<name>.safetensors         one shard per item (the tensors the caller stores, e.g. latent, weights)
    conds/<sha256>.safetensors       one caption conditioning per (encoder, caption)

An item hits when the settings (everything that changes the encoding: VAE, frame count, size, mask
settings, ...) and the sha256 of every source file (item, mask, subject) are those it was stored
with. Each shard also carries its settings hash and sources in its safetensors metadata, so a
shard never passes for another encoding even with a stale manifest. Only safetensors and JSON are
read and written (never pickle); every write goes to a temporary file first, then ``os.replace``.
"""
from __future__ import annotations

import hashlib
import json
import logging
import os
import tempfile
from pathlib import Path

import torch
from safetensors import safe_open
from safetensors.torch import save_file

log = logging.getLogger("WanMasking")

SCHEMA_VERSION = 1
SAMPLES_PER_TENSOR = 256
_JSON_SCALARS = (type(None), bool, int, float, str)


def file_sha256(path: Path) -> str:
    """Hex sha256 of a file's bytes (read in 1 MiB chunks)."""
    digest = hashlib.sha256()
    try:
        with open(path, "rb") as f:
            for chunk in iter(lambda: f.read(1 << 20), b""):
                digest.update(chunk)
    except OSError as e:
        raise ValueError(f"{path}: cannot read the file to fingerprint it ({e}). Fix: check that it exists and is "
                         f"readable.") from e
    return digest.hexdigest()


def _sample_values(t: torch.Tensor) -> bytes:
    """The raw bytes of <= SAMPLES_PER_TENSOR evenly strided elements (never the whole tensor)."""
    n = t.numel()
    if n == 0 or t.device.type == "meta":
        return b""
    k = min(SAMPLES_PER_TENSOR, n)
    flat = torch.tensor([i * (n - 1) // (k - 1) for i in range(k)] if k > 1 else [0], device=t.device)
    sample = t.detach().reshape(-1)[flat] if t.is_contiguous() else t.detach()[torch.unravel_index(flat, t.shape)]
    return sample.cpu().contiguous().view(torch.uint8).numpy().tobytes()


def fingerprint_state_dict(sd: dict[str, torch.Tensor]) -> str:
    """A cheap, stable identity of a model's weights: sha256 over the sorted (key, shape, dtype) and
    a strided sample of <= 256 values per tensor, so a 10 GB encoder hashes in well under a second.
    Two models that differ only between the sampled values get the same fingerprint (this is an
    identity for caching, not an integrity check)."""
    digest = hashlib.sha256(b"wanmask-state-dict-v1")
    for key in sorted(sd):
        value = sd[key]
        digest.update(key.encode("utf-8") + b"\0")
        if isinstance(value, torch.Tensor):
            digest.update(f"{list(value.shape)}|{value.dtype}".encode())
            digest.update(_sample_values(value))
        else:
            digest.update(f"{type(value).__name__}|{value if isinstance(value, _JSON_SCALARS) else ''}".encode())
    return digest.hexdigest()


def _encode(value, path: str, prefix: str, tensors: dict[str, torch.Tensor]):
    """One conditioning value -> a tagged JSON value; tensors go to ``tensors`` under ``prefix.path``."""
    if isinstance(value, torch.Tensor):
        name = f"{prefix}.{path}"
        tensors[name] = value.detach().cpu().contiguous().clone()
        return {"t": name}
    if isinstance(value, _JSON_SCALARS):
        return {"v": value}
    if isinstance(value, (list, tuple)):
        items = [_encode(v, f"{path}.{i}", prefix, tensors) for i, v in enumerate(value)]
        return {"l": items} if isinstance(value, list) else {"u": items}
    if isinstance(value, dict):
        bad = [k for k in value if not isinstance(k, str)]
        if bad:
            raise ValueError(f"conditioning: key {path!r} is a dict with non-text keys {bad!r}; the cache stores "
                             f"text keys only. Fix: encode the captions without the cache.")
        return {"d": {k: _encode(v, f"{path}.{k}", prefix, tensors) for k, v in value.items()}}
    raise ValueError(f"conditioning: key {path!r} holds a {type(value).__name__}; the cache stores tensors, None, "
                     f"bool, int, float, str and lists/tuples/dicts of those (never pickle). Fix: encode the "
                     f"captions without the cache, or drop that key from the conditioning.")


def _decode(value, tensors: dict[str, torch.Tensor]):
    (tag, inner), = value.items()
    if tag == "t":
        if inner not in tensors:
            raise ValueError(f"conditioning: tensor {inner!r} is missing from the stored tensors. Fix: delete the "
                             f"cached conditioning so it is encoded again.")
        return tensors[inner]
    if tag == "v":
        return inner
    if tag in ("l", "u"):
        items = [_decode(v, tensors) for v in inner]
        return items if tag == "l" else tuple(items)
    if tag == "d":
        return {k: _decode(v, tensors) for k, v in inner.items()}
    raise ValueError(f"conditioning: unknown tag {tag!r} in the stored metadata. Fix: delete the cached "
                     f"conditioning so it is encoded again.")


def conditioning_to_tensors(cond: list, prefix: str) -> tuple[dict[str, torch.Tensor], dict]:
    """A ComfyUI CONDITIONING (list of [tensor, dict]) -> (tensors named ``prefix.*``, JSON-able meta).

    Tensors (the embedding and tensor values of the dict, also inside lists / dicts) are stored as
    tensors; None / bool / int / float / str go to the meta; anything else raises ValueError naming
    the key.
    """
    if not isinstance(cond, (list, tuple)):
        raise ValueError(f"conditioning: expected a list of [tensor, dict] entries, got a {type(cond).__name__}. "
                         f"Fix: give a CONDITIONING from a text encoder.")
    tensors: dict[str, torch.Tensor] = {}
    entries = []
    for i, entry in enumerate(cond):
        if not (isinstance(entry, (list, tuple)) and len(entry) == 2 and isinstance(entry[0], torch.Tensor)
                and isinstance(entry[1], dict)):
            raise ValueError(f"conditioning: entry {i} is not a [tensor, dict] pair ({type(entry).__name__}). "
                             f"Fix: give a CONDITIONING from a text encoder.")
        entries.append({"cond": _encode(entry[0], f"{i}.cond", prefix, tensors),
                        "extra": _encode(entry[1], f"{i}.extra", prefix, tensors)})
    return tensors, {"prefix": prefix, "entries": entries}


def tensors_to_conditioning(tensors: dict[str, torch.Tensor], meta: dict, prefix: str) -> list:
    """The inverse of :func:`conditioning_to_tensors`: a CONDITIONING list of [tensor, dict]."""
    if meta.get("prefix") != prefix:
        raise ValueError(f"conditioning: the stored meta is for prefix {meta.get('prefix')!r}, not {prefix!r}. "
                         f"Fix: read it with the prefix it was stored with.")
    return [[_decode(e["cond"], tensors), _decode(e["extra"], tensors)] for e in meta["entries"]]


def _atomic_write(path: Path, write) -> None:
    """``write(tmp_path)``, then move it over ``path`` (a reader never sees a half-written file)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    os.close(fd)
    try:
        write(tmp)
        os.replace(tmp, path)
    except BaseException:
        if os.path.exists(tmp):
            os.remove(tmp)
        raise


def _read_safetensors(path: Path) -> tuple[dict[str, torch.Tensor], dict[str, str]]:
    """(tensors, header metadata) of a safetensors file, on the CPU."""
    with safe_open(str(path), framework="pt", device="cpu") as f:
        return {k: f.get_tensor(k) for k in f.keys()}, dict(f.metadata() or {})


class TrainingSetCache:
    """A folder of encoded training items (see the module docstring for the layout).

    Args:
        folder: the cache folder (created on the first store).
        settings: everything that changes the encoding, JSON-able (e.g. VAE fingerprint, frames,
            resolution, mask settings). Different settings miss every item.
    """

    def __init__(self, folder: Path, settings: dict):
        self.folder = Path(folder)
        try:
            self.settings = json.loads(json.dumps(settings, sort_keys=True))
        except (TypeError, ValueError) as e:
            raise ValueError(f"cache settings: not JSON-able ({e}). Fix: give the settings as numbers, text, "
                             f"lists and dicts.") from e
        blob = json.dumps({"schema": SCHEMA_VERSION, "settings": self.settings}, sort_keys=True)
        self.settings_hash = hashlib.sha256(blob.encode()).hexdigest()
        self.items: dict[str, dict] = self._read_manifest()

    @property
    def manifest_path(self) -> Path:
        return self.folder / "manifest.json"

    def _read_manifest(self) -> dict[str, dict]:
        path = self.manifest_path
        if not path.exists():
            return {}
        try:
            manifest = json.loads(path.read_text(encoding="utf-8"))
            items = manifest["items"]
            schema, settings_hash = manifest["schema"], manifest["settings_hash"]
        except (OSError, ValueError, KeyError, TypeError) as e:
            log.warning(f"{path}: unreadable cache manifest ({e}); every item will be encoded again.")
            return {}
        if schema != SCHEMA_VERSION or settings_hash != self.settings_hash:
            log.warning(f"{path}: the cache was written with other settings (schema {schema}); every item will be "
                        f"encoded again with the current settings.")
            return {}
        return dict(items)

    def shard_path(self, name: str) -> Path:
        if not name or name in (".", "..") or "/" in name or "\\" in name or "\0" in name:
            raise ValueError(f"cache: item name {name!r} cannot name a file. Fix: rename the item file.")
        return self.folder / "items" / f"{name}.safetensors"

    def load_item(self, name: str, sources: dict[str, str]) -> dict[str, torch.Tensor] | None:
        """The stored tensors of ``name``, or None when missing or stale (other settings or any source
        sha256 differs) or the shard is corrupt (warning; the caller encodes the item again).

        The shard's own metadata decides (settings hash, sources), so a shard written just before a
        crash, and missing from the manifest, still hits; it is then added to the manifest."""
        entry = self.items.get(name)
        path = self.shard_path(name)
        if (entry is not None and entry.get("sources") != dict(sources)) or not path.exists():
            return None
        try:
            tensors, meta = _read_safetensors(path)
        except Exception as e:  # noqa: BLE001 -- any unreadable shard is re-encoded
            log.warning(f"{path}: corrupt cache shard for item {name!r} ({type(e).__name__}: {e}); the item will be "
                        f"encoded again.")
            return None
        if meta.get("settings_hash") != self.settings_hash or meta.get("sources") != json.dumps(
                dict(sources), sort_keys=True) or meta.get("name") != name:
            if entry is not None:
                log.warning(f"{path}: the cache shard of item {name!r} does not match the manifest; the item will "
                            f"be encoded again.")
            return None
        if entry is None:
            self.items[name] = self._entry(path, sources, tensors)
        return tensors

    def _entry(self, path: Path, sources: dict[str, str], tensors: dict[str, torch.Tensor]) -> dict:
        shapes = {k: list(v.shape) for k, v in tensors.items()}
        return {"sources": dict(sources), "shard": path.relative_to(self.folder).as_posix(),
                "latent_shape": shapes.get("latent"), "shapes": shapes}

    def store_item(self, name: str, sources: dict[str, str], tensors: dict[str, torch.Tensor]) -> None:
        """Write the shard of ``name`` (atomically) and record it in the manifest (saved too)."""
        path = self.shard_path(name)
        bad = [k for k, v in tensors.items() if not (isinstance(k, str) and isinstance(v, torch.Tensor))]
        if bad:
            raise ValueError(f"cache: item {name!r} has non-tensor values or non-text names {bad!r}. Fix: store "
                             f"tensors by name (e.g. latent, weights).")
        data = {k: v.detach().cpu().contiguous().clone() for k, v in tensors.items()}
        meta = {"schema": str(SCHEMA_VERSION), "name": name, "settings_hash": self.settings_hash,
                "sources": json.dumps(dict(sources), sort_keys=True)}
        _atomic_write(path, lambda tmp: save_file(data, tmp, metadata=meta))
        self.items[name] = self._entry(path, sources, data)
        self.save_manifest()

    def cond_path(self, caption: str, encoder_id: str) -> Path:
        key = hashlib.sha256(f"{encoder_id}\0{caption}".encode("utf-8")).hexdigest()
        return self.folder / "conds" / f"{key}.safetensors"

    def load_cond(self, caption: str, encoder_id: str) -> list | None:
        """The stored CONDITIONING of ``caption`` under the text encoder ``encoder_id`` (e.g. its
        :func:`fingerprint_state_dict`), or None when missing or corrupt (warning)."""
        path = self.cond_path(caption, encoder_id)
        if not path.exists():
            return None
        try:
            tensors, meta = _read_safetensors(path)
            if meta.get("caption") != caption or meta.get("encoder_id") != encoder_id:
                raise ValueError("caption or encoder differs from the stored one")
            return tensors_to_conditioning(tensors, json.loads(meta["conditioning"]), "cond")
        except Exception as e:  # noqa: BLE001 -- any unreadable conditioning is encoded again
            log.warning(f"{path}: corrupt cached conditioning ({type(e).__name__}: {e}); the caption will be "
                        f"encoded again.")
            return None

    def store_cond(self, caption: str, encoder_id: str, cond: list) -> None:
        """Write the CONDITIONING of ``caption`` (atomically); ValueError naming the key for values the
        cache cannot store."""
        tensors, meta = conditioning_to_tensors(cond, "cond")
        header = {"schema": str(SCHEMA_VERSION), "caption": caption, "encoder_id": encoder_id,
                  "conditioning": json.dumps(meta)}
        _atomic_write(self.cond_path(caption, encoder_id), lambda tmp: save_file(tensors, tmp, metadata=header))

    def prune(self, keep: set[str]) -> list[str]:
        """Drop the shards and manifest entries of items not in ``keep``; returns their names (sorted)."""
        dropped = {n for n in self.items if n not in keep}
        shard_dir = self.folder / "items"
        if shard_dir.is_dir():
            for path in shard_dir.iterdir():
                if path.name.endswith(".tmp") or (path.suffix == ".safetensors" and path.stem not in keep):
                    if path.suffix == ".safetensors":
                        dropped.add(path.stem)
                    path.unlink()
        for name in dropped:
            self.items.pop(name, None)
        self.save_manifest()
        return sorted(dropped)

    def save_manifest(self) -> None:
        """Write manifest.json (atomically)."""
        manifest = {"schema": SCHEMA_VERSION, "settings": self.settings, "settings_hash": self.settings_hash,
                    "items": self.items}
        text = json.dumps(manifest, indent=1, sort_keys=True)
        _atomic_write(self.manifest_path, lambda tmp: Path(tmp).write_text(text, encoding="utf-8"))
