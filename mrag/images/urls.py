"""Downloading image URLs without letting a URL reach private networks (SSRF).

:func:`fetch_public_url` is the only way mrag fetches a URL (the server's image inputs and
:func:`mrag.images.load_image` alike). For every hop it:

- accepts ``http`` and ``https`` only, with no credentials in the URL;
- resolves the host once and refuses the URL if *any* resolved address is not a public unicast
  address (loopback, private, link-local, carrier-grade NAT, multicast, reserved, unspecified,
  and IPv6 forms that embed such an IPv4 address);
- connects to the vetted address itself, so a second DNS answer cannot swap in another target
  (DNS rebinding), while TLS still verifies the certificate against the host name;
- follows at most a few redirects, each vetted like the first URL;
- stops at a byte limit (from ``Content-Length`` before reading, and while reading) and at an
  overall deadline, so a slow server cannot hold a worker for longer than the timeout.

Environment proxies are deliberately ignored: a proxy would connect on our behalf to an address
we never saw.
"""

from __future__ import annotations

import http.client
import ipaddress
import socket
import ssl
import time
import urllib.parse
from collections.abc import Callable
from dataclasses import dataclass

IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address
#: Redirects followed per URL; each target is vetted like the original one.
MAX_REDIRECTS = 3
_CHUNK = 64 * 1024
_NAT64 = ipaddress.ip_network("64:ff9b::/96")
_SIX_TO_FOUR = ipaddress.ip_network("2002::/16")


class URLError(ValueError):
    """A URL was refused (scheme, target address, size) or could not be fetched."""


def _embedded_ipv4(address: ipaddress.IPv6Address) -> ipaddress.IPv4Address | None:
    """The IPv4 address an IPv6 address stands for (mapped, NAT64 or 6to4), if any."""
    if address.ipv4_mapped is not None:
        return address.ipv4_mapped
    if address in _NAT64:
        return ipaddress.IPv4Address(int(address) & 0xFFFFFFFF)
    if address in _SIX_TO_FOUR:
        return address.sixtofour
    return None


def is_public_address(address: IPAddress) -> bool:
    """True only for a globally routable unicast address that is none of the special ranges."""
    if isinstance(address, ipaddress.IPv6Address):
        embedded = _embedded_ipv4(address)
        if embedded is not None:
            return is_public_address(embedded)
    return address.is_global and not (
        address.is_multicast
        or address.is_private
        or address.is_loopback
        or address.is_link_local
        or address.is_reserved
        or address.is_unspecified
    )


@dataclass(frozen=True)
class FetchedURL:
    """The body of a successful download and the URL it finally came from."""

    data: bytes
    url: str
    content_type: str | None


def _resolve(host: str, port: int) -> list[IPAddress]:
    try:
        infos = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)
    except (socket.gaierror, UnicodeError) as exc:
        raise URLError(f"cannot resolve host {host!r} ({exc})") from None
    addresses: list[IPAddress] = []
    for info in infos:
        # Drop an IPv6 zone ("fe80::1%eth0"): the address itself decides whether it is allowed.
        text = str(info[4][0]).split("%", 1)[0]
        address = ipaddress.ip_address(text)
        if address not in addresses:
            addresses.append(address)
    if not addresses:
        raise URLError(f"host {host!r} has no addresses")
    return addresses


def _split(url: str) -> tuple[str, str, int, str]:
    """(scheme, host, port, path-with-query) of an http(s) URL, refusing anything else."""
    try:
        parts = urllib.parse.urlsplit(url)
        port = parts.port
    except ValueError as exc:
        raise URLError(f"malformed URL ({exc})") from None
    scheme = parts.scheme.lower()
    if scheme not in ("http", "https"):
        raise URLError("only http and https URLs are fetched")
    if parts.username is not None or parts.password is not None:
        raise URLError("URLs with credentials are not fetched")
    host = parts.hostname
    if not host:
        raise URLError("the URL has no host")
    path = parts.path or "/"
    if parts.query:
        path = f"{path}?{parts.query}"
    return scheme, host, port or (443 if scheme == "https" else 80), path


def _open(
    scheme: str, host: str, port: int, address: IPAddress, timeout: float
) -> http.client.HTTPConnection:
    connection: http.client.HTTPConnection
    if scheme == "https":
        connection = http.client.HTTPSConnection(
            host, port, timeout=timeout, context=ssl.create_default_context()
        )
    else:
        connection = http.client.HTTPConnection(host, port, timeout=timeout)

    def connect_vetted(
        _address: tuple[str, int], connect_timeout: float | None = None, source: object = None
    ) -> socket.socket:
        # http.client would resolve the host again here; connect to the address we vetted instead.
        return socket.create_connection((str(address), port), connect_timeout)

    connection._create_connection = connect_vetted  # type: ignore[attr-defined]
    return connection


def fetch_public_url(
    url: str,
    *,
    max_bytes: int,
    timeout: float,
    address_allowed: Callable[[IPAddress], bool] = is_public_address,
    max_redirects: int = MAX_REDIRECTS,
) -> FetchedURL:
    """Download ``url`` under the rules in the module docstring; raises :class:`URLError`.

    ``address_allowed`` decides which resolved addresses may be contacted; the default admits
    public unicast addresses only. Blocking: call it from a worker thread.
    """
    deadline = time.monotonic() + timeout
    current = url
    for _ in range(max_redirects + 1):
        scheme, host, port, path = _split(current)
        addresses = _resolve(host, port)
        refused = [a for a in addresses if not address_allowed(a)]
        if refused:
            raise URLError(
                f"{host} resolves to {refused[0]}, which is not a public address; "
                "mrag does not fetch from private, loopback or link-local networks"
            )
        response, connection, sock = _request(scheme, host, port, path, addresses, deadline)
        try:
            if response.status in (301, 302, 303, 307, 308):
                location = response.getheader("Location")
                if not location:
                    raise URLError(f"redirect {response.status} without a Location")
                current = urllib.parse.urljoin(current, location)
                continue
            if response.status != 200:
                raise URLError(f"the server answered HTTP {response.status}")
            data = _read_limited(response, sock, max_bytes, deadline)
            return FetchedURL(data, current, response.getheader("Content-Type"))
        finally:
            connection.close()
    raise URLError(f"more than {max_redirects} redirects")


def _remaining(deadline: float) -> float:
    left = deadline - time.monotonic()
    if left <= 0:
        raise URLError("download timed out")
    return left


def _request(
    scheme: str,
    host: str,
    port: int,
    path: str,
    addresses: list[IPAddress],
    deadline: float,
) -> tuple[http.client.HTTPResponse, http.client.HTTPConnection, socket.socket | None]:
    last_error: Exception | None = None
    for address in addresses:
        connection = _open(scheme, host, port, address, _remaining(deadline))
        try:
            connection.request(
                "GET", path, headers={"User-Agent": "mrag-server", "Accept": "image/*"}
            )
            # Keep the socket: http.client drops its own reference once the response owns it,
            # and the body reads below need their timeout shortened to the deadline.
            sock = connection.sock
            return connection.getresponse(), connection, sock
        except (OSError, http.client.HTTPException) as exc:
            connection.close()
            last_error = exc
            if isinstance(exc, ssl.SSLError):
                break  # a certificate problem is not fixed by another address of the same host
    raise URLError(f"cannot fetch from {host} ({last_error})")


def _read_limited(
    response: http.client.HTTPResponse,
    sock: socket.socket | None,
    max_bytes: int,
    deadline: float,
) -> bytes:
    length = response.getheader("Content-Length")
    if length is not None and length.strip().isdigit() and int(length) > max_bytes:
        raise URLError(f"the image is {int(length):,} bytes, over the {max_bytes:,} byte limit")
    chunks: list[bytes] = []
    total = 0
    try:
        while not response.isclosed():  # closed once the whole body has been read
            if sock is not None and sock.fileno() != -1:
                # Each read may wait only for what is left of the overall deadline.
                sock.settimeout(_remaining(deadline))
            # read1: one receive at most, so the deadline is checked between receives.
            chunk = response.read1(min(_CHUNK, max_bytes + 1 - total))
            if not chunk:
                break
            chunks.append(chunk)
            total += len(chunk)
            if total > max_bytes:
                raise URLError(f"the image is over the {max_bytes:,} byte limit")
    except TimeoutError:
        raise URLError("download timed out") from None
    except (OSError, http.client.HTTPException) as exc:
        raise URLError(f"download failed ({exc})") from None
    return b"".join(chunks)
