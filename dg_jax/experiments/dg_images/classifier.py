"""The classifier stage of the image DG pipeline: the time-conditioned classifier DG's
discriminator is built on, trained here on noisy real images (disc.classifier_train).

DG starts its discriminator from a pretrained noisy ADM classifier (the one of classifier
guidance, on DG's continuous VP time) and trains only a head on its frozen middle-block
features. Where no such classifier exists (a new data set), this stage trains one with
`dg_jax.train.noisy_classifier.vp_noisy_classifier_loss` on the labelled real images (cross
entropy at tau drawn by disc.classifier_train.time_sampling), then the disc stage freezes it.
"""
from __future__ import annotations

from dg_jax.experiments.dg_images import models as M
from dg_jax.experiments.kit.setup import Run
from dg_jax.parallel import process_slice
from dg_jax.train.noisy_classifier import make_vp_noisy_classifier_step
from dg_jax.train.state import TrainState, make_optimizer

STAGE = "classifier"


def classifier_stage(run: Run, real, process):
    """(module, params) of the trained classifier (resumed from checkpoints/classifier)."""
    config = run.config
    c = config.disc.classifier_train
    module, params = M.build_dg_classifier(config)
    images, labels = real
    tx = make_optimizer(c.optimizer, c.learning_rate, field="disc.classifier_train.optimizer")
    state = TrainState.create(params, tx, run.streams.key("train", STAGE))

    def logits_fn(p, x, tau, key):
        del key  # the classifier has no dropout here
        return module.apply(p, x, tau)

    step = make_vp_noisy_classifier_step(logits_fn, tx, process=process,
                                         time_sampling=c.time_sampling, t_min=c.t_min)

    def batch_fn(i):
        idx = run.streams.numpy("data", STAGE, i).integers(0, len(images), c.batch_size)
        idx = idx[process_slice(c.batch_size)]  # this process's rows of the global batch
        return {"images": images[idx], "labels": labels[idx]}

    state = run.fit(STAGE, state, step, batch_fn, num_steps=c.num_steps,
                    checkpoint_every=c.checkpoint_every, log_every=c.log_every,
                    steps_field="disc.classifier_train.num_steps")
    return module, state.params
