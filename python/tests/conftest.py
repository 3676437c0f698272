"""Shared helpers of the spikerc Python tests.

The shared fixtures (``$SPIKERC_SHARED/fixtures``, default ``../shared`` next to the repository)
are read with a small safetensors reader written here on numpy alone, independent of the
package under test.
"""

from __future__ import annotations

import json
import os
import struct
from pathlib import Path

import numpy as np
import pytest

REPO = Path(__file__).resolve().parents[2]
SHARED = Path(os.environ.get("SPIKERC_SHARED", REPO.parent / "shared")).resolve()
FIXTURES = SHARED / "fixtures"
DATA = SHARED / "data"
TRAINED = REPO / "models" / "trained" / "denoise-l3-d8"

_DTYPES = {"F32": "<f4", "F64": "<f8", "F16": "<f2", "I64": "<i8", "I32": "<i4", "U8": "u1", "BOOL": "?"}


def read_safetensors(path: Path) -> dict[str, np.ndarray]:
    """Every tensor of a .safetensors file (header: u64 length + JSON; data little endian)."""
    raw = Path(path).read_bytes()
    (n,) = struct.unpack("<Q", raw[:8])
    header = json.loads(raw[8 : 8 + n])
    body = raw[8 + n :]
    out = {}
    for name, t in header.items():
        if name == "__metadata__":
            continue
        a, b = t["data_offsets"]
        out[name] = np.frombuffer(body[a:b], dtype=_DTYPES[t["dtype"]]).reshape(t["shape"]).copy()
    return out


def write_safetensors(path: Path, tensors: dict[str, np.ndarray]) -> None:
    """Writes tensors as .safetensors (keys sorted, as the reference writer does)."""
    names = {np.dtype(v): k for k, v in _DTYPES.items()}
    header, blobs, off = {}, [], 0
    for k in sorted(tensors):
        v = np.ascontiguousarray(tensors[k])
        v = v.astype(v.dtype.newbyteorder("<"))
        data = v.tobytes()
        header[k] = {"dtype": names[v.dtype], "shape": list(v.shape), "data_offsets": [off, off + len(data)]}
        blobs.append(data)
        off += len(data)
    h = json.dumps(header).encode()
    h += b" " * (-len(h) % 8)
    Path(path).write_bytes(struct.pack("<Q", len(h)) + h + b"".join(blobs))


class Fixture:
    """One shared fixture folder: checkpoint, meta.json and the reference outputs."""

    def __init__(self, name: str):
        self.dir = FIXTURES / name
        if not self.dir.is_dir():
            pytest.fail(f"shared fixture {self.dir} is missing; set SPIKERC_SHARED to the folder holding fixtures/")
        self.weights = self.dir / "model.safetensors"
        self.pt = self.dir / "model.pt"
        self.meta = self.dir / "meta.json"
        g = read_safetensors(self.dir / "golden.safetensors")
        self.input = g["input"].astype(np.float32)
        self.output = g["output"].astype(np.float32)
        self.spikes = {k[len("spikes/"):]: int(v[0]) for k, v in g.items() if k.startswith("spikes/")}

    def state_dict(self) -> dict[str, np.ndarray]:
        return read_safetensors(self.weights)


@pytest.fixture(scope="session")
def l3() -> Fixture:
    return Fixture("spikerir-l3-d16")


@pytest.fixture(scope="session")
def l4() -> Fixture:
    return Fixture("spikerir-l4-d16")


def cli_binary() -> Path | None:
    """The spikerc CLI built by `cargo build` / `cargo test` in this checkout, if any."""
    env = os.environ.get("SPIKERC_CLI")
    if env:
        return Path(env)
    for profile in ("debug", "release"):
        p = REPO / "target" / profile / "spikerc"
        if p.is_file():
            return p
    return None


def same_bits(a: np.ndarray, b: np.ndarray) -> bool:
    """Equal shape and identical float32 bit patterns."""
    a = np.ascontiguousarray(a, dtype=np.float32)
    b = np.ascontiguousarray(b, dtype=np.float32)
    return a.shape == b.shape and np.array_equal(a.view(np.uint32), b.view(np.uint32))
