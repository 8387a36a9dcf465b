"""Reads an OpenMetrics exposition on stdin with Prometheus' own client
library (prometheus_client) and prints its samples as JSON lines:
{"name": ..., "labels": {...}, "value": ...}. Exits non-zero if the text
does not parse."""
import json
import sys

from prometheus_client.openmetrics.parser import text_string_to_metric_families

for family in text_string_to_metric_families(sys.stdin.read()):
    for sample in family.samples:
        print(json.dumps({"name": sample.name, "labels": sample.labels, "value": sample.value}))
