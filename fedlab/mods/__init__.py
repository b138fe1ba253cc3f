"""Client Mods: functions that wrap a ClientApp's handlers (privacy, limits)."""

__all__: list[str] = []
