"""The release of this package: the one place its version is written (the package, the
command line's ``--version`` and the conformance driver read it here)."""

__version__ = "0.1.0"
