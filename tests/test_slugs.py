"""Every naming rule in app.slugs, as tables: what each grammar takes and refuses."""

from __future__ import annotations

import re

import pytest

from app import slugs

NEWLINE = "\n"

# rule: (the check, values it takes, values it refuses)
# fmt: off
GRAMMARS = {
    "slug": (
        slugs.is_slug,
        ["a", "abc-123", "x" * 40, "9lives", "a-b-c"],
        ["", "x" * 41, "-abc", "abc-", "ABC", "a_b", "a b", "a`b", "a(b)", "é", "a.b",
         "abc" + NEWLINE, "a/b", "a;b"],
    ),
    "dns label": (
        slugs.is_dns_label,
        ["a", "dormouse-apps", "x" * 63, "0abc9"],
        ["", "x" * 64, "-a", "a-", "A", "a.b", "a_b", "a" + NEWLINE],
    ),
    "host name": (
        slugs.is_hostname,
        ["viz.example.org", "localhost", "a-b.c-d.e", "x" * 63 + ".org"],
        ["", "Viz.example.org", "viz.example.org.", "viz..org", ".viz.org",
         "viz.example.org`) || Host(`evil", "viz example.org", "x" * 64 + ".org", "a." * 127 + "ab",
         "viz.org" + NEWLINE, "[::1]", "viz.org:8000"],
    ),
    "url host": (
        slugs.is_url_host,
        ["viz.example.org", "Viz.Example.ORG.", "localhost", "127.0.0.1", "[::1]", "[2001:db8::1]", "a-b"],
        ["", "a..b", ".a", "a-", "-a", "a b", "a/b", "a:80", 'a"b', "[::1", "a" + NEWLINE, "x" * 300],
    ),
    "url prefix": (
        slugs.is_prefix,
        ["/alice/wave/default-x7k2p9/", "/a/b/c/", "/9/8-7/x/"],
        ["/", "/a/b/", "/a/b/c/d/", "/a/B/c/", "a/b/c/", "/a/b/c", "/a/b`)/c/", "/a/b (c)/d/",
         "/a/../c/", "/a//c/", "/a/b/c/" + NEWLINE, "/a/b/c d/", "/a/b/c?x/"],
    ),
    "file name": (
        slugs.is_file_name,
        ["alice-wave-default-x7k2p9", "A.b_c-d", "x" * 128],
        ["", ".hidden", "-a", "a/b", "../a", "x" * 129, "a" + NEWLINE, "a b"],
    ),
}
# fmt: on
CASES = [
    (rule, value, ok)
    for rule, (_, good, bad) in GRAMMARS.items()
    for ok, values in ((True, good), (False, bad))
    for value in values
]


@pytest.mark.parametrize("rule, value, ok", CASES)
def test_grammars(rule, value, ok):
    check = GRAMMARS[rule][0]
    assert check(value) is ok


def test_slug_errors_agree_with_the_grammar():
    _, good, bad = GRAMMARS["slug"]
    assert all(slugs.slug_error(v, "username") is None for v in good)
    assert all(slugs.slug_error(v, "username") for v in bad)


def test_url_hosts_do_not_backtrack():
    # the Host header reaches this pattern: no catastrophic backtracking
    assert not slugs.is_url_host("a" * 200 + "!")
    assert not slugs.is_url_host("a-" * 120 + "!")


def test_public_names_are_fresh_dns_labels():
    names = {slugs.public_name("default") for _ in range(50)}
    assert len(names) == 50
    for name in names:
        assert re.fullmatch(r"default-[abcdefghijkmnpqrstuvwxyz23456789]{6}", name)
        assert slugs.is_dns_label(name)
        assert slugs.is_prefix(slugs.url_prefix("alice", "wave", name))


def test_prefix_and_deployment_name_from_the_parts():
    assert slugs.url_prefix("alice", "sliders", "default-x7k2p9") == "/alice/sliders/default-x7k2p9/"
    assert slugs.deployment_name("alice", "sliders", "default-x7k2p9") == "alice-sliders-default-x7k2p9"


@pytest.mark.parametrize(
    "owner, title, public, natural",
    [
        ("alice", "wave", "default-abc234", True),
        ("o" * 24, "t" * 23, "default-abc234", True),  # exactly 63
        ("o" * 24, "t" * 24, "default-abc234", False),  # 64: shortened
        ("o" * 40, "t" * 40, "default-abc234", False),
        ("o" * 40, "t" * 40, "d" * 40 + "-abc234", False),
        ("a-" * 20 + "b", "c", "default-abc234", True),
    ],
)
def test_object_names_are_dns_labels_with_a_hash_when_long(owner, title, public, natural):
    name = slugs.object_name(owner, title, public)
    assert slugs.is_dns_label(name) and len(name) <= 63
    assert name.endswith(f"-{public}")
    assert (name == slugs.deployment_name(owner, title, public)) is natural
    assert slugs.object_name(owner, title, public) == name  # stable


def test_shortened_object_names_stay_unique():
    public = "default-abc234"
    names = {slugs.object_name("o" * 40, "t" * (40 - i) + "x" * i, public) for i in range(40)}
    names |= {slugs.object_name("o" * (40 - i) + "-" + "p" * i, "t" * 40, public) for i in range(1, 39)}
    assert len(names) == 40 + 38
    assert all(slugs.is_dns_label(n) and len(n) <= 63 for n in names)
    # the natural names cannot collide either: the public name is unique
    assert slugs.object_name("alice-b", "x", "default-aaaaaa") != slugs.object_name(
        "alice", "b-x", "default-bbbbbb"
    )


@pytest.mark.parametrize(
    "path, found",
    [
        ("/alice/wave/default-abc234/", ("/alice/wave/default-abc234/", "default-abc234")),
        ("/alice/wave/default-abc234/_dash-layout", ("/alice/wave/default-abc234/", "default-abc234")),
        ("/alice/wave/default-abc234/x..y/a.js", ("/alice/wave/default-abc234/", "default-abc234")),
        ("/alice/wave/default-abc234", None),  # no trailing slash: not under the prefix
        ("/alice/wave/", None),
        ("", None),
        ("alice/wave/default-abc234/", None),
        ("/Alice/wave/default-abc234/", None),
        ("/alice/wave/default-abc234/../../bob/x/", None),
        ("/alice/wave/default-abc234/%2E%2e/x", None),
        ("/alice/wave/default-abc234/./x", None),
        ("/alice/wave/default-abc234/a%2fb", None),
        ("/alice/wave/default-abc234/a\\b", None),
    ],
)
def test_prefix_of_a_request_path(path, found):
    assert slugs.prefix_of(path) == found


@pytest.mark.parametrize(
    "value, ok",
    [("bokeh-sliders", True), ("solo", True), ("app_v2.1", True), ("", False), ("-x", False),
     (".hidden", False), ("a/b", False), ("a b", False), ("a\n", False)],
)  # fmt: skip
def test_an_app_answers_under_one_plain_path_segment(value, ok):
    assert slugs.is_app_segment(value) is ok
