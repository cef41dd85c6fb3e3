"""Selection-bias statistics of a parameter sweep: PSR, DSR and PBO (pure functions of arrays).

* **Probabilistic Sharpe Ratio** (Bailey and López de Prado, "The Sharpe Ratio Efficient
  Frontier", Journal of Risk 15(2), 2012, eq. 11): the probability that the true Sharpe ratio
  exceeds a benchmark ``SR*``, given the observed per-period ``SR``, ``T`` observations, the
  skewness ``g3`` and the (non-excess) kurtosis ``g4`` of the returns::

      PSR(SR*) = Phi( (SR - SR*) sqrt(T - 1) / sqrt(1 - g3 SR + (g4 - 1) / 4 SR^2) )

* **Deflated Sharpe Ratio** (Bailey and López de Prado, "The Deflated Sharpe Ratio: Correcting
  for Selection Bias, Backtest Overfitting and Non-Normality", Journal of Portfolio Management
  40(5), 2014, eqs. 1-2): ``PSR(SR0)`` where ``SR0`` is the expected maximum of ``N``
  independent trials' Sharpe ratios when none has skill::

      SR0 = sqrt(V[SR_n]) ((1 - gamma) Phi^-1(1 - 1/N) + gamma Phi^-1(1 - 1/(N e)))

  (``gamma`` the Euler-Mascheroni constant, ``V[SR_n]`` the variance of the trials' Sharpe
  ratios). Correlated trials count as fewer independent ones; the same paper approximates the
  number of independent trials from the average correlation ``rho`` of ``M`` trials as
  ``N = rho + (1 - rho) M``.
* **Probability of Backtest Overfitting** by combinatorially symmetric cross-validation
  (Bailey, Borwein, López de Prado and Zhu, "The Probability of Backtest Overfitting", Journal
  of Computational Finance 20(4), 2017, section 2): the ``T x N`` matrix of the trials' returns
  is cut into ``S`` row blocks; for each of the ``C(S, S/2)`` ways to pick half the blocks as
  in-sample, the trial with the best in-sample Sharpe ratio is found and its out-of-sample rank
  ``w`` among the ``N`` trials taken as the relative rank ``w / (N + 1)``, with logit
  ``lambda = ln(w / (1 - w))``. PBO is the share of splits with ``lambda <= 0`` (the in-sample
  best is at or below the out-of-sample median). Trials with no skill give about 0.5.

Everything here works from power sums per block, so a sweep need not keep every run's return
series: :func:`block_sums` reduces one run's returns to ``2 S + 2`` numbers.
"""

from __future__ import annotations

import itertools
import math
from dataclasses import dataclass

import numpy as np
from scipy.stats import norm

EULER_GAMMA = 0.5772156649015329
DEFAULT_BLOCKS = 16  # S of the paper's examples: C(16, 8) = 12,870 splits
MAX_PBO_WORK = 2e9  # trials x splits x blocks above which fewer blocks are used


def block_bounds(n_obs: int, n_blocks: int) -> np.ndarray:
    """Start offsets of ``n_blocks`` contiguous blocks of ``n_obs`` rows (sizes differ by at
    most one, as ``numpy.array_split``), plus ``n_obs`` at the end."""
    if n_blocks < 2 or n_blocks % 2:
        raise ValueError(f"CSCV needs an even number of blocks >= 2, got {n_blocks}")
    if n_obs < n_blocks:
        raise ValueError(f"{n_obs} observations cannot make {n_blocks} blocks")
    q, r = divmod(n_obs, n_blocks)
    sizes = np.full(n_blocks, q)
    sizes[:r] += 1
    return np.concatenate([[0], np.cumsum(sizes)])


def block_sums(returns: np.ndarray, n_blocks: int = DEFAULT_BLOCKS) -> np.ndarray:
    """Per-run sums of one or many return series (``T`` or ``T x N``): rows are the ``S``
    block sums of ``r``, the ``S`` block sums of ``r^2``, then the whole-series sums of ``r^3``
    and ``r^4`` (shape ``(2 S + 2,)`` or ``(2 S + 2, N)``)."""
    r = np.asarray(returns, dtype=np.float64)
    starts = block_bounds(r.shape[0], n_blocks)[:-1]
    r2 = r * r
    return np.concatenate(
        [
            np.add.reduceat(r, starts, axis=0),
            np.add.reduceat(r2, starts, axis=0),
            (r2 * r).sum(axis=0, keepdims=True),
            (r2 * r2).sum(axis=0, keepdims=True),
        ]
    )


@dataclass(frozen=True)
class SeriesMoments:
    """Per-period Sharpe ratio (sample standard deviation), skewness and non-excess kurtosis
    (population moments, as in the papers) of each run."""

    n_obs: int
    sharpe: np.ndarray
    skew: np.ndarray
    kurtosis: np.ndarray


def series_totals(sums: np.ndarray, n_blocks: int) -> np.ndarray:
    """The whole-series sums of ``r``, ``r^2``, ``r^3`` and ``r^4`` (rows) of runs from their
    :func:`block_sums` (columns are runs)."""
    s = np.atleast_2d(np.asarray(sums, dtype=np.float64).T).T
    return np.stack(
        [
            s[:n_blocks].sum(axis=0),
            s[n_blocks : 2 * n_blocks].sum(axis=0),
            s[2 * n_blocks],
            s[2 * n_blocks + 1],
        ]
    )


def moments_from_totals(totals: np.ndarray, n_obs: int) -> SeriesMoments:
    """:class:`SeriesMoments` of runs from their :func:`series_totals` (columns are runs)."""
    s1, s2, s3, s4 = np.atleast_2d(np.asarray(totals, dtype=np.float64).T).T
    n = float(n_obs)
    mu = s1 / n
    m2 = s2 / n - mu**2
    m3 = s3 / n - 3 * mu * s2 / n + 2 * mu**3
    m4 = s4 / n - 4 * mu * s3 / n + 6 * mu**2 * s2 / n - 3 * mu**4
    with np.errstate(divide="ignore", invalid="ignore"):
        m2 = np.where(m2 > 1e-300, m2, 0.0)
        sd = np.sqrt(m2 * n / (n - 1))
        sharpe = np.where(sd > 0, mu / sd, np.nan)
        skew = np.where(m2 > 0, m3 / m2**1.5, np.nan)
        kurt = np.where(m2 > 0, m4 / m2**2, np.nan)
    return SeriesMoments(n_obs, sharpe, skew, kurt)


def moments_from_sums(sums: np.ndarray, n_obs: int, n_blocks: int) -> SeriesMoments:
    """:class:`SeriesMoments` of runs from their :func:`block_sums` (columns are runs)."""
    return moments_from_totals(series_totals(sums, n_blocks), n_obs)


def probabilistic_sharpe(
    sharpe, benchmark, n_obs: int, skew=0.0, kurtosis=3.0
) -> np.ndarray | float:
    """PSR: probability that the true per-period Sharpe ratio exceeds ``benchmark``."""
    sr = np.asarray(sharpe, dtype=np.float64)
    var = 1.0 - np.asarray(skew) * sr + (np.asarray(kurtosis) - 1.0) / 4.0 * sr**2
    with np.errstate(divide="ignore", invalid="ignore"):
        z = (sr - benchmark) * math.sqrt(n_obs - 1) / np.sqrt(var)
    out = norm.cdf(z)
    return float(out) if out.ndim == 0 else out


def expected_max_sharpe(n_trials: float, sr_variance: float, sr_mean: float = 0.0) -> float:
    """``SR0``: the expected largest Sharpe ratio among ``n_trials`` independent trials without
    skill whose Sharpe ratios vary with ``sr_variance`` (0 for a single trial)."""
    if n_trials <= 1:
        return float(sr_mean)
    z1 = norm.ppf(1.0 - 1.0 / n_trials)
    z2 = norm.ppf(1.0 - 1.0 / (n_trials * math.e))
    return float(sr_mean + math.sqrt(sr_variance) * ((1 - EULER_GAMMA) * z1 + EULER_GAMMA * z2))


def effective_trials(n_trials: int, mean_correlation: float) -> float:
    """Independent trials equivalent to ``n_trials`` with average pairwise correlation
    ``mean_correlation`` (clipped to [0, 1]): ``rho + (1 - rho) n``."""
    rho = min(max(float(mean_correlation), 0.0), 1.0)
    return rho + (1.0 - rho) * n_trials


def deflated_sharpe(
    sharpe: float,
    n_obs: int,
    *,
    n_trials: float,
    sr_variance: float,
    skew: float = 0.0,
    kurtosis: float = 3.0,
) -> float:
    """DSR: the PSR of ``sharpe`` against the expected maximum of ``n_trials`` trials."""
    sr0 = expected_max_sharpe(n_trials, sr_variance)
    return float(probabilistic_sharpe(sharpe, sr0, n_obs, skew, kurtosis))


def unit_deviations(returns: np.ndarray) -> np.ndarray:
    """Each column demeaned and scaled to unit length (zero for a constant column): the dot
    product of two such columns is the Pearson correlation of the series."""
    r = np.asarray(returns, dtype=np.float64)
    d = r - r.mean(axis=0)
    norms = np.sqrt((d * d).sum(axis=0))
    with np.errstate(divide="ignore", invalid="ignore"):
        return np.where(norms > 0, d / norms, 0.0)


def mean_pairwise_correlation(unit_sum: np.ndarray, n_series: int) -> float:
    """Average correlation over all pairs of ``n_series`` series from the sum of their
    :func:`unit_deviations` (``|sum u|^2 = n + sum over pairs i != j of rho_ij``)."""
    if n_series < 2:
        return float("nan")
    u = np.asarray(unit_sum, dtype=np.float64)
    return float((u @ u - n_series) / (n_series * (n_series - 1)))


@dataclass(frozen=True)
class PBOResult:
    pbo: float  # share of splits whose in-sample best is at or below the OOS median
    logits: np.ndarray  # lambda of each split
    n_blocks: int
    n_splits: int
    n_trials: int


def _choose_blocks(n_trials: int, n_blocks: int) -> int:
    s = n_blocks
    while s > 2 and n_trials * math.comb(s, s // 2) * s > MAX_PBO_WORK:
        s -= 2
    return s


def pbo_blocks(n_trials: int, n_blocks: int = DEFAULT_BLOCKS) -> int:
    """The number of blocks :func:`pbo_from_sums` uses for ``n_trials`` trials given
    ``n_blocks``: ``n_blocks`` halved while ``n_trials x C(S, S/2) x S`` is above the work
    limit (a store of that many runs need keep no more blocks than this)."""
    target = _choose_blocks(n_trials, n_blocks)
    while n_blocks > target and n_blocks % 2 == 0 and (n_blocks // 2) % 2 == 0:
        n_blocks //= 2
    return n_blocks


def _cscv_masks(n_blocks: int) -> tuple[np.ndarray, np.ndarray]:
    """In- and out-of-sample 0/1 block masks (columns) of every CSCV split: a split and its
    complement swap in- and out-of-sample, so the halves holding block 0 are enumerated once
    and both directions set side by side (the first half of the columns: in-sample = the
    split)."""
    half = n_blocks // 2
    splits = [c for c in itertools.combinations(range(n_blocks), half) if 0 in c]
    sel = np.zeros((n_blocks, len(splits)))
    for j, c in enumerate(splits):
        sel[list(c), j] = 1.0
    return np.hstack([sel, 1.0 - sel]), np.hstack([1.0 - sel, sel])


TRIALS_PER_CHUNK = 8192  # trials per pass of pbo_from_sums (memory: chunk x splits floats)


def pbo_from_sums(
    sums: np.ndarray, n_obs: int, n_blocks: int, *, max_blocks: int | None = None
) -> PBOResult:
    """CSCV PBO of the trials whose :func:`block_sums` are the columns of ``sums`` (Sharpe ratio
    as the performance measure). ``max_blocks`` merges adjacent blocks (pairs, fours...) when
    ``n_trials x C(S, S/2)`` would be too much work: S is lowered by halving while it stays
    even and above the work limit."""
    s = np.asarray(sums, dtype=np.float64)[: 2 * n_blocks]

    def chunks():
        for lo in range(0, s.shape[1], TRIALS_PER_CHUNK):
            yield s[:, lo : lo + TRIALS_PER_CHUNK]

    return pbo_from_chunks(chunks, s.shape[1], n_obs, n_blocks, max_blocks=max_blocks)


def pbo_from_chunks(
    chunks, n_trials: int, n_obs: int, n_blocks: int, *, max_blocks: int | None = None
) -> PBOResult:
    """:func:`pbo_from_sums` over trials given in chunks: ``chunks()`` returns an iterator of
    arrays whose columns are trials in sweep order and whose first ``2 S`` rows are their
    block sums of ``r`` then of ``r^2``. It is called twice (the in-sample best of every
    split, then that trial's out-of-sample rank among all), so memory is one chunk's, whatever
    the number of trials; the chunks must be the same both times."""
    if n_trials < 2:
        raise ValueError("PBO needs at least two trials")
    counts = np.diff(block_bounds(n_obs, n_blocks)).astype(np.float64)
    target = pbo_blocks(n_trials, max_blocks or n_blocks)
    merges = 0
    while n_blocks > target:
        counts = counts[0::2] + counts[1::2]
        n_blocks //= 2
        merges += 1
    is_masks, oos_masks = _cscv_masks(n_blocks)
    n_cols = is_masks.shape[1]
    col_chunks = [slice(lo, lo + 512) for lo in range(0, n_cols, 512)]

    def halves(chunk):
        c = np.asarray(chunk, dtype=np.float64)
        s1, s2 = c[: len(c) // 2], c[len(c) // 2 :]
        for _ in range(merges):
            s1 = s1[0::2] + s1[1::2]
            s2 = s2[0::2] + s2[1::2]
        return s1, s2

    def sharpe(s1, s2, mask):
        n = counts @ mask
        mu = (s1.T @ mask) / n  # trials x splits
        var = (s2.T @ mask) / n - mu**2
        with np.errstate(divide="ignore", invalid="ignore"):
            return np.where(var > 1e-300, mu / np.sqrt(np.maximum(var, 0.0)), 0.0)

    best = np.full(n_cols, -np.inf)  # the in-sample best Sharpe of each split so far...
    chosen = np.zeros(n_cols)  # ...and that trial's out-of-sample Sharpe
    for chunk in chunks():
        s1, s2 = halves(np.asarray(chunk)[: 2 * len(counts) * 2**merges])
        for cols in col_chunks:
            ins = sharpe(s1, s2, is_masks[:, cols])
            oos = sharpe(s1, s2, oos_masks[:, cols])
            j = np.argmax(ins, axis=0)  # first trial wins ties (sweep order)
            k = np.arange(ins.shape[1])
            better = ins[j, k] > best[cols]
            best[cols] = np.where(better, ins[j, k], best[cols])
            chosen[cols] = np.where(better, oos[j, k], chosen[cols])
    below = np.zeros(n_cols)
    ties = np.zeros(n_cols)
    for chunk in chunks():
        s1, s2 = halves(np.asarray(chunk)[: 2 * len(counts) * 2**merges])
        for cols in col_chunks:
            oos = sharpe(s1, s2, oos_masks[:, cols])
            below[cols] += (oos < chosen[cols]).sum(axis=0)
            ties[cols] += (oos == chosen[cols]).sum(axis=0)
    rank = below + (ties + 1) / 2.0  # average rank, 1 = worst
    w = rank / (n_trials + 1)
    lam = np.log(w / (1 - w))
    return PBOResult(float(np.mean(lam <= 0)), lam, n_blocks, len(lam), n_trials)


def pbo(returns: np.ndarray, n_blocks: int = DEFAULT_BLOCKS) -> PBOResult:
    """CSCV PBO of a ``T x N`` matrix of the trials' returns."""
    r = np.asarray(returns, dtype=np.float64)
    return pbo_from_sums(block_sums(r, n_blocks), r.shape[0], n_blocks)
