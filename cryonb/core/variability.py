"""Focused variability with known poses: the map difference a selection of particles varies along most.

A state held by a few percent of the particles that lacks or adds one small subunit can hide in a
latent space, where a cluster mixes it with its neighbour. With the poses known, the particles of
that cluster can be asked directly which localised change of the map they differ by. The model
(a probabilistic PCA with one component, in the spirit of cryoSPARC's 3D variability analysis) is

    X_i = CTF_i · P_i (s_i · μ + z_i · V) + noise

with ``μ`` the selection's consensus map, ``V`` the component, ``z_i`` each particle's amount of it
and ``s_i`` a per-particle scale, a nuisance that keeps contrast and CTF-fitting differences out of
``V``. Alternating least squares, on the frequencies inside ``resolution``, each weighted by the
inverse noise power of its shell:

- given ``V``, each particle's ``(s_i, z_i)`` solve a 2 × 2 weighted least-squares system;
- given the ``z_i``, ``V`` is the back-projection of the residuals ``X_i − s_i · CTF_i · P_i μ``
  weighted by ``z_i`` (:class:`cryonb.core.reconstruct.FourierAccumulator`), low-passed, and
  focused: kept on the fraction ``focus`` of the voxels where it is largest (a soft mask), then
  scaled to unit norm.

Two things make a rare, small difference come out rather than the noise: the particles are split
into random halves and each half's coordinates are computed from the other half's component (a
particle's own noise, back-projected into ``V``, would otherwise pull it along), and the focus mask
leaves out the voxels where a noisy component carries only noise. On the benchmark suite's
assembly set (box 64, SNR 0.1) the 1,800 particles of its 70S-AB and 70S-ABC classes, 17 % of them
the rare 70S-ABC, separate from a random start with ROC AUC 0.97 (0.98 for the true difference map),
the halves' components agreeing at 0.87; with the component allowed anywhere (``focus=1``), AUC 0.74,
and the halves agree at 0.48 after 50 iterations.

An outlier (a particle with a bright contaminant on it) has a residual far above any other's; left
as it is, it draws the component, and the consensus, to itself. A particle whose residual power is
more than ``OUTLIER`` times the median particle's is taken to be that much noisier: it counts in
the consensus, the noise estimate and the component in inverse proportion (``trust``), and the
split into two groups is fitted without it (``outliers``). So is a coordinate far out along the
component from an image no noisier than the rest: a group of its own would win the fit (on the
suite's assembly set at SNR 0.01, one particle 16.6 standard deviations out was set apart from
1,349 in every start, the 200 rare particles among them left together with the rest; fitted
without it, 53 are set apart, 38 of them rare). Any group of fewer than ``FEW`` particles that a
two-group fit would make is left out of it (:attr:`VariabilityComponent.fitted`), each of its
particles then placed in the group it most probably belongs to.

Where the iteration settles hung on its random start: each half's own noise, largest in places of
its own, chose its mask and held it there (on the suite's assembly set at D = 64, one cluster's
agreement was 0.05 from one start and 0.68 and 0.70 from two others). For its first ``CROSSED``
iterations each half is therefore focused where the *other* half's component is largest, which
draws both onto a difference they share from any start; then each on its own again, since with
the masks crossed even images of noise alone agree (at 0.75), and ten iterations later that pull
has faded (noise alone: 0.02–0.05, for 1,300 images of box 32 at 12 Å). The start still matters,
less (which of two differences is found first): three are made, and the one whose coordinates fall
most clearly into two groups kept.

The halves are not independent, though: a particle's coordinate holds the noise along the
component it was measured with, and its residual times that coordinate returns the component in
expectation, so each half's component copies the other's in part, the more so the more particles
and the fewer the frequencies. Images of white noise with the benchmark suite's poses and CTFs
agree at 0.32–0.46 (500 images) and 0.69–0.72 (1,800) at 40 Å in a box of 128, at 0.61–0.83
(1,800) in a box of 64, and 2,000 images of box 32 at 24 Å at 0.94. Taking that share out makes
noise agree at 0.00–0.03 but loses the rare subunit of the module's test (and weighting each
pixel's residual by the coordinate the other pixels give found another direction); the agreement
is kept as a first filter, and the bimodality below is the test. The copy has a mean, too: a half's
component holds that half's mean residual, which the other half's residuals hold with the opposite
sign, so each half's coordinates are centred on their own mean (uncentred, 16 of 56 divisions of
the benchmark suite's runs were the random halves, 1.8–1.9 standard deviations apart).

Agreeing halves are not yet two states: those of a cluster of one state agree too (the cryonb
hinge simulated in one state: 0.53 and 0.83 in two simulations; 0.05 and 0.12 with each half's
residuals taken from its own half's consensus, as both halves' residuals had shared the one
consensus's noise). ``bimodality`` asks whether two groups describe the coordinates better than
one spread does (the Bayesian information criterion, per particle: about −0.02 for one
state, 0.04–0.7 where a state or junk sits apart); :func:`cryonb.core.analysis.divisions.divides`
needs both. Each coordinate is measured from one image, with a noise variance of its own (the plain
least squares', ``noise``; the iteration itself shrinks each coordinate by a prior precision
``PRIOR``): the groups are a mixture in which each particle is spread by its own noise besides its
group's spread (:class:`cryonb.core.analysis.noisy_mixture.NoisyMixture`), so the well-measured
particles place the groups and each particle goes to the one it most probably belongs to.

At SNR 0.01 none of this finds a subunit that 17 % of the particles lack (the suite's assembly set,
box 128: AUC 0.53, though the true difference separates them with 0.90): the iteration settles on
noise, and started at the truth it leaves it. The difference is, though, a region of the consensus
map that some particles hold and others do not. So the consensus's density inside balls around
``regions`` points spread over the molecule, each ball holding 3, 6 or 12 % of it, is scanned
(``_regions``): each region's coordinates are measured twice per particle, on two halves of its
image's pixels (a checkerboard of frequencies), and the region whose two measurements correlate most
over the particles is a candidate beside the iterated starts, if the correlation is ``SIGNIFICANCE``
standard errors or more. Unlike the halves' agreement this is a test: a region is drawn from the
consensus, not fitted to any particle's noise, so on noise the correlation is about N(0, 1/N) (the
best of 96 regions on 1,000 noise images: under 4 standard errors). On that set the best region,
at 7.2 standard errors, separates the pair with AUC 0.891, and the smaller of two groups along it
holds 77 % of the rare particles (but is only 49 % rare: the groups overlap); in the module's test the iteration from one start settles on noise (agreement 0.13) where the region is
found at 10 standard errors (AUC 0.97). The iterated component cannot be tested so: fitted to the
particles' noise, its coordinates' two pixel halves correlate on noise too.

Only the frequencies inside ``resolution`` are used, so the component is computed in a box that
samples them twice over (:func:`working_box`: 40 for a limit of 9 pixels, at 40 Å and 3 Å/px in a
box of 128, 34 times fewer voxels), from the same Fourier coefficients, and returned in the images' box.

    >>> component = variability_component(particles.subset(cluster), device="cuda")
    >>> component.coordinates                 # each particle's z
    >>> component.noise                       # the noise variance of each (the least squares')
    >>> labels = component.split()            # two groups along it, each particle's noise counted
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from functools import cached_property

import numpy as np
import torch
from tqdm.auto import tqdm

from .errors import InputError
from .fourier import fft3_center, fourier_crop, fourier_pad, ifft3_center, shell_index, soft_spherical_mask
from .projection import plane_coordinates, sample_volume
from .reconstruct import OVERSAMPLING, FourierAccumulator, image_batches, ordered_index_add
from .simulate import padded_transform

RESOLUTION = 30.0  # Å: the frequencies used (on the benchmark suite 30 Å found more of a rare state than 40 or 25 Å)
REGIONS = 32  # centres on the consensus around which candidate regions are drawn (0: none)
REGION_MASS = (0.03, 0.06, 0.12)  # each candidate region holds this share of the consensus's density
AGREEMENT = 0.5  # an iterated component's halves agree at this cosine or more: a first filter (noise alone agrees above 0.5 on thousands of images, and spreads as one group)
SIGNIFICANCE = 5.0  # a region's coordinates from two halves of the pixels correlate by this many standard errors (noise: under 4)
CROSSED = 10  # first iterations, each half focused where the other's component is largest: a start from the data
PRIOR = 1e-6  # the iteration's prior precision on each coordinate (in the images' units): a particle whose image shows the component little is shrunk towards 0
FEW = 10  # a group of fewer particles along a component is no state: the groups are fitted without it
OUTLIER = 4.0  # residual power, in median particles', beyond which a particle counts less (noise alone: < 3 in 10⁶ even on 13 pixels)


@dataclass
class VariabilityComponent:
    """The outcome of :func:`variability_component`: each particle's coordinate along the component
    (N,), the component and the consensus maps (D, D, D), one record per iteration, and how much each
    particle counted (N,; below 1 for outliers)."""

    coordinates: np.ndarray
    component: torch.Tensor
    consensus: torch.Tensor
    indices: np.ndarray
    resolution: float
    history: list[dict] = field(default_factory=list)
    trust: np.ndarray | None = None
    starts: list = field(default_factory=list)  # each candidate's (agreement or significance, bimodality); the most bimodal reproducible one kept
    significance: float | None = None  # a region's (_Alternation.best_region); None for a component iterated from a start
    noise: np.ndarray | None = None  # each coordinate's noise variance (N,), from its image; None: unknown, a plain mixture
    _fits: dict = field(default_factory=dict, init=False, repr=False, compare=False)  # (groups, seed) -> (each particle's group probabilities, BIC per particle)

    @property
    def outliers(self) -> np.ndarray:
        """Positions of the particles that counted less than fully (their residual far above the others')."""
        return np.flatnonzero(self.trust < 1) if self.trust is not None else np.zeros(0, dtype=int)

    @cached_property
    def fitted(self) -> np.ndarray:
        """Positions of the particles the groups are fitted to: all but the outliers and any group of
        fewer than ``FEW`` that a two-group fit would set apart (a coordinate far out, however well
        measured, would take a group of its own and leave the state beside it undivided), such groups
        left out one at a time."""
        n = len(self.coordinates)
        kept = np.delete(np.arange(n), self.outliers) if len(self.outliers) < n - 2 else np.arange(n)
        for _ in range(FEW):  # each pass leaves out one group (on the suite: none in 134 of 165 divisions, at most 9 particles)
            fit = self._fit(2, kept)
            labels = fit[0][kept].argmax(1)
            few = kept[labels == np.argmin(np.bincount(labels, minlength=2))]
            if not 0 < len(few) < FEW or len(kept) - len(few) < FEW:
                self._fits[2, 0] = fit  # the two groups split() and bimodality use
                break
            kept = np.setdiff1d(kept, few)
        return kept

    @property
    def left_out(self) -> np.ndarray:
        """Positions of the particles that counted fully but were left out of the groups' fit (:attr:`fitted`)."""
        return np.setdiff1d(np.setdiff1d(np.arange(len(self.coordinates)), self.fitted), self.outliers)

    def _mixture(self, groups: int, seed: int = 0) -> tuple[np.ndarray, float]:
        """Each particle's probability of each group (N, groups) in a mixture of ``groups`` fitted to the
        :attr:`fitted` particles, and the fit's Bayesian information criterion per particle fitted."""
        kept = self.fitted
        if (groups, seed) not in self._fits:  # split() and bimodality share the two-group fit
            self._fits[groups, seed] = self._fit(groups, kept, seed)
        return self._fits[groups, seed]

    def _fit(self, groups: int, kept: np.ndarray, seed: int = 0) -> tuple[np.ndarray, float]:
        """A mixture of ``groups`` fitted to the standardised coordinates of ``kept``: with each
        coordinate's noise variance where it is known (:class:`~cryonb.core.analysis.noisy_mixture.NoisyMixture`,
        an outlier's taken to be as much larger as it counted less), a plain Gaussian mixture otherwise;
        every particle's probability of each group and the BIC per particle fitted."""
        scale = max(float(self.coordinates.std()), 1e-30)
        z = (self.coordinates - self.coordinates.mean()) / scale
        if self.noise is None:
            from sklearn.mixture import GaussianMixture

            mixture = GaussianMixture(groups, n_init=3, random_state=seed).fit(z[kept, None])
            posterior, bic = mixture.predict_proba(z[:, None]), mixture.bic(z[kept, None])
        else:
            from .analysis.noisy_mixture import NoisyMixture

            variance = self.noise / scale**2 / (1.0 if self.trust is None else self.trust)
            mixture = NoisyMixture.fit(z[kept], variance[kept], groups)
            posterior, bic = mixture.posterior(z, variance), mixture.bic(z[kept], variance[kept])
        return posterior, float(bic) / len(kept)

    def split(self, seed: int = 0) -> np.ndarray:
        """Two groups along the component (0, 1; 1 the smaller), each particle in its most probable one."""
        labels = self._mixture(2, seed)[0].argmax(1)
        return labels if labels.sum() <= len(labels) / 2 else 1 - labels

    def purity(self, seed: int = 0) -> tuple[float, float]:
        """How sure the two groups of :meth:`split` are, as their mixture sees them: over each group's
        particles, the mean probability that they belong to it (1: no doubt; where the groups overlap
        along the component, near 0.5). A model's estimate: on the benchmark suite's rare state it came
        within 0.07 of the share of the group that is the rare state (0.75 against 0.80 at SNR 0.01), on a
        small simulated hinge 0.83 against 0.69 (optimistic where the coordinates are not two Gaussians)."""
        groups, certainty = self.split(seed), self._mixture(2, seed)[0].max(1)  # each in its most probable group
        return tuple(float(certainty[groups == g].mean()) if (groups == g).any() else float("nan") for g in (0, 1))

    @cached_property
    def bimodality(self) -> float:
        """How much better two groups describe the coordinates than one: the Bayesian information
        criterion of one group less that of two, per particle (> 0: two groups). A reproducible
        component along which the particles spread continuously stays below 0."""
        return self._mixture(1)[1] - self._mixture(2)[1]

    def plot(self, path: str | os.PathLike | None = None, title: str | None = None):
        """Histogram of the coordinates, the two groups of :meth:`split` in two colours; a PNG at ``path`` if given."""
        from .fsc import notebook_figure, save_png

        groups = self.split()
        fig = notebook_figure()(figsize=(6, 3.5), dpi=100)
        ax = fig.add_subplot()
        bins = np.histogram_bin_edges(self.coordinates, bins=60)
        for g, colour in ((0, "#4c72b0"), (1, "#dd8452")):
            ax.hist(self.coordinates[groups == g], bins=bins, color=colour, label=f"group {g}: {int((groups == g).sum())} particles")
        ax.set_xlabel("coordinate along the component")
        ax.set_ylabel("particles")
        ax.legend(fontsize=8)
        ax.set_title(title or self.reproducibility, fontsize=10)
        fig.tight_layout()
        if path is not None:
            save_png(fig, path)
        return fig

    @property
    def agreement(self) -> float:
        """Cosine between the components of the two random halves (NaN for a region, which is not iterated):
        near 1 for a real difference, but high for noise too with many particles and few frequencies."""
        return self.history[-1]["half_agreement"] if self.history else float("nan")

    def reproducible(self, agreement: float = AGREEMENT) -> bool:
        """Whether its halves agree at ``agreement`` or more (a region: its significance is ``SIGNIFICANCE`` or more)."""
        return self.significance >= SIGNIFICANCE if self.significance is not None else self.agreement >= agreement

    @property
    def reproducibility(self) -> str:
        """``agreement 0.85`` for an iterated component, ``a region, 6.8 σ`` for a region of the consensus."""
        return f"agreement {self.agreement:.2f}" if self.significance is None else f"a region, {self.significance:.1f} σ"

    @property
    def reproducibility_record(self) -> dict:
        """``{"agreement": ..., "significance": ...}`` for a JSON record, the one that does not apply None."""
        if self.significance is None:
            return {"agreement": round(self.agreement, 3), "significance": None}
        return {"agreement": None, "significance": round(self.significance, 2)}

    def __repr__(self) -> str:
        return (f"VariabilityComponent({len(self.coordinates)} particles, {len(self.history)} iterations to {self.resolution:.1f} Å, "
                f"{self.reproducibility}, bimodality {self.bimodality:+.3f}"
                + (f" (kept of {len(self.starts)} candidates: {', '.join(f'{a:.2f}/{b:+.3f}' for a, b in self.starts)})" if len(self.starts) > 1 else "")
                + (f", outliers counted less: {len(self.outliers)}" if len(self.outliers) else "")
                + (f", far coordinates left out of the groups' fit: {len(self.left_out)}" if len(self.left_out) else "") + ")")


def _kept(found: list[VariabilityComponent], agreement: float) -> VariabilityComponent:
    """The most bimodal of the reproducible candidates (of all, if none is)."""
    return max(found, key=lambda f: (f.reproducible(agreement), f.bimodality))


def working_box(D: int, radius: int) -> int:
    """The box the component is computed in: the frequencies inside ``radius`` sampled twice over
    (a multiple of 8), or ``D`` if that is smaller. The frequencies beyond carry nothing it uses."""
    return min(D, -(-4 * (radius + 1) // 8) * 8)


def _resample(volume: torch.Tensor, box: int) -> torch.Tensor:
    """``volume`` on a ``box``³ grid with the same Fourier coefficients (:func:`fourier_crop` and
    :func:`fourier_pad` keep the density instead, which scales them by (box/D)³)."""
    D = volume.shape[-1]
    return (fourier_crop(volume, box, 3) if box <= D else fourier_pad(volume, box, 3)) * (D / box) ** 3


class _Slices:
    """Central slices of maps at the particles' poses, on the pixels inside the resolution limit, in
    a box of ``box`` (:func:`working_box`) for images of ``D``: ``taken`` picks those pixels from a
    D × D transform, ``pixels`` places them in a box × box one, in the same order."""

    def __init__(self, D: int, box: int, radius: int, device):
        self.box, self.radius = box, radius
        self.taken = torch.nonzero(shell_index(D, device=device).flatten() <= radius)[:, 0]
        shells = shell_index(box, device=device).flatten()
        self.pixels = torch.nonzero(shells <= radius)[:, 0]
        self.shells = shells[self.pixels]
        self.plane = plane_coordinates(box, device=device).reshape(-1, 3)[self.pixels] * OVERSAMPLING
        self.lowpass = (shell_index(box, 3, device=device) <= radius).float()

    def __call__(self, volume: torch.Tensor, rotations: torch.Tensor, batch_size: int) -> torch.Tensor:
        transform = padded_transform(volume)
        channels = torch.stack([transform.real, transform.imag])
        values = [sample_volume(channels, self.plane @ r) for r in rotations.split(batch_size)]
        return torch.cat([torch.complex(v[0], v[1]) for v in values])

    def full_plane(self, values: torch.Tensor) -> torch.Tensor:
        """(B, P) pixel values back on (B, box, box) centred transforms, zero outside the limit."""
        plane = torch.zeros(len(values), self.box * self.box, dtype=values.dtype, device=values.device)
        plane[:, self.pixels] = values
        return plane.reshape(-1, self.box, self.box)

    def filter(self, volume: torch.Tensor) -> torch.Tensor:
        return ifft3_center(fft3_center(volume) * self.lowpass).real


def _focus(volume: torch.Tensor, fraction: float, softness: int, by: torch.Tensor) -> torch.Tensor:
    """``volume`` on the ``fraction`` of the voxels where ``by`` is largest, the mask's edge softened by
    a low-pass at ``softness`` pixels of frequency."""
    magnitude = by.abs().flatten()
    keep = (by.abs() >= magnitude.kthvalue(max(1, int((1 - fraction) * len(magnitude)))).values).float()
    soft = ifft3_center(fft3_center(keep) * (shell_index(volume.shape[-1], 3, device=volume.device) <= softness).float()).real
    return volume * soft.clamp(0, 1)


def _read(particles, slices: _Slices, batch_size: int, device, progress, trust: torch.Tensor | None = None):
    """One pass over the images: their consensus map in their box, masked (each counted by ``trust``,
    1 if None), and their pixels inside the limit, CTFs and poses."""
    consensus, images, ctfs, rotations = FourierAccumulator(particles.box_size, 1, device=device, ordered=True), [], [], []
    for rows, images_ft, ctf, rots in image_batches(particles, batch_size, device, True, "reading the selection", progress):
        consensus.insert(images_ft, ctf, rots, torch.zeros(len(rots), dtype=torch.long, device=device),
                         None if trust is None else trust[rows])
        images.append(images_ft.flatten(1)[:, slices.taken])
        ctfs.append(ctf.flatten(1)[:, slices.taken])
        rotations.append(rots)
    consensus = consensus.volume([0], 1e-3).to(device) * soft_spherical_mask(particles.box_size, device=device)
    return consensus, torch.cat(images), torch.cat(ctfs), torch.cat(rotations)


def _noise_weights(residual: torch.Tensor, shells: torch.Tensor, radius: int, trust: torch.Tensor | None = None) -> torch.Tensor:
    """Each pixel's inverse noise power, from the residuals' power in its shell (each particle counted by ``trust``)."""
    counted = torch.ones(len(residual), device=residual.device) if trust is None else trust
    power = (counted[:, None] * residual.abs().square()).sum(0).double()
    power = ordered_index_add(torch.zeros(radius + 1, dtype=power.dtype, device=power.device), shells, power)
    return (torch.bincount(shells, minlength=radius + 1) * counted.sum() / power.clamp(min=1e-30)).float()[shells]


def _trust(residual: torch.Tensor, weights: torch.Tensor) -> torch.Tensor:
    """How much each particle counts, (0, 1]: 1 unless its residual's power is above ``OUTLIER`` times the
    median particle's, then inversely to it (its noise taken to be that much larger)."""
    power = (residual.abs().square() * weights).sum(1)
    return (OUTLIER * power.median() / power.clamp(min=1e-30)).clamp(max=1)


def _weighted_dot(a: torch.Tensor, b: torch.Tensor, weights: torch.Tensor) -> torch.Tensor:
    return ((a.conj() * b).real * weights).sum(1)


def _solve(predicted: torch.Tensor, along: torch.Tensor, residual: torch.Tensor, weights: torch.Tensor, prior: float = PRIOR):
    """Each particle's (scale, coordinate, the coordinate's variance): the weighted least squares of its
    residual on the consensus's slice (``predicted``) and the component's (``along``), with a prior
    precision ``prior`` on both (0: the plain least squares, whose variance is the coordinate's noise
    variance when ``weights`` are the pixels' inverse noise powers)."""
    a, b, c = (_weighted_dot(x, y, weights).double() for x, y in ((predicted, predicted), (predicted, along), (along, along)))
    p, q = (_weighted_dot(x, residual, weights).double() for x in (predicted, along))
    a, c = a + prior, c + prior
    determinant = (a * c - b * b).clamp(min=1e-300)
    return ((c * p - b * q) / determinant).float(), ((a * q - b * p) / determinant).float(), a / determinant


def _regions(consensus: torch.Tensor, mask: torch.Tensor, centres: int, masses=REGION_MASS) -> list[torch.Tensor]:
    """Candidate components: the consensus's density inside soft balls, around ``centres`` points spread
    over the molecule (its densest fifth of the voxels; each next point the farthest from those taken),
    each ball holding a share ``masses`` of that density: a subunit present in some particles and
    absent in others is such a region."""
    box = consensus.shape[-1]
    density = consensus * mask
    molecule = density > torch.quantile(density[mask > 0.5], 0.8)
    grid = torch.stack(torch.meshgrid(*[torch.arange(box, device=consensus.device, dtype=torch.float32) - box // 2] * 3, indexing="ij"), -1)
    points, weights = grid[molecule], density[molecule].clamp(min=0)
    taken = [int(weights.argmax())]
    distance = (points - points[taken[0]]).square().sum(1)
    for _ in range(min(centres, len(points)) - 1):
        taken.append(int(distance.argmax()))
        distance = torch.minimum(distance, (points - points[taken[-1]]).square().sum(1))
    regions = []
    for centre in points[taken]:
        from_centre = (grid - centre).square().sum(-1).sqrt()
        order = torch.argsort(from_centre[molecule])
        held = torch.cumsum(weights[order], 0) / weights.sum()
        for share in masses:
            radius = from_centre[molecule][order][min(int(torch.searchsorted(held, share)), len(order) - 1)]
            regions.append(consensus * torch.sigmoid((radius - from_centre) / 0.7))
    return regions


@dataclass
class _Alternation:
    """The alternating least squares of one selection: on its pixels inside the limit, the CTFs, the
    consensus's slices (``predicted``) and what the images hold beyond them (``residual``); the noise
    weights, each particle's trust, and the members of the two random halves."""

    slices: _Slices
    mask: torch.Tensor
    residual: torch.Tensor
    ctfs: torch.Tensor
    rotations: torch.Tensor
    predicted: torch.Tensor
    weights: torch.Tensor
    trust: torch.Tensor
    members: list[torch.Tensor]
    focus: float
    softness: int
    batch_size: int

    def run(self, components: list[torch.Tensor], iterations: int, tolerance: float, bar):
        """The two halves' components and one record per iteration, from ``components`` (the coordinates
        they are judged by are measured afterwards, without the iteration's shrinkage: ``measure``)."""
        history, previous, crossed = [], None, min(CROSSED, iterations // 5)  # the rest on their own, for a fair agreement
        for iteration in range(1, iterations + 1):
            components, z = self.step(components, crossed=iteration <= crossed)
            change = 1.0 if previous is None else 1.0 - abs(float(np.corrcoef(z, previous)[0, 1]))
            history.append({"iteration": iteration, "change": change, "half_agreement": float((components[0] * components[1]).sum())})
            previous = z
            bar.update()
            if change < tolerance and iteration > 2 * crossed:  # the crossed focus's pull has faded
                break
        return components, history

    def step(self, components: list[torch.Tensor], crossed: bool = False):
        """Each particle's (scale, coordinate) from the other half's component, then each half's component
        from them, focused where it is largest (``crossed``: where the other half's is)."""
        slices, device, batch, members = self.slices, self.residual.device, self.batch_size, self.members
        residual, predicted, weights = self.residual, self.predicted, self.weights
        scale, z, _ = _solve(predicted, self.crossed_slices(components), residual, weights)
        # back-project residual·z with weight z²: insert residual / z with image weights z²
        safe = torch.where(z.abs() < 1e-6, torch.full_like(z, 1e-6), z)
        volumes = []
        for h in (0, 1):
            grid = FourierAccumulator(slices.box, 1, device=device, radius=slices.radius + 0.5, ordered=True)  # every shell ≤ radius
            for rows in members[h].split(batch):
                values = (residual[rows] - scale[rows, None] * predicted[rows]) / safe[rows, None]
                grid.insert(slices.full_plane(values), slices.full_plane(self.ctfs[rows]), self.rotations[rows],
                            torch.zeros(len(rows), dtype=torch.long, device=device), safe[rows] ** 2 * self.trust[rows])
            volumes.append(slices.filter(grid.volume([0], 1.0).to(device)) * self.mask)
        if self.focus < 1:
            volumes = [_focus(volumes[h], self.focus, self.softness, volumes[1 - h] if crossed else volumes[h]) for h in (0, 1)]
        updated = [v / v.norm().clamp(min=1e-30) for v in volumes]
        return [updated[0], updated[1] * torch.sign((updated[0] * updated[1]).sum())], z.cpu().numpy()

    def crossed_slices(self, components: list[torch.Tensor]) -> torch.Tensor:
        """Each particle's CTF-modulated slice of the other half's component (its own noise kept out)."""
        along = torch.empty_like(self.residual)
        for h in (0, 1):
            rows = self.members[h]
            along[rows] = self.slices(components[1 - h], self.rotations[rows], self.batch_size) * self.ctfs[rows]
        return along

    def measure(self, along: torch.Tensor):
        """Each particle's coordinate along ``along`` by plain least squares, and its noise variance (numpy)."""
        _, z, variance = _solve(self.predicted, along, self.residual, self.weights, prior=0.0)
        return z.cpu().numpy().astype(float), variance.cpu().numpy()

    def measure_crossed(self, components: list[torch.Tensor]):
        """:meth:`measure` along the other half's component, each half's coordinates centred on their
        own mean. Both halves' residuals are taken from the one consensus, so a half's component holds
        that half's mean residual (its half map less the consensus), which the other half's residuals
        hold with the opposite sign: left in, the halves' coordinates sit apart (by up to 1.9 standard
        deviations in selections of 100–400 particles on the benchmark suite) and two groups fitted
        to them are the random halves."""
        z, variance = self.measure(self.crossed_slices(components))
        for rows in self.members:
            rows = rows.cpu().numpy()
            z[rows] -= z[rows].mean()
        return z, variance

    def best_region(self, regions: list[torch.Tensor], bar):
        """The candidate region whose coordinates, measured on two halves of each image's pixels (a
        checkerboard of frequencies, closed under Friedel symmetry), correlate most over the trusted
        particles; its component, the particles' slices of it, and that correlation in standard errors
        (about N(0, 1) for a region the particles do not vary in, since the region is drawn from the
        consensus and not fitted to any particle's noise)."""
        slices, residual, predicted, weights = self.slices, self.residual, self.predicted, self.weights
        pixel = torch.stack(torch.meshgrid(*[torch.arange(slices.box, device=residual.device)] * 2, indexing="ij"), -1).reshape(-1, 2)
        even = (pixel[slices.pixels].sum(1) % 2 == 0).float()
        trusted = self.trust >= 1
        best = (-float("inf"), None, None)
        for region in regions:
            component = slices.filter(region) * self.mask
            component = component / component.norm().clamp(min=1e-30)
            along = slices(component, self.rotations, self.batch_size) * self.ctfs
            halves = [_solve(predicted, along, residual, weights * half)[1][trusted] for half in (even, 1 - even)]
            correlation = float(torch.corrcoef(torch.stack(halves))[0, 1])
            if correlation > best[0]:
                best = (correlation, component, along)
            bar.update()
        correlation, component, along = best
        return component, along, correlation * float(trusted.sum()) ** 0.5


def variability_component(
    particles,
    *,
    resolution: float = RESOLUTION,
    focus: float = 0.1,
    iterations: int = 50,
    tolerance: float = 1e-3,
    starts: int = 3,
    regions: int = REGIONS,
    batch_size: int = 512,
    device: str | torch.device = "cpu",
    agreement: float = AGREEMENT,
    seed: int = 0,
    progress: bool | None = None,
) -> VariabilityComponent:
    """The one focused map difference ``particles`` (a ParticleSet with poses and CTFs) vary along most.

    ``resolution`` (Å) limits the frequencies used; ``focus`` is the fraction of the voxels the
    component may occupy (1: anywhere in the mask). Iterations stop early once the coordinates change
    by less than ``tolerance`` (1 − their correlation with the previous iteration's). Beside ``starts``
    random starts iterated, the consensus's density inside balls around ``regions`` points is a
    candidate where its coordinates are significant (``SIGNIFICANCE``); of the candidates, the
    one whose coordinates fall most clearly into two groups is kept, a reproducible one (halves agreeing
    at ``agreement`` or more) before any other.
    """
    path = particles.source.path
    if particles.images is None or particles.rotations is None or particles.ctf is None:
        raise InputError(path, "variability needs images with poses and CTF parameters", "load particles from a .star or .cs with angles and defocus")
    if len(particles) < 20:
        raise InputError(path, f"only {len(particles)} particles", "select at least 20 particles")
    if not 0 < focus <= 1:
        raise ValueError(f"focus must be in (0, 1], not {focus}")
    D, apix = particles.box_size, particles.apix
    radius = int(min(max(D * apix / resolution, 2), D // 2 - 1))  # the resolution used is in the result
    box = working_box(D, radius)
    slices, mask = _Slices(D, box, radius, device), soft_spherical_mask(box, device=device)
    consensus, images, ctfs, rotations = _read(particles, slices, batch_size, device, progress)
    residual = images - slices(_resample(consensus, box), rotations, batch_size) * ctfs
    trust = _trust(residual, _noise_weights(residual, slices.shells, radius))
    if bool((trust < 1).any()):  # an outlier pulls the consensus too: again without it
        consensus = _read(particles, slices, batch_size, device, progress, trust)[0]
    predicted = slices(_resample(consensus, box), rotations, batch_size) * ctfs
    residual = images - predicted
    weights = _noise_weights(residual, slices.shells, radius, trust)
    trust = _trust(residual, weights)
    generator = torch.Generator().manual_seed(seed)
    halves = (torch.randperm(len(images), generator=generator) % 2).to(device)
    members = [torch.nonzero(halves == h)[:, 0] for h in (0, 1)]
    alternation = _Alternation(slices, mask, residual, ctfs, rotations, predicted, weights, trust, members,
                               focus, min(D // 8, box // 2), batch_size)
    found, resolution, kept, counted = [], float(D * apix / radius), (consensus.cpu(), particles.indices.copy()), trust.cpu().numpy()
    candidates = regions * len(REGION_MASS)
    bar = tqdm(total=starts * iterations + candidates, desc="variability", unit="step", disable=None if progress is None else not progress)
    for start in range(starts):
        components = [slices.filter(torch.randn(box, box, box, generator=generator).to(device)) * mask for _ in (0, 1)]
        components, history = alternation.run([v / v.norm() for v in components], iterations, tolerance, bar)
        z, noise = alternation.measure_crossed(components)
        component = _resample(components[0] + components[1], D).cpu()
        found.append(VariabilityComponent(z, component / component.norm(), *kept, resolution, history, counted, noise=noise))
        bar.set_postfix(start=start + 1, agreement=f"{found[-1].agreement:.2f}")
    if regions:
        bar.set_postfix(regions=candidates)
        component, along, significance = alternation.best_region(_regions(_resample(consensus, box), mask, regions), bar)
        if significance >= SIGNIFICANCE:
            z, noise = alternation.measure(along)
            component = _resample(component, D).cpu()
            found.append(VariabilityComponent(z, component / component.norm(), *kept, resolution, [], counted,
                                              significance=significance, noise=noise))
    bar.close()
    best = _kept(found, agreement)
    best.starts = [(f.agreement if f.significance is None else f.significance, f.bimodality) for f in found]
    return best
