"""The 2-D Discriminator Guidance experiment, end to end (configs/toy2d.py).

Stages, each resumable from the workdir:
  1. generate: samples of the wrong model (EDM sampler on the exact score of p_g), sharded over
     the mesh, saved to fake_samples.npz;
  2. train: the discriminator on diffused p_r samples vs diffused generated samples (orbax
     checkpoints under checkpoints/disc, resumed automatically);
  3. sample: four samplers from the same latents — wrong score, wrong score + DG, wrong score +
     the exact correction grad log(p_r^t / p_g^t), and the true score;
  4. evaluate: energy distance to fresh p_r samples, NLL under p_r, mode-mass TV; results.json
     and toy2d.png.
"""
from __future__ import annotations

import pathlib
import time

import jax
import jax.numpy as jnp
import ml_collections
import numpy as np

from dg_jax import rng
from dg_jax.checkpoint import write_json
from dg_jax.data import shards
from dg_jax.diffusion.processes import make_process, sigma_to_vp
from dg_jax.errors import ConfigError, check_finite, check_finite_array
from dg_jax.eval.distances import energy_distance
from dg_jax.experiments.kit.setup import Run, setup_run
from dg_jax.guidance.discriminator import (
    dg_correction_fn,
    exact_log_ratio_correction,
    guide_denoiser,
    validate_window,
)
from dg_jax.metric_writers import log
from dg_jax.models.mlp import TimeMLP
from dg_jax.parallel import check_divisible, data_sharding, gather, process_slice
from dg_jax.samplers.edm import edm_sigma_steps, get_sampler
from dg_jax.toy.gmm import GaussianMixture, log_ratio
from dg_jax.train.discriminator import TIME_SAMPLINGS, make_train_step
from dg_jax.train.state import TrainState, make_optimizer
from dg_jax.validate import check_positive
from dg_jax.workdir import Stage

ROWS = ("wrong_score", "dg", "exact_correction", "true_score")
# fields that may change between runs of one workdir without redoing anything
RESUME_SAFE_FIELDS = ("disc.log_every", "disc.checkpoint_every", "tensorboard")
STAGES = (
    Stage("generate", fields=("seed", "data", "sampler", "generate"),
          outputs=("fake_samples.npz", "fake_samples.npz.sha256")),
    Stage("train", fields=("seed", "data", "disc"), after=("generate",),
          trains="disc.num_steps", outputs=("checkpoints/disc",)),
    Stage("evaluate", fields=("seed", "data", "sampler", "dg", "eval"), after=("train",),
          outputs=("results.json", "toy2d.png")),
)


def validate(config: ml_collections.ConfigDict, mesh) -> None:
    """Checks the fields a typo would break, naming each offending field."""
    get_sampler(config.sampler.name)
    make_process(config.disc.process)
    if config.disc.process not in ("vp", "vp_cosine"):
        raise ValueError(f"disc.process={config.disc.process!r}: DG's discriminator is trained on "
                         "a VP process ('vp' or 'vp_cosine')")
    if config.disc.time_sampling not in TIME_SAMPLINGS:
        raise ValueError(f"unknown time sampling {config.disc.time_sampling!r} (field "
                         f"'disc.time_sampling'); choose one of {list(TIME_SAMPLINGS)}")
    if config.disc.time_sampling == "importance" and config.disc.process != "vp":
        raise ValueError("disc.time_sampling='importance' is defined on the linear VP process: "
                         "set disc.process='vp' or disc.time_sampling='uniform'")
    validate_window(config.dg.time_min, config.dg.time_max)
    check_positive(config, ("generate.num_samples", "disc.num_steps", "disc.width", "disc.depth",
                            "disc.log_every", "disc.checkpoint_every", "sampler.num_steps",
                            "eval.num_samples"))
    check_divisible(2 * config.disc.batch_size, mesh, "disc.batch_size (x2: real and fake)")
    check_divisible(config.generate.batch_size, mesh, "generate.batch_size")
    check_divisible(config.eval.batch_size, mesh, "eval.batch_size")
    if not config.disc.learning_rate > 0:
        raise ConfigError(f"disc.learning_rate={config.disc.learning_rate} must be positive")
    mixtures(config)  # weights that do not sum to 1 are named before any work


def mixtures(config):
    d = config.data
    real = GaussianMixture.create(d.real_means, d.real_stds, d.real_weights)
    wrong = GaussianMixture.create(d.wrong_means, d.wrong_stds, d.wrong_weights)
    return real, wrong


def build_discriminator(config):
    c = config.disc
    model = TimeMLP(width=c.width, depth=c.depth, time_embed_dim=c.time_embed_dim)
    process = make_process(c.process)

    def logit_fn(params, x_vp, tau, labels=None):
        return model.apply(params, x_vp, tau)

    return model, process, logit_fn


def sample_in_batches(sample_fn, key, num: int, batch: int, dim: int, mesh):
    """Draws `num` samples in global batches of `batch` latents sharded over the mesh; the
    latents of batch i come from fold_in(key, i), so results do not depend on the mesh."""
    out = []
    sharding = data_sharding(mesh)
    for i in range((num + batch - 1) // batch):
        latents = jax.random.normal(jax.random.fold_in(key, i), (batch, dim))
        latents = jax.device_put(latents, sharding)
        out.append(gather(sample_fn(latents)))
    return np.concatenate(out)[:num]


def make_samplers(config, real, wrong, logit_fn, process, disc_params):
    """The four rows' samplers: jitted functions of the latents (and the trajectory)."""
    s = config.sampler
    sigmas = edm_sigma_steps(s.num_steps, s.sigma_min, s.sigma_max, s.rho)
    sampler = get_sampler(s.name)
    corr_dg = dg_correction_fn(lambda x, t, y: logit_fn(disc_params, x, t, y), process=process,
                               time_min=config.dg.time_min, time_max=config.dg.time_max,
                               clip_probability=config.dg.clip_probability)
    corr_exact = exact_log_ratio_correction(log_ratio(real, wrong))
    dg_denoise = guide_denoiser(wrong.denoise, corr_dg, config.dg.weight)
    exact_denoise = guide_denoiser(wrong.denoise, corr_exact, 1.0)
    denoisers = {"wrong_score": wrong.denoise, "dg": dg_denoise,
                 "exact_correction": exact_denoise, "true_score": real.denoise}
    second = {name: fn for name, fn in denoisers.items()}
    if not config.dg.second_order:
        second["dg"] = wrong.denoise
    kwargs = dict(S_churn=s.S_churn, S_min=s.S_min, S_max=s.S_max, S_noise=s.S_noise)

    def build(name, trajectory):
        def run(latents, rng=None):
            return sampler(denoisers[name], latents, sigmas, rng=rng,
                           second_order_denoise_fn=second[name],
                           return_trajectory=trajectory, **kwargs)
        return jax.jit(run)

    return {name: build(name, False) for name in ROWS}, {name: build(name, True) for name in ROWS}, sigmas


def generate_fake(config, wrong_sampler, mesh, path: pathlib.Path, reuse: bool):
    if reuse:
        log(f"[generate] reusing {path}")
        return shards.load_npz(path)["samples"]
    t0 = time.perf_counter()
    key = rng.key(config.seed, "generate")
    samples = sample_in_batches(wrong_sampler, key, config.generate.num_samples,
                                config.generate.batch_size, 2, mesh)
    check_finite_array(samples, "generate", "samples of the wrong model")
    if jax.process_index() == 0:
        shards.save_npz(path, samples=samples)
    log(f"[generate] {len(samples)} samples of the wrong model in {time.perf_counter() - t0:.1f}s")
    return samples


def train_discriminator(run: Run, real: GaussianMixture, fake: np.ndarray, disc):
    model, process, logit_fn = disc
    c = run.config.disc
    params = model.init(run.streams.key("init", "disc"), jnp.zeros((1, 2)), jnp.zeros((1,)))
    tx = make_optimizer(c.optimizer, c.learning_rate, schedule=c.get("lr_schedule", "constant"),
                        decay_steps=c.num_steps, field="disc.optimizer")
    state = TrainState.create(params, tx, run.streams.key("train", "disc"))
    step_fn = make_train_step(logit_fn, tx, process=process, time_sampling=c.time_sampling,
                              t_min=c.t_min)
    rows = process_slice(c.batch_size)
    real_key = run.streams.key("data", "real")

    def batch_fn(step):
        idx = run.streams.numpy("data", "fake", step).integers(0, len(fake), c.batch_size)[rows]
        real_x = np.asarray(real.sample(jax.random.fold_in(real_key, step), c.batch_size))[rows]
        return {"real": real_x, "fake": fake[idx]}

    state = run.fit("disc", state, step_fn, batch_fn, num_steps=c.num_steps,
                    checkpoint_every=c.checkpoint_every, log_every=c.log_every,
                    steps_field="disc.num_steps")
    return state.params


def mode_mass_tv(real: GaussianMixture, x) -> float:
    counts = np.bincount(np.asarray(real.assign(jnp.asarray(x))), minlength=len(real.weights))
    return 0.5 * float(np.abs(counts / counts.sum() - np.asarray(real.weights)).sum())


def evaluate_rows(samples: dict, real: GaussianMixture, reference: np.ndarray) -> dict:
    rows = {}
    for name, x in samples.items():
        rows[name] = {
            "energy_distance": energy_distance(x, reference),
            "nll": float(-jnp.mean(real.log_prob(jnp.asarray(x)))),
            "mode_mass_tv": mode_mass_tv(real, x),
        }
        log(f"[eval] {name:>16}: " + " ".join(f"{k}={v:.4f}" for k, v in rows[name].items()))
    return rows


def gap_closed(rows, name):
    ed = {k: v["energy_distance"] for k, v in rows.items()}
    return (ed["wrong_score"] - ed[name]) / (ed["wrong_score"] - ed["true_score"])


def run(config: ml_collections.ConfigDict, workdir: str, source: str = "") -> dict:
    r = setup_run(config, workdir, "toy2d", STAGES, validate=validate,
                  ignore=RESUME_SAFE_FIELDS, source=source)
    workdir, mesh, wd = r.workdir, r.mesh, r.wd
    wd.open()
    real, wrong = mixtures(config)
    disc = build_discriminator(config)

    plain, _, _ = make_samplers(config, real, wrong, disc[2], disc[1], None)
    reuse = wd.is_done("generate")
    wd.start("generate")
    fake = generate_fake(config, plain["wrong_score"], mesh, workdir / "fake_samples.npz", reuse)
    wd.finish("generate")
    wd.start("train")
    disc_params = train_discriminator(r, real, fake, disc)
    wd.finish("train")

    wd.start("evaluate")
    samplers, traj_samplers, sigmas = make_samplers(config, real, wrong, disc[2], disc[1],
                                                    disc_params)
    key = r.streams.key("sample")  # the same latents for every row
    e = config.eval
    samples = {}
    for name in ROWS:
        t0 = time.perf_counter()
        samples[name] = sample_in_batches(samplers[name], key, e.num_samples, e.batch_size, 2, mesh)
        check_finite_array(samples[name], "sample", f"row {name!r}")
        log(f"[sample] {name}: {e.num_samples} samples in {time.perf_counter() - t0:.1f}s")
    reference = np.asarray(real.sample(r.streams.key("eval", "reference"),
                                       e.num_samples))
    rows = evaluate_rows(samples, real, reference)
    results = {"rows": rows, "gap_closed_dg": gap_closed(rows, "dg"),
               "gap_closed_exact": gap_closed(rows, "exact_correction"),
               "log_ratio_rmse": log_ratio_rmse(config, real, wrong, disc, disc_params)}
    check_finite(results, "evaluate")
    log(f"[eval] gap_closed_dg={results['gap_closed_dg']:.4f} "
        f"gap_closed_exact={results['gap_closed_exact']:.4f}")
    # every process runs the (sharded) trajectory samplers; process 0 writes the files
    traj = {name: gather(traj_samplers[name](jax.random.normal(key, (e.batch_size, 2)))[1])
            for name in ROWS}
    write_json(workdir / "results.json", results)
    if jax.process_index() == 0:
        # matplotlib only when plotting (plot.py imports it)
        from dg_jax.experiments.toy2d.plot import plot_toy2d  # noqa: PLC0415

        plot_toy2d(workdir / "toy2d.png", traj, sigmas, config, real,
                   log_ratio_pair(real, wrong, disc), disc, disc_params)
        log(f"[done] wrote {workdir / 'results.json'} and {workdir / 'toy2d.png'}")
    wd.finish("evaluate")
    return results


def log_ratio_pair(real, wrong, disc):
    """A jitted (disc_params, x, tau) -> (learned logit, exact log(p_r^tau / p_g^tau)) at
    data-space points x [N, 2] and one VP time tau (eager evaluation took seconds per call)."""
    _, process, logit_fn = disc
    exact_fn = log_ratio(real, wrong)

    @jax.jit
    def pair(disc_params, x, tau):
        tau_arr = jnp.full((x.shape[0],), tau, jnp.float32)
        sigma = process.sigma(tau_arr)
        x_vp, _, _ = sigma_to_vp(sigma, x, process)
        return logit_fn(disc_params, x_vp, tau_arr), exact_fn(x, sigma)

    return pair


def log_ratio_rmse(config, real, wrong, disc, disc_params) -> dict:
    """RMSE of the learned logit vs the exact log(p_r^tau / p_g^tau) on p_r samples, per tau."""
    _, process, _ = disc
    pair = log_ratio_pair(real, wrong, disc)
    out = {}
    x0 = real.sample(rng.key(config.seed, "eval", "log_ratio_points"), 4096)
    noise = jax.random.normal(rng.key(config.seed, "eval", "log_ratio_noise"), x0.shape)
    for tau in config.eval.plot_taus:
        sigma = process.sigma(jnp.full((x0.shape[0],), tau))
        x = x0 + sigma[:, None] * noise
        learned, exact = pair(disc_params, x, jnp.float32(tau))
        out[f"tau={tau}"] = float(jnp.sqrt(jnp.mean((learned - exact) ** 2)))
    return out
