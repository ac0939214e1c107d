"""A minimal client of the real Neo4j JDBC driver through JPype (java.sql directly).

jpype.dbapi2 checks parameter counts with ParameterMetaData, which the Neo4j driver
reports as 0 for Cypher's $1 placeholders, so statements are prepared and bound here
with plain java.sql calls. One JVM per process: started once, on the driver's jars.
"""

from __future__ import annotations

from typing import Any

_STARTED = False


def start_jvm(classpath: list[str]) -> None:
    global _STARTED
    import jpype

    if not jpype.isJVMStarted():
        jpype.startJVM(classpath=classpath, convertStrings=True)
    _STARTED = True


class JdbcConnection:
    def __init__(self, url: str, user: str, password: str, driver_class: str):
        import jpype

        jpype.JClass("java.lang.Class").forName(driver_class)
        props = jpype.JClass("java.util.Properties")()
        props.setProperty("user", user)
        props.setProperty("password", password)
        self._con = jpype.JClass("java.sql.DriverManager").getConnection(url, props)

    def query(self, sql: str, params: list[Any] | None = None) -> tuple[list[str], list[tuple]]:
        """(column labels, rows) of one statement; values as Python scalars or lists."""
        stmt = self._con.prepareStatement(sql)
        try:
            for i, value in enumerate(params or [], start=1):
                if isinstance(value, bool):
                    stmt.setBoolean(i, value)
                elif isinstance(value, int):
                    stmt.setLong(i, value)
                elif isinstance(value, float):
                    stmt.setDouble(i, value)
                else:
                    stmt.setString(i, str(value))
            rs = stmt.executeQuery()
            try:
                meta = rs.getMetaData()
                cols = [str(meta.getColumnLabel(i)) for i in range(1, meta.getColumnCount() + 1)]
                rows = []
                while rs.next():
                    rows.append(tuple(_python(rs.getObject(i)) for i in range(1, len(cols) + 1)))
                return cols, rows
            finally:
                rs.close()
        finally:
            stmt.close()

    def metadata(self):
        return self._con.getMetaData()

    def close(self) -> None:
        self._con.close()

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()


def _python(value: Any) -> Any:
    """Java boxed values and lists as Python values."""
    if value is None:
        return None
    name = type(value).__name__
    if isinstance(value, (str, int, float, bool)):
        return value
    if hasattr(value, "doubleValue") and name in ("java.lang.Double", "java.lang.Float"):
        return float(value.doubleValue())
    if hasattr(value, "longValue") and name in ("java.lang.Long", "java.lang.Integer", "java.lang.Short"):
        return int(value.longValue())
    if hasattr(value, "booleanValue"):
        return bool(value.booleanValue())
    if hasattr(value, "iterator") and hasattr(value, "size"):
        return [_python(v) for v in value]
    return str(value)
