"""Server-side privacy: differential privacy, secure and homomorphic aggregation."""

__all__: list[str] = []
