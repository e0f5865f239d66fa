class ConfigError(ValueError):
    """A configuration that cannot run; its message says what to change."""
