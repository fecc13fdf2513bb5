"""Hostile files aimed at the state walk itself (found by an attack on the first version):
a callable shared between two slots, tuple and Bunch keys, objects hidden in a bit
generator's seed sequence, a numpy-integer iteration limit, a constraint whose message
would repr a broken estimator. Each is refused with a modelkeep error, in the same
confined child as test_hostile_state."""

from __future__ import annotations

import json
import warnings
from pathlib import Path
from typing import Any

import hostile_state_payloads as hp
import pytest
import test_hostile_state
from hostile_state_payloads import STATE, UNPROVEN, Case

#: A skops artifact whose LogisticRegression.solver is an estimator missing a parameter:
#: the constraint message's repr raises AttributeError out of modelkeep.load.
BUNDLE = (
    "skops-constraint-repr-raises",
    "logistic",
    "skops",
    test_hostile_state._repr_raises,
    STATE,
)

OPEN = [
    Case("dict-tuple-key-hides-unproven-and-bad-tree", hp.tuple_key_smuggles, STATE + UNPROVEN),
    Case("bunch-key-hides-unproven", hp.bunch_key_smuggles, STATE + UNPROVEN),
    Case("shared-callable-ft-first", hp.shared_callable(True), STATE),
    Case("bit-generator-seed-seq-hides-objects", hp.bit_generator_seed_seq, STATE + UNPROVEN),
    Case("max-iter-as-numpy-int", hp.numeric_param_as_array, STATE),
]


@pytest.fixture(scope="module")
def verdicts(tmp_path_factory: pytest.TempPathFactory) -> dict[str, dict[str, Any]]:
    workdir: Path = tmp_path_factory.mktemp("hostile-state-open")
    jobs = []
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        for case in OPEN:
            path = workdir / f"{case.id}{case.suffix}"
            path.write_bytes(case.build())
            jobs.append(
                {"id": case.id, "mode": "safe_load", "path": str(path), "trusted": [], "attrs": []}
            )
        bundle = test_hostile_state._build_bundle(workdir, BUNDLE)
        jobs.append(
            {"id": BUNDLE[0], "mode": "bundle", "path": str(bundle), "trusted": [], "attrs": []}
        )
    return hp.run_confined(jobs, str(workdir))


def test_hostile_bundle_is_refused(verdicts: dict[str, dict[str, Any]]) -> None:
    verdict = verdicts[BUNDLE[0]]
    assert verdict["outcome"] == "refused", json.dumps(verdict, indent=2)[:4000]


@pytest.mark.parametrize("case", OPEN, ids=lambda c: c.id)
def test_hostile_file_is_refused(case: Case, verdicts: dict[str, dict[str, Any]]) -> None:
    verdict = verdicts[case.id]
    shown = json.dumps(verdict, indent=2)[:4000]
    assert verdict["outcome"] == "refused", shown
    assert verdict["error"] in case.expect, shown
