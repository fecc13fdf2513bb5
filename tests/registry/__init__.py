"""Tests of the model registry (a package: see conftest.py)."""
