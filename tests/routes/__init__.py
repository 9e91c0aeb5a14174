"""In-process HTTP tests of every route: the real app on SQLite, driven by TestClient (fast)."""
