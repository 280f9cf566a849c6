"""Outbound HTTP that a caller cannot point at the service's own network (SSRF).

Media URLs and webhook URLs come from clients. Before any connection: the scheme must be http or
https; the host is resolved once and every address it resolves to must be globally routable
(no loopback, private, link-local such as the 169.254.169.254 metadata service, multicast,
unspecified or reserved address, IPv4 or IPv6, and IPv4 inside IPv6 checked as IPv4); then the
connection goes to the address that was checked, never to a second resolution of the name, so
a DNS answer that changes in between (rebinding) cannot redirect it. TLS still verifies the
certificate against the host name (httpcore's `sni_hostname` extension). Every redirect is
checked the same way, at most `MAX_REDIRECTS` of them. `VERBATIM_FETCH_ALLOW` names the hosts
and networks allowed despite being private. See OWASP's SSRF prevention cheat sheet.
"""

from __future__ import annotations

import ipaddress
import socket
from collections.abc import Callable, Iterable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from functools import lru_cache

import httpx

from shared.errors import FetchFailed, InvalidUrl, UrlForbidden

IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address
IPNetwork = ipaddress.IPv4Network | ipaddress.IPv6Network
Resolver = Callable[[str, int], list[IPAddress]]

SCHEMES = {"http": 80, "https": 443}
MAX_REDIRECTS = 5
MAX_URL_CHARS = 2048
# Never what the host resolves to, nor what kind of address that is: a caller could map the
# service's internal names with it (issue 26).
REFUSED = "The URL is refused: its host is not one the service may reach."
_NAT64 = ipaddress.ip_network("64:ff9b::/96")
_SHARED = ipaddress.ip_network("100.64.0.0/10")  # carrier-grade NAT; not global either


def system_resolver(host: str, port: int) -> list[IPAddress]:
    """The host's addresses, in the order the system resolver gives them."""
    infos = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)
    found: list[IPAddress] = []
    for info in infos:
        address = ipaddress.ip_address(str(info[4][0]).split("%")[0])
        if address not in found:
            found.append(address)
    return found


@dataclass(frozen=True)
class Allowlist:
    """Hosts (exact, case-insensitive names) and networks reachable although not public."""

    hosts: frozenset[str] = frozenset()
    networks: tuple[IPNetwork, ...] = ()

    @classmethod
    def parse(cls, entries: Iterable[str]) -> Allowlist:
        hosts, networks = set(), []
        for entry in entries:
            try:
                networks.append(ipaddress.ip_network(entry.strip("[]"), strict=False))
            except ValueError:
                hosts.add(entry.lower().rstrip("."))
        return cls(frozenset(hosts), tuple(networks))

    def allows_host(self, host: str) -> bool:
        return host.lower().rstrip(".") in self.hosts

    def allows_address(self, address: IPAddress) -> bool:
        return any(address.version == net.version and address in net for net in self.networks)


def _embedded_ipv4(address: ipaddress.IPv6Address) -> ipaddress.IPv4Address | None:
    """The IPv4 address carried inside an IPv6 one (v4-mapped, 6to4, Teredo, NAT64)."""
    if address.ipv4_mapped is not None:
        return address.ipv4_mapped
    if address.sixtofour is not None:
        return address.sixtofour
    if address.teredo is not None:
        return address.teredo[1]
    if address in _NAT64:
        return ipaddress.IPv4Address(int(address) & 0xFFFFFFFF)
    return None


def forbidden_reason(address: IPAddress) -> str | None:
    """Why an address may not be reached (`loopback`, `private`, ...), or None if public."""
    if isinstance(address, ipaddress.IPv6Address) and (inner := _embedded_ipv4(address)):
        return forbidden_reason(inner)
    checks = (("unspecified", address.is_unspecified), ("loopback", address.is_loopback),
              ("link-local", address.is_link_local), ("multicast", address.is_multicast),
              ("reserved", address.is_reserved), ("private", address.is_private),
              ("shared", isinstance(address, ipaddress.IPv4Address) and address in _SHARED),
              ("non-global", not address.is_global))  # fmt: skip
    return next((reason for reason, hit in checks if hit), None)


@dataclass(frozen=True)
class Target:
    """A checked URL and the one address to connect to for it."""

    url: httpx.URL
    address: IPAddress

    @property
    def pinned_url(self) -> httpx.URL:
        return self.url.copy_with(host=str(self.address))

    @property
    def host_header(self) -> str:
        host = self.url.host if ":" not in self.url.host else f"[{self.url.host}]"
        default = SCHEMES[self.url.scheme]
        port = self.url.port
        return host if port in (None, default) else f"{host}:{port}"


def parse_url(raw: str) -> httpx.URL:
    """The URL if it is a well-formed absolute http(s) URL; `InvalidUrl` or `UrlForbidden`."""
    if len(raw) > MAX_URL_CHARS:
        raise InvalidUrl(f"The URL is longer than {MAX_URL_CHARS} characters.")
    try:
        url = httpx.URL(raw)
    except (httpx.InvalidURL, TypeError) as exc:
        raise InvalidUrl(f"The URL is malformed: {exc}") from None
    if not url.scheme:
        raise InvalidUrl("The URL is not absolute: it needs http:// or https://.")
    if url.scheme not in SCHEMES:
        raise UrlForbidden(f"Only http and https URLs are fetched, not {url.scheme!r}.")
    if not url.host:
        raise InvalidUrl("The URL names no host.")
    return url


def check_url(raw: str | httpx.URL, allow: Allowlist,
              resolve: Resolver = system_resolver) -> Target:
    """Resolve the URL's host once and check every address; the address to connect to."""
    url = raw if isinstance(raw, httpx.URL) else parse_url(raw)
    if url.scheme not in SCHEMES:
        raise UrlForbidden(f"Only http and https URLs are fetched, not {url.scheme!r}.")
    port = url.port or SCHEMES[url.scheme]
    name = url.host.lower().rstrip(".")
    if (name == "localhost" or name.endswith(".localhost")) and not allow.allows_host(name):
        # RFC 6761: always loopback, whatever a resolver says.
        raise UrlForbidden(REFUSED)
    addresses = _addresses(url.host, port, resolve)
    if not allow.allows_host(url.host):
        for address in addresses:
            if forbidden_reason(address) and not allow.allows_address(address):
                raise UrlForbidden(REFUSED)
    return Target(url, addresses[0])


def _addresses(host: str, port: int, resolve: Resolver) -> list[IPAddress]:
    try:
        return [ipaddress.ip_address(host)]
    except ValueError:
        pass
    try:
        addresses = resolve(host, port)
    except (OSError, UnicodeError) as exc:
        raise FetchFailed(f"The host {host} could not be resolved ({exc}).") from None
    if not addresses:
        raise FetchFailed(f"The host {host} has no address.")
    return addresses


@lru_cache(maxsize=8)
def client(connect_seconds: float, read_seconds: float) -> httpx.Client:
    """The process's client for these timeouts (thread-safe; its TLS context is built once).
    It follows no redirect itself, takes no proxy from the environment (a proxy would connect
    to whatever it resolves, unchecked), and keeps no connection alive: connections are made
    to checked addresses, and one made for a host must never serve another on the same
    address (its certificate was checked for the first)."""
    timeout = httpx.Timeout(read_seconds, connect=connect_seconds)
    return httpx.Client(timeout=timeout, follow_redirects=False, trust_env=False,
                        limits=httpx.Limits(max_keepalive_connections=0))


@contextmanager
def request(
    http: httpx.Client, method: str, url: str, allow: Allowlist, *,
    headers: dict[str, str] | None = None, content: bytes | None = None,
    max_redirects: int = MAX_REDIRECTS, resolve: Resolver = system_resolver,
) -> Iterator[httpx.Response]:
    """Send the request to the checked address, checking each redirect the same way; the
    response is streamed (read it inside the block). Network failures are `FetchFailed`."""
    current = parse_url(url)
    for _ in range(max_redirects + 1):
        target = check_url(current, allow, resolve)
        response = _send(http, method, target, headers, content)
        location = response.headers.get("location")
        if not (response.is_redirect and location and max_redirects):
            try:
                yield response
            finally:
                response.close()
            return
        response.close()
        current = _redirected(target.url, location)
    raise FetchFailed(f"The URL redirected more than {max_redirects} times.")


def _redirected(base: httpx.URL, location: str) -> httpx.URL:
    try:
        return base.join(location)
    except httpx.InvalidURL as exc:
        raise FetchFailed(f"The URL redirected to a malformed location: {exc}") from None


def _send(http: httpx.Client, method: str, target: Target, headers: dict[str, str] | None,
          content: bytes | None) -> httpx.Response:
    extensions = {"sni_hostname": target.url.host} if target.url.scheme == "https" else {}
    built = http.build_request(
        method, target.pinned_url, content=content, extensions=extensions,
        headers={**(headers or {}), "Host": target.host_header},
    )
    try:
        return http.send(built, stream=True)
    except httpx.HTTPError as exc:
        raise FetchFailed(f"{target.url.host}: {network_reason(exc)}") from None


def network_reason(exc: httpx.HTTPError) -> str:
    """A short, path-free reason for a failed exchange (`connect timeout`, ...)."""
    names = {httpx.ConnectTimeout: "connect timeout", httpx.ReadTimeout: "read timeout",
             httpx.WriteTimeout: "write timeout", httpx.PoolTimeout: "pool timeout",
             httpx.ConnectError: "connection failed", httpx.RemoteProtocolError:
             "protocol error", httpx.ReadError: "read error"}  # fmt: skip
    for kind, name in names.items():
        if isinstance(exc, kind):
            detail = str(exc)
            return f"{name} ({detail})" if detail and len(detail) < 200 else name
    return type(exc).__name__
