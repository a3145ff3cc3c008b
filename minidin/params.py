"""Parameters and gradients as objects: one flat buffer for every dense parameter, one array per table.

``Params`` holds the embedding tables (row-sparse: only the rows a batch touches
get a gradient) and one flat ``dense`` buffer that every dense weight, bias and
PReLU/Dice α is a view into (as in llm.c), so an optimizer updates all of them
with one kernel call. ``Grads`` mirrors it: a flat ``dense`` gradient laid out
like ``Params.dense`` plus one ``SparseGrad`` per table.

Both read as mappings, ``params["att.0.W"]``, ``grads["goods_emb"]``, in one
order: the tables, then the dense parameters in buffer order.
"""
from __future__ import annotations

from collections.abc import Mapping

import numpy as np

from .sparse import SparseGrad


class Params(Mapping):
    """Embedding tables plus views into one flat dense buffer.

    tables: {name: (V, width) array}, in order
    layout: [(name, shape)] of the dense parameters, in buffer order
    """

    def __init__(self, tables: dict, layout, dtype):
        self.dtype = np.dtype(dtype)
        self.tables = dict(tables)
        self.layout = [(name, tuple(shape)) for name, shape in layout]
        self.offsets = {}  # name -> start in ``dense``
        pos = 0
        for name, shape in self.layout:
            self.offsets[name] = pos
            pos += int(np.prod(shape, dtype=np.int64))
        self.dense = np.zeros(pos, dtype=self.dtype)
        self._views = {name: self.dense[o:o + int(np.prod(s, dtype=np.int64))].reshape(s)
                       for (name, s), o in zip(self.layout, self.offsets.values())}

    def like(self, fill=0.0) -> "Params":
        """A Params of the same layout and table shapes, every entry ``fill`` (optimizer accumulators)."""
        other = Params({n: np.full_like(t, fill) for n, t in self.tables.items()}, self.layout, self.dtype)
        other.dense.fill(fill)
        return other

    @property
    def dense_names(self):
        return [name for name, _ in self.layout]

    def __getitem__(self, name):
        t = self.tables.get(name)
        return t if t is not None else self._views[name]

    def __iter__(self):
        yield from self.tables
        yield from self._views

    def __len__(self):
        return len(self.tables) + len(self._views)

    def num_params(self) -> int:
        return int(self.dense.size + sum(t.size for t in self.tables.values()))

    def __repr__(self):
        return f"Params({len(self.tables)} tables, {len(self._views)} dense arrays in {self.dense.size} floats)"


class Grads(Mapping):
    """Gradients shaped like a ``Params``: ``dense`` (flat, laid out like ``params.dense``) and one
    ``SparseGrad`` per table (rows a batch touched; an empty one for a table it did not)."""

    def __init__(self, params: Params, dense=None, tables=None):
        self.layout, self.offsets = params.layout, params.offsets
        self.dense = np.zeros_like(params.dense) if dense is None else dense
        self.tables = {}
        for name, t in params.tables.items():
            g = (tables or {}).get(name)
            self.tables[name] = g if g is not None else SparseGrad(
                np.zeros(0, np.int64), np.zeros((0, t.shape[1]), t.dtype), t.shape[0])
        self._views = {name: self.dense[o:o + int(np.prod(s, dtype=np.int64))].reshape(s)
                       for (name, s), o in zip(self.layout, self.offsets.values())}

    def __getitem__(self, name):
        t = self.tables.get(name)
        return t if t is not None else self._views[name]

    def __setitem__(self, name, value):
        """Replace a table's SparseGrad, or copy an array into a dense parameter's gradient."""
        if name in self.tables:
            if not isinstance(value, SparseGrad):
                raise TypeError(f"grads[{name!r}]: expected a SparseGrad, got {type(value).__name__}")
            self.tables[name] = value
        elif name in self._views:
            self._views[name][...] = value
        else:
            raise KeyError(name)

    def __iter__(self):
        yield from self.tables
        yield from self._views

    def __len__(self):
        return len(self.tables) + len(self._views)
