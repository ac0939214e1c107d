"""`sparsetopo bi url`: what a BI tool's connection dialog needs, for the server in use."""

from __future__ import annotations

import json

import pytest
from typer.testing import CliRunner

from sparsetopo.cli import app
from sparsetopo.graphstore import bi

runner = CliRunner()


def test_url_for_an_external_server(monkeypatch):
    monkeypatch.setenv("NEO4J_URI", "neo4j+s://db.example.org:7688")
    monkeypatch.setenv("NEO4J_USER", "analyst")
    monkeypatch.setenv("NEO4J_PASSWORD", "s3cret")
    monkeypatch.setenv("NEO4J_DATABASE", "topology")
    result = runner.invoke(app, ["bi", "url", "--json"])
    assert result.exit_code == 0, result.output
    info = json.loads(result.output)
    assert info["jdbc_url"].startswith("jdbc:neo4j+s://db.example.org:7688/topology?")
    assert "viewDefinitions=file:" + str(bi.VIEWS) in info["jdbc_url"]
    assert info["driver_class"] == "org.neo4j.jdbc.Neo4jDriver"
    assert info["user"] == "analyst" and "s3cret" not in result.output
    shown = json.loads(runner.invoke(app, ["bi", "url", "--json", "--show-password"]).output)
    assert shown["password"] == "s3cret"


def test_sql_translation_option_follows_the_installed_driver(monkeypatch, tmp_path):
    monkeypatch.setenv("SPARSETOPO_JDBC_LIB", str(tmp_path))
    monkeypatch.setenv("NEO4J_URI", "bolt://127.0.0.1:7999")
    (tmp_path / "neo4j-jdbc-6.8.0.jar").write_bytes(b"")
    (tmp_path / ".complete").write_text("core 6.8.0\n")
    info = json.loads(runner.invoke(app, ["bi", "url", "--json"]).output)
    assert info["sql_translation"] is False and "enableSQLTranslation" not in info["jdbc_url"]
    assert info["jdbc_url"].startswith("jdbc:neo4j://127.0.0.1:7999/neo4j?viewDefinitions=")
    (tmp_path / "neo4j-jdbc-full-bundle-6.8.0.jar").write_bytes(b"")
    (tmp_path / ".complete").write_text("full 6.8.0\n")
    info = json.loads(runner.invoke(app, ["bi", "url", "--json"]).output)
    assert info["sql_translation"] is True and "enableSQLTranslation=true" in info["jdbc_url"]


def test_url_before_the_embedded_server_exists(monkeypatch, tmp_path):
    monkeypatch.delenv("NEO4J_URI", raising=False)
    monkeypatch.setenv("SPARSETOPO_HOME", str(tmp_path / "fresh"))
    result = runner.invoke(app, ["bi", "url"])
    assert result.exit_code != 0
    assert "run `sparsetopo db start` first" in str(result.exception)


@pytest.mark.neo4j
def test_url_of_the_embedded_server_names_the_password_file(neo4j_server, monkeypatch):
    monkeypatch.delenv("NEO4J_URI", raising=False)
    monkeypatch.setenv("SPARSETOPO_HOME", str(neo4j_server.home.parent))  # data home whose neo4j/ is the test server
    info = json.loads(runner.invoke(app, ["bi", "url", "--json"]).output)
    assert info["password"] == f"in {neo4j_server.password_file}"
    assert info["jdbc_url"].startswith(f"jdbc:neo4j://127.0.0.1:{neo4j_server.bolt_port}/neo4j?")


def test_unknown_scheme_is_one_sentence():
    from sparsetopo.graphstore.settings import ConnectionSettings

    with pytest.raises(bi.GraphStoreError, match="unknown scheme 'http'"):
        bi.jdbc_url(ConnectionSettings("http://localhost:7474", "neo4j", "x"))
