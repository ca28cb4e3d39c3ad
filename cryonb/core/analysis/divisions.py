"""Each cluster asked, with the poses, whether it hides two states.

A cluster of z can hold a rare state beside a common one, such as particles lacking one small
subunit (the benchmark suite's assembly set: neither cryonb's nor cryoDRGN's latents give its 3 %
state a cluster). :func:`divide` finds a cluster's focused variability component
(:func:`cryonb.core.variability.variability_component`: iterated from random starts, or a region of
the consensus the particles hold more or less of) and divides the cluster in two along it when the
component is reproducible (its two random halves agreeing, cosine ≥ ``agreement``, a first filter;
a region's coordinates from two halves of the pixels correlating by ``SIGNIFICANCE`` standard
errors, a test) and the particles fall along it into two groups rather than one spread
(:func:`divides`), however few particles its smaller side holds. :func:`divide_clusters` does so for every cluster of
a labelling, and again inside each group it made, up to ``depth`` times: a cluster may hold junk
beside two states, and its strongest difference, found first, is then the junk's, a group of a few
dozen set apart before the rest is asked again. A rare state spread over several clusters may be
too few in each to be found there: groups of different clusters whose components are alike
(``|cosine| ≥ POOL``: one and the same difference) are pooled and asked again as one (``pool=True``).
:func:`divided_labels` gives every particle its final group.

    >>> divisions = divide_clusters(particles, labels, device="cuda")
    >>> for d in divisions:
    ...     print(d)            # cluster 3: 1,801 particles, agreement 0.85, divided 1,501 / 300 (purity 0.97 / 0.88)
    >>> groups = divided_labels(labels, divisions)
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch
from tqdm.auto import tqdm

from ..variability import AGREEMENT, VariabilityComponent, variability_component

MIN_PARTICLES = 100
POOL = 0.5  # two clusters' components alike at this |cosine| or more are one difference: their groups are pooled


@dataclass
class Division:
    """One cluster's component and its two groups (0/1 per member, 1 the smaller); ``divided`` says
    whether the component is reproducible enough to divide by; ``path`` where in the cluster it was made."""

    cluster: int
    members: np.ndarray
    component: VariabilityComponent
    groups: np.ndarray
    divided: bool
    path: str = ""  # which group of which division of the cluster: "" the cluster, "0" its first division's group 0, ...
    pooled: tuple = ()  # a pool's division (``cluster`` is then −1, −2, ...): the clusters whose groups it pools
    purity: tuple = ()  # how sure each group is, as the groups' mixture sees it (:meth:`VariabilityComponent.purity`)

    @property
    def agreement(self) -> float:
        return self.component.agreement

    def group(self, g: int) -> np.ndarray:
        """Positions (in the labelled set) of the members in group ``g``."""
        return self.members[self.groups == g]

    @property
    def where(self) -> str:
        """``cluster 3``, or ``pool 1 (clusters 3, 7)`` for a pool's division."""
        return f"pool {-self.cluster} (clusters {', '.join(map(str, self.pooled))})" if self.pooled else f"cluster {self.cluster}"

    @property
    def name(self) -> str:
        """:attr:`where`, and ``, group 01`` for a division inside one of its groups."""
        return self.where + (f", group {self.path}" if self.path else "")

    @property
    def folder(self) -> str:
        """A folder name for its files: ``cluster_003``, ``cluster_003_group_01``, ``pool_1``."""
        return (f"pool_{-self.cluster}" if self.pooled else f"cluster_{self.cluster:03d}") + (f"_group_{self.path}" if self.path else "")

    def __str__(self) -> str:
        verdict = f"divided {int((self.groups == 0).sum()):,} / {int(self.groups.sum()):,}" if self.divided else "one state"
        if self.divided and self.purity:
            verdict += f" (purity {self.purity[0]:.2f} / {self.purity[1]:.2f})"
        return f"{self.name}: {len(self.members):,} particles, {self.component.reproducibility}, {verdict}"


def divides(component: VariabilityComponent, agreement: float = AGREEMENT) -> bool:
    """Whether ``component`` is reproducible (its halves agree at ``agreement`` or more; a region: its
    significance is ``SIGNIFICANCE`` or more) and the particles fall along it
    into two groups rather than one spread (its bimodality is above 0)."""
    return bool(component.reproducible(agreement) and component.bimodality > 0)


def divide(particles, members: np.ndarray, cluster: int = 0, *, agreement: float = AGREEMENT, device="cpu", seed: int = 0,
           **options) -> Division:
    """The focused variability of ``particles.subset(members)`` and whether it divides them (:func:`divides`)."""
    component = variability_component(particles.subset(members), agreement=agreement, device=device, seed=seed, progress=False, **options)
    groups = component.split(seed)
    return Division(int(cluster), np.asarray(members), component, groups, divides(component, agreement), purity=component.purity(seed))


def divide_clusters(particles, labels, *, depth: int = 3, min_particles: int = MIN_PARTICLES, pool: bool = True,
                    progress: bool | None = None, clusters=None, **options) -> list[Division]:
    """:func:`divide` for every cluster of ``labels`` (one per particle; or those in ``clusters``) with at least
    ``min_particles``, and again for each group it divides off with that many, at most ``depth`` divisions deep;
    with ``pool``, then for each pool of groups from several clusters (:func:`pools`) the same way."""
    labels = np.asarray(labels)
    asked = np.unique(labels) if clusters is None else np.unique(np.asarray(clusters))
    clusters = [c for c in asked if (labels == c).sum() >= min_particles]
    divisions = []
    for c in tqdm(clusters, desc="dividing clusters", unit="cluster", disable=None if progress is None else not progress):
        divisions += _divide_down(particles, np.flatnonzero(labels == c), int(c), (), depth, min_particles, options)
    for k, (members, pooled) in enumerate(pools(divisions) if pool else []):
        if len(members) >= min_particles:
            divisions += _divide_down(particles, members, -1 - k, pooled, depth, min_particles, options)
    return divisions


def _divide_down(particles, members, cluster: int, pooled: tuple, depth: int, min_particles: int, options) -> list[Division]:
    """:func:`divide` for ``members``, then again inside each group it divides off, at most ``depth`` deep."""
    divisions, pending = [], [(members, "")]
    while pending:
        members, path = pending.pop(0)
        division = divide(particles, members, cluster, **options)
        division.path, division.pooled = path, pooled
        divisions.append(division)
        if division.divided and len(path) + 1 < depth:
            pending += [(division.group(g), path + str(g)) for g in (0, 1) if len(division.group(g)) >= min_particles]
    return divisions


def pools(divisions: list[Division], alike: float = POOL) -> list[tuple[np.ndarray, tuple]]:
    """Groups of particles from different clusters that vary by one and the same difference, pooled:
    each pool's members and its clusters.

    Every division asked (at any depth, divided or not: a cluster may first give up a few junk
    particles, or hold too few of a state to divide), largest first, not yet pooled, takes from every
    other cluster the largest division whose component is alike (``|cosine| ≥ alike``), and their
    groups are pooled. The same difference found in particles that share none is a replication (the
    halves of one group are not independent: see :mod:`cryonb.core.variability`). Only differences
    found in two clusters or more are pooled."""
    asked = sorted((d for d in divisions if not d.pooled), key=lambda d: -len(d.members))
    if len(asked) < 2:
        return []
    components = torch.stack([d.component.component.flatten().float() for d in asked])
    cosine = (components @ components.T).abs().numpy()
    taken, found = set(), []
    for i in range(len(asked)):
        if i in taken:
            continue
        alike_ones, clusters = [], set()
        for j in range(i, len(asked)):
            if j not in taken and asked[j].cluster not in clusters and cosine[i, j] >= alike:
                alike_ones.append(j)
                clusters.add(asked[j].cluster)
        if len(alike_ones) > 1:
            taken.update(alike_ones)
            found.append((np.sort(np.concatenate([asked[j].members for j in alike_ones])), tuple(asked[j].cluster for j in alike_ones)))
    return found


def divided_labels(labels, divisions: list[Division]) -> np.ndarray:
    """Each particle's final group (0, 1, ...): its cluster in ``labels``, refined by every division made.
    A pool's division, made last, sets its smaller group apart; the rest stay in the groups they were in."""
    keys = np.array([f"{c}:" for c in np.asarray(labels)], dtype=object)
    for d in sorted(divisions, key=lambda d: (bool(d.pooled), len(d.path))):
        if d.divided:
            for g in (1,) if d.pooled else (0, 1):
                keys[d.group(g)] = f"{d.cluster}:{d.path}{g}"
    return np.unique(keys.astype(str), return_inverse=True)[1]
