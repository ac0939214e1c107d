"""One self-contained HTML report of runs: figures as inline base64 PNG, no network references.

Input is sparsetopo.report_data.ReportData (plain values); figures are drawn by
sparsetopo.analysis.figures and embedded as PNG. Every section says which command reproduces it. Each
figure sits in <figure class="plot" data-plot="..."> so tests (and people) can find it.
"""

from __future__ import annotations

import base64
import html
import math
import shlex
import time
from typing import Any

from sparsetopo.analysis import figures

from .report_data import STAT, ReportData, RunData, is_number, layer_stat_keys, metric_keys, snapshot_stat_keys

# Structural statistics shown first when present (others follow, up to the panel limit).
_PREFERRED_STATS = [
    "stat_in_degree_gini",
    "stat_out_degree_gini",
    "stat_in_degree_mean",
    "stat_components",
    "stat_largest_component",
    "stat_n_neurons_without_inputs",
    "stat_n_isolated_neurons",
    "stat_assortativity",
    "stat_kcore_max",
    "stat_n_inputs_without_path",
    "stat_n_outputs_unreached",
    "stat_paths_per_output_mean",
]
# a and b: the snapshots that played NNSTD's A and B
_EVOLUTION_COLUMNS = ("step", "distance", "layers", "method", "a", "b", "purpose", "source")
_PAIR_COLUMNS = ("run_a", "step_a", "run_b", "step_b", "distance", "method", "a", "b", "purpose", "source")
MAX_STAT_PANELS = 9
MAX_LAYER_STAT_PANELS = 6

_CSS = """
body{font-family:system-ui,-apple-system,"Segoe UI",sans-serif;margin:0 auto;max-width:1100px;padding:16px 24px;color:#222;background:#fff}
h1{font-size:1.6em;margin-bottom:0.2em}h2{border-bottom:2px solid #ddd;padding-bottom:4px;margin-top:2em}
h3{margin-top:1.4em}
table{border-collapse:collapse;font-size:0.9em;margin:0.5em 0}
td,th{border:1px solid #ddd;padding:3px 8px;text-align:left;vertical-align:top}
th{background:#f4f4f4}
figure.plot{margin:0.6em 0}figure.plot img{display:block;max-width:100%;height:auto;border:1px solid #eee}
figcaption{font-size:0.85em;color:#555}
pre.cmd{background:#f6f8fa;border:1px solid #e1e4e8;padding:6px 10px;font-size:0.85em;white-space:pre-wrap;overflow-wrap:anywhere}
.note{color:#7a5d00;background:#fff8e1;border-left:4px solid #f0c000;padding:4px 10px}
nav ul{columns:2}
"""


def _esc(value: Any) -> str:
    return html.escape(str(value), quote=True)


def _fmt(value: Any) -> str:
    if value is None:
        return ""
    if isinstance(value, float):
        return f"{value:.6g}" if math.isfinite(value) else str(value)
    if isinstance(value, (list, tuple)):
        shown = ", ".join(_fmt(v) for v in value[:12])
        return f"[{shown}{', …' if len(value) > 12 else ''}]"
    return str(value)


def _when(seconds: float) -> str:
    return time.strftime("%Y-%m-%d %H:%M:%S UTC", time.gmtime(seconds))


def _anchor(text: str) -> str:
    return "".join(c if c.isalnum() else "-" for c in text)


# -- figures: what each one shows of the data; sparsetopo.analysis.figures draws them --------------
def _png(fig) -> str:
    return base64.b64encode(figures.png_bytes(fig)).decode("ascii")


def _figure(name: str, png: str, caption: str) -> str:
    return (
        f'<figure class="plot" data-plot="{_esc(name)}"><img alt="{_esc(caption)}" '
        f'src="data:image/png;base64,{png}"><figcaption>{_esc(caption)}</figcaption></figure>'
    )


def _series(rows: list[dict], key: str) -> tuple[list[int], list[float | None]]:
    """(steps, values) of one property; values that are not numbers are None (not drawn)."""
    return [r["step"] for r in rows], [r.get(key) if is_number(r.get(key)) else None for r in rows]


def accuracy_density_figure(run: RunData) -> str | None:
    if not run.steps:
        return None
    accuracy = {k: _series(run.snapshots, k)[1] for k in metric_keys(run) if "acc" in k.lower()}
    density = _series(run.snapshots, "density")[1]
    synapses = _series(run.snapshots, "n_synapses")[1]
    return _png(figures.accuracy_density(run.steps, accuracy, density, synapses))


def churn_figure(run: RunData) -> str | None:
    """Appeared and vanished connections per step, by layer; the first step left out."""
    if len(run.steps) < 2 or not run.layers:
        return None
    return _png(figures.churn(run.layers))


def _ordered_stats(keys: list[str], limit: int) -> list[str]:
    first = [k for k in _PREFERRED_STATS if k in keys]
    rest = [k for k in keys if k not in first]
    return (first + rest)[:limit]


_STAT_PANEL = (3.5, 2.4)


def network_stats_figure(run: RunData) -> str | None:
    keys = _ordered_stats(snapshot_stat_keys(run), MAX_STAT_PANELS)
    if not keys:
        return None
    panels = [
        figures.Panel({"network": _series(run.snapshots, k)}, title=k[len(STAT) :], xlabel="", legend=False)
        for k in keys
    ]
    return _png(figures.line_panels(panels, panel_size=_STAT_PANEL))


def layer_stats_figure(run: RunData) -> str | None:
    keys = _ordered_stats(layer_stat_keys(run), MAX_LAYER_STAT_PANELS)
    if not keys:
        return None
    by_layer = {
        layer: [r for r in run.layers if r["layer"] == layer] for layer in sorted({r["layer"] for r in run.layers})
    }
    panels = [
        figures.Panel(
            {f"layer {layer}": _series(rows, k) for layer, rows in by_layer.items()},
            title=k[len(STAT) :],
            xlabel="",
            legend=i == 0,
        )
        for i, k in enumerate(keys)
    ]
    return _png(figures.line_panels(panels, panel_size=_STAT_PANEL))


def evolution_figure(run: RunData) -> str | None:
    points = [e for e in run.evolution if e.get("distance") is not None]
    if not points:
        return None
    fig = figures.nnstd_evolution(
        [e["step"] for e in points],
        [e["distance"] for e in points],
        [e["layers"] for e in points],
        title="evolution against the initial topology",
        ylabel=f"NNSTD to step {run.steps[0]}",
    )
    return _png(fig)


def nnstd_matrix(data: ReportData) -> tuple[list[str], list[list[float | None]]]:
    """Runs (with snapshots) x runs of NNSTD between their final snapshots; 0 on the diagonal."""
    labels = [r.run_id for r in data.runs if r.steps]
    index = {r: i for i, r in enumerate(labels)}
    m: list[list[float | None]] = [[0.0 if i == j else None for j in range(len(labels))] for i in range(len(labels))]
    for p in data.pairs:
        if p["run_a"] in index and p["run_b"] in index and p.get("distance") is not None:
            i, j = index[p["run_a"]], index[p["run_b"]]
            m[i][j] = m[j][i] = p["distance"]
    return labels, m


def nnstd_heatmap_figure(data: ReportData) -> str | None:
    labels, m = nnstd_matrix(data)
    if len(labels) < 2 or not any(v is not None for i, row in enumerate(m) for j, v in enumerate(row) if i != j):
        return None
    distance = [[math.nan if v is None else v for v in row] for row in m]
    return _png(figures.nnstd_heatmap(distance, labels, title="NNSTD between final snapshots"))


def comparison_figure(data: ReportData) -> str | None:
    runs = [r for r in data.runs if any(s.get("test_accuracy") is not None for s in r.snapshots)]
    if len(runs) < 2:
        return None
    panel = figures.Panel(
        {r.run_id: _series(r.snapshots, "test_accuracy") for r in runs},
        title="test accuracy of the runs",
        ylabel="test accuracy",
    )
    return _png(figures.line_panels([panel], panel_size=(10.4, 3.2)))


# -- HTML ---------------------------------------------------------------------------
def _commands(lines: list[str]) -> str:
    return '<p>Reproduce:</p><pre class="cmd">' + _esc("\n".join(lines)) + "</pre>"


def _note(text: str) -> str:
    return f'<p class="note">{_esc(text)}</p>'


def _table(rows: list[dict], columns: list[str], cls: str = "") -> str:
    head = "".join(f"<th>{_esc(c)}</th>" for c in columns)
    body = "".join("<tr>" + "".join(f"<td>{_esc(_fmt(r.get(c)))}</td>" for c in columns) + "</tr>" for r in rows)
    return f'<table class="{cls}"><thead><tr>{head}</tr></thead><tbody>{body}</tbody></table>'


def _run_section(run: RunData, report_cmd: str) -> str:
    rid = run.run_id
    q = shlex.quote(rid)
    a = _anchor(rid)
    parts = [f'<section class="run" id="run-{a}"><h2>Run {_esc(rid)}</h2>']

    parts.append("<h3>Configuration</h3>")
    config = [
        {"property": k, "value": _when(v) if k.endswith("_at") and isinstance(v, (int, float)) else v}
        for k, v in sorted(run.config.items())
    ]
    parts.append(_table(config, ["property", "value"], "config"))
    parts.append(_commands([f"sparsetopo runs show {q}"]))

    parts.append("<h3>Accuracy and density</h3>")
    png = accuracy_density_figure(run)
    if png:
        parts.append(_figure(f"{rid}/accuracy-density", png, f"{rid}: accuracy, density and synapse count per step"))
        last = run.snapshots[-1]
        parts.append(
            _table(
                [{"": "last step", **{k: last.get(k) for k in ["step"] + metric_keys(run)}}],
                [""] + ["step"] + metric_keys(run),
                "last",
            )
        )
    else:
        parts.append(_note("This run has no snapshots yet."))
    parts.append(
        _commands(
            [
                f"sparsetopo plot {q} --out figures/{rid}",
                f"sparsetopo cypher 'MATCH (s:Snapshot {{run_id: $run}}) RETURN s ORDER BY s.step' -p run={q} --csv",
            ]
        )
    )

    parts.append("<h3>Churn per step</h3>")
    png = churn_figure(run)
    if png:
        parts.append(
            _figure(f"{rid}/churn", png, f"{rid}: connections that appeared and vanished at each step, by layer")
        )
    else:
        parts.append(_note("Churn needs at least two snapshots."))
    parts.append(_commands([f"sparsetopo evolution {q}", f"sparsetopo plot {q} --out figures/{rid}"]))

    parts.append("<h3>Structural statistics over time</h3>")
    net, lay = network_stats_figure(run), layer_stats_figure(run)
    if net:
        parts.append(_figure(f"{rid}/network-stats", net, f"{rid}: whole-network statistics per step"))
    if lay:
        parts.append(_figure(f"{rid}/layer-stats", lay, f"{rid}: per-layer statistics per step"))
    if not net and not lay:
        parts.append(
            _note(f"No structural statistics are stored for this run; `sparsetopo stats {rid}` computes them.")
        )
    parts.append(_commands([f"sparsetopo stats {q}", f"sparsetopo stats {q} --csv"]))

    parts.append("<h3>Evolution against the initial topology</h3>")
    png = evolution_figure(run)
    if png:
        parts.append(_figure(f"{rid}/evolution", png, f"{rid}: NNSTD between step {run.steps[0]} and later steps"))
        sources = sorted({e["source"] for e in run.evolution if e.get("distance") is not None})
        parts.append(
            _table(
                [{k: e.get(k) for k in _EVOLUTION_COLUMNS} for e in run.evolution],
                list(_EVOLUTION_COLUMNS),
                "evolution",
            )
        )
        if "computed" in sources:
            parts.append(
                _note(
                    "Values marked 'computed' were computed for this report and not stored; --save-nnstd stores them."
                )
            )
    else:
        parts.append(_note("No NNSTD against the initial topology is stored, and none was computed."))
    parts.append(_commands([f"sparsetopo nnstd evolution {q}  # computes and stores every step", report_cmd]))
    parts.append("</section>")
    return "\n".join(parts)


def render(data: ReportData, command: str, generated_at: float | None = None) -> str:
    """The whole HTML document."""
    when = _when(generated_at or time.time())
    ids = [r.run_id for r in data.runs]
    parts = [
        "<!DOCTYPE html>",
        '<html lang="en"><head><meta charset="utf-8">',
        '<meta name="viewport" content="width=device-width, initial-scale=1">',
        '<link rel="icon" href="data:,">',  # no favicon request
        f"<title>sparsetopo report: {_esc(', '.join(ids))}</title>",
        f"<style>{_CSS}</style></head><body>",
        f"<h1>sparsetopo report</h1><p>Runs {_esc(', '.join(ids))}; generated {when}.</p>",
        "<nav><ul>"
        + "".join(f'<li><a href="#run-{_anchor(r)}">{_esc(r)}</a></li>' for r in ids)
        + ('<li><a href="#compare">comparison</a></li>' if len(ids) > 1 else "")
        + "</ul></nav>",
    ]
    for note in data.notes:
        parts.append(_note(note))
    for run in data.runs:
        parts.append(_run_section(run, command))
    if len(ids) > 1:
        parts.append('<section id="compare"><h2>Comparison of the runs</h2>')
        png = comparison_figure(data)
        if png:
            parts.append(_figure("compare/accuracy", png, "test accuracy of every run per step"))
        parts.append("<h3>NNSTD between the runs</h3>")
        png = nnstd_heatmap_figure(data)
        if png:
            parts.append(_figure("compare/nnstd", png, "NNSTD between the final snapshots of the runs"))
            parts.append(
                _table(
                    [{k: p.get(k) for k in _PAIR_COLUMNS} for p in data.pairs],
                    list(_PAIR_COLUMNS),
                    "nnstd-pairs",
                )
            )
        else:
            parts.append(_note("No NNSTD between the final snapshots is stored, and none was computed."))
            for p in data.pairs:
                if p.get("distance") is None:
                    parts.append(_note(f"{p['run_a']} and {p['run_b']}: {p['source']}"))
        finals = " ".join(shlex.quote(f"{r.run_id}@{r.steps[-1]}") for r in data.runs if r.steps)
        parts.append(_commands([f"sparsetopo nnstd matrix {finals} --out nnstd.png", command]))
        parts.append("</section>")
    parts.append(f"<footer><p>Made by <code>{_esc(command)}</code>.</p></footer></body></html>")
    return "\n".join(parts) + "\n"
