"""The research harness: what the project uses to build evidence, not what a user needs to
predict or prune.

- :mod:`~sne_plugin.research.zoo`: datasets, architectures and the trainer that builds zoos
  of small networks offline, and loaders of published zoos;
- :mod:`~sne_plugin.research.baselines`: StatNN, DeepSets, a flat MLP and NFN-HNP, with
  :class:`~sne_plugin.SNERegressor`'s interface;
- :mod:`~sne_plugin.research.bench`: ``sne bench`` and every benchmark script
  (``python -m sne_plugin.research.bench.<name>``);
- :mod:`~sne_plugin.research.digits_search`: the digits CNN search that the example, the
  demo, the pruner benchmarks and the tests run;
- :mod:`~sne_plugin.research.demo`: ``sne demo``.

It may import the product (``sne_plugin`` and its integrations); the product never imports it.
"""
