"""DiT-G++ end to end (configs/imagenet256_dit_dg.py): Discriminator Guidance on latent diffusion,
after DG_imagenet (`data_tool.py`, `train.py`, `sample.py`).

Stages (each resumable from the workdir; `config.stages` picks a subset):
  encode    the real images (config.data) through the SD VAE's encoder, each randomly flipped
            left-right (data.flip) and a posterior sample taken, times the scaling factor, as
            `data_tool.py` does -> workdir/latents/real.npz;
  generate  generate.num_samples DiT samples (latents, not decoded) with the same CFG as the
            sample stage and no DG -> workdir/latents/fake/ (one file per generate.shard_size);
  disc      DG's discriminator on VP-diffused real vs generated latents: the frozen latent ADM
            classifier (disc.classifier, 4 input channels) + a trainable class-conditional head,
            BCE, importance-sampled diffusion time (`train.py`) -> workdir/checkpoints/disc;
            with disc.source='converted' DG_imagenet's `discriminator_7.pt` (no encode, generate
            or training);
  sample    the same latents, labels and per-step noise with and without DG (DiT-G++: two-stage
            CFG `forward_with_dg`, DG's cond_fn while t > dg.time_min), decoded by the VAE ->
            samples_nodg/, samples_dg/ (uint8 image shards);
  evaluate  FID / IS / precision-recall / KID of both sets on the project's Inception (or
            eval.ref_stats, e.g. ADM's VIRTUAL_imagenet256_labeled.npz) and grid.png, as the
            image DG pipeline's evaluate stage.
Every network runs sharded over the mesh (batch axis); parameters are explicit jit arguments.
"""
from __future__ import annotations

import pathlib

import jax
import numpy as np

from dg_jax.data import shards
from dg_jax.data.images import load_from_config
from dg_jax.diffusion.iddpm import create_dit_diffusion
from dg_jax.diffusion.processes import VP
from dg_jax.errors import ConfigError, check_finite_array, read_json
from dg_jax.experiments.dit_dg.models import SOURCES, build_dit, build_vae, latent_view
from dg_jax.experiments.kit.discriminators import (
    build_discriminator,
    data_rng,
    load_pretrained_discriminator,
)
from dg_jax.experiments.kit.image_eval import FEATURES, evaluate, validate_shards_and_eval
from dg_jax.experiments.kit.sample_shards import latents_and_labels, write_sample_shards
from dg_jax.experiments.kit.setup import Run, setup_run
from dg_jax.metric_writers import Progress, log
from dg_jax.models.sd_vae import encode_to_latents
from dg_jax.parallel import check_divisible, data_sharding, gather, process_slice, put_global, replicate, sync
from dg_jax.samplers.dit_gpp import make_dit_gpp_sampler
from dg_jax.train.discriminator import TIME_SAMPLINGS, make_train_step
from dg_jax.train.state import TrainState, make_optimizer
from dg_jax.validate import check_choice, check_positive
from dg_jax.workdir import Stage

STAGES = ("encode", "generate", "disc", "sample", "evaluate")
RESUME_SAFE = ("stages", "tensorboard", "disc.log_every", "disc.checkpoint_every",
               "eval.batch_size", "encode.batch_size")
NUMERICS = ("dit.compute_dtype", "dit.attention_impl", "vae.compute_dtype",
            "vae.attention_impl", "disc.compute_dtype", "disc.attention_impl")
DG_PROCESS = VP(0.1, 20.0)  # DG_imagenet's vpsde: the discriminator's diffusion time
REAL_LATENTS = "latents/real.npz"
FAKE_LATENTS = "latents/fake"
DATA_SOURCES = ("npz", "folder", "tfds", "random")
# the networks the latents depend on (a change redoes every stage that reads latents)
VAE_FIELDS = ("vae.source", "vae.checkpoint", "vae.config", "data.resolution")
DIT_FIELDS = ("dit.source", "dit.checkpoint", "dit.arch", "diffusion", "cfg", "data.num_classes")


def workdir_stages(config) -> tuple[Stage, ...]:
    out = []
    if config.disc.source == "train":
        out += [Stage("encode", fields=("seed", "data") + VAE_FIELDS,
                      provenance=("vae.compute_dtype", "vae.attention_impl"),
                      outputs=(REAL_LATENTS,)),
                Stage("generate", fields=("seed", "generate") + VAE_FIELDS + DIT_FIELDS,
                      provenance=NUMERICS, outputs=(FAKE_LATENTS,)),
                Stage("disc", fields=("seed", "disc"), after=("encode", "generate"),
                      trains="disc.num_steps", outputs=("checkpoints/disc",))]
    else:
        out.append(Stage("disc", fields=("disc.source", "disc.checkpoint", "disc.classifier",
                                         "disc.classifier_flags", "disc.head_flags",
                                         "disc.conditional")))
    out.append(Stage("sample", fields=("seed", "dg", "sample") + VAE_FIELDS + DIT_FIELDS
                     + NUMERICS, after=("disc",), outputs=("samples_nodg", "samples_dg")))
    out.append(Stage("evaluate", fields=("seed", "eval", "data"), after=("sample",),
                     outputs=("results.json", "grid.png")))
    return tuple(out)


def validate(config, mesh) -> None:
    """Every field a stage will use, checked before any work (errors name the field)."""
    d, c, e = config.data, config.disc, config.eval
    for stage in config.stages:
        check_choice(stage, STAGES, "stages")
    check_choice(d.source, DATA_SOURCES, "data.source")
    check_choice(config.vae.source, SOURCES, "vae.source")
    check_choice(config.dit.source, SOURCES, "dit.source")
    check_choice(c.source, ("train", "converted"), "disc.source")
    check_choice(e.features, FEATURES, "eval.features")
    check_positive(config, ("data.resolution", "data.num_classes", "sample.num_samples",
                            "sample.batch_size", "sample.shard_size", "eval.num_samples",
                            "eval.batch_size"))
    if c.kind != "adm":
        raise ConfigError(f"disc.kind={c.kind!r}: DiT-G++'s discriminator is the latent ADM "
                          "classifier + head (disc.kind='adm')")
    if not c.conditional:
        raise ConfigError("disc.conditional must be True: DiT-G++'s discriminator is "
                          "class-conditional (DG_imagenet's condition=True)")
    cfg = config.cfg
    for field in ("LT_cfg", "ST_cfg"):
        if not cfg[field] >= 0:
            raise ConfigError(f"cfg.{field}={cfg[field]} must be >= 0 (1 = no guidance)")
    if not 0 <= config.dg.time_min <= 999:
        raise ConfigError(f"dg.time_min={config.dg.time_min} must be a DDPM timestep in [0, 999]")
    if config.dg.scale < 0:
        raise ConfigError(f"dg.scale={config.dg.scale} must be >= 0")
    sections = ["sample"]
    if c.source == "train":
        check_positive(config, ("encode.batch_size", "generate.num_samples",
                                "generate.batch_size", "generate.shard_size", "disc.batch_size",
                                "disc.num_steps", "disc.log_every", "disc.checkpoint_every"))
        check_divisible(config.encode.batch_size, mesh, "encode.batch_size")
        check_divisible(config.generate.batch_size, mesh, "generate.batch_size")
        check_divisible(c.batch_size, mesh, "disc.batch_size")
        check_choice(c.time_sampling, TIME_SAMPLINGS, "disc.time_sampling")
        if not c.learning_rate > 0:
            raise ConfigError(f"disc.learning_rate={c.learning_rate} must be positive")
        sections.append("generate")
    check_divisible(config.sample.batch_size, mesh, "sample.batch_size")
    if e.path_samples:
        raise ConfigError("eval.path_samples must be 0 here (the log-ratio path plot is the "
                          "EDM / ADM pipelines')")
    validate_shards_and_eval(config, sections)


# ------------------------------------------------------------------------------------ networks
class Networks:
    """The VAE, the DiT and the discriminator with their parameters replicated on the mesh, and
    the jitted functions the stages call (parameters are arguments, never jit constants)."""

    def __init__(self, config, mesh):
        self.config = config
        self.vae, vae_vars = build_vae(config)
        self.latent = latent_view(config, self.vae)
        self.dit, dit_vars = build_dit(config, self.latent)
        self.disc = (load_pretrained_discriminator(self.latent) if config.disc.source ==
                     "converted" else build_discriminator(self.latent))
        self.vae_vars, self.dit_vars = replicate(vae_vars, mesh), replicate(dit_vars, mesh)
        self.diffusion = create_dit_diffusion(**config.diffusion.to_dict())

    def encode_fn(self):
        vae = self.vae
        return jax.jit(lambda v, x, key: encode_to_latents(vae, v, x, key))

    def sampler(self, disc_params=None, decode: bool = True):
        """jit(latents, labels, noise_key) -> DiT-G++ samples: images in [-1, 1] (decode) or
        latents; DG with `disc_params` and dg.scale > 0, else CFG alone."""
        c, g = self.config.cfg, self.config.dg
        fn = make_dit_gpp_sampler(
            self.diffusion, self.dit, vae=self.vae if decode else None,
            logit_fn=None if disc_params is None else self.disc.logit, dg_scale=g.scale,
            time_min=g.time_min, LT_cfg=c.LT_cfg, ST_cfg=c.ST_cfg, branch_time=c.branch_time,
            guided_channels=None if c.guided_channels == 0 else int(c.guided_channels))
        return lambda lat, lab, key: fn(self.dit_vars, self.vae_vars, disc_params, lat, lab, key)


# -------------------------------------------------------------------------------------- stages
def encode_stage(run: Run, nets: Networks, real) -> None:
    """workdir/latents/real.npz: latents of every real image (randomly flipped when data.flip),
    posterior samples times the VAE's scaling factor (`data_tool.py`)."""
    config = run.config
    images, labels = real
    if labels is None:
        raise ConfigError(f"data.source={config.data.source!r} gave no labels; DiT-G++'s "
                          "class-conditional discriminator needs them")
    n, batch = len(images), int(config.encode.batch_size)
    flip = run.streams.numpy("data", "flip").random(n) < 0.5 if config.data.flip else None
    key = run.streams.key("data", "encode")  # the posterior samples
    fn = nets.encode_fn()
    sharding = data_sharding(run.mesh)
    progress = Progress("encode", n)
    log(f"[encode] {n} real images -> latents (the first batch includes compilation)")
    outs = []
    for j, start in enumerate(range(0, n, batch)):
        x = np.asarray(images[start:start + batch], np.float32)
        if flip is not None:
            x = np.where(flip[start:start + batch, None, None, None], x[:, :, ::-1], x)
        m = len(x)
        if m < batch:  # the last batch padded to the sharded batch size
            x = np.concatenate([x, np.zeros((batch - m,) + x.shape[1:], x.dtype)])
        outs.append((fn(nets.vae_vars, put_global(x, sharding), jax.random.fold_in(key, j)), m))
    latents = []
    for z, m in outs:
        latents.append(gather(z)[:m])
        progress.update(m)
    latents = np.concatenate(latents).astype(np.float32)
    check_finite_array(latents, "encode", "latents of the real images")
    if jax.process_index() == 0:
        shards.save_npz(run.workdir / REAL_LATENTS, latents=latents,
                        labels=np.asarray(labels, np.int32))
    sync("encode:written")


def _fake_chunk(workdir: pathlib.Path, k: int) -> pathlib.Path:
    return workdir / FAKE_LATENTS / f"latents_{k:06d}.npz"


def generate_stage(run: Run, nets: Networks) -> None:
    """workdir/latents/fake/latents_K.npz: DiT samples (latents) with CFG, no DG; a chunk of
    generate.shard_size per file, so an interrupted run resumes at the first missing chunk."""
    g = run.config.generate
    fn = nets.sampler(decode=False)
    key = run.streams.key("generate")
    sharding = data_sharding(run.mesh)
    num_chunks = -(-g.num_samples // g.shard_size)
    todo = [k for k in range(num_chunks) if not shards.file_is_intact(_fake_chunk(run.workdir, k))]
    progress = Progress("generate", sum(min(g.shard_size, g.num_samples - k * g.shard_size)
                                        for k in todo))
    if todo:
        log(f"[generate] {progress.total} DiT samples (latents) into "
            f"{run.workdir / FAKE_LATENTS} (the first batch includes compilation)")
    (run.workdir / FAKE_LATENTS).mkdir(parents=True, exist_ok=True)
    for k in todo:
        outs = []
        for j in range(g.shard_size // g.batch_size):
            lat, lab, noise_key = latents_and_labels(
                nets.latent, jax.random.fold_in(key, k * 100003 + j), g.batch_size)
            outs.append((fn(put_global(lat, sharding), put_global(lab, sharding), noise_key),
                         lab))
        n = min(g.shard_size, g.num_samples - k * g.shard_size)
        z = np.concatenate([gather(x) for x, _ in outs])[:n]
        labels = np.concatenate([np.asarray(lab) for _, lab in outs])[:n]
        check_finite_array(z, "generate", f"latents of chunk {k}")
        progress.update(n)
        if jax.process_index() == 0:
            shards.save_npz(_fake_chunk(run.workdir, k), latents=z.astype(np.float32),
                            labels=labels.astype(np.int32))
        sync(f"generate:chunk:{k}")


def read_fake(config, workdir: pathlib.Path):
    g = config.generate
    chunks = [shards.load_npz(_fake_chunk(workdir, k))
              for k in range(-(-g.num_samples // g.shard_size))]
    return (np.concatenate([c["latents"] for c in chunks]),
            np.concatenate([c["labels"] for c in chunks]))


def disc_stage(run: Run, nets: Networks):
    """DG's discriminator head on VP-diffused real vs generated latents (`train.py`: BCE,
    importance-sampled time with t_min 1e-5, Adam 3e-4, equal real and fake halves)."""
    config, c = run.config, run.config.disc
    data = shards.load_npz(run.workdir / REAL_LATENTS)
    real, real_labels = data["latents"], data["labels"]
    fake, fake_labels = read_fake(config, run.workdir)
    log(f"[disc] {len(real)} real and {len(fake)} generated latents {real.shape[1:]}")
    tx = make_optimizer(c.optimizer, c.learning_rate, field="disc.optimizer")
    state = TrainState.create(nets.disc.trainable, tx, run.streams.key("train", "disc"))
    step = make_train_step(nets.disc.logit, tx, process=DG_PROCESS,
                           time_sampling=c.time_sampling, t_min=c.t_min)

    def batch_fn(i):
        rng = run.streams.numpy("data", "disc", i)
        rows = process_slice(c.batch_size)  # this process's rows of the global batch
        ri = rng.integers(0, len(real), c.batch_size)[rows]
        fi = rng.integers(0, len(fake), c.batch_size)[rows]
        return {"real": real[ri], "fake": fake[fi], "real_labels": real_labels[ri],
                "fake_labels": fake_labels[fi]}

    state = run.fit("disc", state, step, batch_fn, num_steps=c.num_steps,
                    checkpoint_every=c.checkpoint_every, log_every=c.log_every,
                    steps_field="disc.num_steps")
    return state.params


# ------------------------------------------------------------------------------------------ run
def run(config, workdir: str, source: str = "") -> dict:
    r = setup_run(config, workdir, "dit_dg", workdir_stages(config), validate=validate,
                  ignore=RESUME_SAFE, source=source)
    workdir, mesh, wd = r.workdir, r.mesh, r.wd
    log(f"[setup] building the VAE ({config.vae.source}), the DiT ({config.dit.source}) and the "
        f"discriminator ({config.disc.source}) on {mesh.devices.size} device(s)")
    nets = Networks(config, mesh)
    lat = nets.latent.data
    log(f"[setup] latents {lat.resolution}x{lat.resolution}x{lat.channels}; "
        f"{nets.diffusion.num_timesteps} sampling steps")
    stages = list(config.stages)
    trains = config.disc.source == "train"
    needs_real = (trains and not wd.is_done("encode")) or not config.eval.get("ref_stats", "")
    real = (load_from_config(config.data, rng=data_rng(config), sources=DATA_SOURCES)
            if needs_real else None)
    if real is not None:
        log(f"[setup] {len(real[0])} real images from data.source={config.data.source!r}")
        if not config.eval.get("ref_stats", "") and len(real[0]) < config.eval.num_samples:
            raise ConfigError(f"the reference set has {len(real[0])} images, fewer than "
                              f"eval.num_samples={config.eval.num_samples} asked for")
    wd.open()
    disc_params = nets.disc.trainable
    if trains:
        if "encode" in stages and not wd.is_done("encode"):
            with wd.stage("encode"):
                encode_stage(r, nets, real)
        if "generate" in stages:
            with wd.stage("generate"):
                generate_stage(r, nets)
    if any(s in stages for s in ("disc", "sample", "evaluate")):
        with wd.stage("disc"):
            if trains:
                disc_params = disc_stage(r, nets)
    if "sample" in stages:
        with wd.stage("sample"):
            s = config.sample
            params = replicate(disc_params, mesh)
            for name, p in (("samples_nodg", None), ("samples_dg", params)):
                # the same latents, labels and per-step noise with and without DG
                write_sample_shards(nets.latent, workdir / name, nets.sampler(p),
                                    s.num_samples, s.batch_size, s.shard_size,
                                    r.streams.key("sample"), mesh, name)
    results = None
    if "evaluate" in stages:
        if wd.is_done("evaluate"):
            log(f"[evaluate] done earlier with these fields: {workdir / 'results.json'}")
            return read_json(workdir / "results.json", "results")
        with wd.stage("evaluate"):
            results = evaluate(config, workdir, real, None, None, None, None, None)
    return results
