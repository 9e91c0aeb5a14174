"""The one exception the SDK raises for an answer it cannot use: it carries the problem+json."""

from __future__ import annotations

import httpx

from api_schemas.http import Problem


class LipSplineError(Exception):
    """An error answer of the service (``problem`` is its RFC 9457 body), or no answer at all.

    ``status`` is the HTTP status, or ``None`` when the service could not be reached even after
    the retries (``problem`` is then ``None`` and the message names the network error).
    """

    def __init__(self, message: str, *, status: int | None = None, problem: Problem | None = None) -> None:
        super().__init__(message)
        self.status, self.problem = status, problem

    @classmethod
    def from_response(cls, response: httpx.Response) -> LipSplineError:
        try:
            problem = Problem.model_validate(response.json())
        except ValueError:  # not JSON, or not a problem: keep what the server said
            text = response.text[:500]
            problem = Problem(type="about:blank", title=response.reason_phrase, status=response.status_code,
                              detail=text or response.reason_phrase, instance=response.request.url.path)
        return cls(f"{response.status_code} {problem.title}: {problem.detail}", status=response.status_code,
                   problem=problem)


class JobFailedError(LipSplineError):
    """``Job.wait()``: the job ended ``failed`` or ``cancelled`` (``job`` is its last state)."""

    def __init__(self, message: str, job: object) -> None:
        super().__init__(message)
        self.job = job
