"""Parameters and gradients as objects: one flat buffer for every dense parameter, one array per table.

``Params`` holds the embedding tables (row-sparse: only the rows a batch touches
get a gradient) and one flat ``dense`` buffer that every dense weight, bias and
PReLU/Dice α is a view into (as in llm.c), so an optimizer updates all of them
with one kernel call. ``Grads`` mirrors it: a flat ``dense`` gradient laid out
like ``Params.dense`` plus one ``SparseGrad`` per table.

Both are dicts of arrays as well, ``params["att.0.W"]``, ``grads["goods_emb"]``,
in one order: the tables, then the dense parameters in buffer order (a dict, so
the many lookups of a training step cost what a dict lookup costs).
"""
from __future__ import annotations

import numpy as np

from .sparse import SparseGrad


def _views(flat, spans):
    return {name: flat[lo:hi].reshape(shape) for name, (lo, hi, shape) in spans.items()}


class Params(dict):
    """Embedding tables plus views into one flat dense buffer.

    tables: {name: (V, width) array}, in order
    layout: [(name, shape)] of the dense parameters, in buffer order
    """

    def __init__(self, tables: dict, layout, dtype):
        self.dtype = np.dtype(dtype)
        self.tables = dict(tables)
        self.layout = [(name, tuple(shape)) for name, shape in layout]
        self.offsets = {}  # name -> start in ``dense``
        self.spans = {}  # name -> (start, end, shape): where each view lies (Grads reuses it)
        pos = 0
        for name, shape in self.layout:
            size = 1
            for n in shape:
                size *= int(n)
            self.offsets[name] = pos
            self.spans[name] = (pos, pos + size, shape)
            pos += size
        self.dense = np.zeros(pos, dtype=self.dtype)
        super().__init__(self.tables)
        self.update(_views(self.dense, self.spans))

    def like(self, fill=0.0) -> "Params":
        """A Params of the same layout and table shapes, every entry ``fill`` (optimizer accumulators)."""
        other = Params({n: np.full_like(t, fill) for n, t in self.tables.items()}, self.layout, self.dtype)
        other.dense.fill(fill)
        return other

    @property
    def dense_names(self):
        return [name for name, _ in self.layout]

    def num_params(self) -> int:
        return int(self.dense.size + sum(t.size for t in self.tables.values()))

    def __setitem__(self, name, value):
        raise TypeError("Params: assign into a parameter (params[name][...] = value), not the mapping")

    def __repr__(self):
        return f"Params({len(self.tables)} tables, {len(self.layout)} dense arrays in {self.dense.size} floats)"


class Grads(dict):
    """Gradients shaped like a ``Params``: ``dense`` (flat, laid out like ``params.dense``) and one
    ``SparseGrad`` per table (the rows a batch touched). Without ``tables``, every table's gradient starts
    as an empty SparseGrad."""

    def __init__(self, params: Params, dense=None, tables=None):
        super().__init__()
        self.layout, self.offsets, self._table_names = params.layout, params.offsets, tuple(params.tables)
        self.dense = np.zeros_like(params.dense) if dense is None else dense
        if tables is None:
            tables = {name: SparseGrad(np.zeros(0, np.int64), np.zeros((0, t.shape[1]), t.dtype), t.shape[0])
                      for name, t in params.tables.items()}
        for name, g in tables.items():
            self[name] = g
        dict.update(self, _views(self.dense, params.spans))

    @property
    def tables(self) -> dict:
        """{name: SparseGrad} of the tables present."""
        return {name: self[name] for name in self._table_names if name in self}

    def __setitem__(self, name, value):
        """Set a table's SparseGrad, or copy an array into a dense parameter's gradient."""
        if name in self._table_names:
            if not isinstance(value, SparseGrad):
                raise TypeError(f"grads[{name!r}]: expected a SparseGrad, got {type(value).__name__}")
            dict.__setitem__(self, name, value)
        elif name in self.offsets:
            self[name][...] = value
        else:
            raise KeyError(name)
