"""Monitoring: the library's checks run on each window of the prediction log; add your own to CHECKS.

A check takes the window (`window.served`: one row per prediction, with its features, prediction, label
once known, latency and model version) and the monitor section of params.yaml, and returns
`checks.result(name, value, thresholds)` (ok, warn or alert by the thresholds) or
`checks.not_judged(name, why)`. For example, an alert when a region disappears from the traffic:

    from mlops_runtime.params import Thresholds

    def regions_seen(window: Window, params: MonitorParams) -> dict[str, Any]:
        missing = 4 - window.served["region"].nunique()
        return checks.result("regions_seen", missing, Thresholds(warn=1, alert=2))

`monitor` runs every check in CHECKS after the library's; one that fails is reported as not judged.
"""

from mlops_runtime.monitoring.job import WindowCheck

CHECKS: list[WindowCheck] = []
