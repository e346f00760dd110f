"""Helpers shared by the tests: real datastore servers and exposition parsing."""
