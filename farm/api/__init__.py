"""The REST API for scripts and the UI (DESIGN section 7): thin DRF views over the services."""
