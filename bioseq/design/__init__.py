"""Dirichlet flow matching for DNA sequence design (Stark et al. 2024) and its baselines.

* :mod:`~bioseq.design.paths` -- the Dirichlet path with its exact vector field, the linear path;
* :mod:`~bioseq.design.denoisers` -- the dilated CNN, a per-position MLP, any bidirectional
  ``bioseq.models`` backbone, and the noisy classifier for guidance;
* :mod:`~bioseq.design.model` -- :class:`FlowModel` (``config.json`` + ``model.safetensors``);
* :mod:`~bioseq.design.sampler` -- ODE sampling, classifier-free and classifier guidance, decoding;
* :mod:`~bioseq.design.train` -- training loops (flow matching, noisy classifier, distillation), all
  with a cosine learning-rate decay to a floor and an EMA of the weights.

The CLI is ``bioseq design --model DIR --n 1000 [--class C --guidance 3] -o designs.fa``.
"""

from bioseq.design.denoisers import (
    BackboneDenoiser,
    DilatedCNN,
    MLPDenoiser,
    NoisyClassifier,
    build_denoiser,
)
from bioseq.design.model import FlowModel, load_module, save_module
from bioseq.design.paths import (
    DirichletPath,
    LinearPath,
    default_schedule,
    dirichlet_c,
    marginal_field,
    simplex_project,
)
from bioseq.design.sampler import Guidance, sample
from bioseq.design.train import (
    EMA,
    cosine_lr,
    distill,
    fit,
    teacher_pairs,
    train_flow,
    train_noisy_classifier,
)

__all__ = [
    "EMA", "BackboneDenoiser", "DilatedCNN", "DirichletPath", "FlowModel", "Guidance", "LinearPath", "MLPDenoiser",
    "NoisyClassifier", "build_denoiser", "cosine_lr", "default_schedule", "dirichlet_c", "distill", "fit", "load_module",
    "marginal_field", "sample", "save_module", "simplex_project", "teacher_pairs", "train_flow",
    "train_noisy_classifier",
]
