"""spikerc from Python: compile, run, deploy, simulate and evaluate spiking image-restoration
networks (the SpikerIR family) with the spikerc toolchain.

    import spikerc
    art = spikerc.compile("model.safetensors", config="meta.json", precision="f16")
    y, stats = art.run(x, threads=2)          # x: float32 [N, 3, H, W] in [0, 1]
    art.save("model.spk"); art = spikerc.load("model.spk")
    dep = art.deploy(target="lynxi:ka200-like", input_size=(H, W))
    y, report = dep.simulate(x)
    scores = spikerc.evaluate(art, data="CBSD68", task="denoise", sigma=25)

The engines are the Rust crates the `spikerc` CLI uses (same bits, same messages); they run
with the GIL released. Every failure raises :class:`SpikercError`, a ``ValueError``.
"""

from __future__ import annotations

import os
from typing import Any, Mapping, Optional, Union

import numpy as np

from . import _spikerc
from ._spikerc import Artifact, Deployment, SpikercError, load, loads, read_image

__version__: str = _spikerc.__version__
__all__ = [
    "Artifact",
    "Deployment",
    "SpikercError",
    "compile",
    "evaluate",
    "load",
    "loads",
    "read_image",
    "__version__",
]

PathLike = Union[str, "os.PathLike[str]"]



def _to_numpy(key: str, value: Any) -> np.ndarray:
    """A state_dict value (numpy array, torch tensor, anything array-like) as a numpy array."""
    if isinstance(value, np.ndarray):
        return value
    if hasattr(value, "detach") and hasattr(value, "numpy"):  # a torch.Tensor
        t = value.detach().cpu()
        if t.is_floating_point() and str(t.dtype) not in ("torch.float16", "torch.float32", "torch.float64"):
            t = t.float()  # bfloat16 has no numpy dtype; widening to f32 is exact
        return t.numpy()
    try:
        return np.asarray(value)
    except Exception as e:  # noqa: BLE001 - any conversion failure is a bad value
        raise SpikercError(f"key `{key}`: cannot convert a {type(value).__name__} to an array: {e}") from None


def compile(  # noqa: A001 - the toolchain's verb
    weights: Union[PathLike, Mapping[str, Any]],
    config: Optional[PathLike] = None,
    precision: str = "f32",
    *,
    winograd: bool = True,
    source: Optional[str] = None,
    time_steps: Optional[int] = None,
    v_threshold: Optional[float] = None,
    tau: Optional[float] = None,
    v_reset: Optional[float] = None,
    soft_reset: bool = False,
    decay_input: Optional[bool] = None,
) -> Artifact:
    """Compiles a SpikerIR checkpoint into an :class:`Artifact` (as ``spikerc compile``).

    ``weights``: a ``.safetensors`` or PyTorch ``.pt`` file (``torch.save``, read in Rust: no
    ``torch`` package needed; training checkpoints around a state_dict are unwrapped), or a
    state_dict ``{key: array}`` (numpy arrays or torch tensors). The
    architecture is inferred from the keys and shapes. Hyperparameters: ``config`` (a
    ``meta.json``) then the keyword overrides, else ESDNet's defaults (T = 4, v_threshold 0.15,
    tau 2, hard reset to 0). ``precision``: ``"f32"`` or ``"f16"``. ``winograd=False`` computes
    every convolution directly. ``source`` is recorded in the artifact (default: the file name,
    or ``"state_dict"``).
    """
    hyper = dict(
        config=None if config is None else os.fspath(config),
        precision=precision,
        winograd=winograd,
        time_steps=time_steps,
        v_threshold=v_threshold,
        tau=tau,
        v_reset=v_reset,
        soft_reset=soft_reset,
        decay_input=decay_input,
    )
    if isinstance(weights, Mapping):
        tensors = {k: _to_numpy(str(k), v) for k, v in weights.items()}
        return _spikerc.compile(tensors, source=source, **hyper)
    if isinstance(weights, (str, os.PathLike)):
        return _spikerc.compile(os.fspath(weights), source=source, **hyper)
    raise SpikercError(
        f"weights: expected a checkpoint path or a dict of arrays, found {type(weights).__name__}"
    )


def evaluate(
    model: Union[Artifact, PathLike],
    data: PathLike,
    task: str = "denoise",
    sigma: float = 25.0,
    *,
    seed: int = 0,
    limit: Optional[int] = None,
    threads: int = 0,
    engine: str = "event",
    **compile_options: Any,
) -> dict:
    """PSNR and SSIM of a model on a test folder, per image and mean (as ``spikerc eval``).

    ``model``: an :class:`Artifact`, a ``.spk`` file, or a checkpoint (compiled now with
    ``compile_options``, e.g. ``config=...``, ``precision="f16"``). ``task``: ``"denoise"``
    (clean images in ``data``; Gaussian noise ``sigma`` on the 0-255 scale, seeded per image from
    ``seed`` and the file name, so runs repeat exactly), ``"derain"`` or ``"dehaze"``
    (``data/input`` paired with ``data/target``). Returns the ``spikerc eval --json`` document
    (docs/json.md): ``schema_version``, ``images`` (``name``, ``psnr_db``, ``ssim``,
    ``input_psnr_db``, ``height``, ``width``), ``mean_psnr_db``, ``mean_ssim``,
    ``mean_input_psnr_db``, ``task``, ``sigma``, ``seed``, ``engine``, ``precision``, ``wall_ms``.
    """
    if not isinstance(model, Artifact):
        path = os.fspath(model)
        if _spikerc._is_artifact(path):
            if compile_options:
                raise SpikercError(
                    f"{path}: is a compiled artifact; {', '.join(sorted(compile_options))} apply to checkpoints only"
                )
            model = load(path)
        else:
            model = compile(path, **compile_options)
    elif compile_options:
        raise SpikercError(
            f"evaluate: {', '.join(sorted(compile_options))} apply to checkpoints only; the model is an artifact"
        )
    return _spikerc.evaluate(
        model, os.fspath(data), task=task, sigma=sigma, seed=seed, limit=limit, threads=threads, engine=engine
    )
