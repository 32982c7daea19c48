"""Benchmarks against the physical floor (DESIGN section 10): `.venv/bin/python -m bench`.

Every figure is measured in the same run as the raw `CREATE DATABASE` + schema load it is
compared with. See bench/README.md for what is measured, the options and the last results.
"""
