"""Topology analysis on plain sparse matrices: NNSTD, structural statistics, plots. numpy/scipy/igraph only."""
