"""Searches over associations: single-user moves, the multi-start local search (dashf-plus)
and the exhaustive reference."""
