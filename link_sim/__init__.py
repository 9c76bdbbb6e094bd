"""link_sim."""
