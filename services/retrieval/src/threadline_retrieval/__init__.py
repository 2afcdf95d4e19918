"""Threadline's retrieval service."""
