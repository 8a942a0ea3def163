"""Choosing sparse equations: candidate supports, collinear terms, information criteria, bootstrap.

The pieces :class:`~sysid.SparseODE` and :class:`~sysid.SINDy` share when they choose
which library terms each equation keeps (``threshold="auto"``):

1. **Collinear terms** (:func:`collinear_pairs`): two library columns whose
   (uncentred) cosine on the data is at least :data:`COLLINEAR_COSINE` carry the same
   information there (``theta`` and ``sin(theta)`` at small amplitude, ``cos(theta)``
   and the constant), so a fit holding both splits one effect between them with large
   cancelling coefficients. They are named in a :class:`~sysid.FitWarning`, and no
   candidate equation holds both: wherever a path below would keep both, the two
   variants keeping one of them are candidates instead, and the selection picks one.
   The same holds for a term that is nearly a combination of several others of its
   equation (``cos(theta)`` of ``cos(omega)``, ``theta^2`` and ``omega^2`` at small
   amplitude; :func:`split_dependent`).
2. **Candidate supports** (:func:`support_paths`): per equation, the nested supports
   of pysindy's forward orthogonal least squares (:class:`pysindy.FROLS`, terms added
   by error reduction) and of its stepwise sparse regression
   (:class:`pysindy.SSR`, ``criteria="model_residual"``: terms removed one at a time,
   the one whose removal costs least first), both run on the derivative regression
   (library columns scaled to unit norm). Cheap: no solver.
3. **Scoring** (:func:`information_criterion`): a candidate's simulation errors
   (simulated minus measured states) are scored by a Gaussian information criterion
   with one variance per state, ``sum_j n_j log(SSE_j / n_j)`` plus the penalty of
   AICc (default), AIC or BIC for its number of coefficients.
4. **Inclusion probabilities** (:func:`bootstrap_inclusion`): blocks of the data
   (segments of trajectories) are resampled with replacement and the candidate with the
   lowest criterion is chosen again on every resample; a term's inclusion probability
   is the fraction of resamples whose choice holds it (the bagging of E-SINDy, Fasel
   et al. 2022, applied to the selection by simulation error instead of thresholded
   derivative regression).
5. **Offsets** (:func:`offset_terms`, :func:`simplest_within`): a term nearly constant on
   the data (``cos(theta)`` on swings within about a radian: uncentred cosine with the
   constant at least :data:`OFFSET_COSINE`) acts as an offset. SparseODE also fits the
   chosen equations with the constant in its place, and without it, and the criterion
   decides; a difference below :data:`TIE` is no evidence, and the simpler term (the
   constant) wins.

Only numpy, scipy, pandas and pysindy here (SINDy imports this package; it stays torch-free).
"""

from sysid.selection._collinear import (
    COLLINEAR_COSINE,
    collinear_pairs,
    split_dependent,
    warn_collinear,
)
from sysid.selection._criteria import (
    CRITERIA,
    DEFAULT_CRITERION,
    ERROR_FLOOR,
    Errors,
    block_errors,
    bootstrap_inclusion,
    check_criterion,
    error_efficiency,
    information_criterion,
)
from sysid.selection._offsets import OFFSET_COSINE, TIE, offset_terms, simplest_within
from sysid.selection._search import (
    Joint,
    Search,
    Selection,
    derivative_start,
    fit_support,
    search_supports,
    select_equations,
    support_paths,
)
from sysid.selection._table import bagged_coefficients, coefficient_table

__all__ = [
    "COLLINEAR_COSINE",
    "CRITERIA",
    "DEFAULT_CRITERION",
    "ERROR_FLOOR",
    "OFFSET_COSINE",
    "TIE",
    "Errors",
    "Joint",
    "Search",
    "Selection",
    "bagged_coefficients",
    "block_errors",
    "bootstrap_inclusion",
    "check_criterion",
    "coefficient_table",
    "collinear_pairs",
    "derivative_start",
    "error_efficiency",
    "fit_support",
    "information_criterion",
    "offset_terms",
    "search_supports",
    "select_equations",
    "simplest_within",
    "split_dependent",
    "support_paths",
    "warn_collinear",
]
