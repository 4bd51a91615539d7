"""Packaging: the locked requirements cover the vendored package, and deploy/package.sh builds the zips."""

from __future__ import annotations

import hashlib
import json
import os
import pathlib
import re
import shutil
import subprocess
import sys
import tomllib
import zipfile

import pytest

from tests.deploy.terraform import CONFIG, DEPLOY, FUNCTIONS, REPO, block, refs, resources

LOCK_INPUT = REPO / "functions" / "requirements.in"
LOCK_HEADER = re.compile(r"# Locked by tools/lock\.sh from functions/requirements\.in \(sha256 ([0-9a-f]{64})\)")


def _name(requirement: str) -> str:
    return re.match(r"[A-Za-z0-9_.\-]+", requirement).group(0).lower().replace("_", "-")


def lock_input() -> dict[str, str]:
    """functions/requirements.in: each requirement by its normalised name."""
    lines = [line.split("#", 1)[0].strip() for line in LOCK_INPUT.read_text().splitlines()]
    return {_name(line): line for line in lines if line}


def locked(function: str) -> dict[str, tuple[str, list[str]]]:
    """A function's requirements.txt as {name: (exact version, hashes)}; anything else fails."""
    text = (REPO / "functions" / function / "requirements.txt").read_text()
    entries = re.sub(r"\\\n\s*", " ", text)  # join continuation lines
    pins = {}
    for line in entries.splitlines():
        line = line.split("#", 1)[0].strip()
        if not line:
            continue
        match = re.fullmatch(r"([A-Za-z0-9_.\-]+)==([^\s;]+)((?:\s+--hash=sha256:[0-9a-f]{64})+)", line)
        assert match, f"{function}/requirements.txt: {line!r} is not an exact pin with hashes"
        pins[_name(match.group(1))] = (match.group(2), re.findall(r"sha256:([0-9a-f]{64})", match.group(3)))
    return pins


def test_lock_input_covers_the_vendored_package():
    """The zip has no shared/: the functions' requirements must bring the core package's dependencies."""
    pyproject = tomllib.loads((REPO / "shared" / "pyproject.toml").read_text())
    wanted = {_name(dep): dep for dep in pyproject["project"]["dependencies"]}
    listed = lock_input()
    assert "functions-framework" in listed
    assert set(wanted) <= set(listed), f"functions/requirements.in lacks {sorted(set(wanted) - set(listed))}"
    for line in listed.values():
        assert "buildsync" not in line and not line.startswith(("-e", "-r", ".", "/")), line
        assert re.search(r"<\s*[0-9]", line), f"{line!r}: every requirement has an upper bound"


@pytest.mark.parametrize("function", FUNCTIONS)
def test_function_requirements_are_a_fresh_lock_with_exact_versions_and_hashes(function):
    from packaging.requirements import Requirement

    path = REPO / "functions" / function / "requirements.txt"
    header = LOCK_HEADER.match(path.read_text())
    assert header, f"{path} was not written by tools/lock.sh"
    digest = hashlib.sha256(LOCK_INPUT.read_bytes()).hexdigest()
    assert header.group(1) == digest, f"{path} is stale: functions/requirements.in changed; run tools/lock.sh"
    pins = locked(function)
    for name, line in lock_input().items():
        assert name in pins, f"{function}: {name} is not locked"
        assert Requirement(line).specifier.contains(pins[name][0], prereleases=True), (name, pins[name][0])
    assert all(hashes for _, hashes in pins.values())
    assert path.read_bytes() == (REPO / "functions" / "sync" / "requirements.txt").read_bytes(), "one lock for all"


def test_development_requirements_have_upper_bounds():
    for line in (REPO / "requirements.txt").read_text().splitlines():
        line = line.split("#", 1)[0].strip()
        if line and not line.startswith("-e"):
            assert "==" in line or re.search(r"<\s*[0-9]", line), f"requirements.txt: {line!r} has no upper bound"


@pytest.fixture
def repo_copy(tmp_path) -> pathlib.Path:
    """The parts of the repository package.sh reads, with build litter planted in the package."""
    copy = tmp_path / "repo"
    (copy / "deploy").mkdir(parents=True)
    shutil.copy2(DEPLOY / "package.sh", copy / "deploy" / "package.sh")
    shutil.copytree(REPO / "functions", copy / "functions", ignore=shutil.ignore_patterns("__pycache__"))
    shutil.copytree(
        REPO / "shared" / "buildsync",
        copy / "shared" / "buildsync",
        ignore=shutil.ignore_patterns("__pycache__", "*.pyc"),
    )
    for litter in (
        "__pycache__/settings.cpython-312.pyc",
        "proto/__pycache__/buildbucket_pb2.cpython-312.pyc",
        "stale.pyc",
    ):
        path = copy / "shared" / "buildsync" / litter
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(b"litter")
    return copy


def _package(
    repo: pathlib.Path, outdir: pathlib.Path, settings: pathlib.Path, cwd: pathlib.Path
) -> subprocess.CompletedProcess:
    env = dict(os.environ, PYTHON=sys.executable)
    return subprocess.run(
        ["bash", str(repo / "deploy" / "package.sh"), str(outdir), str(settings)],
        cwd=cwd,
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
    )


def _package_files() -> set[str]:
    """What the vendored package must hold: the source tree's files, without bytecode."""
    root = REPO / "shared" / "buildsync"
    return {
        "buildsync/" + path.relative_to(root).as_posix()
        for path in root.rglob("*")
        if path.is_file() and "__pycache__" not in path.parts and path.suffix not in (".pyc", ".pyo")
    }


@pytest.mark.parametrize("suffix,packaged_as", [(".cfg", "settings.cfg"), (".json", "settings.json")])
def test_package_sh_builds_the_zips(tmp_path, repo_copy, suffix, packaged_as):
    settings = tmp_path / f"my-settings{suffix}"
    if suffix == ".json":
        settings.write_text(
            json.dumps({"backends": [{"target": "swarming://x", "hostname": "x.example.com", "full_mode": {}}]})
        )
    else:
        settings.write_text((DEPLOY / "settings.example.cfg").read_text())
    outdir = tmp_path / "out"
    elsewhere = tmp_path / "cwd"
    elsewhere.mkdir()
    result = _package(repo_copy, pathlib.Path("out"), settings, cwd=tmp_path)  # relative OUTDIR, from another cwd
    assert result.returncode == 0, result.stderr
    assert "settings valid" in result.stderr
    expected = {"main.py", "requirements.txt", packaged_as} | _package_files()
    assert any(name.endswith("_pb2.py") for name in expected)
    for function in FUNCTIONS:
        with zipfile.ZipFile(outdir / f"{function}.zip") as archive:
            assert set(archive.namelist()) == expected, function
            assert archive.read("main.py") == (REPO / "functions" / function / "main.py").read_bytes()
            assert archive.read("requirements.txt") == (REPO / "functions" / function / "requirements.txt").read_bytes()
            assert archive.read(packaged_as) == settings.read_bytes()
    assert (outdir / "settings.sha256").read_text().strip() == hashlib.sha256(settings.read_bytes()).hexdigest()
    # Reproducible: the same tree gives the same bytes, so Terraform sees no change.
    first = {f: (outdir / f"{f}.zip").read_bytes() for f in FUNCTIONS}
    assert _package(repo_copy, outdir, settings, cwd=elsewhere).returncode == 0
    assert first == {f: (outdir / f"{f}.zip").read_bytes() for f in FUNCTIONS}


def test_package_sh_rejects_invalid_settings(tmp_path):
    settings = tmp_path / "bad.cfg"
    settings.write_text('backends { target: "swarming://x" }')  # no mode
    result = _package(REPO, tmp_path / "out", settings, cwd=tmp_path)
    assert result.returncode != 0 and "mode" in result.stderr
    assert not (tmp_path / "out" / "planner.zip").exists()


def test_functions_read_the_settings_where_package_sh_puts_them():
    settings_name = CONFIG["locals"]["settings_name"]
    assert "settings.json" in settings_name and "settings.cfg" in settings_name and "var.settings_file" in settings_name
    assert CONFIG["locals"]["settings_path"] == "/workspace/${local.settings_name}"
    for name, body in resources("google_cloudfunctions2_function").items():
        assert (
            block(body, "service_config")["environment_variables"]["BUILDSYNC_SETTINGS"] == "${local.settings_path}"
        ), name
    for name, body in resources("google_storage_bucket_object").items():
        assert "local.package_dir" in refs(body["source"]), name
        condition = block(body, "lifecycle", "precondition")["condition"]
        assert {"local.package_dir", "var.settings_file"} <= refs(condition), (
            f"{name}: zips and settings_file may differ"
        )
