"""Pipelines: papermill runs of parameterised notebooks, and the results they publish."""
