"""A synthetic multi-omics cohort for demos and tests.

``n_latent`` shared factors ``Z ~ N(0, I)`` drive every omics block through a random loading
matrix (block ``b``: ``X_b = Z W_b + noise``), so the blocks are correlated the way real omics
layers are. The phenotype is a noisy nonlinear function of the factors (a sign of a quadratic
form plus a linear term). The target ``label`` cuts that score at the requested class balance
(two classes) or at equal quantiles (``n_classes`` subtypes); the target ``response`` is a
continuous outcome (a drug-response-like smooth function of the factors plus noise). Blocks are
generated and laid out in name order. Sample ids are made up, then pseudonymised like any input.
"""

from __future__ import annotations

import numpy as np

from qdist.config import SyntheticSpec
from qdist.data.cohort import Cohort
from qdist.data.pseudonym import pseudonymize

__all__ = ["make_cohort"]


def make_cohort(spec: SyntheticSpec, seed: int) -> Cohort:
    """Generate the cohort; the same ``spec`` and ``seed`` give the same features and labels."""
    rng = np.random.default_rng(np.random.SeedSequence([seed, 0x5EED]))
    n, k = spec.n_samples, spec.n_latent
    z = rng.standard_normal((n, k))
    columns, names, blocks = [], [], []
    # blocks in name order: a job file's key order must not change the cohort (YAML writers
    # reorder keys, and two configs that compare equal must give the same data)
    for block, width in sorted(spec.blocks.items()):
        loadings = rng.standard_normal((k, width)) / np.sqrt(k)
        columns.append(z @ loadings + spec.noise * rng.standard_normal((n, width)))
        names += [f"{block}_{i}" for i in range(width)]
        blocks += [block] * width
    q = rng.standard_normal((k, k))
    score = np.einsum("ni,ij,nj->n", z, q + q.T, z) / k + z @ rng.standard_normal(k)
    score += 0.3 * rng.standard_normal(n)
    if spec.n_classes == 2:
        labels = (score > np.quantile(score, 1.0 - spec.class_balance)).astype(np.int64)
    else:
        cuts = np.quantile(score, np.linspace(0, 1, spec.n_classes + 1)[1:-1])
        labels = np.searchsorted(cuts, score).astype(np.int64)
    w = rng.standard_normal(k)
    response = np.tanh(z @ w / np.sqrt(k)) + 0.5 * np.sin(z[:, 0]) + 0.2 * rng.standard_normal(n)
    raw_ids = [f"patient-{i:05d}" for i in range(n)]
    return Cohort(
        features=np.hstack(columns),
        sample_ids=pseudonymize(raw_ids),
        feature_names=tuple(names),
        blocks=tuple(blocks),
        targets={"label": labels, "response": response},
        primary="label",
    )
