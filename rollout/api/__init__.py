"""The front door: the REST API for execution clients and the live status page for release managers."""
