"""Call records, metrics, cost and review. `record` holds plain data types that the agent produces."""
