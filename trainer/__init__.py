"""Sparse network training in torch: data sets, sparse models, topology algorithms, training loop."""
