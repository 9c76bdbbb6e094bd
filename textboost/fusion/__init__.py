"""textboost/fusion."""
