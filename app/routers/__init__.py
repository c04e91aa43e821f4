"""Routers, one per resource: pages, the reconstruct endpoint, service status and models."""
