"""The pure part of per-app environments (app/environments.py): the
requirements parser, the build input, keys, the framework contract and uv's
messages. No network, no uv."""

from __future__ import annotations

import importlib.metadata as md
from pathlib import Path

import pytest

from app import environments as envs
from app.backends.frameworks import BOKEH, DASH

ACCEPTED = [
    ("humanize", "humanize"),
    ("pandas>=2.2,<3", "pandas<3,>=2.2"),
    ("requests[socks]==2.32.3", "requests[socks]==2.32.3"),
    ('numpy; python_version >= "3.10"', 'numpy; python_version >= "3.10"'),
    ("  scipy   # a comment", "scipy"),
    ("Plotly_Express ~= 0.4", "Plotly_Express~=0.4"),
]


@pytest.mark.parametrize(("line", "stored"), ACCEPTED)
def test_accepted_lines_are_stored_in_normal_form(line: str, stored: str) -> None:
    reqs, errors = envs.parse_requirements(f"# header\n\n{line}\n")
    assert errors == []
    assert envs.canonical_text(reqs) == f"{stored}\n"


REFUSED = [
    ("-r other.txt", "options such as -r"),
    ("-c /etc/shadow", "options such as -c"),
    ("-e ./evilpkg", "options such as -e"),
    ("--index-url http://127.0.0.1:9/simple", "options such as --index-url"),
    ("--extra-index-url=http://x/simple", "options such as --extra-index-url"),
    ("--find-links /abs/dir", "options such as --find-links"),
    ("--only-binary :none:", "options such as --only-binary"),
    ("evilpkg @ file:///tmp/evilpkg-1.0.tar.gz", "comes from a URL or a path"),
    ("pkg @ https://127.0.0.1:9/x.whl", "comes from a URL or a path"),
    ("pkg @ git+http://127.0.0.1:9/x.git", "comes from a URL or a path"),
    ("./sec/evilpkg", "not a package requirement"),
    ("/abs/path/pkg.whl", "not a package requirement"),
    ("humanize --config-settings foo=bar", "not a package requirement"),
    ("not a requirement!!", "not a package requirement"),
    ("humanize \\", "line continuations"),
]


@pytest.mark.parametrize(("line", "message"), REFUSED)
def test_refused_lines_say_which_line_and_why(line: str, message: str) -> None:
    reqs, errors = envs.parse_requirements(f"dash\n{line}\n")
    assert [str(r) for r in reqs] == ["dash"]
    assert len(errors) == 1
    assert errors[0].startswith("Line 2: ")
    assert message in errors[0]


def test_every_bad_line_is_reported() -> None:
    _, errors = envs.parse_requirements("-r a.txt\ndash\n-e .\nx @ https://e/x.whl\n")
    assert [e.split(":")[0] for e in errors] == ["Line 1", "Line 3", "Line 4"]


def test_a_name_twice_is_refused_whatever_its_spelling() -> None:
    _, errors = envs.parse_requirements("Plotly_Express\nplotly-express>=0.4\n")
    assert errors == ["Line 2: plotly-express is listed twice."]


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("a\n" * (envs.MAX_LINES + 1), "more than 200 lines"),
        ("#" + "x" * envs.MAX_FILE_BYTES, "larger than 64 KiB"),
        ("dash\n\0\n", "NUL byte"),
    ],
)
def test_oversize_and_binary_files_are_refused_whole(text: str, message: str) -> None:
    reqs, errors = envs.parse_requirements(text)
    assert reqs == []
    assert len(errors) == 1 and message in errors[0]


def test_default_input_pins_dormouse_s_own_versions() -> None:
    assert envs.build_input(DASH, None) == (
        f"dash=={md.version('dash')}\ngunicorn=={md.version('gunicorn')}\n"
    )
    assert envs.build_input(BOKEH, None) == f"bokeh=={md.version('bokeh')}\n"


def test_default_pins_fall_back_to_the_range() -> None:
    def version_of(name: str) -> str:
        if name == "dash":
            raise md.PackageNotFoundError(name)
        return {"gunicorn": "22.0.0"}[name]  # outside the range: not pinned either

    assert envs.default_pins(DASH, version_of) == ["dash>=4,<5", "gunicorn>=27,<28"]


def test_build_input_adds_the_framework_s_packages_with_their_ranges() -> None:
    reqs, _ = envs.parse_requirements("dash==4.4.1\nhumanize\n")
    assert envs.build_input(DASH, reqs) == "dash==4.4.1\nhumanize\ndash>=4,<5\ngunicorn>=27,<28\n"
    reqs, _ = envs.parse_requirements("bokeh\npandas\n")
    assert envs.build_input(BOKEH, reqs) == "bokeh\npandas\nbokeh>=3.4,<4\n"


def test_build_input_refuses_requirements_without_the_framework() -> None:
    reqs, _ = envs.parse_requirements("humanize\n")
    with pytest.raises(ValueError, match=r"must list dash.*dash<5,>=4"):
        envs.build_input(DASH, reqs)
    reqs, _ = envs.parse_requirements("dash\n")
    with pytest.raises(ValueError, match="must list bokeh"):
        envs.build_input(BOKEH, reqs)


def test_input_hash_follows_input_and_interpreter() -> None:
    a = envs.input_hash("dash\n", "cpython-3.11.7")
    assert a == envs.input_hash("dash\n", "cpython-3.11.7")
    assert a != envs.input_hash("dash\nhumanize\n", "cpython-3.11.7")
    assert a != envs.input_hash("dash\n", "cpython-3.12.1")


LOCK = "dash==4.4.1\nFlask==3.1.3\nzipp==3.23.0\n"


def test_locks_are_read_and_written_in_one_normal_form() -> None:
    pins = envs.parse_lock(LOCK)
    assert pins == {"dash": "4.4.1", "flask": "3.1.3", "zipp": "3.23.0"}
    assert envs.lock_text(pins) == "dash==4.4.1\nflask==3.1.3\nzipp==3.23.0\n"
    shuffled = envs.parse_lock("zipp==3.23.0\n\ndash==4.4.1\nflask==3.1.3")
    assert envs.lock_text(shuffled) == envs.lock_text(pins)


@pytest.mark.parametrize("line", ["# generated", "dash>=4", "-e .", "dash==4.4.1 --hash=sha256:00"])
def test_a_lock_with_anything_but_pins_is_refused(line: str) -> None:
    with pytest.raises(ValueError, match="unexpected line"):
        envs.parse_lock(f"flask==3.1.3\n{line}\n")


def test_keys_follow_the_lock_and_the_interpreter() -> None:
    key = envs.env_key("cpython-3.11.7", LOCK)
    assert envs.is_key(key)
    assert key == envs.env_key("cpython-3.11.7", LOCK)
    assert key != envs.env_key("cpython-3.11.8", LOCK)
    assert key != envs.env_key("cpython-3.11.7", LOCK.replace("3.23.0", "3.23.1"))
    assert not envs.is_key("../" + key[3:])


def test_python_identity_names_the_base_interpreter() -> None:
    identity = envs.python_identity("/usr/bin/python3")
    assert identity.startswith("cpython-3.")
    assert identity.endswith("@" + str(Path("/usr/bin/python3").resolve()))


@pytest.mark.parametrize(
    ("framework", "have", "message"),
    [
        (DASH, {"dash": "4.4.1", "gunicorn": "27.0.1"}, None),
        (DASH, {"dash": "4.5.0rc1", "gunicorn": "27.0.1"}, None),
        (DASH, {"dash": "4.4.1"}, "has no gunicorn"),
        (DASH, {"dash": "2.18.2", "gunicorn": "27.0.1"}, "dash 2.18.2 is outside what Dormouse can drive"),
        (DASH, {"dash": "4.4.1", "gunicorn": "22.0.0"}, "gunicorn 22.0.0 is outside"),
        (BOKEH, {"bokeh": "3.9.2"}, None),
        (BOKEH, {"dash": "4.4.1"}, "has no bokeh"),
        (BOKEH, {"bokeh": "not-a-version"}, "not a version"),
    ],
)
def test_contract(framework, have: dict[str, str], message: str | None) -> None:
    error = envs.contract_error(framework, have)
    if message is None:
        assert error is None
    else:
        assert error is not None and message in error


def test_installed_reads_dist_info_without_running_anything(tmp_path: Path) -> None:
    site = envs.site_packages(tmp_path)
    (site / "humanize-4.12.3.dist-info").mkdir(parents=True)
    (site / "humanize-4.12.3.dist-info" / "METADATA").write_text("Name: humanize\nVersion: 4.12.3\n")
    (site / "Flask-3.1.3.dist-info").mkdir()
    (site / "Flask-3.1.3.dist-info" / "METADATA").write_text("Name: Flask\nVersion: 3.1.3\n")
    marker = tmp_path / "ran"
    (site / "evil.pth").write_text(f"import pathlib; pathlib.Path({str(marker)!r}).touch()\n")
    assert envs.installed(tmp_path) == {"humanize": "4.12.3", "flask": "3.1.3"}
    assert not marker.exists()


NONEXISTENT = """\
Using Python 3.11.7 environment at: /tmp/x
error: No solution found when resolving dependencies
  cause: Because dormouse-no-such-package-xyz was not found in the package registry and you require \
dormouse-no-such-package-xyz, we can conclude that your requirements are unsatisfiable.
"""
TIMEOUT = """\
error: Request failed after 3 retries in 7.8s
  cause: operation timed out
"""


def test_summaries_keep_the_resolver_s_words_and_drop_the_noise() -> None:
    text = envs.summarize_uv_error(NONEXISTENT, 1)
    assert text.startswith("error: No solution found")
    assert "was not found in the package registry" in text
    assert "Using Python" not in text


def test_summaries_tell_an_index_failure_from_an_unsatisfiable_file() -> None:
    assert envs.summarize_uv_error(TIMEOUT, 2).startswith("Dormouse could not reach the package index")
    assert envs.summarize_uv_error("", -9).startswith("The build was stopped (signal 9)")
    assert envs.summarize_uv_error("", 1) == "uv failed (exit code 1) without a message."
    long = envs.summarize_uv_error("error: " + "x" * 10_000, 1)
    assert len(long) == envs.ERROR_CAP and long.endswith("…")
