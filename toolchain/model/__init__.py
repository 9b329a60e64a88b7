"""cluster.yaml in, an immutable resolved cluster out: reading, the field table, checks, the cache."""
