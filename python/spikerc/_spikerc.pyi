"""Type stubs of the native module `spikerc._spikerc` (Rust, PyO3)."""

from __future__ import annotations

import os
from typing import Any, Mapping, Optional, Tuple, Union

import numpy as np
import numpy.typing as npt

__version__: str

_Path = Union[str, "os.PathLike[str]"]
_F32 = npt.NDArray[np.float32]

class SpikercError(ValueError):
    """Bad input or a failed engine run; the message names the file, key or number."""

class Artifact:
    """A compiled model (the contents of a `.spk` file)."""

    @property
    def precision(self) -> str: ...
    @property
    def time_steps(self) -> int: ...
    @property
    def model(self) -> str: ...
    @property
    def source(self) -> str: ...
    @property
    def nodes(self) -> int: ...
    @property
    def params(self) -> int: ...
    @property
    def spatial_divisor(self) -> int: ...
    @property
    def report(self) -> dict[str, Any]: ...
    def run(
        self,
        x: npt.NDArray[np.floating[Any]],
        threads: int = 0,
        engine: str = "event",
        tile: Optional[int] = None,
        overlap: int = 16,
    ) -> Tuple[_F32, dict[str, Any]]: ...
    def save(self, path: _Path) -> None: ...
    def to_bytes(self) -> bytes: ...
    def deploy(
        self, target: str = "lynxi:ka200-like", input_size: Tuple[int, int] = (256, 256)
    ) -> Deployment: ...

class Deployment:
    """A model mapped onto a many-core accelerator."""

    @property
    def manifest(self) -> dict[str, Any]: ...
    @property
    def summary(self) -> dict[str, Any]: ...
    @property
    def input_size(self) -> Tuple[int, int]: ...
    @property
    def artifact(self) -> Artifact: ...
    def simulate(
        self,
        x: npt.NDArray[np.floating[Any]],
        threads: int = 0,
        report_html: Optional[_Path] = None,
    ) -> Tuple[_F32, dict[str, Any]]: ...
    def save(self, dir: _Path) -> None: ...

def compile(
    weights: Union[_Path, Mapping[str, npt.NDArray[Any]]],
    config: Optional[_Path] = None,
    precision: str = "f32",
    winograd: bool = True,
    source: Optional[str] = None,
    time_steps: Optional[int] = None,
    v_threshold: Optional[float] = None,
    tau: Optional[float] = None,
    v_reset: Optional[float] = None,
    soft_reset: bool = False,
    decay_input: Optional[bool] = None,
) -> Artifact: ...
def load(path: _Path) -> Union[Artifact, Deployment]: ...
def loads(data: bytes) -> Artifact: ...
def read_image(path: _Path) -> _F32: ...
def evaluate(
    artifact: Artifact,
    data: _Path,
    task: str = "denoise",
    sigma: float = 25.0,
    seed: int = 0,
    limit: Optional[int] = None,
    threads: int = 0,
    engine: str = "event",
) -> dict[str, Any]: ...
def _is_artifact(path: _Path) -> bool: ...
