"""The self check's behavioural probes (nodes/comfy_compat/self_check.py) fail, naming what changed, on
fakes that present a changed ComfyUI shape, and pass on fakes that behave as ComfyUI 0.3.64 / 0.33 do.
tests/integration/test_compat.py runs them on the real trees."""
from __future__ import annotations

import importlib.util
import sys
import types
from pathlib import Path

import pytest
import torch

COMPAT = Path(__file__).resolve().parents[2] / "nodes" / "comfy_compat"


@pytest.fixture(scope="module")
def probes():
    """nodes/comfy_compat loaded on its own, as the runner loads it (nodes/__init__ needs ComfyUI)."""
    name = "wanmask_comfy_compat_under_test"
    spec = importlib.util.spec_from_file_location(name, COMPAT / "__init__.py", submodule_search_locations=[str(COMPAT)])
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module
    try:
        spec.loader.exec_module(module)
        yield sys.modules[f"{name}.self_check"]
    finally:
        for key in [k for k in sys.modules if k == name or k.startswith(name + ".")]:
            del sys.modules[key]


# ---- POST /prompt ----------------------------------------------------------------------------------

class Response:
    def __init__(self, status, text):
        self.status, self.text = status, text


def server_class(routes):
    class FakeServer:
        def __init__(self, loop):
            FakeServer.instance = self
            self.routes = [types.SimpleNamespace(method=m, path=p, handler=h) for m, p, h in routes]
    return FakeServer


async def refuses_empty(request):
    body = await request.json()
    return Response(400, '{"error": {"type": "prompt_no_outputs"}}' if body.get("prompt") == {} else "{}")


async def queues_anything(request):
    await request.json()
    return Response(200, '{"prompt_id": "x"}')


def test_prompt_route_probe_passes_on_a_server_that_refuses_an_empty_prompt(probes):
    cls = server_class([("GET", "/prompt", queues_anything), ("POST", "/prompt", refuses_empty)])
    probes.probe_prompt_route(cls)
    assert "instance" not in vars(cls), "the probe leaves PromptServer.instance as it found it"
    cls.instance = running = object()
    probes.probe_prompt_route(cls)
    assert cls.instance is running


def test_prompt_route_probe_names_a_missing_route(probes):
    with pytest.raises(RuntimeError, match=r"no POST /prompt route"):
        probes.probe_prompt_route(server_class([("GET", "/prompt", refuses_empty)]))


def test_prompt_route_probe_names_a_handler_that_answers_otherwise(probes):
    with pytest.raises(AssertionError, match=r"POST /prompt answered an empty prompt with 200"):
        probes.probe_prompt_route(server_class([("POST", "/prompt", queues_anything)]))


# ---- the denoise-mask function ---------------------------------------------------------------------

def inpaint_step(call_mask_function: bool, extra_keys=("model", "sigmas")):
    """A KSamplerX0Inpaint-like step (the shape 0.3.64 and 0.33 share), optionally without the hook."""
    class Step:
        def __init__(self, model, sigmas):
            self.inner_model, self.sigmas = model, sigmas

        def __call__(self, x, sigma, denoise_mask, model_options={}, seed=None):  # noqa: B006 - native's signature
            if call_mask_function and "denoise_mask_function" in model_options:
                extra = {"model": self.inner_model, "sigmas": self.sigmas}
                denoise_mask = model_options["denoise_mask_function"](
                    sigma, denoise_mask, extra_options={k: extra[k] for k in extra_keys})
            keep = 1.0 - denoise_mask
            x = x * denoise_mask + self.inner_model.inner_model.scale_latent_inpaint(
                x=x, sigma=sigma, noise=self.noise, latent_image=self.latent_image) * keep
            return self.inner_model(x, sigma, model_options=model_options, seed=seed) * denoise_mask \
                + self.latent_image * keep
    return Step


def test_denoise_mask_probe_passes_on_the_native_shape(probes):
    probes.probe_denoise_mask_function(inpaint_step(True))


def test_denoise_mask_probe_names_a_step_without_the_hook(probes):
    with pytest.raises(AssertionError, match=r"never calls model_options\['denoise_mask_function'\]"):
        probes.probe_denoise_mask_function(inpaint_step(False))


def test_denoise_mask_probe_names_changed_extra_options(probes):
    with pytest.raises(AssertionError, match=r"extra_options hold \['model'\], not the step's model and sigmas"):
        probes.probe_denoise_mask_function(inpaint_step(True, extra_keys=("model",)))


# ---- comfy.sd.VAE ----------------------------------------------------------------------------------

def test_vae_probe_names_a_missing_attribute(probes):
    class VAEWithoutPatcher:  # a VAE that builds its patcher lazily, under another name
        def __init__(self, sd=None, device=None, config=None, dtype=None, metadata=None):
            self.first_stage_model, self.device, self.vae_dtype, self.latent_channels = None, device, dtype, 4
            self.memory_used_decode = self.memory_used_encode = lambda shape, dtype: 0

    with pytest.raises(AssertionError, match=r"comfy.sd.VAE has no patcher"):
        probes.probe_vae_wiring(VAEWithoutPatcher)


def test_vae_probe_names_a_memory_estimate_with_another_signature(probes):
    class VAEWithNewEstimates:
        def __init__(self, sd=None, device=None, config=None, dtype=None, metadata=None):
            self.first_stage_model = self.patcher = None
            self.device, self.vae_dtype, self.latent_channels = device, dtype, 4
            self.memory_used_decode = self.memory_used_encode = lambda frames, height, width, dtype: 0

    with pytest.raises(AssertionError, match=r"memory_used_decode no longer takes \(shape, dtype\)"):
        probes.probe_vae_wiring(VAEWithNewEstimates)


def test_vae_probe_refuses_a_vae_that_cannot_be_built_from_a_config(probes):
    class VAEWithoutConfig:
        def __init__(self, sd=None, device=None, dtype=None, metadata=None):
            raise AssertionError("not reached")

    with pytest.raises(TypeError, match="config"):
        probes.probe_vae_wiring(VAEWithoutConfig)


# ---- context windows -------------------------------------------------------------------------------

def calc_cond_batch_with_handler(model, conds, x_in, timestep, model_options):
    handler = model_options.get("context_handler", None)
    if handler is None or not handler.should_use_context(model, conds, x_in, timestep, model_options):
        return [torch.zeros_like(x_in)]
    return handler.execute(lambda *a: [torch.zeros_like(x_in)], model, conds, x_in, timestep, model_options)


def calc_cond_batch_without_handler(model, conds, x_in, timestep, model_options):
    return [torch.zeros_like(x_in)]


def test_context_handler_probe_passes_on_the_native_shape(probes):
    probes.probe_context_handler(calc_cond_batch_with_handler)


def test_context_handler_probe_names_a_calc_cond_batch_that_ignores_the_handler(probes):
    with pytest.raises(AssertionError, match=r"no longer hands the step to model_options\['context_handler'\]"):
        probes.probe_context_handler(calc_cond_batch_without_handler)


def test_no_probe_reads_source_text():
    """Detection by behaviour: the self check never reads ComfyUI's source (inspect.getsource, open)."""
    text = (COMPAT / "self_check.py").read_text(encoding="utf-8")
    for reading in ("getsource", "open(", "read_text", "co_names", "co_code"):
        assert reading not in text, reading
