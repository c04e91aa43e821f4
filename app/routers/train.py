"""The Train pages: ``/train`` (submit a pretraining job, follow the queue) and
``/train/jobs/{id}`` (live curves, snapshots, logs, cancel / retry). Data comes from the REST
endpoints in ``jobs.py``; the pages poll them."""

from __future__ import annotations

from fastapi import APIRouter, Request
from fastapi.responses import HTMLResponse

from mae_core import list_presets
from mae_service.jobs import list_datasets, recipe_defaults
from mae_service.jobs.spec import form_limits
from mae_core.masking import GRID_RATIO, ordered_strategies
from mae_core.train.config import RECIPES
from mae_core.train.init import CONTINUE_LR, continue_lr_note

from ..deps import RegistryDep, SettingsDep
from ..eval_jobs import eval_form_config
from ..job_access import WORKER_SEEN_S, StoreDep, existing, job_errors, job_payload, list_payload
from ..templating import templates

router = APIRouter(include_in_schema=False)

# Presets in size order, the ones a CPU can train first.
PRESET_ORDER = ("mae_vit_tiny_patch16", "mae_vit_small_patch16", "mae_vit_base_patch16",
                "mae_vit_large_patch16", "mae_vit_huge_patch14")


def ordered_presets() -> list[str]:
    known = list_presets()
    return [p for p in PRESET_ORDER if p in known] + [p for p in known if p not in PRESET_ORDER]


@router.get("/train", response_class=HTMLResponse, name="train_page")
def train_page(request: Request, settings: SettingsDep, store: StoreDep,
               registry: RegistryDep) -> HTMLResponse:
    datasets = list_datasets(settings.data_roots)
    # init_from: checkpoints that can continue pretraining (with a decoder); the embedded default first
    starts = sorted((i for i, v in registry.checkpoints().items() if v.can_reconstruct and not v.error),
                    key=lambda i: (i != registry.default_id, i))
    page_config = {
        "limits": form_limits(),
        "jobs": list_payload(store),
        "defaults": recipe_defaults(),
        "recipes": {name: recipe_defaults(name) for name in RECIPES},
        # an empty Base lr from a checkpoint: the continued-pretraining lr (mae_core.train.init)
        "continueLr": {"lr": CONTINUE_LR, "text": f"{CONTINUE_LR:g}",
                       "notes": {name: continue_lr_note(r) for name, r in RECIPES.items()}},
        "gridRatio": GRID_RATIO,
        "workerSeenS": WORKER_SEEN_S,
        "eval": eval_form_config(settings, registry),  # evaluation kinds (the JOB_FIELDS tables)
    }
    return templates.TemplateResponse(request, "train.html", {
        "presets": ordered_presets(), "strategies": ordered_strategies(), "datasets": datasets,
        "roots": settings.data_roots, "defaults": page_config["defaults"], "recipes": list(RECIPES),
        "data_dir": settings.data_dir, "page_config": page_config, "starts": starts,
        "default_start": registry.default_id if registry.default_id in starts else "",
    })


@router.get("/train/jobs/{job_id}", response_class=HTMLResponse, name="job_page")
def job_page(request: Request, job_id: str, store: StoreDep) -> HTMLResponse:
    with job_errors():
        store = existing(store)
        job = job_payload(store.get(job_id), store.events(job_id))
    return templates.TemplateResponse(request, "job.html", {
        "job": job, "page_config": {"job": job},
    })
