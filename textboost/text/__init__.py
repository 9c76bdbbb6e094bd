"""textboost/text."""
