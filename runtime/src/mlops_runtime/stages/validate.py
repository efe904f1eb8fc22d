"""Stage validate: check data/raw against the contract; stop the pipeline on violations."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from ..errors import StageError
from ..files import plain, write_json

if TYPE_CHECKING:
    import pandas as pd
    import pandera.pandas as pa

    from ..paths import Paths


def stop_on_problems(problems: list[dict[str, Any]], rows: int, paths: Paths) -> None:
    """Write reports/validation.json; when there are problems, stop the pipeline with a StageError listing each."""
    write_json(paths.validation_report, {"valid": not problems, "rows": rows, "problems": problems})
    if problems:
        raise StageError(
            f"{len(problems)} contract violations in {paths.raw} (report: {paths.validation_report}):\n"
            + "\n".join(format_problem(problem) for problem in problems)
        )


def find_problems(frame: pd.DataFrame, schema: pa.DataFrameSchema, max_examples: int) -> list[dict[str, Any]]:
    """Every violation, grouped by column and rule, with a count and a few examples."""
    import pandera.pandas as pa

    try:
        schema.validate(frame, lazy=True)
    except pa.errors.SchemaErrors as errors:
        cases = errors.failure_cases
    else:
        return []
    problems = []
    for (column, check), group in cases.groupby(["column", "check"], dropna=False, sort=True):
        column_name = None if column != column else str(column)  # NaN for frame-level checks
        if check == "column_in_dataframe" or column_name is None:
            column_name = str(group["failure_case"].iloc[0])
            problems.append({"column": column_name, "rule": "column present", "count": 1, "examples": []})
            continue
        if str(check).startswith("at most"):
            count = int(frame[column_name].isna().sum())
            examples = [f"{count / max(len(frame), 1):.1%} missing"]
        else:
            count = len(group)
            examples = [plain(value) for value in group["failure_case"].drop_duplicates().head(max_examples)]
        problems.append({"column": column_name, "rule": str(check), "count": count, "examples": examples})
    return problems


def format_problem(problem: dict[str, Any]) -> str:
    examples = ", ".join(repr(value) for value in problem["examples"])
    return f"  - {problem['column']}: {problem['rule']} failed for {problem['count']} rows" + (
        f" (e.g. {examples})" if examples else ""
    )
