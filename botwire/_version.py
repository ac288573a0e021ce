"""The release of botwire: one place, read by the package metadata (pyproject.toml) too."""

__version__ = "0.4.0"


def install_hint(extra: str) -> str:
    """The command that installs the ``extra``, from the package index or a source checkout.

    The lower bound matters: the index also holds releases of the hosted service's SDK under
    the same name (0.2.x), which have none of these extras.
    """
    return (
        f"pip install 'botwire[{extra}]>={__version__}' "
        f"(from a source checkout: pip install -e '.[{extra}]')"
    )
