"""The embedded runner relies on no signature of ComfyUI's executor, validation or prompt queue: against
an in-process ComfyUI in the shapes that came after 0.33 (``execute`` and ``validate_prompt`` take an
asset manager, the queue's methods take new required arguments, ``send_sync`` is called with more,
``start_comfyui`` returns one more thing) it runs a prompt through the server's own routes and worker."""
from __future__ import annotations

import asyncio
import types
import uuid

import pytest

from comfyui_wanmasking.tests.unit import stub_comfyui as newer
from comfyui_wanmasking.wanmask_runner.embedded_backend import EmbeddedBackend, load_compat

PROMPT = {"9": {"class_type": "Save", "inputs": {"prefix": "shot"}, "_meta": {"title": "Saver"}}}


def started_backend(comfy: newer.NewerComfyUI) -> EmbeddedBackend:
    """The embedded backend on a started ComfyUI, as its constructor sets it up after importing main.py."""
    backend = EmbeddedBackend.__new__(EmbeddedBackend)
    backend.attach(*load_compat().start_comfyui(comfy))
    return backend


def test_the_fake_presents_the_new_shapes():
    """What the runner must not call itself fails without the arguments it could not guess."""
    with newer.NewerComfyUI() as comfy:
        with pytest.raises(TypeError, match="asset_manager"):
            newer.PromptExecutor(comfy.server).execute(PROMPT, "p", {}, ["9"])
        with pytest.raises(TypeError, match="asset_manager"):
            asyncio.run(newer.validate_prompt("p", PROMPT, None))
        for call in (lambda q: q.put((0, "p", PROMPT, {}, ["9"], {})), lambda q: q.get(timeout=0),
                     lambda q: q.get_history(prompt_id="p")):
            with pytest.raises(TypeError):
                call(comfy.server.prompt_queue)


def test_a_prompt_runs_through_the_servers_routes_and_worker():
    events = []
    with newer.NewerComfyUI() as comfy:
        backend = started_backend(comfy)
        assert backend.server is comfy.server and backend.loop is comfy.loop  # picked by what they are
        assert backend.worker is comfy.worker
        prompt_id = str(uuid.uuid4())
        result = backend.run(PROMPT, prompt_id, on_event=lambda e, d: events.append((e, d.get("node"))), timeout=20)
    assert result.ok and result.status == "success"
    assert result.outputs == {"9": {"images": [{"filename": "shot_00001_.png", "subfolder": "", "type": "output"}]}}
    assert comfy.server.executed == [prompt_id]
    assert ("executing", "9") in events and events[-1] == ("executing", None)


def test_a_refused_prompt_gives_the_servers_node_errors():
    with newer.NewerComfyUI() as comfy:
        backend = started_backend(comfy)
        result = backend.run({"3": {"class_type": "Gone", "inputs": {}}}, str(uuid.uuid4()), timeout=20)
    assert not result.ok and result.status == "invalid"
    assert result.node_errors["3"]["errors"][0]["details"] == "Gone"
    assert result.error["type"] == "prompt_outputs_failed_validation" and comfy.server.executed == []


def test_a_request_part_the_runner_does_not_carry_is_named():
    compat = load_compat()
    with newer.NewerComfyUI() as comfy:
        async def post_prompt(request):
            return newer.Response({"from": request.remote})

        comfy.server.routes[0] = newer.Route("POST", "/prompt", post_prompt)
        with pytest.raises(compat.RequestPartMissing, match=r"POST /prompt handler reads request\.remote.*--server"):
            compat.post_prompt(comfy.server, comfy.loop, {"prompt": PROMPT})


@pytest.mark.parametrize("returned,found", [
    (lambda loop, server: (loop, server, lambda: None), "0.33: loop, server, start function"),
    (lambda loop, server: (server, lambda: None, loop, object()), "more things, another order"),
])
def test_start_comfyui_takes_the_loop_and_server_by_what_they_are(returned, found):
    loop, server = asyncio.new_event_loop(), newer.NewerPromptServer(None)
    try:
        main = types.SimpleNamespace(start_comfyui=lambda asyncio_loop=None: returned(loop, server))
        assert load_compat().start_comfyui(main) == (loop, server), found
    finally:
        loop.close()


def test_a_start_comfyui_that_needs_arguments_or_returns_no_server_is_named():
    compat = load_compat()
    with pytest.raises(RuntimeError, match=r"start_comfyui\(asset_manager\) cannot be called without arguments"):
        compat.start_comfyui(types.SimpleNamespace(start_comfyui=lambda asset_manager: None))
    with pytest.raises(RuntimeError, match=r"returned \['int'\], without an event loop and a PromptServer"):
        compat.start_comfyui(types.SimpleNamespace(start_comfyui=lambda: 3))
