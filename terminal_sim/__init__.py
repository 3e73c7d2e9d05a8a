"""terminal_sim package."""
