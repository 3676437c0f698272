"""Artifact.run against the shared fixtures' reference outputs, engines and thread counts,
save/load/pickle round trips, stats, input errors, and the GIL released while running."""

from __future__ import annotations

import pickle
import threading

import numpy as np
import pytest
import spikerc
from conftest import same_bits


@pytest.mark.parametrize("name", ["l3", "l4"])
def test_run_reproduces_the_fixture_golden_output(name, request):
    fx = request.getfixturevalue(name)
    art = spikerc.compile(fx.weights, config=fx.meta)
    y, stats = art.run(fx.input, threads=2)
    assert y.dtype == np.float32 and y.shape == fx.output.shape
    assert float(np.max(np.abs(y - fx.output))) <= 1e-4
    # Every LIF module's spike count equals the reference implementation's.
    assert stats["spikes"] == fx.spikes
    assert stats["schema_version"] == 1
    assert stats["engine"] == "event" and stats["threads"] == 2
    assert stats["images"][0]["name"] is None and stats["images"][0]["shape"] == list(fx.input.shape)
    assert stats["input_shapes"] == [list(fx.input.shape)]
    assert stats["ops"]["total"]["spikes_out"] == sum(fx.spikes.values())


def test_engines_and_thread_counts_give_the_same_bits(l3):
    art = spikerc.compile(l3.weights, config=l3.meta)
    y1, s1 = art.run(l3.input, threads=1)
    y2, s2 = art.run(l3.input, threads=2)
    yi, si = art.run(l3.input, engine="interp")
    assert same_bits(y1, y2) and same_bits(y1, yi)
    assert s1["spikes"] == s2["spikes"] == si["spikes"]
    assert si["engine"] == "interp" and si["simd"] is None


def test_any_size_and_float64_input(l3):
    art = spikerc.compile(l3.weights, config=l3.meta)
    x = l3.input[:, :, :45, :61]  # not a multiple of the divisor: padded and cropped back
    y, _ = art.run(x)
    assert y.shape == (1, 3, 45, 61)
    for dtype in (np.float64, np.float16):  # other float dtypes are cast to float32
        yd, _ = art.run(x.astype(dtype))
        want, _ = art.run(x.astype(dtype).astype(np.float32))
        assert same_bits(yd, want), dtype
    assert same_bits(art.run(x.astype(np.float64))[0], y)  # f32 -> f64 -> f32 is exact


def test_save_load_and_pickle_round_trip(l3, tmp_path):
    art = spikerc.compile(l3.weights, config=l3.meta, precision="f16")
    path = tmp_path / "model.spk"
    art.save(path)
    assert path.read_bytes() == art.to_bytes()
    back = spikerc.load(path)
    assert isinstance(back, spikerc.Artifact)
    assert back.to_bytes() == art.to_bytes()
    assert (back.precision, back.time_steps, back.params) == ("f16", 4, art.params)
    unpickled = pickle.loads(pickle.dumps(art))
    assert unpickled.to_bytes() == art.to_bytes()
    y, _ = art.run(l3.input)
    y2, _ = unpickled.run(l3.input)
    assert same_bits(y, y2)
    assert spikerc.loads(art.to_bytes()).to_bytes() == art.to_bytes()


def test_artifact_properties_and_report(l3):
    art = spikerc.compile(l3.weights, config=l3.meta, precision="f16")
    assert "L=3 dim=16" in art.model
    assert art.spatial_divisor == 4
    assert art.params == 495227
    assert "spikerc.Artifact" in repr(art)
    q = art.report["quantization"]
    assert q["max_abs_error"] > 0 and len(q["layers"]) > 0


def test_bad_input_and_files(l3, tmp_path):
    art = spikerc.compile(l3.weights, config=l3.meta)
    with pytest.raises(spikerc.SpikercError, match=r"input has shape \[3, 48, 64\], expected \[N, 3, H, W\]"):
        art.run(l3.input[0])
    with pytest.raises(spikerc.SpikercError, match="expected a float32 array .* found dtype u8"):
        art.run((l3.input * 255).astype(np.uint8))
    with pytest.raises(spikerc.SpikercError, match=r"input has shape \[1, 4, 16, 16\], expected \[N, 3, H, W\]"):
        art.run(np.zeros((1, 4, 16, 16), np.float32))
    with pytest.raises(spikerc.SpikercError, match='engine `gpu`: expected "event" or "interp"'):
        art.run(l3.input, engine="gpu")
    with pytest.raises(spikerc.SpikercError, match="cannot read"):
        spikerc.load(tmp_path / "absent.spk")
    (tmp_path / "junk.spk").write_bytes(b"junk" * 10)
    with pytest.raises(spikerc.SpikercError, match="junk.spk"):
        spikerc.load(tmp_path / "junk.spk")
    with pytest.raises(spikerc.SpikercError, match="<bytes>"):
        spikerc.loads(art.to_bytes()[:100])


def test_run_releases_the_gil(l4):
    art = spikerc.compile(l4.weights, config=l4.meta)
    x = np.concatenate([l4.input] * 2)
    art.run(x[:1])  # lower the program first
    started, done = threading.Event(), threading.Event()

    def work():
        started.set()
        art.run(x, threads=1)
        done.set()

    t = threading.Thread(target=work)
    t.start()
    started.wait()
    ticks = 0
    while not done.is_set():  # advances only while the engine does not hold the GIL
        ticks += 1
    t.join()
    # With the GIL held through the run, this thread could not run between `started` and `done`
    # (a handful of ticks at most); released, it spins for the whole run.
    assert ticks > 10_000, ticks
