"""The e2e deployments live in ``tests/conftest.py`` (``deployment``): one of each per session,
shared with the docs tests, which run the documentation's examples against the same servers."""
