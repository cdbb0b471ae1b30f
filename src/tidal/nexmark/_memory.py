"""Output memory for generated batches, reused once nothing refers to it any more.

A fresh array of a few MB costs the kernel a page fault and a zero fill per page before the
generator writes it: about as much as computing the numeric bid columns. So output arrays of a
batch are slices of blocks kept here, and a block is handed out again once its reference count
says that nothing else holds it. That test is sound because every user of the memory holds a
reference to the block: numpy views keep their base, and Arrow buffers and Polars columns made
from them keep the array they came from. A block still in use is never touched; it simply
leaves the pool when newer blocks push it out, and lives on with its users.
"""

from __future__ import annotations

import sys
import threading

import numpy as np

__all__ = ["Recycler"]


def _refcount(blocks: list[np.ndarray], i: int) -> int:
    return sys.getrefcount(blocks[i])


# The count of a block referenced by its list only, measured with the same code as the check
# (interpreters count the call's own references differently).
_UNSHARED = _refcount([np.empty(0)], 0)


class Recycler:
    """Allocator of output arrays of at least ``min_bytes``, keeping up to ``max_bytes`` of blocks.

    >>> r = Recycler(min_bytes=0)
    >>> a = r.empty(1000, np.int64)
    >>> address = a.ctypes.data
    >>> r.empty(1000, np.int64).ctypes.data == address  # a is still alive: new memory
    False
    >>> del a
    >>> r.empty(1000, np.int64).ctypes.data == address  # reused
    True
    """

    def __init__(self, max_bytes: int = 256 << 20, min_bytes: int = 1 << 20) -> None:
        self.max_bytes = max_bytes
        self.min_bytes = min_bytes
        self._blocks: list[np.ndarray] = []  # least recently handed out first
        self._lock = threading.Lock()

    def empty(self, shape: int | tuple[int, ...], dtype: type | np.dtype) -> np.ndarray:
        """An uninitialised array, like ``np.empty``."""
        dtype = np.dtype(dtype)
        nbytes = int(np.prod(shape)) * dtype.itemsize
        if nbytes < self.min_bytes:
            return np.empty(shape, dtype=dtype)
        with self._lock:
            block = self._take(nbytes)
            return block[:nbytes].view(dtype).reshape(shape)

    def _take(self, nbytes: int) -> np.ndarray:
        blocks = self._blocks
        for i in range(len(blocks)):
            # a block up to twice as big as asked for, that nothing else holds
            if nbytes <= blocks[i].nbytes <= 2 * nbytes and _refcount(blocks, i) == _UNSHARED:
                block = blocks.pop(i)
                blocks.append(block)
                return block
        block = np.empty(nbytes, dtype=np.uint8)
        blocks.append(block)
        while sum(b.nbytes for b in blocks) > self.max_bytes:
            blocks.pop(0)  # our reference only: whoever still uses it keeps it
        return block
