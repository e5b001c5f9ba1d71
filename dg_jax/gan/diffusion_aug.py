"""Diffusion-GAN's adaptive diffusion instance noise (Wang et al., ICLR 2023), jit-compatible.

Follows the official `diffusion-stylegan2/training/diffusion.py` and the adaptive heuristic of
`training/training_loop.py`:

* schedule: betas = linspace(beta_start, beta_end, T) over the *current* T (re-spread whenever T
  changes); abar_0 = 1, abar_t = prod_{s<=t} (1 - beta_s);
* augmentation: y = sqrt(abar_t) x + sqrt(1 - abar_t) * sigma * eps, eps ~ N(0, I), t drawn per
  sample from the exploration list t_epl; differentiable in x (the generator's gradient flows);
* T = clip(T_min + round(p (T_max - T_min)), T_min, T_max) (round half to even, as Python's);
* every `ada_interval` minibatches: p += sign(mean(sign(D(y_real))) - d_target) * batch *
  ada_interval / (ada_kimg * 1000), clipped to [0, 1]; then T and t_epl are refreshed;
* t_epl: 64 entries, the first 32 drawn from {1..T} ('uniform', or 'priority'), the last 32 zeros.

Priority weights: the official code uses `np.arange(T) / np.arange(T).sum()` over the values
1..T, i.e. pi(t) proportional to t - 1 (t = 1 is never drawn) — `priority_weights='t_minus_1'`,
the **default** here, so the default behaviour is the official code's. The paper writes
pi(t) = t / sum_s s — `priority_weights='t'`. For T = 1 the official weights are 0/0; dg_jax then
draws t = 1.

The schedule is held as padded arrays of length T_max + 1 computed from the traced T, so p, T and
t_epl live in the jitted train state (`DiffusionState`) and a T change costs no recompilation.
The official code forgets to rebuild T from p on resume; here T is itself saved state.
"""
from __future__ import annotations

import dataclasses

import jax
import jax.numpy as jnp
import numpy as np
from flax import struct

TS_DISTS = ("priority", "uniform")
PRIORITY_WEIGHTS = ("t_minus_1", "t")
NUM_EPL = 64
NUM_DIFFUSION_EPL = 32


@dataclasses.dataclass(frozen=True)
class DiffusionConfig:
    """Static settings (official defaults: linear 1e-4 -> 2e-2, T in [10, 1000], sigma 0.05)."""

    beta_start: float = 1e-4
    beta_end: float = 2e-2
    t_min: int = 10
    t_max: int = 1000
    noise_std: float = 0.05
    ts_dist: str = "priority"
    priority_weights: str = "t_minus_1"
    d_target: float = 0.6
    ada_interval: int = 4
    ada_kimg: float = 100.0
    enabled: bool = True  # False: a vanilla GAN (t = 0, y = x, p and T never move)

    def __post_init__(self):
        if self.ts_dist not in TS_DISTS:
            raise ValueError(f"unknown ts_dist {self.ts_dist!r} (field 'diffusion.ts_dist'); "
                             f"choose one of {list(TS_DISTS)}")
        if self.priority_weights not in PRIORITY_WEIGHTS:
            raise ValueError(f"unknown priority_weights {self.priority_weights!r} (field "
                             f"'diffusion.priority_weights'); choose one of "
                             f"{list(PRIORITY_WEIGHTS)}")
        if not 1 <= self.t_min <= self.t_max:
            raise ValueError(f"need 1 <= diffusion.t_min ({self.t_min}) <= diffusion.t_max "
                             f"({self.t_max})")


@struct.dataclass
class DiffusionState:
    """p, the current T, the exploration list and the running sums for r_d = E[sign(D(real))]."""

    p: jnp.ndarray          # float32 scalar in [0, 1]
    T: jnp.ndarray          # int32 scalar
    t_epl: jnp.ndarray      # int32 (64,)
    sign_sum: jnp.ndarray   # float32: sum of sign(D real logits) since the last adjustment
    sign_count: jnp.ndarray  # float32: how many logits entered sign_sum
    last_rd: jnp.ndarray    # float32: r_d used by the last adjustment (for logging)


def compute_T(p, t_min: int, t_max: int):
    """T = clip(T_min + round(p (T_max - T_min)), T_min, T_max) as int32, computed in p's float
    dtype (float32 in training; float64 under `jax.enable_x64(True)`, as the official
    code's Python floats)."""
    p = jnp.asarray(p)
    p = p if jnp.issubdtype(p.dtype, jnp.floating) else p.astype(jnp.float32)
    t = t_min + jnp.round(p * (t_max - t_min))
    return jnp.clip(t, t_min, t_max).astype(jnp.int32)


def ada_step(cfg: DiffusionConfig, batch_size: int) -> float:
    """How far one adjustment moves p: batch_size * ada_interval / (ada_kimg * 1000)."""
    return batch_size * cfg.ada_interval / (cfg.ada_kimg * 1000)


def update_p(p, r_d, cfg: DiffusionConfig, batch_size: int):
    """The official rule p <- clip(p + sign(r_d - d_target) * ada_step, 0, 1), in p's dtype."""
    p = jnp.asarray(p)
    moved = p + jnp.sign(jnp.asarray(r_d, p.dtype) - cfg.d_target) * ada_step(cfg, batch_size)
    return jnp.clip(moved, 0.0, 1.0).astype(p.dtype)


def schedule(T, cfg: DiffusionConfig):
    """(sqrt(abar), sqrt(1 - abar)), each (T_max + 1,), for the linear schedule spread over T.

    beta_i = beta_start + (beta_end - beta_start) (i - 1) / (T - 1) for i = 1..T (np.linspace;
    beta_start when T = 1), abar_0 = 1; entries past T repeat abar_T and are never indexed.
    """
    i = jnp.arange(1, cfg.t_max + 1, dtype=jnp.float32)
    T = jnp.asarray(T)
    denom = jnp.maximum(T - 1, 1).astype(jnp.float32)
    betas = cfg.beta_start + (cfg.beta_end - cfg.beta_start) * (i - 1) / denom
    betas = jnp.where(i <= T, betas, 0.0)
    abar = jnp.concatenate([jnp.ones((1,), jnp.float32), accurate_cumprod(1.0 - betas)])
    return jnp.sqrt(abar), jnp.sqrt(1.0 - abar)


def _two_prod(a, b):
    """Dekker's error-free product in float32: a * b = p + err exactly (no FMA needed)."""
    def split(x):
        c = 4097.0 * x  # 2**12 + 1 splits a float32's 24-bit significand into two halves
        hi = c - (c - x)
        return hi, x - hi

    p = a * b
    (ah, al), (bh, bl) = split(a), split(b)
    return p, ((ah * bh - p) + ah * bl + al * bh) + al * bl


def _df_mul(x, y):
    """(hi, lo) double-float32 product, renormalised."""
    p, err = _two_prod(x[0], y[0])
    err = err + (x[0] * y[1] + x[1] * y[0])
    hi = p + err
    return hi, err - (hi - p)


def accurate_cumprod(a):
    """cumprod of a float32 vector accumulated in double-float32 (~48 bits) and rounded once,
    as torch's CPU cumprod (double accumulator) behind the official schedule; a plain float32
    cumprod drifts ~1e-6 over 500 steps, which 1 - abar at small t magnifies. A log-depth
    associative scan, so it stays cheap inside the train step."""
    hi, _ = jax.lax.associative_scan(_df_mul, (a, jnp.zeros_like(a)))
    return hi


def schedule_numpy(T: int, cfg: DiffusionConfig):
    """The official computation for tests and reference: float64 linspace cast to float32
    betas, torch's float32 cumprod (a double accumulator, rounded per entry), float32 sqrt."""
    betas = np.linspace(cfg.beta_start, cfg.beta_end, T, dtype=np.float64).astype(np.float32)
    alphas = (np.float32(1.0) - betas).astype(np.float64)
    abar = np.concatenate([[np.float32(1.0)], np.cumprod(alphas).astype(np.float32)])
    return np.sqrt(abar), np.sqrt(np.float32(1.0) - abar)


def priority_probs(T, cfg: DiffusionConfig):
    """Probabilities over t = 1..T_max (zero past T) used to fill t_epl's first 32 entries."""
    t = jnp.arange(1, cfg.t_max + 1, dtype=jnp.float32)
    inside = t <= T
    if cfg.ts_dist == "uniform":
        w = inside.astype(jnp.float32)
    else:
        w = jnp.where(inside, t - 1.0 if cfg.priority_weights == "t_minus_1" else t, 0.0)
        w = jnp.where(jnp.sum(w) > 0, w, (t == 1).astype(jnp.float32))  # T = 1, weights t - 1
    return w / jnp.sum(w)


def sample_t_epl(key, T, cfg: DiffusionConfig):
    """t_epl: 32 draws (with replacement) from 1..T by `priority_probs`, then 32 zeros."""
    probs = priority_probs(T, cfg)
    draws = 1 + jax.random.choice(key, cfg.t_max, (NUM_DIFFUSION_EPL,), p=probs)
    return jnp.concatenate([draws.astype(jnp.int32),
                            jnp.zeros((NUM_EPL - NUM_DIFFUSION_EPL,), jnp.int32)])


def init_state(key, cfg: DiffusionConfig, p: float = 0.0) -> DiffusionState:
    """The state at p (official: p = 0 at the start, T = T_min, a fresh t_epl)."""
    p = jnp.asarray(p, jnp.float32)
    T = compute_T(p, cfg.t_min, cfg.t_max)
    t_epl = (sample_t_epl(key, T, cfg) if cfg.enabled
             else jnp.zeros((NUM_EPL,), jnp.int32))
    return DiffusionState(p=p, T=T, t_epl=t_epl, sign_sum=jnp.zeros((), jnp.float32),
                          sign_count=jnp.zeros((), jnp.float32),
                          last_rd=jnp.zeros((), jnp.float32))  # distinct buffers (donation)


def sample_t(key, state: DiffusionState, batch: int):
    """Per-sample t drawn uniformly from the 64 entries of t_epl (np.random.choice(t_epl))."""
    return state.t_epl[jax.random.randint(key, (batch,), 0, NUM_EPL)]


def diffuse(x, t, T, key, cfg: DiffusionConfig):
    """y = sqrt(abar_t) x + sqrt(1 - abar_t) sigma eps (q_sample); t = 0 leaves x unchanged."""
    if not cfg.enabled:
        return x
    return q_sample(x, t, T, jax.random.normal(key, x.shape, x.dtype), cfg)


def q_sample(x, t, T, eps, cfg: DiffusionConfig):
    """The official `q_sample` with given standard-normal eps: sqrt(abar_t) x +
    sqrt(1 - abar_t) noise_std eps over the schedule spread over T; any layout, batch first."""
    sqrt_abar, sqrt_one_minus = schedule(T, cfg)
    shape = (-1,) + (1,) * (x.ndim - 1)
    return (sqrt_abar[t].reshape(shape) * x
            + sqrt_one_minus[t].reshape(shape) * (eps * cfg.noise_std))


def augment(x, state: DiffusionState, key, cfg: DiffusionConfig):
    """(y, t): draws t from t_epl and diffuses x (the official `Diffusion.forward`)."""
    k_t, k_eps = jax.random.split(key)
    if not cfg.enabled:
        return x, jnp.zeros((x.shape[0],), jnp.int32)
    t = sample_t(k_t, state, x.shape[0])
    return diffuse(x, t, state.T, k_eps, cfg), t


def record_signs(state: DiffusionState, real_logits) -> DiffusionState:
    """Adds sign(D real logits) to the running sums (the official 'Loss/signs/real' stat)."""
    return state.replace(sign_sum=state.sign_sum + jnp.sum(jnp.sign(real_logits)),
                         sign_count=state.sign_count + real_logits.size)


def adjust(state: DiffusionState, key, cfg: DiffusionConfig, batch_size: int) -> DiffusionState:
    """One adaptive step: p += sign(r_d - d_target) batch ada_interval / (ada_kimg 1000),
    clipped to [0, 1]; T recomputed; t_epl redrawn; the sign sums reset."""
    r_d = state.sign_sum / jnp.maximum(state.sign_count, 1.0)
    p = update_p(state.p, r_d, cfg, batch_size)
    T = compute_T(p, cfg.t_min, cfg.t_max)
    return DiffusionState(p=p, T=T, t_epl=sample_t_epl(key, T, cfg),
                          sign_sum=jnp.zeros((), jnp.float32),
                          sign_count=jnp.zeros((), jnp.float32), last_rd=r_d)


def maybe_adjust(state: DiffusionState, batch_idx, key, cfg: DiffusionConfig,
                 batch_size: int) -> DiffusionState:
    """`adjust` when batch_idx (minibatches done, counted after this one) % ada_interval == 0.
    Disabled (vanilla GAN): p, T and t_epl stay put; r_d is still measured for the logs."""
    do = (batch_idx % cfg.ada_interval) == 0
    new = adjust(state, key, cfg, batch_size)
    if not cfg.enabled:
        new = state.replace(sign_sum=new.sign_sum, sign_count=new.sign_count, last_rd=new.last_rd)
    return jax.tree_util.tree_map(lambda a, b: jnp.where(do, a, b), new, state)
