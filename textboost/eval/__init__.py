"""textboost/eval."""
