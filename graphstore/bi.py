"""Connecting BI tools to the graph store through Neo4j's official JDBC driver.

The driver (org.neo4j:neo4j-jdbc, 6.x) is gathered from Maven Central by the pom in
graphstore/jdbc/ into a cache directory shared by every instance. Two flavours:

- "full": the full bundle, one jar with the default SQL-to-Cypher translator, so
  `enableSQLTranslation=true` lets tools send SQL (`SELECT ... FROM Snapshot ...`)
  and the Cypher-backed views in graphstore/jdbc/views.json can be queried.
- "core": the driver and its dependencies without the translator, for registries
  that do not carry the bundle; tools then send Cypher. The view definitions still
  load into the driver's metadata.

`connection_info` gives what a tool asks for: URL, driver class, user and where the
password lives (the same place `sparsetopo db status` names).
"""

from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path
from urllib.parse import quote, urlsplit

from .errors import GraphStoreError
from .maven import run_maven
from .settings import ConnectionSettings, cache_home

JDBC_VERSION = "6.8.0"
DRIVER_CLASS = "org.neo4j.jdbc.Neo4jDriver"
POM = Path(__file__).parent / "jdbc" / "pom.xml"
VIEWS = Path(__file__).parent / "jdbc" / "views.json"
FLAVOURS = ("full", "core")

# Bolt URI schemes and the JDBC schemes that mean the same transport security.
_SCHEMES = {
    "bolt": "neo4j",
    "neo4j": "neo4j",
    "bolt+s": "neo4j+s",
    "neo4j+s": "neo4j+s",
    "bolt+ssc": "neo4j+ssc",
    "neo4j+ssc": "neo4j+ssc",
}


class JdbcDriverUnavailable(GraphStoreError):
    """The JDBC driver's jars are missing and cannot be gathered."""


def jdbc_lib_dir() -> Path:
    """Where the driver's jars are gathered (SPARSETOPO_JDBC_LIB, else the user's cache)."""
    explicit = os.environ.get("SPARSETOPO_JDBC_LIB")
    if explicit:
        return Path(explicit)
    return cache_home() / f"neo4j-jdbc-{JDBC_VERSION}" / "lib"


def installed_flavour(lib: Path | None = None) -> str | None:
    """'full' or 'core' when the jars are gathered, else None."""
    marker = (lib or jdbc_lib_dir()) / ".complete"
    try:
        flavour = marker.read_text().split()[0]
    except (OSError, IndexError):
        return None
    return flavour if flavour in FLAVOURS else None


def classpath(lib: Path | None = None) -> list[str]:
    lib = lib or jdbc_lib_dir()
    return sorted(str(p) for p in lib.glob("*.jar"))


def has_sql_translator(lib: Path | None = None) -> bool:
    """True when the default SQL-to-Cypher translator is among the jars."""
    names = [Path(p).name for p in classpath(lib)]
    return any(n.startswith(("neo4j-jdbc-full-bundle", "neo4j-jdbc-translator-impl")) for n in names)


def _maven(profile: str, lib: Path, quiet: bool) -> subprocess.CompletedProcess:
    result = run_maven(POM, lib, [f"-P{profile}"], quiet)
    if result is None:
        raise JdbcDriverUnavailable("Maven (`mvn`) is needed once to gather the Neo4j JDBC driver from Maven Central")
    return result


def ensure_jdbc_driver(flavour: str = "auto", quiet: bool = True) -> Path:
    """Gather the driver once (full bundle, else core when flavour is 'auto'); returns the jar directory."""
    if flavour not in ("auto", *FLAVOURS):
        raise JdbcDriverUnavailable(f"unknown JDBC driver flavour '{flavour}'; use auto, full or core")
    lib = jdbc_lib_dir()
    have = installed_flavour(lib)
    if have and (flavour == "auto" or flavour == have):
        return lib
    attempts = ["full", "core"] if flavour == "auto" else [flavour]
    failures = []
    for profile in attempts:
        shutil.rmtree(lib, ignore_errors=True)
        lib.mkdir(parents=True, exist_ok=True)
        result = _maven(profile, lib, quiet)
        if result.returncode == 0 and any(lib.glob("neo4j-jdbc*.jar")):
            (lib / ".complete").write_text(f"{profile} {JDBC_VERSION}\n")
            return lib
        tail = (result.stdout or "").strip().splitlines()
        failures.append(f"{profile}: {tail[0][:300] if tail else f'exit {result.returncode}'}")
    raise JdbcDriverUnavailable("gathering the Neo4j JDBC driver with Maven failed (" + "; ".join(failures) + ")")


def jdbc_url(settings: ConnectionSettings, sql_translation: bool = True, views: Path | None = VIEWS) -> str:
    """The JDBC URL for the server in `settings` (its Bolt URI), with SQL translation and the views."""
    parts = urlsplit(settings.uri)
    scheme = _SCHEMES.get(parts.scheme)
    if scheme is None:
        raise GraphStoreError(f"cannot make a JDBC URL from '{settings.uri}': unknown scheme '{parts.scheme}'")
    host = parts.hostname or "localhost"
    if ":" in host:  # IPv6 literal
        host = f"[{host}]"
    port = parts.port or 7687
    database = settings.database or "neo4j"
    options = []
    if sql_translation:
        options.append("enableSQLTranslation=true")
    if views is not None:
        # The driver wants file:/abs/path (one slash, no host).
        options.append("viewDefinitions=" + quote("file:" + str(Path(views).resolve()), safe=":/"))
    query = ("?" + "&".join(options)) if options else ""
    return f"jdbc:{scheme}://{host}:{port}/{database}{query}"


def connection_info(settings: ConnectionSettings, password_file: str | None = None) -> dict:
    """Everything a BI tool's connection dialog asks for; the password itself only by reference."""
    lib = jdbc_lib_dir()
    flavour = installed_flavour(lib)
    translator = has_sql_translator(lib) if flavour else None
    return {
        "jdbc_url": jdbc_url(settings, sql_translation=translator is not False),
        "driver_class": DRIVER_CLASS,
        "user": settings.user,
        "password": f"in {password_file}" if password_file else "the value of NEO4J_PASSWORD",
        "driver_jars": str(lib) if flavour else None,
        "driver_flavour": flavour,
        "sql_translation": translator,
        "view_definitions": str(VIEWS),
        "bolt_uri": settings.uri,
    }
