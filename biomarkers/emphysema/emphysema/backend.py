"""Array backend switch: numpy/scipy on CPU, cupy/cupyx on GPU (imported lazily)."""
from __future__ import annotations

from dataclasses import dataclass
from types import ModuleType
from typing import Any

import numpy as np
import scipy.ndimage as sndi

from .errors import EmphysemaError


@dataclass(frozen=True)
class Backend:
    """Array module, ndimage module and transfer helpers for one device."""

    name: str
    xp: ModuleType
    ndi: ModuleType

    def asarray(self, a: Any) -> Any:
        """Move a host array to the device (no copy on CPU)."""
        return self.xp.asarray(a)

    def to_cpu(self, a: Any) -> np.ndarray:
        """Bring a device array back to host memory."""
        if self.name == "cpu":
            return np.asarray(a)
        return self.xp.asnumpy(a)


CPU = Backend("cpu", np, sndi)


def get_backend(device: str) -> Backend:
    """Return the backend for 'cpu' or 'gpu'; fail clearly when no GPU stack exists."""
    if device == "cpu":
        return CPU
    try:
        import cupy  # noqa: PLC0415 - optional, heavy, GPU-only
        import cupyx.scipy.ndimage as cndi  # noqa: PLC0415

        if cupy.cuda.runtime.getDeviceCount() < 1:
            raise RuntimeError("no CUDA device")
    except Exception as exc:  # cupy raises several types when CUDA is missing
        raise EmphysemaError(
            "--device gpu was requested but no usable GPU was found "
            f"(CuPy/CUDA: {exc}). Run with --device cpu; results are identical."
        ) from exc
    return Backend("gpu", cupy, cndi)
