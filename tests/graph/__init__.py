"""Tests of the entity graph: one contract for every store backend, then each backend's own."""
