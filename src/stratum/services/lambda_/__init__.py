"""AWS Lambda API: functions, versions, aliases, resource policies and tags. Invocations run in
stratum.functions (the runtime)."""
