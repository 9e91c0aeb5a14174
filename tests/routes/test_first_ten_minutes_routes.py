"""What a new user meets first: a 401 that says where the embedded default's key is, and a body
sent without ``Content-Type: application/json`` told so."""

from __future__ import annotations

from tests.routes.helpers import Service, problem


def test_a_401_points_to_the_key_file_without_revealing_the_servers_paths(svc: Service) -> None:
    key_file = svc.settings.data_dir.resolve() / "api-key"
    key_file.write_text(svc.keys["default"] + "\n")  # as `lipspline serve` writes it
    body = problem(svc.anon.get("/v1/datasets"), 401, "unauthorized")
    assert "`api-key` in its data directory" in body["detail"]
    # an unauthenticated caller learns neither the key nor where the server keeps its files
    assert svc.keys["default"] not in body["detail"] and str(svc.settings.data_dir.resolve()) not in body["detail"]
    wrong = svc.open_client("lsk_not-a-key")
    detail = problem(wrong.get("/v1/datasets"), 401, "unauthorized")["detail"]
    assert "api-key" in detail and str(key_file) not in detail


def test_a_json_body_sent_without_its_content_type_is_told_so(svc: Service) -> None:
    for headers, got in (({"content-type": "text/plain"}, "got Content-Type 'text/plain'"),
                         ({"content-type": ""}, "no Content-Type was sent")):
        response = svc.client.post("/v1/jobs", content=b'{"dataset_id": "x"}', headers=headers)
        detail = problem(response, 422, "validation-error")["detail"]
        assert "Content-Type: application/json" in detail and got in detail, detail
    # with the header, the same body is read as JSON: the dataset is unknown, not the body unreadable
    problem(svc.client.post("/v1/jobs", json={"dataset_id": "x"}), 404, "not-found")
