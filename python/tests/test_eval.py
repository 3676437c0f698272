"""spikerc.evaluate: per-image and mean PSNR/SSIM of the shipped trained denoiser, checked
against the numbers `spikerc eval` recorded for it (models/trained/denoise-l3-d8)."""

from __future__ import annotations

import json

import pytest
import spikerc
from conftest import DATA, TRAINED

CBSD68 = DATA / "test" / "CBSD68"


@pytest.fixture(scope="module")
def trained_f16():
    return spikerc.compile(TRAINED / "model.safetensors", config=TRAINED / "meta.json", precision="f16")


def test_evaluate_matches_the_recorded_cli_eval(trained_f16):
    recorded = json.loads((TRAINED / "eval-cbsd68-s25-runtime-f16.json").read_text())
    scores = spikerc.evaluate(trained_f16, data=CBSD68, task="denoise", sigma=25, limit=2, threads=2)
    assert scores["schema_version"] == 1
    assert (scores["task"], scores["sigma"], scores["seed"]) == ("denoise", 25.0, 0)
    assert (scores["engine"], scores["precision"], scores["shard"]) == ("runtime", "f16", None)
    assert len(scores["images"]) == 2
    for got, want in zip(scores["images"], recorded["images"][:2]):
        assert got["name"] == want["name"]
        assert (got["height"], got["width"]) == (want["height"], want["width"])
        # Same seeded noise, same artifact, same engine arithmetic: the same numbers.
        for k in ("input_psnr_db", "psnr_db", "ssim"):
            assert got[k] == pytest.approx(want[k], abs=1e-9), k
        assert got["psnr_db"] > got["input_psnr_db"] + 4  # it denoises
    n = len(scores["images"])
    assert scores["mean_psnr_db"] == pytest.approx(sum(s["psnr_db"] for s in scores["images"]) / n)


def test_evaluate_from_paths_and_errors(trained_f16, tmp_path):
    spk = tmp_path / "m.spk"
    trained_f16.save(spk)
    a = spikerc.evaluate(spk, CBSD68, limit=1)
    b = spikerc.evaluate(TRAINED / "model.safetensors", CBSD68, limit=1,
                         config=TRAINED / "meta.json", precision="f16")
    assert a["images"] == b["images"]
    with pytest.raises(spikerc.SpikercError, match="apply to checkpoints only"):
        spikerc.evaluate(spk, CBSD68, limit=1, precision="f16")
    with pytest.raises(spikerc.SpikercError, match='task `deblur`: expected "denoise", "derain" or "dehaze"'):
        spikerc.evaluate(trained_f16, CBSD68, task="deblur")
    with pytest.raises(spikerc.SpikercError, match="sigma must be a finite number >= 0, found -1"):
        spikerc.evaluate(trained_f16, CBSD68, sigma=-1)
    with pytest.raises(spikerc.SpikercError, match="no images"):
        spikerc.evaluate(trained_f16, tmp_path)


def test_read_image(tmp_path):
    x = spikerc.read_image(CBSD68 / "101085.png")
    assert x.shape == (1, 3, 481, 321) and x.dtype.name == "float32"
    assert 0.0 <= float(x.min()) and float(x.max()) <= 1.0
    with pytest.raises(spikerc.SpikercError, match="absent.png"):
        spikerc.read_image(tmp_path / "absent.png")
