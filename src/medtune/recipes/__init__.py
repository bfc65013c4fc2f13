"""Recipes: YAML files that say what runs, validated by the pydantic models in ``schema``."""
