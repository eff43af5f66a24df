import os

import numpy as np
import pytest
import torch

torch.set_num_threads(1)
os.environ.setdefault("TQDM_DISABLE", "1")


@pytest.fixture
def tiny_arrays():
    """A small, learnable 4-class problem: (x_train, y_train, x_test, y_test)."""
    rng = np.random.default_rng(0)
    centers = rng.normal(size=(4, 6)) * 3
    y = np.repeat(np.arange(4), 30)
    x = centers[y] + rng.normal(size=(120, 6))
    yt = np.repeat(np.arange(4), 10)
    xt = centers[yt] + rng.normal(size=(40, 6))
    return x.astype(np.float32), y, xt.astype(np.float32), yt
