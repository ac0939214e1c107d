#!/usr/bin/env python3
"""mypy over the code under the names it is installed as.

graphstore/, trainer/ and analysis/ sit at the top of the repository but are installed as
sparsetopo.graphstore, sparsetopo.trainer and sparsetopo.analysis (pyproject's `package-dir`),
and every import spells those names. mypy finds modules by directory, and the editable install's
import hook is invisible to it, so `mypy graphstore` would check `graphstore.store` and see
every `sparsetopo.graphstore` import as missing. This script lays the installed package out as
symlinks under build/typecheck/ (rebuilt on every run, so new modules are never missed), runs
mypy with the settings of pyproject's [tool.mypy] (whose `files` point into that tree), and
reports each error at the file's real path.

    .venv/bin/python scripts/typecheck.py            # what `make lint` and pre-commit run
    .venv/bin/python scripts/typecheck.py --pretty   # extra arguments go to mypy
"""

from __future__ import annotations

import os
import re
import shutil
import sys
from pathlib import Path

if sys.version_info >= (3, 11):
    import tomllib
else:  # the test extra installs tomli on Python 3.10
    import tomli as tomllib

ROOT = Path(__file__).resolve().parent.parent
TREE = ROOT / "build" / "typecheck"


def package_dirs() -> dict[str, str]:
    with open(ROOT / "pyproject.toml", "rb") as f:
        return tomllib.load(f)["tool"]["setuptools"]["package-dir"]


def build_tree(mapping: dict[str, str], tree: Path = TREE) -> None:
    """Symlink each package's folder at its installed name; a package with mapped subpackages
    becomes a real directory of links to its entries, so the subpackages can sit beside them."""
    shutil.rmtree(tree, ignore_errors=True)
    for name in sorted(mapping):  # parents before their subpackages
        source = ROOT / mapping[name]
        dest = tree.joinpath(*name.split("."))
        children = {n.rpartition(".")[2] for n in mapping if n.rpartition(".")[0] == name}
        if not children:
            dest.parent.mkdir(parents=True, exist_ok=True)
            dest.symlink_to(source, target_is_directory=True)
            continue
        dest.mkdir(parents=True)
        for entry in source.iterdir():
            if entry.name not in children and entry.name != "__pycache__":
                (dest / entry.name).symlink_to(entry)


_LOCATION = re.compile(r"^(?P<path>[^\s:]+\.pyi?)(?=:)")


def real_path(match: re.Match[str]) -> str:
    path = Path(match["path"])
    if not path.is_absolute():
        path = ROOT / path
    try:
        return os.path.relpath(path.resolve(), ROOT)
    except ValueError:  # another drive (Windows)
        return match["path"]


def main(argv: list[str]) -> int:
    from mypy import api

    build_tree(package_dirs())
    os.chdir(ROOT)
    stdout, stderr, status = api.run(argv)
    for line in stdout.splitlines():
        print(_LOCATION.sub(real_path, line))
    sys.stderr.write(stderr)
    return status


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
