"""Artifact.deploy + Deployment.simulate: the simulator's output bits equal Artifact.run of the
same f16 artifact, the report dict carries the REPORT.json fields, deployments save and load."""

from __future__ import annotations

import json

import pytest
import spikerc
from conftest import same_bits

REPORT_FIELDS = {
    "schema_version", "model", "preset", "machine", "precision", "input_size", "images", "time_steps",
    "latency_cycles", "latency_ms", "energy_pj", "average_power_mw", "paper_energy_pj",
    "ann_equivalent_energy_pj", "snn_ann_energy_ratio", "ops", "energy_by_action_pj", "cores_used",
    "mean_utilisation", "steps", "modules", "cores", "assumed",
}


@pytest.fixture(scope="module")
def f16_and_deployment(l3):
    art = spikerc.compile(l3.weights, config=l3.meta, precision="f16")
    return art, art.deploy(target="lynxi:ka200-like", input_size=(48, 64))


def test_simulate_gives_the_bits_of_run_and_a_report(l3, f16_and_deployment):
    art, dep = f16_and_deployment
    y_sim, report = dep.simulate(l3.input, threads=2)
    y_run, stats = art.run(l3.input, threads=2)
    assert same_bits(y_sim, y_run)
    assert REPORT_FIELDS <= set(report)
    assert report["precision"] == "f16" and report["input_size"] == [48, 64]
    assert report["preset"] == "ka200-like" and report["images"] == 1
    assert report["latency_cycles"] > 0 and report["energy_pj"] > 0
    assert report["schema_version"] == 1 and isinstance(report["ops"]["weight_sram_read_bytes"], int)
    assert sum(report["energy_by_action_pj"].values()) == pytest.approx(report["energy_pj"], rel=1e-9)
    # The simulator counts the spikes the runtime fired.
    assert report["ops"]["spikes"] == sum(stats["spikes"].values())
    assert dep.input_size == (48, 64)
    assert dep.summary["cores_used"] == report["cores_used"]
    assert dep.artifact.to_bytes() == art.to_bytes()


def test_deployment_saves_loads_and_writes_html(l3, f16_and_deployment, tmp_path):
    _, dep = f16_and_deployment
    out = tmp_path / "deploy"
    dep.save(out)
    assert sorted(p.name for p in out.iterdir()) == ["manifest.json", "model.spk", "routes.bin", "weights.bin"]
    assert json.loads((out / "manifest.json").read_text()) == dep.manifest
    back = spikerc.load(out)
    assert isinstance(back, spikerc.Deployment)
    html = tmp_path / "report.html"
    y1, r1 = dep.simulate(l3.input)
    y2, r2 = back.simulate(l3.input, report_html=html)
    assert same_bits(y1, y2) and r1 == r2
    assert html.read_text().lstrip().lower().startswith("<!doctype html")


def test_deploy_and_simulate_errors(l3, f16_and_deployment, tmp_path):
    art, dep = f16_and_deployment
    with pytest.raises(spikerc.SpikercError, match="unknown target `gpu`"):
        art.deploy(target="gpu")
    with pytest.raises(spikerc.SpikercError, match=r"runs images of 45-48 x 61-64 \(reflect-padded to 48x64; compiled with --input-size\); the input is 32x32"):
        dep.simulate(l3.input[:, :, :32, :32].copy())
    with pytest.raises(spikerc.SpikercError, match="not a spikerc deployment"):
        spikerc.load(tmp_path)
