"""The evaluate stage's library: metrics and curves (no drawing), and the report pictures."""
