"""The TuCo formula: the paper's worked examples (docs/method.md section 2), run through the real engine."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from tuco.engine import metrics
from tuco.engine.decomposition import Engine, Recorder, Stage, normalize_alphas
from tuco.errors import ConfigError


class Update(nn.Module):
    """A toy block: x -> x + f(x)."""

    def __init__(self, f):
        super().__init__()
        self.f = f

    def forward(self, x):
        return x + self.f(x)


def run(ft_fs, pt_fs, x0, alpha=1.0):
    """Run toy FT blocks under the engine (the way a HF model loops over its layers)."""
    ft = nn.ModuleList([Update(f) for f in ft_fs])
    pt = nn.ModuleList([Update(f) for f in pt_fs])
    rec = Recorder(len(ft))
    with Engine([Stage(pt), Stage(ft)], alpha=alpha, recorder=rec):
        x = x0
        for block in ft:
            x = block(x)
    return x, rec.records[0]


H = torch.tensor([[[1.0, -2.0, 0.5]]])  # [B=1, T=1, d=3]


def test_worked_example_half():
    """(PTC, FTC) per layer = (0, h), (0, -h/2), (h, 0), (-h/2, 0) from x_0 = 0: TuCo = 1/2."""
    h = H[0, 0]
    ptc = torch.stack([0 * h, 0 * h, h, -h / 2])
    ftc = torch.stack([h, -h / 2, 0 * h, 0 * h])
    assert float(metrics.tuco_from_layers(ptc, ftc)) == pytest.approx(0.5, abs=1e-7)
    # The same numbers through the engine: FT layer = PTC + FTC, PT layer = PTC (constants).
    cst = lambda v: lambda x: v.expand_as(x)  # noqa: E731
    _, rec = run([cst(p + f) for p, f in zip(ptc, ftc)], [cst(p) for p in ptc], torch.zeros_like(H))
    assert float(metrics.tuco(rec.sum_ptc, rec.sum_ftc)) == pytest.approx(0.5, abs=1e-7)


def test_worked_example_quarter_output_only_says_zero():
    """PT: h then x -> 2x; FT: 2h then identity. Both end at 2h, yet S_PTC = 3h, S_FTC = -h: TuCo = 1/4."""
    h = H
    x_ft, rec = run([lambda x: 2 * h, lambda x: 0 * x], [lambda x: h, lambda x: x], torch.zeros_like(H))
    torch.testing.assert_close(rec.sum_ptc, 3 * h[:, 0])
    torch.testing.assert_close(rec.sum_ftc, -h[:, 0])
    assert float(metrics.tuco(rec.sum_ptc, rec.sum_ftc)) == pytest.approx(0.25, abs=1e-7)
    # PT on its own trajectory: 0 -> h -> 2h; the output-only comparison sees nothing.
    x_pt = torch.zeros_like(H)
    for f in (lambda x: h, lambda x: x):
        x_pt = x_pt + f(x_pt)
    torch.testing.assert_close(x_ft, x_pt)
    assert float(metrics.output_co(x_pt, x_ft)) == 0.0


def test_sum_before_norm_cancellation_counts():
    """FTC of +h then -h cancels: TuCo = 0, although each layer's FTC is large."""
    h = H[0, 0]
    ptc = torch.stack([h, h])
    ftc = torch.stack([h, -h])
    assert float(metrics.tuco_from_layers(ptc, ftc)) == 0.0


def test_tuco_range_and_preco():
    g = torch.Generator().manual_seed(0)
    s_ptc, s_ftc = torch.randn(100, 16, generator=g), torch.randn(100, 16, generator=g) * 0.3
    t = metrics.tuco(s_ptc, s_ftc)
    assert bool(((t >= 0) & (t <= 1)).all())
    torch.testing.assert_close(t + metrics.preco(s_ptc, s_ftc), torch.ones(100))
    direct = s_ftc.abs().sum(-1) / (s_ptc.abs().sum(-1) + s_ftc.abs().sum(-1))
    torch.testing.assert_close(t, direct)


def test_zero_contribution_is_zero_not_nan():
    z = torch.zeros(2, 4)
    assert metrics.tuco(z, z).tolist() == [0.0, 0.0]
    assert metrics.preco(z, z).tolist() == [0.0, 0.0]


def test_cumulative_tuco_last_equals_tuco():
    g = torch.Generator().manual_seed(1)
    ptc, ftc = torch.randn(3, 5, 8, generator=g), torch.randn(3, 5, 8, generator=g)
    torch.testing.assert_close(metrics.cumulative_tuco(ptc, ftc)[:, -1], metrics.tuco_from_layers(ptc, ftc))


def test_steering_toy_alpha():
    """x_{l+1} = x_l + PTC + alpha * FTC on the scaled model's own stream."""
    h = H
    x, _ = run([lambda x: 2 * h, lambda x: 0 * x], [lambda x: h, lambda x: x], torch.zeros_like(H), alpha=0.5)
    x1 = h + 0.5 * h  # layer 1: PTC = h, FTC = h
    x2 = x1 + x1 + 0.5 * (0 - x1)  # layer 2: PTC = x1, FTC = -x1
    torch.testing.assert_close(x, x2)


@pytest.mark.parametrize("bad", [-0.1, float("nan"), float("inf"), [1.0, 1.0]])
def test_alpha_validation(bad):
    with pytest.raises(ConfigError):
        normalize_alphas(bad, 1, 3)


def test_alpha_per_layer_expands():
    assert normalize_alphas(1, 1, 3) == ((1.0, 1.0, 1.0),)
    assert normalize_alphas([0, 0.5, 2], 1, 3) == ((0.0, 0.5, 2.0),)
    assert normalize_alphas([1, 0.5], 2, 3) == ((1.0, 1.0, 1.0), (0.5, 0.5, 0.5))
    assert normalize_alphas([1, [0, 0.5, 2]], 2, 3) == ((1.0, 1.0, 1.0), (0.0, 0.5, 2.0))
    with pytest.raises(ConfigError, match="stages"):
        normalize_alphas([1, 1, 1], 2, 3)
