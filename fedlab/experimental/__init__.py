"""Unstable API: may change without notice between releases. Empty for now."""

__all__: list[str] = []
