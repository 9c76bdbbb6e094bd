"""textboost/protocol."""
