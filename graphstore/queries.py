"""Named, parameterised Cypher queries about how a run's wiring evolves.

Every query is plain Cypher with $parameters (user values never become query
text), so docs/cypher.md can show each one to paste into Neo4j Browser. They
run in read-only transactions. Each answers from index seeks or from the small
per-step (:LayerSnapshot) nodes, never by scanning all of a run's synapses:

- counts per step come from LayerSnapshot properties: `nnz`, `appeared` and
  `vanished` that the writer stores, and the `evo_*` summaries of synapse
  lifetimes that graphstore.evolution adds (`sparsetopo evolution` and
  `sparsetopo stats` fill them; until then those columns are null);
- lists of synapses seek the SYNAPSE range indexes on (run_id, born) and
  (run_id, died), stopping after $limit rows;
- one neuron's history starts from its unique (run_id, layer, index) key;
- stored NNSTD is reached from the run's few Snapshot nodes.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from .errors import GraphStoreError


class QueryError(GraphStoreError):
    """An unknown query name, a missing or unknown parameter, or a value of the wrong type."""


_REQUIRED = object()


@dataclass(frozen=True)
class Param:
    name: str
    type: type
    help: str
    default: Any = _REQUIRED

    @property
    def required(self) -> bool:
        return self.default is _REQUIRED


@dataclass(frozen=True)
class NamedQuery:
    name: str
    description: str
    cypher: str
    params: tuple[Param, ...] = field(default_factory=tuple)
    needs_summaries: bool = False  # reads the evo_* properties graphstore.evolution stores

    def param(self, name: str) -> Param | None:
        return next((p for p in self.params if p.name == name), None)


RUN = Param("run_id", str, "the run")
LAYER_ANY = Param("layer", int, "weight layer k (from neuron layer k to k+1); all layers when omitted", None)
STEP = Param("step", int, "the evolution step")
LIMIT = Param("limit", int, "return at most this many rows", 100)

# The first and last complete step of a run, from its few Snapshot nodes. Every query skips a
# step whose Snapshot has complete = false (a chunked step still being written).
_RUN_SPAN = (
    "MATCH (:Run {run_id: $run_id})-[:HAS_SNAPSHOT]->(s:Snapshot) WHERE s.complete IS NULL\n"
    "WITH min(s.step) AS first, max(s.step) AS last\n"
)

_LIST = [
    NamedQuery(
        "evolution",
        "Per step and layer: synapses alive, appeared and vanished (at the first step all count as "
        "appeared), and how many of the first step's synapses are still alive (their first lifetime).",
        "MATCH (x:Snapshot {run_id: $run_id})-[:HAS_LAYER]->(l:LayerSnapshot)\n"
        "WHERE x.complete IS NULL AND ($layer IS NULL OR l.layer = $layer)\n"
        "RETURN l.step AS step, l.layer AS layer, l.nnz AS alive, l.appeared AS appeared,\n"
        "       l.vanished AS vanished, l.evo_initial_alive AS initial_alive,\n"
        "       l.evo_initial_fraction AS initial_fraction\n"
        "ORDER BY step, layer",
        (RUN, LAYER_ANY),
        needs_summaries=True,
    ),
    NamedQuery(
        "churn_at_step",
        "Synapses that appeared and vanished at one step, counted straight from the SYNAPSE "
        "lifetimes (index-only counts on born and died), next to the totals of the writer's "
        "per-layer counts: a consistency check of the stored graph.",
        "MATCH (x:Snapshot {run_id: $run_id, step: $step})-[:HAS_LAYER]->(l:LayerSnapshot)\n"
        "WHERE x.complete IS NULL\n"
        "WITH x, sum(l.appeared) AS stored_appeared, sum(l.vanished) AS stored_vanished, sum(l.nnz) AS alive\n"
        "CALL () {\n"
        "  MATCH ()-[s:SYNAPSE]->() WHERE s.run_id = $run_id AND s.born = $step RETURN count(s) AS appeared\n"
        "}\n"
        "CALL () {\n"
        "  MATCH ()-[s:SYNAPSE]->() WHERE s.run_id = $run_id AND s.died = $step RETURN count(s) AS vanished\n"
        "}\n"
        "RETURN x.step AS step, alive, appeared, vanished, stored_appeared, stored_vanished",
        (RUN, STEP),
    ),
    NamedQuery(
        "appeared_at",
        "Synapses that appeared at a step: source and target neuron, weight at birth, when they died.",
        "MATCH (x:Snapshot {run_id: $run_id, step: $step}) WHERE x.complete IS NULL\n"
        "MATCH (a:Neuron)-[s:SYNAPSE]->(b:Neuron)\n"
        "WHERE s.run_id = $run_id AND s.born = $step AND ($layer IS NULL OR s.layer = $layer)\n"
        "RETURN s.layer AS layer, a.index AS source, b.index AS target,\n"
        "       s.weight_born AS weight_born, s.died AS died\n"
        "LIMIT $limit",
        (RUN, STEP, LAYER_ANY, LIMIT),
    ),
    NamedQuery(
        "vanished_at",
        "Synapses that vanished at a step: source and target neuron, when they were born, last weight.",
        "MATCH (x:Snapshot {run_id: $run_id, step: $step}) WHERE x.complete IS NULL\n"
        "MATCH (a:Neuron)-[s:SYNAPSE]->(b:Neuron)\n"
        "WHERE s.run_id = $run_id AND s.died = $step AND ($layer IS NULL OR s.layer = $layer)\n"
        "RETURN s.layer AS layer, a.index AS source, b.index AS target,\n"
        "       s.born AS born, s.weight AS last_weight\n"
        "LIMIT $limit",
        (RUN, STEP, LAYER_ANY, LIMIT),
    ),
    NamedQuery(
        "initial_survival",
        "Per step and layer: the fraction of the first step's synapses whose first lifetime lasts "
        "until that step (needs the evo_* summaries).",
        "MATCH (l:LayerSnapshot {run_id: $run_id})\n"
        "WHERE ($layer IS NULL OR l.layer = $layer) AND l.evo_initial_alive IS NOT NULL\n"
        "RETURN l.step AS step, l.layer AS layer, l.evo_initial_alive AS initial_alive,\n"
        "       l.evo_initial_fraction AS initial_fraction\n"
        "ORDER BY step, layer",
        (RUN, LAYER_ANY),
        needs_summaries=True,
    ),
    NamedQuery(
        "lifetimes",
        "Distribution of completed synapse lifetimes (died - born, in steps) per layer "
        "(needs the evo_* summaries; see `ages` for synapses still alive).",
        "MATCH (l:LayerSnapshot {run_id: $run_id})\n"
        "WHERE ($layer IS NULL OR l.layer = $layer) AND size(l.evo_vanished_born) > 0\n"
        "UNWIND range(0, size(l.evo_vanished_born) - 1) AS i\n"
        "WITH l.layer AS layer, l.step - l.evo_vanished_born[i] AS lifetime, l.evo_vanished_count[i] AS n\n"
        "RETURN layer, lifetime, sum(n) AS synapses\n"
        "ORDER BY layer, lifetime",
        (RUN, LAYER_ANY),
        needs_summaries=True,
    ),
    NamedQuery(
        "ages",
        "Age (step - born) of the synapses alive at a step, the last step when omitted: the "
        "still-running lifetimes (needs the evo_* summaries).",
        _RUN_SPAN + "MATCH (l:LayerSnapshot {run_id: $run_id, step: coalesce($step, last)})\n"
        "WHERE ($layer IS NULL OR l.layer = $layer) AND size(l.evo_alive_born) > 0\n"
        "UNWIND range(0, size(l.evo_alive_born) - 1) AS i\n"
        "RETURN l.layer AS layer, l.step - l.evo_alive_born[i] AS age, l.evo_alive_count[i] AS synapses\n"
        "ORDER BY layer, age",
        (RUN, Param("step", int, "the step; the last one when omitted", None), LAYER_ANY),
        needs_summaries=True,
    ),
    NamedQuery(
        "survivors",
        "Synapses alive from the first step to the end in one lifetime (born at the first step, never died). "
        "When the evo_* summaries say there are none, it answers without scanning the first step's synapses.",
        _RUN_SPAN + "OPTIONAL MATCH (l:LayerSnapshot {run_id: $run_id, step: last})\n"
        "WHERE $layer IS NULL OR l.layer = $layer\n"
        "WITH first, sum(CASE WHEN l.evo_alive_born IS NULL THEN 1\n"
        "                     WHEN l.evo_alive_born[0] = first THEN l.evo_alive_count[0] ELSE 0 END) AS expected\n"
        "WHERE expected > 0\n"
        "MATCH (a:Neuron)-[s:SYNAPSE]->(b:Neuron)\n"
        "WHERE s.run_id = $run_id AND s.born = first AND s.died IS NULL\n"
        "  AND ($layer IS NULL OR s.layer = $layer)\n"
        "RETURN s.layer AS layer, a.index AS source, b.index AS target,\n"
        "       s.weight_born AS weight_born, s.weight AS weight\n"
        "LIMIT $limit",
        (RUN, LAYER_ANY, LIMIT),
    ),
    NamedQuery(
        "neuron_history",
        "Every synapse lifetime into or out of one neuron, in order of birth.",
        "MATCH (n:Neuron {run_id: $run_id, layer: $layer, index: $index})\n"
        "CALL (n) {\n"
        "  MATCH (n)-[s:SYNAPSE]->(o) RETURN 'out' AS direction, o.layer AS other_layer, o.index AS other_index, s\n"
        "  UNION ALL\n"
        "  MATCH (n)<-[s:SYNAPSE]-(o) RETURN 'in' AS direction, o.layer AS other_layer, o.index AS other_index, s\n"
        "}\n"
        "RETURN direction, other_layer, other_index, s.born AS born, s.died AS died,\n"
        "       s.weight_born AS weight_born, s.weight AS weight\n"
        "ORDER BY born, direction, other_index",
        (
            RUN,
            Param("layer", int, "the neuron's layer (0 = inputs)"),
            Param("index", int, "the neuron's index in its layer"),
        ),
    ),
    NamedQuery(
        "degree_change",
        "Neurons of a layer ranked by how much their out-degree changed between two steps "
        "(first and last by default); layer 0 = input pixels.",
        _RUN_SPAN + "MATCH (a:LayerSnapshot {run_id: $run_id, step: coalesce($from_step, first), layer: $layer})\n"
        "MATCH (b:LayerSnapshot {run_id: $run_id, step: coalesce($to_step, last), layer: $layer})\n"
        "CALL (a, b) {\n"
        "  UNWIND a.positions AS p RETURN p / a.n_out / coalesce(a.taps, 1) AS neuron, 1 AS before, 0 AS after\n"
        "  UNION ALL\n"
        "  UNWIND b.positions AS p RETURN p / b.n_out / coalesce(b.taps, 1) AS neuron, 0 AS before, 1 AS after\n"
        "}\n"
        "WITH a.step AS from_step, b.step AS to_step, neuron, sum(before) AS degree_from, sum(after) AS degree_to\n"
        "RETURN neuron, from_step, to_step, degree_from, degree_to, degree_to - degree_from AS change\n"
        "ORDER BY abs(change) DESC, neuron\n"
        "LIMIT $limit",
        (
            RUN,
            Param("layer", int, "the neuron layer whose out-degrees are compared", 0),
            Param("from_step", int, "first step compared; the run's first when omitted", None),
            Param("to_step", int, "second step compared; the run's last when omitted", None),
            Param("limit", int, "return at most this many neurons", 20),
        ),
    ),
    NamedQuery(
        "degrees",
        "Out-degree of every neuron of a layer at a step (neurons without synapses omitted): "
        "for layer 0 of MNIST, the 28x28 input-degree map.",
        "MATCH (x:Snapshot {run_id: $run_id, step: $step})-[:HAS_LAYER]->(l:LayerSnapshot {layer: $layer})\n"
        "WHERE x.complete IS NULL\n"
        "UNWIND l.positions AS p\n"
        "RETURN p / l.n_out / coalesce(l.taps, 1) AS neuron, count(*) AS degree\n"
        "ORDER BY neuron",
        (RUN, STEP, Param("layer", int, "the neuron layer", 0)),
    ),
    NamedQuery(
        "nnstd",
        "Stored NNSTD relationships that involve a snapshot of the run: the two snapshots (the relationship "
        "goes from the smaller (run_id, step) to the larger), `a` and `b` (RUN@STEP of the snapshots that "
        "played NNSTD's A and B), why it was computed (`purpose`), the method and the distances.",
        "MATCH (:Snapshot {run_id: $run_id})-[d:NNSTD]-(:Snapshot)\n"
        "WHERE $purpose IS NULL OR d.purpose = $purpose\n"
        "WITH DISTINCT d, startNode(d) AS x, endNode(d) AS y\n"
        "WHERE x.complete IS NULL AND y.complete IS NULL\n"
        "RETURN x.run_id AS from_run, x.step AS from_step, y.run_id AS to_run, y.step AS to_step,\n"
        "       d.a AS a, d.b AS b, d.purpose AS purpose, d.method AS method,\n"
        "       d.distance AS distance, d.layers AS layers\n"
        "ORDER BY from_run, from_step, to_run, to_step, method\n"
        "LIMIT $limit",
        (
            RUN,
            Param(
                "purpose",
                str,
                "only those computed for this purpose (evolution-initial, evolution-previous, "
                "independent-initial, independent-final, figure4, report); all when omitted",
                None,
            ),
            LIMIT,
        ),
    ),
]

QUERIES: dict[str, NamedQuery] = {q.name: q for q in _LIST}


def get_query(name: str) -> NamedQuery:
    try:
        return QUERIES[name]
    except KeyError:
        raise QueryError(f"there is no query named '{name}'; known queries: {', '.join(QUERIES)}") from None


def _convert(query: NamedQuery, p: Param, value: Any) -> Any:
    if value is None or isinstance(value, p.type) and not isinstance(value, bool):
        return value
    if p.type is str and isinstance(value, (int, float)) and not isinstance(value, bool):
        return str(value)  # e.g. a numeric run id given as --param run_id=7
    if isinstance(value, str):
        try:
            return p.type(value)
        except ValueError:
            pass
    kind = {int: "an integer", float: "a number", str: "text"}[p.type]
    raise QueryError(f"parameter '{p.name}' of query '{query.name}' must be {kind}, not {value!r}")


def bind(name: str, values: dict[str, Any]) -> dict[str, Any]:
    """The full, typed parameter map of a query: defaults filled in, unknown names refused."""
    query = get_query(name)
    unknown = sorted(set(values) - {p.name for p in query.params})
    if unknown:
        known = ", ".join(p.name for p in query.params)
        raise QueryError(f"query '{name}' has no parameter '{unknown[0]}' (its parameters: {known})")
    bound = {}
    for p in query.params:
        if p.name in values:
            bound[p.name] = _convert(query, p, values[p.name])
        elif p.required:
            raise QueryError(f"query '{name}' needs parameter '{p.name}' ({p.help})")
        else:
            bound[p.name] = p.default
    return bound


def run_named(store, name: str, values: dict[str, Any]) -> list[dict]:
    """Bind and run a named query in a read-only transaction."""
    query, params = get_query(name), bind(name, values)
    return store.read(query.cypher, params)


def _example(p: Param) -> str:
    if not p.required:
        return "null" if p.default is None else repr(p.default)
    return {"run_id": "'my-run'", "step": "1", "layer": "0", "index": "0"}.get(p.name, "0")


def markdown() -> str:
    """docs/cypher.md: every named query as plain Cypher for Neo4j Browser or cypher-shell."""
    out = [
        "# Named Cypher queries",
        "",
        "Generated from `graphstore/queries.py` by `python -m sparsetopo.graphstore.queries > docs/cypher.md`;"
        " a test fails when this page and the code disagree.",
        "",
        "Run any of them with `sparsetopo query NAME RUN [--param k=v ...]`, list them with"
        " `sparsetopo query --list`, or paste them into Neo4j Browser or cypher-shell after setting"
        " the parameters, e.g. `:params {run_id: 'my-run', layer: null}` in Browser or"
        " `:param {run_id: 'my-run', layer: null}` in cypher-shell. Every parameter must be set;"
        ' null means "all" or "the default" where the table below says so.',
        "",
        "Queries marked *needs the evo_\\* summaries* read per-step summaries of the synapse lifetimes"
        " that `sparsetopo evolution RUN` (or `sparsetopo stats RUN`) stores on the run's"
        " LayerSnapshot nodes; see docs/query-plans.md for how each query is executed.",
        "",
    ]
    for q in QUERIES.values():
        params = ", ".join(f"{p.name}: {_example(p)}" for p in q.params)
        out += [f"### `{q.name}`", "", q.description, ""]
        if q.needs_summaries:
            out += ["*Needs the evo_\\* summaries* (`sparsetopo evolution RUN` stores them).", ""]
        out += ["| parameter | meaning | default |", "|---|---|---|"]
        out += [f"| `{p.name}` | {p.help} | {'required' if p.required else _example(p)} |" for p in q.params]
        out += ["", "```", f":params {{{params}}}", "```", "", "```cypher", q.cypher, "```", ""]
    return "\n".join(out)


if __name__ == "__main__":
    print(markdown(), end="")
