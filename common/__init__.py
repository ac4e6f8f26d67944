"""Plumbing shared by the manager and worker services: config, HTTP serving, periodic jobs."""
