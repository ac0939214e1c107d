"""Running Maven on one of the package's poms without writing into the package.

The pom is copied into a scratch directory under the cache home and built there, so an
installation in a read-only site-packages works and no `target/` appears beside the sources.
"""

from __future__ import annotations

import shutil
import subprocess
import tempfile
from pathlib import Path

from .settings import cache_home


def run_maven(pom: Path, lib: Path, extra_args: list[str], quiet: bool) -> subprocess.CompletedProcess | None:
    """`mvn package` on a copy of `pom` with -Dlib.dir=lib; None when Maven is not on PATH."""
    mvn = shutil.which("mvn")
    if not mvn:
        return None
    scratch_root = cache_home() / "build"
    scratch_root.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(dir=scratch_root) as scratch:
        local_pom = Path(scratch) / "pom.xml"
        shutil.copyfile(pom, local_pom)
        cmd = [mvn, "-B", *(["-q"] if quiet else []), "-f", str(local_pom), "package", *extra_args, f"-Dlib.dir={lib}"]
        return subprocess.run(cmd, capture_output=quiet, text=True, cwd=scratch)
