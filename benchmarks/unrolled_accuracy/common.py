"""Shared setup of the unrolled-accuracy, engine and paper benchmarks: the paper's setting (Arpit et al. 2017, §3):
1000 Fashion-MNIST images average-pooled 2×2 to 14×14, an MLP with two hidden layers of 16 units; peak RSS."""

from __future__ import annotations

import numpy as np
import torch
import torch.nn.functional as F

from sensprune.data import load_dataset, make_dataset


def paper_dataset(n: int = 1000):
    d = load_dataset("fashion-mnist", subsample=n)

    def pool(x):
        return F.avg_pool2d(torch.as_tensor(x)[:, None], 2)[:, 0].numpy()
    return make_dataset(pool(d.x_train), d.y_train, pool(d.x_test[:2000]), d.y_test[:2000],
                        spec=f"fashion-mnist-{n}-14x14", num_classes=10, info={"input_range": 1.0})


def digits_dataset():
    return load_dataset("digits")


def spearman(a, b) -> float:
    from scipy.stats import spearmanr

    return float(spearmanr(np.asarray(a), np.asarray(b)).correlation)


def peak_rss_reset():
    """Reset the process's peak-RSS counter (Linux; elsewhere the peak then covers the whole process)."""
    try:
        with open("/proc/self/clear_refs", "w") as f:
            f.write("5")
    except OSError:
        pass


def status_kib(key: str) -> float:
    """A ``/proc/self/status`` field in KiB (``"VmHWM:"``, ``"VmRSS:"``); NaN if absent."""
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith(key):
                return int(line.split()[1])
    return float("nan")


def peak_rss_mib() -> float:
    """Peak resident memory (VmHWM) since the last :func:`peak_rss_reset`, in MiB."""
    return status_kib("VmHWM:") / 1024
