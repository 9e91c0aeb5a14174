"""What a new user meets first: a 401 that says where the embedded default's key is, and a body
sent without ``Content-Type: application/json`` told so."""

from __future__ import annotations

from tests.routes.helpers import Service, problem


def test_a_401_names_the_key_file_of_the_embedded_default(svc: Service) -> None:
    key_file = svc.settings.data_dir.resolve() / "api-key"
    key_file.write_text(svc.keys["default"] + "\n")  # as `lipspline serve` writes it
    body = problem(svc.anon.get("/v1/datasets"), 401, "unauthorized")
    assert str(key_file) in body["detail"] and "LIPSPLINE_API_KEY" in body["detail"]
    assert svc.keys["default"] not in body["detail"]  # the path, never the key
    wrong = svc.open_client("lsk_not-a-key")
    assert str(key_file) in problem(wrong.get("/v1/datasets"), 401, "unauthorized")["detail"]


def test_a_json_body_sent_without_its_content_type_is_told_so(svc: Service) -> None:
    for headers, got in (({"content-type": "text/plain"}, "got Content-Type 'text/plain'"),
                         ({"content-type": ""}, "no Content-Type was sent")):  # fmt: skip
        response = svc.client.post("/v1/jobs", content=b'{"dataset_id": "x"}', headers=headers)
        detail = problem(response, 422, "validation-error")["detail"]
        assert "Content-Type: application/json" in detail and got in detail, detail
    # with the header, the same body is read as JSON: the dataset is unknown, not the body unreadable
    problem(svc.client.post("/v1/jobs", json={"dataset_id": "x"}), 404, "not-found")
