"""The edge-air system: channel prediction for the air interface (docs/air.md)."""
