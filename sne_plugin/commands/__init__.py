"""The product's ``sne`` sub-commands: ``inspect``, ``fit`` and ``predict`` (one module each;
:mod:`sne_plugin.cli` imports a module only when its command runs)."""
