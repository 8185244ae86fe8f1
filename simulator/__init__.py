"""The agency simulator: plays the four agencies and the coordinators against a running platform."""
