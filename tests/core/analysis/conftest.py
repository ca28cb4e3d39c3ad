"""Three well-separated Gaussian blobs in 10-D: the known clusters for clustering and UMAP."""

import numpy as np
import pytest


@pytest.fixture(scope="session")
def blobs():
    """(z, truth): 3 × 300 latents, centres 20 apart, unit spread."""
    rng = np.random.default_rng(0)
    centres = rng.normal(size=(3, 10))
    centres *= 20 / np.linalg.norm(centres[0] - centres[1])
    truth = np.repeat(np.arange(3), 300)
    return centres[truth] + rng.normal(size=(len(truth), 10)), truth
