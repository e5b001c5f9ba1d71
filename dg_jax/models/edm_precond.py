"""EDM's preconditioned denoisers D(x; sigma, labels) = c_skip x + c_out F(c_in x; c_noise, labels)
(Karras et al. 2022, Table 1), ports of VPPrecond / VEPrecond / iDDPMPrecond / EDMPrecond of
NVlabs EDM `training/networks.py`.

Each preconditioner is a frozen dataclass holding the U-Net module and its constants; calling it
is a pure function `precond(params, x, sigma, class_labels=None)` of the U-Net's parameter tree,
with x in NHWC. As in EDM, inputs are cast to float32, sigma is reshaped to (-1, 1, 1, 1), a
missing label array of a conditional net becomes zeros([1, label_dim]), and the output is float32.
`sigma_min`, `sigma_max` and `round_sigma` are what EDM's sampler consults.

These are the library's one implementation of the preconditioning coefficients (c_skip, c_out,
c_in, c_noise); score and eps are derived from the denoiser in `dg_jax.diffusion.parameterization`.
"""
from __future__ import annotations

import dataclasses
import math
from typing import Any, Optional

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np

from dg_jax.errors import ConfigError
from dg_jax.models.edm_unets import UNET_CLASSES
from dg_jax.models.precision import compute_dtype as check_dtype


@dataclasses.dataclass(frozen=True, eq=False)
class _Precond:
    model: nn.Module
    img_resolution: int
    img_channels: int
    label_dim: int = 0
    use_fp16: bool = False  # accepted for EDM compatibility; computation stays float32

    def coefficients(self, sigma):
        """(c_skip, c_out, c_in, c_noise) for float32 sigma of shape (B, 1, 1, 1)."""
        raise NotImplementedError

    def round_sigma(self, sigma):
        """Noise levels the network supports; identity except for iDDPM's discrete table."""
        return sigma

    def _labels(self, class_labels):
        if self.label_dim == 0:
            return None
        if class_labels is None:
            return jnp.zeros([1, self.label_dim], jnp.float32)
        return jnp.asarray(class_labels, jnp.float32).reshape(-1, self.label_dim)

    def model_output(self, F_x):
        return F_x

    def __call__(self, params, x, sigma, class_labels=None, *, augment_labels=None,
                 train: bool = False, rngs: Optional[dict] = None):
        x = jnp.asarray(x, jnp.float32)
        sigma = jnp.asarray(sigma, jnp.float32).reshape(-1, 1, 1, 1)
        c_skip, c_out, c_in, c_noise = self.coefficients(sigma)
        F_x = self.model.apply({"params": params}, c_in * x, c_noise.reshape(-1),
                               self._labels(class_labels), augment_labels=augment_labels,
                               train=train, rngs=rngs)
        return c_skip * x + c_out * self.model_output(F_x).astype(jnp.float32)


def _vp_scalings(sigma):
    """(c_skip, c_out, c_in) = (1, -sigma, 1/sqrt(sigma^2+1)), shared by VP and iDDPM."""
    return 1.0, -sigma, 1 / jnp.sqrt(sigma ** 2 + 1)


@dataclasses.dataclass(frozen=True, eq=False)
class VPPrecond(_Precond):
    """VP (Song et al.): c_skip 1, c_out -sigma, c_in 1/sqrt(sigma^2+1),
    c_noise (M-1) sigma^-1(sigma) with sigma(t) = sqrt(exp(beta_d t^2/2 + beta_min t) - 1)."""
    beta_d: float = 19.9
    beta_min: float = 0.1
    M: int = 1000
    epsilon_t: float = 1e-5

    def sigma(self, t):
        """sigma(t), float32 as torch evaluates it."""
        t = np.float32(t)
        return np.sqrt(np.exp(0.5 * self.beta_d * t ** 2 + self.beta_min * t) - 1)

    def sigma_inv(self, sigma):
        return (jnp.sqrt(self.beta_min ** 2 + 2 * self.beta_d * jnp.log(1 + sigma ** 2))
                - self.beta_min) / self.beta_d

    @property
    def sigma_min(self) -> float:
        return float(self.sigma(self.epsilon_t))

    @property
    def sigma_max(self) -> float:
        return float(self.sigma(1))

    def coefficients(self, sigma):
        return (*_vp_scalings(sigma), (self.M - 1) * self.sigma_inv(sigma))


@dataclasses.dataclass(frozen=True, eq=False)
class VEPrecond(_Precond):
    """VE (Song et al.): c_skip 1, c_out sigma, c_in 1, c_noise log(sigma / 2)."""
    sigma_min: float = 0.02
    sigma_max: float = 100.0

    def coefficients(self, sigma):
        return 1.0, sigma, 1.0, jnp.log(0.5 * sigma)


def iddpm_u_table(M: int = 1000, C_1: float = 0.001, C_2: float = 0.008) -> np.ndarray:
    """iDDPM's noise levels u_0 > ... > u_M = 0 in float32, as EDM builds them:
    u_{j-1} = sqrt((u_j^2 + 1) / max(alpha_bar(j-1) / alpha_bar(j), C_1) - 1),
    alpha_bar(j) = sin(pi/2 j / M / (C_2 + 1))^2."""
    def alpha_bar(j):
        return np.sin(np.float32(j) * (0.5 * math.pi) / M / (C_2 + 1)) ** 2

    u = np.zeros(M + 1, np.float32)
    for j in range(M, 0, -1):
        ratio = np.maximum(alpha_bar(j - 1) / alpha_bar(j), np.float32(C_1))
        u[j - 1] = np.sqrt((u[j] ** 2 + 1) / ratio - 1)
    return u


@dataclasses.dataclass(frozen=True, eq=False)
class iDDPMPrecond(_Precond):  # noqa: N801 (EDM's class name)
    """iDDPM (Nichol & Dhariwal): c_skip 1, c_out -sigma, c_in 1/sqrt(sigma^2+1),
    c_noise M-1-argmin_j |sigma - u_j|; the model predicts 2C channels, the first C are used."""
    C_1: float = 0.001
    C_2: float = 0.008
    M: int = 1000
    u: Any = None  # the (M+1,) float32 table; computed by `iddpm_u_table` when None

    def __post_init__(self):
        if self.u is None:
            object.__setattr__(self, "u", iddpm_u_table(self.M, self.C_1, self.C_2))

    @property
    def sigma_min(self) -> float:
        return float(self.u[self.M - 1])

    @property
    def sigma_max(self) -> float:
        return float(self.u[0])

    def sigma_index(self, sigma):
        """argmin_j dist(sigma, u_j) with torch.cdist's matrix-product distance for >25 rows:
        sqrt(max((-2 s) u + s^2 + u^2, 1e-30)) in float32 (first index on ties)."""
        s = jnp.asarray(sigma, jnp.float32).reshape(-1, 1)
        u = jnp.asarray(self.u, jnp.float32).reshape(1, -1)
        d = jnp.sqrt(jnp.maximum((-2 * s) * u + s * s + u * u, 1e-30))
        return jnp.argmin(d, axis=1).reshape(jnp.shape(sigma))

    def round_sigma(self, sigma):
        dtype = jnp.asarray(sigma).dtype
        return jnp.asarray(self.u)[self.sigma_index(sigma)].astype(dtype)

    def coefficients(self, sigma):
        c_noise = self.M - 1 - self.sigma_index(sigma).astype(jnp.float32)
        return (*_vp_scalings(sigma), c_noise)

    def model_output(self, F_x):
        return F_x[..., :self.img_channels]


@dataclasses.dataclass(frozen=True, eq=False)
class EDMPrecond(_Precond):
    """EDM: c_skip sd^2/(sigma^2+sd^2), c_out sigma sd/sqrt(sigma^2+sd^2),
    c_in 1/sqrt(sd^2+sigma^2), c_noise log(sigma)/4, sd = sigma_data."""
    sigma_min: float = 0.0
    sigma_max: float = float("inf")
    sigma_data: float = 0.5

    def coefficients(self, sigma):
        sd = self.sigma_data
        return (sd ** 2 / (sigma ** 2 + sd ** 2), sigma * sd / jnp.sqrt(sigma ** 2 + sd ** 2),
                1 / jnp.sqrt(sd ** 2 + sigma ** 2), jnp.log(sigma) / 4)


PRECOND_CLASSES = {"VPPrecond": VPPrecond, "VEPrecond": VEPrecond,
                   "iDDPMPrecond": iDDPMPrecond, "EDMPrecond": EDMPrecond}
_DEFAULT_MODEL = {"VPPrecond": "SongUNet", "VEPrecond": "SongUNet",
                  "iDDPMPrecond": "DhariwalUNet", "EDMPrecond": "DhariwalUNet"}
_COMMON = ("img_resolution", "img_channels", "label_dim", "use_fp16")


def _hashable(value):
    return tuple(_hashable(v) for v in value) if isinstance(value, (list, tuple)) else value


def edm_precond_from_kwargs(class_name: str, init_kwargs: dict) -> _Precond:
    """Builds a preconditioner and its U-Net from EDM's constructor arguments, e.g.
    `('EDMPrecond', {img_resolution, img_channels, label_dim, model_type, **model_kwargs})`:
    the model gets in_channels = out_channels = img_channels (2x out for iDDPM) and label_dim."""
    if class_name not in PRECOND_CLASSES:
        raise ValueError(f"unknown EDM preconditioner {class_name!r}; known: {sorted(PRECOND_CLASSES)}")
    cls = PRECOND_CLASSES[class_name]
    kwargs = dict(init_kwargs)
    model_type = kwargs.pop("model_type", _DEFAULT_MODEL[class_name])
    if model_type not in UNET_CLASSES:
        raise ValueError(f"unknown EDM model_type {model_type!r}; known: {sorted(UNET_CLASSES)}")
    own = {f.name for f in dataclasses.fields(cls)} - {"model", "u"}
    pre = {k: kwargs.pop(k) for k in list(kwargs) if k in own}
    for k in ("img_resolution", "img_channels"):
        if k not in pre:
            raise ValueError(f"{class_name} needs {k!r} in its init kwargs")
    out_channels = pre["img_channels"] * (2 if class_name == "iDDPMPrecond" else 1)
    unet_cls = UNET_CLASSES[model_type]
    fields = {f.name for f in dataclasses.fields(unet_cls)} - {"parent", "name"}
    unknown = sorted(set(kwargs) - fields)
    if unknown:
        raise ValueError(f"{model_type} has no argument(s) {unknown} (from {class_name} init kwargs)")
    model = unet_cls(img_resolution=pre["img_resolution"], in_channels=pre["img_channels"],
                     out_channels=out_channels, label_dim=pre.get("label_dim", 0),
                     **{k: _hashable(v) for k, v in kwargs.items()})
    return cls(model=model, **pre)


def init_precond_params(precond: _Precond, key):
    """Fresh parameters of the preconditioner's U-Net (EDM's initialisation)."""
    res, ch = precond.img_resolution, precond.img_channels
    labels = jnp.zeros((1, precond.label_dim)) if precond.label_dim else None
    # jitted: op-by-op initialisation of a U-Net compiles every small op (a minute on a CPU)
    return jax.jit(precond.model.init)(key, jnp.zeros((1, res, res, ch)), jnp.zeros((1,)),
                                       labels)["params"]


def with_compute(precond: _Precond, *, compute_dtype: str = "float32",
                 attention_impl: str = "auto", field: str = "compute_dtype") -> _Precond:
    """The preconditioner with its U-Net computing in `compute_dtype` (parameters unchanged;
    the preconditioning, noise embedding and sampler state stay float32) and attention by
    `attention_impl` (`dg_jax.models.attention`). `field` names the config field in errors."""
    model = precond.model
    if compute_dtype != "float32":
        check_dtype(compute_dtype, field)
        if "compute_dtype" not in getattr(model, "__dataclass_fields__", {}):
            raise ConfigError(f"{field}={compute_dtype!r}: the score model "
                              f"{type(precond).__name__} has no compute dtype (EDM "
                              "SongUNet/DhariwalUNet only)")
        model = model.clone(compute_dtype=compute_dtype)
    if attention_impl != "auto" and hasattr(model, "attention_impl"):
        model = model.clone(attention_impl=attention_impl)
    return precond if model is precond.model else dataclasses.replace(precond, model=model)
