"""Traefik's file-provider documents as dicts (the real Traefik reads them in
tests/test_traefik_front_door.py)."""

from __future__ import annotations

import json

import pytest

from app import traefik_config as tc

PREFIX = "/alice/wave/default-abc234/"


def test_a_deployment_is_one_router_behind_the_shared_auth_and_one_service():
    doc = tc.deployment_routes("alice-wave-default-abc234", viz_host="viz.example.org", prefix=PREFIX,
                               app_url="http://127.0.0.1:8123")  # fmt: skip
    assert doc == {
        "http": {
            "routers": {
                "alice-wave-default-abc234": {
                    "rule": "Host(`viz.example.org`) && PathPrefix(`/alice/wave/default-abc234/`)",
                    "entryPoints": ["web", "internal"],  # internal: Dormouse's readiness probe
                    "service": "alice-wave-default-abc234",
                    "middlewares": ["dormouse-auth@file"],
                }
            },
            "services": {
                "alice-wave-default-abc234": {"loadBalancer": {"servers": [{"url": "http://127.0.0.1:8123"}]}}
            },
        }
    }
    assert json.loads(tc.dump(doc)) == doc  # JSON is what the .yml file holds


def test_the_shared_file_asks_dormouse_and_hands_its_cookie_on():
    doc = tc.shared_routes(auth_url="http://127.0.0.1:9000/_auth/viz", dormouse_url="http://127.0.0.1:9000")
    auth = doc["http"]["middlewares"]["dormouse-auth"]["forwardAuth"]
    assert auth == {"address": "http://127.0.0.1:9000/_auth/viz", "trustForwardHeader": False,
                    "addAuthCookiesToResponse": ["dormouse_viz"], "maxResponseBodySize": 4096}  # fmt: skip
    router = doc["http"]["routers"]["dormouse"]
    assert router["priority"] == 1 and router["rule"] == "PathPrefix(`/`)"  # every app route wins


def test_the_static_config_has_one_public_entry_point_and_the_watched_directory():
    doc = tc.static_config(listen="0.0.0.0:8000", routes_dir="/data/routes", internal_listen="127.0.0.1:9001")
    dropped = {  # X.Forwarded.For never reaches a WSGI server, nor a%3Bb an app
        "aliasHeadersStrategy": "delete",
        "encodedCharacters": {
            "allowEncodedSlash": False, "allowEncodedBackSlash": False, "allowEncodedSemicolon": False,
            "allowEncodedPercent": False, "allowEncodedQuestionMark": False, "allowEncodedHash": False,
            "allowEncodedNullCharacter": False,
        },
    }  # fmt: skip
    assert doc["entryPoints"] == {
        "web": {"address": "0.0.0.0:8000", "http": dropped},
        "internal": {"address": "127.0.0.1:9001", "http": dropped},
    }
    assert doc["providers"] == {
        "providersThrottleDuration": "100ms",
        "file": {"directory": "/data/routes", "watch": True},
    }
    # /ping only on the loopback entry point: on "web" it stays an owner's path
    assert doc["api"] == {"dashboard": False} and doc["ping"] == {"entryPoint": "internal"}
    assert "certificatesResolvers" not in doc


def test_with_tls_web_is_https_with_lets_encrypt_and_plain_http_redirects():
    tls = tc.Tls(listen=":8443", domains=("dormouse.example.org", "viz.example.org"), email="ops@example.org",
                 storage="/data/traefik/acme.json")  # fmt: skip
    doc = tc.static_config(listen=":8000", routes_dir="/r", internal_listen="127.0.0.1:9001", tls=tls)
    web, plain = doc["entryPoints"]["web"], doc["entryPoints"]["plain"]
    assert web["address"] == ":8443"
    assert web["http"]["tls"] == {
        "certResolver": "letsencrypt",
        "domains": [{"main": "dormouse.example.org", "sans": ["viz.example.org"]}],
    }
    assert plain == {
        "address": ":8000",
        "http": {
            "redirections": {"entryPoint": {"to": ":443", "scheme": "https", "permanent": True}},
            "aliasHeadersStrategy": "delete",
            "encodedCharacters": tc.refused_encoded_characters(),
        },
    }
    assert web["http"]["aliasHeadersStrategy"] == "delete"
    assert web["http"]["encodedCharacters"] == tc.refused_encoded_characters()
    acme = doc["certificatesResolvers"]["letsencrypt"]["acme"]
    assert acme == {"email": "ops@example.org", "storage": "/data/traefik/acme.json",
                    "httpChallenge": {"entryPoint": "plain"}}  # fmt: skip
    with pytest.raises(ValueError):
        tc.Tls(listen=":8443", domains=("bad host`)",), email="a@b.c", storage="/x")


@pytest.mark.parametrize(
    "host, prefix",
    [
        ("viz.example.org`) || Host(`evil", PREFIX),
        ("viz.example.org", "/alice/wave/x/`) || PathPrefix(`/"),
        ("Viz.Example.org", PREFIX),
        ("viz.example.org", "/alice/wave/"),
        ("viz example.org", PREFIX),
    ],
)
def test_nothing_unchecked_reaches_a_rule(host, prefix):
    with pytest.raises(ValueError):
        tc.route_rule(host, prefix)


@pytest.mark.parametrize(
    "url", ["http://10.0.0.5:80", "http://evil.example:80", "https://127.0.0.1:1", "file:///x"]
)
def test_only_loopback_upstreams(url):
    with pytest.raises(ValueError, match="loopback"):
        tc.deployment_routes("a-b-c", viz_host="viz.example.org", prefix=PREFIX, app_url=url)


@pytest.mark.parametrize("name", ["Alice", "a_b", "-a", "a" * 64, "a.b"])
def test_router_names_are_dns_labels(name):
    with pytest.raises(ValueError, match="router name"):
        tc.deployment_routes(name, viz_host="viz.example.org", prefix=PREFIX, app_url="http://127.0.0.1:1")
