"""Training jobs: an embedded SQLite job store and the worker that runs them.

The web app queues jobs (``submit_pretrain``) and reads their state; ``mae worker`` processes
claim them under a lease and run the trainer. Web and workers share only the data folder
(``DataDir``): the store, run folders and published checkpoints.
"""

from mae_service.jobs.datasets import Dataset, find_dataset, list_datasets
from mae_service.jobs.errors import JobNotFoundError, JobStateError
from mae_service.jobs.paths import DataDir, default_data_dir, default_data_roots
from mae_service.jobs.spec import PRETRAIN, pretrain_config, recipe_defaults, submit_pretrain
from mae_service.jobs.store import FINAL_STATES, STATES, Job, JobStore
from mae_service.jobs.worker import Worker

__all__ = [
    "DataDir", "Dataset", "FINAL_STATES", "Job", "JobNotFoundError", "JobStateError", "JobStore",
    "PRETRAIN", "STATES", "Worker", "default_data_dir", "default_data_roots", "find_dataset",
    "list_datasets", "pretrain_config", "recipe_defaults", "submit_pretrain",
]
