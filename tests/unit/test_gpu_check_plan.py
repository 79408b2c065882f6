"""The GPU check's plan, time estimates and target verdicts (benchmarks/gpu/plan.py, targets.py),
without ComfyUI or a GPU."""
import pytest

from comfyui_wanmasking.benchmarks.gpu import plan as plans
from comfyui_wanmasking.benchmarks.gpu import targets


def test_the_default_plan_fits_8_minutes_on_one_h100_and_quick_is_smaller():
    h100 = plans.PROFILES["H100"]
    full, quick = (plans.estimate(plans.make_plan(n), h100) for n in ("full", "quick"))
    assert full["total"] <= 8 * 60
    assert quick["total"] < full["total"] and quick["stages"]["vae"] < full["stages"]["vae"]
    assert all(s > 0 for s in full["stages"].values())
    text = plans.format_estimate(plans.make_plan("full"), full)
    assert all(f"  {s} " in text for s in ("startup", "vae", "sampler", "mask", "tests", "total"))


def test_the_full_plan_runs_both_sizes_in_both_precisions_bf16_first():
    runs = plans.make_plan("full").vae
    assert [(r.label, r.dtype) for r in runs] == [("81x480x832", "bf16"), ("81x720x1280", "bf16"),
                                                   ("81x480x832", "fp32"), ("81x720x1280", "fp32")]
    assert all(r.cases[0] == "native" for r in runs)  # every ratio is against native of the same run
    assert plans.make_plan("quick").vae == runs[:1]
    assert runs[0].latent_shape == (1, 16, 21, 60, 104)


def test_larger_work_takes_longer_in_the_estimate():
    h100 = plans.PROFILES["H100"]
    bf16_480, bf16_720, fp32_480 = (r for r in plans.make_plan("full").vae[:3])
    assert plans.decode_seconds(bf16_720, h100) > plans.decode_seconds(bf16_480, h100)
    assert plans.decode_seconds(fp32_480, h100) == pytest.approx(2 * plans.decode_seconds(bf16_480, h100), rel=0.01)
    assert plans.case_seconds(bf16_480, "offload", h100) > plans.case_seconds(bf16_480, "ours", h100)
    assert plans.case_seconds(bf16_720, "tiled", h100) > plans.case_seconds(bf16_720, "ours", h100)


def test_calibration_scales_the_cases_still_to_run_by_the_measured_rate():
    c = plans.Calibration()
    assert c.predict("bf16", 10.0) == 10.0
    c.update("bf16", 5.0, 10.0)
    assert c.predict("bf16", 8.0) == 4.0 and c.predict("fp32", 8.0) == 4.0


def gpu_rows(peaks: dict, times: dict) -> dict:
    rows = [{"size": "81x480x832", "dtype": "bf16", "case": c, "label": c, "status": "measured", "peak_bytes": peaks[c],
             "time_s": times[c], "vs_untiled_max": 0.5 if "tiled" in c else None} for c in peaks]
    return {"env": {"cuda_device": "NVIDIA H100", "link_h2d_gbs": 50.0},
            "vae": {"rows": rows, "traffic": {"81x480x832 bf16": {"bytes_per_latent_frame": 2**30, "latent_frames": 21,
                                                                   "cache_bytes": 2**31}}, "bf16_vs_fp32": []}}


def test_targets_are_judged_against_native_of_the_same_run():
    gib = 2**30
    data = gpu_rows({"native": 4 * gib, "ours": 3 * gib, "offload": gib, "tiled_offload": gib // 4,
                     "tiled": 2 * gib, "native_tiled": 3 * gib},
                    {"native": 10.0, "ours": 10.0, "offload": 14.0, "tiled_offload": 20.0, "tiled": 12.0,
                     "native_tiled": 13.0})
    verdicts = {t["target"]: t for t in targets.evaluate(data)}
    assert verdicts[targets.TEXT["untiled"]]["verdict"] == "met"  # 0.75x
    offload = verdicts[targets.TEXT["offload"]]
    assert offload["verdict"] == "missed" and offload["note"].startswith("over by 22 %")  # 1.4x time vs 1.15x
    assert "GiB each way per latent frame" in offload["note"] and "GB/s" in offload["note"]
    assert verdicts[targets.TEXT["tiled_offload"]]["verdict"] == "met"  # 0.0625x
    assert verdicts[targets.TEXT["tiled"]]["verdict"] == "met"


def test_without_a_gpu_every_target_is_not_measured_with_the_reason():
    data = gpu_rows({"native": None, "ours": None}, {"native": 1.0, "ours": 1.0})
    data["env"] = {"cuda_device": None}
    (untiled,) = targets.evaluate(data)
    assert untiled["verdict"] == "not measured" and "CUDA only" in untiled["note"]


def test_a_gpu_run_renders_every_table_and_a_strict_json(tmp_path):
    """The CUDA-only fields (peaks, links, sync counts) go through the report as a GPU run fills them."""
    import json

    from comfyui_wanmasking.benchmarks.gpu.report import Report

    gib = 2**30
    report = Report(tmp_path, "python benchmarks/run.py gpu_check", "full", {"total": 452.0, "profile": "H100"}, {})
    data = gpu_rows({"native": 4 * gib, "ours": 3 * gib, "offload": gib},
                    {"native": 10.0, "ours": 9.0, "offload": 12.0})
    report.data["env"] = {"cuda_device": "NVIDIA H100 80GB HBM3", "driver": "580.1", "torch": "2.14.1", "cuda": "13.0",
                          "cudnn": 92400, "comfyui": "0.33.0", "python": "3.11", "tf32_cudnn": True,
                          "tf32_matmul": False, "link_h2d_gbs": 52.0, "link_d2h_gbs": 50.0}
    report.data["vae"].update(data["vae"], bf16_vs_fp32=[{"size": "81x480x832", "ours_max": 0.05, "native_max": 0.05,
                                                          "ours_vs_native": 0.04}])
    report.data["vae"]["rows"][1].update(traced_bytes=int(2.5 * gib), max_abs_diff=0.01, time_ratio=0.9,
                                         peak_ratio=0.75)
    report.data["sampler"] = {"measured": True, "latent": "[1, 16, 21, 60, 104]", "steps": 20, "repeats": 5,
                              "step_s": {"ours": 0.010, "native": 0.0102}, "ratio_paired_median": 0.98,
                              "ratio_min": 0.99, "kept": "patch bit-exact",
                              "syncs_per_step": {"mask_function": {"ours": 0.0, "native": 1.0},
                                                 "whole_call": {"ours": 0.1, "native": 1.1}}}
    report.data["mask"] = {"shape": "81x720x1280", "latent": "[1, 16, 21, 90, 160]", "repeats": 15, "inner": 10,
                           "rows": [{"case": "mask.amax() (one read)", "time_s": 1e-4, "x_amax": 1.0},
                                    {"case": "pixel_mask_to_latent max/max", "time_s": 2e-4, "x_amax": 2.0}]}
    report.data["tests"] = {"files": 2, "counts": {"passed": 10, "failed": 1, "error": 0, "skipped": 0},
                            "cases": [{"name": "unit.test_x::test_y", "outcome": "failed", "message": "boom"}]}
    report.data["vae"]["rows"][0]["time_s"] = float("nan")  # a stray NaN must not break the JSON
    report.save()
    md = (tmp_path / "gpu_check.md").read_text()
    for text in ("NVIDIA H100 80GB HBM3", "52.0 GB/s", "| 81x480x832 | bf16 | ours |", "2.50 GiB / 3.00 GiB",
                 "host syncs, mask function | 0 | 1 |", "pixel_mask_to_latent max/max", "unit.test_x::test_y: failed"):
        assert text in md, text
    saved = json.loads((tmp_path / "gpu_check.json").read_text())
    assert saved["vae"]["rows"][0]["time_s"] is None
    assert "nan" not in md.lower()
    verdicts = {t["target"]: t["verdict"] for t in saved["targets"]}
    assert verdicts[targets.TEXT["syncs"]] == "met" and verdicts[targets.TEXT["step"]] == "met"
    assert verdicts[targets.TEXT["mask"]] == "met" and verdicts[targets.TEXT["tests"]] == "missed"
