"""A CPU stand-in for a GPU array module, as strict as CuPy where host and device meet.

CI has no GPU, so the CuPy path of the engine would otherwise never run before it reaches a GPU
node. :data:`xp` behaves like the ``cupy`` module for the calls the engine makes, over
:class:`DeviceArray` values that refuse what CuPy refuses:

- implicit conversion to NumPy (``np.asarray(d)``, ``float(host @ d)``): ``TypeError``; the
  only way back to the host is ``d.get()``, as in CuPy;
- a NumPy array (not a scalar) as an operand of a ufunc or an ``xp`` function, other than the
  host-to-device copies ``xp.asarray`` / ``xp.array``: ``TypeError``;
- a device array is not an ``np.ndarray``, so host-only paths (SciPy BLAS) are not taken.

The arithmetic itself is NumPy's, so results can be compared with the CPU engine exactly.
"""

from __future__ import annotations

from typing import Any

import numpy as np
from numpy.lib.mixins import NDArrayOperatorsMixin

__all__ = ["DeviceArray", "xp"]

_HOST_TO_DEVICE = {"asarray", "array", "ascontiguousarray"}


class DeviceArray(NDArrayOperatorsMixin):
    """An array 'on the device': NumPy storage behind a CuPy-like boundary."""

    __slots__ = ("_a",)

    def __init__(self, a: np.ndarray) -> None:
        self._a = a

    def __array__(self, *args: Any, **kwargs: Any) -> np.ndarray:
        raise TypeError("Implicit conversion of a device array to a NumPy array is not allowed; "
                        "call .get() (as CuPy requires).")

    def get(self) -> np.ndarray:
        """A host copy."""
        return self._a.copy()

    # -- NumPy protocols: every operand must be on the device --------------------------------
    def __array_ufunc__(self, ufunc: Any, method: str, *inputs: Any, **kwargs: Any) -> Any:
        args = [_device_operand(v, ufunc.__name__) for v in inputs]
        if "out" in kwargs:
            kwargs["out"] = tuple(_device_operand(v, ufunc.__name__) for v in kwargs["out"])
        return _wrap(getattr(ufunc, method)(*args, **kwargs))

    def __array_function__(self, func: Any, types: Any, args: Any, kwargs: Any) -> Any:
        return _call(func, func.__name__, args, kwargs)

    # -- what the engine reads and writes ----------------------------------------------------
    shape = property(lambda self: self._a.shape)
    dtype = property(lambda self: self._a.dtype)
    ndim = property(lambda self: self._a.ndim)
    size = property(lambda self: self._a.size)
    T = property(lambda self: DeviceArray(self._a.T))
    real = property(lambda self: DeviceArray(self._a.real))
    imag = property(lambda self: DeviceArray(self._a.imag))

    def __getitem__(self, key: Any) -> Any:
        return _wrap(self._a[_index(key)])

    def __setitem__(self, key: Any, value: Any) -> None:
        self._a[_index(key)] = value._a if isinstance(value, DeviceArray) else value

    def __len__(self) -> int:
        return len(self._a)

    def __float__(self) -> float:  # a device-to-host sync of a 0-d result, allowed in CuPy
        return float(self._a)

    def __complex__(self) -> complex:
        return complex(self._a)

    def __bool__(self) -> bool:
        return bool(self._a)

    def __getattr__(self, name: str) -> Any:  # methods: conj, astype, reshape, any, max, ...
        if name.startswith("__"):  # no buffer or array-interface protocols: nothing host-side
            raise AttributeError(name)
        method = getattr(self._a, name)
        return lambda *args, **kwargs: _wrap(method(*[_device_operand(a, name) for a in args],
                                                    **kwargs))


def _index(key: Any) -> Any:
    if isinstance(key, tuple):
        return tuple(k._a if isinstance(k, DeviceArray) else k for k in key)
    return key._a if isinstance(key, DeviceArray) else key


def _device_operand(value: Any, where: str) -> Any:
    if isinstance(value, DeviceArray):
        return value._a
    if isinstance(value, np.ndarray) and value.ndim > 0:
        raise TypeError(f"{where}: a NumPy array of shape {value.shape} was mixed with device "
                        "arrays; CuPy refuses this. Copy it with xp.asarray first.")
    if isinstance(value, (list, tuple)):
        return type(value)(_device_operand(v, where) for v in value)
    return value


def _wrap(value: Any) -> Any:
    if isinstance(value, np.ndarray):
        return DeviceArray(value)
    if isinstance(value, tuple):
        return tuple(_wrap(v) for v in value)
    return value


def _call(func: Any, name: str, args: Any, kwargs: Any) -> Any:
    if name in _HOST_TO_DEVICE:
        first = args[0]._a if isinstance(args[0], DeviceArray) else args[0]
        return DeviceArray(np.array(first, *args[1:], copy=True, **kwargs))
    args = [_device_operand(a, name) for a in args]
    kwargs = {k: _device_operand(v, name) for k, v in kwargs.items()}
    return _wrap(func(*args, **kwargs))


class _Module:
    """``xp``: NumPy's functions and types behind the device boundary."""

    __name__ = "devicelike"

    def __getattr__(self, name: str) -> Any:
        attr = getattr(np, name)
        if isinstance(attr, type) or not callable(attr):
            return attr  # dtypes (float64, complex128), constants
        return lambda *args, **kwargs: _call(attr, name, args, kwargs)


xp = _Module()
