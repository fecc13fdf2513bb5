"""pandas objects inside a model: benign ones load (pickle protocols 2 to 5, joblib, a
bundle) and equal what was saved; hostile ones built against the allowlist (block
placements, categorical codes, ranges, pyarrow offsets, objects hidden in cells, changes made
after pandas or the unpickler last looked) are refused with a modelkeep error, in a confined
child, and nothing runs or crashes."""

from __future__ import annotations

import json
import pickle
from pathlib import Path
from typing import Any

import frame_payloads as fp
import hostile_state_payloads as hp
import joblib
import numpy as np
import pandas as pd
import pytest
from hostile_state_payloads import PICKLE, STATE, TREE

import modelkeep
from modelkeep.safety.state import frames, prove_state
from modelkeep.safety.state.walk import qualified


def _frame(rows: int = 6) -> pd.DataFrame:
    rng = np.random.RandomState(0)
    return pd.DataFrame(
        {
            "i": np.arange(rows),
            "f": rng.rand(rows),
            "o": (["a", 1, None, 2.5, ("t", 1), pd.Timestamp("2021-05-01 10:30")] * rows)[:rows],
            "c": pd.Categorical(
                (["x", "y", None] * rows)[:rows], categories=["y", "x"], ordered=True
            ),
            "s": [f"s{i}" for i in range(rows)],
            "d": pd.date_range("2020-01-01", periods=rows, freq="D"),
            "b": rng.rand(rows) > 0.5,
            "u": np.arange(rows, dtype=np.uint8),
            "f2": rng.rand(rows),
        },
        index=pd.Index([f"r{i}" for i in range(rows)], name="rows"),
    )


def _objects() -> dict[str, Any]:
    """pandas objects as models and their owners keep them."""
    from sklearn.linear_model import LogisticRegression

    df = _frame()
    x = np.random.RandomState(0).rand(20, 2)
    tagged = df.assign(z=1)
    tagged.attrs["source"] = "unit"
    return {
        "model": LogisticRegression().fit(x, (x[:, 0] > 0.5).astype(int)),
        "frame": df,
        "reordered": df[["f2", "i", "f", "s"]],  # placements out of column order
        "sliced": df.iloc[1:4, ::2],
        "transposed": df[["i", "f"]].T,
        "tagged": tagged,
        "empty": pd.DataFrame(),
        "series": df["f"],
        "object_series": df["o"],
        "category_series": df["c"],
        "string_series": df["s"],
        "datetime_series": df["d"],
        "named": pd.Series([1, 2], index=pd.RangeIndex(5, 7), name=("a", 1)),
        "columns": df.columns,
        "range": pd.RangeIndex(2, 20, 3, name="r"),
        "ints": pd.Index([3, 1, 2]),
        "objects": pd.Index(["a", 1], dtype=object),
        "categorical": pd.Categorical(["a", "b", "a"]),
        "python_strings": pd.Series(["a", None, "c"], dtype="string[python]"),
        "python_string_array": pd.array(["x", None], dtype="string[python]"),
        "arrow_strings": pd.Series(["a", None], dtype="string[pyarrow]"),
        "category_dtype": pd.CategoricalDtype(["a", "b"], ordered=True),
        "list": [df, df["i"]],
    }


def _assert_same(got: Any, want: Any) -> None:
    assert type(got) is type(want)
    if isinstance(want, pd.DataFrame):
        pd.testing.assert_frame_equal(got, want)
        assert got.attrs == want.attrs
    elif isinstance(want, pd.Series):
        pd.testing.assert_series_equal(got, want)
    elif isinstance(want, pd.Index):
        pd.testing.assert_index_equal(got, want)
    elif isinstance(want, pd.api.extensions.ExtensionArray):
        pd.testing.assert_extension_array_equal(got, want)
    elif isinstance(want, list):
        assert len(got) == len(want)
        for a, b in zip(got, want, strict=True):
            _assert_same(a, b)
    elif isinstance(want, pd.CategoricalDtype):
        assert got == want
    else:  # the estimator
        np.testing.assert_array_equal(got.coef_, want.coef_)


def _check_loaded(got: dict[str, Any], want: dict[str, Any]) -> None:
    assert set(got) == set(want)
    for key in want:
        _assert_same(got[key], want[key])
    # The proofs emptied pandas' caches and position arrays: it rebuilds them on use.
    frame = got["frame"]
    assert frame["c"].cat.codes.tolist() == want["frame"]["c"].cat.codes.tolist()
    assert frame.loc["r2", "s"] == "s2"
    assert float(frame.select_dtypes("number").sum().sum()) == pytest.approx(
        float(want["frame"].select_dtypes("number").sum().sum())
    )


@pytest.mark.parametrize("protocol", [2, 3, 4, 5])
def test_pickled_pandas_objects_load_and_equal(tmp_path: Path, protocol: int) -> None:
    want = _objects()
    path = tmp_path / "objects.pkl"
    path.write_bytes(pickle.dumps(want, protocol=protocol))
    _check_loaded(modelkeep.safe_load(path), want)


def test_joblib_pandas_objects_load_and_equal(tmp_path: Path) -> None:
    want = _objects()
    path = tmp_path / "objects.joblib"
    joblib.dump(want, path)
    _check_loaded(modelkeep.safe_load(path), want)


def test_bundle_with_a_pandas_index_in_a_pipeline_loads(tmp_path: Path) -> None:
    from sklearn.linear_model import LogisticRegression
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import OrdinalEncoder

    x = pd.DataFrame({"k": ["a", "b", "c", "a"] * 10})
    y = np.array([0, 1, 1, 0] * 10)
    categories = pd.Index(["a", "b", "c"])
    encoder = OrdinalEncoder(categories=[categories])
    pipe = make_pipeline(encoder, LogisticRegression()).fit(x, y)
    modelkeep.save(pipe, tmp_path / "b", sample=x, name="enc", formats=("pickle",))
    model = modelkeep.load(tmp_path / "b", env="ignore")
    pd.testing.assert_index_equal(model.estimator.steps[0][1].categories[0], categories)
    assert model.predict(x.head(4)).tolist() == pipe.predict(x.head(4)).tolist()


def test_proof_names_are_the_classes_the_walk_sees() -> None:
    # The table is keyed by strings so that proving needs no pandas import; a rename in a
    # pandas release must fail here, not silently leave a class unproven.
    import pyarrow  # noqa: F401  (ArrowStringArray needs it)
    from pandas.core.internals import managers

    classes = {
        frames.FRAME: pd.DataFrame,
        frames.SERIES: pd.Series,
        frames.INDEX: pd.Index,
        frames.RANGE_INDEX: pd.RangeIndex,
        frames.CATEGORICAL: pd.Categorical,
        frames.CATEGORICAL_DTYPE: pd.CategoricalDtype,
        frames.STRING_DTYPE: pd.StringDtype,
        frames.STRING_ARRAY: pd.arrays.StringArray,
        frames.DATETIME_ARRAY: pd.arrays.DatetimeArray,
        frames.ARROW_STRING_ARRAY: pd.arrays.ArrowStringArray,
        frames.BLOCK_MANAGER: managers.BlockManager,
        frames.SINGLE_BLOCK_MANAGER: managers.SingleBlockManager,
        frames.NA_TYPE: type(pd.NA),
        frames.TIMESTAMP: pd.Timestamp,
    }
    assert set(classes) == set(frames.FRAME_PROOFS)
    assert {name: qualified(cls) for name, cls in classes.items()} == {n: n for n in classes}


def test_proof_drops_what_pandas_derived_from_placements() -> None:
    df = _frame()
    df.loc["r1", "i"]  # builds the manager's position arrays and the index engine
    assert df._mgr._blknos is not None and df.index._cache
    prove_state({"frame": df})
    assert df._mgr._blknos is None and not df.index._cache
    assert df.loc["r1", "i"] == 1


def test_both_walls_refuse_a_build_on_a_block_manager() -> None:
    # pandas' BlockManager.__setstate__ follows the new placements unchecked while loading
    # (a crash), so neither wall may let a BUILD reach it; each is checked here alone.
    from pandas.core.internals.managers import BlockManager

    from modelkeep.safety import unpickler
    from modelkeep.safety.pickle_scan import scan_pickle

    payload = fp.manager_rebuilt(np.zeros((3, 4)), np.array([0, 1, 100_000_000]))()
    problems = [finding.problem for finding in scan_pickle(payload).findings]
    assert [p for p in problems if p.startswith(_MANAGER_BUILD)] != [], problems
    refusal = unpickler._never_built(BlockManager)
    assert refusal is not None and f"BUILD on a {refusal}".startswith(_MANAGER_BUILD)
    assert unpickler._never_built(pd.DataFrame) is None


_ARROW_FUZZ = r"""
import random, sys
import pyarrow as pa
import pyarrow.compute as pc

random.seed(int(sys.argv[1]))
base = pa.array(["a", "bb", None, "dddd", "", "\u00e9"], type=pa.large_string())
refused = accepted = 0
for _ in range(3000):
    buffers = [None if b is None else bytearray(b.to_pybytes()) for b in base.buffers()]
    for _ in range(random.randint(1, 4)):
        buffer = random.choice([b for b in buffers if b is not None])
        roll = random.random()
        if roll < 0.6 and buffer:
            buffer[random.randrange(len(buffer))] = random.randrange(256)
        elif roll < 0.8:
            del buffer[random.randrange(len(buffer) + 1):]
        else:
            buffer.extend(bytes(random.randrange(16)))
    length = random.choice([len(base), len(base) + random.randint(-3, 3), random.randrange(50)])
    try:
        array = pa.Array.from_buffers(
            pa.large_string(),
            max(length, 0),
            [None if b is None else pa.py_buffer(b) for b in buffers],
            offset=random.choice([0, 0, random.randrange(5)]),
        )
        chunked = pa.chunked_array([array])
        chunked.validate(full=True)
    except (pa.ArrowException, ValueError):
        refused += 1
        continue
    accepted += 1
    chunked.to_pylist()  # what passed is safe to read
    pc.utf8_upper(chunked)
print(refused, accepted)
"""


def test_arrow_full_validation_refuses_corrupt_buffers_without_crashing() -> None:
    # The ArrowStringArray proof relies on validate(full=True): thousands of corrupted
    # offset, data and validity buffers are refused or, when valid, read, and nothing
    # crashes (in a child, so a crash fails this test rather than the run).
    import subprocess
    import sys

    result = subprocess.run(
        [sys.executable, "-c", _ARROW_FUZZ, "1"], capture_output=True, text=True, timeout=120
    )
    assert result.returncode == 0, result.stderr[-2000:]
    refused, accepted = map(int, result.stdout.split())
    assert refused > 1000 and accepted > 100, result.stdout


# -- hostile files, loaded in the confined child


CASES = [
    hp.Case("placement-out-of-bounds", fp.placement([0, 1, 100_000_000]), STATE),
    hp.Case("placement-negative", fp.placement([0, 1, -3]), STATE),
    hp.Case("placement-duplicated", fp.placement([0, 1, 1]), STATE),
    hp.Case("placement-wrong-length", fp.placement([0, 1]), PICKLE + STATE),
    hp.Case("block-build-after-frame", fp.placement_rebuilt, PICKLE),
    hp.Case(
        "manager-build-places-block-out-of-bounds",
        fp.manager_rebuilt(np.zeros((3, 4)), np.array([0, 1, 100_000_000])),
        PICKLE,
    ),
    hp.Case(
        "manager-build-block-longer-than-index",
        fp.manager_rebuilt(np.zeros((3, 1000)), np.array([0, 1, 2])),
        PICKLE,
    ),
    hp.Case("index-build-shorter-than-blocks", fp.index_shrunk, STATE),
    hp.Case("range-index-build-shorter-than-block", fp.range_index(_range=range(2)), STATE),
    hp.Case("range-index-build-huge", fp.range_index(_range=range(1 << 62)), STATE),
    hp.Case("range-index-step-zero", fp.range_index_step_zero, PICKLE),
    hp.Case("range-index-huge", fp.range_index_huge, STATE),
    hp.Case("categorical-code-past-categories", fp.categorical_codes(7), STATE),
    hp.Case("categorical-code-negative", fp.categorical_codes(-5), STATE),
    hp.Case("categorical-build-after-frame", fp.categorical_codes_rebuilt, STATE),
    hp.Case("series-build-says-dataframe", fp.series_typ_rebuilt, STATE),
    hp.Case("arrow-offsets-out-of-range", fp.arrow_offsets(True), PICKLE),
    hp.Case("arrow-offsets-setitem-after-validation", fp.arrow_offsets(False), STATE),
    hp.Case("tree-cycle-in-series-object-column", fp.tree_in_series, TREE),
    hp.Case("tree-cycle-in-frame-object-column", fp.tree_in_frame, TREE),
    hp.Case("callable-in-frame-cell", fp.callable_in_frame, STATE),
    hp.Case("block-manager-alone", fp.manager_alone, STATE),
    hp.Case("tree-cycle-as-column-label", fp.tree_in_column_index, TREE),
    hp.Case("frame-8-billion-empty-columns", lambda: fp.empty_columns(1 << 33), STATE),
    hp.Case("string-array-holds-callable", fp.string_array_holds(np.mean), STATE),
    hp.Case("string-array-holds-number", fp.string_array_holds(7), STATE),
]

_MANAGER_BUILD = "BUILD on a pandas.core.internals.managers.BlockManager; pandas writes one"

#: What the refusal must name: the path to the bad object (or, for a load-time refusal,
#: what the unpickler refused).
NAMED = {
    "placement-out-of-bounds": "model['frame']: block 0: expected positions in [0, 4)",
    "placement-negative": "model['frame']: block 0: expected positions in [0, 4)",
    "placement-duplicated": "expected the blocks to hold each of the 4 columns once",
    "placement-wrong-length": "Number of manager items must equal union of block items",
    "block-build-after-frame": "BUILD on an instance of pandas.core.internals.blocks.NumpyBlock",
    "manager-build-places-block-out-of-bounds": _MANAGER_BUILD,
    "manager-build-block-longer-than-index": _MANAGER_BUILD,
    "index-build-shorter-than-blocks": "model['frame']: block 0 values: expected shape (3, 2)",
    "range-index-build-shorter-than-block": "model['series']: .values: expected 2 rows, got "
    "float64 array of shape (3,)",
    "frame-8-billion-empty-columns": "model['frame']: .columns: expected at most 10,000,000 "
    "columns, got 8,589,934,592",
    "range-index-build-huge": "model['series']: .index: expected at most",
    "range-index-step-zero": "Step must not be zero",
    "range-index-huge": "model['columns']: ._range: expected at most",
    "categorical-code-past-categories": "model['frame'].iloc[:, 0]: codes: expected values in "
    "[-1, 2)",
    "categorical-code-negative": "model['frame'].iloc[:, 0]: codes: expected values in [-1, 2)",
    "categorical-build-after-frame": "model['frame'].iloc[:, 0]: codes",
    "series-build-says-dataframe": "model['series']: _typ: expected 'series'",
    "arrow-offsets-out-of-range": "a pyarrow array whose buffers are invalid",
    "arrow-offsets-setitem-after-validation": "model['frame'].iloc[:, 0]: _pa_array: its "
    "buffers are invalid",
    "tree-cycle-in-series-object-column": "model['s'].iloc[1].tree_: node 0",
    "tree-cycle-in-frame-object-column": "model[0].iloc[2, 3].tree_: node 0",
    "callable-in-frame-cell": "model['frame'].iloc[1, 3]: expected data, got the callable "
    "numpy.mean",
    "block-manager-alone": "model['m']: a pandas.core.internals.managers.BlockManager",
    "tree-cycle-as-column-label": "model['frame'].columns[1].tree_: node 0",
    "string-array-holds-callable": "model['series'].array: [1]: expected a string or a "
    "missing value, got numpy.mean",
    "string-array-holds-number": "model['series'].array: [1]: expected a string or a missing "
    "value, got 7",
}


@pytest.fixture(scope="module")
def verdicts(tmp_path_factory: pytest.TempPathFactory) -> dict[str, dict[str, Any]]:
    workdir = tmp_path_factory.mktemp("hostile-frames")
    jobs = []
    for case in CASES:
        path = workdir / f"{case.id}.pkl"
        path.write_bytes(case.build())
        jobs.append(
            {"id": case.id, "mode": "safe_load", "path": str(path), "trusted": [], "attrs": []}
        )
    return hp.run_confined(jobs, str(workdir))


@pytest.mark.parametrize("case", CASES, ids=lambda c: c.id)
def test_hostile_frame_is_refused(case: hp.Case, verdicts: dict[str, dict[str, Any]]) -> None:
    verdict = verdicts[case.id]
    shown = json.dumps(verdict, indent=2)[:3000]
    assert verdict["outcome"] == "refused", shown
    assert verdict["error"] in case.expect, shown
    assert NAMED[case.id] in verdict["message"], shown
