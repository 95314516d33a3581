"""Small shared utilities (recipe configs, atomic writes)."""
