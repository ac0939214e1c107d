"""What the read-only `cypher` command refuses before sending a query: administration.

A read-only transaction still lets a query run administration commands (`SHOW TRANSACTIONS ...
TERMINATE TRANSACTIONS` killed a running import) and call procedures that administer the server
(`dbms.killConnections`). The query is tokenised (comments and strings skipped, backtick names
unquoted) and refused when it holds an administration command, a `dbms.*` procedure, or a CALL of
a procedure whose mode (SHOW PROCEDURES) is not READ.
"""

from __future__ import annotations

import re

from .errors import GraphStoreError

_TOKENS = re.compile(
    r"//[^\n]*|/\*.*?(?:\*/|\Z)"  # comments
    r"|'(?:[^'\\]|\\.)*'|\"(?:[^\"\\]|\\.)*\""  # strings
    r"|`((?:[^`]|``)*)`"  # quoted name
    r"|([A-Za-z_][A-Za-z0-9_]*)"  # name or keyword
    r"|(\S)",  # anything else, one character
    re.S,
)
# Commands that are administration wherever they appear.
_ANYWHERE = {"SHOW", "TERMINATE"}
# Clauses that start an administration command (users, roles, privileges, databases, servers).
_STARTS = {
    "GRANT",
    "DENY",
    "REVOKE",
    "ALTER",
    "RENAME",
    "START",
    "STOP",
    "ENABLE",
    "DEALLOCATE",
    "REALLOCATE",
    "DRYRUN",
    "USE",
}


class AdministrationRefused(GraphStoreError):
    """The read-only query command refuses administration commands and procedures."""


def _tokens(query: str) -> list[tuple[str, str]]:
    """(kind, text): kind is 'kw' (unquoted name), 'name' (backtick-quoted), 'sym' or 'str'."""
    out = []
    for m in _TOKENS.finditer(query):
        quoted, word, sym = m.group(1), m.group(2), m.group(3)
        if word is not None:
            out.append(("kw", word))
        elif quoted is not None:
            out.append(("name", quoted.replace("``", "`")))
        elif sym is not None:
            out.append(("sym", sym))
        elif not m.group(0).startswith(("//", "/*")):
            out.append(("str", m.group(0)))
    return out


def called_procedures(query: str) -> list[str]:
    """Names of the procedures a query CALLs (CALL { ... } and CALL (x) { ... } are subqueries)."""
    tokens, names = _tokens(query), []
    for i, (kind, text) in enumerate(tokens):
        if kind != "kw" or text.upper() != "CALL" or (i and tokens[i - 1] == ("sym", ".")):
            continue
        j, parts = i + 1, []
        while j < len(tokens) and tokens[j][0] in ("kw", "name"):
            parts.append(tokens[j][1])
            if j + 1 < len(tokens) and tokens[j + 1] == ("sym", "."):
                j += 2
            else:
                break
        if parts:
            names.append(".".join(parts))
    return names


def administration_in(query: str) -> str | None:
    """The administration command a query holds (by keyword), or None."""
    tokens = _tokens(query)
    for i, (kind, text) in enumerate(tokens):
        if kind != "kw":
            continue
        # n.show, :Show, $show and `AS show` are names, not commands.
        after_dot = i and (
            tokens[i - 1][0] == "sym"
            and tokens[i - 1][1] in ".:$"
            or tokens[i - 1][0] == "kw"
            and tokens[i - 1][1].upper() == "AS"
        )
        word = text.upper()
        if after_dot:
            continue
        if word in _ANYWHERE or i == 0 and word in _STARTS:
            following = tokens[i + 1][1].upper() if i + 1 < len(tokens) and tokens[i + 1][0] == "kw" else ""
            return f"{word} {following}".strip()
    return None


def refuse_administration(query: str, procedure_mode) -> None:
    """AdministrationRefused unless the query only reads the graph; `procedure_mode(name)` returns
    the mode SHOW PROCEDURES reports for a procedure (None when there is no such procedure)."""
    command = administration_in(query)
    if command:
        raise AdministrationRefused(
            f"`{command}` is an administration command, and `sparsetopo cypher` only queries the graph; "
            "nothing was run (administer the server with cypher-shell or Neo4j Browser)"
        )
    for name in called_procedures(query):
        mode = "DBMS" if name.lower().startswith("dbms.") else procedure_mode(name)
        if mode is not None and mode != "READ":
            raise AdministrationRefused(
                f"procedure {name} ({mode} mode) writes or administers, and `sparsetopo cypher` only queries "
                "the graph; nothing was run"
            )
