"""CloudWatch metrics (the monitoring API): datapoints, statistics, metric math and alarms."""
