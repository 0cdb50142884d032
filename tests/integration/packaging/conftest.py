"""Fixtures of the packaging checks (helpers live in chart_support.py)."""

from tests.integration.packaging.chart_support import helm_home, helm_template

__all__ = ["helm_home", "helm_template"]
