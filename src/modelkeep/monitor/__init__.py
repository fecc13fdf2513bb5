"""Monitoring after deployment: drift and performance of live data against the reference
profile every bundle carries.

``save()`` records a reference profile of the training sample in the manifest (per
feature: counts, missing share, quantile bins or category counts; the model's outputs on
the sample). :func:`drift` reads the current data once, in chunks, binning it on the
reference's own bins, so memory stays bounded by the profile whatever the rows; it needs
neither the training data nor all of the current data in memory.

Example:
    >>> from modelkeep import monitor
    >>> report = monitor.drift("churn_model", "traffic.parquet", window="1d")
    >>> report.drifted, report.drifted_features
    (True, ['monthly_charges'])
    >>> monitor.write_html(report, "drift.html")
"""

from __future__ import annotations

from modelkeep.manifest import ProfileFeature, ReferenceProfile
from modelkeep.monitor._drift import drift
from modelkeep.monitor._errors import NoReferenceProfileError
from modelkeep.monitor._html import render_html, write_html
from modelkeep.monitor._profiling import profile
from modelkeep.monitor._report import (
    DriftReport,
    FeatureDrift,
    Performance,
    Thresholds,
    WindowResult,
)

__all__ = [
    "DriftReport",
    "FeatureDrift",
    "NoReferenceProfileError",
    "Performance",
    "ProfileFeature",
    "ReferenceProfile",
    "Thresholds",
    "WindowResult",
    "drift",
    "profile",
    "render_html",
    "write_html",
]
