"""``NpyFile``: an ``.npy`` array on disk, read row by row with plain reads.

A memory map would do the same job, but every page it touches counts towards the
process's resident memory until the kernel drops it, so reading a 4 GB split once
through a map shows as 4 GB of RSS. Reads into a fresh buffer keep the process at the
rows it asked for; the kernel's page cache still makes repeated reads fast.
"""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np


class NpyFile:
    """A C-ordered ``.npy`` file, indexed like an array: an int, a slice or rows."""

    def __init__(self, path: Path, shape: tuple[int, ...] | None = None, dtype=np.uint8):
        """``shape`` given: a headerless file of that shape and ``dtype`` (see ``RowWriter``)."""
        self.path, self.offset = Path(path), 0
        if shape is None:
            with open(self.path, "rb") as f:
                major, _ = np.lib.format.read_magic(f)
                read_header = np.lib.format.read_array_header_1_0 if major == 1 else np.lib.format.read_array_header_2_0
                shape, fortran, dtype = read_header(f)
                self.offset = f.tell()
            if fortran:
                raise ValueError(f"{self.path}: Fortran-ordered arrays are not supported")
        self.shape, self.dtype, self.ndim = tuple(shape), np.dtype(dtype), len(shape)
        self.row_bytes = int(np.prod(self.shape[1:], dtype=np.int64)) * self.dtype.itemsize
        self._fd, self._pid = None, None

    def __len__(self) -> int:
        return self.shape[0]

    def __getstate__(self) -> dict:
        return {**self.__dict__, "_fd": None, "_pid": None}  # each process opens its own

    def _file(self) -> int:
        if self._pid != os.getpid():  # a forked DataLoader worker must not share the parent's descriptor
            self._fd, self._pid = os.open(self.path, os.O_RDONLY), os.getpid()
        return self._fd

    def __del__(self):
        if self._fd is not None and self._pid == os.getpid():
            os.close(self._fd)

    def __getitem__(self, key):
        if isinstance(key, (int, np.integer)):
            return self.read(np.array([key]))[0]
        return self.read(row_index(key, len(self)))

    def read(self, rows: np.ndarray) -> np.ndarray:
        """Rows in the order given; runs of consecutive rows are one read each."""
        rows = np.asarray(rows, dtype=np.int64)
        if len(rows) and (rows.min() < 0 or rows.max() >= len(self)):
            raise IndexError(f"{self.path}: rows outside 0..{len(self) - 1}")
        out = np.empty((len(rows), *self.shape[1:]), dtype=self.dtype)
        if not len(rows):
            return out
        order = np.argsort(rows, kind="stable")
        ordered = rows[order]
        staged = out if np.array_equal(order, np.arange(len(rows))) else np.empty_like(out)
        flat = staged.reshape(len(rows), -1).view(np.uint8)
        # A run ends where the next row is not the one after (repeats start a new run).
        breaks = np.flatnonzero(np.diff(ordered) != 1) + 1
        fd = self._file()
        for start, stop in zip(np.r_[0, breaks], np.r_[breaks, len(rows)]):
            buffer = memoryview(flat[start:stop]).cast("B")
            self._read_into(fd, buffer, self.offset + int(ordered[start]) * self.row_bytes)
        if staged is not out:
            out[order] = staged
        return out

    def _read_into(self, fd: int, buffer: memoryview, offset: int) -> None:
        done = 0
        while done < len(buffer):  # a read may return fewer bytes than asked
            got = (
                os.preadv(fd, [buffer[done:]], offset + done)
                if hasattr(os, "preadv")
                else _pread_into(fd, buffer[done:], offset + done)
            )
            if got == 0:
                raise OSError(f"{self.path}: the file ends early; rerun the stage that writes it")
            done += got

    def __array__(self, dtype=None, copy=None) -> np.ndarray:
        out = self.read(np.arange(len(self)))
        return out if dtype is None else out.astype(dtype)


def row_index(key, n: int) -> np.ndarray:
    """The rows a slice, a boolean mask or a list of rows picks out of ``n``, without
    building an index of all ``n`` (this runs for every training batch read from disk)."""
    if isinstance(key, slice):
        return np.arange(*key.indices(n), dtype=np.int64)
    key = np.asarray(key)
    return np.flatnonzero(key) if key.dtype == bool else key.astype(np.int64, copy=False)


class RowWriter:
    """Rows appended one at a time to a headerless file, read back as an ``NpyFile``.

    For stages that make images one by one (decoding, augmenting): memory stays at one
    row however many there are.
    """

    def __init__(self, path: Path, row_shape: tuple[int, ...], dtype=np.uint8):
        self.path, self.row_shape, self.dtype = Path(path), tuple(row_shape), np.dtype(dtype)
        self._file, self.count = open(self.path, "wb"), 0

    def append(self, row: np.ndarray) -> None:
        row = np.ascontiguousarray(row, dtype=self.dtype)
        if row.shape != self.row_shape:
            raise ValueError(f"{self.path}: a row of shape {row.shape}, expected {self.row_shape}")
        self._file.write(row.data)
        self.count += 1

    def close(self) -> NpyFile:
        self._file.close()
        return NpyFile(self.path, (self.count, *self.row_shape), self.dtype)


def _pread_into(fd: int, buffer: memoryview, offset: int) -> int:
    data = os.pread(fd, len(buffer), offset)
    buffer[: len(data)] = data
    return len(data)
