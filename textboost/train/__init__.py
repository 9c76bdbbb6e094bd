"""textboost/train."""
