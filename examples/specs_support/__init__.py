"""Python steps for the spec examples in ``examples/specs/``.

Spec files name these functions as ``examples.specs_support.<module>:<function>``. The
``examples`` folder has no ``__init__.py``: it is a namespace package, importable because
spec python steps put the working directory on ``sys.path`` (run from the repo root).
"""
