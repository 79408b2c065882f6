"""Interrupting a chunked VAE decode: ComfyUI's interrupt stops it within a second, and the next
run works."""
from __future__ import annotations

import json
import time

import pytest
import torch
from safetensors.torch import save_file

from comfyui_wanmasking.tests.integration.graphs import Graph

TINY_VAE = "wan_tiny_vae.safetensors"


def decode_graph(latent_path, out_path):
    g = Graph()
    src = g.add("WanMaskTestLoad", path=str(latent_path))
    vae = g.add("WanMaskVAELoader", vae_name=TINY_VAE, decode_precision="fp32", encode_precision="fp32",
                cache_offload=False)
    dec = g.add("WanMaskVAEDecode", samples=src[2], vae=vae, tile_size=0, overlap=64, temporal_chunk=1)
    g.add("WanMaskTestSave", path=str(out_path), image=dec)
    return g.prompt, dec.id


def test_interrupt_stops_a_long_decode_within_a_second_and_the_next_run_works(server, io_dir):
    websocket = pytest.importorskip("websocket", reason="websocket-client is not installed")
    long_latent = io_dir / "long.safetensors"
    save_file({"samples": torch.randn(1, 16, 21, 16, 16)}, str(long_latent))  # 81 frames of 128x128
    prompt, decode_id = decode_graph(long_latent, io_dir / "never.safetensors")

    ws = websocket.create_connection(f"ws://127.0.0.1:{server.port}/ws?clientId={server.client_id}", timeout=300)
    try:
        code, body = server.submit(prompt)
        assert code == 200, body
        pid = body["prompt_id"]
        interrupted_at = None
        while True:
            msg = ws.recv()
            if not isinstance(msg, str):
                continue
            event = json.loads(msg)
            data = event.get("data", {})
            if data.get("prompt_id") not in (None, pid):
                continue
            if event["type"] == "progress" and data.get("node") == decode_id and data["value"] >= 2 and interrupted_at is None:
                assert data["max"] == 21  # progress per latent frame
                server.post("/interrupt", {})
                interrupted_at = time.monotonic()
            elif event["type"] in ("execution_interrupted", "execution_error", "execution_success"):
                stopped_at = time.monotonic()
                break
        assert interrupted_at is not None, "the decode reported no progress"
        assert event["type"] == "execution_interrupted", event
        assert stopped_at - interrupted_at < 1.0, f"stopped {stopped_at - interrupted_at:.2f}s after the interrupt"
    finally:
        ws.close()
    assert not (io_dir / "never.safetensors").exists()

    short_latent = io_dir / "short.safetensors"
    save_file({"samples": torch.randn(1, 16, 2, 8, 8)}, str(short_latent))
    prompt, _ = decode_graph(short_latent, io_dir / "after.safetensors")
    server.run_ok(prompt)
    assert (io_dir / "after.safetensors").exists()
