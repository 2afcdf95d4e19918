"""Threadline's agent service."""
