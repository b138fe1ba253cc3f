"""fedlab's version, in a module that imports nothing, so any part of fedlab can read it.

``fedlab.__version__`` is this same string.

Examples
--------
>>> import fedlab
>>> from fedlab.version import __version__
>>> fedlab.__version__ == __version__
True
"""

__all__ = ["__version__"]

#: The version of the ``fedlab-sdk`` distribution (``pyproject.toml`` says the same).
__version__ = "0.1.0"
