"""The service layer shared by the web app and the workers: the job store, the worker loop,
datasets a job may name. Above ``mae_core`` (which it calls through its public API), below
``app`` and ``mae_cli``."""
