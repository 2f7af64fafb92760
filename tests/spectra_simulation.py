"""An independent numpy simulation of Jacobian spectra at initialization (no gradatlas code):
random weights, a forward pass from Gaussian inputs, the product D_l W_l ... D_1 W_1 and its
singular values by numpy's SVD."""

from __future__ import annotations

import numpy as np

ACTIVATIONS = {
    "linear": (lambda z: z, lambda z: np.ones_like(z)),
    "tanh": (np.tanh, lambda z: 1.0 / np.cosh(z) ** 2),
    "relu": (lambda z: np.maximum(z, 0.0), lambda z: (z > 0).astype(float)),
}


def random_weight(rng, rows, cols, ensemble, gain):
    """A (rows, cols) weight: i.i.d. N(0, gain^2 / cols), or gain times a matrix with orthonormal
    rows or columns (Haar: QR of a Gaussian matrix with the signs of R's diagonal fixed)."""
    if ensemble == "iid":
        return rng.standard_normal((rows, cols)) * gain / np.sqrt(cols)
    big, small = max(rows, cols), min(rows, cols)
    q, r = np.linalg.qr(rng.standard_normal((big, small)))
    q = q * np.sign(np.diag(r))
    return gain * (q if rows >= cols else q.T)


def simulate(activation, ensemble, gain, width, depths, inputs=4, input_dim=40, nets=8, seed=0):
    """Per net: E[h_0^2] over inputs and units, and per depth of ``depths`` Var/E^2 of the
    squared singular values of dh_l/dh_0, per input, averaged over ``inputs`` Gaussian inputs.

    Returns:
        (second_moments, normalized) with shapes (nets,) and (nets, len(depths)).
    """
    phi, dphi = ACTIVATIONS[activation]
    rng = np.random.default_rng(seed)
    seconds, normalized = [], []
    for _ in range(nets):
        x = rng.standard_normal((input_dim, inputs))
        h = phi(random_weight(rng, width, input_dim, ensemble, gain) @ x)  # h_0, one column per input
        seconds.append(np.mean(h**2))
        jac = np.broadcast_to(np.eye(width), (inputs, width, width))
        row = []
        for depth in range(1, max(depths) + 1):
            w = random_weight(rng, width, width, ensemble, gain)
            z = w @ h
            h = phi(z)
            jac = dphi(z).T[:, :, None] * (w @ jac)
            if depth in depths:
                sv2 = np.linalg.svd(jac, compute_uv=False) ** 2  # (inputs, width)
                row.append(np.mean(sv2.var(axis=1) / sv2.mean(axis=1) ** 2))
        normalized.append(row)
    return np.array(seconds), np.array(normalized)
