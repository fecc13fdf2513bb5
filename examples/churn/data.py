"""Synthetic telecom churn data for the modelkeep example.

Each row is one customer. The columns follow the churn scenario in the modelkeep docs:

========================  ==========  ========================================================
column                    dtype       meaning
========================  ==========  ========================================================
``customer_id``           str         identifier such as ``"4821-QKZTB"``; not a feature
``tenure``                int64       months as a customer, 0..72, most customers are recent
``monthly_charges``       float64     bill per month, 18..120, higher with more services
``support_complaints``    int64       support complaints this year, 0..10
``payment_delay_days``    float64     days the last payment was late, 0..90, mostly 0
``contract_type``         str         ``"month-to-month"``, ``"one-year"`` or ``"two-year"``
``usage_change``          float64     percent change in usage vs the previous quarter, -60..60
``churn``                 int64       1 if the customer left, else 0
========================  ==========  ========================================================

``churn`` is drawn from a logistic model of the *complete* features: short tenure,
month-to-month contracts, complaints, late payments, high charges and falling usage all
raise the odds. Afterwards ``monthly_charges``, ``usage_change`` and ``payment_delay_days``
each lose about ``missing_rate`` of their values to NaN, as a real extract would. So that the
schema does not depend on ``missing_rate``, ``payment_delay_days`` is always float64 (whole
numbers, or NaN).

Run as a script to write a CSV::

    python examples/churn/data.py --rows 5000 --seed 0 --out churn.csv
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence

import numpy as np
import pandas as pd

__all__ = [
    "CATEGORICAL_FEATURES",
    "CONTRACT_TYPES",
    "FEATURES",
    "ID_COLUMN",
    "NUMERIC_FEATURES",
    "TARGET",
    "generate",
    "main",
]

ID_COLUMN = "customer_id"
TARGET = "churn"
CONTRACT_TYPES = ("month-to-month", "one-year", "two-year")
NUMERIC_FEATURES = [
    "tenure",
    "monthly_charges",
    "support_complaints",
    "payment_delay_days",
    "usage_change",
]
CATEGORICAL_FEATURES = ["contract_type"]
FEATURES = [
    "tenure",
    "monthly_charges",
    "support_complaints",
    "payment_delay_days",
    "contract_type",
    "usage_change",
]

# Share of customers on each contract, in CONTRACT_TYPES order.
_CONTRACT_SHARES = (0.55, 0.25, 0.20)
# Tenure in months ~ Gamma(shape, scale) per contract: recent customers dominate, and
# customers on long contracts have been around longer.
_TENURE_SHAPE = (1.0, 2.0, 3.0)
_TENURE_SCALE = (14.0, 14.0, 15.0)
# Chance of each optional service (internet, streaming, ...) per contract, and the
# discount long contracts get on the bill.
_SERVICE_PROB = (0.45, 0.55, 0.60)
_CONTRACT_DISCOUNT = (1.00, 0.95, 0.90)
# Logistic churn model: log-odds per unit of each driver. The intercept puts the overall
# churn rate near 25%.
_INTERCEPT = -0.5
_CONTRACT_LOGIT = (0.0, -1.3, -2.6)
_COEF_TENURE = -0.045  # per month
_COEF_COMPLAINTS = 0.45  # per complaint
_COEF_DELAY = 0.03  # per day late
_COEF_CHARGES = 0.025  # per currency unit above 65
_COEF_USAGE = -0.04  # per percentage point of usage change
_MISSING_COLUMNS = ("monthly_charges", "usage_change", "payment_delay_days")


def generate(n_rows: int = 5000, *, seed: int = 0, missing_rate: float = 0.02) -> pd.DataFrame:
    """Generate a synthetic telecom churn table.

    Parameters
    ----------
    n_rows:
        Number of customers (rows).
    seed:
        Seed for the random generator; the same seed gives an identical frame.
    missing_rate:
        Probability that each value of ``monthly_charges``, ``usage_change`` and
        ``payment_delay_days`` is replaced by NaN, independently per cell.

    Returns
    -------
    pandas.DataFrame
        ``customer_id``, the :data:`FEATURES` and :data:`TARGET`, in the order of the
        table in the module docstring, with a default RangeIndex.

    Raises
    ------
    ValueError
        If ``n_rows`` is negative or ``missing_rate`` is outside [0, 1).

    Example
    -------
    >>> frame = generate(1000, seed=7)
    >>> frame.shape
    (1000, 8)
    """
    if n_rows < 0:
        raise ValueError(f"n_rows must be >= 0, got {n_rows}.")
    if not 0.0 <= missing_rate < 1.0:
        raise ValueError(f"missing_rate must be in [0, 1), got {missing_rate}.")

    # One generator, drawn from in a fixed order: changing the order changes every column.
    rng = np.random.default_rng(seed)

    contract_idx = rng.choice(len(CONTRACT_TYPES), size=n_rows, p=_CONTRACT_SHARES)
    contract = np.asarray(CONTRACT_TYPES, dtype=object)[contract_idx]
    is_month_to_month = contract_idx == 0

    shape = np.asarray(_TENURE_SHAPE)[contract_idx]
    scale = np.asarray(_TENURE_SCALE)[contract_idx]
    tenure = np.clip(np.floor(rng.gamma(shape, scale)), 0, 72).astype(np.int64)

    # Phone line plus up to four optional services, each adding roughly 20 to the bill.
    services = 1 + rng.binomial(4, np.asarray(_SERVICE_PROB)[contract_idx])
    add_ons = rng.uniform(0.0, 15.0, size=n_rows)
    list_price = 18.0 + 20.0 * (services - 1) + add_ons
    charges = list_price * np.asarray(_CONTRACT_DISCOUNT)[contract_idx]
    charges = np.round(np.clip(charges + rng.normal(0.0, 4.0, size=n_rows), 18.0, 120.0), 2)

    # Poisson counts whose rate varies per customer (a gamma mixture): a few customers
    # complain a lot, most not at all.
    rate = (0.5 + 0.5 * is_month_to_month) * rng.gamma(2.0, 0.5, size=n_rows)
    complaints = np.clip(rng.poisson(rate), 0, 10).astype(np.int64)

    is_late = rng.random(n_rows) < np.where(is_month_to_month, 0.25, 0.12)
    delay_if_late = np.clip(np.round(1.0 + rng.gamma(1.5, 10.0, size=n_rows)), 1, 90)
    delay = np.where(is_late, delay_if_late, 0.0)

    # Most customers' usage drifts a little; a minority is disengaging fast.
    disengaging = rng.random(n_rows) < 0.15
    usage = np.where(
        disengaging,
        rng.normal(-28.0, 15.0, size=n_rows),
        rng.normal(3.0, 15.0, size=n_rows),
    )
    # Adding 0.0 turns the -0.0 that rounding leaves into 0.0, which prints cleanly in CSV.
    usage = np.round(np.clip(usage, -60.0, 60.0), 1) + 0.0

    log_odds = (
        _INTERCEPT
        + np.asarray(_CONTRACT_LOGIT)[contract_idx]
        + _COEF_TENURE * tenure
        + _COEF_COMPLAINTS * complaints
        + _COEF_DELAY * delay
        + _COEF_CHARGES * (charges - 65.0)
        + _COEF_USAGE * usage
    )
    churn = (rng.random(n_rows) < 1.0 / (1.0 + np.exp(-log_odds))).astype(np.int64)

    frame = pd.DataFrame(
        {
            ID_COLUMN: pd.array(_customer_ids(rng, n_rows), dtype="str"),
            "tenure": tenure,
            "monthly_charges": charges,
            "support_complaints": complaints,
            "payment_delay_days": delay.astype(np.float64),
            "contract_type": pd.array(contract, dtype="str"),
            "usage_change": usage,
            TARGET: churn,
        }
    )
    # Blank values after drawing churn: the label depends on the true values, as it would
    # for real customers whose record is incomplete.
    for column in _MISSING_COLUMNS:
        frame.loc[rng.random(n_rows) < missing_rate, column] = np.nan
    return frame


def _customer_ids(rng: np.random.Generator, n_rows: int) -> list[str]:
    """Distinct ids like ``"4821-QKZTB"``: four digits, a dash, five capital letters."""
    letters = 26**5
    codes = rng.choice(10_000 * letters, size=n_rows, replace=False)
    ids = []
    for code in codes.tolist():
        digits, rest = divmod(code, letters)
        chars = []
        for _ in range(5):
            rest, char = divmod(rest, 26)
            chars.append(chr(ord("A") + char))
        ids.append(f"{digits:04d}-{''.join(chars)}")
    return ids


def main(argv: Sequence[str] | None = None) -> int:
    """Command line: write a generated table as CSV (to stdout without ``--out``)."""
    parser = argparse.ArgumentParser(description="Generate synthetic telecom churn data.")
    parser.add_argument("--rows", type=int, default=5000, help="number of customers")
    parser.add_argument("--seed", type=int, default=0, help="random seed")
    parser.add_argument(
        "--missing-rate", type=float, default=0.02, help="share of NaN in the gappy columns"
    )
    parser.add_argument("--out", default=None, help="CSV path to write (default: stdout)")
    args = parser.parse_args(argv)
    try:
        frame = generate(args.rows, seed=args.seed, missing_rate=args.missing_rate)
    except ValueError as exc:
        parser.error(str(exc))
    if args.out is None:
        frame.to_csv(sys.stdout, index=False)
    else:
        frame.to_csv(args.out, index=False)
        print(
            f"Wrote {len(frame)} rows to {args.out} (churn rate {frame[TARGET].mean():.1%}).",
            file=sys.stderr,
        )
    return 0


if __name__ == "__main__":
    sys.exit(main())
