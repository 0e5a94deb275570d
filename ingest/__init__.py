"""Ingest: canonical events, source readers, validation, dead letters, the bus."""
