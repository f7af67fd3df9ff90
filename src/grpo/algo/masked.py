"""Sums, means and whitening over the entries a boolean mask keeps.

Conventions shared by every function here:
- ``mask`` is boolean and True where an entry counts; it must broadcast against ``values``.
- Masked-out entries are replaced by 0 with ``torch.where`` before any arithmetic, so a NaN or inf
  sitting in a padded position never reaches the result (``values * mask`` would give NaN there).
- A mean over zero kept entries is 0, not NaN.
"""

from __future__ import annotations

import torch
from torch import Tensor


def masked_sum(values: Tensor, mask: Tensor, dim: int | None = None) -> Tensor:
    """Sum of the kept entries: sum_j [mask_j] * values_j.

    Args:
        values: any shape, float.
        mask: bool, broadcastable to ``values``.
        dim: dimension to reduce; ``None`` reduces everything to a 0-d tensor.

    Returns:
        ``values`` reduced over ``dim`` (0-d when ``dim`` is None).
    """
    kept = torch.where(mask, values, torch.zeros((), dtype=values.dtype, device=values.device))
    return kept.sum() if dim is None else kept.sum(dim=dim)


def masked_count(mask: Tensor, dim: int | None = None) -> Tensor:
    """Number of kept entries, an integer tensor (0-d when ``dim`` is None)."""
    return mask.sum() if dim is None else mask.sum(dim=dim)


def masked_mean(values: Tensor, mask: Tensor, dim: int | None = None) -> Tensor:
    """Mean of the kept entries: sum_j [mask_j] values_j / max(1, sum_j [mask_j]).

    A slice with no kept entries gives 0 (its sum is 0 and the count is clamped to 1).

    Args:
        values: any shape, float.
        mask: bool, same shape as ``values`` (or broadcastable to it with the same kept count).
        dim: dimension to reduce; ``None`` reduces everything to a 0-d tensor.

    Returns:
        ``values`` averaged over ``dim`` (0-d when ``dim`` is None), dtype of ``values``.
    """
    mask = mask.expand_as(values)
    counts = masked_count(mask, dim).clamp(min=1)
    return masked_sum(values, mask, dim) / counts


def masked_var(values: Tensor, mask: Tensor, unbiased: bool = True) -> Tensor:
    """Variance of all kept entries (0-d): sum (v - mean)^2 / (n - 1) if unbiased else / n.

    The denominator is clamped to at least 1, so one kept entry gives 0 and none gives 0.
    """
    mask = mask.expand_as(values)
    mean = masked_mean(values, mask)
    count = masked_count(mask)
    denom = (count - 1 if unbiased else count).clamp(min=1)
    return masked_sum((values - mean) ** 2, mask) / denom


def masked_whiten(values: Tensor, mask: Tensor, shift_mean: bool = True, eps: float = 1e-8) -> Tensor:
    """Normalise the kept entries to zero mean and unit variance over all of them.

    Equation: w = (v - mean) / sqrt(var + eps), mean and var over every kept entry of the tensor;
    with ``shift_mean=False`` the mean is added back, w = (v - mean) / sqrt(var + eps) + mean, which
    rescales without moving the mean (the TRL / torchtune convention).

    Conventions: var is the unbiased (Bessel-corrected) masked variance, as in TRL, torchtune and verl;
    ``eps`` goes inside the square root; masked-out entries of the result are 0.

    Args:
        values: any shape, float.
        mask: bool, same shape as ``values``.
        shift_mean: subtract the mean (True) or keep it (False).
        eps: added to the variance before the square root.

    Returns:
        Tensor with the shape of ``values``.
    """
    mean = masked_mean(values, mask)
    var = masked_var(values, mask, unbiased=True)
    whitened = (values - mean) * torch.rsqrt(var + eps)
    if not shift_mean:
        whitened = whitened + mean
    return torch.where(mask, whitened, torch.zeros((), dtype=values.dtype, device=values.device))


def masked_moments(values: Tensor, mask: Tensor) -> Tensor:
    """(count, sum, sum of squares) of the kept entries as a float64 (3,) tensor.

    Moments add up over batches (and ranks), so whitening over a batch split across ranks can use
    the sums of every part: see `whiten_with_moments`.
    """
    kept = values.double()[mask]
    return torch.stack([torch.tensor(float(kept.numel()), dtype=torch.float64), kept.sum(), (kept**2).sum()])


def whiten_with_moments(values: Tensor, mask: Tensor, moments: Tensor, eps: float = 1e-8) -> Tensor:
    """`masked_whiten` with the mean and unbiased variance taken from `moments` (count, sum, sum of squares).

    Equation: mean = s1 / n, var = (s2 - n * mean^2) / max(n - 1, 1), w = (v - mean) / sqrt(var + eps);
    masked-out entries of the result are 0.
    """
    count, total, squares = moments.unbind()
    mean = total / count.clamp(min=1)
    var = ((squares - count * mean**2) / (count - 1).clamp(min=1)).clamp(min=0)
    whitened = (values.double() - mean) * torch.rsqrt(var + eps)
    return torch.where(mask, whitened.to(values.dtype), torch.zeros((), dtype=values.dtype, device=values.device))
