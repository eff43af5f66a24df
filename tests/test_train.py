import numpy as np
import pytest
import torch
import torch.nn.functional as F

from sensprune.config import TrainConfig
from sensprune.errors import TrainingDivergedError, ValidationError
from sensprune.train.hooks import Hook
from sensprune.train.loop import epoch_order, train
from sensprune.train.models import MLP
from sensprune.train.sources import ArraySource, LoaderSource


def _build():
    return MLP(4, (6,), widths=(16,))


def _src(a, b):
    return ArraySource(a, b, torch.device("cpu"))


class Capture(Hook):
    needs_input_grad = True

    def __init__(self):
        self.max_err = 0.0
        self.idx = []

    def on_step(self, step, run):
        # the model still holds θ_s here: recompute each example alone and compare
        for i in range(len(step.idx)):
            x = step.x[i:i + 1].clone().requires_grad_(True)
            loss = F.cross_entropy(run.model(x), step.y[i:i + 1])
            (g,) = torch.autograd.grad(loss, x)
            self.max_err = max(self.max_err, float((g[0] - step.input_grad[i]).abs().max()))
        self.idx.append(step.idx.clone())


def test_batched_input_grad_equals_one_example_at_a_time(tiny_arrays):
    x, y, xt, yt = tiny_arrays
    hook = Capture()
    train(_build, _src(x, y), TrainConfig(epochs=2, batch_size=32), hooks=[hook], progress=False)
    assert hook.max_err < 1e-5


def test_input_grad_with_sample_weights_is_unweighted_per_example_gradient(tiny_arrays):
    x, y, xt, yt = tiny_arrays
    hook = Capture()
    w = np.linspace(0.5, 1.5, len(y))
    train(_build, _src(x, y), TrainConfig(epochs=1, batch_size=32), weights=w, hooks=[hook], progress=False)
    assert hook.max_err < 1e-5


def test_mask_filters_a_shared_permutation():
    mask = torch.zeros(50, dtype=torch.bool)
    mask[::3] = True
    full = epoch_order(50, seed=7, epoch=2, mask=None)
    sub = epoch_order(50, seed=7, epoch=2, mask=mask)
    assert sub.tolist() == [i for i in full.tolist() if i % 3 == 0]
    assert epoch_order(50, 7, 3, None).tolist() != full.tolist()


def test_masked_run_sees_only_kept_examples_and_same_init(tiny_arrays):
    x, y, xt, yt = tiny_arrays
    mask = np.arange(len(y)) % 2 == 0
    hook = Capture()
    r1 = train(_build, _src(x, y), TrainConfig(epochs=1, batch_size=32), mask=mask, hooks=[hook], progress=False)
    seen = torch.cat(hook.idx).numpy()
    assert sorted(seen.tolist()) == np.flatnonzero(mask).tolist()
    torch.manual_seed(0)
    init = _build()
    cfg0 = TrainConfig(epochs=1, lr=1e-12, momentum=0.0, weight_decay=0.0)
    r0 = train(_build, _src(x, y), cfg0, progress=False)
    for a, b in zip(init.parameters(), r0.model.parameters()):
        assert torch.allclose(a, b, atol=1e-9)
    assert r1.history[0]["epoch"] == 1


def test_same_seed_same_result_and_test_eval(tiny_arrays):
    x, y, xt, yt = tiny_arrays
    cfg = TrainConfig(epochs=3, batch_size=16, optimizer="adam", lr=0.01, schedule="step")
    a = train(_build, _src(x, y), cfg, test_data=_src(xt, yt), progress=False)
    b = train(_build, _src(x, y), cfg, test_data=_src(xt, yt), progress=False)
    assert [h["test_acc"] for h in a.history] == [h["test_acc"] for h in b.history]
    assert a.history[-1]["test_acc"] > 0.9
    for p, q in zip(a.model.parameters(), b.model.parameters()):
        assert torch.equal(p, q)


def test_loader_path_matches_in_memory_path(tiny_arrays):
    x, y, xt, yt = tiny_arrays
    ds = torch.utils.data.TensorDataset(torch.as_tensor(x), torch.as_tensor(y))
    cfg = TrainConfig(epochs=2, batch_size=32)
    a = train(_build, _src(x, y), cfg, progress=False)
    b = train(_build, LoaderSource(ds, torch.device("cpu"), num_workers=0), cfg, progress=False)
    for p, q in zip(a.model.parameters(), b.model.parameters()):
        assert torch.allclose(p, q, atol=1e-6)


def test_nan_loss_names_epoch_and_step(tiny_arrays):
    x, y, xt, yt = tiny_arrays
    x = x * 1e18
    with pytest.raises(TrainingDivergedError, match=r"epoch \d+, step \d+"):
        train(_build, _src(x, y), TrainConfig(epochs=3, lr=1e6), progress=False)


def test_checkpoint_resume_equals_uninterrupted(tiny_arrays, tmp_path):
    x, y, xt, yt = tiny_arrays
    cfg3 = TrainConfig(epochs=3, batch_size=16)
    full = train(_build, _src(x, y), cfg3, progress=False)

    class Stop(Hook):
        def on_epoch_end(self, epoch, run):
            if epoch == 1:
                raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        train(_build, _src(x, y), cfg3, hooks=[Stop()], checkpoint_dir=tmp_path, progress=False)
    resumed = train(_build, _src(x, y), cfg3, checkpoint_dir=tmp_path, progress=False)
    assert resumed.resumed_from_epoch == 1
    for p, q in zip(full.model.parameters(), resumed.model.parameters()):
        assert torch.equal(p, q)


@pytest.mark.parametrize("kw,match", [({"epochs": 0}, "epochs"), ({"optimizer": "lbfgs"}, "optimizer"),
                                      ({"lr": -1.0}, "lr"), ({"momentum": 1.5}, "momentum")])
def test_bad_train_config(kw, match):
    with pytest.raises(ValidationError, match=match):
        TrainConfig(**kw)


def test_amp_bf16_on_cpu_matches_plain_path(tiny_arrays):
    x, y, xt, yt = tiny_arrays
    cfg = TrainConfig(epochs=4, batch_size=16)
    plain = train(_build, _src(x, y), cfg, test_data=_src(xt, yt), progress=False)
    amp = train(_build, _src(x, y), TrainConfig(epochs=4, batch_size=16, amp="bf16"), test_data=_src(xt, yt),
                progress=False)
    assert abs(plain.history[-1]["test_acc"] - amp.history[-1]["test_acc"]) <= 0.05
    assert abs(plain.history[-1]["train_loss"] - amp.history[-1]["train_loss"]) < 0.05


def test_amp_fp16_on_cpu_is_refused(tiny_arrays):
    x, y, xt, yt = tiny_arrays
    with pytest.raises(ValidationError, match="fp16 needs a CUDA device"):
        train(_build, _src(x, y), TrainConfig(epochs=1, amp="fp16"), progress=False)


def test_missing_devices_are_refused():
    from sensprune.train.loop import resolve_device

    if not torch.cuda.is_available():
        with pytest.raises(ValidationError, match="no CUDA device"):
            resolve_device("cuda")
    with pytest.raises(ValidationError, match="Unknown device"):
        resolve_device("tpu")


@pytest.mark.slow
def test_compile_matches_plain_path(tiny_arrays):
    x, y, xt, yt = tiny_arrays
    a = train(_build, _src(x, y), TrainConfig(epochs=2, batch_size=16), progress=False)
    b = train(_build, _src(x, y), TrainConfig(epochs=2, batch_size=16, compile=True), progress=False)
    for p, q in zip(a.model.parameters(), b.model.parameters()):
        assert torch.allclose(p, q, atol=1e-4)


@pytest.mark.parametrize("nhwc", [False, True], ids=["nchw", "channels_last"])
@pytest.mark.parametrize("stride,padding,dilation,c_in",
                         [(1, 1, 1, 1), (2, 1, 1, 3), (1, 2, 2, 2), (2, 0, 1, 1), (3, 1, 1, 2), (1, 3, 1, 1),
                          (2, 4, 3, 1)])
def test_conv2d_input_grad_equals_torch(stride, padding, dilation, c_in, nhwc):
    from sensprune.train.hooks import conv2d_input_grad

    torch.manual_seed(0)
    conv = torch.nn.Conv2d(c_in, 5, 3, stride=stride, padding=padding, dilation=dilation)
    x = torch.randn(4, c_in, 11, 9, requires_grad=True)
    g = torch.randn_like(conv(x))
    if nhwc:  # the built-in cnn's layout: the strided-add col2im path
        g = g.contiguous(memory_format=torch.channels_last)
    (ref,) = torch.autograd.grad(conv(x), x, g)
    got = conv2d_input_grad(g, conv, (11, 9))
    assert got.shape == ref.shape
    assert torch.allclose(got, ref, atol=1e-5)


def test_cnn_channels_last_computes_the_nchw_function():
    """SmallCNN keeps 2-D activations in channels_last; the logits are those of the plain NCHW layers."""
    import torch.nn.functional as F

    from sensprune.train.models import SmallCNN

    torch.manual_seed(0)
    model = SmallCNN(4, (2, 10, 10))
    x = torch.randn(6, 2, 10, 10)
    c1, c2 = (model.features[i] for i in (0, 3))
    assert c1.weight.is_contiguous(memory_format=torch.channels_last)
    h = F.max_pool2d(F.relu(F.conv2d(x, c1.weight.contiguous(), c1.bias, padding=1)), 2)
    h = F.max_pool2d(F.relu(F.conv2d(h, c2.weight.contiguous(), c2.bias, padding=1)), 2)
    ref = model.head(h.flatten(1))
    assert torch.allclose(model(x), ref, atol=1e-5)
    assert torch.allclose(model(x.flatten(1)), ref, atol=1e-5)  # flat rows are reshaped first


def test_first_layer_capture_is_used_for_builtin_models_only():
    from sensprune.train.hooks import FirstLayerInputGrad
    from sensprune.train.models import MLP, SmallCNN

    assert FirstLayerInputGrad.find(MLP(3, (4, 4))) is None  # Linear: autograd's leaf path is as cheap
    assert FirstLayerInputGrad.find(SmallCNN(3, (8, 8))) is not None
    assert FirstLayerInputGrad.find(SmallCNN(3, (12,))) is None  # Conv1d: the generic path
    assert FirstLayerInputGrad.find(torch.nn.Sequential(torch.nn.Flatten(), torch.nn.Linear(4, 3))) is None


@pytest.mark.parametrize("weighted", [False, True])
def test_cnn_input_grad_from_first_layer_equals_one_example_at_a_time(weighted):
    """The conv first-layer capture gives each example's own ∇ₓℓ (SmallCNN has no BatchNorm)."""
    from sensprune.train.models import SmallCNN

    rng = np.random.default_rng(1)
    x = rng.normal(size=(48, 6, 6)).astype(np.float32)
    y = rng.integers(0, 3, 48)
    hook = Capture()
    w = np.linspace(0.5, 1.5, 48) if weighted else None
    train(lambda: SmallCNN(3, (6, 6)), _src(x, y), TrainConfig(epochs=1, batch_size=16), weights=w, hooks=[hook],
          progress=False)
    assert len(hook.idx) == 3
    assert hook.max_err < 1e-5


def test_first_layer_capture_equals_generic_leaf_path():
    """The same CNN through the capture (built-in class) and through x.grad (the same layers, another class)."""
    from sensprune.train.models import SmallCNN

    rng = np.random.default_rng(2)
    x = rng.normal(size=(64, 6, 6)).astype(np.float32)
    y = rng.integers(0, 3, 64)

    class Grads(Hook):
        needs_input_grad = True

        def __init__(self):
            self.g = []

        def on_step(self, step, run):
            self.g.append(step.input_grad.clone())

    class Other(SmallCNN):  # not the built-in class itself: the generic leaf path
        pass

    a, b = Grads(), Grads()
    cfg = TrainConfig(epochs=2, batch_size=16)
    ra = train(lambda: SmallCNN(3, (6, 6)), _src(x, y), cfg, hooks=[a], progress=False)
    rb = train(lambda: Other(3, (6, 6)), _src(x, y), cfg, hooks=[b], progress=False)
    for p, q in zip(ra.model.parameters(), rb.model.parameters()):
        assert torch.allclose(p, q, atol=1e-6)
    assert len(a.g) == len(b.g) == 8
    for ga, gb in zip(a.g, b.g):
        assert torch.allclose(ga, gb, rtol=1e-4, atol=1e-7)
    assert not ra.model.features[0]._forward_hooks  # the capture hook is removed after training


def test_deferred_divergence_check_names_the_same_step(tiny_arrays, monkeypatch):
    """On accelerators the finiteness check runs once per epoch; it reports the first bad step all the same."""
    import sensprune.train.loop as T

    x, y, xt, yt = tiny_arrays
    x = x * 1e18
    msgs = []
    for defer in (False, True):
        monkeypatch.setattr(T, "DEFER_FINITE_CHECK", defer)
        with pytest.raises(TrainingDivergedError) as err:
            train(_build, _src(x, y), TrainConfig(epochs=3, lr=1e6), progress=False)
        msgs.append(str(err.value))
    assert msgs[0] == msgs[1]


@pytest.mark.slow
def test_gpu_check_script_dry_run_on_cpu(tmp_path):
    """benchmarks/device_check.sh end to end at toy sizes (GPU_CHECK_TINY=1): every section runs, the report is
    written under $OUT and names the device."""
    import os
    import subprocess
    from pathlib import Path

    root = Path(__file__).resolve().parents[1]
    env = {**os.environ, "GPU_CHECK_TINY": "1", "OUT": str(tmp_path)}
    proc = subprocess.run(["bash", str(root / "benchmarks" / "device_check.sh")], env=env, capture_output=True,
                          text=True, timeout=1200)
    assert proc.returncode == 0, proc.stdout[-2000:] + proc.stderr[-2000:]
    report = (tmp_path / "device_check.txt").read_text()
    for title in ("## 0. machine", "## 1. CIFAR-10-sized", "## 2. committed overhead", "## 3. throughput",
                  "## 4. DDP"):
        assert title in report
    assert "section failed" not in report and "stopped at its" not in report
    assert "no GPU (CPU dry run)" in report and "online ÷ plain" in report and "examples/s" in report


def test_online_measures_under_amp_bf16_on_cpu():
    """The cnn's first-layer capture and the EL2N pass run under --amp bf16 (gradients come back in bf16)."""
    from sensprune.measures.input_grad import InputGradHook
    from sensprune.measures.peers import EL2NHook
    from sensprune.train.models import SmallCNN

    rng = np.random.default_rng(3)
    x = rng.normal(size=(64, 6, 6)).astype(np.float32)
    y = rng.integers(0, 3, 64)
    ig, el = InputGradHook(64), EL2NHook(64, 1)
    train(lambda: SmallCNN(3, (6, 6)), _src(x, y), TrainConfig(epochs=2, batch_size=16, amp="bf16"),
          hooks=[ig, el], progress=False)
    v = ig.values()["input_grad"]
    assert np.isfinite(v).all() and (v > 0).all()
    e = el.values()["el2n"]
    assert np.isfinite(e).all() and (e >= 0).all() and (e <= np.sqrt(2) + 1e-6).all()
