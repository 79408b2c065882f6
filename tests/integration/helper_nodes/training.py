"""Test-only node for the training tests: the model's x0 prediction on a given latent."""
import comfy.model_management
import comfy.sample
import torch


class WanMaskTestPredictX0:
    """x0 = model(sigma * noise + (1 - sigma) * latent) for fixed sigmas and noise seed, one batch item
    per sigma. The model runs in its normalized latent space (as the trainer sees it); the result is
    returned in the latent's own space. Lets a test measure how much a LoRA changed the model, cell
    by cell."""

    @classmethod
    def INPUT_TYPES(cls):
        return {"required": {
            "model": ("MODEL",), "latent": ("LATENT",), "positive": ("CONDITIONING",),
            "sigmas": ("STRING", {"default": "0.5"}), "seed": ("INT", {"default": 0, "min": 0, "max": 2**31}),
        }}

    RETURN_TYPES = ("LATENT",)
    FUNCTION = "predict"
    CATEGORY = "testing"

    def predict(self, model, latent, positive, sigmas, seed):
        comfy.model_management.load_models_gpu([model])
        base = model.model
        device = comfy.model_management.get_torch_device()
        sampling = model.get_model_object("model_sampling")
        x0 = base.process_latent_in(latent["samples"].float())
        noise = comfy.sample.prepare_noise(x0, seed)
        context = positive[0][0].to(device)
        outs = []
        with torch.no_grad():
            for s in (float(v) for v in sigmas.split(",")):
                sig = torch.full((x0.shape[0],), s)
                xt = sampling.noise_scaling(sig, noise, x0)
                x0_pred = base.apply_model(xt.to(device), sig.to(device), c_crossattn=context)
                outs.append(base.process_latent_out(x0_pred).float().cpu())
        return ({"samples": torch.cat(outs)},)


NODE_CLASS_MAPPINGS = {"WanMaskTestPredictX0": WanMaskTestPredictX0}


class WanMaskTestSaveLoss:
    """Writes a LOSS_MAP (dict of lists) to a JSON file for the test to read."""

    @classmethod
    def INPUT_TYPES(cls):
        return {"required": {"loss": ("LOSS_MAP",), "path": ("STRING", {"default": ""})}}

    RETURN_TYPES = ()
    FUNCTION = "save"
    OUTPUT_NODE = True
    CATEGORY = "testing"

    def save(self, loss, path):
        import json
        with open(path, "w") as f:
            json.dump({k: [float(v) for v in vals] for k, vals in loss.items()}, f)
        return {}


NODE_CLASS_MAPPINGS["WanMaskTestSaveLoss"] = WanMaskTestSaveLoss
