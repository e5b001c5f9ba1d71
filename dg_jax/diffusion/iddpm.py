"""Improved-DDPM discrete diffusion (Nichol & Dhariwal 2021), as openai/guided-diffusion has it.

Follows `guided_diffusion/gaussian_diffusion.py`, `respace.py` and `script_util.py`:

- `get_named_beta_schedule`: 'linear' (Ho et al., scaled by 1000 / T) and 'cosine'
  (alpha_bar(t) = cos^2((t + 0.008) / 1.008 * pi / 2), betas clipped at 0.999).
- `DiscreteDiffusion`: the float64 tables of a (possibly respaced) process and its model
  parameterisation; `make_diffusion` builds one from betas and the kept timesteps, recomputing
  the respaced betas as 1 - abar_i / abar_prev_kept exactly as `SpacedDiffusion` does.
- `space_timesteps`: section counts ("250", "10,10,10") or DDIM's fixed stride ("ddimN").
- q_sample / q_posterior_mean_variance / p_mean_variance and the eps <-> x0 conversions,
  condition_mean (Sohl-Dickstein mean shift) and condition_score (Song et al. eps shift).

Table look-ups are cast to the dtype of the array they multiply (float32 for float32 data), as
guided-diffusion's `_extract_into_tensor(...).float()` does. Arrays may be in any layout; the
model output's channel axis (where learned variances are concatenated) is `channel_axis`
(NHWC inside dg_jax, so -1 by default). The model always sees the ORIGINAL timestep
(`model_timesteps`, respace's `_WrappedModel`): timestep_map[t], scaled to 0..1000 when
`rescale_timesteps`.
"""
from __future__ import annotations

import math
from typing import Callable, Optional, Sequence

import jax.numpy as jnp
import numpy as np
from flax import struct

MEAN_TYPES = ("epsilon", "start_x", "previous_x")
VAR_TYPES = ("learned", "learned_range", "fixed_small", "fixed_large")
LOSS_TYPES = ("mse", "rescaled_mse", "kl", "rescaled_kl")


# ----------------------------------------------------------------------------- schedules

def betas_for_alpha_bar(num_diffusion_timesteps: int, alpha_bar: Callable[[float], float],
                        max_beta: float = 0.999) -> np.ndarray:
    """beta_i = min(1 - alpha_bar((i+1)/T) / alpha_bar(i/T), max_beta), i = 0..T-1 (float64)."""
    betas = []
    for i in range(num_diffusion_timesteps):
        t1 = i / num_diffusion_timesteps
        t2 = (i + 1) / num_diffusion_timesteps
        betas.append(min(1 - alpha_bar(t2) / alpha_bar(t1), max_beta))
    return np.array(betas, dtype=np.float64)


def get_named_beta_schedule(schedule_name: str, num_diffusion_timesteps: int) -> np.ndarray:
    """guided-diffusion's named schedules, float64 of shape (T,).

    'linear': linspace(1e-4 * 1000/T, 0.02 * 1000/T, T); 'cosine': `betas_for_alpha_bar` of
    alpha_bar(t) = cos^2((t + 0.008) / 1.008 * pi / 2) with max_beta 0.999.
    """
    if schedule_name == "linear":
        scale = 1000 / num_diffusion_timesteps
        return np.linspace(scale * 0.0001, scale * 0.02, num_diffusion_timesteps,
                           dtype=np.float64)
    if schedule_name == "cosine":
        return betas_for_alpha_bar(
            num_diffusion_timesteps,
            lambda t: math.cos((t + 0.008) / 1.008 * math.pi / 2) ** 2)
    raise ValueError(f"unknown beta schedule {schedule_name!r}; expected 'linear' or 'cosine'")


def space_timesteps(num_timesteps: int, section_counts) -> set[int]:
    """The original timesteps a respaced process keeps (respace.space_timesteps).

    `section_counts` is a list of ints or a comma-separated string: the process is cut into
    len(section_counts) near-equal sections (the first T % len sections one step longer) and
    section i keeps `count_i` steps at round(k * (size - 1) / (count_i - 1)). "ddimN" instead
    takes range(0, T, stride) with the smallest integer stride giving exactly N steps.
    """
    if isinstance(section_counts, str):
        if section_counts.startswith("ddim"):
            desired_count = int(section_counts[len("ddim"):])
            for i in range(1, num_timesteps):
                if len(range(0, num_timesteps, i)) == desired_count:
                    return set(range(0, num_timesteps, i))
            raise ValueError(
                f"cannot create exactly {desired_count} steps out of {num_timesteps} "
                "with an integer stride")
        section_counts = [int(x) for x in section_counts.split(",")]
    size_per = num_timesteps // len(section_counts)
    extra = num_timesteps % len(section_counts)
    start_idx = 0
    all_steps = []
    for i, section_count in enumerate(section_counts):
        size = size_per + (1 if i < extra else 0)
        if size < section_count:
            raise ValueError(f"cannot divide section of {size} steps into {section_count}")
        frac_stride = 1 if section_count <= 1 else (size - 1) / (section_count - 1)
        cur_idx = 0.0
        for _ in range(section_count):
            all_steps.append(start_idx + round(cur_idx))
            cur_idx += frac_stride
        start_idx += size
    return set(all_steps)


# ----------------------------------------------------------------------------- process tables

@struct.dataclass
class DiscreteDiffusion:
    """Tables of a discrete Gaussian diffusion (float64 numpy arrays of shape (T,)).

    Index t = 0..T-1 runs over the (respaced) process; `timestep_map[t]` is the original
    timestep the model was trained on. The static fields fix the model parameterisation.
    """

    betas: np.ndarray
    alphas_cumprod: np.ndarray
    alphas_cumprod_prev: np.ndarray
    alphas_cumprod_next: np.ndarray
    sqrt_alphas_cumprod: np.ndarray
    sqrt_one_minus_alphas_cumprod: np.ndarray
    log_one_minus_alphas_cumprod: np.ndarray
    sqrt_recip_alphas_cumprod: np.ndarray
    sqrt_recipm1_alphas_cumprod: np.ndarray
    posterior_variance: np.ndarray
    posterior_log_variance_clipped: np.ndarray
    posterior_mean_coef1: np.ndarray
    posterior_mean_coef2: np.ndarray
    log_betas: np.ndarray
    fixed_large_variance: np.ndarray
    fixed_large_log_variance: np.ndarray
    timestep_map: np.ndarray
    model_mean_type: str = struct.field(pytree_node=False, default="epsilon")
    model_var_type: str = struct.field(pytree_node=False, default="fixed_large")
    loss_type: str = struct.field(pytree_node=False, default="mse")
    rescale_timesteps: bool = struct.field(pytree_node=False, default=False)
    original_num_steps: int = struct.field(pytree_node=False, default=0)

    @property
    def num_timesteps(self) -> int:
        return int(np.shape(self.betas)[0])

    @property
    def learns_variance(self) -> bool:
        return self.model_var_type in ("learned", "learned_range")


def make_diffusion(betas, *, model_mean_type: str = "epsilon",
                   model_var_type: str = "fixed_large", loss_type: str = "mse",
                   rescale_timesteps: bool = False,
                   use_timesteps: Optional[Sequence[int]] = None) -> DiscreteDiffusion:
    """GaussianDiffusion.__init__ (and SpacedDiffusion when `use_timesteps` is given).

    With `use_timesteps`, the kept steps i (ascending) get beta'_i = 1 - abar_i / abar_prev,
    abar_prev the cumulative product at the previous kept step (1 before the first), so the
    respaced process has the same alphas_cumprod at the kept steps.
    """
    if model_mean_type not in MEAN_TYPES:
        raise ValueError(f"model_mean_type {model_mean_type!r} not in {MEAN_TYPES}")
    if model_var_type not in VAR_TYPES:
        raise ValueError(f"model_var_type {model_var_type!r} not in {VAR_TYPES}")
    if loss_type not in LOSS_TYPES:
        raise ValueError(f"loss_type {loss_type!r} not in {LOSS_TYPES}")
    betas = np.array(betas, dtype=np.float64)
    if betas.ndim != 1:
        raise ValueError("betas must be 1-D")
    original_num_steps = len(betas)
    if use_timesteps is None:
        timestep_map = np.arange(original_num_steps, dtype=np.int64)
    else:
        keep = set(int(i) for i in use_timesteps)
        base_cumprod = np.cumprod(1.0 - betas)
        last, new_betas, timestep_map = 1.0, [], []
        for i, abar in enumerate(base_cumprod):
            if i in keep:
                new_betas.append(1 - abar / last)
                last = abar
                timestep_map.append(i)
        betas = np.array(new_betas, dtype=np.float64)
        timestep_map = np.array(timestep_map, dtype=np.int64)
    if not ((betas > 0).all() and (betas <= 1).all()):
        raise ValueError("betas must lie in (0, 1]")

    alphas = 1.0 - betas
    alphas_cumprod = np.cumprod(alphas)
    alphas_cumprod_prev = np.append(1.0, alphas_cumprod[:-1])
    alphas_cumprod_next = np.append(alphas_cumprod[1:], 0.0)
    posterior_variance = betas * (1.0 - alphas_cumprod_prev) / (1.0 - alphas_cumprod)
    # the posterior variance is 0 at t = 0: its log is clipped to the value at t = 1
    if len(betas) > 1:
        post_log = np.log(np.append(posterior_variance[1], posterior_variance[1:]))
    else:  # a single step: guided-diffusion would index out of range; keep beta_0's log
        post_log = np.log(betas)
    # 'fixed_large' uses beta_t, with the posterior variance at t = 0 for a better decoder NLL
    fixed_large = np.append(posterior_variance[1], betas[1:]) if len(betas) > 1 else betas
    return DiscreteDiffusion(
        betas=betas,
        alphas_cumprod=alphas_cumprod,
        alphas_cumprod_prev=alphas_cumprod_prev,
        alphas_cumprod_next=alphas_cumprod_next,
        sqrt_alphas_cumprod=np.sqrt(alphas_cumprod),
        sqrt_one_minus_alphas_cumprod=np.sqrt(1.0 - alphas_cumprod),
        log_one_minus_alphas_cumprod=np.log(1.0 - alphas_cumprod),
        sqrt_recip_alphas_cumprod=np.sqrt(1.0 / alphas_cumprod),
        sqrt_recipm1_alphas_cumprod=np.sqrt(1.0 / alphas_cumprod - 1),
        posterior_variance=posterior_variance,
        posterior_log_variance_clipped=post_log,
        posterior_mean_coef1=betas * np.sqrt(alphas_cumprod_prev) / (1.0 - alphas_cumprod),
        posterior_mean_coef2=(1.0 - alphas_cumprod_prev) * np.sqrt(alphas)
        / (1.0 - alphas_cumprod),
        log_betas=np.log(betas),
        fixed_large_variance=fixed_large,
        fixed_large_log_variance=np.log(fixed_large),
        timestep_map=timestep_map,
        model_mean_type=model_mean_type,
        model_var_type=model_var_type,
        loss_type=loss_type,
        rescale_timesteps=bool(rescale_timesteps),
        original_num_steps=original_num_steps,
    )


def create_gaussian_diffusion(*, steps: int = 1000, learn_sigma: bool = False,
                              sigma_small: bool = False, noise_schedule: str = "linear",
                              use_kl: bool = False, predict_xstart: bool = False,
                              rescale_timesteps: bool = False,
                              rescale_learned_sigmas: bool = False,
                              timestep_respacing="") -> DiscreteDiffusion:
    """script_util.create_gaussian_diffusion: the flags -> a (respaced) process.

    loss: rescaled_kl if use_kl, else rescaled_mse if rescale_learned_sigmas, else mse;
    mean: start_x if predict_xstart else epsilon; variance: learned_range if learn_sigma, else
    fixed_small if sigma_small else fixed_large. An empty respacing keeps all `steps`.
    """
    betas = get_named_beta_schedule(noise_schedule, steps)
    if use_kl:
        loss_type = "rescaled_kl"
    elif rescale_learned_sigmas:
        loss_type = "rescaled_mse"
    else:
        loss_type = "mse"
    if not timestep_respacing:
        timestep_respacing = [steps]
    return make_diffusion(
        betas,
        model_mean_type="start_x" if predict_xstart else "epsilon",
        model_var_type=("learned_range" if learn_sigma
                        else ("fixed_small" if sigma_small else "fixed_large")),
        loss_type=loss_type,
        rescale_timesteps=rescale_timesteps,
        use_timesteps=sorted(space_timesteps(steps, timestep_respacing)),
    )


def diffusion_from_flags(flags: dict, timestep_respacing=None) -> DiscreteDiffusion:
    """A process from guided-diffusion's model-and-diffusion flag dict (`diffusion_steps`,
    `noise_schedule`, `learn_sigma`, `sigma_small`, `use_kl`, `predict_xstart`,
    `rescale_timesteps`, `rescale_learned_sigmas`, `timestep_respacing`; script_util's defaults
    where absent). `timestep_respacing`, when given, overrides the flag's."""
    respacing = flags.get("timestep_respacing", "")
    if timestep_respacing is not None:
        respacing = timestep_respacing
    return create_gaussian_diffusion(
        steps=int(flags.get("diffusion_steps", 1000)),
        learn_sigma=bool(flags.get("learn_sigma", False)),
        sigma_small=bool(flags.get("sigma_small", False)),
        noise_schedule=str(flags.get("noise_schedule", "linear")),
        use_kl=bool(flags.get("use_kl", False)),
        predict_xstart=bool(flags.get("predict_xstart", False)),
        rescale_timesteps=bool(flags.get("rescale_timesteps", False)),
        rescale_learned_sigmas=bool(flags.get("rescale_learned_sigmas", False)),
        timestep_respacing=respacing,
    )


def create_dit_diffusion(timestep_respacing, noise_schedule: str = "linear", use_kl: bool = False,
                         sigma_small: bool = False, predict_xstart: bool = False,
                         learn_sigma: bool = True, rescale_learned_sigmas: bool = False,
                         diffusion_steps: int = 1000) -> DiscreteDiffusion:
    """DiT's `diffusion.create_diffusion` (also DG_imagenet's): guided-diffusion's process with
    DiT's defaults (learned-range variances) and no timestep rescaling; the arguments are the
    official ones, so a `create_diffusion` kwargs dict can be splatted in (an int respacing is
    read as its string, as `sample.py` passes `str(num_sampling_steps)`)."""
    return create_gaussian_diffusion(
        steps=int(diffusion_steps), learn_sigma=bool(learn_sigma), sigma_small=bool(sigma_small),
        noise_schedule=str(noise_schedule), use_kl=bool(use_kl),
        predict_xstart=bool(predict_xstart), rescale_timesteps=False,
        rescale_learned_sigmas=bool(rescale_learned_sigmas),
        timestep_respacing=(str(timestep_respacing) if isinstance(timestep_respacing, int)
                            else timestep_respacing or ""))


# ----------------------------------------------------------------------------- helpers

def extract(table, t, like):
    """table[t] (t of shape (B,)) reshaped to (B, 1, ..., 1) for broadcasting against `like`,
    cast to like's dtype (guided-diffusion's `_extract_into_tensor`)."""
    out = jnp.asarray(table)[t].astype(jnp.result_type(like))
    return out.reshape(out.shape + (1,) * (jnp.ndim(like) - out.ndim))


def mean_flat(x):
    """Mean over every axis but the first."""
    return jnp.mean(x, axis=tuple(range(1, jnp.ndim(x))))


def model_timesteps(diffusion: DiscreteDiffusion, t):
    """What the model is called with at process index t (respace's `_WrappedModel`):
    timestep_map[t], times 1000 / original_num_steps as float32 when rescale_timesteps."""
    new_t = jnp.asarray(diffusion.timestep_map)[t]
    if diffusion.rescale_timesteps:
        return new_t.astype(jnp.float32) * (1000.0 / diffusion.original_num_steps)
    return new_t


def q_mean_variance(diffusion: DiscreteDiffusion, x_start, t):
    """q(x_t | x_0) = N(sqrt(abar_t) x_0, (1 - abar_t) I): (mean, variance, log_variance)."""
    mean = extract(diffusion.sqrt_alphas_cumprod, t, x_start) * x_start
    variance = jnp.broadcast_to(extract(1.0 - diffusion.alphas_cumprod, t, x_start),
                                x_start.shape)
    log_variance = jnp.broadcast_to(
        extract(diffusion.log_one_minus_alphas_cumprod, t, x_start), x_start.shape)
    return mean, variance, log_variance


def q_sample(diffusion: DiscreteDiffusion, x_start, t, noise):
    """x_t = sqrt(abar_t) x_0 + sqrt(1 - abar_t) noise."""
    return (extract(diffusion.sqrt_alphas_cumprod, t, x_start) * x_start
            + extract(diffusion.sqrt_one_minus_alphas_cumprod, t, x_start) * noise)


def q_posterior_mean_variance(diffusion: DiscreteDiffusion, x_start, x_t, t):
    """q(x_{t-1} | x_t, x_0): mean coef1_t x_0 + coef2_t x_t, the posterior variance
    beta_t (1 - abar_{t-1}) / (1 - abar_t) and its clipped log."""
    mean = (extract(diffusion.posterior_mean_coef1, t, x_t) * x_start
            + extract(diffusion.posterior_mean_coef2, t, x_t) * x_t)
    variance = jnp.broadcast_to(extract(diffusion.posterior_variance, t, x_t), x_t.shape)
    log_variance = jnp.broadcast_to(
        extract(diffusion.posterior_log_variance_clipped, t, x_t), x_t.shape)
    return mean, variance, log_variance


def predict_xstart_from_eps(diffusion: DiscreteDiffusion, x_t, t, eps):
    """x_0 = sqrt(1 / abar_t) x_t - sqrt(1 / abar_t - 1) eps."""
    return (extract(diffusion.sqrt_recip_alphas_cumprod, t, x_t) * x_t
            - extract(diffusion.sqrt_recipm1_alphas_cumprod, t, x_t) * eps)


def predict_xstart_from_xprev(diffusion: DiscreteDiffusion, x_t, t, xprev):
    """x_0 = (x_{t-1} - coef2_t x_t) / coef1_t."""
    return (extract(1.0 / diffusion.posterior_mean_coef1, t, x_t) * xprev
            - extract(diffusion.posterior_mean_coef2 / diffusion.posterior_mean_coef1, t, x_t)
            * x_t)


def predict_eps_from_xstart(diffusion: DiscreteDiffusion, x_t, t, pred_xstart):
    """eps = (sqrt(1 / abar_t) x_t - x_0) / sqrt(1 / abar_t - 1)."""
    return ((extract(diffusion.sqrt_recip_alphas_cumprod, t, x_t) * x_t - pred_xstart)
            / extract(diffusion.sqrt_recipm1_alphas_cumprod, t, x_t))


def split_model_output(diffusion: DiscreteDiffusion, model_output, x, channel_axis: int = -1):
    """(mean part, variance part or None): a learned-variance model outputs 2C channels."""
    if not diffusion.learns_variance:
        if model_output.shape != x.shape:
            raise ValueError(f"model output {model_output.shape} != x {x.shape}")
        return model_output, None
    c = x.shape[channel_axis]
    if model_output.shape[channel_axis] != 2 * c:
        raise ValueError(f"learned variance needs 2C = {2 * c} output channels on axis "
                         f"{channel_axis}, got {model_output.shape}")
    mean_part, var_part = jnp.split(model_output, 2, axis=channel_axis)
    return mean_part, var_part


def p_mean_variance_from_output(diffusion: DiscreteDiffusion, model_output, x, t, *,
                                clip_denoised: bool = True,
                                denoised_fn: Optional[Callable] = None,
                                channel_axis: int = -1) -> dict:
    """p(x_{t-1} | x_t) from a model output (GaussianDiffusion.p_mean_variance).

    Variance: 'learned' -> exp(v); 'learned_range' -> log var = frac log beta_t +
    (1 - frac) log posterior_var_t with frac = (v + 1) / 2; 'fixed_large' -> beta_t (posterior
    variance at t = 0); 'fixed_small' -> posterior variance. Mean: the posterior mean at
    pred_xstart (from eps or x0, passed through `denoised_fn` then clipped to [-1, 1] when
    clip_denoised), or the output itself for 'previous_x'.
    Returns {'mean', 'variance', 'log_variance', 'pred_xstart'}.
    """
    out, var_values = split_model_output(diffusion, model_output, x, channel_axis)
    vt = diffusion.model_var_type
    if vt == "learned":
        log_variance = var_values
        variance = jnp.exp(log_variance)
    elif vt == "learned_range":
        min_log = extract(diffusion.posterior_log_variance_clipped, t, x)
        max_log = extract(diffusion.log_betas, t, x)
        frac = (var_values + 1) / 2
        log_variance = frac * max_log + (1 - frac) * min_log
        variance = jnp.exp(log_variance)
    else:
        if vt == "fixed_large":
            table = diffusion.fixed_large_variance
            table_log = diffusion.fixed_large_log_variance
        else:
            table = diffusion.posterior_variance
            table_log = diffusion.posterior_log_variance_clipped
        variance = jnp.broadcast_to(extract(table, t, x), x.shape)
        log_variance = jnp.broadcast_to(extract(table_log, t, x), x.shape)

    def process_xstart(x0):
        if denoised_fn is not None:
            x0 = denoised_fn(x0)
        return jnp.clip(x0, -1, 1) if clip_denoised else x0

    mt = diffusion.model_mean_type
    if mt == "previous_x":
        pred_xstart = process_xstart(predict_xstart_from_xprev(diffusion, x, t, out))
        mean = out
    else:
        if mt == "start_x":
            pred_xstart = process_xstart(out)
        else:
            pred_xstart = process_xstart(predict_xstart_from_eps(diffusion, x, t, out))
        mean, _, _ = q_posterior_mean_variance(diffusion, pred_xstart, x, t)
    return {"mean": mean, "variance": variance, "log_variance": log_variance,
            "pred_xstart": pred_xstart}


def p_mean_variance(diffusion: DiscreteDiffusion, model_fn: Callable, x, t, *,
                    clip_denoised: bool = True, denoised_fn: Optional[Callable] = None,
                    channel_axis: int = -1) -> dict:
    """`p_mean_variance_from_output` of model_fn(x, model_timesteps(t))."""
    model_output = model_fn(x, model_timesteps(diffusion, t))
    return p_mean_variance_from_output(diffusion, model_output, x, t,
                                       clip_denoised=clip_denoised, denoised_fn=denoised_fn,
                                       channel_axis=channel_axis)


def condition_mean(diffusion: DiscreteDiffusion, gradient, p_mean_var: dict) -> dict:
    """Sohl-Dickstein et al.'s guided mean: mean + variance * grad log p(y | x_t).

    `gradient` is cond_fn(x, model_timesteps(t)) (already scaled). Returns a copy of
    p_mean_var with the new 'mean'.
    """
    out = dict(p_mean_var)
    out["mean"] = p_mean_var["mean"] + p_mean_var["variance"] * gradient
    return out


def condition_score(diffusion: DiscreteDiffusion, gradient, p_mean_var: dict, x, t) -> dict:
    """Song et al.'s guided eps: eps' = eps - sqrt(1 - abar_t) grad log p(y | x_t); returns
    p_mean_var with pred_xstart (unclipped) and the posterior mean recomputed from eps'."""
    alpha_bar = extract(diffusion.alphas_cumprod, t, x)
    eps = predict_eps_from_xstart(diffusion, x, t, p_mean_var["pred_xstart"])
    eps = eps - jnp.sqrt(1 - alpha_bar) * gradient
    out = dict(p_mean_var)
    out["pred_xstart"] = predict_xstart_from_eps(diffusion, x, t, eps)
    out["mean"], _, _ = q_posterior_mean_variance(diffusion, out["pred_xstart"], x, t)
    return out
