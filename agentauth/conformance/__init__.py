"""Conformance material: vector generation and replay (the runner grows here)."""
