"""Deterministic synthetic customer data for the demo source, with a drift knob.

The columns match the sample schema.yaml: five numeric and two categorical features,
some missing values, and a target with a learnable signal for each task.
`drift` moves the feature distributions (within the contract's ranges) the way a
changing customer base would, so monitoring has something real to catch.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from collections.abc import Mapping

    import numpy as np
    import pandas as pd

TARGETS = {
    "binary_classification": "churned",
    "multiclass_classification": "segment",
    "regression": "lifetime_value",
}
NUMERIC = ("age", "income", "tenure_months", "monthly_spend", "support_calls")
PLANS = ("basic", "standard", "premium")
REGIONS = ("north", "south", "east", "west")


def generate(
    task: str, rows: int, seed: int, drift: float = 0.0, shift: Mapping[str, float] | None = None
) -> pd.DataFrame:
    """`rows` examples for `task`; the same arguments always give the same frame.

    `shift` moves named numeric features by that many of their standard deviations before the
    target is drawn, so the labels follow the moved inputs (a covariate shift, for monitoring).
    """
    import numpy as np
    import pandas as pd

    rng = np.random.default_rng(seed)
    moves = dict(shift or {})

    def moved(name: str, values: np.ndarray) -> np.ndarray:
        return values + moves.pop(name, 0.0) * values.std()

    age = moved("age", rng.normal(42 + 6 * drift, 12, rows)).clip(18, 90).round()
    tenure_months = moved("tenure_months", rng.exponential(30 / (1 + 0.5 * drift), rows)).clip(0, 120).round()
    monthly_spend = moved("monthly_spend", rng.gamma(4.0, 20.0 * (1 + 0.3 * drift), rows)).clip(0, 1000).round(2)
    income = moved("income", rng.lognormal(10.8, 0.4, rows)).clip(0, 500_000).round(-2)
    support_calls = moved("support_calls", rng.poisson(2.0 + drift, rows).astype(float)).clip(0, 30).round()
    if moves:
        raise ValueError(f"cannot shift {sorted(moves)}: the numeric sample features are {NUMERIC}")
    plan_weights = np.array([0.5 + 0.1 * drift, 0.3, 0.2])
    plan = rng.choice(PLANS, rows, p=plan_weights / plan_weights.sum())
    region = rng.choice(REGIONS, rows).astype(object)

    plan_effect = pd.Series(plan).map({"basic": 0.6, "standard": 0.0, "premium": -0.8}).to_numpy()
    region_effect = pd.Series(region).map({"north": 0.4, "south": -0.4, "east": 0.0, "west": 0.2}).to_numpy()
    # Every feature carries some signal, so the acceptance check "every feature is beneficial" holds.
    score = (
        0.55 * (support_calls - 2)
        - 0.035 * (tenure_months - 30)
        + 0.012 * (monthly_spend - 80)
        - 0.025 * (age - 42)
        - 1.2 * (np.log1p(income) - 10.8)
        + plan_effect
        + region_effect
        + rng.normal(0, 0.5, rows)
    )

    # Missing values are drawn after the signal, as in real exports.
    income[rng.random(rows) < 0.08] = np.nan
    region[rng.random(rows) < 0.05] = None

    frame = pd.DataFrame(
        {
            "age": age,
            "income": income,
            "tenure_months": tenure_months,
            "monthly_spend": monthly_spend,
            "support_calls": support_calls,
            "plan": plan,
            "region": region,
        }
    )
    frame[TARGETS[task]] = _target(task, score, tenure_months, monthly_spend, rng)
    return frame


def _target(
    task: str,
    score: np.ndarray,
    tenure_months: np.ndarray,
    monthly_spend: np.ndarray,
    rng: np.random.Generator,
) -> np.ndarray:
    import numpy as np

    if task == "binary_classification":
        probability = 1 / (1 + np.exp(-1.8 * (score - 0.9)))
        return (rng.random(len(score)) < probability).astype(int)
    if task == "multiclass_classification":
        return np.select([score < -0.6, score < 0.9], ["low", "medium"], default="high")
    if task == "regression":
        value = 40 + 6 * tenure_months + 2.0 * monthly_spend - 45 * score + rng.normal(0, 40, len(score))
        return value.clip(0, 5000).round(2)
    raise ValueError(f"unknown task {task!r}")
