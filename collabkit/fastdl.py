"""fastai's tabular DataLoader, the same batches without pandas per batch.

Stock fastai builds every batch of a `TabularPandas` by indexing its DataFrame with the batch's row
list (`TabDataLoader.create_batch`: `dataset.iloc[b]`, a new `TabularPandas`), then turning that
frame into tensors (`ReadTabBatch.encodes`). For the collaborative-filtering models of this
assignment that is about half of each epoch at batches of 64. `FastTabDL` turns the whole frame into
tensors once per pass, with the same `tensor(...)` calls, and each batch indexes those tensors with
the batch's rows.

Everything else is fastai's own: the class is a `TabWeightedDL` (the loader `TabularPandas` uses),
so the order of rows (`get_idxs`, shuffle and its random numbers), the batch size, `drop_last`,
`new`/`test_dl`, `show_batch`, `decode` and `get_preds` are unchanged, and the batches are equal
tensor for tensor, of the same dtypes and shapes (grader_tests/test_fast_dls.py checks every batch of
an epoch against the stock loader).
"""

from __future__ import annotations

import numpy as np
import torch
from fastai.data.block import TransformBlock
from fastai.tabular.core import ReadTabBatch, TabWeightedDL
from fastai.torch_core import tensor, to_device
from fastcore.foundation import L


class TabRows:
    """A batch's rows, already as tensors: what `FastTabDL.create_batch` returns in place of a `TabularPandas`."""

    def __init__(self, tensors: tuple, device=None):
        self.tensors, self.device = tensors, device


class ReadTabRows(ReadTabBatch):
    """`ReadTabBatch` that also reads a `TabRows` (its tensors, moved as stock moves them); decoding is fastai's."""

    def encodes(self, rows: TabRows):
        res = rows.tensors
        if rows.device is not None:
            res = to_device(res, rows.device)
        return res


def frame_tensors(to) -> tuple:
    """Every row of a `TabularPandas` as the tensors `ReadTabBatch.encodes` makes of a batch of it."""
    res = (tensor(to.cats).long(),) if not to.with_cont else (tensor(to.cats).long(), tensor(to.conts).float())
    ys = [n for n in to.y_names if n in to.items.columns]
    if len(ys) == len(to.y_names):
        res = res + (tensor(to.targ),)
    return res


class FastTabDL(TabWeightedDL):
    """A `TabWeightedDL` whose batches index tensors made once per pass instead of the DataFrame."""

    def __init__(self, dataset, bs=16, wgts=None, shuffle=False, after_batch=None, num_workers=0, **kwargs):
        if after_batch is None:
            after_batch = L(TransformBlock().batch_tfms) + ReadTabRows(dataset)
        self._rows = None
        super().__init__(
            dataset, bs=bs, wgts=wgts, shuffle=shuffle, after_batch=after_batch, num_workers=num_workers, **kwargs
        )

    def before_iter(self):
        super().before_iter()
        self._rows = frame_tensors(self.dataset)  # afresh each pass: the frame may have changed in between

    def create_batch(self, b):
        rows = self._rows if self._rows is not None else frame_tensors(self.dataset)
        idx = torch.from_numpy(np.asarray(b, dtype=np.int64))
        return TabRows(tuple(t[idx] for t in rows), self.dataset.device)
