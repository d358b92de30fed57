"""Shared pytest setup: a non-interactive matplotlib backend, and every figure a test draws closed after it."""
import matplotlib
matplotlib.use("Agg")
import matplotlib.pyplot as plt
import pytest


@pytest.fixture(autouse=True)
def _close_figures():
    yield
    plt.close("all")
