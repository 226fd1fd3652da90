"""The catalog's HTTP API (FastAPI) and its web page.

Errors are JSON ``{"error": message, "status": code}``: 400 bad input or malformed JSON, 403 a path outside
the allowed folders, 404 unknown id, 409 duplicate id, 413 upload too large, 422 a field of the wrong type or
range (with ``detail``), 503 no classifier loaded.
"""
from __future__ import annotations

import logging
import os
from typing import List, Optional

from fastapi import FastAPI, File, Form, Query, Request, UploadFile
from fastapi.exceptions import RequestValidationError
from fastapi.responses import FileResponse, HTMLResponse, JSONResponse, Response
from pydantic import BaseModel, ConfigDict, Field
from starlette.exceptions import HTTPException as StarletteHTTPException

from serving.catalog.page import PAGE_HTML
from serving.catalog.service import CatalogError, CatalogService, NotFound, TooLarge, save_upload

logger = logging.getLogger(__name__)


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid")


class IndexRequest(_Strict):
    video_id: str = Field(min_length=1, max_length=128)
    video_path: str = Field(min_length=1, description="a clip the server can read")
    title: str = ""
    brief: str = ""
    label: Optional[str] = None
    cover_path: Optional[str] = None


class BulkRequest(_Strict):
    source: Optional[str] = Field(None, description="a dataset folder, an info file or a MicroLens items file")
    max_videos: Optional[int] = Field(None, ge=1)


class RecommendRequest(_Strict):
    video_id: Optional[str] = None
    history: Optional[List[str]] = Field(None, max_length=1000)
    top_k: int = Field(10, ge=1)
    offset: int = Field(0, ge=0)
    labels: Optional[List[str]] = None


class ExportRequest(_Strict):
    model_base: str = "models"
    top_k: int = Field(10, ge=1, le=1000)
    name: str = "catalog_recommender"
    with_clip: bool = Field(True, description="wrap the classifier in as recommend_clip (a SavedModel classifier)")


def _error(status: int, message: str, **extra) -> JSONResponse:
    return JSONResponse({"error": message, "status": status, **extra}, status_code=status)


def _labels(value: Optional[str]) -> Optional[List[str]]:
    labels = [v.strip() for v in (value or "").split(",") if v.strip()]
    return labels or None


def create_app(service: CatalogService, default_source: Optional[str] = None) -> FastAPI:
    """The API over ``service``; ``default_source`` is what ``POST /index/microlens`` reads when the request
    names no source."""
    app = FastAPI(title="xinpianchang catalog", version="1",
                  description="A live short-video catalog: index, recommend, classify, browse.")
    app.state.service = service
    limit = service.config.max_upload_bytes

    @app.exception_handler(CatalogError)
    async def catalog_error(_request: Request, exc: CatalogError) -> JSONResponse:
        return _error(exc.status, str(exc))

    @app.exception_handler(RequestValidationError)
    async def validation_error(_request: Request, exc: RequestValidationError) -> JSONResponse:
        errors = exc.errors()
        if any(e.get("type") == "json_invalid" for e in errors):
            context = next(e for e in errors if e.get("type") == "json_invalid").get("ctx", {})
            return _error(400, f"malformed JSON body: {context.get('error', 'cannot parse')}")
        first = errors[0] if errors else {}
        where = ".".join(str(p) for p in first.get("loc", ()) if p != "body")
        detail = [{"loc": list(e.get("loc", ())), "msg": e.get("msg"), "type": e.get("type")} for e in errors]
        return _error(422, f"{where or 'request'}: {first.get('msg', 'invalid')}", detail=detail)

    @app.exception_handler(StarletteHTTPException)
    async def http_error(_request: Request, exc: StarletteHTTPException) -> JSONResponse:
        return _error(exc.status_code, str(exc.detail))

    @app.middleware("http")
    async def body_limit(request: Request, call_next):
        length = request.headers.get("content-length")
        if length is not None and length.isdigit() and int(length) > limit + (1 << 20):
            return _error(413, f"request body of {length} bytes is larger than the limit of {limit} bytes")
        return await call_next(request)

    def _saved(upload: UploadFile) -> str:
        if upload.size is not None and upload.size > limit:
            raise TooLarge(f"upload {upload.filename!r} is larger than {limit} bytes")
        return save_upload(upload.file, service.config.media_dir, limit, upload.filename or "upload")

    # ----------------------------------------------------------------------------------------- page
    @app.get("/", response_class=HTMLResponse, include_in_schema=False)
    def page() -> HTMLResponse:
        return HTMLResponse(PAGE_HTML)

    # --------------------------------------------------------------------------------------- status
    @app.get("/health")
    def health() -> dict:
        return service.health()

    @app.get("/labels")
    def labels() -> dict:
        return service.labels()

    # -------------------------------------------------------------------------------------- indexing
    @app.post("/index", status_code=201)
    def index(request: IndexRequest) -> dict:
        return service.index_path(request.video_id, request.video_path, request.title, request.brief,
                                  request.label, request.cover_path)

    @app.post("/index/upload", status_code=201)
    def index_upload(file: UploadFile = File(...), video_id: str = Form(...), title: str = Form(""),
                     brief: str = Form(""), label: Optional[str] = Form(None),
                     cover: Optional[UploadFile] = File(None)) -> dict:
        cover_bytes = cover.file.read(limit + 1) if cover is not None and cover.filename else None
        if cover_bytes is not None and len(cover_bytes) > limit:
            raise TooLarge(f"cover {cover.filename!r} is larger than {limit} bytes")
        path = _saved(file)
        return service.index_upload(video_id, path, file.filename or "upload", title, brief, label, cover_bytes)

    @app.post("/index/bulk")
    def index_bulk(request: BulkRequest) -> dict:
        if not request.source:
            raise CatalogError("source is required: a dataset folder, an info file or a MicroLens items file")
        return service.bulk(request.source, request.max_videos)

    @app.post("/index/microlens")
    def index_microlens(request: BulkRequest) -> dict:
        source = request.source or default_source
        if not source:
            raise CatalogError("no source: give \"source\" or start the server with --microlens ITEMS")
        return service.bulk(source, request.max_videos)

    @app.get("/index/list")
    def index_list(offset: int = Query(0, ge=0), limit: int = Query(50, ge=1, le=1000),
                   label: Optional[str] = None) -> dict:
        return service.list(offset, limit, label)

    @app.delete("/index/{video_id}")
    def index_delete(video_id: str) -> dict:
        return service.delete(video_id)

    # ----------------------------------------------------------------------------------------- items
    @app.get("/items/{video_id}")
    def item(video_id: str) -> dict:
        return service.item(video_id).summary()

    @app.get("/items/{video_id}/cover")
    def item_cover(video_id: str) -> Response:
        found = service.item(video_id, with_thumbnail=True)
        if not found.thumbnail:
            raise NotFound(f"video_id {video_id!r} has no cover")
        return Response(found.thumbnail, media_type="image/jpeg", headers={"Cache-Control": "max-age=3600"})

    @app.get("/items/{video_id}/video")
    def item_video(video_id: str) -> FileResponse:
        found = service.item(video_id)
        if not found.video_path or not os.path.isfile(found.video_path):
            raise NotFound(f"video_id {video_id!r}: its clip is no longer on the server")
        return FileResponse(found.video_path, media_type="video/mp4")

    # ----------------------------------------------------------------------------------- recommending
    @app.post("/recommend")
    def recommend(request: RecommendRequest) -> dict:
        return service.recommend(request.video_id, request.history, request.top_k, request.offset, request.labels)

    @app.post("/recommend/upload")
    def recommend_upload(file: UploadFile = File(...), brief: str = Form(""), top_k: int = Form(10, ge=1),
                         offset: int = Form(0, ge=0), labels: Optional[str] = Form(None)) -> dict:
        path = _saved(file)
        try:
            return service.recommend_upload(path, file.filename or "upload", brief, top_k, offset, _labels(labels))
        finally:
            _unlink(path)

    @app.post("/classify")
    def classify(file: UploadFile = File(...), brief: str = Form(""), top: int = Form(5, ge=1, le=100)) -> dict:
        path = _saved(file)
        try:
            return service.classify_upload(path, file.filename or "upload", brief, top)
        finally:
            _unlink(path)

    @app.get("/search")
    def search(q: str = Query(..., max_length=500), top_k: int = Query(20, ge=1, le=200),
               label: Optional[str] = None) -> dict:
        return service.search(q, top_k, label)

    @app.post("/export")
    def export(request: ExportRequest) -> dict:
        from serving.catalog.export import export_catalog

        try:
            classifier = getattr(service.embedder, "path", None) if request.with_clip else None
            path = export_catalog(service.store, request.model_base, request.top_k, request.name,
                                  classifier_path=classifier)
        except (ValueError, FileExistsError) as exc:
            raise CatalogError(str(exc)) from None
        return {"exported": path, "items": len(service.index)}

    return app


def _unlink(path: str) -> None:
    try:
        os.unlink(path)
    except FileNotFoundError:
        pass
