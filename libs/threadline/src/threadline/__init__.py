"""Threadline's shared library: what every service agrees on, and nothing else."""
