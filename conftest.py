"""Collection settings for the whole tree (doctests of sne_plugin included)."""

from __future__ import annotations

import importlib.util

# The doctests of an integration import its framework: without it installed (an install
# without that extra), leave the module out instead of failing the collection. Its tests
# under tests/integrations skip themselves (importorskip).
collect_ignore_glob = [
    f"sne_plugin/integrations/{name}/*"
    for name in ("skorch", "lightning", "ray")
    if importlib.util.find_spec(name) is None
]
