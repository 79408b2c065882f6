"""What ``/object_info`` says about a node's inputs, and where each widget's value sits.

An input is a widget (its value saved in a UI node's ``widgets_values``, in declaration order) or a
socket (a link). The functions here read the declared inputs (:func:`input_specs`, the inputs a
dynamic combo's chosen option adds), tell widgets from sockets, count the saved values a widget
takes (a seed's control value, a file combo's upload button), and read or write a node's
``widgets_values``.
"""
from __future__ import annotations

DYNAMIC_COMBO = "COMFY_DYNAMICCOMBO_V3"  # a V3 combo whose chosen option brings its own inputs ("name.sub")
WIDGET_TYPES = {"INT", "FLOAT", "STRING", "BOOLEAN", "COMBO", DYNAMIC_COMBO}
SEED_NAMES = ("seed", "noise_seed")
UPLOAD_FLAGS = ("image_upload", "video_upload", "audio_upload")
# Widgets of the frontend's own for these input types; their values are saved like any widget's.
FRONTEND_WIDGETS = {"COLOR", "COLORS", "CURVE", "BOUNDING_BOX", "BOUNDING_BOXES", "COMPOSITOR", "IMAGECOMPARE",
                    "LOAD_3D"}
VIEWPORT = "LOAD_3D"  # the frontend's 3D viewer: it sends the viewer's state, not the saved value
# Widgets whose value the frontend does not send as saved, but as this.
SENT_AS = {"IMAGECOMPARE": ["", ""]}
# Nodes the frontend gives widgets of its own after the declared ones, sent as inputs (the node
# takes any input): CustomCombo's chosen index and its options.
FRONTEND_EXTRA_WIDGETS = {
    "CustomCombo": lambda rest: {**({"index": rest[0]} if rest else {}),
                                 **{f"option{i}": v for i, v in enumerate(rest[1:], 1)}},
}
# Button widgets the frontend adds after a node's first widget (name -> the value it saves and
# sends; the server takes any input): Load3D's upload and clear buttons.
FRONTEND_BUTTONS = {
    "Load3D": {"upload 3d model": "upload3dmodel", "upload extra resources": "uploadExtraResources", "clear": "clear"},
}


def input_specs(info: dict) -> list[tuple[str, str, dict]]:
    """[(name, type, options)] in declaration order: required, then optional. A COMBO's choices
    are in ``options["options"]`` (V1 lists them as the type itself). Hidden inputs (``hidden``
    in their options) are listed too."""
    specs = []
    order = info.get("input_order") or {k: list(v) for k, v in info.get("input", {}).items()}
    for section in ("required", "optional"):
        declared = info.get("input", {}).get(section, {})
        for name in order.get(section, []):
            spec = declared.get(name)
            if spec is None:
                continue
            kind, opts = spec[0], dict(spec[1]) if len(spec) > 1 and isinstance(spec[1], dict) else {}
            if isinstance(kind, list):
                kind, opts["options"] = "COMBO", kind
            specs.append((name, kind, opts))
    return specs


def option_specs(kind: str, opts: dict, value) -> list[tuple[str, str, dict]]:
    """The inputs a dynamic combo's chosen option adds (none for other inputs or unknown choices)."""
    if kind != DYNAMIC_COMBO:
        return []
    option = next((o for o in opts.get("options", []) if isinstance(o, dict) and o.get("key") == value), None)
    return input_specs({"input": option["inputs"]}) if option else []


def widget_default(kind: str, opts: dict):
    """The value the frontend gives a widget the saved workflow lacks: its default, else the first choice."""
    if "default" in opts:
        return opts["default"]
    choices = opts.get("options") or []
    first = choices[0] if choices else None
    return first.get("key") if isinstance(first, dict) else first


def widget_kind(kind: str, opts: dict) -> str:
    """The widget type the frontend draws for an input (``widgetType`` overrides a socket type such
    as ``FLOAT,INT``)."""
    return opts.get("widgetType") or kind


def is_widget(kind: str, opts: dict) -> bool:
    """Whether the frontend gives an input a widget (and a place in ``widgets_values``): the basic
    types, and the frontend's own widgets (colors, curves, bounding boxes, ...) that inputs without
    a socket (``socketless``) declare."""
    if opts.get("forceInput", False):
        return False
    return widget_kind(kind, opts) in WIDGET_TYPES or bool(opts.get("socketless")) or \
        widget_kind(kind, opts) in FRONTEND_WIDGETS


def has_seed_control(name: str, kind: str, opts: dict) -> bool:
    """The frontend adds a 'control after generate' widget (one more saved value) to inputs that ask
    for it and, by legacy rule, to every INT named seed or noise_seed."""
    return bool(opts.get("control_after_generate")) or (widget_kind(kind, opts) == "INT" and name in SEED_NAMES)


def serialized_count(name: str, kind: str, opts: dict) -> int:
    """Values a widget takes in ``widgets_values``: a seed with control_after_generate and a file
    combo with an upload button serialize one extra value each."""
    upload = widget_kind(kind, opts) == "COMBO" and any(opts.get(f) for f in UPLOAD_FLAGS)  # not Painter's
    return 2 if has_seed_control(name, kind, opts) or upload else 1


def read_widgets(specs, values: list, pos: int, inputs: dict, prefix: str = "") -> int:
    """Fill ``inputs`` from positional ``widgets_values`` (from ``pos``; returns the next position).

    A dynamic combo's value is followed by its chosen option's widgets, named ``combo.sub`` as
    the frontend names them in the API prompt (the legacy seed rule looks at that full name, so
    a combo's ``seed`` has no control value). Widgets the saved list lacks (added to the node after
    the workflow was saved) get their defaults, as the frontend gives them. Hidden widgets are
    saved like the others (Painter's width and height).
    """
    for name, kind, opts in specs:
        if not is_widget(kind, opts):
            continue
        value = values[pos] if pos < len(values) else widget_default(kind, opts)
        inputs[prefix + name] = SENT_AS.get(widget_kind(kind, opts), value)
        pos += serialized_count(prefix + name, kind, opts)
        pos = read_widgets(option_specs(kind, opts, value), values, pos, inputs, f"{prefix}{name}.")
    return pos


def viewport_state(node: dict) -> dict:
    """What a 3D viewer widget (``LOAD_3D``) sends, headless: the camera saved on the node
    (``properties["Camera Config"]``; None when it was never moved) and no scene captures. The
    frontend sends its live viewer's state: the same camera once restored, and for the Load3D node
    captures of the rendered scene, which only a browser can make."""
    config = (node.get("properties") or {}).get("Camera Config")
    camera = dict(config["state"]) if isinstance(config, dict) and isinstance(config.get("state"), dict) else None
    if camera is not None:  # three.js vectors serialize with their isVector3 flag
        for key in ("position", "target"):
            if isinstance(camera.get(key), dict):
                camera[key] = {"isVector3": True, **camera[key]}
    return {"image": "", "mask": "", "normal": "", "recording": "", "camera_info": camera, "model_3d_info": []}



def declared_input_names(info: dict, inputs: dict) -> set[str]:
    """The input names a node of this type takes in this ComfyUI, given its values: every declared,
    non-hidden input, plus the ``combo.sub`` inputs of the options its dynamic combos choose."""
    names: set[str] = set()

    def walk(specs, prefix):
        for name, kind, opts in specs:
            names.add(prefix + name)
            walk(option_specs(kind, opts, inputs.get(prefix + name)), f"{prefix}{name}.")

    walk(input_specs(info), "")
    return names


def write_widgets(name: str, kind: str, opts: dict, inputs: dict, linked: bool = False, prefix: str = "") -> list:
    """The ``widgets_values`` entries of one widget (and of a dynamic combo's chosen option)."""
    value = inputs.get(prefix + name)
    value = widget_default(kind, opts) if linked or value is None else value
    out = [value] + (["fixed"] if has_seed_control(prefix + name, kind, opts) else [])
    if widget_kind(kind, opts) == "COMBO" and any(opts.get(f) for f in UPLOAD_FLAGS):
        out.append(None if opts.get("audio_upload") else "image")  # the upload button, as the frontend saves it
    for sub, sub_kind, sub_opts in option_specs(kind, opts, value):
        if is_widget(sub_kind, sub_opts):
            out += write_widgets(sub, sub_kind, sub_opts, inputs, prefix=f"{prefix}{name}.")
    return out


def upload_inputs(object_info: dict, class_types) -> dict[str, set[str]]:
    """Per node type, its file-choice inputs that take an uploaded file (a combo marked image_upload,
    video_upload or audio_upload in /object_info, as the frontend's upload button)."""
    out = {}
    for kind in set(class_types):
        info = object_info.get(kind) or {}
        for section in ("required", "optional"):
            for name, spec in (info.get("input", {}).get(section) or {}).items():
                if not isinstance(spec, (list, tuple)) or not spec:
                    continue
                opts = spec[1] if len(spec) > 1 and isinstance(spec[1], dict) else {}
                if (isinstance(spec[0], list) or spec[0] == "COMBO") and any(opts.get(f) for f in UPLOAD_FLAGS):
                    out.setdefault(kind, set()).add(name)
    return out
