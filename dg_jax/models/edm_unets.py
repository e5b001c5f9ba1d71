"""EDM's U-Nets (NVlabs EDM `training/networks.py`) in Flax Linen, NHWC.

* `SongUNet`: DDPM++ (positional embedding, standard encoder, resample filter [1,1]) and NCSN++
  (Fourier embedding, channel_mult_noise 2, residual encoder, filter [1,3,3,1]) with all flags.
* `DhariwalUNet`: ADM as reimplemented by EDM.

Submodules are named after the torch modules; the entries of torch's `enc`/`dec` ModuleDicts
become `enc_<key>` / `dec_<key>` (e.g. torch `model.enc.32x32_conv` -> Flax `enc_32x32_conv`),
created in the ModuleDict's order, which the forward pass follows.
Call: `net.apply({'params': p}, x, noise_labels, class_labels, augment_labels=None, train=False)`
with x (B, H, W, C); dropout/label dropout draw from the 'dropout' rng when `train`.
`compute_dtype` ('float32', 'bfloat16', 'float16'): activations, convolutions and matmuls in that
dtype (float32 accumulation, normalisation and softmax; float32 parameters and noise/label
embedding); the output has the input's dtype. `attention_impl` ('auto', 'xla', 'cudnn'): see
`dg_jax.models.attention` (cuDNN's fused attention on GPUs in 16 bits under 'auto').
"""
from __future__ import annotations

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np

from dg_jax.models.edm_layers import (
    Conv2d,
    FourierEmbedding,
    GroupNorm,
    Init,
    Linear,
    PositionalEmbedding,
    UNetBlock,
)
from dg_jax.models.precision import compute_dtype as _dtype


def _label_dropout(module: nn.Module, labels, rate: float, train: bool):
    """Zeroes whole label rows with probability `rate` in training (classifier-free guidance)."""
    if not (train and rate):
        return labels
    keep = jax.random.uniform(module.make_rng("dropout"), (labels.shape[0], 1)) >= rate
    return labels * keep.astype(labels.dtype)


def _song_layout(img_resolution, in_channels, out_channels, model_channels, channel_mult,
                 num_blocks, attn_resolutions, encoder_type, decoder_type):
    """The ordered (kind, key, kwargs) entries of SongUNet's enc and dec ModuleDicts."""
    enc, dec = [], []
    cout = caux = in_channels
    for level, mult in enumerate(channel_mult):
        res = img_resolution >> level
        if level == 0:
            cin, cout = cout, model_channels
            enc.append(("conv", f"{res}x{res}_conv", dict(in_channels=cin, out_channels=cout, kernel=3)))
        else:
            enc.append(("block", f"{res}x{res}_down", dict(in_channels=cout, out_channels=cout, down=True)))
            if encoder_type == "skip":
                enc.append(("aux_down", f"{res}x{res}_aux_down",
                            dict(in_channels=caux, out_channels=caux, kernel=0, down=True)))
                enc.append(("aux_skip", f"{res}x{res}_aux_skip",
                            dict(in_channels=caux, out_channels=cout, kernel=1)))
            if encoder_type == "residual":
                enc.append(("aux_residual", f"{res}x{res}_aux_residual",
                            dict(in_channels=caux, out_channels=cout, kernel=3, down=True,
                                 fused_resample=True)))
                caux = cout
        for idx in range(num_blocks):
            cin, cout = cout, model_channels * mult
            enc.append(("block", f"{res}x{res}_block{idx}",
                        dict(in_channels=cin, out_channels=cout, attention=res in attn_resolutions)))
    skips = [kw["out_channels"] for kind, _, kw in enc if not kind.startswith("aux")]
    for level, mult in reversed(list(enumerate(channel_mult))):
        res = img_resolution >> level
        if level == len(channel_mult) - 1:
            dec.append(("block", f"{res}x{res}_in0",
                        dict(in_channels=cout, out_channels=cout, attention=True)))
            dec.append(("block", f"{res}x{res}_in1", dict(in_channels=cout, out_channels=cout)))
        else:
            dec.append(("block", f"{res}x{res}_up", dict(in_channels=cout, out_channels=cout, up=True)))
        for idx in range(num_blocks + 1):
            cin, cout = cout + skips.pop(), model_channels * mult
            attn = idx == num_blocks and res in attn_resolutions
            dec.append(("block", f"{res}x{res}_block{idx}",
                        dict(in_channels=cin, out_channels=cout, attention=attn)))
        if decoder_type == "skip" or level == 0:
            if decoder_type == "skip" and level < len(channel_mult) - 1:
                dec.append(("aux_up", f"{res}x{res}_aux_up",
                            dict(in_channels=out_channels, out_channels=out_channels, kernel=0, up=True)))
            dec.append(("aux_norm", f"{res}x{res}_aux_norm", dict(num_channels=cout)))
            dec.append(("aux_conv", f"{res}x{res}_aux_conv",
                        dict(in_channels=cout, out_channels=out_channels, kernel=3)))
    return enc, dec


class _EDMUNet(nn.Module):
    """The constructor fields (EDM's kwargs) both U-Nets share, with their shared defaults."""
    img_resolution: int
    in_channels: int
    out_channels: int
    label_dim: int = 0
    augment_dim: int = 0
    channel_mult_emb: int = 4
    dropout: float = 0.10
    label_dropout: float = 0.0
    compute_dtype: str = "float32"
    attention_impl: str = "auto"  # 'auto' (cuDNN fused in 16 bits on GPUs), 'xla', 'cudnn'


class SongUNet(_EDMUNet):
    """EDM's reimplementation of DDPM++ / NCSN++ (Song et al. 2021); fields as EDM's kwargs."""
    model_channels: int = 128
    channel_mult: tuple = (1, 2, 2, 2)
    num_blocks: int = 4
    attn_resolutions: tuple = (16,)
    embedding_type: str = "positional"
    channel_mult_noise: int = 1
    encoder_type: str = "standard"
    decoder_type: str = "standard"
    resample_filter: tuple = (1, 1)

    @nn.compact
    def __call__(self, x, noise_labels, class_labels=None, augment_labels=None, train: bool = False):
        assert self.embedding_type in ("fourier", "positional")
        assert self.encoder_type in ("standard", "skip", "residual")
        assert self.decoder_type in ("standard", "skip")
        emb_channels = self.model_channels * self.channel_mult_emb
        noise_channels = self.model_channels * self.channel_mult_noise
        init = Init("xavier_uniform")
        init_zero = Init("xavier_uniform", weight=1e-5)
        init_attn = Init("xavier_uniform", weight=float(np.sqrt(0.2)))
        rf = tuple(self.resample_filter)
        block_kwargs = dict(emb_channels=emb_channels, num_heads=1, dropout=self.dropout,
                            skip_scale=float(np.sqrt(0.5)), eps=1e-6, resample_filter=rf,
                            resample_proj=True, adaptive_scale=False, init=init,
                            init_zero=init_zero, init_attn=init_attn,
                            attention_impl=self.attention_impl)

        # Mapping: noise embedding with cos/sin swapped to [sin, cos], + labels, + augment.
        if self.embedding_type == "positional":
            emb = PositionalEmbedding(noise_channels, endpoint=True, name="map_noise")(noise_labels)
        else:
            emb = FourierEmbedding(noise_channels, name="map_noise")(noise_labels)
        emb = emb.reshape(emb.shape[0], 2, -1)[:, ::-1].reshape(emb.shape)
        if self.label_dim:
            tmp = _label_dropout(self, class_labels, self.label_dropout, train)
            emb = emb + Linear(self.label_dim, noise_channels, init=init, name="map_label")(
                tmp * np.sqrt(self.label_dim))
        if self.augment_dim and augment_labels is not None:
            emb = emb + Linear(self.augment_dim, noise_channels, bias=False, init=init,
                               name="map_augment")(augment_labels)
        emb = nn.silu(Linear(noise_channels, emb_channels, init=init, name="map_layer0")(emb))
        emb = nn.silu(Linear(emb_channels, emb_channels, init=init, name="map_layer1")(emb))
        out_dtype, dt = x.dtype, _dtype(self.compute_dtype, "SongUNet.compute_dtype")
        x, emb = x.astype(dt), emb.astype(dt)

        enc, dec = _song_layout(self.img_resolution, self.in_channels, self.out_channels,
                                self.model_channels, tuple(self.channel_mult), self.num_blocks,
                                tuple(self.attn_resolutions), self.encoder_type, self.decoder_type)
        skips, aux = [], x
        for kind, key, kw in enc:
            name = f"enc_{key}"
            if kind == "aux_down":
                aux = Conv2d(**kw, resample_filter=rf, name=name)(aux)
            elif kind == "aux_skip":
                x = skips[-1] = x + Conv2d(**kw, init=init, name=name)(aux)
            elif kind == "aux_residual":
                res_conv = Conv2d(**kw, resample_filter=rf, init=init, name=name)
                x = skips[-1] = aux = (x + res_conv(aux)) / np.sqrt(2)
            elif kind == "conv":
                x = Conv2d(**kw, init=init, name=name)(x)
                skips.append(x)
            else:
                x = UNetBlock(**kw, **block_kwargs, name=name)(x, emb, train)
                skips.append(x)

        aux = tmp = None
        for kind, key, kw in dec:
            name = f"dec_{key}"
            if kind == "aux_up":
                aux = Conv2d(**kw, resample_filter=rf, name=name)(aux)
            elif kind == "aux_norm":
                tmp = GroupNorm(**kw, eps=1e-6, name=name)(x)
            elif kind == "aux_conv":
                tmp = Conv2d(**kw, init=init_zero, name=name)(nn.silu(tmp))
                aux = tmp if aux is None else tmp + aux
            else:
                if x.shape[-1] != kw["in_channels"]:
                    x = jnp.concatenate([x, skips.pop()], axis=-1)
                x = UNetBlock(**kw, **block_kwargs, name=name)(x, emb, train)
        return aux.astype(out_dtype)


class DhariwalUNet(_EDMUNet):
    """EDM's reimplementation of ADM (Dhariwal & Nichol 2021); fields as EDM's kwargs."""
    model_channels: int = 192
    channel_mult: tuple = (1, 2, 3, 4)
    num_blocks: int = 3
    attn_resolutions: tuple = (32, 16, 8)

    @nn.compact
    def __call__(self, x, noise_labels, class_labels=None, augment_labels=None, train: bool = False):
        mc = self.model_channels
        emb_channels = mc * self.channel_mult_emb
        s3 = float(np.sqrt(1 / 3))
        init = Init("kaiming_uniform", weight=s3, bias=s3)
        init_zero = Init("kaiming_uniform", weight=0.0, bias=0.0)
        block_kwargs = dict(emb_channels=emb_channels, channels_per_head=64, dropout=self.dropout,
                            init=init, init_zero=init_zero, attention_impl=self.attention_impl)

        # Mapping: positional embedding (no swap), SiLU MLP, labels added before the last SiLU.
        emb = PositionalEmbedding(mc, name="map_noise")(noise_labels)
        if self.augment_dim and augment_labels is not None:
            emb = emb + Linear(self.augment_dim, mc, bias=False, init=init_zero,
                               name="map_augment")(augment_labels)
        emb = nn.silu(Linear(mc, emb_channels, init=init, name="map_layer0")(emb))
        emb = Linear(emb_channels, emb_channels, init=init, name="map_layer1")(emb)
        if self.label_dim:
            tmp = _label_dropout(self, class_labels, self.label_dropout, train)
            emb = emb + Linear(self.label_dim, emb_channels, bias=False,
                               init=Init("kaiming_normal", weight=float(np.sqrt(self.label_dim))),
                               name="map_label")(tmp)
        emb = nn.silu(emb)
        out_dtype, dt = x.dtype, _dtype(self.compute_dtype, "DhariwalUNet.compute_dtype")
        x, emb = x.astype(dt), emb.astype(dt)

        attn = tuple(self.attn_resolutions)
        skips, cout = [], self.in_channels
        for level, mult in enumerate(self.channel_mult):
            res = self.img_resolution >> level
            if level == 0:
                cin, cout = cout, mc * mult
                x = Conv2d(cin, cout, 3, init=init, name=f"enc_{res}x{res}_conv")(x)
            else:
                x = UNetBlock(cout, cout, down=True, **block_kwargs,
                              name=f"enc_{res}x{res}_down")(x, emb, train)
            skips.append(x)
            for idx in range(self.num_blocks):
                cin, cout = cout, mc * mult
                x = UNetBlock(cin, cout, attention=res in attn, **block_kwargs,
                              name=f"enc_{res}x{res}_block{idx}")(x, emb, train)
                skips.append(x)

        for level, mult in reversed(list(enumerate(self.channel_mult))):
            res = self.img_resolution >> level
            if level == len(self.channel_mult) - 1:
                for key, att in (("in0", True), ("in1", False)):
                    x = UNetBlock(cout, cout, attention=att, **block_kwargs,
                                  name=f"dec_{res}x{res}_{key}")(x, emb, train)
            else:
                x = UNetBlock(cout, cout, up=True, **block_kwargs, name=f"dec_{res}x{res}_up")(x, emb, train)
            for idx in range(self.num_blocks + 1):
                cin, cout = cout + skips[-1].shape[-1], mc * mult
                if x.shape[-1] != cin:
                    x = jnp.concatenate([x, skips.pop()], axis=-1)
                x = UNetBlock(cin, cout, attention=res in attn, **block_kwargs,
                              name=f"dec_{res}x{res}_block{idx}")(x, emb, train)
        x = GroupNorm(cout, name="out_norm")(x)
        x = Conv2d(cout, self.out_channels, 3, init=init_zero, name="out_conv")(nn.silu(x))
        return x.astype(out_dtype)


UNET_CLASSES = {"SongUNet": SongUNet, "DhariwalUNet": DhariwalUNet}
