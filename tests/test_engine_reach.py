"""loss_sensitivity on the models people train, end to end: the CLI with resnet18 (BatchNorm) + AdamW + crop-flip
and the cnn with Dropout + Adam, the memory budget, the Tracker in a user's own loop, and the refusals."""

import json

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from click.testing import CliRunner
from scipy.stats import spearmanr
from torch import nn

import sensprune as sp
from sensprune.cli import cli
from sensprune.config import TrainConfig
from sensprune.errors import ValidationError
from sensprune.measures.loss_sensitivity.sampled import SampledSensitivityHook
from sensprune.train.loop import epoch_order, train
from sensprune.train.sources import ArraySource


def _npz(path, n=24, shape=(3, 32, 32), k=4, seed=0):
    g = np.random.default_rng(seed)
    y = (np.arange(n) % k).astype(np.int64)
    x = g.normal(size=(n, *shape)).astype(np.float32) + y.reshape(-1, *[1] * len(shape)) * 0.3
    np.savez(path, x_train=x, y_train=y, x_test=x[:8], y_test=y[:8])
    return f"npz:{path}"


def _score(tmp_path, name, spec, *extra):
    out = tmp_path / name
    r = CliRunner().invoke(cli, ["score", "--dataset", spec, "--measures", "loss_sensitivity", "--quiet",
                                 "--out", str(out), *extra])
    assert r.exit_code == 0, r.output
    meta = json.loads((out / "meta.json").read_text())
    return np.load(out / "scores.npz")["loss_sensitivity"], meta["measure_notes"]["loss_sensitivity"], out


def test_resnet18_adamw_crop_flip_writes_the_column(tmp_path):
    spec = _npz(tmp_path / "c.npz")
    v, note, _ = _score(tmp_path, "r", spec, "--model", "resnet18", "--optimizer", "adamw", "--augment", "crop-flip",
                        "--dropout", "0", "--epochs", "1", "--batch-size", "12", "--lr", "0.001")
    assert v.shape == (24,) and np.isfinite(v).all() and (v > 0).all()
    assert note["optimizer"][0]["kind"] == "adamw" and note["augment"] == "crop-flip"
    assert note["replay_max_rel_param_diff"] < 1e-4 and note["memory_plan"]["checkpoint_interval"] >= 1


def test_cnn_dropout_adam_default_agrees_with_exact_mode(tmp_path):
    """K = 16 sampled steps against --probe-times all (every step) on a run of T = 24 steps."""
    spec = _npz(tmp_path / "s.npz", n=64, shape=(1, 8, 8))
    args = ["--model", "cnn", "--dropout", "0.2", "--optimizer", "adam", "--lr", "0.003", "--epochs", "3",
            "--batch-size", "8", "--augment", "crop-flip"]
    default, note, _ = _score(tmp_path, "d", spec, *args)
    exact, note_x, _ = _score(tmp_path, "x", spec, *args, "--probe-times", "all")
    assert note["probe_times"] == 16 and note_x["probe_times"] == 24 and note_x["mode"].endswith("(= exact)")
    assert note["dropout_masks_replayed"] and note["replay_max_rel_param_diff"] < 1e-4
    rho = spearmanr(default, exact).correlation
    print(f"Spearman default vs exact: {rho:.3f}")
    assert rho >= 0.95


def test_small_memory_budget_checkpoints_with_the_same_values(tmp_path):
    spec = _npz(tmp_path / "m.npz", n=48, shape=(1, 8, 8))
    args = ["--model", "cnn", "--epochs", "4", "--batch-size", "8", "--optimizer", "adamw", "--lr", "0.003"]
    free, note, _ = _score(tmp_path, "free", spec, *args)
    assert note["memory_plan"]["stores_every_state"] and note["memory_plan"]["recomputed_steps"] == 0
    smallest = note["memory_plan"]["smallest_budget_bytes"]
    tight, note_t, _ = _score(tmp_path, "tight", spec, *args, "--sensitivity-memory", str(smallest))
    plan = note_t["memory_plan"]
    assert plan["checkpoint_interval"] == 5 and not plan["stores_every_state"] and plan["recomputed_steps"] > 0
    np.testing.assert_allclose(tight, free, rtol=1e-5)
    r = CliRunner().invoke(cli, ["score", "--dataset", spec, "--measures", "loss_sensitivity", "--quiet",
                                 "--out", str(tmp_path / "no"), *args, "--sensitivity-memory", str(smallest - 1)])
    assert r.exit_code == 1 and "the smallest budget that works is about" in r.output, r.output
    assert not (tmp_path / "no").exists() and not (tmp_path / "no.partial").exists()


@pytest.mark.parametrize("extra, msg", [
    (["--sensitivity-memory", "0"], "`--sensitivity-memory` must be a positive size such as 2GB; got '0'."),
    (["--sensitivity-memory", "-1GB"], "`--sensitivity-memory` must be a positive size such as 2GB; got '-1GB'."),
    (["--sensitivity-memory", "lots"], "`--sensitivity-memory` must be a size such as 2GB, 512MB or 1.5GiB; "
                                       "got 'lots'."),
    (["--augment", "crop-flip"], "`--augment crop-flip` needs image inputs of shape (C, H, W) or (H, W); this "
                                 "dataset's inputs have shape (64,)."),
    (["--optimizer", "lbfgs"], "Invalid value for '--optimizer': 'lbfgs' is not one of 'sgd', 'adam', 'adamw'."),
])
def test_bad_input_is_one_line_and_writes_nothing(tmp_path, extra, msg):
    out = tmp_path / "s"
    spec = _npz(tmp_path / "flat.npz", shape=(64,))  # not images
    r = CliRunner().invoke(cli, ["score", "--dataset", spec, "--epochs", "1",
                                 "--measures", "loss_sensitivity", "--quiet", "--out", str(out), *extra])
    assert r.exit_code in (1, 2) and r.output.startswith("Error:") and msg in r.output, r.output
    assert len(r.output.strip().splitlines()) == 1
    assert not out.exists() and not (tmp_path / "s.partial").exists()


# -- the Tracker in a user's own loop ------------------------------------------------------------------------------

def _build():
    return nn.Sequential(nn.Conv2d(3, 4, 3, padding=1), nn.BatchNorm2d(4), nn.ReLU(), nn.Dropout(0.2), nn.Flatten(),
                         nn.Linear(4 * 64, 4))


def _data():
    g = np.random.default_rng(0)
    return g.normal(size=(64, 3, 8, 8)).astype(np.float32), (np.arange(64) % 4).astype(np.int64)


CFG = TrainConfig(epochs=2, batch_size=16, optimizer="adamw", lr=0.01, weight_decay=0.05, seed=5, augment="crop-flip")


def _user_loop(x, y, measures=("loss_sensitivity", "aum"), **kw):
    """The README's example: the user's own model, AdamW, tensors, crop-flip through tracker.augment."""
    torch.manual_seed(CFG.seed)
    model = _build()
    opt = torch.optim.AdamW(model.parameters(), lr=CFG.lr, weight_decay=CFG.weight_decay)
    torch.manual_seed(CFG.seed + 1)
    X, Y = torch.as_tensor(x), torch.as_tensor(y)
    tracker = sp.Tracker(len(y), labels=y, measures=list(measures), model=model, optimizer=opt, data=(X, Y),
                         augment="crop-flip", probe_times=4, seed=CFG.seed, **kw)
    for epoch in range(CFG.epochs):
        for grp in opt.param_groups:
            grp["lr"] = CFG.lr_at(epoch)
        order = epoch_order(len(y), CFG.seed, epoch, None)
        for i in range(0, len(y), CFG.batch_size):
            idx = order[i:i + CFG.batch_size]
            logits = model(tracker.augment(X[idx]))
            tracker.step(idx, logits, Y[idx])
            loss = F.cross_entropy(logits, Y[idx])
            opt.zero_grad()
            loss.backward()
            opt.step()
        tracker.epoch_end()
    return tracker


def test_tracker_in_your_own_loop_equals_sensprunes_loop_and_prune_report_accept_it(tmp_path):
    x, y = _data()
    hook = SampledSensitivityHook(64, np.arange(64), probe_times=4)
    train(_build, ArraySource(x, y, torch.device("cpu")), CFG, hooks=[hook], progress=False)
    folder = _user_loop(x, y).save(tmp_path / "mine")
    mine = np.load(folder / "scores.npz")["loss_sensitivity"]
    np.testing.assert_allclose(mine, hook.value, rtol=1e-5)
    note = json.loads((folder / "meta.json").read_text())["measure_notes"]["loss_sensitivity"]
    assert note["dropout_masks_replayed"] and note["augment"] == "crop-flip" and note["probe_times"] == 4
    r = CliRunner().invoke(cli, ["prune", "--scores", str(folder), "--by", "loss_sensitivity", "--rule", "drop-high",
                                 "--fraction", "0.2", "--out", str(tmp_path / "p")])
    assert r.exit_code == 0, r.output
    r = CliRunner().invoke(cli, ["report", str(folder), "--quiet"])
    assert r.exit_code == 0, r.output


def test_tracker_refusals_are_one_line_and_early():
    x, y = _data()
    model = _build()
    opt = torch.optim.AdamW(model.parameters())
    for kw, missing in (({"optimizer": opt, "data": (x, y)}, "model"), ({"model": model, "data": (x, y)}, "optimizer"),
                        ({"model": model, "optimizer": opt}, "data")):
        with pytest.raises(ValidationError, match=f"needs model=, optimizer= and data= .* missing: {missing}"):
            sp.Tracker(64, labels=y, measures=["loss_sensitivity"], **kw)
    lbfgs = torch.optim.LBFGS(model.parameters())
    with pytest.raises(ValidationError, match="replays torch.optim.SGD, Adam and AdamW; got LBFGS"):
        sp.Tracker(64, labels=y, measures=["loss_sensitivity"], model=model, optimizer=lbfgs, data=(x, y))


def _plain_steps(tracker, model, opt, x, y, steps, loss_fn=F.cross_entropy):
    X, Y = torch.as_tensor(x), torch.as_tensor(y)
    for s in range(steps):
        idx = torch.arange(16 * s, 16 * s + 16)
        logits = model(X[idx])
        tracker.step(idx, logits, Y[idx])
        opt.zero_grad()
        loss_fn(logits, Y[idx]).backward()
        opt.step()


def test_tracker_refuses_a_parameter_group_added_mid_run():
    x, y = _data()
    model = _build()
    extra = nn.Linear(2, 2)
    opt = torch.optim.SGD(model.parameters(), lr=0.01, momentum=0.9)
    tracker = sp.Tracker(64, labels=y, measures=["loss_sensitivity"], model=model, optimizer=opt, data=(x, y))
    _plain_steps(tracker, model, opt, x, y, 2)
    opt.add_param_group({"params": extra.parameters()})
    with pytest.raises(ValidationError, match="parameter groups changed mid-run"):
        _plain_steps(tracker, model, opt, x, y, 1)


def test_tracker_refuses_a_loop_it_cannot_replay_at_the_first_step():
    x, y = _data()
    model = _build()
    opt = torch.optim.Adam(model.parameters(), lr=0.01)
    tracker = sp.Tracker(64, labels=y, measures=["loss_sensitivity"], model=model, optimizer=opt, data=(x, y))
    with pytest.raises(ValidationError, match="the first optimizer step does not replay"):
        _plain_steps(tracker, model, opt, x, y, 1, lambda lg, t: F.cross_entropy(lg, t, label_smoothing=0.3))
    model2 = _build()
    opt2 = torch.optim.Adam(model2.parameters(), lr=0.01)
    sp.Tracker(64, labels=y, measures=["loss_sensitivity"], model=model2, optimizer=opt2, data=(x, y))
    with pytest.raises(ValidationError, match="optimizer.step.. was called without tracker.step"):
        model2(torch.as_tensor(x[:16])).sum().backward()
        opt2.step()


def _mlp_model():
    torch.manual_seed(0)
    return nn.Sequential(nn.Flatten(), nn.Linear(3 * 64, 16), nn.ReLU(), nn.Linear(16, 4))


def _loop(tracker, model, opt, x, y, steps, aug=None, clip=None):
    X, Y = torch.as_tensor(x), torch.as_tensor(y)
    for s in range(steps):
        idx = torch.arange(16 * (s % 4), 16 * (s % 4) + 16)
        xb = X[idx] if aug is None else aug(X[idx])
        logits = model(xb)
        tracker.step(idx, logits, Y[idx])
        opt.zero_grad()
        F.cross_entropy(logits, Y[idx]).backward()
        if clip:
            torch.nn.utils.clip_grad_norm_(model.parameters(), clip)
        opt.step()


def test_tracker_replays_clipping_and_a_users_own_seeded_augmentation(tmp_path):
    x, y = _data()

    def shift(xb, seed):  # the user's own augmentation: a torch function of the batch and a seed
        g = torch.Generator().manual_seed(seed)
        return torch.roll(xb, int(torch.randint(-2, 3, (1,), generator=g)), dims=3)

    model = _mlp_model()
    opt = torch.optim.SGD(model.parameters(), lr=0.1, momentum=0.9)
    tracker = sp.Tracker(64, labels=y, measures=["loss_sensitivity"], model=model, optimizer=opt, data=(x, y),
                         augment=shift, clip_grad_norm=0.05, probe_times=3)
    _loop(tracker, model, opt, x, y, 6, aug=tracker.augment, clip=0.05)
    note = json.loads((tracker.save(tmp_path / "t") / "meta.json").read_text())["measure_notes"]["loss_sensitivity"]
    assert note["replay_max_rel_param_diff"] < 1e-4 and note["augment"] == "user function"


@pytest.mark.parametrize("what", ["clipping not declared", "augmentation with its own randomness"])
def test_tracker_refuses_what_it_was_not_told_at_the_first_step(what):
    x, y = _data()
    model = _mlp_model()
    opt = torch.optim.SGD(model.parameters(), lr=0.5)
    if what == "clipping not declared":
        tracker = sp.Tracker(64, labels=y, measures=["loss_sensitivity"], model=model, optimizer=opt, data=(x, y))
        kw = {"clip": 1e-3}
    else:
        def noisy(xb, seed):  # draws from the global generator: not replayable
            return xb + torch.randn_like(xb)
        tracker = sp.Tracker(64, labels=y, measures=["loss_sensitivity"], model=model, optimizer=opt, data=(x, y),
                             augment=noisy)
        kw = {"aug": tracker.augment}
    with pytest.raises(ValidationError, match="the first optimizer step does not replay"):
        _loop(tracker, model, opt, x, y, 1, **kw)


class _Noisy(nn.Module):
    """A model whose forward draws noise outside any Dropout layer: the replay cannot reproduce it."""

    def __init__(self):
        super().__init__()
        self.net = _mlp_model()

    def forward(self, x):
        return self.net(x + 0.5 * torch.randn_like(x))


def test_a_replay_that_drifts_is_reported_with_the_tensor_to_blame():
    x, y = _data()
    hook = SampledSensitivityHook(64, np.arange(64), probe_times=2)
    with pytest.warns(RuntimeWarning, match=r"replayed weights differ from the trained ones by a relative .* most at "
                                            r"'net\.\d\.(weight|bias)'"):
        train(_Noisy, ArraySource(x, y, torch.device("cpu")), TrainConfig(epochs=1, batch_size=16, lr=0.5),
              hooks=[hook], progress=False)
    assert hook.meta()["loss_sensitivity"]["replay_max_rel_param_diff"] > 1e-4
