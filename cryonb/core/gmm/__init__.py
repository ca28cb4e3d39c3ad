"""Gaussian-mixture models of maps (e2gmm, Chen & Ludtke, Nature Methods 2021).

:class:`GaussianMixture` (render, analytic transform and slices), :func:`fit_mixture` (a neutral
model fitted to a map, progressively), :class:`GaussianDecoder` (a latent moves and re-weights the
Gaussians; the interface of cryonb's Fourier decoder), :class:`GradientEncoder` (latents from loss
gradients at the neutral model) and the losses of :mod:`cryonb.core.gmm.loss`.
"""

from .config import decoder_from_config, latents_from_config
from .decoder import MODES, GaussianDecoder
from .encoder import GradientEncoder
from .features import FeatureScaler, gradient_features
from .fit import FitResult, FitStage, fit_mixture
from .loss import frc, frc_loss, ring_index
from .mixture import GaussianMixture, mixture_transform, render
from .phantom import MovingDomain, moving_domain

__all__ = ["MODES", "FeatureScaler", "FitResult", "FitStage", "GaussianDecoder", "GaussianMixture", "GradientEncoder",
           "MovingDomain", "decoder_from_config", "fit_mixture", "frc", "frc_loss", "gradient_features", "latents_from_config", "mixture_transform", "moving_domain",
           "render", "ring_index"]
