"""Integrations with other frameworks, one sub-package each (``sne_plugin.integrations.optuna``)."""
