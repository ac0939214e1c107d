"""How sparsetopo is installed: one top-level name, package data that exists, Maven outside the package."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

if sys.version_info >= (3, 11):
    import tomllib
else:  # the test extra installs tomli on Python 3.10
    import tomli as tomllib

ROOT = Path(__file__).resolve().parents[1]
_BARE_IMPORT = re.compile(r"^\s*(from|import)\s+(graphstore|trainer|analysis)\b", re.M)


def _python_sources():
    for folder in ("sparsetopo", "graphstore", "trainer", "analysis", "tests", "benchmarks", "scripts"):
        yield from (ROOT / folder).rglob("*.py")


def test_no_module_imports_the_folders_by_their_bare_names():
    offenders = [
        f"{p.relative_to(ROOT)}: {m.group(0).strip()}"
        for p in _python_sources()
        for m in _BARE_IMPORT.finditer(p.read_text())
    ]
    assert offenders == []


def test_the_installed_packages_import_from_anywhere_and_take_no_generic_top_level_name(tmp_path):
    code = (
        "import importlib.util, sparsetopo.graphstore.store, sparsetopo.trainer.loop, sparsetopo.analysis.nnstd\n"
        "import sparsetopo.graphstore as g\n"
        "print(g.__file__)\n"
        "print([n for n in ('graphstore', 'analysis') if importlib.util.find_spec(n)])\n"
    )
    out = subprocess.run([sys.executable, "-I", "-c", code], cwd=tmp_path, capture_output=True, text=True, check=True)
    location, taken = out.stdout.splitlines()
    assert Path(location).resolve() == ROOT / "graphstore" / "__init__.py"
    assert taken == "[]"


def test_every_package_data_pattern_matches_a_file():
    config = tomllib.loads((ROOT / "pyproject.toml").read_text())["tool"]["setuptools"]
    for package, patterns in config["package-data"].items():
        folder = ROOT / config["package-dir"][package]
        for pattern in patterns:
            assert list(folder.glob(pattern)), f"{package}: {pattern} matches nothing"


def test_maven_builds_outside_the_package(tmp_path, monkeypatch):
    from sparsetopo.graphstore.maven import run_maven
    from sparsetopo.graphstore.server import POM

    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache"))
    lib = tmp_path / "lib"
    lib.mkdir()
    before = sorted(p.name for p in POM.parent.iterdir())
    result = run_maven(POM, lib, ["-o"], quiet=True)  # offline: the jars are in ~/.m2 since setup
    assert result is not None and result.returncode == 0, result and result.stdout[-2000:]
    assert sorted(p.name for p in POM.parent.iterdir()) == before
    assert any(lib.glob("neo4j-*.jar"))
    assert list((tmp_path / "cache" / "sparsetopo" / "build").iterdir()) == []  # the scratch copy is gone
