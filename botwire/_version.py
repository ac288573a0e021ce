"""The release of botwire: one place, read by the package metadata (pyproject.toml) too."""

__version__ = "0.4.0"


def install_hint(extra: str) -> str:
    """The command that installs the ``extra``.

    This release is not on the package index yet, and ``botwire`` there is the hosted
    service's SDK (0.2.x), which has none of these extras: it installs from a checkout.
    """
    return (
        f"pip install -e '.[{extra}]' in a botwire checkout (or a built wheel: pip install "
        f"'botwire-{__version__}-py3-none-any.whl[{extra}]'); botwire {__version__} is not on "
        "the package index yet, where `botwire` is the hosted service's 0.2 SDK"
    )
