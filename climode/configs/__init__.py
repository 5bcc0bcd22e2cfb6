"""The built-in training configs: YAML files in this package, loaded by name (``climode.config.load_config``)."""

from importlib import resources


def builtin_configs() -> list[str]:
    """The built-in configs' names (their files' stems)."""
    return sorted(p.name.removesuffix(".yaml") for p in resources.files(__name__).iterdir() if p.name.endswith(".yaml"))
