"""The frontend's own misreadings of templates in the frontend oracle's corpus
(test_frontend_oracle.py): per template, the frontend versions seen to differ, the inputs that
differ and why. The runner keeps the values saved in the workflow."""
from __future__ import annotations

# Differences that are the frontend's, per template: ((from, up to) the frontend versions seen to
# differ, the inputs {(node id, input)} that differ, why). The runner keeps the values saved in
# the workflow.
_NEWER_SAVE = ("frontend 1.27 misreads this workflow saved by a newer frontend: the KSampler inside the "
               "subgraph (its steps and cfg promoted) gets its seed as steps and its steps as cfg")
_NEWER_PROMOTED = ("saved by frontend 1.56.3; frontends 1.49.6 and 1.58.1 (and 1.27.10 for one) give the subgraph instance's saved widget values "
                   "to its promoted widgets in another order (1.49.6, 1.58.1: the checkpoint loader gets 4096, the KSampler's "
                   "steps 'flow'), which ComfyUI then refuses; the runner reads them in the subgraph's input order, "
                   "as saved")
_HUNYUAN = {("19:1", "ckpt_name"), ("19:4", "resolution"), ("19:7", "cfg"), ("19:7", "sampler_name"),
            ("19:7", "scheduler"), ("19:7", "steps"), ("19:9", "algorithm"), ("19:9", "threshold")}
# Seen on frontend 1.58.1 only (on ComfyUI 0.33; 1.49.6 reads these as the runner does):
_LIVE_DEFAULT_CAMERA = ("frontend 1.58.1 sends its 3D viewer's default camera (position 10,10,10, target 0,0,0), "
                        "not the camera saved on the node, which the runner sends")
_LINK_ON_PROMPT = ("frontend 1.58.1 puts the image link saved on the DynamicCombo's sub-input (model.images.image_1) "
                   "on the node's STRING prompt and drops the sub-input, which ComfyUI refuses (IMAGE on a STRING); "
                   "the runner keeps the link where it was saved")
_NUMBER_AS_TEXT = ("saved by a newer version of the node, one widget value more than 0.33's node has, which both read "
                   "by position; frontend 1.58.1 sends the number that falls on the STRING system_prompt as text, the "
                   "runner as saved; ComfyUI casts STRING inputs with str(), so both prompts run the same")
_FROM_1_58 = ((1, 49, 7), (1, 58, 1))
KNOWN_NEWEST = {
    "3d_pixal3d_trellis2_image_to_model.json": (_FROM_1_58, {("246", "viewport_state")}, _LIVE_DEFAULT_CAMERA),
    "api_hunyuan3d_model2uv.json": (_FROM_1_58, {("13", "image")}, _LIVE_DEFAULT_CAMERA),
    "api_hunyuan3d_part.json": (_FROM_1_58, {("36", "image")}, _LIVE_DEFAULT_CAMERA),
    "api_hunyuan3d_retopo_uv.json": (_FROM_1_58, {("265", "image")}, _LIVE_DEFAULT_CAMERA),
    "api_hunyuan3d_smart_topology.json": (_FROM_1_58, {("1", "image")}, _LIVE_DEFAULT_CAMERA),
    "api_bytedance_seedream_5_0_flash_image_edit.json": (_FROM_1_58, {("14", "prompt")},
                                                         _LINK_ON_PROMPT),
    "api_openai_gpt_image_25_flare_image_edit.json": (_FROM_1_58, {("374", "prompt")},
                                                      _LINK_ON_PROMPT),
    "api_openai_gpt_image_25_sunburst_image_edit.json": (_FROM_1_58, {("392", "prompt")},
                                                         _LINK_ON_PROMPT),
    "api_anthropic_claude_fable5_1.json": (_FROM_1_58, {("1", "system_prompt")}, _NUMBER_AS_TEXT),
    "api_anthropic_claude_opus_5_5.json": (_FROM_1_58, {("1", "system_prompt")}, _NUMBER_AS_TEXT),
    "api_nano_banana_2_1_t2i.json": (_FROM_1_58, {("1", "system_prompt")}, _NUMBER_AS_TEXT),
    "api_nano_banana_2_1_image_edit.json": (_FROM_1_58, {("4", "prompt"), ("4", "system_prompt")},
                                            _LINK_ON_PROMPT + "; and " + _NUMBER_AS_TEXT),
}
KNOWN = {**KNOWN_NEWEST,
    "templates_graphic_design_recomposer.json": (((1, 28, 0), (1, 49, 6)), {("143:157", "model.aspect_ratio")}, (
        "a PrimitiveNode inside the subgraph (saved '16:9') feeds a DynamicCombo's sub-widget "
        "(model.aspect_ratio); frontend 1.49.6 sends 'gemini-3-pro-image-preview', not one of that widget's "
        "choices, which ComfyUI refuses; the runner sends the primitive's saved value (1.27.10 fails to load it)")),
    "3d_hunyuan3d-v2.1.json": (((1, 27, 11), (1, 58, 1)), _HUNYUAN, _NEWER_PROMOTED),  # 1.27.10 reads it as saved
    "3d_hunyuan3d_image_to_model.json": (((0, 0, 0), (1, 58, 1)), {("91:3", "cfg"), ("91:3", "sampler_name"), ("91:3", "scheduler"),
                                                      ("91:3", "seed"), ("91:3", "steps"), ("91:54", "ckpt_name"),
                                                      ("91:66", "resolution"), ("91:81", "algorithm"),
                                                      ("91:81", "threshold")}, _NEWER_PROMOTED),
    "image_ovis_text_to_image.json": (((0, 0, 0), (1, 27, 10)), {("57:44", "steps"), ("57:44", "cfg")}, _NEWER_SAVE),
    "template_qwen_image_illustration_lora.json": (((0, 0, 0), (1, 27, 10)), {("76:3", "steps"), ("76:3", "cfg")}, _NEWER_SAVE),
}
