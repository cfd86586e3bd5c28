"""Pulumi component resources of gke-mesh, one concern per module."""
