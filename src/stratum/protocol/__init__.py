"""Wire protocols driven by botocore service models: parse requests, serialize responses and errors."""
