import numpy as np
import pytest
import torch

from sensprune.measures import MEASURES, check_measures
from sensprune.measures.gini import gini, lorenz
from sensprune.measures.peers import DynamicsHook, el2n, margins
from sensprune.train import StepInfo
from sensprune.errors import ValidationError


def _step(idx, logits, y):
    logits = torch.tensor(logits, dtype=torch.float64)
    y = torch.tensor(y)
    losses = torch.nn.functional.cross_entropy(logits, y, reduction="none")
    return StepInfo(0, 0, torch.tensor(idx), torch.zeros(len(idx), 1), y, logits, losses, None, 0.1)


def test_gini_hand_values():
    assert gini(np.ones(10)) == pytest.approx(0.0)
    assert gini(np.array([0, 0, 0, 1.0])) == pytest.approx(0.75)
    assert gini(np.array([1.0, 2.0, 3.0])) == pytest.approx(2 * (1 + 4 + 9) / (3 * 6) - 4 / 3)
    assert gini(np.zeros(5)) == 0.0


def test_lorenz_endpoints_and_shape():
    curve = lorenz(np.array([0, 0, 0, 4.0]))
    assert curve.shape == (101,)
    assert curve[0] == 0 and curve[-1] == pytest.approx(1.0)
    assert curve[75] == pytest.approx(0.0)
    assert np.all(np.diff(curve) >= -1e-12)


def test_dynamics_hand_checkable_sequence():
    """Example 0: correct, wrong, correct, wrong → 2 forgetting events; example 1: never correct."""
    hook = DynamicsHook(2)
    seq = [([[2.0, 0.0], [2.0, 0.0]], [0, 1]),
           ([[0.0, 1.0], [3.0, 0.0]], [0, 1]),
           ([[1.0, 0.0], [1.0, 0.0]], [0, 1]),
           ([[0.0, 2.0], [1.0, 0.5]], [0, 1])]
    for logits, y in seq:
        hook.on_step(_step([0, 1], logits, y), None)
    v = hook.values()
    assert v["forgetting"][0] == 2
    assert v["forgetting"][1] == 5  # never learned: presentations + 1
    assert v["correctness"].tolist() == [0.5, 1.0]
    # AUM of example 0: margins 2, -1, 1, -2 → mean 0 → stored −AUM = 0
    assert v["aum"][0] == pytest.approx(0.0)
    assert v["aum"][1] == pytest.approx(-np.mean([-2.0, -3.0, -1.0, -0.5]))
    p0 = torch.softmax(torch.tensor([[2.0, 0], [0, 1.0], [1.0, 0], [0, 2.0]], dtype=torch.float64), 1)[:, 0].numpy()
    assert v["confidence"][0] == pytest.approx(1 - p0.mean())
    assert v["variability"][0] == pytest.approx(p0.std())
    losses = -np.log(p0)
    assert v["loss"][0] == pytest.approx(losses.mean())


def test_dynamics_state_roundtrip():
    a = DynamicsHook(2)
    a.on_step(_step([0, 1], [[2.0, 0.0], [0.0, 1.0]], [0, 0]), None)
    b = DynamicsHook(2)
    b.load_state_dict(a.state_dict())
    for k in a.values():
        np.testing.assert_array_equal(a.values()[k], b.values()[k])


def test_el2n_and_margin_by_hand():
    logits = torch.tensor([[0.0, 0.0], [np.log(3.0), 0.0]], dtype=torch.float64)
    y = torch.tensor([0, 1])
    e = el2n(logits, y).numpy()
    assert e[0] == pytest.approx(np.sqrt(0.5 ** 2 * 2))
    assert e[1] == pytest.approx(np.sqrt(0.75 ** 2 * 2))
    assert margins(logits, y).tolist() == pytest.approx([0.0, -np.log(3.0)])


def test_every_measure_states_a_direction():
    for spec in MEASURES.values():
        assert spec.direction.startswith("higher")


def test_unknown_measure_named():
    with pytest.raises(ValidationError, match="'bogus'"):
        check_measures(["el2n", "bogus"])
