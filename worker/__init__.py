"""The worker: runs tasks as Docker containers and reports their state and the host's health."""
