"""Alias of :mod:`meanfield.io` for ``bench.py`` until it imports io (delete at merge)."""

from .io import manifest as manifest
from .io import write_json as write_json
