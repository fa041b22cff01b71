"""Seam endpoints as settings give them: checked to be an ``http(s)://`` URL without
credentials, and shown without any."""

from __future__ import annotations

import urllib.parse

from pipeline.common.errors import ConfigError


def _redacted(url: str) -> str:
    """``url`` without any user name or password (for messages)."""
    before, at, after = url.rpartition("@")
    if not at:
        return url
    scheme, separator, _ = before.partition("://")
    return f"{scheme}://***@{after}" if separator else f"***@{after}"


def check_endpoint(url: str, setting: str) -> None:
    """Refuse an endpoint that isn't an ``http(s)://host[:port][/path]`` URL (ConfigError).

    One holding a user name or password is refused too: Seam authenticates with the key alone,
    and a URL's credentials would land in every message that names the URL. ``setting`` names
    where the value came from; the message never shows the credentials.
    """
    try:
        parts = urllib.parse.urlsplit(url)
        parts.port  # noqa: B018 - parsing the port is what raises for a malformed one
    except ValueError as exc:
        raise ConfigError(
            f"{setting} {_redacted(url)!r} is not a URL ({exc})",
            hint="give it as https://host[:port][/path]",
        ) from exc
    authority = url.partition("://")[2] or url
    if "@" in authority.split("/", 1)[0].split("?", 1)[0].split("#", 1)[0]:
        raise ConfigError(
            f"{setting} {_redacted(url)!r} holds a user name or password",
            hint="remove them: Seam takes the key from SEAM_API_KEY only",
        )
    if parts.scheme.lower() not in ("http", "https") or not parts.hostname:
        raise ConfigError(
            f"{setting} {_redacted(url)!r} is not an http:// or https:// URL",
            hint="give it as https://host[:port][/path]",
        )
