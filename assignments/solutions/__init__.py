"""Solutions of the exercises in ``assignments/`` (kept apart from the starters)."""
