"""Data drift versus concept drift: attribute a model's error change per segment x window.

For every production window (and every segment within it) we ask two questions:

* **Did P(x) change?** (data drift) A *domain classifier* learns to tell the window's
  rows from the reference's. Its cross-fitted AUC, tested against 0.5, and per-feature
  tests (KS and chi-square, with PSI as the effect size) are the evidence.
* **Did P(y|x) change?** (concept drift) On the region both populations share, the
  error of an independent, cross-fitted reference model (refitted here on the reference
  rows; see :func:`fit_reference_model`) is compared between reference and window.

Density ratio (one domain model for every window)
-------------------------------------------------
The domain classifier is a gradient-boosted tree model with balanced class weights,
cross-fitted over 2 folds and Platt-calibrated on its out-of-fold scores. It is fitted
**once** per investigation: its inputs are the features, the group and the window's
index; every reference row is given a window at random, in proportion to the production
rows' windows (see :func:`fit_shared_domain`), so the reference's window says nothing
about x and ``pi(x, w) = P(production | x, w)`` on balanced classes has odds
``r_w(x) = q_w(x) / p(x)``, the window's density ratio (window over reference). Each
cell reads its density ratios and its AUC from this one model: the reference rows are
scored as if they were in the cell's window, each by the fold model that did not see
it. Trees split on the window only where windows differ, so windows that drift alike
pool their evidence. For one segment ``s`` of a window,
``r_s(x) = r(x, s) * p(s) / q(s)`` with ``p(s)``, ``q(s)`` the segment's shares of the
reference and window rows (the segment is one of its inputs).

Decompositions of the error change (``L`` = mean per-row loss of the user's model)
-------------------------------------------------------------------------------
*Importance weighting (IW)*: expected error under covariate shift alone
``E = sum_i w_i l_i / sum_i w_i`` over reference rows with ``w = min(r, CLIP)``; the
data part is ``E - L_ref`` and the concept part ``L_window - E``. Where the inputs only
partly overlap, IW books the error of inputs the reference never had as "concept".

*Headline (support-aware IW)*: window rows outside the reference's support
(``r > SUPPORT_RATIO``; share ``o``) keep their realized loss ``L_out`` as data drift, the
others get the IW estimate: ``expected = (1 - o) E + o L_out``. With full overlap this is
IW; the concept part is ``(1 - o)`` times the extra error on window rows the reference
can speak for.

*Shared region (DISDE; Cai, Namkoong & Yadlowsky 2023)*: the shared distribution has
density proportional to ``p q / (p + q)``; reference rows reach it with weights
proportional to ``r / (1 + r)`` and window rows with ``1 / (1 + r)``. With ``S_ref`` and
``S_win`` the two self-normalised weighted mean losses on it::

    L_window - L_ref = (S_ref - L_ref)        shift into the shared region   (data)
                     + (S_win - S_ref)        concept change on the shared region
                     + (L_window - S_win)     shift out of the shared region (data)

Its concept term is measured on the shared region, not on the window's population, so
it is reported beside the headline rather than as it. The **verdict's concept test**
compares on this shared region (restricted to density ratios within ``OVERLAP`` of 1),
with an independent model of P(y|x) rather than the user's (see :func:`investigate`).
Intervals are percentile intervals of a Poisson bootstrap (B = 200) with the density
ratio held fixed.

Verdicts and thresholds
-----------------------
Tests come in two families (data: AUC and per-feature tests; concept: the change on the
shared region of the reference model's loss, of its mean residual (bias) and of its
residual's covariance with its prediction, divided by the prediction's standard
deviation (slope)) and two levels (:mod:`.testing`). Level one: every window's
all-groups cell, and each group's windows as a sequence (:mod:`.series`: the pooled
change after a change point, and a linear trend, which find a drift that grows too
slowly for any one window). Level two: a group's cell in a window, examined only when
its window or its group was flagged at level one. Each family at each level is
controlled with Holm's procedure at ``ALPHA``, so a dataset without drift gets ``none``
everywhere with probability at least 1 - 4 * ALPHA. A test counts only when its effect
is also large enough to matter: AUC >= ``AUC_MIN`` or a feature's PSI >= ``PSI_MIN``
for data drift; a change of at least ``CONCEPT_MIN`` of the reference model's error
(loss) or ``BIAS_MIN`` of its mean absolute residual (bias, slope) for concept drift.

When drift is found, the change point inside the first flagged window (or the one
before it) is estimated from the per-row evidence and reported to the day (hour for
day windows): see :func:`analysis.attribution.testing.date_changes`.

The package follows the method's steps: :mod:`.problem` (inputs and set-up),
:mod:`.windows`, :mod:`.encoding`, :mod:`.domain` (domain model and density ratios),
:mod:`.reference_model` (the independent model of P(y|x)), :mod:`.samples` (the rows,
encoded once), :mod:`.cells` (cell judgement), :mod:`.testing` and :mod:`.series`
(multiple testing: levels and sequences), :mod:`.estimates` (decomposition and
intervals), :mod:`.features` (feature attribution), :mod:`.text` (the verdict's text)
and :mod:`.engine`, which runs them in order.
"""
from analysis.attribution.cells import Cell, feature_test
from analysis.attribution.domain import (DomainFit, SharedDomain, _cell_pi, auc_test,
                                         fit_domain, fit_shared_domain)
from analysis.attribution.encoding import Encoder, clean_values, segments_of
from analysis.attribution.engine import Investigation, investigate
from analysis.attribution.estimates import (effective_sample_size, interval, null_se,
                                            two_sided_p, weighted_mean, weighted_means)
from analysis.attribution.features import describe_path, disagreement_tree
from analysis.attribution.problem import (ALL, ALPHA, AUC_MIN, BIAS_MIN, BOOTSTRAP, CELL_ROWS,
                                          CLASSIFICATION_METRICS, CLIP, CONCEPT_MIN, METRICS,
                                          MIN_ROWS, OVERLAP, PSI_MIN, REGRESSION_METRICS,
                                          SAMPLE_CAP, SUPPORT_RATIO, UNITS, AttributionError,
                                          Problem, default_metric, infer_task, label_text,
                                          looks_like_id, metric_level, prediction_kind,
                                          problem_from_frames, row_losses)
from analysis.attribution.reference_model import (ReferenceModel, fit_reference_model,
                                                  model_loss_and_residual, target_codes)
from analysis.attribution.text import _names, _perfect, verdict_text
from analysis.attribution.windows import cell_sizes, choose_unit, unit_for
from analysis.stats import holm

__all__ = [
    "ALL", "ALPHA", "AUC_MIN", "BIAS_MIN", "BOOTSTRAP", "CELL_ROWS", "CLASSIFICATION_METRICS",
    "CLIP", "CONCEPT_MIN", "METRICS", "MIN_ROWS", "OVERLAP", "PSI_MIN", "REGRESSION_METRICS",
    "SAMPLE_CAP", "SUPPORT_RATIO", "UNITS", "AttributionError", "Cell", "DomainFit", "Encoder",
    "Investigation", "Problem", "SharedDomain", "fit_shared_domain", "ReferenceModel", "auc_test", "cell_sizes", "choose_unit",
    "clean_values", "default_metric", "describe_path", "disagreement_tree",
    "effective_sample_size", "feature_test", "fit_domain", "fit_reference_model", "holm",
    "infer_task", "interval", "investigate", "label_text", "looks_like_id", "metric_level",
    "model_loss_and_residual", "null_se", "prediction_kind", "problem_from_frames",
    "row_losses", "segments_of", "target_codes", "two_sided_p", "unit_for", "verdict_text",
    "weighted_mean", "weighted_means", "_cell_pi", "_names", "_perfect",
]
