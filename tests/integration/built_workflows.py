"""Small UI-format workflows, in the frontend's own saved format, for the corners of the UI -> API
conversion that the published templates do not all reach (a PrimitiveNode linked to a subgraph
instance, muted and bypassed instances in the root graph and inside subgraphs, colliding node
ids, legacy and native reroutes inside a subgraph). Core nodes only (EmptyLatentImage,
LatentUpscaleBy, SaveLatent), present in every tested ComfyUI; the frontend converts them in
tests/integration/test_frontend_oracle.py."""
from __future__ import annotations

import copy

from comfyui_wanmasking.tests.helpers.ui_graphs import link, node

OUTER, INNER = "5d1f0c7e-2b4a-4c39-9e51-0a6b7c8d9e01", "8a2e4f6b-3c5d-4e7f-8a9b-1c2d3e4f5a02"


def subgraph(sg_id, name, inputs, outputs, nodes, links, reroutes=()):
    """inputs / outputs: (name, type, [link ids])."""
    def slots(items):
        return [{"id": f"{sg_id[:-4]}{i:04d}", "name": n, "type": t, "linkIds": list(ids), "pos": [0, 20 * i]}
                for i, (n, t, ids) in enumerate(items)]
    return {"id": sg_id, "version": 1, "state": {"lastGroupId": 0, "lastNodeId": 40, "lastLinkId": 60,
                                                   "lastRerouteId": 5},
            "revision": 0, "config": {}, "name": name,
            "inputNode": {"id": -10, "bounding": [-400, 0, 120, 80]},
            "outputNode": {"id": -20, "bounding": [800, 0, 120, 60]},
            "inputs": slots(inputs), "outputs": slots(outputs), "widgets": [], "nodes": nodes, "groups": [],
            "links": links, "extra": {}, **({"reroutes": list(reroutes)} if reroutes else {})}


def root(nodes, links, subgraphs, last_node=40, extra=None):
    return {"id": "00000000-0000-4000-8000-0000000000aa", "revision": 0, "last_node_id": last_node,
            "last_link_id": 60, "nodes": nodes, "links": links, "groups": [], "config": {},
            "extra": extra or {}, "version": 0.4, "definitions": {"subgraphs": subgraphs}}


def latent_group(inner_mode=0):
    """A subgraph: width (promoted to the instance) and a LATENT in; EmptyLatentImage 21 and
    LatentUpscaleBy 22 (upscaling the LATENT in, fed through a legacy Reroute 23 and a native
    reroute) inside; both LATENTs out."""
    return subgraph(OUTER, "Latent group",
                    [("width", "INT", [31]), ("samples", "LATENT", [32])],
                    [("LATENT", "LATENT", [33]), ("upscaled", "LATENT", [34])],
                    [node(21, "EmptyLatentImage", [("width", "INT", 31, "width")], [("LATENT", "LATENT", [33])],
                          [512, 384, 2], title="Inner latent", pos=(0, 0)),
                     node(23, "Reroute", [("", "*", 32)], [("", "LATENT", [35])], pos=(0, 200)),
                     node(22, "LatentUpscaleBy", [("samples", "LATENT", 35)], [("LATENT", "LATENT", [34])],
                          ["bilinear", 2.0], mode=inner_mode, title="Inner upscale", pos=(300, 200))],
                    [link(31, -10, 0, 21, 0, "INT"), link(32, -10, 1, 23, 0, "LATENT"),
                     link(35, 23, 0, 22, 0, "LATENT", parent=1), link(33, 21, 0, -20, 0, "LATENT"),
                     link(34, 22, 0, -20, 1, "LATENT")],
                    reroutes=[{"id": 1, "pos": [150, 220], "linkIds": [35]}])


def with_group(instance_mode=0, instance_widgets=(640,), width_link=None, inner_mode=0, primitive=False):
    """Root: EmptyLatentImage 1 -> instance 10 of latent_group -> SaveLatent 4 and 5."""
    nodes = [node(1, "EmptyLatentImage", [], [("LATENT", "LATENT", [11])], [256, 256, 1], pos=(-400, 0)),
             node(10, OUTER, [("width", "INT", width_link, "width"), ("samples", "LATENT", 11)],
                  [("LATENT", "LATENT", [12]), ("upscaled", "LATENT", [13])], instance_widgets, mode=instance_mode,
                  title="My group"),
             node(4, "SaveLatent", [("samples", "LATENT", 12)], [], ["latents/a"], pos=(400, 0)),
             node(5, "SaveLatent", [("samples", "LATENT", 13)], [], ["latents/b"], pos=(400, 200))]
    links = [[11, 1, 0, 10, 1, "LATENT"], [12, 10, 0, 4, 0, "LATENT"], [13, 10, 1, 5, 0, "LATENT"]]
    if primitive:
        nodes.append(node(6, "PrimitiveNode", [], [("INT", "INT", [14])], [768, "fixed"], pos=(-400, 200)))
        links.append([14, 6, 0, 10, 0, "INT"])
        nodes[1]["inputs"][0]["link"] = 14
    return root(nodes, links, [latent_group(inner_mode)])


def nested(inner_instance_mode=0, inner_first=False):
    """An outer subgraph holding an instance (node 25) of latent_group, itself bypassable; the
    definitions listed outer first (older frontends then lose the nested instance's saved
    widget values) or inner first."""
    inner = latent_group()
    inner["id"] = INNER
    outer = subgraph(OUTER, "Outer group", [("samples", "LATENT", [41])], [("upscaled", "LATENT", [42])],
                     [node(25, INNER, [("width", "INT", None, "width"), ("samples", "LATENT", 41)],
                           [("LATENT", "LATENT", []), ("upscaled", "LATENT", [42])], [1024],
                           mode=inner_instance_mode, title="Nested group")],
                     [link(41, -10, 0, 25, 1, "LATENT"), link(42, 25, 1, -20, 0, "LATENT")])
    nodes = [node(1, "EmptyLatentImage", [], [("LATENT", "LATENT", [11])], [256, 256, 1]),
             node(10, OUTER, [("samples", "LATENT", 11)], [("upscaled", "LATENT", [13])], [], title="Outer"),
             node(5, "SaveLatent", [("samples", "LATENT", 13)], [], ["latents/b"])]
    definitions = [inner, outer] if inner_first else [outer, inner]
    return root(nodes, [[11, 1, 0, 10, 0, "LATENT"], [13, 10, 0, 5, 0, "LATENT"]], definitions)


def colliding():
    """latent_group with its inner nodes numbered like root nodes (as older frontends saved them)."""
    wf = with_group()
    group = wf["definitions"]["subgraphs"][0]
    remap = {21: 4, 22: 5, 23: 1}
    for n in group["nodes"]:
        n["id"] = remap[n["id"]]
    for lk in group["links"]:
        lk["origin_id"], lk["target_id"] = remap.get(lk["origin_id"], lk["origin_id"]), remap.get(lk["target_id"], lk["target_id"])
    wf["last_node_id"] = 12
    return wf


BUILT = {
    "subgraph": lambda: with_group(),
    "promoted_widget_unsaved": lambda: with_group(instance_widgets=()),
    "primitive_to_instance": lambda: with_group(primitive=True),
    "muted_instance": lambda: with_group(instance_mode=2),
    "bypassed_instance": lambda: with_group(instance_mode=4),
    "bypassed_node_inside": lambda: with_group(inner_mode=4),
    "muted_node_inside": lambda: with_group(inner_mode=2),
    "nested": lambda: nested(),
    "nested_inner_first": lambda: nested(inner_first=True),
    "nested_bypassed_instance": lambda: nested(inner_instance_mode=4),
    "colliding_ids": colliding,
}


def built(name: str) -> dict:
    return copy.deepcopy(BUILT[name]())


RETIRED = "3b7c9d1e-4f5a-4b6c-8d7e-9f0a1b2c3d03"


def replaced():
    """Nodes whose types this ComfyUI lacks and whose successors the server registers
    (/node_replacements, 0.33+): T2IAdapterLoader and SDV_img2vid_Conditioning (core's; the
    second maps by name), WanMaskTestRetiredScale (the test helpers': old_widget_ids, set_value,
    output 1 -> 0, its ``mask`` link dropped) and, inside a subgraph, WanMaskTestRetiredLatent."""
    inner = subgraph(RETIRED, "Retired latent", [], [("LATENT", "LATENT", [51])],
                     [node(21, "WanMaskTestRetiredLatent", [], [("LATENT", "LATENT", [51])], [320, 192],
                           title="Old latent")],
                     [link(51, 21, 0, -20, 0, "LATENT")])
    nodes = [node(1, "LoadImage", [], [("IMAGE", "IMAGE", [11, 15]), ("MASK", "MASK", [16])], ["example.png", "image"]),
             node(2, "T2IAdapterLoader", [], [("CONTROL_NET", "CONTROL_NET", [])], ["t2i.safetensors"]),
             node(3, "CLIPVisionLoader", [], [("CLIP_VISION", "CLIP_VISION", [12])], ["cv.safetensors"]),
             node(4, "VAELoader", [], [("VAE", "VAE", [13])], ["v.safetensors"]),
             node(5, "SDV_img2vid_Conditioning",
                  [("clip_vision", "CLIP_VISION", 12), ("init_image", "IMAGE", 11), ("vae", "VAE", 13)],
                  [("positive", "CONDITIONING", []), ("negative", "CONDITIONING", []), ("latent", "LATENT", [])],
                  [512, 320, 9, 100, 8, 0.5], title="Old SVD"),
             node(6, "WanMaskTestRetiredScale", [("pixels", "IMAGE", 15), ("mask", "MASK", 16)],
                  [("MASK", "MASK", []), ("IMAGE", "IMAGE", [17])], [1.5], title="Old scale"),
             node(7, "PreviewImage", [("images", "IMAGE", 17)], [], []),
             node(10, RETIRED, [], [("LATENT", "LATENT", [18])], [], title="Retired group"),
             node(8, "SaveLatent", [("samples", "LATENT", 18)], [], ["latents/retired"])]
    links = [[11, 1, 0, 5, 1, "IMAGE"], [12, 3, 0, 5, 0, "CLIP_VISION"], [13, 4, 0, 5, 2, "VAE"],
             [15, 1, 0, 6, 0, "IMAGE"], [16, 1, 1, 6, 1, "MASK"], [17, 6, 1, 7, 0, "IMAGE"],
             [18, 10, 0, 8, 0, "LATENT"]]
    return root(nodes, links, [inner])


def retired_latent():
    """WanMaskTestRetiredLatent (w 320, h 192), replaced by EmptyLatentImage, -> SaveLatent: it runs."""
    nodes = [node(1, "WanMaskTestRetiredLatent", [], [("LATENT", "LATENT", [11])], [320, 192], title="Old latent"),
             node(2, "SaveLatent", [("samples", "LATENT", 11)], [], ["latents/retired"])]
    return root(nodes, [[11, 1, 0, 2, 0, "LATENT"]], [])
