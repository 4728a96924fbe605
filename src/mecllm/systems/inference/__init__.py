"""Microservice-assisted inference of an edge large model (seed paper 004): docs/inference.md."""
