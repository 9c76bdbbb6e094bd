"""downlink."""
