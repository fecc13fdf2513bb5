"""Train the churn classifier on synthetic data and save it as a modelkeep bundle.

The whole preprocessing lives in the pipeline (impute, scale, one-hot encode), so the
saved bundle turns raw customer records into predictions with nothing left to redo by hand.

Run from the repository root::

    python examples/churn/train.py --rows 5000 --seed 0 --classifier random_forest \\
        --out examples/churn/out/churn_model

then try the bundle with ``python examples/churn/predict.py examples/churn/out/churn_model``.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence
from pathlib import Path

import pandas as pd
from data import CATEGORICAL_FEATURES, FEATURES, NUMERIC_FEATURES, TARGET, generate
from sklearn.compose import ColumnTransformer
from sklearn.ensemble import HistGradientBoostingClassifier, RandomForestClassifier
from sklearn.impute import SimpleImputer
from sklearn.linear_model import LogisticRegression
from sklearn.metrics import f1_score, roc_auc_score
from sklearn.model_selection import train_test_split
from sklearn.pipeline import Pipeline
from sklearn.preprocessing import OneHotEncoder, StandardScaler

__all__ = ["CLASSIFIERS", "build_pipeline", "main", "train"]

CLASSIFIERS = ("random_forest", "logistic", "hist_gradient_boosting")
LABELS = {0: "No Churn", 1: "Churn"}
DEFAULT_OUT = Path(__file__).resolve().parent / "out" / "churn_model"


def build_pipeline(
    classifier: str = "random_forest", *, n_estimators: int = 300, seed: int = 0
) -> Pipeline:
    """Build the unfitted churn pipeline: preprocessing followed by a classifier.

    Numeric columns are median-imputed and standardised; ``contract_type`` is one-hot
    encoded, ignoring categories not seen in training.

    Parameters
    ----------
    classifier:
        One of :data:`CLASSIFIERS`.
    n_estimators:
        Number of trees; used by ``"random_forest"`` only.
    seed:
        ``random_state`` of the classifier.

    Raises
    ------
    ValueError
        If ``classifier`` is not one of :data:`CLASSIFIERS`.

    Example
    -------
    >>> build_pipeline("logistic").steps[-1][0]
    'classifier'
    """
    preprocess = ColumnTransformer(
        [
            (
                "numeric",
                Pipeline(
                    [("impute", SimpleImputer(strategy="median")), ("scale", StandardScaler())]
                ),
                NUMERIC_FEATURES,
            ),
            (
                "contract",
                OneHotEncoder(handle_unknown="ignore", sparse_output=False),
                CATEGORICAL_FEATURES,
            ),
        ]
    )
    if classifier == "random_forest":
        # n_jobs=1: the setting is saved with the model and applies again at predict time,
        # where a prediction service calling with a handful of rows should not start a
        # thread per core on every request. Training 300 trees on a few thousand rows takes
        # seconds either way, and the fitted forest is identical for any n_jobs.
        # min_samples_leaf=5: fully grown trees memorise this noisy label; small leaves
        # smooth the probabilities (slightly better ROC-AUC) and shrink the saved bundle.
        model = RandomForestClassifier(
            n_estimators=n_estimators, min_samples_leaf=5, random_state=seed, n_jobs=1
        )
    elif classifier == "logistic":
        model = LogisticRegression(max_iter=1000, random_state=seed)
    elif classifier == "hist_gradient_boosting":
        model = HistGradientBoostingClassifier(random_state=seed)
    else:
        raise ValueError(
            f"Unknown classifier {classifier!r}; expected one of {', '.join(CLASSIFIERS)}."
        )
    return Pipeline([("preprocess", preprocess), ("classifier", model)])


def train(
    data: pd.DataFrame,
    classifier: str = "random_forest",
    *,
    seed: int = 0,
    n_estimators: int = 300,
    test_size: float = 0.25,
) -> tuple[Pipeline, dict[str, float], pd.DataFrame]:
    """Fit the churn pipeline on a stratified split of ``data`` and score the holdout.

    Parameters
    ----------
    data:
        A frame with the :data:`~data.FEATURES` and the :data:`~data.TARGET` column, as
        made by :func:`data.generate`; other columns (``customer_id``) are ignored.
    classifier, n_estimators, seed:
        Passed to :func:`build_pipeline`; ``seed`` also fixes the split.
    test_size:
        Share of rows held out for the metrics.

    Returns
    -------
    tuple
        The fitted pipeline; the holdout metrics ``{"f1": ..., "roc_auc": ...}`` rounded to
        four decimals; and the training features (the frame the pipeline was fitted on,
        which is the sample to save with the model).

    Raises
    ------
    ValueError
        If ``data`` lacks a feature or the target column, or ``classifier`` is unknown.
    """
    missing = sorted(set([*FEATURES, TARGET]) - set(data.columns))
    if missing:
        raise ValueError(
            f"Training data is missing column(s) {', '.join(missing)}; "
            "expected a frame like data.generate() returns."
        )
    pipeline = build_pipeline(classifier, n_estimators=n_estimators, seed=seed)
    X_train, X_test, y_train, y_test = train_test_split(
        data[FEATURES],
        data[TARGET],
        test_size=test_size,
        stratify=data[TARGET],
        random_state=seed,
    )
    pipeline.fit(X_train, y_train)
    churn_probability = pipeline.predict_proba(X_test)[:, 1]
    metrics = {
        "f1": round(float(f1_score(y_test, pipeline.predict(X_test))), 4),
        "roc_auc": round(float(roc_auc_score(y_test, churn_probability)), 4),
    }
    return pipeline, metrics, X_train


def main(argv: Sequence[str] | None = None) -> int:
    """Command line: generate data, train, print the holdout metrics, save the bundle."""
    parser = argparse.ArgumentParser(description="Train and save the churn example model.")
    parser.add_argument("--rows", type=int, default=5000, help="number of synthetic customers")
    parser.add_argument("--seed", type=int, default=0, help="seed for data, split and model")
    parser.add_argument("--classifier", choices=CLASSIFIERS, default="random_forest")
    parser.add_argument("--n-estimators", type=int, default=300, help="trees (random_forest)")
    parser.add_argument(
        "--out", type=Path, default=DEFAULT_OUT, help=f"bundle directory (default: {DEFAULT_OUT})"
    )
    args = parser.parse_args(argv)

    rows, seed = args.rows, args.seed
    data = generate(rows, seed=seed)
    pipeline, metrics, X_train = train(
        data, args.classifier, seed=seed, n_estimators=args.n_estimators
    )
    print(f"{args.classifier} on {rows} rows (seed {seed}), holdout metrics:")
    for name, value in metrics.items():
        print(f"  {name:<8} {value:.4f}")

    # Imported here, not at the top, so that build_pipeline() and train() stay importable
    # (and testable) on their own.
    import modelkeep

    manifest = modelkeep.save(
        pipeline,
        args.out,
        sample=X_train,
        name="churn",
        labels=LABELS,
        metrics=metrics,
        data_version=f"synthetic-churn-seed{seed}-n{rows}",
        description="Telecom churn classifier (synthetic example data)",
        tags=["example", "churn"],
        overwrite=True,
    )
    print(f"Saved {manifest.name} {manifest.version} to {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
