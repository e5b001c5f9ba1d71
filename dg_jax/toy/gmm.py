"""Isotropic Gaussian mixtures whose diffused densities, scores and denoisers are exact.

Diffusing N(mu_k, s_k^2 I) with the EDM variable x = x_0 + sigma eps gives
N(mu_k, (s_k^2 + sigma^2) I), so the mixture stays a mixture with the same weights and
    log p^sigma(x) = logsumexp_k [log w_k + log N(x; mu_k, (s_k^2 + sigma^2) I)].
The score is jax.grad of that, and the denoiser is x + sigma^2 * score.
"""
from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
from flax import struct


@struct.dataclass
class GaussianMixture:
    means: jnp.ndarray    # (K, D)
    stds: jnp.ndarray     # (K,)
    weights: jnp.ndarray  # (K,), sums to 1

    @classmethod
    def create(cls, means, stds, weights):
        means = np.asarray(means, np.float32)
        stds = np.broadcast_to(np.asarray(stds, np.float32), means.shape[:1])
        weights = np.asarray(weights, np.float64)
        if np.any(weights < 0) or not np.isclose(weights.sum(), 1.0):
            raise ValueError(f"mixture weights must be non-negative and sum to 1, got {weights}")
        return cls(jnp.asarray(means), jnp.asarray(stds), jnp.asarray(weights, jnp.float32))

    @property
    def dim(self) -> int:
        return self.means.shape[1]

    def component_log_probs(self, x, sigma=0.0):
        """(B, K) log w_k + log N(x; mu_k, (s_k^2 + sigma^2) I); sigma scalar or (B,)."""
        sigma = jnp.asarray(sigma, x.dtype)
        sigma = sigma[:, None] if sigma.ndim else sigma
        var = self.stds[None, :] ** 2 + sigma**2                       # (B or 1, K)
        sq = jnp.sum((x[:, None, :] - self.means[None]) ** 2, axis=-1)  # (B, K)
        d = self.dim
        return (jnp.log(self.weights)[None] - 0.5 * sq / var
                - 0.5 * d * jnp.log(2.0 * jnp.pi * var))

    def log_prob(self, x, sigma=0.0):
        return jax.nn.logsumexp(self.component_log_probs(x, sigma), axis=-1)

    def score(self, x, sigma=0.0):
        return jax.grad(lambda y: jnp.sum(self.log_prob(y, sigma)))(x)

    def denoise(self, x, sigma, labels=None):
        """Exact D(x; sigma) = E[x_0 | x] = x + sigma^2 grad log p^sigma(x)."""
        sigma = jnp.asarray(sigma, x.dtype)
        s2 = (sigma**2)[:, None] if sigma.ndim else sigma**2
        return x + s2 * self.score(x, sigma)

    def sample(self, key, n: int):
        k_comp, k_noise = jax.random.split(key)
        comp = jax.random.categorical(k_comp, jnp.log(self.weights), shape=(n,))
        noise = jax.random.normal(k_noise, (n, self.dim))
        return self.means[comp] + self.stds[comp][:, None] * noise

    def assign(self, x):
        """Index of the most responsible component for each point (posterior under p at sigma 0)."""
        return jnp.argmax(self.component_log_probs(x), axis=-1)


def log_ratio(p: GaussianMixture, q: GaussianMixture):
    """(x, sigma) -> log p^sigma(x) - log q^sigma(x), the exact DG target log(d*/(1-d*))."""
    return lambda x, sigma: p.log_prob(x, sigma) - q.log_prob(x, sigma)
