"""Drift Investigator's engine: statistics, store, queries, figures, demo data, CLI.

Importable without Streamlit; every number the dashboard shows comes from here.
"""
__version__ = "0.1.0"
