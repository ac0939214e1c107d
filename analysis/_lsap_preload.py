"""Imported by the NNSTD fork server (analysis.nnstd_parallel) so that the assignment solver is
compiled or loaded from numba's cache once, in the server, and every worker forked from it
starts with the machine code."""

from .lsap import warm_up

warm_up()
