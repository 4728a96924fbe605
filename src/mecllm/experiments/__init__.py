"""Experiments: the paper's figures as data, a resumable results store, executors, reports."""
