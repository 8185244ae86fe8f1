"""Metrics: projections of the event stream into the board's aggregate figures."""
