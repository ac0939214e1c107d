"""`sparsetopo nnstd pair|matrix|evolution`: Neural Network Sparse Topology Distance.

A network argument is a directory in the paper's format (weight_l*.npz) or
RUN@STEP, a snapshot in the graph store. The computation lives in
analysis.nnstd; this module only reads inputs, shows progress and prints.
"""

from __future__ import annotations

from contextlib import ExitStack
from pathlib import Path
from typing import Optional

import typer

from ..output import json_text

app = typer.Typer(no_args_is_help=True, help="Neural Network Sparse Topology Distance (NNSTD) between sparse networks.")

_METHOD_HELP = (
    "exact: the authors' computation bit for bit (scipy's dense assignment); "
    "sparse: the same optimal cost per layer from the shared-input pairs only, "
    "much faster on large layers, but tied optima may be broken differently"
)


def _parse_ref(spec: str) -> tuple[str, int] | None:
    """RUN@STEP -> (run, step); None when spec is not of that form."""
    from ..errors import UsageError

    run, sep, step = spec.rpartition("@")
    if not sep or not run:
        return None
    try:
        return run, int(step)
    except ValueError:
        raise UsageError(f"'{spec}' is not RUN@STEP: the step after '@' must be an integer") from None


def load_networks(specs: list[str], stack: ExitStack) -> list[list]:
    """Layer matrices for each argument; the graph store is opened only if some argument needs it."""
    from sparsetopo.graphstore.npz_io import read_snapshot_dir

    from ..context import open_store
    from ..errors import UsageError

    store = None
    networks = []
    for spec in specs:
        if Path(spec).exists():
            networks.append(read_snapshot_dir(spec).layers)
            continue
        ref = _parse_ref(spec)
        if ref is None:
            raise UsageError(f"'{spec}' is neither a directory of weight_l*.npz files nor RUN@STEP")
        if store is None:
            store = stack.enter_context(open_store())
        networks.append(store.read_snapshot(*ref).layers)
    return networks


def _check_method(method: str) -> None:
    from sparsetopo.analysis.nnstd import METHODS

    from ..errors import UsageError

    if method not in METHODS:
        raise UsageError(f"unknown method '{method}'; use one of {', '.join(METHODS)}")


@app.command("pair")
def pair(
    a: str = typer.Argument(..., help="First network: a weight_l*.npz directory or RUN@STEP."),
    b: str = typer.Argument(..., help="Second network: a weight_l*.npz directory or RUN@STEP."),
    as_json: bool = typer.Option(False, "--json", help='Print {"distance": float, "layers": [float, ...]}.'),
    method: str = typer.Option("exact", "--method", help=_METHOD_HELP),
    ties: bool = typer.Option(
        False, "--tie-sensitivity", help="Also report how layer distances move across several optimal matchings."
    ),
) -> None:
    """NNSTD between two networks: the network distance and one distance per layer."""
    _check_method(method)
    from sparsetopo.analysis.nnstd import nnstd, tie_sensitivity

    from ..output import emit

    with ExitStack() as stack:
        net_a, net_b = load_networks([a, b], stack)
    result = nnstd(net_a, net_b, method=method)
    report = tie_sensitivity(net_a, net_b) if ties else None
    if as_json:
        out = result.to_dict()
        if report is not None:
            out["tie_sensitivity"] = report
        print(json_text(out))
        return
    rows = [{"layer": k, "distance": d} for k, d in enumerate(result.layers)]
    rows.append({"layer": "network (mean)", "distance": result.distance})
    if report is not None:
        for row, spread in zip(rows, report["layer_spread"] + [report["distance_spread"]]):
            row["spread across tie-breaks"] = spread
    emit(rows, title=f"NNSTD({a}, {b}) [{method}]")
    if report is not None:
        verdict = "unambiguous" if report["distance_spread"] == 0 else "depends on tie-breaking"
        typer.echo(
            f"tie-breaks {', '.join(report['tie_breaks'])}: the distance {verdict} "
            f"(range {min(report['distance']):.6g} .. {max(report['distance']):.6g})"
        )


@app.command("matrix")
def matrix(
    networks: list[str] = typer.Argument(..., help="Two or more networks: weight_l*.npz directories or RUN@STEP."),
    as_json: bool = typer.Option(
        False, "--json", help='Print {"labels": [...], "distance": [[...]], "layers": [[[...]]]}.'
    ),
    as_csv: bool = typer.Option(False, "--csv", help="Print the distance matrix as CSV."),
    out: Optional[Path] = typer.Option(None, "--out", help="Write a heatmap PNG (paper's Figure 4 style)."),
    method: str = typer.Option("exact", "--method", help=_METHOD_HELP),
    workers: Optional[int] = typer.Option(None, "--workers", min=1, help="Processes to use (default: all cores)."),
) -> None:
    """All-pairs NNSTD among networks, computed in parallel: symmetric, zero diagonal."""
    from ..errors import UsageError

    _check_method(method)
    if len(networks) < 2:
        raise UsageError("nnstd matrix needs at least two networks")
    from sparsetopo.analysis.nnstd_parallel import nnstd_matrix

    from ..progress import progress_bar

    with ExitStack() as stack:
        nets = load_networks(networks, stack)
    with progress_bar("NNSTD pairs") as update:
        result = nnstd_matrix(nets, method=method, workers=workers, on_progress=update, names=networks)
    distance, layers = result["distance"], result["layers"]
    if out is not None:
        from sparsetopo.analysis.figures import nnstd_heatmap, save_png

        save_png(nnstd_heatmap(distance, networks, title=f"NNSTD ({method})"), out)
    if as_json:
        print(json_text({"labels": list(networks), "distance": distance.tolist(), "layers": layers.tolist()}))
    elif as_csv:
        import csv
        import sys

        writer = csv.writer(sys.stdout)
        writer.writerow([""] + list(networks))
        for label, row in zip(networks, distance.tolist()):
            writer.writerow([label] + [repr(v) for v in row])
    else:
        from ..output import emit

        emit(
            [
                {"network": label} | {other: v for other, v in zip(networks, row)}
                for label, row in zip(networks, distance.tolist())
            ],
            title=f"NNSTD ({method})",
        )
    if out is not None and not as_json and not as_csv:
        typer.echo(f"heatmap written to {out}", err=True)


@app.command("evolution")
def evolution(
    run_id: str = typer.Argument(..., help="A run in the graph store."),
    reference: str = typer.Option(
        "initial", "--reference", help="Compare each snapshot with the initial one or the previous one."
    ),
    as_json: bool = typer.Option(False, "--json"),
    as_csv: bool = typer.Option(False, "--csv"),
    out: Optional[Path] = typer.Option(None, "--out", help="Plot path (default: nnstd_<run>_<reference>.png)."),
    method: str = typer.Option("exact", "--method", help=_METHOD_HELP),
    workers: Optional[int] = typer.Option(None, "--workers", min=1, help="Processes to use (default: all cores)."),
) -> None:
    """NNSTD of every snapshot of a run to the initial (or previous) one; stored as NNSTD relationships."""
    _check_method(method)
    from ..context import open_store
    from ..output import emit
    from ..pipelines import nnstd_evolution
    from ..progress import progress_bar

    with open_store() as store:
        with progress_bar("NNSTD evolution") as update:
            rows = nnstd_evolution(store, run_id, reference, method, workers, on_progress=update)

    from sparsetopo.analysis.figures import nnstd_evolution, save_png

    out = out or Path(f"nnstd_{run_id}_{reference}.png")
    fig = nnstd_evolution(
        [r["step"] for r in rows],
        [r["distance"] for r in rows],
        [r["layers"] for r in rows],
        title=f"NNSTD of {run_id} to the {reference} snapshot ({method})",
    )
    save_png(fig, out)
    emit(
        rows,
        ["step", "epoch", "reference_step", "distance", "layers"],
        as_json=as_json,
        as_csv=as_csv,
        title=f"NNSTD of {run_id} to the {reference} snapshot",
    )
    if not as_json and not as_csv:
        typer.echo(f"stored {len(rows)} NNSTD relationship(s); plot written to {out}", err=True)
