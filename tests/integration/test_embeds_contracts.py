"""The embed builders' public contracts inside a real ComfyUI: their listed inputs and outputs, bad input
refused before sampling (naming the node), and the example workflows that use them."""
from __future__ import annotations

import json

import pytest

from comfyui_wanmasking.tests.integration.embeds_media import (
    L, S, class_type, i2v, load,
)
from comfyui_wanmasking.tests.integration.embeds_media import media as make_media
from comfyui_wanmasking.tests.integration.comfy_server import execution_error
from comfyui_wanmasking.tests.integration.examples import EXAMPLES
from comfyui_wanmasking.tests.integration.graphs import Graph, ksampler, tiny_t2v_model, tiny_vae, zero_cond


def test_nodes_are_listed_with_their_public_inputs(server):
    info = server.get("/object_info")
    i2v_info = info["WanMaskI2VEmbeds"]
    assert list(i2v_info["input"]["required"]) == ["positive", "negative", "vae", "width", "height", "length",
                                                   "batch_size", "fun_or_fl2v_model", "null_fill", "latent_strength"]
    assert list(i2v_info["input"]["optional"]) == ["start_image", "end_image", "keyframes", "keyframe_indices",
                                                   "clip_vision_output", "keep_given_latents",
                                                   "clip_vision_end_output", "ref_pad_image"]
    assert "fills every unknown frame" in i2v_info["input"]["optional"]["ref_pad_image"][1]["tooltip"]
    assert i2v_info["output"][:4] == ["CONDITIONING", "CONDITIONING", "LATENT", "MASK"]
    null_fill = i2v_info["input"]["required"]["null_fill"]  # V3 combo: ["COMBO", {"options": [...]}]
    assert null_fill[0] == "COMBO" and null_fill[1]["options"] == ["gray", "black"]
    vace = info["WanMaskVaceEmbeds"]
    assert list(vace["input"]["required"])[:8] == ["positive", "negative", "vae", "width", "height", "length",
                                                   "batch_size", "strength"]
    assert list(vace["input"]["optional"]) == ["control_video", "control_masks", "reference_image"]
    assert vace["output"] == ["CONDITIONING", "CONDITIONING", "LATENT", "INT"]
    assert "1 = reactive" in vace["input"]["optional"]["control_masks"][1]["tooltip"]
    assert info["WanMaskTemporal"]["output"] == ["MASK"]
    assert list(info["WanMaskTrimLatent"]["input"]["required"]) == ["samples", "trim_start", "trim_end"]
    animate = info["WanMaskAnimateEmbeds"]
    assert {"bg_images", "mask"} <= set(animate["input"]["optional"])


@pytest.mark.parametrize("case,pattern", [
    ("length", "length: 16 frames is not of the form 1+4k"),
    ("size", f"width/height: 72x{S} (WxH) is not a multiple of 16"),
    ("keyframe", "keyframe_indices: frame index 20"),
    ("overflow", "end_image: with fun_or_fl2v_model off"),
    ("pairing", "mask: bg_images is connected but mask is not"),
])
def test_bad_input_fails_before_sampling(server, io_dir, case, pattern):
    media = make_media(io_dir)
    g = Graph()
    vae, cond, img = tiny_vae(g), zero_cond(g), load(g, media["start1"])
    if case == "length":
        emb = i2v(g, vae, cond, length=16, start_image=img[0])
    elif case == "size":
        emb = g.add("WanMaskI2VEmbeds", positive=cond, negative=cond, vae=vae, width=72, height=S, length=L,
                    batch_size=1, fun_or_fl2v_model=True, null_fill="gray", latent_strength=1.0, start_image=img[0])
    elif case == "keyframe":
        emb = i2v(g, vae, cond, keyframes=img[0], keyframe_indices="20")
    elif case == "overflow":
        emb = i2v(g, vae, cond, length=81, fun=False, end_image=img[0])
    else:
        emb = g.add("WanMaskAnimateEmbeds", positive=cond, negative=cond, vae=vae, width=S, height=S, length=L,
                    batch_size=1, bg_images=img[0])
    sampled = ksampler(g, tiny_t2v_model(g, "i2v"), emb[0], emb[2], steps=1)
    g.add("WanMaskTestSave", path=str(io_dir / "never.safetensors"), latent=sampled)
    if case in ("length", "keyframe"):  # bad widget values: refused by the node's validate_inputs, before the queue
        code, body = server.submit(g.prompt)
        assert code == 400 and pattern in json.dumps(body), body
        assert body["node_errors"][emb.id]["class_type"] == class_type(g, emb)
        return
    entry = server.run(g.prompt)
    assert entry["status"]["status_str"] == "error"
    err = execution_error(entry)
    assert err.startswith(class_type(g, emb)) and pattern in err, err
    assert not (io_dir / "never.safetensors").exists()


@pytest.mark.parametrize("name", ["i2v_first_last_keyframes", "vace_inpainting", "animate_long_video_chunks"])
def test_example_workflow_is_a_valid_api_prompt(server, name):
    """Every node exists, every required input is given, links point at existing outputs of the right
    type, and widget values of this pack's nodes are accepted (model files are not checked)."""
    prompt = json.loads((EXAMPLES / "api" / f"{name}.json").read_text())
    info = server.get("/object_info")
    for nid, node in prompt.items():
        spec = info[node["class_type"]]
        declared = {**spec["input"]["required"], **spec["input"].get("optional", {})}
        missing = set(spec["input"]["required"]) - set(node["inputs"])
        assert not missing, f"{nid} {node['class_type']} lacks {missing}"
        for key, value in node["inputs"].items():
            assert key in declared, f"{nid} {node['class_type']} has no input {key}"
            want = declared[key][0]
            if isinstance(value, list):
                src = prompt[value[0]]
                got = info[src["class_type"]]["output"][value[1]]
                assert want == got or (isinstance(want, list) and got in ("STRING", "COMBO")), \
                    f"{nid}.{key}: {got} linked into {want}"
            elif isinstance(want, list) and node["class_type"].startswith("WanMask"):
                assert value in want, f"{nid}.{key}: {value} not in {want}"
    ours = [n for n in prompt.values() if n["class_type"].startswith("WanMask")]
    assert ours and any(n["class_type"] == "SaveAnimatedWEBP" for n in prompt.values())
