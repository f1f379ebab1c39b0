"""The synthetic results tree fixture for the figure and table tests."""

from tests.synthetic_tree import synthetic_tree  # noqa: F401
