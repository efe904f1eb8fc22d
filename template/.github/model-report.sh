#!/usr/bin/env bash
# The model report a reviewer reads on a pull request, as Markdown on stdout: what the change does
# to the metrics (`dvc metrics diff` against BASE, a git revision) and the acceptance gate's verdict
# (models/acceptance.json, one row per check). ci.yml comments it on pull requests; train.yml puts
# it in the body of the pull request it opens. Needs uv and jq; run it after the pipeline:
#   bash .github/model-report.sh origin/main
set -euo pipefail
base="${1:?usage: model-report.sh BASE (a git revision, e.g. origin/main)}"

echo "## Model report"
echo
echo "### Metrics against \`$base\`"
echo
metrics_diff="$(uv run --frozen dvc metrics diff "$base" --md)"
echo "${metrics_diff:-No metric changed.}"
echo
echo "### Acceptance gate"
echo
if [[ -f models/acceptance.json ]]; then
  jq --raw-output '
    (if .accepted then "**Accepted**" else "**Refused**" end)
      + ": \([.checks[] | select(.passed)] | length) of \(.checks | length) checks passed.",
    "",
    "| result | check | ML Test Score item | detail |",
    "|---|---|---|---|",
    (.checks[] | "| \(if .passed then "pass" else "**FAIL**" end) | \(.rule) | \(.item)"
      + " | \(.message | gsub("\\|"; "\\|")) |")
  ' models/acceptance.json
else
  echo "No verdict: the pipeline stopped before the accept stage (see the job's log)."
fi
