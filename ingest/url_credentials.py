"""Credentials in a service URL (HAZMON_INFLUX_URL, HAZMON_MQTT_URL): taken out for the client,
masked wherever the URL is shown (a log line, an error message)."""

from __future__ import annotations

from urllib.parse import unquote, urlsplit, urlunsplit


def split_credentials(url: str) -> tuple[str, str | None, str | None]:
    """`http://user:pass@host:8086` -> (`http://host:8086`, user, pass): the URL without its
    credentials, which then travel as HTTP basic auth and never in a URL a message could show."""
    parts = urlsplit(url)
    if "@" not in parts.netloc:
        return url, None, None
    userinfo, host = parts.netloc.rsplit("@", 1)
    user, _, password = userinfo.partition(":")
    return urlunsplit(parts._replace(netloc=host)), unquote(user) or None, unquote(password) or None


def redacted(url: str) -> str:
    """The URL for a message: whatever stands between `:` and the last `@` (a password) is `***`.

    Works on the text, not on a parse, so even a URL too broken to parse never shows its password."""
    head, at, tail = url.rpartition("@")
    if not at:
        return url
    scheme, sep, userinfo = head.rpartition("//")
    user = userinfo.split(":", 1)[0]
    return f"{scheme}{sep}{user}{':***' if ':' in userinfo else ''}@{tail}"
