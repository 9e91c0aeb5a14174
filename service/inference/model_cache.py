"""Loaded models, cached per API process: a model is loaded (and its sha256 checked) once.

The certificate was computed by the worker when the model was stored; the
cache keeps it beside the network so a prediction never recomputes it. It is
trusted only for the function it was computed on: the certificate records the
fingerprint of its served map, and a model whose served map here differs (a
model stored by an older version, or a different numerical library building
the 1-Lipschitz weights) is re-certified on load, so the bound returned with a
prediction always belongs to the map that computed it.
"""

from __future__ import annotations

import hashlib
import math
import threading
from collections import OrderedDict
from dataclasses import dataclass
from functools import cached_property

from fastapi.concurrency import run_in_threadpool

from lipspline.certificates import CertificateReport, ServedMap, certify_global
from lipspline.nn.model import TrainedModel
from lipspline.nn.serialization import ArtifactError, model_from_parts
from lipspline_platform.db.engine import session_scope
from lipspline_platform.db.tables import ModelRow
from lipspline_platform.settings import Settings
from lipspline_platform.storage import artifacts
from service.http import metrics
from service.http.problems import bad_artifact, not_found


def check_stored_weights(model_id: str, weights: bytes, document: dict, row_sha256: str, doing: str) -> None:
    """Refuse a weights blob unless it matches both sha256 recorded with it: the document's and the row's.

    Checking both catches a blob rewritten together with the document's hash. Loading (this
    cache) and the download route, which sends the raw blob without loading it, both call it.
    """
    digest = hashlib.sha256(weights).hexdigest()
    if {document.get("weights_sha256"), row_sha256} != {digest}:
        raise bad_artifact(model_id, f"cannot be {doing}: its weights do not match the sha256 recorded with it")


@dataclass(frozen=True)
class LoadedModel:
    id: str
    tenant_id: str
    model: TrainedModel
    certificate: CertificateReport
    lock: threading.Lock

    #: the certified bound of the map this process serves (re-certified on load if the stored one is not)
    certified: float | None

    @cached_property
    def served_map(self) -> ServedMap:
        """The model's served map, built once: a loaded model's parameters never change, so the
        per-call staleness check of ``TrainedModel.served_map`` (a walk over its state) is skipped."""
        return self.model.served_map()

    @cached_property
    def work_per_row(self) -> int:
        """The served map's cost per input row, in parameters touched (what ``ComputePlacement`` weighs)."""
        return self.model.network.parameter_count()


class ModelCache:
    """A small LRU of loaded models, safe for the threadpool FastAPI runs sync handlers in."""

    def __init__(self, settings: Settings, capacity: int) -> None:
        self.settings, self.capacity = settings, capacity
        self.database_url = settings.resolved_database_url
        self._items: OrderedDict[str, LoadedModel] = OrderedDict()
        self._lock = threading.Lock()

    def cached(self, model_id: str, tenant_id: str) -> LoadedModel | None:
        """The model if it is loaded already (no database, no waiting: safe on the event loop), else None."""
        with self._lock:
            item = self._items.get(model_id)
            if item is not None:
                self._items.move_to_end(model_id)
        if item is not None:
            metrics.MODEL_CACHE_HITS.inc()
            if item.tenant_id != tenant_id:
                raise not_found("model", model_id)
        return item

    async def get_async(self, model_id: str, tenant_id: str) -> LoadedModel:
        """``get`` for async routes: a loaded model at once, a load (database, sha256, parsing) in a thread."""
        return self.cached(model_id, tenant_id) or await run_in_threadpool(self._load_into_cache, model_id, tenant_id)

    def get(self, model_id: str, tenant_id: str) -> LoadedModel:
        """The loaded model if it belongs to the tenant; another tenant's model is a 404."""
        return self.cached(model_id, tenant_id) or self._load_into_cache(model_id, tenant_id)

    def _load_into_cache(self, model_id: str, tenant_id: str) -> LoadedModel:
        """After a miss: load the model, unless another thread has loaded it meanwhile (not a second miss)."""
        with self._lock:
            item = self._items.get(model_id)
        if item is None:
            metrics.MODEL_CACHE_MISSES.inc()
            with metrics.MODEL_LOAD_DURATION.time():
                item = self._load(model_id)
            with self._lock:
                self._items[model_id] = item
                while len(self._items) > self.capacity:
                    self._items.popitem(last=False)
                    metrics.MODEL_CACHE_EVICTIONS.inc()
        if item.tenant_id != tenant_id:
            raise not_found("model", model_id)
        return item

    def _load(self, model_id: str) -> LoadedModel:
        with session_scope(self.database_url) as session:
            row = session.get(ModelRow, model_id)
            if row is None:
                raise not_found("model", model_id)
            document, tenant_id = row.document, row.tenant_id
            inline, weights_uri = row.weights, row.weights_uri
            certificate = CertificateReport.model_validate(row.certificate)
            row_sha256 = row.weights_sha256
        try:
            weights = artifacts.read(self.settings, inline, weights_uri)
        except artifacts.ArtifactMissingError as exc:
            raise bad_artifact(model_id, f"cannot be loaded: {exc}") from exc
        check_stored_weights(model_id, weights, document, row_sha256, "loaded")
        try:
            model = model_from_parts(document, weights)
        except ArtifactError as exc:
            raise bad_artifact(model_id, f"cannot be loaded: {exc}") from exc
        model.network.eval()
        return LoadedModel(model_id, tenant_id, model, certificate, threading.Lock(), served_bound(model, certificate))

    def forget(self, model_id: str) -> None:
        with self._lock:
            self._items.pop(model_id, None)


def served_bound(model: TrainedModel, certificate: CertificateReport) -> float | None:
    """The stored certified bound if it was computed on this very served map, else a fresh one."""
    if certificate.served_map_sha256 == model.served_map().fingerprint:
        return certificate.certified
    fresh = certify_global(model.network).certified
    return fresh if math.isfinite(fresh) else None
