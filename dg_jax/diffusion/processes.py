"""Continuous-time noise processes and the maps between them.

Every process perturbs data as x_t = mean(t) * x_0 + std(t) * eps. Its "EDM sigma" is the
noise-to-signal ratio sigma(t) = std(t) / mean(t): dividing x_t by mean(t) gives the EDM
(variance-exploding) variable x_0 + sigma * eps that EDM's samplers integrate.

- `VP`: linear beta(t) = beta_min + t (beta_max - beta_min) on t in [0, 1] (Song et al. 2021;
  DG's discriminators are trained on this process with beta 0.1 -> 20).
- `VPCosine`: improved DDPM's cosine schedule in continuous time,
  alpha_bar(t) = cos^2((t + s) / (1 + s) * pi / 2) / cos^2(s / (1 + s) * pi / 2).
- `VE`: sigma(t) = sigma_min (sigma_max / sigma_min)^t, mean 1.
- `EDM`: time is sigma itself, mean 1, std sigma.

`sigma_to_tau` is DG's map from an EDM sigma to the VP time with the same noise-to-signal ratio
(DG's `compute_tau`), which is how a VP-trained discriminator is evaluated inside an EDM sampler.
"""
from __future__ import annotations

import math

import jax
import jax.numpy as jnp
from flax import struct

PROCESS_NAMES = ("vp", "vp_cosine", "ve", "edm")


@struct.dataclass
class VP:
    """Variance-preserving SDE with linear beta(t); t in [0, 1]."""

    beta_min: float = struct.field(pytree_node=False, default=0.1)
    beta_max: float = struct.field(pytree_node=False, default=20.0)
    t_max: float = struct.field(pytree_node=False, default=1.0)

    def integral_beta(self, t):
        """int_0^t beta(s) ds = 0.5 t^2 (beta_max - beta_min) + t beta_min."""
        return 0.5 * t**2 * (self.beta_max - self.beta_min) + t * self.beta_min

    def beta(self, t):
        return self.beta_min + t * (self.beta_max - self.beta_min)

    def mean(self, t):
        return jnp.exp(-0.5 * self.integral_beta(t))

    def std(self, t):
        return jnp.sqrt(-jnp.expm1(-self.integral_beta(t)))

    def sigma(self, t):
        """EDM sigma = std / mean = sqrt(exp(int beta) - 1)."""
        return jnp.sqrt(jnp.expm1(self.integral_beta(t)))

    def t_from_sigma(self, sigma):
        """Inverse of `sigma`: solves int_0^t beta = log(1 + sigma^2) for t (DG's compute_tau)."""
        return self.t_from_integral_beta(jnp.log1p(sigma**2))

    def t_from_integral_beta(self, integral):
        """Inverse of `integral_beta`: the t >= 0 with int_0^t beta = integral."""
        d = self.beta_max - self.beta_min
        return (-self.beta_min + jnp.sqrt(self.beta_min**2 + 2.0 * d * integral)) / d

    def g2(self, t):
        """Squared diffusion coefficient g(t)^2 = beta(t)."""
        return self.beta(t)


@struct.dataclass
class VPCosine:
    """Continuous cosine schedule of improved DDPM; t in [0, 1], alpha_bar clipped at t_max."""

    s: float = struct.field(pytree_node=False, default=0.008)
    t_max: float = struct.field(pytree_node=False, default=0.9946)

    def _f(self, t):
        return jnp.cos((t + self.s) / (1.0 + self.s) * math.pi / 2.0) ** 2

    def alpha_bar(self, t):
        return self._f(t) / self._f(jnp.zeros_like(t))

    def mean(self, t):
        return jnp.sqrt(self.alpha_bar(t))

    def std(self, t):
        return jnp.sqrt(1.0 - self.alpha_bar(t))

    def sigma(self, t):
        return self.std(t) / self.mean(t)

    def t_from_sigma(self, sigma):
        alpha_bar = 1.0 / (1.0 + sigma**2)
        f0 = math.cos(self.s / (1.0 + self.s) * math.pi / 2.0) ** 2
        return jnp.arccos(jnp.sqrt(alpha_bar * f0)) * 2.0 / math.pi * (1.0 + self.s) - self.s

    def g2(self, t):
        """beta(t) = -d log alpha_bar / dt."""
        u = (t + self.s) / (1.0 + self.s) * math.pi / 2.0
        return 2.0 * jnp.tan(u) * math.pi / (2.0 * (1.0 + self.s))


class _UnitMean:
    """Variance-exploding processes: mean(t) = 1, so std(t) = sigma(t)."""

    def mean(self, t):
        return jnp.ones_like(t)

    def std(self, t):
        return self.sigma(t)


@struct.dataclass
class VE(_UnitMean):
    """Variance-exploding SDE: sigma(t) = sigma_min (sigma_max / sigma_min)^t, t in [0, 1]."""

    sigma_min: float = struct.field(pytree_node=False, default=0.01)
    sigma_max: float = struct.field(pytree_node=False, default=50.0)
    t_max: float = struct.field(pytree_node=False, default=1.0)

    def sigma(self, t):
        return self.sigma_min * (self.sigma_max / self.sigma_min) ** t

    def t_from_sigma(self, sigma):
        return jnp.log(sigma / self.sigma_min) / math.log(self.sigma_max / self.sigma_min)

    def g2(self, t):
        """d sigma^2 / dt."""
        return 2.0 * self.sigma(t) ** 2 * math.log(self.sigma_max / self.sigma_min)


@struct.dataclass
class EDM(_UnitMean):
    """EDM's parameterisation: time is sigma, x_sigma = x_0 + sigma eps."""

    sigma_min: float = struct.field(pytree_node=False, default=0.002)
    sigma_max: float = struct.field(pytree_node=False, default=80.0)

    @property
    def t_max(self) -> float:
        """Time is sigma, so the last time is sigma_max."""
        return self.sigma_max

    def sigma(self, t):
        return t

    def t_from_sigma(self, sigma):
        return sigma

    def g2(self, t):
        return 2.0 * t


def make_process(name: str, **kwargs):
    """Builds a process by name; `name` must be one of PROCESS_NAMES."""
    table = {"vp": VP, "vp_cosine": VPCosine, "ve": VE, "edm": EDM}
    if name not in table:
        raise ValueError(f"unknown process name {name!r} (field 'process'); "
                         f"choose one of {list(PROCESS_NAMES)}")
    return table[name](**kwargs)


def perturb(process, x0, t, noise):
    """Forward perturbation x_t = mean(t) x_0 + std(t) noise, with t of shape (B,)."""
    shape = (-1,) + (1,) * (x0.ndim - 1)
    return process.mean(t).reshape(shape) * x0 + process.std(t).reshape(shape) * noise


def sigma_to_vp(sigma, x_edm, process: VP = VP()):
    """DG's map from the EDM variable to a VP process: returns (x_vp, tau, mean).

    tau = process.t_from_sigma(sigma) and x_vp = mean(tau) x_edm with mean(tau) = 1/sqrt(1+sigma^2),
    so x_vp has the VP marginal at time tau when x_edm has the EDM marginal at sigma.
    """
    tau = process.t_from_sigma(sigma)
    mean = process.mean(tau)
    shape = (-1,) + (1,) * (x_edm.ndim - 1)
    return mean.reshape(shape) * x_edm, tau, mean


def _importance_antiderivative(process: VP, t):
    """A(t) = log(exp(B(t)) - 1), an antiderivative of beta / (1 - exp(-B(t)))."""
    return jnp.log(jnp.expm1(process.integral_beta(t)))


def vp_importance_time(key, shape, process: VP = VP(), t_min: float = 1e-5):
    """Samples VP time with density proportional to g(t)^2 / std(t)^2 on [t_min, 1] (DG's
    importance sampling), by inverting the CDF: the antiderivative of beta / (1 - exp(-B(t))) is
    A(t) = log(exp(B(t)) - 1) with B the integral of beta.
    """
    a_min = _importance_antiderivative(process, t_min)
    a_max = _importance_antiderivative(process, process.t_max)
    u = jax.random.uniform(key, shape)
    a = a_min + u * (a_max - a_min)
    return process.t_from_integral_beta(jnp.logaddexp(0.0, a))  # log(1 + exp(a)) = B(t)


def vp_importance_density(t, process: VP = VP(), t_min: float = 1e-5):
    """Normalised density of `vp_importance_time` at t (for tests and for importance weights)."""
    z = (_importance_antiderivative(process, process.t_max)
         - _importance_antiderivative(process, t_min))
    return process.g2(t) / (-jnp.expm1(-process.integral_beta(t))) / z
