"""What changed between two manifests, as plain JSON-serializable data.

Each section is always present, so a script can read ``result["features"]["added"]``
without checking first; ``result["changes"]`` lists the sections that differ. A scalar
that did not change is ``None``; one that did is ``{"from": old, "to": new}``.
"""

from __future__ import annotations

import json
from typing import Any

from modelkeep.manifest import Manifest

__all__ = ["diff_manifests"]


def diff_manifests(a: Manifest, b: Manifest) -> dict[str, Any]:
    """Every difference from ``a`` to ``b`` that matters to someone deploying ``b``.

    Sections: ``features`` (added, removed, retyped, nullable, reordered), ``categories``
    (per feature: added, removed), ``ranges`` (per feature: min and max), ``labels``
    (added, removed, changed), ``task``, ``model_type``, ``metrics`` (per metric: from,
    to, delta), ``data`` (data_version, fingerprint, n_rows), ``environment`` (python,
    packages added/removed/changed), ``formats`` (added, removed, changed bytes, parity).
    """
    sections: dict[str, Any] = {
        "features": _features(a, b),
        "categories": _categories(a, b),
        "ranges": _ranges(a, b),
        "labels": _labels(a, b),
        "task": _scalar(a.task, b.task),
        "model_type": _scalar(a.model_type, b.model_type),
        "metrics": _metrics(a.metrics, b.metrics),
        "data": {
            "data_version": _scalar(a.data.data_version, b.data.data_version),
            "fingerprint": _scalar(a.data.fingerprint, b.data.fingerprint),
            "n_rows": _scalar(a.data.n_rows, b.data.n_rows),
        },
        "environment": _environment(a, b),
        "formats": _formats(a, b),
    }
    sections["changes"] = [name for name, value in sections.items() if _changed(name, value)]
    return sections


def _scalar(old: Any, new: Any) -> dict[str, Any] | None:
    return None if old == new else {"from": old, "to": new}


def _changed(section: str, value: Any) -> bool:
    if section == "metrics":
        return any(m["from"] != m["to"] for m in value.values())
    if section == "formats":
        # Retraining always changes the artifacts' bytes; the formats section counts as
        # changed only when formats come or go or a parity report moves.
        return bool(value["added"] or value["removed"] or value["parity"])
    if isinstance(value, dict):
        return any(_changed("", v) for v in value.values())
    if isinstance(value, list):
        return bool(value)
    return value is not None


def _features(a: Manifest, b: Manifest) -> dict[str, Any]:
    old = {f.name: f for f in a.features}
    new = {f.name: f for f in b.features}
    common_old = [n for n in a.feature_names if n in new]
    common_new = [n for n in b.feature_names if n in old]
    return {
        "added": [{"name": f.name, "dtype": f.dtype} for f in b.features if f.name not in old],
        "removed": [{"name": f.name, "dtype": f.dtype} for f in a.features if f.name not in new],
        "retyped": [
            {"name": n, "from": old[n].dtype, "to": new[n].dtype}
            for n in common_new
            if old[n].dtype != new[n].dtype
        ],
        "nullable": [
            {"name": n, "from": old[n].nullable, "to": new[n].nullable}
            for n in common_new
            if old[n].nullable != new[n].nullable
        ],
        "reordered": None if common_old == common_new else {"from": common_old, "to": common_new},
    }


def _categories(a: Manifest, b: Manifest) -> dict[str, Any]:
    old = {f.name: f for f in a.features}
    changes: dict[str, Any] = {}
    for feature in b.features:
        before = old.get(feature.name)
        if before is None or before.categories is None or feature.categories is None:
            continue
        was, now = _keyed(before.categories), _keyed(feature.categories)
        added = [now[k] for k in now if k not in was]
        removed = [was[k] for k in was if k not in now]
        if added or removed:
            changes[feature.name] = {"added": added, "removed": removed}
    return changes


def _ranges(a: Manifest, b: Manifest) -> dict[str, Any]:
    old = {f.name: f for f in a.features}
    changes: dict[str, Any] = {}
    for feature in b.features:
        before = old.get(feature.name)
        if before is None:
            continue
        low, high = _scalar(before.min, feature.min), _scalar(before.max, feature.max)
        if low or high:
            changes[feature.name] = {"min": low, "max": high}
    return changes


def _keyed(values: list[Any]) -> dict[str, Any]:
    # JSON text as the key: 1, 1.0, True and "1" are different categories and classes.
    return {json.dumps(v): v for v in values}


def _labels(a: Manifest, b: Manifest) -> dict[str, Any]:
    was = {json.dumps(e.value): e for e in a.target.labels or []}
    now = {json.dumps(e.value): e for e in b.target.labels or []}
    return {
        "added": [{"value": e.value, "label": e.label} for k, e in now.items() if k not in was],
        "removed": [{"value": e.value, "label": e.label} for k, e in was.items() if k not in now],
        "changed": [
            {"value": e.value, "from": was[k].label, "to": e.label}
            for k, e in now.items()
            if k in was and was[k].label != e.label
        ],
    }


def _metrics(old: dict[str, float], new: dict[str, float]) -> dict[str, Any]:
    result: dict[str, Any] = {}
    for name in sorted(set(old) | set(new)):
        before, after = old.get(name), new.get(name)
        delta = after - before if before is not None and after is not None else None
        result[name] = {"from": before, "to": after, "delta": delta}
    return result


def _environment(a: Manifest, b: Manifest) -> dict[str, Any]:
    old, new = a.environment.packages, b.environment.packages
    python_old = f"{a.environment.python_implementation} {a.environment.python_version}"
    python_new = f"{b.environment.python_implementation} {b.environment.python_version}"
    return {
        "python": _scalar(python_old, python_new),
        "packages": {
            "added": {n: v for n, v in sorted(new.items()) if n not in old},
            "removed": {n: v for n, v in sorted(old.items()) if n not in new},
            "changed": {
                n: {"from": old[n], "to": v}
                for n, v in sorted(new.items())
                if n in old and old[n] != v
            },
        },
    }


def _formats(a: Manifest, b: Manifest) -> dict[str, Any]:
    old = {x.format: x for x in a.artifacts}
    new = {x.format: x for x in b.artifacts}
    common = [f for f in new if f in old]
    parity: dict[str, Any] = {}
    for fmt in sorted(set(old) | set(new)):
        before = old[fmt].details.get("parity") if fmt in old else None
        after = new[fmt].details.get("parity") if fmt in new else None
        if before != after:
            parity[fmt] = {"from": before, "to": after}
    return {
        "added": [f for f in new if f not in old],
        "removed": [f for f in old if f not in new],
        "changed": [f for f in common if old[f].sha256 != new[f].sha256],
        "parity": parity,
    }
