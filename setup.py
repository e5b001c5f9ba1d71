"""dg_jax: Discriminator Guidance, Diffusion-GAN and friends in JAX/Flax."""
from setuptools import find_packages, setup

setup(
    name="dg_jax",
    version="0.1.0",
    description="Discriminator Guidance for score-based diffusion models in JAX/Flax",
    python_requires=">=3.10",
    packages=find_packages(include=["dg_jax", "dg_jax.*", "launch", "launch.*", "configs"]),
    install_requires=[
        "jax>=0.4.35",
        "flax>=0.10",
        "optax",
        "orbax-checkpoint",
        "ml-collections",
        "chex",
        "clu",
        "tensorflow-datasets",
        "numpy",
        "scipy",
        "matplotlib",
        "scikit-learn",
        "absl-py",
    ],
    extras_require={
        # TensorFlow-only features: TensorBoard summaries (clu.metric_writers) and tfds.load.
        "tf": ["tensorflow-cpu"],
        "test": ["pytest", "pytest-xdist"],
    },
)
