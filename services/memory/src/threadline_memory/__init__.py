"""Threadline's memory service."""
