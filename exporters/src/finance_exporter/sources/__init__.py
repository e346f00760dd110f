"""Datastore sources: each runs one read under a timeout and returns rows or raises SourceError."""
