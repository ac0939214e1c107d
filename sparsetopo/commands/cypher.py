"""`sparsetopo cypher`: read-only Cypher."""


def cypher(query: str) -> None:
    """Run a read-only Cypher query."""
