"""Label-free monitoring: is production drifting, and what does it probably cost?

* :mod:`analysis.monitoring.cbpe`: accuracy estimated without labels from calibrated
  class probabilities (confidence-based performance estimation), with its interval;
* :mod:`analysis.monitoring.multivariate`: a domain classifier's AUC, with its interval;
* :mod:`analysis.monitoring.live`: all of it per time window from the store, with input
  and prediction drift, realized accuracy where labels arrived and label coverage
  (what the Live monitoring page shows);
* :mod:`analysis.monitoring.figures`: that page's charts.
"""
from analysis.monitoring.cbpe import CBPE, Estimate

__all__ = ["CBPE", "Estimate"]
