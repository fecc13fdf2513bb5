"""What changed between two manifests, as typed sections that turn into plain JSON.

:func:`diff_manifests` returns a :class:`ManifestDiff`; ``to_dict()`` gives the JSON form
the registry has always returned. There each section is always present, so a script can
read ``result["features"]["added"]`` without checking first, and ``result["changes"]``
lists the sections that differ. A scalar that did not change is ``None``; one that did is
``{"from": old, "to": new}`` (:class:`Change`).
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any, Generic, TypeVar

from modelkeep.manifest import Manifest, Scalar

__all__ = [
    "CategoryChange",
    "Change",
    "DataChanges",
    "EnvironmentChanges",
    "FeatureChanges",
    "FeatureRef",
    "FormatChanges",
    "LabelChange",
    "LabelChanges",
    "LabelRef",
    "ManifestDiff",
    "MetricChange",
    "PackageChanges",
    "RangeChange",
    "VersionDiff",
    "diff_manifests",
]

T = TypeVar("T")
T_co = TypeVar("T_co", covariant=True)
Parity = dict[str, Any] | None  # a parity report as the manifest stores it (JSON)


@dataclass(frozen=True)
class Change(Generic[T_co]):
    """A value that differs: ``before`` in the first manifest, ``after`` in the second."""

    before: T_co
    after: T_co

    def to_dict(self) -> dict[str, T_co]:
        return {"from": self.before, "to": self.after}


def _change(before: T, after: T) -> Change[T] | None:
    return None if before == after else Change(before, after)


def _plain(change: Change[T] | None) -> dict[str, T] | None:
    return None if change is None else change.to_dict()


@dataclass(frozen=True)
class FeatureRef:
    """A feature that came or went, with its logical dtype."""

    name: str
    dtype: str

    def to_dict(self) -> dict[str, str]:
        return {"name": self.name, "dtype": self.dtype}


@dataclass(frozen=True)
class FeatureChanges:
    """Features added, removed, retyped or made (non-)nullable, and the order of those
    both manifests hold."""

    added: list[FeatureRef]
    removed: list[FeatureRef]
    retyped: dict[str, Change[str]]
    nullable: dict[str, Change[bool]]
    reordered: Change[list[str]] | None

    @property
    def differs(self) -> bool:
        return bool(self.added or self.removed or self.retyped or self.nullable or self.reordered)

    def to_dict(self) -> dict[str, Any]:
        return {
            "added": [f.to_dict() for f in self.added],
            "removed": [f.to_dict() for f in self.removed],
            "retyped": [{"name": n, **c.to_dict()} for n, c in self.retyped.items()],
            "nullable": [{"name": n, **c.to_dict()} for n, c in self.nullable.items()],
            "reordered": _plain(self.reordered),
        }


@dataclass(frozen=True)
class CategoryChange:
    """Categories of one feature that came or went."""

    added: list[Scalar]
    removed: list[Scalar]

    def to_dict(self) -> dict[str, list[Scalar]]:
        return {"added": self.added, "removed": self.removed}


@dataclass(frozen=True)
class RangeChange:
    """The training range of one feature: its minimum and maximum, where they moved."""

    min: Change[float | None] | None
    max: Change[float | None] | None

    def to_dict(self) -> dict[str, dict[str, float | None] | None]:
        return {"min": _plain(self.min), "max": _plain(self.max)}


@dataclass(frozen=True)
class LabelRef:
    """A model output and its business label."""

    value: Scalar
    label: str

    def to_dict(self) -> dict[str, Scalar]:
        return {"value": self.value, "label": self.label}


@dataclass(frozen=True)
class LabelChange:
    """A model output whose business label changed."""

    value: Scalar
    before: str
    after: str

    def to_dict(self) -> dict[str, Scalar]:
        return {"value": self.value, "from": self.before, "to": self.after}


@dataclass(frozen=True)
class LabelChanges:
    """Label-map entries added, removed or relabelled."""

    added: list[LabelRef]
    removed: list[LabelRef]
    changed: list[LabelChange]

    @property
    def differs(self) -> bool:
        return bool(self.added or self.removed or self.changed)

    def to_dict(self) -> dict[str, list[dict[str, Scalar]]]:
        return {
            "added": [e.to_dict() for e in self.added],
            "removed": [e.to_dict() for e in self.removed],
            "changed": [e.to_dict() for e in self.changed],
        }


@dataclass(frozen=True)
class MetricChange:
    """One metric in both manifests (None where it is absent) and the difference."""

    before: float | None
    after: float | None

    @property
    def delta(self) -> float | None:
        if self.before is None or self.after is None:
            return None
        return self.after - self.before

    def to_dict(self) -> dict[str, float | None]:
        return {"from": self.before, "to": self.after, "delta": self.delta}


@dataclass(frozen=True)
class DataChanges:
    """The training data's version, fingerprint and row count, where they differ."""

    data_version: Change[str | None] | None
    fingerprint: Change[str] | None
    n_rows: Change[int] | None

    def items(self) -> list[tuple[str, Change[str | None] | Change[str] | Change[int] | None]]:
        """``(field, change)`` in the order the JSON form lists them."""
        return [
            ("data_version", self.data_version),
            ("fingerprint", self.fingerprint),
            ("n_rows", self.n_rows),
        ]

    def to_dict(self) -> dict[str, dict[str, str | int | None] | None]:
        return {
            "data_version": _plain(self.data_version),
            "fingerprint": _plain(self.fingerprint),
            "n_rows": _plain(self.n_rows),
        }


@dataclass(frozen=True)
class PackageChanges:
    """Recorded packages added, removed, or at another version (name -> version)."""

    added: dict[str, str]
    removed: dict[str, str]
    changed: dict[str, Change[str]]

    def to_dict(self) -> dict[str, Any]:
        return {
            "added": self.added,
            "removed": self.removed,
            "changed": {n: c.to_dict() for n, c in self.changed.items()},
        }


@dataclass(frozen=True)
class EnvironmentChanges:
    """The recorded Python (implementation and version) and packages."""

    python: Change[str] | None
    packages: PackageChanges

    @property
    def differs(self) -> bool:
        p = self.packages
        return bool(self.python or p.added or p.removed or p.changed)

    def to_dict(self) -> dict[str, Any]:
        return {"python": _plain(self.python), "packages": self.packages.to_dict()}


@dataclass(frozen=True)
class FormatChanges:
    """Artifact formats added or removed, artifacts whose bytes changed, parity reports
    that moved. Retraining always changes the bytes, so ``changed`` alone is not a change
    of the section."""

    added: list[str]
    removed: list[str]
    changed: list[str]
    parity: dict[str, Change[Parity]]

    def to_dict(self) -> dict[str, Any]:
        return {
            "added": self.added,
            "removed": self.removed,
            "changed": self.changed,
            "parity": {f: c.to_dict() for f, c in self.parity.items()},
        }


@dataclass(frozen=True)
class ManifestDiff:
    """Every section of a diff; :attr:`changes` names those that differ."""

    features: FeatureChanges
    categories: dict[str, CategoryChange]
    ranges: dict[str, RangeChange]
    labels: LabelChanges
    task: Change[str] | None
    model_type: Change[str] | None
    metrics: dict[str, MetricChange]
    data: DataChanges
    environment: EnvironmentChanges
    formats: FormatChanges

    @property
    def changes(self) -> list[str]:
        """The sections that differ, in the order of the JSON form."""
        changed = {
            "features": self.features.differs,
            "categories": bool(self.categories),
            "ranges": bool(self.ranges),
            "labels": self.labels.differs,
            "task": self.task is not None,
            "model_type": self.model_type is not None,
            "metrics": any(m.before != m.after for m in self.metrics.values()),
            "data": any(change is not None for _, change in self.data.items()),
            "environment": self.environment.differs,
            "formats": bool(self.formats.added or self.formats.removed or self.formats.parity),
        }
        return [section for section, differs in changed.items() if differs]

    def to_dict(self) -> dict[str, Any]:
        """The JSON form: every section present, then ``changes``."""
        return {
            "features": self.features.to_dict(),
            "categories": {n: c.to_dict() for n, c in self.categories.items()},
            "ranges": {n: r.to_dict() for n, r in self.ranges.items()},
            "labels": self.labels.to_dict(),
            "task": _plain(self.task),
            "model_type": _plain(self.model_type),
            "metrics": {n: m.to_dict() for n, m in self.metrics.items()},
            "data": self.data.to_dict(),
            "environment": self.environment.to_dict(),
            "formats": self.formats.to_dict(),
            "changes": self.changes,
        }


@dataclass(frozen=True)
class VersionDiff:
    """A :class:`ManifestDiff` between two registered versions, ``a`` and ``b``
    (``name:version`` each), with their feature-schema versions (from, to) when known."""

    a: str
    b: str
    sections: ManifestDiff
    schema_version: tuple[int, int] | None = None

    def to_dict(self) -> dict[str, Any]:
        """The JSON form: ``a``, ``b``, ``schema_version`` (``from``, ``to``) when known,
        then every section of :meth:`ManifestDiff.to_dict`."""
        head: dict[str, Any] = {"a": self.a, "b": self.b}
        if self.schema_version is not None:
            head["schema_version"] = dict(zip(("from", "to"), self.schema_version, strict=True))
        return {**head, **self.sections.to_dict()}


def diff_manifests(a: Manifest, b: Manifest) -> ManifestDiff:
    """Every difference from ``a`` to ``b`` that matters to someone deploying ``b``.

    Sections: ``features`` (added, removed, retyped, nullable, reordered), ``categories``
    (per feature: added, removed), ``ranges`` (per feature: min and max), ``labels``
    (added, removed, changed), ``task``, ``model_type``, ``metrics`` (per metric: from,
    to, delta), ``data`` (data_version, fingerprint, n_rows), ``environment`` (python,
    packages added/removed/changed), ``formats`` (added, removed, changed bytes, parity).
    """
    return ManifestDiff(
        features=_features(a, b),
        categories=_categories(a, b),
        ranges=_ranges(a, b),
        labels=_labels(a, b),
        task=_change(a.task, b.task),
        model_type=_change(a.model_type, b.model_type),
        metrics=_metrics(a.metrics, b.metrics),
        data=DataChanges(
            data_version=_change(a.data.data_version, b.data.data_version),
            fingerprint=_change(a.data.fingerprint, b.data.fingerprint),
            n_rows=_change(a.data.n_rows, b.data.n_rows),
        ),
        environment=_environment(a, b),
        formats=_formats(a, b),
    )


def _features(a: Manifest, b: Manifest) -> FeatureChanges:
    old = {f.name: f for f in a.features}
    new = {f.name: f for f in b.features}
    common_old = [n for n in a.feature_names if n in new]
    common_new = [n for n in b.feature_names if n in old]
    return FeatureChanges(
        added=[FeatureRef(f.name, f.dtype) for f in b.features if f.name not in old],
        removed=[FeatureRef(f.name, f.dtype) for f in a.features if f.name not in new],
        retyped={
            n: Change(old[n].dtype, new[n].dtype)
            for n in common_new
            if old[n].dtype != new[n].dtype
        },
        nullable={
            n: Change(old[n].nullable, new[n].nullable)
            for n in common_new
            if old[n].nullable != new[n].nullable
        },
        reordered=_change(common_old, common_new),
    )


def _categories(a: Manifest, b: Manifest) -> dict[str, CategoryChange]:
    old = {f.name: f for f in a.features}
    changes: dict[str, CategoryChange] = {}
    for feature in b.features:
        before = old.get(feature.name)
        if before is None or before.categories is None or feature.categories is None:
            continue
        was, now = _keyed(before.categories), _keyed(feature.categories)
        added = [now[k] for k in now if k not in was]
        removed = [was[k] for k in was if k not in now]
        if added or removed:
            changes[feature.name] = CategoryChange(added, removed)
    return changes


def _ranges(a: Manifest, b: Manifest) -> dict[str, RangeChange]:
    old = {f.name: f for f in a.features}
    changes: dict[str, RangeChange] = {}
    for feature in b.features:
        before = old.get(feature.name)
        if before is None:
            continue
        low, high = _change(before.min, feature.min), _change(before.max, feature.max)
        if low or high:
            changes[feature.name] = RangeChange(low, high)
    return changes


def _keyed(values: list[Scalar]) -> dict[str, Scalar]:
    # JSON text as the key: 1, 1.0, True and "1" are different categories and classes.
    return {json.dumps(v): v for v in values}


def _labels(a: Manifest, b: Manifest) -> LabelChanges:
    was = {json.dumps(e.value): e for e in a.target.labels or []}
    now = {json.dumps(e.value): e for e in b.target.labels or []}
    return LabelChanges(
        added=[LabelRef(e.value, e.label) for k, e in now.items() if k not in was],
        removed=[LabelRef(e.value, e.label) for k, e in was.items() if k not in now],
        changed=[
            LabelChange(e.value, was[k].label, e.label)
            for k, e in now.items()
            if k in was and was[k].label != e.label
        ],
    )


def _metrics(old: dict[str, float], new: dict[str, float]) -> dict[str, MetricChange]:
    return {
        name: MetricChange(old.get(name), new.get(name)) for name in sorted(set(old) | set(new))
    }


def _environment(a: Manifest, b: Manifest) -> EnvironmentChanges:
    old, new = a.environment.packages, b.environment.packages
    python_old = f"{a.environment.python_implementation} {a.environment.python_version}"
    python_new = f"{b.environment.python_implementation} {b.environment.python_version}"
    return EnvironmentChanges(
        python=_change(python_old, python_new),
        packages=PackageChanges(
            added={n: v for n, v in sorted(new.items()) if n not in old},
            removed={n: v for n, v in sorted(old.items()) if n not in new},
            changed={
                n: Change(old[n], v) for n, v in sorted(new.items()) if n in old and old[n] != v
            },
        ),
    )


def _formats(a: Manifest, b: Manifest) -> FormatChanges:
    old = {x.format: x for x in a.artifacts}
    new = {x.format: x for x in b.artifacts}
    common = [f for f in new if f in old]
    parity: dict[str, Change[Parity]] = {}
    for fmt in sorted(set(old) | set(new)):
        before = old[fmt].details.get("parity") if fmt in old else None
        after = new[fmt].details.get("parity") if fmt in new else None
        if before != after:
            parity[fmt] = Change(before, after)
    return FormatChanges(
        added=[f for f in new if f not in old],
        removed=[f for f in old if f not in new],
        changed=[f for f in common if old[f].sha256 != new[f].sha256],
        parity=parity,
    )
