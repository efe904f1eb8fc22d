"""Your own metrics: add them to METRICS, and they are scored wherever the built-in ones are.

Each is `Metric(name, tasks, higher_is_better, compute)`, where `compute(y_true, predicted, proba, classes)`
scores the rows of a split (`proba`: class probabilities in `classes` order; None for regression). They
appear in reports/metrics.json, the tuning trials, the gate's margin and monitoring's realised
performance, and `train.primary_metric` may name one. For example, the precision among the tenth of the
rows with the highest probability of the positive class:

    def top_decile_precision(y_true: Any, predicted: Any, proba: Any, classes: list[Any]) -> float:
        top = proba[:, 1] >= np.quantile(proba[:, 1], 0.9)
        return float((y_true[top] == classes[1]).mean())

    METRICS = [Metric("top_decile_precision", ("binary_classification",), True, top_decile_precision)]
"""

from mlops_runtime.metrics import Metric, register

METRICS: list[Metric] = []

for metric in METRICS:
    register(metric)
