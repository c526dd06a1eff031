"""Sentinel URLs for ``state.url``: ``redis+sentinel://[[user]:password@]host[:port][,host[:port]…]/service[/db]``.

redis-py has no URL form for Sentinel; it takes the sentinels' addresses and the service (master) name
(``redis.sentinel.Sentinel(addresses).master_for(service, db=…, password=…)``), and this URL carries exactly those.
The password (and user) are the master's; the sentinels are asked without one. Pure parsing: no redis import, so
the config can check a URL when it is loaded.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from urllib.parse import unquote

SCHEME = "redis+sentinel"
DEFAULT_PORT = 26379


@dataclass(frozen=True)
class SentinelUrl:
    """What a ``redis+sentinel://`` URL names."""

    sentinels: list[tuple[str, int]]
    service: str
    db: int = 0
    username: str | None = field(default=None, repr=False)
    password: str | None = field(default=None, repr=False)


def is_sentinel_url(url: str) -> bool:
    """Whether ``url`` names Redis through Sentinel."""
    return url.lower().startswith(SCHEME + "://")


def parse_sentinel_url(url: str) -> SentinelUrl:
    """The sentinels, service, db and credentials of ``url``; ValueError saying what is wrong (never the password)."""
    form = f"{SCHEME}://[:password@]host:26379[,host:26379]/service[/db]"
    if not is_sentinel_url(url):
        raise ValueError(f"a Sentinel URL starts with {SCHEME}:// ({form})")
    rest = url[len(SCHEME) + 3 :]
    if "?" in rest or "#" in rest:
        raise ValueError(f"a Sentinel URL takes no query or fragment ({form})")
    netloc, _, path = rest.partition("/")
    userinfo, at, hosts = netloc.rpartition("@")
    username = password = None
    if at:
        user, colon, secret = userinfo.partition(":")
        username = unquote(user) or None
        password = unquote(secret) if colon else None
    sentinels: list[tuple[str, int]] = []
    for address in hosts.split(","):
        host, colon, port = address.strip().rpartition(":") if ":" in address else (address.strip(), "", "")
        if not host or (colon and not port.isdigit()):
            raise ValueError(f"Sentinel URL: {address.strip()!r} is not host[:port] ({form})")
        sentinels.append((host.strip("[]"), int(port) if port else DEFAULT_PORT))
    parts = [unquote(p) for p in path.split("/")] if path else []
    if not parts or not parts[0]:
        raise ValueError(f"Sentinel URL: name the service (the master's name in sentinel.conf) ({form})")
    if len(parts) > 2 or (len(parts) == 2 and not parts[1].isdigit()):
        raise ValueError(f"Sentinel URL: after the service only a db number may follow ({form})")
    db = int(parts[1]) if len(parts) == 2 else 0
    return SentinelUrl(sentinels, parts[0], db, username, password)
