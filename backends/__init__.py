"""bondctl's built-in backends, installed as bondctl.backends (see pyproject.toml)."""
