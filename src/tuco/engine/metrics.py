"""TuCo, PreCo, per-layer and output-only metrics from recorded sums. Pure tensor functions.

Definitions (docs/method.md section 2, Definition 4.3 of the paper):

    S_PTC = sum_l PTC_l,  S_FTC = sum_l FTC_l          (signed d-vectors: sum first, norm once)
    TuCo  = ||S_FTC||_1 / (||S_PTC||_1 + ||S_FTC||_1)   in [0, 1];   PreCo = 1 - TuCo

Everything is computed in float32 (or float64 if given). Never runs a model.
"""

from __future__ import annotations

import torch


def _wide(v: torch.Tensor) -> torch.Tensor:
    """At least float32 (float64 stays float64)."""
    return v if v.dtype == torch.float64 else v.float()


def l1(v: torch.Tensor) -> torch.Tensor:
    """L1 norm over the last (hidden) dimension, in at least float32."""
    return _wide(v).abs().sum(-1)


def tuco_from_norms(ptc_l1: torch.Tensor, ftc_l1: torch.Tensor) -> torch.Tensor:
    """TuCo from the two L1 norms; 0 where both are 0 (nothing was contributed at all)."""
    total = ptc_l1 + ftc_l1
    return torch.where(total > 0, ftc_l1 / torch.where(total > 0, total, torch.ones_like(total)), torch.zeros_like(total))


def tuco(sum_ptc: torch.Tensor, sum_ftc: torch.Tensor) -> torch.Tensor:
    """TuCo from the layer-summed components S_PTC, S_FTC ([..., d] -> [...])."""
    return tuco_from_norms(l1(sum_ptc), l1(sum_ftc))


def preco_from_norms(ptc_l1: torch.Tensor, ftc_l1: torch.Tensor) -> torch.Tensor:
    """PreCo = 1 - TuCo from the two L1 norms (0 where nothing was contributed)."""
    t = tuco_from_norms(ptc_l1, ftc_l1)
    return torch.where(ptc_l1 + ftc_l1 == 0, torch.zeros_like(t), 1.0 - t)


def preco(sum_ptc: torch.Tensor, sum_ftc: torch.Tensor) -> torch.Tensor:
    """PreCo = 1 - TuCo (0 where nothing was contributed)."""
    return preco_from_norms(l1(sum_ptc), l1(sum_ftc))


def tuco_from_layers(ptc: torch.Tensor, ftc: torch.Tensor) -> torch.Tensor:
    """TuCo from per-layer components stacked on dim -2 ([..., L, d] -> [...]): sums over layers first."""
    return tuco(_wide(ptc).sum(-2), _wide(ftc).sum(-2))


def cumulative_tuco(ptc: torch.Tensor, ftc: torch.Tensor) -> torch.Tensor:
    """TuCo of the components accumulated up to each layer ([..., L, d] -> [..., L])."""
    return tuco(_wide(ptc).cumsum(-2), _wide(ftc).cumsum(-2))


def output_co(x_pt: torch.Tensor, x_ft: torch.Tensor) -> torch.Tensor:
    """OutputCo = ||x_L^FT - x_L^PT||_1 / (||x_L^PT||_1 + ||x_L^FT - x_L^PT||_1) (docs/method.md section 5.5).

    ``x_pt`` is the PT model's final residual stream on its OWN trajectory, ``x_ft`` the FT model's.
    """
    diff = _wide(x_ft) - _wide(x_pt)
    return tuco_from_norms(l1(x_pt), l1(diff))


def stage_shares(sums: torch.Tensor) -> torch.Tensor:
    """Each stage's share ||S_k||_1 / sum_j ||S_j||_1 from [S, ...,  d] sums -> [S, ...]."""
    norms = l1(sums)
    total = norms.sum(0, keepdim=True)
    return torch.where(total > 0, norms / torch.where(total > 0, total, torch.ones_like(total)), torch.zeros_like(norms))
