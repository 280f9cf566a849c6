"""The outbound address checker: which addresses a media or webhook URL may reach.

Pure classification, with a resolver stub where a host name is needed: nothing here opens a
connection, so a private or metadata address is never sent a packet even if the guard failed.
"""

from __future__ import annotations

import ipaddress

import pytest

from shared.errors import FetchFailed, InvalidUrl, UrlForbidden
from shared.outbound import (
    Allowlist,
    IPAddress,
    Resolver,
    check_url,
    forbidden_reason,
    parse_url,
)

NOTHING = Allowlist()

FORBIDDEN = [
    ("127.0.0.1", "loopback"), ("127.255.0.9", "loopback"), ("::1", "loopback"),
    ("10.1.2.3", "private"), ("172.16.0.1", "private"), ("192.168.1.1", "private"),
    ("169.254.169.254", "link-local"), ("fe80::1", "link-local"),
    ("0.0.0.0", "unspecified"), ("::", "unspecified"),
    ("224.0.0.1", "multicast"), ("ff02::1", "multicast"),
    ("240.0.0.1", "reserved"), ("255.255.255.255", "reserved"),
    ("100.64.0.1", "shared"), ("fc00::1", "private"), ("fd12:3456::1", "private"),
    ("192.0.2.1", "private"), ("198.18.0.1", "private"),
    # IPv4 inside IPv6 is judged as the IPv4 address it carries.
    ("::ffff:127.0.0.1", "loopback"), ("::ffff:169.254.169.254", "link-local"),
    ("::ffff:10.0.0.1", "private"), ("2002:a9fe:a9fe::1", "link-local"),
    ("64:ff9b::a9fe:a9fe", "link-local"), ("64:ff9b::7f00:1", "loopback"),
]  # fmt: skip


@pytest.mark.parametrize(("address", "reason"), FORBIDDEN)
def test_non_public_addresses_are_refused_with_their_reason(address: str, reason: str) -> None:
    assert forbidden_reason(ipaddress.ip_address(address)) == reason


@pytest.mark.parametrize("address", ["93.184.215.14", "8.8.8.8", "2606:4700::1111",
                                     "::ffff:8.8.8.8"])
def test_public_addresses_pass(address: str) -> None:
    assert forbidden_reason(ipaddress.ip_address(address)) is None


def stub(*addresses: str) -> Resolver:
    def resolve(host: str, port: int) -> list[IPAddress]:
        return [ipaddress.ip_address(a) for a in addresses]
    return resolve


def test_a_name_is_refused_when_any_of_its_addresses_is_private() -> None:
    with pytest.raises(UrlForbidden):
        check_url("http://media.example/a.mp3", NOTHING, stub("93.184.215.14", "169.254.169.254"))


@pytest.mark.parametrize(("address", "reason"), FORBIDDEN)
def test_a_refusal_never_says_what_the_host_resolves_to(address: str, reason: str) -> None:
    with pytest.raises(UrlForbidden) as refused:
        check_url("http://db.internal.example/a.mp3", NOTHING, stub(address))
    message = refused.value.message
    assert "refused" in message
    assert address not in message
    assert str(ipaddress.ip_address(address)) not in message
    assert reason not in message


def test_a_name_resolving_to_public_addresses_is_pinned_to_the_first() -> None:
    target = check_url("https://media.example:8443/a.mp3?x=1", NOTHING,
                       stub("93.184.215.14", "93.184.215.15"))
    assert str(target.address) == "93.184.215.14"
    assert str(target.pinned_url) == "https://93.184.215.14:8443/a.mp3?x=1"
    assert target.host_header == "media.example:8443"


def test_allowed_networks_and_hosts() -> None:
    allow = Allowlist.parse(["10.0.0.0/8", "minio.internal", "::1"])
    assert check_url("http://10.9.9.9/x", allow).address == ipaddress.ip_address("10.9.9.9")
    check_url("http://[::1]/x", allow)
    check_url("http://MINIO.internal./x", allow, stub("192.168.3.3"))
    with pytest.raises(UrlForbidden):
        check_url("http://192.168.0.1/x", allow)
    with pytest.raises(UrlForbidden):  # an IPv4 network does not admit IPv6 loopback
        check_url("http://127.0.0.1/x", allow)


def test_an_allowed_ipv4_loopback_does_not_admit_its_mapped_or_ipv6_forms() -> None:
    allow = Allowlist.parse(["127.0.0.1"])
    check_url("http://127.0.0.1:9/x", allow)
    for url in ("http://[::1]:9/x", "http://[::ffff:127.0.0.1]:9/x", "http://127.0.0.2/x"):
        with pytest.raises(UrlForbidden):
            check_url(url, allow)


@pytest.mark.parametrize("url", ["ftp://example.com/a", "file:///etc/passwd",
                                 "gopher://example.com/", "data:audio/wav;base64,AAAA"])
def test_only_http_and_https(url: str) -> None:
    with pytest.raises((UrlForbidden, InvalidUrl)):
        check_url(url, NOTHING, stub("93.184.215.14"))


@pytest.mark.parametrize("url", ["not a url", "http://", "/relative/path", "http:///x",
                                 "http://[::1/", "x" * 3000])
def test_malformed_urls(url: str) -> None:
    with pytest.raises((InvalidUrl, UrlForbidden)):
        parse_url(url)


def test_a_host_that_does_not_resolve_is_a_fetch_failure() -> None:
    def fail(host: str, port: int) -> list:
        raise OSError("Name or service not known")
    with pytest.raises(FetchFailed, match="could not be resolved"):
        check_url("http://nowhere.invalid/", NOTHING, fail)


@pytest.mark.parametrize("url", [
    "http://127.0.0.1/", "http://[::1]/", "http://0.0.0.0/", "http://localhost/",
    "http://LOCALHOST./", "http://127.1/", "http://2130706433/", "http://0x7f000001/",
    "http://0/", "http://[::ffff:127.0.0.1]/", "http://[0:0:0:0:0:0:0:1]/", "http://017700000001/",
])  # fmt: skip
def test_spellings_of_loopback_resolved_by_the_system_are_refused(url: str) -> None:
    with pytest.raises(UrlForbidden):
        check_url(url, NOTHING)
