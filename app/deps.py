"""Dependency aliases for routes: ``def route(settings: SettingsDep, registry: RegistryDep)``."""

from __future__ import annotations

from typing import Annotated

from fastapi import Depends, Request

from .batcher import Batcher
from .errors import ServiceUnavailableError
from .registry import ModelRegistry
from .settings import Settings


def get_settings(request: Request) -> Settings:
    return request.app.state.settings


def get_registry(request: Request) -> ModelRegistry:
    return request.app.state.registry


def get_batcher(request: Request) -> Batcher:
    batcher = getattr(request.app.state, "batcher", None)
    if batcher is None:
        raise ServiceUnavailableError("the inference worker has not started; retry shortly")
    return batcher


SettingsDep = Annotated[Settings, Depends(get_settings)]
RegistryDep = Annotated[ModelRegistry, Depends(get_registry)]
BatcherDep = Annotated[Batcher, Depends(get_batcher)]
