"""``Stacked``: the rows of a split as references into pixel arrays, read only when indexed.

Balance and augment mostly decide rather than make: random over- and under-sampling pick
rows of ingest's train split, and augment keeps every balanced row beside its new
variants. Storing those decisions as (file, row) pairs instead of copied pixels keeps
``data/`` and the DVC cache at one copy of each image. Only pixels made in this process
(decoded, synthetic or augmented) are written by the next ``write_dataset``.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from pathlib import Path

import numpy as np

from imgpipe.store.npy_file import row_index


class Stacked:
    """Rows drawn from several uint8 (N, H, W, C) arrays.

    ``parts[i]`` is an array (a memory map when read from disk); ``files[i]`` is the
    ``.npy`` it was read from, or None for pixels that still need writing. Row ``k`` of
    the split is ``parts[which[k]][row[k]]``.
    """

    def __init__(self, parts: Sequence[np.ndarray], files: Sequence[Path | None], which: np.ndarray, row: np.ndarray):
        self.parts, self.files = list(parts), [None if f is None else Path(os.path.abspath(f)) for f in files]
        self.which, self.row = np.asarray(which, dtype=np.int64), np.asarray(row, dtype=np.int64)
        first = self.parts[0]
        self.shape = (len(self.row), *first.shape[1:])
        self.dtype, self.ndim = first.dtype, first.ndim

    @classmethod
    def of(cls, array, file: Path | None = None) -> Stacked:
        """Every row of one array, in order; ``file`` is where it lives, None for new pixels."""
        if isinstance(array, Stacked):
            return array
        return cls([array], [file], np.zeros(len(array), dtype=np.int64), np.arange(len(array)))

    @classmethod
    def concat(cls, items: Sequence) -> Stacked:
        """The rows of each item (a ``Stacked`` or new pixels) one after the other."""
        parts, files, which, rows, known = [], [], [], [], {}
        for item in items:
            item = cls.of(item)
            remap = []
            for part, file in zip(item.parts, item.files):
                if file is not None and file in known:  # one part per file, however often it is referenced
                    remap.append(known[file])
                    continue
                remap.append(len(parts))
                parts.append(part)
                files.append(file)
                if file is not None:
                    known[file] = remap[-1]
            which.append(np.asarray(remap, dtype=np.int64)[item.which] if len(item.which) else item.which)
            rows.append(item.row)
        return cls(parts, files, np.concatenate(which), np.concatenate(rows))

    @classmethod
    def assemble(cls, source: np.ndarray, base: Stacked, new) -> Stacked:
        """Row ``k`` is ``base[source[k]]`` where ``source[k] >= 0``, else the next row of ``new``."""
        source = np.asarray(source, dtype=np.int64)
        copied = source >= 0
        joined = cls.concat([base.take(source[copied]), new])
        order = np.empty(len(source), dtype=np.int64)
        order[copied] = np.arange(int(copied.sum()))
        order[~copied] = int(copied.sum()) + np.arange(int((~copied).sum()))
        return joined.take(order)

    def take(self, index) -> Stacked:
        """Chosen rows, as references: nothing is read."""
        index = np.asarray(index, dtype=np.int64)
        return Stacked(self.parts, self.files, self.which[index], self.row[index])

    def new_rows(self) -> np.ndarray:
        """Positions of the rows whose pixels still need writing."""
        fresh = np.array([f is None for f in self.files], dtype=bool)
        return np.flatnonzero(fresh[self.which]) if len(self.which) else np.zeros(0, dtype=np.int64)

    def __len__(self) -> int:
        return len(self.row)

    @property
    def nbytes(self) -> int:
        """The bytes of every row's pixels, as an array of the split would hold them."""
        return int(np.prod(self.shape, dtype=np.int64)) * self.dtype.itemsize

    def __getitem__(self, key):
        if isinstance(key, (int, np.integer)):
            return np.asarray(self.parts[self.which[key]][self.row[key]])
        index = row_index(key, len(self))  # a slice, a list or array of rows, or a boolean mask
        out = np.empty((len(index), *self.shape[1:]), dtype=self.dtype)
        # In steps of about 64 MB, so that reading a whole split costs the split plus a step.
        step = max(1, 2**26 // max(1, int(np.prod(self.shape[1:])) * self.dtype.itemsize))
        for start in range(0, len(index), step):
            self._gather(index[start : start + step], out[start : start + step])
        return out

    def _gather(self, index: np.ndarray, out: np.ndarray) -> None:
        which, rows = self.which[index], self.row[index]
        for part in np.unique(which):
            mask = which == part
            wanted = rows[mask]
            # Sorted reads walk a memory map forwards; the result is put back in order.
            order = np.argsort(wanted, kind="stable")
            chosen = np.empty_like(order)
            chosen[order] = np.arange(len(order))
            out[mask] = np.asarray(self.parts[part][wanted[order]])[chosen]

    def __array__(self, dtype=None, copy=None) -> np.ndarray:
        out = self[slice(None)]
        return out if dtype is None else out.astype(dtype)
