"""Means and slopes over crossed designs: intervals that speak for NEW stimuli, requests and topics.

A GCG analysis measures r requests x c suffixes; a many-shot analysis measures each request at several k
with shots drawn from a pool. The requests are a sample, so are the suffixes, the shots and the topics the
requests come from. Averaging each request over the same suffixes and treating requests as the only random
unit (``intervals.mean_ci`` on per-request means) ignores that every request saw the SAME few suffixes: the
suffixes' own effects are shared by all requests and never average out. Under a null with suffix SD 0.0045
(32 requests, 5 suffixes) that test rejected 43% of the time at nominal 5% (the review's measurement;
tests/test_crossed.py: 0.18 with request SD 0.01, 0.40 with suffix SD 0.01).

The model (one value per (request, stimulus) cell)::

    y_ij = mu + topic_t(i) + request_i + stimulus_j + (topic x stimulus)_t(i)j + e_ij

with every term but mu random (independent, mean 0). The grand mean of the cells has variance
``sum_k sigma_k^2 * ||Z_k' c||^2 + sigma_e^2 * ||c||^2`` (c: the estimator's weights, Z_k: the incidence
matrix of factor k); with r rows, c columns, G topics, balanced and complete: sigma_topic^2 / G +
sigma_request^2 / r + sigma_stimulus^2 / c + sigma_ts^2 / (G c) + sigma_e^2 / (r c).

Method (chosen over a multiway cluster bootstrap and REML, see docs/stats-methods-draft.md):

- variance components by the method of moments (Henderson's method III, "fitting constants"): for each
  random factor, the reduction in residual sum of squares when it is added to a fixed-effects fit of all
  the other factors that do not contain it; the expectation of each reduction is a known linear
  combination of the components (traces computed from the design), so the components are the solution of
  a small linear system. Unbiased for any pattern of missing cells, exactly the ANOVA estimators when the
  design is balanced and complete, closed form (a simulation of thousands of data sets is a handful of
  matrix products), and no iteration that can fail to converge;
- the interval and p-value from the generalized pivotal quantities (fiducial distribution) of the mean
  squares: each mean square is redrawn as ms * df / chi2(df), the components re-solved and truncated at 0
  in each draw, and the estimate's distribution is the resulting scale mixture of normals. Where the
  variance rests on one mean square this is exactly the t interval; where it rests on several, some with
  a minus sign, it replaces Satterthwaite's one-df approximation, which proved liberal exactly where the
  verdicts live: with 2-3 stimuli carrying most of the variance (false-positive rate 0.116 at c = 2,
  0.072 at c = 3) and in the shot-slope designs (0.083). The fiducial interval held <= 0.053 in every
  design simulated, at the price of ~7% (10 stimuli) to ~13% (5 stimuli) more width. Point estimates
  (components truncated at 0, the system re-solved without them) and the Satterthwaite df are reported
  as diagnostics. The number of stimuli, not the number of cells, limits what can be claimed.

A slope over a dose (k in-context shots) is supported the same way (``crossed_slope_ci``): the stimuli are
either crossed stimulus sets (``cols``: each request measured at every k under several independent shot
orderings) or the members of each prompt (``members``: the ids of the shots it contains, a multi-membership
design, which also covers ONE ordering shared by every request).

A difference between two sets of rows measured under the same stimuli (harmful minus benign requests'
TuCo drop, pooled over encodings) is ``crossed_difference_ci``: the stimuli's effect on every row cancels,
the stimulus x set interaction is the random term that makes the interval speak for new stimuli, and each
set has its own row and group variance (``DifferenceDesign``; simulated in tests/test_exp_conjugate.py).

Numpy only; scipy's normal tail (``ndtr``) is used when present (``math.erfc`` otherwise).
"""

from __future__ import annotations

import math
from collections.abc import Hashable, Iterable, Mapping, Sequence
from dataclasses import dataclass

import numpy as np

from tuco.stats.intervals import LEVEL, Interval

__all__ = [
    "CrossedDesign",
    "DifferenceDesign",
    "MIN_STIMULI",
    "SlopeDesign",
    "crossed_difference_ci",
    "crossed_mean_ci",
    "crossed_slope_ci",
    "min_stimuli",
]

#: The fewest stimuli (columns) this method accepts. One stimulus leaves the stimulus variance inestimable
#: (ValueError). From two on, p < 0.05 is reachable (when the stimuli agree, their mean square is small)
#: and the level holds (simulated: 0.044 at c = 2 with the stimuli carrying most of the variance); see
#: ``min_stimuli`` for what a distribution-free test needs.
MIN_STIMULI = 2

_RANK_TOL = 1e-9


def min_stimuli(level: float = LEVEL, *, distribution_free: bool = False) -> int:
    """The fewest stimuli with which a two-sided p below ``1 - level`` can be reached at all.

    Under this module's method (random effects, fiducial interval) that is 2 at any level: with two
    stimuli whose effects agree, the stimulus mean square is small and any p can be reached. The price of
    so few stimuli is paid in width when they disagree (the stimulus term then has the tails of a t on
    1 df: quantile 12.7 at 95%), and the validity rests on normal stimulus effects, which 2-5 stimuli
    cannot check.

    ``distribution_free=True`` gives the floor of any test that assumes only that the stimulus effects are
    symmetric about the null (a sign-flip test over stimuli): the smallest c with 2 / 2^c <= 1 - level,
    i.e. 6 at 95% (5 stimuli that all agree give p = 1/16 = 0.0625). That is the number of stimuli a
    verdict needs if it is to hold without a normality assumption about the stimulus population.
    """
    if not 0 < level < 1:
        raise ValueError(f"level must be in (0, 1), got {level}")
    if not distribution_free:
        return MIN_STIMULI
    alpha = 1 - level
    c = 1
    while 2.0 / 2**c > alpha + 1e-15:
        c += 1
    return c


# --------------------------------------------------------------------------------------------
# The method-of-moments engine (any fixed part, any random incidence matrices, any linear estimator).
# --------------------------------------------------------------------------------------------


def _basis(a: np.ndarray) -> np.ndarray:
    """An orthonormal basis (columns) of the column space of ``a``, from the eigendecomposition of the
    small Gram matrix a'a (incidence matrices: well conditioned but for exact dependencies)."""
    if a.shape[1] == 0:
        return np.zeros((a.shape[0], 0))
    lam, v = np.linalg.eigh(a.T @ a)
    if lam[-1] <= 0:
        return np.zeros((a.shape[0], 0))
    keep = lam > lam[-1] * _RANK_TOL
    out: np.ndarray = (a @ v[:, keep]) / np.sqrt(lam[keep])
    return out


def _complement(after: np.ndarray, before: np.ndarray) -> np.ndarray:
    """An orthonormal basis of span(after) minus span(before) (before's span lies inside after's): the
    range of P_after - P_before, a projection, so the Gram matrix below has eigenvalues 0 or 1."""
    if after.shape[1] == 0:
        return after
    overlap = before.T @ after
    lam, v = np.linalg.eigh(np.eye(after.shape[1]) - overlap.T @ overlap)
    keep = lam > 0.5
    r = after @ v[:, keep]
    out: np.ndarray = r - before @ (before.T @ r)
    return out


def _inside(z: np.ndarray, basis: np.ndarray) -> bool:
    """span(z) lies inside span(basis)."""
    resid = z - basis @ (basis.T @ z)
    return bool(np.linalg.norm(resid) <= 1e-8 * max(1.0, float(np.linalg.norm(z))))


@dataclass(frozen=True)
class _Form:
    """One quadratic form y' B B' y (a reduction in sum of squares) with its df and expectation row."""

    name: str
    basis: np.ndarray  # N x df, orthonormal
    df: int


class _Moments:
    """Henderson-III variance components of a linear estimator c'y (its point variance and Satterthwaite df too).

    ``fixed``: N x p fixed-effects design (its span must contain what c' annihilates: c' fixed gives the
    estimand's coefficients). ``random``: name -> N x levels incidence (or covariate) matrix, in order of
    priority (a factor that turns out confounded with a later one or with the residual is dropped from
    the end). ``c``: the estimator's weights (N,).
    """

    def __init__(self, fixed: np.ndarray, random: dict[str, np.ndarray], c: np.ndarray) -> None:
        n = fixed.shape[0]
        self.n = n
        self.c = c
        self._fixed = fixed
        self._random = dict(random)
        self._spans: dict[frozenset[str], np.ndarray] = {}
        comps = dict(random)
        x0 = self._span(frozenset())
        # drop a factor whose span (beyond the fixed part) is empty or equals an earlier factor's
        kept: dict[str, np.ndarray] = {}
        spans: dict[str, np.ndarray] = {}
        for name, z in comps.items():
            span = self._span(frozenset([name]))
            if span.shape[1] == x0.shape[1]:
                continue  # nothing beyond the fixed part (e.g. topic slopes when each topic has one row)
            if any(spans[o].shape[1] == span.shape[1] and _inside(span, spans[o]) for o in kept):
                continue  # the same span as an earlier factor: its variance is that factor's
            kept[name] = z
            spans[name] = span
        while True:
            full = self._span(frozenset(kept))
            if full.shape[1] >= n:  # a factor that leaves no residual df is confounded with the residual
                if not kept:
                    raise ValueError("no residual degrees of freedom: every cell is a parameter (more values are needed)")
                kept.pop(next(reversed(kept)))
                continue
            self.residual_df = n - full.shape[1]
            self.full = full
            forms = self._forms(kept, spans)
            empty = [f.name for f in forms[:-1] if f.df == 0]
            if empty:  # nothing of this factor is left once the others are fitted: it is theirs
                kept.pop(empty[-1])
                continue
            k = self._expectations(forms, kept)
            if np.linalg.matrix_rank(k) < k.shape[0]:  # not identifiable: the last factor goes into the others
                kept.pop(next(reversed(kept)))
                continue
            break
        self.names = list(kept)
        self.forms = forms
        self.k = k  # rows: forms (components then residual); columns: components then residual
        self.s = np.array([float(np.sum((z.T @ c) ** 2)) for z in kept.values()] + [float(c @ c)])

    def _span(self, names: frozenset[str]) -> np.ndarray:
        """An orthonormal basis of the fixed part plus the named factors (cached: the forms share fits)."""
        if names not in self._spans:
            self._spans[names] = _basis(np.hstack([self._fixed, *(self._random[k] for k in self._random if k in names)]))
        return self._spans[names]

    def _forms(self, kept: dict[str, np.ndarray], spans: dict[str, np.ndarray]) -> list[_Form]:
        forms = []
        for name in kept:
            # factors whose span contains this one's (e.g. requests contain topics) stay out of its fit
            nesting = {o for o in kept if o != name and _inside(spans[name], spans[o])}
            others = frozenset(o for o in kept if o != name and o not in nesting)
            before, after = self._span(others), self._span(others | {name})
            b = _complement(after, before)
            forms.append(_Form(name, b, b.shape[1]))
        forms.append(_Form("residual", self.full, self.residual_df))  # the complement of ``full``: see ``_mean_squares``
        return forms

    @staticmethod
    def _expectations(forms: list[_Form], kept: dict[str, np.ndarray]) -> np.ndarray:
        """E[mean square of form f] = sum_l K[f, l] sigma_l^2 (+ K[f, e] sigma_e^2)."""
        zs = list(kept.values())
        k = np.zeros((len(forms), len(zs) + 1))
        for f, form in enumerate(forms):
            if form.name == "residual":
                k[f, -1] = 1.0
                continue
            for j, z in enumerate(zs):
                k[f, j] = float(np.sum((form.basis.T @ z) ** 2)) / form.df
            k[f, -1] = 1.0
        return k

    def _mean_squares(self, y: np.ndarray) -> np.ndarray:
        """B x forms: each form's sum of squares over its df; the residual's as |y|^2 - |P_full y|^2."""
        out = [np.sum((y @ f.basis) ** 2, axis=1) / f.df for f in self.forms[:-1]]
        resid = np.sum(y * y, axis=1) - np.sum((y @ self.full) ** 2, axis=1)
        out.append(np.maximum(resid, 0.0) / self.residual_df)
        return np.stack(out, axis=1)

    def fit(self, y: np.ndarray) -> dict[str, np.ndarray]:
        """Point estimates for a batch ``y`` (B x N): the estimate c'y, the variance components (B x
        components, the residual last; negative ones set to zero and the system re-solved without them),
        the variance of c'y they imply, its Satterthwaite df (a diagnostic: the intervals are fiducial,
        see ``_Fiducial``) and the mean squares (B x forms)."""
        y = np.atleast_2d(y)
        b = y.shape[0]
        ms = self._mean_squares(y)
        m = len(self.names)
        active = np.ones((b, m), dtype=bool)
        sigma = np.zeros((b, m + 1))
        var = np.zeros(b)
        df = np.zeros(b)
        for _ in range(m + 1):
            codes = active @ (1 << np.arange(m)) if m else np.zeros(b, dtype=np.int64)
            changed = False
            for code in np.unique(codes):
                rows = codes == code
                on = [j for j in range(m) if code >> j & 1] + [m]
                ksub = self.k[np.ix_(on, on)]
                sol = np.linalg.solve(ksub, ms[rows][:, on].T).T  # B' x len(on)
                neg = sol[:, :-1] < 0
                if neg.any():
                    changed = True
                    idx = np.flatnonzero(rows)
                    act = active[idx]
                    act[:, [j for j in on[:-1]]] &= ~neg
                    active[idx] = act
                    continue
                sig = np.zeros((sol.shape[0], m + 1))
                sig[:, on] = sol
                sigma[rows] = sig
                a = np.linalg.solve(ksub.T, self.s[on])  # V = sum_j a_j MS_j
                terms = ms[rows][:, on] * a
                v = terms.sum(1)
                dfs = np.array([self.forms[j].df for j in on], dtype=float)
                denom = (terms**2 / dfs).sum(1)
                var[rows] = v
                df[rows] = np.where(denom > 0, v**2 / np.where(denom > 0, denom, 1.0), np.inf)
            if not changed:
                break
        return {"estimate": y @ self.c, "var": np.maximum(var, 0.0), "df": df, "sigma": sigma, "ms": ms}


def _normal_sf(z: np.ndarray) -> np.ndarray:
    """P(Z > z), elementwise, accurate in the far tail (scipy's ndtr when present; math.erfc otherwise)."""
    try:
        from scipy.special import ndtr

        return np.asarray(ndtr(-z), dtype=float)
    except ImportError:  # pragma: no cover - scipy is a dev dependency
        return np.asarray(np.frompyfunc(lambda t: 0.5 * math.erfc(t / math.sqrt(2)), 1, 1)(z), dtype=float)


class _Fiducial:
    """Draws of the estimator's variance from the generalized pivotal quantities of the mean squares
    (Weerahandi 1993; for variance components, Burdick & Graybill 1992, Hannig, Iyer & Patterson 2006):

        MS_j* = ms_j df_j / U_j,  U_j ~ chi2(df_j) independent;  sigma* = max(0, K^-1 MS*);  V* = s' sigma*

    The estimate's fiducial distribution is then the scale mixture estimate + sqrt(V*) Z, Z ~ N(0, 1):
    a t distribution when V rests on one mean square, and the right mixture (no one-df approximation)
    when it rests on several, some entering with a minus sign. Common random numbers (one seeded set of
    U for every data set) keep the answer a deterministic function of the data."""

    def __init__(self, moments: _Moments, draws: int, seed: int) -> None:
        if draws < 100:
            raise ValueError(f"draws must be at least 100, got {draws}")
        dfs = np.array([f.df for f in moments.forms], dtype=float)
        u = np.random.default_rng(seed).chisquare(dfs, size=(draws, len(dfs)))
        self.scale = dfs / u  # draws x forms
        self.kinv_t = np.linalg.inv(moments.k).T
        self.s = moments.s

    def variances(self, ms: np.ndarray) -> np.ndarray:
        """V* (draws,) for one data set's mean squares ``ms`` (forms,)."""
        sigma = np.maximum((self.scale * ms) @ self.kinv_t, 0.0)
        return np.asarray(sigma @ self.s)

    @staticmethod
    def p_value(diff: np.ndarray, v: np.ndarray) -> np.ndarray:
        """Two-sided p for |estimate - null| = ``diff`` (B,) against draws ``v`` (B x draws)."""
        with np.errstate(divide="ignore"):
            z = np.where(v > 0, diff[:, None] / np.sqrt(np.where(v > 0, v, 1.0)), np.where(diff[:, None] > 0, np.inf, 0.0))
        tail = _normal_sf(z)
        tail = np.where(np.isinf(z), 0.0, np.where(z == 0, 0.5, tail))
        out: np.ndarray = np.minimum(1.0, 2 * tail.mean(axis=1))
        return out

    @staticmethod
    def half_width(v: np.ndarray, level: float) -> float:
        """q with mean_d P(|Z| sqrt(V_d) > q) = 1 - level (bisection on the mixture's tail)."""
        target = 1 - level
        pos = v[v > 0]
        if len(pos) == 0:
            return 0.0
        lo, hi = 0.0, float(np.sqrt(pos.max())) * 40.0
        for _ in range(80):
            mid = (lo + hi) / 2
            tail = 2 * float(np.sum(_normal_sf(mid / np.sqrt(pos)))) / len(v)
            if tail > target:
                lo = mid
            else:
                hi = mid
        return hi


# --------------------------------------------------------------------------------------------
# Designs: the shared interval logic.
# --------------------------------------------------------------------------------------------


class _Design:
    """A fixed layout with its moments engine built once, so that many value vectors (a simulation, a
    power analysis) cost a few matrix products each."""

    _moments: _Moments
    _method: str

    @property
    def components(self) -> list[str]:
        """The variance components the design identifies (the residual last)."""
        return [*self._moments.names, "residual"]

    def _prepare(self, values: np.ndarray) -> np.ndarray:
        raise NotImplementedError

    def _n(self) -> tuple[int, ...]:
        raise NotImplementedError

    def fit(self, values: np.ndarray | Sequence[float]) -> dict[str, np.ndarray]:
        """Point estimates for one data set or a batch (rows of ``values``): estimate, var, df (Satterthwaite,
        a diagnostic), sigma (variance components), ms (mean squares)."""
        return self._moments.fit(self._prepare(np.atleast_2d(np.asarray(values, dtype=float))))

    def p_values(self, values: np.ndarray, *, null: float = 0.0, draws: int = 2000, seed: int = 0) -> dict[str, np.ndarray]:
        """For a simulation: the estimate and the two-sided fiducial p against ``null`` of each data set
        (rows of ``values``). The interval at level L excludes ``null`` exactly when p < 1 - L, so the
        coverage of a true value t is the share of data sets with p(null=t) >= 1 - L."""
        got = self.fit(values)
        fid = _Fiducial(self._moments, draws, seed)
        ms = got["ms"]
        p = np.empty(len(ms))
        step = max(1, 2_000_000 // (draws * max(1, len(self.components))))
        for a in range(0, len(ms), step):
            v = np.stack([fid.variances(m) for m in ms[a : a + step]])
            p[a : a + step] = fid.p_value(np.abs(got["estimate"][a : a + step] - null), v)
        return {"estimate": got["estimate"], "p": p, "var": got["var"], "df": got["df"]}

    def interval(
        self, values: Sequence[float] | np.ndarray, *, null: float = 0.0, level: float = LEVEL, draws: int = 10000, seed: int = 0
    ) -> Interval:
        """The estimate, its fiducial interval and two-sided p against ``null`` for one data set."""
        if not 0 < level < 1:
            raise ValueError(f"level must be in (0, 1), got {level}")
        got = self.fit(np.asarray(values, dtype=float)[None, :])
        est, var, df = float(got["estimate"][0]), float(got["var"][0]), float(got["df"][0])
        sig = got["sigma"][0]
        extra = {f"var_{name}": float(sig[i]) for i, name in enumerate(self.components)}
        n = self._n()
        cells = self._prepare(np.asarray(values, dtype=float)[None, :])[0]
        if float(np.ptp(cells)) == 0.0:  # every cell equal: no spread at any level (the intervals.py convention)
            est, var = float(cells[0]) * round(float(self._moments.c.sum()), 9), 0.0  # the value (a mean), 0 (a slope)
        if var <= 0:
            return Interval(est, est, est, 0.0 if est != null else 1.0, n, "constant", null, {**extra, "se": 0.0, "df": 0.0})
        fid = _Fiducial(self._moments, draws, seed)
        v = fid.variances(got["ms"][0])
        q = fid.half_width(v, level)
        p = float(fid.p_value(np.array([abs(est - null)]), v[None, :])[0])
        extra = {**extra, "se": math.sqrt(var), "df_satterthwaite": df, "draws": float(draws)}
        return Interval(est, est - q, est + q, p, n, self._method, null, extra)


# --------------------------------------------------------------------------------------------
# Crossed means.
# --------------------------------------------------------------------------------------------


def _codes(labels: Sequence[Hashable]) -> tuple[np.ndarray, list[Hashable]]:
    index: dict[Hashable, int] = {}
    out = np.array([index.setdefault(x, len(index)) for x in labels], dtype=np.int64)
    return out, list(index)


def _onehot(codes: np.ndarray, k: int) -> np.ndarray:
    z = np.zeros((len(codes), k))
    z[np.arange(len(codes)), codes] = 1.0
    return z


def _groups_of_rows(row_groups: Sequence[Hashable] | Mapping[Hashable, Hashable], rows: Sequence[Hashable]) -> list[Hashable]:
    """One group label per observation (``row_groups`` aligned with the values, or a mapping row -> group);
    every row in exactly one group (requests are nested in topics)."""
    if isinstance(row_groups, Mapping):
        missing = [r for r in dict.fromkeys(rows) if r not in row_groups]
        if missing:
            raise ValueError(f"row_groups has no group for rows {missing[:5]}")
        return [row_groups[r] for r in rows]
    groups = list(row_groups)
    if len(groups) != len(rows):
        raise ValueError(f"row_groups must have one label per value ({len(rows)}), got {len(groups)}")
    seen: dict[Hashable, Hashable] = {}
    for r, g in zip(rows, groups):
        if seen.setdefault(r, g) != g:
            raise ValueError(f"row {r!r} is in two groups ({seen[r]!r} and {g!r}): rows must be nested in groups")
    return groups


def _check_finite(v: np.ndarray, what: str = "values") -> None:
    if not np.all(np.isfinite(v)):
        raise ValueError(f"{what} must be finite (no NaN or infinity)")


def _cell_means(values: np.ndarray, cell_of_value: np.ndarray, n_per_cell: np.ndarray) -> np.ndarray:
    """Each data set's (rows of ``values``) mean per cell: replicated cells averaged first."""
    if values.shape[1] != len(cell_of_value):
        raise ValueError(f"expected {len(cell_of_value)} values, got {values.shape[1]}")
    _check_finite(values)
    sums = np.zeros((values.shape[0], len(n_per_cell)))
    for j in range(values.shape[0]):
        sums[j] = np.bincount(cell_of_value, weights=values[j], minlength=len(n_per_cell))
    means: np.ndarray = sums / n_per_cell
    return means


class CrossedDesign(_Design):
    """Rows x columns, rows optionally nested in groups, cells possibly missing or replicated.

    Replicated cells are averaged first (one value per (row, column) cell): a cell's replicates share its
    row, column and interaction effects, and counting them as independent would understate the variance.
    The estimator is the mean over cells.
    """

    _method = "crossed random effects: method-of-moments (Henderson III) components, fiducial (GPQ) interval"

    def __init__(
        self,
        rows: Sequence[Hashable],
        cols: Sequence[Hashable],
        *,
        row_groups: Sequence[Hashable] | Mapping[Hashable, Hashable] | None = None,
    ) -> None:
        if len(rows) != len(cols):
            raise ValueError(f"one row and one column label per value: {len(rows)} rows, {len(cols)} columns")
        cell_codes, cells = _codes(list(zip(rows, cols)))
        self._cell_of_value = cell_codes
        self._n_per_cell = np.bincount(cell_codes, minlength=len(cells)).astype(float)
        first = np.zeros(len(cells), dtype=np.int64)  # a value of each cell (its first)
        first[cell_codes[::-1]] = np.arange(len(cell_codes))[::-1]
        cell_rows = [rows[i] for i in first.tolist()]
        r_codes, r_labels = _codes(cell_rows)
        c_codes, c_labels = _codes([cols[i] for i in first.tolist()])
        self.n_rows, self.n_cols = len(r_labels), len(c_labels)
        if self.n_cols < MIN_STIMULI:
            raise ValueError(
                f"{self.n_cols} stimulus (column): the stimulus variance cannot be estimated, so no interval can speak for new "
                f"stimuli; at least {MIN_STIMULI} are needed (min_stimuli())"
            )
        if self.n_rows < 2:
            raise ValueError(f"{self.n_rows} row: the row (request) variance cannot be estimated; at least 2 rows are needed")
        random = {"rows": _onehot(r_codes, self.n_rows), "cols": _onehot(c_codes, self.n_cols)}
        self.n_groups = 0
        if row_groups is not None:
            groups = _groups_of_rows(row_groups, rows)
            group_of_row = dict(zip(rows, groups))
            g_codes, g_labels = _codes([group_of_row[r] for r in cell_rows])
            self.n_groups = len(g_labels)
            if self.n_groups < 2:
                raise ValueError("1 group (topic): the group variance cannot be estimated; at least 2 groups are needed")
            gc_codes, gc_labels = _codes(list(zip(g_codes.tolist(), c_codes.tolist())))
            random["groups"] = _onehot(g_codes, self.n_groups)
            random["groups_cols"] = _onehot(gc_codes, len(gc_labels))
        n = len(cells)
        if n <= self.n_rows + self.n_cols - 1:
            raise ValueError(f"{n} cells for {self.n_rows} rows and {self.n_cols} columns: no residual degrees of freedom")
        self.n_cells = n
        self._moments = _Moments(np.ones((n, 1)), random, np.full(n, 1.0 / n))

    def _n(self) -> tuple[int, ...]:
        return (self.n_rows, self.n_cols) + ((self.n_groups,) if self.n_groups else ())

    def _prepare(self, values: np.ndarray) -> np.ndarray:
        return _cell_means(values, self._cell_of_value, self._n_per_cell)


def crossed_mean_ci(
    values: Sequence[float],
    rows: Sequence[Hashable],
    cols: Sequence[Hashable],
    *,
    row_groups: Sequence[Hashable] | Mapping[Hashable, Hashable] | None = None,
    null: float = 0.0,
    level: float = LEVEL,
    draws: int = 10000,
    seed: int = 0,
) -> Interval:
    """The grand mean over a crossed design, with an interval for NEW rows, columns (and groups).

    ``rows``: the request of each value; ``cols``: the stimulus (suffix, shot set) of each value;
    ``row_groups``: the topic of each value's request (aligned with ``values``) or a mapping request ->
    topic (requests nested in topics). Missing cells are allowed; replicated cells are averaged first.
    The estimate is the mean over cells; the interval and p are fiducial (``draws`` seeded draws).

    Returns ``Interval`` with n = (rows, columns[, groups]) and, in ``extra``, the variance components
    (``var_rows``, ``var_cols``, ``var_groups``, ``var_groups_cols``, ``var_residual``; one the design
    cannot separate from another is absent), ``se`` (from the point estimates) and ``df_satterthwaite``.

    Raises ValueError for one row, one column, one group, non-finite values, or no residual df. All cells
    equal: a "constant" interval (low = high = estimate, p 0 unless the estimate is the null), as in
    ``tuco.intervals``.
    """
    if len(values) != len(rows):
        raise ValueError(f"one row label per value: {len(values)} values, {len(rows)} rows")
    return CrossedDesign(rows, cols, row_groups=row_groups).interval(values, null=null, level=level, draws=draws, seed=seed)


# --------------------------------------------------------------------------------------------
# Crossed slopes (a dose such as the number of in-context shots).
# --------------------------------------------------------------------------------------------


class SlopeDesign(_Design):
    """The mean over rows of per-row least-squares slopes of the values on ``x``, in a design whose
    stimuli are crossed sets (``cols``) and/or the members of each prompt (``members``).

    Model: y = alpha_series + beta x + (row slope)_i x + (group slope)_t x + (col slope)_j x + sum over the
    prompt's members m of delta_m + e, with alpha fixed per series (a row's values under one col, or the
    row's values) and every other term but beta random. The estimator: per row, the slope with x centred
    within each series, averaged over rows with equal weight.

    The members' effects are deviations around their mean: the mean effect of a member is part of beta
    only when x counts the members (x = k). With another scale (log2(1 + k)), a nonzero mean member effect
    bends the dose curve and the slope is the least-squares slope of that curve.
    """

    _method = "mean of per-row slopes, crossed random effects: method-of-moments (Henderson III), fiducial (GPQ) interval"

    def __init__(
        self,
        rows: Sequence[Hashable],
        x: Sequence[float],
        *,
        cols: Sequence[Hashable] | None = None,
        members: Sequence[Iterable[Hashable]] | None = None,
        row_groups: Sequence[Hashable] | Mapping[Hashable, Hashable] | None = None,
    ) -> None:
        n = len(rows)
        xv = np.asarray(x, dtype=float)
        if len(xv) != n:
            raise ValueError(f"one x per value: {n} rows, {len(xv)} x")
        _check_finite(xv, "x")
        r_codes, r_labels = _codes(rows)
        self.n_rows = len(r_labels)
        if self.n_rows < 2:
            raise ValueError(f"{self.n_rows} row: per-row slopes need at least 2 rows for a between-row variance")
        if cols is not None and len(cols) != n:
            raise ValueError(f"one col label per value: {n} values, {len(cols)} cols")
        s_codes, s_labels = _codes(list(zip(rows, cols)) if cols is not None else list(rows))
        means = np.bincount(s_codes, weights=xv) / np.bincount(s_codes)
        xc = xv - means[s_codes]
        sxx_row = np.bincount(r_codes, weights=xc * xc, minlength=self.n_rows)
        if np.any(sxx_row <= 1e-12 * max(1.0, float(np.max(np.abs(xv))) ** 2)):
            bad = [r_labels[i] for i in np.flatnonzero(sxx_row <= 1e-12 * max(1.0, float(np.max(np.abs(xv))) ** 2))][:5]
            raise ValueError(f"rows {bad} have fewer than two distinct x within a series: no slope")
        c = xc / sxx_row[r_codes] / self.n_rows
        fixed = np.hstack([_onehot(s_codes, len(s_labels)), xv[:, None]])
        random: dict[str, np.ndarray] = {"row_slopes": _onehot(r_codes, self.n_rows) * xv[:, None]}
        self.n_cols = 0
        if cols is not None:
            c_codes, c_labels = _codes(cols)
            self.n_cols = len(c_labels)
            if self.n_cols < MIN_STIMULI:
                raise ValueError(f"{self.n_cols} col: a stimulus-set variance needs at least {MIN_STIMULI} sets")
            random["col_slopes"] = _onehot(c_codes, self.n_cols) * xv[:, None]
        self.n_members = 0
        if members is not None:
            if len(members) != n:
                raise ValueError(f"one member list per value: {n} values, {len(members)} member lists")
            index: dict[Hashable, int] = {}
            pairs = [(i, index.setdefault(m, len(index))) for i, ms in enumerate(members) for m in ms]
            self.n_members = len(index)
            if self.n_members < MIN_STIMULI:
                raise ValueError(f"{self.n_members} distinct members: a member variance needs at least {MIN_STIMULI}")
            z = np.zeros((n, self.n_members))
            for i, j in pairs:
                z[i, j] += 1.0
            random["members"] = z
        self.n_groups = 0
        if row_groups is not None:
            g_codes, g_labels = _codes(_groups_of_rows(row_groups, rows))
            self.n_groups = len(g_labels)
            if self.n_groups < 2:
                raise ValueError("1 group (topic): the group variance cannot be estimated; at least 2 groups are needed")
            random["group_slopes"] = _onehot(g_codes, self.n_groups) * xv[:, None]
        self.n_values = n
        self._moments = _Moments(fixed, random, c)

    def _n(self) -> tuple[int, ...]:
        extra = tuple(k for k in (self.n_cols, self.n_members, self.n_groups) if k)
        return (self.n_rows, *extra)

    def _prepare(self, values: np.ndarray) -> np.ndarray:
        if values.shape[1] != self.n_values:
            raise ValueError(f"expected {self.n_values} values, got {values.shape[1]}")
        _check_finite(values)
        return values


def crossed_slope_ci(
    values: Sequence[float],
    rows: Sequence[Hashable],
    x: Sequence[float],
    *,
    cols: Sequence[Hashable] | None = None,
    members: Sequence[Iterable[Hashable]] | None = None,
    row_groups: Sequence[Hashable] | Mapping[Hashable, Hashable] | None = None,
    null: float = 0.0,
    level: float = LEVEL,
    draws: int = 10000,
    seed: int = 0,
) -> Interval:
    """The mean over rows (requests) of per-row slopes of ``values`` on ``x`` (e.g. log2(1 + k)), with an
    interval for new rows, new stimuli and new groups.

    ``cols``: the stimulus set of each value (e.g. one of several independent shot orderings, each request
    measured under each); ``members``: the ids of the stimuli each value's prompt contains (the shots in
    a k-shot prompt; empty at k = 0). Without either, the stimuli are treated as fixed (the interval
    speaks for these stimuli only). ``row_groups``: the topic of each value's request. n = (rows[, cols]
    [, members][, groups]); variance components in ``extra``.

    Why not ``intervals.mean_ci`` on per-request slopes: the requests share the stimuli (a shot sits in
    many requests' prompts, or every request sees the same k-shot prompt), so the per-request slopes
    share the stimuli's effects and their spread does not show them (tests/test_crossed.py measures the
    false-positive rate that results: 0.25 to 0.34 in the designs simulated there).
    """
    if len(values) != len(rows):
        raise ValueError(f"one row label per value: {len(values)} values, {len(rows)} rows")
    design = SlopeDesign(rows, x, cols=cols, members=members, row_groups=row_groups)
    return design.interval(values, null=null, level=level, draws=draws, seed=seed)


# --------------------------------------------------------------------------------------------
# A difference between two sets of rows that share the stimuli (a difference in differences).
# --------------------------------------------------------------------------------------------


class DifferenceDesign(_Design):
    """Two sets of rows (harmful and benign requests) measured under the same stimuli (encodings): the mean
    over the first set's cells minus the mean over the second set's.

    Model (one value per (row, column) cell, replicates averaged first)::

        y = mu + set_s + col_j + (set x col)_sj + group_g(i) + row_i + (group x col)_gj + e

    with mu and the set effect fixed (the estimand is the set effect) and every other term random: the
    column main effect (how much a stimulus moves every row) cancels from the difference when both sets are
    measured under every column, the set x column interaction (how much MORE a stimulus moves the first
    set) is what makes the difference speak for new stimuli, and rows and groups have their own variance
    in each set (harmful requests may vary more than benign ones). Groups are taken within sets (a group
    label shared by both sets is two groups).
    """

    _method = (
        "difference of two sets over shared stimuli, crossed random effects: method-of-moments (Henderson III), fiducial (GPQ) interval"
    )

    def __init__(
        self,
        rows: Sequence[Hashable],
        cols: Sequence[Hashable],
        sets: Sequence[Hashable],
        first: Hashable,
        *,
        row_groups: Sequence[Hashable] | Mapping[Hashable, Hashable] | None = None,
    ) -> None:
        if not len(rows) == len(cols) == len(sets):
            raise ValueError(f"one row, column and set label per value: {len(rows)} rows, {len(cols)} columns, {len(sets)} sets")
        labels = list(dict.fromkeys(sets))
        if len(labels) != 2 or first not in labels:
            raise ValueError(f"two sets are needed, {first!r} one of them; got {labels[:5]}")
        set_of_row: dict[Hashable, Hashable] = {}
        for r, s in zip(rows, sets):
            if set_of_row.setdefault(r, s) != s:
                raise ValueError(f"row {r!r} is in both sets: rows must be nested in sets")
        cell_codes, cells = _codes(list(zip(rows, cols)))
        self._cell_of_value = cell_codes
        self._n_per_cell = np.bincount(cell_codes, minlength=len(cells)).astype(float)
        first_value = np.zeros(len(cells), dtype=np.int64)  # a value of each cell (its first)
        first_value[cell_codes[::-1]] = np.arange(len(cell_codes))[::-1]
        cell_rows = [rows[i] for i in first_value.tolist()]
        cell_cols = [cols[i] for i in first_value.tolist()]
        is_first = np.array([set_of_row[r] == first for r in cell_rows], dtype=float)
        r_codes, r_labels = _codes(cell_rows)
        c_codes, c_labels = _codes(cell_cols)
        self.n_cols = len(c_labels)
        if self.n_cols < MIN_STIMULI:
            raise ValueError(
                f"{self.n_cols} stimulus (column): the stimulus x set variance cannot be estimated, so no interval can speak "
                f"for new stimuli; at least {MIN_STIMULI} are needed (min_stimuli())"
            )
        self.n_rows = tuple(len({r for r in r_labels if (set_of_row[r] == first) == want}) for want in (True, False))
        if min(self.n_rows) < 2:
            raise ValueError(f"{min(self.n_rows)} row in a set: its row variance cannot be estimated; at least 2 rows per set are needed")
        n = len(cells)
        masks = {"first": is_first, "second": 1.0 - is_first}
        sc_codes, sc_labels = _codes(list(zip(is_first.tolist(), c_codes.tolist())))
        random: dict[str, np.ndarray] = {"cols": _onehot(c_codes, self.n_cols), "sets_cols": _onehot(sc_codes, len(sc_labels))}
        self.n_groups = 0
        g_codes = None
        if row_groups is not None:
            groups = _groups_of_rows(row_groups, rows)
            group_of_row = {r: (set_of_row[r], g) for r, g in zip(rows, groups)}
            g_codes, g_labels = _codes([group_of_row[r] for r in cell_rows])
            self.n_groups = len(g_labels)
            for part, mask in masks.items():
                if len({g for g, m in zip(g_codes.tolist(), mask.tolist()) if m}) < 2:
                    raise ValueError(f"1 group (topic) in the {part} set: its group variance cannot be estimated; at least 2 are needed")
            random.update({f"groups_{part}": _onehot(g_codes, self.n_groups) * mask[:, None] for part, mask in masks.items()})
        random.update({f"rows_{part}": _onehot(r_codes, len(r_labels)) * mask[:, None] for part, mask in masks.items()})
        if g_codes is not None:
            gc_codes, gc_labels = _codes(list(zip(g_codes.tolist(), c_codes.tolist())))
            random["groups_cols"] = _onehot(gc_codes, len(gc_labels))
        if n <= len(r_labels) + 2 * self.n_cols:
            raise ValueError(f"{n} cells for {len(r_labels)} rows and {self.n_cols} columns in two sets: no residual degrees of freedom")
        self.n_cells = n
        n_first = float(is_first.sum())
        c = np.where(is_first == 1.0, 1.0 / n_first, -1.0 / (n - n_first))
        fixed = np.stack([np.ones(n), is_first], axis=1)
        self._moments = _Moments(fixed, {k: v[:, v.any(axis=0)] for k, v in random.items()}, c)

    def _n(self) -> tuple[int, ...]:
        return (*self.n_rows, self.n_cols) + ((self.n_groups,) if self.n_groups else ())

    def _prepare(self, values: np.ndarray) -> np.ndarray:
        return _cell_means(values, self._cell_of_value, self._n_per_cell)


def crossed_difference_ci(
    values: Sequence[float],
    rows: Sequence[Hashable],
    cols: Sequence[Hashable],
    sets: Sequence[Hashable],
    first: Hashable,
    *,
    row_groups: Sequence[Hashable] | Mapping[Hashable, Hashable] | None = None,
    null: float = 0.0,
    level: float = LEVEL,
    draws: int = 10000,
    seed: int = 0,
) -> Interval:
    """The mean over the cells of the set ``first`` minus the mean over the other set's cells, both sets
    measured under the same stimuli (``cols``), with an interval for new rows, stimuli and groups.

    The use: a difference in differences, e.g. (harmful requests' TuCo drop under an encoding) minus (benign
    requests' drop), pooled over several encodings, where each value is one request's drop under one
    encoding. What a stimulus does to every request cancels; how much more it does to one set is a random
    stimulus x set effect, so the interval speaks for new stimuli (``DifferenceDesign``). ``row_groups``: the
    topic of each value's request (or a mapping request -> topic); topics within a set are nested.

    Returns ``Interval`` with n = (rows of ``first``, rows of the other set, columns[, groups]) and the
    variance components in ``extra`` (``var_cols``, ``var_sets_cols``, ``var_rows_first``, ...; one the design
    cannot separate from another is absent). Raises ValueError for fewer than 2 columns or 2 rows per set,
    a row in both sets, other than two sets, non-finite values or no residual df.
    """
    if len(values) != len(rows):
        raise ValueError(f"one row label per value: {len(values)} values, {len(rows)} rows")
    design = DifferenceDesign(rows, cols, sets, first, row_groups=row_groups)
    return design.interval(values, null=null, level=level, draws=draws, seed=seed)
