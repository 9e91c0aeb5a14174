"""The SDK's registry (``client.registry``), model references and labels against the in-process app
(``http=`` is the TestClient, so every call goes through the real routes): names, versions, aliases
and their history; ``client.models.get`` by ``name``, ``name@alias`` and ``name/versions/N``; a
prediction through an alias says which model answered; names and tags set, filtered and edited."""

from __future__ import annotations

import pytest

from lipspline_client import Client, LipSplineError
from tests.routes.helpers import SEED_INPUTS, SEED_TARGETS, TINY_CONFIG, Service


def sdk(svc: Service) -> Client:
    return Client("http://testserver", http=svc.client)


def _trained(svc: Service, client: Client, **labels: object) -> str:
    dataset = client.datasets.upload((SEED_INPUTS, SEED_TARGETS), name="seed")
    job = client.jobs.submit(dataset, TINY_CONFIG, **labels)
    svc.worker.run(job.id)
    return job.wait().model_id


def test_names_versions_aliases_and_their_history(svc: Service) -> None:
    client = sdk(svc)
    first, second = _trained(svc, client), _trained(svc, client)
    assert client.registry.create("circle", "inside the disc").latest_version is None
    assert client.registry.register("circle", first).version == 1
    assert client.registry.register("circle", client.models.get(second)).version == 2  # a handle works too
    moved = client.registry.set_alias("circle", "production", 1)
    assert (moved.reference, moved.model_id) == ("circle@production", first)
    client.registry.set_alias("circle", "production", 2)
    client.registry.set_alias("circle", "staging", 1)
    client.registry.delete_alias("circle", "staging")

    registered = client.registry.get("circle")
    assert (registered.latest_version, registered.aliases) == (2, {"production": 2})
    assert [r.name for r in client.registry.list(name="circle").items] == ["circle"]
    assert [v.version for v in client.registry.versions("circle").items] == [2, 1]
    assert client.registry.version("circle", 1).lineage.model_id == first
    assert [a.alias for a in client.registry.aliases("circle").items] == ["production"]
    history = [(e.alias, e.from_version, e.to_version) for e in client.registry.alias_events("circle").items]
    assert history == [("production", None, 1), ("production", 1, 2), ("staging", None, 1), ("staging", 1, None)]
    assert [e.to_version for e in client.registry.alias_events("circle", alias="production").items] == [1, 2]

    with pytest.raises(LipSplineError) as refused:
        client.registry.delete("circle")  # an alias still points into it
    assert refused.value.status == 409
    client.registry.delete("circle", force=True)
    with pytest.raises(LipSplineError) as gone:
        client.registry.get("circle")
    assert gone.value.status == 404


def test_every_model_reference_reaches_its_model_and_predict_says_which(svc: Service) -> None:
    client = sdk(svc)
    first, second = _trained(svc, client), _trained(svc, client)
    client.registry.create("disc")
    client.registry.register("disc", first)
    client.registry.register("disc", second)
    client.registry.set_alias("disc", "production", 1)
    # a bare name: its production alias (else its latest version)
    references = {"disc@production": first, "disc/versions/2": second, "disc": first, first: first}
    for ref, model_id in references.items():
        handle = client.models.get(ref)
        assert (handle.id, handle.ref) == (model_id, ref)
        prediction = handle.predict([[0.0, 0.0]])
        assert prediction.model_id == model_id  # from the answer, else the reference's model
        assert prediction.predictions.shape == (1,)


def test_names_and_tags_are_set_filtered_and_edited(svc: Service) -> None:
    client = sdk(svc)
    dataset = client.datasets.upload((SEED_INPUTS, SEED_TARGETS), name="tagged", tags=["team:a"], description="d")
    assert (dataset.tags, dataset.description) == (["team:a"], "d")
    job = client.jobs.submit(dataset, TINY_CONFIG, name="first", tags=["team:a", "stage=dev"])
    svc.worker.run(job.id)
    job.refresh().wait(progress=True)  # a JobOut's progress drawn (it was a crash: JobProgress has no .get)
    assert [j.id for j in client.jobs.list(tags=["team:a", "stage=dev"]).items] == [job.id]
    assert [j.id for j in client.jobs.list(name="first").items] == [job.id]
    assert client.jobs.list(tags=["team:b"]).items == []
    edited = client.jobs.update(job.id, name="renamed", tags=["team:b"])
    assert (edited.name, edited.tags, edited.description) == ("renamed", ["team:b"], None)
    assert client.jobs.update(job.id, name=None).name is None  # None clears; what is not given stays
    assert client.jobs.get(job.id).info.tags == ["team:b"]
    assert client.datasets.update(dataset.id, tags=[]).tags == []
    assert client.models.update(job.model_id, tags=["best"]).tags == ["best"]
    assert [m.id for m in client.models.list(tags=["best"]).items] == [job.model_id]


def test_the_async_client_has_the_registry_too(svc: Service) -> None:
    import asyncio

    import httpx

    from lipspline_client import AsyncClient

    model_id = _trained(svc, sdk(svc))
    key = svc.keys["default"]

    async def flow() -> None:
        http = httpx.AsyncClient(transport=httpx.ASGITransport(app=svc.app), base_url="http://testserver",
                                 headers={"Authorization": f"Bearer {key}"})
        async with AsyncClient("http://testserver", http=http) as client:
            await client.registry.create("async-disc")
            assert (await client.registry.register("async-disc", model_id)).version == 1
            assert (await client.registry.set_alias("async-disc", "production", 1)).model_id == model_id
            assert [v.version for v in (await client.registry.versions("async-disc")).items] == [1]
            handle = await client.models.get("async-disc@production")
            assert handle.id == model_id and handle.ref == "async-disc@production"

    asyncio.run(flow())
