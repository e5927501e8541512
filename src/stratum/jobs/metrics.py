"""Training metrics read from a job's log: the MetricDefinitions regexes (first group is the value,
last match wins, as FinalMetricDataList reports it) and the built-in XGBoost's evaluation lines."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

# "[12]#011train-rmse:2.1#011validation-rmse:2.3" (CloudWatch shows the tab as #011).
XGBOOST_EVAL = re.compile(r"(?:#011|\t)([A-Za-z_]+)-([A-Za-z0-9_@.\-]+?):([-+]?(?:\d+\.?\d*|\.\d+)(?:[eE][-+]?\d+)?)")
XGBOOST_LINE = re.compile(r"^\[\d+\]")


def _float(text: str) -> float | None:
    try:
        return float(text)
    except ValueError:
        return None


def parse_metrics(log_path: str | Path, definitions: list[dict[str, str]], builtin_xgboost: bool,
                  timestamp: float) -> list[dict[str, Any]]:
    """FinalMetricDataList entries, epoch-second timestamps."""
    compiled = []
    for definition in definitions:
        try:
            compiled.append((definition["Name"], re.compile(definition["Regex"])))
        except re.error:
            continue  # validated at creation; an unusable one simply never matches
    final: dict[str, float] = {}
    path = Path(log_path)
    if not path.is_file() or (not compiled and not builtin_xgboost):
        return []
    with open(path, encoding="utf-8", errors="replace") as f:
        for line in f:
            for name, regex in compiled:
                m = regex.search(line)
                if m is not None:
                    value = _float(m.group(1) if m.groups() else m.group(0))
                    if value is not None:
                        final[name] = value
            if builtin_xgboost and XGBOOST_LINE.match(line):
                for channel, metric, value_text in XGBOOST_EVAL.findall(line):
                    value = _float(value_text)
                    if value is not None:
                        final[f"{channel}:{metric}"] = value
    return [{"MetricName": name, "Value": value, "Timestamp": timestamp} for name, value in final.items()]
