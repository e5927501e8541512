"""AWS Key Management Service: symmetric keys, key policies, aliases and the envelope encryption S3 uses."""
