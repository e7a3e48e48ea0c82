"""A small multinomial logistic-regression head in numpy: trained by L-BFGS, stored as JSON.

Why numpy and full-batch L-BFGS: the head has a few thousand parameters and a few thousand training rows,
L-BFGS converges in a few hundred cheap full-batch steps with no learning rate, no random
initialisation and no shuffling — the same data gives the same weights on every machine, which
is what a committed artifact with a rebuild recipe needs. Features are standardised (mean and
scale stored with the weights) so one L2 strength fits all feature sets.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt

FloatArray = npt.NDArray[np.float64]
IntArray = npt.NDArray[np.int64]


@dataclass(frozen=True, slots=True)
class Head:
    """Standardise, then ``softmax(x @ weights + bias)`` over ``classes``."""

    classes: tuple[str, ...]
    mean: FloatArray
    scale: FloatArray
    weights: FloatArray  # (dim, n_classes)
    bias: FloatArray  # (n_classes,)
    meta: dict[str, Any] = field(default_factory=dict)

    @property
    def dim(self) -> int:
        """Input feature dimension."""
        return int(self.mean.shape[0])

    def proba(self, x: npt.NDArray[Any]) -> FloatArray:
        """Class probabilities, one row per input row."""
        z = ((np.asarray(x, dtype=np.float64) - self.mean) / self.scale) @ self.weights + self.bias
        z -= z.max(axis=1, keepdims=True)
        e = np.exp(z)
        out: FloatArray = e / e.sum(axis=1, keepdims=True)
        return out

    def to_json(self) -> dict[str, Any]:
        """A JSON-able dict (floats rounded to 7 significant digits to keep the file small)."""

        def r(a: FloatArray) -> Any:
            return np.asarray([float(f"{v:.7g}") for v in a.ravel()]).reshape(a.shape).tolist()

        return {
            "format": "orbench-logreg-1",
            "classes": list(self.classes),
            "mean": r(self.mean),
            "scale": r(self.scale),
            "weights": r(self.weights),
            "bias": r(self.bias),
            "meta": self.meta,
        }

    @classmethod
    def from_json(cls, obj: dict[str, Any]) -> Head:
        """Inverse of :meth:`to_json`; raises ValueError on a malformed file."""
        if obj.get("format") != "orbench-logreg-1":
            raise ValueError(f"unknown head format {obj.get('format')!r}")
        head = cls(
            classes=tuple(obj["classes"]),
            mean=np.asarray(obj["mean"], dtype=np.float64),
            scale=np.asarray(obj["scale"], dtype=np.float64),
            weights=np.asarray(obj["weights"], dtype=np.float64),
            bias=np.asarray(obj["bias"], dtype=np.float64),
            meta=dict(obj.get("meta", {})),
        )
        k, d = len(head.classes), head.dim
        if head.scale.shape != (d,) or head.weights.shape != (d, k) or head.bias.shape != (k,):
            raise ValueError("head arrays have inconsistent shapes")
        return head

    def save(self, path: Path) -> None:
        """Write the head as JSON."""
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(json.dumps(self.to_json(), indent=None, separators=(",", ":")) + "\n")

    @classmethod
    def load(cls, path: Path) -> Head:
        """Read a head written by :meth:`save`."""
        return cls.from_json(json.loads(path.read_text()))


def fit(
    x: npt.NDArray[Any],
    y: Sequence[int] | IntArray,
    classes: Sequence[str],
    *,
    l2: float = 1.0,
    sample_weight: Sequence[float] | FloatArray | None = None,
    max_iter: int = 2000,
    tol: float = 1e-6,
    meta: dict[str, Any] | None = None,
) -> Head:
    """Minimise weighted mean cross-entropy + ``l2/(2n)``·|W|² with L-BFGS.

    ``y`` holds class indices into ``classes``. The bias is (almost) not penalised. Starting
    from zero and using no randomness, the same data gives the same head.
    """
    xa = np.asarray(x, dtype=np.float64)
    n, d = xa.shape
    k = len(classes)
    ya = np.asarray(y, dtype=np.int64)
    w_s = np.ones(n) if sample_weight is None else np.asarray(sample_weight, dtype=np.float64)
    w_s = w_s * (n / w_s.sum())
    mean = xa.mean(axis=0)
    scale = xa.std(axis=0)
    scale[scale < 1e-12] = 1.0
    z = np.hstack([(xa - mean) / scale, np.ones((n, 1))])
    onehot = np.zeros((n, k))
    onehot[np.arange(n), ya] = 1.0
    penalty = np.full((d + 1, 1), l2)
    penalty[-1] = 1e-4  # a whisker, so the softmax's free shift stays determined

    def loss_grad(flat: FloatArray) -> tuple[float, FloatArray]:
        th = flat.reshape(d + 1, k)
        logits = z @ th
        logits -= logits.max(axis=1, keepdims=True)
        logp = logits - np.log(np.exp(logits).sum(axis=1, keepdims=True))
        loss = -(w_s * (onehot * logp).sum(1)).sum() / n + 0.5 * (penalty * th**2).sum() / n
        grad = (z.T @ ((np.exp(logp) - onehot) * w_s[:, None]) + penalty * th) / n
        return float(loss), grad.ravel()

    theta = lbfgs(loss_grad, np.zeros((d + 1) * k), max_iter=max_iter, tol=tol).reshape(d + 1, k)
    return Head(
        classes=tuple(classes),
        mean=mean,
        scale=scale,
        weights=theta[:-1],
        bias=theta[-1],
        meta=dict(meta or {}),
    )


def lbfgs(
    loss_grad: Callable[[FloatArray], tuple[float, FloatArray]],
    x0: FloatArray,
    *,
    max_iter: int = 2000,
    tol: float = 1e-6,
    memory: int = 10,
) -> FloatArray:
    """Limited-memory BFGS with a backtracking (Armijo) line search; stops when the largest
    gradient entry is below ``tol``. Deterministic: no random restarts, no shuffling."""
    x = x0.copy()
    f, g = loss_grad(x)
    hist: list[tuple[FloatArray, FloatArray, float]] = []
    for _ in range(max_iter):
        if float(np.max(np.abs(g))) < tol:
            break
        q = g.copy()
        alphas: list[float] = []
        for s, yv, rho in reversed(hist):
            a = rho * float(s @ q)
            q -= a * yv
            alphas.append(a)
        if hist:
            s, yv, _ = hist[-1]
            q *= float(s @ yv) / float(yv @ yv)
        else:
            q /= max(1.0, float(np.linalg.norm(g)))
        for (s, yv, rho), a in zip(hist, reversed(alphas), strict=True):
            b = rho * float(yv @ q)
            q += s * (a - b)
        direction = -q
        slope = float(g @ direction)
        if slope >= 0:  # not a descent direction: restart from steepest descent
            hist.clear()
            direction, slope = -g, -float(g @ g)
        t = 1.0
        while True:
            x_new = x + t * direction
            f_new, g_new = loss_grad(x_new)
            if f_new <= f + 1e-4 * t * slope or t < 1e-12:
                break
            t *= 0.5
        s, yv = x_new - x, g_new - g
        sy = float(s @ yv)
        if sy > 1e-12:
            hist.append((s, yv, 1.0 / sy))
            del hist[:-memory]
        x, f, g = x_new, f_new, g_new
    return x
