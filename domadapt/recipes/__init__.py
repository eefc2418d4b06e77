"""Recipes as objects: listing the shipped YAML files, resolving them as ``--print_config`` does, running
them at a small scale (``domadapt smoke``) and holding real-data recipes to their cards of the released
code's settings (``recipes/cards/``)."""

from domadapt.recipes.listing import is_pipeline, list_recipes, uses_real_data
from domadapt.recipes.resolve import resolve_args, resolve_recipe

__all__ = ["is_pipeline", "list_recipes", "resolve_args", "resolve_recipe", "uses_real_data"]
