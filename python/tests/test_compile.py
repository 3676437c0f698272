"""spikerc.compile: from a file and from a dict of arrays (same bits), hyperparameters as
keywords, .pt through torch, and errors that name the key or file (the CLI's messages)."""

from __future__ import annotations

import subprocess
import sys

import numpy as np
import pytest
import spikerc
from conftest import cli_binary, same_bits, write_safetensors


@pytest.mark.parametrize("precision", ["f32", "f16"])
def test_dict_of_arrays_compiles_to_the_same_bytes_as_the_file(l3, precision):
    from_file = spikerc.compile(l3.weights, config=l3.meta, precision=precision)
    from_dict = spikerc.compile(l3.state_dict(), config=l3.meta, precision=precision, source="model.safetensors")
    assert from_file.source == "model.safetensors"
    assert from_file.precision == precision
    assert from_file.to_bytes() == from_dict.to_bytes()
    y1, _ = from_file.run(l3.input)
    y2, _ = from_dict.run(l3.input)
    assert same_bits(y1, y2)


def test_dict_values_of_any_float_dtype_and_layout(l3):
    # f64 copies of f32 weights round back exactly; Fortran-ordered and strided views are read in
    # logical (C) order; the source defaults to "state_dict".
    ref = spikerc.compile(l3.state_dict(), config=l3.meta)
    assert ref.source == "state_dict"
    sd = {}
    for i, (k, v) in enumerate(l3.state_dict().items()):
        if v.dtype != np.float32:
            sd[k] = v
        elif i % 3 == 0:
            sd[k] = v.astype(np.float64)
        elif i % 3 == 1:
            sd[k] = np.asfortranarray(v)
        else:
            sd[k] = np.stack([v, np.zeros_like(v)])[0]  # a view into a larger block
    assert spikerc.compile(sd, config=l3.meta).to_bytes() == ref.to_bytes()


def test_hyperparameters_as_keywords(l3):
    cfg = spikerc.compile(l3.weights, config=l3.meta)
    # meta.json states ESDNet's defaults: the same values as keywords give the same artifact.
    kw = spikerc.compile(l3.weights, time_steps=4, v_threshold=0.15, tau=2.0, v_reset=0.0, decay_input=False)
    assert kw.to_bytes() == cfg.to_bytes()
    # Keywords override the config: each changes what the model computes.
    y_ref, s_ref = cfg.run(l3.input)
    for override in (dict(v_threshold=0.2), dict(tau=3.0), dict(soft_reset=True), dict(decay_input=True)):
        y, s = spikerc.compile(l3.weights, config=l3.meta, **override).run(l3.input)
        assert not same_bits(y, y_ref), override
        assert s["spikes"] != s_ref["spikes"], override
    # The hyperparameter checks of the importer apply (the CLI's message).
    with pytest.raises(spikerc.SpikercError) as e:
        spikerc.compile(l3.weights, config=l3.meta, time_steps=2)
    assert str(e.value) == (
        "hyperparameter `time_steps` = 2: smaller than the time-attention reduction_t 4 "
        "(the attention MLP would have 0 hidden units)"
    )
    with pytest.raises(spikerc.SpikercError, match="contradict"):
        spikerc.compile(l3.weights, v_reset=0.0, soft_reset=True)


def test_missing_key_raises_spikerc_error_naming_it(l3, tmp_path):
    sd = l3.state_dict()
    key = "decoder_level1.0.shortcut.1.running_var"
    shape = list(sd.pop(key).shape)
    with pytest.raises(spikerc.SpikercError) as e:
        spikerc.compile(sd, config=l3.meta)
    assert isinstance(e.value, ValueError)
    assert str(e.value) == f"missing key `{key}` (expected shape {shape})"
    # The same message from a file, naming the file.
    bad = tmp_path / "bad.safetensors"
    write_safetensors(bad, sd)
    with pytest.raises(spikerc.SpikercError) as e2:
        spikerc.compile(bad, config=l3.meta)
    assert str(e2.value) == f"{bad}: {e.value}"


def test_error_messages_equal_the_cli(l3, tmp_path):
    cli = cli_binary()
    if cli is None:
        pytest.skip("no spikerc CLI binary in target/ (cargo build) to compare with")
    sd = l3.state_dict()
    sd["patch_embed.proj.weight"] = sd["patch_embed.proj.weight"][:, :2]
    bad = tmp_path / "bad.safetensors"
    write_safetensors(bad, sd)
    for args in ([str(bad), "--config", str(l3.meta)], [str(tmp_path / "absent.safetensors")]):
        with pytest.raises(spikerc.SpikercError) as e:
            spikerc.compile(args[0], config=args[2] if len(args) > 2 else None)
        r = subprocess.run([str(cli), "compile", *args, "-o", str(tmp_path / "x.spk")],
                           capture_output=True, text=True, check=False)
        assert r.returncode == 1
        assert r.stderr.strip() == f"error: {e.value}"


def test_bad_inputs_name_the_problem(l3, tmp_path):
    with pytest.raises(spikerc.SpikercError, match=r"absent\.safetensors: cannot read"):
        spikerc.compile(tmp_path / "absent.safetensors")
    junk = tmp_path / "junk.bin"
    junk.write_bytes(b"definitely not a checkpoint")
    with pytest.raises(spikerc.SpikercError, match="unrecognised file format"):
        spikerc.compile(junk)
    with pytest.raises(spikerc.SpikercError, match="expected a checkpoint path or a dict of arrays, found int"):
        spikerc.compile(42)
    with pytest.raises(spikerc.SpikercError, match="the dict is empty"):
        spikerc.compile({})
    sd = l3.state_dict()
    sd["patch_embed.proj.weight"] = sd["patch_embed.proj.weight"].astype(np.int32)
    with pytest.raises(spikerc.SpikercError, match=r"key `patch_embed.proj.weight`: expected a floating-point tensor .* found i32"):
        spikerc.compile(sd)
    sd = l3.state_dict()
    sd["patch_embed.proj.weight"] = "weights"
    with pytest.raises(spikerc.SpikercError, match="key `patch_embed.proj.weight`"):
        spikerc.compile(sd)
    with pytest.raises(spikerc.SpikercError, match='precision `f8`: expected "f32" or "f16"'):
        spikerc.compile(l3.weights, precision="f8")
    with pytest.raises(spikerc.SpikercError, match=r"meta\.json: config: "):
        cfg = tmp_path / "meta.json"
        cfg.write_text('{"time_steps": "four"}')
        spikerc.compile(l3.weights, config=cfg)


def test_pt_reads_without_torch(l3, monkeypatch):
    monkeypatch.setitem(sys.modules, "torch", None)  # makes `import torch` fail
    from_pt = spikerc.compile(l3.pt, config=l3.meta)
    ref = spikerc.compile(l3.weights, config=l3.meta, source="model.pt")
    assert from_pt.source == "model.pt"
    assert from_pt.to_bytes() == ref.to_bytes()


def test_pt_with_torch_gives_the_safetensors_artifact(l3):
    torch = pytest.importorskip("torch", reason="torch is not installed in this environment")
    from_pt = spikerc.compile(l3.pt, config=l3.meta)
    assert from_pt.source == "model.pt"
    ref = spikerc.compile(l3.weights, config=l3.meta, source="model.pt")
    assert from_pt.to_bytes() == ref.to_bytes()
    # torch tensors straight from a state_dict work too.
    sd = torch.load(l3.pt, map_location="cpu", weights_only=True)
    assert spikerc.compile(sd, config=l3.meta, source="model.pt").to_bytes() == ref.to_bytes()
