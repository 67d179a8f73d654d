"""The FastAPI app factory. ``mnistq serve`` runs ``create_app()`` under uvicorn."""

import logging

from fastapi import FastAPI

from api import errors
from api.limits import BodySizeLimit
from api.metrics import RequestCounter
from api.routes import dashboard, datasets, docs, jobs, predict, service, train
from shared.config import get_settings

log = logging.getLogger(__name__)

DESCRIPTION = """Queue-driven training and bulk prediction for a NumPy MNIST MLP.

Every `/v1` request carries `Authorization: Bearer <api-key>`. Errors are
`{"error": {"code", "message", "details"}}`."""


def create_app() -> FastAPI:
    settings = get_settings()
    if settings.env == "production" and settings.admin_key is None:
        log.warning("MNISTQ_ADMIN_KEY is unset: only keys created with `mnistq keys create` work")
    app = FastAPI(
        title="mnistq", version="1.0", description=DESCRIPTION, docs_url=None, redoc_url=None
    )
    errors.install(app)
    # Order matters: train's fixed paths before jobs' "/{job_id}".
    for module in (train, predict, jobs, datasets, service, dashboard, docs):
        app.include_router(module.router)
    docs.mount_assets(app)
    app.add_middleware(
        BodySizeLimit, max_json=settings.max_json_bytes, max_upload=settings.max_upload_bytes
    )
    app.add_middleware(RequestCounter)
    return app
