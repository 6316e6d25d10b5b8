"""Tests of the model server (a package, so that its conftest does not shadow the root one)."""
