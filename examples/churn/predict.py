"""Score new customers with a saved churn bundle.

Run from the repository root, after ``train.py`` has written the bundle::

    python examples/churn/predict.py examples/churn/out/churn_model

The customers are plain records (dicts), as a prediction service would receive them; the
loaded model checks them against the saved schema, runs the pipeline and answers in
business labels ("Churn" / "No Churn").
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from data import FEATURES, ID_COLUMN, generate

__all__ = ["format_table", "main", "new_customers"]

# Not the training seed, so these customers were never seen in training.
NEW_CUSTOMER_SEED = 2026


def new_customers(
    n: int = 5, *, seed: int = NEW_CUSTOMER_SEED
) -> tuple[list[str], list[dict[str, Any]]]:
    """Make ``n`` fresh customers: their ids and their feature records (no churn label)."""
    frame = generate(n, seed=seed)
    ids = frame[ID_COLUMN].tolist()
    records = frame[FEATURES].to_dict(orient="records")
    return ids, records


def format_table(ids: Sequence[str], labels: Sequence[str], probabilities: Sequence[float]) -> str:
    """An aligned text table: one line per customer with label and churn probability."""
    rows = [
        (str(id_), str(label), f"{probability:.3f}")
        for id_, label, probability in zip(ids, labels, probabilities, strict=True)
    ]
    header = ("customer", "prediction", "P(churn)")
    widths = [max(len(row[i]) for row in [header, *rows]) for i in range(len(header))]
    lines = [
        f"{row[0]:<{widths[0]}}  {row[1]:<{widths[1]}}  {row[2]:>{widths[2]}}"
        for row in [header, *rows]
    ]
    lines.insert(1, "  ".join("-" * width for width in widths))
    return "\n".join(lines)


def main(argv: Sequence[str] | None = None) -> int:
    """Command line: load the bundle at BUNDLE_PATH and print predictions for 5 customers."""
    parser = argparse.ArgumentParser(description="Predict churn for five new customers.")
    parser.add_argument("bundle", type=Path, metavar="BUNDLE_PATH", help="saved churn bundle")
    args = parser.parse_args(argv)

    # Imported here so that new_customers() and format_table() import on their own.
    import modelkeep

    ids, records = new_customers()
    model = modelkeep.load(args.bundle)
    labels = model.predict(records)
    churn_probability = model.predict_proba(records)["Churn"]
    print(format_table(ids, list(labels), [float(p) for p in churn_probability]))
    return 0


if __name__ == "__main__":
    sys.exit(main())
