"""Adaptive batching with real models: coalescing, splitting back, and isolation of errors."""

from __future__ import annotations

import asyncio
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest

from modelkeep.serve.batching import Batcher
from modelkeep.serve.core import Outcome, Predictor, predictor_for
from modelkeep.serve.table import load_served
from serve.conftest import records

FORMATS = ("skops", "onnx")


@pytest.fixture(scope="module")
def rows(churn_data: tuple[pd.DataFrame, np.ndarray]) -> list[dict[str, Any]]:
    frame, _ = churn_data
    return records(frame.head(20))


@pytest.fixture(scope="module")
def predictors(bundles: dict[str, Path]) -> dict[str, Predictor]:
    """The forest's predictor per runtime (loaded once: a load replays every check)."""
    return {fmt: predictor_for(load_served(str(bundles["rf"]), format=fmt)) for fmt in FORMATS}


def run(
    predictor: Predictor, requests: list[list[dict[str, Any]]], max_batch: int
) -> tuple[list[Outcome], list[int]]:
    sizes: list[int] = []
    with ThreadPoolExecutor(1) as executor:
        batcher = Batcher(
            predictor, max_batch=max_batch, max_wait=0.0, executor=executor, on_batch=sizes.append
        )

        async def main() -> list[Outcome]:
            prepared = [predictor.validate(r, strict=False) for r in requests]
            return list(await asyncio.gather(*(batcher.predict(p) for p in prepared)))

        outcomes = asyncio.run(main())
    return outcomes, sizes


@pytest.mark.parametrize("fmt", FORMATS)
@pytest.mark.parametrize(("max_batch", "sizes"), [(64, [20]), (8, [8, 8, 4]), (1, [1] * 20)])
def test_concurrent_requests_are_coalesced_and_split_back(
    bundles: dict[str, Path],
    predictors: dict[str, Predictor],
    rows: list[dict[str, Any]],
    fmt: str,
    max_batch: int,
    sizes: list[int],
) -> None:
    import modelkeep

    model = modelkeep.load(bundles["rf"], format=fmt)
    expected = list(model.predict(pd.DataFrame(rows)))
    proba = np.asarray(model.predict_proba(rows), dtype=float)
    outcomes, got_sizes = run(predictors[fmt], [[r] for r in rows], max_batch)
    assert got_sizes == sizes
    assert [o.labels[0] for o in outcomes] == expected
    assert np.allclose(
        [o.probabilities[0] for o in outcomes if o.probabilities], proba, rtol=0, atol=1e-12
    )


@pytest.mark.filterwarnings("ignore:overflow encountered in cast:RuntimeWarning")
def test_a_value_the_model_refuses_fails_only_its_own_request(
    predictors: dict[str, Predictor], rows: list[dict[str, Any]]
) -> None:
    """1e300 passes the schema; scikit-learn's forest refuses it (beyond float32) in the
    batch, which is then run request by request."""
    requests = [[{**r, "income": 1e300}] if i % 5 == 0 else [r] for i, r in enumerate(rows)]
    outcomes, sizes = run(predictors["skops"], requests, 64)
    assert sizes == [20]
    for i, outcome in enumerate(outcomes):
        if i % 5 == 0:
            assert outcome.error is not None
            assert outcome.error.problems[0].column == "income"
        else:
            assert outcome.error is None and len(outcome.labels) == 1
