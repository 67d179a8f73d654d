"""Pydantic models for what crosses the HTTP boundary (requests in, jobs out)."""

import re
from datetime import datetime
from typing import Annotated, Any, Literal
from urllib.parse import urlsplit

from pydantic import (
    AfterValidator,
    BaseModel,
    ConfigDict,
    Field,
    StrictInt,
    field_validator,
    model_validator,
)

from shared.catalog import (
    BUILTIN_DATASETS,
    SPLITS,
    UPLOAD_PREFIX,
    architecture_problem,
    normalise_activation,
    parameter_count,
)
from shared.config import get_settings

UPLOAD_ID = re.compile(r"^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$")
MAX_SEED = 2**63 - 1


def check_dataset_name(value: str) -> str:
    if value in BUILTIN_DATASETS:
        return value
    if value.startswith(UPLOAD_PREFIX) and UPLOAD_ID.match(value[len(UPLOAD_PREFIX) :]):
        return value
    names = ", ".join(f'"{n}"' for n in BUILTIN_DATASETS)
    raise ValueError(f'dataset must be one of {names} or "upload:<dataset id>", got {value!r}')


def check_callback_url(value: str | None) -> str | None:
    """An absolute http(s) URL of at most 2,000 characters, or None."""
    if value is None:
        return None
    parts = urlsplit(value)
    if parts.scheme not in ("http", "https") or not parts.hostname or len(value) > 2000:
        raise ValueError("callback_url must be an absolute http:// or https:// URL")
    return value


CallbackUrl = Annotated[
    str | None,
    AfterValidator(check_callback_url),
    Field(description="POSTed a JSON event when a worker finishes the job (see README)"),
]


class TrainRequest(BaseModel):
    """``POST /v1/jobs/train``: every field optional, defaulting to the seed's values."""

    model_config = ConfigDict(extra="forbid", allow_inf_nan=False)

    dataset: str = "mnist"
    layers: list[StrictInt] = Field(default_factory=lambda: [784, 128, 64, 10])
    hidden_activation: Literal["relu", "reLU", "sigmoid", "tanh"] = "relu"
    output_activation: Literal["softmax", "sigmoid", "linear"] = "softmax"
    loss: Literal["cross_entropy", "mse"] = "cross_entropy"
    epochs: StrictInt = 10
    learning_rate: float = 0.01
    batch_size: StrictInt = 64
    seed: StrictInt | None = None
    callback_url: CallbackUrl = None

    @field_validator("dataset")
    @classmethod
    def _dataset(cls, v: str) -> str:
        return check_dataset_name(v)

    @field_validator("hidden_activation")
    @classmethod
    def _normalise(cls, v: str) -> str:
        return normalise_activation(v)

    @field_validator("epochs")
    @classmethod
    def _epochs(cls, v: int) -> int:
        limit = get_settings().max_epochs
        if not 1 <= v <= limit:
            raise ValueError(f"epochs must be an integer from 1 to {limit}, got {v}")
        return v

    @field_validator("learning_rate")
    @classmethod
    def _learning_rate(cls, v: float) -> float:
        if not 0.0 < v <= 10.0:
            raise ValueError(f"learning_rate must be a finite number in (0, 10], got {v}")
        return v

    @field_validator("batch_size")
    @classmethod
    def _batch_size(cls, v: int) -> int:
        if v < 1:
            raise ValueError(f"batch_size must be a positive integer, got {v}")
        return v

    @field_validator("seed")
    @classmethod
    def _seed(cls, v: int | None) -> int | None:
        if v is not None and not 0 <= v <= MAX_SEED:
            raise ValueError(f"seed must be an integer from 0 to {MAX_SEED}, got {v}")
        return v

    @field_validator("layers")
    @classmethod
    def _layer_limits(cls, v: list[int]) -> list[int]:
        s = get_settings()
        if len(v) > s.max_layers:
            raise ValueError(f"layers may list at most {s.max_layers} sizes, got {len(v)}")
        if any(n > s.max_layer_units for n in v):
            raise ValueError(f"a layer may have at most {s.max_layer_units} units")
        if parameter_count(v) > s.max_params:
            raise ValueError(
                f"the network would have {parameter_count(v):,} parameters; the limit is "
                f"{s.max_params:,}"
            )
        return v

    @model_validator(mode="after")
    def _architecture(self) -> "TrainRequest":
        problem = architecture_problem(
            self.layers, self.hidden_activation, self.output_activation, self.loss
        )
        if problem:
            raise ValueError(problem)
        return self


class PredictRequest(BaseModel):
    """JSON form of ``POST /v1/jobs/predict``: a trained model and a named split."""

    model_config = ConfigDict(extra="forbid", protected_namespaces=())

    model: str = Field(description="id of a succeeded train job")
    dataset: str = Field(description='a named split such as "mnist-sample:test"')
    callback_url: CallbackUrl = None

    @field_validator("dataset")
    @classmethod
    def _split(cls, v: str) -> str:
        name, _, split = v.rpartition(":")
        if name not in BUILTIN_DATASETS or split not in SPLITS:
            names = ", ".join(f'"{n}:test"' for n in BUILTIN_DATASETS)
            raise ValueError(
                f"dataset must be a named split such as {names} (or :train), got {v!r}"
            )
        return v


class ErrorDetail(BaseModel):
    field: str | None = None
    message: str


class ErrorInfo(BaseModel):
    code: str
    message: str
    details: list[ErrorDetail] = []


class ErrorBody(BaseModel):
    error: ErrorInfo


class JobError(BaseModel):
    code: str
    message: str


class JobOut(BaseModel):
    id: str
    type: Literal["train", "predict"]
    status: Literal["queued", "running", "succeeded", "failed", "cancelled"]
    params: dict[str, Any]
    dataset: str
    model: str | None = None
    created_at: datetime
    started_at: datetime | None
    finished_at: datetime | None
    queue_seconds: float | None
    run_seconds: float | None
    attempt: int
    retries: int
    worker: str | None
    cancel_requested: bool
    progress: dict[str, Any] | None
    callback_url: str | None = None
    webhook: dict[str, Any] | None = None
    result: dict[str, Any] | None
    error: JobError | None
    links: dict[str, str]


class JobList(BaseModel):
    items: list[JobOut]
    next_cursor: str | None


class EpochOut(BaseModel):
    epoch: int
    loss: float
    train_accuracy: float
    val_accuracy: float | None
    seconds: float


class EpochList(BaseModel):
    items: list[EpochOut]


class DatasetOut(BaseModel):
    id: str
    filename: str
    train_count: int
    test_count: int
    sha256: str
    size: int
    created_at: datetime


class DatasetList(BaseModel):
    items: list[DatasetOut]
