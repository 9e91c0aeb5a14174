"""The ceiling for ``bench/bench_service.py``: a bare FastAPI app with one POST endpoint.

It parses a body of the same shape as ``POST /v1/models/{id}/predict`` with pydantic
(``inputs``: list of lists of floats, optional ``epsilon``) and returns a constant, so
what it costs is HTTP + JSON + validation and nothing else. Like the real endpoint it is
a plain ``def`` (run in the thread pool). Served with ``uvicorn.run``'s defaults, as
``lipspline serve`` serves the API: one process, the same host, plain HTTP.

Run: ``python bench/baseline_app.py --host 127.0.0.1 --port 8001``.
"""

from __future__ import annotations

import argparse

import uvicorn
from fastapi import FastAPI
from pydantic import BaseModel, ConfigDict, Field

app = FastAPI(title="LipSpline bench baseline")

CONSTANT = {"predictions": [0], "outputs": [[0.0]], "lipschitz_bound": 1.0}


class PredictBody(BaseModel):
    model_config = ConfigDict(extra="forbid")

    inputs: list[list[float]] = Field(..., min_length=1)
    epsilon: float | None = None


@app.post("/v1/models/{model_id}/predict")
def predict(model_id: str, body: PredictBody) -> dict:
    return CONSTANT


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=8001)
    args = parser.parse_args()
    uvicorn.run(app, host=args.host, port=args.port)


if __name__ == "__main__":
    main()
