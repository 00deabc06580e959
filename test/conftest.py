"""Shared pytest configuration for bnnc's numerical tests."""

from __future__ import annotations

import os
import random
import shutil
import tempfile

import numpy as np
import pytest
import torch


def pytest_configure(config):
    config.addinivalue_line("markers", "slow: long-running test (deselect with -m 'not slow')")
    # The compile cache stays out of the user's own cache directory, and off
    # (tests that patch the compiler must compile); test_compile_cache.py turns
    # it back on in temporary directories.
    os.environ["BNNC_CACHE_DIR"] = tempfile.mkdtemp(prefix="bnnc-test-cache-")
    os.environ["BNNC_NO_CACHE"] = "1"


def pytest_unconfigure(config):
    cache = os.environ.get("BNNC_CACHE_DIR", "")
    if "bnnc-test-cache-" in cache:
        shutil.rmtree(cache, ignore_errors=True)


@pytest.fixture(autouse=True)
def _seed_everything():
    """Every test starts from the same RNG state, so failures reproduce."""
    torch.manual_seed(0)
    np.random.seed(0)
    random.seed(0)
    yield


@pytest.fixture
def bnnc_compile():
    """bnnc.compile (the public API the differential tests go through)."""
    import bnnc

    return bnnc.compile
